/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the guest kernels memcoop supports:
 * Debian 12's 6.1, bookworm-security's 6.12 and the newest
 * trixie-backports kernel (7.3 when written).  Every #if on
 * LINUX_VERSION_CODE lives here, nowhere else; each says the version
 * whose change it tracks.
 */
#ifndef MEMCOOP_COMPAT_H
#define MEMCOOP_COMPAT_H

#include <linux/version.h>
#include <linux/shrinker.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include <linux/list_lru.h>
#include <linux/memcontrol.h>
#include <linux/virtio_balloon.h>
#include <linux/fs.h>
#include <linux/shmem_fs.h>
/*
 * struct folio_batch: <linux/pagevec.h> became <linux/folio_batch.h> by
 * 7.0 (<=: 6.12 has the old name, 7.3 the new; sparse has no __has_include).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 0, 0)
#include <linux/folio_batch.h>
#else
#include <linux/pagevec.h>
#endif

/*
 * list_lru: 6.8 made list_lru_add()/del() take the node and memcg and
 * kept the old behaviour (both from the item's slab) as *_obj(); 6.13
 * dropped the lock argument of the walk callback.  Built on 6.1, 6.12
 * (old callback) and 7.3 (new one).
 */
static inline void mc_list_lru_add(struct list_lru *lru, struct list_head *item)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	list_lru_add_obj(lru, item);
#else
	list_lru_add(lru, item);
#endif
}

static inline void mc_list_lru_del(struct list_lru *lru, struct list_head *item)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	list_lru_del_obj(lru, item);
#else
	list_lru_del(lru, item);
#endif
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
#define MC_LRU_CB_ARGS(item, list, arg) \
	struct list_head *item, struct list_lru_one *list, void *arg
#else
#define MC_LRU_CB_ARGS(item, list, arg) \
	struct list_head *item, struct list_lru_one *list, spinlock_t *lock, void *arg
#endif

/* A reference on a non-root memcg, or NULL (root, none, or no CONFIG_MEMCG). */
static inline struct mem_cgroup *mc_memcg_get(struct mem_cgroup *memcg)
{
#ifdef CONFIG_MEMCG
	if (memcg && memcg->css.parent) {	/* root_mem_cgroup is not exported */
		css_get(&memcg->css);
		return memcg;
	}
#endif
	return NULL;
}

/* vm_flags became read-only with accessors in 6.3 */
static inline void mc_vm_flags_set(struct vm_area_struct *vma, unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

static inline void mc_vm_flags_clear(struct vm_area_struct *vma, unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

/*
 * Shrinkers: 6.7 replaced register_shrinker() with shrinker_alloc() +
 * shrinker_register(), and gave struct shrinker private_data; before
 * that the shrinker is boxed with its private pointer (balloon.c: the
 * free page hints of one device; NULL for memcoop's singletons).
 * @flags: SHRINKER_* (SHRINKER_MEMCG_AWARE for vrange.c's list_lru).
 * Returns NULL on failure; mc_shrinker_destroy() frees either form.
 */
struct mc_shrinker_box {
	struct shrinker s;	/* first: kfree(&box->s) frees the box */
	void *priv;
};

static inline struct shrinker *
mc_shrinker_create(const char *name,
		   unsigned long (*count)(struct shrinker *, struct shrink_control *),
		   unsigned long (*scan)(struct shrinker *, struct shrink_control *),
		   int seeks, unsigned int flags, void *priv)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	struct shrinker *s = shrinker_alloc(flags, "%s", name);

	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
	s->private_data = priv;
	shrinker_register(s);
	return s;
#else
	struct mc_shrinker_box *box = kzalloc(sizeof(*box), GFP_KERNEL);

	if (!box)
		return NULL;
	box->s.count_objects = count;
	box->s.scan_objects = scan;
	box->s.seeks = seeks;
	box->s.flags = flags;
	box->priv = priv;
	if (register_shrinker(&box->s, "%s", name)) {
		kfree(box);
		return NULL;
	}
	return &box->s;
#endif
}

static inline void *mc_shrinker_priv(struct shrinker *s)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	return s->private_data;
#else
	return container_of(s, struct mc_shrinker_box, s)->priv;
#endif
}

static inline void mc_shrinker_destroy(struct shrinker *s)
{
	if (!s)
		return;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	shrinker_free(s);
#else
	unregister_shrinker(s);
	kfree(s);
#endif
}

/* The largest buddy order: MAX_ORDER - 1 before 6.4, MAX_PAGE_ORDER since 6.8. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define MC_MAX_PAGE_ORDER	MAX_PAGE_ORDER
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define MC_MAX_PAGE_ORDER	MAX_ORDER
#else
#define MC_MAX_PAGE_ORDER	(MAX_ORDER - 1)
#endif

/*
 * virtio_find_vqs(): 6.11 replaced the callbacks[] and names[] arrays with
 * struct virtqueue_info.  @nvqs is at most MC_FIND_VQS_MAX.
 */
#define MC_FIND_VQS_MAX 8
static inline int mc_virtio_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
				     struct virtqueue *vqs[],
				     void (*callbacks[])(struct virtqueue *),
				     const char * const names[])
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	struct virtqueue_info info[MC_FIND_VQS_MAX] = {};
	unsigned int i;

	if (nvqs > MC_FIND_VQS_MAX)
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		info[i].name = names[i];
		info[i].callback = callbacks[i];
	}
	return virtio_find_vqs(vdev, nvqs, vqs, info, NULL);
#else
	return virtio_find_vqs(vdev, nvqs, vqs, callbacks, names, NULL);
#endif
}

/*
 * Versions marked "(<=)" below: the change is in 7.2's and 7.3's trees and
 * not in 6.12's; the Debian archive has no kernel in between, so the exact
 * release is the one named by the upstream series, not checked here.
 */

/*
 * Balloon pages.  7.0 (<=) replaced balloon_compaction.h by balloon.h and CONFIG_BALLOON_COMPACTION by
 * CONFIG_BALLOON_MIGRATION, and moved the bookkeeping of a migration into
 * mm/balloon.c: once ->migratepage() returned 0, the core inserts the new
 * page, counts BALLOON_MIGRATE, and finalizes and frees the old page;
 * before, the driver did all of that.  Balloon pages now stay PageOffline
 * and PageMovableOps until each is freed on its own: a block of former
 * balloon pages may no longer go back to the allocator as one.
 */
#define MC_BALLOON_H_VERSION	KERNEL_VERSION(7, 0, 0)
#if LINUX_VERSION_CODE >= MC_BALLOON_H_VERSION
#include <linux/balloon.h>
#define MC_BALLOON_MIGRATION	IS_ENABLED(CONFIG_BALLOON_MIGRATION)
#define MC_BALLOON_BLOCK_FREE	0

static inline void mc_balloon_migrate_insert(struct balloon_dev_info *bdi,
					     struct page *newpage)
{
}

static inline void mc_balloon_migrate_release(struct page *page)
{
}
#else
#include <linux/balloon_compaction.h>
#define MC_BALLOON_MIGRATION	IS_ENABLED(CONFIG_BALLOON_COMPACTION)
#define MC_BALLOON_BLOCK_FREE	1

/* @newpage joins the balloon in place of an isolated page. */
static inline void mc_balloon_migrate_insert(struct balloon_dev_info *bdi,
					     struct page *newpage)
{
	unsigned long flags;

	get_page(newpage);		/* the balloon's reference */
	spin_lock_irqsave(&bdi->pages_lock, flags);
	balloon_page_insert(bdi, newpage);
	bdi->isolated_pages--;
	__count_vm_event(BALLOON_MIGRATE);
	spin_unlock_irqrestore(&bdi->pages_lock, flags);
}

/* The isolated @page, migrated, leaves the balloon. */
static inline void mc_balloon_migrate_release(struct page *page)
{
	balloon_page_finalize(page);
	put_page(page);			/* the balloon's reference */
}
#endif

/*
 * Order-0 pages in bulk onto @list: 6.14 dropped alloc_pages_bulk_list()
 * and kept the array form only (alloc_pages_bulk(), was _array()); that
 * side takes at most MC_BULK_ARRAY pages a call (an array on the stack).
 * Returns the number of pages added.
 */
#define MC_BULK_ARRAY	64
static inline unsigned long mc_alloc_pages_bulk_list(gfp_t gfp, unsigned long nr,
						     struct list_head *list)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
	struct page *pages[MC_BULK_ARRAY] = {};
	unsigned long n, i;

	n = alloc_pages_bulk(gfp, min_t(unsigned long, nr, MC_BULK_ARRAY), pages);
	for (i = 0; i < n; i++)
		list_add_tail(&pages[i]->lru, list);
	return n;
#else
	return alloc_pages_bulk_list(gfp, nr, list);
#endif
}

/*
 * mmap of a file on behalf of another: call_mmap() became vfs_mmap() in
 * 6.17 (<=), which also runs an ->mmap_prepare() hook.
 */
static inline int mc_vfs_mmap(struct file *file, struct vm_area_struct *vma)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
	return vfs_mmap(file, vma);
#else
	return call_mmap(file, vma);
#endif
}

/*
 * A shmem file that does not account its size up front (VM_NORESERVE):
 * shmem_file_setup() takes a vma_flags_t instead of unsigned long flags
 * since 7.0 (<=).
 */
#define MC_SHMEM_VMA_FLAGS_VERSION	KERNEL_VERSION(7, 0, 0)
static inline struct file *mc_shmem_file_noreserve(const char *name, loff_t size)
{
#if LINUX_VERSION_CODE >= MC_SHMEM_VMA_FLAGS_VERSION
	return shmem_file_setup(name, size, mk_vma_flags(VMA_NORESERVE_BIT));
#else
	return shmem_file_setup(name, size, VM_NORESERVE);
#endif
}

/* The same on a tmpfs mount of one's own (shmem_file_setup_with_mnt()). */
static inline struct file *mc_shmem_file_noreserve_mnt(struct vfsmount *mnt, const char *name,
						       loff_t size)
{
#if LINUX_VERSION_CODE >= MC_SHMEM_VMA_FLAGS_VERSION
	return shmem_file_setup_with_mnt(mnt, name, size, mk_vma_flags(VMA_NORESERVE_BIT));
#else
	return shmem_file_setup_with_mnt(mnt, name, size, VM_NORESERVE);
#endif
}

/*
 * Balloon stats tags 10..15 (OOM kills, allocation stalls, scanned and
 * reclaimed memory, kswapd and direct) entered the uapi header in 6.10;
 * the numbers are the virtio spec's, so older kernels send them too.  A
 * device that does not know a tag ignores it (QEMU 7.2 does).
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 10, 0)
#define VIRTIO_BALLOON_S_OOM_KILL	10
#define VIRTIO_BALLOON_S_ALLOC_STALL	11
#define VIRTIO_BALLOON_S_ASYNC_SCAN	12
#define VIRTIO_BALLOON_S_DIRECT_SCAN	13
#define VIRTIO_BALLOON_S_ASYNC_RECLAIM	14
#define VIRTIO_BALLOON_S_DIRECT_RECLAIM	15
#endif
/* Every tag the driver may send, whatever the header's VIRTIO_BALLOON_S_NR. */
#define MC_BALLOON_S_NR			16

#endif /* MEMCOOP_COMPAT_H */
