/* The op table: every computation a plugin does goes through it, so one plugin
 * source runs on the CPU backend (the oracle) and on the CUDA backend.
 *
 * Two element types, and the table says which is which:
 *  - activations ("act" below, void pointers) are in the backend's compute
 *    type, act_bytes wide: fp32 on the CPU, bf16 on CUDA. The plugin's view of
 *    the parameters (bind) is in this type too;
 *  - parameter gradients, norm statistics (rstd), losses and everything the
 *    optimizer keeps are fp32 (float pointers) on every backend.
 * Arithmetic inside an op is fp32 (products accumulate in fp32) whatever the
 * storage type.
 *
 * Conventions, the same for every op:
 *  - tensors are row-major arrays in the backend's memory;
 *  - a matrix "[M,K]" has M rows of K contiguous values;
 *  - forward ops overwrite their outputs;
 *  - backward ops ADD into parameter gradients (fp32), so micro-batches and
 *    tied weights sum without extra copies;
 *  - backward ops WRITE activation gradients, except where the op takes a
 *    flame_grad_mode for one: there the caller says whether the gradient is
 *    fresh (SET) or adds onto one already there (ADD: the several uses of a
 *    layer's input, the residual stream). Writing where the gradient is fresh
 *    saves the zero-fill and the read of the old values;
 *  - a NULL gradient pointer means "not needed".
 *
 * The table grows like the plugin vtable (plugin.h): entries are appended,
 * size says how many the core's table has, and a plugin built against a later
 * minor version checks with FLAME_OPS_HAS before it calls an entry appended
 * after the first minor version of its major (5.0). */
#ifndef FLAME_OPS_H
#define FLAME_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flame_grad_mode { FLAME_GRAD_SET, FLAME_GRAD_ADD } flame_grad_mode;

typedef struct flame_ops {
    size_t size;         /* sizeof(flame_ops) of the core that made the table */
    const char *backend; /* "cpu" or "cuda" */
    size_t act_bytes;    /* bytes of one activation value: 4 (fp32) or 2 (bf16) */

    /* memory: alloc returns zero-filled memory, or NULL when out of memory */
    void *(*alloc)(size_t bytes);
    void (*free)(void *ptr);
    void (*zero)(void *ptr, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);          /* backend to backend */
    void (*upload)(void *dst, const void *host_src, size_t bytes);   /* host to backend */
    void (*download)(void *host_dst, const void *src, size_t bytes); /* backend to host */

    /* casts between fp32 and the activation type, n values in backend memory
     * that do not overlap (round to nearest even into bf16) */
    void (*to_act)(void *dst, const float *src, size_t n);
    void (*from_act)(float *dst, const void *src, size_t n);

    /* out[M,N] = in[M,K] · weight[N,K]ᵀ (+ bias[N]) (+ residual[M,N]), bias and
     * residual when not NULL; all act. residual may be out itself: the
     * residual stream's add rides on the product instead of a pass of its own. */
    void (*matmul_forward)(void *out, const void *in, const void *weight, const void *bias,
                           const void *residual, int M, int K, int N);
    /* din[M,K] = (or += with ADD) dout·weight (act);  dweight[N,K] += doutᵀ·in;
     * dbias[N] += Σ_rows dout */
    void (*matmul_backward)(void *din, flame_grad_mode din_mode, float *dweight, float *dbias,
                            const void *dout, const void *in, const void *weight, int M, int K,
                            int N);

    /* out[n,C] = table[tokens[i]] */
    void (*embedding_forward)(void *out, const int32_t *tokens, const void *table, int n, int C);
    /* dtable[tokens[i]] += dout[i] */
    void (*embedding_backward)(float *dtable, const void *dout, const int32_t *tokens, int n,
                               int C);

    /* out = x · rstd · weight per row of C, rstd[i] = 1/sqrt(mean(x_i²) + eps),
     * saved for the backward */
    void (*rmsnorm_forward)(void *out, float *rstd, const void *x, const void *weight, int n,
                            int C, float eps);
    /* dx = (or += with ADD) ∂/∂x;  dweight += ∂/∂weight */
    void (*rmsnorm_backward)(void *dx, flame_grad_mode dx_mode, float *dweight, const void *dout,
                             const void *x, const void *weight, const float *rstd, int n, int C);

    /* out = silu(gate) · up, elementwise over n values */
    void (*swiglu_forward)(void *out, const void *gate, const void *up, size_t n);
    /* dgate and dup written; out, when not NULL, receives the forward's output
     * made again on the way (the down projection's weight gradient needs it,
     * and the pass reads gate and up anyway). out may be dout itself. */
    void (*swiglu_backward)(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                            const void *up, size_t n);
    /* x *= s over n fp32 values (gradients) */
    void (*scale)(float *x, float s, size_t n);

    /* Softmax cross-entropy over rows of V logits (act). losses[i] = -log softmax(logits_i)[targets[i]],
     * 0 where targets[i] < 0 (ignored); losses may be NULL. When dlogits is not NULL
     * it receives dloss_scale · (softmax − onehot) for each counted row (0 for
     * ignored rows), and it may be the logits themselves (in place): with
     * dloss_scale = 1/(number of counted rows) that is ∂mean/∂logits.
     * Returns the sum of the losses over counted rows, accumulated in double. */
    double (*cross_entropy)(float *losses, void *dlogits, const void *logits,
                            const int32_t *targets, int n, int V, float dloss_scale);

    /* Sum of squares of x, accumulated in double: for the global gradient norm. */
    double (*sum_squares)(const float *x, size_t n);

    /* One AdamW step (decoupled weight decay) at 1-based step t over n fp32 values
     * (all the parameters at once), the decay on the first n_decayed of them only,
     * with g = grad_scale · grad (gradient clipping, applied on the way):
     * m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;  m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ);
     * param −= lr · (m̂/(sqrt(v̂)+eps) + weight_decay · param);
     * then compute (act) = param, unless compute is NULL or param itself. */
    void (*adamw)(float *param, void *compute, const float *grad, float grad_scale, float *m,
                  float *v, size_t n, size_t n_decayed, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int t);

    /* ---- the backend's services ---- */
    /* waits until the queued work is done (a timing point) */
    void (*synchronize)(void);
    /* the device's name ("cpu" on the CPU), into name */
    void (*device_name)(char *name, size_t n);
    /* memory of this process in GiB: in use now (device memory, context
     * included, on a GPU; the resident set on the CPU), and the most seen so
     * far (on a GPU the largest in-use figure this process has asked for) */
    double (*memory_in_use_gib)(void);
    double (*memory_peak_gib)(void);
    /* the bf16 matmul peak in TFLOP/s, timed at each call (about a second on a
     * GPU); 0: unknown */
    double (*peak_tflops)(void);
    /* Backend memory a plugin may borrow for values that live within one call
     * of its forward or backward: at least bytes, valid until the next
     * borrow_scratch; NULL when out of memory. The table's ops never use it,
     * and the caller never frees it. */
    void *(*borrow_scratch)(size_t bytes);

    /* ---- 5.2 ---- */
    /* Bytes the backend can still allocate (the device's free memory; the
     * system's available memory on the CPU): a run that cannot fit is refused
     * before anything is allocated. */
    size_t (*memory_available)(void);

    /* ---- 5.3 ---- */
    /* Short causal depthwise convolution over packed documents (Mamba2's, and
     * the short convolutions of GLA, GSA, Based): x and out [n,C] (act, a
     * token's C channels contiguous), weight [C,K] (act: PyTorch's depthwise
     * Conv1d weight [C,1,K] without its middle dimension), bias [C] (act) or
     * NULL; cu_seqlens [n_seqs+1] in backend memory, 0 = cu[0] < … <
     * cu[n_seqs] = n, the documents' offsets.
     *   pre[t,c] = bias[c] + Σ_{j<K} weight[c,j] · x[t−(K−1)+j, c],
     * x before the first token of t's document counting as 0 (the window
     * starts again at each document, as mamba_ssm's seq_idx makes it);
     * out = silu(pre) when silu is nonzero, else pre. out may not be x.
     * K is 1 to FLAME_CONV1D_MAX_K; a wider kernel is refused (exit 1). */
    void (*conv1d_forward)(void *out, const void *x, const void *weight, const void *bias,
                           const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu);
    /* dx written (act; it may not be dout); dweight [C,K] += ∂/∂weight and dbias [C] +=
     * ∂/∂bias (fp32). The silu's input is made again from x, weight and bias:
     * the forward saves nothing. */
    void (*conv1d_backward)(void *dx, float *dweight, float *dbias, const void *dout,
                            const void *x, const void *weight, const void *bias,
                            const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu);

    /* ---- 5.5 ---- */
    /* conv1d_forward's output for one new token of each of B sequences
     * (generation): window [B, K−1, C] (act) holds each sequence's K−1 inputs
     * before it, oldest first (zeros before its first), x [B, C] the new
     * ones; afterwards the window holds the last K−1 inputs, x's included.
     * NULL where the backend has no generation yet. */
    void (*conv1d_step)(void *out, void *window, const void *x, const void *weight,
                        const void *bias, int B, int C, int K, int silu);

    /* ---- 5.6: GPT's norm and activation ---- */
    /* LayerNorm over rows of C: out = (x − μ)·rstd·weight + bias per row, μ the
     * row's mean, rstd = 1/sqrt(mean((x − μ)²) + eps); mean and rstd (fp32)
     * saved for the backward; bias may be NULL */
    void (*layernorm_forward)(void *out, float *mean, float *rstd, const void *x, const void *weight,
                              const void *bias, int n, int C, float eps);
    /* dx = (or += with ADD) ∂/∂x;  dweight += ∂/∂weight;  dbias += ∂/∂bias */
    void (*layernorm_backward)(void *dx, flame_grad_mode dx_mode, float *dweight, float *dbias,
                               const void *dout, const void *x, const void *weight, const float *mean,
                               const float *rstd, int n, int C);
    /* out = gelu(x) over n values, the tanh form (GPT-2's "gelu_new"):
     * ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
    void (*gelu_forward)(void *out, const void *x, size_t n);
    /* dx = dout · gelu'(x), written (dx may be dout) */
    void (*gelu_backward)(void *dx, const void *dout, const void *x, size_t n);

    /* ---- 5.7 ---- */
    /* out = a + b over n activations (GPT's token and position embeddings);
     * out may be a or b */
    void (*add)(void *out, const void *a, const void *b, size_t n);

    /* ---- 5.9: GPT's MLP products with the GELU in their epilogue ---- */
    /* pre = in·weightᵀ + bias (bias [N] act), out = gelu(pre) (gelu_forward's
     * tanh form), both [M,N] act, written */
    void (*matmul_gelu_forward)(void *out, void *pre, const void *in, const void *weight, const void *bias,
                                int M, int K, int N);
    /* dpre[M,K] = (dout[M,N]·weight[N,K]) ⊙ gelu'(pre[M,K]), written: the
     * input gradient of a product whose input was gelu(pre), through the GELU */
    void (*matmul_dgelu_backward)(void *dpre, const void *dout, const void *weight, const void *pre, int M,
                                  int K, int N);

    /* ---- 5.10: a residual stream kept in fp32 (GPT's residual_in_fp32) ---- */
    /* matmul_forward with out and residual fp32 (residual may be out): the
     * branch's product joins the stream without a bf16 rounding */
    void (*matmul_forward_f32)(float *out, const void *in, const void *weight, const void *bias,
                               const float *residual, int M, int K, int N);
    /* layernorm_forward of fp32 rows x (out act, as before) */
    void (*layernorm_forward_f32)(void *out, float *mean, float *rstd, const float *x, const void *weight,
                                  const void *bias, int n, int C, float eps);
    /* layernorm_backward with x and dx fp32 (dout act, as before); dx_act,
     * when not NULL, also receives the new dx rounded to act (what the
     * products before the norm take), so no pass of its own makes it */
    void (*layernorm_backward_f32)(float *dx, flame_grad_mode dx_mode, void *dx_act, float *dweight,
                                   float *dbias, const void *dout, const float *x, const void *weight,
                                   const float *mean, const float *rstd, int n, int C);

    /* ---- 5.13: SwiGLU over one product of gate and up together ---- */
    /* swiglu_forward over rows of I values whose gate and up are read `stride`
     * values apart from row to row (column blocks of one [rows, stride]
     * product); out [rows, I] packed */
    void (*swiglu_forward_strided)(void *out, const void *gate, const void *up, int rows, int I, int stride);
    /* swiglu_backward likewise: dgate and dup written at the stride (column
     * blocks of one gradient), out and dout packed; out may be dout */
    void (*swiglu_backward_strided)(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                                    const void *up, int rows, int I, int stride);

    /* ---- 5.14: the LM head's loss without a pass over its logits ---- */
    /* The training forward of an LM head over n rows: logits l = x·headᵀ
     * (x [n,D], head [V,D], act), loss_i = logsumexp(l_i) − l_i[t_i], 0 where
     * t_i < 0; returns Σ loss_i. Writes expd [n,V] (act) and row_scale [n]
     * (fp32) such that
     *   row_scale_i · expd_i = dloss_scale · (softmax(l_i) − onehot(t_i)),
     * the logits' gradient, which the backward's products take as expd with
     * their inputs (or outputs) scaled by row_scale (scale_rows). expd need
     * not be that gradient itself: CUDA on Hopper writes the exponentials to
     * a shift of each row's (one pass fewer over the logits), the CPU the
     * gradient with row_scale 1. A row whose loss is beyond the exponentials'
     * range there (about 90 nats) returns +inf and row_scale 0. */
    double (*lm_head_loss)(void *expd, float *row_scale, const void *x, const void *head, const int32_t *targets,
                           int n, int D, int V, float dloss_scale);
    /* out_i = scale_i · x_i over n rows of C (act); out may be x */
    void (*scale_rows)(void *out, const void *x, const float *scale, int n, int C);
} flame_ops;

/* the widest conv1d kernel (fla and mamba_ssm use 4) */
#define FLAME_CONV1D_MAX_K 8

/* whether ops has the entry (appended after the plugin's minor version may be absent) */
#define FLAME_OPS_HAS(ops, entry) \
    ((ops)->size >= offsetof(flame_ops, entry) + sizeof((ops)->entry) && (ops)->entry)

#ifdef __cplusplus
}
#endif
#endif
