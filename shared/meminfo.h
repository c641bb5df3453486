/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one /proc/meminfo reader of the guest programs (the in-guest tests,
 * the benchmarks and the memcache example).  Header only: the static guest
 * programs need no library for it.
 */
#ifndef MEMCOOP_MEMINFO_H
#define MEMCOOP_MEMINFO_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * The value of /proc/meminfo's line @key (with its colon, e.g.
 * "MemAvailable:"), in KiB; -1 if the file or the line is missing or
 * malformed.
 */
static inline long
meminfo_kib(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, n) == 0) {
			if (sscanf(line + n, "%ld", &v) != 1)
				v = -1;
			break;
		}
	}
	fclose(f);
	return v;
}

/*
 * meminfo_free_kib() - free memory in KiB: MemFree plus the pages on the
 * per-cpu free lists (/proc/zoneinfo "count:"), which MemFree leaves out;
 * since 6.7 these lists grow with the freeing rate and do not drain on
 * their own (tens of MiB after a deflation on 6.12).  -1 on error.
 */
static inline long meminfo_free_kib(void)
{
	char line[256];
	long sum = 0, n, free = meminfo_kib("MemFree:");
	FILE *f = fopen("/proc/zoneinfo", "r");

	if (!f || free < 0) {
		if (f)
			fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " count: %ld", &n) == 1)
			sum += n;
	fclose(f);
	return free + sum * (sysconf(_SC_PAGESIZE) / 1024);
}

#endif /* MEMCOOP_MEMINFO_H */
