/* diag.h: collected "file:line:column: message" diagnostics.
 *
 * Loaders of user-written files (rules, config) never stop at the first
 * problem: they add every error to a struct diag and the caller prints them
 * all and fails once (the habit of OpenBSD ntpd's parse.y).  Lines and
 * columns are 1-based; 0 means "not known" and is left out of the text.
 * A warning ("file:line:column: warning: message") is kept in the same list
 * but is not an error: it never makes loading fail.
 */
#ifndef TRAILWATCH_DIAG_H
#define TRAILWATCH_DIAG_H

#include <stddef.h>
#include <stdio.h>

struct diag {
	char **messages;	/* each "file:line:column: message" */
	size_t count;
	size_t cap;
	size_t dropped;		/* messages not kept after the cap */
	size_t warnings;	/* of the messages, kept or dropped, how many are warnings */
};

/* At most this many messages are kept; more are counted in dropped. */
#define DIAG_MAX_MESSAGES 10000

void diag_init(struct diag *d);
void diag_free(struct diag *d);

/* Adds one message.  Never fails: on allocation failure the message is
 * counted in dropped, so that an error is never silently lost. */
void diag_add(struct diag *d, const char *file, unsigned line, unsigned col,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The same, for a warning: the text gets "warning: " before it. */
void diag_warn(struct diag *d, const char *file, unsigned line, unsigned col,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Total number of errors reported, kept or dropped (warnings are not). */
size_t diag_errors(const struct diag *d);

/* Writes every message, one per line, to f. */
void diag_print(const struct diag *d, FILE *f);

#endif
