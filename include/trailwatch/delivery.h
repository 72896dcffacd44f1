/* delivery.h: alerts from the spool to the configured sinks.
 *
 * Each sink has its own position in the spool (spool.h) and its own state:
 * one alert in flight at a time (so a sink gets alerts in order), and after
 * a failure a backoff that holds back only that sink.  HTTP sinks (webhook,
 * slack, teams, pagerduty) run concurrently through one libcurl multi; the
 * others (stdout, file, journal) are written directly.  An alert is acked
 * in the spool only after its sink took it: 2xx from a receiver, a complete
 * write (fdatasync'd for a file), or journald's acceptance.
 *
 * Failures: a receiver's answer is judged by its status alone; its body
 * is read and only its first DELIVERY_MAX_BODY bytes are kept (for the
 * log), so a long body is never a failure of its own.  Network errors, 408,
 * 5xx and 429 are retried for as long as it takes, with exponential backoff
 * and jitter (1 s doubling to 5 min), never sooner than a 429's
 * Retry-After.  Any other 4xx, and any 3xx, is final for that alert: it is
 * logged (with the start of the body; for a redirect, the scheme and host
 * it pointed to, never the rest of the Location, which may hold a token)
 * and written to STATE_DIR/dead-letter/SINK/ID.json, then acked; so is an
 * alert that has waited in the spool longer than spool.max_age.  Redirects
 * are never followed: the alert would go to a host nobody configured, and
 * asking again would get the same answer.  Slack gets at most one message
 * per second.  Secrets (URLs, keys, HMAC secrets) are never logged.
 *
 * Logs what it does (it is part of the service loop).  One thread.
 */
#ifndef TRAILWATCH_DELIVERY_H
#define TRAILWATCH_DELIVERY_H

#include <signal.h>
#include <stddef.h>

#include "trailwatch/alert.h"
#include "trailwatch/config.h"
#include "trailwatch/rules.h"
#include "trailwatch/spool.h"

#define DELIVERY_TIMEOUT_MS 10000	/* one request to a receiver */
#define DELIVERY_MAX_BODY (64u << 10)	/* of a receiver's answer kept; the rest is read and discarded */
#define DELIVERY_EVICT_BATCH 100	/* alerts a stuck sink gives up at a time when the spool is full */
#define DELIVERY_STUCK_FAILURES 3	/* failed attempts in a row that make a sink "stuck" */
#define DELIVERY_STUCK_MS 30000		/* or this long without taking an alert */
#define DELIVERY_WAIT_STEP_MS 200	/* delivery_add's steps while it waits for room */

struct delivery_sink_stats {
	unsigned long sent, retried, dead, filtered, evicted, expired;
	unsigned long lost;	/* alerts whose spooled copy was damaged: never sent */
	unsigned long redelivered;	/* evicted dead letters it took once it was back */
};

struct delivery;

/* The sinks' names, in the order the spool must be opened with: the
 * configured ones, or "stdout" when none is.  *names points into cfg. */
size_t delivery_sink_names(const struct config *cfg, const char **names, size_t max);

/* Opens STATE_DIR/spool (creating STATE_DIR) for the configured sinks, with
 * spool.max_size and spool.remember.  -errno with msg. */
int delivery_spool_open(const struct config *cfg, struct spool **ret, char *msg, size_t msglen);

/* What delivery_open() would refuse in cfg, found without opening,
 * creating or sending anything, each problem in d at the place in the
 * configuration that causes it: a secret file or systemd credential that
 * cannot be read, a url in one that is not http(s), a file sink's file that
 * cannot be appended to or created, more sinks than the spool takes.  check
 * (for `trailwatch check`): a credential is a warning instead when
 * $CREDENTIALS_DIRECTORY is not set (it is only under systemd), and a
 * configured state_dir must exist or be creatable (the default one is
 * StateDirectory='s).  Secrets are wiped at once and never in d.  Does not
 * log.  0, -EINVAL, -ENOMEM. */
int delivery_check(const struct config *cfg, bool check, struct diag *d);

/* Resolves the sinks' secrets (files, systemd credentials), opens file
 * sinks and the dead-letter folders.  The spool must have been opened with
 * delivery_spool_open (or with delivery_sink_names).  -EINVAL with msg (which names the sink, never the
 * secret), -ENOMEM, -errno. */
int delivery_new(const struct config *cfg, const struct ruleset *rs, struct spool *spool, struct delivery **ret,
		 char *msg, size_t msglen);
void delivery_free(struct delivery *d);

/* Both of the above: the spool, then the sinks on it; on failure nothing
 * stays open.  The caller frees *ret, then closes *spool. */
int delivery_open(const struct config *cfg, const struct ruleset *rs, struct spool **spool, struct delivery **ret,
		  char *msg, size_t msglen);

/* Moves alerts from the spool to the sinks for at most budget_ms (0: only
 * what needs no waiting), and returns when nothing more can be done now.
 * Alerts in flight stay in flight between calls.  Returns 0, or a negative
 * errno when the spool failed (logged). */
int delivery_run(struct delivery *d, long budget_ms);

/* Adds an alert to the spool (not yet durable: spool_commit).  When the
 * spool is full it is committed and the caller waits while the sinks take
 * alerts (back-pressure: a healthy sink, however slow, loses nothing);
 * only a stuck sink that holds the space (DELIVERY_STUCK_FAILURES failures
 * in a row, or DELIVERY_STUCK_MS without taking one) gives some up
 * (delivery_evict).  An alert that still finds no room (nothing holds the
 * space) is dropped, with an error and a count.  An alert too large even
 * with its values cut (alert_render) is dropped the same way.  When the
 * stuck sink's alerts cannot be kept as dead letters (a full disk) nothing
 * is given up: -ENOSPC, and the object waits (its checkpoint does not
 * move).  An id
 * already spooled or delivered is not added again.  Returns 0, or the
 * spool's negative error (logged). */
int delivery_add(struct delivery *d, const struct alert *a);

/* fn(ctx) is called every DELIVERY_WAIT_STEP_MS while delivery_add waits
 * for room (the service keeps its watchdog and status fed). */
void delivery_set_waiting(struct delivery *d, void (*fn)(void *ctx), void *ctx);

/* Alerts dropped by delivery_add so far. */
unsigned long delivery_dropped(const struct delivery *d);

/* The spool is full: the sink that holds the space (the one with the
 * oldest pending alert) gives up to max_alerts of its oldest alerts, each
 * kept in dead-letter/SINK/ and logged, so that the other sinks go on.
 * An alert whose dead letter cannot be written is not given up: -EAGAIN
 * when not one could be.  Returns how many were evicted (0: no sink holds
 * the space; it is uncommitted alerts), or the spool's negative error. */
int delivery_evict(struct delivery *d, size_t max_alerts);

/* True when an alert is in flight or waiting for a sink's backoff. */
bool delivery_busy(const struct delivery *d);

/* delivery_run until nothing is in flight or waiting for a backoff, or
 * budget_ms have passed (at the end of run or replay --sinks; what is left
 * stays in the spool).  0, or the spool's error. */
int delivery_drain(struct delivery *d, long budget_ms);

/* True when a request to a receiver is in flight. */
bool delivery_in_flight(const struct delivery *d);

void delivery_stats(const struct delivery *d, size_t sink, struct delivery_sink_stats *ret);

#endif
