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
 * (virDomainSetMemoryStatsPeriod), stats come from virDomainMemoryStats,
 * the balloon size from BALLOON_CHANGE events and the ACTUAL_BALLOON stat,
 * targets go out through virDomainSetMemoryFlags(VIR_DOMAIN_AFFECT_LIVE).
 *
 * Event loop.  libvirt's event callbacks are implemented on the daemon's
 * libevent base (virEventRegisterImpl), not with libvirt's default loop in
 * a second thread: every libvirt callback (I/O on the connection,
 * keepalive timers, domain events) then runs in the one thread that owns
 * the guest list, exactly like the QMP backend's, so no locking and no
 * hand-over queue are needed.  The price is that synchronous libvirt calls
 * (stats, setmem) block the loop for one round trip, which they would do
 * from the main thread in the threaded design as well.  libvirt requires
 * that a handle's or timer's free callback run after the remove call
 * returns, never inside it: removal disables the libevent event at once and
 * frees it (calling libvirt's free callback) from a zero timeout.
 *
 * Reconnection.  virConnectRegisterCloseCallback (with keepalive, so a
 * libvirtd that hangs counts as gone) tells us the connection died; every
 * guest goes offline (keeping the operator's settings) and a timer retries
 * virConnectOpen with a backoff from 0.5 s doubling to 8 s.  After
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

/* Pure helpers, also used by the unit tests. */
int	virt_xml_has_virtio_balloon(const char *xml);
int	virt_cmdline_is_guest(const char *cmdline, size_t len, const char *name);
void	virt_convert_stats(const virDomainMemoryStatStruct *st, int n,
	    struct guest_stats *gs, uint64_t *actual);

/* ------------------------------------------------------------------ */
/* libvirt's event loop on libevent */

struct vev {
	TAILQ_ENTRY(vev)	 entry;
	int			 id;		/* watch or timer number */
	int			 is_timer;
	int			 fd;
	int			 interval;	/* timers: ms, -1 disabled */
	int			 deleted;
	struct event		*ev;
	virEventHandleCallback	 hcb;
	virEventTimeoutCallback	 tcb;
	void			*opaque;
	virFreeCallback		 ff;
};
TAILQ_HEAD(vevlist, vev);

static struct event_base *vev_base;
static struct vevlist vevs = TAILQ_HEAD_INITIALIZER(vevs);
static int vev_next_id = 1;

static struct vev *
vev_find(int id, int is_timer)
{
	struct vev *v;

	TAILQ_FOREACH(v, &vevs, entry)
		if (v->id == id && v->is_timer == is_timer && !v->deleted)
			return v;
	return NULL;
}

static short
vir_to_ev(int events)
{
	short ev = 0;

	if (events & VIR_EVENT_HANDLE_READABLE)
		ev |= EV_READ;
	if (events & VIR_EVENT_HANDLE_WRITABLE)
		ev |= EV_WRITE;
	return ev;
}

static void
vev_handle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vev *v = arg;
	int events = 0;

	if (v->deleted)
		return;
	if (what & EV_READ)
		events |= VIR_EVENT_HANDLE_READABLE;
	if (what & EV_WRITE)
		events |= VIR_EVENT_HANDLE_WRITABLE;
	v->hcb(v->id, (int)fd, events, v->opaque);
}

static void
vev_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vev *v = arg;

	(void)fd;
	(void)what;
	if (v->deleted || v->interval < 0)
		return;
	v->tcb(v->id, v->opaque);
}

static int
vev_arm(struct vev *v, int events)
{
	struct timeval tv;

	if (v->ev != NULL)
		event_del(v->ev);
	if (v->is_timer) {
		if (v->interval < 0)
			return 0;
		tv.tv_sec = v->interval / 1000;
		tv.tv_usec = (v->interval % 1000) * 1000;
		return event_add(v->ev, &tv);
	}
	if (v->ev != NULL)
		event_free(v->ev);
	v->ev = NULL;
	if (vir_to_ev(events) == 0) {
		/* keep an event around so that update can re-arm it */
		v->ev = event_new(vev_base, v->fd, EV_PERSIST, vev_handle_cb, v);
		return v->ev == NULL ? -1 : 0;
	}
	v->ev = event_new(vev_base, v->fd, vir_to_ev(events) | EV_PERSIST,
	    vev_handle_cb, v);
	if (v->ev == NULL)
		return -1;
	return event_add(v->ev, NULL);
}

static int
vev_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
    virFreeCallback ff)
{
	struct vev *v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -1;
	v->id = vev_next_id++;
	v->fd = fd;
	v->hcb = cb;
	v->opaque = opaque;
	v->ff = ff;
	if (vev_arm(v, events) == -1) {
		if (v->ev != NULL)
			event_free(v->ev);
		free(v);
		return -1;
	}
	TAILQ_INSERT_TAIL(&vevs, v, entry);
	return v->id;
}

static void
vev_update_handle(int watch, int events)
{
	struct vev *v = vev_find(watch, 0);

	if (v != NULL && vev_arm(v, events) == -1)
		log_warnx("%s: cannot re-arm libvirt watch %d", __func__, watch);
}

/* Deferred part of a removal: libvirt's free callback, then ours. */
static void
vev_reap(evutil_socket_t fd, short what, void *arg)
{
	struct vev *v, *next;

	(void)fd;
	(void)what;
	(void)arg;
	for (v = TAILQ_FIRST(&vevs); v != NULL; v = next) {
		next = TAILQ_NEXT(v, entry);
		if (!v->deleted)
			continue;
		TAILQ_REMOVE(&vevs, v, entry);
		if (v->ev != NULL)
			event_free(v->ev);
		if (v->ff != NULL)
			v->ff(v->opaque);
		free(v);
	}
}

static int
vev_remove(int id, int is_timer)
{
	struct timeval tv = { 0, 0 };
	struct vev *v = vev_find(id, is_timer);

	if (v == NULL)
		return -1;
	v->deleted = 1;
	if (v->ev != NULL)
		event_del(v->ev);
	if (event_base_once(vev_base, -1, EV_TIMEOUT, vev_reap, NULL, &tv) == -1)
		log_warnx("%s: cannot schedule the release of libvirt event %d",
		    __func__, id);
	return 0;
}

static int
vev_remove_handle(int watch)
{
	return vev_remove(watch, 0);
}

static int
vev_add_timeout(int interval, virEventTimeoutCallback cb, void *opaque,
    virFreeCallback ff)
{
	struct vev *v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -1;
	v->id = vev_next_id++;
	v->is_timer = 1;
	v->fd = -1;
	v->interval = interval;
	v->tcb = cb;
	v->opaque = opaque;
	v->ff = ff;
	v->ev = event_new(vev_base, -1, EV_PERSIST, vev_timer_cb, v);
	if (v->ev == NULL || vev_arm(v, 0) == -1) {
		if (v->ev != NULL)
			event_free(v->ev);
		free(v);
		return -1;
	}
	TAILQ_INSERT_TAIL(&vevs, v, entry);
	return v->id;
}

static void
vev_update_timeout(int timer, int interval)
{
	struct vev *v = vev_find(timer, 1);

	if (v == NULL)
		return;
	v->interval = interval;
	if (vev_arm(v, 0) == -1)
		log_warnx("%s: cannot re-arm libvirt timer %d", __func__, timer);
}

static int
vev_remove_timeout(int timer)
{
	return vev_remove(timer, 1);
}

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
};
TAILQ_HEAD(vdomlist, vdom);

struct virt {
	struct memcoopd		*md;
	const struct config	*conf;
	char			*uri;
	virConnectPtr		 conn;
	int			 cb_life;	/* event callback ids, -1 none */
	int			 cb_balloon;
	struct event		*retry;
	int			 backoff;	/* ms */
	int			 was_down;	/* log the recovery */
	int			 closing;
	struct vdomlist		 doms;
	char			**ignored;	/* domains without a balloon */
	size_t			 nignored;
};

static void	virt_schedule_retry(struct virt *);
static void	close_cb(virConnectPtr, int, void *);

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
	TAILQ_REMOVE(&v->doms, d, entry);
	free(d);
}

/* A defined domain that is not running: known, offline. */
static void
vdom_defined(struct virt *v, virDomainPtr dom)
{
	const char *name = virDomainGetName(dom);
	struct vdom *d;
	struct guest *g;

	if (name == NULL || vdom_find(v, name) != NULL ||
	    strlen(name) >= GUEST_NAME_MAX)
		return;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return;
	d->v = v;
	d->persistent = 1;
	strcpy(d->name, name);
	if ((g = guest_add(v->md, name, &virt_backend, d)) == NULL) {
		free(d);
		return;
	}
	d->g = g;
	guest_offline(v->md, g);
	TAILQ_INSERT_TAIL(&v->doms, d, entry);
}

/* A running domain: a guest if it has a virtio balloon. */
static void
vdom_started(struct virt *v, virDomainPtr dom)
{
	const char *name = virDomainGetName(dom);
	unsigned long maxkib;
	virDomainInfo info;
	struct vdom *d;
	char *xml;
	int has, fresh = 0;

	if (name == NULL)
		return;
	if (strlen(name) >= GUEST_NAME_MAX) {
		log_warnx("libvirt: domain name too long, ignored: %.64s...", name);
		return;
	}
	xml = virDomainGetXMLDesc(dom, 0);
	if (xml == NULL) {
		log_warnx("libvirt: domain %s: no XML: %s", name, verr());
		return;
	}
	has = virt_xml_has_virtio_balloon(xml);
	free(xml);
	if (!has) {
		if (!ignored(v, name, 1))
			log_info("libvirt: domain %s has no virtio memballoon: "
			    "not managed", name);
		return;
	}
	if ((d = vdom_find(v, name)) == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL)
			return;
		d->v = v;
		strcpy(d->name, name);
		fresh = 1;
	}
	if (d->dom != NULL)
		virDomainFree(d->dom);
	virDomainRef(dom);
	d->dom = dom;
	d->persistent = virDomainIsPersistent(dom) == 1;
	d->g = guest_add(v->md, name, &virt_backend, d);
	if (d->g == NULL) {
		virDomainFree(d->dom);
		if (!fresh)
			TAILQ_REMOVE(&v->doms, d, entry);
		free(d);
		return;
	}
	if (fresh)
		TAILQ_INSERT_TAIL(&v->doms, d, entry);

	if ((maxkib = virDomainGetMaxMemory(dom)) != 0)
		d->g->maxmem = (uint64_t)maxkib * 1024;
	if (virDomainGetInfo(dom, &info) == 0 && info.memory > 0)
		guest_update_actual(v->md, d->g, (uint64_t)info.memory * 1024);
	if (v->conf->stats_period > 0 &&
	    virDomainSetMemoryStatsPeriod(dom, (int)v->conf->stats_period,
	    VIR_DOMAIN_AFFECT_LIVE) == -1)
		log_warnx("guest %s: cannot set the stats period: %s", name,
		    verr());
	d->g->qemu_pid = find_qemu_pid(v, name);
	log_info("guest %s: libvirt domain, %llu MiB, balloon at %llu MiB, "
	    "qemu pid %d", name, (unsigned long long)(d->g->maxmem / MIB),
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

static int
life_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail,
    void *opaque)
{
	struct virt *v = opaque;
	const char *name = virDomainGetName(dom);
	struct vdom *d;

	(void)conn;
	if (name == NULL || v->closing)
		return 0;
	log_debug("libvirt: domain %s: event %s (detail %d)", name,
	    life_name(event), detail);
	d = vdom_find(v, name);
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		if (virDomainIsActive(dom) == 1)
			vdom_started(v, dom);
		break;
	case VIR_DOMAIN_EVENT_DEFINED:
		if (virDomainIsActive(dom) != 1)
			vdom_defined(v, dom);
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		if (d != NULL)
			log_warnx("guest %s: crashed (detail %d)", name, detail);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		if (d == NULL)
			break;
		if (detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED)
			log_warnx("guest %s: QEMU crashed", name);
		if (d->persistent)
			vdom_offline(v, d, "stopped");
		else
			vdom_remove(v, d, "stopped (transient domain)");
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		if (d != NULL && (d->dom == NULL || virDomainIsActive(d->dom) != 1))
			vdom_remove(v, d, "undefined");
		else if (d != NULL)
			d->persistent = 0;	/* goes away when it stops */
		break;
	default:
		break;
	}
	return 0;
}

static void
balloon_cb(virConnectPtr conn, virDomainPtr dom, unsigned long long actual,
    void *opaque)
{
	struct virt *v = opaque;
	const char *name = virDomainGetName(dom);
	struct vdom *d;

	(void)conn;
	if (name == NULL || (d = vdom_find(v, name)) == NULL || d->g == NULL ||
	    d->g->state != GUEST_ONLINE)
		return;
	guest_update_actual(v->md, d->g, actual * 1024);
}

static void
virt_disconnect(struct virt *v)
{
	struct vdom *d;

	if (v->conn == NULL)
		return;
	if (v->cb_life >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->cb_life);
	if (v->cb_balloon >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->cb_balloon);
	v->cb_life = v->cb_balloon = -1;
	TAILQ_FOREACH(d, &v->doms, entry)
		vdom_offline(v, d, "libvirt connection lost");
	virConnectUnregisterCloseCallback(v->conn, close_cb);
	virConnectClose(v->conn);
	v->conn = NULL;
}

/* From the close callback: handle the loss outside libvirt's stack. */
static void
lost_cb(evutil_socket_t fd, short what, void *arg)
{
	struct virt *v = arg;

	(void)fd;
	(void)what;
	if (v->closing || v->conn == NULL)
		return;
	virt_disconnect(v);
	virt_schedule_retry(v);
}

static void
close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct virt *v = opaque;
	struct timeval tv = { 0, 0 };
	static const char *const why[] = { "error", "end of file",
	    "keepalive timeout", "client closed" };

	(void)conn;
	log_warnx("libvirt: connection to %s closed (%s); guests offline, "
	    "reconnecting", v->uri,
	    reason >= 0 && reason < 4 ? why[reason] : "unknown reason");
	v->was_down = 1;
	if (event_base_once(v->md->base, -1, EV_TIMEOUT, lost_cb, v, &tv) == -1)
		log_warnx("%s: cannot schedule the reconnection", __func__);
}

static int
virt_connect(struct virt *v)
{
	virDomainPtr *doms = NULL;
	struct vdom *d, *next;
	int i, n;

	v->conn = virConnectOpen(v->uri);
	if (v->conn == NULL)
		return -1;
	if (virConnectSetKeepAlive(v->conn, VIRT_KEEPALIVE_S,
	    VIRT_KEEPALIVE_COUNT) == -1)
		log_debug("libvirt: no keepalive: %s", verr());
	if (virConnectRegisterCloseCallback(v->conn, close_cb, v, NULL) == -1)
		log_warnx("libvirt: no close callback (%s): a libvirtd restart "
		    "will not be noticed", verr());
	v->cb_life = virConnectDomainEventRegisterAny(v->conn, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(life_cb),
	    v, NULL);
	if (v->cb_life == -1)
		log_warnx("libvirt: no lifecycle events: %s", verr());
	v->cb_balloon = virConnectDomainEventRegisterAny(v->conn, NULL,
	    VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
	    VIR_DOMAIN_EVENT_CALLBACK(balloon_cb), v, NULL);
	if (v->cb_balloon == -1)
		log_debug("libvirt: no balloon events: %s", verr());

	n = virConnectListAllDomains(v->conn, &doms, 0);
	if (n < 0) {
		log_warnx("libvirt: cannot list domains: %s", verr());
		return 0;		/* events will tell */
	}
	TAILQ_FOREACH(d, &v->doms, entry)
		d->seen = 0;
	for (i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);

		if (virDomainIsActive(doms[i]) == 1)
			vdom_started(v, doms[i]);
		else
			vdom_defined(v, doms[i]);
		if (name != NULL && (d = vdom_find(v, name)) != NULL)
			d->seen = 1;
		virDomainFree(doms[i]);
	}
	free(doms);
	/* Domains that went away while we were not connected. */
	for (d = TAILQ_FIRST(&v->doms); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (!d->seen)
			vdom_remove(v, d, "gone while libvirt was away");
	}
	log_info("libvirt: connected to %s, %d domain%s", v->uri, n,
	    n == 1 ? "" : "s");
	return 0;
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct virt *v = arg;

	(void)fd;
	(void)what;
	if (v->closing || v->conn != NULL)
		return;
	if (virt_connect(v) == 0) {
		if (v->was_down)
			log_info("libvirt: reconnected to %s", v->uri);
		v->was_down = 0;
		v->backoff = VIRT_BACKOFF_MIN;
		return;
	}
	if (!v->was_down)
		log_warnx("libvirt: cannot connect to %s: %s; retrying", v->uri,
		    verr());
	v->was_down = 1;
	virt_schedule_retry(v);
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
virt_init(struct memcoopd *md, const struct config *conf)
{
	static int event_impl_done;
	struct virt *v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -1;
	v->md = md;
	v->conf = conf;
	v->cb_life = v->cb_balloon = -1;
	v->backoff = VIRT_BACKOFF_MIN;
	TAILQ_INIT(&v->doms);
	v->uri = strdup(conf->libvirt_uri != NULL ? conf->libvirt_uri :
	    "qemu:///system");
	if (v->uri == NULL)
		goto fail;
	if (!event_impl_done) {
		/* Once per process, before the first connection. */
		vev_base = md->base;
		virEventRegisterImpl(vev_add_handle, vev_update_handle,
		    vev_remove_handle, vev_add_timeout, vev_update_timeout,
		    vev_remove_timeout);
		event_impl_done = 1;
	}
	virSetErrorFunc(NULL, verr_handler);
	if (virInitialize() == -1) {
		log_warnx("libvirt: virInitialize failed");
		goto fail;
	}
	v->retry = evtimer_new(md->base, retry_cb, v);
	if (v->retry == NULL)
		goto fail;
	md->bdata = v;
	if (virt_connect(v) == -1) {
		/* not fatal: libvirtd may come up after us */
		log_warnx("libvirt: cannot connect to %s: %s; retrying", v->uri,
		    verr());
		v->was_down = 1;
		virt_schedule_retry(v);
	}
	return 0;
fail:
	free(v->uri);
	free(v);
	return -1;
}

static void
virt_shutdown(struct memcoopd *md)
{
	struct virt *v = md->bdata;
	struct vdom *d;
	size_t i;

	if (v == NULL)
		return;
	v->closing = 1;
	if (v->conn != NULL) {
		if (v->cb_life >= 0)
			virConnectDomainEventDeregisterAny(v->conn, v->cb_life);
		if (v->cb_balloon >= 0)
			virConnectDomainEventDeregisterAny(v->conn, v->cb_balloon);
		virConnectUnregisterCloseCallback(v->conn, close_cb);
	}
	while ((d = TAILQ_FIRST(&v->doms)) != NULL) {
		if (d->dom != NULL)
			virDomainFree(d->dom);
		if (d->g != NULL)
			d->g->bdata = NULL;
		TAILQ_REMOVE(&v->doms, d, entry);
		free(d);
	}
	if (v->conn != NULL)
		virConnectClose(v->conn);
	if (v->retry != NULL)
		event_free(v->retry);
	for (i = 0; i < v->nignored; i++)
		free(v->ignored[i]);
	free(v->ignored);
	free(v->uri);
	free(v);
	md->bdata = NULL;
	/* Release what libvirt removed on its way out. */
	vev_reap(-1, 0, NULL);
}

static int
virt_set_target(struct memcoopd *md, struct guest *g, uint64_t bytes)
{
	struct vdom *d = g->bdata;

	(void)md;
	if (d == NULL || d->dom == NULL || bytes < 1024)
		return -1;
	if (virDomainSetMemoryFlags(d->dom, (unsigned long)(bytes / 1024),
	    VIR_DOMAIN_AFFECT_LIVE) == -1) {
		log_warnx("guest %s: setmem %llu MiB failed: %s", g->name,
		    (unsigned long long)(bytes / MIB), verr());
		return -1;
	}
	return 0;
}

static int
virt_poll_stats(struct memcoopd *md, struct guest *g)
{
	virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
	struct guest_stats gs;
	struct vdom *d = g->bdata;
	uint64_t actual;
	int n;

	if (d == NULL || d->dom == NULL)
		return -1;
	n = virDomainMemoryStats(d->dom, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);
	if (n < 0) {
		log_debug("guest %s: no memory stats: %s", g->name, verr());
		return -1;
	}
	virt_convert_stats(st, n, &gs, &actual);
	gs.when = now_ms();
	if (actual > 0)
		guest_update_actual(md, g, actual);
	if (gs.valid != 0)
		guest_update_stats(md, g, &gs);
	if (g->qemu_pid == 0)
		g->qemu_pid = find_qemu_pid(d->v, g->name);
	return 0;
}

const struct backend_ops virt_backend = {
	.name = "libvirt",
	.init = virt_init,
	.shutdown = virt_shutdown,
	.set_target = virt_set_target,
	.poll_stats = virt_poll_stats,
};
