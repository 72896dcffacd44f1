/* alert.h: matches and the alert object.
 *
 * A match is what a detection rule leaves behind when it fires on a record:
 * the context fields an alert needs, copied out of the record (the record's
 * text does not outlive its file).  An alert is built from one match, or for
 * correlations and throttle summaries from a group of them, and is rendered
 * as the stable JSON object of architecture.md: the same shape on stdout, in
 * the spool and in webhooks.
 *
 * Alert ids are stable: SHA-256 over the rule id and the events (and group)
 * the alert is about, so a replay of the same input gives the same ids.
 * Nothing here logs.
 */
#ifndef TRAILWATCH_ALERT_H
#define TRAILWATCH_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "trailwatch/arena.h"
#include "trailwatch/buf.h"
#include "trailwatch/ctlog.h"
#include "trailwatch/rules.h"

#define TIME_UNKNOWN INT64_MIN

struct match {
	const struct rule *rule;
	int64_t time;		/* eventTime in seconds, TIME_UNKNOWN if missing */
	size_t record;		/* index of the record in its file */
	const char *log_object;	/* file path or s3://bucket/key */
	/* Context fields; NULL when the record lacks them. */
	const char *event_id, *event_time, *event_name, *account, *region,
		*principal, *source_ip, *user_agent, *bucket, *object_key;
	const char **extra;	/* rule->nextra values for correlations and throttles */
	/* The rule's trailwatch.reasons that hold for the event, as text. */
	const char **reasons;
	size_t nreasons;
	/* Rules whose own alert on this event this one replaces
	 * (trailwatch.supersedes): id and title of each. */
	const char **cover_ids, **cover_titles;
	size_t ncovers;
	bool covered;		/* replaced by another rule's alert on the same event */
};

/* Copies the context of rec into m, strings from a.  -ENOMEM. */
int match_capture(struct match *m, const struct rule *r, struct record *rec,
		  const struct alert_slots *slots, const char *log_object, struct arena *a);

/* Adds the text of reason to m (its {field} parts from rec), strings from a.
 * A field value longer than REASON_VALUE_MAX bytes is cut and ends with
 * "...".  -ENOMEM. */
int match_add_reason(struct match *m, const struct reason *reason, struct record *rec, struct arena *a);

/* Marks `covered` (a match of another rule on the same record) as replaced
 * by m: m's alert names that rule instead.  -ENOMEM. */
int match_cover(struct match *m, struct match *covered, struct arena *a);

/* Deep copy of a match with malloc'd strings (for state that outlives a file);
 * match_release frees what match_copy allocated. */
int match_copy(struct match *dst, const struct match *src);
void match_release(struct match *m);

#define ALERT_MAX_EVENT_IDS 20

struct alert {
	const struct rule *rule;
	char id[33];			/* 32 hex digits */
	const struct match *m;		/* the event that raised it */
	const char *event_ids[ALERT_MAX_EVENT_IDS];
	size_t nevent_ids;
	long count;			/* events it stands for; 0 for a single event */
	bool has_value;			/* correlations: the measured value */
	double value;
	int64_t window;			/* seconds; 0 when none */
	int64_t first_seen;		/* TIME_UNKNOWN when none */
	size_t ngroup;
	const char *const *group_names;
	const char *group_values[GROUP_BY_MAX];
	const char *title_note;		/* appended to the title, e.g. "(12 in 1h)" */
};

/* An alert for a single matched event. */
void alert_from_match(struct alert *a, const struct match *m);

/* Computes a->id from the rule id, kind and the given parts. */
void alert_set_id(struct alert *a, const char *kind, const char *const *parts, size_t nparts);

/* The size every alert is rendered within (the spool's SPOOL_MAX_ALERT), and
 * how many cut values an alert names. */
#define ALERT_MAX_BYTES (256u << 10)
#define ALERT_MAX_CUTS 16

/* Appends the alert as one line of JSON (with '\n') of at most limit bytes.
 * When the whole alert does not fit, the values that come from events
 * (context fields, event ids, group values, reasons, log_object) are cut to
 * 4096, then 512, then 64 bytes, each cut value ending in
 * "...[cut: N bytes]", and a "truncated" member maps the first
 * ALERT_MAX_CUTS of them to their full size ("more": the rest).  Returns 0
 * when rendered whole, 1 when values were cut, -E2BIG when even the
 * shortest cut does not fit (nothing appended), -ENOMEM. */
int alert_render(const struct alert *a, size_t limit, struct buf *out);

/* Formats seconds since the epoch as ISO 8601 UTC (buf of 21 bytes). */
void format_time(int64_t t, char buf[32]);

/* Formats a duration the way rules write it: "90s", "5m", "1h", "2d". */
void format_span(int64_t seconds, char buf[32]);

#endif
