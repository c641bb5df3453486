// SPDX-License-Identifier: GPL-2.0
/* Shrink requests to registered processes.  (Scaffolding: being written.) */
#include "mc_internal.h"

int mc_relay_init(void) { return 0; }
void mc_relay_exit(void) { }
long mc_relay_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg) { return -ENOTTY; }
void mc_relay_release(struct mc_file *mf) { }
unsigned long mc_reclaim_for_balloon(unsigned long pages) { return 0; }
unsigned long mc_relay_oom(unsigned long pages) { return 0; }
