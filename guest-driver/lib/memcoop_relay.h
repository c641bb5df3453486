/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmemcoop: the relay section (included by libmemcoop.h).
 *
 * A process that holds memory it could give up (a cache, a pool) registers
 * with the driver.  When the guest must find memory (the host inflates the
 * balloon, the guest reclaims, the OOM killer is next) the driver sends it
 * a shrink request: how many pages, by when, why.  The process frees what
 * it can and answers with what it freed.  A request not answered by its
 * deadline is counted "missed" by the driver, and the balloon goes on
 * without it.
 *
 * Requests arrive as records on the fd (memcoop_fd(): poll/epoll/libevent
 * see it readable) and, optionally, with a signal.  Three ways to serve
 * them, from the most to the least idiomatic:
 *
 *  1. an event loop: watch memcoop_fd() for reading and call
 *     memcoop_dispatch() when it is readable;
 *  2. a helper thread: memcoop_relay_thread_start() runs the callback in
 *     a thread of the library (the callback must then lock what it
 *     shares with the rest of the program);
 *  3. signals, for programs without a loop: memcoop_relay_signal_mode()
 *     arranges a signal per request; the program checks
 *     memcoop_signal_seen() where convenient and calls memcoop_dispatch().
 *
 * Sizes are in pages of memcoop_page_size() bytes.  Every call returns -1
 * (errno set; memcoop_strerror() explains it) or a value >= 0.
 *
 * A complete example: a program that holds a cache of 4 MiB blocks and
 * gives them back on request, served from a poll() loop.
 *
 *	#include <err.h>
 *	#include <errno.h>
 *	#include <poll.h>
 *	#include <stdlib.h>
 *	#include <libmemcoop.h>
 *
 *	#define BLOCK	(4u << 20)
 *	static void	*blocks[64];
 *	static int	 nblocks;
 *
 *	static size_t
 *	shrink(const struct memcoop_event *req, void *arg)
 *	{
 *		struct memcoop *mc = arg;
 *		size_t per = BLOCK / memcoop_page_size(mc), freed = 0;
 *
 *		while (freed < req->shrink.pages && nblocks > 0) {
 *			free(blocks[--nblocks]);
 *			freed += per;
 *		}
 *		memcoop_set_reclaimable(mc, (uint64_t)nblocks * per);
 *		return freed;	// the library answers min(freed, asked)
 *	}
 *
 *	int
 *	main(void)
 *	{
 *		struct memcoop *mc;
 *		struct pollfd pfd;
 *
 *		if ((mc = memcoop_open(MEMCOOP_FEATURE_RELAY)) == NULL)
 *			errx(1, "memcoop_open: %s", memcoop_strerror(errno));
 *		for (nblocks = 0; nblocks < 64; nblocks++)
 *			if ((blocks[nblocks] = calloc(1, BLOCK)) == NULL)
 *				break;
 *		if (memcoop_register(mc, "example", 0,
 *		    (uint64_t)nblocks * (BLOCK / memcoop_page_size(mc)), 0) == -1)
 *			errx(1, "register: %s", memcoop_strerror(errno));
 *		memcoop_set_shrink_cb(mc, shrink, mc);
 *		pfd.fd = memcoop_fd(mc);
 *		pfd.events = POLLIN;
 *		for (;;) {
 *			if (poll(&pfd, 1, -1) == -1)
 *				err(1, "poll");
 *			if (memcoop_dispatch(mc) == -1)
 *				warnx("dispatch: %s", memcoop_strerror(errno));
 *		}
 *	}
 *
 * (free() of a block this large unmaps it, so the memory really goes back
 * to the kernel; with small allocations call malloc_trim(0) or use your
 * own mmap'd slabs.)
 */
#ifndef MEMCOOP_RELAY_H
#define MEMCOOP_RELAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct memcoop;
struct memcoop_event;
struct memcoop_client_stats;

/*
 * The shrink callback: free up to req->shrink.pages pages (more is
 * allowed, but only that much is reported), return how many were freed.
 * req->seq, req->shrink.reason (MEMCOOP_REASON_BALLOON, _RECLAIM, _OOM),
 * req->shrink.level (MEMCOOP_LEVEL_LOW.._CRITICAL), req->shrink.deadline_ns
 * and req->timestamp_ns (when the kernel queued it; both CLOCK_MONOTONIC)
 * say how urgent it is.
 */
typedef size_t (*memcoop_shrink_cb)(const struct memcoop_event *req, void *arg);

/* Any other event that memcoop_dispatch() reads (see libmemcoop.h). */
typedef void (*memcoop_event_cb)(const struct memcoop_event *ev, void *arg);

/*
 * memcoop_register() - register this open device (needs the handshake
 * feature MEMCOOP_FEATURE_RELAY).
 * @name:     1..31 printable characters, shown in the driver's counters.
 * @priority: 0..MEMCOOP_PRIO_MAX; lower classes are asked first.  0..7
 *            need CAP_SYS_RESOURCE or the administrator's group (EPERM);
 *            everyone may use MEMCOOP_PRIO_UNPRIV (8) and up.
 * @reclaimable: pages the process could free on request (an estimate;
 *            the driver shares requests out by it and asks nobody for
 *            more than its estimate; 0 means "ask me nothing for now").
 * @signo:    0, or a real-time signal (SIGRTMIN..SIGRTMAX) the kernel
 *            sends to this process with each request, until it executes
 *            another program.  The library does
 *            not install a handler for it (memcoop_relay_signal_mode()
 *            does, by fasync).
 *
 * Registration belongs to the open file: closing it (memcoop_close(), or
 * the exit of the last process holding it) unregisters.  Children forked
 * after registering share it.
 * Answer only what really left (the process's RSS, or lower the estimate
 * first): a client that claims more, or misses deadlines, is asked last.
 * Errors: EINVAL (bad name, priority or signal, or RELAY not asked for in
 * memcoop_open()), EPERM (priority 0..7 without privilege), EBUSY (already
 * registered), EMFILE (this user's registrations at the cap), ENOSPC (all
 * registrations at the cap), ENOMEM.
 */
int memcoop_register(struct memcoop *mc, const char *name, unsigned int priority,
    uint64_t reclaimable, int signo);

/* memcoop_set_reclaimable() - update the estimate (pages) at any time. */
int memcoop_set_reclaimable(struct memcoop *mc, uint64_t pages);

/*
 * memcoop_set_shrink_cb() - the callback memcoop_dispatch() calls for each
 * shrink request.  Without one, requests are answered with 0 freed.
 */
int memcoop_set_shrink_cb(struct memcoop *mc, memcoop_shrink_cb cb, void *arg);

/* memcoop_set_event_cb() - the callback for events other than SHRINK. */
int memcoop_set_event_cb(struct memcoop *mc, memcoop_event_cb cb, void *arg);

/*
 * memcoop_dispatch() - read every pending event without blocking; for
 * each shrink request call the shrink callback and answer with what it
 * returned (at most what was asked); pass other events to the event
 * callback.  Returns the number of shrink requests answered (0 if none
 * was pending), or -1 if reading failed or an answer was refused (the
 * remaining events are still handled; errno is that of the first error;
 * ENOENT means the driver had already forgotten a very old request).
 * Several threads may dispatch at once; each request goes to one of them.
 */
int memcoop_dispatch(struct memcoop *mc);

/*
 * memcoop_answer() - answer request @seq by hand (programs that read events
 * themselves with memcoop_read_events()).  Errors: ENOENT (no such request
 * on this fd), EALREADY (answered before), ERANGE (more than was asked).
 */
int memcoop_answer(struct memcoop *mc, uint64_t seq, uint64_t freed);

/* memcoop_client_stats() - the driver's accounting for this fd. */
int memcoop_client_stats(struct memcoop *mc, struct memcoop_client_stats *st);

/*
 * memcoop_relay_signal_mode() - for programs without an event loop: have
 * the kernel send @signo (SIGIO, or SIGRTMIN..SIGRTMAX of the C library)
 * to this process whenever an event is queued (fasync: F_SETOWN_EX,
 * F_SETSIG, O_ASYNC), with a handler installed that only records it.
 * The program then calls memcoop_signal_seen() in its main loop (or after
 * a blocking call returns EINTR) and memcoop_dispatch() when it is true.
 * The handler is installed with SA_RESTART.  One process-wide flag serves
 * every handle.  Errors: EINVAL (bad signal), or from fcntl/sigaction.
 */
int memcoop_relay_signal_mode(struct memcoop *mc, int signo);

/* memcoop_signal_seen() - 1 if the signal arrived since the last call. */
int memcoop_signal_seen(void);

/*
 * memcoop_relay_thread_start() - serve requests from a thread of the
 * library: it polls the fd and calls memcoop_dispatch(), so the shrink
 * callback runs in that thread.  memcoop_relay_thread_stop() (and
 * memcoop_close()) stop it.  Errors: EBUSY (already running), or from
 * pthread_create.
 */
int memcoop_relay_thread_start(struct memcoop *mc);
int memcoop_relay_thread_stop(struct memcoop *mc);

#ifdef __cplusplus
}
#endif

#endif /* MEMCOOP_RELAY_H */
