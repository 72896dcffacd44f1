/* replay.h: `trailwatch replay`: local CloudTrail files through the engine.
 *
 * Files are listed first (directories recursively, in key order; digest,
 * Insight and non-log names skipped and counted), then put in CloudTrail's
 * delivery order (the YYYYMMDDTHHMMZ stamp in each log file name, then the
 * key), which is the order a live run sees them in, so that correlations
 * across accounts and regions agree with a live run.  They are processed by
 * --jobs worker threads.  Results are dispatched strictly in list order by the
 * calling thread, so the alerts on stdout are the same for any number of
 * jobs.  Alerts go to stdout as JSON lines; every bad file, record or limit
 * is one line on stderr naming the file and offset, and processing goes on.
 * This is a boundary module: it logs.
 */
#ifndef TRAILWATCH_REPLAY_H
#define TRAILWATCH_REPLAY_H

#include <stdbool.h>
#include <stdio.h>

#include "trailwatch/config.h"
#include "trailwatch/rules.h"

struct replay_options {
	const char *const *paths;
	size_t npaths;
	unsigned jobs;		/* worker threads; 1 runs everything in the caller */
	FILE *out;		/* alerts */
	bool sinks;		/* to the configured sinks through the spool instead of out */
};

/* Returns the process exit status: 0 when every input was read without
 * error, 1 when some input was bad (after processing everything else),
 * 2 when nothing could be done at all. */
int replay_run(const struct config *cfg, const struct ruleset *rs, const struct replay_options *o);

#endif
