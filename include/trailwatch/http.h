/* http.h: HTTP requests through libcurl, one at a time or several at once.
 *
 * TLS is always verified; connections are reused between requests of one
 * client; redirects are never followed; every response body lands in a
 * bounded buffer or goes to a callback (a streaming parser).  This module
 * knows nothing about AWS: it reports the status, Retry-After, Location and
 * x-amz-request-id, and the caller decides about retries.  Nothing here
 * logs; transport errors come back with curl's message in the response.
 *
 * Every request has a total deadline (timeout_ms: the request's, or the
 * client's default of 60 s; with min_rate it grows with the answer's
 * length), a connect timeout, and a low-speed limit (stopped after
 * low_speed_seconds below 1 byte/s, also while waiting for the answer to
 * begin): none can hang.  While requests are in flight the caller can be
 * called back (http_options.on_wait) to do other work and to learn whether
 * the transfers are getting anywhere.
 *
 * A client and a multi are used by one thread at a time.
 */
#ifndef TRAILWATCH_HTTP_H
#define TRAILWATCH_HTTP_H

#include <stdbool.h>
#include <signal.h>
#include <stddef.h>

#include "trailwatch/buf.h"

#define HTTP_MAX_HEADERS 32
#define HTTP_ERROR_SIZE 256
#define HTTP_LOCATION_SIZE 512
#define HTTP_DISCARD_MAX (1u << 20)	/* bytes thrown away after a kept start, then the transfer stops */
#define HTTP_WAIT_MS 100		/* on_wait is called about this often while requests are in flight */

struct http_header {
	const char *name;
	const char *value;
};

struct http_request {
	const char *method;		/* "GET", "PUT", "POST", "HEAD" */
	const char *url;
	const struct http_header *headers;
	size_t nheaders;		/* at most HTTP_MAX_HEADERS */
	const char *body;		/* copied when the request is started */
	size_t body_len;
	long timeout_ms;		/* whole request; 0: the client's default */
	long connect_timeout_ms;	/* 0: the client's default */
	/* Bytes per second the answer must average, or 0.  With it the
	 * deadline is timeout_ms plus the answer's length (Content-Length, or
	 * the bytes received so far when larger) at this rate, and never more
	 * than timeout_ms plus the body's limit at this rate: a large object
	 * gets the time it needs, a stalled one does not. */
	long min_rate;
};

/* Where a response goes.  Initialise with http_response_init (the body's
 * size limit), release with http_response_free; reusable. */
struct http_response {
	long status;			/* 0 when no response arrived */
	struct buf body;		/* the body, unless on_data is set */
	/* Streaming instead: called for each piece of the body of a 2xx
	 * response (other bodies still go to `body`, for the error document).
	 * A negative return stops the transfer and is returned. */
	int (*on_data)(void *ctx, const char *p, size_t n);
	void *ctx;
	/* Set by the caller: a body longer than body's limit is not an error.
	 * Its first `limit` bytes are kept, the rest is read and thrown away
	 * (so the connection can be reused), body_cut is set, and the result
	 * is that of the status.  After HTTP_DISCARD_MAX bytes thrown away the
	 * transfer is stopped (the connection closed) and the status still
	 * stands.  For callers that act on the status alone (webhooks); unset,
	 * as http_response_init leaves it, for those that need the whole body
	 * (S3, STS): there a body past the limit is -E2BIG. */
	bool keep_start;
	bool body_cut;			/* with keep_start: the body was longer than its limit */
	/* With -EIO: the request passed its deadline or the low-speed limit
	 * (error says which), as opposed to a refused or broken connection. */
	bool timed_out;
	long retry_after;		/* seconds from Retry-After, -1 when absent */
	char location[HTTP_LOCATION_SIZE];	/* Location, cut to fit, or "" (as sent: may be relative) */
	char request_id[80];		/* x-amz-request-id, or "" */
	char error[HTTP_ERROR_SIZE];	/* what went wrong, when not 0 is returned */
	int data_error;			/* on_data's error, internal */
	size_t discarded;		/* with keep_start: bytes thrown away, internal */
};

void http_response_init(struct http_response *r, size_t body_limit);
void http_response_free(struct http_response *r);

struct http_options {
	long timeout_ms;		/* default 60000 */
	long connect_timeout_ms;	/* default 10000 */
	long low_speed_seconds;		/* abort below 1 byte/s for this long; default 30 */
	const char *ca_file;		/* NULL: the system's */
	const char *user_agent;		/* NULL: "trailwatch/VERSION" */
	/* When *cancel becomes non-zero (a signal handler sets it), transfers
	 * in progress are abandoned within about a second and fail with
	 * -ECANCELED.  NULL: never. */
	volatile sig_atomic_t *cancel;
	/* Called about every HTTP_WAIT_MS while http_perform or
	 * http_multi_next waits for transfers, never from inside a libcurl
	 * callback, so it may use other clients and multis (not this one).
	 * received: whether any byte of an answer arrived since the previous
	 * call.  NULL: none. */
	void (*on_wait)(void *ctx, bool received);
	void *wait_ctx;
};

struct http_client;

int http_client_new(const struct http_options *o, struct http_client **ret);
void http_client_free(struct http_client *c);

/* Performs one request.  0 when a response arrived, whatever its status
 * (resp->status; a 3xx is returned as it is, not followed); -EIO for a
 * transport failure (DNS, connect, TLS, a deadline: resp->error says which,
 * resp->timed_out whether it was a deadline);
 * -E2BIG when the body passed its limit (never with keep_start); on_data's
 * negative value; -ENOMEM; -EINVAL for a bad request. */
int http_perform(struct http_client *c, const struct http_request *rq, struct http_response *resp);

/* Several requests in flight at once (libcurl multi), at most max_parallel;
 * the rest wait their turn.  Each request's response and tag belong to the
 * caller until http_multi_next hands the tag back. */
struct http_multi;

int http_multi_new(const struct http_options *o, size_t max_parallel, struct http_multi **ret);
void http_multi_free(struct http_multi *m);

/* Queues a request.  rq's strings are copied; resp must live until its tag
 * comes back from http_multi_next.  -ENOMEM, -EINVAL. */
int http_multi_add(struct http_multi *m, const struct http_request *rq, struct http_response *resp, void *tag);

/* Runs transfers until one finishes: returns 1 with its tag and its result
 * (what http_perform would have returned) in *result; 0 when nothing is
 * queued or running, or when timeout_ms passed first (a negative timeout
 * waits as long as it takes); -ENOMEM / -EIO when curl itself fails. */
int http_multi_next(struct http_multi *m, long timeout_ms, void **tag, int *result);

/* Requests queued or running. */
size_t http_multi_pending(const struct http_multi *m);

/* curl_global_init; call once at startup before any thread exists. */
int http_global_init(void);

#endif
