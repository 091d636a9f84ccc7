/* GSA's first pass, forward and backward, on the CPU: the recurrence over the
 * slots (gsa.h). Per head and sequence, P ∈ R^{M×dk}, P_{−1} = 0, a_t = exp(f_t):
 *     P_t = diag(a_t) · P_{t−1} + s_tᵀ k_t,      ok_t = scale · P_t q_tᵀ
 *
 * Backward. Let G_t = ∂L/∂P_t, counting every later use of P_t (ok_t and
 * P_{t+1}); walking t downwards,
 *     G_t = scale · dok_tᵀ q_t + diag(a_{t+1}) · G_{t+1}
 * and then
 *     dq_t[i] = scale · Σ_m P_t[m,i] dok_t[m]
 *     ds_t[m] = Σ_i G_t[m,i] k_t[i]
 *     dk_t[i] = Σ_m G_t[m,i] s_t[m]
 *     df_t[m] = a_t[m] · Σ_i G_t[m,i] P_{t−1}[m,i]
 * As in gla_recurrence_cpu.c, the forward keeps the state at each chunk start
 * but a sequence's first, and the backward recomputes a chunk's states from
 * there; a (sequence, head) pair is one task with its own outputs, so the
 * results do not depend on the number of threads. */
#include <math.h>
#include <string.h>

#include "gla.h"
#include "../common/recurrence_tasks.h"
#include "gsa.h"

size_t gsa_slot_checkpoint_values(int n, int H, int dk, int M)
{
    return gla_recurrence_checkpoint_values(n, H, M, dk);
}

/* the chunk's GLA_CHUNK+1 states, then G */
size_t gsa_slot_work_floats(int dk, int M) { return gla_recurrence_work_floats(M, dk); }

static size_t state_floats(const gsa_slot_dims *d) { return (size_t)d->M * d->dk; }

/* where the state before token t0 (a chunk start) of head h is kept: GLA's slots */
static size_t checkpoint_offset(const gsa_slot_dims *d, int t0, int h)
{
    return ((size_t)(t0 / GLA_CHUNK - 1) * d->H + h) * state_floats(d);
}

/* the offsets of token t's head h in the key-wide and slot-wide tensors */
static size_t key_at(const gsa_slot_dims *d, int t, int h) { return ((size_t)t * d->H + h) * d->dk; }
static size_t slot_at(const gsa_slot_dims *d, int t, int h) { return ((size_t)t * d->H + h) * d->M; }

/* P = diag(exp(f)) · P + sᵀ k */
static void state_step(float *P, const float *k, const float *s, const float *f, int dk, int M)
{
    for (int m = 0; m < M; m++) {
        float a = expf(f[m]), sm = s[m];
        float *row = P + (size_t)m * dk;
        for (int i = 0; i < dk; i++)
            row[i] = a * row[i] + sm * k[i];
    }
}

/* ok = scale · P qᵀ */
static void readout(float *ok, const float *P, const float *q, float scale, int dk, int M)
{
    for (int m = 0; m < M; m++) {
        const float *row = P + (size_t)m * dk;
        float acc = 0.0f;
        for (int i = 0; i < dk; i++)
            acc += row[i] * q[i];
        ok[m] = scale * acc;
    }
}

/* ---- forward ---- */

static void forward_task(float *ok, float *checkpoints, const float *q, const float *k,
                         const float *s, const float *f, const gsa_slot_dims *d, recurrence_task tk, float *P)
{
    memset(P, 0, state_floats(d) * sizeof *P);
    for (int t = tk.t_begin; t < tk.t_end; t++) {
        if (t > tk.t_begin && (t - tk.t_begin) % GLA_CHUNK == 0)
            memcpy(checkpoints + checkpoint_offset(d, t, tk.h), P, state_floats(d) * sizeof *P);
        size_t ki = key_at(d, t, tk.h), si = slot_at(d, t, tk.h);
        state_step(P, k + ki, s + si, f + si, d->dk, d->M);
        if (ok)
            readout(ok + si, P, q + ki, d->scale, d->dk, d->M);
    }
}

void gsa_slot_recurrence_forward_cpu(float *ok, float *checkpoints, const float *q, const float *k,
                                     const float *s, const float *f, const gsa_slot_dims *d,
                                     float *work, int n_work)
{
    int n_tasks = d->n_seqs * d->H;
    size_t per_worker = gsa_slot_work_floats(d->dk, d->M);
    int threads = recurrence_threads(d->cu_seqlens, d->n_seqs, d->H, (double)d->dk * d->M, n_work);
    (void)threads; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++)
        forward_task(ok, checkpoints, q, k, s, f, d, recurrence_task_of(d->cu_seqlens, d->H, i),
                     work + (size_t)recurrence_worker_id() * per_worker);
}

/* ---- backward ---- */

typedef struct grads {
    float *dq, *dk, *ds, *df;
} grads;

/* states[0] = the state before token t0; states[j+1] = the state after token t0+j */
static void recompute_chunk(float *states, const float *checkpoints, const float *k,
                            const float *s, const float *f, const gsa_slot_dims *d, recurrence_task tk,
                            int t0, int t1)
{
    size_t sf = state_floats(d);
    if (t0 == tk.t_begin)
        memset(states, 0, sf * sizeof *states);
    else
        memcpy(states, checkpoints + checkpoint_offset(d, t0, tk.h), sf * sizeof *states);
    for (int t = t0; t < t1; t++) {
        float *P = states + (size_t)(t - t0 + 1) * sf;
        memcpy(P, P - sf, sf * sizeof *P);
        size_t si = slot_at(d, t, tk.h);
        state_step(P, k + key_at(d, t, tk.h), s + si, f + si, d->dk, d->M);
    }
}

/* One step backwards at token t. On entry G holds diag(a_{t+1}) G_{t+1} (0 at
 * the sequence's end); on exit diag(a_t) G_t, ready for token t−1. */
static void backward_step(grads g, float *G, const float *P_prev, const float *P, const float *dok,
                          const float *q, const float *k, const float *s, const float *f,
                          const gsa_slot_dims *d, int t, int h)
{
    int dk = d->dk, M = d->M;
    size_t ki = key_at(d, t, h), si = slot_at(d, t, h);
    const float *q_t = q + ki, *k_t = k + ki;
    float *dq_t = g.dq + ki, *dk_t = g.dk + ki;
    memset(dq_t, 0, (size_t)dk * sizeof *dq_t); /* sums over the slots below */
    memset(dk_t, 0, (size_t)dk * sizeof *dk_t);
    for (int m = 0; m < M; m++) {
        float sdo = d->scale * dok[si + m], a = expf(f[si + m]), sm = s[si + m];
        float *Gm = G + (size_t)m * dk;
        const float *Pm = P + (size_t)m * dk, *Qm = P_prev + (size_t)m * dk;
        float acc_s = 0.0f, acc_f = 0.0f;
        for (int i = 0; i < dk; i++) {
            Gm[i] += sdo * q_t[i]; /* now G_t */
            dq_t[i] += sdo * Pm[i];
            dk_t[i] += Gm[i] * sm;
            acc_s += Gm[i] * k_t[i];
            acc_f += Gm[i] * Qm[i];
            Gm[i] *= a; /* the part of G_t that reaches P_{t−1} */
        }
        g.ds[si + m] = acc_s;
        g.df[si + m] = a * acc_f;
    }
}

static void backward_task(grads g, const float *dok, const float *q, const float *k,
                          const float *s, const float *f, const float *checkpoints,
                          const gsa_slot_dims *d, recurrence_task tk, float *work)
{
    size_t sf = state_floats(d);
    float *states = work, *G = work + (size_t)(GLA_CHUNK + 1) * sf;
    memset(G, 0, sf * sizeof *G);
    int len = tk.t_end - tk.t_begin;
    for (int c = (len + GLA_CHUNK - 1) / GLA_CHUNK - 1; c >= 0; c--) {
        int t0 = tk.t_begin + c * GLA_CHUNK;
        int t1 = t0 + GLA_CHUNK < tk.t_end ? t0 + GLA_CHUNK : tk.t_end;
        recompute_chunk(states, checkpoints, k, s, f, d, tk, t0, t1);
        for (int t = t1 - 1; t >= t0; t--) {
            const float *P_prev = states + (size_t)(t - t0) * sf;
            backward_step(g, G, P_prev, P_prev + sf, dok, q, k, s, f, d, t, tk.h);
        }
    }
}

void gsa_slot_recurrence_backward_cpu(float *dq, float *dk, float *ds, float *df, const float *dok,
                                      const float *q, const float *k, const float *s,
                                      const float *f, const float *checkpoints,
                                      const gsa_slot_dims *d, float *work, int n_work)
{
    grads g = {dq, dk, ds, df};
    int n_tasks = d->n_seqs * d->H;
    size_t per_worker = gsa_slot_work_floats(d->dk, d->M);
    int threads = recurrence_threads(d->cu_seqlens, d->n_seqs, d->H, (double)d->dk * d->M, n_work);
    (void)threads; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++)
        backward_task(g, dok, q, k, s, f, checkpoints, d, recurrence_task_of(d->cu_seqlens, d->H, i),
                      work + (size_t)recurrence_worker_id() * per_worker);
}

/* ---- generation ---- */

void gsa_slot_step_cpu(float *ok, float *states, const float *q, const float *k, const float *s,
                       const float *f, const gsa_slot_dims *d, int n_seqs)
{
    for (int b = 0; b < n_seqs; b++)
        for (int h = 0; h < d->H; h++) {
            float *P = states + ((size_t)b * d->H + h) * state_floats(d);
            size_t ki = key_at(d, b, h), si = slot_at(d, b, h);
            state_step(P, k + ki, s + si, f + si, d->dk, d->M);
            readout(ok + si, P, q + ki, d->scale, d->dk, d->M);
        }
}
