/* fuzz_s3xml: the S3/STS XML parsers on arbitrary bytes.
 *
 * The input is the document.  The listing parser reads it twice for each
 * encoding mode: fed whole, and fed in chunks of 1..64 bytes whose lengths
 * come from the input itself (the byte at each chunk's start), so chunk
 * boundaries move as the fuzzer mutates.  Both runs must see the same
 * callbacks and the same result, or the target aborts.  One callback call,
 * chosen by the input's length, fails, to cover callback errors.  The
 * error-document and STS parsers read the input whole.
 *
 * libexpat itself is not instrumented, so the fuzzer sees progress only
 * through the handlers here: seed it with real responses and a dictionary of
 * the element names. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a over everything the callbacks and the result hand out. */
struct digest {
	uint64_t h;
	unsigned calls;
	unsigned stop_at;	/* the callback call that fails, to cover callback errors */
};

static void mix(struct digest *d, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		d->h = (d->h ^ b[i]) * UINT64_C(0x100000001b3);
}

static void mix_str(struct digest *d, const char *s, size_t len)
{
	if (strlen(s) != len)	/* the length must match the NUL-terminated text */
		abort();
	mix(d, &len, sizeof(len));
	mix(d, s, len);
}

static int on_object(const struct s3xml_object *o, void *userdata)
{
	struct digest *d = userdata;

	mix(d, "O", 1);
	mix_str(d, o->key, o->key_len);
	mix_str(d, o->etag, o->etag_len);
	mix(d, &o->size, sizeof(o->size));
	mix(d, &o->last_modified, sizeof(o->last_modified));
	return ++d->calls == d->stop_at ? -ECANCELED : 0;
}

static int on_prefix(const char *prefix, size_t len, void *userdata)
{
	struct digest *d = userdata;

	mix(d, "P", 1);
	mix_str(d, prefix, len);
	return ++d->calls == d->stop_at ? -ECANCELED : 0;
}

static void mix_opt(struct digest *d, const char *s)
{
	mix(d, s ? "s" : "n", 1);
	if (s)
		mix_str(d, s, strlen(s));
}

/* Parses the input, whole or chunked; returns the error and fills d. */
static int run_list(const uint8_t *data, size_t size, bool url, bool chunked, struct digest *d)
{
	struct s3xml_list_result res;
	struct s3xml_list *x;
	char msg[128];
	size_t off = 0, n;
	int r;

	msg[0] = '\0';
	d->h = UINT64_C(0xcbf29ce484222325);
	d->calls = 0;
	d->stop_at = 1 + size % 16;
	r = s3xml_list_new(url, on_object, on_prefix, d, &x);
	if (r < 0)
		return r;
	while (r == 0 && off < size) {
		n = chunked ? 1 + (size_t)data[off] % 64 : size;
		if (n > size - off)
			n = size - off;
		r = s3xml_feed(x, data + off, n, msg, sizeof(msg));
		off += n;
	}
	if (r == 0)
		r = s3xml_finish(x, &res, msg, sizeof(msg));
	if (r == 0) {
		mix(d, &res.is_truncated, sizeof(res.is_truncated));
		mix(d, &res.key_count, sizeof(res.key_count));
		mix(d, &res.contents, sizeof(res.contents));
		mix(d, &res.common_prefixes, sizeof(res.common_prefixes));
		mix_opt(d, res.next_token);
		mix_opt(d, res.encoding_type);
		mix_opt(d, res.prefix);
		mix_opt(d, res.delimiter);
		mix_opt(d, res.start_after);
	}
	if (!memchr(msg, '\0', sizeof(msg)))	/* always NUL-terminated */
		abort();
	s3xml_list_free(x);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3xml_credentials creds;
	struct s3xml_error err;
	char msg[128];

	for (int url = 0; url <= 1; url++) {
		struct digest whole, chunks;
		int a = run_list(data, size, url, false, &whole);
		int b = run_list(data, size, url, true, &chunks);

		if (a == -ENOMEM || b == -ENOMEM)
			continue;
		if (a != b || whole.h != chunks.h || whole.calls != chunks.calls)
			abort();
	}
	if (s3xml_parse_error(data, size, &err, msg, sizeof(msg)) == 0 &&
	    (strlen(err.code) == 0 || strlen(err.code) >= sizeof(err.code) ||
	     strlen(err.message) >= sizeof(err.message) || strlen(err.request_id) >= sizeof(err.request_id)))
		abort();
	if (s3xml_parse_credentials(data, size, &creds, msg, sizeof(msg)) == 0 &&
	    (!creds.access_key_id[0] || !creds.secret_access_key[0] || !creds.session_token[0]))
		abort();
	return 0;
}
