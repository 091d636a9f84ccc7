/* The CPU backend: plain C implementations of every op in flame/ops.h.
 * They are the reference (the "oracle") the CUDA backend is checked against,
 * and they train small models on a few cores.
 *
 * Every multithreaded reduction here splits its work into pieces whose
 * boundaries do not depend on the number of threads, and sums each output in
 * one fixed order, so results are bit-identical run to run and for any
 * OMP_NUM_THREADS. */
#ifndef FLAME_CPU_KERNELS_H
#define FLAME_CPU_KERNELS_H

#include <flame/ops.h>

/* OpenMP pragmas that vanish without -fopenmp (and then do not trigger
 * -Wunknown-pragmas). */
#define CPU_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define CPU_PARALLEL_FOR_IF(cond) CPU_PRAGMA(omp parallel for schedule(static) if(cond))
#else
#define CPU_PARALLEL_FOR_IF(cond)
#endif

/* Below this much work (multiply-adds or elements) a loop stays on one thread:
 * starting a parallel region costs more than it saves. */
#define CPU_PARALLEL_MIN_WORK 32768

/* memory_cpu.c */
void *cpu_alloc(size_t bytes);
void cpu_free(void *ptr);
void cpu_zero(void *ptr, size_t bytes);
void cpu_copy(void *dst, const void *src, size_t bytes);
void cpu_upload(void *dst, const void *host_src, size_t bytes);
void cpu_download(void *host_dst, const void *src, size_t bytes);
void *cpu_borrow_scratch(size_t bytes);

/* device_info_cpu.c: the backend's services (ops.h) */
void cpu_synchronize(void);
void cpu_device_name(char *name, size_t n);
double cpu_memory_in_use_gib(void);
double cpu_memory_peak_gib(void);
double cpu_peak_tflops(void);
size_t cpu_memory_available(void);

/* matmul_cpu.c */
void matmul_forward_cpu(float *out, const float *in, const float *weight,
                        const float *bias, const float *residual, int M, int K, int N);
void matmul_backward_cpu(float *din, flame_grad_mode din_mode, float *dweight, float *dbias,
                         const float *dout, const float *in, const float *weight,
                         int M, int K, int N);

/* embedding_cpu.c */
void embedding_forward_cpu(float *out, const int32_t *tokens, const float *table,
                           int n, int C);
void embedding_backward_cpu(float *dtable, const float *dout, const int32_t *tokens,
                            int n, int C);

/* rmsnorm_cpu.c */
void rmsnorm_forward_cpu(float *out, float *rstd, const float *x, const float *weight,
                         int n, int C, float eps);
void rmsnorm_backward_cpu(float *dx, flame_grad_mode dx_mode, float *dweight, const float *dout,
                          const float *x, const float *weight, const float *rstd, int n, int C);

/* layernorm_cpu.c */
void layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *x, const float *weight,
                           const float *bias, int n, int C, float eps);
void layernorm_backward_cpu(float *dx, flame_grad_mode dx_mode, float *dweight, float *dbias,
                            const float *dout, const float *x, const float *weight, const float *mean,
                            const float *rstd, int n, int C);

/* gelu_cpu.c */
void gelu_forward_cpu(float *out, const float *x, size_t n);
void gelu_backward_cpu(float *dx, const float *dout, const float *x, size_t n);

/* swiglu_cpu.c */
/* rows of cols values, gate, up, dgate and dup `stride` values apart from row
 * to row, out and dout packed (the flat ops: one row of n) */
void swiglu_forward_cpu(float *out, const float *gate, const float *up, size_t rows, size_t cols,
                        size_t stride);
void swiglu_backward_cpu(float *dgate, float *dup, float *out, const float *dout, const float *gate,
                         const float *up, size_t rows, size_t cols, size_t stride);

/* conv1d_cpu.c */
void conv1d_forward_cpu(float *out, const float *x, const float *weight, const float *bias,
                        const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu);
void conv1d_backward_cpu(float *dx, float *dweight, float *dbias, const float *dout,
                         const float *x, const float *weight, const float *bias,
                         const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu);
void conv1d_step_cpu(float *out, float *window, const float *x, const float *weight,
                     const float *bias, int B, int C, int K, int silu);

/* elementwise_cpu.c */
void scale_cpu(float *x, float s, size_t n);
void add_cpu(float *out, const float *a, const float *b, size_t n);

/* cross_entropy_cpu.c */
double cross_entropy_cpu(float *losses, float *dlogits, const float *logits,
                         const int32_t *targets, int n, int V, float dloss_scale);

/* lm_head_loss_cpu.c */
double lm_head_loss_cpu(float *expd, float *row_scale, const float *x, const float *head, const int32_t *targets,
                        int n, int D, int V, float dloss_scale);
void scale_rows_cpu(float *out, const float *x, const float *scale, int n, int C);

/* grad_norm_cpu.c */
double sum_squares_cpu(const float *x, size_t n);

/* adamw_cpu.c */
void adamw_cpu(float *param, const float *grad, float grad_scale, float *m, float *v, size_t n,
               size_t n_decayed, float lr, float beta1, float beta2, float eps, float weight_decay,
               int t);

/* cpu_ops.c: the table handed to plugins and to the trainer */
extern const flame_ops flame_cpu_ops;

#endif
