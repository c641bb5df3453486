// SPDX-License-Identifier: GPL-2.0-only
/*
 * The guest list: what backends call when guests appear, go, report
 * stats; and guest_apply_target(), the one place a target is set, which
 * clamps it to the guest's limits and logs the reason.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "memcoopd.h"
#ifdef HAVE_KSM
#include "ksm.h"
#endif

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* The guest list, for backends */

struct guest *
guest_find(struct memcoopd *md, const char *name)
{
	struct guest *g;

	TAILQ_FOREACH(g, &md->guests, entry)
		if (strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

struct guest *
guest_add(struct memcoopd *md, const char *name,
    const struct backend_ops *ops, void *bdata)
{
	struct guest_conf *gc;
	struct guest *g;

	if (strlen(name) >= GUEST_NAME_MAX) {
		log_warnx("%s: guest name too long: %.64s...", __func__, name);
		return NULL;
	}
	if ((g = guest_find(md, name)) != NULL) {
		g->backend = ops;
		g->bdata = bdata;
		if (g->state != GUEST_ONLINE)
			log_info("guest %s: online", name);
		g->state = GUEST_ONLINE;
		return g;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		log_warn("%s", __func__);
		return NULL;
	}
	strcpy(g->name, name);
	g->backend = ops;
	g->bdata = bdata;
	g->state = GUEST_ONLINE;
	g->set.weight = GUEST_WEIGHT_DEFAULT;
	if (md->conf != NULL && (gc = config_find_guest(md->conf, name)) != NULL)
		g->set = gc->set;
	if (g->set.weight == 0)
		g->set.weight = GUEST_WEIGHT_DEFAULT;
	TAILQ_INSERT_TAIL(&md->guests, g, entry);
	md->nguests++;
	log_info("guest %s: added (%s backend, mode %s)", name,
	    ops != NULL ? ops->name : "none", guest_mode_name(g->set.mode));
	return g;
}

void
guest_remove(struct memcoopd *md, struct guest *g)
{
	log_info("guest %s: removed", g->name);
	TAILQ_REMOVE(&md->guests, g, entry);
	md->nguests--;
	free(g);
}

void
guest_offline(struct memcoopd *md, struct guest *g)
{
	(void)md;
	if (g->state != GUEST_OFFLINE)
		log_info("guest %s: offline", g->name);
	g->state = GUEST_OFFLINE;
	g->qemu_pid = 0;
	g->actual = 0;
	g->target = 0;		/* a restarted QEMU starts with no balloon */
	g->stats.valid = 0;
	g->prev.valid = 0;
	g->stats.when = g->prev.when = 0;
	memset(&g->pst, 0, sizeof(g->pst));
}

void
guest_update_stats(struct memcoopd *md, struct guest *g,
    const struct guest_stats *s)
{
	(void)md;
	/* the same sample again (guest stats period longer than ours) */
	if (g->stats.valid != 0 && s->guest_time != 0 &&
	    s->guest_time == g->stats.guest_time)
		return;
	g->prev = g->stats;
	g->stats = *s;
	if (g->stats.when == 0)
		g->stats.when = now_ms();
}

void
guest_update_actual(struct memcoopd *md, struct guest *g, uint64_t actual)
{
	(void)md;
	g->actual = actual;
}

void
guest_to_policy(const struct guest *g, struct policy_guest *pg)
{
	memset(pg, 0, sizeof(*pg));
	pg->name = g->name;
	pg->online = g->state == GUEST_ONLINE;
	pg->set = g->set;
	pg->maxmem = g->maxmem;
	pg->actual = g->actual;
	pg->cur_target = g->target;
	pg->stats = g->stats;
	pg->prev = g->prev;
	pg->st = g->pst;
}

void
guests_to_policy(struct memcoopd *md, struct policy_guest *pgs)
{
	struct guest *g;
	size_t i = 0;

	TAILQ_FOREACH(g, &md->guests, entry) {
		guest_to_policy(g, &pgs[i]);
		if (!md->conf->auto_enabled && g->set.mode == GMODE_AUTO)
			pgs[i].set.mode = GMODE_MANUAL;
		i++;
	}
}

int
policy_preview(struct memcoopd *md, const struct guest *tg,
    const struct guest_settings *set, uint64_t *target, int *changed,
    char *reason, char *explain)
{
	struct policy_guest *pgs;
	struct guest *g;
	size_t i = 0, me = 0;

	if ((pgs = calloc(md->nguests + 1, sizeof(*pgs))) == NULL)
		return -1;
	guests_to_policy(md, pgs);
	TAILQ_FOREACH(g, &md->guests, entry) {
		if (g == tg) {
			me = i;
			pgs[i].set = *set;
			if (!md->conf->auto_enabled && set->mode == GMODE_AUTO)
				pgs[i].set.mode = GMODE_MANUAL;
		}
		i++;
	}
	policy_run(&md->conf->pol, &md->host, pgs, i, now_ms());
	*target = pgs[me].target;
	*changed = pgs[me].changed;
	memcpy(reason, pgs[me].reason, REASON_MAX);
	memcpy(explain, pgs[me].explain, REASON_MAX);
	free(pgs);
	return 0;
}

int
guest_apply_target(struct memcoopd *md, struct guest *g, uint64_t bytes,
    const char *reason)
{
	struct policy_guest pg;
	uint64_t lo, hi, old = g->target != 0 ? g->target : g->actual;

	if (g->state != GUEST_ONLINE || g->backend == NULL) {
		log_warnx("guest %s: not online, target not set", g->name);
		return -1;
	}
	guest_to_policy(g, &pg);
	if (policy_limits(&md->conf->pol, &pg, &lo, &hi) == -1) {
		log_warnx("guest %s: size unknown, target not set", g->name);
		return -1;
	}
	if (bytes < lo || bytes > hi) {
		log_info("guest %s: target %" PRIu64 "M clamped to %" PRIu64
		    "M..%" PRIu64 "M", g->name, bytes / MIB, lo / MIB,
		    hi / MIB);
		bytes = bytes < lo ? lo : hi;
	}
	if (g->backend->set_target(md, g, bytes) == -1) {
		log_warnx("guest %s: setting target %" PRIu64 "M failed",
		    g->name, bytes / MIB);
		return -1;
	}
	g->target = bytes;
	g->reason_when = now_ms();
	snprintf(g->reason, sizeof(g->reason), "%s", reason);
	md->changes++;
	g->changes++;
	log_info("guest %s: target %" PRIu64 "M -> %" PRIu64 "M: %s", g->name,
	    old / MIB, bytes / MIB, reason);
	return 0;
}


void
guest_target_refused(struct memcoopd *md, struct guest *g, uint64_t refused,
    uint64_t prev, const char *why)
{
	(void)md;
	if (g->target != refused)	/* a newer target went out since */
		return;
	log_warnx("guest %s: target %" PRIu64 "M refused (%s): back to %"
	    PRIu64 "M", g->name, refused / MIB, why, prev / MIB);
	g->target = prev;
	g->reason_when = now_ms();
	snprintf(g->reason, sizeof(g->reason), "target %" PRIu64
	    "M refused: %.100s", refused / MIB, why);
}

/* ------------------------------------------------------------------ */
/* Targets across restarts */

#define STATE_TARGETS		"targets"
#define STATE_MAX		(1024 * 1024)

int
state_path(const struct config *c, const char *name, char *buf, size_t len)
{
	const char *dir = c->state_dir != NULL ? c->state_dir :
	    MEMCOOPD_STATE_DIR;

	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		return -1;
	/* /run/memcoop without systemd's RuntimeDirectory= */
	if (mkdir(dir, 0755) == 0)
		log_info("%s: created %s", __func__, dir);
	return 0;
}

/*
 * The file: one line per guest with a target, "NAME TARGET PID" (bytes,
 * QEMU's pid or 0).  Names have no white space (guest names come from
 * socket file names and libvirt; one with a space is not saved).
 */
int
state_load(struct memcoopd *md)
{
	char path[4096], name[GUEST_NAME_MAX], *buf, *line, *save = NULL;
	unsigned long long target;
	struct adopt *a;
	int pid, n = 0;
	ssize_t len;

	TAILQ_INIT(&md->adopt);
	if (state_path(md->conf, STATE_TARGETS, path, sizeof(path)) == -1)
		return -1;
	if ((buf = malloc(STATE_MAX + 1)) == NULL)
		return -1;
	if ((len = io_read_path(path, buf, STATE_MAX + 1)) < 0) {
		if (errno != ENOENT)
			log_warn("%s: %s", __func__, path);
		free(buf);
		return 0;
	}
	buf[len < STATE_MAX ? len : STATE_MAX] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%63s %llu %d", name, &target, &pid) != 3 ||
		    target == 0 || pid < 0) {
			log_warnx("%s: %s: bad line ignored: %.80s", __func__,
			    path, line);
			continue;
		}
		if ((a = calloc(1, sizeof(*a))) == NULL)
			break;
		snprintf(a->name, sizeof(a->name), "%s", name);
		a->target = target;
		a->pid = (pid_t)pid;
		TAILQ_INSERT_TAIL(&md->adopt, a, entry);
		n++;
	}
	free(buf);
	if (n > 0)
		log_info("%s: %d target%s left by the previous memcoopd in %s",
		    __func__, n, n == 1 ? "" : "s", path);
	return n;
}

void
state_adopt(struct memcoopd *md, struct guest *g)
{
	struct adopt *a;

	if (g->state != GUEST_ONLINE || g->target != 0)
		return;
	TAILQ_FOREACH(a, &md->adopt, entry)
		if (strcmp(a->name, g->name) == 0)
			break;
	if (a == NULL)
		return;
	/* QEMU's pid must be the same, else it restarted without a balloon */
	if (a->pid != 0 && g->qemu_pid == 0)
		return;				/* not known yet: later */
	TAILQ_REMOVE(&md->adopt, a, entry);
	if (a->pid != 0 && a->pid != g->qemu_pid) {
		log_info("guest %s: QEMU changed (pid %d, was %d): the previous "
		    "target %" PRIu64 "M is not adopted", g->name,
		    (int)g->qemu_pid, (int)a->pid, a->target / MIB);
		free(a);
		return;
	}
	g->target = a->target;
	/* the last change was the previous instance's: hold from now */
	g->pst.last_change = now_ms();
	g->pst.last_dir = g->actual != 0 && g->actual < g->maxmem ? -1 : 0;
	g->reason_when = now_ms();
	snprintf(g->reason, sizeof(g->reason), "adopted from the previous "
	    "memcoopd");
	log_info("guest %s: target %" PRIu64 "M adopted from the previous "
	    "memcoopd (balloon at %" PRIu64 "M)", g->name, a->target / MIB,
	    g->actual / MIB);
	free(a);
}

void
state_save(struct memcoopd *md)
{
	char path[4096], tmp[4200], *buf = NULL;
	struct guest *g;
	size_t len = 0, cap = 0;
	struct adopt *a;
	int fd, rc = -1;
	FILE *f;

	if ((f = open_memstream(&buf, &cap)) == NULL)
		return;
	TAILQ_FOREACH(g, &md->guests, entry)
		if (g->target != 0 && strpbrk(g->name, " \t\n") == NULL)
			fprintf(f, "%s %" PRIu64 " %d\n", g->name, g->target,
			    (int)g->qemu_pid);
	/* not adopted yet: kept for a guest that comes back */
	TAILQ_FOREACH(a, &md->adopt, entry)
		if (guest_find(md, a->name) == NULL ||
		    guest_find(md, a->name)->target == 0)
			fprintf(f, "%s %" PRIu64 " %d\n", a->name, a->target,
			    (int)a->pid);
	if (fclose(f) != 0 || buf == NULL) {
		free(buf);
		return;
	}
	len = strlen(buf);
	if (md->state_written != NULL && strcmp(md->state_written, buf) == 0) {
		free(buf);
		return;
	}
	if (state_path(md->conf, STATE_TARGETS, path, sizeof(path)) == -1) {
		free(buf);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd != -1) {
		if (io_full(fd, buf, len, 1) == 0 && fsync(fd) == 0)
			rc = 0;
		close(fd);
		if (rc == 0 && rename(tmp, path) == -1)
			rc = -1;
	}
	if (rc == -1) {
		log_warn("%s: %s", __func__, path);
		unlink(tmp);
		free(buf);
		return;
	}
	free(md->state_written);
	md->state_written = buf;
}

void
state_forget(struct memcoopd *md)
{
	char path[4096];
	struct adopt *a;

	while ((a = TAILQ_FIRST(&md->adopt)) != NULL) {
		TAILQ_REMOVE(&md->adopt, a, entry);
		free(a);
	}
	if (state_path(md->conf, STATE_TARGETS, path, sizeof(path)) == 0 &&
	    unlink(path) == 0)
		log_info("%s: %s removed: the guests have their memory back",
		    __func__, path);
	free(md->state_written);
	md->state_written = NULL;
}

int
memcoopd_ksm_init(struct memcoopd *md, int mode, char *err, size_t errlen)
{
#ifdef HAVE_KSM
	char path[4096], who[64];

	if (ksm_other_manager(md->conf->procdir, who, sizeof(who))) {
		snprintf(err, errlen, "KSM is managed by %s: memcoopd does not "
		    "fight it (stop it, or leave ksm unmanaged)", who);
		errno = EBUSY;
		return -1;
	}
	if (state_path(md->conf, "ksm.orig", path, sizeof(path)) == -1 ||
	    ksm_init_saved(&md->ksm, md->conf->ksm_sysfs ? md->conf->ksm_sysfs :
	    KSM_SYSFS_DEFAULT, (enum ksm_mode)mode, path) == -1) {
		snprintf(err, errlen, "KSM control unavailable");
		md->ksm = NULL;
		errno = ENOTSUP;
		return -1;
	}
	md->ksm_mode = mode;
	return 0;
#else
	(void)md;
	(void)mode;
	snprintf(err, errlen, "built without KSM support");
	errno = ENOTSUP;
	return -1;
#endif
}
