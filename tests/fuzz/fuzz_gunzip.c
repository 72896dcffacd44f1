/* fuzz_gunzip: object decoding (gzip members, limits) on arbitrary bytes. */
#include <libdeflate.h>
#include <stdint.h>

#include "trailwatch/input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct libdeflate_decompressor *d;
	struct input_limits lim = { .max_object = 1 << 20, .max_decompressed = 1 << 20 };
	struct buf out;
	char err[300];

	if (!d)
		d = libdeflate_alloc_decompressor();
	buf_init(&out, 0);
	input_decode(d, (const char *)data, size, &lim, &out, err, sizeof(err));
	buf_free(&out);
	return 0;
}
