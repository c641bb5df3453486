// SPDX-License-Identifier: GPL-2.0-only
/*
 * The QMP backend (host-agent/qmp.c) end to end against a scripted fake
 * QEMU on a real Unix socket: the handshake, balloon discovery, stats,
 * targets, BALLOON_CHANGE events; then well-formed replies to commands
 * never sent (or answered already) and hostile replies (junk, wrong
 * types, an endless line) that must be ignored or make memcoopd drop the
 * connection, never crash it; then QEMU going away and coming back.  A
 * second suite: qmp-dir scanning, a QEMU without a balloon device.  The
 * replies the fake sends are the ones recorded from QEMU 7.2
 * (data/qmp-session-noguest.txt).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "memcoopd.h"
#include "testdata.h"

static struct memcoopd md;
static struct config conf;
static char dir[PATH_MAX];	/* $TMPDIR/memcoop-test-qmpconn.XXXXXX */

/* A fake QEMU: a listening socket and its connection to memcoopd. */
struct fake {
	char	 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int	 lfd;		/* listening socket */
	int	 cfd;		/* connection to memcoopd */
	int	 noballoon;	/* a QEMU without a balloon device */
	char	 inbuf[1 << 16];
	size_t	 inlen;
};

static struct fake f_main = { .lfd = -1, .cfd = -1 };
static struct fake *F = &f_main;	/* the one the helpers talk for */

/* Run memcoopd's event loop for @ms milliseconds. */
static void
spin(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end) {
		event_base_loop(md.base, EVLOOP_NONBLOCK);
		usleep(2000);
	}
}

static int
fake_listen(void)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, F->path, sizeof(sun.sun_path));
	unlink(F->path);
	F->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (F->lfd == -1 ||
	    bind(F->lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(F->lfd, 4) == -1)
		return -1;
	return 0;
}

/* Accept memcoopd's connection (it retries with a backoff). */
static int
fake_accept(void)
{
	struct pollfd p = { .fd = F->lfd, .events = POLLIN };
	uint64_t end = now_ms() + 10000;

	while (now_ms() < end) {
		spin(20);
		if (poll(&p, 1, 0) == 1) {
			F->cfd = accept(F->lfd, NULL, NULL);
			fcntl(F->cfd, F_SETFL, O_NONBLOCK);
			F->inlen = 0;
			return F->cfd;
		}
	}
	return -1;
}

static void
fake_send(const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = write(F->cfd, s + off, len - off);

		if (n > 0)
			off += (size_t)n;
		else if (n == -1 && errno != EAGAIN && errno != EINTR)
			return;		/* memcoopd hung up */
		else
			spin(5);	/* let memcoopd read */
	}
}

/*
 * Wait for memcoopd's next command; returns it parsed (caller frees) and
 * the id in *@id.  NULL on timeout.
 */
static json_t *
fake_next(const char **cmd, json_int_t *id)
{
	uint64_t end = now_ms() + 5000;

	for (;;) {
		char *nl = memchr(F->inbuf, '\n', F->inlen);

		if (nl != NULL) {
			json_t *j = json_loadb(F->inbuf, (size_t)(nl - F->inbuf), 0,
			    NULL);
			size_t used = (size_t)(nl - F->inbuf) + 1;

			memmove(F->inbuf, F->inbuf + used, F->inlen - used);
			F->inlen -= used;
			*cmd = json_string_value(json_object_get(j, "execute"));
			*id = json_integer_value(json_object_get(j, "id"));
			return j;
		}
		if (now_ms() > end)
			return NULL;
		spin(5);
		{
			ssize_t n = read(F->cfd, F->inbuf + F->inlen,
			    sizeof(F->inbuf) - F->inlen);

			if (n > 0)
				F->inlen += (size_t)n;
		}
	}
}

/* "last-update" of a new sample, as a guest sends them: newer each time */
static long long
next_update(void)
{
	static long long last;

	last = last + 1 > (long long)time(NULL) ? last + 1 :
	    (long long)time(NULL);
	return last;
}

static void
reply(json_int_t id, const char *ret)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %lld}\r\n", ret,
	    (long long)id);
	fake_send(buf);
}

/* Answer memcoopd like QEMU 7.2 with a 512 MiB guest does. */
static int
serve(int rounds, uint64_t stats_avail, uint64_t *balloon_value)
{
	const char *cmd;
	json_int_t id;
	json_t *j;
	char buf[1024];
	int n = 0;

	while (n < rounds && (j = fake_next(&cmd, &id)) != NULL) {
		n++;
		if (cmd == NULL) {
			json_decref(j);
			return -1;
		}
		if (strcmp(cmd, "qmp_capabilities") == 0) {
			reply(id, "{}");
		} else if (strcmp(cmd, "query-memory-size-summary") == 0) {
			reply(id, "{\"base-memory\": 536870912, "
			    "\"plugged-memory\": 0}");
		} else if (strcmp(cmd, "qom-list") == 0 && F->noballoon) {
			/* what QEMU 7.2 without -device virtio-balloon says */
			reply(id, "[{\"name\": \"type\", \"type\": \"string\"}]");
		} else if (strcmp(cmd, "qom-list") == 0) {
			reply(id, "[{\"name\": \"type\", \"type\": \"string\"}, "
			    "{\"name\": \"balloon0\", \"type\": "
			    "\"child<virtio-balloon-pci>\"}]");
		} else if (strcmp(cmd, "qom-set") == 0) {
			reply(id, "{}");
		} else if (strcmp(cmd, "query-balloon") == 0) {
			reply(id, "{\"actual\": 536870912}");
		} else if (strcmp(cmd, "qom-get") == 0) {
			long long last_update = next_update();

			snprintf(buf, sizeof(buf), "{\"stats\": {"
			    "\"stat-available-memory\": %llu, "
			    "\"stat-total-memory\": 478773248, "
			    "\"stat-free-memory\": 400000000, "
			    "\"stat-swap-in\": 18446744073709551615}, "
			    "\"last-update\": %lld}",
			    (unsigned long long)stats_avail, last_update);
			reply(id, buf);
		} else if (strcmp(cmd, "balloon") == 0) {
			json_t *v = json_object_get(json_object_get(j,
			    "arguments"), "value");

			if (balloon_value != NULL)
				*balloon_value = (uint64_t)json_integer_value(v);
			reply(id, "{}");
		} else {
			snprintf(buf, sizeof(buf), "{\"id\": %lld, \"error\": "
			    "{\"class\": \"CommandNotFound\", \"desc\": "
			    "\"The command %s has not been found\"}}\r\n",
			    (long long)id, cmd);
			fake_send(buf);
		}
		json_decref(j);
	}
	return n;
}

/* Remove the test's directory and what is in it (at most once). */
static void
remove_dir(void)
{
	struct dirent *de;
	char p[PATH_MAX * 2];
	DIR *d;

	if (dir[0] == '\0')
		return;
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
	dir[0] = '\0';
}

/* The next command memcoopd sends must be @want; its id, -1 if not. */
static json_int_t
expect(const char *want)
{
	const char *cmd;
	json_int_t id;
	json_t *j = fake_next(&cmd, &id);
	int ok = j != NULL && cmd != NULL && strcmp(cmd, want) == 0;

	if (!ok)
		fprintf(stderr, "\n  expected %s, got %s\n", want,
		    j == NULL ? "nothing" : cmd != NULL ? cmd : "no command");
	json_decref(j);
	CU_ASSERT(ok);
	return ok ? id : -1;
}

/* $TMPDIR/memcoop-test-qmpconn.XXXXXX and a config with defaults. */
static int
make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/memcoop-test-qmpconn.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		return -1;
	}
	config_init(&conf);
	memset(&md, 0, sizeof(md));
	TAILQ_INIT(&md.guests);
	md.conf = &conf;
	md.backend = &qmp_backend;
	md.base = event_base_new();
	return 0;
}

/* @f's socket path: @name in the test's directory. */
static int
fake_path(struct fake *f, const char *name)
{
	int n = snprintf(f->path, sizeof(f->path), "%s/%s", dir, name);

	return n < 0 || (size_t)n >= sizeof(f->path) ? -1 : 0;
}

static void
fake_close(struct fake *f)
{
	if (f->cfd != -1)
		close(f->cfd);
	if (f->lfd != -1)
		close(f->lfd);
	f->cfd = f->lfd = -1;
}

static int
setup(void)
{
	struct guest_conf *gc;

	if (make_dir() == -1 || fake_path(F, "fake.qmp") == -1)
		return -1;	/* $TMPDIR too long for a socket? */
	gc = calloc(1, sizeof(*gc));
	strcpy(gc->name, "fake");
	gc->qmp = strdup(F->path);
	gc->set.weight = 100;
	TAILQ_INSERT_TAIL(&conf.guests, gc, entry);
	if (fake_listen() == -1)
		return -1;
	return qmp_backend.init(&md, &conf);
}

static struct fake f_vm = { .lfd = -1, .cfd = -1 };	/* vm7.qmp */
static struct fake f_nob = { .lfd = -1, .cfd = -1, .noballoon = 1 };
static struct fake f_dot = { .lfd = -1, .cfd = -1 };	/* .hidden.qmp */
static struct fake f_ctl = { .lfd = -1, .cfd = -1 };	/* our control socket */

static int
teardown(void)
{
	qmp_backend.shutdown(&md);
	while (!TAILQ_EMPTY(&md.guests))
		guest_remove(&md, TAILQ_FIRST(&md.guests));
	event_base_free(md.base);
	config_free(&conf);
	fake_close(&f_main);
	fake_close(&f_vm);
	fake_close(&f_nob);
	fake_close(&f_dot);
	fake_close(&f_ctl);
	F = &f_main;
	remove_dir();
	return 0;
}

static void
greet(void)
{
	fake_send("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, "
	    "\"minor\": 2, \"major\": 7}, \"package\": \"Debian\"}, "
	    "\"capabilities\": [\"oob\"]}}\r\n");
}

/* The fake QEMU F accepts memcoopd and brings guest @name online. */
static void
handshake_as(const char *name)
{
	struct guest *g;

	CU_ASSERT_FATAL(fake_accept() != -1);
	greet();
	/* caps, memsize, qom-list, qom-set, query-balloon */
	CU_ASSERT_EQUAL(serve(5, 0, NULL), 5);
	spin(50);
	g = guest_find(&md, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->state, GUEST_ONLINE);
	CU_ASSERT_EQUAL(g->maxmem, 512 * MIB);
	CU_ASSERT_EQUAL(g->actual, 512 * MIB);
	CU_ASSERT_EQUAL(g->qemu_pid, getpid());	/* SO_PEERCRED */
}

static void
handshake(void)
{
	handshake_as("fake");
}

static void
test_normal(void)
{
	struct guest *g;
	uint64_t v = 0;

	g = guest_find(&md, "fake");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->state, GUEST_OFFLINE);	/* from the config */
	handshake();
	g = guest_find(&md, "fake");

	/* stats */
	CU_ASSERT_EQUAL(qmp_backend.poll_stats(&md, g), 0);
	CU_ASSERT_EQUAL(serve(2, 300 * MIB, NULL), 2);
	spin(50);
	CU_ASSERT(g->stats.valid & GST_AVAIL);
	CU_ASSERT_EQUAL(g->stats.avail, 300 * MIB);
	CU_ASSERT_FALSE(g->stats.valid & GST_SWAP_IN);	/* 2^64-1 */

	/* a target, then the event that follows */
	CU_ASSERT_EQUAL(guest_apply_target(&md, g, 400 * MIB, "test"), 0);
	CU_ASSERT_EQUAL(serve(1, 0, &v), 1);
	CU_ASSERT_EQUAL(v, 400 * MIB);
	fake_send("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
	    "\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": "
	    "419430400}}\r\n");
	spin(50);
	CU_ASSERT_EQUAL(g->actual, 400 * MIB);
	/* outside the limits: clamped before it reaches QEMU */
	CU_ASSERT_EQUAL(guest_apply_target(&md, g, 4096 * MIB, "test"), 0);
	CU_ASSERT_EQUAL(serve(1, 0, &v), 1);
	CU_ASSERT_EQUAL(v, 512 * MIB);
}

static void
test_hostile(void)
{
	static const char *junk[] = {
		"\r\n", "not json\r\n", "[1,2,3]\r\n", "\"string\"\r\n",
		"{\"return\": {}}\r\n",				/* no id */
		"{\"return\": {}, \"id\": \"7\"}\r\n",		/* string id */
		"{\"return\": {}, \"id\": 0}\r\n",		/* kind 0 */
		"{\"return\": {}, \"id\": 255}\r\n",		/* kind 255 */
		"{\"return\": {}, \"id\": -1}\r\n",
		"{\"return\": {}, \"id\": 1e300}\r\n",
		"{\"id\": 262}\r\n",			/* neither return nor error */
		"{\"return\": [], \"id\": 262}\r\n",	/* query-balloon: array */
		"{\"return\": {\"actual\": \"big\"}, \"id\": 518}\r\n",
		"{\"return\": {\"actual\": -5}, \"id\": 518}\r\n",
		"{\"return\": {\"stats\": 5}, \"id\": 519}\r\n",
		"{\"return\": null, \"id\": 517}\r\n",	/* memsize: null */
		"{\"error\": \"x\", \"id\": 520}\r\n",
		"{\"error\": {\"desc\": 5}, \"id\": 520}\r\n",
		"{\"event\": 5}\r\n",
		"{\"event\": \"BALLOON_CHANGE\"}\r\n",
		"{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": "
		    "\"x\"}}\r\n",
		"{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": "
		    "18446744073709551615}}\r\n",
		"{\"a\": 1, \"a\": 2}\r\n",
		"{\"return\": {\"QMP\": 1}, \"id\": 513}\r\n",
	};
	struct guest *g = guest_find(&md, "fake");
	uint64_t actual;
	char *big;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	actual = g->actual;
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		fake_send(junk[i]);
	spin(200);
	/* ignored: still online, nothing changed */
	CU_ASSERT_EQUAL(g->state, GUEST_ONLINE);
	CU_ASSERT_EQUAL(g->actual, actual);
	CU_ASSERT_EQUAL(g->maxmem, 512 * MIB);
	/* still answers */
	CU_ASSERT_EQUAL(qmp_backend.poll_stats(&md, g), 0);
	CU_ASSERT_EQUAL(serve(2, 200 * MIB, NULL), 2);
	spin(50);
	CU_ASSERT_EQUAL(g->stats.avail, 200 * MIB);

	/* an endless line: the connection is dropped, the guest offline */
	big = malloc(2 << 20);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, ' ', (2 << 20) - 1);
	big[(2 << 20) - 1] = '\0';
	big[0] = '{';
	fake_send(big);
	free(big);
	spin(300);
	CU_ASSERT_EQUAL(g->state, GUEST_OFFLINE);
	CU_ASSERT_EQUAL(qmp_backend.poll_stats(&md, g), -1);
	CU_ASSERT_EQUAL(guest_apply_target(&md, g, 300 * MIB, "test"), -1);
	close(F->cfd);
	F->cfd = -1;
}

static void
replyf(json_int_t id, const char *fmt, unsigned long long v)
{
	char buf[512];

	snprintf(buf, sizeof(buf), fmt, v);
	reply(id, buf);
}

/*
 * Well-formed replies that answer nothing memcoopd asked: ids it never
 * sent (right kind, unknown sequence number), an id of a command it did
 * send but with another kind, and a second answer to a command already
 * answered.  Each would change the guest if taken; none may.  Then badly
 * typed answers to the commands memcoopd really sent.
 */
static void
test_forged_ids(void)
{
	struct guest *g = guest_find(&md, "fake");
	json_int_t qb, qg;
	char buf[512];

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL_FATAL(g->state, GUEST_ONLINE);
	g->actual = 512 * MIB;
	/* never sent: query-balloon (kind 6), memory size (5), stats (7) */
	replyf(((json_int_t)0x7abcde << 8) | 6, "{\"actual\": %llu}",
	    100 * MIB);
	replyf(((json_int_t)0x7abcdf << 8) | 5, "{\"base-memory\": %llu, "
	    "\"plugged-memory\": 0}", 1024 * MIB);
	snprintf(buf, sizeof(buf), "{\"stats\": {\"stat-available-memory\": "
	    "1048576, \"stat-total-memory\": 478773248}, \"last-update\": "
	    "%lld}", next_update());
	reply(((json_int_t)0x7abce0 << 8) | 7, buf);
	spin(100);
	CU_ASSERT_EQUAL(g->actual, 512 * MIB);
	CU_ASSERT_EQUAL(g->maxmem, 512 * MIB);
	CU_ASSERT_NOT_EQUAL(g->stats.avail, 1 * MIB);

	/* the real commands, answered once each */
	CU_ASSERT_EQUAL(qmp_backend.poll_stats(&md, g), 0);
	qg = expect("qom-get");
	qb = expect("query-balloon");
	snprintf(buf, sizeof(buf), "{\"stats\": {\"stat-available-memory\": "
	    "262144000, \"stat-total-memory\": 478773248}, \"last-update\": "
	    "%lld}", next_update());
	reply(qg, buf);
	replyf(qb, "{\"actual\": %llu}", 300 * MIB);
	spin(100);
	CU_ASSERT_EQUAL(g->actual, 300 * MIB);
	CU_ASSERT_EQUAL(g->stats.avail, 250 * MIB);
	/* ... and again: answered already */
	replyf(qb, "{\"actual\": %llu}", 100 * MIB);
	snprintf(buf, sizeof(buf), "{\"stats\": {\"stat-available-memory\": "
	    "1048576, \"stat-total-memory\": 478773248}, \"last-update\": "
	    "%lld}", next_update());
	reply(qg, buf);
	/* ... and the sequence number of a real one with another kind */
	replyf((qb & ~(json_int_t)0xff) | 5, "{\"base-memory\": %llu, "
	    "\"plugged-memory\": 0}", 1024 * MIB);
	spin(100);
	CU_ASSERT_EQUAL(g->actual, 300 * MIB);
	CU_ASSERT_EQUAL(g->stats.avail, 250 * MIB);
	CU_ASSERT_EQUAL(g->maxmem, 512 * MIB);

	/* badly typed answers to the commands really sent: ignored too */
	CU_ASSERT_EQUAL(qmp_backend.poll_stats(&md, g), 0);
	qg = expect("qom-get");
	qb = expect("query-balloon");
	reply(qg, "{\"stats\": 5}");
	reply(qb, "{\"actual\": \"big\"}");
	CU_ASSERT_EQUAL(qmp_backend.poll_stats(&md, g), 0);
	qg = expect("qom-get");
	qb = expect("query-balloon");
	reply(qg, "[]");
	reply(qb, "{\"actual\": -5}");
	spin(100);
	CU_ASSERT_EQUAL(g->state, GUEST_ONLINE);
	CU_ASSERT_EQUAL(g->actual, 300 * MIB);
	CU_ASSERT_EQUAL(g->stats.avail, 250 * MIB);
	/* the ignored ones still count as answered: stats are polled again */
	CU_ASSERT_EQUAL(qmp_backend.poll_stats(&md, g), 0);
	CU_ASSERT_EQUAL(serve(2, 200 * MIB, NULL), 2);
	spin(50);
	CU_ASSERT_EQUAL(g->stats.avail, 200 * MIB);
	CU_ASSERT_EQUAL(g->actual, 512 * MIB);
}

/* QEMU goes and comes back: memcoopd reconnects, settings kept. */
static void
test_reconnect(void)
{
	struct guest *g = guest_find(&md, "fake");

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	g->set.weight = 777;
	/* the guest must not be taken for online before the greeting */
	CU_ASSERT_FATAL(fake_accept() != -1);
	spin(100);
	CU_ASSERT_EQUAL(g->state, GUEST_OFFLINE);
	close(F->cfd);
	F->cfd = -1;
	handshake();
	g = guest_find(&md, "fake");
	CU_ASSERT_EQUAL(g->set.weight, 777);
	/* QEMU exits: offline again at once */
	close(F->cfd);
	F->cfd = -1;
	spin(100);
	CU_ASSERT_EQUAL(g->state, GUEST_OFFLINE);
	CU_ASSERT_EQUAL(g->qemu_pid, 0);
}

/* ---- qmp-dir: the sockets in a directory are the guests ---- */

/* Has anybody connected to @f (without being accepted)? */
static int
connected_to(struct fake *f)
{
	struct pollfd p = { .fd = f->lfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static int
setup_dir(void)
{
	int fd;

	if (make_dir() == -1 || fake_path(&f_vm, "vm7.qmp") == -1 ||
	    fake_path(&f_nob, "nob.sock") == -1 ||
	    fake_path(&f_dot, ".hidden.qmp") == -1 ||
	    fake_path(&f_ctl, "memcoopd.sock") == -1)
		return -1;
	conf.qmp_dir = strdup(dir);
	conf.sock_path = strdup(f_ctl.path);
	/* there before memcoopd starts: a QEMU, a dot file, a plain file,
	 * memcoopd's own control socket */
	F = &f_ctl;
	if (fake_listen() == -1)
		return -1;
	F = &f_dot;
	if (fake_listen() == -1)
		return -1;
	F = &f_vm;
	if (fake_listen() == -1)
		return -1;
	{
		char p[PATH_MAX * 2];

		snprintf(p, sizeof(p), "%s/file.qmp", dir);
		if ((fd = open(p, O_WRONLY | O_CREAT, 0600)) == -1)
			return -1;
		close(fd);
	}
	return qmp_backend.init(&md, &conf);
}

static void
test_dir_scan(void)
{
	struct guest *g;

	/* found at start, named after its file */
	F = &f_vm;
	handshake_as("vm7");
	/* a QEMU appearing later, without a balloon device: connected,
	 * probed (qom-list of peripheral and peripheral-anon), then left
	 * alone: no guest, no further commands */
	F = &f_nob;
	CU_ASSERT_FATAL(fake_listen() == 0);
	CU_ASSERT_FATAL(fake_accept() != -1);
	greet();
	/* caps, memsize, qom-list, qom-list */
	CU_ASSERT_EQUAL(serve(4, 0, NULL), 4);
	spin(1200);		/* two rescans */
	CU_ASSERT_PTR_NULL(guest_find(&md, "nob"));
	{
		ssize_t n = read(F->cfd, F->inbuf, sizeof(F->inbuf));

		CU_ASSERT(n == -1 && errno == EAGAIN);	/* nothing sent */
	}
	/* never connected to: the dot file, memcoopd's own socket */
	CU_ASSERT_FALSE(connected_to(&f_dot));
	CU_ASSERT_FALSE(connected_to(&f_ctl));
	CU_ASSERT_PTR_NULL(guest_find(&md, "hidden"));
	CU_ASSERT_PTR_NULL(guest_find(&md, ".hidden"));
	CU_ASSERT_PTR_NULL(guest_find(&md, "memcoopd"));
	CU_ASSERT_PTR_NULL(guest_find(&md, "file"));
	CU_ASSERT_EQUAL(md.nguests, 1);

	/* vm7's socket goes (QEMU exited): offline, kept with its settings */
	g = guest_find(&md, "vm7");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	g->set.weight = 333;
	F = &f_vm;
	unlink(F->path);
	spin(700);
	g = guest_find(&md, "vm7");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->state, GUEST_OFFLINE);
	fake_close(F);
	/* and comes back: online again, settings intact */
	CU_ASSERT_FATAL(fake_listen() == 0);
	handshake_as("vm7");
	CU_ASSERT_EQUAL(guest_find(&md, "vm7")->set.weight, 333);
}

int
main(void)
{
	CU_pSuite s;

	signal(SIGPIPE, SIG_IGN);
	atexit(remove_dir);	/* also when setup() failed: no teardown() */
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("qmp connection", setup, teardown);
	CU_add_test(s, "handshake, stats, targets, events", test_normal);
	CU_add_test(s, "replies to commands never sent", test_forged_ids);
	CU_add_test(s, "hostile replies", test_hostile);
	CU_add_test(s, "QEMU exits and comes back", test_reconnect);
	s = CU_add_suite("qmp-dir", setup_dir, teardown);
	CU_add_test(s, "sockets found, gone and back; no balloon",
	    test_dir_scan);
	return td_run();
}
