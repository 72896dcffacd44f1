/* keyset.h: a sorted set of strings (object keys, file names).
 *
 * A plain sorted array: lookups are binary searches, inserts move the tail.
 * Sets here hold at most a few thousand keys (a listing window), which is
 * where this is simpler than a hash and as fast.  Zero-initialise; release
 * with keyset_clear.
 */
#ifndef TRAILWATCH_KEYSET_H
#define TRAILWATCH_KEYSET_H

#include <stdbool.h>
#include <stddef.h>

struct keyset {
	char **v;			/* sorted with strcmp */
	size_t n, cap;
};

/* Where key is or would go; *found says which. */
size_t keyset_pos(const struct keyset *k, const char *key, bool *found);

bool keyset_has(const struct keyset *k, const char *key);

/* Adds a copy of key: 1 when added, 0 when it was there, -ENOMEM. */
int keyset_add(struct keyset *k, const char *key);

/* Removes the key at pos (< k->n). */
void keyset_remove_at(struct keyset *k, size_t pos);

/* Frees every key and the array; the set is empty and reusable. */
void keyset_clear(struct keyset *k);

#endif
