// SPDX-License-Identifier: GPL-2.0-only
/*
 * The automatic policy (host-agent/policy.c) as a pure function.
 *
 * Inputs are recorded: the guest stats come from a real guest's qom-get
 * guest-stats replies (data/qmp-guest-stats-series.jsonl, recorded with
 * tests/integration/qmp/record_agent_data.py), the host state from real
 * /proc/meminfo and /proc/pressure/memory files.  A closed loop replays
 * them for a long time (guests whose memory use follows the recording,
 * a host whose MemAvailable follows the guests' sizes) and checks, every
 * tick: no target outside the operator's limits or the guest's size, no
 * step above step-max, no reversal of direction within hold, every change
 * has a reason.  Then specific situations: missing, stale and absurd
 * stats, fixed and manual guests, weights, host short of memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "memcoopd.h"
#include "qmp.h"
#include "testdata.h"

#define TICK_MS		2000

/* ---- recorded inputs ---- */

struct sample {
	struct guest_stats	 st;	/* as parsed from the reply */
	uint64_t		 used;	/* total - avail: what the guest needs */
};

static struct sample	*rec;
static size_t		 nrec;
static struct host_stats host_idle, host_thrash;

static int
load_inputs(void)
{
	char *s = td_read("qmp-guest-stats-series.jsonl"), *line, *save = NULL;
	char *t;

	rec = calloc(1000, sizeof(*rec));
	for (line = strtok_r(s, "\n", &save); line != NULL && nrec < 1000;
	    line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, JSON_DECODE_INT_AS_REAL, NULL);
		json_t *ret = json_object_get(json_object_get(j, "reply"),
		    "return");
		struct guest_stats st;

		if (qmp_parse_guest_stats(ret, &st, 1000, (time_t)
		    json_number_value(json_object_get(j, "wall"))) == 0 &&
		    (st.valid & GST_AVAIL) && (st.valid & GST_TOTAL)) {
			rec[nrec].st = st;
			rec[nrec].used = st.total - st.avail;
			nrec++;
		}
		json_decref(j);
	}
	free(s);
	t = td_read("host-meminfo-idle.txt");
	hostinfo_parse_meminfo(t, &host_idle);
	free(t);
	t = td_read("host-psi-idle.txt");
	hostinfo_parse_psi(t, &host_idle);
	free(t);
	t = td_read("host-meminfo-thrash.txt");
	hostinfo_parse_meminfo(t, &host_thrash);
	free(t);
	t = td_read("guest-psi-squeezed.txt");
	hostinfo_parse_psi(t, &host_thrash);
	free(t);
	return nrec >= 20 && host_idle.valid_mem && host_thrash.valid_mem &&
	    host_thrash.valid_psi ? 0 : -1;
}

/* ---- a closed loop ---- */

struct simguest {
	struct policy_guest	 pg;
	size_t			 phase;		/* offset into the recording */
	uint64_t		 scale_num;	/* used memory scaled num/den */
	uint64_t		 scale_den;
	uint64_t		 swap_in;	/* synthesized counters */
	uint64_t		 majflt;
	int			 last_dir;
	uint64_t		 last_change;
	unsigned int		 reversals;
	unsigned int		 late_reversals;	/* from settle_after on */
	unsigned int		 changes;
	unsigned int		 clamps;	/* back into moved limits */
	unsigned int		 moved_out;	/* limits moved past the target */
};

static struct policy_params P;
/* closed_loop(): reversals from this time (ms) on are counted as late */
static uint64_t settle_after = UINT64_MAX;

/*
 * After policy_run(): every guest the policy manages (online, not manual,
 * a size known) ends the tick with a target inside policy_limits(),
 * whether it changed or not: limits the operator moved apply at once.
 * A guest it does not manage keeps its target.  Returns 1 if @g is one
 * it manages.
 */
static int
check_managed(const struct policy_guest *g)
{
	static unsigned int reported;
	uint64_t lo, hi, eff, base = g->cur_target != 0 ? g->cur_target :
	    g->actual;

	if (!g->online || g->set.mode == GMODE_MANUAL ||
	    (g->set.mode == GMODE_AUTO && g->maxmem == 0)) {
		CU_ASSERT_FALSE(g->changed);
		CU_ASSERT_EQUAL(g->target, g->cur_target);
		return 0;
	}
	if (policy_limits(&P, g, &lo, &hi) == -1 ||
	    (g->set.mode != GMODE_FIXED && base == 0)) {
		CU_ASSERT_FALSE(g->changed);
		return 0;
	}
	/* unchanged: the target set before, else the balloon's size */
	eff = g->changed ? g->target : base;
	if ((eff < lo || eff > hi) && ++reported <= 5) {
		fprintf(stderr, "\n  %s: target %llu MiB (%s) outside %llu..%llu "
		    "MiB after the tick\n", g->name,
		    (unsigned long long)(eff / MIB),
		    g->changed ? "changed" : "unchanged",
		    (unsigned long long)(lo / MIB),
		    (unsigned long long)(hi / MIB));
	}
	CU_ASSERT(eff >= lo && eff <= hi);
	CU_ASSERT_EQUAL(g->changed, g->target != g->cur_target);
	return 1;
}

static void
sim_stats(struct simguest *sg, size_t tick, uint64_t now)
{
	const struct sample *s = &rec[(sg->phase + tick) % nrec];
	uint64_t used = s->used * sg->scale_num / sg->scale_den;
	uint64_t size = sg->pg.actual;

	sg->pg.prev = sg->pg.stats;
	sg->pg.stats = s->st;
	sg->pg.stats.when = now;
	sg->pg.stats.total = size;
	sg->pg.stats.avail = used < size ? size - used : 0;
	sg->pg.stats.free = sg->pg.stats.avail / 2;
	/* a squeezed guest faults (no swap in the lab guests) */
	if (sg->pg.stats.avail < 64 * MIB)
		sg->majflt += 500;
	sg->pg.stats.majflt = sg->majflt;
	sg->pg.stats.swap_in = sg->swap_in;
	sg->pg.stats.valid |= GST_MAJFLT | GST_SWAP_IN | GST_SWAP_OUT;
}

/* Check one tick's outputs against the invariants. */
static void
check_tick(struct simguest *sg, uint64_t now, uint64_t before)
{
	uint64_t lo, hi;
	int dir;

	(void)check_managed(&sg->pg);
	if (!sg->pg.changed)
		return;
	sg->changes++;
	if (strstr(sg->pg.reason, "outside the limits") != NULL)
		sg->clamps++;
	CU_ASSERT_EQUAL_FATAL(policy_limits(&P, &sg->pg, &lo, &hi), 0);
	if (sg->pg.target < lo || sg->pg.target > hi) {
		fprintf(stderr, "\n  %s: target %llu outside %llu..%llu\n",
		    sg->pg.name, (unsigned long long)sg->pg.target,
		    (unsigned long long)lo, (unsigned long long)hi);
		CU_FAIL("target outside the limits");
	}
	CU_ASSERT(sg->pg.reason[0] != '\0');
	/* a step is at most step-max, except a clamp into the limits */
	if (before >= lo && before <= hi) {
		uint64_t d = sg->pg.target > before ? sg->pg.target - before :
		    before - sg->pg.target;

		CU_ASSERT(d <= P.step_max);
		CU_ASSERT(d >= P.step_min || sg->pg.target == lo ||
		    sg->pg.target == hi);
	}
	dir = sg->pg.target > before ? 1 : -1;
	if (sg->last_dir != 0 && dir != sg->last_dir) {
		sg->reversals++;
		if (now >= settle_after)
			sg->late_reversals++;
		if (now - sg->last_change < P.hold_ms) {
			fprintf(stderr, "\n  %s: reversal after %llu ms: %s\n",
			    sg->pg.name, (unsigned long long)(now -
			    sg->last_change), sg->pg.reason);
			CU_FAIL("direction reversed within hold");
		}
	}
	sg->last_dir = dir;
	sg->last_change = now;
}

/*
 * Run @ticks ticks of three guests on a host with @host_mem of RAM for
 * guests; host MemAvailable = host_mem - sum(actual) + noise.  The
 * balloon follows a target by at most 64 MiB per tick.
 */
static void
closed_loop(struct simguest *gs, size_t n, uint64_t host_mem, size_t ticks,
    const struct host_stats *tmpl, int change_limits)
{
	struct policy_guest *pgs = calloc(n, sizeof(*pgs));
	uint64_t now = 100000, before[8];
	unsigned int seed = 7;
	size_t t, i;

	for (t = 0; t < ticks; t++, now += TICK_MS) {
		struct host_stats h = *tmpl;
		uint64_t sum = 0;

		for (i = 0; i < n; i++) {
			struct simguest *sg = &gs[i];
			uint64_t want = sg->pg.cur_target ? sg->pg.cur_target :
			    sg->pg.actual;

			/* the balloon moves towards the target */
			if (sg->pg.actual > want)
				sg->pg.actual -= sg->pg.actual - want > 64 * MIB ?
				    64 * MIB : sg->pg.actual - want;
			else
				sg->pg.actual += want - sg->pg.actual > 64 * MIB ?
				    64 * MIB : want - sg->pg.actual;
			sim_stats(sg, t, now);
			sum += sg->pg.actual;
		}
		seed = seed * 1103515245 + 12345;
		h.mem_available = host_mem > sum ? host_mem - sum : 0;
		h.mem_available += (seed >> 16) % (16 * MIB);	/* noise */
		h.mem_total = host_mem + 1024 * MIB;
		/*
		 * The operator moves limits now and then, past the guest's
		 * target: a max 96M below it, or a min 96M above it.
		 */
		if (change_limits && t % 97 == 50) {
			struct simguest *sg = &gs[t % n];
			uint64_t base = sg->pg.cur_target ? sg->pg.cur_target :
			    sg->pg.actual, lo, hi;

			if (sg->pg.set.max == 0) {
				sg->pg.set.min = 0;
				sg->pg.set.max = base > 352 * MIB ? base - 96 * MIB :
				    256 * MIB;
			} else {
				sg->pg.set.max = 0;
				sg->pg.set.min = base + 96 * MIB;
			}
			if (policy_limits(&P, &sg->pg, &lo, &hi) == 0 &&
			    (base < lo || base > hi))
				sg->moved_out++;
		}
		for (i = 0; i < n; i++) {
			pgs[i] = gs[i].pg;
			before[i] = gs[i].pg.cur_target ? gs[i].pg.cur_target :
			    gs[i].pg.actual;
		}
		policy_run(&P, &h, pgs, n, now);
		for (i = 0; i < n; i++) {
			gs[i].pg.st = pgs[i].st;
			gs[i].pg.changed = pgs[i].changed;
			gs[i].pg.target = pgs[i].target;
			memcpy(gs[i].pg.reason, pgs[i].reason,
			    sizeof(pgs[i].reason));
			check_tick(&gs[i], now, before[i]);
			if (pgs[i].changed)
				gs[i].pg.cur_target = pgs[i].target;
		}
	}
	free(pgs);
}

static void
init_guests(struct simguest *gs, size_t n)
{
	static const char *names[] = { "g0", "g1", "g2", "g3" };
	size_t i;

	memset(gs, 0, n * sizeof(*gs));
	for (i = 0; i < n; i++) {
		gs[i].pg.name = names[i];
		gs[i].pg.online = 1;
		gs[i].pg.set.weight = 100 * (unsigned int)(i + 1);
		gs[i].pg.maxmem = 1024 * MIB;
		gs[i].pg.actual = 1024 * MIB;
		gs[i].phase = i * nrec / n;
		gs[i].scale_num = i + 1;
		gs[i].scale_den = 2;
	}
}

/*
 * A long series on a host whose memory is tight: the guests' use follows
 * the recording (idle, hog, squeeze, release: one cycle is 48 ticks) over
 * and over, so guests turn needy and spare again while the host hovers
 * around its floor.  The targets move, but never back and forth within
 * hold, and they settle rather than oscillate: once the policy has found
 * sizes that hold every phase of the cycle (after about 2600 ticks with
 * the defaults), it stops reversing.  The last 1500 ticks (31 cycles of
 * the workload, 3000 s) must have no reversal at all; a policy that
 * follows every phase of the workload reverses twice per cycle.
 */
static void
test_long_series_no_flap(void)
{
	struct simguest gs[3];
	unsigned int total = 0;
	size_t i;

	policy_defaults(&P);
	init_guests(gs, 3);
	for (i = 0; i < 3; i++)
		gs[i].scale_num = 2 * (i + 1);
	settle_after = 100000 + 3500 * TICK_MS;	/* closed_loop's clock */
	closed_loop(gs, 3, 2900 * MIB, 5000, &host_idle, 0);
	settle_after = UINT64_MAX;
	for (i = 0; i < 3; i++) {
		fprintf(stderr, "\n  %s: %u changes, %u reversals (%u in the "
		    "last 1500 ticks), final %llu MiB", gs[i].pg.name,
		    gs[i].changes, gs[i].reversals, gs[i].late_reversals,
		    (unsigned long long)(gs[i].pg.actual / MIB));
		total += gs[i].changes;
		CU_ASSERT_EQUAL(gs[i].late_reversals, 0);
		/* 104 cycles, two turns each: settling takes far fewer */
		CU_ASSERT(gs[i].reversals <= 50);
	}
	/* the series does make the policy act */
	CU_ASSERT(total >= 10);
}

/* A host short of memory: the guests give, within their limits. */
static void
test_host_short(void)
{
	struct simguest gs[3];
	uint64_t sum = 0;
	size_t i;

	policy_defaults(&P);
	P.host_floor = 512 * MIB;
	P.host_comfort = 768 * MIB;
	init_guests(gs, 3);
	gs[0].pg.set.min = 700 * MIB;
	/* 3.3 GiB for 3 GiB of guests: MemAvailable starts below the floor */
	closed_loop(gs, 3, 3300 * MIB, 600, &host_thrash, 0);
	for (i = 0; i < 3; i++) {
		fprintf(stderr, "\n  %s: %u changes, %u reversals, final %llu MiB",
		    gs[i].pg.name, gs[i].changes, gs[i].reversals,
		    (unsigned long long)(gs[i].pg.actual / MIB));
		sum += gs[i].pg.actual;
		CU_ASSERT(gs[i].pg.actual >= 256 * MIB);
	}
	CU_ASSERT(gs[0].pg.actual >= 700 * MIB);
	/* the host got back above its floor */
	CU_ASSERT(3300 * MIB - sum >= P.host_floor);
}

/*
 * Recorded by agent-qmp-pressure (host MemAvailable 600M, PSI 25%, a 768M
 * guest with min 384M using about 180M): the guest is shrunk 512M -> 448M
 * with 330M available, then held at 448M with 266M available, in the dead
 * band (above reserve + slack, not above reserve + 2 * slack), however
 * long the host stays short.  It is a stop, not a stall: the same guest
 * with spare again is shrunk at the next tick.
 */
static void
test_host_short_dead_band(void)
{
	struct host_stats h;
	struct policy_guest g;
	uint64_t now = 1000000;
	int t;

	policy_defaults(&P);
	P.host_floor = 1024 * MIB;
	P.host_comfort = 2048 * MIB;
	P.guest_min = 256 * MIB;
	P.guest_reserve = 96 * MIB;
	P.guest_slack = 96 * MIB;
	P.step_max = 64 * MIB;
	P.step_min = 8 * MIB;
	P.hold_ms = 4000;
	P.calm_ticks = 2;
	memset(&h, 0, sizeof(h));
	h.valid_mem = h.valid_psi = 1;
	h.mem_total = 32768 * MIB;
	h.mem_available = 600 * MIB;
	h.psi_some_avg10 = 25.0;

	memset(&g, 0, sizeof(g));
	g.name = "vm1";
	g.online = 1;
	g.set.min = 384 * MIB;
	g.maxmem = 768 * MIB;
	g.actual = g.cur_target = 512 * MIB;
	g.st.last_dir = -1;
	g.st.last_change = now - 3000;
	g.st.calm_ticks = 5;
	g.stats.valid = GST_AVAIL | GST_TOTAL;
	g.stats.total = 512 * MIB;
	g.stats.avail = 330 * MIB;
	g.stats.when = now - 500;
	CU_ASSERT_EQUAL(policy_run(&P, &h, &g, 1, now), 1);
	CU_ASSERT_EQUAL(g.target, 448 * MIB);
	CU_ASSERT(strstr(g.reason, "-64M: host MemAvailable 600M < floor "
	    "1024M; guest MemAvailable 330M, spare 138M") != NULL);

	/* at 448M with 266M available: no change for 60 s of ticks */
	g.actual = g.cur_target = g.target;
	for (t = 0; t < 60; t++) {
		now += 1000;
		g.prev = g.stats;
		g.stats.total = 448 * MIB;
		g.stats.avail = 266 * MIB;
		g.stats.when = now - 500;
		CU_ASSERT_EQUAL(policy_run(&P, &h, &g, 1, now), 0);
		CU_ASSERT_EQUAL(g.target, 448 * MIB);
	}
	/* spare again (289M > 96M + 2 * 96M): shrunk, down to the min */
	now += 1000;
	g.prev = g.stats;
	g.stats.avail = 289 * MIB;
	g.stats.when = now - 500;
	CU_ASSERT_EQUAL(policy_run(&P, &h, &g, 1, now), 1);
	CU_ASSERT_EQUAL(g.target, 384 * MIB);
}

/*
 * Limits moved by the operator while the loop runs: every tick ends with
 * every target inside the limits (check_managed() in check_tick()), so a
 * max lowered below the current target is applied in the same tick, with
 * its own reason.
 */
static void
test_limits_moving(void)
{
	struct simguest gs[3];
	unsigned int moved = 0;
	size_t i;

	policy_defaults(&P);
	P.hold_ms = 6000;
	init_guests(gs, 3);
	closed_loop(gs, 3, 2600 * MIB, 2000, &host_thrash, 1);
	closed_loop(gs, 3, 6000 * MIB, 500, &host_idle, 1);
	for (i = 0; i < 3; i++) {
		fprintf(stderr, "\n  %s: %u changes, limits moved past the "
		    "target %u times, %u changes back into them", gs[i].pg.name,
		    gs[i].changes, gs[i].moved_out, gs[i].clamps);
		/* each such move is applied at once, with its reason */
		CU_ASSERT_EQUAL(gs[i].clamps, gs[i].moved_out);
		moved += gs[i].moved_out;
	}
	CU_ASSERT(moved >= 20);
}

/* ---- single ticks ---- */

static struct policy_guest
mkguest(const char *name, uint64_t maxmem, uint64_t avail, uint64_t now)
{
	struct policy_guest g;

	memset(&g, 0, sizeof(g));
	g.name = name;
	g.online = 1;
	g.set.weight = GUEST_WEIGHT_DEFAULT;
	g.maxmem = maxmem;
	g.actual = maxmem;
	g.stats = rec[0].st;
	g.stats.when = now;
	g.stats.total = maxmem;
	g.stats.avail = avail;
	g.stats.valid = GST_AVAIL | GST_TOTAL | GST_FREE;
	g.prev = g.stats;
	g.prev.when = now - TICK_MS;
	g.st.calm_ticks = 10;
	return g;
}

static struct host_stats
mkhost(uint64_t avail)
{
	struct host_stats h = host_idle;

	h.mem_available = avail;
	h.psi_some_avg10 = 0;
	return h;
}

static void
test_missing_and_absurd(void)
{
	struct host_stats h = mkhost(100 * MIB);	/* very short */
	struct policy_guest g[6];
	uint64_t now = 1000000;
	int i;

	policy_defaults(&P);
	g[0] = mkguest("nostats", 1024 * MIB, 800 * MIB, now);
	g[0].stats.valid = 0;
	g[1] = mkguest("stale", 1024 * MIB, 800 * MIB, now);
	g[1].stats.when = now - P.stats_max_age - 1;
	g[2] = mkguest("absurd", 1024 * MIB, 4096 * MIB, now);
	g[3] = mkguest("future", 1024 * MIB, 800 * MIB, now);
	g[3].stats.when = now + 5000;
	g[4] = mkguest("nosize", 0, 800 * MIB, now);
	g[4].actual = 0;
	g[5] = mkguest("max64", 1024 * MIB, UINT64_MAX, now);
	g[5].stats.total = UINT64_MAX;
	CU_ASSERT_EQUAL(policy_run(&P, &h, g, 6, now), 0);
	for (i = 0; i < 6; i++)
		CU_ASSERT_FALSE(g[i].changed);

	/*
	 * `virsh dommemstat` of a lab domain (recorded by the libvirt
	 * integration test, KiB): actual 327680, available 273728, usable
	 * 229280, unused 224696 -- as virt.c converts them; with a usable
	 * of 2^64-1 KiB (what libvirt's conversion saturates to) it is
	 * absurd and the guest is left alone even when the host is short.
	 * (Its size is known: a guest of unknown size is never shrunk.)
	 */
	g[0] = mkguest("virsh", 327680ULL * 1024, 229280ULL * 1024, now);
	g[0].actual = 327680ULL * 1024;
	g[0].stats.total = 273728ULL * 1024;
	g[0].stats.free = 224696ULL * 1024;
	g[0].set.min = 128 * MIB;
	P.guest_reserve = 64 * MIB;
	P.guest_slack = 32 * MIB;
	policy_run(&P, &h, g, 1, now);
	/* spare: 223.9M usable - 64M reserve - 32M slack = 127.9M */
	CU_ASSERT(g[0].changed);
	CU_ASSERT_EQUAL(g[0].target, 327680ULL * 1024 -
	    (229280ULL * 1024 - 96 * MIB));
	policy_defaults(&P);
	g[0] = mkguest("virsh-absurd", 0, UINT64_MAX / 1024 * 1024, now);
	g[0].actual = 327680ULL * 1024;
	g[0].stats.valid = GST_AVAIL;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);

	/* counters going backwards (guest rebooted): no pressure, no crash */
	g[0] = mkguest("reboot", 1024 * MIB, 300 * MIB, now);
	g[0].stats.valid |= GST_MAJFLT | GST_SWAP_IN | GST_SWAP_OUT;
	g[0].prev.valid = g[0].stats.valid;
	g[0].prev.majflt = 1000000;
	g[0].stats.majflt = 3;
	g[0].prev.swap_in = UINT64_MAX;
	g[0].stats.swap_in = 0;
	g[0].cur_target = 700 * MIB;
	g[0].actual = 700 * MIB;
	h = mkhost(8192 * MIB);
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);

	/* no host figures at all: nobody is shrunk for the host */
	g[0] = mkguest("nohost", 1024 * MIB, 900 * MIB, now);
	memset(&h, 0, sizeof(h));
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);
	policy_run(&P, NULL, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);
	CU_ASSERT_EQUAL(policy_run(&P, NULL, NULL, 0, now), 0);
}

static void
test_modes(void)
{
	struct host_stats h = mkhost(100 * MIB);
	struct policy_guest g[3];
	uint64_t now = 1000000;

	policy_defaults(&P);
	g[0] = mkguest("fixed", 2048 * MIB, 1500 * MIB, now);
	g[0].set.mode = GMODE_FIXED;
	g[0].set.target = 3000 * MIB;		/* above what it has */
	g[1] = mkguest("manual", 2048 * MIB, 1500 * MIB, now);
	g[1].set.mode = GMODE_MANUAL;
	g[2] = mkguest("offline", 2048 * MIB, 1500 * MIB, now);
	g[2].online = 0;
	policy_run(&P, &h, g, 3, now);
	CU_ASSERT(g[0].changed);
	CU_ASSERT_EQUAL(g[0].target, 2048 * MIB);	/* clamped */
	CU_ASSERT_FALSE(g[1].changed);
	CU_ASSERT_FALSE(g[2].changed);
	/* a fixed target is applied once, not again */
	g[0].cur_target = g[0].target;
	policy_run(&P, &h, g, 1, now + TICK_MS);
	CU_ASSERT_FALSE(g[0].changed);
}

static void
test_take_and_give(void)
{
	struct host_stats h;
	struct policy_guest g[3];
	uint64_t now = 1000000;

	policy_defaults(&P);
	/* host short: the guest with spare gives, the tight one does not */
	h = mkhost(300 * MIB);
	g[0] = mkguest("spare", 2048 * MIB, 1500 * MIB, now);
	g[1] = mkguest("tight", 2048 * MIB, 200 * MIB, now);
	policy_run(&P, &h, g, 2, now);
	CU_ASSERT(g[0].changed);
	CU_ASSERT(g[0].target < 2048 * MIB);
	CU_ASSERT(2048 * MIB - g[0].target <= P.step_max);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].reason, "floor"));
	CU_ASSERT_FALSE(g[1].changed);

	/* PSI: stalls with MemAvailable under comfort count as short ... */
	h = mkhost(P.host_floor + 100 * MIB);
	h.valid_psi = 1;
	h.psi_some_avg10 = P.host_psi_high + 5;
	g[0] = mkguest("spare", 2048 * MIB, 1500 * MIB, now);
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT(g[0].changed);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].reason, "PSI"));
	/* ... but not when the host has plenty (stalls are elsewhere) */
	h = mkhost(P.host_comfort + 1024 * MIB);
	h.valid_psi = 1;
	h.psi_some_avg10 = 90;
	g[0] = mkguest("spare", 2048 * MIB, 1500 * MIB, now);
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);
	/* ... and the same stalls without valid PSI figures are ignored */
	h = mkhost(P.host_floor + 100 * MIB);
	h.valid_psi = 0;
	h.psi_some_avg10 = 90;
	g[0] = mkguest("spare", 2048 * MIB, 1500 * MIB, now);
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);

	/* a needy guest gets memory when the host has it */
	h = mkhost(8192 * MIB);
	g[0] = mkguest("needy", 2048 * MIB, 50 * MIB, now);
	g[0].cur_target = 1024 * MIB;
	g[0].actual = 1024 * MIB;
	g[0].st.last_dir = -1;
	g[0].st.last_change = now - P.hold_ms;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT(g[0].changed);
	CU_ASSERT(g[0].target > 1024 * MIB);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].reason, "reserve"));
	/* ... but not within hold of shrinking it */
	g[0].st.last_change = now - 1000;
	g[0].st.last_dir = -1;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);

	/* weights: the guest with the lower weight gives more */
	h = mkhost(200 * MIB);
	P.step_max = 1024 * MIB;
	g[0] = mkguest("light", 2048 * MIB, 1800 * MIB, now);
	g[0].set.weight = 50;
	g[1] = mkguest("heavy", 2048 * MIB, 1800 * MIB, now);
	g[1].set.weight = 400;
	policy_run(&P, &h, g, 2, now);
	CU_ASSERT(g[0].changed && g[1].changed);
	CU_ASSERT(g[0].target < g[1].target);

	/* not calm long enough: not shrunk for other guests' needs */
	policy_defaults(&P);
	h = mkhost(P.host_floor + 10 * MIB);	/* no budget */
	g[0] = mkguest("jittery", 2048 * MIB, 1500 * MIB, now);
	g[0].st.calm_ticks = 0;
	g[1] = mkguest("needy", 2048 * MIB, 20 * MIB, now);
	g[1].cur_target = g[1].actual = 1024 * MIB;
	policy_run(&P, &h, g, 2, now);
	CU_ASSERT_FALSE(g[0].changed);

	/* no second step on the stats the first step was based on */
	policy_defaults(&P);
	h = mkhost(8192 * MIB);
	g[0] = mkguest("stale-evidence", 2048 * MIB, 50 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].st.last_dir = 1;
	g[0].st.last_change = now;	/* stats.when == now: not after */
	policy_run(&P, &h, g, 1, now + TICK_MS);
	CU_ASSERT_FALSE(g[0].changed);
	g[0].stats.when = now + TICK_MS;	/* new stats: go on */
	policy_run(&P, &h, g, 1, now + TICK_MS);
	CU_ASSERT(g[0].changed);
	/* the balloon still behind the last growth: no further growth */
	g[0] = mkguest("deflating", 2048 * MIB, 50 * MIB, now);
	g[0].cur_target = 1024 * MIB;
	g[0].actual = 900 * MIB;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);

	/* the balloon still behind the last shrink: no further shrink */
	h = mkhost(100 * MIB);
	g[0] = mkguest("behind", 2048 * MIB, 1500 * MIB, now);
	g[0].cur_target = 1536 * MIB;
	g[0].actual = 1900 * MIB;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);
}

static uint64_t
rnd(unsigned int *seed, uint64_t n)
{
	*seed = *seed * 1103515245 + 12345;
	return (uint64_t)(*seed >> 8) % n;
}

/* Any settings, any stats: the target stays within policy_limits(). */
static void
test_random_inputs(void)
{
	unsigned int seed = 99;
	struct policy_guest g[4];
	struct host_stats h;
	uint64_t now = 1000000, lo, hi, before[4];
	unsigned int managed = 0, changed = 0;
	int i, k;

#define RND(n)	rnd(&seed, (n))
	policy_defaults(&P);
	for (k = 0; k < 20000; k++) {
		h = mkhost(RND(4096) * MIB);
		h.psi_some_avg10 = (double)RND(100);
		h.valid_mem = RND(10) != 0;
		for (i = 0; i < 4; i++) {
			g[i] = mkguest("r", RND(4) ? (RND(4096) + 1) * MIB : 0,
			    RND(5000) * MIB, now);
			g[i].actual = RND(4) ? RND(5000) * MIB : 0;
			g[i].cur_target = RND(3) ? RND(5000) * MIB : 0;
			g[i].set.mode = (enum guest_mode)RND(3);
			g[i].set.min = RND(3) ? RND(3000) * MIB : 0;
			g[i].set.max = RND(3) ? RND(5000) * MIB : 0;
			g[i].set.target = RND(5000) * MIB;
			g[i].set.weight = (unsigned int)RND(1001);
			g[i].stats.valid = (uint32_t)RND(512);
			g[i].stats.majflt = RND(100000);
			g[i].prev.majflt = RND(100000);
			g[i].stats.when = now - RND(60000);
			g[i].st.last_dir = (int)RND(3) - 1;
			g[i].st.last_change = now - RND(100000);
			g[i].st.calm_ticks = (unsigned int)RND(10);
			g[i].online = RND(8) != 0;
		}
		for (i = 0; i < 4; i++)
			before[i] = g[i].cur_target;
		policy_run(&P, &h, g, 4, now);
		for (i = 0; i < 4; i++) {
			CU_ASSERT_EQUAL(g[i].cur_target, before[i]);
			managed += (unsigned int)check_managed(&g[i]);
			if (!g[i].changed)
				continue;
			changed++;
			CU_ASSERT_FATAL(policy_limits(&P, &g[i], &lo, &hi) == 0);
			CU_ASSERT(g[i].target >= lo && g[i].target <= hi);
			CU_ASSERT(g[i].target != 0);
			CU_ASSERT(g[i].online);
			CU_ASSERT(g[i].set.mode != GMODE_MANUAL);
		}
	}
	fprintf(stderr, "\n  %u managed guests, %u changed", managed, changed);
	/* the inputs do make it act (a quarter of them start outside) */
	CU_ASSERT(changed >= managed / 10);
#undef RND
}

/* An automatic guest of unknown size is left alone (it could not grow back). */
static void
test_unknown_size_manual(void)
{
	struct policy_guest g[1];
	struct host_stats h;
	uint64_t now = 1000000;

	policy_defaults(&P);
	h = mkhost(100 * MIB);			/* short: would take */
	g[0] = mkguest("nosize", 2048 * MIB, 1800 * MIB, now);
	g[0].st.calm_ticks = 10;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT(g[0].changed);		/* known size: shrunk */
	g[0] = mkguest("nosize", 0, 1800 * MIB, now);
	g[0].actual = 2048 * MIB;
	g[0].st.calm_ticks = 10;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);
	CU_ASSERT_EQUAL(g[0].target, g[0].cur_target);
}

/*
 * The needy guest's minimum step: given while the host is above its floor
 * even when the budget there is thinner than a step, not when the host is
 * itself short and nobody gave anything.
 */
static void
test_needy_step(void)
{
	struct policy_guest g[1];
	struct host_stats h;
	uint64_t now = 1000000;

	policy_defaults(&P);
	h = mkhost(P.host_floor + 2 * MIB);	/* budget 2M < step-min */
	g[0] = mkguest("needy", 2048 * MIB, 20 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT(g[0].changed);
	CU_ASSERT_EQUAL(g[0].target, 1024 * MIB + P.step_min);
	h = mkhost(P.host_floor - 2 * MIB);	/* short, no spare guest */
	g[0] = mkguest("needy", 2048 * MIB, 20 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].changed);
}

/* ---- stalls ---- */

/* @g stalls between its two samples: one more allocation stall. */
static void
alloc_stall(struct policy_guest *g)
{
	g->prev.valid |= GST_ALLOC_STALLS;
	g->stats.valid |= GST_ALLOC_STALLS;
	g->prev.alloc_stalls = 10;
	g->stats.alloc_stalls = 11;
}

/*
 * The host can fund 64M.  A guest with low MemAvailable (and ten times the
 * weight) and a guest that stalls (MemAvailable in the dead band) both
 * ask: the stalling one is served first and gets all of it; the other
 * still gets its step-min (the host is not short).
 */
static void
test_stall_first(void)
{
	struct policy_guest g[2];
	struct host_stats h;
	uint64_t now = 1000000;

	policy_defaults(&P);
	h = mkhost(P.host_floor + 64 * MIB);
	g[0] = mkguest("low", 2048 * MIB, 50 * MIB, now);
	g[0].set.weight = 1000;
	g[1] = mkguest("stall", 2048 * MIB, 300 * MIB, now);
	alloc_stall(&g[1]);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[1].cur_target = g[1].actual = 1024 * MIB;
	policy_run(&P, &h, g, 2, now);
	CU_ASSERT(g[1].stalled);
	CU_ASSERT_FALSE(g[0].stalled);
	CU_ASSERT(g[0].changed && g[1].changed);
	CU_ASSERT_EQUAL(g[1].target, 1024 * MIB + 64 * MIB);
	CU_ASSERT_EQUAL(g[0].target, 1024 * MIB + P.step_min);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[1].reason, "allocation stall"));
	CU_ASSERT_EQUAL(g[1].st.stall_until, now + P.stall_hold_ms);
	CU_ASSERT_EQUAL(g[0].st.stall_until, 0);
	/* the same guest without the stall is only neutral: not served */
	g[1] = mkguest("stall", 2048 * MIB, 300 * MIB, now);
	g[1].cur_target = g[1].actual = 1024 * MIB;
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].st = g[1].st;
	policy_run(&P, &h, g, 2, now);
	CU_ASSERT_FALSE(g[1].changed);
	CU_ASSERT_FALSE(g[1].stalled);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[1].explain, "neutral"));
	CU_ASSERT_EQUAL(g[0].target, 1024 * MIB + 64 * MIB);
}

/*
 * A guest given memory for a stall is not shrunk for stall-hold, even by
 * a short host while it has spare; after that it is.  hold is 0 here so
 * that only stall-hold can keep it.
 */
static void
test_stall_hold(void)
{
	struct policy_guest g[1];
	struct host_stats h;
	uint64_t now = 1000000, t1;

	policy_defaults(&P);
	P.hold_ms = 0;
	P.stall_hold_ms = 60000;
	h = mkhost(8192 * MIB);
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	alloc_stall(&g[0]);
	g[0].cur_target = g[0].actual = 1600 * MIB;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FATAL(g[0].changed);
	t1 = g[0].target;
	CU_ASSERT(t1 > 1600 * MIB);
	/* the balloon got there; the guest has spare now, the host is short */
	g[0].cur_target = g[0].actual = t1;
	g[0].prev = g[0].stats;
	g[0].stats.when = now + 30000;
	g[0].stats.avail = 1000 * MIB;
	g[0].stats.total = 2048 * MIB;
	g[0].prev.when = now + 28000;
	g[0].st.calm_ticks = 10;
	h = mkhost(300 * MIB);
	policy_run(&P, &h, g, 1, now + 30000);
	CU_ASSERT_FALSE(g[0].changed);
	CU_ASSERT_FALSE(g[0].stalled);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].explain, "stall-hold: 30s left"));
	/* after the hold it gives */
	g[0].prev = g[0].stats;
	g[0].stats.when = now + 61000;
	policy_run(&P, &h, g, 1, now + 61000);
	CU_ASSERT(g[0].changed);
	CU_ASSERT(g[0].target < t1);
}

/*
 * A guest reboot: every counter starts again from 0.  Counters that went
 * backwards make the tick's rates unknown: an OOM kill counter at 1 after
 * the reboot (0 before) is not a stall, nor are the faults since boot.
 */
static void
test_counter_reset(void)
{
	struct policy_guest g[1];
	struct host_stats h;
	uint64_t now = 1000000;

	policy_defaults(&P);
	h = mkhost(8192 * MIB);
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].prev.valid = g[0].stats.valid |= GST_OOM_KILLS | GST_MAJFLT |
	    GST_SWAP_IN | GST_SWAP_OUT;
	g[0].prev.oom_kills = 0;
	g[0].stats.oom_kills = 1;
	g[0].prev.majflt = 5000000;
	g[0].stats.majflt = 40000;		/* since boot: backwards */
	g[0].prev.swap_in = 900 * MIB;
	g[0].stats.swap_in = 0;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].stalled);
	CU_ASSERT_FALSE(g[0].changed);
	/* the allocation stall counter alone going back: no stall either */
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	alloc_stall(&g[0]);
	g[0].prev.valid = g[0].stats.valid |= GST_DIRECT_SCAN;
	g[0].prev.direct_scan = 1 << 30;
	g[0].stats.direct_scan = 4096;		/* backwards */
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].stalled);
	/* the next tick, counting from the new values, sees a real stall */
	g[0].prev = g[0].stats;
	g[0].prev.when = now;
	g[0].stats.when = now + TICK_MS;
	g[0].stats.direct_scan += 4096;
	policy_run(&P, &h, g, 1, now + TICK_MS);
	CU_ASSERT(g[0].stalled);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].reason, "direct reclaim"));
}

/*
 * Without the 6.12 counters, major faults and swap-in above their rates
 * are the stall; with them, the same faulting is pressure (needy) but
 * not a stall.  A counter only one sample carries does not count.
 */
static void
test_stall_fallback(void)
{
	struct policy_guest g[1];
	struct host_stats h;
	uint64_t now = 1000000;

	policy_defaults(&P);
	h = mkhost(8192 * MIB);
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].prev.valid = g[0].stats.valid |= GST_MAJFLT;
	g[0].prev.majflt = 1000;
	g[0].stats.majflt = 1000 + 2 * (P.majflt_rate_high + 50);
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT(g[0].stalled);
	CU_ASSERT(g[0].changed);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].reason, "major faulting"));

	/* the allocation stall counter present and unchanged: needy only */
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].prev.valid = g[0].stats.valid |= GST_MAJFLT | GST_ALLOC_STALLS;
	g[0].prev.majflt = 1000;
	g[0].stats.majflt = 1000 + 2 * (P.majflt_rate_high + 50);
	g[0].prev.alloc_stalls = g[0].stats.alloc_stalls = 7;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].stalled);
	CU_ASSERT(g[0].changed);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].reason, "major faults"));
	CU_ASSERT_EQUAL(g[0].st.stall_until, 0);

	/* swap-in without the 6.12 counters */
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].prev.valid = g[0].stats.valid |= GST_SWAP_IN;
	g[0].stats.swap_in = 2 * (P.swap_rate_high + MIB);
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT(g[0].stalled);
	CU_ASSERT_PTR_NOT_NULL(strstr(g[0].reason, "swapping in"));

	/* a stall counter the previous sample lacked is not a stall */
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].stats.valid |= GST_ALLOC_STALLS | GST_OOM_KILLS;
	g[0].stats.alloc_stalls = 999;
	g[0].stats.oom_kills = 3;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT_FALSE(g[0].stalled);
	CU_ASSERT_FALSE(g[0].changed);
}

/* Hostile counters: huge deltas, a millisecond apart, and a clock at
 * the end of its range; the target stays within step-max and limits. */
static void
test_stall_hostile(void)
{
	struct policy_guest g[1];
	struct host_stats h;
	uint64_t now = UINT64_MAX - 5, lo, hi;

	policy_defaults(&P);
	h = mkhost(8192 * MIB);
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, now);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].prev.when = now - 1;
	g[0].prev.valid = g[0].stats.valid |= GST_MAJFLT | GST_SWAP_IN |
	    GST_SWAP_OUT | GST_OOM_KILLS | GST_ALLOC_STALLS |
	    GST_DIRECT_SCAN | GST_DIRECT_RECLAIM;
	g[0].stats.majflt = g[0].stats.swap_in = g[0].stats.swap_out =
	    g[0].stats.oom_kills = g[0].stats.alloc_stalls =
	    g[0].stats.direct_scan = g[0].stats.direct_reclaim = UINT64_MAX;
	policy_run(&P, &h, g, 1, now);
	CU_ASSERT(g[0].stalled);
	CU_ASSERT_FATAL(g[0].changed);
	CU_ASSERT(g[0].target > 1024 * MIB &&
	    g[0].target <= 1024 * MIB + P.step_max);
	CU_ASSERT_EQUAL(g[0].st.stall_until, UINT64_MAX);
	CU_ASSERT_EQUAL(policy_limits(&P, &g[0], &lo, &hi), 0);
	CU_ASSERT(g[0].target <= hi);
	/* and all of them back to 0: a reset, nothing happens */
	g[0] = mkguest("g", 2048 * MIB, 300 * MIB, 1000000);
	g[0].cur_target = g[0].actual = 1024 * MIB;
	g[0].prev.valid = g[0].stats.valid |= GST_MAJFLT | GST_OOM_KILLS |
	    GST_ALLOC_STALLS;
	g[0].prev.majflt = g[0].prev.oom_kills = g[0].prev.alloc_stalls =
	    UINT64_MAX;
	policy_run(&P, &h, g, 1, 1000000);
	CU_ASSERT_FALSE(g[0].stalled);
	CU_ASSERT_FALSE(g[0].changed);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	if (load_inputs() == -1) {
		fprintf(stderr, "recorded inputs missing or unreadable\n");
		return 1;
	}
	s = CU_add_suite("policy", NULL, NULL);
	CU_add_test(s, "long recorded series: no flapping",
	    test_long_series_no_flap);
	CU_add_test(s, "host short of memory", test_host_short);
	CU_add_test(s, "host short, guest in the dead band",
	    test_host_short_dead_band);
	CU_add_test(s, "limits moved while running", test_limits_moving);
	CU_add_test(s, "missing and absurd stats", test_missing_and_absurd);
	CU_add_test(s, "fixed, manual, offline", test_modes);
	CU_add_test(s, "take, give, hold, weights", test_take_and_give);
	CU_add_test(s, "random inputs stay within limits", test_random_inputs);
	CU_add_test(s, "auto guest of unknown size: manual",
	    test_unknown_size_manual);
	CU_add_test(s, "needy guest's step vs a short host", test_needy_step);
	CU_add_test(s, "a stalling guest is served first", test_stall_first);
	CU_add_test(s, "stall-hold after a stall", test_stall_hold);
	CU_add_test(s, "counter reset is not a stall", test_counter_reset);
	CU_add_test(s, "no 6.12 stats: faults and swap-in", test_stall_fallback);
	CU_add_test(s, "hostile stall counters", test_stall_hostile);
	{
		int fails = td_run();

		free(rec);
		return fails;
	}
}
