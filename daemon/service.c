/* service.c: `trailwatch run` (see service.h).
 *
 * One thread does everything, in this order per poll of a source: fetch new
 * objects (several GETs in flight), detect on each, spool its alerts, commit
 * the spool, move the checkpoint (s3source), deliver the spool to the sinks
 * (delivery.c), which also get the time between polls, and a little of the
 * time an S3 source waits inside a poll (source_waits).
 *
 * What a configuration decides (the rules, the engine's state, the sources)
 * is one `struct gen`; a reload builds a new one beside the old and swaps
 * them only when the new one is complete.  The spool and the sinks are
 * reopened for the new configuration at the swap.
 */
#include <errno.h>
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
#include "trailwatch/notify.h"
#include "trailwatch/process.h"
#include "trailwatch/runsummary.h"
#include "trailwatch/s3source.h"
#include "trailwatch/service.h"
#include "trailwatch/spool.h"
#include "trailwatch/statefile.h"

#define STOP_GRACE 5		/* seconds a stop gives the sinks to take what is spooled */
#define SETTLE_MS (DELIVERY_TIMEOUT_MS + 1000)	/* a reload waits this long for requests in flight */
#define STATUS_EVERY_MS 5000	/* STATUS= refresh */
#define COMPACT_QUIET_MS 60000	/* a quiet spool's ack log is folded into its state at most this often */
#define WAIT_DELIVERY_EVERY_MS 100	/* while a source waits for S3, the sinks get a turn this often */
#define WAIT_DELIVERY_MS 10	/* of at most this long */
#define CAPS_EVERY_MS 60000	/* after its first time, a correlation at its cap is logged this often */
#define MEMORY_ROOM (512ull << 20)	/* beside the objects: rules, ordinary correlation state, the spool */
#define LIMITED_EVERY_MS 60000	/* regex matches stopped at the limit: a warning at most this often */

static volatile sig_atomic_t stop_requested, reload_requested;
/* Set by every signal that wants the loop back: the sources stop after the
 * object in hand when it is set. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
	interrupted = 1;
}

/* The credentials of one source, as s3.h asks for them. */
struct source_creds {
	const char *name;
	struct creds_provider *p;
	int64_t warned;			/* last "refresh failed" warning */
};

/* Counters of a generation; objects, failed, alerts, evicted and
 * regex_limited outlive it. */
struct totals {
	unsigned long objects, failed, alerts;
	unsigned long evicted;		/* correlation groups evicted at correlation.max_groups */
	unsigned long regex_limited;	/* regex matches stopped at the match limit (engine.h) */
	unsigned long dropped;		/* correlation entries dropped at their caps (corr_stats) */
	int64_t newest;			/* the newest S3 object's time, 0: none */
};

/* What one configuration decides. */
struct gen {
	struct config *cfg;
	struct ruleset *rs;
	struct processor proc;
	bool proc_ready;
	struct dispatch d;
	bool dispatch_ready;
	struct source_creds *creds;
	struct s3source **s3;		/* per source: one of these two */
	struct dirsource **dir;
	int64_t *next_poll;
	size_t nsources;
};

struct service {
	struct gen g;
	struct spool *spool;
	struct delivery *delivery;
	const struct service_loader *loader;
	const char *source;		/* the source being polled, for messages */
	struct totals past;		/* of the generations before g */
	long long status_ms;		/* when STATUS= was last sent */
	long long compact_ms;		/* when the spool was last compacted while quiet */
	long long waited_ms;		/* when the sinks last had a turn in source_waits */
	int wait_error;			/* the spool failed in source_waits: the loop stops */
	long long caps_ms;		/* when a correlation at its cap was last logged */
	unsigned long limited_logged;	/* regex_limited when last warned about */
	long long limited_ms;		/* when that was */
	unsigned long dropped_logged;	/* likewise for correlation entries dropped */
	long long dropped_ms;
	struct runsummary summary;	/* the counts of the sinks and sources reloads replaced */
};

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

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

/* ---- status ------------------------------------------------------------- */

static void gen_totals(const struct gen *g, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	if (g->dispatch_ready) {
		struct corr_stats cs;

		correlator_stats(g->d.corr, &cs);
		t->alerts = g->d.alerts;
		t->evicted = cs.groups_evicted;
		t->dropped = cs.entries_dropped;
	}
	if (g->proc_ready)
		t->regex_limited = g->proc.engine.nlimited;
	for (size_t i = 0; i < g->nsources; i++) {
		struct s3source_stats st;
		struct dirsource_stats ds;

		if (g->s3 && g->s3[i]) {
			s3source_stats(g->s3[i], &st);
			t->objects += st.objects;
			t->failed += st.failed_objects;
			if (st.newest > t->newest)
				t->newest = st.newest;
		}
		if (g->dir && g->dir[i]) {
			dirsource_stats(g->dir[i], &ds);
			t->objects += ds.files;
			t->failed += ds.failed_files;
		}
	}
}

/* "2 sources, 3204 objects, 17 alerts, lag 42s, soc-slack: 2 pending" */
static void status_line(const struct service *sv, char *out, size_t size)
{
	const struct gen *g = &sv->g;
	struct spool_stats st;
	struct totals t;
	size_t len;

	gen_totals(g, &t);
	snprintf(out, size, "%zu source%s, %lu objects, %lu alerts", g->nsources, g->nsources == 1 ? "" : "s",
		 sv->past.objects + t.objects, sv->past.alerts + t.alerts);
	len = strlen(out);
	if (t.failed + sv->past.failed && len < size)
		len += (size_t)snprintf(out + len, size - len, ", %lu unreadable", t.failed + sv->past.failed);
	if (t.evicted + sv->past.evicted && len < size)
		len += (size_t)snprintf(out + len, size - len, ", %lu correlation groups evicted",
					t.evicted + sv->past.evicted);
	if (t.newest && len < size)
		len += (size_t)snprintf(out + len, size - len, ", lag %llds", (long long)(time(NULL) - t.newest));
	if (!sv->spool)
		return;
	spool_stats(sv->spool, &st);	/* its sinks are the configured ones, by name */
	for (size_t i = 0; i < st.nsinks && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, ", %s: %llu pending", st.sink[i].name,
					(unsigned long long)st.sink[i].pending);
}

/* Correlations whose table is full (correlation.max_groups): an error the
 * first time for each rule, then one a minute at most while it goes on
 * evicting (docs/rules.md, "At the limit"). */
static void report_caps(struct service *sv)
{
	const struct gen *g = &sv->g;
	bool due = now_ms() - sv->caps_ms >= CAPS_EVERY_MS;

	if (!g->dispatch_ready)
		return;
	for (size_t i = 0; i < g->rs->nrules; i++) {
		const struct rule *r = g->rs->rules[i];
		struct corr_cap cap;

		correlator_cap(g->d.corr, i, &cap);
		if (!cap.unreported || (cap.unreported < cap.evicted && !due))
			continue;
		if (cap.unreported == cap.evicted)
			log_error("correlation \"%s\" (%s): its table is full (%zu groups, correlation.max_groups): each "
				  "new group now evicts the one that counts least, %zu so far; made-up group-by values "
				  "(role session names, say) can do this on purpose (docs/rules.md, \"At the limit\")",
				  r->title, r->id ? r->id : "no id", g->cfg->corr.max_groups, cap.evicted);
		else
			log_error("correlation \"%s\" (%s): %zu more groups evicted at correlation.max_groups since the "
				  "last report, %zu in all", r->title, r->id ? r->id : "no id", cap.unreported, cap.evicted);
		correlator_cap_reported(g->d.corr, i);
		sv->caps_ms = now_ms();
	}
}

/* The exit summary: each correlation that evicted groups, with its count
 * (a rule changed by a reload started again from 0; STATUS= has them all). */
static void log_cap_stats(const struct service *sv)
{
	const struct gen *g = &sv->g;

	for (size_t i = 0; g->dispatch_ready && i < g->rs->nrules; i++) {
		struct corr_cap cap;

		correlator_cap(g->d.corr, i, &cap);
		if (cap.evicted)
			log_warning("correlation \"%s\" (%s): %zu groups evicted at correlation.max_groups",
				    g->rs->rules[i]->title, g->rs->rules[i]->id ? g->rs->rules[i]->id : "no id",
				    cap.evicted);
	}
}

/* The loop's heartbeat: the watchdog, and STATUS= now and then.
 * progressed: whether the loop got somewhere since the last beat; only
 * then does the watchdog hear of it (service.md, "Watchdog"). */
static void heartbeat(struct service *sv, bool progressed)
{
	char status[512];

	if (progressed)
		notify_progress();
	notify_keepalive();
	report_caps(sv);
	if (now_ms() - sv->status_ms < STATUS_EVERY_MS)
		return;
	sv->status_ms = now_ms();
	status_line(sv, status, sizeof(status));
	notify_status(status);
}

/* A turn of the loop, an object processed, a commit: progress. */
static void tick(struct service *sv)
{
	heartbeat(sv, true);
}

/* s3.h's on_wait: an S3 source waits inside a poll (requests in flight, a
 * retry's backoff).  The watchdog hears of the source's progress, and the
 * sinks get a short turn now and then, so alerts already committed go out
 * while a slow or silent endpoint holds the poll.  A spool failure here
 * stops the source (interrupted) and then the loop (poll_sources). */
static void source_waits(void *ctx, bool progressed)
{
	struct service *sv = ctx;
	long long now = now_ms();
	int r;

	heartbeat(sv, progressed);
	if (!sv->delivery || sv->wait_error || now - sv->waited_ms < WAIT_DELIVERY_EVERY_MS)
		return;	/* (no delivery yet while the first sources are set up) */
	sv->waited_ms = now;
	r = delivery_run(sv->delivery, WAIT_DELIVERY_MS);
	if (r < 0) {
		sv->wait_error = r;
		interrupted = 1;
	}
}

/* Regular-expression matches stopped at the match limit count as no match
 * (engine.h): said at most once a LIMITED_EVERY_MS, with how many since
 * the last time; final: the exit summary's total. */
static void report_limited(struct service *sv, bool final)
{
	const struct gen *g = &sv->g;
	unsigned long n = sv->past.regex_limited + (g->proc_ready ? g->proc.engine.nlimited : 0);
	char rules[512] = "none";

	if (final ? n == 0 : n == sv->limited_logged || now_ms() - sv->limited_ms < LIMITED_EVERY_MS)
		return;
	if (g->proc_ready && g->proc.engine.nlimited)
		engine_limited_text(g->rs, g->proc.engine.limited, rules, sizeof(rules));
	if (final)
		log_warning("%lu regular-expression match%s stopped at the match limit in all and counted as no match (by rule, since the rules were loaded: %s)",
			    n, n == 1 ? "" : "es", rules);
	else
		log_warning("%lu more regular-expression match%s stopped at the match limit and counted as no match: the pattern backtracks too much (by rule, since the rules were loaded: %s)",
			    n - sv->limited_logged, n - sv->limited_logged == 1 ? "" : "es", rules);
	sv->limited_logged = n;
	sv->limited_ms = now_ms();
}

/* Correlation entries dropped at their caps (a window's entries past
 * correlation.max_entries_per_group, the oldest half of a seen_before
 * memory at ten times correlation.max_groups): what a rule no longer sees.
 * Said at most once a CAPS_EVERY_MS, with how many since the last time;
 * final: the exit summary's total. */
static void report_dropped(struct service *sv, bool final)
{
	struct corr_stats cs = { 0 };
	unsigned long n;

	if (sv->g.dispatch_ready)
		correlator_stats(sv->g.d.corr, &cs);
	n = sv->past.dropped + cs.entries_dropped;
	if (final ? n == 0 : n == sv->dropped_logged || now_ms() - sv->dropped_ms < CAPS_EVERY_MS)
		return;
	if (final)
		log_warning("%lu correlation entries dropped at their caps in all (correlation.max_entries_per_group; "
			    "seen_before memories at 10 x correlation.max_groups)", n);
	else
		log_warning("%lu more correlation entries dropped at their caps: the oldest of a group's window past "
			    "correlation.max_entries_per_group, or the oldest half of a seen_before memory at 10 x "
			    "correlation.max_groups; what they held no longer counts (docs/rules.md, \"At the limit\")",
			    n - sv->dropped_logged);
	sv->dropped_logged = n;
	sv->dropped_ms = now_ms();
}

/* ---- the sink the sources feed ------------------------------------------ */

/* dispatch -> spool */
static int spool_alert(void *ctx, const struct alert *a)
{
	struct service *sv = ctx;

	return delivery_add(sv->delivery, a);
}

static int on_object(void *ctx, const char *name, const char *data, size_t len)
{
	struct service *sv = ctx;
	struct log_about about = { .source = sv->source, .object = name };
	struct file_result res;
	int r;

	tick(sv);
	file_result_init(&res);
	r = processor_run_buffer(&sv->g.proc, name, data, len, &res);
	if (r == 0) {
		for (size_t i = 0; i < res.nerrors; i++)
			log_about(LOG_LEVEL_ERROR, &about, "%s", res.errors[i]);
		if (res.errors_dropped)
			log_about(LOG_LEVEL_ERROR, &about, "%s: %zu more errors not shown", name, res.errors_dropped);
		log_debug("%s: %zu records, %zu matches", name, res.records, res.nmatches);
		report_limited(sv, false);
		r = dispatch_result(&sv->g.d, &res);
		if (r == 0)
			report_dropped(sv, false);
	}
	if (r < 0)
		log_about(LOG_LEVEL_ERROR, &about, "%s: not processed: %s", name, strerror(-r));
	file_result_free(&res);
	return r;
}

static int on_commit(void *ctx)
{
	struct service *sv = ctx;
	char msg[512];
	int r = spool_commit(sv->spool, msg, sizeof(msg));

	tick(sv);
	if (r < 0) {
		log_error("spool: %s", msg);
		return r;
	}
	return delivery_run(sv->delivery, 0);	/* alerts go out as soon as they are durable */
}

/* ---- one configuration's parts ------------------------------------------- */

static void gen_free(struct gen *g)
{
	for (size_t i = 0; i < g->nsources; i++) {
		if (g->s3)
			s3source_free(g->s3[i]);
		if (g->dir)
			dirsource_free(g->dir[i]);
		if (g->creds)
			creds_provider_free(g->creds[i].p);
	}
	free(g->s3);
	free(g->dir);
	free(g->creds);
	free(g->next_poll);
	if (g->dispatch_ready)
		dispatch_free(&g->d);
	if (g->proc_ready)
		processor_free(&g->proc);
	ruleset_free(g->rs);
	config_free(g->cfg);
	memset(g, 0, sizeof(*g));
}

/* How much of the past rebuilds the stateful rules: the longest
 * correlation window or throttle, plus the lateness; 0 without any. */
static int64_t warmup_span(const struct gen *g)
{
	int64_t span = 0;

	for (size_t i = 0; i < g->rs->nrules; i++) {
		const struct rule *r = g->rs->rules[i];
		if (r->corr && r->corr->timespan > span)
			span = r->corr->timespan;
		if (r->throttle && r->throttle->timespan > span)
			span = r->throttle->timespan;
	}
	return span ? span + g->cfg->corr.lateness : 0;
}

/* The cgroup (v2) memory.max over this process, the smallest of its own
 * group's and its parents' (MemoryMax= of the unit and its slice), or 0
 * when there is none or it cannot be read. */
static unsigned long long memory_max(void)
{
	char line[2048], path[2200];
	unsigned long long least = 0, v;
	FILE *f = fopen("/proc/self/cgroup", "re");
	char *group = NULL, *slash;

	if (!f)
		return 0;
	while (!group && fgets(line, sizeof(line), f))
		if (strncmp(line, "0::/", 4) == 0)
			group = line + 3;
	fclose(f);
	if (!group)
		return 0;
	group[strcspn(group, "\n")] = '\0';
	for (;;) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", group);
		f = fopen(path, "re");
		if (f) {
			if (fscanf(f, "%llu", &v) == 1 && (least == 0 || v < least))
				least = v;	/* "max" reads as no number */
			fclose(f);
		}
		slash = strrchr(group, '/');
		if (!slash || slash == group)
			break;
		*slash = '\0';
	}
	return least;
}

/* An error when the limits let one object take more memory than the
 * service may have: the kernel would kill it on that object, and again on
 * the same object after every restart. */
static void check_memory(const struct config *cfg)
{
	unsigned long long most = memory_max(), need = config_object_memory(cfg);

	if (most && need + MEMORY_ROOM > most)
		log_error("memory: objects within limits.max_decompressed_size and limits.max_object_size (times the "
			  "GETs in flight) can take %llu MiB, and the rules and their state need room beside them, "
			  "but this service may use only %llu MiB (MemoryMax=): a large object would get it killed, "
			  "again after each restart; raise MemoryMax= or lower the limits (docs/service.md, \"Memory\")",
			  need >> 20, most >> 20);
}

/* Sets up the engine and the sources of g->cfg and g->rs; every failure
 * is logged.  warm: whether sources re-read the past to rebuild the
 * correlation state (at start; a reload keeps that state instead). */
static int gen_start(struct service *sv, struct gen *g, bool warm)
{
	const struct config *cfg = g->cfg;
	char msg[CREDS_MESSAGE_SIZE];
	int r;

	if (cfg->nsources == 0) {
		log_error("%s: no sources configured: nothing to watch (see 'sources:' in docs/config.md)",
			  cfg->path ? cfg->path : "built-in configuration");
		return -EINVAL;
	}
	check_memory(cfg);
	r = processor_init(&g->proc, g->rs, &cfg->limits);
	if (r < 0)
		return r;
	g->proc_ready = true;
	r = dispatch_init(&g->d, g->rs, &cfg->corr, spool_alert, sv);
	if (r < 0)
		return r;
	g->dispatch_ready = true;
	g->creds = calloc(cfg->nsources, sizeof(*g->creds));
	g->s3 = calloc(cfg->nsources, sizeof(*g->s3));
	g->dir = calloc(cfg->nsources, sizeof(*g->dir));
	g->next_poll = calloc(cfg->nsources, sizeof(*g->next_poll));
	if (!g->creds || !g->s3 || !g->dir || !g->next_poll)
		return -ENOMEM;
	g->nsources = cfg->nsources;
	for (size_t i = 0; i < g->nsources; i++) {
		const struct source_config *src = &cfg->sources[i];
		struct log_about about = { .source = src->name };
		struct creds_options co = { .region = src->region, .role_arn = src->role_arn,
					    .external_id = src->external_id, .on_wait = source_waits,
					    .wait_ctx = sv, .cancel = &stop_requested };
		struct s3source_options so = { 0 };
		const struct creds *c;

		notify_progress();
		notify_keepalive();
		if (src->type == SOURCE_DIR) {
			r = dirsource_new(src, cfg->state_dir, cfg->limits.input.max_object, &interrupted,
					  &g->dir[i], msg, sizeof(msg));
			if (r < 0) {
				log_about(LOG_LEVEL_ERROR, &about, "%s: %s", src->name, msg);
				return r;
			}
			continue;
		}
		g->creds[i].name = src->name;
		r = creds_provider_new(&co, &g->creds[i].p, msg, sizeof(msg));
		if (r == 0) {
			r = creds_get(g->creds[i].p, time(NULL), &c, msg, sizeof(msg));
			if (r >= 0)
				log_about(LOG_LEVEL_INFO, &about, "%s: AWS credentials from %s", src->name, c->source);
		}
		if (r < 0) {
			log_about(LOG_LEVEL_ERROR, &about, "%s: %s", src->name, msg);
			return r;
		}
		so.state_dir = cfg->state_dir;
		so.step = cfg->corr.lateness / 2;
		so.warmup = warm ? warmup_span(g) : 0;
		so.max_object = cfg->limits.input.max_object;
		so.creds = get_creds;
		so.creds_ctx = &g->creds[i];
		so.stop = &interrupted;
		so.on_wait = source_waits;
		so.wait_ctx = sv;
		r = s3source_new(src, &so, &g->s3[i], msg, sizeof(msg));
		if (r < 0) {
			log_about(LOG_LEVEL_ERROR, &about, "%s: %s", src->name, msg);
			return r;
		}
	}
	return 0;
}

/* ---- the spool and the sinks --------------------------------------------- */

static void close_delivery(struct service *sv)
{
	delivery_free(sv->delivery);
	spool_close(sv->spool);
	sv->delivery = NULL;
	sv->spool = NULL;
}

/* While delivery_add waits for room in a full spool, the sinks are taking
 * alerts, or a stuck one gives some up within DELIVERY_STUCK_MS: progress. */
static void delivery_waiting(void *ctx)
{
	tick(ctx);
}

/* Opens the spool and the sinks of cfg; failures other than -ENOMEM are
 * logged (the caller says "out of memory"). */

static int open_delivery(struct service *sv, const struct config *cfg, const struct ruleset *rs)
{
	char msg[CREDS_MESSAGE_SIZE];
	int r = delivery_open(cfg, rs, &sv->spool, &sv->delivery, msg, sizeof(msg));

	if (r < 0 && r != -ENOMEM)
		log_error("%s", msg);
	if (r == 0)
		delivery_set_waiting(sv->delivery, delivery_waiting, sv);
	return r;
}

/* Lets the requests in flight finish (so that no alert is sent twice
 * across a reload) and commits the spool. */
static int settle_delivery(struct service *sv)
{
	char msg[512];
	long long until = now_ms() + SETTLE_MS;
	int r = spool_commit(sv->spool, msg, sizeof(msg));

	if (r < 0) {
		log_error("spool: %s", msg);
		return r;
	}
	while (r == 0 && delivery_in_flight(sv->delivery) && now_ms() < until) {
		notify_progress();
		notify_keepalive();
		r = delivery_run(sv->delivery, 200);
	}
	return r;
}

/* The exit summary's lines of g's sources (their counts and those of the
 * sources a reload replaced); keep: not logged, kept for the summary,
 * before g is freed at a reload. */
static void source_stats(struct service *sv, const struct gen *g, bool keep)
{
	for (size_t i = 0; i < g->nsources; i++) {
		const char *name = g->cfg->sources[i].name;
		struct s3source_stats st;
		struct dirsource_stats ds;

		if (g->dir && g->dir[i]) {
			dirsource_stats(g->dir[i], &ds);
			if (keep)
				runsummary_keep_dir(&sv->summary, name, &ds);
			else
				runsummary_log_dir(&sv->summary, name, &ds);
		}
		if (g->s3 && g->s3[i]) {
			s3source_stats(g->s3[i], &st);
			if (keep)
				runsummary_keep_s3(&sv->summary, name, &st);
			else
				runsummary_log_s3(&sv->summary, name, &st);
		}
	}
	if (!keep)
		runsummary_log_removed_sources(&sv->summary);
}

/* ---- reload ------------------------------------------------------------- */

/* SIGHUP: a new generation, or the old one kept.  Returns 0, or a negative
 * errno when the service cannot go on (the spool could not be reopened for
 * either configuration). */
static int reload(struct service *sv)
{
	struct gen ng;
	struct diag d;
	char status[512];
	size_t kept;
	struct totals t;
	int r;

	memset(&ng, 0, sizeof(ng));
	notify_reloading("reloading the configuration and the rules");
	if (!sv->loader) {
		log_warning("reload requested, but this service cannot reload: ignored");
		goto done;
	}
	log_info("reloading %s", sv->g.cfg->path ? sv->g.cfg->path : "the built-in configuration");
	diag_init(&d);
	r = sv->loader->load(sv->loader->ctx, &ng.cfg, &ng.rs, &d);
	if (r < 0) {
		for (size_t i = 0; i < d.count; i++)
			log_error("%s", d.messages[i]);
		if (d.dropped)
			log_error("%zu more errors not shown", d.dropped);
		if (r == -ENOMEM)
			log_error("out of memory");
		log_error("reload failed: %zu error%s; the previous configuration and rules keep running",
			  diag_errors(&d), diag_errors(&d) == 1 ? "" : "s");
		diag_free(&d);
		ruleset_free(ng.rs);
		config_free(ng.cfg);
		goto done;
	}
	for (size_t i = 0; i < d.count; i++)
		log_warning("%s", d.messages[i]);	/* what loaded has only warnings */
	diag_free(&d);
	r = gen_start(sv, &ng, false);
	if (r < 0) {
		if (r == -ENOMEM)
			log_error("out of memory");
		log_error("reload failed: the new sources could not be set up; the previous configuration and rules keep running");
		gen_free(&ng);
		goto done;
	}
	/* the point of no return for the engine: the sinks move over */
	r = settle_delivery(sv);
	if (r < 0) {
		gen_free(&ng);
		return r;
	}
	runsummary_keep_sinks(&sv->summary, sv->g.cfg, sv->delivery);
	close_delivery(sv);
	if (open_delivery(sv, ng.cfg, ng.rs) < 0) {
		log_error("reload failed: the new sinks could not be opened; the previous configuration and rules keep running");
		gen_free(&ng);
		r = open_delivery(sv, sv->g.cfg, sv->g.rs);
		if (r < 0) {
			log_error("the previous sinks cannot be opened again either: stopping");
			return r;
		}
		goto done;
	}
	kept = dispatch_adopt(&ng.d, &sv->g.d);
	/* throttles of rules that changed or went away report what they held
	 * back, as at a stop (the adopted ones moved: nothing of theirs left) */
	r = dispatch_flush(&sv->g.d);
	if (r == 0)
		r = on_commit(sv);
	gen_totals(&sv->g, &t);
	sv->past.objects += t.objects;
	sv->past.failed += t.failed;
	sv->past.alerts += t.alerts;
	sv->past.evicted += t.evicted;
	sv->past.regex_limited += t.regex_limited;
	sv->past.dropped += t.dropped;
	source_stats(sv, &sv->g, true);
	gen_free(&sv->g);
	sv->g = ng;
	log_info("reloaded: %zu source%s, %zu rules (%zu kept their correlation and throttle state)",
		 sv->g.nsources, sv->g.nsources == 1 ? "" : "s", sv->g.rs->nrules, kept);
	if (r < 0)
		return r;	/* the spool failed (logged) */
done:
	status_line(sv, status, sizeof(status));
	notify_ready(status);
	return 0;
}

/* ---- the loop ----------------------------------------------------------- */

/* Nothing to deliver: acks since the last compaction are folded into the
 * spool's state (at most once a COMPACT_QUIET_MS), so that a lost or
 * truncated acks.log costs at most that many repeats. */
static void compact_when_quiet(struct service *sv)
{
	struct spool_stats st;
	char msg[512];

	if (now_ms() - sv->compact_ms < COMPACT_QUIET_MS)
		return;
	sv->compact_ms = now_ms();
	spool_stats(sv->spool, &st);
	if (st.acks_logged && spool_compact(sv->spool, msg, sizeof(msg)) < 0)
		log_warning("spool: %s", msg);
}

/* Until `until` (wall clock) or a signal, the sinks get the time. */
static int deliver_until(struct service *sv, int64_t until)
{
	while (!interrupted && time(NULL) < until) {
		int r = delivery_run(sv->delivery, 200);
		if (r < 0)
			return r;
		tick(sv);
		if (!delivery_busy(sv->delivery)) {
			struct timespec ts = { 0, 200 * 1000000L };
			compact_when_quiet(sv);
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

/* Polls every source that is due.  Returns 0 or a fatal negative errno. */
static int poll_sources(struct service *sv)
{
	struct gen *g = &sv->g;
	struct source_sink sink = { .object = on_object, .commit = on_commit, .ctx = sv };
	int64_t now = time(NULL);
	int r = 0;

	for (size_t i = 0; i < g->nsources && !interrupted; i++) {
		if (now < g->next_poll[i])
			continue;
		sv->source = g->cfg->sources[i].name;
		if (g->s3[i])
			r = s3source_poll(g->s3[i], now, &sink);
		else
			r = dirsource_poll(g->dir[i], now, &sink);
		sv->source = NULL;
		if (sv->wait_error)
			return sv->wait_error;	/* the spool failed while the source waited (logged) */
		if (r == -ECANCELED)
			return 0;	/* a signal: this source is polled again after it */
		if (r == -ENOSPC || r == -EDQUOT) {
			/* the disk is full: the spool could not commit, so no
			 * checkpoint moved; delivery goes on (acks free space)
			 * and this source is polled again at its interval */
			struct log_about about = { .source = g->cfg->sources[i].name, .error = -r };
			log_about(LOG_LEVEL_ERROR, &about,
				  "%s: new objects wait: the spool cannot be written (%s); what is spooled is still delivered",
				  g->cfg->sources[i].name, strerror(-r));
			r = 0;
		}
		if (r < 0) {
			struct log_about about = { .source = g->cfg->sources[i].name, .error = -r };
			log_about(LOG_LEVEL_ERROR, &about, "%s: stopping: %s", g->cfg->sources[i].name,
				  strerror(-r));
			return r;
		}
		g->next_poll[i] = now + g->cfg->sources[i].poll_interval;
	}
	return 0;
}

static int64_t next_due(const struct gen *g)
{
	int64_t next = INT64_MAX;

	for (size_t i = 0; i < g->nsources; i++)
		if (g->next_poll[i] < next)
			next = g->next_poll[i];
	return next;
}

int service_run(struct config *cfg, struct ruleset *rs, const struct service_loader *loader)
{
	struct service sv;
	struct sigaction sa;
	char status[512];
	int r, status_code = 1;

	memset(&sv, 0, sizeof(sv));
	sv.g.cfg = cfg;
	sv.g.rs = rs;
	sv.loader = loader;
	sv.compact_ms = now_ms();
	notify_init();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	/* SA_RESTART: a write to stdout that a signal interrupts goes on,
	 * instead of leaving half an alert line behind */
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (http_global_init() < 0) {
		log_error("cannot initialise libcurl");
		goto out;
	}
	r = open_delivery(&sv, cfg, rs);
	if (r == 0)
		r = gen_start(&sv, &sv.g, true);
	if (r == -ENOMEM)
		log_error("out of memory");
	if (r < 0)
		goto out;
	/* alerts left undelivered by the last run go first */
	if (delivery_run(sv.delivery, 0) < 0)
		goto out;
	log_info("watching %zu source%s; state in %s", sv.g.nsources, sv.g.nsources == 1 ? "" : "s",
		 sv.g.cfg->state_dir);
	status_line(&sv, status, sizeof(status));
	notify_ready(status);
	sv.status_ms = now_ms();
	while (!stop_requested) {
		if (reload_requested) {
			reload_requested = 0;
			interrupted = stop_requested;
			if (reload(&sv) < 0)
				goto out;
			continue;
		}
		if (poll_sources(&sv) < 0 || deliver_until(&sv, next_due(&sv.g)) < 0)
			goto out;
	}
	/* a clean stop: open throttle windows report, everything is delivered */
	notify_stopping("stopping: delivering what is spooled");
	r = dispatch_flush(&sv.g.d);
	if (r == 0)
		r = on_commit(&sv);
	if (r == 0)
		r = delivery_drain(sv.delivery, STOP_GRACE * 1000L);
	if (r == 0) {
		char msg[512];
		if (spool_compact(sv.spool, msg, sizeof(msg)) < 0)
			log_warning("spool: %s", msg);
		log_info("stopped");
		status_code = 0;
	}
out:
	if (status_code != 0)
		notify_stopping("failed");
	runsummary_log_sinks(&sv.summary, sv.g.cfg, sv.delivery);
	source_stats(&sv, &sv.g, false);
	log_cap_stats(&sv);
	report_limited(&sv, true);
	report_dropped(&sv, true);
	close_delivery(&sv);
	gen_free(&sv.g);
	runsummary_free(&sv.summary);
	return status_code;
}
