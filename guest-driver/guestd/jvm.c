// SPDX-License-Identifier: GPL-2.0-only
/*
 * The JVM adapter (HotSpot): the attach protocol (attach.h) spoken in the
 * event loop, no jcmd process.  The first request asks VM.flags which
 * collector runs.  Shrink: G1, Parallel, Serial: GC.run (a full GC; G1 and
 * Serial then uncommit the free heap down to MaxHeapFreeRatio).  On G1 the
 * heap free ratios (manageable flags) are lowered to 0/RATIO_MAX_LOW for
 * that GC.run, so the full GC leaves live / (1 - RATIO_MAX_LOW%) committed,
 * not live / 30% (the defaults 40/70; docs/memcoop-guestd.md has the
 * measurement); ZGC and Shenandoah: VM.set_flag SoftMaxHeapSize (the
 * committed heap target) lowered by the amount, then GC.run.  Grow-back
 * raises SoftMaxHeapSize again; exit restores it.
 *
 * G1, Parallel, Serial have no runtime heap cap (G1 in OpenJDK 17 ignores
 * SoftMaxHeapSize), so after a shrink the adapter holds the JVM itself
 * (guestd.h, struct jvm_hold): its allowance is the RSS measured at the end
 * of the shrink (G1: after its uncommit, below), raised only by grow-back;
 * a watch (every HOLD_POLL_MS) runs GC.run again when the RSS is over it
 * by more than HOLD_SLACK while MemAvailable is under grow-margin, at most
 * once per hold-interval; when MemAvailable is under grow-margin /
 * HOLD_CRIT_DIV, as soon as it is over by HOLD_CRIT_SLACK, at most once per
 * quarter hold-interval (jvm_hold_critical(), jvm_hold_decide()).  G1's
 * ratios stay low while held, so its own full GCs and Remark shrink the
 * heap too.  Grow-back that brings the allowance to the RSS before the
 * first shrink releases the hold and sets the JVM's own ratios back, as
 * exit does; a new JVM pid ends it (that JVM has its own ratios).
 *
 * SIGQUIT kills a process that does not catch it, so the attach listener
 * is only started in a process that maps libjvm.so and catches SIGQUIT
 * (/proc/PID/status SigCgt; not with -Xrs).  Every wait (the socket to
 * appear, the connection, the reply) is bounded by deadline-ms.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "attach.h"
#include "guestd.h"
#include "io.h"
#include "log.h"
#include "meminfo.h"

#define JVM_POLL_MS	50	/* waiting for the attach socket */
#define SOFTMAX_FLOOR	(32 * MIB)
#define RATIO_MAX_LOW	10	/* MaxHeapFreeRatio during our GC.run (G1) */
#define RATIO_MIN_DEF	40	/* HotSpot's defaults, when VM.flags has none */
#define RATIO_MAX_DEF	70
#define HOLD_POLL_MS	100	/* the watch of a held JVM's RSS */
#define HOLD_SLACK	(8 * MIB) /* over the allowance by more: collected */
#define HOLD_CRIT_DIV	4	/* MemAvailable under grow-margin / 4: critical */
#define HOLD_CRIT_SLACK	(2 * MIB) /* then over by more (a THP): collected */
#define UNCOMMIT_POLL_MS 50	/* after G1's GC.run: its RSS falling */
#define UNCOMMIT_FLAT_MS 500	/* not falling this long: uncommitted */
#define UNCOMMIT_REGROW	(32 * MIB) /* or grown this much over its lowest */

enum jvm_op {
	JOP_NONE = 0,
	JOP_SHRINK,
	JOP_GROW,
	JOP_RESTORE,
	JOP_HOLD,
};

struct jvm;
typedef void (*jvm_reply)(struct jvm *, int status, const char *text);

struct jvm {
	struct app		*app;
	pid_t			 pid;
	enum jvm_gc		 gc;
	uint64_t		 maxheap;	/* MaxHeapSize */
	int			 soft_lowered;
	uint64_t		 soft_orig;	/* SoftMaxHeapSize found */
	uint64_t		 soft_set;	/* what we set */
	int			 ratio_lowered;	/* Min/MaxHeapFreeRatio may be ours */
	uint64_t		 ratio_min;	/* the JVM's own, to set back */
	uint64_t		 ratio_max;
	int			 gc_ok;		/* the GC.run of this shrink */
	char			 gc_msg[LAST_MAX];
	struct jvm_hold		 hold;
	struct event		*ev_uncommit;	/* after G1's GC.run */
	int64_t			 unc_best;	/* lowest RSS since it */
	uint64_t		 unc_drop_ms;	/* when it last fell */
	struct event		*ev_hold;	/* the watch, while held */
	int			 hold_waiting;	/* over, rate-limited: said */
	uint64_t		 hold_gcs;

	enum jvm_op		 op;
	uint64_t		 bytes;
	uint64_t		 target;
	uint64_t		 op_start;
	struct event		*ev_timeout;
	struct event		*ev_poll;
	struct bufferevent	*bev;
	char			 sock[108];
	char			 trigger[128];
	char			 cmdline[128];	/* the request in flight */
	jvm_reply		 on_reply;
	char			 why[200];
};

static struct jvm *
J(struct app *a)
{
	return a->priv;
}

static void
conn_close(struct jvm *j)
{
	if (j->bev != NULL)
		bufferevent_free(j->bev);
	j->bev = NULL;
	if (j->trigger[0] != '\0') {
		unlink(j->trigger);
		j->trigger[0] = '\0';
	}
}

static void
op_end(struct jvm *j, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
op_end(struct jvm *j, int ok, const char *fmt, ...)
{
	char msg[LAST_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	evtimer_del(j->ev_timeout);
	evtimer_del(j->ev_poll);
	evtimer_del(j->ev_uncommit);
	conn_close(j);
	if (!ok)
		j->gc = GC_UNKNOWN;	/* look again next time */
	if (j->op == JOP_NONE)
		return;
	j->op = JOP_NONE;
	app_action_done(j->app, ok, "%s", msg);
}

static void
timeout_cb(int fd, short what, void *arg)
{
	struct jvm *j = arg;

	(void)fd;
	(void)what;
	op_end(j, 0, "jvm %d: %s: no answer in time (deadline-ms)",
	    (int)j->pid, j->cmdline);
}

/* ---- finding the process ---- */

static int
comm_is(pid_t pid, const char *name)
{
	char path[64], buf[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (io_read_path(path, buf, sizeof(buf)) <= 0)
		return 0;
	buf[strcspn(buf, "\n")] = '\0';
	return strcmp(buf, name) == 0;
}

static pid_t
find_process(const char *name)
{
	struct dirent *de;
	pid_t best = -1, p;
	DIR *d;

	if ((d = opendir("/proc")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		p = (pid_t)atoi(de->d_name);
		if (p > 0 && (best == -1 || p < best) && comm_is(p, name))
			best = p;
	}
	closedir(d);
	return best;
}

/* ---- the hold (guestd.h) ---- */

/*
 * Critically short (MemAvailable under grow-margin / HOLD_CRIT_DIV, or
 * before h->squeezed_ms: right after a shrink, whatever MemAvailable says)
 * with a held JVM over its allowance by more than HOLD_CRIT_SLACK (not its
 * RSS's jitter, one huge page): the next step is the OOM killer.  In the
 * apps bench CacheService's heap grew 97M -> 206M between two GC.runs 1 s
 * apart (every young GC keeps all it copies), its RSS 221.9 -> 289.0M in
 * 0.63 s, and MemAvailable fell to 1.4M; java is OOM-killed at about 340
 * MiB there.  MemAvailable lags (the kernel folds its per-CPU counts about
 * once a second), so critical starts well above 0.  Right after a shrink
 * the memory it freed still counts as available although the balloon is
 * taking it: on a quiet host the JVM grew 284.4 -> 378.5M in the 0.3 s
 * that MemAvailable stayed over grow-margin, and was OOM-killed before its
 * first hold GC.run was over.
 */
int
jvm_hold_critical(const struct jvm_hold *h, uint64_t now, int64_t rss,
    int64_t avail, uint64_t margin)
{
	return h->allowance != 0 && rss >= 0 && avail >= 0 &&
	    ((uint64_t)avail < margin / HOLD_CRIT_DIV ||
	    now < h->squeezed_ms) &&
	    (uint64_t)rss > h->allowance + HOLD_CRIT_SLACK;
}

/*
 * Over its allowance by more than HOLD_SLACK while the guest is short:
 * collected, at most once per hold-interval; critical (above): collected
 * at most once per quarter hold-interval (the full GCs of CacheService
 * took 78-648 ms there, and while one runs the JVM allocates nothing).
 */
enum hold_act
jvm_hold_decide(const struct jvm_hold *h, uint64_t now, int64_t rss,
    int64_t avail, uint64_t margin, uint64_t interval_ms)
{
	uint64_t gap = interval_ms;

	if (jvm_hold_critical(h, now, rss, avail, margin))
		gap = interval_ms / 4;
	else if (h->allowance == 0 || rss < 0 || avail < 0 ||
	    (uint64_t)avail >= margin)
		return HOLD_OK;
	/* within its allowance: only critically short, once an interval
	 * (an allowance measured after G1 had regrown, 405.7M, was above
	 * what the guest could hold: java OOM-killed at 390 MiB, never
	 * collected) */
	else if ((uint64_t)rss <= h->allowance + HOLD_SLACK &&
	    (uint64_t)avail >= margin / HOLD_CRIT_DIV)
		return HOLD_OK;
	if (h->last_gc_ms != 0 && now < h->last_gc_ms + gap)
		return HOLD_WAIT;
	return HOLD_COLLECT;
}

void
jvm_hold_shrunk(struct jvm_hold *h, uint64_t before, uint64_t after)
{
	/* last_gc_ms stays: no wait for the first hold GC.run (the shrink
	 * waited for G1's uncommit, and a JVM under load grew 210.2M ->
	 * 361.6M in the 1 s after it while the balloon took the rest) */
	if (h->allowance == 0) {
		h->orig = before;
		h->allowance = after;
	} else if (after < h->allowance) {
		/* only grow-back raises it: a later request that found the
		 * JVM grown (its GC.run measured from there) must not */
		h->allowance = after;
	}
	if (h->allowance == 0)
		h->allowance = 1;	/* 0 means not held */
}

int
jvm_hold_grow(struct jvm_hold *h, uint64_t bytes)
{
	if (h->allowance == 0)
		return 0;
	h->allowance += bytes;
	if (h->allowance < h->orig)
		return 0;
	h->allowance = 0;
	h->orig = 0;
	return 1;
}

/* MemAvailable in bytes, or -1. */
static int64_t
mem_available(void)
{
	long kib = meminfo_kib("MemAvailable:");

	return kib < 0 ? -1 : (int64_t)kib * 1024;
}

static void
hold_release(struct jvm *j)
{
	memset(&j->hold, 0, sizeof(j->hold));
	j->hold_waiting = 0;
	if (j->ev_hold != NULL)
		evtimer_del(j->ev_hold);
}

static pid_t
resolve_pid(struct jvm *j)
{
	const struct app_conf *c = j->app->conf;
	char buf[32], *end;
	pid_t p = -1;
	long v;

	if (c->pid != 0)
		p = c->pid;
	else if (c->pid_file != NULL) {
		if (io_read_path(c->pid_file, buf, sizeof(buf)) > 0) {
			errno = 0;
			v = strtol(buf, &end, 10);
			if (errno == 0 && v > 0 && v < 0x7fffffff &&
			    (*end == '\n' || *end == '\0'))
				p = (pid_t)v;
		}
	} else if (j->pid > 0 && comm_is(j->pid, c->process))
		p = j->pid;
	else
		p = find_process(c->process);
	if (p > 0 && proc_gone(p))
		p = -1;
	if (p != j->pid) {
		j->gc = GC_UNKNOWN;
		j->soft_lowered = 0;
		j->ratio_lowered = 0;	/* a new JVM has its own ratios */
		hold_release(j);
		if (p > 0)
			log_info("app %s: JVM is pid %d", j->app->conf->name,
			    (int)p);
	}
	j->pid = p;
	return p;
}

/* 1 if @pid maps libjvm.so and catches SIGQUIT (so SIGQUIT is safe). */
static int
is_hotspot(pid_t pid, char *why, size_t wl)
{
	char path[64], line[512], status[4096], *p;
	unsigned long long cgt;
	int jvm = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(why, wl, "%s: %s", path, strerror(errno));
		return 0;
	}
	while (!jvm && fgets(line, sizeof(line), f) != NULL)
		jvm = strstr(line, "/libjvm.so") != NULL;
	fclose(f);
	if (!jvm) {
		snprintf(why, wl, "pid %d does not map libjvm.so: not a HotSpot"
		    " JVM, not signalled", (int)pid);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (io_read_path(path, status, sizeof(status)) == -1 ||
	    (p = strstr(status, "\nSigCgt:")) == NULL ||
	    sscanf(p + 8, "%llx", &cgt) != 1) {
		snprintf(why, wl, "%s: no SigCgt", path);
		return 0;
	}
	if (!(cgt & (1ULL << (SIGQUIT - 1)))) {
		snprintf(why, wl, "JVM %d does not catch SIGQUIT (-Xrs?): "
		    "attach would kill it, not signalled", (int)pid);
		return 0;
	}
	return 1;
}

/* ---- one attach request ---- */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct jvm *j = arg;

	if (evbuffer_get_length(bufferevent_get_input(bev)) > ATTACH_REPLY_MAX)
		op_end(j, 0, "jvm %d: %s: reply over %d bytes", (int)j->pid,
		    j->cmdline, ATTACH_REPLY_MAX);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct jvm *j = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	jvm_reply cb = j->on_reply;
	char *buf, *text;
	int status;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (!(what & BEV_EVENT_EOF))
		return (void)op_end(j, 0, "jvm %d: %s: %s", (int)j->pid,
		    j->cmdline, evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
	if (len == 0)
		return (void)op_end(j, 0, "jvm %d: %s: the JVM closed the "
		    "attach socket without answering (gone?)", (int)j->pid,
		    j->cmdline);
	if ((buf = malloc(len + 1)) == NULL)
		return (void)op_end(j, 0, "out of memory");
	evbuffer_remove(in, buf, len);
	if (attach_parse_reply(buf, len, &status, &text) == -1) {
		free(buf);
		return (void)op_end(j, 0, "jvm %d: %s: the reply has no "
		    "status line", (int)j->pid, j->cmdline);
	}
	bufferevent_free(j->bev);
	j->bev = NULL;
	j->on_reply = NULL;
	cb(j, status, text);
	free(buf);
}

static void
connect_now(struct jvm *j)
{
	struct sockaddr_un sun;
	char req[256];
	int n;

	if (j->trigger[0] != '\0') {
		unlink(j->trigger);
		j->trigger[0] = '\0';
	}
	if ((n = attach_jcmd_request(req, sizeof(req), j->cmdline)) < 0)
		return op_end(j, 0, "jvm: request too long");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", j->sock);
	j->bev = bufferevent_socket_new(j->app->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (j->bev == NULL)
		return op_end(j, 0, "out of memory");
	bufferevent_setcb(j->bev, read_cb, NULL, event_cb, j);
	bufferevent_enable(j->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(j->bev, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1)
		return op_end(j, 0, "jvm %d: connect %s: %s", (int)j->pid,
		    j->sock, strerror(errno));
	bufferevent_write(j->bev, req, (size_t)n);
}

static int
socket_ready(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void
poll_cb(int fd, short what, void *arg)
{
	struct jvm *j = arg;
	struct timeval tv = { 0, JVM_POLL_MS * 1000 };

	(void)fd;
	(void)what;
	if (socket_ready(j->sock))
		return connect_now(j);
	if (proc_gone(j->pid))
		return op_end(j, 0, "jvm %d: exited while attaching",
		    (int)j->pid);
	evtimer_add(j->ev_poll, &tv);
}

/* Send jcmd @cmdline; @cb gets the reply (the op's timeout bounds it). */
static void
jcmd(struct jvm *j, jvm_reply cb, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
jcmd(struct jvm *j, jvm_reply cb, const char *fmt, ...)
{
	va_list ap;
	int fd;

	va_start(ap, fmt);
	vsnprintf(j->cmdline, sizeof(j->cmdline), fmt, ap);
	va_end(ap);
	j->on_reply = cb;
	snprintf(j->sock, sizeof(j->sock), "/proc/%d/root/tmp/.java_pid%d",
	    (int)j->pid, (int)j->pid);
	if (socket_ready(j->sock))
		return connect_now(j);
	if (!is_hotspot(j->pid, j->why, sizeof(j->why)))
		return op_end(j, 0, "%s", j->why);
	/* the trigger: .attach_pid<PID> in its cwd, else in its /tmp */
	snprintf(j->trigger, sizeof(j->trigger), "/proc/%d/cwd/.attach_pid%d",
	    (int)j->pid, (int)j->pid);
	fd = open(j->trigger, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(j->trigger, sizeof(j->trigger),
		    "/proc/%d/root/tmp/.attach_pid%d", (int)j->pid, (int)j->pid);
		fd = open(j->trigger, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	}
	if (fd == -1) {
		j->trigger[0] = '\0';
		return op_end(j, 0, "jvm %d: cannot create .attach_pid: %s",
		    (int)j->pid, strerror(errno));
	}
	close(fd);
	if (kill(j->pid, SIGQUIT) == -1)
		return op_end(j, 0, "jvm %d: SIGQUIT: %s", (int)j->pid,
		    strerror(errno));
	log_debug("app %s: started the attach listener of %d",
	    j->app->conf->name, (int)j->pid);
	poll_cb(-1, 0, j);
}

static int
start_op(struct jvm *j, enum jvm_op op, uint64_t bytes)
{
	uint64_t ms = j->app->conf->deadline_ms;
	struct timeval tv = { (time_t)(ms / 1000),
	    (suseconds_t)(ms % 1000) * 1000 };

	j->op = op;
	j->bytes = bytes;
	j->op_start = now_ms();
	if (resolve_pid(j) <= 0) {
		op_end(j, 0, "no JVM found (%s)", j->app->conf->pid_file ?
		    j->app->conf->pid_file : j->app->conf->process ?
		    j->app->conf->process : "pid");
		return -1;
	}
	evtimer_add(j->ev_timeout, &tv);
	return 0;
}

/* ---- shrink ---- */

static void ratios_restore(struct jvm *j);
static void soft_restore(struct jvm *j);
static void uncommit_wait(struct jvm *j);

/* The ratios are back (or could not be set back): finish the op. */
static void
ratios_done(struct jvm *j)
{
	switch (j->op) {
	case JOP_SHRINK:
		return op_end(j, j->gc_ok, "%s", j->gc_msg);
	case JOP_RESTORE:
		if (j->soft_lowered)
			return soft_restore(j);
		/* fall through */
	default:
		return op_end(j, !j->ratio_lowered, "heap free ratios %s",
		    j->ratio_lowered ? "not set back" : "set back");
	}
}

static void
ratio_min_back(struct jvm *j, int status, const char *text)
{
	if (attach_jcmd_quiet_ok(status, text))
		j->ratio_lowered = 0;
	else
		log_warnx("app %s: VM.set_flag MinHeapFreeRatio %" PRIu64
		    ": %.120s", j->app->conf->name, j->ratio_min, text);
	ratios_done(j);
}

static void
ratio_max_back(struct jvm *j, int status, const char *text)
{
	if (!attach_jcmd_quiet_ok(status, text))
		log_warnx("app %s: VM.set_flag MaxHeapFreeRatio %" PRIu64
		    ": %.120s", j->app->conf->name, j->ratio_max, text);
	/* Max first: Min may never exceed it */
	jcmd(j, ratio_min_back, "VM.set_flag MinHeapFreeRatio %" PRIu64,
	    j->ratio_min);
}

/* Set the JVM's own heap free ratios again, then ratios_done(). */
static void
ratios_restore(struct jvm *j)
{
	jcmd(j, ratio_max_back, "VM.set_flag MaxHeapFreeRatio %" PRIu64,
	    j->ratio_max);
}

/*
 * OpenJDK 17's G1 uncommits the heap its full GC freed in the background,
 * after a delay (its service thread): the RSS may stay flat for longer than
 * app.c's settling takes to decide it stopped falling (the bench: answered
 * 761.2M -> 633.6M, the balloon then took the guest's free memory and java
 * was OOM-killed at anon-rss 488 MiB; another run, 761.4M -> 170.4M).  So
 * the shrink of G1 is over when its RSS has not fallen for UNCOMMIT_FLAT_MS,
 * has grown UNCOMMIT_REGROW over its lowest (allocation overtook it: the
 * bench grew 247.5M -> 321.6M while this waited), or before deadline-ms.
 */
static void
uncommit_cb(int fd, short what, void *arg)
{
	struct jvm *j = arg;
	struct timeval tv = { 0, UNCOMMIT_POLL_MS * 1000 };
	uint64_t now = now_ms(), dl = j->app->conf->deadline_ms;
	int64_t rss = proc_rss(j->pid);

	(void)fd;
	(void)what;
	if (rss >= 0 && (j->unc_best < 0 || rss < j->unc_best)) {
		j->unc_best = rss;
		j->unc_drop_ms = now;
	}
	/* growing again under load, or held and critical: the hold takes it
	 * from here (a 0.5M request waited 2.7 s here while MemAvailable fell
	 * to 1.4M, and the hold cannot act during a shrink) */
	if (rss < 0 || now >= j->unc_drop_ms + UNCOMMIT_FLAT_MS ||
	    rss > j->unc_best + (int64_t)UNCOMMIT_REGROW ||
	    now + UNCOMMIT_POLL_MS * 2 >= j->op_start + dl ||
	    (guestd != NULL && jvm_hold_critical(&j->hold, now, rss,
	    mem_available(), guestd->conf.grow_margin)))
		return op_end(j, 1, "%s, RSS %s after %" PRIu64 " ms",
		    j->gc_msg, fmt_size(j->unc_best), now - j->op_start);
	evtimer_add(j->ev_uncommit, &tv);
}

static void
uncommit_wait(struct jvm *j)
{
	j->unc_best = -1;
	j->unc_drop_ms = now_ms();
	uncommit_cb(-1, 0, j);
}

static void
shrink_gc_done(struct jvm *j, int status, const char *text)
{
	j->gc_ok = attach_jcmd_quiet_ok(status, text);
	if (!j->gc_ok)
		snprintf(j->gc_msg, sizeof(j->gc_msg),
		    "jvm %d: GC.run: status %d: %.80s", (int)j->pid, status,
		    text);
	else if (j->soft_lowered)
		snprintf(j->gc_msg, sizeof(j->gc_msg),
		    "SoftMaxHeapSize %s, GC.run (%s)",
		    fmt_size((int64_t)j->soft_set), attach_gc_name(j->gc));
	else
		snprintf(j->gc_msg, sizeof(j->gc_msg), "GC.run (%s%s)",
		    attach_gc_name(j->gc), j->ratio_lowered ?
		    ", heap free ratios lowered for it" : "");
	/* G1: the ratios stay low while the JVM is held (its own full GCs
	 * and Remark shrink too), set back on release, restore or failure */
	if (j->ratio_lowered && !j->gc_ok)
		return ratios_restore(j);
	if (j->gc_ok && j->gc == GC_G1)
		return uncommit_wait(j);
	op_end(j, j->gc_ok, "%s", j->gc_msg);
}

static void
ratio_max_low(struct jvm *j, int status, const char *text)
{
	if (!attach_jcmd_quiet_ok(status, text))
		log_warnx("app %s: VM.set_flag MaxHeapFreeRatio: %.120s",
		    j->app->conf->name, text);
	jcmd(j, shrink_gc_done, "GC.run");
}

static void
ratio_min_low(struct jvm *j, int status, const char *text)
{
	if (!attach_jcmd_quiet_ok(status, text)) {
		/* Min is what it was: Max cannot go below it, leave both */
		log_warnx("app %s: VM.set_flag MinHeapFreeRatio: %.120s",
		    j->app->conf->name, text);
		j->ratio_lowered = 0;
		return jcmd(j, shrink_gc_done, "GC.run");
	}
	jcmd(j, ratio_max_low, "VM.set_flag MaxHeapFreeRatio %" PRIu64,
	    j->ratio_max < RATIO_MAX_LOW ? j->ratio_max : RATIO_MAX_LOW);
}

static void
shrink_soft_done(struct jvm *j, int status, const char *text)
{
	if (!attach_jcmd_quiet_ok(status, text))
		log_warnx("app %s: VM.set_flag SoftMaxHeapSize: %.120s",
		    j->app->conf->name, text);
	else
		j->soft_set = j->target;
	jcmd(j, shrink_gc_done, "GC.run");
}

static void
shrink_act(struct jvm *j)
{
	uint64_t from;

	app_baseline(j->app);
	if (j->gc == GC_EPSILON)
		return op_end(j, 1, "Epsilon GC never frees: nothing to do");
	if (j->gc == GC_G1 && j->ratio_lowered && j->hold.allowance != 0)
		return jcmd(j, shrink_gc_done, "GC.run");	/* still low */
	if (j->gc == GC_G1) {
		j->ratio_lowered = 1;	/* until they are known to be back */
		return jcmd(j, ratio_min_low, "VM.set_flag MinHeapFreeRatio 0");
	}
	if (j->gc != GC_Z && j->gc != GC_SHENANDOAH)
		return jcmd(j, shrink_gc_done, "GC.run");
	if (!j->soft_lowered) {
		j->soft_orig = j->soft_orig != 0 ? j->soft_orig : j->maxheap;
		j->soft_set = j->soft_orig;
		j->soft_lowered = 1;
	}
	from = j->soft_set;
	j->target = from > SOFTMAX_FLOOR + j->bytes ? from - j->bytes :
	    SOFTMAX_FLOOR;
	jcmd(j, shrink_soft_done, "VM.set_flag SoftMaxHeapSize %" PRIu64,
	    j->target);
}

static void
flags_done(struct jvm *j, int status, const char *text)
{
	uint64_t v;

	if (status != 0)
		return op_end(j, 0, "jvm %d: VM.flags: status %d: %.80s",
		    (int)j->pid, status, text);
	j->gc = attach_gc_kind(text);
	if (attach_flag_u64(text, "MaxHeapSize", &v) == 0)
		j->maxheap = v;
	if (!j->soft_lowered && attach_flag_u64(text, "SoftMaxHeapSize",
	    &v) == 0)
		j->soft_orig = v;
	if (!j->ratio_lowered) {	/* else what we found before */
		j->ratio_min = attach_flag_u64(text, "MinHeapFreeRatio",
		    &v) == 0 ? v : RATIO_MIN_DEF;
		j->ratio_max = attach_flag_u64(text, "MaxHeapFreeRatio",
		    &v) == 0 ? v : RATIO_MAX_DEF;
	}
	log_info("app %s: JVM %d runs %s GC, MaxHeapSize %s",
	    j->app->conf->name, (int)j->pid, attach_gc_name(j->gc),
	    fmt_size((int64_t)j->maxheap));
	if (j->op == JOP_SHRINK)
		shrink_act(j);
}

static void
jvm_shrink(struct app *a, uint64_t bytes)
{
	struct jvm *j = J(a);

	if (start_op(j, JOP_SHRINK, bytes) == -1)
		return;
	if (j->gc == GC_UNKNOWN)
		return jcmd(j, flags_done, "VM.flags");
	shrink_act(j);
}

/* ---- grow, restore ---- */

static void
soft_set_done(struct jvm *j, int status, const char *text)
{
	uint64_t was = j->soft_set;

	if (!attach_jcmd_quiet_ok(status, text))
		return op_end(j, 0, "jvm %d: VM.set_flag SoftMaxHeapSize: "
		    "%.80s", (int)j->pid, text);
	j->soft_set = j->target;
	if (j->target >= j->soft_orig)
		j->soft_lowered = 0;
	op_end(j, 1, "SoftMaxHeapSize %s -> %s%s", fmt_size((int64_t)was),
	    fmt_size((int64_t)j->target), j->soft_lowered ? "" : " (restored)");
}

static void
jvm_grow(struct app *a, uint64_t bytes)
{
	struct jvm *j = J(a);

	if (j->hold.allowance != 0) {
		if (!jvm_hold_grow(&j->hold, bytes))
			return app_action_done(a, 1, "hold: allowance %s of %s",
			    fmt_size((int64_t)j->hold.allowance),
			    fmt_size((int64_t)j->hold.orig));
		hold_release(j);
		log_info("app %s: hold released after %" PRIu64 " GC.run",
		    a->conf->name, j->hold_gcs);
		if (!j->ratio_lowered)
			return app_action_done(a, 1, "hold released");
	}
	if (j->ratio_lowered) {		/* released, or a shrink timed out */
		if (start_op(j, JOP_GROW, bytes) == 0)
			ratios_restore(j);
		return;
	}
	if (!j->soft_lowered)
		return app_action_done(a, 1, "nothing lowered");
	if (start_op(j, JOP_GROW, bytes) == -1)
		return;
	j->target = j->soft_set + bytes >= j->soft_orig ? j->soft_orig :
	    j->soft_set + bytes;
	jcmd(j, soft_set_done, "VM.set_flag SoftMaxHeapSize %" PRIu64,
	    j->target);
}

static void
jvm_restore(struct app *a)
{
	struct jvm *j = J(a);

	evtimer_del(j->ev_timeout);
	evtimer_del(j->ev_poll);
	evtimer_del(j->ev_uncommit);
	conn_close(j);
	j->op = JOP_NONE;
	hold_release(j);
	if (!j->soft_lowered && !j->ratio_lowered)
		return app_action_done(a, 1, "nothing lowered");
	if (start_op(j, JOP_RESTORE, 0) == -1)
		return;
	if (j->ratio_lowered)
		return ratios_restore(j);	/* then soft_restore() */
	soft_restore(j);
}

static void
soft_restore(struct jvm *j)
{
	j->target = j->soft_orig;
	jcmd(j, soft_set_done, "VM.set_flag SoftMaxHeapSize %" PRIu64,
	    j->target);
}

static int
jvm_lowered(struct app *a)
{
	return J(a)->soft_lowered || J(a)->ratio_lowered ||
	    J(a)->hold.allowance != 0;
}

static void
hold_gc_done(struct jvm *j, int status, const char *text)
{
	if (!attach_jcmd_quiet_ok(status, text))
		return op_end(j, 0, "jvm %d: GC.run: status %d: %.80s",
		    (int)j->pid, status, text);
	op_end(j, 1, "GC.run %" PRIu64 " done in %" PRIu64 " ms", j->hold_gcs,
	    now_ms() - j->op_start);
}

/* The watch: every HOLD_POLL_MS while held, when nothing else runs. */
static void
hold_cb(int fd, short what, void *arg)
{
	struct jvm *j = arg;
	struct app *a = j->app;
	struct timeval tv = { 0, HOLD_POLL_MS * 1000 };
	uint64_t margin, now = now_ms();
	int64_t rss, avail;

	(void)fd;
	(void)what;
	if (j->hold.allowance == 0)
		return;
	evtimer_add(j->ev_hold, &tv);
	if (j->op != JOP_NONE || a->busy != BUSY_NONE || guestd == NULL)
		return;
	margin = guestd->conf.grow_margin;
	rss = proc_rss(j->pid);
	avail = mem_available();
	switch (jvm_hold_decide(&j->hold, now, rss, avail, margin,
	    guestd->conf.hold_interval_ms)) {
	case HOLD_OK:
		j->hold_waiting = 0;
		return;
	case HOLD_WAIT:
		if (!j->hold_waiting)
			log_debug("app %s: hold: RSS %s over %s, waiting for "
			    "hold-interval", a->conf->name, fmt_size(rss),
			    fmt_size((int64_t)j->hold.allowance));
		j->hold_waiting = 1;
		return;
	case HOLD_COLLECT:
		break;
	}
	j->hold_waiting = 0;
	if (app_hold_begin(a) == -1 || start_op(j, JOP_HOLD, 0) == -1)
		return;
	j->hold.last_gc_ms = now;
	j->hold_gcs++;
	log_info("app %s: hold: RSS %s, allowance %s, MemAvailable %s"
	    "%s, margin %s: GC.run %" PRIu64, a->conf->name, fmt_size(rss),
	    fmt_size((int64_t)j->hold.allowance), fmt_size(avail),
	    jvm_hold_critical(&j->hold, now, rss, avail, margin) ?
	    " (critical)" : "", fmt_size((int64_t)margin), j->hold_gcs);
	jcmd(j, hold_gc_done, "GC.run");
}

static void
jvm_shrunk(struct app *a, int64_t before, int64_t after)
{
	struct jvm *j = J(a);
	int was = j->hold.allowance != 0;

	/* ZGC, Shenandoah: SoftMaxHeapSize holds; Epsilon frees nothing */
	if (j->gc != GC_G1 && j->gc != GC_PARALLEL && j->gc != GC_SERIAL)
		return;
	jvm_hold_shrunk(&j->hold, (uint64_t)before, (uint64_t)after);
	/* the balloon takes what the shrink freed: critical for a while */
	if (guestd != NULL)
		j->hold.squeezed_ms = now_ms() + guestd->conf.grow_period_ms;
	log_info("app %s: hold: RSS allowance %s until grow-back gives it "
	    "%s again", a->conf->name, fmt_size((int64_t)j->hold.allowance),
	    fmt_size((int64_t)j->hold.orig));
	if (!was)
		hold_cb(-1, 0, j);
}

static pid_t
jvm_pid(struct app *a)
{
	return J(a)->pid > 0 ? J(a)->pid : -1;
}

static int
jvm_cannot_free(struct app *a)
{
	return J(a)->gc == GC_EPSILON;
}

static void
jvm_probe(struct app *a)
{
	if (J(a)->op == JOP_NONE)
		resolve_pid(J(a));
}

static int
jvm_init(struct app *a)
{
	struct jvm *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->app = a;
	j->ev_timeout = evtimer_new(a->base, timeout_cb, j);
	j->ev_poll = evtimer_new(a->base, poll_cb, j);
	j->ev_hold = evtimer_new(a->base, hold_cb, j);
	j->ev_uncommit = evtimer_new(a->base, uncommit_cb, j);
	if (j->ev_timeout == NULL || j->ev_poll == NULL || j->ev_hold == NULL ||
	    j->ev_uncommit == NULL) {
		if (j->ev_timeout != NULL)
			event_free(j->ev_timeout);
		if (j->ev_poll != NULL)
			event_free(j->ev_poll);
		if (j->ev_hold != NULL)
			event_free(j->ev_hold);
		if (j->ev_uncommit != NULL)
			event_free(j->ev_uncommit);
		free(j);
		return -1;
	}
	a->priv = j;
	return 0;
}

static void
jvm_free(struct app *a)
{
	struct jvm *j = J(a);

	conn_close(j);
	event_free(j->ev_timeout);
	event_free(j->ev_poll);
	event_free(j->ev_hold);
	event_free(j->ev_uncommit);
	free(j);
	a->priv = NULL;
}

const struct adapter_ops jvm_ops = {
	.name = "jvm",
	.init = jvm_init,
	.free = jvm_free,
	.shrink = jvm_shrink,
	.grow = jvm_grow,
	.lowered = jvm_lowered,
	.restore = jvm_restore,
	.pid = jvm_pid,
	.cannot_free = jvm_cannot_free,
	.probe = jvm_probe,
	.shrunk = jvm_shrunk,
};
