// SPDX-License-Identifier: GPL-2.0
/*
 * memcoop: the virtio-balloon driver (virtio device id 5).
 *
 * Speaks the standard virtio-balloon protocol to stock QEMU, with the
 * features the upstream 6.1 driver offers (MUST_TELL_HOST, STATS_VQ,
 * DEFLATE_ON_OOM, FREE_PAGE_HINT, PAGE_POISON, REPORTING), and differs
 * from it where speed is concerned:
 *
 *  - one inflate/deflate request carries up to @batch_pages PFNs (the
 *    upstream driver sends 256), from a buffer allocated at probe;
 *  - inflation takes high-order blocks when they come cheaply (no reclaim,
 *    no compaction) and splits them into order-0 balloon pages, then
 *    falls back to bulk order-0 allocation; pages enter the balloon list
 *    under one lock round trip per batch and the managed page count is
 *    adjusted once per zone run, not per page;
 *  - the work item loops until the target is reached without sleeping;
 *    only when the guest cannot give memory does it back off, with an
 *    exponentially growing, bounded delay, and count it.
 *
 * Before inflating beyond what free memory can cover, the driver asks the
 * rest of memcoop to make room (mc_reclaim_for_balloon(): volatile ranges,
 * registered processes), once per target.
 *
 * Counters: /sys/kernel/debug/memcoop/balloon, "name value" lines.
 *
 * Units: the device counts 4 KiB balloon pages; all page counts in this
 * file are in PAGE_SIZE pages unless a name says "pfns" (balloon pages).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": balloon: " fmt

#include <linux/module.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_balloon.h>
#include <uapi/linux/virtio_ring.h>
#include <linux/page_reporting.h>
#include <linux/workqueue.h>
#include <linux/oom.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/gfp.h>
#include <linux/swap.h>
#include <linux/vmstat.h>
#include <linux/poison.h>
#include <linux/scatterlist.h>
#include <linux/seq_file.h>
#include <linux/debugfs.h>
#include <linux/ktime.h>
#include <linux/delay.h>
#include <linux/atomic.h>

#include "mc_internal.h"

/* Balloon pages (4 KiB) per guest page. */
#define MC_PFNS_PER_PAGE	((unsigned int)(PAGE_SIZE >> VIRTIO_BALLOON_PFN_SHIFT))
/* Free page hint blocks: the largest buddy order, as upstream. */
#define MC_HINT_ORDER		MC_MAX_PAGE_ORDER
#define MC_HINT_PAGES		(1UL << MC_HINT_ORDER)
#define MC_OOM_NOTIFY_PRIORITY	80
/* Deflation gives back aligned runs of this order as one block. */
#define MC_BLOCK_ORDER		min(9, MC_MAX_PAGE_ORDER)
/* Pages taken off the balloon list per lock round trip (irqs are off). */
#define MC_DEQUEUE_CHUNK	1024
/* Bounds of the backoff when the guest cannot give memory. */
#define MC_BACKOFF_MIN_MS	10

static unsigned int batch_pages = 16384;
MC_PARAM_UINT(batch_pages, 256, 65536, 0444,
	      "balloon pages (4 KiB PFNs) per inflate/deflate request, 256..65536 (default 16384)");

static unsigned int alloc_order = 9;
MC_PARAM_UINT(alloc_order, 0, MC_MAX_PAGE_ORDER, 0644,
	      "order of the blocks inflation tries first (split into 4 KiB pages), 0..MAX_PAGE_ORDER; 0 disables (default 9)");

static unsigned int oom_pages = 1024;
MC_PARAM_UINT(oom_pages, 1, 1U << 20, 0644,
	      "pages given back per OOM notification with DEFLATE_ON_OOM, 1..1048576 (default 1024)");

static unsigned int backoff_max_ms = 2000;
MC_PARAM_UINT(backoff_max_ms, 10, 60000, 0644,
	      "longest wait between inflation attempts when the guest cannot give memory (ms, 10..60000, default 2000)");

static unsigned int reclaim_headroom_kib = 16384;
MC_PARAM_UINT(reclaim_headroom_kib, 0, 1U << 20, 0644,
	      "free memory above the watermarks an inflation that asks processes leaves the guest (KiB, 0..1048576, default 16384)");

static bool free_blocks = true;
module_param(free_blocks, bool, 0644);
MODULE_PARM_DESC(free_blocks,
		 "deflation frees whole aligned runs of MC_BLOCK_ORDER pages as one block (default Y)");

static bool reclaim_hook = true;
module_param(reclaim_hook, bool, 0644);
MODULE_PARM_DESC(reclaim_hook,
		 "ask volatile ranges and registered processes for memory before inflating past free memory (default Y)");

enum mc_vq {
	MC_VQ_INFLATE,
	MC_VQ_DEFLATE,
	MC_VQ_STATS,
	MC_VQ_FREE_PAGE,
	MC_VQ_REPORTING,
	MC_VQ_MAX
};

/* Counters, all monotonic except where noted; pages in PAGE_SIZE pages. */
struct mc_balloon_counters {
	atomic64_t inflated;		/* pages given to the host */
	atomic64_t deflated;		/* pages taken back */
	atomic64_t inflate_reqs;	/* inflate virtqueue requests */
	atomic64_t deflate_reqs;	/* deflate virtqueue requests */
	atomic64_t inflate_ns;		/* time in inflation (alloc + host) */
	atomic64_t deflate_ns;		/* time in deflation */
	atomic64_t inflate_host_ns;	/* of which waiting for the host */
	atomic64_t deflate_host_ns;
	atomic64_t highorder_blocks;	/* high-order blocks split */
	atomic64_t freed_blocks;	/* blocks freed whole on deflation */
	atomic64_t alloc_failures;	/* allocation rounds that came up short */
	atomic64_t backoffs;		/* delayed retries after a failure */
	atomic64_t oom_events;		/* OOM notifications served */
	atomic64_t oom_pages;		/* pages given back on OOM */
	atomic64_t reported_pages;	/* pages reported free (REPORTING) */
	atomic64_t report_reqs;		/* free page reports */
	atomic64_t hint_blocks;		/* free page hint blocks sent */
	atomic64_t reclaim_reqs;	/* mc_reclaim_for_balloon() calls */
	atomic64_t reclaim_pages;	/* pages those calls said were freed */
	atomic64_t migrated;		/* balloon pages moved by compaction */
	atomic64_t stats_reqs;		/* stats buffers sent */
};

/*
 * struct mc_balloon - one virtio-balloon device.
 *
 * Locking: @balloon_lock serialises everything that puts PFNs in @pfns and
 * talks to the inflate/deflate queues (the size work, OOM notifier,
 * migration, remove), and protects @num_pages.  @stop_lock protects @stop
 * and is taken from interrupt context.
 */
struct mc_balloon {
	struct virtio_device *vdev;
	struct virtqueue *vqs[MC_VQ_MAX];	/* NULL if not negotiated */
	u64 config_ns;			/* ktime_get_ns() of the last config interrupt */

	/* inflate/deflate: the work that follows the target */
	struct workqueue_struct *wq;	/* freezable, unbound */
	struct delayed_work size_work;
	struct work_struct changed_work; /* reads a new target, queues size_work */
	unsigned int backoff_ms;	/* current delay, 0 = not backing off */
	u32 reclaim_target;		/* target mc_reclaim_for_balloon() ran for */
	struct work_struct stats_work;	/* STATS_VQ */

	spinlock_t stop_lock;
	bool stop;			/* set by remove/freeze: queue no work */

	wait_queue_head_t acked;	/* host used a buffer (inflate, deflate, reporting) */

	struct mutex balloon_lock;
	unsigned long num_pages;	/* pages in the balloon */
	struct balloon_dev_info bdi;	/* balloon list, movable pages */
	__virtio32 *pfns;		/* request buffer, @pfns_max entries */
	unsigned int pfns_max;
	bool adjust_managed;		/* !DEFLATE_ON_OOM: MemTotal shrinks */

	/* STATS_VQ: one buffer, refilled on each host request */
	struct virtio_balloon_stat stats[MC_BALLOON_S_NR];
	unsigned long vm_events[NR_VM_EVENT_ITEMS];

	/* FREE_PAGE_HINT: blocks lent to the host until it says DONE */
	struct work_struct hint_work;
	spinlock_t hint_lock;		/* protects @hint_list, @hint_blocks */
	struct list_head hint_list;
	unsigned long hint_blocks;
	__virtio32 hint_cmd_active;	/* the command id being served */
	atomic_t hint_reread;		/* config changed: read the id again */
	u32 hint_cmd_seen;		/* the id last read from the config */
	__virtio32 hint_cmd_stop;	/* buffer holding CMD_ID_STOP */
	struct shrinker *hint_shrinker;

	/* DEFLATE_ON_OOM */
	struct notifier_block oom_nb;

	/* REPORTING */
	struct page_reporting_dev_info pr_dev_info;
	bool reporting;			/* registered */

	struct mc_balloon_counters cnt;
	struct dentry *debugfs;
};

static atomic_t mc_balloon_instances = ATOMIC_INIT(0);

/* A list of pages through page->lru (the hint blocks). */
static void mc_page_push(struct list_head *list, struct page *page)
{
	list_add(&page->lru, list);
}

static struct page *mc_page_pop(struct list_head *list)
{
	struct page *page = list_first_entry_or_null(list, struct page, lru);

	if (page)
		list_del(&page->lru);
	return page;
}

static u32 mc_page_to_pfn(struct page *page)
{
	BUILD_BUG_ON(PAGE_SHIFT < VIRTIO_BALLOON_PFN_SHIFT);
	return page_to_pfn(page) * MC_PFNS_PER_PAGE;
}

/* Put the balloon PFNs of @page at @pfns[0 .. MC_PFNS_PER_PAGE). */
static void mc_set_pfns(struct mc_balloon *vb, __virtio32 *pfns,
			struct page *page)
{
	u32 pfn = mc_page_to_pfn(page);
	unsigned int i;

	for (i = 0; i < MC_PFNS_PER_PAGE; i++)
		pfns[i] = cpu_to_virtio32(vb->vdev, pfn + i);
}

static void mc_balloon_ack(struct virtqueue *vq)
{
	struct mc_balloon *vb = vq->vdev->priv;

	wake_up(&vb->acked);
}

/**
 * mc_tell_host() - send @vb->pfns[0 .. @n) on @vq and wait for the host.
 * @vb: the device
 * @vq: the inflate or deflate queue
 * @n: number of PFNs
 *
 * Caller holds vb->balloon_lock.  The queue is empty on entry, so adding
 * one buffer cannot fail short of a broken device; then nothing is sent
 * and the error is reported (rate limited).
 *
 * Return: the nanoseconds spent, for the counters.
 */
static u64 mc_tell_host(struct mc_balloon *vb, struct virtqueue *vq,
			unsigned int n)
{
	u64 t0 = ktime_get_ns();
	struct scatterlist sg;
	unsigned int len;
	int err;

	lockdep_assert_held(&vb->balloon_lock);
	sg_init_one(&sg, vb->pfns, sizeof(vb->pfns[0]) * n);
	err = virtqueue_add_outbuf(vq, &sg, 1, vb, GFP_KERNEL);
	if (err) {
		dev_err_ratelimited(&vb->vdev->dev, "cannot queue %u pfns: %d\n",
				    n, err);
		return 0;
	}
	virtqueue_kick(vq);
	wait_event(vb->acked, virtqueue_get_buf(vq, &len));
	return ktime_get_ns() - t0;
}

/* The target in pages, from the device config (little endian, legacy). */
static unsigned long mc_target(struct mc_balloon *vb)
{
	u32 num_pfns;

	virtio_cread_le(vb->vdev, struct virtio_balloon_config, num_pages,
			&num_pfns);
	return DIV_ROUND_UP(num_pfns, MC_PFNS_PER_PAGE);
}

/* Caller holds vb->balloon_lock. */
static void mc_update_actual(struct mc_balloon *vb)
{
	u32 actual = vb->num_pages * MC_PFNS_PER_PAGE;

	virtio_cwrite_le(vb->vdev, struct virtio_balloon_config, actual,
			 &actual);
}

/*
 * Adjust the managed page count for the pages on @list, one call per run
 * of pages in the same zone.  @sign is -1 (inflate) or +1 (deflate).
 */
static void mc_adjust_managed(struct list_head *list, long sign)
{
	struct page *page, *first = NULL;
	long run = 0;

	list_for_each_entry(page, list, lru) {
		if (first && page_zone(page) != page_zone(first)) {
			adjust_managed_page_count(first, sign * run);
			run = 0;
		}
		if (!run)
			first = page;
		run++;
	}
	if (run)
		adjust_managed_page_count(first, sign * run);
}

/* Free pages above the zones' high watermarks, the cheap-to-take memory. */
static unsigned long mc_free_above_wmark(void)
{
	unsigned long free = global_zone_page_state(NR_FREE_PAGES);
	unsigned long wmark = 0;
	int nid, z;

	for_each_online_node(nid) {
		pg_data_t *pgdat = NODE_DATA(nid);

		for (z = 0; z < MAX_NR_ZONES; z++) {
			struct zone *zone = &pgdat->node_zones[z];

			if (populated_zone(zone))
				wmark += high_wmark_pages(zone);
		}
	}
	return free > wmark ? free - wmark : 0;
}

#define MC_GFP_BALLOON	(GFP_HIGHUSER_MOVABLE | __GFP_NOMEMALLOC | \
			 __GFP_NORETRY | __GFP_NOWARN)

/**
 * mc_alloc_pages() - allocate up to @want order-0 pages for the balloon.
 * @vb: the device
 * @want: pages wanted
 * @list: where the pages go (linked by page->lru)
 *
 * High-order blocks first, as long as they come without reclaim or
 * compaction, each split into order-0 pages; then order-0 pages in bulk,
 * which may reclaim a little (__GFP_NORETRY) like upstream's
 * balloon_page_alloc() but never invokes the OOM killer.  Called without
 * vb->balloon_lock (allocation may enter compaction, which may migrate
 * balloon pages and so needs that lock).
 *
 * Return: the number of pages put on @list.
 */
static unsigned long mc_alloc_pages(struct mc_balloon *vb, unsigned long want,
				    struct list_head *list)
{
	unsigned int order = min_t(unsigned int, READ_ONCE(alloc_order),
				   MC_MAX_PAGE_ORDER);
	unsigned long got = 0;

	while (order && want - got >= (1UL << order)) {
		gfp_t gfp = MC_GFP_BALLOON & ~__GFP_RECLAIM;
		struct page *page = alloc_pages(gfp, order);
		unsigned long i;

		if (!page)
			break;
		split_page(page, order);
		for (i = 0; i < (1UL << order); i++)
			list_add_tail(&page[i].lru, list);
		got += 1UL << order;
		atomic64_inc(&vb->cnt.highorder_blocks);
	}

	while (got < want) {
		LIST_HEAD(bulk);
		unsigned long n;

		n = mc_alloc_pages_bulk_list(MC_GFP_BALLOON,
					     min(want - got, 512UL), &bulk);
		if (!n)
			break;
		list_splice_tail(&bulk, list);
		got += n;
		cond_resched();
	}
	return got;
}

/**
 * mc_fill() - inflate by up to @want pages in one request.
 * @vb: the device
 * @want: pages wanted
 *
 * Return: the pages added to the balloon; fewer than asked (capped at one
 * request) means the guest could not give more right now.
 */
static unsigned long mc_fill(struct mc_balloon *vb, unsigned long want)
{
	unsigned long got, i = 0;
	struct page *page;
	u64 t0 = ktime_get_ns();
	LIST_HEAD(pages);

	want = min_t(unsigned long, want, vb->pfns_max / MC_PFNS_PER_PAGE);
	got = mc_alloc_pages(vb, want, &pages);
	if (!got)
		goto out;

	mutex_lock(&vb->balloon_lock);
	if (unlikely(!vb->vqs[MC_VQ_INFLATE])) {
		/* queues gone (cannot happen while the work is frozen/cancelled) */
		struct page *next;

		mutex_unlock(&vb->balloon_lock);
		list_for_each_entry_safe(page, next, &pages, lru) {
			list_del(&page->lru);
			put_page(page);
		}
		got = 0;
		goto out;
	}
	list_for_each_entry(page, &pages, lru) {
		mc_set_pfns(vb, vb->pfns + i, page);
		i += MC_PFNS_PER_PAGE;
	}
	if (vb->adjust_managed)
		mc_adjust_managed(&pages, -1);
	balloon_page_list_enqueue(&vb->bdi, &pages);
	atomic64_add(mc_tell_host(vb, vb->vqs[MC_VQ_INFLATE], i),
		     &vb->cnt.inflate_host_ns);
	vb->num_pages += got;
	/* with num_pages: the counters agree with the size the host sees */
	atomic64_add(got, &vb->cnt.inflated);
	mc_update_actual(vb);
	mutex_unlock(&vb->balloon_lock);

	atomic64_inc(&vb->cnt.inflate_reqs);
out:
	atomic64_add(ktime_get_ns() - t0, &vb->cnt.inflate_ns);
	return got;
}

/**
 * mc_free_block() - free a whole block of former balloon pages at once.
 * @vb: the device
 * @list: pages leaving the balloon (finalized, one reference each)
 * @head: the first page on @list
 *
 * Inflation splits high-order blocks and the balloon list keeps their
 * pages together, so deflation usually finds the 2^MC_BLOCK_ORDER pages of
 * a block in PFN order on @list.  Freeing them as one block saves the
 * allocator a per-page free and the buddy merges.  The tail pages' single
 * reference is frozen first; if anyone else holds one (a PFN walker's
 * transient get_page()), nothing is changed and the caller frees page by
 * page.
 *
 * Return: true if the block was freed and its pages left @list.
 */
static bool mc_free_block(struct mc_balloon *vb, struct list_head *list,
			  struct page *head)
{
	const unsigned long nr = 1UL << MC_BLOCK_ORDER;
	unsigned long pfn = page_to_pfn(head), i;
	struct page *p = head;

	if (!MC_BALLOON_BLOCK_FREE || !IS_ALIGNED(pfn, nr))
		return false;
	for (i = 1; i < nr; i++) {
		if (list_is_last(&p->lru, list))
			return false;
		p = list_next_entry(p, lru);
		if (page_to_pfn(p) != pfn + i || page_zone(p) != page_zone(head))
			return false;
	}
	for (i = 1; i < nr; i++)
		if (!page_ref_freeze(pfn_to_page(pfn + i), 1))
			break;
	if (i < nr) {
		while (--i >= 1)
			page_ref_unfreeze(pfn_to_page(pfn + i), 1);
		return false;
	}
	for (i = 0; i < nr; i++) {
		p = pfn_to_page(pfn + i);
		list_del(&p->lru);
		/* balloon_page_finalize() leaves the movable mapping flag */
		p->mapping = NULL;
	}
	__free_pages(head, MC_BLOCK_ORDER);
	atomic64_inc(&vb->cnt.freed_blocks);
	return true;
}

/**
 * mc_leak() - deflate by up to @want pages in one request.
 * @vb: the device
 * @want: pages wanted
 *
 * Tells the host before the pages are used again (MUST_TELL_HOST order),
 * always, as upstream does.  Pages isolated by compaction at this moment
 * are not on the list and come back later.
 *
 * Return: the pages taken out of the balloon.
 */
static unsigned long mc_leak(struct mc_balloon *vb, unsigned long want)
{
	unsigned long got = 0, i = 0;
	struct page *page;
	u64 t0 = ktime_get_ns();
	LIST_HEAD(pages);

	mutex_lock(&vb->balloon_lock);
	if (!vb->vqs[MC_VQ_DEFLATE])
		want = 0;		/* frozen: no queues until restore */
	want = min3(want, vb->num_pages,
		    (unsigned long)(vb->pfns_max / MC_PFNS_PER_PAGE));
	while (got < want) {
		size_t n = balloon_page_list_dequeue(&vb->bdi, &pages,
					min_t(unsigned long, want - got,
					      MC_DEQUEUE_CHUNK));
		if (!n)
			break;
		got += n;
	}
	if (!got) {
		mutex_unlock(&vb->balloon_lock);
		return 0;
	}
	list_for_each_entry(page, &pages, lru) {
		mc_set_pfns(vb, vb->pfns + i, page);
		i += MC_PFNS_PER_PAGE;
	}
	atomic64_add(mc_tell_host(vb, vb->vqs[MC_VQ_DEFLATE], i),
		     &vb->cnt.deflate_host_ns);
	vb->num_pages -= got;
	/* both before the (slow) frees: counters that settle together */
	atomic64_add(got, &vb->cnt.deflated);
	atomic64_inc(&vb->cnt.deflate_reqs);
	mc_update_actual(vb);
	mutex_unlock(&vb->balloon_lock);

	if (vb->adjust_managed)
		mc_adjust_managed(&pages, 1);
	while (!list_empty(&pages)) {
		page = list_first_entry(&pages, struct page, lru);
		if (READ_ONCE(free_blocks) && mc_free_block(vb, &pages, page))
			continue;
		list_del(&page->lru);
		put_page(page);		/* the balloon's reference */
	}
	atomic64_add(ktime_get_ns() - t0, &vb->cnt.deflate_ns);
	return got;
}

static bool mc_stopped(struct mc_balloon *vb)
{
	bool stop;

	spin_lock_irq(&vb->stop_lock);
	stop = vb->stop;
	spin_unlock_irq(&vb->stop_lock);
	return stop;
}

/* Queue the size work after @delay_ms unless the device is going away. */
static void mc_queue_size_work(struct mc_balloon *vb, unsigned long delay_ms,
			       bool now)
{
	unsigned long flags;

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stop) {
		if (now)
			mod_delayed_work(vb->wq, &vb->size_work, 0);
		else
			queue_delayed_work(vb->wq, &vb->size_work,
					   msecs_to_jiffies(delay_ms));
	}
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

/*
 * Before inflating by @diff pages toward @target: if free memory above the
 * watermarks cannot cover it and leave reclaim_headroom_kib besides, ask the
 * rest of memcoop for the shortfall, once per target.  Without the headroom
 * a round ends with the guest at its high watermark, and where nothing is
 * left to reclaim (no swap, no page cache: the processes just gave what
 * they could spare) a little more allocation is an OOM kill.
 */
static void mc_maybe_reclaim(struct mc_balloon *vb, unsigned long target,
			     unsigned long diff)
{
	unsigned long avail, freed, want;

	if (!READ_ONCE(reclaim_hook) || vb->reclaim_target == target)
		return;
	avail = mc_free_above_wmark();
	want = diff + (READ_ONCE(reclaim_headroom_kib) >> (PAGE_SHIFT - 10));
	if (avail >= want)
		return;
	vb->reclaim_target = target;
	atomic64_inc(&vb->cnt.reclaim_reqs);
	freed = mc_reclaim_for_balloon(want - avail);
	atomic64_add(freed, &vb->cnt.reclaim_pages);
	dev_dbg(&vb->vdev->dev, "reclaim for %lu pages: %lu freed\n",
		want - avail, freed);
}

/**
 * mc_size_work() - move the balloon toward the target.
 * @work: vb->size_work
 *
 * Loops without sleeping while memory comes; when an inflation round comes
 * up short, requeues itself with an exponential backoff (bounded by
 * @backoff_max_ms) and returns.  A config change while backing off only
 * cuts the wait short when the balloon must shrink.
 */
static void mc_size_work(struct work_struct *work)
{
	struct mc_balloon *vb = container_of(to_delayed_work(work),
					     struct mc_balloon, size_work);

	for (;;) {
		unsigned long target, cur, want, got;

		if (mc_stopped(vb))
			return;
		target = mc_target(vb);
		cur = READ_ONCE(vb->num_pages);
		if (target == cur) {
			WRITE_ONCE(vb->backoff_ms, 0);
			return;
		}
		if (target < cur) {
			WRITE_ONCE(vb->backoff_ms, 0);
			if (!mc_leak(vb, cur - target)) {
				/* all remaining pages are being migrated */
				mc_queue_size_work(vb, MC_BACKOFF_MIN_MS, false);
				return;
			}
			cond_resched();
			continue;
		}

		want = min_t(unsigned long, target - cur,
			     vb->pfns_max / MC_PFNS_PER_PAGE);
		mc_maybe_reclaim(vb, target, target - cur);
		got = mc_fill(vb, want);
		if (got < want) {
			unsigned int max_ms = max(READ_ONCE(backoff_max_ms),
						  (unsigned int)MC_BACKOFF_MIN_MS);
			unsigned int ms = READ_ONCE(vb->backoff_ms);

			ms = ms ? min(ms * 2, max_ms) : MC_BACKOFF_MIN_MS;
			WRITE_ONCE(vb->backoff_ms, ms);
			atomic64_inc(&vb->cnt.alloc_failures);
			atomic64_inc(&vb->cnt.backoffs);
			dev_info_ratelimited(&vb->vdev->dev,
					     "out of memory: %lu of %lu pages, retry in %u ms\n",
					     got, want, ms);
			mc_queue_size_work(vb, ms, false);
			return;
		}
		WRITE_ONCE(vb->backoff_ms, 0);
		cond_resched();
	}
}

/*
 * mc_changed_work() - a config change, in process context: reading the
 * config may sleep (virtio_cread() says so), and mc_changed() runs in the
 * device's interrupt handler.
 * @work: vb->changed_work
 */
static void mc_changed_work(struct work_struct *work)
{
	struct mc_balloon *vb = container_of(work, struct mc_balloon,
					     changed_work);
	bool now;

	/*
	 * While backing off, a new target that needs more pages waits for
	 * the pending retry; one that needs fewer is served at once.
	 */
	now = !READ_ONCE(vb->backoff_ms) ||
	      mc_target(vb) < READ_ONCE(vb->num_pages);
	mc_queue_size_work(vb, 0, now);
}

/* The config interrupt: only queues work (may run in hard IRQ context). */
static void mc_changed(struct virtio_device *vdev)
{
	struct mc_balloon *vb = vdev->priv;
	unsigned long flags;

	WRITE_ONCE(vb->config_ns, ktime_get_ns());
	if (vb->vqs[MC_VQ_FREE_PAGE])
		atomic_set(&vb->hint_reread, 1);
	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stop) {
		queue_work(vb->wq, &vb->changed_work);
		if (vb->vqs[MC_VQ_FREE_PAGE])
			queue_work(vb->wq, &vb->hint_work);
	}
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

/* ---- STATS_VQ ---- */

static void mc_stat(struct mc_balloon *vb, unsigned int *idx, u16 tag, u64 val)
{
	if (WARN_ON_ONCE(*idx >= MC_BALLOON_S_NR))
		return;
	vb->stats[*idx].tag = cpu_to_virtio16(vb->vdev, tag);
	vb->stats[*idx].val = cpu_to_virtio64(vb->vdev, val);
	(*idx)++;
}

#define MC_BYTES(pages) ((u64)(pages) << PAGE_SHIFT)

#ifdef CONFIG_VM_EVENT_COUNTERS
/*
 * Direct reclaim entries of allocations, all zones together.  The
 * ALLOCSTALL_* events are one per zone, in enum zone_type's order.
 */
static unsigned long mc_alloc_stalls(const unsigned long *ev)
{
	unsigned long sum = 0;
	int z;

	for (z = 0; z < MAX_NR_ZONES; z++)
		sum += ev[ALLOCSTALL_NORMAL - ZONE_NORMAL + z];
	return sum;
}
#endif

/*
 * Fill vb->stats; returns the number of entries.  Stats work context.
 * Every tag goes to every device: tags 10..15 (from OOM_KILL) are the
 * figures upstream sends since 6.10, bytes where they count pages.
 */
static unsigned int mc_fill_stats(struct mc_balloon *vb)
{
	unsigned long *ev = vb->vm_events;
	unsigned int idx = 0;
	struct sysinfo si;
	long avail;

	all_vm_events(ev);
	si_meminfo(&si);
	avail = si_mem_available();

#ifdef CONFIG_VM_EVENT_COUNTERS
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_SWAP_IN, MC_BYTES(ev[PSWPIN]));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_SWAP_OUT, MC_BYTES(ev[PSWPOUT]));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_MAJFLT, ev[PGMAJFAULT]);
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_MINFLT, ev[PGFAULT]);
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_OOM_KILL, ev[OOM_KILL]);
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_ALLOC_STALL, mc_alloc_stalls(ev));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_ASYNC_SCAN, MC_BYTES(ev[PGSCAN_KSWAPD]));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_DIRECT_SCAN, MC_BYTES(ev[PGSCAN_DIRECT]));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_ASYNC_RECLAIM,
		MC_BYTES(ev[PGSTEAL_KSWAPD]));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_DIRECT_RECLAIM,
		MC_BYTES(ev[PGSTEAL_DIRECT]));
#ifdef CONFIG_HUGETLB_PAGE
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_HTLB_PGALLOC, ev[HTLB_BUDDY_PGALLOC]);
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_HTLB_PGFAIL,
		ev[HTLB_BUDDY_PGALLOC_FAIL]);
#endif
#endif
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_MEMFREE, MC_BYTES(si.freeram));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_MEMTOT, MC_BYTES(si.totalram));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_AVAIL, MC_BYTES(max(avail, 0L)));
	mc_stat(vb, &idx, VIRTIO_BALLOON_S_CACHES,
		MC_BYTES(global_node_page_state(NR_FILE_PAGES)));
	return idx;
}

/* The host used the stats buffer: it wants fresh numbers. */
static void mc_stats_request(struct virtqueue *vq)
{
	struct mc_balloon *vb = vq->vdev->priv;
	unsigned long flags;

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stop)
		queue_work(system_freezable_wq, &vb->stats_work);
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

/* Hand the (refilled) stats buffer to the host.  Caller owns the queue. */
static int mc_stats_send(struct mc_balloon *vb)
{
	struct virtqueue *vq = vb->vqs[MC_VQ_STATS];
	struct scatterlist sg;
	unsigned int n = mc_fill_stats(vb);
	int err;

	sg_init_one(&sg, vb->stats, sizeof(vb->stats[0]) * n);
	err = virtqueue_add_outbuf(vq, &sg, 1, vb, GFP_KERNEL);
	if (err)
		return err;
	virtqueue_kick(vq);
	atomic64_inc(&vb->cnt.stats_reqs);
	return 0;
}

static void mc_stats_work(struct work_struct *work)
{
	struct mc_balloon *vb = container_of(work, struct mc_balloon,
					     stats_work);
	unsigned int len;
	int err;

	if (!virtqueue_get_buf(vb->vqs[MC_VQ_STATS], &len))
		return;
	err = mc_stats_send(vb);
	if (err)
		dev_warn_ratelimited(&vb->vdev->dev, "stats buffer: %d\n", err);
}

/* ---- FREE_PAGE_HINT ---- */

/*
 * The host's current hint command.  The config field is read only after a
 * config-change notification: while a command is being served, QEMU shows
 * 0 (CMD_ID_STOP) in it as soon as it has taken our start id, so reading it
 * at every step would end each command after the first few blocks.  A
 * change to STOP, DONE or a new id always comes with a notification.
 * Only the hint work calls this, so @hint_cmd_seen needs no lock.
 */
static u32 mc_hint_cmd_id(struct mc_balloon *vb)
{
	if (atomic_xchg(&vb->hint_reread, 0))
		virtio_cread_le(vb->vdev, struct virtio_balloon_config,
				free_page_hint_cmd_id, &vb->hint_cmd_seen);
	return vb->hint_cmd_seen;
}

/* Give up to @blocks hint blocks back to the page allocator. */
static unsigned long mc_hint_return(struct mc_balloon *vb,
				    unsigned long blocks)
{
	unsigned long n = 0;
	struct page *page;

	spin_lock_irq(&vb->hint_lock);
	while (n < blocks && (page = mc_page_pop(&vb->hint_list))) {
		__free_pages(page, MC_HINT_ORDER);
		n++;
	}
	vb->hint_blocks -= n;
	spin_unlock_irq(&vb->hint_lock);
	return n;
}

static void mc_hint_drain_used(struct virtqueue *vq)
{
	unsigned int len;

	while (virtqueue_get_buf(vq, &len))
		;
}

/* Send the command id in @id_buf (an outbuf). */
static int mc_hint_send_id(struct mc_balloon *vb, __virtio32 *id_buf)
{
	struct virtqueue *vq = vb->vqs[MC_VQ_FREE_PAGE];
	struct scatterlist sg;
	int err;

	mc_hint_drain_used(vq);
	sg_init_one(&sg, id_buf, sizeof(*id_buf));
	err = virtqueue_add_outbuf(vq, &sg, 1, id_buf, GFP_KERNEL);
	if (!err)
		virtqueue_kick(vq);
	return err;
}

/*
 * Serve hint command @id: lend the host free blocks of the largest order
 * until none is left or the host changes the command.  The blocks stay
 * allocated (on hint_list) until the host says DONE or the shrinker wants
 * them back.  One ring slot stays free for the stop id.
 */
static void mc_hint_serve(struct mc_balloon *vb, u32 id)
{
	struct virtqueue *vq = vb->vqs[MC_VQ_FREE_PAGE];
	int err;

	vb->hint_cmd_active = cpu_to_virtio32(vb->vdev, id);
	err = mc_hint_send_id(vb, &vb->hint_cmd_active);
	if (err)
		dev_err_ratelimited(&vb->vdev->dev, "hint start id: %d\n", err);

	while (!err && !mc_stopped(vb) && mc_hint_cmd_id(vb) == id) {
		struct scatterlist sg;
		struct page *page;

		mc_hint_drain_used(vq);
		page = alloc_pages(__GFP_NORETRY | __GFP_NOWARN | __GFP_NOMEMALLOC,
				   MC_HINT_ORDER);
		if (!page)
			break;
		if (vq->num_free <= 1) {
			/* ring full: let the host catch up */
			__free_pages(page, MC_HINT_ORDER);
			usleep_range(1000, 2000);
			continue;
		}
		sg_init_one(&sg, page_address(page), MC_HINT_PAGES << PAGE_SHIFT);
		err = virtqueue_add_inbuf(vq, &sg, 1, page_address(page),
					  GFP_KERNEL);
		if (err) {
			__free_pages(page, MC_HINT_ORDER);
			dev_err_ratelimited(&vb->vdev->dev, "hint block: %d\n",
					    err);
			break;
		}
		virtqueue_kick(vq);
		spin_lock_irq(&vb->hint_lock);
		mc_page_push(&vb->hint_list, page);
		vb->hint_blocks++;
		spin_unlock_irq(&vb->hint_lock);
		atomic64_inc(&vb->cnt.hint_blocks);
		cond_resched();
	}

	err = mc_hint_send_id(vb, &vb->hint_cmd_stop);
	if (err)
		dev_err_ratelimited(&vb->vdev->dev, "hint stop id: %d\n", err);
}

static void mc_hint_work(struct work_struct *work)
{
	struct mc_balloon *vb = container_of(work, struct mc_balloon,
					     hint_work);
	u32 id = mc_hint_cmd_id(vb);

	if (id == VIRTIO_BALLOON_CMD_ID_DONE)
		mc_hint_return(vb, ULONG_MAX);
	else if (id != VIRTIO_BALLOON_CMD_ID_STOP &&
		 id != virtio32_to_cpu(vb->vdev, vb->hint_cmd_active))
		mc_hint_serve(vb, id);
}

static unsigned long mc_hint_count(struct shrinker *s, struct shrink_control *sc)
{
	struct mc_balloon *vb = mc_shrinker_priv(s);

	return READ_ONCE(vb->hint_blocks) * MC_HINT_PAGES;
}

static unsigned long mc_hint_scan(struct shrinker *s, struct shrink_control *sc)
{
	struct mc_balloon *vb = mc_shrinker_priv(s);
	unsigned long blocks = DIV_ROUND_UP(sc->nr_to_scan, MC_HINT_PAGES);

	return mc_hint_return(vb, blocks) * MC_HINT_PAGES;
}

/* ---- DEFLATE_ON_OOM ---- */

static int mc_oom_notify(struct notifier_block *nb, unsigned long unused,
			 void *parm)
{
	struct mc_balloon *vb = container_of(nb, struct mc_balloon, oom_nb);
	unsigned long *freed = parm;
	unsigned long n;

	n = mc_leak(vb, max(READ_ONCE(oom_pages), 1U));
	*freed += n;
	/* the guest needs its memory: a pending inflation retry waits longest */
	if (READ_ONCE(vb->backoff_ms))
		WRITE_ONCE(vb->backoff_ms, max(READ_ONCE(backoff_max_ms),
					       (unsigned int)MC_BACKOFF_MIN_MS));
	atomic64_inc(&vb->cnt.oom_events);
	atomic64_add(n, &vb->cnt.oom_pages);
	if (n)
		dev_info_ratelimited(&vb->vdev->dev,
				     "OOM: deflated %lu pages\n", n);
	return NOTIFY_OK;
}

/* ---- REPORTING ---- */

static int mc_report(struct page_reporting_dev_info *pr, struct scatterlist *sg,
		     unsigned int nents)
{
	struct mc_balloon *vb = container_of(pr, struct mc_balloon, pr_dev_info);
	struct virtqueue *vq = vb->vqs[MC_VQ_REPORTING];
	struct scatterlist *s;
	unsigned long bytes = 0;
	unsigned int len, i;
	int err;

	err = virtqueue_add_inbuf(vq, sg, nents, vb, GFP_NOWAIT | __GFP_NOWARN);
	if (err) {
		dev_warn_ratelimited(&vb->vdev->dev, "report: %d\n", err);
		return err;
	}
	virtqueue_kick(vq);
	wait_event(vb->acked, virtqueue_get_buf(vq, &len));

	for_each_sg(sg, s, nents, i)
		bytes += s->length;
	atomic64_add(bytes >> PAGE_SHIFT, &vb->cnt.reported_pages);
	atomic64_inc(&vb->cnt.report_reqs);
	return 0;
}

/* ---- balloon compaction ---- */

#if MC_BALLOON_MIGRATION
/**
 * mc_migratepage() - replace balloon page @page by @newpage.
 * @bdi: the device's balloon_dev_info
 * @newpage: the page that enters the balloon
 * @page: the isolated page that leaves it
 * @mode: unused
 *
 * Called by compaction with both pages locked.  Gives up (-EAGAIN) rather
 * than wait for vb->balloon_lock: inflation may itself be compacting.
 *
 * Return: 0 (MIGRATEPAGE_SUCCESS, gone in later kernels), or -EAGAIN to
 * be retried later.
 */
static int mc_migratepage(struct balloon_dev_info *bdi, struct page *newpage,
			  struct page *page, enum migrate_mode mode)
{
	struct mc_balloon *vb = container_of(bdi, struct mc_balloon, bdi);

	if (!mutex_trylock(&vb->balloon_lock))
		return -EAGAIN;
	if (!vb->vqs[MC_VQ_INFLATE]) {
		/* frozen: the queues are gone until restore */
		mutex_unlock(&vb->balloon_lock);
		return -EAGAIN;
	}

	if (vb->adjust_managed && page_zone(page) != page_zone(newpage)) {
		adjust_managed_page_count(page, 1);
		adjust_managed_page_count(newpage, -1);
	}
	mc_balloon_migrate_insert(bdi, newpage);

	mc_set_pfns(vb, vb->pfns, newpage);
	mc_tell_host(vb, vb->vqs[MC_VQ_INFLATE], MC_PFNS_PER_PAGE);
	mc_set_pfns(vb, vb->pfns, page);
	mc_tell_host(vb, vb->vqs[MC_VQ_DEFLATE], MC_PFNS_PER_PAGE);
	mutex_unlock(&vb->balloon_lock);

	mc_balloon_migrate_release(page);
	atomic64_inc(&vb->cnt.migrated);
	return 0;
}
#endif

/* ---- counters ---- */

static int mc_counters_show(struct seq_file *m, void *unused)
{
	struct mc_balloon *vb = m->private;
	struct mc_balloon_counters *c = &vb->cnt;

#define MC_SHOW(name, val) seq_printf(m, "%s %llu\n", name, (u64)(val))
	MC_SHOW("size_pages", READ_ONCE(vb->num_pages));
	MC_SHOW("target_pages", mc_target(vb));
	MC_SHOW("config_ns", READ_ONCE(vb->config_ns));
	MC_SHOW("inflated_pages", atomic64_read(&c->inflated));
	MC_SHOW("deflated_pages", atomic64_read(&c->deflated));
	MC_SHOW("inflate_requests", atomic64_read(&c->inflate_reqs));
	MC_SHOW("deflate_requests", atomic64_read(&c->deflate_reqs));
	MC_SHOW("inflate_ns", atomic64_read(&c->inflate_ns));
	MC_SHOW("deflate_ns", atomic64_read(&c->deflate_ns));
	MC_SHOW("inflate_host_ns", atomic64_read(&c->inflate_host_ns));
	MC_SHOW("deflate_host_ns", atomic64_read(&c->deflate_host_ns));
	MC_SHOW("highorder_blocks", atomic64_read(&c->highorder_blocks));
	MC_SHOW("freed_blocks", atomic64_read(&c->freed_blocks));
	MC_SHOW("alloc_failures", atomic64_read(&c->alloc_failures));
	MC_SHOW("backoffs", atomic64_read(&c->backoffs));
	MC_SHOW("backoff_ms", READ_ONCE(vb->backoff_ms));
	MC_SHOW("oom_events", atomic64_read(&c->oom_events));
	MC_SHOW("oom_deflated_pages", atomic64_read(&c->oom_pages));
	MC_SHOW("reported_pages", atomic64_read(&c->reported_pages));
	MC_SHOW("report_requests", atomic64_read(&c->report_reqs));
	MC_SHOW("hint_blocks", atomic64_read(&c->hint_blocks));
	MC_SHOW("reclaim_requests", atomic64_read(&c->reclaim_reqs));
	MC_SHOW("reclaim_pages", atomic64_read(&c->reclaim_pages));
	MC_SHOW("migrated_pages", atomic64_read(&c->migrated));
	MC_SHOW("stats_requests", atomic64_read(&c->stats_reqs));
	MC_SHOW("batch_pfns", vb->pfns_max);
	MC_SHOW("features", vb->vdev->features);
	MC_SHOW("managed_adjusted", vb->adjust_managed);
#undef MC_SHOW
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mc_counters);

/* ---- probe / remove ---- */

static int mc_init_vqs(struct mc_balloon *vb)
{
	vq_callback_t *callbacks[MC_VQ_MAX] = {
		[MC_VQ_INFLATE] = mc_balloon_ack,
		[MC_VQ_DEFLATE] = mc_balloon_ack,
	};
	const char *names[MC_VQ_MAX] = {
		[MC_VQ_INFLATE] = "inflate",
		[MC_VQ_DEFLATE] = "deflate",
	};
	struct virtio_device *vdev = vb->vdev;
	struct virtqueue *vqs[MC_VQ_MAX] = {};
	int err;

	/* A NULL name means no queue is set up for a feature not negotiated. */
	if (virtio_has_feature(vdev, VIRTIO_BALLOON_F_STATS_VQ)) {
		names[MC_VQ_STATS] = "stats";
		callbacks[MC_VQ_STATS] = mc_stats_request;
	}
	if (virtio_has_feature(vdev, VIRTIO_BALLOON_F_FREE_PAGE_HINT))
		names[MC_VQ_FREE_PAGE] = "free_page_vq";
	if (virtio_has_feature(vdev, VIRTIO_BALLOON_F_REPORTING)) {
		names[MC_VQ_REPORTING] = "reporting_vq";
		callbacks[MC_VQ_REPORTING] = mc_balloon_ack;
	}

	err = mc_virtio_find_vqs(vdev, MC_VQ_MAX, vqs, callbacks, names);
	if (err)
		return err;
	memcpy(vb->vqs, vqs, sizeof(vqs));

	if (vb->vqs[MC_VQ_STATS]) {
		/* Prime the stats queue: the host answers by using it. */
		err = mc_stats_send(vb);
		if (err) {
			vdev->config->del_vqs(vdev);
			return err;
		}
	}
	return 0;
}

/* Allocate the request buffer: @batch_pages PFNs, less if memory is short. */
static int mc_alloc_pfns(struct mc_balloon *vb)
{
	unsigned int n = clamp(batch_pages, 256U, 65536U);

	n = rounddown_pow_of_two(n);
	for (; n >= 256; n /= 2) {
		vb->pfns = kmalloc_array(n, sizeof(vb->pfns[0]),
					 GFP_KERNEL | __GFP_NOWARN);
		if (vb->pfns) {
			vb->pfns_max = n;
			return 0;
		}
	}
	return -ENOMEM;
}

static int mc_probe(struct virtio_device *vdev)
{
	struct mc_balloon *vb;
	char name[32];
	int idx, err;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "config access disabled\n");
		return -EINVAL;
	}

	vb = kzalloc(sizeof(*vb), GFP_KERNEL);
	if (!vb)
		return -ENOMEM;
	vdev->priv = vb;
	vb->vdev = vdev;
	INIT_DELAYED_WORK(&vb->size_work, mc_size_work);
	INIT_WORK(&vb->changed_work, mc_changed_work);
	INIT_WORK(&vb->stats_work, mc_stats_work);
	INIT_WORK(&vb->hint_work, mc_hint_work);
	atomic_set(&vb->hint_reread, 1);
	spin_lock_init(&vb->stop_lock);
	spin_lock_init(&vb->hint_lock);
	INIT_LIST_HEAD(&vb->hint_list);
	mutex_init(&vb->balloon_lock);
	init_waitqueue_head(&vb->acked);
	balloon_devinfo_init(&vb->bdi);
#if MC_BALLOON_MIGRATION
	vb->bdi.migratepage = mc_migratepage;
#endif
	vb->adjust_managed = !virtio_has_feature(vdev,
						 VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	vb->hint_cmd_active = cpu_to_virtio32(vdev, VIRTIO_BALLOON_CMD_ID_STOP);
	vb->hint_cmd_stop = cpu_to_virtio32(vdev, VIRTIO_BALLOON_CMD_ID_STOP);

	err = mc_alloc_pfns(vb);
	if (err)
		goto out_free_vb;

	vb->wq = alloc_workqueue("memcoop-balloon", WQ_FREEZABLE | WQ_UNBOUND, 0);
	if (!vb->wq) {
		err = -ENOMEM;
		goto out_free_pfns;
	}

	err = mc_init_vqs(vb);
	if (err)
		goto out_destroy_wq;

	if (vb->vqs[MC_VQ_FREE_PAGE]) {
		/* one slot is always kept for the stop id */
		if (virtqueue_get_vring_size(vb->vqs[MC_VQ_FREE_PAGE]) < 2) {
			err = -ENOSPC;
			goto out_del_vqs;
		}
		/* hint blocks may be taken back before the host is done */
		vb->hint_shrinker = mc_shrinker_create("memcoop-balloon-hint",
							    mc_hint_count,
							    mc_hint_scan,
							    DEFAULT_SEEKS, 0, vb);
		if (!vb->hint_shrinker) {
			err = -ENOMEM;
			goto out_del_vqs;
		}
	}

	if (virtio_has_feature(vdev, VIRTIO_BALLOON_F_DEFLATE_ON_OOM)) {
		vb->oom_nb.notifier_call = mc_oom_notify;
		vb->oom_nb.priority = MC_OOM_NOTIFY_PRIORITY;
		err = register_oom_notifier(&vb->oom_nb);
		if (err < 0)
			goto out_shrinker;
	}

	if (virtio_has_feature(vdev, VIRTIO_BALLOON_F_PAGE_POISON)) {
		/* what free pages hold: 0 (init_on_free) or PAGE_POISON bytes */
		u32 poison_val = 0;

		if (!want_init_on_free())
			memset(&poison_val, PAGE_POISON, sizeof(poison_val));
		virtio_cwrite_le(vdev, struct virtio_balloon_config, poison_val,
				 &poison_val);
	}

	if (vb->vqs[MC_VQ_REPORTING]) {
		if (virtqueue_get_vring_size(vb->vqs[MC_VQ_REPORTING]) <
		    PAGE_REPORTING_CAPACITY) {
			err = -ENOSPC;
			goto out_oom;
		}
		vb->pr_dev_info.report = mc_report;
		err = page_reporting_register(&vb->pr_dev_info);
		if (err)
			goto out_oom;
		vb->reporting = true;
	}

	idx = atomic_inc_return(&mc_balloon_instances) - 1;
	if (idx)
		snprintf(name, sizeof(name), "balloon%d", idx);
	else
		strscpy(name, "balloon", sizeof(name));
	if (mc_debugfs_root)
		vb->debugfs = debugfs_create_file(name, 0444, mc_debugfs_root,
						  vb, &mc_counters_fops);

	dev_info(&vdev->dev, "memcoop balloon: features 0x%llx, %u pfns per request\n",
		 vdev->features, vb->pfns_max);

	virtio_device_ready(vdev);
	if (mc_target(vb))
		mc_queue_size_work(vb, 0, true);
	return 0;

out_oom:
	if (virtio_has_feature(vdev, VIRTIO_BALLOON_F_DEFLATE_ON_OOM))
		unregister_oom_notifier(&vb->oom_nb);
out_shrinker:
	mc_shrinker_destroy(vb->hint_shrinker);
out_del_vqs:
	vdev->config->del_vqs(vdev);
out_destroy_wq:
	destroy_workqueue(vb->wq);
out_free_pfns:
	kfree(vb->pfns);
out_free_vb:
	kfree(vb);
	vdev->priv = NULL;
	return err;
}

/*
 * Give every page back (telling the host), return hint blocks, reset the
 * device and delete its queues.  Shared by remove and freeze; no work runs
 * (stopped and cancelled, or frozen).
 */
static void mc_remove_common(struct mc_balloon *vb)
{
	while (READ_ONCE(vb->num_pages)) {
		if (!mc_leak(vb, vb->num_pages))
			msleep(20);	/* pages isolated by compaction */
		cond_resched();
	}
	mutex_lock(&vb->balloon_lock);
	mc_update_actual(vb);
	mutex_unlock(&vb->balloon_lock);

	if (vb->vqs[MC_VQ_FREE_PAGE])
		mc_hint_return(vb, ULONG_MAX);

	virtio_reset_device(vb->vdev);
	/* migration and OOM paths check the queues under the lock */
	mutex_lock(&vb->balloon_lock);
	vb->vdev->config->del_vqs(vb->vdev);
	memset(vb->vqs, 0, sizeof(vb->vqs));
	mutex_unlock(&vb->balloon_lock);
}

static void mc_stop_work(struct mc_balloon *vb)
{
	spin_lock_irq(&vb->stop_lock);
	vb->stop = true;
	spin_unlock_irq(&vb->stop_lock);
	/* it may queue size_work: not after stop, cancelled first */
	cancel_work_sync(&vb->changed_work);
	cancel_delayed_work_sync(&vb->size_work);
	cancel_work_sync(&vb->stats_work);
	cancel_work_sync(&vb->hint_work);
}

static void mc_remove(struct virtio_device *vdev)
{
	struct mc_balloon *vb = vdev->priv;

	debugfs_remove(vb->debugfs);
	if (vb->reporting)
		page_reporting_unregister(&vb->pr_dev_info);
	if (virtio_has_feature(vdev, VIRTIO_BALLOON_F_DEFLATE_ON_OOM))
		unregister_oom_notifier(&vb->oom_nb);
	mc_shrinker_destroy(vb->hint_shrinker);
	mc_stop_work(vb);

	mc_remove_common(vb);
	dev_info(&vdev->dev, "memcoop balloon removed: %lld pages inflated, %lld deflated\n",
		 atomic64_read(&vb->cnt.inflated), atomic64_read(&vb->cnt.deflated));
	destroy_workqueue(vb->wq);
	kfree(vb->pfns);
	kfree(vb);
	atomic_dec(&mc_balloon_instances);
}

#ifdef CONFIG_PM_SLEEP
static int mc_freeze(struct virtio_device *vdev)
{
	struct mc_balloon *vb = vdev->priv;

	/*
	 * The freezable workqueues are already frozen.  Page reporting runs
	 * on an unfrozen workqueue and needs the queues: stop it first.
	 */
	if (vb->reporting) {
		page_reporting_unregister(&vb->pr_dev_info);
		vb->reporting = false;
	}
	mc_remove_common(vb);
	return 0;
}

static int mc_restore(struct virtio_device *vdev)
{
	struct mc_balloon *vb = vdev->priv;
	int err;

	err = mc_init_vqs(vb);
	if (err)
		return err;
	/* the device was reset: the hint command is whatever it says now */
	vb->hint_cmd_active = cpu_to_virtio32(vdev, VIRTIO_BALLOON_CMD_ID_STOP);
	atomic_set(&vb->hint_reread, 1);
	virtio_device_ready(vdev);
	if (mc_target(vb))
		mc_queue_size_work(vb, 0, true);
	mutex_lock(&vb->balloon_lock);
	mc_update_actual(vb);
	mutex_unlock(&vb->balloon_lock);
	if (vb->vqs[MC_VQ_REPORTING]) {
		err = page_reporting_register(&vb->pr_dev_info);
		if (err)
			dev_warn(&vdev->dev, "free page reporting off after resume: %d\n",
				 err);
		else
			vb->reporting = true;
	}
	return 0;
}
#endif

/*
 * Trim the offered features: PAGE_POISON only if free pages have a known
 * content (and then REPORTING needs it); no indirect descriptors, so that
 * page reporting never allocates; no platform DMA (the host reads guest
 * physical addresses).
 */
static int mc_validate(struct virtio_device *vdev)
{
	if (!want_init_on_free() && !page_poisoning_enabled_static())
		__virtio_clear_bit(vdev, VIRTIO_BALLOON_F_PAGE_POISON);
	else if (!virtio_has_feature(vdev, VIRTIO_BALLOON_F_PAGE_POISON))
		__virtio_clear_bit(vdev, VIRTIO_BALLOON_F_REPORTING);

	__virtio_clear_bit(vdev, VIRTIO_RING_F_INDIRECT_DESC);
	__virtio_clear_bit(vdev, VIRTIO_F_ACCESS_PLATFORM);
	return 0;
}

static unsigned int feature_table[] = {
	VIRTIO_BALLOON_F_MUST_TELL_HOST,
	VIRTIO_BALLOON_F_STATS_VQ,
	VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
	VIRTIO_BALLOON_F_FREE_PAGE_HINT,
	VIRTIO_BALLOON_F_PAGE_POISON,
	VIRTIO_BALLOON_F_REPORTING,
};

static const struct virtio_device_id id_table[] = {
	{ VIRTIO_ID_BALLOON, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, id_table);

static struct virtio_driver mc_balloon_driver = {
	.feature_table = feature_table,
	.feature_table_size = ARRAY_SIZE(feature_table),
	.driver.name = "memcoop-balloon",
	.driver.owner = THIS_MODULE,
	.id_table = id_table,
	.validate = mc_validate,
	.probe = mc_probe,
	.remove = mc_remove,
	.config_changed = mc_changed,
#ifdef CONFIG_PM_SLEEP
	.freeze = mc_freeze,
	.restore = mc_restore,
#endif
};

int mc_balloon_init(void)
{
	return register_virtio_driver(&mc_balloon_driver);
}

void mc_balloon_exit(void)
{
	unregister_virtio_driver(&mc_balloon_driver);
}
