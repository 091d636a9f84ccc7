/* The transformer's CUDA kernels (plugins/transformer/transformer_cuda.h)
 * against their CPU references, and the whole transformer model on the CUDA
 * op table against the same model on the CPU one:
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly (never zero-filled), fp32 for the CPU, cast to bf16 (to_act) for
 *    the GPU; bf16 outputs come back through from_act;
 *  - error measure: ‖gpu − cpu‖ / ‖cpu‖ over each whole output or gradient,
 *    under 1e-2 where the GPU's value passes through bf16 (o, rotary outputs
 *    and every gradient), under 1e-3 for the attention's lse (fp32 from bf16
 *    products of the same inputs);
 *  - forward outputs are poisoned with NaN first, so a value left unwritten
 *    fails; gradients are pre-filled with values of the size of what the
 *    kernels add, and the GPU's sum is compared with prefill + what the CPU
 *    added, so overwriting fails; the GPU's backward runs from its own o and
 *    lse, as in the model;
 *  - attention at sequence lengths 1, 65, 100, 300, 1000 and 2048 (not multiples of
 *    the tiles of 64 and 128 rows), varlen batches of uneven documents, GQA
 *    (H=4 with Hkv=2 and Hkv=1) and MHA, head dims 64 and 128 and others
 *    (16, 32, 96); rotary out of place, in place and backward, varlen;
 *  - the model: the same (bf16-exact) weights on both backends, a batch with
 *    and without cu_seqlens: the loss, the logits and every parameter's
 *    gradient (see model_case for its tolerances).
 * `test_transformer_cuda --bench` times the attention instead, at the 340M
 * shape (B=8, T=2048, H=16, hd=64) and at hd=128, in ms and TFLOP/s (see
 * bench for the FLOP convention). Without CUDA in the build, or without a
 * usable GPU, it prints "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <flame/plugin.h>

#include "cpu_kernels.h"
#include "cuda_kernels.h"
#include "testing.h"
#include "transformer_kernels.h"

#define TOL_BF16 1e-2 /* a value that passes through bf16 */
#define TOL_LSE 1e-3  /* the attention's fp32 log-sum-exp */

const flame_plugin *flame_plugin_entry(void);

static const flame_ops *dev = &flame_cuda_ops;
static const transformer_kernels *cpu_k = &transformer_kernels_cpu, *gpu_k = &transformer_kernels_cuda;

/* ==================================================================== inputs */

/* A gradient's prefill: random values of the size (RMS) of what the kernels
 * add to it, so that an overwrite shows as a large error, and bf16's rounding
 * of the sum a small one. */
static float *prefill_like(const float *added, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)added[i] * added[i];
    float rms = ss > 0 ? (float)sqrt(ss / (double)n) : 1.0f;
    return testing_random_bf16(n, -rms, rms);
}

/* ==================================================================== memory */

static void *alloc_on(const flame_ops *ops, size_t bytes)
{
    void *p = ops->alloc(bytes);
    if (!p) {
        fprintf(stderr, "test: out of %s memory (%zu bytes)\n", ops->backend, bytes);
        exit(1);
    }
    return p;
}

static void *dev_alloc(size_t bytes) { return alloc_on(dev, bytes ? bytes : 1); }

static int32_t *ints_to_device(const int32_t *host, size_t n)
{
    int32_t *d = dev_alloc(n * sizeof *d);
    dev->upload(d, host, n * sizeof *d);
    return d;
}

/* n host floats as activations of ops' backend, cast there by its to_act */
static void *acts_on(const flame_ops *ops, const float *host, size_t n)
{
    float *staging = alloc_on(ops, n * sizeof *staging);
    void *a = alloc_on(ops, n * ops->act_bytes);
    ops->upload(staging, host, n * sizeof *staging);
    ops->to_act(a, staging, n);
    ops->free(staging);
    return a;
}

static void *acts_to_device(const float *host, size_t n) { return acts_on(dev, host, n); }

/* a device output of `bytes`, poisoned: bytes of all ones are NaN in fp32 and bf16 */
static void *dev_poisoned(size_t bytes)
{
    unsigned char *nan = malloc(bytes);
    memset(nan, 0xff, bytes);
    void *d = dev_alloc(bytes);
    dev->upload(d, nan, bytes);
    free(nan);
    return d;
}

static float *floats_to_host(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    dev->download(h, d, n * sizeof *h);
    return h;
}

/* n device activations widened by from_act */
static float *acts_to_host(const void *d, size_t n)
{
    float *staging = dev_alloc(n * sizeof *staging);
    dev->from_act(staging, d, n);
    float *h = floats_to_host(staging, n);
    dev->free(staging);
    return h;
}

/* ==================================================================== comparisons */

static void report(const char *what, const char *shape, double err, double tol, const char *note)
{
    printf("%-24s %-44s rel %.2e%s\n", what, shape, err, note);
    CHECK(err < tol, "%s %s: relative error %.3g (tolerance %g)", what, shape, err, tol);
}

/* the device's result, on the host (freed here), against the CPU's */
static void compare(const char *what, const char *shape, float *got, const float *want, size_t n,
                    double tol)
{
    report(what, shape, testing_rel_error(got, want, n), tol, "");
    free(got);
}

/* a gradient the device kernel added into (on the host, freed here) against
 * pre + what the CPU kernel added */
static void compare_added(const char *what, const char *shape, float *got, const float *added,
                          const float *pre, size_t n, double tol)
{
    float *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++)
        want[i] = pre[i] + added[i];
    report(what, shape, testing_rel_error(got, want, n), tol, " (added)");
    free(got), free(want);
}

/* ==================================================================== attention */

typedef struct attn_inputs {
    int n;
    size_t nq, nkv, nrows; /* values of q (and o), of k and v; rows of lse */
    float *q, *k, *v, *dout;
} attn_inputs;

/* scores of a few units (q, k in ±2): peaked enough that the running max of
 * the online softmax moves from tile to tile */
static attn_inputs attn_inputs_make(const attention_dims *d)
{
    attn_inputs in;
    in.n = d->seqs.cu_seqlens[d->seqs.n_seqs];
    in.nq = (size_t)in.n * d->H * d->hd, in.nkv = (size_t)in.n * d->Hkv * d->hd;
    in.nrows = (size_t)in.n * d->H;
    in.q = testing_random_bf16(in.nq, -2, 2);
    in.k = testing_random_bf16(in.nkv, -2, 2);
    in.v = testing_random_bf16(in.nkv, -1, 1);
    in.dout = testing_random_bf16(in.nq, -1, 1);
    return in;
}

static void attn_inputs_free(attn_inputs *in) { free(in->q), free(in->k), free(in->v), free(in->dout); }

static void test_attention(const char *name, const int32_t *cu, int n_seqs, int H, int Hkv, int hd)
{
    char shape[96];
    snprintf(shape, sizeof shape, "%s H=%d Hkv=%d hd=%d n=%d", name, H, Hkv, hd, cu[n_seqs]);
    attention_dims d = {{cu, n_seqs, NULL}, H, Hkv, hd, 1.0f / sqrtf((float)hd)};
    attn_inputs in = attn_inputs_make(&d);

    /* the CPU: o, lse, and what the backward adds to dq, dk, dv */
    float *o = malloc(in.nq * sizeof *o), *lse = malloc(in.nrows * sizeof *lse);
    float *dq = calloc(in.nq, sizeof *dq), *dk = calloc(in.nkv, sizeof *dk);
    float *dv = calloc(in.nkv, sizeof *dv);
    cpu_k->attention_forward(o, lse, in.q, in.k, in.v, &d);
    cpu_k->attention_backward(dq, dk, dv, in.dout, o, lse, in.q, in.k, in.v, &d, NULL);
    float *pre_dq = prefill_like(dq, in.nq), *pre_dk = prefill_like(dk, in.nkv);
    float *pre_dv = prefill_like(dv, in.nkv);

    /* the GPU, its backward from its own o and lse */
    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    d.seqs.cu_seqlens_backend = cu_dev;
    void *q_d = acts_to_device(in.q, in.nq), *k_d = acts_to_device(in.k, in.nkv);
    void *v_d = acts_to_device(in.v, in.nkv), *dout_d = acts_to_device(in.dout, in.nq);
    void *o_d = dev_poisoned(in.nq * dev->act_bytes);
    float *lse_d = dev_poisoned(in.nrows * sizeof(float));
    void *dq_d = acts_to_device(pre_dq, in.nq), *dk_d = acts_to_device(pre_dk, in.nkv);
    void *dv_d = acts_to_device(pre_dv, in.nkv);
    float *work = dev_alloc(gpu_k->attention_work_floats(in.n, H) * sizeof(float));
    gpu_k->attention_forward(o_d, lse_d, q_d, k_d, v_d, &d);
    gpu_k->attention_backward(dq_d, dk_d, dv_d, dout_d, o_d, lse_d, q_d, k_d, v_d, &d, work);
    compare("attention o", shape, acts_to_host(o_d, in.nq), o, in.nq, TOL_BF16);
    compare("attention lse", shape, floats_to_host(lse_d, in.nrows), lse, in.nrows, TOL_LSE);
    compare_added("attention dq", shape, acts_to_host(dq_d, in.nq), dq, pre_dq, in.nq, TOL_BF16);
    compare_added("attention dk", shape, acts_to_host(dk_d, in.nkv), dk, pre_dk, in.nkv, TOL_BF16);
    compare_added("attention dv", shape, acts_to_host(dv_d, in.nkv), dv, pre_dv, in.nkv, TOL_BF16);

    void *dev_bufs[] = {cu_dev, q_d, k_d, v_d, dout_d, o_d, lse_d, dq_d, dk_d, dv_d, work};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        dev->free(dev_bufs[i]);
    float *host_bufs[] = {o, lse, dq, dk, dv, pre_dq, pre_dk, pre_dv};
    for (size_t i = 0; i < sizeof host_bufs / sizeof host_bufs[0]; i++)
        free(host_bufs[i]);
    attn_inputs_free(&in);
}

/* one sequence of T tokens */
static void test_attention_T(int H, int Hkv, int hd, int T)
{
    int32_t cu[2] = {0, T};
    test_attention("T", cu, 1, H, Hkv, hd);
}

static void test_attentions(void)
{
    /* lengths around and off the tiles of 64 and 128 rows; GQA 2:1 */
    const int lengths[] = {1, 65, 100, 300};
    for (int i = 0; i < 4; i++) {
        test_attention_T(4, 2, 64, lengths[i]);
        test_attention_T(4, 2, 128, lengths[i]);
    }
    /* MHA and GQA 4:1 */
    test_attention_T(2, 2, 64, 300);
    test_attention_T(2, 2, 128, 300);
    test_attention_T(4, 1, 64, 300);
    test_attention_T(4, 1, 128, 100);
    /* other head dims: the small models' 16 and 32, and 96 */
    test_attention_T(4, 2, 16, 300);
    test_attention_T(4, 2, 32, 100);
    test_attention_T(3, 3, 96, 200);
    /* documents of 1, 63, 1, 64, 71 and 100 tokens: tiles start off the grid */
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_attention("varlen", uneven, 6, 4, 2, 64);
    test_attention("varlen", uneven, 6, 4, 1, 128);
    test_attention("varlen", uneven, 6, 2, 2, 32);
    /* long: many tiles, two rows of two documents */
    static const int32_t two_rows[] = {0, 130, 2048, 2113, 4096};
    test_attention("varlen", two_rows, 4, 4, 2, 64);
    test_attention_T(2, 1, 128, 1000);
}

/* ==================================================================== rotary */

static void test_rotary(const char *name, const int32_t *cu, int n_seqs, int heads, int hd)
{
    char shape[96];
    int n = cu[n_seqs];
    snprintf(shape, sizeof shape, "%s heads=%d hd=%d n=%d", name, heads, hd, n);
    transformer_seqs s = {cu, n_seqs, NULL};
    size_t len = (size_t)n * heads * hd;
    const float base = 10000.0f;
    float *x = testing_random_bf16(len, -2, 2), *dout = testing_random_bf16(len, -1, 1);
    float *out = malloc(len * sizeof *out), *dx = calloc(len, sizeof *dx);
    cpu_k->rotary_forward(out, x, &s, heads, hd, base);
    cpu_k->rotary_backward(dx, dout, &s, heads, hd, base);
    float *pre = prefill_like(dx, len);

    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    s.cu_seqlens_backend = cu_dev;
    void *x_d = acts_to_device(x, len), *dout_d = acts_to_device(dout, len);
    void *out_d = dev_poisoned(len * dev->act_bytes), *dx_d = acts_to_device(pre, len);
    gpu_k->rotary_forward(out_d, x_d, &s, heads, hd, base);
    gpu_k->rotary_backward(dx_d, dout_d, &s, heads, hd, base);
    compare("rotary out", shape, acts_to_host(out_d, len), out, len, TOL_BF16);
    compare_added("rotary dx", shape, acts_to_host(dx_d, len), dx, pre, len, TOL_BF16);
    /* in place, as the plugin runs it */
    gpu_k->rotary_forward(x_d, x_d, &s, heads, hd, base);
    compare("rotary out (in place)", shape, acts_to_host(x_d, len), out, len, TOL_BF16);

    dev->free(cu_dev), dev->free(x_d), dev->free(dout_d), dev->free(out_d), dev->free(dx_d);
    free(x), free(dout), free(out), free(dx), free(pre);
}

static void test_rotaries(void)
{
    static const int32_t one[] = {0, 1}, long_one[] = {0, 4096};
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_rotary("T", one, 1, 4, 64);
    test_rotary("T", long_one, 1, 16, 64); /* angles of thousands of radians */
    test_rotary("varlen", uneven, 6, 4, 128);
    test_rotary("varlen", uneven, 6, 3, 16);
}

/* ==================================================================== the model */

/* a [model] section of fixed keys */
typedef struct kv_config {
    const char *const (*kv)[2];
    int n;
} kv_config;

static const char *kv_find(const void *ctx, const char *key)
{
    const kv_config *c = ctx;
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->kv[i][0], key) == 0)
            return c->kv[i][1];
    return NULL;
}

static int kv_is_set(const void *ctx, const char *key) { return kv_find(ctx, key) != NULL; }
static int64_t kv_get_int(const void *ctx, const char *key) { return strtoll(kv_find(ctx, key), NULL, 10); }
static double kv_get_float(const void *ctx, const char *key) { return strtod(kv_find(ctx, key), NULL); }
static int kv_get_bool(const void *ctx, const char *key) { return strcmp(kv_find(ctx, key), "true") == 0; }
static const char *kv_get_string(const void *ctx, const char *key) { return kv_find(ctx, key); }

/* head dim 32 and GQA 2:1. Two layers: every layer rounds its activations and
 * their gradients to bf16 on the GPU, so the model's errors grow with depth;
 * this small config keeps them under model_case's tolerances, a deeper one
 * may not. */
static const char *const small_model[][2] = {
    {"hidden_size", "128"}, {"num_hidden_layers", "2"},   {"num_heads", "4"},
    {"num_kv_heads", "2"},  {"vocab_size", "97"},         {"intermediate_size", "192"},
    {"norm_eps", "1e-6"},   {"rope_theta", "10000"},
};

/* one model on one backend: the parameters as the plugin computes with them
 * (the backend's activation type) and their fp32 gradients, in its memory */
typedef struct side {
    const flame_ops *ops;
    void *model;
    void **w;
    float **g;
} side;

static void *create_model(const flame_ops *ops)
{
    kv_config cfg = {small_model, (int)(sizeof small_model / sizeof small_model[0])};
    flame_model_config view = {&cfg, kv_is_set, kv_get_int, kv_get_float, kv_get_bool, kv_get_string};
    char err[256] = "";
    void *model = flame_plugin_entry()->create(&view, ops, err, sizeof err);
    CHECK(model != NULL, "create on %s: %s", ops->backend, err);
    return model;
}

static int side_open(side *s, const flame_ops *ops, float *const *host_w, const size_t *numel,
                     int n_params, int B, int T)
{
    const flame_plugin *p = flame_plugin_entry();
    char err[256] = "";
    s->ops = ops;
    s->model = create_model(ops);
    if (!s->model)
        return -1;
    s->w = calloc(n_params, sizeof *s->w);
    s->g = calloc(n_params, sizeof *s->g);
    for (int i = 0; i < n_params; i++) {
        s->w[i] = acts_on(ops, host_w[i], numel[i]); /* bf16-exact: the same on both sides */
        s->g[i] = alloc_on(ops, numel[i] * sizeof(float)); /* zero-filled */
    }
    p->bind(s->model, (const void *const *)s->w, s->g);
    int rc = p->reserve(s->model, B, T, err, sizeof err);
    CHECK(rc == 0, "reserve on %s: %s", ops->backend, err);
    return rc;
}

static void side_close(side *s, int n_params)
{
    if (!s->model)
        return;
    flame_plugin_entry()->destroy(s->model);
    for (int i = 0; i < n_params; i++)
        s->ops->free(s->w[i]), s->ops->free(s->g[i]);
    free(s->w), free(s->g);
}

/* forward (fp32 logits into the backend buffer) and backward on a fresh gradient */
static float side_step(side *s, const int32_t *tokens, const int32_t *targets, int B, int T,
                       const int32_t *cu, int n_seqs, float *logits, const size_t *numel,
                       int n_params)
{
    const flame_plugin *p = flame_plugin_entry();
    size_t n = (size_t)B * T;
    int32_t *tok = alloc_on(s->ops, n * sizeof *tok), *tgt = alloc_on(s->ops, n * sizeof *tgt);
    s->ops->upload(tok, tokens, n * sizeof *tok);
    s->ops->upload(tgt, targets, n * sizeof *tgt);
    for (int i = 0; i < n_params; i++)
        s->ops->zero(s->g[i], numel[i] * sizeof(float));
    flame_batch batch = {tok, tgt, B, T, cu, cu ? n_seqs : 0};
    float loss = p->forward(s->model, &batch, logits);
    p->backward(s->model);
    s->ops->free(tok), s->ops->free(tgt);
    return loss;
}

/* Σ (a − b)² into *num and Σ b² into *den */
static void add_squares(const float *a, const float *b, size_t n, double *num, double *den)
{
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        *num += d * d;
        *den += (double)b[i] * b[i];
    }
}

/* The loss and the logits within TOL_BF16; the gradient of all the parameters
 * together (one vector) within 3e-2, each parameter's alone within 5e-2 (the
 * tolerances of test_gla_cuda.c's model_case, for the same reason: each
 * kernel's bf16 output is within a few 1e-3 of the CPU's, and a whole model
 * chains some thirty such roundings from the tokens to the loss and back to
 * the first layer's weights; a parameter's own gradient can be a sum of terms
 * that mostly cancel while their rounding errors do not). A missing or wrong
 * gradient still shows as an error near 1. */
static void model_case(const char *name, side *cpu, side *gpu, const flame_plugin *p, int B, int T,
                       const int32_t *cu, int n_seqs, const size_t *numel, int n_params)
{
    const double tol_all = 3e-2, tol_param = 5e-2;
    size_t n = (size_t)B * T, V = (size_t)p->vocab_size(cpu->model);
    int32_t *tokens = malloc(n * sizeof *tokens), *targets = malloc(n * sizeof *targets);
    for (size_t i = 0; i < n; i++) {
        tokens[i] = (int32_t)(testing_uniform() * V);
        targets[i] = i % 17 == 3 ? -1 : (int32_t)(testing_uniform() * V); /* some ignored */
    }
    float *logits_cpu = malloc(n * V * sizeof *logits_cpu);
    float *logits_gpu = dev_poisoned(n * V * sizeof(float));
    float want = side_step(cpu, tokens, targets, B, T, cu, n_seqs, logits_cpu, numel, n_params);
    float got = side_step(gpu, tokens, targets, B, T, cu, n_seqs, logits_gpu, numel, n_params);

    char shape[96];
    snprintf(shape, sizeof shape, "%s B=%d T=%d", name, B, T);
    double err = fabs((double)got - want) / fabs((double)want);
    printf("%-24s %-44s rel %.2e (%.7g)\n", "model loss", shape, err, want);
    CHECK(err < TOL_BF16, "model loss %s: %.9g, expected %.9g", shape, got, want);
    compare("model logits", shape, floats_to_host(logits_gpu, n * V), logits_cpu, n * V, TOL_BF16);
    double num_all = 0, den_all = 0;
    for (int i = 0; i < n_params; i++) {
        float *h = floats_to_host(gpu->g[i], numel[i]);
        double num = 0, den = 0;
        add_squares(h, cpu->g[i], numel[i], &num, &den); /* the CPU's memory is the host's */
        num_all += num, den_all += den;
        err = sqrt(num) / (sqrt(den) + 1e-30);
        const char *pname = p->param(cpu->model, i)->name;
        printf("  grad %-52s rel %.2e\n", pname, err);
        CHECK(err < tol_param, "model %s: gradient of %s, relative error %.3g (tolerance %g)",
              shape, pname, err, tol_param);
        free(h);
    }
    err = sqrt(num_all) / (sqrt(den_all) + 1e-30);
    report("model gradient (all)", shape, err, tol_all, "");
    dev->free(logits_gpu);
    free(logits_cpu), free(tokens), free(targets);
}

static void test_model(void)
{
    const flame_plugin *p = flame_plugin_entry();
    const int B = 2, T = 100;
    void *probe = create_model(&flame_cpu_ops); /* to learn the parameters */
    if (!probe)
        return;
    int n_params = p->n_params(probe);
    size_t *numel = calloc(n_params, sizeof *numel);
    float **host_w = calloc(n_params, sizeof *host_w);
    for (int i = 0; i < n_params; i++) {
        const flame_param_spec *s = p->param(probe, i);
        numel[i] = 1;
        for (int dim = 0; dim < s->ndim; dim++)
            numel[i] *= (size_t)s->shape[dim];
        /* norms around 1; matrices never zero, at the scale of training
         * (std 0.029 beside init_std 0.02): much larger weights make each
         * layer amplify the bf16 rounding of the one before */
        host_w[i] = s->init == FLAME_INIT_ONES ? testing_random_bf16(numel[i], 0.7f, 1.3f)
                                               : testing_random_bf16(numel[i], -0.05f, 0.05f);
    }
    p->destroy(probe);
    side cpu = {0}, gpu = {0};
    if (side_open(&cpu, &flame_cpu_ops, host_w, numel, n_params, B, T) == 0 &&
        side_open(&gpu, &flame_cuda_ops, host_w, numel, n_params, B, T) == 0) {
        model_case("rows", &cpu, &gpu, p, B, T, NULL, 0, numel, n_params);
        static const int32_t cu[] = {0, 37, 100, 101, 165, 200};
        model_case("cu_seqlens", &cpu, &gpu, p, B, T, cu, 5, numel, n_params);
    }
    side_close(&cpu, n_params);
    side_close(&gpu, n_params);
    for (int i = 0; i < n_params; i++)
        free(host_w[i]);
    free(host_w), free(numel);
}

/* the CUDA table refuses head dims its attention has no kernel for, at create */
static void test_refusal(void)
{
    static const char *const odd_heads[][2] = {
        {"hidden_size", "72"}, {"num_hidden_layers", "1"}, {"num_heads", "2"}, {"vocab_size", "97"},
    };
    kv_config cfg = {odd_heads, 4};
    flame_model_config view = {&cfg, kv_is_set, kv_get_int, kv_get_float, kv_get_bool, kv_get_string};
    char err[256] = "";
    void *m = flame_plugin_entry()->create(&view, &flame_cuda_ops, err, sizeof err);
    printf("head dim 36 on cuda: %s\n", err);
    CHECK(m == NULL && strstr(err, "num_heads") && strstr(err, "head dim 36"),
          "head dim 36 on cuda: expected a refusal naming num_heads, got '%s'", err);
    if (m)
        flame_plugin_entry()->destroy(m);
}

/* ==================================================================== --bench */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Mean wall time of the GPU attention, forward and backward, over B rows of T
 * tokens. FLOPs as FlashAttention counts them for causal attention: the
 * forward's two products Q·Kᵀ and P·V take 2·2·B·H·T²·hd, halved for the
 * causal mask; the backward counts 2.5 times the forward (its five products,
 * dV, dP, dS's S again, dQ, dK) although this backward forms S and dP twice
 * (seven), to stay deterministic without atomics. */
static void bench(int B, int T, int H, int Hkv, int hd, int reps)
{
    int n = B * T;
    int32_t *cu = malloc((B + 1) * sizeof *cu);
    for (int b = 0; b <= B; b++)
        cu[b] = b * T;
    int32_t *cu_dev = ints_to_device(cu, (size_t)B + 1);
    attention_dims d = {{cu, B, cu_dev}, H, Hkv, hd, 1.0f / sqrtf((float)hd)};
    size_t nq = (size_t)n * H * hd, nkv = (size_t)n * Hkv * hd, act = dev->act_bytes;
    float *x = testing_random_bf16(nq + 3, -2, 2); /* q, k, v, dout: shifted views of x */
    void *q = acts_to_device(x, nq), *k = acts_to_device(x + 1, nkv), *v = acts_to_device(x + 2, nkv);
    void *dout = acts_to_device(x + 3, nq);
    void *o = dev_alloc(nq * act), *dq = dev_alloc(nq * act), *dk = dev_alloc(nkv * act);
    void *dv = dev_alloc(nkv * act);
    float *lse = dev_alloc((size_t)n * H * sizeof(float));
    float *work = dev_alloc(gpu_k->attention_work_floats(n, H) * sizeof(float));
    double fwd = 0, bwd = 0;
    for (int r = -1; r < reps; r++) { /* r = -1 warms up */
        cudaDeviceSynchronize();
        double t0 = now_ms();
        gpu_k->attention_forward(o, lse, q, k, v, &d);
        cudaDeviceSynchronize();
        double t1 = now_ms();
        gpu_k->attention_backward(dq, dk, dv, dout, o, lse, q, k, v, &d, work);
        cudaDeviceSynchronize();
        double t2 = now_ms();
        if (r >= 0)
            fwd += t1 - t0, bwd += t2 - t1;
    }
    CHECK(cudaGetLastError() == cudaSuccess, "bench: a CUDA error");
    fwd /= reps, bwd /= reps;
    double flops_fwd = 4.0 * B * H * (double)T * T * hd / 2, flops_bwd = 2.5 * flops_fwd;
    printf("attention B=%d T=%d H=%d Hkv=%d hd=%d: forward %.3f ms (%.1f TFLOP/s), "
           "backward %.3f ms (%.1f TFLOP/s) (mean of %d)\n",
           B, T, H, Hkv, hd, fwd, flops_fwd / fwd / 1e9, bwd, flops_bwd / bwd / 1e9, reps);
    void *bufs[] = {q, k, v, dout, o, dq, dk, dv, lse, work, cu_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    free(cu), free(x);
}

int main(int argc, char **argv)
{
    char why[256];
    if (!flame_cuda_available(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    printf("device: %s\n", why);
    testing_seed(20240917);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        printf("FLOPs: forward 4·B·H·T²·hd/2 (causal), backward 2.5× that\n");
        bench(8, 2048, 16, 16, 64, 10); /* the 340M shape */
        bench(8, 2048, 8, 8, 128, 10);
        return testing_result("test_transformer_cuda --bench");
    }
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g through bf16, %g for lse\n",
           TOL_BF16, TOL_LSE);
    test_rotaries();
    test_attentions();
    test_refusal();
    test_model();
    return testing_result("test_transformer_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
