/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * systemd's readiness and watchdog protocol (sd_notify(3)), spoken
 * directly: one datagram per state change to $NOTIFY_SOCKET.  Without
 * $NOTIFY_SOCKET (not started by systemd, or Type=simple) every call is a
 * no-op.
 */
#ifndef MEMCOOPD_SDNOTIFY_H
#define MEMCOOPD_SDNOTIFY_H

#include <stdint.h>

struct event_base;

/* Send @state ("READY=1", "STOPPING=1", ...); 1 sent, 0 no socket, -1 error. */
int	 sdn_send(const char *state);
/*
 * If systemd asked for a watchdog ($WATCHDOG_USEC, and $WATCHDOG_PID is
 * ours or unset), pet it from a timer on @base at half the period, so a
 * loop that stops turning stops the pings.  Returns the period in
 * microseconds, 0 without a watchdog.
 */
uint64_t sdn_watchdog_start(struct event_base *base);
void	 sdn_watchdog_stop(void);
/* RELOADING=1 with MONOTONIC_USEC (systemd >= 253 wants it; 252 ignores it). */
void	 sdn_reloading(void);

#endif /* MEMCOOPD_SDNOTIFY_H */
