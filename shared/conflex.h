/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The lexer of the memcoop config files (memcoopd.conf, guestd.conf): one
 * setting per line, `#` comments, double-quoted values with \" and \\,
 * sizes with binary units, durations.  The grammar on top (keywords,
 * blocks) belongs to each daemon's parse.c.
 */
#ifndef MEMCOOP_CONFLEX_H
#define MEMCOOP_CONFLEX_H

#include <stdint.h>

/*
 * Split @line into at most @max words in place.  Returns the word count,
 * or -1 with *@why set to a sentence ("unterminated string", ...).
 */
int	conf_tokenize(char *line, char **tok, int max, const char **why);
/* "1048576", "512K", "512M", "2G", "1T" (optional "iB"/"B"); 0 or -1. */
int	conf_parse_size(const char *s, uint64_t *out);
/* "500ms", "2s", "1m", or bare seconds -> milliseconds (at most a day). */
int	conf_parse_duration(const char *s, uint64_t *ms);
/* A decimal number without sign or junk, at most @max. */
int	conf_parse_uint(const char *s, unsigned long long max,
	    unsigned long long *out);

#endif /* MEMCOOP_CONFLEX_H */
