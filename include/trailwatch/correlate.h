/* correlate.h: state over time: correlation rules and alert throttling.
 *
 * Windows run on eventTime, never on the wall clock, so replaying a day of
 * logs and watching it live give the same alerts.  The caller feeds matches
 * in roughly time order (replay sorts each file's matches by eventTime;
 * CloudTrail's files arrive a few minutes late and overlap); an event that
 * arrives after later ones is still counted in every window that contains
 * it, as long as it is not older than the lateness allowance.
 *
 * Per rule and group the state is a time-sorted list of (second, key,
 * amount) entries covering the timespan plus the lateness allowance.  When a
 * window satisfies the condition the correlation fires once, and the group's
 * entries are cleared so the same events never fire twice.  Memory is
 * bounded: groups expire with their window, and caps on groups per rule and
 * entries per group are counted in the stats when they bite.
 *
 * At the cap on groups (max_groups), a correlation makes room for a new
 * group by evicting the one that counts least: of 16 live groups
 * drawn at random, one already past its window if there is one, else the one
 * holding the least toward the condition (the sum of its values for
 * value_sum and value_avg (their average) and for count_values, else its
 * number of events), the oldest of equals.  So a flood of small groups (one
 * event per made-up role session name) cannot keep a group that holds more
 * than they do out of the table, nor push it out.  The draws come from a
 * fixed sequence: the same input gives the same alerts.  A throttle at its
 * cap does not hold back the alerts of a new group (counted as refused).
 *
 * Not thread-safe: one correlator is driven by one thread.  Does not log.
 */
#ifndef TRAILWATCH_CORRELATE_H
#define TRAILWATCH_CORRELATE_H

#include <stddef.h>
#include <stdint.h>

#include "trailwatch/alert.h"
#include "trailwatch/rules.h"

struct corr_limits {
	size_t max_groups;	/* per rule; default 100000 */
	size_t max_entries;	/* per group; default 100000 */
	int64_t lateness;	/* seconds an event may arrive late; default 900 */
};

struct corr_stats {
	size_t groups;		/* live groups, all rules */
	size_t groups_refused;	/* new throttle groups not created (their alerts pass) */
	size_t groups_evicted;	/* live correlation groups evicted at max_groups */
	size_t entries_dropped;	/* oldest entries dropped: max_entries reached */
	size_t too_late;	/* events older than the lateness allowance */
	size_t no_time;		/* events without a readable eventTime */
	size_t no_value;	/* value_* events without a numeric field value */
	size_t suppressed;	/* alerts held back by a throttle */
};

typedef int (*alert_fn)(void *ctx, const struct alert *a);

struct correlator;

int correlator_new(const struct ruleset *rs, const struct corr_limits *limits, struct correlator **ret);
void correlator_free(struct correlator *c);

/* Correlation rule `corr` (one of m->rule's consumers) sees the match m.
 * Alerts it raises go through corr's throttle to emit.  Returns 0, -ENOMEM,
 * or what emit returned. */
int correlator_feed(struct correlator *c, const struct rule *corr, const struct match *m,
		    alert_fn emit, void *ctx);

/* Sends an alert to emit unless its rule's throttle holds it back (then it
 * is counted, and reported in a summary alert when the window closes). */
int correlator_alert(struct correlator *c, const struct alert *a, alert_fn emit, void *ctx);

/* End of input: emits the summaries of throttle windows still open. */
int correlator_flush(struct correlator *c, alert_fn emit, void *ctx);

/* After a reload: every rule of to's ruleset that is the same rule in
 * from's (equal fingerprints; for a correlation, the same rules feeding it)
 * takes over from's windows and throttles, which from loses.  Returns how
 * many rules brought state with them.  Allocation failure moves nothing
 * (the state is rebuilt from new events, as after a restart). */
size_t correlator_adopt(struct correlator *to, struct correlator *from);

void correlator_stats(const struct correlator *c, struct corr_stats *ret);

/* The evictions of one correlation rule's table (rule_index: its index in
 * the correlator's ruleset; 0 for rules without one): how many live groups
 * it evicted since its state began (it moves with correlator_adopt), and
 * how many of those since correlator_cap_reported() was last called for it.
 * unreported == evicted > 0 means the rule was never reported. */
struct corr_cap {
	size_t evicted;
	size_t unreported;
};

void correlator_cap(const struct correlator *c, size_t rule_index, struct corr_cap *ret);
void correlator_cap_reported(struct correlator *c, size_t rule_index);

#endif
