/* runsummary.h: the exit summary of `trailwatch run`, across reloads.
 *
 * At exit, run logs a line per sink ("sink NAME: N sent, ...") and per
 * source ("SOURCE: N polls, N files, ..."), and the alerts dropped because
 * the spool was full.  A reload (SIGHUP) replaces the sinks and the sources,
 * whose counters start again from zero, so before the old ones are freed
 * their counts are kept here, by name.  At exit each current sink and source
 * logs its own counts plus those kept under its name; a name that a reload
 * removed logs what it had.  Zero-initialise; release with runsummary_free.
 * Logs (it is part of the service loop).
 */
#ifndef TRAILWATCH_RUNSUMMARY_H
#define TRAILWATCH_RUNSUMMARY_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/config.h"
#include "trailwatch/delivery.h"
#include "trailwatch/dirsource.h"
#include "trailwatch/s3source.h"

struct runsummary_source {
	char *name;
	bool s3, dir;			/* which kinds it was */
	struct s3source_stats s3st;
	struct dirsource_stats dirst;
	bool logged;			/* by runsummary_log_s3/_dir, at exit */
};

struct runsummary_sink {
	char *name;
	struct delivery_sink_stats st;
};

struct runsummary {
	struct runsummary_source *sources;
	size_t nsources, capsources;
	struct runsummary_sink *sinks;
	size_t nsinks, capsinks;
	unsigned long dropped;		/* delivery_dropped() of the deliveries kept */
	bool incomplete;		/* out of memory while keeping counts */
};

/* Before d (opened for cfg) is freed at a reload: its sinks' counts. */
void runsummary_keep_sinks(struct runsummary *s, const struct config *cfg, const struct delivery *d);

/* Before a source is freed at a reload: its counts. */
void runsummary_keep_s3(struct runsummary *s, const char *name, const struct s3source_stats *st);
void runsummary_keep_dir(struct runsummary *s, const char *name, const struct dirsource_stats *st);

/* At exit: a line per sink of d (opened for cfg; NULL: none open) with the
 * counts kept under its name added, then the sinks a reload removed, then
 * the dropped alerts of the whole run. */
void runsummary_log_sinks(struct runsummary *s, const struct config *cfg, const struct delivery *d);

/* At exit: a current source's line, with the counts kept under its name. */
void runsummary_log_s3(struct runsummary *s, const char *name, const struct s3source_stats *st);
void runsummary_log_dir(struct runsummary *s, const char *name, const struct dirsource_stats *st);

/* At exit, after the current sources: the sources a reload removed. */
void runsummary_log_removed_sources(struct runsummary *s);

void runsummary_free(struct runsummary *s);

#endif
