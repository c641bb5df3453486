// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest-driver/guestd/jvm.c's hold decision (pure): when a shrunk JVM is
 * collected again, fed a recorded series, and how shrinks and grow-back
 * move its allowance.
 *
 * The series: CacheService (tests/bench/apps, G1, -Xmx700m, 96 MiB cache
 * under its own load) in a 1 GiB TCG guest, its SAMPLE lines (about one a
 * second) as its heap grew back to 700 MiB committed after the start-up
 * batch: RSS and MemAvailable, KiB.
 */
#include <stdint.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "guestd.h"
#include "testdata.h"

static const struct {
	double		t;
	int64_t		rss_kib;
	int64_t		avail_kib;
} series[] = {
	{ 32.64, 647856, 150712 },
	{ 36.22, 688536, 147184 },
	{ 37.36, 709076, 134896 },
	{ 38.42, 760384, 83476 },
	{ 39.58, 771972, 72008 },
	{ 40.69, 777148, 66904 },
	{ 41.76, 778956, 65140 },
	{ 42.80, 778956, 65140 },
	{ 43.88, 779220, 64888 },
	{ 45.05, 779220, 64888 },
	/* after the daemon's GC.run, the balloon not yet inflated */
	{ 46.15, 371676, 393972 },
};
#define NSERIES	(sizeof(series) / sizeof(series[0]))
#define MARGIN	(256 * MIB)

static uint64_t
ms(double t)
{
	return (uint64_t)(t * 1000);
}

/* Run the series through the decision, a GC.run "starting" on COLLECT. */
static unsigned int
replay(struct jvm_hold *h, uint64_t interval_ms, enum hold_act *acts)
{
	unsigned int i, gcs = 0;

	for (i = 0; i < NSERIES; i++) {
		acts[i] = jvm_hold_decide(h, ms(series[i].t),
		    series[i].rss_kib * 1024, series[i].avail_kib * 1024,
		    MARGIN, interval_ms);
		if (acts[i] == HOLD_COLLECT) {
			h->last_gc_ms = ms(series[i].t);
			gcs++;
		}
	}
	return gcs;
}

/* A fresh hold, shrunk from @before to @after bytes. */
static void
held_after(struct jvm_hold *h, uint64_t before, uint64_t after)
{
	memset(h, 0, sizeof(*h));
	jvm_hold_shrunk(h, before, after);
}

static void
test_decide_series(void)
{
	struct jvm_hold h;
	enum hold_act acts[NSERIES];
	unsigned int i, gcs;

	/* held to 700 MiB: over from 38.42 s on (760384 KiB), every sample
	 * with MemAvailable under 256 MiB; at most one GC.run per 2 s, and
	 * one per 0.5 s from 41.76 s on, MemAvailable under 64 MiB (critical) */
	held_after(&h, 761 * MIB, 700 * MIB);
	gcs = replay(&h, 2000, acts);
	CU_ASSERT_EQUAL(acts[0], HOLD_OK);
	CU_ASSERT_EQUAL(acts[1], HOLD_OK);
	CU_ASSERT_EQUAL(acts[2], HOLD_OK);		/* 692.5 MiB */
	CU_ASSERT_EQUAL(acts[3], HOLD_COLLECT);		/* 38.42 */
	CU_ASSERT_EQUAL(acts[4], HOLD_WAIT);		/* 39.58: 1.16 s */
	CU_ASSERT_EQUAL(acts[5], HOLD_COLLECT);		/* 40.69: 2.27 s */
	CU_ASSERT_EQUAL(acts[6], HOLD_COLLECT);		/* 41.76: 63.6M */
	CU_ASSERT_EQUAL(acts[7], HOLD_COLLECT);		/* 42.80 */
	CU_ASSERT_EQUAL(acts[8], HOLD_COLLECT);
	CU_ASSERT_EQUAL(acts[9], HOLD_COLLECT);		/* 45.05 */
	/* under its allowance (and room): nothing */
	CU_ASSERT_EQUAL(acts[10], HOLD_OK);
	CU_ASSERT_EQUAL(gcs, 6);
	/* never two GC.runs closer than the interval, at any interval; a
	 * quarter of it when critical */
	for (uint64_t iv = 100; iv <= 10000; iv += 700) {
		uint64_t last = 0;

		held_after(&h, 761 * MIB, 600 * MIB);
		for (i = 0; i < NSERIES; i++) {
			if (jvm_hold_decide(&h, ms(series[i].t),
			    series[i].rss_kib * 1024,
			    series[i].avail_kib * 1024, MARGIN, iv) !=
			    HOLD_COLLECT)
				continue;
			CU_ASSERT(last == 0 || ms(series[i].t) >= last + iv ||
			    (series[i].avail_kib * 1024 < (int64_t)MARGIN / 4 &&
			    ms(series[i].t) >= last + iv / 4));
			last = h.last_gc_ms = ms(series[i].t);
		}
		CU_ASSERT(last != 0);
	}
	/* room (MemAvailable over the margin): never collected */
	held_after(&h, 761 * MIB, 300 * MIB);
	for (i = 0; i < NSERIES; i++)
		CU_ASSERT_EQUAL(jvm_hold_decide(&h, ms(series[i].t),
		    series[i].rss_kib * 1024, series[i].avail_kib * 1024,
		    60 * MIB, 2000), HOLD_OK);
	/* not held, or nothing measured: never collected */
	memset(&h, 0, sizeof(h));
	CU_ASSERT_EQUAL(replay(&h, 2000, acts), 0);
	jvm_hold_shrunk(&h, 761 * MIB, 300 * MIB);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, -1, 0, MARGIN, 2000),
	    HOLD_OK);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 700 * (int64_t)MIB, -1,
	    MARGIN, 2000), HOLD_OK);
	/* up to 8 MiB over the allowance is within it while the guest is
	 * short but not critically (MemAvailable 100 MiB of a 256 MiB
	 * margin) */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 308 * (int64_t)MIB,
	    100 * (int64_t)MIB, MARGIN, 2000), HOLD_OK);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 308 * (int64_t)MIB + 1,
	    100 * (int64_t)MIB, MARGIN, 2000), HOLD_COLLECT);
}

/*
 * Critically short (MemAvailable under margin / 4) and over the allowance
 * by more than 2 MiB: collected a quarter interval after the last.
 * Recorded in the apps bench (guestd log, MemAvailable every 200 ms):
 * allowance 236.2M, GC.run 1 at 17.794 s, GC.run 2 at 19.783 s (RSS
 * 249.3M, MemAvailable 58.3M); 0.62 s later RSS 261.2M with MemAvailable
 * 4.5M, which waited for the 1 s hold-interval (MemAvailable then fell to
 * 1.4M; java is OOM-killed at about 340 MiB RSS in that guest).
 */
static void
test_critical(void)
{
	struct jvm_hold h;
	const int64_t M = (int64_t)MIB;

	held_after(&h, 7619 * MIB / 10, 2362 * MIB / 10);
	h.last_gc_ms = 17794;
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 19783, 2493 * M / 10, 583 * M / 10,
	    MARGIN, 1000), HOLD_COLLECT);
	h.last_gc_ms = 19783;
	/* short, not critical (70M of 256M): the interval holds */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 20402, 2612 * M / 10, 70 * M,
	    MARGIN, 1000), HOLD_WAIT);
	CU_ASSERT(!jvm_hold_critical(&h, 20402, 2612 * M / 10, 70 * M, MARGIN));
	/* critical: collected now */
	CU_ASSERT(jvm_hold_critical(&h, 20402, 2612 * M / 10, 45 * M / 10, MARGIN));
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 20402, 2612 * M / 10, 45 * M / 10,
	    MARGIN, 1000), HOLD_COLLECT);
	/* critical: a quarter interval between two, not less */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 20032, 2612 * M / 10, 45 * M / 10,
	    MARGIN, 1000), HOLD_WAIT);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 20033, 2612 * M / 10, 45 * M / 10,
	    MARGIN, 1000), HOLD_COLLECT);
	/* critical: over the allowance by more than 2 MiB (not 8) a quarter
	 * interval apart; by 2 MiB (RSS jitter, one huge page) or within it,
	 * a whole interval apart (an allowance measured after G1 had regrown,
	 * 405.7M, was more than the guest could hold: java OOM-killed at
	 * 390 MiB, never collected) */
	h.last_gc_ms = 20500;
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 21000,
	    (int64_t)h.allowance + 2 * M + 1, 0, MARGIN, 1000), HOLD_COLLECT);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 21000, (int64_t)h.allowance + 2 * M,
	    0, MARGIN, 1000), HOLD_WAIT);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 21500, (int64_t)h.allowance - M,
	    0, MARGIN, 1000), HOLD_COLLECT);
	h.last_gc_ms = 20033;
	CU_ASSERT(!jvm_hold_critical(&h, 20402, (int64_t)h.allowance + 2 * M, 0,
	    MARGIN));
	/* the boundary: margin / 4 is not critical, one byte under is */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 20402, (int64_t)h.allowance + 4 * M,
	    (int64_t)(MARGIN / 4), MARGIN, 1000), HOLD_OK);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 20402, (int64_t)h.allowance + 4 * M,
	    (int64_t)(MARGIN / 4) - 1, MARGIN, 1000), HOLD_COLLECT);
	/* nothing measured: not critical */
	CU_ASSERT(!jvm_hold_critical(&h, 20402, -1, 0, MARGIN));
	CU_ASSERT(!jvm_hold_critical(&h, 20402, 700 * M, -1, MARGIN));
	/* not held: never, however short */
	memset(&h, 0, sizeof(h));
	CU_ASSERT(!jvm_hold_critical(&h, 20402, 700 * M, 0, MARGIN));
	h.squeezed_ms = 30000;
	CU_ASSERT(!jvm_hold_critical(&h, 20402, 700 * M, 0, MARGIN));
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 21000, 700 * M, 0, MARGIN, 1000),
	    HOLD_OK);
}

/*
 * Right after a shrink (until squeezed_ms) critical whatever MemAvailable
 * says: the balloon is taking what the shrink freed.  Recorded in the
 * apps bench on a quiet host (83646 ops/s): the shrink ended at 9.510 s
 * with 284.4M, MemAvailable stayed over the 256M margin (406M in the
 * JVM's own sample), and at 9.820 s RSS 378.5M, MemAvailable 189.3M, when
 * the first hold GC.run went out; java was OOM-killed before it was over.
 */
static void
test_squeezed(void)
{
	struct jvm_hold h;
	const int64_t M = (int64_t)MIB;

	held_after(&h, 7615 * MIB / 10, 2844 * MIB / 10);
	/* not squeezed (as before): room, nothing done at 9.610 s */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 9610, 300 * M, 406 * M, MARGIN,
	    1000), HOLD_OK);
	/* squeezed for grow-period (5 s) after the shrink: collected at once */
	h.squeezed_ms = 9510 + 5000;
	CU_ASSERT(jvm_hold_critical(&h, 9610, 300 * M, 406 * M, MARGIN));
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 9610, 300 * M, 406 * M, MARGIN,
	    1000), HOLD_COLLECT);
	h.last_gc_ms = 9610;
	/* then a quarter interval apart, not a whole one */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 9820, 3785 * M / 10, 1893 * M / 10,
	    MARGIN, 1000), HOLD_WAIT);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 9860, 3785 * M / 10, 1893 * M / 10,
	    MARGIN, 1000), HOLD_COLLECT);
	/* within the allowance (+2 MiB): nothing, squeezed or not */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 9860, 2864 * M / 10, 406 * M,
	    MARGIN, 1000), HOLD_OK);
	/* the window is over: room again means room */
	CU_ASSERT(!jvm_hold_critical(&h, 14510, 300 * M, 406 * M, MARGIN));
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 14510, 300 * M, 406 * M, MARGIN,
	    1000), HOLD_OK);
	/* after it, short but not critical: a whole interval apart */
	h.last_gc_ms = 14000;
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 14510, 300 * M, 100 * M, MARGIN,
	    1000), HOLD_WAIT);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 15000, 300 * M, 100 * M, MARGIN,
	    1000), HOLD_COLLECT);
}

static void
test_shrunk_grow(void)
{
	struct jvm_hold h;
	int i;

	memset(&h, 0, sizeof(h));
	CU_ASSERT_EQUAL(jvm_hold_grow(&h, 16 * MIB), 0);	/* not held */
	CU_ASSERT_EQUAL(h.allowance, 0);
	/* the bench's shrink: 761.0M -> 363.0M */
	jvm_hold_shrunk(&h, 761 * MIB, 363 * MIB);
	CU_ASSERT_EQUAL(h.allowance, 363 * MIB);
	CU_ASSERT_EQUAL(h.orig, 761 * MIB);
	/* a second squeeze lowers it, the first orig stays */
	jvm_hold_shrunk(&h, 380 * MIB, 250 * MIB);
	CU_ASSERT_EQUAL(h.allowance, 250 * MIB);
	CU_ASSERT_EQUAL(h.orig, 761 * MIB);
	/* a request served when the JVM had grown over it (recorded in the
	 * bench: 328.1M -> 243.6M over 170.4M) does not raise it */
	jvm_hold_shrunk(&h, 328 * MIB, 296 * MIB);
	CU_ASSERT_EQUAL(h.allowance, 250 * MIB);
	CU_ASSERT_EQUAL(h.orig, 761 * MIB);
	/* grow-back: 16 MiB a step, released at 761 MiB, not before */
	for (i = 0; i < 31; i++)
		CU_ASSERT_EQUAL(jvm_hold_grow(&h, 16 * MIB), 0);
	CU_ASSERT_EQUAL(h.allowance, 746 * MIB);
	CU_ASSERT_EQUAL(jvm_hold_grow(&h, 16 * MIB), 1);
	CU_ASSERT_EQUAL(h.allowance, 0);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 900 * (int64_t)MIB, 0,
	    MARGIN, 2000), HOLD_OK);
	/* a JVM asked for more than it can give (guestd-apps: 29.6M asked,
	 * 50.2M -> 50.2M): held where it is, not collected at its floor
	 * while the guest is short but not critically (20M of a 64M margin);
	 * critically short (8M), once an interval even at its floor */
	held_after(&h, 502 * MIB / 10, 502 * MIB / 10);
	CU_ASSERT_EQUAL(h.allowance, 502 * MIB / 10);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 50 * (int64_t)MIB,
	    20 * (int64_t)MIB, 64 * MIB, 1000), HOLD_OK);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 52 * (int64_t)MIB,
	    20 * (int64_t)MIB, 64 * MIB, 1000), HOLD_OK);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 50 * (int64_t)MIB,
	    8 * (int64_t)MIB, 64 * MIB, 1000), HOLD_COLLECT);
	h.last_gc_ms = 1000;
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1999, 50 * (int64_t)MIB,
	    8 * (int64_t)MIB, 64 * MIB, 1000), HOLD_WAIT);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 2000, 50 * (int64_t)MIB,
	    8 * (int64_t)MIB, 64 * MIB, 1000), HOLD_COLLECT);
	h.last_gc_ms = 0;
	/* 6.8M over it: within the slack with room for 20M (not critical),
	 * collected at 8M (critical) */
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 57 * (int64_t)MIB,
	    20 * (int64_t)MIB, 64 * MIB, 1000), HOLD_OK);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 1000, 57 * (int64_t)MIB,
	    8 * (int64_t)MIB, 64 * MIB, 1000), HOLD_COLLECT);
	/* right after the shrink: collected at once when over (the bench:
	 * 210.2M -> 361.6M in the 1 s after a shrink) */
	held_after(&h, 7616 * MIB / 10, 2102 * MIB / 10);
	CU_ASSERT_EQUAL(jvm_hold_decide(&h, 5100, 3616 * (int64_t)MIB / 10,
	    5 * (int64_t)MIB, MARGIN, 1000), HOLD_COLLECT);
	/* a shrink measured at 0 still holds */
	jvm_hold_shrunk(&h, 100 * MIB, 0);
	CU_ASSERT(h.allowance != 0);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("guestd-hold", NULL, NULL);
	CU_add_test(s, "decision on a recorded series", test_decide_series);
	CU_add_test(s, "allowance: shrinks and grow-back", test_shrunk_grow);
	CU_add_test(s, "critically short: collected sooner", test_critical);
	CU_add_test(s, "right after a shrink: critical", test_squeezed);
	return td_run();
}
