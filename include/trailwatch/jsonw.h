/* jsonw.h: writing JSON text into a struct buf.
 *
 * Alerts are rendered straight into a reused output buffer (no tree, no
 * allocation per alert).  Strings are escaped per RFC 8259: quote, backslash
 * and control characters; the input is valid UTF-8 (the scanner checked it)
 * and is copied as is.  Each function returns 0, -E2BIG or -ENOMEM.
 */
#ifndef TRAILWATCH_JSONW_H
#define TRAILWATCH_JSONW_H

#include <stddef.h>

#include "trailwatch/buf.h"

/* "s" with escapes. */
int jsonw_string(struct buf *b, const char *s, size_t len);

/* The escaped contents alone, without the quotes (to build one string from
 * several pieces). */
int jsonw_escaped(struct buf *b, const char *s, size_t len);

/* ,"key":"value" -- the leading comma unless first; a NULL value is null. */
int jsonw_member_str(struct buf *b, const char *key, const char *value, int first);

/* ,"key":["v0","v1",...] -- the leading comma unless first; n may be 0. */
int jsonw_member_strs(struct buf *b, const char *key, const char *const *values, size_t n, int first);

#endif
