// SPDX-License-Identifier: GPL-2.0-only
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testdata.h"

char *
td_read(const char *name)
{
	char path[1024], *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", AGENT_TEST_DATADIR, name);
	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "missing test data %s\n", path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

int
td_run(void)
{
	unsigned int fails;

	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failure_records();	/* suite set-up failures too */
	CU_cleanup_registry();
	return fails > 100 ? 100 : (int)fails;
}
