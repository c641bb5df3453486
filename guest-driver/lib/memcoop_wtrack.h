/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmemcoop: write tracking (included by libmemcoop.h).
 *
 * Open with MEMCOOP_FEATURE_VRANGE | MEMCOOP_FEATURE_WTRACK and map the fd
 * MAP_SHARED.  Arm pages of the mapping; the first write to an armed page
 * is logged by the driver (no signal, no VMA split) and then runs at full
 * speed.  Harvest the log: the addresses of the pages written since the
 * last harvest, each once, optionally re-armed in the same call -- the
 * write barrier of a collector or checkpointer.
 *
 * Semantics worth knowing:
 *  - Arming write-protects the pages in every mapping of them; a page
 *    listed twice counts once.  A bad list (a range outside a mapping of
 *    this fd, unaligned, empty; more than MEMCOOP_WT_MAX_RANGES ranges)
 *    fails with EINVAL or E2BIG and changes nothing.
 *  - A harvest without MEMCOOP_WT_REARM stops tracking the pages it
 *    returns; with it they stay tracked and read-only again.
 *  - fork(): the child shares the fd and the memory (MAP_SHARED), so
 *    writes by parent and child land in the same log; either may harvest,
 *    and addresses are those of the harvesting process's mapping.
 *  - Volatile ranges: a purged page leaves the log and the tracked set (it
 *    is neither dirty nor tracked); a page faulted in after a purge is a
 *    fresh zero page: arm it again if it should be tracked.
 *  - A harvest never drops a logged page.  Pages that do not fit in the
 *    buffer, and pages the harvesting process maps nowhere (after munmap(),
 *    or mapped only by a forked child), stay in the log and are counted in
 *    *remaining: a process that maps them again (same offset), or another
 *    process sharing the fd, harvests them later; disarming or purging them
 *    takes them out.  So a harvest loop stops when a call returns 0, not
 *    only when *remaining is 0.  close(): everything is freed with the last
 *    reference to the fd.
 *  - Memory: the driver keeps two bits per tracked page, in 512-page
 *    chunks charged to the caller's memory cgroup; an arm that would take
 *    a file past the module's wt_max_kib fails with ENOSPC and changes
 *    nothing.
 *  - Threads: the calls may be made from any thread; the driver
 *    serialises arms and harvests of one fd.
 */
#ifndef MEMCOOP_WTRACK_H
#define MEMCOOP_WTRACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct memcoop;

/*
 * memcoop_wt_arm() - track the @n ranges (bytes, page aligned) of @r.
 * Stores the number of distinct pages armed in *@armed if not NULL.
 * Returns 0, or -1 with errno (EINVAL, E2BIG, ENOSPC, ENOMEM, EFAULT).
 */
int memcoop_wt_arm(struct memcoop *mc, const struct memcoop_wt_range *r,
    unsigned int n, uint64_t *armed);
/* memcoop_wt_disarm() - stop tracking; *@disarmed: pages that were tracked. */
int memcoop_wt_disarm(struct memcoop *mc, const struct memcoop_wt_range *r,
    unsigned int n, uint64_t *disarmed);
/* One range: [@addr, @addr + @len). */
int memcoop_wt_arm_range(struct memcoop *mc, void *addr, size_t len);

#define MEMCOOP_WT_HARVEST_REARM	MEMCOOP_WT_REARM

/*
 * memcoop_wt_harvest() - store up to @max addresses of written pages in
 * @addrs; @flags 0 or MEMCOOP_WT_HARVEST_REARM.  *@remaining (if not NULL)
 * gets the pages still logged (those that did not fit, and those this
 * process maps nowhere).  Returns the count stored or -1.
 */
ssize_t memcoop_wt_harvest(struct memcoop *mc, void **addrs, size_t max,
    unsigned int flags, size_t *remaining);

/*
 * memcoop_wt_harvest_all() - harvest until the log is empty (as seen at
 * each call) or holds only pages this process maps nowhere, calling
 * @fn(@arg, addrs, count) for every batch of at most @batch addresses.
 * Returns the total number of pages or -1.
 */
ssize_t memcoop_wt_harvest_all(struct memcoop *mc, unsigned int flags,
    size_t batch, void (*fn)(void *arg, void **addrs, size_t count), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* MEMCOOP_WTRACK_H */
