/* notify.c: sd_notify messages for systemd (see notify.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "trailwatch/notify.h"

static bool enabled;
static uint64_t watchdog_usec;
static uint64_t last_ping;		/* CLOCK_MONOTONIC microseconds */
static uint64_t last_progress;		/* the same clock: notify_progress */
static pthread_mutex_t ping_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t monotonic_usec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

void notify_init(void)
{
	uint64_t usec = 0;
	const char *sock = getenv("NOTIFY_SOCKET");

	enabled = sock && *sock;
	if (enabled && sd_watchdog_enabled(0, &usec) > 0)
		watchdog_usec = usec;
	last_ping = last_progress = monotonic_usec();
}

uint64_t notify_watchdog_usec(void)
{
	return watchdog_usec;
}

/* sd_notify's errors are not the service's: a message that does not get
 * through changes nothing here (systemd will say what it missed). */
static void send_state(const char *state, const char *status)
{
	char text[1024];

	if (!enabled)
		return;
	if (status)
		snprintf(text, sizeof(text), "%s\nSTATUS=%s", state, status);
	else
		snprintf(text, sizeof(text), "%s", state);
	(void)sd_notify(0, text);
}

void notify_ready(const char *status)
{
	send_state("READY=1", status);
}

void notify_status(const char *status)
{
	char text[1024];

	snprintf(text, sizeof(text), "STATUS=%s", status);
	send_state(text, NULL);
}

void notify_reloading(const char *status)
{
	char state[64];

	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)monotonic_usec());
	send_state(state, status);
}

void notify_stopping(const char *status)
{
	send_state("STOPPING=1", status);
}

void notify_progress(void)
{
	uint64_t now;

	if (!enabled || !watchdog_usec)
		return;
	now = monotonic_usec();
	pthread_mutex_lock(&ping_lock);
	last_progress = now;
	pthread_mutex_unlock(&ping_lock);
}

void notify_keepalive(void)
{
	uint64_t now;
	bool due;

	if (!enabled || !watchdog_usec)
		return;
	now = monotonic_usec();
	pthread_mutex_lock(&ping_lock);
	due = now - last_ping >= watchdog_usec / 2 && now - last_progress < watchdog_usec;
	if (due)
		last_ping = now;
	pthread_mutex_unlock(&ping_lock);
	if (due)
		(void)sd_notify(0, "WATCHDOG=1");
}
