/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmemcoop: a page-span allocator whose freed spans become volatile
 * ranges instead of being given back with madvise(MADV_DONTNEED), as the
 * vrange authors did with jemalloc's chunk layer.
 *
 * Layout: one arena of address space; spans are carved from it with a
 * bump pointer and never split or merged.  Each span has a size class
 * (1..4 pages, then four classes per power of two), recorded in a side
 * table of one byte per arena page, so freeing needs no header inside the
 * span (its pages may be discarded while it sits in a free list).  Free
 * lists are LIFO stacks of span addresses, one per class, kept outside
 * the arena in ordinary heap memory.
 *
 * Ordering against the kernel: a span is marked volatile before it is
 * pushed and non-volatile after it is popped, both outside the lock, so a
 * span in use is never volatile.
 */
#include <sys/mman.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libmemcoop.h"
#include "mc_lib.h"

#define NCLASS		(4 + 4 * 60)

struct bin {
	void		**spans;
	size_t		  n, cap;
};

struct memcoop_alloc {
	pthread_mutex_t		 lock;
	struct memcoop		*mc;
	enum memcoop_release	 release;
	struct memcoop_arena	*arena;		/* RELEASE_VOLATILE */
	char			*base;
	size_t			 size, used, pgsz;
	unsigned int		 pgshift;
	uint8_t			*cls;		/* class + 1 at each span's first page */
	size_t			 ncls;
	struct bin		 bins[NCLASS];
	struct memcoop_alloc_stats st;
};

/* Size class of a request of @pages pages: its index and its size in pages. */
static int
size_class(size_t pages, size_t *cpages)
{
	unsigned int k;
	size_t step, j;

	if (pages <= 4) {
		*cpages = pages ? pages : 1;
		return (int)*cpages - 1;
	}
	k = 63 - (unsigned int)__builtin_clzll((unsigned long long)(pages - 1));
	step = (size_t)1 << (k - 2);
	j = (pages - ((size_t)1 << k) + step - 1) / step;
	*cpages = ((size_t)1 << k) + j * step;
	return 4 + (int)(k - 2) * 4 + (int)(j - 1);
}

struct memcoop_alloc *
memcoop_alloc_create(struct memcoop *mc, size_t arena_size, enum memcoop_release release)
{
	struct memcoop_alloc *al;
	long pg;
	int saved;

	if (arena_size == 0 || release < MEMCOOP_RELEASE_VOLATILE ||
	    release > MEMCOOP_RELEASE_NONE ||
	    (release == MEMCOOP_RELEASE_VOLATILE && mc == NULL)) {
		errno = EINVAL;
		return NULL;
	}
	if ((al = calloc(1, sizeof(*al))) == NULL)
		return NULL;
	pg = mc != NULL ? (long)mc->page_size : sysconf(_SC_PAGESIZE);
	al->pgsz = (size_t)pg;
	al->pgshift = (unsigned int)__builtin_ctzl((unsigned long)pg);
	al->size = (arena_size + al->pgsz - 1) & ~(al->pgsz - 1);
	al->mc = mc;
	al->release = release;
	pthread_mutex_init(&al->lock, NULL);

	if (release == MEMCOOP_RELEASE_VOLATILE) {
		if ((al->arena = memcoop_arena_map(mc, al->size)) == NULL)
			goto fail;
		al->base = memcoop_arena_base(al->arena);
	} else {
		al->base = mmap(NULL, al->size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (al->base == MAP_FAILED) {
			al->base = NULL;
			goto fail;
		}
	}
	al->ncls = al->size >> al->pgshift;
	al->cls = mmap(NULL, al->ncls, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (al->cls == MAP_FAILED) {
		al->cls = NULL;
		goto fail;
	}
	return al;
fail:
	saved = errno;
	memcoop_alloc_destroy(al);
	errno = saved;
	return NULL;
}

void
memcoop_alloc_destroy(struct memcoop_alloc *al)
{
	int i, saved = errno;

	if (al == NULL)
		return;
	for (i = 0; i < NCLASS; i++)
		free(al->bins[i].spans);
	if (al->cls != NULL)
		munmap(al->cls, al->ncls);
	if (al->arena != NULL)
		memcoop_arena_unmap(al->arena);
	else if (al->base != NULL)
		munmap(al->base, al->size);
	pthread_mutex_destroy(&al->lock);
	free(al);
	errno = saved;
}

/* Give a free span's memory back the configured way. */
static void
release_span(struct memcoop_alloc *al, void *p, size_t len)
{
	switch (al->release) {
	case MEMCOOP_RELEASE_VOLATILE:
		/* on failure the span simply stays non-volatile */
		(void)memcoop_volatile(al->mc, p, len);
		break;
	case MEMCOOP_RELEASE_DONTNEED:
		(void)madvise(p, len, MADV_DONTNEED);
		break;
	case MEMCOOP_RELEASE_FREE:
		(void)madvise(p, len, MADV_FREE);
		break;
	case MEMCOOP_RELEASE_NONE:
		break;
	}
}

/* Push a released span on its free list; false if the list cannot grow. */
static int
push_span(struct memcoop_alloc *al, int c, void *p)
{
	struct bin *b = &al->bins[c];
	void **n;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;

		if ((n = realloc(b->spans, cap * sizeof(*n))) == NULL)
			return 0;
		b->spans = n;
		b->cap = cap;
	}
	b->spans[b->n++] = p;
	return 1;
}

/* The allocation proper; *zeroed tells whether the span is known zero. */
static void *
alloc_span(struct memcoop_alloc *al, size_t size, int *zeroed)
{
	size_t pages, cpages, len;
	void *p = NULL;
	int c, r;

	if (size > al->size) {
		errno = ENOMEM;
		return NULL;
	}
	pages = (size + al->pgsz - 1) >> al->pgshift;
	c = size_class(pages, &cpages);
	len = cpages << al->pgshift;
	if (c >= NCLASS || len > al->size) {
		errno = ENOMEM;
		return NULL;
	}

	pthread_mutex_lock(&al->lock);
	if (al->bins[c].n > 0) {
		p = al->bins[c].spans[--al->bins[c].n];
		al->st.reused++;
	} else if (al->size - al->used >= len) {
		p = al->base + al->used;
		al->used += len;
		al->cls[(size_t)((char *)p - al->base) >> al->pgshift] = (uint8_t)(c + 1);
		al->st.arena_used = al->used;
		*zeroed = 1;
		al->st.allocs++;
		pthread_mutex_unlock(&al->lock);
		return p;
	}
	pthread_mutex_unlock(&al->lock);
	if (p == NULL) {
		errno = ENOMEM;
		return NULL;
	}

	*zeroed = 0;
	if (al->release == MEMCOOP_RELEASE_VOLATILE) {
		if ((r = memcoop_nonvolatile(al->mc, p, len)) == -1) {
			/* still volatile: it must not be handed out */
			pthread_mutex_lock(&al->lock);
			if (!push_span(al, c, p))
				p = NULL;	/* leaked address space, nothing else */
			pthread_mutex_unlock(&al->lock);
			errno = ENOMEM;
			return NULL;
		}
		*zeroed = r;		/* discarded pages read as zeros */
	}
	pthread_mutex_lock(&al->lock);
	al->st.allocs++;
	if (*zeroed)
		al->st.purged_reuses++;
	pthread_mutex_unlock(&al->lock);
	return p;
}

void *
memcoop_malloc(struct memcoop_alloc *al, size_t size)
{
	int zeroed;

	return alloc_span(al, size, &zeroed);
}

void *
memcoop_calloc(struct memcoop_alloc *al, size_t n, size_t size)
{
	size_t total;
	int zeroed = 0;
	void *p;

	if (size != 0 && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	total = n * size;
	if ((p = alloc_span(al, total, &zeroed)) != NULL && !zeroed)
		memset(p, 0, total);
	return p;
}

/* Class of the span starting at @p; aborts on a pointer we never gave out. */
static int
span_class(struct memcoop_alloc *al, void *p, size_t *len)
{
	size_t off = (size_t)((char *)p - al->base), cpages;
	int c;

	if ((char *)p < al->base || off >= al->used || (off & (al->pgsz - 1)) ||
	    al->cls[off >> al->pgshift] == 0) {
		fprintf(stderr, "libmemcoop: %s: %p was not allocated here\n", __func__, p);
		abort();
	}
	c = al->cls[off >> al->pgshift] - 1;
	/* recompute the class size from its index */
	if (c < 4)
		cpages = (size_t)c + 1;
	else {
		unsigned int k = (unsigned int)(c - 4) / 4 + 2;
		size_t j = (size_t)((c - 4) % 4) + 1;

		cpages = ((size_t)1 << k) + j * ((size_t)1 << (k - 2));
	}
	*len = cpages << al->pgshift;
	return c;
}

void
memcoop_free(struct memcoop_alloc *al, void *p)
{
	size_t len;
	int c, saved = errno;

	if (p == NULL)
		return;
	c = span_class(al, p, &len);
	release_span(al, p, len);
	pthread_mutex_lock(&al->lock);
	if (push_span(al, c, p)) {
		al->st.frees++;
		al->st.released_bytes += len;
	}
	pthread_mutex_unlock(&al->lock);
	errno = saved;
}

size_t
memcoop_malloc_usable_size(struct memcoop_alloc *al, void *p)
{
	size_t len;

	if (p == NULL)
		return 0;
	span_class(al, p, &len);
	return len;
}

void
memcoop_alloc_stats(struct memcoop_alloc *al, struct memcoop_alloc_stats *st)
{
	pthread_mutex_lock(&al->lock);
	*st = al->st;
	pthread_mutex_unlock(&al->lock);
}
