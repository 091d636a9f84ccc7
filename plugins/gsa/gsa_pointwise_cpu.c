/* GSA's pointwise kernels on the CPU: the swish feature map of q, k and v, and
 * the slot gates f and s (gsa.h). */
#include <math.h>

#include "../common/cpu_pointwise.h"
#include "gsa.h"

void gsa_swish_forward_cpu(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * sigmoid(x[i]);
}

/* swish'(x) = σ(x) · (1 + x·(1 − σ(x))) */
void gsa_swish_backward_cpu(float *dx, const float *dy, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float sg = sigmoid(x[i]);
        dx[i] = dy[i] * sg * (1.0f + x[i] * (1.0f - sg));
    }
}

/* logsigmoid(x) = −log1p(exp(−x)), written so that neither sign overflows */
static float logsigmoid(float x) { return x < 0 ? x - log1pf(expf(x)) : -log1pf(expf(-x)); }

void gsa_slot_gates_forward_cpu(float *f, float *s, const float *x, size_t n, float normalizer)
{
    for (size_t i = 0; i < n; i++) {
        float fi = logsigmoid(x[i]) / normalizer;
        f[i] = fi;
        s[i] = -expm1f(fi);
    }
}

/* ∂f/∂x = σ(−x)/normalizer and ∂s/∂f = −exp(f) */
void gsa_slot_gates_backward_cpu(float *dx, const float *df_slots, const float *df_values,
                                 const float *ds_slots, const float *ds_values, const float *f,
                                 size_t n, float normalizer)
{
    for (size_t i = 0; i < n; i++) {
        float df = df_slots[i] + df_values[i] - expf(f[i]) * (ds_slots[i] + ds_values[i]);
        dx[i] = df * -expm1f(normalizer * f[i]) / normalizer;
    }
}
