/* cond.c: recursive-descent parser for Sigma conditions (see cond.h). */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "trailwatch/cond.h"

enum tok {
	T_END,
	T_LPAREN,
	T_RPAREN,
	T_PIPE,
	T_WORD,
};

struct parser {
	struct arena *a;
	const char *text;
	size_t pos;		/* start of the current token */
	size_t next;		/* just after it */
	enum tok tok;
	char word[128];
	const struct selection *sels;
	size_t nsels;
	unsigned depth;
	struct cond_error *err;
};

static int perr(struct parser *p, size_t pos, const char *fmt, const char *arg)
{
	p->err->pos = pos;
	snprintf(p->err->message, sizeof(p->err->message), fmt, arg);
	return -EINVAL;
}

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == '*' || c == '?';
}

static int lex(struct parser *p)
{
	const char *t = p->text;
	size_t i = p->next;

	while (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')
		i++;
	p->pos = i;
	if (!t[i]) {
		p->tok = T_END;
		p->next = i;
		return 0;
	}
	if (t[i] == '(' || t[i] == ')' || t[i] == '|') {
		p->tok = t[i] == '(' ? T_LPAREN : t[i] == ')' ? T_RPAREN : T_PIPE;
		p->next = i + 1;
		return 0;
	}
	if (!word_char(t[i]))
		return perr(p, i, "unexpected character '%s' in condition",
			    (char[]){ t[i], '\0' });
	size_t n = 0;
	while (word_char(t[i])) {
		if (n + 1 >= sizeof(p->word))
			return perr(p, p->pos, "%s", "identifier too long in condition");
		p->word[n++] = t[i++];
	}
	p->word[n] = '\0';
	p->tok = T_WORD;
	p->next = i;
	return 0;
}

static bool is_kw(const struct parser *p, const char *kw)
{
	return p->tok == T_WORD && strcasecmp(p->word, kw) == 0;
}

static struct cnode *node(struct parser *p, enum cnode_type t, size_t n)
{
	struct cnode *c = arena_alloc(p->a, sizeof(*c));

	if (!c)
		return NULL;
	c->type = t;
	c->n = n;
	if (n) {
		c->kids = arena_alloc(p->a, n * sizeof(*c->kids));
		if (!c->kids)
			return NULL;
	}
	return c;
}

static int parse_or(struct parser *p, struct cnode **ret);

/* `1 of PATTERN` / `all of PATTERN` / `... of them`. */
static int parse_of(struct parser *p, bool all, struct cnode **ret)
{
	size_t at, count = 0, k = 0;
	bool them;
	char pattern[128];
	struct cnode *c;
	int r;

	r = lex(p);
	if (r < 0)
		return r;
	if (!is_kw(p, "of"))
		return perr(p, p->pos, "%s", "expected 'of' after '1' or 'all'");
	r = lex(p);
	if (r < 0)
		return r;
	if (p->tok != T_WORD)
		return perr(p, p->pos, "%s", "expected a selection name pattern or 'them' after 'of'");
	at = p->pos;
	them = strcasecmp(p->word, "them") == 0;
	snprintf(pattern, sizeof(pattern), "%s", p->word);
	for (size_t i = 0; i < p->nsels; i++) {
		const char *name = p->sels[i].name;
		if (them ? name[0] != '_' : fnmatch(pattern, name, 0) == 0)
			count++;
	}
	if (count == 0)
		return perr(p, at, "no selection matches '%s'", pattern);
	c = node(p, all ? CN_AND : CN_OR, count);
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < p->nsels; i++) {
		const char *name = p->sels[i].name;
		if (them ? name[0] != '_' : fnmatch(pattern, name, 0) == 0) {
			struct cnode *s = node(p, CN_SEL, 0);
			if (!s)
				return -ENOMEM;
			s->sel = (unsigned)i;
			c->kids[k++] = s;
		}
	}
	*ret = c;
	return lex(p);
}

static int parse_primary(struct parser *p, struct cnode **ret)
{
	int r;

	if (p->tok == T_LPAREN) {
		size_t open = p->pos;
		if (++p->depth > COND_MAX_DEPTH)
			return perr(p, p->pos, "%s", "condition nested too deeply");
		r = lex(p);
		if (r < 0)
			return r;
		r = parse_or(p, ret);
		if (r < 0)
			return r;
		if (p->tok != T_RPAREN)
			return perr(p, open, "%s", "unbalanced '(' in condition");
		p->depth--;
		return lex(p);
	}
	if (p->tok != T_WORD)
		return perr(p, p->pos, "%s", p->tok == T_END ? "condition ends too early" :
				      "expected a selection name");
	if (strcmp(p->word, "1") == 0 || strcasecmp(p->word, "any") == 0)
		return parse_of(p, false, ret);
	if (strcasecmp(p->word, "all") == 0)
		return parse_of(p, true, ret);
	if (is_kw(p, "and") || is_kw(p, "or") || is_kw(p, "of") || is_kw(p, "them"))
		return perr(p, p->pos, "unexpected '%s' in condition", p->word);
	if (strchr(p->word, '*') || strchr(p->word, '?'))
		return perr(p, p->pos, "a wildcard needs '1 of' or 'all of': '%s'", p->word);
	for (size_t i = 0; i < p->nsels; i++) {
		if (strcmp(p->sels[i].name, p->word) == 0) {
			struct cnode *s = node(p, CN_SEL, 0);
			if (!s)
				return -ENOMEM;
			s->sel = (unsigned)i;
			*ret = s;
			return lex(p);
		}
	}
	return perr(p, p->pos, "unknown selection '%s' in condition", p->word);
}

static int parse_not(struct parser *p, struct cnode **ret)
{
	if (is_kw(p, "not")) {
		struct cnode *c, *kid;
		int r;

		if (++p->depth > COND_MAX_DEPTH)
			return perr(p, p->pos, "%s", "condition nested too deeply");
		r = lex(p);
		if (r < 0)
			return r;
		r = parse_not(p, &kid);
		if (r < 0)
			return r;
		p->depth--;
		c = node(p, CN_NOT, 1);
		if (!c)
			return -ENOMEM;
		c->kids[0] = kid;
		*ret = c;
		return 0;
	}
	return parse_primary(p, ret);
}

/* Parses "x OP x OP x..." for one binary operator into one n-ary node. */
static int parse_chain(struct parser *p, const char *op, enum cnode_type type,
		       int (*sub)(struct parser *, struct cnode **), struct cnode **ret)
{
	struct cnode *first, *c, **kids;
	size_t n = 0, cap = 4;
	int r;

	r = sub(p, &first);
	if (r < 0)
		return r;
	if (!is_kw(p, op)) {
		*ret = first;
		return 0;
	}
	kids = arena_alloc(p->a, cap * sizeof(*kids));
	if (!kids)
		return -ENOMEM;
	kids[n++] = first;
	while (is_kw(p, op)) {
		struct cnode *k;

		r = lex(p);
		if (r < 0)
			return r;
		r = sub(p, &k);
		if (r < 0)
			return r;
		if (n == cap) {
			struct cnode **nk = arena_alloc(p->a, 2 * cap * sizeof(*nk));
			if (!nk)
				return -ENOMEM;
			memcpy(nk, kids, n * sizeof(*nk));
			kids = nk;
			cap *= 2;
		}
		kids[n++] = k;
	}
	c = node(p, type, 0);
	if (!c)
		return -ENOMEM;
	c->kids = kids;
	c->n = n;
	*ret = c;
	return 0;
}

static int parse_and(struct parser *p, struct cnode **ret)
{
	return parse_chain(p, "and", CN_AND, parse_not, ret);
}

static int parse_or(struct parser *p, struct cnode **ret)
{
	return parse_chain(p, "or", CN_OR, parse_and, ret);
}

/* `count(FIELD?) [by FIELD] OP NUMBER` after the pipe. */
static int parse_aggregation(struct parser *p, struct cond_aggregation *ag)
{
	const char *t = p->text;
	size_t i = p->next, start;
	char *end;
	int r;

	ag->present = true;
	r = lex(p);
	if (r < 0)
		return r;
	if (is_kw(p, "near")) {
		ag->near = true;
		return 0;
	}
	if (!is_kw(p, "count"))
		return perr(p, p->pos, "unsupported aggregation '%s' (only count() is understood)",
			    p->tok == T_WORD ? p->word : "");
	ag->func = "count";
	i = p->next;
	while (t[i] == ' ')
		i++;
	if (t[i] != '(')
		return perr(p, i, "%s", "expected '(' after count");
	start = ++i;
	while (t[i] && t[i] != ')')
		i++;
	if (!t[i])
		return perr(p, start, "%s", "expected ')' after count(");
	{
		size_t a = start, b = i;
		while (a < b && t[a] == ' ')
			a++;
		while (b > a && t[b - 1] == ' ')
			b--;
		if (b > a)
			ag->field = arena_strndup(p->a, t + a, b - a);
	}
	/* The rest is not condition syntax: read it by hand. */
	i++;
	while (t[i] == ' ')
		i++;
	if (strncasecmp(t + i, "by", 2) == 0 && t[i + 2] == ' ') {
		i += 2;
		while (t[i] == ' ')
			i++;
		start = i;
		while (word_char(t[i]))
			i++;
		if (i == start)
			return perr(p, i, "%s", "expected a field name after 'by'");
		ag->by = arena_strndup(p->a, t + start, i - start);
	}
	while (t[i] == ' ')
		i++;
	start = i;
	while (t[i] == '<' || t[i] == '>' || t[i] == '=')
		i++;
	{
		static const char *const ops[] = { ">", ">=", "<", "<=", "=", "==" };
		size_t n = i - start;
		for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
			if (strlen(ops[k]) == n && strncmp(ops[k], t + start, n) == 0)
				ag->op = ops[k];
		if (!ag->op)
			return perr(p, start, "%s", "expected a comparison (>, >=, <, <=, =) after count()");
	}
	ag->value = strtod(t + i, &end);
	if (end == t + i)
		return perr(p, i, "%s", "expected a number in the count() comparison");
	while (*end == ' ')
		end++;
	if (*end)
		return perr(p, (size_t)(end - t), "%s", "unexpected text after the aggregation");
	return 0;
}

int cond_parse(struct arena *a, const char *text, const struct selection *sels, size_t nsels,
	       struct cnode **ret, struct cond_aggregation *aggr, struct cond_error *err)
{
	struct parser p;
	struct cnode *root;
	int r;

	memset(&p, 0, sizeof(p));
	memset(aggr, 0, sizeof(*aggr));
	p.a = a;
	p.text = text;
	p.sels = sels;
	p.nsels = nsels;
	p.err = err;
	if (strlen(text) > COND_MAX_LEN)
		return perr(&p, 0, "%s", "condition too long");
	r = lex(&p);
	if (r < 0)
		return r;
	r = parse_or(&p, &root);
	if (r < 0)
		return r;
	if (p.tok == T_PIPE) {
		r = parse_aggregation(&p, aggr);
		if (r < 0)
			return r;
	} else if (p.tok != T_END) {
		if (p.tok == T_RPAREN)
			return perr(&p, p.pos, "%s", "unbalanced ')' in condition");
		return perr(&p, p.pos, "unexpected '%s' in condition (missing 'and' or 'or'?)",
			    p.tok == T_WORD ? p.word : "(");
	}
	*ret = root;
	return 0;
}
