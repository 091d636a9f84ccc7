/* Short causal depthwise conv1d over packed documents (ops.h):
 *   pre[t,c] = bias[c] + Σ_j w[c,j] · x[t−(K−1)+j, c]   (x before t's document = 0)
 *   out = silu(pre) or pre
 * Backward, with g[t,c] = dout[t,c] · silu'(pre[t,c]) (or dout):
 *   dx[u,c]  = Σ_j w[c,j] · g[u+(K−1)−j, c]   over those tokens in u's document
 *   dw[c,j] += Σ_t g[t,c] · x[t−(K−1)+j, c]    dbias[c] += Σ_t g[t,c]
 * Threads own tokens for out and dx, channels for dw and dbias (tokens added
 * in order), so results do not depend on the number of threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu_kernels.h"

/* the document of token t: the largest s with cu[s] <= t */
static int doc_of(const int32_t *cu, int n_seqs, int t)
{
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (cu[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static void check_width(int K)
{
    if (K < 1 || K > FLAME_CONV1D_MAX_K) {
        fprintf(stderr, "flame: conv1d kernel width %d is outside 1..%d\n", K, FLAME_CONV1D_MAX_K);
        exit(1);
    }
}

static float conv1d_pre(const float *x, const float *w, const float *bias, int t, int start, int C,
                        int K, int c)
{
    float acc = bias ? bias[c] : 0.0f;
    for (int j = 0; j < K; j++) {
        int src = t - (K - 1) + j;
        if (src >= start)
            acc += w[(size_t)c * K + j] * x[(size_t)src * C + c];
    }
    return acc;
}

static float sigmoid(float p) { return 1.0f / (1.0f + expf(-p)); }

void conv1d_forward_cpu(float *out, const float *x, const float *weight, const float *bias,
                        const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu)
{
    check_width(K);
    CPU_PARALLEL_FOR_IF((double)n * C * K >= CPU_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        int start = cu_seqlens[doc_of(cu_seqlens, n_seqs, t)];
        for (int c = 0; c < C; c++) {
            float p = conv1d_pre(x, weight, bias, t, start, C, K, c);
            out[(size_t)t * C + c] = silu ? p * sigmoid(p) : p;
        }
    }
}

void conv1d_backward_cpu(float *dx, float *dweight, float *dbias, const float *dout,
                         const float *x, const float *weight, const float *bias,
                         const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu)
{
    check_width(K);
    if (n <= 0 || C <= 0)
        return;
    float *g = malloc((size_t)n * C * sizeof *g); /* dout through the silu */
    if (!g) {
        fprintf(stderr, "flame: out of memory in conv1d_backward\n");
        exit(1);
    }
    CPU_PARALLEL_FOR_IF((double)n * C * K >= CPU_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        int start = cu_seqlens[doc_of(cu_seqlens, n_seqs, t)];
        for (int c = 0; c < C; c++) {
            size_t at = (size_t)t * C + c;
            float s = 0.0f, p = 0.0f;
            if (silu) {
                p = conv1d_pre(x, weight, bias, t, start, C, K, c);
                s = sigmoid(p);
            }
            g[at] = silu ? dout[at] * s * (1.0f + p * (1.0f - s)) : dout[at];
        }
    }
    if (dweight || dbias) {
        CPU_PARALLEL_FOR_IF((double)n * C * K >= CPU_PARALLEL_MIN_WORK)
        for (int c = 0; c < C; c++) {
            /* double: a channel's sums run over every token of the batch */
            double dw[FLAME_CONV1D_MAX_K] = {0}, db = 0;
            for (int s = 0; s < n_seqs; s++)
                for (int t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
                    double gt = g[(size_t)t * C + c];
                    db += gt;
                    for (int j = 0; j < K; j++) {
                        int src = t - (K - 1) + j;
                        if (src >= cu_seqlens[s])
                            dw[j] += gt * x[(size_t)src * C + c];
                    }
                }
            for (int j = 0; dweight && j < K; j++)
                dweight[(size_t)c * K + j] += (float)dw[j];
            if (dbias)
                dbias[c] += (float)db;
        }
    }
    if (dx) {
        CPU_PARALLEL_FOR_IF((double)n * C * K >= CPU_PARALLEL_MIN_WORK)
        for (int u = 0; u < n; u++) {
            int end = cu_seqlens[doc_of(cu_seqlens, n_seqs, u) + 1];
            for (int c = 0; c < C; c++) {
                float acc = 0.0f;
                for (int j = 0; j < K; j++) {
                    int t = u + (K - 1) - j;
                    if (t < end)
                        acc += weight[(size_t)c * K + j] * g[(size_t)t * C + c];
                }
                dx[(size_t)u * C + c] = acc;
            }
        }
    }
    free(g);
}

/* the same sum as conv1d_pre, the window standing for the earlier tokens */
void conv1d_step_cpu(float *out, float *window, const float *x, const float *weight,
                     const float *bias, int B, int C, int K, int silu)
{
    check_width(K);
    for (int b = 0; b < B; b++) {
        float *win = window + (size_t)b * (K - 1) * C;
        const float *xb = x + (size_t)b * C;
        for (int c = 0; c < C; c++) {
            float acc = bias ? bias[c] : 0.0f;
            for (int j = 0; j < K - 1; j++)
                acc += weight[(size_t)c * K + j] * win[(size_t)j * C + c];
            acc += weight[(size_t)c * K + K - 1] * xb[c];
            out[(size_t)b * C + c] = silu ? acc * sigmoid(acc) : acc;
            for (int j = 0; j + 1 < K - 1; j++) /* shift: drop the oldest, x last */
                win[(size_t)j * C + c] = win[(size_t)(j + 1) * C + c];
            if (K > 1)
                win[(size_t)(K - 2) * C + c] = xb[c];
        }
    }
}
