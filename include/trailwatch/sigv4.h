/* sigv4.h: AWS Signature Version 4, in the Authorization header or in the
 * query string (presigned), for S3, STS and SQS requests.
 *
 * The caller describes the request as it will be sent: the path NOT yet
 * percent-encoded (sigv4_uri_encode() makes the wire form, so that what is
 * signed and what is sent are encoded by the same code), the query exactly as
 * on the wire, the headers to sign (Host at least) and the hex SHA-256 of the
 * body.  The signer adds X-Amz-Date, and x-amz-content-sha256 and
 * X-Amz-Security-Token when asked, to what it signs; the caller must send
 * them too (struct sigv4_signed says their values).
 *
 * Rules followed (AWS "Create a canonical request"; the official test suite
 * in tests):
 *   - S3 (normalize false): the path is encoded once, '/' kept, nothing
 *     removed: "//a/./b" stays as it is.  Other services (normalize true):
 *     "." and ".." segments and empty segments are removed first.
 *   - Every byte but A-Z a-z 0-9 - _ . ~ is %XX with upper-case hex.
 *   - Query parameters are decoded, re-encoded and sorted by name, then
 *     value ('+' is a literal plus, not a space).
 *   - Header names are lower-cased; values trimmed and their runs of
 *     whitespace (also folded lines) made one space; repeated headers joined
 *     with ',' in the order given.
 */
#ifndef TRAILWATCH_SIGV4_H
#define TRAILWATCH_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trailwatch/buf.h"

#define SIGV4_HEX 65			/* 64 hex digits and a NUL */
#define SIGV4_MAX_HEADERS 64		/* headers one request may sign */
#define SIGV4_MAX_PARAMS 256		/* query parameters one request may have */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* temporary credentials; else NULL */
};

struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;		/* "GET" */
	const char *path;		/* not encoded: "/bucket/key with space"; "" is "/" */
	const char *query;		/* as sent, without '?'; NULL or "" for none */
	const struct sigv4_header *headers;	/* to sign; must include Host */
	size_t nheaders;
	const char *payload_hash;	/* hex SHA-256 of the body (sigv4_sha256_hex) */
};

struct sigv4_scope {
	const char *region;		/* "us-east-1" */
	const char *service;		/* "s3", "sts", "sqs" */
	int64_t time;			/* the signing time, seconds since the epoch */
	bool normalize;			/* remove dot and empty path segments (not S3) */
	bool sign_payload;		/* add and sign x-amz-content-sha256 (S3) */
	bool omit_session_token;	/* sign without the token; the header form's caller
					 * then sends X-Amz-Security-Token unsigned, the query
					 * form appends it after the signature */
	long expires;			/* query form only: X-Amz-Expires, seconds */
};

/* The signing key of one day, region and service, kept between requests.
 * Zero-initialise; no resources to free. */
struct sigv4_key_cache {
	bool valid;
	char scope[128];		/* "20261127/us-east-1/s3/aws4_request" */
	unsigned char secret_hash[32];	/* SHA-256 of the secret it was made from */
	unsigned char key[32];
};

/* What to send.  Initialise with sigv4_signed_init, release with
 * sigv4_signed_free; reusable for the next request. */
struct sigv4_signed {
	char amz_date[17];		/* X-Amz-Date: 20261127T101500Z */
	char signature[SIGV4_HEX];
	struct buf authorization;	/* header form: the Authorization value */
	struct buf query;		/* query form: the whole query to send */
	struct buf canonical;		/* the canonical request (for tests) */
	struct buf string_to_sign;	/* (for tests) */
};

void sigv4_signed_init(struct sigv4_signed *s);
void sigv4_signed_free(struct sigv4_signed *s);

/* Signs rq in the Authorization-header form.  The caller sends rq's headers
 * plus X-Amz-Date: out->amz_date, Authorization: out->authorization, and,
 * when sc->sign_payload, x-amz-content-sha256: rq->payload_hash, and, with a
 * session token, X-Amz-Security-Token.  cache may be NULL.  -EINVAL when the
 * request cannot be signed (no Host, too many headers or parameters, a bad
 * %-escape in the query, a header name with ':' or control characters,
 * a value with control characters other than folding), -ENOMEM. */
int sigv4_sign_header(const struct sigv4_credentials *cred, const struct sigv4_scope *sc,
		      const struct sigv4_request *rq, struct sigv4_key_cache *cache, struct sigv4_signed *out);

/* Signs rq in the presigned-query form: out->query is the query string to
 * send instead of rq->query (X-Amz-* parameters and the signature added).
 * The same errors. */
int sigv4_sign_query(const struct sigv4_credentials *cred, const struct sigv4_scope *sc,
		     const struct sigv4_request *rq, struct sigv4_key_cache *cache, struct sigv4_signed *out);

/* Appends s[0..len) percent-encoded as SigV4 wants it (upper-case hex,
 * unreserved bytes kept; '/' kept when keep_slash: for paths).  -E2BIG,
 * -ENOMEM from the buffer. */
int sigv4_uri_encode(struct buf *out, const char *s, size_t len, bool keep_slash);

/* hex SHA-256 of p[0..n). */
void sigv4_sha256_hex(const void *p, size_t n, char out[SIGV4_HEX]);

#endif
