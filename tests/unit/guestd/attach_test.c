// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest-driver/guestd/attach.c: the HotSpot attach protocol's request bytes
 * and replies recorded from OpenJDK 17 (Debian 12) through /tmp/.java_pid,
 * its VM.flags output for G1 and ZGC, and replies a dying or hostile JVM
 * could leave: nothing, no status line, junk.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "attach.h"
#include "testdata.h"

static void
test_request(void)
{
	static const char want[] = "1\0jcmd\0GC.run\0\0";	/* + final NUL */
	char buf[64], tiny[10];

	CU_ASSERT_EQUAL(attach_jcmd_request(buf, sizeof(buf), "GC.run"),
	    (int)sizeof(want));
	CU_ASSERT(memcmp(buf, want, sizeof(want)) == 0);
	CU_ASSERT_EQUAL(attach_jcmd_request(tiny, sizeof(tiny), "GC.run"), -1);
	CU_ASSERT_EQUAL(attach_jcmd_request(buf, sizeof(buf), ""), -1);
}

/* A recorded reply file (binary: may hold anything) with room for a NUL. */
static char *
reply(const char *name, size_t *len)
{
	char *s = td_read(name);

	*len = strlen(s);
	return s;
}

static void
test_replies(void)
{
	char *r, *text;
	size_t len;
	int st;

	r = reply("attach-gc-run.bin", &len);
	CU_ASSERT_EQUAL(attach_parse_reply(r, len, &st, &text), 0);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT(attach_jcmd_quiet_ok(st, text));
	free(r);
	r = reply("attach-unknown.bin", &len);
	CU_ASSERT_EQUAL(attach_parse_reply(r, len, &st, &text), 0);
	CU_ASSERT_EQUAL(st, -1);
	CU_ASSERT(strstr(text, "Unknown diagnostic command") != NULL);
	CU_ASSERT(!attach_jcmd_quiet_ok(st, text));
	free(r);
	r = reply("attach-setflag-g1.bin", &len);
	CU_ASSERT_EQUAL(attach_parse_reply(r, len, &st, &text), 0);
	CU_ASSERT(attach_jcmd_quiet_ok(st, text));
	free(r);
	/* refused with status 0: the words say it */
	r = reply("attach-setflag-bad.bin", &len);
	CU_ASSERT_EQUAL(attach_parse_reply(r, len, &st, &text), 0);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT(!attach_jcmd_quiet_ok(st, text));
	free(r);
}

static void
test_bad_replies(void)
{
	static const char *bad[] = { "", "\n", "x\n", "0x\n", "99999999\n", "-\n",
		" 0\n" };
	char buf[32], *text;
	size_t i;
	int st;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(buf, bad[i]);
		CU_ASSERT_EQUAL(attach_parse_reply(buf, strlen(buf), &st, &text),
		    -1);
	}
	/* a status without the newline: the JVM died after writing it */
	strcpy(buf, "0");
	CU_ASSERT_EQUAL(attach_parse_reply(buf, 1, &st, &text), 0);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_STRING_EQUAL(text, "");
}

static void
test_flags(void)
{
	char *g1 = td_read("vmflags-g1.txt"), *z = td_read("vmflags-zgc.txt");
	uint64_t v;

	CU_ASSERT_EQUAL(attach_gc_kind(g1), GC_G1);
	CU_ASSERT_EQUAL(attach_gc_kind(z), GC_Z);
	CU_ASSERT_EQUAL(attach_gc_kind("-XX:+UseParallelGC"), GC_PARALLEL);
	CU_ASSERT_EQUAL(attach_gc_kind("-XX:+UseSerialGC -XX:X=1"), GC_SERIAL);
	CU_ASSERT_EQUAL(attach_gc_kind("-XX:-UseG1GC -XX:+UseShenandoahGC"),
	    GC_SHENANDOAH);
	/* a flag that only starts like one */
	CU_ASSERT_EQUAL(attach_gc_kind("-XX:+UseG1GCx"), GC_UNKNOWN);
	CU_ASSERT_EQUAL(attach_gc_kind(""), GC_UNKNOWN);
	CU_ASSERT_EQUAL(attach_flag_u64(g1, "MaxHeapSize", &v), 0);
	CU_ASSERT_EQUAL(v, 1073741824);
	CU_ASSERT_EQUAL(attach_flag_u64(z, "SoftMaxHeapSize", &v), 0);
	CU_ASSERT_EQUAL(v, 536870912);
	/* MinHeapSize is not HeapSize */
	CU_ASSERT_EQUAL(attach_flag_u64(g1, "HeapSize", &v), -1);
	CU_ASSERT_EQUAL(attach_flag_u64("-XX:MaxHeapSize=12k", "MaxHeapSize",
	    &v), -1);
	CU_ASSERT_EQUAL(attach_flag_u64("-XX:MaxHeapSize=", "MaxHeapSize",
	    &v), -1);
	CU_ASSERT_EQUAL(attach_flag_u64("-XX:MaxHeapSize=99999999999999999999999",
	    "MaxHeapSize", &v), -1);
	free(g1);
	free(z);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("attach", NULL, NULL);
	CU_add_test(s, "request bytes", test_request);
	CU_add_test(s, "recorded replies", test_replies);
	CU_add_test(s, "bad replies", test_bad_replies);
	CU_add_test(s, "VM.flags", test_flags);
	return td_run();
}
