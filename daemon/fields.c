/* fields.c: the trie of field paths that rules reference (see fields.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/array.h"
#include "trailwatch/fields.h"

void field_index_init(struct field_index *fi)
{
	memset(fi, 0, sizeof(*fi));
	fi->root.slot = -1;
	arena_init(&fi->arena);
}

static void free_node(struct field_node *n)
{
	for (size_t i = 0; i < n->nkids; i++)
		free_node(n->kids[i]);
	free(n->kids);
	free(n->bylen);
}

static int by_length(const void *a, const void *b)
{
	const struct field_node *x = *(const struct field_node *const *)a;
	const struct field_node *y = *(const struct field_node *const *)b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Up to 8 bytes of s as a word, the rest zero. */
static inline uint64_t word(const char *s, size_t n)
{
	uint64_t w;

	memcpy(&w, s, 8);
	return n >= 8 ? w : w & ((1ull << (8 * n)) - 1);
}

static int finish_node(struct field_node *n, size_t *nnodes)
{
	size_t k = 0;

	n->head = n->len ? word(n->name, n->len < 8 ? n->len : 8) : 0;
	n->tail = n->len >= 8 ? word(n->name + n->len - 8, 8) : n->head;

	n->id = (unsigned)(*nnodes)++;
	for (size_t i = 0; i < n->nkids; i++)
		if (finish_node(n->kids[i], nnodes) < 0)
			return -ENOMEM;
	if (n->nkids == 0 || n->nkids > UINT16_MAX)
		return 0;
	free(n->bylen);
	n->bylen = malloc((FIELDS_BYLEN + 2) * sizeof(*n->bylen));
	if (!n->bylen)
		return -ENOMEM;
	qsort(n->kids, n->nkids, sizeof(*n->kids), by_length);
	for (size_t len = 0; len <= FIELDS_BYLEN + 1; len++) {
		while (k < n->nkids && n->kids[k]->len < len)
			k++;
		n->bylen[len] = (uint16_t)k;
	}
	return 0;
}

int field_index_finish(struct field_index *fi)
{
	fi->nnodes = 0;
	return finish_node(&fi->root, &fi->nnodes);
}

void field_index_free(struct field_index *fi)
{
	if (!fi)
		return;
	free_node(&fi->root);
	free(fi->paths);
	arena_free(&fi->arena);
	memset(fi, 0, sizeof(*fi));
	fi->root.slot = -1;
}

const struct field_node *field_node_child(const struct field_node *node, const char *key, size_t len)
{
	size_t i = 0, end = node->nkids;
	uint64_t head, tail;

	if (!node->bylen) {
		/* Before field_index_finish (while rules load): a plain search. */
		for (; i < end; i++) {
			const struct field_node *k = node->kids[i];
			if (k->len == len && memcmp(k->name, key, len) == 0)
				return k;
		}
		return NULL;
	}
	i = node->bylen[len < FIELDS_BYLEN ? len : FIELDS_BYLEN];
	end = len < FIELDS_BYLEN ? node->bylen[len + 1] : node->nkids;
	if (i == end || len == 0)
		return NULL;
	/* Names of up to 16 bytes compare as two words; longer ones also
	 * compare the middle. */
	head = word(key, len < 8 ? len : 8);
	tail = len >= 8 ? word(key + len - 8, 8) : head;
	for (; i < end; i++) {
		const struct field_node *k = node->kids[i];
		if (k->head == head && k->tail == tail && k->len == len &&
		    (len <= 16 || memcmp(k->name + 8, key + 8, len - 16) == 0))
			return k;
	}
	return NULL;
}

static struct field_node *add_child(struct field_index *fi, struct field_node *node,
				    const char *name, size_t len)
{
	struct field_node *k;

	struct field_node **kids = array_grow(node->kids, &node->cap, node->nkids + 1, sizeof(*kids), 4);

	if (!kids)
		return NULL;
	node->kids = kids;
	k = arena_alloc(&fi->arena, sizeof(*k));
	if (!k)
		return NULL;
	/* Names are padded so that word() may read 8 bytes of a short one. */
	k->name = arena_alloc(&fi->arena, len + 8);
	if (k->name)
		memcpy((char *)k->name, name, len);
	if (!k->name)
		return NULL;
	k->len = len;
	k->slot = -1;
	node->kids[node->nkids++] = k;
	return k;
}

int field_index_find(const struct field_index *fi, const char *path)
{
	const struct field_node *n = &fi->root;
	const char *p = path;

	while (n) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);

		if (len == 0)
			return -1;
		n = field_node_child(n, p, len);
		if (!dot)
			return n ? n->slot : -1;
		p = dot + 1;
	}
	return -1;
}

int field_index_add(struct field_index *fi, const char *path, int *ret_slot)
{
	struct field_node *n = &fi->root;
	const char *p = path;
	size_t plen = strlen(path);

	if (plen == 0 || plen > FIELDS_MAX_PATH)
		return -EINVAL;
	/* "@" is the root itself: the scanned value, not a member of it. */
	for (bool more = strcmp(path, FIELDS_SELF) != 0; more;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		struct field_node *k;

		if (len == 0)
			return -EINVAL;
		k = (struct field_node *)field_node_child(n, p, len);
		if (!k)
			k = add_child(fi, n, p, len);
		if (!k)
			return -ENOMEM;
		n = k;
		more = dot != NULL;
		if (more)
			p = dot + 1;
	}
	if (n->slot < 0) {
		if (fi->nslots >= FIELDS_MAX_SLOTS)
			return -E2BIG;
		const char **paths = array_grow(fi->paths, &fi->cap, fi->nslots + 1, sizeof(*paths), 32);
		if (!paths)
			return -ENOMEM;
		fi->paths = paths;
		fi->paths[fi->nslots] = arena_strdup(&fi->arena, path);
		if (!fi->paths[fi->nslots])
			return -ENOMEM;
		n->slot = (int)fi->nslots++;
	}
	*ret_slot = n->slot;
	return 0;
}
