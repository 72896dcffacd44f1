/* match.c: compiled value tests (see match.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/match.h"

static inline unsigned char fold(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* How common a byte is in the text CloudTrail fields hold (user agents,
 * ARNs, names, versions): punctuation and digits are everywhere, then
 * letters in rough English order; anything else is rare.  Searching for a
 * substring starts from its rarest byte, so that few places need checking. */
static int commonness(unsigned char c)
{
	static const char order[] = "/.-_:0123456789 etaoinsrhlducmfpgwybvkxjqz";
	const char *p = memchr(order, tolower(c), sizeof(order) - 1);

	return p ? (int)(sizeof(order) - (size_t)(p - order)) : 0;
}

static size_t rarest(const char *lit, size_t len)
{
	size_t best = 0;

	for (size_t i = 1; i < len; i++)
		if (commonness((unsigned char)lit[i]) < commonness((unsigned char)lit[best]))
			best = i;
	return best;
}

/* Sets the fast-path kind from the wildcard layout. */
static void classify(struct pattern *p)
{
	size_t stars = 0, qs = 0;

	for (size_t i = 0; i < p->len; i++) {
		stars += p->wild[i] == 1;
		qs += p->wild[i] == 2;
	}
	p->lit = p->text;
	p->litlen = p->len;
	if (stars == 0 && qs == 0) {
		p->kind = GLOB_EXACT;
	} else if (qs == 0 && stars == p->len) {
		p->kind = GLOB_ANY;
	} else if (qs == 0 && stars == 1 && p->wild[p->len - 1] == 1) {
		p->kind = GLOB_PREFIX;
		p->litlen = p->len - 1;
	} else if (qs == 0 && stars == 1 && p->wild[0] == 1) {
		p->kind = GLOB_SUFFIX;
		p->lit = p->text + 1;
		p->litlen = p->len - 1;
	} else if (qs == 0 && stars == 2 && p->len >= 2 && p->wild[0] == 1 && p->wild[p->len - 1] == 1) {
		p->kind = GLOB_CONTAINS;
		p->lit = p->text + 1;
		p->litlen = p->len - 2;
		p->anchor = rarest(p->lit, p->litlen);
	} else {
		p->kind = GLOB_GENERIC;
	}
}

static int glob_build(struct pattern *p, struct arena *a, const char *s, size_t len, bool cased,
		      bool wildcards)
{
	char *text = arena_alloc(a, len + 1);
	uint8_t *wild = arena_alloc(a, len + 1);
	size_t n = 0;

	if (!text || !wild)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (wildcards && c == '\\' && i + 1 < len &&
		    (s[i + 1] == '*' || s[i + 1] == '?' || s[i + 1] == '\\')) {
			c = (unsigned char)s[++i];
			wild[n] = 0;
		} else if (wildcards && c == '*') {
			/* Collapse runs of '*': "**" means the same as "*". */
			if (n > 0 && wild[n - 1] == 1)
				continue;
			wild[n] = 1;
		} else if (wildcards && c == '?') {
			wild[n] = 2;
		} else {
			wild[n] = 0;
		}
		text[n++] = (char)(cased ? c : fold(c));
	}
	text[n] = '\0';
	p->op = PAT_GLOB;
	p->cased = cased;
	p->text = text;
	p->wild = wild;
	p->len = n;
	classify(p);
	return 0;
}

int pattern_glob(struct pattern *p, struct arena *a, const char *s, size_t len, bool cased)
{
	return glob_build(p, a, s, len, cased, true);
}

int pattern_literal(struct pattern *p, struct arena *a, const char *s, size_t len, bool cased)
{
	return glob_build(p, a, s, len, cased, false);
}

/* The eight bytes of w with 'A'-'Z' turned into 'a'-'z' (SWAR: each byte's
 * high bit marks, after the two additions, whether its low seven bits are at
 * least 'A' and above 'Z'; bytes over 0x7f are left alone). */
static inline uint64_t fold8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t low7 = w & ~high;
	uint64_t ge_a = low7 + (0x80 - 'A') * ones;
	uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * ones;
	uint64_t upper = ge_a & ~gt_z & ~w & high;

	return w | (upper >> 2);
}

bool fold_equal(const char *lower, const char *text, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t a, b;
		memcpy(&a, lower + i, 8);
		memcpy(&b, text + i, 8);
		if (a != fold8(b))
			return false;
	}
	for (; i < n; i++)
		if ((unsigned char)lower[i] != fold((unsigned char)text[i]))
			return false;
	return true;
}

static bool eq_at(const char *pat, const char *text, size_t n, bool cased)
{
	if (cased)
		return memcmp(pat, text, n) == 0;
	return fold_equal(pat, text, n);
}

static bool contains(const char *lit, size_t litlen, const char *text, size_t len, bool cased)
{
	if (litlen == 0)
		return true;
	if (litlen > len)
		return false;
	unsigned char first = (unsigned char)lit[0];
	for (size_t i = 0; i + litlen <= len; i++) {
		unsigned char c = (unsigned char)text[i];
		if ((cased ? c : fold(c)) == first && eq_at(lit + 1, text + i + 1, litlen - 1, cased))
			return true;
	}
	return false;
}

/* Wildcard matching with one remembered star: linear in practice, and never
 * worse than O(len * patlen). */
static bool generic(const struct pattern *p, const char *text, size_t len)
{
	size_t pi = 0, ti = 0, star_p = (size_t)-1, star_t = 0;

	while (ti < len) {
		if (pi < p->len && p->wild[pi] == 1) {
			star_p = pi++;
			star_t = ti;
			continue;
		}
		if (pi < p->len) {
			unsigned char c = (unsigned char)text[ti];
			if (!p->cased)
				c = fold(c);
			if (p->wild[pi] == 2 || (unsigned char)p->text[pi] == c) {
				pi++;
				ti++;
				continue;
			}
		}
		if (star_p == (size_t)-1)
			return false;
		pi = star_p + 1;
		ti = ++star_t;
	}
	while (pi < p->len && p->wild[pi] == 1)
		pi++;
	return pi == p->len;
}

/* Is needle in text?  memchr (vectorised) finds the places where the
 * needle's rarest byte (at offset anchor) occurs and memcmp checks the
 * needle around each; with a well-chosen anchor few places need checking. */
static bool find(const char *text, size_t len, const char *needle, size_t nlen, size_t anchor)
{
	const char *p, *end;

	if (nlen == 0)
		return true;
	if (len < nlen)
		return false;
	p = text + anchor;
	end = text + len - (nlen - anchor - 1);	/* last place the anchor can be, + 1 */
	while (p < end) {
		p = memchr(p, needle[anchor], (size_t)(end - p));
		if (!p)
			return false;
		if (memcmp(p - anchor, needle, nlen) == 0)
			return true;
		p++;
	}
	return false;
}

/* Matching with case already dealt with: byte-exact comparisons. */
static bool glob_exact_case(const struct pattern *p, const char *text, size_t len)
{
	switch (p->kind) {
	case GLOB_EXACT:
		return len == p->litlen && memcmp(p->lit, text, len) == 0;
	case GLOB_PREFIX:
		return len >= p->litlen && memcmp(p->lit, text, p->litlen) == 0;
	case GLOB_SUFFIX:
		return len >= p->litlen && memcmp(p->lit, text + len - p->litlen, p->litlen) == 0;
	case GLOB_CONTAINS:
		return find(text, len, p->lit, p->litlen, p->anchor);
	case GLOB_ANY:
		return true;
	default:
		return generic(p, text, len);
	}
}

bool glob_match_folded(const struct pattern *p, const char *folded, size_t len)
{
	/* generic() folds text bytes itself when !cased: folding twice is harmless. */
	return glob_exact_case(p, folded, len);
}

bool glob_match(const struct pattern *p, const char *text, size_t len)
{
	if (p->cased)
		return glob_exact_case(p, text, len);
	switch (p->kind) {
	case GLOB_EXACT:
		return len == p->litlen && eq_at(p->lit, text, len, p->cased);
	case GLOB_PREFIX:
		return len >= p->litlen && eq_at(p->lit, text, p->litlen, p->cased);
	case GLOB_SUFFIX:
		return len >= p->litlen && eq_at(p->lit, text + len - p->litlen, p->litlen, p->cased);
	case GLOB_CONTAINS:
		return contains(p->lit, p->litlen, text, len, p->cased);
	case GLOB_ANY:
		return true;
	default:
		return generic(p, text, len);
	}
}

int pattern_regex(struct pattern *p, const char *re, bool icase, bool multiline, bool dotall,
		  char *err, size_t errlen)
{
	uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
	PCRE2_SIZE erroff;
	int errcode;

	if (icase)
		opts |= PCRE2_CASELESS;
	if (multiline)
		opts |= PCRE2_MULTILINE;
	if (dotall)
		opts |= PCRE2_DOTALL;
	p->op = PAT_RE;
	p->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &errcode, &erroff, NULL);
	if (!p->re) {
		PCRE2_UCHAR msg[200];
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		snprintf(err, errlen, "invalid regular expression at offset %zu: %s", (size_t)erroff,
			 (const char *)msg);
		return -EINVAL;
	}
	/* Faster when allowed; refused under MemoryDenyWriteExecute=, which is fine. */
	(void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE);
	return 0;
}

/* ---- regular expressions that backtrack ---------------------------------
 *
 * A recursive-descent reading of a pattern that PCRE2 has already accepted,
 * looking for the two shapes that make a backtracking matcher take time
 * exponential in the input: a repeated group whose inside can itself match
 * a varying number of repetitions, with nothing it must match in between
 * ((a+)+, (.*)*, (\w+\s?)+), and a repeated group with two alternatives that
 * are the same ((a|a)*).  Heuristic on purpose: the engine's match limit is
 * what bounds the work; this only tells the rule's author early. */

#define RE_INF UINT32_MAX
#define RE_MAX_DEPTH 250	/* PCRE2's own limit on nested parentheses */

struct re_scan {
	const char *s;
	size_t len, pos;
	bool found;
	size_t at;
	const char *why;
};

/* What a group's inside can do. */
struct re_inside {
	bool loose;		/* it can match a varying number of repetitions of something */
	bool same_alts;		/* two of its alternatives are the same text */
};

static void re_found(struct re_scan *sc, size_t at, const char *why)
{
	if (!sc->found) {
		sc->found = true;
		sc->at = at;
		sc->why = why;
	}
}

static bool re_digits(struct re_scan *sc, uint32_t *ret)
{
	size_t start = sc->pos;
	uint32_t v = 0;

	while (sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9') {
		v = v < 100000000 ? v * 10 + (uint32_t)(sc->s[sc->pos] - '0') : v;
		sc->pos++;
	}
	*ret = v;
	return sc->pos > start;
}

/* A quantifier after an atom, if any: {min, max}, 1..1 when there is none. */
static void re_quantifier(struct re_scan *sc, uint32_t *min, uint32_t *max, bool *possessive)
{
	char c = sc->pos < sc->len ? sc->s[sc->pos] : '\0';

	*min = 1;
	*max = 1;
	*possessive = false;
	if (c == '*' || c == '+' || c == '?') {
		*min = c == '+' ? 1 : 0;
		*max = c == '?' ? 1 : RE_INF;
		sc->pos++;
	} else if (c == '{') {
		size_t save = sc->pos;
		uint32_t lo = 0, hi;
		bool has_lo, has_hi = false;

		sc->pos++;
		has_lo = re_digits(sc, &lo);
		hi = lo;
		if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
			sc->pos++;
			has_hi = re_digits(sc, &hi);
			if (!has_hi)
				hi = RE_INF;
		}
		if (sc->pos >= sc->len || sc->s[sc->pos] != '}' || (!has_lo && !has_hi)) {
			sc->pos = save;	/* a literal '{' */
			return;
		}
		sc->pos++;
		*min = lo;
		*max = hi;
	} else {
		return;
	}
	if (sc->pos < sc->len && sc->s[sc->pos] == '+') {
		*possessive = true;
		sc->pos++;
	} else if (sc->pos < sc->len && sc->s[sc->pos] == '?') {
		sc->pos++;	/* lazy: backtracks as much */
	}
}

/* Skips an escape (at the backslash). */
static void re_escape(struct re_scan *sc)
{
	char c;

	sc->pos++;
	if (sc->pos >= sc->len)
		return;
	c = sc->s[sc->pos++];
	if (c == 'Q') {
		const char *e = NULL;
		for (size_t i = sc->pos; i + 1 < sc->len && !e; i++)
			if (sc->s[i] == '\\' && sc->s[i + 1] == 'E')
				e = sc->s + i;
		sc->pos = e ? (size_t)(e - sc->s) + 2 : sc->len;
		return;
	}
	if (c == 'c' && sc->pos < sc->len) {
		sc->pos++;
		return;
	}
	if (sc->pos < sc->len && strchr("xopPNgk", c) && strchr("{<'", sc->s[sc->pos])) {
		char close = sc->s[sc->pos] == '{' ? '}' : sc->s[sc->pos] == '<' ? '>' : '\'';
		while (sc->pos < sc->len && sc->s[sc->pos] != close)
			sc->pos++;
		if (sc->pos < sc->len)
			sc->pos++;
	}
}

/* Skips a character class (at its '['). */
static void re_class(struct re_scan *sc)
{
	sc->pos++;
	if (sc->pos < sc->len && sc->s[sc->pos] == '^')
		sc->pos++;
	if (sc->pos < sc->len && sc->s[sc->pos] == ']')
		sc->pos++;
	while (sc->pos < sc->len && sc->s[sc->pos] != ']') {
		if (sc->s[sc->pos] == '\\') {
			re_escape(sc);
		} else if (sc->s[sc->pos] == '[' && sc->pos + 1 < sc->len && sc->s[sc->pos + 1] == ':') {
			const char *e = strstr(sc->s + sc->pos + 2, ":]");
			sc->pos = e ? (size_t)(e - sc->s) + 2 : sc->pos + 1;
		} else {
			sc->pos++;
		}
	}
	if (sc->pos < sc->len)
		sc->pos++;
}

/* Skips to the ')' that closes something without a pattern inside
 * (a comment, a verb, a back reference, a recursion). */
static void re_skip_group(struct re_scan *sc)
{
	while (sc->pos < sc->len && sc->s[sc->pos] != ')')
		sc->pos++;
	if (sc->pos < sc->len)
		sc->pos++;
}

static struct re_inside re_alternation(struct re_scan *sc, unsigned depth);

/* One atom of a sequence, with its quantifier.  *none: it was an option
 * setting or a comment, not an atom. */
static void re_element(struct re_scan *sc, unsigned depth, bool *loose, bool *optional, bool *none)
{
	size_t start = sc->pos;
	struct re_inside in = { false, false };
	bool group = false, atomic = false, zero_width = false, possessive;
	uint32_t min, max;
	char c = sc->s[sc->pos];

	*none = false;
	if (c == '(') {
		const char *g = sc->s + sc->pos + 1;
		size_t rest = sc->len - sc->pos - 1;

		sc->pos++;
		if (rest && *g == '*') {
			re_skip_group(sc);	/* (*VERB) */
			*none = true;
			return;
		}
		if (rest && *g == '?') {
			sc->pos++;
			g++;
			if (rest >= 2 && (*g == ':' || *g == '|' || *g == '>')) {
				atomic = *g == '>';
				sc->pos++;
			} else if (rest >= 2 && (*g == '=' || *g == '!')) {
				zero_width = true;
				sc->pos++;
			} else if (rest >= 3 && *g == '<' && (g[1] == '=' || g[1] == '!')) {
				zero_width = true;
				sc->pos += 2;
			} else if (rest >= 2 && (*g == '<' || *g == '\'' || (*g == 'P' && rest >= 3 && g[1] == '<'))) {
				char close = *g == '\'' ? '\'' : '>';
				while (sc->pos < sc->len && sc->s[sc->pos] != close)
					sc->pos++;
				if (sc->pos < sc->len)
					sc->pos++;
			} else if (rest >= 2 && *g == '#') {
				re_skip_group(sc);
				*none = true;
				return;
			} else if (rest >= 2 && (strchr("P&R+-0123456789", *g))) {
				re_skip_group(sc);	/* a back reference or a recursion: an atom */
				goto quantifier;
			} else {
				/* option letters: (?i) sets them, (?i:...) is a group */
				while (sc->pos < sc->len && strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ^-",
								   sc->s[sc->pos]))
					sc->pos++;
				if (sc->pos < sc->len && sc->s[sc->pos] == ')') {
					sc->pos++;
					*none = true;
					return;
				}
				if (sc->pos < sc->len)
					sc->pos++;	/* ':' */
			}
		}
		group = true;
		if (depth < RE_MAX_DEPTH)
			in = re_alternation(sc, depth + 1);
		else
			re_skip_group(sc);
		if (sc->pos < sc->len && sc->s[sc->pos] == ')')
			sc->pos++;
	} else if (c == '[') {
		re_class(sc);
	} else if (c == '\\') {
		re_escape(sc);
	} else {
		zero_width = c == '^' || c == '$';
		sc->pos++;
	}
quantifier:
	re_quantifier(sc, &min, &max, &possessive);
	if (group && !atomic && !possessive && max == RE_INF) {
		if (in.loose)
			re_found(sc, start, "a repeated group that can itself repeat, as in (a+)+");
		else if (in.same_alts)
			re_found(sc, start, "a repeated group with two alternatives that are the same, as in (a|a)*");
	}
	*loose = !possessive && !atomic && ((max > min && max > 1) || (group && in.loose));
	*optional = min == 0 || zero_width;
}

/* Alternatives up to the ')' that closes the group (not consumed) or the end. */
static struct re_inside re_alternation(struct re_scan *sc, unsigned depth)
{
	struct re_inside in = { false, false };
	size_t alt_start[16], alt_len[16], nalts = 0;

	for (;;) {
		size_t start = sc->pos, nloose = 0, nrequired = 0, nrequired_loose = 0;

		while (sc->pos < sc->len && sc->s[sc->pos] != '|' && sc->s[sc->pos] != ')') {
			bool loose, optional, none;
			re_element(sc, depth, &loose, &optional, &none);
			if (none)
				continue;
			nloose += loose;
			nrequired += !optional;
			nrequired_loose += !optional && loose;
		}
		/* loose when nothing but the varying part itself is required */
		if (nloose && (nrequired == 0 || (nrequired == 1 && nrequired_loose == 1)))
			in.loose = true;
		for (size_t k = 0; k < nalts; k++)
			if (alt_len[k] == sc->pos - start && memcmp(sc->s + alt_start[k], sc->s + start, alt_len[k]) == 0)
				in.same_alts = true;
		if (nalts < sizeof(alt_start) / sizeof(alt_start[0])) {
			alt_start[nalts] = start;
			alt_len[nalts++] = sc->pos - start;
		}
		if (sc->pos >= sc->len || sc->s[sc->pos] != '|')
			return in;
		sc->pos++;
	}
}

bool regex_backtracks(const char *re, size_t *ret_offset, const char **ret_why)
{
	struct re_scan sc = { .s = re, .len = strlen(re) };

	while (sc.pos < sc.len) {
		re_alternation(&sc, 0);
		if (sc.pos < sc.len)
			sc.pos++;	/* an unbalanced ')' (PCRE2 refuses it) */
	}
	if (!sc.found)
		return false;
	*ret_offset = sc.at;
	*ret_why = sc.why;
	return true;
}

void pattern_release(struct pattern *p)
{
	if (p && p->re) {
		pcre2_code_free(p->re);
		p->re = NULL;
	}
}

int ip_parse(const char *s, size_t len, uint8_t addr[16], int *family)
{
	char tmp[64];

	if (len == 0 || len >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, tmp, addr) == 1) {
		*family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, addr) == 1) {
		/* An IPv4-mapped IPv6 address is the IPv4 address. */
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(addr, mapped, 12) == 0) {
			memmove(addr, addr + 12, 4);
			memset(addr + 4, 0, 12);
			*family = 4;
			return 0;
		}
		*family = 6;
		return 0;
	}
	return -EINVAL;
}

int cidr_parse(struct cidr *c, const char *s)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long prefix;
	char *end;

	memset(c, 0, sizeof(*c));
	if (ip_parse(s, alen, c->addr, &c->family) < 0)
		return -EINVAL;
	if (!slash) {
		c->prefix = c->family == 4 ? 32 : 128;
		return 0;
	}
	if (!slash[1] || slash[1] < '0' || slash[1] > '9')
		return -EINVAL;
	errno = 0;
	prefix = strtoul(slash + 1, &end, 10);
	if (errno || *end || prefix > (c->family == 4 ? 32u : 128u))
		return -EINVAL;
	c->prefix = (unsigned)prefix;
	return 0;
}

bool cidr_contains(const struct cidr *c, const uint8_t addr[16], int family)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (family != c->family)
		return false;
	if (memcmp(c->addr, addr, full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((c->addr[full] & mask) != (addr[full] & mask))
			return false;
	}
	return true;
}

bool aws_account_id(const char *s, size_t len)
{
	if (len != 12)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

bool arn_account(const char *s, size_t len, const char **ret, size_t *ret_len)
{
	const char *end = s + len, *p = s;

	if (!aws_account_id(s, len)) {
		/* arn:partition:service:region:account:resource */
		if (len < 4 || memcmp(s, "arn:", 4) != 0)
			return false;
		for (int colons = 0; colons < 4; colons++) {
			p = memchr(p, ':', (size_t)(end - p));
			if (!p)
				return false;
			p++;
		}
		end = memchr(p, ':', (size_t)(end - p));
		if (!end || !aws_account_id(p, (size_t)(end - p)))
			return false;
	}
	*ret = p;
	*ret_len = (size_t)(end - p);
	return true;
}

int number_parse(const char *s, size_t len, double *ret)
{
	char tmp[64], *end;
	double v;

	if (len == 0 || len >= sizeof(tmp))
		return -EINVAL;
	/* Byte counts and the like: plain integers of up to 15 digits are
	 * exact in a double and need no strtod. */
	if (len <= 15) {
		uint64_t n = 0;
		size_t i = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			n = n * 10 + (uint64_t)(s[i++] - '0');
		if (i == len) {
			*ret = (double)n;
			return 0;
		}
	}
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	/* Only decimal numbers: no hex, no inf/nan, no leading spaces. */
	for (size_t i = 0; i < len; i++) {
		char c = tmp[i];
		if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'))
			return -EINVAL;
	}
	errno = 0;
	v = strtod(tmp, &end);
	if (errno || *end || !isfinite(v))
		return -EINVAL;
	*ret = v;
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(struct arena *a, const char *s, size_t len, size_t *ret_len)
{
	size_t n = (len + 2) / 3 * 4;
	char *out = arena_alloc(a, n + 1);
	const unsigned char *in = (const unsigned char *)s;
	size_t o = 0, i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	*ret_len = o;
	return out;
}

int base64_offsets(struct arena *a, const char *s, size_t len, char *out[3], size_t outlen[3])
{
	/* For shift i the value is preceded by i unknown bytes.  Encode it behind
	 * i filler bytes, then drop the characters that depend on the filler
	 * (start) and on whatever follows the value (end).  pySigma does the same. */
	static const size_t start_cut[3] = { 0, 2, 3 };
	static const size_t end_cut[3] = { 0, 3, 2 };

	for (int i = 0; i < 3; i++) {
		char *tmp = arena_alloc(a, len + 3);
		char *enc;
		size_t elen, from, to;

		if (!tmp)
			return -ENOMEM;
		memset(tmp, ' ', (size_t)i);
		memcpy(tmp + i, s, len);
		enc = base64_encode(a, tmp, len + (size_t)i, &elen);
		if (!enc)
			return -ENOMEM;
		from = start_cut[i];
		to = elen - end_cut[(len + (size_t)i) % 3];
		if (to <= from) {
			out[i] = NULL;
			outlen[i] = 0;
			continue;
		}
		out[i] = enc + from;
		outlen[i] = to - from;
	}
	return 0;
}
