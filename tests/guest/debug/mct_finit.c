/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * mct-finit: load a module once with finit_module(2), its N-th
 * fault-injection point failing (/proc/thread-self/fail-nth), for
 * debug-faultinject's load sweep.
 *
 *	mct-finit NTH MODULE.ko [PARAMS]
 *
 * busybox insmod cannot serve: when finit_module fails it tries again
 * with init_module, so the failure that was injected in the first load is
 * followed by a second, clean one.  NTH 0 injects nothing.  Prints
 *
 *	finit: rc=ERRNO left=N
 *
 * where ERRNO is 0 when the module loaded and N what was left of NTH
 * after the call: 0 when the NTH-th point was reached (and failed),
 * otherwise NTH minus the points the load went through (with a large
 * NTH, 1000000 - N counts them).  Exits 0 whenever it could try.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
write_nth(const char *path, unsigned long nth)
{
	char buf[32];
	int fd, n, ok;

	fd = open(path, O_WRONLY);
	if (fd == -1)
		return -1;
	n = snprintf(buf, sizeof(buf), "%lu", nth);
	ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	return ok ? 0 : -1;
}

static long
read_nth(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

int
main(int argc, char **argv)
{
	const char *nthpath = "/proc/thread-self/fail-nth";
	unsigned long nth;
	char *end;
	int fd, rc;
	long left;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: mct-finit NTH MODULE.ko [PARAMS]\n");
		return 2;
	}
	errno = 0;
	nth = strtoul(argv[1], &end, 10);
	if (errno || *end != '\0' || end == argv[1]) {
		fprintf(stderr, "mct-finit: bad NTH \"%s\"\n", argv[1]);
		return 2;
	}
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		fprintf(stderr, "mct-finit: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	/* the last thing before the call: only the load's points count */
	if (nth && write_nth(nthpath, nth) == -1) {
		fprintf(stderr, "mct-finit: %s: %s\n", nthpath, strerror(errno));
		return 1;
	}
	rc = syscall(SYS_finit_module, fd, argc == 4 ? argv[3] : "", 0) == 0 ? 0 : errno;
	left = nth ? read_nth(nthpath) : 0;
	/* what was not used must not fail a later call of this process */
	if (left > 0)
		(void)write_nth(nthpath, 0);
	close(fd);
	printf("finit: rc=%d left=%ld\n", rc, left);
	return 0;
}
