/* http.c: libcurl behind the small interface of http.h.
 *
 * One `struct xfer` is one easy handle with what a request needs while it
 * runs (its header list, its response).  A client owns one xfer and reuses
 * its handle, so connections stay open between requests; a multi owns
 * max_parallel of them and a queue of requests waiting for a free one.
 * Both drive libcurl's multi interface in a loop of their own, so that
 * on_wait is called between two polls of the sockets, outside libcurl.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "trailwatch/http.h"

#ifndef TRAILWATCH_VERSION
#define TRAILWATCH_VERSION "dev"
#endif

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	size_t body_len;
	struct http_response *resp;
	void *tag;
	volatile sig_atomic_t *cancel;	/* http_options.cancel */
	long timeout_ms, min_rate;	/* the request's deadline (see http_request.min_rate) */
	bool past_deadline;		/* on_progress stopped it for min_rate's deadline */
	bool received;			/* bytes arrived since the last look (for on_wait) */
	char errbuf[CURL_ERROR_SIZE];
};

/* When on_wait was last called, and whether bytes arrived since. */
struct waiter {
	long long last_ms;
	bool received;
};

struct http_client {
	struct http_options o;
	CURLM *multi;			/* of the one transfer: its connections, and the loop */
	struct xfer x;
	struct waiter w;
};

/* A request waiting for a free handle: its own copy of everything. */
struct queued {
	struct queued *next;
	struct http_request rq;
	struct http_header headers[HTTP_MAX_HEADERS];
	char *strings;			/* method, url, header names and values, body */
	size_t strings_len;
	struct http_response *resp;
	void *tag;
};

struct http_multi {
	struct http_options o;
	CURLM *multi;
	struct xfer *x;
	bool *busy;
	size_t nx, running;
	struct queued *head, *tail;
	size_t queued;
	struct waiter w;
};

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -ENOMEM;
}

void http_response_init(struct http_response *r, size_t body_limit)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, body_limit);
	r->retry_after = -1;
}

void http_response_free(struct http_response *r)
{
	if (r)
		buf_free(&r->body);
}

static void defaults(struct http_options *o, const struct http_options *in)
{
	memset(o, 0, sizeof(*o));
	if (in)
		*o = *in;
	if (!o->timeout_ms)
		o->timeout_ms = 60000;
	if (!o->connect_timeout_ms)
		o->connect_timeout_ms = 10000;
	if (!o->low_speed_seconds)
		o->low_speed_seconds = 30;
	if (!o->user_agent)
		o->user_agent = "trailwatch/" TRAILWATCH_VERSION;
}

/* With keep_start: the body up to its limit goes to r->body, the rest is
 * counted and thrown away.  0 or -ENOMEM. */
static int keep_body_start(struct http_response *r, const char *p, size_t n)
{
	size_t room = r->body.limit - r->body.len;
	size_t keep = n < room ? n : room;

	if (keep < n) {
		r->body_cut = true;
		r->discarded += n - keep;
	}
	return keep ? buf_append(&r->body, p, keep) : 0;
}

/* A transfer stopped here (0 is returned) ends with CURLE_WRITE_ERROR:
 * with data_error set it fails with that error; without, it is a kept
 * start that has thrown enough away, and xfer_result lets the status stand. */
static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct xfer *x = ctx;
	struct http_response *r = x->resp;
	long status = 0;
	int e;

	n *= size;
	x->received = true;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (r->on_data && status >= 200 && status < 300)
		e = r->on_data(r->ctx, p, n);
	else if (r->keep_start)
		e = keep_body_start(r, p, n);
	else
		e = buf_append(&r->body, p, n);
	if (e < 0) {
		r->data_error = e;
		return 0;
	}
	if (r->discarded > HTTP_DISCARD_MAX)
		return 0;
	return n;
}

/* Copies the value of header line p (of n bytes) if it is `name: value`. */
static bool header_value(const char *p, size_t n, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), o = 0;

	if (n <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
		return false;
	p += nl + 1;
	n -= nl + 1;
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
		n--;
	for (; o < n && o + 1 < outlen; o++)
		out[o] = p[o];
	out[o] = '\0';
	return true;
}

/* libcurl calls this about once a second while a transfer lives (more
 * often while data flows): a stop abandons the transfer, and so does
 * min_rate's deadline (non-zero: CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = ctx;
	curl_off_t expect = dltotal > dlnow ? dltotal : dlnow, elapsed_us = 0;

	if (x->cancel && *x->cancel)
		return 1;
	if (x->min_rate > 0) {
		curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &elapsed_us);
		if (elapsed_us / 1000 > x->timeout_ms + expect * 1000 / x->min_rate) {
			x->past_deadline = true;
			return 1;
		}
	}
	return 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
	struct xfer *x = ctx;
	struct http_response *r = x->resp;
	char v[80];

	n *= size;
	x->received = true;
	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue, say): forget the last */
		r->retry_after = -1;
		r->location[0] = '\0';
		r->request_id[0] = '\0';
	} else if (header_value(p, n, "Location", r->location, sizeof(r->location))) {
		/* kept for the caller: redirects are not followed */
	} else if (header_value(p, n, "Retry-After", v, sizeof(v))) {
		char *end;
		long s = strtol(v, &end, 10);
		if (end != v && *end == '\0' && s >= 0) {
			r->retry_after = s < 86400 ? s : 86400;	/* bounded: it is multiplied later */
		} else {
			time_t t = curl_getdate(v, NULL), now = time(NULL);
			if (t >= 0)
				r->retry_after = t <= now ? 0 : t - now < 86400 ? (long)(t - now) : 86400;
		}
	} else {
		header_value(p, n, "x-amz-request-id", r->request_id, sizeof(r->request_id));
	}
	return n;
}

/* Frees the request's header list and body, wiped first: they may carry
 * secrets (tokens, a web identity token in a POST body). */
static void xfer_release_request(struct xfer *x)
{
	for (struct curl_slist *l = x->headers; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	if (x->body)
		OPENSSL_cleanse(x->body, x->body_len);
	free(x->body);
	x->body = NULL;
	x->body_len = 0;
}

/* Sets up x's handle for rq; resp is reset.  -ENOMEM, -EINVAL. */
static int xfer_setup(struct xfer *x, const struct http_options *o, const struct http_request *rq,
		      struct http_response *resp)
{
	char line[8192];
	long timeout_ms = rq->timeout_ms ? rq->timeout_ms : o->timeout_ms, hard_ms = timeout_ms;

	curl_easy_reset(x->easy);
	xfer_release_request(x);
	x->resp = resp;
	x->errbuf[0] = '\0';
	x->timeout_ms = timeout_ms;
	x->min_rate = rq->min_rate;
	x->past_deadline = false;
	x->received = false;
	if (rq->min_rate > 0 && resp->body.limit)	/* the longest answer's time: curl's own bound */
		hard_ms += (long)(resp->body.limit / (size_t)rq->min_rate * 1000);
	resp->status = 0;
	resp->retry_after = -1;
	resp->location[0] = '\0';
	resp->request_id[0] = '\0';
	resp->error[0] = '\0';
	resp->data_error = 0;
	resp->body_cut = false;
	resp->timed_out = false;
	resp->discarded = 0;
	buf_reset(&resp->body);
	if (rq->nheaders > HTTP_MAX_HEADERS)
		return -EINVAL;
	for (size_t i = 0; i < rq->nheaders; i++) {
		struct curl_slist *l;
		if ((size_t)snprintf(line, sizeof(line), "%s: %s", rq->headers[i].name, rq->headers[i].value) >=
		    sizeof(line)) {
			OPENSSL_cleanse(line, sizeof(line));
			return -EINVAL;
		}
		l = curl_slist_append(x->headers, line);
		OPENSSL_cleanse(line, sizeof(line));
		if (!l)
			return -ENOMEM;
		x->headers = l;
	}
	{
		/* no "Expect: 100-continue" round trip before bodies */
		struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
		if (!l)
			return -ENOMEM;
		x->headers = l;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, rq->url);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file)
		curl_easy_setopt(x->easy, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, o->user_agent);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, hard_ms);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 rq->connect_timeout_ms ? rq->connect_timeout_ms : o->connect_timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_TIME, o->low_speed_seconds);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	x->cancel = o->cancel;
	curl_easy_setopt(x->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(x->easy, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(x->easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (strcmp(rq->method, "GET") == 0) {
		curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(rq->method, "HEAD") == 0) {
		curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(rq->method, "POST") != 0)
			curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, rq->method);
		x->body = malloc(rq->body_len + 1);
		if (!x->body)
			return -ENOMEM;
		x->body_len = rq->body_len;
		if (rq->body_len)
			memcpy(x->body, rq->body, rq->body_len);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	}
	return 0;
}

/* The result of a finished transfer, as http_perform returns it. */
static int xfer_result(struct xfer *x, CURLcode code)
{
	struct http_response *r = x->resp;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (code == CURLE_OK)
		return 0;
	if (code == CURLE_WRITE_ERROR && !r->data_error && r->discarded > HTTP_DISCARD_MAX)
		return 0;	/* keep_start: the status arrived, the rest of the body does not matter */
	if (r->data_error) {
		if (r->data_error == -E2BIG)
			snprintf(r->error, sizeof(r->error), "response body larger than the limit of %zu bytes",
				 r->body.limit);
		else
			snprintf(r->error, sizeof(r->error), "response body refused: %s", strerror(-r->data_error));
		return r->data_error;
	}
	if (code == CURLE_ABORTED_BY_CALLBACK && x->past_deadline) {
		curl_off_t got = 0, len = -1;
		curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
		if (len < 0)
			snprintf(r->error, sizeof(r->error), "no answer within %lld ms (%lld bytes of the body received)",
				 (long long)(x->timeout_ms + got * 1000 / x->min_rate), (long long)got);
		else
			snprintf(r->error, sizeof(r->error),
				 "answer not complete within %lld ms (%lld of %lld bytes received; %ld ms plus the length at %ld bytes/s)",
				 (long long)(x->timeout_ms + len * 1000 / x->min_rate), (long long)got, (long long)len,
				 x->timeout_ms, x->min_rate);
		r->status = 0;
		r->timed_out = true;
		return -EIO;
	}
	if (code == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(r->error, sizeof(r->error), "stopped");
		r->status = 0;
		return -ECANCELED;
	}
	snprintf(r->error, sizeof(r->error), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
	if (code == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	r->status = 0;
	r->timed_out = code == CURLE_OPERATION_TIMEDOUT;	/* timeout_ms, or the low-speed limit */
	return -EIO;
}

static long long mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Between two polls of the sockets: on_wait, at most every HTTP_WAIT_MS,
 * with whether bytes arrived since its last call. */
static void waited(const struct http_options *o, struct waiter *w, bool received)
{
	long long now;

	w->received |= received;
	if (!o->on_wait)
		return;
	now = mono_ms();
	if (now - w->last_ms < HTTP_WAIT_MS)
		return;
	w->last_ms = now;
	received = w->received;
	w->received = false;
	o->on_wait(o->wait_ctx, received);
}

/* Whether x received bytes since the last call. */
static bool take_received(struct xfer *x)
{
	bool r = x->received;

	x->received = false;
	return r;
}

/* How long one poll of the sockets may block. */
static int poll_slice(const struct http_options *o, long left_ms)
{
	long slice = o->on_wait ? HTTP_WAIT_MS : 1000;

	return left_ms >= 0 && left_ms < slice ? (int)left_ms : (int)slice;
}

static void xfer_free(struct xfer *x)
{
	if (x->easy)
		curl_easy_cleanup(x->easy);
	xfer_release_request(x);
	memset(x, 0, sizeof(*x));
}

int http_client_new(const struct http_options *o, struct http_client **ret)
{
	struct http_client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	defaults(&c->o, o);
	c->x.easy = curl_easy_init();
	c->multi = curl_multi_init();
	if (!c->x.easy || !c->multi) {
		http_client_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	xfer_free(&c->x);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c);
}

int http_perform(struct http_client *c, const struct http_request *rq, struct http_response *resp)
{
	CURLcode code = CURLE_OK;
	int r = xfer_setup(&c->x, &c->o, rq, resp);

	if (r < 0)
		return r;
	if (curl_multi_add_handle(c->multi, c->x.easy) != CURLM_OK)
		return -ENOMEM;
	for (;;) {
		CURLMsg *msg;
		int still, left;

		if (curl_multi_perform(c->multi, &still) != CURLM_OK) {
			r = -EIO;
			break;
		}
		msg = curl_multi_info_read(c->multi, &left);
		if (msg && msg->msg == CURLMSG_DONE) {
			code = msg->data.result;
			break;
		}
		waited(&c->o, &c->w, take_received(&c->x));
		if (curl_multi_poll(c->multi, NULL, 0, poll_slice(&c->o, -1), NULL) != CURLM_OK) {
			r = -EIO;
			break;
		}
	}
	if (r == 0) {
		r = xfer_result(&c->x, code);
	} else {
		snprintf(resp->error, sizeof(resp->error), "libcurl failed");
		resp->status = 0;
	}
	curl_multi_remove_handle(c->multi, c->x.easy);
	return r;
}

/* ---- several at once ---------------------------------------------------- */

int http_multi_new(const struct http_options *o, size_t max_parallel, struct http_multi **ret)
{
	struct http_multi *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	defaults(&m->o, o);
	m->nx = max_parallel ? max_parallel : 1;
	m->multi = curl_multi_init();
	m->x = calloc(m->nx, sizeof(*m->x));
	m->busy = calloc(m->nx, sizeof(*m->busy));
	if (!m->multi || !m->x || !m->busy)
		goto fail;
	for (size_t i = 0; i < m->nx; i++)
		if (!(m->x[i].easy = curl_easy_init()))
			goto fail;
	curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)m->nx);
	*ret = m;
	return 0;
fail:
	http_multi_free(m);
	return -ENOMEM;
}

static void queued_free(struct queued *q)
{
	if (q) {
		if (q->strings)
			OPENSSL_cleanse(q->strings, q->strings_len);
		free(q->strings);
		free(q);
	}
}

void http_multi_free(struct http_multi *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->x && i < m->nx; i++) {
		if (m->busy && m->busy[i])
			curl_multi_remove_handle(m->multi, m->x[i].easy);
		xfer_free(&m->x[i]);
	}
	while (m->head) {
		struct queued *q = m->head;
		m->head = q->next;
		queued_free(q);
	}
	if (m->multi)
		curl_multi_cleanup(m->multi);
	free(m->x);
	free(m->busy);
	free(m);
}

/* One allocation for the copies of a request's strings. */
static int queued_copy(struct queued *q, const struct http_request *rq)
{
	size_t need = strlen(rq->method) + strlen(rq->url) + rq->body_len + 3;
	char *p;

	if (rq->nheaders > HTTP_MAX_HEADERS)
		return -EINVAL;
	for (size_t i = 0; i < rq->nheaders; i++)
		need += strlen(rq->headers[i].name) + strlen(rq->headers[i].value) + 2;
	p = q->strings = malloc(need);
	if (!p)
		return -ENOMEM;
	q->strings_len = need;
	q->rq = *rq;
	q->rq.method = strcpy(p, rq->method);
	p += strlen(p) + 1;
	q->rq.url = strcpy(p, rq->url);
	p += strlen(p) + 1;
	for (size_t i = 0; i < rq->nheaders; i++) {
		q->headers[i].name = strcpy(p, rq->headers[i].name);
		p += strlen(p) + 1;
		q->headers[i].value = strcpy(p, rq->headers[i].value);
		p += strlen(p) + 1;
	}
	q->rq.headers = q->headers;
	if (rq->body_len)
		memcpy(p, rq->body, rq->body_len);
	q->rq.body = p;
	return 0;
}

int http_multi_add(struct http_multi *m, const struct http_request *rq, struct http_response *resp, void *tag)
{
	struct queued *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	r = queued_copy(q, rq);
	if (r < 0) {
		queued_free(q);
		return r;
	}
	q->resp = resp;
	q->tag = tag;
	if (m->tail)
		m->tail->next = q;
	else
		m->head = q;
	m->tail = q;
	m->queued++;
	return 0;
}

size_t http_multi_pending(const struct http_multi *m)
{
	return m->queued + m->running;
}

/* Moves queued requests onto free handles.  A request that cannot be set up
 * finishes at once: its tag is returned through *tag with the error. */
static int start_queued(struct http_multi *m, void **tag, int *result)
{
	for (size_t i = 0; i < m->nx && m->head; i++) {
		struct queued *q;
		int r;

		if (m->busy[i])
			continue;
		q = m->head;
		m->head = q->next;
		if (!m->head)
			m->tail = NULL;
		m->queued--;
		r = xfer_setup(&m->x[i], &m->o, &q->rq, q->resp);
		m->x[i].tag = q->tag;
		if (r == 0 && curl_multi_add_handle(m->multi, m->x[i].easy) != CURLM_OK)
			r = -ENOMEM;
		if (r < 0) {
			snprintf(q->resp->error, sizeof(q->resp->error), "cannot start the request: %s", strerror(-r));
			*tag = q->tag;
			*result = r;
			queued_free(q);
			return 1;
		}
		queued_free(q);
		m->busy[i] = true;
		m->running++;
	}
	return 0;
}

int http_multi_next(struct http_multi *m, long timeout_ms, void **tag, int *result)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		CURLMsg *msg;
		struct timespec now;
		long left_ms;
		int left, still;
		bool received;

		if (start_queued(m, tag, result))
			return 1;
		while ((msg = curl_multi_info_read(m->multi, &left))) {
			struct xfer *x = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			*result = xfer_result(x, msg->data.result);
			*tag = x->tag;
			curl_multi_remove_handle(m->multi, x->easy);
			m->busy[x - m->x] = false;
			m->running--;
			return 1;
		}
		if (m->running == 0)
			return 0;
		if (curl_multi_perform(m->multi, &still) != CURLM_OK)
			return -EIO;
		if (still != (int)m->running)
			continue;	/* something finished: read it */
		clock_gettime(CLOCK_MONOTONIC, &now);
		left_ms = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
		if (timeout_ms >= 0 && left_ms <= 0)
			return 0;
		received = false;
		for (size_t i = 0; i < m->nx; i++)
			received |= take_received(&m->x[i]);
		waited(&m->o, &m->w, received);
		if (curl_multi_poll(m->multi, NULL, 0, poll_slice(&m->o, timeout_ms < 0 ? -1 : left_ms), NULL) !=
		    CURLM_OK)
			return -EIO;
	}
}
