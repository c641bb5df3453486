// SPDX-License-Identifier: GPL-2.0-only
/*
 * Framing of memcoopd's control protocol (proto/memcoopd_ctl.h): header
 * validation and message boundaries, shared by the daemon and memcoopctl.
 */
#include <sys/types.h>
#include <string.h>

#include "memcoopd_ctl.h"

int
mcctl_is_request(uint32_t type)
{
	return type >= MCCTL_HELLO && type < MCCTL_REQ_MAX;
}

int
mcctl_is_read_only(uint32_t type)
{
	switch (type) {
	case MCCTL_HELLO:
	case MCCTL_STATUS:
	case MCCTL_KSM_STATUS:
	case MCCTL_WATCH:
	case MCCTL_EXPLAIN:
	case MCCTL_PREVIEW:
		return 1;
	default:
		return 0;
	}
}

const char *
mcctl_type_name(uint32_t type)
{
	switch (type) {
	case MCCTL_HELLO:	return "hello";
	case MCCTL_STATUS:	return "status";
	case MCCTL_SET:		return "set";
	case MCCTL_KSM_STATUS:	return "ksm-status";
	case MCCTL_KSM_SET:	return "ksm-set";
	case MCCTL_WATCH:	return "watch";
	case MCCTL_STOP:	return "stop";
	case MCCTL_EXPLAIN:	return "explain";
	case MCCTL_PREVIEW:	return "preview";
	case MCCTL_R_OK:	return "ok";
	case MCCTL_R_ERROR:	return "error";
	case MCCTL_R_EVENT:	return "event";
	default:		return "unknown";
	}
}

static int
known_type(uint32_t type)
{
	return mcctl_is_request(type) || type == MCCTL_R_OK ||
	    type == MCCTL_R_ERROR || type == MCCTL_R_EVENT;
}

ssize_t
mcctl_parse(const void *buf, size_t len, struct mcctl_hdr *hdr,
    const char **payload, const char **err)
{
	struct mcctl_hdr h;

	*err = NULL;
	if (len < sizeof(h)) {
		/* reject an obviously wrong magic as early as possible */
		if (len >= sizeof(h.magic)) {
			uint32_t magic;

			memcpy(&magic, buf, sizeof(magic));
			if (magic != MCCTL_MAGIC) {
				*err = "bad magic";
				return -1;
			}
		}
		return 0;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != MCCTL_MAGIC) {
		*err = "bad magic";
		return -1;
	}
	if (h.version != MCCTL_VERSION) {
		*err = "unsupported protocol version";
		return -1;
	}
	if (!known_type(h.type)) {
		*err = "unknown message type";
		return -1;
	}
	if (h.len > MCCTL_MAX_PAYLOAD) {
		*err = "payload too long";
		return -1;
	}
	if (len - sizeof(h) < h.len)
		return 0;
	if (memchr((const char *)buf + sizeof(h), '\0', h.len) != NULL) {
		*err = "NUL byte in payload";
		return -1;
	}
	*hdr = h;
	*payload = (const char *)buf + sizeof(h);
	return (ssize_t)(sizeof(h) + h.len);
}

int
mcctl_hdr_init(struct mcctl_hdr *hdr, uint32_t type, uint32_t seq, size_t len)
{
	if (len > MCCTL_MAX_PAYLOAD || !known_type(type))
		return -1;
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = MCCTL_MAGIC;
	hdr->version = MCCTL_VERSION;
	hdr->type = (uint16_t)type;
	hdr->len = (uint32_t)len;
	hdr->seq = seq;
	return 0;
}
