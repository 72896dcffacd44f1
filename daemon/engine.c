/* engine.c: detection rules evaluated on one record (see engine.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/array.h"
#include "trailwatch/engine.h"
#include "trailwatch/hash.h"

/* ---- prefilter --------------------------------------------------------- */

/* A set of required eventName values, or "any" (cannot be indexed). */
struct req {
	bool any;
	const struct pattern **vals;	/* exact, case-folded patterns */
	size_t n;
};

struct pf_bucket {
	const char *name;	/* folded eventName */
	size_t len;
	size_t *rules;		/* indexes into rs->detections, ascending */
	size_t n, cap;
};

/* The fields rules are indexed on, in order of preference: a rule goes into
 * the first index whose field it requires to equal one of a few values
 * (eventName, errorCode, userIdentity.type, eventSource).  The principal's
 * type comes before the service: rules about root or anonymous callers
 * then meet only the few records of those callers. */
#define PF_INDEXES 4

struct pf_index {
	int slot;
	struct pf_bucket *buckets;
	size_t nbuckets;	/* power of two */
};

struct prefilter {
	struct pf_index idx[PF_INDEXES];
	size_t *always;		/* rules that cannot be indexed, ascending */
	size_t nalways;
};

static const struct req REQ_ANY = { .any = true };

static inline unsigned char fold(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* The bucket's hash: the length and three bytes, folded.  Enough to spread
 * a few hundred event names; the full comparison decides. */
static uint64_t hash_folded(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	return len * 0x9e3779b97f4a7c15ull ^ (uint64_t)fold((unsigned char)s[0]) * 0x100000001b3ull ^
	       (uint64_t)fold((unsigned char)s[len / 2]) * 0xc2b2ae3d27d4eb4full ^
	       (uint64_t)fold((unsigned char)s[len - 1]) * 0x165667b19e3779f9ull;
}

/* eventName values a test requires, if it is a plain equality list. */
static struct req test_req(const struct field_test *t, int slot)
{
	struct req r = { 0 };

	if (t->slot != slot || t->all || t->npats == 0)
		return REQ_ANY;
	for (size_t i = 0; i < t->npats; i++) {
		const struct pattern *p = &t->pats[i];
		if (p->op != PAT_GLOB || p->kind != GLOB_EXACT || p->negate || p->cased || p->is_number)
			return REQ_ANY;
	}
	r.n = t->npats;
	r.vals = malloc(r.n * sizeof(*r.vals));
	if (!r.vals)
		return REQ_ANY;
	for (size_t i = 0; i < t->npats; i++)
		r.vals[i] = &t->pats[i];
	return r;
}

static void req_free(struct req *r)
{
	free(r->vals);
	r->vals = NULL;
}

/* r = r ∪ o; consumes o. */
static void req_union(struct req *r, struct req *o)
{
	const struct pattern **v;

	if (r->any || o->any) {
		req_free(r);
		req_free(o);
		*r = REQ_ANY;
		return;
	}
	v = realloc(r->vals, (r->n + o->n + 1) * sizeof(*v));
	if (!v) {
		req_free(r);
		req_free(o);
		*r = REQ_ANY;
		return;
	}
	memcpy(v + r->n, o->vals, o->n * sizeof(*v));
	r->vals = v;
	r->n += o->n;
	req_free(o);
}

static struct req sel_req(const struct selection *s, int slot)
{
	struct req r = { 0 };

	for (size_t a = 0; a < s->nalts; a++) {
		struct req best = REQ_ANY;
		for (size_t t = 0; t < s->alts[a].ntests && best.any; t++)
			best = test_req(&s->alts[a].tests[t], slot);
		req_union(&r, &best);
		if (r.any)
			break;
	}
	return r;
}

static struct req cond_req(const struct detection *d, const struct cnode *c, int slot)
{
	struct req r = { 0 };

	switch (c->type) {
	case CN_SEL:
		return sel_req(&d->sels[c->sel], slot);
	case CN_AND:
		/* Every kid is required: any indexable kid will do; take the smallest. */
		r = REQ_ANY;
		for (size_t i = 0; i < c->n; i++) {
			struct req k = cond_req(d, c->kids[i], slot);
			if (!k.any && (r.any || k.n < r.n)) {
				req_free(&r);
				r = k;
			} else {
				req_free(&k);
			}
		}
		return r;
	case CN_OR:
		for (size_t i = 0; i < c->n && !r.any; i++) {
			struct req k = cond_req(d, c->kids[i], slot);
			req_union(&r, &k);
		}
		return r;
	case CN_CONST:
		return c->value ? REQ_ANY : r;	/* false needs nothing: never matches */
	default:
		return REQ_ANY;
	}
}

static struct pf_bucket *bucket_find(struct pf_index *pf, const char *s, size_t len, bool folded)
{
	size_t i = (size_t)hash_folded(s, len) & (pf->nbuckets - 1);

	for (;;) {
		struct pf_bucket *b = &pf->buckets[i];
		if (!b->name)
			return b;
		if (b->len == len && (folded ? memcmp(b->name, s, len) == 0 : fold_equal(b->name, s, len)))
			return b;
		i = (i + 1) & (pf->nbuckets - 1);
	}
}

static int push_index(size_t **arr, size_t *n, size_t *cap, size_t v)
{
	size_t *a;

	if (*n && (*arr)[*n - 1] == v)
		return 0;	/* the same rule twice under one name */
	a = array_grow(*arr, cap, *n + 1, sizeof(*a), 4);
	if (!a)
		return -ENOMEM;
	*arr = a;
	(*arr)[(*n)++] = v;
	return 0;
}

static void prefilter_free(struct prefilter *pf)
{
	if (!pf)
		return;
	for (size_t k = 0; k < PF_INDEXES; k++) {
		for (size_t i = 0; i < pf->idx[k].nbuckets; i++)
			free(pf->idx[k].buckets[i].rules);
		free(pf->idx[k].buckets);
	}
	free(pf->always);
	free(pf);
}

static int prefilter_build(const struct ruleset *rs, struct prefilter **ret)
{
	struct prefilter *pf = calloc(1, sizeof(*pf));
	struct req *reqs = NULL;
	size_t *which = NULL, total[PF_INDEXES] = { 0 }, capalways = 0;

	if (!pf)
		return -ENOMEM;
	pf->idx[0].slot = rs->slots.event_name;
	pf->idx[1].slot = rs->slots.error_code;
	pf->idx[2].slot = rs->slots.principal_type;
	pf->idx[3].slot = rs->slots.event_source;
	reqs = calloc(rs->ndetections + 1, sizeof(*reqs));
	which = calloc(rs->ndetections + 1, sizeof(*which));
	if (!reqs || !which)
		goto fail;
	for (size_t i = 0; i < rs->ndetections; i++) {
		const struct rule *rule = rs->detections[i];

		reqs[i] = REQ_ANY;
		which[i] = PF_INDEXES;
		for (size_t k = 0; k < PF_INDEXES && reqs[i].any && rule->det.cond; k++) {
			reqs[i] = cond_req(&rule->det, rule->det.cond, pf->idx[k].slot);
			if (!reqs[i].any) {
				which[i] = k;
				total[k] += reqs[i].n;
			}
		}
	}
	for (size_t k = 0; k < PF_INDEXES; k++) {
		struct pf_index *x = &pf->idx[k];
		x->nbuckets = 16;
		while (x->nbuckets < 2 * total[k] + 1)
			x->nbuckets *= 2;
		x->buckets = calloc(x->nbuckets, sizeof(*x->buckets));
		if (!x->buckets)
			goto fail;
	}
	for (size_t i = 0; i < rs->ndetections; i++) {
		if (which[i] == PF_INDEXES) {
			if (push_index(&pf->always, &pf->nalways, &capalways, i) < 0)
				goto fail;
			continue;
		}
		for (size_t k = 0; k < reqs[i].n; k++) {
			const struct pattern *p = reqs[i].vals[k];
			struct pf_bucket *b = bucket_find(&pf->idx[which[i]], p->lit, p->litlen, false);
			if (!b->name) {
				b->name = p->lit;	/* already case-folded (not cased) */
				b->len = p->litlen;
			}
			if (push_index(&b->rules, &b->n, &b->cap, i) < 0)
				goto fail;
		}
	}
	for (size_t i = 0; i < rs->ndetections; i++)
		req_free(&reqs[i]);
	free(reqs);
	free(which);
	*ret = pf;
	return 0;
fail:
	if (reqs) {
		for (size_t i = 0; i < rs->ndetections; i++)
			req_free(&reqs[i]);
		free(reqs);
	}
	free(which);
	prefilter_free(pf);
	return -ENOMEM;
}

/* ---- matching ---------------------------------------------------------- */

static bool text_equal(const char *a, size_t alen, const char *b, size_t blen, bool cased)
{
	if (alen != blen)
		return false;
	if (cased)
		return memcmp(a, b, alen) == 0;
	for (size_t i = 0; i < alen; i++)
		if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
			return false;
	return true;
}

/* A regular expression on len bytes, within the engine's bound (engine.h).
 * A match that could not finish (the match limit, or the JIT's stack) is
 * no match, counted against the rule being evaluated. */
static bool regex_matches(struct engine *e, const struct pattern *p, const char *text, size_t len)
{
	size_t limit = ENGINE_REGEX_MAX_LIMIT;
	int rc;

	if (len < (ENGINE_REGEX_MAX_LIMIT - ENGINE_REGEX_BASE_LIMIT) / ENGINE_REGEX_LIMIT_PER_BYTE)
		limit = ENGINE_REGEX_BASE_LIMIT + ENGINE_REGEX_LIMIT_PER_BYTE * len;
	pcre2_set_match_limit(e->mc, (uint32_t)limit);
	rc = pcre2_match(p->re, (PCRE2_SPTR)text, len, 0, 0, e->md, e->mc);
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
	    rc == PCRE2_ERROR_JIT_STACKLIMIT) {
		e->nlimited++;
		if (e->rule)
			e->limited[e->rule->index]++;
	}
	return rc >= 0;
}

static bool value_matches(struct engine *e, const struct pattern *p, struct record *rec, struct jvalue *v)
{
	const char *text;
	size_t len;
	double num;

	if (p->op == PAT_GLOB && p->is_number && v->type == JT_NUMBER && !p->arn_account)
		return number_parse(v->p, v->len, &num) == 0 && num == p->num;
	/* Searching needs a lower-case copy (made once per value); exact, prefix
	 * and suffix tests fold as they compare and first check the length. */
	if (p->op == PAT_GLOB && !p->cased && (p->kind == GLOB_CONTAINS || p->kind == GLOB_GENERIC)) {
		if (record_value_folded(rec, v, &text, &len) < 0)
			return false;
		if (p->arn_account && !arn_account(text, len, &text, &len))
			return false;
		return glob_match_folded(p, text, len);
	}
	if (record_value_text(rec, v, &text, &len) < 0)
		return false;
	if (p->arn_account && !arn_account(text, len, &text, &len))
		return false;
	switch (p->op) {
	case PAT_GLOB:
		return glob_match(p, text, len);
	case PAT_RE:
		return regex_matches(e, p, text, len);
	case PAT_CIDR: {
		uint8_t addr[16];
		int family;
		return ip_parse(text, len, addr, &family) == 0 && cidr_contains(&p->cidr, addr, family);
	}
	case PAT_GT:
		return number_parse(text, len, &num) == 0 && num > p->num;
	case PAT_GTE:
		return number_parse(text, len, &num) == 0 && num >= p->num;
	case PAT_LT:
		return number_parse(text, len, &num) == 0 && num < p->num;
	case PAT_LTE:
		return number_parse(text, len, &num) == 0 && num <= p->num;
	case PAT_FIELDREF: {
		/* The other field is one of the record's, also inside |element. */
		struct record *top = e->top;
		for (int32_t i = top->head[p->ref_slot]; i >= 0; i = top->values[i].next) {
			const char *o;
			size_t olen;
			if (record_value_text(top, &top->values[i], &o, &olen) == 0 &&
			    text_equal(text, len, o, olen, p->cased))
				return true;
		}
		return false;
	}
	default:
		return false;
	}
}

/* ---- memo tables ------------------------------------------------------ */

/* Recent results of one long test (field_test.memo), by value: user agents
 * and addresses repeat from record to record, so a list of 40 patterns is
 * mostly answered by one hash and one comparison.  Direct-mapped; a value
 * longer than MEMO_TEXT is not remembered. */
#define MEMO_SLOTS 64
#define MEMO_TEXT 256

struct memo_slot {
	uint64_t hash;
	uint16_t len;
	uint8_t type;		/* enum jtype of the value */
	uint8_t state;		/* 0 empty, 1 no match, 2 match */
	char text[MEMO_TEXT];
};

/* A memo pays for its hash and copy only when values repeat (user agents,
 * addresses); for values that hardly ever do (object keys), it is turned
 * off: after each MEMO_TRIAL lookups, a memo that answered fewer than one in
 * MEMO_MIN_HIT_RATE of them is not consulted for the next MEMO_PAUSE values
 * (then tried again: traffic changes). */
#define MEMO_TRIAL 1024
#define MEMO_MIN_HIT_RATE 8
#define MEMO_PAUSE 65536

struct memo {
	uint32_t lookups, hits;		/* in the current trial */
	uint32_t paused;		/* values left to evaluate without the memo */
	struct memo_slot slot[MEMO_SLOTS];
};

/* Does any of the test's patterns match the value?  Without the memo. */
static bool any_pattern_matches(struct engine *e, const struct field_test *t, struct record *rec,
				struct jvalue *v)
{
	for (size_t i = 0; i < t->npats; i++)
		if (value_matches(e, &t->pats[i], rec, v))
			return true;
	return false;
}

/* The same answer, from or into the test's memo table. */
static bool memo_matches(struct engine *e, const struct field_test *t, struct record *rec, struct jvalue *v)
{
	struct memo *m = e->memos[t->memo];
	struct memo_slot *s;
	const char *text;
	size_t len;
	uint64_t h;
	unsigned long limited = e->nlimited;
	bool found;

	if (m && m->paused) {
		m->paused--;
		return any_pattern_matches(e, t, rec, v);
	}
	if (record_value_text(rec, v, &text, &len) < 0 || len > MEMO_TEXT)
		return any_pattern_matches(e, t, rec, v);
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return any_pattern_matches(e, t, rec, v);
		e->memos[t->memo] = m;
	}
	if (++m->lookups == MEMO_TRIAL) {
		if (m->hits * MEMO_MIN_HIT_RATE < MEMO_TRIAL)
			m->paused = MEMO_PAUSE;
		m->lookups = m->hits = 0;
	}
	/* Several memo tests often read the same value (three in the user-agent
	 * rule): the hash is computed once per value and record. */
	if (!v->hashed) {
		v->hash = hash_words(text, len, (uint64_t)v->type);
		v->hashed = 1;
	}
	h = v->hash;
	s = &m->slot[h & (MEMO_SLOTS - 1)];
	if (s->state && s->hash == h && s->len == len && s->type == v->type && memcmp(s->text, text, len) == 0) {
		m->hits++;
		return s->state == 2;
	}
	found = any_pattern_matches(e, t, rec, v);
	if (e->nlimited != limited)
		return found;	/* not an answer to remember: the next one is counted too */
	s->hash = h;
	s->len = (uint16_t)len;
	s->type = (uint8_t)v->type;
	s->state = found ? 2 : 1;
	memcpy(s->text, text, len);
	return found;
}

static bool pattern_holds(struct engine *e, const struct pattern *p, struct record *rec, int slot)
{
	bool found = false;

	if (slot < 0) {
		/* A keyword: anywhere in the record's JSON text. */
		if (p->op == PAT_RE)
			found = regex_matches(e, p, rec->text, rec->len);
		else
			found = glob_match(p, rec->text, rec->len);
		return p->negate ? !found : found;
	}
	switch (p->op) {
	case PAT_EXISTS:
		return rec->present[slot] == p->exists;
	case PAT_NULL:
		found = !rec->present[slot];
		for (int32_t i = rec->head[slot]; i >= 0 && !found; i = rec->values[i].next)
			found = rec->values[i].type == JT_NULL;
		break;
	default:
		for (int32_t i = rec->head[slot]; i >= 0 && !found; i = rec->values[i].next)
			found = value_matches(e, p, rec, &rec->values[i]);
		break;
	}
	return p->negate ? !found : found;
}

static bool alt_holds(struct engine *e, const struct sel_alt *alt, struct record *rec);

/* |element: one value of the field satisfies the element's selection.  Each
 * value is loaded into the engine's record for this test, in turn. */
static bool element_holds(struct engine *e, const struct element_test *el, struct record *rec, int slot)
{
	struct record *sub = &e->elements[el->id];

	for (int32_t i = rec->head[slot]; i >= 0; i = rec->values[i].next) {
		if (record_load_element(sub, &el->fields, &rec->values[i]) < 0)
			continue;
		for (size_t a = 0; a < el->nalts; a++)
			if (alt_holds(e, &el->alts[a], sub))
				return true;
	}
	return false;
}

static bool test_holds(struct engine *e, const struct field_test *t, struct record *rec)
{
	if (t->elem)
		return element_holds(e, t->elem, rec, t->slot);
	if (t->memo >= 0) {
		/* any pattern, any value (memo_worthy() in rules.c) */
		for (int32_t i = rec->head[t->slot]; i >= 0; i = rec->values[i].next)
			if (memo_matches(e, t, rec, &rec->values[i]))
				return true;
		return false;
	}
	for (size_t i = 0; i < t->npats; i++) {
		bool ok = pattern_holds(e, &t->pats[i], rec, t->slot);
		if (t->all && !ok)
			return false;
		if (!t->all && ok)
			return true;
	}
	return t->all;
}

static bool alt_holds(struct engine *e, const struct sel_alt *alt, struct record *rec)
{
	for (size_t t = 0; t < alt->ntests; t++)
		if (!test_holds(e, &alt->tests[t], rec))
			return false;
	return true;
}

static bool sel_holds(struct engine *e, const struct selection *s, struct record *rec)
{
	for (size_t a = 0; a < s->nalts; a++)
		if (alt_holds(e, &s->alts[a], rec))
			return true;
	return false;
}

static bool cond_holds(struct engine *e, const struct detection *d, const struct cnode *c, struct record *rec)
{
	switch (c->type) {
	case CN_SEL:
		return sel_holds(e, &d->sels[c->sel], rec);
	case CN_AND:
		for (size_t i = 0; i < c->n; i++)
			if (!cond_holds(e, d, c->kids[i], rec))
				return false;
		return true;
	case CN_OR:
		for (size_t i = 0; i < c->n; i++)
			if (cond_holds(e, d, c->kids[i], rec))
				return true;
		return false;
	case CN_NOT:
		return !cond_holds(e, d, c->kids[0], rec);
	default:
		return c->value;
	}
}

bool engine_rule_matches(struct engine *e, const struct rule *r, struct record *rec)
{
	bool holds;

	e->top = rec;
	e->rule = r;
	holds = r->det.cond && cond_holds(e, &r->det, r->det.cond, rec);
	for (size_t i = 0; holds && i < r->nfilters; i++) {
		e->rule = r->filters[i];
		holds = cond_holds(e, &r->filters[i]->det, r->filters[i]->det.cond, rec);
	}
	e->rule = NULL;
	return holds;
}

bool engine_cond_holds(struct engine *e, const struct rule *r, const struct cnode *c, struct record *rec)
{
	bool holds;

	e->top = rec;
	e->rule = r;
	holds = cond_holds(e, &r->det, c, rec);
	e->rule = NULL;
	return holds;
}

/* Candidates for this record: the rules indexed under its eventName,
 * errorCode and eventSource values, and the rules that are always evaluated,
 * merged in rule set order (the lists are disjoint and ascending). */
static void candidates(struct engine *e, struct record *rec)
{
	struct prefilter *pf = e->pf;
	const size_t *list[PF_INDEXES + 1];
	size_t len[PF_INDEXES + 1], pos[PF_INDEXES + 1] = { 0 }, nlists = 0, n = 0;

	for (size_t k = 0; k < PF_INDEXES; k++) {
		struct jvalue *v = record_first(rec, pf->idx[k].slot);
		const struct pf_bucket *b;
		const char *text;
		size_t tlen;

		if (!v)
			continue;
		if (v->next >= 0) {
			/* Several values (never in CloudTrail): evaluate everything. */
			for (n = 0; n < e->rs->ndetections; n++)
				e->cand[n] = e->rs->detections[n];
			e->ncand = n;
			return;
		}
		if (v->type != JT_STRING || record_value_text(rec, v, &text, &tlen) < 0)
			continue;
		b = bucket_find(&pf->idx[k], text, tlen, false);
		if (b->name && b->n) {
			list[nlists] = b->rules;
			len[nlists++] = b->n;
		}
	}
	if (pf->nalways) {
		list[nlists] = pf->always;
		len[nlists++] = pf->nalways;
	}
	for (;;) {
		size_t best = nlists;
		for (size_t k = 0; k < nlists; k++)
			if (pos[k] < len[k] && (best == nlists || list[k][pos[k]] < list[best][pos[best]]))
				best = k;
		if (best == nlists)
			break;
		e->cand[n++] = e->rs->detections[list[best][pos[best]++]];
	}
	e->ncand = n;
}

size_t engine_eval(struct engine *e, struct record *rec,
		   void (*on_match)(void *ctx, const struct rule *r, struct record *rec), void *ctx)
{
	size_t matches = 0;

	candidates(e, rec);
	for (size_t i = 0; i < e->ncand; i++) {
		if (engine_rule_matches(e, e->cand[i], rec)) {
			matches++;
			on_match(ctx, e->cand[i], rec);
		}
	}
	return matches;
}

void engine_add_limited(const struct engine *e, unsigned long *per_rule)
{
	for (size_t i = 0; i < e->rs->nrules; i++)
		per_rule[i] += e->limited[i];
}

void engine_limited_text(const struct ruleset *rs, const unsigned long *per_rule, char *out, size_t size)
{
	size_t len = 0, shown = 0, more = 0;

	out[0] = '\0';
	for (size_t i = 0; i < rs->nrules; i++) {
		const struct rule *r = rs->rules[i];
		if (!per_rule[i])
			continue;
		if (shown == ENGINE_LIMITED_SHOWN) {
			more++;
			continue;
		}
		if (len < size)
			len += (size_t)snprintf(out + len, size - len, "%s%s: %lu", shown ? ", " : "",
						r->id ? r->id : r->name ? r->name : r->title, per_rule[i]);
		shown++;
	}
	if (more && len < size)
		snprintf(out + len, size - len, " and %zu more rule%s", more, more == 1 ? "" : "s");
}

int engine_init(struct engine *e, const struct ruleset *rs)
{
	int r;

	memset(e, 0, sizeof(*e));
	e->rs = rs;
	e->md = pcre2_match_data_create(1, NULL);
	e->mc = pcre2_match_context_create(NULL);
	e->limited = calloc(rs->nrules + 1, sizeof(*e->limited));
	e->cand = calloc(rs->ndetections + 1, sizeof(*e->cand));
	e->elements = calloc(rs->nelements + 1, sizeof(*e->elements));
	e->memos = calloc(rs->nmemos + 1, sizeof(*e->memos));
	if (!e->md || !e->mc || !e->limited || !e->cand || !e->elements || !e->memos) {
		engine_free(e);
		return -ENOMEM;
	}
	for (; e->nelements < rs->nelements; e->nelements++) {
		if (record_init(&e->elements[e->nelements], rs->elements[e->nelements]->fields.nslots) < 0) {
			engine_free(e);
			return -ENOMEM;
		}
	}
	r = prefilter_build(rs, &e->pf);
	if (r < 0) {
		engine_free(e);
		return r;
	}
	return 0;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	if (e->md)
		pcre2_match_data_free(e->md);
	if (e->mc)
		pcre2_match_context_free(e->mc);
	free(e->limited);
	prefilter_free(e->pf);
	free(e->cand);
	for (size_t i = 0; i < e->nelements; i++)
		record_free(&e->elements[i]);
	free(e->elements);
	for (size_t i = 0; e->memos && i < e->rs->nmemos; i++)
		free(e->memos[i]);
	free(e->memos);
	memset(e, 0, sizeof(*e));
}
