// SPDX-License-Identifier: GPL-2.0-only
/*
 * Logging: stderr in the foreground (with a timestamp), syslog as a daemon.
 * log_warn() and fatal() append strerror(errno).
 *
 * When stderr is the journal (systemd sets $JOURNAL_STREAM to the device
 * and inode of the stream it connected; it is ours only if they match our
 * fd 2, an inherited variable is ignored), every line starts with the
 * syslog priority as "<N>" and carries no timestamp of its own: journald
 * parses the prefix, so `journalctl -p warning` selects by it.
 */
#include <sys/stat.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_foreground = 1;
static int log_verbose;
static const char *log_ident = "memcoop";
static int log_journal;		/* stderr is the journal: "<N>" prefixes */

/* Is fd 2 the stream named by $JOURNAL_STREAM ("DEV:INO")? */
int
log_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char tail;

	if (e == NULL || sscanf(e, "%ju:%ju%c", &dev, &ino, &tail) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void
log_init(int foreground, int verbose, const char *ident)
{
	log_foreground = foreground;
	log_verbose = verbose;
	if (ident != NULL)
		log_ident = ident;
	log_journal = foreground && log_stderr_is_journal();
	if (!foreground)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	tzset();
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return log_verbose;
}

/* Emit one finished message. */
static void
log_emit(int pri, const char *msg)
{
	if (log_foreground && log_journal) {
		/* journald adds time and identifier itself */
		fprintf(stderr, "<%d>%s\n", pri & LOG_PRIMASK, msg);
		fflush(stderr);
	} else if (log_foreground) {
		struct timespec ts;
		struct tm tm;
		char tbuf[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s: %s\n", tbuf,
		    ts.tv_nsec / 1000000L, log_ident, msg);
		fflush(stderr);
	} else {
		syslog(pri, "%s", msg);
	}
}

void
vlog(int pri, const char *fmt, va_list ap)
{
	char buf[1024];
	int saved = errno;

	if (pri == LOG_DEBUG && !log_verbose)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_emit(pri, buf);
	errno = saved;
}

static void
vlog_errno(int pri, int saved, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = 0;

	if (fmt != NULL)
		n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - (size_t)n, "%s%s",
		    fmt != NULL ? ": " : "", strerror(saved));
	log_emit(pri, buf);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog_errno(LOG_WARNING, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
