/* input.h: log objects from disk or memory to JSON text, within limits.
 *
 * An object is either gzip (recognised by its magic bytes, whatever its name)
 * or plain JSON.  gzip is decompressed with libdeflate into a buffer that may
 * not grow past max_decompressed: a gzip bomb stops at the limit with an
 * error instead of being followed.  Multi-member gzip files are read whole.
 * Nothing here logs: errors come back as text naming the byte offset.
 */
#ifndef TRAILWATCH_INPUT_H
#define TRAILWATCH_INPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "trailwatch/buf.h"

struct libdeflate_decompressor;

struct input_limits {
	size_t max_object;		/* bytes as stored; default 256 MiB */
	size_t max_decompressed;	/* bytes of JSON; default 1 GiB */
};

#define INPUT_DEFAULT_MAX_OBJECT (256u << 20)
#define INPUT_DEFAULT_MAX_DECOMPRESSED (1u << 30)

/* Buffers that hold one object at a time (its bytes, its JSON) keep their
 * memory from object to object up to this size (CloudTrail's objects are
 * mostly well under a MiB); past it they are freed (buf_trim) once the
 * object is done, so that memory returns after a large object instead of
 * staying at its size for as long as the daemon runs. */
#define INPUT_KEEP_BUFFER (64u << 20)

enum input_kind {
	INPUT_LOG,		/* *.json or *.json.gz outside digest/insight folders */
	INPUT_DIGEST,		/* CloudTrail-Digest/ or a *_CloudTrail-Digest_* name */
	INPUT_INSIGHT,		/* CloudTrail-Insight/ */
	INPUT_OTHER,		/* any other name */
};

/* Classifies a path or S3 key by its name alone. */
enum input_kind input_classify(const char *path);

/* The delivery stamp in a CloudTrail log file name
 * (ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_UNIQUE.json.gz): copies
 * "YYYYMMDDTHHMMZ" into out and returns 0, or -ENOENT for other names. */
int input_delivery_stamp(const char *path, char out[15]);

/* qsort comparator for an array of paths (const char *): delivery order,
 * the file-name stamp first, then the path; unstamped names first. */
int input_cmp_delivery(const void *a, const void *b);

/* Reads a whole file into raw (which is reset first).  -EFBIG past
 * max_object, -errno otherwise; err names the problem. */
int input_read_file(const char *path, size_t max_object, struct buf *raw, char *err, size_t errlen);

/* A whole file mapped read-only: how replay reads local logs, as
 * libdeflate-gunzip does, without copying them out of the page cache first. */
struct input_map {
	const char *data;
	size_t len;
};

/* Maps a regular, non-empty file of at most max_object bytes.  Returns 0;
 * -EFBIG past max_object; -ENOTSUP for an empty or special file or when it
 * cannot be mapped (read it with input_read_file instead); -errno otherwise;
 * err names the problem. */
int input_map_file(const char *path, size_t max_object, struct input_map *m, char *err, size_t errlen);
void input_unmap(struct input_map *m);

/* input_decode over a mapping.  A file that another process truncates while
 * it is mapped makes its lost pages raise SIGBUS when read; here that becomes
 * -EIO ("the file shrank while it was being read") instead of the end of the
 * process.  Only the calling thread's mapping is covered. */
int input_decode_mapped(struct libdeflate_decompressor *d, const struct input_map *m,
			const struct input_limits *lim, struct buf *out, char *err, size_t errlen);

/* Turns an object's bytes into JSON text in out (reset first): decompressed
 * when it starts with the gzip magic, copied otherwise.  d may be NULL for
 * plain JSON.  Returns 0, -E2BIG past max_decompressed, -EBADMSG for corrupt
 * gzip, -ENOMEM; err says where. */
int input_decode(struct libdeflate_decompressor *d, const char *data, size_t len,
		 const struct input_limits *lim, struct buf *out, char *err, size_t errlen);

#endif
