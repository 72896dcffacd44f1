/* s3xml.h: the XML that S3 and STS send back, parsed with libexpat.
 *
 * Three parsers share one small engine (see s3xml.c):
 *
 *   - ListObjectsV2 pages, streamed: feed the body as it arrives, and each
 *     <Contents> reaches a callback as soon as its closing tag is parsed, each
 *     <CommonPrefixes><Prefix> another one.  A page is never held whole.
 *   - error documents, S3's <Error> and STS's <ErrorResponse><Error>.
 *   - STS AssumeRole / AssumeRoleWithWebIdentity credentials.
 *
 * Every size that comes from the server is bounded (the constants below);
 * exceeding a bound is an error that names it.  A DOCTYPE is refused outright,
 * so no entity is ever declared or expanded.  Namespaces are accepted and
 * ignored: elements are matched by local name.
 *
 * Errors: 0 on success; -EINVAL for a document that is not what was expected,
 * with msg (msglen bytes, always NUL-terminated; msg may be NULL when msglen is
 * 0) filled with e.g. "line 3, column 17: not well-formed (invalid token)" or
 * "line 1, column 80: Key longer than 4096 bytes"; -ENOMEM; or the negative
 * value a callback returned.  Results are written only on success.  Nothing
 * here logs, and no error message ever quotes a credential.
 */
#ifndef TRAILWATCH_S3XML_H
#define TRAILWATCH_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds.  The text of one element (S3 keys are at most 1024 bytes of UTF-8,
 * continuation tokens are well below this): */
#define S3XML_MAX_TEXT 4096
/* An STS session token: AWS fixes no maximum (session policies and tags make
 * it longer); the credentials module takes up to this many bytes too: */
#define S3XML_MAX_SESSION_TOKEN (16u << 10)
/* Elements open at once, the root included (S3 and STS documents use 4): */
#define S3XML_MAX_DEPTH 16
/* Bytes of one document, counted as fed: */
#define S3XML_MAX_DOCUMENT (16u << 20)
/* Contents plus CommonPrefixes in one ListObjectsV2 page (S3 sends at most 1000): */
#define S3XML_MAX_ENTRIES 10000

/* ---- ListObjectsV2 ---- */

/* One <Contents>.  The strings are NUL-terminated and valid only during the
 * callback.  key is URL-decoded when the page is URL-encoded (see
 * s3xml_list_new); it is valid UTF-8 without NUL bytes either way. */
struct s3xml_object {
	const char *key;
	size_t key_len;
	int64_t size;			/* bytes, >= 0 */
	int64_t last_modified;		/* LastModified in seconds since the epoch */
	const char *etag;		/* ETag without its quotes; "" when absent */
	size_t etag_len;
};

/* Callbacks return 0 to go on; a negative value stops parsing and is returned
 * by s3xml_feed/s3xml_finish (and then by every later call). */
typedef int (*s3xml_object_fn)(const struct s3xml_object *obj, void *userdata);
/* One <CommonPrefixes><Prefix>, decoded like keys; valid during the call. */
typedef int (*s3xml_prefix_fn)(const char *prefix, size_t len, void *userdata);

/* The rest of the page, known after s3xml_finish.  The strings are
 * NUL-terminated, NULL when the element was absent, and owned by the parser:
 * valid until s3xml_list_free. */
struct s3xml_list_result {
	bool is_truncated;		/* IsTruncated (required) */
	int64_t key_count;		/* KeyCount, -1 when absent */
	const char *next_token;		/* NextContinuationToken exactly as sent, never decoded;
					 * required when is_truncated */
	const char *encoding_type;	/* EncodingType: NULL or "url" */
	const char *prefix;		/* Prefix, Delimiter, StartAfter: decoded like keys */
	const char *delimiter;
	const char *start_after;
	size_t contents;		/* <Contents> delivered */
	size_t common_prefixes;		/* <CommonPrefixes><Prefix> delivered */
};

struct s3xml_list;

/* A parser for one ListObjectsV2 response body.  url_encoded says whether the
 * request carried encoding-type=url: the page must then say
 * <EncodingType>url</EncodingType> and Key, Prefix (top level and in
 * CommonPrefixes), StartAfter and Delimiter are percent-decoded, '+' as a
 * space; otherwise a page with an EncodingType is refused.  The flag comes
 * from the caller because servers may put EncodingType after the first
 * <Contents> (MinIO puts it last), when keys have already been delivered.
 * Either callback may be NULL.  Returns 0 and *ret, to be freed with
 * s3xml_list_free, or -ENOMEM. */
int s3xml_list_new(bool url_encoded, s3xml_object_fn on_object, s3xml_prefix_fn on_prefix,
		   void *userdata, struct s3xml_list **ret);

/* Accepts NULL. */
void s3xml_list_free(struct s3xml_list *x);

/* Parses the next len bytes of the body (any split, down to one byte) and
 * calls the callbacks for the entries they complete.  After an error every
 * later call returns the same error and message. */
int s3xml_feed(struct s3xml_list *x, const void *data, size_t len, char *msg, size_t msglen);

/* Ends the body: checks that the document is complete and that IsTruncated
 * (and NextContinuationToken when it is true) were present, then fills *ret.
 * Call once, after the last s3xml_feed.  Entries already delivered belong to
 * a page that may still fail here: act on them only after success. */
int s3xml_finish(struct s3xml_list *x, struct s3xml_list_result *ret, char *msg, size_t msglen);

/* ---- Error documents ---- */

#define S3XML_ERROR_CODE_SIZE 256	/* buffer sizes, NUL included */
#define S3XML_ERROR_MESSAGE_SIZE 1024
#define S3XML_ERROR_REQUEST_ID_SIZE 128

/* Longer values are truncated at a UTF-8 character boundary.  Empty when the
 * element was absent, except code, which is required. */
struct s3xml_error {
	char code[S3XML_ERROR_CODE_SIZE];		/* e.g. "SlowDown", "ExpiredToken" */
	char message[S3XML_ERROR_MESSAGE_SIZE];
	char request_id[S3XML_ERROR_REQUEST_ID_SIZE];
};

/* Parses an S3 error, <Error><Code/><Message/><RequestId/></Error>, or an
 * STS one, <ErrorResponse><Error><Type/><Code/><Message/></Error>
 * <RequestId/></ErrorResponse>, from a whole body of len bytes (at most
 * S3XML_MAX_DOCUMENT).  Other elements (S3 adds Resource, HostId,
 * StringToSign...) are ignored, however long their text. */
int s3xml_parse_error(const void *data, size_t len, struct s3xml_error *ret, char *msg, size_t msglen);

/* ---- STS credentials ---- */

#define S3XML_ACCESS_KEY_ID_SIZE 129	/* buffer sizes, NUL included */
#define S3XML_SECRET_KEY_SIZE 129
#define S3XML_SESSION_TOKEN_SIZE (S3XML_MAX_SESSION_TOKEN + 1)

/* Secrets: the caller wipes this (explicit_bzero) when done with it. */
struct s3xml_credentials {
	char access_key_id[S3XML_ACCESS_KEY_ID_SIZE];
	char secret_access_key[S3XML_SECRET_KEY_SIZE];
	char session_token[S3XML_SESSION_TOKEN_SIZE];
	int64_t expiration;		/* Expiration in seconds since the epoch */
};

/* Parses an <AssumeRoleResponse> or <AssumeRoleWithWebIdentityResponse> body
 * of len bytes (at most S3XML_MAX_DOCUMENT): the four elements of
 * <Credentials> are all required, and a value that does not fit its buffer
 * is an error.  The parser's own copies of the values are wiped before it
 * returns (libexpat's internal buffers are not). */
int s3xml_parse_credentials(const void *data, size_t len, struct s3xml_credentials *ret,
			    char *msg, size_t msglen);

#endif
