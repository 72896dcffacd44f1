/* arena.h: a bump allocator for objects that live and die together.
 *
 * A loaded rule set, a parsed YAML file and the matches of one log file are
 * each allocated from one arena and released with one arena_free(); there is
 * no per-object free.  Allocation never moves earlier objects.
 */
#ifndef TRAILWATCH_ARENA_H
#define TRAILWATCH_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;
	size_t used;		/* bytes handed out, for statistics */
};

void arena_init(struct arena *a);

/* Releases every allocation; the arena can be used again. */
void arena_free(struct arena *a);

/* Forgets every allocation but keeps one chunk for reuse, so that a scratch
 * arena cleared once per record does not call malloc per record. */
void arena_reset(struct arena *a);

/* Zeroed, 16-byte aligned memory, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t size);

/* Copies n bytes and adds a terminating NUL.  NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
