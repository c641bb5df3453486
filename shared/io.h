/* SPDX-License-Identifier: GPL-2.0-only */
/* Whole reads and writes on a descriptor (sockets, pipes). */
#ifndef MEMCOOP_IO_H
#define MEMCOOP_IO_H

#include <stddef.h>

/* All of @len bytes, or -1 (EOF or error, errno set); @wr: write, else read. */
int	io_full(int fd, void *buf, size_t len, int wr);

#endif /* MEMCOOP_IO_H */
