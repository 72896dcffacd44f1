/* array.h: growing arrays.
 *
 * The one way this code base grows a malloc'd array: ask for room for n
 * elements; the capacity doubles (from min) as needed.
 *
 *     struct x *a = array_grow(list->items, &list->cap, list->n + 1, sizeof(*a), 16);
 *     if (!a)
 *             return -ENOMEM;
 *     list->items = a;
 */
#ifndef TRAILWATCH_ARRAY_H
#define TRAILWATCH_ARRAY_H

#include <stddef.h>

/* Returns arr, or a reallocated copy, with room for at least n elements of
 * elem bytes, updating *cap.  NULL on overflow or ENOMEM, in which case arr
 * and *cap are unchanged (the caller still owns arr). */
void *array_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t min);

#endif
