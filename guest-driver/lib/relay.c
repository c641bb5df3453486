/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: shrink requests. */
#include "mc_lib.h"

void
mc_lib_relay_free(struct memcoop *mc)
{
	(void)mc;
}
