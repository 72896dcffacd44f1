/* hash.h: the project's two non-cryptographic 64-bit hashes.
 *
 * fnv1a()      FNV-1a, a byte at a time, continuable: rule fingerprints, which
 *              hash a structure piece by piece.
 * hash_words() eight bytes a step: keys on hot paths (correlation group keys,
 *              the engine's memo of recent values), where FNV-1a's
 *              multiplication per byte was measurable.
 *
 * Keys from the logs are partly chosen by whoever made the calls (a role
 * session name is the caller's): a table of such keys seeds hash_words with
 * hash_seed(), so that nobody can aim keys at one bucket, or make two values
 * hash alike, without knowing the seed.  (The engine's memo table is
 * direct-mapped and compares the text: collisions there only cost a miss.)
 */
#ifndef TRAILWATCH_HASH_H
#define TRAILWATCH_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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

/* A hash of len bytes at p, mixed with seed. */
static inline uint64_t hash_words(const void *p, size_t len, uint64_t seed)
{
	const unsigned char *s = p;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (len << 8) ^ seed, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s + i, len - i);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 29);
}

/* A random seed for hash_words: from getrandom(), or, should that fail (no
 * entropy yet at early boot), from the clock and the pid. */
static inline uint64_t hash_seed(void)
{
	uint64_t seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return hash_words(&ts, sizeof(ts), (uint64_t)getpid());
}

#endif
