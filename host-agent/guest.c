// SPDX-License-Identifier: GPL-2.0-only
/*
 * The guest list: what backends call when guests appear, go, report
 * stats; and guest_apply_target(), the one place a target is set, which
 * clamps it to the guest's limits and logs the reason.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "memcoopd.h"

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
	snprintf(g->reason, sizeof(g->reason), "%s", reason);
	md->changes++;
	g->changes++;
	log_info("guest %s: target %" PRIu64 "M -> %" PRIu64 "M: %s", g->name,
	    old / MIB, bytes / MIB, reason);
	return 0;
}

