/* delivery.c: the spool's alerts to the sinks (see delivery.h).
 *
 * Reading order: secrets, filters, the payload of each kind of sink, the
 * direct writers (stdout, file, journal), what a receiver's answer means,
 * and delivery_run(), which ties them together.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "trailwatch/backoff.h"
#include "trailwatch/creds.h"
#include "trailwatch/deadletter.h"
#include "trailwatch/delivery.h"
#include "trailwatch/http.h"
#include "trailwatch/log.h"
#include "trailwatch/sinkfmt.h"
#include "trailwatch/statefile.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define SLACK_GAP_MS 1000		/* Slack: one message per second per webhook */
#define MAX_SECRET 8192
#define PAGERDUTY_URL "https://events.pagerduty.com/v2/enqueue"

struct sink {
	const struct sink_config *c;
	size_t index;			/* in the spool */
	char *url;			/* resolved secrets; wiped when freed */
	char *hmac;
	size_t hmac_len;
	char *routing_key;
	int fd;				/* file sink, else -1 */
	bool in_flight;
	bool in_flight_evicted;		/* evicted while in flight: its answer acks nothing */
	bool in_flight_letter;		/* the request in flight is an evicted dead letter's */
	struct deadletters letters;	/* its dead-letter folder */
	unsigned long letters_run;	/* evicted letters delivered since the folder was last empty */
	char id[SPOOL_ID_LEN + 1];	/* the alert in flight */
	struct http_response resp;
	int failures;			/* in a row */
	long long next_ms;		/* monotonic: nothing before this */
	long long last_sent_ms;
	struct delivery_sink_stats st;
};

struct delivery {
	const struct config *cfg;
	const struct ruleset *rs;
	struct spool *spool;
	struct sink *s;
	size_t n;
	struct sink_config stdout_sink;	/* when none is configured */
	struct http_multi *m;
	struct buf payload;
	struct buf line;		/* an alert being spooled */
	unsigned long dropped;
	void (*waiting)(void *ctx);	/* called while delivery_add waits for room */
	void *waiting_ctx;
	char *dead_dir;
	struct backoff backoff;
};

/* "sink NAME: ..." with the sink's name as a journal field. */
static void __attribute__((format(printf, 3, 4)))
sink_log(enum log_level level, const struct sink *s, const char *fmt, ...)
{
	struct log_about about = { .sink = s->c->name };
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_about(level, &about, "sink %s: %s", s->c->name, text);
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

size_t delivery_sink_names(const struct config *cfg, const char **names, size_t max)
{
	if (cfg->nsinks == 0) {
		if (max)
			names[0] = "stdout";
		return 1;
	}
	for (size_t i = 0; i < cfg->nsinks && i < max; i++)
		names[i] = cfg->sinks[i].name;
	return cfg->nsinks;
}

/* Says what opening the spool found: torn writes (a crash) as a warning,
 * damage (lost alerts) as an error naming the file, bytes and alerts. */
static void report_recovery(const struct spool *spool, const char *dir)
{
	struct spool_stats st;

	spool_stats(spool, &st);
	if (st.torn_records)
		log_warning("spool %s: %llu torn records (%llu bytes) cut off: writes a crash interrupted; the objects they came from are read again",
			    dir, (unsigned long long)st.torn_records, (unsigned long long)st.torn_bytes);
	for (size_t i = 0; i < st.ndamage && i < SPOOL_MAX_DAMAGE; i++) {
		const struct spool_damage *dm = &st.damage[i];
		char where[128];

		if (dm->file[0] && dm->to > dm->from)
			snprintf(where, sizeof(where), "%s bytes %llu-%llu", dm->file, (unsigned long long)dm->from,
				 (unsigned long long)dm->to - 1);
		else
			snprintf(where, sizeof(where), "%s", dm->file[0] ? dm->file : "segments");
		if (dm->end_seq <= dm->first_seq)
			log_warning("spool %s: %s: %s", dir, where, dm->what);	/* its alerts: in a range below */
		else
			log_msg(dm->undelivered ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING,
				"spool %s: %s: %s: alerts %llu-%llu lost (%llu of them not yet delivered)", dir, where,
				dm->what, (unsigned long long)dm->first_seq, (unsigned long long)dm->end_seq - 1,
				(unsigned long long)dm->undelivered);
	}
	if (st.ndamage > SPOOL_MAX_DAMAGE)
		log_error("spool %s: %zu more damaged ranges not shown", dir, st.ndamage - SPOOL_MAX_DAMAGE);
	if (st.ack_log_damage) {
		char who[512], at[48] = "";
		size_t o = 0;

		who[0] = '\0';
		if (st.ack_log_damage_at)
			snprintf(at, sizeof(at), " at byte %llu", (unsigned long long)st.ack_log_damage_at);
		for (size_t i = 0; i < st.nsinks && o < sizeof(who); i++)
			o += (size_t)snprintf(who + o, sizeof(who) - o, "%s%s %llu", i ? ", " : "", st.sink[i].name,
					      (unsigned long long)st.sink[i].pending);
		log_error("spool %s: acks.log %s%s: the acks written since the spool's state was last saved are lost, so alerts the sinks took since then are sent again (pending now: %s)",
			  dir, st.ack_log_damage, at, who);
	}
	if (st.lost_alerts)
		log_error("spool %s: %llu undelivered alerts lost to damage in the spool; the rest is delivered",
			  dir, (unsigned long long)st.lost_alerts);
}

int delivery_spool_open(const struct config *cfg, struct spool **ret, char *msg, size_t msglen)
{
	const char *names[SPOOL_MAX_SINKS];
	struct spool_limits lim = { .max_bytes = cfg->spool_max_size, .remember_seconds = cfg->spool_remember };
	size_t n = delivery_sink_names(cfg, names, SPOOL_MAX_SINKS);
	char dir[4096];
	int r;

	if (n > SPOOL_MAX_SINKS) {
		snprintf(msg, msglen, "at most %d sinks", SPOOL_MAX_SINKS);
		return -EINVAL;
	}
	/* segments of a quarter of the spool (at most the spool's default),
	 * so that a full spool can free space segment by segment */
	lim.segment_bytes = cfg->spool_max_size / 4 < SPOOL_DEFAULT_SEGMENT_BYTES ? cfg->spool_max_size / 4 :
										      SPOOL_DEFAULT_SEGMENT_BYTES;
	r = statefile_mkdirs(cfg->state_dir, msg, msglen);
	if (r < 0)
		return r;
	snprintf(dir, sizeof(dir), "%s/spool", cfg->state_dir);
	r = spool_open(dir, names, n, &lim, ret, msg, msglen);
	if (r == 0)
		report_recovery(*ret, dir);
	return r;
}

/* ---- secrets ------------------------------------------------------------ */

/* Reads a secret given inline, in a file, or as a systemd credential; a
 * trailing newline is dropped.  msg names what was tried, never the value. */
static int read_secret(const struct secret_ref *ref, const char *sink, const char *what, char **ret, size_t *ret_len,
		       char *msg, size_t msglen)
{
	struct buf b;
	char path[4096], emsg[600];
	const char *dir;
	int r;

	if (ref->value) {
		*ret = strdup(ref->value);
		if (ret_len)
			*ret_len = strlen(ref->value);
		return *ret ? 0 : -ENOMEM;
	}
	if (ref->credential) {
		dir = getenv("CREDENTIALS_DIRECTORY");
		if (!dir || !*dir) {
			snprintf(msg, msglen, "sink %s: %s_credential '%s' needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)",
				 sink, what, ref->credential);
			return -EINVAL;
		}
		if (strchr(ref->credential, '/') ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, ref->credential) >= sizeof(path)) {
			snprintf(msg, msglen, "sink %s: invalid credential name '%s'", sink, ref->credential);
			return -EINVAL;
		}
	} else if ((size_t)snprintf(path, sizeof(path), "%s", ref->file) >= sizeof(path)) {
		snprintf(msg, msglen, "sink %s: %s_file: path too long", sink, what);
		return -EINVAL;
	}
	buf_init(&b, MAX_SECRET);
	r = buf_read_file(&b, path, emsg, sizeof(emsg));
	if (r < 0) {
		snprintf(msg, msglen, "sink %s: %s: %s", sink, what, emsg);
		goto out;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.len--;
	if (b.len == 0 || memchr(b.data, '\0', b.len)) {
		snprintf(msg, msglen, "sink %s: %s: the file is empty or not text", sink, what);
		r = -EINVAL;
		goto out;
	}
	*ret = strndup(b.data, b.len);
	if (ret_len)
		*ret_len = b.len;
	r = *ret ? 0 : -ENOMEM;
out:
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	buf_free(&b);
	return r;
}

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* ---- checking, without opening anything ----------------------------------- */

/* One secret of a sink given in a file or as a credential, read as
 * delivery_new() reads it and wiped at once; the url's scheme too.  (Given
 * inline, config.c checked it.)  -EINVAL (in d), -ENOMEM. */
static int check_secret(const struct config *cfg, const struct sink_config *c, const struct secret_ref *ref,
			const char *what, bool check, struct diag *d)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char msg[700], *value = NULL;
	int r;

	if (!ref->file && !ref->credential)
		return 0;
	if (ref->credential && check && (!dir || !*dir)) {
		diag_warn(d, cfg->path, ref->line, ref->col,
			  "sink %s: %s_credential '%s' not checked: $CREDENTIALS_DIRECTORY is not set (systemd sets it for the service, from LoadCredential=)",
			  c->name, what, ref->credential);
		return 0;
	}
	r = read_secret(ref, c->name, what, &value, NULL, msg, sizeof(msg));
	if (r == 0 && strcmp(what, "url") == 0 && strncmp(value, "https://", 8) != 0 &&
	    strncmp(value, "http://", 7) != 0) {
		snprintf(msg, sizeof(msg), "sink %s: the url in %s '%s' must start with https:// (or http://)", c->name,
			 ref->file ? "url_file" : "url_credential", ref->file ? ref->file : ref->credential);
		r = -EINVAL;
	}
	wipe_free(value);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		diag_add(d, cfg->path, ref->line, ref->col, "%s", msg);
		return -EINVAL;
	}
	return 0;
}

/* A file sink's file: appendable, or creatable in its directory. */
static int check_file_sink(const struct config *cfg, const struct sink_config *c, struct diag *d)
{
	char parent[4096];
	const char *slash = strrchr(c->path, '/');

	if (access(c->path, F_OK) == 0) {
		if (access(c->path, W_OK) == 0)
			return 0;
		diag_add(d, cfg->path, (unsigned)c->line, (unsigned)c->col, "sink %s: %s: %s", c->name, c->path,
			 strerror(errno));
		return -EINVAL;
	}
	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else
		snprintf(parent, sizeof(parent), "%.*s", slash == c->path ? 1 : (int)(slash - c->path), c->path);
	if (access(parent, W_OK | X_OK) == 0)
		return 0;
	diag_add(d, cfg->path, (unsigned)c->line, (unsigned)c->col, "sink %s: %s: cannot create it in %s: %s", c->name,
		 c->path, parent, strerror(errno));
	return -EINVAL;
}

int delivery_check(const struct config *cfg, bool check, struct diag *d)
{
	char msg[600];
	int r = 0, e = 0;

	if (cfg->nsinks > SPOOL_MAX_SINKS) {
		diag_add(d, cfg->path, (unsigned)cfg->sinks[SPOOL_MAX_SINKS].line,
			 (unsigned)cfg->sinks[SPOOL_MAX_SINKS].col, "at most %d sinks", SPOOL_MAX_SINKS);
		r = -EINVAL;
	}
	for (size_t i = 0; i < cfg->nsinks && e != -ENOMEM; i++) {
		const struct sink_config *c = &cfg->sinks[i];

		if ((e = check_secret(cfg, c, &c->url, "url", check, d)) < 0)
			r = e;
		if (e != -ENOMEM && (e = check_secret(cfg, c, &c->hmac, "hmac_secret", check, d)) < 0)
			r = e;
		if (e != -ENOMEM && (e = check_secret(cfg, c, &c->routing_key, "routing_key", check, d)) < 0)
			r = e;
		if (e != -ENOMEM && c->type == SINK_FILE && (e = check_file_sink(cfg, c, d)) < 0)
			r = e;
	}
	if (check && cfg->state_dir_line && statefile_check_mkdirs(cfg->state_dir, msg, sizeof(msg)) < 0) {
		diag_add(d, cfg->path, cfg->state_dir_line, cfg->state_dir_col, "state_dir: %s", msg);
		r = -EINVAL;
	}
	return e == -ENOMEM ? e : r;
}

/* ---- filters ------------------------------------------------------------ */

static bool any_glob(const char *const *globs, size_t n, const char *rule, struct json_object *tags)
{
	for (size_t i = 0; i < n; i++) {
		if (rule && fnmatch(globs[i], rule, 0) == 0)
			return true;
		for (size_t t = 0; tags && t < json_object_array_length(tags); t++) {
			const char *tag = json_object_get_string(json_object_array_get_idx(tags, t));
			if (tag && fnmatch(globs[i], tag, 0) == 0)
				return true;
		}
	}
	return false;
}

/* The alert as JSON (len bytes, not NUL-terminated), or NULL when it does
 * not parse; the caller puts it. */
static struct json_object *parse_alert(const char *json, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (!tok)
		return NULL;
	o = len <= INT32_MAX ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
	json_tokener_free(tok);
	return o;
}

/* Does the sink want this alert (severity, rules, exclude_rules)?  An
 * alert that cannot be judged (o NULL) is delivered. */
static bool wanted(const struct sink_config *c, struct json_object *o)
{
	struct json_object *v, *tags = NULL;
	enum level lv = LEVEL_CRITICAL;
	const char *rule = NULL;

	if (!o || (c->min_severity == LEVEL_INFORMATIONAL && !c->nrules && !c->nexclude_rules))
		return true;
	if (json_object_object_get_ex(o, "severity", &v))
		level_from_string(json_object_get_string(v), &lv);
	if (json_object_object_get_ex(o, "rule", &v))
		rule = json_object_get_string(v);
	json_object_object_get_ex(o, "tags", &tags);
	if (tags && !json_object_is_type(tags, json_type_array))
		tags = NULL;
	return lv >= c->min_severity && (!c->nrules || any_glob(c->rules, c->nrules, rule, tags)) &&
	       !any_glob(c->exclude_rules, c->nexclude_rules, rule, tags);
}

/* The rule's description, for Slack and Teams; NULL when unknown. */
static const char *description(const struct delivery *d, struct json_object *o)
{
	struct json_object *v;
	const struct rule *r = NULL;

	if (o && json_object_object_get_ex(o, "rule", &v) && json_object_get_string(v))
		r = ruleset_find(d->rs, json_object_get_string(v));
	return r ? r->description : NULL;
}

/* ---- direct sinks ------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0 when taken, -EAGAIN when stdout has no room now, -errno. */
static int write_direct(struct sink *s, const char *json, size_t len, char *msg, size_t msglen)
{
	struct sinkfmt_journal_fields jf;
	struct pollfd pfd = { .fd = STDOUT_FILENO, .events = POLLOUT };
	off_t end;
	int r;

	switch (s->c->type) {
	case SINK_STDOUT:
		if (poll(&pfd, 1, 0) == 0)
			return -EAGAIN;	/* the reader is behind: do not block the service */
		r = write_all(STDOUT_FILENO, json, len);
		if (r < 0)
			snprintf(msg, msglen, "stdout: %s", strerror(-r));
		return r;
	case SINK_FILE:
		/* Whole lines only: a write the disk cut short is taken back,
		 * so the retry does not glue onto half a line. */
		end = lseek(s->fd, 0, SEEK_END);
		r = end < 0 ? -errno : write_all(s->fd, json, len);
		if (r == 0 && fdatasync(s->fd) < 0)
			r = -errno;
		if (r < 0 && end >= 0 && ftruncate(s->fd, end) < 0)
			snprintf(msg, msglen, "%s: %s; and cannot take back the part written: %s", s->c->path,
				 strerror(-r), strerror(errno));
		else if (r < 0)
			snprintf(msg, msglen, "%s: %s", s->c->path, strerror(-r));
		return r;
	case SINK_JOURNAL:
		r = sinkfmt_journal(json, len, &jf, msg, msglen);
		if (r < 0)
			return r;
		r = sinkfmt_journal_send(&jf);
		sinkfmt_journal_free(&jf);
		if (r < 0)
			snprintf(msg, msglen, "journald: %s", strerror(-r));
		return r;
	default:
		return -EINVAL;
	}
}

/* ---- HTTP sinks --------------------------------------------------------- */

/* Queues the alert for an HTTP sink.  -EINVAL when it cannot be formatted
 * (msg), -ENOMEM. */
static int start_http(struct delivery *d, struct sink *s, const char *json, size_t len, struct json_object *alert,
		      char *msg, size_t msglen)
{
	struct http_header h[HTTP_MAX_HEADERS];
	struct http_request rq = { .method = "POST", .timeout_ms = DELIVERY_TIMEOUT_MS };
	char ts[24], sig[SINKFMT_SIG_SIZE + 4];
	size_t nh = 0;
	int r = 0;

	while (len && (json[len - 1] == '\n'))
		len--;
	buf_reset(&d->payload);
	h[nh++] = (struct http_header){ "Content-Type", "application/json; charset=utf-8" };
	switch (s->c->type) {
	case SINK_WEBHOOK:
		r = buf_append(&d->payload, json, len);
		if (r == 0 && s->hmac) {
			int64_t now = time(NULL);
			snprintf(ts, sizeof(ts), "%lld", (long long)now);
			memcpy(sig, "v1=", 3);
			r = sinkfmt_webhook_sign(s->hmac, s->hmac_len, now, json, len, sig + 3);
			if (r < 0)
				return r == -ENOMEM ? r : -EINVAL;
			h[nh++] = (struct http_header){ "X-Trailwatch-Timestamp", ts };
			h[nh++] = (struct http_header){ "X-Trailwatch-Signature", sig };
		}
		for (size_t i = 0; i < s->c->nheaders && nh < HTTP_MAX_HEADERS; i++)
			h[nh++] = (struct http_header){ s->c->header_names[i], s->c->header_values[i] };
		rq.url = s->url;
		break;
	case SINK_SLACK:
		r = sinkfmt_slack(json, len, description(d, alert), &d->payload, msg, msglen);
		rq.url = s->url;
		break;
	case SINK_TEAMS:
		r = sinkfmt_teams(json, len, description(d, alert), &d->payload, msg, msglen);
		rq.url = s->url;
		break;
	case SINK_PAGERDUTY:
		r = sinkfmt_pagerduty(json, len, s->routing_key, &d->payload, msg, msglen);
		rq.url = s->c->endpoint ? s->c->endpoint : PAGERDUTY_URL;
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;
	h[nh++] = (struct http_header){ "X-Trailwatch-Alert-Id", s->id };
	rq.headers = h;
	rq.nheaders = nh;
	rq.body = d->payload.data;
	rq.body_len = d->payload.len;
	http_response_init(&s->resp, DELIVERY_MAX_BODY);
	s->resp.keep_start = true;	/* the status decides; a long body is cut, not an error */
	r = http_multi_add(d->m, &rq, &s->resp, s);
	if (r < 0)
		http_response_free(&s->resp);
	return r;
}

/* A copy of the response body fit for a log line: printable ASCII, cut. */
static void body_excerpt(const struct buf *b, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < b->len && o + 1 < outlen && i < 300; i++)
		out[o++] = b->data[i] >= ' ' && b->data[i] <= '~' ? b->data[i] : ' ';
	out[o] = '\0';
}

/* Where a redirect pointed, fit for a log line: the scheme and host[:port]
 * of the Location, without user info, path or query (a token may be in any
 * of them, as in the sink's own URL). */
static void redirect_target(const char *location, char *out, size_t outlen)
{
	size_t scheme = strspn(location, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
	const char *authority, *host, *end;
	size_t o = 0;

	if (scheme && strncmp(location + scheme, "://", 3) == 0) {
		authority = location + scheme + 3;
	} else if (strncmp(location, "//", 2) == 0) {
		authority = location + 2;	/* the sink's scheme, another host */
	} else {
		snprintf(out, outlen, "the sink's own host");
		return;
	}
	end = authority + strcspn(authority, "/?#");
	host = memrchr(authority, '@', (size_t)(end - authority));
	host = host ? host + 1 : authority;
	for (const char *p = location; p < authority && o + 1 < outlen; p++)
		out[o++] = *p;
	for (const char *p = host; p < end && o + 1 < outlen; p++)
		out[o++] = *p >= ' ' && *p <= '~' ? *p : '?';
	out[o] = '\0';
}

/* A receiver's answer that is final for the alert: any 4xx but 408 and
 * 429, and any 3xx.  Redirects are not followed: the alert would go to a
 * host nobody configured, and asking again would get the same answer. */
static bool refused_for_good(long status)
{
	return status >= 300 && status < 500 && status != 408 && status != 429;
}

/* Why a final answer refused the alert, for the log and the dead letter:
 * "HTTP 400: <the body's start>", or where a redirect pointed. */
static void refusal(const struct http_response *resp, char *out, size_t outlen)
{
	char text[320];

	if (resp->status >= 400) {
		body_excerpt(&resp->body, text, sizeof(text));
		snprintf(out, outlen, "HTTP %ld: %s", resp->status, text);
	} else if (!resp->location[0]) {
		snprintf(out, outlen, "HTTP %ld: redirect without a Location, not followed (alerts go only to the configured URL)",
			 resp->status);
	} else {
		redirect_target(resp->location, text, sizeof(text));
		snprintf(out, outlen,
			 "HTTP %ld: redirect to %s (path not shown), not followed (alerts go only to the configured URL)",
			 resp->status, text);
	}
}

/* Records that the sink is done with s->id.  A full disk is not fatal: the
 * ack is tried again after a second (the alert may be sent once more).
 * 0, or the spool's negative error (logged). */
static int ack(struct delivery *d, struct sink *s)
{
	char msg[600];
	int r = spool_ack(d->spool, s->index, s->id, msg, sizeof(msg));

	if (r == -ENOSPC || r == -EDQUOT) {
		sink_log(LOG_LEVEL_ERROR, s, "alert %s taken, but its ack cannot be written: %s (it may be sent again)",
			 s->id, msg);
		s->next_ms = now_ms() + 1000;
		return 0;
	}
	if (r < 0)
		log_error("spool: %s", msg);
	return r;
}

/* Keeps s->id's alert in the sink's dead-letter folder; false (logged) when
 * it could not be written. */
static bool dead_letter(struct delivery *d, struct sink *s, const char *json, size_t len, const char *why)
{
	char emsg[600];

	(void)d;
	if (deadletters_keep(&s->letters, s->c->name, s->id, json, len, why, emsg, sizeof(emsg)) < 0) {
		sink_log(LOG_LEVEL_ERROR, s, "dead letter for alert %s not kept: %s", s->id, emsg);
		return false;
	}
	return true;
}

/* The sink has the evicted letter in s->id (or refused it for good: then it
 * was kept again with that reason, and its file stays). */
static void letter_done(struct sink *s, bool remove)
{
	char emsg[600];

	if (deadletters_done(&s->letters, s->id, remove, emsg, sizeof(emsg)) < 0)
		sink_log(LOG_LEVEL_ERROR, s, "%s", emsg);
	if (remove) {
		s->st.redelivered++;
		s->letters_run++;
	}
}

/* What a finished request means for its sink.  Returns 0, or the spool's
 * error. */
static int finish_http(struct delivery *d, struct sink *s, int result)
{
	long status = s->resp.status;
	char msg[600];
	int r = 0;

	bool letter = s->in_flight_letter;

	s->in_flight = false;
	s->in_flight_letter = false;
	if (s->in_flight_evicted) {
		s->in_flight_evicted = false;	/* the spool moved on without it */
		http_response_free(&s->resp);
		return 0;
	}
	if (result == 0 && status >= 200 && status < 300) {
		if (letter) {
			letter_done(s, true);
		} else {
			r = ack(d, s);
		}
		if (s->failures)
			sink_log(LOG_LEVEL_INFO, s, "delivering again after %d failed attempts", s->failures);
		s->failures = 0;
		s->st.sent++;
		s->last_sent_ms = now_ms();
	} else if (result == 0 && refused_for_good(status)) {
		const char *json;
		size_t len;
		char id[SPOOL_ID_LEN + 1];
		bool kept = false;

		refusal(&s->resp, msg, sizeof(msg));
		if (letter) {
			kept = dead_letter(d, s, s->letters.json.data, s->letters.json.len, msg);
			letter_done(s, false);
		} else if (spool_peek(d->spool, s->index, &json, &len, id, NULL, NULL, 0) == 0 && json &&
			   strcmp(id, s->id) == 0) {
			kept = dead_letter(d, s, json, len, msg);
		}
		/* said after the write, so "kept" is true when it is said */
		if (kept)
			sink_log(LOG_LEVEL_ERROR, s, "alert %s refused with %s (kept in %s/%s)", s->id, msg,
				 d->dead_dir, s->c->name);
		else
			sink_log(LOG_LEVEL_ERROR, s, "alert %s refused with %s (and not kept: see above)", s->id, msg);
		if (!letter)
			r = ack(d, s);
		s->st.dead++;
	} else {
		long wait = backoff_ms(&d->backoff, ++s->failures, status == 429 ? s->resp.retry_after : -1);
		if (s->failures == 1 || s->failures % 10 == 0) {
			if (result < 0)
				sink_log(LOG_LEVEL_WARNING, s, "%s (attempt %d; retrying in %ld ms)", s->resp.error,
					    s->failures, wait);
			else
				sink_log(LOG_LEVEL_WARNING, s, "HTTP %ld (attempt %d; retrying in %ld ms)", status,
					    s->failures, wait);
		}
		s->next_ms = now_ms() + wait;
		s->st.retried++;
	}
	http_response_free(&s->resp);
	return r;
}

/* ---- the loop ----------------------------------------------------------- */

/* Offers the sink its oldest alert: 0 when it is done with it (taken,
 * filtered out, or dead-lettered: ack it), 1 when it waits (in flight, or
 * not now), -ENOMEM. */
static int offer(struct delivery *d, struct sink *s, const char *json, size_t len)
{
	struct json_object *alert = parse_alert(json, len);
	char msg[600];
	int r = 0;

	if (!wanted(s->c, alert)) {
		s->st.filtered++;
	} else if (s->c->type == SINK_STDOUT || s->c->type == SINK_FILE || s->c->type == SINK_JOURNAL) {
		r = write_direct(s, json, len, msg, sizeof(msg));
		if (r == -EAGAIN) {
			s->next_ms = now_ms() + 100;
			r = 1;
		} else if (r < 0) {
			long wait = backoff_ms(&d->backoff, ++s->failures, -1);
			if (s->failures == 1 || s->failures % 10 == 0)
				sink_log(LOG_LEVEL_WARNING, s, "%s (retrying in %ld ms)", msg, wait);
			s->next_ms = now_ms() + wait;
			s->st.retried++;
			r = 1;
		} else {
			s->failures = 0;
			s->st.sent++;
		}
	} else if (s->c->type == SINK_SLACK && now_ms() < s->last_sent_ms + SLACK_GAP_MS) {
		s->next_ms = s->last_sent_ms + SLACK_GAP_MS;
		r = 1;
	} else {
		r = start_http(d, s, json, len, alert, msg, sizeof(msg));
		if (r == 0) {
			s->in_flight = true;
			r = 1;
		} else if (r != -ENOMEM) {
			sink_log(LOG_LEVEL_ERROR, s, "alert %s cannot be formatted: %s", s->id, msg);
			dead_letter(d, s, json, len, msg);
			s->st.dead++;
			r = 0;
		}
	}
	json_object_put(alert);
	return r;
}

/* The sink has taken everything spooled for it: its evicted dead letters
 * come next, oldest first.  1 when one was taken (try the next), 0 when
 * none is left or the sink is waiting (in flight, backoff), -ENOMEM. */
static int feed_letter(struct delivery *d, struct sink *s)
{
	unsigned long dead = s->st.dead;
	char msg[600], id[SPOOL_ID_LEN + 1];
	const char *json;
	size_t len;
	int r = deadletters_next(&s->letters, &json, &len, id, msg, sizeof(msg));

	if (r < 0) {
		sink_log(LOG_LEVEL_ERROR, s, "dead letter passed over: %s", msg);
		return r == -ENOMEM ? r : 1;
	}
	if (r == 0) {
		if (s->letters_run)
			sink_log(LOG_LEVEL_INFO, s, "%lu evicted alerts delivered from %s (%lu so far)", s->letters_run,
				 s->letters.dir, s->st.redelivered);
		s->letters_run = 0;
		return 0;
	}
	memcpy(s->id, id, sizeof(id));
	r = offer(d, s, json, len);
	if (r < 0)
		return r;
	if (r == 1) {
		s->in_flight_letter = s->in_flight;
		return 0;
	}
	/* taken, filtered out, or kept again as unformattable (its file then says why) */
	letter_done(s, s->st.dead == dead);
	return 1;
}

/* Starts what the sink can take now: direct sinks drain, an HTTP sink gets
 * its next alert in flight.  An alert older than spool.max_age becomes a
 * dead letter instead.  Returns 0 or the spool's error. */
static int feed(struct delivery *d, struct sink *s)
{
	char msg[600];
	unsigned long expired = 0;
	int r = 0;

	while (!s->in_flight && now_ms() >= s->next_ms) {
		const char *json;
		size_t len;
		int64_t added;

		r = spool_peek(d->spool, s->index, &json, &len, s->id, &added, msg, sizeof(msg));
		if (r == -EBADMSG) {
			/* damaged on disk since the spool was opened: lost, said, passed */
			s->st.lost++;
			sink_log(LOG_LEVEL_ERROR, s, "alert %s lost: %s (%lu lost so far)", s->id, msg, s->st.lost);
		} else if (r < 0) {
			log_error("spool: %s", msg);
			break;
		} else if (!json) {
			if (feed_letter(d, s) <= 0)
				break;
			continue;
		} else if (time(NULL) - added > d->cfg->spool_max_age) {
			dead_letter(d, s, json, len, "expired: not delivered within spool.max_age");
			s->st.expired++;
			expired++;
		} else {
			r = offer(d, s, json, len);
			if (r != 0) {
				r = r < 0 ? r : 0;
				break;
			}
		}
		r = ack(d, s);
		if (r < 0)
			break;
	}
	if (expired)
		sink_log(LOG_LEVEL_ERROR, s,
			 "%lu alerts waited longer than spool.max_age (%llds) and were moved to %s/%s (%lu so far)",
			 expired, (long long)d->cfg->spool_max_age, d->dead_dir, s->c->name, s->st.expired);
	return r;
}

int delivery_evict(struct delivery *d, size_t max_alerts)
{
	struct spool_stats st;
	struct sink *s;
	char msg[600], id[SPOOL_ID_LEN + 1];
	size_t n = 0;

	spool_stats(d->spool, &st);
	if (st.holding_sink == SIZE_MAX || st.holding_sink >= d->n)
		return 0;
	s = &d->s[st.holding_sink];
	while (n < max_alerts) {
		const char *json;
		size_t len;
		int r = spool_peek(d->spool, s->index, &json, &len, id, NULL, msg, sizeof(msg));
		if (r < 0) {
			log_error("spool: %s", msg);
			return r;
		}
		if (!json)
			break;
		memcpy(s->id, id, sizeof(id));
		if (!dead_letter(d, s, json, len, "evicted: the spool was full")) {
			/* not kept, so not given up either */
			if (n == 0)
				return -EAGAIN;
			break;
		}
		if (s->in_flight && strcmp(s->id, id) == 0)
			s->in_flight_evicted = true;
		r = spool_ack(d->spool, s->index, id, msg, sizeof(msg));
		if (r < 0) {
			log_error("spool: %s", msg);
			return r;
		}
		s->st.evicted++;
		n++;
	}
	if (n) {
		struct log_about about = { .sink = s->c->name };
		log_about(LOG_LEVEL_ERROR, &about,
			  "spool full: sink %s had %llu alerts pending; its %zu oldest were moved to %s/%s (%lu evicted so far)",
			  s->c->name, (unsigned long long)st.sink[st.holding_sink].pending, n, d->dead_dir, s->c->name,
			  s->st.evicted);
	}
	return (int)n;
}

/* The spool is full: what is waiting is made durable and the sinks get the
 * time to take it (the object being read waits: back-pressure), until the
 * alert fits.  Only the sink that holds the space and takes nothing (its
 * last DELIVERY_STUCK_FAILURES attempts failed, or it acked nothing for
 * DELIVERY_STUCK_MS) gives up its oldest alerts (delivery_evict).  Returns
 * spool_add's result for a, -ENOSPC when nothing holds the space. */
static int make_room(struct delivery *d, const struct alert *a, char *msg, size_t msglen)
{
	long long since = now_ms();
	size_t holder = SIZE_MAX;
	uint64_t pending = 0;
	int r = spool_commit(d->spool, msg, msglen);

	if (r < 0) {
		log_error("spool: %s", msg);
		return r;
	}
	for (;;) {
		struct spool_stats st;
		const struct sink *h;

		r = delivery_run(d, DELIVERY_WAIT_STEP_MS);
		if (r < 0)
			return r;
		if (d->waiting)
			d->waiting(d->waiting_ctx);
		r = spool_add(d->spool, a->id, d->line.data, d->line.len, msg, msglen);
		if (r != -ENOSPC)
			return r;
		spool_stats(d->spool, &st);
		if (st.holding_sink == SIZE_MAX || st.holding_sink >= d->n)
			return -ENOSPC;
		if (st.holding_sink != holder || st.sink[st.holding_sink].pending < pending) {
			holder = st.holding_sink;	/* it is taking alerts: wait on */
			since = now_ms();
		}
		pending = st.sink[holder].pending;
		h = &d->s[holder];
		if (h->failures >= DELIVERY_STUCK_FAILURES || now_ms() - since >= DELIVERY_STUCK_MS) {
			r = delivery_evict(d, DELIVERY_EVICT_BATCH);
			if (r < 0)
				return r;
			since = now_ms();
		}
	}
}

/* replay prints alerts within ALERT_MAX_BYTES: run must spool the same ones. */
_Static_assert(ALERT_MAX_BYTES == SPOOL_MAX_ALERT, "an alert's bound is the spool's");

int delivery_add(struct delivery *d, const struct alert *a)
{
	char msg[600];
	int r;

	buf_reset(&d->line);
	r = alert_render(a, SPOOL_MAX_ALERT, &d->line);
	if (r == -E2BIG) {
		d->dropped++;
		log_error("alert %s (%s) from %s dropped: larger than %u bytes even with its values cut (%lu dropped so far)",
			  a->id, a->rule->title, a->m->log_object ? a->m->log_object : "?", SPOOL_MAX_ALERT, d->dropped);
		return 0;
	}
	if (r < 0)
		return r;
	if (r == 1)
		log_warning("alert %s (%s) from %s: values cut to fit %u bytes (see its \"truncated\" member)",
			    a->id, a->rule->title, a->m->log_object ? a->m->log_object : "?", SPOOL_MAX_ALERT);
	r = spool_add(d->spool, a->id, d->line.data, d->line.len, msg, sizeof(msg));
	if (r == -ENOSPC)
		r = make_room(d, a, msg, sizeof(msg));
	if (r == -EAGAIN) {
		log_error("alert %s (%s): the spool is full and its stuck sink's oldest alerts cannot be kept as dead letters: the object waits",
			  a->id, a->rule->title);
		return -ENOSPC;
	}
	if (r == -ENOSPC) {
		d->dropped++;
		log_error("alert %s (%s) dropped: %s (%lu dropped so far)", a->id, a->rule->title, msg, d->dropped);
		return 0;
	}
	if (r < 0) {
		log_error("spool: %s", msg);
		return r;
	}
	if (r == 0)
		log_debug("alert %s was already spooled or delivered: not repeated", a->id);
	return 0;
}

void delivery_set_waiting(struct delivery *d, void (*fn)(void *ctx), void *ctx)
{
	d->waiting = fn;
	d->waiting_ctx = ctx;
}

unsigned long delivery_dropped(const struct delivery *d)
{
	return d->dropped;
}

bool delivery_busy(const struct delivery *d)
{
	long long now = now_ms();

	for (size_t i = 0; i < d->n; i++)
		if (d->s[i].in_flight || d->s[i].next_ms > now)
			return true;
	return false;
}

int delivery_drain(struct delivery *d, long budget_ms)
{
	long long until = now_ms() + budget_ms;
	int r = 0;

	do
		r = delivery_run(d, 200);
	while (r == 0 && delivery_busy(d) && now_ms() < until);
	return r;
}

bool delivery_in_flight(const struct delivery *d)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->s[i].in_flight)
			return true;
	return false;
}

int delivery_run(struct delivery *d, long budget_ms)
{
	long long deadline = now_ms() + budget_ms;

	for (;;) {
		bool in_flight = false;
		long long now, wake = deadline;
		void *tag;
		int result, r;

		for (size_t i = 0; i < d->n; i++) {
			r = feed(d, &d->s[i]);
			if (r < 0)
				return r;
			in_flight |= d->s[i].in_flight;
			if (!d->s[i].in_flight && d->s[i].next_ms > now_ms() && d->s[i].next_ms < wake)
				wake = d->s[i].next_ms;
		}
		now = now_ms();
		if (now >= deadline)
			return 0;
		if (!in_flight) {
			if (wake >= deadline)
				return 0;
			/* a backoff ends before the deadline: wait for it */
			struct timespec ts = { (wake - now) / 1000, ((wake - now) % 1000) * 1000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		r = http_multi_next(d->m, wake - now, &tag, &result);
		if (r < 0) {
			log_error("delivery: libcurl failed: %s", strerror(-r));
			return 0;
		}
		if (r == 1) {
			r = finish_http(d, tag, result);
			if (r < 0)
				return r;
		}
	}
}

void delivery_stats(const struct delivery *d, size_t sink, struct delivery_sink_stats *ret)
{
	*ret = d->s[sink].st;
}

void delivery_free(struct delivery *d)
{
	if (!d)
		return;
	http_multi_free(d->m);
	for (size_t i = 0; d->s && i < d->n; i++) {
		wipe_free(d->s[i].url);
		wipe_free(d->s[i].hmac);
		wipe_free(d->s[i].routing_key);
		if (d->s[i].fd >= 0)
			close(d->s[i].fd);
		if (d->s[i].in_flight)
			http_response_free(&d->s[i].resp);
		deadletters_free(&d->s[i].letters);
	}
	free(d->s);
	buf_free(&d->payload);
	buf_free(&d->line);
	free(d->dead_dir);
	free(d);
}

int delivery_open(const struct config *cfg, const struct ruleset *rs, struct spool **spool, struct delivery **ret,
		  char *msg, size_t msglen)
{
	struct spool_stats st;
	int r = delivery_spool_open(cfg, spool, msg, msglen);

	if (r < 0)
		return r;
	r = delivery_new(cfg, rs, *spool, ret, msg, msglen);
	if (r < 0) {
		spool_close(*spool);
		*spool = NULL;
		return r;
	}
	/* what damage in the spool lost counts in each sink's "lost" (once:
	 * a reload's delivery_new starts from 0) */
	spool_stats(*spool, &st);
	for (size_t i = 0; i < (*ret)->n; i++)
		for (size_t k = 0; k < st.nsinks; k++)
			if (strcmp(st.sink[k].name, (*ret)->s[i].c->name) == 0)
				(*ret)->s[i].st.lost = (unsigned long)st.sink[k].lost;
	return 0;
}

int delivery_new(const struct config *cfg, const struct ruleset *rs, struct spool *spool, struct delivery **ret,
		 char *msg, size_t msglen)
{
	struct delivery *d = calloc(1, sizeof(*d));
	size_t nhttp = 0;
	int r = -ENOMEM;

	if (!d)
		return -ENOMEM;
	d->cfg = cfg;
	d->rs = rs;
	d->spool = spool;
	backoff_init(&d->backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	buf_init(&d->payload, 0);
	buf_init(&d->line, 0);
	d->n = cfg->nsinks ? cfg->nsinks : 1;
	d->s = calloc(d->n, sizeof(*d->s));
	if (!d->s || asprintf(&d->dead_dir, "%s/dead-letter", cfg->state_dir) < 0) {
		d->dead_dir = NULL;
		goto fail;
	}
	d->stdout_sink.type = SINK_STDOUT;
	d->stdout_sink.type_name = d->stdout_sink.name = "stdout";
	for (size_t i = 0; i < d->n; i++) {
		struct sink *s = &d->s[i];
		s->fd = -1;
		s->index = i;
		s->c = cfg->nsinks ? &cfg->sinks[i] : &d->stdout_sink;
	}
	for (size_t i = 0; i < d->n; i++) {
		char dir[4096];

		snprintf(dir, sizeof(dir), "%s/%s", d->dead_dir, d->s[i].c->name);
		if (deadletters_init(&d->s[i].letters, dir) < 0) {
			r = -ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < d->n; i++) {
		struct sink *s = &d->s[i];
		const struct sink_config *c = s->c;

		r = 0;
		if (c->url.value || c->url.file || c->url.credential)
			r = read_secret(&c->url, c->name, "url", &s->url, NULL, msg, msglen);
		if (r == 0 && (c->hmac.value || c->hmac.file || c->hmac.credential))
			r = read_secret(&c->hmac, c->name, "hmac_secret", &s->hmac, &s->hmac_len, msg, msglen);
		if (r == 0 && (c->routing_key.value || c->routing_key.file || c->routing_key.credential))
			r = read_secret(&c->routing_key, c->name, "routing_key", &s->routing_key, NULL, msg, msglen);
		if (r == 0 && s->url && strncmp(s->url, "https://", 8) != 0 && strncmp(s->url, "http://", 7) != 0) {
			snprintf(msg, msglen, "sink %s: the url must start with https:// (or http://)", c->name);
			r = -EINVAL;
		}
		if (r == 0 && c->type == SINK_FILE) {
			s->fd = open(c->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
			if (s->fd < 0) {
				r = -errno;
				snprintf(msg, msglen, "sink %s: %s: %s", c->name, c->path, strerror(errno));
			}
		}
		if (r < 0)
			goto fail;
		nhttp += s->url || s->routing_key;
	}
	r = http_multi_new(NULL, nhttp ? nhttp : 1, &d->m);
	if (r < 0)
		goto fail;
	*ret = d;
	return 0;
fail:
	delivery_free(d);
	return r;
}
