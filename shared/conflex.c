// SPDX-License-Identifier: GPL-2.0-only
/*
 * The lexer shared by memcoopd's and memcoop-guestd's config parsers
 * (moved here from host-agent/parse.c).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conflex.h"
#include "io.h"

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

int
conf_err(struct conf_ctx *pc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (pc->errlen == 0)
		return -1;
	n = snprintf(pc->err, pc->errlen, "%s:%u: ", pc->name, pc->line);
	if (n < 0 || (size_t)n >= pc->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(pc->err + n, pc->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

int
conf_next(struct conf_ctx *pc, const char **text,
    char line[CONF_LINE_MAX + 1], char **tok, int max)
{
	const char *p = *text, *nl, *why;
	size_t len;
	int ntok;

	while (*p != '\0') {
		pc->line++;
		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (len > CONF_LINE_MAX)
			return conf_err(pc, "line too long (max %d)",
			    CONF_LINE_MAX);
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (nl != NULL);
		*text = p;
		if ((ntok = conf_tokenize(line, tok, max, &why)) == -1)
			return conf_err(pc, "%s", why);
		if (ntok > 0)
			return ntok;
	}
	*text = p;
	return 0;
}

int
conf_set_string(struct conf_ctx *pc, char **dst, const char *val)
{
	char *s;

	if (*val == '\0')
		return conf_err(pc, "empty value");
	if ((s = strdup(val)) == NULL)
		return conf_err(pc, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

int
conf_size_arg(struct conf_ctx *pc, const char *key, const char *val,
    uint64_t *out)
{
	if (conf_parse_size(val, out) == -1)
		return conf_err(pc, "%s: invalid size \"%s\" (e.g. 64M, 2G)",
		    key, val);
	return 0;
}

int
conf_word_find(const struct conf_word *words, const char *val, int *out)
{
	for (; words->word != NULL; words++) {
		if (strcmp(val, words->word) == 0) {
			*out = words->value;
			return 0;
		}
	}
	return -1;
}

int
conf_word_arg(struct conf_ctx *pc, const char *key, const char *val,
    const struct conf_word *words, int *out)
{
	char list[256];
	size_t len = 0;
	int i, n;

	if (conf_word_find(words, val, out) == 0)
		return 0;
	for (n = 0; words[n].word != NULL; n++)
		;
	list[0] = '\0';
	for (i = 0; i < n && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
		    i == 0 ? "" : i == n - 1 ? " or " : ", ", words[i].word);
	return conf_err(pc, "%s: expected %s", key, list);
}

int
conf_valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max)
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' &&
		    *s != '.' && *s != '+')
			return 0;
	return 1;
}

int
conf_read_file(const char *path, size_t max, char **bufp, size_t *lenp,
    char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > max) {
		snprintf(err, errlen, "%s: not a regular file of at most %zu "
		    "bytes", path, max);
		close(fd);
		return -1;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return -1;
	}
	n = io_read_all(fd, buf, (size_t)st.st_size + 1);
	if (n == -1 || strlen(buf) != (size_t)n) {
		snprintf(err, errlen, "%s: %s", path,
		    n == -1 ? strerror(errno) : "NUL byte in file");
		free(buf);
		close(fd);
		return -1;
	}
	*bufp = buf;
	*lenp = (size_t)n;
	return fd;
}
