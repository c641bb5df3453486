/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Unit tests of host-agent/ksm.c and ksm_sample.c: the sysfs and /proc
 * parsers on files recorded on this machine (data/), hostile input, the
 * estimator's index on synthetic guests with known duplicates, and the
 * auto-mode decision on recorded and synthetic series (limits, no
 * flapping, absurd figures).  ksm_init/tick/free run on a copy of the
 * recorded sysfs directory, never on the host's.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "ksm.h"

static const char *datadir;

static char *
slurp(const char *name)
{
	char path[PATH_MAX];
	FILE *f;
	char *buf;
	long len;

	snprintf(path, sizeof(path), "%s/%s", datadir, name);
	f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = malloc((size_t)len + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL_FATAL(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static void
quiet(int prio, const char *fmt, va_list ap)
{
	(void)prio;
	(void)fmt;
	(void)ap;
}

/* ------------------------------------------------------------------ */

static void
test_parse_value(void)
{
	int64_t v = 7;

	CU_ASSERT_EQUAL(ksm_parse_value("123\n", &v), 0);
	CU_ASSERT_EQUAL(v, 123);
	CU_ASSERT_EQUAL(ksm_parse_value("-6329408\n", &v), 0);
	CU_ASSERT_EQUAL(v, -6329408);
	CU_ASSERT_EQUAL(ksm_parse_value("0", &v), 0);
	CU_ASSERT_EQUAL(v, 0);
	v = 7;
	CU_ASSERT_EQUAL(ksm_parse_value("", &v), -1);
	CU_ASSERT_EQUAL(ksm_parse_value("\n", &v), -1);
	CU_ASSERT_EQUAL(ksm_parse_value("abc\n", &v), -1);
	CU_ASSERT_EQUAL(ksm_parse_value("12 34\n", &v), -1);
	CU_ASSERT_EQUAL(ksm_parse_value("12abc", &v), -1);
	CU_ASSERT_EQUAL(ksm_parse_value("99999999999999999999999\n", &v), -1);
	CU_ASSERT_EQUAL(ksm_parse_value("[none] scan-time\n", &v), -1);
	CU_ASSERT_EQUAL(v, 7);		/* untouched on error */
}

static void
test_parse_advisor(void)
{
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode("[none] scan-time\n"), 0);
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode("none [scan-time]\n"), 1);
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode("none scan-time\n"), -1);
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode("[none] [scan-time]\n"), -1);
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode("[bogus] none\n"), -1);
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode("[none"), -1);
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode(""), -1);
	CU_ASSERT_EQUAL(ksm_parse_advisor_mode("scan-time"), -1);
}

static void
test_read_sysfs_recorded(void)
{
	char dir[PATH_MAX];
	struct ksm_sysfs s;

	snprintf(dir, sizeof(dir), "%s/sysfs-idle", datadir);
	CU_ASSERT_EQUAL_FATAL(ksm_read_sysfs(dir, &s), 0);
	CU_ASSERT_EQUAL(s.run, 0);
	CU_ASSERT_EQUAL(s.pages_to_scan, 100);
	CU_ASSERT_EQUAL(s.sleep_millisecs, 20);
	CU_ASSERT_EQUAL(s.pages_sharing, 0);
	CU_ASSERT_EQUAL(s.advisor_mode, 0);
	CU_ASSERT_EQUAL(s.advisor_target_scan_time, 200);
	CU_ASSERT_EQUAL(s.advisor_max_cpu, 70);
	CU_ASSERT_EQUAL(s.general_profit, 0);

	snprintf(dir, sizeof(dir), "%s/sysfs-merged", datadir);
	CU_ASSERT_EQUAL_FATAL(ksm_read_sysfs(dir, &s), 0);
	CU_ASSERT_EQUAL(s.run, 1);
	CU_ASSERT_EQUAL(s.advisor_mode, 1);
	CU_ASSERT(s.pages_sharing > 10000);
	CU_ASSERT(s.pages_shared > 0);
	CU_ASSERT(s.full_scans >= 2);

	CU_ASSERT_EQUAL(ksm_read_sysfs("/nonexistent/ksm", &s), -1);
}

static void
test_proc_stat(void)
{
	struct ksm_proc_stat st;
	char *t;

	t = slurp("ksm_stat-qemu.txt");
	CU_ASSERT_EQUAL(ksm_parse_proc_stat(t, &st), 0);
	CU_ASSERT(st.merging_pages > 10000);
	CU_ASSERT(st.rmap_items > 0);
	CU_ASSERT_EQUAL(st.mergeable, 1);
	CU_ASSERT_EQUAL(st.merge_any, 0);
	free(t);

	t = slurp("ksm_stat-none.txt");
	CU_ASSERT_EQUAL(ksm_parse_proc_stat(t, &st), 0);
	CU_ASSERT_EQUAL(st.merging_pages, 0);
	CU_ASSERT_EQUAL(st.mergeable, 0);
	free(t);

	/* Hostile or broken input. */
	CU_ASSERT_EQUAL(ksm_parse_proc_stat("", &st), -1);
	CU_ASSERT_EQUAL(st.merging_pages, -1);
	CU_ASSERT_EQUAL(ksm_parse_proc_stat("garbage\n\n\n", &st), -1);
	CU_ASSERT_EQUAL(ksm_parse_proc_stat("ksm_merging_pages xyz\n", &st), -1);
	CU_ASSERT_EQUAL(ksm_parse_proc_stat("ksm_merging_pages 12", &st), 0);
	CU_ASSERT_EQUAL(st.merging_pages, 12);
	CU_ASSERT_EQUAL(st.rmap_items, -1);
	{
		char big[8192];

		memset(big, 'k', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		CU_ASSERT_EQUAL(ksm_parse_proc_stat(big, &st), -1);
		memcpy(big + 4000, "\nksm_merging_pages 5\n", 21);
		CU_ASSERT_EQUAL(ksm_parse_proc_stat(big, &st), 0);
		CU_ASSERT_EQUAL(st.merging_pages, 5);
	}
}

static void
test_smaps_recorded(void)
{
	struct ksm_region r[8];
	char *t;
	int n;

	t = slurp("qemu-smaps.txt");
	n = ksm_parse_smaps(t, 16ULL << 20, r, 8);
	/* The 384 MiB guest RAM block is the only big mergeable mapping. */
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(r[0].end - r[0].start, 384ULL << 20);
	CU_ASSERT_EQUAL(r[0].mergeable, 1);
	/* Small threshold: also the ROM/VGA blocks, all mergeable. */
	n = ksm_parse_smaps(t, 4096, r, 8);
	CU_ASSERT_EQUAL(n, 6);
	/* @max is respected. */
	CU_ASSERT_EQUAL(ksm_parse_smaps(t, 4096, r, 2), 2);
	free(t);
}

static void
test_smaps_fallback_and_hostile(void)
{
	struct ksm_region r[4];
	const char *nomg =
	    "7f0000000000-7f0010000000 rw-p 00000000 00:00 0 \n"
	    "Size:             262144 kB\n"
	    "VmFlags: rd wr mr mw me ac sd \n"
	    "7f0010000000-7f0010100000 rw-p 00000000 00:00 0 \n"
	    "VmFlags: rd wr mr mw me ac sd \n"
	    "7f0020000000-7f0030000000 r--p 00000000 08:01 1234 /usr/lib/big.so\n"
	    "VmFlags: rd mr mw me sd \n"
	    "7f0030000000-7f0040000000 rw-s 00000000 00:01 99 /dev/zero (deleted)\n"
	    "VmFlags: rd wr sh mr mw me ms sd \n";
	const char *mgword =
	    "7f0000000000-7f0010000000 rw-p 00000000 00:00 0 \n"
	    "VmFlags: rd wr mgx \n";

	/* No "mg": the big private anonymous rw mapping only. */
	CU_ASSERT_EQUAL(ksm_parse_smaps(nomg, 16ULL << 20, r, 4), 1);
	CU_ASSERT_EQUAL(r[0].start, 0x7f0000000000ULL);
	CU_ASSERT_EQUAL(r[0].mergeable, 0);
	/* "mgx" is not the mg flag. */
	CU_ASSERT_EQUAL(ksm_parse_smaps(mgword, 16ULL << 20, r, 4), 1);
	CU_ASSERT_EQUAL(r[0].mergeable, 0);
	/* Inverted range: malformed. */
	CU_ASSERT_EQUAL(ksm_parse_smaps("7f0010000000-7f0000000000 rw-p 00000000 00:00 0\n",
	    0, r, 4), -1);
	CU_ASSERT_EQUAL(ksm_parse_smaps("", 0, r, 4), 0);
	CU_ASSERT_EQUAL(ksm_parse_smaps("VmFlags: mg\n", 0, r, 4), 0);
	CU_ASSERT_EQUAL(ksm_parse_smaps("not smaps at all\n\n", 0, r, 4), 0);
}

static void
test_attribution(void)
{
	struct ksm_sysfs s;
	struct ksm_proc_stat a, b;
	char dir[PATH_MAX];
	char *t;

	snprintf(dir, sizeof(dir), "%s/sysfs-merged", datadir);
	CU_ASSERT_EQUAL_FATAL(ksm_read_sysfs(dir, &s), 0);
	t = slurp("ksm_stat-qemu.txt");
	CU_ASSERT_EQUAL_FATAL(ksm_parse_proc_stat(t, &a), 0);
	free(t);
	t = slurp("ksm_stat-qemu2.txt");
	CU_ASSERT_EQUAL_FATAL(ksm_parse_proc_stat(t, &b), 0);
	free(t);
	/*
	 * Recorded with other QEMUs merged too: the two identical guests get
	 * equal, real shares that fit in the total.
	 */
	{
		uint64_t sa = ksm_attribute_saving(&a, &s, 4096);
		uint64_t sb = ksm_attribute_saving(&b, &s, 4096);
		uint64_t total = (uint64_t)s.pages_sharing * 4096;

		CU_ASSERT(sa > (100ULL << 20) && sb > (100ULL << 20));
		CU_ASSERT(sa + sb <= total);
		CU_ASSERT(sa < sb + sb / 50 && sb < sa + sa / 50);
	}
	/* Only two users of 1000 merged pages each: the shares add up exactly. */
	{
		struct ksm_sysfs t = s;
		struct ksm_proc_stat x = a;

		t.pages_shared = 1000;
		t.pages_sharing = 1000;
		x.merging_pages = 1000;
		x.zero_pages = 0;
		CU_ASSERT_EQUAL(2 * ksm_attribute_saving(&x, &t, 4096), 1000 * 4096);
		/* three users of 500 contents: 1000 saved, a third each */
		t.pages_shared = 500;
		CU_ASSERT_EQUAL(ksm_attribute_saving(&x, &t, 4096) / 4096, 666);
	}
	/* Nothing shared: nothing attributed; zero pages count in full. */
	s.pages_sharing = 0;
	s.pages_shared = 0;
	CU_ASSERT_EQUAL(ksm_attribute_saving(&a, &s, 4096), 0);
	a.zero_pages = 10;
	CU_ASSERT_EQUAL(ksm_attribute_saving(&a, &s, 4096), 40960);
	/* Absent figures (-1) are not savings. */
	a.zero_pages = -1;
	a.merging_pages = -1;
	s.pages_sharing = -1;
	CU_ASSERT_EQUAL(ksm_attribute_saving(&a, &s, 4096), 0);
}

/* ------------------------------------------------------------------ */
/* The estimator on synthetic guests */

static uint64_t rng = 88172645463325252ULL;

static uint64_t
xr(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
fill_page(unsigned char *pg, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1, i;

	for (i = 0; i < 4096; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(pg + i, &x, 8);
	}
}

static void
feed(struct ksm_index *ix, const unsigned char *pg, unsigned int guest)
{
	static uint64_t pos;	/* a page's address, as the sampler passes */
	int uni;
	uint64_t ph = ksm_hash_prefix(pg, pg + 2048, 32, &uni);
	unsigned int w = ksm_index_select(ix, ph, uni, (pos++) << 12);
	static const unsigned char zeros[4096];

	CU_ASSERT_EQUAL(ksm_index_add(ix, ksm_hash_page(pg, 4096), guest, w,
	    memcmp(pg, zeros, 4096) == 0), 0);
}

static void
test_estimator_synthetic(void)
{
	/*
	 * Guest 0 and 1 each: 20000 pages common to both, 20000 unique,
	 * 3000 zero pages, 5000 pages of one poison pattern.  Truth: merging
	 * saves 20000 (common) + 5999 (zero) + 9999 (poison) pages, of which
	 * all are across guests (each content is in both).
	 */
	unsigned char pg[4096];
	struct ksm_index *ix;
	struct ksm_estimate e;
	unsigned int g, i;
	uint64_t truth = 20000 + 5999 + 9999;

	ix = ksm_index_new(5);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ix);
	for (g = 0; g < 2; g++) {
		for (i = 0; i < 20000; i++) {
			fill_page(pg, 1000000 + i);
			feed(ix, pg, g);
			fill_page(pg, xr());
			feed(ix, pg, g);
		}
		memset(pg, 0, sizeof(pg));
		for (i = 0; i < 3000; i++)
			feed(ix, pg, g);
		memset(pg, 0xaa, sizeof(pg));
		for (i = 0; i < 5000; i++)
			feed(ix, pg, g);
	}
	memset(&e, 0, sizeof(e));
	ksm_index_result(ix, &e);
	/* Zero and poison pages: 1 in 16 by position, within 15%. */
	CU_ASSERT(e.zero_pages > 6000 * 85 / 100);
	CU_ASSERT(e.zero_pages < 6000 * 115 / 100);
	/* Sampled, not all: 1 in 16 uniform pages, 1 in 32 of the rest. */
	CU_ASSERT(e.hashed_pages < 2 * (8000 / 8 + 40000 / 16));
	CU_ASSERT(e.saving_pages > truth * 85 / 100);
	CU_ASSERT(e.saving_pages < truth * 115 / 100);
	CU_ASSERT_EQUAL(e.cross_pages, e.saving_pages);
	ksm_index_free(ix);

	/* Unique contents only: the estimate must be (close to) nothing. */
	ix = ksm_index_new(5);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ix);
	for (g = 0; g < 2; g++)
		for (i = 0; i < 30000; i++) {
			fill_page(pg, xr());
			feed(ix, pg, g);
		}
	ksm_index_result(ix, &e);
	CU_ASSERT_EQUAL(e.saving_pages, 0);
	CU_ASSERT_EQUAL(e.cross_pages, 0);
	ksm_index_free(ix);

	/* Within one guest only: saving but nothing across. */
	ix = ksm_index_new(0);		/* shift 0: every page hashed */
	CU_ASSERT_PTR_NOT_NULL_FATAL(ix);
	for (i = 0; i < 100; i++) {
		fill_page(pg, i % 10);
		feed(ix, pg, 3);
	}
	ksm_index_result(ix, &e);
	CU_ASSERT_EQUAL(e.saving_pages, 90);
	CU_ASSERT_EQUAL(e.cross_pages, 0);
	CU_ASSERT_EQUAL(e.hashed_pages, 100);
	/* Weight 0 (not sampled) adds nothing. */
	CU_ASSERT_EQUAL(ksm_index_add(ix, 12345, 0, 0, 0), 0);
	ksm_index_result(ix, &e);
	CU_ASSERT_EQUAL(e.hashed_pages, 100);
	ksm_index_free(ix);
}

static void
test_hash(void)
{
	unsigned char a[4096], b[4096];
	int u;

	fill_page(a, 1);
	memcpy(b, a, sizeof(a));
	CU_ASSERT_EQUAL(ksm_hash_page(a, 4096), ksm_hash_page(b, 4096));
	b[4095] ^= 1;		/* a change past the prefix changes the hash */
	CU_ASSERT_NOT_EQUAL(ksm_hash_page(a, 4096), ksm_hash_page(b, 4096));
	b[4095] ^= 1;
	b[8] ^= 0x80;
	CU_ASSERT_NOT_EQUAL(ksm_hash_page(a, 4096), ksm_hash_page(b, 4096));
	/* Swapped words hash differently (position matters). */
	memcpy(b, a, sizeof(a));
	memcpy(b, a + 8, 8);
	memcpy(b + 8, a, 8);
	CU_ASSERT_NOT_EQUAL(ksm_hash_page(a, 4096), ksm_hash_page(b, 4096));

	ksm_hash_prefix(a, a + 2048, 32, &u);
	CU_ASSERT_EQUAL(u, 0);
	memset(a, 0, sizeof(a));
	ksm_hash_prefix(a, a + 2048, 32, &u);
	CU_ASSERT_EQUAL(u, 1);
	memset(a, 0xaa, sizeof(a));
	ksm_hash_prefix(a, a + 2048, 32, &u);
	CU_ASSERT_EQUAL(u, 1);
	a[2050] = 0;
	ksm_hash_prefix(a, a + 2048, 32, &u);
	CU_ASSERT_EQUAL(u, 0);
}

/* ------------------------------------------------------------------ */
/* Decisions */

static void
base_input(struct ksm_input *in, const struct ksm_sysfs *s, uint64_t now)
{
	memset(in, 0, sizeof(*in));
	in->now = now;
	in->mode = KSM_AUTO;
	in->sys = *s;
	in->guest_pages = 196608;	/* two 384 MiB guests */
	in->guest_saving = -1;		/* host figure */
	in->nguests = 2;
	in->page_size = 4096;
}

static struct ksm_sysfs
recorded_idle(void)
{
	char dir[PATH_MAX];
	struct ksm_sysfs s;

	snprintf(dir, sizeof(dir), "%s/sysfs-idle", datadir);
	CU_ASSERT_EQUAL(ksm_read_sysfs(dir, &s), 0);
	return s;
}

/* Apply a decision to simulated sysfs figures, as the kernel would. */
static void
sim_apply(struct ksm_sysfs *s, const struct ksm_decision *d)
{
	/* As mm/ksm.c: a new advisor mode resets pages_to_scan ... */
	if (d->advisor_mode >= 0 && d->advisor_mode != s->advisor_mode) {
		s->advisor_mode = d->advisor_mode;
		s->pages_to_scan = d->advisor_mode == 1 ?
		    s->advisor_min_pages_to_scan : 100;
	}
	if (d->advisor_target_scan_time >= 0)
		s->advisor_target_scan_time = d->advisor_target_scan_time;
	if (d->advisor_max_cpu >= 0)
		s->advisor_max_cpu = d->advisor_max_cpu;
	/* ... and refuses pages_to_scan while the advisor is on. */
	if (d->pages_to_scan >= 0) {
		CU_ASSERT(s->advisor_mode != 1);
		if (s->advisor_mode != 1)
			s->pages_to_scan = d->pages_to_scan;
	}
	if (d->sleep_millisecs >= 0)
		s->sleep_millisecs = d->sleep_millisecs;
	if (d->use_zero_pages >= 0)
		s->use_zero_pages = d->use_zero_pages;
	if (d->run >= 0)
		s->run = d->run;
}

static void
test_decide_modes(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	base_input(&in, &s, 100);
	in.mode = KSM_OFF;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.changed, 0);		/* off already */
	in.sys.run = 1;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.run, 0);
	CU_ASSERT(d.changed);
	CU_ASSERT(strstr(d.reason, "off") != NULL);

	in.mode = KSM_ON;
	in.sys.run = 0;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.run, 1);
	/* On leaves the scan settings to the operator. */
	CU_ASSERT_EQUAL(d.pages_to_scan, -1);
	CU_ASSERT_EQUAL(d.advisor_mode, -1);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
}

static void
test_decide_auto_start(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	base_input(&in, &s, 100);

	/* No guests: nothing, not even an estimate. */
	in.nguests = 0;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	CU_ASSERT_EQUAL(d.changed, 0);

	/* Guests, no estimate yet: ask for one, change nothing. */
	in.nguests = 2;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 1);
	CU_ASSERT_EQUAL(d.changed, 0);

	/* An estimate below on_bytes: stays off, no new estimate until due. */
	c.have_estimate = 1;
	c.last_estimate = 100;
	c.est.saving_pages = (p.on_bytes / 4096) - 1;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.changed, 0);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	in.now = 100 + p.estimate_interval - 1;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	in.now = 100 + p.estimate_interval;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 1);

	/*
	 * An estimate that pays: start at converge speed, a fixed rate for
	 * the guests' RAM (the advisor stays off: it starts slow).
	 */
	c.last_estimate = in.now;
	c.est.saving_pages = 69016;	/* recorded: two guests, 269 MiB */
	c.est.cross_pages = 69016;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.run, 1);
	CU_ASSERT_EQUAL(d.advisor_mode, -1);	/* none already */
	CU_ASSERT_EQUAL(d.advisor_target_scan_time, -1);
	CU_ASSERT_EQUAL(d.pages_to_scan,
	    196608 * p.converge_sleep_ms / (p.converge_scan_time * 1000));
	CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	CU_ASSERT(strstr(d.reason, "269 MiB") != NULL);
}

/*
 * use_zero_pages: set on starting to converge when the estimate finds
 * that zero pages are at least half of the saving, and only then (not
 * when mostly other contents, not when set already, not when the kernel
 * has no such knob); never switched off again by a phase change.
 */
static void
test_decide_zero_pages(void)
{
	static const struct {
		int64_t		 knob;		/* sysfs use_zero_pages */
		uint64_t	 zero;		/* estimated zero pages */
		int64_t		 want;		/* decision */
	} cases[] = {
		{ 0, 40000, 1 },	/* 40000 of 69016: mostly zero */
		{ 0, 34508, 1 },	/* exactly half */
		{ 0, 34000, -1 },	/* less than half */
		{ 0, 0, -1 },
		{ 1, 40000, -1 },	/* set already */
		{ -1, 40000, -1 },	/* kernel without the knob */
	};
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	size_t i;
	int t;

	ksm_params_default(&p);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ksm_ctl_init(&c);
		s = recorded_idle();
		s.use_zero_pages = cases[i].knob;
		base_input(&in, &s, 100);
		c.have_estimate = 1;
		c.last_estimate = 100;
		c.est.saving_pages = 69016;
		c.est.zero_pages = cases[i].zero;
		ksm_decide(&p, &c, &in, &d);
		CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
		CU_ASSERT_EQUAL(d.run, 1);
		CU_ASSERT_EQUAL(d.use_zero_pages, cases[i].want);
		sim_apply(&s, &d);
		/* Converged, then steady: use_zero_pages is left as it is. */
		for (t = 101; t < 400 && c.phase != KSM_PH_STEADY; t++) {
			base_input(&in, &s, (uint64_t)t);
			in.sys.full_scans = (t - 100) / 5;
			in.sys.pages_sharing = t > 110 ? 69016 : 0;
			in.sys.pages_shared = t > 110 ? 100 : 0;
			ksm_decide(&p, &c, &in, &d);
			CU_ASSERT_EQUAL(d.use_zero_pages, -1);
			sim_apply(&s, &d);
		}
		CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
		CU_ASSERT_EQUAL(s.use_zero_pages,
		    cases[i].want == 1 ? 1 : cases[i].knob);
	}
}

/*
 * Steady, the guests' RAM moving by 5% from tick to tick: no scan setting
 * is written (each sleep_millisecs write wakes ksmd for a batch).  A third
 * less RAM: the sleep follows.
 */
static void
test_decide_steady_no_churn(void)
{
	struct ksm_sysfs s = recorded_idle();
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	uint64_t t, sleep0;

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	c.phase = KSM_PH_STEADY;
	c.phase_since = 1;
	c.have_estimate = 1;
	c.last_estimate = 1;
	c.est_checked = 1;
	c.est.saving_pages = 50000;
	c.nguests_mark = 2;
	c.guest_pages_mark = 196608;
	c.grow_mark = 50000;
	s.run = 1;
	s.advisor_mode = 0;
	s.pages_sharing = 50000;
	base_input(&in, &s, 2);
	ksm_decide(&p, &c, &in, &d);
	sim_apply(&s, &d);
	CU_ASSERT_EQUAL(s.pages_to_scan, 2000);
	sleep0 = 2000ULL * p.steady_scan_time * 1000 / 196608;
	CU_ASSERT_EQUAL((uint64_t)s.sleep_millisecs, sleep0);
	for (t = 3; t < 300; t++) {
		base_input(&in, &s, t);
		in.guest_pages = t % 2 ? 196608 + 9830 : 196608 - 9830;
		ksm_decide(&p, &c, &in, &d);
		CU_ASSERT_EQUAL(d.sleep_millisecs, -1);
		CU_ASSERT_EQUAL(d.pages_to_scan, -1);
		CU_ASSERT_FALSE(d.changed);
		sim_apply(&s, &d);
	}
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	base_input(&in, &s, t);
	in.guest_pages = 131072;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.sleep_millisecs,
	    (int64_t)(2000ULL * p.steady_scan_time * 1000 / 131072));
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
}

/*
 * ksm_tick_quiet(): only auto mode, only steady, only within steady_tick
 * of the last full tick (and never with a clock that went back).
 */
static void
test_tick_quiet(void)
{
	struct ksm_params p;
	struct ksm_ctl c;

	ksm_params_default(&p);
	CU_ASSERT(p.steady_tick > 0);
	ksm_ctl_init(&c);
	c.phase = KSM_PH_STEADY;
	CU_ASSERT(ksm_tick_quiet(&p, &c, KSM_AUTO, 1000, 1000));
	CU_ASSERT(ksm_tick_quiet(&p, &c, KSM_AUTO, 1000, 1000 + p.steady_tick - 1));
	CU_ASSERT(!ksm_tick_quiet(&p, &c, KSM_AUTO, 1000, 1000 + p.steady_tick));
	CU_ASSERT(!ksm_tick_quiet(&p, &c, KSM_AUTO, 1000, 999));
	CU_ASSERT(!ksm_tick_quiet(&p, &c, KSM_ON, 1000, 1001));
	CU_ASSERT(!ksm_tick_quiet(&p, &c, KSM_OFF, 1000, 1001));
	c.phase = KSM_PH_CONVERGE;	/* every tick counts while converging */
	CU_ASSERT(!ksm_tick_quiet(&p, &c, KSM_AUTO, 1000, 1001));
	c.phase = KSM_PH_IDLE;
	CU_ASSERT(!ksm_tick_quiet(&p, &c, KSM_AUTO, 1000, 1001));
	c.phase = KSM_PH_STEADY;
	p.steady_tick = 0;
	CU_ASSERT(!ksm_tick_quiet(&p, &c, KSM_AUTO, 1000, 1000));
}

/*
 * Converging ends as soon as the saving reaches reach_permille of the
 * estimate, within a full scan: the rest of a fast scan is not paid for.
 */
static void
test_decide_reach_mid_scan(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	int64_t want;

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	c.have_estimate = 1;
	c.last_estimate = 100;
	c.est.saving_pages = 69016;
	want = 69016 * (int64_t)p.reach_permille / 1000;
	base_input(&in, &s, 100);
	ksm_decide(&p, &c, &in, &d);
	sim_apply(&s, &d);
	CU_ASSERT_EQUAL_FATAL(c.phase, KSM_PH_CONVERGE);
	/* One full scan done, the second under way: no new full_scans. */
	s.full_scans = 1;
	base_input(&in, &s, 105);
	ksm_decide(&p, &c, &in, &d);
	sim_apply(&s, &d);
	s.pages_shared = 100;
	s.pages_sharing = want - 1;
	base_input(&in, &s, 107);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	s.pages_sharing = want;
	base_input(&in, &s, 108);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	CU_ASSERT(strstr(d.reason, "of the estimate") != NULL);
	CU_ASSERT(d.pages_to_scan >= 0 || d.sleep_millisecs >= 0);
}

static void
test_decide_no_advisor(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();

	/* An older kernel: no advisor files. */
	s.advisor_mode = s.advisor_target_scan_time = s.advisor_max_cpu = -1;
	ksm_params_default(&p);
	ksm_ctl_init(&c);
	base_input(&in, &s, 100);
	c.have_estimate = 1;
	c.last_estimate = 100;
	c.est.saving_pages = 50000;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.run, 1);
	CU_ASSERT_EQUAL(d.advisor_mode, -1);
	/* 196608 pages in 5 s at 20 ms: 786 pages per wake-up. */
	CU_ASSERT_EQUAL(d.pages_to_scan, 196608 * 20 / 5000);

	/* Huge guests: clamped. */
	ksm_ctl_init(&c);
	c.have_estimate = 1;
	c.last_estimate = 100;
	c.est.saving_pages = 50000;
	in.guest_pages = 1ULL << 40;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.pages_to_scan, p.converge_max_pages);
	/* Unknown size: a fixed fast rate, never below the kernel default. */
	ksm_ctl_init(&c);
	c.have_estimate = 1;
	c.last_estimate = 100;
	c.est.saving_pages = 50000;
	in.guest_pages = 0;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT(d.pages_to_scan >= 100);
}

/*
 * A series like the one recorded by the integration test: the saving grows
 * over three full scans and then stays flat (with noise) for a long time.
 * Auto mode must converge, back off exactly once, and never flap.
 */
static void
test_decide_series_no_flap(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	enum ksm_phase prev;
	unsigned int t, transitions = 0, runs_changed = 0, estimates = 0;
	int64_t saving[] = { 0, 0, 60000, 110000, 117000, 117359 };

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	c.have_estimate = 1;
	c.last_estimate = 1;
	c.est.saving_pages = 69016;
	prev = c.phase;
	for (t = 1; t < 5000; t++) {
		unsigned int scan = t / 7;	/* a full scan every 7 s */

		if (s.run == 1) {
			s.full_scans = scan;
			s.pages_sharing = scan < 6 ? saving[scan] :
			    117359 + (int64_t)(xr() % 200) - 100;
			s.pages_shared = s.pages_sharing / 3;
		}
		base_input(&in, &s, t);
		ksm_decide(&p, &c, &in, &d);
		if (d.want_estimate) {
			/* Only while steady; the guests did not change. */
			CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
			estimates++;
			c.last_estimate = t;
		}
		if (d.run >= 0 && d.run != s.run)
			runs_changed++;
		sim_apply(&s, &d);
		if (c.phase != prev)
			transitions++;
		prev = c.phase;
		/* Every setting stays in the kernel's accepted ranges. */
		CU_ASSERT(s.advisor_target_scan_time >= 1);
		CU_ASSERT(s.advisor_max_cpu >= 1 && s.advisor_max_cpu <= 100);
		CU_ASSERT(s.sleep_millisecs >= 1);
	}
	CU_ASSERT_EQUAL(s.run, 1);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	CU_ASSERT_EQUAL(transitions, 2);	/* idle->converge->steady */
	CU_ASSERT_EQUAL(runs_changed, 1);
	/*
	 * Backed off all the way (every steady scan merged nothing): advisor
	 * off, the slowest pages_to_scan and a sleep that makes a full scan
	 * of the guests' RAM take steady_max_scan_time.
	 */
	CU_ASSERT_EQUAL(s.advisor_mode, 0);
	CU_ASSERT_EQUAL(s.pages_to_scan, 2000);
	CU_ASSERT_EQUAL(s.sleep_millisecs,
	    2000ULL * p.steady_max_scan_time * 1000 / 196608);
	/* steady_scan_time doubled up to steady_max_scan_time */
	CU_ASSERT((uint64_t)p.steady_scan_time << c.backoff ==
	    p.steady_max_scan_time);
	/*
	 * Estimates no more often than a steady full scan (which backed off
	 * here), none converging.
	 */
	CU_ASSERT(estimates <= 5000 / p.steady_scan_time);
}

static void
test_decide_stop_and_regrow(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	unsigned int t;

	ksm_params_default(&p);

	/* The estimate was wrong: ksmd finds little.  Stop, not before min_on_time. */
	ksm_ctl_init(&c);
	c.have_estimate = 1;
	c.last_estimate = 1;
	c.est.saving_pages = 50000;
	s.run = 0;
	s.full_scans = 0;
	s.pages_sharing = 0;
	for (t = 1; t < 400 && !(t > 1 && s.run == 0); t++) {
		if (s.run == 1) {
			s.full_scans = t / 5;
			s.pages_sharing = 100;	/* 400 KiB */
		}
		base_input(&in, &s, t);
		ksm_decide(&p, &c, &in, &d);
		sim_apply(&s, &d);
		if (s.run == 0 && t > 1) {
			CU_ASSERT(t >= 1 + p.min_on_time);
			CU_ASSERT(strstr(d.reason, "stopping") != NULL);
		}
	}
	CU_ASSERT_EQUAL(s.run, 0);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_IDLE);
	/* Right after stopping: no estimate before the interval, no restart. */
	base_input(&in, &s, t + 1);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	CU_ASSERT_EQUAL(d.changed, 0);
	/* The same estimate again: ksmd saved 100 of 50000 pages, not trusted. */
	CU_ASSERT(c.trust_permille < 10);
	base_input(&in, &s, t + p.estimate_interval + 1);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 1);
	c.have_estimate = 1;
	c.last_estimate = in.now;
	c.est.saving_pages = 50000;
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.changed, 0);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_IDLE);

	/* Steady, then the guests change and the saving grows: converge again. */
	ksm_ctl_init(&c);
	s = recorded_idle();
	s.run = 1;
	s.advisor_mode = 1;
	s.full_scans = 10;
	s.pages_sharing = 100000;
	base_input(&in, &s, 10);
	ksm_decide(&p, &c, &in, &d);	/* adopt the running ksmd */
	CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	sim_apply(&s, &d);
	s.full_scans = 11;
	base_input(&in, &s, 20);
	ksm_decide(&p, &c, &in, &d);
	s.full_scans = 12;
	base_input(&in, &s, 30);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	sim_apply(&s, &d);
	s.full_scans = 13;
	s.pages_sharing = 150000;
	base_input(&in, &s, 40);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	CU_ASSERT_EQUAL(d.advisor_mode, -1);	/* off since adopted */
	sim_apply(&s, &d);
	CU_ASSERT_EQUAL(s.advisor_mode, 0);
	CU_ASSERT_EQUAL(s.pages_to_scan,
	    196608 * p.converge_sleep_ms / (p.converge_scan_time * 1000));
	CU_ASSERT_EQUAL(s.sleep_millisecs, p.converge_sleep_ms);
	CU_ASSERT(strstr(d.reason, "converging again") != NULL);
}

/*
 * Another process's merged pages vanish (host pages_sharing halves) while
 * the guests' own saving keeps growing: auto mode follows the guests and
 * keeps converging; it backs off once the guests' saving is flat.
 */
static void
test_decide_watches_guests(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	int64_t guests[] = { 0, 30000, 60000, 90000, 100000, 100500 };
	int64_t host[] = { 200000, 180000, 120000, 120000, 120000, 120000 };
	unsigned int i;

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	s.run = 1;
	s.advisor_mode = 1;
	for (i = 0; i < 6; i++) {
		s.full_scans = 10 + i;
		s.pages_sharing = host[i];
		s.pages_shared = host[i] / 4;
		base_input(&in, &s, 10 + 10 * i);
		in.guest_saving = guests[i];
		ksm_decide(&p, &c, &in, &d);
		sim_apply(&s, &d);
		if (i < 5)
			CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	}
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	CU_ASSERT(strstr(d.reason, "392 MiB") != NULL);	/* 100500 pages */
}

/* A full scan that takes minutes: the saving stops growing within it. */
static void
test_decide_stall_in_scan(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	unsigned int t, steady_at = 0;

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	s.run = 1;
	s.advisor_mode = 1;
	s.full_scans = 3;
	for (t = 10; t < 200; t++) {
		/* grows 1000 pages/s until t=60, then flat; no scan ends */
		s.pages_sharing = t < 60 ? (t - 10) * 1000 : 50000;
		base_input(&in, &s, t);
		ksm_decide(&p, &c, &in, &d);
		sim_apply(&s, &d);
		if (c.phase == KSM_PH_STEADY && steady_at == 0)
			steady_at = t;
	}
	/* not while growing, and within stall_time (+1 s) of the last growth */
	CU_ASSERT(steady_at >= 60);
	CU_ASSERT(steady_at <= 60 + p.stall_time + 1);
	CU_ASSERT_EQUAL(s.advisor_mode, 0);

	/* Nothing merged yet (the first scan only checksums): no back-off. */
	ksm_ctl_init(&c);
	s = recorded_idle();
	s.run = 1;
	s.advisor_mode = 1;
	for (t = 10; t < 200; t++) {
		base_input(&in, &s, t);
		ksm_decide(&p, &c, &in, &d);
		sim_apply(&s, &d);
		CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	}
}

/*
 * A kernel model for whole runs: ksmd goes through @scan pages a full scan
 * at pages_to_scan per sleep_millisecs (at most @max_rate a second: the
 * CPU it can get), and, as mm/ksm.c does, merges nothing in the first full
 * scan (it only records checksums) and the duplicates evenly during the
 * second, @final pages saved by its end.
 */
struct ksm_sim {
	struct ksm_sysfs s;
	uint64_t	 scan, final, max_rate;
	uint64_t	 done;		/* pages scanned since the start */
};

/*
 * A recorded run of the kernel's defaults (agent bench, BENCH_KSM_RECORD:
 * three guests with 160 MiB in common and other QEMUs on the host): per
 * second, the guests' saving, full_scans and pages_scanned.  Replayed by
 * pages scanned, it says what ksmd has merged after going through so many
 * pages, at whatever rate.
 */
#define REC_MAX	1024
static struct rec {
	double	 t;
	uint64_t saving, scans, pages;	/* pages from the first row */
} rec[REC_MAX];
static size_t nrec;

static void
rec_load(void)
{
	char path[PATH_MAX];
	unsigned long long sv, fs, ps, ps0 = 0;
	double t;
	FILE *f;

	snprintf(path, sizeof(path), "%s/series-stock.txt", datadir);
	f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	nrec = 0;
	while (nrec < REC_MAX &&
	    fscanf(f, "%lf %llu %llu %llu", &t, &sv, &fs, &ps) == 4) {
		if (nrec == 0)
			ps0 = ps;
		rec[nrec].t = t;
		rec[nrec].saving = sv;
		rec[nrec].scans = fs;
		rec[nrec].pages = ps - ps0;
		nrec++;
	}
	fclose(f);
	CU_ASSERT_FATAL(nrec > 100 && rec[nrec - 1].scans >= 3);
}

/* The recorded figures after @done pages; past the end, flat. */
static void
rec_at(uint64_t done, struct ksm_sysfs *s)
{
	const struct rec *last = &rec[nrec - 1];
	size_t i = 0;

	while (i + 1 < nrec && rec[i + 1].pages <= done)
		i++;
	s->pages_sharing = (int64_t)rec[i].saving;
	s->full_scans = (int64_t)rec[i].scans;
	if (done > last->pages)
		s->full_scans = (int64_t)(last->scans + (done - last->pages) /
		    (last->pages / last->scans));
}

static void
sim_second(struct ksm_sim *m)
{
	uint64_t rate = 0;

	if (m->s.run == 1 && m->s.sleep_millisecs > 0)
		rate = (uint64_t)m->s.pages_to_scan * 1000 /
		    (uint64_t)m->s.sleep_millisecs;
	if (rate > m->max_rate)
		rate = m->max_rate;
	m->done += rate;
	m->s.pages_scanned = (int64_t)m->done;
	if (m->scan == 0) {		/* replay the recording */
		rec_at(m->done, &m->s);
		m->s.pages_shared = m->s.pages_sharing / 3;
		return;
	}
	m->s.full_scans = (int64_t)(m->done / m->scan);
	if (m->done <= m->scan)
		m->s.pages_sharing = 0;
	else if (m->done >= 2 * m->scan)
		m->s.pages_sharing = (int64_t)m->final;
	else
		m->s.pages_sharing = (int64_t)(m->final * (m->done - m->scan) /
		    m->scan);
	m->s.pages_shared = m->s.pages_sharing / 3;
}

/*
 * The goal of auto mode on a host like the benchmark's (three guests of
 * 128k resident pages, other QEMUs making a full scan 1.2M pages, 200k
 * pages to merge): against the kernel's defaults (100 pages every 20 ms)
 * it must reach 90% of the saving at least 5 times sooner, and over four
 * hours scan (the CPU ksmd spends) at least 4 times fewer pages for the
 * same saving; it must converge again within a tick of a guest booting,
 * and never leave the kernel's accepted ranges.
 */
static void
test_decide_goal_model(void)
{
	const uint64_t scan = 1200000, final = 200000, hours = 4 * 3600;
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sim m, stock;
	uint64_t t, t90 = 0, stock_t90 = 0, at_boot = 0;
	unsigned int fast_after_boot = 0;

	ksm_params_default(&p);
	memset(&m, 0, sizeof(m));
	m.s = recorded_idle();
	m.scan = scan;
	m.final = final;
	m.max_rate = 200000;
	stock = m;
	stock.s.run = 1;		/* the kernel's defaults: 100, 20 ms */
	ksm_ctl_init(&c);
	for (t = 1; t <= hours; t++) {
		sim_second(&stock);
		if (stock_t90 == 0 && (uint64_t)stock.s.pages_sharing * 10 >=
		    final * 9)
			stock_t90 = t;
		sim_second(&m);
		base_input(&in, &m.s, t);
		in.guest_pages = 3 * 128000;
		in.nguests = t < 3 * 3600 ? 3 : 4;
		in.guest_saving = m.s.pages_sharing;
		ksm_decide(&p, &c, &in, &d);
		if (d.want_estimate) {
			/* ksm_tick(): the worker's estimate, a tick later */
			c.have_estimate = 1;
			c.last_estimate = t;
			c.est.saving_pages = final + final / 20;
		}
		sim_apply(&m.s, &d);
		CU_ASSERT(m.s.pages_to_scan >= 1 && m.s.sleep_millisecs >= 1);
		CU_ASSERT(m.s.sleep_millisecs <= 600000);
		if (t90 == 0 && (uint64_t)m.s.pages_sharing * 10 >= final * 9)
			t90 = t;
		if (t == 3 * 3600) {
			at_boot = m.done;
			/* A guest more: fast at once. */
			CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
			CU_ASSERT(strstr(d.reason, "4 guests") != NULL);
			fast_after_boot = (unsigned int)m.s.pages_to_scan;
		}
		if (t == 3 * 3600 - 1) {
			CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
			CU_ASSERT(c.backoff >= 1);	/* 7200 s a full scan */
		}
	}
	CU_ASSERT_EQUAL(m.s.run, 1);
	CU_ASSERT_EQUAL((uint64_t)m.s.pages_sharing, final);
	CU_ASSERT(t90 > 0 && stock_t90 > 0);
	CU_ASSERT(t90 * 5 <= stock_t90);
	/* Until the boot: the same saving for a quarter of the scanning. */
	CU_ASSERT(at_boot * 4 <= stock.done * 3 / 4);
	CU_ASSERT(fast_after_boot >= scan * p.converge_sleep_ms /
	    (p.converge_scan_time * 1000ULL) * 4 / 5);
	fprintf(stderr, "model: t90 %llu s (stock %llu s); pages scanned in 3 h "
	    "%llu (stock %llu)\n", (unsigned long long)t90,
	    (unsigned long long)stock_t90, (unsigned long long)at_boot,
	    (unsigned long long)(stock.done * 3 / 4));
}

/*
 * From ksmd already running at @t to steady: an estimate of 80000 pages
 * of which ksmd merges 60000 in its second full scan, four scans 5 s
 * apart (the last merged nothing: one back-off).  Returns the time.
 */
static uint64_t
to_steady(const struct ksm_params *p, struct ksm_ctl *c, struct ksm_sysfs *s,
    uint64_t t)
{
	struct ksm_input in;
	struct ksm_decision d;

	ksm_ctl_init(c);
	c->have_estimate = 1;
	c->last_estimate = t;
	c->est.saving_pages = 80000;	/* ksmd will merge 60000 of it */
	s->run = 1;
	s->full_scans = 0;
	s->pages_sharing = 0;
	base_input(&in, s, t);
	ksm_decide(p, c, &in, &d);	/* adopt */
	sim_apply(s, &d);
	for (s->full_scans = 1; s->full_scans <= 4; s->full_scans++) {
		s->pages_sharing = s->full_scans >= 2 ? 60000 : 0;
		base_input(&in, s, t += 5);
		ksm_decide(p, c, &in, &d);
		sim_apply(s, &d);
	}
	CU_ASSERT_EQUAL_FATAL(c->phase, KSM_PH_STEADY);
	return t;
}

/*
 * Steady, the guests write new duplicates: the periodic estimate finds
 * them and auto mode converges again; an estimate that promises what ksmd
 * could not merge before (the same gap) does not.
 */
static void
test_decide_steady_estimate(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	uint64_t t = 100;

	ksm_params_default(&p);
	t = to_steady(&p, &c, &s, t);
	/*
	 * Not before the interval, nor more often than a steady full scan:
	 * the last steady scan merged nothing, so that is twice
	 * steady_scan_time (one back-off).
	 */
	CU_ASSERT_EQUAL_FATAL(c.backoff, 1);
	s.full_scans = 4;	/* the loop's last increment: no scan since */
	CU_ASSERT(p.steady_scan_time > p.steady_estimate_interval);
	base_input(&in, &s, c.last_estimate + p.steady_estimate_interval);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	base_input(&in, &s, c.last_estimate + 2 * p.steady_scan_time - 1);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	/* An estimate that took 200 s: at most 1% of the time, 20000 s apart. */
	CU_ASSERT(2 * p.steady_scan_time < 20000);
	c.est.elapsed_ms = 200000;
	base_input(&in, &s, c.last_estimate + 19999);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	base_input(&in, &s, c.last_estimate + 20000);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 1);
	c.est.elapsed_ms = 1500;
	t = c.last_estimate + 2 * p.steady_scan_time;
	base_input(&in, &s, t);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 1);
	/* The same 80000 again: the 20000 gap is old, stay steady. */
	c.last_estimate = t;
	base_input(&in, &s, ++t);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	/* 64 MiB (16384 pages) more, less one page: still steady. */
	c.last_estimate = ++t;
	c.est.saving_pages = 80000 + 16383;
	base_input(&in, &s, t);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	/* 100 MiB more: converge, fast. */
	c.last_estimate = ++t;
	c.est.saving_pages = 80000 + 25600;
	base_input(&in, &s, t);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	CU_ASSERT(strstr(d.reason, "100 MiB more") != NULL);
	CU_ASSERT_EQUAL(d.sleep_millisecs, p.converge_sleep_ms);
	/* Looked at once: the next tick does not decide on it again. */
	base_input(&in, &s, ++t);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
}

/*
 * Steady, most merged pages are written or freed (measured: the guests'
 * saving fell from 767 to 1 MiB within a minute, and auto mode, a full
 * scan and an estimate 1800 s away, backed off further): an estimate at
 * once; when it finds the duplicates again, converge; when not, stay
 * steady without estimating again on every tick.
 */
static void
test_decide_steady_loss(void)
{
	struct ksm_params p;
	struct ksm_ctl c, c2;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle(), s2;
	uint64_t t;

	ksm_params_default(&p);
	t = to_steady(&p, &c, &s, 100);
	/* A small loss is no reason. */
	s.pages_sharing = 40000;
	base_input(&in, &s, t += 20);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	/* Lost all but 1000 pages, within the full scan. */
	s.pages_sharing = 1000;
	base_input(&in, &s, t += 20);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 1);
	CU_ASSERT(strstr(d.reason, "fell to 3 MiB") != NULL);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	c2 = c;
	s2 = s;
	/* The duplicates are there again: converge. */
	c.last_estimate = ++t;
	c.est.saving_pages = 80000;
	base_input(&in, &s, t);
	ksm_decide(&p, &c, &in, &d);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_CONVERGE);
	CU_ASSERT_EQUAL(d.sleep_millisecs, p.converge_sleep_ms);
	/* They are not: steady, and no estimate on the next ticks. */
	c2.last_estimate = t;
	c2.est.saving_pages = 1200;
	base_input(&in, &s2, t);
	ksm_decide(&p, &c2, &in, &d);
	CU_ASSERT_EQUAL(c2.phase, KSM_PH_STEADY);
	base_input(&in, &s2, t + 10);
	ksm_decide(&p, &c2, &in, &d);
	CU_ASSERT_EQUAL(d.want_estimate, 0);
	CU_ASSERT_EQUAL(c2.phase, KSM_PH_STEADY);
}

/*
 * The recorded run of the defaults replayed at auto mode's rates (ksmd
 * getting at most 100k pages/s): the saving the defaults had at 338 s
 * (90%) must come at least 5 times sooner, auto mode must go steady once
 * the recording stops growing, and over an hour scan at most a quarter of
 * the pages the defaults scan (their recorded rate, 3390 pages/s).
 */
static void
test_decide_recorded_series(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sim m;
	const struct rec *last;
	uint64_t t, t90 = 0, stock_t90 = 0, steady_at = 0;
	double stock_rate;
	size_t i;

	rec_load();
	last = &rec[nrec - 1];
	for (i = 0; i < nrec && !stock_t90; i++)
		if (rec[i].saving * 10 >= last->saving * 9)
			stock_t90 = (uint64_t)rec[i].t;
	stock_rate = (double)last->pages / (last->t - rec[0].t);
	ksm_params_default(&p);
	memset(&m, 0, sizeof(m));
	m.s = recorded_idle();
	m.max_rate = 100000;
	ksm_ctl_init(&c);
	for (t = 1; t <= 3600; t++) {
		sim_second(&m);
		base_input(&in, &m.s, t);
		in.guest_pages = 1110 * 256;	/* the guests' RSS, recorded */
		in.nguests = 3;
		in.guest_saving = m.s.pages_sharing;
		ksm_decide(&p, &c, &in, &d);
		if (d.want_estimate) {
			c.have_estimate = 1;
			c.last_estimate = t;
			c.est.saving_pages = 795 * 256;	/* recorded */
		}
		sim_apply(&m.s, &d);
		if (!t90 && (uint64_t)m.s.pages_sharing * 10 >= last->saving * 9)
			t90 = t;
		if (!steady_at && c.phase == KSM_PH_STEADY)
			steady_at = t;
	}
	fprintf(stderr, "recorded: t90 %llu s (defaults %llu s), steady at %llu s, "
	    "%llu pages scanned in 1 h (defaults %.0f)\n",
	    (unsigned long long)t90, (unsigned long long)stock_t90,
	    (unsigned long long)steady_at, (unsigned long long)m.done,
	    stock_rate * 3600);
	CU_ASSERT(stock_t90 > 300);
	CU_ASSERT(t90 > 0 && t90 * 5 <= stock_t90);
	CU_ASSERT(steady_at >= t90 && steady_at < stock_t90);
	CU_ASSERT_EQUAL(c.phase, KSM_PH_STEADY);
	CU_ASSERT((double)m.done * 4 <= stock_rate * 3600);
	/* Steady merges the last few pages slowly: 98% within the hour. */
	CU_ASSERT((uint64_t)m.s.pages_sharing * 100 >= last->saving * 98);
}

static void
test_decide_absurd(void)
{
	struct ksm_params p;
	struct ksm_ctl c;
	struct ksm_input in;
	struct ksm_decision d;
	struct ksm_sysfs s = recorded_idle();
	unsigned int t;

	ksm_params_default(&p);
	ksm_ctl_init(&c);
	/* Every figure absent or absurd: no crash, no nonsense writes. */
	memset(&s, 0xff, sizeof(s));		/* all -1 */
	s.run = 1;
	for (t = 1; t < 200; t++) {
		s.full_scans = (t % 3 == 0) ? -1 : (int64_t)(xr() % 5);
		s.pages_sharing = (int64_t)(xr() % 3) - 1;
		s.ksm_zero_pages = INT64_MAX / 4;
		base_input(&in, &s, t);
		in.guest_pages = xr();
		ksm_decide(&p, &c, &in, &d);
		CU_ASSERT(d.pages_to_scan == -1 ||
		    (d.pages_to_scan >= 100 && d.pages_to_scan <= 20000));
		CU_ASSERT(d.run == -1 || d.run == 0 || d.run == 1);
		CU_ASSERT(d.advisor_mode == -1);	/* absent: never written */
		CU_ASSERT(d.sleep_millisecs == -1);	/* absent: never written */
	}
}

/* ------------------------------------------------------------------ */
/* ksm_init / set_mode / free on a scratch copy of the recorded sysfs */

/*
 * The scratch directory, $TMPDIR/memcoop-test-ksm.XXXXXX: one at a time,
 * removed at the end of the test that made it or, should a fatal
 * assertion cut that test short, at exit.
 */
static char scratch[PATH_MAX];

static int
scratch_rm_one(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove the scratch directory, if there is one; 0 or -1. */
static int
scratch_remove(void)
{
	int rc;

	if (scratch[0] == '\0')
		return 0;
	rc = nftw(scratch, scratch_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	scratch[0] = '\0';
	return rc;
}

static const char *
scratch_make(void)
{
	const char *tmp = getenv("TMPDIR");

	(void)scratch_remove();		/* a test cut short left it */
	snprintf(scratch, sizeof(scratch), "%s/memcoop-test-ksm.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(scratch) == NULL) {
		scratch[0] = '\0';
		return NULL;
	}
	return scratch;
}

static void
scratch_at_exit(void)
{
	(void)scratch_remove();
}

static void
copy_dir(const char *from, const char *to)
{
	char a[2 * PATH_MAX], b[2 * PATH_MAX], buf[256];
	struct dirent *de;
	DIR *dp;

	CU_ASSERT_EQUAL_FATAL(mkdir(to, 0700), 0);
	dp = opendir(from);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dp);
	while ((de = readdir(dp)) != NULL) {
		FILE *in, *out;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
		in = fopen(a, "r");
		out = fopen(b, "w");
		CU_ASSERT_FATAL(in != NULL && out != NULL);
		n = fread(buf, 1, sizeof(buf), in);
		fwrite(buf, 1, n, out);
		fclose(in);
		fclose(out);
	}
	closedir(dp);
}

static int64_t
scratch_num(const char *dir, const char *name)
{
	char path[PATH_MAX], buf[64] = "";
	int64_t v = -99;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (f == NULL)
		return -99;
	if (fgets(buf, sizeof(buf), f) == NULL || ksm_parse_value(buf, &v) == -1)
		v = -98;
	fclose(f);
	return v;
}

static void
test_state_restore(void)
{
	char src[PATH_MAX], sub[PATH_MAX];
	const char *dir;
	struct ksm_state *k;
	struct ksm_status st;

	dir = scratch_make();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	snprintf(src, sizeof(src), "%s/sysfs-idle", datadir);
	snprintf(sub, sizeof(sub), "%s/ksm", dir);
	copy_dir(src, sub);

	CU_ASSERT_EQUAL(ksm_init(&k, "/nonexistent", KSM_AUTO), -1);
	CU_ASSERT_EQUAL(ksm_init(&k, sub, (enum ksm_mode)7), -1);
	CU_ASSERT_EQUAL_FATAL(ksm_init(&k, sub, KSM_OFF), 0);
	ksm_tick(k, NULL, 0, NULL);
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 0);
	CU_ASSERT_EQUAL(ksm_set_mode(k, KSM_ON), 0);
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 1);
	CU_ASSERT_EQUAL(ksm_get_status(k, &st), 0);
	CU_ASSERT_EQUAL(st.mode, KSM_ON);
	CU_ASSERT_EQUAL(st.run, 1);
	CU_ASSERT_EQUAL(st.advisor, 1);
	CU_ASSERT(strstr(st.reason, "mode on") != NULL);
	CU_ASSERT_EQUAL(ksm_set_mode(k, (enum ksm_mode)-1), -1);
	/* Auto with no guests: nothing changes, no estimate. */
	CU_ASSERT_EQUAL(ksm_set_mode(k, KSM_AUTO), 0);
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 1);	/* adopted as running */
	ksm_free(k);
	/* Everything written is back as recorded. */
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 0);
	CU_ASSERT_EQUAL(scratch_num(sub, "pages_to_scan"), 100);
	CU_ASSERT_EQUAL(scratch_num(sub, "sleep_millisecs"), 20);
	CU_ASSERT_EQUAL(scratch_num(sub, "advisor_target_scan_time"), 200);
	CU_ASSERT_EQUAL(scratch_num(sub, "advisor_max_cpu"), 70);
	ksm_free(NULL);
	CU_ASSERT_EQUAL(scratch_remove(), 0);
}

/* Write @text to @dir/@name. */
static void
scratch_put(const char *dir, const char *name, const char *text)
{
	char path[2 * PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

/*
 * The persisted originals (a previous instance died): use_zero_pages is
 * among them and put back; a file of an older version, without it, is
 * still taken (and use_zero_pages left as found).
 */
static void
test_state_orig_zero_pages(void)
{
	static const char base[] = "run 0\npages_to_scan 100\n"
	    "sleep_millisecs 20\nadvisor_mode 0\n"
	    "advisor_target_scan_time 200\nadvisor_max_cpu 70\n";
	char src[PATH_MAX], sub[PATH_MAX], orig[PATH_MAX], text[512];
	struct ksm_state *k;
	const char *dir;

	dir = scratch_make();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	snprintf(src, sizeof(src), "%s/sysfs-idle", datadir);
	snprintf(sub, sizeof(sub), "%s/ksm", dir);
	snprintf(orig, sizeof(orig), "%s/ksm-orig", dir);
	copy_dir(src, sub);

	/* A previous instance set use_zero_pages and ksmd running. */
	scratch_put(sub, "use_zero_pages", "1\n");
	scratch_put(sub, "run", "1\n");
	snprintf(text, sizeof(text), "%suse_zero_pages 0\n", base);
	scratch_put(dir, "ksm-orig", text);
	CU_ASSERT_EQUAL_FATAL(ksm_init_saved(&k, sub, KSM_OFF, orig), 0);
	ksm_free(k);
	CU_ASSERT_EQUAL(scratch_num(sub, "use_zero_pages"), 0);
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 0);
	CU_ASSERT_EQUAL(access(orig, F_OK), -1);	/* removed once restored */

	/* An older version's file: no use_zero_pages line. */
	scratch_put(sub, "use_zero_pages", "1\n");
	scratch_put(sub, "run", "1\n");
	scratch_put(dir, "ksm-orig", base);
	CU_ASSERT_EQUAL_FATAL(ksm_init_saved(&k, sub, KSM_ON, orig), 0);
	ksm_free(k);
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 0);	/* from the file */
	CU_ASSERT_EQUAL(scratch_num(sub, "use_zero_pages"), 1);
	CU_ASSERT_EQUAL(scratch_remove(), 0);
}

/*
 * The whole auto path on this process as the "guest": 48 MiB of private
 * anonymous memory holding 6144 contents twice each (24 MiB would merge).
 * The worker thread's estimate must find about that, and auto mode must
 * then start (scratch) ksmd.  Like QEMU's guest RAM, the memory is marked
 * mergeable, so that the estimate reads it and nothing else of this
 * process: without that it falls back to every big anonymous mapping,
 * which under ASan includes the 14 TiB shadow (an 18 s pagemap walk whose
 * redzone patterns add megabytes of their own).  Without KSM in the
 * kernel the fallback is all there is, hence the generous deadline.
 */
static void
test_auto_estimate_self(void)
{
	char src[PATH_MAX], sub[PATH_MAX];
	const char *dir;
	struct ksm_params kp;
	struct ksm_status st;
	struct ksm_state *k;
	unsigned char *mem;
	size_t i, pages = 12288;
	pid_t self = getpid();
	int tries;

	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(mem != MAP_FAILED);
	for (i = 0; i < pages; i++)
		fill_page(mem + i * 4096, 7000000 + i % (pages / 2));
	(void)madvise(mem, pages * 4096, MADV_MERGEABLE);

	dir = scratch_make();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	snprintf(src, sizeof(src), "%s/sysfs-idle", datadir);
	snprintf(sub, sizeof(sub), "%s/ksm", dir);
	copy_dir(src, sub);
	CU_ASSERT_EQUAL_FATAL(ksm_init(&k, sub, KSM_AUTO), 0);
	ksm_params_default(&kp);
	kp.on_bytes = 16ULL << 20;
	ksm_set_params(k, &kp);
	for (tries = 0; tries < 1200; tries++) {	/* 60 s */
		ksm_tick(k, &self, 1, NULL);
		ksm_get_status(k, &st);
		if (st.estimate_bytes > 0)
			break;
		usleep(50000);
	}
	CU_ASSERT(st.estimate_bytes > (18ULL << 20));
	CU_ASSERT(st.estimate_bytes < (30ULL << 20));
	CU_ASSERT_EQUAL(st.estimate_cross_bytes, 0);
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 1);
	CU_ASSERT(strstr(st.reason, "starting ksmd") != NULL);
	ksm_free(k);
	CU_ASSERT_EQUAL(scratch_num(sub, "run"), 0);
	munmap(mem, pages * 4096);
	CU_ASSERT_EQUAL(scratch_remove(), 0);
}

static void
test_guest_saving_self(void)
{
	/* This process is no KSM user: no saving; a dead pid: none either. */
	CU_ASSERT_EQUAL(ksm_guest_saving_bytes_at(NULL, getpid()), 0);
	CU_ASSERT_EQUAL(ksm_guest_saving_bytes_at(NULL, 0), 0);
	CU_ASSERT_EQUAL(ksm_guest_saving_bytes_at(NULL, -5), 0);
	CU_ASSERT_EQUAL(ksm_guest_saving_bytes_at(NULL, INT_MAX), 0);
}

int
main(int argc, char **argv)
{
	CU_pSuite s;
	unsigned int fails;

	datadir = argc > 1 ? argv[1] : KSM_TEST_DATADIR;
	ksm_log_hook = quiet;
	atexit(scratch_at_exit);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("ksm", NULL, NULL);
	CU_add_test(s, "parse_value", test_parse_value);
	CU_add_test(s, "parse_advisor", test_parse_advisor);
	CU_add_test(s, "read_sysfs_recorded", test_read_sysfs_recorded);
	CU_add_test(s, "proc_stat", test_proc_stat);
	CU_add_test(s, "smaps_recorded", test_smaps_recorded);
	CU_add_test(s, "smaps_fallback_and_hostile", test_smaps_fallback_and_hostile);
	CU_add_test(s, "attribution", test_attribution);
	CU_add_test(s, "hash", test_hash);
	CU_add_test(s, "estimator_synthetic", test_estimator_synthetic);
	CU_add_test(s, "decide_modes", test_decide_modes);
	CU_add_test(s, "decide_auto_start", test_decide_auto_start);
	CU_add_test(s, "decide_zero_pages", test_decide_zero_pages);
	CU_add_test(s, "tick_quiet", test_tick_quiet);
	CU_add_test(s, "decide_steady_no_churn", test_decide_steady_no_churn);
	CU_add_test(s, "decide_reach_mid_scan", test_decide_reach_mid_scan);
	CU_add_test(s, "decide_no_advisor", test_decide_no_advisor);
	CU_add_test(s, "decide_series_no_flap", test_decide_series_no_flap);
	CU_add_test(s, "decide_stop_and_regrow", test_decide_stop_and_regrow);
	CU_add_test(s, "decide_watches_guests", test_decide_watches_guests);
	CU_add_test(s, "decide_stall_in_scan", test_decide_stall_in_scan);
	CU_add_test(s, "decide_goal_model", test_decide_goal_model);
	CU_add_test(s, "decide_steady_estimate", test_decide_steady_estimate);
	CU_add_test(s, "decide_steady_loss", test_decide_steady_loss);
	CU_add_test(s, "decide_recorded_series", test_decide_recorded_series);
	CU_add_test(s, "decide_absurd", test_decide_absurd);
	CU_add_test(s, "state_restore", test_state_restore);
	CU_add_test(s, "state_orig_zero_pages", test_state_orig_zero_pages);
	CU_add_test(s, "guest_saving_self", test_guest_saving_self);
	CU_add_test(s, "auto_estimate_self", test_auto_estimate_self);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failure_records();	/* suite set-up failures too */
	CU_cleanup_registry();
	return fails > 255 ? 255 : (int)fails;
}
