/*
 * mct-balloon: the in-guest side of the balloon tests and benchmark.
 *
 *   mct-balloon agent        serve commands from the host, one per line on
 *                            /dev/ttyS2: "<id> <command> [args]"; every
 *                            answer line starts with "<id> ", the last one
 *                            is "<id> OK ..." or "<id> ERR ...".
 *   mct-balloon cycles N [modparams...]
 *                            wait for the host to set a balloon target,
 *                            then N times: rmmod memcoop, check MemTotal is back
 *                            to full, insmod, wait for the balloon to reach
 *                            its target; then MemFree must be where it was.
 *
 * Agent commands:
 *   meminfo                  MemTotal MemFree+per-cpu lists MemAvailable (KiB)
 *   alloc MIB                map and touch MIB MiB (kept until "free")
 *   free                     unmap everything "alloc" mapped
 *   counters                 the balloon debugfs counters, "name value"
 *   vmstat                   /proc/vmstat, "name value"
 *   cpu                      busy and idle jiffies from /proc/stat, and HZ
 *   pressure MIB             start a child that maps, touches and unmaps
 *                            MIB MiB in a loop (until "pressure-stop")
 *   pressure-stop            stop it; OK tells how many rounds it did
 *   rmmod / insmod [params]  unload / load memcoop.ko
 *   sh COMMAND               run COMMAND with /bin/sh; OK tells its status
 *   exit CODE                leave with CODE
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meminfo.h"

#define COUNTERS "/sys/kernel/debug/memcoop/balloon"
#define KO "/lib/modules/mc/memcoop.ko"
#define MIB (1UL << 20)

struct mapping {
	void *addr;
	size_t len;
};

static struct mapping maps[256];
static int nmaps;
static pid_t pressure_pid = -1;

struct meminfo {
	long total, free, avail;	/* KiB */
};

/* free: MemFree plus the per-cpu free lists, so that kernels compare. */
static int read_meminfo(struct meminfo *mi)
{
	mi->total = meminfo_kib("MemTotal:");
	mi->free = meminfo_free_kib();
	mi->avail = meminfo_kib("MemAvailable:");
	return mi->total < 0 || mi->free < 0 ? -1 : 0;
}

/* Value of counter @name, or -1. */
static long long counter(const char *name)
{
	char line[256], key[128];
	long long v, ret = -1;
	FILE *f = fopen(COUNTERS, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %lld", key, &v) == 2 && !strcmp(key, name))
			ret = v;
	fclose(f);
	return ret;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Map and touch @mib MiB; 0 or -1. */
static int do_alloc(unsigned long mib)
{
	size_t len = mib * MIB;
	void *p;

	if (nmaps == (int)(sizeof(maps) / sizeof(maps[0])))
		return -1;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	for (size_t off = 0; off < len; off += 4096)
		((volatile char *)p)[off] = (char)(off >> 12 | 1);
	maps[nmaps].addr = p;
	maps[nmaps].len = len;
	nmaps++;
	return 0;
}

static void do_free(void)
{
	while (nmaps > 0) {
		nmaps--;
		munmap(maps[nmaps].addr, maps[nmaps].len);
	}
}

static volatile sig_atomic_t pressure_stop;

static void on_term(int sig)
{
	(void)sig;
	pressure_stop = 1;
}

/* The pressure child: map, touch, unmap @mib MiB until SIGTERM. */
static void pressure_loop(unsigned long mib, int fd)
{
	unsigned long rounds = 0;
	size_t len = mib * MIB;

	signal(SIGTERM, on_term);
	while (!pressure_stop) {
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			usleep(10000);
			continue;
		}
		for (size_t off = 0; off < len && !pressure_stop; off += 4096)
			p[off] = 1;
		munmap(p, len);
		rounds++;
	}
	if (write(fd, &rounds, sizeof(rounds)) != sizeof(rounds))
		_exit(2);
	_exit(0);
}

static int pressure_fd = -1;

static int pressure_start(unsigned long mib)
{
	int fds[2];

	if (pressure_pid > 0 || pipe(fds))
		return -1;
	pressure_pid = fork();
	if (pressure_pid < 0)
		return -1;
	if (pressure_pid == 0) {
		close(fds[0]);
		pressure_loop(mib, fds[1]);
	}
	close(fds[1]);
	pressure_fd = fds[0];
	return 0;
}

/* Stop the child; its rounds, or -1 if it died (OOM kill) or failed. */
static long pressure_end(void)
{
	unsigned long rounds = 0;
	int status;

	if (pressure_pid <= 0)
		return -1;
	kill(pressure_pid, SIGTERM);
	waitpid(pressure_pid, &status, 0);
	pressure_pid = -1;
	if (read(pressure_fd, &rounds, sizeof(rounds)) != sizeof(rounds))
		rounds = (unsigned long)-1;
	close(pressure_fd);
	pressure_fd = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	return (long)rounds;
}

static int run(const char *cmd)
{
	int st = system(cmd);

	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int insmod(const char *params)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "insmod " KO " %s", params ? params : "");
	return run(cmd);
}

/* Wait up to @secs for size_pages == target_pages; seconds taken or -1. */
static double wait_settled(double secs)
{
	double t0 = now();

	while (now() - t0 < secs) {
		long long s = counter("size_pages"), t = counter("target_pages");

		if (s >= 0 && s == t)
			return now() - t0;
		usleep(10000);
	}
	return -1;
}

/*
 * Meminfo after dropping caches, shrinking every slab cache and letting
 * per-cpu lists drain.  The shrink also empties KASAN's quarantine
 * (kmem_cache_shrink() drains each cache's freed objects from it): on the
 * debug kernel it holds up to 1/32 of RAM in freed slab objects, and its
 * fill level moved SUnreclaim, so MemFree, by 1-4 MiB over the cycles.
 */
static void settle_meminfo(struct meminfo *mi)
{
	sync();
	run("echo 3 > /proc/sys/vm/drop_caches");
	run("for f in /sys/kernel/slab/*/shrink; do echo 1 > $f; done 2>/dev/null");
	sleep(2);
	read_meminfo(mi);
}

static int cycles(int n, int argc, char **argv)
{
	char params[400] = "";
	struct meminfo m0, m;
	long full_total = -1;
	double worst = 0;

	for (int i = 0; i < argc; i++) {
		strncat(params, argv[i], sizeof(params) - strlen(params) - 2);
		strcat(params, " ");
	}
	printf("WAITING TARGET\n");
	for (int i = 0; counter("target_pages") <= 0; i++) {
		if (i == 6000) {
			printf("FAIL the host set no balloon target\n");
			return 1;
		}
		usleep(10000);
	}
	if (wait_settled(120) < 0) {
		printf("FAIL balloon did not settle before the cycles\n");
		return 1;
	}
	/* one warm-up cycle: the first load/unload settles caches for good */
	if (run("rmmod memcoop") || insmod(params) || wait_settled(120) < 0) {
		printf("FAIL warm-up cycle\n");
		return 1;
	}
	settle_meminfo(&m0);
	printf("start MemTotal %ld MemFree %ld size_pages %lld\n", m0.total,
	       m0.free, counter("size_pages"));
	for (int i = 0; i < n; i++) {
		double t;

		if (run("rmmod memcoop")) {
			printf("FAIL cycle %d: rmmod\n", i);
			return 1;
		}
		if (read_meminfo(&m))
			return 1;
		if (full_total < 0)
			full_total = m.total;
		if (m.total != full_total) {
			printf("FAIL cycle %d: MemTotal %ld after rmmod, first was %ld\n",
			       i, m.total, full_total);
			return 1;
		}
		if (insmod(params)) {
			printf("FAIL cycle %d: insmod\n", i);
			return 1;
		}
		t = wait_settled(120);
		if (t < 0) {
			printf("FAIL cycle %d: balloon did not reach its target\n", i);
			return 1;
		}
		if (t > worst)
			worst = t;
	}
	settle_meminfo(&m);
	printf("end MemTotal %ld MemFree %ld (start %ld %ld), full MemTotal %ld, "
	       "slowest settle %.2f s\n", m.total, m.free, m0.total, m0.free,
	       full_total, worst);
	if (m.total != m0.total) {
		printf("FAIL MemTotal %ld, was %ld\n", m.total, m0.total);
		return 1;
	}
	/* slab and page cache move a little; a lost batch would be MiBs */
	if (labs(m.free - m0.free) > 1024) {
		printf("FAIL MemFree moved by %ld KiB over %d cycles\n",
		       m.free - m0.free, n);
		return 1;
	}
	printf("PASS %d load/unload cycles\n", n);
	return 0;
}

static void answer(const char *id, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", id);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static int agent(void)
{
	char line[512];
	FILE *in = fopen("/dev/ttyS2", "r");

	if (!in) {
		perror("mct-balloon: /dev/ttyS2");
		return 1;
	}
	printf("AGENT READY\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), in)) {
		char id[32], cmd[64], arg[400] = "";
		struct meminfo mi;

		line[strcspn(line, "\r\n")] = '\0';
		if (sscanf(line, "%31s %63s %399[^\n]", id, cmd, arg) < 2)
			continue;
		if (!strcmp(cmd, "meminfo")) {
			if (read_meminfo(&mi))
				answer(id, "ERR meminfo");
			else
				answer(id, "OK %ld %ld %ld", mi.total, mi.free, mi.avail);
		} else if (!strcmp(cmd, "alloc")) {
			if (do_alloc(strtoul(arg, NULL, 0)))
				answer(id, "ERR alloc: %s", strerror(errno));
			else
				answer(id, "OK");
		} else if (!strcmp(cmd, "free")) {
			do_free();
			answer(id, "OK");
		} else if (!strcmp(cmd, "counters") || !strcmp(cmd, "vmstat")) {
			const char *path = cmd[0] == 'c' ? COUNTERS : "/proc/vmstat";
			char l[256];
			FILE *f = fopen(path, "r");

			if (!f) {
				answer(id, "ERR %s: %s", path, strerror(errno));
				continue;
			}
			while (fgets(l, sizeof(l), f)) {
				l[strcspn(l, "\n")] = '\0';
				answer(id, "C %s", l);
			}
			fclose(f);
			answer(id, "OK");
		} else if (!strcmp(cmd, "cpu")) {
			unsigned long long v[8] = {0};
			FILE *f = fopen("/proc/stat", "r");

			if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
					 &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
					 &v[6], &v[7]) != 8) {
				answer(id, "ERR /proc/stat");
			} else {
				answer(id, "OK %llu %llu %ld",
				       v[0] + v[1] + v[2] + v[5] + v[6] + v[7],
				       v[3] + v[4], sysconf(_SC_CLK_TCK));
			}
			if (f)
				fclose(f);
		} else if (!strcmp(cmd, "pressure")) {
			if (pressure_start(strtoul(arg, NULL, 0)))
				answer(id, "ERR pressure");
			else
				answer(id, "OK");
		} else if (!strcmp(cmd, "pressure-stop")) {
			answer(id, "OK %ld", pressure_end());
		} else if (!strcmp(cmd, "rmmod")) {
			answer(id, "OK %d", run("rmmod memcoop"));
		} else if (!strcmp(cmd, "insmod")) {
			answer(id, "OK %d", insmod(arg));
		} else if (!strcmp(cmd, "sh")) {
			answer(id, "OK %d", run(arg));
		} else if (!strcmp(cmd, "exit")) {
			if (pressure_pid > 0)
				pressure_end();
			answer(id, "OK");
			return atoi(arg);
		} else {
			answer(id, "ERR unknown command %s", cmd);
		}
	}
	return 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "agent"))
		return agent();
	if (argc >= 3 && !strcmp(argv[1], "cycles"))
		return cycles(atoi(argv[2]), argc - 3, argv + 3);
	fprintf(stderr, "usage: mct-balloon agent | cycles N [modparams...]\n");
	return 2;
}
