/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The driver shared by the fuzz harnesses.  Each harness defines
 * fuzz_init() (once) and fuzz_one() (per input); a broken invariant is
 * an abort(), which AFL++ counts as a crash.
 *
 * Built with afl-cc (AFL++'s LLVM mode defines __AFL_FUZZ_TESTCASE_LEN):
 * persistent mode, inputs from shared memory.  Built with the ordinary
 * compiler: a replay tool, `fuzz-NAME FILE...` runs every file given (the
 * corpus regression test), or stdin without arguments.
 */
#ifndef MEMCOOP_FUZZ_MAIN_H
#define MEMCOOP_FUZZ_MAIN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void	fuzz_init(void);
static void	fuzz_one(const uint8_t *data, size_t len);

#define FUZZ_ASSERT(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();

int
main(void)
{
	unsigned char *buf;

	fuzz_init();
	__AFL_INIT();
	buf = __AFL_FUZZ_TESTCASE_BUF;
	while (__AFL_LOOP(10000))
		fuzz_one(buf, (size_t)__AFL_FUZZ_TESTCASE_LEN);
	return 0;
}
#else
static int
fuzz_file(FILE *f, const char *name)
{
	size_t cap = 1 << 16, len = 0, n;
	uint8_t *buf = malloc(cap);

	if (buf == NULL)
		return -1;
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap * 2);

			if (nb == NULL) {
				free(buf);
				return -1;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: read error\n", name);
		free(buf);
		return -1;
	}
	fuzz_one(buf, len);
	free(buf);
	return 0;
}

int
main(int argc, char *argv[])
{
	int i, n = 0;

	fuzz_init();
	if (argc < 2)
		return fuzz_file(stdin, "stdin") == 0 ? 0 : 1;
	for (i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");

		if (f == NULL || fuzz_file(f, argv[i]) == -1) {
			perror(argv[i]);
			return 1;
		}
		fclose(f);
		n++;
	}
	printf("%d inputs replayed, no invariant broken\n", n);
	return 0;
}
#endif

#endif /* MEMCOOP_FUZZ_MAIN_H */
