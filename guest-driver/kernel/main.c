// SPDX-License-Identifier: GPL-2.0
/*
 * memcoop.ko: cooperative memory management for KVM guests.
 *
 * A virtio-balloon driver that, before it takes pages, purges volatile
 * ranges and asks registered processes to shrink, plus /dev/memcoop, the
 * device those processes use.  See mc_internal.h for the parts.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/debugfs.h>

#include "mc_internal.h"

struct dentry *mc_debugfs_root;

static int mc_uint_param_set(const char *val, const struct kernel_param *kp)
{
	const struct mc_uint_param *p = kp->arg;
	unsigned int v;
	int err;

	err = kstrtouint(val, 0, &v);
	if (err)
		return err;
	if (v < p->min || v > p->max) {
		pr_warn("%s=%u refused: outside %u..%u\n", kp->name, v, p->min, p->max);
		return -EINVAL;
	}
	WRITE_ONCE(*p->val, v);
	return 0;
}

static int mc_uint_param_get(char *buf, const struct kernel_param *kp)
{
	const struct mc_uint_param *p = kp->arg;

	return scnprintf(buf, PAGE_SIZE, "%u\n", READ_ONCE(*p->val));
}

const struct kernel_param_ops mc_uint_param_ops = {
	.set = mc_uint_param_set,
	.get = mc_uint_param_get,
};

static int __init memcoop_init(void)
{
	int err;

	mc_debugfs_root = debugfs_create_dir("memcoop", NULL);
	if (IS_ERR(mc_debugfs_root))
		mc_debugfs_root = NULL;

	err = mc_vrange_init();
	if (err)
		goto out_debugfs;
	err = mc_relay_init();
	if (err)
		goto out_vrange;
	err = mc_dev_init();
	if (err)
		goto out_relay;
	err = mc_balloon_init();
	if (err)
		goto out_dev;
	return 0;

out_dev:
	mc_dev_exit();
out_relay:
	mc_relay_exit();
out_vrange:
	mc_vrange_exit();
out_debugfs:
	debugfs_remove_recursive(mc_debugfs_root);
	return err;
}

static void __exit memcoop_exit(void)
{
	mc_balloon_exit();
	mc_dev_exit();
	mc_relay_exit();
	mc_vrange_exit();
	debugfs_remove_recursive(mc_debugfs_root);
}

module_init(memcoop_init);
module_exit(memcoop_exit);

MODULE_DESCRIPTION("memcoop: cooperative virtio-balloon and /dev/memcoop");
MODULE_LICENSE("GPL");
