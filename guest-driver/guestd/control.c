// SPDX-License-Identifier: GPL-2.0-only
/*
 * The status socket: a unix stream socket (mode 0660, root's group).  A
 * client sends one line and reads the answer up to EOF:
 *
 *	status			header + one line per application
 *	shrink NAME SIZE	serve a request as if the driver sent it
 *				(root only; "ok" or "error: ...")
 *
 * Each connection is bounded: a line of at most CTL_LINE_MAX bytes within
 * CTL_TIMEOUT_S seconds, else it is dropped.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "conflex.h"
#include "guestd.h"
#include "io.h"
#include "log.h"

#define CTL_LINE_MAX	256
#define CTL_TIMEOUT_S	5
#define STATUS_MAX	(64 * 1024)

static struct evconnlistener	*listener;
static char			 sock_path[108];

size_t
control_status_text(struct guestd *g, char *buf, size_t len)
{
	struct app *a;
	size_t off;
	int n;

	n = snprintf(buf, len, "NAME TYPE REGISTERED ASKED FREED YIELD LAST\n");
	off = n > 0 && (size_t)n < len ? (size_t)n : 0;
	TAILQ_FOREACH(a, &g->apps, entry) {
		n = snprintf(buf + off, len - off, "%s %s %s %llu %llu %.2f "
		    "%s\n", a->conf->name, app_type_name(a->conf->type),
		    a->registered ? "yes" : "no",
		    (unsigned long long)a->asked_total,
		    (unsigned long long)a->freed_total, a->yield.yield,
		    a->last[0] != '\0' ? a->last : "-");
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	return off;
}

static struct app *
find_app(struct guestd *g, const char *name)
{
	struct app *a;

	TAILQ_FOREACH(a, &g->apps, entry)
		if (!a->doomed && strcmp(a->conf->name, name) == 0)
			return a;
	return NULL;
}

static void
reply(struct bufferevent *bev, const char *text, size_t len)
{
	bufferevent_write(bev, text, len);
	bufferevent_disable(bev, EV_READ);
}

static void
ctl_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_free(bev);
}

static void
ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct guestd *g = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[CTL_LINE_MAX + 1], *tok[4], *text, msg[160];
	const char *why;
	struct ucred uc;
	socklen_t sl = sizeof(uc);
	struct app *a;
	uint64_t bytes;
	size_t n;
	char *l;
	int ntok;

	if ((l = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX)
			bufferevent_free(bev);
		return;
	}
	if (n > CTL_LINE_MAX) {
		free(l);
		bufferevent_free(bev);
		return;
	}
	memcpy(line, l, n + 1);
	free(l);
	if ((ntok = conf_tokenize(line, tok, 4, &why)) <= 0)
		return reply(bev, "error: bad request\n", 19);
	if (strcmp(tok[0], "status") == 0 && ntok == 1) {
		if ((text = malloc(STATUS_MAX)) == NULL)
			return reply(bev, "error: out of memory\n", 21);
		n = control_status_text(g, text, STATUS_MAX);
		reply(bev, text, n);
		free(text);
		return;
	}
	if (strcmp(tok[0], "shrink") == 0 && ntok == 3) {
		if (getsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_PEERCRED,
		    &uc, &sl) == -1 || uc.uid != 0)
			return reply(bev, "error: shrink is for root\n", 26);
		if ((a = find_app(g, tok[1])) == NULL)
			return reply(bev, "error: no such app\n", 19);
		if (conf_parse_size(tok[2], &bytes) == -1 || bytes == 0)
			return reply(bev, "error: bad size\n", 16);
		log_info("app %s: shrink %s asked on the control socket",
		    a->conf->name, fmt_size((int64_t)bytes));
		if (app_shrink_manual(a, bytes) == -1) {
			n = (size_t)snprintf(msg, sizeof(msg), "error: %s\n",
			    strerror(errno));
			return reply(bev, msg, n);
		}
		return reply(bev, "ok\n", 3);
	}
	reply(bev, "error: unknown command (status, shrink NAME SIZE)\n", 51);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct bufferevent *bev;
	struct timeval tv = { CTL_TIMEOUT_S, 0 };

	(void)sa;
	(void)salen;
	bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, ctl_read_cb, ctl_write_cb, ctl_event_cb, arg);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int
control_listen(struct guestd *g, const char *path)
{
	struct sockaddr_un sun;
	mode_t old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	memcpy(sock_path, sun.sun_path, sizeof(sock_path));
	if (unlink(path) == -1 && errno != ENOENT)
		return -1;
	old = umask(0117);
	listener = evconnlistener_new_bind(g->base, accept_cb, g,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 8,
	    (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	return listener == NULL ? -1 : 0;
}

void
control_close(void)
{
	if (listener != NULL) {
		evconnlistener_free(listener);
		unlink(sock_path);
	}
	listener = NULL;
}

int
control_client(const char *path, const char *request)
{
	struct sockaddr_un sun;
	struct pollfd pfd;
	char buf[4096];
	ssize_t n;
	int fd, rc = 0, first = 1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "memcoop-guestd: %s: %s (is the daemon "
		    "running?)\n", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return 1;
	}
	if (io_full(fd, (void *)request, strlen(request), 1) == -1) {
		fprintf(stderr, "memcoop-guestd: %s: %s\n", path,
		    strerror(errno));
		close(fd);
		return 1;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, CTL_TIMEOUT_S * 1000) <= 0) {
			fprintf(stderr, "memcoop-guestd: %s: no answer\n", path);
			rc = 1;
			break;
		}
		if ((n = read(fd, buf, sizeof(buf))) <= 0)
			break;
		if (first && n >= 6 && strncmp(buf, "error:", 6) == 0)
			rc = 1;
		first = 0;
		fwrite(buf, 1, (size_t)n, rc ? stderr : stdout);
	}
	close(fd);
	return rc;
}
