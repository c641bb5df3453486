/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * mct-ksmfill MIB SEED: in-guest helper for the KSM tests.  Fills MIB MiB
 * of anonymous memory with pages whose content depends only on SEED and
 * the page's index: two guests given the same SEED hold identical pages
 * (what KSM can merge across guests), while no two pages inside one guest
 * are equal.  SEED "random" takes one from the clock, so guests differ.
 * Prints "KSMFILL READY <pages>" and then waits until killed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	unsigned long mib, pages, i, j;
	uint64_t seed, x, *p;
	unsigned char *mem;
	struct timespec ts;

	if (argc != 3) {
		fprintf(stderr, "usage: mct-ksmfill MIB SEED|random\n");
		return 2;
	}
	mib = strtoul(argv[1], NULL, 10);
	if (strcmp(argv[2], "random") == 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)getpid();
	} else {
		seed = strtoull(argv[2], NULL, 10);
	}
	pages = mib * 256;
	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (i = 0; i < pages; i++) {
		p = (uint64_t *)(mem + i * 4096);
		x = seed * 0x9e3779b97f4a7c15ULL + i + 1;
		for (j = 0; j < 512; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[j] = x;
		}
	}
	printf("KSMFILL READY %lu\n", pages);
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}
