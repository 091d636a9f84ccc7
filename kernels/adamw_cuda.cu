/* AdamW with decoupled weight decay (Loshchilov & Hutter):
 *   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²
 *   param −= lr · (m/(1−β1ᵗ) / (sqrt(v/(1−β2ᵗ)) + eps) + weight_decay · param)
 * The decay uses the parameter before this step's update. */
#include <math.h>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

struct adamw_hyper {
    float lr, beta1, beta2, eps, weight_decay, bc1, bc2;
};

static __global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                                    adamw_hyper h)
{
    GRID_STRIDE_LOOP(i, n) {
        float g = grad[i];
        float mi = h.beta1 * m[i] + (1.0f - h.beta1) * g;
        float vi = h.beta2 * v[i] + (1.0f - h.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float update = (mi / h.bc1) / (sqrtf(vi / h.bc2) + h.eps);
        param[i] -= h.lr * (update + h.weight_decay * param[i]);
    }
}

void adamw_cuda(float *param, const float *grad, float *m, float *v, size_t n,
                float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
    if (n == 0)
        return;
    /* bias corrections in double on the host, as the CPU does: 1 − β2ᵗ is small early on */
    adamw_hyper h = {lr, beta1, beta2, eps, weight_decay,
                     (float)(1.0 - pow(beta1, t)), (float)(1.0 - pow(beta2, t))};
    adamw_kernel<<<cuda_grid(n), CUDA_BLOCK>>>(param, grad, m, v, n, h);
    CUDA_CHECK_LAUNCH();
}
