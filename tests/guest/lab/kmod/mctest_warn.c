// SPDX-License-Identifier: GPL-2.0
/*
 * mctest_warn: a module that raises one kernel WARNING when loaded, so
 * that the lab's own test can prove that a guest WARNING fails a run.
 * Never loaded outside that test.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/bug.h>

static int __init mctest_warn_init(void)
{
	WARN(1, "mclab negative test: this WARNING must fail the run\n");
	return 0;
}

static void __exit mctest_warn_exit(void)
{
}

module_init(mctest_warn_init);
module_exit(mctest_warn_exit);
MODULE_DESCRIPTION("memcoop lab self-test: raise a WARNING");
MODULE_LICENSE("GPL");
