// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/memcoop: the handshake, ioctl dispatch, and the per-file event
 * queue that shrink requests and residence events share.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/miscdevice.h>
#include <linux/poll.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/ktime.h>
#include <linux/hashtable.h>
#include <linux/capability.h>
#include <linux/cred.h>

#include "mc_internal.h"

#define MC_FEATURES_SUPPORTED	(MEMCOOP_FEATURE_RELAY | MEMCOOP_FEATURE_VRANGE | \
				 MEMCOOP_FEATURE_RESIDENCE_EVENTS | MEMCOOP_FEATURE_WTRACK)

#define MC_IOCTLS_SUPPORTED	(BIT_ULL(_MEMCOOP_API) | BIT_ULL(_MEMCOOP_REGISTER) | \
				 BIT_ULL(_MEMCOOP_SET_RECLAIMABLE) | BIT_ULL(_MEMCOOP_ANSWER) | \
				 BIT_ULL(_MEMCOOP_CLIENT_STATS) | BIT_ULL(_MEMCOOP_SUBSCRIBE) | \
				 BIT_ULL(_MEMCOOP_VRANGE) | BIT_ULL(_MEMCOOP_RESIDENCE) | \
				 BIT_ULL(_MEMCOOP_WT_ARM) | BIT_ULL(_MEMCOOP_WT_HARVEST))

#define MC_EVENTS_KNOWN		(BIT_ULL(MEMCOOP_EVENT_SHRINK) | BIT_ULL(MEMCOOP_EVENT_PURGE_SOON) | \
				 BIT_ULL(MEMCOOP_EVENT_PURGED) | BIT_ULL(MEMCOOP_EVENT_REFAULT) | \
				 BIT_ULL(MEMCOOP_EVENT_DIRTY) | BIT_ULL(MEMCOOP_EVENT_LOST))

static bool mc_api_done(struct mc_file *mf)
{
	return smp_load_acquire(&mf->api_done);
}

static unsigned int events_user_max = 128;
MC_PARAM_UINT(events_user_max, 1, 65536, 0644,
	      "Event queues (about 24 KiB each) one user may hold at once: registrations and residence or dirty subscriptions; CAP_SYS_RESOURCE is exempt (1..65536, default 128)");

/* Event queues held by one user (real uid), under mc_equsers_mutex. */
struct mc_equser {
	struct hlist_node node;
	kuid_t uid;
	unsigned int queues;
};

static DEFINE_HASHTABLE(mc_equsers, 6);
static DEFINE_MUTEX(mc_equsers_mutex);

/**
 * mc_file_events_on() - give @mf its event queue, once.
 * @mf: the file
 *
 * The queue (MC_RING records, about 24 KiB) is allocated only when the
 * file becomes a source of events: when it registers as a relay client
 * or subscribes to residence or dirty events.  A file that only opened
 * and shook hands costs no more kernel memory than its struct.  Each
 * queue is counted for the caller's real uid until the file is released;
 * a user holds at most events_user_max of them (CAP_SYS_RESOURCE is
 * exempt), so that many open files cannot pin kernel memory without
 * bound.  Charged to the caller's memory cgroup.
 *
 * Context: process context, may sleep.
 * Return: 0, -ENOMEM, or -EMFILE when the user holds events_user_max.
 */
int mc_file_events_on(struct mc_file *mf)
{
	kuid_t uid = current_uid();
	struct mc_equser *u, *spare;
	struct memcoop_event *ring;
	bool uncapped;
	int err = 0;

	if (READ_ONCE(mf->ring))
		return 0;
	/* asked only when a queue is made: capable() is audited */
	uncapped = capable(CAP_SYS_RESOURCE);
	ring = kvcalloc(MC_RING, sizeof(*ring), GFP_KERNEL_ACCOUNT);
	spare = kzalloc(sizeof(*spare), GFP_KERNEL_ACCOUNT);
	if (!ring || !spare) {
		err = -ENOMEM;
		goto out;
	}
	mutex_lock(&mc_equsers_mutex);
	if (mf->ring)
		goto unlock;
	hash_for_each_possible(mc_equsers, u, node, __kuid_val(uid))
		if (uid_eq(u->uid, uid))
			break;
	if (!u) {
		u = spare;
		spare = NULL;
		u->uid = uid;
		hash_add(mc_equsers, &u->node, __kuid_val(uid));
	} else if (!uncapped && u->queues >= READ_ONCE(events_user_max)) {
		err = -EMFILE;
		goto unlock;
	}
	u->queues++;
	mf->equser = u;
	spin_lock_irq(&mf->evlock);
	WRITE_ONCE(mf->ring, ring);
	spin_unlock_irq(&mf->evlock);
	ring = NULL;
unlock:
	mutex_unlock(&mc_equsers_mutex);
out:
	kvfree(ring);
	kfree(spare);
	return err;
}

/* Release: the queue and its count (no event can be posted any more). */
static void mc_file_events_off(struct mc_file *mf)
{
	struct mc_equser *u = mf->equser;

	if (u) {
		mutex_lock(&mc_equsers_mutex);
		if (!--u->queues) {
			hash_del(&u->node);
			kfree(u);
		}
		mutex_unlock(&mc_equsers_mutex);
	}
	kvfree(mf->ring);
}

static int mc_open(struct inode *inode, struct file *file)
{
	struct mc_file *mf;

	/* Charged to the opener's memory cgroup, like all per-file state. */
	mf = kzalloc(sizeof(*mf), GFP_KERNEL_ACCOUNT);
	if (!mf)
		return -ENOMEM;
	mf->file = file;
	mutex_init(&mf->lock);
	mutex_init(&mf->read_lock);
	spin_lock_init(&mf->evlock);
	init_waitqueue_head(&mf->wq);
	mf->subscribed = BIT_ULL(MEMCOOP_EVENT_SHRINK) | BIT_ULL(MEMCOOP_EVENT_LOST);
	file->private_data = mf;
	return 0;
}

/* Last reference gone: no mapping, no fd, no ioctl in flight. */
static int mc_release(struct inode *inode, struct file *file)
{
	struct mc_file *mf = mc_file_of(file);

	mc_relay_release(mf);
	mc_wtrack_release(mf);
	mc_vrange_release(mf);
	mc_file_events_off(mf);
	kfree(mf);
	return 0;
}

bool mc_file_post_event(struct mc_file *mf, struct memcoop_event *ev)
{
	unsigned long flags;
	bool queued = false;

	if (ev->type == MEMCOOP_EVENT_LOST ||
	    !(READ_ONCE(mf->subscribed) & BIT_ULL(ev->type)) || !mc_api_done(mf))
		return false;
	ev->timestamp_ns = ktime_get_ns();

	spin_lock_irqsave(&mf->evlock, flags);
	/* one slot is kept for the LOST record */
	if (!mf->ring) {
		/* no source posts before mc_file_events_on(); be safe anyway */
		mf->lost++;
		mf->lost_total++;
	} else if (mf->head - mf->tail < MC_RING - 1) {
		mf->ring[mf->head & (MC_RING - 1)] = *ev;
		mf->head++;
		queued = true;
	} else {
		mf->lost++;
		mf->lost_total++;
	}
	spin_unlock_irqrestore(&mf->evlock, flags);

	if (queued) {
		wake_up_interruptible_poll(&mf->wq, EPOLLIN | EPOLLRDNORM);
		kill_fasync(&mf->fasync, SIGIO, POLL_IN);
	}
	return queued;
}

/* Take the oldest record (or a LOST record) into @ev; false if none. */
static bool mc_peek_event(struct mc_file *mf, struct memcoop_event *ev)
{
	bool have = false;

	spin_lock_irq(&mf->evlock);
	if (mf->head != mf->tail) {
		*ev = mf->ring[mf->tail & (MC_RING - 1)];
		have = true;
	} else if (mf->lost) {
		memset(ev, 0, sizeof(*ev));
		ev->type = MEMCOOP_EVENT_LOST;
		ev->lost.count = mf->lost;
		ev->timestamp_ns = ktime_get_ns();
		have = true;
	}
	spin_unlock_irq(&mf->evlock);
	return have;
}

/*
 * Consume what mc_peek_event() returned.  LOST records are never in the
 * ring (they are made up from @lost), so a LOST record consumes the count
 * it reported even if an event was queued since the peek.
 */
static void mc_pop_event(struct mc_file *mf, const struct memcoop_event *ev)
{
	spin_lock_irq(&mf->evlock);
	if (ev->type == MEMCOOP_EVENT_LOST)
		mf->lost -= min(mf->lost, ev->lost.count);
	else
		mf->tail++;
	spin_unlock_irq(&mf->evlock);
}

static bool mc_event_pending(struct mc_file *mf)
{
	return READ_ONCE(mf->head) != READ_ONCE(mf->tail) || READ_ONCE(mf->lost);
}

static ssize_t mc_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	struct mc_file *mf = mc_file_of(file);
	struct memcoop_event ev;
	ssize_t done = 0;
	int err;

	if (!mc_api_done(mf))
		return -EINVAL;
	if (count < sizeof(ev))
		return -EINVAL;

	if (mutex_lock_interruptible(&mf->read_lock))
		return -ERESTARTSYS;
	while (count - done >= sizeof(ev)) {
		if (!mc_peek_event(mf, &ev)) {
			if (done)
				break;
			if (file->f_flags & O_NONBLOCK) {
				done = -EAGAIN;
				break;
			}
			mutex_unlock(&mf->read_lock);
			err = wait_event_interruptible(mf->wq, mc_event_pending(mf));
			if (err)
				return err;
			if (mutex_lock_interruptible(&mf->read_lock))
				return -ERESTARTSYS;
			continue;
		}
		if (copy_to_user(buf + done, &ev, sizeof(ev))) {
			if (!done)
				done = -EFAULT;
			break;
		}
		mc_pop_event(mf, &ev);
		done += sizeof(ev);
	}
	mutex_unlock(&mf->read_lock);
	return done;
}

static __poll_t mc_poll(struct file *file, struct poll_table_struct *pt)
{
	struct mc_file *mf = mc_file_of(file);

	poll_wait(file, &mf->wq, pt);
	if (!mc_api_done(mf))
		return EPOLLERR;
	return mc_event_pending(mf) ? EPOLLIN | EPOLLRDNORM : 0;
}

static int mc_fasync(int fd, struct file *file, int on)
{
	return fasync_helper(fd, file, on, &mc_file_of(file)->fasync);
}

static int mc_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct mc_file *mf = mc_file_of(file);

	if (!mc_api_done(mf) || !(mf->features & MEMCOOP_FEATURE_VRANGE))
		return -EINVAL;
	return mc_vrange_mmap(mf, vma);
}

static long mc_ioctl_api(struct mc_file *mf, struct memcoop_api __user *uarg)
{
	struct memcoop_api api;
	u64 wanted;
	int i, err = 0;

	if (copy_from_user(&api, uarg, sizeof(api)))
		return -EFAULT;
	if (api.api != MEMCOOP_API || (api.features & ~MC_FEATURES_SUPPORTED))
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(api.reserved); i++)
		if (api.reserved[i])
			return -EINVAL;
	if ((api.features & (MEMCOOP_FEATURE_RESIDENCE_EVENTS | MEMCOOP_FEATURE_WTRACK)) &&
	    !(api.features & MEMCOOP_FEATURE_VRANGE))
		return -EINVAL;

	wanted = api.features;
	mutex_lock(&mf->lock);
	if (mf->api_done) {
		err = -EBUSY;
		goto out;
	}
	api.features = MC_FEATURES_SUPPORTED;
	api.ioctls = MC_IOCTLS_SUPPORTED;
	api.page_size = PAGE_SIZE;
	if (copy_to_user(uarg, &api, sizeof(api))) {
		err = -EFAULT;
		goto out;
	}
	mf->features = wanted;
	smp_store_release(&mf->api_done, true);
out:
	mutex_unlock(&mf->lock);
	return err;
}

static long mc_ioctl_subscribe(struct mc_file *mf, void __user *uarg)
{
	struct memcoop_subscribe sub;

	if (copy_from_user(&sub, uarg, sizeof(sub)))
		return -EFAULT;
	if (sub.reserved || (sub.events & ~MC_EVENTS_KNOWN) || (sub.events & 1))
		return -EINVAL;
	if ((sub.events & (BIT_ULL(MEMCOOP_EVENT_PURGE_SOON) | BIT_ULL(MEMCOOP_EVENT_PURGED) |
			   BIT_ULL(MEMCOOP_EVENT_REFAULT))) &&
	    !(mf->features & MEMCOOP_FEATURE_RESIDENCE_EVENTS))
		return -EINVAL;
	if ((sub.events & BIT_ULL(MEMCOOP_EVENT_DIRTY)) &&
	    !(mf->features & MEMCOOP_FEATURE_WTRACK))
		return -EINVAL;
	if (sub.events & ~(BIT_ULL(MEMCOOP_EVENT_SHRINK) | BIT_ULL(MEMCOOP_EVENT_LOST))) {
		int err = mc_file_events_on(mf);

		if (err)
			return err;
	}
	/* shrink requests and loss reports cannot be unsubscribed */
	WRITE_ONCE(mf->subscribed, sub.events | BIT_ULL(MEMCOOP_EVENT_SHRINK) |
		   BIT_ULL(MEMCOOP_EVENT_LOST));
	if (sub.events & BIT_ULL(MEMCOOP_EVENT_DIRTY))
		mc_wtrack_subscribed(mf);
	return 0;
}

static long mc_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct mc_file *mf = mc_file_of(file);
	void __user *uarg = (void __user *)arg;

	if (_IOC_TYPE(cmd) != MEMCOOP_IOC_MAGIC)
		return -ENOTTY;
	if (cmd == MEMCOOP_IOC_API)
		return mc_ioctl_api(mf, uarg);

	switch (cmd) {
	case MEMCOOP_IOC_REGISTER:
	case MEMCOOP_IOC_SET_RECLAIMABLE:
	case MEMCOOP_IOC_ANSWER:
	case MEMCOOP_IOC_CLIENT_STATS:
	case MEMCOOP_IOC_SUBSCRIBE:
	case MEMCOOP_IOC_VRANGE:
	case MEMCOOP_IOC_RESIDENCE:
	case MEMCOOP_IOC_WT_ARM:
	case MEMCOOP_IOC_WT_HARVEST:
		break;
	default:
		return -ENOTTY;
	}
	if (!mc_api_done(mf))
		return -EINVAL;

	switch (cmd) {
	case MEMCOOP_IOC_SUBSCRIBE:
		return mc_ioctl_subscribe(mf, uarg);
	case MEMCOOP_IOC_CLIENT_STATS:
	case MEMCOOP_IOC_REGISTER:
	case MEMCOOP_IOC_SET_RECLAIMABLE:
	case MEMCOOP_IOC_ANSWER:
		if (!(mf->features & MEMCOOP_FEATURE_RELAY) && cmd != MEMCOOP_IOC_CLIENT_STATS)
			return -EINVAL;
		return mc_relay_ioctl(mf, cmd, uarg);
	case MEMCOOP_IOC_VRANGE:
	case MEMCOOP_IOC_RESIDENCE:
		if (!(mf->features & MEMCOOP_FEATURE_VRANGE))
			return -EINVAL;
		return mc_vrange_ioctl(mf, cmd, uarg);
	default: /* WT_ARM, WT_HARVEST */
		if (!(mf->features & MEMCOOP_FEATURE_WTRACK))
			return -EINVAL;
		return mc_wtrack_ioctl(mf, cmd, uarg);
	}
}

static const struct file_operations mc_fops = {
	.owner		= THIS_MODULE,
	.open		= mc_open,
	.release	= mc_release,
	.read		= mc_read,
	.poll		= mc_poll,
	.fasync		= mc_fasync,
	.mmap		= mc_mmap,
	.unlocked_ioctl	= mc_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice mc_miscdev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "memcoop",
	.fops	= &mc_fops,
	.mode	= 0666,		/* unprivileged processes may register */
};

int mc_dev_init(void)
{
	return misc_register(&mc_miscdev);
}

void mc_dev_exit(void)
{
	misc_deregister(&mc_miscdev);
}
