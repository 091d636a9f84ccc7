/* The Based plugin's own CPU kernels: the linear attention of Based
 * (HazyResearch/based) whose feature map is the 2nd-order Taylor expansion of
 * exp.
 *
 * Per head and per document, with s_ij = q_i · k_j / sqrt(F):
 *     K_ij = 1 + s_ij + s_ij² / 2                    (= ((1 + s)² + 1)/2 > 0)
 *     y_i  = Σ_{j≤i} K_ij v_j / (Σ_{j≤i} K_ij + eps),  eps = BASED_TAYLOR_EPS
 * the sums never reaching back past the document's first token.
 *
 * Layouts (fp32): a token's heads are contiguous, so q and k are [n, H, F]
 * (head h of token t at (t·H + h)·F) and v and y are [n, H, Dv]. Forward
 * kernels overwrite their outputs; backward kernels OVERWRITE the gradients
 * (the caller need not clear them). */
#ifndef FLAME_BASED_H
#define FLAME_BASED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BASED_TAYLOR_EPS 1e-12f

typedef struct based_dims {
    const int32_t *cu_seqlens; /* [n_seqs+1] host offsets: 0 = cu[0] < ... < cu[n_seqs] = n */
    int n_seqs;
    int H, F, Dv; /* heads, feature dim of q and k, head dim of v */
    /* the same offsets in the backend's memory (CUDA); the CPU kernels ignore it */
    const int32_t *cu_seqlens_backend;
} based_dims;

/* ---- taylor_attention_cpu.c: the recurrent (linear) form ----
 * Each (document, head) carries S = Σ_j phi(k_j) v_jᵀ and z = Σ_j phi(k_j),
 * with phi(q)·phi(k) = K, and y_i = phi(q_i)ᵀS / (phi(q_i)·z + eps): time
 * linear in n. */

/* phi's packed features of one vector, 1 + F + F(F+1)/2, and its weights:
 * the linear part F^(−1/4), the squares 1/sqrt(2F), the pairs a < b 1/sqrt(F)
 * (one map for the CPU kernel and the CUDA one) */
size_t based_taylor_feature_count(int F);
typedef struct taylor_weights {
    float lin, diag, off;
} taylor_weights;
taylor_weights based_taylor_weights(int F);

/* the workers the kernels may run in parallel, and the floats each needs in
 * `work`; max_len bounds the longest document (n will do) */
int based_taylor_max_workers(void);
size_t based_taylor_forward_work_floats(int F, int Dv);
size_t based_taylor_backward_work_floats(int F, int Dv, int max_len);

/* y; work: n_work · based_taylor_forward_work_floats() floats; at most n_work
 * threads run */
void based_taylor_forward_cpu(float *y, const float *q, const float *k, const float *v,
                              const based_dims *d, float *work, int n_work);

/* One position of n_seqs sequences for generation: per sequence b (row b of
 * q, k, v, y) and head, the running sums (fp32, states[n_seqs, H] of S
 * [D, Dv] then z [D], D = based_taylor_feature_count(F), carried from the
 * previous position) take the new key and y is read out, as
 * based_taylor_forward_cpu does at that position. */
size_t based_taylor_state_floats(int F, int Dv);
void based_taylor_step_cpu(float *y, float *states, const float *q, const float *k,
                           const float *v, const based_dims *d, int n_seqs);

/* dq, dk, dv WRITTEN given dy = ∂L/∂y; work: n_work ·
 * based_taylor_backward_work_floats() floats */
void based_taylor_backward_cpu(float *dq, float *dk, float *dv, const float *dy, const float *q,
                               const float *k, const float *v, const based_dims *d, float *work,
                               int n_work);

#ifdef __cplusplus
}
#endif
#endif
