// SPDX-License-Identifier: GPL-2.0-only
/*
 * One configured application: its relay client on /dev/memcoop, the shrink
 * requests it is sent, the measurement of what really left, the yield it
 * learns, and the slow grow-back after the pressure.
 *
 * A request: the baseline is measured (by the adapter, just before it
 * changes anything), the adapter acts, then the measure is sampled every
 * SETTLE_MS while it keeps falling.  The answer goes out when it stops
 * falling, when the action's deadline-ms is over, or a lead before the
 * driver's deadline (answer_lead()), whichever comes first: always in time,
 * always what was measured.  Requests that arrive meanwhile are answered 0 at
 * once.
 */
#include <sys/time.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libmemcoop.h>

#include "guestd.h"
#include "io.h"
#include "log.h"
#include "meminfo.h"
#include "modparam.h"

#define SETTLE_MS		20	/* sampling period after the action */
#define SETTLE_FLAT		5	/* samples without progress: settled */
#define ANSWER_LEAD_MIN_MS	10	/* the least lead before the deadline */
#define ANSWER_LEAD_MAX_MS	250	/* and the most */
#define ANSWER_LEAD_PART	4	/* else a quarter of the time given */
#define YIELD_MIN		0.05
#define YIELD_WEIGHT		0.25	/* weight of the newest sample */
#define YIELD_SCALE_MAX		4	/* never ask more than 4x the request */

struct guestd *guestd;

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t
page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

const char *
fmt_size(int64_t v)
{
	static char ring[8][24];
	static unsigned int next;
	char *b = ring[next++ % 8];

	if (v < 0)
		snprintf(b, sizeof(ring[0]), "?");
	else if (v >= (int64_t)(1 << 30))
		snprintf(b, sizeof(ring[0]), "%.1fG", (double)v / (1 << 30));
	else
		snprintf(b, sizeof(ring[0]), "%.1fM", (double)v / (1 << 20));
	return b;
}

/* ------------------------------------------------------------------ */
/* Yield */

void
yield_init(struct yield_state *y)
{
	y->yield = 1.0;
	y->samples = 0;
}

void
yield_learn(struct yield_state *y, uint64_t asked, uint64_t freed)
{
	double r;

	if (asked == 0)
		return;
	r = freed >= asked ? 1.0 : (double)freed / (double)asked;
	y->yield = y->samples == 0 ? r :
	    y->yield * (1 - YIELD_WEIGHT) + r * YIELD_WEIGHT;
	if (y->yield < YIELD_MIN)
		y->yield = YIELD_MIN;
	if (y->yield > 1.0)
		y->yield = 1.0;
	y->samples++;
}

uint64_t
yield_scale(const struct yield_state *y, uint64_t want)
{
	double ask = (double)want / (y->yield < YIELD_MIN ? YIELD_MIN : y->yield);

	if (ask > (double)want * YIELD_SCALE_MAX)
		return want * YIELD_SCALE_MAX;
	if (ask < (double)want)
		return want;
	return (uint64_t)ask;
}

/* ------------------------------------------------------------------ */
/* Measurements */

int64_t
parse_status_rss(const char *status)
{
	const char *p = status;
	long long kib;
	char *end;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, "VmRSS:", 6) == 0) {
			p += 6;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p < '0' || *p > '9')
				return -1;
			errno = 0;
			kib = strtoll(p, &end, 10);
			if (errno != 0 || kib < 0 || kib > (1LL << 42) ||
			    strncmp(end, " kB", 3) != 0)
				return -1;
			return (int64_t)kib * 1024;
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}

int64_t
proc_rss(pid_t pid)
{
	char path[64], buf[4096];

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (io_read_path(path, buf, sizeof(buf)) == -1)
		return -1;
	return parse_status_rss(buf);
}

int
proc_gone(pid_t pid)
{
	char path[64], buf[512], *p;

	if (pid <= 0 || (kill(pid, 0) == -1 && errno == ESRCH))
		return 1;
	/* a zombie (its parent has not reaped it) still takes signals */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (io_read_path(path, buf, sizeof(buf)) == -1)
		return errno == ENOENT || errno == ESRCH;
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return 0;
	return p[2] == 'Z' || p[2] == 'X';
}

int64_t
cgroup_current(const char *dir)
{
	char path[4200], buf[64], *end;
	long long v;

	if (snprintf(path, sizeof(path), "%s/memory.current", dir) >=
	    (int)sizeof(path))
		return -1;
	if (io_read_path(path, buf, sizeof(buf)) <= 0)
		return -1;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || v < 0 || end == buf || (*end != '\n' && *end != '\0'))
		return -1;
	return v;
}

/* The v2 line of /proc/PID/cgroup ("0::/system.slice/x.service"). */
int
parse_cgroup_line(const char *text, char *buf, size_t len)
{
	const char *p = text, *nl;
	size_t n;

	while (p != NULL && *p != '\0') {
		nl = strchr(p, '\n');
		n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n >= 3 && strncmp(p, "0::", 3) == 0) {
			if (n - 3 == 0 || p[3] != '/' ||
			    memmem(p, n, "/..", 3) != NULL ||
			    (size_t)snprintf(buf, len, "/sys/fs/cgroup%.*s",
			    (int)(n - 3), p + 3) >= len)
				return -1;
			return 0;
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
	return -1;
}

int
proc_cgroup_dir(pid_t pid, char *buf, size_t len)
{
	char path[64], text[4096];

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (pid <= 0 || io_read_path(path, text, sizeof(text)) == -1)
		return -1;
	return parse_cgroup_line(text, buf, len);
}

int64_t
app_measure(struct app *a)
{
	char dir[4200];
	pid_t pid;

	if (a->conf->type == APP_CGROUP)
		return cgroup_current(a->conf->path);
	if ((pid = a->ops->pid(a)) <= 0)
		return -1;
	if (a->conf->measure == MEASURE_CGROUP)
		return proc_cgroup_dir(pid, dir, sizeof(dir)) == -1 ? -1 :
		    cgroup_current(dir);
	return proc_rss(pid);
}

/* ------------------------------------------------------------------ */
/* Status and log */

void
app_set_last(struct app *a, const char *fmt, ...)
{
	struct tm tm;
	time_t t = time(NULL);
	va_list ap;
	int n;

	gmtime_r(&t, &tm);
	n = (int)strftime(a->last, sizeof(a->last), "%H:%M:%S ", &tm);
	va_start(ap, fmt);
	vsnprintf(a->last + n, sizeof(a->last) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one line, whatever an application said */
	for (char *p = a->last; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

/* ------------------------------------------------------------------ */
/* Requests */

static void	start_request(struct app *, const struct app_req *);

static uint64_t
freed_so_far(const struct app *a)
{
	if (a->before < 0 || a->best < 0 || a->best >= a->before)
		return 0;
	return (uint64_t)(a->before - a->best);
}

static void
sample(struct app *a)
{
	int64_t v = app_measure(a);

	if (v >= 0 && (a->best < 0 || v < a->best))
		a->best = v;
}

static void
answer(struct app *a)
{
	uint64_t freed = freed_so_far(a), pages = freed / page_size();

	if (a->answered)
		return;
	a->answered = 1;
	if (pages > a->cur.pages)
		pages = a->cur.pages;
	if (a->cur.seq != 0 && a->mc != NULL &&
	    memcoop_answer(a->mc, a->cur.seq, pages) == -1)
		log_warnx("app %s: answer to request %llu: %s", a->conf->name,
		    (unsigned long long)a->cur.seq, memcoop_strerror(errno));
	log_debug("app %s: answered request %llu: %llu of %llu pages in "
	    "%llu ms", a->conf->name, (unsigned long long)a->cur.seq,
	    (unsigned long long)pages, (unsigned long long)a->cur.pages,
	    (unsigned long long)(now_ms() - a->start_ms));
}

static void
arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

/* Answered and the adapter done: log, learn, serve the next one. */
static void
finish(struct app *a)
{
	uint64_t want = a->cur.pages * page_size(), freed = freed_so_far(a);
	uint64_t ms = now_ms() - a->start_ms;

	evtimer_del(a->ev_measure);
	evtimer_del(a->ev_deadline);
	/* a failure says nothing about what asking does */
	if (a->action_bytes > 0 && a->action_ok)
		yield_learn(&a->yield, a->action_bytes, freed);
	if (a->action_ok && a->ops->shrunk != NULL && a->before >= 0 &&
	    a->best >= 0)
		a->ops->shrunk(a, a->before, a->best);
	/* what really left, also after the answer (that one is capped at
	 * what was asked and sent by the driver's deadline) */
	a->freed_total += freed;
	log_info("app %s: shrink asked %s: %s, freed %s (%s -> %s) in %llu ms,"
	    " yield %.2f", a->conf->name, fmt_size((int64_t)want), a->note,
	    fmt_size((int64_t)freed), fmt_size(a->before), fmt_size(a->best),
	    (unsigned long long)ms, a->yield.yield);
	app_set_last(a, "shrink asked %s freed %s in %llu ms: %s",
	    fmt_size((int64_t)want), fmt_size((int64_t)freed),
	    (unsigned long long)ms, a->note);
	a->busy = BUSY_NONE;
	a->last_shrink_ms = now_ms();
}

/*
 * How long before the driver's deadline the answer goes out: a quarter of
 * the time the request gives, at least ANSWER_LEAD_MIN_MS, at most
 * ANSWER_LEAD_MAX_MS.  The daemon is not alone in a squeezed guest: in a TCG
 * guest at 8 MiB MemAvailable (guestd-apps on 6.12) its timers ran 12 to
 * 40 ms late, and once 167 ms (likely its own log line between two answers
 * due together: a write to a tmpfs file allocates); with a fixed 10 ms the
 * answer came after the deadline, which demotes the client.
 */
uint64_t
answer_lead(uint64_t given_ms)
{
	uint64_t lead = given_ms / ANSWER_LEAD_PART;

	if (lead < ANSWER_LEAD_MIN_MS)
		return ANSWER_LEAD_MIN_MS;
	return lead > ANSWER_LEAD_MAX_MS ? ANSWER_LEAD_MAX_MS : lead;
}

static void
measure_cb(int fd, short what, void *arg)
{
	struct app *a = arg;
	int64_t prev = a->best;

	(void)fd;
	(void)what;
	sample(a);
	if (a->best >= 0 && (a->best < prev || prev < 0))
		a->flat = 0;
	else
		a->flat++;
	if (a->flat >= SETTLE_FLAT ||
	    now_ms() >= a->start_ms + a->conf->deadline_ms ||
	    now_ms() >= a->answer_by_ms) {
		sample(a);
		answer(a);
		finish(a);
		return;
	}
	arm(a->ev_measure, SETTLE_MS);
}

static void
deadline_cb(int fd, short what, void *arg)
{
	struct app *a = arg;

	(void)fd;
	(void)what;
	sample(a);
	answer(a);
	if (a->action_over)
		finish(a);
	/* else finish() when the adapter is done (it bounds its waits) */
}

static void
start_request(struct app *a, const struct app_req *r)
{
	uint64_t want = r->pages * page_size(), ask, now = now_ms();
	int64_t cur, room;

	a->busy = BUSY_SHRINK;
	a->cur = *r;
	a->start_ms = now;
	a->best = a->before = -1;
	a->action_over = a->answered = 0;
	a->flat = 0;
	a->note[0] = '\0';
	a->requests++;
	a->asked_total += want;
	a->calm_since_ms = 0;
	a->answer_by_ms = r->deadline_ms > now ?
	    r->deadline_ms - answer_lead(r->deadline_ms - now) : now;
	arm(a->ev_deadline, a->answer_by_ms > now ? a->answer_by_ms - now : 0);
	ask = yield_scale(&a->yield, want);
	/* never below the floor */
	cur = app_measure(a);
	if (cur >= 0 && a->conf->floor > 0) {
		room = cur - (int64_t)a->conf->floor;
		if (room <= 0)
			ask = 0;
		else if ((uint64_t)room < ask)
			ask = (uint64_t)room;
	}
	a->action_bytes = ask;
	a->before = cur;
	if (ask == 0) {
		app_action_done(a, 1, "at its floor %s, nothing asked",
		    fmt_size((int64_t)a->conf->floor));
		return;
	}
	log_debug("app %s: request %llu: %llu pages, asking the application "
	    "for %s (yield %.2f)", a->conf->name, (unsigned long long)r->seq,
	    (unsigned long long)r->pages, fmt_size((int64_t)ask),
	    a->yield.yield);
	a->ops->shrink(a, ask);
}

void
app_baseline(struct app *a)
{
	a->before = app_measure(a);
	a->best = -1;
}

static const char *
busy_name(enum app_busy b)
{
	return b == BUSY_GROW ? "grow" : b == BUSY_HOLD ? "hold" : "restore";
}

int
app_hold_begin(struct app *a)
{
	if (a->busy != BUSY_NONE)
		return -1;
	a->busy = BUSY_HOLD;
	return 0;
}

void
app_action_done(struct app *a, int ok, const char *fmt, ...)
{
	va_list ap;
	enum app_busy was = a->busy;

	va_start(ap, fmt);
	vsnprintf(a->note, sizeof(a->note), fmt, ap);
	va_end(ap);
	if (!ok)
		log_warnx("app %s: %s", a->conf->name, a->note);
	switch (was) {
	case BUSY_SHRINK:
		a->action_over = 1;
		a->action_ok = ok;
		sample(a);
		if (a->answered)
			finish(a);
		else if (!ok || a->before < 0) {
			/* nothing to wait for: what left has left */
			answer(a);
			finish(a);
		} else
			arm(a->ev_measure, SETTLE_MS);
		return;
	case BUSY_GROW:
	case BUSY_RESTORE:
	case BUSY_HOLD:
		log_info("app %s: %s: %s", a->conf->name, busy_name(was),
		    a->note);
		app_set_last(a, "%s: %s", busy_name(was), a->note);
		a->busy = BUSY_NONE;
		return;
	case BUSY_NONE:
		/* a probe's failure */
		app_set_last(a, "%s", a->note);
		return;
	}
}

/*
 * A request while the application is busy (an earlier request's action
 * still running, a grow-back step) is answered at once with 0: the running
 * action frees what it can anyway, and an answer in time with nothing is
 * honest, where one after the deadline would demote the client.
 */
static void
serve_request(struct app *a, const struct app_req *r)
{
	if (a->busy == BUSY_NONE) {
		start_request(a, r);
		return;
	}
	log_debug("app %s: busy, request %llu answered with 0", a->conf->name,
	    (unsigned long long)r->seq);
	a->requests++;
	a->asked_total += r->pages * page_size();
	if (r->seq != 0 && a->mc != NULL &&
	    memcoop_answer(a->mc, r->seq, 0) == -1)
		log_warnx("app %s: answer to request %llu: %s", a->conf->name,
		    (unsigned long long)r->seq, memcoop_strerror(errno));
}

void
app_restore(struct app *a)
{
	if (a->busy == BUSY_SHRINK && !a->answered) {
		sample(a);
		answer(a);
	}
	evtimer_del(a->ev_measure);
	evtimer_del(a->ev_deadline);
	if (!a->ops->lowered(a)) {
		a->busy = BUSY_NONE;
		return;
	}
	a->busy = BUSY_RESTORE;
	a->ops->restore(a);
}

int
app_shrink_manual(struct app *a, uint64_t bytes)
{
	struct app_req r;

	if (a->busy != BUSY_NONE) {
		errno = EBUSY;
		return -1;
	}
	r.seq = 0;
	r.pages = (bytes + page_size() - 1) / page_size();
	r.deadline_ms = now_ms() + a->conf->deadline_ms + ANSWER_LEAD_MAX_MS;
	if (r.pages == 0) {
		errno = EINVAL;
		return -1;
	}
	serve_request(a, &r);
	return 0;
}

static void
relay_cb(int fd, short what, void *arg)
{
	struct app *a = arg;
	struct memcoop_event ev[8];
	struct app_req r;
	int i, n;

	(void)fd;
	(void)what;
	if ((n = memcoop_read_events(a->mc, ev, 8)) == -1) {
		if (errno != EAGAIN && errno != EINTR)
			log_warnx("app %s: reading events: %s", a->conf->name,
			    memcoop_strerror(errno));
		return;
	}
	for (i = 0; i < n; i++) {
		if (ev[i].type != MEMCOOP_EVENT_SHRINK)
			continue;
		r.seq = ev[i].seq;
		r.pages = ev[i].shrink.pages;
		r.deadline_ms = ev[i].shrink.deadline_ns / 1000000;
		log_debug("app %s: request %llu: %llu pages, reason %u, "
		    "%lld ms to the deadline", a->conf->name,
		    (unsigned long long)r.seq, (unsigned long long)r.pages,
		    ev[i].shrink.reason,
		    (long long)r.deadline_ms - (long long)now_ms());
		serve_request(a, &r);
	}
}

/* ------------------------------------------------------------------ */
/* Registration, estimate, grow-back */

static uint64_t
estimate_pages(struct app *a)
{
	int64_t cur;
	double est;

	if (a->ops->cannot_free(a) || (cur = app_measure(a)) < 0)
		return 0;
	if ((uint64_t)cur <= a->conf->floor)
		return 0;
	est = (double)((uint64_t)cur - a->conf->floor) * a->yield.yield;
	return (uint64_t)est / page_size();
}

/*
 * Said once per registration: the driver waits relay_deadline_ms for the
 * answers, then takes the memory.  An action allowed longer (deadline-ms)
 * goes on after the answer, and what it frees then is neither credited nor
 * in time for the balloon: with the default 200 ms a squeezed Redis in a
 * TCG guest was OOM-killed while it evicted (the demo, the apps benchmark).
 */
static void
warn_driver_deadline(struct app *a)
{
	long drv = modparam_read("relay_deadline_ms");

	if (drv < 0 || (uint64_t)drv >= a->conf->deadline_ms)
		return;
	log_warnx("app %s: memcoop.ko's relay_deadline_ms is %ld, deadline-ms "
	    "is %llu: answers go out by the driver's deadline and the balloon "
	    "takes the memory then; raise relay_deadline_ms (sysfs or "
	    "modprobe.d) so that the %s action can finish in time",
	    a->conf->name, drv, (unsigned long long)a->conf->deadline_ms,
	    app_type_name(a->conf->type));
}

void
app_try_register(struct app *a)
{
	uint64_t est;

	if (a->registered)
		return;
	if (a->mc == NULL &&
	    (a->mc = memcoop_open(MEMCOOP_FEATURE_RELAY)) == NULL) {
		/* said once per cause, not every tick over the last action */
		if (errno != a->reg_errno) {
			log_warnx("app %s: not registered: /dev/memcoop: %s",
			    a->conf->name, memcoop_strerror(errno));
			app_set_last(a, "not registered: /dev/memcoop: %s",
			    memcoop_strerror(errno));
		}
		a->reg_errno = errno;
		return;
	}
	est = estimate_pages(a);
	if (memcoop_register(a->mc, a->conf->name, a->conf->priority, est,
	    0) == -1) {
		a->reg_errno = errno;
		log_warnx("app %s: register: %s", a->conf->name,
		    memcoop_strerror(errno));
		app_set_last(a, "not registered: %s", memcoop_strerror(errno));
		memcoop_close(a->mc);
		a->mc = NULL;
		return;
	}
	a->ev_relay = event_new(a->base, memcoop_fd(a->mc),
	    EV_READ | EV_PERSIST, relay_cb, a);
	if (a->ev_relay == NULL || event_add(a->ev_relay, NULL) == -1)
		fatalx("app %s: event_new", a->conf->name);
	a->registered = 1;
	a->reg_errno = 0;
	a->estimate_pages = est;
	log_info("app %s: registered (%s, priority %u, estimate %s)",
	    a->conf->name, app_type_name(a->conf->type), a->conf->priority,
	    fmt_size((int64_t)(est * page_size())));
	app_set_last(a, "registered, estimate %s",
	    fmt_size((int64_t)(est * page_size())));
	warn_driver_deadline(a);
}

void
app_tick(struct app *a, const struct gconf *c)
{
	uint64_t est, now = now_ms();
	long avail;

	app_try_register(a);
	if (a->busy != BUSY_NONE)
		return;
	a->ops->probe(a);
	if (a->busy != BUSY_NONE)
		return;
	if (a->registered) {
		est = estimate_pages(a);
		if (est != a->estimate_pages &&
		    memcoop_set_reclaimable(a->mc, est) == 0)
			a->estimate_pages = est;
	}
	/* room now, and all through the last period (a balloon still
	 * inflating takes MemAvailable down again) */
	avail = meminfo_kib("MemAvailable:");
	if (avail < 0 ||
	    (uint64_t)avail * 1024 < c->grow_margin + c->grow_step)
		a->calm_since_ms = 0;
	else if (a->calm_since_ms == 0)
		a->calm_since_ms = now;
	if (!a->ops->lowered(a) || now < a->last_shrink_ms + c->grow_period_ms ||
	    now < a->last_grow_ms + c->grow_period_ms)
		return;
	if (a->calm_since_ms == 0 || now < a->calm_since_ms + c->grow_period_ms) {
		log_debug("app %s: no grow-back: MemAvailable %s, margin %s, "
		    "room for %llu ms", a->conf->name,
		    fmt_size((int64_t)avail * 1024),
		    fmt_size((int64_t)c->grow_margin), (unsigned long long)
		    (a->calm_since_ms != 0 ? now - a->calm_since_ms : 0));
		return;
	}
	a->busy = BUSY_GROW;
	a->last_grow_ms = now;
	a->ops->grow(a, c->grow_step);
}

struct app *
app_new(struct event_base *base, struct app_conf *ac)
{
	struct app *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if ((a->conf = app_conf_dup(ac)) == NULL) {
		free(a);
		return NULL;
	}
	a->base = base;
	a->before = a->best = -1;
	yield_init(&a->yield);
	switch (ac->type) {
	case APP_REDIS:
		a->ops = &redis_ops;
		break;
	case APP_JVM:
		a->ops = &jvm_ops;
		break;
	case APP_CGROUP:
		a->ops = &cgroup_ops;
		break;
	}
	a->ev_measure = evtimer_new(base, measure_cb, a);
	a->ev_deadline = evtimer_new(base, deadline_cb, a);
	if (a->ops == NULL || a->ev_measure == NULL ||
	    a->ev_deadline == NULL || a->ops->init(a) == -1) {
		if (a->ev_measure != NULL)
			event_free(a->ev_measure);
		if (a->ev_deadline != NULL)
			event_free(a->ev_deadline);
		app_conf_free(a->conf);
		free(a);
		return NULL;
	}
	app_set_last(a, "configured");
	return a;
}

void
app_free(struct app *a)
{
	if (a->busy == BUSY_SHRINK && !a->answered) {
		sample(a);
		answer(a);
	}
	a->ops->free(a);
	event_free(a->ev_measure);
	event_free(a->ev_deadline);
	if (a->ev_relay != NULL)
		event_free(a->ev_relay);
	if (a->mc != NULL)
		memcoop_close(a->mc);
	app_conf_free(a->conf);
	free(a);
}
