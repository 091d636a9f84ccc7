/* Elementwise ops: the in-place scale (fp32 gradients, for clipping), the sum
 * of two activation arrays and the casts between fp32 and bf16. Each
 * moves ACT_VEC values per access when vectorizable (cuda_launch.cuh), one
 * otherwise. */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

template <int W> static __global__ void scale_kernel(float *x, float s, size_t n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W];
        load_floats<W>(v, x + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] *= s;
        store_floats<W>(x + i * W, v);
    }
}

template <int W> static __global__ void add_kernel(act_t *out, const act_t *a, const act_t *b, size_t n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float u[W], v[W];
        load_floats<W>(u, a + i * W);
        load_floats<W>(v, b + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            u[k] += v[k];
        store_floats<W>(out + i * W, u);
    }
}

/* dst = src, converted (to bf16: rounded to nearest even) */
template <int W, typename D, typename S>
static __global__ void convert_kernel(D *dst, const S *src, size_t n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W];
        load_floats<W>(v, src + i * W);
        store_floats<W>(dst + i * W, v);
    }
}

void scale_cuda(float *x, float s, size_t n)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(scale_kernel, vectorizable(n, x), n, x, s, n);
}

void add_cuda(void *out, const void *a, const void *b, size_t n)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(add_kernel, vectorizable(n, out, a, b), n, (act_t *)out, (const act_t *)a,
                      (const act_t *)b, n);
}

/* convert_kernel<W, D, S>: the types named, since a launch takes the kernel's address */
template <typename D, typename S> static void convert(D *dst, const S *src, size_t n)
{
    if (n == 0)
        return;
    if (vectorizable(n, dst, src))
        launch_kernel(convert_kernel<ACT_VEC, D, S>, cuda_grid(n / ACT_VEC), CUDA_BLOCK, 0, dst,
                      src, n);
    else
        launch_kernel(convert_kernel<1, D, S>, cuda_grid(n), CUDA_BLOCK, 0, dst, src, n);
}

void to_act_cuda(void *dst, const float *src, size_t n) { convert((act_t *)dst, src, n); }

void from_act_cuda(float *dst, const void *src, size_t n) { convert(dst, (const act_t *)src, n); }
