/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mcb-squeeze: the guest side of the squeeze benchmark.
 *
 *	mcb-squeeze CACHE_MIB VALUE_KIB
 *
 * Starts memcache-like (-m CACHE_MIB) and memcache-load filling it with
 * CACHE_MIB of VALUE_KIB values, both printing to our stdout; watches a
 * PSI trigger on /proc/pressure/memory ("some 1000 500000": 1 ms of
 * stall in a 500 ms window, its most sensitive setting) and the host's marks on /dev/ttyS2.  Lines:
 *
 *	MARK <text> mono_ns=N	a line from the host, stamped on arrival
 *	PSI mono_ns=N		the PSI trigger fired
 *	PSI unavailable: ...	no PSI in this kernel
 *	OOM_KILLS n		/proc/vmstat oom_kill at exit
 *	LOAD-EXIT n		memcache-load's exit status (1: a value came
 *				back corrupt), or LOAD-KILLED sig
 *
 * The host ends the run with the mark "quit".  The children are stopped
 * with SIGTERM (memcache-load prints its DONE line with the totals); the
 * exit status is 0 unless something could not be started.
 */
#include <sys/wait.h>

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

#define PSI_TRIGGER	"some 1000 500000"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static pid_t
spawn(char *const argv[])
{
	pid_t pid;

	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		execv(argv[0], argv);
		err(127, "exec %s", argv[0]);
	}
	return pid;
}

static void *
psi_thread(void *arg)
{
	struct pollfd pfd;
	int fd;

	(void)arg;
	if ((fd = open("/proc/pressure/memory", O_RDWR | O_NONBLOCK)) == -1) {
		printf("PSI unavailable: /proc/pressure/memory: %s\n", strerror(errno));
		return NULL;
	}
	if (write(fd, PSI_TRIGGER, strlen(PSI_TRIGGER) + 1) == -1) {
		printf("PSI unavailable: trigger: %s\n", strerror(errno));
		close(fd);
		return NULL;
	}
	printf("PSI trigger \"%s\" armed\n", PSI_TRIGGER);
	pfd.fd = fd;
	pfd.events = POLLPRI;
	for (;;) {
		int n = poll(&pfd, 1, -1);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || (pfd.revents & (POLLERR | POLLNVAL))) {
			printf("PSI poll failed: %s\n", strerror(errno));
			break;
		}
		if (pfd.revents & POLLPRI)
			printf("PSI mono_ns=%" PRIu64 "\n", now_ns());
	}
	close(fd);
	return NULL;
}

static long long
vmstat(const char *key)
{
	char line[128], k[64];
	long long v, r = -1;
	FILE *f;

	if ((f = fopen("/proc/vmstat", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%63s %lld", k, &v) == 2 && strcmp(k, key) == 0)
			r = v;
	fclose(f);
	return r;
}

int
main(int argc, char *argv[])
{
	char line[256], mib[32], kib[32];
	pthread_t psi;
	pid_t server, load;
	size_t len = 0;
	FILE *ctl;
	int c;

	if (argc != 3)
		errx(2, "usage: mcb-squeeze CACHE_MIB VALUE_KIB");
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(mib, sizeof(mib), "%s", argv[1]);
	snprintf(kib, sizeof(kib), "%s", argv[2]);

	if ((ctl = fopen("/dev/ttyS2", "r")) == NULL)
		err(1, "/dev/ttyS2");
	if (pthread_create(&psi, NULL, psi_thread, NULL) != 0)
		errx(1, "pthread_create");

	{
		char *sargv[] = { "/bin/memcache-like", "-m", mib, NULL };
		char *largv[] = { "/bin/memcache-load", "-f", mib, "-k", kib, NULL };

		server = spawn(sargv);
		load = spawn(largv);
	}

	/* marks from the host, one per line; "quit" ends the run */
	while ((c = fgetc(ctl)) != EOF) {
		if (c == '\r')
			continue;
		if (c != '\n') {
			if (len + 1 < sizeof(line))
				line[len++] = (char)c;
			continue;
		}
		line[len] = '\0';
		len = 0;
		printf("MARK %s mono_ns=%" PRIu64 "\n", line, now_ns());
		if (strcmp(line, "quit") == 0)
			break;
	}
	kill(load, SIGTERM);
	if (waitpid(load, &c, 0) == load) {
		if (WIFEXITED(c))
			printf("LOAD-EXIT %d\n", WEXITSTATUS(c));
		else
			printf("LOAD-KILLED %d\n", WTERMSIG(c));
	}
	kill(server, SIGTERM);
	while (wait(NULL) > 0)
		;
	printf("OOM_KILLS %lld\n", vmstat("oom_kill"));
	return 0;
}
