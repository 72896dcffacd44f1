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

/* Replaces dir/name with data[0..len).  -errno. */
int statefile_write(const char *dir, const char *name, const void *data, size_t len, char *msg, size_t msglen);

/* Reads dir/name into out (reset first, bounded by out's limit).  -ENOENT
 * when there is no such file, -E2BIG past the limit, other -errno. */
int statefile_read(const char *dir, const char *name, struct buf *out, char *msg, size_t msglen);

#endif
