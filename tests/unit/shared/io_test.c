// SPDX-License-Identifier: GPL-2.0-only
/*
 * shared/io.c: the whole-file reads memcoopd's readers share (sysfs, /proc,
 * the config file, a QEMU's smaps): data arriving in pieces, a file larger
 * than the buffer, an empty one, read errors.
 */
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "io.h"
#include "testdata.h"

/* A pipe whose writer sends "abc", "defg", "hi" with pauses between. */
static void
test_pieces(void)
{
	char buf[64];
	int p[2];
	pid_t pid;

	CU_ASSERT_FATAL(pipe(p) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid != -1);
	if (pid == 0) {
		static const char *piece[] = { "abc", "defg", "hi" };
		int i;

		close(p[0]);
		for (i = 0; i < 3; i++) {
			if (write(p[1], piece[i], strlen(piece[i])) < 0)
				_exit(1);
			usleep(20000);
		}
		_exit(0);
	}
	close(p[1]);
	memset(buf, 'x', sizeof(buf));
	CU_ASSERT_EQUAL(io_read_all(p[0], buf, sizeof(buf)), 9);
	CU_ASSERT_STRING_EQUAL(buf, "abcdefghi");
	close(p[0]);
	waitpid(pid, NULL, 0);
}

static void
test_sizes(void)
{
	char buf[8];
	int p[2];

	/* more than fits: cap - 1 bytes, terminated; the rest stays */
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_FATAL(write(p[1], "0123456789", 10) == 10);
	close(p[1]);
	CU_ASSERT_EQUAL(io_read_all(p[0], buf, sizeof(buf)), 7);
	CU_ASSERT_STRING_EQUAL(buf, "0123456");
	CU_ASSERT_EQUAL(io_read_all(p[0], buf, sizeof(buf)), 3);
	CU_ASSERT_STRING_EQUAL(buf, "789");
	/* at EOF: empty, terminated */
	buf[0] = 'x';
	CU_ASSERT_EQUAL(io_read_all(p[0], buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(buf[0], '\0');
	/* a buffer of one: only the terminator */
	CU_ASSERT_EQUAL(io_read_all(p[0], buf, 1), 0);
	CU_ASSERT_EQUAL(buf[0], '\0');
	close(p[0]);
	/* a real file, and a sysfs-like one shorter than the buffer */
	CU_ASSERT(io_read_path("/proc/self/stat", buf, sizeof(buf)) == 7);
	CU_ASSERT_EQUAL(strlen(buf), 7);
}

static void
test_errors(void)
{
	char buf[16];
	int fd;

	errno = 0;
	CU_ASSERT_EQUAL(io_read_path("/nonexistent/x", buf, sizeof(buf)), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	/* a directory opens but does not read */
	errno = 0;
	CU_ASSERT_EQUAL(io_read_path("/", buf, sizeof(buf)), -1);
	CU_ASSERT_EQUAL(errno, EISDIR);
	fd = open("/", O_RDONLY);
	CU_ASSERT_EQUAL(io_read_all(fd, buf, sizeof(buf)), -1);
	close(fd);
	CU_ASSERT_EQUAL(io_read_all(-1, buf, sizeof(buf)), -1);
	CU_ASSERT_EQUAL(errno, EBADF);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("io", NULL, NULL);
	CU_add_test(s, "data in pieces", test_pieces);
	CU_add_test(s, "larger than the buffer, empty", test_sizes);
	CU_add_test(s, "read errors", test_errors);
	return td_run();
}
