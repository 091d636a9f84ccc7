/* Mamba2's SSD scan on the GPU (ssd_chunk.cu): the scan of mamba2.h in its
 * chunked form, on bf16 activations, with the CPU's checkpoint layout, and
 * generation's step.
 *
 * Layouts as mamba2.h: x, y [n,H,P], delta [n,H], B, C [n,G,N], all bf16 but
 * delta (fp32); A_log and D are the parameters' bf16 compute copies [H].
 * `checkpoints` hold the state at every chunk start but a sequence's first,
 * slot t0/MAMBA2_CHUNK − 1, as mamba2_ssd_forward_cpu keeps them, but in bf16
 * (mamba2_ssd_checkpoint_floats() values): the products round them to bf16
 * anyway, and the pass from chunk to chunk carries them in fp32. The
 * kernels take P ≤ 64 and N ≤ 128 (Mamba2's heads: P 64, N 128); larger
 * heads stop the program with a message. */
#ifndef FLAME_MAMBA2_SSD_CUDA_H
#define FLAME_MAMBA2_SSD_CUDA_H

#include <stddef.h>

#include "mamba2.h"

#ifdef __cplusplus
extern "C" {
#endif

/* floats of `work` (device memory) for batches of at most n tokens */
size_t mamba2_ssd_work_floats_cuda(int n, int H, int P, int N, int G);

/* x, B, C, y: bf16 (__nv_bfloat16, passed as void*); delta fp32 [n,H]; A_log, D: bf16 [H]
 * (the parameters' compute copies). y and the checkpoints are written. */
void mamba2_ssd_forward_cuda(void *y, void *checkpoints, const void *x, const float *delta,
                             const void *A_log, const void *B, const void *C, const void *D,
                             const mamba2_ssd_dims *d, float *work);

typedef struct mamba2_ssd_grads_cuda {
    void *dx, *dB, *dC;   /* bf16, WRITTEN */
    float *ddelta;        /* fp32 [n,H], WRITTEN */
    float *dA_log, *dD;   /* fp32 [H], ADDED */
} mamba2_ssd_grads_cuda;

/* all gradients given dy (bf16); checkpoints as the forward wrote them */
void mamba2_ssd_backward_cuda(const mamba2_ssd_grads_cuda *g, const void *dy, const void *x,
                              const float *delta, const void *A_log, const void *B, const void *C,
                              const void *D, const void *checkpoints, const mamba2_ssd_dims *d,
                              float *work);

/* one position of n_seqs sequences (mamba2_ssd_step_cpu): x, B, C, y bf16 (a
 * token a sequence), delta fp32 [n_seqs,H], A_log, D bf16 [H]; states fp32
 * [n_seqs,H,P,N], stepped in place; y written. Any P and N. */
void mamba2_ssd_step_cuda(void *y, float *states, const void *x, const float *delta,
                          const void *A_log, const void *B, const void *C, const void *D,
                          const mamba2_ssd_dims *d, int n_seqs);

#ifdef __cplusplus
}
#endif
#endif
