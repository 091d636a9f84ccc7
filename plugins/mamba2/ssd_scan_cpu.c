/* Mamba2's SSD scan, forward and backward, step by step on the CPU.
 *
 * Forward, per head h and sequence (S ∈ R^{P×N}, S_{−1} = 0, A = −exp(A_log_h),
 * a_t = exp(Δ_t A)):
 *     S_t = a_t S_{t−1} + Δ_t x_t B_tᵀ,      y_t = S_t C_t + D x_t
 *
 * Backward. Let G_t = ∂L/∂S_t, counting every later use of S_t (y_t and
 * S_{t+1}); walking t downwards,
 *     G_t = dy_t C_tᵀ + a_{t+1} G_{t+1}
 * and then, with u_t = G_t B_t and the decay's gradient ga_t = a_t ⟨G_t, S_{t−1}⟩,
 *     dx_t = Δ_t u_t + D dy_t                  dB_t = Δ_t G_tᵀ x_t
 *     dC_t = S_tᵀ dy_t                         dΔ_t = A ga_t + x_t · u_t
 *     dA_log += A Σ_t Δ_t ga_t                 dD += Σ_t dy_t · x_t
 * (∂a_t/∂Δ_t = A a_t, ∂a_t/∂A = Δ_t a_t, ∂A/∂A_log = A.)
 *
 * The forward keeps the state at each chunk start but a sequence's first (as
 * gla_recurrence_cpu.c: slot t0/MAMBA2_CHUNK − 1); the backward recomputes a
 * chunk's states from there. A (sequence, head) pair is one task. Heads of a
 * group share B and C, and every token shares A_log and D, so the tasks write
 * their shares of dB, dC and dA into `scratch` and a second pass sums them in a
 * fixed order: the results do not depend on the number of threads. */
#include <math.h>
#include <string.h>

#include "mamba2.h"
#include "../common/recurrence_tasks.h"

size_t mamba2_ssd_checkpoint_floats(int n, int H, int P, int N)
{
    return recurrence_checkpoint_slots(n, MAMBA2_CHUNK) * (size_t)H * P * N;
}

int mamba2_ssd_max_workers(void) { return recurrence_max_workers(); }

/* the chunk's MAMBA2_CHUNK+1 states, then G */
size_t mamba2_ssd_work_floats(int P, int N) { return (size_t)(MAMBA2_CHUNK + 2) * P * N; }

/* dB and dC per head ([n, H, N] each), then ga ([n, H]) */
size_t mamba2_ssd_scratch_floats(int n, int H, int N) { return (size_t)n * H * (2 * (size_t)N + 1); }

static size_t state_floats(const mamba2_ssd_dims *d) { return (size_t)d->P * d->N; }

static size_t checkpoint_offset(const mamba2_ssd_dims *d, int t0, int h)
{
    return ((size_t)(t0 / MAMBA2_CHUNK - 1) * d->H + h) * state_floats(d);
}

/* where token t's head h reads x (and y), and its group's B (and C) */
static size_t x_at(const mamba2_ssd_dims *d, int t, int h) { return ((size_t)t * d->H + h) * d->P; }
static size_t bc_at(const mamba2_ssd_dims *d, int t, int h)
{
    return ((size_t)t * d->G + h / (d->H / d->G)) * d->N;
}

/* S = a S + Δ x Bᵀ */
static void state_step(float *S, const float *x, const float *B, float dt, float a, int P, int N)
{
    for (int p = 0; p < P; p++) {
        float xp = dt * x[p];
        float *row = S + (size_t)p * N;
        for (int j = 0; j < N; j++)
            row[j] = a * row[j] + xp * B[j];
    }
}

/* y = S C + D x, per row p of S */
static void readout(float *y, const float *S, const float *C, const float *x, float Dh, int P,
                    int N)
{
    for (int p = 0; p < P; p++) {
        const float *row = S + (size_t)p * N;
        float acc = 0.0f;
        for (int j = 0; j < N; j++)
            acc += row[j] * C[j];
        y[p] = acc + Dh * x[p];
    }
}

/* ---- forward ---- */

static void forward_task(float *y, float *checkpoints, const float *x, const float *delta, float A,
                         const float *B, const float *C, float Dh, const mamba2_ssd_dims *d,
                         recurrence_task tk, float *S)
{
    int P = d->P, N = d->N;
    memset(S, 0, state_floats(d) * sizeof *S);
    for (int t = tk.t_begin; t < tk.t_end; t++) {
        if (t > tk.t_begin && (t - tk.t_begin) % MAMBA2_CHUNK == 0)
            memcpy(checkpoints + checkpoint_offset(d, t, tk.h), S, state_floats(d) * sizeof *S);
        size_t xo = x_at(d, t, tk.h), bo = bc_at(d, t, tk.h);
        float dt = delta[(size_t)t * d->H + tk.h];
        state_step(S, x + xo, B + bo, dt, expf(dt * A), P, N);
        readout(y + xo, S, C + bo, x + xo, Dh, P, N);
    }
}

void mamba2_ssd_forward_cpu(float *y, float *checkpoints, const float *x, const float *delta,
                            const float *A_log, const float *B, const float *C, const float *D,
                            const mamba2_ssd_dims *d, float *work, int n_work)
{
    int n_tasks = d->n_seqs * d->H;
    size_t per_worker = mamba2_ssd_work_floats(d->P, d->N);
    int threads = recurrence_threads(d->cu_seqlens, d->n_seqs, d->H, (double)state_floats(d), n_work);
    (void)threads; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++) {
        recurrence_task tk = recurrence_task_of(d->cu_seqlens, d->H, i);
        forward_task(y, checkpoints, x, delta, -expf(A_log[tk.h]), B, C, D[tk.h], d, tk,
                     work + (size_t)recurrence_worker_id() * per_worker);
    }
}

/* ---- backward ---- */

/* each head's shares, in `scratch` */
typedef struct shares {
    float *dB, *dC, *ga;
} shares;

/* states[0] = the state before token t0; states[j+1] = the state after token t0+j */
static void recompute_chunk(float *states, const float *checkpoints, const float *x,
                            const float *delta, float A, const float *B, const mamba2_ssd_dims *d,
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
        float dt = delta[(size_t)t * d->H + tk.h];
        state_step(S, x + x_at(d, t, tk.h), B + bc_at(d, t, tk.h), dt, expf(dt * A), d->P, d->N);
    }
}

/* One step backwards at token t. On entry G holds a_{t+1} G_{t+1} (0 at the
 * sequence's end); on exit a_t G_t, ready for token t−1. */
static void backward_step(const mamba2_ssd_grads *g, shares sh, float *G, const float *S_prev,
                          const float *S, const float *dy, const float *x, const float *delta,
                          float A, const float *B, const float *C, float Dh,
                          const mamba2_ssd_dims *d, int t, int h)
{
    int P = d->P, N = d->N;
    size_t xo = x_at(d, t, h), bo = bc_at(d, t, h), so = ((size_t)t * d->H + h) * N;
    size_t th = (size_t)t * d->H + h;
    const float *dy_t = dy + xo, *x_t = x + xo, *B_t = B + bo, *C_t = C + bo;
    float dt = delta[th], a = expf(dt * A);
    float *dB = sh.dB + so, *dC = sh.dC + so;
    memset(dB, 0, (size_t)N * sizeof *dB); /* sums over p below */
    memset(dC, 0, (size_t)N * sizeof *dC);
    float decay = 0.0f, dx_dot = 0.0f; /* ⟨G_t, S_{t−1}⟩ and x_t · u_t */
    for (int p = 0; p < P; p++) {
        float *Gp = G + (size_t)p * N;
        const float *Sp = S + (size_t)p * N, *Pp = S_prev + (size_t)p * N;
        float u = 0.0f;
        for (int j = 0; j < N; j++) {
            Gp[j] += dy_t[p] * C_t[j]; /* now G_t */
            u += Gp[j] * B_t[j];
            decay += Gp[j] * Pp[j];
            dB[j] += Gp[j] * x_t[p];
            dC[j] += Sp[j] * dy_t[p];
            Gp[j] *= a; /* the part of G_t that reaches S_{t−1} */
        }
        g->dx[xo + p] = dt * u + Dh * dy_t[p];
        dx_dot += x_t[p] * u;
    }
    for (int j = 0; j < N; j++)
        dB[j] *= dt;
    sh.ga[th] = a * decay;
    g->ddelta[th] = A * sh.ga[th] + dx_dot;
}

static void backward_task(const mamba2_ssd_grads *g, shares sh, const float *dy, const float *x,
                          const float *delta, float A, const float *B, const float *C, float Dh,
                          const float *checkpoints, const mamba2_ssd_dims *d, recurrence_task tk,
                          float *work)
{
    size_t sf = state_floats(d);
    float *states = work, *G = work + (size_t)(MAMBA2_CHUNK + 1) * sf;
    memset(G, 0, sf * sizeof *G);
    int len = tk.t_end - tk.t_begin;
    for (int c = (len + MAMBA2_CHUNK - 1) / MAMBA2_CHUNK - 1; c >= 0; c--) {
        int t0 = tk.t_begin + c * MAMBA2_CHUNK;
        int t1 = t0 + MAMBA2_CHUNK < tk.t_end ? t0 + MAMBA2_CHUNK : tk.t_end;
        recompute_chunk(states, checkpoints, x, delta, A, B, d, tk, t0, t1);
        for (int t = t1 - 1; t >= t0; t--) {
            const float *S_prev = states + (size_t)(t - t0) * sf;
            backward_step(g, sh, G, S_prev, S_prev + sf, dy, x, delta, A, B, C, Dh, d, t, tk.h);
        }
    }
}

/* dB and dC: each group's heads in order, token by token */
static void sum_group_shares(const mamba2_ssd_grads *g, shares sh, const mamba2_ssd_dims *d, int n,
                             int parallel)
{
    int per_group = d->H / d->G, N = d->N;
    (void)parallel; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (parallel)
#endif
    for (int t = 0; t < n; t++)
        for (int k = 0; k < d->G; k++) {
            float *dB = g->dB + ((size_t)t * d->G + k) * N, *dC = g->dC + ((size_t)t * d->G + k) * N;
            for (int j = 0; j < N; j++) {
                float sb = 0.0f, sc = 0.0f;
                for (int h = k * per_group; h < (k + 1) * per_group; h++) {
                    sb += sh.dB[((size_t)t * d->H + h) * N + j];
                    sc += sh.dC[((size_t)t * d->H + h) * N + j];
                }
                dB[j] = sb, dC[j] = sc;
            }
        }
}

/* dA_log and dD: a head's tokens in order, in double */
static void sum_parameter_grads(const mamba2_ssd_grads *g, shares sh, const float *dy,
                                const float *x, const float *delta, const float *A_log,
                                const mamba2_ssd_dims *d, int n)
{
    for (int h = 0; h < d->H; h++) {
        double dA = 0, dD = 0;
        for (int t = 0; t < n; t++) {
            size_t th = (size_t)t * d->H + h;
            dA += (double)delta[th] * sh.ga[th];
            for (int p = 0; p < d->P; p++)
                dD += (double)dy[th * d->P + p] * x[th * d->P + p];
        }
        g->dA_log[h] += (float)(-exp((double)A_log[h]) * dA);
        g->dD[h] += (float)dD;
    }
}

void mamba2_ssd_backward_cpu(const mamba2_ssd_grads *g, const float *dy, const float *x,
                             const float *delta, const float *A_log, const float *B,
                             const float *C, const float *D, const float *checkpoints,
                             const mamba2_ssd_dims *d, float *work, int n_work, float *scratch)
{
    int n = d->cu_seqlens[d->n_seqs], n_tasks = d->n_seqs * d->H;
    size_t per_head = (size_t)n * d->H * d->N;
    shares sh = {scratch, scratch + per_head, scratch + 2 * per_head};
    size_t per_worker = mamba2_ssd_work_floats(d->P, d->N);
    int threads = recurrence_threads(d->cu_seqlens, d->n_seqs, d->H, (double)state_floats(d), n_work);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++) {
        recurrence_task tk = recurrence_task_of(d->cu_seqlens, d->H, i);
        backward_task(g, sh, dy, x, delta, -expf(A_log[tk.h]), B, C, D[tk.h], checkpoints, d, tk,
                      work + (size_t)recurrence_worker_id() * per_worker);
    }
    sum_group_shares(g, sh, d, n, threads > 1);
    sum_parameter_grads(g, sh, dy, x, delta, A_log, d, n);
}

/* ---- generation ---- */

void mamba2_ssd_step_cpu(float *y, float *states, const float *x, const float *delta,
                         const float *A_log, const float *B, const float *C, const float *D,
                         const mamba2_ssd_dims *d, int n_seqs)
{
    for (int b = 0; b < n_seqs; b++)
        for (int h = 0; h < d->H; h++) {
            float *S = states + ((size_t)b * d->H + h) * state_floats(d);
            size_t xo = x_at(d, b, h), bo = bc_at(d, b, h);
            float dt = delta[(size_t)b * d->H + h], A = -expf(A_log[h]);
            state_step(S, x + xo, B + bo, dt, expf(dt * A), d->P, d->N);
            readout(y + xo, S, C + bo, x + xo, D[h], d->P, d->N);
        }
}
