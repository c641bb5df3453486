// SPDX-License-Identifier: GPL-2.0-only
/*
 * memcoopd: the host agent.  Keeps the guest list, runs the policy once
 * per tick, applies targets through the backend, serves the control
 * socket and the metrics, and on a clean shutdown leaves every guest at a
 * sane size.
 */
#include <sys/stat.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "memcoopd.h"
#include "sdnotify.h"
#ifdef HAVE_KSM
#include "ksm.h"
#endif

static struct event	*ev_tick;

/* ------------------------------------------------------------------ */
/* The tick */

static void
run_policy(struct memcoopd *md)
{
	struct policy_guest *pgs;
	struct guest *g, **gp;
	size_t i = 0, n = md->nguests;
	uint64_t now = now_ms();

	if (n == 0)
		return;
	pgs = calloc(n, sizeof(*pgs));
	gp = calloc(n, sizeof(*gp));
	if (pgs == NULL || gp == NULL) {
		log_warn("%s", __func__);
		goto out;
	}
	guests_to_policy(md, pgs);
	TAILQ_FOREACH(g, &md->guests, entry)
		gp[i++] = g;
	policy_run(&md->conf->pol, &md->host, pgs, n, now);
	for (i = 0; i < n; i++) {
		struct policy_gstate old;

		g = gp[i];
		old = g->pst;
		g->pst = pgs[i].st;
		memcpy(g->explain, pgs[i].explain, sizeof(g->explain));
		if (!pgs[i].changed)
			continue;
		if (guest_apply_target(md, g, pgs[i].target, pgs[i].reason)
		    == -1) {
			/* nothing moved: the hold runs from the last real
			 * change, not from this attempt, nor from never */
			g->pst.last_change = old.last_change;
			g->pst.last_dir = old.last_dir;
		}
	}
out:
	free(pgs);
	free(gp);
}

#ifdef HAVE_KSM
static void
run_ksm(struct memcoopd *md)
{
	pid_t pids[md->nguests > 0 ? md->nguests : 1];
	uint64_t saving[md->nguests > 0 ? md->nguests : 1];
	struct guest *g;
	size_t n = 0;

	TAILQ_FOREACH(g, &md->guests, entry) {
		g->ksm_saving = 0;
		if (g->state == GUEST_ONLINE && g->qemu_pid > 0)
			pids[n++] = g->qemu_pid;
	}
	/* ksm_tick() reads each guest's saving anyway: one read per tick */
	if (md->ksm != NULL)
		ksm_tick(md->ksm, pids, n, saving);
	n = 0;
	TAILQ_FOREACH(g, &md->guests, entry) {
		if (g->state != GUEST_ONLINE || g->qemu_pid <= 0)
			continue;
		g->ksm_saving = md->ksm != NULL ? saving[n] :
		    ksm_guest_saving_bytes_at(md->conf->ksm_sysfs, g->qemu_pid);
		n++;
	}
}
#endif

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct memcoopd *md = arg;
	struct guest *g;

	(void)fd;
	(void)ev;
	md->ticks++;
	if (hostinfo_read(md->conf->procdir, &md->host) == -1 &&
	    md->ticks == 1)
		log_warnx("cannot read host memory state from %s",
		    md->conf->procdir ? md->conf->procdir : "/proc");
	if (md->backend->poll_stats != NULL)
		TAILQ_FOREACH(g, &md->guests, entry)
			if (g->state == GUEST_ONLINE)
				(void)md->backend->poll_stats(md, g);
	TAILQ_FOREACH(g, &md->guests, entry)
		state_adopt(md, g);
	run_policy(md);
	state_save(md);
#ifdef HAVE_KSM
	run_ksm(md);
#endif
	control_tick(md);
}

/* ------------------------------------------------------------------ */
/* Shutdown */

/*
 * Leaving.  Without restore every guest stays where it is and the targets
 * file keeps what they are at, for the next memcoopd to adopt: a restart
 * moves nothing.  With restore (memcoopctl stop --restore, or SIGTERM with
 * restore-on-exit yes) the guests the policy managed go back to the most
 * the operator allows, paced: each restore-period every such guest grows
 * by at most restore-step, and only while the host's MemAvailable stays
 * above host-floor after the growth already under way; after
 * restore-timeout what is left stays (and is saved).  Fixed guests stay
 * at their fixed target, manual guests are not touched.
 */
static int
restore_step(struct memcoopd *md)
{
	const struct policy_params *p = &md->conf->pol;
	uint64_t step = md->conf->restore_step != 0 ? md->conf->restore_step :
	    p->step_max, budget = UINT64_MAX, pending = 0, lo, hi, t;
	struct policy_guest pg;
	struct guest *g;
	int left = 0;

	if (hostinfo_read(md->conf->procdir, &md->host) == 0 &&
	    md->host.valid_mem) {
		TAILQ_FOREACH(g, &md->guests, entry)
			if (g->state == GUEST_ONLINE && g->actual != 0 &&
			    g->target > g->actual)
				pending += g->target - g->actual;
		budget = md->host.mem_available > p->host_floor + pending ?
		    md->host.mem_available - p->host_floor - pending : 0;
	}
	TAILQ_FOREACH(g, &md->guests, entry) {
		if (g->state != GUEST_ONLINE || g->set.mode != GMODE_AUTO ||
		    g->target == 0)
			continue;
		guest_to_policy(g, &pg);
		if (policy_limits(p, &pg, &lo, &hi) == -1 || g->target >= hi)
			continue;
		left++;
		t = hi - g->target;
		if (t > step)
			t = step;
		if (t > budget) {
			if (!md->restore_blocked++)
				log_warnx("restore: host MemAvailable %" PRIu64
				    "M, floor %" PRIu64 "M: waiting",
				    md->host.mem_available / MIB,
				    p->host_floor / MIB);
			continue;
		}
		if (guest_apply_target(md, g, g->target + t,
		    "stop: paced restore to the upper limit") == 0)
			budget -= t;
	}
	return left;
}

static void
shutdown_done_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct memcoopd *md = arg;

	(void)fd;
	(void)ev;
	event_base_loopbreak(md->base);
}

static void
restore_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct memcoopd *md = arg;
	struct timeval tv = { 1, 0 };
	int left;

	(void)fd;
	(void)ev;
	left = restore_step(md);
	if (left > 0 && now_ms() < md->restore_until)
		return;
	event_del(md->ev_restore);
	if (left == 0) {
		log_info("restore: every automatic guest is at its upper limit");
		state_forget(md);
	} else {
		log_warnx("restore: %d guest%s not back after %" PRIu64 " s: "
		    "left where they are (saved for the next memcoopd)", left,
		    left == 1 ? "" : "s", md->conf->restore_timeout_ms / 1000);
		state_save(md);
	}
	/* let the backend's last commands reach the guests */
	event_base_once(md->base, -1, EV_TIMEOUT, shutdown_done_cb, md, &tv);
}

static void
stop_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct memcoopd *md = arg;
	struct timeval tv = { 1, 0 }, period;
	int restore = md->shutting_down == 2;

	(void)fd;
	(void)ev;
	if (ev_tick != NULL)
		event_del(ev_tick);
	/* the stop's own answer still goes out: clients are closed at exit */
	control_quiesce(md);
	metrics_close(md);
	if (!restore) {
		state_save(md);
		log_info("stopping: guests left where they are, targets saved "
		    "for the next memcoopd");
		event_base_once(md->base, -1, EV_TIMEOUT, shutdown_done_cb, md,
		    &tv);
		return;
	}
	log_info("stopping: restoring the automatic guests, %" PRIu64
	    "M per %" PRIu64 " ms, within %" PRIu64 " s",
	    (md->conf->restore_step != 0 ? md->conf->restore_step :
	    md->conf->pol.step_max) / MIB, md->conf->restore_period_ms,
	    md->conf->restore_timeout_ms / 1000);
	md->restore_until = now_ms() + md->conf->restore_timeout_ms;
	period.tv_sec = (time_t)(md->conf->restore_period_ms / 1000);
	period.tv_usec = (suseconds_t)(md->conf->restore_period_ms % 1000) *
	    1000;
	md->ev_restore = event_new(md->base, -1, EV_PERSIST, restore_cb, md);
	if (md->ev_restore == NULL || event_add(md->ev_restore, &period) == -1)
		fatalx("cannot arm the restore timer");
	restore_cb(-1, 0, md);
}

/* Begin leaving: @restore gives auto guests their upper limit, paced. */
static void
memcoopd_stop(struct memcoopd *md, int restore)
{
	struct timeval tv = { 0, 0 };

	if (md->shutting_down)
		return;
	md->shutting_down = restore ? 2 : 1;
	(void)sdn_send("STOPPING=1");
	/* from the loop, not from inside a control client's callback */
	if (event_base_once(md->base, -1, EV_TIMEOUT, stop_cb, md, &tv) == -1)
		event_base_loopbreak(md->base);
}

static int
strdiff(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * SIGHUP: re-read the configuration file.  The policy's knobs, the tick,
 * automatic mode and the settings of the guests named in the file take
 * effect at once (settings made with memcoopctl for those guests are
 * replaced by the file's); what needs new sockets or connections (socket,
 * backend, qmp paths, qmp-dir, libvirt-uri, metrics, new guest blocks)
 * needs a restart and is reported.  A file with an error changes nothing.
 */
static void
reload_config(struct memcoopd *md)
{
	struct config *c = md->conf, nc;
	struct guest_conf *gc, *old;
	struct guest *g;
	struct timeval tv;
	char err[512];

	if (c->path == NULL) {
		log_warnx("SIGHUP: memcoopd runs on defaults, no file to "
		    "reload");
		return;
	}
	config_init(&nc);
	if (config_load(&nc, c->path, err, sizeof(err)) == -1) {
		log_warnx("SIGHUP: %s; configuration unchanged", err);
		config_free(&nc);
		return;
	}
	c->pol = nc.pol;
	c->auto_enabled = nc.auto_enabled;
	c->shutdown_restore = nc.shutdown_restore;
	c->restore_step = nc.restore_step;
	c->restore_period_ms = nc.restore_period_ms;
	c->restore_timeout_ms = nc.restore_timeout_ms;
	if (strdiff(nc.state_dir, c->state_dir))
		log_warnx("SIGHUP: a new state-dir needs a restart");
	if (nc.tick_ms != c->tick_ms) {
		c->tick_ms = nc.tick_ms;
		tv.tv_sec = c->tick_ms / 1000;
		tv.tv_usec = (c->tick_ms % 1000) * 1000;
		event_del(ev_tick);
		event_add(ev_tick, &tv);
	}
	TAILQ_FOREACH(gc, &nc.guests, entry) {
		if ((old = config_find_guest(c, gc->name)) == NULL) {
			log_warnx("SIGHUP: guest %s is new in the file: restart "
			    "memcoopd to manage it", gc->name);
			continue;
		}
		if (strdiff(old->qmp, gc->qmp))
			log_warnx("SIGHUP: guest %s: a new qmp path needs a "
			    "restart", gc->name);
		old->set = gc->set;
		if ((g = guest_find(md, gc->name)) != NULL) {
			g->set = gc->set;
			if (g->set.weight == 0)
				g->set.weight = GUEST_WEIGHT_DEFAULT;
		}
	}
	if (strdiff(nc.sock_path, c->sock_path) && nc.sock_path != NULL)
		log_warnx("SIGHUP: a new socket path needs a restart");
	if (nc.backend != c->backend || strdiff(nc.qmp_dir, c->qmp_dir) ||
	    (c->backend == BACKEND_LIBVIRT && nc.libvirt_uri != NULL &&
	    strdiff(nc.libvirt_uri, c->libvirt_uri)))
		log_warnx("SIGHUP: backend changes need a restart");
	if (strdiff(nc.metrics_addr, c->metrics_addr) ||
	    nc.metrics_port != c->metrics_port)
		log_warnx("SIGHUP: metrics changes need a restart");
	if (nc.ksm_mode != c->ksm_mode)
		log_warnx("SIGHUP: use memcoopctl ksm to change the KSM mode");
	config_free(&nc);
	log_info("SIGHUP: configuration reloaded from %s", c->path);
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct memcoopd *md = arg;

	(void)ev;
	if (sig == SIGHUP) {
		if (!md->shutting_down) {
			sdn_reloading();
			reload_config(md);
			(void)sdn_send("READY=1");
		}
		return;
	}
	if (md->shutting_down) {
		log_info("second signal, exiting now");
		event_base_loopbreak(md->base);
		return;
	}
	log_info("signal %d: shutting down", (int)sig);
	memcoopd_stop(md, md->conf->shutdown_restore);
}

/* ------------------------------------------------------------------ */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: memcoopd [-dnv] [-f config] [-s socket]\n"
	    "  -d, --foreground   stay in the foreground, log to stderr\n"
	    "  -n, --check        check the configuration and exit\n"
	    "  -v, --verbose      log debug messages (twice: more)\n"
	    "  -f, --config FILE  configuration file (default %s)\n"
	    "  -s, --socket PATH  control socket (default %s)\n",
	    MEMCOOPD_CONF, MEMCOOPD_SOCK);
	exit(2);
}

static const struct backend_ops *
pick_backend(const struct config *conf)
{
	if (conf->backend == BACKEND_LIBVIRT) {
#ifdef HAVE_VIRT
		return &virt_backend;
#else
		return NULL;
#endif
	}
	return &qmp_backend;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "foreground",	no_argument,		NULL, 'd' },
		{ "check",	no_argument,		NULL, 'n' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "config",	required_argument,	NULL, 'f' },
		{ "socket",	required_argument,	NULL, 's' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct memcoopd md;
	struct config conf;
	struct event *ev_int, *ev_term, *ev_hup;
	struct timeval tv;
	const char *cfpath = MEMCOOPD_CONF, *sockpath = NULL;
	char *cfabs = NULL;
	int ch, foreground = 0, check = 0, verbose = 0, cfgiven = 0;
	char err[512];

	while ((ch = getopt_long(argc, argv, "dnvf:s:h", longopts, NULL))
	    != -1) {
		switch (ch) {
		case 'd':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'f':
			cfpath = optarg;
			cfgiven = 1;
			break;
		case 's':
			sockpath = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init(1, verbose, "memcoopd");
	config_init(&conf);
	/* absolute, for SIGHUP after daemon() changed to / */
	if (cfpath[0] != '/' && (cfabs = realpath(cfpath, NULL)) != NULL)
		cfpath = cfabs;
	if (access(cfpath, F_OK) == -1 && errno == ENOENT && !cfgiven &&
	    !check) {
		log_info("no %s, using the defaults", cfpath);
	} else if (config_load(&conf, cfpath, err, sizeof(err)) == -1) {
		fatalx("%s", err);
	}
	if (sockpath != NULL) {
		free(conf.sock_path);
		if ((conf.sock_path = strdup(sockpath)) == NULL)
			fatal("strdup");
	}
	if (conf.sock_path == NULL &&
	    (conf.sock_path = strdup(MEMCOOPD_SOCK)) == NULL)
		fatal("strdup");
	if (conf.backend == BACKEND_LIBVIRT && conf.libvirt_uri == NULL &&
	    (conf.libvirt_uri = strdup("qemu:///system")) == NULL)
		fatal("strdup");
	if (pick_backend(&conf) == NULL) {
		fatalx("%s: backend libvirt: this memcoopd was built without "
		    "libvirt support", cfpath);
	}
	if (!foreground && !check && (conf.sock_path[0] != '/' ||
	    (conf.qmp_dir != NULL && conf.qmp_dir[0] != '/'))) {
		fatalx("the socket and qmp-dir paths must be absolute when "
		    "running as a daemon");
	}
	if (config_check_runtime(&conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "memcoopd: %s: %s\n", cfpath, err);
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		config_free(&conf);
		free(cfabs);
		return 0;
	}

	if (!foreground) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_init(0, verbose, "memcoopd");
	}
	signal(SIGPIPE, SIG_IGN);

	memset(&md, 0, sizeof(md));
	TAILQ_INIT(&md.guests);
	md.conf = &conf;
	md.started = now_ms();
	md.ksm_mode = -1;
	md.stop = memcoopd_stop;
	if ((md.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");

	md.backend = pick_backend(&conf);
	if (control_init(&md, conf.sock_path, conf.sock_gid) == -1)
		fatalx("cannot open the control socket %s", conf.sock_path);
	if (conf.metrics_addr != NULL &&
	    metrics_init(&md, conf.metrics_addr, conf.metrics_port) == -1)
		fatalx("cannot serve metrics on %s:%u", conf.metrics_addr,
		    conf.metrics_port);
#ifdef HAVE_KSM
	ksm_log_hook = vlog;
	if (conf.ksm_mode != KSMC_UNSET &&
	    memcoopd_ksm_init(&md, conf.ksm_mode, err, sizeof(err)) == -1)
		log_warnx("%s; leaving KSM alone", err);
#else
	if (conf.ksm_mode != KSMC_UNSET)
		log_warnx("built without KSM support; ksm setting ignored");
#endif
	state_load(&md);
	if (md.backend->init(&md, &conf) == -1)
		fatalx("backend %s failed to start", md.backend->name);

	ev_int = evsignal_new(md.base, SIGINT, signal_cb, &md);
	ev_term = evsignal_new(md.base, SIGTERM, signal_cb, &md);
	ev_hup = evsignal_new(md.base, SIGHUP, signal_cb, &md);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_hup, NULL);

	ev_tick = event_new(md.base, -1, EV_PERSIST, tick_cb, &md);
	tv.tv_sec = conf.tick_ms / 1000;
	tv.tv_usec = (conf.tick_ms % 1000) * 1000;
	event_add(ev_tick, &tv);

	log_info("started: backend %s, tick %ums, control %s%s", md.backend->name,
	    conf.tick_ms, conf.sock_path,
	    conf.auto_enabled ? "" : ", automatic mode disabled");
	tick_cb(-1, 0, &md);	/* first look right away */
	(void)sdn_watchdog_start(md.base);
	(void)sdn_send("READY=1");
	event_base_dispatch(md.base);
	sdn_watchdog_stop();

	md.backend->shutdown(&md);
#ifdef HAVE_KSM
	if (md.ksm != NULL)
		ksm_free(md.ksm);
#endif
	control_close(&md);
	metrics_close(&md);
	while (!TAILQ_EMPTY(&md.guests))
		guest_remove(&md, TAILQ_FIRST(&md.guests));
	while (!TAILQ_EMPTY(&md.adopt)) {
		struct adopt *a = TAILQ_FIRST(&md.adopt);

		TAILQ_REMOVE(&md.adopt, a, entry);
		free(a);
	}
	free(md.state_written);
	if (md.ev_restore != NULL)
		event_free(md.ev_restore);
	event_free(ev_tick);
	event_free(ev_int);
	event_free(ev_term);
	event_free(ev_hup);
	event_base_free(md.base);
	config_free(&conf);
	free(cfabs);
	log_info("exiting");
	return 0;
}
