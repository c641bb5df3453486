/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memcoop.ko internal interfaces between its parts:
 *
 *   main.c     module init/exit, debugfs root
 *   dev.c      /dev/memcoop: open/release, handshake, ioctl dispatch,
 *              the per-file event queue, read/poll/fasync, mmap dispatch
 *   balloon.c  the virtio-balloon driver (virtio id 5)
 *   relay.c    shrink requests to registered processes (feature RELAY)
 *   vrange.c   the mapping, volatile ranges, residence (VRANGE, RESIDENCE_EVENTS)
 *   wtrack.c   write tracking of mapped pages (WTRACK)
 *
 * All page counts are in PAGE_SIZE pages.
 */
#ifndef MEMCOOP_INTERNAL_H
#define MEMCOOP_INTERNAL_H

#include <linux/types.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/debugfs.h>
#include <linux/mm_types.h>
#include <linux/moduleparam.h>

#include <memcoop.h>		/* proto/: the user ABI (uapi), via -I */
#include "compat.h"

struct mc_client;		/* relay.c: a registered process */
struct mc_vobj;			/* vrange.c: the memory behind the file's mappings */
struct mc_wtrack;		/* wtrack.c: write-tracking state */

/**
 * struct mc_file - one open file of /dev/memcoop (shared by forked
 * children and threads that inherit the fd).
 */
struct mc_file {
	struct file *file;
	/* handshake: set once under @lock, read with smp_load_acquire() */
	struct mutex lock;
	bool api_done;
	u64 features;			/* features the client asked for */

	/* event queue (dev.c); @evlock may be taken from any context */
	spinlock_t evlock;
	struct memcoop_event *ring;	/* NULL until mc_file_events_on() */
	struct mc_equser *equser;	/* whose count the ring is in */
	unsigned int head, tail;	/* free-running; index & (MC_RING - 1) */
	u64 subscribed;			/* (1 << MEMCOOP_EVENT_x) */
	u64 lost;			/* dropped since the last LOST record */
	u64 lost_total;
	wait_queue_head_t wq;
	struct mutex read_lock;		/* serialises readers */
	struct fasync_struct *fasync;

	struct mc_client *client;	/* relay.c, NULL until registered */
	struct mc_vobj *vobj;		/* vrange.c, NULL until first mmap */
	struct mc_wtrack *wt;		/* wtrack.c, NULL until first arm */
};

#define MC_RING 256	/* events per file; a power of two */

/* main.c */
extern struct dentry *mc_debugfs_root;	/* /sys/kernel/debug/memcoop, may be NULL */

/**
 * struct mc_uint_param - an unsigned module parameter checked when set.
 * @val: the variable (read it with READ_ONCE(); set with WRITE_ONCE())
 * @min: smallest accepted value
 * @max: largest accepted value
 *
 * A value outside [@min, @max], or not a number, is refused with -EINVAL
 * (at load time the module does not load; a sysfs write fails) and the
 * old value stays.  Declare with MC_PARAM_UINT().
 */
struct mc_uint_param {
	unsigned int *val;
	unsigned int min, max;
};
extern const struct kernel_param_ops mc_uint_param_ops;

/*
 * MC_PARAM_UINT(name, min, max, perm, desc): module parameter @name,
 * backed by the static unsigned int of the same name, accepting only
 * min..max.  @desc should state the unit, the range and the default.
 */
#define MC_PARAM_UINT(name, lo, hi, perm, desc)				\
	static struct mc_uint_param mc_param_##name = {			\
		.val = &(name), .min = (lo), .max = (hi),		\
	};								\
	module_param_cb(name, &mc_uint_param_ops, &mc_param_##name, perm); \
	__MODULE_PARM_TYPE(name, "uint");				\
	MODULE_PARM_DESC(name, desc)

/* dev.c */
int mc_dev_init(void);
void mc_dev_exit(void);
/*
 * Queue @ev (type, seq and payload filled in; timestamp is set here) for
 * @mf if it subscribed to ev->type (SHRINK is always delivered).  Any
 * context.  Returns false if the event was not queued (not subscribed or
 * queue full; a full queue is reported later as MEMCOOP_EVENT_LOST).
 */
bool mc_file_post_event(struct mc_file *mf, struct memcoop_event *ev);
int mc_file_events_on(struct mc_file *mf);
static inline struct mc_file *mc_file_of(struct file *file)
{
	return file->private_data;
}

/* relay.c */
int mc_relay_init(void);
void mc_relay_exit(void);
long mc_relay_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg);
void mc_relay_release(struct mc_file *mf);
/*
 * mc_reclaim_for_balloon() - find @pages pages before the balloon inflates:
 * purge volatile ranges first, then ask registered processes and wait for
 * their answers up to the relay deadline.  May sleep; never longer than
 * the deadline.  Returns the pages purged plus the pages processes reported
 * freed.
 */
unsigned long mc_reclaim_for_balloon(unsigned long pages);
/* Last-chance request before OOM; does not sleep long. Returns pages freed. */
unsigned long mc_relay_oom(unsigned long pages);

/* vrange.c */
int mc_vrange_init(void);
void mc_vrange_exit(void);
int mc_vrange_mmap(struct mc_file *mf, struct vm_area_struct *vma);
long mc_vrange_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg);
void mc_vrange_release(struct mc_file *mf);
/* Purge whole volatile ranges, least recently marked first, until at
 * least @pages are freed or none is left; @reason is MEMCOOP_REASON_*.
 * May sleep (grace period).  Returns pages freed. */
unsigned long mc_vrange_purge(unsigned long pages, u32 reason);
/* Pages currently volatile and not purged (what a purge could free). */
unsigned long mc_vrange_purgeable(void);
/*
 * For wtrack.c: translate the user range [@start, @start + @len) into the
 * first page offset of @mf's memory object; -EINVAL unless the range is
 * page aligned, non-empty, not wrapping and entirely inside one mapping of
 * @mf.  Caller holds mmap_read_lock(current->mm).
 */
int mc_vrange_resolve(struct mc_file *mf, u64 start, u64 len, pgoff_t *pgoff);
/* For wtrack.c: the address_space holding @mf's pages (NULL before mmap). */
struct address_space *mc_vrange_mapping(struct mc_file *mf);

/* wtrack.c */
long mc_wtrack_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg);
void mc_wtrack_release(struct mc_file *mf);
/* MEMCOOP_EVENT_DIRTY was just subscribed to; sleeps. */
void mc_wtrack_subscribed(struct mc_file *mf);
/*
 * Called by vrange.c from the mapping's ->page_mkwrite (and for any other
 * first write to a write-protected page) before the write is allowed: if
 * page @pgoff of @mf is tracked, log it.  Never sleeps long, never fails.
 * Call it with the faulting page locked and keep it locked until the PTE
 * is writable (lock it in ->page_mkwrite and return VM_FAULT_LOCKED, as
 * filemap_page_mkwrite() does): a harvest re-arms a page under that lock,
 * so a write cannot slip between being logged and being re-armed.
 */
void mc_wtrack_write_fault(struct mc_file *mf, pgoff_t pgoff);
/*
 * A complete ->page_mkwrite for a write-tracked mapping of @mf: locks the
 * page (VM_FAULT_NOPAGE if it left the mapping meanwhile), logs the write
 * with mc_wtrack_write_fault() and returns VM_FAULT_LOCKED, which keeps
 * the page locked until the PTE is writable, as the contract above asks.
 */
vm_fault_t mc_wtrack_page_mkwrite(struct mc_file *mf, struct vm_fault *vmf);
/* Called by vrange.c when pages [@pgoff, @pgoff + @nr) are purged or
 * unmapped for good: they leave the log and the tracked set.  May sleep. */
void mc_wtrack_forget(struct mc_file *mf, pgoff_t pgoff, unsigned long nr);

/* balloon.c */
int mc_balloon_init(void);
void mc_balloon_exit(void);

#endif /* MEMCOOP_INTERNAL_H */
