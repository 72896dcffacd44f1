/* ctlog.c: strict, single-pass JSON scanning of CloudTrail log files.
 *
 * The scanner is a recursive-descent validator over the decompressed text.
 * It carries a pointer into the field trie (fields.h): when the trie has a
 * node for the key being read, the value's span is recorded for that slot and
 * the scanner descends with the child node; when it has none, the value is
 * validated and skipped.  Arrays are transparent: every element of an array
 * is scanned with the array's own trie node, so "resources.ARN" collects the
 * ARN of every element of "resources".
 *
 * Speed comes from the string loop (strings are most of the bytes): sixteen
 * bytes are tested at once for a quote, a backslash, a control byte or a
 * non-ASCII byte, and only those stop the loop.  The text is always followed
 * by a NUL pad (struct buf), which also stops it, so no bounds check is needed
 * inside the loop.  And from not tokenising what nobody reads: a value with no
 * wanted field inside (userIdentity.sessionContext, tlsDetails, resources...)
 * is crossed by skip_container() with bit masks over 64 bytes at a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "trailwatch/array.h"
#include "trailwatch/buf.h"
#include "trailwatch/ctlog.h"
#include "trailwatch/hex.h"

struct scan {
	const char *buf;
	const char *end;
	struct record *rec;		/* NULL when nothing is extracted */
	const char *rec_start;
	size_t max_record;
	unsigned max_depth;
	const char *err;		/* static message */
	bool nomem;			/* the error is a failed allocation */
	const char *err_at;
	char errbuf[128];
};

/* Scanning functions take the position and return the position after what
 * they read, or NULL after recording the error: the position stays in a
 * register instead of going through memory for every token. */
static const char *fail(struct scan *s, const char *at, const char *msg)
{
	s->err = msg;
	s->err_at = at;
	return NULL;
}

static inline const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

/* First byte at or after p that is '"', '\\', below 0x20 or above 0x7f. */
static inline const char *string_stop(const char *p)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i bslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);

	for (;;) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* Signed compare: bytes 0x80-0xff are negative, so "< 0x20" also
		 * catches every non-ASCII byte. */
		__m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
					 _mm_cmplt_epi8(v, space));
		unsigned mask = (unsigned)_mm_movemask_epi8(m);
		if (mask)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#else
	for (;;) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\' || c < 0x20 || c > 0x7f)
			return p;
		p++;
	}
#endif
}

/* Validates one UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).  Returns its length, or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p)
{
	unsigned char c = p[0];

	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/* p is at the opening quote.  Returns the position after the closing quote;
 * start and len give the contents; escaped tells whether it has escapes. */
static inline __attribute__((always_inline)) const char *
scan_string(struct scan *s, const char *p, const char **start, size_t *len, bool *escaped)
{
	bool esc = false;

	*start = ++p;
	for (;;) {
		p = string_stop(p);
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			break;
		if (c == '\\') {
			esc = true;
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				p += 2;
				continue;
			case 'u':
				if (hex_digit(p[2]) < 0 || hex_digit(p[3]) < 0 || hex_digit(p[4]) < 0 || hex_digit(p[5]) < 0)
					return fail(s, p, "invalid \\u escape in string");
				p += 6;
				continue;
			default:
				if (p + 1 >= s->end)
					return fail(s, p, "truncated JSON (inside a string)");
				return fail(s, p, "invalid escape in string");
			}
		}
		if (c >= 0x80) {
			size_t n = utf8_seq((const unsigned char *)p);
			if (!n || p + n > s->end)
				return fail(s, p, "invalid UTF-8 in string");
			p += n;
			continue;
		}
		/* A control byte; the NUL pad after the text ends up here too. */
		if (p >= s->end)
			return fail(s, p, "truncated JSON (inside a string)");
		return fail(s, p, "control character in string");
	}
	*len = (size_t)(p - *start);
	*escaped = esc;
	return p + 1;
}

static const char *scan_number(struct scan *s, const char *p)
{
	const char *start = p;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return fail(s, start, "invalid number");
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return fail(s, p, "invalid number");
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return fail(s, p, "invalid number");
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (p > s->end)
		return fail(s, s->end, "truncated JSON (inside a number)");
	return p;
}

static bool add_value(struct scan *s, int slot, enum jtype type, const char *p, size_t len, bool raw)
{
	struct record *rec = s->rec;
	struct jvalue *v;
	int32_t i;

	if (rec->nvalues == rec->capvalues) {
		struct jvalue *vs = array_grow(rec->values, &rec->capvalues, rec->nvalues + 1, sizeof(*vs), 64);
		if (!vs) {
			s->nomem = true;
			fail(s, p, "out of memory");
			return false;
		}
		rec->values = vs;
	}
	i = (int32_t)rec->nvalues++;
	v = &rec->values[i];
	v->p = p;
	v->folded = NULL;
	v->src = p;
	v->srclen = (uint32_t)len;
	v->len = (uint32_t)len;
	v->type = (uint8_t)type;
	v->raw = raw;
	v->hashed = 0;
	v->next = -1;
	if (rec->head[slot] < 0)
		rec->head[slot] = i;
	else
		rec->values[rec->tail[slot]].next = i;
	rec->tail[slot] = i;
	return true;
}

static const char *scan_value(struct scan *s, const char *p, const struct field_node *want, unsigned depth);

/* A string value: most values are strings, so objects and arrays read them
 * here, without a call to scan_value for each. */
static inline const char *string_value(struct scan *s, const char *p, const struct field_node *want)
{
	const char *str;
	size_t len;
	bool esc;

	p = scan_string(s, p, &str, &len, &esc);
	if (p && want && want->slot >= 0 && s->rec && !add_value(s, want->slot, JT_STRING, str, len, esc))
		return NULL;
	return p;
}

static const char *check_size(struct scan *s, const char *p)
{
	if ((size_t)(p - s->rec_start) > s->max_record) {
		snprintf(s->errbuf, sizeof(s->errbuf), "record larger than the limit of %zu bytes",
			 s->max_record);
		return fail(s, p, s->errbuf);
	}
	return p;
}

static const char *expected(struct scan *s, const char *p, const char *what)
{
	return fail(s, p, p >= s->end ? "truncated JSON" : what);
}

/* ---- member names in the order they came last time ---- */

/* The records of a log mostly repeat the member order of the record before.
 * For each trie node the record keeps the names met there (wanted or not),
 * each with the name that followed it last time.  A member whose bytes equal
 * the predicted name, quotes included, needs neither the string scan nor the
 * trie lookup: the same bytes were validated and looked up before.  (The
 * same for values was tried: they vary too much, and it cost 4%.) */
#define KEYCACHE_KEYS 64
#define KEYCACHE_QUOTED 32	/* longer names (with quotes) are not remembered */

struct keyentry {
	char quoted[KEYCACHE_QUOTED];	/* "name", zero-padded */
	const struct field_node *kid;	/* the trie's child for it, or NULL */
	uint8_t qlen;
	int8_t next;			/* the entry that followed it, or -1 */
};

struct keycache {
	const struct field_node *node;	/* whose members these are */
	struct keyentry e[KEYCACHE_KEYS];
	int n;
	int first;			/* the entry that came first, or -1 */
};

/* Gives rec a cache for every node of fi, once (the scan must not move them
 * while it holds one).  Without memory the scan goes on without caches. */
static void keycache_prepare(struct record *rec, const struct field_index *fi)
{
	struct keycache *k;

	if (rec->nkeys >= fi->nnodes)
		return;
	k = realloc(rec->keys, fi->nnodes * sizeof(*k));
	if (!k)
		return;
	memset(k + rec->nkeys, 0, (fi->nnodes - rec->nkeys) * sizeof(*k));
	rec->keys = k;
	rec->nkeys = fi->nnodes;
}

/* The cache of node in rec, or NULL. */
static struct keycache *keycache_of(struct record *rec, const struct field_node *node)
{
	struct keycache *kc;

	if (node->id >= rec->nkeys)
		return NULL;
	kc = &rec->keys[node->id];
	if (kc->node != node) {
		kc->node = node;
		kc->n = 0;
		kc->first = -1;
	}
	return kc;
}

/* Does the text at p start with the n bytes of want (zero-padded to
 * KEYCACHE_QUOTED, n <= KEYCACHE_QUOTED)?  p is inside the text, which is
 * followed by at least 16 readable bytes. */
static inline bool starts_with(const char *p, const char *end, const char *want, size_t n)
{
#ifdef __SSE2__
	if (n <= 16 || p + 16 <= end) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)want);
		unsigned eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, b));
		if (n <= 16)
			return (~eq & ((1u << n) - 1)) == 0;
		if (eq != 0xffff)
			return false;
		a = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
		b = _mm_loadu_si128((const __m128i *)(const void *)(want + 16));
		eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, b));
		return (~eq & ((1u << (n - 16)) - 1)) == 0;
	}
#endif
	return p + n <= end && memcmp(p, want, n) == 0;
}

/* The entry for a name just read (its quotes at key[-1] and key[klen]),
 * added if new; -1 when it cannot be remembered. */
static int keycache_note(struct keycache *kc, const char *key, size_t klen, const struct field_node *kid)
{
	size_t qlen = klen + 2;
	struct keyentry *e;

	if (qlen > KEYCACHE_QUOTED)
		return -1;
	for (int i = 0; i < kc->n; i++)
		if (kc->e[i].qlen == qlen && memcmp(kc->e[i].quoted, key - 1, qlen) == 0)
			return i;
	if (kc->n == KEYCACHE_KEYS)
		return -1;
	e = &kc->e[kc->n];
	memset(e->quoted, 0, sizeof(e->quoted));
	memcpy(e->quoted, key - 1, qlen);
	e->qlen = (uint8_t)qlen;
	e->kid = kid;
	e->next = -1;
	return kc->n++;
}

static const char *scan_object(struct scan *s, const char *p, const struct field_node *want, unsigned depth)
{
	char keybuf[FIELDS_MAX_PATH];
	struct keycache *kc = want && want->nkids && s->rec ? keycache_of(s->rec, want) : NULL;
	int prev = -1, guess = kc ? kc->first : -1;

	p = skip_ws(p + 1);
	if (*p == '}')
		return p + 1;
	for (;;) {
		const struct field_node *kid = NULL;
		const char *key;
		size_t klen;
		bool esc;
		int cur = -1;

		if (*p != '"')
			return expected(s, p, "expected a member name");
		if (guess >= 0 && starts_with(p, s->end, kc->e[guess].quoted, kc->e[guess].qlen)) {
			kid = kc->e[guess].kid;
			p += kc->e[guess].qlen;
			cur = guess;
		} else {
			p = scan_string(s, p, &key, &klen, &esc);
			if (!p)
				return NULL;
			if (want && want->nkids) {
				if (esc && klen <= sizeof(keybuf)) {
					klen = ctlog_unescape(key, klen, keybuf);
					key = keybuf;
				}
				if (!esc || key == keybuf)
					kid = field_node_child(want, key, klen);
			}
			if (kc) {
				cur = esc ? -1 : keycache_note(kc, key, klen, kid);
				if (prev < 0)
					kc->first = cur;
				else
					kc->e[prev].next = (int8_t)cur;
			}
		}
		prev = cur;
		guess = cur >= 0 ? kc->e[cur].next : -1;
		p = skip_ws(p);
		if (*p != ':')
			return expected(s, p, "expected ':'");
		p = skip_ws(p + 1);
		if (kid && kid->slot >= 0 && s->rec)
			s->rec->present[kid->slot] = 1;
		p = *p == '"' ? string_value(s, p, kid) : scan_value(s, p, kid, depth);
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p == ',') {
			p = skip_ws(p + 1);
			continue;
		}
		if (*p == '}')
			return check_size(s, p + 1);
		return expected(s, p, "expected ',' or '}'");
	}
}

static const char *scan_array(struct scan *s, const char *p, const struct field_node *want, unsigned depth)
{
	p = skip_ws(p + 1);
	if (*p == ']')
		return p + 1;
	for (;;) {
		/* Arrays are transparent to field paths: elements keep the node. */
		p = *p == '"' ? string_value(s, p, want) : scan_value(s, p, want, depth);
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p == ',') {
			p = skip_ws(p + 1);
			continue;
		}
		if (*p == ']')
			return check_size(s, p + 1);
		return expected(s, p, "expected ',' or ']'");
	}
}

/* ---- the fast path for values whose insides no rule reads ---- */

/* What the fast path needs to know about 64 bytes of text, one bit per byte. */
struct block {
	uint64_t quote;		/* '"' */
	uint64_t bracket;	/* '{' '[' '}' ']', and a few letters (see below) */
	uint64_t special;	/* '\\', and bytes below 0x20 or above 0x7f */
};

/* Classifies the 64 bytes at p.  A byte c is a bracket candidate when
 * (c & 0xd9) == 0x59: that is "{[}]" and also "Y_y" and 0x7f, which cannot
 * occur outside strings in valid JSON (the caller gives up on them). */
static inline void classify_block(const char *p, struct block *bl)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20), bmask = _mm_set1_epi8((char)0xd9);
	const __m128i bval = _mm_set1_epi8(0x59);

	bl->quote = bl->bracket = bl->special = 0;
	for (int i = 0; i < 4; i++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
		uint64_t q = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote));
		uint64_t b = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(v, bmask), bval));
		/* Signed compare: bytes 0x80-0xff are negative, so below 0x20. */
		uint64_t sp = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(v, space),
									  _mm_cmpeq_epi8(v, bslash)));
		bl->quote |= q << (16 * i);
		bl->bracket |= b << (16 * i);
		bl->special |= sp << (16 * i);
	}
#else
	bl->quote = bl->bracket = bl->special = 0;
	for (int i = 0; i < 64; i++) {
		unsigned char c = (unsigned char)p[i];
		bl->quote |= (uint64_t)(c == '"') << i;
		bl->bracket |= (uint64_t)((c & 0xd9) == 0x59) << i;
		bl->special |= (uint64_t)(c < 0x20 || c > 0x7f || c == '\\') << i;
	}
#endif
}

/* Each bit becomes the XOR of itself and every bit below it: applied to the
 * quote bits, it marks the bytes inside strings (opening quote included). */
static inline uint64_t prefix_xor(uint64_t x)
{
	x ^= x << 1;
	x ^= x << 2;
	x ^= x << 4;
	x ^= x << 8;
	x ^= x << 16;
	x ^= x << 32;
	return x;
}

/* Bits of the 64 bytes at p that are '\t', '\n' or '\r'. */
static uint64_t block_space(const char *p)
{
	uint64_t m = 0;

	for (int i = 0; i < 64; i++)
		m |= (uint64_t)(p[i] == '\t' || p[i] == '\n' || p[i] == '\r') << i;
	return m;
}

/* p is at the '{' or '[' of a value whose members no rule reads.  Finds its
 * end 64 bytes at a time, checking what can hide damage: that strings hold
 * only printable ASCII without escapes, that brackets pair up and nest no
 * deeper than the limit, and the record size limit.  It does not check the
 * order of the tokens between brackets (a missing ',' or ':').  Returns the
 * position after the closing bracket, or NULL when it cannot vouch for the
 * text (an escape, a byte outside printable ASCII, a bracket problem, a limit,
 * the end of the text near): the caller then scans the value strictly, which
 * finds the error if there is one. */
static const char *skip_container(struct scan *s, const char *p, unsigned depth)
{
	const char *b = p;
	uint64_t instring = 0, stack = 0;	/* stack bit d: level d is an object */
	unsigned d = 0, room = s->max_depth > depth ? s->max_depth - depth : 0;
	struct block bl;

	if (room > 64)
		room = 64;
	for (;; b += 64) {
		uint64_t str, brackets;

		/* The text is followed by 16 readable bytes, not 64. */
		if (b + 64 > s->end || (size_t)(b - s->rec_start) > s->max_record)
			return NULL;
		classify_block(b, &bl);
		str = prefix_xor(bl.quote) ^ instring;
		instring = (uint64_t)((int64_t)str >> 63);
		if (bl.special && (bl.special & ~(block_space(b) & ~str)))
			return NULL;
		brackets = bl.bracket & ~str;
		while (brackets) {
			unsigned i = (unsigned)__builtin_ctzll(brackets);
			char c = b[i];

			brackets &= brackets - 1;
			if (c == '{' || c == '[') {
				if (d >= room)
					return NULL;
				stack = (stack & ~(1ull << d)) | ((uint64_t)(c == '{') << d);
				d++;
				continue;
			}
			if ((c != '}' && c != ']') || d == 0 || ((stack >> (d - 1)) & 1) != (c == '}'))
				return NULL;
			if (--d == 0) {
				const char *after = b + i + 1;
				return (size_t)(after - s->rec_start) > s->max_record ? NULL : after;
			}
		}
	}
}

static const char *scan_literal(struct scan *s, const char *p, const char *word, size_t n)
{
	if (p + n > s->end || memcmp(p, word, n) != 0)
		return expected(s, p, "invalid JSON value");
	return p + n;
}

/* Scans one value at p (no leading whitespace).  want is the trie node of
 * this value's path, or NULL when nothing below it is wanted. */
static const char *scan_value(struct scan *s, const char *p, const struct field_node *want, unsigned depth)
{
	const char *start = p;
	int slot = want && s->rec ? want->slot : -1;
	enum jtype type;

	switch (*p) {
	case '{':
	case '[':
		if (depth >= s->max_depth) {
			snprintf(s->errbuf, sizeof(s->errbuf), "JSON nested deeper than the limit of %u",
				 s->max_depth);
			return fail(s, p, s->errbuf);
		}
		/* Nothing inside is wanted: the fast path, unless this is an
		 * array whose elements are the wanted values. */
		if (!want || (!want->nkids && (*p == '{' || slot < 0))) {
			const char *after = skip_container(s, p, depth);
			if (after && slot >= 0 && *p == '{' &&
			    !add_value(s, slot, JT_OBJECT, start, (size_t)(after - start), true))
				return NULL;
			if (after)
				return after;
		}
		if (*p == '[')
			/* An array's elements are the values; the array itself is
			 * not recorded (except as text of an enclosing object). */
			return scan_array(s, p, want, depth + 1);
		p = scan_object(s, p, want, depth + 1);
		if (p && slot >= 0 && !add_value(s, slot, JT_OBJECT, start, (size_t)(p - start), true))
			return NULL;
		return p;
	case '"': {
		const char *str;
		size_t len;
		bool esc;

		p = scan_string(s, p, &str, &len, &esc);
		if (p && slot >= 0 && !add_value(s, slot, JT_STRING, str, len, esc))
			return NULL;
		return p;
	}
	case 't':
		p = scan_literal(s, p, "true", 4);
		type = JT_TRUE;
		break;
	case 'f':
		p = scan_literal(s, p, "false", 5);
		type = JT_FALSE;
		break;
	case 'n':
		p = scan_literal(s, p, "null", 4);
		type = JT_NULL;
		break;
	default:
		if (*p == '-' || (*p >= '0' && *p <= '9')) {
			p = scan_number(s, p);
			type = JT_NUMBER;
			break;
		}
		return expected(s, p, "invalid JSON value");
	}
	if (p && slot >= 0 && !add_value(s, slot, type, start, (size_t)(p - start), false))
		return NULL;
	return p;
}

/* Finds the end of a damaged record without validating it: the first ',' or
 * ']' outside strings at bracket depth 0.  NULL when the text ends first. */
static const char *resync(const char *p, const char *end)
{
	long depth = 0;

	while (p < end) {
		char c = *p;
		if (c == '"') {
			p++;
			while (p < end && *p != '"')
				p += *p == '\\' ? 2 : 1;
			if (p >= end)
				return NULL;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return c == ']' ? p : NULL;
			depth--;
		} else if (c == ',' && depth == 0) {
			return p;
		}
		p++;
	}
	return NULL;
}

static void set_error(struct ctlog_error *err, const struct ctlog_reader *r, const char *at,
		      long record, bool fatal, const char *msg)
{
	err->offset = at ? (size_t)(at - r->buf) : r->pos;
	err->record = record;
	err->fatal = fatal;
	snprintf(err->message, sizeof(err->message), "%s", msg);
}

static void scan_init(struct scan *s, const struct ctlog_reader *r, const char *p)
{
	/* Every field but errbuf (written before it is read): this runs for
	 * every record. */
	s->rec = NULL;
	s->err = NULL;
	s->nomem = false;
	s->err_at = NULL;
	s->buf = r->buf;
	s->end = r->buf + r->len;
	s->rec_start = p;
	s->max_record = r->limits.max_record;
	s->max_depth = r->limits.max_depth;
}

int ctlog_open(struct ctlog_reader *r, const char *buf, size_t len,
	       const struct field_index *fi, const struct ctlog_limits *limits,
	       struct ctlog_error *err)
{
	struct scan s;
	const char *p;

	memset(r, 0, sizeof(*r));
	r->buf = buf;
	r->len = len;
	r->fi = fi;
	r->limits.max_record = limits && limits->max_record ? limits->max_record : CTLOG_DEFAULT_MAX_RECORD;
	r->limits.max_depth = limits && limits->max_depth ? limits->max_depth : CTLOG_DEFAULT_MAX_DEPTH;
	r->state = CTLOG_DONE;

	p = buf;
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	p = skip_ws(p);
	if (p >= buf + len) {
		set_error(err, r, p, -1, true, "not a CloudTrail log file: empty");
		return -EINVAL;
	}
	if (*p != '{') {
		set_error(err, r, p, -1, true, "not a CloudTrail log file: it does not start with a JSON object");
		return -EINVAL;
	}
	/* Top-level members: everything before "Records" is validated and skipped.
	 * The size limit does not apply to them as a whole: they are not records. */
	scan_init(&s, r, p);
	s.max_record = len;
	p = skip_ws(p + 1);
	for (;;) {
		const char *key;
		size_t klen;
		bool esc;

		if (*p != '"') {
			set_error(err, r, p, -1, true, *p == '}' ?
				  "not a CloudTrail log file: no \"Records\" array" :
				  "not a CloudTrail log file: invalid JSON at the top level");
			return -EINVAL;
		}
		p = scan_string(&s, p, &key, &klen, &esc);
		if (!p)
			goto bad;
		p = skip_ws(p);
		if (*p != ':') {
			fail(&s, p, "expected ':'");
			goto bad;
		}
		p = skip_ws(p + 1);
		if (klen == 7 && memcmp(key, "Records", 7) == 0) {
			if (*p != '[') {
				set_error(err, r, p, -1, true,
					  "not a CloudTrail log file: \"Records\" is not an array");
				return -EINVAL;
			}
			r->pos = (size_t)(skip_ws(p + 1) - buf);
			r->state = CTLOG_FIRST;
			return 0;
		}
		s.rec_start = p;
		p = scan_value(&s, p, NULL, 1);
		if (!p)
			goto bad;
		p = skip_ws(p);
		if (*p != ',') {
			set_error(err, r, p, -1, true, *p == '}' ?
				  "not a CloudTrail log file: no \"Records\" array" :
				  "not a CloudTrail log file: invalid JSON at the top level");
			return -EINVAL;
		}
		p = skip_ws(p + 1);
	}
bad:
	{
		char msg[200];
		snprintf(msg, sizeof(msg), "not a CloudTrail log file: %s", s.err);
		set_error(err, r, s.err_at, -1, true, msg);
	}
	return -EINVAL;
}

/* After the Records array: the remaining top-level members, '}', then nothing. */
static int finish(struct ctlog_reader *r, const char *p, struct ctlog_error *err)
{
	struct scan s;

	r->state = CTLOG_DONE;
	scan_init(&s, r, p);
	s.max_record = r->len;
	p = skip_ws(p);
	while (*p == ',') {
		const char *key;
		size_t klen;
		bool esc;

		p = skip_ws(p + 1);
		if (*p != '"') {
			fail(&s, p, "expected a member name");
			goto bad;
		}
		p = scan_string(&s, p, &key, &klen, &esc);
		if (!p)
			goto bad;
		p = skip_ws(p);
		if (*p != ':') {
			fail(&s, p, "expected ':'");
			goto bad;
		}
		p = skip_ws(p + 1);
		p = scan_value(&s, p, NULL, 1);
		if (!p)
			goto bad;
		p = skip_ws(p);
	}
	if (*p != '}') {
		fail(&s, p, p >= s.end ? "truncated JSON (the top-level object is not closed)" :
					 "expected '}' after the Records array");
		goto bad;
	}
	p = skip_ws(p + 1);
	if (p < s.end) {
		fail(&s, p, "unexpected data after the end of the JSON document");
		goto bad;
	}
	r->pos = r->len;
	return 0;
bad:
	set_error(err, r, s.err_at, -1, true, s.err);
	return -EINVAL;
}

static void record_clear_values(struct record *rec)
{
	for (size_t i = 0; i < rec->nslots; i++)
		rec->head[i] = -1;
	memset(rec->present, 0, rec->nslots);
	rec->nvalues = 0;
}

static void record_reset(struct record *rec)
{
	record_clear_values(rec);
	arena_reset(&rec->scratch);
}

int ctlog_next(struct ctlog_reader *r, struct record *rec, struct ctlog_error *err)
{
	const char *p = r->buf + r->pos;
	const char *end = r->buf + r->len;
	const char *next, *after;
	struct scan s;
	long index;

	if (r->state == CTLOG_DONE)
		return 0;
	p = skip_ws(p);
	if (r->state == CTLOG_AFTER) {
		if (*p == ']') {
			if (finish(r, p + 1, err) < 0)
				return -EINVAL;
			return 0;
		}
		if (*p != ',') {
			r->state = CTLOG_DONE;
			set_error(err, r, p, (long)r->next_index, true, p >= end ?
				  "truncated JSON (the Records array is not closed)" :
				  "expected ',' or ']' between records");
			return -EINVAL;
		}
		p = skip_ws(p + 1);
	} else if (*p == ']') {
		if (finish(r, p + 1, err) < 0)
			return -EINVAL;
		return 0;
	}

	index = (long)r->next_index++;
	record_reset(rec);
	keycache_prepare(rec, r->fi);
	scan_init(&s, r, p);
	s.rec = rec;
	if (p >= end) {
		r->state = CTLOG_DONE;
		set_error(err, r, p, index, true, "truncated JSON (the Records array is not closed)");
		return -EINVAL;
	}
	if (*p != '{') {
		fail(&s, p, "record is not a JSON object");
		goto bad;
	}
	after = scan_value(&s, p, &r->fi->root, 0);
	if (!after)
		goto bad;
	rec->text = p;
	rec->len = (size_t)(after - p);
	rec->index = (size_t)index;
	rec->offset = (size_t)(p - r->buf);
	r->pos = (size_t)(after - r->buf);
	r->state = CTLOG_AFTER;
	return 1;

bad:
	/* Skip the damaged record and go on with the next one, if it can be found. */
	next = resync(p, end);
	if (!next) {
		r->state = CTLOG_DONE;
		if (s.err_at >= end || s.err_at < p)
			set_error(err, r, end, index, true, "truncated JSON (the file ends inside a record)");
		else
			set_error(err, r, s.err_at, index, true, s.err);
		return -EINVAL;
	}
	r->pos = (size_t)(next - r->buf);
	r->state = CTLOG_AFTER;
	set_error(err, r, s.err_at, index, false, s.err);
	return -EINVAL;
}

int record_load_element(struct record *rec, const struct field_index *fi, const struct jvalue *v)
{
	const char *text = v->src, *after;
	size_t len = v->srclen;
	int root = fi->root.slot;
	struct scan s;

	record_reset(rec);
	keycache_prepare(rec, fi);
	if (v->type == JT_STRING) {
		char *copy;

		/* Unescaped into a padded copy of our own: the scanner reads
		 * ahead, and the parent's scratch text is not padded. */
		copy = arena_alloc(&rec->scratch, len + BUF_PAD);
		if (!copy)
			return -ENOMEM;
		len = ctlog_unescape(text, len, copy);
		memset(copy + len, 0, BUF_PAD);
		text = copy;
	}
	rec->text = text;
	rec->len = len;
	/* A string is read as JSON only when it holds an object or array. */
	after = skip_ws(text);
	if (v->type == JT_STRING && *after != '{' && *after != '[')
		goto plain;
	if (v->type == JT_STRING || v->type == JT_OBJECT) {
		memset(&s, 0, sizeof(s));
		s.buf = text;
		s.end = text + len;
		s.rec = rec;
		s.rec_start = text;
		s.max_record = len;
		s.max_depth = CTLOG_DEFAULT_MAX_DEPTH;
		if (root >= 0)
			rec->present[root] = 1;
		after = scan_value(&s, after, &fi->root, 0);
		if (after && skip_ws(after) >= s.end)
			return 0;
		if (s.nomem)
			return -ENOMEM;
		/* Text that is not JSON after all: only the value itself (the
		 * copy in scratch stays). */
		record_clear_values(rec);
		if (v->type == JT_OBJECT)
			return 0;
	}
plain:
	if (root < 0)
		return 0;
	memset(&s, 0, sizeof(s));
	s.rec = rec;
	rec->present[root] = 1;
	if (v->type == JT_STRING)
		return add_value(&s, root, JT_STRING, text, len, false) ? 0 : -ENOMEM;
	return add_value(&s, root, (enum jtype)v->type, v->src, v->srclen, false) ? 0 : -ENOMEM;
}

int record_init(struct record *rec, size_t nslots)
{
	memset(rec, 0, sizeof(*rec));
	arena_init(&rec->scratch);
	rec->nslots = nslots;
	/* One extra element so that a record with no slots still allocates. */
	rec->head = malloc((nslots + 1) * sizeof(*rec->head));
	rec->tail = malloc((nslots + 1) * sizeof(*rec->tail));
	rec->present = calloc(nslots + 1, 1);
	if (!rec->head || !rec->tail || !rec->present) {
		record_free(rec);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nslots; i++)
		rec->head[i] = -1;
	return 0;
}

void record_free(struct record *rec)
{
	if (!rec)
		return;
	free(rec->head);
	free(rec->tail);
	free(rec->present);
	free(rec->values);
	free(rec->keys);
	arena_free(&rec->scratch);
	memset(rec, 0, sizeof(*rec));
}

struct jvalue *record_first(struct record *rec, int slot)
{
	if (slot < 0 || (size_t)slot >= rec->nslots || rec->head[slot] < 0)
		return NULL;
	return &rec->values[rec->head[slot]];
}

static void put_utf8(char **o, unsigned cp)
{
	char *p = *o;

	if (cp < 0x80) {
		*p++ = (char)cp;
	} else if (cp < 0x800) {
		*p++ = (char)(0xc0 | (cp >> 6));
		*p++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*p++ = (char)(0xe0 | (cp >> 12));
		*p++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*p++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*p++ = (char)(0xf0 | (cp >> 18));
		*p++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*p++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*p++ = (char)(0x80 | (cp & 0x3f));
	}
	*o = p;
}

static unsigned hex4(const char *p)
{
	return (unsigned)(hex_digit(p[0]) << 12 | hex_digit(p[1]) << 8 | hex_digit(p[2]) << 4 | hex_digit(p[3]));
}

/* Every escape is at least as long as what it produces (\uXXXX is 6 bytes
 * for at most 3, a surrogate pair 12 for 4), so out never needs more than len. */
size_t ctlog_unescape(const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len;
	char *o = out;

	while (p < end) {
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'b': *o++ = '\b'; p++; break;
		case 'f': *o++ = '\f'; p++; break;
		case 'n': *o++ = '\n'; p++; break;
		case 'r': *o++ = '\r'; p++; break;
		case 't': *o++ = '\t'; p++; break;
		case 'u': {
			unsigned cp = hex4(p + 1);
			p += 5;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
					unsigned lo = hex4(p + 2);
					if (lo >= 0xdc00 && lo <= 0xdfff) {
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
						p += 6;
					} else {
						cp = 0xfffd;
					}
				} else {
					cp = 0xfffd;
				}
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				cp = 0xfffd;
			}
			put_utf8(&o, cp);
			break;
		}
		default:
			*o++ = *p++;
			break;
		}
	}
	return (size_t)(o - out);
}

/* JSON text of an object or array with the contents of every string unescaped. */
static size_t unescape_text(const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len;
	char *o = out;

	while (p < end) {
		if (*p != '"') {
			*o++ = *p++;
			continue;
		}
		const char *q = p + 1;
		while (q < end && *q != '"')
			q += *q == '\\' ? 2 : 1;
		*o++ = '"';
		o += ctlog_unescape(p + 1, (size_t)(q - p - 1), o);
		*o++ = '"';
		p = q + 1;
	}
	return (size_t)(o - out);
}

int record_value_text(struct record *rec, struct jvalue *v, const char **ret, size_t *ret_len)
{
	if (v->raw) {
		char *out = arena_alloc(&rec->scratch, (size_t)v->len + 1);
		size_t n;

		if (!out)
			return -ENOMEM;
		if (v->type == JT_STRING)
			n = ctlog_unescape(v->p, v->len, out);
		else
			n = unescape_text(v->p, v->len, out);
		out[n] = '\0';
		v->p = out;
		v->len = (uint32_t)n;
		v->raw = 0;
	}
	*ret = v->p;
	*ret_len = v->len;
	return 0;
}

/* ASCII letters to lower case, in place; 16 bytes at a time. */
static void fold_ascii(char *p, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	const __m128i before_a = _mm_set1_epi8('A' - 1), after_z = _mm_set1_epi8('Z' + 1);
	const __m128i bit = _mm_set1_epi8(0x20);

	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		/* Signed compares: bytes >= 0x80 are negative and never fold. */
		__m128i upper = _mm_and_si128(_mm_cmpgt_epi8(v, before_a), _mm_cmplt_epi8(v, after_z));
		_mm_storeu_si128((__m128i *)(void *)(p + i), _mm_or_si128(v, _mm_and_si128(upper, bit)));
	}
#endif
	for (; i < n; i++)
		p[i] |= (char)(((unsigned char)(p[i] - 'A') <= 'Z' - 'A') << 5);
}

int record_value_folded(struct record *rec, struct jvalue *v, const char **ret, size_t *ret_len)
{
	const char *text;
	size_t len, i = 0;
	int r;

	if (!v->folded) {
		r = record_value_text(rec, v, &text, &len);
		if (r < 0)
			return r;
		while (i < len && (unsigned char)(text[i] - 'A') > 'Z' - 'A')
			i++;
		if (i == len) {
			v->folded = text;	/* nothing to fold: share the text */
		} else {
			char *f = arena_alloc(&rec->scratch, len + 1);
			if (!f)
				return -ENOMEM;
			memcpy(f, text, len);
			fold_ascii(f + i, len - i);
			f[len] = '\0';
			v->folded = f;
		}
	}
	*ret = v->folded;
	*ret_len = v->len;
	return 0;
}

static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int ctlog_parse_time(const char *s, size_t len, int64_t *ret)
{
	int y, mo, d, h, mi, se;
	int64_t days;

	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':' || (s[len - 1] != 'Z' && s[len - 1] != 'z'))
		return -EINVAL;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	se = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    se < 0 || se > 60)
		return -EINVAL;
	if (len > 20) {
		/* Fractional seconds: ".digits" then "Z"; the fraction is dropped. */
		if (s[19] != '.' || len == 21)
			return -EINVAL;
		for (size_t i = 20; i < len - 1; i++)
			if (s[i] < '0' || s[i] > '9')
				return -EINVAL;
	}
	/* Days from the civil date (Howard Hinnant's algorithm). */
	{
		int yy = mo <= 2 ? y - 1 : y;
		int era = yy / 400;
		int yoe = yy - era * 400;
		int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		days = (int64_t)era * 146097 + doe - 719468;
	}
	*ret = days * 86400 + h * 3600 + mi * 60 + se;
	return 0;
}
