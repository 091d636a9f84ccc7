/* In-place scale (gradient clipping). */
#include "cpu_kernels.h"

void scale_cpu(float *x, float s, size_t n)
{
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}
