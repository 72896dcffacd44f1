/* backoff.c: exponential backoff with full jitter (see backoff.h). */
#include <time.h>
#include <unistd.h>

#include "trailwatch/backoff.h"

void backoff_init(struct backoff *b, long base_ms, long max_ms)
{
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
	b->rng = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)b;
	if (!b->rng)
		b->rng = 1;
}

long backoff_ms(struct backoff *b, int attempt, long retry_after)
{
	long cap = b->base_ms, ms;

	for (int i = 1; i < attempt && cap < b->max_ms; i++)
		cap *= 2;
	if (cap > b->max_ms)
		cap = b->max_ms;
	b->rng ^= b->rng << 13;	/* xorshift64 */
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	ms = (long)(b->rng % (uint64_t)(cap + 1));
	if (retry_after >= 0 && retry_after * 1000 > ms)
		ms = retry_after * 1000 > b->max_ms * 3 ? b->max_ms * 3 : retry_after * 1000;
	return ms;
}
