/* array.c: growing arrays (see array.h). */
#include <stdint.h>
#include <stdlib.h>

#include "trailwatch/array.h"

void *array_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t min)
{
	size_t c = *cap ? *cap : min;
	void *p;

	if (n <= *cap && arr)
		return arr;
	while (c < n) {
		if (c > SIZE_MAX / 2)
			return NULL;
		c *= 2;
	}
	if (elem && c > SIZE_MAX / elem)
		return NULL;
	p = realloc(arr, c * elem);
	if (!p)
		return NULL;
	*cap = c;
	return p;
}
