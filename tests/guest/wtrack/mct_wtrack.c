/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mct-wtrack: in-guest tests of write tracking (MEMCOOP_FEATURE_WTRACK).
 *
 *	mct-wtrack basic|concurrent|hotpages|badlists|fork|unmap|outlive|
 *	           vrange|leak|manyvmas|sparse
 *
 * Every test installs SIGSEGV/SIGBUS handlers that fail it: a tracked
 * write must never reach user space as a signal.  Exit 0 pass, 1 fail.
 * The guest runs them as root; "sparse" and "manyvmas" do their tracking
 * as nobody, in a memory cgroup of their own.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <libmemcoop.h>

#include "meminfo.h"

#define WT_FEATURES	(MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_WTRACK)

static int failures;
static size_t ps;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		printf("FAIL %s:%d: ", __func__, __LINE__);		\
		printf(__VA_ARGS__);					\
		printf("\n");						\
		fflush(stdout);						\
		failures++;						\
	}								\
} while (0)

struct tctx {
	struct memcoop *mc;
	int fd;
	char *base;
	size_t pages;
};

static void
on_fault(int sig)
{
	static const char msg[] = "FAIL: a signal reached user space on a tracked write\n";

	(void)sig;
	(void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static void
no_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

static void
tsetup(struct tctx *t, size_t pages)
{
	t->mc = memcoop_open(WT_FEATURES);
	if (t->mc == NULL)
		err(1, "memcoop_open");
	t->fd = memcoop_fd(t->mc);
	ps = memcoop_page_size(t->mc);
	t->pages = pages;
	t->base = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED,
	    t->fd, 0);
	if (t->base == MAP_FAILED)
		err(1, "mmap /dev/memcoop (%zu pages)", pages);
}

static void
tteardown(struct tctx *t)
{
	munmap(t->base, t->pages * ps);
	memcoop_close(t->mc);
}

static char *
pg(struct tctx *t, size_t i)
{
	return t->base + i * ps;
}

static size_t
pidx(struct tctx *t, void *addr)
{
	return (size_t)((char *)addr - t->base) / ps;
}

static void
wr(struct tctx *t, size_t i, unsigned int salt)
{
	volatile char *p = pg(t, i);

	p[(salt * 97) % ps] = (char)salt;
}

/*
 * Harvest everything into @got (a page count per index); checks every
 * address is a page of the mapping and that no page repeats within one
 * harvest.  Returns the pages harvested.
 */
static size_t
harvest_into(struct tctx *t, unsigned int flags, size_t max, unsigned char *got)
{
	void **a;
	size_t total = 0, remaining, i;
	ssize_t n;
	unsigned char *seen;

	a = calloc(max, sizeof(*a));
	seen = calloc(t->pages, 1);
	if (a == NULL || seen == NULL)
		err(1, "calloc");
	do {
		n = memcoop_wt_harvest(t->mc, a, max, flags, &remaining);
		if (n == -1) {
			CHECK(0, "harvest: %s", strerror(errno));
			break;
		}
		CHECK((size_t)n <= max, "harvest returned %zd > max %zu", n, max);
		for (i = 0; i < (size_t)n; i++) {
			char *p = a[i];
			size_t k;

			if (p < t->base || p >= t->base + t->pages * ps ||
			    ((uintptr_t)p % ps) != 0) {
				CHECK(0, "address %p not a page of the mapping", p);
				continue;
			}
			k = pidx(t, p);
			CHECK(!seen[k], "page %zu reported twice in one harvest", k);
			seen[k] = 1;
			got[k]++;
		}
		total += (size_t)n;
	} while (n > 0 && remaining > 0);
	free(seen);
	free(a);
	return total;
}

static void
expect_set(struct tctx *t, const unsigned char *want, const unsigned char *got,
    const char *what)
{
	size_t i, bad = 0;

	for (i = 0; i < t->pages; i++) {
		if ((want[i] != 0) != (got[i] != 0) || got[i] > 1) {
			if (bad++ < 5)
				CHECK(0, "%s: page %zu written=%d reported=%d times",
				    what, i, want[i], got[i]);
		}
	}
	CHECK(bad == 0, "%s: %zu pages wrong", what, bad);
}

static int
subscribe_dirty(struct tctx *t)
{
	struct memcoop_subscribe s;

	memset(&s, 0, sizeof(s));
	s.events = 1ULL << MEMCOOP_EVENT_DIRTY;
	return ioctl(t->fd, MEMCOOP_IOC_SUBSCRIBE, &s);
}

static bool
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void
drain_events(struct tctx *t)
{
	struct memcoop_event ev[8];

	while (memcoop_read_events(t->mc, ev, 8) > 0)
		;
}

/* Exactly the written pages, once each; re-arm; partial harvests; disarm; events. */
static void
test_basic(void)
{
	struct tctx t;
	struct memcoop_wt_range r;
	struct memcoop_event ev;
	unsigned char *want, *got;
	uint64_t armed;
	size_t i, n, pages = 512, written, total;
	void *one[1];
	int fl;

	tsetup(&t, pages);
	want = calloc(pages, 1);
	got = calloc(pages, 1);
	srand(12345);

	/* pages already written (PTEs writable) must become read-only on arm */
	for (i = 0; i < pages; i++)
		wr(&t, i, 1);
	r.start = (uintptr_t)t.base;
	r.len = pages * ps;
	CHECK(memcoop_wt_arm(t.mc, &r, 1, &armed) == 0, "arm: %s", strerror(errno));
	CHECK(armed == pages, "armed %llu, want %zu", (unsigned long long)armed, pages);
	n = harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	CHECK(n == 0, "arming logged %zu pages", n);

	/* round 1: a random subset, each page written several times */
	memset(got, 0, pages);
	written = 0;
	for (i = 0; i < pages; i++) {
		want[i] = (rand() % 3) == 0;
		if (want[i]) {
			wr(&t, i, 2);
			wr(&t, i, 3);
			wr(&t, i, 4);
			written++;
		}
	}
	n = harvest_into(&t, MEMCOOP_WT_REARM, pages, got);
	CHECK(n == written, "round 1: harvested %zu, wrote %zu", n, written);
	expect_set(&t, want, got, "round 1");
	memset(got, 0, pages);
	n = harvest_into(&t, MEMCOOP_WT_REARM, pages, got);
	CHECK(n == 0, "second harvest returned %zu pages", n);

	/* round 2: re-armed pages are logged again; harvest 7 at a time */
	memset(got, 0, pages);
	written = 0;
	for (i = 0; i < pages; i++) {
		want[i] = (rand() % 4) == 0;
		if (want[i]) {
			wr(&t, i, 5);
			written++;
		}
	}
	n = harvest_into(&t, MEMCOOP_WT_REARM, 7, got);
	CHECK(n == written, "round 2: harvested %zu, wrote %zu", n, written);
	expect_set(&t, want, got, "round 2 (batches of 7)");

	/* round 3: harvest without re-arm: those pages stop being tracked */
	memset(got, 0, pages);
	for (i = 0; i < pages; i++) {
		want[i] = i % 5 == 0;
		if (want[i])
			wr(&t, i, 6);
	}
	n = harvest_into(&t, 0, pages, got);
	expect_set(&t, want, got, "round 3 (no re-arm)");
	memset(got, 0, pages);
	for (i = 0; i < pages; i++) {
		wr(&t, i, 7);
		want[i] = i % 5 != 0;		/* still tracked */
	}
	n = harvest_into(&t, MEMCOOP_WT_REARM, pages, got);
	expect_set(&t, want, got, "round 3b (untracked pages silent)");

	/* disarm the first 100 pages: 80 of them were tracked */
	r.start = (uintptr_t)t.base;
	r.len = 100 * ps;
	CHECK(memcoop_wt_disarm(t.mc, &r, 1, &armed) == 0, "disarm: %s", strerror(errno));
	CHECK(armed == 80, "disarmed %llu, want 80", (unsigned long long)armed);
	memset(got, 0, pages);
	for (i = 0; i < pages; i++) {
		wr(&t, i, 8);
		want[i] = i >= 100 && i % 5 != 0;
	}
	n = harvest_into(&t, MEMCOOP_WT_REARM, pages, got);
	expect_set(&t, want, got, "after disarm");

	/* MEMCOOP_EVENT_DIRTY: posted when the log becomes non-empty */
	CHECK(subscribe_dirty(&t) == 0, "subscribe DIRTY: %s", strerror(errno));
	fl = fcntl(t.fd, F_GETFL);
	fcntl(t.fd, F_SETFL, fl | O_NONBLOCK);
	drain_events(&t);
	CHECK(!readable(t.fd), "fd readable with an empty log");
	wr(&t, 201, 9);
	CHECK(readable(t.fd), "fd not readable after a tracked write");
	CHECK(memcoop_read_events(t.mc, &ev, 1) == 1 && ev.type == MEMCOOP_EVENT_DIRTY,
	    "expected a DIRTY event, got type %u", ev.type);
	wr(&t, 202, 9);
	CHECK(!readable(t.fd), "a second DIRTY event while the log was not empty");
	/* a partial harvest leaves the log non-empty: no new event either */
	CHECK(memcoop_wt_harvest(t.mc, one, 1, MEMCOOP_WT_REARM, &i) == 1 && i == 1,
	    "partial harvest: remaining %zu", i);
	total = harvest_into(&t, MEMCOOP_WT_REARM, 8, got);
	CHECK(total == 1, "rest of the log: %zu pages", total);
	wr(&t, 202, 10);
	CHECK(readable(t.fd), "no DIRTY event after the log was emptied");
	drain_events(&t);

	free(want);
	free(got);
	tteardown(&t);
}

/* ---- several writer threads while another thread harvests ---- */

#define CW_THREADS	4
#define CW_SECONDS	5

/*
 * Pages of the heap: 1024 for "concurrent" (writes spread out, read back
 * from the page tables' dirty bits: scan mode), 12 for "hotpages" (every
 * write after a re-arm faults, and the harvester races the write faults
 * on the same few pages all the time; it subscribes to
 * MEMCOOP_EVENT_DIRTY, which keeps the pages write-protected).
 */
static size_t CW_PAGES = 1024;
static bool cw_faults;

struct cw {
	struct tctx *t;
	_Atomic uint64_t *last;		/* last value written per page */
	uint64_t *seen;			/* value the harvester read after reporting */
	unsigned char *reported;
	_Atomic int stop;		/* harvester */
	_Atomic int wstop;		/* writers */
	unsigned long writes, harvests, harvested;
};

struct cw_writer {
	struct cw *cw;
	unsigned int id;
};

static void *
cw_write(void *arg)
{
	struct cw_writer *w = arg;
	struct cw *cw = w->cw;
	unsigned int seed = 7 + w->id;
	unsigned long k;
	size_t p;

	for (k = 0; !atomic_load_explicit(&cw->wstop, memory_order_relaxed); k++) {
		uint64_t v;

		/* each thread owns the pages p with p % CW_THREADS == id */
		p = (size_t)(rand_r(&seed) % (CW_PAGES / CW_THREADS)) * CW_THREADS + w->id;
		/* a third of the pages is never written */
		if (p % 3 == 2)
			continue;
		if (CW_PAGES < 64 && (k & 7) == 0)
			sched_yield();
		v = atomic_load_explicit(&cw->last[p], memory_order_relaxed) + 1;
		atomic_store_explicit((_Atomic uint64_t *)pg(cw->t, p), v,
		    memory_order_release);
		atomic_store_explicit(&cw->last[p], v, memory_order_relaxed);
		if ((k & 255) == 0)
			sched_yield();
	}
	return NULL;
}

static void
cw_harvest_once(struct cw *cw, void **a, size_t max)
{
	struct tctx *t = cw->t;
	unsigned char *dup = calloc(CW_PAGES, 1);
	size_t remaining, i;
	ssize_t n;

	do {
		n = memcoop_wt_harvest(t->mc, a, max, MEMCOOP_WT_REARM, &remaining);
		if (n == -1) {
			CHECK(0, "harvest: %s", strerror(errno));
			break;
		}
		cw->harvests++;
		/* once per harvest call; a later call may see the page again */
		memset(dup, 0, CW_PAGES);
		for (i = 0; i < (size_t)n; i++) {
			size_t k = pidx(t, a[i]);

			if (k >= CW_PAGES) {
				CHECK(0, "address %p outside the heap", a[i]);
				continue;
			}
			CHECK(!dup[k], "page %zu twice in one harvest", k);
			dup[k] = 1;
			cw->reported[k] = 1;
			/* the collector's rescan: read the page now */
			cw->seen[k] = atomic_load_explicit(
			    (_Atomic uint64_t *)pg(t, k), memory_order_acquire);
		}
		cw->harvested += (size_t)n;
	} while (n > 0 && remaining > 0);
	free(dup);
}

static void *
cw_harvester(void *arg)
{
	struct cw *cw = arg;
	void *a[97];

	while (!atomic_load(&cw->stop))
		cw_harvest_once(cw, a, 97);
	return NULL;
}

static void
test_concurrent(void)
{
	struct tctx t;
	struct cw cw;
	struct cw_writer w[CW_THREADS];
	pthread_t wt[CW_THREADS], ht;
	void *a[256];
	size_t i, lost = 0, phantom = 0, written = 0;
	unsigned int j;

	tsetup(&t, CW_PAGES);
	if (cw_faults)
		CHECK(subscribe_dirty(&t) == 0, "subscribe DIRTY: %s", strerror(errno));
	memset(&cw, 0, sizeof(cw));
	cw.t = &t;
	cw.last = calloc(CW_PAGES, sizeof(*cw.last));
	cw.seen = calloc(CW_PAGES, sizeof(*cw.seen));
	cw.reported = calloc(CW_PAGES, 1);
	CHECK(memcoop_wt_arm_range(t.mc, t.base, CW_PAGES * ps) == 0, "arm: %s",
	    strerror(errno));

	if (pthread_create(&ht, NULL, cw_harvester, &cw) != 0)
		errx(1, "pthread_create");
	for (j = 0; j < CW_THREADS; j++) {
		w[j].cw = &cw;
		w[j].id = j;
		if (pthread_create(&wt[j], NULL, cw_write, &w[j]) != 0)
			errx(1, "pthread_create");
	}
	sleep(CW_SECONDS);
	atomic_store(&cw.wstop, 1);
	for (j = 0; j < CW_THREADS; j++)
		pthread_join(wt[j], NULL);
	atomic_store(&cw.stop, 1);
	pthread_join(ht, NULL);
	/* the final harvest, with every writer stopped */
	cw_harvest_once(&cw, a, 256);

	for (i = 0; i < CW_PAGES; i++) {
		uint64_t last = atomic_load(&cw.last[i]);

		if (last)
			written++;
		if (last && cw.seen[i] != last) {
			if (lost++ < 5)
				CHECK(0, "page %zu: last write %llu, collector saw %llu",
				    i, (unsigned long long)last,
				    (unsigned long long)cw.seen[i]);
		}
		if (!last && cw.reported[i]) {
			if (phantom++ < 5)
				CHECK(0, "page %zu reported but never written", i);
		}
	}
	CHECK(lost == 0, "%zu pages with a write the log missed", lost);
	CHECK(phantom == 0, "%zu pages reported without a write", phantom);
	CHECK(written >= CW_PAGES / 2, "only %zu pages written", written);
	printf("concurrent: %d writers, %zu pages written, %lu harvests, %lu pages harvested\n",
	    CW_THREADS, written, cw.harvests, cw.harvested);
	free(cw.last);
	free(cw.seen);
	free(cw.reported);
	tteardown(&t);
}

/* ---- bad lists are refused and change nothing ---- */

static int
arm_raw(int fd, const void *ranges, uint32_t count, uint32_t flags,
    uint64_t reserved, uint64_t *armed)
{
	struct memcoop_wt_arm a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.ranges = (uintptr_t)ranges;
	a.count = count;
	a.flags = flags;
	a.reserved = reserved;
	ret = ioctl(fd, MEMCOOP_IOC_WT_ARM, &a);
	if (ret == 0 && armed != NULL)
		*armed = a.armed;
	return ret == 0 ? 0 : errno;
}

static int
arm1(int fd, uint64_t start, uint64_t len)
{
	struct memcoop_wt_range r = { .start = start, .len = len };

	return arm_raw(fd, &r, 1, 0, 0, NULL);
}

static int
harvest_raw(int fd, void *addrs, uint64_t max, uint32_t flags, uint32_t reserved,
    uint64_t *count)
{
	struct memcoop_wt_harvest h;

	memset(&h, 0, sizeof(h));
	h.addrs = (uintptr_t)addrs;
	h.max = max;
	h.flags = flags;
	h.reserved = reserved;
	if (ioctl(fd, MEMCOOP_IOC_WT_HARVEST, &h) == -1)
		return errno;
	if (count != NULL)
		*count = h.count;
	return 0;
}

static void
test_badlists(void)
{
	struct tctx t, other;
	struct memcoop_wt_range *many, dup[3], mixed[2];
	struct memcoop *plain;
	uint64_t b, len, armed = 0, cnt = 0;
	unsigned char want[64], got[64];
	char *anon;
	void *a[64];
	int e, pfd;
	size_t i, n;

	/* before any mmap: nothing to arm */
	plain = memcoop_open(WT_FEATURES);
	if (plain == NULL)
		err(1, "memcoop_open");
	pfd = memcoop_fd(plain);
	e = arm1(pfd, 0x10000, 4096);
	CHECK(e == EINVAL, "arm before mmap: %s", strerror(e));
	memcoop_close(plain);

	/* without the WTRACK feature the ioctls are refused */
	plain = memcoop_open(MEMCOOP_FEATURE_VRANGE);
	if (plain == NULL)
		err(1, "memcoop_open");
	e = harvest_raw(memcoop_fd(plain), a, 1, 0, 0, NULL);
	CHECK(e == EINVAL, "harvest without WTRACK: %s", strerror(e));
	memcoop_close(plain);

	tsetup(&t, 64);
	tsetup(&other, 16);
	b = (uintptr_t)t.base;
	len = 64 * ps;

	CHECK((e = arm_raw(t.fd, NULL, 0, 0, 0, NULL)) == EINVAL, "count 0: %s", strerror(e));
	many = calloc(MEMCOOP_WT_MAX_RANGES + 1, sizeof(*many));
	for (i = 0; i <= MEMCOOP_WT_MAX_RANGES; i++) {
		many[i].start = b;
		many[i].len = ps;
	}
	e = arm_raw(t.fd, many, MEMCOOP_WT_MAX_RANGES + 1, 0, 0, NULL);
	CHECK(e == E2BIG, "count MAX+1: %s", strerror(e));
	e = arm_raw(t.fd, many, UINT32_MAX, 0, 0, NULL);
	CHECK(e == E2BIG, "count 2^32-1: %s", strerror(e));
	/* the largest list allowed, every range the same page: counts once */
	e = arm_raw(t.fd, many, MEMCOOP_WT_MAX_RANGES, 0, 0, &armed);
	CHECK(e == 0 && armed == 1, "MAX ranges of one page: %s, armed %llu",
	    strerror(e), (unsigned long long)armed);
	free(many);

	CHECK((e = arm1(t.fd, b + 1, ps)) == EINVAL, "unaligned start: %s", strerror(e));
	CHECK((e = arm1(t.fd, b, ps + 8)) == EINVAL, "unaligned len: %s", strerror(e));
	CHECK((e = arm1(t.fd, b, 0)) == EINVAL, "len 0: %s", strerror(e));
	CHECK((e = arm1(t.fd, b - ps, ps)) == EINVAL, "page before: %s", strerror(e));
	CHECK((e = arm1(t.fd, b + len, ps)) == EINVAL, "page after: %s", strerror(e));
	CHECK((e = arm1(t.fd, b + len - ps, 2 * ps)) == EINVAL, "straddling end: %s",
	    strerror(e));
	CHECK((e = arm1(t.fd, b, 1ULL << 62)) == EINVAL, "huge len: %s", strerror(e));
	CHECK((e = arm1(t.fd, b, (0 - b) & ~(uint64_t)(ps - 1))) == EINVAL,
	    "wrapping len: %s", strerror(e));
	CHECK((e = arm1(t.fd, UINT64_MAX & ~(uint64_t)(ps - 1), ps)) == EINVAL,
	    "kernel address: %s", strerror(e));
	anon = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK((e = arm1(t.fd, (uintptr_t)anon, ps)) == EINVAL, "anonymous memory: %s",
	    strerror(e));
	CHECK((e = arm1(t.fd, (uintptr_t)other.base, ps)) == EINVAL,
	    "another fd's mapping: %s", strerror(e));
	{
		struct memcoop_wt_range r = { .start = b, .len = ps };

		e = arm_raw(t.fd, &r, 1, 1U << 7, 0, NULL);
		CHECK(e == EINVAL, "unknown flag: %s", strerror(e));
		e = arm_raw(t.fd, &r, 1, 0, 1, NULL);
		CHECK(e == EINVAL, "reserved set: %s", strerror(e));
	}
	CHECK((e = arm_raw(t.fd, NULL, 1, 0, 0, NULL)) == EFAULT, "NULL list: %s",
	    strerror(e));
	CHECK((e = arm_raw(t.fd, (void *)8, 2, 0, 0, NULL)) == EFAULT, "bad list: %s",
	    strerror(e));

	/* a refused list leaves nothing armed: good range + bad range */
	memcoop_wt_disarm(t.mc, &(struct memcoop_wt_range){ b, len }, 1, NULL);
	CHECK(arm1(t.fd, b + 63 * ps, ps) == 0, "arm page 63");
	mixed[0].start = b;
	mixed[0].len = 8 * ps;
	mixed[1].start = b + len;
	mixed[1].len = ps;
	e = arm_raw(t.fd, mixed, 2, 0, 0, NULL);
	CHECK(e == EINVAL, "good+bad list: %s", strerror(e));
	memset(want, 0, sizeof(want));
	memset(got, 0, sizeof(got));
	for (i = 0; i < 8; i++)
		wr(&t, i, 1);
	wr(&t, 63, 1);
	want[63] = 1;
	harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	expect_set(&t, want, got, "after a refused list");

	/* duplicates and overlaps count once */
	dup[0] = (struct memcoop_wt_range){ b, 4 * ps };
	dup[1] = (struct memcoop_wt_range){ b + 2 * ps, 4 * ps };
	dup[2] = (struct memcoop_wt_range){ b, ps };
	e = arm_raw(t.fd, dup, 3, 0, 0, &armed);
	CHECK(e == 0 && armed == 6, "overlapping list: %s, armed %llu", strerror(e),
	    (unsigned long long)armed);
	memset(want, 0, sizeof(want));
	memset(got, 0, sizeof(got));
	for (i = 0; i < 64; i++)
		wr(&t, i, 2);
	for (i = 0; i < 6; i++)
		want[i] = 1;
	want[63] = 1;
	harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	expect_set(&t, want, got, "after the overlapping list");

	/* bad harvests */
	wr(&t, 3, 3);
	CHECK((e = harvest_raw(t.fd, a, 0, 0, 0, NULL)) == EINVAL, "max 0: %s", strerror(e));
	CHECK((e = harvest_raw(t.fd, a, 64, 1U << 9, 0, NULL)) == EINVAL, "unknown flag: %s",
	    strerror(e));
	CHECK((e = harvest_raw(t.fd, a, 64, 0, 1, NULL)) == EINVAL, "reserved: %s",
	    strerror(e));
	CHECK((e = harvest_raw(t.fd, NULL, 64, MEMCOOP_WT_REARM, 0, NULL)) == EFAULT,
	    "NULL addrs: %s", strerror(e));
	/* the log survived the failed copy */
	e = harvest_raw(t.fd, a, 64, MEMCOOP_WT_REARM, 0, &cnt);
	CHECK(e == 0 && cnt == 1 && a[0] == pg(&t, 3),
	    "after EFAULT: %s, %llu pages", strerror(e), (unsigned long long)cnt);
	/* a huge max is fine: it is a capacity, not a size to allocate */
	wr(&t, 4, 3);
	e = harvest_raw(t.fd, a, UINT64_MAX / 16, MEMCOOP_WT_REARM, 0, &cnt);
	CHECK(e == 0 && cnt == 1, "huge max: %s, %llu", strerror(e),
	    (unsigned long long)cnt);
	n = harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	CHECK(n == 0, "log not empty: %zu", n);

	munmap(anon, ps);
	tteardown(&other);
	tteardown(&t);
}

/* ---- fork: child and parent share one log ---- */

static void
test_fork(void)
{
	struct tctx t;
	unsigned char want[64], got[64];
	pid_t pid;
	size_t i;
	int status;

	tsetup(&t, 64);
	CHECK(memcoop_wt_arm_range(t.mc, t.base, 64 * ps) == 0, "arm: %s", strerror(errno));
	for (i = 0; i < 64; i++)		/* fault every page in first */
		(void)*(volatile char *)pg(&t, i);

	memset(want, 0, sizeof(want));
	for (i = 0; i < 64; i += 3)
		want[i] = 1;
	pid = fork();
	if (pid == -1)
		err(1, "fork");
	if (pid == 0) {
		for (i = 0; i < 64; i++)
			if (want[i])
				wr(&t, i, 1);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child writer failed");
	memset(got, 0, sizeof(got));
	harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	expect_set(&t, want, got, "parent harvests the child's writes");

	/* the parent writes, a child harvests through its own (same) mapping */
	memset(want, 0, sizeof(want));
	for (i = 1; i < 64; i += 5) {
		want[i] = 1;
		wr(&t, i, 2);
	}
	pid = fork();
	if (pid == -1)
		err(1, "fork");
	if (pid == 0) {
		memset(got, 0, sizeof(got));
		harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
		expect_set(&t, want, got, "child harvests the parent's writes");
		_exit(failures ? 1 : 0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child harvester failed");
	memset(got, 0, sizeof(got));
	CHECK(harvest_into(&t, MEMCOOP_WT_REARM, 64, got) == 0,
	    "the child's harvest did not empty the shared log");
	/* the child's re-arm holds for the parent too */
	wr(&t, 1, 3);
	memset(want, 0, sizeof(want));
	want[1] = 1;
	harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	expect_set(&t, want, got, "re-armed by the child");
	tteardown(&t);
}

/* ---- munmap and close ---- */

static void
test_unmap(void)
{
	struct tctx t;
	size_t remaining = 0;
	void *a[8];
	ssize_t n;
	char *again;

	tsetup(&t, 32);
	CHECK(memcoop_wt_arm_range(t.mc, t.base, 32 * ps) == 0, "arm: %s", strerror(errno));
	wr(&t, 1, 1);
	wr(&t, 2, 1);
	munmap(t.base, 32 * ps);
	/* the caller maps none of the logged pages: nothing to report, nothing lost */
	n = memcoop_wt_harvest(t.mc, a, 8, MEMCOOP_WT_REARM, &remaining);
	CHECK(n == 0 && remaining == 2, "after munmap: %zd pages, %zu remaining", n,
	    remaining);
	/* arming an unmapped range is refused */
	CHECK(memcoop_wt_arm_range(t.mc, t.base, ps) == -1 && errno == EINVAL,
	    "arm after munmap");
	/* mapped again (same offset, another address): the writes are still there */
	again = mmap(NULL, 32 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, t.fd, 0);
	if (again == MAP_FAILED)
		err(1, "mmap again");
	n = memcoop_wt_harvest(t.mc, a, 8, MEMCOOP_WT_REARM, &remaining);
	CHECK(n == 2 && remaining == 0, "mapped again: %zd pages, %zu remaining", n,
	    remaining);
	CHECK(n == 2 && ((a[0] == again + ps && a[1] == again + 2 * ps) ||
	    (a[1] == again + ps && a[0] == again + 2 * ps)),
	    "mapped again: wrong addresses %p %p (mapping at %p)", a[0], a[1], again);
	munmap(again, 32 * ps);
	memcoop_close(t.mc);
}

/*
 * ---- a mapping outlives its fd with tracking armed, then rmmod ----
 * The mapping keeps the memory object and the module; writes to armed
 * pages keep working after close, in the process and in a forked child;
 * the module cannot go while the mapping exists and goes cleanly after.
 */
static void
test_outlive(void)
{
	struct tctx t;
	pid_t pid;
	size_t i;
	int st;

	tsetup(&t, 64);
	CHECK(memcoop_wt_arm_range(t.mc, t.base, 64 * ps) == 0, "arm: %s", strerror(errno));
	for (i = 0; i < 64; i += 2)
		wr(&t, i, 1);
	memcoop_close(t.mc);		/* logged and armed pages, no fd */
	for (i = 0; i < 64; i++)
		wr(&t, i, 2);
	pid = fork();
	if (pid == -1)
		err(1, "fork");
	if (pid == 0) {
		for (i = 0; i < 64; i++)
			wr(&t, i, 3);
		_exit(pg(&t, 63)[(3 * 97) % ps] == 3 ? 0 : 1);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child writing after close");
	for (i = 0; i < 64; i++)
		CHECK(pg(&t, i)[(3 * 97) % ps] == 3, "page %zu lost the child's write", i);
	fflush(stdout);
	CHECK(system("rmmod memcoop 2>/dev/null") != 0,
	    "rmmod succeeded while a mapping was alive");
	munmap(t.base, 64 * ps);
	CHECK(system("rmmod memcoop") == 0, "rmmod after the last mapping went");
	CHECK(access("/dev/memcoop", F_OK) != 0, "/dev/memcoop still there after rmmod");
}

/* ---- volatile ranges: a purged page is neither dirty nor tracked ---- */

static int
vrange(struct tctx *t, size_t first, size_t n, uint64_t mode, uint64_t *purged)
{
	struct memcoop_vrange v;

	memset(&v, 0, sizeof(v));
	v.start = (uintptr_t)pg(t, first);
	v.len = n * ps;
	v.mode = mode;
	if (ioctl(t->fd, MEMCOOP_IOC_VRANGE, &v) == -1)
		return -1;
	if (purged != NULL)
		*purged = v.purged;
	return 0;
}

static void
test_vrange(void)
{
	struct tctx t;
	unsigned char want[64], got[64];
	uint64_t purged = 0;
	size_t i;
	int fd;

	tsetup(&t, 64);
	CHECK(memcoop_wt_arm_range(t.mc, t.base, 64 * ps) == 0, "arm: %s", strerror(errno));
	for (i = 0; i < 16; i++)
		wr(&t, i, 1);
	CHECK(vrange(&t, 0, 8, MEMCOOP_VRANGE_VOLATILE, NULL) == 0,
	    "volatile: %s", strerror(errno));
	/* the balloon's purge path, synchronously (debugfs, root) */
	fd = open("/sys/kernel/debug/memcoop/vrange_purge", O_WRONLY);
	CHECK(fd != -1, "debugfs memcoop/vrange_purge: %s", strerror(errno));
	CHECK(fd == -1 || write(fd, "1048576\n", 8) == 8, "vrange_purge: %s",
	    strerror(errno));
	if (fd != -1)
		close(fd);
	CHECK(vrange(&t, 0, 8, MEMCOOP_VRANGE_NONVOLATILE, &purged) == 0,
	    "non-volatile: %s", strerror(errno));
	CHECK(purged == 1, "the volatile range was not purged");
	/* pages 0-7 were purged: out of the log; 8-15 stay */
	memset(want, 0, sizeof(want));
	memset(got, 0, sizeof(got));
	for (i = 8; i < 16; i++)
		want[i] = 1;
	harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	expect_set(&t, want, got, "after purge");
	/* and out of the tracked set: fresh pages are not logged */
	for (i = 0; i < 8; i++)
		wr(&t, i, 2);
	wr(&t, 20, 2);
	memset(want, 0, sizeof(want));
	memset(got, 0, sizeof(got));
	want[20] = 1;
	harvest_into(&t, MEMCOOP_WT_REARM, 64, got);
	expect_set(&t, want, got, "purged pages untracked");
	tteardown(&t);
}

/* ---- memory cgroups and an unprivileged user ---- */

#define CG_ROOT		"/sys/fs/cgroup"
#define CG_NAME		"mct-wtrack"

static void
write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY);

	if (fd == -1 || write(fd, v, strlen(v)) != (ssize_t)strlen(v))
		err(1, "write %s", path);
	close(fd);
}

/* A fresh memory cgroup CG_NAME (no limit). */
static void
cg_make(void)
{
	if (access(CG_ROOT "/cgroup.controllers", F_OK) != 0) {
		mkdir(CG_ROOT, 0755);
		if (system("mount -t cgroup2 none " CG_ROOT) != 0)
			errx(1, "cannot mount cgroup2");
	}
	write_str(CG_ROOT "/cgroup.subtree_control", "+memory");
	if (mkdir(CG_ROOT "/" CG_NAME, 0755) == -1 && errno != EEXIST)
		err(1, "mkdir " CG_ROOT "/" CG_NAME);
}

/* The calling process joins CG_NAME. */
static void
cg_enter(void)
{
	write_str(CG_ROOT "/" CG_NAME "/cgroup.procs", "0");
}

/* CG_NAME's memory.@file (the value of @key, or the first number), bytes. */
static long
cg_value(const char *file, const char *key)
{
	char path[256], line[256];
	size_t klen = key ? strlen(key) : 0;
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), CG_ROOT "/" CG_NAME "/memory.%s", file);
	if ((f = fopen(path, "r")) == NULL)
		err(1, "%s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (key == NULL)
			v = strtol(line, NULL, 10);
		else if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			v = strtol(line + klen + 1, NULL, 10);
		else
			continue;
		break;
	}
	fclose(f);
	if (v < 0)
		errx(1, "no %s in %s", key ? key : "value", path);
	return v;
}

/* Run @fn in a child that joins CG_NAME as nobody; fails the test if it fails. */
static void
as_nobody(void (*fn)(void), const char *what)
{
	pid_t pid;
	int st;

	cg_make();
	fflush(stdout);
	pid = fork();
	if (pid == -1)
		err(1, "fork");
	if (pid == 0) {
		cg_enter();
		if (setgid(65534) == -1 || setuid(65534) == -1)
			err(1, "setuid nobody");
		fn();
		_exit(failures ? 1 : 0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "%s as nobody failed (status %#x)", what, st);
}

static void
drop_caches(void)
{
	int fd;

	if ((fd = open("/proc/sys/vm/drop_caches", O_WRONLY)) != -1) {
		(void)!write(fd, "3\n", 2);
		close(fd);
	}
	usleep(200000);		/* let RCU-deferred frees run */
}

/* ---- no leaks: many open/map/arm/write/harvest/close cycles ---- */

#define LEAK_CYCLES	500

static void
test_leak(void)
{
	struct tctx t;
	long slab0 = 0, slab1, vm0 = 0, vm1, cgs0 = 0, cgs1, cgc0 = 0, cgc1;
	unsigned char *got;
	size_t i, k, pages = 16384;	/* 64 MiB */

	/* in a group of its own, whose slab counter sees only this process */
	cg_make();
	cg_enter();
	got = calloc(pages, 1);
	for (k = 0; k < LEAK_CYCLES + 20; k++) {
		if (k == 20) {		/* warm caches first, then measure */
			drop_caches();
			slab0 = meminfo_kib("SUnreclaim:");
			vm0 = meminfo_kib("VmallocUsed:");
			cgs0 = cg_value("stat", "slab_unreclaimable");
			cgc0 = cg_value("current", NULL);
		}
		tsetup(&t, pages);
		CHECK(memcoop_wt_arm_range(t.mc, t.base, pages * ps) == 0, "arm: %s",
		    strerror(errno));
		for (i = 0; i < pages; i += 163)
			wr(&t, i, 1);
		memset(got, 0, pages);
		CHECK(harvest_into(&t, k & 1 ? MEMCOOP_WT_REARM : 0, 64, got) ==
		    (pages + 162) / 163, "harvest count");
		wr(&t, 0, 2);
		tteardown(&t);
		if (failures)
			break;
	}
	drop_caches();
	slab1 = meminfo_kib("SUnreclaim:");
	vm1 = meminfo_kib("VmallocUsed:");
	cgs1 = cg_value("stat", "slab_unreclaimable");
	cgc1 = cg_value("current", NULL);
	printf("leak: %d cycles: SUnreclaim %+ld KiB, VmallocUsed %+ld KiB, "
	    "group slab %+ld KiB, group memory %+ld KiB\n", LEAK_CYCLES,
	    slab1 - slab0, vm1 - vm0, (cgs1 - cgs0) / 1024, (cgc1 - cgc0) / 1024);
	/*
	 * One 2 KiB object leaked per cycle is 1000 KiB: the group's slab
	 * counter (this process's accounted allocations only) must stay
	 * within a quarter of that, the machine's within half (other tasks
	 * allocate too), vmalloc (which write tracking no longer uses) within
	 * a quarter.  The group's memory counter moves in per-CPU batches of
	 * up to 256 KiB (two CPUs here): 1.5 MiB still catches one page
	 * leaked per cycle (2 MiB), and any leaked memory object (101 pages).
	 */
	CHECK(cgs1 - cgs0 < 256 * 1024, "group slab grew by %ld KiB", (cgs1 - cgs0) / 1024);
	CHECK(slab1 - slab0 < 512, "SUnreclaim grew by %ld KiB", slab1 - slab0);
	CHECK(vm1 - vm0 < 256, "VmallocUsed grew by %ld KiB", vm1 - vm0);
	CHECK(cgc1 - cgc0 < 1536 * 1024, "group memory grew by %ld KiB", (cgc1 - cgc0) / 1024);
	free(got);
}

/*
 * ---- a sparse heap: one page at the end of the 1 TiB object ----
 * Tracking costs memory for the pages tracked, not for their offsets,
 * and it is charged to the caller's memory cgroup; arming beyond the
 * per-file limit (wt_max_kib) fails with ENOSPC and changes nothing.
 */
#define TIB		(1ULL << 40)

static void
sparse_body(void)
{
	struct memcoop *mc;
	struct memcoop_wt_range r;
	long vm0, vm1, cur0, cur1, peak;
	size_t remaining = 1;
	void *a[4];
	char *p, *all;
	ssize_t n;
	int i;

	if ((mc = memcoop_open(WT_FEATURES)) == NULL)
		err(1, "memcoop_open");
	ps = memcoop_page_size(mc);
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, memcoop_fd(mc),
	    (off_t)(TIB - ps));
	if (p == MAP_FAILED)
		err(1, "mmap at 1 TiB - 4 KiB");
	p[0] = 1;			/* fault it in: charged before we measure */
	vm0 = meminfo_kib("VmallocUsed:");
	cur0 = cg_value("current", NULL);
	r.start = (uintptr_t)p;
	r.len = ps;
	for (i = 0; i < 4; i++) {	/* arm and disarm: nothing temporary either */
		CHECK(memcoop_wt_arm(mc, &r, 1, NULL) == 0, "arm: %s", strerror(errno));
		CHECK(memcoop_wt_disarm(mc, &r, 1, NULL) == 0, "disarm: %s", strerror(errno));
	}
	CHECK(memcoop_wt_arm(mc, &r, 1, NULL) == 0, "arm: %s", strerror(errno));
	vm1 = meminfo_kib("VmallocUsed:");
	cur1 = cg_value("current", NULL);
	peak = cg_value("peak", NULL);
	printf("sparse: one page at 1 TiB - 4 KiB armed: VmallocUsed %+ld KiB, "
	    "group %+ld KiB, group peak %+ld KiB\n", vm1 - vm0, (cur1 - cur0) / 1024,
	    (peak - cur0) / 1024);
	CHECK(vm1 - vm0 < 1024, "VmallocUsed grew by %ld KiB", vm1 - vm0);
	CHECK(cur1 - cur0 < (1 << 20), "the group grew by %ld KiB", (cur1 - cur0) / 1024);
	CHECK(peak - cur0 < (1 << 20), "the group peaked %ld KiB higher", (peak - cur0) / 1024);

	/* unprivileged tracking works: the write is logged, once */
	p[8] = 2;
	n = memcoop_wt_harvest(mc, a, 4, MEMCOOP_WT_REARM, &remaining);
	CHECK(n == 1 && a[0] == p && remaining == 0, "harvest: %zd pages, %zu remaining",
	    n, remaining);
	p[16] = 3;
	n = memcoop_wt_harvest(mc, a, 4, 0, &remaining);
	CHECK(n == 1 && a[0] == p, "re-armed page: %zd pages", n);

	/* the whole object is far beyond the limit: ENOSPC, nothing changes */
	all = mmap(NULL, TIB, PROT_READ | PROT_WRITE, MAP_SHARED, memcoop_fd(mc), 0);
	if (all == MAP_FAILED)
		err(1, "mmap 1 TiB");
	cur0 = cg_value("current", NULL);
	CHECK(memcoop_wt_arm_range(mc, all, TIB) == -1 && errno == ENOSPC,
	    "arming 1 TiB: %s", strerror(errno));
	cur1 = cg_value("current", NULL);
	CHECK(cur1 - cur0 < (1 << 20), "a refused arm cost %ld KiB", (cur1 - cur0) / 1024);
	all[5 * ps] = 1;
	n = memcoop_wt_harvest(mc, a, 4, 0, &remaining);
	CHECK(n == 0 && remaining == 0, "refused arm tracked something: %zd pages", n);
	/* within the limit it works, next to the far page */
	CHECK(memcoop_wt_arm_range(mc, all, 8192 * ps) == 0, "arm 8192 pages: %s",
	    strerror(errno));
	all[5 * ps] = 2;
	all[8191 * ps] = 2;
	n = memcoop_wt_harvest(mc, a, 4, 0, &remaining);
	CHECK(n == 2 && remaining == 0, "8192 pages: %zd harvested, %zu remaining", n,
	    remaining);
	munmap(all, TIB);
	munmap(p, ps);
	memcoop_close(mc);
}

static void
test_sparse(void)
{
	as_nobody(sparse_body, "sparse");
}

/*
 * ---- more mappings than a harvest ever had room for ----
 * 100 mappings of one fd, and one more split into 256 by mprotect(), with
 * writes in each, harvested a few pages per call: every written page is
 * reported once, and `remaining` says when to call again.
 */
#define MV_SMALL	100
#define MV_SPLIT	256

struct mv_map {
	char *addr;
	size_t pages;
	size_t first;		/* index of its first page in want[]/got[] */
};

static size_t
mv_index(const struct mv_map *m, size_t nm, void *addr)
{
	size_t i;

	for (i = 0; i < nm; i++)
		if ((char *)addr >= m[i].addr && (char *)addr < m[i].addr + m[i].pages * ps &&
		    ((uintptr_t)addr % ps) == 0)
			return m[i].first + (size_t)((char *)addr - m[i].addr) / ps;
	return SIZE_MAX;
}

static size_t
mv_count_maps(void)
{
	char line[512];
	size_t n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (f == NULL)
		err(1, "/proc/self/maps");
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "memcoop") != NULL)
			n++;
	fclose(f);
	return n;
}

/* Harvest @max at a time until the log is empty; check against @want. */
static void
mv_harvest(struct memcoop *mc, const struct mv_map *m, size_t nm, const unsigned char *want,
    size_t total, size_t max, unsigned int flags, const char *what)
{
	unsigned char *got = calloc(total, 1);
	void **a = calloc(max, sizeof(*a));
	size_t remaining = 0, i, k, calls = 0, reported = 0, bad = 0, expect = 0;
	ssize_t n;

	for (i = 0; i < total; i++)
		expect += want[i];
	do {
		n = memcoop_wt_harvest(mc, a, max, flags, &remaining);
		if (n == -1) {
			CHECK(0, "%s: harvest: %s", what, strerror(errno));
			break;
		}
		calls++;
		for (i = 0; i < (size_t)n; i++) {
			k = mv_index(m, nm, a[i]);
			if (k == SIZE_MAX) {
				CHECK(0, "%s: %p is no page of the mappings", what, a[i]);
				continue;
			}
			got[k]++;
		}
		reported += (size_t)n;
		CHECK((size_t)n == max || remaining == 0,
		    "%s: %zd of %zu reported with %zu remaining", what, n, max, remaining);
		CHECK(reported + remaining == expect, "%s: %zu reported + %zu remaining != %zu written",
		    what, reported, remaining, expect);
	} while (n > 0 && remaining > 0);
	for (i = 0; i < total; i++) {
		if (got[i] != want[i] && bad++ < 5)
			CHECK(0, "%s: page %zu written %d, reported %d times", what, i,
			    want[i], got[i]);
	}
	CHECK(bad == 0, "%s: %zu pages wrong", what, bad);
	CHECK(calls >= expect / max, "%s: %zu calls for %zu pages", what, calls, expect);
	printf("%s: %zu pages in %zu harvests of at most %zu\n", what, reported, calls, max);
	free(got);
	free(a);
}

static void
manyvmas_body(void)
{
	struct mv_map m[MV_SMALL + 1];
	struct memcoop_wt_range r[MV_SMALL + 1];
	struct memcoop *mc;
	unsigned char *want;
	size_t i, total = 0, nmaps;
	char *split;
	int round;

	if ((mc = memcoop_open(WT_FEATURES)) == NULL)
		err(1, "memcoop_open");
	ps = memcoop_page_size(mc);
	for (i = 0; i < MV_SMALL; i++) {
		/* 3 pages at offsets 8 pages apart: no two mappings merge */
		m[i].pages = 3;
		m[i].addr = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_SHARED,
		    memcoop_fd(mc), (off_t)(i * 8 * ps));
		if (m[i].addr == MAP_FAILED)
			err(1, "mmap %zu", i);
		m[i].first = total;
		total += 3;
	}
	split = mmap(NULL, MV_SPLIT * ps, PROT_READ | PROT_WRITE, MAP_SHARED, memcoop_fd(mc),
	    (off_t)(4096 * ps));
	if (split == MAP_FAILED)
		err(1, "mmap split");
	m[MV_SMALL].addr = split;
	m[MV_SMALL].pages = MV_SPLIT;
	m[MV_SMALL].first = total;
	total += MV_SPLIT;
	for (i = 0; i <= MV_SMALL; i++) {
		r[i].start = (uintptr_t)m[i].addr;
		r[i].len = m[i].pages * ps;
	}
	CHECK(memcoop_wt_arm(mc, r, MV_SMALL + 1, NULL) == 0, "arm: %s", strerror(errno));
	/* split after arming: every odd page read-only, a mapping each */
	for (i = 1; i < MV_SPLIT; i += 2)
		if (mprotect(split + i * ps, ps, PROT_READ) == -1)
			err(1, "mprotect");
	nmaps = mv_count_maps();
	CHECK(nmaps >= MV_SMALL + MV_SPLIT, "only %zu mappings", nmaps);

	want = calloc(total, 1);
	for (round = 0; round < 2; round++) {
		memset(want, 0, total);
		for (i = 0; i < MV_SMALL; i++) {
			m[i].addr[ps + round] = 1;
			want[m[i].first + 1] = 1;
			if ((i + round) % 2 == 0) {
				m[i].addr[round] = 1;
				want[m[i].first] = 1;
			}
		}
		for (i = 0; i < MV_SPLIT; i += 2) {	/* odd pages are read-only */
			if (round && i % 4)
				continue;
			split[i * ps] = 1;
			want[m[MV_SMALL].first + i] = 1;
		}
		mv_harvest(mc, m, MV_SMALL + 1, want, total, round ? 5 : 7,
		    MEMCOOP_WT_REARM, round ? "manyvmas round 2" : "manyvmas round 1");
	}
	/* without re-arm: reported once more, then silent */
	memset(want, 0, total);
	for (i = 0; i < MV_SMALL; i++) {
		m[i].addr[2 * ps] = 3;
		want[m[i].first + 2] = 1;
	}
	mv_harvest(mc, m, MV_SMALL + 1, want, total, 64, 0, "manyvmas no re-arm");
	for (i = 0; i < MV_SMALL; i++)
		m[i].addr[2 * ps] = 4;
	memset(want, 0, total);
	mv_harvest(mc, m, MV_SMALL + 1, want, total, 64, 0, "manyvmas disarmed");
	printf("manyvmas: %zu mappings of the fd\n", nmaps);
	free(want);
	memcoop_close(mc);
}

static void
test_manyvmas(void)
{
	as_nobody(manyvmas_body, "manyvmas");
}

int
main(int argc, char *argv[])
{
	const char *what = argc > 1 ? argv[1] : "";
	setvbuf(stdout, NULL, _IOLBF, 0);
	no_signals();
	if (strcmp(what, "basic") == 0)
		test_basic();
	else if (strcmp(what, "concurrent") == 0)
		test_concurrent();
	else if (strcmp(what, "hotpages") == 0) {
		CW_PAGES = 12;
		cw_faults = true;
		test_concurrent();
	}
	else if (strcmp(what, "badlists") == 0)
		test_badlists();
	else if (strcmp(what, "fork") == 0)
		test_fork();
	else if (strcmp(what, "unmap") == 0)
		test_unmap();
	else if (strcmp(what, "outlive") == 0)
		test_outlive();
	else if (strcmp(what, "vrange") == 0)
		test_vrange();
	else if (strcmp(what, "leak") == 0)
		test_leak();
	else if (strcmp(what, "sparse") == 0)
		test_sparse();
	else if (strcmp(what, "manyvmas") == 0)
		test_manyvmas();
	else {
		fprintf(stderr, "usage: mct-wtrack basic|concurrent|hotpages|badlists|fork|unmap|"
		    "outlive|vrange|leak|sparse|manyvmas\n");
		return 2;
	}
	if (failures) {
		printf("mct-wtrack %s: %d failures\n", what, failures);
		return 1;
	}
	printf("mct-wtrack %s: PASS\n", what);
	return 0;
}
