/* SPDX-License-Identifier: GPL-2.0 */
/* The median the in-guest benchmarks report (header only: each is one .c). */
#ifndef MEMCOOP_BENCH_MEDIAN_H
#define MEMCOOP_BENCH_MEDIAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static inline int
bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of @v[0 .. @n), @n > 0; sorts @v. */
static inline double
bench_median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_u64);
	return n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2.0;
}

#endif
