/* msg.h: filling the message buffer of the project's error convention.
 *
 * A function that can fail returns 0 (or a documented positive value) or a
 * negative errno, and when it takes (char *msg, size_t msglen) it says there
 * what failed, naming the file, object or line it is about.  These write such
 * a buffer: always NUL-terminated, cut to msglen; msg may be NULL or msglen 0,
 * and then nothing is written.  Never pass a secret.
 */
#ifndef TRAILWATCH_MSG_H
#define TRAILWATCH_MSG_H

#include <stddef.h>

/* Sets msg. */
void msg_set(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Appends to what msg holds (nothing when it is full). */
void msg_append(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets msg and returns err, for `return msg_fail(msg, msglen, -EINVAL, ...)`. */
int msg_fail(char *msg, size_t msglen, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
