// SPDX-License-Identifier: GPL-2.0
/*
 * mctest_bugs: a module with one deliberate defect per run, chosen by the
 * bug= parameter, so that the lab's debug-kernel test can prove that the
 * debug guest kernel's report of it fails a run:
 *
 *   uaf        write to a kmalloc()ed object after kfree()   (KASAN)
 *   leak       kmalloc() an object and lose the pointer      (kmemleak)
 *   lockorder  take two mutexes in both orders               (lockdep)
 *   sleep      mutex_lock() under a spinlock                 (atomic sleep)
 *   none       nothing: the control run, which must pass
 *
 * Never loaded outside that test.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/string.h>

static char *bug = "none";
module_param(bug, charp, 0444);
MODULE_PARM_DESC(bug, "the defect to commit: uaf, leak, lockorder, sleep or none");

static DEFINE_MUTEX(mctest_a);
static DEFINE_MUTEX(mctest_b);
static DEFINE_SPINLOCK(mctest_lock);
static void *mctest_sink;

static noinline void mctest_uaf(void)
{
	char *p = kmalloc(64, GFP_KERNEL);

	if (!p)
		return;
	kfree(p);
	/* the defect: OPTIMIZER_HIDE_VAR keeps the compiler from seeing it */
	OPTIMIZER_HIDE_VAR(p);
	p[8] = 1;
}

static noinline void mctest_leak(void)
{
	void *p = kmalloc(256, GFP_KERNEL);

	/* the defect: the only reference is overwritten at once */
	WRITE_ONCE(mctest_sink, p);
	WRITE_ONCE(mctest_sink, NULL);
}

static noinline void mctest_lockorder(void)
{
	mutex_lock(&mctest_a);
	mutex_lock(&mctest_b);
	mutex_unlock(&mctest_b);
	mutex_unlock(&mctest_a);
	/* the defect: the other order, a deadlock waiting for a second task */
	mutex_lock(&mctest_b);
	mutex_lock(&mctest_a);
	mutex_unlock(&mctest_a);
	mutex_unlock(&mctest_b);
}

static noinline void mctest_sleep(void)
{
	spin_lock(&mctest_lock);
	mutex_lock(&mctest_a);	/* the defect: may sleep, in atomic context */
	mutex_unlock(&mctest_a);
	spin_unlock(&mctest_lock);
}

static int __init mctest_bugs_init(void)
{
	if (!strcmp(bug, "uaf"))
		mctest_uaf();
	else if (!strcmp(bug, "leak"))
		mctest_leak();
	else if (!strcmp(bug, "lockorder"))
		mctest_lockorder();
	else if (!strcmp(bug, "sleep"))
		mctest_sleep();
	else if (strcmp(bug, "none"))
		return -EINVAL;
	pr_info("committed: %s\n", bug);
	return 0;
}

static void __exit mctest_bugs_exit(void)
{
}

module_init(mctest_bugs_init);
module_exit(mctest_bugs_exit);
MODULE_DESCRIPTION("memcoop lab self-test: defects the debug kernel must report");
MODULE_LICENSE("GPL");
