// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Redis adapter: RESP over a unix or TCP socket, non-blocking in the
 * event loop (a bufferevent), every exchange bounded by deadline-ms.
 *
 * Shrink by N: a fresh look (INFO, CONFIG GET maxmemory and
 * maxmemory-policy); with noeviction Redis cannot drop anything and the
 * adapter says so; otherwise CONFIG SET maxmemory to (what Redis holds - N),
 * never below the floor, then INFO memory + MEMORY PURGE until Redis is
 * below its new limit (eviction runs in Redis's own loop, and jemalloc
 * returns the pages on MEMORY PURGE) or the time is up.  Grow-back raises
 * maxmemory by grow-step until it reaches the value found before the first
 * shrink; exit and removal set that value back at once.
 *
 * The process measured is INFO's process_id, checked against the peer's
 * credentials on a unix socket (a Redis that lies about it is caught).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "guestd.h"
#include "log.h"
#include "resp.h"

#define REDIS_INPUT_MAX		(RESP_BULK_MAX + 65536)
#define REDIS_POLL_MS		30	/* between eviction checks */
#define REDIS_PURGE_MS		150	/* between MEMORY PURGEs meanwhile */
#define REDIS_REPLIES_MAX	4

enum redis_op {
	ROP_NONE = 0,
	ROP_PROBE,
	ROP_SHRINK,
	ROP_GROW,
	ROP_RESTORE,
};

struct redis;
typedef void (*redis_step)(struct redis *, struct resp_val *, unsigned int);

struct redis {
	struct app		*app;
	struct bufferevent	*bev;
	int			 authed;
	pid_t			 pid;		/* INFO process_id, checked */
	pid_t			 peer_pid;	/* SO_PEERCRED on unix sockets */

	/* what Redis said at the last look */
	uint64_t		 maxmemory;	/* 0: unlimited */
	uint64_t		 used;		/* used_memory */
	char			 policy[32];
	int			 known;		/* the above are filled */

	/* what we changed */
	int			 lowered;
	uint64_t		 orig;		/* maxmemory found (0 = none) */
	uint64_t		 restore_at;	/* grown back up to here: orig */
	uint64_t		 set;		/* the maxmemory we set */

	/* the exchange in progress */
	enum redis_op		 op;
	uint64_t		 bytes;		/* asked of the op */
	uint64_t		 op_start;
	uint64_t		 target;	/* shrink: new maxmemory */
	uint64_t		 last_purge;	/* ms */
	redis_step		 step;		/* called with the replies */
	unsigned int		 expect;	/* replies awaited */
	unsigned int		 nreplies;
	int			 auth_pending;	/* first reply is AUTH's */
	struct resp_val		 replies[REDIS_REPLIES_MAX];
	struct event		*ev_timeout;	/* the op's deadline */
	struct event		*ev_poll;	/* next eviction check */
	char			 why[160];
};

static void	redis_close(struct redis *);

static struct redis *
R(struct app *a)
{
	return a->priv;
}

static void
replies_free(struct redis *r)
{
	unsigned int i;

	for (i = 0; i < r->nreplies; i++)
		resp_free(&r->replies[i]);
	r->nreplies = 0;
}

/* The op is over: tell app.c (probe failures only go to the log). */
static void
op_end(struct redis *r, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
op_end(struct redis *r, int ok, const char *fmt, ...)
{
	enum redis_op op = r->op;
	char msg[LAST_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	evtimer_del(r->ev_timeout);
	evtimer_del(r->ev_poll);
	replies_free(r);
	r->op = ROP_NONE;
	r->step = NULL;
	r->expect = 0;
	if (!ok)
		redis_close(r);
	if (op == ROP_PROBE) {
		if (!ok) {
			log_warnx("app %s: %s", r->app->conf->name, msg);
			app_set_last(r->app, "%s", msg);
		}
		return;
	}
	if (op != ROP_NONE)
		app_action_done(r->app, ok, "%s", msg);
}

static void
redis_close(struct redis *r)
{
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	r->bev = NULL;
	r->authed = 0;
	r->peer_pid = 0;
}

/* Drop whatever exchange is in flight (its replies would be misread). */
static void
abandon(struct redis *r)
{
	if (r->op == ROP_NONE)
		return;
	evtimer_del(r->ev_timeout);
	evtimer_del(r->ev_poll);
	replies_free(r);
	r->op = ROP_NONE;
	r->step = NULL;
	r->expect = 0;
	redis_close(r);
}

static void
fail(struct redis *r, const char *why)
{
	op_end(r, 0, "redis %s: %s", r->app->conf->address, why);
}

static void
timeout_cb(int fd, short what, void *arg)
{
	struct redis *r = arg;

	(void)fd;
	(void)what;
	fail(r, "no answer in time (deadline-ms)");
}

static void
peer_check(struct redis *r)
{
	struct ucred uc;
	socklen_t sl = sizeof(uc);

	if (r->peer_pid != 0 || r->bev == NULL ||
	    strncmp(r->app->conf->address, "unix:", 5) != 0)
		return;
	if (getsockopt(bufferevent_getfd(r->bev), SOL_SOCKET, SO_PEERCRED,
	    &uc, &sl) == 0 && uc.pid > 0)
		r->peer_pid = uc.pid;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct redis *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct resp_val v;
	const char *why;
	size_t len;
	ssize_t n;
	char *buf;
	redis_step step;

	for (;;) {
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		if (len > REDIS_INPUT_MAX)
			return fail(r, "reply larger than 1 MiB");
		if (r->expect == 0)
			return fail(r, "reply nobody asked for");
		buf = (char *)evbuffer_pullup(in, -1);
		if ((n = resp_parse(buf, len, &v, &why)) == -1)
			return fail(r, why);
		if (n == 0)
			return;
		evbuffer_drain(in, (size_t)n);
		r->expect--;
		if (r->auth_pending) {
			r->auth_pending = 0;
			if (v.type != RESP_SIMPLE) {
				snprintf(r->why, sizeof(r->why), "AUTH refused: %s",
				    v.type == RESP_ERROR ? v.str : "bad reply");
				resp_free(&v);
				return fail(r, r->why);
			}
			resp_free(&v);
			r->authed = 1;
			continue;
		}
		r->replies[r->nreplies++] = v;
		if (r->expect == 0) {
			step = r->step;
			r->step = NULL;
			peer_check(r);
			step(r, r->replies, r->nreplies);
			/* the step sent more, or ended the op */
			if (r->bev == NULL)
				return;
		}
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct redis *r = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF)
		return fail(r, "connection closed by Redis");
	snprintf(r->why, sizeof(r->why), "connection: %s",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	fail(r, r->why);
}

static int
redis_connect(struct redis *r)
{
	const char *addr = r->app->conf->address;
	struct sockaddr_un sun;
	struct addrinfo hints, *res = NULL;
	char host[256], *port;
	int rc;

	r->bev = bufferevent_socket_new(r->app->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (r->bev == NULL)
		return -1;
	bufferevent_setcb(r->bev, read_cb, NULL, event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	if (strncmp(addr, "unix:", 5) == 0) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", addr + 5);
		rc = bufferevent_socket_connect(r->bev,
		    (struct sockaddr *)&sun, sizeof(sun));
	} else {
		snprintf(host, sizeof(host), "%s", addr);
		port = strrchr(host, ':');
		*port++ = '\0';
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
			redis_close(r);
			snprintf(r->why, sizeof(r->why), "cannot resolve %s",
			    addr);
			return -2;
		}
		rc = bufferevent_socket_connect(r->bev, res->ai_addr,
		    res->ai_addrlen);
		freeaddrinfo(res);
	}
	if (rc == -1) {
		snprintf(r->why, sizeof(r->why), "connect: %s",
		    strerror(errno));
		redis_close(r);
		return -2;
	}
	return 0;
}

/* Send @argc commands (each a NULL-terminated argv); @step gets the replies. */
static void
send_cmds(struct redis *r, redis_step step, unsigned int ncmd,
    const char *const *cmds[])
{
	char buf[512];
	const char *auth[] = { "AUTH", r->app->conf->password, NULL };
	unsigned int i;
	int argc, n;

	if (r->bev == NULL) {
		if ((n = redis_connect(r)) < 0)
			return fail(r, n == -2 ? r->why : "out of memory");
	}
	if (!r->authed && r->app->conf->password != NULL) {
		n = resp_command(buf, sizeof(buf), 2, auth);
		if (n < 0)
			return fail(r, "password too long");
		bufferevent_write(r->bev, buf, (size_t)n);
		explicit_bzero(buf, sizeof(buf));
		r->auth_pending = 1;
		r->expect++;
	}
	for (i = 0; i < ncmd; i++) {
		for (argc = 0; cmds[i][argc] != NULL; argc++)
			;
		if ((n = resp_command(buf, sizeof(buf), argc, cmds[i])) < 0)
			return fail(r, "command too long");
		bufferevent_write(r->bev, buf, (size_t)n);
	}
	r->step = step;
	r->expect += ncmd;
}

static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/* A CONFIG GET reply: ["name", "value"]. */
static const char *
config_value(const struct resp_val *v)
{
	if (v->type != RESP_ARRAY || v->nelem != 2 ||
	    v->elem[1].type != RESP_BULK)
		return NULL;
	return v->elem[1].str;
}

static const char *
reply_error(const struct resp_val *v)
{
	if (v->type == RESP_ERROR)
		return v->str;
	return "unexpected reply";
}

/* Replies to INFO, CONFIG GET maxmemory, CONFIG GET maxmemory-policy. */
static int
take_look(struct redis *r, struct resp_val *rv, unsigned int n)
{
	char val[64];
	const char *s;
	uint64_t u;

	if (n != 3 || rv[0].type != RESP_BULK) {
		snprintf(r->why, sizeof(r->why), "INFO: %s",
		    n > 0 ? reply_error(&rv[0]) : "no reply");
		return -1;
	}
	if (resp_info_field(rv[0].str, "used_memory", val, sizeof(val)) ||
	    parse_u64(val, &r->used) == -1) {
		snprintf(r->why, sizeof(r->why), "INFO has no used_memory");
		return -1;
	}
	if (resp_info_field(rv[0].str, "process_id", val, sizeof(val)) == 0 &&
	    parse_u64(val, &u) == 0 && u > 0 && u < 0x7fffffff)
		r->pid = (pid_t)u;
	if (r->peer_pid > 0 && r->pid != r->peer_pid) {
		log_warnx("app %s: Redis says process_id %d, the socket's "
		    "peer is %d: measuring the peer", r->app->conf->name,
		    (int)r->pid, (int)r->peer_pid);
		r->pid = r->peer_pid;
	}
	if ((s = config_value(&rv[1])) == NULL || parse_u64(s, &u) == -1) {
		snprintf(r->why, sizeof(r->why), "CONFIG GET maxmemory: %s",
		    rv[1].type == RESP_ERROR ? rv[1].str : "not a number");
		return -1;
	}
	if (r->lowered && u != r->set) {
		log_info("app %s: maxmemory changed behind us (%s, we set %s):"
		    " not restoring it", r->app->conf->name, fmt_size((int64_t)u),
		    fmt_size((int64_t)r->set));
		r->lowered = 0;
	}
	r->maxmemory = u;
	if ((s = config_value(&rv[2])) == NULL || strlen(s) == 0 ||
	    strlen(s) >= sizeof(r->policy) || strspn(s,
	    "abcdefghijklmnopqrstuvwxyz-") != strlen(s)) {
		snprintf(r->why, sizeof(r->why), "CONFIG GET maxmemory-policy:"
		    " %s", rv[2].type == RESP_ERROR ? rv[2].str : "bad value");
		return -1;
	}
	snprintf(r->policy, sizeof(r->policy), "%s", s);
	r->known = 1;
	return 0;
}

static const char *const cmd_info[] = { "INFO", NULL };
static const char *const cmd_info_mem[] = { "INFO", "memory", NULL };
static const char *const cmd_getmax[] = { "CONFIG", "GET", "maxmemory", NULL };
static const char *const cmd_getpol[] = { "CONFIG", "GET", "maxmemory-policy",
	NULL };
static const char *const cmd_purge[] = { "MEMORY", "PURGE", NULL };

static void
look(struct redis *r, redis_step step)
{
	const char *const *cmds[] = { cmd_info, cmd_getmax, cmd_getpol };

	send_cmds(r, step, 3, cmds);
}

static void
set_maxmemory(struct redis *r, redis_step step, uint64_t v, int purge)
{
	char num[32];
	const char *const cmd_set[] = { "CONFIG", "SET", "maxmemory", num, NULL };
	const char *const *cmds[] = { cmd_set, cmd_purge };

	snprintf(num, sizeof(num), "%" PRIu64, v);
	send_cmds(r, step, purge ? 2 : 1, cmds);
}

static void
start_op(struct redis *r, enum redis_op op, uint64_t bytes)
{
	struct timeval tv;
	uint64_t ms = r->app->conf->deadline_ms;

	r->op = op;
	r->bytes = bytes;
	r->op_start = now_ms();
	r->expect = 0;
	r->auth_pending = 0;
	replies_free(r);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(r->ev_timeout, &tv);
}

/* ---- probe ---- */

static void
probe_looked(struct redis *r, struct resp_val *rv, unsigned int n)
{
	if (take_look(r, rv, n) == -1)
		return fail(r, r->why);
	op_end(r, 1, "looked");
}

static void
redis_probe(struct app *a)
{
	struct redis *r = R(a);

	if (r->op != ROP_NONE)
		return;
	start_op(r, ROP_PROBE, 0);
	look(r, probe_looked);
}

/* ---- shrink ---- */

static void shrink_check(struct redis *, struct resp_val *, unsigned int);

/*
 * INFO memory, with MEMORY PURGE every REDIS_PURGE_MS (a purge walks all of
 * jemalloc's arenas: done on every check it slows eviction down several
 * times over).
 */
static void
poll_cb(int fd, short what, void *arg)
{
	struct redis *r = arg;
	const char *const *cmds[] = { cmd_info_mem, cmd_purge };
	int purge = now_ms() >= r->last_purge + REDIS_PURGE_MS;

	(void)fd;
	(void)what;
	if (purge)
		r->last_purge = now_ms();
	send_cmds(r, shrink_check, purge ? 2 : 1, cmds);
}

static void
shrink_purged(struct redis *r, struct resp_val *rv, unsigned int n)
{
	(void)rv;
	(void)n;
	op_end(r, 1, "%s", r->why);
}

/* Until Redis is under its new limit, or the time is up. */
static void
shrink_check(struct redis *r, struct resp_val *rv, unsigned int n)
{
	struct timeval tv = { 0, REDIS_POLL_MS * 1000 };
	const char *const *cmds[] = { cmd_purge };
	char val[64];
	uint64_t used;

	if (n < 1 || rv[0].type != RESP_BULK ||
	    resp_info_field(rv[0].str, "used_memory", val, sizeof(val)) ||
	    parse_u64(val, &used) == -1)
		return fail(r, "INFO memory: no used_memory");
	replies_free(r);
	if (used <= r->target ||
	    now_ms() + REDIS_POLL_MS >= r->op_start + r->app->conf->deadline_ms) {
		snprintf(r->why, sizeof(r->why), "maxmemory %s -> %s (%s), "
		    "used_memory %s -> %s, MEMORY PURGE",
		    fmt_size((int64_t)r->maxmemory),
		    fmt_size((int64_t)r->target), r->policy,
		    fmt_size((int64_t)r->used), fmt_size((int64_t)used));
		if (n == 2)
			return op_end(r, 1, "%s", r->why);
		return send_cmds(r, shrink_purged, 1, cmds);
	}
	evtimer_add(r->ev_poll, &tv);
}

static void
shrink_set(struct redis *r, struct resp_val *rv, unsigned int n)
{
	if (n < 1 || rv[0].type != RESP_SIMPLE) {
		snprintf(r->why, sizeof(r->why), "CONFIG SET maxmemory: %s",
		    n > 0 ? reply_error(&rv[0]) : "no reply");
		return fail(r, r->why);
	}
	/* MEMORY PURGE fails without jemalloc: not a reason to stop */
	replies_free(r);
	r->set = r->target;
	r->last_purge = now_ms();
	poll_cb(-1, 0, r);
}

static void
shrink_looked(struct redis *r, struct resp_val *rv, unsigned int n)
{
	uint64_t from, floor = r->app->conf->floor;

	if (take_look(r, rv, n) == -1)
		return fail(r, r->why);
	replies_free(r);
	if (strcmp(r->policy, "noeviction") == 0)
		return op_end(r, 1, "maxmemory-policy noeviction: Redis cannot "
		    "evict, nothing freed");
	/* lower from what it holds: a limit far above that frees nothing */
	from = r->maxmemory != 0 && r->maxmemory < r->used ? r->maxmemory :
	    r->used;
	r->target = from > floor + r->bytes ? from - r->bytes : floor;
	if (r->maxmemory != 0 && r->target >= r->maxmemory)
		return op_end(r, 1, "maxmemory %s is at the floor %s",
		    fmt_size((int64_t)r->maxmemory), fmt_size((int64_t)floor));
	if (!r->lowered) {
		r->lowered = 1;
		r->orig = r->maxmemory;
		r->restore_at = r->orig != 0 ? r->orig : r->used;
	}
	app_baseline(r->app);
	set_maxmemory(r, shrink_set, r->target, 1);
}

static void
redis_shrink(struct app *a, uint64_t bytes)
{
	struct redis *r = R(a);

	abandon(r);
	start_op(r, ROP_SHRINK, bytes);
	look(r, shrink_looked);
}

/* ---- grow and restore ---- */

static void
grow_set(struct redis *r, struct resp_val *rv, unsigned int n)
{
	uint64_t was = r->set;

	if (n < 1 || rv[0].type != RESP_SIMPLE) {
		snprintf(r->why, sizeof(r->why), "CONFIG SET maxmemory: %s",
		    n > 0 ? reply_error(&rv[0]) : "no reply");
		return fail(r, r->why);
	}
	r->set = r->target;
	if (r->op == ROP_RESTORE || r->target == r->orig) {
		r->lowered = 0;
		return op_end(r, 1, "maxmemory %s -> %s (restored)",
		    fmt_size((int64_t)was), r->orig == 0 ? "0 (no limit)" :
		    fmt_size((int64_t)r->orig));
	}
	op_end(r, 1, "maxmemory %s -> %s", fmt_size((int64_t)was),
	    fmt_size((int64_t)r->target));
}

static void
redis_grow(struct app *a, uint64_t bytes)
{
	struct redis *r = R(a);

	abandon(r);
	if (!r->lowered)
		return app_action_done(a, 1, "nothing lowered");
	start_op(r, ROP_GROW, bytes);
	r->target = r->set + bytes >= r->restore_at ? r->orig : r->set + bytes;
	set_maxmemory(r, grow_set, r->target, 0);
}

static void
redis_restore(struct app *a)
{
	struct redis *r = R(a);

	abandon(r);
	if (!r->lowered)
		return app_action_done(a, 1, "nothing lowered");
	start_op(r, ROP_RESTORE, 0);
	r->target = r->orig;
	set_maxmemory(r, grow_set, r->target, 0);
}

static int
redis_lowered(struct app *a)
{
	return R(a)->lowered;
}

static pid_t
redis_pid(struct app *a)
{
	return R(a)->pid > 0 ? R(a)->pid : -1;
}

static int
redis_cannot_free(struct app *a)
{
	return R(a)->known && strcmp(R(a)->policy, "noeviction") == 0;
}

static int
redis_init(struct app *a)
{
	struct redis *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->app = a;
	r->ev_timeout = evtimer_new(a->base, timeout_cb, r);
	r->ev_poll = evtimer_new(a->base, poll_cb, r);
	if (r->ev_timeout == NULL || r->ev_poll == NULL) {
		free(r);
		return -1;
	}
	a->priv = r;
	return 0;
}

static void
redis_free(struct app *a)
{
	struct redis *r = R(a);

	redis_close(r);
	replies_free(r);
	event_free(r->ev_timeout);
	event_free(r->ev_poll);
	free(r);
	a->priv = NULL;
}

const struct adapter_ops redis_ops = {
	.name = "redis",
	.init = redis_init,
	.free = redis_free,
	.shrink = redis_shrink,
	.grow = redis_grow,
	.lowered = redis_lowered,
	.restore = redis_restore,
	.pid = redis_pid,
	.cannot_free = redis_cannot_free,
	.probe = redis_probe,
};
