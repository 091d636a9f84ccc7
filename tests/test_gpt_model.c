/* Tests of the gpt plugin at tiny sizes, through flame_plugin_entry() and the
 * real CPU op table, with a [model] section and parameters made here:
 *  - the parameter list: flash-attn's names, shapes, order, init rules (out_proj
 *    and fc2 at std / sqrt(2L)), weight decay on the matrices only;
 *  - the loss and logits against a naive model written here in double
 *    (LayerNorms with biases, a fused Wqkv with its bias, token-by-token
 *    softmax attention over the prefix, the GELU MLP, a position table);
 *  - the gradient of every parameter tensor against finite differences;
 *  - tied and untied embeddings, cu_seqlens (positions restart), attention
 *    scaled by the inverse layer index, no position table, rotary on half of
 *    each head (GPT-3's -rotary), a padded vocabulary;
 *  - GPT-2 small's 124,439,808 parameters (Hugging Face's count of gpt2);
 *  - every configs/gpt*.ini job file read as flame-run reads it (every section's
 *    keys known), its model made: the GPT-2 ones have Hugging Face's counts of
 *    gpt2-medium, -large and -xl plus their padding rows, -rotary ones no
 *    position table, -8k ones 8192 positions or rotary;
 *  - create() and reserve() refusing what they do not implement, naming the key. */
#include <string.h>

#include "testing.h"

typedef struct dims {
    int D, L, H, I, V; /* V: the padded vocabulary, the model's */
    double eps;
    int tie;
    int positions;     /* n_positions, 0: no table */
    int inverse_scale; /* scale_attn_by_inverse_layer_idx */
    int rd;            /* rotated values of a head (rotary_emb_fraction · head dim), 0: none */
    int act_stream;    /* residual_in_fp32 false (the cases' default is true) */
} dims;

#define LM_ROOT "transformer"
#define LM_EMBEDDINGS "embeddings.word_embeddings"
#define LM_FINAL_NORM "ln_f"
#define LM_GPT
#include "plugin_testing.h"
#include "config/config.h"
#include "lm_parts.h"

/* ==================================================================== the naive attention, in double */

#define ROTARY_BASE 100.0 /* small, so that the angles turn visibly within a few tokens */

/* rotate-half on the first rd values of each head of q and k (rows of 3·D: q, k, v),
 * pairs (j, j + rd/2) turned by pos / base^(2j/rd) */
static void naive_rotary(const test_model *t, double *qkv)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D, hd = D / c->H, half = c->rd / 2;
    for (int i = 0; i < n; i++)
        for (int part = 0; part < 2; part++)
            for (int h = 0; h < c->H; h++) {
                double *r = qkv + (size_t)i * 3 * D + part * D + h * hd;
                for (int j = 0; j < half; j++) {
                    double angle = (i - seq_start(t, i)) / pow(ROTARY_BASE, 2.0 * j / c->rd);
                    double x1 = r[j], x2 = r[j + half];
                    r[j] = x1 * cos(angle) - x2 * sin(angle);
                    r[j + half] = x2 * cos(angle) + x1 * sin(angle);
                }
            }
}

/* h += out_proj(attention(Wqkv(norm1(h)))), token by token over its sequence's prefix */
static void naive_attention(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D, H = c->H, hd = D / H;
    char norm[FLAME_NAME_MAX];
    snprintf(norm, sizeof norm, LM_ROOT ".layers.%d.norm1", l);
    double *a = naive_norm(t, h, n, norm);
    double *qkv = linear(a, n, D, P(t, LM_ROOT ".layers.%d.mixer.Wqkv.weight", l), 3 * D,
                         P(t, LM_ROOT ".layers.%d.mixer.Wqkv.bias", l));
    naive_rotary(t, qkv);
    double scale = 1.0 / sqrt((double)hd) / (c->inverse_scale ? l + 1 : 1);
    double *o = calloc((size_t)n * D, sizeof *o), *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++)
        for (int hh = 0; hh < H; hh++) {
            const double *q = qkv + (size_t)i * 3 * D + hh * hd;
            double mx = -1e300, z = 0;
            for (int j = seq_start(t, i); j <= i; j++) {
                const double *k = qkv + (size_t)j * 3 * D + D + hh * hd;
                double s = 0;
                for (int e = 0; e < hd; e++)
                    s += q[e] * k[e];
                p[j] = s * scale;
                mx = fmax(mx, p[j]);
            }
            for (int j = seq_start(t, i); j <= i; j++)
                z += p[j] = exp(p[j] - mx);
            for (int j = seq_start(t, i); j <= i; j++)
                for (int e = 0; e < hd; e++)
                    o[(size_t)i * D + hh * hd + e] += p[j] / z * qkv[(size_t)j * 3 * D + 2 * D + hh * hd + e];
        }
    double *out = linear(o, n, D, P(t, LM_ROOT ".layers.%d.mixer.out_proj.weight", l), D,
                         P(t, LM_ROOT ".layers.%d.mixer.out_proj.bias", l));
    for (size_t i = 0; i < (size_t)n * D; i++)
        h[i] += out[i];
    free(a), free(qkv), free(o), free(p), free(out);
}

/* ==================================================================== the parameter list */

static void check_param(const test_model *t, int i, const char *name, int64_t rows, int64_t cols,
                        flame_init_rule init, int decay, float std)
{
    const flame_param_spec *s = t->spec[i];
    int shape_ok = s->ndim == (cols ? 2 : 1) && s->shape[0] == rows && (!cols || s->shape[1] == cols);
    CHECK(strcmp(s->name, name) == 0 && shape_ok && s->init == init && s->weight_decay == decay &&
              (init != FLAME_INIT_NORMAL || fabsf(s->init_std - std) < 1e-7f),
          "parameter %d: got %s [%lld, %lld] init %d decay %d std %g, expected %s [%lld, %lld] init %d decay %d std %g",
          i, s->name, (long long)s->shape[0], (long long)(s->ndim > 1 ? s->shape[1] : 0), (int)s->init,
          s->weight_decay, s->init_std, name, (long long)rows, (long long)cols, (int)init, decay, std);
}

/* the embedding, the position table, 12 tensors a layer in flash-attn's Block
 * order, ln_f's weight and bias, lm_head unless tied */
static void check_gpt_params(const test_model *t)
{
    const dims *c = &t->c;
    int expected = 1 + (c->positions > 0) + 12 * c->L + 2 + !c->tie;
    CHECK(t->n_params == expected, "%d parameters, expected %d", t->n_params, expected);
    if (t->n_params != expected)
        return;
    const flame_init_rule N = FLAME_INIT_NORMAL, Z = FLAME_INIT_ZEROS, ONE = FLAME_INIT_ONES;
    float std = 0.02f, scaled = 0.02f / sqrtf(2.0f * c->L);
    int i = 0;
    check_param(t, i++, LM_ROOT ".embeddings.word_embeddings.weight", c->V, c->D, N, 0, std);
    if (c->positions)
        check_param(t, i++, LM_ROOT ".embeddings.position_embeddings.weight", c->positions, c->D, N, 0, std);
    for (int l = 0; l < c->L; l++) {
        const struct {
            const char *name;
            int64_t rows, cols;
            flame_init_rule init;
            float std;
        } layer[] = {
            {"mixer.Wqkv.weight", 3 * c->D, c->D, N, std}, {"mixer.Wqkv.bias", 3 * c->D, 0, Z, 0},
            {"mixer.out_proj.weight", c->D, c->D, N, scaled}, {"mixer.out_proj.bias", c->D, 0, Z, 0},
            {"norm1.weight", c->D, 0, ONE, 0}, {"norm1.bias", c->D, 0, Z, 0},
            {"mlp.fc1.weight", c->I, c->D, N, std}, {"mlp.fc1.bias", c->I, 0, Z, 0},
            {"mlp.fc2.weight", c->D, c->I, N, scaled}, {"mlp.fc2.bias", c->D, 0, Z, 0},
            {"norm2.weight", c->D, 0, ONE, 0}, {"norm2.bias", c->D, 0, Z, 0},
        };
        for (int p = 0; p < 12; p++) {
            char name[FLAME_NAME_MAX];
            snprintf(name, sizeof name, LM_ROOT ".layers.%d.%s", l, layer[p].name);
            check_param(t, i++, name, layer[p].rows, layer[p].cols, layer[p].init, layer[p].cols != 0,
                        layer[p].std);
        }
    }
    check_param(t, i++, LM_ROOT ".ln_f.weight", c->D, 0, ONE, 0, 0);
    check_param(t, i++, LM_ROOT ".ln_f.bias", c->D, 0, Z, 0, 0);
    if (!c->tie)
        check_param(t, i++, "lm_head.weight", c->V, c->D, N, 1, std);
}

/* ==================================================================== cases */

static kv_config tiny_config(const dims *c, int vocab, int multiple)
{
    kv_config cfg = {.n = 0};
    kv_set_int(&cfg, "n_embd", c->D);
    kv_set_int(&cfg, "n_layer", c->L);
    kv_set_int(&cfg, "n_head", c->H);
    kv_set_int(&cfg, "n_inner", c->I);
    kv_set_int(&cfg, "n_positions", c->positions);
    kv_set_int(&cfg, "vocab_size", vocab);
    kv_set_int(&cfg, "pad_vocab_size_multiple", multiple);
    kv_set_float(&cfg, "layer_norm_epsilon", c->eps);
    kv_set(&cfg, "tie_word_embeddings", c->tie ? "true" : "false");
    kv_set(&cfg, "scale_attn_by_inverse_layer_idx", c->inverse_scale ? "true" : "false");
    kv_set_float(&cfg, "rotary_emb_fraction", (double)c->rd / (c->D / c->H));
    kv_set_float(&cfg, "rotary_emb_base", ROTARY_BASE);
    /* the fp32 stream's ops (on the CPU, whose activations are fp32, the same numbers) */
    kv_set(&cfg, "residual_in_fp32", c->act_stream ? "false" : "true");
    /* keys flash-attn's configs carry that change nothing here */
    kv_set(&cfg, "resid_pdrop", "0.1");
    kv_set(&cfg, "fused_mlp", "true");
    return cfg;
}

static void run_case(const char *name, const dims *c, int B, int T, const int32_t *cu, int n_seqs, int grads)
{
    kv_config cfg = tiny_config(c, c->V, 1);
    run_model_case(name, &cfg, c, check_gpt_params, naive_attention, B, T, cu, n_seqs, grads);
}

static void test_cases(void)
{
    dims c = {.D = 16, .L = 2, .H = 4, .I = 24, .V = 11, .eps = 1e-5, .tie = 1, .positions = 12};
    run_case("B=2 T=9, tied", &c, 2, 9, NULL, 0, 1);
    dims untied = c;
    untied.tie = 0;
    run_case("B=1 T=9, untied, head in one chunk", &untied, 1, 9, NULL, 0, 1);
    dims act_stream = c;
    act_stream.act_stream = 1;
    run_case("B=2 T=9, residual_in_fp32 false", &act_stream, 2, 9, NULL, 0, 1);
    /* three documents in one row, one a single token: positions restart at each */
    static const int32_t cu[] = {0, 4, 5, 13};
    dims docs = c;
    docs.positions = 13;
    run_case("cu_seqlens", &docs, 1, 13, cu, 3, 1);
    dims inverse = c;
    inverse.inverse_scale = 1, inverse.L = 3;
    run_case("scale_attn_by_inverse_layer_idx, 3 layers", &inverse, 2, 9, NULL, 0, 1);
    dims none = c;
    none.positions = 0;
    run_case("n_positions 0 (no table)", &none, 2, 9, NULL, 0, 1);
    /* GPT-3's -rotary: no table, half of each head of 8 turned */
    dims rotary = c;
    rotary.positions = 0, rotary.H = 2, rotary.rd = 4;
    run_case("rotary on half of each head, no table", &rotary, 2, 9, NULL, 0, 1);
    rotary.positions = 13;
    run_case("rotary and a table, cu_seqlens", &rotary, 1, 13, cu, 3, 1);
    dims longer = c;
    longer.positions = 40;
    run_case("T=40: forward only", &longer, 2, 40, NULL, 0, 0);
}

/* ==================================================================== create() and reserve() */

/* vocab_size 11 padded to a multiple of 8: 16 rows, the logits' width */
static void test_padded_vocabulary(void)
{
    dims c = {.D = 16, .L = 1, .H = 2, .I = 32, .V = 16, .eps = 1e-5, .tie = 1, .positions = 8};
    kv_config cfg = tiny_config(&c, 11, 8);
    void *m = create_checked(&cfg, "padded vocabulary");
    if (!m)
        return;
    const flame_plugin *p = flame_plugin_entry();
    CHECK(p->vocab_size(m) == 16 && p->param(m, 0)->shape[0] == 16, "vocab 11 padded to 8: %lld rows",
          (long long)p->vocab_size(m));
    p->destroy(m);
}

/* flash-attn's GPT-2 small: Hugging Face's gpt2 has 124,439,808 parameters
 * (tied); padded to 50264 tokens, 7·768 more */
static void test_gpt2_small(void)
{
    const flame_plugin *p = flame_plugin_entry();
    for (int multiple = 1; multiple <= 8; multiple += 7) {
        kv_config cfg = {.n = 0};
        kv_set_int(&cfg, "pad_vocab_size_multiple", multiple);
        void *m = create_checked(&cfg, "GPT-2 small");
        if (!m)
            return;
        int64_t total = 0;
        for (int i = 0; i < p->n_params(m); i++) {
            const flame_param_spec *s = p->param(m, i);
            int64_t numel = 1;
            for (int d = 0; d < s->ndim; d++)
                numel *= s->shape[d];
            total += numel;
        }
        int64_t want = multiple == 1 ? 124439808 : 124439808 + 7 * 768;
        CHECK(total == want, "GPT-2 small, pad %d: %lld parameters, expected %lld", multiple, (long long)total,
              (long long)want);
        /* 6·(12·(4·768² + 2·768·3072) + V·768) + 12·12·768·1024 */
        double V = multiple == 1 ? 50257 : 50264;
        double flops = 6.0 * (12.0 * (4.0 * 768 * 768 + 2.0 * 768 * 3072) + V * 768) + 12.0 * 12 * 768 * 1024;
        CHECK(fabs(p->flops_per_token(m, 1024) - flops) < 1e-9 * flops, "GPT-2 small: flops_per_token %g, expected %g",
              p->flops_per_token(m, 1024), flops);
        p->destroy(m);
    }
}

/* a batch longer than the position table is refused at reserve, naming n_positions */
static void test_long_batch(const kv_config *cfg)
{
    void *m = create_checked(cfg, "long batch");
    if (!m)
        return;
    char err[256] = "";
    int rc = flame_plugin_entry()->reserve(m, 1, 13, err, sizeof err);
    CHECK(rc == -2 && strstr(err, "n_positions = 12"), "reserve past the position table: %d '%s'", rc, err);
    flame_plugin_entry()->destroy(m);
}

static void test_create(void)
{
    check_plugin_header("gpt");
    dims c = {.D = 16, .L = 2, .H = 4, .I = 24, .V = 11, .eps = 1e-5, .tie = 1, .positions = 12};
    const kv_config base = tiny_config(&c, 11, 1);
    static const refused_setting refused[] = {
        {"activation_function", "gelu", "activation_function = gelu is not supported yet"},
        {"activation_function", "relu", "activation_function"},
        {"rotary_emb_fraction", "0.3", "rotary_emb_fraction = 0.3 of heads of 4 gives 1 values"},
        {"rotary_emb_fraction", "1.5", "rotary_emb_fraction"},
        {"rotary_emb_interleaved", "true", "rotary_emb_interleaved = true is not supported yet"},
        {"n_head", "3", "n_head = 3 does not divide n_embd = 16"},
        {"n_embd", "0", "n_embd"},
        {"n_positions", "-1", "n_positions"},
        {"max_position_embeddings", "-1", "max_position_embeddings"},
        {"pad_vocab_size_multiple", "0", "pad_vocab_size_multiple"},
        {"layer_norm_epsilon", "0", "layer_norm_epsilon"},
        {"initializer_range", "-1", "initializer_range"},
        {"n_inner", "0", "n_inner"},
    };
    expect_refusals(&base, refused, sizeof refused / sizeof refused[0]);
    flame_ops other = flame_cpu_ops; /* a backend no build has kernels for */
    other.backend = "tpu";
    expect_refusal(&base, &other, "no kernels for backend tpu in this build");
    expect_old_core_refused(&base);
    /* max_position_embeddings, given, wins over n_positions (flash-attn's -rotary configs) */
    kv_config alias = base;
    kv_set(&alias, "max_position_embeddings", "0");
    void *m = create_checked(&alias, "max_position_embeddings 0");
    if (m) {
        CHECK(strcmp(flame_plugin_entry()->param(m, 1)->name, LM_ROOT ".layers.0.mixer.Wqkv.weight") == 0,
              "max_position_embeddings 0 left a position table");
        flame_plugin_entry()->destroy(m);
    }
    test_padded_vocabulary();
    test_gpt2_small();
    test_long_batch(&base);
    check_oversized_batch(&base, &c);
}

/* ==================================================================== the job files */

/* configs/NAME.ini as flame-run reads a --config: every section's keys known */
static flame_config *load_job(const char *name)
{
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/%s.ini", FLAME_CONFIGS_DIR, name);
    flame_config *cfg = config_create();
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(cfg, core_sections[i].name, core_sections[i].options, core_sections[i].n_options);
    const flame_plugin *p = flame_plugin_entry();
    config_add_section(cfg, "model", p->options, p->n_options);
    if (config_load_job_file(cfg, path, err, sizeof err)) {
        CHECK(0, "%s: %s", path, err);
        config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

/* the model of job file `name`: its parameters counted, and the rows of its
 * position table (0: none) into *positions; -1 after a failed check */
static int64_t job_params(const char *name, int64_t *positions)
{
    flame_config *cfg = load_job(name);
    if (!cfg)
        return -1;
    const flame_plugin *p = flame_plugin_entry();
    flame_model_config view = config_model_view(cfg);
    char err[256] = "";
    void *m = p->create(&view, &flame_cpu_ops, err, sizeof err);
    CHECK(m != NULL, "%s: %s", name, err);
    int64_t total = m ? 0 : -1;
    for (int j = 0; m && j < p->n_params(m); j++)
        total += (int64_t)numel_of(p->param(m, j));
    *positions = m && strstr(p->param(m, 1)->name, "position_embeddings") ? p->param(m, 1)->shape[0] : 0;
    if (m)
        p->destroy(m);
    config_destroy(cfg);
    return total;
}

static void test_job_files(void)
{
    /* Hugging Face's gpt2, gpt2-medium, -large, -xl, plus 7 padding rows of n_embd */
    static const struct { const char *name; int64_t hf; int D; } gpt2[] = {
        {"gpt2s", 124439808, 768}, {"gpt2m", 354823168, 1024}, {"gpt2l", 774030080, 1280},
        {"gpt2xl", 1557611200, 1600}};
    for (int i = 0; i < 4; i++) {
        int64_t rows, got = job_params(gpt2[i].name, &rows), want = gpt2[i].hf + 7LL * gpt2[i].D;
        CHECK(got == want && rows == 1024, "%s: %lld parameters, %lld positions; expected %lld, 1024", gpt2[i].name,
              (long long)got, (long long)rows, (long long)want);
    }
    /* GPT-3's: a table of the context's rows, none with rotary */
    static const char *const gpt3[] = {"gpt3s", "gpt3m", "gpt3l", "gpt3xl", "gpt3-2.7B", "gpt3-2.7B-hdim128"};
    static const char *const variants[] = {"", "-rotary", "-8k", "-rotary-8k"};
    for (int i = 0; i < 6; i++)
        for (int v = 0; v < 4; v++) {
            if (i == 5 && v == 2)
                continue; /* flash-attention has no gpt3-2.7B-flash-hdim128-8k */
            char name[64];
            snprintf(name, sizeof name, "%s%s", gpt3[i], variants[v]);
            int64_t rows, want = v & 1 ? 0 : v ? 8192 : 2048;
            int64_t got = job_params(name, &rows);
            CHECK(got > 0 && rows == want, "%s: %lld positions, expected %lld", name, (long long)rows,
                  (long long)want);
        }
}

int main(void)
{
    testing_seed(29);
    /* a chunk of 11 rows of the test's vocabulary: the LM head's chunk loop runs */
    lm_head_chunk_bytes = 484;
    test_create();
    test_job_files();
    test_cases();
    return testing_result("test_gpt_model");
}
