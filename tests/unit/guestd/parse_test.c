// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest-driver/guestd/parse.c: the installed example, every keyword, the
 * mistakes an administrator makes (each refused with its line), and the
 * credential checks (mode 0600 of the config and of a password-file).
 */
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "guestd.h"
#include "testdata.h"

static int
parse(const char *text, struct gconf *c, char *err, size_t len)
{
	gconf_init(c);
	return gconf_parse_string(c, "t.conf", text, err, len);
}

static void
test_full(void)
{
	static const char text[] =
	    "socket \"/run/g.sock\"\n"
	    "grow-margin 128M\ngrow-step 8M\ngrow-period 500ms\n"
	    "hold-interval 3s\n"
	    "app cache {\n"
	    "\ttype redis\n\taddress \"unix:/run/redis.sock\"\n"
	    "\tpassword \"se cr\\\"et\" # a comment\n\tfloor 32M\n"
	    "\tpriority 3\n\tdeadline-ms 250\n\tmeasure cgroup\n}\n"
	    "app svc {\n\ttype jvm\n\tprocess java\n}\n"
	    "app db {\n\ttype cgroup\n\tpath /sys/fs/cgroup/db.slice\n}\n";
	struct gconf c;
	struct app_conf *a;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(parse(text, &c, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.sock_path, "/run/g.sock");
	CU_ASSERT_EQUAL(c.grow_margin, 128 * MIB);
	CU_ASSERT_EQUAL(c.grow_step, 8 * MIB);
	CU_ASSERT_EQUAL(c.grow_period_ms, 500);
	CU_ASSERT_EQUAL(c.hold_interval_ms, 3000);
	CU_ASSERT(c.has_secret);
	a = TAILQ_FIRST(&c.apps);
	CU_ASSERT_STRING_EQUAL(a->name, "cache");
	CU_ASSERT_EQUAL(a->type, APP_REDIS);
	CU_ASSERT_STRING_EQUAL(a->password, "se cr\"et");
	CU_ASSERT_EQUAL(a->floor, 32 * MIB);
	CU_ASSERT_EQUAL(a->priority, 3);
	CU_ASSERT_EQUAL(a->deadline_ms, 250);
	CU_ASSERT_EQUAL(a->measure, MEASURE_CGROUP);
	a = TAILQ_NEXT(a, entry);
	CU_ASSERT_EQUAL(a->type, APP_JVM);
	CU_ASSERT_STRING_EQUAL(a->process, "java");
	CU_ASSERT_EQUAL(a->measure, MEASURE_RSS);
	CU_ASSERT_EQUAL(a->priority, 8);
	CU_ASSERT_EQUAL(a->deadline_ms, 1000);
	a = TAILQ_NEXT(a, entry);
	CU_ASSERT_EQUAL(a->type, APP_CGROUP);
	CU_ASSERT_EQUAL(a->measure, MEASURE_CGROUP);
	CU_ASSERT_EQUAL(a->floor, 0);
	gconf_free(&c);

	/* defaults */
	CU_ASSERT_EQUAL_FATAL(parse("app r {\ntype redis\n}\n", &c, err,
	    sizeof(err)), 0);
	a = TAILQ_FIRST(&c.apps);
	CU_ASSERT_STRING_EQUAL(a->address, "127.0.0.1:6379");
	CU_ASSERT_EQUAL(a->floor, 64 * MIB);
	CU_ASSERT_EQUAL(c.grow_margin, 256 * MIB);
	CU_ASSERT_EQUAL(c.hold_interval_ms, 1000);
	CU_ASSERT(!c.has_secret);
	gconf_free(&c);
}

static void
test_errors(void)
{
	static const struct { const char *text, *msg; } bad[] = {
		{ "app x {\n}\n", "t.conf:2: app x: no type" },
		{ "app x {\ntype memcached\n}\n",
		    "t.conf:2: type: expected redis, jvm or cgroup" },
		{ "app x {\ntype redis\nmeasure pss\n}\n",
		    "t.conf:3: measure: expected rss or cgroup" },
		{ "app x {\ntype redis\n", "t.conf:1: app x: block not closed" },
		{ "}\n", "t.conf:1: \"}\" without" },
		{ "app x {\ntype redis\napp y {\n", "t.conf:3: app block inside" },
		{ "app x {\ntype redis\n}\napp x {\ntype jvm\npid 1\n}\n",
		    "t.conf:4: app x defined twice" },
		{ "app bad/name {\n", "t.conf:1: invalid app name" },
		{ "app 0123456789012345678901234567890123 {\n", "invalid app name" },
		{ "app x {\ntype jvm\n}\n", "exactly one of" },
		{ "app x {\ntype jvm\npid 3\nprocess java\n}\n", "exactly one of" },
		{ "app x {\ntype jvm\npid 3\nfloor 1M\n}\n", "do not apply" },
		{ "app x {\ntype redis\npath /x\n}\n", "do not apply" },
		{ "app x {\ntype redis\naddress \"nocolon\"\n}\n", "address" },
		{ "app x {\ntype redis\naddress \"unix:rel\"\n}\n", "absolute" },
		{ "app x {\ntype cgroup\n}\n", "needs a path" },
		{ "app x {\ntype cgroup\npath rel\n}\n", "t.conf:3: path" },
		{ "app x {\ntype cgroup\npath /a\nmeasure rss\n}\n", "memory.current" },
		{ "app x {\ntype redis\npriority 16\n}\n", "t.conf:3: priority" },
		{ "app x {\ntype redis\ndeadline-ms 5\n}\n", "deadline-ms" },
		{ "app x {\ntype redis\nfloor lots\n}\n", "invalid size" },
		{ "app x {\ntype redis\nfloor\n}\n", "expected one value" },
		{ "app x {\ntype jvm\npid 0\n}\n", "pid" },
		{ "app x {\ntype jvm\nprocess averyverylongname\n}\n", "15" },
		{ "grow-step 0\n", "must not be 0" },
		{ "grow-period 10ms\n", "grow-period" },
		{ "hold-interval 10ms\n", "hold-interval" },
		{ "socket relative\n", "absolute" },
		{ "frobnicate 1\n", "unknown keyword \"frobnicate\"" },
		{ "app x {\ntype redis\nfrob 1\n}\n", "unknown application" },
		{ "socket \"/x\n", "unterminated string" },
		{ "app x {\ntype redis\npassword \"a\" \"b\"\n}\n", "one value" },
	};
	struct gconf c;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(parse(bad[i].text, &c, err, sizeof(err)), -1);
		if (strstr(err, bad[i].msg) == NULL) {
			fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, err,
			    bad[i].msg);
			CU_FAIL("error message");
		}
		gconf_free(&c);
	}
}

static char tmpdir[64];

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CU_ASSERT_FATAL(fd != -1);
	CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	fchmod(fd, mode);
	close(fd);
	return path;
}

static void
test_secrets(void)
{
	char conf[256], err[512], pwpath[128];
	struct gconf c;

	strcpy(tmpdir, "/tmp/guestd-parse-XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(tmpdir) != NULL);

	/* a password in a world-readable config: refused */
	write_file("a.conf", "app r {\ntype redis\npassword \"pw\"\n}\n", 0644);
	gconf_init(&c);
	snprintf(conf, sizeof(conf), "%s/a.conf", tmpdir);
	CU_ASSERT_EQUAL(gconf_load(&c, conf, err, sizeof(err)), -1);
	CU_ASSERT(strstr(err, "chmod 600") != NULL);
	gconf_free(&c);
	write_file("a.conf", "app r {\ntype redis\npassword \"pw\"\n}\n", 0600);
	CU_ASSERT_EQUAL(gconf_load(&c, conf, err, sizeof(err)), 0);
	gconf_free(&c);
	/* no secret: any mode */
	write_file("a.conf", "app r {\ntype redis\n}\n", 0644);
	CU_ASSERT_EQUAL(gconf_load(&c, conf, err, sizeof(err)), 0);
	gconf_free(&c);

	/* password-file: its mode, its first line */
	snprintf(pwpath, sizeof(pwpath), "%s", write_file("pw", "s3cret\nx\n",
	    0640));
	snprintf(err, sizeof(err), "app r {\ntype redis\npassword-file %s\n}\n",
	    pwpath);
	write_file("a.conf", err, 0644);
	CU_ASSERT_EQUAL(gconf_load(&c, conf, err, sizeof(err)), -1);
	CU_ASSERT(strstr(err, "mode 0640") != NULL);
	gconf_free(&c);
	chmod(pwpath, 0600);
	CU_ASSERT_EQUAL_FATAL(gconf_load(&c, conf, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(TAILQ_FIRST(&c.apps)->password, "s3cret");
	gconf_free(&c);
	write_file("pw", "\n", 0600);
	CU_ASSERT_EQUAL(gconf_load(&c, conf, err, sizeof(err)), -1);
	CU_ASSERT(strstr(err, "empty") != NULL);
	gconf_free(&c);
	/* a NUL byte in the config */
	write_file("a.conf", "grow-step 1M\n", 0600);
	{
		int fd = open(conf, O_WRONLY | O_APPEND);

		CU_ASSERT(write(fd, "\0x\n", 3) == 3);
		close(fd);
	}
	CU_ASSERT_EQUAL(gconf_load(&c, conf, err, sizeof(err)), -1);
	CU_ASSERT(strstr(err, "NUL") != NULL);
	gconf_free(&c);
	CU_ASSERT_EQUAL(gconf_load(&c, "/nonexistent/x.conf", err, sizeof(err)),
	    -1);
	gconf_free(&c);
	unlink(conf);
	unlink(pwpath);
	rmdir(tmpdir);
}

/* The example config installed as /etc/memcoop/guestd.conf parses. */
static void
test_example(void)
{
	struct gconf c;
	char err[256];

	gconf_init(&c);
	CU_ASSERT_EQUAL(gconf_load(&c, GUESTD_EXAMPLE, err, sizeof(err)), 0);
	if (err[0] != '\0')
		fprintf(stderr, "%s\n", err);
	gconf_free(&c);
}

static void
test_equal_dup(void)
{
	struct gconf c;
	struct app_conf *a, *d;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(parse("app r {\ntype redis\npassword x\n}\n"
	    "app s {\ntype redis\npassword y\n}\n", &c, err, sizeof(err)), 0);
	a = TAILQ_FIRST(&c.apps);
	d = app_conf_dup(a);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->password != a->password);
	CU_ASSERT(app_conf_equal(a, d));
	CU_ASSERT(!app_conf_equal(a, TAILQ_NEXT(a, entry)));
	d->floor++;
	CU_ASSERT(!app_conf_equal(a, d));
	app_conf_free(d);
	gconf_free(&c);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("guestd-parse", NULL, NULL);
	CU_add_test(s, "every keyword", test_full);
	CU_add_test(s, "mistakes", test_errors);
	CU_add_test(s, "credentials", test_secrets);
	CU_add_test(s, "the installed example", test_example);
	CU_add_test(s, "equal and dup", test_equal_dup);
	return td_run();
}
