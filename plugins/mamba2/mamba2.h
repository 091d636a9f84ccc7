/* The Mamba2 plugin's own CPU kernels: the SSD scan (the selective state space
 * recurrence of Mamba2), the gated RMSNorm of its output and the Δ it runs on.
 *
 * Layouts: a token's heads are contiguous, so x and y are [n, H, P] (head h of
 * token t at (t·H + h)·P), delta is [n, H], B and C are [n, G, N]; A_log and D
 * are [H] fp32 parameters. Head h reads group h / (H/G) of B and C (the heads
 * of a group are adjacent, as in fla's decode path and mamba_ssm's kernels).
 * Forward kernels overwrite their outputs. Backward kernels OVERWRITE the
 * gradients of activations (the caller need not clear them) and ADD into those
 * of parameters (fp32); each function says which. */
#ifndef FLAME_MAMBA2_H
#define FLAME_MAMBA2_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ssd_scan_cpu.c: the scan, step by step ----
 *
 * Per head h and per sequence, with the state S ∈ R^{P×N} starting at 0:
 *     A_h = −exp(A_log_h),   a_t = exp(Δ_t A_h)
 *     S_t = a_t S_{t−1} + Δ_t x_t B_tᵀ
 *     y_t = S_t C_t + D_h x_t
 * The forward keeps the state at the start of every chunk of MAMBA2_CHUNK steps
 * but each sequence's first (that one is 0) in `checkpoints`; the backward
 * recomputes the states inside one chunk from there. */
#define MAMBA2_CHUNK 64

typedef struct mamba2_ssd_dims {
    const int32_t *cu_seqlens; /* [n_seqs+1] host offsets: 0 = cu[0] < ... < cu[n_seqs] = n */
    int n_seqs;
    int H, P, N, G; /* heads, head dim, state size, groups of B and C (G divides H) */
    /* the same offsets in the backend's memory (CUDA); the CPU kernels ignore it */
    const int32_t *cu_seqlens_backend;
} mamba2_ssd_dims;

/* One position of n_seqs sequences for generation: per sequence b (token row
 * b of x, delta, B, C, y) and head, the state (fp32, states[n_seqs, H, P, N],
 * carried from the previous position) takes one step and y is read out, as
 * mamba2_ssd_forward_cpu does at that position. */
void mamba2_ssd_step_cpu(float *y, float *states, const float *x, const float *delta,
                         const float *A_log, const float *B, const float *C, const float *D,
                         const mamba2_ssd_dims *d, int n_seqs);

/* floats of `checkpoints` for any split of n tokens into sequences */
size_t mamba2_ssd_checkpoint_floats(int n, int H, int P, int N);
/* the workers the kernels may run in parallel, and the floats each needs in `work` */
int mamba2_ssd_max_workers(void);
size_t mamba2_ssd_work_floats(int P, int N);
/* floats of the backward's `scratch` for n tokens: each head's share of dB and
 * dC and of dA, summed afterwards in a fixed order */
size_t mamba2_ssd_scratch_floats(int n, int H, int N);

/* y and the checkpoints; work: n_work · mamba2_ssd_work_floats() floats; at
 * most n_work threads run. */
void mamba2_ssd_forward_cpu(float *y, float *checkpoints, const float *x, const float *delta,
                            const float *A_log, const float *B, const float *C, const float *D,
                            const mamba2_ssd_dims *d, float *work, int n_work);

typedef struct mamba2_ssd_grads {
    float *dx, *ddelta, *dB, *dC; /* WRITTEN */
    float *dA_log, *dD;           /* ADDED (fp32, [H]) */
} mamba2_ssd_grads;

/* all six gradients given dy = ∂L/∂y (all required); scratch:
 * mamba2_ssd_scratch_floats() floats */
void mamba2_ssd_backward_cpu(const mamba2_ssd_grads *g, const float *dy, const float *x,
                             const float *delta, const float *A_log, const float *B,
                             const float *C, const float *D, const float *checkpoints,
                             const mamba2_ssd_dims *d, float *work, int n_work, float *scratch);

/* ---- ssd_chunked_cpu.c: the same forward in the SSD's chunked form ----
 * What the CUDA kernel computes: within a chunk of `chunk` steps a masked
 * attention-like product with decays exp(cs_i − cs_j), cs the running sum of
 * Δ·A (never a positive exponent), and the states passed from chunk to chunk.
 * y equals mamba2_ssd_forward_cpu's up to rounding. work: n_work ·
 * mamba2_ssd_chunked_work_floats() floats. */
size_t mamba2_ssd_chunked_work_floats(int P, int N, int chunk);
void mamba2_ssd_chunked_forward_cpu(float *y, const float *x, const float *delta,
                                    const float *A_log, const float *B, const float *C,
                                    const float *D, const mamba2_ssd_dims *d, int chunk,
                                    float *work, int n_work);

/* ---- gated_norm_cpu.c: fla's RMSNormGated, norm_before_gate = False ----
 * Over rows of C values (a token's whole inner width H·P), in groups of
 * group_size (fla: H·P / n_groups):
 *     g = y ⊙ silu(z),  out = g · rstd · w,  rstd = 1/sqrt(mean over the group(g²) + eps)
 * rstd[rows · C/group_size] is saved for the backward. */
void mamba2_gated_norm_forward_cpu(float *out, float *rstd, const float *y, const float *z,
                                   const float *w, int rows, int C, int group_size, float eps);
/* given dout: dy, dz WRITTEN; dw += ∂L/∂w ADDED (fp32, summed over the rows) */
void mamba2_gated_norm_backward_cpu(float *dy, float *dz, float *dw, const float *dout,
                                    const float *y, const float *z, const float *w,
                                    const float *rstd, int rows, int C, int group_size);

/* ---- delta_cpu.c: Δ from the projection ----
 * Over [n, H]: delta = clamp(softplus(dt + dt_bias_h), lo, hi) (fla's dt_limit,
 * default (0, inf)); softplus as torch's (x above 20 passes through). */
void mamba2_delta_forward_cpu(float *delta, const float *dt, const float *dt_bias, int n, int H,
                              float lo, float hi);
/* ddt WRITTEN (0 where clamped); ddt_bias += ∂L/∂dt_bias ADDED (fp32) */
void mamba2_delta_backward_cpu(float *ddt, float *ddt_bias, const float *ddelta, const float *dt,
                               const float *dt_bias, int n, int H, float lo, float hi);

/* ---- columns_cpu.c: column blocks of an array as arrays of their own ----
 * whole is [n, Σ widths]; part i is [n, widths[i]], whole's columns after
 * those of the parts before it (at most MAMBA2_MAX_PARTS parts). */
#define MAMBA2_MAX_PARTS 4
void mamba2_split_columns_cpu(float *const *parts, const int *widths, int n_parts,
                              const float *whole, int n);
void mamba2_join_columns_cpu(float *whole, const float *const *parts, const int *widths,
                             int n_parts, int n);

#ifdef __cplusplus
}
#endif
#endif
