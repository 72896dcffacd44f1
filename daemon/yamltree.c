/* yamltree.c: libyaml events -> a bounded tree of nodes with marks.
 *
 * A stack of open containers follows the events; each finished node is
 * appended to its parent (as key or value for maps).  Children are collected
 * in a growable temporary array per open container and copied into the
 * arena when the container closes, so the tree itself never reallocates.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "trailwatch/array.h"
#include "trailwatch/yamltree.h"

struct open_node {
	struct ynode *node;
	struct ynode **kids;	/* for maps: key, value, key, value... */
	size_t nkids, cap;
};

struct builder {
	struct yfile *f;
	struct diag *d;
	struct open_node stack[YAMLTREE_MAX_DEPTH + 1];
	size_t depth;
	size_t nodes;
	struct ydoc *docs;
	size_t ndocs, capdocs;
	struct ynode *doc_root;
	bool failed;
};

static void berror(struct builder *b, const yaml_mark_t *m, const char *msg)
{
	diag_add(b->d, b->f->path, (unsigned)m->line + 1, (unsigned)m->column + 1, "%s", msg);
	b->failed = true;
}

static int push_kid(struct open_node *o, struct ynode *n)
{
	struct ynode **k = array_grow(o->kids, &o->cap, o->nkids + 1, sizeof(*k), 8);

	if (!k)
		return -ENOMEM;
	o->kids = k;
	o->kids[o->nkids++] = n;
	return 0;
}

static bool same_key(const struct ynode *a, const struct ynode *b)
{
	return a->type == YNODE_SCALAR && b->type == YNODE_SCALAR && a->len == b->len &&
	       memcmp(a->value, b->value, a->len) == 0;
}

/* Whether a key may be echoed in a message: a field or key name (up to 64
 * letters, '_', '.', '|', '-', no digits).  Anything else may be a secret
 * or a URL written where a key goes, which must not reach the journal. */
static bool shown_key(const char *key, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '|' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* Adds a finished node to the open container on top, or makes it the root. */
static int attach(struct builder *b, struct ynode *n, const yaml_mark_t *m)
{
	struct open_node *top;

	if (b->depth == 0) {
		b->doc_root = n;
		return 0;
	}
	top = &b->stack[b->depth - 1];
	if (top->node->type == YNODE_MAP && top->nkids % 2 == 0) {
		if (n->type != YNODE_SCALAR) {
			berror(b, m, "a map key must be a plain value, not a list or map");
			return 0;
		}
		for (size_t i = 0; i < top->nkids; i += 2) {
			if (same_key(top->kids[i], n)) {
				char msg[300];
				if (shown_key(n->value, n->len))
					snprintf(msg, sizeof(msg), "duplicate key '%s' (first at line %u)", n->value,
						 top->kids[i]->line);
				else
					snprintf(msg, sizeof(msg),
						 "duplicate key (%zu characters, not shown: it is not a field or key name, "
						 "and may be a secret or a URL written as a key; first at line %u)",
						 n->len, top->kids[i]->line);
				berror(b, m, msg);
				break;
			}
		}
	}
	return push_kid(top, n);
}

static struct ynode *new_node(struct builder *b, enum ynode_type t, const yaml_mark_t *m)
{
	struct ynode *n;

	if (++b->nodes > YAMLTREE_MAX_NODES) {
		berror(b, m, "too many YAML nodes (limit " "1000000" ")");
		return NULL;
	}
	n = arena_alloc(&b->f->arena, sizeof(*n));
	if (!n)
		return NULL;
	n->type = t;
	n->line = (unsigned)m->line + 1;
	n->col = (unsigned)m->column + 1;
	return n;
}

static int close_container(struct builder *b, const yaml_mark_t *m)
{
	struct open_node *o = &b->stack[--b->depth];
	struct ynode *n = o->node;
	int r = 0;

	if (n->type == YNODE_MAP) {
		n->n = o->nkids / 2;
		n->keys = arena_alloc(&b->f->arena, (n->n + 1) * sizeof(*n->keys));
		n->items = arena_alloc(&b->f->arena, (n->n + 1) * sizeof(*n->items));
		if (!n->keys || !n->items) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n->n; i++) {
			n->keys[i] = o->kids[2 * i];
			n->items[i] = o->kids[2 * i + 1];
		}
	} else {
		n->n = o->nkids;
		n->items = arena_alloc(&b->f->arena, (n->n + 1) * sizeof(*n->items));
		if (!n->items) {
			r = -ENOMEM;
			goto out;
		}
		if (n->n)
			memcpy(n->items, o->kids, n->n * sizeof(*n->items));
	}
	r = attach(b, n, m);
out:
	free(o->kids);
	memset(o, 0, sizeof(*o));
	return r;
}

static int open_container(struct builder *b, enum ynode_type t, const yaml_mark_t *m)
{
	struct ynode *n;

	if (b->depth >= YAMLTREE_MAX_DEPTH) {
		berror(b, m, "YAML nested too deeply (limit 64)");
		return -EINVAL;
	}
	n = new_node(b, t, m);
	if (!n)
		return b->failed ? -EINVAL : -ENOMEM;
	b->stack[b->depth].node = n;
	b->stack[b->depth].nkids = 0;
	b->depth++;
	return 0;
}

static int add_doc(struct builder *b, unsigned line)
{
	struct ydoc *d = array_grow(b->docs, &b->capdocs, b->ndocs + 1, sizeof(*d), 4);

	if (!d)
		return -ENOMEM;
	b->docs = d;
	b->docs[b->ndocs].root = b->doc_root;
	b->docs[b->ndocs].line = line;
	b->ndocs++;
	return 0;
}

static int handle_event(struct builder *b, yaml_event_t *ev, unsigned *doc_line)
{
	struct ynode *n;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		b->doc_root = NULL;
		*doc_line = (unsigned)ev->start_mark.line + 1;
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		return add_doc(b, *doc_line);
	case YAML_ALIAS_EVENT:
		berror(b, &ev->start_mark, "YAML aliases (*name) are not supported");
		return -EINVAL;
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor) {
			berror(b, &ev->start_mark, "YAML anchors (&name) are not supported");
			return -EINVAL;
		}
		n = new_node(b, YNODE_SCALAR, &ev->start_mark);
		if (!n)
			return b->failed ? -EINVAL : -ENOMEM;
		n->value = arena_strndup(&b->f->arena, (const char *)ev->data.scalar.value,
					 ev->data.scalar.length);
		if (!n->value)
			return -ENOMEM;
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.plain_implicit && !ev->data.scalar.tag;
		return attach(b, n, &ev->start_mark);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if ((ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor) ||
		    (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor)) {
			berror(b, &ev->start_mark, "YAML anchors (&name) are not supported");
			return -EINVAL;
		}
		return open_container(b, ev->type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQ : YNODE_MAP,
				      &ev->start_mark);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return close_container(b, &ev->start_mark);
	default:
		return 0;
	}
}

int yfile_load_buffer(const char *name, const char *data, size_t len,
		      struct yfile **ret, struct diag *d)
{
	struct builder b;
	struct yfile *f = NULL;
	yaml_parser_t parser;
	bool parser_ok = false;
	unsigned doc_line = 1;
	int r = 0;

	memset(&b, 0, sizeof(b));
	if (len > YAMLTREE_MAX_FILE) {
		diag_add(d, name, 0, 0, "file too large for a YAML file (%zu bytes, limit %u)",
			 len, YAMLTREE_MAX_FILE);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	arena_init(&f->arena);
	f->path = arena_strdup(&f->arena, name);
	if (!f->path) {
		r = -ENOMEM;
		goto fail;
	}
	b.f = f;
	b.d = d;
	if (!yaml_parser_initialize(&parser)) {
		r = -ENOMEM;
		goto fail;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	for (;;) {
		yaml_event_t ev;
		bool done;

		if (!yaml_parser_parse(&parser, &ev)) {
			const yaml_mark_t *m = parser.problem ? &parser.problem_mark : &parser.context_mark;
			char msg[512];

			if (parser.context && parser.context_mark.line != m->line)
				snprintf(msg, sizeof(msg), "YAML syntax error: %s %s started at line %zu",
					 parser.problem ? parser.problem : "unknown problem", parser.context,
					 (size_t)parser.context_mark.line + 1);
			else
				snprintf(msg, sizeof(msg), "YAML syntax error: %s%s%s",
					 parser.problem ? parser.problem : "unknown problem",
					 parser.context ? " " : "", parser.context ? parser.context : "");
			berror(&b, m, msg);
			r = -EINVAL;
			goto fail;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		r = handle_event(&b, &ev, &doc_line);
		yaml_event_delete(&ev);
		if (r < 0)
			goto fail;
		if (done)
			break;
	}
	if (b.failed) {
		r = -EINVAL;
		goto fail;
	}
	f->docs = b.docs;
	f->ndocs = b.ndocs;
	b.docs = NULL;
	yaml_parser_delete(&parser);
	*ret = f;
	return 0;
fail:
	if (parser_ok)
		yaml_parser_delete(&parser);
	while (b.depth > 0)
		free(b.stack[--b.depth].kids);
	free(b.docs);
	yfile_free(f);
	return r;
}

int yfile_load(const char *path, struct yfile **ret, struct diag *d)
{
	FILE *fp = fopen(path, "rb");
	char *data = NULL;
	size_t len = 0;
	long size;
	int r;

	if (!fp)
		return -errno;
	if (fseek(fp, 0, SEEK_END) < 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) < 0) {
		r = -errno;
		goto out;
	}
	if ((unsigned long)size > YAMLTREE_MAX_FILE) {
		diag_add(d, path, 0, 0, "file too large for a YAML file (%ld bytes, limit %u)",
			 size, YAMLTREE_MAX_FILE);
		r = -EINVAL;
		goto out;
	}
	data = malloc((size_t)size + 1);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	len = fread(data, 1, (size_t)size, fp);
	if (ferror(fp)) {
		r = -EIO;
		goto out;
	}
	r = yfile_load_buffer(path, data, len, ret, d);
out:
	free(data);
	fclose(fp);
	return r;
}

void yfile_free(struct yfile *f)
{
	if (!f)
		return;
	free(f->docs);
	arena_free(&f->arena);
	free(f);
}

const struct ynode *ynode_get(const struct ynode *map, const char *key)
{
	size_t klen = strlen(key);

	if (!map || map->type != YNODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (map->keys[i]->len == klen && memcmp(map->keys[i]->value, key, klen) == 0)
			return map->items[i];
	return NULL;
}

bool ynode_is_null(const struct ynode *n)
{
	if (!n || n->type != YNODE_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
	       strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

int ynode_bool(const struct ynode *n, bool *ret)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };

	if (!n || n->type != YNODE_SCALAR || !n->plain)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(n->value, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(n->value, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ynode_kind(const struct ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->type) {
	case YNODE_SCALAR:
		return ynode_is_null(n) ? "null" : "a single value";
	case YNODE_SEQ:
		return "a list";
	default:
		return "a map";
	}
}
