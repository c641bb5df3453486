// SPDX-License-Identifier: GPL-2.0-only
/*
 * The control protocol: framing (shared/ctlmsg.c) and request handling
 * (host-agent/control.c, control_dispatch()) with malformed and hostile
 * input.  The daemon state is a real struct memcoopd with two guests on a
 * recording backend, so that a SET that passes the checks is seen to
 * reach the backend and one that fails them is seen not to.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "control.h"
#include "memcoopd.h"
#include "memcoopd_ctl.h"
#include "testdata.h"

static struct memcoopd md;
static struct config conf;
static uint64_t last_set;
static int nset;

static int
fake_set_target(struct memcoopd *m, struct guest *g, uint64_t bytes)
{
	(void)m;
	(void)g;
	last_set = bytes;
	nset++;
	return 0;
}

static const struct backend_ops fake_backend = {
	.name = "fake",
	.set_target = fake_set_target,
};

static int
setup(void)
{
	struct guest *g;

	config_init(&conf);
	memset(&md, 0, sizeof(md));
	TAILQ_INIT(&md.guests);
	md.conf = &conf;
	md.backend = &fake_backend;
	g = guest_add(&md, "vm1", &fake_backend, NULL);
	g->maxmem = 2048 * MIB;
	g->actual = 2048 * MIB;
	g = guest_add(&md, "vm2", &fake_backend, NULL);
	g->maxmem = 1024 * MIB;
	g->actual = 1024 * MIB;
	guest_offline(&md, g);
	return 0;
}

static int
teardown(void)
{
	while (!TAILQ_EMPTY(&md.guests))
		guest_remove(&md, TAILQ_FIRST(&md.guests));
	config_free(&conf);
	return 0;
}

/* ---- framing ---- */

static size_t
frame(unsigned char *buf, uint32_t type, const char *payload)
{
	struct mcctl_hdr h;
	size_t len = strlen(payload);

	CU_ASSERT_EQUAL_FATAL(mcctl_hdr_init(&h, type, 7, len), 0);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	return sizeof(h) + len;
}

static void
test_frame_ok(void)
{
	unsigned char buf[256];
	struct mcctl_hdr h;
	const char *p, *err;
	size_t n = frame(buf, MCCTL_STATUS, "{}"), i;

	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), (ssize_t)n);
	CU_ASSERT_EQUAL(h.type, MCCTL_STATUS);
	CU_ASSERT_EQUAL(h.seq, 7);
	CU_ASSERT_EQUAL(h.len, 2);
	CU_ASSERT(memcmp(p, "{}", 2) == 0);
	/* every prefix: need more, never an error, never a message */
	for (i = 0; i < n; i++)
		CU_ASSERT_EQUAL(mcctl_parse(buf, i, &h, &p, &err), 0);
	/* two messages back to back: the first is found alone */
	n += frame(buf + n, MCCTL_HELLO, "{\"version\":1}");
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err),
	    (ssize_t)(sizeof(h) + 2));
}

static void
test_frame_bad(void)
{
	unsigned char buf[256];
	struct mcctl_hdr h, *hp = (struct mcctl_hdr *)buf;
	const char *p, *err;
	size_t n;

	n = frame(buf, MCCTL_STATUS, "{}");
	hp->magic ^= 1;
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), -1);
	CU_ASSERT_STRING_EQUAL(err, "bad magic");
	/* a bad magic is caught from its first 4 bytes */
	CU_ASSERT_EQUAL(mcctl_parse(buf, 4, &h, &p, &err), -1);

	n = frame(buf, MCCTL_STATUS, "{}");
	hp->version = 2;
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), -1);
	CU_ASSERT_STRING_EQUAL(err, "unsupported protocol version");

	n = frame(buf, MCCTL_STATUS, "{}");
	hp->type = 0;
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), -1);
	hp->type = 0x7777;
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), -1);
	CU_ASSERT_STRING_EQUAL(err, "unknown message type");

	n = frame(buf, MCCTL_STATUS, "{}");
	hp->len = MCCTL_MAX_PAYLOAD + 1;
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), -1);
	CU_ASSERT_STRING_EQUAL(err, "payload too long");
	hp->len = 0xffffffffU;
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), -1);
	/* length at the limit: waits for the bytes, no error */
	hp->len = MCCTL_MAX_PAYLOAD;
	CU_ASSERT_EQUAL(mcctl_parse(buf, n, &h, &p, &err), 0);

	n = frame(buf, MCCTL_SET, "{\"a\0\":1}");
	buf[sizeof(h) + 3] = '\0';
	hp->len = 8;
	CU_ASSERT_EQUAL(mcctl_parse(buf, sizeof(h) + 8, &h, &p, &err), -1);
	CU_ASSERT_STRING_EQUAL(err, "NUL byte in payload");

	CU_ASSERT_EQUAL(mcctl_hdr_init(&h, MCCTL_STATUS, 1,
	    MCCTL_MAX_PAYLOAD + 1), -1);
	CU_ASSERT_EQUAL(mcctl_hdr_init(&h, 0, 1, 0), -1);
	CU_ASSERT(mcctl_is_read_only(MCCTL_STATUS));
	CU_ASSERT(mcctl_is_read_only(MCCTL_WATCH));
	CU_ASSERT_FALSE(mcctl_is_read_only(MCCTL_SET));
	CU_ASSERT_FALSE(mcctl_is_read_only(MCCTL_KSM_SET));
	CU_ASSERT_FALSE(mcctl_is_request(MCCTL_R_OK));
}

/* Random bytes never crash the framing and never yield a bad header. */
static void
test_frame_fuzz(void)
{
	unsigned char buf[64];
	struct mcctl_hdr h;
	const char *p, *err;
	unsigned int seed = 42, i, j, found = 0;

	for (i = 0; i < 200000; i++) {
		ssize_t n;

		for (j = 0; j < sizeof(buf); j++) {
			seed = seed * 1103515245 + 12345;
			buf[j] = (unsigned char)(seed >> 16);
		}
		if (i % 2 == 0)		/* make some headers nearly valid */
			frame(buf, (i / 2) % 2 ? MCCTL_STATUS : MCCTL_SET, "");
		if (i % 4 == 0)
			((struct mcctl_hdr *)buf)->len = (seed >> 8) % 64;
		n = mcctl_parse(buf, sizeof(buf), &h, &p, &err);
		if (n > 0) {
			found++;
			CU_ASSERT(h.magic == MCCTL_MAGIC);
			CU_ASSERT(h.len <= sizeof(buf) - sizeof(h));
			CU_ASSERT((size_t)n == sizeof(h) + h.len);
			CU_ASSERT(memchr(p, 0, h.len) == NULL);
		} else if (n < 0) {
			CU_ASSERT_PTR_NOT_NULL(err);
		}
	}
	CU_ASSERT(found > 0);
}

/* ---- dispatch ---- */

static int
dispatch(int root, uint32_t type, const char *payload, json_t **reply)
{
	return control_dispatch(&md, root, type, payload, strlen(payload),
	    reply);
}

static int
error_code(json_t *r)
{
	return (int)json_integer_value(json_object_get(r, "code"));
}

static void
test_hello(void)
{
	json_t *r;

	CU_ASSERT_EQUAL(dispatch(0, MCCTL_HELLO, "{\"version\":1}", &r),
	    MCCTL_R_OK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "version")), 1);
	CU_ASSERT(json_is_false(json_object_get(r, "can_change")));
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_HELLO, "{\"version\":2}", &r),
	    MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), EPROTO);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_HELLO, "{\"version\":\"1\"}", &r),
	    MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_HELLO, "{}", &r), MCCTL_R_ERROR);
	json_decref(r);
}

static void
test_status(void)
{
	json_t *r, *gs;

	CU_ASSERT_EQUAL_FATAL(dispatch(0, MCCTL_STATUS, "{}", &r), MCCTL_R_OK);
	gs = json_object_get(r, "guests");
	CU_ASSERT_EQUAL(json_array_size(gs), 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
	    json_array_get(gs, 0), "name")), "vm1");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
	    json_array_get(gs, 1), "state")), "offline");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(
	    json_array_get(gs, 0), "limit_hi")), (json_int_t)(2048 * MIB));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(r, "host"));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(r, "ksm"));
	json_decref(r);

	CU_ASSERT_EQUAL(dispatch(0, MCCTL_STATUS, "{\"guest\":\"vm2\"}", &r),
	    MCCTL_R_OK);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(r, "guests")), 1);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_STATUS, "{\"guest\":\"vm9\"}", &r),
	    MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), ENOENT);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_STATUS, "{\"guest\":7}", &r),
	    MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), EINVAL);
	json_decref(r);
}

static void
test_set(void)
{
	struct guest *g = guest_find(&md, "vm1");
	json_t *r;

	nset = 0;
	/* not root: refused, nothing changes */
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"target\",\"value\":\"1G\"}", &r), MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), EPERM);
	json_decref(r);
	CU_ASSERT_EQUAL(nset, 0);
	CU_ASSERT_EQUAL(g->set.mode, GMODE_AUTO);

	/* root: a target within limits reaches the backend */
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"target\",\"value\":\"1G\"}", &r), MCCTL_R_OK);
	json_decref(r);
	CU_ASSERT_EQUAL(nset, 1);
	CU_ASSERT_EQUAL(last_set, 1024 * MIB);
	CU_ASSERT_EQUAL(g->target, 1024 * MIB);
	CU_ASSERT_EQUAL(g->set.mode, GMODE_FIXED);

	/* above what the guest has, below the minimum: refused */
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"target\",\"value\":\"3G\"}", &r), MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), ERANGE);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"target\",\"value\":\"1M\"}", &r), MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(nset, 1);
	CU_ASSERT_EQUAL(g->target, 1024 * MIB);

	/* min above max; max below the fixed target */
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"max\",\"value\":\"512M\"}", &r), MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), ERANGE);
	json_decref(r);
	CU_ASSERT_EQUAL(g->set.max, 0);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"min\",\"value\":\"512M\"}", &r), MCCTL_R_OK);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"max\",\"value\":\"256M\"}", &r), MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"min\",\"value\":\"4G\"}", &r), MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(g->set.min, 512 * MIB);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"min\",\"value\":\"none\"}", &r), MCCTL_R_OK);
	json_decref(r);
	CU_ASSERT_EQUAL(g->set.min, 0);

	/* weight and mode */
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"weight\",\"value\":\"300\"}", &r), MCCTL_R_OK);
	json_decref(r);
	CU_ASSERT_EQUAL(g->set.weight, 300);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"weight\",\"value\":\"0\"}", &r), MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"weight\",\"value\":\"-5\"}", &r), MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"weight\",\"value\":\"99999999999999999999999\"}", &r),
	    MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(g->set.weight, 300);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"mode\",\"value\":\"auto\"}", &r), MCCTL_R_OK);
	json_decref(r);
	CU_ASSERT_EQUAL(g->set.mode, GMODE_AUTO);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm2\",\"key\":"
	    "\"mode\",\"value\":\"fixed\"}", &r), MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm1\",\"key\":"
	    "\"mode\",\"value\":\"ludicrous\"}", &r), MCCTL_R_ERROR);
	json_decref(r);

	/* an offline guest keeps the setting, nothing is sent */
	nset = 0;
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, "{\"guest\":\"vm2\",\"key\":"
	    "\"target\",\"value\":\"512M\"}", &r), MCCTL_R_OK);
	json_decref(r);
	CU_ASSERT_EQUAL(nset, 0);
	CU_ASSERT_EQUAL(guest_find(&md, "vm2")->set.target, 512 * MIB);
}

/* Hostile payloads: wrong types, junk, deep nesting, huge strings. */
static void
test_hostile(void)
{
	static const char *bad[] = {
		"", "{", "[]", "null", "1", "\"x\"", "{\"guest\":null}",
		"{\"guest\":\"vm1\",\"key\":1,\"value\":\"1G\"}",
		"{\"guest\":\"vm1\",\"key\":\"target\",\"value\":1073741824}",
		"{\"guest\":\"vm1\",\"key\":\"target\",\"value\":\"\"}",
		"{\"guest\":\"vm1\",\"key\":\"target\",\"value\":\"-1G\"}",
		"{\"guest\":\"vm1\",\"key\":\"target\",\"value\":\"0\"}",
		"{\"guest\":\"vm1\",\"key\":\"target\",\"value\":\"1e9\"}",
		"{\"guest\":\"vm1\",\"key\":\"target\",\"value\":\"99999999999T\"}",
		"{\"guest\":\"vm1\",\"key\":\"color\",\"value\":\"red\"}",
		"{\"guest\":\"vm1\",\"guest\":\"vm2\",\"key\":\"weight\","
		    "\"value\":\"5\"}",
		"{\"guest\":[\"vm1\"],\"key\":\"weight\",\"value\":\"5\"}",
		"{\"guest\":\"vm1\\u0000x\",\"key\":\"weight\",\"value\":\"5\"}",
		"{\"guest\":\"\\ud800\",\"key\":\"weight\",\"value\":\"5\"}",
	};
	struct guest *g = guest_find(&md, "vm1");
	struct guest_settings before = g->set;
	json_t *r;
	char *deep, *huge;
	size_t i;

	nset = 0;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(dispatch(1, MCCTL_SET, bad[i], &r),
		    MCCTL_R_ERROR);
		CU_ASSERT_PTR_NOT_NULL(json_object_get(r, "error"));
		json_decref(r);
	}
	CU_ASSERT_EQUAL(nset, 0);
	CU_ASSERT(memcmp(&before, &g->set, sizeof(before)) == 0);

	/* 100000 nested arrays: jansson's depth limit, a clean error */
	deep = malloc(200001);
	CU_ASSERT_PTR_NOT_NULL_FATAL(deep);
	memset(deep, '[', 100000);
	memset(deep + 100000, ']', 100000);
	deep[200000] = '\0';
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_STATUS, deep, &r), MCCTL_R_ERROR);
	json_decref(r);
	free(deep);

	/* a 200 kB guest name: not found, and the error stays short */
	huge = malloc(200100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
	memset(huge, 'A', 200100);
	memcpy(huge, "{\"guest\":\"", 10);
	memcpy(huge + 200010, "\"}", 3);
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_STATUS, huge, &r), MCCTL_R_ERROR);
	CU_ASSERT(strlen(json_string_value(json_object_get(r, "error"))) < 200);
	json_decref(r);
	free(huge);

	/* replies are not requests; KSM changes need root */
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_R_OK, "{}", &r), MCCTL_R_ERROR);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_KSM_SET, "{\"mode\":\"on\"}", &r),
	    MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), EPERM);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_KSM_SET, "{\"mode\":\"warp\"}", &r),
	    MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), EINVAL);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(1, MCCTL_KSM_SET, "{\"mode\":1}", &r),
	    MCCTL_R_ERROR);
	json_decref(r);
}

/*
 * EXPLAIN and PREVIEW (set --dry-run): read-only, so a non-root client
 * may ask; PREVIEW shows the policy's next target for the setting and
 * changes nothing; both see the stall hold.
 */
static void
test_explain_preview(void)
{
	struct guest *g = guest_add(&md, "vm3", &fake_backend, NULL);
	uint64_t now = now_ms();
	json_t *r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	g->maxmem = g->actual = g->target = 2048 * MIB;
	g->stats.valid = g->prev.valid = GST_AVAIL | GST_TOTAL;
	g->stats.avail = g->prev.avail = 1500 * MIB;
	g->stats.total = g->prev.total = 2048 * MIB;
	g->stats.when = now;
	g->prev.when = now - 2000;
	g->pst.calm_ticks = 10;
	md.host.valid_mem = 1;
	md.host.mem_available = 300 * MIB;	/* short: vm3 would give */
	nset = 0;

	/* a max below the target: the next tick clamps to it */
	CU_ASSERT_EQUAL_FATAL(dispatch(0, MCCTL_PREVIEW, "{\"guest\":\"vm3\","
	    "\"key\":\"max\",\"value\":\"1G\"}", &r), MCCTL_R_OK);
	CU_ASSERT(json_is_true(json_object_get(r, "changed")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "target")),
	    (json_int_t)(1024 * MIB));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "target_now")),
	    (json_int_t)(2048 * MIB));
	json_decref(r);
	/* nothing was applied */
	CU_ASSERT_EQUAL(g->set.max, 0);
	CU_ASSERT_EQUAL(g->target, 2048 * MIB);
	CU_ASSERT_EQUAL(g->pst.calm_ticks, 10);
	CU_ASSERT_EQUAL(nset, 0);

	/* a weight: the short host takes from it, at most step-max */
	CU_ASSERT_EQUAL_FATAL(dispatch(0, MCCTL_PREVIEW, "{\"guest\":\"vm3\","
	    "\"key\":\"weight\",\"value\":\"50\"}", &r), MCCTL_R_OK);
	CU_ASSERT(json_is_true(json_object_get(r, "changed")));
	CU_ASSERT(json_integer_value(json_object_get(r, "target")) <
	    (json_int_t)(2048 * MIB));
	CU_ASSERT(json_integer_value(json_object_get(r, "target")) >=
	    (json_int_t)(2048 * MIB - conf.pol.step_max));
	json_decref(r);
	CU_ASSERT_EQUAL(g->set.weight, GUEST_WEIGHT_DEFAULT);

	/* within stall-hold it would not: the preview and explain say why */
	g->pst.stall_until = now + 10000;
	CU_ASSERT_EQUAL_FATAL(dispatch(0, MCCTL_PREVIEW, "{\"guest\":\"vm3\","
	    "\"key\":\"weight\",\"value\":\"50\"}", &r), MCCTL_R_OK);
	CU_ASSERT(json_is_false(json_object_get(r, "changed")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "target")),
	    (json_int_t)(2048 * MIB));
	CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(r,
	    "explain")), "stall-hold"));
	json_decref(r);
	CU_ASSERT_EQUAL_FATAL(dispatch(0, MCCTL_EXPLAIN, "{\"guest\":\"vm3\"}",
	    &r), MCCTL_R_OK);
	CU_ASSERT(json_integer_value(json_object_get(r, "stall_hold_left_ms"))
	    > 0);
	CU_ASSERT(json_integer_value(json_object_get(r, "stall_hold_left_ms"))
	    <= 10000);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "limit_hi")),
	    (json_int_t)(2048 * MIB));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r,
	    "last_change_ago_ms")), -1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "now")),
	    "no tick yet");
	json_decref(r);

	/* the same checks as SET; unknown or missing guests */
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_PREVIEW, "{\"guest\":\"vm3\","
	    "\"key\":\"weight\",\"value\":\"0\"}", &r), MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), EINVAL);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_EXPLAIN, "{\"guest\":\"vm9\"}", &r),
	    MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), ENOENT);
	json_decref(r);
	CU_ASSERT_EQUAL(dispatch(0, MCCTL_EXPLAIN, "{}", &r), MCCTL_R_ERROR);
	CU_ASSERT_EQUAL(error_code(r), EINVAL);
	json_decref(r);
	CU_ASSERT_EQUAL(nset, 0);
	md.host.valid_mem = 0;
	guest_remove(&md, g);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("framing", NULL, NULL);
	CU_add_test(s, "valid messages and prefixes", test_frame_ok);
	CU_add_test(s, "bad headers", test_frame_bad);
	CU_add_test(s, "random bytes", test_frame_fuzz);
	s = CU_add_suite("dispatch", setup, teardown);
	CU_add_test(s, "hello", test_hello);
	CU_add_test(s, "status", test_status);
	CU_add_test(s, "set: limits and permissions", test_set);
	CU_add_test(s, "explain and preview", test_explain_preview);
	CU_add_test(s, "hostile payloads", test_hostile);
	return td_run();
}
