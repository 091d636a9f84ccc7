/* The transformer's own kernels, one table per backend: the plugin picks the
 * table of the op table's backend at create and calls nothing else of its own
 * math. Every entry has the meaning, layouts and add-into-gradients rules of
 * the CPU function it is named after (transformer.h); pointers are in the
 * backend's memory, activations (void pointers) in the op table's type (fp32
 * on the CPU, bf16 on CUDA, flame/ops.h), float pointers fp32 everywhere. */
#ifndef FLAME_TRANSFORMER_KERNELS_H
#define FLAME_TRANSFORMER_KERNELS_H

#include <stddef.h>

#include "transformer.h"

typedef struct transformer_kernels {
    /* NULL when the kernels take heads of hd values, else what they take (one
     * phrase, for create's error line) */
    const char *(*unsupported_head_dim)(int hd);
    /* floats of device scratch attention_backward needs for batches of at most
     * n tokens of H query heads of hd (0: none) */
    size_t (*attention_work_floats)(int n, int H, int hd);

    /* the first rd values of each head of hd turned, a token's heads `stride`
     * values after the one before's; out may alias x. Its backward is the
     * attention's: attention_dims.rotary_rd. */
    void (*rotary_forward)(void *out, const void *x, const transformer_seqs *s, int heads, int hd,
                           int rd, float base, size_t stride);

    void (*attention_forward)(void *o, float *lse, const void *q, const void *k, const void *v,
                              const attention_dims *d);
    /* work: attention_work_floats() floats (NULL when that is 0) */
    void (*attention_backward)(void *dq, void *dk, void *dv, const void *dout, const void *o,
                               const float *lse, const void *q, const void *k, const void *v,
                               const attention_dims *d, float *work);
    /* generation (transformer.h's attention_decode_cpu: rd 0 turns nothing); NULL: this backend has none yet */
    void (*attention_decode)(void *o, void *q, void *k, const void *v, void *k_cache,
                             void *v_cache, size_t cache_stride, int B, int pos,
                             const attention_dims *d, int rd, float base);
} transformer_kernels;

extern const transformer_kernels transformer_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
extern const transformer_kernels transformer_kernels_cuda;
#endif

/* the table for an op table's backend ("cpu", "cuda"), NULL when there is none */
const transformer_kernels *transformer_kernels_for(const char *backend);

#endif
