/* Causal softmax attention with grouped key/value heads on the CPU
 * (transformer.h): the plain reference, one query row at a time.
 *
 * Forward, per sequence, query head h (key/value head g = h / (H/Hkv)) and row i:
 *     s_j = scale · q_i·k_j (j ≤ i; with a window, i − j < window),
 *     p_j = exp(s_j − lse_i),  o_i = Σ_j p_j v_j
 * with lse_i = log Σ_j exp(s_j), kept for the backward.
 * Backward, with D_i = do_i·o_i (= Σ_j p_j do_i·v_j):
 *     dv_j += p_ij do_i;   ds_ij = p_ij (do_i·v_j − D_i);
 *     dq_i += scale Σ_j ds_ij k_j;   dk_j += scale Σ_i ds_ij q_i
 * Each (sequence, key/value head) pair is one task: it owns the rows of dk, dv
 * of its head and the dq rows of its query heads, so threads never share a sum
 * and results do not depend on their number. Sums run in double; a task holds
 * one row of scores and its own key/value gradients, never a T×T matrix. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transformer.h"

static double dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* head h of token t's row, rows `stride` apart */
static const float *row(const float *x, int t, size_t stride, int h, int hd)
{
    return x + (size_t)t * stride + (size_t)h * hd;
}

/* the first key row i sees in a sequence starting at t0 */
static int first_key(const attention_dims *d, int t0, int i)
{
    return d->window > 0 && i - d->window + 1 > t0 ? i - d->window + 1 : t0;
}

/* scores of query row i against keys first_key..i into s (s[j − t0]); returns
 * their log-sum-exp */
static double row_scores(double *s, const float *qi, const float *k, int t0, int i, int g,
                         const attention_dims *d)
{
    double m = -INFINITY, sum = 0;
    for (int j = first_key(d, t0, i); j <= i; j++) {
        s[j - t0] = d->scale * dot(qi, row(k, j, attention_kv_stride(d), g, d->hd), d->hd);
        m = fmax(m, s[j - t0]);
    }
    for (int j = first_key(d, t0, i); j <= i; j++)
        sum += exp(s[j - t0] - m);
    return m + log(sum);
}

static void forward_task(float *o, float *lse, const float *q, const float *k, const float *v,
                         const attention_dims *d, int t0, int t1, int g, double *s, double *acc)
{
    int group = d->H / d->Hkv, hd = d->hd;
    size_t q_stride = attention_q_stride(d), kv_stride = attention_kv_stride(d);
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int i = t0; i < t1; i++) {
            double l = row_scores(s, row(q, i, q_stride, h, hd), k, t0, i, g, d);
            memset(acc, 0, (size_t)hd * sizeof *acc);
            for (int j = first_key(d, t0, i); j <= i; j++) {
                double p = exp(s[j - t0] - l);
                const float *vj = row(v, j, kv_stride, g, hd);
                for (int c = 0; c < hd; c++)
                    acc[c] += p * vj[c];
            }
            float *oi = o + ((size_t)i * d->H + h) * hd;
            for (int c = 0; c < hd; c++)
                oi[c] = (float)acc[c];
            lse[(size_t)i * d->H + h] = (float)l;
        }
}

/* a task's scratch; running out of memory in a training step cannot be undone,
 * so it ends the run with a line (exit status 1) rather than a crash */
static double *scratch(size_t bytes)
{
    double *s = malloc(bytes);
    if (!s) {
        fprintf(stderr, "transformer: out of memory for attention scratch (%zu bytes)\n", bytes);
        exit(1);
    }
    return s;
}

void attention_forward_cpu(float *o, float *lse, const float *q, const float *k, const float *v,
                           const attention_dims *d)
{
    int tasks = d->seqs.n_seqs * d->Hkv;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (int task = 0; task < tasks; task++) {
        int sq = task / d->Hkv, g = task % d->Hkv;
        int t0 = d->seqs.cu_seqlens[sq], t1 = d->seqs.cu_seqlens[sq + 1];
        double *s = scratch(((size_t)(t1 - t0) + d->hd) * sizeof *s);
        forward_task(o, lse, q, k, v, d, t0, t1, g, s, s + (t1 - t0));
        free(s);
    }
}

/* one query row's backward: dq_i into dq_acc (hd), dk and dv rows of t0.. into dk_acc, dv_acc */
static void backward_row(double *dq_acc, double *dk_acc, double *dv_acc, double *s, const float *doi,
                         const float *oi, double l, const float *qi, const float *k, const float *v,
                         int t0, int i, int g, const attention_dims *d)
{
    int hd = d->hd;
    size_t kv_stride = attention_kv_stride(d);
    row_scores(s, qi, k, t0, i, g, d);
    double D = dot(doi, oi, hd);
    for (int j = first_key(d, t0, i); j <= i; j++) {
        const float *kj = row(k, j, kv_stride, g, hd), *vj = row(v, j, kv_stride, g, hd);
        double p = exp(s[j - t0] - l), ds = p * (dot(doi, vj, hd) - D) * d->scale;
        double *dkj = dk_acc + (size_t)(j - t0) * hd, *dvj = dv_acc + (size_t)(j - t0) * hd;
        for (int c = 0; c < hd; c++) {
            dvj[c] += p * doi[c];
            dq_acc[c] += ds * kj[c];
            dkj[c] += ds * qi[c];
        }
    }
}

static void set_rows(float *dst, const double *src, int t0, int t1, size_t stride, int h, int hd)
{
    for (int t = t0; t < t1; t++) {
        float *r = dst + (size_t)t * stride + (size_t)h * hd;
        for (int c = 0; c < hd; c++)
            r[c] = (float)src[(size_t)(t - t0) * hd + c];
    }
}

void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *o,
                            const float *lse, const float *q, const float *k, const float *v,
                            const attention_dims *d)
{
    int tasks = d->seqs.n_seqs * d->Hkv, group = d->H / d->Hkv, hd = d->hd;
    size_t q_stride = attention_q_stride(d), kv_stride = attention_kv_stride(d), o_stride = (size_t)d->H * hd;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (int task = 0; task < tasks; task++) {
        int sq = task / d->Hkv, g = task % d->Hkv;
        int t0 = d->seqs.cu_seqlens[sq], t1 = d->seqs.cu_seqlens[sq + 1], len = t1 - t0;
        /* scores, dq of one row, dk and dv of the whole sequence */
        double *s = scratch(((size_t)len + hd + 2 * (size_t)len * hd) * sizeof *s);
        double *dq_acc = s + len, *dk_acc = dq_acc + hd, *dv_acc = dk_acc + (size_t)len * hd;
        memset(dk_acc, 0, 2 * (size_t)len * hd * sizeof *s);
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int i = t0; i < t1; i++) {
                memset(dq_acc, 0, (size_t)hd * sizeof *s);
                backward_row(dq_acc, dk_acc, dv_acc, s, row(dout, i, o_stride, h, hd), row(o, i, o_stride, h, hd),
                             lse[(size_t)i * d->H + h], row(q, i, q_stride, h, hd), k, v, t0, i, g, d);
                set_rows(dq, dq_acc, i, i + 1, q_stride, h, hd);
            }
        set_rows(dk, dk_acc, t0, t1, kv_stride, g, hd);
        set_rows(dv, dv_acc, t0, t1, kv_stride, g, hd);
        free(s);
    }
    if (d->rotary_rd) { /* in place: the rotation's transpose */
        rotary_backward_cpu(dq, dq, &d->seqs, d->H, hd, d->rotary_rd, d->rotary_base, q_stride);
        rotary_backward_cpu(dk, dk, &d->seqs, d->Hkv, hd, d->rotary_rd, d->rotary_base, kv_stride);
    }
}
