/* SPDX-License-Identifier: GPL-2.0-only */
/* Helpers of the agent's unit tests: recorded data and the CUnit runner. */
#ifndef AGENT_TESTDATA_H
#define AGENT_TESTDATA_H

#include <CUnit/Basic.h>

/* The contents of data/@name, NUL-terminated; aborts the test if absent. */
char	*td_read(const char *name);
/* Run the registered suites; returns the number of failures. */
int	 td_run(void);

#endif
