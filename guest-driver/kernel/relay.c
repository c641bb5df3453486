// SPDX-License-Identifier: GPL-2.0
/*
 * The pressure relay: shrink requests to registered processes.
 *
 * A process registers its open file of /dev/memcoop (MEMCOOP_IOC_REGISTER)
 * with a name, a priority class and an estimate of the pages it could
 * free.  When memory must be found, the relay shares the amount out among
 * the registered clients (lowest priority class first, by estimate within
 * a class), queues a MEMCOOP_EVENT_SHRINK on each chosen file (plus, if
 * asked for, a real-time signal to the registering process) and collects
 * the answers (MEMCOOP_IOC_ANSWER).
 *
 * Three sources of requests:
 *  - the balloon (mc_reclaim_for_balloon()): a "round" that waits for
 *    every asked client up to relay_deadline_ms (or until the answers
 *    cover the request), then returns;
 *  - the guest's own reclaim (a shrinker): requests are posted and never
 *    waited for, rate-limited to one batch per reclaim_interval_ms;
 *  - the OOM killer (an OOM notifier): a last CRITICAL request, waited
 *    for at most oom_wait_ms, and in all at most oom_patience_ms per OOM
 *    episode; it reports the rise of free memory it measured, never what
 *    the clients claim.
 *
 * Trust (the device is 0666, see proto/memcoop.h): priorities below
 * MEMCOOP_PRIO_UNPRIV need CAP_SYS_RESOURCE or the group relay_priv_gid;
 * clients are capped per user and in all; an unprivileged client is never
 * asked for more than its resident memory; a client that misses a request
 * or claims more than its RSS or estimate fell is demoted (asked after
 * every other client) until it has answered relay_demote_answers requests
 * in time and honestly.  Signals go only where the registering process's
 * credentials may send them, and never after the process executed a new
 * program.
 *
 * Locking, outermost first:
 *   mc_round_mutex    serialises waiting rounds (balloon, OOM)
 *   mc_clients_mutex  the client lists, the per-user counts and the
 *                     OOM episode; posting holds it, so a client on a
 *                     list cannot be freed under a poster.  Nothing
 *                     allocates memory while holding it (the OOM
 *                     notifier takes it; the shrinker only tries).
 *   mc_client.lock    spinlock: the client's request slots and accounting
 *   mc_round.lock     spinlock: the current round's pending/freed counts
 *   mc_file.evlock    (dev.c) the event ring
 * None of these is taken from interrupt context.
 *
 * All page counts are in PAGE_SIZE pages; times are CLOCK_MONOTONIC ns.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": relay: " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/mm.h>
#include <linux/cred.h>
#include <linux/capability.h>
#include <linux/hashtable.h>
#include <linux/pid.h>
#include <linux/ktime.h>
#include <linux/jiffies.h>
#include <linux/oom.h>
#include <linux/swap.h>
#include <linux/vmstat.h>
#include <linux/seq_file.h>
#include <linux/ctype.h>
#include <linux/mm.h>

#include "mc_internal.h"

#define MC_DEADLINE_MAX_MS	10000
#define MC_OOM_WAIT_MAX_MS	1000

static unsigned int relay_deadline_ms = 200;
MC_PARAM_UINT(relay_deadline_ms, 1, MC_DEADLINE_MAX_MS, 0644,
	      "How long the balloon waits for answers to shrink requests (ms, 1..10000, default 200)");

static unsigned int reclaim_interval_ms = 100;
MC_PARAM_UINT(reclaim_interval_ms, 0, 60000, 0644,
	      "Minimum time between two batches of guest-reclaim requests (ms, 0..60000, default 100)");

static unsigned int oom_wait_ms = 50;
MC_PARAM_UINT(oom_wait_ms, 0, MC_OOM_WAIT_MAX_MS, 0644,
	      "How long one OOM notification waits for answers (ms, 0..1000, default 50)");

static unsigned int oom_patience_ms = 1000;
MC_PARAM_UINT(oom_patience_ms, 0, 10000, 0644,
	      "Total time the OOM notifier waits for answers in one OOM episode (ms, 0..10000, default 1000)");

static unsigned int oom_episode_ms = 1000;
MC_PARAM_UINT(oom_episode_ms, 10, 60000, 0644,
	      "An OOM episode ends when no OOM notification came for this long (ms, 10..60000, default 1000)");

static unsigned int relay_priv_gid = (unsigned int)-1;
MC_PARAM_UINT(relay_priv_gid, 0, (unsigned int)-1, 0644,
	      "A group whose members may register below MEMCOOP_PRIO_UNPRIV, like CAP_SYS_RESOURCE (gid, 0..4294967295, default 4294967295: none)");

static unsigned int relay_user_clients = 64;
MC_PARAM_UINT(relay_user_clients, 1, 65536, 0644,
	      "Registrations one user may hold at once; CAP_SYS_RESOURCE is exempt (1..65536, default 64)");

static unsigned int relay_max_clients = 4096;
MC_PARAM_UINT(relay_max_clients, 1, 65536, 0644,
	      "Registrations in all (1..65536, default 4096)");

static unsigned int relay_demote_answers = 4;
MC_PARAM_UINT(relay_demote_answers, 1, 1000, 0644,
	      "Honest answers in time a demoted client owes before it is asked in its own class again (1..1000, default 4)");

#define MC_OOM_ROUNDS_PER_SEC	8	/* OOM rounds allowed per second */
#define MC_CLIENT_REQS		32	/* remembered requests per client */
#define MC_CLASSES		(MEMCOOP_PRIO_MAX + 1)
/* an answer may exceed what was measured leaving by 1/8 plus this */
#define MC_LIE_SLACK		16
#define MC_RESCHED_EVERY	64	/* clients visited between cond_resched() */

enum mc_req_state {
	MC_REQ_FREE = 0,
	MC_REQ_OPEN,		/* sent, not answered, deadline not seen passed */
	MC_REQ_ANSWERED,	/* answered (in time or late) */
	MC_REQ_EXPIRED,		/* deadline passed unanswered: counted missed */
};

/* One shrink request sent to one client. */
struct mc_req {
	u64 seq;
	u64 pages;
	u64 deadline_ns;
	u64 round;		/* generation of the waiting round, 0 if none */
	u64 rss;		/* the registering process's RSS when asked */
	u64 est;		/* the client's estimate when asked */
	u32 reason;
	u32 state;		/* enum mc_req_state */
};

/* Registrations held by one user (real uid), under mc_clients_mutex. */
struct mc_user {
	struct hlist_node node;
	kuid_t uid;
	unsigned int clients;
};

/**
 * struct mc_client - a registered open file of /dev/memcoop.
 * @node:     in mc_class[@priority], under mc_clients_mutex.
 * @mf:       the file; outlives the client (freed after mc_relay_release()).
 * @pid:      the registering process (thread group), the only signal target.
 * @cred:     its credentials at registration: who sends the signals.
 * @exec_id:  its self_exec_id then: an exec ends signal delivery.
 * @user:     the per-user count this registration is in.
 * @signal:   real-time signal sent with each request, or 0.
 * @priority: 0..MEMCOOP_PRIO_MAX, lower classes are asked first.
 * @trusted:  registered with CAP_SYS_RESOURCE or in relay_priv_gid: its
 *            estimate is not capped at its own RSS (it may speak for others).
 * @name:     NUL-terminated, printable.
 * @reclaimable: the client's estimate (pages); READ_ONCE/WRITE_ONCE.
 * @round_est: what the round being shared out counts on (mc_clients_mutex).
 * @lock:     protects @reqs, @strikes and the accounting below.
 * @strikes:  honest answers owed before the client leaves the demoted tier.
 * @reclaim_seq: the open RECLAIM request (0 if none), and its deadline in
 *            @reclaim_deadline: the shrinker does not repeat it.
 * @reqs:     the last MC_CLIENT_REQS requests, to match answers.
 * @requests: shrink requests queued to this client.
 * @pages_requested: sum of their pages.
 * @answers:  answered before the deadline.
 * @late:     answered after the deadline.
 * @missed:   deadline passed (or client left) without an answer.
 * @lies:     answers that claimed more than was measured leaving.
 * @pages_freed: sum of the answers, as credited (lies cut down).
 * @signals_failed: real-time signals that could not be sent.
 * @signals_denied: signals not sent: no permission, or the process exec'd.
 */
struct mc_client {
	struct list_head node;
	struct mc_file *mf;
	struct pid *pid;
	const struct cred *cred;
	u64 exec_id;
	struct mc_user *user;
	int signal;
	u32 priority;
	bool trusted;
	char name[MEMCOOP_NAME_MAX];
	u64 reclaimable;
	u64 round_est;

	spinlock_t lock;
	unsigned int strikes;
	u64 reclaim_seq;
	u64 reclaim_deadline;
	struct mc_req reqs[MC_CLIENT_REQS];
	u64 requests;
	u64 pages_requested;
	u64 answers;
	u64 late;
	u64 missed;
	u64 lies;
	u64 pages_freed;
	u64 signals_failed;
	u64 signals_denied;
};

static struct list_head mc_class[MC_CLASSES];	/* by priority */
static DEFINE_MUTEX(mc_clients_mutex);
static DEFINE_HASHTABLE(mc_users, 6);		/* struct mc_user by uid */
static unsigned int mc_nr_clients;		/* under mc_clients_mutex */
static atomic64_t mc_reclaimable_total = ATOMIC64_INIT(0);	/* sum of estimates */
static atomic64_t mc_seq = ATOMIC64_INIT(0);

/* The waiting round in progress (at most one, under mc_round_mutex). */
static DEFINE_MUTEX(mc_round_mutex);
static struct {
	spinlock_t lock;
	wait_queue_head_t wq;
	u64 gen;		/* generation of the current or last round */
	bool active;
	unsigned int pending;	/* asked clients that have not answered */
	u64 want;		/* pages the round asked for */
	u64 freed;		/* pages credited in time */
} mc_round = {
	.lock = __SPIN_LOCK_UNLOCKED(mc_round.lock),
	.wq = __WAIT_QUEUE_HEAD_INITIALIZER(mc_round.wq),
};

/* Global counters, shown in debugfs (memcoop/relay). */
static struct {
	atomic64_t rounds;		/* waiting rounds (balloon + OOM) */
	atomic64_t rounds_timed_out;	/* rounds that hit the deadline */
	atomic64_t rounds_nobody;	/* rounds with no client to ask */
	atomic64_t requests;		/* shrink requests queued */
	atomic64_t requests_lost;	/* not queued: event queue full */
	atomic64_t answered;		/* answered before the deadline */
	atomic64_t late;		/* answered after the deadline */
	atomic64_t missed;		/* deadline passed without answer */
	atomic64_t bad_answers;		/* answers rejected (-ENOENT etc.) */
	atomic64_t lies;		/* answers claiming more than left */
	atomic64_t demotions;		/* clients moved to the demoted tier */
	atomic64_t pages_asked;
	atomic64_t pages_claimed;	/* sum of all answers as given */
	atomic64_t pages_freed;		/* sum of all answers as credited */
	atomic64_t balloon_calls;
	atomic64_t balloon_pages;	/* pages the balloon asked for */
	atomic64_t balloon_purged;	/* of those, purged from volatile ranges */
	atomic64_t balloon_freed;	/* of those, credited to clients in time */
	atomic64_t shrinker_counts;
	atomic64_t shrinker_scans;
	atomic64_t shrinker_batches;	/* scans that posted requests */
	atomic64_t oom_calls;
	atomic64_t oom_requests;
	atomic64_t oom_freed;		/* free memory measured rising in OOM rounds */
	atomic64_t oom_episodes;
	atomic64_t oom_impatient;	/* OOM calls past the episode's patience */
	atomic64_t register_denied;	/* EPERM: priority needs privilege */
	atomic64_t register_full;	/* per-user or global cap reached */
	atomic64_t signals_sent;
	atomic64_t signals_failed;
	atomic64_t signals_denied;	/* not sent: permission, or exec */
	atomic64_t last_round_ns;	/* duration of the last waiting round */
	atomic64_t max_round_ns;
} mc_stats;

static struct shrinker *mc_shrinker;
static unsigned long mc_reclaim_next;		/* jiffies, next batch allowed */
static atomic64_t mc_reclaim_backlog = ATOMIC64_INIT(0);
static unsigned long mc_oom_window;		/* jiffies, start of the OOM window */
static unsigned int mc_oom_rounds;		/* OOM rounds in that window */
static unsigned long mc_oom_last;		/* jiffies of the last OOM call */
static u64 mc_oom_waited_ns;			/* waited in this OOM episode */
static struct dentry *mc_relay_dentry;

static unsigned int mc_deadline_ms(void)
{
	return clamp_val(READ_ONCE(relay_deadline_ms), 1, MC_DEADLINE_MAX_MS);
}

static u64 mc_clamp_estimate(u64 pages)
{
	return min_t(u64, pages, totalram_pages());
}

static u64 mc_sub_sat(u64 a, u64 b)
{
	return a > b ? a - b : 0;
}

/* Resident pages of the registering process (0 once it is gone). */
static u64 mc_client_rss(struct mc_client *c)
{
	struct task_struct *p;
	u64 rss = 0;

	rcu_read_lock();
	p = pid_task(c->pid, PIDTYPE_TGID);
	if (p) {
		task_lock(p);
		if (p->mm)
			rss = get_mm_rss(p->mm);
		task_unlock(p);
	}
	rcu_read_unlock();
	return rss;
}

/* Move @c to the demoted tier (again).  Caller holds c->lock. */
static void mc_client_strike(struct mc_client *c)
{
	if (!c->strikes)
		atomic64_inc(&mc_stats.demotions);
	c->strikes = clamp_val(READ_ONCE(relay_demote_answers), 1, 1000);
}

/*
 * Complete @req's part in the waiting round if it belongs to the round in
 * progress.  Caller holds the client's lock.
 */
static void mc_round_complete(struct mc_req *req, u64 freed)
{
	if (!req->round)
		return;
	spin_lock(&mc_round.lock);
	if (mc_round.active && mc_round.gen == req->round && mc_round.pending) {
		mc_round.pending--;
		mc_round.freed += freed;
		if (!mc_round.pending || mc_round.freed >= mc_round.want)
			wake_up(&mc_round.wq);
	}
	spin_unlock(&mc_round.lock);
	req->round = 0;
}

/*
 * Count open requests whose deadline passed as missed, and demote the
 * client.  A late answer turns a missed request into a late one (the
 * demotion stays).  Caller holds c->lock.
 */
static void mc_client_expire(struct mc_client *c, u64 now)
{
	int i;

	for (i = 0; i < MC_CLIENT_REQS; i++) {
		struct mc_req *req = &c->reqs[i];

		if (req->state != MC_REQ_OPEN || now <= req->deadline_ns)
			continue;
		req->state = MC_REQ_EXPIRED;
		c->missed++;
		atomic64_inc(&mc_stats.missed);
		mc_client_strike(c);
	}
}

/*
 * A slot for a new request: a free one, else the oldest finished one,
 * else the oldest open one (which is then counted missed and leaves its
 * round).  Caller holds c->lock.
 */
static struct mc_req *mc_client_slot(struct mc_client *c)
{
	struct mc_req *done = NULL, *open = NULL;
	int i;

	for (i = 0; i < MC_CLIENT_REQS; i++) {
		struct mc_req *req = &c->reqs[i];

		if (req->state == MC_REQ_FREE)
			return req;
		if (req->state == MC_REQ_OPEN) {
			if (!open || req->seq < open->seq)
				open = req;
		} else if (!done || req->seq < done->seq) {
			done = req;
		}
	}
	if (done)
		return done;
	c->missed++;
	atomic64_inc(&mc_stats.missed);
	mc_client_strike(c);
	mc_round_complete(open, 0);
	return open;
}

/*
 * May @c be asked in @tier (0: good standing, 1: demoted) now?  Missed
 * requests are counted first, so a miss demotes before the next share-out.
 * With @skip_busy, not while it has an unanswered RECLAIM request within
 * its deadline.
 */
static bool mc_client_eligible(struct mc_client *c, int tier, bool skip_busy, u64 now)
{
	bool ok;

	spin_lock(&c->lock);
	mc_client_expire(c, now);
	ok = (c->strikes != 0) == tier &&
	     !(skip_busy && c->reclaim_seq && now <= c->reclaim_deadline);
	spin_unlock(&c->lock);
	return ok;
}

/*
 * sigio_perm()'s rule (fs/fcntl.c) for credentials taken at registration:
 * root, or a match between the sender's uid/euid and the target's uid/suid.
 */
static bool mc_signal_perm(const struct cred *cred, const struct cred *tcred)
{
	return uid_eq(cred->euid, GLOBAL_ROOT_UID) ||
	       uid_eq(cred->euid, tcred->suid) || uid_eq(cred->euid, tcred->uid) ||
	       uid_eq(cred->uid, tcred->suid) || uid_eq(cred->uid, tcred->uid);
}

/*
 * Send @c's real-time signal to the registering process, if it has not
 * executed a new program since and the registering credentials may signal
 * what it runs as now.  Return: 0, -EPERM if not allowed, or kill_pid()'s
 * error.
 */
static int mc_client_signal(struct mc_client *c)
{
	struct task_struct *p;
	int err = -ESRCH;

	rcu_read_lock();
	p = pid_task(c->pid, PIDTYPE_TGID);
	if (p) {
		if (READ_ONCE(p->self_exec_id) != c->exec_id ||
		    !mc_signal_perm(c->cred, __task_cred(p)))
			err = -EPERM;
		else
			err = kill_pid(c->pid, c->signal, 1);
	}
	rcu_read_unlock();
	return err;
}

/**
 * mc_client_ask() - send one shrink request to one client.
 * @c:        the client.
 * @pages:    pages wanted, at least 1.
 * @reason:   MEMCOOP_REASON_*.
 * @level:    MEMCOOP_LEVEL_*.
 * @deadline: CLOCK_MONOTONIC ns.
 * @round:    the waiting round's generation, or 0.
 *
 * Caller holds mc_clients_mutex (so @c stays registered) and, for a
 * waiting round, has counted the request in mc_round.pending; on failure
 * the count is taken back here.  Does not sleep.
 *
 * Return: true if the request was queued.
 */
static bool mc_client_ask(struct mc_client *c, u64 pages, u32 reason, u32 level,
			  u64 deadline, u64 round)
{
	struct memcoop_event ev = {
		.type = MEMCOOP_EVENT_SHRINK,
		.shrink.pages = pages,
		.shrink.deadline_ns = deadline,
		.shrink.reason = reason,
		.shrink.level = level,
	};
	u64 rss = mc_client_rss(c);
	struct mc_req *req;
	bool queued;
	int err;

	lockdep_assert_held(&mc_clients_mutex);

	spin_lock(&c->lock);
	mc_client_expire(c, ktime_get_ns());
	req = mc_client_slot(c);
	ev.seq = atomic64_inc_return(&mc_seq);
	/* posted under c->lock: an answer cannot overtake the slot's setup */
	queued = mc_file_post_event(c->mf, &ev);
	if (queued) {
		req->seq = ev.seq;
		req->pages = pages;
		req->deadline_ns = deadline;
		req->round = round;
		req->rss = rss;
		req->est = READ_ONCE(c->reclaimable);
		req->reason = reason;
		req->state = MC_REQ_OPEN;
		c->requests++;
		c->pages_requested += pages;
		if (reason == MEMCOOP_REASON_RECLAIM) {
			c->reclaim_seq = ev.seq;
			c->reclaim_deadline = deadline;
		}
	} else {
		req->state = MC_REQ_FREE;
		req->round = 0;
	}
	spin_unlock(&c->lock);

	if (!queued) {
		atomic64_inc(&mc_stats.requests_lost);
		if (round) {
			spin_lock(&mc_round.lock);
			if (mc_round.gen == round && mc_round.pending)
				mc_round.pending--;
			spin_unlock(&mc_round.lock);
		}
		return false;
	}
	atomic64_inc(&mc_stats.requests);
	atomic64_add(pages, &mc_stats.pages_asked);
	if (reason == MEMCOOP_REASON_OOM)
		atomic64_inc(&mc_stats.oom_requests);

	if (c->signal) {
		err = mc_client_signal(c);
		spin_lock(&c->lock);
		if (err == -EPERM)
			c->signals_denied++;
		else if (err)
			c->signals_failed++;
		spin_unlock(&c->lock);
		if (err == -EPERM)
			atomic64_inc(&mc_stats.signals_denied);
		else if (err)
			atomic64_inc(&mc_stats.signals_failed);
		else
			atomic64_inc(&mc_stats.signals_sent);
	}
	return true;
}

/*
 * What @c can be asked for now: its estimate, capped at its resident
 * memory unless it is trusted.
 */
static u64 mc_client_estimate(struct mc_client *c)
{
	u64 est = READ_ONCE(c->reclaimable);

	if (est && !c->trusted)
		est = min(est, mc_client_rss(c));
	return est;
}

/*
 * Share @pages out among the clients of class @prio in @tier (0: in good
 * standing, 1: demoted).  Caller holds mc_clients_mutex.  Returns the pages
 * placed; *@asked counts the requests queued.
 */
static u64 mc_class_ask(u32 prio, int tier, u64 pages, u32 reason, u32 level, u64 deadline,
			u64 round, bool skip_busy, u64 now, unsigned int *asked)
{
	u64 sum = 0, left, share, est;
	unsigned int visited = 0;
	struct mc_client *c;

	list_for_each_entry(c, &mc_class[prio], node) {
		c->round_est = 0;
		if (++visited % MC_RESCHED_EVERY == 0)
			cond_resched();
		if (!mc_client_eligible(c, tier, skip_busy, now))
			continue;
		c->round_est = mc_client_estimate(c);
		sum += c->round_est;
	}
	if (!sum)
		return 0;
	left = min(pages, sum);
	pages = left;

	list_for_each_entry(c, &mc_class[prio], node) {
		if (!left || !sum)
			break;
		if (++visited % MC_RESCHED_EVERY == 0)
			cond_resched();
		est = min(c->round_est, sum);
		if (!est)
			continue;
		/* estimates <= totalram, so left * est cannot overflow */
		share = DIV64_U64_ROUND_UP(left * est, sum);
		share = min3(share, est, left);
		left -= share;
		sum -= est;
		if (!share)
			continue;
		if (round) {
			spin_lock(&mc_round.lock);
			mc_round.pending++;
			spin_unlock(&mc_round.lock);
		}
		if (mc_client_ask(c, share, reason, level, deadline, round))
			(*asked)++;
	}
	return pages - left;
}

#define MC_ASK_SKIP_BUSY	BIT(0)	/* skip clients with an open RECLAIM request */
#define MC_ASK_TRYLOCK		BIT(1)	/* reclaim context: do not wait for the lists */

/**
 * mc_relay_ask() - share @pages out among the registered clients.
 * @pages:    pages to find.
 * @reason:   MEMCOOP_REASON_*.
 * @level:    MEMCOOP_LEVEL_*.
 * @deadline: CLOCK_MONOTONIC ns given to the clients.
 * @round:    generation of the waiting round (mc_round.active), or 0.
 * @flags:    MC_ASK_*.
 *
 * Clients in good standing come first, class by class from 0; demoted
 * clients after all of them, class by class again.  A class whose
 * estimates add up to less than what is left is asked for all of it,
 * otherwise the rest is apportioned by estimate (each client at most its
 * estimate, the sum exactly what is left).  Clients with a zero estimate
 * are not asked.  Each client is visited at most four times, and the
 * number of clients is bounded by relay_max_clients.  May sleep unless
 * MC_ASK_TRYLOCK.
 *
 * Return: the number of requests queued.
 */
static unsigned int mc_relay_ask(u64 pages, u32 reason, u32 level, u64 deadline,
				 u64 round, unsigned int flags)
{
	bool skip_busy = flags & MC_ASK_SKIP_BUSY;
	u64 now = ktime_get_ns();
	unsigned int asked = 0;
	int tier;
	u32 prio;

	if (flags & MC_ASK_TRYLOCK) {
		if (!mutex_trylock(&mc_clients_mutex))
			return 0;
	} else {
		mutex_lock(&mc_clients_mutex);
	}
	for (tier = 0; tier < 2; tier++)
		for (prio = 0; prio < MC_CLASSES && pages; prio++)
			pages -= mc_class_ask(prio, tier, pages, reason, level, deadline,
					      round, skip_busy, now, &asked);
	mutex_unlock(&mc_clients_mutex);
	return asked;
}

/**
 * mc_relay_round() - ask for @pages and wait for the answers.
 * @pages:    pages to find.
 * @reason:   MEMCOOP_REASON_*.
 * @level:    MEMCOOP_LEVEL_*.
 * @deadline: CLOCK_MONOTONIC ns; the wait ends then at the latest.
 *
 * Caller holds mc_round_mutex.  Sleeps (uninterruptibly) until every
 * asked client answered or left, the credited answers cover @pages, or
 * the deadline passed.
 *
 * Return: pages credited to the clients' answers in time.
 */
static u64 mc_relay_round(u64 pages, u32 reason, u32 level, u64 deadline)
{
	u64 start = ktime_get_ns(), gen, freed, took;
	unsigned int asked;
	bool timed_out;

	lockdep_assert_held(&mc_round_mutex);

	spin_lock(&mc_round.lock);
	gen = ++mc_round.gen;
	mc_round.active = true;
	mc_round.pending = 0;
	mc_round.want = pages;
	mc_round.freed = 0;
	spin_unlock(&mc_round.lock);

	asked = mc_relay_ask(pages, reason, level, deadline, gen, 0);
	atomic64_inc(&mc_stats.rounds);
	if (!asked)
		atomic64_inc(&mc_stats.rounds_nobody);

	if (asked && deadline > start) {
		unsigned long timeout = nsecs_to_jiffies(deadline - start) + 1;

		wait_event_timeout(mc_round.wq, !READ_ONCE(mc_round.pending) ||
				   READ_ONCE(mc_round.freed) >= pages, timeout);
	}

	spin_lock(&mc_round.lock);
	mc_round.active = false;
	timed_out = mc_round.pending != 0 && mc_round.freed < pages;
	freed = mc_round.freed;
	spin_unlock(&mc_round.lock);

	if (timed_out)
		atomic64_inc(&mc_stats.rounds_timed_out);
	took = ktime_get_ns() - start;
	atomic64_set(&mc_stats.last_round_ns, took);
	if (took > atomic64_read(&mc_stats.max_round_ns))
		atomic64_set(&mc_stats.max_round_ns, took);
	pr_debug("round %llu reason %u: asked %u clients for %llu pages, %llu freed in %llu us%s\n",
		 gen, reason, asked, pages, freed, div_u64(took, NSEC_PER_USEC),
		 timed_out ? " (deadline)" : "");
	return freed;
}

unsigned long mc_reclaim_for_balloon(unsigned long pages)
{
	u64 deadline, purged, freed = 0;

	if (!pages)
		return 0;
	mutex_lock(&mc_round_mutex);
	/* the deadline covers the purge as well: never sleep longer */
	deadline = ktime_get_ns() + (u64)mc_deadline_ms() * NSEC_PER_MSEC;
	atomic64_inc(&mc_stats.balloon_calls);
	atomic64_add(pages, &mc_stats.balloon_pages);

	purged = mc_vrange_purge(pages, MEMCOOP_REASON_BALLOON);
	atomic64_add(purged, &mc_stats.balloon_purged);
	if (purged < pages && ktime_get_ns() < deadline)
		freed = mc_relay_round(pages - purged, MEMCOOP_REASON_BALLOON,
				       MEMCOOP_LEVEL_MEDIUM, deadline);
	atomic64_add(freed, &mc_stats.balloon_freed);
	mutex_unlock(&mc_round_mutex);
	return purged + freed;
}

static u64 mc_free_pages(void)
{
	return global_zone_page_state(NR_FREE_PAGES);
}

unsigned long mc_relay_oom(unsigned long pages)
{
	u64 wait_ns = (u64)min(READ_ONCE(oom_wait_ms), MC_OOM_WAIT_MAX_MS) * NSEC_PER_MSEC;
	u64 patience_ns = (u64)READ_ONCE(oom_patience_ms) * NSEC_PER_MSEC;
	u64 start, deadline, before, after, freed = 0;
	unsigned long now = jiffies;

	if (!pages)
		return 0;
	atomic64_inc(&mc_stats.oom_calls);
	/*
	 * Callers are serialised by oom_lock.  An episode is a run of OOM
	 * calls less than oom_episode_ms apart; in all it waits at most
	 * oom_patience_ms, so no answer (true or not) holds kills back for
	 * longer.  What is reported is the rise of free memory measured
	 * around the round, never the clients' claims.
	 */
	if (time_after(now, mc_oom_last + msecs_to_jiffies(READ_ONCE(oom_episode_ms))) ||
	    !mc_oom_last) {
		mc_oom_waited_ns = 0;
		atomic64_inc(&mc_stats.oom_episodes);
	}
	mc_oom_last = now ? now : 1;
	if (mc_oom_waited_ns >= patience_ns) {
		atomic64_inc(&mc_stats.oom_impatient);
		return 0;
	}
	wait_ns = min(wait_ns, patience_ns - mc_oom_waited_ns);
	/* and never more than a few rounds a second */
	if (time_after(now, mc_oom_window + HZ)) {
		mc_oom_window = now;
		mc_oom_rounds = 0;
	}
	if (mc_oom_rounds >= MC_OOM_ROUNDS_PER_SEC)
		return 0;
	mc_oom_rounds++;

	start = ktime_get_ns();
	deadline = start + wait_ns;
	if (!wait_ns || !mutex_trylock(&mc_round_mutex)) {
		/* a balloon round is waiting (or no wait wanted): ask, don't wait */
		mc_relay_ask(pages, MEMCOOP_REASON_OOM, MEMCOOP_LEVEL_CRITICAL, deadline, 0, 0);
		return 0;
	}
	before = mc_free_pages();
	mc_relay_round(pages, MEMCOOP_REASON_OOM, MEMCOOP_LEVEL_CRITICAL, deadline);
	after = mc_free_pages();
	mutex_unlock(&mc_round_mutex);
	mc_oom_waited_ns += ktime_get_ns() - start;
	freed = mc_sub_sat(after, before);
	atomic64_add(freed, &mc_stats.oom_freed);
	return freed;
}

static int mc_oom_notify(struct notifier_block *nb, unsigned long unused, void *parm)
{
	unsigned long *freed = parm;
	u64 pages = atomic64_read(&mc_reclaimable_total);

	if (!pages)
		return NOTIFY_OK;
	/*
	 * The last chance before a kill: ask for a large chunk, 1/8 of RAM
	 * (128 MiB per GiB), at least 1 MiB, so that one round can carry
	 * the allocator past the OOM interval.
	 */
	pages = min_t(u64, pages, max(totalram_pages() / 8, 256UL));
	*freed += mc_relay_oom(pages);
	return NOTIFY_OK;
}

/* Before the balloon's deflate-on-OOM (priority 80): ask processes first. */
static struct notifier_block mc_oom_nb = {
	.notifier_call = mc_oom_notify,
	.priority = 90,
};

static unsigned long mc_shrink_count(struct shrinker *s, struct shrink_control *sc)
{
	atomic64_inc(&mc_stats.shrinker_counts);
	return min_t(u64, atomic64_read(&mc_reclaimable_total), totalram_pages());
}

/*
 * Relay the guest's reclaim: post requests without waiting (the memory
 * comes back later through the processes' own frees) and tell reclaim we
 * freed nothing synchronously.  Scans between two batches accumulate.
 */
static unsigned long mc_shrink_scan(struct shrinker *s, struct shrink_control *sc)
{
	unsigned long next = READ_ONCE(mc_reclaim_next);
	u64 pages, deadline;
	u32 level;

	atomic64_inc(&mc_stats.shrinker_scans);
	atomic64_add(sc->nr_to_scan, &mc_reclaim_backlog);
	if (time_before(jiffies, next))
		return SHRINK_STOP;
	/* one scanner wins the batch */
	if (cmpxchg(&mc_reclaim_next, next,
		    jiffies + msecs_to_jiffies(READ_ONCE(reclaim_interval_ms))) != next)
		return SHRINK_STOP;

	pages = atomic64_xchg(&mc_reclaim_backlog, 0);
	if (!pages)
		return SHRINK_STOP;
	/* a storm's backlog is not a reason to empty every cache: 1/32 of RAM */
	pages = min_t(u64, pages, max(totalram_pages() / 32, 256UL));
	level = current_is_kswapd() ? MEMCOOP_LEVEL_LOW : MEMCOOP_LEVEL_MEDIUM;
	deadline = ktime_get_ns() + (u64)mc_deadline_ms() * NSEC_PER_MSEC;
	if (mc_relay_ask(pages, MEMCOOP_REASON_RECLAIM, level, deadline, 0,
			 MC_ASK_SKIP_BUSY | MC_ASK_TRYLOCK))
		atomic64_inc(&mc_stats.shrinker_batches);
	return SHRINK_STOP;
}

/* May the caller register at priorities below MEMCOOP_PRIO_UNPRIV? */
static bool mc_may_jump_queue(void)
{
	unsigned int gid = READ_ONCE(relay_priv_gid);
	kgid_t kgid;

	if (capable(CAP_SYS_RESOURCE))
		return true;
	if (gid == (unsigned int)-1)
		return false;
	kgid = make_kgid(&init_user_ns, gid);
	return gid_valid(kgid) && in_group_p(kgid);
}

static struct mc_user *mc_user_find(kuid_t uid)
{
	struct mc_user *u;

	hash_for_each_possible(mc_users, u, node, __kuid_val(uid))
		if (uid_eq(u->uid, uid))
			return u;
	return NULL;
}

/*
 * Put @c on its class list, counted for its user.  @spare is a zeroed
 * struct mc_user for a user not seen yet (consumed: set to NULL).
 * Caller holds mc_clients_mutex.  Return: 0, -EMFILE (the user holds
 * relay_user_clients) or -ENOSPC (relay_max_clients in all).
 */
static int mc_client_add(struct mc_client *c, struct mc_user **spare, bool uncapped)
{
	kuid_t uid = c->cred->uid;
	struct mc_user *u = mc_user_find(uid);

	if (u && !uncapped && u->clients >= READ_ONCE(relay_user_clients))
		return -EMFILE;
	if (mc_nr_clients >= READ_ONCE(relay_max_clients))
		return -ENOSPC;
	if (!u) {
		u = *spare;
		*spare = NULL;
		u->uid = uid;
		hash_add(mc_users, &u->node, __kuid_val(uid));
	}
	u->clients++;
	c->user = u;
	list_add_tail(&c->node, &mc_class[c->priority]);
	mc_nr_clients++;
	atomic64_add(c->reclaimable, &mc_reclaimable_total);
	return 0;
}

static int mc_ioctl_register(struct mc_file *mf, void __user *uarg)
{
	struct memcoop_register reg;
	struct mc_user *spare;
	struct mc_client *c;
	bool uncapped;
	size_t len;
	int i, err = 0;

	if (copy_from_user(&reg, uarg, sizeof(reg)))
		return -EFAULT;
	if (reg.flags || reg.reserved[0] || reg.reserved[1])
		return -EINVAL;
	if (reg.priority > MEMCOOP_PRIO_MAX)
		return -EINVAL;
	/* 32 and 33 are the C library's own (NPTL); the kernel's SIGRTMAX is 64 */
	if (reg.signal && (reg.signal < MEMCOOP_SIGNAL_MIN || reg.signal > SIGRTMAX))
		return -EINVAL;
	len = strnlen((const char *)reg.name, sizeof(reg.name));
	if (!len || len == sizeof(reg.name))
		return -EINVAL;
	for (i = 0; i < len; i++)
		if (!isprint(reg.name[i]))
			return -EINVAL;

	err = mc_file_events_on(mf);
	if (err)
		return err;
	c = kzalloc(sizeof(*c), GFP_KERNEL_ACCOUNT);
	spare = kzalloc(sizeof(*spare), GFP_KERNEL_ACCOUNT);
	if (!c || !spare) {
		err = -ENOMEM;
		goto out_free;
	}
	c->trusted = mc_may_jump_queue();
	if (reg.priority < MEMCOOP_PRIO_UNPRIV && !c->trusted) {
		atomic64_inc(&mc_stats.register_denied);
		err = -EPERM;
		goto out_free;
	}
	uncapped = capable(CAP_SYS_RESOURCE);
	spin_lock_init(&c->lock);
	c->mf = mf;
	c->signal = reg.signal;
	c->priority = reg.priority;
	c->reclaimable = mc_clamp_estimate(reg.reclaimable);
	memcpy(c->name, reg.name, len + 1);
	c->pid = get_task_pid(current, PIDTYPE_TGID);
	c->cred = get_current_cred();
	c->exec_id = READ_ONCE(current->self_exec_id);

	mutex_lock(&mf->lock);
	if (mf->client) {
		err = -EBUSY;
		goto out_unlock;
	}
	mutex_lock(&mc_clients_mutex);
	err = mc_client_add(c, &spare, uncapped);
	mutex_unlock(&mc_clients_mutex);
	if (err) {
		atomic64_inc(&mc_stats.register_full);
		goto out_unlock;
	}
	smp_store_release(&mf->client, c);
	mutex_unlock(&mf->lock);
	kfree(spare);
	pr_debug("registered \"%s\" pid %d priority %u estimate %llu signal %d%s\n",
		 c->name, pid_nr(c->pid), c->priority, c->reclaimable, c->signal,
		 c->trusted ? " trusted" : "");
	return 0;

out_unlock:
	mutex_unlock(&mf->lock);
	put_cred(c->cred);
	put_pid(c->pid);
out_free:
	kfree(spare);
	kfree(c);
	return err;
}

static int mc_ioctl_set_reclaimable(struct mc_client *c, void __user *uarg)
{
	struct memcoop_reclaimable rec;
	u64 est, old;

	if (copy_from_user(&rec, uarg, sizeof(rec)))
		return -EFAULT;
	if (rec.reserved)
		return -EINVAL;
	est = mc_clamp_estimate(rec.reclaimable);
	old = xchg(&c->reclaimable, est);
	atomic64_add(est - old, &mc_reclaimable_total);
	return 0;
}

static int mc_ioctl_answer(struct mc_client *c, void __user *uarg)
{
	struct memcoop_answer ans;
	struct mc_req *req = NULL;
	u64 now = ktime_get_ns(), rss, left, credit = 0;
	int i, err = 0;

	if (copy_from_user(&ans, uarg, sizeof(ans)))
		return -EFAULT;
	if (ans.reserved[0] || ans.reserved[1])
		return -EINVAL;
	rss = mc_client_rss(c);

	spin_lock(&c->lock);
	mc_client_expire(c, now);
	for (i = 0; i < MC_CLIENT_REQS; i++) {
		if (c->reqs[i].state != MC_REQ_FREE && c->reqs[i].seq == ans.seq) {
			req = &c->reqs[i];
			break;
		}
	}
	if (!req || !ans.seq) {
		err = -ENOENT;
	} else if (req->state == MC_REQ_ANSWERED) {
		err = -EALREADY;
	} else if (ans.freed > req->pages) {
		err = -ERANGE;
	} else {
		/*
		 * What can be seen leaving since the request: the process's
		 * RSS, or the estimate (a client may speak for others).
		 */
		left = max(mc_sub_sat(req->rss, rss),
			   mc_sub_sat(req->est, READ_ONCE(c->reclaimable)));
		credit = min(ans.freed, left);
		if (ans.freed > left + left / 8 + MC_LIE_SLACK) {
			c->lies++;
			atomic64_inc(&mc_stats.lies);
			mc_client_strike(c);
		}
		if (req->state == MC_REQ_EXPIRED) {
			c->missed--;
			c->late++;
			atomic64_dec(&mc_stats.missed);
			atomic64_inc(&mc_stats.late);
		} else {
			c->answers++;
			atomic64_inc(&mc_stats.answered);
			mc_round_complete(req, credit);
			if (c->strikes && ans.freed <= left + left / 8 + MC_LIE_SLACK)
				c->strikes--;
		}
		if (c->reclaim_seq == req->seq)
			c->reclaim_seq = 0;
		req->state = MC_REQ_ANSWERED;
		req->round = 0;
		c->pages_freed += credit;
		atomic64_add(ans.freed, &mc_stats.pages_claimed);
		atomic64_add(credit, &mc_stats.pages_freed);
	}
	spin_unlock(&c->lock);
	if (err)
		atomic64_inc(&mc_stats.bad_answers);
	return err;
}

static int mc_ioctl_client_stats(struct mc_file *mf, struct mc_client *c, void __user *uarg)
{
	struct memcoop_client_stats st;

	if (copy_from_user(&st, uarg, sizeof(st)))
		return -EFAULT;
	if (st.reserved[0] || st.reserved[1])
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	if (c) {
		spin_lock(&c->lock);
		mc_client_expire(c, ktime_get_ns());
		st.requests = c->requests;
		st.pages_requested = c->pages_requested;
		st.answers = c->answers;
		st.late = c->late;
		st.missed = c->missed;
		st.pages_freed = c->pages_freed;
		spin_unlock(&c->lock);
	}
	spin_lock_irq(&mf->evlock);
	st.events_lost = mf->lost_total;
	spin_unlock_irq(&mf->evlock);
	/* pages_purged: vrange.c has no per-file counter interface yet */
	if (copy_to_user(uarg, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

long mc_relay_ioctl(struct mc_file *mf, unsigned int cmd, void __user *arg)
{
	struct mc_client *c = smp_load_acquire(&mf->client);

	switch (cmd) {
	case MEMCOOP_IOC_REGISTER:
		return mc_ioctl_register(mf, arg);
	case MEMCOOP_IOC_CLIENT_STATS:
		return mc_ioctl_client_stats(mf, c, arg);
	case MEMCOOP_IOC_SET_RECLAIMABLE:
		if (!c)
			return -EINVAL;
		return mc_ioctl_set_reclaimable(c, arg);
	case MEMCOOP_IOC_ANSWER:
		if (!c)
			return -EINVAL;
		return mc_ioctl_answer(c, arg);
	default:
		return -ENOTTY;
	}
}

/**
 * mc_relay_release() - unregister @mf's client, if any.
 * @mf: the file, its last reference gone (no ioctl can run).
 *
 * Open requests count as missed and leave the waiting round, so a closed
 * or dead client never holds the balloon until the deadline.
 */
void mc_relay_release(struct mc_file *mf)
{
	struct mc_client *c = mf->client;
	int i;

	if (!c)
		return;
	mutex_lock(&mc_clients_mutex);
	list_del(&c->node);
	mc_nr_clients--;
	atomic64_sub(READ_ONCE(c->reclaimable), &mc_reclaimable_total);
	if (!--c->user->clients) {
		hash_del(&c->user->node);
		kfree(c->user);
	}
	mutex_unlock(&mc_clients_mutex);

	spin_lock(&c->lock);
	for (i = 0; i < MC_CLIENT_REQS; i++) {
		struct mc_req *req = &c->reqs[i];

		if (req->state != MC_REQ_OPEN)
			continue;
		req->state = MC_REQ_EXPIRED;
		c->missed++;
		atomic64_inc(&mc_stats.missed);
		mc_round_complete(req, 0);
	}
	spin_unlock(&c->lock);

	pr_debug("unregistered \"%s\" pid %d: %llu requests, %llu answers, %llu late, %llu missed, %llu lies, %llu pages freed\n",
		 c->name, pid_nr(c->pid), c->requests, c->answers, c->late, c->missed,
		 c->lies, c->pages_freed);
	mf->client = NULL;
	put_cred(c->cred);
	put_pid(c->pid);
	kfree(c);
}

#define MC_STAT(name) { #name, &mc_stats.name }
static const struct {
	const char *name;
	atomic64_t *v;
} mc_stat_table[] = {
	MC_STAT(rounds), MC_STAT(rounds_timed_out), MC_STAT(rounds_nobody),
	MC_STAT(requests), MC_STAT(requests_lost), MC_STAT(answered), MC_STAT(late),
	MC_STAT(missed), MC_STAT(bad_answers), MC_STAT(lies), MC_STAT(demotions),
	MC_STAT(pages_asked), MC_STAT(pages_claimed), MC_STAT(pages_freed),
	MC_STAT(balloon_calls), MC_STAT(balloon_pages), MC_STAT(balloon_purged),
	MC_STAT(balloon_freed), MC_STAT(shrinker_counts), MC_STAT(shrinker_scans),
	MC_STAT(shrinker_batches), MC_STAT(oom_calls), MC_STAT(oom_requests),
	MC_STAT(oom_freed), MC_STAT(oom_episodes), MC_STAT(oom_impatient),
	MC_STAT(register_denied), MC_STAT(register_full),
	MC_STAT(signals_sent), MC_STAT(signals_failed), MC_STAT(signals_denied),
	MC_STAT(last_round_ns), MC_STAT(max_round_ns),
};

/* debugfs memcoop/relay: global counters, then one line per client. */
static int mc_relay_show(struct seq_file *m, void *unused)
{
	u64 now = ktime_get_ns();
	unsigned int visited = 0;
	struct mc_client *c;
	int i, prio;

	mutex_lock(&mc_clients_mutex);
	/* bring "missed" up to date first */
	for (prio = 0; prio < MC_CLASSES; prio++) {
		list_for_each_entry(c, &mc_class[prio], node) {
			spin_lock(&c->lock);
			mc_client_expire(c, now);
			spin_unlock(&c->lock);
			if (++visited % MC_RESCHED_EVERY == 0)
				cond_resched();
		}
	}

	for (i = 0; i < ARRAY_SIZE(mc_stat_table); i++)
		seq_printf(m, "%s %lld\n", mc_stat_table[i].name,
			   atomic64_read(mc_stat_table[i].v));
	seq_printf(m, "clients %u\n", mc_nr_clients);
	seq_printf(m, "deadline_ms %u\n", mc_deadline_ms());
	seq_puts(m, "\n# name pid priority estimate requests pages_requested answers late missed pages_freed signals_failed trusted strikes lies signals_denied\n");

	for (prio = 0; prio < MC_CLASSES; prio++) {
		list_for_each_entry(c, &mc_class[prio], node) {
			spin_lock(&c->lock);
			seq_printf(m, "%s %d %u %llu %llu %llu %llu %llu %llu %llu %llu %d %u %llu %llu\n",
				   c->name, pid_nr(c->pid), c->priority,
				   READ_ONCE(c->reclaimable), c->requests, c->pages_requested,
				   c->answers, c->late, c->missed, c->pages_freed,
				   c->signals_failed, c->trusted, c->strikes, c->lies,
				   c->signals_denied);
			spin_unlock(&c->lock);
			if (++visited % MC_RESCHED_EVERY == 0)
				cond_resched();
		}
	}
	mutex_unlock(&mc_clients_mutex);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mc_relay);

int mc_relay_init(void)
{
	int err, i;

	for (i = 0; i < MC_CLASSES; i++)
		INIT_LIST_HEAD(&mc_class[i]);
	mc_reclaim_next = jiffies;
	mc_oom_window = jiffies;
	mc_shrinker = mc_shrinker_create("memcoop-relay", mc_shrink_count, mc_shrink_scan,
					 DEFAULT_SEEKS, 0, NULL);
	if (!mc_shrinker)
		return -ENOMEM;
	err = register_oom_notifier(&mc_oom_nb);
	if (err)
		goto out_shrinker;
	if (mc_debugfs_root)
		mc_relay_dentry = debugfs_create_file("relay", 0444, mc_debugfs_root, NULL,
						      &mc_relay_fops);
	return 0;

out_shrinker:
	mc_shrinker_destroy(mc_shrinker);
	mc_shrinker = NULL;
	return err;
}

void mc_relay_exit(void)
{
	debugfs_remove(mc_relay_dentry);
	mc_relay_dentry = NULL;
	unregister_oom_notifier(&mc_oom_nb);
	mc_shrinker_destroy(mc_shrinker);
	mc_shrinker = NULL;
	/* every file is closed before the module can go */
	WARN_ON_ONCE(mc_nr_clients);
}
