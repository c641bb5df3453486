/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one reader of "name value" files (/proc/vmstat, memcoop's debugfs
 * counters such as memcoop/vrange) of the guest programs.  Header only,
 * like meminfo.h: the static guest programs need no library for it.
 */
#ifndef MEMCOOP_KVSTAT_H
#define MEMCOOP_KVSTAT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * kvstat_read() - the value of the line "@name <number>" of @path into
 * *@v.  Returns 0, or -1 with errno set: the file's error, or ENOENT when
 * the file has no such line.
 */
static inline int
kvstat_read(const char *path, const char *name, long *v)
{
	char line[256], key[64];
	long val;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", key, &val) == 2 && strcmp(key, name) == 0) {
			fclose(f);
			*v = val;
			return 0;
		}
	fclose(f);
	errno = ENOENT;
	return -1;
}

#endif
