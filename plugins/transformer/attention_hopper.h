/* Hopper's attention kernels (attention_hopper.cu), which attention_cuda.cu's
 * entry points hand a call to where they apply: a GPU of compute capability
 * 9.0, a build with its sm_90a code, head dims 64 and 128, and tests not
 * having asked for the portable kernels (attention_cuda_portable_only). The
 * same arguments and results as the portable kernels; the backward's D
 * (do·o per row and head) is computed before. */
#ifndef FLAME_ATTENTION_HOPPER_H
#define FLAME_ATTENTION_HOPPER_H

#include "cuda_launch.cuh"
#include "transformer.h"

/* whether the Hopper kernels take attention of head dim hd here */
bool attention_hopper_applies(int hd);
void attention_hopper_forward(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                              const attention_dims *d);
void attention_hopper_backward(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                               const float *D, const act_t *q, const act_t *k, const act_t *v,
                               const attention_dims *d);

#endif
