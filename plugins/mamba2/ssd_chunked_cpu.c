/* Mamba2's SSD scan forward in its chunked form (ssd_minimal's), on the CPU:
 * the model of what the CUDA kernel computes, checked against the steps.
 *
 * Within a chunk of l steps starting from the state S (the previous chunk's
 * last), let cs_i = Σ_{j≤i} Δ_j A be the running sum of the log-decays (A < 0,
 * so cs falls). Unrolling S_t = a_t S_{t−1} + Δ_t x_t B_tᵀ gives
 *     y_i     = exp(cs_i) · S C_i  +  Σ_{j≤i} exp(cs_i − cs_j) Δ_j (C_i · B_j) x_j  +  D x_i
 *     S_next  = exp(cs_{l−1}) · S  +  Σ_j exp(cs_{l−1} − cs_j) Δ_j x_j B_jᵀ
 * Only differences cs_i − cs_j with i ≥ j, and cs itself, are exponentiated:
 * all ≤ 0, so nothing overflows however long the chunk. The first term is the
 * inter-chunk part, the second the intra-chunk (a masked attention with
 * weights L_ij = exp(cs_i − cs_j)). One task per (sequence, head), as in
 * ssd_scan_cpu.c. */
#include <math.h>
#include <string.h>

#include "mamba2.h"
#include "../common/recurrence_tasks.h"

/* the state, then the chunk's running sums */
size_t mamba2_ssd_chunked_work_floats(int P, int N, int chunk) { return (size_t)P * N + chunk; }

typedef struct chunk_in {
    const float *x, *delta, *B, *C;
    float A, Dh;
} chunk_in;

/* token t's x (and y) offset, and its group's B (and C) offset */
static size_t x_at(const mamba2_ssd_dims *d, int t, int h) { return ((size_t)t * d->H + h) * d->P; }
static size_t bc_at(const mamba2_ssd_dims *d, int t, int h)
{
    return ((size_t)t * d->G + h / (d->H / d->G)) * d->N;
}

static float dot(const float *a, const float *b, int n)
{
    float acc = 0.0f;
    for (int i = 0; i < n; i++)
        acc += a[i] * b[i];
    return acc;
}

/* y of tokens [t0, t1) from the state S before them, then S moved past them */
static void one_chunk(float *y, float *S, float *cs, chunk_in in, const mamba2_ssd_dims *d, int h,
                      int t0, int t1)
{
    int P = d->P, N = d->N, l = t1 - t0;
    for (int i = 0; i < l; i++)
        cs[i] = (i ? cs[i - 1] : 0.0f) + in.delta[(size_t)(t0 + i) * d->H + h] * in.A;
    for (int i = 0; i < l; i++) {
        size_t yo = x_at(d, t0 + i, h);
        const float *Ci = in.C + bc_at(d, t0 + i, h);
        float inter = expf(cs[i]);
        for (int p = 0; p < P; p++)
            y[yo + p] = inter * dot(S + (size_t)p * N, Ci, N) + in.Dh * in.x[yo + p];
        for (int j = 0; j <= i; j++) {
            float dt = in.delta[(size_t)(t0 + j) * d->H + h];
            float w = expf(cs[i] - cs[j]) * dt * dot(Ci, in.B + bc_at(d, t0 + j, h), N);
            const float *xj = in.x + x_at(d, t0 + j, h);
            for (int p = 0; p < P; p++)
                y[yo + p] += w * xj[p];
        }
    }
    float last = cs[l - 1], carry = expf(last);
    for (size_t e = 0; e < (size_t)P * N; e++)
        S[e] *= carry;
    for (int j = 0; j < l; j++) {
        float w = expf(last - cs[j]) * in.delta[(size_t)(t0 + j) * d->H + h];
        const float *xj = in.x + x_at(d, t0 + j, h), *Bj = in.B + bc_at(d, t0 + j, h);
        for (int p = 0; p < P; p++)
            for (int k = 0; k < N; k++)
                S[(size_t)p * N + k] += w * xj[p] * Bj[k];
    }
}

void mamba2_ssd_chunked_forward_cpu(float *y, const float *x, const float *delta,
                                    const float *A_log, const float *B, const float *C,
                                    const float *D, const mamba2_ssd_dims *d, int chunk,
                                    float *work, int n_work)
{
    int n_tasks = d->n_seqs * d->H;
    size_t per_worker = mamba2_ssd_chunked_work_floats(d->P, d->N, chunk);
    int threads = recurrence_threads(d->cu_seqlens, d->n_seqs, d->H, (double)d->P * d->N, n_work);
    (void)threads; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++) {
        recurrence_task tk = recurrence_task_of(d->cu_seqlens, d->H, i);
        float *S = work + (size_t)recurrence_worker_id() * per_worker, *cs = S + (size_t)d->P * d->N;
        chunk_in in = {x, delta, B, C, -expf(A_log[tk.h]), D[tk.h]};
        memset(S, 0, (size_t)d->P * d->N * sizeof *S);
        for (int t0 = tk.t_begin; t0 < tk.t_end; t0 += chunk)
            one_chunk(y, S, cs, in, d, tk.h, t0, t0 + chunk < tk.t_end ? t0 + chunk : tk.t_end);
    }
}
