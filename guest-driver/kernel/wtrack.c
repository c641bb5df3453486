// SPDX-License-Identifier: GPL-2.0
/*
 * Write tracking of /dev/memcoop memory (feature WTRACK): a dirty-page log
 * for garbage collectors and checkpointers, without signals.
 *
 * A client arms a set of pages of its mapping (MEMCOOP_IOC_WT_ARM).  Arming
 * write-protects every page of the set that is in the memory object, in
 * every shared mapping of it (folio_mkclean() walks the reverse map), and
 * the mapping keeps write-notify (vrange.c gives it a ->page_mkwrite), so a
 * page faulted in later starts read-only as well.  The first write to a
 * tracked page faults into ->page_mkwrite, which calls
 * mc_wtrack_write_fault(): the page goes into the log (once) and the kernel
 * makes the PTE writable and restarts the instruction.  No signal is sent;
 * the next writes to the page run at full speed.
 *
 * MEMCOOP_IOC_WT_HARVEST returns the user addresses (in the caller's
 * mapping) of the pages logged since the last harvest, each once, and with
 * MEMCOOP_WT_REARM write-protects them again in the same call.  The log
 * going from empty to non-empty posts MEMCOOP_EVENT_DIRTY, so the fd polls
 * readable for a subscribed client.
 *
 * State is per open file (struct mc_wtrack): two bitmaps indexed by page
 * offset in the file's memory object, @tracked and @dirty (dirty is a
 * subset of tracked), grown on demand by arm.  A fork()ed child shares the
 * file and the object, so writes by parent and child land in the same log;
 * a harvest translates offsets through the harvesting process's mapping.
 * Pages purged as volatile leave both sets (mc_wtrack_forget()).
 *
 * Locking: @mutex serialises arm, disarm and harvest (they sleep: page
 * cache lookups, page locks, rmap walks, user copies).  @lock, a spinlock,
 * protects the bitmaps and counters; the write-fault path takes only it.
 * Order: @mutex, then mmap_read_lock, then page locks, then @lock (the
 * fault path: mmap_lock or the vma lock, page lock, @lock).  The
 * write-fault hook must be called with the faulting page locked (see
 * mc_internal.h; mc_wtrack_page_mkwrite() is a ->page_mkwrite body that
 * does so), and harvest clears a page's dirty bit and write-protects it
 * under the same page lock, so a write can never slip between "taken
 * from the log" and "read-only again".
 * The write-fault and purge hooks reach the state through @mf->wt under
 * rcu_read_lock(), because the mappings outlive the file: release
 * unpublishes it and waits for them before freeing it.
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
#include <linux/moduleparam.h>

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

/* Addresses gathered per mmap_lock hold, then copied out (one page). */
#define MC_WT_CHUNK	(PAGE_SIZE / sizeof(u64))
/* Mappings of one file a harvest can translate through, per process. */
#define MC_WT_MAX_VMAS	64

/**
 * struct mc_wtrack - write-tracking state of one open file.
 * @mutex:    serialises arm, disarm, harvest and bitmap growth.
 * @lock:     protects everything below; taken in the write-fault path.
 * @tracked:  bit per page offset: writes to the page are logged.
 * @dirty:    bit per page offset: written since the last harvest.
 * @nbits:    capacity of both bitmaps, in pages.
 * @ntracked: bits set in @tracked.
 * @ndirty:   bits set in @dirty (the log's length).
 * @seq:      sequence number of the last MEMCOOP_EVENT_DIRTY.
 * @logged:   pages ever logged (statistics).
 * @dropped:  logged pages dropped by a harvest because the harvesting
 *            process maps no part of the object holding them.
 */
struct mc_wtrack {
	struct mutex mutex;
	spinlock_t lock;
	unsigned long *tracked;
	unsigned long *dirty;
	unsigned long nbits;
	unsigned long ntracked;
	unsigned long ndirty;
	u64 seq;
	u64 logged;
	u64 dropped;
};

/* One mapping of the object in the harvesting process. */
struct mc_wt_vma {
	unsigned long start;	/* user address of page offset @pgoff */
	pgoff_t pgoff;
	unsigned long pages;
};

/* Bitmaps can be large (a bit per page of the mapping): kvmalloc'ed. */
static unsigned long *mc_wt_bitmap_alloc(unsigned long nbits)
{
	return kvcalloc(BITS_TO_LONGS(nbits), sizeof(unsigned long), GFP_KERNEL_ACCOUNT);
}

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
			mutex_init(&wt->mutex);
			spin_lock_init(&wt->lock);
			smp_store_release(&mf->wt, wt);
		}
	}
	mutex_unlock(&mf->lock);
	return wt;
}

/**
 * mc_wt_grow() - make both bitmaps hold at least @need pages.
 * @wt:   the state.
 * @need: pages (one past the highest page offset to track).
 *
 * Caller holds @wt->mutex (the only writer of @nbits).  The write-fault
 * path keeps running on the old bitmaps until the swap under @wt->lock.
 * Returns 0 or -ENOMEM (nothing changed).
 */
static int mc_wt_grow(struct mc_wtrack *wt, unsigned long need)
{
	unsigned long *tracked, *dirty, n;

	lockdep_assert_held(&wt->mutex);
	if (need <= wt->nbits)
		return 0;
	n = max(need, 2 * wt->nbits);
	n = round_up(n, BITS_PER_LONG);
	tracked = mc_wt_bitmap_alloc(n);
	dirty = mc_wt_bitmap_alloc(n);
	if (!tracked || !dirty) {
		kvfree(tracked);
		kvfree(dirty);
		return -ENOMEM;
	}

	spin_lock(&wt->lock);
	if (wt->nbits) {
		bitmap_copy(tracked, wt->tracked, wt->nbits);
		bitmap_copy(dirty, wt->dirty, wt->nbits);
	}
	swap(wt->tracked, tracked);
	swap(wt->dirty, dirty);
	wt->nbits = n;
	spin_unlock(&wt->lock);

	kvfree(tracked);
	kvfree(dirty);
	return 0;
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
 * mc_wt_protect() - write-protect page @pgoff of @mapping in every mapping.
 * @mapping: the object's pages.
 * @pgoff:   page offset.
 *
 * A page not in the object has no PTE anywhere: its first write will fault
 * through ->page_mkwrite anyway.  Takes the page lock; may sleep.
 */
static void mc_wt_protect(struct address_space *mapping, pgoff_t pgoff)
{
	struct folio *folio = mc_wt_lock_folio(mapping, pgoff);

	if (!folio)
		return;
	/* keep the dirtiness the PTEs carried, as folio_clear_dirty_for_io() does */
	if (folio_mkclean(folio))
		folio_mark_dirty(folio);
	folio_unlock(folio);
	folio_put(folio);
}

/* Copy the user list in and turn it into page offsets (start) and page
 * counts (len), checking every range.  Returns the list or an ERR_PTR. */
static struct memcoop_wt_range *mc_wt_resolve_list(struct mc_file *mf, u64 uptr,
						   u32 count, unsigned long *end)
{
	struct memcoop_wt_range *r;
	struct mm_struct *mm = current->mm;
	pgoff_t pgoff;
	u32 i;
	int err = 0;

	r = vmemdup_user(u64_to_user_ptr(uptr), array_size(count, sizeof(*r)));
	if (IS_ERR(r))
		return r;

	*end = 0;
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
		*end = max_t(unsigned long, *end, pgoff + r[i].len);
	}
	mmap_read_unlock(mm);
	if (err) {
		kvfree(r);
		return ERR_PTR(err);
	}
	return r;
}

/**
 * mc_wt_arm() - MEMCOOP_IOC_WT_ARM: start or stop tracking a list of ranges.
 * @mf:   the file.
 * @uarg: struct memcoop_wt_arm.
 *
 * The whole list is checked before anything changes: a bad range (outside
 * a mapping of @mf, unaligned, empty, wrapping), a count of 0 or above
 * MEMCOOP_WT_MAX_RANGES leaves the state as it was.  Overlapping ranges
 * count their common pages once.  Takes @wt->mutex, then mmap_read_lock;
 * sleeps.
 */
static long mc_wt_arm(struct mc_file *mf, struct memcoop_wt_arm __user *uarg)
{
	struct memcoop_wt_arm arm;
	struct memcoop_wt_range *r;
	struct address_space *mapping;
	struct mc_wtrack *wt;
	unsigned long *want = NULL, *tmp = NULL, end, bit, n;
	u32 i;
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
	r = mc_wt_resolve_list(mf, arm.ranges, arm.count, &end);
	if (IS_ERR(r)) {
		err = PTR_ERR(r);
		goto out_unlock;
	}

	err = -ENOMEM;
	want = mc_wt_bitmap_alloc(end);
	tmp = mc_wt_bitmap_alloc(end);
	if (!want || !tmp)
		goto out_free;
	for (i = 0; i < arm.count; i++)
		bitmap_set(want, r[i].start, r[i].len);
	/*
	 * Whole words from here on: the bitmap helpers mask the last word of
	 * their destination, which would clear tracked bits beyond @end.
	 * @want and @tmp are allocated in whole words and zero past @end.
	 */
	end = round_up(end, BITS_PER_LONG);

	if (arm.flags & MEMCOOP_WT_DISARM) {
		/* Pages beyond @nbits were never tracked. */
		end = min(end, wt->nbits);
		spin_lock(&wt->lock);
		bitmap_and(tmp, want, wt->tracked, end);
		n = bitmap_weight(tmp, end);
		wt->ntracked -= n;
		bitmap_andnot(wt->tracked, wt->tracked, want, end);
		bitmap_and(tmp, want, wt->dirty, end);
		wt->ndirty -= bitmap_weight(tmp, end);
		bitmap_andnot(wt->dirty, wt->dirty, want, end);
		spin_unlock(&wt->lock);
		arm.armed = n;
	} else {
		err = mc_wt_grow(wt, end);
		if (err)
			goto out_free;
		spin_lock(&wt->lock);
		bitmap_andnot(tmp, want, wt->tracked, end);
		wt->ntracked += bitmap_weight(tmp, end);
		bitmap_or(wt->tracked, wt->tracked, want, end);
		spin_unlock(&wt->lock);
		/*
		 * Tracked first, then read-only: a write racing with this loop
		 * either faults after its page is protected (and is logged) or
		 * completed before, when the page was not armed yet.
		 */
		arm.armed = bitmap_weight(want, end);
		for_each_set_bit(bit, want, end) {
			mc_wt_protect(mapping, bit);
			cond_resched();
			/* dying: the pages stay tracked, the rest unprotected */
			if (fatal_signal_pending(current))
				break;
		}
	}
	pr_debug("wtrack: %s %llu pages (%u ranges), %lu tracked\n",
		 arm.flags & MEMCOOP_WT_DISARM ? "disarmed" : "armed",
		 arm.armed, arm.count, READ_ONCE(wt->ntracked));

	err = 0;
	if (put_user(arm.armed, &uarg->armed))
		err = -EFAULT;
out_free:
	kvfree(tmp);
	kvfree(want);
	kvfree(r);
out_unlock:
	mutex_unlock(&wt->mutex);
	return err;
}

/*
 * Collect the caller's mappings of @mf's object into @v (at most @max).
 * Caller holds mmap_read_lock(mm).  Returns how many were found.
 */
static unsigned int mc_wt_vmas(struct mc_file *mf, struct address_space *mapping,
			       struct mm_struct *mm, struct mc_wt_vma *v, unsigned int max)
{
	struct vm_area_struct *vma;
	unsigned int n = 0;
	pgoff_t pgoff;
	VMA_ITERATOR(vmi, mm, 0);

	for_each_vma(vmi, vma) {
		if (!vma->vm_file ||
		    (vma->vm_file != mf->file && vma->vm_file->f_mapping != mapping))
			continue;
		/* vrange.c is the authority on what maps which offset */
		if (mc_vrange_resolve(mf, vma->vm_start, PAGE_SIZE, &pgoff))
			continue;
		if (n == max) {
			pr_warn_ratelimited("wtrack: more than %u mappings of one file, harvest ignores the rest\n",
					    max);
			break;
		}
		v[n].start = vma->vm_start;
		v[n].pgoff = pgoff;
		v[n].pages = vma_pages(vma);
		n++;
	}
	return n;
}

static bool mc_wt_addr(const struct mc_wt_vma *v, unsigned int n, pgoff_t pgoff,
		       u64 *addr)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (pgoff >= v[i].pgoff && pgoff - v[i].pgoff < v[i].pages) {
			*addr = v[i].start + ((u64)(pgoff - v[i].pgoff) << PAGE_SHIFT);
			return true;
		}
	}
	return false;
}

/* Put pages taken from the log back after a failed copy to user space. */
static void mc_wt_undo(struct mc_wtrack *wt, const pgoff_t *pg, unsigned int n)
{
	unsigned int i;

	spin_lock(&wt->lock);
	for (i = 0; i < n; i++) {
		if (pg[i] >= wt->nbits)
			continue;
		if (!__test_and_set_bit(pg[i], wt->tracked))
			wt->ntracked++;
		if (!__test_and_set_bit(pg[i], wt->dirty))
			wt->ndirty++;
	}
	spin_unlock(&wt->lock);
}

/**
 * mc_wt_take() - take page @pgoff out of the log.
 * @wt:      the state.
 * @mapping: the object's pages.
 * @pgoff:   page offset whose dirty bit was seen set.
 * @rearm:   keep it tracked and write-protect it again.
 *
 * With @rearm the dirty bit is cleared and the page write-protected under
 * the page lock, which the write-fault path holds while logging and
 * making the PTE writable: a concurrent write either is in this harvest
 * (it completed before) or faults again and is logged for the next one.
 * Without @rearm the page stops being tracked.
 * Caller holds @wt->mutex and mmap_read_lock.  Returns true if the page
 * was still in the log (a purge may have removed it meanwhile).
 */
static bool mc_wt_take(struct mc_wtrack *wt, struct address_space *mapping,
		       pgoff_t pgoff, bool rearm)
{
	struct folio *folio = NULL;
	bool was;

	if (rearm)
		folio = mc_wt_lock_folio(mapping, pgoff);

	spin_lock(&wt->lock);
	was = __test_and_clear_bit(pgoff, wt->dirty);
	if (was)
		wt->ndirty--;
	if (was && !rearm) {
		__clear_bit(pgoff, wt->tracked);
		wt->ntracked--;
	}
	spin_unlock(&wt->lock);

	if (folio) {
		if (was && folio_mkclean(folio))
			folio_mark_dirty(folio);
		folio_unlock(folio);
		folio_put(folio);
	}
	return was;
}

/**
 * mc_wt_harvest() - MEMCOOP_IOC_WT_HARVEST: read (and optionally re-arm)
 * the log.
 * @mf:   the file.
 * @uarg: struct memcoop_wt_harvest.
 *
 * Pages are returned in page-offset order, each once.  Logged pages that
 * no mapping of the calling process covers are dropped from the log (the
 * caller could not name them).  If copying the addresses out fails, the
 * pages of the failed chunk go back into the log; earlier chunks stay
 * delivered and are counted.  Takes @wt->mutex, then mmap_read_lock (not
 * held across copies to user space); sleeps.
 */
static long mc_wt_harvest(struct mc_file *mf, struct memcoop_wt_harvest __user *uarg)
{
	struct memcoop_wt_harvest h;
	struct address_space *mapping;
	struct mm_struct *mm = current->mm;
	struct mc_wtrack *wt;
	struct mc_wt_vma *vmas = NULL;
	unsigned int nvmas, n;
	unsigned long pos = 0, next;
	u64 __user *uaddrs;
	bool rearm, done = false;
	u64 *addrs = NULL;
	pgoff_t *pgs = NULL;
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

	addrs = kmalloc_array(MC_WT_CHUNK, sizeof(*addrs), GFP_KERNEL);
	pgs = kmalloc_array(MC_WT_CHUNK, sizeof(*pgs), GFP_KERNEL);
	vmas = kmalloc_array(MC_WT_MAX_VMAS, sizeof(*vmas), GFP_KERNEL);
	if (!addrs || !pgs || !vmas) {
		err = -ENOMEM;
		goto out_free;
	}

	if (mutex_lock_interruptible(&wt->mutex)) {
		err = -ERESTARTSYS;
		goto out_free;
	}
	while (!done && h.count < h.max) {
		n = 0;
		mmap_read_lock(mm);
		nvmas = mc_wt_vmas(mf, mapping, mm, vmas, MC_WT_MAX_VMAS);
		while (n < MC_WT_CHUNK && h.count + n < h.max) {
			u64 addr;

			spin_lock(&wt->lock);
			next = find_next_bit(wt->dirty, wt->nbits, pos);
			if (next >= wt->nbits)
				done = true;
			spin_unlock(&wt->lock);
			if (done)
				break;
			pos = next + 1;

			if (!mc_wt_addr(vmas, nvmas, next, &addr)) {
				/* unreachable from this process: drop it */
				if (mc_wt_take(wt, mapping, next, false)) {
					spin_lock(&wt->lock);
					wt->dropped++;
					spin_unlock(&wt->lock);
				}
				continue;
			}
			if (!mc_wt_take(wt, mapping, next, rearm))
				continue;
			addrs[n] = addr;
			pgs[n] = next;
			n++;
			if (need_resched()) {
				/* let writers and the fault path in */
				break;
			}
		}
		mmap_read_unlock(mm);

		if (n && copy_to_user(uaddrs + h.count, addrs, n * sizeof(*addrs))) {
			mc_wt_undo(wt, pgs, n);
			if (!h.count)
				err = -EFAULT;
			break;
		}
		h.count += n;
		cond_resched();
		if (fatal_signal_pending(current))
			break;
	}
	spin_lock(&wt->lock);
	h.remaining = wt->ndirty;
	spin_unlock(&wt->lock);
	mutex_unlock(&wt->mutex);
	pr_debug("wtrack: harvested %llu pages%s, %llu remaining\n",
		 h.count, rearm ? " (re-armed)" : "", h.remaining);
	if (err)
		goto out_free;

out_copy:
	if (copy_to_user(uarg, &h, sizeof(h)))
		err = -EFAULT;
out_free:
	kfree(vmas);
	kfree(pgs);
	kfree(addrs);
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
 * @wt->lock only; posts MEMCOOP_EVENT_DIRTY when the log stops being
 * empty.  The write then proceeds: no signal reaches user space.
 */
void mc_wtrack_write_fault(struct mc_file *mf, pgoff_t pgoff)
{
	struct mc_wtrack *wt;
	struct memcoop_event ev;
	bool first = false, logged_now = false;
	u64 seq = 0;

	/* the mapping can outlive the fd: see mc_wtrack_release() */
	rcu_read_lock();
	wt = mc_wt_get(mf);
	if (!wt || !READ_ONCE(wt->ntracked)) {
		rcu_read_unlock();
		return;
	}
	spin_lock(&wt->lock);
	if (pgoff < wt->nbits && test_bit(pgoff, wt->tracked) &&
	    !__test_and_set_bit(pgoff, wt->dirty)) {
		logged_now = true;
		wt->logged++;
		if (wt->ndirty++ == 0) {
			first = true;
			seq = ++wt->seq;
		}
	}
	spin_unlock(&wt->lock);
	rcu_read_unlock();

	if (logged_now) {
		unsigned int d = min(READ_ONCE(wt_fault_delay_us), 10000U);

		if (d)
			usleep_range(d, d + d / 4 + 1);
	}
	if (first) {
		memset(&ev, 0, sizeof(ev));
		ev.type = MEMCOOP_EVENT_DIRTY;
		ev.seq = seq;
		mc_file_post_event(mf, &ev);
	}
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

/* Purged or gone for good: out of the log and the tracked set. */
void mc_wtrack_forget(struct mc_file *mf, pgoff_t pgoff, unsigned long nr)
{
	struct mc_wtrack *wt;
	unsigned long bit, end;

	rcu_read_lock();
	wt = mc_wt_get(mf);
	if (!wt) {
		rcu_read_unlock();
		return;
	}
	spin_lock(&wt->lock);
	if (pgoff >= wt->nbits)
		goto out;
	end = pgoff + min(nr, wt->nbits - pgoff);
	bit = pgoff;
	for_each_set_bit_from(bit, wt->tracked, end) {
		__clear_bit(bit, wt->tracked);
		wt->ntracked--;
		if (__test_and_clear_bit(bit, wt->dirty))
			wt->ndirty--;
	}
out:
	spin_unlock(&wt->lock);
	rcu_read_unlock();
}

/*
 * Last reference to the file gone.  The mappings are not: their vmas
 * hold the memory object, not the file, so a write fault or a purge may
 * still be looking at @mf->wt (vrange.c stops calling us only later, in
 * mc_vrange_release()).  They do so inside rcu_read_lock(): unpublish,
 * wait for them, then free.  May sleep.
 */
void mc_wtrack_release(struct mc_file *mf)
{
	struct mc_wtrack *wt = mf->wt;

	if (!wt)
		return;
	WRITE_ONCE(mf->wt, NULL);
	synchronize_rcu();
	pr_debug("wtrack: release: %llu pages logged, %llu dropped\n",
		 wt->logged, wt->dropped);
	kvfree(wt->tracked);
	kvfree(wt->dirty);
	mutex_destroy(&wt->mutex);
	kfree(wt);
}
