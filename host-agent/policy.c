// SPDX-License-Identifier: GPL-2.0-only
/*
 * The automatic policy: a pure function from (host state, every guest's
 * stats and settings, the policy's own per-guest memory) to new balloon
 * targets with a reason for each change.  No I/O, no clock: the caller
 * passes the time, the unit tests pass recorded inputs.
 *
 * A guest stalls when, between its previous stats and these, it had an
 * OOM kill, an allocation stall or direct reclaim (the Linux 6.12 stats,
 * when QEMU reports them), or, from a guest without the allocation-stall
 * counter, swapped in above swap-rate-high or major faulted above
 * majflt-rate-high.  A counter going backwards (the guest rebooted) makes
 * that tick's rates unknown, never a stall; a counter missing from either
 * sample is not counted.
 *
 * Each guest is classified from its stats:
 *   needy   stalling, or MemAvailable below guest-reserve, or swapping or
 *           major faulting above the configured rates;
 *   tight   MemAvailable below guest-reserve + guest-slack;
 *   spare   MemAvailable above guest-reserve + 2 * guest-slack (it can
 *           give MemAvailable - reserve - slack);
 *   neutral otherwise (the dead band that keeps targets from flapping).
 * The host is short when MemAvailable is below host-floor, or PSI memory
 * "some" avg10 is above host-psi-high while MemAvailable is below
 * host-comfort; it is comfortable above host-comfort with low PSI.
 *
 * Then, in one tick:
 *   - needy guests (and tight guests when the host is comfortable) ask
 *     for memory; the host funds them from its MemAvailable above the
 *     floor, minus what is already promised; stalling guests are served
 *     first, the others share what is left in proportion to weight;
 *   - what the host cannot fund, plus the host's own deficit up to
 *     host-comfort (minus inflation already under way), is taken from
 *     spare guests in proportion to spare / weight;
 *   - every change is at most step-max, changes below step-min are not
 *     made, a guest is shrunk only after calm-ticks ticks without
 *     pressure, a guest's target moves only on stats taken after its
 *     last change and never while its balloon is still behind the last
 *     target, and the direction of a guest's target never reverses
 *     within hold; a guest given memory while it stalled is not shrunk
 *     for stall-hold after that.
 * Every target is clamped to the operator's limits and to what the guest
 * has (policy_limits()); nothing here can produce a target outside them.
 * An automatic guest whose size is unknown (maxmem 0) is left alone as if
 * manual: its ceiling would be what it holds now, so it could be shrunk
 * but never grown back.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "memcoopd.h"

enum gclass { GC_UNKNOWN, GC_NEEDY, GC_TIGHT, GC_NEUTRAL, GC_SPARE };

static uint64_t
u64min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t
u64max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t
sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static double
mib(uint64_t b)
{
	return (double)b / (double)MIB;
}

void
policy_defaults(struct policy_params *p)
{
	memset(p, 0, sizeof(*p));
	p->host_floor = 512 * MIB;
	p->host_comfort = 1024 * MIB;
	p->host_psi_high = 10.0;
	p->guest_min = 256 * MIB;
	p->guest_reserve = 128 * MIB;
	p->guest_slack = 128 * MIB;
	p->step_max = 128 * MIB;
	p->step_min = 8 * MIB;
	p->hold_ms = 20000;
	p->swap_rate_high = 1 * MIB;
	p->majflt_rate_high = 100;
	p->calm_ticks = 3;
	p->stats_max_age = 30000;
	p->stall_hold_ms = 30000;
}

int
policy_limits(const struct policy_params *p, const struct policy_guest *g,
    uint64_t *lo, uint64_t *hi)
{
	uint64_t h, l;

	/* what the guest has: its boot memory, else what we know it holds */
	if (g->maxmem != 0)
		h = g->maxmem;
	else if (g->actual != 0 || g->cur_target != 0)
		h = u64max(g->actual, g->cur_target);
	else
		return -1;
	if (g->set.max != 0)
		h = u64min(h, g->set.max);
	l = g->set.min != 0 ? g->set.min : p->guest_min;
	if (l > h)
		l = h;
	*lo = l;
	*hi = h;
	return 0;
}

static uint64_t
clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Per-second rate of a cumulative counter; 0 when it cannot be known. */
static uint64_t
rate(uint64_t now, uint64_t before, uint64_t dt_ms)
{
	if (dt_ms == 0 || now < before)	/* guest rebooted: counters reset */
		return 0;
	if (now - before > UINT64_MAX / 1000)
		return UINT64_MAX / dt_ms;
	return (now - before) * 1000 / dt_ms;
}

struct gwork {
	enum gclass	 cls;
	uint64_t	 lo, hi, base;
	uint64_t	 spare;		/* may give */
	uint64_t	 need;		/* asks for */
	int		 stall;		/* stalled since the previous stats */
	int		 fresh;		/* stats taken after the last change */
	int		 may_shrink;
	int		 may_grow;
	char		 why[96];	/* the classification, for reasons */
};

/* The cumulative counters, for the reset check. */
static const struct {
	uint32_t	 bit;
	size_t		 off;
} counters[] = {
	{ GST_SWAP_IN, offsetof(struct guest_stats, swap_in) },
	{ GST_SWAP_OUT, offsetof(struct guest_stats, swap_out) },
	{ GST_MAJFLT, offsetof(struct guest_stats, majflt) },
	{ GST_MINFLT, offsetof(struct guest_stats, minflt) },
	{ GST_OOM_KILLS, offsetof(struct guest_stats, oom_kills) },
	{ GST_ALLOC_STALLS, offsetof(struct guest_stats, alloc_stalls) },
	{ GST_DIRECT_SCAN, offsetof(struct guest_stats, direct_scan) },
	{ GST_DIRECT_RECLAIM, offsetof(struct guest_stats, direct_reclaim) },
};

static uint64_t
counter(const struct guest_stats *s, size_t i)
{
	return *(const uint64_t *)((const char *)s + counters[i].off);
}

/* Did a counter both samples carry go backwards (the guest rebooted)? */
static int
counters_reset(const struct guest_stats *s, const struct guest_stats *o)
{
	size_t i;

	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if ((s->valid & o->valid & counters[i].bit) &&
		    counter(s, i) < counter(o, i))
			return 1;
	return 0;
}

/* Did counter @bit, carried by both samples, grow? */
static int
grew(const struct guest_stats *s, const struct guest_stats *o, uint32_t bit)
{
	size_t i;

	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (counters[i].bit == bit)
			return (s->valid & o->valid & bit) &&
			    counter(s, i) > counter(o, i);
	return 0;
}

static void
classify(const struct policy_params *p, struct policy_guest *g,
    struct gwork *w, uint64_t now)
{
	const struct guest_stats *s = &g->stats, *o = &g->prev;
	uint64_t dt, swap = 0, swapin = 0, majflt = 0, avail;
	const char *stall = NULL;

	w->cls = GC_UNKNOWN;
	snprintf(w->why, sizeof(w->why), "no usable stats");
	if (!(s->valid & GST_AVAIL) || s->when == 0 || s->when > now ||
	    now - s->when > p->stats_max_age)
		return;
	avail = s->avail;
	/* absurd: more available than the guest has */
	if ((s->valid & GST_TOTAL) && s->total != 0 && avail > s->total)
		return;
	if (g->maxmem != 0 && avail > g->maxmem)
		return;
	/* nor more than it holds now (the balloon's pages are not free) */
	if (g->actual != 0 && avail > g->actual)
		return;

	if (o->when != 0 && o->when < s->when && !counters_reset(s, o)) {
		dt = s->when - o->when;
		if ((s->valid & o->valid & (GST_SWAP_IN | GST_SWAP_OUT)) ==
		    (GST_SWAP_IN | GST_SWAP_OUT))
			swap = rate(s->swap_in, o->swap_in, dt) +
			    rate(s->swap_out, o->swap_out, dt) / 2;
		if (s->valid & o->valid & GST_SWAP_IN)
			swapin = rate(s->swap_in, o->swap_in, dt);
		if (s->valid & o->valid & GST_MAJFLT)
			majflt = rate(s->majflt, o->majflt, dt);
		if (grew(s, o, GST_OOM_KILLS))
			stall = "OOM kill in guest";
		else if (grew(s, o, GST_ALLOC_STALLS))
			stall = "allocation stall in guest";
		else if (grew(s, o, GST_DIRECT_SCAN) ||
		    grew(s, o, GST_DIRECT_RECLAIM))
			stall = "direct reclaim in guest";
		else if (!(s->valid & o->valid & GST_ALLOC_STALLS) &&
		    p->swap_rate_high != 0 && swapin > p->swap_rate_high)
			stall = "guest swapping in";
		else if (!(s->valid & o->valid & GST_ALLOC_STALLS) &&
		    p->majflt_rate_high != 0 && majflt > p->majflt_rate_high)
			stall = "guest major faulting";
	}

	if (stall != NULL) {
		w->cls = GC_NEEDY;
		w->stall = 1;
		w->need = u64max(p->step_max, sub0(p->guest_reserve +
		    p->guest_slack, avail));
		g->stalled = 1;
		g->st.last_stall = now;
		if (swapin != 0 || majflt != 0)
			snprintf(w->why, sizeof(w->why), "stall: %s (swap-in "
			    "%.1fM/s, %" PRIu64 " major faults/s)", stall,
			    mib(swapin), majflt);
		else
			snprintf(w->why, sizeof(w->why), "stall: %s", stall);
	} else if (avail < p->guest_reserve) {
		w->cls = GC_NEEDY;
		w->need = p->guest_reserve + p->guest_slack - avail;
		snprintf(w->why, sizeof(w->why),
		    "guest MemAvailable %.0fM < reserve %.0fM",
		    mib(avail), mib(p->guest_reserve));
	} else if (p->swap_rate_high != 0 && swap > p->swap_rate_high) {
		w->cls = GC_NEEDY;
		w->need = p->step_max;
		snprintf(w->why, sizeof(w->why), "guest swapping %.1fM/s",
		    mib(swap));
	} else if (p->majflt_rate_high != 0 && majflt > p->majflt_rate_high) {
		w->cls = GC_NEEDY;
		w->need = p->step_max;
		snprintf(w->why, sizeof(w->why),
		    "guest major faults %" PRIu64 "/s", majflt);
	} else if (avail < p->guest_reserve + p->guest_slack) {
		w->cls = GC_TIGHT;
		w->need = p->guest_reserve + p->guest_slack - avail;
		snprintf(w->why, sizeof(w->why),
		    "guest MemAvailable %.0fM < reserve+slack %.0fM",
		    mib(avail), mib(p->guest_reserve + p->guest_slack));
	} else if (avail > p->guest_reserve + 2 * p->guest_slack) {
		w->cls = GC_SPARE;
		w->spare = avail - p->guest_reserve - p->guest_slack;
		snprintf(w->why, sizeof(w->why),
		    "guest MemAvailable %.0fM, spare %.0fM",
		    mib(avail), mib(w->spare));
	} else {
		w->cls = GC_NEUTRAL;
		snprintf(w->why, sizeof(w->why), "guest MemAvailable %.0fM",
		    mib(avail));
	}
}

static void
set_result(struct policy_guest *g, uint64_t target, uint64_t now,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
set_result(struct policy_guest *g, uint64_t target, uint64_t now,
    const char *fmt, ...)
{
	va_list ap;
	uint64_t from = g->cur_target != 0 ? g->cur_target : g->actual;

	if (target == g->cur_target)
		return;
	g->target = target;
	g->changed = 1;
	if (from != 0 && target != from)
		g->st.last_dir = target > from ? 1 : -1;
	g->st.last_change = now;
	va_start(ap, fmt);
	vsnprintf(g->reason, sizeof(g->reason), fmt, ap);
	va_end(ap);
}

/* May @g move in direction @dir now, given hold? */
static int
hold_allows(const struct policy_params *p, const struct policy_guest *g,
    int dir, uint64_t now)
{
	if (g->st.last_dir == 0 || g->st.last_dir == dir)
		return 1;
	return now >= g->st.last_change + p->hold_ms;
}

static const char *
class_name(enum gclass c)
{
	switch (c) {
	case GC_NEEDY:		return "needy";
	case GC_TIGHT:		return "tight";
	case GC_NEUTRAL:	return "neutral";
	case GC_SPARE:		return "spare";
	default:		return "unknown";
	}
}

static void
explain(struct policy_guest *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
explain(struct policy_guest *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->explain, sizeof(g->explain), fmt, ap);
	va_end(ap);
}

/* Why an automatic guest's target did or did not move this tick. */
static void
explain_auto(const struct policy_params *p, struct policy_guest *g,
    const struct gwork *w, uint64_t now, int host_short, uint64_t to_take)
{
	const char *held = "";
	char buf[64] = "";

	if (g->changed) {
		held = "acted";
	} else if (w->cls == GC_NEEDY || w->cls == GC_TIGHT) {
		if (w->cls == GC_TIGHT && w->need == 0 &&
		    w->may_grow)
			held = "host not comfortable enough to grow it";
		else if (w->base >= w->hi)
			held = "at its upper limit";
		else if (!w->fresh)
			held = "waiting for stats newer than the last change";
		else if (!hold_allows(p, g, 1, now))
			snprintf(buf, sizeof(buf), "hold: %.0fs left after "
			    "shrinking", (double)(g->st.last_change +
			    p->hold_ms - now) / 1000.0);
		else if (w->may_grow)
			held = "no memory the host can give";
		else
			held = "balloon still behind the last target";
	} else if (w->cls == GC_SPARE) {
		if (w->base <= w->lo)
			held = "at its lower limit";
		else if (now < g->st.stall_until)
			snprintf(buf, sizeof(buf), "stall-hold: %.0fs left",
			    (double)(g->st.stall_until - now) / 1000.0);
		else if (!w->fresh)
			held = "waiting for stats newer than the last change";
		else if (g->st.calm_ticks < (host_short ? 1 : p->calm_ticks))
			snprintf(buf, sizeof(buf), "calm %u of %u ticks",
			    g->st.calm_ticks, host_short ? 1 : p->calm_ticks);
		else if (!hold_allows(p, g, -1, now))
			snprintf(buf, sizeof(buf), "hold: %.0fs left after "
			    "growing", (double)(g->st.last_change +
			    p->hold_ms - now) / 1000.0);
		else if (!w->may_shrink)
			held = "balloon still behind the last target";
		else if (to_take == 0)
			held = "nobody needs memory back";
		else
			held = "its share is below step-min";
	} else {
		held = "in the dead band";
	}
	explain(g, "%s (%s): %s%s", class_name(w->cls), w->why, held, buf);
}

int
policy_run(const struct policy_params *p, const struct host_stats *h,
    struct policy_guest *gs, size_t n, uint64_t now)
{
	struct gwork works[n > 0 ? n : 1];
	uint64_t pending_shrink = 0, pending_grow = 0;
	uint64_t demand = 0, deficit = 0, budget = 0, to_take, taken = 0;
	uint64_t spare_w = 0, need_w = 0;
	int host_short = 0, host_comfy = 0, changed = 0;
	char hostwhy[96] = "host state unknown";
	size_t i;

	memset(works, 0, sizeof(works));

	/* the host */
	if (h != NULL && h->valid_mem) {
		int psi_high = h->valid_psi &&
		    h->psi_some_avg10 > p->host_psi_high;

		if (h->mem_available < p->host_floor) {
			host_short = 1;
			snprintf(hostwhy, sizeof(hostwhy),
			    "host MemAvailable %.0fM < floor %.0fM",
			    mib(h->mem_available), mib(p->host_floor));
		} else if (psi_high && h->mem_available < p->host_comfort) {
			host_short = 1;
			snprintf(hostwhy, sizeof(hostwhy),
			    "host memory PSI %.1f%% > %.1f%%",
			    h->psi_some_avg10, p->host_psi_high);
		} else if (h->mem_available > p->host_comfort && !psi_high) {
			host_comfy = 1;
			snprintf(hostwhy, sizeof(hostwhy),
			    "host MemAvailable %.0fM", mib(h->mem_available));
		} else {
			snprintf(hostwhy, sizeof(hostwhy),
			    "host MemAvailable %.0fM", mib(h->mem_available));
		}
	}

	/* every guest: limits, fixed targets, classification */
	for (i = 0; i < n; i++) {
		struct policy_guest *g = &gs[i];
		struct gwork *w = &works[i];
		int fresh;

		g->target = g->cur_target;
		g->changed = 0;
		g->stalled = 0;
		g->reason[0] = '\0';
		g->explain[0] = '\0';
		w->cls = GC_UNKNOWN;
		if (policy_limits(p, g, &w->lo, &w->hi) == -1) {
			explain(g, "size unknown: not managed");
			continue;
		}
		if (!g->online || g->set.mode == GMODE_MANUAL) {
			explain(g, "%s: not managed", !g->online ? "offline" :
			    "manual");
			continue;
		}
		/* size unknown: shrinking it could not be undone */
		if (g->set.mode == GMODE_AUTO && g->maxmem == 0) {
			explain(g, "boot memory unknown: left alone as manual");
			continue;
		}
		if (g->set.mode == GMODE_FIXED) {
			explain(g, "fixed target set by the operator");
			uint64_t t = clamp(g->set.target != 0 ?
			    g->set.target : g->cur_target, w->lo, w->hi);

			if (t != 0 && t != g->cur_target)
				set_result(g, t, now, "fixed target %.0fM set "
				    "by the operator", mib(t));
			continue;
		}
		/* GMODE_AUTO */
		w->base = g->cur_target != 0 ? g->cur_target : g->actual;
		if (w->base == 0) {
			explain(g, "no target and no balloon size yet");
			continue;
		}
		if (w->base < w->lo || w->base > w->hi) {
			uint64_t t = clamp(w->base, w->lo, w->hi);

			set_result(g, t, now, "%.0fM is outside the limits "
			    "%.0fM..%.0fM", mib(w->base), mib(w->lo),
			    mib(w->hi));
			w->cls = GC_UNKNOWN;	/* nothing more this tick */
			explain(g, "back inside the limits");
			continue;
		}
		classify(p, g, w, now);
		if (w->cls == GC_UNKNOWN) {
			g->st.calm_ticks = 0;
			explain(g, "%s: not acting", w->why);
			continue;
		}
		if (w->cls == GC_NEEDY) {
			g->st.press_ticks++;
			g->st.calm_ticks = 0;
		} else {
			g->st.press_ticks = 0;
			if (w->cls != GC_TIGHT)
				g->st.calm_ticks++;
			else
				g->st.calm_ticks = 0;
		}
		/* balloon still moving towards the last target */
		if (g->cur_target != 0 && g->actual != 0) {
			if (g->actual > g->cur_target)
				pending_shrink += g->actual - g->cur_target;
			else
				pending_grow += g->cur_target - g->actual;
		}
		/* judge a change only on stats taken after the last one */
		fresh = w->fresh = g->st.last_change == 0 ||
		    g->stats.when > g->st.last_change;
		w->may_grow = fresh && w->base < w->hi &&
		    hold_allows(p, g, 1, now) &&
		    !(g->cur_target != 0 && g->actual != 0 &&
		      g->actual + p->step_min < g->cur_target);
		w->may_shrink = fresh && w->base > w->lo &&
		    g->st.calm_ticks >= (host_short ? 1 : p->calm_ticks) &&
		    hold_allows(p, g, -1, now) && now >= g->st.stall_until &&
		    !(g->cur_target != 0 && g->actual != 0 &&
		      g->actual > g->cur_target + p->step_min);
		if (w->cls == GC_NEEDY || (w->cls == GC_TIGHT && host_comfy)) {
			if (w->may_grow) {
				w->need = u64min(u64min(u64max(w->need,
				    p->step_min), p->step_max), w->hi - w->base);
				demand += w->need;
				need_w += (uint64_t)(g->set.weight ?
				    g->set.weight : GUEST_WEIGHT_DEFAULT);
			} else {
				w->need = 0;
			}
		} else {
			w->need = 0;
		}
		if (w->cls == GC_SPARE && w->may_shrink) {
			w->spare = u64min(u64min(w->spare, p->step_max),
			    w->base - w->lo);
			spare_w += w->spare * GUEST_WEIGHT_DEFAULT /
			    (g->set.weight ? g->set.weight : GUEST_WEIGHT_DEFAULT);
		} else {
			w->spare = 0;
		}
	}

	/* what the host can fund and what it wants back */
	if (h != NULL && h->valid_mem) {
		budget = sub0(sub0(h->mem_available, p->host_floor),
		    pending_grow);
		if (host_short)
			deficit = sub0(sub0(p->host_comfort, h->mem_available),
			    pending_shrink);
	} else {
		budget = demand;	/* no host figures: trust guest needs */
	}
	to_take = deficit + sub0(demand, budget);

	/* take from spare guests, in proportion to spare / weight */
	if (to_take > 0 && spare_w > 0) {
		for (i = 0; i < n; i++) {
			struct policy_guest *g = &gs[i];
			struct gwork *w = &works[i];
			uint64_t share, wt, t;

			if (w->spare == 0)
				continue;
			wt = w->spare * GUEST_WEIGHT_DEFAULT /
			    (g->set.weight ? g->set.weight : GUEST_WEIGHT_DEFAULT);
			if (to_take >= spare_w)
				share = w->spare;
			else
				share = (uint64_t)((double)to_take *
				    ((double)wt / (double)spare_w));
			share = u64min(share, w->spare);
			if (share < p->step_min)
				continue;
			t = clamp(w->base - share, w->lo, w->hi);
			set_result(g, t, now, "-%.0fM: %s; %s",
			    mib(w->base - t),
			    deficit > 0 ? hostwhy : "other guests need memory",
			    w->why);
			taken += w->base - t;
		}
	}

	/*
	 * give to guests that need memory: stalling guests first, then the
	 * others in proportion to weight from what is left
	 */
	if (demand > 0) {
		uint64_t avail = budget + taken;
		int pass;

		for (pass = 0; pass < 2; pass++) {
			for (i = 0; i < n; i++) {
				struct policy_guest *g = &gs[i];
				struct gwork *w = &works[i];
				uint64_t give, t, wt;

				if (w->need == 0 || w->stall != (pass == 0))
					continue;
				wt = g->set.weight ? g->set.weight :
				    GUEST_WEIGHT_DEFAULT;
				if (pass == 0)
					give = u64min(w->need, avail);
				else if (avail >= demand)
					give = w->need;
				else
					give = u64min(w->need, (uint64_t)(
					    (double)avail * ((double)wt /
					    (double)need_w)));
				if (pass == 0) {
					/* the others share what is left */
					avail -= give;
					demand -= w->need;
					need_w -= wt;
				}
				/* a needy guest gets at least its step while
				 * the host is not short, even when the budget
				 * above the floor is thinner (starving it
				 * costs an OOM kill); a short host gives only
				 * what other guests gave */
				if (give < p->step_min && w->cls == GC_NEEDY &&
				    host_short == 0)
					give = u64min(p->step_min,
					    w->hi - w->base);
				if (give < p->step_min)
					continue;
				t = clamp(w->base + give, w->lo, w->hi);
				set_result(g, t, now, "+%.0fM: %s; %s",
				    mib(t - w->base), w->why, hostwhy);
				if (w->stall && g->changed)
					g->st.stall_until = now +
					    u64min(p->stall_hold_ms,
					    UINT64_MAX - now);
			}
		}
	}

	for (i = 0; i < n; i++)
		if (works[i].cls != GC_UNKNOWN && gs[i].explain[0] == '\0')
			explain_auto(p, &gs[i], &works[i], now, host_short,
			    to_take);

	for (i = 0; i < n; i++)
		if (gs[i].changed) {
			/* last line of defence: never outside the limits */
			if (gs[i].target < works[i].lo ||
			    gs[i].target > works[i].hi)
				gs[i].target = clamp(gs[i].target,
				    works[i].lo, works[i].hi);
			changed++;
		}
	return changed;
}
