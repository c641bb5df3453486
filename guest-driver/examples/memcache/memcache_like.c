/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memcache-like: an in-memory key-value cache that cooperates with memcoop.
 *
 *	memcache-like [-q] [-m max_mib] [-n name] [-p priority] [-s socket]
 *
 * Serves GET/SET/DEL/STATS (memcache.h) on a unix socket, keeps values in
 * anonymous memory and evicts least recently used entries when it reaches
 * its limit.  Values live in slots of power-of-two size carved from 8 MiB
 * mappings; a freed slot is given back to the kernel at once with
 * MADV_DONTNEED.  (munmap() of single values would split mappings, and a
 * split needs memory: exactly what is missing when the host squeezes.)  It registers with /dev/memcoop, keeps the driver told how
 * much it could drop, and on a shrink request evicts LRU entries until it
 * has freed what was asked, lowers its limit by as much and answers.  The
 * limit grows back slowly (1% of -m per second) once no request came for
 * 5 seconds, and only while the guest has memory to spare (MemAvailable
 * above the step plus 1/8 of MemTotal): after a squeeze the host holds
 * what the cache gave, and growing into it would end in an OOM kill.  Requests are served by libmemcoop's helper thread, so the
 * cache answers even while the serving loop is busy.
 *
 * Without /dev/memcoop (stock balloon driver) it runs as a plain cache.
 *
 * Output, one line each (stdout):
 *	READY socket=... max_mib=... memcoop=0|1
 *	SHRINK seq=N reason=R level=L asked=P freed=F latency_us=U ts_ns=T cb_ns=C
 *	CACHE t=S items=N used_mib=U limit_mib=L hits=H misses=M evictions=E
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmemcoop.h>

#include "memcache.h"
#include "meminfo.h"

#define HASH_BUCKETS	(1u << 16)
#define MAX_CONNS	64
#define GROW_QUIET_NS	(5ull * 1000000000ull)
#define GROW_HEADROOM	8		/* keep 1/8 of MemTotal available */

struct item {
	struct item	*hnext;		/* hash chain */
	struct item	*prev, *next;	/* LRU: head is most recent */
	void		*val;		/* a slot */
	size_t		 vlen;
	size_t		 mlen;		/* slot size */
	char		 key[MC_KEY_MAX + 1];
};

struct cache {
	pthread_mutex_t	 lock;
	struct item	*buckets[HASH_BUCKETS];
	struct item	*lru_head, *lru_tail;
	size_t		 nitems;
	size_t		 used;		/* bytes mapped for values */
	size_t		 limit;		/* current limit (bytes) */
	size_t		 max;		/* -m */
	size_t		 floor;		/* never shrink the limit below */
	uint64_t	 hits, misses, sets, evictions;
	uint64_t	 shrink_requests, shrink_freed_pages;
	uint64_t	 last_shrink_ns;
	uint64_t	 reported;	/* estimate last told to the driver (pages) */
};

static struct cache	 cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- the slot allocator ---- */

#define CHUNK_BYTES	(8u << 20)
#define NCLASSES	9		/* 4 KiB .. 1 MiB */

struct sclass {
	void	**free;			/* stack of free slots */
	size_t	  nfree, cap;
};

static pthread_mutex_t	 alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sclass	 classes[NCLASSES];
static size_t		 mapped;	/* bytes of chunks mapped */

static int
slot_class(size_t len, size_t *size)
{
	size_t sz = 4096;
	int c = 0;

	while (sz < len && c < NCLASSES - 1) {
		sz <<= 1;
		c++;
	}
	*size = sz;
	return sz >= len ? c : -1;
}

static int
slot_push(struct sclass *sc, void *p)
{
	void **nf;

	if (sc->nfree == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 256;

		if ((nf = realloc(sc->free, cap * sizeof(*nf))) == NULL)
			return -1;
		sc->free = nf;
		sc->cap = cap;
	}
	sc->free[sc->nfree++] = p;
	return 0;
}

/* A slot of at least @len bytes (its size in *@size), or NULL. */
static void *
slot_alloc(size_t len, size_t *size)
{
	struct sclass *sc;
	char *chunk;
	void *p = NULL;
	size_t off;
	int c;

	if ((c = slot_class(len, size)) == -1)
		return NULL;
	sc = &classes[c];
	pthread_mutex_lock(&alloc_lock);
	if (sc->nfree == 0) {
		chunk = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (chunk == MAP_FAILED)
			goto out;
		/* huge pages would have to be split (allocating) to give back part */
		(void)madvise(chunk, CHUNK_BYTES, MADV_NOHUGEPAGE);
		mapped += CHUNK_BYTES;
		for (off = CHUNK_BYTES; off >= *size; off -= *size)
			if (slot_push(sc, chunk + off - *size) == -1)
				break;
	}
	if (sc->nfree > 0)
		p = sc->free[--sc->nfree];
out:
	pthread_mutex_unlock(&alloc_lock);
	return p;
}

/* Give the slot's memory back to the kernel and keep the slot for reuse. */
static void
slot_free(void *p, size_t size)
{
	size_t dummy;
	int c = slot_class(size, &dummy);

	(void)madvise(p, size, MADV_DONTNEED);
	pthread_mutex_lock(&alloc_lock);
	(void)slot_push(&classes[c], p);	/* on ENOMEM the slot is lost, not the memory */
	pthread_mutex_unlock(&alloc_lock);
}
static struct memcoop	*mc;
static size_t		 pagesz;
static int		 quiet;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h & (HASH_BUCKETS - 1);
}

/* Caller holds cache.lock. */
static void
lru_unlink(struct item *it)
{
	if (it->prev)
		it->prev->next = it->next;
	else
		cache.lru_head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		cache.lru_tail = it->prev;
	it->prev = it->next = NULL;
}

static void
lru_push(struct item *it)
{
	it->prev = NULL;
	it->next = cache.lru_head;
	if (cache.lru_head)
		cache.lru_head->prev = it;
	cache.lru_head = it;
	if (cache.lru_tail == NULL)
		cache.lru_tail = it;
}

static struct item *
lookup(const char *key, struct item ***slot)
{
	struct item **p = &cache.buckets[hash(key)];

	for (; *p != NULL; p = &(*p)->hnext)
		if (strcmp((*p)->key, key) == 0)
			break;
	if (slot)
		*slot = p;
	return *p;
}

/* Remove @it from the cache and give its memory back.  Caller holds the lock. */
static size_t
item_drop(struct item *it)
{
	struct item **slot;
	size_t mlen = it->mlen;

	lookup(it->key, &slot);
	*slot = it->hnext;
	lru_unlink(it);
	slot_free(it->val, it->mlen);
	free(it);
	cache.nitems--;
	cache.used -= mlen;
	return mlen;
}

/* Evict from the LRU tail until @bytes were freed.  Caller holds the lock. */
static size_t
evict(size_t bytes)
{
	size_t freed = 0;

	while (freed < bytes && cache.lru_tail != NULL) {
		freed += item_drop(cache.lru_tail);
		cache.evictions++;
	}
	return freed;
}

/* Tell the driver what could be dropped now.  Caller holds the lock. */
static void
report_estimate(void)
{
	uint64_t pages = cache.used > cache.floor ? (cache.used - cache.floor) / pagesz : 0;
	uint64_t diff = pages > cache.reported ? pages - cache.reported : cache.reported - pages;

	if (mc == NULL || diff < 256)
		return;
	if (memcoop_set_reclaimable(mc, pages) == -1)
		warnx("memcoop_set_reclaimable: %s", memcoop_strerror(errno));
	else
		cache.reported = pages;
}

/*
 * The shrink callback (libmemcoop's helper thread): evict until what was
 * asked is free, lower the limit so the cache does not take it right back.
 */
static size_t
shrink_cb(const struct memcoop_event *req, void *arg)
{
	uint64_t t = now_ns();
	size_t want, freed;

	(void)arg;
	want = (size_t)req->shrink.pages * pagesz;
	pthread_mutex_lock(&cache.lock);
	freed = evict(want);
	cache.limit = cache.used > cache.floor ? cache.used : cache.floor;
	cache.shrink_requests++;
	cache.shrink_freed_pages += freed / pagesz;
	cache.last_shrink_ns = t;
	cache.reported = UINT64_MAX / 2;	/* force an update */
	report_estimate();
	pthread_mutex_unlock(&cache.lock);

	printf("SHRINK seq=%" PRIu64 " reason=%u level=%u asked=%" PRIu64 " freed=%zu "
	    "latency_us=%" PRIu64 " ts_ns=%" PRIu64 " cb_ns=%" PRIu64 "\n",
	    (uint64_t)req->seq, req->shrink.reason, req->shrink.level,
	    (uint64_t)req->shrink.pages, freed / pagesz,
	    (uint64_t)(t - req->timestamp_ns) / 1000, (uint64_t)req->timestamp_ns, t);
	return freed / pagesz;
}

/* Store @val (a slot of @mlen bytes) under @key. */
static void
cache_set(const char *key, void *val, size_t vlen, size_t mlen)
{
	struct item *it, **slot;

	pthread_mutex_lock(&cache.lock);
	if ((it = lookup(key, &slot)) != NULL)
		item_drop(it);
	if ((it = calloc(1, sizeof(*it))) == NULL) {
		pthread_mutex_unlock(&cache.lock);
		slot_free(val, mlen);
		return;
	}
	snprintf(it->key, sizeof(it->key), "%s", key);
	it->val = val;
	it->vlen = vlen;
	it->mlen = mlen;
	lookup(key, &slot);
	*slot = it;
	lru_push(it);
	cache.nitems++;
	cache.used += mlen;
	cache.sets++;
	if (cache.used > cache.limit)
		evict(cache.used - cache.limit);
	report_estimate();
	pthread_mutex_unlock(&cache.lock);
}

/* ---- connections ---- */

static int
valid_key(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > MC_KEY_MAX)
		return 0;
	for (; *k; k++)
		if (*k <= ' ' || *k > '~')
			return 0;
	return 1;
}

/* One request from @fd; -1 closes the connection. */
static int
serve(int fd)
{
	char line[MC_LINE_MAX], key[MC_LINE_MAX], out[512];
	struct item *it;
	size_t len, mlen;
	void *val;
	int n;

	if (mc_read_line(fd, line, sizeof(line)) == -1)
		return -1;
	if (sscanf(line, "SET %127s %zu", key, &len) == 2) {
		if (!valid_key(key) || len == 0 || len > MC_VALUE_MAX) {
			dprintf(fd, "ERROR bad SET\n");
			return -1;
		}
		/* the memory is taken and filled outside the lock */
		if ((val = slot_alloc(len, &mlen)) == NULL) {
			dprintf(fd, "ERROR out of memory\n");
			return -1;
		}
		if (io_full(fd, val, len, 0) == -1) {
			slot_free(val, mlen);
			return -1;
		}
		cache_set(key, val, len, mlen);
		return io_full(fd, "STORED\n", 7, 1);
	}
	if (sscanf(line, "GET %127s", key) == 1) {
		pthread_mutex_lock(&cache.lock);
		if ((it = lookup(key, NULL)) == NULL) {
			cache.misses++;
			pthread_mutex_unlock(&cache.lock);
			return io_full(fd, "MISS\n", 5, 1);
		}
		cache.hits++;
		lru_unlink(it);
		lru_push(it);
		/* written under the lock: eviction may unmap it otherwise */
		n = snprintf(out, sizeof(out), "VALUE %zu\n", it->vlen);
		if (io_full(fd, out, (size_t)n, 1) == -1 ||
		    io_full(fd, it->val, it->vlen, 1) == -1) {
			pthread_mutex_unlock(&cache.lock);
			return -1;
		}
		pthread_mutex_unlock(&cache.lock);
		return 0;
	}
	if (sscanf(line, "DEL %127s", key) == 1) {
		pthread_mutex_lock(&cache.lock);
		if ((it = lookup(key, NULL)) != NULL)
			item_drop(it);
		pthread_mutex_unlock(&cache.lock);
		return it ? io_full(fd, "DELETED\n", 8, 1) :
		    io_full(fd, "MISS\n", 5, 1);
	}
	if (strcmp(line, "STATS") == 0) {
		pthread_mutex_lock(&cache.lock);
		n = snprintf(out, sizeof(out),
		    "STATS items=%zu used_kb=%zu limit_kb=%zu hits=%" PRIu64 " misses=%" PRIu64
		    " sets=%" PRIu64 " evictions=%" PRIu64 " shrink_requests=%" PRIu64
		    " shrink_freed_pages=%" PRIu64 "\n",
		    cache.nitems, cache.used >> 10, cache.limit >> 10, cache.hits, cache.misses,
		    cache.sets, cache.evictions, cache.shrink_requests, cache.shrink_freed_pages);
		pthread_mutex_unlock(&cache.lock);
		return io_full(fd, out, (size_t)n, 1);
	}
	dprintf(fd, "ERROR unknown request\n");
	return -1;
}

/* MemTotal and MemAvailable from /proc/meminfo, in bytes (0 if unknown). */
static void
meminfo(uint64_t *total, uint64_t *avail)
{
	long t = meminfo_kib("MemTotal:"), a = meminfo_kib("MemAvailable:");

	*total = t > 0 ? (uint64_t)t << 10 : 0;
	*avail = a > 0 ? (uint64_t)a << 10 : 0;
}

static void
tick(uint64_t start)
{
	uint64_t t = now_ns(), total, avail;
	int room;

	/* outside the lock: the shrink callback must never wait for this */
	meminfo(&total, &avail);
	room = total > 0 && avail > cache.max / 100 + total / GROW_HEADROOM;
	pthread_mutex_lock(&cache.lock);
	/* grow back once the pressure is gone and there is memory to grow into */
	if (cache.limit < cache.max && t - cache.last_shrink_ns > GROW_QUIET_NS && room) {
		cache.limit += cache.max / 100;
		if (cache.limit > cache.max)
			cache.limit = cache.max;
	}
	if (!quiet)
		printf("CACHE t=%.1f items=%zu used_mib=%zu limit_mib=%zu hits=%" PRIu64
		    " misses=%" PRIu64 " evictions=%" PRIu64 " shrinks=%" PRIu64 "\n",
		    (double)(t - start) / 1e9, cache.nitems, cache.used >> 20,
		    cache.limit >> 20, cache.hits, cache.misses, cache.evictions,
		    cache.shrink_requests);
	pthread_mutex_unlock(&cache.lock);
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: memcache-like [-q] [-m max_mib] [-n name] [-p priority] "
	    "[-s socket]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct pollfd pfd[MAX_CONNS + 1];
	const char *sock = MC_SOCKET_DEFAULT, *name = "memcache-like";
	struct sockaddr_un sun;
	unsigned int prio = 0;
	uint64_t start = now_ns(), last_tick = start;
	int ch, lfd, i, n, npfd = 1;

	while ((ch = getopt(argc, argv, "m:n:p:qs:")) != -1) {
		switch (ch) {
		case 'm':
			cache.max = strtoull(optarg, NULL, 10) << 20;
			break;
		case 'n':
			name = optarg;
			break;
		case 'p':
			prio = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			quiet = 1;
			break;
		case 's':
			sock = optarg;
			break;
		default:
			usage();
		}
	}
	if (cache.max == 0)
		cache.max = 600ull << 20;
	cache.limit = cache.max;
	cache.floor = cache.max / 10;
	pagesz = (size_t)sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	if ((mc = memcoop_open(MEMCOOP_FEATURE_RELAY)) == NULL) {
		warnx("memcoop_open: %s; running without memcoop", memcoop_strerror(errno));
	} else if (memcoop_register(mc, name, prio, 0, 0) == -1 ||
	    memcoop_set_shrink_cb(mc, shrink_cb, NULL) == -1 ||
	    memcoop_relay_thread_start(mc) == -1) {
		errx(1, "memcoop: %s", memcoop_strerror(errno));
	}

	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sun.sun_path))
		errx(1, "%s: socket path too long", sock);
	strcpy(sun.sun_path, sock);
	unlink(sock);
	if (bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "bind %s", sock);
	if (listen(lfd, 16) == -1)
		err(1, "listen");
	pfd[0].fd = lfd;
	pfd[0].events = POLLIN;
	printf("READY socket=%s max_mib=%zu memcoop=%d\n", sock, cache.max >> 20, mc != NULL);

	for (;;) {
		n = poll(pfd, (nfds_t)npfd, 200);
		if (n == -1 && errno != EINTR)
			err(1, "poll");
		if (now_ns() - last_tick >= 1000000000ull) {
			last_tick = now_ns();
			tick(start);
		}
		if (n <= 0)
			continue;
		if ((pfd[0].revents & POLLIN) && npfd < MAX_CONNS + 1) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (cfd != -1) {
				pfd[npfd].fd = cfd;
				pfd[npfd].events = POLLIN;
				pfd[npfd].revents = 0;
				npfd++;
			}
		}
		for (i = 1; i < npfd; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (serve(pfd[i].fd) == -1) {
				close(pfd[i].fd);
				pfd[i] = pfd[--npfd];
				i--;
			}
		}
	}
}
