/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The lexer of the memcoop config files (memcoopd.conf, guestd.conf): one
 * setting per line, `#` comments, double-quoted values with \" and \\,
 * sizes with binary units, durations.  The grammar on top (keywords,
 * blocks) belongs to each daemon's parse.c.
 */
#ifndef MEMCOOP_CONFLEX_H
#define MEMCOOP_CONFLEX_H

#include <stddef.h>
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

/*
 * A file being parsed: its name, the current line, where an error goes.
 * conf_err() writes "NAME:LINE: message" there and returns -1.
 */
struct conf_ctx {
	const char	*name;
	unsigned int	 line;
	char		*err;
	size_t		 errlen;
};

int	conf_err(struct conf_ctx *pc, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * The next line of *@text with words in it, split into @tok (at most @max,
 * in @line, which holds CONF_LINE_MAX characters and a NUL); *@text moves
 * past it and pc->line counts it.  Returns the word count, 0 at the end of
 * the text, -1 after conf_err() (a line too long, a lexer error).
 */
#define CONF_LINE_MAX	1024
int	conf_next(struct conf_ctx *pc, const char **text,
	    char line[CONF_LINE_MAX + 1], char **tok, int max);
/* *@dst = a copy of @val (not empty); the old value is freed. */
int	conf_set_string(struct conf_ctx *pc, char **dst, const char *val);
/* @val as a size for keyword @key, or conf_err(). */
int	conf_size_arg(struct conf_ctx *pc, const char *key, const char *val,
	    uint64_t *out);
/* A word of a keyword's closed set of values, and what it stands for. */
struct conf_word {
	const char	*word;
	int		 value;
};
/* *@out = the value of @val among @words (ended by a NULL word), or -1. */
int	conf_word_find(const struct conf_word *words, const char *val,
	    int *out);
/*
 * *@out = the value of @val among @words (ended by a NULL word), or
 * conf_err() "KEY: expected a, b or c".
 */
int	conf_word_arg(struct conf_ctx *pc, const char *key, const char *val,
	    const struct conf_word *words, int *out);
/* A block's name: 1..@max - 1 of letters, digits, - _ . + */
int	conf_valid_name(const char *s, size_t max);
/*
 * Read the regular file @path of at most @max bytes into a new NUL-ended
 * *@buf (its length in *@len; no NUL byte inside).  Returns the open file
 * (the caller closes it: it may check its mode) or -1 with @err set to
 * "PATH: why".
 */
int	conf_read_file(const char *path, size_t max, char **buf, size_t *len,
	    char *err, size_t errlen);

#endif /* MEMCOOP_CONFLEX_H */
