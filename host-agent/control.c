// SPDX-License-Identifier: GPL-2.0-only
/*
 * The control socket (proto/memcoopd_ctl.h): a Unix stream socket, mode
 * 0660, group = socket-group.  Each peer's credentials come from
 * SO_PEERCRED: root (and the daemon's own uid, when it does not run as
 * root) may read and change; members of socket-group may read; anybody
 * else gets EPERM on every request.  A HELLO with the protocol version
 * must come first; every message is length-checked by mcctl_parse() and
 * every JSON member is type-checked before use.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "control.h"
#include "log.h"
#include "memcoopd.h"
#include "memcoopd_ctl.h"
#ifdef HAVE_KSM
#include "ksm.h"
#endif

#define CTL_MAX_CLIENTS		64
#define CTL_ROOT_RESERVED	4	/* of them only for root */
#define CTL_MAX_OUTPUT		(4U * 1024U * 1024U)	/* slow watcher */
/* a client with this much unread output gets no more requests read */
#define CTL_THROTTLE		(2U * MCCTL_MAX_PAYLOAD + 64U)
#define CTL_IDLE_TIMEOUT	30	/* s without a request (not watching) */
#define CTL_WRITE_TIMEOUT	10	/* s without reading what it was sent */

struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	struct control		*ctl;
	struct bufferevent	*bev;
	uid_t			 uid;
	pid_t			 pid;
	int			 can_read;
	int			 can_change;
	int			 hello;
	int			 watch;
	int			 closing;	/* close once the output drained */
	int			 throttled;	/* reading stopped: output full */
	uint32_t		 watch_seq;
	char			 watch_guest[GUEST_NAME_MAX];
};

struct control {
	struct memcoopd		*md;
	struct evconnlistener	*listener;
	char			*path;
	gid_t			 gid;
	unsigned int		 nclients;
	TAILQ_HEAD(, ctl_client) clients;
};

static double
mibd(uint64_t b)
{
	return (double)b / (double)MIB;
}

json_t *
control_error(int code, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:s, s:i}", "error", buf, "code", code);
}

/* ------------------------------------------------------------------ */
/* Status */

static const char *
pressure_label(const struct memcoopd *md, const struct guest *g)
{
	const struct policy_params *p = &md->conf->pol;

	if (g->state != GUEST_ONLINE || !(g->stats.valid & GST_AVAIL))
		return "-";
	if (g->stats.avail < p->guest_reserve)
		return "high";
	if (g->stats.avail < p->guest_reserve + p->guest_slack)
		return "some";
	return "none";
}

static uint64_t
stat_rate(const struct guest *g, uint32_t bit, size_t off)
{
	uint64_t a, b, dt;

	if (!(g->stats.valid & g->prev.valid & bit) ||
	    g->stats.when <= g->prev.when || g->prev.when == 0)
		return 0;
	a = *(const uint64_t *)((const char *)&g->stats + off);
	b = *(const uint64_t *)((const char *)&g->prev + off);
	dt = g->stats.when - g->prev.when;
	return a >= b ? (a - b) * 1000 / dt : 0;
}

json_t *
control_guest_json(struct memcoopd *md, const struct guest *g)
{
	struct policy_guest pg;
	uint64_t lo = 0, hi = 0;
	json_t *o;

	memset(&pg, 0, sizeof(pg));
	pg.set = g->set;
	pg.maxmem = g->maxmem;
	pg.actual = g->actual;
	pg.cur_target = g->target;
	(void)policy_limits(&md->conf->pol, &pg, &lo, &hi);
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:i, s:s, s:I, s:I, s:I, s:s, s:I}",
	    "name", g->name,
	    "state", g->state == GUEST_ONLINE ? "online" : "offline",
	    "mode", guest_mode_name(g->set.mode),
	    "target", (json_int_t)g->target,
	    "actual", (json_int_t)g->actual,
	    "maxmem", (json_int_t)g->maxmem,
	    "usable", (json_int_t)((g->stats.valid & GST_AVAIL) ?
		g->stats.avail : 0),
	    "set_target", (json_int_t)g->set.target,
	    "min", (json_int_t)g->set.min,
	    "max", (json_int_t)g->set.max,
	    "limit_lo", (json_int_t)lo,
	    "limit_hi", (json_int_t)hi,
	    "weight", (int)g->set.weight,
	    "pressure", pressure_label(md, g),
	    "swap_rate", (json_int_t)(stat_rate(g, GST_SWAP_IN,
		offsetof(struct guest_stats, swap_in)) + stat_rate(g,
		GST_SWAP_OUT, offsetof(struct guest_stats, swap_out))),
	    "majflt_rate", (json_int_t)stat_rate(g, GST_MAJFLT,
		offsetof(struct guest_stats, majflt)),
	    "ksm_saving", (json_int_t)g->ksm_saving,
	    "reason", g->reason,
	    "qemu_pid", (json_int_t)g->qemu_pid);
	return o;
}

#ifdef HAVE_KSM
static json_t *
ksm_status_json(const struct ksm_status *ks)
{
	return json_pack("{s:s, s:s, s:b, s:b, s:b, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
	    "mode", ksm_mode_name(ks->mode),
	    "phase", ksm_phase_name(ks->phase),
	    "run", ks->run,
	    "advisor", ks->advisor,
	    "advisor_active", ks->advisor_active,
	    "pages_shared", (json_int_t)ks->pages_shared,
	    "pages_sharing", (json_int_t)ks->pages_sharing,
	    "pages_unshared", (json_int_t)ks->pages_unshared,
	    "pages_volatile", (json_int_t)ks->pages_volatile,
	    "full_scans", (json_int_t)ks->full_scans,
	    "pages_to_scan", (json_int_t)ks->pages_to_scan,
	    "sleep_millisecs", (json_int_t)ks->sleep_millisecs,
	    "saving_bytes", (json_int_t)ks->saving_bytes,
	    "general_profit", (json_int_t)ks->general_profit,
	    "estimate_bytes", (json_int_t)ks->estimate_bytes,
	    "estimate_cross_bytes", (json_int_t)ks->estimate_cross_bytes,
	    "estimate_age_s", (json_int_t)ks->estimate_age,
	    "estimate_ms", (json_int_t)ks->estimate_ms,
	    "ksmd_cpu_ms", (json_int_t)ks->ksmd_cpu_ms,
	    "reason", ks->reason);
}
#endif

static json_t *
ksm_json(struct memcoopd *md)
{
#ifdef HAVE_KSM
	struct ksm_status ks;

	if (md->ksm == NULL || ksm_get_status(md->ksm, &ks) == -1)
		return json_pack("{s:s}", "mode", "unmanaged");
	return ksm_status_json(&ks);
#else
	(void)md;
	return json_pack("{s:s}", "mode", "unmanaged");
#endif
}

json_t *
control_status_json(struct memcoopd *md, const char *only)
{
	const struct host_stats *h = &md->host;
	json_t *o, *guests;
	struct guest *g;

	guests = json_array();
	TAILQ_FOREACH(g, &md->guests, entry)
		if (only == NULL || strcmp(only, g->name) == 0)
			json_array_append_new(guests, control_guest_json(md, g));
	o = json_pack("{s:i, s:i, s:s, s:I, s:I, s:I, s:b, "
	    "s:{s:b, s:I, s:I, s:f, s:f, s:I, s:I}, s:o, s:o}",
	    "version", MCCTL_VERSION,
	    "pid", (int)getpid(),
	    "backend", md->backend != NULL ? md->backend->name : "none",
	    "uptime_ms", (json_int_t)(now_ms() - md->started),
	    "ticks", (json_int_t)md->ticks,
	    "changes", (json_int_t)md->changes,
	    "auto", md->conf->auto_enabled,
	    "host",
		"valid", h->valid_mem,
		"mem_total", (json_int_t)h->mem_total,
		"mem_available", (json_int_t)h->mem_available,
		"psi_some_avg10", h->valid_psi ? h->psi_some_avg10 : 0.0,
		"psi_full_avg10", h->valid_psi ? h->psi_full_avg10 : 0.0,
		"floor", (json_int_t)md->conf->pol.host_floor,
		"comfort", (json_int_t)md->conf->pol.host_comfort,
	    "ksm", ksm_json(md),
	    "guests", guests);
	return o;
}

/* ------------------------------------------------------------------ */
/* Requests */

/*
 * The guest and the settings a SET (or PREVIEW) asks for, checked: NULL,
 * or the error to reply.
 */
static json_t *
set_parse(struct memcoopd *md, json_t *req, struct guest **gp,
    struct guest_settings *nsp, const char **keyp, const char **valp)
{
	const char *name, *key, *val;
	struct guest_settings ns;
	struct policy_guest pg;
	struct guest *g;
	uint64_t v = 0, lo, hi;
	unsigned long w;
	char *end;

	name = json_string_value(json_object_get(req, "guest"));
	key = json_string_value(json_object_get(req, "key"));
	val = json_string_value(json_object_get(req, "value"));
	if (name == NULL || key == NULL || val == NULL)
		return control_error(EINVAL, "set needs string members guest, "
		    "key and value");
	if ((g = guest_find(md, name)) == NULL)
		return control_error(ENOENT, "no guest named \"%.64s\"", name);
	ns = g->set;
	if (strcmp(key, "target") == 0) {
		if (parse_size(val, &v) == -1 || v == 0)
			return control_error(EINVAL, "target: invalid size "
			    "\"%.32s\" (e.g. 1536M, 2G)", val);
		ns.target = v;
		ns.mode = GMODE_FIXED;
	} else if (strcmp(key, "min") == 0 || strcmp(key, "max") == 0) {
		if (strcmp(val, "none") == 0)
			v = 0;
		else if (parse_size(val, &v) == -1)
			return control_error(EINVAL, "%s: invalid size \"%.32s\""
			    " (e.g. 512M, 4G, none)", key, val);
		if (key[1] == 'i')
			ns.min = v;
		else
			ns.max = v;
	} else if (strcmp(key, "weight") == 0) {
		errno = 0;
		w = strtoul(val, &end, 10);
		if (errno != 0 || *end != '\0' || val[0] < '0' ||
		    val[0] > '9' || w < 1 || w > GUEST_WEIGHT_MAX)
			return control_error(EINVAL, "weight: expected 1..%d",
			    GUEST_WEIGHT_MAX);
		ns.weight = (unsigned int)w;
	} else if (strcmp(key, "mode") == 0) {
		if (guest_mode_parse(val, &ns.mode) == -1)
			return control_error(EINVAL, "mode: expected auto, "
			    "fixed or manual");
		if (ns.mode == GMODE_FIXED && ns.target == 0)
			return control_error(EINVAL, "mode fixed needs a "
			    "target: set the target instead");
	} else {
		return control_error(EINVAL, "unknown key \"%.32s\" (target, "
		    "min, max, weight, mode)", key);
	}

	if (ns.min != 0 && ns.max != 0 && ns.min > ns.max)
		return control_error(ERANGE, "min %" PRIu64 "M is above max %"
		    PRIu64 "M", ns.min / MIB, ns.max / MIB);
	if (g->maxmem != 0 && ns.min > g->maxmem)
		return control_error(ERANGE, "min %" PRIu64 "M is above the "
		    "guest's memory %" PRIu64 "M", ns.min / MIB,
		    g->maxmem / MIB);
	if (ns.mode == GMODE_FIXED) {
		memset(&pg, 0, sizeof(pg));
		pg.set = ns;
		pg.maxmem = g->maxmem;
		pg.actual = g->actual;
		pg.cur_target = g->target;
		if (policy_limits(&md->conf->pol, &pg, &lo, &hi) == 0 &&
		    (ns.target < lo || ns.target > hi))
			return control_error(ERANGE, "target %" PRIu64 "M is "
			    "outside the allowed %" PRIu64 "M..%" PRIu64 "M",
			    ns.target / MIB, lo / MIB, hi / MIB);
	}
	*gp = g;
	*nsp = ns;
	*keyp = key;
	*valp = val;
	return NULL;
}

static json_t *
do_set(struct memcoopd *md, json_t *req)
{
	const char *key, *val;
	struct guest_settings ns;
	struct guest *g;
	json_t *err;

	if ((err = set_parse(md, req, &g, &ns, &key, &val)) != NULL)
		return err;
	g->set = ns;
	log_info("guest %s: operator set %s %s", g->name, key, val);
	if (ns.mode == GMODE_FIXED && g->state == GUEST_ONLINE &&
	    ns.target != g->target) {
		char why[96];

		snprintf(why, sizeof(why), "operator set target %.0fM",
		    mibd(ns.target));
		if (guest_apply_target(md, g, ns.target, why) == -1)
			return control_error(EIO, "setting saved, but the "
			    "guest did not accept the target now");
	}
	return control_guest_json(md, g);
}

/* SET without applying it: what the next tick would choose. */
static json_t *
do_preview(struct memcoopd *md, json_t *req)
{
	char reason[REASON_MAX], expl[REASON_MAX];
	const char *key, *val;
	struct guest_settings ns;
	struct guest *g;
	uint64_t t;
	int changed;
	json_t *err;

	if ((err = set_parse(md, req, &g, &ns, &key, &val)) != NULL)
		return err;
	if (policy_preview(md, g, &ns, &t, &changed, reason, expl) == -1)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:s, s:s}",
	    "name", g->name, "key", key, "value", val,
	    "mode", guest_mode_name(ns.mode),
	    "target_now", (json_int_t)g->target,
	    "target", (json_int_t)(changed ? t : g->target),
	    "changed", changed,
	    "reason", changed ? reason : "",
	    "explain", expl);
}

/* ms left of @dur from @since, at @now; 0 when over. */
static uint64_t
left_ms(uint64_t since, uint64_t dur, uint64_t now)
{
	if (since > now)
		return dur;
	return now - since < dur ? dur - (now - since) : 0;
}

/* Why the target last changed and why the policy is not acting now. */
static json_t *
do_explain(struct memcoopd *md, const char *name)
{
	const struct policy_params *p = &md->conf->pol;
	const struct policy_gstate *st;
	struct policy_guest pg;
	struct guest *g;
	uint64_t lo = 0, hi = 0, now = now_ms();

	if (name == NULL)
		return control_error(EINVAL, "explain needs a string member "
		    "guest");
	if ((g = guest_find(md, name)) == NULL)
		return control_error(ENOENT, "no guest named \"%.64s\"", name);
	st = &g->pst;
	guest_to_policy(g, &pg);
	(void)policy_limits(p, &pg, &lo, &hi);
	return json_pack("{s:s, s:s, s:b, s:s, s:s, s:I, s:i, s:I, s:I, "
	    "s:I, s:i, s:i, s:I, s:I, s:I, s:I}",
	    "name", g->name,
	    "mode", guest_mode_name(g->set.mode),
	    "auto", md->conf->auto_enabled,
	    "now", g->explain[0] ? g->explain : "no tick yet",
	    "last_reason", g->reason,
	    "last_change_ago_ms", (g->reason_when != 0 &&
		g->reason_when <= now ? (json_int_t)(now - g->reason_when) : -1),
	    "last_dir", st->last_dir,
	    "hold_left_ms", (json_int_t)(st->last_dir != 0 ?
		left_ms(st->last_change, p->hold_ms, now) : 0),
	    "stall_hold_left_ms", (json_int_t)(st->stall_until > now ?
		st->stall_until - now : 0),
	    "last_stall_ago_ms", (st->last_stall != 0 &&
		st->last_stall <= now ? (json_int_t)(now - st->last_stall) : -1),
	    "calm_ticks", (int)st->calm_ticks,
	    "calm_needed", (int)p->calm_ticks,
	    "limit_lo", (json_int_t)lo,
	    "limit_hi", (json_int_t)hi,
	    "target", (json_int_t)g->target,
	    "actual", (json_int_t)g->actual);
}

static json_t *
do_ksm_set(struct memcoopd *md, json_t *req)
{
	const char *mode = json_string_value(json_object_get(req, "mode"));
	int m;

	if (mode == NULL)
		return control_error(EINVAL, "ksm set needs a string member "
		    "mode");
	if (strcmp(mode, "off") == 0)
		m = KSMC_OFF;
	else if (strcmp(mode, "on") == 0)
		m = KSMC_ON;
	else if (strcmp(mode, "auto") == 0)
		m = KSMC_AUTO;
	else
		return control_error(EINVAL, "ksm mode: expected off, on or "
		    "auto");
#ifdef HAVE_KSM
	if (md->ksm == NULL) {
		char err[256];

		if (memcoopd_ksm_init(md, m, err, sizeof(err)) == -1)
			return control_error(errno, "%s", err);
	} else if (ksm_set_mode(md->ksm, (enum ksm_mode)m) == -1) {
		return control_error(EIO, "cannot set KSM mode %s", mode);
	}
	md->ksm_mode = m;
	log_info("ksm: operator set mode %s", mode);
	return ksm_json(md);
#else
	(void)md;
	(void)m;
	return control_error(ENOTSUP, "this memcoopd was built without KSM "
	    "support");
#endif
}

int
control_dispatch(struct memcoopd *md, int can_change, uint32_t type,
    const char *payload, size_t len, json_t **reply)
{
	json_error_t jerr;
	const char *name = NULL;
	json_t *req, *gv;

	*reply = NULL;
	if (!mcctl_is_request(type)) {
		*reply = control_error(EINVAL, "not a request");
		return MCCTL_R_ERROR;
	}
	if (!mcctl_is_read_only(type) && !can_change) {
		*reply = control_error(EPERM, "%s: only root may change "
		    "settings", mcctl_type_name(type));
		return MCCTL_R_ERROR;
	}
	req = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req == NULL || !json_is_object(req)) {
		*reply = control_error(EINVAL, "payload is not a JSON object%s%s",
		    req == NULL ? ": " : "", req == NULL ? jerr.text : "");
		json_decref(req);
		return MCCTL_R_ERROR;
	}
	if ((gv = json_object_get(req, "guest")) != NULL) {
		if ((name = json_string_value(gv)) == NULL) {
			*reply = control_error(EINVAL, "guest must be a string");
			goto out;
		}
	}
	switch (type) {
	case MCCTL_HELLO: {
		json_t *v = json_object_get(req, "version");

		if (!json_is_integer(v) ||
		    json_integer_value(v) != MCCTL_VERSION) {
			*reply = control_error(EPROTO, "protocol version %d "
			    "required", MCCTL_VERSION);
			break;
		}
		*reply = json_pack("{s:i, s:s, s:b}", "version", MCCTL_VERSION,
		    "daemon", "memcoopd 0.1.0", "can_change", can_change);
		break;
	}
	case MCCTL_STATUS:
	case MCCTL_WATCH:
		if (name != NULL && guest_find(md, name) == NULL) {
			*reply = control_error(ENOENT, "no guest named "
			    "\"%.64s\"", name);
			break;
		}
		*reply = control_status_json(md, name);
		break;
	case MCCTL_SET:
		*reply = do_set(md, req);
		break;
	case MCCTL_KSM_STATUS:
		*reply = ksm_json(md);
		break;
	case MCCTL_EXPLAIN:
		*reply = do_explain(md, name);
		break;
	case MCCTL_PREVIEW:
		*reply = do_preview(md, req);
		break;
	case MCCTL_KSM_SET:
		*reply = do_ksm_set(md, req);
		break;
	case MCCTL_STOP: {
		json_t *r = json_object_get(req, "restore");

		if (r != NULL && !json_is_boolean(r)) {
			*reply = control_error(EINVAL, "restore must be true "
			    "or false");
			break;
		}
		if (md->stop == NULL) {
			*reply = control_error(ENOTSUP, "cannot stop");
			break;
		}
		*reply = json_pack("{s:b}", "restore", json_is_true(r));
		md->stop(md, json_is_true(r));
		break;
	}
	default:
		*reply = control_error(EINVAL, "unknown request");
		break;
	}
out:
	json_decref(req);
	if (*reply == NULL)
		*reply = control_error(ENOMEM, "out of memory");
	return json_object_get(*reply, "error") != NULL ? MCCTL_R_ERROR :
	    MCCTL_R_OK;
}

/* ------------------------------------------------------------------ */
/* Connections */

static void	client_free(struct ctl_client *);

static void
client_send(struct ctl_client *cl, uint32_t type, uint32_t seq, json_t *obj)
{
	struct mcctl_hdr h;
	char *s;

	if (obj == NULL)
		return;
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (s != NULL && strlen(s) > MCCTL_MAX_PAYLOAD) {
		size_t len = strlen(s);

		/* said to the client, not dropped: it can ask for less */
		free(s);
		s = json_dumps(control_error(EMSGSIZE, "the reply is %zu bytes, "
		    "more than the protocol's %u: ask for one guest", len,
		    MCCTL_MAX_PAYLOAD), JSON_COMPACT);
		type = MCCTL_R_ERROR;
		log_warnx("control: a %zu-byte reply to uid %d replaced by an "
		    "error", len, (int)cl->uid);
	}
	if (s == NULL)
		return;
	if (mcctl_hdr_init(&h, type, seq, strlen(s)) == 0) {
		bufferevent_write(cl->bev, &h, sizeof(h));
		bufferevent_write(cl->bev, s, h.len);
	}
	free(s);
}

static void	client_read_cb(struct bufferevent *, void *);

/* The output drained below the low watermark (or to nothing). */
static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *cl = arg;

	if (cl->closing &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		client_free(cl);
		return;
	}
	if (cl->throttled && !cl->closing &&
	    evbuffer_get_length(bufferevent_get_output(bev)) < CTL_THROTTLE) {
		cl->throttled = 0;
		bufferevent_enable(bev, EV_READ);
		client_read_cb(bev, cl);	/* what is buffered already */
	}
}

static void
client_fail(struct ctl_client *cl, uint32_t seq, int code, const char *msg)
{
	client_send(cl, MCCTL_R_ERROR, seq, control_error(code, "%s", msg));
	cl->closing = 1;
	bufferevent_disable(cl->bev, EV_READ);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *cl = arg;
	struct control *ctl = cl->ctl;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct mcctl_hdr h;
	const char *payload, *err;
	unsigned char *buf;
	json_t *reply;
	ssize_t n;
	int rtype;

	while (!cl->closing) {
		size_t have = evbuffer_get_length(in);

		if (have == 0)
			return;
		/*
		 * A client that sends requests and does not read the replies
		 * gets no more read until it does: its memory here is bounded
		 * by this, the input watermark and the kernel's buffers.
		 */
		if (evbuffer_get_length(bufferevent_get_output(bev)) >=
		    CTL_THROTTLE) {
			cl->throttled = 1;
			bufferevent_disable(bev, EV_READ);
			return;
		}
		buf = evbuffer_pullup(in, -1);
		n = mcctl_parse(buf, have, &h, &payload, &err);
		if (n == -1) {
			log_debug("control: uid %d: %s", (int)cl->uid, err);
			client_fail(cl, 0, EPROTO, err);
			return;
		}
		if (n == 0)
			return;
		if (!mcctl_is_request(h.type)) {
			client_fail(cl, h.seq, EPROTO, "not a request");
			return;
		}
		if (!cl->can_read) {
			client_fail(cl, h.seq, EPERM, "permission denied: "
			    "not root and not in the control group");
			return;
		}
		if (!cl->hello && h.type != MCCTL_HELLO) {
			client_fail(cl, h.seq, EPROTO, "hello first");
			return;
		}
		rtype = control_dispatch(ctl->md, cl->can_change, h.type,
		    payload, h.len, &reply);
		if (h.type == MCCTL_HELLO) {
			if (rtype == MCCTL_R_OK)
				cl->hello = 1;
			else
				cl->closing = 1;
		}
		if (h.type == MCCTL_WATCH && rtype == MCCTL_R_OK) {
			json_t *req = json_loadb(payload, h.len, 0, NULL);
			const char *gn = json_string_value(json_object_get(req,
			    "guest"));

			struct timeval wr = { CTL_WRITE_TIMEOUT, 0 };

			cl->watch = 1;
			cl->watch_seq = h.seq;
			bufferevent_set_timeouts(cl->bev, NULL, &wr);
			snprintf(cl->watch_guest, sizeof(cl->watch_guest), "%s",
			    gn != NULL ? gn : "");
			json_decref(req);
		}
		if (h.type == MCCTL_SET || h.type == MCCTL_KSM_SET ||
		    h.type == MCCTL_STOP)
			log_info("control: uid %d pid %d: %s: %s", (int)cl->uid,
			    (int)cl->pid, mcctl_type_name(h.type),
			    rtype == MCCTL_R_OK ? "ok" : json_string_value(
			    json_object_get(reply, "error")));
		client_send(cl, (uint32_t)rtype, h.seq, reply);
		evbuffer_drain(in, (size_t)n);
		if (cl->closing)
			bufferevent_disable(cl->bev, EV_READ);
	}
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		client_free(arg);
}

static void
client_free(struct ctl_client *cl)
{
	struct control *ctl = cl->ctl;

	TAILQ_REMOVE(&ctl->clients, cl, entry);
	ctl->nclients--;
	bufferevent_free(cl->bev);
	free(cl);
}

/* Is @uid (primary group @gid) a member of @want? */
static int
in_group(uid_t uid, gid_t gid, gid_t want)
{
	struct passwd *pw;
	gid_t groups[256];
	int n = 256, i;

	if (want == (gid_t)-1)
		return 0;
	if (gid == want)
		return 1;
	if ((pw = getpwuid(uid)) == NULL)
		return 0;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) == -1)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == want)
			return 1;
	return 0;
}

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct timeval idle = { CTL_IDLE_TIMEOUT, 0 };
	struct timeval wr = { CTL_WRITE_TIMEOUT, 0 };
	struct ctl_client *cl;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	(void)lis;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control: SO_PEERCRED");
		evutil_closesocket(fd);
		return;
	}
	/* the last CTL_ROOT_RESERVED slots are root's: watchers cannot lock
	 * the operator out */
	if (ctl->nclients >= CTL_MAX_CLIENTS || (cred.uid != 0 &&
	    ctl->nclients >= CTL_MAX_CLIENTS - CTL_ROOT_RESERVED)) {
		static uint64_t last_warn;

		if (now_ms() - last_warn > 10000) {
			log_warnx("control: too many clients (%u), connection "
			    "of uid %d refused", ctl->nclients, (int)cred.uid);
			last_warn = now_ms();
		}
		evutil_closesocket(fd);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	cl->ctl = ctl;
	cl->uid = cred.uid;
	cl->pid = cred.pid;
	cl->can_change = cred.uid == 0 || cred.uid == geteuid();
	cl->can_read = cl->can_change || in_group(cred.uid, cred.gid,
	    ctl->gid);
	cl->bev = bufferevent_socket_new(ctl->md->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (cl->bev == NULL) {
		evutil_closesocket(fd);
		free(cl);
		return;
	}
	bufferevent_setcb(cl->bev, client_read_cb, client_write_cb,
	    client_event_cb, cl);
	/* a request is at most a header and MCCTL_MAX_PAYLOAD */
	bufferevent_setwatermark(cl->bev, EV_READ, 0,
	    sizeof(struct mcctl_hdr) + MCCTL_MAX_PAYLOAD);
	/* a client that says nothing for this long is dropped, and so is
	 * one that does not read what it was sent */
	bufferevent_set_timeouts(cl->bev, &idle, &wr);
	bufferevent_setwatermark(cl->bev, EV_WRITE, CTL_THROTTLE / 2, 0);
	bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&ctl->clients, cl, entry);
	ctl->nclients++;
	log_debug("control: client uid %d pid %d (%s)", (int)cred.uid,
	    (int)cred.pid, cl->can_change ? "read-write" :
	    cl->can_read ? "read-only" : "no access");
}

void
control_tick(struct memcoopd *md)
{
	struct control *ctl = md->ctl;
	struct ctl_client *cl, *tmp;

	if (ctl == NULL)
		return;
	TAILQ_FOREACH_SAFE(cl, &ctl->clients, entry, tmp) {
		if (!cl->watch || cl->closing)
			continue;
		if (evbuffer_get_length(bufferevent_get_output(cl->bev)) >
		    CTL_MAX_OUTPUT) {
			log_warnx("control: watcher uid %d does not read, "
			    "dropped", (int)cl->uid);
			client_free(cl);
			continue;
		}
		client_send(cl, MCCTL_R_EVENT, cl->watch_seq,
		    control_status_json(md, cl->watch_guest[0] ?
		    cl->watch_guest : NULL));
	}
}

int
control_init(struct memcoopd *md, const char *path, gid_t gid)
{
	struct sockaddr_un sun;
	struct control *ctl;
	struct stat st;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("control: socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	{
		/* /run/memcoop without systemd's RuntimeDirectory= */
		char dir[sizeof(sun.sun_path)], *slash;

		strcpy(dir, path);
		if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) == 0)
				log_info("control: created %s", dir);
		}
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("control: %s exists and is not a socket",
			    path);
			return -1;
		}
		/* refuse to steal the socket of a running daemon */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd != -1 && connect(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) == 0) {
			close(fd);
			log_warnx("control: %s: another memcoopd is running",
			    path);
			return -1;
		}
		if (fd != -1)
			close(fd);
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1) {
		log_warn("control: socket");
		return -1;
	}
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_warn("control: bind %s", path);
		umask(old);
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(path, 0660) == -1 ||
	    (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) == -1)) {
		log_warn("control: chmod/chown %s", sun.sun_path);
		close(fd);
		unlink(path);
		return -1;
	}
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		close(fd);
		return -1;
	}
	ctl->md = md;
	ctl->gid = gid;
	TAILQ_INIT(&ctl->clients);
	ctl->listener = evconnlistener_new(md->base, accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
	if (ctl->listener == NULL) {
		log_warnx("control: listener failed");
		close(fd);
		free(ctl->path);
		free(ctl);
		return -1;
	}
	md->ctl = ctl;
	return 0;
}

void
control_quiesce(struct memcoopd *md)
{
	if (md->ctl != NULL)
		evconnlistener_disable(md->ctl->listener);
}

void
control_close(struct memcoopd *md)
{
	struct control *ctl = md->ctl;
	struct ctl_client *cl;

	if (ctl == NULL)
		return;
	while ((cl = TAILQ_FIRST(&ctl->clients)) != NULL) {
		/* the last replies (a stop's), as far as the socket takes them */
		struct evbuffer *out = bufferevent_get_output(cl->bev);
		evutil_socket_t fd = bufferevent_getfd(cl->bev);

		if (fd != -1 && evbuffer_get_length(out) > 0)
			(void)evbuffer_write(out, fd);
		client_free(cl);
	}
	evconnlistener_free(ctl->listener);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
	md->ctl = NULL;
}
