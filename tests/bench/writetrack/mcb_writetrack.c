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
 *
 * The baselines run on /dev/memcoop memory too (a second fd without
 * write tracking), so every method writes the same kind of pages; the
 * mprotect barrier is also run on anonymous memory (mprotect-anon).
 *
 *	mcb-writetrack [pages [writes-per-cycle [cycles [random|seq [label]]]]]
 *
 * random (the default) writes the chosen pages in random order, as a
 * mutator does; seq writes them in address order, the mprotect barrier's
 * best case (pages made writable next to each other merge back into one
 * VMA instead of splitting the heap into one VMA per page).  @label is
 * appended to the BENCH names (default "-seq" for seq, nothing else).
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
#include <sys/mman.h>

#include <libmemcoop.h>

#include "../bench_median.h"

#define PM_SOFT_DIRTY	(1ULL << 55)

static size_t ps, npages, nwrites, ncycles;
static int sequential;			/* write the chosen pages in address order */
static size_t *order;			/* pages written in a cycle */
static unsigned char *expect;		/* expect[p]: written this cycle */

/* mprotect barrier state, used by the signal handler */
static char *mp_heap;
static void **mp_log;
static volatile size_t mp_n;

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

static void
run_memcoop(uint64_t *wr, uint64_t *hv)
{
	struct memcoop *mc;
	void **addrs;
	char *heap;
	size_t c, rem;
	unsigned int seed = 42;
	uint64_t t0, t1, t2;
	ssize_t n;

	if ((mc = memcoop_open(MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_WTRACK)) == NULL)
		err(1, "memcoop_open");
	heap = map_heap(mc);
	addrs = calloc(npages, sizeof(*addrs));
	if (memcoop_wt_arm_range(mc, heap, npages * ps) == -1)
		err(1, "memcoop_wt_arm_range");
	for (c = 0; c < ncycles; c++) {
		pick(&seed);
		t0 = now_ns();
		mutate(heap, c);
		t1 = now_ns();
		n = memcoop_wt_harvest(mc, addrs, npages, MEMCOOP_WT_REARM, &rem);
		t2 = now_ns();
		if (n == -1)
			err(1, "memcoop_wt_harvest");
		check("memcoop", heap, addrs, (size_t)n);
		wr[c] = t1 - t0;
		hv[c] = t2 - t1;
	}
	munmap(heap, npages * ps);
	memcoop_close(mc);
	free(addrs);
}

static void
on_segv(int sig, siginfo_t *si, void *uc)
{
	char *p = (char *)((uintptr_t)si->si_addr & ~(uintptr_t)(ps - 1));

	(void)sig;
	(void)uc;
	if (p < mp_heap || p >= mp_heap + npages * ps)
		abort();
	mp_log[mp_n++] = p;
	if (mprotect(p, ps, PROT_READ | PROT_WRITE) == -1)
		abort();
}

static void
run_mprotect(uint64_t *wr, uint64_t *hv, int anon)
{
	struct memcoop *mc = NULL;
	struct sigaction sa, old;
	void **addrs;
	size_t c, i, n;
	unsigned int seed = 42;
	uint64_t t0, t1, t2;

	if (!anon && (mc = memcoop_open(MEMCOOP_FEATURE_VRANGE)) == NULL)
		err(1, "memcoop_open");
	mp_heap = map_heap(mc);
	mp_log = calloc(npages, sizeof(*mp_log));
	addrs = calloc(npages, sizeof(*addrs));
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, &old);
	if (mprotect(mp_heap, npages * ps, PROT_READ) == -1)
		err(1, "mprotect");
	for (c = 0; c < ncycles; c++) {
		pick(&seed);
		t0 = now_ns();
		mutate(mp_heap, c);
		t1 = now_ns();
		/* harvest: take the log, write-protect the heap again */
		n = mp_n;
		for (i = 0; i < n; i++)
			addrs[i] = mp_log[i];
		mp_n = 0;
		if (mprotect(mp_heap, npages * ps, PROT_READ) == -1)
			err(1, "mprotect");
		t2 = now_ns();
		check(anon ? "mprotect-anon" : "mprotect", mp_heap, addrs, n);
		wr[c] = t1 - t0;
		hv[c] = t2 - t1;
	}
	sigaction(SIGSEGV, &old, NULL);
	munmap(mp_heap, npages * ps);
	if (mc != NULL)
		memcoop_close(mc);
	free(mp_log);
	free(addrs);
}

static void
clear_refs(int fd)
{
	if (pwrite(fd, "4", 1, 0) != 1)
		err(1, "/proc/self/clear_refs");
}

static void
run_softdirty(uint64_t *wr, uint64_t *hv)
{
	struct memcoop *mc;
	uint64_t *pm, t0, t1, t2;
	void **addrs;
	char *heap;
	size_t c, i, n, want;
	unsigned int seed = 42;
	int crfd, pmfd;
	off_t off;

	if ((mc = memcoop_open(MEMCOOP_FEATURE_VRANGE)) == NULL)
		err(1, "memcoop_open");
	heap = map_heap(mc);
	pm = calloc(npages, sizeof(*pm));
	addrs = calloc(npages, sizeof(*addrs));
	if ((crfd = open("/proc/self/clear_refs", O_WRONLY)) == -1)
		err(1, "/proc/self/clear_refs");
	if ((pmfd = open("/proc/self/pagemap", O_RDONLY)) == -1)
		err(1, "/proc/self/pagemap");
	off = (off_t)((uintptr_t)heap / ps * sizeof(uint64_t));
	want = npages * sizeof(*pm);
	clear_refs(crfd);
	for (c = 0; c < ncycles; c++) {
		pick(&seed);
		t0 = now_ns();
		mutate(heap, c);
		t1 = now_ns();
		if (pread(pmfd, pm, want, off) != (ssize_t)want)
			err(1, "/proc/self/pagemap");
		for (i = n = 0; i < npages; i++)
			if (pm[i] & PM_SOFT_DIRTY)
				addrs[n++] = heap + i * ps;
		clear_refs(crfd);
		t2 = now_ns();
		check("softdirty", heap, addrs, n);
		wr[c] = t1 - t0;
		hv[c] = t2 - t1;
	}
	close(crfd);
	close(pmfd);
	munmap(heap, npages * ps);
	memcoop_close(mc);
	free(pm);
	free(addrs);
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
	static const char *names[] = { "memcoop", "softdirty", "mprotect", "mprotect-anon" };
	uint64_t *wr, *hv;
	double w[4], h[4];
	const char *sfx;
	char name[64];
	int m;

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
	wr = calloc(ncycles, sizeof(*wr));
	hv = calloc(ncycles, sizeof(*hv));
	printf("heap %zu pages, %zu distinct pages written per cycle in %s order, %zu cycles\n",
	    npages, nwrites, sequential ? "address" : "random", ncycles);

	for (m = 0; m < 4; m++) {
		if (m == 0)
			run_memcoop(wr, hv);
		else if (m == 1)
			run_softdirty(wr, hv);
		else
			run_mprotect(wr, hv, m == 3);
		w[m] = bench_median(wr, ncycles) / (double)nwrites;
		h[m] = bench_median(hv, ncycles) / (double)nwrites;
		printf("%-14s %9.1f ns per tracked write, %9.1f ns per harvested page\n",
		    names[m], w[m], h[m]);
	}
	sfx = argc > 5 ? argv[5] : sequential ? "-seq" : "";
	for (m = 0; m < 4; m++) {
		snprintf(name, sizeof(name), "writetrack.write.%s%s", names[m], sfx);
		bench_line(name, w[m], w[2]);
	}
	for (m = 0; m < 4; m++) {
		snprintf(name, sizeof(name), "writetrack.harvest.%s%s", names[m], sfx);
		bench_line(name, h[m], h[2]);
	}
	for (m = 0; m < 4; m++) {
		snprintf(name, sizeof(name), "writetrack.cycle.%s%s", names[m], sfx);
		bench_line(name, w[m] + h[m], w[2] + h[2]);
	}
	return 0;
}
