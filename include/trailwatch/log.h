/* log.h: the daemon's one logging interface.
 *
 * Modules at a boundary (main, replay, the service loop) log; parsers, signers
 * and formatters do not: they return an error with detail and let their caller
 * log once.  Messages go to stderr as "trailwatch: LEVEL: message" (journald
 * support arrives with the service).  Never pass a secret to these functions.
 */
#ifndef TRAILWATCH_LOG_H
#define TRAILWATCH_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Messages above this level are dropped.  Default: LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);

/* Parses "error", "warning", "info" or "debug".  Returns 0, or -EINVAL. */
int log_level_from_string(const char *s, enum log_level *ret);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
