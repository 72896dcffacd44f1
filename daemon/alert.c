/* alert.c: capturing matches, alert ids and the JSON alert object. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trailwatch/alert.h"
#include "trailwatch/jsonw.h"

/* The text of the first value of slot, or NULL (missing or null).  The text
 * lives in the record.  -ENOMEM. */
static int slot_span(struct record *rec, int slot, const char **text, size_t *len)
{
	struct jvalue *v = record_first(rec, slot);

	*text = NULL;
	*len = 0;
	if (!v || v->type == JT_NULL)
		return 0;
	return record_value_text(rec, v, text, len);
}

/* The number of values of slot (nulls left out), in decimal, as a span of
 * text in a.  -ENOMEM. */
static int count_span(struct record *rec, int slot, struct arena *a, const char **text, size_t *len)
{
	size_t n = 0;
	char *num = arena_alloc(a, 24);

	if (!num)
		return -ENOMEM;
	for (int32_t i = rec->head[slot]; i >= 0; i = rec->values[i].next)
		n += rec->values[i].type != JT_NULL;
	*len = (size_t)snprintf(num, 24, "%zu", n);
	*text = num;
	return 0;
}

/* The first of two slots that has a value. */
static int either(struct record *rec, int slot, int fallback)
{
	struct jvalue *v = record_first(rec, slot);

	return v && v->type != JT_NULL ? slot : fallback;
}

/* The strings of a match are NUL-terminated, but a JSON value may hold
 * U+0000 ("\u0000"), which would cut it short in the alert although the
 * rule saw all of it: each one is kept as the six characters \u0000. */
#define NUL_TEXT "\\u0000"

static size_t text_size(const char *text, size_t len)
{
	size_t n = len;

	for (const char *p = text, *end = text + len; (p = memchr(p, '\0', (size_t)(end - p))); p++)
		n += strlen(NUL_TEXT) - 1;
	return n;
}

/* Copies text with its NULs spelled out and a terminating NUL; returns the
 * bytes copied before the terminator (text_size). */
static size_t copy_text(char *dst, const char *text, size_t len)
{
	const char *end = text + len, *nul;
	size_t o = 0;

	while ((nul = memchr(text, '\0', (size_t)(end - text)))) {
		memcpy(dst + o, text, (size_t)(nul - text));
		o += (size_t)(nul - text);
		memcpy(dst + o, NUL_TEXT, strlen(NUL_TEXT));
		o += strlen(NUL_TEXT);
		text = nul + 1;
	}
	memcpy(dst + o, text, (size_t)(end - text));
	o += (size_t)(end - text);
	dst[o] = '\0';
	return o;
}

/* Spans of one match's strings, gathered before they are copied. */
struct span {
	const char *text;	/* NULL: the record has no value */
	size_t len;
	int same;		/* >= 0: the value of context string `same` */
};

/* Matches with more strings than this gather their spans in the arena. */
#define CAPTURE_SPANS 32

int match_capture(struct match *m, const struct rule *r, struct record *rec,
		  const struct alert_slots *s, const char *log_object, struct arena *a)
{
	const char **dst[] = { &m->event_id, &m->event_time, &m->event_name, &m->account,
			       &m->region, &m->principal, &m->source_ip, &m->user_agent, &m->bucket,
			       &m->object_key };
	int slot[sizeof(dst) / sizeof(dst[0])];
	size_t nctx = sizeof(dst) / sizeof(dst[0]), n = nctx + r->nextra, total = 0;
	struct span local[CAPTURE_SPANS], *sp = local;
	char *block;
	int err;

	memset(m, 0, sizeof(*m));
	m->rule = r;
	m->record = rec->index;
	m->log_object = log_object;
	m->time = TIME_UNKNOWN;
	slot[0] = s->event_id;
	slot[1] = s->event_time;
	slot[2] = s->event_name;
	slot[3] = either(rec, s->account, s->user_account);
	slot[4] = s->region;
	slot[5] = either(rec, s->principal_arn, either(rec, s->principal_type, s->principal_invoked_by));
	slot[6] = s->source_ip;
	slot[7] = s->user_agent;
	slot[8] = s->bucket;
	slot[9] = s->object_key;
	if (r->nextra) {
		m->extra = arena_alloc(a, r->nextra * sizeof(*m->extra));
		if (!m->extra)
			return -ENOMEM;
	}
	if (n > CAPTURE_SPANS) {
		sp = arena_alloc(a, n * sizeof(*sp));
		if (!sp)
			return -ENOMEM;
	}
	/* One block for every string of the match: first the spans and their
	 * sizes (record_value_text resolves escapes once), then the copies. */
	for (size_t i = 0; i < n; i++) {
		sp[i].same = -1;
		if (i < nctx) {
			err = slot_span(rec, slot[i], &sp[i].text, &sp[i].len);
		} else if (r->extra_counts && r->extra_counts[i - nctx]) {
			err = count_span(rec, r->extra_slots[i - nctx], a, &sp[i].text, &sp[i].len);
		} else {
			/* A value the context holds already (principal, bucket,
			 * key...) is not copied twice. */
			for (size_t k = 0; k < nctx && sp[i].same < 0; k++)
				if (slot[k] == r->extra_slots[i - nctx])
					sp[i].same = (int)k;
			if (sp[i].same >= 0)
				continue;
			err = slot_span(rec, r->extra_slots[i - nctx], &sp[i].text, &sp[i].len);
		}
		if (err < 0)
			return err;
		total += sp[i].text ? text_size(sp[i].text, sp[i].len) + 1 : 0;
	}
	block = total ? arena_alloc(a, total) : NULL;
	if (total && !block)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char **to = i < nctx ? dst[i] : &m->extra[i - nctx];

		*to = NULL;
		if (sp[i].same >= 0) {
			*to = *dst[sp[i].same];
			continue;
		}
		if (!sp[i].text)
			continue;
		*to = block;
		block += copy_text(block, sp[i].text, sp[i].len) + 1;
	}
	if (m->event_time) {
		int64_t t;
		if (ctlog_parse_time(m->event_time, sp[1].len, &t) == 0)
			m->time = t;
	}
	return 0;
}

int match_add_reason(struct match *m, const struct reason *reason, struct record *rec, struct arena *a)
{
	size_t total = 1;
	const char *text;
	size_t len;
	char *out, *p;
	const char **list;
	int err;

	/* Two passes over the parts: the size, then the text. */
	for (size_t i = 0; i < reason->nparts; i++) {
		const struct reason_part *part = &reason->parts[i];
		if (part->lit) {
			total += part->len;
			continue;
		}
		err = slot_span(rec, part->slot, &text, &len);
		if (err < 0)
			return err;
		total += !text ? strlen("(none)") : len > REASON_VALUE_MAX ? REASON_VALUE_MAX + 3 : len;
	}
	out = arena_alloc(a, total);
	list = arena_alloc(a, (m->nreasons + 1) * sizeof(*list));
	if (!out || !list)
		return -ENOMEM;
	p = out;
	for (size_t i = 0; i < reason->nparts; i++) {
		const struct reason_part *part = &reason->parts[i];
		if (part->lit) {
			memcpy(p, part->lit, part->len);
			p += part->len;
			continue;
		}
		err = slot_span(rec, part->slot, &text, &len);
		if (err < 0)
			return err;
		if (!text) {
			memcpy(p, "(none)", strlen("(none)"));
			p += strlen("(none)");
		} else if (len > REASON_VALUE_MAX) {
			/* cut at a character boundary: never inside a UTF-8 sequence */
			size_t cut = REASON_VALUE_MAX;
			while (cut > 0 && ((unsigned char)text[cut] & 0xc0) == 0x80)
				cut--;
			memcpy(p, text, cut);
			memcpy(p + cut, "...", 3);
			p += cut + 3;
		} else {
			memcpy(p, text, len);
			p += len;
		}
	}
	*p = '\0';
	if (m->nreasons)
		memcpy(list, m->reasons, m->nreasons * sizeof(*list));
	list[m->nreasons++] = out;
	m->reasons = list;
	return 0;
}

int match_cover(struct match *m, struct match *covered, struct arena *a)
{
	const struct rule *r = covered->rule;
	const char **ids = arena_alloc(a, (m->ncovers + 1) * sizeof(*ids));
	const char **titles = arena_alloc(a, (m->ncovers + 1) * sizeof(*titles));

	if (!ids || !titles)
		return -ENOMEM;
	if (m->ncovers) {
		memcpy(ids, m->cover_ids, m->ncovers * sizeof(*ids));
		memcpy(titles, m->cover_titles, m->ncovers * sizeof(*titles));
	}
	/* Rule strings live in the rule set; a reload frees them, so the match
	 * keeps the pointers only while its file is processed (match_copy
	 * copies them for state that lives longer). */
	ids[m->ncovers] = r->id ? r->id : r->name;
	titles[m->ncovers] = r->title;
	m->cover_ids = ids;
	m->cover_titles = titles;
	m->ncovers++;
	covered->covered = true;
	return 0;
}

static int dup(const char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int match_copy(struct match *d, const struct match *s)
{
	int r = 0;

	memset(d, 0, sizeof(*d));
	d->rule = s->rule;
	d->time = s->time;
	d->record = s->record;
	r |= dup(&d->log_object, s->log_object);
	r |= dup(&d->event_id, s->event_id);
	r |= dup(&d->event_time, s->event_time);
	r |= dup(&d->event_name, s->event_name);
	r |= dup(&d->account, s->account);
	r |= dup(&d->region, s->region);
	r |= dup(&d->principal, s->principal);
	r |= dup(&d->source_ip, s->source_ip);
	r |= dup(&d->user_agent, s->user_agent);
	r |= dup(&d->bucket, s->bucket);
	r |= dup(&d->object_key, s->object_key);
	/* extra values are not needed once a match is kept for its context */
	d->covered = s->covered;
	if (!r && s->nreasons) {
		d->reasons = calloc(s->nreasons, sizeof(*d->reasons));
		r = !d->reasons;
		for (size_t i = 0; !r && i < s->nreasons; i++, d->nreasons++)
			r |= dup(&d->reasons[i], s->reasons[i]);
	}
	if (!r && s->ncovers) {
		d->cover_ids = calloc(s->ncovers, sizeof(*d->cover_ids));
		d->cover_titles = calloc(s->ncovers, sizeof(*d->cover_titles));
		r = !d->cover_ids || !d->cover_titles;
		for (size_t i = 0; !r && i < s->ncovers; i++, d->ncovers++) {
			r |= dup(&d->cover_ids[i], s->cover_ids[i]);
			r |= dup(&d->cover_titles[i], s->cover_titles[i]);
		}
	}
	if (r) {
		match_release(d);
		return -ENOMEM;
	}
	return 0;
}

void match_release(struct match *m)
{
	if (!m)
		return;
	free((char *)m->log_object);
	free((char *)m->event_id);
	free((char *)m->event_time);
	free((char *)m->event_name);
	free((char *)m->account);
	free((char *)m->region);
	free((char *)m->principal);
	free((char *)m->source_ip);
	free((char *)m->user_agent);
	free((char *)m->bucket);
	free((char *)m->object_key);
	for (size_t i = 0; i < m->nreasons; i++)
		free((char *)m->reasons[i]);
	free(m->reasons);
	/* After a failed copy the arrays may hold fewer entries than ncovers:
	 * calloc'd, so the rest are NULL. */
	for (size_t i = 0; m->cover_ids && i < m->ncovers; i++)
		free((char *)m->cover_ids[i]);
	for (size_t i = 0; m->cover_titles && i < m->ncovers; i++)
		free((char *)m->cover_titles[i]);
	free(m->cover_ids);
	free(m->cover_titles);
	memset(m, 0, sizeof(*m));
}

void alert_from_match(struct alert *a, const struct match *m)
{
	const char *parts[2];

	memset(a, 0, sizeof(*a));
	a->rule = m->rule;
	a->m = m;
	a->first_seen = TIME_UNKNOWN;
	if (m->event_id)
		a->event_ids[a->nevent_ids++] = m->event_id;
	if (m->event_id) {
		parts[0] = m->event_id;
		alert_set_id(a, "event", parts, 1);
	} else {
		/* Without an eventID the log object and record index identify it. */
		char where[32];
		snprintf(where, sizeof(where), "#%zu", m->record);
		parts[0] = m->log_object;
		parts[1] = where;
		alert_set_id(a, "record", parts, 2);
	}
}

void alert_set_id(struct alert *a, const char *kind, const char *const *parts, size_t nparts)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *rid = a->rule->id ? a->rule->id : a->rule->name;

	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_DigestUpdate(ctx, rid, strlen(rid) + 1);
		EVP_DigestUpdate(ctx, kind, strlen(kind) + 1);
		for (size_t i = 0; i < nparts; i++) {
			const char *p = parts[i] ? parts[i] : "";
			EVP_DigestUpdate(ctx, p, strlen(p) + 1);
		}
		EVP_DigestFinal_ex(ctx, md, &mdlen);
	}
	EVP_MD_CTX_free(ctx);
	for (size_t i = 0; i < 16; i++) {
		a->id[2 * i] = hex[md[i] >> 4];
		a->id[2 * i + 1] = hex[md[i] & 15];
	}
	a->id[32] = '\0';
}

void format_time(int64_t t, char buf[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == TIME_UNKNOWN || !gmtime_r(&tt, &tm)) {
		snprintf(buf, 32, "unknown");
		return;
	}
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void format_span(int64_t w, char buf[32])
{
	if (w % 86400 == 0)
		snprintf(buf, 32, "%lldd", (long long)(w / 86400));
	else if (w % 3600 == 0)
		snprintf(buf, 32, "%lldh", (long long)(w / 3600));
	else if (w % 60 == 0)
		snprintf(buf, 32, "%lldm", (long long)(w / 60));
	else
		snprintf(buf, 32, "%llds", (long long)w);
}

/* One rendering of an alert: where it goes, the longest value it may hold
 * in full (SIZE_MAX: no cap) and the values it cut. */
struct render {
	struct buf *out;
	size_t cap;
	size_t ncut;			/* values cut, noted or not */
	struct {
		char name[48];
		size_t len;
	} cut[ALERT_MAX_CUTS];
};

/* Passes over the alert with these value caps, in bytes, until it fits. */
static const size_t value_caps[] = { SIZE_MAX, 4096, 512, 64 };

/* Where a value of len bytes is cut to at most cap bytes without splitting
 * a UTF-8 sequence (the scanner checked the text is valid UTF-8). */
static size_t utf8_cut(const char *s, size_t cap)
{
	while (cap > 0 && ((unsigned char)s[cap] & 0xc0) == 0x80)
		cap--;
	return cap;
}

/* A string, cut at rd->cap with a marker that says how long it was, and
 * its name noted in rd when cut. */
static int value(struct render *rd, const char *name, size_t index, const char *s)
{
	size_t len = strlen(s), keep;
	char marker[64];
	int r;

	if (len <= rd->cap)
		return jsonw_string(rd->out, s, len);
	keep = utf8_cut(s, rd->cap);
	snprintf(marker, sizeof(marker), "...[cut: %zu bytes]", len);
	r = buf_append(rd->out, "\"", 1);
	if (!r)
		r = jsonw_escaped(rd->out, s, keep);
	if (!r)
		r = buf_append_str(rd->out, marker);
	if (!r)
		r = buf_append(rd->out, "\"", 1);
	if (!r && rd->ncut < ALERT_MAX_CUTS) {
		if (index == SIZE_MAX)
			snprintf(rd->cut[rd->ncut].name, sizeof(rd->cut[0].name), "%s", name);
		else
			snprintf(rd->cut[rd->ncut].name, sizeof(rd->cut[0].name), "%s[%zu]", name, index);
		rd->cut[rd->ncut].len = len;
	}
	rd->ncut++;
	return r;
}

/* ,"key":"value" (null when value is NULL); name is what a cut notes. */
static int member_named(struct render *rd, const char *key, const char *name, const char *s, int first)
{
	int r = buf_append(rd->out, ",", first ? 0 : 1);

	if (!r)
		r = jsonw_string(rd->out, key, strlen(key));
	if (!r)
		r = buf_append(rd->out, ":", 1);
	if (!r)
		r = s ? value(rd, name, SIZE_MAX, s) : buf_append(rd->out, "null", 4);
	return r;
}

static int member(struct render *rd, const char *key, const char *s, int first)
{
	return member_named(rd, key, key, s, first);
}

/* ,"key":["v0",...] */
static int member_list(struct render *rd, const char *key, const char *const *values, size_t n)
{
	int r = buf_append(rd->out, ",", 1);

	if (!r)
		r = jsonw_string(rd->out, key, strlen(key));
	if (!r)
		r = buf_append(rd->out, ":[", 2);
	for (size_t i = 0; i < n && !r; i++) {
		r = buf_append(rd->out, ",", i ? 1 : 0);
		if (!r)
			r = value(rd, key, i, values[i]);
	}
	if (!r)
		r = buf_append(rd->out, "]", 1);
	return r;
}

/* ,"truncated":{"user_agent":307200,...}: the full size of each cut value. */
static int add_truncated(struct render *rd)
{
	size_t noted = rd->ncut < ALERT_MAX_CUTS ? rd->ncut : ALERT_MAX_CUTS;
	int r = buf_append_str(rd->out, ",\"truncated\":{");

	for (size_t i = 0; i < noted && !r; i++) {
		r = buf_append(rd->out, ",", i ? 1 : 0);
		if (!r)
			r = jsonw_string(rd->out, rd->cut[i].name, strlen(rd->cut[i].name));
		if (!r)
			r = buf_printf(rd->out, ":%zu", rd->cut[i].len);
	}
	if (!r && rd->ncut > noted)
		r = buf_printf(rd->out, "%s\"more\":%zu", noted ? "," : "", rd->ncut - noted);
	if (!r)
		r = buf_append(rd->out, "}", 1);
	return r;
}

static int add_window(struct render *rd, int64_t w)
{
	char text[32];

	format_span(w, text);
	return member(rd, "window", text, 0);
}

/* The members in a fixed order; optional ones only when known. */
static int render(const struct alert *a, struct render *rd)
{
	const struct match *m = a->m;
	const struct rule *rule = a->rule;
	struct buf *out = rd->out;
	char first[32], num[64], name[48];
	int r;

	r = buf_append(out, "{", 1);
	if (!r)
		r = jsonw_member_str(out, "id", a->id, 1);
	if (!r)
		r = jsonw_member_str(out, "rule", rule->id ? rule->id : rule->name, 0);
	if (!r)
		r = buf_append_str(out, ",\"title\":\"");
	if (!r)
		r = jsonw_escaped(out, rule->title, strlen(rule->title));
	if (!r && a->title_note) {
		r = buf_append(out, " ", 1);
		if (!r)
			r = jsonw_escaped(out, a->title_note, strlen(a->title_note));
	}
	if (!r)
		r = buf_append(out, "\"", 1);
	if (!r)
		r = jsonw_member_str(out, "severity", level_name(rule->level), 0);
	if (!r)
		r = member_list(rd, "event_ids", a->event_ids, a->nevent_ids);
	if (a->first_seen != TIME_UNKNOWN)
		format_time(a->first_seen, first);
	if (!r)
		r = member(rd, "event_time", a->first_seen != TIME_UNKNOWN ? first : m->event_time, 0);
	if (!r)
		r = member(rd, "account", m->account, 0);
	if (!r)
		r = member(rd, "region", m->region, 0);
	if (!r)
		r = member(rd, "event_name", m->event_name, 0);
	if (!r)
		r = member(rd, "principal", m->principal, 0);
	if (!r)
		r = member(rd, "source_ip", m->source_ip, 0);
	if (!r)
		r = member(rd, "user_agent", m->user_agent, 0);
	if (!r && m->bucket)
		r = member(rd, "bucket", m->bucket, 0);
	if (!r && m->object_key)
		r = member(rd, "object_key", m->object_key, 0);
	if (!r && a->count > 0)
		r = buf_printf(out, ",\"count\":%ld", a->count);
	if (!r && a->has_value) {
		/* %.17g round-trips a double; integral values print without a point. */
		snprintf(num, sizeof(num), "%.17g", a->value);
		r = buf_printf(out, ",\"value\":%s", num);
	}
	if (!r && a->ngroup) {
		r = buf_append_str(out, ",\"group\":{");
		for (size_t i = 0; i < a->ngroup && !r; i++) {
			snprintf(name, sizeof(name), "group.%s", a->group_names[i]);
			r = member_named(rd, a->group_names[i], name, a->group_values[i], i == 0);
		}
		if (!r)
			r = buf_append(out, "}", 1);
	}
	if (!r && rule->ntags)
		r = jsonw_member_strs(out, "tags", rule->tags, rule->ntags, 0);
	/* Reasons and covered rules belong to the rule that matched the event:
	 * its own alerts and throttle summaries, not a correlation over it. */
	if (!r && m->rule == rule && m->nreasons)
		r = member_list(rd, "reasons", m->reasons, m->nreasons);
	if (!r && m->rule == rule && m->ncovers) {
		r = buf_append_str(out, ",\"covers\":[");
		for (size_t i = 0; i < m->ncovers && !r; i++) {
			r = buf_append_str(out, i ? ",{" : "{");
			if (!r)
				r = jsonw_member_str(out, "rule", m->cover_ids[i], 1);
			if (!r)
				r = jsonw_member_str(out, "title", m->cover_titles[i], 0);
			if (!r)
				r = buf_append(out, "}", 1);
		}
		if (!r)
			r = buf_append(out, "]", 1);
	}
	if (!r && m->log_object)
		r = member(rd, "log_object", m->log_object, 0);
	if (!r && a->first_seen != TIME_UNKNOWN)
		r = jsonw_member_str(out, "first_seen", first, 0);
	if (!r && a->window > 0)
		r = add_window(rd, a->window);
	if (!r && rd->ncut)
		r = add_truncated(rd);
	if (!r)
		r = buf_append(out, "}\n", 2);
	return r;
}

int alert_render(const struct alert *a, size_t limit, struct buf *out)
{
	size_t mark = out->len;
	struct render rd = { .out = out };
	int r = -E2BIG;

	for (size_t i = 0; i < sizeof(value_caps) / sizeof(value_caps[0]); i++) {
		rd.cap = value_caps[i];
		rd.ncut = 0;
		if (out->len != mark)
			buf_set_len(out, mark);
		r = render(a, &rd);
		if (r == 0 && out->len - mark > limit)
			r = -E2BIG;
		if (r != -E2BIG)
			break;
	}
	if (r) {
		if (out->len != mark)
			buf_set_len(out, mark);	/* never leave half an alert behind */
		return r;
	}
	return rd.ncut ? 1 : 0;
}
