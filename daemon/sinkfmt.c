/* sinkfmt.c: an alert formatted for Slack, Teams, PagerDuty, generic webhooks
 * and journald (see sinkfmt.h).
 *
 * The alert is parsed with json-c into a view (pointers into the parse tree),
 * and each destination's document is built as a json-c tree and serialized
 * once into the caller's buffer.  Every text put into a document goes
 * through struct text, which escapes it for the destination's markup, makes
 * invalid UTF-8 U+FFFD, and cuts it at a character boundary with "…" when it
 * would pass its limit.  Slack and Teams also have a limit on the whole
 * message: they are built with generous per-value limits first and rebuilt
 * with smaller ones until the message fits (the last set always does).
 */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>

#include "trailwatch/msg.h"
#include "trailwatch/sinkfmt.h"

#define PARSE_DEPTH 8		/* the alert is 3 deep; anything deeper is not one */
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define ELLIPSIS "\xe2\x80\xa6"	/* U+2026 */
#define MAX_SHOWN_EVENT_IDS 10
#define CONSOLE_LINK_TEXT "CloudTrail console"

/* ---- Text with escaping and a length limit ---- */

#define TX_MRKDWN 1	/* & < > as &amp; &lt; &gt; (Slack) */
#define TX_MARKDOWN 2	/* \ * _ ~ ` [ ] preceded by a backslash (Adaptive Cards) */
#define TX_ONELINE 4	/* control characters (newlines too) become spaces */

struct text {
	struct buf b;
	size_t units;		/* UTF-16 code units, or bytes when counting bytes */
	size_t max;		/* limit of units, the ellipsis included */
	bool bytes;		/* count bytes instead of UTF-16 code units */
	size_t mark_len;	/* the longest prefix after which an ellipsis still fits */
	size_t mark_units;
	bool cut;		/* the limit was reached: nothing more is added */
	int err;
};

/* max must leave room for the ellipsis (1 unit, or 3 bytes). */
static void text_init(struct text *t, size_t max, bool bytes)
{
	memset(t, 0, sizeof(*t));
	buf_init(&t->b, 0);
	t->max = max;
	t->bytes = bytes;
}

static void text_free(struct text *t)
{
	buf_free(&t->b);
}

/* Decodes the UTF-8 character at s: its length (at least 1) and code point,
 * U+FFFD for an invalid or truncated sequence (which then counts 1 byte). */
static size_t u8_next(const unsigned char *s, size_t n, unsigned long *cp, bool *bad)
{
	unsigned long c = s[0], min;
	size_t len;

	*bad = false;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, c &= 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, c &= 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, c &= 0x07, min = 0x10000;
	} else {
		goto bad;
	}
	if (n < len)
		goto bad;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		goto bad;
	*cp = c;
	return len;
bad:
	*bad = true;
	*cp = 0xfffd;
	return 1;
}

static void text_put(struct text *t, const char *p, size_t n, size_t units)
{
	int r;

	if (t->cut || t->err)
		return;
	if (t->units + units > t->max) {
		if (t->b.data)
			buf_set_len(&t->b, t->mark_len);
		t->units = t->mark_units;
		r = buf_append(&t->b, ELLIPSIS, 3);
		if (r < 0)
			t->err = r;
		t->units += t->bytes ? 3 : 1;
		t->cut = true;
		return;
	}
	r = buf_append(&t->b, p, n);
	if (r < 0) {
		t->err = r;
		return;
	}
	t->units += units;
	if (t->units + (t->bytes ? 3 : 1) <= t->max) {
		t->mark_len = t->b.len;
		t->mark_units = t->units;
	}
}

/* Appends s[0..len) escaped per flags, as far as the limit allows. */
static void text_add(struct text *t, const char *s, size_t len, int flags)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len && !t->cut && !t->err;) {
		unsigned long cp;
		bool bad;
		size_t n = u8_next(p + i, len - i, &cp, &bad);
		char esc[2];

		if ((flags & TX_ONELINE) && (cp < 0x20 || cp == 0x7f)) {
			text_put(t, " ", 1, 1);
		} else if ((flags & TX_MRKDWN) && cp == '&') {
			text_put(t, "&amp;", 5, 5);
		} else if ((flags & TX_MRKDWN) && cp == '<') {
			text_put(t, "&lt;", 4, 4);
		} else if ((flags & TX_MRKDWN) && cp == '>') {
			text_put(t, "&gt;", 4, 4);
		} else if ((flags & TX_MARKDOWN) && cp && cp < 0x80 && strchr("\\*_~`[]", (int)cp)) {
			esc[0] = '\\';
			esc[1] = (char)cp;
			text_put(t, esc, 2, 2);
		} else if (bad) {
			text_put(t, "\xef\xbf\xbd", 3, t->bytes ? 3 : 1);
		} else {
			text_put(t, s + i, n, t->bytes ? n : cp >= 0x10000 ? 2 : 1);
		}
		i += n;
	}
}

static void text_adds(struct text *t, const char *s, int flags)
{
	text_add(t, s, strlen(s), flags);
}

/* ---- The alert ---- */

struct str {
	const char *p;		/* NULL when absent */
	size_t len;
};

static const struct level {
	const char *name, *upper, *pagerduty, *priority, *teams_color;
} levels[] = {
	{ "informational", "INFORMATIONAL", "info", "6", "Default" },
	{ "low", "LOW", "info", "5", "Default" },
	{ "medium", "MEDIUM", "warning", "4", "Warning" },
	{ "high", "HIGH", "error", "3", "Attention" },
	{ "critical", "CRITICAL", "critical", "2", "Attention" },
};

struct view {
	json_object *root;
	const struct level *level;
	struct str id, rule, title, severity, event_time, account, region, event_name, principal, source_ip,
		user_agent, bucket, object_key, log_object, window, first_event;
	json_object *event_ids, *group, *count, *value;
	json_object *reasons, *covers;	/* arrays, or NULL when absent or empty */
	char count_text[32];
	struct str value_text;
	struct buf url;		/* the console link; len 0 when none */
	const char *text;	/* the alert as given, without trailing whitespace */
	size_t text_len;
};

static struct str member_str(json_object *o, const char *key)
{
	json_object *v;
	struct str s = { NULL, 0 };

	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) > 0) {
		s.p = json_object_get_string(v);
		s.len = (size_t)json_object_get_string_len(v);
	}
	return s;
}

static json_object *member_of_type(json_object *o, const char *key, json_type type)
{
	json_object *v;

	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type))
		return v;
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void view_free(struct view *v)
{
	json_object_put(v->root);
	buf_free(&v->url);
}

static int view_parse(struct view *v, const char *alert, size_t len, char *msg, size_t msglen)
{
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	size_t end;
	json_object *first;
	int r;

	memset(v, 0, sizeof(*v));
	buf_init(&v->url, 0);
	if (!alert) {
		msg_set(msg, msglen, "no alert given");
		return -EINVAL;
	}
	if (len > SINKFMT_ALERT_MAX) {
		msg_set(msg, msglen, "the alert is %zu bytes, more than the %d accepted", len,
			SINKFMT_ALERT_MAX);
		return -EINVAL;
	}
	tok = json_tokener_new_ex(PARSE_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	v->root = json_tokener_parse_ex(tok, alert, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr == json_tokener_continue || (jerr == json_tokener_success && !v->root)) {
		msg_set(msg, msglen, "the alert is not a complete JSON object");
		return -EINVAL;
	}
	if (jerr != json_tokener_success) {
		msg_set(msg, msglen, "the alert is not valid JSON: %s at byte %zu",
			json_tokener_error_desc(jerr), end);
		return -EINVAL;
	}
	for (; end < len; end++) {
		if (!is_space(alert[end])) {
			msg_set(msg, msglen, "the alert has text after its JSON object at byte %zu", end);
			return -EINVAL;
		}
	}
	if (!json_object_is_type(v->root, json_type_object)) {
		msg_set(msg, msglen, "the alert is not a JSON object");
		return -EINVAL;
	}
	v->text = alert;
	v->text_len = len;
	while (v->text_len && is_space(v->text[v->text_len - 1]))
		v->text_len--;

	v->id = member_str(v->root, "id");
	v->title = member_str(v->root, "title");
	v->severity = member_str(v->root, "severity");
	if (!v->id.p || !v->title.p || !v->severity.p) {
		msg_set(msg, msglen, "the alert has no \"%s\" string",
			!v->id.p ? "id" : !v->title.p ? "title" : "severity");
		return -EINVAL;
	}
	if (v->id.len > SINKFMT_ID_MAX) {
		msg_set(msg, msglen, "the alert id is %zu bytes, more than the %d accepted", v->id.len,
			SINKFMT_ID_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strlen(levels[i].name) == v->severity.len &&
		    !memcmp(levels[i].name, v->severity.p, v->severity.len))
			v->level = &levels[i];
	if (!v->level) {
		msg_set(msg, msglen,
			"the alert severity \"%.32s\" is not informational, low, medium, high or critical",
			v->severity.p);
		return -EINVAL;
	}
	v->rule = member_str(v->root, "rule");
	v->event_time = member_str(v->root, "event_time");
	v->account = member_str(v->root, "account");
	v->region = member_str(v->root, "region");
	v->event_name = member_str(v->root, "event_name");
	v->principal = member_str(v->root, "principal");
	v->source_ip = member_str(v->root, "source_ip");
	v->user_agent = member_str(v->root, "user_agent");
	v->bucket = member_str(v->root, "bucket");
	v->object_key = member_str(v->root, "object_key");
	v->log_object = member_str(v->root, "log_object");
	v->window = member_str(v->root, "window");
	v->event_ids = member_of_type(v->root, "event_ids", json_type_array);
	v->reasons = member_of_type(v->root, "reasons", json_type_array);
	if (v->reasons && json_object_array_length(v->reasons) == 0)
		v->reasons = NULL;
	v->covers = member_of_type(v->root, "covers", json_type_array);
	if (v->covers && json_object_array_length(v->covers) == 0)
		v->covers = NULL;
	v->group = member_of_type(v->root, "group", json_type_object);
	if (v->group && json_object_object_length(v->group) == 0)
		v->group = NULL;
	v->count = member_of_type(v->root, "count", json_type_int);
	if (v->count)
		snprintf(v->count_text, sizeof(v->count_text), "%lld",
			 (long long)json_object_get_int64(v->count));
	v->value = member_of_type(v->root, "value", json_type_double);
	if (!v->value)
		v->value = member_of_type(v->root, "value", json_type_int);
	if (v->value) {
		/* The number as the alert wrote it (json-c keeps a parsed number's text). */
		v->value_text.p = json_object_to_json_string_length(v->value, JSON_FLAGS, &v->value_text.len);
		if (!v->value_text.p)
			return -ENOMEM;
	}
	first = v->event_ids ? json_object_array_get_idx(v->event_ids, 0) : NULL;
	if (first && json_object_is_type(first, json_type_string) && json_object_get_string_len(first) > 0) {
		v->first_event.p = json_object_get_string(first);
		v->first_event.len = (size_t)json_object_get_string_len(first);
	}
	if (v->region.p && v->first_event.p) {
		r = sinkfmt_console_url(v->region.p, v->region.len, v->first_event.p, v->first_event.len,
					&v->url);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

/* ---- The console link ---- */

#define REGION_MAX 32
#define EVENT_ID_MAX 128

int sinkfmt_console_url(const char *region, size_t region_len, const char *event_id, size_t event_id_len,
			struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t mark = out->len;
	int r;

	if (!region || !event_id || !region_len || region_len > REGION_MAX || !event_id_len ||
	    event_id_len > EVENT_ID_MAX)
		return -ENOENT;
	for (size_t i = 0; i < region_len; i++) {
		char c = region[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return -ENOENT;
	}
	if (region[0] == '-' || region[region_len - 1] == '-')
		return -ENOENT;
	/* Other partitions: their consoles are on other domains. */
	if ((region_len >= 3 && !memcmp(region, "cn-", 3)) ||
	    (region_len >= 7 && !memcmp(region, "us-gov-", 7)) ||
	    (region_len >= 6 && !memcmp(region, "us-iso", 6)))
		return -ENOENT;
	r = buf_printf(out, "https://%.*s.console.aws.amazon.com/cloudtrailv2/home?region=%.*s#/events/",
		       (int)region_len, region, (int)region_len, region);
	for (size_t i = 0; i < event_id_len && !r; i++) {
		unsigned char c = (unsigned char)event_id[i];
		char pct[3] = { '%', hex[c >> 4], hex[c & 15] };

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '.' || c == '_' || c == '~')
			r = buf_append(out, &event_id[i], 1);
		else
			r = buf_append(out, pct, 3);
	}
	if (r < 0 && out->data)
		buf_set_len(out, mark);
	return r;
}

/* ---- Building json-c documents ---- */

struct doc {
	int err;		/* the first failure; everything after it is skipped */
	size_t units;		/* Slack: the sum of the block texts' lengths */
	int flags;		/* TX_* for values from the alert */
};

static void doc_fail(struct doc *d, int err)
{
	if (!d->err)
		d->err = err;
}

static json_object *new_object(struct doc *d)
{
	json_object *o = d->err ? NULL : json_object_new_object();

	if (!o)
		doc_fail(d, -ENOMEM);
	return o;
}

static json_object *new_array(struct doc *d)
{
	json_object *o = d->err ? NULL : json_object_new_array();

	if (!o)
		doc_fail(d, -ENOMEM);
	return o;
}

/* Adds val (owned) under key; a NULL val after a failure is ignored, and
 * so is everything once something failed.  Use add_null for JSON null. */
static void add(struct doc *d, json_object *o, const char *key, json_object *val)
{
	if (!d->err && (!o || !val))
		doc_fail(d, -ENOMEM);
	if (d->err || json_object_object_add(o, key, val) < 0) {
		doc_fail(d, -ENOMEM);
		json_object_put(val);
	}
}

static void add_null(struct doc *d, json_object *o, const char *key)
{
	if (!d->err && json_object_object_add(o, key, NULL) < 0)
		doc_fail(d, -ENOMEM);
}

static void push(struct doc *d, json_object *a, json_object *val)
{
	if (!d->err && (!a || !val))
		doc_fail(d, -ENOMEM);
	if (d->err || json_object_array_add(a, val) < 0) {
		doc_fail(d, -ENOMEM);
		json_object_put(val);
	}
}

static json_object *new_str(struct doc *d, const char *s, size_t len)
{
	json_object *o = d->err ? NULL : json_object_new_string_len(s ? s : "", (int)len);

	if (!o)
		doc_fail(d, -ENOMEM);
	return o;
}

static void add_str(struct doc *d, json_object *o, const char *key, const char *s)
{
	add(d, o, key, new_str(d, s, strlen(s)));
}

static void add_bool(struct doc *d, json_object *o, const char *key, bool b)
{
	json_object *v = d->err ? NULL : json_object_new_boolean(b);

	if (!v)
		doc_fail(d, -ENOMEM);
	add(d, o, key, v);
}

/* The text as a JSON string; frees the text. */
static json_object *text_json(struct doc *d, struct text *t)
{
	json_object *o = NULL;

	if (t->err)
		doc_fail(d, t->err);
	else
		o = new_str(d, t->b.data, t->b.len);
	text_free(t);
	return o;
}

static void add_text(struct doc *d, json_object *o, const char *key, struct text *t)
{
	add(d, o, key, text_json(d, t));
}

/* Serializes root into out; puts root. */
static int finish(struct doc *d, json_object *root, size_t max, struct buf *out)
{
	const char *s;
	size_t len = 0;
	int r = d->err;

	if (!r && !root)
		r = -ENOMEM;
	if (!r) {
		s = json_object_to_json_string_length(root, JSON_FLAGS, &len);
		r = !s ? -ENOMEM : max && len > max ? -E2BIG : buf_append(out, s, len);
	}
	json_object_put(root);
	return r;
}

/* ---- What Slack and Teams show ---- */

/* The values both show as labelled fields, in order; parts are concatenated. */
struct fact {
	const char *label;
	struct str part[4];
	int literal;		/* bit i: part i is ours, not escaped */
};

static struct str lit(const char *s)
{
	struct str r = { s, strlen(s) };
	return r;
}

/* Adds a one-part fact when the value is there. */
static void add_fact(struct fact *f, size_t *n, const char *label, struct str value)
{
	if (!value.p)
		return;
	memset(&f[*n], 0, sizeof(f[*n]));
	f[*n].label = label;
	f[(*n)++].part[0] = value;
}

static size_t alert_facts(const struct view *v, struct fact *f)
{
	const struct {
		const char *label;
		struct str value;
	} plain[] = {
		{ "Account", v->account }, { "Region", v->region }, { "Event", v->event_name },
		{ "Time", v->event_time }, { "Principal", v->principal }, { "Source IP", v->source_ip },
		{ "User agent", v->user_agent },
	};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		add_fact(f, &n, plain[i].label, plain[i].value);
	if (v->bucket.p && v->object_key.p) {
		memset(&f[n], 0, sizeof(f[n]));
		f[n].label = "S3 object";
		f[n].part[0] = lit("s3://");
		f[n].part[1] = v->bucket;
		f[n].part[2] = lit("/");
		f[n].part[3] = v->object_key;
		f[n++].literal = 1 | 4;
	} else {
		add_fact(f, &n, "Bucket", v->bucket);
		add_fact(f, &n, "Object key", v->object_key);
	}
	return n;
}

#define MAX_FACTS 9

static void fact_value(struct text *t, const struct fact *f, int flags)
{
	for (size_t i = 0; i < 4; i++)
		if (f->part[i].p)
			text_add(t, f->part[i].p, f->part[i].len, (f->literal >> i) & 1 ? 0 : flags);
}

/* Correlation values: Count, Window, Value, Group.  Each call writes one
 * into t (label in *label) and returns false when there are no more. */
static bool correlation_fact(const struct view *v, size_t i, const char **label, struct text *t, int flags)
{
	size_t k = 0;

	if (v->count && k++ == i) {
		*label = "Count";
		text_adds(t, v->count_text, 0);
		return true;
	}
	if (v->window.p && k++ == i) {
		*label = "Window";
		text_add(t, v->window.p, v->window.len, flags);
		return true;
	}
	if (v->value && k++ == i) {
		*label = "Value";
		text_add(t, v->value_text.p, v->value_text.len, flags);
		return true;
	}
	if (v->group && k++ == i) {
		bool first = true;

		*label = "Group";
		json_object_object_foreach(v->group, key, val) {
			if (!first)
				text_adds(t, ", ", 0);
			first = false;
			text_adds(t, key, flags);
			text_adds(t, "=", 0);
			if (json_object_is_type(val, json_type_string))
				text_add(t, json_object_get_string(val),
					 (size_t)json_object_get_string_len(val), flags);
			else
				text_adds(t, "(none)", 0);
		}
		return true;
	}
	return false;
}

/* The alert's reasons, "r1 · r2" (strings only). */
static void reasons_text(struct text *t, const struct view *v, int flags)
{
	bool first = true;

	for (size_t i = 0; v->reasons && i < json_object_array_length(v->reasons); i++) {
		json_object *e = json_object_array_get_idx(v->reasons, i);

		if (!json_object_is_type(e, json_type_string))
			continue;
		if (!first)
			text_adds(t, " \xc2\xb7 ", 0);
		first = false;
		text_add(t, json_object_get_string(e), (size_t)json_object_get_string_len(e), flags);
	}
}

/* The titles of the rules the alert covers, "t1, t2". */
static void covers_text(struct text *t, const struct view *v, int flags)
{
	bool first = true;

	for (size_t i = 0; v->covers && i < json_object_array_length(v->covers); i++) {
		struct str title = member_str(json_object_array_get_idx(v->covers, i), "title");

		if (!title.p)
			continue;
		if (!first)
			text_adds(t, ", ", 0);
		first = false;
		text_add(t, title.p, title.len, flags);
	}
}

/* "[HIGH] title" */
static void title_text(struct text *t, const struct view *v, int flags)
{
	text_adds(t, "[", 0);
	text_adds(t, v->level->upper, 0);
	text_adds(t, "] ", 0);
	text_add(t, v->title.p, v->title.len, flags);
}

/* "id1, id2, ... (+N more)" */
static void event_ids_text(struct text *t, const struct view *v, int flags)
{
	size_t n = v->event_ids ? json_object_array_length(v->event_ids) : 0, shown = 0;

	for (size_t i = 0; i < n && shown < MAX_SHOWN_EVENT_IDS; i++) {
		json_object *e = json_object_array_get_idx(v->event_ids, i);

		if (!json_object_is_type(e, json_type_string))
			continue;
		if (shown++)
			text_adds(t, ", ", 0);
		text_add(t, json_object_get_string(e), (size_t)json_object_get_string_len(e), flags);
	}
	if (n > shown) {
		char more[48];

		snprintf(more, sizeof(more), " (+%zu more)", n - shown);
		text_adds(t, more, 0);
	}
}

static bool has_event_ids(const struct view *v)
{
	return v->event_ids && json_object_array_length(v->event_ids) > 0;
}

/* Per-value limits, generous first; the last set always fits the budget. */
struct caps {
	size_t value, desc, context;
};

/* ---- Slack ---- */

static const struct caps slack_caps[] = {
	{ SINKFMT_SLACK_FIELD_MAX, SINKFMT_SLACK_SECTION_MAX, SINKFMT_SLACK_FIELD_MAX },
	{ 700, 1500, 700 },
	{ 250, 500, 250 },
	{ 80, 200, 120 },
};

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* {"type": type, "text": t} (mrkdwn ones verbatim); counts t. */
static json_object *slack_text(struct doc *d, const char *type, struct text *t)
{
	json_object *o = new_object(d);

	d->units += t->units;
	add_str(d, o, "type", type);
	add_text(d, o, "text", t);
	if (!strcmp(type, "mrkdwn"))
		add_bool(d, o, "verbatim", true);
	return o;
}

/* A mrkdwn field "*Label*\nvalue" within the field limit and the value cap. */
static void slack_field_start(struct text *t, const char *label, size_t cap)
{
	size_t head = strlen(label) + 3;

	text_init(t, min_size(SINKFMT_SLACK_FIELD_MAX, head + cap), false);
	text_adds(t, "*", 0);
	text_adds(t, label, 0);
	text_adds(t, "*\n", 0);
}

static json_object *slack_build(const struct view *v, const char *description, const struct caps *c,
				struct doc *d)
{
	const int flags = TX_MRKDWN | TX_ONELINE;
	json_object *root = new_object(d), *blocks = new_array(d), *b, *fields, *elements;
	struct fact facts[MAX_FACTS];
	size_t nfacts = alert_facts(v, facts);
	const char *label;
	struct text t;

	text_init(&t, SINKFMT_SLACK_FALLBACK_MAX, false);
	title_text(&t, v, flags);
	add_text(d, root, "text", &t);

	b = new_object(d);
	add_str(d, b, "type", "header");
	text_init(&t, SINKFMT_SLACK_HEADER_MAX, false);
	title_text(&t, v, TX_ONELINE);
	add(d, b, "text", slack_text(d, "plain_text", &t));
	push(d, blocks, b);

	if (nfacts) {
		b = new_object(d);
		fields = new_array(d);
		add_str(d, b, "type", "section");
		for (size_t i = 0; i < nfacts && i < SINKFMT_SLACK_FIELDS_MAX; i++) {
			slack_field_start(&t, facts[i].label, c->value);
			fact_value(&t, &facts[i], flags);
			push(d, fields, slack_text(d, "mrkdwn", &t));
		}
		add(d, b, "fields", fields);
		push(d, blocks, b);
	}

	if (v->reasons || v->covers) {
		/* What the event did, then what this alert stands in for. */
		b = new_object(d);
		add_str(d, b, "type", "section");
		text_init(&t, min_size(SINKFMT_SLACK_SECTION_MAX, c->desc), false);
		if (v->reasons) {
			text_adds(&t, "*Why* ", 0);
			reasons_text(&t, v, flags);
		}
		if (v->covers) {
			text_adds(&t, v->reasons ? "\n*Also covers* " : "*Also covers* ", 0);
			covers_text(&t, v, flags);
		}
		add(d, b, "text", slack_text(d, "mrkdwn", &t));
		push(d, blocks, b);
	}

	if (description && *description) {
		b = new_object(d);
		add_str(d, b, "type", "section");
		text_init(&t, min_size(SINKFMT_SLACK_SECTION_MAX, c->desc), false);
		text_adds(&t, description, TX_MRKDWN);
		add(d, b, "text", slack_text(d, "mrkdwn", &t));
		push(d, blocks, b);
	}

	if (v->count || v->window.p || v->value || v->group) {
		b = new_object(d);
		fields = new_array(d);
		add_str(d, b, "type", "section");
		for (size_t i = 0; i < SINKFMT_SLACK_FIELDS_MAX; i++) {
			struct text value;

			text_init(&value, c->value, false);
			if (!correlation_fact(v, i, &label, &value, flags)) {
				text_free(&value);
				break;
			}
			slack_field_start(&t, label, c->value);
			text_add(&t, value.b.data, value.b.len, 0);
			if (value.err)
				doc_fail(d, value.err);
			text_free(&value);
			push(d, fields, slack_text(d, "mrkdwn", &t));
		}
		add(d, b, "fields", fields);
		push(d, blocks, b);
	}

	b = new_object(d);
	elements = new_array(d);
	add_str(d, b, "type", "context");
	if (v->rule.p) {
		text_init(&t, c->context, false);
		text_adds(&t, "*Rule* ", 0);
		text_add(&t, v->rule.p, v->rule.len, flags);
		push(d, elements, slack_text(d, "mrkdwn", &t));
	}
	text_init(&t, c->context, false);
	text_adds(&t, "*Alert* ", 0);
	text_add(&t, v->id.p, v->id.len, flags);
	push(d, elements, slack_text(d, "mrkdwn", &t));
	if (has_event_ids(v)) {
		text_init(&t, c->context, false);
		text_adds(&t, "*Events* ", 0);
		event_ids_text(&t, v, flags);
		push(d, elements, slack_text(d, "mrkdwn", &t));
	}
	if (v->log_object.p) {
		text_init(&t, c->context, false);
		text_adds(&t, "*Log* ", 0);
		text_add(&t, v->log_object.p, v->log_object.len, flags);
		push(d, elements, slack_text(d, "mrkdwn", &t));
	}
	if (v->url.len) {
		/* The URL is ours and percent-encoded: no & < > | in it to escape. */
		text_init(&t, SIZE_MAX, false);
		text_adds(&t, "<", 0);
		text_add(&t, v->url.data, v->url.len, 0);
		text_adds(&t, "|" CONSOLE_LINK_TEXT ">", 0);
		push(d, elements, slack_text(d, "mrkdwn", &t));
	}
	add(d, b, "elements", elements);
	push(d, blocks, b);

	add(d, root, "blocks", blocks);
	add_bool(d, root, "unfurl_links", false);
	add_bool(d, root, "unfurl_media", false);
	return root;
}

int sinkfmt_slack(const char *alert, size_t len, const char *description, struct buf *out, char *msg,
		  size_t msglen)
{
	struct view v;
	int r = view_parse(&v, alert, len, msg, msglen);

	const size_t nlevels = sizeof(slack_caps) / sizeof(slack_caps[0]);

	for (size_t i = 0; !r && i < nlevels; i++) {
		struct doc d = { 0 };
		json_object *root = slack_build(&v, description, &slack_caps[i], &d);

		if (!d.err && d.units > SINKFMT_SLACK_TEXT_BUDGET && i + 1 < nlevels) {
			json_object_put(root);
			continue;
		}
		r = finish(&d, root, 0, out);
		break;
	}
	view_free(&v);
	return r;
}

/* ---- Teams ---- */

static const struct caps teams_caps[] = {
	{ 2000, 4000, 1000 },
	{ 700, 1500, 500 },
	{ 250, 500, 250 },
	{ 80, 200, 120 },
};

static json_object *teams_textblock(struct doc *d, struct text *t)
{
	json_object *o = new_object(d);

	add_str(d, o, "type", "TextBlock");
	add_text(d, o, "text", t);
	add_bool(d, o, "wrap", true);
	return o;
}

static json_object *teams_fact(struct doc *d, const char *label, struct text *t)
{
	json_object *o = new_object(d);

	add_str(d, o, "title", label);
	add_text(d, o, "value", t);
	return o;
}

static json_object *teams_build(const struct view *v, const char *description, const struct caps *c,
				struct doc *d)
{
	const int flags = TX_MARKDOWN | TX_ONELINE;
	json_object *root = new_object(d), *atts = new_array(d), *att = new_object(d), *card = new_object(d);
	json_object *body = new_array(d), *o, *facts, *ms;
	struct fact f[MAX_FACTS];
	size_t nfacts = alert_facts(v, f);
	const char *label;
	struct text t;

	add_str(d, root, "type", "message");
	add_str(d, att, "contentType", "application/vnd.microsoft.card.adaptive");
	add_null(d, att, "contentUrl");
	add_str(d, card, "$schema", "http://adaptivecards.io/schemas/adaptive-card.json");
	add_str(d, card, "type", "AdaptiveCard");
	add_str(d, card, "version", "1.4");
	ms = new_object(d);
	add_str(d, ms, "width", "Full");
	add(d, card, "msteams", ms);

	text_init(&t, c->desc, false);
	title_text(&t, v, flags);
	o = teams_textblock(d, &t);
	add_str(d, o, "weight", "Bolder");
	add_str(d, o, "size", "Large");
	add_str(d, o, "color", v->level->teams_color);
	push(d, body, o);

	if (nfacts) {
		o = new_object(d);
		facts = new_array(d);
		add_str(d, o, "type", "FactSet");
		for (size_t i = 0; i < nfacts; i++) {
			text_init(&t, c->value, false);
			fact_value(&t, &f[i], flags);
			push(d, facts, teams_fact(d, f[i].label, &t));
		}
		add(d, o, "facts", facts);
		push(d, body, o);
	}

	if (v->reasons) {
		text_init(&t, c->desc, false);
		text_adds(&t, "**Why** ", 0);
		reasons_text(&t, v, flags);
		push(d, body, teams_textblock(d, &t));
	}
	if (v->covers) {
		text_init(&t, c->desc, false);
		text_adds(&t, "**Also covers** ", 0);
		covers_text(&t, v, flags);
		push(d, body, teams_textblock(d, &t));
	}

	if (description && *description) {
		/* The rule's own text: its Markdown, if any, is meant. */
		text_init(&t, c->desc, false);
		text_adds(&t, description, 0);
		push(d, body, teams_textblock(d, &t));
	}

	if (v->count || v->window.p || v->value || v->group) {
		o = new_object(d);
		facts = new_array(d);
		add_str(d, o, "type", "FactSet");
		text_init(&t, c->value, false);
		for (size_t i = 0; correlation_fact(v, i, &label, &t, flags); i++) {
			push(d, facts, teams_fact(d, label, &t));
			text_init(&t, c->value, false);
		}
		text_free(&t);
		add(d, o, "facts", facts);
		push(d, body, o);
	}

	text_init(&t, c->context, false);
	if (v->rule.p) {
		text_adds(&t, "Rule ", 0);
		text_add(&t, v->rule.p, v->rule.len, flags);
		text_adds(&t, " \xc2\xb7 ", 0);
	}
	text_adds(&t, "Alert ", 0);
	text_add(&t, v->id.p, v->id.len, flags);
	if (has_event_ids(v)) {
		text_adds(&t, " \xc2\xb7 Events ", 0);
		event_ids_text(&t, v, flags);
	}
	o = teams_textblock(d, &t);
	add_str(d, o, "size", "Small");
	add_bool(d, o, "isSubtle", true);
	push(d, body, o);
	add(d, card, "body", body);

	if (v->url.len) {
		json_object *actions = new_array(d);

		o = new_object(d);
		add_str(d, o, "type", "Action.OpenUrl");
		add_str(d, o, "title", "Open in " CONSOLE_LINK_TEXT);
		add(d, o, "url", new_str(d, v->url.data, v->url.len));
		push(d, actions, o);
		add(d, card, "actions", actions);
	}
	add(d, att, "content", card);
	push(d, atts, att);
	add(d, root, "attachments", atts);
	return root;
}

int sinkfmt_teams(const char *alert, size_t len, const char *description, struct buf *out, char *msg,
		  size_t msglen)
{
	const size_t nlevels = sizeof(teams_caps) / sizeof(teams_caps[0]);
	struct view v;
	int r = view_parse(&v, alert, len, msg, msglen);

	for (size_t i = 0; !r && i < nlevels; i++) {
		struct doc d = { 0 };
		json_object *root = teams_build(&v, description, &teams_caps[i], &d);

		r = finish(&d, root, SINKFMT_TEAMS_MAX, out);
		if (r != -E2BIG || i + 1 == nlevels)
			break;
		r = 0;
	}
	view_free(&v);
	return r;
}

/* ---- A bounded copy of the alert (PagerDuty custom_details, journald) ---- */

struct budget {
	size_t left;		/* bytes of serialized JSON still allowed */
	size_t string_max;	/* characters of each string */
	bool cut;		/* something was cut or dropped */
};

/* An upper bound of the serialized length of a JSON string, quotes included. */
static size_t json_string_cost(const char *s, size_t len)
{
	size_t n = 2;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		n += c < 0x20 || c == 0x7f ? 6 : c == '"' || c == '\\' || c == '/' ? 2 : 1;
	}
	return n;
}

static bool spend(struct budget *b, size_t n)
{
	if (n > b->left) {
		b->cut = true;
		return false;
	}
	b->left -= n;
	return true;
}

/* Copies v within the budget into *ret: 0, 1 when it did not fit at all
 * (nothing made), -ENOMEM.  A container that fits keeps the members that
 * fit after it, in order, and the first one that does not ends it. */
static int copy_bounded(json_object *v, struct budget *b, json_object **ret)
{
	json_object *c = NULL, *child;
	struct text t;
	const char *s;
	size_t len;
	int r = 0;

	*ret = NULL;
	switch (json_object_get_type(v)) {
	case json_type_string:
		text_init(&t, b->string_max, false);
		text_add(&t, json_object_get_string(v), (size_t)json_object_get_string_len(v), 0);
		b->cut |= t.cut;
		if (t.err)
			r = t.err;
		else if (!spend(b, json_string_cost(t.b.data ? t.b.data : "", t.b.len)))
			r = 1;
		else if (!(c = json_object_new_string_len(t.b.data ? t.b.data : "", (int)t.b.len)))
			r = -ENOMEM;
		text_free(&t);
		break;
	case json_type_object:
		if (!spend(b, 2))
			return 1;
		if (!(c = json_object_new_object()))
			return -ENOMEM;
		json_object_object_foreach(v, key, val) {
			if (!spend(b, json_string_cost(key, strlen(key)) + 2))
				break;
			r = copy_bounded(val, b, &child);
			if (r)
				break;
			if (json_object_object_add(c, key, child) < 0) {
				json_object_put(child);
				r = -ENOMEM;
				break;
			}
		}
		if (r > 0)
			r = 0;
		break;
	case json_type_array:
		if (!spend(b, 2))
			return 1;
		if (!(c = json_object_new_array()))
			return -ENOMEM;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (!spend(b, 1))
				break;
			r = copy_bounded(json_object_array_get_idx(v, i), b, &child);
			if (r)
				break;
			if (json_object_array_add(c, child) < 0) {
				json_object_put(child);
				r = -ENOMEM;
				break;
			}
		}
		if (r > 0)
			r = 0;
		break;
	default:	/* null, boolean, number: shared, not copied */
		s = v ? json_object_to_json_string_length(v, JSON_FLAGS, &len) : "null";
		if (!s)
			return -ENOMEM;
		if (!spend(b, v ? len : 4))
			return 1;
		c = json_object_get(v);
		break;
	}
	if (r) {
		json_object_put(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* The alert within max serialized bytes: "truncated": true when cut. */
static int alert_bounded(const struct view *v, size_t max, size_t string_max, json_object **ret)
{
	struct budget b = { .left = max - 20, .string_max = string_max };
	json_object *c;
	int r = copy_bounded(v->root, &b, &c);

	if (r > 0)
		r = -E2BIG;	/* not even "{}" fits: max is too small to be used */
	if (!r && b.cut && json_object_object_add(c, "truncated", json_object_new_boolean(1)) < 0)
		r = -ENOMEM;
	if (r < 0) {
		json_object_put(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* ---- PagerDuty ---- */

static bool is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* YYYY-MM-DDTHH:MM:SS, optional fraction, then Z or +HH:MM / -HH:MM. */
static bool is_iso8601(struct str s)
{
	const char *p = s.p;
	size_t n = s.len, i = 19;

	if (!p || n < 20 || !is_digits(p, 4) || p[4] != '-' || !is_digits(p + 5, 2) || p[7] != '-' ||
	    !is_digits(p + 8, 2) || p[10] != 'T' || !is_digits(p + 11, 2) || p[13] != ':' ||
	    !is_digits(p + 14, 2) || p[16] != ':' || !is_digits(p + 17, 2))
		return false;
	if (p[i] == '.') {
		size_t start = ++i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == start || i - start > 9)
			return false;
	}
	if (i + 1 == n && p[i] == 'Z')
		return true;
	return i + 6 == n && (p[i] == '+' || p[i] == '-') && is_digits(p + i + 1, 2) && p[i + 3] == ':' &&
	       is_digits(p + i + 4, 2);
}

int sinkfmt_pagerduty(const char *alert, size_t len, const char *routing_key, struct buf *out, char *msg,
		      size_t msglen)
{
	const int flags = TX_ONELINE;
	struct doc d = { 0 };
	struct view v;
	json_object *root = NULL, *payload, *details = NULL, *links, *link;
	struct text t;
	size_t klen = routing_key ? strnlen(routing_key, SINKFMT_PAGERDUTY_KEY_MAX + 1) : 0;
	int r;

	for (size_t i = 0; i < klen; i++) {
		if (routing_key[i] <= ' ' || routing_key[i] > '~') {
			klen = 0;
			break;
		}
	}
	if (!klen || klen > SINKFMT_PAGERDUTY_KEY_MAX) {
		msg_set(msg, msglen, "the PagerDuty routing key must be 1 to %d printable characters",
			SINKFMT_PAGERDUTY_KEY_MAX);
		return -EINVAL;
	}
	r = view_parse(&v, alert, len, msg, msglen);
	if (r < 0)
		goto out;
	root = new_object(&d);
	add_str(&d, root, "routing_key", routing_key);
	add_str(&d, root, "event_action", "trigger");
	add(&d, root, "dedup_key", new_str(&d, v.id.p, v.id.len));
	add_str(&d, root, "client", "trailwatch");

	payload = new_object(&d);
	text_init(&t, SINKFMT_PAGERDUTY_SUMMARY_MAX, false);
	text_add(&t, v.title.p, v.title.len, flags);
	if (v.principal.p) {
		text_adds(&t, " by ", 0);
		text_add(&t, v.principal.p, v.principal.len, flags);
	}
	if (v.bucket.p) {
		text_adds(&t, " on ", 0);
		text_add(&t, v.bucket.p, v.bucket.len, flags);
	}
	add_text(&d, payload, "summary", &t);
	add_str(&d, payload, "severity", v.level->pagerduty);
	text_init(&t, SINKFMT_PAGERDUTY_FIELD_MAX, false);
	if (v.account.p)
		text_add(&t, v.account.p, v.account.len, flags);
	if (v.account.p && v.region.p)
		text_adds(&t, "/", 0);
	if (v.region.p)
		text_add(&t, v.region.p, v.region.len, flags);
	if (!v.account.p && !v.region.p)
		text_adds(&t, "trailwatch", 0);
	add_text(&d, payload, "source", &t);
	if (is_iso8601(v.event_time))
		add(&d, payload, "timestamp", new_str(&d, v.event_time.p, v.event_time.len));
	add_str(&d, payload, "component", v.bucket.p ? "s3" : "cloudtrail");
	if (v.account.p) {
		text_init(&t, SINKFMT_PAGERDUTY_FIELD_MAX, false);
		text_add(&t, v.account.p, v.account.len, flags);
		add_text(&d, payload, "group", &t);
	}
	if (v.rule.p) {
		text_init(&t, SINKFMT_PAGERDUTY_FIELD_MAX, false);
		text_add(&t, v.rule.p, v.rule.len, flags);
		add_text(&d, payload, "class", &t);
	}
	if (!d.err) {
		r = alert_bounded(&v, SINKFMT_PAGERDUTY_DETAILS_MAX, SINKFMT_PAGERDUTY_DETAIL_STRING_MAX,
				  &details);
		if (r < 0)
			doc_fail(&d, r);
	}
	add(&d, payload, "custom_details", details);
	add(&d, root, "payload", payload);
	if (v.url.len) {
		links = new_array(&d);
		link = new_object(&d);
		add(&d, link, "href", new_str(&d, v.url.data, v.url.len));
		add_str(&d, link, "text", "CloudTrail event in the AWS console");
		push(&d, links, link);
		add(&d, root, "links", links);
	}
	r = finish(&d, root, 0, out);
out:
	view_free(&v);
	return r;
}

/* ---- Generic webhooks ---- */

int sinkfmt_webhook_sign(const void *secret, size_t secret_len, int64_t timestamp, const char *body,
			 size_t len, char out[SINKFMT_SIG_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	char ts[24], digest[] = "SHA256";
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int n, r = -ENOMEM;

	if (!secret || !secret_len || timestamp < 0 || (!body && len))
		return -EINVAL;
	n = snprintf(ts, sizeof(ts), "%lld", (long long)timestamp);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac || !(ctx = EVP_MAC_CTX_new(mac)))
		goto out;
	if (!EVP_MAC_init(ctx, secret, secret_len, params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)n) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
	    (len && !EVP_MAC_update(ctx, (const unsigned char *)body, len)) ||
	    !EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) || mdlen != 32)
		goto out;
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	r = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return r;
}

/* ---- journald ---- */

void sinkfmt_journal_free(struct sinkfmt_journal_fields *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n && i < SINKFMT_JOURNAL_FIELDS_MAX; i++)
		free(f->iov[i].iov_base);
	memset(f, 0, sizeof(*f));
}

/* Adds "NAME=value"; value[0..len) is cut to SINKFMT_JOURNAL_VALUE_MAX bytes. */
static int journal_add(struct sinkfmt_journal_fields *f, const char *name, const char *value, size_t len)
{
	size_t nlen = strlen(name);
	struct text t;
	char *p;
	int r = 0;

	if (f->n >= SINKFMT_JOURNAL_FIELDS_MAX)
		return -E2BIG;	/* a bug here, not bad input: the fields are fixed */
	text_init(&t, SINKFMT_JOURNAL_VALUE_MAX, true);
	text_add(&t, value, len, 0);
	p = t.err ? NULL : malloc(nlen + 1 + t.b.len);
	if (!p) {
		r = t.err ? t.err : -ENOMEM;
	} else {
		memcpy(p, name, nlen);
		p[nlen] = '=';
		if (t.b.len)
			memcpy(p + nlen + 1, t.b.data, t.b.len);
		f->iov[f->n].iov_base = p;
		f->iov[f->n++].iov_len = nlen + 1 + t.b.len;
	}
	text_free(&t);
	return r;
}

static int journal_add_str(struct sinkfmt_journal_fields *f, const char *name, struct str s)
{
	return s.p ? journal_add(f, name, s.p, s.len) : 0;
}

int sinkfmt_journal(const char *alert, size_t len, struct sinkfmt_journal_fields *out, char *msg,
		    size_t msglen)
{
	const size_t alert_max = SINKFMT_JOURNAL_VALUE_MAX;
	struct sinkfmt_journal_fields f = { .n = 0 };
	json_object *small = NULL;
	struct view v;
	struct text t;
	const char *sep = ": ";
	int r = view_parse(&v, alert, len, msg, msglen);

	if (r < 0)
		goto out;
	text_init(&t, SINKFMT_JOURNAL_MESSAGE_MAX, false);
	text_adds(&t, "trailwatch alert [", 0);
	text_adds(&t, v.level->name, 0);
	text_adds(&t, "] ", 0);
	text_add(&t, v.title.p, v.title.len, TX_ONELINE);
	{
		const struct {
			const char *label;
			struct str value;
		} parts[] = {
			{ "principal ", v.principal }, { "bucket ", v.bucket }, { "key ", v.object_key },
			{ "from ", v.source_ip },
		};
		for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
			if (!parts[i].value.p)
				continue;
			text_adds(&t, sep, 0);
			text_adds(&t, parts[i].label, 0);
			text_add(&t, parts[i].value.p, parts[i].value.len, TX_ONELINE);
			sep = ", ";
		}
	}
	if (v.reasons) {
		text_adds(&t, " (", 0);
		reasons_text(&t, &v, TX_ONELINE);
		text_adds(&t, ")", 0);
	}
	r = t.err;
	if (!r)
		r = journal_add(&f, "MESSAGE", t.b.data, t.b.len);
	text_free(&t);
	if (!r)
		r = journal_add(&f, "PRIORITY", v.level->priority, 1);
	if (!r)
		r = journal_add_str(&f, "MESSAGE_ID", lit(SINKFMT_JOURNAL_MESSAGE_ID));
	if (!r)
		r = journal_add(&f, "SYSLOG_IDENTIFIER", "trailwatch", 10);
	{
		const struct {
			const char *name;
			struct str value;
		} fields[] = {
			{ "TRAILWATCH_ALERT_ID", v.id }, { "TRAILWATCH_RULE", v.rule },
			{ "TRAILWATCH_SEVERITY", v.severity }, { "TRAILWATCH_EVENT_ID", v.first_event },
			{ "TRAILWATCH_EVENT_NAME", v.event_name }, { "TRAILWATCH_ACCOUNT", v.account },
			{ "TRAILWATCH_REGION", v.region }, { "TRAILWATCH_PRINCIPAL", v.principal },
			{ "TRAILWATCH_SOURCE_IP", v.source_ip }, { "TRAILWATCH_BUCKET", v.bucket },
			{ "TRAILWATCH_OBJECT_KEY", v.object_key },
		};
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && !r; i++)
			r = journal_add_str(&f, fields[i].name, fields[i].value);
	}
	if (!r && v.text_len <= alert_max) {
		r = journal_add(&f, "TRAILWATCH_ALERT", v.text, v.text_len);
	} else if (!r) {
		const char *s;
		size_t slen;

		r = alert_bounded(&v, alert_max, 4096, &small);
		s = r ? NULL : json_object_to_json_string_length(small, JSON_FLAGS, &slen);
		if (!r && !s)
			r = -ENOMEM;
		if (!r)
			r = journal_add(&f, "TRAILWATCH_ALERT", s, slen);
	}
	if (!r)
		*out = f;
out:
	if (r < 0)
		sinkfmt_journal_free(&f);
	json_object_put(small);
	view_free(&v);
	return r;
}

int sinkfmt_journal_send(const struct sinkfmt_journal_fields *f)
{
	if (!f || !f->n)
		return -EINVAL;
	return sd_journal_sendv(f->iov, (int)f->n);
}
