/* s3source.h: a CloudTrail bucket as a source of log objects.
 *
 * Discovery finds the trail's account/region prefixes under the configured
 * prefix with delimiter listings (AWSLogs/ -> o-xxxx/ -> 111122223333/ ->
 * CloudTrail/ -> us-east-1/; digest and Insight folders are skipped) and is
 * repeated every discovery_interval, so new accounts and regions are picked
 * up.  Each account/region prefix ("leaf") is then polled on its own:
 *
 *   - it is listed from a start-after key built from its checkpoint: the
 *     newest processed key's time minus the lookback (15 minutes by
 *     default), because objects of the same minutes can land out of key
 *     order; the keys already processed inside that window are remembered,
 *     so none is processed twice and none is skipped;
 *   - new objects are fetched (several at once), handed to sink->object in
 *     completion order, then sink->commit makes their alerts durable, and
 *     only then the leaf's checkpoint moves (written atomically: the
 *     durability order of architecture.md);
 *   - an object that cannot be read (403, 404, too large) is reported with
 *     its key and counted as done; one whose retries ran out (5xx,
 *     throttling, network) is retried at the next polls, and the listing
 *     window does not move past it;
 *   - leaves are listed in groups of 32 (S3SOURCE_LIST_PARALLEL requests
 *     in flight), then the group's new objects are fetched together and
 *     processed leaf after leaf, each leaf's in key order;
 *   - a leaf whose polls found nothing for three poll intervals is polled
 *     every quiet_poll_interval (default: the poll interval itself),
 *     whatever the other leaves do;
 *   - after a restart, the objects of the `warmup` seconds before each
 *     checkpoint are read again, without moving it: correlation windows
 *     and throttles are rebuilt, and the alerts they repeat are refused by
 *     the spool (same ids);
 *   - far behind (a backfill from start_time, or after an outage), the
 *     leaves advance together in rounds of `step` seconds of key time, so
 *     that the events of different accounts and regions reach the
 *     correlations roughly in time order (within their lateness).  A leaf
 *     counts as behind by its own position: one whose last listing got to
 *     its end is caught up however old its newest object is, and a leaf is
 *     listed in a round only when the rounds reach its next key; what a
 *     round's listing found past its horizon is kept (bounded) for the
 *     later rounds of the cycle, so a leaf is listed about once a cycle.
 *
 * Checkpoints: one small JSON file per leaf in STATE_DIR/checkpoints/SOURCE/.
 * Logs what it does (this is the service loop's own module).
 */
#ifndef TRAILWATCH_S3SOURCE_H
#define TRAILWATCH_S3SOURCE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trailwatch/config.h"
#include "trailwatch/s3.h"
#include "trailwatch/source.h"

/* Most candidate objects collected from one leaf's listing per poll: a
 * backfill of days goes on at the next poll, so memory stays bounded. */
#define S3SOURCE_MAX_PENDING 2000
/* Keys remembered per leaf (inside the lookback, plus those to retry). */
#define S3SOURCE_MAX_DONE 20000
/* Keys of one leaf waiting to be retried; past it a new failure is
 * given up (logged). */
#define S3SOURCE_MAX_RETRY 10000
/* Listing requests in flight at once: a pass over hundreds of prefixes
 * is bounded by round trips / this, not by round trips. */
#define S3SOURCE_LIST_PARALLEL 16
/* Account/region prefixes one source may have. */
#define S3SOURCE_MAX_LEAVES 100000

struct s3source_stats {
	unsigned long cycles, rounds, discoveries, leaves, objects, warmup_objects, failed_objects, pending_retry;
	int64_t newest;		/* the time in the name of the newest object processed, any prefix; 0: none */
	struct s3_stats s3;
};

struct s3source;

/* What the service gives a source besides its configuration. */
struct s3source_options {
	const char *state_dir;
	/* Seconds of key time per backfill round: half the correlation
	 * lateness is right; at least 60. */
	int64_t step;
	/* Seconds of objects before a checkpoint read again after a restart,
	 * so that correlation windows and throttles are rebuilt: the longest
	 * window plus the lateness; 0: none. */
	int64_t warmup;
	size_t max_object;		/* bytes of one object as stored */
	s3_creds_fn creds;
	void *creds_ctx;
	volatile sig_atomic_t *stop;	/* set by a signal: finish the object in hand */
	/* While the source waits for S3 inside a poll: s3_config.on_wait. */
	void (*on_wait)(void *ctx, bool progressed);
	void *wait_ctx;
};

/* -EINVAL (bad configuration: msg), -ENOMEM, -errno for the state dir. */
int s3source_new(const struct source_config *sc, const struct s3source_options *o, struct s3source **ret,
		 char *msg, size_t msglen);
void s3source_free(struct s3source *s);

/* One poll cycle at wall-clock time now: discovery when due, then every leaf
 * that is due.  Errors of single requests are logged and retried later;
 * returns 0, -ECANCELED when *stop was set, or a sink's negative value. */
int s3source_poll(struct s3source *s, int64_t now, const struct source_sink *sink);

void s3source_stats(const struct s3source *s, struct s3source_stats *ret);

#endif
