/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Unit tests of host-agent/virt.c's pure helpers: which domain XML has a
 * virtio balloon (real `virsh dumpxml` output of the integration test's
 * domains, and hostile variants), which QEMU command line belongs to a
 * domain, and the conversion of libvirt memory stats (values recorded with
 * `virsh dommemstat` from a running domain) to the daemon's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <libvirt/libvirt.h>

#include "memcoopd.h"

int	virt_xml_has_virtio_balloon(const char *xml);
int	virt_cmdline_is_guest(const char *cmdline, size_t len, const char *name);
void	virt_convert_stats(const virDomainMemoryStatStruct *st, int n,
	    struct guest_stats *gs, uint64_t *actual);

static void
test_xml(void)
{
	/* As libvirt 9.0 writes it back (virsh dumpxml of the test domain). */
	const char *live =
	    "<domain type='qemu' id='1'>\n  <name>mctlv-a</name>\n"
	    "  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
	    "    <memballoon model='virtio'>\n      <stats period='2'/>\n"
	    "      <alias name='balloon0'/>\n      <address type='pci' "
	    "domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>\n"
	    "    </memballoon>\n  </devices>\n</domain>\n";
	const char *none =
	    "<domain type='qemu'><devices><memballoon model='none'/>"
	    "</devices></domain>";

	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(live), 1);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(none), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoon model=\"virtio-transitional\"/>"), 1);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoon model='virtio-non-transitional'>"), 1);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoon model='xen'/>"), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoon model='virtiofoo'/>"), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoonx model='virtio'/>"), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoon xmodel='virtio'/>"), 0);
	/* model= outside the element does not count */
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoon autodeflate='on'/><video model='virtio'/>"), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon("<memballoon model="), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon("<memballoon"), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(""), 0);
	CU_ASSERT_EQUAL(virt_xml_has_virtio_balloon(
	    "<memballoon model=virtio>"), 0);
}

static void
test_cmdline(void)
{
	/* libvirt's: -name guest=NAME,debug-threads=on */
	const char lv[] = "/usr/bin/qemu-system-x86_64\0-name\0"
	    "guest=mctlv-a,debug-threads=on\0-S\0";
	const char plain[] = "qemu\0-name\0vm1\0";
	const char trunc[] = "qemu\0-name";

	CU_ASSERT_EQUAL(virt_cmdline_is_guest(lv, sizeof(lv) - 1, "mctlv-a"), 1);
	CU_ASSERT_EQUAL(virt_cmdline_is_guest(lv, sizeof(lv) - 1, "mctlv"), 0);
	CU_ASSERT_EQUAL(virt_cmdline_is_guest(lv, sizeof(lv) - 1, "mctlv-a,"), 0);
	CU_ASSERT_EQUAL(virt_cmdline_is_guest(plain, sizeof(plain) - 1, "vm1"), 1);
	CU_ASSERT_EQUAL(virt_cmdline_is_guest(plain, sizeof(plain) - 1, "vm"), 0);
	CU_ASSERT_EQUAL(virt_cmdline_is_guest(trunc, sizeof(trunc) - 1, "vm1"), 0);
	CU_ASSERT_EQUAL(virt_cmdline_is_guest("", 0, "vm1"), 0);
	/* not NUL-terminated at the end: no read past @len */
	CU_ASSERT_EQUAL(virt_cmdline_is_guest("qemu\0-name\0vm1", 14, "vm1"), 0);
}

static void
test_stats(void)
{
	/*
	 * `virsh dommemstat mctlv-a` of the integration test's guest, as
	 * recorded (KiB except the fault counts and last_update):
	 * actual 327680, swap_in 0, swap_out 0, major_fault 0,
	 * minor_fault 1107, unused 224696, available 273728, usable 229280,
	 * last_update 1795300172, disk_caches 13744, hugetlb 0 0, rss 433252.
	 */
	virDomainMemoryStatStruct st[] = {
		{ VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON, 327680 },
		{ VIR_DOMAIN_MEMORY_STAT_SWAP_IN, 0 },
		{ VIR_DOMAIN_MEMORY_STAT_SWAP_OUT, 0 },
		{ VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT, 0 },
		{ VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT, 1107 },
		{ VIR_DOMAIN_MEMORY_STAT_UNUSED, 224696 },
		{ VIR_DOMAIN_MEMORY_STAT_AVAILABLE, 273728 },
		{ VIR_DOMAIN_MEMORY_STAT_USABLE, 229280 },
		{ VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE, 1795300172 },
		{ VIR_DOMAIN_MEMORY_STAT_DISK_CACHES, 13744 },
		{ VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGALLOC, 0 },
		{ VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGFAIL, 0 },
		{ VIR_DOMAIN_MEMORY_STAT_RSS, 433252 },
	};
	virDomainMemoryStatStruct only_balloon[] = {
		{ VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON, 327680 },
		{ VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE, 0 },
		{ VIR_DOMAIN_MEMORY_STAT_RSS, 352456 },
	};
	virDomainMemoryStatStruct absurd[] = {
		{ VIR_DOMAIN_MEMORY_STAT_USABLE, ~0ULL },
		{ 999, 5 },
		{ -3, 7 },
	};
	struct guest_stats gs;
	uint64_t actual;

	virt_convert_stats(st, 13, &gs, &actual);
	CU_ASSERT_EQUAL(actual, 327680ULL * 1024);
	CU_ASSERT_EQUAL(gs.avail, 229280ULL * 1024);
	CU_ASSERT_EQUAL(gs.free, 224696ULL * 1024);
	CU_ASSERT_EQUAL(gs.total, 273728ULL * 1024);
	CU_ASSERT_EQUAL(gs.caches, 13744ULL * 1024);
	CU_ASSERT_EQUAL(gs.majflt, 0);
	CU_ASSERT_EQUAL(gs.minflt, 1107);
	CU_ASSERT_EQUAL(gs.guest_time, 1795300172);
	CU_ASSERT_EQUAL(gs.valid, GST_SWAP_IN | GST_SWAP_OUT | GST_MAJFLT |
	    GST_MINFLT | GST_FREE | GST_TOTAL | GST_AVAIL | GST_CACHES);

	/* No stats period yet: only the balloon, no guest stats. */
	virt_convert_stats(only_balloon, 3, &gs, &actual);
	CU_ASSERT_EQUAL(actual, 327680ULL * 1024);
	CU_ASSERT_EQUAL(gs.valid, 0);

	/* Absurd values: no overflow wrap, unknown tags ignored. */
	virt_convert_stats(absurd, 3, &gs, &actual);
	CU_ASSERT_EQUAL(actual, 0);
	CU_ASSERT(gs.avail >= UINT64_MAX / 1024 * 1024 - 1024);
	CU_ASSERT_EQUAL(gs.valid, GST_AVAIL);
	virt_convert_stats(st, 0, &gs, &actual);
	CU_ASSERT_EQUAL(gs.valid, 0);
}

int
main(void)
{
	CU_pSuite s;
	unsigned int fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("virt", NULL, NULL);
	CU_add_test(s, "xml", test_xml);
	CU_add_test(s, "cmdline", test_cmdline);
	CU_add_test(s, "stats", test_stats);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failure_records();	/* suite set-up failures too */
	CU_cleanup_registry();
	return fails > 255 ? 255 : (int)fails;
}
