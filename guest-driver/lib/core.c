/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: open, handshake, close, events. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "libmemcoop.h"
#include "mc_lib.h"

struct memcoop *
memcoop_open(uint64_t features)
{
	struct memcoop_api api;
	struct memcoop *mc;
	const char *path;
	int fd, saved;

	path = getenv("MEMCOOP_DEVICE");
	if (path == NULL || *path == '\0')
		path = MEMCOOP_DEVICE;
	/* non-blocking: memcoop_read_events() and dispatch never block */
	if ((fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK)) == -1)
		return NULL;

	memset(&api, 0, sizeof(api));
	api.api = MEMCOOP_API;
	api.features = features;
	if (ioctl(fd, MEMCOOP_IOC_API, &api) == -1)
		goto fail;
	if ((mc = calloc(1, sizeof(*mc))) == NULL)
		goto fail;
	mc->fd = fd;
	mc->features = features;
	mc->kernel_features = api.features;
	mc->page_size = api.page_size;
	return mc;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return NULL;
}

void
memcoop_close(struct memcoop *mc)
{
	int saved = errno;

	if (mc == NULL)
		return;
	mc_lib_relay_free(mc);
	close(mc->fd);
	free(mc);
	errno = saved;
}

int
memcoop_fd(const struct memcoop *mc)
{
	return mc->fd;
}

uint64_t
memcoop_kernel_features(const struct memcoop *mc)
{
	return mc->kernel_features;
}

size_t
memcoop_page_size(const struct memcoop *mc)
{
	return mc->page_size;
}

int
memcoop_read_events(struct memcoop *mc, struct memcoop_event *ev, int max)
{
	ssize_t n;

	if (max <= 0) {
		errno = EINVAL;
		return -1;
	}
	n = recv_events(mc->fd, ev, (size_t)max);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return (int)n;
}

/*
 * One sentence per errno the ABI documents (proto/memcoop.h,
 * docs/memcoop-ko.md), saying which call or limit gives it; anything else
 * is the C library's text.
 */
const char *
memcoop_strerror(int err)
{
	switch (err) {
	case ENOENT:
		return "no such request (answered too late, or not this fd's), or /dev/memcoop "
		    "missing (is memcoop.ko loaded?)";
	case ENOTTY:
		return "this kernel's memcoop does not know that request";
	case EINVAL:
		return "invalid argument: bad field, non-zero reserved field, or handshake missing";
	case EBUSY:
		return "already done on this fd (handshake or registration)";
	case EALREADY:
		return "that request was already answered";
	case ERANGE:
		return "value out of range (e.g. freed more than was asked)";
	case EFAULT:
		return "bad pointer passed to the driver";
	case EPERM:
		return "priority 0..7 needs CAP_SYS_RESOURCE or the group relay_priv_gid; "
		    "unprivileged clients register at 8..15";
	case EMFILE:
		return "too many registrations or event queues for this user (module "
		    "parameters relay_user_clients, events_user_max), or too many open files";
	case ENOSPC:
		return "a memcoop limit is reached: registrations in all (relay_max_clients), "
		    "range nodes per fd (max_ranges) or write-tracking memory per fd (wt_max_kib)";
	case ENOMEM:
		return "the kernel had no memory for the driver's bookkeeping; nothing was changed";
	case EAGAIN:
		return "no event pending on the non-blocking fd";
	case EACCES:
		return "permission denied opening /dev/memcoop (its mode should be 0666)";
	default:
		return strerror(err);
	}
}
