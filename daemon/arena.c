/* arena.c: chunked bump allocator (see arena.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/arena.h"

#define ARENA_CHUNK 65536

struct arena_chunk {
	struct arena_chunk *next;
	size_t size;
	size_t off;
	_Alignas(16) unsigned char data[];
};

void arena_init(struct arena *a)
{
	a->head = NULL;
	a->used = 0;
}

void arena_free(struct arena *a)
{
	struct arena_chunk *c = a->head;

	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used = 0;
}

void arena_reset(struct arena *a)
{
	struct arena_chunk *keep = a->head;

	if (!keep)
		return;
	/* Keep the newest standard chunk, free the rest. */
	struct arena_chunk *c = keep->next;
	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	keep->next = NULL;
	keep->off = 0;
	a->used = 0;
}

void *arena_alloc(struct arena *a, size_t size)
{
	struct arena_chunk *c = a->head;
	size_t need = (size + 15) & ~(size_t)15;
	void *p;

	if (size == 0)
		need = 16;
	if (need < size)
		return NULL;
	if (!c || c->size - c->off < need) {
		size_t csize = need > ARENA_CHUNK / 4 ? need : ARENA_CHUNK;

		if (csize > SIZE_MAX - sizeof(*c))
			return NULL;
		c = malloc(sizeof(*c) + csize);
		if (!c)
			return NULL;
		c->size = csize;
		c->off = 0;
		if (need > ARENA_CHUNK / 4 && a->head) {
			/* A big block gets its own chunk behind the current one,
			 * so the current chunk's free space is not wasted. */
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	p = c->data + c->off;
	c->off += need;
	a->used += need;
	memset(p, 0, need);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p;

	if (n == SIZE_MAX)
		return NULL;
	p = arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}
