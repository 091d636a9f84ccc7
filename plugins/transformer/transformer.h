/* The transformer plugin's own CPU kernels: rotary position embeddings and
 * causal softmax attention, the math a Llama-style block has beyond the
 * shared op table.
 *
 * Layouts: a token's heads are contiguous, so q is [n, H, hd] and k, v are
 * [n, Hkv, hd] (GQA: query head h reads key/value head h / (H/Hkv)). q, k
 * and v may be column blocks of one wider matrix (a joined projection's
 * output, [n, q | k | v]): their rows are then a stride apart, given in
 * elements (attention_dims.stride, rotary's stride); o, lse and the
 * output's gradient are always packed.
 * Sequences are given by offsets cu_seqlens[0] = 0 < ... < cu_seqlens[n_seqs]
 * = n (host memory; the CUDA kernels read a device copy, see
 * transformer_seqs); positions restart at 0 at each sequence start and
 * attention never crosses a boundary. Forward and backward kernels alike
 * overwrite their outputs, gradients included (each element written once:
 * nothing need be zeroed first). */
#ifndef FLAME_TRANSFORMER_H
#define FLAME_TRANSFORMER_H

#include <stdint.h>

typedef struct transformer_seqs {
    const int32_t *cu_seqlens;
    int n_seqs;
    /* the same offsets in the backend's memory, for kernels that cannot read
     * the host's (the CUDA ones); the CPU kernels ignore it */
    const int32_t *cu_seqlens_backend;
} transformer_seqs;

/* the length of the longest sequence */
static inline int transformer_longest(const transformer_seqs *s)
{
    int most = 0;
    for (int i = 0; i < s->n_seqs; i++)
        if (s->cu_seqlens[i + 1] - s->cu_seqlens[i] > most)
            most = s->cu_seqlens[i + 1] - s->cu_seqlens[i];
    return most;
}

/* ---- rotary_cpu.c: fla's / Llama's rotate-half rotary embedding ----
 * Per token at position p and head, on its first rd values (rd even, ≤ hd;
 * GPT-NeoX's and flash-attn's partial rotary when rd < hd), for i < rd/2,
 * with θ_i = p · base^(−2i/rd):
 *     out[i]        = x[i] cos θ_i − x[i + rd/2] sin θ_i
 *     out[i + rd/2] = x[i + rd/2] cos θ_i + x[i] sin θ_i
 * and out = x beyond rd, over rows of `heads` heads of hd values, a token's
 * row `stride` elements after the one before (heads·hd when packed); out
 * may alias x, and has x's layout. */
void rotary_forward_cpu(float *out, const float *x, const transformer_seqs *s, int heads, int hd,
                        int rd, float base, size_t stride);
/* dx = Rᵀ · dout (the rotation's transpose); dx may alias dout */
void rotary_backward_cpu(float *dx, const float *dout, const transformer_seqs *s, int heads, int hd,
                         int rd, float base, size_t stride);

/* the first rd of every head of `rows` tokens all at position pos
 * (generation's lockstep sequences), rows `stride` apart, in place */
void rotary_at_cpu(float *x, int rows, int heads, int hd, int rd, int pos, float base, size_t stride);

/* ---- attention_cpu.c: causal softmax attention with GQA ----
 *     o_i = Σ_{j ≤ i, same sequence} softmax_j(scale · q_i·k_j) v_j
 * with a window (window > 0), only over i − window < j: a query sees itself
 * and the window − 1 keys before it (Mistral's sliding_window, fla's
 * window_size; flash-attn's window_size (w, 0) is window w + 1)
 * lse[n, H] keeps each row's log-sum-exp of the scaled scores for the backward. */
typedef struct attention_dims {
    transformer_seqs seqs;
    int H, Hkv, hd;
    float scale; /* fla: hd^-1/2 */
    int window;  /* 0: every earlier key of the sequence */
    /* elements from one token's row of q, k and v (and of dq, dk and dv) to
     * the next token's; 0: packed, H·hd for q and Hkv·hd for k and v */
    int stride;
    /* q and k as given were turned by the rotary embedding above on their
     * first rotary_rd values of each head (base rotary_base): the backward's
     * dq and dk are then taken back through the turn, the gradients of q and
     * k before it (on CUDA, Hopper's kernels turn dk, and dq at head dim
     * 128, as they store them; every other case is a rotary pass after).
     * 0: dq and dk are those of q and k as given. The forward and
     * generation ignore it. */
    int rotary_rd;
    float rotary_base;
} attention_dims;

static inline size_t attention_q_stride(const attention_dims *d)
{
    return d->stride ? (size_t)d->stride : (size_t)d->H * d->hd;
}
static inline size_t attention_kv_stride(const attention_dims *d)
{
    return d->stride ? (size_t)d->stride : (size_t)d->Hkv * d->hd;
}

void attention_forward_cpu(float *o, float *lse, const float *q, const float *k, const float *v,
                           const attention_dims *d);
/* dq, dk, dv = ∂L/∂· given dout = ∂L/∂o and the forward's o and lse (dq, dk
 * of q, k before the rotary turn where d->rotary_rd) */
void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *o,
                            const float *lse, const float *q, const float *k, const float *v,
                            const attention_dims *d);

/* ---- attention_decode_cpu.c: one position of generation ----
 * B sequences at position pos: q [B, H, hd], k and v [B, Hkv, hd] of the new
 * token, rows as attention_dims.stride says (the first rd of each head of q
 * and k rotated here, in place; rd 0: none, GPT's learned positions); the key
 * and value caches hold the packed [B, Hkv, hd] block of position p at
 * k_cache + p·cache_stride (v_cache alike);
 * this position's block is written, then
 *     o_b = Σ_{p ≤ pos, pos − window < p} softmax_p(scale · q_b·k_p) v_p
 * per query head, as attention_forward_cpu gives for the last token. */
void attention_decode_cpu(float *o, float *q, float *k, const float *v, float *k_cache,
                          float *v_cache, size_t cache_stride, int B, int pos, const attention_dims *d,
                          int rd, float base);

#endif
