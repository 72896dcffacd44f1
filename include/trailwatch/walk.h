/* walk.h: regular files under a path, in byte-wise (S3 key) order.
 *
 * Used for rule directories and for replay input.  Directories are walked
 * recursively; the result is sorted by full path with strcmp, which is the
 * order S3 lists keys in.  Bounded: at most WALK_MAX_DEPTH levels and
 * WALK_MAX_FILES files.  Does not log.
 */
#ifndef TRAILWATCH_WALK_H
#define TRAILWATCH_WALK_H

#include <stdbool.h>
#include <stddef.h>

#define WALK_MAX_DEPTH 32
#define WALK_MAX_FILES 10000000

struct pathlist {
	char **paths;
	size_t n, cap;
};

void pathlist_free(struct pathlist *l);

/* Sorts paths[first..n) with cmp (a qsort comparator of char * elements);
 * an empty list is fine. */
void pathlist_sort(struct pathlist *l, size_t first, int (*cmp)(const void *a, const void *b));

/* Appends the files under path (path itself when it is a file) for which
 * accept(file, ctx) returns true (accept may be NULL: every file), sorted.
 * Returns 0, or a negative errno with a message in err (the path that failed). */
int walk_files(const char *path, bool (*accept)(const char *file, void *ctx), void *ctx,
	       struct pathlist *out, char *err, size_t errlen);

#endif
