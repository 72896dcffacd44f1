/* cond.h: Sigma condition expressions.
 *
 * Parses `selection and not 1 of filter_*` into a tree of struct cnode over
 * the detection's selections: and, or, not, parentheses, `1 of PATTERN`,
 * `all of PATTERN`, `1 of them`, `all of them` (`any of` is read as `1 of`).
 * Precedence: not, then and, then or.  Keywords are case-insensitive.
 *
 * The legacy aggregation suffix of Sigma 1 (`selection | count() by F > 5`)
 * is parsed into struct cond_aggregation so the loader can turn it into an
 * event_count or value_count correlation; `near` is recognised only to be
 * refused with a clear message.
 * The parser does not log: errors come back with a message and a position.
 */
#ifndef TRAILWATCH_COND_H
#define TRAILWATCH_COND_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/arena.h"
#include "trailwatch/rules.h"

#define COND_MAX_LEN 4096
#define COND_MAX_DEPTH 64

struct cond_aggregation {
	bool present;
	bool near;		/* `| near ...`: not supported */
	const char *func;	/* "count" */
	const char *field;	/* count(FIELD), or NULL */
	const char *by;		/* by FIELD, or NULL */
	const char *op;		/* ">", ">=", "<", "<=", "=", "==" */
	double value;
};

struct cond_error {
	size_t pos;		/* 0-based offset into the condition text */
	char message[400];
};

/* Parses text over the selections sels[0..nsels).  Nodes come from a.
 * Returns 0 with *ret set, or -EINVAL with err filled in, or -ENOMEM. */
int cond_parse(struct arena *a, const char *text, const struct selection *sels, size_t nsels,
	       struct cnode **ret, struct cond_aggregation *aggr, struct cond_error *err);

#endif
