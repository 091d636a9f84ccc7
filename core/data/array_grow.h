/* Growing an array by doubling, for the data readers' buffers. */
#ifndef FLAME_ARRAY_GROW_H
#define FLAME_ARRAY_GROW_H

#include <stdlib.h>

/* *p (of *cap elements of size bytes) holds at least need elements afterwards:
 * 0, or -1 when out of memory (then *p and *cap are as they were) */
static inline int array_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *grown = realloc(*p, n * size);
    if (!grown)
        return -1;
    *p = grown;
    *cap = n;
    return 0;
}

#endif
