/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * memcoop: the /dev/memcoop ABI, shared by memcoop.ko and user space.
 *
 * One open file of /dev/memcoop is one client.  Its first ioctl must be
 * MEMCOOP_IOC_API (the handshake); every other ioctl, read() and mmap()
 * fail with -EINVAL until it succeeded.  The handshake names the API
 * version and the features the client wants; the kernel answers with the
 * features and ioctls it supports.  A new behaviour is a new ioctl or a
 * new feature bit, never a reinterpreted struct.
 *
 * Rules for every struct here: only __u32/__u64 members (and __u8 arrays),
 * naturally aligned, sizes asserted below; "reserved" members must be zero
 * on input (else -EINVAL) and are zeroed on output; pointers travel as
 * __u64; outputs come last.  Unknown ioctl commands fail with -ENOTTY.
 *
 * Units: memory sizes are in pages of the size the handshake reports
 * (page_size, 4096 on x86-64); addresses and lengths of ranges are in
 * bytes and must be page aligned; times are CLOCK_MONOTONIC nanoseconds.
 *
 * Features:
 *  RELAY      shrink requests: register, receive MEMCOOP_EVENT_SHRINK by
 *             read()/poll() (and optionally a real-time signal), answer.
 *  VRANGE     mmap() of the fd gives zero-filled, demand-faulted memory
 *             whose ranges can be marked volatile (discardable) and
 *             non-volatile again; residence bitmap query.
 *  RESIDENCE_EVENTS  purge-soon, purged and refault events for the
 *             mapping (MEMCOOP_IOC_SUBSCRIBE); needs VRANGE.
 *  WTRACK     write tracking of mapped pages: arm, then harvest the log of
 *             written pages without any signal; needs VRANGE.
 */
#ifndef _UAPI_LINUX_MEMCOOP_H
#define _UAPI_LINUX_MEMCOOP_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define MEMCOOP_DEVICE			"/dev/memcoop"
#define MEMCOOP_API			((__u64)0xC0DE0001)

#define MEMCOOP_FEATURE_RELAY		((__u64)1 << 0)
#define MEMCOOP_FEATURE_VRANGE		((__u64)1 << 1)
#define MEMCOOP_FEATURE_RESIDENCE_EVENTS ((__u64)1 << 2)
#define MEMCOOP_FEATURE_WTRACK		((__u64)1 << 3)

#define MEMCOOP_IOC_MAGIC		0xC5

/* ioctl numbers; the handshake reports (1 << nr) for each one supported */
#define _MEMCOOP_API			0x00
#define _MEMCOOP_REGISTER		0x01
#define _MEMCOOP_SET_RECLAIMABLE	0x02
#define _MEMCOOP_ANSWER			0x03
#define _MEMCOOP_CLIENT_STATS		0x04
#define _MEMCOOP_SUBSCRIBE		0x05
#define _MEMCOOP_VRANGE			0x10
#define _MEMCOOP_RESIDENCE		0x11
#define _MEMCOOP_WT_ARM			0x20
#define _MEMCOOP_WT_HARVEST		0x21

/**
 * struct memcoop_api - the handshake, MEMCOOP_IOC_API.
 * @api:       in: MEMCOOP_API.  Any other value is -EINVAL.
 * @features:  in: MEMCOOP_FEATURE_* wanted (unknown bits: -EINVAL);
 *             out: every feature this kernel supports.
 * @ioctls:    out: (1 << _MEMCOOP_xxx) for each ioctl supported.
 * @page_size: out: the unit of every page count in this ABI.
 * @reserved:  must be zero.
 *
 * Done once per open file; a second handshake is -EBUSY.
 */
struct memcoop_api {
	__u64 api;
	__u64 features;
	__u64 reserved[4];
	__u64 ioctls;
	__u64 page_size;
};

#define MEMCOOP_NAME_MAX		32
#define MEMCOOP_PRIO_MAX		15	/* priorities 0 (asked first) .. 15 */
#define MEMCOOP_PRIO_UNPRIV		8	/* first priority open to every user */
#define MEMCOOP_SIGNAL_MIN		34	/* 32, 33 belong to the C library */

/**
 * struct memcoop_register - MEMCOOP_IOC_REGISTER (feature RELAY).
 * @name:        NUL-terminated, printable; shown in the driver's counters.
 * @priority:    0..MEMCOOP_PRIO_MAX: lower classes are asked first.
 *               Priorities below MEMCOOP_PRIO_UNPRIV (0..7) jump the queue
 *               and need CAP_SYS_RESOURCE or membership of the group the
 *               administrator named (module parameter relay_priv_gid);
 *               otherwise -EPERM.
 * @signal:      0 for none, or a real-time signal MEMCOOP_SIGNAL_MIN..64
 *               (SIGRTMIN..SIGRTMAX of glibc; 32 and 33 are reserved by
 *               the C library) sent to the registering process with every
 *               shrink request; anything else is -EINVAL.  See "Trust".
 *               fasync (F_SETOWN, F_SETSIG, O_ASYNC) works as well.
 * @reclaimable: pages the process estimates it could free on request
 *               (larger values are clamped to the guest's RAM; no client
 *               is asked for more than its estimate).
 * @flags:       must be zero.
 * @reserved:    must be zero.
 *
 * Registration belongs to the open file: close (of the last reference)
 * unregisters.  Registering a file twice is -EBUSY.  A user holding
 * relay_user_clients registrations already gets -EMFILE (CAP_SYS_RESOURCE
 * is exempt); relay_max_clients registrations in all, -ENOSPC.  A
 * registration gives the file its event queue, as a subscription to
 * PURGE_SOON, PURGED, REFAULT or DIRTY does: a user holding
 * events_user_max queues gets -EMFILE for either.
 *
 * Trust (the device is open to every user):
 *  - Priorities 0..7 need privilege (above).  The clients of a class are
 *    asked before any later class, so they are the ones a balloon round
 *    waits for.
 *  - An unprivileged client is never asked for more than the resident
 *    memory (RSS) of the process that registered, whatever its estimate.
 *  - A client that misses a request's deadline, or answers that it freed
 *    more than can be seen leaving (the registering process's RSS or the
 *    client's estimate fell by less, give or take 1/8), is demoted: it is
 *    asked only after every client in good standing, until it has
 *    answered relay_demote_answers requests in time and honestly.  Only
 *    what was seen leaving is credited.  Lower the estimate
 *    (MEMCOOP_IOC_SET_RECLAIMABLE) before answering when the memory freed
 *    is not the registering process's own.
 *  - The OOM notifier credits the rise of free memory it measures, never
 *    the answers, and waits at most oom_patience_ms per OOM episode.
 *  - @signal is sent only while the registering process may be signalled
 *    by the credentials it registered with (the rule of fcntl's F_SETOWN:
 *    root, or the sender's uid or euid equal to the target's uid or suid),
 *    and never after that process executed a new program (execve ends
 *    signal delivery, as it clears a parent-death signal).
 */
struct memcoop_register {
	__u8 name[MEMCOOP_NAME_MAX];
	__u32 priority;
	__u32 signal;
	__u64 reclaimable;
	__u64 flags;
	__u64 reserved[2];
};

/** struct memcoop_reclaimable - MEMCOOP_IOC_SET_RECLAIMABLE: new estimate. */
struct memcoop_reclaimable {
	__u64 reclaimable;
	__u64 reserved;
};

/**
 * struct memcoop_answer - MEMCOOP_IOC_ANSWER: what a shrink request freed.
 * @seq:      the request's sequence number.  Not one of this file's
 *            outstanding requests: -ENOENT; already answered: -EALREADY.
 * @freed:    pages actually freed; more than the request asked for is
 *            -ERANGE (the request stays open).  More than was seen
 *            leaving is accepted but demotes the client (see "Trust"
 *            under struct memcoop_register).
 * @reserved: must be zero.
 *
 * An answer after the request's deadline is accepted and counted as late.
 */
struct memcoop_answer {
	__u64 seq;
	__u64 freed;
	__u64 reserved[2];
};

/** struct memcoop_client_stats - MEMCOOP_IOC_CLIENT_STATS: this file's accounting. */
struct memcoop_client_stats {
	__u64 reserved[2];
	__u64 requests;		/* shrink requests sent */
	__u64 pages_requested;
	__u64 answers;		/* answered in time */
	__u64 late;		/* answered after the deadline */
	__u64 missed;		/* never answered */
	__u64 pages_freed;	/* sum of answers, as credited */
	__u64 events_lost;	/* queue overflow */
	__u64 pages_purged;	/* volatile pages of this file purged */
};

/* Events a client can subscribe to (MEMCOOP_IOC_SUBSCRIBE); bit = 1 << type */
#define MEMCOOP_EVENT_SHRINK		1	/* always delivered once registered */
#define MEMCOOP_EVENT_PURGE_SOON	2	/* range will be purged after grace */
#define MEMCOOP_EVENT_PURGED		3	/* range was purged */
#define MEMCOOP_EVENT_REFAULT		4	/* a purged page was faulted in again */
#define MEMCOOP_EVENT_DIRTY		5	/* write log became non-empty */
#define MEMCOOP_EVENT_LOST		6	/* events were dropped (queue full) */

/** struct memcoop_subscribe - MEMCOOP_IOC_SUBSCRIBE: set the event mask. */
struct memcoop_subscribe {
	__u64 events;		/* (1 << MEMCOOP_EVENT_x) bits; unknown: -EINVAL */
	__u64 reserved;
};

/* Why the driver asks (memcoop_event.shrink.reason) */
#define MEMCOOP_REASON_BALLOON		1	/* host raised the balloon target */
#define MEMCOOP_REASON_RECLAIM		2	/* the guest itself is reclaiming */
#define MEMCOOP_REASON_OOM		3	/* the OOM killer is next */

/* How urgent (memcoop_event.shrink.level) */
#define MEMCOOP_LEVEL_LOW		1
#define MEMCOOP_LEVEL_MEDIUM		2
#define MEMCOOP_LEVEL_CRITICAL		3

/**
 * struct memcoop_event - one record read from the fd.
 *
 * read() returns whole records only (a buffer smaller than one record is
 * -EINVAL); it blocks unless O_NONBLOCK, and the fd polls readable
 * (POLLIN) while a record is pending.
 *
 * SHRINK: shrink.pages wanted from this process before shrink.deadline_ns;
 *         answer with MEMCOOP_IOC_ANSWER and @seq.
 * PURGE_SOON, PURGED, REFAULT: range.start/len are addresses in the
 *         mapping of the process that subscribed (page aligned, bytes).
 * DIRTY:  harvest with MEMCOOP_IOC_WT_HARVEST.
 * LOST:   lost.count events were dropped since the last LOST.
 */
struct memcoop_event {
	__u32 type;
	__u32 flags;
	__u64 seq;
	__u64 timestamp_ns;	/* when the kernel queued it */
	union {
		struct {
			__u64 pages;
			__u64 deadline_ns;
			__u32 reason;
			__u32 level;
		} shrink;
		struct {
			__u64 start;
			__u64 len;
		} range;
		struct {
			__u64 count;
		} lost;
		__u64 pad[5];
	};
};

#define MEMCOOP_VRANGE_VOLATILE		1
#define MEMCOOP_VRANGE_NONVOLATILE	2

/**
 * struct memcoop_vrange - MEMCOOP_IOC_VRANGE (feature VRANGE).
 * @start, @len: page-aligned range inside one mapping of this fd
 *               (another fd's mapping, outside any mapping, zero length,
 *               unaligned or wrapping: -EINVAL).
 * @mode:        MEMCOOP_VRANGE_VOLATILE or MEMCOOP_VRANGE_NONVOLATILE.
 * @reserved:    must be zero.
 * @purged:      out, for NONVOLATILE: 1 if any page in the range was
 *               purged since it was marked volatile, else 0.
 *
 * Each fd's memory keeps its ranges as nodes (adjacent volatile ranges
 * marked through the same mapping merge into one), at most the module
 * parameter max_ranges per fd (default 65536).  A call that could take
 * the fd beyond it fails with -ENOSPC and changes nothing: VOLATILE needs
 * up to two nodes more than it absorbs (plus one per purged range inside),
 * NONVOLATILE one or two only when it splits a range (taking back a whole
 * range never needs one).  -ENOMEM: no memory for a node (nothing changed
 * for NONVOLATILE).  At the bound, the first touch inside a taken-back
 * purged range (not at its ends) ends that range's REFAULT reports.
 */
struct memcoop_vrange {
	__u64 start;
	__u64 len;
	__u64 mode;
	__u64 reserved;
	__u64 purged;
};

/**
 * struct memcoop_residence - MEMCOOP_IOC_RESIDENCE: mincore for the mapping.
 * @start, @len: as for memcoop_vrange.
 * @bitmap:      user pointer; bit i (LSB first in each byte) is set when
 *               page i of the range is resident.
 * @bitmap_size: bytes at @bitmap; fewer than len/page_size/8 rounded up
 *               is -EINVAL.
 * @resident:    out: pages resident.
 */
struct memcoop_residence {
	__u64 start;
	__u64 len;
	__u64 bitmap;
	__u64 bitmap_size;
	__u64 reserved;
	__u64 resident;
};

/** struct memcoop_wt_range - one element of a write-tracking list. */
struct memcoop_wt_range {
	__u64 start;
	__u64 len;
};

#define MEMCOOP_WT_MAX_RANGES		4096

/**
 * struct memcoop_wt_arm - MEMCOOP_IOC_WT_ARM (feature WTRACK).
 * @ranges:    user pointer to @count struct memcoop_wt_range, each page
 *             aligned and inside a mapping of this fd.
 * @count:     1..MEMCOOP_WT_MAX_RANGES.
 * @flags:     MEMCOOP_WT_DISARM to stop tracking the pages instead.
 * @reserved:  must be zero.
 * @armed:     out: pages now tracked (a page listed twice counts once);
 *             with MEMCOOP_WT_DISARM, pages that were tracked.
 *
 * The whole list is checked before anything changes.  Tracking state is
 * kernel memory charged to the caller's memory cgroup, proportional to
 * the pages tracked (not their offsets) and limited per open file by the
 * module parameter wt_max_kib: an arm beyond it fails with -ENOSPC and
 * changes nothing.
 */
struct memcoop_wt_arm {
	__u64 ranges;
	__u32 count;
	__u32 flags;
	__u64 reserved;
	__u64 armed;
};
#define MEMCOOP_WT_DISARM		(1U << 0)

/**
 * struct memcoop_wt_harvest - MEMCOOP_IOC_WT_HARVEST: read the write log.
 * @addrs:     user pointer to an array of @max __u64, filled with the
 *             addresses of pages written since the last harvest, each once.
 * @max:       capacity of @addrs (at least 1).
 * @flags:     MEMCOOP_WT_REARM: re-arm the harvested pages in the same call.
 * @reserved:  must be zero.
 * @count:     out: addresses stored.
 * @remaining: out: pages still in the log: those that did not fit in
 *             @max (harvest again) and those no mapping of the calling
 *             process covers (a harvest through a mapping of them, in
 *             this or another process, returns them later).
 *
 * Addresses are those of the calling process's mappings of this fd,
 * however many there are (mprotect() splits included); a page mapped
 * twice is returned once.  A harvest never drops a logged page.
 *
 * Cost: the first write to an armed page faults once (no signal).  With
 * MEMCOOP_WT_REARM, a run of 512 pages (aligned in the fd's offsets) that
 * a harvest finds densely written is re-armed without write-protecting
 * it: its next writes do not fault, and the next harvest reads them from
 * the page tables' dirty bits, until a harvest finds it sparsely written
 * again.  The pages reported are the same either way.  A file subscribed
 * to MEMCOOP_EVENT_DIRTY always write-protects (an event needs a fault).
 */
struct memcoop_wt_harvest {
	__u64 addrs;
	__u64 max;
	__u32 flags;
	__u32 reserved;
	__u64 count;
	__u64 remaining;
};
#define MEMCOOP_WT_REARM		(1U << 0)

#define MEMCOOP_IOC_API		_IOWR(MEMCOOP_IOC_MAGIC, _MEMCOOP_API, struct memcoop_api)
#define MEMCOOP_IOC_REGISTER	_IOW(MEMCOOP_IOC_MAGIC, _MEMCOOP_REGISTER, struct memcoop_register)
#define MEMCOOP_IOC_SET_RECLAIMABLE \
	_IOW(MEMCOOP_IOC_MAGIC, _MEMCOOP_SET_RECLAIMABLE, struct memcoop_reclaimable)
#define MEMCOOP_IOC_ANSWER	_IOW(MEMCOOP_IOC_MAGIC, _MEMCOOP_ANSWER, struct memcoop_answer)
#define MEMCOOP_IOC_CLIENT_STATS \
	_IOWR(MEMCOOP_IOC_MAGIC, _MEMCOOP_CLIENT_STATS, struct memcoop_client_stats)
#define MEMCOOP_IOC_SUBSCRIBE	_IOW(MEMCOOP_IOC_MAGIC, _MEMCOOP_SUBSCRIBE, struct memcoop_subscribe)
#define MEMCOOP_IOC_VRANGE	_IOWR(MEMCOOP_IOC_MAGIC, _MEMCOOP_VRANGE, struct memcoop_vrange)
#define MEMCOOP_IOC_RESIDENCE	_IOWR(MEMCOOP_IOC_MAGIC, _MEMCOOP_RESIDENCE, struct memcoop_residence)
#define MEMCOOP_IOC_WT_ARM	_IOWR(MEMCOOP_IOC_MAGIC, _MEMCOOP_WT_ARM, struct memcoop_wt_arm)
#define MEMCOOP_IOC_WT_HARVEST	_IOWR(MEMCOOP_IOC_MAGIC, _MEMCOOP_WT_HARVEST, struct memcoop_wt_harvest)

#ifdef __cplusplus
#define MEMCOOP_ASSERT_SIZE(t, n) static_assert(sizeof(struct t) == (n), #t)
#else
#define MEMCOOP_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t)
#endif
MEMCOOP_ASSERT_SIZE(memcoop_api, 64);
MEMCOOP_ASSERT_SIZE(memcoop_register, 72);
MEMCOOP_ASSERT_SIZE(memcoop_reclaimable, 16);
MEMCOOP_ASSERT_SIZE(memcoop_answer, 32);
MEMCOOP_ASSERT_SIZE(memcoop_client_stats, 80);
MEMCOOP_ASSERT_SIZE(memcoop_subscribe, 16);
MEMCOOP_ASSERT_SIZE(memcoop_event, 64);
MEMCOOP_ASSERT_SIZE(memcoop_vrange, 40);
MEMCOOP_ASSERT_SIZE(memcoop_residence, 48);
MEMCOOP_ASSERT_SIZE(memcoop_wt_range, 16);
MEMCOOP_ASSERT_SIZE(memcoop_wt_arm, 32);
MEMCOOP_ASSERT_SIZE(memcoop_wt_harvest, 40);

#endif /* _UAPI_LINUX_MEMCOOP_H */
