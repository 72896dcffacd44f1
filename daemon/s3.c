/* s3.c: ListObjectsV2 and GetObject over http.h, signed by sigv4.h, with
 * the retry policy of s3.h.
 *
 * Every request goes through prepare() (URL, Host, SigV4 headers) and its
 * response through verdict() (done, retry after a wait, or fail with a
 * message).  s3_list and s3_get run one request at a time; s3_get_many
 * keeps `parallel` GETs in flight with an http_multi, s3_list_many
 * `list_parallel` listings (each one page at a time).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trailwatch/backoff.h"
#include "trailwatch/http.h"
#include "trailwatch/keyset.h"
#include "trailwatch/s3.h"

struct s3_client {
	struct s3_config c;
	char *bucket, *region, *ca_file;
	char scheme[8];			/* "https" or "http" */
	char host[300];			/* authority: host[:port], with the bucket when virtual-hosted */
	bool path_style;
	s3_creds_fn creds;
	void *creds_ctx;
	struct sigv4_key_cache key_cache;
	struct http_client *http;
	struct s3_stats stats;
	struct backoff backoff;
};

/* One request ready to go: its URL and headers, and their storage. */
struct prepared {
	struct buf url;
	char host[300];
	struct sigv4_signed sig;
	struct http_header h[5];
	size_t nh;
	struct http_request rq;
};

static void prepared_init(struct prepared *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->url, 0);
	sigv4_signed_init(&p->sig);
}

static void prepared_free(struct prepared *p)
{
	buf_free(&p->url);
	sigv4_signed_free(&p->sig);
}

/* Bucket names as S3 allows them today: 3-63 of a-z 0-9 . -  */
static bool bucket_ok(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' || b[i] == '-'))
			return false;
	return true;
}

int s3_client_new(const struct s3_config *c, s3_creds_fn creds, void *creds_ctx, struct s3_client **ret,
		  char *msg, size_t msglen)
{
	struct http_options ho = { 0 };
	struct s3_client *s;
	const char *authority;
	int r;

	if (!c->bucket || !bucket_ok(c->bucket)) {
		snprintf(msg, msglen, "invalid bucket name '%s'", c->bucket ? c->bucket : "");
		return -EINVAL;
	}
	if (!c->region || !*c->region || strlen(c->region) > 64) {
		snprintf(msg, msglen, "invalid region '%s'", c->region ? c->region : "");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = *c;
	s->c.max_object = c->max_object ? c->max_object : (size_t)1 << 30;
	s->c.max_attempts = c->max_attempts > 0 ? c->max_attempts : 6;
	s->c.backoff_ms = c->backoff_ms > 0 ? c->backoff_ms : 200;
	s->c.backoff_max_ms = c->backoff_max_ms > 0 ? c->backoff_max_ms : 20000;
	s->c.parallel = c->parallel ? c->parallel : 4;
	s->c.list_parallel = c->list_parallel ? c->list_parallel : 16;
	s->c.request_timeout_ms = c->request_timeout_ms > 0 ? c->request_timeout_ms : 60000;
	s->bucket = strdup(c->bucket);
	s->region = strdup(c->region);
	s->ca_file = c->ca_file ? strdup(c->ca_file) : NULL;
	s->creds = creds;
	s->creds_ctx = creds_ctx;
	backoff_init(&s->backoff, s->c.backoff_ms, s->c.backoff_max_ms);
	if (!s->bucket || !s->region || (c->ca_file && !s->ca_file)) {
		r = -ENOMEM;
		goto fail;
	}
	/* Dotted bucket names do not match AWS's wildcard certificate. */
	s->path_style = c->path_style || strchr(c->bucket, '.');
	if (c->endpoint) {
		if (strncmp(c->endpoint, "https://", 8) == 0) {
			strcpy(s->scheme, "https");
			authority = c->endpoint + 8;
		} else if (strncmp(c->endpoint, "http://", 7) == 0) {
			strcpy(s->scheme, "http");
			authority = c->endpoint + 7;
		} else {
			snprintf(msg, msglen, "endpoint '%s' does not start with https:// or http://", c->endpoint);
			r = -EINVAL;
			goto fail;
		}
		if (!*authority || strcspn(authority, "/?# @") != strlen(authority) ||
		    (size_t)snprintf(s->host, sizeof(s->host), "%s%s%s", s->path_style ? "" : c->bucket,
				     s->path_style ? "" : ".", authority) >= sizeof(s->host)) {
			snprintf(msg, msglen, "endpoint '%s' must be scheme://host[:port] with nothing after it",
				 c->endpoint);
			r = -EINVAL;
			goto fail;
		}
	} else {
		strcpy(s->scheme, "https");
		if (s->path_style)
			snprintf(s->host, sizeof(s->host), "s3.%s.amazonaws.com", c->region);
		else
			snprintf(s->host, sizeof(s->host), "%s.s3.%s.amazonaws.com", c->bucket, c->region);
	}
	s->c.bucket = s->bucket;
	s->c.region = s->region;
	s->c.endpoint = NULL;
	s->c.ca_file = s->ca_file;
	ho.ca_file = s->ca_file;
	ho.cancel = s->c.stop;	/* a stop abandons a request in progress */
	ho.on_wait = c->on_wait;
	ho.wait_ctx = c->wait_ctx;
	r = http_client_new(&ho, &s->http);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	s3_client_free(s);
	return r;
}

void s3_client_free(struct s3_client *s)
{
	if (!s)
		return;
	http_client_free(s->http);
	free(s->bucket);
	free(s->region);
	free(s->ca_file);
	free(s);
}

void s3_stats(const struct s3_client *s, struct s3_stats *ret)
{
	*ret = s->stats;
}

void s3_object_name(const struct s3_client *s, const char *key, char *out, size_t outlen)
{
	snprintf(out, outlen, "s3://%s/%s", s->bucket, key);
}

/* Builds and signs a GET of key (NULL: the bucket itself, for a listing)
 * with the wire query `query` (already encoded). */
static int prepare(struct s3_client *s, const char *key, const char *query, struct prepared *p, char *msg,
		   size_t msglen)
{
	struct sigv4_credentials cred;
	struct buf path;
	struct sigv4_header sh[1];
	struct sigv4_scope sc = { .region = s->region, .service = "s3", .time = time(NULL), .sign_payload = true };
	struct sigv4_request rq;
	int r;

	buf_init(&path, 0);
	buf_reset(&p->url);
	r = s->creds(s->creds_ctx, &cred, msg, msglen);
	if (r < 0)
		goto out;
	r = buf_printf(&path, "%s%s/%s", s->path_style ? "/" : "", s->path_style ? s->bucket : "", key ? key : "");
	if (r < 0)
		goto out;
	if (!s->path_style && !key)
		buf_set_len(&path, 1);	/* just "/" */
	snprintf(p->host, sizeof(p->host), "%s", s->host);
	sh[0].name = "Host";
	sh[0].value = p->host;
	rq.method = "GET";
	rq.path = path.data;
	rq.query = query;
	rq.headers = sh;
	rq.nheaders = 1;
	rq.payload_hash = SIGV4_EMPTY_SHA256;
	r = sigv4_sign_header(&cred, &sc, &rq, &s->key_cache, &p->sig);
	if (r < 0) {
		snprintf(msg, msglen, "cannot sign the request for '%s': %s", key ? key : "(listing)", strerror(-r));
		goto out;
	}
	r = buf_printf(&p->url, "%s://%s", s->scheme, p->host);
	r = r ? r : sigv4_uri_encode(&p->url, path.data, path.len, true);
	if (r == 0 && query && *query)
		r = buf_printf(&p->url, "?%s", query);
	if (r < 0)
		goto out;
	p->nh = 0;
	p->h[p->nh++] = (struct http_header){ "Host", p->host };
	p->h[p->nh++] = (struct http_header){ "X-Amz-Date", p->sig.amz_date };
	p->h[p->nh++] = (struct http_header){ "x-amz-content-sha256", SIGV4_EMPTY_SHA256 };
	if (cred.session_token && *cred.session_token)
		p->h[p->nh++] = (struct http_header){ "X-Amz-Security-Token", cred.session_token };
	p->h[p->nh++] = (struct http_header){ "Authorization", p->sig.authorization.data };
	memset(&p->rq, 0, sizeof(p->rq));
	p->rq.method = "GET";
	p->rq.url = p->url.data;
	p->rq.headers = p->h;
	p->rq.nheaders = p->nh;
	p->rq.timeout_ms = s->c.request_timeout_ms;
	p->rq.min_rate = key ? S3_GET_MIN_RATE : 0;	/* an object's time grows with its size; a page's does not */
out:
	buf_free(&path);
	return r;
}

/* Throttling and transient errors, by S3/AWS error code. */
static bool retryable_code(const char *code)
{
	static const char *const codes[] = { "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
					     "Throttling", "ThrottlingException", "RequestLimitExceeded",
					     "TooManyRequestsException", "RequestThrottled", "BandwidthLimitExceeded" };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

enum verdict { V_DONE, V_RETRY, V_FAIL };

/* What to do with a finished request: *err and msg are set for V_FAIL, and
 * for V_RETRY in case it is the last attempt.  *token_retried: whether this
 * request was already retried once for an expired token. */
static enum verdict verdict(struct s3_client *s, const char *what, bool *token_retried, int result,
			    struct http_response *resp, int *err, char *msg, size_t msglen)
{
	struct s3xml_error e;
	char emsg[200];

	if (result == 0 && resp->status >= 200 && resp->status < 300)
		return V_DONE;
	if (result == -ENOMEM || result == -E2BIG || result == -ECANCELED || (result < 0 && result != -EIO)) {
		*err = result;
		snprintf(msg, msglen, "%s: %s", what, resp->error[0] ? resp->error : strerror(-result));
		return V_FAIL;
	}
	if (result == -EIO && resp->timed_out) {
		/* not again now: a silent endpoint would hold the poll max_attempts deadlines */
		*err = -ETIMEDOUT;
		snprintf(msg, msglen, "%s: %s", what, resp->error);
		return V_FAIL;
	}
	if (result == -EIO) {
		*err = -EAGAIN;
		snprintf(msg, msglen, "%s: %s", what, resp->error);
		return V_RETRY;
	}
	memset(&e, 0, sizeof(e));
	if (resp->body.len == 0 || s3xml_parse_error(resp->body.data, resp->body.len, &e, emsg, sizeof(emsg)) < 0)
		snprintf(e.code, sizeof(e.code), "HTTP%ld", resp->status);
	snprintf(msg, msglen, "%s: %ld %s%s%s (request id %s)", what, resp->status, e.code, e.message[0] ? ": " : "",
		 e.message, resp->request_id[0] ? resp->request_id : e.request_id[0] ? e.request_id : "none");
	if (resp->status >= 500 || resp->status == 429 || retryable_code(e.code)) {
		s->stats.throttled += resp->status == 503 || resp->status == 429 || strcmp(e.code, "SlowDown") == 0;
		*err = -EAGAIN;
		return V_RETRY;
	}
	if (strcmp(e.code, "ExpiredToken") == 0 || strcmp(e.code, "TokenRefreshRequired") == 0 ||
	    strcmp(e.code, "InvalidToken") == 0) {
		*err = -EACCES;
		if (*token_retried)
			return V_FAIL;
		*token_retried = true;
		return V_RETRY;	/* once: the next attempt asks for credentials again */
	}
	*err = resp->status == 404 ? -ENOENT : resp->status == 403 ? -EACCES : -EIO;
	return V_FAIL;
}

/* Tells on_wait that s3 got somewhere: a request ended, a backoff runs. */
static void progressed(struct s3_client *s)
{
	if (s->c.on_wait)
		s->c.on_wait(s->c.wait_ctx, true);
}

/* Sleeps ms, in slices, returning -ECANCELED as soon as *stop is set. */
static int wait_ms(struct s3_client *s, long ms)
{
	while (ms > 0) {
		long slice = ms < HTTP_WAIT_MS ? ms : HTTP_WAIT_MS;
		struct timespec ts = { 0, slice * 1000000L };
		if (s->c.stop && *s->c.stop)
			return -ECANCELED;
		progressed(s);	/* a bounded wait of a bounded number of attempts */
		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return s->c.stop && *s->c.stop ? -ECANCELED : 0;
}

/* After a failed attempt: 1 when there is another one (after the backoff
 * wait), 0 when not (the verdict's error and message stand), -ECANCELED
 * when a stop came during the wait. */
static int next_attempt(struct s3_client *s, enum verdict v, int *attempt, long retry_after, const char *what,
			char *msg, size_t msglen)
{
	if (v == V_FAIL || ++*attempt >= s->c.max_attempts) {
		s->stats.failures++;
		return 0;
	}
	s->stats.retries++;
	if (wait_ms(s, backoff_ms(&s->backoff, *attempt, retry_after)) < 0) {
		snprintf(msg, msglen, "%s: stopped", what);
		return -ECANCELED;
	}
	return 1;
}

/* ---- listing ------------------------------------------------------------ */

struct page {
	struct s3xml_list *x;
	char msg[S3_MSG];
	int err;
};

static int feed_page(void *ctx, const char *p, size_t n)
{
	struct page *pg = ctx;
	int r = s3xml_feed(pg->x, p, n, pg->msg, sizeof(pg->msg));

	if (r < 0)
		pg->err = r;
	return r;
}

static int add_param(struct buf *q, const char *name, const char *value)
{
	int r = buf_printf(q, "%s%s=", q->len ? "&" : "", name);

	return r ? r : sigv4_uri_encode(q, value, strlen(value), false);
}

/* The continuation token of page `page`'s answer, before it is asked for:
 * -EPROTO with msg when it is empty or was used before in this listing
 * (a server that would send the listing round in circles), or when the
 * listing has had S3_LIST_MAX_PAGES pages already; else 0, with the token
 * remembered in seen. */
static int check_token(struct keyset *seen, const char *token, int page, const char *what, char *msg,
		       size_t msglen)
{
	int r;

	if (!*token) {
		snprintf(msg, msglen, "%s: page %d says IsTruncated but its NextContinuationToken is empty: listing stopped",
			 what, page);
		return -EPROTO;
	}
	if (page >= S3_LIST_MAX_PAGES) {
		snprintf(msg, msglen, "%s: still truncated after %d pages (IsTruncated on every one): listing stopped",
			 what, S3_LIST_MAX_PAGES);
		return -EPROTO;
	}
	r = keyset_add(seen, token);
	if (r < 0)
		return r;
	if (r == 0) {
		snprintf(msg, msglen,
			 "%s: page %d says IsTruncated with a continuation token already used in this listing ('%.48s%s'): listing stopped",
			 what, page, token, strlen(token) > 48 ? "..." : "");
		return -EPROTO;
	}
	return 0;
}

/* The query of a listing's next page into q, parameters in canonical
 * order so that what is signed is what is sent. */
static int list_query(struct buf *q, const struct s3_list_params *lp, const char *token)
{
	char maxkeys[16];
	int r;

	buf_reset(q);
	r = token ? add_param(q, "continuation-token", token) : 0;
	r = r ? r : lp->delimiter ? add_param(q, "delimiter", lp->delimiter) : 0;
	r = r ? r : add_param(q, "encoding-type", "url");
	r = r ? r : add_param(q, "list-type", "2");
	snprintf(maxkeys, sizeof(maxkeys), "%d", lp->max_keys);
	r = r ? r : lp->max_keys > 0 ? add_param(q, "max-keys", maxkeys) : 0;
	r = r ? r : lp->prefix ? add_param(q, "prefix", lp->prefix) : 0;
	r = r ? r : !token && lp->start_after ? add_param(q, "start-after", lp->start_after) : 0;
	return r;
}

int s3_list(struct s3_client *s, const struct s3_list_params *lp, s3xml_object_fn on_object,
	    s3xml_prefix_fn on_prefix, void *userdata, char *msg, size_t msglen)
{
	struct prepared p;
	struct http_response resp;
	struct buf query;
	struct keyset seen = { 0 };	/* continuation tokens asked for so far */
	char *token = NULL, what[400];
	bool token_retried = false;
	int r = 0, attempt = 0, page = 1;

	prepared_init(&p);
	http_response_init(&resp, 1 << 20);	/* error documents; pages stream */
	buf_init(&query, 0);
	snprintf(what, sizeof(what), "LIST s3://%s/%s", s->bucket, lp->prefix ? lp->prefix : "");
	for (;;) {
		struct page pg = { 0 };
		struct s3xml_list_result res;
		enum verdict v;
		int result;

		if (s->c.stop && *s->c.stop) {
			snprintf(msg, msglen, "%s: stopped", what);
			r = -ECANCELED;
			goto out;
		}
		r = list_query(&query, lp, token);
		r = r ? r : prepare(s, NULL, query.data, &p, msg, msglen);
		if (r < 0)
			goto out;
		r = s3xml_list_new(true, on_object, on_prefix, userdata, &pg.x);
		if (r < 0)
			goto out;
		resp.on_data = feed_page;
		resp.ctx = &pg;
		s->stats.lists++;
		result = http_perform(s->http, &p.rq, &resp);
		progressed(s);
		if (pg.err) {
			/* the page itself was bad, or a callback said stop */
			r = pg.err;
			if (r == -EINVAL)
				snprintf(msg, msglen, "%s: bad ListObjectsV2 response: %s", what, pg.msg);
			s3xml_list_free(pg.x);
			goto out;
		}
		v = verdict(s, what, &token_retried, result, &resp, &r, msg, msglen);
		if (v == V_DONE) {
			r = s3xml_finish(pg.x, &res, pg.msg, sizeof(pg.msg));
			if (r == -EINVAL)
				snprintf(msg, msglen, "%s: bad ListObjectsV2 response: %s", what, pg.msg);
			if (r == 0 && res.is_truncated)
				r = check_token(&seen, res.next_token, page, what, msg, msglen);
			if (r == 0) {
				free(token);
				token = res.is_truncated ? strdup(res.next_token) : NULL;
				if (res.is_truncated && !token)
					r = -ENOMEM;
			}
			s3xml_list_free(pg.x);
			if (r < 0 || !token)
				goto out;
			page++;
			attempt = 0;
			token_retried = false;
			continue;
		}
		s3xml_list_free(pg.x);
		result = next_attempt(s, v, &attempt, resp.retry_after, what, msg, msglen);
		if (result <= 0) {
			r = result < 0 ? result : r;
			goto out;
		}
	}
out:
	free(token);
	keyset_clear(&seen);
	buf_free(&query);
	http_response_free(&resp);
	prepared_free(&p);
	return r;
}

/* ---- objects ------------------------------------------------------------ */

int s3_get(struct s3_client *s, const char *key, struct buf *out, char *msg, size_t msglen)
{
	struct prepared p;
	struct http_response resp;
	char what[1200];
	bool token_retried = false;
	int r = 0, attempt = 0;

	prepared_init(&p);
	http_response_init(&resp, s->c.max_object);
	snprintf(what, sizeof(what), "GET s3://%s/%s", s->bucket, key);
	for (;;) {
		enum verdict v;
		int result;

		r = prepare(s, key, NULL, &p, msg, msglen);
		if (r < 0)
			goto out;
		s->stats.gets++;
		result = http_perform(s->http, &p.rq, &resp);
		progressed(s);
		v = verdict(s, what, &token_retried, result, &resp, &r, msg, msglen);
		if (v == V_DONE) {
			/* hand the body over without a copy */
			struct buf tmp = *out;
			*out = resp.body;
			resp.body = tmp;
			buf_reset(&resp.body);
			s->stats.bytes += out->len;
			r = 0;
			goto out;
		}
		result = next_attempt(s, v, &attempt, resp.retry_after, what, msg, msglen);
		if (result <= 0) {
			r = result < 0 ? result : r;
			goto out;
		}
	}
out:
	http_response_free(&resp);
	prepared_free(&p);
	return r;
}

/* One object of s3_get_many. */
struct item {
	size_t index;
	int attempt;
	struct timespec not_before;
	struct http_response resp;
	bool queued, done, token_retried;
};

static void now_plus(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static long ms_until(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000L;
}

int s3_get_many(struct s3_client *s, const char *const *keys, size_t nkeys, s3_fetched_fn done, void *ctx)
{
	struct http_options ho = { .ca_file = s->ca_file, .cancel = s->c.stop, .on_wait = s->c.on_wait,
				   .wait_ctx = s->c.wait_ctx };
	struct http_multi *m = NULL;
	struct item *items = calloc(nkeys + 1, sizeof(*items));
	struct prepared p;
	char msg[S3_MSG], what[1200];
	size_t left = nkeys;
	int r;

	prepared_init(&p);
	if (!items) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		items[i].index = i;
		http_response_init(&items[i].resp, s->c.max_object);
	}
	r = http_multi_new(&ho, s->c.parallel, &m);
	if (r < 0)
		goto out;
	while (left > 0) {
		long sleep_ms = -1;
		void *tag;
		int result, err;
		struct item *it;
		enum verdict v;

		/* after a stop, the GETs in flight finish and nothing new starts */
		if (s->c.stop && *s->c.stop && http_multi_pending(m) == 0) {
			r = -ECANCELED;
			goto out;
		}
		/* queue what is due, signing it now (a fresh X-Amz-Date) */
		for (size_t i = 0; i < nkeys && http_multi_pending(m) < s->c.parallel && !(s->c.stop && *s->c.stop);
		     i++) {
			long due;
			it = &items[i];
			if (it->done || it->queued)
				continue;
			due = it->attempt ? ms_until(&it->not_before) : 0;
			if (due > 0) {
				if (sleep_ms < 0 || due < sleep_ms)
					sleep_ms = due;
				continue;
			}
			r = prepare(s, keys[i], NULL, &p, msg, sizeof(msg));
			if (r == 0)
				r = http_multi_add(m, &p.rq, &it->resp, it);
			if (r < 0) {
				/* no credentials now, say: not the object's fault */
				it->done = true;
				left--;
				r = done(ctx, i, keys[i], r == -ENOMEM ? r : -EAGAIN, NULL, 0, msg);
				if (r < 0)
					goto out;
				continue;
			}
			it->queued = true;
			s->stats.gets++;
		}
		if (http_multi_pending(m) == 0) {
			if (left == 0)
				break;
			r = wait_ms(s, sleep_ms > 0 ? sleep_ms : 1);
			if (r < 0)
				goto out;
			continue;
		}
		r = http_multi_next(m, -1, &tag, &result);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		progressed(s);
		it = tag;
		it->queued = false;
		snprintf(what, sizeof(what), "GET s3://%s/%s", s->bucket, keys[it->index]);
		v = verdict(s, what, &it->token_retried, result, &it->resp, &err, msg, sizeof(msg));
		if (v == V_RETRY && ++it->attempt < s->c.max_attempts) {
			s->stats.retries++;
			now_plus(&it->not_before, backoff_ms(&s->backoff, it->attempt, it->resp.retry_after));
			continue;
		}
		it->done = true;
		left--;
		if (v == V_DONE) {
			s->stats.bytes += it->resp.body.len;
			r = done(ctx, it->index, keys[it->index], 0, it->resp.body.data, it->resp.body.len, NULL);
		} else {
			s->stats.failures++;
			r = done(ctx, it->index, keys[it->index], err, NULL, 0, msg);
		}
		http_response_free(&it->resp);
		http_response_init(&it->resp, 0);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	http_multi_free(m);
	for (size_t i = 0; items && i < nkeys; i++)
		http_response_free(&items[i].resp);
	free(items);
	prepared_free(&p);
	return r;
}

/* ---- several listings at once ---------------------------------------------- */

/* One job of s3_list_many, with its page in flight. */
struct lister {
	struct s3_list_job *job;
	struct http_response resp;
	struct page pg;			/* pg.x: the parser of the page in flight */
	struct keyset seen;		/* continuation tokens asked for so far */
	char *token;
	char what[400];
	int page, attempt;
	struct timespec not_before;
	bool queued, done, token_retried;
};

/* Ends job l with result r (its message already in job->msg). */
static void lister_end(struct lister *l, int r)
{
	l->job->result = r;
	l->done = true;
	s3xml_list_free(l->pg.x);
	l->pg.x = NULL;
	free(l->token);
	l->token = NULL;
	keyset_clear(&l->seen);
	http_response_free(&l->resp);
	http_response_init(&l->resp, 0);
}

/* Starts l's next page: 0, or l ended with the error (not the batch's). */
static int lister_start(struct s3_client *s, struct http_multi *m, struct lister *l, struct buf *query,
			struct prepared *p)
{
	struct s3_list_job *j = l->job;
	int r;

	r = list_query(query, &j->p, l->token);
	r = r ? r : prepare(s, NULL, query->data, p, j->msg, sizeof(j->msg));
	if (r < 0) {
		lister_end(l, r);
		return r == -ENOMEM ? r : 0;
	}
	r = s3xml_list_new(true, j->on_object, NULL, j->userdata, &l->pg.x);
	if (r < 0)
		return r;
	l->pg.err = 0;
	http_response_free(&l->resp);
	http_response_init(&l->resp, 1 << 20);	/* error documents; pages stream */
	l->resp.on_data = feed_page;
	l->resp.ctx = &l->pg;
	r = http_multi_add(m, &p->rq, &l->resp, l);
	if (r < 0)
		return r;
	l->queued = true;
	s->stats.lists++;
	return 0;
}

/* A page of l came back (result as http_perform's): the next page is due,
 * or the job ended. */
static int lister_page(struct s3_client *s, struct lister *l, int result)
{
	struct s3_list_job *j = l->job;
	struct s3xml_list_result res;
	enum verdict v;
	int r = 0;

	l->queued = false;
	if (l->pg.err) {
		/* the page itself was bad, or a callback said stop */
		r = l->pg.err;
		if (r == -EINVAL)
			snprintf(j->msg, sizeof(j->msg), "%.250s: bad ListObjectsV2 response: %.200s", l->what, l->pg.msg);
		lister_end(l, r);
		return 0;
	}
	v = verdict(s, l->what, &l->token_retried, result, &l->resp, &r, j->msg, sizeof(j->msg));
	if (v == V_DONE) {
		r = s3xml_finish(l->pg.x, &res, l->pg.msg, sizeof(l->pg.msg));
		if (r == -EINVAL)
			snprintf(j->msg, sizeof(j->msg), "%.250s: bad ListObjectsV2 response: %.200s", l->what, l->pg.msg);
		if (r == 0 && res.is_truncated)
			r = check_token(&l->seen, res.next_token, l->page, l->what, j->msg, sizeof(j->msg));
		if (r == 0) {
			free(l->token);
			l->token = res.is_truncated ? strdup(res.next_token) : NULL;
			if (res.is_truncated && !l->token)
				r = -ENOMEM;
		}
		s3xml_list_free(l->pg.x);
		l->pg.x = NULL;
		if (r < 0 || !l->token) {
			lister_end(l, r);
			return r == -ENOMEM ? r : 0;
		}
		l->page++;
		l->attempt = 0;
		l->token_retried = false;
		return 0;	/* the next page is due at once */
	}
	s3xml_list_free(l->pg.x);
	l->pg.x = NULL;
	if (v == V_RETRY && ++l->attempt < s->c.max_attempts) {
		s->stats.retries++;
		now_plus(&l->not_before, backoff_ms(&s->backoff, l->attempt, l->resp.retry_after));
		return 0;
	}
	s->stats.failures++;
	lister_end(l, r);
	return 0;
}

int s3_list_many(struct s3_client *s, struct s3_list_job *jobs, size_t njobs)
{
	struct http_options ho = { .ca_file = s->ca_file, .cancel = s->c.stop, .on_wait = s->c.on_wait,
				   .wait_ctx = s->c.wait_ctx };
	struct http_multi *m = NULL;
	struct lister *ls = calloc(njobs + 1, sizeof(*ls));
	struct prepared p;
	struct buf query;
	size_t left = njobs;
	int r;

	prepared_init(&p);
	buf_init(&query, 0);
	if (!ls) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < njobs; i++) {
		ls[i].job = &jobs[i];
		ls[i].page = 1;
		http_response_init(&ls[i].resp, 0);
		jobs[i].result = -ECANCELED;
		jobs[i].msg[0] = '\0';
		snprintf(ls[i].what, sizeof(ls[i].what), "LIST s3://%s/%s", s->bucket,
			 jobs[i].p.prefix ? jobs[i].p.prefix : "");
	}
	r = http_multi_new(&ho, s->c.list_parallel, &m);
	if (r < 0)
		goto out;
	while (left > 0) {
		long sleep_ms = -1;
		void *tag;
		int result;

		/* after a stop, the pages in flight finish and nothing new starts */
		if (s->c.stop && *s->c.stop && http_multi_pending(m) == 0) {
			r = -ECANCELED;
			goto out;
		}
		for (size_t i = 0; i < njobs && http_multi_pending(m) < s->c.list_parallel && !(s->c.stop && *s->c.stop);
		     i++) {
			long due;
			if (ls[i].done || ls[i].queued)
				continue;
			due = ls[i].attempt ? ms_until(&ls[i].not_before) : 0;
			if (due > 0) {
				if (sleep_ms < 0 || due < sleep_ms)
					sleep_ms = due;
				continue;
			}
			r = lister_start(s, m, &ls[i], &query, &p);
			if (r < 0)
				goto out;
		}
		left = 0;
		for (size_t i = 0; i < njobs; i++)
			left += !ls[i].done;
		if (left == 0)
			break;
		if (http_multi_pending(m) == 0) {
			r = wait_ms(s, sleep_ms > 0 ? sleep_ms : 1);
			if (r < 0)
				goto out;
			continue;
		}
		r = http_multi_next(m, -1, &tag, &result);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		progressed(s);
		r = lister_page(s, tag, result);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	http_multi_free(m);
	for (size_t i = 0; ls && i < njobs; i++) {
		if (!ls[i].done && r == -ECANCELED)
			snprintf(jobs[i].msg, sizeof(jobs[i].msg), "%s: stopped", ls[i].what);
		s3xml_list_free(ls[i].pg.x);
		free(ls[i].token);
		keyset_clear(&ls[i].seen);
		http_response_free(&ls[i].resp);
	}
	free(ls);
	buf_free(&query);
	prepared_free(&p);
	return r;
}
