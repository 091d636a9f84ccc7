/* The GSA plugin's own CPU kernels: the math of Gated Slot Attention that is
 * neither in the shared op table nor in GLA's recurrence (which GSA's second
 * pass is, gla.h).
 *
 * Layouts as in gla.h: a token's heads are contiguous, so q and k are [n,H,dk],
 * the slot tensors (f, s, the first pass's output and its softmax) [n,H,M] and
 * v, o [n,H,dv]. Forward kernels overwrite their outputs. Backward kernels
 * OVERWRITE the gradients of activations and ADD into those of parameters (the
 * output norm's dw, fp32); each function says which, and what may alias. */
#ifndef FLAME_GSA_H
#define FLAME_GSA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- gsa_slots_cpu.c: the first pass, a recurrence gated on the slot side ----
 *
 * Per head and per sequence, with the state P ∈ R^{M×dk} (slot-major: row m is
 * slot m's memory of the keys) starting at 0 and a_t = exp(f_t):
 *     P_t  = diag(a_t) · P_{t−1} + s_tᵀ k_t
 *     ok_t = scale · P_t q_tᵀ                   (ok_t ∈ R^M, one logit a slot)
 * P_t is GLA's state for keys s, values k and gates f (gla.h), so its
 * checkpoints — the state at the start of every chunk of GLA_CHUNK steps but
 * each sequence's first — have GLA's layout and sizes with (dk, dv) = (M, dk);
 * only the readout differs (along the value side). */
typedef struct gsa_slot_dims {
    const int32_t *cu_seqlens; /* [n_seqs+1] host offsets: 0 = cu[0] < ... < cu[n_seqs] = n */
    int n_seqs;
    int H, dk, M;
    float scale; /* fla's GatedSlotAttention: 1 */
    const int32_t *cu_seqlens_backend; /* the same offsets in the backend's memory (CUDA) */
} gsa_slot_dims;

/* values of `checkpoints` (bf16 on the GPU), and floats per worker of `work`,
 * for batches of at most n tokens */
size_t gsa_slot_checkpoint_values(int n, int H, int dk, int M);
size_t gsa_slot_work_floats(int dk, int M);

/* work: n_work · gsa_slot_work_floats() floats; at most n_work threads run.
 * With ok NULL only the checkpoints are written (q is not read). */
void gsa_slot_recurrence_forward_cpu(float *ok, float *checkpoints, const float *q, const float *k,
                                     const float *s, const float *f, const gsa_slot_dims *d,
                                     float *work, int n_work);
/* One position of n_seqs sequences for generation: per sequence b (row b of
 * q, k, s, f, ok) and head, the slot state (fp32, states[n_seqs, H, M, dk],
 * carried from the previous position) takes one step and ok is read out, as
 * gsa_slot_recurrence_forward_cpu does at that position. */
void gsa_slot_step_cpu(float *ok, float *states, const float *q, const float *k, const float *s,
                       const float *f, const gsa_slot_dims *d, int n_seqs);

/* dq, dk, ds, df = ∂L/∂· given dok = ∂L/∂ok (all four WRITTEN and required) */
void gsa_slot_recurrence_backward_cpu(float *dq, float *dk, float *ds, float *df, const float *dok,
                                      const float *q, const float *k, const float *s,
                                      const float *f, const float *checkpoints,
                                      const gsa_slot_dims *d, float *work, int n_work);

/* ---- gsa_pointwise_cpu.c: the feature map and the slot gates ---- */

/* y = swish(x) = x·σ(x); y may alias x */
void gsa_swish_forward_cpu(float *y, const float *x, size_t n);
/* dx = dy · swish'(x), WRITTEN; dx may alias dy */
void gsa_swish_backward_cpu(float *dx, const float *dy, const float *x, size_t n);

/* f = logsigmoid(x) / normalizer and s = 1 − exp(f); f may alias x */
void gsa_slot_gates_forward_cpu(float *f, float *s, const float *x, size_t n, float normalizer);
/* f and s each feed both passes. Given their four gradients (f as the first
 * pass's gate, f as the second's, s as the first's values, s as the second's
 * keys): dx = (df_slots + df_values − exp(f)·(ds_slots + ds_values)) · σ(−x) / normalizer,
 * WRITTEN, σ(−x) = −expm1(normalizer·f) from the output alone. dx may alias
 * any one of the four. */
void gsa_slot_gates_backward_cpu(float *dx, const float *df_slots, const float *df_values,
                                 const float *ds_slots, const float *ds_values, const float *f,
                                 size_t n, float normalizer);

/* ---- gsa_softmax_cpu.c: the softmax over the slots, rows of M values ----
 * In fp32 with the row's maximum subtracted (the first pass's logits are
 * large); p and dp stay fp32 on every backend (gsa_kernels.h says why). */
void gsa_softmax_forward_cpu(float *p, const float *x, int rows, int M);
/* dx = p ⊙ (dp − Σ p·dp), WRITTEN; dx may alias dp */
void gsa_softmax_backward_cpu(float *dx, const float *dp, const float *p, int rows, int M);

/* ---- gsa_output_norm_cpu.c: fla's RMSNorm of swish(o) before o_proj ----
 * Over rows of C values (a token's whole value width, every head together):
 *     y = swish(o) · rstd · w,  rstd = 1/sqrt(mean(swish(o)²) + eps)
 * w NULL: no weight (fla's elementwise_affine = false). rstd[rows] is saved. */
void gsa_output_norm_forward_cpu(float *y, float *rstd, const float *o, const float *w, int rows,
                                 int C, float eps);
/* d_o = ∂L/∂o WRITTEN; dw += ∂L/∂w ADDED (fp32), skipped when w or dw is NULL */
void gsa_output_norm_backward_cpu(float *d_o, float *dw, const float *dy, const float *o,
                                  const float *w, const float *rstd, int rows, int C);

#ifdef __cplusplus
}
#endif
#endif
