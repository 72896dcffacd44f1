/* statefile.h: small state files (checkpoints) written atomically.
 *
 * statefile_write puts the whole content in DIR/NAME.tmp, fsyncs it,
 * renames it over DIR/NAME and fsyncs DIR, so after a crash the file holds
 * either the old content or the new one, never a mix.  Nothing here logs;
 * errors name the file in msg.
 */
#ifndef TRAILWATCH_STATEFILE_H
#define TRAILWATCH_STATEFILE_H

#include <stddef.h>

#include "trailwatch/buf.h"

/* Creates dir and its missing parents with mode 0700.  -errno. */
int statefile_mkdirs(const char *dir, char *msg, size_t msglen);

/* Would statefile_mkdirs(dir) succeed for this process, and could it then
 * write files in dir?  Every part of dir that exists must be a directory,
 * the first one missing must be creatable in its parent, and dir, when it
 * exists, writable.  Creates nothing.  -errno with msg. */
int statefile_check_mkdirs(const char *dir, char *msg, size_t msglen);

/* Replaces dir/name with data[0..len).  -errno. */
int statefile_write(const char *dir, const char *name, const void *data, size_t len, char *msg, size_t msglen);

/* Reads dir/name into out (buf_read_file: reset first, bounded by out's
 * limit).  -ENOENT when there is no such file, -EFBIG past the limit, other
 * -errno. */
int statefile_read(const char *dir, const char *name, struct buf *out, char *msg, size_t msglen);

/* A file name for key (an S3 prefix, a path), one-to-one: '/' becomes '_',
 * bytes other than A-Z a-z 0-9 . - become %XX ('_' too, so "a_b/" and
 * "a/b/" differ), and a name longer than STATEFILE_NAME_MAX keeps its first
 * 150 bytes and a part of the key's SHA-256; then suffix.  malloc'd, or
 * NULL when out of memory. */
#define STATEFILE_NAME_MAX 180
char *statefile_name(const char *key, const char *suffix);

#endif
