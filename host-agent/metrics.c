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

void
metrics_render(struct memcoopd *md, struct evbuffer *b)
{
	const struct host_stats *h = &md->host;
	struct guest *g;

	help(b, "memcoop_up", "gauge", "memcoopd is running");
	evbuffer_add_printf(b, "memcoop_up 1\n");
	help(b, "memcoop_ticks_total", "counter", "policy ticks run");
	evbuffer_add_printf(b, "memcoop_ticks_total %" PRIu64 "\n", md->ticks);
	help(b, "memcoop_target_changes_total", "counter",
	    "balloon targets changed by memcoopd");
	evbuffer_add_printf(b, "memcoop_target_changes_total %" PRIu64 "\n",
	    md->changes);
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
	    "configured floor of host MemAvailable");
	evbuffer_add_printf(b, "memcoop_host_mem_floor_bytes %" PRIu64 "\n",
	    md->conf->pol.host_floor);
	if (h->valid_psi) {
		help(b, "memcoop_host_psi_memory_some_avg10", "gauge",
		    "host memory pressure, some, avg10 (percent)");
		evbuffer_add_printf(b, "memcoop_host_psi_memory_some_avg10 %.2f\n",
		    h->psi_some_avg10);
		help(b, "memcoop_host_psi_memory_full_avg10", "gauge",
		    "host memory pressure, full, avg10 (percent)");
		evbuffer_add_printf(b, "memcoop_host_psi_memory_full_avg10 %.2f\n",
		    h->psi_full_avg10);
	}

	help(b, "memcoop_guest_online", "gauge", "guest connected (1) or not");
	TAILQ_FOREACH(g, &md->guests, entry) {
		evbuffer_add_printf(b, "memcoop_guest_online{guest=\"");
		label(b, g->name);
		evbuffer_add_printf(b, "\",mode=\"%s\"} %d\n",
		    guest_mode_name(g->set.mode), g->state == GUEST_ONLINE);
	}
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
#define KSM_GAUGE(n, field, text) do {					\
			help(b, "memcoop_ksm_" n, "gauge", text);	\
			evbuffer_add_printf(b, "memcoop_ksm_" n " %" PRIu64 "\n", \
			    (uint64_t)ks.field);			\
		} while (0)
			KSM_GAUGE("pages_shared", pages_shared,
			    "KSM pages shared");
			KSM_GAUGE("pages_sharing", pages_sharing,
			    "KSM pages sharing (saved)");
			KSM_GAUGE("pages_unshared", pages_unshared,
			    "KSM pages unique, scanned repeatedly");
			KSM_GAUGE("pages_volatile", pages_volatile,
			    "KSM pages changing too fast");
			KSM_GAUGE("full_scans", full_scans, "KSM full scans");
			KSM_GAUGE("pages_to_scan", pages_to_scan,
			    "ksmd pages per batch");
			KSM_GAUGE("sleep_millisecs", sleep_millisecs,
			    "ksmd sleep between batches");
			KSM_GAUGE("saving_bytes", saving_bytes,
			    "memory KSM saves now");
			KSM_GAUGE("estimate_bytes", estimate_bytes,
			    "last user-space estimate of the saving");
			KSM_GAUGE("ksmd_cpu_ms", ksmd_cpu_ms,
			    "CPU time ksmd used");
#undef KSM_GAUGE
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
