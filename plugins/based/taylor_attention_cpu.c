/* Based's Taylor linear attention, forward and backward, token by token on
 * the CPU.
 *
 * Feature map. phi(x) = [1, x/F^(1/4), (x ⊗ x)/(sqrt(2)·sqrt(F))] makes
 * phi(q)·phi(k) = 1 + s + s²/2 with s = q·k/sqrt(F). x ⊗ x is symmetric, so
 * only its pairs a ≤ b are kept: 1 + F + F(F+1)/2 features (153 for F = 16
 * instead of 273, and as many fewer multiply-adds per state update). The
 * dropped pair b < a is folded into a < b by weighting that product by
 * sqrt(2) in both phi(q) and phi(k): off the diagonal x_a x_b / sqrt(F), on it
 * x_a² / sqrt(2F). One map then serves queries and keys, and the dot product
 * is unchanged.
 *
 * Forward, per (document, head), S ∈ R^{D×Dv} and z ∈ R^D from 0:
 *     S_i = S_{i−1} + phi(k_i) v_iᵀ,   z_i = z_{i−1} + phi(k_i)
 *     a_i = S_iᵀ phi(q_i),   b_i = phi(q_i)·z_i + eps,   y_i = a_i / b_i
 *
 * Backward. With g_i = phi(q_i), f_j = phi(k_j), ∂L/∂a_i = dy_i / b_i and
 * ∂L/∂b_i = β_i = −dy_i·y_i / b_i = −(g_i·u_i) / b_i², u_i = S_i dy_i:
 *     ∂L/∂g_i = u_i / b_i + β_i z_i
 * and, with the sums of what the later tokens ask of S and z,
 *     G_j = Σ_{i≥j} g_i dy_iᵀ / b_i,   h_j = Σ_{i≥j} β_i g_i,
 *     dv_j = G_jᵀ f_j,   ∂L/∂f_j = G_j v_j + h_j
 * dq and dk then follow through phi's Jacobian. A first pass runs forwards
 * (S_i and z_i as in the forward) for dq and keeps b_i and β_i; a second runs
 * backwards for G_j, h_j, dk and dv. Time O(n·H·D·Dv) (five D×Dv products
 * per token to the forward's two); memory per worker O(D·Dv + the longest
 * document).
 *
 * A (document, head) pair is one task writing only its own outputs, so the
 * results do not depend on the number of threads. */
#include <math.h>
#include <string.h>

#include "based.h"
#include "../common/recurrence_tasks.h"

/* D: the packed features of one vector */
size_t based_taylor_feature_count(int F) { return 1 + (size_t)F + (size_t)F * (F + 1) / 2; }

int based_taylor_max_workers(void) { return recurrence_max_workers(); }

/* S, z and the features of a key and a query */
size_t based_taylor_forward_work_floats(int F, int Dv)
{
    return based_taylor_feature_count(F) * ((size_t)Dv + 3);
}

/* the forward's, a gradient of features, then b_i and β_i per token */
size_t based_taylor_backward_work_floats(int F, int Dv, int max_len)
{
    return based_taylor_feature_count(F) * ((size_t)Dv + 4) + 2 * (size_t)max_len;
}

/* where token t's head h reads q and k, and v (and y) */
static size_t qk_at(const based_dims *d, int t, int h) { return ((size_t)t * d->H + h) * d->F; }
static size_t v_at(const based_dims *d, int t, int h) { return ((size_t)t * d->H + h) * d->Dv; }

/* the weights of phi: the linear part, the squares, the products of pairs */
taylor_weights based_taylor_weights(int F)
{
    taylor_weights w = {(float)pow(F, -0.25), (float)(1 / sqrt(2.0 * F)), (float)(1 / sqrt(F))};
    return w;
}

/* phi(x), packed: 1, then x, then the pairs a ≤ b row by row */
static void features(float *phi, const float *x, int F)
{
    taylor_weights w = based_taylor_weights(F);
    float *pair = phi + 1 + F;
    phi[0] = 1.0f;
    for (int a = 0; a < F; a++) {
        phi[1 + a] = w.lin * x[a];
        *pair++ = w.diag * x[a] * x[a];
        for (int b = a + 1; b < F; b++)
            *pair++ = w.off * x[a] * x[b];
    }
}

/* dx = (∂phi/∂x)ᵀ dphi, in the order features() packs the pairs */
static void features_backward(float *dx, const float *dphi, const float *x, int F)
{
    taylor_weights w = based_taylor_weights(F);
    const float *pair = dphi + 1 + F;
    for (int a = 0; a < F; a++)
        dx[a] = w.lin * dphi[1 + a];
    for (int a = 0; a < F; a++) {
        dx[a] += 2.0f * w.diag * x[a] * *pair++;
        for (int b = a + 1; b < F; b++) {
            float p = w.off * *pair++;
            dx[a] += p * x[b];
            dx[b] += p * x[a];
        }
    }
}

static float dot(const float *a, const float *b, size_t n)
{
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++)
        acc += a[i] * b[i];
    return acc;
}

/* S += (scale · x) vᵀ, S being D×Dv */
static void add_outer(float *S, const float *x, const float *v, float scale, size_t D, int Dv)
{
    for (size_t r = 0; r < D; r++) {
        float xr = scale * x[r];
        float *row = S + r * Dv;
        for (int c = 0; c < Dv; c++)
            row[c] += xr * v[c];
    }
}

/* out = Sᵀ x (Dv values) */
static void transposed_times(float *out, const float *S, const float *x, size_t D, int Dv)
{
    memset(out, 0, (size_t)Dv * sizeof *out);
    for (size_t r = 0; r < D; r++)
        for (int c = 0; c < Dv; c++)
            out[c] += x[r] * S[r * Dv + c];
}

/* out = S v (D values) */
static void times(float *out, const float *S, const float *v, size_t D, int Dv)
{
    for (size_t r = 0; r < D; r++)
        out[r] = dot(S + r * Dv, v, Dv);
}

/* the running sums: S += f vᵀ, z += f, with f = phi(k) */
static void add_key(float *S, float *z, float *f, const float *k, const float *v, int F, int Dv)
{
    size_t D = based_taylor_feature_count(F);
    features(f, k, F);
    add_outer(S, f, v, 1.0f, D, Dv);
    for (size_t r = 0; r < D; r++)
        z[r] += f[r];
}

/* ---- forward ---- */

/* token t's head h: the key into S and z, then y read out (f, g: scratch) */
static void forward_token(float *y, float *S, float *z, float *f, float *g, const float *q,
                          const float *k, const float *v, const based_dims *d, int t, int h)
{
    size_t D = based_taylor_feature_count(d->F), qo = qk_at(d, t, h), vo = v_at(d, t, h);
    add_key(S, z, f, k + qo, v + vo, d->F, d->Dv);
    features(g, q + qo, d->F);
    float b = dot(g, z, D) + BASED_TAYLOR_EPS;
    transposed_times(y + vo, S, g, D, d->Dv);
    for (int c = 0; c < d->Dv; c++)
        y[vo + c] /= b;
}

static void forward_task(float *y, const float *q, const float *k, const float *v,
                         const based_dims *d, recurrence_task tk, float *work)
{
    size_t D = based_taylor_feature_count(d->F);
    float *S = work, *z = S + D * d->Dv, *f = z + D, *g = f + D;
    memset(S, 0, D * ((size_t)d->Dv + 1) * sizeof *S); /* S and z */
    for (int t = tk.t_begin; t < tk.t_end; t++)
        forward_token(y, S, z, f, g, q, k, v, d, t, tk.h);
}

/* the tensors of a call, for the per-task functions */
typedef struct taylor_io {
    float *y, *dq, *dk, *dv;
    const float *dy, *q, *k, *v;
    const based_dims *d;
} taylor_io;

static void forward_one(void *ctx, recurrence_task tk, float *work)
{
    const taylor_io *io = ctx;
    forward_task(io->y, io->q, io->k, io->v, io->d, tk, work);
}

void based_taylor_forward_cpu(float *y, const float *q, const float *k, const float *v,
                              const based_dims *d, float *work, int n_work)
{
    taylor_io io = {.y = y, .q = q, .k = k, .v = v, .d = d};
    recurrence_run(d->cu_seqlens, d->n_seqs, d->H, (double)based_taylor_feature_count(d->F) * d->Dv, n_work, work,
                   based_taylor_forward_work_floats(d->F, d->Dv), forward_one, &io);
}

/* ---- generation ---- */

size_t based_taylor_state_floats(int F, int Dv)
{
    return based_taylor_feature_count(F) * ((size_t)Dv + 1);
}

void based_taylor_step_cpu(float *y, float *states, const float *q, const float *k,
                           const float *v, const based_dims *d, int n_seqs)
{
    size_t D = based_taylor_feature_count(d->F);
    float f[D], g[D]; /* 153 features each at feature_dim 16 */
    for (int b = 0; b < n_seqs; b++)
        for (int h = 0; h < d->H; h++) {
            float *S = states + ((size_t)b * d->H + h) * based_taylor_state_floats(d->F, d->Dv);
            forward_token(y, S, S + D * d->Dv, f, g, q, k, v, d, b, h);
        }
}

/* ---- backward ---- */

/* the task's buffers in its worker's `work` */
typedef struct backward_work {
    float *S, *z;        /* S and z, then G and h */
    float *f, *g, *dphi; /* phi(k), phi(q), a gradient of features */
    float *b, *beta;     /* per token of the document */
} backward_work;

static backward_work backward_work_of(float *work, const based_dims *d, int len)
{
    size_t D = based_taylor_feature_count(d->F);
    backward_work w;
    w.S = work, w.z = w.S + D * d->Dv;
    w.f = w.z + D, w.g = w.f + D, w.dphi = w.g + D;
    w.b = w.dphi + D, w.beta = w.b + len;
    return w;
}

/* forwards through the document: dq, and b_i and β_i for the second pass */
static void query_pass(const taylor_io *io, const based_dims *d, recurrence_task tk,
                       backward_work w)
{
    int F = d->F, Dv = d->Dv;
    size_t D = based_taylor_feature_count(F);
    memset(w.S, 0, D * ((size_t)Dv + 1) * sizeof *w.S); /* S and z */
    for (int t = tk.t_begin; t < tk.t_end; t++) {
        size_t qo = qk_at(d, t, tk.h), vo = v_at(d, t, tk.h);
        add_key(w.S, w.z, w.f, io->k + qo, io->v + vo, F, Dv);
        features(w.g, io->q + qo, F);
        float b = dot(w.g, w.z, D) + BASED_TAYLOR_EPS;
        times(w.dphi, w.S, io->dy + vo, D, Dv); /* u = S dy */
        float beta = -dot(w.g, w.dphi, D) / (b * b);
        for (size_t r = 0; r < D; r++)
            w.dphi[r] = w.dphi[r] / b + beta * w.z[r];
        features_backward(io->dq + qo, w.dphi, io->q + qo, F);
        w.b[t - tk.t_begin] = b, w.beta[t - tk.t_begin] = beta;
    }
}

/* backwards through the document: G and h, then dv and dk */
static void key_pass(const taylor_io *io, const based_dims *d, recurrence_task tk,
                     backward_work w)
{
    int F = d->F, Dv = d->Dv;
    size_t D = based_taylor_feature_count(F);
    float *G = w.S, *h = w.z;
    memset(G, 0, D * ((size_t)Dv + 1) * sizeof *G); /* G and h */
    for (int t = tk.t_end - 1; t >= tk.t_begin; t--) {
        size_t qo = qk_at(d, t, tk.h), vo = v_at(d, t, tk.h);
        float beta = w.beta[t - tk.t_begin];
        features(w.g, io->q + qo, F);
        add_outer(G, w.g, io->dy + vo, 1.0f / w.b[t - tk.t_begin], D, Dv);
        for (size_t r = 0; r < D; r++)
            h[r] += beta * w.g[r];
        features(w.f, io->k + qo, F);
        transposed_times(io->dv + vo, G, w.f, D, Dv);
        times(w.dphi, G, io->v + vo, D, Dv);
        for (size_t r = 0; r < D; r++)
            w.dphi[r] += h[r];
        features_backward(io->dk + qo, w.dphi, io->k + qo, F);
    }
}

/* what the kernel lays out each worker's `work` by: a caller's max_len may
 * be larger, and then `work` is larger than used */
static int longest_document(const based_dims *d)
{
    int longest = 0;
    for (int s = 0; s < d->n_seqs; s++)
        if (d->cu_seqlens[s + 1] - d->cu_seqlens[s] > longest)
            longest = d->cu_seqlens[s + 1] - d->cu_seqlens[s];
    return longest;
}

static void backward_one(void *ctx, recurrence_task tk, float *work)
{
    const taylor_io *io = ctx;
    backward_work w = backward_work_of(work, io->d, tk.t_end - tk.t_begin);
    query_pass(io, io->d, tk, w);
    key_pass(io, io->d, tk, w);
}

void based_taylor_backward_cpu(float *dq, float *dk, float *dv, const float *dy, const float *q,
                               const float *k, const float *v, const based_dims *d, float *work,
                               int n_work)
{
    taylor_io io = {.dq = dq, .dk = dk, .dv = dv, .dy = dy, .q = q, .k = k, .v = v, .d = d};
    recurrence_run(d->cu_seqlens, d->n_seqs, d->H, (double)based_taylor_feature_count(d->F) * d->Dv, n_work, work,
                   based_taylor_backward_work_floats(d->F, d->Dv, longest_document(d)), backward_one,
                   &io);
}
