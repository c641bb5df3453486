// SPDX-License-Identifier: GPL-2.0-only
/*
 * Prometheus output (host-agent/metrics.c): one series per guest for each
 * figure, host figures only when read, label values escaped, and every
 * sample line well formed for the text format.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "memcoopd.h"
#include "testdata.h"

static struct memcoopd md;
static struct config conf;

static char *
render(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	metrics_render(&md, b);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

/* Every line is a comment or `name{labels} value` with a numeric value. */
static int
well_formed(const char *text)
{
	const char *line = text;

	while (*line != '\0') {
		const char *nl = strchr(line, '\n'), *sp;
		char *end;

		if (nl == NULL)
			return 0;		/* last line unterminated */
		if (line[0] != '#') {
			if (!isalpha((unsigned char)line[0]))
				return 0;
			sp = nl;
			while (sp > line && sp[-1] != ' ')
				sp--;
			if (sp == line)
				return 0;
			strtod(sp, &end);
			if (end != nl)
				return 0;
		}
		line = nl + 1;
	}
	return 1;
}

static void
test_render(void)
{
	const struct backend_ops ops = { .name = "fake" };
	struct guest *g1, *g2;
	char *s;

	config_init(&conf);
	memset(&md, 0, sizeof(md));
	TAILQ_INIT(&md.guests);
	md.conf = &conf;

	/* no guests, no host figures yet */
	s = render();
	CU_ASSERT(well_formed(s));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "memcoop_up 1\n"));
	CU_ASSERT_PTR_NULL(strstr(s, "memcoop_host_mem_available_bytes "));
	free(s);

	g1 = guest_add(&md, "web1", &ops, NULL);
	g1->target = 768 * MIB;
	g1->actual = 800 * MIB;
	g1->stats.valid = GST_AVAIL | GST_MAJFLT;
	g1->stats.avail = 300 * MIB;
	g1->stats.majflt = 42;
	g2 = guest_add(&md, "we\"ird\\name", &ops, NULL);
	guest_offline(&md, g2);
	md.host.valid_mem = 1;
	md.host.mem_available = 5 * 1024 * MIB;
	md.host.mem_total = 8 * 1024 * MIB;
	md.ticks = 9;
	s = render();
	CU_ASSERT(well_formed(s));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_target_bytes{guest=\"web1\"} 805306368\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_actual_bytes{guest=\"web1\"} 838860800\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_usable_bytes{guest=\"web1\"} 314572800\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_major_faults_total{guest=\"web1\"} 42\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_online{guest=\"web1\"} 1\n"));
	/* the mode is a state set, not a label of online */
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_mode{guest=\"web1\",mode=\"auto\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_mode{guest=\"web1\",mode=\"manual\"} 0\n"));
	/* escaped label; no usable series without stats */
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_guest_online{guest=\"we\\\"ird\\\\name\"} 0\n"));
	CU_ASSERT_PTR_NULL(strstr(s,
	    "memcoop_guest_usable_bytes{guest=\"we\\\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "memcoop_host_mem_available_bytes 5368709120\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "memcoop_ticks_total 9\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s,
	    "# TYPE memcoop_guest_swap_in_bytes_total counter\n"));
	free(s);
	while (!TAILQ_EMPTY(&md.guests))
		guest_remove(&md, TAILQ_FIRST(&md.guests));
	config_free(&conf);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("metrics", NULL, NULL);
	CU_add_test(s, "Prometheus text", test_render);
	return td_run();
}
