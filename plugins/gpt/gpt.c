/* GPT: flash-attn's GPTLMHeadModel (flash_attn/models/gpt.py) as its training
 * scripts build GPT-2 and GPT-3 from a GPT2Config, as a flame plugin; its
 * [model] keys are that config's.
 *
 * For tokens x (n = B·T rows), with LayerNorm(z)·w + b written norm(z, w, b):
 *   h = wte[x] + wpe[position]          (positions restart per sequence; no
 *                                        wpe with n_positions 0)
 *   per layer l:
 *     a  = norm(h, norm1)
 *     q, k, v = a·Wqkvᵀ + bqkv           (one product: a token's q, k and v
 *                                        side by side; H heads of hd each)
 *     q, k = rotary(q), rotary(k) on each head's first rd = int(hd ·
 *          rotary_emb_fraction) values (GPT-3's -rotary configs; none at 0)
 *     o  = causal softmax attention, scale hd^-½ (÷ (l + 1) with
 *          scale_attn_by_inverse_layer_idx)
 *     h  = h + o·Woᵀ + bo
 *     h  = h + fc2(gelu(fc1(m))),  m = norm(h, norm2), fc1 and fc2 with biases
 *   (h, the residual stream, in fp32 with residual_in_fp32; the branches'
 *   products read and write activations either way)
 *   logits = norm(h, ln_f)·wteᵀ (tied; lm_head otherwise);
 *   loss = mean cross-entropy over targets ≥ 0
 * The embedding, the MLP and the head are lm_model's (LayerNorm, GELU MLP,
 * position table); attention is the transformer plugin's kernels. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/plugin.h>

#include "../common/lm_model.h"
#include "../transformer/transformer_kernels.h"

/* ------------------------------------------------------------------ options */

#define DROPOUT_HELP "dropout: flame trains without it (GPT2Config's default 0.1 is not applied)"
#define KERNEL_HELP "flash-attn kernel choice (same math)"

static const flame_option gpt_options[] = {
    {"n_embd", FLAME_TYPE_INT, "768", "model width D", 0},
    {"n_layer", FLAME_TYPE_INT, "12", "number of blocks", 0},
    {"n_head", FLAME_TYPE_INT, "12", "attention heads H; head dim = n_embd / n_head", 0},
    {"n_inner", FLAME_TYPE_INT, NULL, "MLP width (unset: 4·n_embd)", 0},
    {"n_positions", FLAME_TYPE_INT, "1024",
     "rows of the learned position table, the longest sequence (0: no table)", 0},
    {"max_position_embeddings", FLAME_TYPE_INT, NULL,
     "GPT2Config's other name of n_positions (given, it wins: flash-attn's -rotary configs set it to 0)", 0},
    {"vocab_size", FLAME_TYPE_INT, "50257", "tokens of the tokenizer", 0},
    {"pad_vocab_size_multiple", FLAME_TYPE_INT, "1",
     "the embedding's rows: vocab_size rounded up to a multiple of this (flash-attn's configs: 8)", 0},
    {"layer_norm_epsilon", FLAME_TYPE_FLOAT, "1e-5", "epsilon of every LayerNorm", 0},
    {"initializer_range", FLAME_TYPE_FLOAT, "0.02",
     "std of the normal initialization (out_proj and fc2: ÷ sqrt(2·n_layer))", 0},
    {"activation_function", FLAME_TYPE_STRING, "gelu_new",
     "the MLP's activation: gelu_new, gelu_pytorch_tanh, gelu_fast or gelu_approx (GELU's tanh form)", 0},
    {"tie_word_embeddings", FLAME_TYPE_BOOL, "true", "use the embedding matrix as lm_head", 0},
    {"scale_attn_weights", FLAME_TYPE_BOOL, "true", "scale attention scores by head_dim^-1/2", 0},
    {"scale_attn_by_inverse_layer_idx", FLAME_TYPE_BOOL, "false",
     "divide layer l's attention scores by l + 1 too (flash-attn's GPT-2 model config: true)", 0},
    {"rotary_emb_fraction", FLAME_TYPE_FLOAT, "0",
     "rotary embedding (rotate-half) on the first int(head_dim·fraction) values of each head (0: none)", 0},
    {"rotary_emb_interleaved", FLAME_TYPE_BOOL, "false", "GPT-J's interleaved rotary (true: not supported yet)", 0},
    {"rotary_emb_base", FLAME_TYPE_FLOAT, "10000", "base of the rotary embedding", 0},
    {"residual_in_fp32", FLAME_TYPE_BOOL, "false",
     "keep the residual stream (each block's input and output, and its gradient) in fp32; false: in the "
     "activation type (bf16 on CUDA). flash-attn's GPT configs: true", 0},
    {"resid_pdrop", FLAME_TYPE_FLOAT, NULL, DROPOUT_HELP, 1},
    {"embd_pdrop", FLAME_TYPE_FLOAT, NULL, DROPOUT_HELP, 1},
    {"attn_pdrop", FLAME_TYPE_FLOAT, NULL, DROPOUT_HELP, 1},
    {"use_flash_attn", FLAME_TYPE_BOOL, NULL, KERNEL_HELP, 1},
    {"fused_bias_fc", FLAME_TYPE_BOOL, NULL, KERNEL_HELP, 1},
    {"fused_mlp", FLAME_TYPE_BOOL, NULL, KERNEL_HELP, 1},
    {"fused_dropout_add_ln", FLAME_TYPE_BOOL, NULL, KERNEL_HELP, 1},
    {"reorder_and_upcast_attn", FLAME_TYPE_BOOL, NULL, "Hugging Face's fp16 attention order (same math)", 1},
    {"use_cache", FLAME_TYPE_BOOL, NULL, "Hugging Face generation setting", 1},
    {"bos_token_id", FLAME_TYPE_INT, NULL, "Hugging Face token id", 1},
    {"eos_token_id", FLAME_TYPE_INT, NULL, "Hugging Face token id", 1},
};
#define N_OPTIONS ((int)(sizeof gpt_options / sizeof gpt_options[0]))

/* ------------------------------------------------------------------ the model */

/* a layer's parameters, in flash-attn's Block order (the MLP's are lm_model's LM_MLP_GELU) */
enum {
    P_QKV, P_QKV_BIAS, P_OUT, P_OUT_BIAS, P_NORM1, P_NORM1_BIAS,
    P_FC1, P_FC1_BIAS, P_FC2, P_FC2_BIAS, P_NORM2, P_NORM2_BIAS, P_PER_LAYER
};

typedef struct gpt_dims {
    lm_shape s; /* D, L, V (padded), I, eps, init_std, tie, positions */
    int H, hd;
    int rd;     /* the rotated values of a head, 0: no rotary */
    float base; /* rotary_emb_base */
    int scale_attn, inverse_layer_scale;
} gpt_dims;

/* what one layer keeps from its forward for its backward */
typedef struct layer_acts {
    float *mean, *rstd; /* [n]: norm1's statistics */
    void *a;            /* [n,D]: norm1 of the layer input */
    void *qkv;          /* [n,3D]: a token's q, k, v side by side (Wqkv's output) */
    void *o;            /* attention out [n,D] */
    float *lse;         /* log-sum-exp [n,H] */
} layer_acts;

/* gradient scratch reused by every layer */
typedef struct grad_scratch {
    void *o;             /* [n,D] */
    void *qkv;           /* [n,3D] as layer_acts' */
    float *attn_work;    /* the attention backward's scratch (kern->attention_work_floats) */
} grad_scratch;

typedef struct gpt_model {
    lm_model base; /* first: the shared vtable entries take the model as it */
    const transformer_kernels *kern;
    gpt_dims c;
    grad_scratch d;
} gpt_model;

static layer_acts *acts(const gpt_model *m, int l) { return (layer_acts *)m->base.layers + l; }
static const void *W(const gpt_model *m, int layer, int p) { return lm_model_w(&m->base, layer, p); }
static float *dW(const gpt_model *m, int layer, int p) { return lm_model_dw(&m->base, layer, p); }

/* ------------------------------------------------------------------ create */

/* a whole number ≥ 0 (n_positions may be 0); returns 0 or -1 with err */
static int read_count(const lm_options *o, const char *key, int *out, char *err, size_t err_len)
{
    int64_t v = lm_opt_int(o, key);
    if (v < 0 || v > INT_MAX) {
        snprintf(err, err_len, "%s = %lld: expected a whole number in [0, 2^31)", key, (long long)v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int read_sizes(const lm_options *o, gpt_dims *c, char *err, size_t err_len)
{
    lm_shape *s = &c->s;
    int vocab, multiple;
    if (lm_read_size(o, "n_embd", &s->D, err, err_len) || lm_read_size(o, "n_layer", &s->L, err, err_len) ||
        lm_read_size(o, "n_head", &c->H, err, err_len) || lm_read_size(o, "vocab_size", &vocab, err, err_len) ||
        lm_read_size(o, "pad_vocab_size_multiple", &multiple, err, err_len))
        return -1;
    const char *positions_key = lm_opt_given(o, "max_position_embeddings") ? "max_position_embeddings" : "n_positions";
    if (read_count(o, positions_key, &s->positions, err, err_len))
        return -1;
    if ((int64_t)(vocab + multiple - 1) / multiple * multiple > INT_MAX) {
        snprintf(err, err_len, "vocab_size = %d padded to a multiple of %d is 2^31 or more", vocab, multiple);
        return -1;
    }
    s->V = (vocab + multiple - 1) / multiple * multiple;
    if (c->s.D % c->H) {
        snprintf(err, err_len, "n_head = %d does not divide n_embd = %d", c->H, s->D);
        return -1;
    }
    c->hd = s->D / c->H;
    if (lm_opt_given(o, "n_inner"))
        return lm_read_size(o, "n_inner", &s->I, err, err_len);
    if (s->D > INT_MAX / 4) {
        snprintf(err, err_len, "n_embd = %d: 4·n_embd (the MLP's width) is 2^31 or more", s->D);
        return -1;
    }
    s->I = 4 * s->D;
    return 0;
}

/* flash-attn's rotary_emb_dim = int(rotary_emb_fraction · head_dim), rotate-half */
static int read_rotary(const lm_options *o, gpt_dims *c, char *err, size_t err_len)
{
    static const lm_bool_setting interleaved[] = {{"rotary_emb_interleaved", 0}};
    if (lm_check_supported(o, interleaved, LM_COUNT(interleaved), NULL, 0, err, err_len))
        return -1;
    double fraction = lm_opt_float(o, "rotary_emb_fraction"), base = lm_opt_float(o, "rotary_emb_base");
    if (!(fraction >= 0 && fraction <= 1)) {
        snprintf(err, err_len, "rotary_emb_fraction = %g: expected a number in [0, 1]", fraction);
        return -1;
    }
    c->rd = (int)(fraction * c->hd);
    if (c->rd % 2 || (fraction > 0 && c->rd == 0)) {
        snprintf(err, err_len, "rotary_emb_fraction = %g of heads of %d gives %d values to rotate: expected an "
                 "even number ≥ 2", fraction, c->hd, c->rd);
        return -1;
    }
    if (c->rd && !(base > 1)) {
        snprintf(err, err_len, "rotary_emb_base = %g: expected a number > 1", base);
        return -1;
    }
    c->base = (float)base;
    return 0;
}

/* the settings of GPT2Config the plugin computes as flash-attn does, or refuses */
static int read_settings(const lm_options *o, gpt_dims *c, char *err, size_t err_len)
{
    static const char *const tanh_gelus[] = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_approx"};
    const char *act = lm_opt_string(o, "activation_function");
    int known = 0;
    for (int i = 0; i < LM_COUNT(tanh_gelus); i++)
        known |= strcmp(act, tanh_gelus[i]) == 0;
    if (!known) {
        snprintf(err, err_len, "activation_function = %s is not supported yet (only GELU's tanh form: "
                 "gelu_new, gelu_pytorch_tanh, gelu_fast, gelu_approx)", act);
        return -1;
    }
    if (read_rotary(o, c, err, err_len))
        return -1;
    double eps = lm_opt_float(o, "layer_norm_epsilon"), std = lm_opt_float(o, "initializer_range");
    if (!(eps > 0) || !(std >= 0)) {
        snprintf(err, err_len, "%s = %g: expected a number %s", eps > 0 ? "initializer_range" : "layer_norm_epsilon",
                 eps > 0 ? std : eps, eps > 0 ? "≥ 0" : "> 0");
        return -1;
    }
    c->s.eps = (float)eps, c->s.init_std = (float)std;
    c->s.tie = lm_opt_bool(o, "tie_word_embeddings");
    c->s.resid_f32 = lm_opt_bool(o, "residual_in_fp32");
    c->scale_attn = lm_opt_bool(o, "scale_attn_weights");
    c->inverse_layer_scale = lm_opt_bool(o, "scale_attn_by_inverse_layer_idx");
    return 0;
}

/* matrices normal with weight decay (out_proj and fc2 at std / sqrt(2L)); biases zeros and
 * norms ones, without */
static void add_layer_params(void *model, int l)
{
    gpt_model *m = model;
    const lm_shape *s = &m->c.s;
    float scaled = s->init_std / sqrtf(2.0f * (float)s->L);
    lm_model *b = &m->base;
    lm_model_add_layer_param(b, l, "mixer.Wqkv.weight", 3 * (int64_t)s->D, s->D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "mixer.Wqkv.bias", 3 * (int64_t)s->D, 0, FLAME_INIT_ZEROS);
    lm_model_add_layer_scaled(b, l, "mixer.out_proj.weight", s->D, s->D, scaled);
    lm_model_add_layer_param(b, l, "mixer.out_proj.bias", s->D, 0, FLAME_INIT_ZEROS);
    lm_model_add_layer_param(b, l, "norm1.weight", s->D, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(b, l, "norm1.bias", s->D, 0, FLAME_INIT_ZEROS);
    lm_model_add_layer_param(b, l, "mlp.fc1.weight", s->I, s->D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "mlp.fc1.bias", s->I, 0, FLAME_INIT_ZEROS);
    lm_model_add_layer_scaled(b, l, "mlp.fc2.weight", s->D, s->I, scaled);
    lm_model_add_layer_param(b, l, "mlp.fc2.bias", s->D, 0, FLAME_INIT_ZEROS);
    lm_model_add_layer_param(b, l, "norm2.weight", s->D, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(b, l, "norm2.bias", s->D, 0, FLAME_INIT_ZEROS);
}

static void *gpt_create(const flame_model_config *cfg, const flame_ops *ops, char *err, size_t err_len)
{
    const transformer_kernels *kern = transformer_kernels_for(ops->backend);
    if (!kern) {
        snprintf(err, err_len, "no kernels for backend %s in this build", ops->backend);
        return NULL;
    }
    if (!FLAME_OPS_HAS(ops, add) || !FLAME_OPS_HAS(ops, matmul_dgelu_backward)) {
        snprintf(err, err_len, "the %s op table lacks GPT's ops (a core older than ABI 5.9)", ops->backend);
        return NULL;
    }
    gpt_dims c = {0};
    lm_options opts = {cfg, gpt_options, N_OPTIONS};
    if (read_sizes(&opts, &c, err, err_len) || read_settings(&opts, &c, err, err_len))
        return NULL;
    if (c.s.resid_f32 && !FLAME_OPS_HAS(ops, layernorm_backward_f32)) {
        snprintf(err, err_len, "residual_in_fp32 = true: the %s op table lacks the fp32 stream's ops (a core "
                 "older than ABI 5.10)", ops->backend);
        return NULL;
    }
    const char *why = kern->unsupported_head_dim(c.hd);
    if (why) {
        snprintf(err, err_len, "n_head = %d: head dim %d (n_embd / n_head) is not supported on %s: %s", c.H,
                 c.hd, ops->backend, why);
        return NULL;
    }
    c.s.per_layer = P_PER_LAYER;
    c.s.root = "transformer", c.s.embeddings = "embeddings.word_embeddings", c.s.final_norm = "ln_f";
    c.s.position_embeddings = "embeddings.position_embeddings";
    c.s.mlp_layout = LM_MLP_GELU, c.s.layernorm = 1;
    c.s.mlp_kept.norm_output = 1; /* as layer_acts keeps norm1's (GELU's output is kept anyway) */
    gpt_model *m = calloc(1, sizeof *m);
    if (m)
        m->kern = kern, m->c = c; /* before the parameters: add_layer_params reads them */
    return lm_model_create(m, ops, &c.s, add_layer_params, sizeof(layer_acts), err, err_len);
}

/* ------------------------------------------------------------------ reserve */

static void carve_all(void *model, lm_carver *cv, size_t n)
{
    gpt_model *m = model;
    size_t D = (size_t)m->c.s.D;
    lm_model_carve(&m->base, cv, n);
    for (int l = 0; l < m->c.s.L; l++) {
        layer_acts *A = acts(m, l);
        A->mean = lm_take_floats(cv, n);
        A->rstd = lm_take_floats(cv, n);
        A->a = lm_take_acts(cv, n * D);
        A->qkv = lm_take_acts(cv, n * 3 * D);
        A->o = lm_take_acts(cv, n * D);
        A->lse = lm_take_floats(cv, n * m->c.H);
    }
    grad_scratch *d = &m->d;
    d->o = lm_take_scratch_acts(cv, n * D);
    d->qkv = lm_take_scratch_acts(cv, n * 3 * D);
    d->attn_work = lm_take_floats(cv, m->kern->attention_work_floats((int)n, m->c.H, m->c.hd));
}

static int gpt_reserve(void *model, int B, int T, char *err, size_t err_len)
{
    gpt_model *m = model;
    /* the kernels index rows of heads (n·H) with an int */
    if (B < 1 || T < 1 || (int64_t)B * T * m->c.H > INT_MAX) {
        snprintf(err, err_len, "cannot reserve a batch of %d×%d tokens", B, T);
        return -1;
    }
    if (m->c.s.positions && T > m->c.s.positions) {
        snprintf(err, err_len, "sequences of %d tokens are longer than the position table (n_positions = %d)", T,
                 m->c.s.positions);
        return -2;
    }
    return lm_model_reserve(&m->base, (size_t)B * T, carve_all, m, err, err_len);
}

/* ------------------------------------------------------------------ attention */

static attention_dims attn_dims(const gpt_model *m, int l)
{
    float scale = m->c.scale_attn ? 1.0f / sqrtf((float)m->c.hd) : 1.0f;
    if (m->c.inverse_layer_scale)
        scale /= (float)(l + 1);
    attention_dims d = {{m->base.batch.cu, m->base.batch.n_seqs, m->base.batch.cu_backend}, m->c.H, m->c.H,
                        m->c.hd, scale, 0, 3 * m->c.s.D, m->c.rd, m->c.base};
    return d;
}

/* q, k or v (i = 0, 1, 2) of a [n,3D] buffer of them side by side */
static void *qkv_part(const gpt_model *m, void *qkv, int i)
{
    return lm_act_at(m->base.ops, qkv, (size_t)i * m->c.s.D);
}

/* one position of generation: this layer's keys and values into the caches,
 * the attention over them into A->o. The caches are position-major: the
 * [B, H, hd] blocks of position p, layer l, keys then values, at
 * ((p·L + l)·2 + kv) blocks */
static void attn_decode(gpt_model *m, int l, const attention_dims *ad)
{
    const layer_acts *A = acts(m, l);
    size_t block = (size_t)m->base.batch.n * m->c.s.D; /* n = B sequences of one token */
    void *keys = lm_act_at(m->base.ops, m->base.decoding, (size_t)l * 2 * block);
    void *values = lm_act_at(m->base.ops, m->base.decoding, ((size_t)l * 2 + 1) * block);
    m->kern->attention_decode(A->o, qkv_part(m, A->qkv, 0), qkv_part(m, A->qkv, 1), qkv_part(m, A->qkv, 2), keys,
                              values, (size_t)m->c.s.L * 2 * block, m->base.batch.n, m->base.decode_pos, ad, m->c.rd,
                              m->c.base);
}

/* mid[l] = resid[l] + the attention of its norm (lm_mixer_fn) */
static void attn_forward(void *model, int l)
{
    gpt_model *m = model;
    const flame_ops *ops = m->base.ops;
    int n = m->base.batch.n, D = m->c.s.D;
    layer_acts *A = acts(m, l);
    attention_dims ad = attn_dims(m, l);
    lm_norm_forward(ops, A->a, A->mean, A->rstd, m->base.resid[l], W(m, l, P_NORM1), W(m, l, P_NORM1_BIAS), n, D,
                    m->c.s.eps, m->c.s.resid_f32);
    ops->matmul_forward(A->qkv, A->a, W(m, l, P_QKV), W(m, l, P_QKV_BIAS), NULL, n, D, 3 * D);
    if (m->base.decoding) {
        attn_decode(m, l, &ad);
    } else {
        if (m->c.rd) /* q's and k's heads side by side: 2H heads a row */
            m->kern->rotary_forward(A->qkv, A->qkv, &ad.seqs, 2 * m->c.H, m->c.hd, m->c.rd, m->c.base, 3 * D);
        m->kern->attention_forward(A->o, A->lse, qkv_part(m, A->qkv, 0), qkv_part(m, A->qkv, 1),
                                   qkv_part(m, A->qkv, 2), &ad);
    }
    lm_residual_product(ops, m->base.mid[l], A->o, W(m, l, P_OUT), W(m, l, P_OUT_BIAS), m->base.resid[l], n, D, D,
                        m->c.s.resid_f32);
}

/* from d_resid = ∂loss/∂mid[l] to ∂loss/∂resid[l] (lm_mixer_fn) */
static void attn_backward(void *model, int l)
{
    gpt_model *m = model;
    const flame_ops *ops = m->base.ops;
    int n = m->base.batch.n, D = m->c.s.D;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    attention_dims ad = attn_dims(m, l);
    ops->matmul_backward(d->o, FLAME_GRAD_SET, dW(m, l, P_OUT), dW(m, l, P_OUT_BIAS), lm_model_d_resid_act(&m->base),
                         A->o, W(m, l, P_OUT), n, D, D);
    m->kern->attention_backward(qkv_part(m, d->qkv, 0), qkv_part(m, d->qkv, 1), qkv_part(m, d->qkv, 2), d->o, A->o,
                                A->lse, qkv_part(m, A->qkv, 0), qkv_part(m, A->qkv, 1), qkv_part(m, A->qkv, 2), &ad,
                                d->attn_work); /* dq and dk back through the rotary turn where there is one */
    const lm_prenorm norm = {m->base.resid[l], A->a, W(m, l, P_NORM1), dW(m, l, P_NORM1), A->rstd,
                             W(m, l, P_NORM1_BIAS), dW(m, l, P_NORM1_BIAS), A->mean, m->base.d_resid_act};
    const lm_projection qkv = {W(m, l, P_QKV), dW(m, l, P_QKV), d->qkv, 3 * D, dW(m, l, P_QKV_BIAS)};
    lm_prenorm_backward(ops, &norm, &qkv, 1, m->base.d_x, m->base.d_resid, n, D);
}

static float gpt_forward(void *model, const flame_batch *batch, float *logits)
{
    return lm_model_forward(model, batch, logits, "gpt", attn_forward, model);
}

static void gpt_backward(void *model) { lm_model_backward(model, attn_backward, model); }

/* ------------------------------------------------------------------ generation */

/* every layer's keys and values of max_len positions */
static size_t gpt_decode_state_size(const void *model, int B, int max_len)
{
    const gpt_model *m = model;
    if (!m->kern->attention_decode)
        return 0;
    return (size_t)max_len * m->c.s.L * 2 * B * m->c.s.D * m->base.ops->act_bytes;
}

static int gpt_decode_forward(void *model, void *state, const int32_t *tokens, int B, int pos, float *logits)
{
    gpt_model *m = model;
    return lm_model_decode(&m->base, state, tokens, B, pos, logits, "gpt", attn_forward, m);
}

/* ------------------------------------------------------------------ the rest */

/* 6 FLOPs per weight of every matmul (the position table and the embedding
 * lookup excluded, lm_head included even when tied), plus attention as
 * torchtitan counts it, 12·L·D·T (the transformer plugin's count) */
static double gpt_flops_per_token(const void *model, int T)
{
    const lm_shape *s = &((const gpt_model *)model)->c.s;
    double D = s->D, layer = 4.0 * D * D + 2.0 * D * s->I;
    return 6.0 * (s->L * layer + (double)s->V * D) + 12.0 * s->L * D * (double)T;
}

/* ------------------------------------------------------------------ identity */

/* Hugging Face's GPT-2 (GPT2LMHeadModel): GPT2Config's keys are the plugin's;
 * the same tensors under other names, its Conv1D weights stored [in, out] */
static const flame_hf_key gpt2_keys[] = {
    {"n_ctx", NULL, NULL}, /* older configs' n_positions */
    {"summary_type", NULL, NULL}, /* the sequence-classification head's */
    {"summary_use_proj", NULL, NULL},
    {"summary_activation", NULL, NULL},
    {"summary_proj_to_labels", NULL, NULL},
    {"summary_first_dropout", NULL, NULL},
    {"task_specific_params", NULL, NULL},
    {"add_cross_attention", NULL, "false"},
    {"rotary_emb_fraction", NULL, "0"}, /* it has no rotary */
};

static const flame_hf_tensor gpt2_tensors[] = {
    {"transformer.wte.", "transformer.embeddings.word_embeddings."},
    {"transformer.wpe.", "transformer.embeddings.position_embeddings."},
    {"transformer.h.*.ln_1.", "transformer.layers.*.norm1."},
    {"transformer.h.*.attn.c_attn.", "transformer.layers.*.mixer.Wqkv."},
    {"transformer.h.*.attn.c_proj.", "transformer.layers.*.mixer.out_proj."},
    {"transformer.h.*.attn.bias", NULL}, /* the causal mask older versions saved */
    {"transformer.h.*.attn.masked_bias", NULL},
    {"transformer.h.*.ln_2.", "transformer.layers.*.norm2."},
    {"transformer.h.*.mlp.c_fc.", "transformer.layers.*.mlp.fc1."},
    {"transformer.h.*.mlp.c_proj.", "transformer.layers.*.mlp.fc2."},
};

static const flame_hf_transposed gpt_transposed[] = {
    {"gpt2", "transformer.h.*.attn.c_attn.weight"},
    {"gpt2", "transformer.h.*.attn.c_proj.weight"},
    {"gpt2", "transformer.h.*.mlp.c_fc.weight"},
    {"gpt2", "transformer.h.*.mlp.c_proj.weight"},
};

static const flame_hf_format gpt_formats[] = {
    {"gpt", "GPTLMHeadModel", NULL, 0, NULL, 0},
    {"gpt2", "GPT2LMHeadModel", gpt2_keys, LM_COUNT(gpt2_keys), gpt2_tensors, LM_COUNT(gpt2_tensors)},
};

static const flame_plugin gpt_plugin = {
    FLAME_PLUGIN_HEADER,
    .name = "gpt",
    .description = "GPT-2/GPT-3 (flash-attn's GPTLMHeadModel: LayerNorm, GELU MLP, biases, learned positions)",
    .options = gpt_options,
    .n_options = N_OPTIONS,
    .create = gpt_create,
    .destroy = lm_model_destroy,
    .n_params = lm_model_n_params,
    .param = lm_model_param,
    .param_joined = lm_model_param_joined,
    .bind = lm_model_bind,
    .reserve = gpt_reserve,
    .forward = gpt_forward,
    .backward = gpt_backward,
    .watch_gradients = lm_model_watch_gradients,
    .flops_per_token = gpt_flops_per_token,
    .vocab_size = lm_model_vocab_size,
    .hf_formats = gpt_formats,
    .n_hf_formats = LM_COUNT(gpt_formats),
    .decode_state_size = gpt_decode_state_size,
    .decode_forward = gpt_decode_forward,
    .hf_transposed = gpt_transposed,
    .n_hf_transposed = LM_COUNT(gpt_transposed),
};

const flame_plugin *flame_plugin_entry(void) { return &gpt_plugin; }
