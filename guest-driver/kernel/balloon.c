// SPDX-License-Identifier: GPL-2.0
/* The virtio-balloon driver.  (Scaffolding: being written.) */
#include "mc_internal.h"

int mc_balloon_init(void) { return 0; }
void mc_balloon_exit(void) { }
