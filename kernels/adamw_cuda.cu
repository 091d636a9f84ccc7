/* AdamW with decoupled weight decay (Loshchilov & Hutter), on the fp32
 * master parameters and state:
 *   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²
 *   param −= lr · (m/(1−β1ᵗ) / (sqrt(v/(1−β2ᵗ)) + eps) + weight_decay · param)
 * with g = grad_scale · grad. The decay uses the parameter before this step's update and applies to the
 * first n_decayed values only: one launch covers every parameter. The same pass
 * writes the bf16 compute copy of the parameters that the forward reads,
 * rounded to nearest even, so no separate cast follows each step. ACT_VEC
 * values per access when vectorizable (cuda_launch.cuh). */
#include <math.h>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

struct adamw_hyper {
    float grad_scale, lr, beta1, beta2, eps, weight_decay, bc1, bc2;
    size_t n_decayed; /* the decay applies to values [0, n_decayed) */
};

/* compute is NULL when there is no copy to write */
template <int W>
static __global__ void adamw_kernel(float *param, act_t *compute, const float *grad, float *m,
                                    float *v, size_t n, adamw_hyper h)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        size_t at = i * W;
        float p[W], g[W], mi[W], vi[W];
        load_floats<W>(p, param + at);
        load_floats<W>(g, grad + at);
        load_floats<W>(mi, m + at);
        load_floats<W>(vi, v + at);
#pragma unroll
        for (int k = 0; k < W; k++) {
            g[k] *= h.grad_scale;
            mi[k] = h.beta1 * mi[k] + (1.0f - h.beta1) * g[k];
            vi[k] = h.beta2 * vi[k] + (1.0f - h.beta2) * g[k] * g[k];
            float update = (mi[k] / h.bc1) / (sqrtf(vi[k] / h.bc2) + h.eps);
            float decay = at + k < h.n_decayed ? h.weight_decay : 0.0f;
            p[k] -= h.lr * (update + decay * p[k]);
        }
        store_floats<W>(m + at, mi);
        store_floats<W>(v + at, vi);
        store_floats<W>(param + at, p);
        if (compute)
            store_floats<W>(compute + at, p);
    }
}

void adamw_cuda(float *param, void *compute, const float *grad, float grad_scale, float *m,
                float *v, size_t n, size_t n_decayed, float lr, float beta1, float beta2, float eps,
                float weight_decay, int t)
{
    if (n == 0)
        return;
    act_t *copy = compute == (void *)param ? NULL : (act_t *)compute;
    /* bias corrections in double on the host, as the CPU does: 1 − β2ᵗ is small early on */
    adamw_hyper h = {grad_scale, lr, beta1, beta2, eps, weight_decay,
                     (float)(1.0 - pow(beta1, t)), (float)(1.0 - pow(beta2, t)), n_decayed};
    LAUNCH_VECTORIZED(adamw_kernel, vectorizable(n, param, copy, grad, m, v), n, param, copy, grad,
                      m, v, n, h);
}
