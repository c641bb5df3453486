// SPDX-License-Identifier: GPL-2.0
/*
 * Write tracking of /dev/memcoop memory (feature WTRACK): a dirty-page log
 * for garbage collectors and checkpointers, without signals.
 *
 * A client arms a set of pages of its mapping (MEMCOOP_IOC_WT_ARM).  Arming
 * write-protects every page of the set that is in the memory object, in
 * every shared mapping of it (a walk of the object's reverse map), and the
 * mapping keeps write-notify (vrange.c gives it a ->page_mkwrite), so a
 * page faulted in later starts read-only as well.  The first write to a
 * tracked page faults into ->page_mkwrite, which calls
 * mc_wtrack_write_fault(): the page goes into the log (once) and the kernel
 * makes the PTE writable and restarts the instruction.  No signal is sent;
 * the next writes to the page run at full speed.
 *
 * MEMCOOP_IOC_WT_HARVEST returns the user addresses (in the caller's
 * mappings, walked in address order) of the pages logged since the last
 * harvest, each once, and with MEMCOOP_WT_REARM write-protects them again
 * in the same call.  A harvest never drops a logged page: what does not fit
 * in the caller's buffer, and pages the caller maps nowhere, stay in the
 * log and are counted in @remaining.  The log going from empty to
 * non-empty posts MEMCOOP_EVENT_DIRTY, so the fd polls readable for a
 * subscribed client.
 *
 * State is per open file (struct mc_wtrack): an xarray of chunks, each two
 * small bitmaps (@tracked and @dirty, dirty a subset of tracked) for
 * MC_WT_PAGES consecutive page offsets of the file's memory object.  A
 * chunk exists only while one of its pages is tracked, and an xarray mark
 * flags the chunks holding logged pages, so memory and harvest time follow
 * the pages tracked and written, never the offsets: a single page tracked
 * at 1 TiB costs one chunk and a few xarray nodes.  Everything is
 * allocated with GFP_KERNEL_ACCOUNT (charged to the caller's memory
 * cgroup) and bounded per file by the wt_max_kib parameter.
 * Densely written chunks go into scan mode (an xarray mark, see
 * mc_wt_sync()): a re-arm leaves their pages writable and cleans their
 * PTE dirty bits instead, and the next harvest collects the dirty bits in
 * one page table walk per chunk and mapping, where write-protecting would
 * cost a fault per page and cycle; a chunk found sparsely written goes
 * back.  A file subscribed to MEMCOOP_EVENT_DIRTY never uses scan mode.
 * A fork()ed child shares the file and the object, so writes by parent and
 * child land in the same log; a harvest translates offsets through the
 * harvesting process's mappings.  Pages purged as volatile leave both sets
 * (mc_wtrack_forget()).
 *
 * Locking: @mutex serialises arm, disarm and harvest (they sleep: page
 * cache lookups, page locks, rmap walks, user copies).  The xarray's lock
 * protects the chunks' bitmaps, the marks and the counters; the
 * write-fault path takes only it.  Order: @mutex, then mmap_read_lock,
 * then page locks (several at once, in ascending offset order), then
 * i_mmap_rwsem and page table locks (the write-protect walk), then the
 * xarray lock (the fault path: mmap_lock or the vma lock, page lock,
 * xarray lock).  The scan-mode walks (mc_wt_sync()) take i_mmap_rwsem and
 * page table locks under @mutex alone, then page locks one at a time,
 * then the xarray lock, one after the other.  The write-fault hook must be called with the faulting
 * page locked (see mc_internal.h; mc_wtrack_page_mkwrite() is a
 * ->page_mkwrite body that does so), and arm and harvest write-protect a
 * page only while holding its page lock, so a write can never slip
 * between "taken from the log" (or "armed") and "read-only again".
 * The write-fault and purge hooks reach the state through @mf->wt under
 * rcu_read_lock(), because the mappings outlive the file: release
 * unpublishes it and waits for them; a purge holds a reference (@ref)
 * across its work, and the last reference frees the state.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/bitmap.h>
#include <linux/sched/signal.h>
#include <linux/delay.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/moduleparam.h>
#include <linux/sort.h>
#include <linux/xarray.h>

#include "mc_internal.h"

/*
 * Test hook: sleep this long after logging a write, before the fault path
 * goes on to make the PTE writable.  It widens the window that the
 * page-lock contract of mc_wtrack_write_fault() closes, so the in-guest
 * race test can show whether a ->page_mkwrite keeps to it.  Always 0 in
 * production.
 */
static unsigned int wt_fault_delay_us;
MC_PARAM_UINT(wt_fault_delay_us, 0, 10000, 0644,
	      "Test hook: microseconds to sleep after logging a tracked write (0..10000, default 0)");

/*
 * Kernel memory one open file may use for write tracking.  Each chunk is
 * counted with one xarray node, an upper bound for all but the first few
 * chunks of a file (the few nodes above the leaves are shared).
 */
static unsigned int wt_max_kib = 16384;
MC_PARAM_UINT(wt_max_kib, 64, 4U << 20, 0644,
	      "Write-tracking memory per open file, KiB (64..4194304, default 16384); arming more fails with ENOSPC");

#define MC_WT_SHIFT	9
#define MC_WT_PAGES	(1UL << MC_WT_SHIFT)	/* page offsets per chunk */
#define MC_WT_DIRTY	XA_MARK_0		/* the chunk has logged pages */
/* Addresses gathered per mmap_lock hold, then copied out. */
#define MC_WT_BATCH	192
/*
 * Re-arming: a run of logged pages at most MC_WT_GAP apart (up to
 * MC_WT_GROUP) is write-protected by one walk of the page tables, which
 * costs about as much as write-protecting 3 pages one by one, plus a
 * little per page table entry (measured in the lab, TCG): worth it from
 * MC_WT_WALK_MIN pages on.
 */
#define MC_WT_GROUP	128
#define MC_WT_GAP	16
#define MC_WT_WALK_MIN	4
/*
 * Scan mode (see mc_wt_sync()): a chunk a harvest finds with at least
 * MC_WT_SCAN_ON logged pages stops write-protecting its pages and is read
 * from the page tables' dirty bits instead; a scan that finds fewer than
 * MC_WT_SCAN_OFF puts it back.  One scan of a chunk (walk 512 PTEs per
 * mapping, one TLB flush) costs about as much as two or three write faults
 * (measured in the lab, TCG).
 */
#define MC_WT_SCAN	XA_MARK_1		/* the chunk is in scan mode */
#define MC_WT_SCAN_ON	16
#define MC_WT_SCAN_OFF	4

/* Two bitmaps for MC_WT_PAGES page offsets (128 bytes). */
struct mc_wt_chunk {
	DECLARE_BITMAP(tracked, MC_WT_PAGES);	/* writes to the page are logged */
	DECLARE_BITMAP(dirty, MC_WT_PAGES);	/* written since the last harvest */
};

#define MC_WT_CHUNK_COST	(sizeof(struct mc_wt_chunk) + sizeof(struct xa_node))

/**
 * struct mc_wtrack - write-tracking state of one open file.
 * @ref:      the file, plus a purge working on it (mc_wtrack_forget()).
 * @mutex:    serialises arm, disarm and harvest.
 * @chunks:   chunk index (page offset >> MC_WT_SHIFT) -> struct mc_wt_chunk;
 *            its lock protects the chunks and everything below.
 * @nchunks:  chunks allocated (at most wt_max_kib worth).
 * @ntracked: pages tracked.
 * @ndirty:   pages logged (the log's length).
 * @seq:      sequence number of the last MEMCOOP_EVENT_DIRTY.
 * @logged:   pages ever logged (statistics).
 */
struct mc_wtrack {
	refcount_t ref;
	struct mutex mutex;
	struct xarray chunks;
	unsigned long nchunks;
	unsigned long ntracked;
	unsigned long ndirty;
	u64 seq;
	u64 logged;
};

/* What a harvest gathers per mmap_lock hold (one allocation, < 4 KiB). */
struct mc_wt_buf {
	u64 addrs[MC_WT_BATCH];
	pgoff_t pgs[MC_WT_BATCH];
	struct folio *folios[MC_WT_GROUP];
};

static struct mc_wtrack *mc_wt_get(struct mc_file *mf)
{
	/* pairs with smp_store_release() in mc_wt_get_or_alloc() */
	return smp_load_acquire(&mf->wt);
}

static struct mc_wtrack *mc_wt_get_or_alloc(struct mc_file *mf)
{
	struct mc_wtrack *wt;

	wt = mc_wt_get(mf);
	if (wt)
		return wt;
	mutex_lock(&mf->lock);
	wt = mf->wt;
	if (!wt) {
		wt = kzalloc(sizeof(*wt), GFP_KERNEL_ACCOUNT);
		if (wt) {
			refcount_set(&wt->ref, 1);
			mutex_init(&wt->mutex);
			xa_init(&wt->chunks);
			smp_store_release(&mf->wt, wt);
		}
	}
	mutex_unlock(&mf->lock);
	return wt;
}

/* Drop a reference; the last one frees the state.  May sleep. */
static void mc_wt_put(struct mc_wtrack *wt)
{
	struct mc_wt_chunk *c;
	unsigned long idx;

	if (!refcount_dec_and_test(&wt->ref))
		return;
	pr_debug("wtrack: release: %llu pages logged, %lu tracked, %lu chunks\n",
		 wt->logged, wt->ntracked, wt->nchunks);
	xa_for_each(&wt->chunks, idx, c) {
		kfree(c);
		cond_resched();
	}
	xa_destroy(&wt->chunks);
	mutex_destroy(&wt->mutex);
	kfree(wt);
}

/* The log stopped being empty (its @seq-th time). */
static void mc_wt_post_dirty(struct mc_file *mf, u64 seq)
{
	struct memcoop_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = MEMCOOP_EVENT_DIRTY;
	ev.seq = seq;
	mc_file_post_event(mf, &ev);
}

/*
 * Whether chunks of @mf may be in scan mode: the dirty-bit helpers are
 * built in, and no MEMCOOP_EVENT_DIRTY subscriber waits for a fault.
 */
static bool mc_wt_scan_ok(struct mc_file *mf)
{
	return IS_ENABLED(CONFIG_MAPPING_DIRTY_HELPERS) &&
	       !(READ_ONCE(mf->subscribed) & BIT_ULL(MEMCOOP_EVENT_DIRTY));
}

static unsigned long mc_wt_max_chunks(void)
{
	return ((unsigned long)READ_ONCE(wt_max_kib) << 10) / MC_WT_CHUNK_COST;
}

/* Unlink chunk @idx (it tracks nothing now).  Caller holds the xarray lock. */
static void __mc_wt_unlink(struct mc_wtrack *wt, unsigned long idx)
{
	__xa_erase(&wt->chunks, idx);
	wt->nchunks--;
}

/* Free chunk @idx if it exists and tracks nothing.  Takes the xarray lock. */
static void mc_wt_free_if_empty(struct mc_wtrack *wt, unsigned long idx)
{
	struct mc_wt_chunk *c;

	xa_lock(&wt->chunks);
	c = xa_load(&wt->chunks, idx);
	if (c && bitmap_empty(c->tracked, MC_WT_PAGES))
		__mc_wt_unlink(wt, idx);
	else
		c = NULL;
	xa_unlock(&wt->chunks);
	kfree(c);
}

/*
 * mc_wt_clear() - untrack [@start, @end) and take it out of the log.
 * Chunks this empties are freed; chunks that were empty already (just
 * allocated by an arm in progress) are left alone.  Takes the xarray lock
 * per chunk; may sleep.  Returns the pages that were tracked.
 */
static unsigned long mc_wt_clear(struct mc_wtrack *wt, pgoff_t start, pgoff_t end)
{
	struct mc_wt_chunk *c, *dead;
	unsigned long idx, lo, hi, t0, d0, t1, d1, n = 0;

	if (start >= end)
		return 0;
	xa_for_each_range(&wt->chunks, idx, c, start >> MC_WT_SHIFT,
			  (end - 1) >> MC_WT_SHIFT) {
		dead = NULL;
		lo = max(start, idx << MC_WT_SHIFT) - (idx << MC_WT_SHIFT);
		hi = min_t(unsigned long, end - (idx << MC_WT_SHIFT), MC_WT_PAGES);
		xa_lock(&wt->chunks);
		c = xa_load(&wt->chunks, idx);
		if (c) {
			t0 = bitmap_weight(c->tracked, MC_WT_PAGES);
			d0 = bitmap_weight(c->dirty, MC_WT_PAGES);
			bitmap_clear(c->tracked, lo, hi - lo);
			bitmap_clear(c->dirty, lo, hi - lo);
			t1 = bitmap_weight(c->tracked, MC_WT_PAGES);
			d1 = bitmap_weight(c->dirty, MC_WT_PAGES);
			wt->ntracked -= t0 - t1;
			wt->ndirty -= d0 - d1;
			n += t0 - t1;
			if (!d1)
				__xa_clear_mark(&wt->chunks, idx, MC_WT_DIRTY);
			if (t0 && !t1) {
				__mc_wt_unlink(wt, idx);
				dead = c;
			}
		}
		xa_unlock(&wt->chunks);
		kfree(dead);
		cond_resched();
	}
	return n;
}

/*
 * Free the chunks of @pgs[0 .. @n) that track nothing any more (a harvest
 * without re-arm emptied them).  Caller holds @wt->mutex.
 */
static void mc_wt_sweep(struct mc_wtrack *wt, const pgoff_t *pgs, unsigned int n)
{
	unsigned long idx, last = ULONG_MAX;
	unsigned int i;

	for (i = 0; i < n; i++) {
		idx = pgs[i] >> MC_WT_SHIFT;
		if (idx != last)
			mc_wt_free_if_empty(wt, idx);
		last = idx;
	}
}

/*
 * The folio holding page @pgoff of @mapping, locked and referenced, or
 * NULL if it is not in the page cache.  __filemap_get_folio() answers
 * NULL (6.1) or ERR_PTR(-ENOENT) (6.3 on) for a missing page; both are
 * taken here, so no version test is needed.
 */
static struct folio *mc_wt_lock_folio(struct address_space *mapping, pgoff_t pgoff)
{
	struct folio *folio = __filemap_get_folio(mapping, pgoff, FGP_LOCK, 0);

	return IS_ERR_OR_NULL(folio) ? NULL : folio;
}

/**
 * mc_wt_wrprotect() - write-protect @n locked folios in every mapping.
 * @mapping: the object's pages.
 * @folios:  locked folios of @mapping, in ascending offset order.
 * @n:       at least 1.
 *
 * From MC_WT_WALK_MIN folios on, one walk of the reverse map and the page
 * tables over the span of the folios (pages in between that are not
 * tracked become read-only too, which costs them one more fault, never a
 * log entry), with one TLB flush per mapping, where folio_mkclean() walks
 * and flushes per page.  The PTEs keep their dirty bits, so nothing of the
 * page's dirtiness is lost.  Fewer folios, or large ones (the walk does
 * not split huge mappings), take folio_mkclean().
 */
static void mc_wt_wrprotect(struct address_space *mapping, struct folio **folios,
			    unsigned int n)
{
	unsigned int i;

#if IS_ENABLED(CONFIG_MAPPING_DIRTY_HELPERS)
	pgoff_t first = folios[0]->index;
	bool large = false;

	for (i = 0; i < n; i++)
		large |= folio_test_large(folios[i]);
	if (!large && n >= MC_WT_WALK_MIN) {
		wp_shared_mapping_range(mapping, first, folio_next_index(folios[n - 1]) - first);
		return;
	}
#endif
	for (i = 0; i < n; i++) {
		/* keep the dirtiness the PTEs carried, as folio_clear_dirty_for_io() does */
		if (folio_mkclean(folios[i]))
			folio_mark_dirty(folios[i]);
	}
}

#if IS_ENABLED(CONFIG_MAPPING_DIRTY_HELPERS)
/*
 * The folios of the pages in @bits (chunk at page offset @base) had dirty
 * PTEs that mc_wt_sync() cleaned: keep the folios dirty, as
 * folio_clear_dirty_for_io() would.  A folio mapped writable is normally
 * dirty already; this looks up only the pages found dirty.
 */
static void mc_wt_keep_dirty(struct address_space *mapping, pgoff_t base,
			     const unsigned long *bits)
{
	struct folio_batch fb;
	struct folio *f;
	unsigned int s, e, i;
	pgoff_t index;

	folio_batch_init(&fb);
	for_each_set_bitrange(s, e, bits, MC_WT_PAGES) {
		index = base + s;
		while (index < base + e) {
			if (!filemap_get_folios_contig(mapping, &index, base + e - 1, &fb)) {
				index++;	/* purged meanwhile */
				continue;
			}
			for (i = 0; i < folio_batch_count(&fb); i++) {
				f = fb.folios[i];
				if (folio_test_dirty(f))
					continue;
				folio_lock(f);
				if (f->mapping == mapping)
					folio_mark_dirty(f);
				folio_unlock(f);
			}
			folio_batch_release(&fb);
		}
	}
}

/* What mc_wt_sync() does with a chunk. */
enum mc_wt_sync_how {
	MC_WT_SYNC_ENTER,	/* enter scan mode: clean the dirty bits only */
	MC_WT_SYNC_SCAN,	/* in scan mode: log the dirty bits, clean them */
	MC_WT_SYNC_LEAVE,	/* leave it: write-protect, then as SCAN */
};

/**
 * mc_wt_sync() - log the writes the page tables of chunk @idx recorded.
 * @mf:      the file (for MEMCOOP_EVENT_DIRTY).
 * @wt:      its state.
 * @mapping: the object's pages.
 * @idx:     a chunk in scan mode (MC_WT_SCAN), or one entering it.
 * @how:     see enum mc_wt_sync_how.
 *
 * In scan mode a harvest does not write-protect the pages it takes from
 * the log: they stay writable, and their next writes only set the PTE
 * dirty bit, without a fault.  This cleans the dirty bits of the chunk's
 * PTEs in every mapping (one walk, one TLB flush per mapping) and logs the
 * tracked pages among them.  No write is lost: a PTE dirtied during the
 * walk is either seen or stays dirty for the next sync, and a page
 * write-protected earlier still faults into the log.  Leaving, every PTE
 * is write-protected before the walk (the dirty bits are kept), so a
 * write after it faults; the pages that faulted before the walk saw them
 * are in the log, and the harvest write-protects them again under their
 * page locks, as in the ordinary mode.  Entering, the dirty bits say
 * nothing the log does not (every write since the last re-arm faulted
 * into it), and some predate the arm: they are cleaned, not logged.
 * Posts MEMCOOP_EVENT_DIRTY if this makes the log non-empty.
 * Caller holds @wt->mutex and no page lock.  Returns the pages the log
 * now holds for the chunk.
 */
static unsigned long mc_wt_sync(struct mc_file *mf, struct mc_wtrack *wt,
				struct address_space *mapping, unsigned long idx,
				enum mc_wt_sync_how how)
{
	DECLARE_BITMAP(seen, MC_WT_PAGES);
	pgoff_t base = idx << MC_WT_SHIFT, s = 0, e = 0;
	struct mc_wt_chunk *c;
	unsigned long n = 0, d0;
	u64 seq = 0;

	bitmap_zero(seen, MC_WT_PAGES);
	if (how == MC_WT_SYNC_LEAVE)
		wp_shared_mapping_range(mapping, base, MC_WT_PAGES);
	clean_record_shared_mapping_range(mapping, base, MC_WT_PAGES, base, seen, &s, &e);
	if (s < e)
		mc_wt_keep_dirty(mapping, base, seen);

	xa_lock(&wt->chunks);
	c = xa_load(&wt->chunks, idx);
	if (c) {
		d0 = bitmap_weight(c->dirty, MC_WT_PAGES);
		if (how != MC_WT_SYNC_ENTER) {
			bitmap_and(seen, seen, c->tracked, MC_WT_PAGES);
			bitmap_or(c->dirty, c->dirty, seen, MC_WT_PAGES);
		}
		n = bitmap_weight(c->dirty, MC_WT_PAGES);
		if (n > d0 && !wt->ndirty)
			seq = ++wt->seq;
		wt->ndirty += n - d0;
		wt->logged += n - d0;
		if (n)
			__xa_set_mark(&wt->chunks, idx, MC_WT_DIRTY);
		if (how == MC_WT_SYNC_LEAVE)
			__xa_clear_mark(&wt->chunks, idx, MC_WT_SCAN);
		else
			__xa_set_mark(&wt->chunks, idx, MC_WT_SCAN);
	}
	xa_unlock(&wt->chunks);
	if (seq)
		mc_wt_post_dirty(mf, seq);
	cond_resched();
	return n;
}

/*
 * mc_wt_sync_all() - before a harvest: log what the page tables of the
 * chunks in scan mode recorded, and choose each dirty chunk's mode for
 * the re-arm (see MC_WT_SCAN_ON).  A file subscribed to
 * MEMCOOP_EVENT_DIRTY keeps every chunk write-protected: a write that
 * does not fault could not post the event.  Work: the chunks in scan mode
 * and the dirty ones, a walk of 512 PTEs per mapping for each chunk
 * scanned.  Caller holds @wt->mutex.
 */
static void mc_wt_sync_all(struct mc_file *mf, struct mc_wtrack *wt,
			   struct address_space *mapping, bool rearm)
{
	bool scan_ok = rearm && mc_wt_scan_ok(mf);
	struct mc_wt_chunk *c;
	unsigned long idx, n;
	bool enter;

	xa_for_each_marked(&wt->chunks, idx, c, MC_WT_SCAN) {
		n = mc_wt_sync(mf, wt, mapping, idx, MC_WT_SYNC_SCAN);
		if (n < MC_WT_SCAN_OFF || !scan_ok)
			mc_wt_sync(mf, wt, mapping, idx, MC_WT_SYNC_LEAVE);
		if (fatal_signal_pending(current))
			return;
	}
	if (!scan_ok)
		return;
	xa_for_each_marked(&wt->chunks, idx, c, MC_WT_DIRTY) {
		xa_lock(&wt->chunks);
		c = xa_load(&wt->chunks, idx);
		enter = c && !xa_get_mark(&wt->chunks, idx, MC_WT_SCAN) &&
			bitmap_weight(c->dirty, MC_WT_PAGES) >= MC_WT_SCAN_ON;
		xa_unlock(&wt->chunks);
		/* its logged pages are writable and dirty: clean them */
		if (enter)
			mc_wt_sync(mf, wt, mapping, idx, MC_WT_SYNC_ENTER);
		cond_resched();
	}
}

/*
 * Before an arm: the chunks in scan mode that [@start, @end) touches
 * forget the dirty bits of pages not tracked yet (written before they
 * were armed) and log those of tracked pages.
 */
static void mc_wt_sync_range(struct mc_file *mf, struct mc_wtrack *wt,
			     struct address_space *mapping, pgoff_t start, pgoff_t end)
{
	struct mc_wt_chunk *c;
	unsigned long idx;

	xa_for_each_range(&wt->chunks, idx, c, start >> MC_WT_SHIFT, (end - 1) >> MC_WT_SHIFT) {
		if (xa_get_mark(&wt->chunks, idx, MC_WT_SCAN))
			mc_wt_sync(mf, wt, mapping, idx, MC_WT_SYNC_SCAN);
		cond_resched();
	}
}

/**
 * mc_wtrack_subscribed() - the file just subscribed to MEMCOOP_EVENT_DIRTY.
 * @mf: the file.
 *
 * Its chunks leave scan mode, so that the next write to any tracked page
 * faults and posts the event; writes that only dirtied a PTE since the
 * last harvest are logged now (and post it).  Takes @wt->mutex; sleeps.
 */
void mc_wtrack_subscribed(struct mc_file *mf)
{
	struct mc_wtrack *wt = mc_wt_get(mf);
	struct address_space *mapping = mc_vrange_mapping(mf);
	struct mc_wt_chunk *c;
	unsigned long idx;

	if (!wt || !mapping)
		return;
	mutex_lock(&wt->mutex);
	xa_for_each_marked(&wt->chunks, idx, c, MC_WT_SCAN)
		mc_wt_sync(mf, wt, mapping, idx, MC_WT_SYNC_LEAVE);
	mutex_unlock(&wt->mutex);
}
#else
static void mc_wt_sync_all(struct mc_file *mf, struct mc_wtrack *wt,
			   struct address_space *mapping, bool rearm)
{
}

static void mc_wt_sync_range(struct mc_file *mf, struct mc_wtrack *wt,
			     struct address_space *mapping, pgoff_t start, pgoff_t end)
{
}

void mc_wtrack_subscribed(struct mc_file *mf)
{
}
#endif

/*
 * mc_wt_protect_range() - write-protect the pages of [@start, @end) that
 * are in the object (a page not in it has no PTE anywhere: its first
 * write will fault through ->page_mkwrite anyway), a batch of page locks
 * at a time.  Sleeps; stops early for a fatal signal.
 */
static void mc_wt_protect_range(struct address_space *mapping, pgoff_t start, pgoff_t end)
{
	struct folio_batch fb;
	struct folio *f;
	pgoff_t index = start;
	unsigned int i, k;

	folio_batch_init(&fb);
	while (index < end && filemap_get_folios(mapping, &index, end - 1, &fb)) {
		for (i = k = 0; i < folio_batch_count(&fb); i++) {
			f = fb.folios[i];
			folio_lock(f);
			if (f->mapping != mapping) {	/* purged meanwhile */
				folio_unlock(f);
				folio_put(f);
				continue;
			}
			fb.folios[k++] = f;
		}
		fb.nr = k;
		if (k)
			mc_wt_wrprotect(mapping, fb.folios, k);
		for (i = 0; i < k; i++)
			folio_unlock(fb.folios[i]);
		folio_batch_release(&fb);
		cond_resched();
		if (fatal_signal_pending(current))
			break;
	}
}

/*
 * The pages of [@start, @end) that an arm write-protects: those of chunks
 * not in scan mode (mc_wt_sync_range() cleaned the others' dirty bits).
 */
static void mc_wt_protect_armed(struct mc_wtrack *wt, struct address_space *mapping,
				pgoff_t start, pgoff_t end)
{
	unsigned long idx;
	pgoff_t a, b;

	for (idx = start >> MC_WT_SHIFT; idx <= (end - 1) >> MC_WT_SHIFT; idx++) {
		if (xa_get_mark(&wt->chunks, idx, MC_WT_SCAN))
			continue;
		a = max(start, idx << MC_WT_SHIFT);
		b = min(end, (idx + 1) << MC_WT_SHIFT);
		mc_wt_protect_range(mapping, a, b);
		if (fatal_signal_pending(current))
			break;
		cond_resched();
	}
}

static int mc_wt_range_cmp(const void *a, const void *b)
{
	const struct memcoop_wt_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Copy the user list in and turn it into sorted, disjoint ranges of page
 * offsets (start) and page counts (len), checking every range.  Returns
 * the list (*@n: its new length) or an ERR_PTR.
 */
static struct memcoop_wt_range *mc_wt_resolve_list(struct mc_file *mf, u64 uptr, u32 *n)
{
	struct memcoop_wt_range *r;
	struct mm_struct *mm = current->mm;
	pgoff_t pgoff;
	u32 i, k, count = *n;
	int err = 0;

	r = kvmalloc_array(count, sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return ERR_PTR(-ENOMEM);
	if (copy_from_user(r, u64_to_user_ptr(uptr), array_size(count, sizeof(*r)))) {
		kvfree(r);
		return ERR_PTR(-EFAULT);
	}

	mmap_read_lock(mm);
	for (i = 0; i < count; i++) {
		u64 start = r[i].start, len = r[i].len;

		if (!len || !PAGE_ALIGNED(start) || !PAGE_ALIGNED(len) ||
		    start + len < start) {
			err = -EINVAL;
			break;
		}
		err = mc_vrange_resolve(mf, start, len, &pgoff);
		if (err)
			break;
		r[i].start = pgoff;
		r[i].len = len >> PAGE_SHIFT;
		cond_resched();
	}
	mmap_read_unlock(mm);
	if (err) {
		kvfree(r);
		return ERR_PTR(err);
	}

	/* overlapping and adjacent ranges merge: a page listed twice counts once */
	sort(r, count, sizeof(*r), mc_wt_range_cmp, NULL);
	for (i = 1, k = 0; i < count; i++) {
		if (r[i].start <= r[k].start + r[k].len)
			r[k].len = max(r[k].len, r[i].start + r[i].len - r[k].start);
		else
			r[++k] = r[i];
	}
	*n = k + 1;
	return r;
}

/*
 * mc_wt_add_chunks() - make sure every chunk the @n sorted, disjoint
 * ranges of @r touch exists, within the per-file limit.  Caller holds
 * @wt->mutex.  With @scan, new chunks start in scan mode (the arm cleans
 * their dirty bits instead of write-protecting them; the first harvest
 * decides).  On error, the chunks added here are gone again (they track
 * nothing yet) and -ENOSPC (over wt_max_kib) or -ENOMEM is returned.
 */
static int mc_wt_add_chunks(struct mc_wtrack *wt, const struct memcoop_wt_range *r, u32 n,
			    bool scan)
{
	unsigned long first, last, prev = ULONG_MAX, idx, spanned = 0, present = 0;
	struct mc_wt_chunk *c;
	int err = 0;
	u32 i;

	/* count first, so that a list over the limit changes nothing */
	for (i = 0; i < n; i++) {
		first = r[i].start >> MC_WT_SHIFT;
		last = (r[i].start + r[i].len - 1) >> MC_WT_SHIFT;
		if (prev != ULONG_MAX && first <= prev)
			first = prev + 1;
		prev = last;
		if (first > last)
			continue;
		spanned += last - first + 1;
		xa_for_each_range(&wt->chunks, idx, c, first, last) {
			present++;
			cond_resched();
		}
	}
	if (READ_ONCE(wt->nchunks) + spanned - present > mc_wt_max_chunks())
		return -ENOSPC;

	for (i = 0; i < n && !err; i++) {
		first = r[i].start >> MC_WT_SHIFT;
		last = (r[i].start + r[i].len - 1) >> MC_WT_SHIFT;
		for (idx = first; idx <= last; idx++) {
			if (xa_load(&wt->chunks, idx))
				continue;
			c = kzalloc(sizeof(*c), GFP_KERNEL_ACCOUNT);
			if (!c) {
				err = -ENOMEM;
				break;
			}
			err = xa_insert(&wt->chunks, idx, c, GFP_KERNEL_ACCOUNT);
			if (err) {
				kfree(c);
				break;
			}
			xa_lock(&wt->chunks);
			wt->nchunks++;
			if (scan)
				__xa_set_mark(&wt->chunks, idx, MC_WT_SCAN);
			xa_unlock(&wt->chunks);
			cond_resched();
		}
	}
	for (i = 0; err && i < n; i++) {
		first = r[i].start >> MC_WT_SHIFT;
		last = (r[i].start + r[i].len - 1) >> MC_WT_SHIFT;
		xa_for_each_range(&wt->chunks, idx, c, first, last) {
			mc_wt_free_if_empty(wt, idx);
			cond_resched();
		}
	}
	return err;
}

/* Track [@start, @end); every chunk exists.  Returns the pages newly tracked. */
static unsigned long mc_wt_track(struct mc_wtrack *wt, pgoff_t start, pgoff_t end)
{
	struct mc_wt_chunk *c;
	unsigned long idx, lo, hi, t0, n = 0;

	for (idx = start >> MC_WT_SHIFT; idx <= (end - 1) >> MC_WT_SHIFT; idx++) {
		lo = max(start, idx << MC_WT_SHIFT) - (idx << MC_WT_SHIFT);
		hi = min_t(unsigned long, end - (idx << MC_WT_SHIFT), MC_WT_PAGES);
		xa_lock(&wt->chunks);
		c = xa_load(&wt->chunks, idx);
		if (!WARN_ON_ONCE(!c)) {
			t0 = bitmap_weight(c->tracked, MC_WT_PAGES);
			bitmap_set(c->tracked, lo, hi - lo);
			t0 = bitmap_weight(c->tracked, MC_WT_PAGES) - t0;
			wt->ntracked += t0;
			n += t0;
		}
		xa_unlock(&wt->chunks);
		cond_resched();
	}
	return n;
}

/**
 * mc_wt_arm() - MEMCOOP_IOC_WT_ARM: start or stop tracking a list of ranges.
 * @mf:   the file.
 * @uarg: struct memcoop_wt_arm.
 *
 * The whole list is checked before anything changes: a bad range (outside
 * a mapping of @mf, unaligned, empty, wrapping), a count of 0 or above
 * MEMCOOP_WT_MAX_RANGES, or more tracking state than wt_max_kib allows
 * (-ENOSPC) leaves the state as it was.  Overlapping ranges count their
 * common pages once.  Takes @wt->mutex, then mmap_read_lock; sleeps.
 */
static long mc_wt_arm(struct mc_file *mf, struct memcoop_wt_arm __user *uarg)
{
	struct memcoop_wt_arm arm;
	struct memcoop_wt_range *r;
	struct address_space *mapping;
	struct mc_wtrack *wt;
	u64 pages = 0;
	u32 i, n;
	long err;

	if (copy_from_user(&arm, uarg, sizeof(arm)))
		return -EFAULT;
	if (arm.reserved || (arm.flags & ~MEMCOOP_WT_DISARM) || !arm.count)
		return -EINVAL;
	if (arm.count > MEMCOOP_WT_MAX_RANGES)
		return -E2BIG;
	mapping = mc_vrange_mapping(mf);
	if (!mapping)
		return -EINVAL;		/* nothing mapped yet */
	wt = mc_wt_get_or_alloc(mf);
	if (!wt)
		return -ENOMEM;

	if (mutex_lock_interruptible(&wt->mutex))
		return -ERESTARTSYS;
	n = arm.count;
	r = mc_wt_resolve_list(mf, arm.ranges, &n);
	if (IS_ERR(r)) {
		err = PTR_ERR(r);
		goto out_unlock;
	}

	if (arm.flags & MEMCOOP_WT_DISARM) {
		for (i = 0; i < n; i++)
			pages += mc_wt_clear(wt, r[i].start, r[i].start + r[i].len);
	} else {
		err = mc_wt_add_chunks(wt, r, n, mc_wt_scan_ok(mf));
		if (err)
			goto out_free;
		for (i = 0; i < n; i++)
			mc_wt_sync_range(mf, wt, mapping, r[i].start, r[i].start + r[i].len);
		for (i = 0; i < n; i++) {
			mc_wt_track(wt, r[i].start, r[i].start + r[i].len);
			pages += r[i].len;
		}
		/*
		 * Tracked first, then read-only (under the page locks): a
		 * write racing with this either faults after its page is
		 * protected (and is logged) or completed before, when the
		 * page was not armed yet.  Chunks in scan mode had their
		 * dirty bits cleaned instead (before tracking, so a dirty
		 * bit they show later is a write after that).  Dying: the
		 * pages stay tracked, the rest unprotected.
		 */
		for (i = 0; i < n && !fatal_signal_pending(current); i++)
			mc_wt_protect_armed(wt, mapping, r[i].start, r[i].start + r[i].len);
	}
	arm.armed = pages;
	pr_debug("wtrack: %s %llu pages (%u ranges), %lu tracked in %lu chunks\n",
		 arm.flags & MEMCOOP_WT_DISARM ? "disarmed" : "armed",
		 arm.armed, arm.count, READ_ONCE(wt->ntracked), READ_ONCE(wt->nchunks));

	err = 0;
	if (put_user(arm.armed, &uarg->armed))
		err = -EFAULT;
out_free:
	kvfree(r);
out_unlock:
	mutex_unlock(&wt->mutex);
	return err;
}

/*
 * mc_wt_scan() - the logged pages of chunk @idx in [@from, @to), in
 * order, at most @max, into @pg; with @grouped, unless the chunk is in
 * scan mode (*@scan set then), only MC_WT_GROUP pages of a run whose gaps
 * are at most MC_WT_GAP pages (one write-protect walk).  @from lies in
 * the chunk.  Returns how many.
 */
static unsigned int mc_wt_scan(struct mc_wtrack *wt, unsigned long idx, pgoff_t from,
			       pgoff_t to, pgoff_t *pg, unsigned int max, bool grouped,
			       bool *scan)
{
	unsigned long base = idx << MC_WT_SHIFT, bit, lim;
	struct mc_wt_chunk *c;
	unsigned int n = 0;

	lim = min_t(unsigned long, to - base, MC_WT_PAGES);
	xa_lock(&wt->chunks);
	c = xa_load(&wt->chunks, idx);
	*scan = c && xa_get_mark(&wt->chunks, idx, MC_WT_SCAN);
	if (*scan)
		grouped = false;
	else if (grouped)
		max = min_t(unsigned int, max, MC_WT_GROUP);
	if (c) {
		for (bit = find_next_bit(c->dirty, lim, from - base); bit < lim && n < max;
		     bit = find_next_bit(c->dirty, lim, bit + 1)) {
			if (grouped && n && base + bit - pg[n - 1] > MC_WT_GAP)
				break;
			pg[n++] = base + bit;
		}
	}
	xa_unlock(&wt->chunks);
	return n;
}

/**
 * mc_wt_take() - take pages out of the log.
 * @wt:      the state.
 * @mapping: the object's pages.
 * @pg:      page offsets seen logged, ascending; on return, those taken.
 * @n:       how many.
 * @rearm:   keep them tracked and write-protect them again.
 * @scan:    the chunk is in scan mode: @rearm keeps them tracked only
 *           (mc_wt_sync() reads their next writes from the page tables).
 * @folios:  room for MC_WT_GROUP folio pointers (@n at most that with
 *           @rearm, unless @scan).
 *
 * With @rearm the log entries are cleared and the pages write-protected
 * under their page locks, which the write-fault path holds while logging
 * and making the PTE writable: a concurrent write either is in this
 * harvest (it completed before) or faults again and is logged for the
 * next one.  Without @rearm the pages stop being tracked (their chunks
 * are freed later, by mc_wt_sweep()).
 * Caller holds @wt->mutex and mmap_read_lock.  Returns how many were
 * still logged (a purge may have removed some meanwhile).
 */
static unsigned int mc_wt_take(struct mc_wtrack *wt, struct address_space *mapping,
			       pgoff_t *pg, unsigned int n, bool rearm, bool scan,
			       struct folio **folios)
{
	struct mc_wt_chunk *c;
	unsigned int i, k = 0, nf = 0;
	unsigned long idx, bit;
	struct folio *f;

	for (i = 0; rearm && !scan && i < n; i++) {
		f = nf ? folios[nf - 1] : NULL;
		if (f && pg[i] < folio_next_index(f))
			continue;		/* same (large) folio */
		f = mc_wt_lock_folio(mapping, pg[i]);
		if (f)
			folios[nf++] = f;
	}

	xa_lock(&wt->chunks);
	for (i = 0, idx = ULONG_MAX, c = NULL; i < n; i++) {
		if (pg[i] >> MC_WT_SHIFT != idx) {
			idx = pg[i] >> MC_WT_SHIFT;
			c = xa_load(&wt->chunks, idx);
		}
		bit = pg[i] & (MC_WT_PAGES - 1);
		if (!c || !__test_and_clear_bit(bit, c->dirty))
			continue;
		wt->ndirty--;
		if (!rearm) {
			__clear_bit(bit, c->tracked);
			wt->ntracked--;
		}
		if (bitmap_empty(c->dirty, MC_WT_PAGES))
			__xa_clear_mark(&wt->chunks, idx, MC_WT_DIRTY);
		pg[k++] = pg[i];
	}
	xa_unlock(&wt->chunks);

	if (nf) {
		if (k)
			mc_wt_wrprotect(mapping, folios, nf);
		for (i = 0; i < nf; i++) {
			folio_unlock(folios[i]);
			folio_put(folios[i]);
		}
	}
	return k;
}

/* Put pages taken from the log back after a failed copy to user space. */
static void mc_wt_undo(struct mc_wtrack *wt, const pgoff_t *pg, unsigned int n)
{
	struct mc_wt_chunk *c;
	unsigned long idx, bit;
	unsigned int i;

	xa_lock(&wt->chunks);
	for (i = 0; i < n; i++) {
		idx = pg[i] >> MC_WT_SHIFT;
		bit = pg[i] & (MC_WT_PAGES - 1);
		c = xa_load(&wt->chunks, idx);
		if (!c)
			continue;	/* purged meanwhile */
		if (!__test_and_set_bit(bit, c->tracked))
			wt->ntracked++;
		if (!__test_and_set_bit(bit, c->dirty))
			wt->ndirty++;
		__xa_set_mark(&wt->chunks, idx, MC_WT_DIRTY);
	}
	xa_unlock(&wt->chunks);
}

/*
 * mc_wt_collect() - take logged pages of [@pg, @end) (one mapping, page
 * offsets; @vstart is the user address of offset @pg0) into @b from slot
 * *@n on, until @room slots are used.  Returns the page offset where it
 * stopped (@end if it got through).
 */
static pgoff_t mc_wt_collect(struct mc_wtrack *wt, struct address_space *mapping,
			     unsigned long vstart, pgoff_t pg0, pgoff_t pg, pgoff_t end,
			     bool rearm, struct mc_wt_buf *b, unsigned int *n,
			     unsigned int room)
{
	unsigned long idx;
	unsigned int got, k, i;
	bool scan;

	while (pg < end && *n < room) {
		idx = pg >> MC_WT_SHIFT;
		if (!xa_find(&wt->chunks, &idx, (end - 1) >> MC_WT_SHIFT, MC_WT_DIRTY))
			return end;
		if (idx > pg >> MC_WT_SHIFT)
			pg = idx << MC_WT_SHIFT;
		got = mc_wt_scan(wt, idx, pg, end, b->pgs + *n, room - *n, rearm, &scan);
		if (!got) {		/* nothing left in this chunk (within the range) */
			pg = (idx + 1) << MC_WT_SHIFT;
			continue;
		}
		pg = b->pgs[*n + got - 1] + 1;
		k = mc_wt_take(wt, mapping, b->pgs + *n, got, rearm, scan, b->folios);
		for (i = 0; i < k; i++)
			b->addrs[*n + i] = vstart + ((u64)(b->pgs[*n + i] - pg0) << PAGE_SHIFT);
		*n += k;
		if (need_resched())
			break;
	}
	return min(pg, end);
}

/**
 * mc_wt_harvest() - MEMCOOP_IOC_WT_HARVEST: read (and optionally re-arm)
 * the log.
 * @mf:   the file.
 * @uarg: struct memcoop_wt_harvest.
 *
 * Walks the caller's mappings of @mf's object in address order, each
 * mapping's logged pages in offset order, and returns each page once
 * (through the first mapping that shows it), however many mappings there
 * are.  Pages that did not fit in @max, and pages no mapping of the
 * caller covers, stay in the log: @remaining counts them.  If copying the
 * addresses out fails, the pages of the failed batch go back into the
 * log; earlier batches stay delivered and are counted.  Takes @wt->mutex,
 * then mmap_read_lock (not held across copies to user space); sleeps.
 */
static long mc_wt_harvest(struct mc_file *mf, struct memcoop_wt_harvest __user *uarg)
{
	struct memcoop_wt_harvest h;
	struct address_space *mapping;
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct mc_wtrack *wt;
	struct mc_wt_buf *b = NULL;
	unsigned long cursor = 0, from;
	unsigned int n, room;
	pgoff_t pg0, stop, end;
	u64 __user *uaddrs;
	bool rearm, done = false;
	long err = 0;

	if (copy_from_user(&h, uarg, sizeof(h)))
		return -EFAULT;
	if (h.reserved || (h.flags & ~MEMCOOP_WT_REARM) || !h.max)
		return -EINVAL;
	uaddrs = u64_to_user_ptr(h.addrs);
	rearm = h.flags & MEMCOOP_WT_REARM;
	h.count = 0;
	h.remaining = 0;

	wt = mc_wt_get(mf);
	mapping = mc_vrange_mapping(mf);
	if (!wt || !mapping)
		goto out_copy;		/* nothing was ever armed */

	b = kmalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	if (mutex_lock_interruptible(&wt->mutex)) {
		err = -ERESTARTSYS;
		goto out_free;
	}
	mc_wt_sync_all(mf, wt, mapping, rearm);
	while (!done && h.count < h.max) {
		room = min_t(u64, MC_WT_BATCH, h.max - h.count);
		n = 0;
		done = true;
		mmap_read_lock(mm);
		for (vma = find_vma(mm, cursor); vma; vma = find_vma(mm, cursor)) {
			if (n == room || need_resched()) {
				done = false;
				break;
			}
			if (!READ_ONCE(wt->ndirty))
				break;		/* nothing (left) to find */
			from = max(cursor, vma->vm_start);
			cursor = vma->vm_end;
			/* vrange.c is the authority on what maps which offset */
			if (mc_vrange_resolve(mf, vma->vm_start, PAGE_SIZE, &pg0))
				continue;
			end = pg0 + vma_pages(vma);
			stop = mc_wt_collect(wt, mapping, vma->vm_start, pg0,
					     pg0 + ((from - vma->vm_start) >> PAGE_SHIFT),
					     end, rearm, b, &n, room);
			if (stop < end) {
				cursor = vma->vm_start + ((stop - pg0) << PAGE_SHIFT);
				done = false;
				break;
			}
		}
		mmap_read_unlock(mm);

		if (n && copy_to_user(uaddrs + h.count, b->addrs, n * sizeof(*b->addrs))) {
			mc_wt_undo(wt, b->pgs, n);
			if (!h.count)
				err = -EFAULT;
			break;
		}
		if (!rearm)
			mc_wt_sweep(wt, b->pgs, n);
		h.count += n;
		cond_resched();
		if (fatal_signal_pending(current))
			break;
	}
	xa_lock(&wt->chunks);
	h.remaining = wt->ndirty;
	xa_unlock(&wt->chunks);
	mutex_unlock(&wt->mutex);
	pr_debug("wtrack: harvested %llu pages%s, %llu remaining\n",
		 h.count, rearm ? " (re-armed)" : "", h.remaining);
	if (err)
		goto out_free;

out_copy:
	if (copy_to_user(uarg, &h, sizeof(h)))
		err = -EFAULT;
out_free:
	kfree(b);
	return err;
}

long mc_wtrack_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg)
{
	switch (cmd) {
	case MEMCOOP_IOC_WT_ARM:
		return mc_wt_arm(mf, arg);
	case MEMCOOP_IOC_WT_HARVEST:
		return mc_wt_harvest(mf, arg);
	default:
		return -ENOTTY;
	}
}

/**
 * mc_wtrack_write_fault() - log the first write to a tracked page.
 * @mf:    the file whose object holds the page.
 * @pgoff: page offset in the object.
 *
 * Called from the mapping's ->page_mkwrite with the page locked.  Takes
 * the xarray lock only; posts MEMCOOP_EVENT_DIRTY when the log stops
 * being empty.  The write then proceeds: no signal reaches user space.
 */
void mc_wtrack_write_fault(struct mc_file *mf, pgoff_t pgoff)
{
	XA_STATE(xas, NULL, pgoff >> MC_WT_SHIFT);
	unsigned long bit = pgoff & (MC_WT_PAGES - 1);
	struct mc_wt_chunk *c;
	struct mc_wtrack *wt;
	bool first = false, logged_now = false;
	u64 seq = 0;

	/* the mapping can outlive the fd: see mc_wtrack_release() */
	rcu_read_lock();
	wt = mc_wt_get(mf);
	if (!wt || !READ_ONCE(wt->ntracked)) {
		rcu_read_unlock();
		return;
	}
	xas.xa = &wt->chunks;
	xas_lock(&xas);
	c = xas_load(&xas);
	if (c && test_bit(bit, c->tracked) && !__test_and_set_bit(bit, c->dirty)) {
		xas_set_mark(&xas, MC_WT_DIRTY);
		logged_now = true;
		wt->logged++;
		if (wt->ndirty++ == 0) {
			first = true;
			seq = ++wt->seq;
		}
	}
	xas_unlock(&xas);
	rcu_read_unlock();

	if (logged_now) {
		unsigned int d = min(READ_ONCE(wt_fault_delay_us), 10000U);

		if (d)
			usleep_range(d, d + d / 4 + 1);
	}
	if (first)
		mc_wt_post_dirty(mf, seq);
}

/**
 * mc_wtrack_page_mkwrite() - ->page_mkwrite body for a tracked mapping.
 * @mf:  the file whose object holds the page.
 * @vmf: the write fault.
 *
 * Locks the page before logging and returns with it locked
 * (VM_FAULT_LOCKED): the core makes the PTE writable before unlocking, so
 * a harvest that re-arms under the page lock sees either the PTE writable
 * (and write-protects it again) or the write still to come, which then
 * faults again and is logged again.  Returns VM_FAULT_NOPAGE (the core
 * retries the fault) if the page was truncated meanwhile (purged).
 */
vm_fault_t mc_wtrack_page_mkwrite(struct mc_file *mf, struct vm_fault *vmf)
{
	struct folio *folio = page_folio(vmf->page);

	folio_lock(folio);
	if (folio->mapping != vmf->vma->vm_file->f_mapping) {
		folio_unlock(folio);
		return VM_FAULT_NOPAGE;
	}
	mc_wtrack_write_fault(mf, vmf->pgoff);
	return VM_FAULT_LOCKED;
}

/* Purged or gone for good: out of the log and the tracked set.  May sleep. */
void mc_wtrack_forget(struct mc_file *mf, pgoff_t pgoff, unsigned long nr)
{
	struct mc_wtrack *wt;

	rcu_read_lock();
	wt = mc_wt_get(mf);
	if (wt && !refcount_inc_not_zero(&wt->ref))
		wt = NULL;
	rcu_read_unlock();
	if (!wt)
		return;
	mc_wt_clear(wt, pgoff, pgoff + min_t(unsigned long, nr, ULONG_MAX - pgoff));
	mc_wt_put(wt);
}

/*
 * Last reference to the file gone.  The mappings are not: their vmas
 * hold the memory object, not the file, so a write fault or a purge may
 * still be looking at @mf->wt (vrange.c stops calling us only later, in
 * mc_vrange_release()).  Write faults do so inside rcu_read_lock():
 * unpublish and wait for them; a purge holds a reference, and whoever
 * drops the last one frees the state.  May sleep.
 */
void mc_wtrack_release(struct mc_file *mf)
{
	struct mc_wtrack *wt = mf->wt;

	if (!wt)
		return;
	WRITE_ONCE(mf->wt, NULL);
	synchronize_rcu();
	mc_wt_put(wt);
}
