/* GELU's tanh form on bf16 activations (gelu_cpu.c's formulas), fp32
 * arithmetic, ACT_VEC values per access when vectorizable (cuda_launch.cuh).
 * The backward writes dx, which may be dout (each thread reads its values
 * first). */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

static __device__ __forceinline__ float tanh_of(float v)
{
    return tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
}

template <int W> static __global__ void gelu_forward_kernel(act_t *out, const act_t *x, size_t n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W];
        load_floats<W>(v, x + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] = 0.5f * v[k] * (1.0f + tanh_of(v[k]));
        store_floats<W>(out + i * W, v);
    }
}

template <int W>
static __global__ void gelu_backward_kernel(act_t *dx, const act_t *dout, const act_t *x, size_t n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W], d[W];
        load_floats<W>(v, x + i * W);
        load_floats<W>(d, dout + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float t = tanh_of(v[k]);
            d[k] *= 0.5f * (1.0f + t) +
                    0.5f * v[k] * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * v[k] * v[k]);
        }
        store_floats<W>(dx + i * W, d);
    }
}

void gelu_forward_cuda(void *out, const void *x, size_t n)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(gelu_forward_kernel, vectorizable(n, out, x), n, (act_t *)out, (const act_t *)x, n);
}

void gelu_backward_cuda(void *dx, const void *dout, const void *x, size_t n)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(gelu_backward_kernel, vectorizable(n, dx, dout, x), n, (act_t *)dx, (const act_t *)dout,
                      (const act_t *)x, n);
}
