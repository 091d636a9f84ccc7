/* fla's FusedRMSNormGated with the swish gate, over rows of C values (one head
 * of one token):
 *     y = u · w · swish(g),  u = o · r,  r = 1/sqrt(mean(o²) + eps),  swish(g) = g·σ(g)
 * Backward, with dz = dy ⊙ swish(g) (the gradient reaching the normalized, weighted o):
 *     dg_j = dy_j · u_j w_j · swish'(g_j),   swish'(g) = σ(g)·(1 + g·(1 − σ(g)))
 *     dw_j = Σ_rows dz_j · u_j
 *     do_j = r · dz_j w_j − o_j · r³ · (Σ_k dz_k w_k o_k) / C      (RMSNorm's backward)
 * do and dg are written, dw is added into. */
#include <math.h>
#include <stddef.h>

#include "../common/cpu_pointwise.h"
#include "gla.h"

void gla_gate_norm_forward_cpu(float *y, float *rstd, const float *o, const float *g,
                               const gla_gate_rows *gr, const float *w, int rows, int C, float eps)
{
    PARALLEL_FOR_IF((double)rows * C >= PARALLEL_MIN_WORK)
    for (int i = 0; i < rows; i++) {
        const float *oi = o + (size_t)i * C, *gi = g + gla_gate_row(gr, i, C);
        float *yi = y + (size_t)i * C;
        double ss = 0;
        for (int j = 0; j < C; j++)
            ss += (double)oi[j] * oi[j];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        rstd[i] = r;
        for (int j = 0; j < C; j++)
            yi[j] = oi[j] * r * w[j] * (gi[j] * sigmoid(gi[j]));
    }
}

/* do and dg of one row, written */
static void backward_row(float *d_o, float *dg, const float *dy, const float *o,
                         const float *g, const float *w, float r, int C)
{
    double dot = 0; /* Σ_k dz_k w_k o_k */
    for (int j = 0; j < C; j++) {
        float s = sigmoid(g[j]);
        float dz = dy[j] * g[j] * s;
        dot += (double)dz * w[j] * o[j];
        if (dg)
            dg[j] = dy[j] * o[j] * r * w[j] * s * (1.0f + g[j] * (1.0f - s));
    }
    if (!d_o)
        return;
    float c = (float)(dot * r * r * r / C);
    for (int j = 0; j < C; j++) {
        float dz = dy[j] * g[j] * sigmoid(g[j]);
        d_o[j] = r * dz * w[j] - o[j] * c;
    }
}

void gla_gate_norm_backward_cpu(float *d_o, float *dg, float *dw, const float *dy,
                                const float *o, const float *g, const gla_gate_rows *gr,
                                const float *w, const float *rstd, int rows, int C)
{
    int parallel = (double)rows * C >= PARALLEL_MIN_WORK;
    (void)parallel; /* only read by the pragmas */
    if (d_o || dg) {
        PARALLEL_FOR_IF(parallel)
        for (int i = 0; i < rows; i++) {
            size_t off = (size_t)i * C, g_off = gla_gate_row(gr, i, C);
            backward_row(d_o ? d_o + off : NULL, dg ? dg + g_off : NULL, dy + off, o + off,
                         g + g_off, w, rstd[i], C);
        }
    }
    if (dw) { /* a thread owns a column and adds the rows in order */
        PARALLEL_FOR_IF(parallel)
        for (int j = 0; j < C; j++) {
            float acc = 0.0f;
            for (int i = 0; i < rows; i++) {
                size_t at = (size_t)i * C + j, g_at = gla_gate_row(gr, i, C) + j;
                acc += dy[at] * g[g_at] * sigmoid(g[g_at]) * o[at] * rstd[i];
            }
            dw[j] += acc;
        }
    }
}
