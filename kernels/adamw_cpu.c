/* AdamW with decoupled weight decay (Loshchilov & Hutter):
 *   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²
 *   param −= lr · (m/(1−β1ᵗ) / (sqrt(v/(1−β2ᵗ)) + eps) + weight_decay · param)
 * with g = grad_scale · grad. The decay uses the parameter before this step's
 * update and applies to the first n_decayed values only (norms, biases,
 * embeddings are stored after). */
#include <math.h>

#include "cpu_kernels.h"

void adamw_cpu(float *param, const float *grad, float grad_scale, float *m, float *v, size_t n,
               size_t n_decayed, float lr, float beta1, float beta2, float eps, float weight_decay,
               int t)
{
    /* bias corrections in double: 1 − β2ᵗ is small in early steps */
    float bc1 = (float)(1.0 - pow(beta1, t));
    float bc2 = (float)(1.0 - pow(beta2, t));
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float g = grad_scale * grad[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float update = (mi / bc1) / (sqrtf(vi / bc2) + eps);
        float decay = i < n_decayed ? weight_decay : 0.0f;
        param[i] -= lr * (update + decay * param[i]);
    }
}
