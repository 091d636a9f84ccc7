/* RMSNorm: y = x · rstd · w per row, rstd = 1/sqrt(mean(x²) + eps).
 * Backward, with g = dy ⊙ w and rstd = r:
 *   dx_j = r·g_j − x_j · r³ · (Σ_k g_k x_k) / C
 *   dw_j = Σ_rows dy_j · x_j · r */
#include <math.h>

#include "cpu_kernels.h"

void rmsnorm_forward_cpu(float *out, float *rstd, const float *x, const float *weight,
                         int n, int C, float eps)
{
    CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = out + (size_t)i * C;
        double ss = 0; /* double: the mean of squares of a wide row, summed exactly enough */
        for (int j = 0; j < C; j++)
            ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        rstd[i] = r;
        for (int j = 0; j < C; j++)
            yi[j] = xi[j] * r * weight[j];
    }
}

static void rmsnorm_dx_row(float *dx, flame_grad_mode mode, const float *dy, const float *x,
                           const float *w, float r, int C)
{
    double dot = 0; /* Σ_k (dy_k w_k) x_k */
    for (int k = 0; k < C; k++)
        dot += (double)dy[k] * w[k] * x[k];
    float c = (float)(dot * r * r * r / C);
    for (int j = 0; j < C; j++) {
        float d = r * dy[j] * w[j] - x[j] * c;
        dx[j] = mode == FLAME_GRAD_ADD ? dx[j] + d : d;
    }
}

/* dweight first: it reads dout, which dx may be */
void rmsnorm_backward_cpu(float *dx, flame_grad_mode dx_mode, float *dweight, const float *dout,
                          const float *x, const float *weight, const float *rstd, int n, int C)
{
    if (dweight) { /* threads own columns; rows are added in order */
        CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK)
        for (int j = 0; j < C; j++) {
            float acc = 0;
            for (int i = 0; i < n; i++)
                acc += dout[(size_t)i * C + j] * x[(size_t)i * C + j] * rstd[i];
            dweight[j] += acc;
        }
    }
    if (dx) {
        CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK)
        for (int i = 0; i < n; i++)
            rmsnorm_dx_row(dx + (size_t)i * C, dx_mode, dout + (size_t)i * C, x + (size_t)i * C,
                           weight, rstd[i], C);
    }
}
