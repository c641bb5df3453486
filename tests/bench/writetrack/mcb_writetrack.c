/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mcb-writetrack: cost of a write barrier per tracked write and per
 * harvested page, three ways, on the same heap size and write pattern:
 *
 *   memcoop    /dev/memcoop write tracking: arm, write (the driver logs
 *              the first write to each page, no signal), harvest+re-arm
 *   mprotect   the classic barrier: mprotect(PROT_READ) the heap, a
 *              SIGSEGV handler logs the page and mprotect()s it writable,
 *              harvest = the handler's log + mprotect(PROT_READ) again
 *   softdirty  echo 4 > /proc/self/clear_refs, write, scan
 *              /proc/self/pagemap for bit 55 (soft-dirty), clear again
 *   pagemap-scan  userfaultfd asynchronous write-protect
 *              (UFFD_FEATURE_WP_ASYNC) on a memfd mapping, harvest and
 *              re-protect in one PAGEMAP_SCAN ioctl (Linux 6.7+; where the
 *              kernel lacks it, the method says why and prints no BENCH
 *              line)
 *
 * The baselines run on /dev/memcoop memory too (a second fd without
 * write tracking), so every method writes the same kind of pages (shmem);
 * the mprotect barrier is also run on anonymous memory (mprotect-anon),
 * pagemap-scan on a memfd (userfaultfd registers only shmem's own
 * mappings).
 *
 *	mcb-writetrack [pages [writes-per-cycle [cycles [random|seq [label]]]]]
 *
 * random (the default) writes the chosen pages in random order, as a
 * mutator does; seq writes them in address order, the mprotect barrier's
 * best case (pages made writable next to each other merge back into one
 * VMA instead of splitting the heap into one VMA per page).  @label is
 * appended to the BENCH names (default "-seq" for seq, nothing else).
 *
 * Each method runs in a process of its own, set up once; the cycles
 * alternate between the methods in rotated order (cycle c starts with
 * method c mod 5), so that none is always first or last.
 *
 * Prints one "BENCH name=... value=... unit=... baseline=... ratio=..."
 * line per method and measure (median over the cycles; ratio is baseline
 * over value, so > 1 is cheaper than mprotect+SIGSEGV).  Every cycle
 * checks that each method reported exactly the pages written.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/userfaultfd.h>

#include <libmemcoop.h>

#include "../bench_median.h"

#define PM_SOFT_DIRTY	(1ULL << 55)

/* PAGEMAP_SCAN and asynchronous uffd-wp (Linux 6.7); Debian 12's headers predate them */
#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM	(1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY	1
#endif

static size_t ps, npages, nwrites, ncycles;
static int sequential;			/* write the chosen pages in address order */
static size_t *order;			/* pages written in a cycle */
static unsigned char *expect;		/* expect[p]: written this cycle */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A new random set of nwrites distinct pages, in random order. */
static void
pick(unsigned int *seed)
{
	size_t i, j, *all;

	all = malloc(npages * sizeof(*all));
	if (all == NULL)
		err(1, "malloc");
	for (i = 0; i < npages; i++)
		all[i] = i;
	for (i = 0; i < nwrites; i++) {
		size_t t;

		j = i + (size_t)rand_r(seed) % (npages - i);
		t = all[i];
		all[i] = all[j];
		all[j] = t;
	}
	memset(expect, 0, npages);
	for (i = 0; i < nwrites; i++)
		expect[all[i]] = 1;
	if (sequential) {
		for (i = j = 0; i < npages; i++)
			if (expect[i])
				order[j++] = i;
	} else {
		for (i = 0; i < nwrites; i++)
			order[i] = all[i];
	}
	free(all);
}

/* The mutator: one pointer-sized store into each chosen page. */
static void
mutate(char *heap, uint64_t v)
{
	size_t i;

	for (i = 0; i < nwrites; i++)
		*(volatile uint64_t *)(heap + order[i] * ps + (i % 64) * 8) = v + i;
}

static void
check(const char *method, char *heap, void **addrs, size_t n)
{
	unsigned char *seen = calloc(npages, 1);
	size_t i, p;

	if (n != nwrites)
		errx(1, "%s: %zu pages reported, %zu written", method, n, nwrites);
	for (i = 0; i < n; i++) {
		p = (size_t)((char *)addrs[i] - heap) / ps;
		if (p >= npages || !expect[p] || seen[p])
			errx(1, "%s: page %zu reported wrongly", method, p);
		seen[p] = 1;
	}
	free(seen);
}

static char *
map_heap(struct memcoop *mc)
{
	char *h;
	size_t i;

	if (mc != NULL)
		h = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE, MAP_SHARED,
		    memcoop_fd(mc), 0);
	else
		h = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED)
		err(1, "mmap");
	for (i = 0; i < npages; i++)	/* the heap is in use: all pages present */
		h[i * ps] = 1;
	return h;
}

/*
 * One method: its heap and state, set up once; then one cycle (write the
 * chosen pages, harvest) at a time, the methods taking turns in rotated
 * order, so that none always runs first (cold caches) or last.
 */
struct method {
	const char *name;
	void (*setup)(struct method *);
	void (*cycle)(struct method *, uint64_t *wr, uint64_t *hv);
	const char *unavailable;	/* why the method cannot run here, or NULL */
	unsigned int seed;		/* the same write sets for every method */
	struct memcoop *mc;
	char *heap;
	void **addrs;
	void **log;			/* mprotect: the SIGSEGV handler's log */
	size_t nlog;
	int anon;
	int fd1, fd2;			/* softdirty: clear_refs, pagemap */
	uint64_t *pm;
	uint64_t *wr, *hv;		/* per cycle, ns */
};

/* the mprotect method whose heap is being written (for the handler) */
static struct method *volatile mp_cur;

static void
memcoop_setup(struct method *m)
{
	if ((m->mc = memcoop_open(MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_WTRACK)) == NULL)
		err(1, "memcoop_open");
	m->heap = map_heap(m->mc);
	if (memcoop_wt_arm_range(m->mc, m->heap, npages * ps) == -1)
		err(1, "memcoop_wt_arm_range");
}

static void
memcoop_cycle(struct method *m, uint64_t *wr, uint64_t *hv)
{
	uint64_t t0, t1, t2;
	size_t rem;
	ssize_t n;

	t0 = now_ns();
	mutate(m->heap, *wr);
	t1 = now_ns();
	n = memcoop_wt_harvest(m->mc, m->addrs, npages, MEMCOOP_WT_REARM, &rem);
	t2 = now_ns();
	if (n == -1)
		err(1, "memcoop_wt_harvest");
	check(m->name, m->heap, m->addrs, (size_t)n);
	*wr = t1 - t0;
	*hv = t2 - t1;
}

static void
on_segv(int sig, siginfo_t *si, void *uc)
{
	struct method *m = mp_cur;
	char *p = (char *)((uintptr_t)si->si_addr & ~(uintptr_t)(ps - 1));

	(void)sig;
	(void)uc;
	if (m == NULL || p < m->heap || p >= m->heap + npages * ps)
		abort();
	m->log[m->nlog++] = p;
	if (mprotect(p, ps, PROT_READ | PROT_WRITE) == -1)
		abort();
}

static void
mprotect_setup(struct method *m)
{
	if (!m->anon && (m->mc = memcoop_open(MEMCOOP_FEATURE_VRANGE)) == NULL)
		err(1, "memcoop_open");
	m->heap = map_heap(m->mc);
	m->log = calloc(npages, sizeof(*m->log));
	if (m->log == NULL)
		err(1, "calloc");
	if (mprotect(m->heap, npages * ps, PROT_READ) == -1)
		err(1, "mprotect");
}

static void
mprotect_cycle(struct method *m, uint64_t *wr, uint64_t *hv)
{
	uint64_t t0, t1, t2;
	size_t i, n;

	mp_cur = m;
	t0 = now_ns();
	mutate(m->heap, *wr);
	t1 = now_ns();
	/* harvest: take the log, write-protect the heap again */
	n = m->nlog;
	for (i = 0; i < n; i++)
		m->addrs[i] = m->log[i];
	m->nlog = 0;
	if (mprotect(m->heap, npages * ps, PROT_READ) == -1)
		err(1, "mprotect");
	t2 = now_ns();
	mp_cur = NULL;
	check(m->name, m->heap, m->addrs, n);
	*wr = t1 - t0;
	*hv = t2 - t1;
}

static void
clear_refs(int fd)
{
	if (pwrite(fd, "4", 1, 0) != 1)
		err(1, "/proc/self/clear_refs");
}

static void
softdirty_setup(struct method *m)
{
	if ((m->mc = memcoop_open(MEMCOOP_FEATURE_VRANGE)) == NULL)
		err(1, "memcoop_open");
	m->heap = map_heap(m->mc);
	m->pm = calloc(npages, sizeof(*m->pm));
	if (m->pm == NULL)
		err(1, "calloc");
	if ((m->fd1 = open("/proc/self/clear_refs", O_WRONLY)) == -1)
		err(1, "/proc/self/clear_refs");
	if ((m->fd2 = open("/proc/self/pagemap", O_RDONLY)) == -1)
		err(1, "/proc/self/pagemap");
	clear_refs(m->fd1);
}

/*
 * clear_refs clears the soft-dirty bits of the whole process, the other
 * methods' heaps included: the price of the method, paid in its harvest.
 */
static void
softdirty_cycle(struct method *m, uint64_t *wr, uint64_t *hv)
{
	off_t off = (off_t)((uintptr_t)m->heap / ps * sizeof(uint64_t));
	size_t i, n, want = npages * sizeof(*m->pm);
	uint64_t t0, t1, t2;

	t0 = now_ns();
	mutate(m->heap, *wr);
	t1 = now_ns();
	if (pread(m->fd2, m->pm, want, off) != (ssize_t)want)
		err(1, "/proc/self/pagemap");
	for (i = n = 0; i < npages; i++)
		if (m->pm[i] & PM_SOFT_DIRTY)
			m->addrs[n++] = m->heap + i * ps;
	clear_refs(m->fd1);
	t2 = now_ns();
	check(m->name, m->heap, m->addrs, n);
	*wr = t1 - t0;
	*hv = t2 - t1;
}

/*
 * userfaultfd with asynchronous write-protect: the kernel resolves a
 * write to a protected page itself (no message, no signal) and the page
 * reads as PAGE_IS_WRITTEN in PAGEMAP_SCAN until protected again.
 */
static int
uffd_open(void)
{
	struct uffdio_api api;
	int fd;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd == -1)
		return -1;
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if (ioctl(fd, UFFDIO_API, &api) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Why pagemap-scan cannot run on this kernel, or NULL. */
static const char *
pmscan_probe(void)
{
	static char why[128];
	struct pm_scan_arg a;
	int fd;

	if ((fd = uffd_open()) == -1) {
		snprintf(why, sizeof(why), "userfaultfd with UFFD_FEATURE_WP_ASYNC: %s (Linux 6.7+)",
		    strerror(errno));
		return why;
	}
	close(fd);
	if ((fd = open("/proc/self/pagemap", O_RDONLY)) == -1)
		err(1, "/proc/self/pagemap");
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.start = a.end = 0;
	if (ioctl(fd, PAGEMAP_SCAN, &a) == -1 && errno == ENOTTY) {
		snprintf(why, sizeof(why), "no PAGEMAP_SCAN ioctl on /proc/self/pagemap (Linux 6.7+)");
		close(fd);
		return why;
	}
	close(fd);
	return NULL;
}

static void
pmscan_setup(struct method *m)
{
	struct uffdio_register reg;
	struct uffdio_writeprotect wp;
	size_t i;
	int mfd;

	if ((mfd = memfd_create("mcb-writetrack", MFD_CLOEXEC)) == -1)
		err(1, "memfd_create");
	if (ftruncate(mfd, (off_t)(npages * ps)) == -1)
		err(1, "ftruncate");
	m->heap = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (m->heap == MAP_FAILED)
		err(1, "mmap memfd");
	close(mfd);
	for (i = 0; i < npages; i++)
		m->heap[i * ps] = 1;
	if ((m->fd1 = uffd_open()) == -1)
		err(1, "userfaultfd");
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)m->heap;
	reg.range.len = npages * ps;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(m->fd1, UFFDIO_REGISTER, &reg) == -1)
		err(1, "UFFDIO_REGISTER");
	memset(&wp, 0, sizeof(wp));
	wp.range = reg.range;
	wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	if (ioctl(m->fd1, UFFDIO_WRITEPROTECT, &wp) == -1)
		err(1, "UFFDIO_WRITEPROTECT");
	if ((m->fd2 = open("/proc/self/pagemap", O_RDONLY)) == -1)
		err(1, "/proc/self/pagemap");
	/* the region vector: at worst one region per page */
	m->pm = calloc(npages, sizeof(struct page_region));
	if (m->pm == NULL)
		err(1, "calloc");
}

static void
pmscan_cycle(struct method *m, uint64_t *wr, uint64_t *hv)
{
	struct page_region *r = (struct page_region *)m->pm;
	struct pm_scan_arg a;
	uint64_t t0, t1, t2, p;
	size_t n = 0;
	long k, i;

	t0 = now_ns();
	mutate(m->heap, *wr);
	t1 = now_ns();
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
	a.start = (uintptr_t)m->heap;
	a.end = a.start + npages * ps;
	a.vec = (uintptr_t)r;
	a.vec_len = npages;
	a.category_mask = PAGE_IS_WRITTEN;
	a.return_mask = PAGE_IS_WRITTEN;
	do {
		if ((k = ioctl(m->fd2, PAGEMAP_SCAN, &a)) == -1)
			err(1, "PAGEMAP_SCAN");
		for (i = 0; i < k; i++)
			for (p = r[i].start; p < r[i].end && n < npages; p += ps)
				m->addrs[n++] = (void *)(uintptr_t)p;
		a.start = a.walk_end;
	} while (a.walk_end < a.end);
	t2 = now_ns();
	check(m->name, m->heap, m->addrs, n);
	*wr = t1 - t0;
	*hv = t2 - t1;
}

static struct method methods[] = {
	{ .name = "memcoop", .setup = memcoop_setup, .cycle = memcoop_cycle },
	{ .name = "softdirty", .setup = softdirty_setup, .cycle = softdirty_cycle },
	{ .name = "mprotect", .setup = mprotect_setup, .cycle = mprotect_cycle },
	{ .name = "mprotect-anon", .setup = mprotect_setup, .cycle = mprotect_cycle, .anon = 1 },
	{ .name = "pagemap-scan", .setup = pmscan_setup, .cycle = pmscan_cycle },
};
#define NMETHODS	(sizeof(methods) / sizeof(methods[0]))
#define BASELINE	2	/* mprotect */

/*
 * Each method runs in a process of its own (clear_refs and pagemap see
 * the whole process: another method's heap would change their cost),
 * set up once; then cycle c runs method (c + k) % NMETHODS k-th, each
 * child doing one cycle when told and answering with its two times.
 */
static void
child(struct method *m, int in, int out)
{
	struct sigaction sa;
	uint64_t c, t[2];

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	m->seed = 42;
	m->addrs = calloc(npages, sizeof(*m->addrs));
	if (m->addrs == NULL)
		err(1, "calloc");
	m->setup(m);
	while (read(in, &c, sizeof(c)) == (ssize_t)sizeof(c)) {
		pick(&m->seed);
		t[0] = c;		/* the value the mutator stores */
		m->cycle(m, &t[0], &t[1]);
		if (write(out, t, sizeof(t)) != (ssize_t)sizeof(t))
			err(1, "write");
	}
	_exit(0);
}

static void
run_all(void)
{
	int to[NMETHODS], from[NMETHODS], p1[2], p2[2], st;
	struct method *m;
	uint64_t t[2], c;
	size_t k;
	pid_t pid;

	for (k = 0; k < NMETHODS; k++) {
		m = &methods[k];
		m->wr = calloc(ncycles, sizeof(*m->wr));
		m->hv = calloc(ncycles, sizeof(*m->hv));
		if (m->wr == NULL || m->hv == NULL)
			err(1, "calloc");
		if (m->unavailable != NULL)
			continue;
		if (pipe(p1) == -1 || pipe(p2) == -1)
			err(1, "pipe");
		fflush(stdout);
		if ((pid = fork()) == -1)
			err(1, "fork");
		if (pid == 0) {
			close(p1[1]);
			close(p2[0]);
			child(m, p1[0], p2[1]);
		}
		close(p1[0]);
		close(p2[1]);
		to[k] = p1[1];
		from[k] = p2[0];
	}
	for (c = 0; c < ncycles; c++) {
		for (k = 0; k < NMETHODS; k++) {
			size_t i = (c + k) % NMETHODS;

			if (methods[i].unavailable != NULL)
				continue;
			if (write(to[i], &c, sizeof(c)) != (ssize_t)sizeof(c) ||
			    read(from[i], t, sizeof(t)) != (ssize_t)sizeof(t))
				errx(1, "%s: cycle %llu failed", methods[i].name,
				    (unsigned long long)c);
			methods[i].wr[c] = t[0];
			methods[i].hv[c] = t[1];
		}
	}
	for (k = 0; k < NMETHODS; k++) {
		if (methods[k].unavailable != NULL)
			continue;
		close(to[k]);
		close(from[k]);
	}
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			errx(1, "a method's process failed");
}

static void
bench_line(const char *name, double value, double baseline)
{
	printf("BENCH name=%s value=%.1f unit=ns baseline=%.1f ratio=%.2f\n",
	    name, value, baseline, baseline / value);
}

int
main(int argc, char *argv[])
{
	double w[NMETHODS], h[NMETHODS];
	const char *sfx;
	char name[64];
	size_t m, k;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ps = (size_t)sysconf(_SC_PAGESIZE);
	npages = argc > 1 ? strtoul(argv[1], NULL, 0) : 4096;
	nwrites = argc > 2 ? strtoul(argv[2], NULL, 0) : npages / 4;
	ncycles = argc > 3 ? strtoul(argv[3], NULL, 0) : 15;
	sequential = argc > 4 && strcmp(argv[4], "seq") == 0;
	if (npages == 0 || nwrites == 0 || nwrites > npages || ncycles == 0 ||
	    (argc > 4 && !sequential && strcmp(argv[4], "random") != 0))
		errx(2, "usage: mcb-writetrack [pages [writes-per-cycle [cycles [random|seq [label]]]]]");
	order = calloc(nwrites, sizeof(*order));
	expect = calloc(npages, 1);
	printf("heap %zu pages, %zu distinct pages written per cycle in %s order, %zu cycles, "
	    "methods in rotated order\n", npages, nwrites, sequential ? "address" : "random",
	    ncycles);

	methods[NMETHODS - 1].unavailable = pmscan_probe();
	run_all();
	for (m = 0; m < NMETHODS; m++) {
		if (methods[m].unavailable != NULL) {
			printf("%-14s unavailable: %s\n", methods[m].name, methods[m].unavailable);
			continue;
		}
		w[m] = bench_median(methods[m].wr, ncycles) / (double)nwrites;
		h[m] = bench_median(methods[m].hv, ncycles) / (double)nwrites;
		printf("%-14s %9.1f ns per tracked write, %9.1f ns per harvested page\n",
		    methods[m].name, w[m], h[m]);
	}
	sfx = argc > 5 ? argv[5] : sequential ? "-seq" : "";
	for (k = 0; k < 3; k++) {
		static const char *what[] = { "write", "harvest", "cycle" };

		for (m = 0; m < NMETHODS; m++) {
			if (methods[m].unavailable != NULL)
				continue;
			snprintf(name, sizeof(name), "writetrack.%s.%s%s", what[k],
			    methods[m].name, sfx);
			if (k == 0)
				bench_line(name, w[m], w[BASELINE]);
			else if (k == 1)
				bench_line(name, h[m], h[BASELINE]);
			else
				bench_line(name, w[m] + h[m], w[BASELINE] + h[BASELINE]);
		}
	}
	return 0;
}
