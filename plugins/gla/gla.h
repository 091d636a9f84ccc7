/* The GLA plugin's own CPU kernels: the math that is particular to Gated
 * Linear Attention and so is not in the shared op table.
 *
 * Layouts: a token's heads are contiguous, so q, k, gk are [n, H, dk] and v, o
 * are [n, H, dv] (row t holds H·dk resp. H·dv values, head h at offset h·dk).
 * q, k, v and the output gate g may be column blocks of one wider matrix (a
 * joined projection's output, [n, q | k | v | g]): their rows, and those of
 * their gradients, are then a stride apart, given in elements
 * (gla_recurrence_dims.stride, the step's and the gate norm's arguments);
 * gk, o and their gradients are always packed.
 * Forward kernels overwrite their outputs. Backward kernels OVERWRITE the
 * gradients of activations (the caller need not clear them) and ADD into those
 * of parameters (the gate norm's dw, fp32); each function says which. A NULL
 * gradient is skipped where noted. */
#ifndef FLAME_GLA_H
#define FLAME_GLA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* the CUDA kernels (C++) call the sizing functions */
#endif

/* ---- gla_recurrence_cpu.c: the gated linear recurrence ----
 *
 * Per head and per sequence, with the state S ∈ R^{dk×dv} starting at 0:
 *     S_t = diag(exp(gk_t)) · S_{t−1} + k_tᵀ v_t
 *     o_t = (scale · q_t) · S_t
 * The forward keeps the state at the start of every chunk of GLA_CHUNK steps
 * but the first of each sequence (that one is 0) in `checkpoints`; the
 * backward recomputes the states inside one chunk from there. */
#define GLA_CHUNK 64

typedef struct gla_recurrence_dims {
    const int32_t *cu_seqlens; /* [n_seqs+1] host offsets: 0 = cu[0] < ... < cu[n_seqs] = n */
    int n_seqs;
    int H, dk, dv;
    float scale; /* fla: dk^-1/2 */
    /* the same offsets in the backend's memory, for kernels that cannot read
     * the host's (the CUDA ones); the CPU kernels ignore it */
    const int32_t *cu_seqlens_backend;
    /* the backward writes dq in fp32 (a float array) rather than in the
     * activations' type: GSA's softmax backward subtracts nearly equal values
     * of it (on the CPU, whose activations are fp32, nothing changes) */
    int dq_fp32;
    /* elements from one token's row of q, k and v (and of dq, dk, dv) to the
     * next token's; 0: packed, H·dk for q and k, H·dv for v */
    int stride;
    /* the backward first makes `checkpoints` again itself, as the forward with
     * o NULL does: for callers that keep no layer's checkpoints */
    int remake_checkpoints;
    /* where a backend whose forward makes intra-chunk scores (the GPU's
     * chunked form) keeps them for the backward of the same call's inputs,
     * recurrence_scores_floats of them (gla_kernels.h), so that the backward
     * need not make them again; NULL: made in `work` each time. The CPU makes
     * none and ignores it. */
    void *scores;
    /* where a backend that walks a table of the batch's chunks (the GPU's)
     * keeps it for every call on the same batch,
     * recurrence_chunk_table_floats of them (gla_kernels.h), and whether an
     * earlier call on this batch made it there already; NULL: each call makes
     * its own in `work`. The CPU ignores both. */
    void *chunk_table;
    int chunk_table_made;
} gla_recurrence_dims;

static inline size_t gla_qk_stride(const gla_recurrence_dims *d)
{
    return d->stride ? (size_t)d->stride : (size_t)d->H * d->dk;
}
static inline size_t gla_v_stride(const gla_recurrence_dims *d)
{
    return d->stride ? (size_t)d->stride : (size_t)d->H * d->dv;
}

/* values of `checkpoints` for any split of n tokens into sequences (the GPU
 * keeps them in bf16, the activations' type, in the same layout) */
size_t gla_recurrence_checkpoint_values(int n, int H, int dk, int dv);
/* the workers the kernels may run in parallel, and the floats each needs in `work` */
int gla_recurrence_max_workers(void);
size_t gla_recurrence_work_floats(int dk, int dv);

/* work: n_work · gla_recurrence_work_floats() floats; at most n_work threads run.
 * With o NULL only the checkpoints are written (q is not read): a way to have
 * them again rather than keep every layer's (the backward's own with
 * gla_recurrence_dims.remake_checkpoints). */
void gla_recurrence_forward_cpu(float *o, float *checkpoints, const float *q,
                                const float *k, const float *v, const float *gk,
                                const gla_recurrence_dims *d, float *work, int n_work);
/* One position of B sequences for generation: per sequence and head, the
 * state S (fp32, states[B, H, dk, dv], carried from the previous position)
 * takes one step, S = diag(exp(gk)) S + kᵀv, and o = (scale·q) S. q, k, gk
 * are [B, H·dk], v and o [B, H·dv]; q's, k's and v's rows `stride` apart
 * (0: packed, as gla_recurrence_dims.stride). */
void gla_recurrence_step_cpu(float *o, float *states, const float *q, const float *k,
                             const float *v, const float *gk, int B, int H, int dk, int dv,
                             float scale, int stride);

/* dq, dk, dv, dgk = ∂L/∂· given dout = ∂L/∂o (written; all four are required).
 * checkpoints: the forward's, or with d->remake_checkpoints written here first. */
void gla_recurrence_backward_cpu(float *dq, float *dk, float *dv, float *dgk,
                                 const float *dout, const float *q, const float *k,
                                 const float *v, const float *gk, float *checkpoints,
                                 const gla_recurrence_dims *d, float *work, int n_work);

/* ---- gla_gate_norm_cpu.c: fla's FusedRMSNormGated with swish ----
 * Over rows of C values (one head of one token, C = dv, rows = n·H):
 *     y = o · rstd · w · swish(g),  rstd = 1/sqrt(mean(o²) + eps),  swish(g) = g·σ(g)
 * rstd[rows] is saved for the backward. The gate's rows (and dg's) are where
 * gate_row says: g's tokens g_stride apart (0: packed, heads·C), y, o and
 * their gradients packed. */
typedef struct gla_gate_rows {
    int heads;       /* rows of one token */
    size_t g_stride; /* elements from one token's heads of g to the next's; 0: heads·C */
} gla_gate_rows;

/* where row `row` of g starts (the CPU's and the GPU's code alike) */
#ifdef __CUDACC__
__host__ __device__
#endif
static inline size_t gla_gate_row(const gla_gate_rows *r, int row, int C)
{
    size_t token = (size_t)(row / r->heads), head = (size_t)(row % r->heads);
    return token * (r->g_stride ? r->g_stride : (size_t)r->heads * C) + head * (size_t)C;
}

void gla_gate_norm_forward_cpu(float *y, float *rstd, const float *o, const float *g,
                               const gla_gate_rows *gr, const float *w, int rows, int C, float eps);
/* Given dy: do = ∂L/∂o and dg = ∂L/∂g are WRITTEN (overwritten), dw += ∂L/∂w
 * is ADDED into (fp32, summed over the rows); each may be NULL (not needed). */
void gla_gate_norm_backward_cpu(float *d_o, float *dg, float *dw, const float *dy,
                                const float *o, const float *g, const gla_gate_rows *gr,
                                const float *w, const float *rstd, int rows, int C);

/* ---- gla_gates_cpu.c: the forget-gate logits ----
 *     gk = logsigmoid(x) / normalizer     (out may alias x)
 * The backward needs only the output: σ(−x) = −expm1(normalizer · gk). */
void gla_gates_forward_cpu(float *gk, const float *x, size_t n, float normalizer);
/* dx = dgk · σ(−x) / normalizer, WRITTEN (overwritten) */
void gla_gates_backward_cpu(float *dx, const float *dgk, const float *gk, size_t n,
                            float normalizer);

#ifdef __cplusplus
}
#endif
#endif
