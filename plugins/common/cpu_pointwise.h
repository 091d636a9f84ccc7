/* What the plugins' pointwise and row kernels on the CPU share: a loop split
 * over OpenMP threads when there is enough work, and σ without overflow. */
#ifndef FLAME_CPU_POINTWISE_H
#define FLAME_CPU_POINTWISE_H

#include <math.h>

#define CPU_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define PARALLEL_FOR_IF(cond) CPU_PRAGMA(omp parallel for schedule(static) if(cond))
#else
#define PARALLEL_FOR_IF(cond)
#endif
/* below this many values (or multiply-adds) a loop stays on one thread */
#define PARALLEL_MIN_WORK 32768

/* σ(z): exp is only taken of a non-positive number */
static inline float sigmoid(float z)
{
    if (z >= 0)
        return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

#endif
