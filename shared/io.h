/* SPDX-License-Identifier: GPL-2.0-only */
/* Whole reads and writes on a descriptor (sockets, pipes). */
#ifndef MEMCOOP_IO_H
#define MEMCOOP_IO_H

#include <stddef.h>
#include <sys/types.h>

/* All of @len bytes, or -1 (EOF or error, errno set); @wr: write, else read. */
int	io_full(int fd, void *buf, size_t len, int wr);
/*
 * Read @fd up to EOF, at most @cap - 1 bytes, into @buf and NUL-terminate
 * it.  Returns the bytes read (cap - 1: there may be more), or -1 (errno
 * set).  @cap must be at least 1.
 */
ssize_t	io_read_all(int fd, char *buf, size_t cap);
/* io_read_all() of the file @path (opened O_RDONLY | O_CLOEXEC). */
ssize_t	io_read_path(const char *path, char *buf, size_t cap);

#endif /* MEMCOOP_IO_H */
