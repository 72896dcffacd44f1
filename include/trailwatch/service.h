/* service.h: `trailwatch run`, the service loop.
 *
 * Polls the configured sources forever.  Each object goes through the same
 * decoder and engine as replay; its alerts are added to the durable spool in
 * STATE_DIR/spool and committed before the object's checkpoint moves, then
 * delivered from the spool to the sinks (delivery.h), each acknowledged in
 * the spool once a sink took it, so a kill -9 at any moment repeats at most
 * the alert in flight per sink and loses none (architecture.md,
 * "Durability order").
 *
 * Signals:
 *  - SIGTERM, SIGINT: stop after the object in hand (its checkpoint moves
 *    only if it was finished), flush throttle summaries, give the sinks up
 *    to STOP_GRACE seconds, leave the rest in the spool; exit 0.
 *  - SIGHUP: reload.  The new configuration and rules are loaded and the
 *    new sources set up completely first; if anything fails, the errors are
 *    logged (file:line:column) and the old set keeps running.  Otherwise
 *    the sinks finish the requests in flight, the spool is reopened for the
 *    new sinks, sources start again from their checkpoints (without a
 *    warm-up), and the correlation and throttle state of every rule that did
 *    not change is kept (dispatch_adopt).
 *
 * systemd (notify.h): READY=1 once the sources are set up, STATUS= every few
 * seconds, WATCHDOG=1 while the loop makes progress (docs/service.md,
 * "Watchdog"), RELOADING=1 and STOPPING=1.  While an S3 source waits inside
 * a poll, the sinks still get a turn every 100 ms.
 */
#ifndef TRAILWATCH_SERVICE_H
#define TRAILWATCH_SERVICE_H

#include "trailwatch/config.h"
#include "trailwatch/diag.h"
#include "trailwatch/rules.h"

/* Loads the configuration and rules again for a reload, as the command
 * line said.  Returns 0 with *cfg and *rs (the caller's), or a negative
 * errno with every problem in d. */
struct service_loader {
	int (*load)(void *ctx, struct config **cfg, struct ruleset **rs, struct diag *d);
	void *ctx;
};

/* Takes cfg and rs (and frees them, or their reloaded successors, before
 * returning).  loader may be NULL: SIGHUP is then logged and ignored.
 * Returns the process exit status: 0 after SIGTERM/SIGINT, 1 when the
 * service cannot start (no sources, no credentials, state dir unusable:
 * logged) or fails for good. */
int service_run(struct config *cfg, struct ruleset *rs, const struct service_loader *loader);

#endif
