/* process.h: one log object through decoding and detection.
 *
 * Processing is split in two halves so that objects can be decoded and
 * matched in parallel while everything stateful stays in one thread:
 *
 *   processor_run_*()   (any thread, one processor per thread)
 *       read -> gunzip -> split records -> extract fields -> evaluate rules;
 *       leaves the object's matches and errors in a struct file_result.
 *   dispatch_result()   (one thread, objects in key order)
 *       turns a result into alerts: single-event alerts in record order, then
 *       the matches that feed correlations, sorted by eventTime, through the
 *       correlator; every alert passes its rule's throttle.
 *
 * Errors in an object (corrupt gzip, a bad record, ...) never stop the
 * processing of the rest: each is kept as a line "OBJECT: record N at byte B:
 * message" in the result, and processing goes on wherever it can.
 */
#ifndef TRAILWATCH_PROCESS_H
#define TRAILWATCH_PROCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/alert.h"
#include "trailwatch/buf.h"
#include "trailwatch/correlate.h"
#include "trailwatch/ctlog.h"
#include "trailwatch/engine.h"
#include "trailwatch/input.h"
#include "trailwatch/rules.h"

#define RESULT_MAX_ERRORS 100	/* error lines kept per object; more are counted */

struct process_limits {
	struct input_limits input;
	struct ctlog_limits json;
};

struct file_result {
	const char *name;		/* the object's name (copied) */
	struct arena arena;		/* matches, their strings, error lines */
	struct match *matches;
	size_t nmatches, cap;
	char **errors;			/* "OBJECT: ...", at most RESULT_MAX_ERRORS */
	size_t nerrors;
	size_t errors_dropped;
	size_t records;			/* records read */
	size_t bad_records;		/* records skipped because of errors */
	size_t bytes_stored;		/* as read */
	size_t bytes_json;		/* after decompression */
};

void file_result_init(struct file_result *res);
void file_result_free(struct file_result *res);

/* True when the object had any error. */
bool file_result_failed(const struct file_result *res);

struct processor {
	const struct ruleset *rs;
	struct process_limits lim;
	struct engine engine;
	struct record rec;
	struct libdeflate_decompressor *dd;
	struct buf raw;
	struct buf json;
	struct file_result *res;	/* during a run */
	bool nomem;
};

int processor_init(struct processor *p, const struct ruleset *rs, const struct process_limits *lim);
void processor_free(struct processor *p);

/* Reads and processes a file.  Returns 0 (see res for errors in the data)
 * or -ENOMEM.  Both functions leave at most INPUT_KEEP_BUFFER bytes per
 * text buffer allocated behind them (INPUT_KEEP_BUFFER); res holds copies of what it needs. */
int processor_run_file(struct processor *p, const char *path, struct file_result *res);

/* Processes an object already in memory (gzip or JSON); name is used in
 * messages and as the alert's log_object. */
int processor_run_buffer(struct processor *p, const char *name, const char *data, size_t len,
			 struct file_result *res);

struct dispatch {
	const struct ruleset *rs;
	struct correlator *corr;
	alert_fn emit;
	void *ctx;
	size_t alerts;			/* alerts emitted */
	const struct match **order;	/* an object's matches in time order */
	size_t order_cap;
	size_t *counts;			/* per second of the object (counting sort) */
	size_t counts_cap;
};

int dispatch_init(struct dispatch *d, const struct ruleset *rs, const struct corr_limits *lim,
		  alert_fn emit, void *ctx);
void dispatch_free(struct dispatch *d);

/* Turns one object's matches into alerts.  Returns 0, -ENOMEM, or what the
 * emit callback returned. */
int dispatch_result(struct dispatch *d, const struct file_result *res);

/* End of input: throttle summaries still open. */
int dispatch_flush(struct dispatch *d);

/* After a reload: to (on the new ruleset) takes over the correlation and
 * throttle state of the rules that did not change (correlator_adopt).
 * Returns how many rules kept their state. */
size_t dispatch_adopt(struct dispatch *to, struct dispatch *from);

#endif
