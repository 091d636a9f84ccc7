/* Tests of the whole Mamba2 plugin at a tiny size, through flame_plugin_entry()
 * and the real CPU op table, with a [model] section and parameters made here:
 *  - the parameter list: fla's names (backbone.…, norm_f), shapes (the
 *    convolution's [C, 1, K]), order, init rules, weight decay, with and
 *    without the convolution's bias;
 *  - the loss and logits against a naive forward written here in double (its
 *    own matmuls, norms, convolution, softplus, step-by-step scan, gated norm
 *    and cross-entropy);
 *  - the gradient of every parameter tensor against central finite differences
 *    of the plugin's fp32 loss; a second backward adds the same again;
 *  - tied embeddings, groups of heads, cu_seqlens; the logits of a row of
 *    three documents equal those of each document run alone;
 *  - init_values: A_log, dt_bias and out_proj drawn as fla draws them;
 *  - create() refusing what is not implemented, naming the key;
 *  - configs/mamba2-340M.ini and mamba2-1B.ini resolving every [model] option
 *    to the value fla-org/flame's mamba2_340M.json and mamba2_1B.json give
 *    (their older key names included), through the core's loaders. */
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

/* ==================================================================== the model under test */

typedef struct dims {
    int D, L, I, V; /* I = 0: Mamba2 has no MLP */
    int H, P, N, G, K;
    double eps;
    int tie, conv_bias;
} dims;

#define LM_ROOT "backbone"
#define LM_FINAL_NORM "norm_f"
/* The finite differences' noise floor: the fp32 loss (up to 5.2 here, tied)
 * carries about 1e-7 of it as rounding noise, noise/FD_H ≈ 1.7e-4 a value;
 * A_log's and dt_bias's gradients (about 3e-3 over 4 heads) sit near it: their
 * error falls from 4 % to 1.5 % as the step grows from 3e-3 to 1e-2, noise not
 * a wrong term (the scan's and Δ's own gradients are checked tightly in
 * test_mamba2_kernels). */
#define FD_FLOOR 1.5e-4
#include "plugin_testing.h"
#include "preset_testing.h"
#include "lm_parts.h"

/* ==================================================================== the naive forward, in double */

static double softplus(double v) { return v > 20.0 ? v : log1p(exp(v)); }
static double silu(double v) { return v / (1.0 + exp(-v)); }

/* the document of token i: cu's offsets, or one per row */
static void document_of(const test_model *t, int i, int *begin)
{
    if (!t->cu) {
        *begin = i / t->T * t->T;
        return;
    }
    int s = 0;
    while (t->cu[s + 1] <= i)
        s++;
    *begin = t->cu[s];
}

/* silu(causal depthwise conv of x [n,C] channels c0.. with weight [·,K] and bias), per document */
static void naive_conv(const test_model *t, double *x, int n, int C, const float *w, const float *bias,
                       int c0)
{
    int K = t->c.K;
    double *out = malloc((size_t)n * C * sizeof *out);
    for (int i = 0; i < n; i++) {
        int begin;
        document_of(t, i, &begin);
        for (int c = 0; c < C; c++) {
            double acc = bias ? bias[c0 + c] : 0.0;
            for (int j = 0; j < K; j++) {
                int src = i - (K - 1) + j;
                if (src >= begin)
                    acc += w[(size_t)(c0 + c) * K + j] * x[(size_t)src * C + c];
            }
            out[(size_t)i * C + c] = silu(acc);
        }
    }
    memcpy(x, out, (size_t)n * C * sizeof *x);
    free(out);
}

/* y [n,H,P] of the scan, token by token per document and head, plus D·x */
static void naive_scan(const test_model *t, double *y, const double *x, const double *delta,
                       const double *B, const double *C, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, H = c->H, hp = c->P, N = c->N;
    const float *A_log = P(t, "backbone.layers.%d.mixer.A_log", l), *Dw = P(t, "backbone.layers.%d.mixer.D", l);
    double *S = malloc((size_t)hp * N * sizeof *S);
    for (int h = 0; h < H; h++) {
        int g = h / (H / c->G);
        double A = -exp(A_log[h]);
        for (int i = 0; i < n; i++) {
            int begin;
            document_of(t, i, &begin);
            if (i == begin)
                memset(S, 0, (size_t)hp * N * sizeof *S);
            double dt = delta[(size_t)i * H + h], decay = exp(dt * A);
            const double *xi = x + ((size_t)i * H + h) * hp, *Bi = B + ((size_t)i * c->G + g) * N,
                         *Ci = C + ((size_t)i * c->G + g) * N;
            for (int p = 0; p < hp; p++) {
                double acc = 0;
                for (int k = 0; k < N; k++) {
                    double *s = &S[(size_t)p * N + k];
                    *s = decay * *s + dt * xi[p] * Bi[k];
                    acc += *s * Ci[k];
                }
                y[((size_t)i * H + h) * hp + p] = acc + Dw[h] * xi[p];
            }
        }
    }
    free(S);
}

/* h += out_proj(gated_norm(scan(...))) of layer l applied to h */
static void naive_mixer(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D, E = c->H * c->P, bc = c->G * c->N, H = c->H;
    int widths[5] = {E, E, bc, bc, H}, proj = 2 * E + 2 * bc + H;
    double *a = rms_norm(h, n, D, P(t, "backbone.layers.%d.norm.weight", l), c->eps);
    double *all = linear(a, n, D, P(t, "backbone.layers.%d.mixer.in_proj.weight", l), proj, NULL);
    double *part[5];
    for (int s = 0, start = 0; s < 5; start += widths[s], s++) {
        part[s] = malloc((size_t)n * widths[s] * sizeof(double));
        for (int i = 0; i < n; i++)
            memcpy(part[s] + (size_t)i * widths[s], all + (size_t)i * proj + start, widths[s] * sizeof(double));
    }
    const float *cw = P(t, "backbone.layers.%d.mixer.conv1d.weight", l);
    const float *cb = c->conv_bias ? P(t, "backbone.layers.%d.mixer.conv1d.bias", l) : NULL;
    naive_conv(t, part[1], n, E, cw, cb, 0);
    naive_conv(t, part[2], n, bc, cw, cb, E);
    naive_conv(t, part[3], n, bc, cw, cb, E + bc);
    const float *dt_bias = P(t, "backbone.layers.%d.mixer.dt_bias", l);
    for (int i = 0; i < n * H; i++)
        part[4][i] = softplus(part[4][i] + dt_bias[i % H]);
    double *y = malloc((size_t)n * E * sizeof *y);
    naive_scan(t, y, part[1], part[4], part[2], part[3], l);
    const float *gw = P(t, "backbone.layers.%d.mixer.norm.weight", l);
    int group = E / c->G;
    for (int i = 0; i < n; i++)
        for (int g = 0; g < c->G; g++) {
            double *row = y + (size_t)i * E + g * group, ms = 0;
            const double *z = part[0] + (size_t)i * E + g * group;
            for (int j = 0; j < group; j++) {
                row[j] *= silu(z[j]);
                ms += row[j] * row[j];
            }
            double r = 1.0 / sqrt(ms / group + c->eps);
            for (int j = 0; j < group; j++)
                row[j] *= r * gw[g * group + j];
        }
    double *out = linear(y, n, E, P(t, "backbone.layers.%d.mixer.out_proj.weight", l), D, NULL);
    for (size_t i = 0; i < (size_t)n * D; i++)
        h[i] += out[i];
    for (int s = 0; s < 5; s++)
        free(part[s]);
    free(a), free(all), free(y), free(out);
}

/* ==================================================================== checks */

/* fla's parameter list for these dims, in order */
static void check_mamba2_params(const test_model *t)
{
    const dims *c = &t->c;
    int E = c->H * c->P, conv_dim = E + 2 * c->G * c->N, proj = E + conv_dim + c->H;
    const expected_param with_bias[] = {
        {"norm.weight", c->D, 0, FLAME_INIT_ONES, 0, 0},
        {"mixer.conv1d.weight", conv_dim, 1, FLAME_INIT_NORMAL, 1, c->K},
        {"mixer.conv1d.bias", conv_dim, 0, FLAME_INIT_ZEROS, 0, 0},
        {"mixer.in_proj.weight", proj, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"mixer.dt_bias", c->H, 0, FLAME_INIT_PLUGIN, 0, 0},
        {"mixer.A_log", c->H, 0, FLAME_INIT_PLUGIN, 0, 0},
        {"mixer.norm.weight", E, 0, FLAME_INIT_ONES, 0, 0},
        {"mixer.D", c->H, 0, FLAME_INIT_ONES, 0, 0},
        {"mixer.out_proj.weight", c->D, E, FLAME_INIT_PLUGIN, 1, 0},
    };
    enum { N = sizeof with_bias / sizeof with_bias[0] };
    expected_param layer[N];
    int per_layer = 0;
    for (int i = 0; i < N; i++)
        if (c->conv_bias || strcmp(with_bias[i].name, "mixer.conv1d.bias") != 0)
            layer[per_layer++] = with_bias[i];
    check_param_list(t, layer, per_layer);
}

/* the logits of a row holding three documents equal those of each document
 * run alone: nothing crosses a document start (state nor convolution window) */
static void check_documents_alone(const kv_config *cfg, const dims *c)
{
    static const int32_t cu[] = {0, 5, 6, 17};
    test_model whole, alone;
    memset(&whole, 0, sizeof whole);
    if (model_open(&whole, cfg, c) != 0)
        return;
    batch_open(&whole, 1, 17, cu, 3);
    float *all = malloc((size_t)17 * c->V * sizeof *all);
    whole.p->forward(whole.model, &whole.batch, all);
    double worst = 0;
    for (int s = 0; s < 3; s++) {
        int T = cu[s + 1] - cu[s];
        memset(&alone, 0, sizeof alone);
        if (model_open(&alone, cfg, c) != 0)
            break;
        for (int i = 0; i < alone.n_params; i++) /* the same weights */
            memcpy(alone.w[i], whole.w[i], alone.numel[i] * sizeof(float));
        batch_open(&alone, 1, T, NULL, 0);
        for (int i = 0; i < T; i++) /* the whole row's tokens of this document */
            alone.tokens[i] = whole.tokens[cu[s] + i], alone.targets[i] = whole.targets[cu[s] + i];
        char err[256] = "";
        int rc = batch_stage_load(&alone.stage, &flame_cpu_ops, alone.tokens, alone.targets, NULL, 0, c->V,
                                  &alone.batch, err, sizeof err);
        CHECK(rc == 0, "batch: %s", err);
        float *one = malloc((size_t)T * c->V * sizeof *one);
        alone.p->forward(alone.model, &alone.batch, one);
        double e = testing_rel_error(one, all + (size_t)cu[s] * c->V, (size_t)T * c->V);
        worst = e > worst ? e : worst;
        free(one);
        model_close(&alone);
    }
    printf("documents alone: worst logits relative error %.2e against the row of three\n", worst);
    CHECK(worst < 1e-6, "a document's logits depend on the one before it (rel error %.3g)", worst);
    free(all);
    model_close(&whole);
}

static double uniform_draw(void *state)
{
    (void)state;
    return testing_uniform();
}

/* init_values: each rule's values as fla draws them */
static void check_init_values(const kv_config *cfg, const dims *c)
{
    const flame_plugin *p = flame_plugin_entry();
    void *m = create_checked(cfg, "init");
    if (!m)
        return;
    CHECK(p->init_values != NULL, "no init_values");
    int E = c->H * c->P;
    for (int i = 0; i < p->n_params(m) && p->init_values; i++) {
        const flame_param_spec *s = p->param(m, i);
        if (s->init != FLAME_INIT_PLUGIN)
            continue;
        size_t n = numel_of(s);
        float *v = malloc(n * sizeof *v);
        p->init_values(m, i, v, n, uniform_draw, NULL);
        double lo = INFINITY, hi = -INFINITY;
        for (size_t j = 0; j < n; j++)
            lo = fmin(lo, v[j]), hi = fmax(hi, v[j]);
        if (strstr(s->name, "A_log")) /* log U(1, 16) */
            CHECK(lo >= 0 && hi <= log(16.0) + 1e-6 && hi > lo, "%s in [%g, %g]", s->name, lo, hi);
        else if (strstr(s->name, "dt_bias")) /* softplus⁻¹ of [1e-3, 0.1]: softplus of it back in range */
            CHECK(softplus(lo) >= 1e-3 * (1 - 1e-5) && softplus(hi) <= 0.1 * (1 + 1e-5) && hi > lo,
                  "%s: softplus in [%g, %g]", s->name, softplus(lo), softplus(hi));
        else if (strstr(s->name, "out_proj")) /* U(±1/sqrt(E))/sqrt(L) */
            CHECK(-lo <= 1 / sqrt((double)E * c->L) && hi <= 1 / sqrt((double)E * c->L) && hi > 0 && lo < 0,
                  "%s in [%g, %g]", s->name, lo, hi);
        else
            CHECK(0, "%s: an unexpected FLAME_INIT_PLUGIN parameter", s->name);
        free(v);
    }
    p->destroy(m);
}

/* ==================================================================== cases */

/* The gradient-checked models use norm_eps = 0.1, as GLA's test does, to keep
 * the norms smooth at the scale of the finite-difference step. */
static kv_config tiny_config(const dims *c)
{
    kv_config cfg = lm_config_of(c);
    kv_set_int(&cfg, "head_dim", c->P);
    kv_set_int(&cfg, "expand", c->H * c->P / c->D);
    kv_set_int(&cfg, "state_size", c->N);
    kv_set_int(&cfg, "n_groups", c->G);
    kv_set_int(&cfg, "conv_kernel", c->K);
    kv_set(&cfg, "use_conv_bias", c->conv_bias ? "true" : "false");
    kv_set(&cfg, "residual_in_fp32", "true"); /* keys of fla-org/flame's configs */
    kv_set(&cfg, "chunk_size", "256");
    return cfg;
}

static void run_case(const char *name, const dims *c, int B, int T, const int32_t *cu, int n_seqs,
                     int grads)
{
    kv_config cfg = tiny_config(c);
    run_model_case(name, &cfg, c, check_mamba2_params, naive_mixer, B, T, cu, n_seqs, grads);
}

static void test_cases(void)
{
    dims c = {.D = 8, .L = 2, .V = 11, .H = 4, .P = 4, .N = 3, .G = 1, .K = 4, .eps = 0.1, .conv_bias = 1};
    run_case("B=2 T=9", &c, 2, 9, NULL, 0, 1);
    dims g = c;
    g.G = 2, g.tie = 1, g.conv_bias = 0, g.K = 3;
    run_case("2 groups, tied, no conv bias, K=3", &g, 2, 9, NULL, 0, 1);
    /* three documents in one row, one of them a single token */
    static const int32_t cu[] = {0, 4, 5, 13};
    run_case("cu_seqlens", &c, 1, 13, cu, 3, 1);
    /* fla's norm_eps, longer than the scan's chunk of checkpoints */
    dims fla = c;
    fla.eps = 1e-5, fla.N = 8;
    run_case("norm_eps 1e-5, T=150", &fla, 1, 150, NULL, 0, 0);
    kv_config cfg = tiny_config(&c);
    check_documents_alone(&cfg, &c);
    check_init_values(&cfg, &c);
}

/* ==================================================================== create() */

static void test_create(void)
{
    const flame_plugin *p = flame_plugin_entry();
    check_plugin_header("mamba2");
    dims c = {.D = 8, .L = 2, .V = 11, .H = 4, .P = 4, .N = 3, .G = 1, .K = 4, .eps = 0.1, .conv_bias = 1};
    const kv_config base = tiny_config(&c);
    static const refused_setting refused[] = {
        {"use_bias", "true", "use_bias"},
        {"rmsnorm", "false", "rmsnorm"},
        {"norm_before_gate", "true", "norm_before_gate"},
        {"D_has_hdim", "true", "D_has_hdim"},
        {"num_heads", "3", "num_heads"},
        {"head_dim", "5", "head_dim"},     /* expand·hidden_size 16 % 5 */
        {"n_groups", "3", "n_groups"},     /* 4 heads % 3 */
        {"conv_kernel", "9", "conv_kernel"},
        {"dt_min", "0.5", "dt_max"},       /* above dt_max 0.1 */
        {"dt_init_floor", "0", "dt_init_floor"},
        {"hidden_act", "gelu", "hidden_act"},
        {"state_size", "0", "state_size"},
        {"time_step_min", "0.5", "dt_max"},   /* the older name of dt_min, read as it */
        {"rms_norm", "false", "rms_norm"},
    };
    expect_refusals(&base, refused, sizeof refused / sizeof refused[0]);
    {
        flame_ops other = flame_cpu_ops;
        other.backend = "rocm";
        expect_refusal(&base, &other, "no Mamba2 kernels for backend rocm");
        expect_old_core_refused(&base);
    }
    {   /* fla-org/flame's mamba2_340M.json: defaults fill the rest */
        kv_config cfg = {.n = 0};
        kv_set(&cfg, "hidden_size", "1024");
        kv_set(&cfg, "num_hidden_layers", "48");
        void *m = create_checked(&cfg, "340M");
        if (m) {
            CHECK(p->n_params(m) == 2 + 48 * 9 + 1, "340M: %d parameters", p->n_params(m));
            const flame_param_spec *in = p->param(m, 4);
            /* z, x: 2048 each; B, C: 128 each; Δ: 32 heads */
            CHECK(strcmp(in->name, "backbone.layers.0.mixer.in_proj.weight") == 0 && in->shape[0] == 4384 &&
                      in->shape[1] == 1024,
                  "340M: %s [%lld, %lld]", in->name, (long long)in->shape[0], (long long)in->shape[1]);
            CHECK(p->vocab_size(m) == 32000, "340M: vocab %lld", (long long)p->vocab_size(m));
            p->destroy(m);
        }
    }
    {   /* a name and its older one that disagree */
        kv_config cfg = base;
        kv_set(&cfg, "dt_min", "0.002");
        kv_set(&cfg, "time_step_min", "0.003");
        expect_refusal(&cfg, &flame_cpu_ops, "dt_min = 0.002 and its older name time_step_min = 0.003 differ");
    }
    check_oversized_batch(&base, &c);
}

/* ==================================================================== the presets */

/* fla-org/flame's configs/mamba2_340M.json (mamba2_1B.json: hidden_size 2048),
 * with the older names fla renamed (time_step_*, rms_norm) */
static void write_fla_json(const char *path, int hidden)
{
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"bos_token_id\": 1, \"chunk_size\": 256, \"conv_kernel\": 4, \"eos_token_id\": 2, "
               "\"expand\": 2, \"fuse_cross_entropy\": true, \"fuse_norm\": true, \"head_dim\": 64, "
               "\"hidden_act\": \"silu\", \"hidden_size\": %d, \"initializer_range\": 0.02, "
               "\"norm_eps\": 1e-05, \"model_type\": \"mamba2\", \"n_groups\": 1, "
               "\"num_hidden_layers\": 48, \"pad_token_id\": 0, \"rescale_prenorm_residual\": true, "
               "\"residual_in_fp32\": true, \"rms_norm\": true, \"state_size\": 128, "
               "\"tie_word_embeddings\": false, \"time_step_floor\": 0.0001, \"time_step_max\": 0.1, "
               "\"time_step_min\": 0.001, \"time_step_rank\": 128, \"transformers_version\": \"4.50.1\", "
               "\"use_bias\": false, \"use_cache\": true, \"use_conv_bias\": true, \"vocab_size\": 32000}\n",
            hidden);
    fclose(f);
}

static void test_presets(void)
{
    static const struct { const char *ini; int hidden; } presets[] = {
        {"mamba2-340M.ini", 1024}, {"mamba2-1B.ini", 2048}};
    char json[] = "/tmp/flame-mamba2-XXXXXX.json";
    int fd = mkstemps(json, 5);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    for (int i = 0; i < 2; i++) {
        char ini[1024];
        snprintf(ini, sizeof ini, "%s/%s", FLAME_CONFIGS_DIR, presets[i].ini);
        write_fla_json(json, presets[i].hidden);
        flame_config *a = load_model_config(ini), *b = load_model_config(json);
        if (a && b)
            check_same_options(presets[i].ini, a, b);
        if (a && b) /* the older names as the JSON has them, the new ones as the INI */
            CHECK(config_get_int(b, "model", "hidden_size") == presets[i].hidden &&
                      config_get_float(b, "model", "time_step_min") == config_get_float(a, "model", "dt_min") &&
                      config_get_float(b, "model", "time_step_floor") == config_get_float(a, "model", "dt_init_floor"),
                  "%s: fla's older key names not read", presets[i].ini);
        if (a)
            config_destroy(a);
        if (b)
            config_destroy(b);
    }
    unlink(json);
}

/* config.json as fla's Mamba2Config saves it (save_pretrained: its current key
 * names, and Python's json writing inf as the bare word Infinity) with
 * dt_limit as given */
static void write_saved_json(const char *path, const char *dt_limit)
{
    FILE *f = fopen(path, "w");
    fprintf(f, "{\n  \"A_init_range\": [\n    1,\n    16\n  ],\n  \"D_has_hdim\": false,\n"
               "  \"chunk_size\": 256,\n  \"conv_init\": null,\n  \"conv_kernel\": 4,\n"
               "  \"dt_init_floor\": 0.0001,\n  \"dt_limit\": %s,\n  \"dt_max\": 0.1,\n"
               "  \"dt_min\": 0.002,\n  \"expand\": 2,\n  \"head_dim\": 64,\n  \"hidden_size\": 1024,\n"
               "  \"model_type\": \"mamba2\",\n  \"n_groups\": 1,\n  \"norm_before_gate\": false,\n"
               "  \"num_hidden_layers\": 48,\n  \"rmsnorm\": true,\n  \"state_size\": 128,\n"
               "  \"use_conv_bias\": true,\n  \"vocab_size\": 32000\n}\n",
            dt_limit);
    fclose(f);
}

/* a folder fla saved is read: its defaults of what flame has fixed accepted,
 * any other value of them refused with the file and line */
static void test_saved_config(void)
{
    char json[] = "/tmp/flame-mamba2-XXXXXX.json";
    int fd = mkstemps(json, 5);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    write_saved_json(json, "[\n    0.0,\n    Infinity\n  ]");
    flame_config *cfg = load_model_config(json);
    if (cfg) {
        CHECK(config_get_float(cfg, "model", "dt_min") == 0.002 && config_get_int(cfg, "model", "hidden_size") == 1024,
              "fla's saved config.json not read");
        config_destroy(cfg);
    }
    write_saved_json(json, "[\n    0.0,\n    0.1\n  ]");
    const flame_plugin *p = flame_plugin_entry();
    cfg = config_create();
    config_add_section(cfg, "model", p->options, p->n_options);
    char err[512] = "", want[600];
    int rc = config_load_model_file(cfg, json, p->hf_formats, p->n_hf_formats, err, sizeof err);
    snprintf(want, sizeof want, "%s:11: dt_limit = [0.0,0.10000000000000001]: only [0.0, Infinity]", json);
    CHECK(rc != 0 && strstr(err, want), "another dt_limit: got \"%s\"", err);
    config_destroy(cfg);
    unlink(json);
}

int main(void)
{
    testing_seed(23);
    /* a chunk of 11 rows of the test's vocabulary: the LM head's chunk loop runs */
    lm_head_chunk_bytes = 484;
    test_create();
    test_presets();
    test_saved_config();
    test_cases();
    return testing_result("test_mamba2_model");
}
