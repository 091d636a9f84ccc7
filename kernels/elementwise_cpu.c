/* Elementwise add (residual connections) and in-place scale (gradient clipping). */
#include "cpu_kernels.h"

/* out may alias a or b: each element is read before it is written. */
void add_cpu(float *out, const float *a, const float *b, size_t n)
{
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void scale_cpu(float *x, float s, size_t n)
{
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}
