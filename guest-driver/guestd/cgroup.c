// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cgroup v2 adapter: any cgroup (a systemd service or slice) is asked
 * to give up memory through memory.reclaim (Linux 5.19+), which reclaims
 * its page cache and, with swap, its anonymous memory.  The write is
 * synchronous in the kernel and, with memory short, one of a few MiB took
 * 900 ms in guestd-apps: so each write runs in a thread of its own while
 * the event loop goes on answering the other applications in time, and the
 * amount goes in chunks; the adapter stops at deadline-ms, at the floor,
 * or when the kernel says it could reclaim no more (EAGAIN).  Nothing is
 * lowered, so nothing is grown back or restored.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "guestd.h"
#include "log.h"

#define RECLAIM_CHUNK	(16 * MIB)

struct cg {
	struct app	*app;
	struct event	*ev_chunk;
	struct event	*ev_done;	/* the writer thread is done */
	int		 pipe[2];	/* its one byte, to the loop */
	pthread_t	 writer;
	int		 writing;	/* a writer thread to join */
	uint64_t	 chunk;		/* what it writes */
	int		 err;		/* and its result */
	uint64_t	 left;		/* still to ask */
	uint64_t	 asked;		/* written so far */
	uint64_t	 start;
	unsigned int	 writes;
	int		 vanished;	/* logged once */
};

static struct cg *
CG(struct app *a)
{
	return a->priv;
}

/* One write of @bytes to memory.reclaim: 0, or the errno. */
static int
reclaim_write(const char *dir, uint64_t bytes)
{
	char path[4200], num[32];
	int fd, err = 0, n;

	snprintf(path, sizeof(path), "%s/memory.reclaim", dir);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return errno;
	n = snprintf(num, sizeof(num), "%" PRIu64, bytes);
	if (write(fd, num, (size_t)n) != n)
		err = errno != 0 ? errno : EIO;
	close(fd);
	return err;
}

static void *
writer_main(void *arg)
{
	struct cg *c = arg;
	char b = 1;

	c->err = reclaim_write(c->app->conf->path, c->chunk);
	while (write(c->pipe[1], &b, 1) == -1 && errno == EINTR)
		;
	return NULL;
}

static void
writer_join(struct cg *c)
{
	char b;

	if (!c->writing)
		return;
	pthread_join(c->writer, NULL);
	c->writing = 0;
	while (read(c->pipe[0], &b, 1) == -1 && errno == EINTR)
		;
}

/* One chunk written (in the thread): account, then the next or the end. */
static void
done_cb(int fd, short what, void *arg)
{
	struct cg *c = arg;
	struct app *a = c->app;
	struct timeval tv = { 0, 0 };
	int err;

	(void)fd;
	(void)what;
	writer_join(c);
	err = c->err;
	c->writes++;
	if (err == 0 || err == EAGAIN) {
		c->asked += c->chunk;
		c->left -= c->chunk;
	}
	if (err == ENOENT || err == ENODEV)
		return app_action_done(a, 0, "cgroup %s vanished",
		    a->conf->path);
	if (err != 0 && err != EAGAIN)
		return app_action_done(a, 0, "%s/memory.reclaim: %s",
		    a->conf->path, strerror(err));
	if (err == EAGAIN || c->left == 0 ||
	    now_ms() >= c->start + a->conf->deadline_ms)
		return app_action_done(a, 1, "memory.reclaim %s in %u writes%s",
		    fmt_size((int64_t)c->asked), c->writes, err == EAGAIN ?
		    " (the kernel found no more to reclaim)" : c->left > 0 ?
		    " (deadline-ms reached)" : "");
	evtimer_add(c->ev_chunk, &tv);
}

static void
chunk_cb(int fd, short what, void *arg)
{
	struct cg *c = arg;
	int err;

	(void)fd;
	(void)what;
	c->chunk = c->left < RECLAIM_CHUNK ? c->left : RECLAIM_CHUNK;
	if ((err = pthread_create(&c->writer, NULL, writer_main, c)) != 0)
		return app_action_done(c->app, 0, "memory.reclaim: thread: %s",
		    strerror(err));
	c->writing = 1;
}

static void
cg_shrink(struct app *a, uint64_t bytes)
{
	struct cg *c = CG(a);
	int64_t cur = cgroup_current(a->conf->path);

	if (cur < 0)
		return app_action_done(a, 0, "cgroup %s: no memory.current "
		    "(vanished, or not a cgroup v2 directory)", a->conf->path);
	if ((uint64_t)cur <= a->conf->floor)
		return app_action_done(a, 1, "memory.current %s is at the "
		    "floor", fmt_size(cur));
	if (bytes > (uint64_t)cur - a->conf->floor)
		bytes = (uint64_t)cur - a->conf->floor;
	app_baseline(a);
	c->left = bytes;
	c->asked = 0;
	c->writes = 0;
	c->start = now_ms();
	chunk_cb(-1, 0, c);
}

static void
cg_nothing(struct app *a, uint64_t bytes)
{
	(void)bytes;
	app_action_done(a, 1, "nothing lowered");
}

static void
cg_restore(struct app *a)
{
	app_action_done(a, 1, "nothing lowered");
}

static int
cg_zero(struct app *a)
{
	(void)a;
	return 0;
}

static pid_t
cg_pid(struct app *a)
{
	(void)a;
	return -1;
}

static void
cg_probe(struct app *a)
{
	struct cg *c = CG(a);

	if (cgroup_current(a->conf->path) >= 0) {
		if (c->vanished)
			log_info("app %s: cgroup %s is back", a->conf->name,
			    a->conf->path);
		c->vanished = 0;
		return;
	}
	if (!c->vanished) {
		log_warnx("app %s: cgroup %s: no memory.current", a->conf->name,
		    a->conf->path);
		app_set_last(a, "cgroup %s: no memory.current", a->conf->path);
	}
	c->vanished = 1;
}

static int
cg_init(struct app *a)
{
	struct cg *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->app = a;
	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		free(c);
		return -1;
	}
	c->ev_chunk = evtimer_new(a->base, chunk_cb, c);
	c->ev_done = event_new(a->base, c->pipe[0], EV_READ | EV_PERSIST,
	    done_cb, c);
	if (c->ev_chunk == NULL || c->ev_done == NULL ||
	    event_add(c->ev_done, NULL) == -1) {
		if (c->ev_chunk != NULL)
			event_free(c->ev_chunk);
		if (c->ev_done != NULL)
			event_free(c->ev_done);
		close(c->pipe[0]);
		close(c->pipe[1]);
		free(c);
		return -1;
	}
	a->priv = c;
	return 0;
}

static void
cg_free(struct app *a)
{
	struct cg *c = CG(a);

	writer_join(c);		/* the write in flight ends by itself */
	event_free(c->ev_chunk);
	event_free(c->ev_done);
	close(c->pipe[0]);
	close(c->pipe[1]);
	free(c);
	a->priv = NULL;
}

const struct adapter_ops cgroup_ops = {
	.name = "cgroup",
	.init = cg_init,
	.free = cg_free,
	.shrink = cg_shrink,
	.grow = cg_nothing,
	.lowered = cg_zero,
	.restore = cg_restore,
	.pid = cg_pid,
	.cannot_free = cg_zero,
	.probe = cg_probe,
};
