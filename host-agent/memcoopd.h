/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memcoopd: the host agent's types and prototypes, grouped by the file
 * that defines them.
 *
 * Units: every memory size is in bytes (uint64_t), every time is
 * CLOCK_MONOTONIC milliseconds (uint64_t) unless said otherwise.
 *
 * A guest is one VM the agent manages.  A backend (QMP, libvirt) finds
 * guests and reports them with guest_add()/guest_remove(), fills in their
 * stats with guest_update_stats() and their balloon size with
 * guest_update_actual(), and applies targets through its set_target().
 * The daemon core (memcoopd.c) owns the guest list and calls the policy
 * once per tick.  This header is the interface between the two: changes
 * to it are additive only.
 */
#ifndef MEMCOOPD_H
#define MEMCOOPD_H

#include <sys/queue.h>
#include <sys/types.h>
#include <stdint.h>
#include <stddef.h>

#ifndef TAILQ_FOREACH_SAFE	/* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define MEMCOOPD_CONF		"/etc/memcoop/memcoopd.conf"
#define MEMCOOPD_SOCK		"/run/memcoop/memcoopd.sock"
#define MEMCOOPD_USER_GROUP	"memcoop"
#define MEMCOOPD_STATE_DIR	"/run/memcoop"

#define GUEST_NAME_MAX		64	/* including the NUL */
#define REASON_MAX		160	/* a policy decision's reason */
#define MIB			((uint64_t)1 << 20)

struct event_base;
struct memcoopd;
struct config;
struct ksm_state;

/* ------------------------------------------------------------------ */
/* Guests */

/* What the operator wants for one guest. */
enum guest_mode {
	GMODE_AUTO = 0,		/* the policy moves the target within min..max */
	GMODE_FIXED,		/* target is settings.target, nothing else */
	GMODE_MANUAL,		/* observe only: the agent never sets a target */
};

struct guest_settings {
	enum guest_mode	 mode;
	uint64_t	 target;	/* GMODE_FIXED target; 0 = unset */
	uint64_t	 min;		/* lower limit; 0 = policy default */
	uint64_t	 max;		/* upper limit; 0 = what the guest has */
	unsigned int	 weight;	/* 1..1000, share when giving memory back */
};
#define GUEST_WEIGHT_DEFAULT	100
#define GUEST_WEIGHT_MAX	1000

/*
 * Balloon statistics as one guest reported them.  A field is meaningful
 * only when its GST_* bit is set in @valid (a guest may not report a tag,
 * the stats period may be off).  Counters (swap, faults) are cumulative
 * since the guest booted; sizes are in bytes.
 */
enum {
	GST_SWAP_IN	= 1 << 0,	/* bytes swapped in, cumulative */
	GST_SWAP_OUT	= 1 << 1,	/* bytes swapped out, cumulative */
	GST_MAJFLT	= 1 << 2,	/* major faults, cumulative */
	GST_MINFLT	= 1 << 3,	/* minor faults, cumulative */
	GST_FREE	= 1 << 4,	/* free memory */
	GST_TOTAL	= 1 << 5,	/* total memory the guest sees */
	GST_AVAIL	= 1 << 6,	/* MemAvailable ("usable" in libvirt) */
	GST_CACHES	= 1 << 7,	/* disk caches */
	GST_OOM_KILLS	= 1 << 8,	/* OOM kills, cumulative (if reported) */
	/* Linux 6.12+ guests under QEMU 9.1+: reclaim the guest waited for */
	GST_ALLOC_STALLS = 1 << 9,	/* allocations that entered direct reclaim */
	GST_DIRECT_SCAN	= 1 << 10,	/* bytes scanned by direct reclaim */
	GST_DIRECT_RECLAIM = 1 << 11,	/* bytes reclaimed by direct reclaim */
};

struct guest_stats {
	uint32_t	 valid;		/* GST_* bits */
	uint64_t	 when;		/* when the agent received them (ms) */
	uint64_t	 guest_time;	/* guest's "last-update", seconds; 0 = unknown */
	uint64_t	 swap_in;
	uint64_t	 swap_out;
	uint64_t	 majflt;
	uint64_t	 minflt;
	uint64_t	 free;
	uint64_t	 total;
	uint64_t	 avail;
	uint64_t	 caches;
	uint64_t	 oom_kills;
	uint64_t	 alloc_stalls;
	uint64_t	 direct_scan;
	uint64_t	 direct_reclaim;
};

enum guest_state {
	GUEST_ONLINE = 0,	/* backend connected, balloon usable */
	GUEST_OFFLINE,		/* known (e.g. from the config) but not running */
};

/* Per-guest state the policy keeps from tick to tick (policy.c). */
struct policy_gstate {
	uint64_t	 last_change;	/* when the target last changed (ms) */
	int		 last_dir;	/* -1 shrank, +1 grew, 0 none yet */
	unsigned int	 calm_ticks;	/* consecutive ticks without pressure */
	unsigned int	 press_ticks;	/* consecutive ticks under pressure */
	uint64_t	 last_stall;	/* when a stall was last seen (ms); 0 never */
	uint64_t	 stall_until;	/* given memory after a stall: no shrinking
					   before this (ms) */
};

struct guest {
	TAILQ_ENTRY(guest)	 entry;
	char			 name[GUEST_NAME_MAX];
	const struct backend_ops *backend;
	void			*bdata;		/* backend private data */
	enum guest_state	 state;
	pid_t			 qemu_pid;	/* 0 = unknown */

	struct guest_settings	 set;		/* operator settings */
	uint64_t		 maxmem;	/* what the guest has (boot RAM); 0 = unknown */
	uint64_t		 actual;	/* balloon actual (guest size now); 0 = unknown */
	uint64_t		 target;	/* last target the agent set; 0 = none */

	struct guest_stats	 stats;		/* latest */
	struct guest_stats	 prev;		/* the one before, for rates */
	struct policy_gstate	 pst;
	char			 reason[REASON_MAX]; /* why the target last changed */
	char			 explain[REASON_MAX]; /* the policy's view at the last tick */
	uint64_t		 reason_when;	/* when @reason was set (ms); 0 never */
	uint64_t		 ksm_saving;	/* bytes, the KSM tick's (ksm.h) */
	uint64_t		 changes;	/* targets set for this guest */
};
TAILQ_HEAD(guestlist, guest);

/* ------------------------------------------------------------------ */
/* Backends */

struct backend_ops {
	const char	*name;		/* "qmp", "libvirt" */
	/* Connect, discover the guests (guest_add()), subscribe to events. */
	int		(*init)(struct memcoopd *, const struct config *);
	/* Disconnect; called after the guests were brought to a sane size. */
	void		(*shutdown)(struct memcoopd *);
	/* Ask the guest's balloon for @bytes of guest memory; 0 or -1. */
	int		(*set_target)(struct memcoopd *, struct guest *, uint64_t bytes);
	/*
	 * Refresh g->stats and g->actual.  May complete asynchronously: the
	 * backend then calls guest_update_stats()/guest_update_actual() when
	 * the answer arrives.  0 or -1.
	 */
	int		(*poll_stats)(struct memcoopd *, struct guest *);
};

extern const struct backend_ops qmp_backend;	/* qmp.c */
extern const struct backend_ops virt_backend;	/* virt.c (libvirt) */

/* ------------------------------------------------------------------ */
/* Host state (hostinfo.c) */

struct host_stats {
	int		 valid_mem;	/* mem_* read */
	int		 valid_psi;	/* psi_* read */
	uint64_t	 mem_total;
	uint64_t	 mem_available;
	uint64_t	 swap_free;
	double		 psi_some_avg10;	/* percent */
	double		 psi_full_avg10;
	uint64_t	 psi_some_total;	/* microseconds stalled */
	uint64_t	 psi_full_total;
};

int	 hostinfo_parse_meminfo(const char *text, struct host_stats *);
int	 hostinfo_parse_psi(const char *text, struct host_stats *);
int	 hostinfo_read(const char *procdir, struct host_stats *);

/* ------------------------------------------------------------------ */
/* Configuration (parse.c) */

enum backend_kind {
	BACKEND_QMP = 0,	/* default: QMP sockets, no libvirtd needed */
	BACKEND_LIBVIRT,
};

enum ksm_conf_mode {
	KSMC_UNSET = -1,	/* leave the host's KSM alone */
	KSMC_OFF = 0,		/* numerically the same as enum ksm_mode */
	KSMC_ON,
	KSMC_AUTO,
};

/* One `guest NAME { ... }` block. */
struct guest_conf {
	TAILQ_ENTRY(guest_conf)	 entry;
	char			 name[GUEST_NAME_MAX];
	char			*qmp;		/* QMP socket path, or NULL */
	struct guest_settings	 set;
};
TAILQ_HEAD(guest_conflist, guest_conf);

/* The policy's knobs; all sizes bytes, times ms. */
struct policy_params {
	uint64_t	 host_floor;	/* keep host MemAvailable above this */
	uint64_t	 host_comfort;	/* above this the host can give back */
	double		 host_psi_high;	/* host some avg10 % counted as pressure */
	uint64_t	 guest_min;	/* default lower limit of a guest */
	uint64_t	 guest_reserve;	/* keep this much MemAvailable in a guest */
	uint64_t	 guest_slack;	/* guest avail above reserve+slack = spare */
	uint64_t	 step_max;	/* largest change of one guest per tick */
	uint64_t	 step_min;	/* smaller changes are not made */
	uint64_t	 hold_ms;	/* no reversal of direction within this */
	uint64_t	 swap_rate_high; /* guest swap bytes/s counted as pressure */
	uint64_t	 majflt_rate_high; /* guest major faults/s counted as pressure */
	unsigned int	 calm_ticks;	/* ticks without pressure before shrinking */
	uint64_t	 stats_max_age;	/* older stats are not trusted */
	uint64_t	 stall_hold_ms;	/* no shrinking this long after a stall
					   was answered with memory */
};

struct config {
	char			*path;
	char			*sock_path;	/* control socket */
	char			*sock_group;	/* may read; NULL = root only */
	gid_t			 sock_gid;	/* resolved (or (gid_t)-1) */
	uint32_t		 tick_ms;	/* policy period */
	uint32_t		 stats_period;	/* guest stats period, seconds */
	int			 auto_enabled;	/* the policy may move targets */
	enum backend_kind	 backend;
	char			*libvirt_uri;	/* default qemu:///system */
	char			*qmp_dir;	/* directory of QMP sockets to watch */
	char			*metrics_addr;	/* loopback address; NULL = off */
	uint16_t		 metrics_port;
	enum ksm_conf_mode	 ksm_mode;
	char			*ksm_sysfs;	/* default /sys/kernel/mm/ksm */
	char			*procdir;	/* default /proc (tests override) */
	int			 shutdown_restore; /* SIGTERM restores too (paced) */
	char			*state_dir;	/* targets, KSM settings; default
						   MEMCOOPD_STATE_DIR */
	uint64_t		 restore_step;	/* per guest per period; 0 = step-max */
	uint64_t		 restore_period_ms;
	uint64_t		 restore_timeout_ms; /* then leave the rest */
	struct policy_params	 pol;
	struct guest_conflist	 guests;
};

void	 config_init(struct config *);		/* defaults */
void	 config_free(struct config *);
/* Parse @text (the file's contents, named @name for errors); 0 or -1. */
int	 config_parse_string(struct config *, const char *name, const char *text,
	    char *err, size_t errlen);
int	 config_load(struct config *, const char *path, char *err, size_t errlen);
struct guest_conf *config_find_guest(const struct config *, const char *name);
/* What the file cannot say: paths that must exist (qmp-dir); 0 or -1. */
int	 config_check_runtime(const struct config *, char *err, size_t errlen);
int	 parse_size(const char *, uint64_t *);	/* "512M", "2G", "1048576" */
const char *guest_mode_name(enum guest_mode);
int	 guest_mode_parse(const char *, enum guest_mode *);

/* ------------------------------------------------------------------ */
/* Policy (policy.c): a pure function, no I/O, no clock */

/* One guest as the policy sees it; target/changed/reason are outputs. */
struct policy_guest {
	const char		*name;
	int			 online;
	struct guest_settings	 set;
	uint64_t		 maxmem;	/* 0 = unknown */
	uint64_t		 actual;	/* 0 = unknown */
	uint64_t		 cur_target;	/* target set before; 0 = none */
	struct guest_stats	 stats, prev;
	struct policy_gstate	 st;		/* in/out */
	/* outputs */
	uint64_t		 target;	/* new target (== cur_target if unchanged) */
	int			 changed;
	int			 stalled;	/* stalled since the previous stats */
	char			 reason[REASON_MAX];
	char			 explain[REASON_MAX]; /* class and what held it */
};

/* Bounds the operator and the guest allow: [*lo, *hi]; 0 if unknown. */
int	 policy_limits(const struct policy_params *, const struct policy_guest *,
	    uint64_t *lo, uint64_t *hi);
/* Compute new targets for @n guests at time @now; returns how many changed. */
int	 policy_run(const struct policy_params *, const struct host_stats *,
	    struct policy_guest *, size_t n, uint64_t now);
void	 policy_defaults(struct policy_params *);
/*
 * Every guest of @md as the policy sees it into @pgs (md->nguests of them,
 * in list order), automatic guests as manual while auto is off (guest.c).
 */
void	 guests_to_policy(struct memcoopd *, struct policy_guest *pgs);
/*
 * What the next tick would do if @set were @g's settings (guest.c):
 * the policy run on a copy of every guest with the last stats; nothing is
 * applied.  0 with *@target, *@changed and @reason/@explain filled (both
 * REASON_MAX), -1 on ENOMEM.
 */
int	 policy_preview(struct memcoopd *, const struct guest *g,
	    const struct guest_settings *set, uint64_t *target, int *changed,
	    char *reason, char *explain);

/* ------------------------------------------------------------------ */
/* The daemon (memcoopd.c) and the guest list (guest.c) */

/* A target a previous memcoopd left in a guest (state_load()). */
struct adopt {
	TAILQ_ENTRY(adopt)	 entry;
	char			 name[GUEST_NAME_MAX];
	uint64_t		 target;
	pid_t			 pid;		/* its QEMU then; 0 = unknown */
};
TAILQ_HEAD(adoptlist, adopt);

struct memcoopd {
	struct event_base	*base;
	struct config		*conf;
	const struct backend_ops *backend;
	void			*bdata;		/* backend-global private data */
	struct guestlist	 guests;
	size_t			 nguests;
	struct host_stats	 host;
	uint64_t		 started;	/* ms */
	uint64_t		 ticks;
	uint64_t		 changes;	/* targets changed so far */
	struct ksm_state	*ksm;		/* NULL when KSM is left alone */
	int			 ksm_mode;	/* enum ksm_mode, -1 = unmanaged */
	int			 shutting_down;	/* 1 leaving, 2 with the restore */
	/* Begin leaving (memcoopd_stop(); NULL in the unit tests). */
	void			(*stop)(struct memcoopd *, int restore);
	struct adoptlist	 adopt;		/* targets not adopted yet */
	char			*state_written;	/* the targets file as last written */
	struct event		*ev_restore;	/* paced restore on the way out */
	uint64_t		 restore_until;	/* ms */
	int			 restore_blocked; /* the floor stopped a step */
	struct control		*ctl;
	struct metrics		*metrics;
};

uint64_t	 now_ms(void);
/*
 * For backends.  guest_add() returns the existing guest if @name is known
 * (it is then marked online again and keeps its settings), else a new one
 * with the settings from the config's guest block, if any.  NULL on ENOMEM.
 */
struct guest	*guest_add(struct memcoopd *, const char *name,
		    const struct backend_ops *, void *bdata);
/* Forget the guest; its memory is freed (bdata belongs to the backend). */
void		 guest_remove(struct memcoopd *, struct guest *);
/* Keep the guest but mark it offline (QEMU gone, may come back). */
void		 guest_offline(struct memcoopd *, struct guest *);
struct guest	*guest_find(struct memcoopd *, const char *name);
void		 guest_update_stats(struct memcoopd *, struct guest *,
		    const struct guest_stats *);
void		 guest_update_actual(struct memcoopd *, struct guest *, uint64_t);
/* Set a target after clamping it to the guest's limits; logs @reason. */
int		 guest_apply_target(struct memcoopd *, struct guest *, uint64_t,
		    const char *reason);
/*
 * For backends whose set_target() completes later: the guest refused
 * @refused (set while the target was @prev); g->target goes back to @prev
 * unless a newer target was set since.
 */
void		 guest_target_refused(struct memcoopd *, struct guest *,
		    uint64_t refused, uint64_t prev, const char *why);
/*
 * Targets across restarts (guest.c): state_load() reads the targets file
 * in the state directory into md->adopt, state_adopt() gives an online
 * guest without a target the one a previous memcoopd left in the same
 * QEMU, state_save() writes the file when it changed, state_forget()
 * removes it (a stop that gave the guests their memory back).
 */
int		 state_load(struct memcoopd *);
void		 state_adopt(struct memcoopd *, struct guest *);
void		 state_save(struct memcoopd *);
void		 state_forget(struct memcoopd *);
/* The state directory's file @name into @buf; -1 if too long. */
int		 state_path(const struct config *, const char *name, char *buf,
		    size_t len);
/*
 * Take over the host's KSM in @mode (enum ksm_mode), its original settings
 * kept in the state directory; refused (EBUSY) while ksmtuned or tuned
 * runs.  0, or -1 with @err said.
 */
int		 memcoopd_ksm_init(struct memcoopd *, int mode, char *err,
		    size_t errlen);
/* The policy's view of @g (guest.c). */
void		 guest_to_policy(const struct guest *, struct policy_guest *);

/* ------------------------------------------------------------------ */
/* Control socket (control.c) and metrics (metrics.c) */

struct control;
struct metrics;
int	 control_init(struct memcoopd *, const char *path, gid_t gid);
void	 control_close(struct memcoopd *);
/* No new clients; those connected get their answers until control_close(). */
void	 control_quiesce(struct memcoopd *);
/* Push a status event to the watchers; called once per tick. */
void	 control_tick(struct memcoopd *);
int	 metrics_init(struct memcoopd *, const char *addr, uint16_t port);
void	 metrics_close(struct memcoopd *);
struct evbuffer;
/* The Prometheus text of the current state into @b. */
void	 metrics_render(struct memcoopd *, struct evbuffer *b);

#endif /* MEMCOOPD_H */
