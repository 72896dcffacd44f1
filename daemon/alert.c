/* alert.c: capturing matches, alert ids and the JSON alert object. */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trailwatch/alert.h"

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
	const char *parts[1];

	memset(a, 0, sizeof(*a));
	a->rule = m->rule;
	a->m = m;
	a->first_seen = TIME_UNKNOWN;
	if (m->event_id)
		a->event_ids[a->nevent_ids++] = m->event_id;
	/* Without an eventID the log object and record index identify the event. */
	char where[64];
	snprintf(where, sizeof(where), "#%zu", m->record);
	parts[0] = m->event_id ? m->event_id : where;
	alert_set_id(a, "event", parts, 1);
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

static int add_str(json_object *o, const char *key, const char *val)
{
	json_object *v = val ? json_object_new_string(val) : NULL;

	if (val && !v)
		return -ENOMEM;
	return json_object_object_add(o, key, v) == 0 ? 0 : -ENOMEM;
}

static int add_window(json_object *o, int64_t w)
{
	char text[32];

	if (w % 86400 == 0)
		snprintf(text, sizeof(text), "%lldd", (long long)(w / 86400));
	else if (w % 3600 == 0)
		snprintf(text, sizeof(text), "%lldh", (long long)(w / 3600));
	else if (w % 60 == 0)
		snprintf(text, sizeof(text), "%lldm", (long long)(w / 60));
	else
		snprintf(text, sizeof(text), "%llds", (long long)w);
	return add_str(o, "window", text);
}

int alert_render(const struct alert *a, struct buf *out)
{
	const struct match *m = a->m;
	const struct rule *rule = a->rule;
	json_object *o = json_object_new_object(), *ids = json_object_new_array();
	char first[32], title[1024];
	const char *text;
	int r = 0;

	if (!o || !ids) {
		json_object_put(o);
		json_object_put(ids);
		return -ENOMEM;
	}
	if (a->title_note)
		snprintf(title, sizeof(title), "%s %s", rule->title, a->title_note);
	else
		snprintf(title, sizeof(title), "%s", rule->title);
	for (size_t i = 0; i < a->nevent_ids; i++)
		json_object_array_add(ids, json_object_new_string(a->event_ids[i]));

	r |= add_str(o, "id", a->id);
	r |= add_str(o, "rule", rule->id ? rule->id : rule->name);
	r |= add_str(o, "title", title);
	r |= add_str(o, "severity", level_name(rule->level));
	r |= json_object_object_add(o, "event_ids", ids);
	if (a->first_seen != TIME_UNKNOWN) {
		format_time(a->first_seen, first);
		r |= add_str(o, "event_time", first);
	} else {
		r |= add_str(o, "event_time", m->event_time);
	}
	r |= add_str(o, "account", m->account);
	r |= add_str(o, "region", m->region);
	r |= add_str(o, "event_name", m->event_name);
	r |= add_str(o, "principal", m->principal);
	r |= add_str(o, "source_ip", m->source_ip);
	r |= add_str(o, "user_agent", m->user_agent);
	if (m->bucket)
		r |= add_str(o, "bucket", m->bucket);
	if (m->object_key)
		r |= add_str(o, "object_key", m->object_key);
	if (a->count > 0)
		r |= json_object_object_add(o, "count", json_object_new_int64(a->count));
	if (a->has_value)
		r |= json_object_object_add(o, "value", json_object_new_double(a->value));
	if (a->ngroup) {
		json_object *g = json_object_new_object();
		if (!g)
			r = -ENOMEM;
		for (size_t i = 0; g && i < a->ngroup; i++)
			r |= add_str(g, a->group_names[i], a->group_values[i]);
		r |= json_object_object_add(o, "group", g);
	}
	if (rule->ntags) {
		json_object *t = json_object_new_array();
		if (!t)
			r = -ENOMEM;
		for (size_t i = 0; t && i < rule->ntags; i++)
			json_object_array_add(t, json_object_new_string(rule->tags[i]));
		r |= json_object_object_add(o, "tags", t);
	}
	if (m->log_object)
		r |= add_str(o, "log_object", m->log_object);
	if (a->first_seen != TIME_UNKNOWN)
		r |= add_str(o, "first_seen", first);
	if (a->window > 0)
		r |= add_window(o, a->window);
	if (r) {
		json_object_put(o);
		return -ENOMEM;
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = text ? buf_append_str(out, text) : -ENOMEM;
	if (r == 0)
		r = buf_append(out, "\n", 1);
	json_object_put(o);
	return r;
}
