/* sinkfmt.h: one alert, formatted for each kind of destination (sink).
 *
 * Every formatter takes the alert exactly as trailwatch renders it
 * (alert_render(): one JSON object, optionally followed by whitespace such
 * as its '\n') and produces what one destination wants: a Slack
 * incoming-webhook body, a Microsoft Teams Workflows webhook body, a
 * PagerDuty Events API v2 event, the signature of a generic webhook, or the
 * fields of a journald entry.  They are pure functions: no I/O, no logging,
 * no state (sinkfmt_journal_send() is the one exception, and says so).
 *
 * The alert is untrusted input as far as these functions go: it must be
 * valid UTF-8 JSON of at most SINKFMT_ALERT_MAX bytes, an object whose "id",
 * "title" and "severity" are strings ("id" non-empty and at most
 * SINKFMT_ID_MAX bytes, "severity" one of informational, low, medium, high,
 * critical); anything else is -EINVAL with a message in msg.  The optional
 * members (architecture.md, "Alert object") are used when they have the
 * right type and are non-empty, and ignored otherwise.  The values in them
 * (principal, user agent, bucket, key...) come from CloudTrail records and
 * can contain anything: each formatter escapes them for its destination's
 * markup and bounds them to its destination's limits.  Length never makes a
 * formatter fail: text is cut at a UTF-8 character boundary and ends with
 * "…" (U+2026) where it was cut.
 *
 * "Characters" in the limits below are counted as UTF-16 code units (what
 * JavaScript's String.length gives; a character outside the BMP counts 2).
 * That is never fewer than Unicode code points, so a text within a limit
 * counted this way is within it however the destination counts.
 *
 * The formatters append their result to out (a JSON text, without a trailing
 * newline) and append nothing on failure; errors are -EINVAL (bad alert or
 * argument, msg says why), -ENOMEM, or -E2BIG when out's own limit is too
 * small.  msg may be NULL; it is always NUL-terminated when msglen > 0.
 *
 * The AWS console link to an alert's event, where a formatter adds one, is
 *   https://REGION.console.aws.amazon.com/cloudtrailv2/home?region=REGION#/events/EVENT_ID
 * for the alert's region and first event id (percent-encoded).  Alerts
 * without a region or event id get no link, and so do regions that are not
 * plain [a-z0-9-] names or that belong to another partition than "aws"
 * (cn-*, us-gov-*, us-iso*: their consoles live on other domains).
 *
 * --- Generic webhooks: the signature scheme ----------------------------------
 *
 * The body of a generic webhook is the alert JSON, unchanged.  When a secret
 * is configured, each request carries two headers:
 *
 *   X-Trailwatch-Timestamp: 1700000000
 *   X-Trailwatch-Signature: v1=2f7852138f9dbd8d61c07c2cfb0b8ac96a46a32d78d4527788fb42fcb409a493
 *
 * (that is the signature of the body {"id":"x"} with the secret "secret":
 * a test vector for receivers)
 * The timestamp is the time of sending in seconds since the Unix epoch, in
 * ASCII decimal without sign, leading zeros or fraction.  The signature is
 * "v1=" followed by the lower-case hex HMAC-SHA256, keyed with the secret's
 * bytes, of the message
 *
 *   TIMESTAMP "." BODY
 *
 * where TIMESTAMP is the X-Trailwatch-Timestamp header value exactly as
 * received and BODY the raw request body bytes exactly as received (before
 * any JSON parsing or re-encoding).  A receiver:
 *   1. reads both headers; rejects the request if either is missing or the
 *      timestamp is not all digits;
 *   2. rejects it when |now - timestamp| > 300 seconds (SINKFMT_SIG_TOLERANCE),
 *      so that a captured request cannot be replayed later;
 *   3. computes HMAC-SHA256(secret, TIMESTAMP + "." + BODY) in hex and compares
 *      it with the value after "v1=" in constant time (hmac.compare_digest,
 *      crypto.timingSafeEqual, CRYPTO_memcmp...); rejects on mismatch;
 *   4. may keep the alert "id" of accepted requests for the tolerance window
 *      to drop an exact replay within it (trailwatch itself may deliver an
 *      alert more than once after a failure: "id" is stable, use it to dedup).
 * Several "v1=" values separated by "," may appear in the future (secret
 * rotation): a receiver should accept the request if any of them matches.
 * The "v1" scheme name changes if the scheme ever does.
 */
#ifndef TRAILWATCH_SINKFMT_H
#define TRAILWATCH_SINKFMT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "trailwatch/buf.h"

#define SINKFMT_ALERT_MAX (256 * 1024)	/* bytes of alert JSON accepted */
#define SINKFMT_ID_MAX 128		/* bytes of alert "id" accepted */

/* ---- Slack ---------------------------------------------------------------- */

/* Slack's documented Block Kit limits (docs.slack.dev/reference/block-kit). */
#define SINKFMT_SLACK_HEADER_MAX 150	/* header block text */
#define SINKFMT_SLACK_SECTION_MAX 3000	/* section block text */
#define SINKFMT_SLACK_FIELD_MAX 2000	/* each section field's text */
#define SINKFMT_SLACK_FIELDS_MAX 10	/* fields per section */
#define SINKFMT_SLACK_CONTEXT_MAX 10	/* elements per context block */
#define SINKFMT_SLACK_BLOCKS_MAX 50	/* blocks per message */
/* Not documented: chat.postMessage and webhooks reject blocks whose texts
 * add up to about 12,000 characters (msg_blocks_too_long; slackapi/bolt-js
 * #2509, #2867).  sinkfmt_slack keeps the sum of all its block texts within
 * this, cutting the longest values further when needed. */
#define SINKFMT_SLACK_TEXT_BUDGET 10000
#define SINKFMT_SLACK_FALLBACK_MAX 1000	/* the top-level "text" */

/* A Slack incoming-webhook body (POST it as application/json):
 *
 *   {"text": "[HIGH] title",                  -- notification fallback
 *    "blocks": [
 *      header   "[HIGH] title"                 (plain_text)
 *      section  fields: Account, Region, Event, Time, Principal, Source IP,
 *               User agent, S3 object (s3://bucket/key) or Bucket
 *               -- each only when the alert has it
 *      section  "*Why* reason · reason" and "*Also covers* title, title"
 *               (the alert's reasons and covers, when it has them)
 *      section  the rule's description         (when description is given)
 *      section  fields: Count, Window, Value, Group (correlations; when present)
 *      context  Rule, Alert id, Events (at most 10 ids), Log object, and a
 *               link "<URL|CloudTrail console>" when a link can be made
 *    ]}
 *
 * Texts are mrkdwn with "verbatim": true (no automatic link or mention
 * parsing); every value taken from the alert or the description has &, <
 * and > escaped as &amp; &lt; &gt; (so "<!channel>" or "<https://x|y>" in a
 * user agent stay literal text), and its control characters (newlines
 * included) replaced by spaces so that a value cannot fake another field.
 * The header is plain_text (not escaped: Slack shows plain_text literally).
 * Limits: the SINKFMT_SLACK_* above.  description may be NULL. */
int sinkfmt_slack(const char *alert, size_t len, const char *description, struct buf *out,
		  char *msg, size_t msglen);

/* ---- Microsoft Teams ------------------------------------------------------ */

/* Teams rejects webhook messages over about 28 KB, and has been seen to count
 * a body sent without "charset=utf-8" as UTF-16: send the body with
 * "Content-Type: application/json; charset=utf-8".  sinkfmt_teams keeps its
 * whole output within this many bytes, cutting the longest values further
 * when needed. */
#define SINKFMT_TEAMS_MAX 20000

/* A body for a Teams "When a Teams webhook request is received" workflow
 * ("Post to a channel when a webhook request is received" template):
 *
 *   {"type": "message",
 *    "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
 *                     "contentUrl": null,
 *                     "content": {"type": "AdaptiveCard", "version": "1.4",
 *                                 "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
 *                                 "msteams": {"width": "Full"},
 *                                 "body": [...], "actions": [...]}}]}
 *
 * The card's body: a TextBlock title "[HIGH] title" (bold, large; red for
 * critical and high, amber for medium), a FactSet of the fields Slack shows,
 * TextBlocks "**Why** ..." and "**Also covers** ..." (when the alert has
 * reasons or covers), the description (when given), a FactSet of the correlation values (when
 * present), a small TextBlock with rule, alert id and events.  Its actions:
 * an Action.OpenUrl to the console link (when one can be made).
 * Adaptive Card text is Markdown: in values from the alert, \ * _ ~ ` [ ] are
 * backslash-escaped (so "[x](https://evil)" is no link) and control
 * characters replaced by spaces.  description may be NULL. */
int sinkfmt_teams(const char *alert, size_t len, const char *description, struct buf *out,
		  char *msg, size_t msglen);

/* ---- PagerDuty ------------------------------------------------------------ */

/* PagerDuty Events API v2 limits (developer.pagerduty.com, "Send an Alert
 * Event"): payload.summary 1024 characters, dedup_key 255, whole event
 * 512 KB.  custom_details is kept within SINKFMT_PAGERDUTY_DETAILS_MAX. */
#define SINKFMT_PAGERDUTY_SUMMARY_MAX 1024
#define SINKFMT_PAGERDUTY_FIELD_MAX 255		/* source, group, class */
#define SINKFMT_PAGERDUTY_DETAILS_MAX (256 * 1024)
#define SINKFMT_PAGERDUTY_DETAIL_STRING_MAX 16384	/* each string in custom_details */
#define SINKFMT_PAGERDUTY_KEY_MAX 128		/* routing key bytes accepted */

/* A trigger event for https://events.pagerduty.com/v2/enqueue:
 *
 *   {"routing_key": routing_key, "event_action": "trigger",
 *    "dedup_key": alert id, "client": "trailwatch",
 *    "payload": {"summary": "title by PRINCIPAL on BUCKET" (the parts present),
 *                "severity": critical|error|warning|info
 *                            (from critical|high|medium|low and informational),
 *                "source": "ACCOUNT/REGION", the one present, or "trailwatch",
 *                "timestamp": event_time (only when it is ISO 8601),
 *                "component": "s3" when the alert names a bucket, else "cloudtrail",
 *                "group": account, "class": rule id (when present),
 *                "custom_details": the alert object},
 *    "links": [{"href": console link, "text": "CloudTrail event in the AWS console"}]}
 *
 * custom_details is the whole alert; should it exceed
 * SINKFMT_PAGERDUTY_DETAILS_MAX (it cannot for alerts within
 * SINKFMT_ALERT_MAX that trailwatch renders), strings in it are cut to
 * SINKFMT_PAGERDUTY_DETAIL_STRING_MAX characters and members past the budget
 * dropped, and "truncated": true is added.  PagerDuty shows text as is: no
 * escaping beyond JSON.  routing_key must be 1..SINKFMT_PAGERDUTY_KEY_MAX
 * printable ASCII characters (-EINVAL otherwise; msg never repeats it). */
int sinkfmt_pagerduty(const char *alert, size_t len, const char *routing_key, struct buf *out,
		      char *msg, size_t msglen);

/* ---- Generic webhooks ----------------------------------------------------- */

#define SINKFMT_SIG_SIZE 65		/* 64 hex digits and a NUL */
#define SINKFMT_SIG_TOLERANCE 300	/* seconds a receiver accepts (see the top) */
#define SINKFMT_SIG_TIMESTAMP_HEADER "X-Trailwatch-Timestamp"
#define SINKFMT_SIG_HEADER "X-Trailwatch-Signature"	/* value: "v1=" and the hex */

/* Writes to out the lower-case hex HMAC-SHA256, keyed with secret, of the
 * decimal timestamp, ".", and body[0..len) (the scheme at the top of this
 * file).  -EINVAL for an empty secret or a negative timestamp, -ENOMEM
 * (OpenSSL failed); out is written only on success.  Does not touch the
 * secret beyond reading it. */
int sinkfmt_webhook_sign(const void *secret, size_t secret_len, int64_t timestamp, const char *body,
			 size_t len, char out[SINKFMT_SIG_SIZE]);

/* ---- journald ------------------------------------------------------------- */

/* The MESSAGE_ID of every alert entry; systemd/trailwatch.catalog explains it
 * (journalctl -x).  Generated once with systemd-id128 new; never change it. */
#define SINKFMT_JOURNAL_MESSAGE_ID "f442f7875c15402285e79119440d7fc0"
#define SINKFMT_JOURNAL_VALUE_MAX (64 * 1024)	/* bytes of any one field's value */
#define SINKFMT_JOURNAL_MESSAGE_MAX 2048	/* characters of MESSAGE */
#define SINKFMT_JOURNAL_FIELDS_MAX 24

/* The fields of one journal entry, each "NAME=value" in its own malloc'd
 * iovec, ready for sd_journal_sendv(iov, n). */
struct sinkfmt_journal_fields {
	struct iovec iov[SINKFMT_JOURNAL_FIELDS_MAX];
	size_t n;
};

/* Fills *out (written only on success; release with sinkfmt_journal_free)
 * with, in this order and each only when the alert has it:
 *
 *   MESSAGE               "trailwatch alert [high] title: principal P, bucket B,
 *                          key K, from IP (reason · reason)" (control characters made spaces,
 *                          at most SINKFMT_JOURNAL_MESSAGE_MAX characters)
 *   PRIORITY              critical 2 (crit), high 3 (err), medium 4 (warning),
 *                         low 5 (notice), informational 6 (info)
 *   MESSAGE_ID            SINKFMT_JOURNAL_MESSAGE_ID
 *   SYSLOG_IDENTIFIER     trailwatch (journalctl -t trailwatch)
 *   TRAILWATCH_ALERT_ID, TRAILWATCH_RULE, TRAILWATCH_SEVERITY,
 *   TRAILWATCH_EVENT_ID (the first of event_ids), TRAILWATCH_EVENT_NAME,
 *   TRAILWATCH_ACCOUNT, TRAILWATCH_REGION, TRAILWATCH_PRINCIPAL,
 *   TRAILWATCH_SOURCE_IP, TRAILWATCH_BUCKET, TRAILWATCH_OBJECT_KEY
 *                         the alert's values, byte for byte
 *   TRAILWATCH_ALERT      the alert JSON as given, without trailing whitespace
 *
 * Every value is at most SINKFMT_JOURNAL_VALUE_MAX bytes: longer ones are cut
 * at a UTF-8 boundary with "…"; TRAILWATCH_ALERT, should it be longer, is
 * re-serialized with cut strings (still one valid JSON object, with
 * "truncated": true).  Values other than MESSAGE are not sanitized:
 * sd_journal_sendv() carries any bytes, newlines included (it switches to
 * the binary-safe form of the native protocol by itself); journalctl shows
 * such values as "[N bytes blob data]" unless --all or -o json is used. */
int sinkfmt_journal(const char *alert, size_t len, struct sinkfmt_journal_fields *out, char *msg,
		    size_t msglen);

/* Sends the entry with sd_journal_sendv().  0, or its negative errno (for
 * example -ENOENT or -ECONNREFUSED when journald does not run).  This one
 * does I/O: it is the journald sink itself. */
int sinkfmt_journal_send(const struct sinkfmt_journal_fields *f);

/* Frees the field texts; accepts NULL and a zeroed struct; leaves it zeroed. */
void sinkfmt_journal_free(struct sinkfmt_journal_fields *f);

/* ---- Shared --------------------------------------------------------------- */

/* Appends the AWS console link of one CloudTrail event (the form at the top
 * of this file) to out.  -ENOENT when no link can be made for this region or
 * event id (empty, too long, not a plain region name, another partition),
 * -ENOMEM / -E2BIG; nothing appended on failure. */
int sinkfmt_console_url(const char *region, size_t region_len, const char *event_id, size_t event_id_len,
			struct buf *out);

#endif
