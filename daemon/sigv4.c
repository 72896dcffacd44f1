/* sigv4.c: AWS Signature Version 4 (see sigv4.h), with OpenSSL's SHA-256
 * and HMAC.  The canonical request is built in four parts - path, query,
 * headers, payload hash - each by its own function below. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "trailwatch/hex.h"
#include "trailwatch/sigv4.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* One query parameter or header, already in canonical form. */
struct pair {
	char *name;
	char *value;
	size_t order;		/* position as given: repeated headers keep it */
};

struct pairs {
	struct pair *v;
	size_t n, max;
};

static void pairs_free(struct pairs *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].value);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* Takes ownership of name and value (also on failure). */
static int pairs_add(struct pairs *p, char *name, char *value)
{
	if (!name || !value) {
		free(name);
		free(value);
		return -ENOMEM;
	}
	if (p->n == p->max) {
		free(name);
		free(value);
		return -EINVAL;
	}
	p->v[p->n].name = name;
	p->v[p->n].value = value;
	p->v[p->n].order = p->n;
	p->n++;
	return 0;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_param(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *p, size_t n, char out[SIGV4_HEX])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(p, n, md);
	hex(md, sizeof(md), out);
}

static int hmac(const void *key, size_t keylen, const char *msg, size_t len, unsigned char out[32])
{
	unsigned int outlen = 32;

	return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, len, out, &outlen) ? 0 : -ENOMEM;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_' || c == '.' || c == '~';
}

int sigv4_uri_encode(struct buf *out, const char *s, size_t len, bool keep_slash)
{
	static const char digits[] = "0123456789ABCDEF";
	int r = buf_reserve(out, 3 * len);

	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char *o = out->data + out->len;

		if (unreserved(c) || (keep_slash && c == '/')) {
			o[0] = (char)c;
			out->len++;
		} else {
			o[0] = '%';
			o[1] = digits[c >> 4];
			o[2] = digits[c & 15];
			out->len += 3;
		}
	}
	buf_set_len(out, out->len);
	return 0;
}

/* A malloc'd NUL-terminated copy of b's contents; b is reset. */
static char *take(struct buf *b)
{
	char *s = malloc(b->len + 1);

	if (s) {
		memcpy(s, b->data ? b->data : "", b->len);
		s[b->len] = '\0';
	}
	buf_reset(b);
	return s;
}

/* Decodes %XX escapes of s[0..len) and encodes the result canonically;
 * a malloc'd string in *ret.  -EINVAL for a bad escape. */
static int recode(const char *s, size_t len, char **ret)
{
	struct buf raw, enc;
	int r = 0;

	buf_init(&raw, 0);
	buf_init(&enc, 0);
	for (size_t i = 0; i < len && r == 0; i++) {
		char c = s[i];
		if (c == '%') {
			int hi = i + 2 < len ? hex_digit(s[i + 1]) : -1;
			int lo = i + 2 < len ? hex_digit(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				r = -EINVAL;
				break;
			}
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		r = buf_append(&raw, &c, 1);
	}
	if (r == 0)
		r = sigv4_uri_encode(&enc, raw.data ? raw.data : "", raw.len, false);
	if (r == 0) {
		*ret = take(&enc);
		if (!*ret)
			r = -ENOMEM;
	}
	buf_free(&raw);
	buf_free(&enc);
	return r;
}

/* The canonical URI: path encoded once; with normalize, "." "..", and empty
 * segments removed first (a trailing '/' stays). */
static int canonical_path(struct buf *out, const char *path, bool normalize)
{
	const char *seg[256];
	size_t seglen[256], n = 0, len = strlen(path);
	int r;

	if (len == 0)
		return buf_append(out, "/", 1);
	if (!normalize)
		return sigv4_uri_encode(out, path, len, true);
	for (const char *p = path; p < path + len;) {
		const char *e = memchr(p, '/', (size_t)(path + len - p));
		size_t l = e ? (size_t)(e - p) : (size_t)(path + len - p);

		if (l == 2 && p[0] == '.' && p[1] == '.') {
			if (n)
				n--;
		} else if (l > 0 && !(l == 1 && p[0] == '.')) {
			if (n == sizeof(seg) / sizeof(seg[0]))
				return -EINVAL;
			seg[n] = p;
			seglen[n++] = l;
		}
		p += l + 1;
	}
	r = buf_append(out, "/", 1);
	for (size_t i = 0; i < n && r == 0; i++) {
		r = sigv4_uri_encode(out, seg[i], seglen[i], false);
		if (r == 0 && (i + 1 < n || path[len - 1] == '/'))
			r = buf_append(out, "/", 1);
	}
	return r;
}

/* The request's query parameters, canonical, into params. */
static int parse_query(struct pairs *params, const char *q)
{
	int r = 0;

	while (q && *q && r == 0) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		char *name = NULL, *value = NULL;

		if (len > 0) {
			r = recode(q, klen, &name);
			if (r == 0)
				r = eq ? recode(eq + 1, len - klen - 1, &value) : ((value = strdup("")) ? 0 : -ENOMEM);
			if (r == 0)
				r = pairs_add(params, name, value);
			else {
				free(name);
				free(value);
			}
		}
		q = amp ? amp + 1 : NULL;
	}
	return r;
}

/* A parameter given in clear (X-Amz-*), encoded. */
static int add_param(struct pairs *params, const char *name, const char *value)
{
	struct buf b;
	char *n, *v;

	buf_init(&b, 0);
	if (sigv4_uri_encode(&b, name, strlen(name), false) < 0) {
		buf_free(&b);
		return -ENOMEM;
	}
	n = take(&b);
	if (sigv4_uri_encode(&b, value, strlen(value), false) < 0) {
		buf_free(&b);
		free(n);
		return -ENOMEM;
	}
	v = take(&b);
	buf_free(&b);
	return pairs_add(params, n, v);
}

/* name lower-cased, value trimmed with inner whitespace runs made one space. */
static int add_header(struct pairs *headers, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen = strlen(value), o = 0;
	char *n, *v;
	bool space = false;

	if (nlen == 0)
		return -EINVAL;
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == ':' || c >= 0x7f)
			return -EINVAL;
	}
	n = malloc(nlen + 1);
	v = malloc(vlen + 1);
	if (n && v) {
		for (size_t i = 0; i <= nlen; i++)
			n[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
		for (size_t i = 0; i < vlen; i++) {
			char c = value[i];
			if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
				space = o > 0;
				continue;
			}
			if ((unsigned char)c < 0x20 || c == 0x7f) {
				free(n);
				free(v);
				return -EINVAL;
			}
			if (space)
				v[o++] = ' ';
			space = false;
			v[o++] = c;
		}
		v[o] = '\0';
	}
	return pairs_add(headers, n, v);
}

/* The signing key for the scope, from the cache when it is the same day,
 * region, service and secret. */
static int signing_key(const struct sigv4_credentials *cred, const char *date, const struct sigv4_scope *sc,
		       const char *scope, struct sigv4_key_cache *cache, unsigned char key[32])
{
	unsigned char secret_hash[32], k[32];
	size_t slen = strlen(cred->secret_access_key);
	char *start = malloc(slen + 5);
	int r;

	if (!start)
		return -ENOMEM;
	SHA256((const unsigned char *)cred->secret_access_key, slen, secret_hash);
	if (cache && cache->valid && strcmp(cache->scope, scope) == 0 &&
	    memcmp(cache->secret_hash, secret_hash, 32) == 0) {
		memcpy(key, cache->key, 32);
		free(start);
		return 0;
	}
	memcpy(start, "AWS4", 4);
	memcpy(start + 4, cred->secret_access_key, slen + 1);
	r = hmac(start, slen + 4, date, strlen(date), k);
	if (r == 0)
		r = hmac(k, 32, sc->region, strlen(sc->region), k);
	if (r == 0)
		r = hmac(k, 32, sc->service, strlen(sc->service), k);
	if (r == 0)
		r = hmac(k, 32, "aws4_request", 12, k);
	OPENSSL_cleanse(start, slen + 5);
	free(start);
	if (r < 0)
		return r;
	memcpy(key, k, 32);
	if (cache && strlen(scope) < sizeof(cache->scope)) {
		strcpy(cache->scope, scope);
		memcpy(cache->secret_hash, secret_hash, 32);
		memcpy(cache->key, k, 32);
		cache->valid = true;
	}
	OPENSSL_cleanse(k, sizeof(k));
	return 0;
}

void sigv4_signed_init(struct sigv4_signed *s)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->authorization, 0);
	buf_init(&s->query, 0);
	buf_init(&s->canonical, 0);
	buf_init(&s->string_to_sign, 0);
}

void sigv4_signed_free(struct sigv4_signed *s)
{
	if (!s)
		return;
	buf_free(&s->authorization);
	buf_free(&s->query);
	buf_free(&s->canonical);
	buf_free(&s->string_to_sign);
}

/* Both forms: builds the canonical request and string to sign, signs, and
 * fills out (the query form's out->query, the header form's authorization). */
static int sign(const struct sigv4_credentials *cred, const struct sigv4_scope *sc, const struct sigv4_request *rq,
		struct sigv4_key_cache *cache, struct sigv4_signed *out, bool in_query)
{
	struct pairs headers = { 0 }, params = { 0 };
	char date[9], scope[128], hash[SIGV4_HEX], expires[24];
	struct buf signed_names, credential;
	unsigned char key[32], sig[32];
	bool host = false, token;
	time_t t = (time_t)sc->time;
	size_t qstart;
	struct tm tm;
	int r = -ENOMEM;

	buf_init(&signed_names, 0);
	buf_init(&credential, 0);
	buf_reset(&out->authorization);
	buf_reset(&out->query);
	buf_reset(&out->canonical);
	buf_reset(&out->string_to_sign);
	token = cred->session_token && *cred->session_token && !sc->omit_session_token;
	if (!gmtime_r(&t, &tm) || strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16) {
		r = -EINVAL;
		goto out;
	}
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';
	if ((size_t)snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, sc->region, sc->service) >=
	    sizeof(scope)) {
		r = -EINVAL;
		goto out;
	}
	headers.max = SIGV4_MAX_HEADERS + 3;
	params.max = SIGV4_MAX_PARAMS + 6;
	headers.v = calloc(headers.max, sizeof(*headers.v));
	params.v = calloc(params.max, sizeof(*params.v));
	if (!headers.v || !params.v)
		goto out;

	/* headers: the request's, then the signer's own (header form) */
	if (rq->nheaders > SIGV4_MAX_HEADERS) {
		r = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < rq->nheaders; i++) {
		r = add_header(&headers, rq->headers[i].name, rq->headers[i].value);
		if (r < 0)
			goto out;
		host |= strcmp(headers.v[headers.n - 1].name, "host") == 0;
	}
	if (!host) {
		r = -EINVAL;
		goto out;
	}
	if (!in_query) {
		r = add_header(&headers, "X-Amz-Date", out->amz_date);
		if (r == 0 && sc->sign_payload)
			r = add_header(&headers, "x-amz-content-sha256", rq->payload_hash);
		if (r == 0 && token)
			r = add_header(&headers, "X-Amz-Security-Token", cred->session_token);
		if (r < 0)
			goto out;
	}
	qsort(headers.v, headers.n, sizeof(*headers.v), cmp_pair);
	r = 0;
	for (size_t i = 0; i < headers.n && r == 0; i++)
		if (i == 0 || strcmp(headers.v[i].name, headers.v[i - 1].name) != 0)
			r = buf_printf(&signed_names, "%s%s", i ? ";" : "", headers.v[i].name);
	r = r ? r : buf_printf(&credential, "%s/%s", cred->access_key_id, scope);
	if (r < 0)
		goto out;

	/* query: the request's, then the presigning parameters */
	r = parse_query(&params, rq->query);
	if (r == 0 && in_query) {
		snprintf(expires, sizeof(expires), "%ld", sc->expires);
		r = add_param(&params, "X-Amz-Algorithm", ALGORITHM);
		r = r ? r : add_param(&params, "X-Amz-Credential", credential.data);
		r = r ? r : add_param(&params, "X-Amz-Date", out->amz_date);
		r = r ? r : add_param(&params, "X-Amz-Expires", expires);
		if (token)
			r = r ? r : add_param(&params, "X-Amz-Security-Token", cred->session_token);
		r = r ? r : add_param(&params, "X-Amz-SignedHeaders", signed_names.data);
	}
	if (r < 0)
		goto out;
	qsort(params.v, params.n, sizeof(*params.v), cmp_param);

	/* the canonical request */
	r = buf_printf(&out->canonical, "%s\n", rq->method);
	r = r ? r : canonical_path(&out->canonical, rq->path, sc->normalize);
	r = r ? r : buf_append(&out->canonical, "\n", 1);
	qstart = out->canonical.len;
	for (size_t i = 0; i < params.n && r == 0; i++)
		r = buf_printf(&out->canonical, "%s%s=%s", i ? "&" : "", params.v[i].name, params.v[i].value);
	if (r == 0 && in_query)	/* the canonical query is also what is sent */
		r = buf_append(&out->query, out->canonical.data + qstart, out->canonical.len - qstart);
	r = r ? r : buf_append(&out->canonical, "\n", 1);
	for (size_t i = 0; i < headers.n && r == 0; i++) {
		bool first = i == 0 || strcmp(headers.v[i].name, headers.v[i - 1].name) != 0;
		bool last = i + 1 == headers.n || strcmp(headers.v[i].name, headers.v[i + 1].name) != 0;
		if (first)
			r = buf_printf(&out->canonical, "%s:", headers.v[i].name);
		r = r ? r : buf_printf(&out->canonical, "%s%s", headers.v[i].value, last ? "\n" : ",");
	}
	r = r ? r : buf_printf(&out->canonical, "\n%s\n%s", signed_names.data, rq->payload_hash);
	if (r < 0)
		goto out;

	/* string to sign, signature */
	sigv4_sha256_hex(out->canonical.data, out->canonical.len, hash);
	r = buf_printf(&out->string_to_sign, ALGORITHM "\n%s\n%s\n%s", out->amz_date, scope, hash);
	r = r ? r : signing_key(cred, date, sc, scope, cache, key);
	r = r ? r : hmac(key, 32, out->string_to_sign.data, out->string_to_sign.len, sig);
	OPENSSL_cleanse(key, sizeof(key));
	if (r < 0)
		goto out;
	hex(sig, sizeof(sig), out->signature);
	if (in_query) {
		r = buf_printf(&out->query, "%sX-Amz-Signature=%s", out->query.len ? "&" : "", out->signature);
		if (r == 0 && !token && cred->session_token && *cred->session_token) {
			/* omit_session_token: sent, but not signed */
			r = buf_append_str(&out->query, "&X-Amz-Security-Token=");
			r = r ? r : sigv4_uri_encode(&out->query, cred->session_token, strlen(cred->session_token),
						     false);
		}
	}
	else
		r = buf_printf(&out->authorization, ALGORITHM " Credential=%s, SignedHeaders=%s, Signature=%s",
			       credential.data, signed_names.data, out->signature);
out:
	pairs_free(&headers);
	pairs_free(&params);
	buf_free(&signed_names);
	buf_free(&credential);
	return r;
}

int sigv4_sign_header(const struct sigv4_credentials *cred, const struct sigv4_scope *sc,
		      const struct sigv4_request *rq, struct sigv4_key_cache *cache, struct sigv4_signed *out)
{
	return sign(cred, sc, rq, cache, out, false);
}

int sigv4_sign_query(const struct sigv4_credentials *cred, const struct sigv4_scope *sc,
		     const struct sigv4_request *rq, struct sigv4_key_cache *cache, struct sigv4_signed *out)
{
	return sign(cred, sc, rq, cache, out, true);
}
