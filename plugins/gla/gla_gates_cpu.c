/* GLA's forget-gate logits, fla's `F.logsigmoid(gk) / gate_logit_normalizer`:
 *     gk = logsigmoid(x) / N,   logsigmoid(x) = min(x, 0) − log1p(exp(−|x|))
 * (exp is only taken of a non-positive number, so nothing overflows).
 * Backward: d logsigmoid(x)/dx = σ(−x) = 1 − exp(logsigmoid(x)) = −expm1(N·gk),
 * so the output alone is enough and the forward may overwrite its input; dx
 * is written. */
#include <math.h>
#include <stddef.h>

#include "../common/cpu_pointwise.h"
#include "gla.h"

void gla_gates_forward_cpu(float *gk, const float *x, size_t n, float normalizer)
{
    PARALLEL_FOR_IF(n >= PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        float ls = fminf(xi, 0.0f) - log1pf(expf(-fabsf(xi)));
        gk[i] = ls / normalizer;
    }
}

void gla_gates_backward_cpu(float *dx, const float *dgk, const float *gk, size_t n,
                            float normalizer)
{
    PARALLEL_FOR_IF(n >= PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        dx[i] = dgk[i] * -expm1f(normalizer * gk[i]) / normalizer;
}
