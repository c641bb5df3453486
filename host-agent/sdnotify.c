// SPDX-License-Identifier: GPL-2.0-only
/*
 * The sd_notify protocol without libsystemd: $NOTIFY_SOCKET names an
 * AF_UNIX datagram socket (a path, or "@name" in the abstract namespace);
 * each message is newline-separated VAR=VALUE lines.  It is a stable,
 * documented interface (sd_notify(3), "the protocol is simple"), a
 * dozen lines to speak, and keeps memcoopd free of a library it would use
 * for nothing else.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "sdnotify.h"

static struct event *wd_ev;

int
sdn_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t sl;
	size_t n;
	int fd, rv;

	if (path == NULL || path[0] == '\0')
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sun.sun_path)) {
		log_warnx("%s: NOTIFY_SOCKET %s not usable", __func__, path);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (path[0] == '/'));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("%s: socket", __func__);
		return -1;
	}
	rv = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, sl) == -1 ? -1 : 1;
	if (rv == -1)
		log_warn("%s: %s", __func__, path);
	close(fd);
	return rv;
}

void
sdn_reloading(void)
{
	struct timespec ts;
	char buf[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	    (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
	(void)sdn_send(buf);
}

static void
wd_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	(void)sdn_send("WATCHDOG=1");
}

uint64_t
sdn_watchdog_start(struct event_base *base)
{
	const char *e = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
	struct timeval tv;
	unsigned long long usec;
	char *end;

	if (e == NULL || getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	if (p != NULL && strtoll(p, NULL, 10) != (long long)getpid())
		return 0;	/* meant for another process */
	errno = 0;
	usec = strtoull(e, &end, 10);
	if (errno != 0 || *end != '\0' || usec == 0) {
		log_warnx("%s: WATCHDOG_USEC=%s ignored", __func__, e);
		return 0;
	}
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	if ((wd_ev = event_new(base, -1, EV_PERSIST, wd_cb, NULL)) == NULL ||
	    event_add(wd_ev, &tv) == -1) {
		log_warnx("%s: cannot start the watchdog timer", __func__);
		return 0;
	}
	(void)sdn_send("WATCHDOG=1");
	log_info("systemd watchdog: %llu ms, petted every %llu ms",
	    usec * 2 / 1000, usec / 1000);
	return usec * 2;
}

void
sdn_watchdog_stop(void)
{
	if (wd_ev != NULL) {
		event_free(wd_ev);
		wd_ev = NULL;
	}
}
