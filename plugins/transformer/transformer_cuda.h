/* The transformer plugin's own kernels on the GPU: the same functions as the
 * CPU ones of transformer.h (same meaning, layouts, every output overwritten),
 * on device pointers, queued on the default stream after the op table's work.
 * Activations (void pointers) are bf16, the CUDA op table's type; float
 * pointers (lse, work) are fp32; the arithmetic is fp32.
 * They read the sequence offsets from s->cu_seqlens_backend (device) and their
 * count and lengths from s->cu_seqlens (host).
 * Each is checked against its CPU reference by tests/test_transformer_cuda.c. */
#ifndef FLAME_TRANSFORMER_CUDA_H
#define FLAME_TRANSFORMER_CUDA_H

#include <stddef.h>

#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* rotary_cuda.cu: rotating rd ≤ 2·ROTARY_CUDA_MAX_HALF values of each head */
#define ROTARY_CUDA_MAX_HALF 64
void rotary_forward_cuda(void *out, const void *x, const transformer_seqs *s, int heads, int hd, int rd,
                         float base, size_t stride);
void rotary_backward_cuda(void *dx, const void *dout, const transformer_seqs *s, int heads, int hd, int rd,
                          float base, size_t stride);
/* the first rd of every head of `rows` tokens all at position pos (generation), rows `stride` apart, in place */
void rotary_at_cuda(void *x, int rows, int heads, int hd, int rd, int pos, float base, size_t stride);
#ifdef __CUDACC__
/* the rotation's table of (cos θ, sin θ) for rd = 2·half, [position][half],
 * at least `positions` long, for kernels that turn values as they write
 * them; valid until a call asks for another half or base, or more positions */
const float2 *rotary_angles_cuda(int positions, int half, float base);
#endif

/* attention_decode_cuda.cu: one position of generation, hd ≤ 128 */
void attention_decode_cuda(void *o, void *q, void *k, const void *v, void *k_cache, void *v_cache,
                           size_t cache_stride, int B, int pos, const attention_dims *d, int rd, float base);

/* attention_cuda.cu: flash attention on the tensor cores, hd a multiple of 16
 * up to 128 (NULL when hd is one of those, else the phrase saying so) */
const char *attention_unsupported_head_dim_cuda(int hd);
/* the backward's scratch: D_i = do_i·o_i per row and head, and what
 * Hopper's backward keeps beside it (attention_hopper.h) */
size_t attention_work_floats_cuda(int n, int H, int hd);
void attention_forward_cuda(void *o, float *lse, const void *q, const void *k, const void *v,
                            const attention_dims *d);
void attention_backward_cuda(void *dq, void *dk, void *dv, const void *dout, const void *o,
                             const float *lse, const void *q, const void *k, const void *v,
                             const attention_dims *d, float *work);
/* On an H100/H200 (sm_90a in the build) head dims 64 and 128 take Hopper's
 * kernels (warpgroup products); for tests, 1 sends every call to the
 * portable ones instead, 0 (the default) lets Hopper's take theirs */
void attention_cuda_portable_only(int on);

#ifdef __cplusplus
}
#endif
#endif
