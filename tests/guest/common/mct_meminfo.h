/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one /proc/meminfo reader of the in-guest programs.
 */
#ifndef MCT_MEMINFO_H
#define MCT_MEMINFO_H

#include <stdio.h>
#include <string.h>

/*
 * mct_meminfo_kib() - the value of /proc/meminfo's line @key (with its
 * colon, e.g. "MemAvailable:"), in KiB; -1 if the file or the line is
 * missing or malformed.
 */
static inline long mct_meminfo_kib(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, n)) {
			if (sscanf(line + n, "%ld", &v) != 1)
				v = -1;
			break;
		}
	}
	fclose(f);
	return v;
}

#endif /* MCT_MEMINFO_H */
