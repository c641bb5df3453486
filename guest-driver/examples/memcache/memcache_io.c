/* SPDX-License-Identifier: GPL-2.0 */
/* memcache-like and memcache-load: whole reads, writes and lines on a socket. */
#include <errno.h>
#include <unistd.h>

#include "memcache.h"

int
mc_io_full(int fd, void *buf, size_t len, int wr)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = wr ? write(fd, p, len) : read(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
mc_read_line(int fd, char *line, size_t max)
{
	size_t i;

	for (i = 0; i + 1 < max; i++) {
		if (mc_io_full(fd, &line[i], 1, 0) == -1)
			return -1;
		if (line[i] == '\n') {
			line[i] = '\0';
			return 0;
		}
	}
	return -1;
}
