/* walk.c: recursive, sorted file listing (see walk.h).
 *
 * A depth-first walk that keeps the device and inode of every directory on
 * the way down from the walked path: a directory met again below itself is
 * a loop, skipped before it is entered (without that, `loop -> .` would be
 * walked WALK_MAX_DEPTH times over, and two such links 2^WALK_MAX_DEPTH
 * times).  Problems below the walked path become skips; only the walked
 * path itself, the file bound and memory end the walk.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trailwatch/array.h"
#include "trailwatch/walk.h"

struct walker {
	bool (*accept)(const char *file, void *ctx);
	void *ctx;
	struct pathlist *out;
	struct walk_skips *skips;
	char *err;
	size_t errlen;
	struct stat above[WALK_MAX_DEPTH];	/* the directories being walked, walked path first */
};

void pathlist_free(struct pathlist *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	memset(l, 0, sizeof(*l));
}

void pathlist_sort(struct pathlist *l, size_t first, int (*cmp)(const void *a, const void *b))
{
	/* an empty list has no array at all: qsort(NULL, 0) is undefined */
	if (l->n > first)
		qsort(l->paths + first, l->n - first, sizeof(*l->paths), cmp);
}

void walk_skips_free(struct walk_skips *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].path);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int push(struct walker *w, const char *path)
{
	struct pathlist *l = w->out;
	char **np, *p;

	if (l->n >= WALK_MAX_FILES) {
		snprintf(w->err, w->errlen, "%s: too many files", path);
		return -E2BIG;
	}
	np = array_grow(l->paths, &l->cap, l->n + 1, sizeof(*np), 64);
	if (!np)
		return -ENOMEM;
	l->paths = np;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	l->paths[l->n++] = p;
	return 0;
}

/* Records path as skipped; -ENOMEM is the only failure. */
static int skip(struct walker *w, const char *path, int error, const char *why)
{
	struct walk_skips *s = w->skips;
	struct walk_skip *nv;

	if (s->n >= WALK_MAX_SKIPS) {
		s->dropped++;
		return 0;
	}
	nv = array_grow(s->v, &s->cap, s->n + 1, sizeof(*nv), 16);
	if (!nv)
		return -ENOMEM;
	s->v = nv;
	nv[s->n].path = strdup(path);
	if (!nv[s->n].path)
		return -ENOMEM;
	nv[s->n].error = error;
	snprintf(nv[s->n].why, sizeof(nv[s->n].why), "%s", why ? why : strerror(-error));
	s->n++;
	return 0;
}

static int cmp_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_skips(const void *a, const void *b)
{
	return strcmp(((const struct walk_skip *)a)->path, ((const struct walk_skip *)b)->path);
}

static int walk_entry(struct walker *w, const char *path, unsigned depth);

/* The entries of directory path (st: its stat), which is depth levels below
 * the walked path. */
static int walk_dir(struct walker *w, const char *path, const struct stat *st, unsigned depth)
{
	DIR *dir;
	struct dirent *de;
	int r = 0;

	for (unsigned i = 0; i < depth; i++)
		if (w->above[i].st_dev == st->st_dev && w->above[i].st_ino == st->st_ino)
			return skip(w, path, -ELOOP, i + 1 == depth ? "loops back to the directory it is in"
								    : "loops back to a directory above it");
	if (depth >= WALK_MAX_DEPTH)
		return skip(w, path, -ELOOP, "directories nested too deeply");
	dir = opendir(path);
	if (!dir) {
		r = -errno;
		if (depth == 0)
			snprintf(w->err, w->errlen, "%s: %s", path, strerror(-r));
		else if (r != -ENOENT)
			r = skip(w, path, r, NULL);
		else
			r = 0;	/* gone since it was listed */
		return r;
	}
	w->above[depth] = *st;
	for (;;) {
		char *child;

		errno = 0;
		de = readdir(dir);
		if (!de) {
			/* a directory that fails half-way keeps what was read */
			if (errno != 0)
				r = skip(w, path, -errno, NULL);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (asprintf(&child, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
			     de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = walk_entry(w, child, depth + 1);
		free(child);
		if (r < 0)
			break;
	}
	closedir(dir);
	return r;
}

/* One entry found in a directory, depth levels below the walked path. */
static int walk_entry(struct walker *w, const char *path, unsigned depth)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		int e = errno;

		if (e == ENOMEM)
			return -ENOMEM;
		if (e == ENOENT)	/* a dangling link, or gone since it was listed */
			return lstat(path, &st) == 0 ? skip(w, path, -ENOENT, "dangling symbolic link") : 0;
		return skip(w, path, -e, e == ELOOP ? "symbolic link loop" : NULL);
	}
	if (S_ISREG(st.st_mode))
		return w->accept && !w->accept(path, w->ctx) ? 0 : push(w, path);
	if (S_ISDIR(st.st_mode))
		return walk_dir(w, path, &st, depth);
	return 0;	/* sockets, fifos, devices: not input */
}

int walk_files(const char *path, bool (*accept)(const char *file, void *ctx), void *ctx,
	       struct pathlist *out, struct walk_skips *skips, char *err, size_t errlen)
{
	struct walker w = {
		.accept = accept, .ctx = ctx, .out = out, .skips = skips, .err = err, .errlen = errlen,
	};
	size_t first = out->n, first_skip = skips->n;
	struct stat st;
	int r = 0;

	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	} else if (S_ISREG(st.st_mode)) {
		r = accept && !accept(path, ctx) ? 0 : push(&w, path);
	} else if (S_ISDIR(st.st_mode)) {
		r = walk_dir(&w, path, &st, 0);
	}
	if (r == -ENOMEM)
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
	if (r < 0)
		return r;
	pathlist_sort(out, first, cmp_paths);
	if (skips->n > first_skip)
		qsort(skips->v + first_skip, skips->n - first_skip, sizeof(*skips->v), cmp_skips);
	return 0;
}
