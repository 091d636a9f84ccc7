/* GLA's forget-gate logits on the GPU: the math of gla_gates_cpu.c,
 *     gk = logsigmoid(x) / N,   dx += dgk · σ(−x) / N = dgk · −expm1(N·gk) / N,
 * one thread per value (out may alias x). */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla_cuda.h"

static __global__ void gates_forward(float *gk, const float *x, size_t n, float normalizer)
{
    GRID_STRIDE_LOOP(i, n) {
        float xi = x[i];
        gk[i] = (fminf(xi, 0.0f) - log1pf(expf(-fabsf(xi)))) / normalizer;
    }
}

static __global__ void gates_backward(float *dx, const float *dgk, const float *gk, size_t n,
                                      float normalizer)
{
    GRID_STRIDE_LOOP(i, n)
        dx[i] += dgk[i] * -expm1f(normalizer * gk[i]) / normalizer;
}

void gla_gates_forward_cuda(float *gk, const float *x, size_t n, float normalizer)
{
    if (n == 0)
        return;
    gates_forward<<<cuda_grid(n), CUDA_BLOCK>>>(gk, x, n, normalizer);
    CUDA_CHECK_LAUNCH();
}

void gla_gates_backward_cuda(float *dx, const float *dgk, const float *gk, size_t n,
                             float normalizer)
{
    if (n == 0)
        return;
    gates_backward<<<cuda_grid(n), CUDA_BLOCK>>>(dx, dgk, gk, n, normalizer);
    CUDA_CHECK_LAUNCH();
}
