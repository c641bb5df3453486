// SPDX-License-Identifier: GPL-2.0-only
/*
 * memcoopd's configuration file: line oriented, one setting per line,
 * `#` starts a comment, values with spaces go in double quotes, and one
 * block per guest:
 *
 *	guest web1 {
 *		qmp "/run/qemu/web1.qmp"
 *		min 512M
 *		max 4G
 *	}
 *
 * docs/memcoopd.md lists every keyword.  Errors name the file and line.
 */
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conflex.h"
#include "memcoopd.h"

#define MAX_TOKENS	8
#define CONFIG_MAX_SIZE	(1024 * 1024)

void
config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->sock_gid = (gid_t)-1;
	c->tick_ms = 2000;
	c->stats_period = 2;
	c->auto_enabled = 1;
	c->backend = BACKEND_QMP;
	c->metrics_port = 0;
	c->ksm_mode = KSMC_UNSET;
	c->shutdown_restore = 0;
	c->restore_step = 0;		/* step-max */
	c->restore_period_ms = 1000;
	c->restore_timeout_ms = 60000;
	policy_defaults(&c->pol);
	TAILQ_INIT(&c->guests);
}

void
config_free(struct config *c)
{
	struct guest_conf *gc;

	while ((gc = TAILQ_FIRST(&c->guests)) != NULL) {
		TAILQ_REMOVE(&c->guests, gc, entry);
		free(gc->qmp);
		free(gc);
	}
	free(c->path);
	free(c->sock_path);
	free(c->sock_group);
	free(c->libvirt_uri);
	free(c->qmp_dir);
	free(c->metrics_addr);
	free(c->ksm_sysfs);
	free(c->procdir);
	free(c->state_dir);
	memset(c, 0, sizeof(*c));
	TAILQ_INIT(&c->guests);
}

struct guest_conf *
config_find_guest(const struct config *c, const char *name)
{
	struct guest_conf *gc;

	TAILQ_FOREACH(gc, &c->guests, entry)
		if (strcmp(gc->name, name) == 0)
			return gc;
	return NULL;
}

/* The words of "mode", in the config and the control protocol. */
static const struct conf_word guest_modes[] = {
	{ "auto", GMODE_AUTO }, { "fixed", GMODE_FIXED },
	{ "manual", GMODE_MANUAL }, { NULL, 0 }
};

const char *
guest_mode_name(enum guest_mode m)
{
	const struct conf_word *w;

	for (w = guest_modes; w->word != NULL; w++)
		if (w->value == (int)m)
			return w->word;
	return "?";
}

int
guest_mode_parse(const char *s, enum guest_mode *m)
{
	int w;

	if (conf_word_find(guest_modes, s, &w) == -1)
		return -1;
	*m = w;
	return 0;
}

/* "1048576", "512K", "512M", "2G", "1T" (binary units, optional "iB"/"B"). */
int
parse_size(const char *s, uint64_t *out)
{
	return conf_parse_size(s, out);
}

#define parse_duration	conf_parse_duration
#define parse_uint	conf_parse_uint

static int
parse_bool(const char *s, int *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "on") == 0 ||
	    strcmp(s, "true") == 0)
		*out = 1;
	else if (strcmp(s, "no") == 0 || strcmp(s, "off") == 0 ||
	    strcmp(s, "false") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int
valid_guest_name(const char *s)
{
	return conf_valid_name(s, GUEST_NAME_MAX);
}

static int
guest_setting(struct conf_ctx *pc, struct guest_conf *gc, int ntok, char **tok)
{
	unsigned long long v;

	if (ntok != 2)
		return conf_err(pc, "%s: expected one value", tok[0]);
	if (strcmp(tok[0], "qmp") == 0)
		return conf_set_string(pc, &gc->qmp, tok[1]);
	if (strcmp(tok[0], "target") == 0) {
		if (conf_size_arg(pc, tok[0], tok[1], &gc->set.target) == -1)
			return -1;
		if (gc->set.mode == GMODE_AUTO)
			gc->set.mode = GMODE_FIXED;
		return 0;
	}
	if (strcmp(tok[0], "min") == 0)
		return conf_size_arg(pc, tok[0], tok[1], &gc->set.min);
	if (strcmp(tok[0], "max") == 0)
		return conf_size_arg(pc, tok[0], tok[1], &gc->set.max);
	if (strcmp(tok[0], "weight") == 0) {
		if (parse_uint(tok[1], GUEST_WEIGHT_MAX, &v) == -1 || v == 0)
			return conf_err(pc, "weight: expected 1..%d", GUEST_WEIGHT_MAX);
		gc->set.weight = (unsigned int)v;
		return 0;
	}
	if (strcmp(tok[0], "mode") == 0) {
		int w;

		if (conf_word_arg(pc, tok[0], tok[1], guest_modes, &w) == -1)
			return -1;
		gc->set.mode = w;
		return 0;
	}
	return conf_err(pc, "unknown guest setting \"%s\"", tok[0]);
}

static int
check_guest(struct conf_ctx *pc, struct guest_conf *gc)
{
	struct guest_settings *s = &gc->set;

	if (s->min != 0 && s->max != 0 && s->min > s->max)
		return conf_err(pc, "guest %s: min is above max", gc->name);
	if (s->mode == GMODE_FIXED && s->target == 0)
		return conf_err(pc, "guest %s: mode fixed needs a target", gc->name);
	if (s->target != 0 && ((s->min != 0 && s->target < s->min) ||
	    (s->max != 0 && s->target > s->max)))
		return conf_err(pc, "guest %s: target outside min..max", gc->name);
	return 0;
}

/* A numeric IPv4 address in 127/8, or ::1. */
static int
loopback_addr(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 &&
	    memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
}

static int
metrics_setting(struct conf_ctx *pc, struct config *c, const char *val)
{
	unsigned long long port;
	const char *colon;
	char host[64];
	size_t hl;

	if (strcmp(val, "off") == 0) {
		free(c->metrics_addr);
		c->metrics_addr = NULL;
		c->metrics_port = 0;
		return 0;
	}
	if ((colon = strrchr(val, ':')) == NULL)
		return conf_err(pc, "metrics: expected ADDRESS:PORT or off");
	hl = (size_t)(colon - val);
	if (hl == 0 || hl >= sizeof(host))
		return conf_err(pc, "metrics: bad address");
	memcpy(host, val, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	/* numeric only: a name like 127.example.org would be resolved */
	if (!loopback_addr(host))
		return conf_err(pc, "metrics: only a loopback address is allowed");
	if (parse_uint(colon + 1, 65535, &port) == -1 || port == 0)
		return conf_err(pc, "metrics: bad port");
	if (conf_set_string(pc, &c->metrics_addr, host) == -1)
		return -1;
	c->metrics_port = (uint16_t)port;
	return 0;
}

static int
global_setting(struct conf_ctx *pc, struct config *c, int ntok, char **tok)
{
	static const struct conf_word backends[] = {
		{ "qmp", BACKEND_QMP }, { "libvirt", BACKEND_LIBVIRT },
		{ NULL, 0 }
	}, ksm_modes[] = {
		{ "off", KSMC_OFF }, { "on", KSMC_ON }, { "auto", KSMC_AUTO },
		{ "unmanaged", KSMC_UNSET }, { NULL, 0 }
	};
	struct policy_params *p = &c->pol;
	const char *k = tok[0], *v = tok[1];
	unsigned long long u;
	uint64_t ms;
	int w;

	if (ntok != 2)
		return conf_err(pc, "%s: expected one value", k);
	if (strcmp(k, "socket") == 0)
		return conf_set_string(pc, &c->sock_path, v);
	if (strcmp(k, "socket-group") == 0)
		return conf_set_string(pc, &c->sock_group, v);
	if (strcmp(k, "qmp-dir") == 0)
		return conf_set_string(pc, &c->qmp_dir, v);
	if (strcmp(k, "libvirt-uri") == 0)
		return conf_set_string(pc, &c->libvirt_uri, v);
	if (strcmp(k, "ksm-sysfs") == 0)
		return conf_set_string(pc, &c->ksm_sysfs, v);
	if (strcmp(k, "proc") == 0)
		return conf_set_string(pc, &c->procdir, v);
	if (strcmp(k, "state-dir") == 0)
		return conf_set_string(pc, &c->state_dir, v);
	if (strcmp(k, "restore-step") == 0)
		return conf_size_arg(pc, k, v, &c->restore_step);
	if (strcmp(k, "restore-period") == 0) {
		if (parse_duration(v, &c->restore_period_ms) == -1 ||
		    c->restore_period_ms < 100 || c->restore_period_ms > 600000)
			return conf_err(pc, "restore-period: expected 100ms..10m");
		return 0;
	}
	if (strcmp(k, "restore-timeout") == 0) {
		if (parse_duration(v, &c->restore_timeout_ms) == -1 ||
		    c->restore_timeout_ms > 3600000)
			return conf_err(pc, "restore-timeout: expected 0..1h");
		return 0;
	}
	if (strcmp(k, "metrics") == 0)
		return metrics_setting(pc, c, v);
	if (strcmp(k, "backend") == 0) {
		if (conf_word_arg(pc, k, v, backends, &w) == -1)
			return -1;
		c->backend = w;
		return 0;
	}
	if (strcmp(k, "ksm") == 0) {
		if (conf_word_arg(pc, k, v, ksm_modes, &w) == -1)
			return -1;
		c->ksm_mode = w;
		return 0;
	}
	if (strcmp(k, "auto") == 0) {
		if (parse_bool(v, &c->auto_enabled) == -1)
			return conf_err(pc, "auto: expected yes or no");
		return 0;
	}
	if (strcmp(k, "restore-on-exit") == 0) {
		if (parse_bool(v, &c->shutdown_restore) == -1)
			return conf_err(pc, "restore-on-exit: expected yes or no");
		return 0;
	}
	if (strcmp(k, "tick") == 0) {
		if (parse_duration(v, &ms) == -1 || ms < 100 || ms > 600000)
			return conf_err(pc, "tick: expected 100ms..10m");
		c->tick_ms = (uint32_t)ms;
		return 0;
	}
	if (strcmp(k, "stats-period") == 0) {
		if (parse_uint(v, 3600, &u) == -1 || u == 0)
			return conf_err(pc, "stats-period: expected 1..3600 seconds");
		c->stats_period = (uint32_t)u;
		return 0;
	}
	if (strcmp(k, "hold") == 0) {
		if (parse_duration(v, &p->hold_ms) == -1)
			return conf_err(pc, "hold: expected a duration (e.g. 30s)");
		return 0;
	}
	if (strcmp(k, "stall-hold") == 0) {
		if (parse_duration(v, &p->stall_hold_ms) == -1)
			return conf_err(pc, "stall-hold: expected a duration "
			    "(e.g. 30s)");
		return 0;
	}
	if (strcmp(k, "stats-max-age") == 0) {
		if (parse_duration(v, &p->stats_max_age) == -1 ||
		    p->stats_max_age == 0)
			return conf_err(pc, "stats-max-age: expected a duration");
		return 0;
	}
	if (strcmp(k, "calm-ticks") == 0) {
		if (parse_uint(v, 1000, &u) == -1)
			return conf_err(pc, "calm-ticks: expected 0..1000");
		p->calm_ticks = (unsigned int)u;
		return 0;
	}
	if (strcmp(k, "host-psi-high") == 0) {
		char *end;
		double d;

		errno = 0;
		d = strtod(v, &end);
		if (errno != 0 || *end != '\0' || !(d > 0.0 && d <= 100.0))
			return conf_err(pc, "host-psi-high: expected a percentage");
		p->host_psi_high = d;
		return 0;
	}
	if (strcmp(k, "majflt-rate-high") == 0) {
		if (parse_uint(v, 1000000000ULL, &u) == -1)
			return conf_err(pc, "majflt-rate-high: expected faults/s");
		p->majflt_rate_high = u;
		return 0;
	}
	if (strcmp(k, "host-floor") == 0)
		return conf_size_arg(pc, k, v, &p->host_floor);
	if (strcmp(k, "host-comfort") == 0)
		return conf_size_arg(pc, k, v, &p->host_comfort);
	if (strcmp(k, "guest-min") == 0)
		return conf_size_arg(pc, k, v, &p->guest_min);
	if (strcmp(k, "guest-reserve") == 0)
		return conf_size_arg(pc, k, v, &p->guest_reserve);
	if (strcmp(k, "guest-slack") == 0)
		return conf_size_arg(pc, k, v, &p->guest_slack);
	if (strcmp(k, "step-max") == 0)
		return conf_size_arg(pc, k, v, &p->step_max);
	if (strcmp(k, "step-min") == 0)
		return conf_size_arg(pc, k, v, &p->step_min);
	if (strcmp(k, "swap-rate-high") == 0)
		return conf_size_arg(pc, k, v, &p->swap_rate_high);
	return conf_err(pc, "unknown keyword \"%s\"", k);
}

static int
check_config(struct conf_ctx *pc, struct config *c)
{
	struct policy_params *p = &c->pol;

	pc->line = 0;
	if (p->step_max == 0)
		return conf_err(pc, "step-max must not be 0");
	if (p->step_min > p->step_max)
		return conf_err(pc, "step-min is above step-max");
	if (p->host_comfort < p->host_floor)
		return conf_err(pc, "host-comfort is below host-floor");
	return 0;
}

int
config_check_runtime(const struct config *c, char *err, size_t errlen)
{
	struct stat st;

	if (c->backend != BACKEND_QMP || c->qmp_dir == NULL)
		return 0;
	if (stat(c->qmp_dir, &st) == -1) {
		snprintf(err, errlen, "qmp-dir %s: %s", c->qmp_dir,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "qmp-dir %s: not a directory",
		    c->qmp_dir);
		return -1;
	}
	return 0;
}

int
config_parse_string(struct config *c, const char *name, const char *text,
    char *err, size_t errlen)
{
	struct conf_ctx pc = { name, 0, err, errlen };
	struct guest_conf *gc = NULL;
	char line[CONF_LINE_MAX + 1], *tok[MAX_TOKENS];
	const char *p = text;
	unsigned int gline = 0;
	int ntok;

	if (errlen > 0)
		err[0] = '\0';
	while ((ntok = conf_next(&pc, &p, line, tok, MAX_TOKENS)) != 0) {
		if (ntok == -1)
			return -1;
		if (gc != NULL) {
			if (strcmp(tok[0], "}") == 0) {
				if (ntok != 1)
					return conf_err(&pc, "junk after \"}\"");
				if (check_guest(&pc, gc) == -1)
					return -1;
				gc = NULL;
				continue;
			}
			if (strcmp(tok[0], "guest") == 0)
				return conf_err(&pc, "guest block inside guest "
				    "block (missing \"}\" for line %u?)", gline);
			if (guest_setting(&pc, gc, ntok, tok) == -1)
				return -1;
			continue;
		}
		if (strcmp(tok[0], "}") == 0)
			return conf_err(&pc, "\"}\" without a guest block");
		if (strcmp(tok[0], "guest") == 0) {
			if (ntok != 3 || strcmp(tok[2], "{") != 0)
				return conf_err(&pc, "expected: guest NAME {");
			if (!valid_guest_name(tok[1]))
				return conf_err(&pc, "invalid guest name \"%s\" "
				    "(letters, digits, - _ . +; at most %d)",
				    tok[1], GUEST_NAME_MAX - 1);
			if (config_find_guest(c, tok[1]) != NULL)
				return conf_err(&pc, "guest %s defined twice",
				    tok[1]);
			if ((gc = calloc(1, sizeof(*gc))) == NULL)
				return conf_err(&pc, "out of memory");
			strcpy(gc->name, tok[1]);
			gc->set.weight = GUEST_WEIGHT_DEFAULT;
			TAILQ_INSERT_TAIL(&c->guests, gc, entry);
			gline = pc.line;
			continue;
		}
		if (global_setting(&pc, c, ntok, tok) == -1)
			return -1;
	}
	if (gc != NULL) {
		pc.line = gline;
		return conf_err(&pc, "guest %s: block not closed", gc->name);
	}
	return check_config(&pc, c);
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int fd, rv;

	if ((fd = conf_read_file(path, CONFIG_MAX_SIZE, &buf, &len, err,
	    errlen)) == -1)
		return -1;
	close(fd);
	rv = config_parse_string(c, path, buf, err, errlen);
	free(buf);
	if (rv == 0 && c->path == NULL && (c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (rv == 0 && c->sock_group != NULL) {
		struct group *gr = getgrnam(c->sock_group);

		if (gr == NULL) {
			snprintf(err, errlen, "%s: socket-group %s: no such "
			    "group", path, c->sock_group);
			return -1;
		}
		c->sock_gid = gr->gr_gid;
	}
	return rv;
}
