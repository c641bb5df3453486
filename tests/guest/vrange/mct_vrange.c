/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mct-vrange: in-guest tests of volatile ranges and residence
 * (memcoop.ko vrange.c, libmemcoop arena.c/alloc.c).
 *
 *   mct-vrange semantics   zero fill, residence, volatile/non-volatile,
 *                          LRU purge order, SIGBUS, zeros after purge
 *   mct-vrange badargs     bad ranges and calls, mapping operations
 *   mct-vrange fork        sharing across fork, exit with volatile ranges
 *   mct-vrange events      PURGE_SOON (and rescue in the grace), PURGED,
 *                          REFAULT, shrinker and counters
 *   mct-vrange threads S   threads cycling volatile/non-volatile with data
 *                          checks while purges run, for S seconds
 *   mct-vrange alloc       the libmemcoop allocator over volatile ranges
 *   mct-vrange memcg       pages charged to an unprivileged caller's memory
 *                          cgroup; its limit holds
 *   mct-vrange pressure    guest reclaim / OOM purge volatile memory so that
 *                          another process gets memory without an OOM kill
 *   mct-vrange fuzz S SEED [P [T]]  P unprivileged processes x T threads of
 *                          random calls, mappings, forks and closes against
 *                          balloon, shrinker and OOM purges; errnos checked
 *   mct-vrange oomempty [TIB]  a root hog's OOM kill beside TIB empty 1 TiB
 *                          volatile ranges: within 2x of the time without
 *   mct-vrange manyranges [N]  N single-page ranges by nobody: ENOSPC at
 *                          max_ranges, quick purge and teardown
 *   mct-vrange rescueloop  a rescue-and-remark PURGE_SOON subscriber cannot
 *                          hold the balloon's purge past its deadline
 *   mct-vrange thp         no huge page fills a purged hole
 *   mct-vrange oomorder    OOM beside volatile memory: the purge runs first,
 *                          no CRITICAL request reaches a relay client, no kill
 *   mct-vrange race S      like threads, but announces READY for a host
 *                          script that flaps the balloon meanwhile
 *
 * Purges are forced through debugfs memcoop/vrange_purge (the balloon's
 * purge path) and /proc/sys/vm/drop_caches (the shrinker).  Each
 * subcommand ends with a leak check: no memory object left, no volatile or
 * purged pages accounted.  Exit 0 on success, 1 on failure.
 */
#ifndef _GNU_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#endif
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <limits.h>
#include <libmemcoop.h>

#include "kvstat.h"
#include "meminfo.h"
#include "modparam.h"

#define PG		4096UL
#define DBG		"/sys/kernel/debug/memcoop/"
#define GRACE_PARAM	"/sys/module/memcoop/parameters/grace_ms"

static const char *cur_test = "?";

#define FAIL(...) do {							\
	fprintf(stderr, "FAIL %s %s:%d: ", cur_test, __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__);					\
	fputc('\n', stderr);						\
	exit(1);							\
} while (0)
#define CHECK(c, ...) do {						\
	if (!(c)) {							\
		fprintf(stderr, "FAIL %s: %s\n", cur_test, #c);		\
		FAIL(__VA_ARGS__);					\
	}								\
} while (0)

/* ---- helpers ----------------------------------------------------------- */

/* debugfs memcoop/vrange counter @name, or @missing if there is none (-2: fail). */
static long
counter_or(const char *name, long missing)
{
	long v;

	if (kvstat_read(DBG "vrange", name, &v) == 0)
		return v;
	if (errno != ENOENT)
		FAIL("read %s: %s", DBG "vrange", strerror(errno));
	if (missing == -2)
		FAIL("no counter %s", name);
	return missing;
}

static long
counter(const char *name)
{
	return counter_or(name, -2);
}

static void
write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);

	if (fd == -1)
		FAIL("open %s: %s", path, strerror(errno));
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		FAIL("write %s to %s: %s", s, path, strerror(errno));
	close(fd);
}

/* The balloon's purge path for @pages pages (PURGE_SOON, grace, purge). */
static void
purge(unsigned long pages)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lu", pages);
	write_file(DBG "vrange_purge", buf);
}

static void
set_grace(unsigned int ms)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%u", ms);
	write_file(GRACE_PARAM, buf);
}

static int
open_fd(uint64_t features)
{
	struct memcoop_api api;
	int fd = open("/dev/memcoop", O_RDWR | O_CLOEXEC);

	if (fd == -1)
		FAIL("open /dev/memcoop: %s", strerror(errno));
	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;
	api.features = features;
	if (ioctl(fd, MEMCOOP_IOC_API, &api) == -1)
		FAIL("handshake: %s", strerror(errno));
	return fd;
}

static char *
map(int fd, size_t len, off_t off)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);

	if (p == MAP_FAILED)
		FAIL("mmap %zu at %lld: %s", len, (long long)off, strerror(errno));
	return p;
}

/* VRANGE ioctl; returns 0 or errno, *purged set for NONVOLATILE. */
static int
vr(int fd, void *start, size_t len, uint64_t mode, int *purged)
{
	struct memcoop_vrange v;

	memset(&v, 0, sizeof(v));
	v.start = (uintptr_t)start;
	v.len = len;
	v.mode = mode;
	v.purged = 77;
	if (ioctl(fd, MEMCOOP_IOC_VRANGE, &v) == -1)
		return errno;
	if (mode == MEMCOOP_VRANGE_NONVOLATILE && v.purged > 1)
		FAIL("purged answer %llu is not 0 or 1", (unsigned long long)v.purged);
	if (purged)
		*purged = (int)v.purged;
	return 0;
}

static void
vol(int fd, void *p, size_t len)
{
	int e = vr(fd, p, len, MEMCOOP_VRANGE_VOLATILE, NULL);

	if (e)
		FAIL("volatile %p+%zu: %s", p, len, strerror(e));
}

static int
nonvol(int fd, void *p, size_t len)
{
	int purged, e = vr(fd, p, len, MEMCOOP_VRANGE_NONVOLATILE, &purged);

	if (e)
		FAIL("nonvolatile %p+%zu: %s", p, len, strerror(e));
	return purged;
}

/* Residence of [p, p+len): resident count, bitmap into @bits. */
static long
resid(int fd, void *p, size_t len, uint8_t *bits, size_t bsize)
{
	struct memcoop_residence r;

	memset(&r, 0, sizeof(r));
	r.start = (uintptr_t)p;
	r.len = len;
	r.bitmap = (uintptr_t)bits;
	r.bitmap_size = bsize;
	if (ioctl(fd, MEMCOOP_IOC_RESIDENCE, &r) == -1)
		return -errno;
	return (long)r.resident;
}

/* SIGBUS-safe access: 0 if done, -1 if the page raised SIGBUS. */
static __thread sigjmp_buf bus_jmp;
static __thread volatile int bus_armed;

static void
on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)si; (void)uc;
	if (!bus_armed)
		abort();
	siglongjmp(bus_jmp, 1);
}

static void
catch_sigbus(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
}

/* The fuzzer also touches unmapped and read-only pages: SIGSEGV too. */
static void
catch_sigsegv(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
}

static int
try_read(const volatile char *p, char *out)
{
	if (sigsetjmp(bus_jmp, 1)) {
		bus_armed = 0;
		return -1;
	}
	bus_armed = 1;
	*out = *p;
	bus_armed = 0;
	return 0;
}

static int
try_write(volatile char *p, char v)
{
	if (sigsetjmp(bus_jmp, 1)) {
		bus_armed = 0;
		return -1;
	}
	bus_armed = 1;
	*p = v;
	bus_armed = 0;
	return 0;
}

static void
fill(char *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i += 64)
		p[i] = (char)(seed + i / 64 * 7 + 1);
}

static int
check_fill(const char *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i += 64)
		if (p[i] != (char)(seed + i / 64 * 7 + 1))
			return 0;
	return 1;
}

static int
all_zero(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

/* All objects gone, nothing volatile or purged accounted. */
static void
leak_check(void)
{
	int i;

	for (i = 0; i < 50 && counter("objects") != 0; i++)
		usleep(20000);	/* fput of the last mapping may be deferred */
	CHECK(counter("objects") == 0, "objects left: %ld", counter("objects"));
	CHECK(counter("volatile_pages") == 0, "volatile pages left: %ld",
	    counter("volatile_pages"));
	CHECK(counter("purged_pages_now") == 0, "purged pages left: %ld",
	    counter("purged_pages_now"));
}

/* ---- semantics --------------------------------------------------------- */

static void
t_semantics(void)
{
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE);
	size_t n = 52, len = n * PG;
	char *p = map(fd, len, 0), *a = p, *b = p + 18 * PG, *c = p + 36 * PG;
	uint8_t bits[8];
	long before, sig0;
	char x;
	size_t i;

	cur_test = "semantics";
	catch_sigbus();
	set_grace(0);
	memset(bits, 0xff, sizeof(bits));
	CHECK(resid(fd, p, len, bits, sizeof(bits)) == 0, "untouched pages resident");
	CHECK(bits[0] == 0 && bits[5] == 0, "bitmap not cleared");
	CHECK(all_zero(p, len), "fresh memory is not zero");
	/* reading faulted pages in: they are resident now */
	before = resid(fd, p, len, bits, sizeof(bits));
	CHECK(before == (long)n, "read pages resident: %ld of %zu", before, n);
	fill(p, len, 1);

	/* volatile, not purged: access works, data intact, purged = 0 */
	vol(fd, a, 16 * PG);
	sig0 = counter("sigbus");
	CHECK(try_read(a + 5 * PG, &x) == 0, "volatile page faulted");
	x = a[6 * PG];
	CHECK(try_write(a + 6 * PG, x) == 0, "write to volatile page faulted");
	CHECK(counter("volatile_pages") == 16, "volatile_pages %ld", counter("volatile_pages"));
	CHECK(nonvol(fd, a, 16 * PG) == 0, "purged without any purge");
	CHECK(check_fill(a, 16 * PG, 1), "data changed by volatile/non-volatile");
	CHECK(counter("volatile_pages") == 0, "volatile_pages %ld", counter("volatile_pages"));

	/* adjacent ranges marked separately merge: purged as one whole range */
	vol(fd, a, 8 * PG);
	vol(fd, a + 8 * PG, 8 * PG);
	vol(fd, b, 16 * PG);
	purge(1);
	CHECK(counter("purged_pages_now") == 16, "merged range not purged whole: %ld",
	    counter("purged_pages_now"));
	CHECK(nonvol(fd, a, 16 * PG) == 1 && all_zero(a, 16 * PG), "merged range");
	CHECK(nonvol(fd, b, 16 * PG) == 0 && check_fill(b, 16 * PG, 1 + 18 * 64 * 7),
	    "B purged with A");
	fill(a, 16 * PG, 1);

	/* LRU: A marked first, then B, then C; re-marking A moves it behind C */
	vol(fd, a, 16 * PG);
	vol(fd, b, 16 * PG);
	vol(fd, c, 16 * PG);
	CHECK(nonvol(fd, a, 16 * PG) == 0, "A purged early");
	vol(fd, a, 16 * PG);
	purge(1);		/* one whole range: the oldest, B */
	CHECK(counter("purged_pages_now") == 16, "purged_pages_now %ld",
	    counter("purged_pages_now"));
	memset(bits, 0, sizeof(bits));
	CHECK(resid(fd, p, len, bits, sizeof(bits)) == 36, "residence after purge");
	CHECK(bits[0] == 0xff && bits[1] == 0xff && bits[2] == 0x03 && bits[3] == 0 &&
	    bits[4] == 0xfc && bits[5] == 0xff && bits[6] == 0x0f,
	    "bitmap %02x %02x %02x %02x %02x %02x %02x",
	    bits[0], bits[1], bits[2], bits[3], bits[4], bits[5], bits[6]);
	/* purged and still volatile: SIGBUS on read and write, every page */
	for (i = 0; i < 16; i++)
		CHECK(try_read(b + i * PG, &x) == -1, "no SIGBUS reading purged page %zu", i);
	CHECK(try_write(b + 3 * PG, 1) == -1, "no SIGBUS writing a purged page");
	CHECK(counter("sigbus") == sig0 + 17, "sigbus counter %ld, expected %ld",
	    counter("sigbus"), sig0 + 17);
	/* the other ranges are untouched and readable without fault */
	CHECK(try_read(c, &x) == 0 && check_fill(c, 16 * PG, 1 + 36 * 64 * 7),
	    "C lost data");
	/* marking part of B non-volatile: that part reads zeros, the rest still SIGBUS */
	CHECK(nonvol(fd, b, 4 * PG) == 1, "B not reported purged");
	CHECK(all_zero(b, 4 * PG), "purged pages do not read as zeros");
	CHECK(try_read(b + 4 * PG, &x) == -1, "rest of B lost its purged state");
	CHECK(nonvol(fd, b + 4 * PG, 12 * PG) == 1, "rest of B not reported purged");
	CHECK(all_zero(b, 16 * PG), "B not zero");
	CHECK(nonvol(fd, b, 16 * PG) == 0, "B purged again without a purge");
	CHECK(nonvol(fd, c, 16 * PG) == 0, "C reported purged");
	CHECK(check_fill(c, 16 * PG, 1 + 36 * 64 * 7), "C data");
	CHECK(nonvol(fd, a, 16 * PG) == 0, "A reported purged");
	CHECK(check_fill(a, 16 * PG, 1), "A data");

	/* the shrinker purges everything volatile (drop_caches runs shrinkers) */
	before = counter("purges_reclaim");
	vol(fd, p, len);
	write_file("/proc/sys/vm/drop_caches", "2");
	CHECK(counter("purges_reclaim") > before, "shrinker did not purge");
	CHECK(counter("volatile_pages") == 0, "volatile pages left after the shrinker");
	CHECK(nonvol(fd, p, len) == 1, "shrinker purge not reported");
	CHECK(all_zero(p, len), "not zero after shrinker purge");

	munmap(p, len);
	close(fd);
	set_grace(5);
	leak_check();
	printf("semantics: ok\n");
}

/* ---- bad arguments and mapping operations ------------------------------ */

static void
expect_vr(int fd, void *p, size_t len, uint64_t mode, int err, const char *what)
{
	int e = vr(fd, p, len, mode, NULL);

	if (e != err)
		FAIL("%s: got %s, expected %s", what, strerror(e), strerror(err));
}

static void
t_badargs(void)
{
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE), fd2, fd3, e;
	struct memcoop_vrange v;
	uint8_t bits[64];
	char *p, *q, *r, *s, x;
	void *anon;

	cur_test = "badargs";
	catch_sigbus();
	/* before any mmap */
	anon = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	expect_vr(fd, anon, PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "before mmap");
	/* private mappings and mappings without the feature are refused */
	CHECK(mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED && errno == EINVAL,
	    "MAP_PRIVATE accepted");
	fd3 = open_fd(MEMCOOP_FEATURE_RELAY);
	CHECK(mmap(NULL, PG, PROT_READ, MAP_SHARED, fd3, 0) == MAP_FAILED && errno == EINVAL,
	    "mmap without VRANGE accepted");
	CHECK(mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 1ULL << 40) == MAP_FAILED &&
	    errno == EINVAL, "offset beyond the object accepted");
	memset(&v, 0, sizeof(v));
	CHECK(ioctl(fd3, MEMCOOP_IOC_VRANGE, &v) == -1 && errno == EINVAL,
	    "VRANGE without the feature");
	close(fd3);

	p = map(fd, 16 * PG, 0);
	fill(p, 16 * PG, 3);
	expect_vr(fd, p, 0, MEMCOOP_VRANGE_VOLATILE, EINVAL, "zero length");
	expect_vr(fd, p + 1, PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "unaligned start");
	expect_vr(fd, p, PG + 1, MEMCOOP_VRANGE_VOLATILE, EINVAL, "unaligned length");
	expect_vr(fd, p, 17 * PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "beyond the mapping");
	expect_vr(fd, p - PG, 2 * PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "before the mapping");
	expect_vr(fd, p, (size_t)0 - PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "wrapping");
	expect_vr(fd, (void *)-PG, 2 * PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "wrapping start");
	expect_vr(fd, anon, PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "anonymous memory");
	expect_vr(fd, p, PG, 0, EINVAL, "mode 0");
	expect_vr(fd, p, PG, 3, EINVAL, "mode 3");
	memset(&v, 0, sizeof(v));
	v.start = (uintptr_t)p; v.len = PG; v.mode = MEMCOOP_VRANGE_VOLATILE; v.reserved = 1;
	CHECK(ioctl(fd, MEMCOOP_IOC_VRANGE, &v) == -1 && errno == EINVAL, "reserved accepted");
	CHECK(ioctl(fd, MEMCOOP_IOC_VRANGE, (void *)8) == -1 && errno == EFAULT, "bad pointer");
	CHECK(counter("volatile_pages") == 0, "a refused call marked pages");

	/* another fd's mapping */
	fd2 = open_fd(MEMCOOP_FEATURE_VRANGE);
	q = map(fd2, 4 * PG, 0);
	expect_vr(fd, q, PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "another fd's mapping");
	expect_vr(fd2, p, PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "another fd's mapping (2)");
	CHECK(resid(fd, q, PG, bits, 1) == -EINVAL, "residence of another fd's mapping");
	CHECK(q[0] == 0, "second fd's memory not zero (shared with first?)");
	munmap(q, 4 * PG);
	close(fd2);

	/* residence arguments */
	CHECK(resid(fd, p, 16 * PG, bits, 1) == -EINVAL, "bitmap too small accepted");
	CHECK(resid(fd, p, 16 * PG, (uint8_t *)8, 2) == -EFAULT, "bad bitmap pointer");
	CHECK(resid(fd, p, 0, bits, 2) == -EINVAL, "residence zero length");
	CHECK(resid(fd, p, 16 * PG, bits, 2) == 16, "residence");

	/* overlapping marks merge; one non-volatile covers them all */
	vol(fd, p, 4 * PG);
	vol(fd, p + 2 * PG, 4 * PG);
	vol(fd, p + 6 * PG, 2 * PG);
	vol(fd, p, 8 * PG);
	CHECK(counter("volatile_pages") == 8, "overlapping marks counted %ld",
	    counter("volatile_pages"));
	CHECK(nonvol(fd, p + 3 * PG, PG) == 0, "hole punched reported purged");
	CHECK(counter("volatile_pages") == 7, "split range counted %ld",
	    counter("volatile_pages"));
	CHECK(nonvol(fd, p, 16 * PG) == 0, "nonvolatile");
	CHECK(counter("volatile_pages") == 0, "volatile left");
	/* non-volatile on a never-volatile range is fine */
	CHECK(nonvol(fd, p + 10 * PG, PG) == 0, "never volatile reported purged");

	/* mprotect splits the vma; a range across the split still works */
	CHECK(mprotect(p + 4 * PG, 4 * PG, PROT_READ) == 0, "mprotect");
	vol(fd, p + 2 * PG, 8 * PG);
	CHECK(nonvol(fd, p + 2 * PG, 8 * PG) == 0, "across mprotect split");
	CHECK(mprotect(p + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE) == 0, "mprotect back");
	/* mlock and madvise */
	CHECK(mlock(p, 4 * PG) == 0, "mlock: %s", strerror(errno));
	vol(fd, p, 4 * PG);
	CHECK(munlock(p, 4 * PG) == 0, "munlock");
	CHECK(nonvol(fd, p, 4 * PG) == 0, "mlocked range");
	CHECK(madvise(p, PG, MADV_DONTNEED) == 0, "MADV_DONTNEED");
	CHECK(check_fill(p, 16 * PG, 3), "MADV_DONTNEED on a shared mapping lost data");
	CHECK(madvise(p, PG, MADV_FREE) == -1 && errno == EINVAL, "MADV_FREE accepted");
	CHECK(madvise(p + 15 * PG, PG, MADV_REMOVE) == 0, "MADV_REMOVE: %s", strerror(errno));
	CHECK(all_zero(p + 15 * PG, PG), "MADV_REMOVE did not punch");
	fill(p + 15 * PG, PG, 3 + 15 * 64 * 7);

	/* mremap (of one vma): grow refused, move keeps the pages and the ranges */
	q = map(fd, 16 * PG, 64 * PG);
	fill(q, 16 * PG, 3);
	CHECK(mremap(q, 16 * PG, 32 * PG, 0) == MAP_FAILED, "mremap grow accepted");
	CHECK(mremap(q, 16 * PG, 32 * PG, MREMAP_MAYMOVE) == MAP_FAILED,
	    "mremap grow (may move) accepted");
	vol(fd, q + 8 * PG, 4 * PG);
	s = mmap(NULL, 64 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r = mremap(q, 16 * PG, 16 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, s + 16 * PG);
	CHECK(r == s + 16 * PG, "mremap move: %s", strerror(errno));
	expect_vr(fd, q, PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "old address after mremap");
	CHECK(check_fill(r, 16 * PG, 3), "data after mremap");
	CHECK(nonvol(fd, r + 8 * PG, 4 * PG) == 0, "range lost by mremap");
	CHECK(counter("volatile_pages") == 0, "volatile left after mremap");
	/* partial munmap: a range across the hole is refused, each side works */
	CHECK(munmap(r + 4 * PG, 2 * PG) == 0, "partial munmap");
	expect_vr(fd, r, 8 * PG, MEMCOOP_VRANGE_VOLATILE, EINVAL, "range across a hole");
	vol(fd, r, 4 * PG);
	vol(fd, r + 6 * PG, 4 * PG);
	CHECK(try_read(r + 7 * PG, &x) == 0 && x == (char)(3 + 7 * 64 * 7 + 1),
	    "page after the hole");
	/* a second mapping of the same offsets shares pages and ranges */
	q = map(fd, 16 * PG, 64 * PG);
	CHECK(check_fill(q, 4 * PG, 3), "second mapping does not share pages");
	CHECK(nonvol(fd, q, 16 * PG) == 0, "range through the second mapping");
	CHECK(counter("volatile_pages") == 0, "volatile left: %ld", counter("volatile_pages"));
	/* contiguous but not the same offsets: refused */
	munmap(q, 16 * PG);

	/* close the fd while mapped: the mapping keeps working, ioctls are gone */
	vol(fd, r, 4 * PG);
	close(fd);
	CHECK(check_fill(r, 4 * PG, 3), "data after close");
	CHECK(counter("objects") == 1, "object freed while mapped");
	purge(1 << 20);
	CHECK(try_read(r, &x) == -1, "purged page after close did not SIGBUS");
	munmap(r, 4 * PG);
	munmap(r + 6 * PG, 10 * PG);
	munmap(s, 64 * PG);
	munmap(anon, 4 * PG);
	munmap(p, 16 * PG);
	(void)e;
	leak_check();
	printf("badargs: ok\n");
}

/* ---- fork -------------------------------------------------------------- */

static void
t_fork(void)
{
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE), st, i;
	size_t len = 64 * PG;
	char *p = map(fd, len, 0), x;
	pid_t pid;

	cur_test = "fork";
	catch_sigbus();
	set_grace(0);
	fill(p, len, 9);
	vol(fd, p, 16 * PG);
	pid = fork();
	if (pid == 0) {
		/* child: shares pages and ranges with the parent */
		if (!check_fill(p, len, 9))
			_exit(2);
		p[20 * PG] = 'c';
		if (nonvol(fd, p, 16 * PG) != 0)
			_exit(3);
		vol(fd, p + 32 * PG, 16 * PG);	/* left volatile at exit */
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child failed: status %#x", st);
	CHECK(p[20 * PG] == 'c', "child's write not seen by the parent");
	CHECK(counter("volatile_pages") == 16, "child's volatile range gone with the child: %ld",
	    counter("volatile_pages"));
	CHECK(nonvol(fd, p, 16 * PG) == 0, "child's non-volatile not seen");

	/* a child purged while it exits, many children with ranges */
	for (i = 0; i < 8; i++) {
		pid = fork();
		if (pid == 0) {
			vol(fd, p + (size_t)(i % 4) * 16 * PG, 16 * PG);
			if (i & 1)
				purge(16);
			_exit(0);
		}
	}
	while (wait(&st) > 0)
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	purge(1 << 20);
	CHECK(counter("volatile_pages") == 0, "volatile left after purge");
	for (i = 0; i < 4; i++) {
		CHECK(try_read(p + (size_t)i * 16 * PG, &x) == -1, "range %d not purged", i);
		CHECK(nonvol(fd, p + (size_t)i * 16 * PG, 16 * PG) == 1, "range %d", i);
	}
	/* a child that exits with the only mapping: the object dies with it */
	munmap(p, len);
	pid = fork();
	if (pid == 0) {
		char *c = map(fd, 8 * PG, 0);

		vol(fd, c, 8 * PG);
		close(fd);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child status %#x", st);
	close(fd);
	set_grace(5);
	leak_check();
	printf("fork: ok\n");
}

/* ---- events ------------------------------------------------------------ */

static int
next_event(int fd, struct memcoop_event *ev, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) != 1)
		return 0;
	if (read(fd, ev, sizeof(*ev)) != sizeof(*ev))
		FAIL("read event: %s", strerror(errno));
	return 1;
}

struct purger {
	unsigned long pages;
};

static void *
purger_main(void *arg)
{
	struct purger *pu = arg;

	purge(pu->pages);
	return NULL;
}

static void
t_events(void)
{
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_RESIDENCE_EVENTS);
	struct memcoop_subscribe sub;
	struct memcoop_event ev;
	struct purger pu = { 1 };
	size_t len = 32 * PG;
	char *p = map(fd, len, 0), x;
	pthread_t th;
	long rescued, refaults;
	int nfd;

	cur_test = "events";
	catch_sigbus();
	fill(p, len, 5);
	/* subscribing to residence events needs the feature */
	nfd = open_fd(MEMCOOP_FEATURE_VRANGE);
	memset(&sub, 0, sizeof(sub));
	sub.events = 1ULL << MEMCOOP_EVENT_PURGED;
	CHECK(ioctl(nfd, MEMCOOP_IOC_SUBSCRIBE, &sub) == -1 && errno == EINVAL,
	    "subscribed without RESIDENCE_EVENTS");
	close(nfd);
	sub.events = (1ULL << MEMCOOP_EVENT_PURGE_SOON) | (1ULL << MEMCOOP_EVENT_PURGED) |
	    (1ULL << MEMCOOP_EVENT_REFAULT);
	CHECK(ioctl(fd, MEMCOOP_IOC_SUBSCRIBE, &sub) == 0, "subscribe: %s", strerror(errno));

	/* PURGE_SOON, then rescue during a long grace: non-volatile wins */
	set_grace(1000);	/* the longest grace_ms allows */
	vol(fd, p, 8 * PG);
	rescued = counter("rescued_in_grace");
	pthread_create(&th, NULL, purger_main, &pu);
	CHECK(next_event(fd, &ev, 5000), "no PURGE_SOON");
	CHECK(ev.type == MEMCOOP_EVENT_PURGE_SOON && ev.range.start == (uintptr_t)p &&
	    ev.range.len == 8 * PG, "event %u %#llx+%#llx", ev.type,
	    (unsigned long long)ev.range.start, (unsigned long long)ev.range.len);
	CHECK(nonvol(fd, p, 8 * PG) == 0, "rescued range reported purged");
	pthread_join(th, NULL);
	CHECK(counter("rescued_in_grace") == rescued + 1, "rescue not counted");
	CHECK(check_fill(p, 8 * PG, 5), "rescued data lost");
	CHECK(!next_event(fd, &ev, 50), "event %u after a rescue", ev.type);

	/* no rescue: PURGE_SOON then PURGED with the range's address */
	set_grace(1);
	vol(fd, p + 8 * PG, 8 * PG);
	purge(1);
	CHECK(next_event(fd, &ev, 1000) && ev.type == MEMCOOP_EVENT_PURGE_SOON, "no PURGE_SOON");
	CHECK(next_event(fd, &ev, 1000) && ev.type == MEMCOOP_EVENT_PURGED &&
	    ev.range.start == (uintptr_t)(p + 8 * PG) && ev.range.len == 8 * PG,
	    "PURGED %u %#llx", ev.type, (unsigned long long)ev.range.start);
	CHECK(ev.timestamp_ns > 0, "no timestamp");
	/* the shrinker: PURGED without PURGE_SOON */
	vol(fd, p + 16 * PG, 4 * PG);
	write_file("/proc/sys/vm/drop_caches", "2");
	CHECK(next_event(fd, &ev, 1000) && ev.type == MEMCOOP_EVENT_PURGED &&
	    ev.range.start == (uintptr_t)(p + 16 * PG), "shrinker PURGED %u", ev.type);

	/* REFAULT: once per purged page touched after non-volatile */
	refaults = counter("refaults");
	CHECK(try_read(p + 9 * PG, &x) == -1, "purged page readable");
	CHECK(!next_event(fd, &ev, 20), "event on SIGBUS");
	CHECK(nonvol(fd, p + 8 * PG, 8 * PG) == 1, "purge not reported");
	CHECK(p[9 * PG] == 0, "refaulted page not zero");
	CHECK(next_event(fd, &ev, 1000) && ev.type == MEMCOOP_EVENT_REFAULT &&
	    ev.range.start == (uintptr_t)(p + 9 * PG) && ev.range.len == PG,
	    "REFAULT %u %#llx", ev.type, (unsigned long long)ev.range.start);
	x = p[9 * PG];
	p[10 * PG] = 1;
	CHECK(next_event(fd, &ev, 1000) && ev.type == MEMCOOP_EVENT_REFAULT &&
	    ev.range.start == (uintptr_t)(p + 10 * PG), "second REFAULT");
	CHECK(!next_event(fd, &ev, 20), "refault reported twice");
	CHECK(counter("refaults") == refaults + 2, "refaults counter");
	/* re-marking a hole volatile forgets it */
	vol(fd, p + 8 * PG, 8 * PG);
	CHECK(nonvol(fd, p + 8 * PG, 8 * PG) == 0, "re-marked hole purged");
	(void)p[12 * PG];
	CHECK(!next_event(fd, &ev, 20), "REFAULT after re-marking");
	CHECK(nonvol(fd, p + 16 * PG, 4 * PG) == 1, "shrinker purge not reported");

	munmap(p, len);
	close(fd);
	set_grace(5);
	leak_check();
	printf("events: ok\n");
}

/* ---- threads: volatile/non-volatile against purges --------------------- */

static volatile int stop_flag;
static int race_fd;
static char *race_mem;
#define RACE_SLOT	(32 * PG)

struct worker {
	int id;
	unsigned long cycles, purged, faults, bad;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char *slot = race_mem + (size_t)w->id * RACE_SLOT, x;
	unsigned int seed = (unsigned int)w->id * 1000, gen = 0;
	size_t i;

	fill(slot, RACE_SLOT, seed);
	while (!stop_flag) {
		vol(race_fd, slot, RACE_SLOT);
		/* touching a volatile page: intact data, or SIGBUS if purged */
		if (try_read(slot + (gen % 32) * PG, &x) == -1)
			w->faults++;
		else if (x != (char)(seed + (gen % 32) * PG / 64 * 7 + 1))
			w->bad++;
		if (nonvol(race_fd, slot, RACE_SLOT)) {
			w->purged++;
			for (i = 0; i < RACE_SLOT; i += PG)
				if (slot[i] != 0)
					w->bad++;
			seed = (unsigned int)w->id * 1000 + ++gen;
			fill(slot, RACE_SLOT, seed);
		} else if (!check_fill(slot, RACE_SLOT, seed)) {
			w->bad++;
		}
		w->cycles++;
	}
	return NULL;
}

static void *
purge_main(void *arg)
{
	unsigned long n = 0;

	(void)arg;
	while (!stop_flag) {
		if (n++ % 4 == 3)
			write_file("/proc/sys/vm/drop_caches", "2");
		else
			purge(8 + n % 64);
		usleep(2000);
	}
	return NULL;
}

/*
 * Bulk memory for the balloon: @bulk_chunks chunks of 4 MiB after the
 * workers' slots, kept volatile; each sweep takes every chunk back
 * (checking it is intact or, if purged, zero), refills purged ones and
 * marks it volatile again.
 */
#define BULK_CHUNK	(4UL << 20)
static int bulk_chunks;
static unsigned long bulk_sweeps, bulk_purged, bulk_bad;

static void *
bulk_main(void *arg)
{
	char *bulk = arg;
	int i;

	for (i = 0; i < bulk_chunks; i++) {
		fill(bulk + (size_t)i * BULK_CHUNK, BULK_CHUNK, (unsigned int)i);
		vol(race_fd, bulk + (size_t)i * BULK_CHUNK, BULK_CHUNK);
	}
	while (!stop_flag) {
		for (i = 0; i < bulk_chunks && !stop_flag; i++) {
			char *c = bulk + (size_t)i * BULK_CHUNK;

			if (nonvol(race_fd, c, BULK_CHUNK)) {
				bulk_purged++;
				if (!all_zero(c, PG) || !all_zero(c + BULK_CHUNK - PG, PG))
					bulk_bad++;
				fill(c, BULK_CHUNK, (unsigned int)i);
			} else if (!check_fill(c, BULK_CHUNK, (unsigned int)i)) {
				bulk_bad++;
			}
			vol(race_fd, c, BULK_CHUNK);
		}
		bulk_sweeps++;
		usleep(200000);
	}
	return NULL;
}

static void
run_race(int seconds, int nthreads, int bulk_mb, int use_purger, int announce)
{
	struct worker w[16];
	pthread_t th[16], pth, bth;
	unsigned long cycles = 0, purged = 0, faults = 0;
	size_t slots;
	int i;

	if (nthreads > 16)
		nthreads = 16;
	catch_sigbus();
	set_grace(1);
	bulk_chunks = bulk_mb / 4;
	slots = (size_t)nthreads * RACE_SLOT;
	race_fd = open_fd(MEMCOOP_FEATURE_VRANGE);
	race_mem = map(race_fd, slots + (size_t)bulk_chunks * BULK_CHUNK, 0);
	for (i = 0; i < nthreads; i++) {
		w[i] = (struct worker){ .id = i };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	if (use_purger)
		pthread_create(&pth, NULL, purge_main, NULL);
	if (bulk_chunks)
		pthread_create(&bth, NULL, bulk_main, race_mem + slots);
	if (announce) {
		printf("READY\n");
		fflush(stdout);
	}
	for (i = 0; i < seconds; i++) {
		sleep(1);
		if (announce && i % 5 == 4)
			printf("t=%ds volatile %ld purged %ld balloon %ld reclaim %ld oom %ld "
			    "sigbus %ld MemFree %ld kB Shmem %ld kB\n", i + 1,
			    counter("volatile_pages"), counter("purged_pages_now"),
			    counter("purges_balloon"), counter("purges_reclaim"),
			    counter("purges_oom"), counter("sigbus"), meminfo_kib("MemFree:"),
			    meminfo_kib("Shmem:"));
	}
	stop_flag = 1;
	if (use_purger)
		pthread_join(pth, NULL);
	if (bulk_chunks)
		pthread_join(bth, NULL);
	CHECK(bulk_bad == 0, "%lu bulk chunks corrupt", bulk_bad);
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].bad == 0, "thread %d saw %lu corrupt pages", i, w[i].bad);
		cycles += w[i].cycles;
		purged += w[i].purged;
		faults += w[i].faults;
	}
	printf("race: %lu cycles, %lu purged, %lu SIGBUS, bulk sweeps %lu purged %lu, "
	    "balloon purges %ld, reclaim purges %ld, oom purges %ld, lock busy %ld, "
	    "deferred %ld, owed %ld, oom calls %ld waits %ld\n",
	    cycles, purged, faults, bulk_sweeps, bulk_purged, counter("purges_balloon"),
	    counter("purges_reclaim"), counter("purges_oom"), counter("purge_lock_busy"),
	    counter("deferred_purges"), counter_or("owed_purges", -1), counter("oom_calls"),
	    counter_or("oom_waits", -1));
	fflush(stdout);
	(void)system("grep -E '^(balloon_|rounds)' " DBG "relay; grep -E 'reclaim' " DBG "balloon");
	CHECK(cycles > 0, "no cycles");
	CHECK(purged + bulk_purged > 0, "no range was ever purged: the race was not exercised");
	munmap(race_mem, slots + (size_t)bulk_chunks * BULK_CHUNK);
	close(race_fd);
	set_grace(5);
	leak_check();
}

/* ---- allocator --------------------------------------------------------- */

static void
t_alloc(void)
{
	struct memcoop *mc = memcoop_open(MEMCOOP_FEATURE_VRANGE);
	struct memcoop_alloc *al;
	struct memcoop_alloc_stats st;
	char *p[64], *q;
	size_t i, sz;

	cur_test = "alloc";
	CHECK(mc != NULL, "memcoop_open: %s", strerror(errno));
	set_grace(0);
	CHECK(memcoop_alloc_create(NULL, 1 << 20, MEMCOOP_RELEASE_VOLATILE) == NULL &&
	    errno == EINVAL, "volatile allocator without a handle");
	al = memcoop_alloc_create(mc, 64 << 20, MEMCOOP_RELEASE_VOLATILE);
	CHECK(al != NULL, "alloc_create: %s", strerror(errno));
	for (i = 0; i < 64; i++) {
		sz = (i % 7 + 1) * 3000 + i * PG;
		p[i] = memcoop_malloc(al, sz);
		CHECK(p[i] != NULL, "malloc %zu", sz);
		CHECK(((uintptr_t)p[i] & (PG - 1)) == 0, "not page aligned");
		CHECK(memcoop_malloc_usable_size(al, p[i]) >= sz, "usable size");
		memset(p[i], (int)i + 1, sz);
	}
	for (i = 0; i < 64; i++) {
		sz = (i % 7 + 1) * 3000 + i * PG;
		CHECK((unsigned char)p[i][sz - 1] == i + 1, "allocation %zu overwritten", i);
	}
	CHECK(counter("volatile_pages") == 0, "volatile before any free");
	for (i = 0; i < 64; i += 2)
		memcoop_free(al, p[i]);
	CHECK(counter("volatile_pages") > 0, "free did not mark volatile");
	/* reuse the most recently freed span, intact (nothing was purged) */
	q = memcoop_malloc(al, (62 % 7 + 1) * 3000 + 62 * PG);
	CHECK(q == p[62], "free list is not LIFO per class");
	CHECK((unsigned char)q[0] == 63, "unpurged span lost its contents");
	/* purge everything; calloc from a purged span is zero */
	purge(1 << 20);
	CHECK(counter("volatile_pages") == 0, "not all purged");
	q = memcoop_calloc(al, 1, (60 % 7 + 1) * 3000 + 60 * PG);
	CHECK(q == p[60] && all_zero(q, 60 * PG), "calloc from a purged span");
	memcoop_alloc_stats(al, &st);
	CHECK(st.reused == 2 && st.purged_reuses == 1 && st.frees == 32,
	    "stats reused %llu purged %llu frees %llu", (unsigned long long)st.reused,
	    (unsigned long long)st.purged_reuses, (unsigned long long)st.frees);
	/* calloc of a non-purged reused span is zeroed by the library */
	memcoop_free(al, q);
	q = memcoop_calloc(al, 1, (60 % 7 + 1) * 3000 + 60 * PG);
	CHECK(q != NULL && all_zero(q, 60 * PG), "calloc of a reused span not zero");
	/* exhausting the arena is ENOMEM, not a crash */
	CHECK(memcoop_malloc(al, 128 << 20) == NULL && errno == ENOMEM, "oversized malloc");
	memcoop_alloc_destroy(al);
	/* the comparison modes work the same way */
	al = memcoop_alloc_create(NULL, 16 << 20, MEMCOOP_RELEASE_DONTNEED);
	CHECK(al != NULL, "anonymous allocator");
	q = memcoop_malloc(al, 5 * PG);
	memset(q, 1, 5 * PG);
	memcoop_free(al, q);
	CHECK(memcoop_malloc(al, 5 * PG) == q && all_zero(q, 5 * PG), "DONTNEED reuse");
	memcoop_alloc_destroy(al);
	memcoop_close(mc);
	set_grace(5);
	leak_check();
	printf("alloc: ok\n");
}

/* ---- memory cgroup ----------------------------------------------------- */

#define MEMCG_DIR	"/sys/fs/cgroup/mct-vrange"

/* A fresh group limited to @max bytes. */
static void
memcg_make(const char *max)
{
	char path[256];

	mkdir("/sys/fs/cgroup", 0755);
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0 &&
	    system("mount -t cgroup2 none /sys/fs/cgroup") != 0)
		FAIL("cannot mount cgroup2");
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
	if (mkdir(MEMCG_DIR, 0755) == -1 && errno != EEXIST)
		FAIL("mkdir %s: %s", MEMCG_DIR, strerror(errno));
	snprintf(path, sizeof(path), "%s/memory.max", MEMCG_DIR);
	write_file(path, max);
}

/* Fork a child that joins the group as nobody and runs @fn; its status. */
static int
memcg_run(int (*fn)(void))
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		write_file(MEMCG_DIR "/cgroup.procs", "0");
		/* an unprivileged user, as the issue asks */
		if (setgid(65534) == -1 || setuid(65534) == -1)
			_exit(5);
		_exit(fn());
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/waitpid");
	return st;
}

static long
memcg_value(const char *file, const char *key)
{
	char path[256], buf[256], fmt[64];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", MEMCG_DIR, file);
	snprintf(fmt, sizeof(fmt), "%s %%ld", key);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f))
		if (key[0] == '\0' ? sscanf(buf, "%ld", &v) == 1 : sscanf(buf, fmt, &v) == 1)
			break;
	fclose(f);
	return v;
}

/* 16 MiB touched are charged to the group; then far beyond its limit. */
static int
memcg_overrun(void)
{
	size_t len = 64UL << 20, i;
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE);
	char *p = map(fd, len, 0);
	long cur;

	for (i = 0; i < (16UL << 20); i += PG)
		p[i] = 1;
	cur = memcg_value("memory.current", "");
	printf("memcg: memory.current %ld after 16 MiB\n", cur);
	fflush(stdout);
	if (cur < (16L << 20))
		return 3;
	/* now beyond the limit: the group's OOM killer must stop us */
	for (i = 0; i < len; i += PG)
		p[i] = 1;
	return 4;
}

/*
 * 20 MiB filled and marked volatile in 4 MiB ranges, then 20 MiB more
 * touched: 40 MiB against a 32 MiB limit fit only if reclaim inside the
 * group purges volatile ranges.  The ranges taken back must be intact or
 * (purged) zero, and at least one must have been purged.  (Adjacent
 * ranges marked through one mapping merge, so this is one range of 20 MiB.)
 */
static int
memcg_purge(void)
{
	size_t len = 40UL << 20, vlen = 20UL << 20, chunk = 4UL << 20, i, j;
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE), purged = 0;
	char *p = map(fd, len, 0);

	for (i = 0; i < vlen; i += PG)
		p[i] = (char)(1 + i / chunk);
	for (i = 0; i < vlen; i += chunk)
		vol(fd, p + i, chunk);
	for (i = vlen; i < len; i += PG)
		p[i] = 2;
	for (i = 0; i < vlen; i += chunk) {
		if (nonvol(fd, p + i, chunk)) {
			/* reading a purged page allocates it again: two per range */
			purged++;
			if (!all_zero(p + i, PG) || !all_zero(p + i + chunk - PG, PG))
				return 6;
		} else {
			for (j = 0; j < chunk; j += PG)
				if (p[i + j] != (char)(1 + i / chunk))
					return 7;
		}
	}
	printf("memcg: %d of %zu volatile ranges purged inside the group\n", purged,
	    vlen / chunk);
	return purged > 0 ? 0 : 8;
}

static void
t_memcg(void)
{
	long oomk, before;
	int st;

	cur_test = "memcg";
	memcg_make("33554432");		/* 32 MiB */

	/* volatile ranges give way inside the group: no OOM kill */
	before = counter("purges_reclaim");
	st = memcg_run(memcg_purge);
	printf("memcg: reclaim purges %ld -> %ld, lock busy %ld, deferred %ld, volatile %ld\n",
	    before, counter("purges_reclaim"), counter("purge_lock_busy"),
	    counter("deferred_purges"), counter("volatile_pages"));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "volatile ranges not purged at the group's limit (status %#x: %s)", st,
	    WIFSIGNALED(st) ? "killed" : WEXITSTATUS(st) == 8 ? "none purged" :
	    "data wrong");
	oomk = memcg_value("memory.events", "oom_kill");
	CHECK(oomk == 0, "%ld OOM kills in the group with volatile memory to purge", oomk);
	CHECK(counter("purges_reclaim") > before, "reclaim purges did not count");

	/* non-volatile memory is charged to the group and cannot escape it */
	st = memcg_run(memcg_overrun);
	CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 3), "pages not charged to the cgroup");
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "child escaped the 32 MiB limit (status %#x)", st);
	oomk = memcg_value("memory.events", "oom_kill");
	CHECK(oomk >= 1, "no OOM kill in the group's memory.events");
	rmdir(MEMCG_DIR);
	leak_check();
	printf("memcg: ok\n");
}

/* ---- guest memory pressure -------------------------------------------- */

/*
 * Most of the guest's memory is volatile memcoop memory; then a child
 * allocates more anonymous memory than is left.  Reclaim (the shrinker,
 * or the OOM notifier as a last resort) must purge the volatile ranges:
 * the child gets its memory and nobody is OOM-killed.
 */
static void
t_pressure(void)
{
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE), st, i;
	long avail = meminfo_kib("MemAvailable:") / 1024, vmb = avail * 6 / 10, amb;
	size_t chunk = 4UL << 20, n = (size_t)vmb / 4;
	char *p = map(fd, n * chunk, 0);
	long r0 = counter("purges_reclaim") + counter("purges_oom");
	int purged = 0;
	pid_t pid;

	cur_test = "pressure";
	for (i = 0; i < (int)n; i++) {
		fill(p + (size_t)i * chunk, chunk, (unsigned int)i);
		vol(fd, p + (size_t)i * chunk, chunk);	/* adjacent: they merge */
	}
	amb = meminfo_kib("MemAvailable:") / 1024 - 16 + vmb / 2;
	printf("pressure: %ld MiB volatile (%ld pages accounted), child takes %ld MiB "
	    "(MemAvailable %ld MiB)\n", vmb, counter("volatile_pages"), amb,
	    meminfo_kib("MemAvailable:") / 1024);
	pid = fork();
	if (pid == 0) {
		size_t len = (size_t)amb << 20, j;
		char *a = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (a == MAP_FAILED)
			_exit(2);
		for (j = 0; j < len; j += PG)
			a[j] = 1;
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "the allocating child did not survive (status %#x)", st);
	CHECK(counter("purges_reclaim") + counter("purges_oom") > r0,
	    "no reclaim or OOM purge happened");
	for (i = 0; i < (int)n; i++) {
		char *c = p + (size_t)i * chunk;

		if (nonvol(fd, c, chunk)) {
			purged++;
			CHECK(all_zero(c, PG), "purged chunk %d not zero", i);
		} else {
			CHECK(check_fill(c, chunk, (unsigned int)i), "chunk %d corrupt", i);
		}
	}
	printf("pressure: %d of %zu chunks purged, reclaim purges %ld, oom purges %ld\n",
	    purged, n, counter("purges_reclaim"), counter("purges_oom"));
	CHECK(purged > 0, "nothing was purged");
	munmap(p, n * chunk);
	close(fd);
	leak_check();
	printf("pressure: ok\n");
}

/* ---- helpers for unprivileged callers ----------------------------------- */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
set_oom_adj(const char *v)
{
	write_file("/proc/self/oom_score_adj", v);
}

/* Drop to nobody (in a forked child; the parent stays root). */
static void
as_nobody(void)
{
	if (setgroups(0, NULL) == -1 || setgid(65534) == -1 || setuid(65534) == -1)
		_exit(5);
	if (getuid() != 65534 || geteuid() != 65534)
		_exit(5);
}

static long
param(const char *name)
{
	long v = modparam_read(name);

	if (v == -1) {
		printf("no parameter %s\n", name);
		return LONG_MAX;	/* an older module: no such limit */
	}
	return v;
}

/* ---- fuzzer ------------------------------------------------------------ */

/*
 * Several unprivileged processes, several threads each, make random calls
 * on shared fds (and on a private fd each thread closes and reopens),
 * while root purges from every side: the balloon path (debugfs), the
 * shrinker (drop_caches and a child that allocates most of the memory)
 * and the OOM notifier (a hog the OOM killer kills; the fuzzers are
 * exempt).  Every call's errno must be one the call may return; every
 * child must exit 0.  A thread touches, mprotects and madvises only its
 * own whole mappings (a stale address could by then be another thread's
 * stack); ioctls go anywhere.
 */
struct fuzz_ctl {
	int fds[2];			/* shared by the process's threads */
	unsigned int seed;
	time_t end;
};

#define FUZZ_OK(cond, what, e) do {					\
	if (!(cond))							\
		FAIL("fuzz: %s: unexpected errno %d (%s)", what, e, strerror(e)); \
} while (0)

static int
fuzz_vr(int fd, void *p, size_t len, uint64_t mode)
{
	int e = vr(fd, p, len, mode, NULL);

	FUZZ_OK(e == 0 || e == EINVAL || e == ENOSPC || e == ENOMEM, "VRANGE", e);
	FUZZ_OK(e != 0 || mode == MEMCOOP_VRANGE_VOLATILE || mode == MEMCOOP_VRANGE_NONVOLATILE,
	    "VRANGE with a bad mode succeeded", 0);
	return e;
}

static void
fuzz_reap(int block)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, block ? 0 : WNOHANG)) > 0)
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fuzz child %d status %#x", pid, st);
	CHECK(pid == 0 || errno == ECHILD, "waitpid: %s", strerror(errno));
}

/* Unmap one of a thread's mappings, around its hole if it has one. */
static void
fuzz_unmap(char *base, size_t len, int whole)
{
	size_t mid = (len / PG / 2) * PG;

	if (whole) {
		FUZZ_OK(munmap(base, len) == 0, "munmap", errno);
		return;
	}
	FUZZ_OK(mid == 0 || munmap(base, mid) == 0, "munmap", errno);
	FUZZ_OK(len <= mid + PG || munmap(base + mid + PG, len - mid - PG) == 0, "munmap", errno);
}

static void *
fuzz_thread(void *arg)
{
	struct fuzz_ctl *c = arg;
	unsigned int seed = c->seed;
	char *maps[8] = { 0 };
	size_t lens[8] = { 0 };
	int whole[8] = { 0 }, own = open_fd(MEMCOOP_FEATURE_VRANGE), i;
	unsigned long ops = 0;
	char x;

	catch_sigbus();
	catch_sigsegv();
	while (time(NULL) < c->end) {
		int m = (int)(rand_r(&seed) % 8), op = (int)(rand_r(&seed) % 18);
		int fd = rand_r(&seed) % 3 ? c->fds[rand_r(&seed) % 2] : own;
		char *base = maps[m], *q;
		size_t off = base ? (size_t)(rand_r(&seed) % (lens[m] / PG + 2)) * PG : 0;
		size_t len = (size_t)(rand_r(&seed) % 24) * PG;
		struct memcoop_residence r;
		struct memcoop_event ev[8];
		uint8_t bits[16];
		int e;

		if (rand_r(&seed) % 16 == 0)
			off += (size_t)(rand_r(&seed) % PG);	/* unaligned */
		if (rand_r(&seed) % 32 == 0)
			len = (size_t)-1 - (size_t)(rand_r(&seed) % 3) * PG;	/* wrapping */
		ops++;
		switch (op) {
		case 0:		/* map */
			if (base)
				break;
			lens[m] = (size_t)(rand_r(&seed) % 64 + 1) * PG;
			q = mmap(NULL, lens[m], PROT_READ | PROT_WRITE, MAP_SHARED,
			    rand_r(&seed) % 2 ? own : c->fds[rand_r(&seed) % 2],
			    (off_t)(rand_r(&seed) % 128) * (off_t)PG);
			e = errno;
			FUZZ_OK(q != MAP_FAILED || e == ENOMEM, "mmap", e);
			maps[m] = q == MAP_FAILED ? NULL : q;
			whole[m] = 1;
			break;
		case 1:		/* unmap, wholly or one page (once: the hole may be reused) */
			if (!base)
				break;
			if (rand_r(&seed) % 2 || !whole[m]) {
				fuzz_unmap(base, lens[m], whole[m]);
				maps[m] = NULL;
			} else {
				FUZZ_OK(munmap(base + (lens[m] / PG / 2) * PG, PG) == 0,
				    "munmap a page", errno);
				whole[m] = 0;
			}
			break;
		case 2:		/* mremap: shrink in place, or move to an address we own */
			if (!base || !whole[m] || lens[m] < 2 * PG)
				break;
			{
				size_t nl = lens[m] / 2 & ~(PG - 1);
				char *dst = NULL;

				if (rand_r(&seed) % 2) {
					dst = mmap(NULL, nl, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
					    -1, 0);
					if (dst == MAP_FAILED)
						break;
					q = mremap(base, lens[m], nl, MREMAP_MAYMOVE | MREMAP_FIXED,
					    dst);
				} else {
					q = mremap(base, lens[m], nl, 0);
				}
				e = errno;
				/* EFAULT: mprotect split the mapping into several vmas */
				FUZZ_OK(q != MAP_FAILED || e == ENOMEM || e == EFAULT, "mremap", e);
				if (q == MAP_FAILED) {
					/*
					 * The tail may be unmapped before the vma check
					 * fails, and @dst too: never touch either again
					 * (@dst may be someone else's by now).
					 */
					lens[m] = nl;
					break;
				}
				maps[m] = q;
				lens[m] = nl;
			}
			break;
		case 3:
			if (base && whole[m]) {
				e = mprotect(base + off % lens[m], len % lens[m],
				    rand_r(&seed) % 2 ? PROT_READ : PROT_READ | PROT_WRITE) ? errno : 0;
				FUZZ_OK(e == 0 || e == EINVAL || e == ENOMEM, "mprotect", e);
			}
			break;
		case 4:
		case 5:
		case 6:
			fuzz_vr(fd, base ? base + off : (char *)(uintptr_t)off, len,
			    (uint64_t)(rand_r(&seed) % 4));
			break;
		case 7:
		case 8:
			fuzz_vr(fd, base ? base + off : NULL, len, MEMCOOP_VRANGE_VOLATILE);
			break;
		case 9:
			memset(&r, 0, sizeof(r));
			r.start = (uintptr_t)(base ? base + off : NULL);
			r.len = len;
			r.bitmap = (uintptr_t)bits;
			r.bitmap_size = (uint64_t)(rand_r(&seed) % 17);
			e = ioctl(fd, MEMCOOP_IOC_RESIDENCE, &r) ? errno : 0;
			FUZZ_OK(e == 0 || e == EINVAL || e == ENOMEM, "RESIDENCE", e);
			break;
		case 10:	/* touch: data, zero, or SIGBUS */
		case 11:
			if (base && whole[m] && off < lens[m]) {
				if (rand_r(&seed) % 2)
					(void)try_read(base + off, &x);
				else
					(void)try_write(base + off, 1);
			}
			break;
		case 12:	/* close the private fd (its mappings stay) and reopen */
			if (rand_r(&seed) % 4 == 0) {
				FUZZ_OK(close(own) == 0, "close", errno);
				own = open_fd(MEMCOOP_FEATURE_VRANGE);
			}
			break;
		case 13:	/* fork: the child marks, touches and exits with ranges set */
			if (rand_r(&seed) % 8)
				break;
			fflush(stdout);
			if (fork() == 0) {
				if (base && whole[m] && off < lens[m]) {
					fuzz_vr(c->fds[0], base, lens[m], MEMCOOP_VRANGE_VOLATILE);
					(void)try_write(base + off, 2);
				}
				_exit(0);
			}
			break;
		case 14:
			e = read(c->fds[0], ev, sizeof(ev)) < 0 ? errno : 0;
			FUZZ_OK(e == 0 || e == EAGAIN, "read events", e);
			{
				struct memcoop_subscribe sub = {
					.events = ((uint64_t)rand_r(&seed) & 0x1f) << 1,
				};

				e = ioctl(c->fds[0], MEMCOOP_IOC_SUBSCRIBE, &sub) ? errno : 0;
				FUZZ_OK(e == 0 || e == EINVAL, "SUBSCRIBE", e);
			}
			break;
		case 15:	/* madvise */
			if (base && whole[m] && off < lens[m]) {
				e = madvise(base + off, PG,
				    rand_r(&seed) % 2 ? MADV_DONTNEED : MADV_REMOVE) ? errno : 0;
				FUZZ_OK(e == 0 || e == EINVAL || e == EACCES, "madvise", e);
			}
			break;
		case 16:	/* reap children */
			fuzz_reap(0);
			break;
		case 17:	/* a whole mapping marked volatile after filling it */
			if (base && whole[m]) {
				for (i = 0; i < (int)(lens[m] / PG); i += 4)
					(void)try_write(base + (size_t)i * PG, 3);
				fuzz_vr(fd, base, lens[m], MEMCOOP_VRANGE_VOLATILE);
			}
			break;
		}
	}
	for (i = 0; i < 8; i++)
		if (maps[i])
			fuzz_unmap(maps[i], lens[i], whole[i]);
	close(own);
	printf("fuzz: thread %u: %lu operations\n", c->seed, ops);
	return NULL;
}

/* One unprivileged fuzzing process: @threads threads on two shared fds. */
static void
fuzz_proc(int seconds, unsigned int seed, int threads)
{
	struct fuzz_ctl ctl[16];
	pthread_t th[16];
	int i, fds[2];

	as_nobody();
	fds[0] = open_fd(MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_RESIDENCE_EVENTS);
	fds[1] = open_fd(MEMCOOP_FEATURE_VRANGE);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);	/* reads take whatever is there */
	for (i = 0; i < threads; i++) {
		ctl[i].fds[0] = fds[0];
		ctl[i].fds[1] = fds[1];
		ctl[i].seed = seed * 100 + (unsigned int)i;
		ctl[i].end = time(NULL) + seconds;
		CHECK(pthread_create(&th[i], NULL, fuzz_thread, &ctl[i]) == 0, "pthread_create");
	}
	for (i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	fuzz_reap(1);
	close(fds[0]);
	close(fds[1]);
}

static void
t_fuzz(int seconds, unsigned int seed, int procs, int threads)
{
	long free0 = meminfo_free_kib(), slab0 = meminfo_slab_kib(), free1, slab1;
	long oom0 = counter("purges_oom"), rec0 = counter("purges_reclaim"),
	    bal0 = counter("purges_balloon"), oc0 = counter("oom_calls");
	time_t end = time(NULL) + seconds;
	pid_t kids[16], hog = 0, squeeze = 0;
	int i, st, hogs = 0, kills = 0;
	unsigned int rs = seed;

	cur_test = "fuzz";
	if (procs < 1 || procs > 16 || threads < 1 || threads > 16)
		FAIL("fuzz: 1..16 processes and threads");
	set_grace(0);
	set_oom_adj("-1000");		/* inherited: the fuzzers are never the OOM victim */
	printf("fuzz: seed %u, %d s, %d unprivileged processes x %d threads\n", seed, seconds,
	    procs, threads);
	fflush(stdout);
	for (i = 0; i < procs; i++) {
		kids[i] = fork();
		CHECK(kids[i] >= 0, "fork");
		if (kids[i] == 0) {
			fuzz_proc(seconds, seed + (unsigned int)i, threads);
			_exit(0);
		}
	}
	/* root: purges from the balloon, the shrinker and the OOM path meanwhile */
	while (time(NULL) < end) {
		int op = (int)(rand_r(&rs) % 8);

		if (hog && waitpid(hog, &st, WNOHANG) == hog) {
			CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "hog status %#x", st);
			kills++;
			hog = 0;
		}
		if (squeeze && waitpid(squeeze, &st, WNOHANG) == squeeze)
			squeeze = 0;
		if (op < 4) {
			purge((unsigned long)(rand_r(&rs) % 4096));
		} else if (op == 4) {
			write_file("/proc/sys/vm/drop_caches", rand_r(&rs) % 2 ? "2" : "3");
		} else if (op == 5 && !squeeze && !hog) {
			/* most of what is free, briefly: the shrinker runs */
			long mb = meminfo_kib("MemAvailable:") / 1024 * 8 / 10;

			fflush(stdout);
			if ((squeeze = fork()) == 0) {
				size_t len = (size_t)mb << 20, j;
				char *a = mmap(NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

				set_oom_adj("1000");
				if (a != MAP_FAILED)
					for (j = 0; j < len; j += PG)
						a[j] = 1;
				_exit(0);
			}
		}
		if (!hog && hogs < 3 && time(NULL) > end - seconds + (hogs + 1) * seconds / 4) {
			/* a hog until the OOM killer takes it: the OOM notifier purges */
			fflush(stdout);
			if ((hog = fork()) == 0) {
				set_oom_adj("1000");
				for (;;) {
					size_t len = 16UL << 20, j;
					char *a = mmap(NULL, len, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

					if (a != MAP_FAILED)
						for (j = 0; j < len; j += PG)
							a[j] = 1;
				}
			}
			hogs++;
		}
		usleep(20000);
	}
	for (i = 0; i < procs; i++) {
		int w;

		/* a fuzzer stuck 60 s past its end: show where, then fail */
		for (w = 0; w < 600 && waitpid(kids[i], &st, WNOHANG) == 0; w++)
			usleep(100000);
		if (w == 600) {
			char cmd[400];

			snprintf(cmd, sizeof(cmd), "for t in /proc/%d/task/*; do echo $t; "
			    "cat $t/stat $t/stack; done; for c in $(cat /proc/%d/task/*/children); "
			    "do echo child $c; cat /proc/$c/stat /proc/$c/stack; done", kids[i],
			    kids[i]);
			(void)system(cmd);
			FAIL("fuzzing process %d stuck", i);
		}
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fuzzing process %d status %#x",
		    i, st);
	}
	if (hog) {
		int w;

		/*
		 * a hog still running at the end: the OOM killer takes it within
		 * 180 s (a hog of the lab's KASAN kernel filled 512 MiB slower
		 * than the 45 s it had); one killed here is not an OOM kill
		 */
		for (w = 0; w < 1800 && waitpid(hog, &st, WNOHANG) == 0; w++)
			usleep(100000);
		if (w == 1800) {
			kill(hog, SIGKILL);
			CHECK(waitpid(hog, &st, 0) == hog, "waitpid hog");
		} else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
			kills++;
		}
	}
	if (squeeze)
		CHECK(waitpid(squeeze, &st, 0) == squeeze, "waitpid squeeze");
	printf("fuzz: purges balloon %ld, reclaim %ld, oom %ld (%ld OOM calls); %d hogs, %d killed; "
	    "range_nodes %ld, ranges_refused %ld, budget stops %ld, deferred purges %ld\n",
	    counter("purges_balloon") - bal0, counter("purges_reclaim") - rec0,
	    counter("purges_oom") - oom0, counter("oom_calls") - oc0, hogs, kills,
	    counter_or("range_nodes", -1),
	    counter_or("ranges_refused", -1), counter_or("purge_budget_stops", -1),
	    counter("deferred_purges"));
	CHECK(counter("purges_balloon") > bal0, "the balloon path never purged a range");
	CHECK(kills > 0 && counter("oom_calls") > oc0,
	    "the OOM path was not exercised (%d hogs, %d killed)", hogs, kills);
	set_grace(5);
	leak_check();
	/* memory comes back (page cache of the objects, ranges, rings) */
	write_file("/proc/sys/vm/drop_caches", "3");
	free1 = meminfo_free_kib();
	slab1 = meminfo_slab_kib();
	printf("fuzz: MemFree+pcp %ld -> %ld kB, Slab %ld -> %ld kB\n", free0, free1, slab0, slab1);
	CHECK(free1 > free0 - 4096, "MemFree did not come back: %ld -> %ld kB", free0, free1);
	CHECK(slab1 < slab0 + 2048, "Slab grew: %ld -> %ld kB", slab0, slab1);
	printf("fuzz: ok\n");
}

/* ---- hostile unprivileged callers (issue 11) ---------------------------- */

/* A root memory hog, the first choice of the OOM killer: seconds until it is killed. */
static double
hog_kill_time(void)
{
	double t0 = now_s();
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		set_oom_adj("1000");
		for (;;) {
			size_t len = 16UL << 20, i;
			char *a = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (a == MAP_FAILED)
				continue;
			for (i = 0; i < len; i += PG)
				a[i] = 1;
		}
	}
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "hog not OOM-killed (status %#x)", st);
	return now_s() - t0;
}

/*
 * 64 (or @tib) mappings of 1 TiB, marked volatile and never touched, held
 * by an unprivileged process: a root hog's OOM kill must come within twice
 * the time it takes without them (volatile memory is counted and purged by
 * resident pages, so empty ranges cost nothing).
 */
static void
t_oomempty(int tib)
{
	const size_t tb = 1UL << 40;
	double base, with, after, w[3];
	int pfd[2], i, st;
	long volp, ocalls;
	pid_t holder;
	char c;

	cur_test = "oomempty";
	set_oom_adj("-1000");
	base = hog_kill_time();
	printf("oomempty: hog killed after %.2f s without volatile ranges\n", base);

	CHECK(pipe(pfd) == 0, "pipe");
	holder = fork();
	if (holder == 0) {
		close(pfd[0]);
		as_nobody();
		for (i = 0; i < tib; i++) {
			int fd = open_fd(MEMCOOP_FEATURE_VRANGE);
			char *p = mmap(NULL, tb, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_NORESERVE, fd, 0);

			if (p == MAP_FAILED)
				_exit(2);
			if (vr(fd, p, tb, MEMCOOP_VRANGE_VOLATILE, NULL))
				_exit(3);
		}
		if (write(pfd[1], "r", 1) != 1)
			_exit(4);
		for (;;)
			pause();
	}
	close(pfd[1]);
	CHECK(read(pfd[0], &c, 1) == 1, "holder failed to set up its ranges");
	volp = counter("volatile_pages");
	ocalls = counter("oom_calls");
	printf("oomempty: %d TiB of empty volatile ranges held by nobody (volatile_pages %ld)\n",
	    tib, volp);
	/* the median of three: one slow round on a loaded host is not a stall */
	for (i = 0; i < 3; i++) {
		w[i] = hog_kill_time();
		printf("oomempty: hog killed after %.2f s beside %d TiB of empty volatile ranges\n",
		    w[i], tib);
	}
	with = w[0] > w[1] ? (w[1] > w[2] ? w[1] : (w[0] > w[2] ? w[2] : w[0])) :
			     (w[0] > w[2] ? w[0] : (w[1] > w[2] ? w[2] : w[1]));
	printf("oomempty: median %.2f s (%.2fx; vrange OOM notifier calls %ld, oom_waits %ld)\n",
	    with, with / base, counter("oom_calls") - ocalls, counter_or("oom_waits", -1));
	CHECK(waitpid(holder, &st, WNOHANG) == 0, "the holder died (status %#x)", st);
	kill(holder, SIGKILL);
	CHECK(waitpid(holder, &st, 0) == holder, "waitpid holder");
	close(pfd[0]);
	/* the reference: the slower of two runs without (TCG timing is noisy) */
	after = hog_kill_time();
	printf("oomempty: hog killed after %.2f s without them again\n", after);
	if (after > base)
		base = after;
	CHECK(with < 2 * base, "empty volatile ranges slowed the OOM kill: %.2f s vs %.2f s",
	    with, base);
	leak_check();
	printf("oomempty: ok\n");
}

/*
 * @n single-page volatile ranges (every other page) by an unprivileged
 * process, a quarter of them resident, then purges and exit.  The node
 * bound must hold: marking fails with ENOSPC once the file holds
 * max_ranges nodes (nothing else), the live node count never exceeds it,
 * and purging and tearing down what is there is quick (no lockup).
 */
static void
t_manyranges(long n)
{
	long cap = param("max_ranges"), res[4], nodes, nodes0;
	int rp[2], gp[2], st;
	double t0, tpurge, tdrop, texit;
	pid_t pid;
	char c;

	cur_test = "manyranges";
	printf("manyranges: %ld ranges, max_ranges %ld\n", n, cap);
	nodes0 = counter_or("range_nodes", 0);
	CHECK(pipe(rp) == 0 && pipe(gp) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		long i, ok = 0, nospc = 0, other = 0, first_err = 0;
		int fd;
		char *p;

		close(rp[0]);
		close(gp[1]);
		as_nobody();
		fd = open_fd(MEMCOOP_FEATURE_VRANGE);
		p = map(fd, (size_t)n * 2 * PG, 0);
		for (i = 0; i < n; i++) {
			int e;

			if (i % 4 == 0 && i < 65536)
				p[(size_t)i * 2 * PG] = 1;
			e = vr(fd, p + (size_t)i * 2 * PG, PG, MEMCOOP_VRANGE_VOLATILE, NULL);
			if (e == 0)
				ok++;
			else if (e == ENOSPC)
				nospc++;
			else
				other++;
			if (e && !first_err)
				first_err = e;
		}
		/* at the cap, taking a whole range back needs no node: allowed */
		if (vr(fd, p, PG, MEMCOOP_VRANGE_NONVOLATILE, NULL) != 0)
			other++;
		res[0] = ok;
		res[1] = nospc;
		res[2] = other;
		res[3] = first_err;
		if (write(rp[1], res, sizeof(res)) != sizeof(res))
			_exit(4);
		(void)read(gp[0], &c, 1);	/* parent says exit */
		_exit(0);
	}
	close(rp[1]);
	close(gp[0]);
	CHECK(read(rp[0], res, sizeof(res)) == sizeof(res), "child failed");
	nodes = counter_or("range_nodes", -1) - nodes0;
	printf("manyranges: %ld marked, %ld ENOSPC, %ld other errors (first %s); "
	    "max_ranges %ld, live nodes %ld\n", res[0], res[1], res[2],
	    res[3] ? strerror((int)res[3]) : "none", cap, nodes);

	t0 = now_s();
	purge(1UL << 20);
	tpurge = now_s() - t0;
	t0 = now_s();
	write_file("/proc/sys/vm/drop_caches", "3");
	tdrop = now_s() - t0;
	t0 = now_s();
	CHECK(write(gp[1], "x", 1) == 1, "release child");
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child status %#x", st);
	leak_check();
	texit = now_s() - t0;
	printf("manyranges: balloon purge %.2f s, drop_caches %.2f s, exit and teardown %.2f s\n",
	    tpurge, tdrop, texit);
	CHECK(res[2] == 0, "errors other than ENOSPC (first: %s)", strerror((int)res[3]));
	CHECK(res[0] + res[1] == n, "calls lost");
	CHECK(cap < n && res[1] > 0, "%ld ranges in one file and no ENOSPC: nodes unbounded", n);
	CHECK(res[0] <= cap, "%ld ranges marked beyond max_ranges %ld", res[0], cap);
	CHECK(nodes <= cap, "%ld live nodes beyond max_ranges %ld", nodes, cap);
	CHECK(counter_or("range_nodes", 0) == nodes0, "nodes left after exit: %ld",
	    counter("range_nodes") - nodes0);
	CHECK(tpurge < 10 && tdrop < 10 && texit < 10, "a purge or the teardown took too long");
	close(rp[0]);
	close(gp[1]);
	printf("manyranges: ok\n");
}

/*
 * An unprivileged PURGE_SOON subscriber that rescues every range and marks
 * it volatile again at once: the balloon's purge path must still finish
 * within the relay's deadline (relay_deadline_ms) plus a margin for a
 * loaded TCG host, not loop pass after pass.
 */
static void
t_rescueloop(void)
{
	long deadline = param("relay_deadline_ms"), resc0 = counter("rescued_in_grace");
	int rp[2], st;
	double t0, took;
	pid_t pid;
	char c;

	cur_test = "rescueloop";
	set_grace(50);
	CHECK(pipe(rp) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		int fd = open_fd(MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_RESIDENCE_EVENTS);
		struct memcoop_subscribe sub = { .events = 1ULL << MEMCOOP_EVENT_PURGE_SOON };
		size_t len = 16 * PG;
		struct memcoop_event ev;
		char *p;

		close(rp[0]);
		as_nobody();
		p = map(fd, len, 0);
		fill(p, len, 3);
		if (ioctl(fd, MEMCOOP_IOC_SUBSCRIBE, &sub) != 0)
			_exit(3);
		vol(fd, p, len);
		if (write(rp[1], "r", 1) != 1)
			_exit(4);
		for (;;) {
			if (!next_event(fd, &ev, 60000))
				_exit(6);
			if (ev.type != MEMCOOP_EVENT_PURGE_SOON)
				continue;
			if (nonvol(fd, p, len))
				fill(p, len, 3);	/* lost the race: refill */
			vol(fd, p, len);
		}
	}
	close(rp[1]);
	CHECK(read(rp[0], &c, 1) == 1, "subscriber failed to start");
	t0 = now_s();
	purge(1UL << 20);
	took = now_s() - t0;
	printf("rescueloop: balloon purge took %.3f s against a rescue-and-remark subscriber "
	    "(%ld rescues; relay_deadline_ms %ld, grace_ms 50)\n", took,
	    counter("rescued_in_grace") - resc0, deadline);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st), "subscriber died early (%#x)", st);
	close(rp[0]);
	set_grace(5);
	CHECK(counter("rescued_in_grace") > resc0, "the subscriber never rescued: loop not tested");
	CHECK(took < (double)deadline / 1000 + 1.0, "the purge looped %.3f s (deadline %ld ms)",
	    took, deadline);
	leak_check();
	printf("rescueloop: ok\n");
}

/* A "name value" counter of @path; the test fails without it. */
static long
kv(const char *path, const char *name)
{
	long v;

	if (kvstat_read(path, name, &v) != 0)
		FAIL("%s %s: %s", path, name, strerror(errno));
	return v;
}

/*
 * A relay client (nobody, priority MEMCOOP_PRIO_UNPRIV, 4 MiB resident):
 * writes 'C' to @wfd for every CRITICAL shrink request, 's' for any other,
 * and answers each with 0 pages.  Runs until killed.
 */
static void
oomorder_client(int wfd)
{
	int fd = open_fd(MEMCOOP_FEATURE_RELAY);
	struct memcoop_register reg = { .priority = MEMCOOP_PRIO_UNPRIV, .reclaimable = 1024 };
	struct memcoop_event ev;
	char *own = malloc(4 << 20);

	as_nobody();
	if (own == NULL)
		_exit(3);
	memset(own, 1, 4 << 20);
	memcpy(reg.name, "oomorder", 9);
	if (ioctl(fd, MEMCOOP_IOC_REGISTER, &reg) != 0)
		_exit(4);
	if (write(wfd, "r", 1) != 1)
		_exit(5);
	for (;;) {
		struct memcoop_answer ans = { 0 };

		if (!next_event(fd, &ev, 60000))
			_exit(6);
		if (ev.type != MEMCOOP_EVENT_SHRINK)
			continue;
		if (write(wfd, ev.shrink.level == MEMCOOP_LEVEL_CRITICAL ? "C" : "s", 1) != 1)
			_exit(7);
		ans.seq = ev.seq;
		(void)ioctl(fd, MEMCOOP_IOC_ANSWER, &ans);
	}
}

#define OO_CHUNK	(4UL << 20)

/*
 * The volatile memory (nobody): @n chunks of 4 MiB, each followed by a
 * non-volatile page so that they stay separate ranges (an OOM purge takes
 * a few, not all).  'r' on @wfd when ready; then sleeps until killed.
 */
static void
oomorder_holder(int wfd, size_t n)
{
	int fd = open_fd(MEMCOOP_FEATURE_VRANGE);
	size_t step = OO_CHUNK + PG, i;
	char *p;

	as_nobody();
	p = map(fd, n * step, 0);
	for (i = 0; i < n; i++) {
		fill(p + i * step, step, (unsigned int)i);
		vol(fd, p + i * step, OO_CHUNK);
	}
	if (write(wfd, "r", 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

/* Read the client's reports so far: *@crit CRITICAL requests, *@other others. */
static void
oomorder_drain(int rfd, int *crit, int *other)
{
	char buf[256];
	ssize_t n, i;

	while ((n = read(rfd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++) {
			if (buf[i] == 'C')
				(*crit)++;
			else if (buf[i] == 's')
				(*other)++;
		}
}

/*
 * The OOM notifiers' order: with volatile memory left when OOM strikes,
 * the purge (it costs nobody anything) runs first and ends the chain: no
 * CRITICAL shrink request reaches a registered relay client, the relay's
 * OOM notifier is not even called, and nothing is killed.  First a manual
 * OOM (sysrq f runs the notifier chain, then kills whoever is worst: a
 * sacrificial child), then a real shortage: a child takes more than is
 * available beside the volatile memory, and must survive.
 */
static void
t_oomorder(void)
{
	long avail = meminfo_kib("MemAvailable:") / 1024, oomk0, ocalls0, op0, amb;
	size_t n = (size_t)avail / 2 / 4;
	int cp[2], hp[2], crit = 0, other = 0, st;
	pid_t client, holder, victim, hog;
	char c;

	cur_test = "oomorder";
	write_file("/proc/sys/kernel/sysrq", "1");
	set_oom_adj("-1000");		/* the children inherit it: only the victims die */
	CHECK(pipe(cp) == 0 && pipe(hp) == 0, "pipe");
	if ((client = fork()) == 0) {
		close(cp[0]);
		oomorder_client(cp[1]);
	}
	if ((holder = fork()) == 0) {
		close(hp[0]);
		oomorder_holder(hp[1], n);
	}
	close(cp[1]);
	close(hp[1]);
	CHECK(read(cp[0], &c, 1) == 1 && read(hp[0], &c, 1) == 1, "client or holder failed");
	CHECK(fcntl(cp[0], F_SETFL, O_NONBLOCK) == 0, "fcntl");
	printf("oomorder: %zu MiB volatile in %zu ranges (%ld resident), relay client registered\n",
	    n * 4, n, counter("volatile_resident"));

	/* 1. the chain alone */
	if ((victim = fork()) == 0) {
		set_oom_adj("1000");
		for (;;)
			pause();
	}
	op0 = counter("purged_pages_oom");
	ocalls0 = kv(DBG "relay", "oom_calls");
	write_file("/proc/sysrq-trigger", "f");
	CHECK(waitpid(victim, &st, 0) == victim && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "the sacrificial child was not OOM-killed (%#x)", st);
	usleep(200000);
	oomorder_drain(cp[0], &crit, &other);
	printf("oomorder: sysrq OOM: %ld pages purged for OOM, relay OOM calls +%ld, "
	    "%d CRITICAL and %d other requests\n", counter("purged_pages_oom") - op0,
	    kv(DBG "relay", "oom_calls") - ocalls0, crit, other);
	CHECK(counter("purged_pages_oom") > op0, "the OOM notifier chain purged nothing");
	CHECK(kv(DBG "relay", "oom_calls") == ocalls0,
	    "the relay's OOM notifier ran although the purge had freed memory");
	CHECK(crit == 0, "%d CRITICAL requests reached the client beside volatile memory", crit);

	/* 2. a real shortage */
	oomk0 = kv("/proc/vmstat", "oom_kill");
	amb = meminfo_kib("MemAvailable:") / 1024 - 16 + (long)counter("volatile_resident") / 512;
	if ((hog = fork()) == 0) {
		size_t len = (size_t)amb << 20, j;
		char *a;

		set_oom_adj("0");
		a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a == MAP_FAILED)
			_exit(2);
		for (j = 0; j < len; j += PG)
			a[j] = 1;
		_exit(0);
	}
	CHECK(waitpid(hog, &st, 0) == hog, "waitpid");
	usleep(200000);
	oomorder_drain(cp[0], &crit, &other);
	printf("oomorder: a child took %ld MiB: status %#x, OOM kills +%ld, relay OOM calls +%ld, "
	    "%d CRITICAL and %d other requests, %ld resident volatile left\n", amb, st,
	    kv("/proc/vmstat", "oom_kill") - oomk0, kv(DBG "relay", "oom_calls") - ocalls0,
	    crit, other, counter("volatile_resident"));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the allocating child did not survive (%#x)",
	    st);
	CHECK(kv("/proc/vmstat", "oom_kill") == oomk0, "OOM kill beside volatile memory");
	CHECK(crit == 0, "%d CRITICAL requests reached the client beside volatile memory", crit);

	kill(client, SIGKILL);
	kill(holder, SIGKILL);
	CHECK(waitpid(client, &st, 0) == client && WIFSIGNALED(st), "client died early (%#x)", st);
	CHECK(waitpid(holder, &st, 0) == holder && WIFSIGNALED(st), "holder died early (%#x)", st);
	close(cp[0]);
	close(hp[0]);
	set_oom_adj("0");
	leak_check();
	printf("oomorder: ok\n");
}

#define THP_SHMEM "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/*
 * With shmem THP turned on by the administrator ("always") after a range
 * was purged, and an unprivileged caller asking for huge pages
 * (MADV_HUGEPAGE, MADV_COLLAPSE) and touching a page beside the hole in
 * the same 2 MiB, the purged range must stay a hole: no page appears in it
 * (residence), and touching it raises SIGBUS.
 */
static void
t_thp(void)
{
	char old[128], *o, *e;
	int fd, st, pp[2], gp[2];
	ssize_t n;
	pid_t pid;
	char c;

	cur_test = "thp";
	fd = open(THP_SHMEM, O_RDONLY);
	CHECK(fd != -1, "open %s: %s", THP_SHMEM, strerror(errno));
	n = read(fd, old, sizeof(old) - 1);
	close(fd);
	CHECK(n > 0, "read %s", THP_SHMEM);
	old[n] = '\0';
	o = strchr(old, '[');
	e = o ? strchr(o, ']') : NULL;
	CHECK(o && e, "no current value in %s", old);
	*e = '\0';
	o++;
	write_file(THP_SHMEM, "always");
	{
		/* the control: plain shared memory does get huge pages here */
		size_t huge = 2UL << 20;
		long h0 = meminfo_kib("ShmemHugePages:");
		char *res = mmap(NULL, 2 * huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *q = (char *)(((uintptr_t)res + huge - 1) & ~(huge - 1));

		CHECK(res != MAP_FAILED, "mmap");
		CHECK(mmap(q, huge, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
		    -1, 0) == q, "mmap shared: %s", strerror(errno));
		q[0] = 1;
		printf("thp: ShmemHugePages %ld -> %ld kB for plain shared memory\n", h0,
		    meminfo_kib("ShmemHugePages:"));
		CHECK(meminfo_kib("ShmemHugePages:") > h0, "shmem THP does not work here: no control");
		munmap(res, 2 * huge);
	}
	/* small pages while the range is filled and purged, huge ones after */
	write_file(THP_SHMEM, "never");
	CHECK(pipe(pp) == 0 && pipe(gp) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		size_t huge = 2UL << 20, len = 2 * huge;
		uint8_t bits[128];
		char *res, *p, x;
		long r;

		close(pp[0]);
		close(gp[1]);
		as_nobody();
		catch_sigbus();
		fd = open_fd(MEMCOOP_FEATURE_VRANGE);
		res = mmap(NULL, len + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (res == MAP_FAILED)
			_exit(2);
		p = (char *)(((uintptr_t)res + huge - 1) & ~(huge - 1));
		if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != p)
			_exit(2);
		fill(p, huge / 2, 9);
		vol(fd, p, huge / 2);
		if (write(pp[1], "p", 1) != 1)	/* parent: purge it */
			_exit(4);
		if (read(gp[0], &x, 1) != 1)
			_exit(4);
		if (resid(fd, p, huge / 2, bits, sizeof(bits)) != 0)
			_exit(7);	/* the purge did not happen */
		(void)madvise(p, len, MADV_HUGEPAGE);
		p[huge / 2 + 44 * PG] = 1;		/* beside the hole, same 2 MiB */
		p[huge + 3 * PG] = 1;
		(void)madvise(p, len, MADV_COLLAPSE);
		printf("thp: ShmemHugePages %ld kB after touching beside the hole\n",
		    meminfo_kib("ShmemHugePages:"));
		r = resid(fd, p, huge / 2, bits, sizeof(bits));
		if (r != 0) {
			fprintf(stderr, "thp: %ld pages appeared in the purged hole\n", r);
			_exit(8);
		}
		if (try_read(p + 5 * PG, &x) != -1)
			_exit(9);	/* the hole reads instead of SIGBUS */
		_exit(0);
	}
	close(pp[1]);
	close(gp[0]);
	CHECK(read(pp[0], &c, 1) == 1, "child failed to set up");
	purge(1UL << 20);
	write_file(THP_SHMEM, "always");
	CHECK(write(gp[1], "g", 1) == 1, "resume child");
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	write_file(THP_SHMEM, o);
	close(pp[0]);
	close(gp[1]);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st,
	    WIFEXITED(st) && WEXITSTATUS(st) == 8 ? "pages in a purged hole" :
	    WIFEXITED(st) && WEXITSTATUS(st) == 9 ? "no SIGBUS in a purged hole" :
	    WIFEXITED(st) && WEXITSTATUS(st) == 7 ? "the purge did not happen" : "setup failed");
	leak_check();
	printf("thp: ok\n");
}

int
main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "semantics") == 0)
		t_semantics();
	else if (strcmp(cmd, "badargs") == 0)
		t_badargs();
	else if (strcmp(cmd, "fork") == 0)
		t_fork();
	else if (strcmp(cmd, "events") == 0)
		t_events();
	else if (strcmp(cmd, "threads") == 0) {
		cur_test = "threads";
		run_race(argc > 2 ? atoi(argv[2]) : 20, argc > 3 ? atoi(argv[3]) : 4,
		    argc > 4 ? atoi(argv[4]) : 0, 1, 0);
		printf("threads: ok\n");
	} else if (strcmp(cmd, "race") == 0) {
		cur_test = "race";
		run_race(argc > 2 ? atoi(argv[2]) : 60, argc > 3 ? atoi(argv[3]) : 4,
		    argc > 4 ? atoi(argv[4]) : 0, argc > 5 ? atoi(argv[5]) : 1, 1);
		printf("race: ok\n");
	} else if (strcmp(cmd, "alloc") == 0)
		t_alloc();
	else if (strcmp(cmd, "memcg") == 0)
		t_memcg();
	else if (strcmp(cmd, "pressure") == 0)
		t_pressure();
	else if (strcmp(cmd, "oomorder") == 0)
		t_oomorder();
	else if (strcmp(cmd, "oomempty") == 0)
		t_oomempty(argc > 2 ? atoi(argv[2]) : 64);
	else if (strcmp(cmd, "manyranges") == 0)
		t_manyranges(argc > 2 ? atol(argv[2]) : 100000);
	else if (strcmp(cmd, "rescueloop") == 0)
		t_rescueloop();
	else if (strcmp(cmd, "thp") == 0)
		t_thp();
	else if (strcmp(cmd, "fuzz") == 0)
		t_fuzz(argc > 2 ? atoi(argv[2]) : 30,
		    argc > 3 ? (unsigned int)atoi(argv[3]) : (unsigned int)time(NULL),
		    argc > 4 ? atoi(argv[4]) : 3, argc > 5 ? atoi(argv[5]) : 3);
	else {
		fprintf(stderr, "usage: mct-vrange semantics|badargs|fork|events|"
		    "pressure|oomorder|threads [s [n [bulk_mb]]]|race [s [n [bulk_mb [purger]]]]|alloc|memcg|"
		    "fuzz [s [seed]]\n");
		return 2;
	}
	return 0;
}
