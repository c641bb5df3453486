// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host memory state: /proc/meminfo (MemTotal, MemAvailable, SwapFree) and
 * PSI (/proc/pressure/memory).  The parsers are pure functions over the
 * files' text so that the unit tests feed them recorded contents.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "memcoopd.h"

/* "Key:   12345 kB" anywhere at a line start; 0 found, -1 not. */
static int
meminfo_field(const char *text, const char *key, uint64_t *bytes)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			unsigned long long v;
			char *end;

			p += klen + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p < '0' || *p > '9')
				return -1;
			errno = 0;
			v = strtoull(p, &end, 10);
			if (errno != 0)
				return -1;
			while (*end == ' ')
				end++;
			if (strncmp(end, "kB", 2) == 0) {
				if (v > UINT64_MAX / 1024)
					return -1;
				v *= 1024;
			} else if (*end != '\n' && *end != '\0') {
				return -1;
			}
			*bytes = v;
			return 0;
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}

int
hostinfo_parse_meminfo(const char *text, struct host_stats *hs)
{
	uint64_t total, avail, swapfree = 0;

	hs->valid_mem = 0;
	if (meminfo_field(text, "MemTotal", &total) == -1 ||
	    meminfo_field(text, "MemAvailable", &avail) == -1)
		return -1;
	if (total == 0 || avail > total)
		return -1;
	(void)meminfo_field(text, "SwapFree", &swapfree);
	hs->mem_total = total;
	hs->mem_available = avail;
	hs->swap_free = swapfree;
	hs->valid_mem = 1;
	return 0;
}

/* One PSI line: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0". */
static int
psi_line(const char *p, double *avg10, uint64_t *total)
{
	double a10, a60, a300;
	unsigned long long t;
	int n = 0;

	if (sscanf(p, " avg10=%lf avg60=%lf avg300=%lf total=%llu%n",
	    &a10, &a60, &a300, &t, &n) != 4 || n == 0)
		return -1;
	if (!(a10 >= 0.0 && a10 <= 100.0))
		return -1;
	*avg10 = a10;
	*total = t;
	return 0;
}

int
hostinfo_parse_psi(const char *text, struct host_stats *hs)
{
	const char *some, *full;
	double s10 = 0, f10 = 0;
	uint64_t st = 0, ft = 0;

	hs->valid_psi = 0;
	if (strncmp(text, "some", 4) == 0)
		some = text;
	else if ((some = strstr(text, "\nsome")) != NULL)
		some++;
	else
		return -1;
	if (psi_line(some + 4, &s10, &st) == -1)
		return -1;
	/* "full" is absent on old kernels and for the cpu resource */
	if ((full = strstr(text, "\nfull")) != NULL &&
	    psi_line(full + 5, &f10, &ft) == -1)
		return -1;
	hs->psi_some_avg10 = s10;
	hs->psi_some_total = st;
	hs->psi_full_avg10 = f10;
	hs->psi_full_total = ft;
	hs->valid_psi = 1;
	return 0;
}

static int
read_text(const char *path, char *buf, size_t len)
{
	return io_read_path(path, buf, len) == -1 ? -1 : 0;
}

int
hostinfo_read(const char *procdir, struct host_stats *hs)
{
	char path[512], buf[8192];
	int rv = 0;

	if (procdir == NULL)
		procdir = "/proc";
	snprintf(path, sizeof(path), "%s/meminfo", procdir);
	if (read_text(path, buf, sizeof(buf)) == -1 ||
	    hostinfo_parse_meminfo(buf, hs) == -1) {
		hs->valid_mem = 0;
		rv = -1;
	}
	snprintf(path, sizeof(path), "%s/pressure/memory", procdir);
	if (read_text(path, buf, sizeof(buf)) == -1 ||
	    hostinfo_parse_psi(buf, hs) == -1)
		hs->valid_psi = 0;
	return rv;
}
