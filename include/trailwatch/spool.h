/* spool.h: the durable alert spool between detection and the sinks.
 *
 * `trailwatch run` adds an object's alerts (spool_add), makes them durable
 * (spool_commit) and only then advances the object's checkpoint.  Each sink
 * ("stdout", "slack", "webhook:soc"...) takes the alerts in order:
 * spool_peek gives its oldest alert not yet acknowledged, and after the
 * delivery succeeded spool_ack records that durably.  So a crash at any moment
 * loses no committed alert, and repeats at most the one alert per sink that
 * was delivered but not yet acked (architecture.md, "Durability order").
 *
 * Alert ids (32 lower-case hex digits) are remembered: spool_add refuses an
 * id that is in the spool, or whose alert was delivered to every sink within
 * remember_seconds (and among the last max_ids delivered), so an object
 * reprocessed after a crash does not alert twice.  The remembered ids survive
 * restarts.
 *
 * Sinks are identified by name.  A name that the spool has not seen before
 * starts at the current end: it gets the alerts committed from now on, not the
 * older ones (a new Slack channel is not flooded with last week's alerts).  A
 * sink that is no longer configured is forgotten at open: it holds no alert
 * and no space, and if it comes back it is new again.
 *
 * Space: alerts live in segment files of about segment_bytes; a segment whose
 * alerts every sink acked is deleted.  The segments and the uncommitted
 * alerts together may not exceed max_bytes: past it spool_add fails with
 * -ENOSPC, and spool_stats says which sink holds the space.
 *
 * Errors: every function returns 0 (or the documented positive value) or a
 * negative errno, writes its outputs only on success and, where it takes
 * msg/msglen (msg may be NULL), describes the failure there, naming the file.
 * A failed write or fsync of a segment or of the ack log leaves the spool
 * unusable: every later call returns -EIO (with the first failure in msg)
 * until it is closed and opened again, which recovers from what is on disk.
 *
 * Not thread-safe: one thread uses a spool (the dispatcher).  Two processes
 * cannot open the same directory (the second gets -EBUSY).  File formats and
 * recovery are described at the top of spool.c.
 */
#ifndef TRAILWATCH_SPOOL_H
#define TRAILWATCH_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_ID_LEN 32				/* hex digits in an alert id */
#define SPOOL_MAX_ALERT (256u << 10)		/* bytes of one alert's JSON */
#define SPOOL_MAX_SINKS 32
#define SPOOL_MAX_SINK_NAME 64			/* bytes; printable ASCII, no space */

#define SPOOL_DEFAULT_MAX_BYTES (256ull << 20)
#define SPOOL_DEFAULT_SEGMENT_BYTES (4ull << 20)
#define SPOOL_MIN_SEGMENT_BYTES 4096ull
#define SPOOL_DEFAULT_MAX_IDS 1000000u
#define SPOOL_HARD_MAX_IDS (1u << 29)
#define SPOOL_DEFAULT_REMEMBER_SECONDS (7 * 24 * 3600)
#define SPOOL_DEFAULT_ACK_LOG_BYTES (1ull << 20)

/* Zero (or a NULL limits pointer) means the default. */
struct spool_limits {
	uint64_t max_bytes;		/* segments + uncommitted alerts; >= 2 * segment_bytes */
	uint64_t segment_bytes;		/* a new segment starts past this; >= SPOOL_MIN_SEGMENT_BYTES */
	size_t max_ids;			/* delivered ids remembered, at most SPOOL_HARD_MAX_IDS */
	int64_t remember_seconds;	/* how long a delivered id is remembered */
	uint64_t ack_log_bytes;		/* the ack log is compacted into the state file when it has
					 * grown past this and past the state file's size;
					 * >= SPOOL_MIN_SEGMENT_BYTES */
	int64_t (*now)(void);		/* wall clock in seconds; NULL is time(NULL) (tests set it) */
};

struct spool;

struct spool_sink_stats {
	char name[SPOOL_MAX_SINK_NAME + 1];
	uint64_t pending;		/* committed alerts this sink has not acked */
	uint64_t held_bytes;		/* segment bytes kept on disk because of this sink */
	uint64_t lost;			/* alerts it had not taken that damage found at open lost */
};

/* Damage found by spool_open: a range of alerts (seqs first_seq up to
 * end_seq) that cannot be read back, where and why. */
#define SPOOL_MAX_DAMAGE 8

struct spool_damage {
	char file[40];			/* the segment ("seg-..."), or "" when the file is gone */
	uint64_t from, to;		/* its bytes [from, to) that were unreadable; 0, 0 when
					 * the whole file is gone */
	uint64_t first_seq, end_seq;	/* the alerts lost: [first_seq, end_seq) */
	uint64_t undelivered;		/* of those, alerts some sink had not yet taken */
	const char *what;		/* "damaged records", "segment missing", ... */
};

struct spool_stats {
	size_t nsinks;
	struct spool_sink_stats sink[SPOOL_MAX_SINKS];
	size_t holding_sink;		/* the sink with the oldest pending alert (it decides what
					 * can be deleted); SIZE_MAX when nothing is pending */
	uint64_t bytes;			/* segments on disk + uncommitted alerts */
	uint64_t max_bytes;
	uint64_t alerts;		/* alerts in the segments on disk */
	uint64_t uncommitted;		/* added since the last commit */
	size_t segments;
	size_t remembered;		/* delivered ids remembered */
	uint64_t torn_records;		/* torn or corrupt records dropped when opening */
	uint64_t torn_bytes;		/* bytes cut off with them */
	uint64_t lost_alerts;		/* undelivered alerts lost to damage found when opening */
	const char *ack_log_damage;	/* at open: what was wrong with acks.log (missing, truncated,
					 * damaged), or NULL.  The acks since the state file was
					 * last written are lost then: the sinks get those alerts
					 * again (at most the acks one ack log holds, see
					 * ack_log_bytes) */
	uint64_t ack_log_damage_at;	/* the byte it became unreadable at, when that is known */
	uint64_t acks_logged;		/* bytes of acks in acks.log now (0 right after a compaction) */
	size_t ndamage;			/* damaged ranges found when opening */
	struct spool_damage damage[SPOOL_MAX_DAMAGE];	/* the first of them */
	uint64_t duplicates;		/* spool_add calls refused as duplicates since open */
	int reclaim_error;		/* errno of the last failed deletion of an acked segment
					 * (retried after every ack), 0 when none */
	int compact_error;		/* errno of the last failed automatic compaction (retried
					 * after another ack_log_bytes of acks), 0 when none */
};

/* Opens the spool in dir (created with mode 0700 if missing; its parent
 * must exist) for the given sinks: 1 to SPOOL_MAX_SINKS distinct names, and
 * sink i of the other calls is sinks[i].  lim may be NULL.
 *
 * Recovery: a torn record at the end of a segment (a write cut by a crash)
 * is cut off and counted in the stats' torn_records, never an error; the
 * alerts before it are kept.  Damage that is not a crash is survived too and
 * reported in the stats' damage list: a corrupt record followed by intact
 * ones (every intact record after it is recovered; the byte range and the
 * alerts in it are reported), a segment whose header is damaged (repaired),
 * a segment that is not a regular file or holds no record (renamed to
 * <name>.damaged), a missing segment (the gap in the alerts' sequence).
 * Sinks whose position was inside a lost range move past it, so a range is
 * reported once.  lost_alerts counts the alerts lost that some sink had not
 * taken.  Alerts that were written
 * but whose commit had not returned may survive: they are pending like
 * committed ones (and their ids are refused as duplicates when the object is
 * processed again).  A sink removed from the list is dropped from the state
 * right here, so alerts only it had not taken count as delivered.
 *
 * Fails with -EBUSY when another process has the spool open, -EBADMSG when
 * the state file is damaged (it is replaced atomically, so that is not a
 * crash: the operator decides), -ENOENT when segments exist but the state
 * file does not, -EINVAL for bad arguments, other -errno for I/O; msg names
 * the file.  On success *ret is the spool, to be released with spool_close. */
int spool_open(const char *dir, const char *const *sinks, size_t nsinks, const struct spool_limits *lim,
	       struct spool **ret, char *msg, size_t msglen);

/* Appends an alert to the spool, in memory until spool_commit.  id is 32
 * lower-case hex digits (NUL-terminated), json 1..SPOOL_MAX_ALERT bytes
 * (copied; not checked to be JSON).  Returns 1 when added, 0 when the id is
 * already in the spool (committed or not) or was delivered within the
 * remembered window (a duplicate: nothing added), -E2BIG for a too large
 * alert, -ENOSPC when the spool would pass max_bytes (msg names the sink
 * that holds the space), -EINVAL for a bad id, -ENOMEM, -EIO when the spool
 * failed earlier. */
int spool_add(struct spool *s, const char id[SPOOL_ID_LEN + 1], const char *json, size_t len, char *msg,
	      size_t msglen);

/* Makes every alert added so far durable: written, fdatasync'd, and the
 * directory fsync'd when a segment file was created.  Only after it returns
 * 0 may the caller advance the checkpoint of the objects the alerts came
 * from.  Nothing to commit is a no-op.  On failure the spool is unusable
 * (see above): close and open it again, and process those objects again. */
int spool_commit(struct spool *s, char *msg, size_t msglen);

/* The oldest committed alert that sink has not acked: *json (not
 * NUL-terminated) and *len stay valid until the next call on s, id gets
 * its id, *added (when not NULL) the wall-clock second it was added.
 * Returns 0 with *json = NULL when the sink has nothing pending.  -EBADMSG
 * when the record no longer reads back as written (damaged since the spool
 * was opened): id is still set, so the caller can report the alert lost and
 * spool_ack it to go on.  -EINVAL for a bad sink index, -EIO when the spool
 * failed earlier, other -errno. */
int spool_peek(struct spool *s, size_t sink, const char **json, size_t *len, char id[SPOOL_ID_LEN + 1],
	       int64_t *added, char *msg, size_t msglen);

/* Records durably (append and fdatasync of the ack log) that sink delivered
 * the alert spool_peek gave it, so it is not given to that sink again, even
 * after a crash.  id must be that alert's id: anything else is -ENOENT
 * (acks are in order).  When the last sink acks an alert its id starts to be
 * remembered, and segments that every sink has acked are deleted.  Now and
 * then (when the ack log has grown past the state file and ack_log_bytes) the
 * state file is rewritten first; if that fails before the new file is in
 * place, the ack still happens and stats' compact_error says why.  -EINVAL
 * for a bad sink index or id, -EIO when the spool failed earlier. */
int spool_ack(struct spool *s, size_t sink, const char id[SPOOL_ID_LEN + 1], char *msg, size_t msglen);

/* Rewrites the state file (sink positions and remembered ids) atomically
 * and empties the ack log.  spool_ack does this by itself when due; callers
 * may do it at a quiet moment or before a clean shutdown.  A failure before
 * the new state file is in place changes nothing; after, it makes the spool
 * unusable. */
int spool_compact(struct spool *s, char *msg, size_t msglen);

/* Counters and sizes, as of now. */
void spool_stats(const struct spool *s, struct spool_stats *ret);

/* Closes the files and frees s (NULL is fine).  Alerts added but not
 * committed are dropped. */
void spool_close(struct spool *s);

#endif
