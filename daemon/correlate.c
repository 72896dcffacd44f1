/* correlate.c: correlation windows and alert throttles (see correlate.h).
 *
 * Both kinds of state are kept per rule in a hash table of groups keyed by
 * the group-by values joined with 0x1f.  A correlation group holds the
 * time-sorted entries of its window; a throttle group holds the start of its
 * window, the number of matches in it, a sample of their event ids and a
 * copy of the first held-back match (for the summary alert).
 */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/array.h"
#include "trailwatch/correlate.h"
#include "trailwatch/hash.h"

#define SAMPLE_IDS 10
/* Event ids this long or longer are left out of the sample (CloudTrail's are
 * 36-character UUIDs): the bound gives every group the same size, with the
 * sample inside it. */
#define SAMPLE_ID_MAX 64
/* Seconds of event time between expiry sweeps.  A group lives at least
 * its timespan plus the lateness (15 minutes by default), so a sweep every
 * 5 minutes frees memory soon enough; throttle summaries go out up to this
 * much event time after their window (plus lateness) closed. */
#define SWEEP_EVERY 300
#define MAX_GROUP_KEY 4096
/* Live groups looked at to choose the one to evict when a correlation's
 * table is full (correlation.max_groups), as Redis samples keys for its
 * LRU: a group is evicted only if it counts least among them all, so one
 * that holds more than most is practically never chosen.  A scan of all
 * would cost 100,000 steps per new group during a flood. */
#define EVICT_SAMPLE 16

/* One second (and, for value_count and temporal, one key) of a window.
 * sum_before/count_before are the totals of the entries before this one,
 * counted from an origin that trim() moves now and then, so that the
 * measure of any range of entries is a difference, not a loop. */
struct centry {
	int64_t t;
	uint64_t key;
	double amount;
	uint32_t count;
	double sum_before;
	uint64_t count_before;
};

/* Past this, drop_oldest() moves the origin of the running totals to the
 * oldest entry, and past EXACT_SUM (2^52: doubles still hold every whole
 * number) a window is added up entry by entry instead. */
#define REBASE_SUM 4294967296.0
#define EXACT_SUM 4503599627370496.0

/* Entries a group holds in itself before it needs an array of its own:
 * most groups (per-session principals) see one or two events. */
#define GROUP_INLINE 2

/* A group, its key and its id sample are one allocation, laid out in that
 * order so that making a group touches few cache lines; entries beyond
 * GROUP_INLINE live in a second one.  Groups come and go with their windows
 * (~150k on the bench corpus). */
struct group {
	struct group *next;
	uint64_t hash;
	size_t keylen;
	int64_t newest;
	/* correlation: entries e[0..n), inside an allocation of cap entries at
	 * base (inl while cap is GROUP_INLINE); dropping the oldest moves e
	 * forward instead of the entries */
	struct centry *base, *e;
	size_t n, cap;
	/* event id sample, oldest first once full (ring): SAMPLE_IDS ids after
	 * the key, in the same allocation */
	size_t nids, idpos;
	char (*ids)[SAMPLE_ID_MAX];
	/* throttle */
	int64_t start;
	long count;
	struct match *first;	/* the first held-back match, or NULL */
	size_t keyroom;		/* bytes allocated for key */
	size_t at;		/* index in its table's live array */
	struct centry inl[GROUP_INLINE];
	char key[];		/* keylen bytes and a NUL, then the id sample */
};

/* Keys shorter than this get this much room, so that the group can be used
 * again for another key: groups of per-session principals come and go by
 * the hundred thousand, and a group kept warm costs no malloc, free or
 * cache misses.  At most SPARE_GROUPS are kept. */
#define GROUP_KEY_ROOM 256
#define SPARE_GROUPS 4096

/* A group's place in its table's list of live groups, with the time its
 * expiry depends on (newest event for a correlation, window start for a
 * throttle) kept beside it: a sweep reads this array front to back and
 * touches only the groups that expire. */
struct live {
	int64_t when;
	struct group *g;
};

/* Groups are found through the hash buckets and walked (sweep, flush,
 * free) through the live array, in the order they were made. */
struct table {
	struct group **b;
	size_t nb;		/* power of two, or 0 */
	size_t n;
	struct live *live;	/* n entries; group->at is its index */
	size_t livecap;
	uint64_t seed;		/* of hash_words for its keys and values (hash.h) */
	bool seeded;
};

/* trailwatch.seen_before: the values that a correlation's seen rule had, per
 * group, as hashes of (group key, value) with the newest time each was seen,
 * in one open-addressing table per correlation (linear probing) that is
 * rebuilt, dropping what is older than the horizon, when half full.  Reads
 * of objects come by the hundred thousand, mostly once per principal and
 * bucket: one table, no group for each. */
struct seen_slot {
	uint64_t hash;		/* 0: an empty slot */
	int64_t t;
};

struct seenset {
	size_t cap;		/* power of two */
	size_t n;		/* slots in use */
	struct seen_slot slot[];
};

struct rstate {
	struct table corr;
	struct table thr;
	struct seenset *seen;
	size_t evicted;		/* live correlation groups evicted at the cap */
	size_t reported;	/* evicted at the last correlator_cap_reported() */
};

struct correlator {
	const struct ruleset *rs;
	struct corr_limits lim;
	struct rstate *st;
	int64_t newest;
	int64_t last_sweep;
	struct corr_stats stats;
	uint64_t *scratch;
	size_t scratch_cap;
	struct group *spare;	/* removed groups kept for reuse (via next) */
	size_t nspare;
	uint64_t draws;		/* state of the eviction's draws (splitmix64) */
};


static void release_first(struct group *g)
{
	if (g->first) {
		match_release(g->first);
		free(g->first);
		g->first = NULL;
	}
}

static void group_free(struct group *g)
{
	if (!g)
		return;
	if (g->base != g->inl)
		free(g->base);
	release_first(g);
	free(g);
}

static void table_free(struct table *t)
{
	for (size_t k = 0; k < t->n; k++)
		group_free(t->live[k].g);
	free(t->b);
	free(t->live);
	memset(t, 0, sizeof(*t));
}

static int table_grow(struct table *t)
{
	size_t nb = t->nb ? t->nb * 2 : 64;
	struct group **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nb; i++) {
		struct group *g = t->b[i];
		while (g) {
			struct group *next = g->next;
			size_t k = g->hash & (nb - 1);
			g->next = b[k];
			b[k] = g;
			g = next;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

/* An empty group with room for a key of len bytes: a spare one, or new. */
static struct group *group_new(struct correlator *c, size_t len)
{
	struct group *g = c->spare;
	struct centry *base = NULL;
	size_t cap = 0, room;

	if (g && g->keyroom > len) {
		c->spare = g->next;
		c->nspare--;
		if (g->base != g->inl) {
			base = g->base;	/* its array, kept */
			cap = g->cap;
		}
		room = g->keyroom;
	} else {
		room = len + 1 > GROUP_KEY_ROOM ? len + 1 : GROUP_KEY_ROOM;
		g = malloc(sizeof(*g) + room + SAMPLE_IDS * SAMPLE_ID_MAX);
		if (!g)
			return NULL;
	}
	memset(g, 0, offsetof(struct group, inl));
	if (!base) {
		base = g->inl;
		cap = GROUP_INLINE;
	}
	g->base = g->e = base;
	g->cap = cap;
	g->keyroom = room;
	g->ids = (char (*)[SAMPLE_ID_MAX])(g->key + room);
	return g;
}

/* Frees g, or keeps it (and its entries' memory) for group_new. */
static void group_drop(struct correlator *c, struct group *g)
{
	if (c->nspare >= SPARE_GROUPS) {
		group_free(g);
		return;
	}
	release_first(g);	/* only throttles keep one */
	g->next = c->spare;
	c->spare = g;
	c->nspare++;
}

/* The table's hash seed, drawn on first use.  A table moves with its seed
 * (correlator_adopt), so its groups stay findable. */
static uint64_t table_seed(struct table *t)
{
	if (!t->seeded) {
		t->seed = hash_seed();
		t->seeded = true;
	}
	return t->seed;
}

/* Finds the group for key, creating it when create is set and the cap
 * allows.  NULL when absent, refused, or out of memory (*err). */
static struct group *table_get(struct correlator *c, struct table *t, const char *key, size_t len,
			       bool create, int *err)
{
	uint64_t h = hash_words(key, len, table_seed(t));
	struct group *g;

	if (t->nb) {
		for (g = t->b[h & (t->nb - 1)]; g; g = g->next)
			if (g->hash == h && g->keylen == len && memcmp(g->key, key, len) == 0)
				return g;
	}
	if (!create)
		return NULL;
	if (t->n >= c->lim.max_groups) {
		c->stats.groups_refused++;
		return NULL;
	}
	if (t->n >= t->nb && table_grow(t) < 0) {
		*err = -ENOMEM;
		return NULL;
	}
	if (t->n == t->livecap) {
		struct live *l = array_grow(t->live, &t->livecap, t->n + 1, sizeof(*l), 64);
		if (!l) {
			*err = -ENOMEM;
			return NULL;
		}
		t->live = l;
	}
	g = group_new(c, len);
	if (!g) {
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(g->key, key, len);
	g->key[len] = '\0';
	g->keylen = len;
	g->hash = h;
	g->newest = TIME_UNKNOWN;
	g->next = t->b[h & (t->nb - 1)];
	t->b[h & (t->nb - 1)] = g;
	g->at = t->n;
	t->live[t->n].when = TIME_UNKNOWN;
	t->live[t->n].g = g;
	t->n++;
	c->stats.groups++;
	return g;
}

static void table_remove(struct correlator *c, struct table *t, struct group *g)
{
	struct group **pp = &t->b[g->hash & (t->nb - 1)];

	while (*pp && *pp != g)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = g->next;
		t->n--;
		/* the last live entry takes its place */
		t->live[g->at] = t->live[t->n];
		t->live[g->at].g->at = g->at;
		c->stats.groups--;
		group_drop(c, g);
	}
}

/* Adds id to the group's sample. */
static void push_id(struct group *g, const char *id)
{
	size_t i, len;

	if (!id || (len = strlen(id)) >= SAMPLE_ID_MAX)
		return;
	i = g->nids < SAMPLE_IDS ? g->nids : g->idpos;
	memcpy(g->ids[i], id, len + 1);
	if (g->nids < SAMPLE_IDS)
		g->nids++;
	else
		g->idpos = (g->idpos + 1) % SAMPLE_IDS;
}

/* Empties the sample. */
static void clear_ids(struct group *g)
{
	g->nids = g->idpos = 0;
}

static void sample_into(const struct group *g, struct alert *a)
{
	a->nevent_ids = 0;
	for (size_t i = 0; i < g->nids && a->nevent_ids < ALERT_MAX_EVENT_IDS; i++)
		a->event_ids[a->nevent_ids++] = g->ids[(g->idpos + i) % g->nids];
}

/* Splits a group key back into values for the alert. */
static size_t split_key(char *key, size_t ngroup, const char **out)
{
	size_t n = 0;
	char *p = key;

	while (n < ngroup && n < GROUP_BY_MAX) {
		char *sep = strchr(p, '\x1f');
		out[n++] = p;
		if (!sep)
			break;
		*sep = '\0';
		p = sep + 1;
	}
	return n;
}

/* A group key: the values joined by 0x1f.  When they do not fit in cap
 * (a caller can make a user agent or a session name 100 KB long), each
 * value longer than its share of cap stands in by its start and a tag of
 * its length and two hashes of all of it ("~5000:..."), so that no value
 * is too long to be grouped by (refusing the group would blind the rule)
 * and values that differ only past their start stay apart. */
#define KEY_TAG 48	/* "~" + length + ":" + 32 hex digits, with room */
static void build_key(char *buf, size_t cap, const char *const *vals, size_t n, size_t *ret_len)
{
	size_t len = 0, total = 0, per = n ? (cap - 1) / n - 1 : cap - 1, lens[GROUP_BY_MAX];

	for (size_t i = 0; i < n; i++) {
		lens[i] = vals[i] ? strlen(vals[i]) : 0;
		total += lens[i] + 1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *v = vals[i] ? vals[i] : "";
		size_t vl = lens[i];
		if (total >= cap && vl > per) {
			size_t keep = per - KEY_TAG;
			while (keep && ((unsigned char)v[keep] & 0xc0) == 0x80)
				keep--;	/* not inside a UTF-8 character */
			memcpy(buf + len, v, keep);
			len += keep;
			len += (size_t)snprintf(buf + len, cap - len, "~%zu:%016llx%016llx", vl,
						(unsigned long long)hash_words(v, vl, 0x9e3779b97f4a7c15ull),
						(unsigned long long)hash_words(v, vl, 0xc2b2ae3d27d4eb4full));
		} else {
			memcpy(buf + len, v, vl);
			len += vl;
		}
		if (i + 1 < n)
			buf[len++] = '\x1f';
	}
	buf[len] = '\0';
	*ret_len = len;
}

static int sweep(struct correlator *c, alert_fn emit, void *ctx);

/* ---- throttle ---------------------------------------------------------- */

static int emit_summary(struct correlator *c, const struct rule *rule, struct group *g, alert_fn emit,
			void *ctx)
{
	struct alert a;
	char note[96], start[32], span[32], *key;
	const char *parts[2];
	const struct throttle *th = rule->throttle;
	int r;

	if (g->count <= 1 || !g->first)
		return 0;
	format_span(th->timespan, span);
	memset(&a, 0, sizeof(a));
	a.rule = rule;
	a.m = g->first;
	a.count = g->count;
	a.window = th->timespan;
	a.first_seen = g->start;
	sample_into(g, &a);
	key = strdup(g->key);
	if (!key)
		return -ENOMEM;
	if (rule->kind == RULE_CORRELATION) {
		a.ngroup = split_key(key, rule->corr->ngroup, a.group_values);
		a.group_names = rule->corr->group_by;
	} else {
		a.ngroup = split_key(key, th->ngroup, a.group_values);
		a.group_names = th->group_by;
	}
	snprintf(note, sizeof(note), "(%ld times in %s, %ld held back)", g->count, span, g->count - 1);
	a.title_note = note;
	format_time(g->start, start);
	parts[0] = g->key;
	parts[1] = start;
	alert_set_id(&a, "summary", parts, 2);
	r = emit(ctx, &a);
	free(key);
	return r;
}

int correlator_alert(struct correlator *c, const struct alert *a, alert_fn emit, void *ctx)
{
	const struct rule *rule = a->rule;
	const struct throttle *th = rule->throttle;
	char key[MAX_GROUP_KEY];
	size_t len;
	int64_t t;
	struct group *g;
	int err = 0, r;

	if (!th)
		return emit(ctx, a);
	t = a->first_seen != TIME_UNKNOWN ? a->first_seen : a->m->time;
	if (t == TIME_UNKNOWN)
		return emit(ctx, a);
	if (c->newest == TIME_UNKNOWN || t > c->newest)
		c->newest = t;
	if (c->newest - c->last_sweep >= SWEEP_EVERY) {
		r = sweep(c, emit, ctx);
		if (r < 0)
			return r;
	}
	if (rule->kind == RULE_CORRELATION) {
		build_key(key, sizeof(key), a->group_values, a->ngroup, &len);
	} else {
		const char *vals[GROUP_BY_MAX] = { 0 };
		for (size_t i = 0; i < th->ngroup; i++)
			vals[i] = a->m->extra ? a->m->extra[th->group_extra[i]] : NULL;
		build_key(key, sizeof(key), vals, th->ngroup, &len);
	}
	g = table_get(c, &c->st[rule->index].thr, key, len, true, &err);
	if (!g)
		return err ? err : emit(ctx, a);
	if (g->count == 0 || t >= g->start + th->timespan || t < g->start - th->timespan) {
		r = emit_summary(c, rule, g, emit, ctx);
		if (r < 0)
			return r;
		clear_ids(g);
		release_first(g);
		g->start = t;
		c->st[rule->index].thr.live[g->at].when = t;
		g->count = 1;
		g->newest = t;
		return emit(ctx, a);
	}
	g->count++;
	c->stats.suppressed++;
	for (size_t i = 0; i < a->nevent_ids; i++)
		push_id(g, a->event_ids[i]);
	if (!g->first) {
		struct match *f = malloc(sizeof(*f));
		if (!f || match_copy(f, a->m) < 0) {
			free(f);
			return -ENOMEM;
		}
		g->first = f;
	}
	return 0;
}

/* ---- values seen before (trailwatch.seen_before) ----------------------- */

/* The hash of a value in the group whose values are vals: never 0, which
 * marks empty slots.  Made from the values directly, without the group key:
 * most reads and writes never need one. */
static uint64_t seen_hash(const char *const *vals, size_t n, const char *value, uint64_t seed)
{
	uint64_t h = seed;

	for (size_t i = 0; i < n; i++)
		h = hash_words(vals[i] ? vals[i] : "", vals[i] ? strlen(vals[i]) : 0, h + i);
	h = hash_words(value, strlen(value), h);
	return h ? h : 1;
}

static struct seen_slot *seen_find(const struct seenset *s, uint64_t h)
{
	size_t i = h & (s->cap - 1);

	while (s->slot[i].hash && s->slot[i].hash != h)
		i = (i + 1) & (s->cap - 1);
	return (struct seen_slot *)&s->slot[i];
}

/* The values of s seen at or after horizon. */
static size_t seen_count(const struct seenset *s, int64_t horizon)
{
	size_t n = 0;

	for (size_t i = 0; i < s->cap; i++)
		n += s->slot[i].hash && s->slot[i].t >= horizon;
	return n;
}

static int cmp_time(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The time from which the newest `keep` of the live entries of s (seen at
 * or after horizon) were seen; -ENOMEM. */
static int seen_cut(const struct seenset *s, int64_t horizon, size_t live, size_t keep, int64_t *cut)
{
	int64_t *t = malloc(live * sizeof(*t));
	size_t n = 0;

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slot[i].hash && s->slot[i].t >= horizon)
			t[n++] = s->slot[i].t;
	qsort(t, n, sizeof(*t), cmp_time);
	*cut = t[n - keep];
	free(t);
	return 0;
}

/* A new table with room to grow, keeping the values seen at or after
 * horizon.  When even those reach the cap (correlation.max_groups times
 * ten), only the newest half of them is kept: the reads that a write may
 * still follow (counted in entries_dropped).  -ENOMEM. */
static int seen_rebuild(struct correlator *c, struct rstate *st, int64_t horizon)
{
	struct seenset *old = st->seen, *s;
	size_t live = 0, kept, cap = 64;
	int r;

	live = old ? seen_count(old, horizon) : 0;
	if (live >= c->lim.max_groups * 10) {
		int64_t cut;
		r = seen_cut(old, horizon, live, live / 2 ? live / 2 : 1, &cut);
		if (r < 0)
			return r;
		/* (when the cut's second holds more than half, that second goes too) */
		horizon = seen_count(old, cut) >= c->lim.max_groups * 10 ? cut + 1 : cut;
		kept = seen_count(old, horizon);
		c->stats.entries_dropped += live - kept;
		live = kept;
	}
	while (cap < 4 * (live + 1))
		cap *= 2;
	s = calloc(1, sizeof(*s) + cap * sizeof(s->slot[0]));
	if (!s)
		return -ENOMEM;
	s->cap = cap;
	for (size_t i = 0; old && i < old->cap; i++) {
		if (old->slot[i].hash && old->slot[i].t >= horizon) {
			*seen_find(s, old->slot[i].hash) = old->slot[i];
			s->n++;
		}
	}
	free(old);
	st->seen = s;
	return 0;
}

static int seen_add(struct correlator *c, struct rstate *st, uint64_t h, int64_t t, int64_t horizon)
{
	struct seen_slot *slot;
	int r;

	if (!st->seen || 2 * (st->seen->n + 1) > st->seen->cap) {
		r = seen_rebuild(c, st, horizon);
		if (r < 0)
			return r;
	}
	slot = seen_find(st->seen, h);
	if (!slot->hash) {
		slot->hash = h;
		slot->t = t;
		st->seen->n++;
	} else if (t > slot->t) {
		slot->t = t;
	}
	return 0;
}

/* Was the value seen at t or up to `within` seconds before? */
static bool seen_has(const struct rstate *st, uint64_t h, int64_t t, int64_t within)
{
	const struct seen_slot *slot;

	if (!st->seen)
		return false;
	slot = seen_find(st->seen, h);
	return slot->hash && slot->t <= t && t - slot->t <= within;
}

/* ---- correlation windows ----------------------------------------------- */

static size_t lower_bound(const struct group *g, int64_t t)
{
	size_t lo = 0, hi = g->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (g->e[mid].t < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The running totals before entry i (i == g->n: after the last one). */
static double sum_before(const struct group *g, size_t i)
{
	if (i < g->n)
		return g->e[i].sum_before;
	return g->n ? g->e[g->n - 1].sum_before + g->e[g->n - 1].amount : 0;
}

static uint64_t count_before(const struct group *g, size_t i)
{
	if (i < g->n)
		return g->e[i].count_before;
	return g->n ? g->e[g->n - 1].count_before + g->e[g->n - 1].count : 0;
}

/* Recomputes the running totals of entries [from, n) after entry from
 * changed, was inserted, or (from == 0) the origin moved. */
static void restate(struct group *g, size_t from)
{
	for (size_t i = from; i < g->n; i++) {
		g->e[i].sum_before = i ? g->e[i - 1].sum_before + g->e[i - 1].amount : 0;
		g->e[i].count_before = i ? g->e[i - 1].count_before + g->e[i - 1].count : 0;
	}
}

/* The measure of entries [lo, hi) for the correlation type; *events gets
 * the number of events they stand for. */
static int window_value(struct correlator *c, const struct correlation *cc, const struct group *g,
			size_t lo, size_t hi, double *ret, long *events)
{
	double before_lo = sum_before(g, lo), before_hi = sum_before(g, hi);
	double sum = before_hi - before_lo;
	long count = (long)(count_before(g, hi) - count_before(g, lo));

	if (fabs(before_lo) >= EXACT_SUM || fabs(before_hi) >= EXACT_SUM) {
		/* Totals this large lose whole units: add the window up instead. */
		sum = 0;
		for (size_t i = lo; i < hi; i++)
			sum += g->e[i].amount;
	}

	*events = count;
	switch (cc->type) {
	case CORR_EVENT_COUNT:
		*ret = cc->count_slot >= 0 ? sum : (double)count;
		return 0;
	case CORR_VALUE_SUM:
		*ret = sum;
		return 0;
	case CORR_VALUE_AVG:
		*ret = count ? sum / (double)count : 0;
		return 0;
	case CORR_VALUE_COUNT: {
		size_t n = hi - lo, distinct = 0;
		uint64_t *s = array_grow(c->scratch, &c->scratch_cap, n, sizeof(*s), 64);
		if (!s)
			return -ENOMEM;
		c->scratch = s;
		for (size_t i = 0; i < n; i++)
			c->scratch[i] = g->e[lo + i].key;
		qsort(c->scratch, n, sizeof(*c->scratch), cmp_u64);
		for (size_t i = 0; i < n; i++)
			distinct += i == 0 || c->scratch[i] != c->scratch[i - 1];
		*ret = (double)distinct;
		return 0;
	}
	case CORR_TEMPORAL: {
		uint64_t seen = 0;
		for (size_t i = lo; i < hi; i++)
			seen |= 1ull << g->e[i].key;
		*ret = (double)__builtin_popcountll(seen);
		return 0;
	}
	default: {
		/* temporal_ordered: how many of the rules were seen in their order */
		uint64_t next = 0;
		for (size_t i = lo; i < hi && next < cc->nrules; i++)
			if (g->e[i].key == next)
				next++;
		*ret = (double)next;
		return 0;
	}
	}
}

/* Removes the k oldest entries; the running totals of the others stay valid
 * as differences, and their origin moves once they grow large. */
static void drop_oldest(struct group *g, size_t k)
{
	g->e += k;
	g->n -= k;
	if (g->n && (g->e[0].sum_before > REBASE_SUM || g->e[0].sum_before < -REBASE_SUM))
		restate(g, 0);
}

/* Makes room for one more entry after e[n - 1].  The space that dropped
 * entries left in front is reclaimed once it is at least as large as the
 * live entries (so the move is paid for by the drops); else the allocation
 * grows.  Windows that slide by a second per event stay O(1) per event. */
static int entry_room(struct group *g)
{
	size_t front = (size_t)(g->e - g->base);
	struct centry *b;

	if (front + g->n < g->cap)
		return 0;
	if (front > 0) {
		memmove(g->base, g->e, g->n * sizeof(*g->e));
		g->e = g->base;
		if (front >= g->n)
			return 0;
	}
	if (g->base == g->inl) {
		/* out of the group's own entries: an array of its own */
		size_t cap = 0;
		b = array_grow(NULL, &cap, g->n + 1, sizeof(*b), 8);
		if (!b)
			return -ENOMEM;
		memcpy(b, g->inl, g->n * sizeof(*b));
		g->cap = cap;
	} else {
		b = array_grow(g->base, &g->cap, g->n + 1, sizeof(*b), 8);
		if (!b)
			return -ENOMEM;
	}
	g->base = g->e = b;
	return 0;
}

static int insert_entry(struct correlator *c, struct group *g, int64_t t, uint64_t key, double amount)
{
	size_t pos = lower_bound(g, t);

	/* Coalesce with an entry of the same second and key. */
	for (size_t i = pos; i < g->n && g->e[i].t == t; i++) {
		if (g->e[i].key == key) {
			g->e[i].amount += amount;
			g->e[i].count++;
			restate(g, i + 1);
			return 0;
		}
	}
	if (g->n >= c->lim.max_entries) {
		drop_oldest(g, 1);
		c->stats.entries_dropped++;
		if (pos > 0)
			pos--;
	}
	if (entry_room(g) < 0)
		return -ENOMEM;
	memmove(g->e + pos + 1, g->e + pos, (g->n - pos) * sizeof(*g->e));
	g->e[pos].t = t;
	g->e[pos].key = key;
	g->e[pos].amount = amount;
	g->e[pos].count = 1;
	g->n++;
	restate(g, pos);
	return 0;
}

static void trim(struct group *g, int64_t horizon)
{
	size_t k = lower_bound(g, horizon);

	if (k)
		drop_oldest(g, k);
}

static int sweep(struct correlator *c, alert_fn emit, void *ctx)
{
	const struct ruleset *rs = c->rs;

	c->last_sweep = c->newest;
	for (size_t i = 0; i < rs->nrules; i++) {
		const struct rule *rule = rs->rules[i];
		struct rstate *st = &c->st[i];
		int64_t span = rule->corr ? rule->corr->timespan : 0;

		/* Removing moves the last entry into slot k: look at k again. */
		for (size_t k = 0; k < st->corr.n;) {
			if (st->corr.live[k].when < c->newest - span - c->lim.lateness)
				table_remove(c, &st->corr, st->corr.live[k].g);
			else
				k++;
		}
		if (!rule->throttle)
			continue;
		for (size_t k = 0; k < st->thr.n;) {
			struct group *g = st->thr.live[k].g;
			if (st->thr.live[k].when + rule->throttle->timespan + c->lim.lateness < c->newest) {
				int r = emit_summary(c, rule, g, emit, ctx);
				if (r < 0)
					return r;
				table_remove(c, &st->thr, g);
			} else {
				k++;
			}
		}
	}
	return 0;
}

/* ---- a full table ------------------------------------------------------ */

/* A number below n (n > 0) from a fixed sequence (splitmix64), so that a
 * replay at the cap gives the same alerts every time.  Whoever sends the
 * events cannot see the sequence's position: it moves with every eviction
 * of every correlation, most of them caused by other callers. */
static size_t draw(struct correlator *c, size_t n)
{
	uint64_t z = (c->draws += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (size_t)((z ^ (z >> 31)) % n);
}

/* What a group holds toward its correlation's condition: the measure of its
 * whole window as window_value() would take it, cheaply (value_count and
 * the temporal types: its events, at least as many as its distinct values
 * or rules). */
static double group_weight(const struct correlation *cc, const struct group *g)
{
	double events = (double)(count_before(g, g->n) - count_before(g, 0));
	double sum = sum_before(g, g->n) - sum_before(g, 0);

	switch (cc->type) {
	case CORR_VALUE_SUM:
		return sum;
	case CORR_VALUE_AVG:
		return events > 0 ? sum / events : 0;
	case CORR_EVENT_COUNT:
		return cc->count_slot >= 0 ? sum : events;
	default:
		return events;
	}
}

/* Makes room in corr's full table for one more group: removes, of
 * EVICT_SAMPLE live groups drawn, one whose window has passed (it would go
 * at the next sweep; not counted), else the one with the least weight, the
 * one with the oldest newest event of equals (the nearest to expiry). */
static void evict(struct correlator *c, const struct rule *corr, struct table *t)
{
	const struct correlation *cc = corr->corr;
	int64_t horizon = c->newest - cc->timespan - c->lim.lateness;
	struct live *victim = NULL;
	double least = 0;

	for (int i = 0; i < EVICT_SAMPLE; i++) {
		struct live *l = &t->live[draw(c, t->n)];
		double w;

		if (l->when < horizon) {
			table_remove(c, t, l->g);
			return;
		}
		w = group_weight(cc, l->g);
		if (!victim || w < least || (w == least && l->when < victim->when)) {
			victim = l;
			least = w;
		}
	}
	c->stats.groups_evicted++;
	c->st[corr->index].evicted++;
	table_remove(c, t, victim->g);
}

void correlator_cap(const struct correlator *c, size_t rule_index, struct corr_cap *ret)
{
	const struct rstate *st = &c->st[rule_index];

	ret->evicted = st->evicted;
	ret->unreported = st->evicted - st->reported;
}

void correlator_cap_reported(struct correlator *c, size_t rule_index)
{
	c->st[rule_index].reported = c->st[rule_index].evicted;
}

static int feed(struct correlator *c, const struct rule *corr, const struct match *m,
		const char *const *ids, size_t nids, alert_fn emit, void *ctx);

/* A chained correlation's event: the inner correlation `inner` fired on m
 * for the group whose values are vals; each correlation that consumes it
 * sees one match of `inner` at m's time, carrying those values (see
 * chain_fields() in rules.c) and the fired alert's event ids. */
static int feed_chain(struct correlator *c, const struct rule *inner, const struct match *m,
		      const char **vals, const struct alert *a, alert_fn emit, void *ctx)
{
	struct match sm = *m;
	int r = 0;

	sm.rule = inner;
	sm.extra = vals;
	sm.nreasons = 0;
	sm.ncovers = 0;
	for (size_t k = 0; k < inner->nconsumers && r == 0; k++)
		r = feed(c, inner->consumers[k], &sm, a->event_ids, a->nevent_ids, emit, ctx);
	return r;
}

static int fire(struct correlator *c, const struct rule *corr, struct group *g, const struct match *m,
		size_t lo, double value, long events, alert_fn emit, void *ctx)
{
	const struct correlation *cc = corr->corr;
	char ids[SAMPLE_IDS][SAMPLE_ID_MAX];
	size_t nids = 0;
	struct alert a;
	const char *parts[2];
	char *key = strdup(g->key);
	int r;

	if (!key)
		return -ENOMEM;
	memset(&a, 0, sizeof(a));
	a.rule = corr;
	a.m = m;
	a.count = events;
	a.has_value = cc->type != CORR_EVENT_COUNT || cc->count_slot >= 0;
	a.value = value;
	a.window = cc->timespan;
	a.first_seen = g->e[lo].t;
	a.group_names = cc->group_by;
	a.ngroup = cc->ngroup ? split_key(key, cc->ngroup, a.group_values) : 0;
	parts[0] = g->key;
	parts[1] = m->event_id;
	alert_set_id(&a, "correlation", parts, 2);
	/* The events are spent: the next alert needs new ones.  The alert
	 * takes a copy of the id sample with it, oldest first. */
	for (size_t i = 0; i < g->nids; i++) {
		memcpy(ids[nids], g->ids[(g->idpos + i) % g->nids], SAMPLE_ID_MAX);
		a.event_ids[nids] = ids[nids];
		nids++;
	}
	a.nevent_ids = nids;
	g->nids = g->idpos = 0;
	g->n = 0;
	/* Emitting may run an expiry sweep that frees g: g is not used below. */
	r = corr->emits ? correlator_alert(c, &a, emit, ctx) : 0;
	if (r == 0 && corr->nconsumers) {
		const char *vals[GROUP_BY_MAX] = { 0 };
		for (size_t i = 0; i < a.ngroup; i++)
			vals[i] = a.group_values[i];
		r = feed_chain(c, corr, m, vals, &a, emit, ctx);
	}
	free(key);
	return r;
}

int correlator_feed(struct correlator *c, const struct rule *corr, const struct match *m,
		    alert_fn emit, void *ctx)
{
	return feed(c, corr, m, &m->event_id, 1, emit, ctx);
}

/* Moves the correlator's clock to t, sweeping expired groups now and then. */
static int advance(struct correlator *c, int64_t t, alert_fn emit, void *ctx)
{
	if (c->newest == TIME_UNKNOWN || t > c->newest)
		c->newest = t;
	if (c->newest - c->last_sweep >= SWEEP_EVERY)
		return sweep(c, emit, ctx);
	return 0;
}

/* A match of corr's seen_before rule: the value is remembered for its group. */
static int feed_seen(struct correlator *c, const struct rule *corr, const struct match *m,
		     alert_fn emit, void *ctx)
{
	const struct correlation *cc = corr->corr;
	struct rstate *st = &c->st[corr->index];
	const char *vals[GROUP_BY_MAX], *v = m->extra ? m->extra[cc->seen_field_extra] : NULL;
	size_t ng = cc->ngroup;
	int r;

	if (!v) {
		c->stats.no_value++;
		return 0;
	}
	for (size_t i = 0; i < ng; i++)
		vals[i] = m->extra[cc->seen_group_extra[i]];
	r = advance(c, m->time, emit, ctx);
	if (r < 0)
		return r;
	/* The horizon follows the event, not the correlator's clock: a replay
	 * of a tree goes through each account's and region's day in turn, so
	 * the newest time seen may lie hours ahead of this group's.  A value
	 * kept too long only takes room; one dropped too early is missed. */
	return seen_add(c, st, seen_hash(vals, ng, v, table_seed(&st->corr)), m->time,
			m->time - cc->seen_within - c->lim.lateness);
}

/* Correlation corr sees m, which stands for the events ids[0..nids). */
static int feed(struct correlator *c, const struct rule *corr, const struct match *m,
		const char *const *ids, size_t nids, alert_fn emit, void *ctx)
{
	const struct correlation *cc = corr->corr;
	const char *vals[GROUP_BY_MAX];
	char key[MAX_GROUP_KEY];
	size_t len, bi = 0, ng = cc->ngroup, first, lo;
	uint64_t ekey = 0;
	double amount = 1;
	struct table *t = &c->st[corr->index].corr;
	struct group *g;
	int err = 0, r;

	if (m->time == TIME_UNKNOWN) {
		c->stats.no_time++;
		return 0;
	}
	while (bi < cc->nrules && cc->rules[bi] != m->rule)
		bi++;
	if (bi == cc->nrules)
		return cc->seen_rule == m->rule ? feed_seen(c, corr, m, emit, ctx) : 0;
	if (cc->field_slot >= 0) {
		const char *v = m->extra ? m->extra[cc->field_extra[bi]] : NULL;
		if (!v) {
			c->stats.no_value++;
			return 0;
		}
		if (cc->type == CORR_VALUE_COUNT) {
			ekey = hash_words(v, strlen(v), table_seed(&c->st[corr->index].corr));
		} else if (number_parse(v, strlen(v), &amount) < 0) {
			c->stats.no_value++;
			return 0;
		}
	} else if (cc->type == CORR_TEMPORAL || cc->type == CORR_TEMPORAL_ORDERED) {
		ekey = bi;
	} else if (cc->count_slot >= 0) {
		/* trailwatch.count_values: the event stands for its values */
		const char *v = m->extra && cc->count_extra[bi] >= 0 ? m->extra[cc->count_extra[bi]] : NULL;
		if (!v || number_parse(v, strlen(v), &amount) < 0 || amount < 1)
			amount = 1;
	}
	for (size_t i = 0; i < ng; i++)
		vals[i] = m->extra ? m->extra[cc->group_extra[bi * cc->ngroup + i]] : NULL;
	r = advance(c, m->time, emit, ctx);
	if (r < 0)
		return r;
	/* With seen_before, only a value the group saw first counts. */
	if (cc->seen_rule) {
		const char *v = m->extra[cc->field_extra[bi]];	/* checked above */
		if (!seen_has(&c->st[corr->index], seen_hash(vals, ng, v, table_seed(&c->st[corr->index].corr)),
			      m->time, cc->seen_within))
			return 0;
	}
	build_key(key, sizeof(key), vals, ng, &len);
	/* Below the cap, one lookup that creates; at it, a new group first
	 * evicts one (a flood of new keys must not blind the rule). */
	g = table_get(c, t, key, len, t->n < c->lim.max_groups, &err);
	if (!g && !err && t->n >= c->lim.max_groups) {
		evict(c, corr, t);
		g = table_get(c, t, key, len, true, &err);
	}
	if (!g)
		return err;
	if (g->newest != TIME_UNKNOWN && m->time < g->newest - cc->timespan - c->lim.lateness) {
		c->stats.too_late++;
		return 0;
	}
	r = insert_entry(c, g, m->time, ekey, amount);
	if (r < 0)
		return r;
	if (g->newest == TIME_UNKNOWN || m->time > g->newest) {
		g->newest = m->time;
		c->st[corr->index].corr.live[g->at].when = m->time;
	}
	trim(g, g->newest - cc->timespan - c->lim.lateness);
	for (size_t i = 0; i < nids; i++)
		push_id(g, ids[i]);

	/* The windows that contain this event end at it or at a later event
	 * no further than one timespan away (when it arrived late).  Their
	 * starts only move forward as their ends do, so one pass finds them:
	 * a late event into a busy window costs that window once, not once per
	 * second of it times a search. */
	first = lower_bound(g, m->time);
	lo = first < g->n ? lower_bound(g, g->e[first].t - cc->timespan) : 0;
	for (size_t k = first; k < g->n && g->e[k].t <= m->time + cc->timespan; k++) {
		int64_t end = g->e[k].t;
		size_t hi = k;
		double value;
		long events;

		if (k > first && g->e[k - 1].t == end)
			continue;	/* the same end second was already tried */
		while (hi < g->n && g->e[hi].t == end)
			hi++;
		while (g->e[lo].t < end - cc->timespan)
			lo++;
		r = window_value(c, cc, g, lo, hi, &value, &events);
		if (r < 0)
			return r;
		if (corr_cond_holds(&cc->cond, value))
			return fire(c, corr, g, m, lo, value, events, emit, ctx);
	}
	return 0;
}

int correlator_flush(struct correlator *c, alert_fn emit, void *ctx)
{
	for (size_t i = 0; i < c->rs->nrules; i++) {
		const struct rule *rule = c->rs->rules[i];
		struct table *t = &c->st[i].thr;

		if (!rule->throttle)
			continue;
		for (size_t k = 0; k < t->n; k++) {
			struct group *g = t->live[k].g;
			int r = emit_summary(c, rule, g, emit, ctx);
			if (r < 0)
				return r;
			g->count = 0;
			release_first(g);
		}
	}
	return 0;
}

int correlator_new(const struct ruleset *rs, const struct corr_limits *limits, struct correlator **ret)
{
	struct correlator *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->rs = rs;
	c->lim.max_groups = limits && limits->max_groups ? limits->max_groups : 100000;
	c->lim.max_entries = limits && limits->max_entries ? limits->max_entries : 100000;
	c->lim.lateness = limits && limits->lateness ? limits->lateness : 900;
	c->newest = TIME_UNKNOWN;
	c->draws = 0x7472617763617073ull;	/* any fixed start */
	c->last_sweep = 0;
	c->st = calloc(rs->nrules + 1, sizeof(*c->st));
	if (!c->st) {
		free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void correlator_free(struct correlator *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->rs->nrules; i++) {
		table_free(&c->st[i].corr);
		table_free(&c->st[i].thr);
		free(c->st[i].seen);
	}
	while (c->spare) {
		struct group *next = c->spare->next;
		group_free(c->spare);
		c->spare = next;
	}
	free(c->st);
	free(c->scratch);
	free(c);
}

/* The same rule in two rulesets: equal fingerprints, and for a correlation
 * the same rules feeding it, in the same order. */
static bool same_rule(const struct rule *a, const struct rule *b)
{
	if (a->kind != b->kind || a->fingerprint != b->fingerprint)
		return false;
	if (a->kind != RULE_CORRELATION)
		return true;
	if (a->corr->nrules != b->corr->nrules || !a->corr->seen_rule != !b->corr->seen_rule)
		return false;
	if (a->corr->seen_rule && a->corr->seen_rule->fingerprint != b->corr->seen_rule->fingerprint)
		return false;
	for (size_t i = 0; i < a->corr->nrules; i++)
		if (a->corr->rules[i]->fingerprint != b->corr->rules[i]->fingerprint)
			return false;
	return true;
}

/* Points the throttle groups' first matches at the rule they now belong to. */
static void rebind_table(struct table *t, const struct rule *rule)
{
	for (size_t k = 0; k < t->n; k++)
		if (t->live[k].g->first)
			t->live[k].g->first->rule = rule;
}

size_t correlator_adopt(struct correlator *to, struct correlator *from)
{
	const struct ruleset *nrs = to->rs, *ors = from->rs;
	bool *taken = calloc(ors->nrules + 1, sizeof(bool));
	size_t moved = 0;

	if (!taken)
		return 0;
	for (size_t i = 0; i < nrs->nrules; i++) {
		const struct rule *nr = nrs->rules[i];

		for (size_t j = 0; j < ors->nrules; j++) {
			const struct rule *orule = ors->rules[j];
			struct rstate *os = &from->st[j];

			if (taken[j] || !same_rule(nr, orule))
				continue;
			taken[j] = true;
			if (os->corr.n == 0 && os->thr.n == 0 && !os->seen)
				break;
			table_free(&to->st[i].corr);
			table_free(&to->st[i].thr);
			free(to->st[i].seen);
			to->st[i] = *os;
			memset(os, 0, sizeof(*os));
			rebind_table(&to->st[i].thr, nr);
			moved++;
			break;
		}
	}
	if (from->newest != TIME_UNKNOWN && (to->newest == TIME_UNKNOWN || from->newest > to->newest))
		to->newest = from->newest;
	if (from->last_sweep > to->last_sweep)
		to->last_sweep = from->last_sweep;
	to->stats.groups = 0;
	for (size_t i = 0; i < nrs->nrules; i++)
		to->stats.groups += to->st[i].corr.n + to->st[i].thr.n;
	free(taken);
	return moved;
}

void correlator_stats(const struct correlator *c, struct corr_stats *ret)
{
	*ret = c->stats;
}
