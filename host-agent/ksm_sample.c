/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ksm_sample.c: estimate, in user space, what KSM would save for a set of
 * QEMU processes, before paying for ksmd (the mergemem idea: find equal
 * pages by checksum from user space).
 *
 * Content-defined sampling.  Reading and hashing every page of every guest
 * would cost as much as a KSM scan, and sampling pages by *position* cannot
 * see duplicates (a pair is seen only if both copies happen to be drawn).
 * Instead, for every resident guest page we hash only a 64-byte prefix
 * (two 32-byte pieces, at offsets 0 and 2048; read as one piece of 2080
 * bytes: one remote iovec a page, each of which costs a page pin, is a
 * quarter less system time than two), and keep the page
 * when the prefix hash falls in 1 of 2^shift buckets.  Equal pages have
 * equal prefixes, so either every copy of a content is kept or none is;
 * the kept pages are read in full and counted by their full hash.  Each
 * kept content stands for 2^shift contents, which makes the saving an
 * unbiased estimate: saving = sum over kept contents of weight * (copies -
 * 1).  Pages whose prefix is uniform (one 8-byte word repeated: zero
 * pages, the guest's free-page poison, memset buffers) are sampled by
 * position instead, 1 in 2^UNIFORM_SHIFT with that weight, since a single
 * hugely repeated content must not be left to the chance of one prefix
 * hash: a guest booted with page_poison=1 has most of its free memory in
 * one content, and its count is then estimated within a few percent.
 * (Reading every such page in full cost most of the estimate: measured,
 * 120k of 295k pages of three idle guests.)
 *
 * Pages that are not present (pagemap bit 63) or that map the shared zero
 * page cost the host nothing and are skipped.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "ksm.h"

#define PREFIX_PIECE	32		/* bytes read at each of two offsets */
#define PREFIX_OFF2	2048
#define BATCH_PAGES	512		/* iovecs a readv, IOV_MAX 1024 */
#define MAX_REGIONS	64
#define MIN_RAM_BYTES	(16ULL << 20)
#define PREFIX_SPAN	(PREFIX_OFF2 + PREFIX_PIECE)	/* one read a page */
#define UNIFORM_SHIFT	4		/* 1 in 16 uniform pages read in full */

/* ------------------------------------------------------------------ */
/* Hashing and the index (pure) */

static inline uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline uint64_t
rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/*
 * A 64-bit hash of @len bytes (a multiple of 8): four independent lanes of
 * multiply-rotate rounds over 32-byte blocks (the structure of xxHash64's
 * main loop), then a mix of the lanes and the tail.  Not cryptographic;
 * equal pages are confirmed by nobody, so the estimate trusts 64 bits.
 */
uint64_t
ksm_hash_page(const void *page, size_t len)
{
	const uint64_t p1 = 0x9e3779b185ebca87ULL, p2 = 0xc2b2ae3d27d4eb4fULL;
	const unsigned char *p = page;
	uint64_t a = p1 + p2, b = p2, c = 0, d = -p1, w[4], h;
	size_t i = 0;

	for (; i + 32 <= len; i += 32) {
		memcpy(w, p + i, 32);
		a = rotl64(a + w[0] * p2, 31) * p1;
		b = rotl64(b + w[1] * p2, 31) * p1;
		c = rotl64(c + w[2] * p2, 31) * p1;
		d = rotl64(d + w[3] * p2, 31) * p1;
	}
	h = rotl64(a, 1) + rotl64(b, 7) + rotl64(c, 12) + rotl64(d, 18) + len;
	for (; i + 8 <= len; i += 8) {
		memcpy(w, p + i, 8);
		h = rotl64(h ^ (w[0] * p2), 27) * p1;
	}
	return mix64(h);
}

uint64_t
ksm_hash_prefix(const void *a, const void *b, size_t len, int *uniform)
{
	const unsigned char *pa = a, *pb = b;
	size_t n = len < PREFIX_PIECE ? len : PREFIX_PIECE, i;
	uint64_t w0, w;

	/*
	 * Uniform: one 8-byte word repeated through both pieces (zero pages,
	 * the guest's page_poison pattern, memset buffers).  Such contents are
	 * often repeated thousands of times: sampled by chance, they would
	 * make the estimate all or nothing.
	 */
	*uniform = n >= 8;
	memcpy(&w0, pa, 8);
	for (i = 0; i + 8 <= n && *uniform; i += 8) {
		memcpy(&w, pa + i, 8);
		if (w != w0)
			*uniform = 0;
		memcpy(&w, pb + i, 8);
		if (w != w0)
			*uniform = 0;
	}
	return mix64(ksm_hash_page(a, n) ^ (ksm_hash_page(b, n) * 31));
}

struct kslot {
	uint64_t	 h;
	uint32_t	 count;
	uint32_t	 weight;
	int32_t		 guest;		/* first guest seen with it */
	uint8_t		 used;
	uint8_t		 multi;		/* seen in more than one guest */
	uint8_t		 zero;
};

struct ksm_index {
	unsigned int	 shift;
	size_t		 cap;		/* power of two */
	size_t		 used;
	uint64_t	 added;
	struct kslot	*slots;
};

struct ksm_index *
ksm_index_new(unsigned int shift)
{
	struct ksm_index *ix;

	if (shift > 16)
		shift = 16;
	ix = calloc(1, sizeof(*ix));
	if (ix == NULL)
		return NULL;
	ix->shift = shift;
	ix->cap = 1024;
	ix->slots = calloc(ix->cap, sizeof(*ix->slots));
	if (ix->slots == NULL) {
		free(ix);
		return NULL;
	}
	return ix;
}

void
ksm_index_free(struct ksm_index *ix)
{
	if (ix == NULL)
		return;
	free(ix->slots);
	free(ix);
}

unsigned int
ksm_index_select(const struct ksm_index *ix, uint64_t prefix_hash, int uniform,
    uint64_t pos)
{
	if (uniform)
		return (mix64(pos) & ((1ULL << UNIFORM_SHIFT) - 1)) == 0 ?
		    1U << UNIFORM_SHIFT : 0;
	if ((prefix_hash & ((1ULL << ix->shift) - 1)) == 0)
		return 1U << ix->shift;
	return 0;
}

static struct kslot *
slot_find(struct kslot *slots, size_t cap, uint64_t h)
{
	size_t i = (size_t)mix64(h) & (cap - 1);

	while (slots[i].used && slots[i].h != h)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int
grow(struct ksm_index *ix)
{
	size_t ncap = ix->cap * 2, i;
	struct kslot *ns;

	ns = calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return -1;
	for (i = 0; i < ix->cap; i++)
		if (ix->slots[i].used)
			*slot_find(ns, ncap, ix->slots[i].h) = ix->slots[i];
	free(ix->slots);
	ix->slots = ns;
	ix->cap = ncap;
	return 0;
}

int
ksm_index_add(struct ksm_index *ix, uint64_t h, unsigned int guest,
    unsigned int weight, int is_zero)
{
	struct kslot *s;

	if (weight == 0)
		return 0;
	if ((ix->used + 1) * 2 > ix->cap && grow(ix) == -1)
		return -1;
	s = slot_find(ix->slots, ix->cap, h);
	if (!s->used) {
		s->used = 1;
		s->h = h;
		s->count = 0;
		s->weight = weight;
		s->guest = (int32_t)guest;
		s->zero = is_zero != 0;
		ix->used++;
	} else if (s->guest != (int32_t)guest) {
		s->multi = 1;
	}
	if (s->count < UINT32_MAX)
		s->count++;
	ix->added++;
	return 0;
}

void
ksm_index_result(const struct ksm_index *ix, struct ksm_estimate *e)
{
	size_t i;

	e->saving_pages = e->cross_pages = e->zero_pages = 0;
	e->hashed_pages = ix->added;
	for (i = 0; i < ix->cap; i++) {
		const struct kslot *s = &ix->slots[i];

		if (!s->used)
			continue;
		e->saving_pages += (uint64_t)s->weight * (s->count - 1);
		if (s->multi)
			e->cross_pages += (uint64_t)s->weight * (s->count - 1);
		if (s->zero)
			e->zero_pages += (uint64_t)s->weight * s->count;
	}
}

/* ------------------------------------------------------------------ */
/* Reading the guests */

static char *
slurp(const char *path, size_t *lenp)
{
	size_t cap = 65536, len = 0;
	char *buf, *nb;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return NULL;
	buf = malloc(cap);
	if (buf == NULL)
		goto fail;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= (64U << 20))
				goto fail;
			nb = realloc(buf, cap * 2);
			if (nb == NULL)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		if ((n = io_read_all(fd, buf + len, cap - len)) == -1)
			goto fail;
		len += (size_t)n;
		if (len + 1 < cap)
			break;		/* EOF before the buffer was full */
	}
	close(fd);
	if (lenp != NULL)
		*lenp = len;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* The PFN of the shared zero page, or 0 if pagemap hides PFNs from us. */
static uint64_t
zero_pfn(long ps)
{
	volatile unsigned char *p;
	uint64_t e = 0;
	int fd;

	p = mmap(NULL, (size_t)ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	(void)p[0];		/* read fault: maps the zero page */
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd != -1) {
		if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / (uintptr_t)ps *
		    sizeof(e))) != (ssize_t)sizeof(e))
			e = 0;
		close(fd);
	}
	munmap((void *)p, (size_t)ps);
	if (!(e >> 63))
		return 0;
	return e & ((1ULL << 55) - 1);
}

struct sampler {
	struct ksm_index	*ix;
	long			 ps;
	uint64_t		 zpfn;
	uint64_t		 pm[BATCH_PAGES];
	uint64_t		 addr[BATCH_PAGES];
	unsigned int		 weight[BATCH_PAGES];
	struct iovec		 riov[2 * BATCH_PAGES];
	unsigned char		 prefix[BATCH_PAGES * PREFIX_SPAN];
	unsigned char		*pages;		/* BATCH_PAGES * ps */
	struct ksm_estimate	*e;
	const atomic_int	*stop;		/* NULL, or set: give up */
};

/* Sample one batch of present pages of @pid; -1 if the process is gone. */
static int
sample_batch(struct sampler *sp, pid_t pid, unsigned int guest, size_t np)
{
	struct iovec liov;
	size_t i, nsel = 0;
	ssize_t n;
	int zero;

	if (np == 0)
		return 0;
	for (i = 0; i < np; i++) {
		sp->riov[i].iov_base = (void *)(uintptr_t)sp->addr[i];
		sp->riov[i].iov_len = PREFIX_SPAN;
	}
	liov.iov_base = sp->prefix;
	liov.iov_len = np * PREFIX_SPAN;
	n = process_vm_readv(pid, &liov, 1, sp->riov, np, 0);
	if (n == -1)
		return errno == EFAULT ? 0 : -1;
	/* A short read stops at a page that went away: use what came. */
	np = (size_t)n / PREFIX_SPAN;
	sp->e->examined_pages += np;

	for (i = 0; i < np; i++) {
		const unsigned char *a = sp->prefix + i * PREFIX_SPAN;
		uint64_t ph = ksm_hash_prefix(a, a + PREFIX_OFF2, PREFIX_PIECE,
		    &zero);
		unsigned int w = ksm_index_select(sp->ix, ph, zero,
		    sp->addr[i] ^ ((uint64_t)guest << 52));

		if (w == 0)
			continue;
		sp->addr[nsel] = sp->addr[i];
		sp->weight[nsel] = w;
		sp->riov[nsel].iov_base = (void *)(uintptr_t)sp->addr[i];
		sp->riov[nsel].iov_len = (size_t)sp->ps;
		nsel++;
	}
	if (nsel == 0)
		return 0;
	liov.iov_base = sp->pages;
	liov.iov_len = nsel * (size_t)sp->ps;
	n = process_vm_readv(pid, &liov, 1, sp->riov, nsel, 0);
	if (n == -1)
		return errno == EFAULT ? 0 : -1;
	nsel = (size_t)n / (size_t)sp->ps;
	for (i = 0; i < nsel; i++) {
		const unsigned char *pg = sp->pages + i * (size_t)sp->ps;
		uint64_t h, w0;
		int is_zero;

		/*
		 * A uniform page (zero, poison) costs a compare, not a hash:
		 * its content is one word, and that word names it.
		 */
		memcpy(&w0, pg, 8);
		if (memcmp(pg, pg + 8, (size_t)sp->ps - 8) == 0) {
			h = mix64(w0 ^ 0x5bd1e9955bd1e995ULL) ^ (uint64_t)sp->ps;
			is_zero = w0 == 0;
		} else {
			h = ksm_hash_page(pg, (size_t)sp->ps);
			is_zero = 0;
		}
		if (ksm_index_add(sp->ix, h, guest, sp->weight[i], is_zero) == -1)
			return -2;
	}
	return 0;
}

static int
sample_pid(struct sampler *sp, pid_t pid, unsigned int guest,
    const char *procdir)
{
	struct ksm_region reg[MAX_REGIONS];
	char path[PATH_MAX];
	uint64_t a, pfn;
	size_t np, i, want;
	char *smaps;
	int nreg, r, fd, rc = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%d/smaps", procdir, (int)pid);
	smaps = slurp(path, NULL);
	if (smaps == NULL)
		return -1;
	nreg = ksm_parse_smaps(smaps, MIN_RAM_BYTES, reg, MAX_REGIONS);
	free(smaps);
	if (nreg <= 0)
		return nreg;

	snprintf(path, sizeof(path), "%s/%d/pagemap", procdir, (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	for (r = 0; r < nreg && rc == 0; r++) {
		for (a = reg[r].start; a < reg[r].end && rc == 0;
		    a += (uint64_t)BATCH_PAGES * (uint64_t)sp->ps) {
			if (sp->stop != NULL && atomic_load(sp->stop)) {
				rc = -2;	/* asked to stop: no result */
				break;
			}
			want = (size_t)((reg[r].end - a) / (uint64_t)sp->ps);
			if (want > BATCH_PAGES)
				want = BATCH_PAGES;
			n = pread(fd, sp->pm, want * sizeof(uint64_t),
			    (off_t)(a / (uint64_t)sp->ps * sizeof(uint64_t)));
			if (n <= 0) {
				rc = -1;
				break;
			}
			want = (size_t)n / sizeof(uint64_t);
			for (i = 0, np = 0; i < want; i++) {
				if (!(sp->pm[i] >> 63))		/* not present */
					continue;
				pfn = sp->pm[i] & ((1ULL << 55) - 1);
				if (sp->zpfn != 0 && pfn == sp->zpfn)
					continue;
				sp->e->resident_pages++;
				sp->addr[np++] = a + i * (uint64_t)sp->ps;
			}
			rc = sample_batch(sp, pid, guest, np);
		}
	}
	close(fd);
	return rc;
}

/*
 * ksm_estimate_pids - estimate what merging the guest RAM of @n QEMU
 * processes would save.  A process that cannot be read (gone, no
 * permission) is skipped with its pages uncounted; -1 only if none could
 * be read or memory ran out.
 */
int
ksm_estimate_pids(const pid_t *pids, size_t n, unsigned int shift,
    const char *procdir, struct ksm_estimate *out)
{
	return ksm_estimate_pids_stop(pids, n, shift, procdir, NULL, out);
}

/* The same, giving up (-1) within one batch once *@stop is set. */
int
ksm_estimate_pids_stop(const pid_t *pids, size_t n, unsigned int shift,
    const char *procdir, const atomic_int *stop, struct ksm_estimate *out)
{
	struct timespec t0, t1;
	struct ksm_estimate e;
	struct sampler *sp;
	size_t i, ok = 0;
	int rc;

	memset(&e, 0, sizeof(e));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sp = calloc(1, sizeof(*sp));
	if (sp == NULL)
		return -1;
	sp->ps = sysconf(_SC_PAGESIZE);
	sp->pages = malloc((size_t)BATCH_PAGES * (size_t)sp->ps);
	sp->ix = ksm_index_new(shift);
	if (sp->pages == NULL || sp->ix == NULL) {
		rc = -1;
		goto out;
	}
	sp->zpfn = zero_pfn(sp->ps);
	sp->e = &e;
	sp->stop = stop;
	for (i = 0; i < n; i++) {
		rc = sample_pid(sp, pids[i], (unsigned int)i, procdir);
		if (rc == -2) {		/* out of memory, or stopped */
			rc = -1;
			goto out;
		}
		if (rc == 0)
			ok++;
	}
	ksm_index_result(sp->ix, &e);
	/* Sampling noise must not promise more than there is. */
	if (e.saving_pages > e.resident_pages)
		e.saving_pages = e.resident_pages;
	if (e.cross_pages > e.saving_pages)
		e.cross_pages = e.saving_pages;
	if (e.zero_pages > e.resident_pages)
		e.zero_pages = e.resident_pages;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	e.elapsed_ms = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000 +
	    (uint64_t)((t1.tv_nsec - t0.tv_nsec) / 1000000);
	rc = (ok > 0 || n == 0) ? 0 : -1;
	if (rc == 0)
		*out = e;
out:
	ksm_index_free(sp->ix);
	free(sp->pages);
	free(sp);
	return rc;
}
