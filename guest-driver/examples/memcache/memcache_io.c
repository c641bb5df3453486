/* SPDX-License-Identifier: GPL-2.0 */
/* memcache-like and memcache-load: lines on a socket. */
#include "memcache.h"

int
mc_read_line(int fd, char *line, size_t max)
{
	size_t i;

	for (i = 0; i + 1 < max; i++) {
		if (io_full(fd, &line[i], 1, 0) == -1)
			return -1;
		if (line[i] == '\n') {
			line[i] = '\0';
			return 0;
		}
	}
	return -1;
}
