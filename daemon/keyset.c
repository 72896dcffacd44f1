/* keyset.c: a sorted set of strings (see keyset.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/keyset.h"

size_t keyset_pos(const struct keyset *k, const char *key, bool *found)
{
	size_t lo = 0, hi = k->n;

	*found = false;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(k->v[mid], key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool keyset_has(const struct keyset *k, const char *key)
{
	bool found;

	keyset_pos(k, key, &found);
	return found;
}

int keyset_add(struct keyset *k, const char *key)
{
	bool found;
	size_t pos = keyset_pos(k, key, &found);
	char *copy;

	if (found)
		return 0;
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 16;
		char **v = realloc(k->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		k->v = v;
		k->cap = cap;
	}
	copy = strdup(key);
	if (!copy)
		return -ENOMEM;
	memmove(k->v + pos + 1, k->v + pos, (k->n - pos) * sizeof(*k->v));
	k->v[pos] = copy;
	k->n++;
	return 1;
}

void keyset_remove_at(struct keyset *k, size_t pos)
{
	free(k->v[pos]);
	memmove(k->v + pos, k->v + pos + 1, (k->n - pos - 1) * sizeof(*k->v));
	k->n--;
}

void keyset_clear(struct keyset *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
	memset(k, 0, sizeof(*k));
}
