/* walk.c: recursive, sorted file listing (see walk.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trailwatch/array.h"
#include "trailwatch/walk.h"

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

static int push(struct pathlist *l, const char *path)
{
	char **np, *p;

	if (l->n >= WALK_MAX_FILES)
		return -E2BIG;
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

static int cmp_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *path, unsigned depth, bool (*accept)(const char *, void *), void *ctx,
		struct pathlist *out, char *err, size_t errlen)
{
	struct stat st;
	DIR *dir = NULL;
	struct dirent *de;
	int r = 0;

	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	if (S_ISREG(st.st_mode)) {
		if (accept && !accept(path, ctx))
			return 0;
		r = push(out, path);
		if (r < 0)
			snprintf(err, errlen, "%s: %s", path, r == -E2BIG ? "too many files" : strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode))
		return 0;	/* sockets, fifos, devices: not input */
	if (depth >= WALK_MAX_DEPTH) {
		snprintf(err, errlen, "%s: directories nested too deeply", path);
		return -ELOOP;
	}
	dir = opendir(path);
	if (!dir) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	while ((de = readdir(dir))) {
		char *child;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (asprintf(&child, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
			     de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = walk(child, depth + 1, accept, ctx, out, err, errlen);
		free(child);
		if (r < 0)
			break;
	}
	closedir(dir);
	return r;
}

int walk_files(const char *path, bool (*accept)(const char *file, void *ctx), void *ctx,
	       struct pathlist *out, char *err, size_t errlen)
{
	size_t first = out->n;
	int r = walk(path, 0, accept, ctx, out, err, errlen);

	if (r < 0)
		return r;
	pathlist_sort(out, first, cmp_paths);
	return 0;
}
