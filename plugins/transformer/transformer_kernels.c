/* The per-backend tables of the transformer's kernels (transformer_kernels.h). */
#include <string.h>

#include "transformer_kernels.h"
#ifdef FLAME_HAVE_CUDA
#include "transformer_cuda.h"
#endif

/* The CPU's activations are fp32: the table's activation pointers are the
 * float arrays of the reference functions. */

static const char *cpu_unsupported_head_dim(int hd)
{
    (void)hd;
    return NULL;
}

static size_t cpu_attention_work_floats(int n, int H, int hd)
{
    (void)n, (void)H, (void)hd;
    return 0;
}

static void rotary_forward_cpu_act(void *out, const void *x, const transformer_seqs *s, int heads,
                                   int hd, int rd, float base, size_t stride)
{
    rotary_forward_cpu(out, x, s, heads, hd, rd, base, stride);
}

static void attention_forward_cpu_act(void *o, float *lse, const void *q, const void *k,
                                      const void *v, const attention_dims *d)
{
    attention_forward_cpu(o, lse, q, k, v, d);
}

static void attention_backward_cpu_act(void *dq, void *dk, void *dv, const void *dout,
                                       const void *o, const float *lse, const void *q,
                                       const void *k, const void *v, const attention_dims *d,
                                       float *work)
{
    (void)work;
    attention_backward_cpu(dq, dk, dv, dout, o, lse, q, k, v, d);
}

static void attention_decode_cpu_act(void *o, void *q, void *k, const void *v, void *k_cache,
                                     void *v_cache, size_t cache_stride, int B, int pos,
                                     const attention_dims *d, int rd, float base)
{
    attention_decode_cpu(o, q, k, v, k_cache, v_cache, cache_stride, B, pos, d, rd, base);
}

const transformer_kernels transformer_kernels_cpu = {
    .unsupported_head_dim = cpu_unsupported_head_dim,
    .attention_work_floats = cpu_attention_work_floats,
    .rotary_forward = rotary_forward_cpu_act,
    .attention_forward = attention_forward_cpu_act,
    .attention_backward = attention_backward_cpu_act,
    .attention_decode = attention_decode_cpu_act,
};

#ifdef FLAME_HAVE_CUDA
const transformer_kernels transformer_kernels_cuda = {
    .unsupported_head_dim = attention_unsupported_head_dim_cuda,
    .attention_work_floats = attention_work_floats_cuda,
    .rotary_forward = rotary_forward_cuda,
    .attention_forward = attention_forward_cuda,
    .attention_backward = attention_backward_cuda,
    .attention_decode = attention_decode_cuda,
};
#endif

const transformer_kernels *transformer_kernels_for(const char *backend)
{
    if (strcmp(backend, "cpu") == 0)
        return &transformer_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0)
        return &transformer_kernels_cuda;
#endif
    return NULL;
}
