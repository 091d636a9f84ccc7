/* The gated linear recurrence of GLA, forward and backward, on the CPU.
 *
 * Forward, per head and per sequence (S ∈ R^{dk×dv}, S_{−1} = 0, a_t = exp(gk_t)):
 *     S_t = diag(a_t) · S_{t−1} + k_tᵀ v_t,      o_t = (scale · q_t) · S_t
 *
 * Backward. Let G_t = ∂L/∂S_t, counting every later use of S_t. S_t is read by
 * o_t and by S_{t+1} = diag(a_{t+1}) S_t + ..., so, walking t downwards,
 *     G_t = (scale · q_t)ᵀ do_t + diag(a_{t+1}) · G_{t+1}
 * and then
 *     dq_t[i]  = scale · Σ_v S_t[i,v] do_t[v]
 *     dk_t[i]  = Σ_v G_t[i,v] v_t[v]
 *     dv_t[v]  = Σ_i G_t[i,v] k_t[i]
 *     dgk_t[i] = a_t[i] · Σ_v G_t[i,v] S_{t−1}[i,v]     (∂S_t/∂gk_t[i] = a_t[i] S_{t−1}[i,:])
 * The backward needs S_{t−1} and S_t at every step. The forward keeps the state
 * at the start of each chunk of GLA_CHUNK steps (except a sequence's first chunk,
 * whose start state is 0); the backward walks the chunks last to first,
 * recomputes a chunk's GLA_CHUNK+1 states from its checkpoint into `work`, and
 * then walks the chunk's steps backwards.
 *
 * Where a checkpoint lives: a chunk starting at token t0 (flattened index,
 * t0 ≥ GLA_CHUNK since it is not a sequence's first) goes to slot t0/GLA_CHUNK − 1.
 * Chunk starts are at least GLA_CHUNK apart (within a sequence exactly, across a
 * boundary more), so slots are distinct, and they are below (n−1)/GLA_CHUNK.
 *
 * Each (sequence, head) pair is one task with its own outputs, so the threads
 * never share a sum and the results do not depend on their number.
 *
 * Rows: q, k, v (and dq, dk, dv) a stride apart as d->stride says (gla.h),
 * gk, dgk, o and dout packed; `at` finds head h of token t in each. */
#include <math.h>
#include <string.h>

#include "gla.h"
#include "../common/recurrence_tasks.h"

size_t gla_recurrence_checkpoint_values(int n, int H, int dk, int dv)
{
    return recurrence_checkpoint_slots(n, GLA_CHUNK) * (size_t)H * dk * dv;
}

int gla_recurrence_max_workers(void) { return recurrence_max_workers(); }

/* the chunk's GLA_CHUNK+1 states, then G */
size_t gla_recurrence_work_floats(int dk, int dv)
{
    return (size_t)(GLA_CHUNK + 2) * dk * dv;
}

static size_t state_floats(const gla_recurrence_dims *d) { return (size_t)d->dk * d->dv; }

/* where head h of token t starts in each layout */
typedef struct rows_at {
    size_t qk, v, gk, o; /* q and k; v; gk (packed by dk); o and dout (packed by dv) */
} rows_at;

static rows_at at(const gla_recurrence_dims *d, int t, int h)
{
    rows_at r = {(size_t)t * gla_qk_stride(d) + (size_t)h * d->dk, (size_t)t * gla_v_stride(d) + (size_t)h * d->dv,
                 ((size_t)t * d->H + h) * d->dk, ((size_t)t * d->H + h) * d->dv};
    return r;
}

/* where the state before token t0 (a chunk start) of head h is kept */
static size_t checkpoint_offset(const gla_recurrence_dims *d, int t0, int h)
{
    size_t slot = (size_t)(t0 / GLA_CHUNK - 1);
    return (slot * d->H + h) * state_floats(d);
}

/* ---- one step ---- */

/* S = diag(exp(gk)) · S + kᵀ v */
static void state_step(float *S, const float *k, const float *v, const float *gk, int dk, int dv)
{
    for (int i = 0; i < dk; i++) {
        float a = expf(gk[i]), ki = k[i];
        float *row = S + (size_t)i * dv;
        for (int j = 0; j < dv; j++)
            row[j] = a * row[j] + ki * v[j];
    }
}

/* o = (scale · q) · S */
static void readout(float *o, const float *S, const float *q, float scale, int dk, int dv)
{
    for (int j = 0; j < dv; j++)
        o[j] = 0.0f;
    for (int i = 0; i < dk; i++) {
        float qi = scale * q[i];
        const float *row = S + (size_t)i * dv;
        for (int j = 0; j < dv; j++)
            o[j] += qi * row[j];
    }
}

/* ---- forward ---- */

static void forward_task(float *o, float *checkpoints, const float *q, const float *k,
                         const float *v, const float *gk, const gla_recurrence_dims *d,
                         recurrence_task tk, float *S)
{
    int dk = d->dk, dv = d->dv;
    memset(S, 0, state_floats(d) * sizeof *S);
    for (int t = tk.t_begin; t < tk.t_end; t++) {
        if (t > tk.t_begin && (t - tk.t_begin) % GLA_CHUNK == 0)
            memcpy(checkpoints + checkpoint_offset(d, t, tk.h), S, state_floats(d) * sizeof *S);
        rows_at r = at(d, t, tk.h);
        state_step(S, k + r.qk, v + r.v, gk + r.gk, dk, dv);
        if (o)
            readout(o + r.o, S, q + r.qk, d->scale, dk, dv);
    }
}

void gla_recurrence_forward_cpu(float *o, float *checkpoints, const float *q,
                                const float *k, const float *v, const float *gk,
                                const gla_recurrence_dims *d, float *work, int n_work)
{
    int n_tasks = d->n_seqs * d->H;
    size_t per_worker = gla_recurrence_work_floats(d->dk, d->dv);
    int threads = recurrence_threads(d->cu_seqlens, d->n_seqs, d->H, (double)d->dk * d->dv, n_work);
    (void)threads; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++)
        forward_task(o, checkpoints, q, k, v, gk, d, recurrence_task_of(d->cu_seqlens, d->H, i),
                     work + (size_t)recurrence_worker_id() * per_worker);
}

/* ---- backward ---- */

typedef struct grads {
    float *dq, *dk, *dv, *dgk;
} grads;

/* states[0] = the state before token t0; states[j+1] = the state after token t0+j */
static void recompute_chunk(float *states, const float *checkpoints, const float *k,
                            const float *v, const float *gk, const gla_recurrence_dims *d,
                            recurrence_task tk, int t0, int t1)
{
    size_t sf = state_floats(d);
    if (t0 == tk.t_begin)
        memset(states, 0, sf * sizeof *states);
    else
        memcpy(states, checkpoints + checkpoint_offset(d, t0, tk.h), sf * sizeof *states);
    for (int t = t0; t < t1; t++) {
        float *S = states + (size_t)(t - t0 + 1) * sf;
        memcpy(S, S - sf, sf * sizeof *S);
        rows_at r = at(d, t, tk.h);
        state_step(S, k + r.qk, v + r.v, gk + r.gk, d->dk, d->dv);
    }
}

/* One step backwards at token t. On entry G holds diag(a_{t+1}) G_{t+1} (0 at
 * the sequence's end); on exit it holds diag(a_t) G_t, ready for token t−1. */
static void backward_step(grads g, float *G, const float *S_prev, const float *S,
                          const float *dout, const float *q, const float *k, const float *v,
                          const float *gk, const gla_recurrence_dims *d, int t, int h)
{
    int dk = d->dk, dv = d->dv;
    rows_at r = at(d, t, h);
    size_t qk = r.qk;
    const float *do_t = dout + r.o, *v_t = v + r.v;
    float *dv_t = g.dv + r.v;
    memset(dv_t, 0, (size_t)dv * sizeof *dv_t); /* a sum over the keys below */
    for (int i = 0; i < dk; i++) {
        float sq = d->scale * q[qk + i], a = expf(gk[r.gk + i]), ki = k[qk + i];
        float *Gi = G + (size_t)i * dv;
        const float *Si = S + (size_t)i * dv, *Pi = S_prev + (size_t)i * dv;
        float acc_q = 0.0f, acc_k = 0.0f, acc_g = 0.0f;
        for (int j = 0; j < dv; j++) {
            Gi[j] += sq * do_t[j]; /* now G_t */
            acc_q += Si[j] * do_t[j];
            acc_k += Gi[j] * v_t[j];
            acc_g += Gi[j] * Pi[j];
            dv_t[j] += Gi[j] * ki;
            Gi[j] *= a; /* the part of G_t that reaches S_{t−1} */
        }
        g.dq[qk + i] = d->scale * acc_q;
        g.dk[qk + i] = acc_k;
        g.dgk[r.gk + i] = a * acc_g;
    }
}

static void backward_task(grads g, const float *dout, const float *q, const float *k,
                          const float *v, const float *gk, const float *checkpoints,
                          const gla_recurrence_dims *d, recurrence_task tk, float *work)
{
    size_t sf = state_floats(d);
    float *states = work, *G = work + (size_t)(GLA_CHUNK + 1) * sf;
    memset(G, 0, sf * sizeof *G);
    int len = tk.t_end - tk.t_begin;
    for (int c = (len + GLA_CHUNK - 1) / GLA_CHUNK - 1; c >= 0; c--) {
        int t0 = tk.t_begin + c * GLA_CHUNK;
        int t1 = t0 + GLA_CHUNK < tk.t_end ? t0 + GLA_CHUNK : tk.t_end;
        recompute_chunk(states, checkpoints, k, v, gk, d, tk, t0, t1);
        for (int t = t1 - 1; t >= t0; t--) {
            const float *S_prev = states + (size_t)(t - t0) * sf;
            backward_step(g, G, S_prev, S_prev + sf, dout, q, k, v, gk, d, t, tk.h);
        }
    }
}

void gla_recurrence_backward_cpu(float *dq, float *dk, float *dv, float *dgk,
                                 const float *dout, const float *q, const float *k,
                                 const float *v, const float *gk, float *checkpoints,
                                 const gla_recurrence_dims *d, float *work, int n_work)
{
    if (d->remake_checkpoints)
        gla_recurrence_forward_cpu(NULL, checkpoints, NULL, k, v, gk, d, work, n_work);
    grads g = {dq, dk, dv, dgk};
    int n_tasks = d->n_seqs * d->H;
    size_t per_worker = gla_recurrence_work_floats(d->dk, d->dv);
    int threads = recurrence_threads(d->cu_seqlens, d->n_seqs, d->H, (double)d->dk * d->dv, n_work);
    (void)threads; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++)
        backward_task(g, dout, q, k, v, gk, checkpoints, d, recurrence_task_of(d->cu_seqlens, d->H, i),
                      work + (size_t)recurrence_worker_id() * per_worker);
}

/* ---- generation ---- */

void gla_recurrence_step_cpu(float *o, float *states, const float *q, const float *k,
                             const float *v, const float *gk, int B, int H, int dk, int dv,
                             float scale, int stride)
{
    gla_recurrence_dims d = {.H = H, .dk = dk, .dv = dv, .scale = scale, .stride = stride};
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            rows_at r = at(&d, b, h);
            float *S = states + ((size_t)b * H + h) * dk * dv;
            state_step(S, k + r.qk, v + r.v, gk + r.gk, dk, dv);
            readout(o + r.o, S, q + r.qk, scale, dk, dv);
        }
}
