/* The GLA plugin's own kernels on the GPU: the same functions as the
 * CPU ones of gla.h (same meaning, layouts, and the same gradients added
 * into or overwritten), on device pointers, queued on the default stream
 * after the op table's work.
 * Activations (void pointers) are bf16, the CUDA op table's type; float
 * pointers are fp32; the arithmetic is fp32.
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

/* gla_step_cuda.cu: one token of each of B sequences (generation) */
void gla_recurrence_step_cuda(void *o, float *states, const void *q, const void *k, const void *v,
                              const void *gk, int B, int H, int dk, int dv, float scale, int stride);

/* gla_chunk.cu: the recurrence in chunks of GLA_CHUNK tokens */
size_t gla_recurrence_work_floats_cuda(int n, int H, int dk, int dv);
/* the intra-chunk scores A a layer may keep (gla_recurrence_dims.scores) */
size_t gla_recurrence_scores_floats_cuda(int n, int H);
size_t gla_recurrence_chunk_table_floats_cuda(int n);
void gla_recurrence_forward_cuda(void *o, void *checkpoints, const void *q, const void *k,
                                 const void *v, const void *gk, const gla_recurrence_dims *d,
                                 float *work, int n_work);
void gla_recurrence_backward_cuda(void *dq, void *dk, void *dv, void *dgk, const void *dout,
                                  const void *q, const void *k, const void *v, const void *gk,
                                  void *checkpoints, const gla_recurrence_dims *d,
                                  float *work, int n_work);
/* The backward's walk over the chunks alone, for GSA's first pass
 * (gsa_slots_chunk.cu), whose adjoint is this recurrence's with other roles:
 * from q, dout and gk as gla_recurrence_backward_cuda takes them, the gradient
 * ∂L/∂S at the end of every chunk but a sequence's last, bf16 in the
 * checkpoints' layout (only those slots are written), into `work`
 * (gla_recurrence_work_floats_cuda() floats); returns where it lies there. */
const void *gla_recurrence_state_grads_cuda(const void *q, const void *dout, const void *gk,
                                           const gla_recurrence_dims *d, float *work);

/* gla_gate_norm_cuda.cu: a warp holds a row in registers, so C is at most
 * GLA_GATE_NORM_CUDA_MAX_C (larger C exits with a message). Deterministic:
 * dw's sums have an order fixed by rows and C. */
#define GLA_GATE_NORM_CUDA_MAX_C 2048
void gla_gate_norm_forward_cuda(void *y, float *rstd, const void *o, const void *g, const gla_gate_rows *gr,
                                const void *w, int rows, int C, float eps);
void gla_gate_norm_backward_cuda(void *d_o, void *dg, float *dw, const void *dy, const void *o,
                                 const void *g, const gla_gate_rows *gr, const void *w, const float *rstd,
                                 int rows, int C);

/* gla_gates_cuda.cu */
void gla_gates_forward_cuda(void *gk, const void *x, size_t n, float normalizer);
void gla_gates_backward_cuda(void *dx, const void *dgk, const void *gk, size_t n, float normalizer);

#ifdef __cplusplus
}
#endif
#endif
