/* ruletest.c: running rule-embedded tests (see ruletest.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "trailwatch/buf.h"
#include "trailwatch/process.h"
#include "trailwatch/ruletest.h"

struct counter {
	const struct rule *rule;
	long alerts;
};

static int count_alert(void *ctx, const struct alert *a)
{
	struct counter *c = ctx;

	if (a->rule == c->rule)
		c->alerts++;
	return 0;
}

/* Wraps the test's events in a CloudTrail file body. */
static int build_log(const struct rule_test *t, struct buf *b)
{
	int r = buf_append_str(b, "{\"Records\":[");

	for (size_t i = 0; i < t->nevents && r == 0; i++) {
		if (i)
			r = buf_append(b, ",", 1);
		if (r == 0)
			r = buf_append_str(b, t->events[i]);
	}
	return r ? r : buf_append_str(b, "]}");
}

static const char *test_name(const struct rule_test *t, size_t i, char *buf, size_t len)
{
	if (t->name)
		return t->name;
	snprintf(buf, len, "#%zu", i + 1);
	return buf;
}

static bool same_reasons(const struct match *m, const struct rule_test *t)
{
	if (m->nreasons != t->nexpect_reasons)
		return false;
	for (size_t i = 0; i < m->nreasons; i++)
		if (strcmp(m->reasons[i], t->expect_reasons[i]) != 0)
			return false;
	return true;
}

/* "expected reasons ["a"], got ["b", "c"]" into why. */
static void describe_reasons(const struct match *m, const struct rule_test *t, char *why, size_t whylen)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, "expected reasons [");
	for (size_t i = 0; i < t->nexpect_reasons; i++)
		buf_printf(&b, "%s\"%s\"", i ? ", " : "", t->expect_reasons[i]);
	buf_append_str(&b, "], got [");
	for (size_t i = 0; i < m->nreasons; i++)
		buf_printf(&b, "%s\"%s\"", i ? ", " : "", m->reasons[i]);
	buf_append_str(&b, "]");
	snprintf(why, whylen, "%s", b.data ? b.data : "expected other reasons");
	buf_free(&b);
}

static int run_one(const struct config *cfg, const struct ruleset *rs, struct processor *p,
		   const struct rule *rule, const struct rule_test *t, char *why, size_t whylen)
{
	struct file_result res;
	struct buf log;
	int r;

	buf_init(&log, 0);
	file_result_init(&res);
	r = build_log(t, &log);
	if (r == 0)
		r = processor_run_buffer(p, rule->file, log.data, log.len, &res);
	if (r < 0) {
		snprintf(why, whylen, "%s", strerror(-r));
		goto out;
	}
	if (res.nerrors) {
		snprintf(why, whylen, "the test event is not valid CloudTrail JSON: %s", res.errors[0]);
		r = 1;
		goto out;
	}
	if (t->expect_alerts < 0) {
		const struct match *m = NULL;
		for (size_t i = 0; i < res.nmatches && !m; i++)
			if (res.matches[i].rule == rule)
				m = &res.matches[i];
		if (!!m != t->expect_match) {
			snprintf(why, whylen, t->expect_match ? "expected a match, the rule did not match" :
								 "expected no match, the rule matched");
			r = 1;
		} else if (m && t->has_expect_reasons && !same_reasons(m, t)) {
			describe_reasons(m, t, why, whylen);
			r = 1;
		}
	} else {
		struct counter c = { .rule = rule };
		struct dispatch d;

		r = dispatch_init(&d, rs, &cfg->corr, count_alert, &c);
		if (r == 0)
			r = dispatch_result(&d, &res);
		if (r == 0)
			r = dispatch_flush(&d);
		dispatch_free(&d);
		if (r < 0) {
			snprintf(why, whylen, "%s", strerror(-r));
			goto out;
		}
		if (c.alerts != t->expect_alerts) {
			snprintf(why, whylen, "expected %ld alerts, got %ld", t->expect_alerts, c.alerts);
			r = 1;
		}
	}
out:
	file_result_free(&res);
	buf_free(&log);
	return r;
}

int ruletest_run(const struct config *cfg, const struct ruleset *rs, FILE *out)
{
	struct processor p;
	size_t passed = 0, failed = 0;
	int r;

	r = processor_init(&p, rs, &cfg->limits);
	if (r < 0) {
		fprintf(out, "cannot start: %s\n", strerror(-r));
		return 2;
	}
	for (size_t i = 0; i < rs->nrules; i++) {
		const struct rule *rule = rs->rules[i];

		for (size_t k = 0; k < rule->ntests; k++) {
			const struct rule_test *t = &rule->tests[k];
			char why[600], name[32];

			r = run_one(cfg, rs, &p, rule, t, why, sizeof(why));
			if (r == 0) {
				passed++;
				continue;
			}
			failed++;
			fprintf(out, "%s:%u: FAIL %s test %s: %s\n", rule->file, t->line,
				rule->id ? rule->id : rule->name, test_name(t, k, name, sizeof(name)), why);
		}
	}
	processor_free(&p);
	fprintf(out, "%zu passed, %zu failed\n", passed, failed);
	return failed ? 1 : 0;
}
