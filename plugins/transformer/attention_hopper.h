/* Hopper's attention kernels (attention_hopper.cu), which attention_cuda.cu's
 * entry points hand a call to where they apply: a GPU of compute capability
 * 9.0, a build with its sm_90a code, head dims 64 and 128, and tests not
 * having asked for the portable kernels (attention_cuda_portable_only). The
 * same arguments and results as the portable kernels; the backward's D
 * (do·o per row and head) is computed before, in its scratch. */
#ifndef FLAME_ATTENTION_HOPPER_H
#define FLAME_ATTENTION_HOPPER_H

#include "cuda_launch.cuh"
#include "transformer.h"

/* whether the Hopper kernels take attention of head dim hd here */
bool attention_hopper_applies(int hd);
void attention_hopper_forward(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                              const attention_dims *d);
/* work: D (n·H floats, n the call's tokens) and then
 * attention_hopper_scratch_floats(n, H, hd) more. Whether it turned dq and
 * dk back through d's rotary turn as it wrote them (it does where the whole
 * head turns); where it did not, the caller does. */
bool attention_hopper_backward(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                               float *work, const act_t *q, const act_t *k, const act_t *v,
                               const attention_dims *d);

/* At head dim 64 the backward is one kernel that sums each query tile's dq
 * in a fixed order: it keeps, after D, a turn counter per row and head
 * (cleared with D) and the fp32 sums of dq; the floats these take for n
 * tokens (0 where that kernel is not taken), and where the counters lie in
 * work (NULL where it is not taken). */
size_t attention_hopper_scratch_floats(int n, int H, int hd);
int *attention_hopper_turns(float *work, int n, int H, int hd);

#endif
