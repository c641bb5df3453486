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
 *    every asked client up to relay_deadline_ms, then returns;
 *  - the guest's own reclaim (a shrinker): requests are posted and never
 *    waited for, rate-limited to one batch per reclaim_interval_ms;
 *  - the OOM killer (an OOM notifier): a last CRITICAL request, waited
 *    for at most oom_wait_ms.
 *
 * Locking, outermost first:
 *   mc_round_mutex    serialises waiting rounds (balloon, OOM)
 *   mc_clients_lock   spinlock: the client list; posting holds it, so a
 *                     client on the list cannot be freed under a poster
 *   mc_client.lock    spinlock: the client's request slots and accounting
 *   mc_round.lock     spinlock: the current round's pending/freed counts
 *   mc_file.evlock    (dev.c) the event ring
 * None of these is taken from interrupt context.  Nothing here allocates
 * memory while posting, so the shrinker and OOM paths cannot recurse.
 *
 * All page counts are in PAGE_SIZE pages; times are CLOCK_MONOTONIC ns.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": relay: " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/pid.h>
#include <linux/ktime.h>
#include <linux/jiffies.h>
#include <linux/oom.h>
#include <linux/swap.h>
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
	      "How long the OOM notifier waits for answers (ms, 0..1000, default 50)");

#define MC_OOM_ROUNDS_PER_SEC	8	/* OOM rounds allowed per second */
#define MC_CLIENT_REQS		32	/* remembered requests per client */

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
	u32 reason;
	u32 state;		/* enum mc_req_state */
};

/**
 * struct mc_client - a registered open file of /dev/memcoop.
 * @node:     in mc_clients, under mc_clients_lock.
 * @mf:       the file; outlives the client (freed after mc_relay_release()).
 * @pid:      the registering process (thread group), the only signal target.
 * @signal:   real-time signal sent with each request, or 0.
 * @priority: 0..MEMCOOP_PRIO_MAX, lower classes are asked first.
 * @name:     NUL-terminated, printable.
 * @reclaimable: the client's estimate (pages); READ_ONCE/WRITE_ONCE.
 * @lock:     protects @reqs and the accounting below.
 * @reqs:     the last MC_CLIENT_REQS requests, to match answers.
 * @requests: shrink requests queued to this client.
 * @pages_requested: sum of their pages.
 * @answers:  answered before the deadline.
 * @late:     answered after the deadline.
 * @missed:   deadline passed (or client left) without an answer.
 * @pages_freed: sum of the answers.
 * @signals_failed: real-time signals that could not be sent.
 */
struct mc_client {
	struct list_head node;
	struct mc_file *mf;
	struct pid *pid;
	int signal;
	u32 priority;
	char name[MEMCOOP_NAME_MAX];
	u64 reclaimable;

	spinlock_t lock;
	struct mc_req reqs[MC_CLIENT_REQS];
	u64 requests;
	u64 pages_requested;
	u64 answers;
	u64 late;
	u64 missed;
	u64 pages_freed;
	u64 signals_failed;
};

static LIST_HEAD(mc_clients);
static DEFINE_SPINLOCK(mc_clients_lock);
static unsigned int mc_nr_clients;		/* under mc_clients_lock */
static atomic64_t mc_seq = ATOMIC64_INIT(0);

/* The waiting round in progress (at most one, under mc_round_mutex). */
static DEFINE_MUTEX(mc_round_mutex);
static struct {
	spinlock_t lock;
	wait_queue_head_t wq;
	u64 gen;		/* generation of the current or last round */
	bool active;
	unsigned int pending;	/* asked clients that have not answered */
	u64 freed;		/* pages reported freed in time */
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
	atomic64_t pages_asked;
	atomic64_t pages_freed;		/* sum of all answers */
	atomic64_t balloon_calls;
	atomic64_t balloon_pages;	/* pages the balloon asked for */
	atomic64_t balloon_purged;	/* of those, purged from volatile ranges */
	atomic64_t balloon_freed;	/* of those, freed by clients in time */
	atomic64_t shrinker_counts;
	atomic64_t shrinker_scans;
	atomic64_t shrinker_batches;	/* scans that posted requests */
	atomic64_t oom_calls;
	atomic64_t oom_requests;
	atomic64_t oom_freed;
	atomic64_t signals_sent;
	atomic64_t signals_failed;
	atomic64_t last_round_ns;	/* duration of the last waiting round */
	atomic64_t max_round_ns;
} mc_stats;

static struct shrinker *mc_shrinker;
static unsigned long mc_reclaim_next;		/* jiffies, next batch allowed */
static atomic64_t mc_reclaim_backlog = ATOMIC64_INIT(0);
static unsigned long mc_oom_window;		/* jiffies, start of the OOM window */
static unsigned int mc_oom_rounds;		/* OOM rounds in that window */
static struct dentry *mc_relay_dentry;

static unsigned int mc_deadline_ms(void)
{
	return clamp_val(READ_ONCE(relay_deadline_ms), 1, MC_DEADLINE_MAX_MS);
}

static u64 mc_clamp_estimate(u64 pages)
{
	return min_t(u64, pages, totalram_pages());
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
		if (!mc_round.pending)
			wake_up(&mc_round.wq);
	}
	spin_unlock(&mc_round.lock);
	req->round = 0;
}

/*
 * Count open requests whose deadline passed as missed.  A late answer
 * turns a missed request into a late one.  Caller holds c->lock.
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
	mc_round_complete(open, 0);
	return open;
}

/* True if @c has an unanswered RECLAIM request still within its deadline. */
static bool mc_client_reclaim_open(struct mc_client *c, u64 now)
{
	bool open = false;
	int i;

	spin_lock(&c->lock);
	for (i = 0; i < MC_CLIENT_REQS; i++) {
		struct mc_req *req = &c->reqs[i];

		if (req->state == MC_REQ_OPEN && req->reason == MEMCOOP_REASON_RECLAIM &&
		    now <= req->deadline_ns) {
			open = true;
			break;
		}
	}
	spin_unlock(&c->lock);
	return open;
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
 * Caller holds mc_clients_lock (so @c stays registered) and, for a
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
	struct mc_req *req;
	bool queued;
	int err;

	lockdep_assert_held(&mc_clients_lock);

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
		req->reason = reason;
		req->state = MC_REQ_OPEN;
		c->requests++;
		c->pages_requested += pages;
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
		err = kill_pid(c->pid, c->signal, 1);
		if (err) {
			spin_lock(&c->lock);
			c->signals_failed++;
			spin_unlock(&c->lock);
			atomic64_inc(&mc_stats.signals_failed);
		} else {
			atomic64_inc(&mc_stats.signals_sent);
		}
	}
	return true;
}

/**
 * mc_relay_ask() - share @pages out among the registered clients.
 * @pages:    pages to find.
 * @reason:   MEMCOOP_REASON_*.
 * @level:    MEMCOOP_LEVEL_*.
 * @deadline: CLOCK_MONOTONIC ns given to the clients.
 * @round:    generation of the waiting round (mc_round.active), or 0.
 * @skip_busy: skip clients that still have an open RECLAIM request.
 *
 * Priority classes are served lowest first; a class whose estimates add
 * up to less than what is left is asked for all of it, otherwise the rest
 * is apportioned by estimate (each client at most its estimate, the sum
 * exactly what is left).  Clients with a zero estimate are not asked.
 * Takes mc_clients_lock; does not sleep.
 *
 * Return: the number of requests queued.
 */
static unsigned int mc_relay_ask(u64 pages, u32 reason, u32 level, u64 deadline,
				 u64 round, bool skip_busy)
{
	u64 now = ktime_get_ns();
	unsigned int asked = 0;
	struct mc_client *c;
	u32 prio;

	spin_lock(&mc_clients_lock);
	for (prio = 0; prio <= MEMCOOP_PRIO_MAX && pages; prio++) {
		u64 sum = 0, left, share, est;

		list_for_each_entry(c, &mc_clients, node) {
			if (c->priority != prio)
				continue;
			if (skip_busy && mc_client_reclaim_open(c, now))
				continue;
			sum += READ_ONCE(c->reclaimable);
		}
		if (!sum)
			continue;
		left = min(pages, sum);
		pages -= left;

		list_for_each_entry(c, &mc_clients, node) {
			if (c->priority != prio || !left || !sum)
				continue;
			if (skip_busy && mc_client_reclaim_open(c, now))
				continue;
			/*
			 * The estimate is re-read: a client may have lowered
			 * it since the sum.  Clamp so the arithmetic holds.
			 */
			est = min(READ_ONCE(c->reclaimable), sum);
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
				asked++;
		}
		/* what a class could not place (estimates lowered) moves on */
		pages += left;
	}
	spin_unlock(&mc_clients_lock);
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
 * asked client answered, left, or the deadline passed.
 *
 * Return: pages the clients reported freed in time.
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
	mc_round.freed = 0;
	spin_unlock(&mc_round.lock);

	asked = mc_relay_ask(pages, reason, level, deadline, gen, false);
	atomic64_inc(&mc_stats.rounds);
	if (!asked)
		atomic64_inc(&mc_stats.rounds_nobody);

	if (asked && deadline > start) {
		unsigned long timeout = nsecs_to_jiffies(deadline - start) + 1;

		wait_event_timeout(mc_round.wq, !READ_ONCE(mc_round.pending), timeout);
	}

	spin_lock(&mc_round.lock);
	mc_round.active = false;
	timed_out = mc_round.pending != 0;
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

unsigned long mc_relay_oom(unsigned long pages)
{
	unsigned int wait = min(READ_ONCE(oom_wait_ms), MC_OOM_WAIT_MAX_MS);
	u64 deadline = ktime_get_ns() + (u64)wait * NSEC_PER_MSEC;
	u64 freed = 0;

	if (!pages)
		return 0;
	atomic64_inc(&mc_stats.oom_calls);
	/*
	 * A client that claims to free but does not would make the OOM
	 * killer retry forever: a few rounds per second, 0 beyond them, so
	 * a liar delays a kill by a second at most.  Callers are serialised
	 * by oom_lock.
	 */
	if (time_after(jiffies, mc_oom_window + HZ)) {
		mc_oom_window = jiffies;
		mc_oom_rounds = 0;
	}
	if (mc_oom_rounds >= MC_OOM_ROUNDS_PER_SEC)
		return 0;
	mc_oom_rounds++;

	if (!wait || !mutex_trylock(&mc_round_mutex)) {
		/* a balloon round is waiting (or no wait wanted): ask, don't wait */
		mc_relay_ask(pages, MEMCOOP_REASON_OOM, MEMCOOP_LEVEL_CRITICAL, deadline, 0, false);
		return 0;
	}
	freed = mc_relay_round(pages, MEMCOOP_REASON_OOM, MEMCOOP_LEVEL_CRITICAL, deadline);
	mutex_unlock(&mc_round_mutex);
	atomic64_add(freed, &mc_stats.oom_freed);
	return freed;
}

static u64 mc_total_reclaimable(void)
{
	struct mc_client *c;
	u64 sum = 0;

	spin_lock(&mc_clients_lock);
	list_for_each_entry(c, &mc_clients, node)
		sum += READ_ONCE(c->reclaimable);
	spin_unlock(&mc_clients_lock);
	return sum;
}

static int mc_oom_notify(struct notifier_block *nb, unsigned long unused, void *parm)
{
	unsigned long *freed = parm;
	u64 pages = mc_total_reclaimable();

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
	if (!READ_ONCE(mc_nr_clients))
		return 0;
	return mc_total_reclaimable();
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
	if (mc_relay_ask(pages, MEMCOOP_REASON_RECLAIM, level, deadline, 0, true))
		atomic64_inc(&mc_stats.shrinker_batches);
	return SHRINK_STOP;
}

static int mc_ioctl_register(struct mc_file *mf, void __user *uarg)
{
	struct memcoop_register reg;
	struct mc_client *c;
	size_t len;
	int i, err = 0;

	if (copy_from_user(&reg, uarg, sizeof(reg)))
		return -EFAULT;
	if (reg.flags || reg.reserved[0] || reg.reserved[1])
		return -EINVAL;
	if (reg.priority > MEMCOOP_PRIO_MAX)
		return -EINVAL;
	if (reg.signal && (reg.signal < SIGRTMIN || reg.signal > SIGRTMAX))
		return -EINVAL;
	len = strnlen((const char *)reg.name, sizeof(reg.name));
	if (!len || len == sizeof(reg.name))
		return -EINVAL;
	for (i = 0; i < len; i++)
		if (!isprint(reg.name[i]))
			return -EINVAL;

	c = kzalloc(sizeof(*c), GFP_KERNEL_ACCOUNT);
	if (!c)
		return -ENOMEM;
	spin_lock_init(&c->lock);
	c->mf = mf;
	c->signal = reg.signal;
	c->priority = reg.priority;
	c->reclaimable = mc_clamp_estimate(reg.reclaimable);
	memcpy(c->name, reg.name, len + 1);
	c->pid = get_task_pid(current, PIDTYPE_TGID);

	mutex_lock(&mf->lock);
	if (mf->client) {
		err = -EBUSY;
		goto out_unlock;
	}
	spin_lock(&mc_clients_lock);
	list_add_tail(&c->node, &mc_clients);
	mc_nr_clients++;
	spin_unlock(&mc_clients_lock);
	smp_store_release(&mf->client, c);
	mutex_unlock(&mf->lock);
	pr_debug("registered \"%s\" pid %d priority %u estimate %llu signal %d\n",
		 c->name, pid_nr(c->pid), c->priority, c->reclaimable, c->signal);
	return 0;

out_unlock:
	mutex_unlock(&mf->lock);
	put_pid(c->pid);
	kfree(c);
	return err;
}

static int mc_ioctl_set_reclaimable(struct mc_client *c, void __user *uarg)
{
	struct memcoop_reclaimable rec;

	if (copy_from_user(&rec, uarg, sizeof(rec)))
		return -EFAULT;
	if (rec.reserved)
		return -EINVAL;
	WRITE_ONCE(c->reclaimable, mc_clamp_estimate(rec.reclaimable));
	return 0;
}

static int mc_ioctl_answer(struct mc_client *c, void __user *uarg)
{
	struct memcoop_answer ans;
	struct mc_req *req = NULL;
	u64 now = ktime_get_ns();
	int i, err = 0;

	if (copy_from_user(&ans, uarg, sizeof(ans)))
		return -EFAULT;
	if (ans.reserved[0] || ans.reserved[1])
		return -EINVAL;

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
		if (req->state == MC_REQ_EXPIRED) {
			c->missed--;
			c->late++;
			atomic64_dec(&mc_stats.missed);
			atomic64_inc(&mc_stats.late);
		} else {
			c->answers++;
			atomic64_inc(&mc_stats.answered);
			mc_round_complete(req, ans.freed);
		}
		req->state = MC_REQ_ANSWERED;
		req->round = 0;
		c->pages_freed += ans.freed;
		atomic64_add(ans.freed, &mc_stats.pages_freed);
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
	spin_lock(&mc_clients_lock);
	list_del(&c->node);
	mc_nr_clients--;
	spin_unlock(&mc_clients_lock);

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

	pr_debug("unregistered \"%s\" pid %d: %llu requests, %llu answers, %llu late, %llu missed, %llu pages freed\n",
		 c->name, pid_nr(c->pid), c->requests, c->answers, c->late, c->missed,
		 c->pages_freed);
	mf->client = NULL;
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
	MC_STAT(missed), MC_STAT(bad_answers), MC_STAT(pages_asked), MC_STAT(pages_freed),
	MC_STAT(balloon_calls), MC_STAT(balloon_pages), MC_STAT(balloon_purged),
	MC_STAT(balloon_freed), MC_STAT(shrinker_counts), MC_STAT(shrinker_scans),
	MC_STAT(shrinker_batches), MC_STAT(oom_calls), MC_STAT(oom_requests),
	MC_STAT(oom_freed), MC_STAT(signals_sent), MC_STAT(signals_failed),
	MC_STAT(last_round_ns), MC_STAT(max_round_ns),
};

/* debugfs memcoop/relay: global counters, then one line per client. */
static int mc_relay_show(struct seq_file *m, void *unused)
{
	u64 now = ktime_get_ns();
	struct mc_client *c;
	int i;

	/* bring "missed" up to date first */
	spin_lock(&mc_clients_lock);
	list_for_each_entry(c, &mc_clients, node) {
		spin_lock(&c->lock);
		mc_client_expire(c, now);
		spin_unlock(&c->lock);
	}
	spin_unlock(&mc_clients_lock);

	for (i = 0; i < ARRAY_SIZE(mc_stat_table); i++)
		seq_printf(m, "%s %lld\n", mc_stat_table[i].name,
			   atomic64_read(mc_stat_table[i].v));
	seq_printf(m, "clients %u\n", READ_ONCE(mc_nr_clients));
	seq_printf(m, "deadline_ms %u\n", mc_deadline_ms());
	seq_puts(m, "\n# name pid priority estimate requests pages_requested answers late missed pages_freed signals_failed\n");

	spin_lock(&mc_clients_lock);
	list_for_each_entry(c, &mc_clients, node) {
		spin_lock(&c->lock);
		seq_printf(m, "%s %d %u %llu %llu %llu %llu %llu %llu %llu %llu\n",
			   c->name, pid_nr(c->pid), c->priority, READ_ONCE(c->reclaimable),
			   c->requests, c->pages_requested, c->answers, c->late, c->missed,
			   c->pages_freed, c->signals_failed);
		spin_unlock(&c->lock);
	}
	spin_unlock(&mc_clients_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mc_relay);

int mc_relay_init(void)
{
	int err;

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
	WARN_ON_ONCE(!list_empty(&mc_clients));
}
