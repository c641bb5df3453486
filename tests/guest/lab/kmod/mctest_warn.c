// SPDX-License-Identifier: GPL-2.0
/*
 * mctest_warn: the lab's own test module, so that the lab's test can prove
 * that a run fails when the guest kernel misbehaves.  Never loaded outside
 * that test.
 *
 *   insmod mctest_warn.ko                  raise one kernel WARNING
 *   insmod mctest_warn.ko hang_poweroff=1  no WARNING; the guest never
 *                                          powers off (a reboot notifier
 *                                          that does not return)
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/bug.h>
#include <linux/delay.h>
#include <linux/notifier.h>
#include <linux/reboot.h>

static bool hang_poweroff;
module_param(hang_poweroff, bool, 0444);
MODULE_PARM_DESC(hang_poweroff, "make the guest never power off instead of a WARNING");

/* Interruptible sleeps: no hung-task report, the lab must notice alone. */
static int mctest_reboot(struct notifier_block *nb, unsigned long action, void *data)
{
	pr_info("mclab negative test: power-off held for ever\n");
	for (;;)
		msleep_interruptible(1000);
	return NOTIFY_DONE;
}

static struct notifier_block mctest_reboot_nb = {
	.notifier_call = mctest_reboot,
};

static int __init mctest_warn_init(void)
{
	if (hang_poweroff)
		return register_reboot_notifier(&mctest_reboot_nb);
	WARN(1, "mclab negative test: this WARNING must fail the run\n");
	return 0;
}

static void __exit mctest_warn_exit(void)
{
	if (hang_poweroff)
		unregister_reboot_notifier(&mctest_reboot_nb);
}

module_init(mctest_warn_init);
module_exit(mctest_warn_exit);
MODULE_DESCRIPTION("memcoop lab self-test: a WARNING, or a power-off that hangs");
MODULE_LICENSE("GPL");
