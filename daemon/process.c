/* process.c: decode + detect one object; dispatch its matches (see process.h). */
#include <errno.h>
#include <libdeflate.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/array.h"
#include "trailwatch/process.h"

void file_result_init(struct file_result *res)
{
	memset(res, 0, sizeof(*res));
	arena_init(&res->arena);
}

void file_result_free(struct file_result *res)
{
	if (!res)
		return;
	free(res->matches);
	free(res->errors);
	arena_free(&res->arena);
	memset(res, 0, sizeof(*res));
}

bool file_result_failed(const struct file_result *res)
{
	return res->nerrors > 0 || res->errors_dropped > 0;
}

static void add_error(struct processor *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_error(struct processor *p, const char *fmt, ...)
{
	struct file_result *res = p->res;
	char msg[512], *line;
	va_list ap;

	if (res->nerrors >= RESULT_MAX_ERRORS) {
		res->errors_dropped++;
		return;
	}
	if (!res->errors) {
		res->errors = calloc(RESULT_MAX_ERRORS, sizeof(*res->errors));
		if (!res->errors) {
			res->errors_dropped++;
			p->nomem = true;
			return;
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	line = arena_printf(&res->arena, "%s: %s", res->name, msg);
	if (!line) {
		res->errors_dropped++;
		p->nomem = true;
		return;
	}
	res->errors[res->nerrors++] = line;
}

int processor_init(struct processor *p, const struct ruleset *rs, const struct process_limits *lim)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->rs = rs;
	if (lim)
		p->lim = *lim;
	if (!p->lim.input.max_object)
		p->lim.input.max_object = INPUT_DEFAULT_MAX_OBJECT;
	if (!p->lim.input.max_decompressed)
		p->lim.input.max_decompressed = INPUT_DEFAULT_MAX_DECOMPRESSED;
	buf_init(&p->raw, p->lim.input.max_object);
	buf_init(&p->json, p->lim.input.max_decompressed);
	p->dd = libdeflate_alloc_decompressor();
	if (!p->dd)
		return -ENOMEM;
	r = engine_init(&p->engine, rs);
	if (r < 0)
		goto fail;
	r = record_init(&p->rec, rs->fields.nslots);
	if (r < 0)
		goto fail;
	return 0;
fail:
	processor_free(p);
	return r;
}

void processor_free(struct processor *p)
{
	if (!p)
		return;
	engine_free(&p->engine);
	record_free(&p->rec);
	if (p->dd)
		libdeflate_free_decompressor(p->dd);
	buf_free(&p->raw);
	buf_free(&p->json);
	memset(p, 0, sizeof(*p));
}

static void on_match(void *ctx, const struct rule *rule, struct record *rec)
{
	struct processor *p = ctx;
	struct file_result *res = p->res;
	struct match *m;

	m = array_grow(res->matches, &res->cap, res->nmatches + 1, sizeof(*m), 16);
	if (!m) {
		p->nomem = true;
		return;
	}
	res->matches = m;
	m = &res->matches[res->nmatches];
	if (match_capture(m, rule, rec, &p->rs->slots, res->name, &res->arena) < 0) {
		p->nomem = true;
		return;
	}
	for (size_t i = 0; i < rule->nreasons; i++) {
		if (!engine_cond_holds(&p->engine, rule, rule->reasons[i].when, rec))
			continue;
		if (match_add_reason(m, &rule->reasons[i], rec, &res->arena) < 0) {
			p->nomem = true;
			return;
		}
	}
	res->nmatches++;
}

/* trailwatch.supersedes among the matches of one record, [first, nmatches):
 * a match of a rule that another matching rule supersedes raises no alert of
 * its own, and the superseding match names it.  -ENOMEM. */
static int supersede(struct file_result *res, size_t first)
{
	for (size_t i = first; i < res->nmatches; i++) {
		struct match *m = &res->matches[i];

		for (size_t k = 0; k < m->rule->nsupersedes; k++) {
			for (size_t j = first; j < res->nmatches; j++) {
				struct match *o = &res->matches[j];
				if (j == i || o->rule != m->rule->supersedes[k])
					continue;
				if (match_cover(m, o, &res->arena) < 0)
					return -ENOMEM;
			}
		}
	}
	return 0;
}

/* Decodes an object's bytes into p->json (guarded against SIGBUS when they
 * are a file's mapping) and runs the rules over its records. */
static int run(struct processor *p, const struct input_map *obj, bool mapped)
{
	struct file_result *res = p->res;
	struct ctlog_reader reader;
	struct ctlog_error err;
	char msg[300];
	size_t first;
	int r;

	res->bytes_stored = obj->len;
	if (mapped)
		r = input_decode_mapped(p->dd, obj, &p->lim.input, &p->json, msg, sizeof(msg));
	else
		r = input_decode(p->dd, obj->data, obj->len, &p->lim.input, &p->json, msg, sizeof(msg));
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		add_error(p, "%s", msg);
		return 0;
	}
	res->bytes_json = p->json.len;
	if (ctlog_open(&reader, p->json.data, p->json.len, &p->rs->fields, &p->lim.json, &err) < 0) {
		add_error(p, "byte %zu: %s", err.offset, err.message);
		return 0;
	}
	for (;;) {
		r = ctlog_next(&reader, &p->rec, &err);
		if (r == 0)
			break;
		if (r < 0) {
			if (err.record >= 0)
				add_error(p, "record %ld at byte %zu: %s", err.record, err.offset, err.message);
			else
				add_error(p, "byte %zu: %s", err.offset, err.message);
			if (err.record >= 0)
				res->bad_records++;
			if (err.fatal)
				break;
			continue;
		}
		res->records++;
		first = res->nmatches;
		if (engine_eval(&p->engine, &p->rec, on_match, p) > 1 && !p->nomem && supersede(res, first) < 0)
			p->nomem = true;
		if (p->nomem)
			return -ENOMEM;
	}
	return p->nomem ? -ENOMEM : 0;
}

/* After an object: buffers that grew past INPUT_KEEP_BUFFER let their
 * memory go (the matches in the result are copies). */
static void release_buffers(struct processor *p)
{
	buf_trim(&p->raw, INPUT_KEEP_BUFFER);
	buf_trim(&p->json, INPUT_KEEP_BUFFER);
}

int processor_run_buffer(struct processor *p, const char *name, const char *data, size_t len,
			 struct file_result *res)
{
	struct input_map obj;
	int r;

	p->res = res;
	p->nomem = false;
	res->name = arena_strdup(&res->arena, name);
	if (!res->name)
		return -ENOMEM;
	obj.data = data;
	obj.len = len;
	r = run(p, &obj, false);
	release_buffers(p);
	p->res = NULL;
	return r;
}

int processor_run_file(struct processor *p, const char *path, struct file_result *res)
{
	struct input_map map;
	char msg[300];
	int r;

	p->res = res;
	p->nomem = false;
	res->name = arena_strdup(&res->arena, path);
	if (!res->name)
		return -ENOMEM;
	/* Mapped when it can be (4% of a replay went to copying files out of
	 * the page cache), else read. */
	r = input_map_file(path, p->lim.input.max_object, &map, msg, sizeof(msg));
	if (r == 0) {
		r = run(p, &map, true);
		input_unmap(&map);
		goto out;
	}
	if (r == -ENOTSUP)
		r = input_read_file(path, p->lim.input.max_object, &p->raw, msg, sizeof(msg));
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		add_error(p, "%s", msg);
		r = 0;
		goto out;
	}
	map.data = p->raw.data;
	map.len = p->raw.len;
	r = run(p, &map, false);
out:
	release_buffers(p);
	p->res = NULL;
	return r;
}

/* ---- the ordered half -------------------------------------------------- */

int dispatch_init(struct dispatch *d, const struct ruleset *rs, const struct corr_limits *lim,
		  alert_fn emit, void *ctx)
{
	memset(d, 0, sizeof(*d));
	d->rs = rs;
	d->emit = emit;
	d->ctx = ctx;
	return correlator_new(rs, lim, &d->corr);
}

void dispatch_free(struct dispatch *d)
{
	if (!d)
		return;
	correlator_free(d->corr);
	free(d->order);
	free(d->counts);
	memset(d, 0, sizeof(*d));
}

static int count_emit(void *ctx, const struct alert *a)
{
	struct dispatch *d = ctx;

	d->alerts++;
	return d->emit(d->ctx, a);
}

static int by_time(const void *a, const void *b)
{
	const struct match *x = *(const struct match *const *)a, *y = *(const struct match *const *)b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	/* Same second: keep the record order, so the sort is stable. */
	return x->record < y->record ? -1 : x->record > y->record;
}

/* Puts an object's matches into d->order by eventTime, matches without a
 * time first, and within a second in the order they came (record order).
 * A CloudTrail file spans minutes, so this is a counting sort over its
 * seconds; an object whose times spread much wider than its match count
 * is sorted with qsort instead (the count array stays bounded).  -ENOMEM. */
static int order_by_time(struct dispatch *d, const struct file_result *res)
{
	size_t n = res->nmatches, unknown = 0, at;
	int64_t lo = INT64_MAX, hi = INT64_MIN;
	uint64_t span;
	const struct match **o;
	size_t *c;

	o = array_grow(d->order, &d->order_cap, n, sizeof(*o), 64);
	if (!o)
		return -ENOMEM;
	d->order = o;
	for (size_t i = 0; i < n; i++) {
		int64_t t = res->matches[i].time;
		if (t == TIME_UNKNOWN) {
			unknown++;
			continue;
		}
		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	span = unknown == n ? 0 : (uint64_t)hi - (uint64_t)lo + 1;
	if (span > 4 * (uint64_t)n + 4096) {
		for (size_t i = 0; i < n; i++)
			o[i] = &res->matches[i];
		qsort(o, n, sizeof(*o), by_time);
		return 0;
	}
	c = array_grow(d->counts, &d->counts_cap, (size_t)span + 1, sizeof(*c), 64);
	if (!c)
		return -ENOMEM;
	d->counts = c;
	memset(c, 0, ((size_t)span + 1) * sizeof(*c));
	for (size_t i = 0; i < n; i++)
		if (res->matches[i].time != TIME_UNKNOWN)
			c[(uint64_t)res->matches[i].time - (uint64_t)lo + 1]++;
	c[0] = unknown;	/* where the first known second starts */
	for (size_t s = 1; s <= (size_t)span; s++)
		c[s] += c[s - 1];
	at = 0;
	for (size_t i = 0; i < n; i++) {
		const struct match *m = &res->matches[i];
		if (m->time == TIME_UNKNOWN)
			o[at++] = m;
		else
			o[c[(uint64_t)m->time - (uint64_t)lo]++] = m;
	}
	return 0;
}

int dispatch_result(struct dispatch *d, const struct file_result *res)
{
	int r;

	if (!res->nmatches)
		return 0;
	/* In eventTime order (records inside a CloudTrail file are not): both
	 * throttle windows and correlation windows move forward in time. */
	r = order_by_time(d, res);
	if (r < 0)
		return r;
	for (size_t i = 0; i < res->nmatches; i++) {
		const struct match *m = d->order[i];

		if (m->rule->emits && !m->covered) {
			struct alert a;
			alert_from_match(&a, m);
			r = correlator_alert(d->corr, &a, count_emit, d);
			if (r < 0)
				return r;
		}
		for (size_t k = 0; k < m->rule->nconsumers; k++) {
			r = correlator_feed(d->corr, m->rule->consumers[k], m, count_emit, d);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int dispatch_flush(struct dispatch *d)
{
	return correlator_flush(d->corr, count_emit, d);
}

size_t dispatch_adopt(struct dispatch *to, struct dispatch *from)
{
	return correlator_adopt(to->corr, from->corr);
}
