/* Elementwise add (residual connections) and in-place scale (gradient clipping). */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

/* out may alias a or b: each element is read before it is written. */
static __global__ void add_kernel(float *out, const float *a, const float *b, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
        out[i] = a[i] + b[i];
}

static __global__ void scale_kernel(float *x, float s, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
        x[i] *= s;
}

void add_cuda(float *out, const float *a, const float *b, size_t n)
{
    if (n == 0)
        return;
    add_kernel<<<cuda_grid(n), CUDA_BLOCK>>>(out, a, b, n);
    CUDA_CHECK_LAUNCH();
}

void scale_cuda(float *x, float s, size_t n)
{
    if (n == 0)
        return;
    scale_kernel<<<cuda_grid(n), CUDA_BLOCK>>>(x, s, n);
    CUDA_CHECK_LAUNCH();
}
