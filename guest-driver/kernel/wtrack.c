// SPDX-License-Identifier: GPL-2.0
/* Write tracking.  (Scaffolding: being written.) */
#include "mc_internal.h"

long mc_wtrack_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg) { return -ENOTTY; }
void mc_wtrack_release(struct mc_file *mf) { }
void mc_wtrack_write_fault(struct mc_file *mf, pgoff_t pgoff) { }
void mc_wtrack_forget(struct mc_file *mf, pgoff_t pgoff, unsigned long nr) { }
