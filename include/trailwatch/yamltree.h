/* yamltree.h: YAML files as small trees of nodes that remember where they were.
 *
 * Rules and config are YAML.  This module turns a file (every document in it)
 * into a tree of scalars, sequences and maps, each node with its 1-based line
 * and column, so that every later error can say file:line:column.  It is built
 * on libyaml's event parser and is deliberately strict and bounded:
 *   - anchors and aliases are refused (no "billion laughs");
 *   - nesting deeper than YAMLTREE_MAX_DEPTH, more than YAMLTREE_MAX_NODES
 *     nodes, or a file over YAMLTREE_MAX_FILE bytes is an error;
 *   - duplicate keys in a map are an error.
 * The loader does not log; it adds messages to the caller's struct diag.
 */
#ifndef TRAILWATCH_YAMLTREE_H
#define TRAILWATCH_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/arena.h"
#include "trailwatch/diag.h"

#define YAMLTREE_MAX_DEPTH 64
#define YAMLTREE_MAX_NODES 1000000
#define YAMLTREE_MAX_FILE (16u << 20)

enum ynode_type {
	YNODE_SCALAR,
	YNODE_SEQ,
	YNODE_MAP,
};

struct ynode {
	enum ynode_type type;
	unsigned line, col;	/* 1-based */
	/* YNODE_SCALAR */
	const char *value;	/* NUL-terminated; may contain NULs, see len */
	size_t len;
	bool plain;		/* unquoted and untagged: may be null/bool/number */
	/* YNODE_SEQ: items[0..n); YNODE_MAP: keys[i] -> items[i] */
	struct ynode **items;
	struct ynode **keys;	/* keys are scalars */
	size_t n;
};

struct ydoc {
	struct ynode *root;	/* NULL for an empty document */
	unsigned line;		/* where the document starts */
};

struct yfile {
	const char *path;	/* as given, for messages */
	struct ydoc *docs;
	size_t ndocs;
	struct arena arena;	/* owns every node and string */
};

/* Parses every document of a file or buffer.  On success *ret is a new yfile
 * (free with yfile_free).  On failure returns -EINVAL (syntax or limit, with
 * messages added to d), -ENOENT/-EACCES/... for an unreadable file, -ENOMEM.
 * name is used in messages and copied. */
int yfile_load(const char *path, struct yfile **ret, struct diag *d);
int yfile_load_buffer(const char *name, const char *data, size_t len,
		      struct yfile **ret, struct diag *d);
void yfile_free(struct yfile *f);

/* Map lookup by key; NULL if absent or if map is not a map. */
const struct ynode *ynode_get(const struct ynode *map, const char *key);

/* Plain scalars "~", "null", "Null", "NULL" and the empty plain scalar. */
bool ynode_is_null(const struct ynode *n);

/* Plain true/false (and YAML 1.1's yes/no/on/off, as PyYAML reads Sigma). */
int ynode_bool(const struct ynode *n, bool *ret);

/* A human name for the node's type: "a string", "a list", "a map". */
const char *ynode_kind(const struct ynode *n);

#endif
