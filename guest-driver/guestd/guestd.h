/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memcoop-guestd: the guest daemon's types and prototypes, grouped by the
 * file that defines them (docs/memcoop-guestd.md is the user's view).
 *
 * Units: sizes in bytes (uint64_t), times in CLOCK_MONOTONIC milliseconds
 * (uint64_t), unless said otherwise.
 *
 * An app is one configured application.  app.c owns its relay client
 * (/dev/memcoop), its requests, the measurement and the yield; an adapter
 * (redis.c, jvm.c, cgroup.c) only acts: app.c calls ops->shrink() and the
 * adapter calls app_action_done() once, synchronously or later from the
 * event loop, after its action finished or failed.
 */
#ifndef MEMCOOP_GUESTD_H
#define MEMCOOP_GUESTD_H

#include <sys/queue.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#define GUESTD_CONF		"/etc/memcoop/guestd.conf"
#define GUESTD_SOCK		"/run/memcoop-guestd.sock"
#define APP_NAME_MAX		32	/* the relay's name, with its NUL */
#define LAST_MAX		200	/* the last action, for status */
#define MIB			((uint64_t)1 << 20)

struct event_base;
struct app;

/* ------------------------------------------------------------------ */
/* parse.c: the config */

enum app_type {
	APP_REDIS = 1,
	APP_JVM,
	APP_CGROUP,
};

enum measure_kind {
	MEASURE_DEFAULT = 0,	/* rss, cgroup for type cgroup */
	MEASURE_RSS,
	MEASURE_CGROUP,
};

struct app_conf {
	TAILQ_ENTRY(app_conf)	 entry;
	char			 name[APP_NAME_MAX];
	enum app_type		 type;
	unsigned int		 priority;	/* 0..MEMCOOP_PRIO_MAX */
	uint64_t		 deadline_ms;	/* longest action */
	enum measure_kind	 measure;
	uint64_t		 floor;		/* redis, cgroup */
	char			*address;	/* redis: "unix:/p", "host:port" */
	char			*password;	/* redis, from password(-file) */
	char			*password_file;
	pid_t			 pid;		/* jvm: one of the three */
	char			*pid_file;
	char			*process;
	char			*path;		/* cgroup */
	unsigned int		 line;		/* where the block starts */
};
TAILQ_HEAD(app_conf_list, app_conf);

struct gconf {
	char			*path;		/* the file, for reload */
	char			*sock_path;
	uint64_t		 grow_margin;
	uint64_t		 grow_step;
	uint64_t		 grow_period_ms;
	uint64_t		 hold_interval_ms; /* jvm: between hold GC.runs */
	int			 has_secret;	/* a password in the file */
	struct app_conf_list	 apps;
};

void	gconf_init(struct gconf *);
void	gconf_free(struct gconf *);
/* 0, or -1 with a message "file:line: why" in @err. */
int	gconf_parse_string(struct gconf *, const char *name, const char *text,
	    char *err, size_t errlen);
/* Reads @path (checks its mode if it holds a secret, reads password-files). */
int	gconf_load(struct gconf *, const char *path, char *err, size_t errlen);
/* 1 if both blocks configure the same application the same way. */
int	app_conf_equal(const struct app_conf *, const struct app_conf *);
const char *app_type_name(enum app_type);
/* A deep copy (each app owns its block); NULL on ENOMEM. */
struct app_conf *app_conf_dup(const struct app_conf *);
void	app_conf_free(struct app_conf *);
/* A secret file: regular, not group/other accessible; 0 or -1 (@err). */
int	secret_file_ok(int fd, const char *path, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* app.c: relay clients, requests, measurement, yield, grow-back */

struct adapter_ops {
	const char	*name;
	int		(*init)(struct app *);		/* 0 or -1 */
	void		(*free)(struct app *);
	/* Free about @bytes; call app_action_done() exactly once. */
	void		(*shrink)(struct app *, uint64_t bytes);
	/* Raise a lowered limit by @bytes; call app_action_done() once. */
	void		(*grow)(struct app *, uint64_t bytes);
	/* 1 while a limit is lowered (grow-back and restore have work). */
	int		(*lowered)(struct app *);
	/* Restore every limit (exit, removal); app_action_done() once. */
	void		(*restore)(struct app *);
	/* The process to measure, or -1 if not known (yet). */
	pid_t		(*pid)(struct app *);
	/* 1 if the application can give nothing at all (noeviction). */
	int		(*cannot_free)(struct app *);
	/* Refresh what the adapter knows (pid, limits), when idle; async. */
	void		(*probe)(struct app *);
	/* Optional: a shrink that worked measured @before, then @after at
	 * its end (bytes). */
	void		(*shrunk)(struct app *, int64_t before, int64_t after);
};

enum app_busy {
	BUSY_NONE = 0,
	BUSY_SHRINK,
	BUSY_GROW,
	BUSY_RESTORE,
	BUSY_HOLD,	/* the adapter holds the application to its allowance */
};

/* One pending shrink request of the driver. */
struct app_req {
	uint64_t	 seq;
	uint64_t	 pages;		/* asked by the driver */
	uint64_t	 deadline_ms;	/* the driver's, CLOCK_MONOTONIC */
};

struct yield_state {
	double		 yield;		/* learned freed/asked, 0.05..1 */
	unsigned int	 samples;
};

struct app {
	TAILQ_ENTRY(app)	 entry;
	struct app_conf		*conf;
	const struct adapter_ops *ops;
	void			*priv;		/* the adapter's state */
	struct event_base	*base;

	struct memcoop		*mc;		/* NULL until registered */
	struct event		*ev_relay;
	int			 registered;
	int			 reg_errno;	/* why not, said once */
	uint64_t		 estimate_pages; /* registered estimate */

	/* the request being served */
	enum app_busy		 busy;
	struct app_req		 cur;
	uint64_t		 start_ms;
	uint64_t		 answer_by_ms;	/* deadline - answer_lead() */
	uint64_t		 action_bytes;	/* what the adapter was asked */
	int64_t			 before;	/* measured at the baseline, -1 */
	int64_t			 best;		/* lowest measured since */
	int			 action_over;	/* app_action_done() seen */
	int			 action_ok;	/* and it said it worked */
	int			 answered;
	unsigned int		 flat;		/* samples without progress */
	char			 note[LAST_MAX]; /* the adapter's words */
	struct event		*ev_measure;	/* settle sampling */
	struct event		*ev_deadline;	/* answer before the driver's */

	/* totals for status */
	uint64_t		 asked_total;	/* bytes the driver asked */
	uint64_t		 freed_total;	/* bytes measured leaving */
	uint64_t		 requests;
	struct yield_state	 yield;
	uint64_t		 last_shrink_ms;
	uint64_t		 last_grow_ms;
	uint64_t		 calm_since_ms;	/* MemAvailable above the margin */
	int			 doomed;	/* removed by a reload */
	char			 last[LAST_MAX];
};
TAILQ_HEAD(app_list, app);

struct guestd {
	struct event_base	*base;
	struct gconf		 conf;
	struct app_list		 apps;
	struct event		*ev_tick;
	int			 exiting;
	const char		*conf_path;
};

extern struct guestd *guestd;	/* the one daemon (app.c uses its config) */

uint64_t now_ms(void);
uint64_t answer_lead(uint64_t);
struct app *app_new(struct event_base *, struct app_conf *);
void	app_free(struct app *);
/* Open /dev/memcoop and register if not yet; retried by the tick. */
void	app_try_register(struct app *);
/* The tick: estimates, re-registration, grow-back. */
void	app_tick(struct app *, const struct gconf *);
/* The adapter is about to change something: measure the baseline now. */
void	app_baseline(struct app *);
/* The adapter's action is over (@ok: it did what it meant to). */
void	app_action_done(struct app *, int ok, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* The adapter starts an action of its own (a hold): 0, or -1 if busy. */
int	app_hold_begin(struct app *);
/* Restore the app's limits now (exit, removal); answers what is pending. */
void	app_restore(struct app *);
/* Serve a request as if the driver had sent it (control "shrink"). */
int	app_shrink_manual(struct app *, uint64_t bytes);
void	app_set_last(struct app *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* What the app holds now by its measure (bytes), or -1. */
int64_t	app_measure(struct app *);

/* Yield learning (pure). */
void	yield_init(struct yield_state *);
void	yield_learn(struct yield_state *, uint64_t asked, uint64_t freed);
/* What to ask the application for so that @want leaves, by the yield. */
uint64_t yield_scale(const struct yield_state *, uint64_t want);

/* Measurements (pure parsers and their /proc readers). */
int64_t	parse_status_rss(const char *status);	/* "VmRSS:" -> bytes */
int64_t	proc_rss(pid_t);
/* 1 if @pid is gone: no such process, or a zombie (exited, not reaped). */
int	proc_gone(pid_t);
int64_t	cgroup_current(const char *dir);
/* The cgroup v2 directory of @pid ("0::/x" -> "/sys/fs/cgroup/x"). */
int	proc_cgroup_dir(pid_t, char *buf, size_t len);
int	parse_cgroup_line(const char *text, char *buf, size_t len);
/* "64.0M"-style, into a static ring of buffers. */
const char *fmt_size(int64_t);

/* ------------------------------------------------------------------ */
/* control.c: the status socket */

int	control_listen(struct guestd *, const char *path);
void	control_close(void);
/* The "status" command: connect to @path, print, return the exit code. */
int	control_client(const char *path, const char *request);
/* The status text (one line per app), into @buf. */
size_t	control_status_text(struct guestd *, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* adapters */

/*
 * jvm.c: the hold.  After a shrink the JVM may hold the RSS measured at
 * the shrink's end (the allowance) plus what grow-back gave it; over it by
 * more than 8 MiB while MemAvailable is under grow-margin, it is collected
 * again (GC.run), at most once per hold-interval.  Released when the
 * allowance is back at what it held before the first shrink.
 */
struct jvm_hold {
	uint64_t	 allowance;	/* bytes of RSS; 0: not held */
	uint64_t	 orig;		/* RSS before the first shrink */
	uint64_t	 last_gc_ms;	/* the last hold GC.run started */
};

enum hold_act {
	HOLD_OK = 0,		/* within its allowance, or room, or unknown */
	HOLD_WAIT,		/* over with no room, the last GC too recent */
	HOLD_COLLECT,		/* over with no room: GC.run now */
};

/* Pure: what to do with a held JVM at @now (RSS, MemAvailable in bytes). */
enum hold_act jvm_hold_decide(const struct jvm_hold *, uint64_t now,
	    int64_t rss, int64_t avail, uint64_t margin, uint64_t interval_ms);
/* Pure: a shrink took @before to @after: hold to @after, never raised
 * by a later one (the first sets orig). */
void	jvm_hold_shrunk(struct jvm_hold *, uint64_t before, uint64_t after);
/* Pure: grow-back grants @bytes; 1 if that releases the hold. */
int	jvm_hold_grow(struct jvm_hold *, uint64_t bytes);

extern const struct adapter_ops redis_ops;	/* redis.c */
extern const struct adapter_ops jvm_ops;	/* jvm.c */
extern const struct adapter_ops cgroup_ops;	/* cgroup.c */

#endif /* MEMCOOP_GUESTD_H */
