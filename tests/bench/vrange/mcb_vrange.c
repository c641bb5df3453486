/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mcb-vrange: benchmarks of volatile ranges, in the guest.
 *
 *   mcb-vrange ebizzy SECONDS THREADS CHUNKS CHUNK_KB PRESSURE
 *	An ebizzy-style allocator benchmark: THREADS threads repeatedly
 *	pick one of CHUNKS chunks of sorted 64-byte records, allocate a
 *	copy of it, copy it, binary-search the copy for a random key and
 *	free the copy; records/s is searches per second.  The allocator is
 *	libmemcoop's span allocator, the same code for all three variants;
 *	only the way freed spans are given back differs: madvise
 *	(MADV_DONTNEED) on anonymous memory, madvise(MADV_FREE) on anonymous
 *	memory, or memcoop volatile ranges.  The three take turns in
 *	EBIZZY_ROUNDS rounds of SECONDS / EBIZZY_ROUNDS each (the order
 *	rotating), and each reports its median round, so that the host's
 *	load, which moves a lot under TCG, hits all three alike.  PRESSURE=1
 *	adds a background process that keeps allocating and touching all
 *	the memory but the benchmark's working set, and HOG_OVER_MB more, so
 *	the guest reclaims all the time: the volatile variant's freed spans
 *	are purged (by the shrinker or, at worst, the OOM notifier, which
 *	runs before the hog is killed), the others' hog is OOM-killed and
 *	restarted.  Under pressure the volatile variant must purge pages:
 *	exit 1 if it purged none (the pressure did not reach it).
 *
 *   mcb-vrange cycle PAGES ROUNDS
 *	The cost per page of giving memory back and taking it again without
 *	memory pressure: a volatile + non-volatile cycle then a write to
 *	each page, against madvise(MADV_DONTNEED) + refault (write to each
 *	page) and madvise(MADV_FREE) + write.
 *
 * Output: "BENCH name=... value=... unit=... baseline=... ratio=..." lines,
 * ratio = how many times better than the baseline (madvise(MADV_DONTNEED)).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmemcoop.h>

#include "../bench_median.h"
#include "kvstat.h"
#include "meminfo.h"

#define PG	4096UL

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "mcb-vrange: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
vstat(const char *name)
{
	long v;

	return kvstat_read("/sys/kernel/debug/memcoop/vrange", name, &v) == 0 ? v : -1;
}

/* ---- background memory pressure --------------------------------------- */

/*
 * A child that keeps mapping, touching and unmapping @mb MiB; the OOM
 * killer is told to pick it first, and a killed hog is restarted.
 */
static pid_t
start_hog(long mb)
{
	pid_t pid = fork();

	if (pid == -1)
		die("fork: %s", strerror(errno));
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		pid_t h = fork();
		int st;

		if (h == 0) {
			int fd = open("/proc/self/oom_score_adj", O_WRONLY);
			size_t len = (size_t)mb << 20, i;

			if (fd != -1) {
				(void)write(fd, "1000", 4);
				close(fd);
			}
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;) {
				char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

				if (p == MAP_FAILED)
					_exit(1);
				for (i = 0; i < len; i += PG)
					p[i] = (char)i;
				munmap(p, len);
			}
		}
		if (h == -1 || waitpid(h, &st, 0) == -1)
			_exit(1);
		usleep(100000);
	}
}

/* ---- ebizzy ------------------------------------------------------------ */

struct record {
	uint64_t key;
	char pad[56];
};

static struct memcoop_alloc *al;
static struct record **chunks;
static int nchunks;
static size_t chunk_bytes, nrec;
static volatile int stop_flag;

struct thr {
	unsigned int seed;
	unsigned long records;
	unsigned long misses;
};

static int
cmp_key(const void *k, const void *r)
{
	uint64_t a = *(const uint64_t *)k, b = ((const struct record *)r)->key;

	return a < b ? -1 : a > b;
}

#define EBIZZY_ROUNDS	5
#define HOG_OVER_MB	8	/* the pressure hog's size beyond what is free */

static void *
ebizzy_thread(void *arg)
{
	struct thr *t = arg;

	while (!stop_flag) {
		int idx = rand_r(&t->seed) % nchunks;
		uint64_t key = (uint64_t)(rand_r(&t->seed) % (int)nrec) * 2;
		struct record *copy = memcoop_malloc(al, chunk_bytes);

		if (copy == NULL)
			die("memcoop_malloc: %s", strerror(errno));
		memcpy(copy, chunks[idx], chunk_bytes);
		if (bsearch(&key, copy, nrec, sizeof(*copy), cmp_key) == NULL)
			t->misses++;
		memcoop_free(al, copy);
		t->records++;
	}
	return NULL;
}

static double
ebizzy_run(struct memcoop *mc, enum memcoop_release rel, int seconds, int nthreads)
{
	struct thr thr[64];
	pthread_t th[64];
	unsigned long total = 0, misses = 0;
	double t0, t1;
	size_t i;
	int c;

	al = memcoop_alloc_create(mc, (size_t)(nchunks + nthreads * 4 + 8) * chunk_bytes * 2,
	    rel);
	if (al == NULL)
		die("memcoop_alloc_create: %s", strerror(errno));
	chunks = calloc((size_t)nchunks, sizeof(*chunks));
	for (c = 0; c < nchunks; c++) {
		/* the source chunks live in ordinary memory, as in ebizzy */
		chunks[c] = malloc(chunk_bytes);
		if (chunks[c] == NULL)
			die("malloc");
		for (i = 0; i < nrec; i++)
			chunks[c][i].key = i * 2;
	}
	stop_flag = 0;
	for (c = 0; c < nthreads; c++) {
		thr[c] = (struct thr){ .seed = (unsigned int)c * 7919 + 1 };
		pthread_create(&th[c], NULL, ebizzy_thread, &thr[c]);
	}
	t0 = now();
	sleep((unsigned int)seconds);
	stop_flag = 1;
	for (c = 0; c < nthreads; c++) {
		pthread_join(th[c], NULL);
		total += thr[c].records;
		misses += thr[c].misses;
	}
	t1 = now();
	if (misses)
		die("%lu searches missed: records corrupted", misses);
	for (c = 0; c < nchunks; c++)
		free(chunks[c]);
	free(chunks);
	memcoop_alloc_destroy(al);
	return (double)total / (t1 - t0);
}

static void
bench_ebizzy(int seconds, int nthreads, int n, long chunk_kb, int pressure)
{
	static const struct {
		enum memcoop_release rel;
		const char *name;
	} v[] = {
		{ MEMCOOP_RELEASE_DONTNEED, "dontneed" },
		{ MEMCOOP_RELEASE_FREE, "free" },
		{ MEMCOOP_RELEASE_VOLATILE, "volatile" },
	};
	const char *sfx = pressure ? ".pressure" : "";
	double rate[3];
	uint64_t runs[3][EBIZZY_ROUNDS];	/* records/s */
	long purged[3] = { 0 };
	int round, k, secs = seconds / EBIZZY_ROUNDS > 0 ? seconds / EBIZZY_ROUNDS : 1;
	struct memcoop *mc = memcoop_open(MEMCOOP_FEATURE_VRANGE);
	pid_t hog = -1;
	long hog_mb;
	int i, st;

	if (mc == NULL)
		die("memcoop_open: %s", strerror(errno));
	if (nthreads < 1 || nthreads > 64 || n < 1 || chunk_kb < 4)
		die("bad ebizzy arguments");
	nchunks = n;
	chunk_bytes = (size_t)chunk_kb << 10;
	nrec = chunk_bytes / sizeof(struct record);
	if (pressure) {
		/* all but the source chunks and the copies in flight, and more */
		hog_mb = meminfo_kib("MemAvailable:") / 1024 + HOG_OVER_MB -
		    (long)((size_t)(nchunks + nthreads * 2) * chunk_bytes >> 20);
		if (hog_mb < 16)
			die("not enough memory for background pressure");
		printf("pressure: hog cycles %ld MiB (MemAvailable %ld kB)\n", hog_mb,
		    meminfo_kib("MemAvailable:"));
		hog = start_hog(hog_mb);
		sleep(2);
	}
	for (round = 0; round < EBIZZY_ROUNDS; round++) {
		for (k = 0; k < 3; k++) {
			long p0 = vstat("purged_pages_total");

			i = (round + k) % 3;
			runs[i][round] = (uint64_t)(ebizzy_run(mc, v[i].rel, secs, nthreads) + 0.5);
			purged[i] += vstat("purged_pages_total") - p0;
			printf("ebizzy%s round %d %s: %" PRIu64 " records/s\n", sfx, round,
			    v[i].name, runs[i][round]);
		}
	}
	for (i = 0; i < 3; i++) {
		rate[i] = bench_median(runs[i], EBIZZY_ROUNDS);
		printf("ebizzy%s %s: %.0f records/s median of %d rounds of %d s (%d threads, "
		    "%d chunks of %ld KiB, purged pages %ld)\n", sfx, v[i].name, rate[i],
		    EBIZZY_ROUNDS, secs, nthreads, nchunks, chunk_kb, purged[i]);
	}
	if (hog > 0) {
		kill(hog, SIGKILL);
		waitpid(hog, &st, 0);
		if (purged[2] <= 0)
			die("the pressure purged no volatile page (purged_pages_total %ld)",
			    vstat("purged_pages_total"));
	}
	for (i = 0; i < 3; i++)
		printf("BENCH name=vrange.ebizzy%s.%s value=%.0f unit=records/s baseline=%.0f "
		    "ratio=%.2f\n", sfx, v[i].name, rate[i], rate[0], rate[i] / rate[0]);
	printf("BENCH name=vrange.ebizzy%s.volatile-vs-free value=%.0f unit=records/s "
	    "baseline=%.0f ratio=%.2f\n", sfx, rate[2], rate[1], rate[2] / rate[1]);
	memcoop_close(mc);
}

/* ---- cost per page of a give-back/take-back cycle ---------------------- */

static void
touch(char *p, size_t pages, char v)
{
	size_t i;

	for (i = 0; i < pages; i++)
		p[i * PG] = v;
}

static void
bench_cycle(size_t pages, int rounds)
{
	struct memcoop *mc = memcoop_open(MEMCOOP_FEATURE_VRANGE);
	struct memcoop_arena *ar;
	size_t len = pages * PG;
	double t0, dn, fr, vo;
	char *a, *m;
	int r, purged = 0;

	if (mc == NULL)
		die("memcoop_open: %s", strerror(errno));
	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	if ((ar = memcoop_arena_map(mc, len)) == NULL)
		die("memcoop_arena_map: %s", strerror(errno));
	m = memcoop_arena_base(ar);
	touch(a, pages, 1);
	touch(m, pages, 1);

	t0 = now();
	for (r = 0; r < rounds; r++) {
		madvise(a, len, MADV_DONTNEED);
		touch(a, pages, (char)r);
	}
	dn = (now() - t0) / ((double)rounds * (double)pages) * 1e9;

	t0 = now();
	for (r = 0; r < rounds; r++) {
		madvise(a, len, MADV_FREE);
		touch(a, pages, (char)r);
	}
	fr = (now() - t0) / ((double)rounds * (double)pages) * 1e9;

	t0 = now();
	for (r = 0; r < rounds; r++) {
		if (memcoop_volatile(mc, m, len) == -1)
			die("volatile: %s", strerror(errno));
		if ((purged = memcoop_nonvolatile(mc, m, len)) == -1)
			die("nonvolatile: %s", strerror(errno));
		touch(m, pages, (char)r);
	}
	vo = (now() - t0) / ((double)rounds * (double)pages) * 1e9;
	(void)purged;

	printf("cycle: %zu pages x %d rounds: DONTNEED+refault %.1f ns/page, "
	    "FREE+write %.1f ns/page, volatile+nonvolatile+write %.1f ns/page\n",
	    pages, rounds, dn, fr, vo);
	printf("BENCH name=vrange.cycle.dontneed value=%.1f unit=ns/page baseline=%.1f "
	    "ratio=1.00\n", dn, dn);
	printf("BENCH name=vrange.cycle.free value=%.1f unit=ns/page baseline=%.1f "
	    "ratio=%.2f\n", fr, dn, dn / fr);
	printf("BENCH name=vrange.cycle.volatile value=%.1f unit=ns/page baseline=%.1f "
	    "ratio=%.2f\n", vo, dn, dn / vo);
	munmap(a, len);
	memcoop_arena_unmap(ar);
	memcoop_close(mc);
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 7 && strcmp(argv[1], "ebizzy") == 0)
		bench_ebizzy(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atol(argv[5]),
		    atoi(argv[6]));
	else if (argc == 4 && strcmp(argv[1], "cycle") == 0)
		bench_cycle((size_t)atol(argv[2]), atoi(argv[3]));
	else {
		fprintf(stderr, "usage: mcb-vrange ebizzy seconds threads chunks chunk_kb "
		    "pressure(0|1)\n       mcb-vrange cycle pages rounds\n");
		return 2;
	}
	return 0;
}
