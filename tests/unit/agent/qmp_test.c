// SPDX-License-Identifier: GPL-2.0-only
/*
 * The QMP backend's parsers (host-agent/qmp.c) on real QMP replies
 * recorded from QEMU 7.2 (data/qmp-session-noguest.txt: a QEMU whose guest
 * has no balloon driver; data/qmp-guest-stats-series.jsonl: a lab guest
 * through idle, hog, squeeze, release) and on malformed ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "memcoopd.h"
#include "qmp.h"
#include "testdata.h"

/* As qmp.c reads QEMU's replies. */
static json_t *
load(const char *text)
{
	json_error_t e;

	return json_loads(text, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &e);
}

/* The reply after the ">>" line that contains @cmd in a recorded session. */
static json_t *
session_reply(const char *session, const char *cmd)
{
	const char *p = strstr(session, cmd), *r, *end;
	char *line;
	json_t *j;

	if (p == NULL || (r = strstr(p, "<< ")) == NULL)
		return NULL;
	r += 3;
	end = strchr(r, '\n');
	line = strndup(r, end != NULL ? (size_t)(end - r) : strlen(r));
	j = load(line);
	free(line);
	return j;
}

static void
test_noguest_session(void)
{
	char *s = td_read("qmp-session-noguest.txt");
	struct guest_stats st;
	char path[160];
	json_t *j;

	/* qom-list of /machine/peripheral finds balloon0 */
	j = session_reply(s, "\"qom-list\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_EQUAL(qmp_find_balloon(json_object_get(j, "return"),
	    "/machine/peripheral", path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, "/machine/peripheral/balloon0");
	/* too small a buffer: refused, not truncated */
	CU_ASSERT_EQUAL(qmp_find_balloon(json_object_get(j, "return"),
	    "/machine/peripheral", path, 10), -1);
	json_decref(j);

	/* guest-stats with no driver: every stat is 2^64-1, last-update 0 */
	j = session_reply(s, "\"guest-stats\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_EQUAL(qmp_parse_guest_stats(json_object_get(j, "return"),
	    &st, 100000, 1700000000), -1);
	json_decref(j);
	/* and the same with a last-update: still nothing valid */
	j = load("{\"stats\": {\"stat-available-memory\": 18446744073709551615,"
	    " \"stat-total-memory\": 18446744073709551615}, \"last-update\": 5}");
	CU_ASSERT_EQUAL(qmp_parse_guest_stats(j, &st, 100000, 10), -1);
	json_decref(j);
	free(s);
}

static void
test_series(void)
{
	char *s = td_read("qmp-guest-stats-series.jsonl"), *line, *save = NULL;
	unsigned int n = 0, ok = 0;
	uint64_t idle_min = UINT64_MAX, squeezed_min = UINT64_MAX;
	uint64_t prev_guest_time = 0;

	for (line = strtok_r(s, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		json_t *rec = load(line), *ret;
		struct guest_stats st;
		const char *phase;
		double wall;

		CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
		n++;
		ret = json_object_get(json_object_get(rec, "reply"), "return");
		phase = json_string_value(json_object_get(rec, "phase"));
		wall = json_number_value(json_object_get(rec, "wall"));
		if (qmp_parse_guest_stats(ret, &st, 1000000, (time_t)wall)
		    != 0)
			continue;
		ok++;
		CU_ASSERT(st.valid & GST_AVAIL);
		CU_ASSERT(st.valid & GST_TOTAL);
		/* QEMU 7.2 drops tag 10 (the guest sends it): not reported */
		CU_ASSERT(!(st.valid & GST_OOM_KILLS));
		CU_ASSERT(st.avail <= st.total);
		CU_ASSERT(st.free <= st.total);
		CU_ASSERT(st.total <= 512 * MIB);
		/* dated from last-update, which is never in the future */
		CU_ASSERT(st.when <= 1000000);
		CU_ASSERT(st.guest_time >= prev_guest_time);
		prev_guest_time = st.guest_time;
		if (phase != NULL && strcmp(phase, "idle") == 0 &&
		    st.avail < idle_min)
			idle_min = st.avail;
		if (phase != NULL && strcmp(phase, "squeezed") == 0 &&
		    st.avail < squeezed_min)
			squeezed_min = st.avail;
		json_decref(rec);
	}
	CU_ASSERT(n >= 30);
	/* the first sample may predate the guest's first report */
	CU_ASSERT(ok >= n - 3);
	/* the hog and the squeeze are visible in the stats: at least the
	 * 112 MiB of the balloon plus most of the 160 MiB hog */
	CU_ASSERT(idle_min != UINT64_MAX && squeezed_min != UINT64_MAX);
	CU_ASSERT(squeezed_min + 200 * MIB < idle_min);
	free(s);
}

/* QEMU 10's guest-stats after one OOM kill in the guest (recorded). */
static void
test_qemu10_oom_kills(void)
{
	char *s = td_read("qmp-guest-stats-qemu10.json");
	struct guest_stats st;
	json_t *j = load(s);

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_EQUAL(qmp_parse_guest_stats(j, &st, 1000000, 1796121187), 0);
	CU_ASSERT(st.valid & GST_OOM_KILLS);
	CU_ASSERT_EQUAL(st.oom_kills, 1);
	/* the 6.12 stall counters the policy uses */
	CU_ASSERT((st.valid & (GST_ALLOC_STALLS | GST_DIRECT_SCAN |
	    GST_DIRECT_RECLAIM)) == (GST_ALLOC_STALLS | GST_DIRECT_SCAN |
	    GST_DIRECT_RECLAIM));
	CU_ASSERT_EQUAL(st.alloc_stalls, 17);
	CU_ASSERT_EQUAL(st.direct_scan, 0);
	CU_ASSERT_EQUAL(st.total, 347275264);
	json_decref(j);
	free(s);
}

static void
test_malformed(void)
{
	static const char *bad[] = {
		"null", "[]", "{}", "{\"stats\": []}",
		"{\"stats\": {}, \"last-update\": 5}",
		"{\"stats\": {\"stat-available-memory\": 1}}",
		"{\"stats\": {\"stat-available-memory\": 1}, \"last-update\": 0}",
		"{\"stats\": {\"stat-available-memory\": 1}, \"last-update\": -3}",
		"{\"stats\": {\"stat-available-memory\": 1}, \"last-update\": \"5\"}",
		"{\"stats\": {\"stat-available-memory\": -1}, \"last-update\": 5}",
		"{\"stats\": {\"stat-available-memory\": \"1\"}, \"last-update\": 5}",
		"{\"stats\": {\"stat-available-memory\": 1e300}, \"last-update\": 5}",
		"{\"stats\": {\"stat-available-memory\": null}, \"last-update\": 5}",
		"{\"stats\": {\"stat-bogus\": 1}, \"last-update\": 5}",
		"{\"stats\": \"x\", \"last-update\": 5}",
	};
	struct guest_stats st;
	size_t i;
	json_t *j;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(j);
		if (qmp_parse_guest_stats(j, &st, 5000, 10) != -1) {
			fprintf(stderr, "\n  accepted: %s\n", bad[i]);
			CU_FAIL("malformed guest-stats accepted");
		}
		json_decref(j);
	}
	CU_ASSERT_EQUAL(qmp_parse_guest_stats(NULL, &st, 5000, 10), -1);

	/* partial stats: what is there is used, the rest is not valid */
	j = load("{\"stats\": {\"stat-available-memory\": 1048576, "
	    "\"stat-swap-in\": 18446744073709551615}, \"last-update\": 8}");
	CU_ASSERT_EQUAL(qmp_parse_guest_stats(j, &st, 50000, 10), 0);
	CU_ASSERT_EQUAL(st.valid, GST_AVAIL);
	CU_ASSERT_EQUAL(st.avail, 1048576);
	CU_ASSERT_EQUAL(st.guest_time, 8);
	CU_ASSERT_EQUAL(st.when, 48000);	/* 2 s old */
	json_decref(j);
	/* last-update in the future (clock step): dated now */
	j = load("{\"stats\": {\"stat-free-memory\": 4096}, \"last-update\": 99}");
	CU_ASSERT_EQUAL(qmp_parse_guest_stats(j, &st, 50000, 10), 0);
	CU_ASSERT_EQUAL(st.when, 50000);
	json_decref(j);
}

static void
test_find_balloon(void)
{
	char path[160];
	json_t *j;

	j = load("[{\"name\": \"type\", \"type\": \"string\"}, {\"name\": "
	    "\"disk0\", \"type\": \"child<virtio-blk-pci>\"}, {\"name\": "
	    "\"device[3]\", \"type\": \"child<virtio-balloon-pci>\"}]");
	CU_ASSERT_EQUAL(qmp_find_balloon(j, "/machine/peripheral-anon", path,
	    sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, "/machine/peripheral-anon/device[3]");
	json_decref(j);
	j = load("[{\"name\": \"a/../../x\", \"type\": "
	    "\"child<virtio-balloon-pci>\"}, {\"name\": 5, \"type\": "
	    "\"child<virtio-balloon-pci>\"}, {\"type\": "
	    "\"child<virtio-balloon-pci>\"}, 7, null]");
	CU_ASSERT_EQUAL(qmp_find_balloon(j, "/m", path, sizeof(path)), -1);
	json_decref(j);
	j = load("{\"name\": \"b\"}");
	CU_ASSERT_EQUAL(qmp_find_balloon(j, "/m", path, sizeof(path)), -1);
	json_decref(j);
}

static void
test_names(void)
{
	char n[GUEST_NAME_MAX];

	CU_ASSERT(qmp_name_from_file("web1.qmp", n, sizeof(n)) == 0 &&
	    strcmp(n, "web1") == 0);
	CU_ASSERT(qmp_name_from_file("db.sock", n, sizeof(n)) == 0 &&
	    strcmp(n, "db") == 0);
	CU_ASSERT(qmp_name_from_file("x.y.socket", n, sizeof(n)) == 0 &&
	    strcmp(n, "x.y") == 0);
	CU_ASSERT(qmp_name_from_file("plain", n, sizeof(n)) == 0 &&
	    strcmp(n, "plain") == 0);
	CU_ASSERT_EQUAL(qmp_name_from_file(".qmp", n, sizeof(n)), -1);
	CU_ASSERT_EQUAL(qmp_name_from_file(".hidden", n, sizeof(n)), -1);
	CU_ASSERT_EQUAL(qmp_name_from_file("bad name.qmp", n, sizeof(n)), -1);
	CU_ASSERT_EQUAL(qmp_name_from_file("ctl\n.qmp", n, sizeof(n)), -1);
	CU_ASSERT_EQUAL(qmp_name_from_file("waytoolong.qmp", n, 5), -1);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("qmp", NULL, NULL);
	CU_add_test(s, "recorded session, no guest driver", test_noguest_session);
	CU_add_test(s, "recorded guest-stats series", test_series);
	CU_add_test(s, "QEMU 10 guest-stats: OOM kills", test_qemu10_oom_kills);
	CU_add_test(s, "malformed guest-stats", test_malformed);
	CU_add_test(s, "balloon discovery", test_find_balloon);
	CU_add_test(s, "guest names from socket files", test_names);
	return td_run();
}
