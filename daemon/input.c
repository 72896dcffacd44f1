/* input.c: bounded reading and gzip decoding (see input.h). */
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trailwatch/input.h"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

enum input_kind input_classify(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (strstr(path, "/CloudTrail-Digest/") || strncmp(path, "CloudTrail-Digest/", 18) == 0 ||
	    strstr(base, "_CloudTrail-Digest_"))
		return INPUT_DIGEST;
	if (strstr(path, "/CloudTrail-Insight/") || strncmp(path, "CloudTrail-Insight/", 19) == 0 ||
	    strstr(base, "_CloudTrail-Insight_"))
		return INPUT_INSIGHT;
	if (ends_with(base, ".json.gz") || ends_with(base, ".json"))
		return INPUT_LOG;
	return INPUT_OTHER;
}

int input_delivery_stamp(const char *path, char out[15])
{
	const char *base = strrchr(path, '/'), *p;

	base = base ? base + 1 : path;
	p = strstr(base, "_CloudTrail_");
	if (!p)
		return -ENOENT;
	p = strchr(p + 12, '_');	/* after the region */
	if (!p || strlen(p + 1) < 14)
		return -ENOENT;
	p++;
	for (int i = 0; i < 14; i++) {
		char c = p[i];
		bool ok = i == 8 ? c == 'T' : i == 13 ? c == 'Z' : (c >= '0' && c <= '9');
		if (!ok)
			return -ENOENT;
	}
	memcpy(out, p, 14);
	out[14] = '\0';
	return 0;
}

/* Opens path read-only (with extra open flags) and stats it; a file over
 * max_object is refused.  Returns the descriptor, or -errno (-EFBIG) with
 * err filled in. */
static int open_bounded(const char *path, int flags, size_t max_object, struct stat *st, char *err,
			size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags), r;

	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return r;
	}
	if (fstat(fd, st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat: %s", strerror(errno));
		close(fd);
		return r;
	}
	if ((uint64_t)st->st_size > max_object) {
		snprintf(err, errlen, "file of %lld bytes is over the limit of %zu bytes",
			 (long long)st->st_size, max_object);
		close(fd);
		return -EFBIG;
	}
	return fd;
}

int input_read_file(const char *path, size_t max_object, struct buf *raw, char *err, size_t errlen)
{
	struct stat st;
	int fd, r = 0;

	buf_reset(raw);
	fd = open_bounded(path, 0, max_object, &st, err, errlen);
	if (fd < 0)
		return fd;
	r = buf_reserve(raw, (size_t)st.st_size);
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (raw->len == raw->cap) {
			/* The file grew while we read it: read on, within the limit. */
			r = buf_reserve(raw, 65536 < max_object - raw->len ? 65536 : max_object - raw->len);
			if (r < 0 || raw->len >= max_object) {
				r = -EFBIG;
				snprintf(err, errlen, "file is over the limit of %zu bytes", max_object);
				goto out;
			}
		}
		n = read(fd, raw->data + raw->len, raw->cap - raw->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			snprintf(err, errlen, "read error: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		buf_set_len(raw, raw->len + (size_t)n);
	}
out:
	close(fd);
	return r;
}

static int gunzip(struct libdeflate_decompressor *d, const unsigned char *in, size_t len,
		  size_t limit, struct buf *out, char *err, size_t errlen)
{
	size_t pos = 0;

	while (pos < len) {
		size_t avail, in_used = 0, out_used = 0, hint;
		enum libdeflate_result res;

		if (len - pos < 18 || in[pos] != 0x1f || in[pos + 1] != 0x8b) {
			snprintf(err, errlen, "%s at byte %zu", pos ? "unexpected data after the gzip data" :
				 "not gzip data", pos);
			return -EBADMSG;
		}
		/* The trailer's size field is exact for a single member (modulo
		 * 4 GiB); it is only a first guess, never trusted. */
		hint = (size_t)in[len - 4] | (size_t)in[len - 3] << 8 | (size_t)in[len - 2] << 16 |
		       (size_t)in[len - 1] << 24;
		if (hint < 4 * (len - pos))
			hint = 4 * (len - pos);
		avail = limit - out->len;
		if (hint + 1 < avail)
			avail = hint + 1;
		for (;;) {
			int r = buf_reserve(out, avail);
			if (r < 0) {
				snprintf(err, errlen, "out of memory for %zu bytes", avail);
				return -ENOMEM;
			}
			res = libdeflate_gzip_decompress_ex(d, in + pos, len - pos, out->data + out->len, avail,
							    &in_used, &out_used);
			if (res != LIBDEFLATE_INSUFFICIENT_SPACE)
				break;
			if (avail >= limit - out->len) {
				snprintf(err, errlen, "decompressed data over the limit of %zu bytes "
					 "(stopped: gzip member at byte %zu)", limit, pos);
				return -E2BIG;
			}
			avail = avail > (limit - out->len) / 4 ? limit - out->len : avail * 4;
		}
		if (res != LIBDEFLATE_SUCCESS) {
			snprintf(err, errlen, "corrupt gzip data (member at byte %zu)", pos);
			return -EBADMSG;
		}
		buf_set_len(out, out->len + out_used);
		pos += in_used;
		/* Some writers pad the end with zero bytes: allow that. */
		while (pos < len && in[pos] == 0)
			pos++;
	}
	return 0;
}

int input_decode(struct libdeflate_decompressor *d, const char *data, size_t len,
		 const struct input_limits *lim, struct buf *out, char *err, size_t errlen)
{
	size_t limit = lim && lim->max_decompressed ? lim->max_decompressed : INPUT_DEFAULT_MAX_DECOMPRESSED;
	const unsigned char *in = (const unsigned char *)data;

	buf_reset(out);
	if (len >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
		if (!d) {
			snprintf(err, errlen, "no decompressor");
			return -EINVAL;
		}
		return gunzip(d, in, len, limit, out, err, errlen);
	}
	if (len > limit) {
		snprintf(err, errlen, "JSON of %zu bytes is over the limit of %zu bytes", len, limit);
		return -E2BIG;
	}
	if (buf_append(out, data, len) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int input_cmp_delivery(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	char sx[15] = "", sy[15] = "";
	int c;

	input_delivery_stamp(x, sx);
	input_delivery_stamp(y, sy);
	c = strcmp(sx, sy);
	return c ? c : strcmp(x, y);
}

/* ---- mapped files ------------------------------------------------------ */

int input_map_file(const char *path, size_t max_object, struct input_map *m, char *err, size_t errlen)
{
	struct stat st;
	void *data;
	int fd, r = 0;

	m->data = NULL;
	m->len = 0;
	/* O_NONBLOCK: a FIFO must not hang the open (it is refused below). */
	fd = open_bounded(path, O_NONBLOCK, max_object, &st, err, errlen);
	if (fd < 0)
		return fd;
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		r = -ENOTSUP;
		snprintf(err, errlen, "not a regular file with data");
		goto out;
	}
	data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (data == MAP_FAILED) {
		r = -ENOTSUP;
		snprintf(err, errlen, "cannot map: %s", strerror(errno));
		goto out;
	}
	m->data = data;
	m->len = (size_t)st.st_size;
out:
	close(fd);
	return r;
}

void input_unmap(struct input_map *m)
{
	if (m->data)
		munmap((void *)m->data, m->len);
	m->data = NULL;
	m->len = 0;
}

/* The SIGBUS guard: while a thread decodes a mapping, bus_guard points at
 * the mapping's range and the place to return to.  The handler jumps back
 * only for a fault inside that range; any other SIGBUS gets the default
 * action.  Jumping out of libdeflate is safe: it holds no memory or lock
 * across a call, and out's length is only set after it returns. */
struct bus_guard {
	sigjmp_buf back;
	const char *lo, *hi;
};

static _Thread_local struct bus_guard *bus_guard;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct bus_guard *g = bus_guard;
	const char *at = si->si_addr;

	(void)uc;
	if (g && at >= g->lo && at < g->hi)
		siglongjmp(g->back, 1);
	signal(sig, SIG_DFL);	/* not ours: the fault repeats, with the default action */
}

static void install_sigbus(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

int input_decode_mapped(struct libdeflate_decompressor *d, const struct input_map *m,
			const struct input_limits *lim, struct buf *out, char *err, size_t errlen)
{
	struct bus_guard g;
	int r;

	pthread_once(&bus_once, install_sigbus);
	g.lo = m->data;
	g.hi = m->data + m->len;
	if (sigsetjmp(g.back, 1)) {
		bus_guard = NULL;
		buf_reset(out);
		snprintf(err, errlen, "the file shrank while it was being read");
		return -EIO;
	}
	bus_guard = &g;
	r = input_decode(d, m->data, m->len, lim, out, err, errlen);
	bus_guard = NULL;
	return r;
}
