/* The CUDA backend: every op of flame/ops.h on the GPU. Activations (the
 * table's void pointers) are bf16, parameter gradients, norm statistics,
 * losses and optimizer state fp32; every kernel computes in fp32 and rounds
 * to bf16 (to nearest even) only when it stores an activation. Tensors live
 * in device memory; all work goes to the default stream, in call order, and
 * the ops that return a value to the host (download, cross_entropy,
 * sum_squares) wait for it. The backend keeps process-wide state (a cuBLASLt
 * handle and its matmul plans, scratch memory) and is meant to be driven from
 * one host thread.
 *
 * Checked against the CPU backend (the oracle) by tests/test_kernels_cuda.c. */
#ifndef FLAME_CUDA_KERNELS_H
#define FLAME_CUDA_KERNELS_H

#include <flame/ops.h>

#ifdef __cplusplus
extern "C" {
#endif

/* memory_cuda.cu */
void *cuda_alloc(size_t bytes);
void cuda_free(void *ptr);
void cuda_zero(void *ptr, size_t bytes);
void cuda_copy(void *dst, const void *src, size_t bytes);
void cuda_upload(void *dst, const void *host_src, size_t bytes);
void cuda_download(void *host_dst, const void *src, size_t bytes);
/* Device memory for an op's intermediate results, valid until the next call;
 * grows as needed and is never given back. */
void *cuda_scratch(size_t bytes);
/* the op table's borrow_scratch: a buffer of the plugins', apart from the ops' */
void *cuda_borrow_scratch(size_t bytes);

/* matmul_cuda.cu (the GELU's products: its epilogues) */
void matmul_gelu_forward_cuda(void *out, void *pre, const void *in, const void *weight, const void *bias, int M,
                              int K, int N);
void matmul_dgelu_backward_cuda(void *dpre, const void *dout, const void *weight, const void *pre, int M, int K,
                                int N);
void matmul_forward_cuda(void *out, const void *in, const void *weight, const void *bias,
                         const void *residual, int M, int K, int N);
void matmul_forward_f32_cuda(float *out, const void *in, const void *weight, const void *bias,
                             const float *residual, int M, int K, int N);
void matmul_backward_cuda(void *din, flame_grad_mode din_mode, float *dweight, float *dbias,
                          const void *dout, const void *in, const void *weight, int M, int K, int N);

/* embedding_cuda.cu */
void embedding_forward_cuda(void *out, const int32_t *tokens, const void *table, int n, int C);
void embedding_backward_cuda(float *dtable, const void *dout, const int32_t *tokens, int n, int C);

/* rmsnorm_cuda.cu */
void rmsnorm_forward_cuda(void *out, float *rstd, const void *x, const void *weight, int n, int C,
                          float eps);
void rmsnorm_backward_cuda(void *dx, flame_grad_mode dx_mode, float *dweight, const void *dout,
                           const void *x, const void *weight, const float *rstd, int n, int C);

/* layernorm_cuda.cu */
void layernorm_forward_cuda(void *out, float *mean, float *rstd, const void *x, const void *weight,
                            const void *bias, int n, int C, float eps);
void layernorm_backward_cuda(void *dx, flame_grad_mode dx_mode, float *dweight, float *dbias, const void *dout,
                             const void *x, const void *weight, const float *mean, const float *rstd, int n,
                             int C);
void layernorm_forward_f32_cuda(void *out, float *mean, float *rstd, const float *x, const void *weight,
                                const void *bias, int n, int C, float eps);
void layernorm_backward_f32_cuda(float *dx, flame_grad_mode dx_mode, void *dx_act, float *dweight, float *dbias,
                                 const void *dout, const float *x, const void *weight, const float *mean,
                                 const float *rstd, int n, int C);

/* gelu_cuda.cu */
void gelu_forward_cuda(void *out, const void *x, size_t n);
void gelu_backward_cuda(void *dx, const void *dout, const void *x, size_t n);

/* swiglu_cuda.cu */
void swiglu_forward_cuda(void *out, const void *gate, const void *up, size_t n);
void swiglu_backward_cuda(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                          const void *up, size_t n);
void swiglu_forward_strided_cuda(void *out, const void *gate, const void *up, int rows, int I, int stride);
void swiglu_backward_strided_cuda(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                                  const void *up, int rows, int I, int stride);

/* conv1d_cuda.cu */
void conv1d_forward_cuda(void *out, const void *x, const void *weight, const void *bias,
                         const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu);
void conv1d_backward_cuda(void *dx, float *dweight, float *dbias, const void *dout, const void *x,
                          const void *weight, const void *bias, const int32_t *cu_seqlens,
                          int n_seqs, int n, int C, int K, int silu);
void conv1d_step_cuda(void *out, void *window, const void *x, const void *weight, const void *bias,
                      int B, int C, int K, int silu);

/* elementwise_cuda.cu */
void to_act_cuda(void *dst, const float *src, size_t n);
void from_act_cuda(float *dst, const void *src, size_t n);
void scale_cuda(float *x, float s, size_t n);
void add_cuda(void *out, const void *a, const void *b, size_t n);

/* cross_entropy_cuda.cu */
double cross_entropy_cuda(float *losses, void *dlogits, const void *logits,
                          const int32_t *targets, int n, int V, float dloss_scale);

/* lm_head_loss_cuda.cu; for the tests: lm_head_loss_cuda_portable_only
 * makes it the product and cross_entropy even on Hopper, and
 * lm_head_loss_cuda_fuses says whether it fuses them for a depth D (rows
 * 16-byte aligned) on this device */
double lm_head_loss_cuda(void *expd, float *row_scale, const void *x, const void *head, const int32_t *targets,
                         int n, int D, int V, float dloss_scale);
void lm_head_loss_cuda_portable_only(int on);
int lm_head_loss_cuda_fuses(int D);
void scale_rows_cuda(void *out, const void *x, const float *scale, int n, int C);

/* grad_norm_cuda.cu */
double sum_squares_cuda(const float *x, size_t n);
/* Σ x[i] in a fixed order, returned to the host; overwrites x. */
double sum_doubles_cuda(double *x, size_t n);

/* adamw_cuda.cu */
void adamw_cuda(float *param, void *compute, const float *grad, float grad_scale, float *m,
                float *v, size_t n, size_t n_decayed, float lr, float beta1, float beta2, float eps,
                float weight_decay, int t);

/* device_info_cuda.cu */
/* TFLOP/s of a timed 8192³ bf16 product (fp32 accumulation) through cuBLASLt */
double cuda_bf16_peak_tflops(void);
/* device memory in use on the device, by this process and the context */
double cuda_memory_in_use_gib(void);
/* the largest figure cuda_memory_in_use_gib has returned */
double cuda_memory_peak_gib(void);
/* free device memory, bytes */
size_t cuda_memory_available(void);
void cuda_device_name(char *name, size_t n);
void cuda_synchronize(void);

/* cuda_ops.c: the table, and whether it can be used on this machine: 1 when
 * a CUDA device is usable, otherwise 0 with the reason written to why. */
extern const flame_ops flame_cuda_ops;
int flame_cuda_available(char *why, size_t n);
/* Makes GPU index the current device, before anything creates a context on
 * another. 0 with why when it cannot (no driver or device: why says so; the
 * machine has fewer GPUs: *missing set too), else 1. */
int flame_cuda_use_device(int index, int *missing, char *why, size_t n);

#ifdef __cplusplus
}
#endif
#endif
