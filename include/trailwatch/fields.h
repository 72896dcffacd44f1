/* fields.h: the field index, compiled from the loaded rules.
 *
 * Rules name CloudTrail fields by dotted paths ("userIdentity.arn").  Each
 * distinct path gets a slot number; the paths form a trie that the record
 * scanner (ctlog.c) walks while it reads a record, so that only the fields some
 * rule references are extracted and everything else is skipped unparsed.
 * A path that goes through an array matches each element (Sigma semantics).
 */
#ifndef TRAILWATCH_FIELDS_H
#define TRAILWATCH_FIELDS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "trailwatch/arena.h"

#define FIELDS_MAX_SLOTS 4096
#define FIELDS_MAX_PATH 512

struct field_node {
	const char *name;	/* one path component */
	size_t len;
	int slot;		/* >= 0 when the path ending here is wanted */
	struct field_node **kids;
	size_t nkids, cap;
	/* After field_index_finish: kids sorted by name length, and the kids
	 * of length n are kids[bylen[n] .. bylen[n + 1]) (n < FIELDS_BYLEN);
	 * longer names are kids[bylen[FIELDS_BYLEN] .. nkids). */
	uint16_t *bylen;
	uint64_t head, tail;	/* the name's first and last 8 bytes, zero-padded */
	unsigned id;		/* after field_index_finish: 0 .. nnodes - 1 */
};

#define FIELDS_BYLEN 64

struct field_index {
	struct field_node root;	/* the record itself; root.slot is -1 */
	const char **paths;	/* slot -> dotted path */
	size_t nslots, cap;
	size_t nnodes;		/* after field_index_finish, root included */
	struct arena arena;
};

void field_index_init(struct field_index *fi);
void field_index_free(struct field_index *fi);

/* The path of the scanned value itself (an |element selection names the
 * element with it); in a record's index it is never used. */
#define FIELDS_SELF "@"

/* Returns the slot of path, adding it if new.  -EINVAL for an empty path, an
 * empty component ("a..b") or a path over FIELDS_MAX_PATH; -E2BIG past
 * FIELDS_MAX_SLOTS; -ENOMEM. */
int field_index_add(struct field_index *fi, const char *path, int *ret_slot);

/* Builds the per-node lookup tables once every path is added; a node's
 * children are then found in constant time.  No path may be added after.
 * -ENOMEM (lookups then stay linear, which is still correct). */
int field_index_finish(struct field_index *fi);

/* The slot of path, or -1 when no rule references it. */
int field_index_find(const struct field_index *fi, const char *path);

/* The child of node named by the JSON key (unescaped), or NULL.  At least
 * 8 bytes must be readable at key (the scanner's buffers are padded). */
const struct field_node *field_node_child(const struct field_node *node, const char *key, size_t len);

#endif
