/* The GLA plugin's own kernels on the GPU, in fp32: the same functions as the
 * CPU ones of gla.h (same meaning, layouts, add-into-gradients rules), on
 * device pointers, queued on the default stream after the op table's work.
 * Each is checked against its CPU reference by tests/test_gla_cuda.c.
 *
 * The recurrence reads the sequence offsets from d->cu_seqlens_backend (device)
 * and their count from d->cu_seqlens (host); n_work must be 1 and `work` hold
 * gla_recurrence_work_floats_cuda() floats of device memory. */
#ifndef FLAME_GLA_CUDA_H
#define FLAME_GLA_CUDA_H

#include <stddef.h>

#include "gla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gla_chunk.cu: the recurrence in chunks of GLA_CHUNK tokens */
size_t gla_recurrence_work_floats_cuda(int n, int H, int dk, int dv);
void gla_recurrence_forward_cuda(float *o, float *checkpoints, const float *q, const float *k,
                                 const float *v, const float *gk, const gla_recurrence_dims *d,
                                 float *work, int n_work);
void gla_recurrence_backward_cuda(float *dq, float *dk, float *dv, float *dgk, const float *dout,
                                  const float *q, const float *k, const float *v, const float *gk,
                                  const float *checkpoints, const gla_recurrence_dims *d,
                                  float *work, int n_work);

/* gla_gate_norm_cuda.cu */
void gla_gate_norm_forward_cuda(float *y, float *rstd, const float *o, const float *g,
                                const float *w, int rows, int C, float eps);
void gla_gate_norm_backward_cuda(float *d_o, float *dg, float *dw, const float *dy,
                                 const float *o, const float *g, const float *w,
                                 const float *rstd, int rows, int C);

/* gla_gates_cuda.cu */
void gla_gates_forward_cuda(float *gk, const float *x, size_t n, float normalizer);
void gla_gates_backward_cuda(float *dx, const float *dgk, const float *gk, size_t n,
                             float normalizer);

#ifdef __cplusplus
}
#endif
#endif
