// SPDX-License-Identifier: GPL-2.0-only
/*
 * Prometheus metrics in the text exposition format (version 0.0.4) over
 * HTTP on a loopback address, with libevent's evhttp: GET /metrics.
 * One series per guest for each guest figure, one per KSM figure.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "memcoopd.h"
#ifdef HAVE_KSM
#include "ksm.h"
#endif

struct metrics {
	struct evhttp	*http;
};

static void
help(struct evbuffer *b, const char *name, const char *type, const char *text)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text,
	    name, type);
}

/*
 * Guest names are [A-Za-z0-9._+-] when they come from the config or a
 * socket file name, but a libvirt domain name may hold anything: escape
 * label values as the format requires.
 */
static void
label(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

/* One series per guest of a uint64_t field of struct guest. */
static void
guest_series(struct evbuffer *b, struct memcoopd *md, const char *name,
    const char *type, const char *text, size_t off, uint32_t need_stat)
{
	struct guest *g;

	help(b, name, type, text);
	TAILQ_FOREACH(g, &md->guests, entry) {
		uint64_t v;

		if (need_stat != 0 && !(g->stats.valid & need_stat))
			continue;
		v = *(const uint64_t *)((const char *)g + off);
		evbuffer_add_printf(b, "%s{guest=\"", name);
		label(b, g->name);
		evbuffer_add_printf(b, "\"} %" PRIu64 "\n", v);
	}
}

static void
guest_value(struct evbuffer *b, const char *name, const struct guest *g,
    uint64_t v)
{
	evbuffer_add_printf(b, "%s{guest=\"", name);
	label(b, g->name);
	evbuffer_add_printf(b, "\"} %" PRIu64 "\n", v);
}

/*
 * The limits the policy works within (policy_limits(): the operator's
 * min/max or the defaults, clamped to what the guest has), for guests
 * whose size is known.
 */
static void
guest_limits(struct evbuffer *b, struct memcoopd *md)
{
	static const char *lo_name = "memcoop_guest_lower_limit_bytes";
	static const char *hi_name = "memcoop_guest_upper_limit_bytes";
	struct policy_guest pg;
	struct guest *g;
	uint64_t lo, hi;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		help(b, pass == 0 ? lo_name : hi_name, "gauge", pass == 0 ?
		    "lowest target the policy may set" :
		    "highest target the policy may set");
		TAILQ_FOREACH(g, &md->guests, entry) {
			guest_to_policy(g, &pg);
			if (policy_limits(&md->conf->pol, &pg, &lo, &hi) == -1)
				continue;
			guest_value(b, pass == 0 ? lo_name : hi_name, g,
			    pass == 0 ? lo : hi);
		}
	}
}

/* psi totals are in microseconds; seconds with microsecond precision */
static void
seconds_us(struct evbuffer *b, const char *name, uint64_t us)
{
	evbuffer_add_printf(b, "%s %" PRIu64 ".%06" PRIu64 "\n", name,
	    us / 1000000, us % 1000000);
}

void
metrics_render(struct memcoopd *md, struct evbuffer *b)
{
	static const enum guest_mode modes[] = { GMODE_AUTO, GMODE_FIXED,
	    GMODE_MANUAL };
	const struct host_stats *h = &md->host;
	struct guest *g;
	size_t i;

	help(b, "memcoop_up", "gauge", "memcoopd is running");
	evbuffer_add_printf(b, "memcoop_up 1\n");
	help(b, "memcoop_uptime_seconds", "gauge",
	    "seconds since memcoopd started");
	evbuffer_add_printf(b, "memcoop_uptime_seconds %.3f\n",
	    (double)(now_ms() - md->started) / 1000.0);
	help(b, "memcoop_ticks_total", "counter", "policy ticks run");
	evbuffer_add_printf(b, "memcoop_ticks_total %" PRIu64 "\n", md->ticks);
	help(b, "memcoop_target_changes_total", "counter",
	    "balloon targets changed by memcoopd, all guests");
	evbuffer_add_printf(b, "memcoop_target_changes_total %" PRIu64 "\n",
	    md->changes);
	help(b, "memcoop_auto_enabled", "gauge",
	    "1 if the automatic policy may move targets (auto yes)");
	evbuffer_add_printf(b, "memcoop_auto_enabled %d\n",
	    md->conf->auto_enabled != 0);
	if (h->valid_mem) {
		help(b, "memcoop_host_mem_available_bytes", "gauge",
		    "host MemAvailable");
		evbuffer_add_printf(b, "memcoop_host_mem_available_bytes %"
		    PRIu64 "\n", h->mem_available);
		help(b, "memcoop_host_mem_total_bytes", "gauge", "host MemTotal");
		evbuffer_add_printf(b, "memcoop_host_mem_total_bytes %" PRIu64
		    "\n", h->mem_total);
	}
	help(b, "memcoop_host_mem_floor_bytes", "gauge",
	    "configured floor of host MemAvailable (host-floor)");
	evbuffer_add_printf(b, "memcoop_host_mem_floor_bytes %" PRIu64 "\n",
	    md->conf->pol.host_floor);
	help(b, "memcoop_host_mem_comfort_bytes", "gauge",
	    "host MemAvailable above which guests may grow (host-comfort)");
	evbuffer_add_printf(b, "memcoop_host_mem_comfort_bytes %" PRIu64 "\n",
	    md->conf->pol.host_comfort);
	if (h->valid_psi) {
		/* the kernel's own counters; rate() of them is the stall share */
		help(b, "memcoop_host_psi_memory_some_seconds_total", "counter",
		    "time some host task stalled on memory (PSI some total)");
		seconds_us(b, "memcoop_host_psi_memory_some_seconds_total",
		    h->psi_some_total);
		help(b, "memcoop_host_psi_memory_full_seconds_total", "counter",
		    "time all non-idle host tasks stalled on memory (PSI full "
		    "total)");
		seconds_us(b, "memcoop_host_psi_memory_full_seconds_total",
		    h->psi_full_total);
	}

	help(b, "memcoop_guest_online", "gauge", "guest connected (1) or not");
	TAILQ_FOREACH(g, &md->guests, entry)
		guest_value(b, "memcoop_guest_online", g,
		    g->state == GUEST_ONLINE);
	/* a state set: one series per mode, always all three */
	help(b, "memcoop_guest_mode", "gauge",
	    "1 for the guest's mode (auto, fixed, manual), 0 for the others");
	TAILQ_FOREACH(g, &md->guests, entry)
		for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
			evbuffer_add_printf(b, "memcoop_guest_mode{guest=\"");
			label(b, g->name);
			evbuffer_add_printf(b, "\",mode=\"%s\"} %d\n",
			    guest_mode_name(modes[i]), g->set.mode == modes[i]);
		}
	help(b, "memcoop_guest_weight", "gauge",
	    "the guest's weight (1..1000) when memory is shared out");
	TAILQ_FOREACH(g, &md->guests, entry)
		guest_value(b, "memcoop_guest_weight", g, g->set.weight);
	guest_series(b, md, "memcoop_guest_target_changes_total", "counter",
	    "balloon targets memcoopd set for this guest",
	    offsetof(struct guest, changes), 0);
	guest_limits(b, md);
	guest_series(b, md, "memcoop_guest_target_bytes", "gauge",
	    "balloon target set by memcoopd (0 = none)",
	    offsetof(struct guest, target), 0);
	guest_series(b, md, "memcoop_guest_actual_bytes", "gauge",
	    "guest memory size now (balloon actual)",
	    offsetof(struct guest, actual), 0);
	guest_series(b, md, "memcoop_guest_maxmem_bytes", "gauge",
	    "guest memory at boot", offsetof(struct guest, maxmem), 0);
	guest_series(b, md, "memcoop_guest_usable_bytes", "gauge",
	    "guest MemAvailable as the balloon reports it",
	    offsetof(struct guest, stats.avail), GST_AVAIL);
	guest_series(b, md, "memcoop_guest_free_bytes", "gauge",
	    "guest free memory", offsetof(struct guest, stats.free), GST_FREE);
	guest_series(b, md, "memcoop_guest_swap_in_bytes_total", "counter",
	    "guest bytes swapped in", offsetof(struct guest, stats.swap_in),
	    GST_SWAP_IN);
	guest_series(b, md, "memcoop_guest_swap_out_bytes_total", "counter",
	    "guest bytes swapped out", offsetof(struct guest, stats.swap_out),
	    GST_SWAP_OUT);
	guest_series(b, md, "memcoop_guest_major_faults_total", "counter",
	    "guest major page faults", offsetof(struct guest, stats.majflt),
	    GST_MAJFLT);
	guest_series(b, md, "memcoop_guest_oom_kills_total", "counter",
	    "OOM kills in the guest (when its balloon reports them)",
	    offsetof(struct guest, stats.oom_kills), GST_OOM_KILLS);
	guest_series(b, md, "memcoop_guest_ksm_saving_bytes", "gauge",
	    "memory KSM saves in this guest (ksm_merging_pages)",
	    offsetof(struct guest, ksm_saving), 0);

#ifdef HAVE_KSM
	if (md->ksm != NULL) {
		struct ksm_status ks;

		if (ksm_get_status(md->ksm, &ks) == 0) {
			help(b, "memcoop_ksm_mode", "gauge",
			    "KSM mode: 0 off, 1 on, 2 auto");
			evbuffer_add_printf(b, "memcoop_ksm_mode %d\n",
			    (int)ks.mode);
			help(b, "memcoop_ksm_run", "gauge", "ksmd running");
			evbuffer_add_printf(b, "memcoop_ksm_run %d\n", ks.run);
#define KSM_METRIC(n, type, fmt, val, text) do {			\
			help(b, "memcoop_ksm_" n, type, text);		\
			evbuffer_add_printf(b, "memcoop_ksm_" n " " fmt "\n", \
			    val);					\
		} while (0)
#define KSM_GAUGE(n, field, text)					\
			KSM_METRIC(n, "gauge", "%" PRIu64,		\
			    (uint64_t)ks.field, text)
			KSM_GAUGE("pages_shared", pages_shared,
			    "KSM pages shared");
			KSM_GAUGE("pages_sharing", pages_sharing,
			    "KSM pages sharing (saved)");
			KSM_GAUGE("pages_unshared", pages_unshared,
			    "KSM pages unique, scanned repeatedly");
			KSM_GAUGE("pages_volatile", pages_volatile,
			    "KSM pages changing too fast");
			KSM_METRIC("full_scans_total", "counter",
			    "%" PRIu64, (uint64_t)ks.full_scans,
			    "KSM full scans since boot");
			KSM_GAUGE("pages_to_scan", pages_to_scan,
			    "ksmd pages per batch");
			KSM_METRIC("sleep_seconds", "gauge", "%.3f",
			    (double)ks.sleep_millisecs / 1000.0,
			    "ksmd sleep between batches");
			KSM_GAUGE("saving_bytes", saving_bytes,
			    "memory KSM saves now");
			KSM_GAUGE("estimate_bytes", estimate_bytes,
			    "last user-space estimate of the saving");
			KSM_METRIC("ksmd_cpu_seconds_total", "counter",
			    "%.3f", (double)ks.ksmd_cpu_ms / 1000.0,
			    "CPU time ksmd used");
			KSM_METRIC("estimate_duration_seconds", "gauge",
			    "%.3f", (double)ks.estimate_ms / 1000.0,
			    "how long the last user-space estimate took");
#undef KSM_GAUGE
#undef KSM_METRIC
		}
	}
#endif
}

static void
metrics_cb(struct evhttp_request *req, void *arg)
{
	struct memcoopd *md = arg;
	struct evbuffer *b;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, "Out of memory");
		return;
	}
	metrics_render(md, b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
notfound_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, 404, "Not Found: try /metrics");
}

int
metrics_init(struct memcoopd *md, const char *addr, uint16_t port)
{
	struct metrics *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -1;
	if ((m->http = evhttp_new(md->base)) == NULL) {
		free(m);
		return -1;
	}
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_cb(m->http, "/metrics", metrics_cb, md);
	evhttp_set_gencb(m->http, notfound_cb, md);
	if (evhttp_bind_socket(m->http, addr, port) == -1) {
		log_warnx("metrics: cannot bind %s:%u", addr, port);
		evhttp_free(m->http);
		free(m);
		return -1;
	}
	md->metrics = m;
	log_info("metrics on http://%s:%u/metrics", addr, port);
	return 0;
}

void
metrics_close(struct memcoopd *md)
{
	if (md->metrics == NULL)
		return;
	evhttp_free(md->metrics->http);
	free(md->metrics);
	md->metrics = NULL;
}
