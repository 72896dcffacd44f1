/* runsummary.c: run's exit summary, across reloads (see runsummary.h).
 *
 * The lines are the ones run always logged at exit, with the same journal
 * fields (TRAILWATCH_SENT, TRAILWATCH_OBJECTS, ...); what is new is that the
 * counts of the sinks and sources a reload replaced are added in.  Names are
 * few (at most SPOOL_MAX_SINKS sinks, a handful of sources): plain arrays
 * searched in order.
 */
#include <stdlib.h>
#include <string.h>

#include "trailwatch/array.h"
#include "trailwatch/log.h"
#include "trailwatch/runsummary.h"
#include "trailwatch/spool.h"

static void add_sink_stats(struct delivery_sink_stats *to, const struct delivery_sink_stats *from)
{
	to->sent += from->sent;
	to->retried += from->retried;
	to->dead += from->dead;
	to->filtered += from->filtered;
	to->evicted += from->evicted;
	to->expired += from->expired;
	to->lost += from->lost;
	to->redelivered += from->redelivered;
}

/* Counters add up; pending_retry is the state at the end, newest the latest. */
static void add_s3_stats(struct s3source_stats *to, const struct s3source_stats *from)
{
	to->cycles += from->cycles;
	to->rounds += from->rounds;
	to->discoveries += from->discoveries;
	to->leaves += from->leaves;
	to->objects += from->objects;
	to->warmup_objects += from->warmup_objects;
	to->failed_objects += from->failed_objects;
	to->pending_retry = from->pending_retry;
	if (from->newest > to->newest)
		to->newest = from->newest;
	to->s3.lists += from->s3.lists;
	to->s3.gets += from->s3.gets;
	to->s3.retries += from->s3.retries;
	to->s3.throttled += from->s3.throttled;
	to->s3.failures += from->s3.failures;
	to->s3.bytes += from->s3.bytes;
}

static void add_dir_stats(struct dirsource_stats *to, const struct dirsource_stats *from)
{
	to->polls += from->polls;
	to->files += from->files;
	to->failed_files += from->failed_files;
}

static struct runsummary_sink *find_sink(const struct runsummary *s, const char *name)
{
	for (size_t i = 0; i < s->nsinks; i++)
		if (strcmp(s->sinks[i].name, name) == 0)
			return &s->sinks[i];
	return NULL;
}

static struct runsummary_source *find_source(const struct runsummary *s, const char *name)
{
	for (size_t i = 0; i < s->nsources; i++)
		if (strcmp(s->sources[i].name, name) == 0)
			return &s->sources[i];
	return NULL;
}

/* The sink's entry, added when new; NULL (the summary then incomplete) when
 * out of memory. */
static struct runsummary_sink *sink_entry(struct runsummary *s, const char *name)
{
	struct runsummary_sink *e = find_sink(s, name);

	if (e)
		return e;
	e = array_grow(s->sinks, &s->capsinks, s->nsinks + 1, sizeof(*e), 4);
	if (e) {
		s->sinks = e;
		e += s->nsinks;
		memset(e, 0, sizeof(*e));
		e->name = strdup(name);
	}
	if (!e || !e->name) {
		s->incomplete = true;
		return NULL;
	}
	s->nsinks++;
	return e;
}

/* The same for a source. */
static struct runsummary_source *source_entry(struct runsummary *s, const char *name)
{
	struct runsummary_source *e = find_source(s, name);

	if (e)
		return e;
	e = array_grow(s->sources, &s->capsources, s->nsources + 1, sizeof(*e), 4);
	if (e) {
		s->sources = e;
		e += s->nsources;
		memset(e, 0, sizeof(*e));
		e->name = strdup(name);
	}
	if (!e || !e->name) {
		s->incomplete = true;
		return NULL;
	}
	s->nsources++;
	return e;
}

void runsummary_keep_sinks(struct runsummary *s, const struct config *cfg, const struct delivery *d)
{
	const char *names[SPOOL_MAX_SINKS];
	size_t n = delivery_sink_names(cfg, names, SPOOL_MAX_SINKS);

	if (!d)
		return;
	for (size_t i = 0; i < n && i < SPOOL_MAX_SINKS; i++) {
		struct runsummary_sink *e = sink_entry(s, names[i]);
		struct delivery_sink_stats ds;

		delivery_stats(d, i, &ds);
		if (e)
			add_sink_stats(&e->st, &ds);
	}
	s->dropped += delivery_dropped(d);
}

void runsummary_keep_s3(struct runsummary *s, const char *name, const struct s3source_stats *st)
{
	struct runsummary_source *e = source_entry(s, name);

	if (e) {
		add_s3_stats(&e->s3st, st);
		e->s3 = true;
	}
}

void runsummary_keep_dir(struct runsummary *s, const char *name, const struct dirsource_stats *st)
{
	struct runsummary_source *e = source_entry(s, name);

	if (e) {
		add_dir_stats(&e->dirst, st);
		e->dir = true;
	}
}

static void log_sink(const char *name, const struct delivery_sink_stats *ds)
{
	char sent[48], dead[48];
	const char *extra[] = { sent, dead, NULL };
	struct log_about about = { .sink = name, .extra = extra };

	snprintf(sent, sizeof(sent), "TRAILWATCH_SENT=%lu", ds->sent);
	snprintf(dead, sizeof(dead), "TRAILWATCH_DEAD_LETTERS=%lu", ds->dead + ds->evicted + ds->expired);
	log_about(LOG_LEVEL_INFO, &about,
		  "sink %s: %lu sent, %lu retried, %lu dead letters, %lu evicted, %lu expired, %lu filtered out, %lu lost",
		  name, ds->sent, ds->retried, ds->dead, ds->evicted, ds->expired, ds->filtered, ds->lost);
}

void runsummary_log_sinks(struct runsummary *s, const struct config *cfg, const struct delivery *d)
{
	const char *names[SPOOL_MAX_SINKS];
	size_t n = d ? delivery_sink_names(cfg, names, SPOOL_MAX_SINKS) : 0;
	unsigned long dropped = s->dropped + (d ? delivery_dropped(d) : 0);

	for (size_t i = 0; i < n && i < SPOOL_MAX_SINKS; i++) {
		const struct runsummary_sink *e = find_sink(s, names[i]);
		struct delivery_sink_stats ds;

		delivery_stats(d, i, &ds);
		if (e)
			add_sink_stats(&ds, &e->st);
		log_sink(names[i], &ds);
	}
	for (size_t k = 0; k < s->nsinks; k++) {
		bool current = false;
		for (size_t i = 0; i < n && i < SPOOL_MAX_SINKS; i++)
			current |= strcmp(s->sinks[k].name, names[i]) == 0;
		if (!current)
			log_sink(s->sinks[k].name, &s->sinks[k].st);
	}
	if (dropped)
		log_error("%lu alerts were dropped because the spool was full", dropped);
}

static void log_dir(const char *name, const struct dirsource_stats *ds)
{
	char objects[48], failed[48];
	const char *extra[] = { objects, failed, NULL };
	struct log_about about = { .source = name, .extra = extra };

	snprintf(objects, sizeof(objects), "TRAILWATCH_OBJECTS=%lu", ds->files);
	snprintf(failed, sizeof(failed), "TRAILWATCH_FAILED=%lu", ds->failed_files);
	log_about(LOG_LEVEL_INFO, &about, "%s: %lu polls, %lu files, %lu failed", name, ds->polls, ds->files,
		  ds->failed_files);
}

static void log_s3(const char *name, const struct s3source_stats *st)
{
	char objects[48], failed[48];
	const char *extra[] = { objects, failed, NULL };
	struct log_about about = { .source = name, .extra = extra };

	snprintf(objects, sizeof(objects), "TRAILWATCH_OBJECTS=%lu", st->objects);
	snprintf(failed, sizeof(failed), "TRAILWATCH_FAILED=%lu", st->failed_objects);
	log_about(LOG_LEVEL_INFO, &about,
		  "%s: %lu polls, %lu objects (%lu more read again to warm up), %lu failed; %lu LIST and %lu GET requests, %lu retries",
		  name, st->cycles, st->objects, st->warmup_objects, st->failed_objects, st->s3.lists, st->s3.gets,
		  st->s3.retries);
}

void runsummary_log_s3(struct runsummary *s, const char *name, const struct s3source_stats *st)
{
	struct runsummary_source *e = find_source(s, name);
	struct s3source_stats all = *st;

	if (e && e->s3)
		add_s3_stats(&all, &e->s3st);
	if (e)
		e->logged = true;
	log_s3(name, &all);
}

void runsummary_log_dir(struct runsummary *s, const char *name, const struct dirsource_stats *st)
{
	struct runsummary_source *e = find_source(s, name);
	struct dirsource_stats all = *st;

	if (e && e->dir)
		add_dir_stats(&all, &e->dirst);
	if (e)
		e->logged = true;
	log_dir(name, &all);
}

void runsummary_log_removed_sources(struct runsummary *s)
{
	for (size_t k = 0; k < s->nsources; k++) {
		const struct runsummary_source *e = &s->sources[k];
		if (e->logged)
			continue;
		if (e->dir)
			log_dir(e->name, &e->dirst);
		if (e->s3)
			log_s3(e->name, &e->s3st);
	}
	if (s->incomplete)
		log_warning("out of memory at a reload: the counts above leave out some of the time before it");
}

void runsummary_free(struct runsummary *s)
{
	for (size_t i = 0; i < s->nsinks; i++)
		free(s->sinks[i].name);
	for (size_t i = 0; i < s->nsources; i++)
		free(s->sources[i].name);
	free(s->sinks);
	free(s->sources);
	memset(s, 0, sizeof(*s));
}
