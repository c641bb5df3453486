/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The HotSpot attach protocol, spoken directly (no jcmd process): a unix
 * socket /tmp/.java_pid<PID> that the JVM opens on demand (a file
 * .attach_pid<PID> in its working directory or /tmp, then SIGQUIT).  One
 * request per connection: "1\0" COMMAND "\0" ARG0 "\0" ARG1 "\0" ARG2 "\0";
 * the JVM answers with a decimal status, a newline, and text, then closes.
 * These helpers are pure: the unit tests feed them recorded replies.
 */
#ifndef MEMCOOP_ATTACH_H
#define MEMCOOP_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#define ATTACH_REPLY_MAX	(256 * 1024)

enum jvm_gc {
	GC_UNKNOWN = 0,
	GC_SERIAL,
	GC_PARALLEL,
	GC_G1,
	GC_Z,
	GC_SHENANDOAH,
	GC_EPSILON,
};

/* A jcmd request for @cmdline ("GC.run"); its length, or -1 if too long. */
int	attach_jcmd_request(char *buf, size_t cap, const char *cmdline);
/*
 * A complete reply (@len bytes, up to EOF): 0 with *@status and *@text
 * (the rest, NUL-terminated in place: @buf must have len + 1 bytes), or -1
 * if it does not start with a status line.
 */
int	attach_parse_reply(char *buf, size_t len, int *status, char **text);
/*
 * For commands that print nothing when they work (GC.run, VM.set_flag): 1 if
 * the status is 0 and the text is blank.  jcmd reports a refused command
 * with status 0 and a sentence ("only 'writeable' flags can be set").
 */
int	attach_jcmd_quiet_ok(int status, const char *text);
/* The collector named in VM.flags output ("-XX:+UseG1GC ..."). */
enum jvm_gc attach_gc_kind(const char *vmflags);
const char *attach_gc_name(enum jvm_gc);
/* The value of "-XX:NAME=N" in VM.flags output; 0 or -1. */
int	attach_flag_u64(const char *vmflags, const char *name, uint64_t *out);

#endif /* MEMCOOP_ATTACH_H */
