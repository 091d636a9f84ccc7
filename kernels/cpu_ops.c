/* The CPU op table: what flame-run hands to the trainer and to plugins. Its
 * activation type is fp32, so the table's activation pointers are the float
 * arrays of the reference functions (cpu_kernels.h), and a parameter's compute
 * view is the parameter itself. */
#include <string.h>

#include "cpu_kernels.h"

static void to_act_cpu(void *dst, const float *src, size_t n)
{
    if (dst != src)
        memmove(dst, src, n * sizeof(float));
}

static void from_act_cpu(float *dst, const void *src, size_t n)
{
    if (dst != src)
        memmove(dst, src, n * sizeof(float));
}

static void matmul_forward_act(void *out, const void *in, const void *weight, const void *bias,
                               const void *residual, int M, int K, int N)
{
    matmul_forward_cpu(out, in, weight, bias, residual, M, K, N);
}

static void matmul_backward_act(void *din, flame_grad_mode din_mode, float *dweight, float *dbias,
                                const void *dout, const void *in, const void *weight, int M, int K,
                                int N)
{
    matmul_backward_cpu(din, din_mode, dweight, dbias, dout, in, weight, M, K, N);
}

static void embedding_forward_act(void *out, const int32_t *tokens, const void *table, int n, int C)
{
    embedding_forward_cpu(out, tokens, table, n, C);
}

static void embedding_backward_act(float *dtable, const void *dout, const int32_t *tokens, int n,
                                   int C)
{
    embedding_backward_cpu(dtable, dout, tokens, n, C);
}

static void rmsnorm_forward_act(void *out, float *rstd, const void *x, const void *weight, int n,
                                int C, float eps)
{
    rmsnorm_forward_cpu(out, rstd, x, weight, n, C, eps);
}

static void rmsnorm_backward_act(void *dx, flame_grad_mode dx_mode, float *dweight,
                                 const void *dout, const void *x, const void *weight,
                                 const float *rstd, int n, int C)
{
    rmsnorm_backward_cpu(dx, dx_mode, dweight, dout, x, weight, rstd, n, C);
}

static void layernorm_forward_act(void *out, float *mean, float *rstd, const void *x,
                                  const void *weight, const void *bias, int n, int C, float eps)
{
    layernorm_forward_cpu(out, mean, rstd, x, weight, bias, n, C, eps);
}

static void layernorm_backward_act(void *dx, flame_grad_mode dx_mode, float *dweight, float *dbias,
                                   const void *dout, const void *x, const void *weight,
                                   const float *mean, const float *rstd, int n, int C)
{
    layernorm_backward_cpu(dx, dx_mode, dweight, dbias, dout, x, weight, mean, rstd, n, C);
}

static void gelu_forward_act(void *out, const void *x, size_t n) { gelu_forward_cpu(out, x, n); }

static void gelu_backward_act(void *dx, const void *dout, const void *x, size_t n)
{
    gelu_backward_cpu(dx, dout, x, n);
}

static void add_act(void *out, const void *a, const void *b, size_t n) { add_cpu(out, a, b, n); }

/* the product, then the GELU: the reference of CUDA's epilogue */
static void matmul_gelu_forward_act(void *out, void *pre, const void *in, const void *weight, const void *bias,
                                    int M, int K, int N)
{
    matmul_forward_cpu(pre, in, weight, bias, NULL, M, K, N);
    gelu_forward_cpu(out, pre, (size_t)M * N);
}

static void matmul_dgelu_backward_act(void *dpre, const void *dout, const void *weight, const void *pre, int M,
                                      int K, int N)
{
    matmul_backward_cpu(dpre, FLAME_GRAD_SET, NULL, NULL, dout, NULL, weight, M, K, N);
    gelu_backward_cpu(dpre, dpre, pre, (size_t)M * K);
}

/* the fp32 residual stream's ops: on the CPU the activations are fp32 already */
static void matmul_forward_f32_act(float *out, const void *in, const void *weight, const void *bias,
                                   const float *residual, int M, int K, int N)
{
    matmul_forward_cpu(out, in, weight, bias, residual, M, K, N);
}

static void layernorm_forward_f32_act(void *out, float *mean, float *rstd, const float *x,
                                      const void *weight, const void *bias, int n, int C, float eps)
{
    layernorm_forward_cpu(out, mean, rstd, x, weight, bias, n, C, eps);
}

static void layernorm_backward_f32_act(float *dx, flame_grad_mode dx_mode, void *dx_act, float *dweight,
                                       float *dbias, const void *dout, const float *x, const void *weight,
                                       const float *mean, const float *rstd, int n, int C)
{
    layernorm_backward_cpu(dx, dx_mode, dweight, dbias, dout, x, weight, mean, rstd, n, C);
    if (dx_act)
        to_act_cpu(dx_act, dx, (size_t)n * C);
}

static void swiglu_forward_act(void *out, const void *gate, const void *up, size_t n)
{
    swiglu_forward_cpu(out, gate, up, 1, n, n);
}

static void swiglu_backward_act(void *dgate, void *dup, void *out, const void *dout,
                                const void *gate, const void *up, size_t n)
{
    swiglu_backward_cpu(dgate, dup, out, dout, gate, up, 1, n, n);
}

static void swiglu_forward_strided_act(void *out, const void *gate, const void *up, int rows, int I, int stride)
{
    swiglu_forward_cpu(out, gate, up, (size_t)rows, (size_t)I, (size_t)stride);
}

static void swiglu_backward_strided_act(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                                        const void *up, int rows, int I, int stride)
{
    swiglu_backward_cpu(dgate, dup, out, dout, gate, up, (size_t)rows, (size_t)I, (size_t)stride);
}

static double cross_entropy_act(float *losses, void *dlogits, const void *logits,
                                const int32_t *targets, int n, int V, float dloss_scale)
{
    return cross_entropy_cpu(losses, dlogits, logits, targets, n, V, dloss_scale);
}

static double lm_head_loss_act(void *expd, float *row_scale, const void *x, const void *head,
                               const int32_t *targets, int n, int D, int V, float dloss_scale)
{
    return lm_head_loss_cpu(expd, row_scale, x, head, targets, n, D, V, dloss_scale);
}

static void scale_rows_act(void *out, const void *x, const float *scale, int n, int C)
{
    scale_rows_cpu(out, x, scale, n, C);
}

static void adamw_act(float *param, void *compute, const float *grad, float grad_scale, float *m,
                      float *v, size_t n, size_t n_decayed, float lr, float beta1, float beta2,
                      float eps, float weight_decay, int t)
{
    adamw_cpu(param, grad, grad_scale, m, v, n, n_decayed, lr, beta1, beta2, eps, weight_decay, t);
    if (compute)
        to_act_cpu(compute, param, n);
}

static void conv1d_forward_act(void *out, const void *x, const void *weight, const void *bias,
                               const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu)
{
    conv1d_forward_cpu(out, x, weight, bias, cu_seqlens, n_seqs, n, C, K, silu);
}

static void conv1d_step_act(void *out, void *window, const void *x, const void *weight,
                            const void *bias, int B, int C, int K, int silu)
{
    conv1d_step_cpu(out, window, x, weight, bias, B, C, K, silu);
}

static void conv1d_backward_act(void *dx, float *dweight, float *dbias, const void *dout,
                                const void *x, const void *weight, const void *bias,
                                const int32_t *cu_seqlens, int n_seqs, int n, int C, int K,
                                int silu)
{
    conv1d_backward_cpu(dx, dweight, dbias, dout, x, weight, bias, cu_seqlens, n_seqs, n, C, K,
                        silu);
}

const flame_ops flame_cpu_ops = {
    .size = sizeof(flame_ops),
    .backend = "cpu",
    .act_bytes = sizeof(float),
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .upload = cpu_upload,
    .download = cpu_download,
    .to_act = to_act_cpu,
    .from_act = from_act_cpu,
    .matmul_forward = matmul_forward_act,
    .matmul_backward = matmul_backward_act,
    .embedding_forward = embedding_forward_act,
    .embedding_backward = embedding_backward_act,
    .rmsnorm_forward = rmsnorm_forward_act,
    .rmsnorm_backward = rmsnorm_backward_act,
    .swiglu_forward = swiglu_forward_act,
    .swiglu_backward = swiglu_backward_act,
    .scale = scale_cpu,
    .cross_entropy = cross_entropy_act,
    .sum_squares = sum_squares_cpu,
    .adamw = adamw_act,
    .synchronize = cpu_synchronize,
    .device_name = cpu_device_name,
    .memory_in_use_gib = cpu_memory_in_use_gib,
    .memory_peak_gib = cpu_memory_peak_gib,
    .peak_tflops = cpu_peak_tflops,
    .borrow_scratch = cpu_borrow_scratch,
    .memory_available = cpu_memory_available,
    .conv1d_forward = conv1d_forward_act,
    .conv1d_backward = conv1d_backward_act,
    .conv1d_step = conv1d_step_act,
    .layernorm_forward = layernorm_forward_act,
    .layernorm_backward = layernorm_backward_act,
    .gelu_forward = gelu_forward_act,
    .gelu_backward = gelu_backward_act,
    .add = add_act,
    .matmul_gelu_forward = matmul_gelu_forward_act,
    .matmul_dgelu_backward = matmul_dgelu_backward_act,
    .matmul_forward_f32 = matmul_forward_f32_act,
    .layernorm_forward_f32 = layernorm_forward_f32_act,
    .layernorm_backward_f32 = layernorm_backward_f32_act,
    .swiglu_forward_strided = swiglu_forward_strided_act,
    .swiglu_backward_strided = swiglu_backward_strided_act,
    .lm_head_loss = lm_head_loss_act,
    .scale_rows = scale_rows_act,
};
