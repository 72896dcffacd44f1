/* deadletter.h: a sink's dead-letter folder, STATE_DIR/dead-letter/SINK/.
 *
 * An alert that a sink refused for good, that waited longer than
 * spool.max_age, or that a full spool evicted, is kept there as ID.json:
 * {"sink": NAME, "reason": WHY, "alert": "<the alert's JSON>"}.  Refused and
 * expired alerts stay for the operator.  Evicted ones (WHY starts with
 * DEADLETTER_EVICTED) were only in the way: once the sink takes alerts
 * again they are given back to it, oldest first, and each file is removed
 * when the sink has it (a crash in between sends that one again).
 *
 * Errors: -errno, with msg naming the file.  Nothing here logs.
 */
#ifndef TRAILWATCH_DEADLETTER_H
#define TRAILWATCH_DEADLETTER_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/buf.h"
#include "trailwatch/spool.h"

#define DEADLETTER_EVICTED "evicted:"
#define DEADLETTER_SCAN_MAX 10000	/* evicted letters taken from one scan of the folder */

/* The evicted letters of one sink waiting to be given back. */
struct deadletters {
	char *dir;			/* STATE_DIR/dead-letter/SINK */
	char (*ids)[SPOOL_ID_LEN + 1];	/* from the last scan, oldest first */
	size_t n, next;
	bool maybe;			/* the folder may hold evicted letters: scan it */
	struct buf file;		/* the letter being read */
	struct buf json;		/* its alert */
};

/* dir is the sink's folder (copied); maybe: whether to look in it at all
 * (true at start: a previous run may have evicted).  -ENOMEM. */
int deadletters_init(struct deadletters *q, const char *dir);
void deadletters_free(struct deadletters *q);

/* Keeps an alert in the folder as ID.json (replacing one with that id).
 * An evicted alert (why starts with DEADLETTER_EVICTED) marks the folder
 * for deadletters_next.  -errno with msg. */
int deadletters_keep(struct deadletters *q, const char *sink, const char id[SPOOL_ID_LEN + 1], const char *json,
		     size_t len, const char *why, char *msg, size_t msglen);

/* The oldest evicted letter: returns 1 with *json and *len (valid until the
 * next call) and id, 0 when there is none (the folder is not scanned again
 * until deadletters_keep evicts), -errno with msg for a letter that cannot
 * be read (it is passed over: the next call gives the next one). */
int deadletters_next(struct deadletters *q, const char **json, size_t *len, char id[SPOOL_ID_LEN + 1], char *msg,
		     size_t msglen);

/* The sink has the letter id (or refused it for good, and it was kept
 * again with that reason, see deadletters_keep): it is not given again;
 * its file is removed when done is true.  -errno with msg. */
int deadletters_done(struct deadletters *q, const char id[SPOOL_ID_LEN + 1], bool remove, char *msg,
		     size_t msglen);

#endif
