/* Σ x² in double, for the global gradient norm. The sum is taken over fixed
 * chunks whose partial sums are added in chunk order: the chunks may be
 * computed by any thread, the result does not change. */
#include <stdlib.h>

#include "cpu_kernels.h"

#define CHUNK 65536

static double chunk_sum_squares(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

static size_t chunk_len(size_t c, size_t n)
{
    size_t start = c * CHUNK;
    return n - start < CHUNK ? n - start : CHUNK;
}

double sum_squares_cpu(const float *x, size_t n)
{
    size_t chunks = (n + CHUNK - 1) / CHUNK;
    double total = 0;
    double *partial = chunks > 1 ? malloc(chunks * sizeof *partial) : NULL;
    if (!partial) { /* one chunk, or no memory: the same sums, on one thread */
        for (size_t c = 0; c < chunks; c++)
            total += chunk_sum_squares(x + c * CHUNK, chunk_len(c, n));
        return total;
    }
    CPU_PARALLEL_FOR_IF(1)
    for (size_t c = 0; c < chunks; c++)
        partial[c] = chunk_sum_squares(x + c * CHUNK, chunk_len(c, n));
    for (size_t c = 0; c < chunks; c++)
        total += partial[c];
    free(partial);
    return total;
}
