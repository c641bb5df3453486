/* SPDX-License-Identifier: GPL-2.0-only */
/* The QMP backend's pure helpers, exposed for the unit tests. */
#ifndef MEMCOOPD_QMP_H
#define MEMCOOPD_QMP_H

#include <time.h>
#include <jansson.h>

#include "memcoopd.h"

/*
 * The "return" of qom-get guest-stats -> @s.  @now is the monotonic time
 * (ms), @wall the wall clock (s) at reception, to date the sample from
 * its "last-update".  -1 when the guest has not sent stats yet or the
 * reply is malformed.
 */
int	qmp_parse_guest_stats(const json_t *ret, struct guest_stats *s,
	    uint64_t now, time_t wall);
/* The balloon device's QOM path in a qom-list "return" of @parent. */
int	qmp_find_balloon(const json_t *ret, const char *parent, char *path,
	    size_t len);
/* Guest name from a socket file name (strips .qmp, .sock, .socket). */
int	qmp_name_from_file(const char *file, char *name, size_t len);

#endif /* MEMCOOPD_QMP_H */
