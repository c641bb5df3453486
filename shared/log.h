/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Logging for the memcoop daemons and tools, in the OpenBSD daemon style:
 * stderr in the foreground, syslog(3) as a daemon; on a stderr that is the
 * journal ($JOURNAL_STREAM) each line carries its priority as "<N>".  Messages conventionally
 * start with __func__ or a subject ("guest vm1: ...").
 */
#ifndef MEMCOOP_LOG_H
#define MEMCOOP_LOG_H

#include <stdarg.h>

/* @foreground: log to stderr; else syslog with @ident.  @verbose: debug. */
void	log_init(int foreground, int verbose, const char *ident);
void	log_setverbose(int verbose);
int	log_getverbose(void);
/* 1 if stderr is the stream systemd's $JOURNAL_STREAM names. */
int	log_stderr_is_journal(void);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	vlog(int pri, const char *, va_list) __attribute__((format(printf, 2, 0)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif /* MEMCOOP_LOG_H */
