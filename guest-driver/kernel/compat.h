/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the guest kernels memcoop supports
 * (Debian 12's 6.1 and bookworm-backports' 6.12).  Every #if on
 * LINUX_VERSION_CODE lives here, nowhere else.
 */
#ifndef MEMCOOP_COMPAT_H
#define MEMCOOP_COMPAT_H

#include <linux/version.h>
#include <linux/shrinker.h>
#include <linux/mm.h>
#include <linux/slab.h>

/*
 * Shrinkers: 6.7 replaced register_shrinker() with shrinker_alloc() +
 * shrinker_register().  mc_shrinker_create() returns NULL on failure.
 * memcoop's shrinkers are singletons, so no private data is passed.
 */
static inline struct shrinker *
mc_shrinker_create(const char *name,
		   unsigned long (*count)(struct shrinker *, struct shrink_control *),
		   unsigned long (*scan)(struct shrinker *, struct shrink_control *),
		   int seeks)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	struct shrinker *s = shrinker_alloc(0, "%s", name);

	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
	shrinker_register(s);
	return s;
#else
	struct shrinker *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
	if (register_shrinker(s, "%s", name)) {
		kfree(s);
		return NULL;
	}
	return s;
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

#endif /* MEMCOOP_COMPAT_H */
