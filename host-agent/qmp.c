// SPDX-License-Identifier: GPL-2.0-only
/*
 * The QMP backend: memcoopd talks to each QEMU directly through its QMP
 * socket, no libvirtd needed.  Sockets come from `guest NAME { qmp PATH }`
 * blocks in the config and from a directory (`qmp-dir`) that is rescanned
 * every half second; a socket there named NAME.qmp (or NAME.sock, or just
 * NAME) is guest NAME.
 *
 * Per connection: greeting -> qmp_capabilities -> find the balloon
 * device (qom-list of /machine/peripheral, then peripheral-anon) ->
 * qom-set guest-stats-polling-interval, query-memory-size-summary,
 * query-balloon -> ready.  Then each tick qom-get guest-stats and
 * query-balloon; targets with `balloon`; BALLOON_CHANGE events update the
 * actual size.  QEMU's pid comes from SO_PEERCRED on the socket.  When
 * QEMU exits the guest goes offline and the socket is retried with a
 * backoff (0.5 s doubling to 8 s) until QEMU is back.
 *
 * Every reply is checked for type before use: a malformed or hostile
 * reply is logged and ignored, an oversized line drops the connection.
 * A reply must carry the id of a command sent on this connection and not
 * answered yet; anything else (an id nobody sent, a second answer) is
 * ignored the same way.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "log.h"
#include "memcoopd.h"
#include "qmp.h"

#define QMP_MAX_LINE		(1024 * 1024)
#define QMP_BACKOFF_MIN		500
#define QMP_BACKOFF_MAX		8000
#define QMP_TIMER_MS		500
#define QMP_GREETING_WARN	5000	/* socket busy? */
#define QMP_GREETING_TIMEOUT	15000	/* then give up, retry later */
#define QMP_ANSWER_TIMEOUT	30000	/* a command unanswered this long */
#define QMP_FORGET_MS		300000	/* then forget a vanished socket */
#define QMP_MAX_PENDING		64	/* commands sent, not answered yet */

enum qc_state {
	QC_IDLE = 0,	/* not connected */
	QC_GREETING,	/* connected, waiting for {"QMP": ...} */
	QC_CAPS,	/* qmp_capabilities sent */
	QC_PROBE,	/* looking for the balloon device */
	QC_READY,	/* guest online */
	QC_NOBALLOON,	/* QEMU without a balloon: connected, ignored */
};

/* Command kinds, carried in the low byte of each command's id. */
enum qk {
	QK_CAPS = 1,
	QK_LIST_PERIPH,
	QK_LIST_ANON,
	QK_SET_INTERVAL,
	QK_MEMSIZE,
	QK_QUERY_BALLOON,
	QK_GUEST_STATS,
	QK_BALLOON,
	QK_MAX,
};

struct qmp_conn {
	TAILQ_ENTRY(qmp_conn)	 entry;
	struct qmp		*q;
	char			 name[GUEST_NAME_MAX];
	char			*path;
	int			 from_dir;	/* found in qmp-dir */
	int			 seen;		/* mark for the dir scan */
	uint64_t		 gone_since;	/* socket vanished (ms); 0 = present */
	struct bufferevent	*bev;
	enum qc_state		 state;
	struct guest		*g;
	pid_t			 pid;
	uint64_t		 maxmem;
	uint64_t		 next_try;	/* ms */
	unsigned int		 backoff;	/* ms */
	uint64_t		 connected_at;
	uint64_t		 last_reply;	/* ms, any message from QEMU */
	int			 busy_logged;
	int			 fail_logged;
	unsigned int		 stats_inflight;
	unsigned int		 bad_replies;
	uint32_t		 seq;
	uint32_t		 pending[QMP_MAX_PENDING];	/* their ids */
	unsigned int		 npending;
	char			 balloon_path[160];
	uint64_t		 bal_want;	/* last `balloon` sent */
	uint64_t		 bal_prev;	/* the target before it */
};

struct qmp {
	struct memcoopd		*md;
	const struct config	*conf;
	TAILQ_HEAD(, qmp_conn)	 conns;
	struct event		*timer;
	ino_t			 ctl_ino;	/* the control socket, to skip */
	dev_t			 ctl_dev;
};

static void	qc_connect(struct qmp_conn *);
static void	qc_close(struct qmp_conn *, const char *why);

/* ------------------------------------------------------------------ */
/* Pure helpers (also used by the unit tests) */

/* A QMP number as uint64; -1 / UINT64_MAX ("not reported") -> -1. */
static int
json_u64(const json_t *v, uint64_t *out)
{
	double d;

	if (v == NULL || !json_is_number(v))
		return -1;
	d = json_number_value(v);
	if (!(d >= 0.0) || d >= 9223372036854775808.0 || isnan(d))
		return -1;
	*out = (uint64_t)d;
	return 0;
}

int
qmp_parse_guest_stats(const json_t *ret, struct guest_stats *s,
    uint64_t now, time_t wall)
{
	static const struct {
		const char	*key;
		uint32_t	 bit;
		size_t		 off;
	} map[] = {
		{ "stat-swap-in", GST_SWAP_IN, offsetof(struct guest_stats, swap_in) },
		{ "stat-swap-out", GST_SWAP_OUT, offsetof(struct guest_stats, swap_out) },
		{ "stat-major-faults", GST_MAJFLT, offsetof(struct guest_stats, majflt) },
		{ "stat-minor-faults", GST_MINFLT, offsetof(struct guest_stats, minflt) },
		{ "stat-free-memory", GST_FREE, offsetof(struct guest_stats, free) },
		{ "stat-total-memory", GST_TOTAL, offsetof(struct guest_stats, total) },
		{ "stat-available-memory", GST_AVAIL, offsetof(struct guest_stats, avail) },
		{ "stat-disk-caches", GST_CACHES, offsetof(struct guest_stats, caches) },
		/* QEMU 9.1+ (tag 10), from guests that send it: 6.10+, memcoop */
		{ "stat-oom-kills", GST_OOM_KILLS, offsetof(struct guest_stats, oom_kills) },
		/* QEMU 9.1+ (tags 11, 13, 15), from Linux 6.12+ guests */
		{ "stat-alloc-stalls", GST_ALLOC_STALLS, offsetof(struct guest_stats, alloc_stalls) },
		{ "stat-direct-scans", GST_DIRECT_SCAN, offsetof(struct guest_stats, direct_scan) },
		{ "stat-direct-reclaims", GST_DIRECT_RECLAIM, offsetof(struct guest_stats, direct_reclaim) },
	};
	const json_t *stats;
	uint64_t last, age;
	size_t i;

	memset(s, 0, sizeof(*s));
	if (!json_is_object(ret))
		return -1;
	stats = json_object_get(ret, "stats");
	if (!json_is_object(stats))
		return -1;
	if (json_u64(json_object_get(ret, "last-update"), &last) == -1 ||
	    last == 0)
		return -1;	/* no stats from the guest yet */
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		uint64_t v;

		if (json_u64(json_object_get(stats, map[i].key), &v) == 0) {
			*(uint64_t *)((char *)s + map[i].off) = v;
			s->valid |= map[i].bit;
		}
	}
	if (s->valid == 0)
		return -1;
	s->guest_time = last;
	/* last-update is the host's wall clock when QEMU got the stats */
	age = (wall > 0 && (uint64_t)wall > last) ?
	    ((uint64_t)wall - last) * 1000 : 0;
	s->when = now > age ? now - age : 1;
	return 0;
}

/* The QOM path of the balloon in a qom-list reply, or -1. */
int
qmp_find_balloon(const json_t *ret, const char *parent, char *path,
    size_t len)
{
	size_t i;
	json_t *e;

	if (!json_is_array(ret))
		return -1;
	json_array_foreach(ret, i, e) {
		const char *name, *type;

		name = json_string_value(json_object_get(e, "name"));
		type = json_string_value(json_object_get(e, "type"));
		if (name == NULL || type == NULL)
			continue;
		if (strncmp(type, "child<virtio-balloon", 20) != 0)
			continue;
		if (strchr(name, '/') != NULL || strlen(name) > 100)
			continue;
		if ((size_t)snprintf(path, len, "%s/%s", parent, name) >= len)
			return -1;
		return 0;
	}
	return -1;
}

/* Guest name from a socket file name: strip .qmp/.sock/.socket. */
int
qmp_name_from_file(const char *file, char *name, size_t len)
{
	static const char *sfx[] = { ".qmp", ".sock", ".socket" };
	size_t n = strlen(file), i, j;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t sl = strlen(sfx[i]);

		if (n > sl && strcmp(file + n - sl, sfx[i]) == 0) {
			n -= sl;
			break;
		}
	}
	if (n == 0 || n >= len || file[0] == '.')
		return -1;
	for (j = 0; j < n; j++) {
		char c = file[j];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '+'))
			return -1;
	}
	memcpy(name, file, n);
	name[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sending */

static int
qc_send(struct qmp_conn *c, enum qk kind, const char *cmd, json_t *args)
{
	json_t *m;
	char *s;
	uint32_t id;
	int rv = -1;

	if (c->bev == NULL) {
		json_decref(args);
		return -1;
	}
	if (c->npending == QMP_MAX_PENDING) {
		log_warnx("qmp %s: %s not sent: %d commands unanswered",
		    c->name, cmd, QMP_MAX_PENDING);
		json_decref(args);
		return -1;
	}
	c->seq++;
	id = ((c->seq & 0xffffff) << 8) | kind;
	m = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)id);
	if (m == NULL) {
		json_decref(args);
		return -1;
	}
	if (args != NULL)
		json_object_set_new(m, "arguments", args);
	if ((s = json_dumps(m, JSON_COMPACT)) != NULL) {
		if (bufferevent_write(c->bev, s, strlen(s)) == 0 &&
		    bufferevent_write(c->bev, "\r\n", 2) == 0) {
			if (c->npending == 0)	/* the answer clock starts */
				c->last_reply = now_ms();
			c->pending[c->npending++] = id;
			rv = 0;
		}
		free(s);
	}
	json_decref(m);
	log_debug("qmp %s: -> %s", c->name, cmd);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Receiving */

/* Is @id one of ours, sent and not answered?  Then it is answered now. */
static int
qc_take_pending(struct qmp_conn *c, uint64_t id)
{
	unsigned int i;

	for (i = 0; i < c->npending; i++)
		if (c->pending[i] == id) {
			memmove(&c->pending[i], &c->pending[i + 1],
			    (c->npending - i - 1) * sizeof(c->pending[0]));
			c->npending--;
			return 0;
		}
	return -1;
}

static void
qc_ready(struct qmp_conn *c)
{
	struct memcoopd *md = c->q->md;

	c->state = QC_READY;
	c->backoff = QMP_BACKOFF_MIN;
	c->fail_logged = 0;
	if ((c->g = guest_add(md, c->name, &qmp_backend, c)) == NULL) {
		qc_close(c, "cannot add guest");
		return;
	}
	c->g->qemu_pid = c->pid;
	if (c->maxmem != 0)
		c->g->maxmem = c->maxmem;
	log_info("qmp %s: ready (pid %d, balloon %s)", c->name, (int)c->pid,
	    c->balloon_path);
	(void)qc_send(c, QK_QUERY_BALLOON, "query-balloon", NULL);
}

static void
qc_event(struct qmp_conn *c, json_t *msg)
{
	const char *ev = json_string_value(json_object_get(msg, "event"));
	json_t *data = json_object_get(msg, "data");
	uint64_t actual;

	if (ev == NULL)
		return;
	if (strcmp(ev, "BALLOON_CHANGE") == 0) {
		if (json_u64(json_object_get(data, "actual"), &actual) == 0 &&
		    c->g != NULL && c->state == QC_READY)
			guest_update_actual(c->q->md, c->g, actual);
	} else if (strcmp(ev, "SHUTDOWN") == 0) {
		log_info("qmp %s: guest is shutting down", c->name);
	}
}

static void
qc_bad(struct qmp_conn *c, const char *what)
{
	c->bad_replies++;
	if (c->bad_replies <= 5 || (c->bad_replies % 100) == 0)
		log_warnx("qmp %s: malformed reply (%s), ignored (%u so far)",
		    c->name, what, c->bad_replies);
}

static void
qc_reply(struct qmp_conn *c, enum qk kind, json_t *ret, json_t *error)
{
	struct memcoopd *md = c->q->md;
	struct guest_stats st;
	uint64_t v, plugged = 0;

	if (error != NULL) {
		const char *desc = json_string_value(json_object_get(error,
		    "desc"));

		if (kind == QK_GUEST_STATS && c->stats_inflight > 0)
			c->stats_inflight--;
		if (kind == QK_LIST_PERIPH) {
			(void)qc_send(c, QK_LIST_ANON, "qom-list", json_pack(
			    "{s:s}", "path", "/machine/peripheral-anon"));
			return;
		}
		if (kind == QK_LIST_ANON) {
			log_warnx("qmp %s: no virtio-balloon device; guest "
			    "ignored", c->name);
			c->state = QC_NOBALLOON;
			return;
		}
		log_warnx("qmp %s: command failed: %s", c->name,
		    desc != NULL ? desc : "(no description)");
		if (kind == QK_BALLOON && c->g != NULL)
			guest_target_refused(md, c->g, c->bal_want, c->bal_prev,
			    desc != NULL ? desc : "QMP error");
		return;
	}
	switch (kind) {
	case QK_CAPS:
		if (c->state != QC_CAPS)
			break;		/* a forged or repeated answer */
		c->state = QC_PROBE;
		(void)qc_send(c, QK_MEMSIZE, "query-memory-size-summary", NULL);
		(void)qc_send(c, QK_LIST_PERIPH, "qom-list",
		    json_pack("{s:s}", "path", "/machine/peripheral"));
		break;
	case QK_MEMSIZE:
		if (json_u64(json_object_get(ret, "base-memory"), &v) == -1) {
			qc_bad(c, "query-memory-size-summary");
			break;
		}
		(void)json_u64(json_object_get(ret, "plugged-memory"), &plugged);
		c->maxmem = v + plugged;
		if (c->g != NULL && c->state == QC_READY)
			c->g->maxmem = c->maxmem;
		break;
	case QK_LIST_PERIPH:
	case QK_LIST_ANON:
		if (c->state != QC_PROBE)
			break;
		if (qmp_find_balloon(ret, kind == QK_LIST_PERIPH ?
		    "/machine/peripheral" : "/machine/peripheral-anon",
		    c->balloon_path, sizeof(c->balloon_path)) == 0) {
			(void)qc_send(c, QK_SET_INTERVAL, "qom-set", json_pack(
			    "{s:s, s:s, s:i}", "path", c->balloon_path,
			    "property", "guest-stats-polling-interval",
			    "value", (int)c->q->conf->stats_period));
			qc_ready(c);
		} else if (kind == QK_LIST_PERIPH) {
			(void)qc_send(c, QK_LIST_ANON, "qom-list", json_pack(
			    "{s:s}", "path", "/machine/peripheral-anon"));
		} else {
			log_warnx("qmp %s: no virtio-balloon device; guest "
			    "ignored", c->name);
			c->state = QC_NOBALLOON;
		}
		break;
	case QK_QUERY_BALLOON:
		if (json_u64(json_object_get(ret, "actual"), &v) == -1) {
			qc_bad(c, "query-balloon");
			break;
		}
		if (c->g != NULL && c->state == QC_READY)
			guest_update_actual(md, c->g, v);
		break;
	case QK_GUEST_STATS:
		if (c->stats_inflight > 0)
			c->stats_inflight--;
		if (c->g == NULL || c->state != QC_READY)
			break;
		if (qmp_parse_guest_stats(ret, &st, now_ms(), time(NULL)) == 0)
			guest_update_stats(md, c->g, &st);
		else
			log_debug("qmp %s: no guest stats yet", c->name);
		break;
	case QK_SET_INTERVAL:
	case QK_BALLOON:
	default:
		break;
	}
}

static void
qc_message(struct qmp_conn *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *msg, *id;
	uint64_t idv;
	enum qk kind;

	c->last_reply = now_ms();
	msg = json_loadb(line, len, JSON_DECODE_INT_AS_REAL |
	    JSON_REJECT_DUPLICATES, &jerr);
	if (msg == NULL || !json_is_object(msg)) {
		qc_bad(c, msg == NULL ? jerr.text : "not an object");
		json_decref(msg);
		return;
	}
	if (c->state == QC_GREETING) {
		/*
		 * QEMU may write an event (RESUME, as the guest starts) to a
		 * client it has just accepted, before the greeting: an event
		 * then, not a malformed greeting.  A QEMU that sends only
		 * events is closed by the greeting timeout (timer_cb()).
		 */
		if (json_object_get(msg, "QMP") != NULL) {
			c->state = QC_CAPS;
			(void)qc_send(c, QK_CAPS, "qmp_capabilities", NULL);
		} else if (json_is_string(json_object_get(msg, "event"))) {
			qc_event(c, msg);
		} else {
			qc_bad(c, "expected the QMP greeting");
		}
		json_decref(msg);
		return;
	}
	if (json_object_get(msg, "event") != NULL) {
		qc_event(c, msg);
		json_decref(msg);
		return;
	}
	id = json_object_get(msg, "id");
	if (json_u64(id, &idv) == -1 || (idv & 0xff) == 0 ||
	    (idv & 0xff) >= QK_MAX) {
		qc_bad(c, "reply without a valid id");
		json_decref(msg);
		return;
	}
	kind = (enum qk)(idv & 0xff);
	if (json_object_get(msg, "return") == NULL &&
	    !json_is_object(json_object_get(msg, "error"))) {
		qc_bad(c, "reply without return or error");
		json_decref(msg);
		return;
	}
	if (qc_take_pending(c, idv) == -1) {
		qc_bad(c, "reply to no command sent");
		json_decref(msg);
		return;
	}
	qc_reply(c, kind, json_object_get(msg, "return"),
	    json_object_get(msg, "error"));
	json_decref(msg);
}

static void
qc_read_cb(struct bufferevent *bev, void *arg)
{
	struct qmp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	while (c->bev != NULL &&
	    (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		if (len > 0)
			qc_message(c, line, len);
		free(line);
	}
	if (c->bev != NULL && evbuffer_get_length(in) > QMP_MAX_LINE)
		qc_close(c, "reply line too long");
}

static void
qc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct qmp_conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF)
		qc_close(c, "QEMU closed the connection");
	else if (what & BEV_EVENT_ERROR)
		qc_close(c, strerror(EVUTIL_SOCKET_ERROR()));
}

/* ------------------------------------------------------------------ */
/* Connections */

static void
qc_close(struct qmp_conn *c, const char *why)
{
	if (c->bev != NULL) {
		log_info("qmp %s: disconnected: %s", c->name, why);
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->g != NULL) {
		c->g->bdata = NULL;
		guest_offline(c->q->md, c->g);
		c->g = NULL;
	}
	c->state = QC_IDLE;
	c->stats_inflight = 0;
	c->npending = 0;
	c->pid = 0;
	c->next_try = now_ms() + c->backoff;
	c->backoff = c->backoff * 2 > QMP_BACKOFF_MAX ? QMP_BACKOFF_MAX :
	    c->backoff * 2;
}

static void
qc_connect(struct qmp_conn *c)
{
	struct sockaddr_un sun;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(c->path) >= sizeof(sun.sun_path)) {
		if (!c->fail_logged++)
			log_warnx("qmp %s: socket path too long", c->name);
		c->next_try = UINT64_MAX;
		return;
	}
	strcpy(sun.sun_path, c->path);
	/* non-blocking: a full listen backlog must not stall the daemon */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		log_warn("qmp %s: socket", c->name);
		goto retry;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (!c->fail_logged++)
			log_info("qmp %s: cannot connect to %s: %s; will retry",
			    c->name, c->path, strerror(errno));
		close(fd);
		goto retry;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		c->pid = cred.pid;
	c->bev = bufferevent_socket_new(c->q->md->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		goto retry;
	}
	bufferevent_setcb(c->bev, qc_read_cb, NULL, qc_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = QC_GREETING;
	c->connected_at = now_ms();
	c->busy_logged = 0;
	c->bad_replies = 0;
	c->npending = 0;
	log_info("qmp %s: connected to %s", c->name, c->path);
	return;
retry:
	c->next_try = now_ms() + c->backoff;
	c->backoff = c->backoff * 2 > QMP_BACKOFF_MAX ? QMP_BACKOFF_MAX :
	    c->backoff * 2;
}

static struct qmp_conn *
qc_new(struct qmp *q, const char *name, const char *path, int from_dir)
{
	struct qmp_conn *c;

	TAILQ_FOREACH(c, &q->conns, entry)
		if (strcmp(c->name, name) == 0)
			return c;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->path = strdup(path)) == NULL) {
		free(c);
		log_warn("%s", __func__);
		return NULL;
	}
	c->q = q;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->from_dir = from_dir;
	c->backoff = QMP_BACKOFF_MIN;
	TAILQ_INSERT_TAIL(&q->conns, c, entry);
	return c;
}

static void
qc_free(struct qmp_conn *c)
{
	struct qmp *q = c->q;

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->g != NULL) {
		c->g->bdata = NULL;
		guest_offline(q->md, c->g);
	}
	TAILQ_REMOVE(&q->conns, c, entry);
	free(c->path);
	free(c);
}

static void
scan_dir(struct qmp *q)
{
	struct qmp_conn *c, *tmp;
	struct dirent *de;
	struct stat st;
	char path[512], name[GUEST_NAME_MAX];
	DIR *d;

	if ((d = opendir(q->conf->qmp_dir)) == NULL)
		return;
	TAILQ_FOREACH(c, &q->conns, entry)
		c->seen = 0;
	while ((de = readdir(d)) != NULL) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s",
		    q->conf->qmp_dir, de->d_name) >= sizeof(path))
			continue;
		if (lstat(path, &st) == -1 || !S_ISSOCK(st.st_mode))
			continue;
		/* our own control socket is not a guest */
		if (q->ctl_ino != 0 && st.st_ino == q->ctl_ino &&
		    st.st_dev == q->ctl_dev)
			continue;
		if (qmp_name_from_file(de->d_name, name, sizeof(name)) == -1)
			continue;
		if ((c = qc_new(q, name, path, 1)) != NULL)
			c->seen = 1;
	}
	closedir(d);
	TAILQ_FOREACH_SAFE(c, &q->conns, entry, tmp) {
		if (!c->from_dir)
			continue;
		if (c->seen) {
			if (c->gone_since != 0) {	/* back: try at once */
				c->gone_since = 0;
				c->backoff = QMP_BACKOFF_MIN;
				c->next_try = 0;
				c->fail_logged = 0;
			}
			continue;
		}
		if (c->gone_since == 0) {
			/* QEMU exited: keep the guest (and what the operator
			 * set for it) in case it comes back */
			log_info("qmp %s: socket %s is gone", c->name, c->path);
			c->gone_since = now_ms();
			if (c->bev != NULL)
				qc_close(c, "socket removed");
			continue;
		}
		if (now_ms() - c->gone_since < QMP_FORGET_MS ||
		    config_find_guest(q->conf, c->name) != NULL)
			continue;
		log_info("qmp %s: gone for %ds, forgotten", c->name,
		    QMP_FORGET_MS / 1000);
		{
			struct guest *g = guest_find(q->md, c->name);

			if (c->g != NULL)
				c->g->bdata = NULL;
			c->g = NULL;
			if (g != NULL && g->backend == &qmp_backend)
				guest_remove(q->md, g);
		}
		qc_free(c);
	}
}

static void
timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct qmp *q = arg;
	struct qmp_conn *c;
	uint64_t now = now_ms();

	(void)fd;
	(void)ev;
	if (q->md->shutting_down)
		return;
	if (q->conf->qmp_dir != NULL)
		scan_dir(q);
	TAILQ_FOREACH(c, &q->conns, entry) {
		if (c->state == QC_IDLE && c->gone_since == 0 &&
		    now >= c->next_try)
			qc_connect(c);
		else if (c->state == QC_READY && c->npending > 0 &&
		    now - c->last_reply > QMP_ANSWER_TIMEOUT)
			qc_close(c, "QEMU did not answer for 30 s");
		else if (c->state == QC_GREETING &&
		    now - c->connected_at > QMP_GREETING_TIMEOUT)
			qc_close(c, "no QMP greeting within 15 s");
		else if (c->state == QC_GREETING && !c->busy_logged &&
		    now - c->connected_at > QMP_GREETING_WARN) {
			log_warnx("qmp %s: no greeting after %ds: is another "
			    "client connected to %s?", c->name,
			    QMP_GREETING_WARN / 1000, c->path);
			c->busy_logged = 1;
		}
	}
}

/* ------------------------------------------------------------------ */
/* backend_ops */

static int
qmp_init(struct memcoopd *md, const struct config *conf)
{
	struct timeval tv = { 0, QMP_TIMER_MS * 1000 };
	struct guest_conf *gc;
	struct stat st;
	struct qmp_conn *c;
	struct guest *g;
	struct qmp *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->md = md;
	q->conf = conf;
	TAILQ_INIT(&q->conns);
	md->bdata = q;
	if (conf->sock_path != NULL && stat(conf->sock_path, &st) == 0) {
		q->ctl_ino = st.st_ino;
		q->ctl_dev = st.st_dev;
	}
	TAILQ_FOREACH(gc, &conf->guests, entry) {
		if (gc->qmp == NULL)
			continue;
		if (qc_new(q, gc->name, gc->qmp, 0) == NULL)
			return -1;
		/* known from the config: visible while QEMU is not running */
		if ((g = guest_add(md, gc->name, &qmp_backend, NULL)) != NULL)
			guest_offline(md, g);
	}
	if (conf->qmp_dir != NULL) {
		char err[512];

		if (config_check_runtime(conf, err, sizeof(err)) == -1) {
			log_warnx("qmp: %s", err);
			return -1;
		}
		scan_dir(q);
	}
	if (TAILQ_EMPTY(&q->conns) && conf->qmp_dir == NULL)
		log_warnx("qmp: no guest has a qmp socket and there is no "
		    "qmp-dir: nothing to manage");
	TAILQ_FOREACH(c, &q->conns, entry)
		qc_connect(c);
	q->timer = event_new(md->base, -1, EV_PERSIST, timer_cb, q);
	if (q->timer == NULL || event_add(q->timer, &tv) == -1)
		return -1;
	return 0;
}

static void
qmp_shutdown(struct memcoopd *md)
{
	struct qmp *q = md->bdata;
	struct qmp_conn *c;

	if (q == NULL)
		return;
	while ((c = TAILQ_FIRST(&q->conns)) != NULL) {
		/* flush what is still queued (the shutdown targets) */
		if (c->bev != NULL) {
			struct evbuffer *out = bufferevent_get_output(c->bev);
			evutil_socket_t fd = bufferevent_getfd(c->bev);

			if (evbuffer_get_length(out) > 0 && fd != -1) {
				evutil_make_socket_closeonexec(fd);
				(void)evbuffer_write(out, fd);
			}
		}
		qc_free(c);
	}
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
	md->bdata = NULL;
}

static int
qmp_set_target(struct memcoopd *md, struct guest *g, uint64_t bytes)
{
	struct qmp_conn *c = g->bdata;

	(void)md;
	if (c == NULL || c->state != QC_READY || bytes == 0)
		return -1;
	if (bytes > INT64_MAX)
		return -1;
	c->bal_want = bytes;
	c->bal_prev = g->target;
	return qc_send(c, QK_BALLOON, "balloon",
	    json_pack("{s:I}", "value", (json_int_t)bytes));
}

static int
qmp_poll_stats(struct memcoopd *md, struct guest *g)
{
	struct qmp_conn *c = g->bdata;

	(void)md;
	if (c == NULL || c->state != QC_READY)
		return -1;
	if (c->stats_inflight >= 2)	/* QEMU is not answering */
		return -1;
	c->stats_inflight++;
	if (qc_send(c, QK_GUEST_STATS, "qom-get", json_pack("{s:s, s:s}",
	    "path", c->balloon_path, "property", "guest-stats")) == -1)
		return -1;
	return qc_send(c, QK_QUERY_BALLOON, "query-balloon", NULL);
}

const struct backend_ops qmp_backend = {
	.name = "qmp",
	.init = qmp_init,
	.shutdown = qmp_shutdown,
	.set_target = qmp_set_target,
	.poll_stats = qmp_poll_stats,
};
