/* strmap.h: a hash map from strings to pointers.
 *
 * Open addressing with linear probing, doubling at half full.  Keys are not
 * copied: each must stay valid, unchanged, for as long as the map holds it
 * (rule ids and names live in the rule set's arena).  A key is never
 * removed: putting NULL under it is how a value is taken away, and
 * strmap_get then answers NULL as for a key never put.  Keys come from
 * files the administrator writes, not from the logs, so the hash is not
 * seeded (hash.h).  Zero-initialise; release with strmap_free.  Does not
 * log.
 */
#ifndef TRAILWATCH_STRMAP_H
#define TRAILWATCH_STRMAP_H

#include <stddef.h>

struct strmap_entry {
	const char *key;	/* NULL: a free slot */
	void *value;
};

struct strmap {
	struct strmap_entry *v;
	size_t cap;		/* 0 or a power of two */
	size_t n;		/* slots with a key */
};

/* The value put under key last; NULL when none (or NULL was put). */
void *strmap_get(const struct strmap *m, const char *key);

/* Puts value under key, replacing what was there.  0 or -ENOMEM (the map
 * is then unchanged). */
int strmap_put(struct strmap *m, const char *key, void *value);

/* Frees the table (not the keys or values); the map is empty and reusable. */
void strmap_free(struct strmap *m);

#endif
