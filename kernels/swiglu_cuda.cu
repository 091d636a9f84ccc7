/* SwiGLU: out = silu(gate) · up, silu(g) = g·σ(g).
 * d silu/dg = σ(g) · (1 + g·(1 − σ(g))). */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

/* σ(g) without overflow: exp is only ever taken of a non-positive number. */
static __device__ float sigmoid(float g)
{
    if (g >= 0.0f)
        return 1.0f / (1.0f + expf(-g));
    float e = expf(g);
    return e / (1.0f + e);
}

static __global__ void swiglu_forward_kernel(float *out, const float *gate, const float *up, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
        out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

static __global__ void swiglu_backward_kernel(float *dgate, float *dup, const float *dout,
                                              const float *gate, const float *up, size_t n)
{
    GRID_STRIDE_LOOP(i, n) {
        float g = gate[i], s = sigmoid(g);
        if (dup)
            dup[i] += dout[i] * g * s;
        if (dgate)
            dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    }
}

void swiglu_forward_cuda(float *out, const float *gate, const float *up, size_t n)
{
    if (n == 0)
        return;
    swiglu_forward_kernel<<<cuda_grid(n), CUDA_BLOCK>>>(out, gate, up, n);
    CUDA_CHECK_LAUNCH();
}

void swiglu_backward_cuda(float *dgate, float *dup, const float *dout,
                          const float *gate, const float *up, size_t n)
{
    if (n == 0 || (!dgate && !dup))
        return;
    swiglu_backward_kernel<<<cuda_grid(n), CUDA_BLOCK>>>(dgate, dup, dout, gate, up, n);
    CUDA_CHECK_LAUNCH();
}
