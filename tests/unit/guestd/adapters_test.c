// SPDX-License-Identifier: GPL-2.0-only
/*
 * The adapters against fake servers in child processes, through the real
 * event loop and app.c (no /dev/memcoop: requests come from
 * app_shrink_manual(), as from the control socket).  A well-behaved fake
 * Redis (that lies about its pid), one with noeviction, and the failures of
 * issue 15 item 4: a Redis that hangs, refuses, sends junk or closes, a
 * wrong password, no server; a JVM that dies mid-attach or hangs, a pid
 * that is gone or is no JVM (and must not be signalled), a vanished cgroup.
 * Each must end with a clear last action within its deadline-ms.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <CUnit/Basic.h>

#include "guestd.h"
#include "resp.h"
#include "testdata.h"

enum fake {
	F_GOOD, F_NOEVICT, F_HANG, F_REFUSE, F_JUNK, F_CLOSE, F_WRONGPASS,
	J_GOOD, J_RATIOS, J_NOSET, J_DIE, J_HANG,
};

static char		 dir[64];
static struct event_base *base;

static void
record(const char *line, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/record", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd == -1 || write(fd, line, n) < 0 || write(fd, "\n", 1) < 0)
		_exit(3);
	close(fd);
}

static char *
recorded(void)
{
	static char buf[4096];
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/record", dir);
	buf[0] = '\0';
	if ((fd = open(path, O_RDONLY)) == -1)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

static void
say(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) < 0)
		_exit(4);
}

static void
bulk(int fd, const char *text)
{
	char head[32];

	snprintf(head, sizeof(head), "$%zu\r\n", strlen(text));
	say(fd, head);
	say(fd, text);
	say(fd, "\r\n");
}

static void
redis_reply(int fd, enum fake f, const struct resp_val *cmd)
{
	char line[512] = "";
	size_t i, n = 0;
	const char *a0 = cmd->elem[0].str, *a2 = cmd->nelem > 2 ?
	    cmd->elem[2].str : "";

	for (i = 0; i < cmd->nelem && n < sizeof(line) - 40; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s",
		    i ? " " : "", cmd->elem[i].str);
	record(line, n);
	if (f == F_REFUSE)
		return say(fd, "-NOAUTH Authentication required.\r\n");
	if (f == F_JUNK)
		return say(fd, "$99999999999\r\n");
	if (strcmp(a0, "AUTH") == 0)
		return say(fd, f == F_WRONGPASS ? "-WRONGPASS invalid "
		    "username-password pair or user is disabled.\r\n" : "+OK\r\n");
	if (strcmp(a0, "INFO") == 0)
		/* process_id 1: a lie the peer credentials catch */
		return bulk(fd, cmd->nelem == 1 ? "# Server\r\n"
		    "process_id:1\r\n# Memory\r\nused_memory:104857600\r\n" :
		    "# Memory\r\nused_memory:1000\r\n");
	if (strcmp(a0, "CONFIG") == 0 && strcmp(cmd->elem[1].str, "GET") == 0) {
		if (strcmp(a2, "maxmemory") == 0)
			return say(fd, "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
		return say(fd, f == F_NOEVICT ?
		    "*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n" :
		    "*2\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n");
	}
	say(fd, "+OK\r\n");
}

static void
serve_redis(int c, enum fake f)
{
	char buf[8192];
	size_t len = 0;
	struct resp_val v;
	const char *why;
	ssize_t n, used;

	if (f == F_CLOSE)
		return;
	while ((n = read(c, buf + len, sizeof(buf) - len)) > 0) {
		len += (size_t)n;
		while ((used = resp_parse(buf, len, &v, &why)) > 0) {
			if (v.type == RESP_ARRAY && v.nelem > 0 && f != F_HANG)
				redis_reply(c, f, &v);
			else if (f == F_HANG)
				record("(no reply)", 10);
			resp_free(&v);
			memmove(buf, buf + used, len - (size_t)used);
			len -= (size_t)used;
		}
	}
}

static void
serve_jvm(int c, enum fake f)
{
	char buf[512];
	size_t len = 0, i, nul = 0;
	ssize_t n;

	while (nul < 5 && (n = read(c, buf + len, sizeof(buf) - len)) > 0) {
		for (i = len; i < len + (size_t)n; i++)
			nul += buf[i] == '\0';
		len += (size_t)n;
	}
	for (i = 0; i < len; i++)
		if (buf[i] == '\0')
			buf[i] = '|';
	record(buf, len);
	if (f == J_DIE)
		_exit(0);		/* mid-attach: no reply at all */
	if (f == J_HANG) {
		pause();
		return;
	}
	if (strstr(buf, "VM.flags") != NULL && f == J_RATIOS)
		say(c, "0\n-XX:MaxHeapFreeRatio=40 -XX:MaxHeapSize=1073741824 "
		    "-XX:MinHeapFreeRatio=20 -XX:+UseG1GC \n");
	else if (strstr(buf, "VM.flags") != NULL)
		say(c, "0\n-XX:MaxHeapSize=1073741824 -XX:+UseG1GC \n");
	else if (strstr(buf, "VM.set_flag") != NULL && f == J_NOSET)
		say(c, "0\nonly 'writeable' flags can be set\n");
	else
		say(c, "0\n");
}

/* A fake server in a child; returns its pid once it listens. */
static pid_t
fake_start(enum fake f, char *sock, size_t socklen)
{
	struct sockaddr_un sun;
	int p[2], s, c;
	pid_t pid;
	char ok;

	CU_ASSERT_FATAL(pipe(p) == 0);
	if ((pid = fork()) == 0) {
		alarm(20);
		close(p[0]);
		if (f >= J_GOOD)
			snprintf(sock, socklen, "/tmp/.java_pid%d", (int)getpid());
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
		unlink(sock);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		if (s == -1 || bind(s, (struct sockaddr *)&sun, sizeof(sun)) ||
		    listen(s, 4) || write(p[1], "k", 1) != 1)
			_exit(2);
		while ((c = accept(s, NULL, NULL)) != -1) {
			if (f >= J_GOOD)
				serve_jvm(c, f);
			else
				serve_redis(c, f);
			close(c);
		}
		_exit(0);
	}
	close(p[1]);
	CU_ASSERT_FATAL(read(p[0], &ok, 1) == 1);
	close(p[0]);
	if (f >= J_GOOD)
		snprintf(sock, socklen, "/tmp/.java_pid%d", (int)pid);
	return pid;
}

static void
fake_stop(pid_t pid, const char *sock)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(sock);
}

/* Run the loop until the app is idle; the time it took (ms). */
static uint64_t
wait_idle(struct app *a, uint64_t limit_ms)
{
	uint64_t t0 = now_ms();

	while (a->busy != BUSY_NONE && now_ms() < t0 + limit_ms) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return now_ms() - t0;
}

static struct app *
redis_app(const char *sock, const char *password, uint64_t deadline_ms)
{
	static struct app_conf ac;
	static char addr[128];
	struct app *a;

	memset(&ac, 0, sizeof(ac));
	strcpy(ac.name, "fake");
	ac.type = APP_REDIS;
	ac.priority = 8;
	ac.deadline_ms = deadline_ms;
	ac.measure = MEASURE_RSS;
	ac.floor = 64 * MIB;
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	ac.address = addr;
	ac.password = (char *)password;
	a = app_new(base, &ac);
	CU_ASSERT_FATAL(a != NULL);
	return a;
}

/* One shrink against fake @f: the last action must hold @want. */
static void
redis_case(enum fake f, const char *password, const char *want,
    const char *rec)
{
	char sock[128];
	struct app *a;
	uint64_t ms;
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/record", dir);
		unlink(path);
	}
	pid = fake_start(f, sock, sizeof(sock));
	a = redis_app(sock, password, 300);
	CU_ASSERT_EQUAL(app_shrink_manual(a, 100 * MIB), 0);
	/* one request at a time */
	CU_ASSERT_EQUAL(app_shrink_manual(a, MIB), -1);
	ms = wait_idle(a, 5000);
	CU_ASSERT_EQUAL(a->busy, BUSY_NONE);
	/* deadline-ms 300 bounds every wait, with room for a loaded host */
	CU_ASSERT(ms < 2500);
	if (strstr(a->last, want) == NULL ||
	    (rec != NULL && strstr(recorded(), rec) == NULL)) {
		fprintf(stderr, "\nfake %d: last \"%s\" (want \"%s\"), "
		    "recorded \"%s\" (want \"%s\")\n", f, a->last, want,
		    recorded(), rec ? rec : "");
		CU_FAIL("fake redis");
	}
	if (f == F_GOOD) {
		/* the pid measured is the peer's, not the one it claimed */
		CU_ASSERT_EQUAL(a->ops->pid(a), pid);
		CU_ASSERT(a->ops->lowered(a));
		app_restore(a);
		wait_idle(a, 3000);
		CU_ASSERT(strstr(recorded(), "CONFIG SET maxmemory 0") != NULL);
		CU_ASSERT(!a->ops->lowered(a));
	}
	if (f == F_NOEVICT) {
		CU_ASSERT(strstr(recorded(), "CONFIG SET") == NULL);
		CU_ASSERT(a->ops->cannot_free(a));
	}
	app_free(a);
	fake_stop(pid, sock);
}

static void
test_redis_good(void)
{
	/* used 100M, asked 100M, floor 64M: maxmemory goes to the floor */
	redis_case(F_GOOD, NULL, "maxmemory 0.0M -> 64.0M (allkeys-lru)",
	    "CONFIG SET maxmemory 67108864\nMEMORY PURGE\nINFO memory");
}

static void
test_redis_noeviction(void)
{
	redis_case(F_NOEVICT, NULL, "noeviction: Redis cannot evict", NULL);
}

static void
test_redis_bad(void)
{
	redis_case(F_HANG, NULL, "no answer in time", "(no reply)");
	redis_case(F_REFUSE, NULL, "INFO: NOAUTH", NULL);
	redis_case(F_JUNK, NULL, "bulk reply over 1 MiB", NULL);
	/* EOF, or a reset when it closed with our command unread */
	redis_case(F_CLOSE, NULL, "redis unix:", NULL);
	CU_ASSERT(strstr(recorded(), "INFO") == NULL);
	redis_case(F_WRONGPASS, "nope", "AUTH refused: WRONGPASS",
	    "AUTH nope\nINFO");
}

static void
test_redis_absent(void)
{
	struct app *a = redis_app("/nonexistent/redis.sock", NULL, 300);

	CU_ASSERT_EQUAL(app_shrink_manual(a, MIB), 0);
	CU_ASSERT(wait_idle(a, 3000) < 2500);
	CU_ASSERT(strstr(a->last, "connect") != NULL);
	app_free(a);
}

static struct app *
jvm_app(pid_t pid)
{
	static struct app_conf ac;
	static char pidfile[128];
	char num[32];
	int fd;

	snprintf(pidfile, sizeof(pidfile), "%s/jvm.pid", dir);
	fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	snprintf(num, sizeof(num), "%d\n", (int)pid);
	CU_ASSERT_FATAL(fd != -1 && write(fd, num, strlen(num)) > 0);
	close(fd);
	memset(&ac, 0, sizeof(ac));
	strcpy(ac.name, "fakejvm");
	ac.type = APP_JVM;
	ac.priority = 8;
	ac.deadline_ms = 1000;	/* G1's shrink is six exchanges: a loaded host */
	ac.measure = MEASURE_RSS;
	ac.pid_file = pidfile;
	return app_new(base, &ac);
}

static void
jvm_case(enum fake f, const char *want, const char *rec)
{
	char sock[128], path[128];
	struct app *a;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/record", dir);
	unlink(path);
	pid = fake_start(f, sock, sizeof(sock));
	a = jvm_app(pid);
	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT_EQUAL(app_shrink_manual(a, 100 * MIB), 0);
	CU_ASSERT(wait_idle(a, 5000) < 2500);
	CU_ASSERT_EQUAL(a->busy, BUSY_NONE);
	/* G1 is held after its shrink: the low ratios stay until restore */
	if (f == J_GOOD || f == J_RATIOS) {
		CU_ASSERT(a->ops->lowered(a));
		CU_ASSERT(strstr(recorded(), "GC.run|||\n1|jcmd") == NULL);
	}
	if (a->ops->lowered(a)) {
		app_restore(a);
		CU_ASSERT(wait_idle(a, 5000) < 2500);
		CU_ASSERT(!a->ops->lowered(a));
	}
	if (strstr(a->last, want) == NULL || strstr(recorded(), rec) == NULL) {
		fprintf(stderr, "\nfake jvm %d: last \"%s\" (want \"%s\"), "
		    "recorded \"%s\" (want \"%s\")\n", f, a->last, want,
		    recorded(), rec);
		CU_FAIL("fake jvm");
	}
	app_free(a);
	fake_stop(pid, sock);
}

static void
test_jvm(void)
{
	/* G1: the heap free ratios lowered for the GC.run, set back on
	 * restore (held until then) */
	jvm_case(J_GOOD, "restore: heap free ratios set back",
	    "1|jcmd|VM.flags|||\n"
	    "1|jcmd|VM.set_flag MinHeapFreeRatio 0|||\n"
	    "1|jcmd|VM.set_flag MaxHeapFreeRatio 10|||\n"
	    "1|jcmd|GC.run|||\n"
	    "1|jcmd|VM.set_flag MaxHeapFreeRatio 70|||\n"
	    "1|jcmd|VM.set_flag MinHeapFreeRatio 40|||\n");
	/* the JVM's own ratios (VM.flags) are the ones set back */
	jvm_case(J_RATIOS, "restore: heap free ratios set back",
	    "1|jcmd|VM.set_flag MaxHeapFreeRatio 10|||\n"
	    "1|jcmd|GC.run|||\n"
	    "1|jcmd|VM.set_flag MaxHeapFreeRatio 40|||\n"
	    "1|jcmd|VM.set_flag MinHeapFreeRatio 20|||\n");
	/* a refused set_flag: GC.run all the same, nothing to set back */
	jvm_case(J_NOSET, "restore: nothing lowered",
	    "1|jcmd|VM.flags|||\n"
	    "1|jcmd|VM.set_flag MinHeapFreeRatio 0|||\n"
	    "1|jcmd|GC.run|||\n");
	CU_ASSERT(strstr(recorded(), "MaxHeapFreeRatio") == NULL);
	jvm_case(J_DIE, "closed the attach socket without answering",
	    "1|jcmd|VM.flags|||");
	jvm_case(J_HANG, "no answer in time", "1|jcmd|VM.flags|||");
}

/* A pid that is no JVM is never sent SIGQUIT (it would die of it). */
static void
test_jvm_not_jvm(void)
{
	struct app *a;
	pid_t pid;
	int st;

	if ((pid = fork()) == 0) {
		alarm(20);
		pause();
		_exit(0);
	}
	a = jvm_app(pid);
	CU_ASSERT_EQUAL(app_shrink_manual(a, MIB), 0);
	wait_idle(a, 3000);
	CU_ASSERT(strstr(a->last, "does not map libjvm.so") != NULL);
	usleep(50000);
	CU_ASSERT_EQUAL(waitpid(pid, &st, WNOHANG), 0);	/* still alive */
	app_free(a);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* and a pid that is gone */
	a = jvm_app(pid);
	CU_ASSERT_EQUAL(app_shrink_manual(a, MIB), 0);
	wait_idle(a, 3000);
	CU_ASSERT(strstr(a->last, "no JVM found") != NULL);
	app_free(a);
}

static void
test_cgroup_vanished(void)
{
	struct app_conf ac;
	struct app *a;

	memset(&ac, 0, sizeof(ac));
	strcpy(ac.name, "cg");
	ac.type = APP_CGROUP;
	ac.deadline_ms = 300;
	ac.measure = MEASURE_CGROUP;
	ac.path = "/sys/fs/cgroup/memcoop-no-such-cgroup";
	a = app_new(base, &ac);
	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT_EQUAL(app_shrink_manual(a, MIB), 0);
	wait_idle(a, 3000);
	CU_ASSERT(strstr(a->last, "no memory.current") != NULL);
	CU_ASSERT_EQUAL(a->freed_total, 0);
	app_free(a);
}

/* memory.reclaim written in chunks, each by a thread of its own */
static void
test_cgroup_writes(void)
{
	static char path[128];
	char file[160];
	struct app_conf ac;
	struct app *a;
	int fd;

	snprintf(path, sizeof(path), "%s/cg", dir);
	CU_ASSERT_FATAL(mkdir(path, 0700) == 0 || errno == EEXIST);
	snprintf(file, sizeof(file), "%s/memory.current", path);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd != -1 && write(fd, "104857600\n", 10) == 10);
	close(fd);
	snprintf(file, sizeof(file), "%s/memory.reclaim", path);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd != -1);
	close(fd);
	memset(&ac, 0, sizeof(ac));
	strcpy(ac.name, "cg");
	ac.type = APP_CGROUP;
	ac.deadline_ms = 2000;
	ac.measure = MEASURE_CGROUP;
	ac.path = path;
	a = app_new(base, &ac);
	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT_EQUAL(app_shrink_manual(a, 20 * MIB), 0);
	CU_ASSERT(wait_idle(a, 3000) < 2500);
	if (strstr(a->last, "memory.reclaim 20.0M in 2 writes") == NULL) {
		fprintf(stderr, "\ncgroup: last \"%s\"\n", a->last);
		CU_FAIL("cgroup writes");
	}
	app_free(a);
	unlink(file);
	snprintf(file, sizeof(file), "%s/memory.current", path);
	unlink(file);
	rmdir(path);
}

int
main(void)
{
	CU_pSuite s;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	strcpy(dir, "/tmp/guestd-adapters-XXXXXX");
	if (mkdtemp(dir) == NULL || (base = event_base_new()) == NULL)
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("guestd-adapters", NULL, NULL);
	CU_add_test(s, "redis: shrink to the floor, restore", test_redis_good);
	CU_add_test(s, "redis: noeviction", test_redis_noeviction);
	CU_add_test(s, "redis: hang, refuse, junk, close, password",
	    test_redis_bad);
	CU_add_test(s, "redis: no server", test_redis_absent);
	CU_add_test(s, "jvm: good, dies mid-attach, hangs", test_jvm);
	CU_add_test(s, "jvm: not a JVM, gone", test_jvm_not_jvm);
	CU_add_test(s, "cgroup: vanished", test_cgroup_vanished);
	CU_add_test(s, "cgroup: memory.reclaim in chunks", test_cgroup_writes);
	rc = td_run();
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/record", dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/jvm.pid", dir);
		unlink(path);
		rmdir(dir);
	}
	event_base_free(base);
	return rc;
}
