/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one reader of memcoop.ko's module parameters for the guest programs
 * (in-guest tests).  Header only: the static guest programs need no library.
 */
#ifndef MEMCOOP_MODPARAM_H
#define MEMCOOP_MODPARAM_H

#include <stdio.h>
#include <stdlib.h>

/*
 * The value of /sys/module/memcoop/parameters/@name (an unsigned number);
 * -1 if the parameter is missing (an older module, or none loaded) or
 * cannot be read.
 */
static inline long
modparam_read(const char *name)
{
	char path[128], buf[32], *end;
	unsigned long v;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/memcoop/parameters/%s", name);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	v = strtoul(buf, &end, 10);
	if (end == buf || (*end != '\n' && *end != '\0'))
		return -1;
	return (long)v;
}

#endif
