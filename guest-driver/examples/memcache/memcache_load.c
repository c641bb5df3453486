/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memcache-load: the load generator for memcache-like.
 *
 *	memcache-load [-f fill_mib] [-k value_kib] [-s socket] [-t seconds]
 *
 * Fills the cache with fill_mib of values (keys k0..kN-1, value_kib each),
 * then runs a cache-aside workload until -t seconds have passed (0: for
 * ever): GET a key (80% of requests go to the hottest 20% of keys); on a
 * miss, SET it again, as an application in front of a slow database
 * would.  Every value's contents are derived from its key and checked on
 * each hit.  If the server goes away it reconnects and counts the time
 * down.
 *
 * Output (stdout): "FILLED mib=M secs=S", then once a second
 *	LOAD t=S rps=R hits=H misses=M sets=N errors=E down=0|1 mono_ns=T
 * and "DONE ..." with the totals, also when stopped by SIGTERM or SIGINT.
 * Exit 1 if a value came back corrupt.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memcache.h"

static const char *sock_path = MC_SOCKET_DEFAULT;
static volatile sig_atomic_t stop;
static size_t vlen;
static unsigned char *buf;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
sock_connect(void)
{
	struct sockaddr_un sun;
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
fill_value(unsigned char *v, uint64_t key)
{
	size_t i;

	for (i = 0; i < vlen; i += 8) {
		uint64_t w = key * 0x9e3779b97f4a7c15ull + i;

		memcpy(v + i, &w, vlen - i < 8 ? vlen - i : 8);
	}
}

static int
check_value(const unsigned char *v, size_t len, uint64_t key)
{
	uint64_t w;
	size_t i;

	if (len != vlen)
		return 0;
	for (i = 0; i + 8 <= len; i += 4096) {	/* one word per page */
		w = key * 0x9e3779b97f4a7c15ull + i;
		if (memcmp(v + i, &w, 8) != 0)
			return 0;
	}
	return 1;
}

static int
do_set(int fd, uint64_t key)
{
	char line[MC_LINE_MAX];
	int n;

	fill_value(buf, key);
	n = snprintf(line, sizeof(line), "SET k%" PRIu64 " %zu\n", key, vlen);
	if (io_full(fd, line, (size_t)n, 1) == -1 || io_full(fd, buf, vlen, 1) == -1 ||
	    mc_read_line(fd, line, sizeof(line)) == -1)
		return -1;
	return strcmp(line, "STORED") == 0 ? 0 : -1;
}

/* 1 hit, 0 miss, -1 connection error, -2 corrupt value */
static int
do_get(int fd, uint64_t key)
{
	char line[MC_LINE_MAX];
	size_t len;
	int n;

	n = snprintf(line, sizeof(line), "GET k%" PRIu64 "\n", key);
	if (io_full(fd, line, (size_t)n, 1) == -1 || mc_read_line(fd, line, sizeof(line)) == -1)
		return -1;
	if (strcmp(line, "MISS") == 0)
		return 0;
	if (sscanf(line, "VALUE %zu", &len) != 1 || len > MC_VALUE_MAX)
		return -1;
	if (io_full(fd, buf, len, 0) == -1)
		return -1;
	return check_value(buf, len, key) ? 1 : -2;
}

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t
pick(uint64_t nkeys)
{
	uint64_t r = ((uint64_t)random() << 31) ^ (uint64_t)random();
	uint64_t hot = nkeys / 5 ? nkeys / 5 : 1;

	return r % 10 < 8 ? (r >> 8) % hot : (r >> 8) % nkeys;
}

int
main(int argc, char *argv[])
{
	uint64_t fill_mib = 600, nkeys, k, start, end = 0, last, t;
	uint64_t ops = 0, last_ops = 0, hits = 0, misses = 0, sets = 0, errors = 0;
	unsigned int secs = 0;
	int ch, fd = -1, r, down = 0, corrupt = 0;

	vlen = 64 * 1024;
	while ((ch = getopt(argc, argv, "f:k:s:t:")) != -1) {
		switch (ch) {
		case 'f':
			fill_mib = strtoull(optarg, NULL, 10);
			break;
		case 'k':
			vlen = strtoull(optarg, NULL, 10) * 1024;
			break;
		case 's':
			sock_path = optarg;
			break;
		case 't':
			secs = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: memcache-load [-f fill_mib] [-k value_kib] "
			    "[-s socket] [-t seconds]\n");
			return 2;
		}
	}
	if (vlen == 0 || vlen > MC_VALUE_MAX)
		errx(2, "value size must be 1..%d KiB", MC_VALUE_MAX / 1024);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	{
		/* SA_RESTART: a request under way completes, then the loop ends */
		struct sigaction sa = { .sa_handler = on_stop, .sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	if ((buf = malloc(MC_VALUE_MAX)) == NULL)
		err(1, "malloc");
	nkeys = (fill_mib << 20) / vlen;
	srandom((unsigned int)getpid());

	for (r = 0; r < 100 && (fd = sock_connect()) == -1; r++)
		usleep(100000);
	if (fd == -1)
		errx(1, "connect %s: %s", sock_path, strerror(errno));
	start = now_ns();
	for (k = 0; k < nkeys; k++)
		if (do_set(fd, k) == -1)
			errx(1, "fill: SET k%" PRIu64 " failed", k);
	printf("FILLED mib=%" PRIu64 " keys=%" PRIu64 " secs=%.1f\n", fill_mib, nkeys,
	    (double)(now_ns() - start) / 1e9);

	start = last = now_ns();
	if (secs)
		end = start + (uint64_t)secs * 1000000000ull;
	while (!stop && (!end || (t = now_ns()) < end)) {
		if (fd == -1 && (fd = sock_connect()) == -1) {
			down = 1;
			usleep(100000);
		} else {
			k = pick(nkeys);
			r = do_get(fd, k);
			if (r == 0) {
				misses++;
				r = do_set(fd, k) == 0 ? 0 : -1;
				if (r == 0)
					sets++;
			} else if (r == 1) {
				hits++;
			}
			if (r == -2) {
				corrupt++;
				errors++;
			} else if (r == -1) {
				errors++;
				close(fd);
				fd = -1;
			} else {
				ops++;
				down = 0;
			}
		}
		t = now_ns();
		if (t - last >= 1000000000ull) {
			printf("LOAD t=%.1f rps=%.0f hits=%" PRIu64 " misses=%" PRIu64 " sets=%"
			    PRIu64 " errors=%" PRIu64 " down=%d mono_ns=%" PRIu64 "\n",
			    (double)(t - start) / 1e9,
			    (double)(ops - last_ops) * 1e9 / (double)(t - last), hits, misses,
			    sets, errors, down, t);
			last = t;
			last_ops = ops;
		}
	}
	printf("DONE ops=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64 " errors=%" PRIu64
	    " corrupt=%d\n", ops, hits, misses, errors, corrupt);
	return corrupt ? 1 : 0;
}
