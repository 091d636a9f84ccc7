/* Mamba2's pointwise kernels on the GPU, and its column copies: the functions of mamba2.h of the
 * same names (same math, layouts, and the same gradients added into or
 * written) on device pointers, queued on the default stream after the op
 * table's work. Activations (void pointers) are bf16, float pointers fp32;
 * the arithmetic is fp32. Every sum (rstd, dw, ddt_bias) has an order fixed
 * by the shapes alone: no atomics, the same bits run to run. Each is checked
 * against its CPU reference by tests/test_mamba2_cuda. */
#ifndef FLAME_MAMBA2_POINTWISE_CUDA_H
#define FLAME_MAMBA2_POINTWISE_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

/* delta = clamp(softplus(dt + dt_bias[h]), lo, hi) over [n, H]; dt, dt_bias
 * bf16, delta fp32 */
void mamba2_delta_forward_cuda(float *delta, const void *dt, const void *dt_bias, int n, int H,
                               float lo, float hi);
/* ddt (bf16) WRITTEN, 0 where clamped; ddt_bias [H] fp32 ADDED; ddelta fp32 */
void mamba2_delta_backward_cuda(void *ddt, float *ddt_bias, const float *ddelta, const void *dt,
                                const void *dt_bias, int n, int H, float lo, float hi);

/* fla's RMSNormGated (norm_before_gate false) over rows of C in groups of
 * group_size (which divides C): g = y ⊙ silu(z), out = g · rstd · w;
 * rstd [rows · C/group_size] fp32 saved; y, z, w, out bf16 */
void mamba2_gated_norm_forward_cuda(void *out, float *rstd, const void *y, const void *z,
                                    const void *w, int rows, int C, int group_size, float eps);
/* dy, dz (bf16) WRITTEN; dw [C] fp32 ADDED */
void mamba2_gated_norm_backward_cuda(void *dy, void *dz, float *dw, const void *dout,
                                     const void *y, const void *z, const void *w,
                                     const float *rstd, int rows, int C, int group_size);
/* column blocks of a bf16 array and back (columns_cuda.cu; mamba2.h's
 * mamba2_split_columns_cpu and mamba2_join_columns_cpu) */
void mamba2_split_columns_cuda(void *const *parts, const int *widths, int n_parts,
                               const void *whole, int n);
void mamba2_join_columns_cuda(void *whole, const void *const *parts, const int *widths,
                              int n_parts, int n);

/* A block holds one group of a row in registers, so the widest group the
 * gated norm takes; rows of any C are taken in groups up to this wide, so with
 * one group (Mamba2's n_groups 1: C = group_size) it is the widest row. */
#define MAMBA2_GATED_NORM_CUDA_MAX_C 8192

#ifdef __cplusplus
}
#endif
#endif
