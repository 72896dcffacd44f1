/* match.h: the value tests that Sigma modifiers compile to.
 *
 * A pattern is one value from a rule after its modifiers were applied: a
 * wildcard string (plain values, contains, startswith, endswith, base64...),
 * a regular expression, a CIDR network, a number comparison, a field
 * reference, null, or exists.  Compiling happens once at rule load; matching
 * runs per record and never allocates.  Case-insensitive comparison folds
 * ASCII letters only (Sigma's default; `cased` turns it off).
 * Nothing here logs.
 */
#ifndef TRAILWATCH_MATCH_H
#define TRAILWATCH_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "trailwatch/arena.h"

enum pattern_op {
	PAT_GLOB,	/* wildcard string: * and ? */
	PAT_RE,		/* PCRE2 regular expression */
	PAT_CIDR,	/* IPv4 or IPv6 network */
	PAT_GT,
	PAT_GTE,
	PAT_LT,
	PAT_LTE,
	PAT_NULL,	/* the field is absent or null */
	PAT_EXISTS,	/* the field is present (or absent, with exists: false) */
	PAT_FIELDREF,	/* equal to the value of another field */
};

enum glob_kind {
	GLOB_EXACT,	/* no wildcard */
	GLOB_PREFIX,	/* "abc*" */
	GLOB_SUFFIX,	/* "*abc" */
	GLOB_CONTAINS,	/* "*abc*" */
	GLOB_ANY,	/* "*" */
	GLOB_GENERIC,	/* anything else */
};

struct cidr {
	int family;		/* 4 or 6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct pattern {
	enum pattern_op op;
	bool negate;		/* neq: the test is true when nothing equals */
	bool cased;
	/* PAT_GLOB: the pattern with escapes resolved into literal text and
	 * wildcard bytes marked in `wild` (so a literal '*' is distinguishable);
	 * folded to lower case unless cased.  lit/litlen: the literal core used
	 * by the fast kinds. */
	enum glob_kind kind;
	const char *text;
	const uint8_t *wild;	/* per byte of text: 0 literal, 1 '*', 2 '?' */
	size_t len;
	const char *lit;
	size_t litlen;
	size_t anchor;		/* GLOB_CONTAINS: offset in lit of its rarest byte */
	/* Numbers for PAT_GT..PAT_LTE, and for numeric equality when the rule
	 * value was a plain YAML number (is_number). */
	double num;
	bool is_number;
	pcre2_code *re;		/* PAT_RE */
	struct cidr cidr;	/* PAT_CIDR */
	bool exists;		/* PAT_EXISTS */
	int ref_slot;		/* PAT_FIELDREF: a slot of the record (never of an element) */
	bool arn_account;	/* |arnaccount: compare the account id in the value */
	const char *source;	/* the value as written, for messages */
};

/* Are the len bytes at s an AWS account id (exactly 12 digits)? */
bool aws_account_id(const char *s, size_t len);

/* The 12-digit account id of an ARN ("arn:aws:iam::111122223333:root"), or
 * the value itself when it is a bare account id.  False when there is none
 * ("*", a service name, a canonical user id). */
bool arn_account(const char *s, size_t len, const char **ret, size_t *ret_len);

/* Compiles a Sigma wildcard string into p (op PAT_GLOB).  Backslash escapes
 * '*', '?' and '\'; any other backslash is literal.  Memory from a. -ENOMEM. */
int pattern_glob(struct pattern *p, struct arena *a, const char *s, size_t len, bool cased);

/* Same, for a literal string in which '*' and '?' are not wildcards. */
int pattern_literal(struct pattern *p, struct arena *a, const char *s, size_t len, bool cased);

/* Compiles a regular expression with Sigma's flags (i, m, s).  On error
 * returns -EINVAL with a message in err.  JIT compilation is tried and its
 * failure ignored (e.g. under MemoryDenyWriteExecute=). */
int pattern_regex(struct pattern *p, const char *re, bool icase, bool multiline, bool dotall,
		  char *err, size_t errlen);

/* Is the regular expression re (one PCRE2 accepts) of a shape known to
 * backtrack catastrophically: nested repetition ((a+)+, (.*)*) or a repeated
 * group of alternatives that are the same ((a|a)*)?  A heuristic, with
 * misses: the engine's match limit is the bound (engine.h).  When true,
 * *ret_offset is where the group starts and *ret_why says what it is. */
bool regex_backtracks(const char *re, size_t *ret_offset, const char **ret_why);

/* Parses "a.b.c.d/n", "x::y/n", or a bare address (a host network). -EINVAL. */
int cidr_parse(struct cidr *c, const char *s);

/* Parses an IPv4 or IPv6 address into 16 bytes; *family 4 or 6.  -EINVAL. */
int ip_parse(const char *s, size_t len, uint8_t addr[16], int *family);

bool cidr_contains(const struct cidr *c, const uint8_t addr[16], int family);

/* Parses a JSON/YAML number (or a numeric string).  -EINVAL. */
int number_parse(const char *s, size_t len, double *ret);

/* Does text match the glob pattern p?  For a case-insensitive pattern,
 * folded tells that text is already in lower case (record_value_folded),
 * which makes every comparison a plain memcmp or memmem. */
bool glob_match(const struct pattern *p, const char *text, size_t len);
bool glob_match_folded(const struct pattern *p, const char *folded, size_t len);

/* Do the n bytes of text, with ASCII letters folded to lower case, equal the
 * n bytes of lower (already lower case)?  Eight bytes a step. */
bool fold_equal(const char *lower, const char *text, size_t n);

/* Standard base64 of s (with padding) into arena memory.  NULL on ENOMEM. */
char *base64_encode(struct arena *a, const char *s, size_t len, size_t *ret_len);

/* The three base64offset variants of s (Sigma): the part of the encoding of
 * s that does not depend on the bytes around it, for offsets 0, 1 and 2.
 * out[i] is NULL when a variant is empty.  -ENOMEM. */
int base64_offsets(struct arena *a, const char *s, size_t len, char *out[3], size_t outlen[3]);

/* Frees what a pattern owns outside the arena (a compiled regex). */
void pattern_release(struct pattern *p);

#endif
