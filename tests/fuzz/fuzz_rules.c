/* fuzz_rules: the rule loader (YAML, selections, modifiers, conditions,
 * correlations, filters, tests) on arbitrary text.  A rule set that loads is
 * also evaluated on one record, so compiled patterns are exercised. */
#include <stdint.h>
#include <string.h>

#include "trailwatch/buf.h"
#include "trailwatch/builtin.h"
#include "trailwatch/ctlog.h"
#include "trailwatch/engine.h"
#include "trailwatch/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void nothing(void *ctx, const struct rule *r, struct record *rec)
{
	(void)ctx;
	(void)r;
	(void)rec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char log[] = "{\"Records\":[{\"eventName\":\"PutBucketPolicy\",\"userIdentity\":{\"arn\":"
				  "\"arn:aws:iam::1:user/a\",\"type\":\"IAMUser\"},\"sourceIPAddress\":\"10.1.2.3\","
				  "\"requestParameters\":{\"bucketName\":\"b\",\"x\":[1,2,{\"y\":\"z\"}]}}]}";
	static const char *lv[] = { "10.0.0.0/8", "x*" };
	static const char *names[] = { "corporate_cidrs" };
	static const char **vals[] = { lv };
	static size_t nv[] = { 2 };
	struct rule_lists lists = { 1, names, vals, nv };
	struct builtin_file f = { "fuzz.yml", (const char *)data, size };
	struct rule_source src = { .path = "fuzz", .files = &f, .nfiles = 1 };
	struct ruleset *rs = NULL;
	struct diag d;

	diag_init(&d);
	if (ruleset_load(&src, 1, &lists, &rs, &d) == 0) {
		struct engine e;
		struct record rec;
		struct ctlog_reader r;
		struct ctlog_error err;
		struct buf b;

		buf_init(&b, 0);
		buf_append(&b, log, sizeof(log) - 1);
		if (engine_init(&e, rs) == 0 && record_init(&rec, rs->fields.nslots) == 0) {
			if (ctlog_open(&r, b.data, b.len, &rs->fields, NULL, &err) == 0 &&
			    ctlog_next(&r, &rec, &err) == 1)
				engine_eval(&e, &rec, nothing, NULL);
			record_free(&rec);
			engine_free(&e);
		}
		buf_free(&b);
		ruleset_free(rs);
	}
	diag_free(&d);
	return 0;
}
