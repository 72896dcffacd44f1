/* strmap.c: a hash map from strings to pointers (see strmap.h).
 *
 * Used where a linear search over every rule made loading quadratic: the
 * loader's duplicate-id check and ruleset_find().  Linear probing over a
 * table at most half full keeps a lookup to a few comparisons.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/hash.h"
#include "trailwatch/strmap.h"

#define MIN_CAP 64

static size_t slot_of(const struct strmap_entry *v, size_t cap, const char *key)
{
	size_t i = (size_t)hash_words(key, strlen(key), 0) & (cap - 1);

	while (v[i].key && strcmp(v[i].key, key) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = slot_of(m->v, m->cap, key);
	return m->v[i].key ? m->v[i].value : NULL;
}

/* Doubles the table (from MIN_CAP), putting every key in its new place. */
static int grow(struct strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : MIN_CAP;
	struct strmap_entry *v;

	if (cap < m->cap || cap > SIZE_MAX / sizeof(*v))
		return -ENOMEM;
	v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].key)
			v[slot_of(v, cap, m->v[i].key)] = m->v[i];
	free(m->v);
	m->v = v;
	m->cap = cap;
	return 0;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		int r = grow(m);
		if (r < 0)
			return r;
	}
	i = slot_of(m->v, m->cap, key);
	if (!m->v[i].key) {
		m->v[i].key = key;
		m->n++;
	}
	m->v[i].value = value;
	return 0;
}

void strmap_free(struct strmap *m)
{
	free(m->v);
	m->v = NULL;
	m->cap = 0;
	m->n = 0;
}
