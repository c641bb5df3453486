// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmemcoop core.c: memcoop_strerror() has its own sentence for every
 * errno the ABI documents.  The list is not written here: it is read from
 * proto/memcoop.h ("-EPERM") and docs/memcoop-ko.md ("`EMFILE`"), so an
 * errno documented tomorrow fails this test until it gets its text.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "libmemcoop.h"
#include "testdata.h"

#define E(x)	{ #x, x }
/* Names the documents may use; a name missing here fails the test. */
static const struct { const char *name; int val; } names[] = {
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(EBADF),
	E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(ENODEV),
	E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY), E(EFBIG), E(ENOSPC), E(ERANGE),
	E(EALREADY), E(EOVERFLOW), E(EOPNOTSUPP), E(ENOSYS), E(ETIMEDOUT), E(ECANCELED),
};

#define MAX_DOC	64
static int doc_errno[MAX_DOC], ndoc;
static char doc_name[MAX_DOC][16];

static int
errno_of(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, name) == 0)
			return names[i].val;
	return -1;
}

/* Collect every E[A-Z0-9]+ right after @lead in @path. */
static void
collect(const char *path, char lead)
{
	char *text = td_read(path), *p;
	char name[16];
	int i, e;

	for (p = text; (p = strchr(p, lead)) != NULL; p++) {
		size_t n = 0;

		if (p[1] != 'E' || !isupper((unsigned char)p[2]))
			continue;
		while (n < sizeof(name) - 1 && (isupper((unsigned char)p[1 + n]) ||
		    isdigit((unsigned char)p[1 + n])))
			name[n] = p[1 + n], n++;
		name[n] = '\0';
		if (n < 4 || strncmp(name, "EVENT", 5) == 0)
			continue;
		e = errno_of(name);
		if (e == -1) {
			printf("%s: %s is not in this test's table of names: add it\n", path, name);
			CU_FAIL("unknown errno name in the documentation");
			continue;
		}
		for (i = 0; i < ndoc && doc_errno[i] != e; i++)
			;
		if (i == ndoc && ndoc < MAX_DOC) {
			doc_errno[ndoc] = e;
			snprintf(doc_name[ndoc], sizeof(doc_name[ndoc]), "%s", name);
			ndoc++;
		}
	}
	free(text);
}

static void
test_documented(void)
{
	int i, j;

	collect("proto/memcoop.h", '-');
	collect("docs/memcoop-ko.md", '`');
	printf("\n%d documented errno values\n", ndoc);
	/* the ones the issue names must be among them: the parsing works */
	CU_ASSERT(ndoc >= 10);
	for (i = 0; i < ndoc; i++) {
		const char *t = memcoop_strerror(doc_errno[i]);

		printf("  %-10s %s\n", doc_name[i], t);
		CU_ASSERT_PTR_NOT_NULL_FATAL(t);
		if (strcmp(t, strerror(doc_errno[i])) == 0) {
			printf("%s has only the C library's text\n", doc_name[i]);
			CU_FAIL("documented errno without its own text");
		}
		CU_ASSERT(strlen(t) > 20);
		for (j = 0; j < i; j++)
			if (strcmp(t, memcoop_strerror(doc_errno[j])) == 0) {
				printf("%s and %s share a text\n", doc_name[i], doc_name[j]);
				CU_FAIL("two errno values with one text");
			}
	}
}

static void
test_limits_named(void)
{
	/* each cap says which module parameter to look at */
	CU_ASSERT_PTR_NOT_NULL(strstr(memcoop_strerror(EMFILE), "relay_user_clients"));
	CU_ASSERT_PTR_NOT_NULL(strstr(memcoop_strerror(EMFILE), "events_user_max"));
	CU_ASSERT_PTR_NOT_NULL(strstr(memcoop_strerror(ENOSPC), "relay_max_clients"));
	CU_ASSERT_PTR_NOT_NULL(strstr(memcoop_strerror(ENOSPC), "max_ranges"));
	CU_ASSERT_PTR_NOT_NULL(strstr(memcoop_strerror(ENOSPC), "wt_max_kib"));
	CU_ASSERT_PTR_NOT_NULL(strstr(memcoop_strerror(EPERM), "relay_priv_gid"));
	/* anything else is the C library's */
	CU_ASSERT_STRING_EQUAL(memcoop_strerror(EXDEV), strerror(EXDEV));
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("memcoop_strerror", NULL, NULL);
	CU_add_test(s, "every documented errno has its own text", test_documented);
	CU_add_test(s, "the caps name their parameters", test_limits_named);
	return td_run();
}
