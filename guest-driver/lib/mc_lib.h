/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop internals shared by its source files; not installed. */
#ifndef MC_LIB_H
#define MC_LIB_H

#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include "libmemcoop.h"

struct mc_relay_state;		/* relay.c */

struct memcoop {
	int fd;
	uint64_t features;		/* asked for in the handshake */
	uint64_t kernel_features;	/* supported by the kernel */
	size_t page_size;
	struct mc_relay_state *relay;	/* relay.c; NULL until registered */
	uint64_t arena_next;		/* arena.c: next free offset in the memory object */
};

/* relay.c: free what registration allocated (called by memcoop_close) */
void mc_lib_relay_free(struct memcoop *mc);

/* Non-blocking read of up to @max whole events; -1/errno like read(2). */
static inline ssize_t
recv_events(int fd, struct memcoop_event *ev, size_t max)
{
	ssize_t n;

	do {
		n = read(fd, ev, max * sizeof(*ev));
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	return n / (ssize_t)sizeof(*ev);
}

#endif /* MC_LIB_H */
