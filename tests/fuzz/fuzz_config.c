// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz the configuration parser (host-agent/parse.c,
 * config_parse_string()): the input is a file's text.  Checks: a refused
 * file has an error message; an accepted one holds only what the file
 * format promises (parse.c's checks and docs/memcoopd.md): step-min <=
 * step-max, host-floor <= host-comfort, tick in 100 ms..10 min, guest
 * names valid, limits ordered, weights 1..1000, a fixed target within its
 * limits, a loopback metrics address; and config_free() frees it all
 * (ASan's leak check in the replay build).  parse_size() is fed the
 * first line too.
 */
#include <sys/types.h>
#include <arpa/inet.h>

#include "memcoopd.h"
#include "fuzz_main.h"

static void
fuzz_init(void)
{
}

static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= GUEST_NAME_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		    *s == '.' || *s == '+'))
			return 0;
	return 1;
}

/* A numeric loopback address: nothing a resolver could turn elsewhere. */
static int
loopback(const char *a)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, a, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, a, &a6) == 1 &&
	    memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
}

static void
fuzz_one(const uint8_t *data, size_t len)
{
	struct config c;
	struct guest_conf *gc;
	char *text, err[512];
	uint64_t sz;
	int rv;

	if ((text = malloc(len + 1)) == NULL)
		return;
	memcpy(text, data, len);
	text[len] = '\0';

	{
		char first[64];
		size_t n = strcspn(text, "\n");

		if (n < sizeof(first)) {
			memcpy(first, text, n);
			first[n] = '\0';
			(void)parse_size(first, &sz);
		}
	}

	config_init(&c);
	memset(err, 'x', sizeof(err));
	rv = config_parse_string(&c, "fuzz.conf", text, err, sizeof(err));
	FUZZ_ASSERT(rv == 0 || rv == -1);
	FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
	if (rv == -1) {
		FUZZ_ASSERT(err[0] != '\0');
	} else {
		const struct policy_params *p = &c.pol;

		FUZZ_ASSERT(p->step_max > 0 && p->step_min <= p->step_max);
		FUZZ_ASSERT(p->host_floor <= p->host_comfort);
		FUZZ_ASSERT(c.tick_ms >= 100 && c.tick_ms <= 600000);
		FUZZ_ASSERT(c.metrics_addr == NULL || c.metrics_port != 0);
		FUZZ_ASSERT(c.metrics_addr == NULL ||
		    loopback(c.metrics_addr));
		TAILQ_FOREACH(gc, &c.guests, entry) {
			const struct guest_settings *s = &gc->set;

			FUZZ_ASSERT(name_ok(gc->name));
			FUZZ_ASSERT(config_find_guest(&c, gc->name) == gc);
			FUZZ_ASSERT(s->weight >= 1 &&
			    s->weight <= GUEST_WEIGHT_MAX);
			FUZZ_ASSERT(s->min == 0 || s->max == 0 ||
			    s->min <= s->max);
			FUZZ_ASSERT(s->mode == GMODE_AUTO ||
			    s->mode == GMODE_FIXED || s->mode == GMODE_MANUAL);
			if (s->mode == GMODE_FIXED) {
				FUZZ_ASSERT(s->target != 0);
				FUZZ_ASSERT(s->min == 0 || s->target >= s->min);
				FUZZ_ASSERT(s->max == 0 || s->target <= s->max);
			}
		}
	}
	config_free(&c);
	free(text);
}
