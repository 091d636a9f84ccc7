/* Functions of one value that several kernels share, in the fast forms
 * their bf16 results allow. */
#ifndef FLAME_CUDA_MATH_CUH
#define FLAME_CUDA_MATH_CUH

/* σ(x) = 1 / (1 + e^−x) with the fast exponential and division (ex2.approx
 * and rcp.approx, a few ulp: far below bf16's rounding, and few enough
 * instructions that a pass over memory stays bound by memory). e^−x is
 * capped at e^80, inside __fdividef's range, so σ(−∞) is 0, not NaN. */
static __device__ __forceinline__ float sigmoid_fast(float x)
{
    return __fdividef(1.0f, 1.0f + __expf(fminf(-x, 80.0f)));
}

#endif
