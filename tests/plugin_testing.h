/* The harness for testing a whole architecture plugin at a tiny size, through
 * flame_plugin_entry() and the CPU op table: a [model] section made by the
 * test, the model with random parameters, a batch, a naive model's building
 * blocks in double, and the check of every parameter gradient against finite
 * differences. A test defines `typedef struct dims {...} dims;` (its model's
 * sizes, with at least int D, L, I, V, tie and double eps: width, layers, MLP
 * width, vocabulary, tied embeddings, norm epsilon; I = 0: no MLP) before
 * including this, and LM_ROOT / LM_EMBEDDINGS / LM_FINAL_NORM where its names
 * are not fla's usual "model.…", "model.embeddings" and "model.norm", and
 * NAIVE_MLP_FC1 for HazyResearch's MLP (mlp.fc1 holding up's rows then gate's,
 * mlp.fc2, norm2) instead of fla's (mlp_norm, gate_proj, up_proj, down_proj),
 * or LM_GPT for flash-attn's GPT: LayerNorms with biases, the GELU MLP
 * (mlp.fc1, mlp.fc2 with biases, norm2) and a position table
 * (LM_ROOT.embeddings.position_embeddings) when dims has positions > 0. */
#ifndef FLAME_PLUGIN_TESTING_H
#define FLAME_PLUGIN_TESTING_H

#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flame/plugin.h>

#include "batch.h"
#include "cpu_kernels.h"
#include "kv_config.h"
#include "lm_model.h"
#include "param_layout_testing.h"
#include "testing.h"

const flame_plugin *flame_plugin_entry(void);

#ifndef LM_ROOT
#define LM_ROOT "model"
#endif
#ifndef LM_FINAL_NORM
#define LM_FINAL_NORM "norm"
#endif
#ifndef LM_EMBEDDINGS
#define LM_EMBEDDINGS "embeddings"
#endif

/* ==================================================================== the model under test */

typedef struct test_model {
    const flame_plugin *p;
    void *model;
    dims c;
    int n_params;
    const flame_param_spec **spec;
    float **w, **g;        /* each tensor's, in w_all and g_all */
    float *w_all, *g_all;  /* every tensor's values and gradients (param_layout_testing.h) */
    size_t *numel;
    int B, T, n_seqs;
    int32_t *tokens, *targets, *cu;
    batch_stage stage;
    flame_batch batch; /* as the core hands it in */
} test_model;

static size_t numel_of(const flame_param_spec *s)
{
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= (size_t)s->shape[d];
    return n;
}

/* random values: matrices of std ≈ 0.3, norm weights around 1, a nonzero bias,
 * embedding rows of RMS ≈ 0.7 (that is also lm_head when tied) */
static void fill_param(float *x, const flame_param_spec *s, size_t n)
{
    if (s->init == FLAME_INIT_ONES)
        testing_fill(x, n, 0.7f, 1.3f);
    else if (s->init == FLAME_INIT_ZEROS)
        testing_fill(x, n, -0.5f, 0.5f);
    else if (strcmp(s->name, LM_ROOT "." LM_EMBEDDINGS ".weight") == 0)
        testing_fill(x, n, -1.2f, 1.2f);
    else
        testing_fill(x, n, -0.52f, 0.52f);
}

/* a [model] section with the keys every decoder LM shares, from c; the test
 * adds its plugin's own */
static inline kv_config lm_config_of(const dims *c)
{
    return kv_lm_config(&(kv_lm_keys){.D = c->D, .L = c->L, .V = c->V, .I = c->I, .eps = c->eps, .tie = c->tie});
}

/* creates the plugin's model from cfg, binds fresh random parameters */
static int model_open(test_model *t, const kv_config *cfg, const dims *c)
{
    char err[256] = "";
    t->p = flame_plugin_entry();
    t->c = *c;
    flame_model_config v = view_of(cfg);
    t->model = t->p->create(&v, &flame_cpu_ops, err, sizeof err);
    CHECK(t->model != NULL, "create: %s", err);
    if (!t->model)
        return -1;
    t->n_params = t->p->n_params(t->model);
    t->spec = calloc(t->n_params, sizeof *t->spec);
    t->w = calloc(t->n_params, sizeof *t->w);
    t->g = calloc(t->n_params, sizeof *t->g);
    t->numel = calloc(t->n_params, sizeof *t->numel);
    size_t *offset = calloc(t->n_params, sizeof *offset);
    for (int i = 0; i < t->n_params; i++) {
        t->spec[i] = t->p->param(t->model, i);
        t->numel[i] = numel_of(t->spec[i]);
    }
    size_t total = testing_param_offsets(t->p, t->model, t->numel, t->n_params, offset);
    t->w_all = calloc(total, sizeof(float)), t->g_all = calloc(total, sizeof(float));
    for (int i = 0; i < t->n_params; i++) {
        t->w[i] = t->w_all + offset[i], t->g[i] = t->g_all + offset[i];
        fill_param(t->w[i], t->spec[i], t->numel[i]);
    }
    free(offset);
    t->p->bind(t->model, (const void *const *)t->w, t->g);
    return 0;
}

/* B rows of T tokens covering the vocabulary, one ignored target per row,
 * staged as the trainer stages a batch */
static void batch_open(test_model *t, int B, int T, const int32_t *cu, int n_seqs)
{
    int n = B * T;
    t->B = B, t->T = T, t->n_seqs = n_seqs;
    t->tokens = malloc(n * sizeof *t->tokens);
    t->targets = malloc(n * sizeof *t->targets);
    for (int i = 0; i < n; i++) {
        t->tokens[i] = (i * 7 + 3) % t->c.V;
        t->targets[i] = i % T == 2 ? -1 : (i * 5 + 1) % t->c.V;
    }
    t->cu = NULL;
    if (cu) {
        t->cu = malloc((n_seqs + 1) * sizeof *t->cu);
        memcpy(t->cu, cu, (n_seqs + 1) * sizeof *t->cu);
    }
    char err[256] = "";
    int rc = t->p->reserve(t->model, B, T, err, sizeof err);
    CHECK(rc == 0, "reserve: %s", err);
    rc = batch_stage_open(&t->stage, &flame_cpu_ops, B, T, err, sizeof err) ||
         batch_stage_load(&t->stage, &flame_cpu_ops, t->tokens, t->targets, t->cu, n_seqs, t->c.V,
                          &t->batch, err, sizeof err);
    CHECK(rc == 0, "batch: %s", err);
}

static void model_close(test_model *t)
{
    if (t->model)
        t->p->destroy(t->model);
    free(t->w_all), free(t->g_all);
    free(t->spec), free(t->w), free(t->g), free(t->numel);
    free(t->tokens), free(t->targets), free(t->cu);
    batch_stage_close(&t->stage, &flame_cpu_ops);
    memset(t, 0, sizeof *t);
}

/* The model of cfg with every tensor bound on its own, as the core binds a
 * plugin whose vtable lacks param_joined: a plugin that joins tensors (ABI
 * 5.12) computes with each run as one, so bind() must stop the process
 * (SIGABRT) with a line naming the run instead of reading past a tensor's
 * end. `joined` is a tensor the plugin joins to the one before it. */
static inline void check_joined_bound_apart_aborts(const kv_config *cfg, const char *joined)
{
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(0, "pipe for the joined tensors' check");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        char err[256] = "";
        const flame_plugin *p = flame_plugin_entry();
        flame_model_config v = view_of(cfg);
        void *model = p->create(&v, &flame_cpu_ops, err, sizeof err);
        if (!model)
            _exit(3);
        int n = p->n_params(model);
        void **w = calloc(n, sizeof *w);
        float **g = calloc(n, sizeof *g);
        for (int i = 0; i < n; i++) {
            size_t numel = numel_of(p->param(model, i));
            w[i] = calloc(numel, sizeof(float)), g[i] = calloc(numel, sizeof(float));
        }
        p->bind(model, (const void *const *)w, g);
        _exit(0);
    }
    close(fds[1]);
    char said[512] = "";
    size_t got = 0;
    ssize_t r;
    while (got < sizeof said - 1 && (r = read(fds[0], said + got, sizeof said - 1 - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
          "joined tensors bound apart: bind() should abort (status %d)", status);
    CHECK(strstr(said, joined) && strstr(said, "bound apart"), "joined tensors bound apart: the line names %s: %s",
          joined, said);
}

/* a parameter by its fla name; the test stops when it is missing */
static const float *P(const test_model *t, const char *fmt, ...)
{
    char name[FLAME_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < t->n_params; i++)
        if (strcmp(t->spec[i]->name, name) == 0)
            return t->w[i];
    fprintf(stderr, "FAIL: no parameter %s\n", name);
    exit(1);
}

/* ==================================================================== naive building blocks, in double */

/* out[n,N] = x[n,K] · Wᵀ (+ b) */
static double *linear(const double *x, int n, int K, const float *W, int N, const float *b)
{
    double *out = malloc((size_t)n * N * sizeof *out);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < N; j++) {
            double acc = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++)
                acc += x[(size_t)i * K + k] * W[(size_t)j * K + k];
            out[(size_t)i * N + j] = acc;
        }
    return out;
}

/* rows of C: (x − mean) / sqrt(var + eps) · w + b */
static inline double *layer_norm(const double *x, int rows, int C, const float *w, const float *b, double eps)
{
    double *out = malloc((size_t)rows * C * sizeof *out);
    for (int i = 0; i < rows; i++) {
        const double *r = x + (size_t)i * C;
        double mean = 0, var = 0;
        for (int j = 0; j < C; j++)
            mean += r[j] / C;
        for (int j = 0; j < C; j++)
            var += (r[j] - mean) * (r[j] - mean) / C;
        for (int j = 0; j < C; j++)
            out[(size_t)i * C + j] = (r[j] - mean) / sqrt(var + eps) * w[j] + b[j];
    }
    return out;
}

/* the first token of token i's sequence */
static inline int seq_start(const test_model *t, int i)
{
    if (!t->cu)
        return i - i % t->T;
    int s = 0;
    while (t->cu[s + 1] <= i)
        s++;
    return t->cu[s];
}

/* rows of C: x / sqrt(mean(x²) + eps) · w */
static inline double *rms_norm(const double *x, int rows, int C, const float *w, double eps)
{
    double *out = malloc((size_t)rows * C * sizeof *out);
    for (int i = 0; i < rows; i++) {
        double ms = 0;
        for (int j = 0; j < C; j++)
            ms += x[(size_t)i * C + j] * x[(size_t)i * C + j];
        double r = 1.0 / sqrt(ms / C + eps);
        for (int j = 0; j < C; j++)
            out[(size_t)i * C + j] = x[(size_t)i * C + j] * r * w[j];
    }
    return out;
}

static double plugin_loss(void *ctx)
{
    test_model *t = ctx;
    return t->p->forward(t->model, &t->batch, NULL);
}

/* NaN over the part of the arena's scratch that the logits leave free, as a
 * forward leaves it for its backward: by the scratch's contract (lm_parts.h)
 * no layer's backward reads there anything its forward wrote, so the
 * gradients must not change. Every plugin's model begins with its lm_model. */
static void spoil_scratch(const test_model *t)
{
    const lm_model *b = t->model;
    const lm_carver *cv = &b->layout;
    if (cv->scratch_used > cv->logits_bytes)
        memset(cv->base + cv->scratch_at + cv->logits_bytes, 0xff, cv->scratch_used - cv->logits_bytes);
}

/* analytic gradients, by one forward and backward into zeroed grads */
static void analytic_grads(test_model *t)
{
    for (int i = 0; i < t->n_params; i++)
        memset(t->g[i], 0, t->numel[i] * sizeof(float));
    t->p->forward(t->model, &t->batch, NULL);
    spoil_scratch(t);
    t->p->backward(t->model);
}

/* Central differences of the fp32 loss, D(h) = (L(w+h) − L(w−h)) / 2h, taken at
 * FD_H and 2·FD_H and extrapolated (Richardson): (4·D(h) − D(2h)) / 3 cancels
 * the h² error term. The fp32 loss carries rounding noise of about 1e-7·loss,
 * which bounds h from below (noise/h); the model's curvature (weights of std
 * 0.3 make it quite nonlinear) bounds it from above, hence the extrapolation.
 * A tensor passes when
 *     ‖analytic − numeric‖ ≤ FD_TOL·‖numeric‖ + FD_FLOOR·sqrt(values checked),
 * the floor being that noise (it matters for weak gradients such as GLA's
 * gk_proj under normalizer 16). The worst relative errors are a few 1e-3;
 * dropping one term of a backward gives 0.1 or more (checked by hand). A
 * second backward must add the same gradients again. */
#define FD_H 3e-3f
#define FD_TOL 1e-2
#ifndef FD_FLOOR /* a test whose losses are larger (noisier) sets its own */
#define FD_FLOOR 5e-5
#endif
#define FD_SAMPLE 20

static void check_grads(const char *name, test_model *t)
{
    analytic_grads(t);
    double worst = 0;
    const char *worst_name = "";
    for (int p = 0; p < t->n_params; p++) {
        size_t n = t->numel[p], k = n <= 64 ? n : FD_SAMPLE;
        double num2 = 0, den2 = 0;
        for (size_t s = 0; s < k; s++) {
            size_t i = n <= 64 ? s : (size_t)(testing_uniform() * n) % n;
            double numeric = testing_richardson(&t->w[p][i], FD_H, plugin_loss, t);
            double d = t->g[p][i] - numeric;
            num2 += d * d, den2 += numeric * numeric;
        }
        double err = sqrt(num2), ref = sqrt(den2), rel = err / (ref + 1e-30);
        double floor = FD_FLOOR * sqrt((double)k);
        CHECK(err <= FD_TOL * ref + floor && ref > 0, "%s: gradient of %s: relative error %.3g (|numeric| %.3g)", name,
              t->spec[p]->name, rel, ref);
        if (rel > worst)
            worst = rel, worst_name = t->spec[p]->name;
    }
    printf("%s: worst gradient relative error %.2e (%s)\n", name, worst, worst_name);

    /* a second backward adds the same again: scratch buffers start from zero each time */
    analytic_grads(t);
    float **first = malloc(t->n_params * sizeof *first);
    for (int p = 0; p < t->n_params; p++) {
        first[p] = malloc(t->numel[p] * sizeof(float));
        memcpy(first[p], t->g[p], t->numel[p] * sizeof(float));
    }
    spoil_scratch(t);
    t->p->backward(t->model);
    for (int p = 0; p < t->n_params; p++) {
        for (size_t i = 0; i < t->numel[p]; i++)
            first[p][i] *= 2.0f;
        double e = testing_rel_error(t->g[p], first[p], t->numel[p]);
        CHECK(e < 1e-6, "%s: second backward of %s: rel error %.3g from twice the first", name,
              t->spec[p]->name, e);
        free(first[p]);
    }
    free(first);
}

/* ==================================================================== the naive model around the mixer */

/* one layer's token mixer (attention, recurrence ...) of the naive model: h += mixer(norm(h)) */
typedef void (*naive_mixer_fn)(const test_model *t, double *h, int l);

/* the model's norm of rows of D: the parameters "<name>.weight" (and a LayerNorm's ".bias") */
static double *naive_norm(const test_model *t, const double *x, int rows, const char *name)
{
    char w[FLAME_NAME_MAX];
    snprintf(w, sizeof w, "%s.weight", name);
#ifdef LM_GPT
    char b[FLAME_NAME_MAX];
    snprintf(b, sizeof b, "%s.bias", name);
    return layer_norm(x, rows, t->c.D, P(t, "%s", w), P(t, "%s", b), t->c.eps);
#else
    return rms_norm(x, rows, t->c.D, P(t, "%s", w), t->c.eps);
#endif
}

#ifdef LM_GPT
/* h += fc2(gelu(fc1(m))), m = norm2(h); GELU's tanh form */
static void naive_mlp(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D;
    char norm[FLAME_NAME_MAX];
    snprintf(norm, sizeof norm, LM_ROOT ".layers.%d.norm2", l);
    double *m = naive_norm(t, h, n, norm);
    double *u = linear(m, n, D, P(t, LM_ROOT ".layers.%d.mlp.fc1.weight", l), c->I,
                       P(t, LM_ROOT ".layers.%d.mlp.fc1.bias", l));
    for (size_t i = 0; i < (size_t)n * c->I; i++)
        u[i] = 0.5 * u[i] * (1.0 + tanh(sqrt(2.0 / M_PI) * (u[i] + 0.044715 * u[i] * u[i] * u[i])));
    double *out = linear(u, n, c->I, P(t, LM_ROOT ".layers.%d.mlp.fc2.weight", l), D,
                         P(t, LM_ROOT ".layers.%d.mlp.fc2.bias", l));
    for (size_t i = 0; i < (size_t)n * D; i++)
        h[i] += out[i];
    free(m), free(u), free(out);
}
#else
/* h += down(silu(gate(m)) · up(m)), m = rms_norm(h) */
static void naive_mlp(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D;
#ifdef NAIVE_MLP_FC1 /* y, gate = fc1(m).chunk(2): the first I rows make up, the last I the gate */
    double *m = rms_norm(h, n, D, P(t, LM_ROOT ".layers.%d.norm2.weight", l), c->eps);
    const float *fc1 = P(t, LM_ROOT ".layers.%d.mlp.fc1.weight", l), *down = P(t, LM_ROOT ".layers.%d.mlp.fc2.weight", l);
    double *gate = linear(m, n, D, fc1 + (size_t)c->I * D, c->I, NULL);
    double *up = linear(m, n, D, fc1, c->I, NULL);
#else
    double *m = rms_norm(h, n, D, P(t, "model.layers.%d.mlp_norm.weight", l), c->eps);
    const float *down = P(t, "model.layers.%d.mlp.down_proj.weight", l);
    double *gate = linear(m, n, D, P(t, "model.layers.%d.mlp.gate_proj.weight", l), c->I, NULL);
    double *up = linear(m, n, D, P(t, "model.layers.%d.mlp.up_proj.weight", l), c->I, NULL);
#endif
    for (size_t i = 0; i < (size_t)n * c->I; i++)
        gate[i] = gate[i] / (1.0 + exp(-gate[i])) * up[i];
    double *out = linear(gate, n, c->I, down, D, NULL);
    for (size_t i = 0; i < (size_t)n * D; i++)
        h[i] += out[i];
    free(m), free(gate), free(up), free(out);
}
#endif

/* The naive model's mean loss over counted targets; its logits [n,V] into ref. */
static double naive_loss(const test_model *t, naive_mixer_fn mixer, double *ref)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D;
    const float *emb = P(t, LM_ROOT "." LM_EMBEDDINGS ".weight");
    double *h = malloc((size_t)n * D * sizeof *h);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < D; j++)
            h[(size_t)i * D + j] = emb[(size_t)t->tokens[i] * D + j];
#ifdef LM_GPT
    if (c->positions) {
        const float *pos = P(t, LM_ROOT ".embeddings.position_embeddings.weight");
        for (int i = 0; i < n; i++)
            for (int j = 0; j < D; j++)
                h[(size_t)i * D + j] += pos[(size_t)(i - seq_start(t, i)) * D + j];
    }
#endif
    for (int l = 0; l < c->L; l++) {
        mixer(t, h, l);
        if (c->I)
            naive_mlp(t, h, l);
    }
    double *x = naive_norm(t, h, n, LM_ROOT "." LM_FINAL_NORM);
    double *logits = linear(x, n, D, c->tie ? emb : P(t, "lm_head.weight"), c->V, NULL);
    memcpy(ref, logits, (size_t)n * c->V * sizeof *ref);
    double sum = 0;
    int counted = 0;
    for (int i = 0; i < n; i++) {
        if (t->targets[i] < 0)
            continue;
        const double *r = logits + (size_t)i * c->V;
        double mx = r[0], z = 0;
        for (int j = 1; j < c->V; j++)
            mx = fmax(mx, r[j]);
        for (int j = 0; j < c->V; j++)
            z += exp(r[j] - mx);
        sum += mx + log(z) - r[t->targets[i]];
        counted++;
    }
    free(h), free(x), free(logits);
    return sum / counted;
}

/* ==================================================================== checks */

/* the plugin's loss and logits against the naive model's */
static void check_forward(const char *name, test_model *t, naive_mixer_fn mixer)
{
    size_t nv = (size_t)t->B * t->T * t->c.V;
    float *logits = malloc(nv * sizeof *logits);
    double *ref = malloc(nv * sizeof *ref);
    double loss_ref = naive_loss(t, mixer, ref);
    float loss = t->p->forward(t->model, &t->batch, logits);
    double num = 0, den = 0;
    for (size_t i = 0; i < nv; i++)
        num += (logits[i] - ref[i]) * (logits[i] - ref[i]), den += ref[i] * ref[i];
    printf("%s: loss %.7f, naive %.7f; logits relative error %.2e\n", name, loss, loss_ref, sqrt(num / den));
    CHECK(fabs(loss - loss_ref) < 1e-5 * fabs(loss_ref), "%s: loss %.8g, naive %.8g", name, loss, loss_ref);
    CHECK(sqrt(num / den) < 1e-5, "%s: logits rel error %.3g", name, sqrt(num / den));
    free(logits), free(ref);
}

/* one expected parameter of a layer: its name after "model.layers.N." */
typedef struct expected_param {
    const char *name;
    int64_t rows, cols; /* cols 0: a vector */
    int init, decay;
    int64_t depth;      /* a third dimension, or 0 */
} expected_param;

/* fla's parameter list: the embedding, each layer's per_layer parameters, the
 * final norm, then lm_head unless tied; matrices of init std 0.02 */
static inline void check_param_list(const test_model *t, const expected_param *layer, int per_layer)
{
    const dims *c = &t->c;
    int expected = 2 + per_layer * c->L + (c->tie ? 0 : 1);
    CHECK(t->n_params == expected, "%d parameters, expected %d", t->n_params, expected);
    if (t->n_params != expected)
        return;
    for (int i = 0; i < t->n_params; i++) {
        char name[FLAME_NAME_MAX];
        expected_param e;
        if (i == 0) {
            e = (expected_param){LM_ROOT "." LM_EMBEDDINGS ".weight", c->V, c->D, FLAME_INIT_NORMAL, 0, 0};
            snprintf(name, sizeof name, "%s", e.name);
        } else if (i <= per_layer * c->L) {
            e = layer[(i - 1) % per_layer];
            snprintf(name, sizeof name, LM_ROOT ".layers.%d.%s", (i - 1) / per_layer, e.name);
        } else if (i == per_layer * c->L + 1) {
            e = (expected_param){LM_ROOT "." LM_FINAL_NORM ".weight", c->D, 0, FLAME_INIT_ONES, 0, 0};
            snprintf(name, sizeof name, "%s", e.name);
        } else {
            e = (expected_param){"lm_head.weight", c->V, c->D, FLAME_INIT_NORMAL, 1, 0};
            snprintf(name, sizeof name, "%s", e.name);
        }
        const flame_param_spec *s = t->spec[i];
        int shape_ok = s->ndim == (e.depth ? 3 : e.cols ? 2 : 1) && s->shape[0] == e.rows &&
                       (!e.cols || s->shape[1] == e.cols) && (!e.depth || s->shape[2] == e.depth);
        CHECK(strcmp(s->name, name) == 0 && shape_ok && (int)s->init == e.init && s->weight_decay == e.decay &&
                  (e.init != FLAME_INIT_NORMAL || fabsf(s->init_std - 0.02f) < 1e-9f),
              "parameter %d: got %s [%lld, %lld] init %d decay %d, expected %s [%lld, %lld] init %d decay %d", i,
              s->name, (long long)s->shape[0], (long long)(s->ndim > 1 ? s->shape[1] : 0), (int)s->init,
              s->weight_decay, name, (long long)e.rows, (long long)e.cols, e.init, e.decay);
    }
}

/* create() refuses cfg with one line naming needle */
/* One case: the model from cfg, its parameter list checked by check_params,
 * a batch of B×T (cu: varlen offsets or NULL), its loss and logits against
 * the naive forward with mixer, and with grads its gradients against finite
 * differences. */
typedef void (*param_check_fn)(const test_model *t);
static void run_model_case(const char *name, const kv_config *cfg, const dims *c,
                           param_check_fn check_params, naive_mixer_fn mixer, int B, int T,
                           const int32_t *cu, int n_seqs, int grads)
{
    test_model t;
    memset(&t, 0, sizeof t);
    if (model_open(&t, cfg, c) == 0) {
        check_params(&t);
        batch_open(&t, B, T, cu, n_seqs);
        check_forward(name, &t, mixer);
        if (grads)
            check_grads(name, &t);
    }
    model_close(&t);
}

/* a batch larger than the model reserved gives NaN, not a crash */
static void check_oversized_batch(const kv_config *cfg, const dims *c)
{
    test_model t;
    memset(&t, 0, sizeof t);
    if (model_open(&t, cfg, c) == 0) {
        batch_open(&t, 1, 4, NULL, 0);
        t.batch.T = 5;
        CHECK(isnan(t.p->forward(t.model, &t.batch, NULL)), "oversized batch accepted");
    }
    model_close(&t);
}

/* the plugin's model of cfg on the CPU, or NULL after a failed check naming what */
static void *create_checked(const kv_config *cfg, const char *what)
{
    char err[256] = "";
    flame_model_config v = view_of(cfg);
    void *m = flame_plugin_entry()->create(&v, &flame_cpu_ops, err, sizeof err);
    CHECK(m != NULL, "%s: %s", what, err);
    return m;
}

/* what every 340M of fla-org/flame's configs has: the MLP's gate (parameter
 * gate_index) of 2816 = 256·ceil(int(1024·4·2/3)/256) rows over 1024, and 32000 tokens */
static inline void check_340M_mlp(void *m, int gate_index)
{
    const flame_plugin *p = flame_plugin_entry();
    const flame_param_spec *gate = p->param(m, gate_index);
    CHECK(strcmp(gate->name, "model.layers.0.mlp.gate_proj.weight") == 0 && gate->shape[0] == 2816 &&
              gate->shape[1] == 1024,
          "340M: %s [%lld, %lld]", gate->name, (long long)gate->shape[0], (long long)gate->shape[1]);
    CHECK(p->vocab_size(m) == 32000, "340M: vocab %lld", (long long)p->vocab_size(m));
}

/* what the vtable says of itself: this ABI, its name, its decode entries, its own
 * Hugging Face format, each option declared once */
static inline void check_plugin_header(const char *name)
{
    const flame_plugin *p = flame_plugin_entry();
    CHECK(p->abi_version == FLAME_ABI_VERSION && p->size == sizeof(flame_plugin) &&
          strcmp(p->name, name) == 0, "plugin header");
    CHECK(p->decode_state_bytes == NULL && p->decode_step == NULL, "5.0's decode entries unused");
    CHECK(!p->decode_state_size == !p->decode_forward, "decoding: both entries or neither");
    /* fla names its model types as flame names its plugins */
    CHECK(p->n_hf_formats >= 1 && strcmp(p->hf_formats[0].model_type, name) == 0 &&
          p->hf_formats[0].n_tensors == 0, "its own Hugging Face format first");
    for (int i = 0; i < p->n_options; i++)
        for (int j = i + 1; j < p->n_options; j++)
            CHECK(strcmp(p->options[i].key, p->options[j].key) != 0, "option %s twice", p->options[i].key);
}

/* one setting each, over base, that create() refuses with a line naming needle */
typedef struct refused_setting {
    const char *key, *value, *needle;
} refused_setting;

static void expect_refusal(const kv_config *cfg, const flame_ops *ops, const char *needle);

static void expect_refusals(const kv_config *base, const refused_setting *refused, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kv_config cfg = *base;
        kv_set(&cfg, refused[i].key, refused[i].value);
        expect_refusal(&cfg, &flame_cpu_ops, refused[i].needle);
    }
}

static void expect_refusal(const kv_config *cfg, const flame_ops *ops, const char *needle)
{
    char err[256] = "";
    flame_model_config v = view_of(cfg);
    void *m = flame_plugin_entry()->create(&v, ops, err, sizeof err);
    CHECK(m == NULL && strstr(err, needle) != NULL && strchr(err, '\n') == NULL,
          "expected a refusal naming '%s', got %s '%s'", needle, m ? "a model" : "NULL", err);
    if (m)
        flame_plugin_entry()->destroy(m);
}

/* an op table of a core older than ABI 5.14 (ending before lm_head_loss), and
 * one with scale_rows but no lm_head_loss: a model built on lm_model refuses
 * either in one line, where it would call through a missing entry */
static void expect_old_core_refused(const kv_config *base)
{
    flame_ops old = flame_cpu_ops;
    old.size = offsetof(flame_ops, lm_head_loss);
    expect_refusal(base, &old, "the cpu op table lacks the LM head's loss (a core older than ABI 5.14)");
    flame_ops partial = flame_cpu_ops;
    partial.lm_head_loss = NULL;
    expect_refusal(base, &partial, "a core older than ABI 5.14");
}

#endif
