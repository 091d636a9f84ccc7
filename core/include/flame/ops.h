/* The op table: every computation a plugin does goes through it, so one plugin
 * source runs on the CPU backend (the oracle) and on the CUDA backend.
 *
 * Conventions, the same for every op:
 *  - tensors are row-major fp32 arrays in the backend's memory;
 *  - a matrix "[M,K]" has M rows of K contiguous values;
 *  - forward ops overwrite their outputs;
 *  - backward ops ADD into every gradient they produce (parameter and input
 *    gradients alike), so gradients of shared tensors and of residual branches
 *    sum without extra copies. A NULL gradient pointer means "not needed". */
#ifndef FLAME_OPS_H
#define FLAME_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flame_ops {
    const char *backend; /* "cpu" or "cuda" */

    /* memory: alloc returns zero-filled memory, or NULL when out of memory */
    void *(*alloc)(size_t bytes);
    void (*free)(void *ptr);
    void (*zero)(void *ptr, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);          /* backend to backend */
    void (*upload)(void *dst, const void *host_src, size_t bytes);   /* host to backend */
    void (*download)(void *host_dst, const void *src, size_t bytes); /* backend to host */

    /* out[M,N] = in[M,K] · weight[N,K]ᵀ (+ bias[N] when bias is not NULL) */
    void (*matmul_forward)(float *out, const float *in, const float *weight,
                           const float *bias, int M, int K, int N);
    /* din[M,K] += dout·weight;  dweight[N,K] += doutᵀ·in;  dbias[N] += Σ_rows dout */
    void (*matmul_backward)(float *din, float *dweight, float *dbias,
                            const float *dout, const float *in, const float *weight,
                            int M, int K, int N);

    /* out[n,C] = table[tokens[i]] */
    void (*embedding_forward)(float *out, const int32_t *tokens, const float *table,
                              int n, int C);
    /* dtable[tokens[i]] += dout[i] */
    void (*embedding_backward)(float *dtable, const float *dout, const int32_t *tokens,
                               int n, int C);

    /* out = x · rstd · weight per row of C, rstd[i] = 1/sqrt(mean(x_i²) + eps),
     * saved for the backward */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *x, const float *weight,
                            int n, int C, float eps);
    void (*rmsnorm_backward)(float *dx, float *dweight, const float *dout, const float *x,
                             const float *weight, const float *rstd, int n, int C);

    /* out = silu(gate) · up, elementwise over n values */
    void (*swiglu_forward)(float *out, const float *gate, const float *up, size_t n);
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout,
                            const float *gate, const float *up, size_t n);

    /* out = a + b, elementwise (out may alias a or b) */
    void (*add)(float *out, const float *a, const float *b, size_t n);
    /* x *= s */
    void (*scale)(float *x, float s, size_t n);

    /* Softmax cross-entropy over rows of V logits. losses[i] = -log softmax(logits_i)[targets[i]],
     * 0 where targets[i] < 0 (ignored). When dlogits is not NULL it receives
     * dloss_scale · (softmax − onehot) for each counted row (0 for ignored rows):
     * with dloss_scale = 1/(number of counted rows) that is ∂mean/∂logits.
     * Returns the sum of the losses over counted rows, accumulated in double. */
    double (*cross_entropy)(float *losses, float *dlogits, const float *logits,
                            const int32_t *targets, int n, int V, float dloss_scale);

    /* Sum of squares of x, accumulated in double: for the global gradient norm. */
    double (*sum_squares)(const float *x, size_t n);

    /* One AdamW step (decoupled weight decay) at 1-based step t:
     * m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;  m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ);
     * param −= lr · (m̂/(sqrt(v̂)+eps) + weight_decay · param) */
    void (*adamw)(float *param, const float *grad, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, int t);
} flame_ops;

#ifdef __cplusplus
}
#endif
#endif
