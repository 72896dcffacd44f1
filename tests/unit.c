/* unit.c: C-level tests of the modules that are easiest to test directly:
 * wildcard matching, CIDR and numbers, base64offset, time parsing, the
 * record scanner's error recovery, the bounded buffer, YAML limits, condition
 * parsing, correlation windows (late events, running sums) and the engine's
 * memo tables for long pattern lists, and SigV4 signing against AWS's test
 * suite (../shared/testdata/aws-sigv4-test-suite, or $SIGV4_SUITE).  Prints one line per
 * failure and "N passed, N failed". */
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "trailwatch/alert.h"
#include "trailwatch/backoff.h"
#include "trailwatch/buf.h"
#include "trailwatch/builtin.h"
#include "trailwatch/cond.h"
#include "trailwatch/engine.h"
#include "trailwatch/config.h"
#include "trailwatch/correlate.h"
#include "trailwatch/ctlog.h"
#include "trailwatch/input.h"
#include "trailwatch/match.h"
#include "trailwatch/rules.h"
#include "trailwatch/sigv4.h"
#include "trailwatch/statefile.h"
#include "trailwatch/strmap.h"
#include "trailwatch/yamltree.h"

#include "check.h"

static bool glob(const char *pat, const char *text, bool cased)
{
	struct arena a;
	struct pattern p;
	bool r;

	arena_init(&a);
	memset(&p, 0, sizeof(p));
	pattern_glob(&p, &a, pat, strlen(pat), cased);
	r = glob_match(&p, text, strlen(text));
	arena_free(&a);
	return r;
}

/* fold_equal against a byte-by-byte reference, for every byte value at
 * every position of a 19-byte text (two 8-byte steps and a tail). */
static void test_fold_equal(void)
{
	char text[19], lower[19];
	int bad = 0;

	for (int c = 0; c < 256; c++) {
		for (size_t pos = 0; pos < sizeof(text); pos++) {
			memcpy(text, "AbCdEfGhIjKlMnOpQrS", sizeof(text));
			text[pos] = (char)c;
			for (size_t i = 0; i < sizeof(text); i++)
				lower[i] = (char)tolower((unsigned char)text[i]);
			if (c >= 0x80)
				lower[pos] = (char)c;	/* only ASCII letters fold */
			bad += !fold_equal(lower, text, sizeof(text));
			lower[pos] ^= 0x20;
			bad += fold_equal(lower, text, sizeof(text));
		}
	}
	CHECK(bad == 0);
	CHECK(fold_equal("s3.amazonaws.com", "S3.AMAZONAWS.COM", 16));
	CHECK(!fold_equal("s3.amazonaws.com", "S3.AMAZONAWS.CON", 16));
	CHECK(!fold_equal("@[`{", "`{@[", 4));
}

static void test_glob(void)
{
	CHECK(glob("abc", "ABC", false));
	CHECK(!glob("abc", "ABC", true));
	CHECK(glob("a*c", "abbbc", false));
	CHECK(glob("a*c", "ac", false));
	CHECK(!glob("a*c", "ab", false));
	CHECK(glob("*", "", false));
	CHECK(glob("", "", false));
	CHECK(!glob("", "x", false));
	CHECK(glob("a?c", "abc", false));
	CHECK(!glob("a?c", "ac", false));
	CHECK(glob("*a*b*c*", "xxaxxbxxcxx", false));
	CHECK(!glob("*a*b*c*", "xxaxxcxxbxx", false));
	CHECK(glob("a**b", "ab", false));
	CHECK(glob("a\\*b", "a*b", false));
	CHECK(!glob("a\\*b", "axb", false));
	CHECK(glob("a\\?b", "a?b", false));
	CHECK(!glob("a\\?b", "axb", false));
	CHECK(glob("a\\\\*", "a\\zzz", false));
	CHECK(glob("a\\b", "a\\b", false));
	CHECK(glob("*.amazonaws.com", "config.AMAZONAWS.com", false));
	CHECK(glob("*ab*", "aab", false));	/* backtracking in contains */
	CHECK(glob("*aab", "aaab", false));
	CHECK(glob("pre*", "prefix", false));
	CHECK(!glob("pre*", "pr", false));
}

static bool account_is(const char *s, const char *want)
{
	const char *a;
	size_t n;

	if (!arn_account(s, strlen(s), &a, &n))
		return want == NULL;
	return want && n == strlen(want) && memcmp(a, want, n) == 0;
}

static void test_arn_account(void)
{
	CHECK(account_is("arn:aws:iam::111122223333:root", "111122223333"));
	CHECK(account_is("arn:aws:kms:us-east-1:999988887777:key/abcd", "999988887777"));
	CHECK(account_is("arn:aws-us-gov:sts::123456789012:assumed-role/r/s", "123456789012"));
	CHECK(account_is("444455556666", "444455556666"));
	CHECK(account_is("*", NULL));
	CHECK(account_is("arn:aws:s3:::bucket/key", NULL));
	CHECK(account_is("arn:aws:iam::12345678901:root", NULL));
	CHECK(account_is("arn:aws:iam::1111222233334:root", NULL));
	CHECK(account_is("arn:aws:iam::111122223333", NULL));
	CHECK(account_is("79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be", NULL));
	CHECK(account_is("s3.amazonaws.com", NULL));
	CHECK(account_is("", NULL));
}

static void test_cidr_numbers(void)
{
	struct cidr c;
	uint8_t a[16];
	int fam;
	double d;

	CHECK(cidr_parse(&c, "10.0.0.0/8") == 0 && c.family == 4 && c.prefix == 8);
	CHECK(ip_parse("10.255.1.2", 10, a, &fam) == 0 && cidr_contains(&c, a, fam));
	CHECK(ip_parse("11.0.0.1", 8, a, &fam) == 0 && !cidr_contains(&c, a, fam));
	CHECK(cidr_parse(&c, "192.168.1.128/25") == 0);
	CHECK(ip_parse("192.168.1.200", 13, a, &fam) == 0 && cidr_contains(&c, a, fam));
	CHECK(ip_parse("192.168.1.100", 13, a, &fam) == 0 && !cidr_contains(&c, a, fam));
	CHECK(cidr_parse(&c, "2001:db8::/32") == 0 && c.family == 6);
	CHECK(ip_parse("2001:db8:ffff::1", 16, a, &fam) == 0 && cidr_contains(&c, a, fam));
	CHECK(ip_parse("10.0.0.1", 8, a, &fam) == 0 && !cidr_contains(&c, a, fam));
	CHECK(cidr_parse(&c, "0.0.0.0/0") == 0 && ip_parse("8.8.8.8", 7, a, &fam) == 0 && cidr_contains(&c, a, fam));
	CHECK(cidr_parse(&c, "10.0.0.0/33") < 0);
	CHECK(cidr_parse(&c, "10.0.0/8") < 0);
	CHECK(cidr_parse(&c, "10.0.0.0/") < 0);
	CHECK(cidr_parse(&c, "10.0.0.0/-1") < 0);
	CHECK(ip_parse("AWS Internal", 12, a, &fam) < 0);
	CHECK(number_parse("1e3", 3, &d) == 0 && d == 1000);
	/* plain integers take a path of their own; longer ones go to strtod */
	CHECK(number_parse("124239", 6, &d) == 0 && d == 124239);
	CHECK(number_parse("0", 1, &d) == 0 && d == 0);
	CHECK(number_parse("007", 3, &d) == 0 && d == 7);
	CHECK(number_parse("999999999999999", 15, &d) == 0 && d == 999999999999999.0);
	CHECK(number_parse("12345678901234567", 17, &d) == 0 && d == 12345678901234567.0);
	CHECK(number_parse("12 ", 3, &d) < 0);
	CHECK(number_parse("-2.5", 4, &d) == 0 && d == -2.5);
	CHECK(number_parse("0x10", 4, &d) < 0);
	CHECK(number_parse("inf", 3, &d) < 0);
	CHECK(number_parse("12a", 3, &d) < 0);
	CHECK(number_parse("", 0, &d) < 0);
}

static void test_base64(void)
{
	struct arena a;
	char *out[3];
	size_t len[3], n;
	char *e;

	arena_init(&a);
	e = base64_encode(&a, "curl http://x", 13, &n);
	CHECK(e && strcmp(e, "Y3VybCBodHRwOi8veA==") == 0);
	e = base64_encode(&a, "", 0, &n);
	CHECK(e && n == 0);
	/* pySigma gives these three for base64offset of "/bin/sh". */
	CHECK(base64_offsets(&a, "/bin/sh", 7, out, len) == 0);
	CHECK(out[0] && strncmp(out[0], "L2Jpbi9za", len[0]) == 0 && len[0] == 9);
	CHECK(out[1] && strncmp(out[1], "9iaW4vc2", len[1]) == 0 && len[1] == 8);
	CHECK(out[2] && strncmp(out[2], "vYmluL3No", len[2]) == 0 && len[2] == 9);
	arena_free(&a);
}

static void test_time(void)
{
	int64_t t;

	CHECK(ctlog_parse_time("1970-01-01T00:00:00Z", 20, &t) == 0 && t == 0);
	CHECK(ctlog_parse_time("2026-11-26T10:00:00Z", 20, &t) == 0 && t == 1795687200);
	CHECK(ctlog_parse_time("2024-02-29T23:59:59Z", 20, &t) == 0 && t == 1709251199);
	CHECK(ctlog_parse_time("2026-11-26T10:00:00.123Z", 24, &t) == 0 && t == 1795687200);
	CHECK(ctlog_parse_time("2026-11-26 10:00:00Z", 20, &t) < 0);
	CHECK(ctlog_parse_time("2026-13-26T10:00:00Z", 20, &t) < 0);
	CHECK(ctlog_parse_time("2026-11-26T10:00:00", 19, &t) < 0);
	CHECK(ctlog_parse_time("2026-11-26T10:00:00.Z", 21, &t) < 0);
}

/* Reads every record of text with the field index {path}; returns "ok"
 * indexes with the path's first value, and error kinds, as a string. */
static void scan_path(const char *text, const char *path, const struct ctlog_limits *limits,
		      char *out, size_t outlen)
{
	struct field_index fi;
	struct record rec;
	struct ctlog_reader r;
	struct ctlog_error err;
	struct buf b;
	struct ctlog_limits lim = *limits;
	int slot, n;

	out[0] = '\0';
	field_index_init(&fi);
	field_index_add(&fi, path, &slot);
	record_init(&rec, fi.nslots);
	buf_init(&b, 0);
	buf_append(&b, text, strlen(text));
	if (ctlog_open(&r, b.data, b.len, &fi, &lim, &err) < 0) {
		snprintf(out, outlen, "open:%s", err.message);
		goto done;
	}
	while ((n = ctlog_next(&r, &rec, &err)) != 0) {
		size_t l = strlen(out);
		if (n > 0) {
			struct jvalue *v = record_first(&rec, slot);
			snprintf(out + l, outlen - l, "[%zu:%.*s]", rec.index, v ? (int)v->len : 0, v ? v->p : "");
		} else {
			snprintf(out + l, outlen - l, "[%ld!%s%s]", err.record, err.fatal ? "F:" : "", err.message);
			if (err.fatal)
				break;
		}
	}
done:
	buf_free(&b);
	record_free(&rec);
	field_index_free(&fi);
}

static void scan_all(const char *text, char *out, size_t outlen)
{
	struct ctlog_limits lim = { .max_record = 200, .max_depth = 5 };

	scan_path(text, "a.b", &lim, out, outlen);
}

/* A mapped file that shrinks under the reader: the pages it lost raise
 * SIGBUS, which input_decode_mapped turns into an error for that file; the
 * next mapped file reads normally. */
static void test_mapped_file_shrinks(void)
{
	char path[] = "/tmp/tw-unit-map-XXXXXX";
	char err[200], *text = malloc(256 << 10);
	struct input_map m;
	struct buf out;
	int fd = mkstemp(path);

	buf_init(&out, 0);
	CHECK(fd >= 0 && text);
	if (fd < 0 || !text)
		goto out;
	memset(text, ' ', 256 << 10);
	memcpy(text, "{\"Records\":[]}", 14);
	CHECK(write(fd, text, 256 << 10) == 256 << 10);
	CHECK(input_map_file(path, 1 << 30, &m, err, sizeof(err)) == 0);
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(input_decode_mapped(NULL, &m, NULL, &out, err, sizeof(err)) == -EIO);
	CHECK(strcmp(err, "the file shrank while it was being read") == 0);
	input_unmap(&m);
	CHECK(ftruncate(fd, 4096) == 0 && pwrite(fd, text, 4096, 0) == 4096);
	CHECK(input_map_file(path, 1 << 30, &m, err, sizeof(err)) == 0);
	CHECK(input_decode_mapped(NULL, &m, NULL, &out, err, sizeof(err)) == 0 && out.len == 4096);
	input_unmap(&m);
	/* empty and special files are for input_read_file */
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(input_map_file(path, 1 << 30, &m, err, sizeof(err)) == -ENOTSUP);
	CHECK(input_map_file("/dev/null", 1 << 30, &m, err, sizeof(err)) == -ENOTSUP);
	close(fd);
	unlink(path);
out:
	buf_free(&out);
	free(text);
}

static void test_scanner(void)
{
	char out[1024];

	scan_all("{\"Records\":[{\"a\":{\"b\":\"x\"}},{\"a\":[{\"b\":1},{\"b\":2}]}]}", out, sizeof(out));
	CHECK(strcmp(out, "[0:x][1:1]") == 0);
	scan_all(" {\"other\":[1,{\"x\":null}],\"Records\":[],\"tail\":true} ", out, sizeof(out));
	CHECK(strcmp(out, "") == 0);
	/* a bad record is skipped, the next one is read */
	scan_all("{\"Records\":[{\"a\":tru},{\"a\":{\"b\":\"y\"}}]}", out, sizeof(out));
	CHECK(strcmp(out, "[0!invalid JSON value][1:y]") == 0);
	/* too deep, then a good one */
	scan_all("{\"Records\":[{\"a\":[[[[[[1]]]]]]},{\"a\":{\"b\":\"z\"}}]}", out, sizeof(out));
	CHECK(strcmp(out, "[0!JSON nested deeper than the limit of 5][1:z]") == 0);
	/* too big, then a good one */
	{
		char big[600];
		snprintf(big, sizeof(big), "{\"Records\":[{\"a\":\"%0300d\"},{\"a\":{\"b\":\"w\"}}]}", 0);
		scan_all(big, out, sizeof(out));
		CHECK(strcmp(out, "[0!record larger than the limit of 200 bytes][1:w]") == 0);
	}
	/* truncation is fatal */
	scan_all("{\"Records\":[{\"a\":{\"b\":\"x\"}},{\"a\":{\"b\":\"unterminated", out, sizeof(out));
	CHECK(strcmp(out, "[0:x][1!F:truncated JSON (the file ends inside a record)]") == 0);
	scan_all("{\"Records\":[{\"a\":1}", out, sizeof(out));
	CHECK(strcmp(out, "[0:][1!F:truncated JSON (the Records array is not closed)]") == 0);
	/* a record that is not an object */
	scan_all("{\"Records\":[17,{\"a\":{\"b\":\"v\"}}]}", out, sizeof(out));
	CHECK(strcmp(out, "[0!record is not a JSON object][1:v]") == 0);
	/* garbage after the document */
	scan_all("{\"Records\":[]} x", out, sizeof(out));
	CHECK(strcmp(out, "[-1!F:unexpected data after the end of the JSON document]") == 0);
	/* escapes, control characters, bad escapes, overlong UTF-8 */
	scan_all("{\"Records\":[{\"a\":{\"b\":\"q\\\"\\u00e9\"}},{\"a\":\"\x01\"},{\"a\":\"\\x\"},{\"a\":\"\xc0\xaf\"}]}",
		 out, sizeof(out));
	CHECK(strcmp(out, "[0:q\\\"\\u00e9][1!control character in string][2!invalid escape in string]"
			  "[3!invalid UTF-8 in string]") == 0);
	/* numbers */
	scan_all("{\"Records\":[{\"a\":{\"b\":-0.5e+3}},{\"a\":01},{\"a\":1.},{\"a\":-}]}", out, sizeof(out));
	CHECK(strcmp(out, "[0:-0.5e+3][1!expected ',' or '}'][2!invalid number][3!invalid number]") == 0);
	scan_all("[1,2]", out, sizeof(out));
	CHECK(strcmp(out, "open:not a CloudTrail log file: it does not start with a JSON object") == 0);
}

/* Values whose insides no rule reads go through ctlog.c's 64-byte fast path.
 * Each case is one record with such a member "x", then a record that pads
 * the text, so that the fast path has room to run. */
static void fast_case(const char *x, const char *path, char *out, size_t outlen)
{
	struct ctlog_limits lim = { .max_record = 4096, .max_depth = 6 };
	char text[2048];

	snprintf(text, sizeof(text), "{\"Records\":[{\"x\":%s,\"a\":{\"b\":\"v\"}},"
		 "{\"a\":{\"b\":\"w\"},\"pad\":\"%0100d\"}]}", x, 0);
	scan_path(text, path, &lim, out, outlen);
}

static void test_scanner_fast_path(void)
{
	char out[2048];

	/* brackets and quotes inside strings, nesting, a string across the
	 * 64-byte block boundary holding brackets */
	fast_case("{\"k\":\"a}]{[\",\"l\":[1,2,{\"m\":null,\"n\":[true,false]}],"
		  "\"o\":\"0123456789012345678901234567890123456789012345}]]}}\",\"p\":{}}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0:v][1:w]") == 0);
	/* an unwanted array of objects, and a long object over several blocks */
	fast_case("[{\"k\":1},{\"k\":[2,{\"z\":\"}\"}]},{\"k\":\"0123456789012345678901234567890123456789"
		  "0123456789012345678901234567890123456789\"}]", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0:v][1:w]") == 0);
	/* escapes and non-ASCII text leave the fast path: the strict scan reads them */
	fast_case("{\"k\":\"q\\\"}]\",\"l\":\"caf\xc3\xa9 }\"}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0:v][1:w]") == 0);
	/* damage inside such a value is found, with the strict scan's message */
	fast_case("{\"k\":\"\xc0\xaf\"}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0!invalid UTF-8 in string][1:w]") == 0);
	fast_case("{\"k\":\"\x01\"}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0!control character in string][1:w]") == 0);
	fast_case("{\"k\":\"\\x\"}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0!invalid escape in string][1:w]") == 0);
	fast_case("{\"k\":[1}}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0!expected ',' or ']'][1:w]") == 0);
	fast_case("{\"k\":{\"l\":1]]", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0!expected ',' or '}'][1:w]") == 0);
	fast_case("{\"k\":[[[[[[1]]]]]]}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0!JSON nested deeper than the limit of 6][1:w]") == 0);
	fast_case("{\"k\":[[[[1]]]]}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0:v][1:w]") == 0);
	fast_case("{\"k\":Yes}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0!invalid JSON value][1:w]") == 0);
	/* What the fast path does not check: the order of tokens between
	 * brackets.  Members no rule reads may hold such a slip unreported. */
	fast_case("{\"k\":1 \"l\":2}", "a.b", out, sizeof(out));
	CHECK(strcmp(out, "[0:v][1:w]") == 0);
	/* ...while the same slip where a field is read is an error */
	fast_case("{\"k\":1 \"l\":2}", "x.k", out, sizeof(out));
	CHECK(strcmp(out, "[0!expected ',' or '}'][1:]") == 0);
	/* a wanted object whose members are not: its whole text is the value */
	fast_case("{\"k\":\"a}\",\"l\":[1,{\"m\":2}],\"n\":\"0123456789012345678901234567890123456789"
		  "0123456789012345678901234567890123456789\"}", "x", out, sizeof(out));
	CHECK(strcmp(out, "[0:{\"k\":\"a}\",\"l\":[1,{\"m\":2}],\"n\":\"0123456789012345678901234567890123456789"
			  "0123456789012345678901234567890123456789\"}][1:]") == 0);
	/* an array that is wanted: its elements are the values, as before */
	fast_case("[\"e1\",\"e2\"]", "x", out, sizeof(out));
	CHECK(strcmp(out, "[0:e1][1:]") == 0);
}

/* Member names are predicted from the order of the record before
 * (ctlog.c's key cache).  Records with names in shuffled orders, drawn from
 * more names than the cache holds, some escaped, some too long to remember,
 * in a nested object too: every wanted value must still be found. */
static void test_scanner_key_order(void)
{
	static const char *const wanted[] = { "k3", "k7", "k70", "obj.k1", "obj.k5",
					      "a_member_name_too_long_to_be_remembered_0" };
	/* each wanted field's value in record r is this prefix and r */
	static const char *const value_of[] = { "3-", "7-", "70-", "o1-", "o5-", "79-" };
	struct ctlog_limits lim = { .max_record = 1 << 20, .max_depth = 8 };
	struct field_index fi;
	struct record rec;
	struct ctlog_reader rd;
	struct ctlog_error err;
	struct buf b;
	int slot[6], bad = 0, seen = 0;
	uint64_t seed = 7;
	char name[64];

	field_index_init(&fi);
	for (size_t i = 0; i < 6; i++)
		field_index_add(&fi, wanted[i], &slot[i]);
	field_index_finish(&fi);
	record_init(&rec, fi.nslots);
	buf_init(&b, 0);
	buf_append(&b, "{\"Records\":[", 12);
	for (int r = 0; r < 300; r++) {
		int order[80];

		for (int i = 0; i < 80; i++)
			order[i] = i;
		for (int i = 79; i > 0; i--) {	/* shuffle, but keep most of the order */
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			if ((seed >> 60) < 3) {
				int j = (int)((seed >> 33) % (uint64_t)(i + 1)), t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
		}
		buf_append(&b, r ? ",{" : "{", r ? 2 : 1);
		for (int i = 0, first = 1; i < 80; i++) {
			int k = order[i];
			char member[160];
			int n;

			if (k == 79)
				snprintf(name, sizeof(name), "a_member_name_too_long_to_be_remembered_0");
			else if (k == 3 && r % 5 == 0)
				snprintf(name, sizeof(name), "k\\u0033");	/* "k3", escaped */
			else
				snprintf(name, sizeof(name), "k%d", k);
			if (k == 50)
				n = snprintf(member, sizeof(member), "%s\"obj\":{\"k5\":\"o5-%d\",\"k1\":\"o1-%d\",\"k9\":1}",
					     first ? "" : ",", r, r);
			else if (r % 7 == 0 && k == 7)
				continue;	/* sometimes absent */
			else
				n = snprintf(member, sizeof(member), "%s\"%s\":\"%d-%d\"", first ? "" : ",", name, k, r);
			buf_append(&b, member, (size_t)n);
			first = 0;
		}
		buf_append(&b, "}", 1);
	}
	buf_append(&b, "]}", 2);
	if (ctlog_open(&rd, b.data, b.len, &fi, &lim, &err) < 0) {
		CHECK(false);
		goto done;
	}
	while (ctlog_next(&rd, &rec, &err) > 0) {
		int r = (int)rec.index;
		for (size_t i = 0; i < 6; i++) {
			struct jvalue *v = record_first(&rec, slot[i]);
			const char *text;
			size_t len;
			char want[64];

			snprintf(want, sizeof(want), "%s%d", value_of[i], r);
			if (i == 1 && r % 7 == 0) {
				bad += v != NULL;
				continue;
			}
			if (!v || record_value_text(&rec, v, &text, &len) < 0 || len != strlen(want) ||
			    memcmp(text, want, len) != 0)
				bad++;
		}
		seen++;
	}
	CHECK(seen == 300);
	CHECK(bad == 0);
done:
	buf_free(&b);
	record_free(&rec);
	field_index_free(&fi);
}

static void test_unescape(void)
{
	char out[64];
	size_t n;

	n = ctlog_unescape("a\\\"b\\\\c\\n\\u0041\\u00e9", 21, out);
	CHECK(n == 9 && memcmp(out, "a\"b\\c\nA\xc3\xa9", 9) == 0);
	n = ctlog_unescape("\\ud83d\\udca9", 12, out);	/* surrogate pair */
	CHECK(n == 4 && memcmp(out, "\xf0\x9f\x92\xa9", 4) == 0);
	n = ctlog_unescape("\\ud83dx", 7, out);	/* lone surrogate */
	CHECK(n == 4 && memcmp(out, "\xef\xbf\xbdx", 4) == 0);
}

static void test_buf_limits(void)
{
	struct buf b;

	buf_init(&b, 10);
	CHECK(buf_append(&b, "0123456789", 10) == 0);
	CHECK(buf_append(&b, "x", 1) == -E2BIG);
	CHECK(b.len == 10 && b.data[10] == '\0');
	buf_reset(&b);
	CHECK(buf_printf(&b, "%s", "0123456789A") == -E2BIG);
	buf_free(&b);
}

static void test_sizes_spans(void)
{
	size_t s;
	int64_t t;

	CHECK(size_parse("1MiB", &s) == 0 && s == 1048576);
	CHECK(size_parse("64K", &s) == 0 && s == 65536);
	CHECK(size_parse("512", &s) == 0 && s == 512);
	CHECK(size_parse("1 MiB", &s) < 0);
	CHECK(size_parse("0", &s) < 0);
	CHECK(size_parse("-1", &s) < 0);
	CHECK(size_parse("99999999999999999999G", &s) < 0);
	CHECK(timespan_parse("90m", &t) == 0 && t == 5400);
	CHECK(timespan_parse("1d", &t) == 0 && t == 86400);
	CHECK(timespan_parse("10", &t) < 0);
	CHECK(timespan_parse("1w", &t) < 0);
	CHECK(timespan_parse("0s", &t) < 0);
}

static void test_yaml_limits(void)
{
	struct diag d;
	struct yfile *f = NULL;
	char deep[400];
	size_t n = 0;

	diag_init(&d);
	for (int i = 0; i < 100; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	CHECK(yfile_load_buffer("deep.yml", deep, n, &f, &d) == -EINVAL);
	CHECK(d.count == 1 && strstr(d.messages[0], "deep.yml:1:65: YAML nested too deeply"));
	diag_free(&d);
	diag_init(&d);
	CHECK(yfile_load_buffer("a.yml", "a: &x 1\nb: *x\n", 14, &f, &d) == -EINVAL);
	CHECK(d.count == 1 && strstr(d.messages[0], "a.yml:1:4: YAML anchors"));
	diag_free(&d);
	diag_init(&d);
	CHECK(yfile_load_buffer("ok.yml", "a: 1\n---\nb: [x, 'y']\n", 20, &f, &d) == 0);
	CHECK(f && f->ndocs == 2 && ynode_get(f->docs[1].root, "b")->n == 2);
	if (f) {
		const struct ynode *b = ynode_get(f->docs[1].root, "b");
		CHECK(b->items[0]->plain && !b->items[1]->plain);
	}
	yfile_free(f);
	diag_free(&d);
}

static void test_conditions(void)
{
	struct selection sels[3] = { { .name = "sel" }, { .name = "filter_a" }, { .name = "filter_b" } };
	struct cond_aggregation ag;
	struct cond_error err;
	struct cnode *c;
	struct arena a;

	arena_init(&a);
	CHECK(cond_parse(&a, "sel and not 1 of filter_*", sels, 3, &c, &ag, &err) == 0);
	CHECK(c->type == CN_AND && c->n == 2 && c->kids[1]->type == CN_NOT && c->kids[1]->kids[0]->n == 2);
	CHECK(cond_parse(&a, "sel or filter_a and filter_b", sels, 3, &c, &ag, &err) == 0);
	CHECK(c->type == CN_OR && c->kids[1]->type == CN_AND);
	CHECK(cond_parse(&a, "sel and", sels, 3, &c, &ag, &err) < 0 && err.pos == 7);
	CHECK(cond_parse(&a, "sel filter_a", sels, 3, &c, &ag, &err) < 0 && err.pos == 4);
	CHECK(cond_parse(&a, "sel)", sels, 3, &c, &ag, &err) < 0 && strstr(err.message, "unbalanced ')'"));
	CHECK(cond_parse(&a, "filter_*", sels, 3, &c, &ag, &err) < 0 && strstr(err.message, "needs '1 of'"));
	CHECK(cond_parse(&a, "sel | count(requestParameters.bucketName) by userIdentity.arn >= 10", sels, 3, &c,
			 &ag, &err) == 0);
	CHECK(ag.present && strcmp(ag.field, "requestParameters.bucketName") == 0 &&
	      strcmp(ag.by, "userIdentity.arn") == 0 && strcmp(ag.op, ">=") == 0 && ag.value == 10);
	arena_free(&a);
}

static int count_alerts(void *ctx, const struct alert *al)
{
	(void)al;
	(*(int *)ctx)++;
	return 0;
}

/* A late event completes a window that ended before it arrived. */
static void test_late_events(void)
{
	static const char rules[] =
		"title: base\nname: base\nid: b\nlogsource: {product: aws, service: cloudtrail}\n"
		"detection: {a: {eventName: X}, condition: a}\n---\n"
		"title: three\nid: c\ncorrelation: {type: event_count, rules: [base], timespan: 60s, condition: {gte: 3}}\n";
	struct builtin_file f = { "late.yml", rules, sizeof(rules) - 1 };
	struct rule_source src = { .path = "late", .files = &f, .nfiles = 1 };
	struct ruleset *rs = NULL;
	struct correlator *c = NULL;
	struct diag d;
	struct match m;
	int alerts = 0;
	static const int64_t times[] = { 1000, 1050, 1030, 5000, 5100, 5030 };

	diag_init(&d);
	CHECK(ruleset_load(&src, 1, NULL, &rs, &d) == 0);
	diag_free(&d);
	if (!rs)
		return;
	CHECK(correlator_new(rs, NULL, &c) == 0);
	memset(&m, 0, sizeof(m));
	m.rule = ruleset_find(rs, "base");
	/* 1000 and 1050, then 1030 arrives late: the window [990, 1050] holds 3.
	 * 5000 and 5100 are 100s apart; 5030 makes [5000, 5030] only 2. */
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		m.time = times[i];
		m.event_id = "e";
		correlator_feed(c, ruleset_find(rs, "c"), &m, count_alerts, &alerts);
		if (i == 2)
			CHECK(alerts == 1);
	}
	CHECK(alerts == 1);
	correlator_free(c);
	ruleset_free(rs);
}

struct last_alert {
	int n;
	double value;
};

static int note_alert(void *ctx, const struct alert *al)
{
	struct last_alert *l = ctx;

	l->n++;
	l->value = al->has_value ? al->value : -1;
	return 0;
}

static struct ruleset *load_rules(const char *name, const char *text)
{
	struct builtin_file f = { name, text, strlen(text) };
	struct rule_source src = { .path = name, .files = &f, .nfiles = 1 };
	struct ruleset *rs = NULL;
	struct diag d;

	diag_init(&d);
	if (ruleset_load(&src, 1, NULL, &rs, &d) < 0)
		rs = NULL;
	diag_free(&d);
	return rs;
}

/* "s and (a or b or c)" with a, b, c one test each on the same field
 * compiles to s and one test of all their patterns (rules.c
 * merge_or_tests); an |all test or another field stays apart. */
static void test_merged_or(void)
{
	struct ruleset *rs = load_rules("or.yml",
		"title: t\nid: t\nlogsource: {product: aws, service: cloudtrail}\n"
		"detection:\n  s: {eventSource: x}\n  a: {userAgent|startswith: [p1, p2]}\n"
		"  b: {userAgent|contains: c1}\n  o: {awsRegion: r}\n  c: {userAgent: [e1, e2, e3]}\n"
		"  d: {userAgent|contains|all: [x, y]}\n"
		"  condition: s and (a or b or o or c or d)\n");
	const struct rule *r = rs ? ruleset_find(rs, "t") : NULL;
	const struct cnode *c = r ? r->det.cond : NULL, *or;

	CHECK(c && c->type == CN_AND && c->n == 2);
	if (!c || c->type != CN_AND || c->n != 2)
		goto out;
	or = c->kids[1];
	CHECK(or->type == CN_OR && or->n == 3);	/* merged, o, d */
	if (or->type == CN_OR && or->n == 3) {
		const struct selection *m = &r->det.sels[or->kids[0]->sel];
		CHECK(m->nalts == 1 && m->alts[0].ntests == 1 && m->alts[0].tests[0].npats == 6);
		CHECK(r->det.sels[or->kids[1]->sel].alts[0].tests[0].npats == 1);	/* o */
		CHECK(r->det.sels[or->kids[2]->sel].alts[0].tests[0].all);		/* d */
	}
out:
	ruleset_free(rs);
}

/* value_sum windows are differences of running totals: late events, a
 * coalesced second, dropped entries and a moved origin keep them exact. */
static void test_window_sums(void)
{
	struct ruleset *rs = load_rules("sums.yml",
		"title: base\nname: base\nid: b\nlogsource: {product: aws, service: cloudtrail}\n"
		"detection: {a: {eventName: X}, condition: a}\n---\n"
		"title: sum\nid: s\ncorrelation: {type: value_sum, rules: [base], timespan: 60s,"
		" condition: {field: n, gte: 100}}\n---\n"
		"title: big\nid: g\ncorrelation: {type: value_sum, rules: [base], timespan: 10s,"
		" condition: {field: n, gte: 6000000000}}\n---\n"
		"title: huge\nid: h\ncorrelation: {type: value_sum, rules: [base], timespan: 10s,"
		" condition: {field: n, gte: 2000000000000002}}\n");
	struct corr_limits small = { .max_entries = 3 };
	struct correlator *c = NULL;
	struct last_alert got = { 0 };
	const char *extra[8] = { 0 };
	const struct rule *sum, *big, *huge;
	struct match m;

	CHECK(rs != NULL);
	if (!rs)
		return;
	sum = ruleset_find(rs, "s");
	big = ruleset_find(rs, "g");
	huge = ruleset_find(rs, "h");
	memset(&m, 0, sizeof(m));
	m.rule = ruleset_find(rs, "base");
	m.event_id = "e";
	m.extra = extra;

	/* 40 + 40, then 30 arrives late inside the window: 110 */
	CHECK(correlator_new(rs, NULL, &c) == 0);
	{
		static const int64_t t[] = { 1000, 1010, 1005 };
		static const char *const v[] = { "40", "40", "30" };
		for (size_t i = 0; i < 3; i++) {
			m.time = t[i];
			extra[sum->corr->field_extra[0]] = v[i];
			CHECK(correlator_feed(c, sum, &m, note_alert, &got) == 0);
			CHECK(got.n == (i == 2));
		}
		CHECK(got.value == 110);
	}
	/* 99, then 1 more in the same second (one coalesced entry): 100 */
	m.time = 1200;
	extra[sum->corr->field_extra[0]] = "99";
	correlator_feed(c, sum, &m, note_alert, &got);
	CHECK(got.n == 1);
	extra[sum->corr->field_extra[0]] = "1";
	correlator_feed(c, sum, &m, note_alert, &got);
	CHECK(got.n == 2 && got.value == 100);
	/* 3e9 every 20 s for 100 events: never two in 10 s, while the totals
	 * pass 2^32 many times (the origin moves); then two 5 s apart. */
	for (int i = 0; i < 100; i++) {
		m.time = 5000 + 20 * i;
		extra[big->corr->field_extra[0]] = "3000000000";
		correlator_feed(c, big, &m, note_alert, &got);
	}
	CHECK(got.n == 2);
	m.time += 5;
	correlator_feed(c, big, &m, note_alert, &got);
	CHECK(got.n == 3 && got.value == 6e9);
	/* the same with amounts whose running totals would pass 2^53, where a
	 * double no longer holds every whole number */
	for (int i = 0; i < 100; i++) {
		m.time = 9000 + 20 * i;
		extra[huge->corr->field_extra[0]] = "1000000000000001";
		correlator_feed(c, huge, &m, note_alert, &got);
	}
	CHECK(got.n == 3);
	m.time += 5;
	correlator_feed(c, huge, &m, note_alert, &got);
	CHECK(got.n == 4 && got.value == 2000000000000002.0);
	/* a late event joins an older second: the totals after it move */
	m.time = 20000;
	extra[sum->corr->field_extra[0]] = "40";
	correlator_feed(c, sum, &m, note_alert, &got);
	m.time = 20010;
	correlator_feed(c, sum, &m, note_alert, &got);
	m.time = 20000;
	extra[sum->corr->field_extra[0]] = "20";
	correlator_feed(c, sum, &m, note_alert, &got);
	CHECK(got.n == 5 && got.value == 100);
	correlator_free(c);

	/* at most 3 entries per group: the oldest leave the sum */
	got.n = 0;
	CHECK(correlator_new(rs, &small, &c) == 0);
	for (int i = 0; i < 5; i++) {
		m.time = 1000 + i;
		extra[sum->corr->field_extra[0]] = i < 4 ? "30" : "20";
		correlator_feed(c, sum, &m, note_alert, &got);
	}
	CHECK(got.n == 0);	/* 30 + 30 + 20: the first two 30s were dropped */
	extra[sum->corr->field_extra[0]] = "20";
	correlator_feed(c, sum, &m, note_alert, &got);
	CHECK(got.n == 1 && got.value == 100);
	correlator_free(c);
	ruleset_free(rs);
}

/* A full table (max_groups 4): each new group evicts the one that holds
 * least, so a flood of 1000 one-event groups neither keeps a heavier group
 * out nor pushes it out, and every eviction is counted for its rule. */
static void test_full_table(void)
{
	struct ruleset *rs = load_rules("full.yml",
		"title: base\nname: base\nid: b\nlogsource: {product: aws, service: cloudtrail}\n"
		"detection: {a: {eventName: X}, condition: a}\n---\n"
		"title: sum\nid: s\ncorrelation: {type: value_sum, rules: [base], group-by: [who], timespan: 1h,"
		" condition: {field: n, gte: 100}}\n");
	struct corr_limits lim = { .max_groups = 4 };
	struct correlator *c = NULL;
	struct last_alert got = { 0 };
	const char *extra[8] = { 0 };
	const struct rule *sum;
	struct corr_stats st;
	struct corr_cap cap;
	struct match m;
	char who[32];

	CHECK(rs != NULL);
	if (!rs)
		return;
	sum = ruleset_find(rs, "s");
	CHECK(correlator_new(rs, &lim, &c) == 0);
	memset(&m, 0, sizeof(m));
	m.rule = ruleset_find(rs, "base");
	m.event_id = "e";
	m.extra = extra;
	for (int i = 0; i < 1000; i++) {
		m.time = 1000 + i;
		snprintf(who, sizeof(who), "flood-%d", i);
		extra[sum->corr->group_extra[0]] = who;
		extra[sum->corr->field_extra[0]] = "1";
		CHECK(correlator_feed(c, sum, &m, note_alert, &got) == 0);
		if (i % 100 == 50 && i < 400) {
			/* the heavy group: 30 at a time, its fourth crosses 100 */
			extra[sum->corr->group_extra[0]] = "heavy";
			extra[sum->corr->field_extra[0]] = "30";
			CHECK(correlator_feed(c, sum, &m, note_alert, &got) == 0);
			CHECK(got.n == (i >= 350));
		}
	}
	CHECK(got.n == 1 && got.value == 120);
	correlator_stats(c, &st);
	CHECK(st.groups == 4);
	correlator_cap(c, sum->index, &cap);
	CHECK(cap.evicted == st.groups_evicted && cap.unreported == cap.evicted && cap.evicted >= 1000 - 4);
	correlator_cap_reported(c, sum->index);
	correlator_cap(c, sum->index, &cap);
	CHECK(cap.unreported == 0 && cap.evicted == st.groups_evicted);
	correlator_free(c);
	ruleset_free(rs);
}

/* A plain model of one value_sum group (timespan SPAN, condition gte 100,
 * lateness LATE, at most cap entries): entries per second, summed by brute
 * force over every window that holds the new event. */
struct ref_group {
	int64_t t[4096];
	double amount[4096];
	size_t n;
	int64_t newest;
	bool has_newest;
};

#define REF_SPAN 60
#define REF_LATE 120

/* Removes the oldest entry of a non-empty model group. */
static void ref_drop_first(struct ref_group *g)
{
	if (g->n == 0)
		return;
	g->n--;
	memmove(g->t, g->t + 1, g->n * sizeof(g->t[0]));
	memmove(g->amount, g->amount + 1, g->n * sizeof(g->amount[0]));
}

/* Feeds one event; returns the value of the alert it raises, or -1. */
static double ref_feed(struct ref_group *g, int64_t t, double amount, size_t cap)
{
	size_t i = 0;

	if (g->has_newest && t < g->newest - REF_SPAN - REF_LATE)
		return -1;	/* too late */
	while (i < g->n && g->t[i] < t)
		i++;
	if (i < g->n && g->t[i] == t) {
		g->amount[i] += amount;
	} else {
		if (g->n >= cap) {	/* the oldest entry leaves */
			ref_drop_first(g);
			if (i > 0)
				i--;
		}
		memmove(g->t + i + 1, g->t + i, (g->n - i) * sizeof(g->t[0]));
		memmove(g->amount + i + 1, g->amount + i, (g->n - i) * sizeof(g->amount[0]));
		g->t[i] = t;
		g->amount[i] = amount;
		g->n++;
	}
	if (!g->has_newest || t > g->newest)
		g->newest = t;
	g->has_newest = true;
	while (g->n && g->t[0] < g->newest - REF_SPAN - REF_LATE)
		ref_drop_first(g);
	for (size_t k = 0; k < g->n; k++) {
		double sum = 0;
		if (g->t[k] < t || g->t[k] > t + REF_SPAN)
			continue;
		for (size_t j = 0; j < g->n; j++)
			if (g->t[j] >= g->t[k] - REF_SPAN && g->t[j] <= g->t[k])
				sum += g->amount[j];
		if (sum >= 100) {
			g->n = 0;	/* the events are spent */
			return sum;
		}
	}
	return -1;
}

/* The correlator against the model, over events that arrive up to three
 * minutes out of order, with and without a cap on entries. */
static void test_window_reference(void)
{
	struct ruleset *rs = load_rules("ref.yml",
		"title: base\nname: base\nid: b\nlogsource: {product: aws, service: cloudtrail}\n"
		"detection: {a: {eventName: X}, condition: a}\n---\n"
		"title: sum\nid: s\ncorrelation: {type: value_sum, rules: [base], timespan: 60s,"
		" condition: {field: n, gte: 100}}\n");
	static const size_t caps[] = { 100000, 7 };
	const char *extra[8] = { 0 };
	const struct rule *sum;
	int mismatches = 0, fired = 0;
	struct match m;

	CHECK(rs != NULL);
	if (!rs)
		return;
	sum = ruleset_find(rs, "s");
	memset(&m, 0, sizeof(m));
	m.rule = ruleset_find(rs, "base");
	m.event_id = "e";
	m.extra = extra;
	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		struct corr_limits lim = { .max_entries = caps[c], .lateness = REF_LATE };
		static struct ref_group ref;
		struct correlator *corr = NULL;
		uint64_t seed = 42 + c;

		memset(&ref, 0, sizeof(ref));
		CHECK(correlator_new(rs, &lim, &corr) == 0);
		for (int i = 0; i < 5000 && corr; i++) {
			struct last_alert got = { 0 };
			char amount[16];
			double want;

			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			m.time = 100000 + i / 2 + (int64_t)((seed >> 33) % 180) - 90;
			snprintf(amount, sizeof(amount), "%u", (unsigned)((seed >> 20) % 9) + 1);
			extra[sum->corr->field_extra[0]] = amount;
			want = ref_feed(&ref, m.time, atof(amount), caps[c]);
			if (correlator_feed(corr, sum, &m, note_alert, &got) != 0)
				mismatches++;
			else if ((want >= 0) != (got.n == 1) || (got.n == 1 && got.value != want))
				mismatches++;
			fired += got.n;
		}
		correlator_free(corr);
	}
	CHECK(mismatches == 0);
	CHECK(fired > 100);	/* the comparison covered many alerts */
	ruleset_free(rs);
}

struct eval_result {
	bool *matched;
	size_t n;
};

static void note_match(void *ctx, const struct rule *r, struct record *rec)
{
	struct eval_result *res = ctx;

	(void)r;
	res->matched[rec->index] = true;
}

/* Runs the rule set over a CloudTrail document; matched[i] tells whether
 * record i matched a rule. */
static void eval_all(struct ruleset *rs, const char *json, bool *matched, size_t n)
{
	struct ctlog_limits lim = { .max_record = CTLOG_DEFAULT_MAX_RECORD, .max_depth = CTLOG_DEFAULT_MAX_DEPTH };
	struct eval_result res = { matched, n };
	struct ctlog_reader r;
	struct ctlog_error err;
	struct engine e;
	struct record rec;
	struct buf b;

	buf_init(&b, 0);
	buf_append(&b, json, strlen(json));
	CHECK(engine_init(&e, rs) == 0);
	CHECK(record_init(&rec, rs->fields.nslots) == 0);
	CHECK(ctlog_open(&r, b.data, b.len, &rs->fields, &lim, &err) == 0);
	while (ctlog_next(&r, &rec, &err) > 0)
		if (rec.index < n)
			engine_eval(&e, &rec, note_match, &res);
	record_free(&rec);
	engine_free(&e);
	buf_free(&b);
}

/* A long pattern list answers from its memo table: the answers must be the
 * pattern list's for every value, whether new, repeated, colliding in the
 * table, too long for it, or of another JSON type with the same text. */
static void test_memo(void)
{
	static const char *const pats[] = { "curl/", "kali", "s3browser", "nuclei", "rclone/" };
	struct ruleset *rs = load_rules("memo.yml",
		"title: ua\nid: u\nlogsource: {product: aws, service: cloudtrail}\n"
		"detection: {a: {userAgent|contains: ['curl/', kali, S3Browser, nuclei, rclone/]}, condition: a}\n"
		"---\ntitle: number\nid: n\nlogsource: {product: aws, service: cloudtrail}\n"
		"detection: {a: {count: [5, 6, 7, 8]}, condition: a}\n");
	enum { N = 3000, DISTINCT = 300 };
	struct buf doc;
	bool *matched = calloc(N, sizeof(*matched)), *want = calloc(N, sizeof(*want));
	int wrong = 0, used = 0;

	CHECK(rs != NULL && matched && want);
	if (!rs || !matched || !want)
		goto done;
	CHECK(rs->nmemos == 2);
	buf_init(&doc, 0);
	buf_append(&doc, "{\"Records\":[", 12);
	for (int i = 0; i < N; i++) {
		char ua[400], lower[400], rec[600];
		int k = (i * 7919) % DISTINCT;	/* values recur, out of order */

		if (k % 50 == 49) {
			/* 5.0 as a number equals 5; as a string it does not */
			snprintf(rec, sizeof(rec), "%s{\"count\":%s}", i ? "," : "", k % 100 == 49 ? "5.0" : "\"5.0\"");
			want[i] = k % 100 == 49;
		} else {
			/* some longer than the memo keeps, some with a pattern in
			 * another case, most without */
			snprintf(ua, sizeof(ua), "agent-%d %s%s", k, k % 3 == 0 ? "" : "x",
				 k % 11 == 0 ? "CURL/8.1" : k % 13 == 0 ? "Linux-Kali-rolling" : k % 17 == 0 ? "S3Browser" : "");
			if (k % 10 == 1) {
				size_t l = strlen(ua);
				memset(ua + l, 'z', 300);
				snprintf(ua + l + 300, sizeof(ua) - l - 300, "%s", k % 20 == 1 ? " nuclei" : "");
			}
			for (size_t j = 0; j <= strlen(ua); j++)
				lower[j] = (char)(ua[j] >= 'A' && ua[j] <= 'Z' ? ua[j] + 32 : ua[j]);
			for (size_t p = 0; p < sizeof(pats) / sizeof(pats[0]); p++)
				want[i] |= strstr(lower, pats[p]) != NULL;
			snprintf(rec, sizeof(rec), "%s{\"userAgent\":\"%s\"}", i ? "," : "", ua);
		}
		buf_append(&doc, rec, strlen(rec));
	}
	buf_append(&doc, "]}", 3);
	eval_all(rs, doc.data, matched, N);
	for (int i = 0; i < N; i++) {
		wrong += matched[i] != want[i];
		used += want[i];
	}
	CHECK(wrong == 0);
	CHECK(used > 100 && used < N - 100);	/* both answers are exercised */
	buf_free(&doc);
done:
	free(matched);
	free(want);
	ruleset_free(rs);
}

/* Exponential with full jitter: within the doubling bound, capped, spread
 * out, and never below Retry-After. */
static void test_backoff(void)
{
	struct backoff b;
	long most[8] = { 0 }, zeros = 0, outside = 0;

	backoff_init(&b, 100, 1000);
	for (int i = 0; i < 2000; i++) {
		for (int a = 1; a <= 6; a++) {
			long ms = backoff_ms(&b, a, -1), bound = a >= 5 ? 1000 : 100L << (a - 1);
			outside += ms < 0 || ms > bound;
			if (ms > most[a])
				most[a] = ms;
			zeros += ms == 0;
		}
	}
	CHECK(outside == 0);
	CHECK(most[1] > 80 && most[4] > 700 && most[6] > 900);	/* the range is used */
	CHECK(zeros < 100);
	CHECK(backoff_ms(&b, 1, 2) == 2000);			/* Retry-After: 2 */
	CHECK(backoff_ms(&b, 1, 86400) == 3000);		/* at most 3 x max */
}

/* Checkpoint names are one-to-one and bounded. */
static void test_statefile_name(void)
{
	char *a = statefile_name("AWSLogs/o-x/111122223333/CloudTrail/us-east-1/", ".json");
	char *b = statefile_name("a_b/", ""), *c = statefile_name("a/b/", "");
	char *longer = malloc(1001), *l1, *l2;

	CHECK(a && strcmp(a, "AWSLogs_o-x_111122223333_CloudTrail_us-east-1_.json") == 0);
	CHECK(b && c && strcmp(b, "a%5Fb_") == 0 && strcmp(c, "a_b_") == 0);
	memset(longer, 'k', 1000);
	longer[1000] = '\0';
	l1 = statefile_name(longer, ".json");
	longer[999] = 'j';
	l2 = statefile_name(longer, ".json");
	CHECK(l1 && l2 && strlen(l1) < 200 && strcmp(l1, l2) != 0);
	free(a);
	free(b);
	free(c);
	free(l1);
	free(l2);
	free(longer);
}

/* ---- SigV4 ---------------------------------------------------------------- */

static char *slurp(const char *dir, const char *name)
{
	char path[1024];
	FILE *f;
	char *s = NULL;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (s = malloc((size_t)n + 1)) && fread(s, 1, (size_t)n, f) == (size_t)n)
		s[n] = '\0';
	fclose(f);
	return s;
}

/* A request.txt of the suite, taken apart (in place). */
struct raw_request {
	char *method, *path, *query;
	struct sigv4_header h[32];
	size_t nh;
	char *body;
	size_t bodylen;
};

static bool parse_raw_request(char *text, struct raw_request *rq)
{
	char *line = text, *nl = strchr(text, '\n'), *proto;

	memset(rq, 0, sizeof(*rq));
	if (!nl)
		nl = text + strlen(text);
	*nl = '\0';
	proto = strstr(line, " HTTP/");
	if (!proto || !strchr(line, ' '))
		return false;
	*proto = '\0';
	rq->method = line;
	rq->path = strchr(line, ' ');
	*rq->path++ = '\0';
	rq->query = strchr(rq->path, '?');
	if (rq->query)
		*rq->query++ = '\0';
	line = *nl || nl[1] ? nl + 1 : nl;
	while (*line && *line != '\n') {
		char *end = strchr(line, '\n'), *colon;
		if (end)
			*end = '\0';
		if ((*line == ' ' || *line == '\t') && rq->nh) {
			/* a folded line continues the previous value */
			char *prev = (char *)rq->h[rq->nh - 1].value;
			prev[strlen(prev)] = '\n';	/* rejoin in place */
		} else if ((colon = strchr(line, ':')) && rq->nh < 32) {
			*colon = '\0';
			rq->h[rq->nh].name = line;
			rq->h[rq->nh++].value = colon + 1;
		}
		if (!end)
			return true;
		line = end + 1;
	}
	if (*line == '\n') {
		rq->body = line + 1;
		rq->bodylen = strlen(rq->body);
	}
	return true;
}

static bool same_params(const char *got, const char *signed_request)
{
	const char *q = strchr(signed_request, '?');
	const char *sp = q ? strchr(q, ' ') : NULL;
	size_t n = 0, m = 0;

	if (!q || !sp)
		return false;
	for (const char *p = got; *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		bool found = false;
		for (const char *t = q + 1; t < sp;) {
			const char *a2 = memchr(t, '&', (size_t)(sp - t));
			size_t l2 = a2 ? (size_t)(a2 - t) : (size_t)(sp - t);
			struct buf enc;
			/* The suite writes non-ASCII bytes raw on its request
			 * line; on the wire they are %-encoded (SigV4's way). */
			buf_init(&enc, 0);
			for (size_t k = 0; k < l2; k++) {
				if ((unsigned char)t[k] >= 0x80)
					sigv4_uri_encode(&enc, t + k, 1, false);
				else
					buf_append(&enc, t + k, 1);
			}
			found |= enc.len == len && memcmp(enc.data, p, len) == 0;
			buf_free(&enc);
			t += l2 + 1;
		}
		if (!found)
			return false;
		n++;
		p += len + (amp ? 1 : 0);
	}
	for (const char *t = q + 1; t < sp; t++)
		m += *t == '&';
	return n == m + 1;
}

/* Trailing newlines in the expected files are not part of the value. */
static bool text_is(const struct buf *b, const char *want)
{
	size_t wl = want ? strlen(want) : 0;

	while (wl && want[wl - 1] == '\n')
		wl--;
	return want && b->len == wl && memcmp(b->data, want, wl) == 0;
}

static bool str_is(const char *got, const char *want)
{
	size_t wl = want ? strlen(want) : 0;

	while (wl && want[wl - 1] == '\n')
		wl--;
	return want && strlen(got) == wl && memcmp(got, want, wl) == 0;
}

static void sigv4_case(const char *dir, const char *name, int *cases)
{
	char *ctx_text = slurp(dir, "context.json"), *req_text = slurp(dir, "request.txt");
	struct json_object *ctx = ctx_text ? json_tokener_parse(ctx_text) : NULL, *cr = NULL, *v;
	struct sigv4_credentials cred = { 0 };
	struct sigv4_scope sc = { 0 };
	struct sigv4_request rq = { 0 };
	struct raw_request raw;
	struct sigv4_signed out;
	char hash[SIGV4_HEX], what[600];
	int64_t t = 0;
	const char *ts;

	sigv4_signed_init(&out);
	if (!ctx || !req_text || !json_object_object_get_ex(ctx, "credentials", &cr) || !parse_raw_request(req_text, &raw)) {
		snprintf(what, sizeof(what), "%s: readable test case", name);
		check_at(false, __FILE__, __LINE__, "%s", what);
		goto done;
	}
	cred.access_key_id = json_object_get_string(json_object_object_get(cr, "access_key_id"));
	cred.secret_access_key = json_object_get_string(json_object_object_get(cr, "secret_access_key"));
	cred.session_token = json_object_object_get_ex(cr, "token", &v) ? json_object_get_string(v) : NULL;
	sc.region = json_object_get_string(json_object_object_get(ctx, "region"));
	sc.service = json_object_get_string(json_object_object_get(ctx, "service"));
	ts = json_object_get_string(json_object_object_get(ctx, "timestamp"));
	CHECK(ts && ctlog_parse_time(ts, strlen(ts), &t) == 0);
	sc.time = t;
	sc.normalize = json_object_get_boolean(json_object_object_get(ctx, "normalize"));
	sc.sign_payload = json_object_get_boolean(json_object_object_get(ctx, "sign_body"));
	sc.omit_session_token = json_object_object_get_ex(ctx, "omit_session_token", &v) && json_object_get_boolean(v);
	sc.expires = json_object_get_int(json_object_object_get(ctx, "expiration_in_seconds"));
	sigv4_sha256_hex(raw.body ? raw.body : "", raw.bodylen, hash);
	rq.method = raw.method;
	rq.path = raw.path;
	rq.query = raw.query;
	rq.headers = raw.h;
	rq.nheaders = raw.nh;
	rq.payload_hash = hash;

	for (int form = 0; form < 2; form++) {
		const char *p = form ? "query" : "header";
		char file[64];
		char *canon, *sts, *sig, *signed_req;
		int r = form ? sigv4_sign_query(&cred, &sc, &rq, NULL, &out) : sigv4_sign_header(&cred, &sc, &rq, NULL, &out);

		snprintf(file, sizeof(file), "%s-canonical-request.txt", p);
		canon = slurp(dir, file);
		snprintf(file, sizeof(file), "%s-string-to-sign.txt", p);
		sts = slurp(dir, file);
		snprintf(file, sizeof(file), "%s-signature.txt", p);
		sig = slurp(dir, file);
		snprintf(file, sizeof(file), "%s-signed-request.txt", p);
		signed_req = slurp(dir, file);
		snprintf(what, sizeof(what), "%s (%s form): canonical request, string to sign, signature", name, p);
		check_at(r == 0 && text_is(&out.canonical, canon) && text_is(&out.string_to_sign, sts) &&
		      str_is(out.signature, sig), __FILE__, __LINE__, "%s", what);
		if (form == 0) {
			char *line = signed_req ? strstr(signed_req, "Authorization:") : NULL;
			snprintf(what, sizeof(what), "%s: Authorization header", name);
			check_at(line && out.authorization.data &&
			      strncmp(line + 14, out.authorization.data, out.authorization.len) == 0 &&
			      (line[14 + out.authorization.len] == '\n' || line[14 + out.authorization.len] == '\0'),
			      __FILE__, __LINE__, "%s", what);
		} else {
			snprintf(what, sizeof(what), "%s: presigned query", name);
			check_at(signed_req && out.query.data && same_params(out.query.data, signed_req), __FILE__, __LINE__,
				 "%s", what);
		}
		(*cases)++;
		free(canon);
		free(sts);
		free(sig);
		free(signed_req);
	}
done:
	sigv4_signed_free(&out);
	json_object_put(ctx);
	free(ctx_text);
	free(req_text);
}

/* Every case of AWS's suite, both forms, and the S3 examples of its README. */
static void test_sigv4(void)
{
	const char *suite = getenv("SIGV4_SUITE") ? getenv("SIGV4_SUITE") : "../shared/testdata/aws-sigv4-test-suite/v4";
	struct sigv4_credentials s3cred = { "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL };
	struct sigv4_scope sc = { .region = "us-east-1", .service = "s3", .time = 1369353600, .sign_payload = true };
	struct sigv4_header range[] = { { "Host", "examplebucket.s3.amazonaws.com" }, { "Range", "bytes=0-9" } };
	struct sigv4_request rq = { "GET", "/test.txt", NULL, range, 2, SIGV4_EMPTY_SHA256 };
	struct sigv4_key_cache cache = { 0 };
	struct sigv4_signed out;
	struct dirent *de;
	int cases = 0;
	DIR *d = opendir(suite);

	CHECK(d != NULL);
	while (d && (de = readdir(d))) {
		char dir[1024];
		if (de->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", suite, de->d_name);
		sigv4_case(dir, de->d_name, &cases);
	}
	if (d)
		closedir(d);
	CHECK(cases >= 2 * 38);

	sigv4_signed_init(&out);
	CHECK(sigv4_sign_header(&s3cred, &sc, &rq, &cache, &out) == 0 &&
	      strcmp(out.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") == 0);
	CHECK(cache.valid);
	rq.path = "/";
	rq.query = "lifecycle";
	rq.nheaders = 1;
	CHECK(sigv4_sign_header(&s3cred, &sc, &rq, &cache, &out) == 0 &&
	      strcmp(out.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543") == 0);
	rq.query = "max-keys=2&prefix=J";
	CHECK(sigv4_sign_header(&s3cred, &sc, &rq, &cache, &out) == 0 &&
	      strcmp(out.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == 0);
	/* the cached key is the key of its secret only */
	s3cred.secret_access_key = "another";
	CHECK(sigv4_sign_header(&s3cred, &sc, &rq, &cache, &out) == 0 &&
	      strcmp(out.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") != 0);
	/* bad input is refused, not signed */
	rq.query = "a=%zz";
	CHECK(sigv4_sign_header(&s3cred, &sc, &rq, &cache, &out) == -EINVAL);
	rq.query = "a=%4";
	CHECK(sigv4_sign_header(&s3cred, &sc, &rq, &cache, &out) == -EINVAL);
	rq.query = NULL;
	rq.headers = range + 1;	/* no Host */
	CHECK(sigv4_sign_header(&s3cred, &sc, &rq, &cache, &out) == -EINVAL);
	sigv4_signed_free(&out);
}

/* `unit --sign`: signs one request per input line (JSON: method, path (not
 * encoded), query (as sent), headers ([[name, value]...]), payload_hash,
 * akid, secret, token, region, service, time, query_form) and prints one
 * JSON line (canonical, string_to_sign, signature, authorization, query),
 * for the differential test against botocore (tests/test_sigv4.py). */
static int sign_stdin(void)
{
	char line[65536];
	struct sigv4_signed out;
	int rc = 0;

	sigv4_signed_init(&out);
	while (fgets(line, sizeof(line), stdin)) {
		struct json_object *in = json_tokener_parse(line), *hs, *res;
		struct sigv4_header h[SIGV4_MAX_HEADERS];
		struct sigv4_credentials cred = { 0 };
		struct sigv4_scope sc = { 0 };
		struct sigv4_request rq = { 0 };
		size_t nh = 0;
		int r;

		if (!in || !json_object_object_get_ex(in, "headers", &hs)) {
			fprintf(stderr, "bad input line\n");
			json_object_put(in);
			rc = 1;
			break;
		}
		for (size_t i = 0; i < json_object_array_length(hs) && nh < SIGV4_MAX_HEADERS; i++, nh++) {
			struct json_object *pair = json_object_array_get_idx(hs, i);
			h[nh].name = json_object_get_string(json_object_array_get_idx(pair, 0));
			h[nh].value = json_object_get_string(json_object_array_get_idx(pair, 1));
		}
		rq.method = json_object_get_string(json_object_object_get(in, "method"));
		rq.path = json_object_get_string(json_object_object_get(in, "path"));
		rq.query = json_object_get_string(json_object_object_get(in, "query"));
		rq.headers = h;
		rq.nheaders = nh;
		rq.payload_hash = json_object_get_string(json_object_object_get(in, "payload_hash"));
		cred.access_key_id = json_object_get_string(json_object_object_get(in, "akid"));
		cred.secret_access_key = json_object_get_string(json_object_object_get(in, "secret"));
		cred.session_token = json_object_get_string(json_object_object_get(in, "token"));
		sc.region = json_object_get_string(json_object_object_get(in, "region"));
		sc.service = json_object_get_string(json_object_object_get(in, "service"));
		sc.time = json_object_get_int64(json_object_object_get(in, "time"));
		sc.sign_payload = true;
		sc.expires = 3600;
		if (json_object_get_boolean(json_object_object_get(in, "query_form")))
			r = sigv4_sign_query(&cred, &sc, &rq, NULL, &out);
		else
			r = sigv4_sign_header(&cred, &sc, &rq, NULL, &out);
		res = json_object_new_object();
		json_object_object_add(res, "error", json_object_new_int(r));
		if (r == 0) {
			json_object_object_add(res, "canonical", json_object_new_string_len(out.canonical.data, (int)out.canonical.len));
			json_object_object_add(res, "string_to_sign", json_object_new_string_len(out.string_to_sign.data, (int)out.string_to_sign.len));
			json_object_object_add(res, "signature", json_object_new_string(out.signature));
			json_object_object_add(res, "amz_date", json_object_new_string(out.amz_date));
			json_object_object_add(res, "authorization", json_object_new_string(out.authorization.data ? out.authorization.data : ""));
			json_object_object_add(res, "query", json_object_new_string(out.query.data ? out.query.data : ""));
		}
		printf("%s\n", json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN));
		fflush(stdout);
		json_object_put(res);
		json_object_put(in);
	}
	sigv4_signed_free(&out);
	return rc;
}

/* The load-time warning: shapes that backtrack catastrophically are found,
 * the shipped pack's and common linear ones are not. */
static void test_regex_backtracks(void)
{
	static const char *const bad[] = {
		"(a+)+$", "(.*)*x", "(a|a)*b", "^(\\w+\\s?)+$", "(a*b*)*c", "x((ab)+)+", "(?:a+){2,}", "(a+?)+",
		"(?i:(a|a)+)", "((a+))*", "(?<n>\\d+)+",
	};
	static const char *const good[] = {
		"^\\d{12}$", ".+:assumed-role/aws:.+", "^\\[?(curl/|wget/|python-requests/)", "(\\w+\\.)+com",
		"\"AWS\"\\s*:\\s*(\\[[^\\]]*)?\"\\*\"", "(a++)+", "(?>a+)+", "(ab|cd)*e", "a{2}+", "(a+){3}",
		"[(a+)+]", "\\(a+\\)+", "\\Q(a+)+\\E", "(?#(a+)+)x", "(?i)abc", "(a|b)*", "(x{2})+",
		"(how[^a-z0-9/]*to[^a-z0-9/]*(decrypt|restore)|ransom[^/]*note)[^/]*\\.(txt|html?|hta)$",
	};
	size_t at;
	const char *why;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool found = regex_backtracks(bad[i], &at, &why);
		CHECK(found);
		if (!found)
			printf("FAIL regex_backtracks misses %s\n", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		bool found = regex_backtracks(good[i], &at, &why);
		CHECK(!found);
		if (found)
			printf("FAIL regex_backtracks flags %s (%s at %zu)\n", good[i], why, at);
	}
	CHECK(regex_backtracks("ab(c+)+", &at, &why) && at == 2);
}

/* strmap: puts, replacements, NULL as removal, growth past many keys. */
static void test_strmap(void)
{
	static char keys[5000][24];
	struct strmap m = { 0 };
	bool ok = true;

	CHECK(strmap_get(&m, "x") == NULL);
	for (int i = 0; i < 5000; i++) {
		snprintf(keys[i], sizeof(keys[i]), "rule-%d", i);
		ok &= strmap_put(&m, keys[i], keys[i]) == 0;
	}
	CHECK(ok);
	for (int i = 0; i < 5000; i++)
		ok &= strmap_get(&m, keys[i]) == keys[i];
	CHECK(ok);
	CHECK(strmap_put(&m, "rule-7", keys[8]) == 0 && strmap_get(&m, keys[7]) == keys[8]);
	CHECK(strmap_put(&m, "rule-9", NULL) == 0 && strmap_get(&m, "rule-9") == NULL);
	CHECK(m.n == 5000 && m.cap >= 10000);
	CHECK(strmap_get(&m, "rule-5000") == NULL);
	strmap_free(&m);
	CHECK(strmap_get(&m, keys[1]) == NULL);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--sign") == 0)
		return sign_stdin();
	test_glob();
	test_cidr_numbers();
	test_arn_account();
	test_base64();
	test_time();
	test_fold_equal();
	test_mapped_file_shrinks();
	test_scanner();
	test_scanner_fast_path();
	test_scanner_key_order();
	test_unescape();
	test_buf_limits();
	test_sizes_spans();
	test_yaml_limits();
	test_conditions();
	test_late_events();
	test_merged_or();
	test_window_sums();
	test_full_table();
	test_window_reference();
	test_memo();
	test_regex_backtracks();
	test_strmap();
	test_backoff();
	test_statefile_name();
	test_sigv4();
	return check_summary();
}
