/* GLA's forget-gate logits on the GPU: the math of gla_gates_cpu.c,
 *     gk = logsigmoid(x) / N,   dx = dgk · σ(−x) / N = dgk · −expm1(N·gk) / N
 * (dx written), one thread per value (out may alias x). x, gk and their
 * gradients are bf16 (the CUDA op table's activations); the arithmetic is fp32. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla_cuda.h"

static __global__ void gates_forward(act_t *gk, const act_t *x, size_t n, float normalizer)
{
    GRID_STRIDE_LOOP(i, n) {
        float xi = to_f32(x[i]);
        from_f32(&gk[i], (fminf(xi, 0.0f) - log1pf(expf(-fabsf(xi)))) / normalizer);
    }
}

/* σ(−x) is recovered from the bf16 gk and carries no more than gk's relative
 * rounding error (2^-9): e^y·|y| ≤ 1 − e^y for y = N·gk < 0 */
static __global__ void gates_backward(act_t *dx, const act_t *dgk, const act_t *gk, size_t n,
                                      float normalizer)
{
    GRID_STRIDE_LOOP(i, n)
        from_f32(&dx[i], to_f32(dgk[i]) * -expm1f(normalizer * to_f32(gk[i])) / normalizer);
}

void gla_gates_forward_cuda(void *gk, const void *x, size_t n, float normalizer)
{
    if (n == 0)
        return;
    gates_forward<<<cuda_grid(n), CUDA_BLOCK>>>(static_cast<act_t *>(gk),
                                                static_cast<const act_t *>(x), n, normalizer);
    CUDA_CHECK_LAUNCH();
}

void gla_gates_backward_cuda(void *dx, const void *dgk, const void *gk, size_t n, float normalizer)
{
    if (n == 0)
        return;
    gates_backward<<<cuda_grid(n), CUDA_BLOCK>>>(static_cast<act_t *>(dx),
                                                 static_cast<const act_t *>(dgk),
                                                 static_cast<const act_t *>(gk), n, normalizer);
    CUDA_CHECK_LAUNCH();
}
