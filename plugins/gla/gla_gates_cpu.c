/* GLA's forget gates, fla's `F.logsigmoid(gk_proj(x)) / gate_logit_normalizer`
 * from the low-rank projection's output on: the second product and the
 * logsigmoid in one pass,
 *     gk = logsigmoid(low · W1ᵀ + b1) / N,
 *     logsigmoid(x) = min(x, 0) − log1p(exp(−|x|))
 * (exp is only taken of a non-positive number, so nothing overflows).
 * Backward: d logsigmoid(x)/dx = σ(−x) = 1 − exp(logsigmoid(x)) = −expm1(N·gk),
 * so the output alone is enough; dx (the product's gradient) is written. */
#include <math.h>
#include <stddef.h>

#include "../common/cpu_pointwise.h"
#include "gla.h"

void gla_gates_forward_cpu(float *gk, const float *low, const float *w1, const float *b1, int n, int R, int K,
                           float normalizer)
{
    PARALLEL_FOR_IF((size_t)n * K * R >= PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++)
        for (int j = 0; j < K; j++) {
            float x = b1[j];
            for (int r = 0; r < R; r++)
                x += low[(size_t)t * R + r] * w1[(size_t)j * R + r];
            float ls = fminf(x, 0.0f) - log1pf(expf(-fabsf(x)));
            gk[(size_t)t * K + j] = ls / normalizer;
        }
}

void gla_gates_backward_cpu(float *dx, const float *dgk, const float *gk, size_t n,
                            float normalizer)
{
    PARALLEL_FOR_IF(n >= PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        dx[i] = dgk[i] * -expm1f(normalizer * gk[i]) / normalizer;
}
