/* Tests of the whole GSA plugin at a tiny size, through flame_plugin_entry()
 * and the real CPU op table, with a [model] section and parameters made here:
 *  - the parameter list: fla's names, shapes, order, init rules, weight decay,
 *    with and without the output norm's weight;
 *  - the loss and logits against a naive forward written here in double (its
 *    own matmuls, norms, token-by-token passes, softmax and cross-entropy);
 *  - the gradient of every parameter tensor against central finite differences
 *    of the plugin's fp32 loss; a second backward adds the same again;
 *  - tied embeddings, several head and slot counts, cu_seqlens;
 *  - create() refusing what is not implemented, naming the key, and taking
 *    fla-org/flame's gsa_340M.json settings;
 *  - configs/gsa-340M.ini and gsa-1B.ini resolving every [model] option to
 *    the value fla-org/flame's gsa_340M.json and gsa_1B.json give, through the
 *    core's loaders as --model.config reads them. */
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

/* ==================================================================== the model under test */

typedef struct dims {
    int D, L, H, M, I, V;
    double eps, normalizer;
    int tie, affine;
} dims;

#include "plugin_testing.h"
#include "preset_testing.h"
#include "lm_parts.h"

/* ==================================================================== the naive forward, in double */

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double swish(double x) { return x * sigmoid(x); }

/* fla's naive_recurrent_gsa (fla/ops/gsa/naive.py) per sequence and head, scale 1:
 * the slot pass hk (dk×M) gated on the slots, softmax, then the value pass hv (M×dv) */
static void two_passes(double *o, const test_model *t, const double *q, const double *k,
                       const double *v, const double *f)
{
    const dims *c = &t->c;
    int H = c->H, M = c->M, dk = c->D / H, dv = c->D / H, n_seqs = t->cu ? t->n_seqs : t->B;
    double *hk = malloc((size_t)dk * M * sizeof *hk), *hv = malloc((size_t)M * dv * sizeof *hv);
    double *ok = malloc((size_t)M * sizeof *ok);
    for (int sq = 0; sq < n_seqs; sq++) {
        int t0 = t->cu ? t->cu[sq] : sq * t->T, t1 = t->cu ? t->cu[sq + 1] : (sq + 1) * t->T;
        for (int h = 0; h < H; h++) {
            memset(hk, 0, (size_t)dk * M * sizeof *hk);
            memset(hv, 0, (size_t)M * dv * sizeof *hv);
            for (int i = t0; i < t1; i++) {
                const double *qi = q + (size_t)i * H * dk + h * dk, *ki = k + (size_t)i * H * dk + h * dk;
                const double *vi = v + (size_t)i * H * dv + h * dv, *fi = f + (size_t)i * H * M + h * M;
                double max = -INFINITY, sum = 0;
                for (int m = 0; m < M; m++) {
                    ok[m] = 0;
                    for (int a = 0; a < dk; a++) {
                        hk[a * M + m] = hk[a * M + m] * exp(fi[m]) + ki[a] * (1 - exp(fi[m]));
                        ok[m] += qi[a] * hk[a * M + m];
                    }
                    max = fmax(max, ok[m]);
                }
                for (int m = 0; m < M; m++)
                    sum += ok[m] = exp(ok[m] - max);
                double *oi = o + (size_t)i * H * dv + h * dv;
                for (int b = 0; b < dv; b++) {
                    oi[b] = 0;
                    for (int m = 0; m < M; m++) {
                        hv[m * dv + b] = hv[m * dv + b] * exp(fi[m]) + (1 - exp(fi[m])) * vi[b];
                        oi[b] += ok[m] / sum * hv[m * dv + b];
                    }
                }
            }
        }
    }
    free(hk), free(hv), free(ok);
}

/* h += the attention block of layer l applied to h */
static void naive_attention(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D;
    size_t nD = (size_t)n * D, nS = (size_t)n * c->H * c->M;
    double *a = rms_norm(h, n, D, P(t, "model.layers.%d.attn_norm.weight", l), c->eps);
    double *q = linear(a, n, D, P(t, "model.layers.%d.attn.q_proj.weight", l), D, NULL);
    double *k = linear(a, n, D, P(t, "model.layers.%d.attn.k_proj.weight", l), D, NULL);
    double *v = linear(a, n, D, P(t, "model.layers.%d.attn.v_proj.weight", l), D, NULL);
    double *f = linear(a, n, D, P(t, "model.layers.%d.attn.f_proj.weight", l), c->H * c->M, NULL);
    for (size_t i = 0; i < nD; i++)
        q[i] = swish(q[i]), k[i] = swish(k[i]), v[i] = swish(v[i]);
    for (size_t i = 0; i < nS; i++)
        f[i] = log(sigmoid(f[i])) / c->normalizer;
    double *o = malloc(nD * sizeof *o);
    two_passes(o, t, q, k, v, f);
    for (size_t i = 0; i < nD; i++)
        o[i] = swish(o[i]);
    float *ones = malloc((size_t)D * sizeof *ones);
    for (int j = 0; j < D; j++)
        ones[j] = 1.0f;
    /* fla's output norm: eps 1e-5 whatever norm_eps is */
    double *y = rms_norm(o, n, D, c->affine ? P(t, "model.layers.%d.attn.g_norm.weight", l) : ones, 1e-5);
    double *out = linear(y, n, D, P(t, "model.layers.%d.attn.o_proj.weight", l), D, NULL);
    for (size_t i = 0; i < nD; i++)
        h[i] += out[i];
    free(a), free(q), free(k), free(v), free(f), free(o), free(ones), free(y), free(out);
}

/* ==================================================================== checks */

/* fla's parameter list for these dims (expand_k = expand_v = 1), in order */
static void check_gsa_params(const test_model *t)
{
    const dims *c = &t->c;
    const expected_param with_norm[] = {
        {"attn_norm.weight", c->D, 0, FLAME_INIT_ONES, 0, 0},
        {"attn.q_proj.weight", c->D, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.k_proj.weight", c->D, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.v_proj.weight", c->D, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.f_proj.weight", c->H * c->M, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.g_norm.weight", c->D, 0, FLAME_INIT_ONES, 0, 0},
        {"attn.o_proj.weight", c->D, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"mlp_norm.weight", c->D, 0, FLAME_INIT_ONES, 0, 0},
        {"mlp.gate_proj.weight", c->I, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"mlp.up_proj.weight", c->I, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"mlp.down_proj.weight", c->D, c->I, FLAME_INIT_NORMAL, 1, 0},
    };
    enum { N = sizeof with_norm / sizeof with_norm[0] };
    expected_param layer[N];
    int count = 0;
    for (int i = 0; i < N; i++)
        if (c->affine || strcmp(with_norm[i].name, "attn.g_norm.weight") != 0)
            layer[count++] = with_norm[i];
    check_param_list(t, layer, count);
}

/* ==================================================================== cases */

/* The gradient-checked models use norm_eps = 0.1, as GLA's test does, to keep
 * the norms smooth at the scale of the finite-difference step. */
static kv_config tiny_config(const dims *c)
{
    kv_config cfg = lm_config_of(c);
    kv_set_int(&cfg, "num_heads", c->H);
    kv_set_int(&cfg, "num_slots", c->M);
    kv_set(&cfg, "expand_k", "1");
    kv_set(&cfg, "expand_v", "1");
    kv_set_int(&cfg, "gate_logit_normalizer", (int)c->normalizer);
    kv_set(&cfg, "elementwise_affine", c->affine ? "true" : "false");
    kv_set(&cfg, "use_output_gate", "true"); /* keys of fla-org/flame's configs that change nothing */
    kv_set(&cfg, "use_rope", "false");
    return cfg;
}

static void run_case(const char *name, const dims *c, int B, int T, const int32_t *cu, int n_seqs,
                     int grads)
{
    kv_config cfg = tiny_config(c);
    run_model_case(name, &cfg, c, check_gsa_params, naive_attention, B, T, cu, n_seqs, grads);
}

static void test_cases(void)
{
    dims c = {.D = 8, .L = 2, .H = 2, .M = 3, .I = 16, .V = 11, .eps = 0.1, .normalizer = 4,
              .tie = 0, .affine = 0};
    run_case("B=2 T=9, no g_norm weight", &c, 2, 9, NULL, 0, 1);
    dims w = c;
    w.affine = 1, w.tie = 1, w.H = 1, w.M = 5, w.normalizer = 8;
    run_case("g_norm weight, tied, H=1 M=5", &w, 2, 9, NULL, 0, 1);
    /* three documents in one row, one of them a single token */
    static const int32_t cu[] = {0, 4, 5, 13};
    run_case("cu_seqlens", &c, 1, 13, cu, 3, 1);
    /* the forward at fla's norm_eps, longer than a chunk, 4 heads */
    dims fla = c;
    fla.eps = 1e-6, fla.H = 4, fla.M = 4, fla.normalizer = 16;
    run_case("norm_eps 1e-6, H=4, T=70", &fla, 1, 70, NULL, 0, 0);
}

/* ==================================================================== create() */

static void test_create(void)
{
    const flame_plugin *p = flame_plugin_entry();
    check_plugin_header("gsa");

    dims c = {.D = 8, .L = 2, .H = 2, .M = 3, .I = 16, .V = 11, .eps = 0.1, .normalizer = 4};
    const kv_config base = tiny_config(&c);
    static const refused_setting refused[] = {
        {"use_short_conv", "true", "use_short_conv"},
        {"feature_map", "relu", "feature_map"},
        {"attn", "{\"layers\": [1]}", "attn"},
        {"hidden_act", "gelu", "hidden_act"},
        {"num_kv_heads", "1", "num_kv_heads"},
        {"num_heads", "3", "num_heads"}, /* key_dim 8 % 3 */
        {"num_slots", "0", "num_slots"},
        {"gate_logit_normalizer", "0", "gate_logit_normalizer"},
        {"hidden_size", "0", "hidden_size"},
    };
    expect_refusals(&base, refused, sizeof refused / sizeof refused[0]);
    {   /* fla's g_norm weight has hidden_size entries: value_dim must match */
        kv_config cfg = base;
        kv_set(&cfg, "expand_v", "0.5");
        kv_set(&cfg, "elementwise_affine", "true");
        expect_refusal(&cfg, &flame_cpu_ops, "expand_v = 1");
    }
    {   /* a backend without GSA kernels */
        flame_ops other = flame_cpu_ops;
        other.backend = "rocm";
        expect_refusal(&base, &other, "no kernels for backend rocm");
        expect_old_core_refused(&base);
    }
    {   /* fla-org/flame's gsa_340M.json: defaults fill the rest */
        kv_config cfg = {.n = 0};
        kv_set(&cfg, "hidden_size", "1024");
        kv_set(&cfg, "num_hidden_layers", "24");
        kv_set(&cfg, "elementwise_affine", "false");
        kv_set(&cfg, "gate_logit_normalizer", "4");
        kv_set(&cfg, "share_conv_kernel", "true");
        void *m = create_checked(&cfg, "340M");
        if (m) {
            CHECK(p->n_params(m) == 2 + 24 * 10 + 1, "340M: %d parameters", p->n_params(m));
            check_340M_mlp(m, 1 + 7);
            const flame_param_spec *f = p->param(m, 5);
            CHECK(strcmp(f->name, "model.layers.0.attn.f_proj.weight") == 0 && f->shape[0] == 256 &&
                      f->shape[1] == 1024,
                  "340M: %s [%lld, %lld]", f->name, (long long)f->shape[0], (long long)f->shape[1]);
            p->destroy(m);
        }
    }
    check_oversized_batch(&base, &c);
}

/* ==================================================================== the presets */

/* The settings of fla-org/flame's configs/gsa_340M.json; gsa_1B.json differs in
 * hidden_size 2048 and gate_logit_normalizer 8. Written as that file has them
 * (expand_k, not the config class's exapnd_k). */
static void write_fla_json(const char *path, int hidden, int normalizer)
{
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"bos_token_id\": 1, \"conv_size\": 4, \"eos_token_id\": 2, \"expand_k\": 1, "
               "\"expand_v\": 1, \"elementwise_affine\": false, \"feature_map\": \"swish\", "
               "\"fuse_cross_entropy\": true, \"fuse_norm\": true, \"gate_logit_normalizer\": %d, "
               "\"hidden_act\": \"swish\", \"hidden_ratio\": 4, \"hidden_size\": %d, "
               "\"initializer_range\": 0.02, \"intermediate_size\": null, \"model_type\": \"gsa\", "
               "\"num_heads\": 4, \"num_hidden_layers\": 24, \"num_slots\": 64, \"norm_eps\": 1e-06, "
               "\"share_conv_kernel\": true, \"tie_word_embeddings\": false, \"use_cache\": true, "
               "\"use_norm\": true, \"use_output_gate\": true, \"use_rope\": false, "
               "\"use_short_conv\": false}\n", normalizer, hidden);
    fclose(f);
}

static void test_presets(void)
{
    static const struct { const char *ini; int hidden, normalizer; } presets[] = {
        {"gsa-340M.ini", 1024, 4}, {"gsa-1B.ini", 2048, 8}};
    char json[] = "/tmp/flame-gsa-XXXXXX.json"; /* the suffix says which reader */
    int fd = mkstemps(json, 5);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    for (int i = 0; i < 2; i++) {
        char ini[1024];
        snprintf(ini, sizeof ini, "%s/%s", FLAME_CONFIGS_DIR, presets[i].ini);
        write_fla_json(json, presets[i].hidden, presets[i].normalizer);
        flame_config *a = load_model_config(ini), *b = load_model_config(json);
        if (a && b)
            check_same_options(presets[i].ini, a, b);
        if (a && b) { /* and the model: hidden_size and the normalizer were read */
            CHECK(config_get_int(a, "model", "hidden_size") == presets[i].hidden &&
                      config_get_int(a, "model", "gate_logit_normalizer") == presets[i].normalizer &&
                      config_get_int(a, "model", "num_slots") == 64 &&
                      !config_get_bool(a, "model", "elementwise_affine"),
                  "%s: not fla's settings", presets[i].ini);
        }
        if (a)
            config_destroy(a);
        if (b)
            config_destroy(b);
    }
    /* the config class's own spelling of the expansions, as a hand-written config.json may use it */
    FILE *f = fopen(json, "w");
    fprintf(f, "{\"model_type\": \"gsa\", \"hidden_size\": 64, \"exapnd_k\": 0.5, \"exapnd_v\": 0.25}\n");
    fclose(f);
    flame_config *spelled = load_model_config(json);
    if (spelled) {
        CHECK(config_get_float(spelled, "model", "expand_k") == 0.5 &&
                  config_get_float(spelled, "model", "expand_v") == 0.25,
              "exapnd_k/exapnd_v not read as expand_k/expand_v");
        config_destroy(spelled);
    }
    unlink(json);
}

int main(void)
{
    testing_seed(17);
    /* a chunk of 11 rows of the test's vocabulary: the LM head's chunk loop runs */
    lm_head_chunk_bytes = 484;
    test_create();
    test_presets();
    test_cases();
    return testing_result("test_gsa_model");
}
