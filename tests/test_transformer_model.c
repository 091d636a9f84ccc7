/* Tests of the transformer plugin at tiny sizes, through flame_plugin_entry()
 * and the real CPU op table, with a [model] section and parameters made here:
 *  - the plugin's own kernels (rotary, attention with GQA, varlen and a
 *    sliding window): their backward against central finite differences, the
 *    loss summed in double; a window of 1 gives every token its own v; on q,
 *    k and v side by side in one buffer (rows a stride apart) each gives
 *    what it gives on packed tensors, bit for bit, generation's step too;
 *  - the parameter list: fla's names, shapes, order, init rules, weight decay;
 *  - the loss and logits against a naive model written here in double (its own
 *    matmuls, norms, rotary, token-by-token softmax attention over the prefix);
 *  - the gradient of every parameter tensor against finite differences;
 *  - GQA, tied embeddings, cu_seqlens, a sliding window;
 *  - create() refusing what it does not implement, naming the key. */
#include <string.h>

#include "testing.h"
#include "transformer.h"

/* ==================================================================== the kernels */

/* a batch of tokens in sequences, heads of hd values, random q, k, v and a
 * random weighting w of the output: the checked function is Σ w·out */
typedef struct kernel_case {
    transformer_seqs seqs;
    attention_dims ad;
    int n, rd; /* rd: the rotated part of a head */
    float *q, *k, *v, *w, *out, *lse;
    float *turned_q, *turned_k; /* q and k after rotary, where the attention's dims have it */
} kernel_case;

static double weighted_sum(const float *w, const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * x[i];
    return s;
}

static double rotary_loss(void *ctx)
{
    kernel_case *c = ctx;
    size_t len = (size_t)c->n * c->ad.H * c->ad.hd;
    rotary_forward_cpu(c->out, c->q, &c->seqs, c->ad.H, c->ad.hd, c->rd, 10000.0f, (size_t)c->ad.H * c->ad.hd);
    return weighted_sum(c->w, c->out, len);
}

/* q and k turned first where the dims say rotary turned them (so the
 * numeric gradients are those of q and k before the turn) */
static void attention_of(kernel_case *c)
{
    const attention_dims *d = &c->ad;
    const float *q = c->q, *k = c->k;
    if (d->rotary_rd) {
        rotary_forward_cpu(c->turned_q, c->q, &c->seqs, d->H, d->hd, d->rotary_rd, d->rotary_base,
                           (size_t)d->H * d->hd);
        rotary_forward_cpu(c->turned_k, c->k, &c->seqs, d->Hkv, d->hd, d->rotary_rd, d->rotary_base,
                           (size_t)d->Hkv * d->hd);
        q = c->turned_q, k = c->turned_k;
    }
    attention_forward_cpu(c->out, c->lse, q, k, c->v, d);
}

static double attention_loss(void *ctx)
{
    kernel_case *c = ctx;
    attention_of(c);
    return weighted_sum(c->w, c->out, (size_t)c->n * c->ad.H * c->ad.hd);
}

/* every element of x: analytic against numeric */
static void check_input_grad(const char *what, float *x, const float *analytic, size_t n, testing_scalar_fn f,
                             void *ctx, double tol)
{
    double *numeric = malloc(n * sizeof *numeric);
    for (size_t i = 0; i < n; i++)
        numeric[i] = testing_richardson(&x[i], 1e-2f, f, ctx);
    testing_grad_close(what, analytic, numeric, n, tol);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        num += (analytic[i] - numeric[i]) * (analytic[i] - numeric[i]), den += numeric[i] * numeric[i];
    printf("%s: gradient relative error %.2e\n", what, sqrt(num / den));
    free(numeric);
}

static void kernel_open(kernel_case *c, const int32_t *cu, int n_seqs, int H, int Hkv, int hd,
                        int window)
{
    c->n = cu[n_seqs];
    c->seqs = (transformer_seqs){cu, n_seqs, NULL};
    c->ad = (attention_dims){c->seqs, H, Hkv, hd, 1.0f / sqrtf((float)hd), window, 0, 0, 0.0f};
    size_t nq = (size_t)c->n * H * hd, nkv = (size_t)c->n * Hkv * hd;
    c->q = testing_random(nq, -1.5f, 1.5f);
    c->k = testing_random(nkv, -1.5f, 1.5f);
    c->v = testing_random(nkv, -1.0f, 1.0f);
    c->w = testing_random(nq, -1.0f, 1.0f);
    c->out = calloc(nq, sizeof(float));
    c->lse = calloc((size_t)c->n * H, sizeof(float));
    c->turned_q = calloc(nq, sizeof(float));
    c->turned_k = calloc(nkv, sizeof(float));
}

static void kernel_close(kernel_case *c)
{
    free(c->q), free(c->k), free(c->v), free(c->w), free(c->out), free(c->lse);
    free(c->turned_q), free(c->turned_k);
}

/* heads of 8 values, the first rd of them turned */
static void test_rotary(const int32_t *cu, int n_seqs, int rd)
{
    kernel_case c;
    kernel_open(&c, cu, n_seqs, 3, 3, 8, 0);
    c.rd = rd;
    size_t len = (size_t)c.n * 3 * 8;
    float *dx = calloc(len, sizeof *dx);
    rotary_backward_cpu(dx, c.w, &c.seqs, 3, 8, rd, 10000.0f, 24);
    char what[64];
    snprintf(what, sizeof what, "rotary dx (%d of 8 turned)", rd);
    check_input_grad(what, c.q, dx, len, rotary_loss, &c, 1e-4);
    /* position 0 of every sequence is left as it is */
    rotary_forward_cpu(c.out, c.q, &c.seqs, 3, 8, rd, 10000.0f, 24);
    for (int s = 0; s < n_seqs; s++)
        CHECK(memcmp(c.out + (size_t)cu[s] * 24, c.q + (size_t)cu[s] * 24, 24 * sizeof(float)) == 0,
              "rotary moved the first token of sequence %d", s);
    /* the values past rd are x's at every position, and the turned ones moved */
    int kept = 1, moved = 0;
    for (size_t i = 0; i < len; i++)
        if ((int)(i % 8) >= rd)
            kept &= c.out[i] == c.q[i];
        else
            moved |= c.out[i] != c.q[i];
    CHECK(kept && moved, "rotary of %d of 8: values past %d changed (%d) or none turned (%d)", rd, rd, !kept, !moved);
    free(dx);
    kernel_close(&c);
}

/* rd > 0: q and k come out of rotary on rd of their 4 values, and the
 * backward's dq and dk are taken back through it (attention_dims.rotary_rd) */
static void test_attention(const char *name, const int32_t *cu, int n_seqs, int H, int Hkv,
                           int window, int rd)
{
    kernel_case c;
    int hd = 4;
    kernel_open(&c, cu, n_seqs, H, Hkv, hd, window);
    c.ad.rotary_rd = rd, c.ad.rotary_base = 100.0f; /* a small base: the angles move fast */
    size_t nq = (size_t)c.n * H * hd, nkv = (size_t)c.n * Hkv * hd;
    float *dq = calloc(nq, sizeof *dq), *dk = calloc(nkv, sizeof *dk), *dv = calloc(nkv, sizeof *dv);
    attention_of(&c);
    const float *q = rd ? c.turned_q : c.q, *k = rd ? c.turned_k : c.k;
    attention_backward_cpu(dq, dk, dv, c.w, c.out, c.lse, q, k, c.v, &c.ad);
    char what[96];
    snprintf(what, sizeof what, "attention %s dq", name);
    check_input_grad(what, c.q, dq, nq, attention_loss, &c, 1e-3);
    snprintf(what, sizeof what, "attention %s dk", name);
    check_input_grad(what, c.k, dk, nkv, attention_loss, &c, 1e-3);
    snprintf(what, sizeof what, "attention %s dv", name);
    check_input_grad(what, c.v, dv, nkv, attention_loss, &c, 1e-3);
    /* the first token of a sequence sees only itself: o = v */
    for (int s = 0; s < n_seqs; s++)
        for (int h = 0; h < H; h++) {
            const float *o = c.out + ((size_t)cu[s] * H + h) * hd;
            const float *v = c.v + ((size_t)cu[s] * Hkv + h / (H / Hkv)) * hd;
            CHECK(testing_rel_error(o, v, hd) < 1e-6, "attention %s: first token of sequence %d", name, s);
        }
    free(dq), free(dk), free(dv);
    kernel_close(&c);
}

/* a window of 1: every token sees only itself, so o = v row by row */
static void test_attention_self(const int32_t *cu, int n_seqs)
{
    kernel_case c;
    kernel_open(&c, cu, n_seqs, 4, 2, 4, 1);
    attention_forward_cpu(c.out, c.lse, c.q, c.k, c.v, &c.ad);
    int wrong = 0;
    for (int i = 0; i < c.n; i++)
        for (int h = 0; h < 4; h++)
            wrong += testing_rel_error(c.out + ((size_t)i * 4 + h) * 4, c.v + ((size_t)i * 2 + h / 2) * 4, 4) > 1e-6;
    CHECK(wrong == 0, "attention window 1: %d rows are not their own v", wrong);
    kernel_close(&c);
}

/* columns at.. of the joined rows are the packed ones, value for value */
static void check_columns(const char *what, const float *joined, int n, size_t stride, size_t at, size_t width,
                          const float *packed)
{
    CHECK(testing_columns_differ(joined, (size_t)n, stride, at, width, packed) == 0,
          "%s: the joined layout's values differ", what);
}

/* q, k, v as column blocks of one [n, q | k | v] buffer (rows W apart, a
 * joined projection's output): rotary over q's and k's heads at once, the
 * attention forward and backward, and generation's step give what they give
 * on packed tensors, bit for bit (the same sums; only addresses differ) */
static void test_joined(const int32_t *cu, int n_seqs, int H, int Hkv, int window, int rd)
{
    kernel_case c;
    int hd = 4;
    kernel_open(&c, cu, n_seqs, H, Hkv, hd, window);
    int n = c.n;
    size_t qw = (size_t)H * hd, kvw = (size_t)Hkv * hd, W = qw + 2 * kvw;
    float *qkv = malloc((size_t)n * W * sizeof *qkv), *dqkv = malloc((size_t)n * W * sizeof *dqkv);
    testing_put_columns(qkv, c.q, n, W, 0, qw), testing_put_columns(qkv, c.k, n, W, qw, kvw);
    testing_put_columns(qkv, c.v, n, W, qw + kvw, kvw);
    attention_dims joined = c.ad;
    joined.stride = (int)W;

    /* rotary: q's heads and, when they are as many, k's too in one call */
    float *rq = malloc((size_t)n * qw * sizeof *rq), *rk = malloc((size_t)n * kvw * sizeof *rk);
    rotary_forward_cpu(rq, c.q, &c.seqs, H, hd, rd, 10000.0f, qw);
    rotary_forward_cpu(rk, c.k, &c.seqs, Hkv, hd, rd, 10000.0f, kvw);
    float *turned = malloc((size_t)n * W * sizeof *turned);
    memcpy(turned, qkv, (size_t)n * W * sizeof *qkv);
    rotary_forward_cpu(turned, turned, &c.seqs, H + Hkv, hd, rd, 10000.0f, W);
    check_columns("rotary q", turned, n, W, 0, qw, rq);
    check_columns("rotary k", turned, n, W, qw, kvw, rk);
    check_columns("rotary's untouched v", turned, n, W, qw + kvw, kvw, c.v);
    rotary_backward_cpu(turned, turned, &c.seqs, H + Hkv, hd, rd, 10000.0f, W);
    rotary_backward_cpu(rq, rq, &c.seqs, H, hd, rd, 10000.0f, qw);
    check_columns("rotary backward", turned, n, W, 0, qw, rq);

    /* the attention */
    size_t nq = (size_t)n * qw, nkv = (size_t)n * kvw;
    float *dq = malloc(nq * sizeof *dq), *dk = malloc(nkv * sizeof *dk), *dv = malloc(nkv * sizeof *dv);
    float *o = malloc(nq * sizeof *o), *lse = malloc((size_t)n * H * sizeof *lse);
    attention_forward_cpu(c.out, c.lse, c.q, c.k, c.v, &c.ad);
    attention_backward_cpu(dq, dk, dv, c.w, c.out, c.lse, c.q, c.k, c.v, &c.ad);
    attention_forward_cpu(o, lse, qkv, qkv + qw, qkv + qw + kvw, &joined);
    for (size_t i = 0; i < (size_t)n * W; i++)
        dqkv[i] = NAN; /* every value must be written */
    attention_backward_cpu(dqkv, dqkv + qw, dqkv + qw + kvw, c.w, o, lse, qkv, qkv + qw, qkv + qw + kvw, &joined);
    CHECK(memcmp(o, c.out, nq * sizeof *o) == 0 && memcmp(lse, c.lse, (size_t)n * H * sizeof *lse) == 0,
          "attention on the joined layout: o or lse differ");
    check_columns("attention dq", dqkv, n, W, 0, qw, dq);
    check_columns("attention dk", dqkv, n, W, qw, kvw, dk);
    check_columns("attention dv", dqkv, n, W, qw + kvw, kvw, dv);

    /* generation's step for the n rows as n sequences at position 2 of a cache */
    size_t cache_stride = (size_t)n * kvw, cache_len = 3 * cache_stride;
    float *caches = testing_random(4 * cache_len, -1.0f, 1.0f), *step_o = malloc(2 * nq * sizeof *step_o);
    memcpy(caches + 2 * cache_len, caches, 2 * cache_len * sizeof *caches);
    attention_dims step = c.ad, step_joined = joined;
    step.seqs = step_joined.seqs = (transformer_seqs){NULL, 0, NULL};
    attention_decode_cpu(step_o, c.q, c.k, c.v, caches, caches + cache_len, cache_stride, n, 2, &step, rd, 10000.0f);
    attention_decode_cpu(step_o + nq, qkv, qkv + qw, qkv + qw + kvw, caches + 2 * cache_len, caches + 3 * cache_len,
                         cache_stride, n, 2, &step_joined, rd, 10000.0f);
    CHECK(memcmp(step_o, step_o + nq, nq * sizeof *o) == 0 &&
              memcmp(caches, caches + 2 * cache_len, 2 * cache_len * sizeof *caches) == 0,
          "generation's step on the joined layout: o or the caches differ");
    printf("joined q, k, v (H=%d Hkv=%d window=%d rd=%d): rotary, attention and generation as on packed tensors\n",
           H, Hkv, window, rd);

    float *bufs[] = {qkv, dqkv, rq, rk, turned, dq, dk, dv, o, lse, caches, step_o};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    kernel_close(&c);
}

static void test_kernels(void)
{
    static const int32_t one[] = {0, 7}, three[] = {0, 3, 4, 9};
    test_rotary(three, 3, 8);
    test_rotary(three, 3, 4); /* GPT-NeoX's and flash-attn's partial rotary */
    test_attention("H=2", one, 1, 2, 2, 0, 0);
    test_attention("GQA H=4 Hkv=2", one, 1, 4, 2, 0, 0);
    test_attention("varlen GQA H=4 Hkv=1", three, 3, 4, 1, 0, 0);
    test_attention("window 3, varlen GQA H=4 Hkv=2", three, 3, 4, 2, 3, 0);
    test_attention("window 2, H=2", one, 1, 2, 2, 2, 0);
    test_attention("rotary, H=2", one, 1, 2, 2, 0, 4);
    test_attention("rotary on 2 of 4, varlen GQA H=4 Hkv=2", three, 3, 4, 2, 0, 2);
    test_attention_self(three, 3);
    test_joined(three, 3, 4, 2, 0, 4);
    test_joined(three, 3, 2, 2, 2, 2);
}

typedef struct dims {
    int D, L, H, Hkv, I, V;
    double eps, theta;
    int tie;
    int window; /* 0: none */
} dims;

#include "plugin_testing.h"
#include "lm_parts.h"

/* ==================================================================== the naive model, in double */


/* Llama's rotate-half: pairs (j, j + hd/2) turn by pos / theta^(j/(hd/2)),
 * as a complex product (x_j + i·x_{j+hd/2}) · e^{iθ} */
static void rotate(double *x, int rows, int heads, int hd, const test_model *t)
{
    int half = hd / 2;
    for (int i = 0; i < rows; i++) {
        int pos = i - seq_start(t, i);
        for (int h = 0; h < heads; h++) {
            double *r = x + ((size_t)i * heads + h) * hd;
            for (int j = 0; j < half; j++) {
                double theta = pos / pow(t->c.theta, (double)j / half);
                double re = r[j], im = r[j + half];
                r[j] = re * cos(theta) - im * sin(theta);
                r[j + half] = re * sin(theta) + im * cos(theta);
            }
        }
    }
}

/* token by token: softmax over the keys of its own sequence up to itself */
static double *attend(const test_model *t, const double *q, const double *k, const double *v)
{
    int n = t->B * t->T, H = t->c.H, Hkv = t->c.Hkv, hd = t->c.D / H;
    double *o = calloc((size_t)n * H * hd, sizeof *o), *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / Hkv), start = seq_start(t, i);
            if (t->c.window && i - t->c.window + 1 > start)
                start = i - t->c.window + 1;
            const double *qi = q + ((size_t)i * H + h) * hd;
            double mx = -1e300, z = 0;
            for (int j = start; j <= i; j++) {
                double s = 0;
                for (int c = 0; c < hd; c++)
                    s += qi[c] * k[((size_t)j * Hkv + g) * hd + c];
                p[j] = s / sqrt((double)hd);
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = start; j <= i; j++)
                z += p[j] = exp(p[j] - mx);
            for (int j = start; j <= i; j++)
                for (int c = 0; c < hd; c++)
                    o[((size_t)i * H + h) * hd + c] += p[j] / z * v[((size_t)j * Hkv + g) * hd + c];
        }
    free(p);
    return o;
}

static void add_into(double *h, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h[i] += x[i];
    free(x);
}

static void naive_attention(const test_model *t, double *h, int l)
{
    const dims *c = &t->c;
    int n = t->B * t->T, D = c->D, hd = D / c->H;
    double *a = rms_norm(h, n, D, P(t, "model.layers.%d.attn_norm.weight", l), c->eps);
    double *q = linear(a, n, D, P(t, "model.layers.%d.attn.q_proj.weight", l), D, NULL);
    double *k = linear(a, n, D, P(t, "model.layers.%d.attn.k_proj.weight", l), c->Hkv * hd, NULL);
    double *v = linear(a, n, D, P(t, "model.layers.%d.attn.v_proj.weight", l), c->Hkv * hd, NULL);
    rotate(q, n, c->H, hd, t);
    rotate(k, n, c->Hkv, hd, t);
    double *o = attend(t, q, k, v);
    add_into(h, linear(o, n, D, P(t, "model.layers.%d.attn.o_proj.weight", l), D, NULL), (size_t)n * D);
    free(a), free(q), free(k), free(v), free(o);
}

/* ==================================================================== checks */

static void check_transformer_params(const test_model *t)
{
    const dims *c = &t->c;
    int kv = c->Hkv * (c->D / c->H), N = FLAME_INIT_NORMAL, ONES = FLAME_INIT_ONES;
    const expected_param layer[] = {
        {"attn_norm.weight", c->D, 0, ONES, 0, 0},       {"attn.q_proj.weight", c->D, c->D, N, 1, 0},
        {"attn.k_proj.weight", kv, c->D, N, 1, 0},       {"attn.v_proj.weight", kv, c->D, N, 1, 0},
        {"attn.o_proj.weight", c->D, c->D, N, 1, 0},     {"mlp_norm.weight", c->D, 0, ONES, 0, 0},
        {"mlp.gate_proj.weight", c->I, c->D, N, 1, 0},   {"mlp.up_proj.weight", c->I, c->D, N, 1, 0},
        {"mlp.down_proj.weight", c->D, c->I, N, 1, 0},
    };
    check_param_list(t, layer, (int)(sizeof layer / sizeof layer[0]));
}

/* ==================================================================== cases */

static kv_config tiny_config(const dims *c)
{
    kv_config cfg = lm_config_of(c);
    kv_set_int(&cfg, "num_heads", c->H);
    kv_set_int(&cfg, "num_kv_heads", c->Hkv);
    kv_set_float(&cfg, "rope_theta", c->theta);
    /* keys fla-org/flame's transformer configs carry that change nothing */
    kv_set(&cfg, "max_position_embeddings", "8192");
    kv_set(&cfg, "attention_bias", "false");
    if (c->window)
        kv_set_int(&cfg, "window_size", c->window);
    return cfg;
}

static void run_case(const char *name, const dims *c, int B, int T, const int32_t *cu, int n_seqs,
                     int grads)
{
    kv_config cfg = tiny_config(c);
    run_model_case(name, &cfg, c, check_transformer_params, naive_attention, B, T, cu, n_seqs, grads);
}

static void test_cases(void)
{
    /* a small rope_theta turns the angles visibly within 9 tokens */
    dims c = {.D = 16, .L = 2, .H = 4, .Hkv = 4, .I = 24, .V = 11, .eps = 1e-6, .theta = 100, .tie = 0};
    run_case("B=2 T=9", &c, 2, 9, NULL, 0, 1);
    /* 9 rows of 11 logits fit one chunk of the head: the forward makes their gradient */
    run_case("B=1 T=9, head in one chunk", &c, 1, 9, NULL, 0, 1);

    dims gqa = c;
    gqa.Hkv = 2, gqa.tie = 1;
    run_case("GQA 4/2, tied", &gqa, 2, 9, NULL, 0, 1);

    /* three documents in one row, one of them a single token */
    static const int32_t cu[] = {0, 4, 5, 13};
    dims var = c;
    var.Hkv = 1;
    run_case("cu_seqlens, GQA 4/1", &var, 1, 13, cu, 3, 1);

    /* a sliding window of 3 tokens, shorter than two of the documents */
    dims win = var;
    win.window = 3;
    run_case("window_size 3, cu_seqlens", &win, 1, 13, cu, 3, 1);

    /* fla's rope_theta, a longer row: forward only */
    dims fla = c;
    fla.theta = 10000, fla.Hkv = 2;
    run_case("rope_theta 1e4, T=40", &fla, 2, 40, NULL, 0, 0);
}

/* ==================================================================== create() */

/* fla-org/flame's transformer_340M.json: the defaults fill the rest */
static void test_340M(void)
{
    const flame_plugin *p = flame_plugin_entry();
    kv_config cfg = {.n = 0};
    kv_set(&cfg, "hidden_size", "1024");
    kv_set(&cfg, "num_hidden_layers", "24");
    kv_set(&cfg, "num_heads", "16");
    kv_set(&cfg, "max_position_embeddings", "8192");
    void *m = create_checked(&cfg, "340M");
    if (!m)
        return;
    CHECK(p->n_params(m) == 2 + 24 * 9 + 1, "340M: %d parameters", p->n_params(m));
    check_340M_mlp(m, 1 + 6);
    /* 6·(24·(4·1024² + 3·2816·1024) + 32000·1024) + 12·24·1024·2048 */
    double want = 6.0 * (24.0 * (4.0 * 1024 * 1024 + 3.0 * 2816 * 1024) + 32000.0 * 1024) +
                  12.0 * 24 * 1024 * 2048;
    CHECK(fabs(p->flops_per_token(m, 2048) - want) < 1e-9 * want, "340M: flops_per_token %g, expected %g",
          p->flops_per_token(m, 2048), want);
    p->destroy(m);
}

static void test_create(void)
{
    check_plugin_header("transformer");

    dims c = {.D = 16, .L = 2, .H = 4, .Hkv = 2, .I = 24, .V = 11, .eps = 1e-6, .theta = 10000};
    const kv_config base = tiny_config(&c);
    static const refused_setting refused[] = {
        {"qkv_bias", "true", "qkv_bias = true is not supported yet"},
        {"qk_norm", "true", "qk_norm"},
        {"window_size", "0", "window_size"},
        {"attnres_block_size", "2", "attnres_block_size"},
        {"elementwise_affine", "false", "elementwise_affine"},
        {"hidden_act", "gelu", "hidden_act"},
        {"num_kv_heads", "3", "num_kv_heads"},
        {"num_heads", "3", "num_heads"},  /* 16 % 3 */
        {"num_heads", "16", "num_heads"}, /* head dim 1: no rotary pairs */
        {"hidden_size", "0", "hidden_size"},
        {"rope_theta", "0", "rope_theta"},
        {"norm_eps", "-1", "norm_eps"},
    };
    expect_refusals(&base, refused, sizeof refused / sizeof refused[0]);
    flame_ops other = flame_cpu_ops; /* a backend no build has kernels for */
    other.backend = "tpu";
    expect_refusal(&base, &other, "no kernels for backend tpu in this build");
    expect_old_core_refused(&base);
    test_340M();
    check_oversized_batch(&base, &c);
    check_joined_bound_apart_aborts(&base, "model.layers.0.attn.k_proj.weight is joined to");
}

int main(void)
{
    testing_seed(17);
    /* a chunk of 11 rows of the test's vocabulary: the LM head's chunk loop runs */
    lm_head_chunk_bytes = 484;
    test_kernels();
    test_create();
    test_cases();
    return testing_result("test_transformer_model");
}
