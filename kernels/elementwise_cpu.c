/* In-place scale (gradient clipping) and the sum of two arrays. */
#include "cpu_kernels.h"

void scale_cpu(float *x, float s, size_t n)
{
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

void add_cpu(float *out, const float *a, const float *b, size_t n)
{
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}
