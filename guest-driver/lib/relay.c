/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: shrink requests (register, dispatch, answer, signals, thread). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "libmemcoop.h"
#include "mc_lib.h"

#define DISPATCH_BATCH	16

struct mc_relay_state {
	memcoop_shrink_cb	 shrink_cb;
	void			*shrink_arg;
	memcoop_event_cb	 event_cb;
	void			*event_arg;

	pthread_t		 thread;
	int			 thread_running;
	int			 stop_pipe[2];
};

static volatile sig_atomic_t signal_seen;

static struct mc_relay_state *
relay_state(struct memcoop *mc)
{
	if (mc->relay == NULL) {
		if ((mc->relay = calloc(1, sizeof(*mc->relay))) == NULL)
			return NULL;
		mc->relay->stop_pipe[0] = mc->relay->stop_pipe[1] = -1;
	}
	return mc->relay;
}

void
mc_lib_relay_free(struct memcoop *mc)
{
	if (mc->relay == NULL)
		return;
	memcoop_relay_thread_stop(mc);
	free(mc->relay);
	mc->relay = NULL;
}

static int
relay_ioctl(struct memcoop *mc, unsigned long cmd, void *arg)
{
	int rc;

	do {
		rc = ioctl(mc->fd, cmd, arg);
	} while (rc == -1 && errno == EINTR);
	return rc == -1 ? -1 : 0;
}

int
memcoop_register(struct memcoop *mc, const char *name, unsigned int priority,
    uint64_t reclaimable, int signo)
{
	struct memcoop_register reg;
	size_t len;

	if (name == NULL || (len = strlen(name)) == 0 || len >= sizeof(reg.name) ||
	    priority > MEMCOOP_PRIO_MAX || signo < 0) {
		errno = EINVAL;
		return -1;
	}
	memset(&reg, 0, sizeof(reg));
	memcpy(reg.name, name, len);
	reg.priority = priority;
	reg.signal = (uint32_t)signo;
	reg.reclaimable = reclaimable;
	if (relay_state(mc) == NULL)
		return -1;
	return relay_ioctl(mc, MEMCOOP_IOC_REGISTER, &reg);
}

int
memcoop_set_reclaimable(struct memcoop *mc, uint64_t pages)
{
	struct memcoop_reclaimable rec;

	memset(&rec, 0, sizeof(rec));
	rec.reclaimable = pages;
	return relay_ioctl(mc, MEMCOOP_IOC_SET_RECLAIMABLE, &rec);
}

int
memcoop_set_shrink_cb(struct memcoop *mc, memcoop_shrink_cb cb, void *arg)
{
	struct mc_relay_state *rs;

	if ((rs = relay_state(mc)) == NULL)
		return -1;
	rs->shrink_cb = cb;
	rs->shrink_arg = arg;
	return 0;
}

int
memcoop_set_event_cb(struct memcoop *mc, memcoop_event_cb cb, void *arg)
{
	struct mc_relay_state *rs;

	if ((rs = relay_state(mc)) == NULL)
		return -1;
	rs->event_cb = cb;
	rs->event_arg = arg;
	return 0;
}

int
memcoop_answer(struct memcoop *mc, uint64_t seq, uint64_t freed)
{
	struct memcoop_answer ans;

	memset(&ans, 0, sizeof(ans));
	ans.seq = seq;
	ans.freed = freed;
	return relay_ioctl(mc, MEMCOOP_IOC_ANSWER, &ans);
}

int
memcoop_client_stats(struct memcoop *mc, struct memcoop_client_stats *st)
{
	memset(st, 0, sizeof(*st));
	return relay_ioctl(mc, MEMCOOP_IOC_CLIENT_STATS, st);
}

int
memcoop_dispatch(struct memcoop *mc)
{
	struct memcoop_event ev[DISPATCH_BATCH];
	struct mc_relay_state *rs = mc->relay;
	int answered = 0, first_err = 0;
	ssize_t n, i;
	size_t freed;

	for (;;) {
		n = recv_events(mc->fd, ev, DISPATCH_BATCH);
		if (n == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && !first_err)
				first_err = errno;
			break;
		}
		if (n == 0)
			break;
		for (i = 0; i < n; i++) {
			if (ev[i].type != MEMCOOP_EVENT_SHRINK) {
				if (rs != NULL && rs->event_cb != NULL)
					rs->event_cb(&ev[i], rs->event_arg);
				continue;
			}
			freed = 0;
			if (rs != NULL && rs->shrink_cb != NULL)
				freed = rs->shrink_cb(&ev[i], rs->shrink_arg);
			if (freed > ev[i].shrink.pages)
				freed = ev[i].shrink.pages;
			if (memcoop_answer(mc, ev[i].seq, freed) == -1) {
				if (!first_err)
					first_err = errno;
				continue;
			}
			answered++;
		}
		if (n < DISPATCH_BATCH)
			break;
	}
	if (first_err) {
		errno = first_err;
		return -1;
	}
	return answered;
}

static void
relay_signal_handler(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)si;
	(void)ctx;
	signal_seen = 1;
}

int
memcoop_relay_signal_mode(struct memcoop *mc, int signo)
{
	struct f_owner_ex owner;
	struct sigaction sa;
	int fl;

	if (signo != SIGIO && (signo < SIGRTMIN || signo > SIGRTMAX)) {
		errno = EINVAL;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = relay_signal_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(signo, &sa, NULL) == -1)
		return -1;

	owner.type = F_OWNER_PID;
	owner.pid = getpid();
	if (fcntl(mc->fd, F_SETOWN_EX, &owner) == -1)
		return -1;
	if (fcntl(mc->fd, F_SETSIG, signo) == -1)
		return -1;
	if ((fl = fcntl(mc->fd, F_GETFL)) == -1 ||
	    fcntl(mc->fd, F_SETFL, fl | O_ASYNC) == -1)
		return -1;
	return 0;
}

int
memcoop_signal_seen(void)
{
	if (!signal_seen)
		return 0;
	signal_seen = 0;
	return 1;
}

static void *
relay_thread(void *arg)
{
	struct memcoop *mc = arg;
	struct mc_relay_state *rs = mc->relay;
	struct pollfd pfd[2];

	pfd[0].fd = mc->fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = rs->stop_pipe[0];
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLNVAL))
			break;
		if (pfd[0].revents & POLLIN)
			(void)memcoop_dispatch(mc);
	}
	return NULL;
}

int
memcoop_relay_thread_start(struct memcoop *mc)
{
	struct mc_relay_state *rs;
	int err;

	if ((rs = relay_state(mc)) == NULL)
		return -1;
	if (rs->thread_running) {
		errno = EBUSY;
		return -1;
	}
	if (pipe2(rs->stop_pipe, O_CLOEXEC) == -1)
		return -1;
	if ((err = pthread_create(&rs->thread, NULL, relay_thread, mc)) != 0) {
		close(rs->stop_pipe[0]);
		close(rs->stop_pipe[1]);
		rs->stop_pipe[0] = rs->stop_pipe[1] = -1;
		errno = err;
		return -1;
	}
	rs->thread_running = 1;
	return 0;
}

int
memcoop_relay_thread_stop(struct memcoop *mc)
{
	struct mc_relay_state *rs = mc->relay;
	ssize_t n;

	if (rs == NULL || !rs->thread_running)
		return 0;
	do {
		n = write(rs->stop_pipe[1], "", 1);
	} while (n == -1 && errno == EINTR);
	pthread_join(rs->thread, NULL);
	close(rs->stop_pipe[0]);
	close(rs->stop_pipe[1]);
	rs->stop_pipe[0] = rs->stop_pipe[1] = -1;
	rs->thread_running = 0;
	return 0;
}
