/* GLA's forget-gate logits on the GPU: the math of gla_gates_cpu.c,
 *     gk = logsigmoid(x) / N,   dx = dgk · σ(−x) / N = dgk · −expm1(N·gk) / N
 * (dx written), ACT_VEC values per thread where vectorizable (out may alias
 * x). x, gk and their gradients are bf16 (the CUDA op table's activations);
 * the arithmetic is fp32. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla_cuda.h"

template <int W>
static __global__ void gates_forward(act_t *gk, const act_t *x, size_t n, float normalizer)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W];
        load_floats<W>(v, x + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] = (fminf(v[k], 0.0f) - log1pf(expf(-fabsf(v[k])))) / normalizer;
        store_floats<W>(gk + i * W, v);
    }
}

/* σ(−x) is recovered from the bf16 gk and carries no more than gk's relative
 * rounding error (2^-9): e^y·|y| ≤ 1 − e^y for y = N·gk < 0 */
template <int W>
static __global__ void gates_backward(act_t *dx, const act_t *dgk, const act_t *gk, size_t n,
                                      float normalizer)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float d[W], g[W];
        load_floats<W>(d, dgk + i * W);
        load_floats<W>(g, gk + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            d[k] = d[k] * -expm1f(normalizer * g[k]) / normalizer;
        store_floats<W>(dx + i * W, d);
    }
}

void gla_gates_forward_cuda(void *gk, const void *x, size_t n, float normalizer)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(gates_forward, vectorizable(n, gk, x), n, static_cast<act_t *>(gk),
                      static_cast<const act_t *>(x), n, normalizer);
}

void gla_gates_backward_cuda(void *dx, const void *dgk, const void *gk, size_t n, float normalizer)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(gates_backward, vectorizable(n, dx, dgk, gk), n, static_cast<act_t *>(dx),
                      static_cast<const act_t *>(dgk), static_cast<const act_t *>(gk), n,
                      normalizer);
}
