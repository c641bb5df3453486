// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest-driver/guestd/resp.c: Redis replies as a real redis-server 7.0
 * sends them, byte by byte (incomplete), and what a hostile server could
 * send instead: huge or negative lengths, bare LF, deep nesting, junk.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "resp.h"
#include "testdata.h"

static ssize_t
parse(const char *s, size_t len, struct resp_val *v, const char **why)
{
	return resp_parse(s, len, v, why);
}

static void
test_types(void)
{
	static const char arr[] = "*2\r\n$9\r\nmaxmemory\r\n$9\r\n104857600\r\n";
	struct resp_val v;
	const char *why;

	CU_ASSERT_EQUAL(parse("+OK\r\n", 5, &v, &why), 5);
	CU_ASSERT_EQUAL(v.type, RESP_SIMPLE);
	CU_ASSERT_STRING_EQUAL(v.str, "OK");
	resp_free(&v);
	CU_ASSERT_EQUAL(parse("-ERR no\r\n", 9, &v, &why), 9);
	CU_ASSERT_EQUAL(v.type, RESP_ERROR);
	CU_ASSERT_STRING_EQUAL(v.str, "ERR no");
	resp_free(&v);
	CU_ASSERT_EQUAL(parse(":-42\r\n", 6, &v, &why), 6);
	CU_ASSERT_EQUAL(v.type, RESP_INT);
	CU_ASSERT_EQUAL(v.integer, -42);
	CU_ASSERT_EQUAL(parse("$-1\r\n", 5, &v, &why), 5);
	CU_ASSERT_EQUAL(v.type, RESP_NIL);
	CU_ASSERT_EQUAL(parse("$0\r\n\r\n", 6, &v, &why), 6);
	CU_ASSERT_EQUAL(v.type, RESP_BULK);
	CU_ASSERT_EQUAL(v.len, 0);
	resp_free(&v);
	/* a bulk may hold CR, LF and NUL */
	CU_ASSERT_EQUAL(parse("$5\r\na\r\n\0b\r\n", 11, &v, &why), 11);
	CU_ASSERT_EQUAL(v.len, 5);
	CU_ASSERT(memcmp(v.str, "a\r\n\0b", 5) == 0);
	resp_free(&v);
	CU_ASSERT_EQUAL(parse(arr, sizeof(arr) - 1, &v, &why),
	    (ssize_t)sizeof(arr) - 1);
	CU_ASSERT_EQUAL_FATAL(v.type, RESP_ARRAY);
	CU_ASSERT_EQUAL_FATAL(v.nelem, 2);
	CU_ASSERT_STRING_EQUAL(v.elem[1].str, "104857600");
	resp_free(&v);
	/* two replies back to back: only the first is taken */
	CU_ASSERT_EQUAL(parse("+OK\r\n+OK\r\n", 10, &v, &why), 5);
	resp_free(&v);
}

/* Every prefix of a valid reply is "incomplete", never an error. */
static void
test_incomplete(void)
{
	static const char r[] = "*3\r\n$4\r\nINFO\r\n:7\r\n*1\r\n+x\r\n";
	struct resp_val v;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(r) - 1; i++) {
		CU_ASSERT_EQUAL(parse(r, i, &v, &why), 0);
	}
	CU_ASSERT_EQUAL(parse(r, sizeof(r) - 1, &v, &why), (ssize_t)sizeof(r) - 1);
	resp_free(&v);
}

static void
test_hostile(void)
{
	static const char *bad[] = {
		"$99999999999999999999\r\n",	/* overflow */
		"$2000000\r\n",			/* over RESP_BULK_MAX */
		"$-2\r\n",
		"*-5\r\n",
		"*100000\r\n",			/* over RESP_ARRAY_MAX */
		"*1\r\n*1\r\n*1\r\n*1\r\n+x\r\n",	/* too deep */
		":12a\r\n",
		":\r\n",
		"+OK\n",			/* bare LF */
		"+O\rK\r\n",			/* bare CR */
		"$3\r\nabcde\r\n",		/* bulk not ended by CRLF */
		"hello\r\n",			/* not RESP */
		"$ 3\r\nabc\r\n",
	};
	char longline[RESP_LINE_MAX + 10];
	struct resp_val v;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CU_ASSERT_EQUAL(parse(bad[i], strlen(bad[i]), &v, &why), -1);
		CU_ASSERT_PTR_NOT_NULL(why);
	}
	/* a line that never ends is refused once it is too long */
	memset(longline, 'a', sizeof(longline));
	longline[0] = '+';
	CU_ASSERT_EQUAL(parse(longline, 100, &v, &why), 0);
	CU_ASSERT_EQUAL(parse(longline, sizeof(longline), &v, &why), -1);
	/* NUL inside a status line */
	CU_ASSERT_EQUAL(parse("+O\0K\r\n", 6, &v, &why), -1);
}

static void
test_command(void)
{
	const char *argv[] = { "CONFIG", "SET", "maxmemory", "67108864" };
	char buf[128], tiny[20];

	CU_ASSERT_EQUAL(resp_command(buf, sizeof(buf), 4, argv), 54);
	CU_ASSERT_STRING_EQUAL(buf, "*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n"
	    "$9\r\nmaxmemory\r\n$8\r\n67108864\r\n");
	CU_ASSERT_EQUAL(resp_command(tiny, sizeof(tiny), 4, argv), -1);
}

static void
test_info(void)
{
	char *info = td_read("redis-info.txt"), val[64];

	CU_ASSERT_EQUAL(resp_info_field(info, "used_memory", val, sizeof(val)), 0);
	CU_ASSERT_STRING_EQUAL(val, "226726704");
	CU_ASSERT_EQUAL(resp_info_field(info, "process_id", val, sizeof(val)), 0);
	CU_ASSERT_STRING_EQUAL(val, "17567");
	CU_ASSERT_EQUAL(resp_info_field(info, "maxmemory_policy", val,
	    sizeof(val)), 0);
	CU_ASSERT_STRING_EQUAL(val, "allkeys-lru");
	/* used_memory_rss is another field, not a prefix match */
	CU_ASSERT_EQUAL(resp_info_field(info, "used_memory_r", val,
	    sizeof(val)), -1);
	CU_ASSERT_EQUAL(resp_info_field(info, "no_such", val, sizeof(val)), -1);
	CU_ASSERT_EQUAL(resp_info_field(info, "used_memory", val, 4), -1);
	free(info);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("resp", NULL, NULL);
	CU_add_test(s, "reply types", test_types);
	CU_add_test(s, "incomplete replies", test_incomplete);
	CU_add_test(s, "hostile replies", test_hostile);
	CU_add_test(s, "commands", test_command);
	CU_add_test(s, "INFO fields", test_info);
	return td_run();
}
