// SPDX-License-Identifier: GPL-2.0-only
/* RESP2 for memcoop-guestd (see resp.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

static ssize_t
fail(const char **why, const char *msg)
{
	*why = msg;
	return -1;
}

/*
 * The line at @buf up to CRLF: its length without CRLF, -2 if not complete
 * yet, -1 if it is too long or holds a bare CR or LF.
 */
static ssize_t
line_len(const char *buf, size_t len)
{
	size_t i, max = len < RESP_LINE_MAX + 2 ? len : RESP_LINE_MAX + 2;

	for (i = 0; i < max; i++) {
		if (buf[i] == '\r') {
			if (i + 1 == len)
				return -2;
			return buf[i + 1] == '\n' ? (ssize_t)i : -1;
		}
		if (buf[i] == '\n' || buf[i] == '\0')
			return -1;
	}
	return len < RESP_LINE_MAX + 2 ? -2 : -1;
}

/* A signed decimal filling exactly @n bytes. */
static int
parse_ll(const char *s, size_t n, long long *out)
{
	char tmp[32], *end;

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (tmp[0] != '-' && (tmp[0] < '0' || tmp[0] > '9'))
		return -1;
	errno = 0;
	*out = strtoll(tmp, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static ssize_t
parse_at(const char *buf, size_t len, struct resp_val *v, int depth,
    const char **why)
{
	ssize_t ll, used, r;
	long long n;
	size_t i;

	memset(v, 0, sizeof(*v));
	if (len == 0)
		return 0;
	if ((ll = line_len(buf + 1, len - 1)) == -2)
		return 0;
	if (ll == -1)
		return fail(why, "reply line too long or malformed");
	used = 1 + ll + 2;
	switch (buf[0]) {
	case '+':
	case '-':
		v->type = buf[0] == '+' ? RESP_SIMPLE : RESP_ERROR;
		if ((v->str = strndup(buf + 1, (size_t)ll)) == NULL)
			return fail(why, "out of memory");
		v->len = (size_t)ll;
		return used;
	case ':':
		v->type = RESP_INT;
		if (parse_ll(buf + 1, (size_t)ll, &v->integer) == -1)
			return fail(why, "integer reply is not a number");
		return used;
	case '$':
		if (parse_ll(buf + 1, (size_t)ll, &n) == -1 || n < -1)
			return fail(why, "bad bulk length");
		if (n == -1) {
			v->type = RESP_NIL;
			return used;
		}
		if (n > RESP_BULK_MAX)
			return fail(why, "bulk reply over 1 MiB");
		if ((size_t)used + (size_t)n + 2 > len)
			return 0;
		if (buf[used + n] != '\r' || buf[used + n + 1] != '\n')
			return fail(why, "bulk reply not ended by CRLF");
		v->type = RESP_BULK;
		if ((v->str = malloc((size_t)n + 1)) == NULL)
			return fail(why, "out of memory");
		memcpy(v->str, buf + used, (size_t)n);
		v->str[n] = '\0';
		v->len = (size_t)n;
		return used + n + 2;
	case '*':
		if (parse_ll(buf + 1, (size_t)ll, &n) == -1 || n < -1)
			return fail(why, "bad array length");
		if (n == -1) {
			v->type = RESP_NIL;
			return used;
		}
		if (n > RESP_ARRAY_MAX)
			return fail(why, "array reply too long");
		if (depth >= RESP_DEPTH_MAX)
			return fail(why, "array reply nested too deep");
		v->type = RESP_ARRAY;
		if (n > 0 && (v->elem = calloc((size_t)n, sizeof(*v->elem))) ==
		    NULL)
			return fail(why, "out of memory");
		for (i = 0; i < (size_t)n; i++) {
			r = parse_at(buf + used, len - (size_t)used, &v->elem[i],
			    depth + 1, why);
			if (r <= 0) {
				resp_free(v);
				return r;
			}
			v->nelem = i + 1;
			used += r;
		}
		v->nelem = (size_t)n;
		return used;
	}
	return fail(why, "not a RESP reply");
}

ssize_t
resp_parse(const char *buf, size_t len, struct resp_val *out, const char **why)
{
	*why = NULL;
	return parse_at(buf, len, out, 0, why);
}

void
resp_free(struct resp_val *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nelem; i++)
		resp_free(&v->elem[i]);
	free(v->elem);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

int
resp_command(char *out, size_t cap, int argc, const char *const *argv)
{
	size_t off = 0, n;
	int i, w;

	w = snprintf(out, cap, "*%d\r\n", argc);
	if (w < 0 || (size_t)w >= cap)
		return -1;
	off = (size_t)w;
	for (i = 0; i < argc; i++) {
		n = strlen(argv[i]);
		w = snprintf(out + off, cap - off, "$%zu\r\n", n);
		if (w < 0 || (size_t)w >= cap - off || n + 2 > cap - off - (size_t)w)
			return -1;
		off += (size_t)w;
		memcpy(out + off, argv[i], n);
		off += n;
		memcpy(out + off, "\r\n", 2);
		off += 2;
	}
	if (off >= cap)
		return -1;
	out[off] = '\0';
	return (int)off;
}

int
resp_info_field(const char *info, const char *key, char *val, size_t len)
{
	size_t kl = strlen(key), n;
	const char *p = info;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			p += kl + 1;
			n = strcspn(p, "\r\n");
			if (n == 0 || n >= len)
				return -1;
			memcpy(val, p, n);
			val[n] = '\0';
			return 0;
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}
