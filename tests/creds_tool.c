/* creds_tool: resolves AWS credentials through the creds module and prints what it got, for
 * tests/test_creds.py.
 *
 *   creds_tool [--profile P] [--role-arn A] [--external-id E] [--session-name S]
 *              [--duration N] [--sts-endpoint URL] [--container-endpoint URL]
 *              [--region R] [--now EPOCH] [--twice] [--calls N]
 *
 * One creds_get at --now (default: the clock), or with --twice a first one at the clock and a
 * second at --now, to show a refresh.  --calls N makes N calls at --now instead (N-1 before the
 * last one, each failure of those printed as "creds_tool: call K: MESSAGE" on stderr).  Prints one JSON line for the last call:
 *   {"access_key_id":..., "secret_sha256_prefix": first 8 hex of SHA-256(secret),
 *    "has_token":bool, "token_sha256_prefix":... or null, "expiration":N, "source":...,
 *    "kept_old":bool, "warning":... or null}
 * Exit 0; exit 2 with "creds_tool: MESSAGE" on stderr when creds_get fails, 1 on bad usage.
 * Secrets are never printed, only hash prefixes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/sha.h>

#include "trailwatch/creds.h"
#include "trailwatch/http.h"

static void sha_prefix(const char *s, char out[9])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)s, strlen(s), md);
	for (int i = 0; i < 4; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int usage(void)
{
	fprintf(stderr, "usage: creds_tool [--profile P] [--role-arn A] [--external-id E] [--session-name S]\n"
			"                  [--duration N] [--sts-endpoint URL] [--container-endpoint URL]\n"
			"                  [--region R] [--now EPOCH] [--twice]\n");
	return 1;
}

int main(int argc, char **argv)
{
	struct creds_options o = { 0 };
	struct creds_provider *p = NULL;
	const struct creds *c = NULL;
	struct json_object *out;
	char msg[CREDS_MESSAGE_SIZE], hash[9];
	long long now = (long long)time(NULL);
	bool twice = false;
	long calls = 1;
	int r = 0, status = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--twice") == 0) {
			twice = true;
			continue;
		}
		if (!v)
			return usage();
		i++;
		if (strcmp(a, "--role-arn") == 0)
			o.role_arn = v;
		else if (strcmp(a, "--external-id") == 0)
			o.external_id = v;
		else if (strcmp(a, "--session-name") == 0)
			o.session_name = v;
		else if (strcmp(a, "--duration") == 0)
			o.duration_seconds = strtol(v, NULL, 10);
		else if (strcmp(a, "--sts-endpoint") == 0)
			o.sts_endpoint = v;
		else if (strcmp(a, "--container-endpoint") == 0)
			o.container_endpoint = v;
		else if (strcmp(a, "--profile") == 0)
			o.profile = v;
		else if (strcmp(a, "--region") == 0)
			o.region = v;
		else if (strcmp(a, "--now") == 0)
			now = strtoll(v, NULL, 10);
		else if (strcmp(a, "--calls") == 0)
			calls = strtol(v, NULL, 10);
		else
			return usage();
	}
	if (http_global_init() < 0) {
		fprintf(stderr, "creds_tool: curl_global_init failed\n");
		return 2;
	}
	r = creds_provider_new(&o, &p, msg, sizeof(msg));
	if (r < 0) {
		fprintf(stderr, "creds_tool: %s\n", r == -ENOMEM ? "out of memory" : msg);
		return 2;
	}
	if (twice) {
		r = creds_get(p, (int64_t)time(NULL), &c, msg, sizeof(msg));
		if (r < 0) {
			fprintf(stderr, "creds_tool: first call: %s\n", msg);
			status = 2;
			goto out;
		}
	}
	for (long k = 1; k < calls; k++) {
		r = creds_get(p, (int64_t)now, &c, msg, sizeof(msg));
		if (r < 0)
			fprintf(stderr, "creds_tool: call %ld: %s\n", k, msg);
	}
	r = creds_get(p, (int64_t)now, &c, msg, sizeof(msg));
	if (r < 0) {
		fprintf(stderr, "creds_tool: %s\n", msg);
		status = 2;
		goto out;
	}
	out = json_object_new_object();
	json_object_object_add(out, "access_key_id", json_object_new_string(c->access_key_id));
	sha_prefix(c->secret_access_key, hash);
	json_object_object_add(out, "secret_sha256_prefix", json_object_new_string(hash));
	json_object_object_add(out, "has_token", json_object_new_boolean(c->session_token != NULL));
	if (c->session_token)
		sha_prefix(c->session_token, hash);
	json_object_object_add(out, "token_sha256_prefix",
			       c->session_token ? json_object_new_string(hash) : NULL);
	json_object_object_add(out, "expiration", json_object_new_int64(c->expiration));
	json_object_object_add(out, "source", json_object_new_string(c->source));
	json_object_object_add(out, "kept_old", json_object_new_boolean(r == 1));
	json_object_object_add(out, "warning", r == 1 ? json_object_new_string(msg) : NULL);
	printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(out);
out:
	creds_provider_free(p);
	return status;
}
