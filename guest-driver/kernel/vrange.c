// SPDX-License-Identifier: GPL-2.0
/*
 * Volatile ranges and page residence (features VRANGE, RESIDENCE_EVENTS).
 *
 * Memory.  The first mmap() of an open file creates the file's memory
 * object (struct mc_vobj): an internal shmem file of MC_VOBJ_BYTES, as
 * /dev/zero's shared mappings use.  The vma's vm_file becomes that shmem
 * file, so its pages are ordinary shmem page-cache pages: zero-filled on
 * demand, charged to the faulting task's memory cgroup, swappable, shared
 * across fork like any MAP_SHARED mapping.  The mmap offset selects the
 * place in the object; two mappings of the same offset share pages.  We
 * wrap shmem's vm_operations: ->fault refuses pages of purged volatile
 * ranges (SIGBUS) and reports refaults, ->page_mkwrite (only when the
 * file asked for WTRACK) tells wtrack.c about writes, ->open/->close count
 * the vmas that reference the object.  The object holds a reference on
 * the module (vmas outlive the fd), the file holds one reference on the
 * object, every vma one more; the object dies with the last of them.
 *
 * Mapping rules (the choices for the calls the issue lists):
 *  - MAP_SHARED only (a private mapping would COW into anonymous memory
 *    that is never purgeable): -EINVAL.
 *  - offset + length beyond MC_VOBJ_BYTES: -EINVAL.
 *  - munmap / partial munmap / mprotect / mlock / madvise(MADV_DONTNEED):
 *    the core mm splits vmas, ->open/->close keep the count; the ranges
 *    live in object space (page offsets), so they survive splits and
 *    remain in force for other mappings of the same pages.  mlock does not
 *    protect a volatile range from purge (marking it non-volatile does).
 *    MADV_REMOVE punches a hole like on tmpfs (reads zero, no SIGBUS).
 *  - mremap: moving and shrinking work; growing is refused (VM_DONTEXPAND).
 *  - ranges passed to the ioctls may span several vmas of this file if
 *    they are contiguous in address and in object offset.
 *
 * Ranges.  Per object, an rb-tree of disjoint ranges in page offsets,
 * each VOLATILE (discardable), PURGED (volatile and discarded: touching it
 * is SIGBUS) or HOLE (purged, then marked non-volatile, not yet touched:
 * the first touch of each page is reported as a REFAULT event).  Marking
 * volatile merges with VOLATILE neighbours marked through the same address
 * base and leaves PURGED parts purged; marking non-volatile removes
 * VOLATILE parts, turns PURGED parts into HOLEs and answers whether any
 * was purged.  VOLATILE ranges with resident pages sit on one global LRU
 * (mc_lru), most recently marked (or first made resident) at the tail.
 * Each carries an estimate of its resident pages: counted in the page
 * cache when it is marked (work in proportion to the caller's own
 * resident pages) and raised by faults inside it; splits share it out by
 * length.  Everything that counts or picks volatile memory (shrinker
 * count, collectors, mc_vrange_purgeable()) uses that estimate, never a
 * range's length, so empty volatile ranges cost nobody anything.  A file
 * holds at most max_ranges nodes; marking that could exceed it fails with
 * -ENOSPC before anything changes.
 *
 * Purge.  mc_vrange_purge() (balloon, before inflating), a shrinker and an
 * OOM notifier take whole ranges from the LRU head and punch them out of
 * the shmem file (unmap_mapping_range + shmem_truncate_range, only over
 * the 8 MiB windows where the xarray holds something), so their pages go
 * back to the buddy allocator.  Each purge call has a budget
 * (purge_budget_ms, purge_max_ranges), and only pages really freed count.  Only the balloon path may sleep:
 * it posts PURGE_SOON, waits grace_ms (if anyone subscribed), and then
 * purges only the ranges still volatile (marking non-volatile wins).  The
 * shrinker (which refuses without __GFP_FS) and the OOM notifier only
 * trylock; a refused purge is owed by the object's next writer (an ioctl
 * of its own users purges before it lets go of the sem) and goes to a
 * worker that waits for the lock (see "Deferred purges").
 *
 * Locking, outermost first:
 *   mmap_lock            (ioctls, faults) taken before vobj->sem
 *   mc_vobj.sem          rwsem: the range tree, range states, vobj->mf.
 *                        Faults check the state under it (shared) but do
 *                        not hold it across shmem's fault, whose allocation
 *                        may reclaim and must be able to purge this very
 *                        object; purge_seq (bumped by every purge) tells a
 *                        fault that raced with a purge to drop its page
 *                        and fault again (mc_vm_fault()).
 *   (i_mmap_rwsem, page locks: inside shmem_truncate_range)
 *   mc_lru_lock          spinlock: the LRU, and start/end of VOLATILE
 *                        ranges (the purge collector reads them under it).
 *                        The collector only takes object references
 *                        under it, never vobj->sem, so there is no
 *                        inversion.
 *   mc_file.evlock       (dev.c) posting events; taken under vobj->sem.
 * Nothing waits for memory while holding vobj->sem (nodes are allocated
 * before taking it, or with GFP_NOWAIT), so the purge worker may wait for
 * it; reclaim and the OOM notifier only trylock and hand a busy object to
 * the worker.
 *
 * Events.  PURGE_SOON and PURGED carry the range's user address as seen
 * by the mapping through which it was marked volatile (ranges marked
 * through different address bases are never merged); REFAULT carries the
 * faulting address, once per page of a purged range first touched after
 * it was marked non-volatile.
 *
 * Memory cgroups.  Pages are charged to the task that faults them in; a
 * range's node is charged to the task that marked it volatile, and a
 * memcg-aware list_lru (mc_vr_lru) files the range under that node's
 * memcg, so reclaim inside a group at its limit purges the ranges the
 * group's tasks marked (oldest first) before the group's OOM killer acts.
 * The balloon and the OOM notifier use the global LRU.
 *
 * Limits.  If mmap_region() fails after our ->mmap succeeded (an
 * allocation failure inside the core) the vma's object reference is not
 * dropped on kernels without close_and_free_vma.  A forked child's mmap of
 * the same fd shares the parent's object.
 *
 * All page counts are in PAGE_SIZE pages.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": vrange: " fmt

#include <linux/module.h>
#include <linux/mm.h>
#include <linux/shmem_fs.h>
#include <linux/rbtree.h>
#include <linux/rwsem.h>
#include <linux/kref.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/oom.h>
#include <linux/delay.h>
#include <linux/xarray.h>
#include <linux/seq_file.h>
#include <linux/pagemap.h>
#include <linux/workqueue.h>
#include <linux/wait.h>
#include <linux/mount.h>
#include <linux/fs.h>
#include <linux/sizes.h>

#include "mc_internal.h"

#define MC_GRACE_MAX_MS		1000

static unsigned int grace_ms = 5;
MC_PARAM_UINT(grace_ms, 0, MC_GRACE_MAX_MS, 0644,
	      "Grace period between PURGE_SOON and a balloon purge (ms, 0..1000, default 5)");

static unsigned int oom_purge_pages = 4096;
MC_PARAM_UINT(oom_purge_pages, 1, 1U << 20, 0644,
	      "Pages the OOM notifier tries to purge, 1..1048576 (default 4096)");

static unsigned int oom_purge_wait_ms = 200;
MC_PARAM_UINT(oom_purge_wait_ms, 0, MC_GRACE_MAX_MS, 0644,
	      "How long the OOM notifier waits for a deferred purge (ms, 0..1000, default 200)");

static unsigned int purge_budget_ms = 100;
MC_PARAM_UINT(purge_budget_ms, 1, 10000, 0644,
	      "Longest time one purge call may take, grace periods included (ms, 1..10000, default 100)");

static unsigned int purge_max_ranges = 1024;
MC_PARAM_UINT(purge_max_ranges, 1, 1U << 20, 0644,
	      "Ranges one purge call may examine, 1..1048576 (default 1024)");

static unsigned int max_ranges = 65536;
MC_PARAM_UINT(max_ranges, 16, 1U << 24, 0644,
	      "Range nodes per memory object (file); beyond it marking fails with ENOSPC (16..16777216, default 65536)");

#define MC_VOBJ_BYTES		(1ULL << 40)	/* size of each memory object */
#define MC_PURGE_BATCH		8		/* ranges collected per pass (on stack) */
#define MC_PUNCH_PAGES		(SZ_8M >> PAGE_SHIFT)	/* truncation step of a purge */
#define MC_COLLECT_WALK		256		/* LRU entries looked at per collection */
#define MC_OOM_EPISODE		HZ		/* OOM calls closer than this: one episode */
#define MC_RESID_CHUNK		(PAGE_SIZE * 8)	/* pages per residence chunk */

enum mc_vr_state {
	MC_VR_VOLATILE = 1,
	MC_VR_PURGED,
	MC_VR_HOLE,
};

/* One range of an object, in page offsets [start, end). */
struct mc_vr {
	struct rb_node rb;		/* in vobj->ranges, by start */
	struct list_head lru;		/* on mc_lru while VOLATILE */
	struct list_head mlru;		/* on mc_vr_lru (its memcg's list) while VOLATILE */
	struct mc_vobj *obj;
	pgoff_t start, end;		/* VOLATILE: changed under mc_lru_lock too */
	unsigned long resident;		/* VOLATILE: resident pages (estimate), under mc_lru_lock */
	unsigned long vbase;		/* user address of page offset 0 when marked */
	u64 id;				/* new for every newly marked range */
	enum mc_vr_state state;
};

/* The memory object behind one file's mappings. */
struct mc_vobj {
	struct kref ref;		/* the file, plus one per vma */
	struct file *shm;		/* the shmem file holding the pages */
	struct rw_semaphore sem;	/* see "Locking" above */
	struct rb_root ranges;
	struct mc_file *mf;		/* NULL once the file is released */
	unsigned long nr_volatile;	/* pages in VOLATILE ranges */
	unsigned long nr_purged;	/* pages in PURGED ranges */
	unsigned int nr_nodes;		/* range nodes in @ranges (at most max_ranges + 2) */
	unsigned long purge_seq;	/* bumped under @sem (write) by every purge */
	/* pages a trylock purge could not take, left to the next writer (per reason) */
	atomic_long_t owed[MEMCOOP_REASON_OOM + 1];
	unsigned long owed_at;		/* jiffies when @owed was last raised */
	bool wtrack;			/* the file asked for WTRACK */
};

static DEFINE_SPINLOCK(mc_lru_lock);
static LIST_HEAD(mc_lru);
/*
 * The same VOLATILE ranges, per memory cgroup: the list_lru files each
 * range under the memcg its node is charged to (the task that marked it
 * volatile), which is what lets reclaim inside a memcg find them.
 */
static struct list_lru mc_vr_lru;
static bool mc_vr_lru_ready;		/* set once mc_vr_lru is initialized */
static struct kmem_cache *mc_vr_cache;
static atomic64_t mc_next_id = ATOMIC64_INIT(1);
static atomic64_t mc_ev_seq = ATOMIC64_INIT(1);

/* Counters, in pages unless said otherwise (debugfs memcoop/vrange). */
static atomic_long_t mc_volatile_pages;		/* in VOLATILE ranges now (their extent) */
static atomic_long_t mc_volatile_resident;	/* ... of them resident (estimate) */
static atomic_long_t mc_range_nodes;		/* range nodes of all objects (count) */
static atomic_long_t mc_nospc;			/* marks refused at max_ranges (count) */
static atomic_long_t mc_purged_now;		/* in PURGED ranges now */
static atomic_long_t mc_purged_total;		/* page-cache pages freed by purges */
static atomic_long_t mc_purge_ranges[MEMCOOP_REASON_OOM + 1];	/* ranges */
static atomic_long_t mc_purge_pages[MEMCOOP_REASON_OOM + 1];	/* freed */
static atomic_long_t mc_sigbus;			/* SIGBUS delivered (faults) */
static atomic_long_t mc_refaults;		/* REFAULT pages */
static atomic_long_t mc_rescued;		/* ranges saved in the grace period */
static atomic_long_t mc_objects;		/* live memory objects */
static atomic_long_t mc_lock_busy;		/* trylocks refused (reclaim, OOM) */
static atomic_long_t mc_oom_calls;		/* OOM notifier calls */
static atomic_long_t mc_oom_waits;		/* ... that waited for pages */
static atomic_long_t mc_budget_stops;		/* purge calls cut short by their budget */
static atomic_t mc_punching;			/* ranges being punched now */
static atomic_long_t mc_owed_purges;		/* ranges purged by their object's next writer */
static DECLARE_WAIT_QUEUE_HEAD(mc_purge_progress);	/* pages freed, or a punch ended */

static struct shrinker *mc_vr_shrinker;
static struct vfsmount *mc_shm_mnt;	/* tmpfs with huge=never, or NULL: shm_mnt */
static struct dentry *mc_vr_debugfs, *mc_vr_debugfs_purge;
static const struct vm_operations_struct *mc_shmem_vm_ops;

static const struct vm_operations_struct mc_vm_ops;
static const struct vm_operations_struct mc_vm_ops_wt;

/* ---- the range tree ---------------------------------------------------- */

static unsigned long vr_len(const struct mc_vr *r)
{
	return r->end - r->start;
}

/* @gfp must include __GFP_ACCOUNT: the node's memcg picks its mc_vr_lru list. */
static struct mc_vr *vr_alloc_gfp(gfp_t gfp)
{
	struct mc_vr *r = kmem_cache_alloc_lru(mc_vr_cache, &mc_vr_lru, gfp | __GFP_ZERO);

	if (r) {
		RB_CLEAR_NODE(&r->rb);
		INIT_LIST_HEAD(&r->lru);
		INIT_LIST_HEAD(&r->mlru);
	}
	return r;
}

static void vr_free(struct mc_vr *r)
{
	if (r)
		kmem_cache_free(mc_vr_cache, r);
}

/* Outside obj->sem: may reclaim (and so enter our shrinker). */
static struct mc_vr *vr_alloc(void)
{
	return vr_alloc_gfp(GFP_KERNEL_ACCOUNT);
}

static void vr_account(struct mc_vobj *obj, enum mc_vr_state st, long delta)
{
	if (st == MC_VR_VOLATILE) {
		obj->nr_volatile += delta;
		atomic_long_add(delta, &mc_volatile_pages);
	} else if (st == MC_VR_PURGED) {
		obj->nr_purged += delta;
		atomic_long_add(delta, &mc_purged_now);
	}
}

/* First range of @obj whose end is beyond @pgoff, or NULL.  Caller holds obj->sem. */
static struct mc_vr *vr_first_after(struct mc_vobj *obj, pgoff_t pgoff)
{
	struct rb_node *n = obj->ranges.rb_node;
	struct mc_vr *found = NULL;

	while (n) {
		struct mc_vr *r = rb_entry(n, struct mc_vr, rb);

		if (r->end <= pgoff) {
			n = n->rb_right;
		} else {
			found = r;
			n = n->rb_left;
		}
	}
	return found;
}

static struct mc_vr *vr_next(struct mc_vr *r)
{
	struct rb_node *n = rb_next(&r->rb);

	return n ? rb_entry(n, struct mc_vr, rb) : NULL;
}

/* The range containing @pgoff, or NULL.  Caller holds obj->sem. */
static struct mc_vr *vr_lookup(struct mc_vobj *obj, pgoff_t pgoff)
{
	struct mc_vr *r = vr_first_after(obj, pgoff);

	return r && r->start <= pgoff ? r : NULL;
}

/*
 * The LRUs hold the VOLATILE ranges with resident pages: an empty range
 * frees nothing when purged, so reclaim, the OOM notifier and the balloon
 * never see it (it joins when a fault makes it resident).
 */
static bool vr_on_lru(const struct mc_vr *r)
{
	return r->state == MC_VR_VOLATILE && r->resident;
}

/* Put @r at the LRU tails if it belongs there.  Caller holds obj->sem. */
static void vr_lru_join(struct mc_vr *r)
{
	bool join = false;

	spin_lock(&mc_lru_lock);
	if (vr_on_lru(r) && list_empty(&r->lru)) {
		list_add_tail(&r->lru, &mc_lru);
		join = true;
	}
	spin_unlock(&mc_lru_lock);
	/* mc_vr_lru's lock nests outside mc_lru_lock (mc_vr_collect_cb()) */
	if (join)
		mc_list_lru_add(&mc_vr_lru, &r->mlru);
}

/* Take @r off the LRUs (no-op if it is not on them).  Caller holds obj->sem for writing. */
static void vr_lru_leave(struct mc_vr *r)
{
	mc_list_lru_del(&mc_vr_lru, &r->mlru);
	spin_lock(&mc_lru_lock);
	list_del_init(&r->lru);
	spin_unlock(&mc_lru_lock);
}

/* Set @r's resident estimate (VOLATILE only; others hold none). */
static void vr_set_resident(struct mc_vr *r, unsigned long resident)
{
	spin_lock(&mc_lru_lock);
	if (r->state == MC_VR_VOLATILE)
		atomic_long_add((long)resident - (long)r->resident, &mc_volatile_resident);
	r->resident = resident;
	spin_unlock(&mc_lru_lock);
}

/*
 * vr_insert() - link @r (state, start, end, resident set) into @obj.
 * VOLATILE ranges with resident pages go to the LRU tail.  Caller holds
 * obj->sem for writing and guarantees @r overlaps no other range.
 */
static void vr_insert(struct mc_vobj *obj, struct mc_vr *r)
{
	struct rb_node **p = &obj->ranges.rb_node, *parent = NULL;

	while (*p) {
		parent = *p;
		if (r->start < rb_entry(parent, struct mc_vr, rb)->start)
			p = &parent->rb_left;
		else
			p = &parent->rb_right;
	}
	r->obj = obj;
	rb_link_node(&r->rb, parent, p);
	rb_insert_color(&r->rb, &obj->ranges);
	obj->nr_nodes++;
	atomic_long_inc(&mc_range_nodes);
	vr_account(obj, r->state, vr_len(r));
	if (r->state != MC_VR_VOLATILE)
		r->resident = 0;
	else
		atomic_long_add(r->resident, &mc_volatile_resident);
	vr_lru_join(r);
}

/* Unlink and free @r.  Caller holds obj->sem for writing. */
static void vr_erase(struct mc_vobj *obj, struct mc_vr *r)
{
	vr_account(obj, r->state, -(long)vr_len(r));
	vr_lru_leave(r);
	vr_set_resident(r, 0);
	rb_erase(&r->rb, &obj->ranges);
	obj->nr_nodes--;
	atomic_long_dec(&mc_range_nodes);
	vr_free(r);
}

/* @r's resident estimate for a part of @len of its pages (proportional). */
static unsigned long vr_share(const struct mc_vr *r, unsigned long len)
{
	unsigned long l = vr_len(r);

	return l ? (unsigned long)div64_u64((u64)READ_ONCE(r->resident) * len, l) : 0;
}

/* Change @r's extent in place (its order in the tree does not change). */
static void vr_resize(struct mc_vobj *obj, struct mc_vr *r, pgoff_t start, pgoff_t end)
{
	unsigned long res = vr_share(r, end - start);

	vr_account(obj, r->state, (long)(end - start) - (long)vr_len(r));
	spin_lock(&mc_lru_lock);
	r->start = start;
	r->end = end;
	spin_unlock(&mc_lru_lock);
	vr_set_resident(r, res);
	if (!vr_on_lru(r))
		vr_lru_leave(r);
}

/* Change @r's state; leaves or joins the LRU accordingly. */
static void vr_set_state(struct mc_vobj *obj, struct mc_vr *r, enum mc_vr_state st)
{
	vr_account(obj, r->state, -(long)vr_len(r));
	vr_account(obj, st, vr_len(r));
	vr_lru_leave(r);
	vr_set_resident(r, 0);
	spin_lock(&mc_lru_lock);
	r->state = st;
	spin_unlock(&mc_lru_lock);
}

/*
 * vr_carve() - remove [@a, @b) from range @r, keeping the parts outside.
 * @spare: a preallocated node, consumed (set to NULL) if @r must be split
 * in two; if it is NULL then, the right part is dropped as well (callers
 * that cannot fail pass a node whenever a split is possible).  A VOLATILE
 * range's resident estimate is shared out by length.
 * Caller holds obj->sem for writing.
 */
static void vr_carve(struct mc_vobj *obj, struct mc_vr *r, pgoff_t a, pgoff_t b,
		     struct mc_vr **spare)
{
	if (r->start >= a && r->end <= b) {
		vr_erase(obj, r);
	} else if (r->start < a && r->end > b) {
		struct mc_vr *right = *spare;
		pgoff_t end = r->end;

		if (right) {
			*spare = NULL;
			right->state = r->state;
			right->start = b;
			right->end = end;
			right->resident = vr_share(r, end - b);
			right->vbase = r->vbase;
			right->id = r->id;
		}
		vr_resize(obj, r, r->start, a);
		if (right)
			vr_insert(obj, right);
	} else if (r->start < a) {
		vr_resize(obj, r, r->start, a);
	} else {
		vr_resize(obj, r, b, r->end);
	}
}

/*
 * mc_count_present() - pages of @mapping's page cache in [@first, @end)
 * (swapped-out shmem pages are value entries and do not count).  Costs
 * time in proportion to the pages found, not to the length.  May sleep.
 */
static unsigned long mc_count_present(struct address_space *mapping, pgoff_t first,
				      pgoff_t end)
{
	XA_STATE(xas, &mapping->i_pages, first);
	unsigned long found = 0;
	void *entry;

	if (first >= end)
		return 0;
	rcu_read_lock();
	xas_for_each(&xas, entry, end - 1) {
		pgoff_t idx, stop;

		if (xas_retry(&xas, entry) || xa_is_value(entry))
			continue;
		idx = max_t(pgoff_t, xas.xa_index, first);
		stop = min_t(pgoff_t, end, xas.xa_index + folio_nr_pages((struct folio *)entry));
		if (stop > idx)
			found += stop - idx;
		if (need_resched()) {
			xas_pause(&xas);
			rcu_read_unlock();
			cond_resched();
			rcu_read_lock();
		}
	}
	rcu_read_unlock();
	return found;
}

/* ---- events ------------------------------------------------------------ */

/* Post a range event to the object's file.  Caller holds obj->sem. */
static void vr_post(struct mc_vobj *obj, u32 type, unsigned long addr, unsigned long len)
{
	struct memcoop_event ev = { .type = type };

	if (!obj->mf)
		return;
	ev.seq = atomic64_inc_return(&mc_ev_seq);
	ev.range.start = addr;
	ev.range.len = len;
	mc_file_post_event(obj->mf, &ev);
}

static unsigned long vr_addr(const struct mc_vr *r)
{
	return r->vbase + (r->start << PAGE_SHIFT);
}

/* ---- the object -------------------------------------------------------- */

static void mc_vobj_free(struct kref *ref)
{
	struct mc_vobj *obj = container_of(ref, struct mc_vobj, ref);
	struct rb_node *n;

	/*
	 * Nobody else can reach the object: no file, no vma, no purger.  Up
	 * to max_ranges nodes, so yield (every caller may sleep: vma close,
	 * file release, a purger's put).
	 */
	while ((n = rb_first(&obj->ranges))) {
		vr_erase(obj, rb_entry(n, struct mc_vr, rb));
		cond_resched();
	}
	fput(obj->shm);
	kfree(obj);
	atomic_long_dec(&mc_objects);
	module_put(THIS_MODULE);
}

static void mc_vobj_put(struct mc_vobj *obj)
{
	kref_put(&obj->ref, mc_vobj_free);
}

static struct mc_vobj *mc_vobj_create(struct mc_file *mf)
{
	struct mc_vobj *obj;
	struct file *shm;

	obj = kzalloc(sizeof(*obj), GFP_KERNEL_ACCOUNT);
	if (!obj)
		return ERR_PTR(-ENOMEM);
	/*
	 * VM_NORESERVE: pages are accounted when faulted, like MAP_NORESERVE.
	 * On our own huge=never tmpfs: a huge page would fill purged holes.
	 */
	shm = mc_shm_mnt ? mc_shmem_file_noreserve_mnt(mc_shm_mnt, "memcoop", MC_VOBJ_BYTES) :
			   mc_shmem_file_noreserve("memcoop", MC_VOBJ_BYTES);
	if (IS_ERR(shm)) {
		kfree(obj);
		return ERR_CAST(shm);
	}
	kref_init(&obj->ref);
	init_rwsem(&obj->sem);
	obj->ranges = RB_ROOT;
	obj->shm = shm;
	obj->mf = mf;
	obj->wtrack = !!(mf->features & MEMCOOP_FEATURE_WTRACK);
	__module_get(THIS_MODULE);
	atomic_long_inc(&mc_objects);
	return obj;
}

/* The file's object, created on first use; NULL if mmap never happened. */
static struct mc_vobj *mc_vobj_of(struct mc_file *mf)
{
	return smp_load_acquire(&mf->vobj);
}

static bool mc_vma_is_ours(struct vm_area_struct *vma, struct mc_vobj *obj)
{
	return (vma->vm_ops == &mc_vm_ops || vma->vm_ops == &mc_vm_ops_wt) &&
		vma->vm_private_data == obj;
}

/* ---- vm_operations ----------------------------------------------------- */

static void mc_vm_open(struct vm_area_struct *vma)
{
	struct mc_vobj *obj = vma->vm_private_data;

	kref_get(&obj->ref);
}

static void mc_vm_close(struct vm_area_struct *vma)
{
	mc_vobj_put(vma->vm_private_data);
}

/* A fault in a HOLE: report the refault and forget this page of the hole. */
static void mc_vm_refault(struct mc_vobj *obj, pgoff_t pgoff, unsigned long addr)
{
	struct mc_vr *r, *spare;

	spare = vr_alloc();
	down_write(&obj->sem);
	r = vr_lookup(obj, pgoff);
	if (r && r->state == MC_VR_HOLE) {
		if (r->start == pgoff || r->end == pgoff + 1 ||
		    (spare && obj->nr_nodes < READ_ONCE(max_ranges)))
			vr_carve(obj, r, pgoff, pgoff + 1, &spare);
		else
			vr_erase(obj, r);	/* no memory or node: stop tracking this hole */
		atomic_long_inc(&mc_refaults);
		vr_post(obj, MEMCOOP_EVENT_REFAULT, addr & PAGE_MASK, PAGE_SIZE);
	}
	downgrade_write(&obj->sem);
	vr_free(spare);
}

/*
 * A fault inside VOLATILE range @r (touching volatile memory is allowed)
 * is about to bring in page @pgoff: if the page cache does not hold it,
 * count it in the range's resident estimate, which puts an empty range on
 * the LRUs.  Done before shmem's fault, which returns with the page
 * locked: a purge holding obj->sem waits for page locks.  A fault that
 * then fails leaves one page too many (at most the range's length).
 * Caller holds obj->sem shared, as other faulting threads may;
 * mc_lru_lock orders their updates.
 */
static void mc_vm_volatile_resident(struct mc_vobj *obj, struct mc_vr *r, pgoff_t pgoff)
{
	void *entry = xa_load(&obj->shm->f_mapping->i_pages, pgoff);
	bool join = false;

	if (entry && !xa_is_value(entry))
		return;
	spin_lock(&mc_lru_lock);
	if (r->resident < vr_len(r)) {
		r->resident++;
		atomic_long_inc(&mc_volatile_resident);
	}
	if (list_empty(&r->lru)) {
		list_add_tail(&r->lru, &mc_lru);
		join = true;
	}
	spin_unlock(&mc_lru_lock);
	if (join)	/* a no-op if another thread added it */
		mc_list_lru_add(&mc_vr_lru, &r->mlru);
}

/*
 * A purge may have punched the range between our check and shmem's fault
 * (@sem is not held across shmem's fault: its allocation may reclaim, and
 * reclaim must be able to purge this very object).  If a page was then
 * instantiated in a PURGED range, take it out again.
 */
static void mc_vm_drop_stray(struct mc_vobj *obj, pgoff_t pgoff)
{
	struct mc_vr *r;

	down_write(&obj->sem);
	r = vr_lookup(obj, pgoff);
	if (r && r->state == MC_VR_PURGED) {
		loff_t pos = (loff_t)pgoff << PAGE_SHIFT;

		unmap_mapping_range(obj->shm->f_mapping, pos, PAGE_SIZE, 0);
		shmem_truncate_range(file_inode(obj->shm), pos, pos + PAGE_SIZE - 1);
	}
	up_write(&obj->sem);
}

/*
 * mc_vm_fault() - check the range state under obj->sem (shared), then let
 * shmem fault the page in without holding it.  A purge of this object that
 * started meanwhile (purge_seq moved) makes us drop the page and let the
 * access fault again, which then sees the new state.  A purge that starts
 * after shmem's fault finds the page locked or mapped and unmaps it.
 */
static vm_fault_t mc_vm_fault(struct vm_fault *vmf)
{
	struct mc_vobj *obj = vmf->vma->vm_private_data;
	unsigned long seq;
	struct mc_vr *r;
	vm_fault_t ret;

	down_read(&obj->sem);
	r = vr_lookup(obj, vmf->pgoff);
	if (r && r->state == MC_VR_HOLE) {
		up_read(&obj->sem);
		mc_vm_refault(obj, vmf->pgoff, vmf->address);	/* returns with sem shared */
		r = vr_lookup(obj, vmf->pgoff);
	}
	if (r && r->state == MC_VR_PURGED) {
		up_read(&obj->sem);
		atomic_long_inc(&mc_sigbus);
		return VM_FAULT_SIGBUS;
	}
	if (r && r->state == MC_VR_VOLATILE)
		mc_vm_volatile_resident(obj, r, vmf->pgoff);
	seq = obj->purge_seq;
	up_read(&obj->sem);

	ret = mc_shmem_vm_ops->fault(vmf);
	if ((ret & (VM_FAULT_ERROR | VM_FAULT_RETRY | VM_FAULT_NOPAGE)) || !vmf->page)
		return ret;
	if (likely(READ_ONCE(obj->purge_seq) == seq))
		return ret;
	if (ret & VM_FAULT_LOCKED)
		unlock_page(vmf->page);
	put_page(vmf->page);
	vmf->page = NULL;
	mc_vm_drop_stray(obj, vmf->pgoff);
	return VM_FAULT_NOPAGE;
}

static vm_fault_t mc_vm_page_mkwrite(struct vm_fault *vmf)
{
	struct mc_vobj *obj = vmf->vma->vm_private_data;
	vm_fault_t ret = 0;

	down_read(&obj->sem);
	if (obj->mf)
		ret = mc_wtrack_page_mkwrite(obj->mf, vmf);
	up_read(&obj->sem);
	return ret;
}

static const struct vm_operations_struct mc_vm_ops = {
	.open		= mc_vm_open,
	.close		= mc_vm_close,
	.fault		= mc_vm_fault,
	.map_pages	= filemap_map_pages,
};

/* With ->page_mkwrite, which makes the core write-protect clean pages. */
static const struct vm_operations_struct mc_vm_ops_wt = {
	.open		= mc_vm_open,
	.close		= mc_vm_close,
	.fault		= mc_vm_fault,
	.map_pages	= filemap_map_pages,
	.page_mkwrite	= mc_vm_page_mkwrite,
};

int mc_vrange_mmap(struct mc_file *mf, struct vm_area_struct *vma)
{
	struct mc_vobj *obj, *old;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	int err;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (off >= MC_VOBJ_BYTES || vma->vm_end - vma->vm_start > MC_VOBJ_BYTES - off)
		return -EINVAL;

	obj = mc_vobj_of(mf);
	if (!obj) {
		obj = mc_vobj_create(mf);
		if (IS_ERR(obj))
			return PTR_ERR(obj);
		old = cmpxchg_release(&mf->vobj, NULL, obj);
		if (old) {
			mc_vobj_put(obj);
			obj = old;
		}
	}

	/* Let shmem set the vma up for its file, then wrap its operations. */
	vma_set_file(vma, obj->shm);
	err = mc_vfs_mmap(obj->shm, vma);
	if (err)
		return err;
	if (!READ_ONCE(mc_shmem_vm_ops))
		WRITE_ONCE(mc_shmem_vm_ops, vma->vm_ops);
	if (WARN_ON_ONCE(vma->vm_ops != mc_shmem_vm_ops || !vma->vm_ops->fault))
		return -ENODEV;
	vma->vm_ops = obj->wtrack ? &mc_vm_ops_wt : &mc_vm_ops;
	vma->vm_private_data = obj;
	/*
	 * VM_DONTEXPAND: no growing mremap.  VM_NOHUGEPAGE: a huge page
	 * (shmem THP, khugepaged, MADV_COLLAPSE) would fill purged holes;
	 * our tmpfs is huge=never as well, since MADV_HUGEPAGE clears it.
	 */
	mc_vm_flags_set(vma, VM_DONTEXPAND | VM_NOHUGEPAGE);
	kref_get(&obj->ref);
	return 0;
}

void mc_vrange_release(struct mc_file *mf)
{
	struct mc_vobj *obj = mc_vobj_of(mf);

	if (!obj)
		return;
	down_write(&obj->sem);
	obj->mf = NULL;
	up_write(&obj->sem);
	mf->vobj = NULL;
	mc_vobj_put(obj);
}

/* ---- resolving user ranges --------------------------------------------- */

/*
 * mc_resolve() - translate [@start, @start + @len) of current->mm into
 * object page offsets of @obj.  The range may cross vmas of @obj if they
 * are contiguous in address and offset.  Caller holds mmap_read_lock.
 */
static int mc_resolve(struct mc_vobj *obj, u64 start, u64 len, pgoff_t *pgoff)
{
	struct vm_area_struct *vma;
	u64 end = start + len, addr = start;
	pgoff_t first = 0, expect = 0;

	if (!obj || !len || (start | len) & ~PAGE_MASK || end < start || end > TASK_SIZE)
		return -EINVAL;
	while (addr < end) {
		vma = find_vma(current->mm, addr);
		if (!vma || vma->vm_start > addr || !mc_vma_is_ours(vma, obj))
			return -EINVAL;
		if (addr == start)
			first = expect = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
		else if (vma->vm_pgoff != expect)
			return -EINVAL;
		expect += (vma->vm_end - addr) >> PAGE_SHIFT;
		addr = vma->vm_end;
		cond_resched();		/* up to max_map_count vmas */
	}
	*pgoff = first;
	return 0;
}

int mc_vrange_resolve(struct mc_file *mf, u64 start, u64 len, pgoff_t *pgoff)
{
	return mc_resolve(mc_vobj_of(mf), start, len, pgoff);
}

struct address_space *mc_vrange_mapping(struct mc_file *mf)
{
	struct mc_vobj *obj = mc_vobj_of(mf);

	return obj ? obj->shm->f_mapping : NULL;
}

/* ---- marking ----------------------------------------------------------- */

static void mc_pay_owed(struct mc_vobj *obj);

/*
 * mc_mark_volatile() - make [@a, @b) volatile; @vbase is the user address
 * of page offset 0 in the caller's mapping (for event addresses).
 * Caller holds nothing; takes obj->sem for writing.
 */
static int mc_mark_volatile(struct mc_vobj *obj, pgoff_t a, pgoff_t b, unsigned long vbase)
{
	struct mc_vr *r, *next, *spare, *node;
	unsigned long carry_l = 0, carry_r = 0;
	pgoff_t na = a, nb = b, cur;
	long need = 2;
	int err = 0;

	spare = vr_alloc();
	node = vr_alloc();
	if (!spare || !node) {
		err = -ENOMEM;
		goto out;
	}
	down_write(&obj->sem);
	/*
	 * The node bound: at most one split below, one node per gap between
	 * PURGED ranges, less the ranges absorbed.  Refuse before changing
	 * anything.  The walk is over nodes, at most max_ranges of them.
	 */
	for (r = vr_first_after(obj, a ? a - 1 : 0); r && r->start <= b; r = vr_next(r)) {
		if (r->state == MC_VR_PURGED && r->start < b)
			need++;
		else if (r->state == MC_VR_VOLATILE && r->vbase == vbase)
			need--;
		cond_resched();
	}
	if ((long)obj->nr_nodes + need > (long)READ_ONCE(max_ranges)) {
		atomic_long_inc(&mc_nospc);
		err = -ENOSPC;
		goto unlock;
	}
	/* HOLEs and ranges marked through another address base give way. */
	for (r = vr_first_after(obj, a); r && r->start < b; r = next) {
		next = vr_next(r);
		if (r->state == MC_VR_HOLE ||
		    (r->state == MC_VR_VOLATILE && r->vbase != vbase))
			vr_carve(obj, r, a, b, &spare);
		cond_resched();
	}
	/*
	 * Absorb overlapping and adjacent VOLATILE ranges of the same base.
	 * Only one can stick out on either side; their resident pages outside
	 * [a, b) carry over to the new node (those inside are counted anew).
	 */
	for (r = vr_first_after(obj, a ? a - 1 : 0); r && r->start <= b; r = next) {
		next = vr_next(r);
		if (r->state != MC_VR_VOLATILE || r->vbase != vbase)
			continue;
		if (r->start < a)
			carry_l = vr_share(r, a - r->start);
		if (r->end > b)
			carry_r = vr_share(r, r->end - b);
		na = min(na, r->start);
		nb = max(nb, r->end);
		vr_erase(obj, r);
		cond_resched();
	}
	/* Fill the gaps between PURGED ranges (which stay purged). */
	cur = na;
	r = vr_first_after(obj, na);
	while (cur < nb) {
		pgoff_t gap_end = nb;

		while (r && r->start < nb && r->end <= cur)
			r = vr_next(r);
		if (r && r->start < nb)
			gap_end = max(cur, r->start);
		if (gap_end > cur) {
			/*
			 * Under obj->sem: never wait for memory here, the OOM
			 * path may be waiting for this lock to purge.
			 */
			if (!node)
				node = vr_alloc_gfp(GFP_NOWAIT | __GFP_ACCOUNT | __GFP_NOWARN);
			if (!node) {
				err = -ENOMEM;
				break;
			}
			node->state = MC_VR_VOLATILE;
			node->start = cur;
			node->end = gap_end;
			/* resident pages, found in the page cache: work the caller owns */
			node->resident = mc_count_present(obj->shm->f_mapping, max(cur, a),
							  min(gap_end, b)) +
					 (cur == na ? carry_l : 0) + (gap_end == nb ? carry_r : 0);
			node->resident = min_t(unsigned long, node->resident, gap_end - cur);
			node->vbase = vbase;
			node->id = atomic64_inc_return(&mc_next_id);
			vr_insert(obj, node);
			node = NULL;
		}
		if (!r || r->start >= nb)
			break;
		cur = r->end;
		r = vr_next(r);
		cond_resched();
	}
unlock:
	mc_pay_owed(obj);
	up_write(&obj->sem);
out:
	vr_free(spare);
	vr_free(node);
	return err;
}

/*
 * mc_mark_nonvolatile() - make [@a, @b) non-volatile.  Returns 1 if any
 * page of it had been purged, 0 if not, or -ENOMEM (nothing changed).
 * Takes obj->sem for writing.
 */
static int mc_mark_nonvolatile(struct mc_vobj *obj, pgoff_t a, pgoff_t b)
{
	struct mc_vr *r, *next, *s1, *s2, *hole;
	int purged = 0;
	long need = 0;

	s1 = vr_alloc();
	s2 = vr_alloc();
	if (!s1 || !s2) {
		vr_free(s1);
		vr_free(s2);
		return -ENOMEM;
	}
	down_write(&obj->sem);
	/* only the ranges at the two ends can need a new node */
	r = vr_lookup(obj, a);
	next = vr_lookup(obj, b - 1);
	if (r && r == next && r->start < a && r->end > b) {
		need = r->state == MC_VR_VOLATILE ? 1 : r->state == MC_VR_PURGED ? 2 : 0;
	} else {
		need += r && r->start < a && r->state == MC_VR_PURGED;
		need += next && next->end > b && next->state == MC_VR_PURGED;
	}
	if (need && (long)obj->nr_nodes + need > (long)READ_ONCE(max_ranges)) {
		up_write(&obj->sem);
		vr_free(s1);
		vr_free(s2);
		atomic_long_inc(&mc_nospc);
		return -ENOSPC;
	}
	for (r = vr_first_after(obj, a); r && r->start < b; r = next) {
		next = vr_next(r);
		cond_resched();
		if (r->state == MC_VR_VOLATILE) {
			vr_carve(obj, r, a, b, &s1);
		} else if (r->state == MC_VR_PURGED) {
			purged = 1;
			if (r->start >= a && r->end <= b) {
				vr_set_state(obj, r, MC_VR_HOLE);
				continue;
			}
			/* a boundary range: its part inside becomes a HOLE */
			hole = s2 ? s2 : s1;
			if (s2)
				s2 = NULL;
			else
				s1 = NULL;
			hole->state = MC_VR_HOLE;
			hole->start = max(a, r->start);
			hole->end = min(b, r->end);
			hole->vbase = r->vbase;
			hole->id = r->id;
			if (s1)
				vr_carve(obj, r, a, b, &s1);
			else
				vr_carve(obj, r, a, b, &s2);
			vr_insert(obj, hole);
		}
	}
	mc_pay_owed(obj);
	up_write(&obj->sem);
	vr_free(s1);
	vr_free(s2);
	return purged;
}

/* ---- purging ----------------------------------------------------------- */

/*
 * mc_purge_range() - punch @r's pages out of the object and mark it
 * PURGED.  Returns the page-cache pages freed.  Caller holds obj->sem for
 * writing; may sleep (page locks, i_mmap_rwsem).
 */
static unsigned long mc_purge_range(struct mc_vobj *obj, struct mc_vr *r, u32 reason)
{
	struct address_space *mapping = obj->shm->f_mapping;
	pgoff_t idx = r->start;
	unsigned long freed = 0;

	atomic_inc(&mc_punching);
	atomic_long_inc(&mc_purge_ranges[reason]);	/* counted as it starts */
	vr_set_state(obj, r, MC_VR_PURGED);
	WRITE_ONCE(obj->purge_seq, obj->purge_seq + 1);
	smp_mb();	/* the bump is visible before any page goes away */
	/*
	 * Only where the page cache holds something (pages, or swap
	 * entries), found through the xarray: an empty or sparse range costs
	 * what it frees, not its length.  In pieces of at most MC_PUNCH_PAGES,
	 * so that pages reach the buddy allocator while a large range is still
	 * being punched; the range is PURGED already, so faults in it get
	 * SIGBUS meanwhile.  The pages freed are counted after every piece,
	 * so that an OOM notifier waiting for this purge sees them arrive.
	 */
	while (idx < r->end) {
		unsigned long index = idx, before = mapping->nrpages, after;
		pgoff_t stop;
		loff_t pos;

		if (!xa_find(&mapping->i_pages, &index, r->end - 1, XA_PRESENT))
			break;
		index = max_t(unsigned long, index, idx);
		stop = min_t(pgoff_t, r->end, index + MC_PUNCH_PAGES);
		pos = (loff_t)index << PAGE_SHIFT;
		unmap_mapping_range(mapping, pos, (loff_t)(stop - index) << PAGE_SHIFT, 0);
		shmem_truncate_range(file_inode(obj->shm), pos, ((loff_t)stop << PAGE_SHIFT) - 1);
		idx = stop;
		after = mapping->nrpages;
		if (before > after) {
			freed += before - after;
			atomic_long_add(before - after, &mc_purged_total);
			atomic_long_add(before - after, &mc_purge_pages[reason]);
			wake_up_all(&mc_purge_progress);
		}
		cond_resched();
	}
	if (obj->mf)
		mc_wtrack_forget(obj->mf, r->start, vr_len(r));
	vr_post(obj, MEMCOOP_EVENT_PURGED, vr_addr(r), vr_len(r) << PAGE_SHIFT);
	atomic_dec(&mc_punching);
	wake_up_all(&mc_purge_progress);
	pr_debug("purged %lu pages at %#lx (+%lu) for reason %u\n",
		 freed, r->start, vr_len(r), reason);
	return freed;
}

/* A range chosen from the LRU, identified by id (it may change meanwhile). */
struct mc_victim {
	struct mc_vobj *obj;		/* referenced */
	pgoff_t start, end;
	u64 id;
	bool warned;			/* PURGE_SOON posted for it */
};

/*
 * Make @v name the VOLATILE range @r, taking a reference on its object;
 * false if the object is going away.  Caller holds mc_lru_lock.
 */
static bool mc_victim_take(struct mc_victim *v, struct mc_vr *r)
{
	if (!kref_get_unless_zero(&r->obj->ref))
		return false;
	v->obj = r->obj;
	v->start = r->start;
	v->end = r->end;
	v->id = r->id;
	v->warned = false;
	return true;
}

/* Collect up to @max victims from the LRU head holding about @pages resident pages. */
static int mc_collect(struct mc_victim *v, int max, unsigned long pages)
{
	unsigned long got = 0;
	struct mc_vr *r;
	int n = 0;

	int seen = 0;

	/* at most MC_COLLECT_WALK entries under the lock (dying objects' ranges) */
	spin_lock(&mc_lru_lock);
	list_for_each_entry(r, &mc_lru, lru) {
		if (n == max || got >= pages || seen++ == MC_COLLECT_WALK)
			break;
		if (!mc_victim_take(&v[n], r))
			continue;
		got += r->resident;
		n++;
	}
	spin_unlock(&mc_lru_lock);
	return n;
}

/* Collecting from one memcg's lists of mc_vr_lru (or counting them). */
struct mc_collect_ctl {
	struct mc_victim *v;		/* NULL: only count */
	int n, max;
	unsigned long want, got;
};

#define MC_LRU_WALK		64	/* list items looked at per node and pass */

/* Called under the list's lock, which nests outside mc_lru_lock. */
static enum lru_status mc_vr_collect_cb(MC_LRU_CB_ARGS(item, list, arg))
{
	struct mc_vr *r = container_of(item, struct mc_vr, mlru);
	struct mc_collect_ctl *c = arg;

	if (c->n == c->max || c->got >= c->want)
		return LRU_SKIP;
	spin_lock(&mc_lru_lock);
	if (r->state == MC_VR_VOLATILE && (!c->v || mc_victim_take(&c->v[c->n], r))) {
		c->got += r->resident;
		c->n++;
	}
	spin_unlock(&mc_lru_lock);
	return LRU_SKIP;
}

/*
 * mc_collect_memcg() - like mc_collect(), from the ranges @memcg marked
 * (its mc_vr_lru lists on every node; oldest first).  With @v NULL, only
 * counts: returns the ranges seen and sets *@pages (if given) to their
 * resident pages, a sample of at most MC_LRU_WALK per node scaled up to the list's
 * length.
 */
static int mc_collect_memcg(struct mem_cgroup *memcg, struct mc_victim *v, int max,
			    unsigned long want, unsigned long *pages)
{
	unsigned long got = 0;
	int nid, n = 0;

	for_each_online_node(nid) {
		struct mc_collect_ctl c = { .max = max - n, .want = want - got };
		unsigned long walk = MC_LRU_WALK, items;

		if (n == max || got >= want)
			break;
		items = list_lru_count_one(&mc_vr_lru, nid, memcg);
		if (!items)
			continue;
		c.v = v ? v + n : NULL;
		list_lru_walk_one(&mc_vr_lru, nid, memcg, mc_vr_collect_cb, &c, &walk);
		if (!v && c.n && items > (unsigned long)c.n)
			c.got = c.got / c.n * items;
		n += c.n;
		got += c.got;
	}
	if (pages)
		*pages = got;
	return n;
}

/*
 * The VOLATILE range @v names, if still there; with @any_id, any VOLATILE
 * range now overlapping its extent.  Marking a range volatile merges it
 * with its neighbours into a range with a new id, so under a busy
 * application the id collected a moment ago is often gone while the
 * memory is still volatile: unless PURGE_SOON was posted for it, a
 * purge takes what is there.  After PURGE_SOON it keeps to the id: a
 * range marked non-volatile (and perhaps volatile again) in the grace
 * period was rescued.  Caller holds obj->sem.
 */
static struct mc_vr *mc_victim_find(struct mc_victim *v, bool any_id)
{
	struct mc_vr *r;

	for (r = vr_first_after(v->obj, v->start); r && r->start < v->end; r = vr_next(r))
		if (r->state == MC_VR_VOLATILE && (any_id || r->id == v->id))
			return r;
	return NULL;
}

/* How mc_purge() may wait. */
enum mc_purge_mode {
	MC_PURGE_TRY,		/* reclaim, OOM: trylock only, no grace */
	MC_PURGE_LOCK,		/* the deferred-purge worker: wait for locks, no grace */
	MC_PURGE_WAIT,		/* balloon: PURGE_SOON, grace period, wait for locks */
};

/*
 * A trylock purge (reclaim, OOM) was refused @obj's sem: the object is in
 * use.  Leave @pages for @reason to whoever holds the sem for writing next
 * (mc_pay_owed()), one of the object's own users, who is running already;
 * the worker (mc_purge_later()) is the fallback.
 */
static void mc_purge_owe(struct mc_vobj *obj, u32 reason, unsigned long pages)
{
	if (reason != MEMCOOP_REASON_RECLAIM && reason != MEMCOOP_REASON_OOM)
		return;
	WRITE_ONCE(obj->owed_at, jiffies);
	if (atomic_long_read(&obj->owed[reason]) < (long)pages)
		atomic_long_set(&obj->owed[reason], pages);
}

/*
 * mc_pay_owed() - purge what mc_purge_owe() left to @obj's next writer:
 * its VOLATILE ranges with resident pages, lowest offset first, until the
 * pages owed are freed.  A debt older than MC_OOM_EPISODE is forgotten
 * (the pressure that raised it is over).  Bounded like every purge call:
 * purge_max_ranges nodes looked at, purge_budget_ms.  A no-op (two atomic
 * reads) when nothing is owed.  Caller holds obj->sem for writing; may
 * sleep.
 */
static void mc_pay_owed(struct mc_vobj *obj)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(READ_ONCE(purge_budget_ms));
	unsigned int nodes = READ_ONCE(purge_max_ranges);
	u32 reason;

	for (reason = MEMCOOP_REASON_OOM; reason >= MEMCOOP_REASON_RECLAIM; reason--) {
		unsigned long want, freed = 0;
		struct mc_vr *r;

		if (!atomic_long_read(&obj->owed[reason]))
			continue;
		want = atomic_long_xchg(&obj->owed[reason], 0);
		if (time_after(jiffies, READ_ONCE(obj->owed_at) + MC_OOM_EPISODE))
			continue;
		for (r = vr_first_after(obj, 0); r && freed < want && nodes; r = vr_next(r)) {
			nodes--;
			if (!vr_on_lru(r))
				continue;
			freed += mc_purge_range(obj, r, reason);
			atomic_long_inc(&mc_owed_purges);
			if (time_after_eq(jiffies, deadline))
				return;
		}
	}
}

static bool mc_purge_lock(struct mc_vobj *obj, enum mc_purge_mode mode)
{
	if (mode != MC_PURGE_TRY) {
		down_write(&obj->sem);
		return true;
	}
	if (down_write_trylock(&obj->sem))
		return true;
	atomic_long_inc(&mc_lock_busy);
	return false;
}

/*
 * mc_purge() - purge whole ranges, oldest first, until @pages page-cache
 * pages are freed or nothing more can be purged.  In MC_PURGE_WAIT mode
 * (balloon) subscribers get PURGE_SOON and grace_ms to rescue a range.
 * Every call has a budget: purge_max_ranges ranges looked at and
 * purge_budget_ms of time, grace periods included (after the first pass,
 * a grace that would overrun it is not started: a call takes the longer
 * of the budget and one grace period, plus one pass).  A pass that purged and rescued nothing
 * ends the call.  Returns the pages really freed (a rescue frees none).
 * Sleeps (truncation); takes obj->sem per @mode, never mc_lru_lock across
 * anything that sleeps.  *@busy (if given) is set when a trylock refused a
 * range that was still to be purged.  @memcg: only ranges that memcg
 * marked (reclaim inside it); NULL: all, from the global LRU.
 */
static unsigned long mc_purge(unsigned long pages, u32 reason, enum mc_purge_mode mode,
			      bool *busy, struct mem_cgroup *memcg)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(READ_ONCE(purge_budget_ms));
	unsigned int ranges = READ_ONCE(purge_max_ranges);
	bool may_sleep = mode == MC_PURGE_WAIT;
	struct mc_victim v[MC_PURGE_BATCH];
	unsigned long freed = 0, changed_total = 0;
	int n, i;

	while (freed < pages) {
		unsigned int grace = min(READ_ONCE(grace_ms), (unsigned int)MC_GRACE_MAX_MS);
		bool warned = false;
		int changed = 0;

		if (!ranges || time_after_eq(jiffies, deadline)) {
			atomic_long_inc(&mc_budget_stops);
			break;
		}
		n = min_t(unsigned int, MC_PURGE_BATCH, ranges);
		n = memcg ? mc_collect_memcg(memcg, v, n, pages - freed, NULL) :
			    mc_collect(v, n, pages - freed);
		if (!n)
			break;
		ranges -= n;
		if (may_sleep && grace) {
			/* the first grace always: grace_ms may be the longer */
			if (freed + changed_total &&
			    time_after(jiffies + msecs_to_jiffies(grace), deadline)) {
				for (i = 0; i < n; i++)
					mc_vobj_put(v[i].obj);
				atomic_long_inc(&mc_budget_stops);
				break;
			}
			for (i = 0; i < n; i++) {
				struct mc_vr *r;

				down_read(&v[i].obj->sem);
				r = mc_victim_find(&v[i], false);
				if (r && v[i].obj->mf &&
				    (READ_ONCE(v[i].obj->mf->subscribed) &
				     BIT_ULL(MEMCOOP_EVENT_PURGE_SOON))) {
					vr_post(v[i].obj, MEMCOOP_EVENT_PURGE_SOON, vr_addr(r),
						vr_len(r) << PAGE_SHIFT);
					v[i].warned = true;
					warned = true;
				}
				up_read(&v[i].obj->sem);
			}
			if (warned)
				msleep(grace);
		}
		for (i = 0; i < n; i++) {
			struct mc_vobj *obj = v[i].obj;
			struct mc_vr *r;

			if (!mc_purge_lock(obj, mode)) {
				mc_purge_owe(obj, reason, pages - freed);
				if (busy)
					*busy = true;
				goto put;
			}
			r = mc_victim_find(&v[i], !v[i].warned);
			if (r) {
				freed += mc_purge_range(obj, r, reason);
				changed++;
			} else if (v[i].warned) {
				atomic_long_inc(&mc_rescued);
				changed++;
			}
			up_write(&obj->sem);
put:
			mc_vobj_put(obj);
		}
		if (!changed)
			break;
		changed_total += changed;
		cond_resched();
	}
	return freed;
}

unsigned long mc_vrange_purge(unsigned long pages, u32 reason)
{
	if (reason < MEMCOOP_REASON_BALLOON || reason > MEMCOOP_REASON_OOM)
		return 0;
	might_sleep();
	return mc_purge(pages, reason,
			reason == MEMCOOP_REASON_BALLOON ? MC_PURGE_WAIT : MC_PURGE_TRY, NULL, NULL);
}

/* Resident pages in volatile ranges (an estimate, see struct mc_vr). */
unsigned long mc_vrange_purgeable(void)
{
	long n = atomic_long_read(&mc_volatile_resident);

	return n > 0 ? n : 0;
}

/*
 * Deferred purges.  Reclaim and the OOM notifier only trylock an object's
 * sem: a holder may be waiting for a page lock, and the OOM notifier runs
 * under oom_lock.  But an rwsem with waiters queued refuses every trylock,
 * even between two holders, so an object in heavy use (threads marking
 * ranges and faulting) is never purgeable that way.  When a trylock purge
 * is refused, the object owes the purge to its next writer
 * (mc_pay_owed(), usually within microseconds, as the refusal means its
 * users are busy in it), and the purge is handed to mc_vr_work on a
 * WQ_MEM_RECLAIM workqueue, which queues for the sem like any other
 * writer.  The OOM notifier waits for pages from either, or from a purge
 * already punching, oom_purge_wait_ms without progress per OOM episode
 * (calls less than MC_OOM_EPISODE apart), and reports only pages freed.
 */
static struct workqueue_struct *mc_vr_wq;
static atomic_long_t mc_deferred_want[MEMCOOP_REASON_OOM + 1];
static DEFINE_SPINLOCK(mc_deferred_lock);
static struct mem_cgroup *mc_deferred_memcg;	/* reclaim inside it (referenced) */
static atomic_long_t mc_deferred_runs;
static unsigned long mc_oom_last;		/* jiffies of the last OOM call (oom_lock) */
static unsigned int mc_oom_patience_ms;		/* wait left in this episode (oom_lock) */

static void mc_vr_workfn(struct work_struct *work)
{
	u32 reason;

	for (reason = MEMCOOP_REASON_OOM; reason >= MEMCOOP_REASON_RECLAIM; reason--) {
		unsigned long want = atomic_long_xchg(&mc_deferred_want[reason], 0);
		struct mem_cgroup *memcg = NULL;

		if (reason == MEMCOOP_REASON_RECLAIM) {
			spin_lock(&mc_deferred_lock);
			swap(memcg, mc_deferred_memcg);
			spin_unlock(&mc_deferred_lock);
		}
		if (want)
			mc_purge(want, reason, MC_PURGE_LOCK, NULL, memcg);
		mem_cgroup_put(memcg);
	}
	atomic_long_inc(&mc_deferred_runs);
	wake_up_all(&mc_purge_progress);
}

static DECLARE_WORK(mc_vr_work, mc_vr_workfn);

/*
 * mc_purge_later() - have the worker purge @pages for @reason, for
 * RECLAIM from the ranges @memcg marked (NULL or root: from all).  The
 * largest request wins, they are not added up; of two memcgs, the later.
 */
static void mc_purge_later(unsigned long pages, u32 reason, struct mem_cgroup *memcg)
{
	struct mem_cgroup *old;

	if (reason == MEMCOOP_REASON_RECLAIM) {
		memcg = mc_memcg_get(memcg);
		spin_lock(&mc_deferred_lock);
		old = mc_deferred_memcg;
		mc_deferred_memcg = memcg;
		spin_unlock(&mc_deferred_lock);
		mem_cgroup_put(old);
	}
	if (atomic_long_read(&mc_deferred_want[reason]) < (long)pages)
		atomic_long_set(&mc_deferred_want[reason], pages);
	queue_work(mc_vr_wq, &mc_vr_work);
}

/*
 * The shrinker is memcg-aware: reclaim inside a memory cgroup (at its
 * limit) purges the ranges tasks of that group marked, global reclaim
 * visits every group.  Counts are pages.
 */
static unsigned long mc_vr_count(struct shrinker *s, struct shrink_control *sc)
{
	unsigned long pages;

	if (!smp_load_acquire(&mc_vr_lru_ready))
		return 0;
	mc_collect_memcg(sc->memcg, NULL, INT_MAX, ULONG_MAX, &pages);
	return pages ? pages : SHRINK_EMPTY;
}

static unsigned long mc_vr_scan(struct shrinker *s, struct shrink_control *sc)
{
	unsigned long freed;
	bool busy = false;

	/* truncation takes page and i_mmap locks: not from FS reclaim */
	if (!(sc->gfp_mask & __GFP_FS) || !smp_load_acquire(&mc_vr_lru_ready))
		return SHRINK_STOP;
	freed = mc_purge(sc->nr_to_scan, MEMCOOP_REASON_RECLAIM, MC_PURGE_TRY, &busy, sc->memcg);
	if (busy && freed < sc->nr_to_scan)
		mc_purge_later(sc->nr_to_scan - freed, MEMCOOP_REASON_RECLAIM, sc->memcg);
	return freed ? freed : SHRINK_STOP;
}

/*
 * Runs under oom_lock (so one at a time); may sleep.  Reports the pages
 * really freed, nothing else: a purge that freed nothing lets the OOM
 * killer act.  When the owner of the ranges holds them busy, or another
 * purge is punching, waits for the pages freed meanwhile (by any purge),
 * but oom_purge_wait_ms without progress per episode: a kill that follows
 * within MC_OOM_EPISODE belongs to the same episode and does not renew it.
 * Runs first (mc_vr_oom_nb); when it freed pages it ends the chain, so the
 * relay's CRITICAL requests and the balloon's deflate wait for an OOM that
 * purging cannot answer.
 */
static int mc_vr_oom_notify(struct notifier_block *nb, unsigned long unused, void *parm)
{
	unsigned long *freed = parm, want = READ_ONCE(oom_purge_pages), n, before, t0;
	unsigned int waited;
	bool busy = false;

	atomic_long_inc(&mc_oom_calls);
	if (!mc_oom_last || time_after(jiffies, mc_oom_last + MC_OOM_EPISODE))
		mc_oom_patience_ms = min(READ_ONCE(oom_purge_wait_ms),
					 (unsigned int)MC_GRACE_MAX_MS);
	n = mc_purge(want, MEMCOOP_REASON_OOM, MC_PURGE_TRY, &busy, NULL);
	/*
	 * Nothing freed, but volatile memory is on its way back: an object
	 * was busy (its writers now owe the purge, the worker queues for its
	 * sem), or another purge (kswapd's, the balloon's) is punching ranges
	 * it took off the LRU, so that there was nothing left to collect.
	 * Wait for pages, from any purge, within the episode's patience.
	 */
	if (!n && (busy || atomic_read(&mc_punching)) && mc_oom_patience_ms) {
		before = atomic_long_read(&mc_purged_total);
		t0 = jiffies;
		atomic_long_inc(&mc_oom_waits);
		if (busy)
			mc_purge_later(want, MEMCOOP_REASON_OOM, NULL);
		wait_event_timeout(mc_purge_progress,
				   atomic_long_read(&mc_purged_total) != before ||
				   (!work_busy(&mc_vr_work) && !atomic_read(&mc_punching)),
				   msecs_to_jiffies(mc_oom_patience_ms));
		waited = jiffies_to_msecs(jiffies - t0);
		mc_oom_patience_ms -= min(waited, mc_oom_patience_ms);
		n = atomic_long_read(&mc_purged_total) - before;
	}
	mc_oom_last = jiffies ? jiffies : 1;
	/* the patience bounds waiting without progress: pages freed renew it */
	if (n)
		mc_oom_patience_ms = min(READ_ONCE(oom_purge_wait_ms),
					 (unsigned int)MC_GRACE_MAX_MS);
	*freed += n;
	/* freed: the costlier notifiers after us (CRITICAL requests, deflate) can wait */
	return n ? NOTIFY_STOP : NOTIFY_OK;
}

static struct notifier_block mc_vr_oom_nb = {
	.notifier_call = mc_vr_oom_notify,
	/* first (relay 90, balloon deflate 80): purging costs nobody anything */
	.priority = 100,
};

/* ---- residence --------------------------------------------------------- */

/*
 * mc_residence_chunk() - set bit i (LSB first in each byte) of @bits for each page @first + i
 * (i < @nr) present in the object's page cache (swapped-out shmem pages
 * are value entries and do not count).  Returns the pages found.
 */
static unsigned long mc_residence_chunk(struct address_space *mapping, pgoff_t first,
					unsigned long nr, u8 *bits)
{
	XA_STATE(xas, &mapping->i_pages, first);
	pgoff_t last = first + nr - 1;
	unsigned long found = 0;
	void *entry;

	rcu_read_lock();
	xas_for_each(&xas, entry, last) {
		pgoff_t idx, stop;

		if (xas_retry(&xas, entry) || xa_is_value(entry))
			continue;
		idx = xas.xa_index;
		stop = min_t(pgoff_t, last, idx + folio_nr_pages((struct folio *)entry) - 1);
		for (; idx <= stop; idx++) {
			if (!__test_and_set_bit_le(idx - first, bits))
				found++;
		}
	}
	rcu_read_unlock();
	return found;
}

static long mc_ioctl_residence(struct mc_file *mf, struct memcoop_residence __user *uarg)
{
	struct memcoop_residence res;
	struct mc_vobj *obj = mc_vobj_of(mf);
	unsigned long npages, done = 0, resident = 0;
	u8 *bits;
	pgoff_t first;
	int err;

	if (copy_from_user(&res, uarg, sizeof(res)))
		return -EFAULT;
	if (res.reserved)
		return -EINVAL;
	mmap_read_lock(current->mm);
	err = mc_resolve(obj, res.start, res.len, &first);
	mmap_read_unlock(current->mm);
	if (err)
		return err;
	npages = res.len >> PAGE_SHIFT;
	if (res.bitmap_size < DIV_ROUND_UP(npages, 8))
		return -EINVAL;

	bits = kmalloc(MC_RESID_CHUNK / 8, GFP_KERNEL);
	if (!bits)
		return -ENOMEM;
	while (done < npages) {
		unsigned long nr = min_t(unsigned long, npages - done, MC_RESID_CHUNK);
		u8 __user *dst = u64_to_user_ptr(res.bitmap) + done / 8;

		memset(bits, 0, MC_RESID_CHUNK / 8);
		resident += mc_residence_chunk(obj->shm->f_mapping, first + done, nr, bits);
		if (copy_to_user(dst, bits, DIV_ROUND_UP(nr, 8))) {
			err = -EFAULT;
			goto out;
		}
		done += nr;
		cond_resched();
	}
	if (put_user(resident, &uarg->resident))
		err = -EFAULT;
out:
	kfree(bits);
	return err;
}

static long mc_ioctl_vrange(struct mc_file *mf, struct memcoop_vrange __user *uarg)
{
	struct memcoop_vrange vr;
	struct mc_vobj *obj = mc_vobj_of(mf);
	pgoff_t first;
	int err;

	if (copy_from_user(&vr, uarg, sizeof(vr)))
		return -EFAULT;
	if (vr.reserved || (vr.mode != MEMCOOP_VRANGE_VOLATILE &&
			    vr.mode != MEMCOOP_VRANGE_NONVOLATILE))
		return -EINVAL;
	mmap_read_lock(current->mm);
	err = mc_resolve(obj, vr.start, vr.len, &first);
	mmap_read_unlock(current->mm);
	if (err)
		return err;

	if (vr.mode == MEMCOOP_VRANGE_VOLATILE) {
		err = mc_mark_volatile(obj, first, first + (vr.len >> PAGE_SHIFT),
				       vr.start - (first << PAGE_SHIFT));
		vr.purged = 0;
	} else {
		err = mc_mark_nonvolatile(obj, first, first + (vr.len >> PAGE_SHIFT));
		vr.purged = err > 0;
	}
	if (err < 0)
		return err;
	if (put_user(vr.purged, &uarg->purged))
		return -EFAULT;
	return 0;
}

long mc_vrange_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg)
{
	switch (cmd) {
	case MEMCOOP_IOC_VRANGE:
		return mc_ioctl_vrange(mf, arg);
	case MEMCOOP_IOC_RESIDENCE:
		return mc_ioctl_residence(mf, arg);
	default:
		return -ENOTTY;
	}
}

/* ---- counters, init ---------------------------------------------------- */

static int mc_vr_stats_show(struct seq_file *m, void *unused)
{
	static const char * const why[] = {
		[MEMCOOP_REASON_BALLOON] = "balloon",
		[MEMCOOP_REASON_RECLAIM] = "reclaim",
		[MEMCOOP_REASON_OOM] = "oom",
	};
	int i;

	seq_printf(m, "objects %ld\n", atomic_long_read(&mc_objects));
	seq_printf(m, "volatile_pages %ld\n", atomic_long_read(&mc_volatile_pages));
	seq_printf(m, "volatile_resident %ld\n", atomic_long_read(&mc_volatile_resident));
	seq_printf(m, "range_nodes %ld\n", atomic_long_read(&mc_range_nodes));
	seq_printf(m, "ranges_refused %ld\n", atomic_long_read(&mc_nospc));
	seq_printf(m, "purged_pages_now %ld\n", atomic_long_read(&mc_purged_now));
	seq_printf(m, "purged_pages_total %ld\n", atomic_long_read(&mc_purged_total));
	for (i = MEMCOOP_REASON_BALLOON; i <= MEMCOOP_REASON_OOM; i++) {
		seq_printf(m, "purges_%s %ld\n", why[i], atomic_long_read(&mc_purge_ranges[i]));
		seq_printf(m, "purged_pages_%s %ld\n", why[i],
			   atomic_long_read(&mc_purge_pages[i]));
	}
	seq_printf(m, "rescued_in_grace %ld\n", atomic_long_read(&mc_rescued));
	seq_printf(m, "purge_lock_busy %ld\n", atomic_long_read(&mc_lock_busy));
	seq_printf(m, "deferred_purges %ld\n", atomic_long_read(&mc_deferred_runs));
	seq_printf(m, "oom_calls %ld\n", atomic_long_read(&mc_oom_calls));
	seq_printf(m, "oom_waits %ld\n", atomic_long_read(&mc_oom_waits));
	seq_printf(m, "owed_purges %ld\n", atomic_long_read(&mc_owed_purges));
	seq_printf(m, "purge_budget_stops %ld\n", atomic_long_read(&mc_budget_stops));
	seq_printf(m, "sigbus %ld\n", atomic_long_read(&mc_sigbus));
	seq_printf(m, "refaults %ld\n", atomic_long_read(&mc_refaults));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mc_vr_stats);

/*
 * debugfs memcoop/vrange_purge (root only): writing N runs the balloon's
 * purge path for N pages (PURGE_SOON, grace period, purge), as if the
 * balloon were about to inflate by N pages.  For tests and operators.
 */
static ssize_t mc_vr_purge_write(struct file *file, const char __user *buf, size_t len,
				 loff_t *ppos)
{
	unsigned long pages;
	int err;

	err = kstrtoul_from_user(buf, len, 0, &pages);
	if (err)
		return err;
	mc_vrange_purge(pages, MEMCOOP_REASON_BALLOON);
	return len;
}

static const struct file_operations mc_vr_purge_fops = {
	.owner	= THIS_MODULE,
	.open	= simple_open,
	.write	= mc_vr_purge_write,
	.llseek	= noop_llseek,
};

/*
 * Our own tmpfs, huge=never, for the objects: with shmem THP enabled by
 * the administrator (or an application's MADV_HUGEPAGE, which clears
 * VM_NOHUGEPAGE) a huge page on shm_mnt would fill a purged hole beside a
 * touched page.  Without it (no THP in this kernel: the option is
 * unknown), objects live on shm_mnt, where no huge page can appear either.
 */
static void mc_shm_mnt_init(void)
{
	struct file_system_type *type = get_fs_type("tmpfs");
	char opts[] = "huge=never";	/* parsed in place: not in rodata */
	struct vfsmount *mnt;

	if (!type)
		return;
	mnt = vfs_kern_mount(type, SB_KERNMOUNT, type->name, opts);
	if (IS_ERR(mnt)) {
		pr_info("no huge=never tmpfs (%ld): objects on shm_mnt\n", PTR_ERR(mnt));
		return;
	}
	mc_shm_mnt = mnt;
}

int mc_vrange_init(void)
{
	int err = -ENOMEM;

	/* range nodes are charged to the marking task's memcg */
	mc_vr_cache = KMEM_CACHE(mc_vr, SLAB_ACCOUNT);
	if (!mc_vr_cache)
		return -ENOMEM;
	mc_shm_mnt_init();
	/* it frees memory: it must run even when no kworker can be created */
	mc_vr_wq = alloc_workqueue("memcoop_purge", WQ_MEM_RECLAIM | WQ_UNBOUND, 1);
	if (!mc_vr_wq)
		goto out_cache;
	/* the list_lru needs the shrinker's id, which registering assigns */
	mc_vr_shrinker = mc_shrinker_create("memcoop-vrange", mc_vr_count, mc_vr_scan,
					    DEFAULT_SEEKS, SHRINKER_MEMCG_AWARE, NULL);
	if (!mc_vr_shrinker)
		goto out_wq;
	err = list_lru_init_memcg(&mc_vr_lru, mc_vr_shrinker);
	if (err)
		goto out_shrinker;
	smp_store_release(&mc_vr_lru_ready, true);
	err = register_oom_notifier(&mc_vr_oom_nb);
	if (err)
		goto out_lru;
	if (mc_debugfs_root)
		mc_vr_debugfs = debugfs_create_file("vrange", 0444, mc_debugfs_root, NULL,
						    &mc_vr_stats_fops);
	if (mc_debugfs_root)
		mc_vr_debugfs_purge = debugfs_create_file("vrange_purge", 0200, mc_debugfs_root,
							  NULL, &mc_vr_purge_fops);
	return 0;

out_lru:
	mc_shrinker_destroy(mc_vr_shrinker);	/* before the list_lru it counts */
	list_lru_destroy(&mc_vr_lru);
	goto out_wq;
out_shrinker:
	mc_shrinker_destroy(mc_vr_shrinker);
out_wq:
	destroy_workqueue(mc_vr_wq);
out_cache:
	if (mc_shm_mnt)
		kern_unmount(mc_shm_mnt);
	kmem_cache_destroy(mc_vr_cache);
	return err;
}

void mc_vrange_exit(void)
{
	/* every object holds a module reference: none is left here */
	debugfs_remove(mc_vr_debugfs_purge);
	debugfs_remove(mc_vr_debugfs);
	unregister_oom_notifier(&mc_vr_oom_nb);
	mc_shrinker_destroy(mc_vr_shrinker);
	destroy_workqueue(mc_vr_wq);	/* after the last queue_work() caller */
	mem_cgroup_put(mc_deferred_memcg);	/* a request the worker did not take */
	list_lru_destroy(&mc_vr_lru);
	if (mc_shm_mnt)
		kern_unmount(mc_shm_mnt);
	kmem_cache_destroy(mc_vr_cache);
}
