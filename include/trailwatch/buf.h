/* buf.h: a growable byte buffer with a hard size limit.
 *
 * Everything trailwatch reads from outside (objects, decompressed text,
 * records) lands in a struct buf whose limit is set from configuration, so an
 * untrusted size can never grow memory without bound (curl's dynbuf "toobig").
 * The data is always followed by BUF_PAD zero bytes, so scanners may read a
 * few bytes past the end without a bounds check per byte.
 */
#ifndef TRAILWATCH_BUF_H
#define TRAILWATCH_BUF_H

#include <stddef.h>

#define BUF_PAD 64

struct buf {
	char *data;	/* NULL until the first append */
	size_t len;
	size_t cap;	/* bytes allocated, not counting the padding */
	size_t limit;	/* len may never exceed this; 0 means SIZE_MAX */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);

/* Keeps the allocation, forgets the contents. */
void buf_reset(struct buf *b);

/* Forgets the contents, and frees the allocation too when it is larger
 * than keep bytes, so that one large object does not hold its memory for as
 * long as the buffer lives (the next append allocates again). */
void buf_trim(struct buf *b, size_t keep);

/* Makes room for at least n more bytes.  -E2BIG past the limit, -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);

/* Appends n bytes.  -E2BIG past the limit (nothing appended), -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets len after the caller wrote into the reserved space; re-zeroes the pad. */
void buf_set_len(struct buf *b, size_t len);

/* Replaces b's contents with the regular file at path, within b's limit.
 * The bytes pass through a stack chunk that is wiped, since the file may be
 * a secret (wipe b too, then).  0; -ENOENT ("PATH: no such file"); -EINVAL
 * for something other than a regular file (a FIFO does not block the open);
 * -EFBIG past the limit; -ENOMEM; other -errno.  msg says "PATH: why",
 * never the content. */
int buf_read_file(struct buf *b, const char *path, char *msg, size_t msglen);

#endif
