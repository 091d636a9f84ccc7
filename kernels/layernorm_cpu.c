/* LayerNorm (GPT-2's, with a bias): y = x̂ · w + b per row of C, with
 * x̂ = (x − μ) · rstd, μ the row's mean, rstd = 1/sqrt(mean((x − μ)²) + eps).
 * Backward, with g = dy ⊙ w:
 *   dx_j = rstd · (g_j − mean_k(g_k) − x̂_j · mean_k(g_k x̂_k))
 *   dw_j = Σ_rows dy_j · x̂_j,   db_j = Σ_rows dy_j */
#include <math.h>

#include "cpu_kernels.h"

void layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *x, const float *weight,
                           const float *bias, int n, int C, float eps)
{
    CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = out + (size_t)i * C;
        double sum = 0, ss = 0; /* double: a wide row's moments, summed exactly enough */
        for (int j = 0; j < C; j++)
            sum += xi[j];
        double mu = sum / C;
        for (int j = 0; j < C; j++)
            ss += (xi[j] - mu) * (xi[j] - mu);
        float m = (float)mu, r = (float)(1.0 / sqrt(ss / C + eps));
        mean[i] = m, rstd[i] = r;
        for (int j = 0; j < C; j++)
            yi[j] = (xi[j] - m) * r * weight[j] + (bias ? bias[j] : 0.0f);
    }
}

static void layernorm_dx_row(float *dx, flame_grad_mode mode, const float *dy, const float *x,
                             const float *w, float m, float r, int C)
{
    double g_sum = 0, gx_sum = 0; /* Σ g_k, Σ g_k x̂_k */
    for (int k = 0; k < C; k++) {
        double g = (double)dy[k] * w[k];
        g_sum += g;
        gx_sum += g * (x[k] - m) * r;
    }
    float g_mean = (float)(g_sum / C), gx_mean = (float)(gx_sum / C);
    for (int j = 0; j < C; j++) {
        float xhat = (x[j] - m) * r;
        float d = r * (dy[j] * w[j] - g_mean - xhat * gx_mean);
        dx[j] = mode == FLAME_GRAD_ADD ? dx[j] + d : d;
    }
}

/* the parameters' gradients first: they read dout, which dx may be */
void layernorm_backward_cpu(float *dx, flame_grad_mode dx_mode, float *dweight, float *dbias,
                            const float *dout, const float *x, const float *weight, const float *mean,
                            const float *rstd, int n, int C)
{
    if (dweight || dbias) { /* threads own columns; rows are added in order */
        CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK)
        for (int j = 0; j < C; j++) {
            float dw = 0, db = 0;
            for (int i = 0; i < n; i++) {
                float dy = dout[(size_t)i * C + j];
                dw += dy * (x[(size_t)i * C + j] - mean[i]) * rstd[i];
                db += dy;
            }
            if (dweight)
                dweight[j] += dw;
            if (dbias)
                dbias[j] += db;
        }
    }
    if (dx) {
        CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK)
        for (int i = 0; i < n; i++)
            layernorm_dx_row(dx + (size_t)i * C, dx_mode, dout + (size_t)i * C, x + (size_t)i * C, weight,
                             mean[i], rstd[i], C);
    }
}
