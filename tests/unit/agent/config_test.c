// SPDX-License-Identifier: GPL-2.0-only
/*
 * The config parser (host-agent/parse.c): the shipped example, every
 * keyword, and malformed or hostile files, each rejected with the right
 * line number and never accepted half-way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memcoopd.h"
#include "testdata.h"

static char err[512];

static int
parse(struct config *c, const char *text)
{
	config_free(c);
	config_init(c);
	return config_parse_string(c, "t.conf", text, err, sizeof(err));
}

/* @text must fail with an error that contains @want. */
static void
expect_error(const char *text, const char *want)
{
	struct config c;

	config_init(&c);
	CU_ASSERT_EQUAL(config_parse_string(&c, "t.conf", text, err,
	    sizeof(err)), -1);
	if (strstr(err, want) == NULL) {
		fprintf(stderr, "\n  input %.60s...: got \"%s\", want \"%s\"\n",
		    text, err, want);
		CU_FAIL("wrong error");
	}
	config_free(&c);
}

static void
test_example(void)
{
	struct config c;
	char path[1024];

	config_init(&c);
	snprintf(path, sizeof(path), "%s/../../../../host-agent/memcoopd.conf",
	    AGENT_TEST_DATADIR);
	CU_ASSERT_EQUAL_FATAL(config_load(&c, path, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.sock_path, "/run/memcoop/memcoopd.sock");
	CU_ASSERT_EQUAL(c.backend, BACKEND_QMP);
	CU_ASSERT_EQUAL(c.pol.host_floor, 1024 * MIB);
	CU_ASSERT_EQUAL(c.pol.host_comfort, 2048 * MIB);
	CU_ASSERT_EQUAL(c.metrics_port, 9717);
	CU_ASSERT_STRING_EQUAL(c.metrics_addr, "127.0.0.1");
	CU_ASSERT_EQUAL(c.tick_ms, 2000);
	CU_ASSERT_EQUAL(c.ksm_mode, KSMC_UNSET);
	/* the shipped file must not restore on every restart */
	CU_ASSERT_EQUAL(c.shutdown_restore, 0);
	config_free(&c);
}

/* Restart safety: the state directory and the paced restore. */
static void
test_restart_keywords(void)
{
	struct config c;

	config_init(&c);
	CU_ASSERT_EQUAL(c.shutdown_restore, 0);		/* SIGTERM: a restart */
	CU_ASSERT_PTR_NULL(c.state_dir);		/* MEMCOOPD_STATE_DIR */
	CU_ASSERT_EQUAL(c.restore_period_ms, 1000);
	CU_ASSERT_EQUAL(c.restore_timeout_ms, 60000);
	CU_ASSERT_EQUAL_FATAL(parse(&c, "state-dir \"/run/x\"\n"
	    "restore-step 32M\nrestore-period 500ms\nrestore-timeout 2m\n"
	    "restore-on-exit yes\n"), 0);
	CU_ASSERT_STRING_EQUAL(c.state_dir, "/run/x");
	CU_ASSERT_EQUAL(c.restore_step, 32 * MIB);
	CU_ASSERT_EQUAL(c.restore_period_ms, 500);
	CU_ASSERT_EQUAL(c.restore_timeout_ms, 120000);
	CU_ASSERT_EQUAL(c.shutdown_restore, 1);
	config_free(&c);
	expect_error("restore-period 10ms\n", "t.conf:1: restore-period");
	expect_error("restore-timeout 2h\n", "t.conf:1: restore-timeout");
	expect_error("restore-step x\n", "t.conf:1: restore-step");

	/* a qmp-dir that is not there is an error (--check says it) */
	config_init(&c);
	CU_ASSERT_EQUAL_FATAL(parse(&c, "qmp-dir \"/nonexistent/qmp\"\n"), 0);
	CU_ASSERT_EQUAL(config_check_runtime(&c, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/qmp"));
	CU_ASSERT_EQUAL_FATAL(parse(&c, "qmp-dir \"/\"\n"), 0);
	CU_ASSERT_EQUAL(config_check_runtime(&c, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(parse(&c, "qmp-dir \"/dev/null\"\n"), 0);
	CU_ASSERT_EQUAL(config_check_runtime(&c, err, sizeof(err)), -1);
	config_free(&c);
}

static void
test_full(void)
{
	struct config c;
	struct guest_conf *g;
	static const char text[] =
	    "# comment\n"
	    "socket \"/tmp/with space/s.sock\"   # trailing comment\n"
	    "tick 500ms\n"
	    "stats-period 5\n"
	    "backend libvirt\n"
	    "libvirt-uri \"qemu+ssh://h/system\"\n"
	    "ksm auto\n"
	    "auto no\n"
	    "host-floor 2G\n"
	    "host-comfort 3G\n"
	    "host-psi-high 12.5\n"
	    "step-max 64M\n"
	    "step-min 4M\n"
	    "hold 1m\n"
	    "stall-hold 45s\n"
	    "calm-ticks 5\n"
	    "metrics [::1]:9100\n"
	    "\n"
	    "guest web-1 {\n"
	    "\tqmp \"/run/q/web \\\"1\\\".qmp\"\n"
	    "\tmin 512M\n"
	    "\tmax 4GiB\n"
	    "\tweight 250\n"
	    "}\n"
	    "guest db {\n"
	    "  target 1536M\n"
	    "}\n";

	config_init(&c);
	CU_ASSERT_EQUAL_FATAL(parse(&c, text), 0);
	CU_ASSERT_STRING_EQUAL(c.sock_path, "/tmp/with space/s.sock");
	CU_ASSERT_EQUAL(c.tick_ms, 500);
	CU_ASSERT_EQUAL(c.stats_period, 5);
	CU_ASSERT_EQUAL(c.backend, BACKEND_LIBVIRT);
	CU_ASSERT_STRING_EQUAL(c.libvirt_uri, "qemu+ssh://h/system");
	CU_ASSERT_EQUAL(c.ksm_mode, KSMC_AUTO);
	CU_ASSERT_EQUAL(c.auto_enabled, 0);
	CU_ASSERT_EQUAL(c.pol.host_floor, 2048 * MIB);
	CU_ASSERT_DOUBLE_EQUAL(c.pol.host_psi_high, 12.5, 0.001);
	CU_ASSERT_EQUAL(c.pol.step_max, 64 * MIB);
	CU_ASSERT_EQUAL(c.pol.hold_ms, 60000);
	CU_ASSERT_EQUAL(c.pol.stall_hold_ms, 45000);
	CU_ASSERT_EQUAL(c.pol.calm_ticks, 5);
	CU_ASSERT_STRING_EQUAL(c.metrics_addr, "::1");
	CU_ASSERT_EQUAL(c.metrics_port, 9100);
	g = config_find_guest(&c, "web-1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_STRING_EQUAL(g->qmp, "/run/q/web \"1\".qmp");
	CU_ASSERT_EQUAL(g->set.min, 512 * MIB);
	CU_ASSERT_EQUAL(g->set.max, 4096 * MIB);
	CU_ASSERT_EQUAL(g->set.weight, 250);
	CU_ASSERT_EQUAL(g->set.mode, GMODE_AUTO);
	g = config_find_guest(&c, "db");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->set.mode, GMODE_FIXED);
	CU_ASSERT_EQUAL(g->set.target, 1536 * MIB);
	CU_ASSERT_EQUAL(g->set.weight, GUEST_WEIGHT_DEFAULT);
	CU_ASSERT_PTR_NULL(config_find_guest(&c, "nosuch"));
	config_free(&c);
}

static void
test_sizes(void)
{
	uint64_t v;

	CU_ASSERT(parse_size("0", &v) == 0 && v == 0);
	CU_ASSERT(parse_size("4096", &v) == 0 && v == 4096);
	CU_ASSERT(parse_size("4096B", &v) == 0 && v == 4096);
	CU_ASSERT(parse_size("1k", &v) == 0 && v == 1024);
	CU_ASSERT(parse_size("512M", &v) == 0 && v == 512 * MIB);
	CU_ASSERT(parse_size("2GiB", &v) == 0 && v == 2048 * MIB);
	CU_ASSERT(parse_size("3T", &v) == 0 && v == 3ULL << 40);
	CU_ASSERT_EQUAL(parse_size("", &v), -1);
	CU_ASSERT_EQUAL(parse_size("-1", &v), -1);
	CU_ASSERT_EQUAL(parse_size(" 1", &v), -1);
	CU_ASSERT_EQUAL(parse_size("1.5G", &v), -1);
	CU_ASSERT_EQUAL(parse_size("1X", &v), -1);
	CU_ASSERT_EQUAL(parse_size("1MM", &v), -1);
	CU_ASSERT_EQUAL(parse_size("99999999999999999999", &v), -1);
	CU_ASSERT_EQUAL(parse_size("17179869184T", &v), -1);	/* 2^64 */
	CU_ASSERT_EQUAL(parse_size(NULL, &v), -1);
}

static void
test_errors(void)
{
	expect_error("bogus 1\n", "t.conf:1: unknown keyword \"bogus\"");
	expect_error("tick 2s\n\ntick\n", "t.conf:3: tick: expected one value");
	expect_error("tick 10ms\n", "t.conf:1: tick");
	expect_error("tick 2h\n", "t.conf:1: tick");
	expect_error("host-floor lots\n", "t.conf:1: host-floor: invalid size");
	expect_error("socket \"/x\n", "t.conf:1: unterminated string");
	expect_error("socket \"/x\"y\n", "junk after closing quote");
	expect_error("socket \"\"\n", "empty value");
	expect_error("a b c d e f g h i\n", "too many words");
	expect_error("guest a {\n", "t.conf:1: guest a: block not closed");
	expect_error("guest a {\nguest b {\n}\n}\n",
	    "t.conf:2: guest block inside guest block");
	expect_error("}\n", "t.conf:1: \"}\" without a guest block");
	expect_error("guest a\n", "expected: guest NAME {");
	expect_error("guest a/b {\n}\n", "invalid guest name");
	expect_error("guest a {\n}\nguest a {\n}\n", "t.conf:3: guest a defined "
	    "twice");
	expect_error("guest a {\n min 2G\n max 1G\n}\n",
	    "t.conf:4: guest a: min is above max");
	expect_error("guest a {\n mode fixed\n}\n", "mode fixed needs a target");
	expect_error("guest a {\n min 1G\n target 512M\n}\n",
	    "target outside min..max");
	expect_error("guest a {\n weight 0\n}\n", "t.conf:2: weight");
	expect_error("guest a {\n weight 1001\n}\n", "weight");
	expect_error("guest a {\n mode turbo\n}\n",
	    "mode: expected auto, fixed or manual");
	expect_error("guest a {\n color red\n}\n", "unknown guest setting");
	expect_error("guest a {\n} x\n", "junk after");
	expect_error("metrics 10.0.0.1:9100\n", "only a loopback address");
	/* found by tests/fuzz: a name that starts like 127/8 */
	expect_error("metrics 127.A.0.0:9717\n", "only a loopback address");
	expect_error("metrics 127.0.0.1:0\n", "bad port");
	expect_error("metrics 127.0.0.1:70000\n", "bad port");
	expect_error("metrics 9100\n", "ADDRESS:PORT");
	expect_error("backend xen\n", "backend: expected qmp or libvirt");
	expect_error("ksm maybe\n", "ksm: expected off, on, auto or unmanaged");
	expect_error("host-psi-high nan\n", "host-psi-high");
	expect_error("host-psi-high 101\n", "host-psi-high");
	expect_error("step-min 1G\nstep-max 1M\n", "step-min is above step-max");
	expect_error("host-floor 4G\nhost-comfort 1G\n", "host-comfort is below");
	expect_error("socket a\"b\n", "invalid character");
	expect_error("socket a\001b\n", "invalid character");
}

/* Hostile input: huge lines, binary junk, nothing crashes or leaks. */
static void
test_hostile(void)
{
	struct config c;
	char *big;
	size_t i;
	unsigned int seed = 1;

	big = malloc(100000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'a', 99999);
	big[99999] = '\0';
	expect_error(big, "line too long");

	/* 2000 random lines of printable junk: parse must fail cleanly */
	for (i = 0; i < 99999; i++) {
		seed = seed * 1103515245 + 12345;
		big[i] = (char)(seed >> 16) % 96 + 32;
		if ((seed >> 8) % 50 == 0)
			big[i] = '\n';
	}
	config_init(&c);
	CU_ASSERT_EQUAL(config_parse_string(&c, "junk", big, err, sizeof(err)),
	    -1);
	CU_ASSERT(strncmp(err, "junk:", 5) == 0);
	config_free(&c);

	/* many guests: accepted */
	{
		size_t off = 0;

		for (i = 0; i < 500; i++)
			off += (size_t)snprintf(big + off, 100000 - off,
			    "guest g%zu {\n max %zuM\n}\n", i, i + 1);
		config_init(&c);
		CU_ASSERT_EQUAL(config_parse_string(&c, "many", big, err,
		    sizeof(err)), 0);
		CU_ASSERT_PTR_NOT_NULL(config_find_guest(&c, "g499"));
		config_free(&c);
	}
	/* a name exactly at the limit, and one over */
	{
		char name[GUEST_NAME_MAX + 1];

		memset(name, 'n', GUEST_NAME_MAX - 1);
		name[GUEST_NAME_MAX - 1] = '\0';
		snprintf(big, 100000, "guest %s {\n}\n", name);
		config_init(&c);
		CU_ASSERT_EQUAL(config_parse_string(&c, "t", big, err,
		    sizeof(err)), 0);
		config_free(&c);
		memset(name, 'n', GUEST_NAME_MAX);
		name[GUEST_NAME_MAX] = '\0';
		snprintf(big, 100000, "guest %s {\n}\n", name);
		expect_error(big, "invalid guest name");
	}
	free(big);

	/* a file that is not regular, one that does not exist */
	config_init(&c);
	CU_ASSERT_EQUAL(config_load(&c, "/dev/zero", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
	CU_ASSERT_EQUAL(config_load(&c, "/nonexistent/x.conf", err,
	    sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
	config_free(&c);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("config", NULL, NULL);
	CU_add_test(s, "example file", test_example);
	CU_add_test(s, "every keyword", test_full);
	CU_add_test(s, "sizes", test_sizes);
	CU_add_test(s, "errors with line numbers", test_errors);
	CU_add_test(s, "hostile input", test_hostile);
	CU_add_test(s, "restart keywords, qmp-dir check", test_restart_keywords);
	return td_run();
}
