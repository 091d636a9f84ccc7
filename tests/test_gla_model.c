/* Tests of the whole GLA plugin at a tiny size, through flame_plugin_entry()
 * and the real CPU op table, with a [model] section and parameters made here:
 *  - the parameter list: fla's names, shapes, order, init rules, weight decay;
 *  - the loss and logits against a naive forward written here in double (its
 *    own matmuls, norms, token-by-token recurrence and cross-entropy);
 *  - the gradient of every parameter tensor against central finite differences
 *    of the plugin's fp32 loss (all elements of small tensors, 20 of large ones);
 *  - a second backward adds the same gradients again;
 *  - with tied embeddings (and fuse_norm = false), and with cu_seqlens;
 *  - create() refusing what the CPU path does not implement, naming the key. */
#include <stddef.h>

/* ==================================================================== the model under test */

typedef struct dims {
    int D, L, H, key_dim, value_dim, I, V, R;
    double eps, normalizer;
    int tie, fuse_norm;
} dims;

#include "plugin_testing.h"
#include "lm_parts.h"

/* ==================================================================== the naive forward, in double */

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* GLA per sequence and head: S = diag(exp(gk)) S + kᵀv; o = q/sqrt(dk) · S */
static double *recurrence(const test_model *t, const double *q, const double *k, const double *v,
                          const double *gk)
{
    int H = t->c.H, dk = t->c.key_dim / H, dv = t->c.value_dim / H, n = t->B * t->T;
    double *o = calloc((size_t)n * t->c.value_dim, sizeof *o);
    double *S = malloc((size_t)dk * dv * sizeof *S);
    int n_seqs = t->cu ? t->n_seqs : t->B;
    for (int s = 0; s < n_seqs; s++) {
        int t0 = t->cu ? t->cu[s] : s * t->T, t1 = t->cu ? t->cu[s + 1] : (s + 1) * t->T;
        for (int h = 0; h < H; h++) {
            memset(S, 0, (size_t)dk * dv * sizeof *S);
            for (int i = t0; i < t1; i++) {
                const double *qi = q + (size_t)i * t->c.key_dim + h * dk;
                const double *ki = k + (size_t)i * t->c.key_dim + h * dk;
                const double *gi = gk + (size_t)i * t->c.key_dim + h * dk;
                const double *vi = v + (size_t)i * t->c.value_dim + h * dv;
                double *oi = o + (size_t)i * t->c.value_dim + h * dv;
                for (int a = 0; a < dk; a++)
                    for (int b = 0; b < dv; b++)
                        S[a * dv + b] = exp(gi[a]) * S[a * dv + b] + ki[a] * vi[b];
                for (int b = 0; b < dv; b++)
                    for (int a = 0; a < dk; a++)
                        oi[b] += qi[a] / sqrt((double)dk) * S[a * dv + b];
            }
        }
    }
    free(S);
    return o;
}

/* h += the attention block of layer l applied to h */
static void naive_attention(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D, dv = c->value_dim / c->H;
    double *a = rms_norm(h, n, D, P(t, "model.layers.%d.attn_norm.weight", l), c->eps);
    double *q = linear(a, n, D, P(t, "model.layers.%d.attn.q_proj.weight", l), c->key_dim, NULL);
    double *k = linear(a, n, D, P(t, "model.layers.%d.attn.k_proj.weight", l), c->key_dim, NULL);
    double *v = linear(a, n, D, P(t, "model.layers.%d.attn.v_proj.weight", l), c->value_dim, NULL);
    double *g = linear(a, n, D, P(t, "model.layers.%d.attn.g_proj.weight", l), c->value_dim, NULL);
    double *low = linear(a, n, D, P(t, "model.layers.%d.attn.gk_proj.0.weight", l), c->R, NULL);
    double *gk = linear(low, n, c->R, P(t, "model.layers.%d.attn.gk_proj.1.weight", l), c->key_dim,
                        P(t, "model.layers.%d.attn.gk_proj.1.bias", l));
    for (size_t i = 0; i < (size_t)n * c->key_dim; i++)
        gk[i] = log(sigmoid(gk[i])) / c->normalizer;
    double *o = recurrence(t, q, k, v, gk);
    const float *gw = c->fuse_norm ? P(t, "model.layers.%d.attn.g_norm_swish_gate.weight", l)
                                   : P(t, "model.layers.%d.attn.g_norm.weight", l);
    double *y = rms_norm(o, n * c->H, dv, gw, c->eps);
    for (size_t i = 0; i < (size_t)n * c->value_dim; i++)
        y[i] *= g[i] * sigmoid(g[i]);
    double *out = linear(y, n, c->value_dim, P(t, "model.layers.%d.attn.o_proj.weight", l), D, NULL);
    for (size_t i = 0; i < (size_t)n * D; i++)
        h[i] += out[i];
    free(a), free(q), free(k), free(v), free(g), free(low), free(gk), free(o), free(y), free(out);
}

/* ==================================================================== checks */

/* fla's parameter list for these dims, in order */
static void check_gla_params(const test_model *t)
{
    const dims *c = &t->c;
    const expected_param layer[] = {
        {"attn_norm.weight", c->D, 0, FLAME_INIT_ONES, 0, 0},
        {"attn.q_proj.weight", c->key_dim, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.k_proj.weight", c->key_dim, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.v_proj.weight", c->value_dim, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.g_proj.weight", c->value_dim, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.gk_proj.0.weight", c->R, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"attn.gk_proj.1.weight", c->key_dim, c->R, FLAME_INIT_NORMAL, 1, 0},
        {"attn.gk_proj.1.bias", c->key_dim, 0, FLAME_INIT_ZEROS, 0, 0},
        {"attn.o_proj.weight", c->D, c->value_dim, FLAME_INIT_NORMAL, 1, 0},
        {c->fuse_norm ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight", c->value_dim / c->H, 0,
         FLAME_INIT_ONES, 0, 0},
        {"mlp_norm.weight", c->D, 0, FLAME_INIT_ONES, 0, 0},
        {"mlp.gate_proj.weight", c->I, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"mlp.up_proj.weight", c->I, c->D, FLAME_INIT_NORMAL, 1, 0},
        {"mlp.down_proj.weight", c->D, c->I, FLAME_INIT_NORMAL, 1, 0},
    };
    check_param_list(t, layer, (int)(sizeof layer / sizeof layer[0]));
}

/* ==================================================================== cases */

/* The curvature is extreme where a norm sees a nearly zero row: the first
 * token of a sequence has o = scale·(q·k)·v, so rmsnorm(o) flips sign where q·k
 * crosses 0, within |q·k| ≈ sqrt(eps). The gradient-checked models use
 * norm_eps = 0.1 to keep that smooth at the scale of the finite-difference
 * step; the forward is also checked at fla's 1e-6. */
static kv_config tiny_config(const dims *c)
{
    kv_config cfg = lm_config_of(c);
    kv_set_int(&cfg, "num_heads", c->H);
    kv_set(&cfg, "expand_k", "0.5");
    kv_set(&cfg, "expand_v", "1");
    kv_set_int(&cfg, "gate_logit_normalizer", (int)c->normalizer);
    kv_set_int(&cfg, "gate_low_rank_dim", c->R);
    kv_set(&cfg, "fuse_norm", c->fuse_norm ? "true" : "false");
    kv_set(&cfg, "attn_mode", "chunk"); /* a key of fla's configs that changes nothing */
    return cfg;
}

static void run_case(const char *name, const dims *c, int B, int T, const int32_t *cu, int n_seqs,
                     int grads)
{
    kv_config cfg = tiny_config(c);
    run_model_case(name, &cfg, c, check_gla_params, naive_attention, B, T, cu, n_seqs, grads);
}

static void test_cases(void)
{
    /* fla's default gate normalizer */
    dims c = {.D = 16, .L = 2, .H = 2, .key_dim = 8, .value_dim = 16, .I = 24, .V = 11, .R = 4,
              .eps = 0.1, .normalizer = 16, .tie = 0, .fuse_norm = 1};
    run_case("B=2 T=9", &c, 2, 9, NULL, 0, 1);
    /* 9 rows of 11 logits fit one chunk of the head: the forward makes their gradient */
    run_case("B=1 T=9, head in one chunk", &c, 1, 9, NULL, 0, 1);

    /* tied embeddings, the unfused norm's name, stronger gates */
    dims tied = c;
    tied.tie = 1, tied.fuse_norm = 0, tied.normalizer = 2;
    run_case("tied, g_norm, normalizer 2", &tied, 2, 9, NULL, 0, 1);

    /* three documents in one row, one of them a single token */
    static const int32_t cu[] = {0, 4, 5, 13};
    dims var = c;
    var.normalizer = 1;
    run_case("cu_seqlens, normalizer 1", &var, 1, 13, cu, 3, 1);

    /* the forward at fla's norm_eps, with 4 heads of dk = 2, dv = 4 */
    dims fla = c;
    fla.eps = 1e-6, fla.H = 4;
    run_case("norm_eps 1e-6, H=4", &fla, 2, 9, NULL, 0, 0);
}

/* ==================================================================== create() */

static void test_create(void)
{
    const flame_plugin *p = flame_plugin_entry();
    check_plugin_header("gla");

    dims c = {.D = 16, .L = 2, .H = 2, .I = 24, .V = 11, .R = 4, .normalizer = 16};
    const kv_config base = tiny_config(&c);
    static const refused_setting refused[] = {
        {"use_short_conv", "true", "use_short_conv"},
        {"use_gv", "true", "use_gv"},
        {"use_gk", "false", "use_gk"},
        {"use_output_gate", "false", "use_output_gate"},
        {"elementwise_affine", "false", "elementwise_affine"},
        {"feature_map", "relu", "feature_map"},
        {"clamp_min", "-1", "clamp_min"},
        {"attn", "{\"layers\": [1]}", "attn"},
        {"hidden_act", "gelu", "hidden_act"},
        {"num_kv_heads", "1", "num_kv_heads"},
        {"attn_mode", "parallel", "attn_mode"},
        {"num_heads", "3", "num_heads"}, /* key_dim 8 % 3 */
        {"hidden_size", "0", "hidden_size"},
    };
    expect_refusals(&base, refused, sizeof refused / sizeof refused[0]);
    check_joined_bound_apart_aborts(&base, "model.layers.0.attn.k_proj.weight is joined to");
    {   /* value_dim = int(16·0.6) = 9, not divisible by 2 heads */
        kv_config cfg = base;
        kv_set(&cfg, "expand_v", "0.6");
        expect_refusal(&cfg, &flame_cpu_ops, "value dim");
    }
    {   /* the message of the acceptance criterion, exactly */
        kv_config cfg = base;
        kv_set(&cfg, "use_short_conv", "true");
        char err[256] = "";
        flame_model_config v = view_of(&cfg);
        CHECK(p->create(&v, &flame_cpu_ops, err, sizeof err) == NULL &&
                  strcmp(err, "use_short_conv = true is not supported yet") == 0,
              "use_short_conv refusal: '%s'", err);
    }
    {   /* a backend without GLA kernels */
        flame_ops other = flame_cpu_ops;
        other.backend = "rocm";
        expect_refusal(&base, &other, "no kernels for backend rocm");
        expect_old_core_refused(&base);
    }
    {   /* num_kv_heads = num_heads is fine */
        kv_config cfg = base;
        kv_set(&cfg, "num_kv_heads", "2");
        char err[256] = "";
        flame_model_config v = view_of(&cfg);
        void *m = p->create(&v, &flame_cpu_ops, err, sizeof err);
        CHECK(m != NULL, "num_kv_heads = num_heads refused: %s", err);
        if (m)
            p->destroy(m);
    }
    {   /* fla's gla_340M.json: defaults fill the rest */
        kv_config cfg = {.n = 0};
        kv_set(&cfg, "hidden_size", "1024");
        kv_set(&cfg, "num_hidden_layers", "24");
        void *m = create_checked(&cfg, "340M");
        if (m) {
            CHECK(p->n_params(m) == 2 + 24 * 14 + 1, "340M: %d parameters", p->n_params(m));
            check_340M_mlp(m, 1 + 11);
            const flame_param_spec *q = p->param(m, 2);
            CHECK(q->shape[0] == 512 && q->shape[1] == 1024, "340M: q_proj [%lld, %lld]",
                  (long long)q->shape[0], (long long)q->shape[1]);
            CHECK(p->flops_per_token(m, 2048) > 6.0 * 300e6, "340M: flops_per_token %g",
                  p->flops_per_token(m, 2048));
            p->destroy(m);
        }
    }
    dims small = c;
    small.key_dim = 8, small.value_dim = 16, small.eps = 1e-6;
    check_oversized_batch(&base, &small);
}

int main(void)
{
    testing_seed(11);
    /* a chunk of 11 rows of the test's vocabulary: the LM head's chunk loop runs */
    lm_head_chunk_bytes = 484;
    test_create();
    test_cases();
    return testing_result("test_gla_model");
}
