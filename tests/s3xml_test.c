/* s3xml_test.c: tests of the S3/STS XML parsers (s3xml.h).
 *
 * ListObjectsV2 pages are fed whole and one byte at a time, and what the
 * callbacks saw is compared as a transcript; URL decoding, bounds, DOCTYPE,
 * error documents and STS credentials each have their own cases.  Prints one
 * line per failure and "N passed, N failed"; exits 1 on failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/s3xml.h"

#include "check.h"

/* ---- Running the listing parser ---- */

/* What the callbacks saw, and the page's result, as text. */
struct transcript {
	char text[1 << 16];
	size_t len;
	int calls;
	int stop_at;		/* the callback call that returns -ECANCELED, 0 for none */
};

static void __attribute__((format(printf, 2, 3))) tprintf(struct transcript *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->text + t->len, sizeof(t->text) - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n < sizeof(t->text) - t->len ? (size_t)n : sizeof(t->text) - t->len - 1;
}

static int on_object(const struct s3xml_object *o, void *userdata)
{
	struct transcript *t = userdata;

	if (strlen(o->key) != o->key_len || strlen(o->etag) != o->etag_len)
		tprintf(t, "BAD LENGTH\n");
	tprintf(t, "O %s|%" PRId64 "|%" PRId64 "|%s\n", o->key, o->size, o->last_modified, o->etag);
	return ++t->calls == t->stop_at ? -ECANCELED : 0;
}

static int on_prefix(const char *prefix, size_t len, void *userdata)
{
	struct transcript *t = userdata;

	if (strlen(prefix) != len)
		tprintf(t, "BAD LENGTH\n");
	tprintf(t, "P %s\n", prefix);
	return ++t->calls == t->stop_at ? -ECANCELED : 0;
}

static const char *str(const char *s)
{
	return s ? s : "(null)";
}

/* Parses doc in chunks of chunk bytes (0: all at once) and appends the result
 * to the transcript.  Returns what the failing call returned, or 0. */
static int run_list(const char *doc, size_t len, bool url, size_t chunk, struct transcript *t, char *msg,
		    size_t msglen)
{
	struct s3xml_list *x = NULL;
	struct s3xml_list_result res;
	int r;

	msg[0] = '\0';
	r = s3xml_list_new(url, on_object, on_prefix, t, &x);
	if (r < 0)
		return r;
	if (chunk == 0)
		chunk = len ? len : 1;
	for (size_t off = 0; r == 0 && off < len; off += chunk)
		r = s3xml_feed(x, doc + off, len - off < chunk ? len - off : chunk, msg, msglen);
	if (r == 0)
		r = s3xml_finish(x, &res, msg, msglen);
	if (r == 0)
		tprintf(t, "T truncated=%d token=%s keycount=%" PRId64 " enc=%s prefix=%s delim=%s start=%s "
			"contents=%zu prefixes=%zu\n", res.is_truncated, str(res.next_token), res.key_count,
			str(res.encoding_type), str(res.prefix), str(res.delimiter), str(res.start_after),
			res.contents, res.common_prefixes);
	s3xml_list_free(x);
	return r;
}

/* Parses doc whole and byte by byte: both must give the expected transcript. */
static void expect_list(int line, const char *doc, bool url, const char *want)
{
	static struct transcript t;
	char msg[512];
	int r;

	for (size_t chunk = 0; chunk <= 1; chunk++) {
		memset(&t, 0, sizeof(t));
		r = run_list(doc, strlen(doc), url, chunk, &t, msg, sizeof(msg));
		check_at(r == 0, __FILE__, line, "chunk %zu: returned %d (%s)", chunk, r, msg);
		check_at(strcmp(t.text, want) == 0, __FILE__, line, "chunk %zu: got\n%s-- want\n%s--", chunk, t.text, want);
	}
}

/* Parses doc whole and byte by byte: both must fail with want in the message. */
static void expect_list_error(int line, const char *doc, bool url, const char *want)
{
	static struct transcript t;
	char msg[512];
	int r;

	for (size_t chunk = 0; chunk <= 1; chunk++) {
		memset(&t, 0, sizeof(t));
		r = run_list(doc, strlen(doc), url, chunk, &t, msg, sizeof(msg));
		check_at(r == -EINVAL, __FILE__, line, "chunk %zu: returned %d, want -EINVAL", chunk, r);
		check_at(strstr(msg, want) != NULL, __FILE__, line, "chunk %zu: message \"%s\" lacks \"%s\"", chunk, msg, want);
	}
}

#define EXPECT_LIST(doc, url, want) expect_list(__LINE__, doc, url, want)
#define EXPECT_LIST_ERROR(doc, url, want) expect_list_error(__LINE__, doc, url, want)

/* A page around some Contents/CommonPrefixes XML. */
#define PAGE(body) "<ListBucketResult><IsTruncated>false</IsTruncated>" body "</ListBucketResult>"
#define OBJ(key) "<Contents><Key>" key "</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>" \
		 "<Size>1</Size></Contents>"
#define URL_PAGE(body) PAGE("<EncodingType>url</EncodingType>" body)
#define OBJ_LINE(key) "O " key "|1|1767225600|\n"
#define END_LINE(n, url) "T truncated=0 token=(null) keycount=-1 enc=" url " prefix=(null) delim=(null) " \
			 "start=(null) contents=" #n " prefixes=0\n"

/* ---- ListObjectsV2 ---- */

static const char realistic_page[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
	"  <Name>trail-bucket</Name>\n"
	"  <Prefix>AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/</Prefix>\n"
	"  <ContinuationToken>1/previous+token=</ContinuationToken>\n"
	"  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM+Ab=</NextContinuationToken>\n"
	"  <KeyCount>4</KeyCount>\n"
	"  <MaxKeys>4</MaxKeys>\n"
	"  <Delimiter>/</Delimiter>\n"
	"  <IsTruncated>true</IsTruncated>\n"
	"  <Contents>\n"
	"    <Key>AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/"
	"123456789012_CloudTrail_us-east-1_20261127T1000Z_Ab1.json.gz</Key>\n"
	"    <LastModified>2026-11-27T10:00:00.000Z</LastModified>\n"
	"    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>\n"
	"    <ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>\n"
	"    <Size>4242</Size>\n"
	"    <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>"
	"<DisplayName>logs</DisplayName></Owner>\n"
	"    <StorageClass>STANDARD</StorageClass>\n"
	"  </Contents>\n"
	"  <Contents>\n"
	"    <Key>AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/"
	"123456789012_CloudTrail_us-east-1_20261127T1005Z_Cd2.json.gz</Key>\n"
	"    <LastModified>2026-11-27T10:05:00Z</LastModified>\n"
	"    <ETag>\"d41d8cd98f00b204e9800998ecf8427e-2\"</ETag>\n"
	"    <Size>0</Size>\n"
	"    <StorageClass>STANDARD</StorageClass>\n"
	"  </Contents>\n"
	"  <Contents>\n"
	"    <Key><![CDATA[AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/R&D <b>.json.gz]]></Key>\n"
	"    <LastModified>2026-11-27T10:10:31.123Z</LastModified>\n"
	"    <ETag>plain-etag</ETag>\n"
	"    <Size>9223372036854775807</Size>\n"
	"  </Contents>\n"
	"  <CommonPrefixes>\n"
	"    <Prefix>AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/archive/</Prefix>\n"
	"  </CommonPrefixes>\n"
	"  <StartAfter>AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/26/%20+x</StartAfter>\n"
	"</ListBucketResult>\n";

static const char realistic_want[] =
	"O AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/"
	"123456789012_CloudTrail_us-east-1_20261127T1000Z_Ab1.json.gz|4242|1795773600|"
	"9b2cf535f27731c974343645a3985328\n"
	"O AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/"
	"123456789012_CloudTrail_us-east-1_20261127T1005Z_Cd2.json.gz|0|1795773900|"
	"d41d8cd98f00b204e9800998ecf8427e-2\n"
	"O AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/R&D <b>.json.gz|9223372036854775807|1795774231|"
	"plain-etag\n"
	"P AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/archive/\n"
	"T truncated=1 token=1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM+Ab= keycount=4 enc=(null) "
	"prefix=AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/ delim=/ "
	"start=AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/26/%20+x contents=3 prefixes=1\n";

static void test_realistic_page(void)
{
	static struct transcript whole, bytes, chunks;
	char msg[256];

	/* expect_list feeds it whole and one byte at a time. */
	EXPECT_LIST(realistic_page, false, realistic_want);

	/* And any other split gives the same transcript. */
	run_list(realistic_page, strlen(realistic_page), false, 0, &whole, msg, sizeof(msg));
	run_list(realistic_page, strlen(realistic_page), false, 1, &bytes, msg, sizeof(msg));
	CHECKF(strcmp(whole.text, bytes.text) == 0, "byte-at-a-time transcript differs");
	for (size_t chunk = 2; chunk < 300; chunk += 37) {
		memset(&chunks, 0, sizeof(chunks));
		run_list(realistic_page, strlen(realistic_page), false, chunk, &chunks, msg, sizeof(msg));
		CHECKF(strcmp(whole.text, chunks.text) == 0, "chunks of %zu: transcript differs", chunk);
	}

	/* Without a namespace, and with a prefixed one. */
	EXPECT_LIST(PAGE(OBJ("k")), false, OBJ_LINE("k") END_LINE(1, "(null)"));
	EXPECT_LIST("<s3:ListBucketResult xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		    "<s3:IsTruncated>false</s3:IsTruncated>"
		    "<s3:Contents><s3:Key>k</s3:Key><s3:LastModified>2026-01-01T00:00:00Z</s3:LastModified>"
		    "<s3:Size>1</s3:Size></s3:Contents></s3:ListBucketResult>",
		    false, OBJ_LINE("k") END_LINE(1, "(null)"));
	/* An empty page; an absent ETag is "". */
	EXPECT_LIST(PAGE(""), false, END_LINE(0, "(null)"));
}

static void test_url_encoding(void)
{
	/* %20 and '+' are both spaces; %2B is '+'; UTF-8 in either case of hex;
	 * control characters (the reason for encoding-type=url) come through. */
	EXPECT_LIST(URL_PAGE(OBJ("a%20b.txt") OBJ("a%2Bb.txt") OBJ("run+books/x.txt") OBJ("caf%C3%A9.json")
			     OBJ("caf%c3%a9") OBJ("100%25.csv") OBJ("line%0Abreak") OBJ("plain-key")),
		    true,
		    OBJ_LINE("a b.txt") OBJ_LINE("a+b.txt") OBJ_LINE("run books/x.txt")
		    OBJ_LINE("caf\xc3\xa9.json") OBJ_LINE("caf\xc3\xa9") OBJ_LINE("100%.csv")
		    OBJ_LINE("line\nbreak") OBJ_LINE("plain-key") END_LINE(8, "url"));

	/* Top-level Prefix, Delimiter, StartAfter and CommonPrefixes are decoded;
	 * NextContinuationToken never is.  EncodingType may come last (MinIO). */
	EXPECT_LIST("<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		    "<Prefix>logs+x/%C3%A9/</Prefix><Delimiter>%2F</Delimiter><StartAfter>a%2Bb</StartAfter>"
		    "<NextContinuationToken>abc%2Fdef+g=</NextContinuationToken><IsTruncated>true</IsTruncated>"
		    "<CommonPrefixes><Prefix>run+books/</Prefix></CommonPrefixes>"
		    "<CommonPrefixes><Prefix>%ED%95%9C/</Prefix></CommonPrefixes>"
		    "<EncodingType>url</EncodingType></ListBucketResult>",
		    true,
		    "P run books/\n"
		    "P \xed\x95\x9c/\n"
		    "T truncated=1 token=abc%2Fdef+g= keycount=-1 enc=url prefix=logs x/\xc3\xa9/ delim=/ "
		    "start=a+b contents=0 prefixes=2\n");

	/* Not URL-encoded: '%' and '+' are themselves. */
	EXPECT_LIST(PAGE(OBJ("100%.csv") OBJ("a+b") OBJ("a%20b")), false,
		    OBJ_LINE("100%.csv") OBJ_LINE("a+b") OBJ_LINE("a%20b") END_LINE(3, "(null)"));

	/* Bad escapes, NUL, invalid UTF-8 once decoded. */
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("a%G1")), true, "Key has an invalid %-escape");
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("a%4")), true, "Key has an invalid %-escape");
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("a%")), true, "Key has an invalid %-escape");
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("a%00b")), true, "Key has a NUL byte");
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("a%FF")), true, "Key is not UTF-8 once URL-decoded");
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("a%C3")), true, "Key is not UTF-8 once URL-decoded");
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("%C0%AF")), true, "Key is not UTF-8 once URL-decoded");
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("%ED%A0%80")), true, "Key is not UTF-8 once URL-decoded");
	EXPECT_LIST_ERROR(URL_PAGE("<CommonPrefixes><Prefix>%zz</Prefix></CommonPrefixes>"), true,
			  "Prefix has an invalid %-escape");

	/* The request and the page must agree. */
	EXPECT_LIST_ERROR(URL_PAGE(OBJ("k")), false, "EncodingType is url but the request did not ask for it");
	EXPECT_LIST_ERROR(PAGE(OBJ("k")), true, "the page has no EncodingType");
	EXPECT_LIST_ERROR(PAGE("<EncodingType>base64</EncodingType>"), true, "EncodingType is not url");
}

static void test_list_errors(void)
{
	size_t cut = strlen(realistic_page) / 2;
	char truncated[sizeof(realistic_page)];
	static struct transcript t;
	char msg[256];
	int r;

	/* Truncated in the middle: the feeds are fine, finish is not. */
	memcpy(truncated, realistic_page, cut);
	truncated[cut] = '\0';
	EXPECT_LIST_ERROR(truncated, false, "line 17, column 85: no element found");
	EXPECT_LIST_ERROR("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucket", false,
			  "unclosed token");
	EXPECT_LIST_ERROR("", false, "no element found");
	EXPECT_LIST_ERROR(PAGE("") "<x/>", false, "junk after document element");
	EXPECT_LIST_ERROR("<ListBucketResult><Key>a</Kez></ListBucketResult>", false, "mismatched tag");
	EXPECT_LIST_ERROR("<x:ListBucketResult/>", false, "unbound prefix");

	/* Wrong roots. */
	EXPECT_LIST_ERROR("<Error><Code>NoSuchBucket</Code></Error>", false,
			  "line 1, column 1: root element is Error, expected ListBucketResult");
	EXPECT_LIST_ERROR("<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>", false,
			  "root element is ListAllMyBucketsResult, expected ListBucketResult");

	/* DOCTYPE, with entities (billion laughs) or without. */
	EXPECT_LIST_ERROR("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
			  " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
			  " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n"
			  "<ListBucketResult><Prefix>&lol3;</Prefix></ListBucketResult>",
			  false, "line 2, column 16: DOCTYPE not allowed");
	EXPECT_LIST_ERROR("<!DOCTYPE ListBucketResult SYSTEM \"http://example.com/x.dtd\"><ListBucketResult/>",
			  false, "DOCTYPE not allowed");
	/* Without a DOCTYPE an entity reference is just undefined. */
	EXPECT_LIST_ERROR(PAGE("<Prefix>&lol;</Prefix>"), false, "undefined entity");

	/* Required elements and values. */
	EXPECT_LIST_ERROR("<ListBucketResult/>", false, "ListBucketResult without IsTruncated");
	EXPECT_LIST_ERROR("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", false,
			  "IsTruncated is true but there is no NextContinuationToken");
	EXPECT_LIST_ERROR("<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>", false,
			  "IsTruncated is neither true nor false");
	EXPECT_LIST_ERROR(PAGE("<IsTruncated>false</IsTruncated>"), false,
			  "ListBucketResult has two IsTruncated elements");
	EXPECT_LIST_ERROR(PAGE("<KeyCount>-1</KeyCount>"), false, "KeyCount is not a non-negative integer");
	EXPECT_LIST_ERROR(PAGE("<Contents><Size>1</Size><LastModified>2026-01-01T00:00:00Z</LastModified>"
			       "</Contents>"), false, "Contents without Key");
	EXPECT_LIST_ERROR(PAGE("<Contents><Key>k</Key><LastModified>2026-01-01T00:00:00Z</LastModified>"
			       "</Contents>"), false, "Contents without Size");
	EXPECT_LIST_ERROR(PAGE("<Contents><Key>k</Key><Size>1</Size></Contents>"), false,
			  "Contents without LastModified");
	EXPECT_LIST_ERROR(PAGE("<Contents><Key>k</Key><Key>j</Key></Contents>"), false,
			  "Contents has two Key elements");
	EXPECT_LIST_ERROR(PAGE("<Contents><Key>a<b/>c</Key></Contents>"), false, "Key has child elements");

	static const char *const bad_sizes[] = { "-1", "12a", "", " 12", "+5", "1.5", "99999999999999999999",
						 "9223372036854775808" };
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		char doc[512];

		snprintf(doc, sizeof(doc), PAGE("<Contents><Key>k</Key><Size>%s</Size></Contents>"), bad_sizes[i]);
		EXPECT_LIST_ERROR(doc, false, "Size is not a non-negative integer");
	}
	EXPECT_LIST_ERROR(PAGE("<Contents><Key>k</Key><LastModified>yesterday</LastModified></Contents>"), false,
			  "LastModified is not a time");
	EXPECT_LIST_ERROR(PAGE("<Contents><Key>k</Key><LastModified>2026-01-01 00:00:00</LastModified>"
			       "</Contents>"), false, "LastModified is not a time");

	/* A callback's error stops the parse and is returned, then and later. */
	memset(&t, 0, sizeof(t));
	t.stop_at = 2;
	r = run_list(realistic_page, strlen(realistic_page), false, 0, &t, msg, sizeof(msg));
	CHECKF(r == -ECANCELED && t.calls == 2, "callback error: returned %d after %d calls", r, t.calls);
	CHECKF(strstr(msg, "stopped by a callback") != NULL, "callback error message: %s", msg);
	memset(&t, 0, sizeof(t));
	t.stop_at = 4;	/* the CommonPrefixes callback */
	r = run_list(realistic_page, strlen(realistic_page), false, 1, &t, msg, sizeof(msg));
	CHECKF(r == -ECANCELED && t.calls == 4, "prefix callback error: returned %d after %d calls", r, t.calls);
}

static void test_sticky_error_and_outputs(void)
{
	struct s3xml_list_result res, untouched;
	struct s3xml_list *x = NULL;
	char msg[256], small[8];
	int r;

	CHECKF(s3xml_list_new(false, NULL, NULL, NULL, &x) == 0, "s3xml_list_new failed");
	if (!x)
		return;
	r = s3xml_feed(x, "<Nope>", 6, msg, sizeof(msg));
	CHECKF(r == -EINVAL, "wrong root: %d", r);
	r = s3xml_feed(x, "<ListBucketResult/>", 19, small, sizeof(small));
	CHECKF(r == -EINVAL && strlen(small) == sizeof(small) - 1 && strncmp(small, msg, 7) == 0,
	      "later feed: %d \"%s\"", r, small);
	CHECKF(s3xml_feed(x, "x", 1, NULL, 0) == -EINVAL, "NULL msg");
	memset(&res, 0xa5, sizeof(res));
	untouched = res;
	r = s3xml_finish(x, &res, msg, sizeof(msg));
	CHECKF(r == -EINVAL && memcmp(&res, &untouched, sizeof(res)) == 0, "finish after error: %d", r);
	CHECKF(strcmp(msg, "line 1, column 1: root element is Nope, expected ListBucketResult") == 0,
	      "message: %s", msg);
	s3xml_list_free(x);
	s3xml_list_free(NULL);
}

/* ---- Bounds ---- */

static void test_bounds(void)
{
	static char key[S3XML_MAX_TEXT + 16], doc[S3XML_MAX_TEXT * 3 + 512], want[S3XML_MAX_TEXT + 256];
	static struct transcript t;
	struct s3xml_list_result res;
	struct s3xml_list *x = NULL;
	char msg[256], *big, *p;
	size_t n;
	int r;

	/* A key of exactly S3XML_MAX_TEXT bytes, then one more. */
	memset(key, 'k', S3XML_MAX_TEXT);
	key[S3XML_MAX_TEXT] = '\0';
	snprintf(doc, sizeof(doc), PAGE(OBJ("%s")), key);
	snprintf(want, sizeof(want), OBJ_LINE("%s") END_LINE(1, "(null)"), key);
	EXPECT_LIST(doc, false, want);
	key[S3XML_MAX_TEXT] = 'k';
	key[S3XML_MAX_TEXT + 1] = '\0';
	snprintf(doc, sizeof(doc), PAGE(OBJ("%s")), key);
	EXPECT_LIST_ERROR(doc, false, "Key longer than 4096 bytes");
	/* The bound is on the text as sent, before decoding. */
	p = key;
	for (int i = 0; i < 1366; i++)
		p += sprintf(p, "%%41");
	snprintf(doc, sizeof(doc), URL_PAGE(OBJ("%s")), key);
	EXPECT_LIST_ERROR(doc, true, "Key longer than 4096 bytes");
	/* An element nobody reads may be longer. */
	memset(key, 'o', S3XML_MAX_TEXT + 1);
	key[S3XML_MAX_TEXT + 1] = '\0';
	snprintf(doc, sizeof(doc), PAGE("<Owner>%s</Owner>"), key);
	EXPECT_LIST(doc, false, END_LINE(0, "(null)"));

	/* Depth: S3XML_MAX_DEPTH elements open at once, then one more. */
	p = doc;
	p += sprintf(p, "<ListBucketResult><IsTruncated>false</IsTruncated>");
	for (int i = 1; i < S3XML_MAX_DEPTH; i++)
		p += sprintf(p, "<a>");
	for (int i = 1; i < S3XML_MAX_DEPTH; i++)
		p += sprintf(p, "</a>");
	sprintf(p, "</ListBucketResult>");
	EXPECT_LIST(doc, false, END_LINE(0, "(null)"));
	p = doc;
	p += sprintf(p, "<ListBucketResult><IsTruncated>false</IsTruncated>");
	for (int i = 0; i < S3XML_MAX_DEPTH; i++)
		p += sprintf(p, "<a>");
	for (int i = 0; i < S3XML_MAX_DEPTH; i++)
		p += sprintf(p, "</a>");
	sprintf(p, "</ListBucketResult>");
	EXPECT_LIST_ERROR(doc, false, "elements nested deeper than 16");

	/* Entries: S3XML_MAX_ENTRIES, then one more (whole feeds only). */
	n = 64 + (S3XML_MAX_ENTRIES + 1) * 64;
	big = malloc(n);
	CHECKF(big != NULL, "malloc");
	if (!big)
		return;
	for (int extra = 0; extra <= 1; extra++) {
		p = big + sprintf(big, "<ListBucketResult><IsTruncated>false</IsTruncated>");
		for (int i = 0; i < S3XML_MAX_ENTRIES - 1 + extra; i++)
			p += sprintf(p, "<CommonPrefixes><Prefix>p%d/</Prefix></CommonPrefixes>", i);
		p += sprintf(p, "%s</ListBucketResult>", OBJ("k"));
		memset(&t, 0, sizeof(t));
		r = run_list(big, (size_t)(p - big), false, 0, &t, msg, sizeof(msg));
		if (extra)
			CHECKF(r == -EINVAL && strstr(msg, "more than 10000 Contents and CommonPrefixes"),
			      "10001 entries: %d %s", r, msg);
		else
			CHECKF(r == 0 && t.calls == S3XML_MAX_ENTRIES, "10000 entries: %d %s", r, msg);
	}
	free(big);

	/* Document size: exactly S3XML_MAX_DOCUMENT bytes, then one more. */
	big = malloc(S3XML_MAX_DOCUMENT + 1);
	CHECKF(big != NULL, "malloc");
	if (!big)
		return;
	for (int extra = 0; extra <= 1; extra++) {
		static const char head[] = "<ListBucketResult><IsTruncated>false</IsTruncated>";
		static const char tail[] = "</ListBucketResult>";
		size_t len = S3XML_MAX_DOCUMENT + extra;

		memset(big, ' ', len);
		memcpy(big, head, strlen(head));
		memcpy(big + len - strlen(tail), tail, strlen(tail));
		CHECKF(s3xml_list_new(false, NULL, NULL, NULL, &x) == 0, "s3xml_list_new");
		r = s3xml_feed(x, big, len / 2, msg, sizeof(msg));
		if (r == 0)
			r = s3xml_feed(x, big + len / 2, len - len / 2, msg, sizeof(msg));
		if (r == 0)
			r = s3xml_finish(x, &res, msg, sizeof(msg));
		if (extra)
			CHECKF(r == -EINVAL && strcmp(msg, "document longer than 16777216 bytes") == 0,
			      "16 MiB + 1: %d %s", r, msg);
		else
			CHECKF(r == 0, "16 MiB: %d %s", r, msg);
		s3xml_list_free(x);
	}
	free(big);
}

/* ---- Error documents ---- */

static void test_error_documents(void)
{
	static char doc[8192];
	struct s3xml_error err, untouched;
	char msg[256], *p;
	int r;

	r = s3xml_parse_error("", 0, &err, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "no element found"), "empty error document: %d %s", r, msg);

	p = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
	    "<RequestId>4442587FB7D0A2F9</RequestId><HostId>eftixk72aD6Ap51TnqcoF8eFidJG9Z/2mkiDFu8y"
	    "U9AS1ed4OpIszj7UDNEHGran</HostId></Error>";
	r = s3xml_parse_error(p, strlen(p), &err, msg, sizeof(msg));
	CHECKF(r == 0, "S3 error: %d %s", r, msg);
	CHECKF(strcmp(err.code, "SlowDown") == 0 && strcmp(err.message, "Please reduce your request rate.") == 0 &&
	      strcmp(err.request_id, "4442587FB7D0A2F9") == 0, "S3 error: %s / %s / %s", err.code, err.message,
	      err.request_id);

	p = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	    "  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n"
	    "    <Message>User: arn:aws:iam::123456789012:user/x is not authorized to perform: sts:AssumeRole"
	    "</Message>\n  </Error>\n  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
	    "</ErrorResponse>\n";
	r = s3xml_parse_error(p, strlen(p), &err, msg, sizeof(msg));
	CHECKF(r == 0, "STS error: %d %s", r, msg);
	CHECKF(strcmp(err.code, "AccessDenied") == 0 &&
	      strcmp(err.message, "User: arn:aws:iam::123456789012:user/x is not authorized to perform: "
		     "sts:AssumeRole") == 0 &&
	      strcmp(err.request_id, "c6104cbe-af31-11e0-8154-cbc7ccf896c7") == 0,
	      "STS error: %s / %s / %s", err.code, err.message, err.request_id);

	/* A long message is cut at a character boundary: 1022 'a' then 'é'
	 * (2 bytes) does not fit 1023 bytes, so the 'é' goes whole. */
	p = doc + sprintf(doc, "<Error><Code>InternalError</Code><Message>");
	memset(p, 'a', 1022);
	p += 1022;
	p += sprintf(p, "\xc3\xa9zzz</Message></Error>");
	r = s3xml_parse_error(doc, strlen(doc), &err, msg, sizeof(msg));
	CHECKF(r == 0 && strlen(err.message) == 1022 && err.request_id[0] == '\0', "long message: %d %zu", r,
	      strlen(err.message));

	/* SignatureDoesNotMatch carries long elements nobody reads. */
	p = doc + sprintf(doc, "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we "
			  "calculated does not match</Message><CanonicalRequestBytes>");
	for (int i = 0; i < 2000; i++)
		p += sprintf(p, "%02x ", i & 0xff);
	sprintf(p, "</CanonicalRequestBytes><RequestId>R1</RequestId></Error>");
	r = s3xml_parse_error(doc, strlen(doc), &err, msg, sizeof(msg));
	CHECKF(r == 0 && strcmp(err.code, "SignatureDoesNotMatch") == 0 && strcmp(err.request_id, "R1") == 0,
	      "SignatureDoesNotMatch: %d %s", r, msg);

	/* Errors: no Code, wrong root, Code in the wrong place, truncation, DOCTYPE. */
	memset(&err, 0x5a, sizeof(err));
	untouched = err;
	p = "<Error><Message>m</Message></Error>";
	r = s3xml_parse_error(p, strlen(p), &err, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strcmp(msg, "error document without Code") == 0 &&
	      memcmp(&err, &untouched, sizeof(err)) == 0, "no Code: %d %s", r, msg);
	p = "<ListBucketResult/>";
	r = s3xml_parse_error(p, strlen(p), &err, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "root element is ListBucketResult, expected Error or ErrorResponse"),
	      "wrong root: %d %s", r, msg);
	p = "<ErrorResponse><Code>X</Code></ErrorResponse>";
	r = s3xml_parse_error(p, strlen(p), &err, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "without Code"), "misplaced Code: %d %s", r, msg);
	p = "<Error><Code>SlowDown</Code>";
	r = s3xml_parse_error(p, strlen(p), &err, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "line 1, column"), "truncated: %d %s", r, msg);
	p = "<!DOCTYPE Error [<!ENTITY x \"y\">]><Error><Code>&x;</Code></Error>";
	r = s3xml_parse_error(p, strlen(p), &err, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "DOCTYPE not allowed"), "DOCTYPE: %d %s", r, msg);
	r = s3xml_parse_error(doc, (size_t)S3XML_MAX_DOCUMENT + 1, &err, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "document longer than"), "too long: %d %s", r, msg);
}

/* ---- STS ---- */

static const char assume_role[] =
	"<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	"<AssumeRoleResult>\n"
	"<SourceIdentity>Alice</SourceIdentity>\n"
	"<AssumedRoleUser>\n"
	"<Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>\n"
	"<AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>\n"
	"</AssumedRoleUser>\n"
	"<Credentials>\n"
	"<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
	"<SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
	"<SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpS"
	"PfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp"
	"75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYv"
	"KTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==</SessionToken>\n"
	"<Expiration>2019-11-09T13:34:41Z</Expiration>\n"
	"</Credentials>\n"
	"<PackedPolicySize>6</PackedPolicySize>\n"
	"</AssumeRoleResult>\n"
	"<ResponseMetadata>\n"
	"<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
	"</ResponseMetadata>\n"
	"</AssumeRoleResponse>\n";

static int parse_sts(const char *doc, struct s3xml_credentials *c, char *msg, size_t msglen)
{
	return s3xml_parse_credentials(doc, strlen(doc), c, msg, msglen);
}

static void test_sts(void)
{
	static struct s3xml_credentials c, untouched;
	static char doc[40000];
	char msg[256], *p;
	int r;

	r = parse_sts(assume_role, &c, msg, sizeof(msg));
	CHECKF(r == 0, "AssumeRole: %d %s", r, msg);
	CHECKF(strcmp(c.access_key_id, "ASIAIOSFODNN7EXAMPLE") == 0 &&
	      strcmp(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY") == 0 &&
	      strncmp(c.session_token, "AQoDYXdzEPT//////////wEXAMPLE", 29) == 0 &&
	      strlen(c.session_token) == 336 && c.expiration == 1573306481,
	      "AssumeRole values: %s %s %zu %" PRId64, c.access_key_id, c.secret_access_key,
	      strlen(c.session_token), c.expiration);

	r = parse_sts("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
		      "<AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:x"
		      "</SubjectFromWebIdentityToken><Credentials><SessionToken>tok</SessionToken>"
		      "<SecretAccessKey>sec</SecretAccessKey><Expiration>2026-11-27T10:00:00.000Z</Expiration>"
		      "<AccessKeyId>ASIA2</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>"
		      "</AssumeRoleWithWebIdentityResponse>", &c, msg, sizeof(msg));
	CHECKF(r == 0 && strcmp(c.access_key_id, "ASIA2") == 0 && strcmp(c.secret_access_key, "sec") == 0 &&
	      strcmp(c.session_token, "tok") == 0 && c.expiration == 1795773600, "web identity: %d %s", r, msg);

	/* Missing SessionToken: an error, and nothing written. */
	p = doc;
	{
		const char *start = strstr(assume_role, "<SessionToken>");
		const char *end = strstr(assume_role, "</SessionToken>") + strlen("</SessionToken>");

		memcpy(p, assume_role, (size_t)(start - assume_role));
		strcpy(p + (start - assume_role), end);
	}
	memset(&c, 0x5a, sizeof(c));
	untouched = c;
	r = parse_sts(doc, &c, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strcmp(msg, "STS response without Credentials/SessionToken") == 0 &&
	      memcmp(&c, &untouched, sizeof(c)) == 0, "missing SessionToken: %d %s", r, msg);

	/* Credentials under the wrong result element do not count. */
	r = parse_sts("<AssumeRoleResponse><AssumeRoleWithWebIdentityResult><Credentials>"
		      "<AccessKeyId>a</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
		      "<Expiration>2026-11-27T10:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
		      "</AssumeRoleResponse>", &c, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "without Credentials/AccessKeyId"), "wrong result: %d %s", r, msg);

	/* Bad values; messages never quote them. */
	r = parse_sts("<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId></AccessKeyId>"
		      "</Credentials></AssumeRoleResult></AssumeRoleResponse>", &c, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "AccessKeyId is empty"), "empty key id: %d %s", r, msg);
	p = doc + sprintf(doc, "<AssumeRoleResponse><AssumeRoleResult><Credentials><SecretAccessKey>");
	memset(p, 'S', S3XML_SECRET_KEY_SIZE);
	sprintf(p + S3XML_SECRET_KEY_SIZE, "</SecretAccessKey></Credentials></AssumeRoleResult></AssumeRoleResponse>");
	r = parse_sts(doc, &c, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "SecretAccessKey longer than 128 bytes") && !strstr(msg, "SS"),
	      "long secret: %d %s", r, msg);
	/* A session token longer than S3XML_MAX_TEXT (session tags make them long) is
	 * taken whole, up to S3XML_MAX_SESSION_TOKEN, as the credentials module does. */
	for (size_t n = 10000; n <= S3XML_MAX_SESSION_TOKEN + 1; n += S3XML_MAX_SESSION_TOKEN + 1 - 10000) {
		p = doc + sprintf(doc, "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId>"
				  "<SecretAccessKey>s</SecretAccessKey><SessionToken>");
		memset(p, 'T', n);
		sprintf(p + n, "</SessionToken><Expiration>2026-11-27T10:00:00Z</Expiration></Credentials>"
			"</AssumeRoleResult></AssumeRoleResponse>");
		r = parse_sts(doc, &c, msg, sizeof(msg));
		if (n <= S3XML_MAX_SESSION_TOKEN)
			CHECKF(r == 0 && strlen(c.session_token) == n, "token of %zu bytes: %d %s", n, r, msg);
		else
			CHECKF(r == -EINVAL && strstr(msg, "SessionToken longer than 16384 bytes") && !strstr(msg, "TT"),
			       "token of %zu bytes: %d %s", n, r, msg);
	}
	r = parse_sts("<AssumeRoleResponse><AssumeRoleResult><Credentials>"
		      "<Expiration>2026-11-27</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>",
		      &c, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "Expiration is not a time"), "bad expiration: %d %s", r, msg);
	r = parse_sts("<ErrorResponse><Error><Code>ExpiredToken</Code></Error></ErrorResponse>", &c, msg,
		      sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "root element is ErrorResponse, expected AssumeRoleResponse"),
	      "error root: %d %s", r, msg);
	r = parse_sts("<!DOCTYPE x><AssumeRoleResponse/>", &c, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "DOCTYPE not allowed"), "DOCTYPE: %d %s", r, msg);
	r = parse_sts("<AssumeRoleResponse><AssumeRoleResult>", &c, msg, sizeof(msg));
	CHECKF(r == -EINVAL && strstr(msg, "no element found"), "truncated: %d %s", r, msg);
}

int main(void)
{
	test_realistic_page();
	test_url_encoding();
	test_list_errors();
	test_sticky_error_and_outputs();
	test_bounds();
	test_error_documents();
	test_sts();
	return check_summary();
}
