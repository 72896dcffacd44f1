/* alert.c: capturing matches, alert ids and the JSON alert object. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trailwatch/alert.h"
#include "trailwatch/jsonw.h"

static const char *slot_text(struct record *rec, int slot, struct arena *a, int *err)
{
	struct jvalue *v = record_first(rec, slot);
	const char *text;
	size_t len;

	if (!v || v->type == JT_NULL)
		return NULL;
	if (record_value_text(rec, v, &text, &len) < 0) {
		*err = -ENOMEM;
		return NULL;
	}
	text = arena_strndup(a, text, len);
	if (!text)
		*err = -ENOMEM;
	return text;
}

int match_capture(struct match *m, const struct rule *r, struct record *rec,
		  const struct alert_slots *s, const char *log_object, struct arena *a)
{
	int err = 0;

	memset(m, 0, sizeof(*m));
	m->rule = r;
	m->record = rec->index;
	m->log_object = log_object;
	m->event_id = slot_text(rec, s->event_id, a, &err);
	m->event_time = slot_text(rec, s->event_time, a, &err);
	m->event_name = slot_text(rec, s->event_name, a, &err);
	m->event_source = slot_text(rec, s->event_source, a, &err);
	m->account = slot_text(rec, s->account, a, &err);
	if (!m->account)
		m->account = slot_text(rec, s->user_account, a, &err);
	m->region = slot_text(rec, s->region, a, &err);
	m->principal = slot_text(rec, s->principal_arn, a, &err);
	if (!m->principal)
		m->principal = slot_text(rec, s->principal_type, a, &err);
	if (!m->principal)
		m->principal = slot_text(rec, s->principal_invoked_by, a, &err);
	m->source_ip = slot_text(rec, s->source_ip, a, &err);
	m->user_agent = slot_text(rec, s->user_agent, a, &err);
	m->bucket = slot_text(rec, s->bucket, a, &err);
	m->object_key = slot_text(rec, s->object_key, a, &err);
	m->time = TIME_UNKNOWN;
	if (m->event_time) {
		int64_t t;
		if (ctlog_parse_time(m->event_time, strlen(m->event_time), &t) == 0)
			m->time = t;
	}
	if (r->nextra) {
		m->extra = arena_alloc(a, r->nextra * sizeof(*m->extra));
		if (!m->extra)
			return -ENOMEM;
		for (size_t i = 0; i < r->nextra; i++)
			m->extra[i] = slot_text(rec, r->extra_slots[i], a, &err);
	}
	return err;
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
	r |= dup(&d->event_source, s->event_source);
	r |= dup(&d->account, s->account);
	r |= dup(&d->region, s->region);
	r |= dup(&d->principal, s->principal);
	r |= dup(&d->source_ip, s->source_ip);
	r |= dup(&d->user_agent, s->user_agent);
	r |= dup(&d->bucket, s->bucket);
	r |= dup(&d->object_key, s->object_key);
	/* extra values are not needed once a match is kept for its context */
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
	free((char *)m->event_source);
	free((char *)m->account);
	free((char *)m->region);
	free((char *)m->principal);
	free((char *)m->source_ip);
	free((char *)m->user_agent);
	free((char *)m->bucket);
	free((char *)m->object_key);
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

static int add_window(struct buf *b, int64_t w)
{
	char text[32];

	format_span(w, text);
	return jsonw_member_str(b, "window", text, 0);
}

/* The members in a fixed order; optional ones only when known. */
int alert_render(const struct alert *a, struct buf *out)
{
	const struct match *m = a->m;
	const struct rule *rule = a->rule;
	char first[32], num[64];
	size_t mark = out->len;
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
		r = buf_append_str(out, ",\"event_ids\":[");
	for (size_t i = 0; i < a->nevent_ids && !r; i++) {
		if (i)
			r = buf_append(out, ",", 1);
		if (!r)
			r = jsonw_string(out, a->event_ids[i], strlen(a->event_ids[i]));
	}
	if (!r)
		r = buf_append(out, "]", 1);
	if (a->first_seen != TIME_UNKNOWN)
		format_time(a->first_seen, first);
	if (!r)
		r = jsonw_member_str(out, "event_time", a->first_seen != TIME_UNKNOWN ? first : m->event_time, 0);
	if (!r)
		r = jsonw_member_str(out, "account", m->account, 0);
	if (!r)
		r = jsonw_member_str(out, "region", m->region, 0);
	if (!r)
		r = jsonw_member_str(out, "event_name", m->event_name, 0);
	if (!r)
		r = jsonw_member_str(out, "principal", m->principal, 0);
	if (!r)
		r = jsonw_member_str(out, "source_ip", m->source_ip, 0);
	if (!r)
		r = jsonw_member_str(out, "user_agent", m->user_agent, 0);
	if (!r && m->bucket)
		r = jsonw_member_str(out, "bucket", m->bucket, 0);
	if (!r && m->object_key)
		r = jsonw_member_str(out, "object_key", m->object_key, 0);
	if (!r && a->count > 0)
		r = buf_printf(out, ",\"count\":%ld", a->count);
	if (!r && a->has_value) {
		/* %.17g round-trips a double; integral values print without a point. */
		snprintf(num, sizeof(num), "%.17g", a->value);
		r = buf_printf(out, ",\"value\":%s", num);
	}
	if (!r && a->ngroup) {
		r = buf_append_str(out, ",\"group\":{");
		for (size_t i = 0; i < a->ngroup && !r; i++)
			r = jsonw_member_str(out, a->group_names[i], a->group_values[i], i == 0);
		if (!r)
			r = buf_append(out, "}", 1);
	}
	if (!r && rule->ntags) {
		r = buf_append_str(out, ",\"tags\":[");
		for (size_t i = 0; i < rule->ntags && !r; i++) {
			if (i)
				r = buf_append(out, ",", 1);
			if (!r)
				r = jsonw_string(out, rule->tags[i], strlen(rule->tags[i]));
		}
		if (!r)
			r = buf_append(out, "]", 1);
	}
	if (!r && m->log_object)
		r = jsonw_member_str(out, "log_object", m->log_object, 0);
	if (!r && a->first_seen != TIME_UNKNOWN)
		r = jsonw_member_str(out, "first_seen", first, 0);
	if (!r && a->window > 0)
		r = add_window(out, a->window);
	if (!r)
		r = buf_append(out, "}\n", 2);
	if (r)
		buf_set_len(out, mark);	/* never leave half an alert behind */
	return r;
}
