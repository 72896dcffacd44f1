/* buf.c: bounded growable buffer (see buf.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/buf.h"

void buf_init(struct buf *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit ? limit : SIZE_MAX - BUF_PAD - 1;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		memset(b->data, 0, BUF_PAD);
}

int buf_reserve(struct buf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (n > b->limit || b->len > b->limit - n)
		return -E2BIG;
	want = b->len + n;
	if (want <= b->cap && b->data)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap = cap > SIZE_MAX / 4 ? want : cap * 2;
	if (cap > b->limit)
		cap = b->limit;
	p = realloc(b->data, cap + BUF_PAD);
	if (!p)
		return -ENOMEM;
	/* Only the pad after the data is zeroed: touching the whole new
	 * capacity would make every reserved page resident. */
	memset(p + b->len, 0, BUF_PAD);
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int r = buf_reserve(b, n);

	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	memset(b->data + b->len, 0, BUF_PAD);
	return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = buf_reserve(b, (size_t)n + 1);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	memset(b->data + b->len, 0, BUF_PAD);
	return 0;
}

void buf_set_len(struct buf *b, size_t len)
{
	b->len = len;
	memset(b->data + len, 0, BUF_PAD);
}
