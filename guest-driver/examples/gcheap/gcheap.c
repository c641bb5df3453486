/* SPDX-License-Identifier: GPL-2.0 */
/*
 * gcheap: an incremental mark-sweep collector whose write barrier is the
 * /dev/memcoop write log.
 *
 * The object heap lives in /dev/memcoop memory armed for write tracking.
 * The mutator stores pointers with plain stores: there is no barrier code
 * in it.  The collector marks incrementally, a slice of work between
 * mutator steps (Boehm's "mostly parallel" scheme).  Whenever its mark
 * stack runs dry it harvests the write log into a card table (one card
 * per page), re-arming the pages in the same call, and rescans the marked
 * objects on the dirty cards: a pointer the mutator stored into an object
 * already scanned is found there.  When a harvest finds nothing left to
 * do (or after a few rounds) a short final pause harvests once more,
 * rescans the dirty cards and the roots and finishes the mark; then the
 * heap is swept.  Mark bits live outside the heap so marking dirties no
 * page.
 *
 * Every cycle is checked against a stop-the-world reference mark: every
 * object reachable from the roots must have been marked (floating garbage
 * is allowed).  With --no-barrier the card rescans are skipped, which is
 * exactly the bug the barrier prevents: the program then exits 0 only if
 * the check caught objects the collector would have freed while live.
 *
 *	gcheap [--no-barrier] [--cycles N] [--pages N] [--seed N] [-v]
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include <libmemcoop.h>

/*
 * Objects: a header word, then @nptrs pointer fields (object addresses
 * or NULL), then data words.  Sizes in words, header included.
 */
#define HDR_SIZE(h)	((unsigned int)((h) & 0xffff))
#define HDR_NPTRS(h)	((unsigned int)(((h) >> 16) & 0xffff))
#define HDR_FREE	(1ULL << 32)
#define MK_HDR(sz, np)	((uint64_t)(sz) | ((uint64_t)(np) << 16))
#define MIN_WORDS	2
#define MAX_WORDS	32
#define NROOTS		256
#define SLICE		64	/* objects scanned per mark slice */
#define MUT_STEPS	16	/* mutator operations between slices */
#define MAX_ROUNDS	8	/* harvest rounds before the final pause */

struct heap {
	struct memcoop *mc;
	uint64_t *base;			/* the heap, in /dev/memcoop memory */
	size_t words, pages, wpp;	/* size, pages, words per page */
	size_t bump;			/* next never-used word */
	uint64_t *starts;		/* bit per word: an object starts here */
	uint64_t *marks;		/* bit per word: marked (live) */
	uint64_t *ref;			/* reference marks, for the check */
	uint64_t *freelist[MAX_WORDS + 1];
	uint64_t *roots[NROOTS];
	unsigned char *cards;		/* card per page: written */
	void **log;			/* harvest buffer */
	uint64_t **stack;		/* mark stack */
	size_t sp, stack_cap;
	bool marking;			/* a cycle is marking: allocate black */
	bool barrier;			/* rescan dirty cards */
	unsigned int seed;
	/* statistics */
	unsigned long allocs, stores, harvests, dirty_cards, rescanned;
	unsigned long marked, freed, live, missed;
	double pause_ms, stw_ms, harvest_ms;
};

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline size_t
widx(struct heap *h, const uint64_t *p)
{
	return (size_t)(p - h->base);
}

static inline bool
bit_test(const uint64_t *bm, size_t i)
{
	return bm[i / 64] & (1ULL << (i % 64));
}

static inline void
bit_set(uint64_t *bm, size_t i)
{
	bm[i / 64] |= 1ULL << (i % 64);
}

static inline void
bit_clear(uint64_t *bm, size_t i)
{
	bm[i / 64] &= ~(1ULL << (i % 64));
}

static unsigned int
rnd(struct heap *h, unsigned int n)
{
	return (unsigned int)rand_r(&h->seed) % n;
}

static void
push(struct heap *h, uint64_t *obj)
{
	if (h->sp == h->stack_cap) {
		h->stack_cap = h->stack_cap ? 2 * h->stack_cap : 4096;
		h->stack = realloc(h->stack, h->stack_cap * sizeof(*h->stack));
		if (h->stack == NULL)
			err(1, "mark stack");
	}
	h->stack[h->sp++] = obj;
}

/* Grey an object: mark it and queue it for scanning. */
static void
shade(struct heap *h, uint64_t *obj)
{
	size_t i;

	if (obj == NULL)
		return;
	i = widx(h, obj);
	if (bit_test(h->marks, i))
		return;
	bit_set(h->marks, i);
	h->marked++;
	push(h, obj);
}

/* Scan up to @budget grey objects; returns true when the stack is empty. */
static bool
mark_slice(struct heap *h, size_t budget)
{
	while (h->sp > 0 && budget-- > 0) {
		uint64_t *obj = h->stack[--h->sp];
		unsigned int k, np = HDR_NPTRS(obj[0]);

		for (k = 0; k < np; k++)
			shade(h, (uint64_t *)obj[1 + k]);
	}
	return h->sp == 0;
}

static uint64_t *
alloc(struct heap *h, unsigned int words, unsigned int nptrs)
{
	uint64_t *obj;
	size_t i;

	if ((obj = h->freelist[words]) != NULL) {
		h->freelist[words] = (uint64_t *)obj[1];
	} else {
		if (h->bump + words > h->words)
			return NULL;
		obj = h->base + h->bump;
		h->bump += words;
	}
	i = widx(h, obj);
	obj[0] = MK_HDR(words, nptrs);
	memset(obj + 1, 0, (words - 1) * sizeof(*obj));
	bit_set(h->starts, i);
	if (h->marking)
		bit_set(h->marks, i);	/* allocated black */
	h->allocs++;
	h->live++;
	return obj;
}

/* A random object reachable from the roots (or NULL): a short walk. */
static uint64_t *
pick(struct heap *h)
{
	uint64_t *o = h->roots[rnd(h, NROOTS)];
	unsigned int steps = rnd(h, 5);

	while (o != NULL && steps-- > 0) {
		unsigned int np = HDR_NPTRS(o[0]);
		uint64_t *next;

		if (np == 0)
			break;
		next = (uint64_t *)o[1 + rnd(h, np)];
		if (next == NULL)
			break;
		o = next;
	}
	return o;
}

/* One mutator operation: allocate, store a pointer, or change a root. */
static bool
mutate(struct heap *h)
{
	unsigned int op = rnd(h, 10), words, np;
	uint64_t *a, *b;

	if (op < 3) {
		words = MIN_WORDS + rnd(h, MAX_WORDS - MIN_WORDS + 1);
		np = 1 + rnd(h, words - 1);
		if ((b = alloc(h, words, np)) == NULL)
			return false;
		a = pick(h);
		if (a != NULL && HDR_NPTRS(a[0]) > 0 && rnd(h, 2))
			a[1 + rnd(h, HDR_NPTRS(a[0]))] = (uint64_t)b;
		else
			h->roots[rnd(h, NROOTS)] = b;
	} else if (op < 9) {
		/* the store a barrier exists for: any object into any field */
		a = pick(h);
		b = rnd(h, 8) ? pick(h) : NULL;
		if (a != NULL && HDR_NPTRS(a[0]) > 0) {
			a[1 + rnd(h, HDR_NPTRS(a[0]))] = (uint64_t)b;
			h->stores++;
		}
	} else {
		h->roots[rnd(h, NROOTS)] = rnd(h, 4) ? pick(h) : NULL;
	}
	return true;
}

/* The object covering word @i (a start at or before it), or NULL. */
static uint64_t *
object_at(struct heap *h, size_t i)
{
	size_t j, lo = i >= MAX_WORDS ? i - MAX_WORDS + 1 : 0;

	for (j = i + 1; j-- > lo;) {
		if (bit_test(h->starts, j)) {
			uint64_t *o = h->base + j;

			return j + HDR_SIZE(o[0]) > i ? o : NULL;
		}
	}
	return NULL;
}

/*
 * Harvest the write log into the card table (re-arming the pages) and
 * queue every marked object on a dirty card for rescanning.  Returns the
 * number of dirty cards.
 */
static size_t
rescan_dirty(struct heap *h)
{
	size_t n = 0, remaining, i, c, w, end;
	ssize_t got;
	double t0 = now_ms();

	do {
		got = memcoop_wt_harvest(h->mc, h->log, h->pages, MEMCOOP_WT_REARM,
		    &remaining);
		if (got == -1)
			err(1, "memcoop_wt_harvest");
		h->harvests++;
		for (i = 0; i < (size_t)got; i++) {
			c = (size_t)((char *)h->log[i] - (char *)h->base) / (h->wpp * 8);
			if (c >= h->pages)
				errx(1, "harvest returned %p outside the heap", h->log[i]);
			h->cards[c] = 1;
		}
		n += (size_t)got;
	} while (got > 0 && remaining > 0);
	h->harvest_ms += now_ms() - t0;
	h->dirty_cards += n;

	for (c = 0; c < h->pages; c++) {
		if (!h->cards[c])
			continue;
		h->cards[c] = 0;
		if (!h->barrier)
			continue;
		w = c * h->wpp;
		end = w + h->wpp;
		/* an object reaching into the card from the previous one */
		{
			uint64_t *o = object_at(h, w);

			if (o != NULL && widx(h, o) < w && bit_test(h->marks, widx(h, o))) {
				push(h, o);
				h->rescanned++;
			}
		}
		for (; w < end && w < h->bump; w++) {
			if (bit_test(h->starts, w) && bit_test(h->marks, w) &&
			    !(h->base[w] & HDR_FREE)) {
				push(h, h->base + w);
				h->rescanned++;
			}
		}
	}
	return n;
}

static void
shade_roots(struct heap *h)
{
	unsigned int r;

	for (r = 0; r < NROOTS; r++)
		shade(h, h->roots[r]);
}

/* Stop-the-world reference mark into h->ref; returns objects reachable. */
static size_t
reference_mark(struct heap *h)
{
	uint64_t **st;
	size_t sp = 0, cap = 4096, n = 0;
	unsigned int r, k;

	memset(h->ref, 0, (h->words + 63) / 64 * 8);
	if ((st = malloc(cap * sizeof(*st))) == NULL)
		err(1, "malloc");
	for (r = 0; r <= NROOTS; r++) {
		uint64_t *o = r < NROOTS ? h->roots[r] : NULL;

		if (o != NULL && !bit_test(h->ref, widx(h, o))) {
			bit_set(h->ref, widx(h, o));
			st[sp++] = o;
		}
		while (sp > 0) {
			uint64_t *x = st[--sp];

			n++;
			for (k = 0; k < HDR_NPTRS(x[0]); k++) {
				uint64_t *y = (uint64_t *)x[1 + k];

				if (y == NULL || bit_test(h->ref, widx(h, y)))
					continue;
				bit_set(h->ref, widx(h, y));
				if (sp == cap && (st = realloc(st, (cap *= 2) * sizeof(*st))) == NULL)
					err(1, "realloc");
				st[sp++] = y;
			}
		}
	}
	free(st);
	return n;
}

static void
sweep(struct heap *h)
{
	size_t w = 0;

	while (w < h->bump) {
		uint64_t *o = h->base + w;
		unsigned int sz = HDR_SIZE(o[0]);

		if (sz < MIN_WORDS || sz > MAX_WORDS || !bit_test(h->starts, w))
			errx(1, "heap corrupt at word %zu", w);
		if (!(o[0] & HDR_FREE) && !bit_test(h->marks, w)) {
			o[0] |= HDR_FREE;
			o[1] = (uint64_t)h->freelist[sz];
			h->freelist[sz] = o;
			h->freed++;
			h->live--;
		}
		w += sz;
	}
}

/*
 * One collection cycle, interleaved with the mutator.  Returns false when
 * the mutator ran out of heap or the check found a live object unmarked
 * (the heap is then left unswept and the run ends).
 */
static bool
collect(struct heap *h, int verbose)
{
	unsigned long marked0 = h->marked, resc0 = h->rescanned, dirty0 = h->dirty_cards;
	unsigned int rounds = 0;
	size_t reach, w, missed = 0;
	bool ok = true;
	double t0, stw;

	/* start: the log holds the last cycle's writes; drop them */
	rescan_dirty(h);
	h->sp = 0;
	memset(h->marks, 0, (h->words + 63) / 64 * 8);
	h->marking = true;
	shade_roots(h);

	for (;;) {
		unsigned int s;

		if (mark_slice(h, SLICE)) {
			/* the stack ran dry: what did the mutator write meanwhile? */
			if (rescan_dirty(h) == 0 || ++rounds >= MAX_ROUNDS)
				break;
			shade_roots(h);
			continue;
		}
		for (s = 0; s < MUT_STEPS && ok; s++)
			ok = mutate(h);
		if (!ok)
			break;
	}

	/* the final pause: no mutator from here to the sweep */
	t0 = now_ms();
	rescan_dirty(h);
	shade_roots(h);
	mark_slice(h, SIZE_MAX);	/* marking writes no heap page */
	h->marking = false;
	h->pause_ms += now_ms() - t0;

	/* the check: every reachable object is marked */
	t0 = now_ms();
	reach = reference_mark(h);
	stw = now_ms() - t0;
	h->stw_ms += stw;
	for (w = 0; w < h->bump; w++)
		if (bit_test(h->ref, w) && !bit_test(h->marks, w))
			missed++;
	h->missed += missed;
	if (verbose || missed)
		printf("cycle: %zu reachable, %lu marked, %lu dirty cards, %lu objects "
		    "rescanned, %u rounds, %zu MISSED\n", reach, h->marked - marked0,
		    h->dirty_cards - dirty0, h->rescanned - resc0, rounds, missed);
	if (missed)
		return false;	/* sweeping now would free live objects */
	sweep(h);
	return ok;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "no-barrier", no_argument, NULL, 'n' },
		{ "cycles", required_argument, NULL, 'c' },
		{ "pages", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct heap h;
	unsigned long cycles = 10, c, per_cycle;
	size_t ps, bm;
	uint64_t armed;
	int ch, verbose = 0;
	double t0;

	memset(&h, 0, sizeof(h));
	h.barrier = true;
	h.pages = 8192;
	h.seed = 1;
	while ((ch = getopt_long(argc, argv, "nc:p:s:v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			h.barrier = false;
			break;
		case 'c':
			cycles = strtoul(optarg, NULL, 0);
			break;
		case 'p':
			h.pages = strtoul(optarg, NULL, 0);
			break;
		case 's':
			h.seed = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			fprintf(stderr, "usage: gcheap [--no-barrier] [--cycles N] "
			    "[--pages N] [--seed N] [-v]\n");
			return 2;
		}
	}
	if (h.pages < 64 || cycles == 0)
		errx(2, "need at least 64 pages and one cycle");

	h.mc = memcoop_open(MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_WTRACK);
	if (h.mc == NULL)
		errx(1, "memcoop_open: %s", memcoop_strerror(errno));
	ps = memcoop_page_size(h.mc);
	h.wpp = ps / 8;
	h.words = h.pages * h.wpp;
	h.base = mmap(NULL, h.pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED,
	    memcoop_fd(h.mc), 0);
	if (h.base == MAP_FAILED)
		err(1, "mmap /dev/memcoop");
	bm = (h.words + 63) / 64 * 8;
	h.starts = calloc(1, bm);
	h.marks = calloc(1, bm);
	h.ref = calloc(1, bm);
	h.cards = calloc(h.pages, 1);
	h.log = calloc(h.pages, sizeof(*h.log));
	if (!h.starts || !h.marks || !h.ref || !h.cards || !h.log)
		err(1, "calloc");
	if (memcoop_wt_arm(h.mc, &(struct memcoop_wt_range){ (uintptr_t)h.base,
	    h.pages * ps }, 1, &armed) == -1)
		err(1, "memcoop_wt_arm");
	printf("gcheap: %zu KiB heap in /dev/memcoop, %llu pages armed, barrier %s\n",
	    h.pages * ps / 1024, (unsigned long long)armed, h.barrier ? "on" : "OFF");

	/* a cycle starts after the mutator allocated a tenth of the heap */
	per_cycle = h.words / 17 / 10;
	t0 = now_ms();
	for (c = 0; c < cycles; c++) {
		unsigned long a0 = h.allocs;

		while (h.allocs - a0 < per_cycle)
			if (!mutate(&h))
				break;
		if (!collect(&h, verbose)) {
			if (!h.missed)
				printf("gcheap: heap exhausted in cycle %lu\n", c);
			c++;
			break;
		}
	}
	printf("gcheap: %lu cycles in %.0f ms: %lu allocations, %lu pointer stores, "
	    "%lu live, %lu freed\n", c, now_ms() - t0, h.allocs, h.stores, h.live, h.freed);
	printf("gcheap: barrier: %lu harvests, %lu dirty cards (%.2f ms harvesting), "
	    "%lu objects rescanned\n", h.harvests, h.dirty_cards, h.harvest_ms, h.rescanned);
	printf("gcheap: final pauses %.2f ms in all, vs %.2f ms for stop-the-world marks\n",
	    h.pause_ms, h.stw_ms);
	munmap(h.base, h.pages * ps);
	memcoop_close(h.mc);

	if (h.barrier) {
		if (h.missed) {
			printf("gcheap: FAIL: %lu live objects unmarked\n", h.missed);
			return 1;
		}
		printf("gcheap: every reachable object was marked\n");
		return 0;
	}
	/* without the barrier the check must catch hidden objects */
	if (h.missed) {
		printf("gcheap: without the barrier %lu live objects went unmarked "
		    "(the check works)\n", h.missed);
		return 0;
	}
	printf("gcheap: FAIL: without the barrier nothing was missed: the check is too weak\n");
	return 1;
}
