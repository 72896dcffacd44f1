/* ctlog.h: CloudTrail log files split into records, fields extracted on the fly.
 *
 * A CloudTrail log file is one JSON document {"Records":[{...},{...}]}.  The
 * reader walks the decompressed text once.  For each record it validates the
 * JSON (grammar, UTF-8, escapes, nesting depth, size) and, guided by the field
 * index, records where the values of the wanted fields are: spans into the
 * text, no copies and no tree.  An object or array whose insides no rule
 * reads is skipped 64 bytes at a time: its strings must be printable ASCII
 * without escapes, its brackets must pair up within the depth and size
 * limits, or it is scanned strictly after all (which reports the error, if
 * any).  Only the order of tokens inside it (a missing ',' or ':') is not
 * checked there.  Strings are unescaped only when a rule looks at them.
 *
 * A bad record (too big, too deep, invalid JSON or UTF-8) is reported with its
 * index and byte offset and skipped; the reader resynchronises on the record's
 * closing bracket and continues with the next one.  Only damage that leaves
 * no way to find the next record (truncation) ends the file early.
 * The reader does not log.
 */
#ifndef TRAILWATCH_CTLOG_H
#define TRAILWATCH_CTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trailwatch/arena.h"
#include "trailwatch/fields.h"

enum jtype {
	JT_NULL,
	JT_FALSE,
	JT_TRUE,
	JT_NUMBER,
	JT_STRING,
	JT_OBJECT,
	JT_ARRAY,
};

/* One value of a field in the current record. */
struct jvalue {
	const char *p;		/* string: contents without quotes; else raw JSON text */
	const char *folded;	/* lower-case text, NULL until record_value_folded */
	const char *src;	/* p as scanned: escapes intact even after record_value_text */
	uint32_t srclen;
	uint32_t len;
	uint8_t type;		/* enum jtype */
	uint8_t raw;		/* p/len still hold escapes (see record_value_text) */
	uint8_t hashed;		/* hash is set (the engine's memo sets it) */
	int32_t next;		/* next value of the same slot, or -1 */
	uint64_t hash;		/* of the unescaped text, when hashed */
};

struct keycache;

/* The current record and its extracted fields.  Reused from record to record:
 * its arrays grow to the largest record seen and are never freed per record. */
struct record {
	const char *text;	/* the record's JSON text, inside the file buffer */
	size_t len;
	size_t index;		/* 0-based position in the Records array */
	size_t offset;		/* byte offset of the record in the decompressed file */
	size_t nslots;
	int32_t *head;		/* slot -> first value index, -1 when none */
	int32_t *tail;
	uint8_t *present;	/* slot -> the key occurred (even if its value is null) */
	struct jvalue *values;
	size_t nvalues, capvalues;
	struct arena scratch;	/* unescaped text, reset per record */
	struct keycache *keys;	/* per trie node: the member names seen, in order */
	size_t nkeys;
};

struct ctlog_limits {
	size_t max_record;	/* bytes; default 1 MiB */
	unsigned max_depth;	/* nesting inside a record; default 64 */
};

#define CTLOG_DEFAULT_MAX_RECORD (1u << 20)
#define CTLOG_DEFAULT_MAX_DEPTH 64

struct ctlog_error {
	size_t offset;		/* byte offset in the decompressed text */
	long record;		/* record index, or -1 when the error is outside records */
	bool fatal;		/* no further records can be read from this file */
	char message[256];
};

enum ctlog_state {
	CTLOG_FIRST,		/* just after '[' */
	CTLOG_AFTER,		/* after a record: ',' or ']' comes */
	CTLOG_DONE,
};

struct ctlog_reader {
	const char *buf;
	size_t len;
	size_t pos;
	const struct field_index *fi;
	struct ctlog_limits limits;
	size_t next_index;
	enum ctlog_state state;
};

/* Prepares a record for a field index with nslots slots.  -ENOMEM. */
int record_init(struct record *rec, size_t nslots);
void record_free(struct record *rec);

/* Text of a value with escapes resolved: a string's contents, or the JSON text
 * of an object or array with every string in it unescaped (what Sigma rules
 * match against when they apply a string modifier to a whole sub-object).
 * Numbers and literals come back as written.  -ENOMEM. */
int record_value_text(struct record *rec, struct jvalue *v, const char **ret, size_t *ret_len);

/* The same text with ASCII letters folded to lower case (the same length),
 * computed once per value and record: case-insensitive patterns compare it
 * with plain memcmp/memmem.  -ENOMEM. */
int record_value_folded(struct record *rec, struct jvalue *v, const char **ret, size_t *ret_len);

/* Loads one value of another record's field into rec (prepared for fi), the
 * way an |element selection sees it.  rec is reset first.  An object, or a
 * string that holds a JSON object or array (a policy document sent as text),
 * has the fields of fi extracted; the value itself is the value of the root
 * slot ("@") when fi has one.  Any other string, number or literal is only
 * the root value.  Returns 0 or -ENOMEM. */
int record_load_element(struct record *rec, const struct field_index *fi, const struct jvalue *v);

/* The first value of a slot, or NULL. */
struct jvalue *record_first(struct record *rec, int slot);

/* Starts reading a file.  buf must stay valid while records are read and be
 * followed by at least 16 readable bytes, the first of them NUL (struct buf
 * guarantees this).  Returns 0, or -EINVAL with err filled in when the text is
 * not a CloudTrail log (no top-level object with a "Records" array). */
int ctlog_open(struct ctlog_reader *r, const char *buf, size_t len,
	       const struct field_index *fi, const struct ctlog_limits *limits,
	       struct ctlog_error *err);

/* Reads the next record into rec.  Returns 1 with a record, 0 at the end of
 * the file, or -EINVAL with err filled in.  After an error with !err->fatal
 * the caller may call again to continue with the next record. */
int ctlog_next(struct ctlog_reader *r, struct record *rec, struct ctlog_error *err);

/* Unescapes the contents of a JSON string (without its quotes) into out,
 * which must have room for len bytes.  Lone surrogates become U+FFFD.
 * Returns the output length.  The input must have been validated. */
size_t ctlog_unescape(const char *in, size_t len, char *out);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" to seconds since the epoch.  -EINVAL. */
int ctlog_parse_time(const char *s, size_t len, int64_t *ret);

#endif
