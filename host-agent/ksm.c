/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ksm.c: KSM control for memcoopd (off, on, auto).  See ksm.h.
 *
 * The first half of this file is pure (parsers, ksm_decide()); the second
 * half reads and writes sysfs.  Every sysfs file this code writes is
 * remembered with the value it had at ksm_init() and written back by
 * ksm_free(), in an order the kernel accepts (advisor_mode first, since
 * changing it resets pages_to_scan, and run last).
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "ksm.h"

static void
ksm_log_stderr(int prio, const char *fmt, va_list ap)
{
	(void)prio;
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void (*ksm_log_hook)(int, const char *, va_list) = ksm_log_stderr;

static void __attribute__((format(printf, 2, 3)))
ksm_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ksm_log_hook(prio, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Pure functions */

void
ksm_params_default(struct ksm_params *p)
{
	memset(p, 0, sizeof(*p));
	p->on_bytes = 64ULL << 20;
	p->off_bytes = 32ULL << 20;
	p->estimate_interval = 60;
	p->converge_scan_time = 5;
	p->converge_max_pages = 5000;	/* 250k pages/s: half a core at 2 us/page */
	p->steady_scan_time = 7200;
	p->steady_max_scan_time = 28800;
	p->steady_estimate_interval = 600;
	p->converge_sleep_ms = 20;
	p->steady_sleep_ms = 200;
	p->reach_permille = 900;
	p->stall_permille = 20;
	p->regrow_permille = 100;
	p->stall_time = 30;
	p->min_on_time = 60;
	p->sample_shift = 6;
	p->steady_tick = 60;
}

static const char *const mode_names[] = { "off", "on", "auto" };
static const char *const phase_names[] = { "idle", "converging", "steady" };

const char *
ksm_mode_name(enum ksm_mode m)
{
	if ((unsigned int)m >= sizeof(mode_names) / sizeof(mode_names[0]))
		return "?";
	return mode_names[m];
}

int
ksm_mode_parse(const char *s, enum ksm_mode *m)
{
	unsigned int i;

	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*m = (enum ksm_mode)i;
			return 0;
		}
	}
	return -1;
}

const char *
ksm_phase_name(enum ksm_phase p)
{
	if ((unsigned int)p >= sizeof(phase_names) / sizeof(phase_names[0]))
		return "?";
	return phase_names[p];
}

int
ksm_parse_value(const char *text, int64_t *out)
{
	const char *p = text;
	char *end;
	long long v;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '-' && !isdigit((unsigned char)*p))
		return -1;
	errno = 0;
	v = strtoll(p, &end, 10);
	if (errno != 0 || end == p)
		return -1;
	while (*end == ' ' || *end == '\t' || *end == '\n')
		end++;
	if (*end != '\0')
		return -1;
	*out = v;
	return 0;
}

int
ksm_parse_advisor_mode(const char *text)
{
	const char *open, *close;
	size_t len;

	open = strchr(text, '[');
	if (open == NULL)
		return -1;
	close = strchr(open, ']');
	if (close == NULL || strchr(close + 1, '[') != NULL)
		return -1;
	len = (size_t)(close - open - 1);
	if (len == 4 && strncmp(open + 1, "none", 4) == 0)
		return 0;
	if (len == 9 && strncmp(open + 1, "scan-time", 9) == 0)
		return 1;
	return -1;
}

static int
parse_yesno(const char *v)
{
	while (*v == ' ')
		v++;
	if (strncmp(v, "yes", 3) == 0)
		return 1;
	if (strncmp(v, "no", 2) == 0)
		return 0;
	return -1;
}

int
ksm_parse_proc_stat(const char *text, struct ksm_proc_stat *st)
{
	const char *line = text, *nl;
	char key[32], val[64];
	size_t klen, vlen;
	int64_t v;
	int known = 0;

	st->rmap_items = st->zero_pages = st->merging_pages = -1;
	st->process_profit = -1;
	st->merge_any = st->mergeable = -1;

	for (; *line != '\0'; line = nl + 1) {
		const char *sp;

		nl = strchr(line, '\n');
		if (nl == NULL)
			nl = line + strlen(line);
		sp = line;
		while (sp < nl && *sp != ' ' && *sp != ':')
			sp++;
		klen = (size_t)(sp - line);
		if (sp < nl && *sp == ':')
			sp++;
		while (sp < nl && *sp == ' ')
			sp++;
		vlen = (size_t)(nl - sp);
		if (klen == 0 || klen >= sizeof(key) || vlen >= sizeof(val)) {
			if (*nl == '\0')
				break;
			continue;
		}
		memcpy(key, line, klen);
		key[klen] = '\0';
		memcpy(val, sp, vlen);
		val[vlen] = '\0';

		if (strcmp(key, "ksm_merge_any") == 0) {
			st->merge_any = parse_yesno(val);
			known++;
		} else if (strcmp(key, "ksm_mergeable") == 0) {
			st->mergeable = parse_yesno(val);
			known++;
		} else if (ksm_parse_value(val, &v) == 0) {
			if (strcmp(key, "ksm_rmap_items") == 0)
				st->rmap_items = v, known++;
			else if (strcmp(key, "ksm_zero_pages") == 0)
				st->zero_pages = v, known++;
			else if (strcmp(key, "ksm_merging_pages") == 0)
				st->merging_pages = v, known++;
			else if (strcmp(key, "ksm_process_profit") == 0)
				st->process_profit = v, known++;
		}
		if (*nl == '\0')
			break;
	}
	return known > 0 ? 0 : -1;
}

/* "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/x": a header? */
static int
smaps_header(const char *line, const char *nl, uint64_t *start, uint64_t *end,
    char perms[5], int *anon)
{
	unsigned long long s, e, off, ino;
	char dev[16];
	int n = 0;
	const char *p;

	if (sscanf(line, "%llx-%llx %4s %llx %15s %llu%n", &s, &e, perms, &off,
	    dev, &ino, &n) != 6 || n <= 0 || line + n > nl)
		return 0;
	if (e <= s)
		return -1;
	p = line + n;
	while (p < nl && *p == ' ')
		p++;
	*start = s;
	*end = e;
	*anon = (ino == 0 && p == nl);
	return 1;
}

int
ksm_parse_smaps(const char *text, uint64_t min_bytes, struct ksm_region *out,
    size_t max)
{
	const char *line, *nl;
	uint64_t s = 0, e = 0;
	char perms[5] = "";
	int anon = 0, have = 0, r, pass;
	size_t n = 0, nmg = 0;

	/*
	 * Two passes: first the mergeable mappings (QEMU madvises guest RAM
	 * MADV_MERGEABLE unless mem-merge=off); if there are none, the big
	 * private anonymous read-write mappings.
	 */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1 && nmg > 0)
			break;
		have = 0;
		for (line = text; *line != '\0'; line = nl + 1) {
			nl = strchr(line, '\n');
			if (nl == NULL)
				nl = line + strlen(line);
			r = smaps_header(line, nl, &s, &e, perms, &anon);
			if (r < 0)
				return -1;
			if (r == 1) {
				have = 1;
				if (pass == 1 && anon && e - s >= min_bytes &&
				    perms[0] == 'r' && perms[1] == 'w' &&
				    perms[3] == 'p' && n < max) {
					out[n].start = s;
					out[n].end = e;
					out[n].mergeable = 0;
					n++;
				}
			} else if (pass == 0 && have &&
			    strncmp(line, "VmFlags:", 8) == 0) {
				const char *f = line + 8;
				int mg = 0;

				while (f + 2 <= nl) {
					while (f < nl && *f == ' ')
						f++;
					if (f + 2 <= nl && f[0] == 'm' &&
					    f[1] == 'g' &&
					    (f + 2 == nl || f[2] == ' '))
						mg = 1;
					while (f < nl && *f != ' ')
						f++;
				}
				if (mg && e - s >= min_bytes && n < max) {
					out[n].start = s;
					out[n].end = e;
					out[n].mergeable = 1;
					n++;
					nmg++;
				}
				have = 0;
			}
			if (*nl == '\0')
				break;
		}
	}
	return (int)n;
}

uint64_t
ksm_attribute_saving(const struct ksm_proc_stat *st, const struct ksm_sysfs *sys,
    long page_size)
{
	uint64_t bytes = 0;

	if (st->merging_pages > 0 && sys->pages_shared >= 0 &&
	    sys->pages_sharing > 0) {
		/*
		 * pages_shared KSM pages back pages_shared + pages_sharing
		 * mappings, so each merging page saves sharing/(shared+sharing)
		 * of a page.  Summed over all processes this is pages_sharing.
		 */
		unsigned __int128 t = (unsigned __int128)st->merging_pages *
		    (uint64_t)sys->pages_sharing;

		t /= (uint64_t)(sys->pages_shared + sys->pages_sharing);
		bytes = (uint64_t)t * (uint64_t)page_size;
	}
	if (st->zero_pages > 0)
		bytes += (uint64_t)st->zero_pages * (uint64_t)page_size;
	return bytes;
}

void
ksm_ctl_init(struct ksm_ctl *c)
{
	memset(c, 0, sizeof(*c));
	c->phase = KSM_PH_IDLE;
	c->scan_mark = -1;
	c->sharing_mark = -1;
	c->trust_permille = 1000;
}

static int64_t
sys_saving_pages(const struct ksm_sysfs *s)
{
	int64_t v = s->pages_sharing > 0 ? s->pages_sharing : 0;

	if (s->ksm_zero_pages > 0)
		v += s->ksm_zero_pages;
	return v;
}

/* Forget the changes decided so far (a phase change decides anew). */
static void
d_reset(struct ksm_decision *d)
{
	d->run = -1;
	d->pages_to_scan = d->sleep_millisecs = -1;
	d->advisor_mode = d->advisor_target_scan_time = d->advisor_max_cpu = -1;
	d->use_zero_pages = -1;
}

static void __attribute__((format(printf, 2, 3)))
reason(struct ksm_decision *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

#define MIB_OF(pages, ps)	((unsigned long long)(pages) * (unsigned long long)(ps) >> 20)

/*
 * The slowest pages_to_scan steady mode sets; slower still is a longer
 * sleep.  Few big batches rather than many small ones: measured (host
 * 6.18, 1 GiB half merged, 2500 pages a minute either way), ksmd spent
 * 0.70 us a page in batches of 100 every 2.4 s and 0.47 us in batches of
 * 2000 every 48 s.  A write to sleep_millisecs wakes ksmd (Linux 5.0+),
 * so the long sleep does not delay going fast again; the cap is only a
 * bound.
 */
#define STEADY_MIN_PAGES	2000
#define STEADY_MAX_SLEEP_MS	600000

/* Pages ksmd goes through in a full scan: the guests', or more if measured. */
static uint64_t
scan_size(const struct ksm_ctl *c, const struct ksm_input *in)
{
	return c->scan_pages > in->guest_pages ? c->scan_pages : in->guest_pages;
}

/* Steady full-scan time after @c->backoff doublings, capped. */
static uint64_t
steady_time(const struct ksm_params *p, const struct ksm_ctl *c)
{
	uint64_t t = p->steady_scan_time > 0 ? p->steady_scan_time : 1;
	unsigned int i;

	for (i = 0; i < c->backoff && t < p->steady_max_scan_time; i++)
		t *= 2;
	return t > p->steady_max_scan_time && p->steady_max_scan_time > 0 ?
	    p->steady_max_scan_time : t;
}

/* Is the setting @have (>= 0) more than 20% away from @want? */
static int
off_a_fifth(int64_t have, uint64_t want)
{
	return (uint64_t)have * 5 < want * 4 || (uint64_t)have * 5 > want * 6;
}

/*
 * Scan settings for a phase: a pages_to_scan (and sleep) that covers what
 * ksmd scans (scan_size()) in the phase's full-scan time.  Converging:
 * converge_scan_time at converge_sleep_ms, at most converge_max_pages a
 * wake-up.  Steady: steady_time() at steady_sleep_ms, and below
 * STEADY_MIN_PAGES a wake-up a longer sleep instead.  The advisor is
 * switched off (it re-tunes only once per full scan and smooths its steps:
 * measured, it kept the fast rate for minutes after converging); that makes
 * the kernel reset pages_to_scan, so pages_to_scan is then always written.
 * Only differences from the sysfs figures are set, and only where
 * pages_to_scan or the sleep is not within 20% of what it should be: the
 * guests' RSS moves them a little every tick, and a write to
 * sleep_millisecs wakes ksmd for a batch (no churn on small changes).
 */
static void
tune(const struct ksm_params *p, const struct ksm_ctl *c,
    const struct ksm_input *in, int fast, struct ksm_decision *d)
{
	const struct ksm_sysfs *s = &in->sys;
	uint64_t pages = scan_size(c, in);
	uint64_t scan_ms = (fast ? (uint64_t)p->converge_scan_time :
	    steady_time(p, c)) * 1000;
	uint64_t sleep_ms = fast ? p->converge_sleep_ms : p->steady_sleep_ms;
	uint64_t want;
	int force = 0;

	if (sleep_ms == 0)
		sleep_ms = 1;
	if (scan_ms == 0)
		scan_ms = 1000;
	if (pages == 0)
		want = fast ? 1000 : STEADY_MIN_PAGES;
	else				/* 128 bits: absurd figures reach here */
		want = (uint64_t)((unsigned __int128)pages * sleep_ms / scan_ms);
	if (fast) {
		if (want > p->converge_max_pages)
			want = p->converge_max_pages;
		if (want < 100)
			want = 100;
	} else if (want < STEADY_MIN_PAGES) {
		/* Slower than the slowest rate: sleep longer between wake-ups. */
		sleep_ms = pages > 0 ? (uint64_t)((unsigned __int128)
		    STEADY_MIN_PAGES * scan_ms / pages) : sleep_ms;
		if (sleep_ms < p->steady_sleep_ms)
			sleep_ms = p->steady_sleep_ms;
		if (sleep_ms > STEADY_MAX_SLEEP_MS)
			sleep_ms = STEADY_MAX_SLEEP_MS;
		want = STEADY_MIN_PAGES;
	}
	if (s->sleep_millisecs >= 0 && off_a_fifth(s->sleep_millisecs, sleep_ms))
		d->sleep_millisecs = (int64_t)sleep_ms;
	if (s->advisor_mode == 1) {
		d->advisor_mode = 0;
		force = 1;
	}
	if (s->pages_to_scan >= 0 &&
	    (force || off_a_fifth(s->pages_to_scan, want)))
		d->pages_to_scan = (int64_t)want;
}

/*
 * The saving auto mode watches: the guests' own when known, since the
 * host-wide figure also moves when other processes merge or exit.
 */
static int64_t
watched_saving(const struct ksm_input *in)
{
	if (in->guest_saving >= 0)
		return in->guest_saving;
	return sys_saving_pages(&in->sys);
}


/*
 * @mark * @permille / 1000 without overflow for any figures (absurd sysfs
 * values reach here): split @mark so no product exceeds 64 bits.
 */
static int64_t
grow_allowance(int64_t mark, unsigned int permille)
{
	uint64_t m = mark > 0 ? (uint64_t)mark : 0;
	uint64_t r = m / 1000 * permille + m % 1000 * permille / 1000;

	return r > INT64_MAX ? INT64_MAX : (int64_t)r;
}

/* The estimate as far as it is trusted, pages; -1 without one. */
static int64_t
trusted_estimate(const struct ksm_ctl *c)
{
	if (!c->have_estimate || c->est.saving_pages > INT64_MAX)
		return -1;
	return grow_allowance((int64_t)c->est.saving_pages, c->trust_permille);
}

static void
enter(struct ksm_ctl *c, const struct ksm_input *in, enum ksm_phase ph)
{
	c->phase = ph;
	c->phase_since = in->now;
	c->scan_mark = in->sys.full_scans;
	c->sharing_mark = watched_saving(in);
	c->stalled = 0;
	c->low = 0;
	c->grow_mark = c->sharing_mark;
	c->grow_time = in->now;
	c->nguests_mark = in->nguests;
	c->scanned_mark = in->sys.pages_scanned;
	c->est_checked = c->last_estimate;
	if (ph == KSM_PH_STEADY) {
		int64_t est = trusted_estimate(c);

		c->guest_pages_mark = in->guest_pages;
		c->gap_mark = est > c->sharing_mark ? est - c->sharing_mark : 0;
	} else {
		c->backoff = 0;
	}
}

/*
 * Is most of the estimated saving zero pages?  Then they had better be
 * merged with the kernel's zero page (use_zero_pages): no stable tree
 * search, no chain of KSM copies max_page_sharing apart, not scanned again.
 */
static int
zero_pages_pay(const struct ksm_ctl *c, const struct ksm_input *in)
{
	return in->sys.use_zero_pages == 0 && c->have_estimate &&
	    c->est.saving_pages > 0 && c->est.zero_pages >= c->est.saving_pages / 2;
}

/* Go to running phase @ph now: its scan settings replace what was decided. */
static void
go(const struct ksm_params *p, struct ksm_ctl *c, const struct ksm_input *in,
    enum ksm_phase ph, struct ksm_decision *d)
{
	enter(c, in, ph);
	d_reset(d);
	d->run = in->sys.run != 1 ? 1 : -1;
	if (ph == KSM_PH_CONVERGE && zero_pages_pay(c, in))
		d->use_zero_pages = 1;
	tune(p, c, in, ph == KSM_PH_CONVERGE, d);
}

/* Has the saving reached reach_permille of the (trusted) estimate? */
static int
reached_estimate(const struct ksm_params *p, const struct ksm_ctl *c,
    int64_t saving)
{
	int64_t want = grow_allowance(trusted_estimate(c), p->reach_permille);

	return p->reach_permille > 0 && want > 0 && saving >= want;
}

/*
 * Steady: a new estimate that finds at least on_bytes more to merge than
 * the estimate did when auto mode went steady (what the estimate promises
 * but ksmd cannot merge is not new)?  Each estimate is looked at once.
 */
static int
estimate_grew(const struct ksm_params *p, struct ksm_ctl *c, int64_t saving,
    long ps, int64_t *more)
{
	int64_t est = trusted_estimate(c);

	if (est < 0 || c->last_estimate <= c->est_checked)
		return 0;
	c->est_checked = c->last_estimate;
	*more = est - saving - c->gap_mark;
	return *more > 0 && (uint64_t)*more >= p->on_bytes / (uint64_t)ps;
}

/*
 * ksm_decide - what auto (or on/off) mode changes in KSM this tick.
 * @p: tunables; @c: auto mode's state, updated; @in: this tick's figures;
 * @d: the changes (fields left at -1 stay as they are) and the reason.
 *
 * Idle: estimate every estimate_interval seconds; start ksmd when the
 * estimate is at least on_bytes.  Converging: fast scan (tune()); after
 * each full scan (from the second on: the first only fills the unstable
 * tree) compare the saving with the previous scan; when it grew less than
 * stall_permille, or has reached reach_permille of the estimate, or grew
 * less than stall_permille in stall_time seconds, go steady.  Steady: a
 * slow scan whose full-scan time doubles after each scan that grew less
 * than stall_permille, up to steady_max_scan_time, and an estimate every
 * steady_estimate_interval seconds or steady full-scan time, whichever is
 * longer; back to converging when the saving
 * grows again by regrow_permille in a scan, a guest was added, the guests'
 * RAM grew by a quarter, or an estimate finds on_bytes more to merge than
 * there was on going steady; an estimate at once when the saving fell
 * by half (and by on_bytes) since going steady.  Either running phase
 * stops ksmd when
 * the saving stayed below off_bytes for two full scans, not before
 * min_on_time.  off_bytes < on_bytes is the hysteresis.
 */
void
ksm_decide(const struct ksm_params *p, struct ksm_ctl *c,
    const struct ksm_input *in, struct ksm_decision *d)
{
	const struct ksm_sysfs *s = &in->sys;
	long ps = in->page_size > 0 ? in->page_size : 4096;
	int64_t saving = watched_saving(in);
	uint64_t est_bytes;

	d_reset(d);
	d->want_estimate = 0;
	d->changed = 0;
	d->reason[0] = '\0';

	switch (in->mode) {
	case KSM_OFF:
		c->phase = KSM_PH_IDLE;
		if (s->run != 0) {
			d->run = 0;
			reason(d, "mode off: stopping ksmd");
		}
		goto out;
	case KSM_ON:
		if (s->run != 1) {
			d->run = 1;
			reason(d, "mode on: starting ksmd");
		}
		goto out;
	case KSM_AUTO:
		break;
	}

	switch (c->phase) {
	case KSM_PH_IDLE:
		if (s->run == 1) {
			/* Running already (mode was on, or the operator): adopt. */
			go(p, c, in, KSM_PH_CONVERGE, d);
			reason(d, "ksmd already running: converging");
			goto out;
		}
		if (in->nguests == 0)
			goto out;
		if (c->last_estimate == 0 ||
		    in->now >= c->last_estimate + p->estimate_interval) {
			d->want_estimate = 1;
			goto out;
		}
		if (!c->have_estimate)
			goto out;
		/*
		 * Discounted by how far ksmd fell short of the estimate the
		 * last time auto stopped it: no start-stop cycle on an
		 * estimate that reality contradicted.
		 */
		est_bytes = c->est.saving_pages * (uint64_t)ps / 1000 *
		    c->trust_permille;
		if (est_bytes >= p->on_bytes) {
			go(p, c, in, KSM_PH_CONVERGE, d);
			reason(d, "estimated saving %llu MiB (%llu MiB across guests, "
			    "trusted %u permille) >= %llu MiB: starting ksmd",
			    MIB_OF(c->est.saving_pages, ps),
			    MIB_OF(c->est.cross_pages, ps), c->trust_permille,
			    (unsigned long long)(p->on_bytes >> 20));
		}
		goto out;

	case KSM_PH_CONVERGE:
	case KSM_PH_STEADY:
		if (s->run != 1) {
			/* Stopped behind our back: auto means we decide. */
			d->run = 1;
			reason(d, "ksmd found stopped while %s: restarting",
			    ksm_phase_name(c->phase));
		}
		tune(p, c, in, c->phase == KSM_PH_CONVERGE, d);
		if (c->scan_mark < 0 || s->full_scans < c->scan_mark) {
			/* First look, or the counters were reset. */
			c->scan_mark = s->full_scans;
			c->scanned_mark = s->pages_scanned;
			c->sharing_mark = saving;
			goto out;
		}
		if (c->phase == KSM_PH_CONVERGE && p->stall_time > 0) {
			/* Growth over time, for scans that take minutes. */
			if (saving > c->grow_mark && (uint64_t)saving -
			    (uint64_t)c->grow_mark > (uint64_t)grow_allowance(
			    c->grow_mark, p->stall_permille)) {
				c->grow_mark = saving;
				c->grow_time = in->now;
			} else if (saving > 0 &&
			    in->now >= c->grow_time + p->stall_time &&
			    (uint64_t)saving * (uint64_t)ps >= p->off_bytes) {
				int64_t since = (int64_t)(in->now - c->grow_time);

				go(p, c, in, KSM_PH_STEADY, d);
				reason(d, "saving %llu MiB grew less than %u permille "
				    "in %lld s: backing off", MIB_OF(saving, ps),
				    p->stall_permille, (long long)since);
				goto out;
			}
		}
		if (c->phase == KSM_PH_CONVERGE && in->now > c->phase_since &&
		    reached_estimate(p, c, saving)) {
			/* At once, not at the end of the scan: it is fast. */
			go(p, c, in, KSM_PH_STEADY, d);
			reason(d, "saving %llu MiB reached %u permille of the "
			    "estimate: backing off", MIB_OF(saving, ps),
			    p->reach_permille);
			goto out;
		}
		if (c->phase == KSM_PH_STEADY) {
			/*
			 * Look at the guests now and then, at most 1% of the
			 * time (big hosts' estimates take long), and no more
			 * often than ksmd's steady full scan: an estimate
			 * reads every resident guest page, as the scan does,
			 * so it must not cost more than the scan it spares;
			 * it backs off with the scan.
			 */
			uint64_t every = c->est.elapsed_ms / 10;
			int64_t more;

			if (every < p->steady_estimate_interval)
				every = p->steady_estimate_interval;
			if (every < steady_time(p, c))
				every = steady_time(p, c);
			if (p->steady_estimate_interval > 0 && in->nguests > 0 &&
			    in->now >= c->last_estimate + every)
				d->want_estimate = 1;
			/*
			 * Lost half the saving, and at least on_bytes, since
			 * going steady (grow_mark): merged pages were written
			 * or freed.  Look now rather than a steady full scan
			 * later; if the duplicates are back the estimate says
			 * so.  Once per loss: the mark follows.
			 */
			if (in->nguests > 0 && saving < c->grow_mark / 2 &&
			    (uint64_t)(c->grow_mark - saving) * (uint64_t)ps >=
			    p->on_bytes) {
				d->want_estimate = 1;
				c->grow_mark = saving;
				reason(d, "saving fell to %llu MiB: estimating again",
				    MIB_OF(saving, ps));
			}
			if (estimate_grew(p, c, saving, ps, &more)) {
				go(p, c, in, KSM_PH_CONVERGE, d);
				reason(d, "estimate finds %llu MiB more to merge: "
				    "converging again", MIB_OF(more, ps));
				goto out;
			}
		}
		if (s->full_scans == c->scan_mark) {
			/* New candidates: converge again at once. */
			if (c->phase == KSM_PH_STEADY && in->nguests >
			    c->nguests_mark) {
				go(p, c, in, KSM_PH_CONVERGE, d);
				reason(d, "%zu guests, were %zu: converging again",
				    in->nguests, c->nguests_mark);
			} else if (c->phase == KSM_PH_STEADY &&
			    c->guest_pages_mark > 0 &&
			    in->guest_pages > c->guest_pages_mark +
			    c->guest_pages_mark / 4) {
				go(p, c, in, KSM_PH_CONVERGE, d);
				reason(d, "guest RAM grew to %llu MiB: converging again",
				    MIB_OF(in->guest_pages, ps));
			}
			/* A guest fewer: the marks follow, nothing to do. */
			if (in->nguests < c->nguests_mark)
				c->nguests_mark = in->nguests;
			goto out;
		}
		{
			int64_t grown = saving - c->sharing_mark;
			int64_t base = c->sharing_mark > 0 ? c->sharing_mark : 1;
			int64_t permille = grown * 1000 / base;
			int64_t scans = s->full_scans - c->scan_mark;
			int first = (c->sharing_mark <= 0);

			/*
			 * What ksmd goes through in a full scan (the kernel's
			 * pages_scanned, 6.8+): other processes' mergeable
			 * memory too, which the rate must cover.
			 */
			if (s->pages_scanned > c->scanned_mark &&
			    c->scanned_mark >= 0 && scans > 0)
				c->scan_pages = (uint64_t)(s->pages_scanned -
				    c->scanned_mark) / (uint64_t)scans;
			c->scanned_mark = s->pages_scanned;
			c->scan_mark = s->full_scans;
			c->sharing_mark = saving;

			/* Does it still pay? */
			if ((uint64_t)saving * (uint64_t)ps < p->off_bytes &&
			    in->now >= c->phase_since + p->min_on_time)
				c->low++;
			else
				c->low = 0;
			if (c->low >= 2) {
				d_reset(d);
				d->run = 0;
				enter(c, in, KSM_PH_IDLE);
				if (c->have_estimate && c->est.saving_pages > 0) {
					uint64_t t = (uint64_t)(saving > 0 ? saving : 0) *
					    1000 / c->est.saving_pages;

					c->trust_permille = t > 1000 ? 1000 :
					    (unsigned int)t;
				}
				c->have_estimate = 0;
				c->last_estimate = in->now;
				reason(d, "saving %llu MiB stayed below %llu MiB for "
				    "two full scans: stopping ksmd",
				    MIB_OF(saving, ps),
				    (unsigned long long)(p->off_bytes >> 20));
				goto out;
			}
			if (c->phase == KSM_PH_CONVERGE) {
				/*
				 * A shrinking saving (guest memory rewritten,
				 * a guest gone) says nothing about convergence.
				 */
				if (!first && grown >= 0 &&
				    permille < (int64_t)p->stall_permille)
					c->stalled += (unsigned int)scans;
				else if (grown >= 0)
					c->stalled = 0;
				if (c->stalled >= 1 &&
				    in->now > c->phase_since) {
					go(p, c, in, KSM_PH_STEADY, d);
					reason(d, "saving %llu MiB grew %lld permille in the "
					    "last full scan: backing off",
					    MIB_OF(saving, ps), (long long)permille);
				}
			} else if (permille >= (int64_t)p->regrow_permille &&
			    grown * ps >= (int64_t)(p->off_bytes / 4)) {
				go(p, c, in, KSM_PH_CONVERGE, d);
				reason(d, "saving grew %lld permille to %llu MiB: "
				    "converging again", (long long)permille,
				    MIB_OF(saving, ps));
			} else if (permille < (int64_t)p->stall_permille &&
			    steady_time(p, c) < p->steady_max_scan_time) {
				/* Nothing new in a whole scan: scan half as often. */
				c->backoff++;
				tune(p, c, in, 0, d);
				reason(d, "saving %llu MiB grew %lld permille in the "
				    "last full scan: a full scan every %llu s",
				    MIB_OF(saving, ps), (long long)permille,
				    (unsigned long long)steady_time(p, c));
			}
		}
		goto out;
	}
out:
	d->changed = d->run >= 0 || d->pages_to_scan >= 0 ||
	    d->sleep_millisecs >= 0 || d->advisor_mode >= 0 ||
	    d->advisor_target_scan_time >= 0 || d->advisor_max_cpu >= 0 ||
	    d->use_zero_pages >= 0;
	if (d->changed && d->reason[0] == '\0')
		reason(d, "%s: scan settings for phase %s",
		    ksm_mode_name(in->mode), ksm_phase_name(c->phase));
}

/* ------------------------------------------------------------------ */
/* sysfs and /proc */

static int
read_text(const char *path, char *buf, size_t len)
{
	return io_read_path(path, buf, len) == -1 ? -1 : 0;
}

static int64_t
read_num(const char *dir, const char *name)
{
	char path[PATH_MAX], buf[64];
	int64_t v;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -1;
	if (read_text(path, buf, sizeof(buf)) == -1 ||
	    ksm_parse_value(buf, &v) == -1)
		return -1;
	return v;
}

int
ksm_read_sysfs(const char *dir, struct ksm_sysfs *s)
{
	char path[PATH_MAX], buf[128];

	s->run = read_num(dir, "run");
	if (s->run < 0)
		return -1;
	s->pages_to_scan = read_num(dir, "pages_to_scan");
	s->sleep_millisecs = read_num(dir, "sleep_millisecs");
	s->pages_shared = read_num(dir, "pages_shared");
	s->pages_sharing = read_num(dir, "pages_sharing");
	s->pages_unshared = read_num(dir, "pages_unshared");
	s->pages_volatile = read_num(dir, "pages_volatile");
	s->full_scans = read_num(dir, "full_scans");
	s->pages_scanned = read_num(dir, "pages_scanned");
	s->ksm_zero_pages = read_num(dir, "ksm_zero_pages");
	s->use_zero_pages = read_num(dir, "use_zero_pages");
	s->advisor_target_scan_time = read_num(dir, "advisor_target_scan_time");
	s->advisor_max_cpu = read_num(dir, "advisor_max_cpu");
	s->advisor_min_pages_to_scan = read_num(dir, "advisor_min_pages_to_scan");
	s->advisor_max_pages_to_scan = read_num(dir, "advisor_max_pages_to_scan");
	/* general_profit may legitimately be negative. */
	snprintf(path, sizeof(path), "%s/general_profit", dir);
	if (read_text(path, buf, sizeof(buf)) == -1 ||
	    ksm_parse_value(buf, &s->general_profit) == -1)
		s->general_profit = INT64_MIN;
	snprintf(path, sizeof(path), "%s/advisor_mode", dir);
	if (read_text(path, buf, sizeof(buf)) == -1)
		s->advisor_mode = -1;
	else
		s->advisor_mode = ksm_parse_advisor_mode(buf);
	return 0;
}

int
ksm_read_proc_stat(pid_t pid, struct ksm_proc_stat *st)
{
	char path[64], buf[1024];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", (int)pid);
	if (read_text(path, buf, sizeof(buf)) == 0)
		return ksm_parse_proc_stat(buf, st);
	/* Before 6.1 there is only ksm_merging_pages (5.19+). */
	snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", (int)pid);
	if (read_text(path, buf, sizeof(buf)) == -1)
		return -1;
	st->rmap_items = st->zero_pages = st->process_profit = -1;
	st->merge_any = st->mergeable = -1;
	return ksm_parse_value(buf, &st->merging_pages);
}

uint64_t
ksm_guest_saving_bytes_at(const char *dir, pid_t pid)
{
	struct ksm_proc_stat st;
	struct ksm_sysfs sys;
	long ps = sysconf(_SC_PAGESIZE);

	if (dir == NULL)
		dir = KSM_SYSFS_DEFAULT;
	if (pid <= 0 || ksm_read_proc_stat(pid, &st) == -1)
		return 0;
	sys.pages_shared = read_num(dir, "pages_shared");
	sys.pages_sharing = read_num(dir, "pages_sharing");
	return ksm_attribute_saving(&st, &sys, ps);
}

int
ksm_other_manager(const char *procdir, char *who, size_t len)
{
	static const char *const names[] = { "ksmtuned\n", "tuned\n" };
	char path[PATH_MAX], comm[32];
	struct dirent *de;
	size_t i;
	int found = 0;
	DIR *dp;

	if (procdir == NULL)
		procdir = "/proc";
	if ((dp = opendir(procdir)) == NULL)
		return 0;
	while (!found && (de = readdir(dp)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", procdir, de->d_name);
		if (read_text(path, comm, sizeof(comm)) == -1)
			continue;
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(comm, names[i]) == 0) {
				snprintf(who, len, "%.*s (pid %s)",
				    (int)strlen(names[i]) - 1, names[i],
				    de->d_name);
				found = 1;
			}
	}
	closedir(dp);
	return found;
}

/* ------------------------------------------------------------------ */
/* The stateful part */

enum {
	T_ADVISOR_MODE = 1 << 0,
	T_ADVISOR_TIME = 1 << 1,
	T_ADVISOR_CPU = 1 << 2,
	T_PAGES = 1 << 3,
	T_SLEEP = 1 << 4,
	T_RUN = 1 << 5,
	T_ZERO = 1 << 6,
};

struct ksm_state {
	char		*dir;
	char		*orig_path;	/* saved settings; NULL = not kept */
	enum ksm_mode	 mode;
	struct ksm_params p;
	struct ksm_ctl	 c;
	struct ksm_sysfs saved;		/* as found at ksm_init() */
	unsigned int	 touched;	/* T_* written since */
	struct ksm_sysfs last;
	uint64_t	 guest_pages;
	pid_t		 ksmd_pid;
	long		 page_size;
	char		 reason[160];

	/*
	 * The last tick that read KSM and decided: when, for which guests,
	 * and their savings (steady_tick).  c_n is SIZE_MAX when not kept.
	 */
	uint64_t	 c_time;
	pid_t		*c_pids;
	uint64_t	*c_saving;
	size_t		 c_n, c_cap;

	/*
	 * The estimate reads every resident guest page's prefix: about 0.3 s
	 * per GiB here, too long for the daemon's event loop.  It runs in a
	 * worker thread; ksm_tick() starts it and collects the result.  The
	 * worker touches only the w_* fields, under w_lock.
	 */
	pthread_t	 worker;
	int		 worker_running;	/* main thread only */
	pthread_mutex_t	 w_lock;
	atomic_int	 w_stop;		/* set by ksm_free(): give up */
	int		 w_done;
	int		 w_rc;
	struct ksm_estimate w_est;
	pid_t		*w_pids;
	size_t		 w_n;
	unsigned int	 w_shift;
};

static void *
estimate_worker(void *arg)
{
	struct ksm_state *k = arg;
	struct ksm_estimate e;
	int rc;

	rc = ksm_estimate_pids_stop(k->w_pids, k->w_n, k->w_shift, "/proc",
	    &k->w_stop, &e);
	pthread_mutex_lock(&k->w_lock);
	k->w_rc = rc;
	if (rc == 0)
		k->w_est = e;
	k->w_done = 1;
	pthread_mutex_unlock(&k->w_lock);
	return NULL;
}

/* Start an estimate of @pids in the worker; 0, or -1 if it cannot start. */
static int
estimate_start(struct ksm_state *k, const pid_t *pids, size_t n)
{
	pid_t *copy;

	copy = calloc(n, sizeof(*copy));
	if (copy == NULL)
		return -1;
	memcpy(copy, pids, n * sizeof(*copy));
	free(k->w_pids);
	k->w_pids = copy;
	k->w_n = n;
	k->w_shift = k->p.sample_shift;
	k->w_done = 0;
	atomic_store(&k->w_stop, 0);
	if (pthread_create(&k->worker, NULL, estimate_worker, k) != 0)
		return -1;
	k->worker_running = 1;
	return 0;
}

/* Collect a finished estimate (or wait for it with @wait); 1 if collected. */
static int
estimate_collect(struct ksm_state *k, int wait)
{
	int done;

	if (!k->worker_running)
		return 0;
	pthread_mutex_lock(&k->w_lock);
	done = k->w_done;
	pthread_mutex_unlock(&k->w_lock);
	if (!done && !wait)
		return 0;
	pthread_join(k->worker, NULL);
	k->worker_running = 0;
	return 1;
}

static uint64_t
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static int
write_knob(struct ksm_state *k, const char *name, const char *val)
{
	char path[PATH_MAX];
	size_t len = strlen(val);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", k->dir, name);
	/* O_TRUNC as a shell's echo: harmless on sysfs, right on a copy. */
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd == -1) {
		ksm_log(LOG_WARNING, "%s: %s: %s", __func__, path, strerror(errno));
		return -1;
	}
	n = write(fd, val, len);
	if (n != (ssize_t)len) {
		ksm_log(LOG_WARNING, "%s: %s <- %s: %s", __func__, path, val,
		    n == -1 ? strerror(errno) : "short write");
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
write_num(struct ksm_state *k, const char *name, int64_t v, unsigned int bit)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	if (write_knob(k, name, buf) == -1)
		return -1;
	k->touched |= bit;
	return 0;
}

static int
write_advisor_mode(struct ksm_state *k, int64_t mode)
{
	if (write_knob(k, "advisor_mode", mode == 1 ? "scan-time" : "none") == -1)
		return -1;
	k->touched |= T_ADVISOR_MODE;
	return 0;
}

static int
apply(struct ksm_state *k, const struct ksm_decision *d)
{
	int rc = 0;

	/* The advisor first: switching it resets pages_to_scan. */
	if (d->advisor_mode >= 0)
		rc |= write_advisor_mode(k, d->advisor_mode);
	if (d->advisor_target_scan_time >= 0)
		rc |= write_num(k, "advisor_target_scan_time",
		    d->advisor_target_scan_time, T_ADVISOR_TIME);
	if (d->advisor_max_cpu >= 0)
		rc |= write_num(k, "advisor_max_cpu", d->advisor_max_cpu,
		    T_ADVISOR_CPU);
	if (d->use_zero_pages >= 0)
		rc |= write_num(k, "use_zero_pages", d->use_zero_pages, T_ZERO);
	if (d->pages_to_scan >= 0)
		rc |= write_num(k, "pages_to_scan", d->pages_to_scan, T_PAGES);
	if (d->sleep_millisecs >= 0)
		rc |= write_num(k, "sleep_millisecs", d->sleep_millisecs, T_SLEEP);
	if (d->run >= 0)
		rc |= write_num(k, "run", d->run, T_RUN);
	return rc ? -1 : 0;
}

static pid_t
find_ksmd(void)
{
	char path[300], comm[32];
	struct dirent *de;
	pid_t pid = 0;
	DIR *dp;

	dp = opendir("/proc");
	if (dp == NULL)
		return 0;
	while ((de = readdir(dp)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		if (read_text(path, comm, sizeof(comm)) == 0 &&
		    strcmp(comm, "ksmd\n") == 0) {
			pid = (pid_t)atoi(de->d_name);
			break;
		}
	}
	closedir(dp);
	return pid;
}

static uint64_t
ksmd_cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long hz = sysconf(_SC_CLK_TCK);

	if (pid <= 0 || hz <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_text(path, buf, sizeof(buf)) == -1)
		return 0;
	p = strrchr(buf, ')');
	if (p == NULL)
		return 0;
	/* After "pid (comm)": state is field 3, utime 14, stime 15. */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	    &ut, &st) != 2)
		return 0;
	return (ut + st) * 1000ULL / (unsigned long long)hz;
}

/* The settings ksm_free() puts back, one "name value" a line. */
static const struct {
	const char	*name;
	size_t		 off;
	unsigned int	 bit;
	int		 optional;	/* absent in files of older versions */
} orig_fields[] = {
	{ "run", offsetof(struct ksm_sysfs, run), T_RUN, 0 },
	{ "pages_to_scan", offsetof(struct ksm_sysfs, pages_to_scan),
	    T_PAGES, 0 },
	{ "sleep_millisecs", offsetof(struct ksm_sysfs, sleep_millisecs),
	    T_SLEEP, 0 },
	{ "advisor_mode", offsetof(struct ksm_sysfs, advisor_mode),
	    T_ADVISOR_MODE, 0 },
	{ "advisor_target_scan_time", offsetof(struct ksm_sysfs,
	    advisor_target_scan_time), T_ADVISOR_TIME, 0 },
	{ "advisor_max_cpu", offsetof(struct ksm_sysfs, advisor_max_cpu),
	    T_ADVISOR_CPU, 0 },
	{ "use_zero_pages", offsetof(struct ksm_sysfs, use_zero_pages),
	    T_ZERO, 1 },
};
#define NORIG	(sizeof(orig_fields) / sizeof(orig_fields[0]))

static int64_t *
orig_field(struct ksm_sysfs *s, size_t i)
{
	return (int64_t *)(void *)((char *)s + orig_fields[i].off);
}

/* Write @s to @path (a temporary file, synced, renamed); 0 or -1. */
static int
orig_write(const char *path, struct ksm_sysfs *s)
{
	char tmp[PATH_MAX], buf[512];
	size_t i, len = 0;
	int fd, rc = -1;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -1;
	for (i = 0; i < NORIG; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s %lld\n",
		    orig_fields[i].name, (long long)*orig_field(s, i));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (io_full(fd, buf, len, 1) == 0 && fsync(fd) == 0)
		rc = 0;
	close(fd);
	if (rc == 0 && rename(tmp, path) == -1)
		rc = -1;
	if (rc == -1)
		unlink(tmp);
	return rc;
}

/* Read what orig_write() wrote; 0, or -1 if absent or malformed. */
static int
orig_read(const char *path, struct ksm_sysfs *s)
{
	char buf[512], name[64], *line, *save = NULL;
	long long v;
	size_t i, seen = 0, need = 0;

	if (read_text(path, buf, sizeof(buf)) == -1)
		return -1;
	for (i = 0; i < NORIG; i++)
		if (!orig_fields[i].optional)
			need |= 1U << i;
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%63s %lld", name, &v) != 2)
			return -1;
		for (i = 0; i < NORIG; i++)
			if (strcmp(name, orig_fields[i].name) == 0) {
				*orig_field(s, i) = v;
				seen |= 1U << i;
			}
	}
	return (seen & need) == need ? 0 : -1;
}

int
ksm_init(struct ksm_state **kp, const char *dir, enum ksm_mode mode)
{
	return ksm_init_saved(kp, dir, mode, NULL);
}

int
ksm_init_saved(struct ksm_state **kp, const char *dir, enum ksm_mode mode,
    const char *orig_path)
{
	struct ksm_state *k;
	struct ksm_sysfs o;
	size_t i;

	*kp = NULL;
	if ((unsigned int)mode > KSM_AUTO) {
		errno = EINVAL;
		return -1;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return -1;
	k->dir = strdup(dir != NULL ? dir : KSM_SYSFS_DEFAULT);
	if (k->dir == NULL || (orig_path != NULL &&
	    (k->orig_path = strdup(orig_path)) == NULL)) {
		free(k->dir);
		free(k);
		return -1;
	}
	if (ksm_read_sysfs(k->dir, &k->saved) == -1) {
		ksm_log(LOG_WARNING, "%s: %s/run: %s", __func__, k->dir,
		    strerror(errno));
		free(k->orig_path);
		free(k->dir);
		free(k);
		return -1;
	}
	k->last = k->saved;
	if (orig_path != NULL) {
		o = k->saved;
		if (orig_read(orig_path, &o) == 0) {
			/* a previous instance died before putting them back */
			ksm_log(LOG_WARNING, "%s: KSM settings of a previous "
			    "memcoopd in %s (run=%lld, now %lld): those are "
			    "the ones restored on exit", __func__, orig_path,
			    (long long)o.run, (long long)k->saved.run);
			for (i = 0; i < NORIG; i++) {
				*orig_field(&k->saved, i) = *orig_field(&o, i);
				k->touched |= orig_fields[i].bit;
			}
		} else if (orig_write(orig_path, &k->saved) == -1) {
			ksm_log(LOG_WARNING, "%s: cannot save the KSM settings "
			    "in %s (%s): KSM left alone", __func__, orig_path,
			    strerror(errno));
			free(k->orig_path);
			free(k->dir);
			free(k);
			return -1;
		}
	}
	k->mode = mode;
	k->page_size = sysconf(_SC_PAGESIZE);
	k->c_n = SIZE_MAX;
	k->ksmd_pid = find_ksmd();
	pthread_mutex_init(&k->w_lock, NULL);
	ksm_params_default(&k->p);
	ksm_ctl_init(&k->c);
	ksm_log(LOG_INFO, "%s: %s: mode %s, run=%lld, advisor %s", __func__,
	    k->dir, ksm_mode_name(mode), (long long)k->saved.run,
	    k->saved.advisor_mode < 0 ? "absent" : "present");
	*kp = k;
	return 0;
}

void
ksm_set_params(struct ksm_state *k, const struct ksm_params *p)
{
	k->p = *p;
}

int
ksm_set_mode(struct ksm_state *k, enum ksm_mode mode)
{
	if ((unsigned int)mode > KSM_AUTO) {
		errno = EINVAL;
		return -1;
	}
	if (mode != k->mode) {
		ksm_log(LOG_INFO, "%s: %s -> %s", __func__,
		    ksm_mode_name(k->mode), ksm_mode_name(mode));
		k->mode = mode;
		ksm_ctl_init(&k->c);
		/* Act now rather than at the next tick. */
		ksm_tick(k, NULL, 0, NULL);
	}
	return 0;
}

static uint64_t
rss_pages(const pid_t *pids, size_t n, long ps)
{
	char path[64], buf[4096], *p;
	uint64_t total = 0;
	unsigned long long kb;
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pids[i]);
		if (read_text(path, buf, sizeof(buf)) == -1)
			continue;
		p = strstr(buf, "\nVmRSS:");
		if (p != NULL && sscanf(p + 7, "%llu", &kb) == 1)
			total += kb * 1024ULL / (unsigned long long)ps;
	}
	return total;
}

/* Take the worker's estimate into auto mode's state. */
static void
estimate_done(struct ksm_state *k, struct ksm_input *in)
{
	k->c.last_estimate = in->now;
	if (k->w_rc == -1) {
		ksm_log(LOG_WARNING, "%s: estimate failed: no guest could be "
		    "read", __func__);
		return;
	}
	k->c.est = k->w_est;
	k->c.have_estimate = 1;
	ksm_log(LOG_INFO, "%s: estimate: %llu MiB resident, %llu MiB "
	    "would merge (%llu MiB across guests), %llu pages hashed, "
	    "%llu ms", __func__,
	    MIB_OF(k->c.est.resident_pages, k->page_size),
	    MIB_OF(k->c.est.saving_pages, k->page_size),
	    MIB_OF(k->c.est.cross_pages, k->page_size),
	    (unsigned long long)k->c.est.hashed_pages,
	    (unsigned long long)k->c.est.elapsed_ms);
	if (k->c.est.resident_pages > 0)
		k->guest_pages = in->guest_pages = k->c.est.resident_pages;
	if (k->c.phase == KSM_PH_IDLE &&
	    k->c.est.saving_pages * (uint64_t)k->page_size < k->p.on_bytes)
		snprintf(k->reason, sizeof(k->reason),
		    "estimated saving %llu MiB < %llu MiB: ksmd stays off",
		    MIB_OF(k->c.est.saving_pages, k->page_size),
		    (unsigned long long)(k->p.on_bytes >> 20));
}

int
ksm_tick_quiet(const struct ksm_params *p, const struct ksm_ctl *c,
    enum ksm_mode mode, uint64_t last, uint64_t now)
{
	return mode == KSM_AUTO && c->phase == KSM_PH_STEADY &&
	    p->steady_tick > 0 && now >= last && now < last + p->steady_tick;
}

/*
 * Steady, and the same guests as the last full tick less than steady_tick
 * seconds ago: KSM's figures move only over a full scan (hours), so this
 * tick repeats the last savings and reads nothing.
 */
static int
tick_skip(struct ksm_state *k, const pid_t *pids, size_t n, uint64_t now)
{
	if (!ksm_tick_quiet(&k->p, &k->c, k->mode, k->c_time, now) ||
	    k->worker_running || pids == NULL || n != k->c_n)
		return 0;
	return n == 0 || memcmp(pids, k->c_pids, n * sizeof(*pids)) == 0;
}

/* Keep this full tick's guests and savings for tick_skip(). */
static void
tick_keep(struct ksm_state *k, const pid_t *pids, size_t n,
    const uint64_t *saving, uint64_t now)
{
	k->c_n = SIZE_MAX;
	if (pids == NULL || saving == NULL)
		return;
	if (n > k->c_cap) {
		pid_t *np = realloc(k->c_pids, n * sizeof(*np));
		uint64_t *ns;

		if (np == NULL)
			return;
		k->c_pids = np;
		ns = realloc(k->c_saving, n * sizeof(*ns));
		if (ns == NULL)
			return;
		k->c_saving = ns;
		k->c_cap = n;
	}
	if (n > 0) {
		memcpy(k->c_pids, pids, n * sizeof(*pids));
		memcpy(k->c_saving, saving, n * sizeof(*saving));
	}
	k->c_n = n;
	k->c_time = now;
}

/*
 * ksm_tick - read KSM's figures, decide, apply.  @pids: the guests' QEMU
 * processes (NULL/0: keep the guest figures of the last tick, as
 * ksm_set_mode() does).  @saving (NULL: not wanted) gets each guest's
 * own saving in bytes (ksm_stat; 0 if unknown), the figures auto mode
 * decides on, so that the caller need not read them again.  When auto mode
 * wants an estimate, this starts it in the worker thread and returns; a
 * later tick collects it and decides with it.  While steady, a tick within
 * steady_tick seconds of the last full one, for the same guests, only
 * repeats their last savings (ksm_tick_quiet()).  Called from one thread
 * only (the daemon's loop).
 */
void
ksm_tick(struct ksm_state *k, const pid_t *pids, size_t n, uint64_t *saving)
{
	struct ksm_decision d;
	struct ksm_input in;
	uint64_t now = mono_s();

	if (tick_skip(k, pids, n, now)) {
		if (saving != NULL && n > 0)
			memcpy(saving, k->c_saving, n * sizeof(*saving));
		return;
	}
	if (saving != NULL && pids != NULL)
		memset(saving, 0, n * sizeof(*saving));
	memset(&in, 0, sizeof(in));
	if (ksm_read_sysfs(k->dir, &in.sys) == -1) {
		ksm_log(LOG_WARNING, "%s: cannot read %s", __func__, k->dir);
		return;
	}
	k->last = in.sys;
	in.now = now;
	in.mode = k->mode;
	in.page_size = k->page_size;
	if (pids != NULL) {
		k->guest_pages = rss_pages(pids, n, k->page_size);
		in.nguests = n;
	} else {
		in.nguests = k->guest_pages > 0;
	}
	in.guest_pages = k->guest_pages;
	in.guest_saving = -1;
	if (pids != NULL && n > 0) {
		struct ksm_proc_stat ps;
		size_t i;
		int64_t sum = 0;
		int known = 0;

		for (i = 0; i < n; i++) {
			uint64_t bytes;

			if (ksm_read_proc_stat(pids[i], &ps) == -1)
				continue;
			bytes = ksm_attribute_saving(&ps, &in.sys, k->page_size);
			if (saving != NULL)
				saving[i] = bytes;
			sum += (int64_t)(bytes / (uint64_t)k->page_size);
			known++;
		}
		if (known > 0)
			in.guest_saving = sum;
	}
	tick_keep(k, pids, n, saving, now);

	if (estimate_collect(k, 0))
		estimate_done(k, &in);
	ksm_decide(&k->p, &k->c, &in, &d);
	if (d.want_estimate && !k->worker_running && pids != NULL && n > 0) {
		if (estimate_start(k, pids, n) == -1) {
			/* No thread: estimate here, in the loop. */
			k->w_rc = ksm_estimate_pids(pids, n, k->p.sample_shift,
			    "/proc", &k->w_est);
			estimate_done(k, &in);
			ksm_decide(&k->p, &k->c, &in, &d);
		}
	}
	if (!d.changed && d.reason[0] != '\0')	/* an estimate, and why */
		snprintf(k->reason, sizeof(k->reason), "%s", d.reason);
	if (!d.changed)
		return;
	ksm_log(LOG_INFO, "%s: %s", __func__, d.reason);
	snprintf(k->reason, sizeof(k->reason), "%s", d.reason);
	if (apply(k, &d) == -1)
		ksm_log(LOG_WARNING, "%s: some KSM settings were not applied",
		    __func__);
	else if (ksm_read_sysfs(k->dir, &in.sys) == 0)
		k->last = in.sys;
}

const char *
ksm_last_reason(const struct ksm_state *k)
{
	return k->reason;
}

int
ksm_get_status(struct ksm_state *k, struct ksm_status *st)
{
	struct ksm_sysfs s;
	uint64_t now = mono_s();

	memset(st, 0, sizeof(*st));
	/*
	 * Steady, within steady_tick of the last full tick: KSM's figures
	 * move only over a full scan, so a scrape gets that tick's reading
	 * rather than seventeen sysfs files again.
	 */
	if (ksm_tick_quiet(&k->p, &k->c, k->mode, k->c_time, now) &&
	    k->c_n != SIZE_MAX)
		s = k->last;
	else if (ksm_read_sysfs(k->dir, &s) == -1)
		s = k->last;
	st->mode = k->mode;
	st->phase = k->c.phase;
	st->run = (int)s.run;
	st->advisor = s.advisor_mode >= 0;
	st->advisor_active = s.advisor_mode == 1;
	st->pages_shared = s.pages_shared > 0 ? (uint64_t)s.pages_shared : 0;
	st->pages_sharing = s.pages_sharing > 0 ? (uint64_t)s.pages_sharing : 0;
	st->pages_unshared = s.pages_unshared > 0 ? (uint64_t)s.pages_unshared : 0;
	st->pages_volatile = s.pages_volatile > 0 ? (uint64_t)s.pages_volatile : 0;
	st->full_scans = s.full_scans > 0 ? (uint64_t)s.full_scans : 0;
	st->pages_to_scan = s.pages_to_scan > 0 ? (uint64_t)s.pages_to_scan : 0;
	st->sleep_millisecs = s.sleep_millisecs > 0 ? (uint64_t)s.sleep_millisecs : 0;
	st->saving_bytes = (uint64_t)sys_saving_pages(&s) * (uint64_t)k->page_size;
	st->general_profit = s.general_profit == INT64_MIN ? -1 : s.general_profit;
	if (k->c.have_estimate) {
		st->estimate_bytes = k->c.est.saving_pages * (uint64_t)k->page_size;
		st->estimate_cross_bytes = k->c.est.cross_pages *
		    (uint64_t)k->page_size;
		st->estimate_age = now > k->c.last_estimate ?
		    now - k->c.last_estimate : 1;
		st->estimate_ms = k->c.est.elapsed_ms;
	}
	st->ksmd_cpu_ms = ksmd_cpu_ms(k->ksmd_pid);
	snprintf(st->reason, sizeof(st->reason), "%s", k->reason);
	return 0;
}

void
ksm_free(struct ksm_state *k)
{
	const struct ksm_sysfs *o;

	if (k == NULL)
		return;
	atomic_store(&k->w_stop, 1);	/* within one batch, not a whole estimate */
	estimate_collect(k, 1);
	free(k->w_pids);
	free(k->c_pids);
	free(k->c_saving);
	pthread_mutex_destroy(&k->w_lock);
	o = &k->saved;
	if ((k->touched & T_ADVISOR_MODE) && o->advisor_mode >= 0)
		write_advisor_mode(k, o->advisor_mode);
	if ((k->touched & T_ADVISOR_TIME) && o->advisor_target_scan_time >= 0)
		write_num(k, "advisor_target_scan_time",
		    o->advisor_target_scan_time, 0);
	if ((k->touched & T_ADVISOR_CPU) && o->advisor_max_cpu >= 0)
		write_num(k, "advisor_max_cpu", o->advisor_max_cpu, 0);
	/* With the advisor back on, pages_to_scan is its business. */
	if ((k->touched & (T_PAGES | T_ADVISOR_MODE)) && o->pages_to_scan >= 0 &&
	    o->advisor_mode != 1)
		write_num(k, "pages_to_scan", o->pages_to_scan, 0);
	if ((k->touched & T_SLEEP) && o->sleep_millisecs >= 0)
		write_num(k, "sleep_millisecs", o->sleep_millisecs, 0);
	if ((k->touched & T_ZERO) && o->use_zero_pages >= 0)
		write_num(k, "use_zero_pages", o->use_zero_pages, 0);
	if ((k->touched & T_RUN) && o->run >= 0 && o->run != 2)
		write_num(k, "run", o->run, 0);
	if (k->touched)
		ksm_log(LOG_INFO, "%s: KSM settings restored (run=%lld)",
		    __func__, (long long)o->run);
	if (k->orig_path != NULL)
		unlink(k->orig_path);
	free(k->orig_path);
	free(k->dir);
	free(k);
}
