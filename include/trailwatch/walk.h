/* walk.h: regular files under a path, in byte-wise (S3 key) order.
 *
 * Used for rule directories, for replay input and for the `type: dir`
 * source.  Directories are walked recursively, following symbolic links;
 * the result is sorted by full path with strcmp, which is the order S3
 * lists keys in.  Bounded: at most WALK_MAX_DEPTH levels, WALK_MAX_FILES
 * files and WALK_MAX_SKIPS recorded skips.  Does not log.
 *
 * A problem with one entry below the walked path does not stop the walk:
 * the entry is left out, recorded in a struct walk_skips, and everything
 * else is still listed.  Such entries are a symbolic link to the directory
 * it is in or to one above it (`loop -> .`, `up -> ..`: a loop, noticed
 * before it is entered), a loop of links the kernel refuses (ELOOP), a
 * dangling link, a directory nested deeper than WALK_MAX_DEPTH, and an
 * entry or directory that cannot be read (EACCES, EIO...).  An entry that
 * disappears between being listed and being looked at is simply not there:
 * it is neither listed nor recorded.
 */
#ifndef TRAILWATCH_WALK_H
#define TRAILWATCH_WALK_H

#include <stdbool.h>
#include <stddef.h>

#define WALK_MAX_DEPTH 32
#define WALK_MAX_FILES 10000000
#define WALK_MAX_SKIPS 1000

struct pathlist {
	char **paths;
	size_t n, cap;
};

/* One entry below the walked path that was left out. */
struct walk_skip {
	char *path;		/* as it would have been listed (raw bytes: escape before printing) */
	int error;		/* negative errno: -ELOOP for the loops and the depth, -ENOENT dangling... */
	char why[80];		/* what is wrong, for a message: "symbolic link loop", strerror()... */
};

/* Zero-initialise; release with walk_skips_free. */
struct walk_skips {
	struct walk_skip *v;	/* sorted by path */
	size_t n, cap;
	size_t dropped;		/* more skips than WALK_MAX_SKIPS: counted only */
};

void pathlist_free(struct pathlist *l);

/* Sorts paths[first..n) with cmp (a qsort comparator of char * elements);
 * an empty list is fine. */
void pathlist_sort(struct pathlist *l, size_t first, int (*cmp)(const void *a, const void *b));

/* Frees every skip; the list is empty and reusable.  NULL is fine. */
void walk_skips_free(struct walk_skips *s);

/* Appends the files under path (path itself when it is a file) for which
 * accept(file, ctx) returns true (accept may be NULL: every file), sorted,
 * and appends the entries below path that were left out to *skips (see
 * above; sorted among those this call adds).  Returns 0 (also when entries
 * were skipped), or a negative errno with a message in err naming the path:
 * path itself cannot be looked at or read (the walk lists nothing then),
 * -E2BIG for more than WALK_MAX_FILES files, -ENOMEM.  After an error, out
 * and skips may hold part of the walk; the caller frees them as usual. */
int walk_files(const char *path, bool (*accept)(const char *file, void *ctx), void *ctx,
	       struct pathlist *out, struct walk_skips *skips, char *err, size_t errlen);

#endif
