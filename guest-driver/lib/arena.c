/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: arenas (mappings of the memory object), volatile ranges, residence. */
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libmemcoop.h"
#include "mc_lib.h"

/* The kernel's memory object is 1 TiB of offsets (vrange.c MC_VOBJ_BYTES). */
#define MC_OBJECT_BYTES		(1ULL << 40)

struct memcoop_arena {
	struct memcoop	*mc;
	void		*base;
	size_t		 size;
};

struct memcoop_arena *
memcoop_arena_map(struct memcoop *mc, size_t len)
{
	struct memcoop_arena *a;
	uint64_t off;
	void *p;

	if (!(mc->features & MEMCOOP_FEATURE_VRANGE) || len == 0 ||
	    len > MC_OBJECT_BYTES) {
		errno = EINVAL;
		return NULL;
	}
	len = (len + mc->page_size - 1) & ~(mc->page_size - 1);
	off = __atomic_fetch_add(&mc->arena_next, len, __ATOMIC_RELAXED);
	if (off + len > MC_OBJECT_BYTES) {
		errno = ENOMEM;
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mc->fd, (off_t)off);
	if (p == MAP_FAILED) {
		free(a);
		return NULL;
	}
	a->mc = mc;
	a->base = p;
	a->size = len;
	return a;
}

void
memcoop_arena_unmap(struct memcoop_arena *a)
{
	int saved = errno;

	if (a == NULL)
		return;
	munmap(a->base, a->size);
	free(a);
	errno = saved;
}

void *
memcoop_arena_base(const struct memcoop_arena *a)
{
	return a->base;
}

size_t
memcoop_arena_size(const struct memcoop_arena *a)
{
	return a->size;
}

static int
vrange(struct memcoop *mc, void *addr, size_t len, uint64_t mode)
{
	struct memcoop_vrange vr;

	memset(&vr, 0, sizeof(vr));
	vr.start = (uintptr_t)addr;
	vr.len = len;
	vr.mode = mode;
	if (ioctl(mc->fd, MEMCOOP_IOC_VRANGE, &vr) == -1)
		return -1;
	return vr.purged ? 1 : 0;
}

int
memcoop_volatile(struct memcoop *mc, void *addr, size_t len)
{
	return vrange(mc, addr, len, MEMCOOP_VRANGE_VOLATILE) == -1 ? -1 : 0;
}

int
memcoop_nonvolatile(struct memcoop *mc, void *addr, size_t len)
{
	return vrange(mc, addr, len, MEMCOOP_VRANGE_NONVOLATILE);
}

ssize_t
memcoop_residence(struct memcoop *mc, void *addr, size_t len, uint8_t *bitmap,
    size_t bitmap_size)
{
	struct memcoop_residence res;

	memset(&res, 0, sizeof(res));
	res.start = (uintptr_t)addr;
	res.len = len;
	res.bitmap = (uintptr_t)bitmap;
	res.bitmap_size = bitmap_size;
	if (ioctl(mc->fd, MEMCOOP_IOC_RESIDENCE, &res) == -1)
		return -1;
	return (ssize_t)res.resident;
}

int
memcoop_subscribe(struct memcoop *mc, uint64_t events)
{
	struct memcoop_subscribe sub;

	memset(&sub, 0, sizeof(sub));
	sub.events = events;
	return ioctl(mc->fd, MEMCOOP_IOC_SUBSCRIBE, &sub) == -1 ? -1 : 0;
}
