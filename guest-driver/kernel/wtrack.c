// SPDX-License-Identifier: GPL-2.0
/* Write tracking.  (Scaffolding: being written.) */
#include "mc_internal.h"

long mc_wtrack_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg) { return -ENOTTY; }
void mc_wtrack_release(struct mc_file *mf) { }
