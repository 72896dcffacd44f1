/* s3xml.c: S3 and STS XML on libexpat (see s3xml.h).
 *
 * One engine, three parsers.  The engine (struct engine) owns the expat
 * parser and turns its events into something a parser can act on in a few
 * lines:
 *
 *   - path[0..depth) holds the open elements as tags: enum tag names every
 *     element some parser cares about, TAG_OTHER stands for the rest.  Names
 *     are local names (the parser is namespace-aware and the namespace URI is
 *     dropped), so xmlns="http://s3.amazonaws.com/doc/2006-03-01/" and
 *     prefixed forms are both fine;
 *   - text collects the character data of the innermost open element, up to
 *     TEXT_ROOM bytes (text_too_long says that more was cut off); each
 *     parser bounds the fields it takes (S3XML_MAX_TEXT, or the session
 *     token's S3XML_MAX_SESSION_TOKEN) with leaf_value();
 *   - a parser's start() runs when an element opens (path already includes
 *     it), its end() when it closes (path still includes it, text is its
 *     text).  leaf_value() hands a parser the text of a leaf it wants, enforcing
 *     the text bound with a message that names the element.
 *
 * Handlers return 0 or a negative errno.  The first error stops expat and is
 * kept with its message; every later call returns it again.  The engine
 * enforces nesting depth, document size and the DOCTYPE ban; the parsers
 * enforce text length, entry counts and what each element must contain.
 */
#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/ctlog.h"
#include "trailwatch/hex.h"
#include "trailwatch/s3xml.h"

/* ---- Element names ---- */

enum tag {
	TAG_OTHER,
	/* ListObjectsV2 */
	TAG_LIST_BUCKET_RESULT,
	TAG_CONTENTS,
	TAG_KEY,
	TAG_SIZE,
	TAG_LAST_MODIFIED,
	TAG_ETAG,
	TAG_COMMON_PREFIXES,
	TAG_PREFIX,
	TAG_IS_TRUNCATED,
	TAG_NEXT_CONTINUATION_TOKEN,
	TAG_KEY_COUNT,
	TAG_ENCODING_TYPE,
	TAG_DELIMITER,
	TAG_START_AFTER,
	/* error documents */
	TAG_ERROR,
	TAG_ERROR_RESPONSE,
	TAG_CODE,
	TAG_MESSAGE,
	TAG_REQUEST_ID,
	/* STS */
	TAG_ASSUME_ROLE_RESPONSE,
	TAG_ASSUME_ROLE_RESULT,
	TAG_WEB_IDENTITY_RESPONSE,
	TAG_WEB_IDENTITY_RESULT,
	TAG_CREDENTIALS,
	TAG_ACCESS_KEY_ID,
	TAG_SECRET_ACCESS_KEY,
	TAG_SESSION_TOKEN,
	TAG_EXPIRATION,
	TAG_COUNT
};

static const char *const tag_names[TAG_COUNT] = {
	[TAG_LIST_BUCKET_RESULT] = "ListBucketResult",
	[TAG_CONTENTS] = "Contents",
	[TAG_KEY] = "Key",
	[TAG_SIZE] = "Size",
	[TAG_LAST_MODIFIED] = "LastModified",
	[TAG_ETAG] = "ETag",
	[TAG_COMMON_PREFIXES] = "CommonPrefixes",
	[TAG_PREFIX] = "Prefix",
	[TAG_IS_TRUNCATED] = "IsTruncated",
	[TAG_NEXT_CONTINUATION_TOKEN] = "NextContinuationToken",
	[TAG_KEY_COUNT] = "KeyCount",
	[TAG_ENCODING_TYPE] = "EncodingType",
	[TAG_DELIMITER] = "Delimiter",
	[TAG_START_AFTER] = "StartAfter",
	[TAG_ERROR] = "Error",
	[TAG_ERROR_RESPONSE] = "ErrorResponse",
	[TAG_CODE] = "Code",
	[TAG_MESSAGE] = "Message",
	[TAG_REQUEST_ID] = "RequestId",
	[TAG_ASSUME_ROLE_RESPONSE] = "AssumeRoleResponse",
	[TAG_ASSUME_ROLE_RESULT] = "AssumeRoleResult",
	[TAG_WEB_IDENTITY_RESPONSE] = "AssumeRoleWithWebIdentityResponse",
	[TAG_WEB_IDENTITY_RESULT] = "AssumeRoleWithWebIdentityResult",
	[TAG_CREDENTIALS] = "Credentials",
	[TAG_ACCESS_KEY_ID] = "AccessKeyId",
	[TAG_SECRET_ACCESS_KEY] = "SecretAccessKey",
	[TAG_SESSION_TOKEN] = "SessionToken",
	[TAG_EXPIRATION] = "Expiration",
};

static enum tag tag_of(const char *name)
{
	for (int t = 1; t < TAG_COUNT; t++)
		if (strcmp(name, tag_names[t]) == 0)
			return t;
	return TAG_OTHER;
}

/* ---- The engine ---- */

struct engine;
typedef int (*handler_fn)(struct engine *e, void *ctx);

/* Text kept of one element: the longest field any parser takes. */
#define TEXT_ROOM S3XML_MAX_SESSION_TOKEN

struct engine {
	XML_Parser parser;
	handler_fn start, end;		/* either may be NULL */
	void *ctx;
	const char *name;		/* local name of the element opening or closing */
	unsigned depth;
	uint8_t path[S3XML_MAX_DEPTH];	/* enum tag of each open element */
	bool has_children[S3XML_MAX_DEPTH];
	char text[TEXT_ROOM + 1];
	size_t text_len;
	bool text_too_long;
	size_t fed;			/* bytes of the document so far */
	int err;			/* the first error, 0 while there is none */
	char msg[320];
};

/* The innermost open element, and its parent (TAG_OTHER above the root). */
static enum tag current(const struct engine *e)
{
	return e->path[e->depth - 1];
}

static enum tag parent(const struct engine *e)
{
	return e->depth >= 2 ? e->path[e->depth - 2] : TAG_OTHER;
}

/* Records the first error, at the parser's current position when at is set. */
static int vset_error(struct engine *e, int err, bool at, const char *fmt, va_list ap)
{
	char what[256];

	if (e->err)
		return e->err;
	vsnprintf(what, sizeof(what), fmt, ap);
	if (at)
		snprintf(e->msg, sizeof(e->msg), "line %llu, column %llu: %s",
			 (unsigned long long)XML_GetCurrentLineNumber(e->parser),
			 (unsigned long long)XML_GetCurrentColumnNumber(e->parser) + 1, what);
	else
		snprintf(e->msg, sizeof(e->msg), "%s", what);
	e->err = err;
	return err;
}

/* Outside handlers: at the position of an error expat reported, or without
 * position for errors found after parsing. */
static int __attribute__((format(printf, 4, 5)))
set_error(struct engine *e, int err, bool at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = vset_error(e, err, at, fmt, ap);
	va_end(ap);
	return err;
}

/* For handlers: records an error at the current position and stops expat. */
static int __attribute__((format(printf, 3, 4))) fail(struct engine *e, int err, const char *fmt, ...)
{
	va_list ap;

	if (e->err)
		return e->err;
	va_start(ap, fmt);
	err = vset_error(e, err, true, fmt, ap);
	va_end(ap);
	XML_StopParser(e->parser, XML_FALSE);
	return err;
}

static void call(struct engine *e, handler_fn fn)
{
	int r = fn ? fn(e, e->ctx) : 0;

	/* A handler that failed by itself has set the message; a callback's
	 * error only has its number. */
	if (r < 0 && !e->err)
		fail(e, r, "stopped by a callback (error %d)", r);
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
	struct engine *e = data;
	const char *local = strrchr(name, ' ');

	if (e->err)
		return;
	if (e->depth == S3XML_MAX_DEPTH) {
		fail(e, -EINVAL, "elements nested deeper than %d", S3XML_MAX_DEPTH);
		return;
	}
	if (e->depth > 0)
		e->has_children[e->depth - 1] = true;
	e->name = local ? local + 1 : name;
	e->path[e->depth] = tag_of(e->name);
	e->has_children[e->depth] = false;
	e->depth++;
	e->text_len = 0;
	e->text_too_long = false;
	call(e, e->start);
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	struct engine *e = data;
	const char *local = strrchr(name, ' ');

	if (e->err)
		return;
	e->name = local ? local + 1 : name;
	e->text[e->text_len] = '\0';
	call(e, e->end);
	e->depth--;
	e->text_len = 0;
	e->text_too_long = false;
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	struct engine *e = data;
	size_t n = (size_t)len, room = TEXT_ROOM - e->text_len;

	if (e->err)
		return;
	if (n > room) {
		n = room;
		e->text_too_long = true;
	}
	memcpy(e->text + e->text_len, s, n);
	e->text_len += n;
}

/* S3 and STS never send a DOCTYPE.  Refusing it before its internal subset is
 * read means no entity is ever declared, whatever the expat version. */
static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	fail((struct engine *)data, -EINVAL, "DOCTYPE not allowed");
}

static void XMLCALL on_entity_decl(void *data, const XML_Char *name, int is_parameter_entity,
				   const XML_Char *value, int value_length, const XML_Char *base,
				   const XML_Char *system_id, const XML_Char *public_id,
				   const XML_Char *notation_name)
{
	fail((struct engine *)data, -EINVAL, "entity declaration not allowed");
}

static int engine_init(struct engine *e, handler_fn start, handler_fn end, void *ctx)
{
	memset(e, 0, sizeof(*e));
	/* Namespace-aware: names arrive as "URI local" or "local". */
	e->parser = XML_ParserCreateNS(NULL, ' ');
	if (!e->parser)
		return -ENOMEM;
	e->start = start;
	e->end = end;
	e->ctx = ctx;
	XML_SetUserData(e->parser, e);
	XML_SetElementHandler(e->parser, on_start, on_end);
	XML_SetCharacterDataHandler(e->parser, on_text);
	XML_SetStartDoctypeDeclHandler(e->parser, on_doctype);
	XML_SetEntityDeclHandler(e->parser, on_entity_decl);
	XML_SetParamEntityParsing(e->parser, XML_PARAM_ENTITY_PARSING_NEVER);
	return 0;
}

/* Wipes the text too: it may have held a credential. */
static void engine_free(struct engine *e)
{
	if (e->parser)
		XML_ParserFree(e->parser);
	e->parser = NULL;
	explicit_bzero(e->text, sizeof(e->text));
}

static int engine_parse(struct engine *e, const char *data, size_t len, bool final)
{
	enum XML_Error code;

	if (e->err)
		return e->err;
	if (len > S3XML_MAX_DOCUMENT - e->fed)
		return set_error(e, -EINVAL, false, "document longer than %u bytes", S3XML_MAX_DOCUMENT);
	e->fed += len;
	if (XML_Parse(e->parser, data, (int)len, final) != XML_STATUS_ERROR)
		return 0;
	if (e->err)
		return e->err;
	code = XML_GetErrorCode(e->parser);
	if (code == XML_ERROR_NO_MEMORY)
		return set_error(e, -ENOMEM, false, "out of memory");
	return set_error(e, -EINVAL, true, "%s", XML_ErrorString(code));
}

/* Hands the error over: returns it and copies its message to msg.  e may be
 * NULL (or not started) when allocating it failed. */
static int report(const struct engine *e, char *msg, size_t msglen)
{
	int err = e && e->err ? e->err : -ENOMEM;

	if (msg && msglen)
		snprintf(msg, msglen, "%s", e && e->err ? e->msg : "out of memory");
	return err;
}

/* Parses a whole document in memory with the handlers start/end on ctx,
 * then finish(e, ctx), which may refuse what was read (set_error).
 * Returns 0, or the error with its message in msg. */
static int parse_document(const void *data, size_t len, handler_fn start, handler_fn end, handler_fn finish,
			  void *ctx, char *msg, size_t msglen)
{
	struct engine *e = calloc(1, sizeof(*e));
	int r = e ? engine_init(e, start, end, ctx) : -ENOMEM;

	if (r == 0)
		r = engine_parse(e, data, len, false);
	if (r == 0)
		r = engine_parse(e, "", 0, true);
	if (r == 0)
		r = finish(e, ctx);
	if (r < 0)
		r = report(e, msg, msglen);
	if (e)
		engine_free(e);
	free(e);
	return r;
}

/* The text of the closing element as a value: no child elements, at most max
 * bytes (and so never cut off by the engine). */
static int leaf_value(struct engine *e, size_t max, const char **ret, size_t *ret_len)
{
	if (e->has_children[e->depth - 1])
		return fail(e, -EINVAL, "%s has child elements", e->name);
	if (e->text_too_long || e->text_len > max)
		return fail(e, -EINVAL, "%s longer than %zu bytes", e->name, max);
	*ret = e->text;
	*ret_len = e->text_len;
	return 0;
}

/* ---- Values ---- */

/* A non-negative decimal integer, digits only. */
static int parse_count(const char *s, size_t len, int64_t *ret)
{
	int64_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

static bool utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i], n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (unsigned k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* Percent-decodes a value S3 sent under <EncodingType>url</EncodingType> into
 * out (room for len + 1 bytes), for the element that is closing.
 *
 * '+' decodes to a space.  AWS's documentation of EncodingType says only
 * that keys are URL-encoded, with a %XX example (test_file(3).png appears as
 * test_file%283%29.png), and nothing about spaces or '+'.  Other sources: a
 * '+' in a key is always sent as %2B; a space is sent as '+' according to
 * measurements against S3 reported in public issues (and as MinIO's
 * s3URLEncode, modelled on Go's url.QueryEscape, does), or as %20 according
 * to others.  Two AWS SDKs decode these values as form data, '+' as a space:
 * botocore with urllib's unquote_plus (compat.unquote_str) and the Java SDK v2
 * with URLDecoder.decode (DecodeUrlEncodedResponseInterceptor).  So a literal
 * '+' can only mean a space, and decoding it as '+' would list "a b" as
 * "a+b", a key that does not exist.
 *
 * The result must be UTF-8 without NUL bytes, as undecoded text from expat
 * always is. */
static int url_decode(struct engine *e, const char *in, size_t len, char *out, size_t *ret_len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '+') {
			out[n++] = ' ';
		} else if (in[i] != '%') {
			out[n++] = in[i];
		} else {
			int hi = i + 2 < len ? hex_digit(in[i + 1]) : -1;
			int lo = hi >= 0 ? hex_digit(in[i + 2]) : -1;

			if (lo < 0)
				return fail(e, -EINVAL, "%s has an invalid %%-escape", e->name);
			if (hi == 0 && lo == 0)
				return fail(e, -EINVAL, "%s has a NUL byte (%%00)", e->name);
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		}
	}
	if (!utf8_valid(out, n))
		return fail(e, -EINVAL, "%s is not UTF-8 once URL-decoded", e->name);
	out[n] = '\0';
	*ret_len = n;
	return 0;
}

/* Copies text into a buffer of size bytes, cut at a UTF-8 character boundary
 * when it does not fit (the text is valid UTF-8 up to the cut). */
static void copy_truncated(char *dst, size_t size, const char *s, size_t len)
{
	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* ---- ListObjectsV2 ---- */

/* The top-level values kept for s3xml_list_result: decoded when the page is
 * URL-encoded, except the continuation token, which is opaque. */
enum top_field { TOP_NEXT_TOKEN, TOP_PREFIX, TOP_DELIMITER, TOP_START_AFTER, TOP_FIELDS };

static const struct {
	enum tag tag;
	bool decode;
} top_fields[TOP_FIELDS] = {
	[TOP_NEXT_TOKEN] = { TAG_NEXT_CONTINUATION_TOKEN, false },
	[TOP_PREFIX] = { TAG_PREFIX, true },
	[TOP_DELIMITER] = { TAG_DELIMITER, true },
	[TOP_START_AFTER] = { TAG_START_AFTER, true },
};

/* Bits of struct s3xml_list.seen and .entry_seen. */
#define SEEN(tag) (UINT64_C(1) << (tag))

struct s3xml_list {
	struct engine e;
	bool url_encoded;
	s3xml_object_fn on_object;
	s3xml_prefix_fn on_prefix;
	void *userdata;
	size_t entries;			/* Contents and CommonPrefixes opened */
	uint64_t seen;			/* top-level elements seen */
	uint64_t entry_seen;		/* elements seen in the current Contents */
	struct s3xml_object obj;	/* the current Contents; key and etag point below */
	char key[S3XML_MAX_TEXT + 1];
	char etag[S3XML_MAX_TEXT + 1];
	char top[TOP_FIELDS][S3XML_MAX_TEXT + 1];
	struct s3xml_list_result result;
};

/* The text of a key-like value: decoded into out when the page is URL-encoded,
 * copied otherwise. */
static int key_value(struct s3xml_list *x, char *out, size_t *ret_len)
{
	const char *s = NULL;
	size_t len = 0;
	int r = leaf_value(&x->e, S3XML_MAX_TEXT, &s, &len);

	if (r < 0)
		return r;
	if (x->url_encoded)
		return url_decode(&x->e, s, len, out, ret_len);
	memcpy(out, s, len);
	out[len] = '\0';
	*ret_len = len;
	return 0;
}

static int list_start(struct engine *e, void *ctx)
{
	struct s3xml_list *x = ctx;

	if (e->depth == 1 && current(e) != TAG_LIST_BUCKET_RESULT)
		return fail(e, -EINVAL, "root element is %s, expected ListBucketResult", e->name);
	if (e->depth != 2 || (current(e) != TAG_CONTENTS && current(e) != TAG_COMMON_PREFIXES))
		return 0;
	if (++x->entries > S3XML_MAX_ENTRIES)
		return fail(e, -EINVAL, "more than %d Contents and CommonPrefixes", S3XML_MAX_ENTRIES);
	if (current(e) == TAG_CONTENTS) {
		x->entry_seen = 0;
		x->obj = (struct s3xml_object){ .key = x->key, .etag = "" };
	}
	return 0;
}

/* The end of an element inside <Contents>. */
static int contents_field(struct s3xml_list *x)
{
	struct engine *e = &x->e;
	enum tag t = current(e);
	const char *s = NULL;
	size_t len = 0;
	int r;

	if (t != TAG_KEY && t != TAG_SIZE && t != TAG_LAST_MODIFIED && t != TAG_ETAG)
		return 0;
	if (x->entry_seen & SEEN(t))
		return fail(e, -EINVAL, "Contents has two %s elements", e->name);
	x->entry_seen |= SEEN(t);
	if (t == TAG_KEY)
		return key_value(x, x->key, &x->obj.key_len);
	r = leaf_value(e, S3XML_MAX_TEXT, &s, &len);
	if (r < 0)
		return r;
	switch (t) {
	case TAG_SIZE:
		if (parse_count(s, len, &x->obj.size) < 0)
			return fail(e, -EINVAL, "Size is not a non-negative integer");
		break;
	case TAG_LAST_MODIFIED:
		if (ctlog_parse_time(s, len, &x->obj.last_modified) < 0)
			return fail(e, -EINVAL, "LastModified is not a time like 2026-11-27T10:00:00.000Z");
		break;
	default:	/* ETag: "\"9b2cf535f27731c974343645a3985328\"" */
		if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
			s++;
			len -= 2;
		}
		memcpy(x->etag, s, len);
		x->etag[len] = '\0';
		x->obj.etag = x->etag;
		x->obj.etag_len = len;
		break;
	}
	return 0;
}

static int contents_end(struct s3xml_list *x)
{
	static const enum tag required[] = { TAG_KEY, TAG_SIZE, TAG_LAST_MODIFIED };

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!(x->entry_seen & SEEN(required[i])))
			return fail(&x->e, -EINVAL, "Contents without %s", tag_names[required[i]]);
	x->result.contents++;
	return x->on_object ? x->on_object(&x->obj, x->userdata) : 0;
}

static int prefix_end(struct s3xml_list *x)
{
	size_t len;
	int r = key_value(x, x->key, &len);

	if (r < 0)
		return r;
	x->result.common_prefixes++;
	return x->on_prefix ? x->on_prefix(x->key, len, x->userdata) : 0;
}

static int top_index(enum tag t)
{
	for (int f = 0; f < TOP_FIELDS; f++)
		if (top_fields[f].tag == t)
			return f;
	return -1;
}

/* The end of a child of ListBucketResult other than Contents. */
static int top_field(struct s3xml_list *x)
{
	struct engine *e = &x->e;
	enum tag t = current(e);
	int f = top_index(t);
	const char *s = NULL;
	size_t len = 0;
	int r;

	if (f < 0 && t != TAG_IS_TRUNCATED && t != TAG_KEY_COUNT && t != TAG_ENCODING_TYPE)
		return 0;
	if (x->seen & SEEN(t))
		return fail(e, -EINVAL, "ListBucketResult has two %s elements", e->name);
	x->seen |= SEEN(t);
	if (f >= 0 && top_fields[f].decode)
		return key_value(x, x->top[f], &len);
	r = leaf_value(e, S3XML_MAX_TEXT, &s, &len);
	if (r < 0)
		return r;
	switch (t) {
	case TAG_IS_TRUNCATED:
		if (len == 4 && memcmp(s, "true", 4) == 0)
			x->result.is_truncated = true;
		else if (len != 5 || memcmp(s, "false", 5) != 0)
			return fail(e, -EINVAL, "IsTruncated is neither true nor false");
		break;
	case TAG_KEY_COUNT:
		if (parse_count(s, len, &x->result.key_count) < 0)
			return fail(e, -EINVAL, "KeyCount is not a non-negative integer");
		break;
	case TAG_ENCODING_TYPE:
		if (len != 3 || memcmp(s, "url", 3) != 0)
			return fail(e, -EINVAL, "EncodingType is not url");
		if (!x->url_encoded)
			return fail(e, -EINVAL, "EncodingType is url but the request did not ask for it");
		break;
	default:	/* NextContinuationToken: opaque, kept as sent */
		memcpy(x->top[f], s, len);
		x->top[f][len] = '\0';
		break;
	}
	return 0;
}

static int list_end(struct engine *e, void *ctx)
{
	struct s3xml_list *x = ctx;

	if (e->depth == 3 && parent(e) == TAG_CONTENTS)
		return contents_field(x);
	if (e->depth == 3 && parent(e) == TAG_COMMON_PREFIXES && current(e) == TAG_PREFIX)
		return prefix_end(x);
	if (e->depth == 2 && current(e) == TAG_CONTENTS)
		return contents_end(x);
	if (e->depth == 2)
		return top_field(x);
	return 0;
}

int s3xml_list_new(bool url_encoded, s3xml_object_fn on_object, s3xml_prefix_fn on_prefix,
		   void *userdata, struct s3xml_list **ret)
{
	struct s3xml_list *x = calloc(1, sizeof(*x));
	int r;

	if (!x)
		return -ENOMEM;
	r = engine_init(&x->e, list_start, list_end, x);
	if (r < 0) {
		s3xml_list_free(x);
		return r;
	}
	x->url_encoded = url_encoded;
	x->on_object = on_object;
	x->on_prefix = on_prefix;
	x->userdata = userdata;
	x->result.key_count = -1;
	*ret = x;
	return 0;
}

void s3xml_list_free(struct s3xml_list *x)
{
	if (!x)
		return;
	engine_free(&x->e);
	free(x);
}

int s3xml_feed(struct s3xml_list *x, const void *data, size_t len, char *msg, size_t msglen)
{
	if (engine_parse(&x->e, data, len, false) < 0)
		return report(&x->e, msg, msglen);
	return 0;
}

static const char *top_value(const struct s3xml_list *x, enum top_field f)
{
	return x->seen & SEEN(top_fields[f].tag) ? x->top[f] : NULL;
}

int s3xml_finish(struct s3xml_list *x, struct s3xml_list_result *ret, char *msg, size_t msglen)
{
	struct s3xml_list_result *res = &x->result;
	struct engine *e = &x->e;

	if (engine_parse(e, "", 0, true) < 0)
		return report(e, msg, msglen);
	/* The document is complete: these errors have no position. */
	if (!(x->seen & SEEN(TAG_IS_TRUNCATED)))
		set_error(e, -EINVAL, false, "ListBucketResult without IsTruncated");
	else if (res->is_truncated && !(x->seen & SEEN(TAG_NEXT_CONTINUATION_TOKEN)))
		set_error(e, -EINVAL, false, "IsTruncated is true but there is no NextContinuationToken");
	else if (x->url_encoded && !(x->seen & SEEN(TAG_ENCODING_TYPE)))
		set_error(e, -EINVAL, false, "encoding-type=url was requested but the page has no EncodingType");
	if (e->err)
		return report(e, msg, msglen);
	res->encoding_type = x->seen & SEEN(TAG_ENCODING_TYPE) ? "url" : NULL;
	res->next_token = top_value(x, TOP_NEXT_TOKEN);
	res->prefix = top_value(x, TOP_PREFIX);
	res->delimiter = top_value(x, TOP_DELIMITER);
	res->start_after = top_value(x, TOP_START_AFTER);
	*ret = *res;
	return 0;
}

/* ---- Error documents ---- */

static int error_start(struct engine *e, void *ctx)
{
	if (e->depth == 1 && current(e) != TAG_ERROR && current(e) != TAG_ERROR_RESPONSE)
		return fail(e, -EINVAL, "root element is %s, expected Error or ErrorResponse", e->name);
	return 0;
}

/* S3:  Error/Code, Error/Message, Error/RequestId
 * STS: ErrorResponse/Error/Code, ErrorResponse/Error/Message, ErrorResponse/RequestId
 * Values are cut to fit (at a character boundary), never refused for length. */
static int error_end(struct engine *e, void *ctx)
{
	struct s3xml_error *err = ctx;
	bool in_error = (e->depth == 2 && e->path[0] == TAG_ERROR) ||
			(e->depth == 3 && e->path[0] == TAG_ERROR_RESPONSE && e->path[1] == TAG_ERROR);

	if (in_error && current(e) == TAG_CODE)
		copy_truncated(err->code, sizeof(err->code), e->text, e->text_len);
	else if (in_error && current(e) == TAG_MESSAGE)
		copy_truncated(err->message, sizeof(err->message), e->text, e->text_len);
	else if (e->depth == 2 && current(e) == TAG_REQUEST_ID)
		copy_truncated(err->request_id, sizeof(err->request_id), e->text, e->text_len);
	return 0;
}

static int error_finish(struct engine *e, void *ctx)
{
	const struct s3xml_error *res = ctx;

	return res->code[0] ? 0 : set_error(e, -EINVAL, false, "error document without Code");
}

int s3xml_parse_error(const void *data, size_t len, struct s3xml_error *ret, char *msg, size_t msglen)
{
	struct s3xml_error *res = calloc(1, sizeof(*res));
	int r = res ? parse_document(data, len, error_start, error_end, error_finish, res, msg, msglen) :
		      report(NULL, msg, msglen);

	if (r == 0)
		*ret = *res;
	free(res);
	return r;
}

/* ---- STS credentials ---- */

struct sts {
	struct s3xml_credentials creds;
	enum tag result;		/* the result element the root calls for */
	uint64_t seen;
};

static int sts_start(struct engine *e, void *ctx)
{
	struct sts *st = ctx;

	if (e->depth != 1)
		return 0;
	if (current(e) == TAG_ASSUME_ROLE_RESPONSE)
		st->result = TAG_ASSUME_ROLE_RESULT;
	else if (current(e) == TAG_WEB_IDENTITY_RESPONSE)
		st->result = TAG_WEB_IDENTITY_RESULT;
	else
		return fail(e, -EINVAL,
			    "root element is %s, expected AssumeRoleResponse or AssumeRoleWithWebIdentityResponse",
			    e->name);
	return 0;
}

/* Response/Result/Credentials/{AccessKeyId,SecretAccessKey,SessionToken,Expiration} */
static int sts_end(struct engine *e, void *ctx)
{
	struct sts *st = ctx;
	struct s3xml_credentials *c = &st->creds;
	enum tag t = current(e);
	char *dst = NULL;
	size_t size = 0, len = 0;
	const char *s = NULL;
	int r;

	if (e->depth != 4 || e->path[1] != st->result || e->path[2] != TAG_CREDENTIALS)
		return 0;
	switch (t) {
	case TAG_ACCESS_KEY_ID:
		dst = c->access_key_id, size = sizeof(c->access_key_id);
		break;
	case TAG_SECRET_ACCESS_KEY:
		dst = c->secret_access_key, size = sizeof(c->secret_access_key);
		break;
	case TAG_SESSION_TOKEN:
		dst = c->session_token, size = sizeof(c->session_token);
		break;
	case TAG_EXPIRATION:
		size = S3XML_MAX_TEXT + 1;
		break;
	default:
		return 0;
	}
	if (st->seen & SEEN(t))
		return fail(e, -EINVAL, "Credentials has two %s elements", e->name);
	st->seen |= SEEN(t);
	r = leaf_value(e, size - 1, &s, &len);
	if (r < 0)
		return r;
	if (len == 0)
		return fail(e, -EINVAL, "%s is empty", e->name);
	if (t == TAG_EXPIRATION) {
		if (ctlog_parse_time(s, len, &c->expiration) < 0)
			return fail(e, -EINVAL, "Expiration is not a time like 2026-11-27T10:00:00Z");
		return 0;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

static int sts_finish(struct engine *e, void *ctx)
{
	static const enum tag required[] = { TAG_ACCESS_KEY_ID, TAG_SECRET_ACCESS_KEY, TAG_SESSION_TOKEN,
					     TAG_EXPIRATION };
	const struct sts *st = ctx;

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!(st->seen & SEEN(required[i])))
			return set_error(e, -EINVAL, false, "STS response without Credentials/%s",
					 tag_names[required[i]]);
	return 0;
}

int s3xml_parse_credentials(const void *data, size_t len, struct s3xml_credentials *ret,
			    char *msg, size_t msglen)
{
	struct sts *st = calloc(1, sizeof(*st));
	int r = st ? parse_document(data, len, sts_start, sts_end, sts_finish, st, msg, msglen) :
		     report(NULL, msg, msglen);

	if (r == 0)
		*ret = st->creds;
	if (st)
		explicit_bzero(st, sizeof(*st));
	free(st);
	return r;
}
