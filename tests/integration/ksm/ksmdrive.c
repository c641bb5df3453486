/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ksmdrive: drives host-agent/ksm.c outside memcoopd, for the KSM
 * integration test and the agent benchmark.
 *
 *   ksmdrive estimate PID...
 *	one user-space estimate; prints it as JSON.
 *   ksmdrive run MODE SECONDS TICK_MS PID...
 *	ksm_init(MODE), ksm_tick() every TICK_MS for SECONDS, one JSON status
 *	line per tick (with each PID's saving), then ksm_free(), which puts
 *	the sysfs settings back.  SIGINT/SIGTERM end the run early, cleanly.
 *
 * Environment: KSMDRIVE_SYSFS (default /sys/kernel/mm/ksm),
 * KSMDRIVE_ON_MIB / KSMDRIVE_OFF_MIB / KSMDRIVE_INTERVAL (auto tunables),
 * KSMDRIVE_STEADY_LOG_S (while steady, a status line only every so many
 * seconds or on a new decision, as memcoopd would be scraped; default
 * every tick).  Each status line has the process's own CPU (self_cpu_ms,
 * all threads), for the bench's accounting by phase.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ksm.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* CPU time in ms, for the phase accounting of the bench. */
static long long
tv_ms(const struct timeval *tv)
{
	return (long long)tv->tv_sec * 1000 + tv->tv_usec / 1000;
}

static int
parse_pids(int argc, char **argv, pid_t **out)
{
	pid_t *p;
	int i;

	p = calloc((size_t)argc + 1, sizeof(*p));
	if (p == NULL)
		return -1;
	for (i = 0; i < argc; i++) {
		char *end;
		long v = strtol(argv[i], &end, 10);

		if (*end != '\0' || v <= 0) {
			fprintf(stderr, "ksmdrive: bad pid %s\n", argv[i]);
			free(p);
			return -1;
		}
		p[i] = (pid_t)v;
	}
	*out = p;
	return argc;
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmd_estimate(int argc, char **argv)
{
	struct ksm_estimate e;
	pid_t *pids;
	int n;

	n = parse_pids(argc, argv, &pids);
	if (n <= 0)
		return 2;
	if (ksm_estimate_pids(pids, (size_t)n, 6, "/proc", &e) == -1) {
		fprintf(stderr, "ksmdrive: estimate failed: %s\n", strerror(errno));
		free(pids);
		return 1;
	}
	printf("{\"resident_pages\": %llu, \"examined_pages\": %llu, "
	    "\"hashed_pages\": %llu, \"zero_pages\": %llu, "
	    "\"saving_pages\": %llu, \"cross_pages\": %llu, \"elapsed_ms\": %llu}\n",
	    (unsigned long long)e.resident_pages,
	    (unsigned long long)e.examined_pages,
	    (unsigned long long)e.hashed_pages, (unsigned long long)e.zero_pages,
	    (unsigned long long)e.saving_pages, (unsigned long long)e.cross_pages,
	    (unsigned long long)e.elapsed_ms);
	free(pids);
	return 0;
}

static int
cmd_run(int argc, char **argv)
{
	const char *sysfs = getenv("KSMDRIVE_SYSFS");
	struct ksm_params kp;
	struct ksm_status st;
	struct rusage ru;
	uint64_t *saving;
	double steady_log = 0, logged = 0;
	struct ksm_state *k;
	struct sigaction sa;
	enum ksm_mode mode;
	double t0, secs;
	long tick_ms;
	pid_t *pids;
	int n, i;

	if (argc < 3 || ksm_mode_parse(argv[0], &mode) == -1) {
		fprintf(stderr, "usage: ksmdrive run off|on|auto SECONDS TICK_MS PID...\n");
		return 2;
	}
	secs = atof(argv[1]);
	tick_ms = atol(argv[2]);
	if (secs <= 0 || tick_ms <= 0)
		return 2;
	n = parse_pids(argc - 3, argv + 3, &pids);
	if (n < 0)
		return 2;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (ksm_init(&k, sysfs != NULL ? sysfs : KSM_SYSFS_DEFAULT, mode) == -1) {
		fprintf(stderr, "ksmdrive: ksm_init failed\n");
		free(pids);
		return 1;
	}
	ksm_params_default(&kp);
	if (getenv("KSMDRIVE_ON_MIB"))
		kp.on_bytes = strtoull(getenv("KSMDRIVE_ON_MIB"), NULL, 10) << 20;
	if (getenv("KSMDRIVE_OFF_MIB"))
		kp.off_bytes = strtoull(getenv("KSMDRIVE_OFF_MIB"), NULL, 10) << 20;
	if (getenv("KSMDRIVE_INTERVAL"))
		kp.estimate_interval = (unsigned int)atoi(getenv("KSMDRIVE_INTERVAL"));
	if (getenv("KSMDRIVE_MIN_ON"))
		kp.min_on_time = (unsigned int)atoi(getenv("KSMDRIVE_MIN_ON"));
	ksm_set_params(k, &kp);

	saving = calloc((size_t)(n > 0 ? n : 1), sizeof(*saving));
	if (saving == NULL) {
		ksm_free(k);
		free(pids);
		return 1;
	}
	if (getenv("KSMDRIVE_STEADY_LOG_S"))
		steady_log = atof(getenv("KSMDRIVE_STEADY_LOG_S"));
	memset(&st, 0, sizeof(st));
	t0 = mono();
	while (!stop && mono() - t0 < secs) {
		/*
		 * As memcoopd: the guests' savings come with the tick (and
		 * may be steady_tick old), and a status line prints those.
		 */
		ksm_tick(k, pids, (size_t)n, saving);
		/*
		 * While steady, a status line only every steady_log seconds
		 * or on a new decision, as a metrics scrape would read it.
		 */
		if (steady_log > 0 && st.phase == KSM_PH_STEADY &&
		    mono() - logged < steady_log &&
		    strcmp(ksm_last_reason(k), st.reason) == 0) {
			usleep((useconds_t)tick_ms * 1000);
			continue;
		}
		ksm_get_status(k, &st);
		logged = mono();
		getrusage(RUSAGE_SELF, &ru);
		printf("{\"t\": %.2f, \"self_cpu_ms\": %lld, \"mode\": \"%s\", \"phase\": \"%s\", \"run\": %d, "
		    "\"pages_shared\": %llu, \"pages_sharing\": %llu, "
		    "\"full_scans\": %llu, \"pages_to_scan\": %llu, "
		    "\"sleep_millisecs\": %llu, \"advisor_active\": %d, "
		    "\"saving_bytes\": %llu, \"general_profit\": %lld, "
		    "\"estimate_bytes\": %llu, \"estimate_cross_bytes\": %llu, "
		    "\"estimate_ms\": %llu, \"ksmd_cpu_ms\": %llu, \"guests\": [",
		    mono() - t0, (long long)(tv_ms(&ru.ru_utime) +
		    tv_ms(&ru.ru_stime)), ksm_mode_name(st.mode), ksm_phase_name(st.phase),
		    st.run, (unsigned long long)st.pages_shared,
		    (unsigned long long)st.pages_sharing,
		    (unsigned long long)st.full_scans,
		    (unsigned long long)st.pages_to_scan,
		    (unsigned long long)st.sleep_millisecs, st.advisor_active,
		    (unsigned long long)st.saving_bytes,
		    (long long)st.general_profit,
		    (unsigned long long)st.estimate_bytes,
		    (unsigned long long)st.estimate_cross_bytes,
		    (unsigned long long)st.estimate_ms,
		    (unsigned long long)st.ksmd_cpu_ms);
		for (i = 0; i < n; i++)
			printf("%s{\"pid\": %d, \"saving_bytes\": %llu}",
			    i ? ", " : "", (int)pids[i],
			    (unsigned long long)saving[i]);
		printf("], \"reason\": \"%s\"}\n", st.reason);
		fflush(stdout);
		usleep((useconds_t)tick_ms * 1000);
	}
	ksm_free(k);
	free(saving);
	free(pids);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "estimate") == 0)
		return cmd_estimate(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	fprintf(stderr, "usage: ksmdrive estimate PID... | "
	    "run off|on|auto SECONDS TICK_MS PID...\n");
	return 2;
}
