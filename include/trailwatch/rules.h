/* rules.h: Sigma rules, loaded and compiled into a rule set.
 *
 * A rule set is built once (at start and on reload) from YAML files and is
 * then read-only, shared by every worker thread.  It holds three kinds of
 * documents, as Sigma defines them:
 *   - detection rules: named selections and a condition over them;
 *   - correlation rules: event_count, value_count, temporal(_ordered), and the
 *     metric types value_sum and value_avg, over other rules' matches;
 *   - filters (Sigma "global filters"): a condition ANDed into the rules they
 *     name, for tuning without editing the rules.
 * trailwatch's own extensions live under one key, `trailwatch:` (throttle,
 * tests); see docs/rules.md.  Every field path a rule mentions gets a slot in
 * the rule set's field index, which drives the record scanner.
 *
 * Loading collects every problem as file:line:column in a struct diag and
 * fails once at the end; it does not log.
 */
#ifndef TRAILWATCH_RULES_H
#define TRAILWATCH_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trailwatch/arena.h"
#include "trailwatch/diag.h"
#include "trailwatch/fields.h"
#include "trailwatch/match.h"
#include "trailwatch/strmap.h"

struct yfile;
struct ynode;

enum level {
	LEVEL_INFORMATIONAL,
	LEVEL_LOW,
	LEVEL_MEDIUM,
	LEVEL_HIGH,
	LEVEL_CRITICAL,
};

/* "informational", "low", ... */
const char *level_name(enum level l);
int level_from_string(const char *s, enum level *ret);

struct element_test;

/* One "field|modifiers: values" item of a selection. */
/* Tests with at least this many patterns get a memo table (below). */
#define MEMO_MIN_PATTERNS 4

struct field_test {
	int slot;		/* field index slot; -1 for a keyword (whole record) */
	const char *field;	/* as written, for messages */
	bool all;		/* every pattern must match (|all); else any */
	struct pattern *pats;
	size_t npats;
	struct element_test *elem;	/* |element instead of patterns, or NULL */
	/* A long list of patterns that depend on nothing but the value: the
	 * engine remembers its recent results per value (its memo table of
	 * this number, see engine.c); -1 for the other tests. */
	int memo;
};

/* One alternative of a selection: all of its tests must hold. */
struct sel_alt {
	struct field_test *tests;
	size_t ntests;
};

/* "field|element: selection": true when one value of the field (each element
 * of an array is a value) satisfies a selection of its own.  Its field paths
 * are relative to that value, "@" is the value itself, and a value that is a
 * string holding JSON (a policy sent as text) is read as that JSON.  The rule
 * set owns every element test; the engine keeps one record for each. */
struct element_test {
	struct field_index fields;
	struct sel_alt *alts;
	size_t nalts;
	size_t id;		/* index in ruleset->elements */
};

/* A named selection: true when any alternative holds.  A map is one
 * alternative; a list of maps is several; a list of plain values is keywords. */
struct selection {
	const char *name;
	struct sel_alt *alts;
	size_t nalts;
};

enum cnode_type {
	CN_SEL,
	CN_AND,
	CN_OR,
	CN_NOT,
	CN_CONST,		/* "1 of x*" over no selection, an empty filter... */
};

struct cnode {
	enum cnode_type type;
	unsigned sel;		/* CN_SEL: index into the owning detection's sels */
	bool value;		/* CN_CONST */
	struct cnode **kids;	/* CN_AND, CN_OR: n kids; CN_NOT: one */
	size_t n;
};

/* Selections and a condition: a detection rule's body, or a filter's. */
/* Fields a correlation or throttle may group by (group-by lists are
 * refused beyond it, so a group's values fit fixed arrays). */
#define GROUP_BY_MAX 16

struct detection {
	struct selection *sels;
	size_t nsels;
	size_t nwritten;	/* the first nwritten selections are the rule's own (merging
				 * ORed tests appends others); names resolve among these */
	struct cnode *cond;
};

enum corr_type {
	CORR_EVENT_COUNT,
	CORR_VALUE_COUNT,
	CORR_VALUE_SUM,
	CORR_VALUE_AVG,
	CORR_TEMPORAL,
	CORR_TEMPORAL_ORDERED,
};

const char *corr_type_name(enum corr_type t);

/* A numeric condition: every bound that is set must hold. */
struct corr_cond {
	bool has_gt, has_gte, has_lt, has_lte, has_eq;
	double gt, gte, lt, lte, eq;
};

bool corr_cond_holds(const struct corr_cond *c, double v);

struct rule;

struct correlation {
	enum corr_type type;
	struct rule **rules;	/* the rules whose matches feed it */
	size_t nrules;
	const char **refs;	/* the references as written (id or name) */
	unsigned *ref_lines, *ref_cols;
	size_t ngroup;
	const char **group_by;	/* names as written (may be aliases) */
	int *group_slots;	/* [nrules][ngroup]: the field slot per base rule */
	const char *field;	/* value_count / value_sum / value_avg */
	int field_slot;
	int64_t timespan;	/* seconds */
	struct corr_cond cond;
	bool legacy;		/* compiled from a `| count()` condition */
	struct rule *legacy_base;	/* legacy: the hidden rule of the events it counts */
	bool generate;		/* the base rules also alert on their own */
	/* Where each base rule's match carries the values this correlation
	 * needs: index into that rule's extra_slots. */
	int *group_extra;	/* [nrules][ngroup] */
	int *field_extra;	/* [nrules], -1 when there is no field */
	/* trailwatch.count_values (event_count only): each event counts as the
	 * number of values this field has in it (an array's elements are its
	 * values), or as 1 when it has none; -1 when not given. */
	int count_slot;
	int *count_extra;	/* [nrules]: index into the base rule's extra_slots */
	/* trailwatch.seen_before (value_count only): a value counts only when
	 * the same group had it in a match of seen_rule no more than
	 * seen_within seconds before (an object rewritten after it was read).
	 * seen_rule's matches feed the group's memory of values, not its
	 * window.  NULL when not given. */
	struct rule *seen_rule;
	const char *seen_ref;
	unsigned seen_line, seen_col;
	int64_t seen_within;
	int *seen_group_extra;	/* [ngroup]: index into seen_rule's extra_slots */
	int seen_field_extra;
};

/* trailwatch.throttle: at most one alert per group and timespan; later
 * matches in the window are counted and reported in one summary alert.
 * For a correlation rule the group is the correlation's own group. */
struct throttle {
	size_t ngroup;
	const char **group_by;
	int *group_slots;
	int *group_extra;	/* index into the rule's extra_slots */
	int64_t timespan;	/* seconds */
};

/* trailwatch.reasons: a sentence an alert carries when a condition over the
 * rule's own selections holds for the event ("management events are no
 * longer logged").  The text is literal parts and field values: {path} in
 * the written text is the first value of that field in the record. */
#define REASON_MAX 16			/* reasons per rule */
#define REASON_TEXT_MAX 512		/* bytes of a reason as written */
#define REASON_VALUE_MAX 256		/* bytes of a field value put into a reason */

struct reason_part {
	const char *lit;	/* literal text, or NULL for a field value */
	size_t len;
	int slot;		/* the field, when lit is NULL */
};

struct reason {
	struct cnode *when;	/* over the rule's selections */
	struct reason_part *parts;
	size_t nparts;
};

/* A test event list carried by a rule (trailwatch.tests). */
struct rule_test {
	const char *name;
	unsigned line;
	const char **events;	/* each a JSON object text */
	size_t nevents;
	long expect_alerts;	/* expected alerts from this rule; -1: use expect_match */
	bool expect_match;	/* detection rules: does the (single) event match? */
	const char **expect_reasons;	/* match tests: the reasons expected, in order */
	size_t nexpect_reasons;
	bool has_expect_reasons;	/* `reasons:` was given (possibly empty) */
};

enum rule_kind {
	RULE_DETECTION,
	RULE_CORRELATION,
	RULE_FILTER,
};

struct rule {
	enum rule_kind kind;
	const char *id;		/* NULL if the document has none */
	const char *name;
	const char *title;
	const char *description;
	const char *status;
	const char **tags;
	size_t ntags;
	enum level level;
	const char *file;
	unsigned line;

	struct detection det;		/* RULE_DETECTION, RULE_FILTER */
	struct correlation *corr;	/* RULE_CORRELATION */

	/* Filters: which rules it names ("any" in Sigma becomes all_rules). */
	const char **filter_refs;
	size_t nfilter_refs;
	unsigned filter_line, filter_col;	/* where `rules:` is */
	bool filter_all;

	/* Global filters that apply to this detection rule. */
	const struct rule **filters;
	size_t nfilters;

	/* Correlations that consume this rule's matches, and whether the rule
	 * still alerts on its own (Sigma `generate`, default false for rules that
	 * a correlation uses). */
	struct rule **consumers;
	size_t nconsumers;
	bool emits;

	/* Slots whose first value a consumer needs (group-by and value fields),
	 * copied with each match: rule->extra_slots[i].  Where extra_counts[i]
	 * is set, the copy is instead the number of values of that slot, in
	 * decimal (trailwatch.count_values). */
	int *extra_slots;
	bool *extra_counts;
	size_t nextra;

	/* trailwatch.supersedes: detection rules whose own alert on an event
	 * this rule's alert on the same event replaces.  Closed over chains (a
	 * supersedes b, b supersedes c: a supersedes c); no cycles. */
	const struct rule **supersedes;
	size_t nsupersedes;
	const char **supersede_refs;	/* as written */
	size_t nsupersede_refs;
	unsigned supersede_line, supersede_col;

	struct reason *reasons;		/* trailwatch.reasons, in order */
	size_t nreasons;

	struct throttle *throttle;
	struct rule_test *tests;
	size_t ntests;
	size_t index;		/* position in ruleset->rules */
	uint64_t fingerprint;	/* of the document's content (not its place): equal
				 * fingerprints mean the same rule, across reloads */
};

/* Slots every alert reads, added to the field index by ruleset_load. */
struct alert_slots {
	int event_id, event_time, event_name, event_source, region, account, user_account,
	    principal_arn, principal_type, principal_invoked_by, source_ip, user_agent,
	    bucket, object_key, error_code;
};

struct rule_lists;

struct ruleset {
	struct arena arena;
	struct field_index fields;
	struct alert_slots slots;
	struct rule **rules;		/* every document, in load order */
	size_t nrules;
	struct rule **detections;	/* the detection rules evaluated per record */
	size_t ndetections;
	size_t nfiles;
	struct yfile **yfiles;		/* the YAML trees rule strings point into */
	size_t nyfiles, capyfiles;
	struct element_test **elements;	/* every |element test, by id */
	size_t nelements, capelements;
	size_t nmemos;			/* tests with a memo (field_test.memo) */
	size_t skipped_logsource;	/* documents for other log sources */
	size_t overridden;		/* rules replaced by a later directory */
	struct strmap by_id, by_name;	/* the first rule of each id and name: ruleset_find */
};

struct builtin_file;

/* Where rules come from: a file or directory, or a set of embedded files
 * (the shipped pack).  All files of one source share its precedence. */
struct rule_source {
	const char *path;	/* file or directory (walked recursively: .yml and .yaml files) */
	const struct builtin_file *files;	/* embedded files instead of path */
	size_t nfiles;
	bool optional;		/* a missing directory is not an error */
};

/* Placeholder values for |expand (config `lists:`). */
struct rule_lists {
	size_t n;
	const char **names;
	const char ***values;
	size_t *nvalues;
};

/* Loads and compiles every rule from the sources.  A rule whose id was
 * already loaded from an earlier source replaces it (a site's copy in
 * /etc/trailwatch/rules.d overrides the shipped one); a duplicate id within
 * one source is an error.  On success *ret is the new rule set.  On failure
 * returns -EINVAL after adding every problem to d.  Never logs. */
int ruleset_load(const struct rule_source *sources, size_t nsources,
		 const struct rule_lists *lists, struct ruleset **ret, struct diag *d);

void ruleset_free(struct ruleset *rs);

/* Finds a rule by id or name (the first in load order that has either);
 * NULL if none.  A hash lookup: cheap enough for every alert. */
struct rule *ruleset_find(const struct ruleset *rs, const char *ref);

/* Parses "30s", "5m", "1h", "2d" into seconds.  -EINVAL. */
int timespan_parse(const char *s, int64_t *ret);

#endif
