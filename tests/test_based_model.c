/* Tests of the whole Based plugin at a tiny size, through flame_plugin_entry()
 * and the real CPU op table, with a [model] section and parameters made here:
 *  - the parameter list of a hybrid of all three mixers: HazyResearch's names
 *    (transformer.…, embeddings.word_embeddings, ln_f), shapes, state_dict
 *    order, init rules and std (out_proj and fc2 at 0.02/sqrt(2L)), weight
 *    decay; the padded vocabulary; the convolution's init_values;
 *  - the loss and logits against a naive model written here in double (its
 *    own matmuls, norms, BaseConv, Taylor attention in the quadratic form,
 *    rotary, band-masked softmax, GatedMlp and cross-entropy), with and
 *    without cu_seqlens: the convolution's window, both attentions and the
 *    rotary positions start again at each document;
 *  - the gradient of every parameter tensor against central finite
 *    differences of the plugin's fp32 loss; a second backward adds the same;
 *  - create() refusing bad options with a line naming the key;
 *  - configs/based-360m.ini and based-1b.ini giving the parameter counts of
 *    HazyResearch's models (362,620,928 and 1,349,453,056). */
#include <stddef.h>
#include <stdlib.h>

/* ==================================================================== the model under test */

enum { CONV, TAYLOR, SLIDING };
#define MAX_LAYERS 8

typedef struct dims {
    int D, L, I, V, tie;
    double eps;
    int vocab;           /* before padding to a multiple of 8 */
    int kind[MAX_LAYERS];
    int E, K;            /* BaseConv: expand_proj 4 gives E = 2D */
    int Ht, F;           /* Taylor heads and query/key width */
    int H, window_size;  /* sliding heads and HazyResearch's window_size */
} dims;

#define LM_ROOT "transformer"
#define LM_EMBEDDINGS "embeddings.word_embeddings"
#define LM_FINAL_NORM "ln_f"
#define NAIVE_MLP_FC1
#include "plugin_testing.h"
#include "preset_testing.h"
#include "lm_parts.h"

/* ==================================================================== the naive model, in double */

static double silu(double v) { return v / (1.0 + exp(-v)); }

/* the first token of token i's document: cu's offsets, or one per row */
static int document_start(const test_model *t, int i)
{
    if (!t->cu)
        return i / t->T * t->T;
    int s = 0;
    while (t->cu[s + 1] <= i)
        s++;
    return t->cu[s];
}

/* columns [c0, c0 + w) of x [n, C] as an [n, w] array */
static double *columns(const double *x, int n, int C, int c0, int w)
{
    double *out = malloc((size_t)n * w * sizeof *out);
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * w, x + (size_t)i * C + c0, w * sizeof *out);
    return out;
}

static void add_into(double *h, const double *x, size_t count)
{
    for (size_t i = 0; i < count; i++)
        h[i] += x[i];
}

/* BaseConv: u1, u2 = halves of in_proj(a); out_proj(silu(conv(u1)) · u2).
 * PyTorch's Conv1d(padding K−1)[..., :T] is a cross-correlation: tap K−1
 * multiplies the current token, tap 0 the one K−1 back. */
static double *naive_conv(const test_model *t, const double *a, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, E = c->E, K = c->K;
    double *u = linear(a, n, c->D, P(t, LM_ROOT ".layers.%d.mixer.in_proj.weight", l), 2 * E,
                       P(t, LM_ROOT ".layers.%d.mixer.in_proj.bias", l));
    const float *w = P(t, LM_ROOT ".layers.%d.mixer.conv.conv.weight", l);
    double *v = malloc((size_t)n * E * sizeof *v);
    for (int i = 0; i < n; i++) {
        int begin = document_start(t, i);
        for (int ch = 0; ch < E; ch++) {
            double acc = 0;
            for (int j = 0; j < K; j++) {
                int src = i - (K - 1) + j;
                if (src >= begin)
                    acc += w[(size_t)ch * K + j] * u[(size_t)src * 2 * E + ch];
            }
            v[(size_t)i * E + ch] = silu(acc) * u[(size_t)i * 2 * E + E + ch];
        }
    }
    double *out = linear(v, n, E, P(t, LM_ROOT ".layers.%d.mixer.out_proj.weight", l), c->D,
                         P(t, LM_ROOT ".layers.%d.mixer.out_proj.bias", l));
    free(u), free(v);
    return out;
}

/* Taylor linear attention in the quadratic form of linear_attention.py:
 * A_ij = phi(q_i)·phi(k_j) = 1 + s + s²/2, s = q_i·k_j/sqrt(F), over j ≤ i
 * of the document; y_i = Σ A_ij v_j / (Σ A_ij + 1e-12) */
static double *naive_taylor(const test_model *t, const double *a, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D, F = c->F, Dv = D / c->Ht, QK = c->Ht * F;
    double *q = linear(a, n, D, P(t, LM_ROOT ".layers.%d.mixer.proj_q.weight", l), QK, NULL);
    double *k = linear(a, n, D, P(t, LM_ROOT ".layers.%d.mixer.proj_k.weight", l), QK, NULL);
    double *v = linear(a, n, D, P(t, LM_ROOT ".layers.%d.mixer.proj_v.weight", l), D, NULL);
    double *y = calloc((size_t)n * D, sizeof *y);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < c->Ht; h++) {
            double den = 0, *yi = y + (size_t)i * D + h * Dv;
            for (int j = document_start(t, i); j <= i; j++) {
                double s = 0;
                for (int f = 0; f < F; f++)
                    s += q[(size_t)i * QK + h * F + f] * k[(size_t)j * QK + h * F + f];
                s /= sqrt((double)F);
                double A = 1 + s + s * s / 2;
                den += A;
                for (int e = 0; e < Dv; e++)
                    yi[e] += A * v[(size_t)j * D + h * Dv + e];
            }
            for (int e = 0; e < Dv; e++)
                yi[e] /= den + 1e-12;
        }
    double *out = linear(y, n, D, P(t, LM_ROOT ".layers.%d.mixer.out_proj.weight", l), D, NULL);
    free(q), free(k), free(v), free(y);
    return out;
}

/* GPT-NeoX rotary over whole heads of hd, in place: position p counts from
 * the document's start, θ_r = p / 10000^(2r/hd), halves rotated */
static void naive_rotary(const test_model *t, double *x, int H, int hd)
{
    int n = t->B * t->T;
    for (int i = 0; i < n; i++) {
        int p = i - document_start(t, i);
        for (int h = 0; h < H; h++)
            for (int r = 0; r < hd / 2; r++) {
                double th = p / pow(10000.0, 2.0 * r / hd), *x1 = x + ((size_t)i * H + h) * hd + r,
                       *x2 = x1 + hd / 2;
                double a1 = *x1, a2 = *x2;
                *x1 = a1 * cos(th) - a2 * sin(th);
                *x2 = a2 * cos(th) + a1 * sin(th);
            }
    }
}

/* sliding-window attention: Wqkv's rows are q, k, v; flash-attn's window
 * (window_size//2, 0): query i sees keys i − window_size/2 .. i of its document */
static double *naive_sliding(const test_model *t, const double *a, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D, H = c->H, hd = D / H;
    double *qkv = linear(a, n, D, P(t, LM_ROOT ".layers.%d.mixer.Wqkv.weight", l), 3 * D, NULL);
    double *q = columns(qkv, n, 3 * D, 0, D), *k = columns(qkv, n, 3 * D, D, D), *v = columns(qkv, n, 3 * D, 2 * D, D);
    naive_rotary(t, q, H, hd);
    naive_rotary(t, k, H, hd);
    double *o = calloc((size_t)n * D, sizeof *o), *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            int first = document_start(t, i);
            first = first > i - c->window_size / 2 ? first : i - c->window_size / 2;
            double mx = -INFINITY, z = 0;
            for (int j = first; j <= i; j++) {
                double s = 0;
                for (int e = 0; e < hd; e++)
                    s += q[(size_t)i * D + h * hd + e] * k[(size_t)j * D + h * hd + e];
                p[j] = s / sqrt((double)hd);
                mx = fmax(mx, p[j]);
            }
            for (int j = first; j <= i; j++)
                z += p[j] = exp(p[j] - mx);
            for (int j = first; j <= i; j++)
                for (int e = 0; e < hd; e++)
                    o[(size_t)i * D + h * hd + e] += p[j] / z * v[(size_t)j * D + h * hd + e];
        }
    double *out = linear(o, n, D, P(t, LM_ROOT ".layers.%d.mixer.out_proj.weight", l), D, NULL);
    free(qkv), free(q), free(k), free(v), free(o), free(p);
    return out;
}

/* h += mixer(norm1(h)), the mixer of layer l's kind */
static void naive_mixer(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T;
    double *a = rms_norm(h, n, c->D, P(t, LM_ROOT ".layers.%d.norm1.weight", l), c->eps);
    double *out = c->kind[l] == CONV ? naive_conv(t, a, l) : c->kind[l] == TAYLOR ? naive_taylor(t, a, l)
                                                                                   : naive_sliding(t, a, l);
    add_into(h, out, (size_t)n * c->D);
    free(a), free(out);
}

/* ==================================================================== the parameter list */

/* HazyResearch's state_dict order: the embedding, per layer the mixer's
 * tensors (as its module registers them), norm1, mlp.fc1, mlp.fc2, norm2;
 * then ln_f; lm_head only when untied */
static void check_based_params(const test_model *t)
{
    const dims *c = &t->c;
    double out_std = 0.02 / sqrt(2.0 * c->L);
    typedef struct { const char *name; int64_t shape[3]; int init, decay; double std; } expected;
    expected mixer[3][5] = {
        {{"mixer.in_proj.weight", {2 * c->E, c->D}, FLAME_INIT_NORMAL, 1, 0.02},
         {"mixer.in_proj.bias", {2 * c->E}, FLAME_INIT_ZEROS, 0, 0},
         {"mixer.out_proj.weight", {c->D, c->E}, FLAME_INIT_NORMAL, 1, out_std},
         {"mixer.out_proj.bias", {c->D}, FLAME_INIT_ZEROS, 0, 0},
         {"mixer.conv.conv.weight", {c->E, 1, c->K}, FLAME_INIT_PLUGIN, 1, 0}},
        {{"mixer.proj_q.weight", {c->Ht * c->F, c->D}, FLAME_INIT_NORMAL, 1, 0.02},
         {"mixer.proj_k.weight", {c->Ht * c->F, c->D}, FLAME_INIT_NORMAL, 1, 0.02},
         {"mixer.proj_v.weight", {c->D, c->D}, FLAME_INIT_NORMAL, 1, 0.02},
         {"mixer.out_proj.weight", {c->D, c->D}, FLAME_INIT_NORMAL, 1, out_std}},
        {{"mixer.Wqkv.weight", {3 * c->D, c->D}, FLAME_INIT_NORMAL, 1, 0.02},
         {"mixer.out_proj.weight", {c->D, c->D}, FLAME_INIT_NORMAL, 1, out_std}},
    };
    const int n_mixer[3] = {5, 4, 2};
    const expected block[4] = {
        {"norm1.weight", {c->D}, FLAME_INIT_ONES, 0, 0},
        {"mlp.fc1.weight", {2 * c->I, c->D}, FLAME_INIT_NORMAL, 1, 0.02},
        {"mlp.fc2.weight", {c->D, c->I}, FLAME_INIT_NORMAL, 1, out_std},
        {"norm2.weight", {c->D}, FLAME_INIT_ONES, 0, 0},
    };
    expected list[64];
    char names[64][FLAME_NAME_MAX];
    int count = 0;
    list[count++] = (expected){LM_ROOT ".embeddings.word_embeddings.weight", {c->V, c->D}, FLAME_INIT_NORMAL, 0, 0.02};
    for (int l = 0; l < c->L; l++)
        for (int i = 0; i < n_mixer[c->kind[l]] + 4; i++) {
            expected e = i < n_mixer[c->kind[l]] ? mixer[c->kind[l]][i] : block[i - n_mixer[c->kind[l]]];
            snprintf(names[count], FLAME_NAME_MAX, LM_ROOT ".layers.%d.%s", l, e.name);
            e.name = names[count];
            list[count++] = e;
        }
    list[count++] = (expected){LM_ROOT ".ln_f.weight", {c->D}, FLAME_INIT_ONES, 0, 0};
    if (!c->tie)
        list[count++] = (expected){"lm_head.weight", {c->V, c->D}, FLAME_INIT_NORMAL, 1, 0.02};
    CHECK(t->n_params == count, "%d parameters, expected %d", t->n_params, count);
    for (int i = 0; i < t->n_params && i < count; i++) {
        const flame_param_spec *s = t->spec[i];
        const expected *e = &list[i];
        int ndim = e->shape[2] ? 3 : e->shape[1] ? 2 : 1, same_shape = s->ndim == ndim;
        for (int d = 0; d < ndim && same_shape; d++)
            same_shape = s->shape[d] == e->shape[d];
        CHECK(strcmp(s->name, e->name) == 0 && same_shape && (int)s->init == e->init && s->weight_decay == e->decay &&
                  (e->init != FLAME_INIT_NORMAL || fabs(s->init_std - e->std) < 1e-9),
              "parameter %d: got %s (ndim %d) init %d std %g decay %d, expected %s init %d std %g decay %d", i, s->name,
              s->ndim, (int)s->init, s->init_std, s->weight_decay, e->name, e->init, e->std, e->decay);
    }
}

/* ==================================================================== configs and cases */

/* a [model] section with HazyResearch's keys; lists spelled as a user might */
static kv_config tiny_config(const dims *c)
{
    kv_config cfg = {.n = 0};
    kv_set_int(&cfg, "n_embd", c->D);
    kv_set_int(&cfg, "n_layer", c->L);
    kv_set_int(&cfg, "n_inner", 16); /* rounds up to GatedMlp's multiple_of 256: I = 256 */
    kv_set_int(&cfg, "vocab_size", c->vocab);
    kv_set_float(&cfg, "layer_norm_epsilon", c->eps);
    kv_set(&cfg, "tie_word_embeddings", c->tie ? "true" : "false");
    char taylor[64] = "", sliding[64] = "";
    for (int l = 0; l < c->L; l++) {
        char *list = c->kind[l] == TAYLOR ? taylor : c->kind[l] == SLIDING ? sliding : NULL;
        if (list)
            snprintf(list + strlen(list), 64 - strlen(list), "%s%d", *list ? ", " : "[", l);
    }
    if (*taylor)
        kv_set(&cfg, "alt_mixer_layers", strcat(taylor, "]"));
    if (*sliding)
        kv_set(&cfg, "alt_mixer_2_layers", sliding + 1); /* without brackets */
    kv_set_int(&cfg, "feature_dim", c->F);
    kv_set_int(&cfg, "num_heads", c->Ht);
    kv_set_int(&cfg, "n_head", c->H);
    kv_set_int(&cfg, "window_size", c->window_size);
    kv_set_int(&cfg, "expand_proj", 2 * c->E / c->D);
    kv_set_int(&cfg, "kernel_size", c->K);
    kv_set(&cfg, "residual_in_fp32", "true"); /* accepted, ignored */
    return cfg;
}

/* D 8, four layers: BaseConv, Taylor, sliding, BaseConv. The MLP is 256
 * wide (n_inner 16 rounded up); the 11 tokens pad to 16. The
 * window_size 4 lets a query see itself and 2 keys before it, fewer than the
 * rows hold. norm eps 0.1, as the other model tests, keeps the norms smooth at
 * the finite differences' step. */
static dims tiny_dims(void)
{
    dims c = {.D = 8, .L = 4, .I = 256, .V = 16, .vocab = 11, .eps = 0.1, .tie = 1,
              .kind = {CONV, TAYLOR, SLIDING, CONV}, .E = 16, .K = 3, .Ht = 2, .F = 4, .H = 2, .window_size = 4};
    return c;
}

static void run_case(const char *name, const dims *c, int B, int T, const int32_t *cu, int n_seqs, int grads)
{
    kv_config cfg = tiny_config(c);
    run_model_case(name, &cfg, c, check_based_params, naive_mixer, B, T, cu, n_seqs, grads);
}

static double uniform_draw(void *state)
{
    (void)state;
    return testing_uniform();
}

/* the convolution's init: torch's Conv1d default for fan-in K, U(±1/sqrt(K)) */
static void check_init_values(void)
{
    dims c = tiny_dims();
    kv_config cfg = tiny_config(&c);
    const flame_plugin *p = flame_plugin_entry();
    void *m = create_checked(&cfg, "init");
    if (!m)
        return;
    int seen = 0;
    for (int i = 0; i < p->n_params(m); i++) {
        const flame_param_spec *s = p->param(m, i);
        if (s->init != FLAME_INIT_PLUGIN)
            continue;
        CHECK(strstr(s->name, "conv.conv.weight") != NULL, "%s: an unexpected FLAME_INIT_PLUGIN parameter", s->name);
        size_t n = numel_of(s);
        float *v = malloc(n * sizeof *v);
        p->init_values(m, i, v, n, uniform_draw, NULL);
        double lo = INFINITY, hi = -INFINITY, bound = 1 / sqrt(3.0);
        for (size_t j = 0; j < n; j++)
            lo = fmin(lo, v[j]), hi = fmax(hi, v[j]);
        CHECK(lo >= -bound && hi <= bound && lo < -0.8 * bound && hi > 0.8 * bound, "%s in [%g, %g]", s->name, lo, hi);
        free(v);
        seen++;
    }
    CHECK(seen == 2, "%d convolutions initialized by the plugin, expected 2", seen);
    p->destroy(m);
}

static void test_cases(void)
{
    dims c = tiny_dims();
    run_case("hybrid B=2 T=9", &c, 2, 9, NULL, 0, 1);
    /* three documents in a row, one of them a single token: neither the
     * convolution's window nor the attentions nor the positions cross a start */
    static const int32_t cu[] = {0, 5, 6, 13};
    run_case("hybrid cu_seqlens", &c, 1, 13, cu, 3, 1);
    dims untied = c;
    untied.tie = 0;
    untied.kind[0] = SLIDING, untied.kind[3] = TAYLOR;
    run_case("untied, mixers reordered", &untied, 2, 7, NULL, 0, 1);
    /* HazyResearch's eps, rows longer than the window and many documents */
    dims hazy = c;
    hazy.eps = 1e-5, hazy.window_size = 8;
    run_case("eps 1e-5, T=40", &hazy, 2, 40, NULL, 0, 0);
    check_init_values();
}

/* ==================================================================== create() */

static void test_create(void)
{
    const flame_plugin *p = flame_plugin_entry();
    CHECK(p->abi_version == FLAME_ABI_VERSION && p->size == sizeof(flame_plugin) && strcmp(p->name, "based") == 0,
          "plugin header");
    dims c = tiny_dims();
    const kv_config base = tiny_config(&c);
    {   /* vocab_size 11 pads to 16, 50257 to 50264 */
        void *m = create_checked(&base, "tiny");
        if (m) {
            CHECK(p->vocab_size(m) == 16, "vocab %lld, expected 16", (long long)p->vocab_size(m));
            p->destroy(m);
        }
    }
    static const refused_setting refused[] = {
        {"alt_mixer_layers", "1, 4", "alt_mixer_layers"},     /* layer 4 of 4 */
        {"alt_mixer_layers", "-1", "alt_mixer_layers"},
        {"alt_mixer_layers", "1x", "alt_mixer_layers"},
        {"alt_mixer_layers", "1.5", "alt_mixer_layers"},
        {"alt_mixer_layers", "99999999999999999999", "alt_mixer_layers"}, /* past a long */
        {"alt_mixer_layers", "1 1", "alt_mixer_layers: layer 1 is listed twice"},
        {"alt_mixer_2_layers", "1", "alt_mixer_2_layers: layer 1 is in alt_mixer_layers too"},
        {"n_head", "3", "n_head"},
        {"n_head", "8", "n_head"},                            /* heads of 1: no rotary pairs */
        {"num_heads", "3", "num_heads"},
        {"kernel_size", "9", "kernel_size"},
        {"feature_dim", "0", "feature_dim"},
        {"n_layer", "0", "n_layer"},
        {"layer_norm_epsilon", "-1", "layer_norm_epsilon"},
        {"initializer_range", "-1", "initializer_range"},
        {"pad_vocab_size_multiple", "0", "pad_vocab_size_multiple"},
        {"activation_function", "gelu", "activation_function"},
        {"rms_norm", "false", "rms_norm"},
        {"mlp_fc1_bias", "true", "mlp_fc1_bias"},
        {"qkv_proj_bias", "true", "qkv_proj_bias"},
        {"rotary_emb_interleaved", "true", "rotary_emb_interleaved"},
        {"rotary_emb_fraction", "0.5", "rotary_emb_fraction"},
        {"max_position_embeddings", "2048", "max_position_embeddings"},
        {"rotary_emb_base", "1", "rotary_emb_base"},
    };
    expect_refusals(&base, refused, sizeof refused / sizeof refused[0]);
    {   /* an odd expand_proj·n_embd cannot be halved */
        kv_config cfg = base;
        kv_set(&cfg, "n_embd", "9");
        kv_set(&cfg, "expand_proj", "3");
        expect_refusal(&cfg, &flame_cpu_ops, "expand_proj");
    }
    {
        flame_ops other = flame_cpu_ops;
        other.backend = "rocm";
        expect_refusal(&base, &other, "no Based kernels for backend rocm");
        expect_old_core_refused(&base);
    }
#ifdef FLAME_HAVE_CUDA
    {   /* the Taylor attention on CUDA takes feature_dim up to 16 */
        kv_config cfg = base;
        kv_set(&cfg, "feature_dim", "17");
        flame_ops cuda = flame_cpu_ops;
        cuda.backend = "cuda";
        expect_refusal(&cfg, &cuda, "feature_dim = 17");
    }
#endif
    check_oversized_batch(&base, &c);
}

/* ==================================================================== the presets */

/* HazyResearch's models, counted from their state_dict (the tied embedding once) */
static void test_presets(void)
{
    static const struct { const char *ini; int64_t params; } presets[] = {
        {"based-360m.ini", 362620928}, {"based-1b.ini", 1349453056}};
    const flame_plugin *p = flame_plugin_entry();
    for (int i = 0; i < 2; i++) {
        char ini[1024];
        snprintf(ini, sizeof ini, "%s/%s", FLAME_CONFIGS_DIR, presets[i].ini);
        flame_config *cfg = load_model_config(ini);
        if (!cfg)
            continue;
        flame_model_config view = config_model_view(cfg);
        char err[256] = "";
        void *m = p->create(&view, &flame_cpu_ops, err, sizeof err);
        CHECK(m != NULL, "%s: %s", presets[i].ini, err);
        int64_t total = 0;
        for (int j = 0; m && j < p->n_params(m); j++)
            total += (int64_t)numel_of(p->param(m, j));
        CHECK(total == presets[i].params, "%s: %lld parameters, expected %lld", presets[i].ini, (long long)total,
              (long long)presets[i].params);
        if (m)
            CHECK(p->vocab_size(m) == 50264, "%s: vocabulary %lld", presets[i].ini, (long long)p->vocab_size(m));
        if (m)
            p->destroy(m);
        config_destroy(cfg);
    }
}

int main(void)
{
    testing_seed(29);
    /* a chunk of 3 rows of the test's padded vocabulary: the LM head's chunk loop runs */
    lm_head_chunk_bytes = 3 * 16 * sizeof(float);
    test_create();
    test_presets();
    test_cases();
    return testing_result("test_based_model");
}
