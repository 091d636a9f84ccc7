/* A whole architecture plugin (flame_plugin_entry(), linked into the test) on
 * the CUDA op table against the same plugin on the CPU one, with the same
 * bf16-exact random weights and batches: the loss, the logits and every
 * parameter's gradient (see model_case for the tolerances). Include after
 * cuda_testing.h. */
#ifndef FLAME_PLUGIN_CUDA_TESTING_H
#define FLAME_PLUGIN_CUDA_TESTING_H

#include <math.h>

#include <flame/plugin.h>

#include "batch.h"
#include "cuda_testing.h"
#include "kv_config.h"

const flame_plugin *flame_plugin_entry(void);

/* one model on one backend: the parameters as the plugin computes with them
 * (the backend's activation type) and their fp32 gradients, in its memory */
typedef struct side {
    const flame_ops *ops;
    void *model;
    void **w;
    float **g;
} side;

static inline void *create_model(const kv_config *cfg, const flame_ops *ops)
{
    flame_model_config view = view_of(cfg);
    char err[256] = "";
    void *model = flame_plugin_entry()->create(&view, ops, err, sizeof err);
    CHECK(model != NULL, "create on %s: %s", ops->backend, err);
    return model;
}

static inline int side_open(side *s, const kv_config *cfg, const flame_ops *ops, float *const *host_w,
                     const size_t *numel, int n_params, int B, int T)
{
    const flame_plugin *p = flame_plugin_entry();
    char err[256] = "";
    s->ops = ops;
    s->model = create_model(cfg, ops);
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

static inline void side_close(side *s, int n_params)
{
    if (!s->model)
        return;
    flame_plugin_entry()->destroy(s->model);
    for (int i = 0; i < n_params; i++)
        s->ops->free(s->w[i]), s->ops->free(s->g[i]);
    free(s->w), free(s->g);
}

/* forward (fp32 logits into the backend buffer) and backward on a fresh
 * gradient, of the batch staged as the trainer stages it */
static inline float side_step(side *s, const int32_t *tokens, const int32_t *targets, int B, int T,
                       const int32_t *cu, int n_seqs, float *logits, const size_t *numel,
                       int n_params)
{
    const flame_plugin *p = flame_plugin_entry();
    char err[256] = "";
    batch_stage stage;
    flame_batch batch;
    int rc = batch_stage_open(&stage, s->ops, B, T, err, sizeof err) ||
             batch_stage_load(&stage, s->ops, tokens, targets, cu, n_seqs,
                              p->vocab_size(s->model), &batch, err, sizeof err);
    CHECK(rc == 0, "batch on %s: %s", s->ops->backend, err);
    if (rc)
        return NAN;
    for (int i = 0; i < n_params; i++)
        s->ops->zero(s->g[i], numel[i] * sizeof(float));
    float loss = p->forward(s->model, &batch, logits);
    p->backward(s->model);
    batch_stage_close(&stage, s->ops);
    return loss;
}

/* Σ (a − b)² into *num and Σ b² into *den */
static inline void add_squares(const float *a, const float *b, size_t n, double *num, double *den)
{
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        *num += d * d;
        *den += (double)b[i] * b[i];
    }
}

/* The loss and the logits within TOL_BF16; the gradient of all the parameters
 * together (one vector) within 3e-2, each parameter's alone within 5e-2. Each
 * kernel's bf16 output is within 3e-3 of the CPU's; a whole model chains some
 * thirty such roundings from the tokens to the loss and back to the first
 * layer's weights: on an H100 the whole gradient came to 2.4e-2 (rows) and
 * 1.2e-2 (cu_seqlens) off the fp32 CPU model for GLA, 5.6e-3 and 5.6e-3 for
 * the transformer (2026-11-23). A parameter's own gradient can
 * be a sum of terms that mostly cancel while their rounding errors do not; a
 * missing or wrong gradient still shows as an error near 1. */
static inline void model_case(const char *name, side *cpu, side *gpu, const flame_plugin *p, int B, int T,
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

/* the plugin made from cfg with the same random weights on both op tables,
 * compared by model_case on a batch of rows and one with cu_seqlens */
static inline void test_model_on_both(const kv_config *cfg)
{
    const flame_plugin *p = flame_plugin_entry();
    const int B = 2, T = 100;
    void *probe = create_model(cfg, &flame_cpu_ops); /* to learn the parameters */
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
        /* norms around 1; matrices and biases never zero, at the scale of
         * training (std 0.029 beside init_std 0.02): much larger weights make
         * each layer amplify the bf16 rounding of the one before */
        host_w[i] = s->init == FLAME_INIT_ONES ? testing_random_bf16(numel[i], 0.7f, 1.3f)
                                               : testing_random_bf16(numel[i], -0.05f, 0.05f);
    }
    p->destroy(probe);
    side cpu = {0}, gpu = {0};
    if (side_open(&cpu, cfg, &flame_cpu_ops, host_w, numel, n_params, B, T) == 0 &&
        side_open(&gpu, cfg, &flame_cuda_ops, host_w, numel, n_params, B, T) == 0) {
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

#endif
