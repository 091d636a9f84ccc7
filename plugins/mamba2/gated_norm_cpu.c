/* fla's RMSNormGated as Mamba2 uses it (norm_before_gate = False): the gate
 * first, then an RMSNorm over each group of group_size values of a row:
 *     g = y ⊙ silu(z),  out = g · r · w,  r = 1/sqrt(mean(g²) + eps)
 * Backward, per group of a row, with e_j = dout_j w_j:
 *     dg_j = r e_j − g_j r³ (Σ_k e_k g_k) / group_size     (RMSNorm's backward)
 *     dy_j = dg_j silu(z_j),   dz_j = dg_j y_j silu'(z_j),   silu'(z) = σ(z)(1 + z(1 − σ(z)))
 *     dw_j = Σ_rows dout_j g_j r
 * dy and dz are written, dw is added into. */
#include <math.h>
#include <stddef.h>

#include "../common/cpu_pointwise.h"
#include "mamba2.h"

void mamba2_gated_norm_forward_cpu(float *out, float *rstd, const float *y, const float *z,
                                   const float *w, int rows, int C, int group_size, float eps)
{
    int groups = C / group_size;
    PARALLEL_FOR_IF((double)rows * C >= PARALLEL_MIN_WORK)
    for (int i = 0; i < rows * groups; i++) { /* one group of one row */
        size_t off = (size_t)i * group_size;
        const float *wg = w + (size_t)(i % groups) * group_size;
        double ss = 0;
        for (int j = 0; j < group_size; j++) {
            float g = y[off + j] * z[off + j] * sigmoid(z[off + j]);
            ss += (double)g * g;
        }
        float r = (float)(1.0 / sqrt(ss / group_size + eps));
        rstd[i] = r;
        for (int j = 0; j < group_size; j++)
            out[off + j] = y[off + j] * z[off + j] * sigmoid(z[off + j]) * r * wg[j];
    }
}

void mamba2_gated_norm_backward_cpu(float *dy, float *dz, float *dw, const float *dout,
                                    const float *y, const float *z, const float *w,
                                    const float *rstd, int rows, int C, int group_size)
{
    int groups = C / group_size, parallel = (double)rows * C >= PARALLEL_MIN_WORK;
    (void)parallel; /* only read by the pragmas */
    PARALLEL_FOR_IF(parallel)
    for (int i = 0; i < rows * groups; i++) {
        size_t off = (size_t)i * group_size;
        const float *wg = w + (size_t)(i % groups) * group_size;
        float r = rstd[i];
        double dot = 0; /* Σ_k e_k g_k */
        for (int j = 0; j < group_size; j++)
            dot += (double)dout[off + j] * wg[j] * y[off + j] * z[off + j] * sigmoid(z[off + j]);
        float c = (float)(dot * r * r * r / group_size);
        for (int j = 0; j < group_size; j++) {
            float zj = z[off + j], s = sigmoid(zj), silu = zj * s;
            float dg = r * dout[off + j] * wg[j] - y[off + j] * silu * c;
            dy[off + j] = dg * silu;
            dz[off + j] = dg * y[off + j] * s * (1.0f + zj * (1.0f - s));
        }
    }
    /* a thread owns a column and adds the rows in order */
    PARALLEL_FOR_IF(parallel)
    for (int j = 0; j < C; j++) {
        float acc = 0.0f;
        for (int i = 0; i < rows; i++) {
            size_t at = (size_t)i * C + j;
            acc += dout[at] * y[at] * z[at] * sigmoid(z[at]) * rstd[(size_t)i * groups + j / group_size];
        }
        dw[j] += acc;
    }
}
