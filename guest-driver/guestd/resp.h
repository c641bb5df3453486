/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * RESP2, the Redis protocol, as much as memcoop-guestd needs: commands out,
 * replies in (simple strings, errors, integers, bulk strings, arrays).
 * The parser is a pure function with hard limits, fed whatever a possibly
 * hostile server sent.
 */
#ifndef MEMCOOP_RESP_H
#define MEMCOOP_RESP_H

#include <stddef.h>
#include <sys/types.h>

#define RESP_LINE_MAX	1024		/* a +, -, :, $ or * line */
#define RESP_BULK_MAX	(1 << 20)	/* one bulk string */
#define RESP_ARRAY_MAX	64		/* elements of one array */
#define RESP_DEPTH_MAX	3		/* nested arrays */

enum resp_type {
	RESP_SIMPLE = 1,
	RESP_ERROR,
	RESP_INT,
	RESP_BULK,
	RESP_NIL,		/* $-1 or *-1 */
	RESP_ARRAY,
};

struct resp_val {
	enum resp_type	 type;
	long long	 integer;	/* RESP_INT */
	char		*str;		/* SIMPLE, ERROR, BULK: NUL-terminated */
	size_t		 len;
	struct resp_val	*elem;		/* ARRAY */
	size_t		 nelem;
};

/*
 * Parse one reply at the start of @buf (@len bytes).  Returns the bytes it
 * took (> 0) with *@out filled (resp_free() it), 0 if more bytes are
 * needed, -1 if the bytes cannot be a reply within the limits (*@why says
 * why).
 */
ssize_t	resp_parse(const char *buf, size_t len, struct resp_val *out,
	    const char **why);
void	resp_free(struct resp_val *);
/* Append a command (an array of bulk strings) to @out; length or -1. */
int	resp_command(char *out, size_t cap, int argc, const char *const *argv);
/* The value of "key:value" in INFO text, into @val; 0 or -1. */
int	resp_info_field(const char *info, const char *key, char *val,
	    size_t len);

#endif /* MEMCOOP_RESP_H */
