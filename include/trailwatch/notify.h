/* notify.h: the service's side of systemd's notification protocol
 * (sd_notify(3)): READY, STATUS, WATCHDOG, RELOADING, STOPPING.
 *
 * Everything here does nothing unless notify_init found NOTIFY_SOCKET (a
 * Type=notify unit, or a test's socket); the watchdog pings only when
 * WATCHDOG_USEC is set (WatchdogSec=) and WATCHDOG_PID, if set, is ours.
 *
 * Watchdog: notify_keepalive sends WATCHDOG=1 when half the interval has
 * passed since the last ping.  The service loop calls it on every turn,
 * and so do the places that wait on a bounded timer inside a turn (an HTTP
 * transfer's progress, a retry's backoff), so a turn that waits for S3 is
 * not taken for a wedged loop while one that never returns is.
 * notify_keepalive may be called from any thread.
 */
#ifndef TRAILWATCH_NOTIFY_H
#define TRAILWATCH_NOTIFY_H

#include <stdint.h>

/* Reads the environment.  Call once, before the others. */
void notify_init(void);

/* The watchdog interval in microseconds, 0 when there is none. */
uint64_t notify_watchdog_usec(void);

/* READY=1 with a STATUS= line. */
void notify_ready(const char *status);

/* STATUS= only. */
void notify_status(const char *status);

/* RELOADING=1 and MONOTONIC_USEC= (systemd 253's Type=notify-reload wants
 * both; older systemd ignores them), with a STATUS= line.  READY=1 ends it. */
void notify_reloading(const char *status);

/* STOPPING=1 with a STATUS= line. */
void notify_stopping(const char *status);

/* WATCHDOG=1 when due (see above). */
void notify_keepalive(void);

#endif
