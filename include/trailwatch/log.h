/* log.h: the daemon's one logging interface.
 *
 * Modules at a boundary (main, replay, the service loop, sources, delivery)
 * log; parsers, signers and formatters do not: they return an error with
 * detail and let their caller log once.  Never pass a secret to these
 * functions.
 *
 * Where messages go: when stderr is the journal (systemd sets
 * JOURNAL_STREAM to its device:inode), each message is sent to journald
 * natively with sd_journal_send: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and
 * the fields of a struct log_about (TRAILWATCH_SOURCE, TRAILWATCH_OBJECT,
 * TRAILWATCH_SINK, ERRNO and any extra "KEY=value").  Otherwise, or if
 * journald refuses it, the message goes to stderr as one line
 * "trailwatch: LEVEL: message" (the fields are already in the text).
 *
 * The message text is always one line: control characters in it (from a
 * file name, an S3 key or a receiver's answer given to %s) are written as
 * \n, \r, \t or \xHH, C0, DEL and UTF-8-encoded C1 alike, on stderr and in
 * MESSAGE=.  The fields of a struct log_about are passed to journald
 * as they are (journald keeps binary values), so TRAILWATCH_OBJECT= holds
 * the exact name.  Messages are cut at about 4 KiB.
 */
#ifndef TRAILWATCH_LOG_H
#define TRAILWATCH_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* What a message is about, as journal fields; every member may be NULL/0. */
struct log_about {
	const char *source;		/* TRAILWATCH_SOURCE=: the source's name */
	const char *object;		/* TRAILWATCH_OBJECT=: s3://bucket/key or a path */
	const char *sink;		/* TRAILWATCH_SINK=: the sink's name */
	int error;			/* ERRNO=: a positive errno */
	const char *const *extra;	/* more "KEY=value" fields (KEY upper case), NULL-terminated */
};

/* Messages above this level are dropped.  Default: LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);

/* Parses "error", "warning", "info" or "debug".  Returns 0, or -EINVAL. */
int log_level_from_string(const char *s, enum log_level *ret);

/* True when messages go to journald natively (see above).  Decided at the
 * first message from the environment; tests may call it earlier. */
bool log_to_journal(void);

/* One message; about may be NULL. */
void log_about(enum log_level level, const struct log_about *about, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void log_aboutv(enum log_level level, const struct log_about *about, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
