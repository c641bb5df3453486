/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virt.c: the libvirt backend.
 *
 * Any connection URI (default qemu:///system).  Domains whose live XML has
 * a virtio <memballoon> become guests (a domain without one is logged once
 * and left alone).  Lifecycle events keep the list current: started and
 * resumed domains are added, stopped and crashed ones go offline (a
 * transient domain, which libvirt forgets when it stops, is removed), a
 * defined domain that is not running is listed offline, an undefined one is
 * removed.  For each guest the stats period is set
 * (virDomainSetMemoryStatsPeriod); every tick one bulk
 * virConnectGetAllDomainStats(VIR_DOMAIN_STATS_BALLOON, NOWAIT) brings the
 * stats and balloon sizes of all guests (NOWAIT: a domain whose job is held
 * reports only what needs no job, and holds up nobody); BALLOON_CHANGE
 * events update the size in between; targets go out through
 * virDomainSetMemoryFlags(VIR_DOMAIN_AFFECT_LIVE).
 *
 * Threads.  No libvirt call that waits for libvirtd runs in the daemon's
 * loop.  libvirt's own event loop (virEventRegisterDefaultImpl) runs in a
 * thread of its own and delivers the domain events and the close callback
 * there; those only post a message.  Blocking calls are jobs on two
 * queues: the connection queue (one thread: open, discovery, describing a
 * started domain, the bulk stats, close) and the domain queue
 * (VIRT_DOM_WORKERS threads: setmem, stats period), where a domain has at
 * most one job at a time and a newer target replaces one not yet sent.  A
 * finished job and every event come back to the loop through a pipe, and
 * only the loop touches the guest list, the domain list and v->conn.  A
 * call that never returns (a libvirtd that accepts and never answers, a
 * QEMU that does not) occupies its thread and nothing else: the loop,
 * the other guests' ticks, the control socket, /metrics and SIGTERM go on.
 * Nothing waits on a worker without a bound: the connection queue takes no
 * new stats job while one is outstanding, and shutdown waits at most
 * VIRT_DRAIN_MS for targets still queued.
 *
 * Reconnection.  virConnectRegisterCloseCallback (with keepalive, so a
 * libvirtd that hangs counts as gone) tells us the connection died; every
 * guest goes offline (keeping the operator's settings) and a timer retries
 * the connection with a backoff from 0.5 s doubling to 8 s.  A connection
 * attempt that does not complete within VIRT_OPEN_WARN_MS is logged; it
 * cannot be cancelled, so no second one starts until it returns.  After
 * reconnecting the domains are discovered again.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "log.h"
#include "memcoopd.h"

#define VIRT_BACKOFF_MIN	500
#define VIRT_BACKOFF_MAX	8000
#define VIRT_KEEPALIVE_S	5
#define VIRT_KEEPALIVE_COUNT	3
#define VIRT_DOM_WORKERS	4	/* setmem for this many domains at once */
#define VIRT_DRAIN_MS		5000	/* shutdown waits this for targets */
#define VIRT_OPEN_WARN_MS	10000	/* a connect that takes this long */
#define VIRT_STATS_WARN_MS	10000	/* a bulk stats call outstanding */

/* Pure helpers, also used by the unit tests. */
int	virt_xml_has_virtio_balloon(const char *xml);
int	virt_cmdline_is_guest(const char *cmdline, size_t len, const char *name);
void	virt_convert_stats(const virDomainMemoryStatStruct *st, int n,
	    struct guest_stats *gs, uint64_t *actual);
int	virt_typed_to_memstats(const virTypedParameter *par, int n,
	    virDomainMemoryStatStruct *st, int max);

/* ------------------------------------------------------------------ */
/* Pure helpers */

/*
 * Does the domain XML have <memballoon model='virtio'> (or a transitional
 * variant)?  model='none' or no memballoon element: no.
 */
int
virt_xml_has_virtio_balloon(const char *xml)
{
	const char *p = xml, *end, *m;
	char q;

	while ((p = strstr(p, "<memballoon")) != NULL) {
		p += strlen("<memballoon");
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '>' &&
		    *p != '/')
			continue;
		end = strchr(p, '>');
		if (end == NULL)
			return 0;
		for (m = p; (m = strstr(m, "model=")) != NULL && m < end; m += 6) {
			if (m[-1] != ' ' && m[-1] != '\t' && m[-1] != '\n')
				continue;
			q = m[6];
			if (q != '\'' && q != '"')
				return 0;
			if (strncmp(m + 7, "virtio", 6) == 0 &&
			    (m[13] == q || m[13] == '-'))
				return 1;
			return 0;
		}
		return 0;
	}
	return 0;
}

/* Is this QEMU command line (NUL-separated) libvirt's for domain @name? */
int
virt_cmdline_is_guest(const char *cmd, size_t len, const char *name)
{
	const char *p = cmd, *end = cmd + len, *arg;
	size_t nlen = strlen(name);

	while (p < end) {
		arg = p;
		p = memchr(p, '\0', (size_t)(end - p));
		if (p == NULL)
			return 0;
		p++;
		if (strcmp(arg, "-name") != 0 || p >= end)
			continue;
		/* -name guest=NAME,debug-threads=on or -name NAME */
		if (strncmp(p, "guest=", 6) == 0)
			p += 6;
		if ((size_t)(end - p) > nlen && strncmp(p, name, nlen) == 0 &&
		    (p[nlen] == '\0' || p[nlen] == ','))
			return 1;
		return 0;
	}
	return 0;
}

/* libvirt's memory stats (KiB, counts) to the daemon's (bytes, counts). */
void
virt_convert_stats(const virDomainMemoryStatStruct *st, int n,
    struct guest_stats *gs, uint64_t *actual)
{
	int i;

	memset(gs, 0, sizeof(*gs));
	*actual = 0;
	for (i = 0; i < n; i++) {
		unsigned long long v = st[i].val;
		unsigned long long kib = v > UINT64_MAX / 1024 ? UINT64_MAX / 1024 : v;

		switch (st[i].tag) {
		case VIR_DOMAIN_MEMORY_STAT_SWAP_IN:
			gs->swap_in = kib * 1024;
			gs->valid |= GST_SWAP_IN;
			break;
		case VIR_DOMAIN_MEMORY_STAT_SWAP_OUT:
			gs->swap_out = kib * 1024;
			gs->valid |= GST_SWAP_OUT;
			break;
		case VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT:
			gs->majflt = v;
			gs->valid |= GST_MAJFLT;
			break;
		case VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT:
			gs->minflt = v;
			gs->valid |= GST_MINFLT;
			break;
		case VIR_DOMAIN_MEMORY_STAT_UNUSED:
			gs->free = kib * 1024;
			gs->valid |= GST_FREE;
			break;
		case VIR_DOMAIN_MEMORY_STAT_AVAILABLE:
			gs->total = kib * 1024;
			gs->valid |= GST_TOTAL;
			break;
		case VIR_DOMAIN_MEMORY_STAT_USABLE:
			gs->avail = kib * 1024;
			gs->valid |= GST_AVAIL;
			break;
		case VIR_DOMAIN_MEMORY_STAT_DISK_CACHES:
			gs->caches = kib * 1024;
			gs->valid |= GST_CACHES;
			break;
		case VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE:
			gs->guest_time = v;
			break;
		case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON:
			*actual = kib * 1024;
			break;
		default:
			break;
		}
	}
	/*
	 * Without a stats period QEMU reports nothing but the balloon, and a
	 * guest that never answered reports a last-update of 0: no stats.
	 */
	if ((gs->valid & (GST_FREE | GST_TOTAL | GST_AVAIL)) == 0)
		gs->valid = 0;
}


/*
 * The balloon group of a bulk stats record ("balloon.current", ...; KiB
 * and counts) as the memory stats virt_convert_stats() takes.  Returns how
 * many were stored (at most @max).
 */
int
virt_typed_to_memstats(const virTypedParameter *par, int n,
    virDomainMemoryStatStruct *st, int max)
{
	static const struct {
		const char	*field;
		int		 tag;
	} map[] = {
		{ "balloon.current",	VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON },
		{ "balloon.swap_in",	VIR_DOMAIN_MEMORY_STAT_SWAP_IN },
		{ "balloon.swap_out",	VIR_DOMAIN_MEMORY_STAT_SWAP_OUT },
		{ "balloon.major_fault", VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT },
		{ "balloon.minor_fault", VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT },
		{ "balloon.unused",	VIR_DOMAIN_MEMORY_STAT_UNUSED },
		{ "balloon.available",	VIR_DOMAIN_MEMORY_STAT_AVAILABLE },
		{ "balloon.usable",	VIR_DOMAIN_MEMORY_STAT_USABLE },
		{ "balloon.disk_caches", VIR_DOMAIN_MEMORY_STAT_DISK_CACHES },
		{ "balloon.last-update", VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE },
	};
	int i, out = 0;
	size_t k;

	for (i = 0; i < n && out < max; i++) {
		unsigned long long v;

		switch (par[i].type) {
		case VIR_TYPED_PARAM_ULLONG:
			v = par[i].value.ul;
			break;
		case VIR_TYPED_PARAM_LLONG:
			v = par[i].value.l < 0 ? 0 : (unsigned long long)par[i].value.l;
			break;
		case VIR_TYPED_PARAM_UINT:
			v = par[i].value.ui;
			break;
		default:
			continue;
		}
		for (k = 0; k < sizeof(map) / sizeof(map[0]); k++)
			if (strcmp(par[i].field, map[k].field) == 0) {
				st[out].tag = map[k].tag;
				st[out].val = v;
				out++;
				break;
			}
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* The backend */

struct vdom {
	TAILQ_ENTRY(vdom)	 entry;
	struct virt		*v;
	virDomainPtr		 dom;		/* NULL while offline */
	struct guest		*g;
	char			 name[GUEST_NAME_MAX];
	int			 persistent;
	int			 seen;		/* mark for a rediscovery */
	int			 busy;		/* a domain-queue job is out */
	uint64_t		 want;		/* target waiting for it; 0 none */
	uint64_t		 want_prev;	/* g->target when it was set */
};
TAILQ_HEAD(vdomlist, vdom);

enum vjk {
	VJ_CONNECT = 1,	/* open, subscribe, discover */
	VJ_DESCRIBE,	/* a started domain: XML, sizes */
	VJ_STATS,	/* the bulk stats of every running domain */
	VJ_CLOSE,	/* deregister and close a connection */
	VJ_SETMEM,	/* a target */
	VJ_PERIOD,	/* the stats period */
	VJ_EVENT,	/* not a job: a libvirt event for the loop */
};

/* A domain as a job found it (filled off the loop). */
struct vdesc {
	char			 name[GUEST_NAME_MAX];
	virDomainPtr		 dom;		/* a reference the result owns */
	int			 active;
	int			 persistent;
	int			 balloon;	/* virtio memballoon in the XML */
	uint64_t		 maxmem;	/* bytes, 0 unknown */
	uint64_t		 actual;
	char			 err[128];	/* no XML: why */
};

struct vstat {
	char			 name[GUEST_NAME_MAX];
	struct guest_stats	 gs;
	uint64_t		 actual;
};

struct vjob {
	TAILQ_ENTRY(vjob)	 entry;
	enum vjk		 kind;
	virConnectPtr		 conn;		/* a reference the job owns */
	virDomainPtr		 dom;		/* likewise */
	char			 name[GUEST_NAME_MAX];
	uint64_t		 bytes, prev;	/* VJ_SETMEM */
	int			 period;	/* VJ_PERIOD */
	int			 event, detail;	/* VJ_EVENT: lifecycle */
	int			 ev_kind;	/* VJ_EVENT: VE_* */
	unsigned long long	 balloon_kib;	/* VJ_EVENT: VE_BALLOON */
	/* results */
	int			 rc;
	char			 err[256];
	int			 cb_life, cb_balloon;	/* VJ_CONNECT */
	struct vdesc		*descs;
	int			 ndescs;
	struct vstat		*stats;
	int			 nstats;
};
TAILQ_HEAD(vjoblist, vjob);

enum { VE_LIFE = 1, VE_BALLOON, VE_CLOSE };

/* One queue of jobs and its threads. */
struct vqueue {
	struct virt		*v;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cv;		/* a job, or stop */
	pthread_cond_t		 idle;		/* a job finished */
	struct vjoblist		 jobs;
	unsigned int		 running;	/* jobs being done */
	int			 stop;
};

struct virt {
	struct memcoopd		*md;
	const struct config	*conf;
	char			*uri;
	virConnectPtr		 conn;		/* loop only */
	int			 cb_life;	/* event callback ids, -1 none */
	int			 cb_balloon;
	struct event		*retry;
	struct event		*ev_check;	/* logs calls that do not return */
	int			 backoff;	/* ms */
	int			 was_down;	/* log the recovery */
	int			 closing;
	int			 connecting;	/* a VJ_CONNECT is out */
	uint64_t		 connect_since;	/* ms */
	int			 connect_warned;
	int			 stats_out;	/* a VJ_STATS is out */
	uint64_t		 stats_since;	/* ms */
	int			 stats_warned;
	uint64_t		 stats_tick;	/* md->ticks of the last one */
	unsigned int		 gen;		/* connection generation */
	struct vdomlist		 doms;
	char			**ignored;	/* domains without a balloon */
	size_t			 nignored;

	struct vqueue		 qconn, qdom;
	/* finished jobs and events, for the loop */
	pthread_mutex_t		 done_lock;
	struct vjoblist		 done;
	int			 pipe[2];
	struct event		*ev_done;
};

static void	virt_schedule_retry(struct virt *);
static void	close_cb(virConnectPtr, int, void *);
static int	life_cb(virConnectPtr, virDomainPtr, int, int, void *);
static void	balloon_cb(virConnectPtr, virDomainPtr, unsigned long long,
		    void *);
static void	dom_kick(struct virt *, struct vdom *);

static const char *
verr(void)
{
	virErrorPtr e = virGetLastError();

	return e != NULL && e->message != NULL ? e->message : "unknown error";
}

/* libvirt prints errors to stderr by default; route them to our log. */
static void
verr_handler(void *opaque, virErrorPtr e)
{
	(void)opaque;
	if (e != NULL && e->message != NULL)
		log_debug("libvirt: %s", e->message);
}

/* ------------------------------------------------------------------ */
/* Jobs: the part that runs off the loop */

static void
post_done(struct virt *v, struct vjob *j)
{
	char c = 0;

	pthread_mutex_lock(&v->done_lock);
	TAILQ_INSERT_TAIL(&v->done, j, entry);
	pthread_mutex_unlock(&v->done_lock);
	/* the pipe is non-blocking: if it is full the loop wakes anyway */
	if (write(v->pipe[1], &c, 1) == -1 && errno != EAGAIN)
		(void)0;
}

/* Describe @dom (a reference @d takes over); RPCs, off the loop. */
static void
describe(virDomainPtr dom, struct vdesc *d)
{
	unsigned long maxkib;
	virDomainInfo info;
	const char *name = virDomainGetName(dom);
	char *xml;

	memset(d, 0, sizeof(*d));
	d->dom = dom;
	if (name == NULL || strlen(name) >= GUEST_NAME_MAX) {
		snprintf(d->err, sizeof(d->err), "domain name too long: %.64s",
		    name != NULL ? name : "?");
		return;
	}
	strcpy(d->name, name);
	d->active = virDomainIsActive(dom) == 1;
	d->persistent = virDomainIsPersistent(dom) == 1;
	if (!d->active)
		return;
	if ((xml = virDomainGetXMLDesc(dom, 0)) == NULL) {
		snprintf(d->err, sizeof(d->err), "no XML: %s", verr());
		return;
	}
	d->balloon = virt_xml_has_virtio_balloon(xml);
	free(xml);
	if ((maxkib = virDomainGetMaxMemory(dom)) != 0)
		d->maxmem = (uint64_t)maxkib * 1024;
	if (virDomainGetInfo(dom, &info) == 0 && info.memory > 0)
		d->actual = (uint64_t)info.memory * 1024;
}

static void
job_connect(struct virt *v, struct vjob *j)
{
	virDomainPtr *doms = NULL;
	int i, n;

	j->cb_life = j->cb_balloon = -1;
	j->conn = virConnectOpen(v->uri);
	if (j->conn == NULL) {
		snprintf(j->err, sizeof(j->err), "%s", verr());
		j->rc = -1;
		return;
	}
	if (virConnectSetKeepAlive(j->conn, VIRT_KEEPALIVE_S,
	    VIRT_KEEPALIVE_COUNT) == -1)
		log_debug("libvirt: no keepalive: %s", verr());
	if (virConnectRegisterCloseCallback(j->conn, close_cb, v, NULL) == -1)
		log_warnx("libvirt: no close callback (%s): a libvirtd restart "
		    "will not be noticed", verr());
	n = virConnectListAllDomains(j->conn, &doms, 0);
	if (n < 0) {
		log_warnx("libvirt: cannot list domains: %s", verr());
		n = 0;		/* events will tell */
	}
	j->descs = calloc((size_t)(n > 0 ? n : 1), sizeof(*j->descs));
	for (i = 0; i < n; i++) {
		if (j->descs == NULL) {
			virDomainFree(doms[i]);
			continue;
		}
		describe(doms[i], &j->descs[j->ndescs++]);
	}
	free(doms);
	/* subscribed last: an event is then about a domain listed above or
	 * newer than the list */
	j->cb_life = virConnectDomainEventRegisterAny(j->conn, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(life_cb),
	    v, NULL);
	if (j->cb_life == -1)
		log_warnx("libvirt: no lifecycle events: %s", verr());
	j->cb_balloon = virConnectDomainEventRegisterAny(j->conn, NULL,
	    VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
	    VIR_DOMAIN_EVENT_CALLBACK(balloon_cb), v, NULL);
	if (j->cb_balloon == -1)
		log_debug("libvirt: no balloon events: %s", verr());
}

static void
job_stats(struct vjob *j)
{
	virDomainStatsRecordPtr *recs = NULL;
	virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
	int i, n, ns;

	n = virConnectGetAllDomainStats(j->conn, VIR_DOMAIN_STATS_BALLOON,
	    &recs, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE |
	    VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
	if (n < 0) {
		snprintf(j->err, sizeof(j->err), "%s", verr());
		j->rc = -1;
		return;
	}
	j->stats = calloc((size_t)(n > 0 ? n : 1), sizeof(*j->stats));
	for (i = 0; i < n && j->stats != NULL; i++) {
		const char *name = virDomainGetName(recs[i]->dom);
		struct vstat *vs = &j->stats[j->nstats];

		if (name == NULL || strlen(name) >= GUEST_NAME_MAX)
			continue;
		strcpy(vs->name, name);
		ns = virt_typed_to_memstats(recs[i]->params, recs[i]->nparams,
		    st, VIR_DOMAIN_MEMORY_STAT_NR);
		virt_convert_stats(st, ns, &vs->gs, &vs->actual);
		j->nstats++;
	}
	virDomainStatsRecordListFree(recs);
}

static void
job_run(struct virt *v, struct vjob *j)
{
	switch (j->kind) {
	case VJ_CONNECT:
		job_connect(v, j);
		break;
	case VJ_DESCRIBE:
		j->descs = calloc(1, sizeof(*j->descs));
		if (j->descs != NULL) {
			describe(j->dom, j->descs);
			j->dom = NULL;		/* the description owns it */
			j->ndescs = 1;
		}
		break;
	case VJ_STATS:
		job_stats(j);
		break;
	case VJ_CLOSE:
		if (j->cb_life >= 0)
			virConnectDomainEventDeregisterAny(j->conn, j->cb_life);
		if (j->cb_balloon >= 0)
			virConnectDomainEventDeregisterAny(j->conn,
			    j->cb_balloon);
		virConnectUnregisterCloseCallback(j->conn, close_cb);
		break;
	case VJ_SETMEM:
		if (virDomainSetMemoryFlags(j->dom, (unsigned long)(j->bytes /
		    1024), VIR_DOMAIN_AFFECT_LIVE) == -1) {
			snprintf(j->err, sizeof(j->err), "%s", verr());
			j->rc = -1;
		}
		break;
	case VJ_PERIOD:
		if (virDomainSetMemoryStatsPeriod(j->dom, j->period,
		    VIR_DOMAIN_AFFECT_LIVE) == -1) {
			snprintf(j->err, sizeof(j->err), "%s", verr());
			j->rc = -1;
		}
		break;
	case VJ_EVENT:
		break;
	}
	/*
	 * Drop the job's references here, not in the loop: the last one to
	 * go closes the connection, which is a call to libvirtd.
	 */
	if (j->kind != VJ_CONNECT && j->conn != NULL) {
		virConnectClose(j->conn);
		j->conn = NULL;
	}
	if (j->dom != NULL) {
		virDomainFree(j->dom);
		j->dom = NULL;
	}
}

static void *
worker(void *arg)
{
	struct vqueue *q = arg;
	struct vjob *j;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (TAILQ_EMPTY(&q->jobs) && !q->stop)
			pthread_cond_wait(&q->cv, &q->lock);
		if (q->stop)
			break;
		j = TAILQ_FIRST(&q->jobs);
		TAILQ_REMOVE(&q->jobs, j, entry);
		q->running++;
		pthread_mutex_unlock(&q->lock);
		job_run(q->v, j);
		post_done(q->v, j);
		pthread_mutex_lock(&q->lock);
		q->running--;
		pthread_cond_broadcast(&q->idle);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* libvirt's event loop, for keepalive and the events. */
static void
noop_timer(int timer, void *opaque)
{
	(void)timer;
	(void)opaque;
}

static void *
event_thread(void *arg)
{
	(void)arg;
	for (;;)
		if (virEventRunDefaultImpl() == -1)
			usleep(100000);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* libvirt's callbacks: in its event thread, they only post */

static struct vjob *
event_job(int kind, virDomainPtr dom)
{
	struct vjob *j = calloc(1, sizeof(*j));
	const char *name;

	if (j == NULL)
		return NULL;
	j->kind = VJ_EVENT;
	j->ev_kind = kind;
	if (dom != NULL && (name = virDomainGetName(dom)) != NULL &&
	    strlen(name) < GUEST_NAME_MAX) {
		strcpy(j->name, name);
		virDomainRef(dom);
		j->dom = dom;
	}
	return j;
}

static int
life_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail,
    void *opaque)
{
	struct vjob *j;

	(void)conn;
	if ((j = event_job(VE_LIFE, dom)) == NULL)
		return 0;
	j->event = event;
	j->detail = detail;
	post_done(opaque, j);
	return 0;
}

static void
balloon_cb(virConnectPtr conn, virDomainPtr dom, unsigned long long actual,
    void *opaque)
{
	struct vjob *j;

	(void)conn;
	if ((j = event_job(VE_BALLOON, dom)) == NULL)
		return;
	j->balloon_kib = actual;
	post_done(opaque, j);
}

static void
close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct vjob *j;

	(void)conn;
	if ((j = event_job(VE_CLOSE, NULL)) == NULL)
		return;
	j->detail = reason;
	post_done(opaque, j);
}

/* ------------------------------------------------------------------ */
/* The loop's side */

static int
queue_job(struct virt *v, struct vqueue *q, struct vjob *j)
{
	pthread_mutex_lock(&q->lock);
	TAILQ_INSERT_TAIL(&q->jobs, j, entry);
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->lock);
	(void)v;
	return 0;
}

static struct vjob *
new_job(enum vjk kind, virConnectPtr conn, virDomainPtr dom)
{
	struct vjob *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		log_warn("%s", __func__);
		return NULL;
	}
	j->kind = kind;
	if (conn != NULL) {
		virConnectRef(conn);
		j->conn = conn;
	}
	if (dom != NULL) {
		virDomainRef(dom);
		j->dom = dom;
	}
	j->cb_life = j->cb_balloon = -1;
	return j;
}

static void
job_free(struct vjob *j)
{
	int i;

	for (i = 0; i < j->ndescs; i++)
		if (j->descs[i].dom != NULL)
			virDomainFree(j->descs[i].dom);
	free(j->descs);
	free(j->stats);
	if (j->dom != NULL)
		virDomainFree(j->dom);
	if (j->conn != NULL)
		virConnectClose(j->conn);	/* drops our reference */
	free(j);
}

static struct vdom *
vdom_find(struct virt *v, const char *name)
{
	struct vdom *d;

	TAILQ_FOREACH(d, &v->doms, entry)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static int
ignored(struct virt *v, const char *name, int add)
{
	char **n;
	size_t i;

	for (i = 0; i < v->nignored; i++)
		if (strcmp(v->ignored[i], name) == 0)
			return 1;
	if (!add)
		return 0;
	n = reallocarray(v->ignored, v->nignored + 1, sizeof(*n));
	if (n == NULL)
		return 0;
	v->ignored = n;
	if ((n[v->nignored] = strdup(name)) != NULL)
		v->nignored++;
	return 0;
}

/* QEMU's pid: libvirt's pid file, else the process with -name guest=NAME. */
static pid_t
find_qemu_pid(struct virt *v, const char *name)
{
	const char *procdir = v->conf->procdir ? v->conf->procdir : "/proc";
	char path[PATH_MAX], buf[8192];
	struct dirent *de;
	pid_t pid = 0;
	ssize_t n;
	DIR *dp;
	FILE *f;
	int fd;

	if (strncmp(v->uri, "qemu://", 7) != 0 &&
	    strncmp(v->uri, "qemu+unix://", 12) != 0)
		return 0;		/* remote or another driver: unknown */
	snprintf(path, sizeof(path), "/run/libvirt/qemu/%s.pid", name);
	if ((f = fopen(path, "re")) != NULL) {
		int p = 0;

		if (fscanf(f, "%d", &p) == 1 && p > 0)
			pid = (pid_t)p;
		fclose(f);
		if (pid > 0) {
			snprintf(path, sizeof(path), "%s/%d", procdir, (int)pid);
			if (access(path, F_OK) == 0)
				return pid;
			pid = 0;
		}
	}
	if ((dp = opendir(procdir)) == NULL)
		return 0;
	while (pid == 0 && (de = readdir(dp)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%s/cmdline", procdir, de->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, "qemu") != NULL &&
		    virt_cmdline_is_guest(buf, (size_t)n, name))
			pid = (pid_t)atoi(de->d_name);
	}
	closedir(dp);
	return pid;
}

static void
vdom_offline(struct virt *v, struct vdom *d, const char *why)
{
	if (d->dom != NULL) {
		virDomainFree(d->dom);
		d->dom = NULL;
	}
	d->want = 0;
	if (d->g != NULL && d->g->state == GUEST_ONLINE) {
		log_info("guest %s: %s", d->name, why);
		guest_offline(v->md, d->g);
	}
}

static void
vdom_remove(struct virt *v, struct vdom *d, const char *why)
{
	if (d->dom != NULL)
		virDomainFree(d->dom);
	if (d->g != NULL) {
		log_info("guest %s: %s", d->name, why);
		guest_remove(v->md, d->g);
	}
	/* a job still out for it comes back and finds no domain by name */
	TAILQ_REMOVE(&v->doms, d, entry);
	free(d);
}

static struct vdom *
vdom_new(struct virt *v, const char *name)
{
	struct vdom *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->v = v;
	snprintf(d->name, sizeof(d->name), "%s", name);
	TAILQ_INSERT_TAIL(&v->doms, d, entry);
	return d;
}

/* A defined domain that is not running: known, offline. */
static void
vdom_defined(struct virt *v, const char *name)
{
	struct vdom *d;
	struct guest *g;

	if (vdom_find(v, name) != NULL || (d = vdom_new(v, name)) == NULL)
		return;
	d->persistent = 1;
	if ((g = guest_add(v->md, name, &virt_backend, d)) == NULL) {
		TAILQ_REMOVE(&v->doms, d, entry);
		free(d);
		return;
	}
	d->g = g;
	guest_offline(v->md, g);
}

/* A running domain as described: a guest if it has a virtio balloon. */
static void
vdom_started(struct virt *v, struct vdesc *ds)
{
	struct vdom *d;
	struct vjob *j;

	if (ds->err[0] != '\0') {
		log_warnx("libvirt: domain %s: %s", ds->name[0] ? ds->name : "?",
		    ds->err);
		return;
	}
	if (!ds->balloon) {
		if (!ignored(v, ds->name, 1))
			log_info("libvirt: domain %s has no virtio memballoon: "
			    "not managed", ds->name);
		return;
	}
	if ((d = vdom_find(v, ds->name)) == NULL &&
	    (d = vdom_new(v, ds->name)) == NULL)
		return;
	if (d->dom != NULL)
		virDomainFree(d->dom);
	d->dom = ds->dom;		/* the reference moves to d */
	ds->dom = NULL;
	d->persistent = ds->persistent;
	d->g = guest_add(v->md, d->name, &virt_backend, d);
	if (d->g == NULL) {
		vdom_remove(v, d, "no memory");
		return;
	}
	if (ds->maxmem != 0)
		d->g->maxmem = ds->maxmem;
	if (ds->actual != 0)
		guest_update_actual(v->md, d->g, ds->actual);
	d->g->qemu_pid = find_qemu_pid(v, d->name);
	if (v->conf->stats_period > 0 &&
	    (j = new_job(VJ_PERIOD, NULL, d->dom)) != NULL) {
		j->period = (int)v->conf->stats_period;
		snprintf(j->name, sizeof(j->name), "%s", d->name);
		if (d->busy) {
			job_free(j);	/* rare: set at the next start */
		} else {
			d->busy = 1;
			queue_job(v, &v->qdom, j);
		}
	}
	log_info("guest %s: libvirt domain, %llu MiB, balloon at %llu MiB, "
	    "qemu pid %d", d->name, (unsigned long long)(d->g->maxmem / MIB),
	    (unsigned long long)(d->g->actual / MIB), (int)d->g->qemu_pid);
}

static const char *
life_name(int event)
{
	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:		return "defined";
	case VIR_DOMAIN_EVENT_UNDEFINED:	return "undefined";
	case VIR_DOMAIN_EVENT_STARTED:		return "started";
	case VIR_DOMAIN_EVENT_SUSPENDED:	return "suspended";
	case VIR_DOMAIN_EVENT_RESUMED:		return "resumed";
	case VIR_DOMAIN_EVENT_STOPPED:		return "stopped";
	case VIR_DOMAIN_EVENT_SHUTDOWN:		return "shutdown";
	case VIR_DOMAIN_EVENT_PMSUSPENDED:	return "pmsuspended";
	case VIR_DOMAIN_EVENT_CRASHED:		return "crashed";
	default:				return "?";
	}
}

/* A lifecycle event, in the loop. */
static void
on_life(struct virt *v, struct vjob *e)
{
	struct vdom *d = vdom_find(v, e->name);
	struct vjob *j;

	log_debug("libvirt: domain %s: event %s (detail %d)", e->name,
	    life_name(e->event), e->detail);
	switch (e->event) {
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		if (d != NULL && d->dom != NULL &&
		    e->event == VIR_DOMAIN_EVENT_RESUMED)
			break;		/* known and online: nothing new */
		if (v->conn != NULL &&
		    (j = new_job(VJ_DESCRIBE, NULL, e->dom)) != NULL) {
			j->rc = (int)v->gen;
			queue_job(v, &v->qconn, j);
		}
		break;
	case VIR_DOMAIN_EVENT_DEFINED:
		if (d == NULL)
			vdom_defined(v, e->name);
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		if (d != NULL)
			log_warnx("guest %s: crashed (detail %d)", e->name,
			    e->detail);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		if (d == NULL)
			break;
		if (e->detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED)
			log_warnx("guest %s: QEMU crashed", e->name);
		if (d->persistent)
			vdom_offline(v, d, "stopped");
		else
			vdom_remove(v, d, "stopped (transient domain)");
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		if (d != NULL && d->dom == NULL)
			vdom_remove(v, d, "undefined");
		else if (d != NULL)
			d->persistent = 0;	/* goes away when it stops */
		break;
	default:
		break;
	}
}

/* The connection is gone: guests offline, close it off the loop. */
static void
virt_disconnect(struct virt *v, const char *why)
{
	struct vdom *d;
	struct vjob *j;

	if (v->conn == NULL)
		return;
	TAILQ_FOREACH(d, &v->doms, entry)
		vdom_offline(v, d, why);
	if ((j = new_job(VJ_CLOSE, NULL, NULL)) != NULL) {
		j->conn = v->conn;	/* our reference moves to the job */
		j->cb_life = v->cb_life;
		j->cb_balloon = v->cb_balloon;
		queue_job(v, &v->qconn, j);
	} else {
		virConnectClose(v->conn);
	}
	v->conn = NULL;
	v->cb_life = v->cb_balloon = -1;
	v->gen++;
	v->stats_out = 0;	/* a late answer is for the old connection */
}

static void
connected(struct virt *v, struct vjob *j)
{
	struct vdom *d, *next;
	int i;

	v->connecting = 0;
	if (j->rc == -1) {
		if (!v->was_down)
			log_warnx("libvirt: cannot connect to %s: %s; retrying",
			    v->uri, j->err);
		v->was_down = 1;
		virt_schedule_retry(v);
		return;
	}
	if (v->closing)
		return;			/* done_cb() frees the job */
	v->conn = j->conn;
	j->conn = NULL;
	v->gen++;
	v->cb_life = j->cb_life;
	v->cb_balloon = j->cb_balloon;
	TAILQ_FOREACH(d, &v->doms, entry)
		d->seen = 0;
	for (i = 0; i < j->ndescs; i++) {
		struct vdesc *ds = &j->descs[i];

		if (ds->name[0] == '\0')
			continue;
		if (ds->active)
			vdom_started(v, ds);
		else
			vdom_defined(v, ds->name);
		if ((d = vdom_find(v, ds->name)) != NULL)
			d->seen = 1;
	}
	/* Domains that went away while we were not connected. */
	for (d = TAILQ_FIRST(&v->doms); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (!d->seen)
			vdom_remove(v, d, "gone while libvirt was away");
	}
	log_info("libvirt: %s %s, %d domain%s", v->was_down ? "reconnected to" :
	    "connected to", v->uri, j->ndescs, j->ndescs == 1 ? "" : "s");
	v->was_down = 0;
	v->backoff = VIRT_BACKOFF_MIN;
}

static void
stats_done(struct virt *v, struct vjob *j)
{
	struct vdom *d;
	int i;

	if ((unsigned int)j->period != v->gen)
		return;			/* for a connection since closed */
	v->stats_out = 0;
	if (v->stats_warned)
		log_info("libvirt: stats answered after %llu ms",
		    (unsigned long long)(now_ms() - v->stats_since));
	v->stats_warned = 0;
	if (j->rc == -1) {
		log_debug("libvirt: no stats: %s", j->err);
		return;
	}
	for (i = 0; i < j->nstats; i++) {
		struct vstat *vs = &j->stats[i];

		if ((d = vdom_find(v, vs->name)) == NULL || d->g == NULL ||
		    d->g->state != GUEST_ONLINE)
			continue;
		if (vs->actual > 0)
			guest_update_actual(v->md, d->g, vs->actual);
		if (vs->gs.valid != 0) {
			vs->gs.when = now_ms();
			guest_update_stats(v->md, d->g, &vs->gs);
		}
		if (d->g->qemu_pid == 0)
			d->g->qemu_pid = find_qemu_pid(v, d->name);
	}
}

/* Send @d's waiting target, if any and nothing else is out for it. */
static void
dom_kick(struct virt *v, struct vdom *d)
{
	struct vjob *j;

	if (d->busy || d->want == 0 || d->dom == NULL)
		return;
	if ((j = new_job(VJ_SETMEM, NULL, d->dom)) == NULL)
		return;
	snprintf(j->name, sizeof(j->name), "%s", d->name);
	j->bytes = d->want;
	j->prev = d->want_prev;
	d->want = 0;
	d->busy = 1;
	queue_job(v, &v->qdom, j);
}

static void
dom_done(struct virt *v, struct vjob *j)
{
	struct vdom *d = vdom_find(v, j->name);

	if (d == NULL)
		return;
	d->busy = 0;
	if (j->kind == VJ_SETMEM && j->rc == -1 && d->g != NULL) {
		log_warnx("guest %s: setmem %llu MiB failed: %s", d->name,
		    (unsigned long long)(j->bytes / MIB), j->err);
		guest_target_refused(v->md, d->g, j->bytes, j->prev, j->err);
	} else if (j->kind == VJ_PERIOD && j->rc == -1) {
		log_warnx("guest %s: cannot set the stats period: %s", d->name,
		    j->err);
	}
	dom_kick(v, d);
}

/* Everything the threads finished, in the loop. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct virt *v = arg;
	struct vjoblist list;
	struct vjob *j;
	char buf[256];
	int i;

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	TAILQ_INIT(&list);
	pthread_mutex_lock(&v->done_lock);
	TAILQ_CONCAT(&list, &v->done, entry);
	pthread_mutex_unlock(&v->done_lock);
	while ((j = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, j, entry);
		if (v->closing && j->kind != VJ_SETMEM) {
			job_free(j);
			continue;
		}
		switch (j->kind) {
		case VJ_CONNECT:
			connected(v, j);
			break;
		case VJ_DESCRIBE:
			if ((unsigned int)j->rc == v->gen && v->conn != NULL)
				for (i = 0; i < j->ndescs; i++)
					if (j->descs[i].active)
						vdom_started(v, &j->descs[i]);
			break;
		case VJ_STATS:
			stats_done(v, j);
			break;
		case VJ_SETMEM:
		case VJ_PERIOD:
			dom_done(v, j);
			break;
		case VJ_EVENT:
			if (j->ev_kind == VE_CLOSE) {
				static const char *const why[] = { "error",
				    "end of file", "keepalive timeout",
				    "client closed" };

				if (v->conn == NULL)
					break;
				log_warnx("libvirt: connection to %s closed "
				    "(%s); guests offline, reconnecting", v->uri,
				    j->detail >= 0 && j->detail < 4 ?
				    why[j->detail] : "unknown reason");
				v->was_down = 1;
				virt_disconnect(v, "libvirt connection lost");
				virt_schedule_retry(v);
			} else if (j->ev_kind == VE_LIFE && j->name[0]) {
				on_life(v, j);
			} else if (j->ev_kind == VE_BALLOON && j->name[0]) {
				struct vdom *d = vdom_find(v, j->name);

				if (d != NULL && d->g != NULL &&
				    d->g->state == GUEST_ONLINE)
					guest_update_actual(v->md, d->g,
					    j->balloon_kib * 1024);
			}
			break;
		case VJ_CLOSE:
			break;
		}
		job_free(j);
	}
}

static void
start_connect(struct virt *v)
{
	struct vjob *j;

	if (v->connecting || v->conn != NULL || v->closing)
		return;
	if ((j = new_job(VJ_CONNECT, NULL, NULL)) == NULL) {
		virt_schedule_retry(v);
		return;
	}
	v->connecting = 1;
	v->connect_since = now_ms();
	v->connect_warned = 0;
	queue_job(v, &v->qconn, j);
}

/* Say so when a call the loop is waiting for does not come back. */
static void
check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct virt *v = arg;
	uint64_t now = now_ms();

	(void)fd;
	(void)what;
	if (v->connecting && !v->connect_warned &&
	    now - v->connect_since > VIRT_OPEN_WARN_MS) {
		log_warnx("libvirt: connecting to %s for %llu s and counting: "
		    "libvirtd does not answer", v->uri,
		    (unsigned long long)((now - v->connect_since) / 1000));
		v->connect_warned = 1;
	}
	if (v->stats_out && !v->stats_warned &&
	    now - v->stats_since > VIRT_STATS_WARN_MS) {
		log_warnx("libvirt: the stats call has not returned for %llu s: "
		    "libvirtd is slow or stuck", (unsigned long long)
		    ((now - v->stats_since) / 1000));
		v->stats_warned = 1;
	}
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_connect(arg);
}

static void
virt_schedule_retry(struct virt *v)
{
	struct timeval tv;

	tv.tv_sec = v->backoff / 1000;
	tv.tv_usec = (v->backoff % 1000) * 1000;
	if (event_add(v->retry, &tv) == -1)
		log_warnx("%s: cannot arm the retry timer", __func__);
	v->backoff *= 2;
	if (v->backoff > VIRT_BACKOFF_MAX)
		v->backoff = VIRT_BACKOFF_MAX;
}

static int
queue_init(struct virt *v, struct vqueue *q, int nthreads)
{
	pthread_t t;
	int i;

	q->v = v;
	TAILQ_INIT(&q->jobs);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->idle, NULL);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&t, NULL, worker, q) != 0)
			return -1;
		pthread_detach(t);	/* one stuck in libvirt is never joined */
	}
	return 0;
}

static int
virt_init(struct memcoopd *md, const struct config *conf)
{
	static int event_impl_done;
	struct timeval check_tv = { 2, 0 };
	struct virt *v;
	pthread_t t;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -1;
	v->md = md;
	v->conf = conf;
	v->cb_life = v->cb_balloon = -1;
	v->backoff = VIRT_BACKOFF_MIN;
	TAILQ_INIT(&v->doms);
	TAILQ_INIT(&v->done);
	pthread_mutex_init(&v->done_lock, NULL);
	v->uri = strdup(conf->libvirt_uri != NULL ? conf->libvirt_uri :
	    "qemu:///system");
	if (v->uri == NULL)
		goto fail;
	virSetErrorFunc(NULL, verr_handler);
	if (virInitialize() == -1) {
		log_warnx("libvirt: virInitialize failed");
		goto fail;
	}
	if (!event_impl_done) {
		/* Once per process, before the first connection. */
		if (virEventRegisterDefaultImpl() == -1 ||
		    virEventAddTimeout(500, noop_timer, NULL, NULL) == -1 ||
		    pthread_create(&t, NULL, event_thread, NULL) != 0) {
			log_warnx("libvirt: cannot start its event loop");
			goto fail;
		}
		pthread_detach(t);
		event_impl_done = 1;
	}
	if (pipe2(v->pipe, O_CLOEXEC | O_NONBLOCK) == -1)
		goto fail;
	v->ev_done = event_new(md->base, v->pipe[0], EV_READ | EV_PERSIST,
	    done_cb, v);
	if (v->ev_done == NULL || event_add(v->ev_done, NULL) == -1)
		goto fail;
	if (queue_init(v, &v->qconn, 1) == -1 ||
	    queue_init(v, &v->qdom, VIRT_DOM_WORKERS) == -1) {
		log_warnx("libvirt: cannot start the worker threads");
		goto fail;
	}
	v->retry = evtimer_new(md->base, retry_cb, v);
	v->ev_check = event_new(md->base, -1, EV_PERSIST, check_cb, v);
	if (v->retry == NULL || v->ev_check == NULL ||
	    event_add(v->ev_check, &check_tv) == -1)
		goto fail;
	md->bdata = v;
	/* not fatal when it fails: libvirtd may come up after us */
	start_connect(v);
	return 0;
fail:
	/* threads may have started: v stays (the daemon exits anyway) */
	return -1;
}

/* Wait until @q has nothing queued or running, at most until @deadline. */
static int
queue_drain(struct vqueue *q, uint64_t deadline_ms)
{
	struct timespec ts;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	while ((!TAILQ_EMPTY(&q->jobs) || q->running > 0) && rc == 0) {
		uint64_t now = now_ms();

		if (now >= deadline_ms) {
			rc = -1;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 0;
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&q->idle, &q->lock, &ts);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static void
queue_stop(struct vqueue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stop = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->lock);
}

static void
virt_shutdown(struct memcoopd *md)
{
	struct virt *v = md->bdata;
	struct vdom *d;

	if (v == NULL)
		return;
	/* the targets of a restore, while they may still go out */
	TAILQ_FOREACH(d, &v->doms, entry)
		dom_kick(v, d);
	if (queue_drain(&v->qdom, now_ms() + VIRT_DRAIN_MS) == -1)
		log_warnx("libvirt: targets still pending after %d ms, not "
		    "waiting for them", VIRT_DRAIN_MS);
	v->closing = 1;
	queue_stop(&v->qdom);
	queue_stop(&v->qconn);
	event_del(v->retry);
	event_del(v->ev_check);
	event_del(v->ev_done);
	while ((d = TAILQ_FIRST(&v->doms)) != NULL) {
		if (d->g != NULL)
			d->g->bdata = NULL;
		d->g = NULL;
		TAILQ_REMOVE(&v->doms, d, entry);
		/* d->dom is not freed: a stuck thread may hold the connection */
		free(d);
	}
	/*
	 * The connection, the queues and @v are left to the exit: a thread
	 * stuck in a call that never returns may still use them, and joining
	 * it could wait forever.
	 */
	md->bdata = NULL;
}

static int
virt_set_target(struct memcoopd *md, struct guest *g, uint64_t bytes)
{
	struct vdom *d = g->bdata;

	(void)md;
	if (d == NULL || d->dom == NULL || bytes < 1024)
		return -1;
	/* a target not sent yet is replaced: the guest gets the latest */
	if (d->want == 0)
		d->want_prev = g->target;
	d->want = bytes;
	dom_kick(d->v, d);
	return 0;
}

/* One bulk stats call per tick for every guest (the first guest asks). */
static int
virt_poll_stats(struct memcoopd *md, struct guest *g)
{
	struct vdom *d = g->bdata;
	struct virt *v = md->bdata;
	struct vjob *j;
	uint64_t now = now_ms();

	(void)d;
	if (v == NULL || v->conn == NULL)
		return -1;
	if (v->stats_tick == md->ticks)
		return 0;
	v->stats_tick = md->ticks;
	if (v->stats_out)
		return 0;		/* the last one is still out */
	if ((j = new_job(VJ_STATS, v->conn, NULL)) == NULL)
		return -1;
	j->period = (int)v->gen;
	v->stats_out = 1;
	v->stats_since = now;
	queue_job(v, &v->qconn, j);
	return 0;
}

const struct backend_ops virt_backend = {
	.name = "libvirt",
	.init = virt_init,
	.shutdown = virt_shutdown,
	.set_target = virt_set_target,
	.poll_stats = virt_poll_stats,
};
