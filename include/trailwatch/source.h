/* source.h: what every source (S3 bucket, local directory) hands its
 * objects to.  The service implements it: detection, then the spool.
 */
#ifndef TRAILWATCH_SOURCE_H
#define TRAILWATCH_SOURCE_H

#include <stddef.h>

struct source_sink {
	/* Detects on one object and spools its alerts (not yet durable).
	 * name is "s3://bucket/key" or the file's path.  A negative return
	 * stops the poll. */
	int (*object)(void *ctx, const char *name, const char *data, size_t len);
	/* Makes every alert spooled so far durable; a source moves its
	 * checkpoint only after this returned 0.  0 or a negative errno. */
	int (*commit)(void *ctx);
	void *ctx;
};

#endif
