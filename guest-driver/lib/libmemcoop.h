/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmemcoop: what a guest application links to cooperate with memcoop.ko.
 *
 *	#include <libmemcoop.h>		(pkg-config --cflags --libs memcoop)
 *
 * Every call returns -1 (or NULL) and sets errno on failure;
 * memcoop_strerror() turns the driver's errno values into sentences that
 * say what was wrong with the call.  The handle is not thread-safe unless
 * a section says otherwise.
 *
 * Sections:
 *   this file          open, handshake, close, the fd, raw events
 *   memcoop_relay.h    register, shrink requests, answers, dispatch, signals
 *   memcoop_vrange.h   the arena, volatile ranges, residence, the allocator
 *   memcoop_wtrack.h   write tracking
 */
#ifndef LIBMEMCOOP_H
#define LIBMEMCOOP_H

#include <stddef.h>
#include <stdint.h>
#include <memcoop.h>		/* the kernel ABI (proto/memcoop.h) */

#ifdef __cplusplus
extern "C" {
#endif

struct memcoop;			/* one open /dev/memcoop, handshake done */

/*
 * memcoop_open() - open /dev/memcoop (or $MEMCOOP_DEVICE) and do the
 * handshake asking for @features (MEMCOOP_FEATURE_*).  ENOENT: the module
 * is not loaded; EINVAL: a feature this kernel does not support.
 */
struct memcoop *memcoop_open(uint64_t features);
void memcoop_close(struct memcoop *mc);

/* The fd, for poll/epoll/libevent; readable when events are pending. */
int memcoop_fd(const struct memcoop *mc);
/* Features the kernel supports (not only those asked for). */
uint64_t memcoop_kernel_features(const struct memcoop *mc);
/* The unit of every page count: the guest's page size. */
size_t memcoop_page_size(const struct memcoop *mc);

/*
 * memcoop_read_events() - read up to @max pending events without blocking.
 * Returns the number read (0 when none is pending), or -1.
 */
int memcoop_read_events(struct memcoop *mc, struct memcoop_event *ev, int max);

/* A sentence for @err in the context of memcoop calls. */
const char *memcoop_strerror(int err);

#ifdef __cplusplus
}
#endif

#include "memcoop_relay.h"
#include "memcoop_vrange.h"
#include "memcoop_wtrack.h"

#endif /* LIBMEMCOOP_H */
