/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memcache-like: the wire protocol shared by the server (memcache-like)
 * and its load generator (memcache-load).
 *
 * A stream socket (AF_UNIX); one request at a time per connection:
 *
 *	SET <key> <len>\n<len bytes>	-> STORED\n
 *	GET <key>\n			-> VALUE <len>\n<len bytes> | MISS\n
 *	DEL <key>\n			-> DELETED\n | MISS\n
 *	STATS\n				-> STATS key=value ...\n
 *
 * Keys are 1..MC_KEY_MAX printable characters without spaces; values are
 * at most MC_VALUE_MAX bytes.  A malformed request gets "ERROR <why>\n"
 * and the connection is closed.
 */
#ifndef MEMCACHE_H
#define MEMCACHE_H

#define MC_SOCKET_DEFAULT	"/tmp/memcache.sock"
#define MC_KEY_MAX		63
#define MC_VALUE_MAX		(1024 * 1024)
#define MC_LINE_MAX		128

#include <stddef.h>

/* whole reads and writes: io_full() (shared/io.h) */
#include "io.h"

/* memcache_io.c: one '\n'-terminated line, NUL-terminated without the '\n', or -1 */
int	mc_read_line(int fd, char *line, size_t max);

#endif /* MEMCACHE_H */
