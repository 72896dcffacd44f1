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
 *
 * Regular expressions are PCRE2's, which backtracks: a pattern such as
 * (a+)+$ takes time exponential in the length of a value that almost
 * matches.  Each match is bounded: a value of LEN bytes gets at most
 * ENGINE_REGEX_BASE_LIMIT + ENGINE_REGEX_LIMIT_PER_BYTE * LEN backtracking
 * steps (PCRE2's match limit; at most ENGINE_REGEX_MAX_LIMIT), which a
 * pattern that is linear in its input never needs.  A match stopped there
 * counts as no match, and is counted per rule (limited[]) so that the
 * callers can say so.
 */
#ifndef TRAILWATCH_ENGINE_H
#define TRAILWATCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/ctlog.h"
#include "trailwatch/rules.h"

#define ENGINE_REGEX_BASE_LIMIT 100000u
#define ENGINE_REGEX_LIMIT_PER_BYTE 100u
#define ENGINE_REGEX_MAX_LIMIT 10000000u	/* PCRE2's own default */

struct prefilter;

struct memo;

struct engine {
	const struct ruleset *rs;
	pcre2_match_data *md;
	pcre2_match_context *mc;	/* the match limit of each regular expression */
	struct prefilter *pf;
	const struct rule **cand;	/* candidate rules for the current record */
	size_t ncand;
	struct record *top;		/* the record being evaluated (fieldref reads it) */
	struct record *elements;	/* one per |element test of the rule set, by id */
	size_t nelements;
	struct memo **memos;		/* per field_test.memo, allocated on first use */
	const struct rule *rule;	/* whose patterns are being tested */
	unsigned long *limited;		/* per rule (rule->index): regex matches stopped at the limit */
	unsigned long nlimited;		/* their sum, since engine_init */
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

/* Adds the engine's counts of regular-expression matches stopped at the
 * limit to per_rule (rs->nrules entries, by rule->index). */
void engine_add_limited(const struct engine *e, unsigned long *per_rule);

/* Writes "RULE: 3, RULE: 1" (the rules with counts in per_rule, in rule set
 * order, at most ENGINE_LIMITED_SHOWN of them, then "and N more rules")
 * to out, always NUL-terminated.  Does not log. */
#define ENGINE_LIMITED_SHOWN 5
void engine_limited_text(const struct ruleset *rs, const unsigned long *per_rule, char *out, size_t size);

/* Calls on_match for every detection rule that matches the record, in rule
 * set order.  Returns the number of matches. */
size_t engine_eval(struct engine *e, struct record *rec,
		   void (*on_match)(void *ctx, const struct rule *r, struct record *rec), void *ctx);

#endif
