/* A whole architecture plugin (flame_plugin_entry(), linked into the test) on
 * the CUDA op table against the same plugin on the CPU one, with the same
 * bf16-exact random weights and batches: the loss, the logits and every
 * parameter's gradient (see model_case for the tolerances); and its
 * generation on CUDA against its CUDA forward (test_decode_on_gpu). Include
 * after cuda_testing.h. */
#ifndef FLAME_PLUGIN_CUDA_TESTING_H
#define FLAME_PLUGIN_CUDA_TESTING_H

#include <math.h>

#include <flame/plugin.h>

#include "batch.h"
#include "cuda_testing.h"
#include "kv_config.h"
#include "param_layout_testing.h"

const flame_plugin *flame_plugin_entry(void);

/* one model on one backend: the parameters as the plugin computes with them
 * (the backend's activation type) and their fp32 gradients, in its memory */
typedef struct side {
    const flame_ops *ops;
    void *model;
    void **w;      /* each tensor's, in w_all */
    float **g;     /* each tensor's, in g_all */
    void *w_all;   /* every tensor's, laid out by param_layout_testing.h */
    float *g_all;
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
    size_t *offset = calloc(n_params, sizeof *offset);
    size_t total = testing_param_offsets(p, s->model, numel, n_params, offset);
    float *all = calloc(total, sizeof *all);
    for (int i = 0; i < n_params; i++)
        memcpy(all + offset[i], host_w[i], numel[i] * sizeof *all);
    s->w_all = acts_on(ops, all, total); /* bf16-exact: the same on both sides */
    s->g_all = alloc_on(ops, total * sizeof(float)); /* zero-filled */
    for (int i = 0; i < n_params; i++)
        s->w[i] = (char *)s->w_all + offset[i] * ops->act_bytes, s->g[i] = s->g_all + offset[i];
    free(offset), free(all);
    p->bind(s->model, (const void *const *)s->w, s->g);
    int rc = p->reserve(s->model, B, T, err, sizeof err);
    CHECK(rc == 0, "reserve on %s: %s", ops->backend, err);
    return rc;
}

static inline void side_close(side *s)
{
    if (!s->model)
        return;
    flame_plugin_entry()->destroy(s->model);
    s->ops->free(s->w_all), s->ops->free(s->g_all);
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
 * layer's weights: on an H100 the whole gradient came to 9.6e-3 (rows) and
 * 1.1e-2 (cu_seqlens) off the fp32 CPU model for GLA, 5.4e-3 and 5.3e-3 for
 * the transformer (2026-12-05, MODEL_CASE_SEED's draws). A parameter's own
 * gradient can be a sum of terms that mostly cancel while their rounding
 * errors do not, and a model whose norms see rows near 0 amplifies them (see
 * test_gla_cuda's eps); a missing or wrong gradient still shows as an error
 * near 1. */
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

/* the parameters of the model cfg makes, drawn on the host as bf16-exact
 * values: norms around 1; matrices and biases never zero, at the scale of
 * training (std 0.029 beside init_std 0.02): much larger weights make each
 * layer amplify the bf16 rounding of the one before */
typedef struct host_weights {
    int n;
    size_t *numel;
    float **w;
} host_weights;

static inline int draw_weights(host_weights *hw, const kv_config *cfg)
{
    const flame_plugin *p = flame_plugin_entry();
    void *probe = create_model(cfg, &flame_cpu_ops); /* to learn the parameters */
    if (!probe)
        return -1;
    hw->n = p->n_params(probe);
    hw->numel = calloc(hw->n, sizeof *hw->numel);
    hw->w = calloc(hw->n, sizeof *hw->w);
    for (int i = 0; i < hw->n; i++) {
        const flame_param_spec *s = p->param(probe, i);
        hw->numel[i] = 1;
        for (int dim = 0; dim < s->ndim; dim++)
            hw->numel[i] *= (size_t)s->shape[dim];
        hw->w[i] = s->init == FLAME_INIT_ONES ? testing_random_bf16(hw->numel[i], 0.7f, 1.3f)
                                              : testing_random_bf16(hw->numel[i], -0.05f, 0.05f);
    }
    p->destroy(probe);
    return 0;
}

static inline void host_weights_free(host_weights *hw)
{
    for (int i = 0; i < hw->n; i++)
        free(hw->w[i]);
    free(hw->w), free(hw->numel);
}

/* the model cases' draws start here, whatever the tests before them drew:
 * a test added earlier in a program must not change them */
#define MODEL_CASE_SEED 20261205u

/* the plugin made from cfg with the same random weights on both op tables,
 * compared by model_case on a batch of rows and one with cu_seqlens */
static inline void test_model_on_both(const kv_config *cfg)
{
    const flame_plugin *p = flame_plugin_entry();
    const int B = 2, T = 100;
    host_weights hw;
    testing_seed(MODEL_CASE_SEED);
    if (draw_weights(&hw, cfg))
        return;
    side cpu = {0}, gpu = {0};
    if (side_open(&cpu, cfg, &flame_cpu_ops, hw.w, hw.numel, hw.n, B, T) == 0 &&
        side_open(&gpu, cfg, &flame_cuda_ops, hw.w, hw.numel, hw.n, B, T) == 0) {
        model_case("rows", &cpu, &gpu, p, B, T, NULL, 0, hw.numel, hw.n);
        static const int32_t cu[] = {0, 37, 100, 101, 165, 200};
        model_case("cu_seqlens", &cpu, &gpu, p, B, T, cu, 5, hw.numel, hw.n);
    }
    side_close(&cpu);
    side_close(&gpu);
    host_weights_free(&hw);
}

/* ==================================================================== generation */

/* the full forward's logits of B rows of T tokens ([B·T, V], host), no loss */
static inline float *forward_logits(const side *g, const int32_t *tokens, int B, int T, size_t V)
{
    size_t n = (size_t)B * T;
    int32_t *targets = malloc(n * sizeof *targets);
    for (size_t i = 0; i < n; i++)
        targets[i] = -1;
    char err[256] = "";
    batch_stage stage;
    flame_batch batch;
    int rc = batch_stage_open(&stage, g->ops, B, T, err, sizeof err) ||
             batch_stage_load(&stage, g->ops, tokens, targets, NULL, 0, (int64_t)V, &batch, err,
                              sizeof err);
    CHECK(rc == 0, "decode: the forward's batch: %s", err);
    float *logits = NULL;
    if (rc == 0) {
        float *logits_d = dev_poisoned(n * V * sizeof(float));
        flame_plugin_entry()->forward(g->model, &batch, logits_d);
        logits = floats_to_host(logits_d, n * V);
        dev->free(logits_d);
    }
    batch_stage_close(&stage, g->ops);
    free(targets);
    return logits;
}

/* the same rows fed a position at a time through the decode entries from a
 * zeroed state (as core/generator.c starts it), each position's logits where
 * the forward puts them (row b·T + t), every step's poisoned first; NULL after
 * a failed check. A plugin without a decode path on CUDA fails here. */
static inline float *decode_logits(const side *g, const int32_t *tokens, int B, int T, size_t V)
{
    const flame_plugin *p = flame_plugin_entry();
    size_t bytes = p->decode_state_size(g->model, B, T);
    CHECK(bytes > 0, "decode: decode_state_size is 0 on CUDA (a step kernel is missing there)");
    if (bytes == 0)
        return NULL;
    void *state = dev_alloc(bytes);
    dev->zero(state, bytes);
    float *all = malloc((size_t)B * T * V * sizeof *all);
    int32_t *column = malloc((size_t)B * sizeof *column);
    int rc = 0;
    for (int t = 0; rc == 0 && t < T; t++) {
        for (int b = 0; b < B; b++)
            column[b] = tokens[(size_t)b * T + t];
        float *logits_d = dev_poisoned((size_t)B * V * sizeof(float));
        rc = p->decode_forward(g->model, state, column, B, t, logits_d);
        CHECK(rc == 0, "decode: decode_forward failed at position %d", t);
        float *step = floats_to_host(logits_d, (size_t)B * V);
        for (int b = 0; b < B; b++)
            memcpy(all + ((size_t)b * T + t) * V, step + (size_t)b * V, V * sizeof *all);
        free(step);
        dev->free(logits_d);
    }
    dev->free(state);
    free(column);
    if (rc)
        free(all), all = NULL;
    return all;
}

/* ‖got − want‖ / ‖want‖ over the logits of position t of every row */
static inline double position_error(const float *got, const float *want, int B, int T, size_t V, int t)
{
    double num = 0, den = 0;
    for (int b = 0; b < B; b++) {
        size_t at = ((size_t)b * T + t) * V;
        add_squares(got + at, want + at, V, &num, &den);
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

/* Generation on the GPU against the GPU's own forward, on the weights
 * test_model_on_both draws: B rows of T tokens fed through decode_forward
 * give the forward's logits at every position, over all positions together
 * within TOL_BF16 (as model_case holds the forward to the CPU's) and each
 * position alone within 3e-2. The paths differ (the forward's chunks with
 * bf16 operands on the tensor cores, the steps' fp32 states), so they agree
 * to bf16's bounds; a position's B rows of V logits are few values, whose
 * error scatters more (up to 1.2e-2 for one row of 97 on an H200), while a
 * step that loses or mixes up the carried state is off by order 1 there. */
static inline void test_decode_on_gpu(const kv_config *cfg, int B, int T)
{
    const double tol_position = 3e-2;
    const flame_plugin *p = flame_plugin_entry();
    host_weights hw;
    if (draw_weights(&hw, cfg))
        return;
    side gpu = {0};
    if (side_open(&gpu, cfg, &flame_cuda_ops, hw.w, hw.numel, hw.n, B, T) == 0) {
        size_t V = (size_t)p->vocab_size(gpu.model), n = (size_t)B * T;
        int32_t *tokens = malloc(n * sizeof *tokens);
        for (size_t i = 0; i < n; i++)
            tokens[i] = (int32_t)(testing_uniform() * V);
        float *want = forward_logits(&gpu, tokens, B, T, V);
        float *got = want ? decode_logits(&gpu, tokens, B, T, V) : NULL;
        if (got) {
            char shape[64], note[48];
            snprintf(shape, sizeof shape, "decode vs forward B=%d T=%d", B, T);
            report("decode logits", shape, testing_rel_error(got, want, n * V), TOL_BF16, " (all positions)");
            double worst = 0;
            int worst_t = 0;
            for (int t = 0; t < T; t++) {
                double err = position_error(got, want, B, T, V, t);
                if (!(err <= worst)) /* a NaN is the worst */
                    worst = err, worst_t = t;
            }
            snprintf(note, sizeof note, " (worst position: %d)", worst_t);
            report("decode logits", shape, worst, tol_position, note);
        }
        free(tokens), free(want), free(got);
    }
    side_close(&gpu);
    host_weights_free(&hw);
}

#endif
