/* fuzz_ctlog: the record splitter and field extractor on arbitrary bytes.
 * Every value found is also unescaped, so the unescaper is covered too.
 * One input holds many records, so the member-name cache carries from
 * record to record, and unwanted values reach the 64-byte fast path. */
#include <stdint.h>
#include <string.h>

#include "trailwatch/buf.h"
#include "trailwatch/ctlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = { "eventName", "userIdentity.arn", "requestParameters",
					     "requestParameters.bucketName", "resources.ARN", "a.b.c" };
	struct ctlog_limits lim = { .max_record = 4096, .max_depth = 16 };
	struct field_index fi;
	struct ctlog_reader r;
	struct ctlog_error err;
	struct record rec;
	struct buf b;
	int slot, n;

	field_index_init(&fi);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		field_index_add(&fi, paths[i], &slot);
	/* As the rule loader does: lookup tables and node ids (the scanner's
	 * member-name cache is per node). */
	if (field_index_finish(&fi) < 0)
		goto out;
	if (record_init(&rec, fi.nslots) < 0)
		goto out;
	buf_init(&b, 0);
	if (buf_append(&b, data, size) < 0)
		goto out2;
	if (ctlog_open(&r, b.data, b.len, &fi, &lim, &err) == 0) {
		while ((n = ctlog_next(&r, &rec, &err)) != 0) {
			if (n < 0) {
				if (err.fatal)
					break;
				continue;
			}
			for (size_t i = 0; i < rec.nvalues; i++) {
				const char *t;
				size_t len;
				record_value_text(&rec, &rec.values[i], &t, &len);
			}
		}
	}
out2:
	buf_free(&b);
	record_free(&rec);
out:
	field_index_free(&fi);
	return 0;
}
