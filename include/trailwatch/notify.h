/* notify.h: the service's side of systemd's notification protocol
 * (sd_notify(3)): READY, STATUS, WATCHDOG, RELOADING, STOPPING.
 *
 * Everything here does nothing unless notify_init found NOTIFY_SOCKET (a
 * Type=notify unit, or a test's socket); the watchdog pings only when
 * WATCHDOG_USEC is set (WatchdogSec=) and WATCHDOG_PID, if set, is ours.
 *
 * Watchdog: a ping vouches for progress, not for being called.  The
 * service marks progress with notify_progress (a turn of its loop, an
 * object processed, bytes arriving from S3, a request ended, a retry's
 * backoff) and calls notify_keepalive often; WATCHDOG=1 goes out at half
 * the interval while the last progress is less than one interval old.  So
 * a thread that waits on something that says nothing, or loops without
 * getting anywhere, stops pinging one interval after its last progress and
 * systemd restarts the service 1.5 to 2 intervals after it, while bounded
 * waits shorter than an interval (a silent request cut by its deadline)
 * never cost a restart.  Both may be called from any thread.
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

/* The caller got somewhere (see above). */
void notify_progress(void);

/* WATCHDOG=1 when due and the last progress is recent (see above). */
void notify_keepalive(void);

#endif
