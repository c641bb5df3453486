/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one /proc/meminfo reader of the guest programs (the in-guest tests,
 * the benchmarks and the memcache example).  Header only: the static guest
 * programs need no library for it.
 */
#ifndef MEMCOOP_MEMINFO_H
#define MEMCOOP_MEMINFO_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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
 * zoneinfo_sum_kib() - the sum over /proc/zoneinfo's lines "@key N" (the
 * key as the line has it after its indentation: "high" for the zones' high
 * watermarks, "count:" for the per-cpu free lists), pages, in KiB; -1 on
 * error.
 */
static inline long zoneinfo_sum_kib(const char *key)
{
	char line[256], *p, *end;
	size_t n = strlen(key);
	long sum = 0, v;
	FILE *f = fopen("/proc/zoneinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (strncmp(p, key, n) != 0 || (p[n] != ' ' && p[n] != '\t'))
			continue;
		v = strtol(p + n, &end, 10);
		if (end != p + n && v > 0)
			sum += v;
	}
	fclose(f);
	return sum * (sysconf(_SC_PAGESIZE) / 1024);
}

/*
 * meminfo_free_kib() - free memory in KiB: MemFree plus the pages on the
 * per-cpu free lists (/proc/zoneinfo "count:"), which MemFree leaves out;
 * since 6.7 these lists grow with the freeing rate and do not drain on
 * their own (tens of MiB after a deflation on 6.12).  -1 on error.
 */
static inline long meminfo_free_kib(void)
{
	long free = meminfo_kib("MemFree:"), pcp = zoneinfo_sum_kib("count:");

	return free < 0 || pcp < 0 ? -1 : free + pcp;
}

/*
 * meminfo_slab_kib() - /proc/meminfo's Slab in KiB after every slab cache
 * was shrunk (/sys/kernel/slab/NAME/shrink, root only): empty slabs go
 * back to the page allocator, and on a KASAN kernel the objects freed into
 * its quarantine are released first (the lab's debug kernel: without this
 * a fuzz run left Slab 1.7 MiB higher though no cache held more objects).
 * -1 on error.
 */
static inline long meminfo_slab_kib(void)
{
	char path[320];
	struct dirent *d;
	DIR *dir = opendir("/sys/kernel/slab");

	if (dir != NULL) {
		while ((d = readdir(dir)) != NULL) {
			int fd;

			/* the directories; the symlinks are merged aliases */
			if (d->d_type != DT_DIR || d->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", d->d_name);
			fd = open(path, O_WRONLY);
			if (fd != -1) {
				if (write(fd, "1", 1) != 1) {
					/* only a measure of noise lost */
				}
				close(fd);
			}
		}
		closedir(dir);
	}
	return meminfo_kib("Slab:");
}

#endif /* MEMCOOP_MEMINFO_H */
