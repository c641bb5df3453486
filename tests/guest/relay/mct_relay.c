/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mct-relay: in-guest tests of the pressure relay (shrink requests).
 *
 *	mct-relay badargs	every relay ioctl with bad arguments
 *	mct-relay requests	request/answer semantics, late and missed
 *				answers, sharing by priority and estimate,
 *				real-time signals, read() edge cases
 *	mct-relay exit		process exit and close in the middle of a request
 *	mct-relay fork		a forked child shares the registration
 *	mct-relay threads	many threads reading and answering at once
 *	mct-relay lib		libmemcoop: dispatch, signal mode, helper thread
 *	mct-relay oom HOLD_MIB HOG_MIB
 *				a client holding memory is asked by the OOM
 *				notifier, frees, and nobody is killed
 *	mct-relay fuzz SECS [PROCS]
 *				random ioctl/close/fork from several processes,
 *				then check that memory and slab came back
 *	mct-relay fasync	F_SETOWN/F_SETSIG on a registered fd signals only
 *				where the F_SETOWN caller may (sigio_perm)
 *	mct-relay signals	suid, then fasync (one guest for both)
 *	mct-relay many-hold N SECS
 *				for relay_balloon.py: N silent registrations by
 *				unprivileged users (within the per-user cap),
 *				held SECS seconds
 *	mct-relay client NAME MIB answer|silent|die [PRIO [nobody]]
 *				for host-driven tests (relay_balloon.py): hold
 *				MIB of memory, register (at PRIO, as nobody with
 *				an estimate of all RAM), print READY and each
 *				request as "REQ ..."; free and answer, stay
 *				silent, or die on the first request
 *
 * Requests are produced inside the guest through the driver's shrinker:
 * writing 2 to /proc/sys/vm/drop_caches runs every shrinker, and the relay
 * turns that into MEMCOOP_REASON_RECLAIM requests.  Exit 0: pass.
 */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <libmemcoop.h>

#include "meminfo.h"
#include "modparam.h"

#define PARAM_DIR	"/sys/module/memcoop/parameters/"
#define DEBUGFS_RELAY	"/sys/kernel/debug/memcoop/relay"

static const char *test_name = "mct-relay";

static void become(uid_t uid, gid_t group);

static void __attribute__((noreturn, format(printf, 2, 3)))
fail(int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL %s (line %d): ", test_name, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

#define CHECK(c) do {							\
	if (!(c))							\
		fail(__LINE__, "%s", #c);				\
} while (0)

#define CHECK_EQ(a, b) do {						\
	long long _a = (long long)(a), _b = (long long)(b);		\
	if (_a != _b)							\
		fail(__LINE__, "%s == %lld, expected %s == %lld",	\
		    #a, _a, #b, _b);					\
} while (0)

/* expr must fail with errno e */
#define CHECK_ERR(expr, e) do {						\
	long _r;							\
	errno = 0;							\
	_r = (long)(expr);						\
	if (_r != -1 || errno != (e))					\
		fail(__LINE__, "%s: got %ld (%s), expected -1 (%s)",	\
		    #expr, _r, strerror(errno), strerror(e));		\
} while (0)

#define CHECK_OK(expr) do {						\
	long _r;							\
	errno = 0;							\
	_r = (long)(expr);						\
	if (_r == -1)							\
		fail(__LINE__, "%s: %s", #expr, strerror(errno));	\
} while (0)

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void
write_file(const char *path, const char *val)
{
	int fd;

	if ((fd = open(path, O_WRONLY)) == -1)
		fail(__LINE__, "open %s: %s", path, strerror(errno));
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		fail(__LINE__, "write %s: %s", path, strerror(errno));
	close(fd);
}

static void
set_param(const char *name, unsigned int val)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	snprintf(buf, sizeof(buf), "%u", val);
	write_file(path, buf);
}

/* Run every shrinker once: the relay posts RECLAIM requests. */
static void
trigger(void)
{
	write_file("/proc/sys/vm/drop_caches", "2");
}

/* The value of "key N" in a "key value" file, or -1. */
static long long
file_value(const char *path, const char *key)
{
	char line[256], fmt[64];
	long long v = -1, x;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		fail(__LINE__, "open %s: %s", path, strerror(errno));
	snprintf(fmt, sizeof(fmt), "%s %%lld", key);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, fmt, &x) == 1 && line[strlen(key)] == ' ') {
			v = x;
			break;
		}
	fclose(f);
	return v;
}

static long long
relay_stat(const char *key)
{
	long long v = file_value(DEBUGFS_RELAY, key);

	if (v == -1)
		fail(__LINE__, "no \"%s\" in " DEBUGFS_RELAY, key);
	return v;
}

/* Open /dev/memcoop and do the handshake. */
static int
dev_open(uint64_t features)
{
	struct memcoop_api api;
	int fd;

	if ((fd = open(MEMCOOP_DEVICE, O_RDWR | O_CLOEXEC)) == -1)
		fail(__LINE__, "open " MEMCOOP_DEVICE ": %s", strerror(errno));
	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;
	api.features = features;
	if (ioctl(fd, MEMCOOP_IOC_API, &api) == -1)
		fail(__LINE__, "handshake: %s", strerror(errno));
	CHECK(api.features & MEMCOOP_FEATURE_RELAY);
	CHECK(api.ioctls & (1ull << _MEMCOOP_ANSWER));
	CHECK_EQ(api.page_size, sysconf(_SC_PAGESIZE));
	return fd;
}

static int
reg(int fd, const char *name, uint32_t prio, uint64_t est, uint32_t sig)
{
	struct memcoop_register r;

	memset(&r, 0, sizeof(r));
	snprintf((char *)r.name, sizeof(r.name), "%s", name);
	r.priority = prio;
	r.reclaimable = est;
	r.signal = sig;
	return ioctl(fd, MEMCOOP_IOC_REGISTER, &r);
}

static int
answer(int fd, uint64_t seq, uint64_t freed)
{
	struct memcoop_answer a;

	memset(&a, 0, sizeof(a));
	a.seq = seq;
	a.freed = freed;
	return ioctl(fd, MEMCOOP_IOC_ANSWER, &a);
}

static int
set_est(int fd, uint64_t est)
{
	struct memcoop_reclaimable r = { .reclaimable = est };

	return ioctl(fd, MEMCOOP_IOC_SET_RECLAIMABLE, &r);
}

static void
stats(int fd, struct memcoop_client_stats *st)
{
	memset(st, 0, sizeof(*st));
	CHECK_OK(ioctl(fd, MEMCOOP_IOC_CLIENT_STATS, st));
}

/* Wait up to @ms for an event on @fd; 1 if one was read, 0 on timeout. */
static int
next_event(int fd, struct memcoop_event *ev, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	for (;;) {
		int r = poll(&pfd, 1, ms);

		if (r == -1 && errno == EINTR)
			continue;
		CHECK(r != -1);
		if (r == 0)
			return 0;
		n = read(fd, ev, sizeof(*ev));
		if (n == -1 && errno == EAGAIN)
			continue;
		if (n != (ssize_t)sizeof(*ev))
			fail(__LINE__, "read: %zd (%s)", n, strerror(errno));
		return 1;
	}
}

/* Trigger until a shrink request arrives on @fd (at most 20 tries). */
static void
get_request(int fd, struct memcoop_event *ev)
{
	int i;

	for (i = 0; i < 20; i++) {
		trigger();
		if (next_event(fd, ev, 200)) {
			CHECK_EQ(ev->type, MEMCOOP_EVENT_SHRINK);
			return;
		}
	}
	fail(__LINE__, "no shrink request after 20 triggers");
}

static void
check_request(const struct memcoop_event *ev, uint64_t est)
{
	uint64_t t = now_ns();

	CHECK_EQ(ev->type, MEMCOOP_EVENT_SHRINK);
	CHECK(ev->seq > 0);
	CHECK(ev->shrink.pages > 0);
	CHECK(ev->shrink.pages <= est);
	CHECK_EQ(ev->shrink.reason, MEMCOOP_REASON_RECLAIM);
	CHECK(ev->shrink.level >= MEMCOOP_LEVEL_LOW && ev->shrink.level <= MEMCOOP_LEVEL_CRITICAL);
	CHECK(ev->timestamp_ns <= t);
	/* not t - 5 s: in a guest up for less than 5 s that wraps around */
	CHECK(t - ev->timestamp_ns < 5000000000ull);
	CHECK(ev->shrink.deadline_ns > ev->timestamp_ns);
}

/* ---------------------------------------------------------------- badargs */

static void
test_badargs(void)
{
	struct memcoop_register r;
	struct memcoop_reclaimable rc;
	struct memcoop_answer a;
	struct memcoop_client_stats st;
	struct memcoop_api api;
	void *ro, *gone;
	int fd, fd2;

	/* a read-only page followed by a hole, and a hole */
	ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED && gone != MAP_FAILED);
	CHECK_OK(munmap((char *)ro + 4096, 4096));
	CHECK_OK(munmap(gone, 4096));

	/* before the handshake nothing works */
	CHECK((fd = open(MEMCOOP_DEVICE, O_RDWR)) != -1);
	memset(&r, 0, sizeof(r));
	strcpy((char *)r.name, "early");
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_REGISTER, &r), EINVAL);
	CHECK_ERR(answer(fd, 1, 0), EINVAL);
	/* handshake with reserved bits or unknown features */
	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;
	api.features = MEMCOOP_FEATURE_RELAY | (1ull << 40);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_API, &api), EINVAL);
	close(fd);

	/* without the RELAY feature, relay ioctls are refused */
	fd = dev_open(0);
	CHECK_ERR(reg(fd, "norelay", 0, 1, 0), EINVAL);
	CHECK_ERR(answer(fd, 1, 0), EINVAL);
	stats(fd, &st);		/* stats work for everyone */
	CHECK_EQ(st.requests, 0);
	close(fd);

	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	/* unknown commands and wrong sizes */
	CHECK_ERR(ioctl(fd, _IOW(MEMCOOP_IOC_MAGIC, 0x3f, struct memcoop_answer), &a), ENOTTY);
	CHECK_ERR(ioctl(fd, _IOW(MEMCOOP_IOC_MAGIC, _MEMCOOP_REGISTER, struct memcoop_answer), &r),
	    ENOTTY);
	CHECK_ERR(ioctl(fd, _IOW(MEMCOOP_IOC_MAGIC, _MEMCOOP_ANSWER, struct memcoop_register), &r),
	    ENOTTY);
	CHECK_ERR(ioctl(fd, _IOR(MEMCOOP_IOC_MAGIC, _MEMCOOP_ANSWER, struct memcoop_answer), &a),
	    ENOTTY);

	/* answer, estimate before registering */
	CHECK_ERR(answer(fd, 1, 0), EINVAL);
	CHECK_ERR(set_est(fd, 10), EINVAL);

	/* register: every field */
	CHECK_ERR(reg(fd, "", 0, 1, 0), EINVAL);
	CHECK_ERR(reg(fd, "bad\001name", 0, 1, 0), EINVAL);
	CHECK_ERR(reg(fd, "tab\tname", 0, 1, 0), EINVAL);
	memset(&r, 'x', sizeof(r.name));	/* not NUL-terminated */
	memset((char *)&r + sizeof(r.name), 0, sizeof(r) - sizeof(r.name));
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_REGISTER, &r), EINVAL);
	CHECK_ERR(reg(fd, "prio", MEMCOOP_PRIO_MAX + 1, 1, 0), EINVAL);
	CHECK_ERR(reg(fd, "prio", 0xffffffffu, 1, 0), EINVAL);
	CHECK_ERR(reg(fd, "sig", 0, 1, SIGKILL), EINVAL);
	CHECK_ERR(reg(fd, "sig", 0, 1, SIGHUP), EINVAL);
	CHECK_ERR(reg(fd, "sig", 0, 1, 31), EINVAL);
	CHECK_ERR(reg(fd, "sig", 0, 1, 32), EINVAL);	/* glibc's own */
	CHECK_ERR(reg(fd, "sig", 0, 1, 33), EINVAL);
	CHECK_ERR(reg(fd, "sig", 0, 1, 65), EINVAL);
	CHECK_ERR(reg(fd, "sig", 0, 1, 0x80000020u), EINVAL);
	memset(&r, 0, sizeof(r));
	strcpy((char *)r.name, "flags");
	r.flags = 1;
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_REGISTER, &r), EINVAL);
	r.flags = 0;
	r.reserved[1] = 1;
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_REGISTER, &r), EINVAL);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_REGISTER, NULL), EFAULT);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_REGISTER, gone), EFAULT);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_REGISTER, (char *)ro + 4096 - 8), EFAULT);
	/* nothing above registered anything */
	CHECK_ERR(answer(fd, 1, 0), EINVAL);

	/* a good registration, then a second one */
	CHECK_OK(reg(fd, "badargs", MEMCOOP_PRIO_MAX, 100, 0));
	CHECK_ERR(reg(fd, "again", 0, 1, 0), EBUSY);
	CHECK_ERR(reg(fd, "", 0, 1, 0), EINVAL);	/* checked first */
	/* the same file through dup() is the same registration */
	CHECK((fd2 = dup(fd)) != -1);
	CHECK_ERR(reg(fd2, "dup", 0, 1, 0), EBUSY);
	close(fd2);

	/* estimate */
	memset(&rc, 0, sizeof(rc));
	rc.reserved = 1;
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_SET_RECLAIMABLE, &rc), EINVAL);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_SET_RECLAIMABLE, NULL), EFAULT);
	CHECK_OK(set_est(fd, 0));
	CHECK_OK(set_est(fd, UINT64_MAX));	/* clamped to RAM */
	CHECK_OK(set_est(fd, 100));

	/* answers to requests that do not exist */
	CHECK_ERR(answer(fd, 0, 0), ENOENT);
	CHECK_ERR(answer(fd, 1ull << 60, 0), ENOENT);
	CHECK_ERR(answer(fd, UINT64_MAX, 0), ENOENT);
	memset(&a, 0, sizeof(a));
	a.seq = 1;
	a.reserved[0] = 1;
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_ANSWER, &a), EINVAL);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_ANSWER, NULL), EFAULT);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_ANSWER, gone), EFAULT);

	/* stats: reserved input, unwritable output */
	memset(&st, 0, sizeof(st));
	st.reserved[0] = 1;
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_CLIENT_STATS, &st), EINVAL);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_CLIENT_STATS, ro), EFAULT);
	CHECK_ERR(ioctl(fd, MEMCOOP_IOC_CLIENT_STATS, gone), EFAULT);
	stats(fd, &st);
	CHECK_EQ(st.answers, 0);

	/* read(): too small a buffer; nothing pending on a non-blocking fd */
	{
		struct memcoop_event big[2];
		int fl = fcntl(fd, F_GETFL);

		CHECK_ERR(read(fd, big, sizeof(big[0]) - 1), EINVAL);
		CHECK_ERR(read(fd, big, 1), EINVAL);
		CHECK_OK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
		CHECK_ERR(read(fd, big, sizeof(big)), EAGAIN);
		CHECK_OK(fcntl(fd, F_SETFL, fl));
	}

	/* a real request: too much, unknown, right, twice */
	{
		struct memcoop_event ev;
		uint64_t p;

		get_request(fd, &ev);
		check_request(&ev, 100);
		p = ev.shrink.pages;
		CHECK_ERR(answer(fd, ev.seq, p + 1), ERANGE);
		CHECK_ERR(answer(fd, ev.seq, UINT64_MAX), ERANGE);
		CHECK_ERR(answer(fd, ev.seq + 1000000, 0), ENOENT);
		CHECK_OK(set_est(fd, 100 - p));	/* what an honest client does */
		CHECK_OK(answer(fd, ev.seq, p));	/* still open after ERANGE */
		CHECK_ERR(answer(fd, ev.seq, p), EALREADY);
		CHECK_ERR(answer(fd, ev.seq, 0), EALREADY);
		CHECK_ERR(answer(fd, ev.seq, p + 1), EALREADY);
		stats(fd, &st);
		CHECK_EQ(st.requests, 1);
		CHECK_EQ(st.answers, 1);
		CHECK_EQ(st.pages_requested, p);
		CHECK_EQ(st.pages_freed, p);
		CHECK_EQ(st.late, 0);
		CHECK_EQ(st.missed, 0);
		CHECK_OK(set_est(fd, 100));
		/* another file cannot answer this file's request */
		fd2 = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fd2, "other", 0, 0, 0));
		CHECK_ERR(answer(fd2, ev.seq, 0), ENOENT);
		close(fd2);
	}

	/* read() into a bad buffer fails with EFAULT and keeps the event */
	{
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct memcoop_event ev;
		int i;

		for (i = 0; i < 20; i++) {
			trigger();
			if (poll(&pfd, 1, 200) == 1)
				break;
		}
		CHECK(i < 20);
		void *volatile null = NULL;

		CHECK_ERR(read(fd, null, sizeof(ev)), EFAULT);
		CHECK_ERR(read(fd, gone, sizeof(ev)), EFAULT);
		CHECK_ERR(read(fd, ro, sizeof(ev)), EFAULT);
		CHECK_EQ(poll(&pfd, 1, 0), 1);
		CHECK_EQ(read(fd, &ev, sizeof(ev)), sizeof(ev));
		check_request(&ev, 100);
		CHECK_OK(answer(fd, ev.seq, 0));
	}
	close(fd);
	munmap(ro, 4096);
	printf("badargs: ok\n");
}

/* --------------------------------------------------------------- requests */

static void
test_requests(void)
{
	struct memcoop_client_stats st;
	struct memcoop_event ev, e2;
	int fd, a, b, c, i;
	long long missed0;

	set_param("reclaim_interval_ms", 0);
	set_param("relay_deadline_ms", 3000);	/* open requests stay open */
	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(fd, "requests", 0, 1000, 0));
	CHECK_EQ(relay_stat("clients"), 1);

	/* an open RECLAIM request is not repeated; after the answer it is */
	get_request(fd, &ev);
	check_request(&ev, 1000);
	trigger();
	trigger();
	CHECK_EQ(next_event(fd, &e2, 300), 0);
	CHECK_OK(answer(fd, ev.seq, ev.shrink.pages / 2));
	get_request(fd, &e2);
	CHECK(e2.seq > ev.seq);
	CHECK_OK(answer(fd, e2.seq, 0));

	/* estimate 0: not asked */
	CHECK_OK(set_est(fd, 0));
	trigger();
	CHECK_EQ(next_event(fd, &e2, 300), 0);
	CHECK_OK(set_est(fd, 1000));

	/* late answers: counted missed until answered, then late */
	set_param("relay_deadline_ms", 50);
	missed0 = relay_stat("missed");
	get_request(fd, &ev);
	CHECK(ev.shrink.deadline_ns - ev.timestamp_ns <= 60000000ull);
	msleep(150);
	stats(fd, &st);
	CHECK_EQ(st.missed, 1);
	CHECK_EQ(relay_stat("missed"), missed0 + 1);
	CHECK_OK(answer(fd, ev.seq, 1));
	CHECK_ERR(answer(fd, ev.seq, 1), EALREADY);
	stats(fd, &st);
	CHECK_EQ(st.missed, 0);
	CHECK_EQ(st.late, 1);
	CHECK_EQ(relay_stat("missed"), missed0);
	/* never answered: stays missed */
	get_request(fd, &ev);
	msleep(150);
	stats(fd, &st);
	CHECK_EQ(st.missed, 1);
	set_param("relay_deadline_ms", 3000);
	close(fd);
	CHECK_EQ(relay_stat("clients"), 0);

	/*
	 * Sharing: class 0 first (a, estimate 50), then class 1 by
	 * estimate (b 1000, c 3000).  The total T is what the shrinker
	 * asked; a gets min(T, 50), b and c share the rest 1:3.
	 */
	a = dev_open(MEMCOOP_FEATURE_RELAY);
	b = dev_open(MEMCOOP_FEATURE_RELAY);
	c = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(b, "share-b", 1, 1000, 0));
	CHECK_OK(reg(a, "share-a", 0, 50, 0));
	CHECK_OK(reg(c, "share-c", 1, 3000, 0));
	for (i = 0; i < 3; i++) {
		struct memcoop_event ea, eb, ec;
		uint64_t rest;

		get_request(a, &ea);
		CHECK_EQ(ea.shrink.pages, 50);	/* T >= batch (128) > 50 */
		CHECK(next_event(b, &eb, 1000));
		CHECK(next_event(c, &ec, 1000));
		rest = eb.shrink.pages + ec.shrink.pages;
		/* b = ceil(rest * 1000 / 4000), exact apportionment */
		CHECK_EQ(eb.shrink.pages, (rest * 1000 + 3999) / 4000);
		CHECK(ec.shrink.pages <= 3000);
		/* nothing freed, nothing claimed: nobody is demoted */
		CHECK_OK(answer(a, ea.seq, 0));
		CHECK_OK(answer(b, eb.seq, 0));
		CHECK_OK(answer(c, ec.seq, 0));
	}
	/* class 0 empty: class 1 alone */
	CHECK_OK(set_est(a, 0));
	{
		struct memcoop_event eb, ec;

		get_request(b, &eb);
		CHECK(next_event(c, &ec, 1000));
		CHECK_EQ(next_event(a, &e2, 200), 0);
		CHECK_OK(answer(b, eb.seq, 0));
		CHECK_OK(answer(c, ec.seq, 0));
	}
	close(a);
	close(b);
	close(c);

	/* a real-time signal with each request, to the registering process */
	{
		sigset_t set;
		siginfo_t si;
		struct timespec to = { 2, 0 };
		int sig = SIGRTMIN + 2;

		sigemptyset(&set);
		sigaddset(&set, sig);
		CHECK_OK(sigprocmask(SIG_BLOCK, &set, NULL));
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fd, "signal", 0, 100, (uint32_t)sig));
		get_request(fd, &ev);
		CHECK_EQ(sigtimedwait(&set, &si, &to), sig);
		CHECK_OK(answer(fd, ev.seq, 0));
		close(fd);
		CHECK_OK(sigprocmask(SIG_UNBLOCK, &set, NULL));
	}
	set_param("relay_deadline_ms", 200);
	set_param("reclaim_interval_ms", 100);
	printf("requests: ok\n");
}

/* ------------------------------------------------------------------- exit */

static void
test_exit(void)
{
	long long missed0, clients0;
	struct memcoop_event ev;
	int p[2], i, fd, status;
	pid_t pid;
	char c;

	set_param("reclaim_interval_ms", 0);
	clients0 = relay_stat("clients");

	/* a child registers, receives a request, exits without answering */
	for (i = 0; i < 2; i++) {
		missed0 = relay_stat("missed");
		CHECK_OK(pipe(p));
		if ((pid = fork()) == 0) {
			close(p[0]);
			fd = dev_open(MEMCOOP_FEATURE_RELAY);
			CHECK_OK(reg(fd, "exiter", 0, 500, 0));
			get_request(fd, &ev);
			if (write(p[1], "r", 1) != 1)
				_exit(2);
			if (i == 0)
				_exit(0);
			pause();	/* killed while the request is open */
			_exit(3);
		}
		close(p[1]);
		CHECK_EQ(read(p[0], &c, 1), 1);
		if (i == 1)
			kill(pid, SIGKILL);
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		CHECK(i == 0 ? WIFEXITED(status) && WEXITSTATUS(status) == 0 :
		    WIFSIGNALED(status));
		close(p[0]);
		CHECK_EQ(relay_stat("clients"), clients0);
		CHECK_EQ(relay_stat("missed"), missed0 + 1);
	}

	/* close with the request unread in the queue */
	missed0 = relay_stat("missed");
	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(fd, "closer", 0, 500, 0));
	{
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		for (i = 0; i < 20; i++) {
			trigger();
			if (poll(&pfd, 1, 100) == 1)
				break;
		}
		CHECK(i < 20);
	}
	close(fd);
	CHECK_EQ(relay_stat("clients"), clients0);
	CHECK_EQ(relay_stat("missed"), missed0 + 1);

	/* killed while blocked in read() */
	if ((pid = fork()) == 0) {
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fd, "reader", 0, 0, 0));
		(void)read(fd, &ev, sizeof(ev));
		_exit(3);
	}
	msleep(300);
	kill(pid, SIGKILL);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status));
	CHECK_EQ(relay_stat("clients"), clients0);

	/* many children die with requests open at once */
	for (i = 0; i < 8; i++) {
		if (fork() == 0) {
			fd = dev_open(MEMCOOP_FEATURE_RELAY);
			CHECK_OK(reg(fd, "herd", (uint32_t)i % 3, 100, 0));
			trigger();
			msleep(20 + 10 * i);
			_exit(0);
		}
	}
	while (wait(&status) > 0)
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(relay_stat("clients"), clients0);
	set_param("reclaim_interval_ms", 100);
	printf("exit: ok\n");
}

/* ------------------------------------------------------------------- fork */

static void
test_fork(void)
{
	struct memcoop_client_stats st;
	struct memcoop_event ev;
	int fd, status, sig = SIGRTMIN + 3;
	struct timespec to = { 2, 0 }, shortto = { 0, 500000000 };
	sigset_t set;
	siginfo_t si;
	pid_t pid;

	set_param("reclaim_interval_ms", 0);
	sigemptyset(&set);
	sigaddset(&set, sig);
	CHECK_OK(sigprocmask(SIG_BLOCK, &set, NULL));

	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(fd, "forker", 0, 300, (uint32_t)sig));
	if ((pid = fork()) == 0) {
		test_name = "mct-relay fork (child)";
		/* the child shares the registration: it may not register again */
		CHECK_ERR(reg(fd, "child", 0, 1, 0), EBUSY);
		get_request(fd, &ev);
		CHECK_OK(set_est(fd, 300 - 7));
		CHECK_OK(answer(fd, ev.seq, 7));
		/* the signal went to the parent, not to us */
		CHECK_ERR(sigtimedwait(&set, &si, &shortto), EAGAIN);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(sigtimedwait(&set, &si, &to) == sig);
	/* the child's exit did not unregister the shared file */
	CHECK_EQ(relay_stat("clients"), 1);
	stats(fd, &st);
	CHECK(st.requests >= 1);
	CHECK_EQ(st.answers, 1);
	CHECK_EQ(st.pages_freed, 7);

	/* the parent closes first, the child keeps the file: still registered */
	if ((pid = fork()) == 0) {
		msleep(500);
		CHECK_EQ(relay_stat("clients"), 1);
		get_request(fd, &ev);
		CHECK_OK(answer(fd, ev.seq, 0));
		close(fd);
		_exit(0);
	}
	close(fd);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(relay_stat("clients"), 0);
	/* the second child's request signalled us too: consume it */
	CHECK_EQ(sigtimedwait(&set, &si, &to), sig);
	CHECK_OK(sigprocmask(SIG_UNBLOCK, &set, NULL));
	set_param("reclaim_interval_ms", 100);
	printf("fork: ok\n");
}

/* ---------------------------------------------------------------- threads */

#define NFDS		4
#define NTHREADS	8

static int tfds[NFDS];
static volatile int tstop;
static long long tread[NFDS], tanswered[NFDS];
static pthread_mutex_t tmtx = PTHREAD_MUTEX_INITIALIZER;

static void *
reader_thread(void *arg)
{
	struct pollfd pfd[NFDS];
	struct memcoop_event ev[4];
	int i, k;
	ssize_t n;

	(void)arg;
	for (i = 0; i < NFDS; i++) {
		pfd[i].fd = tfds[i];
		pfd[i].events = POLLIN;
	}
	while (!tstop) {
		if (poll(pfd, NFDS, 50) <= 0)
			continue;
		for (i = 0; i < NFDS; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			n = read(tfds[i], ev, sizeof(ev));
			if (n == -1 && errno == EAGAIN)
				continue;	/* another thread took it */
			if (n <= 0 || n % (ssize_t)sizeof(ev[0]))
				fail(__LINE__, "read: %zd %s", n, strerror(errno));
			for (k = 0; k < n / (ssize_t)sizeof(ev[0]); k++) {
				if (ev[k].type != MEMCOOP_EVENT_SHRINK)
					fail(__LINE__, "event type %u", ev[k].type);
				if (answer(tfds[i], ev[k].seq, ev[k].shrink.pages / 2) == -1)
					fail(__LINE__, "answer seq %llu: %s",
					    (unsigned long long)ev[k].seq, strerror(errno));
				pthread_mutex_lock(&tmtx);
				tread[i]++;
				tanswered[i]++;
				pthread_mutex_unlock(&tmtx);
			}
		}
	}
	return NULL;
}

static uint64_t race_seq;
static int race_fd, race_ok, race_already;
static pthread_barrier_t race_bar;

static void *
race_thread(void *arg)
{
	int r;

	(void)arg;
	pthread_barrier_wait(&race_bar);
	r = answer(race_fd, race_seq, 1);
	pthread_mutex_lock(&tmtx);
	if (r == 0)
		race_ok++;
	else if (errno == EALREADY)
		race_already++;
	else
		fail(__LINE__, "racing answer: %s", strerror(errno));
	pthread_mutex_unlock(&tmtx);
	return NULL;
}

static void
test_threads(void)
{
	struct memcoop_client_stats st;
	struct memcoop_event ev;
	pthread_t th[NTHREADS];
	long long total = 0;
	int i, round;

	set_param("reclaim_interval_ms", 0);
	set_param("relay_deadline_ms", 5000);	/* TCG is slow: nothing late */
	for (i = 0; i < NFDS; i++) {
		char name[16];

		tfds[i] = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(fcntl(tfds[i], F_SETFL, O_NONBLOCK));
		snprintf(name, sizeof(name), "thr%d", i);
		/* class 0 cannot cover a batch (128): class 1 is asked too */
		CHECK_OK(reg(tfds[i], name, (uint32_t)i % 2, i % 2 ? 1000 : 30, 0));
	}
	for (i = 0; i < NTHREADS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, reader_thread, NULL), 0);
	for (round = 0; round < 300; round++) {
		trigger();
		if (round % 50 == 0)
			CHECK_OK(set_est(tfds[round / 50 % NFDS], round / 50 % 2 ? 2000 : 20));
		msleep(2);
	}
	msleep(1000);
	tstop = 1;
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < NFDS; i++) {
		stats(tfds[i], &st);
		CHECK(st.requests > 0);
		CHECK_EQ(st.requests, tread[i]);
		CHECK_EQ(st.answers, tanswered[i]);
		CHECK_EQ(st.missed, 0);
		CHECK_EQ(st.late, 0);
		CHECK_EQ(st.events_lost, 0);
		total += st.requests;
		close(tfds[i]);
	}
	CHECK(total >= 4);

	/* eight threads answer the same request at once: exactly one wins */
	race_fd = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(race_fd, "race", 0, 100, 0));
	for (round = 0; round < 10; round++) {
		get_request(race_fd, &ev);
		CHECK_OK(set_est(race_fd, 100 - (uint64_t)round - 1));	/* one page left */
		race_seq = ev.seq;
		race_ok = race_already = 0;
		pthread_barrier_init(&race_bar, NULL, NTHREADS);
		for (i = 0; i < NTHREADS; i++)
			CHECK_EQ(pthread_create(&th[i], NULL, race_thread, NULL), 0);
		for (i = 0; i < NTHREADS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&race_bar);
		CHECK_EQ(race_ok, 1);
		CHECK_EQ(race_already, NTHREADS - 1);
	}
	stats(race_fd, &st);
	CHECK_EQ(st.answers, 10);
	CHECK_EQ(st.pages_freed, 10);
	close(race_fd);
	set_param("relay_deadline_ms", 200);
	set_param("reclaim_interval_ms", 100);
	printf("threads: ok (%lld requests over %d files, %d threads)\n", total, NFDS, NTHREADS);
}

/* -------------------------------------------------------------------- lib */

static volatile int cb_calls;
static uint64_t cb_pages;

/*
 * 32 requests at least, and below totalram_pages() on every lab kernel:
 * the driver clamps an estimate to it, and a clamped estimate that does
 * not move when the client lowers it credits the answer 0 pages (the
 * debug kernel's 512 MiB guest has 92631 pages: KASAN's shadow).
 */
static uint64_t lib_est = 50000;

static size_t
lib_cb(const struct memcoop_event *req, void *arg)
{
	cb_calls++;
	cb_pages = req->shrink.pages;
	/* an honest client: what it says it freed leaves its estimate */
	lib_est -= req->shrink.pages < lib_est ? req->shrink.pages : lib_est;
	CHECK_OK(memcoop_set_reclaimable(arg, lib_est));
	return req->shrink.pages + 10;	/* more than asked: the lib clamps */
}

static void
test_lib(void)
{
	struct memcoop_client_stats st;
	struct memcoop *mc;
	int i, n;

	set_param("reclaim_interval_ms", 0);
	/* errors */
	CHECK((mc = memcoop_open(MEMCOOP_FEATURE_RELAY)) != NULL);
	CHECK_ERR(memcoop_register(mc, "", 0, 1, 0), EINVAL);
	CHECK_ERR(memcoop_register(mc, "0123456789012345678901234567890123", 0, 1, 0), EINVAL);
	CHECK_ERR(memcoop_register(mc, "lib", 16, 1, 0), EINVAL);
	CHECK_ERR(memcoop_register(mc, "lib", 0, 1, 5), EINVAL);
	CHECK_ERR(memcoop_relay_signal_mode(mc, SIGSEGV), EINVAL);
	CHECK_EQ(memcoop_dispatch(mc), 0);	/* nothing pending, no blocking */
	CHECK(strstr(memcoop_strerror(EALREADY), "answered") != NULL);

	/* event-loop mode */
	CHECK_OK(memcoop_register(mc, "lib", 0, lib_est, 0));
	CHECK_ERR(memcoop_register(mc, "lib", 0, lib_est, 0), EBUSY);
	CHECK_OK(memcoop_set_shrink_cb(mc, lib_cb, mc));
	for (n = 0, i = 0; i < 20 && n == 0; i++) {
		struct pollfd pfd = { .fd = memcoop_fd(mc), .events = POLLIN };

		trigger();
		if (poll(&pfd, 1, 200) == 1)
			CHECK_OK(n = memcoop_dispatch(mc));
	}
	CHECK_EQ(n, 1);
	CHECK_EQ(cb_calls, 1);
	CHECK_OK(memcoop_client_stats(mc, &st));
	CHECK_EQ(st.answers, 1);
	CHECK_EQ(st.pages_freed, cb_pages);

	/* signal mode */
	CHECK_OK(memcoop_relay_signal_mode(mc, SIGRTMIN + 1));
	(void)memcoop_signal_seen();
	for (i = 0; i < 40 && !memcoop_signal_seen(); i++) {
		if (i % 4 == 0)
			trigger();
		msleep(50);
	}
	CHECK(i < 40);
	CHECK_EQ(memcoop_dispatch(mc), 1);
	CHECK_EQ(cb_calls, 2);

	/* helper thread */
	CHECK_OK(memcoop_relay_thread_start(mc));
	CHECK_ERR(memcoop_relay_thread_start(mc), EBUSY);
	for (i = 0; i < 40 && cb_calls < 3; i++) {
		if (i % 4 == 0)
			trigger();
		msleep(50);
	}
	CHECK(cb_calls >= 3);
	CHECK_OK(memcoop_relay_thread_stop(mc));
	CHECK_OK(memcoop_client_stats(mc, &st));
	CHECK_EQ(st.answers, (uint64_t)cb_calls);
	CHECK_EQ(st.missed, 0);
	CHECK_OK(memcoop_relay_thread_start(mc));
	memcoop_close(mc);	/* with the thread started again: close stops it */
	CHECK_EQ(relay_stat("clients"), 0);
	set_param("reclaim_interval_ms", 100);
	printf("lib: ok\n");
}

/* ------------------------------------------------------------------- fuzz */

#define FUZZ_FDS	8
#define FUZZ_SLOTS	256	/* fuzz processes the watchdog can describe */

/*
 * What each fuzz process is doing, in memory shared by all of them, for
 * the progress lines and the watchdog's report: a process takes a free
 * slot (pid 0) or one whose process is gone (killed), records the
 * operation it is in, and frees the slot when it exits.
 */
struct fuzz_slot {
	volatile pid_t pid;
	volatile int depth;
	volatile int op;		/* operation in progress, -1 between */
	volatile int fd;		/* its file descriptor */
	volatile long nops;		/* operations done */
	volatile uint64_t op_ns;	/* when the operation started */
};
static struct fuzz_shared {
	volatile long ops;		/* operations done by all processes */
	struct fuzz_slot slot[FUZZ_SLOTS];
} *fuzz_shared;

static struct fuzz_slot *
fuzz_slot_take(int depth)
{
	pid_t me = getpid();
	struct fuzz_slot *sl;
	int i;

	for (i = 0; fuzz_shared && i < FUZZ_SLOTS; i++)
		if (fuzz_shared->slot[i].pid == me)
			return &fuzz_shared->slot[i];	/* a depth-0 fuzzer's next run */
	for (i = 0; fuzz_shared && i < FUZZ_SLOTS; i++) {
		pid_t p = fuzz_shared->slot[i].pid;

		sl = &fuzz_shared->slot[i];
		if ((p == 0 || (kill(p, 0) == -1 && errno == ESRCH)) &&
		    __sync_bool_compare_and_swap(&sl->pid, p, me)) {
			sl->depth = depth;
			sl->op = -1;
			sl->fd = -1;
			sl->nops = 0;
			return sl;
		}
	}
	return NULL;
}

/* Exit a fuzz process, freeing its slot. */
static void __attribute__((noreturn))
fuzz_exit(void)
{
	pid_t me = getpid();
	int i;

	for (i = 0; fuzz_shared && i < FUZZ_SLOTS; i++)
		if (fuzz_shared->slot[i].pid == me)
			fuzz_shared->slot[i].pid = 0;
	_exit(0);
}

#define SLAB_MAX	256

struct meminfo {
	long long memfree, slab;
	int nslab;
	char name[SLAB_MAX][48];
	long long active[SLAB_MAX], objsize[SLAB_MAX];
};

static void
meminfo(struct meminfo *m)
{
	char line[512];
	FILE *f;

	write_file("/proc/sys/vm/drop_caches", "3");
	msleep(200);
	m->memfree = meminfo_kib("MemFree:");
	m->slab = meminfo_slab_kib();
	m->nslab = 0;
	if ((f = fopen("/proc/slabinfo", "r")) == NULL)
		fail(__LINE__, "/proc/slabinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL && m->nslab < SLAB_MAX) {
		long long num;

		if (sscanf(line, "%47s %lld %lld %lld", m->name[m->nslab],
		    &m->active[m->nslab], &num, &m->objsize[m->nslab]) == 4)
			m->nslab++;
	}
	fclose(f);
}

static long long
slab_objs(const struct meminfo *m, const char *cache)
{
	int i;

	for (i = 0; i < m->nslab; i++)
		if (strcmp(m->name[i], cache) == 0)
			return m->active[i];
	return 0;
}

/* Print the caches that grew, for the log. */
static void
slab_diff(const struct meminfo *a, const struct meminfo *b)
{
	int i;

	for (i = 0; i < b->nslab; i++) {
		long long d = b->active[i] - slab_objs(a, b->name[i]);

		if (d * b->objsize[i] >= 16384)
			printf("fuzz: slab %s +%lld objects (%lld kB)\n", b->name[i], d,
			    d * b->objsize[i] / 1024);
	}
}

static const uint32_t sane_features[] = {
	0, MEMCOOP_FEATURE_RELAY, MEMCOOP_FEATURE_RELAY | MEMCOOP_FEATURE_VRANGE,
};

/* Each operation's errno must be one the ABI documents for it. */
static void
expect(int line, long r, const int *ok, int nok)
{
	int i;

	if (r != -1)
		return;
	for (i = 0; i < nok; i++)
		if (errno == ok[i])
			return;
	fail(line, "unexpected errno %d (%s)", errno, strerror(errno));
}
#define EXPECT(r, ...) do {						\
	static const int _ok[] = { __VA_ARGS__ };			\
	expect(__LINE__, (long)(r), _ok, (int)(sizeof(_ok) / sizeof(_ok[0]))); \
} while (0)

/*
 * Per-thread xorshift64*: random()'s lock may be held by another thread
 * at a fork, and the child would wait for it forever.
 */
static __thread uint64_t rnd_state = 88172645463325252ull;
static __thread int fuzz_tid;		/* 0: the thread that takes SIGALRM */

static void
rnd_seed(uint64_t seed)
{
	rnd_state = seed * 2685821657736338717ull + 1;
}

static uint64_t
rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ull;
}

/* @nops random operations on @fds (FUZZ_FDS entries, -1 = closed). */
static void
fuzz_ops(int *fds, int nops, int depth)
{
	struct memcoop_event ev[4];
	uint64_t seqs[16] = { 0 };
	int i, op, k, status;
	unsigned int nseq = 0;
	sigset_t alrm;
	int killed;
	pid_t parent;
	long r;
	pid_t pid;
	struct fuzz_slot *slot = fuzz_slot_take(depth);

	memset(ev, 0, sizeof(ev));
	for (i = 0; i < nops; i++) {
		k = (int)(rnd() % FUZZ_FDS);
		op = (int)(rnd() % 16);
		if (fds[k] == -1 && op > 1)
			op = 0;
		if (slot) {
			slot->op_ns = now_ns();
			slot->fd = fds[k];
			slot->op = op;
		}
		switch (op) {
		case 0: {	/* open + handshake, sometimes a bad one */
			struct memcoop_api api;

			if (fds[k] != -1)
				close(fds[k]);
			fds[k] = open(MEMCOOP_DEVICE, O_RDWR | O_NONBLOCK | O_CLOEXEC);
			if (fds[k] == -1)
				fail(__LINE__, "open: %s", strerror(errno));
			memset(&api, 0, sizeof(api));
			api.api = rnd() % 8 ? MEMCOOP_API : rnd();
			api.features = rnd() % 8 ? sane_features[rnd() % 3] : rnd();
			if (rnd() % 16 == 0)
				api.reserved[rnd() % 4] = rnd();
			r = ioctl(fds[k], MEMCOOP_IOC_API, &api);
			EXPECT(r, EINVAL);
			break;
		}
		case 1:
			if (fds[k] != -1)
				close(fds[k]);
			fds[k] = -1;
			break;
		case 2: case 3: {	/* register */
			struct memcoop_register rg;

			memset(&rg, 0, sizeof(rg));
			snprintf((char *)rg.name, sizeof(rg.name), "fz%d-%d", getpid(), k);
			if (rnd() % 10 == 0)
				rg.name[rnd() % sizeof(rg.name)] = (uint8_t)rnd();
			rg.priority = rnd() % 10 ? (uint32_t)(rnd() % 16) : (uint32_t)rnd();
			/* valid signals are ones this process ignores */
			if (rnd() % 10 == 0)
				rg.signal = (uint32_t)(SIGRTMIN + (int)(rnd() % (uint64_t)(SIGRTMAX - SIGRTMIN + 1)));
			else if (rnd() % 10 == 0)
				rg.signal = (uint32_t)(rnd() % 2 ? rnd() % 32 : 65 + rnd() % 100);
			rg.reclaimable = rnd() % 10 ? rnd() % 5000 : rnd();
			if (rnd() % 20 == 0)
				rg.flags = rnd();
			if (rnd() % 20 == 0)
				rg.reserved[rnd() % 2] = rnd();
			r = ioctl(fds[k], MEMCOOP_IOC_REGISTER,
			    rnd() % 30 ? (void *)&rg : (void *)(uintptr_t)rnd());
			EXPECT(r, EINVAL, EBUSY, EFAULT, EPERM, EMFILE);
			/* each errno only where it belongs */
			if (r == -1 && errno == EPERM)
				CHECK(geteuid() != 0 && rg.priority < MEMCOOP_PRIO_UNPRIV);
			if (r == -1 && errno == EMFILE)
				CHECK(geteuid() != 0);
			if (r == 0) {
				CHECK(geteuid() == 0 || rg.priority >= MEMCOOP_PRIO_UNPRIV);
				CHECK(rg.priority <= MEMCOOP_PRIO_MAX);
				CHECK(rg.signal == 0 || (rg.signal >= MEMCOOP_SIGNAL_MIN &&
				    rg.signal <= 64));
			}
			break;
		}
		case 4:
			r = set_est(fds[k], rnd() % 4 ? rnd() % 10000 : rnd());
			EXPECT(r, EINVAL);
			break;
		case 5: case 6: case 7: {	/* read, answer */
			ssize_t n;
			int j;

			/* a child killed in the blocking read below left it blocking */
			CHECK_OK(fcntl(fds[k], F_SETFL, O_NONBLOCK));
			n = read(fds[k], ev, rnd() % 8 ? sizeof(ev) : rnd() % 200);

			EXPECT(n, EAGAIN, EINVAL);
			for (j = 0; n > 0 && j < n / (ssize_t)sizeof(ev[0]); j++) {
				if (ev[j].type != MEMCOOP_EVENT_SHRINK &&
				    ev[j].type != MEMCOOP_EVENT_LOST)
					fail(__LINE__, "event type %u", ev[j].type);
				if (ev[j].type == MEMCOOP_EVENT_SHRINK)
					seqs[nseq++ % 16] = ev[j].seq;
				if (ev[j].type == MEMCOOP_EVENT_SHRINK && rnd() % 4) {
					r = answer(fds[k], ev[j].seq,
					    rnd() % 8 ? ev[j].shrink.pages : rnd() % 100);
					/* ENOENT: it expired, or 32 newer requests took its slot */
					EXPECT(r, ERANGE, ENOENT);
				}
			}
			break;
		}
		case 8: {	/* answer something: old, random, twice */
			uint64_t seq = rnd() % 2 ? seqs[rnd() % 16] : rnd() % 100000;

			r = answer(fds[k], seq, rnd() % 4 ? rnd() % 64 : rnd());
			EXPECT(r, EINVAL, ENOENT, EALREADY, ERANGE);
			break;
		}
		case 9: {
			struct memcoop_client_stats st;

			memset(&st, 0, sizeof(st));
			if (rnd() % 10 == 0)
				st.reserved[0] = 1;
			r = ioctl(fds[k], MEMCOOP_IOC_CLIENT_STATS, &st);
			EXPECT(r, EINVAL);
			break;
		}
		case 10:	/* unknown or mis-sized commands */
			/* the relay's numbers (wrong sizes mostly) or unused ones */
			r = ioctl(fds[k], _IOC(rnd() % 4, MEMCOOP_IOC_MAGIC,
			    rnd() % 2 ? 0x30 + rnd() % 16 : rnd() % 5, rnd() % 128), &ev);
			EXPECT(r, ENOTTY, EINVAL, EFAULT, EBUSY, ENOENT, EALREADY, ERANGE);
			break;
		case 11:	/* only root may: the kicker asks the others */
			if (rnd() % 8 == 0 && geteuid() == 0)
				trigger();
			break;
		case 12:
			if (fds[(k + 1) % FUZZ_FDS] != -1)
				close(fds[(k + 1) % FUZZ_FDS]);
			fds[(k + 1) % FUZZ_FDS] = dup(fds[k]);
			break;
		case 13:	/* fork: the child works on the shared files */
			if (depth > 1 || rnd() % 4)
				break;
			parent = getpid();
			if ((pid = fork()) == 0) {
				/*
				 * inherited files: shared registrations; no
				 * orphans (a parent killed before the prctl
				 * would leave one racing on the file flags)
				 */
				(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
				if (getppid() != parent)
					_exit(0);
				rnd_seed((uint64_t)getpid());
				/*
				 * the only thread here: it takes the alarms (a
				 * fork of thread 1.. inherits SIGALRM blocked)
				 */
				fuzz_tid = 0;
				sigemptyset(&alrm);
				sigaddset(&alrm, SIGALRM);
				CHECK_OK(sigprocmask(SIG_UNBLOCK, &alrm, NULL));
				fuzz_ops(fds, 50 + (int)(rnd() % 200), depth + 1);
				fuzz_exit();
			}
			if (pid == -1)
				break;
			killed = rnd() % 2;
			if (killed) {
				msleep((unsigned int)(rnd() % 30));
				kill(pid, SIGKILL);
			}
			CHECK_EQ(waitpid(pid, &status, 0), pid);
			if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
				exit(WEXITSTATUS(status));
			/* the only signal a child may die of is the SIGKILL sent here */
			if (WIFSIGNALED(status) && (!killed || WTERMSIG(status) != SIGKILL))
				fail(__LINE__, "fuzz child %d died of signal %d%s", (int)pid,
				    WTERMSIG(status), killed ? "" : " (none was sent)");
			break;
		case 14: {	/* poll */
			struct pollfd pfd = { .fd = fds[k], .events = POLLIN };

			(void)poll(&pfd, 1, (int)(rnd() % 3));
			break;
		}
		default:	/* blocking read interrupted by an alarm */
			if (rnd() % 16 || fuzz_tid != 0)
				break;
			CHECK_OK(fcntl(fds[k], F_SETFL, 0));
			/*
			 * Every 20 ms, not once: a process preempted for
			 * 20 ms between ualarm() and read() takes the only
			 * alarm before it blocks, and then blocks for good
			 * when nobody asks this file (the hang seen in CI).
			 */
			ualarm(20000, 20000);
			r = read(fds[k], ev, sizeof(ev));
			ualarm(0, 0);
			/* EAGAIN: a dying sharer of the file set O_NONBLOCK meanwhile */
			EXPECT(r, EINTR, EINVAL, EAGAIN);
			if (r > 0 && ev[0].type == MEMCOOP_EVENT_SHRINK)
				seqs[nseq++ % 16] = ev[0].seq;
			CHECK_OK(fcntl(fds[k], F_SETFL, O_NONBLOCK));
			break;
		}
		if (slot) {
			slot->op = -1;
			slot->nops++;
		}
		if (fuzz_shared)
			__sync_fetch_and_add(&fuzz_shared->ops, 1);
	}
}

static void
fuzz_run(int nops)
{
	int fds[FUZZ_FDS], i;

	for (i = 0; i < FUZZ_FDS; i++)
		fds[i] = -1;
	fuzz_ops(fds, nops, 0);
	for (i = 0; i < FUZZ_FDS; i++)
		if (fds[i] != -1)
			close(fds[i]);
}

#define FUZZ_THREADS	3

static uint64_t fuzz_end;

/* One fuzzing thread of a fuzz process: its own files, until the end. */
static void *
fuzz_thread(void *arg)
{
	fuzz_tid = (int)(intptr_t)arg;
	rnd_seed((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16) ^ (uint64_t)fuzz_tid);
	while (now_ns() < fuzz_end)
		fuzz_run(500);
	return NULL;
}

static void
alarm_handler(int sig)
{
	(void)sig;
}

/* One line of /proc/PID/FILE, without its newline, or "?". */
static void
proc_line(pid_t pid, const char *file, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if ((f = fopen(path, "r")) == NULL || fgets(buf, (int)len, f) == NULL)
		snprintf(buf, len, "?");
	if (f != NULL)
		fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* The watchdog's report: what each live fuzz process is doing, in and out of the kernel. */
static void
fuzz_dump(void)
{
	char stat[256], wchan[64], sc[128], line[256], path[64];
	uint64_t now = now_ns();
	int i;

	for (i = 0; i < FUZZ_SLOTS; i++) {
		struct fuzz_slot *sl = &fuzz_shared->slot[i];
		pid_t p = sl->pid;
		FILE *f;

		if (p == 0 || (kill(p, 0) == -1 && errno == ESRCH))
			continue;
		proc_line(p, "stat", stat, sizeof(stat));
		proc_line(p, "wchan", wchan, sizeof(wchan));
		proc_line(p, "syscall", sc, sizeof(sc));
		fprintf(stderr, "fuzz watchdog: pid %d depth %d op %d fd %d for %llu ms after %ld ops; "
		    "wchan %s syscall %s; stat %s\n", (int)p, sl->depth, sl->op, sl->fd,
		    sl->op == -1 ? 0ull : (unsigned long long)((now - sl->op_ns) / 1000000),
		    sl->nops, wchan, sc, stat);
		snprintf(path, sizeof(path), "/proc/%d/stack", (int)p);
		if ((f = fopen(path, "r")) != NULL) {
			while (fgets(line, sizeof(line), f) != NULL)
				fprintf(stderr, "fuzz watchdog:   %s", line);
			fclose(f);
		}
	}
}

/*
 * Reap every child (orphans come back to us as subreaper) until none is
 * left; every 10 s say how far the fuzzers got; at @limit (ns) dump what
 * each one is doing, kill them and fail.  @direct: our own children, which
 * must exit 0.  Return: 1 if a process ended badly.
 */
static int
fuzz_wait(const pid_t *direct, int ndirect, uint64_t limit)
{
	struct itimerval tick = { { 1, 0 }, { 1, 0 } }, off = { { 0, 0 }, { 0, 0 } };
	uint64_t start = now_ns(), next = start + 10000000000ull;
	int i, status, is_direct, bad = 0;
	pid_t pid;

	/* SIGALRM has no SA_RESTART here: wait() returns EINTR every second */
	CHECK_OK(setitimer(ITIMER_REAL, &tick, NULL));
	for (;;) {
		pid = wait(&status);
		if (pid == -1 && errno == EINTR) {
			uint64_t t = now_ns();
			int alive = 0;

			if (t < next && t < limit)
				continue;
			for (i = 0; i < FUZZ_SLOTS; i++)
				alive += fuzz_shared->slot[i].pid != 0 &&
				    kill(fuzz_shared->slot[i].pid, 0) == 0;
			printf("fuzz: %llu s: %d processes, %ld operations, %lld requests, "
			    "%lld clients\n", (unsigned long long)((t - start) / 1000000000ull),
			    alive, fuzz_shared->ops, relay_stat("requests"), relay_stat("clients"));
			next += 10000000000ull;
			if (t < limit)
				continue;
			fflush(stdout);
			fuzz_dump();
			for (i = 0; i < FUZZ_SLOTS; i++)
				if (fuzz_shared->slot[i].pid != 0)
					kill(fuzz_shared->slot[i].pid, SIGKILL);
			fail(__LINE__, "watchdog: fuzz processes still running after %llu s",
			    (unsigned long long)((t - start) / 1000000000ull));
		}
		if (pid == -1)
			break;
		is_direct = 0;
		for (i = 0; i < ndirect; i++)
			is_direct |= direct[i] == pid;
		/* orphans (their parent was killed) may have been killed too */
		if (WIFEXITED(status) ? WEXITSTATUS(status) != 0 :
		    is_direct || WTERMSIG(status) != SIGKILL) {
			fprintf(stderr, "fuzz process %d: status %#x\n", pid, status);
			bad = 1;
		}
	}
	CHECK_EQ(errno, ECHILD);
	CHECK_OK(setitimer(ITIMER_REAL, &off, NULL));
	return bad;
}

static void
test_fuzz(int secs, int procs)
{
	static struct meminfo before, after;
	pid_t fuzzers[65];
	struct sigaction sa;
	uint64_t end;
	int i, bad;
	pid_t pid;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = alarm_handler;	/* no SA_RESTART: read() gets EINTR */
	sigaction(SIGALRM, &sa, NULL);
	for (i = SIGRTMIN; i <= SIGRTMAX; i++)
		signal(i, SIG_IGN);	/* registrations may ask for them */
	set_param("reclaim_interval_ms", 0);
	set_param("relay_deadline_ms", 20);

	/* orphans of killed fuzz children come back to us: wait() sees all */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	fuzz_shared = mmap(NULL, sizeof(*fuzz_shared), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(fuzz_shared != MAP_FAILED);

	/* warm up the caches the test itself uses, then measure */
	printf("fuzz: warm-up (2000 operations)\n");
	if ((pid = fork()) == 0) {
		rnd_seed(1);
		fuzz_run(2000);
		fuzz_exit();
	}
	CHECK(pid != -1);
	CHECK(!fuzz_wait(&pid, 1, now_ns() + 120000000000ull));
	CHECK_EQ(relay_stat("clients"), 0);
	meminfo(&before);

	end = now_ns() + (uint64_t)secs * 1000000000ull;
	CHECK(procs > 0 && procs <= 64);
	printf("fuzz: %d processes (all but the first unprivileged, each its own user) of %d "
	    "threads for %d s\n", procs, FUZZ_THREADS, secs);
	fuzz_end = end;
	for (i = 0; i < procs; i++) {
		if ((pid = fork()) == 0) {
			pthread_t th[FUZZ_THREADS];
			sigset_t alrm;
			int t;

			if (i > 0)
				become(61000 + (uid_t)i, 0);
			sigemptyset(&alrm);
			sigaddset(&alrm, SIGALRM);
			/* threads 1.. block SIGALRM: ualarm() interrupts thread 0 */
			CHECK_EQ(pthread_sigmask(SIG_BLOCK, &alrm, NULL), 0);
			for (t = 1; t < FUZZ_THREADS; t++)
				CHECK_EQ(pthread_create(&th[t], NULL, fuzz_thread,
				    (void *)(intptr_t)t), 0);
			CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &alrm, NULL), 0);
			fuzz_thread(NULL);
			for (t = 1; t < FUZZ_THREADS; t++)
				CHECK_EQ(pthread_join(th[t], NULL), 0);
			fuzz_exit();
		}
		CHECK(pid != -1);
		fuzzers[i] = pid;
	}
	/* the unprivileged cannot trigger requests: a root kicker does */
	if ((pid = fork()) == 0) {
		while (now_ns() < end) {
			trigger();
			msleep(20);
		}
		_exit(0);
	}
	CHECK(pid != -1);
	fuzzers[procs++] = pid;
	/*
	 * The watchdog: a fuzz_run() started just before the end takes a
	 * few seconds even on a loaded TCG guest; 90 s more is a hang.
	 */
	bad = fuzz_wait(fuzzers, procs, end + 90000000000ull);
	CHECK(!bad);
	CHECK_EQ(relay_stat("clients"), 0);
	set_param("relay_deadline_ms", 200);
	set_param("reclaim_interval_ms", 100);
	printf("fuzz: %lld requests, %lld answered, %lld late, %lld missed, %lld bad answers\n",
	    relay_stat("requests"), relay_stat("answered"), relay_stat("late"),
	    relay_stat("missed"), relay_stat("bad_answers"));

	meminfo(&after);
	printf("fuzz: MemFree %lld -> %lld kB, Slab %lld -> %lld kB, kmalloc-cg-2k %lld -> %lld, "
	    "kmalloc-cg-256 %lld -> %lld\n", before.memfree, after.memfree, before.slab,
	    after.slab, slab_objs(&before, "kmalloc-cg-2k"), slab_objs(&after, "kmalloc-cg-2k"),
	    slab_objs(&before, "kmalloc-cg-256"), slab_objs(&after, "kmalloc-cg-256"));
	slab_diff(&before, &after);
	/* the relay's clients (kmalloc-cg-2k) and files (kmalloc-cg-256) are all gone */
	CHECK(slab_objs(&after, "kmalloc-cg-2k") <= slab_objs(&before, "kmalloc-cg-2k"));
	CHECK(slab_objs(&after, "kmalloc-cg-256") <= slab_objs(&before, "kmalloc-cg-256") + 4);
	/* and nothing else piled up: slab and free memory back to where they were */
	CHECK(after.slab <= before.slab + 1024);
	CHECK(after.memfree >= before.memfree - 4096);
	printf("fuzz: ok\n");
}

/* -------------------------------------------------------------------- oom */

static long long
oom_kills(void)
{
	long long v = file_value("/proc/vmstat", "oom_kill");

	CHECK(v >= 0);
	return v;
}

/*
 * A cooperating client holds @hold MiB; a hog then touches @hog MiB, more
 * than is free.  The OOM notifier must ask the client (REASON_OOM,
 * CRITICAL), the client frees, and nobody is killed.
 */
static void
test_oom(unsigned int hold, unsigned int hog)
{
	size_t psz = (size_t)sysconf(_SC_PAGESIZE), held = (size_t)hold << 20;
	long long kills0 = oom_kills(), oomreq0 = relay_stat("oom_requests");
	int p[2], q[2], status, fd, oomseen = 0;
	pid_t client, hogpid;
	char c, line[160];
	ssize_t n;

	CHECK_OK(pipe(p));
	/* the client's lines: printed by the parent once the hog is done, so
	 * that the client neither blocks on the console nor allocates (a pipe
	 * page: its first line takes it before the hog) while memory is short
	 * (printing directly, in 3 of 26 runs it answered nothing within
	 * oom_wait_ms and was killed, none of its lines on the console) */
	CHECK_OK(pipe(q));
	if ((client = fork()) == 0) {
		struct memcoop_event ev;
		char *mem;

		test_name = "mct-relay oom (client)";
		close(p[0]);
		close(q[0]);
		mem = mmap(NULL, held, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(mem != MAP_FAILED);
		(void)madvise(mem, held, MADV_NOHUGEPAGE);
		memset(mem, 1, held);
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fd, "oom-client", 0, held / psz, 0));
		/* the pipe's page is allocated now, its later lines merge in */
		n = snprintf(line, sizeof(line), "oom: client registered, %zu pages\n",
		    held / psz);
		CHECK_EQ(write(q[1], line, (size_t)n), n);
		CHECK_EQ(write(p[1], "r", 1), 1);
		for (;;) {
			size_t give;

			if (!next_event(fd, &ev, 1000))
				continue;
			give = (size_t)ev.shrink.pages * psz;
			if (give > held)
				give = held;
			(void)madvise(mem + held - give, give, MADV_DONTNEED);
			held -= give;
			CHECK_OK(set_est(fd, held / psz));
			CHECK_OK(answer(fd, ev.seq, give / psz));
			n = snprintf(line, sizeof(line),
			    "oom: client request reason %u level %u: freed %zu of %llu pages\n",
			    ev.shrink.reason, ev.shrink.level, give / psz,
			    (unsigned long long)ev.shrink.pages);
			if (write(q[1], line, (size_t)n) != n) {
				/* the parent reads them at the end: lost lines only */
			}
			if (ev.shrink.reason == MEMCOOP_REASON_OOM) {
				CHECK_EQ(ev.shrink.level, MEMCOOP_LEVEL_CRITICAL);
				oomseen = 1;
			}
			if (oomseen)
				CHECK_EQ(write(p[1], "o", 1), 1);
		}
	}
	close(p[1]);
	close(q[1]);
	CHECK_EQ(read(p[0], &c, 1), 1);
	/* only the OOM notifier may ask: no guest-reclaim batches meanwhile */
	set_param("reclaim_interval_ms", 60000);
	if ((hogpid = fork()) == 0) {
		size_t len = (size_t)hog << 20, off;
		char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		CHECK(mem != MAP_FAILED);
		for (off = 0; off < len; off += psz)
			mem[off] = 1;
		printf("oom: hog touched %u MiB\n", hog);
		_exit(0);
	}
	CHECK_EQ(waitpid(hogpid, &status, 0), hogpid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the client saw an OOM request (it writes 'o' after one) */
	CHECK_OK(fcntl(p[0], F_SETFL, O_NONBLOCK));
	oomseen = 0;
	while (read(p[0], &c, 1) == 1)
		oomseen |= c == 'o';
	CHECK_OK(fcntl(q[0], F_SETFL, O_NONBLOCK));
	while ((n = read(q[0], line, sizeof(line))) > 0)
		fwrite(line, 1, (size_t)n, stdout);
	close(q[0]);
	set_param("reclaim_interval_ms", 100);
	if (!oomseen)
		fail(__LINE__, "no OOM request seen: oom_calls %lld, oom_requests %lld, "
		    "rounds_timed_out %lld, oom kills %lld", relay_stat("oom_calls"),
		    relay_stat("oom_requests"), relay_stat("rounds_timed_out"),
		    oom_kills() - kills0);
	CHECK(relay_stat("oom_requests") > oomreq0);
	CHECK(relay_stat("oom_freed") > 0);
	CHECK_EQ(oom_kills(), kills0);
	kill(client, SIGKILL);
	CHECK_EQ(waitpid(client, &status, 0), client);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	printf("oom: ok (oom rounds freed %lld pages, no OOM kill)\n", relay_stat("oom_freed"));
}

/* ------------------------------------------------------------------ trust */

#define NOBODY		65534
#define NOBODY2		65533

static unsigned int
get_param(const char *name)
{
	long v = modparam_read(name);

	if (v == -1)
		fail(__LINE__, "read parameter %s", name);
	return (unsigned int)v;
}

/* In a child: become @uid (gid @uid), with @group as the only extra group (0: none). */
static void
become(uid_t uid, gid_t group)
{
	gid_t g = group;

	if (setgroups(group ? 1 : 0, &g) == -1 || setgid(uid) == -1 || setuid(uid) == -1)
		fail(__LINE__, "become %u: %s", (unsigned int)uid, strerror(errno));
	CHECK(geteuid() == uid && getuid() == uid);
}

/*
 * Run @fn in a child as @uid (extra group @group) and wait for it to exit
 * 0; with @kick, trigger shrink requests every 50 ms meanwhile (only root
 * can: drop_caches).
 */
static void
as_user(uid_t uid, gid_t group, void (*fn)(void), int kick)
{
	uint64_t t0 = now_ns();
	int status;
	pid_t pid, r;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		become(uid, group);
		fn();
		_exit(0);
	}
	CHECK(pid != -1);
	for (;;) {
		r = waitpid(pid, &status, kick ? WNOHANG : 0);
		CHECK(r != -1);
		if (r == pid)
			break;
		if (now_ns() - t0 > 60000000000ull) {
			kill(pid, SIGKILL);
			fail(__LINE__, "unprivileged child still running after 60 s");
		}
		trigger();
		msleep(50);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail(__LINE__, "unprivileged child (uid %u): status %#x", (unsigned int)uid, status);
}

static void
trust_unpriv_prio(void)
{
	uint32_t p;
	int fd;

	test_name = "mct-relay trust (unprivileged priorities)";
	for (p = 0; p < MEMCOOP_PRIO_UNPRIV; p++) {
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_ERR(reg(fd, "jumper", p, 100, 0), EPERM);
		CHECK_ERR(answer(fd, 1, 0), EINVAL);	/* nothing was registered */
		CHECK_ERR(set_est(fd, 1), EINVAL);
		close(fd);
	}
	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_ERR(reg(fd, "sig", MEMCOOP_PRIO_UNPRIV, 1, 32), EINVAL);
	CHECK_ERR(reg(fd, "sig", MEMCOOP_PRIO_UNPRIV, 1, 33), EINVAL);
	CHECK_ERR(reg(fd, "sig", MEMCOOP_PRIO_UNPRIV, 1, 65), EINVAL);
	CHECK_OK(reg(fd, "queuer", MEMCOOP_PRIO_UNPRIV, 100, 0));
	close(fd);
	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(fd, "last", MEMCOOP_PRIO_MAX, 100, (uint32_t)SIGRTMAX));
	close(fd);
}

static void
trust_group(void)
{
	int fd = dev_open(MEMCOOP_FEATURE_RELAY);

	test_name = "mct-relay trust (group member)";
	CHECK_OK(reg(fd, "grouped", 0, 100, 0));
	close(fd);
}

static unsigned int cap_n;
static int cap_pipe[2];

/* Register up to the per-user cap, then hold them until the pipe closes. */
static void
trust_cap(void)
{
	int fds[1100], i;
	char c;

	test_name = "mct-relay trust (per-user cap)";
	CHECK(cap_n + 1 < sizeof(fds) / sizeof(fds[0]));
	for (i = 0; i < (int)cap_n; i++) {
		fds[i] = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fds[i], "capped", MEMCOOP_PRIO_UNPRIV, 10, 0));
	}
	fds[i] = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_ERR(reg(fds[i], "capped", MEMCOOP_PRIO_UNPRIV, 10, 0), EMFILE);
	/* a closed registration makes room */
	close(fds[0]);
	CHECK_OK(reg(fds[i], "capped", MEMCOOP_PRIO_UNPRIV, 10, 0));
	CHECK_EQ(write(cap_pipe[1], "r", 1), 1);
	CHECK_EQ(read(cap_pipe[0], &c, 1), 0);	/* the parent closes it */
	for (i = 1; i <= (int)cap_n; i++)
		close(fds[i]);
}

/* Another user is not counted against the first one's cap. */
static void
trust_cap_other(void)
{
	int fd = dev_open(MEMCOOP_FEATURE_RELAY);

	test_name = "mct-relay trust (another user)";
	CHECK_OK(reg(fd, "other", MEMCOOP_PRIO_UNPRIV, 10, 0));
	close(fd);
}

/* statm's resident pages of this process */
static long
rss_pages(void)
{
	long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	CHECK(f != NULL);
	CHECK(fscanf(f, "%ld %ld", &size, &res) == 2);
	fclose(f);
	return res;
}

/*
 * Unprivileged: requests, the process's own signal, answers; asked for at
 * most its RSS whatever its estimate; a lie is accepted but not credited.
 */
static void
trust_answer(void)
{
	struct memcoop_client_stats st;
	struct timespec to = { 5, 0 };
	struct memcoop_event ev;
	size_t len = 4u << 20;
	int fd, i, sig = SIGRTMIN + 2;
	sigset_t set;
	siginfo_t si;
	char *mem;
	long rss;

	test_name = "mct-relay trust (unprivileged answers)";
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED);
	memset(mem, 1, len);
	sigemptyset(&set);
	sigaddset(&set, sig);
	CHECK_OK(sigprocmask(SIG_BLOCK, &set, NULL));
	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	/* an estimate of all RAM, from a process of a few MiB */
	CHECK_OK(reg(fd, "nobody", MEMCOOP_PRIO_UNPRIV, 1ull << 40, (uint32_t)sig));
	for (i = 0; i < 300 && !next_event(fd, &ev, 100); i++)
		;
	CHECK(i < 300);
	CHECK_EQ(ev.type, MEMCOOP_EVENT_SHRINK);
	rss = rss_pages();
	if (ev.shrink.pages > (uint64_t)rss + 64)
		fail(__LINE__, "asked for %llu pages, RSS %ld pages", (unsigned long long)ev.shrink.pages,
		    rss);
	CHECK_EQ(sigtimedwait(&set, &si, &to), sig);	/* its own signal: allowed */
	CHECK_ERR(answer(fd, ev.seq, ev.shrink.pages + 1), ERANGE);
	CHECK_OK(answer(fd, ev.seq, 0));
	CHECK_ERR(answer(fd, ev.seq, 0), EALREADY);
	/* the next one: claim everything, free nothing */
	for (i = 0; i < 300 && !next_event(fd, &ev, 100); i++)
		;
	CHECK(i < 300);
	CHECK(ev.shrink.pages > 64);	/* more than the slack for measuring */
	CHECK_OK(answer(fd, ev.seq, ev.shrink.pages));
	stats(fd, &st);
	CHECK_EQ(st.answers, 2);
	CHECK_EQ(st.pages_freed, 0);	/* nothing left: nothing credited */
	close(fd);
	munmap(mem, len);
}

/*
 * One batch of requests, for @good only: @demoted, asked last, is not
 * asked when @good covers the batch.  One trigger, waited for
 * (get_request() triggers again after 200 ms, and a second batch while
 * @good still owes the first rightly goes to @demoted), and one batch a
 * second meanwhile: the shrinker loop of one drop_caches (7.x) can
 * outlast the 100 ms between batches under TCG.
 */
static void
asked_alone(int good, int demoted, struct memcoop_event *ev)
{
	unsigned int interval = get_param("reclaim_interval_ms");
	struct memcoop_event e2;

	set_param("reclaim_interval_ms", 1000);
	trigger();
	CHECK(next_event(good, ev, 3000));
	CHECK_EQ(ev->type, MEMCOOP_EVENT_SHRINK);
	CHECK_EQ(next_event(demoted, &e2, 300), 0);
	set_param("reclaim_interval_ms", interval);
}

/* Root: a liar or a client that misses is asked after the honest ones. */
static void
trust_demotion(void)
{
	struct memcoop_event ea, eb;
	unsigned int owed = get_param("relay_demote_answers");
	int a, b, i;

	set_param("relay_deadline_ms", 3000);
	a = dev_open(MEMCOOP_FEATURE_RELAY);
	b = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(a, "front", 0, 50, 0));
	CHECK_OK(reg(b, "back", 1, 100000, 0));
	/* in good standing, class 0 first */
	get_request(a, &ea);
	CHECK_EQ(ea.shrink.pages, 50);
	CHECK(next_event(b, &eb, 1000));
	CHECK_OK(answer(b, eb.seq, 0));
	/* a claims 50 pages that nothing shows leaving */
	CHECK_OK(answer(a, ea.seq, 50));
	CHECK_EQ(relay_stat("lies") > 0, 1);
	/* now b alone covers the batch: a is not asked */
	asked_alone(b, a, &eb);
	CHECK_OK(answer(b, eb.seq, 0));
	/* with b empty, a is asked again (last), and works its way back */
	CHECK_OK(set_est(b, 0));
	for (i = 0; i < (int)owed; i++) {
		get_request(a, &ea);
		CHECK_OK(answer(a, ea.seq, 0));
	}
	CHECK_OK(set_est(b, 100000));
	get_request(a, &ea);
	CHECK_EQ(ea.shrink.pages, 50);	/* back in front */
	CHECK(next_event(b, &eb, 1000));
	CHECK_OK(answer(a, ea.seq, 0));
	CHECK_OK(answer(b, eb.seq, 0));

	/* a miss demotes too */
	set_param("relay_deadline_ms", 50);
	get_request(a, &ea);
	CHECK(next_event(b, &eb, 1000));
	CHECK_OK(answer(b, eb.seq, 0));
	msleep(150);			/* a's deadline passes */
	set_param("relay_deadline_ms", 3000);
	asked_alone(b, a, &eb);
	CHECK_OK(answer(b, eb.seq, 0));
	close(a);
	close(b);
	set_param("relay_deadline_ms", 200);
}

static void
test_trust(void)
{
	long long lies0, sent0, denied0;
	unsigned int maxc;
	int fds[8], i;
	pid_t holder;
	int status;
	char c;

	set_param("reclaim_interval_ms", 0);
	denied0 = file_value(DEBUGFS_RELAY, "register_denied");
	/* unprivileged: priorities 0..7 are EPERM, 8..15 work */
	as_user(NOBODY, 0, trust_unpriv_prio, 0);
	CHECK_EQ(relay_stat("register_denied"), denied0 + MEMCOOP_PRIO_UNPRIV);
	/* the administrator's group may jump the queue; others still may not */
	set_param("relay_priv_gid", 4242);
	as_user(NOBODY, 4242, trust_group, 0);
	as_user(NOBODY, 4243, trust_unpriv_prio, 0);
	set_param("relay_priv_gid", 4294967295u);
	as_user(NOBODY, 4242, trust_unpriv_prio, 0);
	/* root (CAP_SYS_RESOURCE) may */
	fds[0] = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(fds[0], "root", 0, 100, 0));
	close(fds[0]);

	/* the per-user cap, at its default; another user is not counted */
	cap_n = get_param("relay_user_clients");
	fflush(stdout);
	{
		int up[2], down[2];

		CHECK_OK(pipe(up));
		CHECK_OK(pipe(down));
		if ((holder = fork()) == 0) {
			become(NOBODY, 0);
			close(up[0]);
			close(down[1]);
			cap_pipe[0] = down[0];
			cap_pipe[1] = up[1];
			trust_cap();
			_exit(0);
		}
		close(up[1]);
		close(down[0]);
		CHECK_EQ(read(up[0], &c, 1), 1);	/* it holds cap_n */
		as_user(NOBODY2, 0, trust_cap_other, 0);
		/* root is exempt */
		for (i = 0; i < 8; i++) {
			fds[i] = dev_open(MEMCOOP_FEATURE_RELAY);
			CHECK_OK(reg(fds[i], "root", MEMCOOP_PRIO_UNPRIV, 10, 0));
		}
		for (i = 0; i < 8; i++)
			close(fds[i]);
		close(down[1]);
		CHECK_EQ(waitpid(holder, &status, 0), holder);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		close(up[0]);
	}
	CHECK_EQ(relay_stat("clients"), 0);

	/* the global cap */
	maxc = get_param("relay_max_clients");
	set_param("relay_max_clients", 3);
	for (i = 0; i < 4; i++) {
		fds[i] = dev_open(MEMCOOP_FEATURE_RELAY);
		if (i < 3)
			CHECK_OK(reg(fds[i], "global", MEMCOOP_PRIO_UNPRIV, 10, 0));
		else
			CHECK_ERR(reg(fds[i], "global", MEMCOOP_PRIO_UNPRIV, 10, 0), ENOSPC);
	}
	for (i = 0; i < 4; i++)
		close(fds[i]);
	set_param("relay_max_clients", maxc);

	/* unprivileged requests, answers, signals and a lie */
	lies0 = relay_stat("lies");
	sent0 = relay_stat("signals_sent");
	as_user(NOBODY, 0, trust_answer, 1);
	CHECK(relay_stat("lies") > lies0);
	CHECK(relay_stat("signals_sent") > sent0);
	CHECK_EQ(relay_stat("clients"), 0);

	trust_demotion();
	set_param("reclaim_interval_ms", 100);
	printf("trust: ok\n");
}

/* ------------------------------------------------------------------- suid */

#define SUID_COPY	"/tmp/mct-relay-suid"

/* A copy of this program, setuid root. */
static void
make_suid_copy(void)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	CHECK((in = open("/proc/self/exe", O_RDONLY)) != -1);
	CHECK((out = open(SUID_COPY, O_WRONLY | O_CREAT | O_TRUNC, 0700)) != -1);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK_EQ(write(out, buf, (size_t)n), n);
	CHECK_EQ(n, 0);
	close(in);
	CHECK_OK(fchown(out, 0, 0));
	CHECK_OK(fchmod(out, 04755));
	close(out);
}

/*
 * The setuid program, run by NOBODY with the registered fd: it must get
 * its requests but not the signal the registration asked for.
 */
static void
suid_victim(int fd, int sig)
{
	struct timespec to = { 2, 0 };
	struct memcoop_event ev;
	sigset_t set;
	siginfo_t si;
	int i, r;

	test_name = "mct-relay suid (victim)";
	sigemptyset(&set);
	sigaddset(&set, sig);
	CHECK_OK(sigprocmask(SIG_BLOCK, &set, NULL));
	CHECK(geteuid() == 0 && getuid() == NOBODY);
	CHECK_OK(set_est(fd, 100000));
	for (i = 0; i < 50; i++) {
		trigger();		/* euid 0 may */
		if (next_event(fd, &ev, 200))
			break;
	}
	CHECK(i < 50);
	r = sigtimedwait(&set, &si, &to);
	if (r == sig) {
		printf("suid: signal %d reached the setuid program (uid %u, euid %u)\n", sig,
		    (unsigned int)getuid(), (unsigned int)geteuid());
		exit(3);
	}
	if (r != -1 || errno != EAGAIN)
		fail(__LINE__, "sigtimedwait: %d (%s)", r, strerror(errno));
	CHECK_OK(answer(fd, ev.seq, 0));
	printf("suid: request %llu arrived, no signal\n", (unsigned long long)ev.seq);
	exit(0);
}

static void
test_suid(void)
{
	int status, fd, sig = SIGRTMIN + 4;
	long long denied0;
	char fdarg[16], sigarg[16];
	pid_t pid;

	set_param("reclaim_interval_ms", 0);
	/* tolerant: a module without the counter still shows the behaviour */
	denied0 = file_value(DEBUGFS_RELAY, "signals_denied");
	make_suid_copy();
	fflush(stdout);
	if ((pid = fork()) == 0) {
		become(NOBODY, 0);
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(fcntl(fd, F_SETFD, 0));	/* kept across the exec */
		/* estimate 0: no request (and no signal) before the exec */
		CHECK_OK(reg(fd, "suid", MEMCOOP_PRIO_UNPRIV, 0, (uint32_t)sig));
		snprintf(fdarg, sizeof(fdarg), "%d", fd);
		snprintf(sigarg, sizeof(sigarg), "%d", sig);
		execl(SUID_COPY, "mct-relay", "suid-victim", fdarg, sigarg, (char *)NULL);
		fail(__LINE__, "exec " SUID_COPY ": %s", strerror(errno));
	}
	CHECK(pid != -1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	unlink(SUID_COPY);
	if (WIFSIGNALED(status))
		fail(__LINE__, "the setuid program was killed by signal %d", WTERMSIG(status));
	CHECK(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3)
		fail(__LINE__, "the setuid program received the registration's signal");
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK(relay_stat("signals_denied") > denied0);
	set_param("reclaim_interval_ms", 100);
	printf("suid: ok\n");
}

/* ---------------------------------------------------------------- fasync */

#define FASYNC_SIG	(SIGRTMIN + 3)

/*
 * A process of @uid that waits up to 4 s for FASYNC_SIG: exit 3 if it
 * came, 0 if not.  'r' on @ready once it is blocked and waiting.
 */
static pid_t
fasync_target(uid_t uid, int ready)
{
	struct timespec to = { 4, 0 };
	sigset_t set;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) != 0)
		return pid;
	if (uid)
		become(uid, 0);
	sigemptyset(&set);
	sigaddset(&set, FASYNC_SIG);
	CHECK_OK(sigprocmask(SIG_BLOCK, &set, NULL));
	CHECK_EQ(write(ready, "r", 1), 1);
	_exit(sigtimedwait(&set, NULL, &to) == FASYNC_SIG ? 3 : 0);
}

/*
 * NOBODY registers, points its fd's fasync at @target (F_SETOWN,
 * F_SETSIG, O_ASYNC) and waits for a shrink request; returns whether the
 * target received the signal.
 */
static int
fasync_case(const char *what, uid_t tuid)
{
	int tp[2], rp[2], status, i;
	pid_t target, client;
	char c;

	CHECK_OK(pipe(tp));
	CHECK_OK(pipe(rp));
	target = fasync_target(tuid, tp[1]);
	CHECK(target != -1);
	CHECK_EQ(read(tp[0], &c, 1), 1);
	if ((client = fork()) == 0) {
		struct memcoop_event ev;
		int fd;

		become(NOBODY, 0);
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fd, "fasync", MEMCOOP_PRIO_UNPRIV, 100000, 0));
		CHECK_OK(fcntl(fd, F_SETOWN, target));
		CHECK_OK(fcntl(fd, F_SETSIG, FASYNC_SIG));
		CHECK_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC));
		CHECK_EQ(write(rp[1], "r", 1), 1);
		if (!next_event(fd, &ev, 30000))
			fail(__LINE__, "no shrink request in 30 s");
		(void)answer(fd, ev.seq, 0);
		CHECK_EQ(write(rp[1], "q", 1), 1);
		_exit(0);
	}
	CHECK(client != -1);
	CHECK_EQ(read(rp[0], &c, 1), 1);
	CHECK_OK(fcntl(rp[0], F_SETFL, O_NONBLOCK));
	for (i = 0; i < 100 && read(rp[0], &c, 1) != 1; i++) {
		trigger();
		msleep(100);
	}
	CHECK(i < 100);
	CHECK_EQ(waitpid(client, &status, 0), client);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(waitpid(target, &status, 0), target);
	CHECK(WIFEXITED(status));
	printf("fasync: nobody's fd owned by %s (uid %u): %s\n", what, (unsigned int)tuid,
	    WEXITSTATUS(status) == 3 ? "signal delivered" : "no signal");
	close(tp[0]);
	close(tp[1]);
	close(rp[0]);
	close(rp[1]);
	return WEXITSTATUS(status) == 3;
}

/*
 * fasync on a registered fd: the kernel's send_sigio() sends with the
 * F_SETOWN caller's credentials (sigio_perm(), the kill() rule), so
 * nobody's fd cannot signal root or another user; the same set-up aimed
 * at one of nobody's own processes does deliver (the path works).  The
 * signal is the one F_SETSIG chose (the caller may send it to itself
 * anyway); the driver picks none.
 */
static void
test_fasync(void)
{
	set_param("reclaim_interval_ms", 0);
	if (fasync_case("root", 0))
		fail(__LINE__, "nobody's fasync signalled a root process");
	if (fasync_case("another user", NOBODY2))
		fail(__LINE__, "nobody's fasync signalled another user's process");
	if (!fasync_case("itself", NOBODY))
		fail(__LINE__, "fasync to nobody's own process delivered nothing: path not tested");
	set_param("reclaim_interval_ms", 100);
	printf("fasync: ok\n");
}

/* ---------------------------------------------------------------- oomlie */

/* Seconds until a hog touching @mib MiB (more than RAM) is OOM-killed. */
static double
oom_kill_time(unsigned int mib)
{
	uint64_t t0 = now_ns();
	int status;
	pid_t pid, r;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		size_t psz = (size_t)sysconf(_SC_PAGESIZE), chunk = 16u << 20, off;
		unsigned int done;

		/* in chunks: one mapping larger than RAM is refused (overcommit) */
		for (done = 0; done < mib; done += 16) {
			char *mem = mmap(NULL, chunk, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			CHECK(mem != MAP_FAILED);
			for (off = 0; off < chunk; off += psz)
				mem[off] = 1;
		}
		_exit(4);	/* not killed: more RAM than expected */
	}
	CHECK(pid != -1);
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		CHECK(r != -1);
		if (r == pid)
			break;
		if (now_ns() - t0 > 90000000000ull) {
			kill(pid, SIGKILL);
			CHECK_EQ(waitpid(pid, &status, 0), pid);
			printf("oomlie: no OOM kill within 90 s (oom_calls %lld, oom_freed %lld)\n",
			    relay_stat("oom_calls"), relay_stat("oom_freed"));
			return 90.0;
		}
		msleep(20);
	}
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail(__LINE__, "the hog was not OOM-killed: status %#x", status);
	return (double)(now_ns() - t0) / 1e9;
}

/*
 * A liar (root, priority 0, holding @hold MiB it never frees, never
 * OOM-killed) that answers every request with freed = pages, late in its
 * deadline, and adds to *@claimed the pages it claimed in time in OOM
 * rounds.  Returns its pid once registered.
 */
static pid_t
start_liar(unsigned int hold, uint64_t *claimed)
{
	int p[2];
	pid_t liar;
	char c;

	CHECK_OK(pipe(p));
	fflush(stdout);
	if ((liar = fork()) == 0) {
		size_t held = (size_t)hold << 20, psz = (size_t)sysconf(_SC_PAGESIZE);
		struct memcoop_event ev;
		char *mem;
		int fd;

		test_name = "mct-relay oomlie (liar)";
		write_file("/proc/self/oom_score_adj", "-1000");
		mem = mmap(NULL, held, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(mem != MAP_FAILED);
		memset(mem, 1, held);
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fd, "liar", 0, held / psz, 0));
		CHECK_EQ(write(p[1], "r", 1), 1);
		for (;;) {
			uint64_t now;

			if (!next_event(fd, &ev, 1000) || ev.type != MEMCOOP_EVENT_SHRINK)
				continue;
			/* at 80% of the time given: hold the round as long as possible */
			now = now_ns();
			if (ev.shrink.deadline_ns > now)
				msleep((unsigned int)((ev.shrink.deadline_ns - now) * 8 / 10 / 1000000));
			now = now_ns();
			if (answer(fd, ev.seq, ev.shrink.pages) == 0 &&
			    ev.shrink.reason == MEMCOOP_REASON_OOM && now < ev.shrink.deadline_ns)
				__atomic_add_fetch(claimed, ev.shrink.pages, __ATOMIC_RELAXED);
		}
	}
	CHECK(liar != -1);
	close(p[1]);
	CHECK_EQ(read(p[0], &c, 1), 1);
	close(p[0]);
	return liar;
}

/*
 * OOM kills of a @hog MiB hog beside the liar must come within twice the
 * time they take without it (runs alternate, two of each, so that the
 * host's load hits both alike), and the OOM notifier must credit less
 * than the liar claimed: it credits the rise of free memory, which the
 * liar never causes (an OOM call while the last victim is being reaped
 * does see memory come back: 13360 pages in 4 calls once, on 7.3 at the
 * default oom_wait_ms).
 */
static void
test_oomlie(unsigned int hold, unsigned int hog)
{
	long long calls = 0, freed = 0, c0, f0;
	double t0[2], t1[2], base, lied;
	uint64_t *claimed;
	int status, i;
	pid_t liar;

	claimed = mmap(NULL, sizeof(*claimed), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(claimed != MAP_FAILED);
	*claimed = 0;
	for (i = 0; i < 2; i++) {
		t0[i] = oom_kill_time(hog);
		liar = start_liar(hold, claimed);
		c0 = relay_stat("oom_calls");
		f0 = relay_stat("oom_freed");
		t1[i] = oom_kill_time(hog);
		calls += relay_stat("oom_calls") - c0;
		freed += relay_stat("oom_freed") - f0;
		kill(liar, SIGKILL);
		CHECK_EQ(waitpid(liar, &status, 0), liar);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	base = t0[0] + t0[1];
	lied = t1[0] + t1[1];
	printf("oomlie: OOM kill of a %u MiB hog: %.2f, %.2f s alone; %.2f, %.2f s beside a liar "
	    "holding %u MiB (oom_wait_ms %u; %lld OOM calls, %lld pages credited, %llu claimed "
	    "in time)\n", hog, t0[0], t0[1], t1[0], t1[1], hold, get_param("oom_wait_ms"), calls,
	    freed, (unsigned long long)*claimed);
	/*
	 * At the default oom_wait_ms (50) the liar's answers come too late
	 * under TCG to be credited by anything; at 500 they must be in time.
	 */
	if (!*claimed && get_param("oom_wait_ms") >= 500)
		fail(__LINE__, "the liar answered no OOM round in time: nothing to compare");
	/* the liar freed nothing: what was credited is noise, not its claims */
	if (*claimed && (uint64_t)freed >= *claimed)
		fail(__LINE__, "the OOM notifier credited %lld pages beside a liar that claimed %llu",
		    freed, (unsigned long long)*claimed);
	if (lied > 2 * base)
		fail(__LINE__, "the liar held OOM kills back: %.2f s against %.2f s", lied / 2,
		    base / 2);
	munmap(claimed, sizeof(*claimed));
	printf("oomlie: ok\n");
}

/* ------------------------------------------------------------------- many */

#define MANY_PER_PROC	100

/*
 * @n registrations from n/100 root processes (CAP_SYS_RESOURCE: not
 * capped per user), plus ten unprivileged users each trying 100, who must
 * stop at the per-user cap with EMFILE.  The shrinker's batches and the
 * debugfs file stay quick; everything goes away with the processes.
 */
static void
test_many(int n)
{
	int nroot = n / MANY_PER_PROC, i, j, status, p[2], got = 0;
	/* a module without the caps (to measure it) lets everything in */
	int capped = access(PARAM_DIR "relay_user_clients", F_OK) == 0;
	unsigned int cap = capped ? get_param("relay_user_clients") : MANY_PER_PROC;
	unsigned int maxc = capped ? get_param("relay_max_clients") : 0;
	pid_t kids[256];
	uint64_t t, worst = 0;
	long long clients;
	char c;

	CHECK(nroot + 10 <= 256);
	set_param("reclaim_interval_ms", 0);
	if (capped)
		set_param("relay_max_clients", (unsigned int)n + 10 * cap);
	else
		printf("many: this module has no registration caps\n");
	CHECK_OK(pipe(p));
	fflush(stdout);
	for (i = 0; i < nroot + 10; i++) {
		if ((kids[i] = fork()) == 0) {
			int fd, k, ok = 0;

			close(p[0]);
			if (i >= nroot)
				become(60000 + (uid_t)i, 0);
			for (k = 0; k < MANY_PER_PROC; k++) {
				fd = open(MEMCOOP_DEVICE, O_RDWR | O_CLOEXEC);
				if (fd == -1)
					fail(__LINE__, "open %d: %s", k, strerror(errno));
				{
					struct memcoop_api api = { .api = MEMCOOP_API,
						.features = MEMCOOP_FEATURE_RELAY };

					CHECK_OK(ioctl(fd, MEMCOOP_IOC_API, &api));
				}
				if (reg(fd, "many", (uint32_t)(MEMCOOP_PRIO_UNPRIV + k % 8), 100, 0) == 0) {
					ok++;
					continue;
				}
				if (i < nroot || errno != EMFILE || ok != (int)cap)
					fail(__LINE__, "registration %d of uid %u: %s", k,
					    (unsigned int)getuid(), strerror(errno));
				close(fd);
			}
			CHECK_EQ(write(p[1], &ok, sizeof(ok)), sizeof(ok));
			pause();
			_exit(0);
		}
		CHECK(kids[i] != -1);
	}
	close(p[1]);
	for (i = 0; i < nroot + 10;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		int ok;
		pid_t dead;

		/* a child that failed exits: do not wait for its count forever */
		if ((dead = waitpid(-1, &status, WNOHANG)) > 0)
			fail(__LINE__, "registering process %d ended: status %#x", (int)dead, status);
		if (poll(&pfd, 1, 1000) != 1)
			continue;
		CHECK_EQ(read(p[0], &ok, sizeof(ok)), sizeof(ok));
		got += ok;
		i++;
	}
	clients = relay_stat("clients");
	printf("many: %lld registrations (%d root processes x %d, 10 users x %u, the per-user cap)\n",
	    clients, nroot, MANY_PER_PROC, cap);
	CHECK_EQ(got, nroot * MANY_PER_PROC + 10 * (int)cap);
	CHECK_EQ(clients, got);
	for (j = 0; j < 5; j++) {
		t = now_ns();
		trigger();
		t = now_ns() - t;
		if (t > worst)
			worst = t;
	}
	t = now_ns();
	(void)relay_stat("clients");	/* reads the whole file: 10^4 lines */
	t = now_ns() - t;
	printf("many: slowest shrinker batch %.1f ms, debugfs read %.1f ms\n", worst / 1e6, t / 1e6);
	/* a batch visits each client a few times: bounded, far below a lockup */
	CHECK(worst < 5000000000ull);
	for (i = 0; i < nroot + 10; i++)
		kill(kids[i], SIGKILL);
	for (i = 0; i < nroot + 10; i++) {
		CHECK_EQ(waitpid(kids[i], &status, 0), kids[i]);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	close(p[0]);
	CHECK_EQ(relay_stat("clients"), 0);
	(void)c;
	if (!capped)
		fail(__LINE__, "no per-user cap: %d registrations by 10 users", 10 * MANY_PER_PROC);
	set_param("relay_max_clients", maxc);
	set_param("reclaim_interval_ms", 100);
	printf("many: ok\n");
}

/*
 * For relay_balloon.py's case "many": @n silent registrations by
 * unprivileged users, each within the per-user cap (relay_user_clients
 * per uid, uids 62000 and up), at priorities 8..15.  Prints "READY many N
 * ms=T unreclaimable_kib=K" once all are in (K: SUnreclaim's growth),
 * holds them @secs seconds (the host runs a balloon round meanwhile),
 * then kills the holders and prints "MANY done
 * clients=C exit_ms=T" when the relay has let go of them all.
 */
static void
run_many_hold(int n, int secs)
{
	unsigned int cap = get_param("relay_user_clients");
	int nproc = (n + (int)cap - 1) / (int)cap, i, got = 0, status, p[2];
	pid_t *kids = calloc((size_t)nproc, sizeof(*kids));
	long unrecl0 = meminfo_kib("SUnreclaim:");
	uint64_t t0 = now_ns();

	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK(kids != NULL);
	CHECK_OK(pipe(p));
	for (i = 0; i < nproc; i++) {
		if ((kids[i] = fork()) == 0) {
			int k, want = i < nproc - 1 ? (int)cap : n - i * (int)cap;

			close(p[0]);
			become(62000 + (uid_t)i, 0);
			for (k = 0; k < want; k++) {
				int fd = dev_open(MEMCOOP_FEATURE_RELAY);

				if (reg(fd, "many", (uint32_t)(MEMCOOP_PRIO_UNPRIV + k % 8), 100, 0))
					fail(__LINE__, "registration %d of uid %u: %s", k,
					    (unsigned int)getuid(), strerror(errno));
			}
			CHECK_EQ(write(p[1], &want, sizeof(want)), sizeof(want));
			for (;;)
				pause();
		}
		CHECK(kids[i] != -1);
	}
	close(p[1]);
	for (i = 0; i < nproc; i++) {
		int ok;

		CHECK_EQ(read(p[0], &ok, sizeof(ok)), sizeof(ok));
		got += ok;
	}
	CHECK_EQ(got, n);
	/* what they cost the kernel: the files, their queues, the holders */
	printf("READY many %lld ms=%llu unreclaimable_kib=%ld\n",
	    relay_stat("clients"), (unsigned long long)((now_ns() - t0) / 1000000),
	    meminfo_kib("SUnreclaim:") - unrecl0);
	sleep((unsigned int)secs);
	t0 = now_ns();
	for (i = 0; i < nproc; i++)
		kill(kids[i], SIGKILL);
	for (i = 0; i < nproc; i++) {
		CHECK_EQ(waitpid(kids[i], &status, 0), kids[i]);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	printf("MANY done clients=%lld exit_ms=%llu\n", relay_stat("clients"),
	    (unsigned long long)((now_ns() - t0) / 1000000));
	close(p[0]);
	free(kids);
}

/* ------------------------------------------------------------------ rmmod */

/*
 * Unloading with live clients: refused while any file is open (a
 * registered one with a request open, one blocked in read()), clean once
 * they are closed.  Leaves the module unloaded: run it alone.
 */
static void
test_rmmod(void)
{
	struct memcoop_event ev;
	int fd, status;
	pid_t pid;

	set_param("reclaim_interval_ms", 0);
	fd = dev_open(MEMCOOP_FEATURE_RELAY);
	CHECK_OK(reg(fd, "rmmod", 0, 500, 0));
	get_request(fd, &ev);		/* left open */
	fflush(stdout);
	if ((pid = fork()) == 0) {
		int rfd;

		become(NOBODY, 0);
		rfd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(rfd, "reader", MEMCOOP_PRIO_UNPRIV, 0, 0));
		(void)read(rfd, &ev, sizeof(ev));
		_exit(3);
	}
	msleep(300);
	errno = 0;
	CHECK(syscall(SYS_delete_module, "memcoop", O_NONBLOCK) == -1);
	if (errno != EBUSY && errno != EAGAIN)
		fail(__LINE__, "delete_module with clients: %s", strerror(errno));
	close(fd);
	CHECK(syscall(SYS_delete_module, "memcoop", O_NONBLOCK) == -1);	/* the reader */
	kill(pid, SIGKILL);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK_OK(syscall(SYS_delete_module, "memcoop", O_NONBLOCK));
	CHECK(access(MEMCOOP_DEVICE, F_OK) == -1);
	printf("rmmod: ok (refused with %d clients, clean after)\n", 2);
}

/* ----------------------------------------------------------------- client */

/* Print the relay's round counters as one line. */
static void
print_stats(void)
{
	printf("STATS rounds=%lld rounds_timed_out=%lld rounds_nobody=%lld last_round_ns=%lld "
	    "max_round_ns=%lld missed=%lld answered=%lld late=%lld balloon_calls=%lld "
	    "balloon_freed=%lld clients=%lld\n", relay_stat("rounds"),
	    relay_stat("rounds_timed_out"), relay_stat("rounds_nobody"),
	    relay_stat("last_round_ns"), relay_stat("max_round_ns"), relay_stat("missed"),
	    relay_stat("answered"), relay_stat("late"), relay_stat("balloon_calls"),
	    relay_stat("balloon_freed"), relay_stat("clients"));
}

/*
 * For host-driven tests: hold @mib of anonymous memory, register with it
 * as the estimate, print "READY" and then each request as "REQ ...
 * client=NAME" (two clients share the output).
 * @mode: "answer" frees what is asked (from the end of the block) and
 * answers; "silent" never answers (and does not read the host's lines:
 * it runs beside an answering client); "die" exits (a child holding the
 * registration) on the first request.  The host's line "stats" prints the
 * relay's counters ("STATS ..."), "quit" ends.
 */
static void
run_client(const char *name, uint64_t mib, const char *mode, uint32_t prio, int nobody)
{
	size_t len = (size_t)mib << 20, held, psz = (size_t)sysconf(_SC_PAGESIZE);
	int fd, tty, die = strcmp(mode, "die") == 0, silent = strcmp(mode, "silent") == 0;
	struct pollfd pfd[2];
	char *mem, line[64];
	size_t ll = 0;
	pid_t child = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* a silent client runs beside another one, which takes the host's lines */
	tty = -1;
	if (!silent && (tty = open("/dev/ttyS2", O_RDONLY | O_NONBLOCK)) == -1)
		fail(__LINE__, "/dev/ttyS2: %s", strerror(errno));
	if (die && (child = fork()) == 0) {
		struct memcoop_event ev;

		/* the memory dies with the child: the balloon gets it then */
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(mem != MAP_FAILED);
		memset(mem, 0x5a, len);

		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		CHECK_OK(reg(fd, name, 0, len / psz, 0));
		printf("READY %s %llu\n", name, (unsigned long long)mib);
		while (!next_event(fd, &ev, 1000))
			;
		printf("REQ seq=%llu reason=%u level=%u pages=%llu (dying)\n",
		    (unsigned long long)ev.seq, ev.shrink.reason, ev.shrink.level,
		    (unsigned long long)ev.shrink.pages);
		_exit(0);
	}
	fd = -1;
	mem = NULL;
	held = 0;
	if (!die) {
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(mem != MAP_FAILED);
		(void)madvise(mem, len, MADV_NOHUGEPAGE);
		memset(mem, 0x5a, len);
		held = len;
		if (nobody)
			become(NOBODY, 0);
		fd = dev_open(MEMCOOP_FEATURE_RELAY);
		/*
		 * An unprivileged client takes the best priority it is given
		 * (0 where nothing checks) and claims all RAM as its estimate.
		 */
		if (reg(fd, name, prio, nobody ? 1ull << 40 : len / psz, 0) == -1) {
			if (!nobody || errno != EPERM)
				fail(__LINE__, "register: %s", strerror(errno));
			prio = MEMCOOP_PRIO_UNPRIV;
			CHECK_OK(reg(fd, name, prio, 1ull << 40, 0));
		}
		printf("READY %s %llu prio=%u memfree_kb=%ld high_kb=%ld\n", name,
		    (unsigned long long)mib, prio, meminfo_kib("MemFree:"),
		    zoneinfo_sum_kib("high"));
	}
	pfd[0].fd = tty;
	pfd[0].events = POLLIN;
	pfd[1].fd = fd;
	pfd[1].events = POLLIN;
	for (;;) {
		struct memcoop_event ev;
		char c;

		if (poll(pfd, 2, 1000) <= 0)	/* fds of -1 are ignored */
			continue;
		while (tty != -1 && read(tty, &c, 1) == 1) {
			if (c == '\r')
				continue;
			if (c != '\n') {
				if (ll + 1 < sizeof(line))
					line[ll++] = c;
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			if (strcmp(line, "stats") == 0)
				print_stats();
			else if (strcmp(line, "quit") == 0)
				goto out;
		}
		if (fd == -1 || !(pfd[1].revents & POLLIN) || read(fd, &ev, sizeof(ev)) != sizeof(ev) ||
		    ev.type != MEMCOOP_EVENT_SHRINK)
			continue;
		printf("REQ seq=%llu reason=%u level=%u pages=%llu latency_us=%llu deadline_ms=%llu "
		    "client=%s\n", (unsigned long long)ev.seq, ev.shrink.reason, ev.shrink.level,
		    (unsigned long long)ev.shrink.pages,
		    (unsigned long long)((now_ns() - ev.timestamp_ns) / 1000),
		    (unsigned long long)((ev.shrink.deadline_ns - ev.timestamp_ns) / 1000000), name);
		if (silent)
			continue;
		{
			size_t want = (size_t)ev.shrink.pages * psz, give = want < held ? want : held;

			(void)madvise(mem + held - give, give, MADV_DONTNEED);
			held -= give;
			CHECK_OK(set_est(fd, held / psz));
			if (answer(fd, ev.seq, give / psz) == -1)
				printf("ANSWER-ERROR %s\n", strerror(errno));
			else
				printf("ANSWERED seq=%llu freed=%zu\n", (unsigned long long)ev.seq,
				    give / psz);
		}
	}
out:
	if (child > 0)
		waitpid(child, NULL, 0);
	printf("BYE\n");
}

int
main(int argc, char *argv[])
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		goto usage;
	/* the lab always loads memcoop.ko: a missing device is a failure */
	if (access(MEMCOOP_DEVICE, F_OK) == -1 && strcmp(argv[1], "suid-victim") != 0)
		fail(__LINE__, MEMCOOP_DEVICE " missing (memcoop.ko not loaded): %s",
		    strerror(errno));
	if (strcmp(argv[1], "badargs") == 0)
		test_badargs();
	else if (strcmp(argv[1], "requests") == 0)
		test_requests();
	else if (strcmp(argv[1], "exit") == 0)
		test_exit();
	else if (strcmp(argv[1], "fork") == 0)
		test_fork();
	else if (strcmp(argv[1], "threads") == 0)
		test_threads();
	else if (strcmp(argv[1], "lib") == 0)
		test_lib();
	else if (strcmp(argv[1], "oom") == 0 && argc == 4)
		test_oom((unsigned int)atoi(argv[2]), (unsigned int)atoi(argv[3]));
	else if (strcmp(argv[1], "fuzz") == 0 && argc >= 3)
		test_fuzz(atoi(argv[2]), argc >= 4 ? atoi(argv[3]) : 4);
	else if (strcmp(argv[1], "trust") == 0)
		test_trust();
	else if (strcmp(argv[1], "suid") == 0)
		test_suid();
	else if (strcmp(argv[1], "suid-victim") == 0 && argc == 4)
		suid_victim(atoi(argv[2]), atoi(argv[3]));
	else if (strcmp(argv[1], "oomlie") == 0 && argc == 4)
		test_oomlie((unsigned int)atoi(argv[2]), (unsigned int)atoi(argv[3]));
	else if (strcmp(argv[1], "many") == 0 && argc == 3)
		test_many(atoi(argv[2]));
	else if (strcmp(argv[1], "many-hold") == 0 && argc == 4)
		run_many_hold(atoi(argv[2]), atoi(argv[3]));
	else if (strcmp(argv[1], "fasync") == 0)
		test_fasync();
	else if (strcmp(argv[1], "signals") == 0) {
		test_suid();
		test_fasync();
	}
	else if (strcmp(argv[1], "rmmod") == 0)
		test_rmmod();
	else if (strcmp(argv[1], "client") == 0 && argc >= 5 && argc <= 7)
		run_client(argv[2], strtoull(argv[3], NULL, 0), argv[4],
		    argc >= 6 ? (uint32_t)atoi(argv[5]) : 0,
		    argc == 7 && strcmp(argv[6], "nobody") == 0);
	else
		goto usage;
	return 0;
usage:
	fprintf(stderr, "usage: mct-relay badargs|requests|exit|fork|threads|lib|trust|suid|fasync|signals|rmmod|"
	    "oom HOLD_MIB HOG_MIB|oomlie HOLD_MIB HOG_MIB|many N|many-hold N SECS|fuzz SECS [PROCS]|"
	    "client NAME MIB answer|silent|die [PRIO [nobody]]\n");
	return 2;
}
