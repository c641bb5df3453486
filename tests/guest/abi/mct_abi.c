/*
 * mct-abi: the /dev/memcoop handshake and event-queue core (dev.c):
 * everything before the handshake fails, the handshake rejects bad input
 * and answers what the kernel supports, unknown commands are ENOTTY, the
 * event queue reads and polls correctly, and open/close does not leak.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <memcoop.h>

#include "meminfo.h"
#include "modparam.h"

static int failures, passes;
static void *volatile bad_ptr = (void *)16;	/* hidden from the compiler */

#define CHECK(cond, ...) do {						\
	if (cond) {							\
		passes++;						\
	} else {							\
		failures++;						\
		printf("FAIL %s:%d: ", __FILE__, __LINE__);		\
		printf(__VA_ARGS__);					\
		printf(" (errno %d %s)\n", errno, strerror(errno));	\
	}								\
} while (0)

/* ioctl that must fail with @err */
#define FAILS(fd, cmd, arg, err) do {					\
	errno = 0;							\
	int r_ = ioctl((fd), (cmd), (arg));				\
	CHECK(r_ == -1 && errno == (err), "%s: want %s, got %d",	\
	    #cmd, #err, r_);						\
} while (0)

static int
open_dev(void)
{
	int fd = open(MEMCOOP_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd == -1) {
		perror("open " MEMCOOP_DEVICE);
		exit(1);
	}
	return fd;
}

static int
handshake(int fd, uint64_t features, struct memcoop_api *out)
{
	struct memcoop_api api;

	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;
	api.features = features;
	if (ioctl(fd, MEMCOOP_IOC_API, &api) == -1)
		return -1;
	if (out)
		*out = api;
	return 0;
}

static void
before_handshake(void)
{
	struct memcoop_register reg;
	struct memcoop_event ev;
	struct pollfd pfd;
	int fd = open_dev();
	void *p;

	memset(&reg, 0, sizeof(reg));
	strcpy((char *)reg.name, "early");
	FAILS(fd, MEMCOOP_IOC_REGISTER, &reg, EINVAL);
	CHECK(read(fd, &ev, sizeof(ev)) == -1 && errno == EINVAL, "read before handshake");
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p == MAP_FAILED && errno == EINVAL, "mmap before handshake");
	pfd.fd = fd;
	pfd.events = POLLIN;
	CHECK(poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR), "poll before handshake: POLLERR");
	close(fd);
}

static void
bad_commands(void)
{
	struct memcoop_api api;
	int fd = open_dev();

	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;

	FAILS(fd, _IOWR(MEMCOOP_IOC_MAGIC, 0x7f, struct memcoop_api), &api, ENOTTY);
	FAILS(fd, _IOWR('x', _MEMCOOP_API, struct memcoop_api), &api, ENOTTY);
	/* the handshake number with another size is another command */
	FAILS(fd, _IOWR(MEMCOOP_IOC_MAGIC, _MEMCOOP_API, char[16]), &api, ENOTTY);
	FAILS(fd, _IO(MEMCOOP_IOC_MAGIC, _MEMCOOP_API), &api, ENOTTY);
	/* and after the handshake too */
	CHECK(handshake(fd, 0, NULL) == 0, "handshake with no features");
	FAILS(fd, _IOWR(MEMCOOP_IOC_MAGIC, 0x33, struct memcoop_api), &api, ENOTTY);
	close(fd);
}

static void
bad_handshakes(void)
{
	struct memcoop_api api;
	int fd = open_dev();

	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API + 1;
	FAILS(fd, MEMCOOP_IOC_API, &api, EINVAL);

	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;
	api.features = (uint64_t)1 << 40;
	FAILS(fd, MEMCOOP_IOC_API, &api, EINVAL);

	for (int i = 0; i < 4; i++) {
		memset(&api, 0, sizeof(api));
		api.api = MEMCOOP_API;
		api.reserved[i] = 1;
		FAILS(fd, MEMCOOP_IOC_API, &api, EINVAL);
	}

	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;
	api.features = MEMCOOP_FEATURE_RESIDENCE_EVENTS;	/* needs VRANGE */
	FAILS(fd, MEMCOOP_IOC_API, &api, EINVAL);
	api.features = MEMCOOP_FEATURE_WTRACK;			/* needs VRANGE */
	FAILS(fd, MEMCOOP_IOC_API, &api, EINVAL);

	FAILS(fd, MEMCOOP_IOC_API, (void *)16, EFAULT);
	FAILS(fd, MEMCOOP_IOC_API, NULL, EFAULT);

	/* none of the failures counted as the handshake */
	CHECK(handshake(fd, MEMCOOP_FEATURE_RELAY, &api) == 0, "good handshake after bad ones");
	CHECK(api.api == MEMCOOP_API, "api echoed");
	CHECK((api.features & MEMCOOP_FEATURE_RELAY) && (api.features & MEMCOOP_FEATURE_VRANGE),
	    "kernel reports RELAY and VRANGE: %llx", (unsigned long long)api.features);
	CHECK(api.ioctls & (1ULL << _MEMCOOP_API), "ioctls include the handshake");
	CHECK(api.ioctls & (1ULL << _MEMCOOP_REGISTER), "ioctls include REGISTER");
	CHECK(api.page_size == (uint64_t)sysconf(_SC_PAGESIZE), "page size %llu",
	    (unsigned long long)api.page_size);
	for (int i = 0; i < 4; i++)
		CHECK(api.reserved[i] == 0, "reserved[%d] zero on output", i);
	CHECK(handshake(fd, MEMCOOP_FEATURE_RELAY, NULL) == -1 && errno == EBUSY,
	    "second handshake is EBUSY");
	close(fd);
}

static void
feature_gating(void)
{
	struct memcoop_register reg;
	struct memcoop_subscribe sub;
	struct memcoop_vrange vr;
	int fd = open_dev();
	void *p;

	CHECK(handshake(fd, 0, NULL) == 0, "handshake without features");
	memset(&reg, 0, sizeof(reg));
	strcpy((char *)reg.name, "nofeat");
	FAILS(fd, MEMCOOP_IOC_REGISTER, &reg, EINVAL);
	memset(&vr, 0, sizeof(vr));
	FAILS(fd, MEMCOOP_IOC_VRANGE, &vr, EINVAL);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p == MAP_FAILED && errno == EINVAL, "mmap without VRANGE");

	memset(&sub, 0, sizeof(sub));
	sub.events = 1ULL << MEMCOOP_EVENT_PURGED;	/* needs RESIDENCE_EVENTS */
	FAILS(fd, MEMCOOP_IOC_SUBSCRIBE, &sub, EINVAL);
	sub.events = 1ULL << 40;
	FAILS(fd, MEMCOOP_IOC_SUBSCRIBE, &sub, EINVAL);
	sub.events = 1;					/* event type 0 does not exist */
	FAILS(fd, MEMCOOP_IOC_SUBSCRIBE, &sub, EINVAL);
	sub.events = 1ULL << MEMCOOP_EVENT_SHRINK;
	sub.reserved = 1;
	FAILS(fd, MEMCOOP_IOC_SUBSCRIBE, &sub, EINVAL);
	sub.reserved = 0;
	CHECK(ioctl(fd, MEMCOOP_IOC_SUBSCRIBE, &sub) == 0, "valid subscribe");
	close(fd);
}

static void
event_queue(void)
{
	struct memcoop_event ev[4];
	struct pollfd pfd;
	int fd = open_dev(), fl;

	CHECK(handshake(fd, MEMCOOP_FEATURE_RELAY, NULL) == 0, "handshake");
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	CHECK(read(fd, ev, sizeof(ev)) == -1 && errno == EAGAIN, "empty queue: EAGAIN");
	CHECK(read(fd, ev, sizeof(ev[0]) - 1) == -1 && errno == EINVAL,
	    "buffer smaller than a record: EINVAL");
	CHECK(read(fd, bad_ptr, sizeof(ev)) == -1 && (errno == EAGAIN || errno == EFAULT),
	    "bad buffer with an empty queue");
	pfd.fd = fd;
	pfd.events = POLLIN;
	CHECK(poll(&pfd, 1, 0) == 0, "empty queue does not poll readable");
	close(fd);
}

static void
fork_shares(void)
{
	struct memcoop_api api;
	int fd = open_dev(), st;
	pid_t pid;

	CHECK(handshake(fd, MEMCOOP_FEATURE_RELAY, NULL) == 0, "handshake");
	pid = fork();
	if (pid == 0) {
		/* the child shares the open file: the handshake is done */
		memset(&api, 0, sizeof(api));
		api.api = MEMCOOP_API;
		_exit(ioctl(fd, MEMCOOP_IOC_API, &api) == -1 && errno == EBUSY ? 0 : 1);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "a forked child sees the handshake done");
	close(fd);
}

/*
 * Overflow: 300 PURGED events for a queue of 256 records.  Every event is
 * either delivered or counted in a LOST record that comes after the
 * delivered ones, and nothing is delivered twice.
 */
static void
queue_overflow(void)
{
	enum { NR = 300 };
	struct memcoop_subscribe sub = { .events = 1ULL << MEMCOOP_EVENT_PURGED };
	struct memcoop_event ev[64];
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t purged = 0, lost = 0, lost_records = 0, after_lost = 0;
	char *p;
	int fd = open_dev(), i, n, kfd;

	CHECK(handshake(fd, MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_RESIDENCE_EVENTS,
	    NULL) == 0, "handshake with residence events");
	CHECK(ioctl(fd, MEMCOOP_IOC_SUBSCRIBE, &sub) == 0, "subscribe PURGED");
	p = mmap(NULL, 2 * NR * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mmap");
	if (p == MAP_FAILED)
		return;
	memset(p, 1, 2 * NR * pg);
	for (i = 0; i < NR; i++) {	/* every other page: no merging */
		struct memcoop_vrange vr = { .start = (uintptr_t)(p + 2 * i * pg),
		    .len = pg, .mode = MEMCOOP_VRANGE_VOLATILE };
		if (ioctl(fd, MEMCOOP_IOC_VRANGE, &vr) == -1) {
			CHECK(0, "mark range %d volatile", i);
			return;
		}
	}
	/*
	 * One purge call stops at purge_budget_ms: on a slow kernel (KASAN
	 * under TCG) it may not reach all NR ranges.  Ten calls, queue not
	 * drained in between: the same overflow, whatever the speed.
	 */
	kfd = open("/sys/kernel/debug/memcoop/vrange_purge", O_WRONLY);
	CHECK(kfd >= 0, "open vrange_purge");
	for (i = 0; kfd >= 0 && i < 10; i++)
		CHECK(pwrite(kfd, "100000", 6, 0) == 6, "purge through debugfs");
	if (kfd >= 0)
		close(kfd);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while ((n = read(fd, ev, sizeof(ev))) > 0) {
		for (i = 0; i < n / (int)sizeof(ev[0]); i++) {
			if (ev[i].type == MEMCOOP_EVENT_PURGED) {
				purged++;
				after_lost += lost_records > 0;
			} else if (ev[i].type == MEMCOOP_EVENT_LOST) {
				lost += ev[i].lost.count;
				lost_records++;
			}
		}
	}
	CHECK(n == -1 && errno == EAGAIN, "queue drained");
	CHECK(purged + lost == NR, "every purge delivered or counted lost: %llu + %llu",
	    (unsigned long long)purged, (unsigned long long)lost);
	CHECK(lost > 0 && lost_records == 1, "one LOST record for %llu dropped events",
	    (unsigned long long)lost);
	CHECK(after_lost == 0, "the LOST record comes after the delivered events");
	CHECK(purged <= 255, "no more delivered than the queue holds: %llu",
	    (unsigned long long)purged);
	munmap(p, 2 * NR * pg);
	close(fd);
}

static void
unprivileged(void)
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(2);
		int fd = open(MEMCOOP_DEVICE, O_RDWR);
		_exit(fd >= 0 && handshake(fd, MEMCOOP_FEATURE_RELAY, NULL) == 0 ? 0 : 1);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "an unprivileged process can open and handshake");
}

static void
no_leak(void)
{
	long slab0, slab1;
	int i;

	/* warm up caches, then measure many open/handshake/close cycles */
	for (i = 0; i < 200; i++) {
		int fd = open_dev();
		handshake(fd, MEMCOOP_FEATURE_RELAY, NULL);
		close(fd);
	}
	sync();
	slab0 = meminfo_slab_kib();
	for (i = 0; i < 20000; i++) {
		int fd = open_dev();
		if (i % 2)
			handshake(fd, MEMCOOP_FEATURE_RELAY | MEMCOOP_FEATURE_VRANGE, NULL);
		close(fd);
	}
	slab1 = meminfo_slab_kib();
	/* a leak of the 16 KiB ring or the per-file struct would show as
	 * tens of MiB over 20000 cycles; allow 2 MiB of noise */
	CHECK(slab1 - slab0 < 2048, "20000 open/close cycles: Slab %ld -> %ld kB", slab0, slab1);
}

/* Run @fn as user @uid (and its group) with @nofile files allowed; CHECK its exit. */
static void
as_user(uid_t uid, rlim_t nofile, int (*fn)(void), const char *what)
{
	struct rlimit rl = { nofile, nofile };
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		if (setrlimit(RLIMIT_NOFILE, &rl) || setgid(uid) || setuid(uid))
			_exit(2);
		_exit(fn());
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "%s (exit status %d)", what, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/*
 * Files that only opened and shook hands hold no event queue: 2000 of
 * them held by an unprivileged user cost well under 8 KiB of memory each
 * (a 24 KiB queue per file would be 48 MiB or more).
 */
static int
held_files(void)
{
	enum { N = 2000 };
	long free0, free1;
	int i, fd;

	free0 = meminfo_kib("MemFree:");
	for (i = 0; i < N; i++) {
		fd = open(MEMCOOP_DEVICE, O_RDWR);
		if (fd == -1 || handshake(fd, MEMCOOP_FEATURE_RELAY | MEMCOOP_FEATURE_VRANGE,
		    NULL) == -1) {
			printf("held-files: file %d: %s\n", i, strerror(errno));
			return 1;
		}
	}
	free1 = meminfo_kib("MemFree:");
	printf("held-files: %d files open, MemFree %ld -> %ld KiB (%ld B per file)\n",
	    N, free0, free1, (free0 - free1) * 1024 / N);
	return free0 - free1 < N * 8 ? 0 : 1;
}

/*
 * An unprivileged user holds at most events_user_max event queues
 * (residence subscriptions and registrations); one more is EMFILE, and a
 * released file gives its slot back.
 */
static int
queue_cap(void)
{
	struct memcoop_subscribe sub = { .events = 1ULL << MEMCOOP_EVENT_PURGED };
	uint64_t feat = MEMCOOP_FEATURE_RELAY | MEMCOOP_FEATURE_VRANGE |
	    MEMCOOP_FEATURE_RESIDENCE_EVENTS;
	struct memcoop_register reg;
	long cap = modparam_read("events_user_max");
	int *fds, i, extra, bad = 0;

	if (cap <= 0 || cap > 4096) {
		printf("queue-cap: events_user_max reads %ld\n", cap);
		return 1;
	}
	fds = calloc(cap, sizeof(*fds));
	for (i = 0; fds && i < cap; i++) {
		fds[i] = open(MEMCOOP_DEVICE, O_RDWR);
		if (fds[i] == -1 || handshake(fds[i], feat, NULL) == -1 ||
		    ioctl(fds[i], MEMCOOP_IOC_SUBSCRIBE, &sub) == -1) {
			printf("queue-cap: queue %d of %ld: %s\n", i, cap, strerror(errno));
			return 1;
		}
	}
	extra = open(MEMCOOP_DEVICE, O_RDWR);
	if (!fds || extra == -1 || handshake(extra, feat, NULL) == -1) {
		printf("queue-cap: a handshake past the cap: %s\n", strerror(errno));
		return 1;
	}
	errno = 0;
	if (ioctl(extra, MEMCOOP_IOC_SUBSCRIBE, &sub) != -1 || errno != EMFILE) {
		printf("queue-cap: subscription %ld: want EMFILE, got %s\n", cap + 1,
		    strerror(errno));
		bad = 1;
	}
	memset(&reg, 0, sizeof(reg));
	reg.priority = MEMCOOP_PRIO_UNPRIV;
	strcpy((char *)reg.name, "pastcap");
	errno = 0;
	if (ioctl(extra, MEMCOOP_IOC_REGISTER, &reg) != -1 || errno != EMFILE) {
		printf("queue-cap: registration past the cap: want EMFILE, got %s\n",
		    strerror(errno));
		bad = 1;
	}
	close(fds[0]);
	if (ioctl(extra, MEMCOOP_IOC_SUBSCRIBE, &sub) == -1) {
		printf("queue-cap: after a close, subscribe: %s\n", strerror(errno));
		bad = 1;
	}
	printf("queue-cap: %ld queues held, the next refused%s\n", cap,
	    bad ? " (FAILED)" : ", a closed file's slot reused");
	return bad;
}

int
main(void)
{
	before_handshake();
	bad_commands();
	bad_handshakes();
	feature_gating();
	event_queue();
	fork_shares();
	queue_overflow();
	unprivileged();
	no_leak();
	as_user(65534, 2100, held_files, "2000 handshaken files held by nobody cost no queue");
	as_user(65533, 1024, queue_cap, "events_user_max bounds a user's event queues");
	printf("mct-abi: %d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
