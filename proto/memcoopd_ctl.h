/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memcoopd's control protocol, spoken over the Unix stream socket
 * (default /run/memcoop/memcoopd.sock) by memcoopctl and anything else.
 *
 * Every message is a fixed 16-byte header followed by @len bytes of
 * payload.  The payload is one JSON object (UTF-8, no NUL bytes, not
 * NUL-terminated), at most MCCTL_MAX_PAYLOAD bytes.  Integers in the
 * header are in host byte order (the socket never leaves the host).
 *
 * The first message on a connection must be MCCTL_HELLO carrying the
 * client's protocol version; the daemon answers MCCTL_R_OK with
 * {"version": N, "daemon": "memcoopd x.y.z", "can_change": bool} or
 * MCCTL_R_ERROR, and closes the connection after an error in the header.
 * Every request gets exactly one reply with the request's @seq, except
 * MCCTL_WATCH, after whose MCCTL_R_OK the daemon sends one MCCTL_R_EVENT
 * (a status object) per tick until the client closes.
 *
 * Access: read requests (HELLO, STATUS, KSM_STATUS, WATCH, EXPLAIN,
 * PREVIEW) are allowed to
 * root and to members of the configured group (SO_PEERCRED); changes
 * (SET, KSM_SET, STOP) only to root.  A denied request gets MCCTL_R_ERROR with
 * "code": EPERM.
 *
 * Requests and their payloads:
 *   MCCTL_HELLO       {"version": 1, "client": "memcoopctl"}
 *   MCCTL_STATUS      {} or {"guest": "NAME"}
 *   MCCTL_SET         {"guest": "NAME", "key": "target"|"min"|"max"|
 *                      "weight"|"mode", "value": "STRING"}
 *                     (sizes like "512M", "2G", bytes; "0"/"none" unsets
 *                      min/max; modes "auto", "fixed", "manual")
 *   MCCTL_KSM_STATUS  {}
 *   MCCTL_KSM_SET     {"mode": "off"|"on"|"auto"}
 *   MCCTL_WATCH       {} or {"guest": "NAME"}
 *   MCCTL_EXPLAIN     {"guest": "NAME"}: why the guest's target last
 *                     changed and why the policy is not moving it now
 *                     (class, hold, stall-hold, calm ticks, limits)
 *   MCCTL_PREVIEW     as MCCTL_SET: what the next tick would choose for
 *                     the guest with that setting, the other guests and
 *                     the last stats as they are; nothing is applied
 *                     ("set --dry-run")
 *   MCCTL_STOP        {"restore": true|false}: memcoopd exits; with
 *                     restore, first gives the automatic guests their
 *                     upper limit back, paced (restore-step per
 *                     restore-period, above host-floor); without, leaves
 *                     every guest where it is (as SIGTERM does by
 *                     default) for the next memcoopd to adopt.
 * A reply larger than MCCTL_MAX_PAYLOAD (a status of very many guests) is
 * replaced by MCCTL_R_ERROR with "code": EMSGSIZE; ask for one guest.
 * Replies:
 *   MCCTL_R_OK        the result object (see docs/memcoopd.md)
 *   MCCTL_R_ERROR     {"error": "human readable", "code": ERRNO}
 *   MCCTL_R_EVENT     a status object, pushed by WATCH
 */
#ifndef MEMCOOPD_CTL_H
#define MEMCOOPD_CTL_H

#include <sys/types.h>
#include <stdint.h>
#include <stddef.h>

#define MCCTL_MAGIC		0x4c54434dU	/* "MCTL" little endian */
#define MCCTL_VERSION		1
#define MCCTL_MAX_PAYLOAD	(256U * 1024U)

/* Requests; codes do not start at 0. */
enum mcctl_type {
	MCCTL_HELLO		= 1,
	MCCTL_STATUS		= 2,
	MCCTL_SET		= 3,
	MCCTL_KSM_STATUS	= 4,
	MCCTL_KSM_SET		= 5,
	MCCTL_WATCH		= 6,
	MCCTL_STOP		= 7,
	MCCTL_EXPLAIN		= 8,
	MCCTL_PREVIEW		= 9,
	MCCTL_REQ_MAX,
	/* replies */
	MCCTL_R_OK		= 0x100,
	MCCTL_R_ERROR		= 0x101,
	MCCTL_R_EVENT		= 0x102,
};

struct mcctl_hdr {
	uint32_t	magic;		/* MCCTL_MAGIC */
	uint16_t	version;	/* MCCTL_VERSION */
	uint16_t	type;		/* enum mcctl_type */
	uint32_t	len;		/* payload bytes that follow */
	uint32_t	seq;		/* chosen by the client, echoed */
};
_Static_assert(sizeof(struct mcctl_hdr) == 16, "mcctl_hdr is 16 bytes");

/* shared/ctlmsg.c */

/* Is @type a request a client may send? */
int	mcctl_is_request(uint32_t type);
/* Does @type only read state (allowed to the configured group)? */
int	mcctl_is_read_only(uint32_t type);
const char *mcctl_type_name(uint32_t type);

/*
 * Find one complete message at the start of @buf (@len bytes received so
 * far).  Returns the number of bytes it occupies (header + payload) and
 * fills @hdr and @payload (pointing into @buf), 0 if more bytes are
 * needed, or -1 with *@err set to a static description if the header is
 * invalid (bad magic, version, type, length) or the payload is not a
 * NUL-free byte string.  Does not parse the JSON.
 */
ssize_t	mcctl_parse(const void *buf, size_t len, struct mcctl_hdr *hdr,
	    const char **payload, const char **err);
/* Fill @hdr for a message of @type with @len payload bytes. */
int	mcctl_hdr_init(struct mcctl_hdr *hdr, uint32_t type, uint32_t seq,
	    size_t len);

#endif /* MEMCOOPD_CTL_H */
