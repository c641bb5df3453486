// SPDX-License-Identifier: GPL-2.0-only
/* The HotSpot attach protocol's requests and replies (see attach.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"

int
attach_jcmd_request(char *buf, size_t cap, const char *cmdline)
{
	static const char head[] = "1\0jcmd";	/* version, command */
	size_t n = strlen(cmdline), need = sizeof(head) + n + 3;

	if (need > cap || n == 0)
		return -1;
	memcpy(buf, head, sizeof(head));		/* with its NUL */
	memcpy(buf + sizeof(head), cmdline, n + 1);	/* arg0 */
	buf[sizeof(head) + n + 1] = '\0';		/* arg1 */
	buf[sizeof(head) + n + 2] = '\0';		/* arg2 */
	return (int)need;
}

int
attach_parse_reply(char *buf, size_t len, int *status, char **text)
{
	size_t i = 0;
	long v = 0;
	int neg = 0;

	buf[len] = '\0';
	if (i < len && buf[i] == '-') {
		neg = 1;
		i++;
	}
	if (i >= len || buf[i] < '0' || buf[i] > '9')
		return -1;
	for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
		v = v * 10 + (buf[i] - '0');
		if (v > 1000000)
			return -1;
	}
	if (i < len && buf[i] != '\n')
		return -1;
	*status = neg ? (int)-v : (int)v;
	*text = buf + (i < len ? i + 1 : i);
	/* one NUL anywhere in the text ends it: it is shown, not parsed */
	return 0;
}

int
attach_jcmd_quiet_ok(int status, const char *text)
{
	if (status != 0)
		return 0;
	for (; *text != '\0'; text++)
		if (*text != ' ' && *text != '\n' && *text != '\r' &&
		    *text != '\t')
			return 0;
	return 1;
}

static int
has_flag(const char *s, const char *flag)
{
	size_t n = strlen(flag);
	const char *p = s;

	while ((p = strstr(p, flag)) != NULL) {
		if ((p == s || p[-1] == ' ' || p[-1] == '\n') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return 1;
		p += n;
	}
	return 0;
}

enum jvm_gc
attach_gc_kind(const char *f)
{
	if (has_flag(f, "-XX:+UseZGC"))
		return GC_Z;
	if (has_flag(f, "-XX:+UseShenandoahGC"))
		return GC_SHENANDOAH;
	if (has_flag(f, "-XX:+UseG1GC"))
		return GC_G1;
	if (has_flag(f, "-XX:+UseParallelGC"))
		return GC_PARALLEL;
	if (has_flag(f, "-XX:+UseSerialGC"))
		return GC_SERIAL;
	if (has_flag(f, "-XX:+UseEpsilonGC"))
		return GC_EPSILON;
	return GC_UNKNOWN;
}

const char *
attach_gc_name(enum jvm_gc g)
{
	switch (g) {
	case GC_SERIAL:		return "Serial";
	case GC_PARALLEL:	return "Parallel";
	case GC_G1:		return "G1";
	case GC_Z:		return "ZGC";
	case GC_SHENANDOAH:	return "Shenandoah";
	case GC_EPSILON:	return "Epsilon";
	case GC_UNKNOWN:	break;
	}
	return "unknown";
}

int
attach_flag_u64(const char *f, const char *name, uint64_t *out)
{
	char key[80];
	const char *p = f;
	size_t n;
	char *end;

	n = (size_t)snprintf(key, sizeof(key), "-XX:%s=", name);
	if (n >= sizeof(key))
		return -1;
	while ((p = strstr(p, key)) != NULL) {
		if (p == f || p[-1] == ' ' || p[-1] == '\n') {
			p += n;
			if (*p < '0' || *p > '9')
				return -1;
			errno = 0;
			*out = strtoull(p, &end, 10);
			if (errno != 0 || (*end != '\0' && *end != ' ' &&
			    *end != '\n'))
				return -1;
			return 0;
		}
		p += n;
	}
	return -1;
}
