/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmemcoop: volatile ranges, residence, and an allocator built on them
 * (included by libmemcoop.h).  Needs a handle opened with
 * MEMCOOP_FEATURE_VRANGE (and MEMCOOP_FEATURE_RESIDENCE_EVENTS for the
 * purge/refault events).
 *
 * An arena is a MAP_SHARED mapping of the handle's memory object:
 * zero-filled, demand-faulted memory charged to the caller's memory
 * cgroup, shared with children across fork.  Arenas of one handle occupy
 * distinct parts of the object; create them in one process (the offsets
 * are handed out by the handle, and a child's copy of the handle does not
 * see its parent's later arenas).
 *
 * Volatile ranges: memcoop_volatile() lets the kernel discard the pages of
 * a range (whole ranges at a time, least recently marked first) under
 * pressure; until it is marked non-volatile again, touching a discarded
 * page raises SIGBUS.  memcoop_nonvolatile() answers whether anything was
 * discarded; discarded pages then read as zeros.  Ranges are discarded
 * when the host inflates the balloon, when the guest reclaims memory, and
 * before the OOM killer runs; inside a memory cgroup at its limit, the
 * ranges that the group's tasks marked go before the group's OOM killer
 * acts.
 *
 * These calls are thread-safe (they are plain ioctls on the fd).
 */
#ifndef MEMCOOP_VRANGE_H
#define MEMCOOP_VRANGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct memcoop;
struct memcoop_arena;

/*
 * memcoop_arena_map() - map @len bytes (rounded up to the page size) of
 * fresh memory.  NULL/errno: EINVAL (handle without VRANGE, @len 0 or too
 * big), ENOMEM, or what mmap(2) said.
 */
struct memcoop_arena *memcoop_arena_map(struct memcoop *mc, size_t len);
/* Unmap the arena; its volatile ranges go with it. */
void memcoop_arena_unmap(struct memcoop_arena *a);
void *memcoop_arena_base(const struct memcoop_arena *a);
size_t memcoop_arena_size(const struct memcoop_arena *a);

/*
 * memcoop_volatile() - mark [@addr, @addr + @len) volatile: the kernel may
 * discard it.  The range must be page aligned and inside mappings of this
 * handle's memory (EINVAL otherwise).  Returns 0 or -1.
 */
int memcoop_volatile(struct memcoop *mc, void *addr, size_t len);
/*
 * memcoop_nonvolatile() - mark the range non-volatile again.  Returns 1 if
 * any page of it was discarded since it was marked volatile (those pages
 * now read as zeros), 0 if its contents are intact, -1 on error.
 */
int memcoop_nonvolatile(struct memcoop *mc, void *addr, size_t len);
/*
 * memcoop_residence() - a mincore(2) for this memory: bit i (LSB first in
 * each byte) of @bitmap is set when page i of the range is in memory.
 * @bitmap_size is in bytes.  Returns the number of resident pages or -1.
 */
ssize_t memcoop_residence(struct memcoop *mc, void *addr, size_t len,
    uint8_t *bitmap, size_t bitmap_size);
/*
 * memcoop_subscribe() - choose the events read from the fd, as
 * (1 << MEMCOOP_EVENT_x) bits (PURGE_SOON, PURGED, REFAULT need
 * MEMCOOP_FEATURE_RESIDENCE_EVENTS).  Shrink requests and LOST are always
 * delivered.
 */
int memcoop_subscribe(struct memcoop *mc, uint64_t events);

/*
 * The allocator: spans of whole pages carved from one arena, kept in
 * per-size free lists.  A freed span is marked volatile instead of being
 * given back with madvise(MADV_DONTNEED); reusing it marks it non-volatile
 * (one ioctl each, whatever the span's size), so memory that is not needed
 * elsewhere is reused without page faults, and memory that is needed is
 * taken by the kernel without asking.  Sizes are rounded up to a size
 * class (a quarter of a power of two, at least one page) after a 16-byte
 * header.  Thread-safe.
 *
 * For comparison the same allocator can run over private anonymous memory
 * and give freed spans back with madvise(MADV_DONTNEED) or MADV_FREE, or
 * keep them (MEMCOOP_RELEASE_NONE).
 */
enum memcoop_release {
	MEMCOOP_RELEASE_VOLATILE = 1,	/* memcoop volatile ranges (needs a handle) */
	MEMCOOP_RELEASE_DONTNEED,	/* anonymous memory, madvise(MADV_DONTNEED) */
	MEMCOOP_RELEASE_FREE,		/* anonymous memory, madvise(MADV_FREE) */
	MEMCOOP_RELEASE_NONE,		/* anonymous memory, kept as is */
};

struct memcoop_alloc;

struct memcoop_alloc_stats {
	uint64_t allocs;		/* successful memcoop_malloc() */
	uint64_t frees;
	uint64_t reused;		/* spans taken from a free list */
	uint64_t purged_reuses;		/* ... that the kernel had discarded */
	uint64_t released_bytes;	/* bytes marked volatile / madvised */
	uint64_t arena_used;		/* bytes of the arena handed out so far */
};

/*
 * memcoop_alloc_create() - an allocator over @arena_size bytes of address
 * space (reserved, not committed).  @mc is required for
 * MEMCOOP_RELEASE_VOLATILE and ignored otherwise.
 */
struct memcoop_alloc *memcoop_alloc_create(struct memcoop *mc, size_t arena_size,
    enum memcoop_release release);
void memcoop_alloc_destroy(struct memcoop_alloc *al);
/* NULL/ENOMEM when the arena is exhausted; @size 0 gives a valid pointer. */
void *memcoop_malloc(struct memcoop_alloc *al, size_t size);
void *memcoop_calloc(struct memcoop_alloc *al, size_t n, size_t size);
void memcoop_free(struct memcoop_alloc *al, void *p);
/* Usable size of an allocation. */
size_t memcoop_malloc_usable_size(struct memcoop_alloc *al, void *p);
void memcoop_alloc_stats(struct memcoop_alloc *al, struct memcoop_alloc_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* MEMCOOP_VRANGE_H */
