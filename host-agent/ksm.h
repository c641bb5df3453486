/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ksm.h: control of the host's KSM (/sys/kernel/mm/ksm) for memcoopd.
 *
 * Three modes.  KSM_OFF stops ksmd (run=0; pages merged so far stay
 * merged).  KSM_ON starts it (run=1) with whatever scan settings the host
 * has.  KSM_AUTO first estimates, in user space, what merging the guests
 * would save (content-defined sampling of the QEMU processes' guest RAM, as
 * mergemem did), starts ksmd only when the estimate pays, and runs it fast
 * (a full scan of what ksmd scans in converge_scan_time, sized from the
 * guests' RAM and from the kernel's own count of pages per full scan) until
 * the saving stops growing or reaches the estimate.  Then it backs off
 * geometrically: a slow scan whose full-scan time doubles after every scan
 * that merged (almost) nothing, up to steady_max_scan_time.  It converges
 * again on new candidates (a guest more, a quarter more guest RAM, the
 * saving growing again, or an estimate, repeated while steady every
 * steady_estimate_interval or steady full-scan time, whichever is longer,
 * that finds on_bytes more to merge than when it went steady), and stops ksmd when the saving no longer pays.
 * The kernel's scan advisor (6.7+: advisor_mode) is switched off while auto
 * mode runs: it re-tunes only once per full scan, too late both to converge
 * fast and to back off.  When the estimate finds that most of the saving is
 * zero pages, auto mode sets use_zero_pages (4.13+) before converging: those
 * pages are then merged with the kernel's zero page, without a stable tree
 * search or a chain of KSM page copies (max_page_sharing), and are not
 * scanned again; the saving counts them (ksm_zero_pages).
 *
 * The parsers, the estimator's bookkeeping and the decision (ksm_decide())
 * are pure functions on recorded inputs; ksm_tick() is the part with I/O.
 * Whatever it changed in sysfs, ksm_free() puts back as it found it.
 *
 * Units: KSM counters are in pages (of ksm page size, 4 KiB on x86), sizes
 * in the status are bytes, times are seconds of CLOCK_MONOTONIC unless
 * named _ms.
 */
#ifndef MEMCOOP_KSM_H
#define MEMCOOP_KSM_H

#include <sys/types.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define KSM_SYSFS_DEFAULT	"/sys/kernel/mm/ksm"

enum ksm_mode { KSM_OFF = 0, KSM_ON, KSM_AUTO };

/* Where auto mode is. */
enum ksm_phase {
	KSM_PH_IDLE = 0,	/* ksmd stopped; estimating now and then */
	KSM_PH_CONVERGE,	/* ksmd scanning fast, saving still growing */
	KSM_PH_STEADY,		/* saving stopped growing: slow scan */
};

struct ksm_state;

/* The figures of /sys/kernel/mm/ksm; a file that is absent reads as -1. */
struct ksm_sysfs {
	int64_t		 run;
	int64_t		 pages_to_scan;
	int64_t		 sleep_millisecs;
	int64_t		 pages_shared;
	int64_t		 pages_sharing;
	int64_t		 pages_unshared;
	int64_t		 pages_volatile;
	int64_t		 full_scans;
	int64_t		 pages_scanned;		/* 6.8+ */
	int64_t		 ksm_zero_pages;	/* 6.1+ */
	int64_t		 general_profit;	/* bytes, may be negative */
	int64_t		 use_zero_pages;
	int64_t		 advisor_mode;		/* 0 none, 1 scan-time, -1 absent */
	int64_t		 advisor_target_scan_time;	/* seconds */
	int64_t		 advisor_max_cpu;	/* percent */
	int64_t		 advisor_min_pages_to_scan;
	int64_t		 advisor_max_pages_to_scan;
};

/* /proc/PID/ksm_stat; a line that is absent reads as -1. */
struct ksm_proc_stat {
	int64_t		 rmap_items;
	int64_t		 zero_pages;
	int64_t		 merging_pages;
	int64_t		 process_profit;	/* bytes */
	int		 merge_any;		/* 1, 0, -1 unknown */
	int		 mergeable;		/* 1, 0, -1 unknown */
};

/* A guest RAM mapping found in /proc/PID/smaps. */
struct ksm_region {
	uint64_t	 start, end;		/* [start, end) */
	int		 mergeable;		/* VmFlags has "mg" */
};

/* Tunables of auto mode; ksm_params_default() fills them in. */
struct ksm_params {
	uint64_t	 on_bytes;	/* start ksmd when the estimate is above */
	uint64_t	 off_bytes;	/* stop it when the saving stays below */
	unsigned int	 estimate_interval;	/* s between estimates (idle) */
	unsigned int	 converge_scan_time;	/* s per full scan, converging */
	unsigned int	 converge_max_pages;	/* pages_to_scan cap, converging */
	unsigned int	 steady_scan_time;	/* s per full scan, first steady */
	unsigned int	 steady_max_scan_time;	/* s, where the back-off ends */
	unsigned int	 converge_sleep_ms;
	unsigned int	 steady_sleep_ms;	/* at least; longer past the
						   slowest pages_to_scan */
	unsigned int	 reach_permille;	/* measured/estimated saving that
						   ends converging early */
	unsigned int	 steady_estimate_interval;	/* s between estimates
							   while steady, at
							   least (and at least
							   a steady full scan);
							   0 none */
	unsigned int	 stall_permille;	/* growth per full scan below = stalled */
	unsigned int	 regrow_permille;	/* growth per scan above = converge again */
	unsigned int	 stall_time;	/* s without stall_permille growth while
					   converging = stalled, even within a
					   full scan (large or busy hosts) */
	unsigned int	 min_on_time;	/* s ksmd runs at least before auto stops it */
	unsigned int	 sample_shift;	/* 1 in 2^shift page contents sampled */
	unsigned int	 steady_tick;	/* s between ksm_tick()s that read
					   KSM and decide while steady (the
					   others repeat the last savings); 0:
					   every tick */
};

/* Result of one user-space estimate. */
struct ksm_estimate {
	uint64_t	 resident_pages;	/* guest RAM pages present */
	uint64_t	 examined_pages;	/* pages whose prefix was read */
	uint64_t	 hashed_pages;		/* pages hashed in full (sampled) */
	uint64_t	 zero_pages;		/* all-zero resident pages (scaled) */
	uint64_t	 saving_pages;		/* estimated pages merging frees */
	uint64_t	 cross_pages;		/* ... of which across guests */
	uint64_t	 elapsed_ms;		/* what the estimate cost */
};

/* What ksm_decide() wants changed; -1 = leave alone. */
struct ksm_decision {
	int		 run;
	int64_t		 pages_to_scan;
	int64_t		 sleep_millisecs;
	int64_t		 advisor_mode;
	int64_t		 advisor_target_scan_time;
	int64_t		 advisor_max_cpu;
	int64_t		 use_zero_pages;
	int		 want_estimate;	/* run an estimate this tick */
	int		 changed;	/* something above is not -1 */
	char		 reason[160];
};

/* Auto mode's memory between ticks (inside struct ksm_state). */
struct ksm_ctl {
	enum ksm_phase	 phase;
	uint64_t	 phase_since;	/* s */
	uint64_t	 last_estimate;	/* s; 0 = never */
	int		 have_estimate;
	struct ksm_estimate est;
	int64_t		 scan_mark;	/* full_scans at the last check */
	int64_t		 sharing_mark;	/* pages_sharing at the last check */
	unsigned int	 stalled;	/* consecutive stalled full scans */
	unsigned int	 low;		/* consecutive scans below off_bytes */
	uint64_t	 guest_pages_mark;	/* guest pages when converged */
	int64_t		 grow_mark;	/* saving when it last grew by stall_permille
					   (steady: on going steady, or at the
					   last loss of half of it) */
	uint64_t	 grow_time;	/* s, when */
	unsigned int	 trust_permille;	/* measured/estimated saving when
						   auto last stopped ksmd; 1000 */
	unsigned int	 backoff;	/* steady scan time doublings */
	size_t		 nguests_mark;	/* guests when the phase began */
	int64_t		 scanned_mark;	/* pages_scanned at scan_mark */
	uint64_t	 scan_pages;	/* pages per full scan, measured; 0 */
	uint64_t	 est_checked;	/* last_estimate steady mode compared */
	int64_t		 gap_mark;	/* estimate - saving on going steady */
};

/* Inputs of one decision. */
struct ksm_input {
	uint64_t	 now;		/* s, monotonic */
	enum ksm_mode	 mode;
	struct ksm_sysfs sys;
	uint64_t	 guest_pages;	/* resident guest RAM, pages; 0 = unknown */
	int64_t		 guest_saving;	/* pages saved in the guests (ksm_stat);
					   -1 = unknown: use the host figure */
	size_t		 nguests;
	long		 page_size;
};

struct ksm_status {
	enum ksm_mode	 mode;
	enum ksm_phase	 phase;
	int		 run;			/* sysfs run */
	int		 advisor;		/* kernel has the advisor */
	int		 advisor_active;	/* advisor_mode is scan-time */
	uint64_t	 pages_shared;
	uint64_t	 pages_sharing;
	uint64_t	 pages_unshared;
	uint64_t	 pages_volatile;
	uint64_t	 full_scans;
	uint64_t	 pages_to_scan;
	uint64_t	 sleep_millisecs;
	uint64_t	 saving_bytes;		/* pages_sharing (+ zero pages) */
	int64_t		 general_profit;	/* bytes, -1 if absent */
	uint64_t	 estimate_bytes;	/* last estimate; 0 = none */
	uint64_t	 estimate_cross_bytes;
	uint64_t	 estimate_age;		/* s since it; 0 = none */
	uint64_t	 estimate_ms;		/* what it cost */
	uint64_t	 ksmd_cpu_ms;		/* ksmd's CPU time, 0 unknown */
	char		 reason[160];		/* last decision */
};

/* --- pure functions (ksm.c) --- */
void	 ksm_params_default(struct ksm_params *);
const char *ksm_mode_name(enum ksm_mode);
int	 ksm_mode_parse(const char *, enum ksm_mode *);
const char *ksm_phase_name(enum ksm_phase);
/* "123\n" -> 123; 0 or -1 on anything else. */
int	 ksm_parse_value(const char *text, int64_t *out);
/* "[none] scan-time\n" -> 0, "none [scan-time]" -> 1; -1 if malformed. */
int	 ksm_parse_advisor_mode(const char *text);
int	 ksm_parse_proc_stat(const char *text, struct ksm_proc_stat *);
/*
 * Guest RAM in /proc/PID/smaps text: the mappings marked mergeable
 * ("mg", QEMU's default for guest RAM) of at least @min_bytes, or if none
 * is, the private anonymous read-write ones of at least @min_bytes.
 * Returns how many were stored in @out (at most @max), -1 if malformed.
 */
int	 ksm_parse_smaps(const char *text, uint64_t min_bytes,
	    struct ksm_region *out, size_t max);
/* Saving attributed to one process: its merging pages times the shared fraction. */
uint64_t ksm_attribute_saving(const struct ksm_proc_stat *,
	    const struct ksm_sysfs *, long page_size);
void	 ksm_ctl_init(struct ksm_ctl *);
/* One decision: what to change in sysfs this tick, and why. */
void	 ksm_decide(const struct ksm_params *, struct ksm_ctl *,
	    const struct ksm_input *, struct ksm_decision *);

/*
 * May ksm_tick() at @now skip reading KSM and deciding, the last full tick
 * having been at @last?  Only while auto mode is steady, for steady_tick
 * seconds (the scan then takes hours).
 */
int	 ksm_tick_quiet(const struct ksm_params *, const struct ksm_ctl *,
	    enum ksm_mode, uint64_t last, uint64_t now);

/* The estimator's page index (ksm_sample.c): pure, fed page contents. */
struct ksm_index;
struct ksm_index *ksm_index_new(unsigned int sample_shift);
void	 ksm_index_free(struct ksm_index *);
uint64_t ksm_hash_page(const void *page, size_t len);
/*
 * Hash of a page's sampled prefix (two pieces of @len bytes); *uniform set
 * if both are one 8-byte word repeated (zero, poison, memset pages).
 */
uint64_t ksm_hash_prefix(const void *a, const void *b, size_t len, int *uniform);
/*
 * Weight (2^shift) if a page with this prefix is sampled, else 0; a page
 * with a uniform prefix is sampled by its position @pos instead (any
 * number that differs between pages: address and guest), 1 in 16.
 */
unsigned int ksm_index_select(const struct ksm_index *, uint64_t prefix_hash,
	    int prefix_uniform, uint64_t pos);
/* Count one sampled page of guest @guest with full hash @h; 0 or -1 ENOMEM. */
int	 ksm_index_add(struct ksm_index *, uint64_t h, unsigned int guest,
	    unsigned int weight, int is_zero);
void	 ksm_index_result(const struct ksm_index *, struct ksm_estimate *);

/* --- with I/O --- */
/* Sample the guest RAM of @n QEMU processes (ksm_sample.c). */
int	 ksm_estimate_pids(const pid_t *pids, size_t n, unsigned int sample_shift,
	    const char *procdir, struct ksm_estimate *);
/* The same, giving up (-1) within one batch of pages once *@stop is set. */
int	 ksm_estimate_pids_stop(const pid_t *pids, size_t n,
	    unsigned int sample_shift, const char *procdir,
	    const atomic_int *stop, struct ksm_estimate *);
int	 ksm_read_sysfs(const char *dir, struct ksm_sysfs *);
int	 ksm_read_proc_stat(pid_t, struct ksm_proc_stat *);

int	 ksm_init(struct ksm_state **, const char *sysfs_dir, enum ksm_mode);
/*
 * ksm_init() that keeps the settings it found in @orig_path (written and
 * synced before anything is changed), so that they survive a crash: when
 * the file exists a previous instance did not put them back, and they are
 * taken from it instead of from sysfs.  ksm_free() removes the file after
 * restoring.  @orig_path NULL: ksm_init().
 */
int	 ksm_init_saved(struct ksm_state **, const char *sysfs_dir,
	    enum ksm_mode, const char *orig_path);
/*
 * Another KSM manager running (ksmtuned, tuned: their processes in
 * @procdir, default /proc)?  1 with its name and pid in @who, else 0.
 */
int	 ksm_other_manager(const char *procdir, char *who, size_t len);
int	 ksm_set_mode(struct ksm_state *, enum ksm_mode);
void	 ksm_set_params(struct ksm_state *, const struct ksm_params *);
void	 ksm_tick(struct ksm_state *, const pid_t *qemu_pids, size_t n,
	    uint64_t *saving_bytes);
int	 ksm_get_status(struct ksm_state *, struct ksm_status *);
/* The reason of the last decision that changed something (no I/O). */
const char *ksm_last_reason(const struct ksm_state *);
/*
 * One guest's KSM saving in bytes, read now (ksm_tick() hands out the
 * tick's), with KSM's figures from @sysfs_dir (NULL: the default).
 */
uint64_t ksm_guest_saving_bytes_at(const char *sysfs_dir, pid_t qemu_pid);
/* Put back what was changed in sysfs, then free. */
void	 ksm_free(struct ksm_state *);

/*
 * Log hook: memcoopd points it at its logger; the default writes to
 * stderr.  @prio is a syslog priority.
 */
extern void (*ksm_log_hook)(int prio, const char *fmt, va_list ap);

#endif /* MEMCOOP_KSM_H */
