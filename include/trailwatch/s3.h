/* s3.h: the few S3 calls trailwatch makes - ListObjectsV2 and GetObject -
 * signed with SigV4, retried the way AWS asks.
 *
 * Retries: 5xx, 429, SlowDown and the other throttling codes, and transport
 * failures are retried with exponential backoff and full jitter (base
 * backoff_ms, at most backoff_max_ms, max_attempts in all), never sooner
 * than the server's Retry-After.  An expired token is retried once with
 * credentials asked for again.  403, 404 and the other 4xx are reported at
 * once.  A retry wait ends early when *stop becomes non-zero (-ECANCELED).
 *
 * Deadlines: a LIST page must be complete within request_timeout_ms, a GET
 * within request_timeout_ms plus its length at S3_GET_MIN_RATE; any
 * request is also stopped after 30 s below 1 byte/s (http.h).  A request
 * that passes its deadline is not tried again here (-ETIMEDOUT): an
 * endpoint that does not answer would otherwise cost max_attempts times the
 * deadline; the caller tries again at its next poll.
 *
 * Errors come back as a negative errno and a message naming the request:
 * "GET s3://trail/AWSLogs/..json.gz: 403 AccessDenied: Access Denied
 * (request id 4X2...)".  -ENOENT for 404, -EACCES for 403, -EAGAIN when the
 * retries ran out, -ETIMEDOUT for a deadline, -EPROTO for a listing that
 * does not end (s3_list), -EIO
 * for other failures, -E2BIG for an object over its limit.  Nothing here
 * logs.  One client is used by one thread.
 */
#ifndef TRAILWATCH_S3_H
#define TRAILWATCH_S3_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/buf.h"
#include "trailwatch/s3xml.h"
#include "trailwatch/sigv4.h"

#define S3_MSG 512		/* a good size for message buffers */
/* Pages of one listing (a million keys at S3's 1000 a page): a server still
 * saying IsTruncated after that is taken to be going round in circles. */
#define S3_LIST_MAX_PAGES 1000
/* Bytes per second a GET's answer must average past request_timeout_ms
 * (1 Mbit/s: a 50 MB object gets 60 s + 400 s, a 256 MiB one 60 s + 34 min). */
#define S3_GET_MIN_RATE (128L << 10)

/* Asked before every request: fills *out with the current credentials
 * (their strings stay valid until the next call).  0 or a negative errno
 * with msg filled. */
typedef int (*s3_creds_fn)(void *ctx, struct sigv4_credentials *out, char *msg, size_t msglen);

struct s3_config {
	const char *bucket;
	const char *region;
	const char *endpoint;		/* "https://host[:port]" or NULL for AWS's */
	bool path_style;		/* https://host/bucket/key instead of https://bucket.host/key */
	size_t max_object;		/* bytes of one object; 0: 1 GiB */
	int max_attempts;		/* 0: 6 */
	long backoff_ms;		/* 0: 200 */
	long backoff_max_ms;		/* 0: 20000 */
	size_t parallel;		/* GETs in flight at once; 0: 4 */
	size_t list_parallel;		/* listings in flight at once (s3_list_many); 0: 16 */
	long request_timeout_ms;	/* see "Deadlines" above; 0: 60000 */
	const char *ca_file;		/* NULL: the system's */
	volatile sig_atomic_t *stop;	/* may be NULL */
	/* Called while s3 waits - about every HTTP_WAIT_MS while a request is
	 * in flight, and during a retry's backoff - never from inside libcurl,
	 * so the caller may do other work there (not with this client).
	 * progressed: since the previous call, bytes of an answer arrived, a
	 * request ended (answered or cut by its deadline), or a backoff is
	 * being waited out; false while every request in flight is silent.
	 * NULL: none. */
	void (*on_wait)(void *ctx, bool progressed);
	void *wait_ctx;
};

/* Request counters, for the cost figures in the docs and the tests. */
struct s3_stats {
	unsigned long lists, gets, retries, throttled, failures;
	unsigned long long bytes;
};

struct s3_client;

/* -EINVAL (bad bucket name or endpoint: msg), -ENOMEM. */
int s3_client_new(const struct s3_config *c, s3_creds_fn creds, void *creds_ctx, struct s3_client **ret,
		  char *msg, size_t msglen);
void s3_client_free(struct s3_client *s);

struct s3_list_params {
	const char *prefix;		/* NULL: the whole bucket */
	const char *delimiter;		/* NULL: none */
	const char *start_after;	/* NULL: from the start */
	int max_keys;			/* 0: S3's default (1000) */
};

/* Lists every key (and common prefix) under p, page after page, calling
 * on_object / on_prefix (either may be NULL) in key order.  A page that
 * fails half-way is fetched again, so a callback may see an entry twice:
 * callbacks must be idempotent.  A callback's negative return stops the
 * listing and is returned.  A listing that would not end is -EPROTO, with
 * msg naming the bucket, the prefix and the problem: a page that says
 * IsTruncated with an empty NextContinuationToken, or with one already
 * asked for in this listing (the same page again, or a cycle), or more than
 * S3_LIST_MAX_PAGES pages.  The entries of the pages before were delivered. */
int s3_list(struct s3_client *s, const struct s3_list_params *p, s3xml_object_fn on_object,
	    s3xml_prefix_fn on_prefix, void *userdata, char *msg, size_t msglen);

/* One listing of s3_list_many: p, on_object and userdata are the caller's
 * (as for s3_list, without prefixes); result and msg are written. */
struct s3_list_job {
	struct s3_list_params p;
	s3xml_object_fn on_object;
	void *userdata;
	int result;			/* what s3_list would have returned */
	char msg[S3_MSG];		/* with result < 0 (not for a callback's own error) */
};

/* Runs several listings, up to list_parallel requests in flight at once,
 * each page after page in its own key order exactly as s3_list does (the
 * same retries, deadlines and checks of the continuation token).  A job's
 * callback stopping it ends that job only.  Returns 0 when every job ran
 * (each with its own result), -ECANCELED after a stop (jobs not finished
 * get -ECANCELED), -ENOMEM / -EIO when the transfer machinery failed. */
int s3_list_many(struct s3_client *s, struct s3_list_job *jobs, size_t njobs);

/* Fetches one object into out (reset first; bounded by max_object). */
int s3_get(struct s3_client *s, const char *key, struct buf *out, char *msg, size_t msglen);

/* Fetches several objects, up to `parallel` at once: done is called for
 * each, in completion order, with the object or the error (and its
 * message); data is valid during the call.  done's negative return stops
 * the batch and is returned; otherwise 0 once every key was done. */
typedef int (*s3_fetched_fn)(void *ctx, size_t index, const char *key, int err, const char *data, size_t len,
			     const char *msg);
int s3_get_many(struct s3_client *s, const char *const *keys, size_t nkeys, s3_fetched_fn done, void *ctx);

void s3_stats(const struct s3_client *s, struct s3_stats *ret);

/* "s3://bucket/key" into out (for alerts' log_object and messages). */
void s3_object_name(const struct s3_client *s, const char *key, char *out, size_t outlen);

#endif
