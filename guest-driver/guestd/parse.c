// SPDX-License-Identifier: GPL-2.0-only
/*
 * memcoop-guestd's configuration: memcoopd's grammar (shared/conflex.c
 * is the lexer), one block per application:
 *
 *	grow-margin 256M
 *	app cache {
 *		type redis
 *		address "unix:/run/redis/redis-server.sock"
 *		floor 64M
 *	}
 *
 * docs/memcoop-guestd.md lists every keyword.  Errors name file and line.
 */
#include <sys/stat.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcoop.h>

#include "conflex.h"
#include "guestd.h"
#include "io.h"

#define MAX_TOKENS	8
#define CONFIG_MAX_SIZE	(1024 * 1024)
#define SECRET_MAX	512

void
gconf_init(struct gconf *c)
{
	memset(c, 0, sizeof(*c));
	c->grow_margin = 256 * MIB;
	c->grow_step = 16 * MIB;
	c->grow_period_ms = 5000;
	c->hold_interval_ms = 1000;
	TAILQ_INIT(&c->apps);
}

void
app_conf_free(struct app_conf *ac)
{
	free(ac->address);
	if (ac->password != NULL)
		explicit_bzero(ac->password, strlen(ac->password));
	free(ac->password);
	free(ac->password_file);
	free(ac->pid_file);
	free(ac->process);
	free(ac->path);
	free(ac);
}

void
gconf_free(struct gconf *c)
{
	struct app_conf *ac;

	while ((ac = TAILQ_FIRST(&c->apps)) != NULL) {
		TAILQ_REMOVE(&c->apps, ac, entry);
		app_conf_free(ac);
	}
	free(c->path);
	free(c->sock_path);
	gconf_init(c);
}

static int
dup_str(char **dst, const char *src)
{
	*dst = NULL;
	return src == NULL || (*dst = strdup(src)) != NULL ? 0 : -1;
}

struct app_conf *
app_conf_dup(const struct app_conf *ac)
{
	struct app_conf *n;

	if ((n = malloc(sizeof(*n))) == NULL)
		return NULL;
	*n = *ac;
	if (dup_str(&n->address, ac->address) |
	    dup_str(&n->password, ac->password) |
	    dup_str(&n->password_file, ac->password_file) |
	    dup_str(&n->pid_file, ac->pid_file) |
	    dup_str(&n->process, ac->process) |
	    dup_str(&n->path, ac->path)) {
		app_conf_free(n);
		return NULL;
	}
	return n;
}

const char *
app_type_name(enum app_type t)
{
	switch (t) {
	case APP_REDIS:		return "redis";
	case APP_JVM:		return "jvm";
	case APP_CGROUP:	return "cgroup";
	}
	return "?";
}

static int
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
app_conf_equal(const struct app_conf *a, const struct app_conf *b)
{
	return strcmp(a->name, b->name) == 0 && a->type == b->type &&
	    a->priority == b->priority && a->deadline_ms == b->deadline_ms &&
	    a->measure == b->measure && a->floor == b->floor &&
	    a->pid == b->pid && streq_null(a->address, b->address) &&
	    streq_null(a->password, b->password) &&
	    streq_null(a->password_file, b->password_file) &&
	    streq_null(a->pid_file, b->pid_file) &&
	    streq_null(a->process, b->process) &&
	    streq_null(a->path, b->path);
}

static int
valid_app_name(const char *s)
{
	return conf_valid_name(s, APP_NAME_MAX);
}

static int
app_setting(struct conf_ctx *pc, struct gconf *c, struct app_conf *ac,
    char **tok)
{
	static const struct conf_word types[] = {
		{ "redis", APP_REDIS }, { "jvm", APP_JVM },
		{ "cgroup", APP_CGROUP }, { NULL, 0 }
	}, measures[] = {
		{ "rss", MEASURE_RSS }, { "cgroup", MEASURE_CGROUP },
		{ NULL, 0 }
	};
	const char *k = tok[0], *v = tok[1];
	unsigned long long u;
	int w;

	if (strcmp(k, "type") == 0) {
		if (conf_word_arg(pc, k, v, types, &w) == -1)
			return -1;
		ac->type = w;
		return 0;
	}
	if (strcmp(k, "priority") == 0) {
		if (conf_parse_uint(v, MEMCOOP_PRIO_MAX, &u) == -1)
			return conf_err(pc, "priority: expected 0..%d",
			    MEMCOOP_PRIO_MAX);
		ac->priority = (unsigned int)u;
		return 0;
	}
	if (strcmp(k, "deadline-ms") == 0) {
		if (conf_parse_uint(v, 60000, &u) == -1 || u < 10)
			return conf_err(pc, "deadline-ms: expected 10..60000");
		ac->deadline_ms = u;
		return 0;
	}
	if (strcmp(k, "measure") == 0) {
		if (conf_word_arg(pc, k, v, measures, &w) == -1)
			return -1;
		ac->measure = w;
		return 0;
	}
	if (strcmp(k, "floor") == 0)
		return conf_size_arg(pc, k, v, &ac->floor);
	if (strcmp(k, "address") == 0)
		return conf_set_string(pc, &ac->address, v);
	if (strcmp(k, "password") == 0) {
		c->has_secret = 1;
		return conf_set_string(pc, &ac->password, v);
	}
	if (strcmp(k, "password-file") == 0)
		return conf_set_string(pc, &ac->password_file, v);
	if (strcmp(k, "pid") == 0) {
		if (conf_parse_uint(v, 0x7fffffff, &u) == -1 || u == 0)
			return conf_err(pc, "pid: expected a process id");
		ac->pid = (pid_t)u;
		return 0;
	}
	if (strcmp(k, "pid-file") == 0)
		return conf_set_string(pc, &ac->pid_file, v);
	if (strcmp(k, "process") == 0) {
		if (strlen(v) > 15)
			return conf_err(pc, "process: a command name has at most "
			    "15 characters (/proc/PID/comm)");
		return conf_set_string(pc, &ac->process, v);
	}
	if (strcmp(k, "path") == 0) {
		if (v[0] != '/')
			return conf_err(pc, "path: expected an absolute path");
		return conf_set_string(pc, &ac->path, v);
	}
	return conf_err(pc, "unknown application setting \"%s\"", k);
}

/* Settings that do not belong to the block's type are mistakes. */
static int
check_app(struct conf_ctx *pc, struct app_conf *ac)
{
	int njvm = (ac->pid != 0) + (ac->pid_file != NULL) +
	    (ac->process != NULL);

	switch (ac->type) {
	case APP_REDIS:
		if (njvm != 0 || ac->path != NULL)
			return conf_err(pc, "app %s: pid, pid-file, process and "
			    "path do not apply to type redis", ac->name);
		if (ac->password != NULL && ac->password_file != NULL)
			return conf_err(pc, "app %s: password and password-file "
			    "both given", ac->name);
		if (ac->address == NULL &&
		    (ac->address = strdup("127.0.0.1:6379")) == NULL)
			return conf_err(pc, "out of memory");
		if (strncmp(ac->address, "unix:", 5) != 0 &&
		    strrchr(ac->address, ':') == NULL)
			return conf_err(pc, "app %s: address: expected "
			    "\"unix:/path\" or \"HOST:PORT\"", ac->name);
		if (strncmp(ac->address, "unix:", 5) == 0 &&
		    (ac->address[5] != '/' || strlen(ac->address + 5) >= 108))
			return conf_err(pc, "app %s: address: a unix socket "
			    "needs an absolute path shorter than 108", ac->name);
		break;
	case APP_JVM:
		if (njvm != 1)
			return conf_err(pc, "app %s: type jvm needs exactly one of "
			    "pid, pid-file, process", ac->name);
		if (ac->address != NULL || ac->password != NULL ||
		    ac->password_file != NULL || ac->path != NULL ||
		    ac->floor != 0)
			return conf_err(pc, "app %s: address, password, floor and "
			    "path do not apply to type jvm", ac->name);
		break;
	case APP_CGROUP:
		if (ac->path == NULL)
			return conf_err(pc, "app %s: type cgroup needs a path",
			    ac->name);
		if (njvm != 0 || ac->address != NULL || ac->password != NULL ||
		    ac->password_file != NULL)
			return conf_err(pc, "app %s: only path, floor and the "
			    "common settings apply to type cgroup", ac->name);
		if (ac->measure == MEASURE_RSS)
			return conf_err(pc, "app %s: a cgroup is measured by "
			    "memory.current (measure cgroup)", ac->name);
		break;
	default:
		return conf_err(pc, "app %s: no type (redis, jvm or cgroup)",
		    ac->name);
	}
	if (ac->measure == MEASURE_DEFAULT)
		ac->measure = ac->type == APP_CGROUP ? MEASURE_CGROUP :
		    MEASURE_RSS;
	if (ac->type == APP_REDIS && ac->floor == 0)
		ac->floor = 64 * MIB;
	return 0;
}

/* A duration of 100ms..1h (grow-period, hold-interval), in ms. */
static int
period_arg(struct conf_ctx *pc, const char *k, const char *v, uint64_t *out)
{
	uint64_t ms;

	if (conf_parse_duration(v, &ms) == -1 || ms < 100 || ms > 3600000)
		return conf_err(pc, "%s: expected 100ms..1h", k);
	*out = ms;
	return 0;
}

static int
global_setting(struct conf_ctx *pc, struct gconf *c, char **tok)
{
	const char *k = tok[0], *v = tok[1];

	if (strcmp(k, "socket") == 0) {
		if (v[0] != '/' || strlen(v) >= 108)
			return conf_err(pc, "socket: expected an absolute path "
			    "shorter than 108");
		return conf_set_string(pc, &c->sock_path, v);
	}
	if (strcmp(k, "grow-margin") == 0)
		return conf_size_arg(pc, k, v, &c->grow_margin);
	if (strcmp(k, "grow-step") == 0) {
		if (conf_size_arg(pc, k, v, &c->grow_step) == -1)
			return -1;
		if (c->grow_step == 0)
			return conf_err(pc, "grow-step must not be 0");
		return 0;
	}
	if (strcmp(k, "grow-period") == 0)
		return period_arg(pc, k, v, &c->grow_period_ms);
	if (strcmp(k, "hold-interval") == 0)
		return period_arg(pc, k, v, &c->hold_interval_ms);
	return conf_err(pc, "unknown keyword \"%s\"", k);
}

static struct app_conf *
find_app(struct gconf *c, const char *name)
{
	struct app_conf *ac;

	TAILQ_FOREACH(ac, &c->apps, entry)
		if (strcmp(ac->name, name) == 0)
			return ac;
	return NULL;
}

int
gconf_parse_string(struct gconf *c, const char *name, const char *text,
    char *err, size_t errlen)
{
	struct conf_ctx pc = { name, 0, err, errlen };
	struct app_conf *ac = NULL;
	char line[CONF_LINE_MAX + 1], *tok[MAX_TOKENS];
	const char *p = text;
	int ntok;

	if (errlen > 0)
		err[0] = '\0';
	while ((ntok = conf_next(&pc, &p, line, tok, MAX_TOKENS)) != 0) {
		if (ntok == -1)
			return -1;
		if (strcmp(tok[0], "}") == 0) {
			if (ac == NULL)
				return conf_err(&pc, "\"}\" without an app block");
			if (ntok != 1)
				return conf_err(&pc, "junk after \"}\"");
			if (check_app(&pc, ac) == -1)
				return -1;
			ac = NULL;
			continue;
		}
		if (strcmp(tok[0], "app") == 0) {
			if (ac != NULL)
				return conf_err(&pc, "app block inside app block "
				    "(missing \"}\" for line %u?)", ac->line);
			if (ntok != 3 || strcmp(tok[2], "{") != 0)
				return conf_err(&pc, "expected: app NAME {");
			if (!valid_app_name(tok[1]))
				return conf_err(&pc, "invalid app name \"%s\" "
				    "(letters, digits, - _ . +; at most %d)",
				    tok[1], APP_NAME_MAX - 1);
			if (find_app(c, tok[1]) != NULL)
				return conf_err(&pc, "app %s defined twice", tok[1]);
			if ((ac = calloc(1, sizeof(*ac))) == NULL)
				return conf_err(&pc, "out of memory");
			strcpy(ac->name, tok[1]);
			ac->priority = MEMCOOP_PRIO_UNPRIV;
			ac->deadline_ms = 1000;
			ac->line = pc.line;
			TAILQ_INSERT_TAIL(&c->apps, ac, entry);
			continue;
		}
		if (ntok != 2)
			return conf_err(&pc, "%s: expected one value", tok[0]);
		if (ac != NULL ? app_setting(&pc, c, ac, tok) :
		    global_setting(&pc, c, tok))
			return -1;
	}
	if (ac != NULL) {
		pc.line = ac->line;
		return conf_err(&pc, "app %s: block not closed", ac->name);
	}
	return 0;
}

int
secret_file_ok(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: holds a credential but has mode "
		    "%04o: it must not be accessible by group or others "
		    "(chmod 600)", path, (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

static int
read_password_file(struct app_conf *ac, char *err, size_t errlen)
{
	char buf[SECRET_MAX + 1];
	ssize_t n;
	int fd;

	if ((fd = open(ac->password_file, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "app %s: password-file %s: %s", ac->name,
		    ac->password_file, strerror(errno));
		return -1;
	}
	if (secret_file_ok(fd, ac->password_file, err, errlen) == -1) {
		close(fd);
		return -1;
	}
	n = io_read_all(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || n >= SECRET_MAX) {
		snprintf(err, errlen, "app %s: password-file %s: %s", ac->name,
		    ac->password_file, n < 0 ? strerror(errno) : "too long");
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		snprintf(err, errlen, "app %s: password-file %s is empty",
		    ac->name, ac->password_file);
		return -1;
	}
	free(ac->password);
	ac->password = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (ac->password == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
gconf_load(struct gconf *c, const char *path, char *err, size_t errlen)
{
	struct app_conf *ac;
	char *buf;
	size_t n;
	int fd, rv;

	if ((fd = conf_read_file(path, CONFIG_MAX_SIZE, &buf, &n, err,
	    errlen)) == -1)
		return -1;
	rv = gconf_parse_string(c, path, buf, err, errlen);
	explicit_bzero(buf, n);
	free(buf);
	if (rv == 0 && c->has_secret)
		rv = secret_file_ok(fd, path, err, errlen);
	close(fd);
	TAILQ_FOREACH(ac, &c->apps, entry)
		if (rv == 0 && ac->password_file != NULL)
			rv = read_password_file(ac, err, errlen);
	if (rv == 0 && (c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rv = -1;
	}
	return rv;
}
