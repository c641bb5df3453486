/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: write tracking (MEMCOOP_IOC_WT_ARM, MEMCOOP_IOC_WT_HARVEST). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "libmemcoop.h"
#include "mc_lib.h"

static int
wt_arm(struct memcoop *mc, const struct memcoop_wt_range *r, unsigned int n,
    uint32_t flags, uint64_t *armed)
{
	struct memcoop_wt_arm arm;
	int ret;

	memset(&arm, 0, sizeof(arm));
	arm.ranges = (uint64_t)(uintptr_t)r;
	arm.count = n;
	arm.flags = flags;
	do {
		ret = ioctl(mc->fd, MEMCOOP_IOC_WT_ARM, &arm);
	} while (ret == -1 && errno == EINTR);
	if (ret == -1)
		return -1;
	if (armed != NULL)
		*armed = arm.armed;
	return 0;
}

int
memcoop_wt_arm(struct memcoop *mc, const struct memcoop_wt_range *r,
    unsigned int n, uint64_t *armed)
{
	return wt_arm(mc, r, n, 0, armed);
}

int
memcoop_wt_disarm(struct memcoop *mc, const struct memcoop_wt_range *r,
    unsigned int n, uint64_t *disarmed)
{
	return wt_arm(mc, r, n, MEMCOOP_WT_DISARM, disarmed);
}

int
memcoop_wt_arm_range(struct memcoop *mc, void *addr, size_t len)
{
	struct memcoop_wt_range r;

	r.start = (uint64_t)(uintptr_t)addr;
	r.len = len;
	return wt_arm(mc, &r, 1, 0, NULL);
}

ssize_t
memcoop_wt_harvest(struct memcoop *mc, void **addrs, size_t max,
    unsigned int flags, size_t *remaining)
{
	struct memcoop_wt_harvest h;
	int ret;

	_Static_assert(sizeof(void *) == sizeof(uint64_t),
	    "harvest stores 64-bit addresses in place");
	memset(&h, 0, sizeof(h));
	h.addrs = (uint64_t)(uintptr_t)addrs;
	h.max = max;
	h.flags = flags;
	do {
		ret = ioctl(mc->fd, MEMCOOP_IOC_WT_HARVEST, &h);
	} while (ret == -1 && errno == EINTR);
	if (ret == -1)
		return -1;
	if (remaining != NULL)
		*remaining = h.remaining;
	return (ssize_t)h.count;
}

ssize_t
memcoop_wt_harvest_all(struct memcoop *mc, unsigned int flags, size_t batch,
    void (*fn)(void *, void **, size_t), void *arg)
{
	void **addrs;
	size_t remaining, total = 0;
	ssize_t n;
	int saved;

	if (batch == 0 || fn == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((addrs = calloc(batch, sizeof(*addrs))) == NULL)
		return -1;
	do {
		n = memcoop_wt_harvest(mc, addrs, batch, flags, &remaining);
		if (n == -1) {
			saved = errno;
			free(addrs);
			errno = saved;
			return -1;
		}
		if (n > 0)
			fn(arg, addrs, (size_t)n);
		total += (size_t)n;
	} while (n > 0 && remaining > 0);
	free(addrs);
	return (ssize_t)total;
}
