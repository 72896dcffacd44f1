/* creds.h: AWS credentials, found the way the AWS SDKs find them.
 *
 * The chain, first source that applies wins:
 *
 *   1. environment    AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN).
 *   2. web identity   AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME):
 *                     STS AssumeRoleWithWebIdentity, the token file read again at each refresh.
 *   3. shared files   AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and AWS_CONFIG_FILE
 *                     (~/.aws/config; "~/" is $HOME), the credentials file winning key by key;
 *                     profile creds_options.profile, else AWS_PROFILE, else "default": static keys;
 *                     role_arn + source_profile (a chain of them) or + credential_source
 *                     (Environment, Ec2InstanceMetadata, EcsContainer): STS AssumeRole with the
 *                     profile's external_id, role_session_name, duration_seconds;
 *                     role_arn + web_identity_token_file.  In the selected profile role_arn
 *                     wins over static keys; in a source_profile static keys win (as in
 *                     botocore), which also lets a profile name itself as its source.
 *                     A selected profile without credentials does not apply (the chain goes
 *                     on), but a profile named by AWS_PROFILE or the option that does not
 *                     exist is an error.  Missing files are not errors; unreadable or broken
 *                     ones are.
 *   4. container      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on http://169.254.170.2) or
 *                     AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback address,
 *                     169.254.170.2, 169.254.170.23 or fd00:ec2::23 - IP literals or
 *                     "localhost" only), Authorization from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 *                     (read again each time) or AWS_CONTAINER_AUTHORIZATION_TOKEN.
 *   5. EC2 metadata   IMDSv2 only (no fallback to v1) at AWS_EC2_METADATA_SERVICE_ENDPOINT
 *                     (default http://169.254.169.254, or http://[fd00:ec2::254] with
 *                     AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6), unless
 *                     AWS_EC2_METADATA_DISABLED=true.  1 s to connect, 2 s per request, one
 *                     retry; a 401 gets a new token and one more try.
 *
 * Timeouts: instance metadata as above; container 2 s to connect, 5 s in all; STS 5 s and
 * 30 s.  Each request is tried once more after a transport error or a 5xx.
 *
 * Then, when creds_options.role_arn is set, STS AssumeRole on top of what the chain gave,
 * signed with it.  A source that applies but is broken (one key of a pair, a profile named by
 * AWS_PROFILE that does not exist, a source_profile cycle, an STS error...) is an error: the
 * chain does not go on past it.  When nothing applies the error names every source and why.
 *
 * STS endpoint: creds_options.sts_endpoint, else AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL,
 * else https://sts.REGION.amazonaws.com (.com.cn for cn-* regions).  Region: creds_options.region,
 * else AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else us-east-1.
 *
 * The environment and the files are read with the first creds_get (and again by the next
 * one as long as none has succeeded), not by creds_provider_new.  After that the same sources
 * are asked again when credentials are due: those with an expiration are refreshed when
 * CREDS_REFRESH_MARGIN seconds or less remain (an assumed role's base credentials as well, when
 * the role is assumed again).  A failed refresh keeps the old credentials until they actually
 * expire (creds_get returns 1 and says why) and is not tried again for CREDS_RETRY_SECONDS;
 * once they have expired, calls inside that pause return the refresh's error again without
 * asking.  Credentials that arrive already expired (a host clock far off) are such an error
 * (-EKEYEXPIRED, the message asks about the clock), not a success.  A container or instance
 * metadata answer with a Token but no Expiration is refused, as the AWS SDKs do: it could never
 * be refreshed.
 *
 * Nothing here logs.  Messages never contain a secret (secret keys, session tokens, web
 * identity or container tokens); secrets are wiped (OPENSSL_cleanse) when dropped, as are the
 * response bodies and request bodies that carried them.  json-c's, libexpat's and libcurl's
 * internal copies are not wiped.  A provider is used by one thread at a time.
 */
#ifndef TRAILWATCH_CREDS_H
#define TRAILWATCH_CREDS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trailwatch/buf.h"

#define CREDS_REFRESH_MARGIN 300		/* seconds before expiration: refresh */
#define CREDS_RETRY_SECONDS 30			/* between refresh attempts while old ones are valid */
#define CREDS_MAX_FILE (1u << 20)		/* a shared config or credentials file */
#define CREDS_MAX_TOKEN_FILE (16u << 10)	/* a web identity or container token file */
#define CREDS_MAX_RESPONSE (64u << 10)		/* an STS, container or IMDS response body */
#define CREDS_MAX_PROFILE_CHAIN 8		/* source_profile links followed */
#define CREDS_MAX_PROFILES 1024			/* sections in one file */
#define CREDS_MAX_PROPERTIES 256		/* properties in one profile of one file */
#define CREDS_SOURCE_SIZE 256
#define CREDS_MESSAGE_SIZE 2048			/* enough for any message (longer ones are cut) */
#define CREDS_DEFAULT_SESSION_NAME "trailwatch"
#define CREDS_DEFAULT_DURATION 3600

/* Credentials as creds_get hands them out: owned by the provider, valid until the next
 * creds_get or creds_provider_free.  Copy what must live longer. */
struct creds {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL for permanent keys */
	int64_t expiration;		/* seconds since the epoch; 0: does not expire */
	/* Where they came from, e.g. "environment", "profile prod (assume role arn:...)",
	 * "instance metadata (role web)", "environment, then assume role arn:..." */
	char source[CREDS_SOURCE_SIZE];
};

/* Every field may be NULL or 0.  Strings are copied by creds_provider_new. */
struct creds_options {
	const char *region;		/* for STS; see above */
	const char *profile;		/* like AWS_PROFILE (and before it), but, as with botocore's
					 * explicit profile, the environment's keys are skipped: so
					 * credential_source = Environment means something */
	const char *role_arn;		/* assume this role on top of the chain */
	const char *external_id;	/* with role_arn */
	const char *session_name;	/* with role_arn; default CREDS_DEFAULT_SESSION_NAME */
	long duration_seconds;		/* with role_arn, 900..43200; 0: CREDS_DEFAULT_DURATION */
	const char *sts_endpoint;	/* "https://sts.example" or "http://127.0.0.1:8080" */
	const char *container_endpoint;	/* tests: replaces http://169.254.170.2 for RELATIVE_URI */
	const char *ca_file;		/* TLS trust; NULL: the system's */
	/* While a credential request waits (STS, instance metadata,
	 * container endpoint): called about every HTTP_WAIT_MS, and a flag
	 * that abandons it when non-zero (http_options' on_wait and cancel). */
	void (*on_wait)(void *ctx, bool received);
	void *wait_ctx;
	volatile sig_atomic_t *cancel;
};

struct creds_provider;

/* Checks the options (role ARN form, session name and external id characters, duration,
 * region, endpoint scheme) and makes a provider; nothing is read or fetched yet.  0 and *ret,
 * -EINVAL with msg, -ENOMEM. */
int creds_provider_new(const struct creds_options *o, struct creds_provider **ret, char *msg, size_t msglen);

/* Accepts NULL.  Wipes every secret it holds. */
void creds_provider_free(struct creds_provider *p);

/* Current credentials at time `now` (seconds since the epoch; it decides expiry and is the
 * signing time of STS requests, so pass the real clock).  Resolves the chain on the first
 * call, refreshes when due.  Returns
 *    0  and *ret;
 *    1  and *ret: the old credentials, still valid, because a refresh failed; msg says why
 *       (worth a warning);
 *   -ENOENT  no source applies; msg lists every source and why it did not apply (the
 *            instance metadata's failure included: it is the last source);
 *   -EINVAL  a source applies but is misconfigured (msg says which and why);
 *   -EIO     a source could not be reached or refused (transport, HTTP or STS error, bad
 *            response).  A refresh that fails once the old credentials have expired
 *            returns its own error (-EIO, or -EINVAL for a token file gone);
 *   -ENOMEM.
 * After a failure of the first resolution the next call starts over (environment and files
 * read again); after a success the chain stays as it was resolved.
 * msg (msglen bytes, CREDS_MESSAGE_SIZE is enough) is set to "" on a plain success. */
int creds_get(struct creds_provider *p, int64_t now, const struct creds **ret, char *msg, size_t msglen);

/* ---- The shared config and credentials file format ----
 *
 * As the AWS CLI and SDKs read it: lines are "[section]" (a trailing # or ; comment allowed),
 * "key = value" (key and value trimmed; a # or ; preceded by whitespace starts a comment in
 * the value), comments (# or ; first on the line, after optional indentation) and blank
 * lines.  An indented line after "key =" with an empty value belongs to a sub-section
 * ("s3 =\n  max_concurrent_requests = 20") and is skipped; after a non-empty value it
 * continues the value (joined with "\n").  Keys are case-sensitive.  In a config file the
 * profiles are [default], [profile NAME] (also [profile default]); other sections
 * ([sso-session x], [services x], a bare [x]) are checked for syntax and ignored.  In a
 * credentials file every [NAME] is profile NAME.  A section that appears twice is one
 * profile; a key set twice keeps the last value.  NUL bytes, a property before any section,
 * a line that is none of the above, more than CREDS_MAX_PROFILES sections or more than
 * CREDS_MAX_PROPERTIES keys in one profile, and files larger than CREDS_MAX_FILE are errors
 * "FILE:LINE: what". */
struct creds_profiles;

/* Parses text[0..len) (need not be NUL-terminated) of the file named `file` (for messages).
 * 0 and *ret (free with creds_profiles_free), -EINVAL with msg, -ENOMEM. */
int creds_profiles_parse(const char *file, const char *text, size_t len, bool config_file,
			 struct creds_profiles **ret, char *msg, size_t msglen);

/* Accepts NULL.  Wipes the values. */
void creds_profiles_free(struct creds_profiles *ps);

/* Whether the file has profile `name`. */
bool creds_profiles_has(const struct creds_profiles *ps, const char *name);

/* The value of key in profile `name`, or NULL; valid until creds_profiles_free. */
const char *creds_profiles_get(const struct creds_profiles *ps, const char *name, const char *key);

#endif
