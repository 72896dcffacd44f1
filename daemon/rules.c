/* rules.c: loading Sigma YAML into a compiled rule set (see rules.h).
 *
 * Loading runs in two phases.  First every document of every file is
 * compiled on its own: selections into field tests and patterns, conditions
 * into trees, correlations and filters into their structures with their
 * references still as text.  Then, with every rule known, references are
 * resolved: correlations find their base rules (and learn which field slots
 * each base rule must hand over with its matches), filters attach to the
 * rules they name, and the list of detection rules to evaluate is built.
 * Every problem is added to the diag list with file:line:column; nothing
 * stops at the first error.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "trailwatch/alert.h"
#include "trailwatch/array.h"
#include "trailwatch/buf.h"
#include "trailwatch/builtin.h"
#include "trailwatch/cond.h"
#include "trailwatch/ctlog.h"
#include "trailwatch/hash.h"
#include "trailwatch/jsonw.h"
#include "trailwatch/rules.h"
#include "trailwatch/walk.h"
#include "trailwatch/yamltree.h"

#define MAX_EXPANSION 10000	/* values one |expand may produce */
#define MAX_TEST_EVENT (1u << 20)
#define MAX_TEST_EVENTS 100000	/* events of one test, repeats included */

struct alias_note;

struct loader {
	struct ruleset *rs;
	struct diag *d;
	const struct rule_lists *lists;
	struct field_index *fields;	/* where test paths go: the record's, or an element's */
	const char *file;	/* current file, arena copy */
	size_t source;		/* index of the current source */
	size_t *rule_source;	/* rs->rules[i] came from source rule_source[i] */
	size_t cap;
	struct strmap ids, names;	/* registered rules by id and by name */
	size_t errors;		/* errors added by this loader */
	struct alias_note *aliases;	/* correlations with aliases, resolved last */
	const char **broken;		/* ids and names of documents that failed */
	size_t nbroken, capbroken;
	const struct ynode *reasons;	/* trailwatch.reasons of the current document,
					 * compiled once its selections are */
	const struct ynode *count_values;	/* trailwatch.count_values, once its
						 * correlation is compiled */
	const struct ynode *seen_before;	/* trailwatch.seen_before, likewise */
};

static void lerr(struct loader *L, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void lerr(struct loader *L, const struct ynode *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(L->d, L->file, n ? n->line : 0, n ? n->col : 0, "%s", msg);
	L->errors++;
}

static const char *const level_names[] = {
	[LEVEL_INFORMATIONAL] = "informational",
	[LEVEL_LOW] = "low",
	[LEVEL_MEDIUM] = "medium",
	[LEVEL_HIGH] = "high",
	[LEVEL_CRITICAL] = "critical",
};

const char *level_name(enum level l)
{
	return level_names[l];
}

int level_from_string(const char *s, enum level *ret)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*ret = (enum level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *const corr_names[] = {
	[CORR_EVENT_COUNT] = "event_count",
	[CORR_VALUE_COUNT] = "value_count",
	[CORR_VALUE_SUM] = "value_sum",
	[CORR_VALUE_AVG] = "value_avg",
	[CORR_TEMPORAL] = "temporal",
	[CORR_TEMPORAL_ORDERED] = "temporal_ordered",
};

const char *corr_type_name(enum corr_type t)
{
	return corr_names[t];
}

bool corr_cond_holds(const struct corr_cond *c, double v)
{
	if (c->has_gt && !(v > c->gt))
		return false;
	if (c->has_gte && !(v >= c->gte))
		return false;
	if (c->has_lt && !(v < c->lt))
		return false;
	if (c->has_lte && !(v <= c->lte))
		return false;
	if (c->has_eq && !(v == c->eq))
		return false;
	return true;
}

int timespan_parse(const char *s, int64_t *ret)
{
	char *end;
	long long v;
	int64_t mult;

	if (!s || !*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v <= 0)
		return -EINVAL;
	switch (*end) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return -EINVAL;
	}
	if (end[1] || v > INT64_MAX / mult / 1000)
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

/* ---- small YAML helpers ------------------------------------------------ */

/* How messages name a rule. */
static const char *rule_ref(const struct rule *r)
{
	return r->id ? r->id : r->name ? r->name : r->title;
}

static bool is_string(const struct ynode *n)
{
	return n && n->type == YNODE_SCALAR && !ynode_is_null(n);
}

/* A required or optional string member; NULL when absent or wrong. */
static const char *get_str(struct loader *L, const struct ynode *map, const char *key, bool required)
{
	const struct ynode *n = ynode_get(map, key);

	if (!n) {
		if (required)
			lerr(L, map, "missing '%s'", key);
		return NULL;
	}
	if (!is_string(n)) {
		lerr(L, n, "'%s' must be a single value, not %s", key, ynode_kind(n));
		return NULL;
	}
	return n->value;
}

/* A string or a list of strings, as an arena array. */
static int get_str_list(struct loader *L, const struct ynode *n, const char *what,
			const char ***ret, size_t *ret_n)
{
	const char **out;
	size_t count = n->type == YNODE_SEQ ? n->n : 1;

	*ret = NULL;
	*ret_n = 0;
	out = arena_alloc(&L->rs->arena, (count + 1) * sizeof(*out));
	if (!out)
		return -ENOMEM;
	if (n->type == YNODE_SCALAR) {
		if (!is_string(n)) {
			lerr(L, n, "'%s' must not be empty", what);
			return -EINVAL;
		}
		out[0] = n->value;
	} else if (n->type == YNODE_SEQ) {
		for (size_t i = 0; i < n->n; i++) {
			if (!is_string(n->items[i])) {
				lerr(L, n->items[i], "each item of '%s' must be a single value", what);
				return -EINVAL;
			}
			out[i] = n->items[i]->value;
		}
	} else {
		lerr(L, n, "'%s' must be a value or a list of values, not a map", what);
		return -EINVAL;
	}
	*ret = out;
	*ret_n = count;
	return 0;
}

/* ---- values and modifiers ---------------------------------------------- */

enum modifier {
	MOD_CONTAINS,
	MOD_STARTSWITH,
	MOD_ENDSWITH,
	MOD_ALL,
	MOD_RE,
	MOD_RE_I,
	MOD_RE_M,
	MOD_RE_S,
	MOD_CIDR,
	MOD_EXISTS,
	MOD_GT,
	MOD_GTE,
	MOD_LT,
	MOD_LTE,
	MOD_NEQ,
	MOD_FIELDREF,
	MOD_BASE64,
	MOD_BASE64OFFSET,
	MOD_EXPAND,
	MOD_CASED,
	MOD_ELEMENT,
	MOD_ARNACCOUNT,
	MOD_COUNT,
};

static const struct {
	const char *name;
	enum modifier mod;
} modifier_table[] = {
	{ "contains", MOD_CONTAINS },
	{ "startswith", MOD_STARTSWITH },
	{ "endswith", MOD_ENDSWITH },
	{ "all", MOD_ALL },
	{ "re", MOD_RE },
	{ "i", MOD_RE_I },
	{ "m", MOD_RE_M },
	{ "s", MOD_RE_S },
	{ "cidr", MOD_CIDR },
	{ "exists", MOD_EXISTS },
	{ "gt", MOD_GT },
	{ "gte", MOD_GTE },
	{ "lt", MOD_LT },
	{ "lte", MOD_LTE },
	{ "neq", MOD_NEQ },
	{ "fieldref", MOD_FIELDREF },
	{ "base64", MOD_BASE64 },
	{ "base64offset", MOD_BASE64OFFSET },
	{ "expand", MOD_EXPAND },
	{ "cased", MOD_CASED },
	{ "element", MOD_ELEMENT },
	{ "arnaccount", MOD_ARNACCOUNT },
};

/* Sigma modifiers that exist but mean nothing for CloudTrail JSON. */
static const char *const unsupported_modifiers[] = {
	"utf16le", "utf16be", "utf16", "wide", "windash",
	"minute", "hour", "day", "week", "month", "year",
};

struct mods {
	bool has[MOD_COUNT];
	int order[MOD_COUNT];	/* position in the key, for order checks */
};

static int parse_modifiers(struct loader *L, const struct ynode *key, char **ret_field, struct mods *m)
{
	char *copy = arena_strdup(&L->rs->arena, key->value);
	char *bar, *p;
	int pos = 0;
	bool ok = true;

	memset(m, 0, sizeof(*m));
	if (!copy)
		return -ENOMEM;
	bar = strchr(copy, '|');
	*ret_field = copy;
	if (!bar)
		return 0;
	*bar = '\0';
	p = bar + 1;
	while (p) {
		char *next = strchr(p, '|');
		bool found = false;

		if (next)
			*next++ = '\0';
		for (size_t i = 0; i < sizeof(modifier_table) / sizeof(modifier_table[0]); i++) {
			if (strcmp(p, modifier_table[i].name) == 0) {
				if (m->has[modifier_table[i].mod]) {
					lerr(L, key, "modifier '%s' given twice", p);
					ok = false;
				}
				m->has[modifier_table[i].mod] = true;
				m->order[modifier_table[i].mod] = pos++;
				found = true;
			}
		}
		if (!found) {
			bool known = false;
			for (size_t i = 0; i < sizeof(unsupported_modifiers) / sizeof(unsupported_modifiers[0]); i++)
				known |= strcmp(p, unsupported_modifiers[i]) == 0;
			if (known)
				lerr(L, key, "modifier '%s' is not supported for CloudTrail (it applies to other log formats)", p);
			else
				lerr(L, key, "unknown modifier '%s'", p);
			ok = false;
		}
		p = next;
	}
	return ok ? 0 : -EINVAL;
}

/* Rejects combinations that have no meaning; names the first conflict. */
static int check_modifiers(struct loader *L, const struct ynode *key, const struct mods *m)
{
	static const struct {
		enum modifier a, b;
	} conflicts[] = {
		{ MOD_CONTAINS, MOD_STARTSWITH }, { MOD_CONTAINS, MOD_ENDSWITH }, { MOD_STARTSWITH, MOD_ENDSWITH },
		{ MOD_RE, MOD_CONTAINS }, { MOD_RE, MOD_STARTSWITH }, { MOD_RE, MOD_ENDSWITH },
		{ MOD_RE, MOD_CIDR }, { MOD_RE, MOD_BASE64 }, { MOD_RE, MOD_BASE64OFFSET },
		{ MOD_RE, MOD_FIELDREF }, { MOD_RE, MOD_CASED },
		{ MOD_CIDR, MOD_CONTAINS }, { MOD_CIDR, MOD_STARTSWITH }, { MOD_CIDR, MOD_ENDSWITH },
		{ MOD_CIDR, MOD_BASE64 }, { MOD_CIDR, MOD_BASE64OFFSET }, { MOD_CIDR, MOD_FIELDREF },
		{ MOD_BASE64, MOD_BASE64OFFSET }, { MOD_FIELDREF, MOD_CONTAINS },
		{ MOD_FIELDREF, MOD_STARTSWITH }, { MOD_FIELDREF, MOD_ENDSWITH },
		{ MOD_FIELDREF, MOD_BASE64 }, { MOD_FIELDREF, MOD_BASE64OFFSET }, { MOD_FIELDREF, MOD_EXPAND },
	};
	static const enum modifier numeric[] = { MOD_GT, MOD_GTE, MOD_LT, MOD_LTE };
	static const enum modifier alone[] = { MOD_EXISTS, MOD_ELEMENT };
	int nnum = 0;

	for (size_t i = 0; i < sizeof(conflicts) / sizeof(conflicts[0]); i++) {
		if (m->has[conflicts[i].a] && m->has[conflicts[i].b]) {
			lerr(L, key, "modifiers '%s' and '%s' cannot be combined",
			     modifier_table[conflicts[i].a].name, modifier_table[conflicts[i].b].name);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < 4; i++)
		nnum += m->has[numeric[i]];
	if (nnum > 1 || (nnum && (m->has[MOD_CONTAINS] || m->has[MOD_STARTSWITH] || m->has[MOD_ENDSWITH] ||
				  m->has[MOD_RE] || m->has[MOD_CIDR] || m->has[MOD_BASE64] ||
				  m->has[MOD_BASE64OFFSET] || m->has[MOD_FIELDREF] || m->has[MOD_NEQ]))) {
		lerr(L, key, "a comparison (gt, gte, lt, lte) stands alone");
		return -EINVAL;
	}
	for (size_t a = 0; a < sizeof(alone) / sizeof(alone[0]); a++) {
		if (!m->has[alone[a]])
			continue;
		for (int i = 0; i < MOD_COUNT; i++) {
			if (i != (int)alone[a] && m->has[i]) {
				lerr(L, key, "'%s' cannot be combined with other modifiers",
				     modifier_table[alone[a]].name);
				return -EINVAL;
			}
		}
	}
	if ((m->has[MOD_RE_I] || m->has[MOD_RE_M] || m->has[MOD_RE_S]) && !m->has[MOD_RE]) {
		lerr(L, key, "the flags i, m and s belong to the 're' modifier");
		return -EINVAL;
	}
	for (int b = MOD_BASE64; b <= MOD_BASE64OFFSET; b++) {
		for (int w = MOD_CONTAINS; w <= MOD_ENDSWITH; w++) {
			if (m->has[b] && m->has[w] && m->order[w] < m->order[b]) {
				lerr(L, key, "'%s' must come before '%s' (a wildcard cannot be base64-encoded)",
				     modifier_table[b].name, modifier_table[w].name);
				return -EINVAL;
			}
		}
	}
	return 0;
}

struct strvec {
	const char **v;
	size_t *len;
	size_t n, cap;
};

static int strvec_push(struct loader *L, struct strvec *s, const char *p, size_t len)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		const char **v = arena_alloc(&L->rs->arena, cap * sizeof(*v));
		size_t *l = arena_alloc(&L->rs->arena, cap * sizeof(*l));
		if (!v || !l)
			return -ENOMEM;
		if (s->n) {
			memcpy(v, s->v, s->n * sizeof(*v));
			memcpy(l, s->len, s->n * sizeof(*l));
		}
		s->v = v;
		s->len = l;
		s->cap = cap;
	}
	s->v[s->n] = p;
	s->len[s->n] = len;
	s->n++;
	return 0;
}

static const struct rule_lists *find_list(const struct rule_lists *lists, const char *name, size_t len,
					  size_t *ret_index)
{
	if (!lists)
		return NULL;
	for (size_t i = 0; i < lists->n; i++) {
		if (strlen(lists->names[i]) == len && memcmp(lists->names[i], name, len) == 0) {
			*ret_index = i;
			return lists;
		}
	}
	return NULL;
}

/* Replaces every %name% placeholder with each value of the config list of
 * that name (the cartesian product when there are several placeholders). */
static int expand(struct loader *L, const struct ynode *at, const char *s, struct strvec *out)
{
	const char *a = strchr(s, '%'), *b;
	size_t li;
	int r;

	b = a ? strchr(a + 1, '%') : NULL;
	if (!a || !b)
		return strvec_push(L, out, s, strlen(s));
	if (!find_list(L->lists, a + 1, (size_t)(b - a - 1), &li)) {
		lerr(L, at, "placeholder %.*s is not defined: add a list named '%.*s' under 'lists:' in the config",
		     (int)(b - a + 1), a, (int)(b - a - 1), a + 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < L->lists->nvalues[li]; i++) {
		const char *val = L->lists->values[li][i];
		char *sub = arena_printf(&L->rs->arena, "%.*s%s%s", (int)(a - s), s, val, b + 1);

		if (!sub)
			return -ENOMEM;
		if (out->n >= MAX_EXPANSION) {
			lerr(L, at, "placeholder expansion gives more than %d values", MAX_EXPANSION);
			return -EINVAL;
		}
		/* The substituted value is literal: continue after it. */
		struct strvec rest = { 0 };
		const char *tail = sub + (a - s) + strlen(val);
		r = expand(L, at, tail, &rest);
		if (r < 0)
			return r;
		for (size_t k = 0; k < rest.n; k++) {
			char *full = arena_printf(&L->rs->arena, "%.*s%s", (int)(tail - sub), sub, rest.v[k]);
			if (!full)
				return -ENOMEM;
			r = strvec_push(L, out, full, strlen(full));
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Escapes Sigma wildcard characters so that text is matched literally. */
static char *escape_wild(struct loader *L, const char *s, size_t len, size_t *ret_len)
{
	char *out = arena_alloc(&L->rs->arena, 2 * len + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '*' || s[i] == '?' || s[i] == '\\')
			out[o++] = '\\';
		out[o++] = s[i];
	}
	out[o] = '\0';
	*ret_len = o;
	return out;
}

static struct pattern *new_pattern(struct loader *L, struct field_test *t, size_t *cap)
{
	if (t->npats == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct pattern *p = arena_alloc(&L->rs->arena, ncap * sizeof(*p));
		if (!p)
			return NULL;
		if (t->npats)
			memcpy(p, t->pats, t->npats * sizeof(*p));
		t->pats = p;
		*cap = ncap;
	}
	return &t->pats[t->npats++];
}

/* Turns one string (after expansion) into glob patterns, applying base64,
 * base64offset, contains, startswith and endswith. */
static int string_patterns(struct loader *L, struct field_test *t, size_t *cap, const struct mods *m,
			   const char *s, size_t len, const char *source)
{
	const char *variants[3];
	size_t vlen[3], nvar = 1;
	bool literal = false;

	variants[0] = s;
	vlen[0] = len;
	if (m->has[MOD_BASE64]) {
		variants[0] = base64_encode(&L->rs->arena, s, len, &vlen[0]);
		literal = true;
	} else if (m->has[MOD_BASE64OFFSET]) {
		char *o[3];
		if (base64_offsets(&L->rs->arena, s, len, o, vlen) < 0)
			return -ENOMEM;
		nvar = 0;
		for (int i = 0; i < 3; i++) {
			if (o[i]) {
				variants[nvar] = o[i];
				vlen[nvar] = vlen[i];
				nvar++;
			}
		}
		literal = true;
	}
	for (size_t i = 0; i < nvar; i++) {
		const char *v = variants[i];
		size_t vl = vlen[i];
		struct pattern *p;
		char *g;

		if (!v)
			return -ENOMEM;
		if (literal) {
			v = escape_wild(L, v, vl, &vl);
			if (!v)
				return -ENOMEM;
		}
		g = arena_printf(&L->rs->arena, "%s%.*s%s",
				 m->has[MOD_CONTAINS] || m->has[MOD_ENDSWITH] ? "*" : "", (int)vl, v,
				 m->has[MOD_CONTAINS] || m->has[MOD_STARTSWITH] ? "*" : "");
		p = new_pattern(L, t, cap);
		if (!g || !p)
			return -ENOMEM;
		if (pattern_glob(p, &L->rs->arena, g, strlen(g), m->has[MOD_CASED]) < 0)
			return -ENOMEM;
		p->source = source;
	}
	return 0;
}

static bool plain_number(const struct ynode *v, double *ret)
{
	return v->plain && number_parse(v->value, v->len, ret) == 0;
}

static int compile_selection(struct loader *L, const struct ynode *name, const struct ynode *val,
			     struct selection *sel);

/* "field|element: selection": compiles the selection against a field index
 * of its own, whose paths are relative to each value of the field. */
static int compile_element(struct loader *L, const struct ynode *key, const struct ynode *val,
			   struct field_test *t)
{
	struct ruleset *rs = L->rs;
	struct field_index *outer = L->fields;
	struct element_test *el, **els;
	struct selection sel;
	int r;

	if (t->slot < 0) {
		lerr(L, key, "'element' needs a field name");
		return -EINVAL;
	}
	if (val->type != YNODE_MAP && val->type != YNODE_SEQ) {
		lerr(L, val, "the value of '%s' must be a selection (a map, a list of maps or keywords)", key->value);
		return -EINVAL;
	}
	els = array_grow(rs->elements, &rs->capelements, rs->nelements + 1, sizeof(*els), 8);
	el = arena_alloc(&rs->arena, sizeof(*el));
	if (!els || !el)
		return -ENOMEM;
	rs->elements = els;
	field_index_init(&el->fields);
	el->id = rs->nelements;
	rs->elements[rs->nelements++] = el;
	t->elem = el;

	L->fields = &el->fields;
	r = compile_selection(L, key, val, &sel);
	L->fields = outer;
	el->alts = sel.alts;
	el->nalts = sel.nalts;
	return r;
}

/* Compiles "field|mods: value(s)" into t. */
/* A test of a field's values alone: "any of its patterns", each a function
 * of one value (not negated, not another field, not presence). */
static bool value_test(const struct field_test *t)
{
	if (t->slot < 0 || t->all || t->elem)
		return false;
	for (size_t i = 0; i < t->npats; i++) {
		const struct pattern *p = &t->pats[i];
		if (p->negate || p->op == PAT_NULL || p->op == PAT_EXISTS || p->op == PAT_FIELDREF)
			return false;
	}
	return true;
}

/* Worth remembering results for: a value test of many patterns. */
static bool memo_worthy(const struct field_test *t)
{
	return t->npats >= MEMO_MIN_PATTERNS && value_test(t);
}

static int compile_test(struct loader *L, const struct ynode *key, const struct ynode *val,
			bool keyword, struct field_test *t)
{
	struct mods m;
	char *field = NULL;
	size_t cap = 0, nvals;
	const struct ynode *const *vals;
	int r;

	memset(t, 0, sizeof(*t));
	t->slot = -1;
	t->memo = -1;
	if (keyword) {
		memset(&m, 0, sizeof(m));
		m.has[MOD_CONTAINS] = true;	/* a keyword may appear anywhere */
		t->field = "(keywords)";
	} else {
		r = parse_modifiers(L, key, &field, &m);
		if (r < 0)
			return r;
		r = check_modifiers(L, key, &m);
		if (r < 0)
			return r;
		t->field = field;
		if (strcmp(field, FIELDS_SELF) == 0 && L->fields == &L->rs->fields) {
			lerr(L, key, "'%s' names the value an |element selection looks at; it is not a field of the record",
			     FIELDS_SELF);
			return -EINVAL;
		}
		if (field[0]) {
			r = field_index_add(L->fields, field, &t->slot);
			if (r == -EINVAL) {
				lerr(L, key, "invalid field name '%s'", field);
				return r;
			}
			if (r < 0) {
				lerr(L, key, "cannot add field '%s': %s", field, strerror(-r));
				return r;
			}
		} else {
			m.has[MOD_CONTAINS] |= !m.has[MOD_STARTSWITH] && !m.has[MOD_ENDSWITH] && !m.has[MOD_RE];
		}
	}
	t->all = m.has[MOD_ALL];
	if (m.has[MOD_ELEMENT])
		return compile_element(L, key, val, t);

	if (val->type == YNODE_MAP) {
		lerr(L, val, "the value of '%s' must be a value or a list of values, not a map", key ? key->value : "keyword");
		return -EINVAL;
	}
	if (val->type == YNODE_SEQ) {
		vals = (const struct ynode *const *)val->items;
		nvals = val->n;
		if (nvals == 0) {
			lerr(L, val, "empty list of values for '%s'", t->field);
			return -EINVAL;
		}
	} else {
		vals = (const struct ynode *const *)&val;
		nvals = 1;
	}

	for (size_t i = 0; i < nvals; i++) {
		const struct ynode *v = vals[i];
		struct pattern *p;
		double num;

		if (v->type != YNODE_SCALAR) {
			lerr(L, v, "a list of values for '%s' may not contain lists or maps", t->field);
			return -EINVAL;
		}
		if (m.has[MOD_EXISTS]) {
			bool b;
			if (ynode_bool(v, &b) < 0) {
				lerr(L, v, "'exists' takes true or false");
				return -EINVAL;
			}
			if (t->slot < 0) {
				lerr(L, key, "'exists' needs a field name");
				return -EINVAL;
			}
			p = new_pattern(L, t, &cap);
			if (!p)
				return -ENOMEM;
			p->op = PAT_EXISTS;
			p->exists = b;
			p->source = v->value;
			continue;
		}
		if (ynode_is_null(v)) {
			if (m.has[MOD_CONTAINS] || m.has[MOD_STARTSWITH] || m.has[MOD_ENDSWITH] || m.has[MOD_RE] ||
			    m.has[MOD_CIDR] || m.has[MOD_GT] || m.has[MOD_GTE] || m.has[MOD_LT] || m.has[MOD_LTE] ||
			    m.has[MOD_FIELDREF] || m.has[MOD_BASE64] || m.has[MOD_BASE64OFFSET] ||
			    m.has[MOD_ARNACCOUNT] || t->slot < 0) {
				lerr(L, v, "null cannot be used with these modifiers");
				return -EINVAL;
			}
			p = new_pattern(L, t, &cap);
			if (!p)
				return -ENOMEM;
			p->op = PAT_NULL;
			p->negate = m.has[MOD_NEQ];
			p->source = "null";
			continue;
		}
		if (m.has[MOD_GT] || m.has[MOD_GTE] || m.has[MOD_LT] || m.has[MOD_LTE]) {
			if (number_parse(v->value, v->len, &num) < 0) {
				lerr(L, v, "'%s' is not a number", v->value);
				return -EINVAL;
			}
			p = new_pattern(L, t, &cap);
			if (!p)
				return -ENOMEM;
			p->op = m.has[MOD_GT] ? PAT_GT : m.has[MOD_GTE] ? PAT_GTE : m.has[MOD_LT] ? PAT_LT : PAT_LTE;
			p->num = num;
			p->source = v->value;
			continue;
		}
		if (m.has[MOD_FIELDREF]) {
			p = new_pattern(L, t, &cap);
			if (!p)
				return -ENOMEM;
			if (t->slot < 0) {
				lerr(L, key, "'fieldref' needs a field name");
				return -EINVAL;
			}
			r = field_index_add(&L->rs->fields, v->value, &p->ref_slot);
			if (r < 0) {
				lerr(L, v, "invalid field name '%s'", v->value);
				return -EINVAL;
			}
			p->op = PAT_FIELDREF;
			p->cased = m.has[MOD_CASED];
			p->negate = m.has[MOD_NEQ];
			p->source = v->value;
			continue;
		}

		/* Everything else works on strings, after placeholder expansion. */
		struct strvec strs = { 0 };
		if (m.has[MOD_EXPAND]) {
			r = expand(L, v, v->value, &strs);
			if (r < 0)
				return r;
		} else {
			r = strvec_push(L, &strs, v->value, v->len);
			if (r < 0)
				return r;
		}
		for (size_t k = 0; k < strs.n; k++) {
			size_t before = t->npats;

			if (m.has[MOD_RE]) {
				char err[300];
				const char *why;
				size_t at;
				p = new_pattern(L, t, &cap);
				if (!p)
					return -ENOMEM;
				if (pattern_regex(p, strs.v[k], m.has[MOD_RE_I], m.has[MOD_RE_M], m.has[MOD_RE_S],
						  err, sizeof(err)) < 0) {
					lerr(L, v, "%s", err);
					t->npats--;
					return -EINVAL;
				}
				p->source = strs.v[k];
				if (regex_backtracks(strs.v[k], &at, &why))
					diag_warn(L->d, L->file, v->line, v->col,
						  "the regular expression can take time exponential in the value's length (%s, at offset %zu): a match that runs past the match limit counts as no match, and is reported",
						  why, at);
			} else if (m.has[MOD_CIDR]) {
				p = new_pattern(L, t, &cap);
				if (!p)
					return -ENOMEM;
				if (cidr_parse(&p->cidr, strs.v[k]) < 0) {
					lerr(L, v, "'%s' is not an IPv4 or IPv6 network (a.b.c.d/n or x::y/n)", strs.v[k]);
					return -EINVAL;
				}
				p->op = PAT_CIDR;
				p->source = strs.v[k];
			} else {
				r = string_patterns(L, t, &cap, &m, strs.v[k], strs.len[k], strs.v[k]);
				if (r < 0)
					return r;
				if (!m.has[MOD_EXPAND] && plain_number(v, &num) && t->npats == before + 1) {
					t->pats[before].is_number = true;
					t->pats[before].num = num;
				}
			}
			for (size_t j = before; j < t->npats; j++)
				t->pats[j].negate = m.has[MOD_NEQ];
		}
	}
	for (size_t j = 0; j < t->npats; j++)
		t->pats[j].arn_account = m.has[MOD_ARNACCOUNT];
	if (memo_worthy(t))
		t->memo = (int)L->rs->nmemos++;
	return 0;
}

/* A selection: a map (one alternative), a list of maps (several), or
 * keywords (a value or a list of values, matched anywhere in the record). */
static int compile_selection(struct loader *L, const struct ynode *name, const struct ynode *val,
			     struct selection *sel)
{
	struct arena *a = &L->rs->arena;
	int r = 0;

	sel->name = name->value;
	if (val->type == YNODE_MAP) {
		sel->nalts = 1;
		sel->alts = arena_alloc(a, sizeof(*sel->alts));
		if (!sel->alts)
			return -ENOMEM;
		if (val->n == 0) {
			lerr(L, val, "selection '%s' is empty", name->value);
			return -EINVAL;
		}
		sel->alts[0].ntests = val->n;
		sel->alts[0].tests = arena_alloc(a, val->n * sizeof(struct field_test));
		if (!sel->alts[0].tests)
			return -ENOMEM;
		for (size_t i = 0; i < val->n; i++) {
			int e = compile_test(L, val->keys[i], val->items[i], false, &sel->alts[0].tests[i]);
			if (e == -ENOMEM)
				return e;
			if (e < 0)
				r = e;
		}
		return r;
	}
	if (val->type == YNODE_SEQ) {
		bool maps = val->n > 0 && val->items[0]->type == YNODE_MAP;

		if (val->n == 0) {
			lerr(L, val, "selection '%s' is empty", name->value);
			return -EINVAL;
		}
		for (size_t i = 0; i < val->n; i++) {
			if ((val->items[i]->type == YNODE_MAP) != maps || val->items[i]->type == YNODE_SEQ) {
				lerr(L, val->items[i], "selection '%s' mixes maps and plain values", name->value);
				return -EINVAL;
			}
		}
		if (maps) {
			sel->nalts = val->n;
			sel->alts = arena_alloc(a, val->n * sizeof(*sel->alts));
			if (!sel->alts)
				return -ENOMEM;
			for (size_t i = 0; i < val->n; i++) {
				const struct ynode *mp = val->items[i];
				sel->alts[i].ntests = mp->n;
				sel->alts[i].tests = arena_alloc(a, (mp->n + 1) * sizeof(struct field_test));
				if (!sel->alts[i].tests)
					return -ENOMEM;
				if (mp->n == 0) {
					lerr(L, mp, "empty map in selection '%s'", name->value);
					r = -EINVAL;
				}
				for (size_t k = 0; k < mp->n; k++) {
					struct field_test *t = &sel->alts[i].tests[k];
					int e = compile_test(L, mp->keys[k], mp->items[k], false, t);
					if (e == -ENOMEM)
						return e;
					if (e < 0)
						r = e;
				}
			}
			return r;
		}
	}
	/* Keywords. */
	sel->nalts = 1;
	sel->alts = arena_alloc(a, sizeof(*sel->alts));
	if (!sel->alts)
		return -ENOMEM;
	sel->alts[0].ntests = 1;
	sel->alts[0].tests = arena_alloc(a, sizeof(struct field_test));
	if (!sel->alts[0].tests)
		return -ENOMEM;
	if (ynode_is_null(val)) {
		lerr(L, val, "selection '%s' is empty", name->value);
		return -EINVAL;
	}
	return compile_test(L, NULL, val, true, &sel->alts[0].tests[0]);
}

/* Maps an error offset inside a condition string to a column. */
static unsigned cond_col(const struct ynode *n, size_t pos)
{
	if (!n->plain && n->col)
		return n->col + 1 + (unsigned)pos;	/* after the opening quote */
	return n->col + (unsigned)pos;
}

/* Is the condition node a selection of one value_test()?  Such selections on
 * one field, ORed, are one test; keeping null, |exists and |neq apart keeps
 * the merged test memo_worthy() when its parts are. */
static const struct field_test *single_test(const struct detection *det, const struct cnode *c)
{
	const struct selection *sel;
	const struct field_test *t;

	if (c->type != CN_SEL)
		return NULL;
	sel = &det->sels[c->sel];
	if (sel->nalts != 1 || sel->alts[0].ntests != 1)
		return NULL;
	t = &sel->alts[0].tests[0];
	return value_test(t) ? t : NULL;
}

/* Rewrites "a or b or c", where each is a single_test() selection on the
 * same field, into one selection whose test holds all their patterns: the
 * same truth (a test is true when any pattern is), one pass over the value,
 * and one memo lookup instead of three (the user-agent rule's tool prefixes,
 * tool names and distributions).  Recurses into the whole condition. */
static int merge_or_tests(struct loader *L, struct detection *det, struct cnode *c)
{
	struct arena *a = &L->rs->arena;

	for (size_t i = 0; c->type != CN_SEL && c->type != CN_CONST && i < c->n; i++)
		if (merge_or_tests(L, det, c->kids[i]) < 0)
			return -ENOMEM;
	if (c->type != CN_OR)
		return 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct field_test *first = single_test(det, c->kids[i]);
		struct selection *sels, *sel;
		struct field_test *t;
		size_t n = 0, npats = 0, out = i + 1;

		if (!first)
			continue;
		for (size_t j = i; j < c->n; j++) {
			const struct field_test *o = single_test(det, c->kids[j]);
			if (o && o->slot == first->slot) {
				n++;
				npats += o->npats;
			}
		}
		if (n < 2)
			continue;
		sels = arena_alloc(a, (det->nsels + 1) * sizeof(*sels));
		t = arena_alloc(a, sizeof(*t));
		if (!sels || !t)
			return -ENOMEM;
		*t = *first;
		t->pats = arena_alloc(a, npats * sizeof(*t->pats));
		if (!t->pats)
			return -ENOMEM;
		memcpy(t->pats, first->pats, first->npats * sizeof(*t->pats));
		t->npats = first->npats;
		/* The others' patterns join it; the kids left keep their order. */
		for (size_t j = i + 1; j < c->n; j++) {
			const struct field_test *o = single_test(det, c->kids[j]);
			if (o && o->slot == first->slot) {
				memcpy(t->pats + t->npats, o->pats, o->npats * sizeof(*o->pats));
				t->npats += o->npats;
			} else {
				c->kids[out++] = c->kids[j];
			}
		}
		c->n = out;
		t->memo = memo_worthy(t) ? (int)L->rs->nmemos++ : -1;
		memcpy(sels, det->sels, det->nsels * sizeof(*sels));
		sel = &sels[det->nsels];
		memset(sel, 0, sizeof(*sel));
		sel->name = det->sels[c->kids[i]->sel].name;
		sel->alts = arena_alloc(a, sizeof(*sel->alts));
		if (!sel->alts)
			return -ENOMEM;
		sel->alts[0].tests = t;
		sel->alts[0].ntests = 1;
		sel->nalts = 1;
		det->sels = sels;
		c->kids[i]->sel = (unsigned)det->nsels++;
	}
	if (c->n == 1)
		*c = *c->kids[0];
	return 0;
}

/* Selections plus condition; used by detection rules and filters.  skip is a
 * key that belongs to the container (a filter's "rules"), not a selection. */
static int compile_detection(struct loader *L, const struct ynode *detn, const char *skip,
			     struct detection *det, struct cond_aggregation *aggr,
			     const struct ynode **ret_cond_node)
{
	struct arena *a = &L->rs->arena;
	const struct ynode *condn;
	size_t nsel = 0;
	int r = 0;

	memset(aggr, 0, sizeof(*aggr));
	if (detn->type != YNODE_MAP) {
		lerr(L, detn, "'detection' must be a map of selections and a condition");
		return -EINVAL;
	}
	det->sels = arena_alloc(a, (detn->n + 1) * sizeof(*det->sels));
	if (!det->sels)
		return -ENOMEM;
	for (size_t i = 0; i < detn->n; i++) {
		const char *k = detn->keys[i]->value;
		if (strcmp(k, "condition") == 0 || strcmp(k, "timeframe") == 0 || (skip && strcmp(k, skip) == 0))
			continue;
		int e = compile_selection(L, detn->keys[i], detn->items[i], &det->sels[nsel]);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
		nsel++;
	}
	det->nsels = nsel;
	det->nwritten = nsel;
	condn = ynode_get(detn, "condition");
	*ret_cond_node = condn;
	if (!condn) {
		lerr(L, detn, "missing 'condition'");
		return -EINVAL;
	}
	if (r < 0)
		return r;	/* a condition over broken selections would only add noise */

	/* A list of conditions means any of them (Sigma 1). */
	size_t nconds = condn->type == YNODE_SEQ ? condn->n : 1;
	struct cnode *any = NULL;
	if (condn->type == YNODE_MAP || nconds == 0) {
		lerr(L, condn, "'condition' must be an expression or a list of expressions");
		return -EINVAL;
	}
	if (nconds > 1) {
		any = arena_alloc(a, sizeof(*any));
		if (!any)
			return -ENOMEM;
		any->type = CN_OR;
		any->n = nconds;
		any->kids = arena_alloc(a, nconds * sizeof(*any->kids));
		if (!any->kids)
			return -ENOMEM;
	}
	for (size_t i = 0; i < nconds; i++) {
		const struct ynode *c = condn->type == YNODE_SEQ ? condn->items[i] : condn;
		struct cond_aggregation ag;
		struct cond_error ce;
		struct cnode *tree;

		if (!is_string(c)) {
			lerr(L, c, "'condition' must be an expression");
			return -EINVAL;
		}
		r = cond_parse(a, c->value, det->sels, det->nsels, &tree, &ag, &ce);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			diag_add(L->d, L->file, c->line, strchr(c->value, '\n') ? c->col : cond_col(c, ce.pos),
				 "%s", ce.message);
			L->errors++;
			return r;
		}
		if (ag.present) {
			if (nconds > 1) {
				lerr(L, c, "an aggregation (| count() ...) cannot be part of a list of conditions");
				return -EINVAL;
			}
			*aggr = ag;
		}
		if (any)
			any->kids[i] = tree;
		else
			det->cond = tree;
	}
	if (any)
		det->cond = any;
	return merge_or_tests(L, det, det->cond);
}

/* ---- trailwatch: extension (throttle, tests) --------------------------- */

/* Replacement values for a repeated test event's top-level members. */
struct event_copy {
	const char *event_time;	/* replaces eventTime */
	const char *event_id;	/* replaces a scalar eventID */
};

/* YAML -> JSON for test events: plain scalars that read as null, booleans or
 * JSON numbers keep those types; everything else is a string.  copy (top
 * level only) replaces eventTime and makes eventID unique. */
static int yaml_to_json(struct buf *b, const struct ynode *n, const struct event_copy *copy)
{
	int r = 0;
	double num;
	bool bv;

	switch (n->type) {
	case YNODE_MAP:
		r = buf_append(b, "{", 1);
		for (size_t i = 0; i < n->n && r == 0; i++) {
			if (i)
				r = buf_append(b, ",", 1);
			if (!r)
				r = jsonw_string(b, n->keys[i]->value, n->keys[i]->len);
			if (!r)
				r = buf_append(b, ":", 1);
			if (r)
				break;
			if (copy && strcmp(n->keys[i]->value, "eventTime") == 0)
				r = jsonw_string(b, copy->event_time, strlen(copy->event_time));
			else if (copy && n->items[i]->type == YNODE_SCALAR && strcmp(n->keys[i]->value, "eventID") == 0)
				r = jsonw_string(b, copy->event_id, strlen(copy->event_id));
			else
				r = yaml_to_json(b, n->items[i], NULL);
		}
		return r ? r : buf_append(b, "}", 1);
	case YNODE_SEQ:
		r = buf_append(b, "[", 1);
		for (size_t i = 0; i < n->n && r == 0; i++) {
			if (i)
				r = buf_append(b, ",", 1);
			if (!r)
				r = yaml_to_json(b, n->items[i], NULL);
		}
		return r ? r : buf_append(b, "]", 1);
	default:
		if (ynode_is_null(n))
			return buf_append_str(b, "null");
		if (n->plain && (strcmp(n->value, "true") == 0 || strcmp(n->value, "false") == 0) &&
		    ynode_bool(n, &bv) == 0)
			return buf_append_str(b, bv ? "true" : "false");
		if (n->plain && number_parse(n->value, n->len, &num) == 0 && n->value[0] != '+' &&
		    !(n->len > 1 && n->value[0] == '0' && n->value[1] != '.'))
			return buf_append(b, n->value, n->len);
		return jsonw_string(b, n->value, n->len);
	}
}

static const char *event_json(struct loader *L, const struct ynode *ev, const struct event_copy *copy)
{
	struct buf b;
	const char *out = NULL;

	if (ev->type == YNODE_SCALAR && is_string(ev))
		return ev->value;	/* written as JSON text already */
	if (ev->type != YNODE_MAP) {
		lerr(L, ev, "a test event must be a map (a CloudTrail record) or JSON text");
		return NULL;
	}
	buf_init(&b, MAX_TEST_EVENT);
	if (yaml_to_json(&b, ev, copy) == 0)
		out = arena_strndup(&L->rs->arena, b.data, b.len);
	else
		lerr(L, ev, "test event too large");
	buf_free(&b);
	return out;
}

/* One item of a test's `events` list: an event, or
 * {repeat: N, every: DURATION, event: {...}}, the event N times with its
 * eventTime advanced by DURATION each time (and eventID made unique).
 * Returns how many events the item stands for, or -EINVAL. */
static long repeat_count(struct loader *L, const struct ynode *item, int64_t *ret_every, int64_t *ret_start)
{
	const struct ynode *n = ynode_get(item, "repeat"), *every, *ev, *t;
	double count;

	if (!n || item->type != YNODE_MAP)
		return 1;
	every = ynode_get(item, "every");
	ev = ynode_get(item, "event");
	for (size_t k = 0; k < item->n; k++) {
		const char *key = item->keys[k]->value;
		if (strcmp(key, "repeat") != 0 && strcmp(key, "every") != 0 && strcmp(key, "event") != 0) {
			lerr(L, item->keys[k], "unknown key '%s' in a repeated event (repeat, every, event)", key);
			return -EINVAL;
		}
	}
	if (!n->plain || number_parse(n->value, n->len, &count) < 0 || count < 1 || count > 10000 ||
	    count != floor(count)) {
		lerr(L, n, "'repeat' must be a whole number from 1 to 10000");
		return -EINVAL;
	}
	if (!ev || ev->type != YNODE_MAP) {
		lerr(L, item, "a repeated event needs 'event' (a map)");
		return -EINVAL;
	}
	t = ynode_get(ev, "eventTime");
	if (!t || ctlog_parse_time(t->value, t->len, ret_start) < 0) {
		lerr(L, t ? t : ev, "a repeated event needs an eventTime (YYYY-MM-DDTHH:MM:SSZ) to advance");
		return -EINVAL;
	}
	*ret_every = 1;
	if (every && (every->type != YNODE_SCALAR || timespan_parse(every->value, ret_every) < 0 ||
		      *ret_every > 86400)) {
		lerr(L, every, "'every' must be a duration from 1s to 1d, such as 2s or 1m");
		return -EINVAL;
	}
	return (long)count;
}

static int test_events(struct loader *L, struct rule_test *rt, const struct ynode *evs)
{
	size_t total = 0, k = 0;
	int64_t every, start;

	for (size_t i = 0; i < evs->n; i++) {
		long n = repeat_count(L, evs->items[i], &every, &start);
		if (n < 0)
			return -EINVAL;
		total += (size_t)n;
		if (total > MAX_TEST_EVENTS) {
			lerr(L, evs->items[i], "a test may have at most %d events", MAX_TEST_EVENTS);
			return -EINVAL;
		}
	}
	rt->events = arena_alloc(&L->rs->arena, total * sizeof(*rt->events));
	if (!rt->events)
		return -ENOMEM;
	for (size_t i = 0; i < evs->n; i++) {
		const struct ynode *item = evs->items[i];
		long n = repeat_count(L, item, &every, &start);

		if (!ynode_get(item, "repeat")) {
			rt->events[k] = event_json(L, item, NULL);
			if (!rt->events[k++])
				return -EINVAL;
			continue;
		}
		for (long c = 0; c < n; c++) {
			const struct ynode *ev = ynode_get(item, "event"), *id = ynode_get(ev, "eventID");
			char when[32];
			struct event_copy copy = { .event_time = when, .event_id = "" };

			format_time(start + c * every, when);
			if (id && id->type == YNODE_SCALAR)
				copy.event_id = arena_printf(&L->rs->arena, "%s-%ld", id->value, c);
			if (!copy.event_id)
				return -ENOMEM;
			rt->events[k] = event_json(L, ev, &copy);
			if (!rt->events[k++])
				return -EINVAL;
		}
	}
	rt->nevents = total;
	return 0;
}

static int compile_tests(struct loader *L, struct rule *rule, const struct ynode *tn)
{
	int r = 0;

	if (tn->type != YNODE_SEQ) {
		lerr(L, tn, "'tests' must be a list");
		return -EINVAL;
	}
	rule->tests = arena_alloc(&L->rs->arena, (tn->n + 1) * sizeof(*rule->tests));
	if (!rule->tests)
		return -ENOMEM;
	for (size_t i = 0; i < tn->n; i++) {
		const struct ynode *t = tn->items[i], *ev, *evs, *match, *alerts, *reasons;
		struct rule_test *rt = &rule->tests[rule->ntests];
		static const char *const keys[] = { "name", "match", "alerts", "event", "events", "reasons" };

		if (t->type != YNODE_MAP) {
			lerr(L, t, "each test must be a map");
			r = -EINVAL;
			continue;
		}
		for (size_t k = 0; k < t->n; k++) {
			bool known = false;
			for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++)
				known |= strcmp(t->keys[k]->value, keys[j]) == 0;
			if (!known) {
				lerr(L, t->keys[k], "unknown test key '%s' (name, match, alerts, event, events, reasons)",
				     t->keys[k]->value);
				r = -EINVAL;
			}
		}
		rt->line = t->line;
		rt->name = get_str(L, t, "name", false);
		ev = ynode_get(t, "event");
		evs = ynode_get(t, "events");
		match = ynode_get(t, "match");
		alerts = ynode_get(t, "alerts");
		if (!!ev == !!evs) {
			lerr(L, t, "a test needs exactly one of 'event' or 'events'");
			r = -EINVAL;
			continue;
		}
		if (!!match == !!alerts) {
			lerr(L, t, "a test needs exactly one of 'match' (true/false) or 'alerts' (a count)");
			r = -EINVAL;
			continue;
		}
		rt->expect_alerts = -1;
		if (match && ynode_bool(match, &rt->expect_match) < 0) {
			lerr(L, match, "'match' must be true or false");
			r = -EINVAL;
			continue;
		}
		reasons = ynode_get(t, "reasons");
		if (reasons) {
			if (!match || !rt->expect_match || rule->kind != RULE_DETECTION) {
				lerr(L, reasons, "'reasons' belongs to a 'match: true' test of a detection rule");
				r = -EINVAL;
				continue;
			}
			if (reasons->type == YNODE_SEQ && reasons->n == 0) {
				rt->expect_reasons = NULL;
				rt->nexpect_reasons = 0;
			} else if (get_str_list(L, reasons, "reasons", &rt->expect_reasons, &rt->nexpect_reasons) < 0) {
				r = -EINVAL;
				continue;
			}
			rt->has_expect_reasons = true;
		}
		if (alerts) {
			double n;
			if (!alerts->plain || number_parse(alerts->value, alerts->len, &n) < 0 || n < 0 ||
			    n != floor(n) || n > 1e6) {
				lerr(L, alerts, "'alerts' must be a whole number");
				r = -EINVAL;
				continue;
			}
			rt->expect_alerts = (long)n;
		}
		if (ev) {
			rt->nevents = 1;
			rt->events = arena_alloc(&L->rs->arena, sizeof(*rt->events));
			if (!rt->events)
				return -ENOMEM;
			rt->events[0] = event_json(L, ev, NULL);
			if (!rt->events[0]) {
				r = -EINVAL;
				continue;
			}
		} else {
			if (evs->type != YNODE_SEQ || evs->n == 0) {
				lerr(L, evs, "'events' must be a non-empty list");
				r = -EINVAL;
				continue;
			}
			if (match) {
				lerr(L, match, "with several events, say how many alerts are expected ('alerts: N')");
				r = -EINVAL;
				continue;
			}
			if (test_events(L, rt, evs) < 0) {
				r = -EINVAL;
				continue;
			}
		}
		rule->ntests++;
	}
	return r;
}

static int compile_group_by(struct loader *L, const struct ynode *n, const char ***ret, size_t *ret_n)
{
	int r = get_str_list(L, n, "group-by", ret, ret_n);

	if (r == 0 && *ret_n > GROUP_BY_MAX) {
		lerr(L, n, "'group-by' names %zu fields; at most %d", *ret_n, GROUP_BY_MAX);
		return -EINVAL;
	}
	return r;
}

static int compile_throttle(struct loader *L, struct rule *rule, const struct ynode *tn)
{
	static const char *const keys[] = { "group-by", "timespan" };
	struct throttle *th;
	const struct ynode *g, *ts;
	int r = 0;

	if (tn->type != YNODE_MAP) {
		lerr(L, tn, "'throttle' must be a map with group-by and timespan");
		return -EINVAL;
	}
	for (size_t k = 0; k < tn->n; k++) {
		if (strcmp(tn->keys[k]->value, keys[0]) && strcmp(tn->keys[k]->value, keys[1])) {
			lerr(L, tn->keys[k], "unknown throttle key '%s' (group-by, timespan)", tn->keys[k]->value);
			r = -EINVAL;
		}
	}
	th = arena_alloc(&L->rs->arena, sizeof(*th));
	if (!th)
		return -ENOMEM;
	g = ynode_get(tn, "group-by");
	ts = ynode_get(tn, "timespan");
	if (!ts || !is_string(ts) || timespan_parse(ts->value, &th->timespan) < 0) {
		lerr(L, ts ? ts : tn, "throttle needs a 'timespan' such as 30s, 10m, 1h or 1d");
		return -EINVAL;
	}
	if (g) {
		r = compile_group_by(L, g, &th->group_by, &th->ngroup);
		if (r < 0)
			return r;
		th->group_slots = arena_alloc(&L->rs->arena, (th->ngroup + 1) * sizeof(int));
		if (!th->group_slots)
			return -ENOMEM;
		for (size_t i = 0; i < th->ngroup; i++) {
			if (field_index_add(&L->rs->fields, th->group_by[i], &th->group_slots[i]) < 0) {
				lerr(L, g, "invalid field name '%s'", th->group_by[i]);
				return -EINVAL;
			}
		}
	}
	rule->throttle = th;
	return r;
}

/* A reason's text: literal runs and {field.path} values (docs/rules.md). */
static int compile_reason_text(struct loader *L, const struct ynode *n, struct reason *rsn)
{
	const char *s = n->value;
	size_t len = n->len, cap = 1;

	if (len == 0 || len > REASON_TEXT_MAX) {
		lerr(L, n, "a reason's text must be 1 to %d bytes", REASON_TEXT_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		cap += s[i] == '{' ? 2 : 0;
	rsn->parts = arena_alloc(&L->rs->arena, cap * sizeof(*rsn->parts));
	if (!rsn->parts)
		return -ENOMEM;
	for (size_t i = 0; i < len;) {
		const char *open = memchr(s + i, '{', len - i), *close;
		struct reason_part *part;
		char *path;
		size_t at = open ? (size_t)(open - s) : len;

		if (at > i) {
			part = &rsn->parts[rsn->nparts++];
			part->lit = s + i;
			part->len = at - i;
			part->slot = -1;
		}
		if (!open)
			break;
		close = memchr(open, '}', len - at);
		if (!close) {
			lerr(L, n, "'{' without '}' in a reason: write {field.path} for a field's value");
			return -EINVAL;
		}
		path = arena_strndup(&L->rs->arena, open + 1, (size_t)(close - open - 1));
		if (!path)
			return -ENOMEM;
		part = &rsn->parts[rsn->nparts++];
		part->lit = NULL;
		part->len = 0;
		if (field_index_add(&L->rs->fields, path, &part->slot) < 0) {
			lerr(L, n, "invalid field name '%s' in a reason", path);
			return -EINVAL;
		}
		i = (size_t)(close - s) + 1;
	}
	return 0;
}

/* trailwatch.reasons: [{when: CONDITION, text: TEXT}, ...], compiled once
 * the rule's selections are (the conditions name them). */
static int compile_reasons(struct loader *L, struct rule *rule, const struct ynode *rn)
{
	struct arena *a = &L->rs->arena;
	int r = 0;

	if (rn->type != YNODE_SEQ || rn->n == 0 || rn->n > REASON_MAX) {
		lerr(L, rn, "'reasons' must be a list of 1 to %d items {when: CONDITION, text: TEXT}", REASON_MAX);
		return -EINVAL;
	}
	rule->reasons = arena_alloc(a, rn->n * sizeof(*rule->reasons));
	if (!rule->reasons)
		return -ENOMEM;
	for (size_t i = 0; i < rn->n; i++) {
		const struct ynode *item = rn->items[i], *when, *text;
		struct reason *rsn = &rule->reasons[rule->nreasons];
		struct cond_aggregation ag;
		struct cond_error ce;
		int e;

		if (item->type != YNODE_MAP) {
			lerr(L, item, "each reason is a map {when: CONDITION, text: TEXT}");
			r = -EINVAL;
			continue;
		}
		for (size_t k = 0; k < item->n; k++) {
			if (strcmp(item->keys[k]->value, "when") && strcmp(item->keys[k]->value, "text")) {
				lerr(L, item->keys[k], "unknown reason key '%s' (when, text)", item->keys[k]->value);
				r = -EINVAL;
			}
		}
		when = ynode_get(item, "when");
		text = ynode_get(item, "text");
		if (!is_string(when) || !is_string(text)) {
			lerr(L, item, "a reason needs 'when' (a condition over the rule's selections) and 'text'");
			r = -EINVAL;
			continue;
		}
		e = cond_parse(a, when->value, rule->det.sels, rule->det.nwritten, &rsn->when, &ag, &ce);
		if (e == -ENOMEM)
			return e;
		if (e < 0) {
			diag_add(L->d, L->file, when->line, cond_col(when, ce.pos), "%s", ce.message);
			L->errors++;
			r = -EINVAL;
			continue;
		}
		if (ag.present) {
			lerr(L, when, "a reason's condition cannot have an aggregation");
			r = -EINVAL;
			continue;
		}
		e = compile_reason_text(L, text, rsn);
		if (e == -ENOMEM)
			return e;
		if (e < 0) {
			r = e;
			continue;
		}
		rule->nreasons++;
	}
	return r;
}

/* trailwatch.supersedes: the references, resolved once every rule is loaded. */
static int compile_supersedes(struct loader *L, struct rule *rule, const struct ynode *n)
{
	if (rule->kind != RULE_DETECTION) {
		lerr(L, n, "only a detection rule can supersede other rules");
		return -EINVAL;
	}
	rule->supersede_line = n->line;
	rule->supersede_col = n->col;
	return get_str_list(L, n, "supersedes", &rule->supersede_refs, &rule->nsupersede_refs);
}

static int compile_extension(struct loader *L, struct rule *rule, const struct ynode *ext)
{
	int r = 0;

	if (ext->type != YNODE_MAP) {
		lerr(L, ext, "'trailwatch' must be a map (throttle, supersedes, reasons, count_values, seen_before, tests)");
		return -EINVAL;
	}
	for (size_t i = 0; i < ext->n; i++) {
		const char *k = ext->keys[i]->value;
		int e = 0;

		if (strcmp(k, "tests") == 0)
			e = compile_tests(L, rule, ext->items[i]);
		else if (strcmp(k, "throttle") == 0)
			e = compile_throttle(L, rule, ext->items[i]);
		else if (strcmp(k, "supersedes") == 0)
			e = compile_supersedes(L, rule, ext->items[i]);
		else if (strcmp(k, "seen_before") == 0) {
			if (rule->kind != RULE_CORRELATION) {
				lerr(L, ext->keys[i], "'seen_before' belongs to a value_count correlation");
				e = -EINVAL;
			} else {
				L->seen_before = ext->items[i];
			}
		} else if (strcmp(k, "count_values") == 0) {
			if (rule->kind != RULE_CORRELATION || !is_string(ext->items[i])) {
				lerr(L, ext->keys[i], "'count_values' is a field name, for an event_count correlation");
				e = -EINVAL;
			} else {
				L->count_values = ext->items[i];
			}
		}
		else if (strcmp(k, "reasons") == 0) {
			if (rule->kind != RULE_DETECTION) {
				lerr(L, ext->keys[i], "only a detection rule can give reasons");
				e = -EINVAL;
			} else {
				L->reasons = ext->items[i];
			}
		} else {
			lerr(L, ext->keys[i], "unknown key 'trailwatch.%s' (throttle, supersedes, reasons, count_values, seen_before, tests)", k);
			e = -EINVAL;
		}
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}
	return r;
}

/* ---- correlations ------------------------------------------------------ */

static int compile_corr_condition(struct loader *L, struct correlation *c, const struct ynode *cn)
{
	static const char *const keys[] = { "gt", "gte", "lt", "lte", "eq", "field" };
	bool any = false;
	int r = 0;

	if (cn->type != YNODE_MAP) {
		lerr(L, cn, "a correlation 'condition' is a map such as {gte: 10}");
		return -EINVAL;
	}
	for (size_t i = 0; i < cn->n; i++) {
		const char *k = cn->keys[i]->value;
		const struct ynode *v = cn->items[i];
		double num;
		size_t which = 0;

		for (; which < sizeof(keys) / sizeof(keys[0]); which++)
			if (strcmp(k, keys[which]) == 0)
				break;
		if (which == sizeof(keys) / sizeof(keys[0])) {
			lerr(L, cn->keys[i], "unknown condition key '%s' (gt, gte, lt, lte, eq, field)", k);
			r = -EINVAL;
			continue;
		}
		if (which == 5) {
			if (!is_string(v)) {
				lerr(L, v, "'field' must be a field name");
				r = -EINVAL;
				continue;
			}
			c->field = v->value;
			continue;
		}
		if (!is_string(v) || number_parse(v->value, v->len, &num) < 0) {
			lerr(L, v, "'%s' must be a number", k);
			r = -EINVAL;
			continue;
		}
		any = true;
		switch (which) {
		case 0: c->cond.has_gt = true; c->cond.gt = num; break;
		case 1: c->cond.has_gte = true; c->cond.gte = num; break;
		case 2: c->cond.has_lt = true; c->cond.lt = num; break;
		case 3: c->cond.has_lte = true; c->cond.lte = num; break;
		default: c->cond.has_eq = true; c->cond.eq = num; break;
		}
	}
	if (!any && r == 0) {
		lerr(L, cn, "the condition needs a comparison (gt, gte, lt, lte or eq)");
		r = -EINVAL;
	}
	/* Windows are judged as events arrive, so a condition must be one that
	 * more events can make true: an upper bound alone would hold for the
	 * first event of every window. */
	if (any && !c->cond.has_gt && !c->cond.has_gte && !c->cond.has_eq) {
		lerr(L, cn, "the condition needs a lower bound (gt, gte or eq): trailwatch judges a window as its events arrive");
		r = -EINVAL;
	}
	return r;
}

/* trailwatch.seen_before: {rule: NAME, within: TIMESPAN}; the rule is
 * resolved with the correlation's other references. */
static int compile_seen_before(struct loader *L, struct correlation *c, const struct ynode *n)
{
	const struct ynode *rn, *wn;

	if (c->type != CORR_VALUE_COUNT) {
		lerr(L, n, "'seen_before' needs a value_count correlation (it says which values count)");
		return -EINVAL;
	}
	if (n->type != YNODE_MAP) {
		lerr(L, n, "'seen_before' is a map {rule: NAME, within: TIMESPAN}");
		return -EINVAL;
	}
	for (size_t k = 0; k < n->n; k++) {
		if (strcmp(n->keys[k]->value, "rule") && strcmp(n->keys[k]->value, "within")) {
			lerr(L, n->keys[k], "unknown seen_before key '%s' (rule, within)", n->keys[k]->value);
			return -EINVAL;
		}
	}
	rn = ynode_get(n, "rule");
	wn = ynode_get(n, "within");
	if (!is_string(rn)) {
		lerr(L, rn ? rn : n, "'seen_before' needs 'rule': the detection rule whose values count");
		return -EINVAL;
	}
	if (!is_string(wn) || timespan_parse(wn->value, &c->seen_within) < 0) {
		lerr(L, wn ? wn : n, "'seen_before' needs 'within', a timespan such as 10m");
		return -EINVAL;
	}
	c->seen_ref = rn->value;
	c->seen_line = rn->line;
	c->seen_col = rn->col;
	return 0;
}

/* Aliases are kept as YAML and resolved once the base rules are known. */
struct alias_note {
	struct rule *rule;
	const struct ynode *aliases;
	const char *file;
	struct alias_note *next;
};

static int compile_correlation(struct loader *L, struct rule *rule, const struct ynode *doc,
			       const struct ynode *cn)
{
	static const char *const keys[] = { "type", "rules", "group-by", "timespan", "condition",
					    "aliases", "generate" };
	struct correlation *c;
	const struct ynode *t, *rules, *g, *ts, *cond, *al;
	int r = 0;

	if (cn->type != YNODE_MAP) {
		lerr(L, cn, "'correlation' must be a map");
		return -EINVAL;
	}
	for (size_t i = 0; i < cn->n; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			known |= strcmp(cn->keys[i]->value, keys[k]) == 0;
		if (!known) {
			lerr(L, cn->keys[i], "unknown correlation key '%s'", cn->keys[i]->value);
			r = -EINVAL;
		}
	}
	c = arena_alloc(&L->rs->arena, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rule->corr = c;
	c->field_slot = -1;
	c->count_slot = -1;

	t = ynode_get(cn, "type");
	if (!t || !is_string(t)) {
		lerr(L, t ? t : cn, "a correlation needs a 'type' (event_count, value_count, value_sum, value_avg, temporal, temporal_ordered)");
		return -EINVAL;
	}
	{
		size_t k = 0;
		for (; k < sizeof(corr_names) / sizeof(corr_names[0]); k++)
			if (strcmp(t->value, corr_names[k]) == 0)
				break;
		if (k == sizeof(corr_names) / sizeof(corr_names[0])) {
			if (strcmp(t->value, "value_percentile") == 0 || strcmp(t->value, "value_median") == 0)
				lerr(L, t, "correlation type '%s' is not supported (value_sum and value_avg are)", t->value);
			else
				lerr(L, t, "unknown correlation type '%s'", t->value);
			return -EINVAL;
		}
		c->type = (enum corr_type)k;
	}

	rules = ynode_get(cn, "rules");
	if (!rules) {
		lerr(L, cn, "a correlation needs 'rules'");
		return -EINVAL;
	}
	if (get_str_list(L, rules, "rules", &c->refs, &c->nrules) < 0)
		return -EINVAL;
	c->ref_lines = arena_alloc(&L->rs->arena, (c->nrules + 1) * sizeof(unsigned));
	c->ref_cols = arena_alloc(&L->rs->arena, (c->nrules + 1) * sizeof(unsigned));
	if (!c->ref_lines || !c->ref_cols)
		return -ENOMEM;
	for (size_t i = 0; i < c->nrules; i++) {
		const struct ynode *at = rules->type == YNODE_SEQ ? rules->items[i] : rules;
		c->ref_lines[i] = at->line;
		c->ref_cols[i] = at->col;
	}
	if ((c->type == CORR_TEMPORAL || c->type == CORR_TEMPORAL_ORDERED) && (c->nrules < 2 || c->nrules > 64)) {
		lerr(L, rules, "a %s correlation needs between 2 and 64 rules", t->value);
		r = -EINVAL;
	}
	if (c->nrules > 64) {
		lerr(L, rules, "a correlation may use at most 64 rules");
		r = -EINVAL;
	}

	g = ynode_get(cn, "group-by");
	if (g && compile_group_by(L, g, &c->group_by, &c->ngroup) < 0)
		r = -EINVAL;

	ts = ynode_get(cn, "timespan");
	if (!ts || !is_string(ts) || timespan_parse(ts->value, &c->timespan) < 0) {
		lerr(L, ts ? ts : cn, "a correlation needs a 'timespan' such as 30s, 10m, 1h or 1d");
		r = -EINVAL;
	}

	cond = ynode_get(cn, "condition");
	if (cond) {
		if (compile_corr_condition(L, c, cond) < 0)
			r = -EINVAL;
	} else if (c->type == CORR_TEMPORAL || c->type == CORR_TEMPORAL_ORDERED) {
		c->cond.has_gte = true;		/* by default every rule must be seen */
		c->cond.gte = (double)c->nrules;
	} else {
		lerr(L, cn, "a %s correlation needs a 'condition'", t->value);
		r = -EINVAL;
	}
	if (c->type == CORR_VALUE_COUNT || c->type == CORR_VALUE_SUM || c->type == CORR_VALUE_AVG) {
		if (!c->field) {
			lerr(L, cond ? cond : cn, "a %s correlation needs 'field' in its condition", t->value);
			r = -EINVAL;
		} else if (field_index_add(&L->rs->fields, c->field, &c->field_slot) < 0) {
			lerr(L, cond, "invalid field name '%s'", c->field);
			r = -EINVAL;
		}
	} else if (c->field) {
		lerr(L, cond, "'field' has no meaning for a %s correlation", t->value);
		r = -EINVAL;
	}

	al = ynode_get(cn, "aliases");
	if (al) {
		struct alias_note *note = arena_alloc(&L->rs->arena, sizeof(*note));
		if (!note)
			return -ENOMEM;
		if (al->type != YNODE_MAP) {
			lerr(L, al, "'aliases' must be a map: alias -> {rule name: field}");
			r = -EINVAL;
		}
		note->rule = rule;
		note->aliases = al;
		note->file = L->file;
		note->next = L->aliases;
		L->aliases = note;
	}
	(void)doc;
	return r;
}

/* ---- documents --------------------------------------------------------- */

static struct rule *new_rule(struct loader *L)
{
	struct rule *rule = arena_alloc(&L->rs->arena, sizeof(*rule));

	if (!rule)
		return NULL;
	rule->level = LEVEL_MEDIUM;
	rule->file = L->file;
	return rule;
}

static int add_rule(struct loader *L, struct rule *rule)
{
	struct ruleset *rs = L->rs;

	if (rs->nrules == L->cap) {
		size_t cap = L->cap, cap2 = L->cap;
		struct rule **nr = array_grow(rs->rules, &cap, rs->nrules + 1, sizeof(*nr), 64);
		size_t *ns;
		if (!nr)
			return -ENOMEM;
		rs->rules = nr;
		ns = array_grow(L->rule_source, &cap2, rs->nrules + 1, sizeof(*ns), 64);
		if (!ns)
			return -ENOMEM;
		L->rule_source = ns;
		L->cap = cap;
	}
	L->rule_source[rs->nrules] = L->source;
	rule->index = rs->nrules;	/* while loading: its slot; resolve() renumbers */
	rs->rules[rs->nrules++] = rule;
	return 0;
}

/* Frees what patterns hold outside the arena (compiled regular expressions).
 * Element tests are released by ruleset_free. */
static void release_alts(struct sel_alt *alts, size_t nalts)
{
	for (size_t a = 0; a < nalts; a++)
		for (size_t t = 0; t < alts[a].ntests; t++)
			for (size_t p = 0; p < alts[a].tests[t].npats; p++)
				pattern_release(&alts[a].tests[t].pats[p]);
}

/* Only the selections as written: merge_or_tests() appends selections whose
 * patterns are copies of theirs (the same regular expressions). */
static void release_rule(struct rule *rule)
{
	for (size_t s = 0; s < rule->det.nwritten; s++)
		release_alts(rule->det.sels[s].alts, rule->det.sels[s].nalts);
}

/* Takes a rule out of the set.  Its slot stays, NULL, so that no index
 * moves while files are loaded; compact_rules() closes the gaps once. */
static void drop_rule(struct loader *L, struct rule *rule)
{
	release_rule(rule);
	L->rs->rules[rule->index] = NULL;
}

/* After the last file: the rules without the gaps drop_rule() left, in
 * load order. */
static void compact_rules(struct loader *L)
{
	struct ruleset *rs = L->rs;
	size_t k = 0;

	for (size_t i = 0; i < rs->nrules; i++) {
		if (!rs->rules[i])
			continue;
		rs->rules[k] = rs->rules[i];
		L->rule_source[k] = L->rule_source[i];
		rs->rules[k]->index = k;
		k++;
	}
	rs->nrules = k;
}

/* Registers a finished rule, replacing one with the same id or name from an
 * earlier source, and refusing a duplicate within the same source.  Every
 * registered rule has an id and a name no other registered rule has, so
 * at most two rules stand in the way: found in the loader's maps, they are
 * dealt with in load order (the first one from this source is the error). */
static int register_rule(struct loader *L, struct rule *rule, const struct ynode *at)
{
	struct ruleset *rs = L->rs;
	struct rule *o[2] = { rule->id ? strmap_get(&L->ids, rule->id) : NULL,
			      rule->name ? strmap_get(&L->names, rule->name) : NULL };
	int r;

	if (o[0] == o[1])
		o[1] = NULL;
	if (!o[0] || (o[1] && o[1]->index < o[0]->index)) {
		struct rule *t = o[0];
		o[0] = o[1];
		o[1] = t;
	}
	for (size_t k = 0; k < 2 && o[k]; k++) {
		bool same_id = rule->id && o[k]->id && strcmp(rule->id, o[k]->id) == 0;

		if (L->rule_source[o[k]->index] == L->source) {
			lerr(L, at, "duplicate rule %s '%s' (also in %s:%u)", same_id ? "id" : "name",
			     same_id ? rule->id : rule->name, o[k]->file, o[k]->line);
			return -EINVAL;
		}
	}
	for (size_t k = 0; k < 2 && o[k]; k++) {
		/* A later source overrides: drop the earlier rule, and the hidden
		 * base rule of a legacy count() rule with it. */
		struct rule *legacy_base = o[k]->kind == RULE_CORRELATION && o[k]->corr && o[k]->corr->legacy ?
						   o[k]->corr->legacy_base : NULL;
		if (o[k]->id && strmap_put(&L->ids, o[k]->id, NULL) < 0)
			return -ENOMEM;
		if (o[k]->name && strmap_put(&L->names, o[k]->name, NULL) < 0)
			return -ENOMEM;
		drop_rule(L, o[k]);
		rs->overridden++;
		if (legacy_base)
			drop_rule(L, legacy_base);
	}
	r = add_rule(L, rule);
	if (r == 0 && rule->id)
		r = strmap_put(&L->ids, rule->id, rule);
	if (r == 0 && rule->name)
		r = strmap_put(&L->names, rule->name, rule);
	return r;
}

static bool logsource_is_cloudtrail(const struct ynode *ls)
{
	const struct ynode *product = ynode_get(ls, "product");
	const struct ynode *service = ynode_get(ls, "service");

	return product && service && is_string(product) && is_string(service) &&
	       strcasecmp(product->value, "aws") == 0 && strcasecmp(service->value, "cloudtrail") == 0;
}

/* `selection | count() by F > N` becomes an event_count or value_count
 * correlation (the rule, with its id) over a hidden base rule. */
static int legacy_aggregation(struct loader *L, struct rule *rule, const struct ynode *detn,
			      const struct ynode *condn, const struct cond_aggregation *ag)
{
	struct arena *a = &L->rs->arena;
	const struct ynode *tf = ynode_get(detn, "timeframe");
	struct rule *base;
	struct correlation *c;

	if (ag->near) {
		lerr(L, condn, "the 'near' aggregation is not supported: write a temporal correlation rule instead");
		return -EINVAL;
	}
	base = new_rule(L);
	c = arena_alloc(a, sizeof(*c));
	if (!base || !c)
		return -ENOMEM;
	if (!tf || !is_string(tf) || timespan_parse(tf->value, &c->timespan) < 0) {
		lerr(L, tf ? tf : condn, "an aggregation (| count()) needs 'timeframe' in the detection, such as 10m");
		return -EINVAL;
	}
	*base = *rule;
	base->kind = RULE_DETECTION;
	base->id = NULL;
	base->name = arena_printf(a, "%s (the events it counts)", rule->id ? rule->id : rule->title);
	base->tests = NULL;
	base->ntests = 0;
	base->throttle = NULL;
	if (!base->name || add_rule(L, base) < 0)
		return -ENOMEM;
	c->legacy_base = base;

	rule->kind = RULE_CORRELATION;
	memset(&rule->det, 0, sizeof(rule->det));
	rule->corr = c;
	c->legacy = true;
	c->type = ag->field ? CORR_VALUE_COUNT : CORR_EVENT_COUNT;
	c->nrules = 1;
	c->refs = arena_alloc(a, sizeof(*c->refs));
	c->ref_lines = arena_alloc(a, sizeof(unsigned));
	c->ref_cols = arena_alloc(a, sizeof(unsigned));
	if (!c->refs || !c->ref_lines || !c->ref_cols)
		return -ENOMEM;
	c->refs[0] = base->name;
	c->ref_lines[0] = condn->line;
	c->ref_cols[0] = condn->col;
	c->field_slot = -1;
	if (ag->field) {
		c->field = ag->field;
		if (field_index_add(&L->rs->fields, c->field, &c->field_slot) < 0) {
			lerr(L, condn, "invalid field name '%s'", c->field);
			return -EINVAL;
		}
	}
	if (ag->by) {
		c->ngroup = 1;
		c->group_by = arena_alloc(a, sizeof(*c->group_by));
		if (!c->group_by)
			return -ENOMEM;
		c->group_by[0] = ag->by;
	}
	if (strcmp(ag->op, ">") == 0) {
		c->cond.has_gt = true;
		c->cond.gt = ag->value;
	} else if (strcmp(ag->op, ">=") == 0) {
		c->cond.has_gte = true;
		c->cond.gte = ag->value;
	} else if (strcmp(ag->op, "<") == 0) {
		c->cond.has_lt = true;
		c->cond.lt = ag->value;
	} else if (strcmp(ag->op, "<=") == 0) {
		c->cond.has_lte = true;
		c->cond.lte = ag->value;
	} else {
		c->cond.has_eq = true;
		c->cond.eq = ag->value;
	}
	return 0;
}

/* FNV-1a over a document's tree: node kinds, keys and values, not their
 * places, so a rule moved in its file or re-indented keeps its fingerprint. */
static uint64_t hash_node(uint64_t h, const struct ynode *n)
{
	unsigned char kind = (unsigned char)n->type;

	h = fnv1a(h, &kind, 1);
	if (n->type == YNODE_SCALAR) {
		h = fnv1a(h, &n->len, sizeof(n->len));
		h = fnv1a(h, n->value, n->len);
		return fnv1a(h, &n->plain, sizeof(n->plain));
	}
	h = fnv1a(h, &n->n, sizeof(n->n));
	for (size_t i = 0; i < n->n; i++) {
		if (n->type == YNODE_MAP)
			h = hash_node(h, n->keys[i]);
		h = hash_node(h, n->items[i]);
	}
	return h;
}

static int load_document(struct loader *L, const struct ydoc *doc)
{
	const struct ynode *root = doc->root, *n, *ls, *detn, *corrn, *filtn, *ext;
	struct rule *rule;
	int r = 0;

	if (!root)
		return 0;	/* an empty document, e.g. a trailing "---" */
	if (root->type != YNODE_MAP) {
		lerr(L, root, "a rule must be a YAML map");
		return -EINVAL;
	}
	if (ynode_get(root, "action")) {
		lerr(L, ynode_get(root, "action"),
		     "Sigma 1 rule collections ('action: global/reset/repeat') are not supported: write each rule as a whole document");
		return -EINVAL;
	}
	detn = ynode_get(root, "detection");
	corrn = ynode_get(root, "correlation");
	filtn = ynode_get(root, "filter");
	if (!!detn + !!corrn + !!filtn != 1) {
		lerr(L, root, detn || corrn || filtn ?
			     "a document has exactly one of 'detection', 'correlation' or 'filter'" :
			     "not a Sigma rule: no 'detection', 'correlation' or 'filter'");
		return -EINVAL;
	}
	rule = new_rule(L);
	if (!rule)
		return -ENOMEM;
	L->reasons = NULL;
	L->count_values = NULL;
	L->seen_before = NULL;
	rule->line = root->line;
	rule->fingerprint = hash_node(FNV1A_OFFSET, root);
	rule->kind = detn ? RULE_DETECTION : corrn ? RULE_CORRELATION : RULE_FILTER;
	rule->title = get_str(L, root, "title", true);
	rule->id = get_str(L, root, "id", false);
	rule->name = get_str(L, root, "name", false);
	rule->description = get_str(L, root, "description", false);
	rule->status = get_str(L, root, "status", false);
	if (!rule->title)
		r = -EINVAL;
	if ((n = ynode_get(root, "level"))) {
		if (!is_string(n) || level_from_string(n->value, &rule->level) < 0) {
			lerr(L, n, "'level' must be informational, low, medium, high or critical");
			r = -EINVAL;
		}
	}
	if ((n = ynode_get(root, "tags")) && get_str_list(L, n, "tags", &rule->tags, &rule->ntags) < 0)
		r = -EINVAL;
	if (rule->kind != RULE_FILTER && !rule->id && !rule->name) {
		lerr(L, root, "a rule needs an 'id' (alerts and overrides refer to it)");
		r = -EINVAL;
	}

	if (rule->kind != RULE_CORRELATION) {
		ls = ynode_get(root, "logsource");
		if (!ls || ls->type != YNODE_MAP) {
			lerr(L, ls ? ls : root, "a rule needs a 'logsource' map (product: aws, service: cloudtrail)");
			return -EINVAL;
		}
		if (!logsource_is_cloudtrail(ls)) {
			L->rs->skipped_logsource++;
			return 0;
		}
	}

	if ((ext = ynode_get(root, "trailwatch"))) {
		int e = compile_extension(L, rule, ext);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}

	if (rule->kind == RULE_DETECTION) {
		struct cond_aggregation ag;
		const struct ynode *condn = NULL;
		int e = compile_detection(L, detn, NULL, &rule->det, &ag, &condn);

		if (e < 0)
			r = e;
		else if (ag.present)
			r = legacy_aggregation(L, rule, detn, condn, &ag);
		if (e == 0 && L->reasons && ag.present) {
			lerr(L, L->reasons, "a rule with an aggregation (| count() ...) cannot give reasons");
			r = -EINVAL;
		} else if (e == 0 && L->reasons) {
			e = compile_reasons(L, rule, L->reasons);
			if (e < 0)
				r = r == -ENOMEM ? r : e;
		}
	} else if (rule->kind == RULE_CORRELATION) {
		int e = compile_correlation(L, rule, root, corrn);
		if (e < 0)
			r = e;
		if (e == 0 && L->count_values) {
			const struct ynode *cv = L->count_values;
			if (rule->corr->type != CORR_EVENT_COUNT) {
				lerr(L, cv, "'count_values' needs an event_count correlation (it changes what an event counts for)");
				r = -EINVAL;
			} else if (field_index_add(&L->rs->fields, cv->value, &rule->corr->count_slot) < 0) {
				lerr(L, cv, "invalid field name '%s'", cv->value);
				r = -EINVAL;
			}
		}
		if (e == 0 && L->seen_before) {
			e = compile_seen_before(L, rule->corr, L->seen_before);
			if (e < 0)
				r = r == -ENOMEM ? r : e;
		}
		if ((n = ynode_get(root, "generate")) || (n = ynode_get(corrn, "generate"))) {
			if (!rule->corr || ynode_bool(n, &rule->corr->generate) < 0) {
				lerr(L, n, "'generate' must be true or false");
				r = r == -ENOMEM ? r : -EINVAL;
			}
		}
	} else {
		struct cond_aggregation ag;
		const struct ynode *condn = NULL, *refs;
		int e;

		if (filtn->type != YNODE_MAP) {
			lerr(L, filtn, "'filter' must be a map with rules, selections and a condition");
			return -EINVAL;
		}
		refs = ynode_get(filtn, "rules");
		if (refs) {
			rule->filter_line = refs->line;
			rule->filter_col = refs->col;
		}
		if (!refs) {
			lerr(L, filtn, "a filter needs 'rules': the ids or names of the rules it tunes, or 'any'");
			r = -EINVAL;
		} else if (refs->type == YNODE_SCALAR && is_string(refs) && strcasecmp(refs->value, "any") == 0) {
			rule->filter_all = true;
		} else if (get_str_list(L, refs, "rules", &rule->filter_refs, &rule->nfilter_refs) < 0) {
			r = -EINVAL;
		}
		e = compile_detection(L, filtn, "rules", &rule->det, &ag, &condn);
		if (e < 0)
			r = e;
		else if (ag.present) {
			lerr(L, condn, "a filter condition cannot have an aggregation");
			r = -EINVAL;
		}
	}
	if (r == 0)
		r = register_rule(L, rule, root);
	/* A rule that is not registered must give back what it compiled
	 * outside the arena (regular expressions). */
	if (r < 0)
		release_rule(rule);
	return r;
}

/* Remembers the id and name of a document that failed to load, so that a
 * reference to it is not reported a second time as an unknown rule. */
static int note_broken(struct loader *L, const struct ynode *root)
{
	static const char *const keys[] = { "id", "name" };

	for (size_t k = 0; k < 2; k++) {
		const struct ynode *n = ynode_get(root, keys[k]);
		if (!is_string(n))
			continue;
		const char **b = array_grow(L->broken, &L->capbroken, L->nbroken + 1, sizeof(*b), 16);
		if (!b)
			return -ENOMEM;
		L->broken = b;
		L->broken[L->nbroken++] = n->value;
	}
	return 0;
}

static bool is_broken(const struct loader *L, const char *ref)
{
	for (size_t i = 0; i < L->nbroken; i++)
		if (strcmp(L->broken[i], ref) == 0)
			return true;
	return false;
}

static int keep_yfile(struct ruleset *rs, struct yfile *yf)
{
	struct yfile **n = array_grow(rs->yfiles, &rs->capyfiles, rs->nyfiles + 1, sizeof(*n), 16);

	if (!n)
		return -ENOMEM;
	rs->yfiles = n;
	rs->yfiles[rs->nyfiles++] = yf;
	return 0;
}

static int load_file(struct loader *L, const char *path, const char *data, size_t len)
{
	struct yfile *yf = NULL;
	int r;

	L->file = arena_strdup(&L->rs->arena, path);
	if (!L->file)
		return -ENOMEM;
	if (data)
		r = yfile_load_buffer(path, data, len, &yf, L->d);
	else
		r = yfile_load(path, &yf, L->d);
	if (r == -EINVAL) {
		L->errors++;
		return r;
	}
	if (r < 0) {
		diag_add(L->d, path, 0, 0, "cannot read: %s", strerror(-r));
		L->errors++;
		return r;
	}
	L->rs->nfiles++;
	for (size_t i = 0; i < yf->ndocs; i++) {
		r = load_document(L, &yf->docs[i]);
		if (r == -ENOMEM)
			break;
		if (r < 0 && note_broken(L, yf->docs[i].root) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	/* Rule strings point into the tree: the rule set keeps it. */
	if (keep_yfile(L->rs, yf) < 0) {
		yfile_free(yf);
		return -ENOMEM;
	}
	return r == -ENOMEM ? r : 0;
}

/* ---- resolution -------------------------------------------------------- */

/* ---- resolution -------------------------------------------------------- */

struct rule *ruleset_find(const struct ruleset *rs, const char *ref)
{
	struct rule *by_id = strmap_get(&rs->by_id, ref), *by_name = strmap_get(&rs->by_name, ref);

	if (by_id && by_name)
		return by_id->index < by_name->index ? by_id : by_name;
	return by_id ? by_id : by_name;
}

/* ruleset_find's maps: the first rule of each id and each name (a hidden
 * legacy base rule's name is not checked for duplicates).  -ENOMEM. */
static int index_rules(struct ruleset *rs)
{
	for (size_t i = 0; i < rs->nrules; i++) {
		struct rule *r = rs->rules[i];
		if (r->id && !strmap_get(&rs->by_id, r->id) && strmap_put(&rs->by_id, r->id, r) < 0)
			return -ENOMEM;
		if (r->name && !strmap_get(&rs->by_name, r->name) && strmap_put(&rs->by_name, r->name, r) < 0)
			return -ENOMEM;
	}
	return 0;
}

static const struct alias_note *find_aliases(const struct loader *L, const struct rule *corr)
{
	for (const struct alias_note *n = L->aliases; n; n = n->next)
		if (n->rule == corr)
			return n;
	return NULL;
}

/* The field a correlation groups base rule `base` by, for group-by name g. */
static const char *group_field(struct loader *L, const struct rule *corr, const struct rule *base,
			       const char *g)
{
	const struct alias_note *note = find_aliases(L, corr);
	const struct ynode *al, *m;

	if (!note || note->aliases->type != YNODE_MAP || !(al = ynode_get(note->aliases, g)))
		return g;
	if (al->type != YNODE_MAP) {
		lerr(L, al, "alias '%s' must map rule names to field names", g);
		return NULL;
	}
	m = (base->name ? ynode_get(al, base->name) : NULL);
	if (!m && base->id)
		m = ynode_get(al, base->id);
	if (!m || !is_string(m)) {
		lerr(L, al, "alias '%s' has no field for rule '%s'", g, base->name ? base->name : base->id);
		return NULL;
	}
	return m->value;
}

/* The index of (slot, count) among base's extra values, added if new. */
static int add_extra_kind(struct loader *L, struct rule *base, int slot, bool count, int *ret_index)
{
	bool *c;
	int *n;

	for (size_t i = 0; i < base->nextra; i++) {
		if (base->extra_slots[i] == slot && base->extra_counts[i] == count) {
			*ret_index = (int)i;
			return 0;
		}
	}
	n = arena_alloc(&L->rs->arena, (base->nextra + 1) * sizeof(*n));
	c = arena_alloc(&L->rs->arena, (base->nextra + 1) * sizeof(*c));
	if (!n || !c)
		return -ENOMEM;
	if (base->nextra) {
		memcpy(n, base->extra_slots, base->nextra * sizeof(*n));
		memcpy(c, base->extra_counts, base->nextra * sizeof(*c));
	}
	n[base->nextra] = slot;
	c[base->nextra] = count;
	base->extra_slots = n;
	base->extra_counts = c;
	*ret_index = (int)base->nextra++;
	return 0;
}

static int add_extra(struct loader *L, struct rule *base, int slot, int *ret_index)
{
	return add_extra_kind(L, base, slot, false, ret_index);
}

static int add_consumer(struct loader *L, struct rule *base, struct rule *corr)
{
	struct rule **n = arena_alloc(&L->rs->arena, (base->nconsumers + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	if (base->nconsumers)
		memcpy(n, base->consumers, base->nconsumers * sizeof(*n));
	n[base->nconsumers++] = corr;
	base->consumers = n;
	return 0;
}

/* The position of field among a correlation's group-by names, or -1. */
static int group_position(const struct correlation *c, const char *field)
{
	for (size_t g = 0; g < c->ngroup; g++)
		if (strcmp(c->group_by[g], field) == 0)
			return (int)g;
	return -1;
}

/* A chained correlation (Sigma: a correlation's rules may be correlations):
 * each alert of the inner one, base, is one event for the outer one, rule,
 * and carries the inner group's values.  So what the outer groups by and
 * counts must be among the inner's group-by fields: the match it sees has
 * those values as its extra values, in the inner's group-by order. */
static int chain_fields(struct loader *L, struct rule *rule, size_t i, const struct rule *base)
{
	struct correlation *c = rule->corr;
	int r = 0;

	for (size_t g = 0; g < c->ngroup; g++) {
		const char *field = group_field(L, rule, base, c->group_by[g]);
		int at;

		if (!field)
			return -EINVAL;
		at = group_position(base->corr, field);
		if (at < 0) {
			diag_add(L->d, rule->file, c->ref_lines[i], c->ref_cols[i],
				 "correlation '%s' groups by '%s', which correlation '%s' does not group by",
				 rule_ref(rule), field, c->refs[i]);
			L->errors++;
			r = -EINVAL;
			continue;
		}
		c->group_slots[i * c->ngroup + g] = -1;
		c->group_extra[i * c->ngroup + g] = at;
	}
	c->field_extra[i] = -1;
	if (c->field) {
		c->field_extra[i] = group_position(base->corr, c->field);
		if (c->field_extra[i] < 0) {
			diag_add(L->d, rule->file, c->ref_lines[i], c->ref_cols[i],
				 "correlation '%s' counts '%s', which correlation '%s' does not group by",
				 rule_ref(rule), c->field, c->refs[i]);
			L->errors++;
			r = -EINVAL;
		}
	}
	return r;
}

/* Chains of correlations must end in detection rules: depth first over the
 * correlations, state[] per rule index as in close_supersedes(). */
static int check_chain(struct loader *L, const struct rule *rule, unsigned char *state)
{
	if (rule->kind != RULE_CORRELATION || !rule->corr->rules || state[rule->index] == 2)
		return 0;
	if (state[rule->index] == 1) {
		diag_add(L->d, rule->file, rule->line, 1, "correlations refer to each other in a circle (through '%s')",
			 rule_ref(rule));
		L->errors++;
		return -EINVAL;
	}
	state[rule->index] = 1;
	for (size_t i = 0; i < rule->corr->nrules; i++) {
		int e = rule->corr->rules[i] ? check_chain(L, rule->corr->rules[i], state) : 0;
		if (e < 0)
			return e;
	}
	state[rule->index] = 2;
	return 0;
}

/* trailwatch.seen_before's rule: a detection rule that is not one of the
 * correlation's own, whose matches carry the group-by values and the
 * counted field (aliases apply as to the others). */
static int resolve_seen_before(struct loader *L, struct rule *rule)
{
	struct correlation *c = rule->corr;
	struct rule *seen = ruleset_find(L->rs, c->seen_ref);

	if (!seen || seen->kind != RULE_DETECTION) {
		if (!seen && is_broken(L, c->seen_ref))
			return -EINVAL;
		diag_add(L->d, rule->file, c->seen_line, c->seen_col,
			 seen ? "seen_before refers to '%s', which is not a detection rule" :
				"seen_before refers to unknown rule '%s'", c->seen_ref);
		L->errors++;
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nrules; i++) {
		if (c->rules[i] == seen) {
			diag_add(L->d, rule->file, c->seen_line, c->seen_col,
				 "seen_before names '%s', which the correlation counts already", c->seen_ref);
			L->errors++;
			return -EINVAL;
		}
	}
	c->seen_group_extra = arena_alloc(&L->rs->arena, (c->ngroup + 1) * sizeof(int));
	if (!c->seen_group_extra)
		return -ENOMEM;
	for (size_t g = 0; g < c->ngroup; g++) {
		const char *field = group_field(L, rule, seen, c->group_by[g]);
		int slot;

		if (!field)
			return -EINVAL;
		if (field_index_add(&L->rs->fields, field, &slot) < 0) {
			diag_add(L->d, rule->file, rule->line, 0, "invalid group-by field '%s'", field);
			L->errors++;
			return -EINVAL;
		}
		if (add_extra(L, seen, slot, &c->seen_group_extra[g]) < 0)
			return -ENOMEM;
	}
	if (add_extra(L, seen, c->field_slot, &c->seen_field_extra) < 0)
		return -ENOMEM;
	c->seen_rule = seen;
	return add_consumer(L, seen, rule);
}

static int resolve_correlation(struct loader *L, struct rule *rule)
{
	struct correlation *c = rule->corr;
	struct arena *a = &L->rs->arena;
	int r = 0;

	L->file = rule->file;
	c->rules = arena_alloc(a, (c->nrules + 1) * sizeof(*c->rules));
	c->group_slots = arena_alloc(a, (c->nrules * c->ngroup + 1) * sizeof(int));
	c->group_extra = arena_alloc(a, (c->nrules * c->ngroup + 1) * sizeof(int));
	c->field_extra = arena_alloc(a, (c->nrules + 1) * sizeof(int));
	c->count_extra = arena_alloc(a, (c->nrules + 1) * sizeof(int));
	if (!c->rules || !c->group_slots || !c->group_extra || !c->field_extra || !c->count_extra)
		return -ENOMEM;
	for (size_t i = 0; i < c->nrules; i++) {
		struct rule *base = ruleset_find(L->rs, c->refs[i]);

		if (!base || base->kind == RULE_FILTER) {
			if (!is_broken(L, c->refs[i])) {
				diag_add(L->d, rule->file, c->ref_lines[i], c->ref_cols[i],
					 "correlation refers to unknown rule '%s'", c->refs[i]);
				L->errors++;
			}
			r = -EINVAL;
			continue;
		}
		if (base == rule) {
			diag_add(L->d, rule->file, c->ref_lines[i], c->ref_cols[i],
				 "correlation '%s' refers to itself", c->refs[i]);
			L->errors++;
			r = -EINVAL;
			continue;
		}
		for (size_t k = 0; k < i; k++) {
			if (c->rules[k] == base) {
				diag_add(L->d, rule->file, c->ref_lines[i], c->ref_cols[i],
					 "rule '%s' is listed twice", c->refs[i]);
				L->errors++;
				r = -EINVAL;
			}
		}
		c->rules[i] = base;
		if (add_consumer(L, base, rule) < 0)
			return -ENOMEM;
		if (base->kind == RULE_CORRELATION) {
			int e = chain_fields(L, rule, i, base);
			if (c->count_slot >= 0 && e != -ENOMEM) {
				diag_add(L->d, rule->file, c->ref_lines[i], c->ref_cols[i],
					 "trailwatch.count_values counts the values of detection rules' events, and '%s' is a correlation",
					 c->refs[i]);
				L->errors++;
				e = -EINVAL;
			}
			if (e == -ENOMEM)
				return e;
			if (e < 0)
				r = e;
			continue;
		}
		for (size_t g = 0; g < c->ngroup; g++) {
			const char *field = group_field(L, rule, base, c->group_by[g]);
			int slot;

			if (!field) {
				r = -EINVAL;
				continue;
			}
			if (field_index_add(&L->rs->fields, field, &slot) < 0) {
				diag_add(L->d, rule->file, rule->line, 0, "invalid group-by field '%s'", field);
				L->errors++;
				r = -EINVAL;
				continue;
			}
			c->group_slots[i * c->ngroup + g] = slot;
			if (add_extra(L, base, slot, &c->group_extra[i * c->ngroup + g]) < 0)
				return -ENOMEM;
		}
		c->field_extra[i] = -1;
		if (c->field_slot >= 0 && add_extra(L, base, c->field_slot, &c->field_extra[i]) < 0)
			return -ENOMEM;
		c->count_extra[i] = -1;
		if (c->count_slot >= 0 && add_extra_kind(L, base, c->count_slot, true, &c->count_extra[i]) < 0)
			return -ENOMEM;
	}
	if (c->seen_ref) {
		int e = resolve_seen_before(L, rule);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}
	return r;
}

static int attach_filter(struct loader *L, struct rule *target, const struct rule *filter)
{
	const struct rule **n = arena_alloc(&L->rs->arena, (target->nfilters + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	if (target->nfilters)
		memcpy(n, target->filters, target->nfilters * sizeof(*n));
	n[target->nfilters++] = filter;
	target->filters = n;
	return 0;
}

/* Attaches filter f to the detection rules under correlation t, through
 * chained correlations (whose circles check_chain() reports; depth bounds
 * the walk meanwhile).  Each detection rule gets f once. */
static int attach_to_bases(struct loader *L, const struct rule *t, const struct rule *f, size_t depth)
{
	for (size_t i = 0; i <= t->corr->nrules && depth <= L->rs->nrules; i++) {
		/* ... and the seen_before rule, after the counted ones */
		struct rule *b = i < t->corr->nrules ? t->corr->rules[i] : t->corr->seen_rule;
		bool has = false;

		if (!b)
			continue;
		if (b->kind == RULE_CORRELATION) {
			if (b->corr && attach_to_bases(L, b, f, depth + 1) < 0)
				return -ENOMEM;
			continue;
		}
		for (size_t k = 0; k < b->nfilters; k++)
			has |= b->filters[k] == f;
		if (!has && attach_filter(L, b, f) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int resolve_filter(struct loader *L, struct rule *f)
{
	struct ruleset *rs = L->rs;
	int r = 0;

	if (f->filter_all) {
		for (size_t i = 0; i < rs->nrules; i++)
			if (rs->rules[i]->kind == RULE_DETECTION && attach_filter(L, rs->rules[i], f) < 0)
				return -ENOMEM;
		return 0;
	}
	for (size_t k = 0; k < f->nfilter_refs; k++) {
		struct rule *t = ruleset_find(rs, f->filter_refs[k]);

		if (!t) {
			if (!is_broken(L, f->filter_refs[k])) {
				diag_add(L->d, f->file, f->filter_line, f->filter_col, "filter '%s' refers to unknown rule '%s'",
					 f->title ? f->title : "", f->filter_refs[k]);
				L->errors++;
			}
			r = -EINVAL;
			continue;
		}
		if (t->kind == RULE_CORRELATION && t->corr) {
			/* A filter on a correlation tunes the events it counts. */
			if (attach_to_bases(L, t, f, 0) < 0)
				return -ENOMEM;
			continue;
		}
		if (t->kind != RULE_DETECTION) {
			diag_add(L->d, f->file, f->filter_line, f->filter_col, "filter '%s' refers to '%s', which is not a detection rule",
				 f->title ? f->title : "", f->filter_refs[k]);
			L->errors++;
			r = -EINVAL;
			continue;
		}
		if (attach_filter(L, t, f) < 0)
			return -ENOMEM;
	}
	return r;
}

/* The rules that trailwatch.supersedes names, as written (no closure yet). */
static int resolve_supersedes(struct loader *L, struct rule *rule)
{
	const struct rule **out = arena_alloc(&L->rs->arena, (rule->nsupersede_refs + 1) * sizeof(*out));
	int r = 0;

	if (!out)
		return -ENOMEM;
	for (size_t k = 0; k < rule->nsupersede_refs; k++) {
		const char *ref = rule->supersede_refs[k];
		struct rule *t = ruleset_find(L->rs, ref);
		bool dup = false;

		if (!t) {
			if (!is_broken(L, ref)) {
				diag_add(L->d, rule->file, rule->supersede_line, rule->supersede_col,
					 "rule '%s' supersedes unknown rule '%s'", rule_ref(rule), ref);
				L->errors++;
			}
			r = -EINVAL;
			continue;
		}
		if (t->kind != RULE_DETECTION || t == rule) {
			diag_add(L->d, rule->file, rule->supersede_line, rule->supersede_col,
				 t == rule ? "rule '%s' cannot supersede itself" :
					     "rule '%s' supersedes '%s', which is not a detection rule",
				 rule_ref(rule), ref);
			L->errors++;
			r = -EINVAL;
			continue;
		}
		for (size_t i = 0; i < rule->nsupersedes; i++)
			dup |= out[i] == t;
		if (!dup)
			out[rule->nsupersedes++] = t;
	}
	rule->supersedes = out;
	return r;
}

/* Closes rule->supersedes over chains, depth first; state[] per rule index:
 * 0 not seen, 1 on the current path (seeing it again is a circle), 2 done. */
static int close_supersedes(struct loader *L, struct rule *rule, unsigned char *state)
{
	const struct rule **out;
	size_t cap, n = 0;

	if (state[rule->index] == 2)
		return 0;
	if (state[rule->index] == 1) {
		diag_add(L->d, rule->file, rule->supersede_line, rule->supersede_col,
			 "rules supersede each other in a circle (through '%s')", rule_ref(rule));
		L->errors++;
		return -EINVAL;
	}
	state[rule->index] = 1;
	cap = rule->nsupersedes;
	for (size_t i = 0; i < rule->nsupersedes; i++) {
		int e = close_supersedes(L, (struct rule *)rule->supersedes[i], state);
		if (e < 0)
			return e;
		cap += rule->supersedes[i]->nsupersedes;
	}
	out = arena_alloc(&L->rs->arena, (cap + 1) * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < rule->nsupersedes; i++) {
		const struct rule *d = rule->supersedes[i];
		for (size_t j = 0; j <= d->nsupersedes; j++) {
			const struct rule *t = j == 0 ? d : d->supersedes[j - 1];
			bool dup = t == rule;
			for (size_t k = 0; k < n && !dup; k++)
				dup = out[k] == t;
			if (!dup)
				out[n++] = t;
		}
	}
	rule->supersedes = out;
	rule->nsupersedes = n;
	state[rule->index] = 2;
	return 0;
}

/* Moves the tests on slot to the end of each alternative, keeping the order
 * of the others.  Used for eventSource: the prefilter has matched it already
 * for nearly every record that meets a rule (CloudTrail has a few dozen
 * services), while a rule's other tests mostly fail at once.  Tests have no
 * side effects, so the order changes nothing but speed. */
static void tests_last(struct detection *det, int slot)
{
	for (size_t s = 0; s < det->nsels; s++) {
		for (size_t a = 0; a < det->sels[s].nalts; a++) {
			struct sel_alt *alt = &det->sels[s].alts[a];
			size_t left = alt->ntests;

			for (size_t i = 0; i < left;) {
				struct field_test t = alt->tests[i];

				if (t.slot != slot) {
					i++;
					continue;
				}
				memmove(&alt->tests[i], &alt->tests[i + 1], (alt->ntests - i - 1) * sizeof(t));
				alt->tests[alt->ntests - 1] = t;
				left--;
			}
		}
	}
}

static int resolve(struct loader *L)
{
	struct ruleset *rs = L->rs;
	unsigned char *state;
	size_t nd = 0;
	int r = 0, e;

	for (size_t i = 0; i < rs->nrules; i++) {
		if (rs->rules[i]->kind != RULE_CORRELATION)
			continue;
		e = resolve_correlation(L, rs->rules[i]);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}
	for (size_t i = 0; i < rs->nrules; i++) {
		if (rs->rules[i]->kind != RULE_FILTER)
			continue;
		e = resolve_filter(L, rs->rules[i]);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}
	rs->detections = calloc(rs->nrules + 1, sizeof(*rs->detections));
	if (!rs->detections)
		return -ENOMEM;
	for (size_t i = 0; i < rs->nrules; i++) {
		struct rule *d = rs->rules[i];

		d->index = i;
		if (d->throttle && d->kind == RULE_DETECTION) {
			struct throttle *th = d->throttle;
			th->group_extra = arena_alloc(&rs->arena, (th->ngroup + 1) * sizeof(int));
			if (!th->group_extra)
				return -ENOMEM;
			for (size_t g = 0; g < th->ngroup; g++)
				if (add_extra(L, d, th->group_slots[g], &th->group_extra[g]) < 0)
					return -ENOMEM;
		}
		if (d->kind == RULE_DETECTION || d->kind == RULE_FILTER)
			tests_last(&d->det, rs->slots.event_source);
		if (d->kind == RULE_FILTER)
			continue;
		d->emits = d->nconsumers == 0;
		for (size_t k = 0; k < d->nconsumers; k++)
			d->emits |= d->consumers[k]->corr->generate;
		if (d->kind == RULE_DETECTION)
			rs->detections[nd++] = d;
	}
	rs->ndetections = nd;
	/* Two depth-first walks over the rules, each with its own marks. */
	state = calloc(rs->nrules + 1, 1);
	if (!state)
		return -ENOMEM;
	e = 0;
	for (size_t i = 0; i < rs->nrules && e == 0; i++)
		e = check_chain(L, rs->rules[i], state);
	if (e < 0)
		r = e;
	e = 0;
	for (size_t i = 0; i < rs->nrules && e != -ENOMEM; i++)
		if (rs->rules[i]->nsupersede_refs && (e = resolve_supersedes(L, rs->rules[i])) < 0)
			r = e;
	memset(state, 0, rs->nrules + 1);
	for (size_t i = 0; i < rs->nrules && r == 0; i++)
		if (rs->rules[i]->nsupersedes)
			r = close_supersedes(L, rs->rules[i], state);
	free(state);
	return r;
}

static bool is_rule_file(const char *path, void *ctx)
{
	size_t n = strlen(path);

	(void)ctx;
	return (n > 4 && strcmp(path + n - 4, ".yml") == 0) || (n > 5 && strcmp(path + n - 5, ".yaml") == 0);
}

static int add_alert_slots(struct ruleset *rs)
{
	static const struct {
		const char *path;
		size_t off;
	} std[] = {
		{ "eventID", offsetof(struct alert_slots, event_id) },
		{ "eventTime", offsetof(struct alert_slots, event_time) },
		{ "eventName", offsetof(struct alert_slots, event_name) },
		{ "eventSource", offsetof(struct alert_slots, event_source) },
		{ "awsRegion", offsetof(struct alert_slots, region) },
		{ "recipientAccountId", offsetof(struct alert_slots, account) },
		{ "userIdentity.accountId", offsetof(struct alert_slots, user_account) },
		{ "userIdentity.arn", offsetof(struct alert_slots, principal_arn) },
		{ "userIdentity.type", offsetof(struct alert_slots, principal_type) },
		{ "userIdentity.invokedBy", offsetof(struct alert_slots, principal_invoked_by) },
		{ "sourceIPAddress", offsetof(struct alert_slots, source_ip) },
		{ "userAgent", offsetof(struct alert_slots, user_agent) },
		{ "requestParameters.bucketName", offsetof(struct alert_slots, bucket) },
		{ "requestParameters.key", offsetof(struct alert_slots, object_key) },
		{ "errorCode", offsetof(struct alert_slots, error_code) },
	};

	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++) {
		int r = field_index_add(&rs->fields, std[i].path, (int *)((char *)&rs->slots + std[i].off));
		if (r < 0)
			return r;
	}
	return 0;
}

int ruleset_load(const struct rule_source *sources, size_t nsources,
		 const struct rule_lists *lists, struct ruleset **ret, struct diag *d)
{
	struct ruleset *rs;
	struct loader L;
	int r = 0;

	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	arena_init(&rs->arena);
	field_index_init(&rs->fields);
	memset(&L, 0, sizeof(L));
	L.rs = rs;
	L.fields = &rs->fields;
	L.d = d;
	L.lists = lists;
	r = add_alert_slots(rs);
	if (r < 0)
		goto fail;

	for (size_t s = 0; s < nsources; s++) {
		const struct rule_source *src = &sources[s];
		struct pathlist files = { 0 };
		struct walk_skips unread = { 0 };
		char err[512];

		L.source = s;
		if (src->files) {
			for (size_t i = 0; i < src->nfiles; i++) {
				r = load_file(&L, src->files[i].name, src->files[i].data, src->files[i].len);
				if (r == -ENOMEM)
					goto fail;
			}
			continue;
		}
		r = walk_files(src->path, is_rule_file, NULL, &files, &unread, err, sizeof(err));
		/* a rule directory must be read whole: what could not be read is an error */
		for (size_t i = 0; i < unread.n; i++)
			diag_add(d, unread.v[i].path, 0, 0, "cannot read rules: %s", unread.v[i].why);
		if (unread.dropped)
			diag_add(d, src->path, 0, 0, "cannot read rules: %zu more entries", unread.dropped);
		L.errors += unread.n + unread.dropped;
		walk_skips_free(&unread);
		if (r == -ENOENT && src->optional) {
			pathlist_free(&files);
			continue;
		}
		if (r < 0) {
			diag_add(d, src->path, 0, 0, "cannot read rules: %s", err);
			L.errors++;
			pathlist_free(&files);
			continue;
		}
		for (size_t i = 0; i < files.n; i++) {
			r = load_file(&L, files.paths[i], NULL, 0);
			if (r == -ENOMEM) {
				pathlist_free(&files);
				goto fail;
			}
		}
		pathlist_free(&files);
	}
	compact_rules(&L);
	r = index_rules(rs);
	if (r < 0)
		goto fail;
	/* Resolve even after errors, so that every reference problem is
	 * reported in the same run (references to broken rules are not). */
	r = resolve(&L);
	if (r == -ENOMEM)
		goto fail;
	/* Every field is known now: give the scanner its lookup tables. */
	r = field_index_finish(&rs->fields);
	for (size_t i = 0; i < rs->nelements && r == 0; i++)
		r = field_index_finish(&rs->elements[i]->fields);
	if (r < 0)
		goto fail;
	if (L.errors) {
		r = -EINVAL;
		goto fail;
	}
	free(L.rule_source);
	free(L.broken);
	strmap_free(&L.ids);
	strmap_free(&L.names);
	*ret = rs;
	return 0;
fail:
	free(L.rule_source);
	free(L.broken);
	strmap_free(&L.ids);
	strmap_free(&L.names);
	ruleset_free(rs);
	return r < 0 ? r : -EINVAL;
}

void ruleset_free(struct ruleset *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->nrules; i++)
		if (rs->rules[i])	/* NULL: dropped by a half-done load */
			release_rule(rs->rules[i]);
	/* Element tests belong to the rule set, even those of dropped rules. */
	for (size_t i = 0; i < rs->nelements; i++) {
		struct element_test *el = rs->elements[i];
		release_alts(el->alts, el->nalts);
		field_index_free(&el->fields);
	}
	free(rs->elements);
	for (size_t i = 0; i < rs->nyfiles; i++)
		yfile_free(rs->yfiles[i]);
	free(rs->yfiles);
	free(rs->rules);
	free(rs->detections);
	strmap_free(&rs->by_id);
	strmap_free(&rs->by_name);
	field_index_free(&rs->fields);
	arena_free(&rs->arena);
	free(rs);
}
