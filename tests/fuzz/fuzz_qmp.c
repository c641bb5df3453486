// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz the QMP backend's reply handling (host-agent/qmp.c): the input is
 * what a QEMU (or something pretending to be one) sends on the socket.
 * qmp.c is included so that its connection state machine is driven as in
 * the daemon: a connection fresh after connect() (waiting for the
 * greeting) gets the input in its read buffer and qc_read_cb() runs over
 * it, with the real guest list (guest.c) and config defaults behind it.
 * After every line, a ready guest is polled (qom-get guest-stats,
 * query-balloon) and given a target, as the tick would.  Commands are
 * numbered deterministically (the seeds in corpus/qmp answer them by id:
 * caps 257, memory size 517, qom-list 770, ...), so the fuzzer can reach
 * every state.  Each "return" is also fed to the pure parsers.
 *
 * Checks: a guest's actual and stats come only from a connection that is
 * ready; nothing holds more commands than QMP_MAX_PENDING; the guest list
 * holds at most this connection's guest; no leak (ASan replay build).
 */
#include <sys/socket.h>

#include "../../host-agent/qmp.c"
#include "fuzz_main.h"

static struct memcoopd	 md;
static struct config	 conf;
static int		 sp[2];

static void
fuzz_init(void)
{
	log_init(1, 0, "fuzz-qmp");
	config_init(&conf);
	memset(&md, 0, sizeof(md));
	TAILQ_INIT(&md.guests);
	md.conf = &conf;
	md.backend = &qmp_backend;
	if ((md.base = event_base_new()) == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		abort();
	/* what we "send" to QEMU accumulates in the bufferevent, unread */
}

/* The pure helpers on whatever "return" a line carries. */
static void
pure_parsers(const char *line, size_t len)
{
	json_t *msg = json_loadb(line, len, JSON_DECODE_INT_AS_REAL, NULL);
	json_t *ret = json_object_get(msg, "return");
	struct guest_stats st;
	char path[160];

	if (ret != NULL) {
		if (qmp_parse_guest_stats(ret, &st, 1000000, 1700000000) == 0)
			FUZZ_ASSERT(st.valid != 0 && st.when > 0);
		if (qmp_find_balloon(ret, "/machine/peripheral", path,
		    sizeof(path)) == 0)
			FUZZ_ASSERT(strncmp(path, "/machine/peripheral/", 20)
			    == 0 && strchr(path + 20, '/') == NULL);
	}
	json_decref(msg);
}

static void
fuzz_one(const uint8_t *data, size_t len)
{
	struct qmp q;
	struct qmp_conn *c;
	struct evbuffer *in;
	const uint8_t *p = data, *nl;
	int fd;

	memset(&q, 0, sizeof(q));
	q.md = &md;
	q.conf = &conf;
	TAILQ_INIT(&q.conns);
	md.bdata = &q;
	if ((c = qc_new(&q, "fz", "/nonexistent/fz.qmp", 0)) == NULL)
		abort();
	if ((fd = dup(sp[0])) == -1)
		abort();
	c->bev = bufferevent_socket_new(md.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		abort();
	bufferevent_setcb(c->bev, qc_read_cb, NULL, qc_event_cb, c);
	c->state = QC_GREETING;
	c->pid = 4242;
	in = bufferevent_get_input(c->bev);

	/* line by line, as reads might deliver it; then what is left */
	while (c->bev != NULL && p < data + len) {
		nl = memchr(p, '\n', (size_t)(data + len - p));
		if (nl == NULL)
			nl = data + len - 1;
		/* as bufferevent's own read does: the end is frozen else */
		evbuffer_unfreeze(in, 0);
		evbuffer_add(in, p, (size_t)(nl - p + 1));
		evbuffer_freeze(in, 0);
		pure_parsers((const char *)p, (size_t)(nl - p + 1));
		p = nl + 1;
		qc_read_cb(c->bev, c);
		FUZZ_ASSERT(c->npending <= QMP_MAX_PENDING);
		FUZZ_ASSERT(md.nguests <= 1);
		if (c->g != NULL) {
			FUZZ_ASSERT(c->state == QC_READY);
			FUZZ_ASSERT(c->g->bdata == c);
			FUZZ_ASSERT(c->g->qemu_pid == 4242);
			(void)qmp_poll_stats(&md, c->g);
			(void)qmp_set_target(&md, c->g, 128 * MIB);
		}
	}
	if (TAILQ_FIRST(&md.guests) != NULL && c->g == NULL)
		FUZZ_ASSERT(TAILQ_FIRST(&md.guests)->state == GUEST_OFFLINE);
	qc_free(c);
	while (!TAILQ_EMPTY(&md.guests))
		guest_remove(&md, TAILQ_FIRST(&md.guests));
	md.bdata = NULL;
}
