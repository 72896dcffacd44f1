/* dirsource.h: a local directory as a source of log objects (`type: dir`).
 *
 * Every poll walks the directory (recursively, in key order, digest and
 * Insight files skipped like replay does) and hands each log file it has not
 * processed yet to the sink.  A file modified in the last DIRSOURCE_SETTLE
 * seconds is left for the next poll, so one still being written is not read
 * half-way (moving finished files in with rename(2) is best).  The names of
 * the processed files that are still there are the checkpoint:
 * STATE_DIR/checkpoints/dir-PATH.json (statefile_name), replaced atomically after each
 * commit.  A file that disappears is forgotten, so one that comes back under
 * the same name is read again.
 *
 * What cannot be read (walk.h: a symbolic link loop or a link to a
 * directory above, a dangling link, an unreadable directory; or the
 * directory itself) is left out and logged once, as an error naming its
 * path (TRAILWATCH_OBJECT=), when a poll first meets it; later polls that
 * still meet it say nothing, and once a poll no longer meets it, it is
 * forgotten, so it is logged again if it comes back.  A new dirsource (a
 * restart, a reload) logs what is there again.  Everything else in the
 * directory is read as usual.  Logs what it does (the service loop's
 * module).
 */
#ifndef TRAILWATCH_DIRSOURCE_H
#define TRAILWATCH_DIRSOURCE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "trailwatch/config.h"
#include "trailwatch/source.h"

#define DIRSOURCE_SETTLE 2		/* seconds a file must be left alone before it is read */
#define DIRSOURCE_BATCH 16		/* files per spool commit */

struct dirsource;

struct dirsource_stats {
	unsigned long polls, files, failed_files;
};

/* -ENOMEM, -errno for the state dir (msg). */
int dirsource_new(const struct source_config *sc, const char *state_dir, size_t max_object,
		  volatile sig_atomic_t *stop, struct dirsource **ret, char *msg, size_t msglen);
void dirsource_free(struct dirsource *d);

/* One poll at wall-clock time now.  Returns 0 (problems with single files
 * and entries are logged; see above), -ECANCELED when *stop was set,
 * -ENOMEM, or a sink's negative value. */
int dirsource_poll(struct dirsource *d, int64_t now, const struct source_sink *sink);

void dirsource_stats(const struct dirsource *d, struct dirsource_stats *ret);

#endif
