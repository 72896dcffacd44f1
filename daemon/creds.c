/* creds.c: the AWS credential chain (see creds.h).
 *
 * Resolving builds a small tree of nodes from the environment and the shared files: a leaf per
 * source (static keys, web identity, container, instance metadata) and an assume-role node over
 * the node whose credentials sign its STS request.  Each node keeps the last credentials it got;
 * node_fetch refreshes a node when they are due, an assume-role node fetching its base first.
 *
 * In this file: small helpers, the shared-file parser, nodes, the HTTP sources (STS, container,
 * instance metadata), building the chain, and creds_get.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>

#include "trailwatch/buf.h"
#include "trailwatch/creds.h"
#include "trailwatch/ctlog.h"
#include "trailwatch/http.h"
#include "trailwatch/msg.h"
#include "trailwatch/s3xml.h"
#include "trailwatch/sigv4.h"

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define IMDS_IPV6_ENDPOINT "http://[fd00:ec2::254]"
#define IMDS_TOKEN_TTL 21600
#define IMDS_ROLE_PATH "/latest/meta-data/iam/security-credentials/"
#define CONTAINER_DEFAULT_ENDPOINT "http://169.254.170.2"
#define STS_VERSION "2011-06-15"
#define FORM_TYPE "application/x-www-form-urlencoded; charset=utf-8"
#define MAX_KEY_ID 128			/* bytes of an access key id */
#define MAX_SECRET 256			/* bytes of a secret access key */
#define MAX_SESSION_TOKEN 16384		/* bytes of a session token */
#define MAX_IMDS_TOKEN 1024
#define MAX_URL 2048

/* ---- helpers -------------------------------------------------------------------------------- */

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static void buf_wipe_free(struct buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->len);
	buf_free(b);
}

static void response_wipe(struct http_response *r)
{
	if (r->body.data)
		OPENSSL_cleanse(r->body.data, r->body.len);
}

/* A variable of the environment, NULL when unset or empty. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims spaces and tabs from both ends of the span *p, *n. */
static void span_trim(const char **p, size_t *n)
{
	while (*n && is_blank(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n && is_blank((*p)[*n - 1]))
		(*n)--;
}

static bool span_is(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* Removes trailing whitespace (a token file's newline). */
static void buf_trim_end(struct buf *b)
{
	while (b->len && isspace((unsigned char)b->data[b->len - 1]))
		b->len--;
	if (b->data)
		b->data[b->len] = '\0';
}

/* Fit for a header value: no control characters. */
static bool header_safe(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* A key id, secret or token: 1..max printable ASCII characters, no spaces. */
static bool cred_safe(const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max + 1) : 0;

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return false;
	return true;
}

/* s has min..max characters, each alphanumeric or in extra. */
static bool chars_ok(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = strnlen(s, max + 1);

	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return false;
	return true;
}

static bool role_arn_ok(const char *s)
{
	return strncmp(s, "arn:", 4) == 0 && cred_safe(s, 2048);
}

static bool session_name_ok(const char *s)
{
	return chars_ok(s, 2, 64, "_+=,.@-");
}

static bool external_id_ok(const char *s)
{
	return chars_ok(s, 2, 1224, "_+=,.@:/-");
}

static bool region_ok(const char *s)
{
	return chars_ok(s, 1, 32, "-");
}

/* ISO 8601 "2026-11-27T10:00:00Z" (fraction allowed), or with "+00:00" for Z.  -EINVAL. */
static int parse_time(const char *s, int64_t *ret)
{
	char tmp[64];
	size_t n = strlen(s);

	if (n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, n + 1);
	if (n > 6 && strcmp(tmp + n - 6, "+00:00") == 0) {
		tmp[n - 6] = 'Z';
		n -= 5;
	}
	return ctlog_parse_time(tmp, n, ret);
}

/* The parts of an http(s) URL that matter here. */
struct url_info {
	char scheme[8];
	char host[256];		/* as curl gives it: IPv6 in brackets */
	char hostport[300];	/* the Host header: host, or host:port when a port is written */
	char path[1024];	/* decoded, "/" when empty */
};

/* -EINVAL for anything but a well-formed http or https URL, -ENOMEM. */
static int url_split(const char *url, struct url_info *ui)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	int r = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (strlen(url) > MAX_URL || !header_safe(url, strlen(url)) ||
	    curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK)
		goto out;
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	if ((strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) || !*host)
		goto out;
	if ((size_t)snprintf(ui->scheme, sizeof(ui->scheme), "%s", scheme) >= sizeof(ui->scheme) ||
	    (size_t)snprintf(ui->host, sizeof(ui->host), "%s", host) >= sizeof(ui->host) ||
	    (size_t)snprintf(ui->hostport, sizeof(ui->hostport), "%s%s%s", host, port ? ":" : "",
			     port ? port : "") >= sizeof(ui->hostport) ||
	    (size_t)snprintf(ui->path, sizeof(ui->path), "%s", *path ? path : "/") >= sizeof(ui->path))
		goto out;
	for (char *c = ui->scheme; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return r;
}

/* ---- the shared config and credentials files ------------------------------------------------ */

struct prop {
	char *key;
	char *value;
	size_t len, cap;	/* of value, which grows with continuation lines */
};

struct profile {
	char *name;
	struct prop *props;
	size_t nprops, cap;
};

struct creds_profiles {
	struct profile *v;
	size_t n, cap;
};

void creds_profiles_free(struct creds_profiles *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++) {
		struct profile *pr = &ps->v[i];
		for (size_t j = 0; j < pr->nprops; j++) {
			free(pr->props[j].key);
			wipe_free(pr->props[j].value);
		}
		free(pr->props);
		free(pr->name);
	}
	free(ps->v);
	free(ps);
}

static struct profile *profile_find(const struct creds_profiles *ps, const char *name, size_t len)
{
	for (size_t i = 0; i < ps->n; i++)
		if (span_is(name, len, ps->v[i].name))
			return &ps->v[i];
	return NULL;
}

bool creds_profiles_has(const struct creds_profiles *ps, const char *name)
{
	return ps && profile_find(ps, name, strlen(name));
}

const char *creds_profiles_get(const struct creds_profiles *ps, const char *name, const char *key)
{
	const struct profile *pr = ps ? profile_find(ps, name, strlen(name)) : NULL;

	for (size_t i = 0; pr && i < pr->nprops; i++)
		if (strcmp(pr->props[i].key, key) == 0)
			return pr->props[i].value;
	return NULL;
}

/* The profile called name[0..len), added when new.  -E2BIG past CREDS_MAX_PROFILES, -ENOMEM. */
static int profile_add(struct creds_profiles *ps, const char *name, size_t len, struct profile **ret)
{
	struct profile *pr = profile_find(ps, name, len);

	if (!pr) {
		if (ps->n == CREDS_MAX_PROFILES)
			return -E2BIG;
		if (ps->n == ps->cap) {
			size_t cap = ps->cap ? ps->cap * 2 : 8;
			struct profile *v = realloc(ps->v, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			ps->v = v;
			ps->cap = cap;
		}
		pr = &ps->v[ps->n];
		memset(pr, 0, sizeof(*pr));
		if (!(pr->name = strndup(name, len)))
			return -ENOMEM;
		ps->n++;
	}
	*ret = pr;
	return 0;
}

/* Sets key = value in pr; *index is where it is.  -E2BIG past CREDS_MAX_PROPERTIES, -ENOMEM. */
static int prop_set(struct profile *pr, const char *key, size_t klen, const char *value, size_t vlen,
		    size_t *index)
{
	char *v = strndup(value, vlen);
	size_t i;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < pr->nprops; i++)
		if (span_is(key, klen, pr->props[i].key))
			break;
	if (i == pr->nprops) {
		char *k;
		if (pr->nprops == CREDS_MAX_PROPERTIES) {
			wipe_free(v);
			return -E2BIG;
		}
		if (pr->nprops == pr->cap) {
			size_t cap = pr->cap ? pr->cap * 2 : 8;
			struct prop *p = realloc(pr->props, cap * sizeof(*p));
			if (!p) {
				wipe_free(v);
				return -ENOMEM;
			}
			pr->props = p;
			pr->cap = cap;
		}
		if (!(k = strndup(key, klen))) {
			wipe_free(v);
			return -ENOMEM;
		}
		pr->props[i].key = k;
		pr->props[i].value = NULL;
		pr->nprops++;
	}
	wipe_free(pr->props[i].value);
	pr->props[i].value = v;
	pr->props[i].len = pr->props[i].cap = vlen;
	*index = i;
	return 0;
}

/* Appends "\n" and line[0..n) to a value (a continuation line); the value's room doubles, so
 * that many continuation lines cost linear time.  -ENOMEM. */
static int prop_continue(struct prop *pp, const char *line, size_t n)
{
	size_t need = pp->len + n + 1;

	if (need > pp->cap) {
		size_t cap = need > 2 * pp->cap ? need : 2 * pp->cap;
		char *v = malloc(cap + 1);
		if (!v)
			return -ENOMEM;
		memcpy(v, pp->value, pp->len + 1);
		wipe_free(pp->value);	/* not realloc: the old copy is wiped */
		pp->value = v;
		pp->cap = cap;
	}
	pp->value[pp->len] = '\n';
	memcpy(pp->value + pp->len + 1, line, n);
	pp->len = need;
	pp->value[need] = '\0';
	return 0;
}

enum section { SEC_NONE, SEC_PROFILE, SEC_IGNORED };
enum after { AFTER_NOTHING, AFTER_VALUE, AFTER_EMPTY };	/* what the last line was */

int creds_profiles_parse(const char *file, const char *text, size_t len, bool config_file,
			 struct creds_profiles **ret, char *msg, size_t msglen)
{
	struct creds_profiles *ps = NULL;
	struct profile *cur = NULL;
	enum section section = SEC_NONE;
	enum after after = AFTER_NOTHING;
	size_t pos = 0, lineno = 0, last = 0;
	const char *nul;
	int r = 0;

	if (len > CREDS_MAX_FILE) {
		msg_set(msg, msglen, "%s: larger than %u bytes", file, CREDS_MAX_FILE);
		return -EINVAL;
	}
	if ((nul = memchr(text, '\0', len))) {
		size_t line = 1;
		for (const char *c = text; c < nul; c++)
			line += *c == '\n';
		msg_set(msg, msglen, "%s:%zu: NUL byte", file, line);
		return -EINVAL;
	}
	if (!(ps = calloc(1, sizeof(*ps))))
		return -ENOMEM;
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		bool indented;

		pos += n + (nl != NULL);
		lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		indented = n && is_blank(line[0]);
		span_trim(&line, &n);
		if (n == 0 || line[0] == '#' || line[0] == ';')
			continue;
		if (indented && after != AFTER_NOTHING) {
			/* continues a value, or belongs to a sub-section (skipped) */
			if (after == AFTER_VALUE && section == SEC_PROFILE &&
			    (r = prop_continue(&cur->props[last], line, n)) < 0)
				goto fail;
			continue;
		}
		if (line[0] == '[') {
			const char *close = memchr(line, ']', n), *rest, *name = line + 1;
			size_t nrest, nname;

			if (!close) {
				msg_set(msg, msglen, "%s:%zu: '[' without ']'", file, lineno);
				goto invalid;
			}
			rest = close + 1;
			nrest = n - (size_t)(rest - line);
			span_trim(&rest, &nrest);
			if (nrest && rest[0] != '#' && rest[0] != ';') {
				msg_set(msg, msglen, "%s:%zu: text after ']'", file, lineno);
				goto invalid;
			}
			nname = (size_t)(close - name);
			span_trim(&name, &nname);
			after = AFTER_NOTHING;
			if (config_file && !span_is(name, nname, "default")) {
				bool prefixed = nname >= 7 && memcmp(name, "profile", 7) == 0 &&
						(nname == 7 || is_blank(name[7]));
				if (!prefixed) {
					section = SEC_IGNORED;	/* [sso-session x], [services x], [x] */
					continue;
				}
				name += 7;
				nname -= 7;
				span_trim(&name, &nname);
			}
			if (nname == 0) {
				msg_set(msg, msglen, "%s:%zu: section without a profile name", file, lineno);
				goto invalid;
			}
			r = profile_add(ps, name, nname, &cur);
			if (r == -E2BIG) {
				msg_set(msg, msglen, "%s:%zu: more than %d sections", file, lineno,
				     CREDS_MAX_PROFILES);
				goto invalid;
			}
			if (r < 0)
				goto fail;
			section = SEC_PROFILE;
		} else {
			const char *eq = memchr(line, '=', n), *key = line, *value;
			size_t nkey, nvalue;

			if (section == SEC_NONE) {
				msg_set(msg, msglen, "%s:%zu: a property before any [section]", file, lineno);
				goto invalid;
			}
			if (!eq) {
				msg_set(msg, msglen, "%s:%zu: expected '[section]' or 'key = value'", file,
				     lineno);
				goto invalid;
			}
			nkey = (size_t)(eq - line);
			span_trim(&key, &nkey);
			if (nkey == 0) {
				msg_set(msg, msglen, "%s:%zu: '=' without a key", file, lineno);
				goto invalid;
			}
			value = eq + 1;
			nvalue = n - (size_t)(value - line);
			for (size_t i = 1; i < nvalue; i++)
				if ((value[i] == '#' || value[i] == ';') && is_blank(value[i - 1])) {
					nvalue = i;
					break;
				}
			span_trim(&value, &nvalue);
			after = nvalue ? AFTER_VALUE : AFTER_EMPTY;
			if (section == SEC_IGNORED)
				continue;
			r = prop_set(cur, key, nkey, value, nvalue, &last);
			if (r == -E2BIG) {
				msg_set(msg, msglen, "%s:%zu: more than %d keys in profile %s", file, lineno,
				     CREDS_MAX_PROPERTIES, cur->name);
				goto invalid;
			}
			if (r < 0)
				goto fail;
		}
	}
	*ret = ps;
	return 0;
invalid:
	r = -EINVAL;
fail:
	creds_profiles_free(ps);
	return r;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

enum node_kind {
	NODE_STATIC,		/* keys from the environment or a profile */
	NODE_WEB_IDENTITY,	/* STS AssumeRoleWithWebIdentity */
	NODE_CONTAINER,		/* ECS / EKS Pod Identity endpoint */
	NODE_IMDS,		/* EC2 instance metadata, v2 */
	NODE_ASSUME_ROLE,	/* STS AssumeRole signed with base's credentials */
};

struct node {
	enum node_kind kind;
	struct node *next;		/* every node of the provider, for freeing */
	struct node *base;		/* NODE_ASSUME_ROLE */
	char label[CREDS_SOURCE_SIZE];	/* for messages and creds.source */
	/* STS */
	char *role_arn, *external_id, *session_name;
	long duration;			/* 0: not sent */
	char *token_file;		/* web identity */
	/* container */
	char *url, *auth_file;
	char *auth_token;		/* secret */
	/* instance metadata */
	char *endpoint;
	char *imds_token;		/* secret */
	int64_t imds_token_expires;
	/* what the node holds */
	bool valid;
	char *ak;
	char *sk, *st;			/* secrets */
	int64_t expiration;
	int64_t next_attempt;		/* no refresh before (see node_fetch) */
	int error;			/* the last refresh's failure, repeated until next_attempt */
	char error_msg[CREDS_MESSAGE_SIZE];
};

struct creds_provider {
	char *opt_region, *profile, *role_arn, *external_id, *session_name, *opt_sts_endpoint;
	char *container_endpoint;
	long duration;
	struct http_client *http;
	struct node *nodes;		/* all of them */
	struct node *top;		/* NULL until resolved */
	bool top_is_option;		/* top is the options' assume role */
	char region[40];
	char sts_endpoint[MAX_URL + 1];
	struct creds out;
};

/* Credentials just fetched, not yet installed. */
struct fetched {
	char *ak, *sk, *st;
	int64_t expiration;
};

static void fetched_wipe(struct fetched *f)
{
	free(f->ak);
	wipe_free(f->sk);
	wipe_free(f->st);
	memset(f, 0, sizeof(*f));
}

/* Checks and copies a set of credentials (st may be NULL or "").  -EIO with msg naming the
 * field that is unusable, -ENOMEM. */
static int fetched_set(struct fetched *f, const char *ak, const char *sk, const char *st, int64_t expiration,
		       char *msg, size_t msglen)
{
	if (!cred_safe(ak, MAX_KEY_ID)) {
		msg_set(msg, msglen, "unusable access key id (empty, too long, or with spaces or controls)");
		return -EIO;
	}
	if (!cred_safe(sk, MAX_SECRET)) {
		msg_set(msg, msglen, "unusable secret access key (empty, too long, or with spaces or controls)");
		return -EIO;
	}
	if (st && *st && !cred_safe(st, MAX_SESSION_TOKEN)) {
		msg_set(msg, msglen, "unusable session token (too long, or with spaces or controls)");
		return -EIO;
	}
	memset(f, 0, sizeof(*f));
	f->ak = strdup(ak);
	f->sk = strdup(sk);
	f->st = st && *st ? strdup(st) : NULL;
	f->expiration = expiration;
	if (!f->ak || !f->sk || (st && *st && !f->st)) {
		fetched_wipe(f);
		return -ENOMEM;
	}
	return 0;
}

/* Replaces n's credentials with f's (f is emptied). */
static void node_install(struct node *n, struct fetched *f)
{
	free(n->ak);
	wipe_free(n->sk);
	wipe_free(n->st);
	n->ak = f->ak;
	n->sk = f->sk;
	n->st = f->st;
	n->expiration = f->expiration;
	n->valid = true;
	memset(f, 0, sizeof(*f));
}

static void node_free(struct node *n)
{
	free(n->role_arn);
	free(n->external_id);
	free(n->session_name);
	free(n->token_file);
	free(n->url);
	free(n->auth_file);
	wipe_free(n->auth_token);
	free(n->endpoint);
	wipe_free(n->imds_token);
	free(n->ak);
	wipe_free(n->sk);
	wipe_free(n->st);
	free(n);
}

static void nodes_free(struct creds_provider *p)
{
	while (p->nodes) {
		struct node *n = p->nodes;
		p->nodes = n->next;
		node_free(n);
	}
	p->top = NULL;
	p->top_is_option = false;
}

static struct node *node_new(struct creds_provider *p, enum node_kind kind, const char *label)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->kind = kind;
	snprintf(n->label, sizeof(n->label), "%s", label);
	n->next = p->nodes;
	p->nodes = n;
	return n;
}

/* Duplicates s, or NULL (not an error) when s is NULL.  Sets *oom when a copy fails. */
static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = strdup(s)))
		*oom = true;
	return d;
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

/* Performs rq up to `tries` times while the transport fails or the status is 5xx.  0 when a
 * response arrived (resp->status), -EIO with msg (curl's words, or the size limit), -ENOMEM,
 * -EINVAL when libcurl refused the request. */
static int perform(struct creds_provider *p, const struct http_request *rq, int tries,
		   struct http_response *resp, char *msg, size_t msglen)
{
	int r = -EIO;

	for (int i = 0; i < tries; i++) {
		response_wipe(resp);
		r = http_perform(p->http, rq, resp);
		if (r == 0 && resp->status < 500)
			return 0;
		if (r != 0 && r != -EIO)
			break;
	}
	if (r == 0)
		return 0;
	if (r == -E2BIG) {
		msg_set(msg, msglen, "response larger than %u bytes", CREDS_MAX_RESPONSE);
		r = -EIO;
	} else if (r == -ENOMEM) {
		msg_set(msg, msglen, "out of memory");
	} else if (r == -EIO) {
		msg_set(msg, msglen, "%s", resp->error);
	} else {
		msg_set(msg, msglen, "request refused by libcurl: %s", strerror(-r));
	}
	return r;
}

/* A response body's JSON object (depth-limited), or NULL. */
static struct json_object *json_body(const struct http_response *resp)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (!resp->body.data || !resp->body.len || resp->body.len > CREDS_MAX_RESPONSE)
		return NULL;
	if (!(tok = json_tokener_new_ex(8)))
		return NULL;
	o = json_tokener_parse_ex(tok, resp->body.data, (int)resp->body.len);
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The credentials of a container or instance metadata response: AccessKeyId, SecretAccessKey,
 * Token, Expiration (and Code "Success" from IMDS).  -EIO with msg, -ENOMEM. */
static int json_credentials(const struct http_response *resp, bool imds, struct fetched *f, char *msg,
			    size_t msglen)
{
	struct json_object *o = json_body(resp);
	const char *exp;
	int64_t expiration = 0;
	int r = -EIO;

	if (!o) {
		msg_set(msg, msglen, "the response is not a JSON object");
		return -EIO;
	}
	if (imds) {
		const char *code = json_str(o, "Code");
		if (!code || strcmp(code, "Success") != 0) {
			msg_set(msg, msglen, "the credentials' Code is %.64s, not Success",
			     code ? code : "missing");
			goto out;
		}
	}
	exp = json_str(o, "Expiration");
	if (!exp && json_str(o, "Token")) {
		/* as the AWS SDKs: without it they would never be refreshed, and fail for good
		 * once their session ends */
		msg_set(msg, msglen, "temporary credentials (with a Token) but no Expiration: there is no telling when to refresh them");
		goto out;
	}
	if (exp && parse_time(exp, &expiration) < 0) {
		msg_set(msg, msglen, "Expiration %.64s is not an ISO 8601 UTC time", exp);
		goto out;
	}
	if (!json_str(o, "AccessKeyId") || !json_str(o, "SecretAccessKey")) {
		msg_set(msg, msglen, "the response has no AccessKeyId or SecretAccessKey");
		goto out;
	}
	r = fetched_set(f, json_str(o, "AccessKeyId"), json_str(o, "SecretAccessKey"), json_str(o, "Token"),
			expiration, msg, msglen);
out:
	json_object_put(o);
	return r;
}

/* Appends &name=value to a form, value percent-encoded. */
static int form_add(struct buf *b, const char *name, const char *value)
{
	int r = buf_printf(b, "&%s=", name);

	return r < 0 ? r : sigv4_uri_encode(b, value, strlen(value), false);
}

/* STS AssumeRole signed with base's credentials, or, without base, AssumeRoleWithWebIdentity
 * with n's token file.  -EIO (transport, HTTP or STS error), -EINVAL (endpoint, token file),
 * -ENOMEM; msg says why. */
static int sts_call(struct creds_provider *p, struct node *n, const struct node *base, int64_t now,
		    struct fetched *f, char *msg, size_t msglen)
{
	const char *action = base ? "AssumeRole" : "AssumeRoleWithWebIdentity";
	struct http_header h[6];
	struct sigv4_signed sig;
	struct http_response resp;
	struct s3xml_credentials *xc = NULL;
	struct s3xml_error xe;
	struct url_info ui;
	struct buf body, token;
	char detail[CREDS_MESSAGE_SIZE] = "", hash[SIGV4_HEX];
	size_t nh = 0;
	int r;

	buf_init(&body, 0);
	buf_init(&token, CREDS_MAX_TOKEN_FILE);
	sigv4_signed_init(&sig);
	http_response_init(&resp, CREDS_MAX_RESPONSE);
	if (url_split(p->sts_endpoint, &ui) < 0) {
		msg_set(msg, msglen, "STS endpoint %s is not an http or https URL", p->sts_endpoint);
		r = -EINVAL;
		goto out;
	}
	if ((r = buf_printf(&body, "Action=%s&Version=%s", action, STS_VERSION)) < 0 ||
	    (r = form_add(&body, "RoleArn", n->role_arn)) < 0 ||
	    (r = form_add(&body, "RoleSessionName", n->session_name)) < 0 ||
	    (n->duration && (r = buf_printf(&body, "&DurationSeconds=%ld", n->duration)) < 0) ||
	    (n->external_id && (r = form_add(&body, "ExternalId", n->external_id)) < 0))
		goto out;
	if (!base) {
		buf_free(&token);
		buf_init(&token, CREDS_MAX_TOKEN_FILE);
		r = buf_read_file(&token, n->token_file, detail, sizeof(detail));
		if (r < 0) {
			msg_set(msg, msglen, "web identity token file %s", detail);
			if (r != -ENOMEM)
				r = -EINVAL;
			goto out;
		}
		buf_trim_end(&token);
		if (!token.len) {
			msg_set(msg, msglen, "web identity token file %s is empty", n->token_file);
			r = -EINVAL;
			goto out;
		}
		if ((r = form_add(&body, "WebIdentityToken", token.data)) < 0)
			goto out;
	}
	h[nh++] = (struct http_header){ "Host", ui.hostport };
	h[nh++] = (struct http_header){ "Content-Type", FORM_TYPE };
	h[nh++] = (struct http_header){ "Accept", "text/xml" };
	if (base) {
		struct sigv4_credentials c = { base->ak, base->sk, base->st };
		struct sigv4_header sh[2] = { { "Host", ui.hostport }, { "Content-Type", FORM_TYPE } };
		struct sigv4_request srq = { "POST", ui.path, NULL, sh, 2, hash };
		struct sigv4_scope sc = { .region = p->region, .service = "sts", .time = now,
					  .normalize = true };

		sigv4_sha256_hex(body.data ? body.data : "", body.len, hash);
		r = sigv4_sign_header(&c, &sc, &srq, NULL, &sig);
		if (r < 0) {
			msg_set(msg, msglen, "STS %s %s: the request cannot be signed", action, n->role_arn);
			goto out;
		}
		h[nh++] = (struct http_header){ "X-Amz-Date", sig.amz_date };
		h[nh++] = (struct http_header){ "Authorization", sig.authorization.data };
		if (base->st)
			h[nh++] = (struct http_header){ "X-Amz-Security-Token", base->st };
	}
	{
		struct http_request rq = { .method = "POST", .url = p->sts_endpoint, .headers = h,
					   .nheaders = nh, .body = body.data, .body_len = body.len,
					   .timeout_ms = 30000, .connect_timeout_ms = 5000 };
		r = perform(p, &rq, 2, &resp, detail, sizeof(detail));
	}
	if (r < 0) {
		msg_set(msg, msglen, "STS %s %s at %s: %s", action, n->role_arn, p->sts_endpoint, detail);
		goto out;
	}
	if (resp.status != 200) {
		if (resp.body.len && s3xml_parse_error(resp.body.data, resp.body.len, &xe, NULL, 0) == 0)
			msg_set(msg, msglen, "STS %s %s: HTTP %ld %s: %s", action, n->role_arn, resp.status,
			     xe.code, xe.message);
		else
			msg_set(msg, msglen, "STS %s %s at %s: HTTP %ld", action, n->role_arn, p->sts_endpoint,
			     resp.status);
		r = -EIO;
		goto out;
	}
	if (!(xc = malloc(sizeof(*xc)))) {
		r = -ENOMEM;
		goto out;
	}
	r = s3xml_parse_credentials(resp.body.data ? resp.body.data : "", resp.body.len, xc, detail,
				    sizeof(detail));
	if (r == 0)
		r = fetched_set(f, xc->access_key_id, xc->secret_access_key, xc->session_token,
				xc->expiration, detail, sizeof(detail));
	if (r < 0 && r != -ENOMEM) {
		msg_set(msg, msglen, "STS %s %s: unexpected response: %s", action, n->role_arn, detail);
		r = -EIO;
	}
out:
	if (xc) {
		OPENSSL_cleanse(xc, sizeof(*xc));
		free(xc);
	}
	response_wipe(&resp);
	http_response_free(&resp);
	sigv4_signed_free(&sig);
	buf_wipe_free(&body);
	buf_wipe_free(&token);
	return r;
}

/* A container credentials endpoint.  -EIO, -EINVAL (token file), -ENOMEM, with msg. */
static int container_fetch(struct creds_provider *p, struct node *n, struct fetched *f, char *msg,
			   size_t msglen)
{
	struct http_response resp;
	struct http_header h[2];
	struct buf token;
	char detail[CREDS_MESSAGE_SIZE] = "";
	size_t nh = 0;
	int r = 0;

	buf_init(&token, CREDS_MAX_TOKEN_FILE);
	http_response_init(&resp, CREDS_MAX_RESPONSE);
	if (n->auth_file) {
		buf_free(&token);
		buf_init(&token, CREDS_MAX_TOKEN_FILE);
		r = buf_read_file(&token, n->auth_file, detail, sizeof(detail));
		if (r < 0) {
			msg_set(msg, msglen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s", detail);
			if (r != -ENOMEM)
				r = -EINVAL;
			goto out;
		}
		buf_trim_end(&token);
		if (!token.len || !header_safe(token.data, token.len)) {
			msg_set(msg, msglen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: empty, or with controls",
			     n->auth_file);
			r = -EINVAL;
			goto out;
		}
		h[nh++] = (struct http_header){ "Authorization", token.data };
	} else if (n->auth_token) {
		h[nh++] = (struct http_header){ "Authorization", n->auth_token };
	}
	h[nh++] = (struct http_header){ "Accept", "application/json" };
	{
		struct http_request rq = { .method = "GET", .url = n->url, .headers = h, .nheaders = nh,
					   .timeout_ms = 5000, .connect_timeout_ms = 2000 };
		r = perform(p, &rq, 2, &resp, detail, sizeof(detail));
	}
	if (r < 0) {
		msg_set(msg, msglen, "%s: %s", n->url, detail);
		goto out;
	}
	if (resp.status != 200) {
		struct json_object *o = json_body(&resp);
		const char *code = o ? json_str(o, "code") : NULL, *text = o ? json_str(o, "message") : NULL;
		msg_set(msg, msglen, "%s: HTTP %ld%s%.128s%s%.512s", n->url, resp.status, code ? " " : "",
		     code ? code : "", text ? ": " : "", text ? text : "");
		json_object_put(o);
		r = -EIO;
		goto out;
	}
	r = json_credentials(&resp, false, f, detail, sizeof(detail));
	if (r < 0)
		msg_set(msg, msglen, "%s: %s", n->url, detail);
out:
	response_wipe(&resp);
	http_response_free(&resp);
	buf_wipe_free(&token);
	return r;
}

static bool timed_out(const char *error)
{
	return strstr(error, "timed out") || strstr(error, "Timeout");
}

/* A new IMDSv2 session token into n.  -EIO with msg, -ENOMEM. */
static int imds_token(struct creds_provider *p, struct node *n, int64_t now, char *msg, size_t msglen)
{
	struct http_header h[1] = { { "X-aws-ec2-metadata-token-ttl-seconds", "21600" } };
	struct http_response resp;
	char url[MAX_URL + 64], detail[CREDS_MESSAGE_SIZE] = "";
	char *token;
	int r;

	wipe_free(n->imds_token);
	n->imds_token = NULL;
	snprintf(url, sizeof(url), "%s/latest/api/token", n->endpoint);
	http_response_init(&resp, MAX_IMDS_TOKEN);
	{
		struct http_request rq = { .method = "PUT", .url = url, .headers = h, .nheaders = 1,
					   .body = "", .body_len = 0, .timeout_ms = 2000,
					   .connect_timeout_ms = 1000 };
		r = perform(p, &rq, 2, &resp, detail, sizeof(detail));
	}
	if (r < 0) {
		if (r == -EIO && timed_out(detail))
			msg_set(msg, msglen, "%s: token request (PUT /latest/api/token): %s (in a container? the instance's metadata hop limit, HttpPutResponseHopLimit, must be 2 or more)",
			     n->endpoint, detail);
		else
			msg_set(msg, msglen, "%s: token request (PUT /latest/api/token): %s", n->endpoint,
			     detail);
		goto out;
	}
	if (resp.status != 200) {
		msg_set(msg, msglen, "%s: token request (PUT /latest/api/token): HTTP %ld", n->endpoint,
		     resp.status);
		r = -EIO;
		goto out;
	}
	buf_trim_end(&resp.body);
	if (!resp.body.len || !cred_safe(resp.body.data, MAX_IMDS_TOKEN)) {
		msg_set(msg, msglen, "%s: token request (PUT /latest/api/token): unusable token", n->endpoint);
		r = -EIO;
		goto out;
	}
	if (!(token = strdup(resp.body.data))) {
		r = -ENOMEM;
		goto out;
	}
	n->imds_token = token;
	n->imds_token_expires = now + IMDS_TOKEN_TTL - 60;
out:
	response_wipe(&resp);
	http_response_free(&resp);
	return r;
}

/* GET endpoint+path with a session token; a 401 gets a new token and one more try.  0 when a
 * response arrived (resp->status), -EIO with msg, -ENOMEM. */
static int imds_get(struct creds_provider *p, struct node *n, const char *path, int64_t now,
		    struct http_response *resp, char *msg, size_t msglen)
{
	char url[MAX_URL + 256], detail[CREDS_MESSAGE_SIZE] = "";
	int r = 0;

	snprintf(url, sizeof(url), "%s%s", n->endpoint, path);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct http_header h[1];
		struct http_request rq = { .method = "GET", .url = url, .headers = h, .nheaders = 1,
					   .timeout_ms = 2000, .connect_timeout_ms = 1000 };

		if (attempt > 0 || !n->imds_token || now >= n->imds_token_expires)
			if ((r = imds_token(p, n, now, msg, msglen)) < 0)
				return r;
		h[0] = (struct http_header){ "X-aws-ec2-metadata-token", n->imds_token };
		r = perform(p, &rq, 2, resp, detail, sizeof(detail));
		if (r < 0) {
			msg_set(msg, msglen, "%s: GET %s: %s", n->endpoint, path, detail);
			return r;
		}
		if (resp->status != 401)
			return 0;
	}
	return 0;
}

/* The instance profile's credentials.  -EIO with msg, -ENOMEM. */
static int imds_fetch(struct creds_provider *p, struct node *n, int64_t now, struct fetched *f, char *msg,
		      size_t msglen)
{
	struct http_response resp;
	char role[65], path[sizeof(IMDS_ROLE_PATH) + sizeof(role)], detail[CREDS_MESSAGE_SIZE] = "";
	const char *list;
	size_t len = 0;
	int r;

	http_response_init(&resp, CREDS_MAX_RESPONSE);
	r = imds_get(p, n, IMDS_ROLE_PATH, now, &resp, msg, msglen);
	if (r < 0)
		goto out;
	if (resp.status == 404) {
		msg_set(msg, msglen, "%s: no IAM role attached to this instance (HTTP 404 for %s)", n->endpoint,
		     IMDS_ROLE_PATH);
		r = -EIO;
		goto out;
	}
	if (resp.status != 200) {
		msg_set(msg, msglen, "%s: GET %s: HTTP %ld", n->endpoint, IMDS_ROLE_PATH, resp.status);
		r = -EIO;
		goto out;
	}
	list = resp.body.data ? resp.body.data : "";
	while (len < resp.body.len && list[len] != '\n' && list[len] != '\r')
		len++;
	while (len && is_blank(list[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(role)) {
		msg_set(msg, msglen, "%s: GET %s: no role name in the response", n->endpoint, IMDS_ROLE_PATH);
		r = -EIO;
		goto out;
	}
	memcpy(role, list, len);
	role[len] = '\0';
	if (!chars_ok(role, 1, 64, "_+=,.@-")) {
		msg_set(msg, msglen, "%s: GET %s: not a role name", n->endpoint, IMDS_ROLE_PATH);
		r = -EIO;
		goto out;
	}
	snprintf(path, sizeof(path), "%s%s", IMDS_ROLE_PATH, role);
	r = imds_get(p, n, path, now, &resp, msg, msglen);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		msg_set(msg, msglen, "%s: GET %s: HTTP %ld", n->endpoint, path, resp.status);
		r = -EIO;
		goto out;
	}
	r = json_credentials(&resp, true, f, detail, sizeof(detail));
	if (r < 0) {
		msg_set(msg, msglen, "%s: GET %s: %s", n->endpoint, path, detail);
		goto out;
	}
	snprintf(n->label, sizeof(n->label), "instance metadata (role %s)", role);
out:
	response_wipe(&resp);
	http_response_free(&resp);
	return r;
}

/* ---- fetching and refreshing ---------------------------------------------------------------- */

static bool due(const struct node *n, int64_t now)
{
	return !n->valid || (n->expiration && n->expiration - now <= CREDS_REFRESH_MARGIN);
}

static int node_fetch(struct creds_provider *p, struct node *n, int64_t now, char *msg, size_t msglen);

/* Asks n's source again.  0 with f; 1 with f and msg when the base kept old credentials;
 * negative with msg. */
static int node_refresh(struct creds_provider *p, struct node *n, int64_t now, struct fetched *f, char *msg,
			size_t msglen)
{
	char warning[CREDS_MESSAGE_SIZE];
	int r, rb;

	switch (n->kind) {
	case NODE_WEB_IDENTITY:
		return sts_call(p, n, NULL, now, f, msg, msglen);
	case NODE_CONTAINER:
		return container_fetch(p, n, f, msg, msglen);
	case NODE_IMDS:
		return imds_fetch(p, n, now, f, msg, msglen);
	case NODE_ASSUME_ROLE:
		warning[0] = '\0';
		rb = node_fetch(p, n->base, now, warning, sizeof(warning));
		if (rb < 0) {
			msg_set(msg, msglen, "base credentials: %s", warning);
			return rb;
		}
		r = sts_call(p, n, n->base, now, f, msg, msglen);
		if (r == 0 && rb == 1) {
			msg_set(msg, msglen, "base credentials: %s", warning);
			return 1;
		}
		return r;
	case NODE_STATIC:
		break;
	}
	msg_set(msg, msglen, "static credentials cannot be refreshed");
	return -EINVAL;
}

/* Makes n's credentials current: 0 (nothing to do, or refreshed); 1 when a refresh failed but
 * the old ones are still valid (msg says why); negative with msg "LABEL: why".  A source is asked
 * at most once per CREDS_RETRY_SECONDS after a failure, or after it gave credentials that were
 * already due: until then the last answer stands (the same error, or the credentials), so that
 * a failing source is not asked again by every request. */
static int node_fetch(struct creds_provider *p, struct node *n, int64_t now, char *msg, size_t msglen)
{
	struct fetched f = { 0 };
	char detail[CREDS_MESSAGE_SIZE] = "";
	bool usable = n->valid && (!n->expiration || n->expiration > now);
	int r;

	if (!due(n, now))
		return 0;
	if (now < n->next_attempt) {
		if (usable)
			return 0;
		if (n->error) {
			msg_set(msg, msglen, "%s (asked again in %llds)", n->error_msg, (long long)(n->next_attempt - now));
			return n->error;
		}
	}
	r = node_refresh(p, n, now, &f, detail, sizeof(detail));
	if (r >= 0) {
		node_install(n, &f);
		n->error = 0;
		/* credentials that come already due are not asked for again at once */
		n->next_attempt = due(n, now) ? now + CREDS_RETRY_SECONDS : 0;
		if (n->expiration && n->expiration <= now) {
			/* useless, and asking again gives the same: most likely this host's clock is wrong */
			r = -EKEYEXPIRED;
			msg_set(detail, sizeof(detail), "the credentials it gave expired %llds before now: is this host's clock right?",
			     (long long)(now - n->expiration));
			goto fail;
		}
		if (r == 1)
			msg_set(msg, msglen, "%s: %s", n->label, detail);
		return r;
	}
	fetched_wipe(&f);
	n->next_attempt = now + CREDS_RETRY_SECONDS;
	if (usable) {
		msg_set(msg, msglen, "%s: refresh failed, keeping credentials that expire in %llds: %s",
		     n->label, (long long)(n->expiration - now), detail);
		return 1;
	}
fail:
	n->error = r;
	msg_set(n->error_msg, sizeof(n->error_msg), "%s: %s", n->label, detail);
	msg_set(msg, msglen, "%s", n->error_msg);
	return r;
}

/* ---- building the chain --------------------------------------------------------------------- */

/* Static credentials.  -EINVAL with msg when a value is unusable, -ENOMEM. */
static int static_node(struct creds_provider *p, const char *label, const char *ak, const char *sk,
		       const char *st, struct node **ret, char *msg, size_t msglen)
{
	struct fetched f;
	struct node *n;
	char detail[256] = "";
	int r = fetched_set(&f, ak, sk, st, 0, detail, sizeof(detail));

	if (r < 0) {
		msg_set(msg, msglen, "%s: %s", label, detail);
		return r == -ENOMEM ? r : -EINVAL;
	}
	if (!(n = node_new(p, NODE_STATIC, label))) {
		fetched_wipe(&f);
		return -ENOMEM;
	}
	node_install(n, &f);
	*ret = n;
	return 0;
}

/* The environment's keys.  0 and *ret; -ENOENT with why when neither key is set; -EINVAL with
 * msg when only one is, -ENOMEM. */
static int env_node(struct creds_provider *p, struct node **ret, char *msg, size_t msglen)
{
	const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");

	if (!ak && !sk) {
		msg_set(msg, msglen, "AWS_ACCESS_KEY_ID not set");
		return -ENOENT;
	}
	if (!ak || !sk) {
		const char *set = ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY";
		const char *unset = ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID";
		msg_set(msg, msglen, "environment: %s is set but %s is not", set, unset);
		return -EINVAL;
	}
	return static_node(p, "environment", ak, sk, env("AWS_SESSION_TOKEN"), ret, msg, msglen);
}

/* An STS node (web identity when token_file, else assume role over base). -ENOMEM. */
static int sts_node(struct creds_provider *p, enum node_kind kind, const char *label, const char *role_arn,
		    const char *external_id, const char *session_name, long duration, const char *token_file,
		    struct node *base, struct node **ret)
{
	struct node *n = node_new(p, kind, label);
	bool oom = false;

	if (!n)
		return -ENOMEM;
	n->role_arn = dup_opt(role_arn, &oom);
	n->external_id = dup_opt(external_id, &oom);
	n->session_name = dup_opt(session_name ? session_name : CREDS_DEFAULT_SESSION_NAME, &oom);
	n->token_file = dup_opt(token_file, &oom);
	n->duration = duration;
	n->base = base;
	if (oom)
		return -ENOMEM;
	*ret = n;
	return 0;
}

/* Checks a role's parameters; `where` names their origin for messages.  -EINVAL with msg. */
static int check_role(const char *where, const char *role_arn, const char *external_id,
		      const char *session_name, char *msg, size_t msglen)
{
	if (!role_arn_ok(role_arn)) {
		msg_set(msg, msglen, "%s: role ARN %.256s is not an ARN", where, role_arn);
		return -EINVAL;
	}
	if (external_id && !external_id_ok(external_id)) {
		msg_set(msg, msglen, "%s: external id: 2 to 1224 characters of A-Z a-z 0-9 _+=,.@:/-", where);
		return -EINVAL;
	}
	if (session_name && !session_name_ok(session_name)) {
		msg_set(msg, msglen, "%s: role session name %.64s: 2 to 64 characters of A-Z a-z 0-9 _+=,.@-",
		     where, session_name);
		return -EINVAL;
	}
	return 0;
}

/* Web identity from the environment.  -ENOENT with why when AWS_WEB_IDENTITY_TOKEN_FILE is not
 * set, -EINVAL with msg, -ENOMEM. */
static int web_identity_env_node(struct creds_provider *p, struct node **ret, char *msg, size_t msglen)
{
	const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *arn = env("AWS_ROLE_ARN");
	const char *session = env("AWS_ROLE_SESSION_NAME");
	char label[CREDS_SOURCE_SIZE];
	int r;

	if (!file) {
		msg_set(msg, msglen, "AWS_WEB_IDENTITY_TOKEN_FILE not set");
		return -ENOENT;
	}
	if (!arn) {
		msg_set(msg, msglen, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
		return -EINVAL;
	}
	if ((r = check_role("web identity", arn, NULL, session, msg, msglen)) < 0)
		return r;
	snprintf(label, sizeof(label), "web identity (role %s)", arn);
	return sts_node(p, NODE_WEB_IDENTITY, label, arn, NULL, session, 0, file, NULL, ret);
}

/* An http container endpoint must be on a loopback address or one of the ECS / EKS Pod
 * Identity link-local addresses; IP literals and "localhost" only (no DNS lookups). */
static bool allowed_container_host(const char *host)
{
	static const unsigned char eks6[16] = { 0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23 };
	struct in6_addr a6;
	struct in_addr a4;
	char h[64];
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		if (n - 2 >= sizeof(h))
			return false;
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		if (inet_pton(AF_INET6, h, &a6) != 1)
			return false;
		return IN6_IS_ADDR_LOOPBACK(&a6) || memcmp(&a6, eks6, 16) == 0;
	}
	if (inet_pton(AF_INET, host, &a4) != 1)
		return false;
	/* 127.0.0.0/8, 169.254.170.2, 169.254.170.23 */
	return (ntohl(a4.s_addr) >> 24) == 127 || ntohl(a4.s_addr) == 0xa9feaa02 ||
	       ntohl(a4.s_addr) == 0xa9feaa17;
}

/* The container endpoint from the environment.  -ENOENT with why when neither URI variable is
 * set, -EINVAL with msg, -ENOMEM. */
static int container_node(struct creds_provider *p, struct node **ret, char *msg, size_t msglen)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	char url[MAX_URL + 1], label[CREDS_SOURCE_SIZE];
	struct url_info ui;
	struct node *n;
	bool oom = false;

	if (!rel && !full) {
		msg_set(msg, msglen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI not set");
		return -ENOENT;
	}
	if (rel) {
		const char *base = p->container_endpoint ? p->container_endpoint : CONTAINER_DEFAULT_ENDPOINT;
		if (rel[0] != '/' || (size_t)snprintf(url, sizeof(url), "%s%s", base, rel) >= sizeof(url) ||
		    url_split(url, &ui) < 0) {
			msg_set(msg, msglen, "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI %.256s is not a path",
			     rel);
			return -EINVAL;
		}
	} else {
		if ((size_t)snprintf(url, sizeof(url), "%s", full) >= sizeof(url) ||
		    url_split(url, &ui) < 0) {
			msg_set(msg, msglen, "container: AWS_CONTAINER_CREDENTIALS_FULL_URI %.256s is not an http or https URL",
			     full);
			return -EINVAL;
		}
		if (strcmp(ui.scheme, "https") != 0 && !allowed_container_host(ui.host)) {
			msg_set(msg, msglen, "container: AWS_CONTAINER_CREDENTIALS_FULL_URI host %s is not allowed: use https, or a loopback address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23",
			     ui.host);
			return -EINVAL;
		}
	}
	if (!file && token && !header_safe(token, strlen(token))) {
		msg_set(msg, msglen, "container: AWS_CONTAINER_AUTHORIZATION_TOKEN has control characters");
		return -EINVAL;
	}
	{
		/* the label is logged: scheme and host only, not the credentials path */
		const char *host = strstr(url, "://");
		size_t n_auth = host ? strcspn(host + 3, "/?#") + (size_t)(host + 3 - url) : strlen(url);
		snprintf(label, sizeof(label), "container (%.*s)", (int)(n_auth < 200 ? n_auth : 200), url);
	}
	if (!(n = node_new(p, NODE_CONTAINER, label)))
		return -ENOMEM;
	n->url = dup_opt(url, &oom);
	n->auth_file = dup_opt(file, &oom);
	n->auth_token = file ? NULL : dup_opt(token, &oom);
	if (oom)
		return -ENOMEM;
	*ret = n;
	return 0;
}

/* Instance metadata.  -ENOENT with why when disabled, -EINVAL with msg (endpoint), -ENOMEM. */
static int imds_node(struct creds_provider *p, struct node **ret, char *msg, size_t msglen)
{
	const char *disabled = env("AWS_EC2_METADATA_DISABLED");
	const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	struct url_info ui;
	struct node *n;
	size_t len;

	if (disabled && strcasecmp(disabled, "true") == 0) {
		msg_set(msg, msglen, "disabled (AWS_EC2_METADATA_DISABLED=true)");
		return -ENOENT;
	}
	if (!ep)
		ep = mode && strcasecmp(mode, "IPv6") == 0 ? IMDS_IPV6_ENDPOINT : IMDS_DEFAULT_ENDPOINT;
	if (url_split(ep, &ui) < 0) {
		msg_set(msg, msglen, "instance metadata: AWS_EC2_METADATA_SERVICE_ENDPOINT %.256s is not an http or https URL",
		     ep);
		return -EINVAL;
	}
	if (!(n = node_new(p, NODE_IMDS, "instance metadata")))
		return -ENOMEM;
	if (!(n->endpoint = strdup(ep)))
		return -ENOMEM;
	len = strlen(n->endpoint);
	while (len && n->endpoint[len - 1] == '/')
		n->endpoint[--len] = '\0';
	*ret = n;
	return 0;
}

/* What the shared files step works with. */
struct shared {
	struct creds_profiles *files[2];	/* credentials, config; NULL when missing */
	char *paths[2];
	char why[2][600];			/* why a file is missing */
};

static const char *shared_get(const struct shared *s, const char *profile, const char *key)
{
	const char *v = creds_profiles_get(s->files[0], profile, key);

	return v ? v : creds_profiles_get(s->files[1], profile, key);
}

static bool shared_has(const struct shared *s, const char *profile)
{
	return creds_profiles_has(s->files[0], profile) || creds_profiles_has(s->files[1], profile);
}

/* "a -> b -> c" */
static void chain_text(char *out, size_t outlen, const char *const *visited, size_t n, const char *last)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		msg_append(out, outlen, "%s -> ", visited[i]);
	msg_append(out, outlen, "%s", last);
}

/* The credentials of profile `name`.  is_source: reached through source_profile (static keys
 * then win over role_arn).  visited[0..depth) are the profiles that led here.  0 and *ret;
 * -ENOENT when the profile has no credentials (msg says so); -EINVAL with msg; -ENOMEM. */
static int profile_node(struct creds_provider *p, const struct shared *s, const char *name, bool is_source,
			const char **visited, size_t depth, struct node **ret, char *msg, size_t msglen)
{
	const char *role_arn = shared_get(s, name, "role_arn");
	const char *source = shared_get(s, name, "source_profile");
	const char *csource = shared_get(s, name, "credential_source");
	const char *wif = shared_get(s, name, "web_identity_token_file");
	const char *ak = shared_get(s, name, "aws_access_key_id");
	const char *sk = shared_get(s, name, "aws_secret_access_key");
	const char *st = shared_get(s, name, "aws_session_token");
	const char *ext = shared_get(s, name, "external_id");
	const char *session = shared_get(s, name, "role_session_name");
	const char *dur = shared_get(s, name, "duration_seconds");
	char label[CREDS_SOURCE_SIZE], where[160], chain[600];
	struct node *base = NULL;
	long duration = CREDS_DEFAULT_DURATION;
	bool has_static = (ak && *ak) || (sk && *sk);
	int r;

	snprintf(where, sizeof(where), "profile %s", name);
	if (has_static && !(ak && *ak && sk && *sk)) {
		bool has_ak = ak && *ak;
		msg_set(msg, msglen, "%s: %s without %s", where,
		     has_ak ? "aws_access_key_id" : "aws_secret_access_key",
		     has_ak ? "aws_secret_access_key" : "aws_access_key_id");
		return -EINVAL;
	}
	if (has_static && (is_source || !role_arn || !*role_arn))
		return static_node(p, where, ak, sk, st, ret, msg, msglen);
	if (!role_arn || !*role_arn) {
		if (wif && *wif) {
			msg_set(msg, msglen, "%s: web_identity_token_file without role_arn", where);
			return -EINVAL;
		}
		if (source && *source) {
			msg_set(msg, msglen, "%s: source_profile without role_arn", where);
			return -EINVAL;
		}
		/* credential_process and SSO are not supported: say so rather than
		 * fall through to another identity (the container's, the instance's) */
		if (shared_get(s, name, "credential_process") || shared_get(s, name, "sso_session") ||
		    shared_get(s, name, "sso_start_url") || shared_get(s, name, "sso_account_id") ||
		    shared_get(s, name, "login_session")) {
			msg_set(msg, msglen, "%s uses credential_process or SSO, which trailwatch does not support: give it "
				     "keys, a role_arn or a web identity, or use environment variables", where);
			return -EINVAL;
		}
		msg_set(msg, msglen, "%s has no credentials", where);
		return -ENOENT;
	}
	if ((r = check_role(where, role_arn, ext, session && *session ? session : NULL, msg, msglen)) < 0)
		return r;
	if (session && !*session)
		session = NULL;
	if (wif && *wif) {
		snprintf(label, sizeof(label), "%s (web identity, role %s)", where, role_arn);
		return sts_node(p, NODE_WEB_IDENTITY, label, role_arn, NULL, session, 0, wif, NULL, ret);
	}
	if (dur) {
		char *end;
		errno = 0;
		duration = strtol(dur, &end, 10);
		if (errno || end == dur || *end || duration < 900 || duration > 43200) {
			msg_set(msg, msglen, "%s: duration_seconds %.32s is not 900 to 43200", where, dur);
			return -EINVAL;
		}
	}
	if (source && *source && csource && *csource) {
		msg_set(msg, msglen, "%s: both source_profile and credential_source", where);
		return -EINVAL;
	}
	if (source && *source) {
		bool seen = strcmp(source, name) == 0;
		for (size_t i = 0; i < depth; i++)
			seen = seen || strcmp(visited[i], source) == 0;
		if (seen && !(strcmp(source, name) == 0 && has_static)) {
			visited[depth] = name;
			chain_text(chain, sizeof(chain), visited, depth + 1, source);
			msg_set(msg, msglen, "%s: source_profile cycle: %s", where, chain);
			return -EINVAL;
		}
		if (seen) {
			r = static_node(p, where, ak, sk, st, &base, msg, msglen);
		} else if (depth + 1 > CREDS_MAX_PROFILE_CHAIN) {
			visited[depth] = name;
			chain_text(chain, sizeof(chain), visited, depth + 1, source);
			msg_set(msg, msglen, "%s: more than %d source_profile links: %s", where,
			     CREDS_MAX_PROFILE_CHAIN, chain);
			return -EINVAL;
		} else if (!shared_has(s, source)) {
			msg_set(msg, msglen, "%s: source_profile %s does not exist", where, source);
			return -EINVAL;
		} else {
			visited[depth] = name;
			r = profile_node(p, s, source, true, visited, depth + 1, &base, msg, msglen);
			if (r == -ENOENT) {
				msg_set(msg, msglen, "%s: source_profile %s has no credentials", where, source);
				r = -EINVAL;
			}
		}
	} else if (csource && *csource) {
		char detail[CREDS_MESSAGE_SIZE] = "";
		if (strcmp(csource, "Environment") == 0)
			r = env_node(p, &base, detail, sizeof(detail));
		else if (strcmp(csource, "Ec2InstanceMetadata") == 0)
			r = imds_node(p, &base, detail, sizeof(detail));
		else if (strcmp(csource, "EcsContainer") == 0)
			r = container_node(p, &base, detail, sizeof(detail));
		else {
			msg_set(msg, msglen, "%s: credential_source %.64s is not Environment, Ec2InstanceMetadata or EcsContainer",
			     where, csource);
			return -EINVAL;
		}
		if (r < 0 && r != -ENOMEM) {
			msg_set(msg, msglen, "%s: credential_source %s: %s", where, csource, detail);
			r = -EINVAL;
		}
	} else {
		msg_set(msg, msglen, "%s: role_arn without source_profile, credential_source or web_identity_token_file",
		     where);
		return -EINVAL;
	}
	if (r < 0)
		return r;
	snprintf(label, sizeof(label), "%s (assume role %s)", where, role_arn);
	return sts_node(p, NODE_ASSUME_ROLE, label, role_arn, ext, session, duration, NULL, base, ret);
}

/* "~/x" with HOME; NULL when there is no HOME (or no memory: *oom). */
static char *expand_path(const char *path, const char *home, bool *oom)
{
	char *out;

	if (path[0] != '~' || (path[1] != '/' && path[1] != '\0'))
		return dup_opt(path, oom);
	if (!home)
		return NULL;
	if (asprintf(&out, "%s%s", home, path + 1) < 0) {
		*oom = true;
		return NULL;
	}
	return out;
}

/* The shared files step.  0 and *ret; -ENOENT with why when the profile is not there (and
 * AWS_PROFILE does not name it) or has no credentials; -EINVAL with msg; -ENOMEM. */
static int shared_node(struct creds_provider *p, struct node **ret, char *msg, size_t msglen)
{
	static const char *const vars[2] = { "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE" };
	static const char *const defaults[2] = { "~/.aws/credentials", "~/.aws/config" };
	const char *explicit = p->profile ? p->profile : env("AWS_PROFILE"), *home = env("HOME");
	const char *profile = explicit ? explicit : "default";
	const char *visited[CREDS_MAX_PROFILE_CHAIN + 2];
	char detail[CREDS_MESSAGE_SIZE] = "", why[1400];
	struct shared s;
	bool oom = false;
	int r = 0;

	memset(&s, 0, sizeof(s));
	for (int i = 0; i < 2; i++) {
		const char *path = env(vars[i]);
		struct buf b;

		if (!path)
			path = defaults[i];
		s.paths[i] = expand_path(path, home, &oom);
		if (oom) {
			r = -ENOMEM;
			goto out;
		}
		if (!s.paths[i]) {
			snprintf(s.why[i], sizeof(s.why[i]), "%s: HOME not set", path);
			continue;
		}
		buf_init(&b, CREDS_MAX_FILE);
		r = buf_read_file(&b, s.paths[i], detail, sizeof(detail));
		if (r == 0)
			r = creds_profiles_parse(s.paths[i], b.data ? b.data : "", b.len, i == 1, &s.files[i],
						 detail, sizeof(detail));
		buf_wipe_free(&b);
		if (r == -ENOENT) {
			snprintf(s.why[i], sizeof(s.why[i]), "%.500s: no such file", s.paths[i]);
			r = 0;
			continue;
		}
		if (r < 0) {
			msg_set(msg, msglen, "shared files: %s", detail);
			if (r != -ENOMEM)
				r = -EINVAL;
			goto out;
		}
	}
	if (!shared_has(&s, profile)) {
		why[0] = '\0';
		for (int i = 0; i < 2; i++) {
			if (s.files[i])
				msg_append(why, sizeof(why), "%sprofile %s not in %s", i ? ", " : "", profile,
					s.paths[i]);
			else
				msg_append(why, sizeof(why), "%s%s", i ? ", " : "", s.why[i]);
		}
		if (explicit) {
			msg_set(msg, msglen, "shared files: profile %s (%s) not found: %s", profile,
			     p->profile ? "the profile option" : "AWS_PROFILE", why);
			r = -EINVAL;
		} else {
			msg_set(msg, msglen, "%s", why);
			r = -ENOENT;
		}
		goto out;
	}
	if (!p->region[0]) {
		const char *region = shared_get(&s, profile, "region");
		if (region && region_ok(region))
			snprintf(p->region, sizeof(p->region), "%s", region);
	}
	r = profile_node(p, &s, profile, false, visited, 0, ret, detail, sizeof(detail));
	if (r == -ENOENT)
		msg_set(msg, msglen, "%s", detail);
	else if (r < 0)
		msg_set(msg, msglen, "shared files: %s", detail);
out:
	for (int i = 0; i < 2; i++) {
		creds_profiles_free(s.files[i]);
		free(s.paths[i]);
	}
	return r;
}

/* Builds the chain and fetches its credentials once.  0 with p->top; negative with msg (and
 * no nodes left). */
static int resolve(struct creds_provider *p, int64_t now, char *msg, size_t msglen)
{
	char tried[CREDS_MESSAGE_SIZE], why[CREDS_MESSAGE_SIZE];
	const char *region = p->opt_region, *origin = "the region option", *ep;
	struct node *base = NULL, *top;
	bool fell_through = false;
	int r;

	nodes_free(p);
	tried[0] = why[0] = '\0';
	p->region[0] = '\0';
	if (!region && (region = env("AWS_REGION")))
		origin = "AWS_REGION";
	if (!region && (region = env("AWS_DEFAULT_REGION")))
		origin = "AWS_DEFAULT_REGION";
	if (region && !region_ok(region)) {
		msg_set(msg, msglen, "region %.64s (from %s) is not a region name", region, origin);
		return -EINVAL;
	}
	if (region)
		snprintf(p->region, sizeof(p->region), "%s", region);

	if (p->profile) {
		/* a profile chosen by configuration skips the environment's keys (as botocore does
		 * with an explicit profile), so that credential_source = Environment can work */
		snprintf(why, sizeof(why), "skipped, profile %s chosen", p->profile);
		r = -ENOENT;
	} else {
		r = env_node(p, &base, why, sizeof(why));
	}
	if (r == -ENOENT) {
		msg_append(tried, sizeof(tried), "environment: %s", why);
		r = web_identity_env_node(p, &base, why, sizeof(why));
	}
	if (r == -ENOENT) {
		msg_append(tried, sizeof(tried), "; web identity: %s", why);
		r = shared_node(p, &base, why, sizeof(why));
	}
	if (r == -ENOENT) {
		msg_append(tried, sizeof(tried), "; shared files: %s", why);
		r = container_node(p, &base, why, sizeof(why));
	}
	if (r == -ENOENT) {
		msg_append(tried, sizeof(tried), "; container: %s", why);
		r = imds_node(p, &base, why, sizeof(why));
		fell_through = true;
		if (r == -ENOENT) {
			msg_set(msg, msglen, "no AWS credentials: %s; instance metadata: %s", tried, why);
			goto fail;
		}
	}
	if (r < 0) {
		msg_set(msg, msglen, "%s", why);
		goto fail;
	}
	if (!p->region[0])
		snprintf(p->region, sizeof(p->region), "us-east-1");
	if (p->opt_sts_endpoint)
		ep = p->opt_sts_endpoint;
	else if (!(ep = env("AWS_ENDPOINT_URL_STS")))
		ep = env("AWS_ENDPOINT_URL");
	if (ep && strlen(ep) >= sizeof(p->sts_endpoint)) {
		msg_set(msg, msglen, "STS endpoint longer than %d bytes", MAX_URL);
		r = -EINVAL;
		goto fail;
	}
	if (ep)
		snprintf(p->sts_endpoint, sizeof(p->sts_endpoint), "%s", ep);
	else
		snprintf(p->sts_endpoint, sizeof(p->sts_endpoint), "https://sts.%s.amazonaws.com%s",
			 p->region, strncmp(p->region, "cn-", 3) == 0 ? ".cn" : "");
	if (fell_through) {
		r = node_fetch(p, base, now, why, sizeof(why));
		if (r < 0) {
			/* why is "instance metadata: ..." */
			msg_set(msg, msglen, "no AWS credentials: %s; %s", tried, why);
			r = r == -ENOMEM ? r : -ENOENT;
			goto fail;
		}
	}
	top = base;
	if (p->role_arn) {
		char label[CREDS_SOURCE_SIZE];
		snprintf(label, sizeof(label), "assume role %s", p->role_arn);
		r = sts_node(p, NODE_ASSUME_ROLE, label, p->role_arn, p->external_id, p->session_name,
			     p->duration, NULL, base, &top);
		if (r < 0)
			goto fail;
		p->top_is_option = true;
	}
	r = node_fetch(p, top, now, msg, msglen);
	if (r < 0)
		goto fail;
	p->top = top;
	return 0;
fail:
	if (r == -ENOMEM)
		msg_set(msg, msglen, "out of memory");
	nodes_free(p);
	return r;
}

/* ---- the provider --------------------------------------------------------------------------- */

int creds_provider_new(const struct creds_options *o, struct creds_provider **ret, char *msg, size_t msglen)
{
	struct creds_options none = { 0 };
	struct http_options ho = { 0 };
	struct creds_provider *p;
	struct url_info ui;
	bool oom = false;
	int r;

	if (!o)
		o = &none;
	if (o->region && !region_ok(o->region)) {
		msg_set(msg, msglen, "region %.64s is not a region name", o->region);
		return -EINVAL;
	}
	if (o->role_arn && (r = check_role("assume role option", o->role_arn, o->external_id,
					   o->session_name, msg, msglen)) < 0)
		return r;
	if (!o->role_arn && (o->external_id || o->session_name || o->duration_seconds)) {
		msg_set(msg, msglen, "external id, session name and duration need a role ARN");
		return -EINVAL;
	}
	if (o->duration_seconds && (o->duration_seconds < 900 || o->duration_seconds > 43200)) {
		msg_set(msg, msglen, "role duration %ld is not 900 to 43200 seconds", o->duration_seconds);
		return -EINVAL;
	}
	if (o->profile && !*o->profile) {
		msg_set(msg, msglen, "empty profile name");
		return -EINVAL;
	}
	if (o->sts_endpoint && url_split(o->sts_endpoint, &ui) < 0) {
		msg_set(msg, msglen, "STS endpoint %.256s is not an http or https URL", o->sts_endpoint);
		return -EINVAL;
	}
	if (o->container_endpoint && url_split(o->container_endpoint, &ui) < 0) {
		msg_set(msg, msglen, "container endpoint %.256s is not an http or https URL",
		     o->container_endpoint);
		return -EINVAL;
	}
	if (!(p = calloc(1, sizeof(*p))))
		return -ENOMEM;
	p->opt_region = dup_opt(o->region, &oom);
	p->profile = dup_opt(o->profile, &oom);
	p->role_arn = dup_opt(o->role_arn, &oom);
	p->external_id = dup_opt(o->external_id, &oom);
	p->session_name = dup_opt(o->session_name, &oom);
	p->opt_sts_endpoint = dup_opt(o->sts_endpoint, &oom);
	p->container_endpoint = dup_opt(o->container_endpoint, &oom);
	p->duration = o->duration_seconds ? o->duration_seconds : CREDS_DEFAULT_DURATION;
	ho.ca_file = o->ca_file;
	ho.on_wait = o->on_wait;
	ho.wait_ctx = o->wait_ctx;
	ho.cancel = o->cancel;
	if (oom || http_client_new(&ho, &p->http) < 0) {
		creds_provider_free(p);
		return -ENOMEM;
	}
	*ret = p;
	return 0;
}

void creds_provider_free(struct creds_provider *p)
{
	if (!p)
		return;
	nodes_free(p);
	http_client_free(p->http);
	free(p->opt_region);
	free(p->profile);
	free(p->role_arn);
	free(p->external_id);
	free(p->session_name);
	free(p->opt_sts_endpoint);
	free(p->container_endpoint);
	OPENSSL_cleanse(p, sizeof(*p));
	free(p);
}

int creds_get(struct creds_provider *p, int64_t now, const struct creds **ret, char *msg, size_t msglen)
{
	struct node *t;
	int r;

	msg_set(msg, msglen, "%s", "");
	if (!p->top && (r = resolve(p, now, msg, msglen)) < 0)
		return r;
	r = node_fetch(p, p->top, now, msg, msglen);
	if (r < 0)
		return r;
	t = p->top;
	p->out.access_key_id = t->ak;
	p->out.secret_access_key = t->sk;
	p->out.session_token = t->st;
	p->out.expiration = t->expiration;
	if (p->top_is_option)
		snprintf(p->out.source, sizeof(p->out.source), "%.110s, then assume role %.120s",
			 t->base->label, t->role_arn);
	else
		snprintf(p->out.source, sizeof(p->out.source), "%s", t->label);
	*ret = &p->out;
	return r;
}
