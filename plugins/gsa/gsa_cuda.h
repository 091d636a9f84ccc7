/* GSA's own kernels on the GPU: the functions of gsa.h (same meaning, layouts,
 * and the same gradients added into or overwritten) on device pointers, queued
 * on the default stream after the op table's work. Activations (void
 * pointers) are bf16, float pointers fp32; the arithmetic is fp32. Each is
 * checked against its CPU reference by the GSA CUDA tests.
 *
 * The first pass reads the sequence offsets from d->cu_seqlens_backend (device)
 * and their count from d->cu_seqlens (host); n_work must be 1 and `work` hold
 * gsa_slot_work_floats_cuda() floats of device memory. */
#ifndef FLAME_GSA_CUDA_H
#define FLAME_GSA_CUDA_H

#include <stddef.h>

#include "gsa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gsa_slots_chunk.cu: the first pass in chunks of GLA_CHUNK tokens */
size_t gsa_slot_work_floats_cuda(int n, int H, int dk, int M);
void gsa_slot_recurrence_forward_cuda(void *ok, void *checkpoints, const void *q, const void *k,
                                      const void *s, const void *f, const gsa_slot_dims *d,
                                      float *work, int n_work);
void gsa_slot_recurrence_backward_cuda(void *dq, void *dk, void *ds, void *df, const void *dok,
                                       const void *q, const void *k, const void *s, const void *f,
                                       const void *checkpoints, const gsa_slot_dims *d,
                                       float *work, int n_work);

/* gsa_slots_step.cu: one token of each of n_seqs sequences (generation); reads
 * only d's H, dk, M and scale */
void gsa_slot_step_cuda(void *ok, float *states, const void *q, const void *k, const void *s,
                        const void *f, const gsa_slot_dims *d, int n_seqs);

/* gsa_pointwise_cuda.cu */
void gsa_swish_forward_cuda(void *y, const void *x, size_t n);
void gsa_swish_backward_cuda(void *dx, const void *dy, const void *x, size_t n);
void gsa_slot_gates_forward_cuda(void *f, void *s, const void *x, size_t n, float normalizer);
void gsa_slot_gates_backward_cuda(void *dx, const void *df_slots, const void *df_values,
                                  const void *ds_slots, const void *ds_values, const void *f,
                                  size_t n, float normalizer);

/* gsa_softmax_cuda.cu: a warp holds a row, so M is at most GSA_SOFTMAX_CUDA_MAX_M;
 * p and dp are fp32, x and dx bf16 */
#define GSA_SOFTMAX_CUDA_MAX_M 1024
void gsa_softmax_forward_cuda(float *p, const void *x, int rows, int M);
void gsa_softmax_backward_cuda(void *dx, const float *dp, const float *p, int rows, int M);

/* gsa_output_norm_cuda.cu: a block holds a row, so C is at most GSA_OUTPUT_NORM_CUDA_MAX_C.
 * Deterministic: dw's sums have an order fixed by rows and C. */
#define GSA_OUTPUT_NORM_CUDA_MAX_C 8192
void gsa_output_norm_forward_cuda(void *y, float *rstd, const void *o, const void *w, int rows,
                                  int C, float eps);
void gsa_output_norm_backward_cuda(void *d_o, float *dw, const void *dy, const void *o,
                                   const void *w, const float *rstd, int rows, int C);

#ifdef __cplusplus
}
#endif
#endif
