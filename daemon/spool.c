/* spool.c: the durable alert spool (see spool.h).
 *
 * Files in the spool directory.  Integers are little-endian.  "crc" is the
 * CRC-32 of zlib and gzip (IEEE 802.3) of every byte of the record after the
 * crc field itself, so a record cut short by a crash, or garbage after the
 * last record, never passes for a record.
 *
 *   seg-<16 hex digits>	a segment: alerts in the order they were added.  The
 *				name is the sequence number (seq) of its first alert.
 *	header	"TWSPSEG2" u64 first_seq
 *	record	u32 crc, u32 len, u64 seq, i64 added, char id[32] (hex), json[len]
 *	`added` is the wall-clock second spool_add was called (the age cap
 *	of delivery.c reads it).
 *	Seqs grow by one from record to record and never go back; len is
 *	1..SPOOL_MAX_ALERT.  Only the last segment is written to (appended,
 *	then fdatasync'd by spool_commit); a commit that finds it past
 *	segment_bytes starts a new one (and fsyncs the directory).
 *
 *   acks.log			every ack since the state file was last written
 *	header	"TWSPACK1" u64 gen
 *	record	u32 crc, u32 len (of what follows), u64 seq, i64 time, u8 id[16],
 *		u8 flags, u8 namelen, name[namelen]
 *	"Sink <name> took alert <seq> at <time>": its position moves past
 *	seq.  flags bit 0: it was the last sink to take that alert, so the
 *	alert is now delivered and its id is remembered from <time> on.
 *	Appended and fdatasync'd by every spool_ack.
 *
 *   state			the compact state, replaced atomically (state.tmp,
 *				fsync, rename, fsync of the directory)
 *	"TWSPSTA1" u64 gen, u64 next_seq, u64 delivered_next,
 *	u32 nsinks, nsinks * { u8 namelen, name, u64 position },
 *	u64 nids, nids * { u8 id[16], i64 time }, u32 crc of all bytes before it
 *	A sink's position is the seq of the oldest alert it has not acked;
 *	every alert below delivered_next was acked by every sink; the ids are
 *	the delivered ones still remembered, in the order they were delivered.
 *
 * acks.log counts only when its gen equals the state's: a compaction writes
 * the state with gen + 1 and then empties acks.log and writes the new gen in
 * it, so a crash between the two leaves a stale log that is ignored (its
 * acks are in the new state).  Replaying a log is idempotent anyway.
 *
 * Opening: the state file is read (a missing one is a new spool), acks.log
 * is replayed on top, the segments are scanned in seq order.  A record that
 * is short or fails its crc or seq check is damage when an intact record
 * follows it (found by scanning forward; the records in between are lost,
 * reported and left in place), else a torn write from a crash: the file is
 * truncated there (counted in the stats), so later appends are readable
 * again.  A damaged header is rewritten; a segment file that is not regular
 * or holds no record is renamed <name>.damaged.  Then the gaps in the seqs
 * (a missing segment) are lost too, and sinks inside a lost range move past
 * it, so it is reported once.  A segment too short for its header (a
 * crash while creating it) is removed.  Sinks absent from the state get
 * position next_seq (the end); sinks in the state but no longer configured
 * are dropped, which may deliver alerts (every remaining sink has them):
 * their ids are remembered and the state is rewritten before any segment
 * is deleted.  Segments other than the last whose alerts every sink acked
 * are deleted; a lost unlink only means the file is deleted again later.
 *
 * In memory: the index of the alerts in the segments (and the uncommitted
 * ones, whose encoded records wait in `pending`) and the remembered ids are
 * two rings in arrival order, each with an open-addressing hash table of
 * ids.  Both only lose entries at the front, so a table slot holds the
 * ring position modulo 2^31 and the ring says which position that is.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trailwatch/buf.h"
#include "trailwatch/msg.h"
#include "trailwatch/spool.h"

#define SEG_MAGIC "TWSPSEG2"
/* The ack log is made FILE_HEADER + ack_log_bytes long at each compaction,
 * zeros after its records (ack_made), so that a log cut shorter is told
 * from one a crash stopped; "TWSPACK1" logs ended with their last record
 * (read, then rewritten at once). */
#define ACK_MAGIC "TWSPACK2"
#define ACK_MAGIC_V1 "TWSPACK1"
#define STATE_MAGIC "TWSPSTA1"
#define FILE_HEADER 16			/* magic and a u64 */
#define SEG_REC_HEADER 56		/* crc, len, seq, added, hex id */
#define ACK_REC_FIXED 42		/* crc, len, seq, time, id, flags, namelen */
#define ACK_FLAG_DELIVERED 1u
#define STATE_FILE "state"
#define STATE_TMP "state.tmp"
#define ACK_FILE "acks.log"
#define ACK_TMP "acks.tmp"
#define RING_MAX (1u << 30)		/* entries in a ring: slot handles are 31 bits */
#define HANDLE_MASK 0x7fffffffu
#define MAX_REMEMBER_SECONDS (100ll * 366 * 24 * 3600)
#define IO_CHUNK (64u << 10)

/* ---- CRC-32 (polynomial 0xEDB88320, as zlib's crc32) ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

/* crc32_update(0, p, n) is zlib's crc32(0, p, n). */
static uint32_t crc32_update(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;

	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- little-endian integers, ids ---- */

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* 32 lower-case hex digits (exactly: p[32] must end the string when nul is true). */
static int parse_id(const char *p, bool nul, uint8_t out[16])
{
	for (int i = 0; i < SPOOL_ID_LEN; i++) {
		char c = p[i];
		int v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -EINVAL;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	if (nul && p[SPOOL_ID_LEN])
		return -EINVAL;
	return 0;
}

static void format_id(const uint8_t id[16], char out[SPOOL_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 15];
	}
	out[SPOOL_ID_LEN] = '\0';
}

/* ---- file I/O that retries EINTR and short transfers ---- */

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const char *c = p;

	while (n) {
		ssize_t w = pwrite(fd, c, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		c += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Writes zeros over [from, to) of fd.  0 or -errno. */
static int zero_range(int fd, uint64_t from, uint64_t to)
{
	static const unsigned char zeros[IO_CHUNK];
	int r = 0;

	while (from < to && r == 0) {
		size_t n = to - from < sizeof(zeros) ? (size_t)(to - from) : sizeof(zeros);
		r = pwrite_all(fd, zeros, n, from);
		from += n;
	}
	return r;
}

/* Reads up to n bytes at off: the count (short only at the end of the file) or -errno. */
static ssize_t pread_full(int fd, void *p, size_t n, uint64_t off)
{
	char *c = p;
	size_t got = 0;

	while (got < n) {
		ssize_t k = pread(fd, c + got, n - got, (off_t)(off + got));

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static int sync_fd(int fd, bool data_only)
{
	int r = data_only ? fdatasync(fd) : fsync(fd);

	return r < 0 ? -errno : 0;
}

/* A file read front to back through a buffer, with a running crc. */
struct reader {
	int fd;
	uint64_t off;		/* file offset of buf[0] */
	size_t pos, len;
	uint32_t crc;		/* of the bytes taken since it was last set to 0 */
	unsigned char buf[IO_CHUNK];
};

static uint64_t rd_offset(const struct reader *r)
{
	return r->off + r->pos;
}

/* The next rd_take reads from offset off. */
static void rd_seek(struct reader *r, uint64_t off)
{
	r->off = off;
	r->pos = r->len = 0;
}

/* Takes n bytes: 0, 1 when the file ends first (*got says how many were
 * there), -errno. */
static int rd_take(struct reader *r, void *p, size_t n, size_t *got)
{
	unsigned char *out = p;
	size_t have = 0;

	while (have < n) {
		size_t take;

		if (r->pos == r->len) {
			ssize_t k;

			r->off += r->len;
			r->pos = r->len = 0;
			k = pread_full(r->fd, r->buf, sizeof(r->buf), r->off);
			if (k < 0)
				return (int)k;
			if (k == 0)
				break;
			r->len = (size_t)k;
		}
		take = r->len - r->pos < n - have ? r->len - r->pos : n - have;
		memcpy(out + have, r->buf + r->pos, take);
		r->pos += take;
		have += take;
	}
	r->crc = crc32_update(r->crc, out, have);
	if (got)
		*got = have;
	return have < n ? 1 : 0;
}

/* Buffered writing from offset 0 with a running crc; the first error sticks. */
struct writer {
	int fd;
	uint64_t off;
	uint32_t crc;
	int err;
	struct buf *b;
};

static void wr_flush(struct writer *w)
{
	if (w->err || !w->b->len)
		return;
	w->err = pwrite_all(w->fd, w->b->data, w->b->len, w->off);
	w->off += w->b->len;
	buf_reset(w->b);
}

static void wr_put(struct writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	w->crc = crc32_update(w->crc, p, n);
	if (buf_append(w->b, p, n) < 0) {
		w->err = -ENOMEM;
		return;
	}
	if (w->b->len >= IO_CHUNK)
		wr_flush(w);
}

/* ---- rings: arrays in arrival order that lose entries only at the front ---- */

struct ring {
	unsigned char *v;
	size_t elsize;
	size_t cap;		/* a power of two, or 0 */
	uint64_t lo;		/* position of the oldest entry; positions only grow */
	size_t n;
};

static void *ring_at(const struct ring *r, uint64_t pos)
{
	return r->v + (size_t)(pos & (r->cap - 1)) * r->elsize;
}

/* Makes room for one more entry: 0, -ENOSPC at RING_MAX, -ENOMEM. */
static int ring_reserve(struct ring *r)
{
	size_t cap;
	unsigned char *v;

	if (r->n < r->cap)
		return 0;
	if (r->n >= RING_MAX)
		return -ENOSPC;
	cap = r->cap ? r->cap * 2 : 256;
	v = malloc(cap * r->elsize);
	if (!v)
		return -ENOMEM;
	for (uint64_t pos = r->lo; pos < r->lo + r->n; pos++)
		memcpy(v + (size_t)(pos & (cap - 1)) * r->elsize, ring_at(r, pos), r->elsize);
	free(r->v);
	r->v = v;
	r->cap = cap;
	return 0;
}

/* After ring_reserve.  Returns the new entry's position. */
static uint64_t ring_push(struct ring *r, const void *e)
{
	uint64_t pos = r->lo + r->n;

	memcpy(ring_at(r, pos), e, r->elsize);
	r->n++;
	return pos;
}

/* ---- id tables: open addressing, linear probing, over a ring whose entries start with a 16-byte id ---- */

struct idtab {
	uint32_t *slot;		/* 0 empty, else (ring position & HANDLE_MASK) + 1 */
	size_t mask;
	unsigned bits;
	size_t n;
};

static size_t id_home(const struct idtab *t, const uint8_t *id)
{
	uint64_t h = get64(id) ^ get64(id + 8) * 0x9E3779B97F4A7C15ull;

	return (size_t)((h * 0xBF58476D1CE4E5B9ull) >> (64 - t->bits));
}

static uint64_t slot_pos(const struct ring *r, uint32_t v)
{
	return r->lo + ((v - 1 - (uint32_t)r->lo) & HANDLE_MASK);
}

static void idtab_put(uint32_t *slot, size_t mask, size_t home, uint32_t v)
{
	size_t i = home;

	while (slot[i])
		i = (i + 1) & mask;
	slot[i] = v;
}

/* Makes room for one more id (load at most 1/2): 0 or -ENOMEM. */
static int idtab_reserve(struct idtab *t, const struct ring *r)
{
	struct idtab nt;

	if (t->slot && (t->n + 1) * 2 <= t->mask + 1)
		return 0;
	nt.bits = t->slot ? t->bits + 1 : 10;
	nt.mask = ((size_t)1 << nt.bits) - 1;
	nt.n = t->n;
	nt.slot = calloc(nt.mask + 1, sizeof(*nt.slot));
	if (!nt.slot)
		return -ENOMEM;
	for (size_t i = 0; t->slot && i <= t->mask; i++)
		if (t->slot[i])
			idtab_put(nt.slot, nt.mask, id_home(&nt, ring_at(r, slot_pos(r, t->slot[i]))),
				  t->slot[i]);
	free(t->slot);
	*t = nt;
	return 0;
}

static bool idtab_find(const struct idtab *t, const struct ring *r, const uint8_t *id, uint64_t *pos)
{
	if (!t->slot)
		return false;
	for (size_t i = id_home(t, id);; i = (i + 1) & t->mask) {
		uint64_t p;

		if (!t->slot[i])
			return false;
		p = slot_pos(r, t->slot[i]);
		if (memcmp(ring_at(r, p), id, 16) == 0) {
			*pos = p;
			return true;
		}
	}
}

/* After idtab_reserve. */
static void idtab_add(struct idtab *t, const struct ring *r, uint64_t pos)
{
	idtab_put(t->slot, t->mask, id_home(t, ring_at(r, pos)), (uint32_t)(pos & HANDLE_MASK) + 1);
	t->n++;
}

/* Removes the slot of ring position pos, if it has one (call before the ring drops it). */
static void idtab_remove(struct idtab *t, const struct ring *r, uint64_t pos)
{
	uint32_t v = (uint32_t)(pos & HANDLE_MASK) + 1;
	size_t i, j;

	if (!t->slot)
		return;
	for (i = id_home(t, ring_at(r, pos)); t->slot[i] != v; i = (i + 1) & t->mask)
		if (!t->slot[i])
			return;
	/* Backward-shift deletion: move up every later entry of the run whose
	 * home is not between the hole and itself. */
	for (;;) {
		t->slot[i] = 0;
		for (j = (i + 1) & t->mask;; j = (j + 1) & t->mask) {
			size_t k;

			if (!t->slot[j]) {
				t->n--;
				return;
			}
			k = id_home(t, ring_at(r, slot_pos(r, t->slot[j])));
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			t->slot[i] = t->slot[j];
			i = j;
			break;
		}
	}
}

/* ---- the spool ---- */

struct rec {			/* an alert in a segment, or uncommitted */
	uint8_t id[16];		/* first: the id table reads it here */
	uint64_t seq;
	uint64_t off;		/* of its record in the segment; in `pending` while uncommitted */
	uint32_t len;		/* JSON bytes */
};

struct mem {			/* a remembered delivered id */
	uint8_t id[16];
	int64_t time;		/* when the last sink acked it */
};

struct seg {
	uint64_t first;		/* seq in its name */
	uint64_t end;		/* seq after its last alert (first when empty) */
	uint64_t size;		/* bytes, committed */
};

struct sink {
	char name[SPOOL_MAX_SINK_NAME + 1];
	uint64_t pos;		/* seq of the oldest alert it has not acked */
	uint64_t lost;		/* alerts it had not taken that damage found at open lost */
};

struct spool {
	char *dir;
	int dirfd;			/* holds the flock */
	struct spool_limits lim;
	size_t nsinks;
	struct sink sink[SPOOL_MAX_SINKS];

	struct seg *seg;
	size_t nseg, segcap;
	uint64_t seg_bytes;		/* sum of seg[].size */
	int wfd;			/* the last segment, or -1 */
	int rfd;			/* an older segment being read, or -1 */
	uint64_t rfirst;		/* which one */

	struct ring recs;		/* struct rec, seq order: segments' alerts, then uncommitted */
	struct idtab rec_ids;
	struct ring mems;		/* struct mem, oldest first */
	struct idtab mem_ids;

	uint64_t next_seq;		/* of the next alert added */
	uint64_t durable_next;		/* alerts below it are committed */
	uint64_t delivered_next;	/* alerts below it were acked by every sink */
	struct buf pending;		/* encoded uncommitted records */
	struct buf scratch;		/* the record spool_peek returns; file I/O */

	int afd;			/* acks.log, or -1 */
	uint64_t ack_size;		/* its committed size */
	uint64_t gen;
	uint64_t state_size;
	uint64_t compact_at;		/* ack_size at which a compaction is due */
	int compact_error;		/* errno of the last failed one, or 0 */

	uint64_t torn_records, torn_bytes, duplicates;
	uint64_t floor;			/* at open: the lowest position of a sink the state knew */
	const char *ack_damage;		/* what was wrong with acks.log at open, or NULL */
	uint64_t ack_damage_at;		/* from which byte */
	uint64_t lost_alerts;
	size_t ndamage;			/* damaged ranges found at open; the first in damage[] */
	struct spool_damage damage[SPOOL_MAX_DAMAGE];
	uint64_t *lost;			/* every lost range, [2i, 2i+1): seqs */
	size_t nlost, lostcap;
	int reclaim_error;		/* errno of the last segment that could not be deleted */
	int failed;			/* the error that made the spool unusable, or 0 */
	char failmsg[256];
};

static int64_t now(const struct spool *s)
{
	return s->lim.now ? s->lim.now() : (int64_t)time(NULL);
}

static bool regular(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* A write refused for want of space (nothing of it is durable yet). */
static bool no_space(int err)
{
	return err == ENOSPC || err == EDQUOT;
}

/* Reserves the ack log's blocks up to the size at which it is compacted
 * (the file's size does not change), so that acks, which free space,
 * still land when the disk is full; on a disk with less room, as much as
 * there is (down to 64 KiB).  Best effort: not every file system can. */
static void reserve_ack_log(const struct spool *s, int fd)
{
	for (uint64_t n = s->lim.ack_log_bytes + FILE_HEADER; n >= (64u << 10); n /= 2)
		if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)n) == 0 || errno != ENOSPC)
			return;
}

/* Marks the spool unusable after a failed write whose effect on disk is unknown. */
static int __attribute__((format(printf, 5, 6))) poison(struct spool *s, char *msg, size_t msglen, int err,
							 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->failmsg, sizeof(s->failmsg), fmt, ap);
	va_end(ap);
	s->failed = err;
	return msg_fail(msg, msglen, err, "%s", s->failmsg);
}

static int failed_before(const struct spool *s, char *msg, size_t msglen)
{
	return msg_fail(msg, msglen, -EIO, "the spool is unusable since an earlier failure (%s); reopen it",
		     s->failmsg);
}

static void seg_name(uint64_t first, char out[32])
{
	snprintf(out, 32, "seg-%016" PRIx64, first);
}

static uint64_t min_pos(const struct spool *s)
{
	uint64_t m = UINT64_MAX;

	for (size_t i = 0; i < s->nsinks; i++)
		if (s->sink[i].pos < m)
			m = s->sink[i].pos;
	return m;
}

/* Ring position of the first alert with seq >= seq (recs.lo + recs.n if none). */
static uint64_t rec_lower_bound(const struct spool *s, uint64_t seq)
{
	uint64_t lo = s->recs.lo, hi = s->recs.lo + s->recs.n;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (((const struct rec *)ring_at(&s->recs, mid))->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The committed alerts at or after seq. */
static uint64_t count_pending(const struct spool *s, uint64_t seq)
{
	return rec_lower_bound(s, s->durable_next) - rec_lower_bound(s, seq);
}

/* The sink whose oldest pending alert is the oldest of all, or SIZE_MAX. */
static size_t holding_sink(const struct spool *s)
{
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < s->nsinks; i++)
		if (count_pending(s, s->sink[i].pos) &&
		    (best == SIZE_MAX || s->sink[i].pos < s->sink[best].pos))
			best = i;
	return best;
}

static bool expired(const struct spool *s, int64_t t, int64_t at)
{
	return t < at - s->lim.remember_seconds;
}

/* Forgets the remembered ids past the age or count bound. */
static void forget_old(struct spool *s, int64_t at)
{
	while (s->mems.n) {
		const struct mem *m = ring_at(&s->mems, s->mems.lo);

		if (s->mems.n <= s->lim.max_ids && !expired(s, m->time, at))
			break;
		idtab_remove(&s->mem_ids, &s->mems, s->mems.lo);
		s->mems.lo++;
		s->mems.n--;
	}
}

static int remember_reserve(struct spool *s)
{
	int r = ring_reserve(&s->mems);

	return r < 0 ? r : idtab_reserve(&s->mem_ids, &s->mems);
}

/* After remember_reserve.  An id remembered already gets the later of the
 * two times, in place (the ring is then not quite in time order: an entry
 * behind it that expired first is dropped a little later, and lookups check
 * the time anyway). */
static void remember(struct spool *s, const uint8_t id[16], int64_t t, int64_t at)
{
	struct mem m, *old;
	uint64_t pos;

	if (idtab_find(&s->mem_ids, &s->mems, id, &pos)) {
		old = ring_at(&s->mems, pos);
		if (old->time < t)
			old->time = t;
		return;
	}
	memcpy(m.id, id, 16);
	m.time = t;
	idtab_add(&s->mem_ids, &s->mems, ring_push(&s->mems, &m));
	forget_old(s, at);
}

static int rec_reserve(struct spool *s)
{
	int r = ring_reserve(&s->recs);

	return r < 0 ? r : idtab_reserve(&s->rec_ids, &s->recs);
}

/* After rec_reserve.  A duplicate id (only possible in damaged files) stays
 * out of the table: the first alert with it answers for it. */
static void rec_push(struct spool *s, const struct rec *rc)
{
	uint64_t pos = ring_push(&s->recs, rc), other;

	if (!idtab_find(&s->rec_ids, &s->recs, rc->id, &other) || other == pos)
		idtab_add(&s->rec_ids, &s->recs, pos);
}

static void rec_pop_front(struct spool *s)
{
	idtab_remove(&s->rec_ids, &s->recs, s->recs.lo);
	s->recs.lo++;
	s->recs.n--;
}

static void close_reader(struct spool *s)
{
	if (s->rfd >= 0)
		close(s->rfd);
	s->rfd = -1;
}

/* Deletes the segments before the last whose alerts every sink acked.  An
 * unlink that fails is tried again after the next ack (the stats show it). */
static void reclaim(struct spool *s)
{
	uint64_t m = min_pos(s);
	char name[32];

	while (s->nseg >= 2 && s->seg[0].end <= m && s->seg[0].end <= s->delivered_next) {
		seg_name(s->seg[0].first, name);
		if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT) {
			s->reclaim_error = errno;
			return;
		}
		s->reclaim_error = 0;
		if (s->rfd >= 0 && s->rfirst == s->seg[0].first)
			close_reader(s);
		while (s->recs.n && ((const struct rec *)ring_at(&s->recs, s->recs.lo))->seq < s->seg[0].end)
			rec_pop_front(s);
		s->seg_bytes -= s->seg[0].size;
		memmove(s->seg, s->seg + 1, (s->nseg - 1) * sizeof(*s->seg));
		s->nseg--;
	}
}

static int seg_reserve(struct spool *s)
{
	struct seg *v;
	size_t cap;

	if (s->nseg < s->segcap)
		return 0;
	cap = s->segcap ? s->segcap * 2 : 16;
	v = realloc(s->seg, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->seg = v;
	s->segcap = cap;
	return 0;
}

/* ---- compaction: the state file ---- */

/* The ack log size at which the next compaction is due: when the log has
 * grown past the state file (so rewriting costs at most as much as was
 * logged) and past ack_log_bytes. */
static uint64_t compact_due(const struct spool *s)
{
	return (s->state_size > s->lim.ack_log_bytes ? s->state_size : s->lim.ack_log_bytes) + FILE_HEADER;
}

/* The size an ack log is made (zeros after the header). */
static uint64_t ack_made(const struct spool *s)
{
	return FILE_HEADER + s->lim.ack_log_bytes;
}

/* Takes back the bytes [s->ack_size, s->ack_size + n) of an ack write that
 * failed: zeros within the made size (holes, when zeros cannot be written
 * for want of space), the file cut back past it.  0 or -errno. */
static int ack_unwrite(struct spool *s, size_t n)
{
	uint64_t from = s->ack_size, to = s->ack_size + n, made = ack_made(s);
	uint64_t keep = from > made ? from : made;
	int r = 0;

	if (from < made) {
		uint64_t end = to < made ? to : made;
		r = zero_range(s->afd, from, end);
		if (r < 0 && fallocate(s->afd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
				       (off_t)(end - from)) == 0)
			r = 0;
	}
	if (r == 0 && to > keep && ftruncate(s->afd, (off_t)keep) < 0)
		r = -errno;
	return r;
}

/* A new ack log with gen's header, put in place whole (acks.tmp, fsync,
 * rename, fsync of the directory) as s->afd. */
static int create_ack_log(struct spool *s, uint64_t gen, char *msg, size_t msglen)
{
	unsigned char b[FILE_HEADER];
	int fd, r;

	memcpy(b, ACK_MAGIC, 8);
	put64(b + 8, gen);
	fd = openat(s->dirfd, ACK_TMP, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return msg_fail(msg, msglen, -errno, "%s/%s: cannot create: %s", s->dir, ACK_TMP, strerror(errno));
	r = pwrite_all(fd, b, FILE_HEADER, 0);
	if (r == 0 && ftruncate(fd, (off_t)ack_made(s)) < 0)
		r = -errno;
	if (r == 0)
		r = sync_fd(fd, true);
	if (r == 0 && renameat(s->dirfd, ACK_TMP, s->dirfd, ACK_FILE) < 0)
		r = -errno;
	if (r == 0)
		r = sync_fd(s->dirfd, false);
	if (r < 0) {
		close(fd);
		return msg_fail(msg, msglen, r, "%s/%s: cannot create: %s", s->dir, ACK_FILE, strerror(-r));
	}
	s->afd = fd;
	return 0;
}

static int compact(struct spool *s, char *msg, size_t msglen)
{
	struct writer w = { .fd = -1, .b = &s->scratch };
	uint64_t gen = s->gen + 1;
	unsigned char b[FILE_HEADER];
	struct stat st;
	int r;

	forget_old(s, now(s));
	if (s->afd < 0) {
		/* The ack log exists (with the current gen, which the reset
		 * below moves on) before a new state is put in place, so a
		 * missing one is never a crash (load_acks says so). */
		r = create_ack_log(s, s->gen, msg, msglen);
		if (r < 0)
			return r;
	}
	buf_reset(&s->scratch);
	if (unlinkat(s->dirfd, STATE_TMP, 0) < 0 && errno != ENOENT)
		return msg_fail(msg, msglen, -errno, "%s/%s: cannot remove: %s", s->dir, STATE_TMP, strerror(errno));
	w.fd = openat(s->dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w.fd < 0)
		return msg_fail(msg, msglen, -errno, "%s/%s: cannot create: %s",
			     s->dir, STATE_TMP, strerror(errno));

	wr_put(&w, STATE_MAGIC, 8);
	put64(b, gen);
	wr_put(&w, b, 8);
	put64(b, s->durable_next);
	wr_put(&w, b, 8);
	put64(b, s->delivered_next);
	wr_put(&w, b, 8);
	put32(b, (uint32_t)s->nsinks);
	wr_put(&w, b, 4);
	for (size_t i = 0; i < s->nsinks; i++) {
		b[0] = (unsigned char)strlen(s->sink[i].name);
		wr_put(&w, b, 1);
		wr_put(&w, s->sink[i].name, b[0]);
		put64(b, s->sink[i].pos);
		wr_put(&w, b, 8);
	}
	put64(b, s->mems.n);
	wr_put(&w, b, 8);
	for (uint64_t pos = s->mems.lo; pos < s->mems.lo + s->mems.n; pos++) {
		const struct mem *m = ring_at(&s->mems, pos);

		wr_put(&w, m->id, 16);
		put64(b, (uint64_t)m->time);
		wr_put(&w, b, 8);
	}
	put32(b, w.crc);
	wr_put(&w, b, 4);
	wr_flush(&w);
	r = w.err;
	if (r < 0) {
		msg_fail(msg, msglen, r, "%s/%s: cannot write: %s", s->dir, STATE_TMP, strerror(-r));
		goto fail;
	}
	r = sync_fd(w.fd, false);
	if (r < 0) {
		msg_fail(msg, msglen, r, "%s/%s: cannot fsync: %s", s->dir, STATE_TMP, strerror(-r));
		goto fail;
	}
	r = close(w.fd) < 0 ? -errno : 0;
	w.fd = -1;
	if (r < 0) {
		msg_fail(msg, msglen, r, "%s/%s: cannot close: %s", s->dir, STATE_TMP, strerror(-r));
		goto fail;
	}
	if (renameat(s->dirfd, STATE_TMP, s->dirfd, STATE_FILE) < 0) {
		r = -errno;
		msg_fail(msg, msglen, r, "%s/%s: cannot rename to %s: %s",
		      s->dir, STATE_TMP, STATE_FILE, strerror(-r));
		goto fail;
	}
	/* The new state is in place: from here on a failure leaves the disk
	 * in a state this process cannot describe, so it makes the spool
	 * unusable (reopening sorts it out). */
	r = sync_fd(s->dirfd, false);
	if (r < 0)
		return poison(s, msg, msglen, r, "%s: cannot fsync the directory: %s", s->dir, strerror(-r));
	s->gen = gen;
	s->state_size = w.off;
	s->compact_error = 0;

	/* The log made long first (zeros), the new gen's header next, then
	 * the old acks go: a crash in between replays acks the new state
	 * holds already (idempotent), and the file is never shorter than it
	 * was made. */
	if (fstat(s->afd, &st) < 0)
		return poison(s, msg, msglen, -errno, "%s/%s: cannot stat: %s", s->dir, ACK_FILE, strerror(errno));
	if ((uint64_t)st.st_size < ack_made(s) && ftruncate(s->afd, (off_t)ack_made(s)) < 0)
		return poison(s, msg, msglen, -errno, "%s/%s: cannot extend: %s", s->dir, ACK_FILE, strerror(errno));
	memcpy(b, ACK_MAGIC, 8);
	put64(b + 8, gen);
	r = pwrite_all(s->afd, b, FILE_HEADER, 0);
	if (r == 0)
		r = zero_range(s->afd, FILE_HEADER, s->ack_size < ack_made(s) ? s->ack_size : ack_made(s));
	if (r < 0)
		return poison(s, msg, msglen, r, "%s/%s: cannot write: %s", s->dir, ACK_FILE, strerror(-r));
	if ((uint64_t)st.st_size > ack_made(s) && ftruncate(s->afd, (off_t)ack_made(s)) < 0)
		return poison(s, msg, msglen, -errno, "%s/%s: cannot truncate: %s", s->dir, ACK_FILE,
			      strerror(errno));
	reserve_ack_log(s, s->afd);
	r = sync_fd(s->afd, true);
	if (r < 0)
		return poison(s, msg, msglen, r, "%s/%s: cannot fsync: %s", s->dir, ACK_FILE, strerror(-r));
	s->ack_size = FILE_HEADER;
	s->compact_at = compact_due(s);
	return 0;

fail:
	if (w.fd >= 0)
		close(w.fd);
	unlinkat(s->dirfd, STATE_TMP, 0);	/* best effort: a leftover is removed at the next open */
	return r;
}

/* ---- opening ---- */

static int sink_index(const struct spool *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->nsinks; i++)
		if (strlen(s->sink[i].name) == len && memcmp(s->sink[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

static bool valid_sink_name(const char *name)
{
	size_t n = strnlen(name, SPOOL_MAX_SINK_NAME + 1);

	if (n == 0 || n > SPOOL_MAX_SINK_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] > '~')
			return false;
	return true;
}

static int set_limits(struct spool *s, const struct spool_limits *lim, char *msg, size_t msglen)
{
	struct spool_limits l = { 0 };

	if (lim)
		l = *lim;
	if (!l.max_bytes)
		l.max_bytes = SPOOL_DEFAULT_MAX_BYTES;
	if (!l.segment_bytes)
		l.segment_bytes = SPOOL_DEFAULT_SEGMENT_BYTES;
	if (!l.max_ids)
		l.max_ids = SPOOL_DEFAULT_MAX_IDS;
	if (!l.remember_seconds)
		l.remember_seconds = SPOOL_DEFAULT_REMEMBER_SECONDS;
	if (!l.ack_log_bytes)
		l.ack_log_bytes = SPOOL_DEFAULT_ACK_LOG_BYTES;
	if (l.ack_log_bytes < SPOOL_MIN_SEGMENT_BYTES || l.ack_log_bytes > UINT64_MAX / 4)
		return msg_fail(msg, msglen, -EINVAL, "spool limits: ack_log_bytes must be at least %llu",
			     SPOOL_MIN_SEGMENT_BYTES);
	if (l.segment_bytes < SPOOL_MIN_SEGMENT_BYTES || l.segment_bytes > UINT64_MAX / 4 ||
	    l.max_bytes < 2 * l.segment_bytes)
		return msg_fail(msg, msglen, -EINVAL,
			     "spool limits: segment_bytes must be at least %llu and max_bytes at least twice it",
			     SPOOL_MIN_SEGMENT_BYTES);
	if (l.max_ids > SPOOL_HARD_MAX_IDS)
		return msg_fail(msg, msglen, -EINVAL, "spool limits: max_ids may not exceed %u",
			     SPOOL_HARD_MAX_IDS);
	if (l.remember_seconds < 0 || l.remember_seconds > MAX_REMEMBER_SECONDS)
		return msg_fail(msg, msglen, -EINVAL, "spool limits: remember_seconds must be 0 to %lld",
			     MAX_REMEMBER_SECONDS);
	s->lim = l;
	return 0;
}

/* Creates dir if missing (and makes that durable), opens and locks it. */
static int open_dir(struct spool *s, char *msg, size_t msglen)
{
	if (mkdir(s->dir, 0700) == 0) {
		char *copy = strdup(s->dir);
		int pfd, r = 0;

		if (!copy)
			return -ENOMEM;
		pfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0 || fsync(pfd) < 0)
			r = -errno;
		if (pfd >= 0)
			close(pfd);
		free(copy);
		if (r < 0)
			return msg_fail(msg, msglen, r, "%s: cannot fsync the parent directory: %s", s->dir,
				     strerror(-r));
	} else if (errno != EEXIST) {
		return msg_fail(msg, msglen, -errno, "%s: cannot create: %s", s->dir, strerror(errno));
	}
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return msg_fail(msg, msglen, -errno, "%s: cannot open: %s", s->dir, strerror(errno));
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return msg_fail(msg, msglen, -EBUSY, "%s: the spool is in use by another process",
				     s->dir);
		return msg_fail(msg, msglen, -errno, "%s: cannot lock: %s", s->dir, strerror(errno));
	}
	if (unlinkat(s->dirfd, STATE_TMP, 0) < 0 && errno != ENOENT)
		return msg_fail(msg, msglen, -errno, "%s/%s: cannot remove: %s",
			     s->dir, STATE_TMP, strerror(errno));
	return 0;
}

static struct reader *reader_new(int fd)
{
	struct reader *r = malloc(sizeof(*r));

	if (r) {
		memset(r, 0, offsetof(struct reader, buf));
		r->fd = fd;
	}
	return r;
}

/* Reads the state file: positions of the configured sinks it knows (known[i]
 * set), remembered ids.  *found false when there is none; *dropped when it
 * names sinks that are no longer configured. */
static int load_state(struct spool *s, bool *known, bool *found, bool *dropped, char *msg, size_t msglen)
{
	unsigned char b[SPOOL_MAX_SINK_NAME + 16];
	struct reader *rd = NULL;
	uint64_t count;
	uint32_t crc;
	int64_t at = now(s);
	int fd, r;

	/* O_NONBLOCK: a FIFO put in its place must not hang the start */
	fd = openat(s->dirfd, STATE_FILE, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 && !regular(fd)) {
		close(fd);
		return msg_fail(msg, msglen, -EBADMSG, "%s/%s: not a regular file", s->dir, STATE_FILE);
	}
	if (fd < 0) {
		if (errno != ENOENT)
			return msg_fail(msg, msglen, -errno, "%s/%s: cannot open: %s", s->dir, STATE_FILE,
				     strerror(errno));
		*found = false;
		return 0;
	}
	*found = true;
	rd = reader_new(fd);
	if (!rd) {
		r = -ENOMEM;
		goto out;
	}
	r = rd_take(rd, b, 36, NULL);
	if (r)
		goto bad;
	if (memcmp(b, STATE_MAGIC, 8) != 0) {
		r = msg_fail(msg, msglen, -EBADMSG, "%s/%s: not a spool state file", s->dir, STATE_FILE);
		goto out;
	}
	s->gen = get64(b + 8);
	s->next_seq = get64(b + 16);
	s->delivered_next = get64(b + 24);
	count = get32(b + 32);
	if (count > SPOOL_MAX_SINKS)
		goto bad;
	for (uint64_t i = 0; i < count; i++) {
		int k;

		r = rd_take(rd, b, 1, NULL);
		if (r || b[0] == 0 || b[0] > SPOOL_MAX_SINK_NAME)
			goto bad;
		r = rd_take(rd, b + 1, b[0] + 8u, NULL);
		if (r)
			goto bad;
		k = sink_index(s, (const char *)b + 1, b[0]);
		if (k < 0) {
			*dropped = true;
			continue;
		}
		known[k] = true;
		s->sink[k].pos = get64(b + 1 + b[0]);
	}
	r = rd_take(rd, b, 8, NULL);
	if (r)
		goto bad;
	count = get64(b);
	for (uint64_t i = 0; i < count; i++) {
		struct mem m;

		r = rd_take(rd, b, 24, NULL);
		if (r)
			goto bad;
		memcpy(m.id, b, 16);
		m.time = (int64_t)get64(b + 16);
		r = remember_reserve(s);
		if (r < 0)
			goto out;
		remember(s, m.id, m.time, at);
	}
	crc = rd->crc;
	r = rd_take(rd, b, 4, NULL);
	if (r)
		goto bad;
	if (get32(b) != crc) {
		r = msg_fail(msg, msglen, -EBADMSG, "%s/%s: checksum mismatch: the file is damaged", s->dir,
			  STATE_FILE);
		goto out;
	}
	r = rd_take(rd, b, 1, NULL);
	if (r == 0)
		goto bad;	/* bytes after the checksum */
	if (r < 0)
		goto io;
	s->state_size = rd_offset(rd);
	r = 0;
	goto out;

bad:
	if (r < 0)
		goto io;
	r = msg_fail(msg, msglen, -EBADMSG, "%s/%s: damaged or cut short near byte %" PRIu64, s->dir, STATE_FILE,
		  rd_offset(rd));
	goto out;
io:
	msg_fail(msg, msglen, r, "%s/%s: cannot read: %s", s->dir, STATE_FILE, strerror(-r));
out:
	free(rd);
	close(fd);
	return r;
}

/* Counts a torn tail, the bytes [good, tail_end) of a file of size bytes,
 * and takes it away: the file keeps `keep` bytes (good for a segment and an
 * old ack log; an ack log made long keeps its made size), the torn bytes
 * below that zeroed, the rest cut off. */
static int cut_tail(struct spool *s, int fd, const char *name, uint64_t good, uint64_t tail_end, uint64_t size,
		    uint64_t keep, char *msg, size_t msglen)
{
	int r = 0;

	s->torn_records++;
	s->torn_bytes += tail_end - good;
	if (keep > good)
		r = zero_range(fd, good, tail_end < keep ? tail_end : keep);
	if (r == 0 && size > keep && ftruncate(fd, (off_t)keep) < 0)
		r = -errno;
	if (r < 0)
		return msg_fail(msg, msglen, r, "%s/%s: cannot take the torn tail away: %s", s->dir, name,
				strerror(-r));
	r = sync_fd(fd, true);
	if (r < 0)
		return msg_fail(msg, msglen, r, "%s/%s: cannot fsync: %s", s->dir, name, strerror(-r));
	return 0;
}

/* A file that holds nothing usable (a segment, or something else where
 * acks.log goes) is renamed <name>.damaged: kept for the operator, out of
 * the spool's way. */
static int set_aside(struct spool *s, const char *name, char *msg, size_t msglen)
{
	char to[48];

	snprintf(to, sizeof(to), "%s.damaged", name);
	if (renameat(s->dirfd, name, s->dirfd, to) < 0)
		return msg_fail(msg, msglen, -errno, "%s/%s: cannot rename to %s: %s", s->dir, name, to,
				strerror(errno));
	return 0;
}

/* *end: just past the last byte in [from, to) of fd that is not zero;
 * from when there is none.  0 or -errno. */
static int nonzero_end(int fd, uint64_t from, uint64_t to, uint64_t *end)
{
	unsigned char b[IO_CHUNK];

	*end = from;
	for (uint64_t off = from; off < to;) {
		size_t want = to - off < sizeof(b) ? (size_t)(to - off) : sizeof(b);
		ssize_t n = pread(fd, b, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		for (ssize_t i = n; i > 0; i--) {
			if (b[i - 1]) {
				*end = off + (uint64_t)i;
				break;
			}
		}
		off += (uint64_t)n;
	}
	return 0;
}

/* Replays acks.log on top of the state.  *clean false when there is none or
 * it is stale (then a compaction must write a fresh one). */
static int load_acks(struct spool *s, bool *known, bool *clean, char *msg, size_t msglen)
{
	unsigned char b[ACK_REC_FIXED + SPOOL_MAX_SINK_NAME];
	struct reader *rd = NULL;
	struct stat st;
	uint64_t good, limit, tail_end;
	int64_t at = now(s);
	bool made = false;
	int r;

	*clean = false;
	s->afd = openat(s->dirfd, ACK_FILE, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (s->afd < 0) {
		if (errno == ENOENT) {
			/* compact() creates it before the state: not a crash */
			s->ack_damage = "missing (deleted?)";
			return 0;
		}
		if (errno != ELOOP && errno != EISDIR && errno != ENXIO)
			return msg_fail(msg, msglen, -errno, "%s/%s: cannot open: %s",
				     s->dir, ACK_FILE, strerror(errno));
	} else if (fstat(s->afd, &st) < 0) {
		return msg_fail(msg, msglen, -errno, "%s/%s: cannot stat: %s",
			     s->dir, ACK_FILE, strerror(errno));
	}
	if (s->afd < 0 || !S_ISREG(st.st_mode)) {
		/* a directory, link or FIFO in its place: out of the way, as
		 * a segment would be, and its acks are lost (said) */
		if (s->afd >= 0)
			close(s->afd);
		s->afd = -1;
		s->ack_damage = "not a regular file (set aside as acks.log.damaged)";
		return set_aside(s, ACK_FILE, msg, msglen);
	}
	reserve_ack_log(s, s->afd);
	rd = reader_new(s->afd);
	if (!rd)
		return -ENOMEM;
	r = rd_take(rd, b, FILE_HEADER, NULL);
	if (r < 0)
		goto out;
	if (r > 0) {
		/* compact() never leaves it shorter than its header */
		s->ack_damage = "shorter than its header (truncated?)";
		r = 0;
		goto out;
	}
	if (memcmp(b, ACK_MAGIC, 8) == 0) {
		made = true;
	} else if (memcmp(b, ACK_MAGIC_V1, 8) != 0) {
		s->ack_damage = "its header is damaged";
		goto out;
	}
	if (get64(b + 8) + 1 == s->gen)
		goto out;	/* stale (a crash in compact()): its acks are in the state already */
	if (get64(b + 8) != s->gen) {
		s->ack_damage = "it belongs to another state file (restored from elsewhere?)";
		goto out;
	}
	if (made && (uint64_t)st.st_size < ack_made(s))
		s->ack_damage = "shorter than it was made (truncated?)";	/* its acks are still replayed */
	for (;;) {
		uint32_t len, crc;
		size_t got;
		uint64_t seq;
		int k;

		good = rd_offset(rd);
		r = rd_take(rd, b, 8, &got);
		if (r < 0)
			goto out;
		if (r && got == 0)
			break;	/* the end */
		if (!r && get32(b) == 0 && get32(b + 4) == 0)
			goto torn;	/* the end, if only zeros follow */
		len = get32(b + 4);
		if (r || len < ACK_REC_FIXED - 8 || len > ACK_REC_FIXED - 8 + SPOOL_MAX_SINK_NAME)
			goto torn;
		crc = get32(b);
		rd->crc = crc32_update(0, b + 4, 4);
		r = rd_take(rd, b + 8, len, NULL);
		if (r < 0)
			goto out;
		if (r || rd->crc != crc || b[41] != len - (ACK_REC_FIXED - 8))
			goto torn;
		seq = get64(b + 8);
		k = sink_index(s, (const char *)b + ACK_REC_FIXED, b[41]);
		if (k >= 0) {
			known[k] = true;
			if (s->sink[k].pos < seq + 1)
				s->sink[k].pos = seq + 1;
		}
		if (b[40] & ACK_FLAG_DELIVERED) {
			r = remember_reserve(s);
			if (r < 0)
				goto out;
			remember(s, b + 24, (int64_t)get64(b + 16), at);
			if (s->delivered_next < seq + 1)
				s->delivered_next = seq + 1;
		}
	}
	s->ack_size = rd_offset(rd);
	*clean = made && !s->ack_damage;	/* an old or damaged log is rewritten at once */
	r = 0;
	goto out;
torn:
	/* After the last good record: in a log made long, zeros up to its
	 * made size (tail_end: the end of what is not zero); in an old one,
	 * the end of the file.  More than one record's worth is not a crash. */
	limit = made && (uint64_t)st.st_size > ack_made(s) ? ack_made(s) : (uint64_t)st.st_size;
	tail_end = (uint64_t)st.st_size;
	if (made) {
		r = nonzero_end(s->afd, good, limit, &tail_end);
		if (r < 0)
			goto out;
		if ((uint64_t)st.st_size > limit && (uint64_t)st.st_size > good)
			tail_end = (uint64_t)st.st_size;	/* longer than it was made */
	}
	if (tail_end > good) {
		if (tail_end - good > ACK_REC_FIXED + SPOOL_MAX_SINK_NAME) {
			s->ack_damage = "unreadable from a byte on";
			s->ack_damage_at = good;
		}
		r = cut_tail(s, s->afd, ACK_FILE, good, tail_end, (uint64_t)st.st_size,
			     made && ack_made(s) > good ? ack_made(s) : good, msg, msglen);
		if (r < 0)
			goto out;
	}
	s->ack_size = good;
	*clean = made && !s->ack_damage;
	r = 0;
out:
	if (r < 0 && msg && msglen && !msg[0])
		msg_fail(msg, msglen, r, "%s/%s: cannot read: %s", s->dir, ACK_FILE, strerror(-r));
	free(rd);
	return r;
}

/* Notes that the alerts [first, end) cannot be read back (file: the segment,
 * bytes [from, to) of it, or "" when it is gone).  The sinks are moved past
 * them at the end of spool_open.  0 or -ENOMEM. */
static int note_damage(struct spool *s, const char *file, uint64_t from, uint64_t to, uint64_t first, uint64_t end,
		       const char *what)
{
	struct spool_damage *d;
	uint64_t *v;

	if (s->nlost == s->lostcap) {
		size_t cap = s->lostcap ? s->lostcap * 2 : 8;

		v = realloc(s->lost, cap * 2 * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->lost = v;
		s->lostcap = cap;
	}
	s->lost[2 * s->nlost] = first;
	s->lost[2 * s->nlost + 1] = end;
	s->nlost++;
	for (size_t k = 0; k < s->nsinks; k++)
		if (end > s->sink[k].pos && end > first)
			s->sink[k].lost += end - (first > s->sink[k].pos ? first : s->sink[k].pos);
	if (end > s->floor && end > first)
		s->lost_alerts += end - (first > s->floor ? first : s->floor);
	if (s->ndamage++ >= SPOOL_MAX_DAMAGE)
		return 0;
	d = &s->damage[s->ndamage - 1];
	snprintf(d->file, sizeof(d->file), "%s", file);
	d->from = from;
	d->to = to;
	d->first_seq = first;
	d->end_seq = end;
	d->undelivered = end > s->floor && end > first ? end - (first > s->floor ? first : s->floor) : 0;
	d->what = what;
	return 0;
}

/* Whether the bytes at p (avail of them) begin an intact record with a seq in
 * [lo, hi]; its seq in *seq. */
static bool intact_record(const unsigned char *p, uint64_t avail, uint64_t lo, uint64_t hi, uint64_t *seq)
{
	uint8_t bin[16];
	uint32_t len;

	if (avail < SEG_REC_HEADER + 1)
		return false;
	len = get32(p + 4);
	if (len == 0 || len > SPOOL_MAX_ALERT || len > avail - SEG_REC_HEADER)
		return false;
	*seq = get64(p + 8);
	if (*seq < lo || *seq > hi || parse_id((const char *)p + 24, false, bin) < 0)
		return false;
	return crc32_update(0, p + 4, SEG_REC_HEADER - 4 + len) == get32(p);
}

/* After a bad record at byte `bad` of a segment of `size` bytes whose next
 * alert should have been `expected`: finds the next intact record.  Every
 * record takes more than SEG_REC_HEADER bytes, so the seq of the next one
 * is at most expected + (its offset - bad) / (SEG_REC_HEADER + 1), which
 * leaves a chance match on damaged bytes practically nil.  Returns 1 with
 * *off and *seq, 0 when there is none (the rest is a torn tail), -errno. */
static int find_intact(int fd, uint64_t size, uint64_t bad, uint64_t expected, uint64_t *off, uint64_t *seq)
{
	unsigned char *map;
	int r = 0;

	if (size <= bad + SEG_REC_HEADER || size > SIZE_MAX)
		return 0;
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	for (uint64_t at = bad + 1; at + SEG_REC_HEADER < size; at++) {
		if (intact_record(map + at, size - at, expected, expected + (at - bad) / (SEG_REC_HEADER + 1), seq)) {
			*off = at;
			r = 1;
			break;
		}
	}
	munmap(map, (size_t)size);
	return r;
}


/* Reads one record at the reader's position: 0 with *rc, 1 at the clean end
 * of the file, 2 for a record that is short or fails its checks, -errno. */
static int read_record(struct spool *s, struct reader *rd, uint64_t expected, struct rec *rc)
{
	unsigned char h[SEG_REC_HEADER];
	uint32_t len, crc;
	size_t got;
	int r;

	rc->off = rd_offset(rd);
	r = rd_take(rd, h, 8, &got);
	if (r < 0)
		return r;
	if (r && got == 0)
		return 1;
	len = get32(h + 4);
	if (r || len == 0 || len > SPOOL_MAX_ALERT)
		return 2;
	crc = get32(h);
	rd->crc = crc32_update(0, h + 4, 4);
	r = rd_take(rd, h + 8, SEG_REC_HEADER - 8, NULL);
	if (r)
		return r < 0 ? r : 2;
	r = buf_reserve(&s->scratch, len);
	if (r < 0)
		return r;
	r = rd_take(rd, s->scratch.data, len, NULL);
	if (r)
		return r < 0 ? r : 2;
	if (rd->crc != crc || get64(h + 8) != expected || parse_id((const char *)h + 24, false, rc->id) < 0)
		return 2;
	rc->seq = expected;
	rc->len = len;
	return 0;
}

/* Scans one segment into the index. */
static int scan_segment(struct spool *s, struct reader *rd, uint64_t first, char *msg, size_t msglen)
{
	unsigned char h[FILE_HEADER];
	char name[32];
	struct stat st;
	struct seg sg = { .first = first, .end = first };
	uint64_t good, size, next, seq;
	bool header_ok;
	int fd, r;

	seg_name(first, name);
	/* O_NONBLOCK: a FIFO put in its place must not hang the start */
	fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && (errno == ELOOP || errno == EISDIR || errno == ENXIO)) {
		r = note_damage(s, name, 0, 0, first, first, "not a regular file: set aside");
		return r < 0 ? r : set_aside(s, name, msg, msglen);
	}
	if (fd < 0)
		return msg_fail(msg, msglen, -errno, "%s/%s: cannot open: %s", s->dir, name, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = msg_fail(msg, msglen, -errno, "%s/%s: cannot stat: %s", s->dir, name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = note_damage(s, name, 0, 0, first, first, "not a regular file: set aside");
		if (r == 0)
			r = set_aside(s, name, msg, msglen);
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (size < FILE_HEADER) {
		/* A crash while creating it: it never held a committed alert. */
		s->torn_records++;
		s->torn_bytes += size;
		r = 0;
		if (unlinkat(s->dirfd, name, 0) < 0)
			r = msg_fail(msg, msglen, -errno, "%s/%s: cannot remove: %s",
				  s->dir, name, strerror(errno));
		goto out;
	}
	if (s->nseg && first < s->seg[s->nseg - 1].end) {
		r = msg_fail(msg, msglen, -EBADMSG, "%s/%s: overlaps the segment before it", s->dir, name);
		goto out;
	}
	memset(rd, 0, offsetof(struct reader, buf));
	rd->fd = fd;
	r = rd_take(rd, h, FILE_HEADER, NULL);
	if (r < 0)
		goto io;
	header_ok = r == 0 && memcmp(h, SEG_MAGIC, 8) == 0 && get64(h + 8) == first;
	r = seg_reserve(s);
	if (r < 0)
		goto out;
	good = FILE_HEADER;
	if (!header_ok) {
		/* Damaged, or not a segment at all: look for its records. */
		r = find_intact(fd, size, FILE_HEADER - 1, first, &next, &seq);
		if (r < 0)
			goto io;
		if (r == 0) {
			r = note_damage(s, name, 0, size, first, first, "not a spool segment: set aside");
			if (r == 0)
				r = set_aside(s, name, msg, msglen);
			goto out;
		}
		memcpy(h, SEG_MAGIC, 8);
		put64(h + 8, first);
		r = pwrite_all(fd, h, FILE_HEADER, 0);
		if (r == 0)
			r = sync_fd(fd, true);
		if (r < 0) {
			msg_fail(msg, msglen, r, "%s/%s: cannot repair its header: %s", s->dir, name, strerror(-r));
			goto out;
		}
		r = note_damage(s, name, 0, next, first, seq, "header damaged (repaired)");
		if (r < 0)
			goto out;
		sg.end = seq;
		rd_seek(rd, next);
	}
	for (;;) {
		struct rec rc;

		good = rd_offset(rd);
		r = read_record(s, rd, sg.end, &rc);
		if (r < 0)
			goto io;
		if (r == 1)
			break;
		if (r == 2) {
			/* Intact records after it?  Then this is damage, not a torn tail. */
			r = find_intact(fd, size, good, sg.end, &next, &seq);
			if (r < 0)
				goto io;
			if (r == 0)
				goto torn;
			r = note_damage(s, name, good, next, sg.end, seq, "damaged records");
			if (r < 0)
				goto out;
			sg.end = seq;
			rd_seek(rd, next);
			continue;
		}
		r = rec_reserve(s);
		if (r < 0)
			goto out;
		rec_push(s, &rc);
		sg.end++;
	}
	sg.size = good;
	goto done;
torn:
	r = cut_tail(s, fd, name, good, size, size, good, msg, msglen);
	if (r < 0)
		goto out;
	sg.size = good;
done:
	s->seg[s->nseg++] = sg;
	s->seg_bytes += sg.size;
	r = 0;
	goto out;
io:
	msg_fail(msg, msglen, r, "%s/%s: cannot read: %s", s->dir, name, strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* After the segments are scanned: the alerts that should be there and are
 * not (a segment deleted or set aside, or cut short before the next one, or
 * the last one short of what the state says was committed) are lost too.
 * Then every sink whose position is inside a lost range moves past it. */
static int find_gaps(struct spool *s, const bool *known)
{
	uint64_t expect = s->floor, end = s->next_seq;
	bool moved = true;
	int r = 0;

	if (s->floor == UINT64_MAX)
		return 0;	/* no sink had a position: nothing was pending */
	for (size_t i = 0; i < s->nsinks; i++)
		if (known[i] && s->sink[i].pos > end)
			end = s->sink[i].pos;
	for (size_t i = 0; i < s->nseg && r == 0; i++) {
		if (s->seg[i].first > expect)
			r = note_damage(s, "", 0, 0, expect, s->seg[i].first, "segment missing or cut short");
		if (s->seg[i].end > expect)
			expect = s->seg[i].end;
	}
	if (r == 0 && end > expect)
		r = note_damage(s, "", 0, 0, expect, end, "alerts the state counts as committed are missing");
	while (r == 0 && moved) {
		moved = false;
		for (size_t k = 0; k < s->nlost; k++)
			for (size_t i = 0; i < s->nsinks; i++)
				if (known[i] && s->sink[i].pos >= s->lost[2 * k] && s->sink[i].pos < s->lost[2 * k + 1]) {
					s->sink[i].pos = s->lost[2 * k + 1];
					moved = true;
				}
	}
	free(s->lost);
	s->lost = NULL;
	s->nlost = s->lostcap = 0;
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Finds the segment files and scans them in order; opens the last one that
 * remains (a torn one may have been removed) as s->wfd. */
static int load_segments(struct spool *s, char *msg, size_t msglen)
{
	uint64_t *first = NULL, *v;
	size_t n = 0, cap = 0;
	struct reader *rd = NULL;
	struct dirent *e;
	DIR *d = NULL;
	int fd, r = 0;

	fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = msg_fail(msg, msglen, -errno, "%s: cannot list: %s", s->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	for (;;) {
		uint8_t bin[16];
		char hex[SPOOL_ID_LEN];

		errno = 0;
		e = readdir(d);
		if (!e) {
			if (errno) {
				r = msg_fail(msg, msglen, -errno, "%s: cannot list: %s",
					  s->dir, strerror(errno));
				goto out;
			}
			break;
		}
		if (strncmp(e->d_name, "seg-", 4) != 0 || strlen(e->d_name) != 20)
			continue;
		/* parse_id wants 32 digits: pad the 16 with zeros in front. */
		memset(hex, '0', 16);
		memcpy(hex + 16, e->d_name + 4, 16);
		if (parse_id(hex, false, bin) < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(first, cap * sizeof(*first));
			if (!v) {
				r = -ENOMEM;
				goto out;
			}
			first = v;
		}
		first[n++] = strtoull(e->d_name + 4, NULL, 16);
	}
	if (n > 1)
		qsort(first, n, sizeof(*first), cmp_u64);
	rd = reader_new(-1);
	if (!rd) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && r == 0; i++)
		r = scan_segment(s, rd, first[i], msg, msglen);
	if (r == 0 && s->nseg) {
		char name[32];

		seg_name(s->seg[s->nseg - 1].first, name);
		s->wfd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
		if (s->wfd < 0)
			r = msg_fail(msg, msglen, -errno, "%s/%s: cannot open: %s", s->dir, name, strerror(errno));
	}
out:
	if (d)
		closedir(d);
	free(rd);
	free(first);
	return r;
}

int spool_open(const char *dir, const char *const *sinks, size_t nsinks, const struct spool_limits *lim,
	       struct spool **ret, char *msg, size_t msglen)
{
	bool known[SPOOL_MAX_SINKS] = { false };
	bool found = false, dropped = false, clean = false;
	struct spool *s = NULL;
	uint64_t m;
	int64_t at;
	int r;

	if (msg && msglen)
		msg[0] = '\0';
	pthread_once(&crc_once, crc_init);
	if (!dir || !*dir)
		return msg_fail(msg, msglen, -EINVAL, "spool: no directory given");
	if (nsinks == 0 || nsinks > SPOOL_MAX_SINKS)
		return msg_fail(msg, msglen, -EINVAL, "spool %s: 1 to %d sinks, not %zu",
			     dir, SPOOL_MAX_SINKS, nsinks);
	for (size_t i = 0; i < nsinks; i++) {
		if (!sinks[i] || !valid_sink_name(sinks[i]))
			return msg_fail(msg, msglen, -EINVAL,
				     "spool %s: sink %zu: a name is 1 to %d printable characters without spaces",
				     dir, i, SPOOL_MAX_SINK_NAME);
		for (size_t j = 0; j < i; j++)
			if (strcmp(sinks[i], sinks[j]) == 0)
				return msg_fail(msg, msglen, -EINVAL, "spool %s: sink \"%s\" given twice", dir,
					     sinks[i]);
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->wfd = s->rfd = s->afd = -1;
	s->recs.elsize = sizeof(struct rec);
	s->mems.elsize = sizeof(struct mem);
	buf_init(&s->pending, 0);
	buf_init(&s->scratch, 0);
	s->dir = strdup(dir);
	if (!s->dir) {
		r = -ENOMEM;
		goto fail;
	}
	r = set_limits(s, lim, msg, msglen);
	if (r < 0)
		goto fail;
	s->nsinks = nsinks;
	for (size_t i = 0; i < nsinks; i++)
		strcpy(s->sink[i].name, sinks[i]);

	r = open_dir(s, msg, msglen);
	if (r < 0)
		goto fail;
	r = load_state(s, known, &found, &dropped, msg, msglen);
	if (r < 0)
		goto fail;
	if (found) {
		r = load_acks(s, known, &clean, msg, msglen);
		if (r < 0)
			goto fail;
	}
	s->floor = UINT64_MAX;
	for (size_t i = 0; i < s->nsinks; i++)
		if (known[i] && s->sink[i].pos < s->floor)
			s->floor = s->sink[i].pos;
	r = load_segments(s, msg, msglen);
	if (r == 0)
		r = find_gaps(s, known);
	if (r < 0)
		goto fail;
	if (s->ndamage)
		dropped = true;	/* sinks may have moved past lost alerts: write it down */
	if (!found && s->nseg) {
		r = msg_fail(msg, msglen, -ENOENT,
			  "%s: segments without a %s file: restore it, or remove the seg-* files to start empty",
			  s->dir, STATE_FILE);
		goto fail;
	}

	/* Where the next alert goes: never below what a sink has acked. */
	if (s->nseg && s->seg[s->nseg - 1].end > s->next_seq)
		s->next_seq = s->seg[s->nseg - 1].end;
	for (size_t i = 0; i < s->nsinks; i++)
		if (known[i] && s->sink[i].pos > s->next_seq)
			s->next_seq = s->sink[i].pos;
	s->durable_next = s->next_seq;
	for (size_t i = 0; i < s->nsinks; i++)
		if (!known[i])
			s->sink[i].pos = s->next_seq;	/* new: starts at the end */

	/* Alerts every remaining sink has now (a sink was dropped) are delivered. */
	at = now(s);
	m = min_pos(s);
	if (m > s->delivered_next) {
		uint64_t end = s->recs.lo + s->recs.n;

		for (uint64_t pos = rec_lower_bound(s, s->delivered_next); pos < end; pos++) {
			const struct rec *rc = ring_at(&s->recs, pos);

			if (rc->seq >= m)
				break;
			r = remember_reserve(s);
			if (r < 0)
				goto fail;
			remember(s, rc->id, at, at);
		}
		s->delivered_next = m;
		dropped = true;
	}
	forget_old(s, at);

	for (size_t i = 0; i < s->nsinks; i++)
		if (!known[i])
			dropped = true;	/* the sink set changed: write it down */
	s->compact_at = compact_due(s);
	if (dropped || !clean || s->ack_size >= s->compact_at) {
		r = compact(s, msg, msglen);
		if (r < 0)
			goto fail;
	}
	reclaim(s);
	if (msg && msglen)
		msg[0] = '\0';
	*ret = s;
	return 0;

fail:
	spool_close(s);
	return r;
}

/* ---- adding and committing ---- */

/* The size of the last segment when every sink has acked all of it, else 0. */
static uint64_t acked_tail_bytes(const struct spool *s)
{
	const struct seg *last = s->nseg ? &s->seg[s->nseg - 1] : NULL;

	if (!last || last->end == last->first || last->end > min_pos(s) || last->end > s->delivered_next)
		return 0;
	return last->size;
}

int spool_add(struct spool *s, const char id[SPOOL_ID_LEN + 1], const char *json, size_t len, char *msg,
	      size_t msglen)
{
	unsigned char h[SEG_REC_HEADER];
	struct rec rc;
	uint64_t pos, need;
	int64_t at;
	uint32_t crc;
	size_t k;
	int r;

	if (s->failed)
		return failed_before(s, msg, msglen);
	if (!id || parse_id(id, true, rc.id) < 0)
		return msg_fail(msg, msglen, -EINVAL, "spool: an alert id is 32 lower-case hex digits");
	if (len == 0 || !json)
		return msg_fail(msg, msglen, -EINVAL, "spool: alert %s is empty", id);
	if (len > SPOOL_MAX_ALERT)
		return msg_fail(msg, msglen, -E2BIG, "spool: alert %s is %zu bytes, more than the %u allowed",
			     id, len, SPOOL_MAX_ALERT);
	at = now(s);
	forget_old(s, at);
	if (idtab_find(&s->rec_ids, &s->recs, rc.id, &pos) ||
	    (idtab_find(&s->mem_ids, &s->mems, rc.id, &pos) &&
	     !expired(s, ((const struct mem *)ring_at(&s->mems, pos))->time, at))) {
		s->duplicates++;
		return 0;
	}
	need = SEG_REC_HEADER + len;
	/* A last segment that every sink acked holds nothing: it does not
	 * count, or one big batch could leave the spool refusing every alert
	 * for good (it is deleted once a commit has started a newer one and
	 * that one's first alert is acked). */
	if (s->seg_bytes + s->pending.len + need - acked_tail_bytes(s) > s->lim.max_bytes) {
		k = holding_sink(s);
		if (k == SIZE_MAX)
			return msg_fail(msg, msglen, -ENOSPC,
				     "spool %s is full: %" PRIu64 " bytes, %zu of them uncommitted, limit %" PRIu64,
				     s->dir, s->seg_bytes + s->pending.len, s->pending.len, s->lim.max_bytes);
		return msg_fail(msg, msglen, -ENOSPC,
			     "spool %s is full: %" PRIu64 " bytes (limit %" PRIu64
			     "), held by sink \"%s\" with %" PRIu64 " alerts pending",
			     s->dir, s->seg_bytes + s->pending.len, s->lim.max_bytes, s->sink[k].name,
			     count_pending(s, s->sink[k].pos));
	}
	r = buf_reserve(&s->pending, need);
	if (r == 0)
		r = rec_reserve(s);
	if (r < 0)
		return msg_fail(msg, msglen, r, "spool: %s", strerror(-r));

	rc.seq = s->next_seq;
	rc.off = s->pending.len;
	rc.len = (uint32_t)len;
	put32(h + 4, (uint32_t)len);
	put64(h + 8, rc.seq);
	put64(h + 16, (uint64_t)at);
	memcpy(h + 24, id, SPOOL_ID_LEN);
	crc = crc32_update(crc32_update(0, h + 4, SEG_REC_HEADER - 4), json, len);
	put32(h, crc);
	buf_append(&s->pending, h, SEG_REC_HEADER);	/* cannot fail: reserved */
	buf_append(&s->pending, json, len);
	rec_push(s, &rc);
	s->next_seq++;
	return 1;
}

int spool_commit(struct spool *s, char *msg, size_t msglen)
{
	struct seg *last = s->nseg ? &s->seg[s->nseg - 1] : NULL;
	unsigned char h[FILE_HEADER];
	char name[32];
	uint64_t base;
	bool create;
	int fd, r;

	if (s->failed)
		return failed_before(s, msg, msglen);
	if (!s->pending.len)
		return 0;
	create = !last || last->end != s->durable_next ||
		 (last->size >= s->lim.segment_bytes && last->end > last->first);
	if (create) {
		r = seg_reserve(s);
		if (r < 0)
			return msg_fail(msg, msglen, r, "spool: %s", strerror(-r));
		seg_name(s->durable_next, name);
		fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && no_space(errno))
			return msg_fail(msg, msglen, -errno, "%s/%s: cannot create: %s", s->dir, name,
					strerror(errno));
		if (fd < 0)
			return poison(s, msg, msglen, -errno, "%s/%s: cannot create: %s", s->dir, name,
				      strerror(errno));
		memcpy(h, SEG_MAGIC, 8);
		put64(h + 8, s->durable_next);
		r = pwrite_all(fd, h, FILE_HEADER, 0);
		if (r < 0)
			goto write_failed;
		base = FILE_HEADER;
	} else {
		seg_name(last->first, name);
		fd = s->wfd;
		base = last->size;
	}
	r = pwrite_all(fd, s->pending.data, s->pending.len, base);
	if (r < 0)
		goto write_failed;
	r = sync_fd(fd, true);
	if (r < 0) {
		poison(s, msg, msglen, r, "%s/%s: cannot fsync: %s", s->dir, name, strerror(-r));
		goto undo;
	}
	if (create) {
		r = sync_fd(s->dirfd, false);
		if (r < 0) {
			poison(s, msg, msglen, r, "%s: cannot fsync the directory: %s", s->dir, strerror(-r));
			goto undo;
		}
		if (s->wfd >= 0)
			close(s->wfd);
		s->wfd = fd;
		s->seg[s->nseg++] = (struct seg){ .first = s->durable_next, .end = s->durable_next,
						  .size = FILE_HEADER };
		s->seg_bytes += FILE_HEADER;
		last = &s->seg[s->nseg - 1];
	}
	for (uint64_t pos = s->recs.lo + s->recs.n; pos-- > s->recs.lo;) {
		struct rec *rc = ring_at(&s->recs, pos);

		if (rc->seq < s->durable_next)
			break;
		rc->off += base;
	}
	last->end = s->next_seq;
	last->size = base + s->pending.len;
	s->seg_bytes += s->pending.len;
	s->durable_next = s->next_seq;
	buf_reset(&s->pending);
	return 0;

write_failed:
	/* A full disk refuses the write before anything is durable: taken
	 * back whole, the spool is as it was and the commit can be tried
	 * again (the alerts stay uncommitted). */
	if (no_space(-r) && (create ? unlinkat(s->dirfd, name, 0) == 0 : ftruncate(fd, (off_t)base) == 0)) {
		if (create)
			close(fd);
		return msg_fail(msg, msglen, r, "%s/%s: cannot write: %s", s->dir, name, strerror(-r));
	}
	poison(s, msg, msglen, r, "%s/%s: cannot write: %s", s->dir, name, strerror(-r));
undo:
	/* Best effort: the next open cuts whatever is left at the first bad record anyway. */
	if (create) {
		close(fd);
		unlinkat(s->dirfd, name, 0);
	} else if (ftruncate(fd, (off_t)base) < 0) {
		/* nothing more to do: the spool is unusable already */
	}
	return r;
}

/* ---- delivering ---- */

/* The ring position of the oldest committed alert sink k has not acked. */
static bool find_head(const struct spool *s, size_t k, uint64_t *pos)
{
	uint64_t p = rec_lower_bound(s, s->sink[k].pos);

	if (p == s->recs.lo + s->recs.n || ((const struct rec *)ring_at(&s->recs, p))->seq >= s->durable_next)
		return false;
	*pos = p;
	return true;
}

static const struct seg *seg_of(const struct spool *s, uint64_t seq)
{
	size_t lo = 0, hi = s->nseg;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->seg[mid].first <= seq)
			lo = mid;
		else
			hi = mid;
	}
	return &s->seg[lo];
}

int spool_peek(struct spool *s, size_t sink, const char **json, size_t *len, char id[SPOOL_ID_LEN + 1],
	       int64_t *added, char *msg, size_t msglen)
{
	const struct rec *rc;
	const struct seg *sg;
	unsigned char *h;
	char name[32];
	uint8_t bin[16];
	uint64_t pos;
	ssize_t got;
	int fd, r;

	if (s->failed)
		return failed_before(s, msg, msglen);
	if (sink >= s->nsinks)
		return msg_fail(msg, msglen, -EINVAL, "spool: no sink %zu", sink);
	if (!find_head(s, sink, &pos)) {
		*json = NULL;
		*len = 0;
		return 0;
	}
	rc = ring_at(&s->recs, pos);
	format_id(rc->id, id);	/* also when it no longer reads back: see spool.h */
	sg = seg_of(s, rc->seq);
	seg_name(sg->first, name);
	if (sg == &s->seg[s->nseg - 1]) {
		fd = s->wfd;
	} else {
		if (s->rfd < 0 || s->rfirst != sg->first) {
			close_reader(s);
			s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
			if (s->rfd < 0)
				return msg_fail(msg, msglen, -errno, "%s/%s: cannot open: %s", s->dir, name,
					     strerror(errno));
			s->rfirst = sg->first;
		}
		fd = s->rfd;
	}
	buf_reset(&s->scratch);
	r = buf_reserve(&s->scratch, SEG_REC_HEADER + rc->len);
	if (r < 0)
		return msg_fail(msg, msglen, r, "spool: %s", strerror(-r));
	h = (unsigned char *)s->scratch.data;
	got = pread_full(fd, h, SEG_REC_HEADER + rc->len, rc->off);
	if (got < 0)
		return msg_fail(msg, msglen, (int)got, "%s/%s: cannot read: %s",
			     s->dir, name, strerror((int)-got));
	if ((size_t)got != SEG_REC_HEADER + rc->len || get32(h + 4) != rc->len || get64(h + 8) != rc->seq ||
	    parse_id((const char *)h + 24, false, bin) < 0 || memcmp(bin, rc->id, 16) != 0 ||
	    crc32_update(0, h + 4, SEG_REC_HEADER - 4 + rc->len) != get32(h))
		return msg_fail(msg, msglen, -EBADMSG,
			     "%s/%s: the alert at byte %" PRIu64 " no longer reads back",
			     s->dir, name, rc->off);
	*json = (const char *)h + SEG_REC_HEADER;
	*len = rc->len;
	if (added)
		*added = (int64_t)get64(h + 16);
	return 0;
}

int spool_ack(struct spool *s, size_t sink, const char id[SPOOL_ID_LEN + 1], char *msg, size_t msglen)
{
	unsigned char b[ACK_REC_FIXED + SPOOL_MAX_SINK_NAME];
	const struct rec *rc;
	uint8_t bin[16];
	uint64_t pos, seq;
	size_t namelen, n;
	bool delivered = true;
	int64_t at;
	int r;

	if (s->failed)
		return failed_before(s, msg, msglen);
	if (sink >= s->nsinks)
		return msg_fail(msg, msglen, -EINVAL, "spool: no sink %zu", sink);
	if (!id || parse_id(id, true, bin) < 0)
		return msg_fail(msg, msglen, -EINVAL, "spool: an alert id is 32 lower-case hex digits");
	if (s->ack_size >= s->compact_at) {
		/* Due.  If it fails before the new state is in place nothing
		 * changed: the ack goes on, and the next try is a while later. */
		r = compact(s, msg, msglen);
		if (r < 0 && s->failed)
			return r;
		if (r < 0) {
			s->compact_error = -r;
			s->compact_at = s->ack_size + s->lim.ack_log_bytes;
			if (msg && msglen)
				msg[0] = '\0';
		}
	}
	if (!find_head(s, sink, &pos) || memcmp((rc = ring_at(&s->recs, pos))->id, bin, 16) != 0)
		return msg_fail(msg, msglen, -ENOENT,
			     "spool: alert %s is not the oldest pending alert of sink \"%s\"",
			     id, s->sink[sink].name);
	seq = rc->seq;
	for (size_t j = 0; j < s->nsinks; j++)
		if (j != sink && s->sink[j].pos <= seq)
			delivered = false;
	if (delivered) {
		r = remember_reserve(s);
		if (r < 0)
			return msg_fail(msg, msglen, r, "spool: %s", strerror(-r));
	}
	at = now(s);
	namelen = strlen(s->sink[sink].name);
	n = ACK_REC_FIXED + namelen;
	put32(b + 4, (uint32_t)(n - 8));
	put64(b + 8, seq);
	put64(b + 16, (uint64_t)at);
	memcpy(b + 24, bin, 16);
	b[40] = delivered ? ACK_FLAG_DELIVERED : 0;
	b[41] = (unsigned char)namelen;
	memcpy(b + ACK_REC_FIXED, s->sink[sink].name, namelen);
	put32(b, crc32_update(0, b + 4, n - 4));
	r = pwrite_all(s->afd, b, n, s->ack_size);
	if (r < 0 && no_space(-r) && ack_unwrite(s, n) == 0)
		return msg_fail(msg, msglen, r, "%s/%s: cannot write: %s", s->dir, ACK_FILE, strerror(-r));
	if (r < 0) {
		poison(s, msg, msglen, r, "%s/%s: cannot write: %s", s->dir, ACK_FILE, strerror(-r));
		goto undo;
	}
	r = sync_fd(s->afd, true);
	if (r < 0) {
		poison(s, msg, msglen, r, "%s/%s: cannot fsync: %s", s->dir, ACK_FILE, strerror(-r));
		goto undo;
	}
	s->ack_size += n;
	s->sink[sink].pos = seq + 1;
	if (delivered) {
		remember(s, bin, at, at);
		s->delivered_next = seq + 1;
		reclaim(s);
	}
	return 0;

undo:
	if (ack_unwrite(s, n) < 0) {
		/* best effort; the spool is unusable already */
	}
	return r;
}

int spool_compact(struct spool *s, char *msg, size_t msglen)
{
	if (s->failed)
		return failed_before(s, msg, msglen);
	return compact(s, msg, msglen);
}

void spool_stats(const struct spool *s, struct spool_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->nsinks = s->nsinks;
	for (size_t i = 0; i < s->nsinks; i++) {
		struct spool_sink_stats *st = &ret->sink[i];

		strcpy(st->name, s->sink[i].name);
		st->pending = count_pending(s, s->sink[i].pos);
		st->lost = s->sink[i].lost;
		for (size_t j = 0; st->pending && j < s->nseg; j++)
			if (s->seg[j].end > s->sink[i].pos)
				st->held_bytes += s->seg[j].size;
	}
	ret->holding_sink = holding_sink(s);
	ret->bytes = s->seg_bytes + s->pending.len;
	ret->max_bytes = s->lim.max_bytes;
	ret->uncommitted = s->next_seq - s->durable_next;
	ret->alerts = s->recs.n - ret->uncommitted;
	ret->segments = s->nseg;
	ret->remembered = s->mems.n;
	ret->torn_records = s->torn_records;
	ret->torn_bytes = s->torn_bytes;
	ret->lost_alerts = s->lost_alerts;
	ret->ack_log_damage = s->ack_damage;
	ret->acks_logged = s->ack_size > FILE_HEADER ? s->ack_size - FILE_HEADER : 0;
	ret->ack_log_damage_at = s->ack_damage_at;
	ret->ndamage = s->ndamage;
	memcpy(ret->damage, s->damage, sizeof(ret->damage));
	ret->duplicates = s->duplicates;
	ret->reclaim_error = s->reclaim_error;
	ret->compact_error = s->compact_error;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->wfd >= 0)
		close(s->wfd);
	close_reader(s);
	if (s->afd >= 0)
		close(s->afd);
	if (s->dirfd >= 0)
		close(s->dirfd);	/* releases the lock */
	free(s->seg);
	free(s->lost);
	free(s->recs.v);
	free(s->rec_ids.slot);
	free(s->mems.v);
	free(s->mem_ids.slot);
	buf_free(&s->pending);
	buf_free(&s->scratch);
	free(s->dir);
	free(s);
}
