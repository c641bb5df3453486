// SPDX-License-Identifier: GPL-2.0
/* Volatile ranges.  (Scaffolding: being written.) */
#include "mc_internal.h"

int mc_vrange_init(void) { return 0; }
void mc_vrange_exit(void) { }
int mc_vrange_mmap(struct mc_file *mf, struct vm_area_struct *vma) { return -ENODEV; }
long mc_vrange_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg) { return -ENOTTY; }
void mc_vrange_release(struct mc_file *mf) { }
unsigned long mc_vrange_purge(unsigned long pages, u32 reason) { return 0; }
unsigned long mc_vrange_purgeable(void) { return 0; }
int mc_vrange_resolve(struct mc_file *mf, u64 start, u64 len, pgoff_t *pgoff) { return -EINVAL; }
struct address_space *mc_vrange_mapping(struct mc_file *mf) { return NULL; }
