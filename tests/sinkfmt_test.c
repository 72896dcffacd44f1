/* sinkfmt_test.c: tests of the sink formatters (sinkfmt.h).
 *
 * Real alerts (as `trailwatch replay examples/sample-trail` prints them: a
 * single-event one and a correlation) go through every formatter; each
 * output is parsed back with json-c and checked member by member.  Then the
 * limits (Slack's block limits with a 10 KB user agent and a 5000-character
 * principal, multi-byte text cut at character boundaries, Teams' and
 * PagerDuty's sizes), escaping of hostile values, the severity mappings, the
 * webhook signature against OpenSSL's HMAC() and a known answer computed
 * with Python, journald's fields, and malformed alerts.  Lengths are counted
 * here independently of sinkfmt.c.  Prints one line per failure and
 * "N passed, N failed"; exits 1 on failure.
 */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/sinkfmt.h"

#include "check.h"

/* ---- Alerts ---- */

/* Exactly as trailwatch renders them (alert_render), trailing newline included. */
static const char SINGLE[] =
	"{\"id\":\"d23353436cf67a3a2347017245383e4d\",\"rule\":\"d7907576-6bf5-4565-94ba-d1bcff68de88\","
	"\"title\":\"S3 API called with a hacking or scripting tool's user agent\",\"severity\":\"medium\","
	"\"event_ids\":[\"90df58b2-d845-439b-85b8-86c4ca8da693\"],\"event_time\":\"2026-11-26T04:19:24Z\","
	"\"account\":\"130201276659\",\"region\":\"us-east-1\",\"event_name\":\"DeleteObject\","
	"\"principal\":\"arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748\","
	"\"source_ip\":\"45.155.205.24\",\"user_agent\":\"curl/7.88.1\",\"bucket\":\"prod-data-6659\","
	"\"object_key\":\"11/tmp/tmp/c82e3fca.jpg\",\"tags\":[\"attack.discovery\",\"attack.t1078.004\"],"
	"\"log_object\":\"examples/sample-trail/o-hbrpoig8f1/130201276659/CloudTrail/us-east-1/2026/11/26/"
	"130201276659_CloudTrail_us-east-1_20261126T0423Z_1Mlv550lMIeaa5pF.json.gz\"}\n";

static const char CORRELATION[] =
	"{\"id\":\"0b96917a97eaa05cb50d1e3eca5c869f\",\"rule\":\"f08b8a01-4f82-4fcb-b091-4164a7ad6509\","
	"\"title\":\"Mass deletion of S3 objects by one principal\",\"severity\":\"high\","
	"\"event_ids\":[\"c41264e3-f9a3-4738-90c4-56e7b74e398a\",\"dc5002bd-8974-4918-bbe1-56edd9419d16\","
	"\"e2b3f9e1-f048-4a72-9c42-5c57ccb99571\",\"5a1a7524-a810-4706-b601-6117609f2078\","
	"\"37663e4b-334c-4979-8484-4954cf0776f1\",\"29b369b1-2886-41a8-81ba-b8d2eeef87e9\","
	"\"0e3db7f2-2907-4574-a9f5-079f3a54e1d8\",\"b9fc71bd-504a-4fce-b972-418a0d942a3a\","
	"\"f412ea3d-c2cd-496e-bb56-a93fa6435c2a\",\"cf11e887-f6d0-4812-8a34-8661346a4e39\","
	"\"0aa6c7a5-7c1e-4e0b-9b8f-5d2f7c1b9e01\",\"0aa6c7a5-7c1e-4e0b-9b8f-5d2f7c1b9e02\"],"
	"\"event_time\":\"2026-11-26T04:19:24Z\",\"account\":\"130201276659\",\"region\":\"eu-west-3\","
	"\"event_name\":\"DeleteObject\","
	"\"principal\":\"arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748\","
	"\"source_ip\":\"45.155.205.24\",\"user_agent\":\"curl/7.88.1\",\"bucket\":\"prod-data-6659\","
	"\"object_key\":\"exports/2026/raw/raw/1f9cb741.jpg\",\"count\":100,\"value\":1073741824.5,"
	"\"group\":{\"userIdentity.arn\":"
	"\"arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748\","
	"\"sourceIPAddress\":null},"
	"\"tags\":[\"attack.impact\",\"attack.t1485\"],\"log_object\":\"s3://trail/AWSLogs/x.json.gz\","
	"\"first_seen\":\"2026-11-26T04:19:24Z\",\"window\":\"5m\"}\n";

/* An IAM alert without bucket, key or region: no S3 fields, no console link. */
static const char NOREGION[] =
	"{\"id\":\"aa\",\"rule\":\"r1\",\"title\":\"Access key created\",\"severity\":\"low\","
	"\"event_ids\":[\"e1\"],\"event_time\":\"2026-11-26T04:19:24Z\",\"account\":\"111122223333\","
	"\"region\":null,\"event_name\":\"CreateAccessKey\",\"principal\":null,\"source_ip\":null,"
	"\"user_agent\":null}";

/* ---- Helpers (independent of sinkfmt.c) ---- */

static json_object *parse(const char *s, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o = tok ? json_tokener_parse_ex(tok, s, (int)len) : NULL;

	if (tok && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* "a.2.b": members by name, array elements by number. */
static json_object *at(json_object *o, const char *path)
{
	char part[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");
		char *end;
		long idx;

		snprintf(part, sizeof(part), "%.*s", (int)n, path);
		path += n + (path[n] == '.');
		idx = strtol(part, &end, 10);
		if (*end == '\0' && json_object_is_type(o, json_type_array)) {
			o = json_object_array_get_idx(o, (size_t)idx);
		} else if (!json_object_object_get_ex(o, part, &o)) {
			return NULL;
		}
	}
	return o;
}

/* json_object_array_length asserts on anything but an array. */
static size_t alen(json_object *a)
{
	return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static const char *str_at(json_object *o, const char *path)
{
	json_object *v = at(o, path);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

static bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		unsigned c = p[i];
		size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		unsigned long cp;

		if (!n || i + n > len || (n > 1 && c < 0xc2) || c > 0xf4)
			return false;
		cp = n == 1 ? c : c & (0x7f >> n);
		for (size_t k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* UTF-16 code units of valid UTF-8. */
static size_t units(const char *s)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			n += *p >= 0xf0 ? 2 : 1;
	return n;
}

static bool has(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = s ? strlen(s) : 0, b = strlen(suffix);

	return s && a >= b && !memcmp(s + a - b, suffix, b);
}

/* Every & starts an entity, and no < or > is left. */
static bool mrkdwn_escaped(const char *s)
{
	for (const char *p = s; p && *p; p++) {
		if (*p == '<' || *p == '>')
			return false;
		if (*p == '&' && strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4))
			return false;
	}
	return s != NULL;
}

static char *repeat(const char *unit, size_t total_bytes)
{
	size_t ul = strlen(unit), n = 0;
	char *s = malloc(total_bytes + 1);

	while (n + ul <= total_bytes) {
		memcpy(s + n, unit, ul);
		n += ul;
	}
	s[n] = '\0';
	return s;
}

/* An alert built from key/value pairs (values JSON-escaped by json-c). */
static char *make_alert(const char *first_key, ...)
{
	json_object *o = json_object_new_object();
	va_list ap;
	char *s;

	va_start(ap, first_key);
	for (const char *k = first_key; k; k = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);
		json_object_object_add(o, k, json_object_new_string(v));
	}
	va_end(ap);
	json_object_object_add(o, "event_ids", json_object_new_array());
	json_object_array_add(json_object_object_get(o, "event_ids"), json_object_new_string("ev-1"));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

enum fmt { SLACK, TEAMS, PAGERDUTY };

/* Runs one formatter; returns the parsed output (NULL on failure, r says why). */
static json_object *run(enum fmt f, const char *alert, size_t len, const char *desc, struct buf *raw,
			int *ret)
{
	char msg[256] = "";
	struct buf b;
	json_object *o = NULL;
	int r;

	buf_init(&b, 0);
	r = f == SLACK ? sinkfmt_slack(alert, len, desc, &b, msg, sizeof(msg))
	    : f == TEAMS
		    ? sinkfmt_teams(alert, len, desc, &b, msg, sizeof(msg))
		    : sinkfmt_pagerduty(alert, len, "R0123456789ABCDEF0123456789ABCDE", &b, msg, sizeof(msg));
	if (ret)
		*ret = r;
	if (r == 0) {
		CHECKF(b.len > 0 && utf8_valid(b.data, b.len), "formatter %d: output is not valid UTF-8", f);
		o = parse(b.data, b.len);
		CHECKF(o != NULL, "formatter %d: output is not JSON: %.200s", f, b.data);
	} else if (!ret) {
		CHECKF(0, "formatter %d failed: %d %s", f, r, msg);
	}
	if (raw)
		*raw = b;
	else
		buf_free(&b);
	return o;
}

/* ---- Slack ---- */

/* The text of the field labelled label ("*Label*\n" stripped), or NULL. */
static const char *slack_field(json_object *root, const char *label)
{
	json_object *blocks = at(root, "blocks");
	char head[64];

	snprintf(head, sizeof(head), "*%s*\n", label);
	for (size_t i = 0; i < alen(blocks); i++) {
		json_object *fields = at(json_object_array_get_idx(blocks, i), "fields");

		for (size_t k = 0; fields && k < alen(fields); k++) {
			const char *t = str_at(json_object_array_get_idx(fields, k), "text");

			if (t && !strncmp(t, head, strlen(head)))
				return t + strlen(head);
		}
	}
	return NULL;
}

static json_object *block_of_type(json_object *root, const char *type, int nth)
{
	json_object *blocks = at(root, "blocks");

	for (size_t i = 0; i < alen(blocks); i++) {
		json_object *b = json_object_array_get_idx(blocks, i);

		if (eq(str_at(b, "type"), type) && nth-- == 0)
			return b;
	}
	return NULL;
}

/* The context element whose text starts with prefix. */
static const char *slack_context(json_object *root, const char *prefix)
{
	json_object *el = at(block_of_type(root, "context", 0), "elements");

	for (size_t i = 0; el && i < alen(el); i++) {
		const char *t = str_at(json_object_array_get_idx(el, i), "text");

		if (t && !strncmp(t, prefix, strlen(prefix)))
			return t;
	}
	return NULL;
}

/* Every limit of sinkfmt.h's Slack section; returns the sum of the texts. */
static size_t slack_check_limits(json_object *root, const char *what)
{
	json_object *blocks = at(root, "blocks");
	size_t nblocks = alen(blocks), total = 0;

	CHECKF(json_object_is_type(blocks, json_type_array) && nblocks >= 2 &&
		      nblocks <= SINKFMT_SLACK_BLOCKS_MAX,
	      "%s: %zu blocks", what, nblocks);
	CHECKF(units(str_at(root, "text")) <= SINKFMT_SLACK_FALLBACK_MAX, "%s: fallback text too long", what);
	for (size_t i = 0; i < nblocks; i++) {
		json_object *b = json_object_array_get_idx(blocks, i), *fields = at(b, "fields"), *el;
		const char *type = str_at(b, "type"), *t;

		if (eq(type, "header")) {
			t = str_at(b, "text.text");
			CHECKF(eq(str_at(b, "text.type"), "plain_text") && t &&
				      units(t) <= SINKFMT_SLACK_HEADER_MAX,
			      "%s: header of %zu characters", what, units(t));
			total += units(t);
		} else if (eq(type, "section")) {
			if ((t = str_at(b, "text.text"))) {
				CHECKF(units(t) <= SINKFMT_SLACK_SECTION_MAX, "%s: section text of %zu", what,
				      units(t));
				total += units(t);
			}
			CHECKF(t || fields, "%s: section with neither text nor fields", what);
			CHECKF(!fields || alen(fields) <= SINKFMT_SLACK_FIELDS_MAX, "%s: %zu fields", what,
			      alen(fields));
			for (size_t k = 0; fields && k < alen(fields); k++) {
				t = str_at(json_object_array_get_idx(fields, k), "text");
				CHECKF(t && units(t) <= SINKFMT_SLACK_FIELD_MAX, "%s: field of %zu", what,
				      units(t));
				CHECKF(eq(str_at(json_object_array_get_idx(fields, k), "type"), "mrkdwn"),
				      "%s: field not mrkdwn", what);
				total += t ? units(t) : 0;
			}
		} else if (eq(type, "context")) {
			el = at(b, "elements");
			CHECKF(el && alen(el) <= SINKFMT_SLACK_CONTEXT_MAX, "%s: context elements", what);
			for (size_t k = 0; el && k < alen(el); k++) {
				t = str_at(json_object_array_get_idx(el, k), "text");
				CHECKF(t && units(t) <= SINKFMT_SLACK_SECTION_MAX, "%s: context text %zu",
				      what, units(t));
				total += t ? units(t) : 0;
			}
		} else {
			CHECKF(0, "%s: unexpected block type %s", what, type ? type : "(none)");
		}
	}
	CHECKF(total <= SINKFMT_SLACK_TEXT_BUDGET, "%s: block texts add up to %zu", what, total);
	return total;
}

static void test_slack_single(void)
{
	json_object *o =
		run(SLACK, SINGLE, strlen(SINGLE), "Detects S3 calls from curl, sqlmap & co.", NULL, NULL);
	const char *link;

	if (!o)
		return;
	slack_check_limits(o, "slack single");
	CHECKF(eq(str_at(o, "text"), "[MEDIUM] S3 API called with a hacking or scripting tool's user agent"),
	      "fallback text: %s", str_at(o, "text"));
	CHECKF(eq(str_at(o, "blocks.0.type"), "header") &&
		      eq(str_at(o, "blocks.0.text.text"),
			 "[MEDIUM] S3 API called with a hacking or scripting tool's user agent"),
	      "header: %s", str_at(o, "blocks.0.text.text"));
	CHECKF(eq(slack_field(o, "Account"), "130201276659"), "account field");
	CHECKF(eq(slack_field(o, "Region"), "us-east-1"), "region field");
	CHECKF(eq(slack_field(o, "Principal"),
		 "arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748"),
	      "principal field");
	CHECKF(eq(slack_field(o, "Source IP"), "45.155.205.24"), "source ip field");
	CHECKF(eq(slack_field(o, "User agent"), "curl/7.88.1"), "user agent field");
	CHECKF(eq(slack_field(o, "S3 object"), "s3://prod-data-6659/11/tmp/tmp/c82e3fca.jpg"),
	      "s3 object field: %s", slack_field(o, "S3 object"));
	CHECKF(eq(slack_field(o, "Event"), "DeleteObject"), "event field");
	CHECKF(eq(slack_field(o, "Time"), "2026-11-26T04:19:24Z"), "time field");
	CHECKF(alen(at(o, "blocks.1.fields")) == 8, "8 fields");
	CHECKF(eq(str_at(block_of_type(o, "section", 1), "text.text"),
		 "Detects S3 calls from curl, sqlmap &amp; co."),
	      "description section: %s", str_at(block_of_type(o, "section", 1), "text.text"));
	CHECKF(!slack_field(o, "Count") && !slack_field(o, "Window") && !slack_field(o, "Group"),
	      "no correlation fields on a single-event alert");
	CHECKF(eq(slack_context(o, "*Rule*"), "*Rule* d7907576-6bf5-4565-94ba-d1bcff68de88"), "rule context");
	CHECKF(eq(slack_context(o, "*Alert*"), "*Alert* d23353436cf67a3a2347017245383e4d"), "alert context");
	CHECKF(eq(slack_context(o, "*Events*"), "*Events* 90df58b2-d845-439b-85b8-86c4ca8da693"),
	      "events context");
	link = slack_context(o, "<https://");
	CHECKF(eq(link, "<https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/"
		       "90df58b2-d845-439b-85b8-86c4ca8da693|CloudTrail console>"),
	      "console link: %s", link ? link : "(none)");
	CHECKF(at(o, "blocks.1.fields.0.verbatim") &&
		      json_object_get_boolean(at(o, "blocks.1.fields.0.verbatim")),
	      "mrkdwn is verbatim");
	json_object_put(o);

	/* No description: no description section. */
	o = run(SLACK, SINGLE, strlen(SINGLE), NULL, NULL, NULL);
	CHECKF(o && !block_of_type(o, "section", 1), "no description section without a description");
	json_object_put(o);
}

static void test_slack_correlation(void)
{
	json_object *o = run(SLACK, CORRELATION, strlen(CORRELATION), NULL, NULL, NULL);
	const char *ev;

	if (!o)
		return;
	slack_check_limits(o, "slack correlation");
	CHECKF(eq(str_at(o, "blocks.0.text.text"), "[HIGH] Mass deletion of S3 objects by one principal"),
	      "header");
	CHECKF(eq(slack_field(o, "Count"), "100"), "count field: %s", slack_field(o, "Count"));
	CHECKF(eq(slack_field(o, "Window"), "5m"), "window field");
	CHECKF(eq(slack_field(o, "Value"), "1073741824.5"), "value field: %s", slack_field(o, "Value"));
	CHECKF(eq(slack_field(o, "Group"),
		 "userIdentity.arn=arn:aws:sts::130201276659:assumed-role/app-backend/"
		 "app-backend-9584708748, sourceIPAddress=(none)"),
	      "group field: %s", slack_field(o, "Group"));
	ev = slack_context(o, "*Events*");
	CHECKF(ev && strstr(ev, "c41264e3-f9a3-4738-90c4-56e7b74e398a, dc5002bd") &&
		      ends_with(ev, " (+2 more)") && !strstr(ev, "0aa6c7a5"),
	      "events context shows 10 of 12: %s", ev ? ev : "(none)");
	CHECKF(eq(slack_context(o, "<https://"),
		 "<https://eu-west-3.console.aws.amazon.com/cloudtrailv2/home?"
		 "region=eu-west-3#/events/c41264e3-f9a3-4738-90c4-56e7b74e398a|CloudTrail console>"),
	      "console link of the first event");
	CHECKF(eq(slack_context(o, "*Log*"), "*Log* s3://trail/AWSLogs/x.json.gz"), "log context");
	json_object_put(o);

	o = run(SLACK, NOREGION, strlen(NOREGION), NULL, NULL, NULL);
	CHECKF(o && !slack_context(o, "<https://") && !slack_field(o, "Region") &&
		      !slack_field(o, "Principal") && !slack_field(o, "S3 object") &&
		      !slack_field(o, "Bucket") && eq(slack_field(o, "Account"), "111122223333"),
	      "null and missing members make no fields, no region no link");
	json_object_put(o);
}

static void test_slack_limits(void)
{
	/* The brief's case: a 10 KB user agent and a 5000-character principal,
	 * both multi-byte (2-, 3- and 4-byte characters). */
	char *ua = repeat("Mozilla/5.0 (X11; \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80) ", 10240);
	char *principal = repeat("\xc3\xa9", 10000); /* 5000 characters */
	char *title = repeat("T\xc3\xbc", 600);
	char *alert = make_alert("id", "x1", "rule", "r", "title", title, "severity", "critical", "account",
				 "1", "region", "us-east-1", "principal", principal, "user_agent", ua, NULL);
	char *desc = repeat("Rule & <description> \xe2\x82\xac ", 6000);
	json_object *o = run(SLACK, alert, strlen(alert), desc, NULL, NULL);
	const char *f, *h;

	if (o) {
		slack_check_limits(o, "slack 10KB user agent");
		h = str_at(o, "blocks.0.text.text");
		CHECKF(h && units(h) <= 150 && units(h) >= 148 && ends_with(h, "\xe2\x80\xa6") &&
			      !strncmp(h, "[CRITICAL] T", 12),
		      "header cut to 150 with an ellipsis: %zu", units(h));
		f = slack_field(o, "Principal");
		CHECKF(f && units(f) + strlen("*Principal*\n") <= 2000 &&
			      units(f) + strlen("*Principal*\n") >= 1998 && ends_with(f, "\xe2\x80\xa6"),
		      "principal field cut near 2000: %zu", f ? units(f) : 0);
		f = slack_field(o, "User agent");
		CHECKF(f && units(f) + strlen("*User agent*\n") <= 2000 &&
			      units(f) + strlen("*User agent*\n") >= 1995 && ends_with(f, "\xe2\x80\xa6") &&
			      utf8_valid(f, strlen(f)),
		      "user agent field cut near 2000: %zu", f ? units(f) : 0);
		f = str_at(block_of_type(o, "section", 1), "text.text");
		CHECKF(f && units(f) <= 3000 && ends_with(f, "\xe2\x80\xa6") && mrkdwn_escaped(f),
		      "description cut to 3000, entities whole: %zu", f ? units(f) : 0);
	}
	json_object_put(o);
	free(alert);

	/* Everything long at once: the total stays within the budget. */
	{
		char *key = repeat("<k&>\xf0\x9f\x98\x80/", 30000);
		char *bucket = repeat("b", 63);
		json_object *a = parse(CORRELATION, strlen(CORRELATION));
		json_object *group = json_object_new_object();

		json_object_object_add(a, "title", json_object_new_string(title));
		json_object_object_add(a, "principal", json_object_new_string(principal));
		json_object_object_add(a, "user_agent", json_object_new_string(ua));
		json_object_object_add(a, "object_key", json_object_new_string(key));
		json_object_object_add(a, "bucket", json_object_new_string(bucket));
		json_object_object_add(a, "log_object", json_object_new_string(key));
		json_object_object_add(a, "window", json_object_new_string(ua));
		json_object_object_add(group, "k1", json_object_new_string(ua));
		json_object_object_add(group, "k2", json_object_new_string(key));
		json_object_object_add(a, "group", group);
		alert = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
		json_object_put(a);
		o = run(SLACK, alert, strlen(alert), desc, NULL, NULL);
		if (o) {
			size_t total = slack_check_limits(o, "slack everything long");
			CHECKF(total > 1000, "still says something: %zu", total);
			f = slack_field(o, "S3 object");
			CHECKF(f && mrkdwn_escaped(f) && ends_with(f, "\xe2\x80\xa6"),
			      "key escaped and cut: %.80s", f);
			f = slack_field(o, "Group");
			CHECKF(f && mrkdwn_escaped(f) && ends_with(f, "\xe2\x80\xa6"),
			      "group escaped and cut");
		}
		json_object_put(o);
		free(alert);
		free(key);
		free(bucket);
	}
	free(ua);
	free(principal);
	free(title);
	free(desc);
}

static void test_slack_escaping(void)
{
	char *alert = make_alert("id", "x2", "rule", "r<1>", "title", "Policy <b> & \"more\"", "severity",
				 "high", "account", "1", "region", "us-east-1", "principal",
				 "<!channel> & <https://evil.example|click here>", "user_agent",
				 "ua\n*Account*\n999999999999\t<@U123>", "bucket", "b>&<", "object_key",
				 "k<>&amp;", NULL);
	json_object *o = run(SLACK, alert, strlen(alert), "desc <x>", NULL, NULL);

	if (o) {
		CHECKF(eq(slack_field(o, "Principal"),
			 "&lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt;"),
		      "principal escaped: %s", slack_field(o, "Principal"));
		CHECKF(eq(slack_field(o, "User agent"), "ua *Account* 999999999999 &lt;@U123&gt;"),
		      "newlines cannot fake a field: %s", slack_field(o, "User agent"));
		CHECKF(eq(slack_field(o, "S3 object"), "s3://b&gt;&amp;&lt;/k&lt;&gt;&amp;amp;"),
		      "bucket and key escaped: %s", slack_field(o, "S3 object"));
		CHECKF(eq(str_at(o, "text"), "[HIGH] Policy &lt;b&gt; &amp; \"more\""), "fallback escaped: %s",
		      str_at(o, "text"));
		CHECKF(eq(str_at(o, "blocks.0.text.text"), "[HIGH] Policy <b> & \"more\""),
		      "plain_text header not escaped");
		CHECKF(eq(slack_context(o, "*Rule*"), "*Rule* r&lt;1&gt;"), "rule escaped");
		CHECKF(eq(str_at(block_of_type(o, "section", 1), "text.text"), "desc &lt;x&gt;"),
		      "description escaped");
	}
	json_object_put(o);
	free(alert);
}

/* ---- Teams ---- */

static const char *teams_fact(json_object *root, int set, const char *title)
{
	json_object *body = at(root, "attachments.0.content.body");
	int seen = 0;

	for (size_t i = 0; i < alen(body); i++) {
		json_object *b = json_object_array_get_idx(body, i), *facts;

		if (!eq(str_at(b, "type"), "FactSet") || seen++ != set)
			continue;
		facts = at(b, "facts");
		for (size_t k = 0; k < alen(facts); k++)
			if (eq(str_at(json_object_array_get_idx(facts, k), "title"), title))
				return str_at(json_object_array_get_idx(facts, k), "value");
	}
	return NULL;
}

static void test_teams(void)
{
	struct buf raw;
	json_object *o = run(TEAMS, SINGLE, strlen(SINGLE), "Detects S3 calls from curl.", NULL, NULL);
	json_object *card;
	int r;

	if (o) {
		card = at(o, "attachments.0.content");
		CHECKF(eq(str_at(o, "type"), "message"), "type message");
		CHECKF(alen(at(o, "attachments")) == 1, "one attachment");
		CHECKF(eq(str_at(o, "attachments.0.contentType"), "application/vnd.microsoft.card.adaptive"),
		      "contentType");
		CHECKF(eq(str_at(card, "type"), "AdaptiveCard") && eq(str_at(card, "version"), "1.4") &&
			      eq(str_at(card, "$schema"),
				 "http://adaptivecards.io/schemas/adaptive-card.json"),
		      "adaptive card 1.4");
		CHECKF(eq(str_at(card, "body.0.type"), "TextBlock") &&
			      eq(str_at(card, "body.0.text"),
				 "[MEDIUM] S3 API called with a hacking or scripting tool's user agent") &&
			      eq(str_at(card, "body.0.weight"), "Bolder") &&
			      eq(str_at(card, "body.0.color"), "Warning"),
		      "title block: %s", str_at(card, "body.0.text"));
		CHECKF(eq(teams_fact(o, 0, "Account"), "130201276659") &&
			      eq(teams_fact(o, 0, "Region"), "us-east-1") &&
			      eq(teams_fact(o, 0, "Event"), "DeleteObject") &&
			      eq(teams_fact(o, 0, "Source IP"), "45.155.205.24") &&
			      eq(teams_fact(o, 0, "User agent"), "curl/7.88.1") &&
			      eq(teams_fact(o, 0, "Time"), "2026-11-26T04:19:24Z"),
		      "facts");
		CHECKF(eq(teams_fact(o, 0, "Principal"),
			 "arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748"),
		      "principal fact: %s", teams_fact(o, 0, "Principal"));
		CHECKF(eq(teams_fact(o, 0, "S3 object"), "s3://prod-data-6659/11/tmp/tmp/c82e3fca.jpg"),
		      "s3 object fact");
		CHECKF(eq(str_at(card, "body.2.text"), "Detects S3 calls from curl."), "description block");
		CHECKF(eq(str_at(card, "actions.0.type"), "Action.OpenUrl") &&
			      eq(str_at(card, "actions.0.url"),
				 "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?"
				 "region=us-east-1#/events/90df58b2-d845-439b-85b8-86c4ca8da693"),
		      "open url action: %s", str_at(card, "actions.0.url"));
		CHECKF(!teams_fact(o, 1, "Count"), "no correlation facts");
	}
	json_object_put(o);

	o = run(TEAMS, CORRELATION, strlen(CORRELATION), NULL, NULL, NULL);
	if (o) {
		card = at(o, "attachments.0.content");
		CHECKF(eq(str_at(card, "body.0.color"), "Attention"), "high is red");
		CHECKF(eq(teams_fact(o, 1, "Count"), "100") && eq(teams_fact(o, 1, "Window"), "5m") &&
			      eq(teams_fact(o, 1, "Value"), "1073741824.5"),
		      "correlation facts");
		CHECKF(has(teams_fact(o, 1, "Group"), "sourceIPAddress=(none)"), "group fact");
		CHECKF(has(str_at(card, "body.3.text"), "Alert 0b96917a97eaa05cb50d1e3eca5c869f") &&
			      has(str_at(card, "body.3.text"), "(+2 more)") &&
			      eq(str_at(card, "body.3.size"), "Small"),
		      "context block: %s", str_at(card, "body.3.text"));
	}
	json_object_put(o);

	o = run(TEAMS, NOREGION, strlen(NOREGION), NULL, NULL, NULL);
	CHECKF(o && !at(o, "attachments.0.content.actions"), "no region: no action");
	json_object_put(o);

	/* Markdown in values cannot make links or formatting. */
	{
		char *alert = make_alert("id", "x3", "title", "T", "severity", "low", "principal",
					 "[click](https://evil.example) *bold* _it_ `c` ~s~ \\", "user_agent",
					 "a\nb", NULL);
		o = run(TEAMS, alert, strlen(alert), NULL, NULL, NULL);
		CHECKF(o && eq(teams_fact(o, 0, "Principal"),
			      "\\[click\\](https://evil.example) \\*bold\\* \\_it\\_ \\`c\\` \\~s\\~ \\\\"),
		      "markdown escaped: %s", o ? teams_fact(o, 0, "Principal") : "");
		CHECKF(o && eq(teams_fact(o, 0, "User agent"), "a b"), "newline made a space");
		json_object_put(o);
		free(alert);
	}

	/* Huge values: the whole message stays within SINKFMT_TEAMS_MAX bytes. */
	{
		char *big = repeat("\xe4\xb8\xad<[x]>", 20000);
		char *alert =
			make_alert("id", "x4", "rule", big, "title", big, "severity", "critical", "account",
				   big, "region", "us-east-1", "principal", big, "user_agent", big, "bucket",
				   big, "object_key", big, "source_ip", big, "event_name", big, NULL);
		o = run(TEAMS, alert, strlen(alert), big, &raw, &r);
		CHECKF(r == 0 && raw.len <= SINKFMT_TEAMS_MAX, "teams message of %zu bytes", raw.len);
		CHECKF(o && ends_with(teams_fact(o, 0, "Principal"), "\xe2\x80\xa6") &&
			      utf8_valid(teams_fact(o, 0, "Principal"),
					 strlen(teams_fact(o, 0, "Principal"))),
		      "long values cut with an ellipsis");
		json_object_put(o);
		buf_free(&raw);
		free(alert);
		free(big);
	}
}

/* ---- PagerDuty ---- */

static void test_pagerduty(void)
{
	static const char *const sev[][2] = {
		{ "critical", "critical" }, { "high", "error" }, { "medium", "warning" },
		{ "low", "info" }, { "informational", "info" },
	};
	json_object *o = run(PAGERDUTY, SINGLE, strlen(SINGLE), NULL, NULL, NULL), *alert;
	char msg[256];
	struct buf b;
	int r;

	if (o) {
		alert = parse(SINGLE, strlen(SINGLE));
		CHECKF(eq(str_at(o, "routing_key"), "R0123456789ABCDEF0123456789ABCDE"), "routing key");
		CHECKF(eq(str_at(o, "event_action"), "trigger"), "trigger");
		CHECKF(eq(str_at(o, "dedup_key"), "d23353436cf67a3a2347017245383e4d"),
		      "dedup key is the alert id");
		CHECKF(eq(str_at(o, "payload.summary"),
			 "S3 API called with a hacking or scripting tool's user agent by "
			 "arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748 "
			 "on prod-data-6659"),
		      "summary: %s", str_at(o, "payload.summary"));
		CHECKF(eq(str_at(o, "payload.severity"), "warning"), "medium is warning");
		CHECKF(eq(str_at(o, "payload.source"), "130201276659/us-east-1"), "source: %s",
		      str_at(o, "payload.source"));
		CHECKF(eq(str_at(o, "payload.timestamp"), "2026-11-26T04:19:24Z"), "timestamp");
		CHECKF(eq(str_at(o, "payload.component"), "s3"), "component");
		CHECKF(eq(str_at(o, "payload.group"), "130201276659"), "group is the account");
		CHECKF(eq(str_at(o, "payload.class"), "d7907576-6bf5-4565-94ba-d1bcff68de88"),
		      "class is the rule");
		CHECKF(json_object_equal(at(o, "payload.custom_details"), alert),
		      "custom_details is the whole alert");
		CHECKF(eq(str_at(o, "links.0.href"),
			 "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?"
			 "region=us-east-1#/events/90df58b2-d845-439b-85b8-86c4ca8da693") &&
			      str_at(o, "links.0.text"),
		      "console link");
		json_object_put(alert);
	}
	json_object_put(o);

	o = run(PAGERDUTY, CORRELATION, strlen(CORRELATION), NULL, NULL, NULL);
	alert = parse(CORRELATION, strlen(CORRELATION));
	CHECKF(o && json_object_equal(at(o, "payload.custom_details"), alert) &&
		      json_object_get_int(at(o, "payload.custom_details.count")) == 100 &&
		      eq(str_at(o, "payload.custom_details.window"), "5m") &&
		      eq(str_at(o, "payload.severity"), "error"),
	      "correlation: custom details whole, high is error");
	json_object_put(alert);
	json_object_put(o);

	o = run(PAGERDUTY, NOREGION, strlen(NOREGION), NULL, NULL, NULL);
	CHECKF(o && eq(str_at(o, "payload.source"), "111122223333") &&
		      eq(str_at(o, "payload.component"), "cloudtrail") &&
		      eq(str_at(o, "payload.summary"), "Access key created") && !at(o, "links"),
	      "no region, bucket or principal");
	json_object_put(o);

	for (size_t i = 0; i < 5; i++) {
		char *a = make_alert("id", "s", "title", "t", "severity", sev[i][0], "event_time",
				     "yesterday", NULL);
		o = run(PAGERDUTY, a, strlen(a), NULL, NULL, NULL);
		CHECKF(o && eq(str_at(o, "payload.severity"), sev[i][1]), "severity %s -> %s: got %s",
		      sev[i][0], sev[i][1], o ? str_at(o, "payload.severity") : "");
		CHECKF(o && eq(str_at(o, "payload.source"), "trailwatch") && !at(o, "payload.timestamp") &&
			      !at(o, "payload.group") && !at(o, "payload.class"),
		      "bare alert: source trailwatch, a timestamp that is not ISO 8601 left out");
		json_object_put(o);
		free(a);
	}

	/* A 5000-character principal: summary within 1024, cut with an ellipsis. */
	{
		char *p = repeat("\xf0\x9f\x98\x80", 20000);
		char *a = make_alert("id", "s", "title", "Long", "severity", "high", "principal", p, NULL);
		const char *s;

		o = run(PAGERDUTY, a, strlen(a), NULL, NULL, NULL);
		s = o ? str_at(o, "payload.summary") : NULL;
		CHECKF(s && units(s) <= 1024 && units(s) >= 1022 && ends_with(s, "\xe2\x80\xa6") &&
			      !strncmp(s, "Long by ", 8) && utf8_valid(s, strlen(s)),
		      "summary of %zu characters", s ? units(s) : 0);
		json_object_put(o);
		free(a);
		free(p);
	}

	/* A 200 KB user agent: custom_details cut, the event within 512 KB. */
	{
		char *ua = repeat("x/\"", 120000);
		char *a = make_alert("id", "s", "title", "T", "severity", "high", "user_agent", ua, NULL);
		const char *u;

		o = run(PAGERDUTY, a, strlen(a), NULL, &b, &r);
		u = o ? str_at(o, "payload.custom_details.user_agent") : NULL;
		CHECKF(r == 0 && b.len < 512 * 1024, "event of %zu bytes", b.len);
		CHECKF(u && units(u) <= SINKFMT_PAGERDUTY_DETAIL_STRING_MAX && ends_with(u, "\xe2\x80\xa6") &&
			      json_object_get_boolean(at(o, "payload.custom_details.truncated")) &&
			      eq(str_at(o, "payload.custom_details.id"), "s"),
		      "custom_details strings cut and marked");
		json_object_put(o);
		buf_free(&b);
		free(a);
		free(ua);
	}

	/* Many long strings of characters that JSON may escape: custom_details
	 * keeps what fits its budget, in order, and says it was cut. */
	{
		json_object *a = parse(SINGLE, strlen(SINGLE)), *tags = json_object_new_array();
		char *slashes = repeat("/", 8000);
		const char *text;
		size_t n;

		for (int i = 0; i < 30; i++)
			json_object_array_add(tags, json_object_new_string(slashes));
		json_object_object_add(a, "tags", tags);
		text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE);
		n = strlen(text);
		o = run(PAGERDUTY, text, n, NULL, &b, &r);
		CHECKF(n < SINKFMT_ALERT_MAX && r == 0 && b.len < 512 * 1024, "alert %zu, event %zu bytes", n,
		      b.len);
		CHECKF(o && alen(at(o, "payload.custom_details.tags")) > 5 &&
			      alen(at(o, "payload.custom_details.tags")) < 30 &&
			      eq(str_at(o, "payload.custom_details.tags.0"), slashes) &&
			      json_object_get_boolean(at(o, "payload.custom_details.truncated")) &&
			      eq(str_at(o, "payload.custom_details.user_agent"), "curl/7.88.1"),
		      "tags dropped past the budget: %zu kept", alen(at(o, "payload.custom_details.tags")));
		json_object_put(o);
		json_object_put(a);
		buf_free(&b);
		free(slashes);
	}

	/* Bad routing keys; the message does not repeat the key. */
	buf_init(&b, 0);
	r = sinkfmt_pagerduty(SINGLE, strlen(SINGLE), "", &b, msg, sizeof(msg));
	CHECKF(r == -EINVAL && b.len == 0 && msg[0], "empty routing key: %d", r);
	r = sinkfmt_pagerduty(SINGLE, strlen(SINGLE), "secret key", &b, msg, sizeof(msg));
	CHECKF(r == -EINVAL && b.len == 0 && !strstr(msg, "secret"), "routing key with a space: %d %s", r,
	      msg);
	r = sinkfmt_pagerduty(SINGLE, strlen(SINGLE), NULL, &b, msg, sizeof(msg));
	CHECKF(r == -EINVAL, "NULL routing key");
	buf_free(&b);
}

/* ---- Webhook signature ---- */

static void hex(const unsigned char *md, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void test_webhook_sign(void)
{
	const char *body = SINGLE;
	const unsigned char secret[] = { 's', 0, 0xff, 'k', 'e', 'y' }; /* any bytes */
	char sig[SINKFMT_SIG_SIZE], sig2[SINKFMT_SIG_SIZE], want[65], *msg;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int r;

	/* Known answer: python3 -c "import hmac,hashlib; print(hmac.new(b'secret',
	 * b'1700000000.{\"id\":\"x\"}', hashlib.sha256).hexdigest())" */
	r = sinkfmt_webhook_sign("secret", 6, 1700000000, "{\"id\":\"x\"}", 10, sig);
	CHECKF(r == 0 && eq(sig, "2f7852138f9dbd8d61c07c2cfb0b8ac96a46a32d78d4527788fb42fcb409a493"),
	      "known answer: %d %s", r, sig);

	/* Against OpenSSL's one-shot HMAC over the concatenated message. */
	if (asprintf(&msg, "%lld.%s", 1764130764LL, body) < 0)
		return;
	HMAC(EVP_sha256(), secret, sizeof(secret), (const unsigned char *)msg, strlen(msg), md, &mdlen);
	hex(md, mdlen, want);
	r = sinkfmt_webhook_sign(secret, sizeof(secret), 1764130764, body, strlen(body), sig);
	CHECKF(r == 0 && mdlen == 32 && eq(sig, want) && strlen(sig) == 64,
	      "HMAC-SHA256 of \"TIMESTAMP.BODY\": %s vs %s", sig, want);
	free(msg);

	r = sinkfmt_webhook_sign(secret, sizeof(secret), 1764130765, body, strlen(body), sig2);
	CHECKF(r == 0 && !eq(sig, sig2), "the timestamp is signed");
	r = sinkfmt_webhook_sign(secret, sizeof(secret) - 1, 1764130764, body, strlen(body), sig2);
	CHECKF(r == 0 && !eq(sig, sig2), "the whole secret is used");
	r = sinkfmt_webhook_sign("secret", 6, 0, "", 0, sig2);
	HMAC(EVP_sha256(), "secret", 6, (const unsigned char *)"0.", 2, md, &mdlen);
	hex(md, mdlen, want);
	CHECKF(r == 0 && eq(sig2, want), "empty body at time 0");

	memcpy(sig2, "unchanged", 10);
	CHECKF(sinkfmt_webhook_sign("", 0, 1, "x", 1, sig2) == -EINVAL && eq(sig2, "unchanged"),
	      "empty secret rejected");
	CHECKF(sinkfmt_webhook_sign("s", 1, -1, "x", 1, sig2) == -EINVAL, "negative timestamp rejected");
	CHECKF(sinkfmt_webhook_sign(NULL, 3, 1, "x", 1, sig2) == -EINVAL, "NULL secret rejected");
}

/* ---- journald ---- */

/* The value of field name, or NULL; *n its length. */
static const char *jfield(const struct sinkfmt_journal_fields *f, const char *name, size_t *n)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < f->n; i++) {
		const char *p = f->iov[i].iov_base;

		if (f->iov[i].iov_len > nl && !memcmp(p, name, nl) && p[nl] == '=') {
			if (n)
				*n = f->iov[i].iov_len - nl - 1;
			return p + nl + 1;
		}
	}
	return NULL;
}

static bool jeq(const struct sinkfmt_journal_fields *f, const char *name, const char *want)
{
	size_t n;
	const char *v = jfield(f, name, &n);

	return v && n == strlen(want) && !memcmp(v, want, n);
}

static void test_journal(void)
{
	static const char *const prio[][2] = {
		{ "critical", "2" }, { "high", "3" }, { "medium", "4" }, { "low", "5" },
		{ "informational", "6" },
	};
	struct sinkfmt_journal_fields f, untouched;
	char msg[256];
	size_t n;
	const char *v;
	int r;

	r = sinkfmt_journal(SINGLE, strlen(SINGLE), &f, msg, sizeof(msg));
	CHECKF(r == 0, "journal fields: %d %s", r, msg);
	if (r == 0) {
		CHECKF(jeq(&f, "MESSAGE",
			  "trailwatch alert [medium] S3 API called with a hacking or scripting tool's user "
			  "agent: principal arn:aws:sts::130201276659:assumed-role/app-backend/"
			  "app-backend-9584708748, bucket prod-data-6659, key 11/tmp/tmp/c82e3fca.jpg, "
			  "from 45.155.205.24"),
		      "MESSAGE: %.*s", (int)f.iov[0].iov_len, (char *)f.iov[0].iov_base);
		CHECKF(jeq(&f, "PRIORITY", "4"), "PRIORITY 4 for medium");
		CHECKF(jeq(&f, "MESSAGE_ID", SINKFMT_JOURNAL_MESSAGE_ID) &&
			      strlen(SINKFMT_JOURNAL_MESSAGE_ID) == 32,
		      "MESSAGE_ID");
		CHECKF(jeq(&f, "SYSLOG_IDENTIFIER", "trailwatch"), "SYSLOG_IDENTIFIER");
		CHECKF(jeq(&f, "TRAILWATCH_ALERT_ID", "d23353436cf67a3a2347017245383e4d"), "ALERT_ID");
		CHECKF(jeq(&f, "TRAILWATCH_RULE", "d7907576-6bf5-4565-94ba-d1bcff68de88"), "RULE");
		CHECKF(jeq(&f, "TRAILWATCH_SEVERITY", "medium"), "SEVERITY");
		CHECKF(jeq(&f, "TRAILWATCH_EVENT_ID", "90df58b2-d845-439b-85b8-86c4ca8da693"), "EVENT_ID");
		CHECKF(jeq(&f, "TRAILWATCH_EVENT_NAME", "DeleteObject"), "EVENT_NAME");
		CHECKF(jeq(&f, "TRAILWATCH_ACCOUNT", "130201276659"), "ACCOUNT");
		CHECKF(jeq(&f, "TRAILWATCH_REGION", "us-east-1"), "REGION");
		CHECKF(jeq(&f, "TRAILWATCH_PRINCIPAL",
			  "arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748"),
		      "PRINCIPAL");
		CHECKF(jeq(&f, "TRAILWATCH_SOURCE_IP", "45.155.205.24"), "SOURCE_IP");
		CHECKF(jeq(&f, "TRAILWATCH_BUCKET", "prod-data-6659"), "BUCKET");
		CHECKF(jeq(&f, "TRAILWATCH_OBJECT_KEY", "11/tmp/tmp/c82e3fca.jpg"), "OBJECT_KEY");
		v = jfield(&f, "TRAILWATCH_ALERT", &n);
		CHECKF(v && n == strlen(SINGLE) - 1 && !memcmp(v, SINGLE, n),
		      "TRAILWATCH_ALERT is the alert without its newline");
		CHECKF(f.n == 16, "16 fields: %zu", f.n);
		sinkfmt_journal_free(&f);
		CHECKF(f.n == 0, "free zeroes");
	}
	sinkfmt_journal_free(NULL);

	r = sinkfmt_journal(NOREGION, strlen(NOREGION), &f, msg, sizeof(msg));
	CHECKF(r == 0 && jeq(&f, "MESSAGE", "trailwatch alert [low] Access key created") &&
		      jeq(&f, "PRIORITY", "5") && !jfield(&f, "TRAILWATCH_REGION", NULL) &&
		      !jfield(&f, "TRAILWATCH_PRINCIPAL", NULL) && !jfield(&f, "TRAILWATCH_BUCKET", NULL) &&
		      !jfield(&f, "TRAILWATCH_OBJECT_KEY", NULL) &&
		      !jfield(&f, "TRAILWATCH_SOURCE_IP", NULL) && jeq(&f, "TRAILWATCH_EVENT_ID", "e1"),
	      "absent members make no fields");
	if (r == 0)
		sinkfmt_journal_free(&f);

	for (size_t i = 0; i < 5; i++) {
		char *a = make_alert("id", "p", "title", "t", "severity", prio[i][0], NULL);
		r = sinkfmt_journal(a, strlen(a), &f, msg, sizeof(msg));
		CHECKF(r == 0 && jeq(&f, "PRIORITY", prio[i][1]) && jeq(&f, "TRAILWATCH_SEVERITY", prio[i][0]),
		      "PRIORITY %s for %s", prio[i][1], prio[i][0]);
		if (r == 0)
			sinkfmt_journal_free(&f);
		free(a);
	}

	/* Long values are bounded; the alert stays valid JSON; MESSAGE one line. */
	{
		char *p = repeat("\xe2\x82\xac\n", 100000);
		char *a = make_alert("id", "big", "title", "Big\nalert", "severity", "high", "principal", p,
				     NULL);
		json_object *o;

		r = sinkfmt_journal(a, strlen(a), &f, msg, sizeof(msg));
		CHECKF(r == 0, "long alert: %d %s", r, msg);
		if (r == 0) {
			v = jfield(&f, "TRAILWATCH_PRINCIPAL", &n);
			CHECKF(v && n <= SINKFMT_JOURNAL_VALUE_MAX && n > SINKFMT_JOURNAL_VALUE_MAX - 8 &&
				      utf8_valid(v, n) && !memcmp(v + n - 3, "\xe2\x80\xa6", 3) &&
				      memchr(v, '\n', n),
			      "principal cut to %zu bytes, newlines kept", n);
			v = jfield(&f, "TRAILWATCH_ALERT", &n);
			o = v ? parse(v, n) : NULL;
			CHECKF(o && n <= SINKFMT_JOURNAL_VALUE_MAX &&
				      json_object_get_boolean(at(o, "truncated")) &&
				      eq(str_at(o, "id"), "big") && eq(str_at(o, "severity"), "high"),
			      "TRAILWATCH_ALERT re-serialized within %d: %zu bytes",
			      SINKFMT_JOURNAL_VALUE_MAX, n);
			json_object_put(o);
			v = jfield(&f, "MESSAGE", &n);
			CHECKF(v && !memchr(v, '\n', n) && n <= 3 * SINKFMT_JOURNAL_MESSAGE_MAX &&
				      !strncmp(v, "trailwatch alert [high] Big alert: principal ", 45),
			      "MESSAGE on one line, bounded: %zu", n);
			sinkfmt_journal_free(&f);
		}
		free(a);
		free(p);
	}

	memset(&untouched, 0x5a, sizeof(untouched));
	f = untouched;
	r = sinkfmt_journal("{\"id\":\"x\"}", 10, &f, msg, sizeof(msg));
	CHECKF(r == -EINVAL && !memcmp(&f, &untouched, sizeof(f)), "bad alert leaves the fields untouched");
	CHECKF(sinkfmt_journal_send(NULL) == -EINVAL, "send NULL");
}

/* ---- Malformed alerts ---- */

/* An alert with reasons and covered rules, values with markup in them. */
static const char REASONED[] =
	"{\"id\":\"0123456789abcdef0123456789abcdef\",\"rule\":\"4aa5595f-a97e-4e28-9fa1-a2859280fd24\","
	"\"title\":\"S3 bucket policy grants access to an account outside the organisation\","
	"\"severity\":\"high\",\"event_ids\":[\"e1\"],\"event_time\":\"2026-11-26T10:00:00Z\","
	"\"account\":\"111122223333\",\"region\":\"us-east-1\",\"event_name\":\"PutBucketPolicy\","
	"\"principal\":\"arn:aws:iam::111122223333:user/x\",\"bucket\":\"b\","
	"\"reasons\":[\"shared with <!channel> & 999988887777\",\"second *one*\\nnext line\"],"
	"\"covers\":[{\"rule\":\"2cb5c644-a241-48ad-9c06-16434fc3ed60\",\"title\":\"S3 bucket policy changed\"}]}\n";

static void test_reasons_and_covers(void)
{
	struct sinkfmt_journal_fields f;
	char msg[256];
	json_object *o = run(SLACK, REASONED, strlen(REASONED), "Desc.", NULL, NULL), *card;
	const char *t;

	if (o) {
		slack_check_limits(o, "slack reasons");
		t = str_at(block_of_type(o, "section", 1), "text.text");
		CHECKF(eq(t, "*Why* shared with &lt;!channel&gt; &amp; 999988887777 \xc2\xb7 second *one* next line\n"
			     "*Also covers* S3 bucket policy changed"),
		      "why section, escaped and on one line per part: %s", t ? t : "(none)");
		CHECKF(eq(str_at(block_of_type(o, "section", 2), "text.text"), "Desc."),
		      "the description comes after");
		json_object_put(o);
	}
	o = run(SLACK, SINGLE, strlen(SINGLE), NULL, NULL, NULL);
	CHECKF(o && !block_of_type(o, "section", 1), "no why section without reasons or covers");
	json_object_put(o);

	o = run(TEAMS, REASONED, strlen(REASONED), NULL, NULL, NULL);
	if (o) {
		card = at(o, "attachments.0.content");
		CHECKF(eq(str_at(card, "body.2.text"), "**Why** shared with <!channel> & 999988887777 \xc2\xb7 "
							 "second \\*one\\* next line"),
		      "teams why block: %s", str_at(card, "body.2.text"));
		CHECKF(eq(str_at(card, "body.3.text"), "**Also covers** S3 bucket policy changed"),
		      "teams covers block: %s", str_at(card, "body.3.text"));
		json_object_put(o);
	}

	CHECKF(sinkfmt_journal(REASONED, strlen(REASONED), &f, msg, sizeof(msg)) == 0, "journal: %s", msg);
	CHECKF(jeq(&f, "MESSAGE", "trailwatch alert [high] S3 bucket policy grants access to an account outside "
				 "the organisation: principal arn:aws:iam::111122223333:user/x, bucket b (shared with "
				 "<!channel> & 999988887777 \xc2\xb7 second *one* next line)"),
	      "journal MESSAGE with the reasons: %.*s", (int)f.iov[0].iov_len, (char *)f.iov[0].iov_base);
	sinkfmt_journal_free(&f);
}

static void test_malformed(void)
{
	static const struct {
		const char *alert;
		const char *why;
	} bad[] = {
		{ "", "empty" },
		{ "not json", "not JSON" },
		{ "[1,2]", "an array" },
		{ "\"text\"", "a string" },
		{ "null", "null" },
		{ "{\"id\":\"x\",\"title\":\"t\"", "truncated" },
		{ "{\"title\":\"t\",\"severity\":\"high\"}", "no id" },
		{ "{\"id\":\"x\",\"severity\":\"high\"}", "no title" },
		{ "{\"id\":\"x\",\"title\":\"t\"}", "no severity" },
		{ "{\"id\":7,\"title\":\"t\",\"severity\":\"high\"}", "id not a string" },
		{ "{\"id\":\"\",\"title\":\"t\",\"severity\":\"high\"}", "empty id" },
		{ "{\"id\":\"x\",\"title\":[\"t\"],\"severity\":\"high\"}", "title not a string" },
		{ "{\"id\":\"x\",\"title\":\"t\",\"severity\":\"urgent\"}", "unknown severity" },
		{ "{\"id\":\"x\",\"title\":\"t\",\"severity\":\"HIGH\"}", "severity in capitals" },
		{ "{\"id\":\"x\",\"title\":\"t\",\"severity\":\"high\"} {}", "two objects" },
		{ "{\"id\":\"x\",\"title\":\"t\",\"severity\":\"high\"}garbage", "trailing text" },
		{ "{\"id\":\"x\",\"title\":\"\xff\xfe\",\"severity\":\"high\"}", "invalid UTF-8" },
		{ "{\"id\":\"x\",\"title\":\"t\",\"severity\":\"high\",}", "trailing comma" },
	};
	char msg[256];
	struct buf b;
	struct sinkfmt_journal_fields f;
	int r;

	buf_init(&b, 0);
	buf_append_str(&b, "prefix");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i].alert);

		msg[0] = '\0';
		r = sinkfmt_slack(bad[i].alert, len, NULL, &b, msg, sizeof(msg));
		CHECKF(r == -EINVAL && msg[0] && b.len == 6, "slack, %s: %d '%s'", bad[i].why, r, msg);
		msg[0] = '\0';
		r = sinkfmt_teams(bad[i].alert, len, NULL, &b, msg, sizeof(msg));
		CHECKF(r == -EINVAL && msg[0] && b.len == 6, "teams, %s: %d", bad[i].why, r);
		msg[0] = '\0';
		r = sinkfmt_pagerduty(bad[i].alert, len, "key", &b, msg, sizeof(msg));
		CHECKF(r == -EINVAL && msg[0] && b.len == 6, "pagerduty, %s: %d", bad[i].why, r);
		msg[0] = '\0';
		r = sinkfmt_journal(bad[i].alert, len, &f, msg, sizeof(msg));
		CHECKF(r == -EINVAL && msg[0], "journal, %s: %d", bad[i].why, r);
	}
	/* An embedded NUL within len, a NULL alert, an id too long, too large. */
	{
		static const char nul[] = "{\"id\":\"x\",\"title\":\"t\",\"severity\":\"high\"}\0{}";
		r = sinkfmt_slack(nul, sizeof(nul) - 1, NULL, &b, msg, sizeof(msg));
	}
	CHECKF(r == -EINVAL, "NUL after the object: %d", r);
	r = sinkfmt_slack(NULL, 0, NULL, &b, NULL, 0);
	CHECKF(r == -EINVAL && b.len == 6, "NULL alert, NULL msg");
	{
		char *id = repeat("i", SINKFMT_ID_MAX + 1);
		char *a = make_alert("id", id, "title", "t", "severity", "high", NULL);
		r = sinkfmt_slack(a, strlen(a), NULL, &b, msg, sizeof(msg));
		CHECKF(r == -EINVAL && strstr(msg, "id"), "id too long: %s", msg);
		free(a);
		free(id);
	}
	{
		char *ua = repeat("u", SINKFMT_ALERT_MAX);
		char *a = make_alert("id", "x", "title", "t", "severity", "high", "user_agent", ua, NULL);
		r = sinkfmt_slack(a, strlen(a), NULL, &b, msg, sizeof(msg));
		CHECKF(r == -EINVAL && strstr(msg, "bytes"), "alert too large: %s", msg);
		free(a);
		free(ua);
	}
	/* A message buffer of 1 byte is still terminated. */
	msg[0] = 'x';
	r = sinkfmt_slack("[]", 2, NULL, &b, msg, 1);
	CHECKF(r == -EINVAL && msg[0] == '\0', "msglen 1");
	CHECKF(!strncmp(b.data, "prefix", 6) && b.len == 6, "output untouched by failures");
	buf_free(&b);

	/* Successful output is appended after what the buffer holds. */
	buf_init(&b, 0);
	buf_append_str(&b, "prefix");
	r = sinkfmt_pagerduty(SINGLE, strlen(SINGLE), "key", &b, msg, sizeof(msg));
	CHECKF(r == 0 && !strncmp(b.data, "prefix{\"routing_key\"", 20), "appends");
	buf_free(&b);

	/* out's own limit: -E2BIG, nothing appended. */
	buf_init(&b, 100);
	r = sinkfmt_slack(SINGLE, strlen(SINGLE), NULL, &b, msg, sizeof(msg));
	CHECKF(r == -E2BIG && b.len == 0, "slack into a 100-byte buffer: %d", r);
	r = sinkfmt_pagerduty(SINGLE, strlen(SINGLE), "key", &b, msg, sizeof(msg));
	CHECKF(r == -E2BIG && b.len == 0, "pagerduty into a 100-byte buffer: %d", r);
	buf_free(&b);
}

/* ---- The console link ---- */

static void test_console_url(void)
{
	struct buf b;
	int r;

	buf_init(&b, 0);
	r = sinkfmt_console_url("ap-southeast-2", 14, "a/b c#?&%\xc3\xa9", 11, &b);
	CHECKF(r == 0 && b.len &&
		      eq(b.data, "https://ap-southeast-2.console.aws.amazon.com/cloudtrailv2/home?region="
				 "ap-southeast-2#/events/a%2Fb%20c%23%3F%26%25%C3%A9"),
	      "percent-encoded: %s", b.data ? b.data : "");
	buf_reset(&b);
	CHECKF(sinkfmt_console_url("cn-north-1", 10, "e", 1, &b) == -ENOENT && b.len == 0, "China: no link");
	CHECKF(sinkfmt_console_url("us-gov-west-1", 13, "e", 1, &b) == -ENOENT, "GovCloud: no link");
	CHECKF(sinkfmt_console_url("us-east-1.evil.com/x", 20, "e", 1, &b) == -ENOENT,
	      "region with dots: no link");
	CHECKF(sinkfmt_console_url("US-EAST-1", 9, "e", 1, &b) == -ENOENT, "region in capitals: no link");
	CHECKF(sinkfmt_console_url("", 0, "e", 1, &b) == -ENOENT, "no region");
	CHECKF(sinkfmt_console_url("us-east-1", 9, "", 0, &b) == -ENOENT, "no event id");
	CHECKF(b.len == 0, "nothing appended");
	buf_free(&b);

	/* A hostile region in an alert only costs the link. */
	{
		char *a =
			make_alert("id", "x", "title", "t", "severity", "high", "region", "evil.com#", NULL);
		json_object *o = run(SLACK, a, strlen(a), NULL, NULL, NULL);
		CHECKF(o && !slack_context(o, "<https://") && eq(slack_field(o, "Region"), "evil.com#"),
		      "hostile region");
		json_object_put(o);
		free(a);
	}
}

int main(void)
{
	test_slack_single();
	test_slack_correlation();
	test_reasons_and_covers();
	test_slack_limits();
	test_slack_escaping();
	test_teams();
	test_pagerduty();
	test_webhook_sign();
	test_journal();
	test_malformed();
	test_console_url();
	return check_summary();
}
