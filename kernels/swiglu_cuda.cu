/* SwiGLU on bf16 activations: out = silu(gate) · up, silu(g) = g·σ(g);
 * d silu/dg = σ(g) · (1 + g·(1 − σ(g))). fp32 arithmetic (σ the fast one of
 * cuda_math.cuh: with the accurate exp and division the passes were bound by
 * their instructions, not memory), ACT_VEC values per
 * access when vectorizable (cuda_launch.cuh). The backward writes dgate, dup
 * and, for the down projection's weight gradient, the forward's out again
 * (any may be NULL; out may be dout: each thread reads its values first). */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_math.cuh"


template <int W>
static __global__ void swiglu_forward_kernel(act_t *out, const act_t *gate, const act_t *up,
                                             size_t n)
{
    GRID_STRIDE_LOOP(i, n / W) {
        float g[W], u[W];
        load_floats<W>(g, gate + i * W);
        load_floats<W>(u, up + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            g[k] = g[k] * sigmoid_fast(g[k]) * u[k];
        store_floats<W>(out + i * W, g);
    }
}

template <int W>
static __global__ void swiglu_backward_kernel(act_t *dgate, act_t *dup, act_t *out,
                                              const act_t *dout, const act_t *gate,
                                              const act_t *up, size_t n)
{
    GRID_STRIDE_LOOP(i, n / W) {
        float d[W], g[W], u[W], s[W], r[W];
        load_floats<W>(d, dout + i * W);
        load_floats<W>(g, gate + i * W);
        load_floats<W>(u, up + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            s[k] = sigmoid_fast(g[k]);
        if (dup) {
#pragma unroll
            for (int k = 0; k < W; k++)
                r[k] = d[k] * g[k] * s[k];
            store_floats<W>(dup + i * W, r);
        }
        if (dgate) {
#pragma unroll
            for (int k = 0; k < W; k++)
                r[k] = d[k] * u[k] * s[k] * (1.0f + g[k] * (1.0f - s[k]));
            store_floats<W>(dgate + i * W, r);
        }
        if (out) {
#pragma unroll
            for (int k = 0; k < W; k++)
                r[k] = g[k] * s[k] * u[k];
            store_floats<W>(out + i * W, r);
        }
    }
}

void swiglu_forward_cuda(void *out, const void *gate, const void *up, size_t n)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(swiglu_forward_kernel, vectorizable(n, out, gate, up), n, (act_t *)out,
                      (const act_t *)gate, (const act_t *)up, n);
}

void swiglu_backward_cuda(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                          const void *up, size_t n)
{
    if (n == 0 || (!dgate && !dup && !out))
        return;
    LAUNCH_VECTORIZED(swiglu_backward_kernel, vectorizable(n, dgate, dup, out, dout, gate, up), n,
                      (act_t *)dgate, (act_t *)dup, (act_t *)out, (const act_t *)dout,
                      (const act_t *)gate, (const act_t *)up, n);
}
