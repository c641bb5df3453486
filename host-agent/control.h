/* SPDX-License-Identifier: GPL-2.0-only */
/* The control socket's request handling, exposed for the unit tests. */
#ifndef MEMCOOPD_CONTROL_H
#define MEMCOOPD_CONTROL_H

#include <jansson.h>

#include "memcoopd.h"

/* The status object: host, KSM and every guest (or only @guest). */
json_t	*control_status_json(struct memcoopd *, const char *guest);
json_t	*control_guest_json(struct memcoopd *, const struct guest *);

/*
 * Handle one request that passed the framing checks (mcctl_parse()).
 * @can_change: the peer may make changes (root).  Returns the reply type
 * (MCCTL_R_OK or MCCTL_R_ERROR) and the reply object in *@reply.
 * Never trusts @payload: any JSON, any types, any sizes.
 */
int	 control_dispatch(struct memcoopd *, int can_change, uint32_t type,
	    const char *payload, size_t len, json_t **reply);
json_t	*control_error(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif /* MEMCOOPD_CONTROL_H */
