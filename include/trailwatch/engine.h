/* engine.h: evaluating detection rules on one extracted record.
 *
 * The engine is the per-thread half of detection: it holds what matching
 * needs that cannot be shared (PCRE2 match data) and evaluates a rule set's
 * detection rules, with their global filters, against a record that ctlog.c
 * filled in.  It keeps no state between records; counting over time is
 * correlate.c's job.  It does not allocate per record and does not log.
 *
 * A cheap prefilter avoids evaluating most rules on most records: a rule whose
 * condition requires eventName (else errorCode, else userIdentity.type, else
 * eventSource) to equal one of a few plain values is indexed under those values; a record only
 * meets the rules indexed under its own values plus the rules that cannot be
 * indexed.
 */
#ifndef TRAILWATCH_ENGINE_H
#define TRAILWATCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/ctlog.h"
#include "trailwatch/rules.h"

struct prefilter;

struct memo;

struct engine {
	const struct ruleset *rs;
	pcre2_match_data *md;
	struct prefilter *pf;
	const struct rule **cand;	/* candidate rules for the current record */
	size_t ncand;
	struct record *top;		/* the record being evaluated (fieldref reads it) */
	struct record *elements;	/* one per |element test of the rule set, by id */
	size_t nelements;
	struct memo **memos;		/* per field_test.memo, allocated on first use */
};

/* Prepares an engine for rs (which must outlive it).  -ENOMEM. */
int engine_init(struct engine *e, const struct ruleset *rs);
void engine_free(struct engine *e);

/* Does the rule's detection (ANDed with its filters) hold for the record?
 * The result is the same whether or not the prefilter would admit the rule. */
bool engine_rule_matches(struct engine *e, const struct rule *r, struct record *rec);

/* Does condition c, a tree over r's own selections (a trailwatch.reasons
 * condition), hold for the record?  Filters are not applied. */
bool engine_cond_holds(struct engine *e, const struct rule *r, const struct cnode *c, struct record *rec);

/* Calls on_match for every detection rule that matches the record, in rule
 * set order.  Returns the number of matches. */
size_t engine_eval(struct engine *e, struct record *rec,
		   void (*on_match)(void *ctx, const struct rule *r, struct record *rec), void *ctx);

#endif
