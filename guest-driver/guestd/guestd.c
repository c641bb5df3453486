// SPDX-License-Identifier: GPL-2.0-only
/*
 * memcoop-guestd: shrink requests for unmodified applications (Redis, the
 * JVM, any cgroup), in the guest beside memcoop.ko.  The event loop, the
 * signals and the command line; docs/memcoop-guestd.md is the manual.
 */
#include <sys/mman.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "guestd.h"
#include "log.h"

#define TICK_MS		1000
#define EXIT_WAIT_MS	3000	/* for restores at exit */

static struct guestd	 daemon_state;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: memcoop-guestd [-d] [-f CONFIG]\n"
	    "       memcoop-guestd --check [-f CONFIG]\n"
	    "       memcoop-guestd status [-s SOCKET]\n"
	    "       memcoop-guestd shrink NAME SIZE [-s SOCKET]\n");
	exit(1);
}

static const char *
sock_of(const struct gconf *c)
{
	return c->sock_path != NULL ? c->sock_path : GUESTD_SOCK;
}

static void
add_app(struct guestd *g, struct app_conf *ac)
{
	struct app *a;

	if ((a = app_new(g->base, ac)) == NULL) {
		log_warnx("app %s: cannot set up (out of memory)", ac->name);
		return;
	}
	TAILQ_INSERT_TAIL(&g->apps, a, entry);
	app_try_register(a);
	a->ops->probe(a);
}

static void
tick_cb(int fd, short what, void *arg)
{
	struct guestd *g = arg;
	struct app *a, *next;

	(void)fd;
	(void)what;
	for (a = TAILQ_FIRST(&g->apps); a != NULL; a = next) {
		next = TAILQ_NEXT(a, entry);
		if (a->doomed) {
			if (a->busy == BUSY_NONE) {
				log_info("app %s: removed", a->conf->name);
				TAILQ_REMOVE(&g->apps, a, entry);
				app_free(a);
			}
			continue;
		}
		if (!g->exiting)
			app_tick(a, &g->conf);
	}
}

static void
reload(struct guestd *g)
{
	struct gconf nc;
	struct app_conf *ac;
	struct app *a;
	char err[512];
	int found;

	gconf_init(&nc);
	if (gconf_load(&nc, g->conf_path, err, sizeof(err)) == -1) {
		log_warnx("reload: %s: keeping the old configuration", err);
		gconf_free(&nc);
		return;
	}
	if (strcmp(sock_of(&nc), sock_of(&g->conf)) != 0)
		log_warnx("reload: the socket changes only on restart");
	TAILQ_FOREACH(a, &g->apps, entry) {
		found = 0;
		TAILQ_FOREACH(ac, &nc.apps, entry)
			found |= app_conf_equal(a->conf, ac);
		if (!found && !a->doomed) {
			log_info("app %s: changed or removed: restoring it",
			    a->conf->name);
			a->doomed = 1;
			app_restore(a);
		}
	}
	TAILQ_FOREACH(ac, &nc.apps, entry) {
		found = 0;
		TAILQ_FOREACH(a, &g->apps, entry)
			found |= !a->doomed && app_conf_equal(a->conf, ac);
		if (!found) {
			log_info("app %s: new", ac->name);
			add_app(g, ac);
		}
	}
	free(nc.sock_path);
	nc.sock_path = g->conf.sock_path != NULL ?
	    strdup(g->conf.sock_path) : NULL;
	gconf_free(&g->conf);
	g->conf = nc;
	log_info("reloaded %s", g->conf_path);
}

static int
all_idle(struct guestd *g)
{
	struct app *a;

	TAILQ_FOREACH(a, &g->apps, entry)
		if (a->busy != BUSY_NONE)
			return 0;
	return 1;
}

static void
exit_check_cb(int fd, short what, void *arg)
{
	struct guestd *g = arg;
	static uint64_t started;
	struct timeval tv = { 0, 20000 };

	(void)fd;
	(void)what;
	if (started == 0)
		started = now_ms();
	if (all_idle(g) || now_ms() > started + EXIT_WAIT_MS) {
		if (!all_idle(g))
			log_warnx("exit: not every restore finished in %d ms",
			    EXIT_WAIT_MS);
		event_base_loopbreak(g->base);
		return;
	}
	event_base_once(g->base, -1, EV_TIMEOUT, exit_check_cb, g, &tv);
}

static void
signal_cb(int sig, short what, void *arg)
{
	struct guestd *g = arg;
	struct app *a;

	(void)what;
	if (sig == SIGHUP) {
		if (!g->exiting)
			reload(g);
		return;
	}
	if (g->exiting)
		return;
	log_info("signal %d: restoring the applications' limits, exiting",
	    sig);
	g->exiting = 1;
	TAILQ_FOREACH(a, &g->apps, entry)
		if (!a->doomed || a->busy == BUSY_NONE)
			app_restore(a);
	exit_check_cb(-1, 0, g);
}

static int
run(struct guestd *g, int debug)
{
	struct event *sigs[3];
	int signos[3] = { SIGTERM, SIGINT, SIGHUP };
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	struct app_conf *ac;
	struct app *a;
	int i;

	log_init(1, debug, "memcoop-guestd");
	signal(SIGPIPE, SIG_IGN);
	/*
	 * The requests come when memory is short: the daemon's own code and
	 * libraries must not have to be read back in before it can answer
	 * (from a 9p or network /usr that took seconds).  What is mapped now;
	 * later allocations are small and short-lived.
	 */
	if (mlockall(MCL_CURRENT) == -1)
		log_warn("mlockall (answers may come late under memory "
		    "pressure; CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK)");
	if ((g->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	TAILQ_INIT(&g->apps);
	guestd = g;
	if (control_listen(g, sock_of(&g->conf)) == -1) {
		log_warn("%s", sock_of(&g->conf));
		return 2;
	}
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(g->base, signos[i], signal_cb, g);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1)
			fatalx("evsignal_new");
	}
	TAILQ_FOREACH(ac, &g->conf.apps, entry)
		add_app(g, ac);
	g->ev_tick = event_new(g->base, -1, EV_PERSIST, tick_cb, g);
	if (g->ev_tick == NULL || evtimer_add(g->ev_tick, &tv) == -1)
		fatalx("tick");
	i = 0;
	TAILQ_FOREACH(a, &g->apps, entry)
		i++;
	log_info("memcoop-guestd: %d application(s), status on %s", i,
	    sock_of(&g->conf));
	event_base_dispatch(g->base);

	control_close();
	while ((a = TAILQ_FIRST(&g->apps)) != NULL) {
		TAILQ_REMOVE(&g->apps, a, entry);
		app_free(a);
	}
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_free(g->ev_tick);
	event_base_free(g->base);
	gconf_free(&g->conf);
	log_info("memcoop-guestd: exited");
	return 0;
}

int
main(int argc, char **argv)
{
	struct guestd *g = &daemon_state;
	const char *conf = GUESTD_CONF, *sock = NULL;
	char err[512], req[300];
	int debug = 0, check = 0, ch, status = 0, shrink = 0;

	if (argc > 1 && strcmp(argv[1], "status") == 0)
		status = 1;
	else if (argc > 1 && strcmp(argv[1], "shrink") == 0)
		shrink = 1;
	else if (argc > 1 && strcmp(argv[1], "--check") == 0)
		check = 1;
	if (status || shrink || check) {
		argv++;
		argc--;
	}
	while ((ch = getopt(argc, argv, "df:s:")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			conf = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if ((shrink && argc != 2) || (!shrink && argc != 0) ||
	    (sock != NULL && !status && !shrink))
		usage();

	gconf_init(&g->conf);
	g->conf_path = conf;
	if (status || shrink) {
		if (sock == NULL && access(conf, R_OK) == 0 &&
		    gconf_load(&g->conf, conf, err, sizeof(err)) == 0)
			sock = sock_of(&g->conf);
		if (sock == NULL)
			sock = GUESTD_SOCK;
		if (shrink && snprintf(req, sizeof(req), "shrink \"%s\" %s\n",
		    argv[0], argv[1]) >= (int)sizeof(req))
			usage();
		return control_client(sock, status ? "status\n" : req);
	}
	if (gconf_load(&g->conf, conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "memcoop-guestd: %s\n", err);
		return 1;
	}
	if (check) {
		printf("%s: ok\n", conf);
		gconf_free(&g->conf);
		return 0;
	}
	return run(g, debug);
}
