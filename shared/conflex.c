// SPDX-License-Identifier: GPL-2.0-only
/*
 * The lexer shared by memcoopd's and memcoop-guestd's config parsers
 * (moved here from host-agent/parse.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conflex.h"

static int
lexerr(const char **why, const char *msg)
{
	*why = msg;
	return -1;
}

/*
 * "1048576", "512K", "512M", "2G", "1T" (binary units, optional "iB"/"B").
 * Rejects negatives, overflow, junk and empty strings.
 */
int
conf_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		mul = 1ULL << 10;
		end++;
		break;
	case 'M':
		mul = 1ULL << 20;
		end++;
		break;
	case 'G':
		mul = 1ULL << 30;
		end++;
		break;
	case 'T':
		mul = 1ULL << 40;
		end++;
		break;
	case 'B':
		break;
	default:
		return -1;
	}
	if (mul > 1 && (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0))
		end += strlen(end);
	else if (mul == 1 && strcasecmp(end, "B") == 0)
		end++;
	if (*end != '\0')
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = (uint64_t)v * mul;
	return 0;
}

/* "500ms", "2s", "1m", or a bare number of seconds -> ms. */
int
conf_parse_duration(const char *s, uint64_t *ms)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || v > 86400ULL * 1000)
		return -1;
	if (strcmp(end, "ms") == 0)
		*ms = v;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		*ms = v * 1000;
	else if (strcmp(end, "m") == 0)
		*ms = v * 60000;
	else
		return -1;
	return 0;
}

int
conf_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * Double quotes group words, with \" and \\ as escapes; `#` outside
 * quotes ends the line.
 */
int
conf_tokenize(char *line, char **tok, int max, const char **why)
{
	int n = 0;
	char *r = line, *w;

	for (;;) {
		while (*r == ' ' || *r == '\t' || *r == '\r')
			r++;
		if (*r == '\0' || *r == '#')
			return n;
		if (n == max)
			return lexerr(why, "too many words on one line");
		tok[n++] = w = r;
		if (*r == '"') {
			tok[n - 1] = w = ++r;
			for (;;) {
				if (*r == '\0')
					return lexerr(why, "unterminated string");
				if (*r == '"') {
					r++;
					break;
				}
				if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
					r++;
				*w++ = *r++;
			}
			if (*r != '\0' && *r != ' ' && *r != '\t' &&
			    *r != '\r' && *r != '#')
				return lexerr(why, "junk after closing quote");
			if (*r == '#') {
				*w = '\0';
				return n;
			}
			if (*r != '\0')
				r++;
			*w = '\0';
			continue;
		}
		while (*r != '\0' && *r != ' ' && *r != '\t' && *r != '\r' &&
		    *r != '#') {
			if ((unsigned char)*r < 0x20 || *r == '"')
				return lexerr(why, "invalid character in word");
			r++;
		}
		if (*r == '#') {
			*r = '\0';
			return n;
		}
		if (*r != '\0')
			*r++ = '\0';
	}
}
