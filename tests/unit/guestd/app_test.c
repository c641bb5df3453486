// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest-driver/guestd/app.c's pure parts: yield learning and the sizing of
 * requests by it, and the measurement parsers fed a recorded
 * /proc/PID/status (OpenJDK 17) and /proc/PID/cgroup lines, good and bad.
 */
#include <sys/wait.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "guestd.h"
#include "testdata.h"

static void
test_yield(void)
{
	struct yield_state y;
	int i;

	yield_init(&y);
	CU_ASSERT_DOUBLE_EQUAL(y.yield, 1.0, 1e-9);
	CU_ASSERT_EQUAL(yield_scale(&y, 100 * MIB), 100 * MIB);
	/* the first answer is taken as it is */
	yield_learn(&y, 100 * MIB, 50 * MIB);
	CU_ASSERT_DOUBLE_EQUAL(y.yield, 0.5, 1e-9);
	CU_ASSERT_EQUAL(yield_scale(&y, 10 * MIB), 20 * MIB);
	/* then an average, weight 1/4 for the newest */
	yield_learn(&y, 100 * MIB, 100 * MIB);
	CU_ASSERT_DOUBLE_EQUAL(y.yield, 0.625, 1e-9);
	/* more than asked counts as 1, nothing lowers it to the minimum */
	yield_learn(&y, 10, 1000);
	CU_ASSERT_DOUBLE_EQUAL(y.yield, 0.71875, 1e-9);
	for (i = 0; i < 50; i++)
		yield_learn(&y, 100 * MIB, 0);
	CU_ASSERT_DOUBLE_EQUAL(y.yield, 0.05, 1e-9);
	/* never more than 4x what the driver asked */
	CU_ASSERT_EQUAL(yield_scale(&y, 10 * MIB), 40 * MIB);
	/* nothing asked teaches nothing */
	yield_learn(&y, 0, 5);
	CU_ASSERT_DOUBLE_EQUAL(y.yield, 0.05, 1e-9);
	/* it recovers when the application gives again */
	for (i = 0; i < 30; i++)
		yield_learn(&y, MIB, MIB);
	CU_ASSERT(y.yield > 0.99);
	CU_ASSERT_EQUAL(yield_scale(&y, 0), 0);
}

static void
test_rss(void)
{
	char *st = td_read("proc-status-java.txt");

	CU_ASSERT_EQUAL(parse_status_rss(st), 47860LL * 1024);
	free(st);
	CU_ASSERT_EQUAL(parse_status_rss("Name:\tx\nVmRSS:\t  12 kB\n"),
	    12 * 1024);
	CU_ASSERT_EQUAL(parse_status_rss("Name:\tx\n"), -1);
	CU_ASSERT_EQUAL(parse_status_rss("VmRSS:\t-12 kB\n"), -1);
	CU_ASSERT_EQUAL(parse_status_rss("VmRSS:\t12 MB\n"), -1);
	CU_ASSERT_EQUAL(parse_status_rss("VmRSS:\t99999999999999999999 kB\n"), -1);
	CU_ASSERT_EQUAL(parse_status_rss("XVmRSS:\t12 kB\n"), -1);
	CU_ASSERT_EQUAL(parse_status_rss(""), -1);
	/* our own process has a resident set */
	CU_ASSERT(proc_rss(getpid()) > 0);
	CU_ASSERT_EQUAL(proc_rss(-1), -1);
	CU_ASSERT_EQUAL(cgroup_current("/nonexistent"), -1);
}

static void
test_gone(void)
{
	pid_t child;
	int st;

	CU_ASSERT_EQUAL(proc_gone(getpid()), 0);
	CU_ASSERT_EQUAL(proc_gone(-1), 1);
	CU_ASSERT_EQUAL(proc_gone(0), 1);
	if ((child = fork()) == 0)
		_exit(0);
	CU_ASSERT_FATAL(child > 0);
	/* exited, not reaped yet: a zombie, which kill(pid, 0) still finds */
	for (int i = 0; i < 500 && !proc_gone(child); i++)
		usleep(10000);
	CU_ASSERT(kill(child, 0) == 0);
	CU_ASSERT_EQUAL(proc_gone(child), 1);
	CU_ASSERT_EQUAL(waitpid(child, &st, 0), child);
	CU_ASSERT_EQUAL(proc_gone(child), 1);
}

static void
test_answer_lead(void)
{
	/* a quarter of the time given, 10..250 ms */
	CU_ASSERT_EQUAL(answer_lead(1000), 250);
	CU_ASSERT_EQUAL(answer_lead(200), 50);
	CU_ASSERT_EQUAL(answer_lead(8000), 250);
	CU_ASSERT_EQUAL(answer_lead(20), 10);
	CU_ASSERT_EQUAL(answer_lead(0), 10);
	CU_ASSERT_EQUAL(answer_lead(UINT64_MAX), 250);
}

static void
test_cgroup_line(void)
{
	char buf[256];

	CU_ASSERT_EQUAL(parse_cgroup_line("0::/system.slice/redis.service\n",
	    buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/sys/fs/cgroup/system.slice/redis.service");
	/* v1 hierarchies before the v2 line */
	CU_ASSERT_EQUAL(parse_cgroup_line("12:memory:/x\n0::/\n", buf,
	    sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/sys/fs/cgroup/");
	CU_ASSERT_EQUAL(parse_cgroup_line("12:memory:/x\n", buf, sizeof(buf)),
	    -1);
	CU_ASSERT_EQUAL(parse_cgroup_line("0::\n", buf, sizeof(buf)), -1);
	CU_ASSERT_EQUAL(parse_cgroup_line("0::/../../etc\n", buf, sizeof(buf)),
	    -1);
	CU_ASSERT_EQUAL(parse_cgroup_line("0::/a\n", buf, 10), -1);
	CU_ASSERT_EQUAL(parse_cgroup_line("", buf, sizeof(buf)), -1);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("guestd-app", NULL, NULL);
	CU_add_test(s, "yield learning", test_yield);
	CU_add_test(s, "RSS", test_rss);
	CU_add_test(s, "process gone or a zombie", test_gone);
	CU_add_test(s, "answer lead before the deadline", test_answer_lead);
	CU_add_test(s, "cgroup of a process", test_cgroup_line);
	return td_run();
}
