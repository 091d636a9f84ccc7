/* Transformer: fla's TransformerForCausalLM (fla/models/transformer,
 * fla/layers/attn.py), a Llama-style model, as a flame plugin.
 *
 * For tokens x (n = B·T rows), with RMSNorm(z)·w written norm(z, w):
 *   h = embed(x)
 *   per layer:
 *     a  = norm(h, attn_norm)
 *     q, k, v = a·Wqᵀ, a·Wkᵀ, a·Wvᵀ          (H query heads, Hkv key/value heads of hd;
 *                                              one product: Wq, Wk, Wv are stored joined)
 *     q, k = rotary(q), rotary(k)             (positions restart per sequence)
 *     o  = causal softmax attention (GQA)
 *     h  = h + o·Woᵀ
 *     h  = h + down(silu(gate(m)) · up(m)),   m = norm(h, mlp_norm)
 *   logits = norm(h, norm)·lm_headᵀ;  loss = mean cross-entropy over targets ≥ 0
 * The shared math goes through the op table; rotary and attention are the
 * plugin's own kernels (transformer.h), from the table of the op table's
 * backend (transformer_kernels.h: rotary_cpu.c and attention_cpu.c on the CPU,
 * rotary_cuda.cu and attention_cuda.cu on CUDA). The backward walks the same
 * steps in reverse. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/plugin.h>

#include "../common/lm_model.h"
#include "transformer_kernels.h"

/* ------------------------------------------------------------------ options */

static const flame_option tf_options[] = {
    LM_DECODER_OPTIONS,
    {"num_heads", FLAME_TYPE_INT, "32", "query heads H; head_dim = hidden_size / num_heads", 0},
    {"num_kv_heads", FLAME_TYPE_INT, NULL, "key/value heads, dividing num_heads (unset: num_heads)", 0},
    {"rope_theta", FLAME_TYPE_FLOAT, "10000", "base of the rotary embedding", 0},
    {"qkv_bias", FLAME_TYPE_BOOL, "false", "biases of q/k/v_proj (true: not supported yet)", 0},
    {"qk_norm", FLAME_TYPE_BOOL, "false", "RMSNorm of q and k per head (true: not supported yet)", 0},
    {"head_dim", FLAME_TYPE_INT, NULL,
     "width of a head (unset: hidden_size / num_heads, the only value supported)", 0},
    {"window_size", FLAME_TYPE_INT, NULL,
     "sliding-window attention: a token sees itself and the window_size - 1 tokens before it "
     "(Mistral's sliding_window; unset: every earlier token)", 0},
    {"fuse_norm", FLAME_TYPE_BOOL, NULL, "fla kernel choice (same parameters and math)", 1},
    {"attention_bias", FLAME_TYPE_BOOL, NULL, "not a key of fla's TransformerConfig; fla ignores it", 1},
    LM_DECODER_IGNORED_OPTIONS,
};
#define N_OPTIONS ((int)(sizeof tf_options / sizeof tf_options[0]))

/* ------------------------------------------------------------------ the model */

/* a layer's parameters, in fla's order */
enum { P_ATTN_NORM, P_Q, P_K, P_V, P_O, P_MLP_NORM, P_GATE, P_UP, P_DOWN, P_PER_LAYER };

typedef struct tf_dims {
    lm_shape s; /* D, L, V, the MLP's I, eps, init_std, tie */
    int H, Hkv, hd, q_dim, kv_dim;
    int qkv_dim; /* q_dim + 2·kv_dim: a token's q, k and v side by side */
    float theta;
    int window; /* window_size, 0 when unset */
} tf_dims;

/* what one layer keeps from its forward for its backward; void pointers are
 * activations (the op table's type), float ones fp32 */
typedef struct layer_acts {
    float *attn_rstd;       /* [n] */
    void *a;                /* [n,D]: norm of the layer input */
    void *qkv;              /* [n,qkv_dim]: a token's q, k (after rotary), v side by side */
    void *o;                /* attention out [n,q_dim] */
    float *lse;             /* log-sum-exp [n,H] */
} layer_acts;

/* gradient scratch reused by every layer */
typedef struct grad_scratch {
    void *o;                /* [n,q_dim] before o_proj */
    void *qkv;              /* [n,qkv_dim] as layer_acts' */
    float *attn_work;       /* the attention backward's scratch (kern->attention_work_floats) */
} grad_scratch;

typedef struct tf_model {
    lm_model base; /* first: the shared vtable entries take the model as it */
    const transformer_kernels *kern; /* rotary and attention for the ops' backend */
    tf_dims c;
    grad_scratch d;
} tf_model;

/* layer l's activations (lm_model.layers), their memory in the arena */
static layer_acts *acts(const tf_model *m, int l) { return (layer_acts *)m->base.layers + l; }

static const void *W(const tf_model *m, int layer, int p) { return lm_model_w(&m->base, layer, p); }
static float *dW(const tf_model *m, int layer, int p) { return lm_model_dw(&m->base, layer, p); }

/* ------------------------------------------------------------------ create */

/* the settings the plugin does not implement; returns 0 or -1 with err */
static int check_supported(const lm_options *cfg, char *err, size_t err_len)
{
    static const lm_bool_setting bools[] = {
        {"qkv_bias", 0}, {"qk_norm", 0}, {"elementwise_affine", 1},
    };
    static const char *const unset_only[] = {"attnres_block_size"};
    return lm_check_supported(cfg, bools, LM_COUNT(bools), unset_only,
                              LM_COUNT(unset_only), err, err_len);
}

/* heads: H divides D into even head dims; Hkv divides H */
static int read_heads(const lm_options *cfg, tf_dims *c, char *err, size_t err_len)
{
    if (lm_read_size(cfg, "num_heads", &c->H, err, err_len))
        return -1;
    c->Hkv = c->H;
    if (lm_opt_given(cfg, "num_kv_heads") && lm_read_size(cfg, "num_kv_heads", &c->Hkv, err, err_len))
        return -1;
    if (c->s.D % c->H || (c->s.D / c->H) % 2) {
        snprintf(err, err_len, "num_heads = %d: hidden_size = %d must split into heads of an even size "
                 "(rotary pairs)", c->H, c->s.D);
        return -1;
    }
    if (c->H % c->Hkv) {
        snprintf(err, err_len, "num_kv_heads = %d does not divide num_heads = %d", c->Hkv, c->H);
        return -1;
    }
    c->hd = c->s.D / c->H;
    if (lm_opt_given(cfg, "head_dim") && lm_opt_int(cfg, "head_dim") != c->hd) {
        snprintf(err, err_len, "head_dim = %lld: only hidden_size / num_heads = %d is supported",
                 (long long)lm_opt_int(cfg, "head_dim"), c->hd);
        return -1;
    }
    c->q_dim = c->s.D, c->kv_dim = c->Hkv * c->hd, c->qkv_dim = c->q_dim + 2 * c->kv_dim;
    return 0;
}

static int read_dims(const lm_options *cfg, tf_dims *c, char *err, size_t err_len)
{
    if (lm_read_shape(cfg, &c->s, err, err_len) || read_heads(cfg, c, err, err_len))
        return -1;
    c->s.per_layer = P_PER_LAYER;
    /* the MLP's norm output, as layer_acts keeps the attention's, and its
     * activation (n·I values a layer: 2.1 GiB at 340M, within what compiled
     * PyTorch's Llama takes) */
    c->s.mlp_kept = (lm_mlp_kept){.norm_output = 1, .activation = 1};
    double theta = lm_opt_float(cfg, "rope_theta");
    if (!(theta > 1)) {
        snprintf(err, err_len, "rope_theta = %g: expected a number > 1", theta);
        return -1;
    }
    c->theta = (float)theta;
    c->window = 0;
    if (lm_opt_given(cfg, "window_size") && lm_read_size(cfg, "window_size", &c->window, err, err_len))
        return -1;
    return 0;
}

/* matrices: normal, with weight decay; norms: ones, without; q_proj,
 * k_proj and v_proj joined, one [qkv_dim, D] matrix (and the MLP's gate and up) */
static void add_layer_params(void *model, int l)
{
    tf_model *m = model;
    const tf_dims *c = &m->c;
    static const char *const names[P_MLP_NORM] = {
        "attn_norm.weight", "attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight",
        "attn.o_proj.weight",
    };
    const int64_t shape[P_MLP_NORM][2] = {
        {c->s.D, 0}, {c->q_dim, c->s.D}, {c->kv_dim, c->s.D}, {c->kv_dim, c->s.D}, {c->s.D, c->q_dim},
    };
    for (int p = 0; p < P_MLP_NORM; p++) {
        lm_model_add_layer_param(&m->base, l, names[p], shape[p][0], shape[p][1], FLAME_INIT_ONES);
        if (p == P_K || p == P_V)
            lm_model_join_last(&m->base);
    }
    lm_model_add_gate_up_mlp(&m->base, l, c->s.D, c->s.I);
}

static void *tf_create(const flame_model_config *cfg, const flame_ops *ops, char *err, size_t err_len)
{
    const transformer_kernels *kern = transformer_kernels_for(ops->backend);
    if (!kern) {
        snprintf(err, err_len, "no kernels for backend %s in this build", ops->backend);
        return NULL;
    }
    tf_dims c = {0};
    lm_options opts = {cfg, tf_options, N_OPTIONS};
    if (check_supported(&opts, err, err_len) || read_dims(&opts, &c, err, err_len))
        return NULL;
    const char *why = kern->unsupported_head_dim(c.hd);
    if (why) {
        snprintf(err, err_len, "num_heads = %d: head dim %d (hidden_size / num_heads) is not supported "
                 "on %s: %s", c.H, c.hd, ops->backend, why);
        return NULL;
    }
    tf_model *m = calloc(1, sizeof *m);
    if (m)
        m->kern = kern, m->c = c; /* before the parameters: add_layer_params reads them */
    return lm_model_create(m, ops, &c.s, add_layer_params, sizeof(layer_acts), err, err_len);
}

/* ------------------------------------------------------------------ reserve */

static void carve_layer(layer_acts *A, lm_carver *cv, const tf_dims *c, size_t n)
{
    A->attn_rstd = lm_take_floats(cv, n);
    A->a = lm_take_acts(cv, n * c->s.D);
    A->qkv = lm_take_acts(cv, n * c->qkv_dim);
    A->o = lm_take_acts(cv, n * c->q_dim);
    A->lse = lm_take_floats(cv, n * c->H);
}

static void carve_grads(grad_scratch *d, lm_carver *cv, const tf_dims *c,
                        const transformer_kernels *kern, size_t n)
{
    d->o = lm_take_scratch_acts(cv, n * c->q_dim);
    d->qkv = lm_take_scratch_acts(cv, n * c->qkv_dim);
    d->attn_work = lm_take_floats(cv, kern->attention_work_floats((int)n, c->H, c->hd));
}

static void carve_all(void *model, lm_carver *cv, size_t n)
{
    tf_model *m = model;
    const tf_dims *c = &m->c;
    lm_model_carve(&m->base, cv, n);
    for (int l = 0; l < c->s.L; l++)
        carve_layer(acts(m, l), cv, c, n);
    carve_grads(&m->d, cv, c, m->kern, n);
}

static int tf_reserve(void *model, int B, int T, char *err, size_t err_len)
{
    tf_model *m = model;
    /* the kernels index rows of heads (n·H) with an int */
    if (B < 1 || T < 1 || (int64_t)B * T * m->c.H > INT_MAX) {
        snprintf(err, err_len, "cannot reserve a batch of %d×%d tokens", B, T);
        return -1;
    }
    return lm_model_reserve(&m->base, (size_t)B * T, carve_all, m, err, err_len);
}

/* ------------------------------------------------------------------ forward */

static attention_dims attn_dims(const tf_model *m)
{
    attention_dims d = {{m->base.batch.cu, m->base.batch.n_seqs, m->base.batch.cu_backend}, m->c.H, m->c.Hkv, m->c.hd,
                        1.0f / sqrtf((float)m->c.hd), m->c.window, m->c.qkv_dim, m->c.hd, m->c.theta};
    return d;
}

/* q, k or v (i = 0, 1, 2) of a [n,qkv_dim] buffer of them side by side */
static void *qkv_part(const tf_model *m, void *qkv, int i)
{
    return lm_act_at(m->base.ops, qkv, i == 0 ? 0 : (size_t)m->c.q_dim + (size_t)(i - 1) * m->c.kv_dim);
}

/* mid[l] = resid[l] + the attention of its norm (lm_mixer_fn) */
static void attn_forward(void *model, int l)
{
    tf_model *m = model;
    const flame_ops *ops = m->base.ops;
    const tf_dims *c = &m->c;
    layer_acts *A = acts(m, l);
    int n = m->base.batch.n;
    attention_dims ad = attn_dims(m);
    /* pre-norm, projections, rotary in place */
    ops->rmsnorm_forward(A->a, A->attn_rstd, m->base.resid[l], W(m, l, P_ATTN_NORM), n, c->s.D, c->s.eps);
    ops->matmul_forward(A->qkv, A->a, W(m, l, P_Q), NULL, NULL, n, c->s.D, c->qkv_dim);
    void *q = qkv_part(m, A->qkv, 0), *k = qkv_part(m, A->qkv, 1), *v = qkv_part(m, A->qkv, 2);
    if (m->base.decoding) {
        /* the caches, position-major: the [B, Hkv, hd] blocks of position p,
         * layer l, keys then values, at ((p·L + l)·2 + kv) blocks */
        size_t block = (size_t)n * c->kv_dim; /* n = B sequences of one token */
        void *keys = lm_act_at(ops, m->base.decoding, (size_t)l * 2 * block);
        void *values = lm_act_at(ops, m->base.decoding, ((size_t)l * 2 + 1) * block);
        m->kern->attention_decode(A->o, q, k, v, keys, values, (size_t)c->s.L * 2 * block, n, m->base.decode_pos,
                                  &ad, c->hd, c->theta);
    } else { /* q's and k's heads side by side: H + Hkv heads a row */
        m->kern->rotary_forward(A->qkv, A->qkv, &ad.seqs, c->H + c->Hkv, c->hd, c->hd, c->theta, c->qkv_dim);
        m->kern->attention_forward(A->o, A->lse, q, k, v, &ad);
    }
    /* output projection, onto the residual */
    ops->matmul_forward(m->base.mid[l], A->o, W(m, l, P_O), NULL, m->base.resid[l], n, c->q_dim, c->s.D);
}

static float tf_forward(void *model, const flame_batch *batch, float *logits)
{
    return lm_model_forward(model, batch, logits, "transformer", attn_forward, model);
}

/* ------------------------------------------------------------------ generation */

/* every layer's keys and values of max_len positions */
static size_t tf_decode_state_size(const void *model, int B, int max_len)
{
    const tf_model *m = model;
    if (!m->kern->attention_decode)
        return 0;
    return (size_t)max_len * m->c.s.L * 2 * B * m->c.kv_dim * m->base.ops->act_bytes;
}

static int tf_decode_forward(void *model, void *state, const int32_t *tokens, int B, int pos,
                             float *logits)
{
    tf_model *m = model;
    return lm_model_decode(&m->base, state, tokens, B, pos, logits, "transformer", attn_forward,
                           m);
}

/* ------------------------------------------------------------------ backward */

/* from d_resid = ∂loss/∂mid through o_proj, attention and rotary (the
 * attention's backward takes dq and dk back through it) to d.qkv */
static void attn_core_backward(tf_model *m, int l)
{
    const tf_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    attention_dims ad = attn_dims(m);
    m->base.ops->matmul_backward(d->o, FLAME_GRAD_SET, dW(m, l, P_O), NULL, m->base.d_resid, A->o, W(m, l, P_O),
                                 n, c->q_dim, c->s.D);
    m->kern->attention_backward(qkv_part(m, d->qkv, 0), qkv_part(m, d->qkv, 1), qkv_part(m, d->qkv, 2), d->o, A->o,
                                A->lse, qkv_part(m, A->qkv, 0), qkv_part(m, A->qkv, 1), qkv_part(m, A->qkv, 2), &ad,
                                d->attn_work);
}

/* from the projections' output gradients to d_resid = ∂loss/∂(layer input) */
static void attn_input_backward(tf_model *m, int l)
{
    const tf_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    const lm_prenorm norm = {m->base.resid[l], A->a, W(m, l, P_ATTN_NORM), dW(m, l, P_ATTN_NORM),
                             A->attn_rstd, NULL, NULL, NULL, NULL};
    const lm_projection qkv = {W(m, l, P_Q), dW(m, l, P_Q), d->qkv, c->qkv_dim, NULL}; /* Wq, Wk, Wv joined */
    lm_prenorm_backward(m->base.ops, &norm, &qkv, 1, m->base.d_x, m->base.d_resid, m->base.batch.n, c->s.D);
}

/* from d_resid = ∂loss/∂mid[l] to ∂loss/∂resid[l] (lm_mixer_fn) */
static void attn_backward(void *model, int l)
{
    attn_core_backward(model, l);
    attn_input_backward(model, l);
}

static void tf_backward(void *model) { lm_model_backward(model, attn_backward, model); }

/* ------------------------------------------------------------------ the rest */

/* 6 FLOPs per weight of every matmul (2 forward, 4 backward), the embedding
 * lookup excluded and lm_head included even when tied; plus attention as
 * torchtitan (and so fla-org/flame) counts it, 12·L·H·hd·T: q·kᵀ and p·v are
 * 2·hd FLOPs per (query, key) pair each, over all T keys (the causal half is
 * not discounted), times 3 for forward and backward. */
static double tf_flops_per_token(const void *model, int T)
{
    const tf_dims *c = &((const tf_model *)model)->c;
    double D = c->s.D, layer_weights = D * (2.0 * c->q_dim + 2.0 * c->kv_dim) /* q k v o */
                                     + 3.0 * c->s.I * D;                   /* MLP */
    double matmul = 6.0 * (c->s.L * layer_weights + (double)c->s.V * D);
    double attention = 12.0 * c->s.L * c->H * c->hd * (double)T;
    return matmul + attention;
}


/* ------------------------------------------------------------------ identity */

/* Hugging Face's Llama and Mistral folders: their config keys and tensor names
 * as fla's transformer has them. Their q_proj/k_proj rows are in the order the
 * rotate-half RoPE expects (only Meta's original files are interleaved, and
 * transformers' conversion script permutes those); fla's attention rotates
 * halves too, so the weights are taken as they are. */
static const flame_hf_key llama_keys[] = {
    {"num_attention_heads", "num_heads", NULL},
    {"num_key_value_heads", "num_kv_heads", NULL},
    {"rms_norm_eps", "norm_eps", NULL},
    {"sliding_window", "window_size", NULL}, /* Mistral's */
    {"rope_parameters.rope_theta", "rope_theta", NULL},
    {"rope_parameters.rope_type", NULL, "\"default\""},
    {"rope_scaling", NULL, "null"},
    {"attention_bias", NULL, "false"}, /* fla's o_proj has no bias */
    {"mlp_bias", NULL, "false"},
    /* the plugin's swish under Hugging Face's name; it sets nothing, so that
     * to-hf writes fla's spelling */
    {"hidden_act", NULL, "\"silu\""},
    {"attention_dropout", NULL, NULL},
    {"pretraining_tp", NULL, NULL}, /* a tensor-parallel split of the same products */
};

static const flame_hf_tensor llama_tensors[] = {
    {"model.embed_tokens.", "model.embeddings."},
    {"model.layers.*.input_layernorm.", "model.layers.*.attn_norm."},
    {"model.layers.*.post_attention_layernorm.", "model.layers.*.mlp_norm."},
    {"model.layers.*.self_attn.rotary_emb.inv_freq", NULL}, /* a buffer older versions saved */
    {"model.layers.*.self_attn.", "model.layers.*.attn."},
};

static const flame_hf_format tf_formats[] = {
    {"transformer", "TransformerForCausalLM", NULL, 0, NULL, 0},
    {"llama", "LlamaForCausalLM", llama_keys, LM_COUNT(llama_keys), llama_tensors,
     LM_COUNT(llama_tensors)},
    {"mistral", "MistralForCausalLM", llama_keys, LM_COUNT(llama_keys), llama_tensors,
     LM_COUNT(llama_tensors)},
};

static const flame_plugin tf_plugin = {
    FLAME_PLUGIN_HEADER,
    .name = "transformer",
    .description = "Llama-style transformer (fla's TransformerForCausalLM)",
    .options = tf_options,
    .n_options = N_OPTIONS,
    .create = tf_create,
    .destroy = lm_model_destroy,
    .n_params = lm_model_n_params,
    .param = lm_model_param,
    .param_joined = lm_model_param_joined,
    .bind = lm_model_bind,
    .reserve = tf_reserve,
    .forward = tf_forward,
    .backward = tf_backward,
    .watch_gradients = lm_model_watch_gradients,
    .flops_per_token = tf_flops_per_token,
    .vocab_size = lm_model_vocab_size,
    .hf_formats = tf_formats,
    .n_hf_formats = LM_COUNT(tf_formats),
    .decode_state_size = tf_decode_state_size,
    .decode_forward = tf_decode_forward,
};

const flame_plugin *flame_plugin_entry(void) { return &tf_plugin; }
