/* replay.c: file list, worker pool, ordered dispatch (see replay.h).
 *
 * The pool is a ring of slots, one per file in flight.  A worker claims the
 * next file index, processes it into its slot and marks it done; the main
 * thread waits for slot `next`, dispatches it, frees it and moves on.  A
 * worker may run at most `window` files ahead of the dispatcher, which bounds
 * memory to `window` results (matches only: the text buffers are per worker).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/delivery.h"
#include "trailwatch/http.h"
#include "trailwatch/input.h"
#include "trailwatch/log.h"
#include "trailwatch/process.h"
#include "trailwatch/replay.h"
#include "trailwatch/spool.h"
#include "trailwatch/walk.h"

#define REPLAY_DELIVERY_WAIT 60	/* seconds replay --sinks waits for slow or failing sinks */

struct skip_counts {
	size_t digest, insight, other;
};

static bool accept_log(const char *path, void *ctx)
{
	struct skip_counts *sk = ctx;

	switch (input_classify(path)) {
	case INPUT_LOG:
		return true;
	case INPUT_DIGEST:
		sk->digest++;
		return false;
	case INPUT_INSIGHT:
		sk->insight++;
		return false;
	default:
		sk->other++;
		return false;
	}
}

struct totals {
	size_t files, bad_files, records, bad_records, bytes_stored, bytes_json, alerts;
	unsigned long *limited;	/* per rule: regular-expression matches stopped at the limit */
};

struct output {
	FILE *out;
	struct buf line;
	bool broken;		/* stdout closed: stop writing */
};

static int emit_alert(void *ctx, const struct alert *a)
{
	struct output *o = ctx;
	int r;

	if (o->broken)
		return 0;
	buf_reset(&o->line);
	r = alert_render(a, ALERT_MAX_BYTES, &o->line);
	if (r == -E2BIG) {
		log_error("alert %s (%s) from %s not written: larger than %u bytes even with its values cut",
			  a->id, a->rule->title, a->m->log_object ? a->m->log_object : "?", ALERT_MAX_BYTES);
		return 0;
	}
	if (r < 0)
		return r;
	if (r == 1)
		log_warning("alert %s (%s) from %s: values cut to fit %u bytes (see its \"truncated\" member)",
			    a->id, a->rule->title, a->m->log_object ? a->m->log_object : "?", ALERT_MAX_BYTES);
	if (fwrite(o->line.data, 1, o->line.len, o->out) != o->line.len) {
		o->broken = true;
		log_error("cannot write alerts: %s", strerror(errno));
	}
	return 0;
}

/* --sinks: alerts go through the spool to the configured sinks, as in run. */
static int sink_alert(void *ctx, const struct alert *a)
{
	return delivery_add(ctx, a);
}

static int open_sinks(const struct config *cfg, const struct ruleset *rs, struct spool **spool,
		      struct delivery **dl)
{
	char msg[600];
	int r = http_global_init() < 0 ? -ENOMEM : 0;

	if (r == 0)
		r = delivery_open(cfg, rs, spool, dl, msg, sizeof(msg));
	if (r < 0)
		log_error("sinks: %s", r == -ENOMEM ? "out of memory" : msg);
	return r;
}

/* Commits, then gives the sinks up to REPLAY_DELIVERY_WAIT seconds; what
 * they did not take stays in the spool for `trailwatch run`. */
static int deliver_spooled(struct spool *spool, struct delivery *dl)
{
	char msg[600];
	int r = spool_commit(spool, msg, sizeof(msg));

	if (r < 0) {
		log_error("spool: %s", msg);
		return r;
	}
	r = delivery_drain(dl, REPLAY_DELIVERY_WAIT * 1000L);
	if (r == 0 && delivery_busy(dl))
		log_warning("the sinks did not take every alert within %d s: the rest stays in the spool for run",
			    REPLAY_DELIVERY_WAIT);
	return r;
}

/* The summary's warning about regular expressions stopped at the match
 * limit (engine.h): those values counted as no match. */
static void report_limited(const struct ruleset *rs, const unsigned long *limited)
{
	unsigned long n = 0;
	char rules[512];

	for (size_t i = 0; i < rs->nrules; i++)
		n += limited[i];
	if (!n)
		return;
	engine_limited_text(rs, limited, rules, sizeof(rules));
	log_warning("%lu regular-expression match%s stopped at the match limit and counted as no match (%s): the pattern backtracks too much, see its warning from 'trailwatch check'",
		    n, n == 1 ? "" : "es", rules);
}

/* Reports one result and dispatches its matches. */
static int finish_file(struct dispatch *d, struct totals *t, struct file_result *res)
{
	for (size_t i = 0; i < res->nerrors; i++)
		log_error("%s", res->errors[i]);
	if (res->errors_dropped)
		log_error("%s: %zu more errors not shown", res->name, res->errors_dropped);
	t->files++;
	t->bad_files += file_result_failed(res);
	t->records += res->records;
	t->bad_records += res->bad_records;
	t->bytes_stored += res->bytes_stored;
	t->bytes_json += res->bytes_json;
	return dispatch_result(d, res);
}

struct slot {
	struct file_result res;
	int status;		/* processor's return */
	bool done;
};

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct ruleset *rs;
	const struct process_limits *lim;
	struct pathlist *files;
	struct slot *slots;
	unsigned long *limited;	/* per rule, the workers' counts added at their end */
	size_t window;
	size_t claimed;		/* next file index to hand out */
	size_t dispatched;	/* files the main thread has finished */
	bool stop;
};

static void *worker(void *arg)
{
	struct pool *p = arg;
	struct processor proc;
	int r = processor_init(&proc, p->rs, p->lim);

	for (;;) {
		size_t i;
		struct slot *s;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->claimed < p->files->n && p->claimed >= p->dispatched + p->window)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop || p->claimed >= p->files->n) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		i = p->claimed++;
		pthread_mutex_unlock(&p->lock);

		s = &p->slots[i % p->window];
		file_result_init(&s->res);
		s->status = r < 0 ? r : processor_run_file(&proc, p->files->paths[i], &s->res);

		pthread_mutex_lock(&p->lock);
		s->done = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	if (r == 0) {
		pthread_mutex_lock(&p->lock);
		engine_add_limited(&proc.engine, p->limited);
		pthread_mutex_unlock(&p->lock);
		processor_free(&proc);
	}
	return NULL;
}

static int run_parallel(const struct config *cfg, const struct ruleset *rs, struct pathlist *files,
			unsigned jobs, struct dispatch *d, struct totals *t)
{
	struct pool p;
	pthread_t *threads;
	unsigned started = 0;
	int r = 0;

	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	p.rs = rs;
	p.lim = &cfg->limits;
	p.files = files;
	p.limited = t->limited;
	/* A slot holds one file's matches, not its text (the buffers belong to
	 * the workers), so a wide window is cheap and absorbs uneven files. */
	p.window = 16 * (size_t)jobs;
	p.slots = calloc(p.window, sizeof(*p.slots));
	threads = calloc(jobs, sizeof(*threads));
	if (!p.slots || !threads) {
		r = -ENOMEM;
		goto out;
	}
	for (; started < jobs; started++) {
		if (pthread_create(&threads[started], NULL, worker, &p) != 0) {
			log_error("cannot start worker thread: %s", strerror(errno));
			break;
		}
	}
	if (started == 0) {
		r = -EAGAIN;
		goto out;
	}
	for (size_t i = 0; i < files->n; i++) {
		struct slot *s = &p.slots[i % p.window];

		pthread_mutex_lock(&p.lock);
		while (!s->done)
			pthread_cond_wait(&p.cond, &p.lock);
		pthread_mutex_unlock(&p.lock);

		if (s->status < 0 && r == 0)
			r = s->status;
		if (r == 0)
			r = finish_file(d, t, &s->res);
		file_result_free(&s->res);

		pthread_mutex_lock(&p.lock);
		s->done = false;
		p.dispatched = i + 1;
		if (r < 0)
			p.stop = true;
		pthread_cond_broadcast(&p.cond);
		pthread_mutex_unlock(&p.lock);
		if (r < 0)
			break;
	}
out:
	pthread_mutex_lock(&p.lock);
	p.stop = true;
	pthread_cond_broadcast(&p.cond);
	pthread_mutex_unlock(&p.lock);
	for (unsigned k = 0; k < started; k++)
		pthread_join(threads[k], NULL);
	/* Slots finished after a stop were never dispatched. */
	for (size_t k = 0; p.slots && k < p.window; k++)
		if (p.slots[k].done)
			file_result_free(&p.slots[k].res);
	free(threads);
	free(p.slots);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	return r;
}

static int run_serial(const struct config *cfg, const struct ruleset *rs, struct pathlist *files,
		      struct dispatch *d, struct totals *t)
{
	struct processor proc;
	int r = processor_init(&proc, rs, &cfg->limits);

	if (r < 0)
		return r;
	for (size_t i = 0; i < files->n && r == 0; i++) {
		struct file_result res;

		file_result_init(&res);
		r = processor_run_file(&proc, files->paths[i], &res);
		if (r == 0)
			r = finish_file(d, t, &res);
		file_result_free(&res);
	}
	engine_add_limited(&proc.engine, t->limited);
	processor_free(&proc);
	return r;
}

int replay_run(const struct config *cfg, const struct ruleset *rs, const struct replay_options *o)
{
	struct skip_counts sk = { 0 };
	struct pathlist files = { 0 };
	struct walk_skips unread = { 0 };
	struct totals t = { 0 };
	struct output out = { .out = o->out };
	struct dispatch d;
	struct spool *spool = NULL;
	struct delivery *dl = NULL;
	struct corr_stats cs;
	size_t missing = 0, nunread;
	int r, status = 0;

	signal(SIGPIPE, SIG_IGN);
	buf_init(&out.line, 0);
	for (size_t i = 0; i < o->npaths; i++) {
		char err[512];
		r = walk_files(o->paths[i], accept_log, &sk, &files, &unread, err, sizeof(err));
		if (r == -ENOMEM) {
			log_error("out of memory listing %s", o->paths[i]);
			walk_skips_free(&unread);
			pathlist_free(&files);
			return 2;
		}
		if (r < 0) {
			log_error("%s", err);
			missing++;
		}
	}
	/* Entries left out below a path are like missing paths: named, the rest read, exit status 1. */
	for (size_t i = 0; i < unread.n; i++)
		log_error("%s: not read: %s", unread.v[i].path, unread.v[i].why);
	if (unread.dropped)
		log_error("%zu more entries not read, not shown", unread.dropped);
	nunread = unread.n + unread.dropped;
	missing += nunread;
	walk_skips_free(&unread);
	/* Correlations need time order across accounts and regions, as a live
	 * poller sees it; key order would replay one region's day after
	 * another's. */
	pathlist_sort(&files, 0, input_cmp_delivery);
	if (o->sinks) {
		r = open_sinks(cfg, rs, &spool, &dl);
		if (r < 0) {
			pathlist_free(&files);
			return 2;
		}
	}
	t.limited = calloc(rs->nrules + 1, sizeof(*t.limited));
	r = t.limited ? dispatch_init(&d, rs, &cfg->corr, o->sinks ? sink_alert : emit_alert, o->sinks ? (void *)dl : &out) :
			-ENOMEM;
	if (r < 0) {
		log_error("out of memory");
		free(t.limited);
		delivery_free(dl);
		spool_close(spool);
		pathlist_free(&files);
		return 2;
	}
	if (o->jobs > 1 && files.n > 1)
		r = run_parallel(cfg, rs, &files, o->jobs, &d, &t);
	else
		r = run_serial(cfg, rs, &files, &d, &t);
	if (r == 0)
		r = dispatch_flush(&d);
	if (r == 0 && o->sinks)
		r = deliver_spooled(spool, dl);
	t.alerts = d.alerts;
	correlator_stats(d.corr, &cs);
	if (fflush(o->out) != 0 && !out.broken)
		log_error("cannot write alerts: %s", strerror(errno));
	if (r < 0) {
		log_error("replay stopped: %s", strerror(-r));
		status = 2;
	} else if (t.bad_files || missing) {
		status = 1;
	}

	log_info("replay: %zu files, %zu records, %zu alerts; %zu files with errors, %zu bad records; "
		 "skipped %zu digest, %zu insight, %zu other files; %zu entries not read",
		 t.files, t.records, t.alerts, t.bad_files, t.bad_records, sk.digest, sk.insight, sk.other,
		 nunread);
	for (size_t i = 0; i < rs->nrules; i++) {
		struct corr_cap cap;

		correlator_cap(d.corr, i, &cap);
		if (cap.evicted)
			log_warning("correlation \"%s\" (%s): %zu groups evicted at correlation.max_groups: its table "
				    "was full, and the groups that counted least made room for new ones (docs/rules.md)",
				    rs->rules[i]->title, rs->rules[i]->id ? rs->rules[i]->id : "no id", cap.evicted);
	}
	if (cs.groups_refused || cs.entries_dropped)
		log_warning("correlation limits reached: %zu groups not made (a throttle at correlation.max_groups, "
			    "whose alerts then pass), "
			    "%zu entries dropped (correlation.max_entries_per_group; seen_before memories at 10 x correlation.max_groups)",
			    cs.groups_refused, cs.entries_dropped);
	if (cs.too_late)
		log_warning("%zu events arrived later than correlation.lateness and were not counted",
			    cs.too_late);
	if (cs.no_time)
		log_warning("%zu matched events had no readable eventTime and were not correlated", cs.no_time);
	if (cs.suppressed)
		log_info("%zu alerts held back by throttles (reported in summary alerts)", cs.suppressed);
	report_limited(rs, t.limited);
	free(t.limited);
	dispatch_free(&d);
	delivery_free(dl);
	spool_close(spool);
	pathlist_free(&files);
	buf_free(&out.line);
	return status;
}
