// SPDX-License-Identifier: GPL-2.0-only
/*
 * The QMP backend (host-agent/qmp.c) end to end against a scripted fake
 * QEMU on a real Unix socket: the handshake, balloon discovery, stats,
 * targets, BALLOON_CHANGE events; then hostile replies (junk, wrong
 * types, forged ids, an endless line) that must be ignored or make
 * memcoopd drop the connection, never crash it; then QEMU going away and
 * coming back.  The replies the fake sends are the ones recorded from
 * QEMU 7.2 (data/qmp-session-noguest.txt).
 */
#include <sys/socket.h>
#include <sys/un.h>
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
static char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int lfd = -1;		/* the fake QEMU's listening socket */
static int cfd = -1;		/* its connection to memcoopd */
static char inbuf[1 << 16];
static size_t inlen;

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
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(lfd, 4) == -1)
		return -1;
	return 0;
}

/* Accept memcoopd's connection (it retries with a backoff). */
static int
fake_accept(void)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	uint64_t end = now_ms() + 10000;

	while (now_ms() < end) {
		spin(20);
		if (poll(&p, 1, 0) == 1) {
			cfd = accept(lfd, NULL, NULL);
			fcntl(cfd, F_SETFL, O_NONBLOCK);
			inlen = 0;
			return cfd;
		}
	}
	return -1;
}

static void
fake_send(const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = write(cfd, s + off, len - off);

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
		char *nl = memchr(inbuf, '\n', inlen);

		if (nl != NULL) {
			json_t *j = json_loadb(inbuf, (size_t)(nl - inbuf), 0,
			    NULL);
			size_t used = (size_t)(nl - inbuf) + 1;

			memmove(inbuf, inbuf + used, inlen - used);
			inlen -= used;
			*cmd = json_string_value(json_object_get(j, "execute"));
			*id = json_integer_value(json_object_get(j, "id"));
			return j;
		}
		if (now_ms() > end)
			return NULL;
		spin(5);
		{
			ssize_t n = read(cfd, inbuf + inlen,
			    sizeof(inbuf) - inlen);

			if (n > 0)
				inlen += (size_t)n;
		}
	}
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
		} else if (strcmp(cmd, "qom-list") == 0) {
			reply(id, "[{\"name\": \"type\", \"type\": \"string\"}, "
			    "{\"name\": \"balloon0\", \"type\": "
			    "\"child<virtio-balloon-pci>\"}]");
		} else if (strcmp(cmd, "qom-set") == 0) {
			reply(id, "{}");
		} else if (strcmp(cmd, "query-balloon") == 0) {
			reply(id, "{\"actual\": 536870912}");
		} else if (strcmp(cmd, "qom-get") == 0) {
			/* a new sample each time, as a guest sends them */
			static long long last_update;

			last_update = last_update + 1 > (long long)time(NULL) ?
			    last_update + 1 : (long long)time(NULL);
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

/* Remove the fake QEMU's socket and its directory (at most once). */
static void
remove_dir(void)
{
	if (dir[0] == '\0')
		return;
	unlink(path);
	rmdir(dir);
	dir[0] = '\0';
}

static int
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	struct guest_conf *gc;
	int n;

	snprintf(dir, sizeof(dir), "%s/memcoop-test-qmpconn.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		return -1;
	}
	n = snprintf(path, sizeof(path), "%s/fake.qmp", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;		/* $TMPDIR too long for a socket */
	config_init(&conf);
	gc = calloc(1, sizeof(*gc));
	strcpy(gc->name, "fake");
	gc->qmp = strdup(path);
	gc->set.weight = 100;
	TAILQ_INSERT_TAIL(&conf.guests, gc, entry);
	memset(&md, 0, sizeof(md));
	TAILQ_INIT(&md.guests);
	md.conf = &conf;
	md.backend = &qmp_backend;
	md.base = event_base_new();
	if (fake_listen() == -1)
		return -1;
	return qmp_backend.init(&md, &conf);
}

static int
teardown(void)
{
	qmp_backend.shutdown(&md);
	while (!TAILQ_EMPTY(&md.guests))
		guest_remove(&md, TAILQ_FIRST(&md.guests));
	event_base_free(md.base);
	config_free(&conf);
	if (cfd != -1)
		close(cfd);
	close(lfd);
	remove_dir();
	return 0;
}

static void
handshake(void)
{
	const char *greeting;
	struct guest *g;

	CU_ASSERT_FATAL(fake_accept() != -1);
	greeting = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, "
	    "\"minor\": 2, \"major\": 7}, \"package\": \"Debian\"}, "
	    "\"capabilities\": [\"oob\"]}}\r\n";
	fake_send(greeting);
	/* caps, memsize, qom-list, qom-set, query-balloon */
	CU_ASSERT_EQUAL(serve(5, 0, NULL), 5);
	spin(50);
	g = guest_find(&md, "fake");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->state, GUEST_ONLINE);
	CU_ASSERT_EQUAL(g->maxmem, 512 * MIB);
	CU_ASSERT_EQUAL(g->actual, 512 * MIB);
	CU_ASSERT_EQUAL(g->qemu_pid, getpid());	/* SO_PEERCRED */
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
	close(cfd);
	cfd = -1;
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
	close(cfd);
	cfd = -1;
	handshake();
	g = guest_find(&md, "fake");
	CU_ASSERT_EQUAL(g->set.weight, 777);
	/* QEMU exits: offline again at once */
	close(cfd);
	cfd = -1;
	spin(100);
	CU_ASSERT_EQUAL(g->state, GUEST_OFFLINE);
	CU_ASSERT_EQUAL(g->qemu_pid, 0);
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
	CU_add_test(s, "hostile replies", test_hostile);
	CU_add_test(s, "QEMU exits and comes back", test_reconnect);
	return td_run();
}
