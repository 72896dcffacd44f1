/* buf.c: bounded growable buffer (see buf.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trailwatch/buf.h"
#include "trailwatch/msg.h"

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

void buf_trim(struct buf *b, size_t keep)
{
	if (b->cap > keep)
		buf_free(b);
	else
		buf_reset(b);
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

int buf_read_file(struct buf *b, const char *path, char *msg, size_t msglen)
{
	char chunk[8192];
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	buf_reset(b);
	/* O_NONBLOCK: a FIFO put in the file's place cannot hang the open */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			msg_set(msg, msglen, "%s: no such file", path);
		else
			msg_set(msg, msglen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		msg_set(msg, msglen, "%s: cannot stat: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		msg_set(msg, msglen, "%s: not a regular file", path);
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			msg_set(msg, msglen, "%s: cannot read: %s", path, strerror(-r));
			break;
		}
		if (n == 0)
			break;
		r = buf_append(b, chunk, (size_t)n);
		if (r == -E2BIG) {
			r = -EFBIG;
			msg_set(msg, msglen, "%s: larger than %zu bytes", path, b->limit);
		}
		if (r < 0)
			break;
	}
out:
	explicit_bzero(chunk, sizeof(chunk));	/* the file may hold a secret */
	close(fd);
	return r;
}
