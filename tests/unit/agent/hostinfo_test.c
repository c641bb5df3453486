// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host state parsers (host-agent/hostinfo.c) on real /proc/meminfo and
 * /proc/pressure/memory contents recorded on the test host and in a lab
 * guest, and on malformed ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memcoopd.h"
#include "testdata.h"

static void
test_meminfo_recorded(void)
{
	static const char *files[] = { "host-meminfo-idle.txt",
	    "host-meminfo-thrash.txt", "guest-meminfo.txt",
	    "guest-meminfo-squeezed.txt" };
	struct host_stats hs;
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *t = td_read(files[i]);

		memset(&hs, 0, sizeof(hs));
		CU_ASSERT_EQUAL(hostinfo_parse_meminfo(t, &hs), 0);
		CU_ASSERT(hs.valid_mem);
		CU_ASSERT(hs.mem_total > 64 * MIB);
		CU_ASSERT(hs.mem_available <= hs.mem_total);
		CU_ASSERT(hs.mem_available > 0);
		free(t);
	}
}

static void
test_meminfo_values(void)
{
	struct host_stats hs;

	memset(&hs, 0, sizeof(hs));
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotal:        2000 kB\nMemFree:  10 kB\n"
	    "MemAvailable:    1500 kB\nSwapFree: 7 kB\n", &hs), 0);
	CU_ASSERT_EQUAL(hs.mem_total, 2000 * 1024);
	CU_ASSERT_EQUAL(hs.mem_available, 1500 * 1024);
	CU_ASSERT_EQUAL(hs.swap_free, 7 * 1024);
	/* malformed: missing, absurd, junk */
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo("", &hs), -1);
	CU_ASSERT_FALSE(hs.valid_mem);
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo("MemTotal: 10 kB\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotal: 10 kB\nMemAvailable: 20 kB\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotal: 0 kB\nMemAvailable: 0 kB\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotal: x kB\nMemAvailable: 1 kB\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotal: 18014398509481984 kB\nMemAvailable: 1 kB\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotal: 10 MB\nMemAvailable: 1 kB\n", &hs), -1);
	/* a key that merely starts the same does not count */
	CU_ASSERT_EQUAL(hostinfo_parse_meminfo(
	    "MemTotalX: 10 kB\nMemAvailable: 1 kB\n", &hs), -1);
}

static void
test_psi(void)
{
	struct host_stats hs;
	char *t;

	t = td_read("host-psi-idle.txt");
	memset(&hs, 0, sizeof(hs));
	CU_ASSERT_EQUAL(hostinfo_parse_psi(t, &hs), 0);
	CU_ASSERT(hs.valid_psi);
	free(t);

	t = td_read("guest-psi-squeezed.txt");
	CU_ASSERT_EQUAL(hostinfo_parse_psi(t, &hs), 0);
	CU_ASSERT(hs.psi_some_total >= hs.psi_full_total);
	CU_ASSERT(hs.psi_some_avg10 >= hs.psi_full_avg10);
	free(t);

	CU_ASSERT_EQUAL(hostinfo_parse_psi(
	    "some avg10=12.50 avg60=3.00 avg300=1.00 total=12345\n"
	    "full avg10=2.25 avg60=0.50 avg300=0.10 total=999\n", &hs), 0);
	CU_ASSERT_DOUBLE_EQUAL(hs.psi_some_avg10, 12.5, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(hs.psi_full_avg10, 2.25, 1e-9);
	CU_ASSERT_EQUAL(hs.psi_some_total, 12345);
	CU_ASSERT_EQUAL(hs.psi_full_total, 999);
	/* old kernels: no full line */
	CU_ASSERT_EQUAL(hostinfo_parse_psi(
	    "some avg10=1.00 avg60=0.00 avg300=0.00 total=1\n", &hs), 0);
	CU_ASSERT_DOUBLE_EQUAL(hs.psi_full_avg10, 0.0, 1e-9);
	/* malformed */
	CU_ASSERT_EQUAL(hostinfo_parse_psi("", &hs), -1);
	CU_ASSERT_FALSE(hs.valid_psi);
	CU_ASSERT_EQUAL(hostinfo_parse_psi("some avg10=x\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_psi(
	    "some avg10=150.00 avg60=0.00 avg300=0.00 total=1\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_psi(
	    "some avg10=-1.00 avg60=0.00 avg300=0.00 total=1\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_psi(
	    "some avg10=nan avg60=0.00 avg300=0.00 total=1\n", &hs), -1);
	CU_ASSERT_EQUAL(hostinfo_parse_psi(
	    "some avg10=1.00 avg60=0.00 avg300=0.00 total=1\nfull junk\n",
	    &hs), -1);
}

static void
test_read(void)
{
	struct host_stats hs;

	memset(&hs, 0, sizeof(hs));
	CU_ASSERT_EQUAL(hostinfo_read("/proc", &hs), 0);
	CU_ASSERT(hs.valid_mem);
	CU_ASSERT_EQUAL(hostinfo_read("/nonexistent", &hs), -1);
	CU_ASSERT_FALSE(hs.valid_mem);
	CU_ASSERT_FALSE(hs.valid_psi);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("hostinfo", NULL, NULL);
	CU_add_test(s, "recorded meminfo", test_meminfo_recorded);
	CU_add_test(s, "meminfo values and malformed", test_meminfo_values);
	CU_add_test(s, "psi", test_psi);
	CU_add_test(s, "read /proc", test_read);
	return td_run();
}
