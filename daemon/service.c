/* service.c: `trailwatch run` (see service.h).
 *
 * One thread does everything, in this order per poll of a source: fetch new
 * objects (several GETs in flight), detect on each, spool its alerts, commit
 * the spool, move the checkpoint (s3source), deliver the spool to the sinks
 * (delivery.c), which also get the time between polls.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trailwatch/creds.h"
#include "trailwatch/delivery.h"
#include "trailwatch/dirsource.h"
#include "trailwatch/http.h"
#include "trailwatch/log.h"
#include "trailwatch/process.h"
#include "trailwatch/s3source.h"
#include "trailwatch/service.h"
#include "trailwatch/spool.h"
#include "trailwatch/statefile.h"

#define STOP_GRACE 5		/* seconds a stop gives the sinks to take what is spooled */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* The credentials of one source, as s3.h asks for them. */
struct source_creds {
	const char *name;
	struct creds_provider *p;
	int64_t warned;			/* last "refresh failed" warning */
};

struct service {
	const struct config *cfg;
	const struct ruleset *rs;
	struct spool *spool;
	struct processor proc;
	bool proc_ready;
	struct dispatch d;
	bool dispatch_ready;
	struct source_creds *creds;
	struct s3source **s3;		/* per source: one of these two */
	struct dirsource **dir;
	int64_t *next_poll;
	size_t nsources;
	struct delivery *delivery;
};

static int get_creds(void *ctx, struct sigv4_credentials *out, char *msg, size_t msglen)
{
	struct source_creds *sc = ctx;
	const struct creds *c;
	int64_t now = time(NULL);
	int r = creds_get(sc->p, now, &c, msg, msglen);

	if (r == 1) {
		if (now - sc->warned >= 300) {
			log_warning("%s: credentials: %s (the current ones are still valid)", sc->name, msg);
			sc->warned = now;
		}
		r = 0;
	}
	if (r < 0)
		return r;
	out->access_key_id = c->access_key_id;
	out->secret_access_key = c->secret_access_key;
	out->session_token = c->session_token;
	return 0;
}

/* dispatch -> spool */
static int spool_alert(void *ctx, const struct alert *a)
{
	struct service *sv = ctx;

	return delivery_add(sv->delivery, a);
}

static int on_object(void *ctx, const char *name, const char *data, size_t len)
{
	struct service *sv = ctx;
	struct file_result res;
	int r;

	file_result_init(&res);
	r = processor_run_buffer(&sv->proc, name, data, len, &res);
	if (r == 0) {
		for (size_t i = 0; i < res.nerrors; i++)
			log_error("%s", res.errors[i]);
		if (res.errors_dropped)
			log_error("%s: %zu more errors not shown", name, res.errors_dropped);
		log_debug("%s: %zu records, %zu matches", name, res.records, res.nmatches);
		r = dispatch_result(&sv->d, &res);
	}
	file_result_free(&res);
	return r;
}

static int on_commit(void *ctx)
{
	struct service *sv = ctx;
	char msg[512];
	int r = spool_commit(sv->spool, msg, sizeof(msg));

	if (r < 0) {
		log_error("spool: %s", msg);
		return r;
	}
	return delivery_run(sv->delivery, 0);	/* alerts go out as soon as they are durable */
}

static void service_free(struct service *sv)
{
	for (size_t i = 0; i < sv->nsources; i++) {
		if (sv->s3)
			s3source_free(sv->s3[i]);
		if (sv->dir)
			dirsource_free(sv->dir[i]);
		if (sv->creds)
			creds_provider_free(sv->creds[i].p);
	}
	free(sv->s3);
	free(sv->dir);
	free(sv->creds);
	free(sv->next_poll);
	if (sv->dispatch_ready)
		dispatch_free(&sv->d);
	if (sv->proc_ready)
		processor_free(&sv->proc);
	delivery_free(sv->delivery);
	spool_close(sv->spool);
}

/* How much of the past rebuilds the stateful rules: the longest
 * correlation window or throttle, plus the lateness; 0 without any. */
static int64_t warmup_span(const struct service *sv)
{
	int64_t span = 0;

	for (size_t i = 0; i < sv->rs->nrules; i++) {
		const struct rule *r = sv->rs->rules[i];
		if (r->corr && r->corr->timespan > span)
			span = r->corr->timespan;
		if (r->throttle && r->throttle->timespan > span)
			span = r->throttle->timespan;
	}
	return span ? span + sv->cfg->corr.lateness : 0;
}

/* Everything that can fail at startup, each failure logged. */
static int service_start(struct service *sv)
{
	char msg[CREDS_MESSAGE_SIZE];
	int r;

	if (sv->cfg->nsources == 0) {
		log_error("%s: no sources configured: nothing to watch (see 'sources:' in docs/config.md)",
			  sv->cfg->path ? sv->cfg->path : "built-in configuration");
		return -EINVAL;
	}
	r = delivery_spool_open(sv->cfg, &sv->spool, msg, sizeof(msg));
	if (r < 0) {
		log_error("spool: %s", msg);
		return r;
	}
	r = delivery_new(sv->cfg, sv->rs, sv->spool, &sv->delivery, msg, sizeof(msg));
	if (r < 0) {
		log_error("%s", msg);
		return r;
	}
	r = processor_init(&sv->proc, sv->rs, &sv->cfg->limits);
	if (r < 0)
		return r;
	sv->proc_ready = true;
	r = dispatch_init(&sv->d, sv->rs, &sv->cfg->corr, spool_alert, sv);
	if (r < 0)
		return r;
	sv->dispatch_ready = true;
	sv->creds = calloc(sv->cfg->nsources, sizeof(*sv->creds));
	sv->s3 = calloc(sv->cfg->nsources, sizeof(*sv->s3));
	sv->dir = calloc(sv->cfg->nsources, sizeof(*sv->dir));
	sv->next_poll = calloc(sv->cfg->nsources, sizeof(*sv->next_poll));
	if (!sv->creds || !sv->s3 || !sv->dir || !sv->next_poll)
		return -ENOMEM;
	sv->nsources = sv->cfg->nsources;
	for (size_t i = 0; i < sv->nsources; i++) {
		const struct source_config *src = &sv->cfg->sources[i];
		struct creds_options co = { .region = src->region, .role_arn = src->role_arn,
					    .external_id = src->external_id };
		struct s3source_options so = { 0 };
		const struct creds *c;

		if (src->type == SOURCE_DIR) {
			r = dirsource_new(src, sv->cfg->state_dir, sv->cfg->limits.input.max_object, &stop_requested,
					  &sv->dir[i], msg, sizeof(msg));
			if (r < 0) {
				log_error("%s: %s", src->name, msg);
				return r;
			}
			continue;
		}
		sv->creds[i].name = src->name;
		r = creds_provider_new(&co, &sv->creds[i].p, msg, sizeof(msg));
		if (r == 0) {
			r = creds_get(sv->creds[i].p, time(NULL), &c, msg, sizeof(msg));
			if (r >= 0)
				log_info("%s: AWS credentials from %s", src->name, c->source);
		}
		if (r < 0) {
			log_error("%s: %s", src->name, msg);
			return r;
		}
		so.state_dir = sv->cfg->state_dir;
		so.step = sv->cfg->corr.lateness / 2;
		so.warmup = warmup_span(sv);
		so.max_object = sv->cfg->limits.input.max_object;
		so.creds = get_creds;
		so.creds_ctx = &sv->creds[i];
		so.stop = &stop_requested;
		r = s3source_new(src, &so, &sv->s3[i], msg, sizeof(msg));
		if (r < 0) {
			log_error("%s: %s", src->name, msg);
			return r;
		}
	}
	return 0;
}

/* Sleeps until `until` (wall clock) or a stop signal. */
/* Until `until` (wall clock) or a stop signal, the sinks get the time. */
static int deliver_until(struct service *sv, int64_t until)
{
	while (!stop_requested && time(NULL) < until) {
		int r = delivery_run(sv->delivery, 200);
		if (r < 0)
			return r;
		if (!delivery_busy(sv->delivery)) {
			struct timespec ts = { 0, 200 * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

int service_run(const struct config *cfg, const struct ruleset *rs)
{
	struct source_sink sink;
	struct service sv;
	struct sigaction sa;
	int r, status = 1;

	memset(&sv, 0, sizeof(sv));
	sv.cfg = cfg;
	sv.rs = rs;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	/* SA_RESTART: a write to stdout that a signal interrupts goes on,
	 * instead of leaving half an alert line behind */
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (http_global_init() < 0) {
		log_error("cannot initialise libcurl");
		return 1;
	}
	r = service_start(&sv);
	if (r == -ENOMEM)
		log_error("out of memory");
	if (r < 0)
		goto out;
	/* alerts left undelivered by the last run go first */
	if (delivery_run(sv.delivery, 0) < 0)
		goto out;
	sink.object = on_object;
	sink.commit = on_commit;
	sink.ctx = &sv;
	log_info("watching %zu source%s; state in %s", sv.nsources, sv.nsources == 1 ? "" : "s", cfg->state_dir);
	while (!stop_requested) {
		int64_t now = time(NULL), next = INT64_MAX;

		for (size_t i = 0; i < sv.nsources && !stop_requested; i++) {
			if (now < sv.next_poll[i])
				continue;
			if (sv.s3[i])
				r = s3source_poll(sv.s3[i], now, &sink);
			else
				r = dirsource_poll(sv.dir[i], now, &sink);
			if (r < 0 && r != -ECANCELED) {
				log_error("%s: stopping: %s", cfg->sources[i].name, strerror(-r));
				goto out;
			}
			sv.next_poll[i] = now + cfg->sources[i].poll_interval;
		}
		for (size_t i = 0; i < sv.nsources; i++)
			if (sv.next_poll[i] < next)
				next = sv.next_poll[i];
		if (deliver_until(&sv, next) < 0)
			goto out;
	}
	/* a clean stop: open throttle windows report, everything is delivered */
	r = dispatch_flush(&sv.d);
	if (r == 0)
		r = on_commit(&sv);
	for (int64_t until = time(NULL) + STOP_GRACE; r == 0 && delivery_busy(sv.delivery) && time(NULL) < until;)
		r = delivery_run(sv.delivery, 200);
	if (r == 0) {
		char msg[512];
		if (spool_compact(sv.spool, msg, sizeof(msg)) < 0)
			log_warning("spool: %s", msg);
		log_info("stopped");
		status = 0;
	}
out:
	if (sv.delivery) {
		const char *names[SPOOL_MAX_SINKS];
		size_t n = delivery_sink_names(cfg, names, SPOOL_MAX_SINKS);
		for (size_t i = 0; i < n && i < SPOOL_MAX_SINKS; i++) {
			struct delivery_sink_stats ds;
			delivery_stats(sv.delivery, i, &ds);
			log_info("sink %s: %lu sent, %lu retried, %lu dead letters, %lu evicted, %lu expired, "
				 "%lu filtered out", names[i], ds.sent, ds.retried, ds.dead, ds.evicted, ds.expired,
				 ds.filtered);
		}
	}
	if (sv.delivery && delivery_dropped(sv.delivery))
		log_error("%lu alerts were dropped because the spool was full", delivery_dropped(sv.delivery));
	for (size_t i = 0; i < sv.nsources; i++) {
		struct s3source_stats st;
		struct dirsource_stats ds;
		if (sv.dir && sv.dir[i]) {
			dirsource_stats(sv.dir[i], &ds);
			log_info("%s: %lu polls, %lu files, %lu failed", cfg->sources[i].name, ds.polls, ds.files,
				 ds.failed_files);
		}
		if (!sv.s3 || !sv.s3[i])
			continue;
		s3source_stats(sv.s3[i], &st);
		log_info("%s: %lu polls, %lu objects (%lu more read again to warm up), %lu failed; "
			 "%lu LIST and %lu GET requests, %lu retries",
			 cfg->sources[i].name, st.cycles, st.objects, st.warmup_objects, st.failed_objects, st.s3.lists,
			 st.s3.gets, st.s3.retries);
	}
	service_free(&sv);
	return status;
}
