/* service.h: `trailwatch run`, the service loop.
 *
 * Polls the configured sources forever.  Each object goes through the same
 * decoder and engine as replay; its alerts are added to the durable spool in
 * STATE_DIR/spool and committed before the object's checkpoint moves, then
 * delivered from the spool to stdout as JSON lines, each acknowledged in the
 * spool once written, so a kill -9 at any moment repeats at most the alert
 * that was being written and loses none (architecture.md, "Durability
 * order").  SIGTERM and SIGINT end it after the object in hand: exit 0.
 */
#ifndef TRAILWATCH_SERVICE_H
#define TRAILWATCH_SERVICE_H

#include "trailwatch/config.h"
#include "trailwatch/rules.h"

/* Returns the process exit status: 0 after SIGTERM/SIGINT, 1 when the
 * service cannot start (no sources, no credentials, state dir unusable:
 * logged) or fails for good. */
int service_run(const struct config *cfg, const struct ruleset *rs);

#endif
