/* Mamba2's Δ: delta = clamp(softplus(dt + dt_bias_h), lo, hi) over [n, H].
 * softplus is torch's (beta 1, threshold 20: above 20 the input passes
 * through), its derivative σ. torch.clamp passes the gradient where
 * lo ≤ softplus ≤ hi and stops it where the value was clamped. */
#include <math.h>
#include <stddef.h>

#include "mamba2.h"

static float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

void mamba2_delta_forward_cpu(float *delta, const float *dt, const float *dt_bias, int n, int H,
                              float lo, float hi)
{
    for (size_t i = 0; i < (size_t)n * H; i++) {
        float s = softplus(dt[i] + dt_bias[i % H]);
        delta[i] = s < lo ? lo : s > hi ? hi : s;
    }
}

void mamba2_delta_backward_cpu(float *ddt, float *ddt_bias, const float *ddelta, const float *dt,
                               const float *dt_bias, int n, int H, float lo, float hi)
{
    for (size_t i = 0; i < (size_t)n * H; i++) {
        float v = dt[i] + dt_bias[i % H], s = softplus(v);
        ddt[i] = s < lo || s > hi ? 0.0f : ddelta[i] / (1.0f + expf(-v));
    }
    for (int h = 0; h < H; h++) { /* a head's tokens in order */
        float acc = 0.0f;
        for (int t = 0; t < n; t++)
            acc += ddt[(size_t)t * H + h];
        ddt_bias[h] += acc;
    }
}
