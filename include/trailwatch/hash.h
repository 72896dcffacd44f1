/* fnv.h: FNV-1a, 64 bits: the hash of correlation group keys and of rule
 * fingerprints (not for anything an attacker could aim at a table with:
 * correlation tables bound their groups instead). */
#ifndef TRAILWATCH_FNV_H
#define TRAILWATCH_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_OFFSET 1469598103934665603ull	/* the starting value */

/* h continued over len bytes at p (start with FNV1A_OFFSET). */
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

#endif
