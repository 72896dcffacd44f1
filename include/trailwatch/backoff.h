/* backoff.h: how long to wait before trying again, for S3 requests and for
 * alert sinks alike: exponential (base doubling up to a cap) with full
 * jitter (a uniform random wait up to that value, AWS's recommendation, so
 * that many clients do not retry in step), and never sooner than what the
 * server asked for with Retry-After. */
#ifndef TRAILWATCH_BACKOFF_H
#define TRAILWATCH_BACKOFF_H

#include <stdint.h>

struct backoff {
	long base_ms;			/* the first wait's bound */
	long max_ms;			/* no bound above this */
	uint64_t rng;			/* jitter state */
};

/* Seeds the jitter from the clock and the pid. */
void backoff_init(struct backoff *b, long base_ms, long max_ms);

/* Milliseconds to wait before retry number `attempt` (1 = the first retry):
 * random in [0, min(max, base * 2^(attempt-1))], and at least retry_after
 * seconds when that is >= 0 (capped at three times max_ms). */
long backoff_ms(struct backoff *b, int attempt, long retry_after);

#endif
