/* builtin.h: the shipped rule pack, compiled into the binary.
 *
 * The build turns every file of rules.d/ into this table (scripts/embed.c),
 * so `trailwatch replay` works out of the box with no files installed.  The
 * same files are installed to /usr/share/trailwatch/rules.d for reference.
 */
#ifndef TRAILWATCH_BUILTIN_H
#define TRAILWATCH_BUILTIN_H

#include <stddef.h>

struct builtin_file {
	const char *name;	/* "builtin:rules.d/NAME.yml" */
	const char *data;
	size_t len;
};

extern const struct builtin_file builtin_rules[];
extern const size_t builtin_rules_count;

#endif
