// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz the control protocol's framing (shared/ctlmsg.c): the input is a
 * byte stream as a client would send it.  Checks, message by message:
 * a complete message is exactly a header plus its declared length, within
 * the stream, of a known type, with no NUL in the payload; every strict
 * prefix of it is "need more" (0), never an error, so that a message read
 * in pieces parses as it does whole; an error leaves a reason.
 */
#include <sys/types.h>

#include "memcoopd_ctl.h"
#include "fuzz_main.h"

static void
fuzz_init(void)
{
}

static void
fuzz_one(const uint8_t *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		struct mcctl_hdr h;
		const char *payload = NULL, *err = NULL;
		ssize_t n;
		size_t k;

		n = mcctl_parse(data + off, len - off, &h, &payload, &err);
		if (n == -1) {
			FUZZ_ASSERT(err != NULL && err[0] != '\0');
			/* a prefix may already fail, never pass */
			return;
		}
		FUZZ_ASSERT(err == NULL);
		if (n == 0)
			return;		/* incomplete */
		FUZZ_ASSERT((size_t)n == sizeof(h) + h.len);
		FUZZ_ASSERT((size_t)n <= len - off);
		FUZZ_ASSERT(h.len <= MCCTL_MAX_PAYLOAD);
		FUZZ_ASSERT(payload == (const char *)data + off + sizeof(h));
		FUZZ_ASSERT(memchr(payload, '\0', h.len) == NULL);
		FUZZ_ASSERT(mcctl_is_request(h.type) ||
		    strcmp(mcctl_type_name(h.type), "unknown") != 0);
		FUZZ_ASSERT(!mcctl_is_read_only(h.type) ||
		    mcctl_is_request(h.type));
		/* prefixes: 0 (need more), or a bad-magic error no earlier
		 * than the magic itself (the only early check) */
		for (k = 0; k < (size_t)n; k += 1 + k / 4) {
			struct mcctl_hdr h2;
			const char *p2, *e2;

			FUZZ_ASSERT(mcctl_parse(data + off, k, &h2, &p2, &e2)
			    == 0);
		}
		/* a header built from the parsed one is byte-identical */
		{
			struct mcctl_hdr h3;

			FUZZ_ASSERT(mcctl_hdr_init(&h3, h.type, h.seq, h.len)
			    == 0);
			FUZZ_ASSERT(h3.magic == h.magic &&
			    h3.version == h.version && h3.type == h.type &&
			    h3.len == h.len && h3.seq == h.seq);
		}
		off += (size_t)n;
	}
}
