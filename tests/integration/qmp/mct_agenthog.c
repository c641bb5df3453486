// SPDX-License-Identifier: GPL-2.0-only
/*
 * mct-agenthog: the guest half of memcoopd's QMP integration tests.  Holds
 * as much anonymous memory as the host asks for, so that the host can put
 * the guest under memory pressure and take it off again.
 *
 * Commands, one per line on /dev/ttyS2 (the lab's host->guest channel):
 *   hold N    hold N MiB in total (allocate or free 1 MiB chunks)
 *   cat PATH  print the file between "BEGIN PATH" and "END" lines
 *             (to record /proc/meminfo, /proc/pressure/memory)
 *   exit      exit 0
 * Answers on stdout: "READY" at start, "HOLD N" once N MiB are held,
 * "FAIL ..." when an allocation failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK		(1UL << 20)
#define MAX_CHUNKS	65536

static void *chunks[MAX_CHUNKS];
static unsigned long held;

static int
hold(unsigned long want)
{
	while (held < want) {
		unsigned char *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		size_t i;

		if (p == MAP_FAILED) {
			printf("FAIL mmap after %lu MiB: %s\n", held,
			    strerror(errno));
			fflush(stdout);
			return -1;
		}
		/* distinct contents: nothing for KSM or zero pages to share */
		for (i = 0; i < CHUNK; i += 4096) {
			memset(p + i, 0x5a, 64);
			*(unsigned long *)(p + i) = held * 256 + i / 4096;
		}
		chunks[held++] = p;
	}
	while (held > want) {
		munmap(chunks[--held], CHUNK);
		chunks[held] = NULL;
	}
	return 0;
}

static void
cat(const char *path)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		printf("FAIL open %s: %s\n", path, strerror(errno));
		return;
	}
	printf("BEGIN %s\n", path);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	printf("END\n");
	fclose(f);
}

int
main(void)
{
	char line[128];
	FILE *in;

	in = fopen("/dev/ttyS2", "r");
	if (in == NULL) {
		printf("FAIL open /dev/ttyS2: %s\n", strerror(errno));
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), in) != NULL) {
		unsigned long n;

		if (strncmp(line, "exit", 4) == 0)
			return 0;
		if (strncmp(line, "cat ", 4) == 0) {
			line[strcspn(line, "\r\n")] = '\0';
			cat(line + 4);
			fflush(stdout);
			continue;
		}
		if (sscanf(line, "hold %lu", &n) == 1 && n < MAX_CHUNKS) {
			if (hold(n) == 0)
				printf("HOLD %lu\n", held);
			fflush(stdout);
			continue;
		}
		printf("FAIL unknown command\n");
		fflush(stdout);
	}
	return 0;
}
