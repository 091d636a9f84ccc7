/* The Based plugin's own kernels on the GPU: the functions of based.h of the
 * same names (same meaning, layouts, and gradients written), on device
 * pointers, queued on the default stream after the op table's work.
 * Activations (void pointers) are bf16; the arithmetic is fp32. The sequence
 * offsets are read from d->cu_seqlens_backend (device), their count from
 * d->cu_seqlens (host). Each is checked against its CPU reference by
 * tests/test_based_cuda.c. */
#ifndef FLAME_BASED_CUDA_H
#define FLAME_BASED_CUDA_H

#include <stddef.h>

#include "based.h"

#ifdef __cplusplus
extern "C" {
#endif

/* taylor_attention_cuda.cu: the Taylor linear attention as plain linear
 * attention through GLA's chunked kernels. F up to BASED_TAYLOR_CUDA_MAX_F;
 * `work`: based_taylor_work_floats_cuda() floats for batches of at most n
 * tokens */
#define BASED_TAYLOR_CUDA_MAX_F 16
size_t based_taylor_work_floats_cuda(int n, int H, int F, int Dv);
void based_taylor_forward_cuda(void *y, const void *q, const void *k, const void *v,
                               const based_dims *d, float *work);
void based_taylor_backward_cuda(void *dq, void *dk, void *dv, const void *dy, const void *q,
                                const void *k, const void *v, const based_dims *d, float *work);
/* generation: states fp32 [n_seqs, H] of S then z, as the CPU's */
void based_taylor_step_cuda(void *y, float *states, const void *q, const void *k, const void *v,
                            const based_dims *d, int n_seqs);

#ifdef __cplusplus
}
#endif
#endif
