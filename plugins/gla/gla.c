/* GLA: fla's GLAForCausalLM (fla/models/gla, fla/layers/gla.py) as a flame plugin.
 *
 * For tokens x (n = B·T rows), with RMSNorm(z)·w written norm(z, w):
 *   h = embed(x)
 *   per layer:
 *     a  = norm(h, attn_norm)
 *     q, k, v, g = a·Wqᵀ, a·Wkᵀ, a·Wvᵀ, a·Wgᵀ   (one product: Wq, Wk, Wv, Wg are stored joined)
 *     gk = logsigmoid((a·W0ᵀ)·W1ᵀ + b1) / gate_logit_normalizer   (gla_gates_*)
 *     o  = the gated recurrence, per head and sequence      (gla_recurrence_cpu.c, gla_chunk.cu)
 *     y  = per-head norm(o, g_norm) · swish(g)                 (gla_gate_norm_*)
 *     h  = h + y·Woᵀ
 *     h  = h + down(silu(gate(m)) · up(m)),   m = norm(h, mlp_norm)
 *   logits = norm(h, norm)·lm_headᵀ;  loss = mean cross-entropy over targets ≥ 0
 * The shared math goes through the op table; the GLA-specific kernels are the
 * plugin's own, one table per backend (gla_kernels.h), so the same code runs
 * on the CPU and the GPU. The backward walks the same steps in reverse. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/plugin.h>

#include "../common/lm_model.h"
#include "gla_kernels.h"

/* ------------------------------------------------------------------ options */

static const flame_option gla_options[] = {
    LM_DECODER_OPTIONS,
    {"num_heads", FLAME_TYPE_INT, "4", "heads H", 0},
    {"num_kv_heads", FLAME_TYPE_INT, NULL, "key/value heads (unset: num_heads, the only value supported)", 0},
    {"expand_k", FLAME_TYPE_FLOAT, "0.5", "key_dim = int(hidden_size·expand_k)", 0},
    {"expand_v", FLAME_TYPE_FLOAT, "1.0", "value_dim = int(hidden_size·expand_v)", 0},
    {"gate_logit_normalizer", FLAME_TYPE_INT, "16", "gk = logsigmoid(gate logits) / this", 0},
    {"gate_low_rank_dim", FLAME_TYPE_INT, "16", "rank of the gate projection gk_proj", 0},
    {"use_output_gate", FLAME_TYPE_BOOL, "true", "gate the output with swish(g_proj(x)) (false: not supported yet)", 0},
    {"use_short_conv", FLAME_TYPE_BOOL, "false", "short convolutions on q, k, v (true: not supported yet)", 0},
    {"conv_size", FLAME_TYPE_INT, "4", "kernel size of the short convolutions", 0},
    {"feature_map", FLAME_TYPE_STRING, NULL, "feature map of q and k (not supported yet)", 0},
    {"clamp_min", FLAME_TYPE_FLOAT, NULL, "lower clamp of the gate logits (not supported yet)", 0},
    {"fuse_norm", FLAME_TYPE_BOOL, "true",
     "fla's fused norm+gate; here only the parameter name (g_norm_swish_gate or g_norm)", 0},
    {"attn_mode", FLAME_TYPE_STRING, "chunk", "fla kernel: chunk, fused_recurrent or fused_chunk (same math)", 0},
    {"use_gk", FLAME_TYPE_BOOL, "true", "key-wise forget gates (false: not supported yet)", 0},
    {"use_gv", FLAME_TYPE_BOOL, "false", "value-wise forget gates (true: not supported yet)", 0},
    {"attn", FLAME_TYPE_STRING, NULL, "hybrid attention layers (not supported yet)", 0},
    LM_DECODER_IGNORED_OPTIONS,
};
#define N_OPTIONS ((int)(sizeof gla_options / sizeof gla_options[0]))

/* ------------------------------------------------------------------ the model */

/* a layer's parameters, in fla's order */
enum {
    P_ATTN_NORM, P_Q, P_K, P_V, P_G, P_GK0, P_GK1, P_GK1_BIAS, P_O, P_G_NORM,
    P_MLP_NORM, P_GATE, P_UP, P_DOWN, P_PER_LAYER
};

typedef struct gla_dims {
    lm_shape s; /* D, L, V, the MLP's I, eps, init_std, tie */
    int H, dk, dv, key_dim, value_dim, R;
    int qkvg_dim; /* 2·key_dim + 2·value_dim: a token's q, k, v and g side by side */
    float normalizer;
    int fuse_norm;
} gla_dims;

/* what one layer keeps from its forward for its backward; void pointers are
 * activations (the op table's type), float ones fp32 */
typedef struct layer_acts {
    float *attn_rstd;                     /* [n]: norm of the layer input */
    void *qkvg;                           /* [n,qkvg_dim]: a token's q, k, v, g side by side */
    void *gk_low;                         /* [n,R]: the forget gates' low-rank input */
    void *gates;                          /* [n,key_dim]: gk, after logsigmoid */
    void *o;                              /* recurrence out */
    float *gn_rstd;                       /* [n·H] */
    void *scores;                         /* the recurrence's own (gla_recurrence_dims.scores) or NULL */
} layer_acts;

/* scratch reused by every layer (lm_take_scratch_acts: each layer's call
 * writes it before reading it): gradients, and the values the forward does
 * not keep and the backward makes again: the norm's and the gated norm's
 * outputs (cheap passes that save 2·D per token and layer) and the
 * recurrence's checkpoints (a walk over the chunks; at 340M they would take
 * 64 MiB a layer) */
typedef struct grad_scratch {
    void *a;                     /* [n,D] the norm of the layer input */
    void *y_value;               /* [n,value_dim] the gated norm's output */
    void *checkpoints;           /* the recurrence's states at chunk starts */
    void *y, *o;                 /* [n,value_dim] gradients */
    void *qkvg;                  /* [n,qkvg_dim] the gradients of q, k, v, g, as layer_acts' */
    void *gk, *gk_pre;           /* [n,key_dim] */
    void *gk_low;                /* [n,R] */
    float *work;                 /* the recurrence's own scratch, its workers' side by side */
} grad_scratch;

typedef struct gla_model {
    lm_model base; /* first: the shared vtable entries take the model as it */
    const gla_kernels *kern; /* GLA's own kernels for the ops' backend */
    gla_dims c;
    grad_scratch d;
    int n_work; /* the recurrence's workers */
    void *chunk_table; /* the batch's chunks, for the recurrence's calls (gla_recurrence_dims) */
} gla_model;

/* layer l's activations (lm_model.layers), their memory in the arena */
static layer_acts *acts(const gla_model *m, int l) { return (layer_acts *)m->base.layers + l; }
static const void *W(const gla_model *m, int layer, int p) { return lm_model_w(&m->base, layer, p); }
static float *dW(const gla_model *m, int layer, int p) { return lm_model_dw(&m->base, layer, p); }

/* ------------------------------------------------------------------ create */

/* the settings the plugin does not implement; returns 0 or -1 with err */
static int check_supported(const lm_options *cfg, char *err, size_t err_len)
{
    static const lm_bool_setting bools[] = {
        {"use_short_conv", 0}, {"use_output_gate", 1}, {"elementwise_affine", 1},
        {"use_gk", 1}, {"use_gv", 0},
    };
    static const char *const unset_only[] = {"feature_map", "clamp_min", "attn", "attnres_block_size"};
    if (lm_check_supported(cfg, bools, LM_COUNT(bools), unset_only, LM_COUNT(unset_only), err, err_len))
        return -1;
    const char *mode = lm_opt_string(cfg, "attn_mode");
    if (strcmp(mode, "chunk") && strcmp(mode, "fused_recurrent") && strcmp(mode, "fused_chunk")) {
        snprintf(err, err_len, "attn_mode = %s: expected chunk, fused_recurrent or fused_chunk", mode);
        return -1;
    }
    return lm_check_kv_heads_equal(cfg, err, err_len);
}

static int read_dims(const lm_options *cfg, gla_dims *c, char *err, size_t err_len)
{
    if (lm_read_shape(cfg, &c->s, err, err_len) ||
        lm_read_size(cfg, "num_heads", &c->H, err, err_len) ||
        lm_read_size(cfg, "gate_low_rank_dim", &c->R, err, err_len))
        return -1;
    c->s.per_layer = P_PER_LAYER;
    if (lm_read_head_widths(cfg, c->s.D, c->H, &c->key_dim, &c->value_dim, err, err_len))
        return -1;
    c->dk = c->key_dim / c->H, c->dv = c->value_dim / c->H;
    c->qkvg_dim = 2 * c->key_dim + 2 * c->value_dim;
    int64_t normalizer = lm_opt_int(cfg, "gate_logit_normalizer");
    if (normalizer < 1) {
        snprintf(err, err_len, "gate_logit_normalizer = %lld: expected a positive whole number", (long long)normalizer);
        return -1;
    }
    c->normalizer = (float)normalizer;
    c->fuse_norm = lm_opt_bool(cfg, "fuse_norm");
    return 0;
}

/* matrices: normal, with weight decay; vectors: ones (norms) or zeros (bias),
 * without; q_proj, k_proj, v_proj and g_proj joined, one [qkvg_dim, D] matrix */
static void add_layer_params(void *model, int l)
{
    gla_model *m = model;
    const gla_dims *c = &m->c;
    lm_model *b = &m->base;
    lm_model_add_layer_param(b, l, "attn_norm.weight", c->s.D, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(b, l, "attn.q_proj.weight", c->key_dim, c->s.D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "attn.k_proj.weight", c->key_dim, c->s.D, FLAME_INIT_NORMAL);
    lm_model_join_last(b);
    lm_model_add_layer_param(b, l, "attn.v_proj.weight", c->value_dim, c->s.D, FLAME_INIT_NORMAL);
    lm_model_join_last(b);
    lm_model_add_layer_param(b, l, "attn.g_proj.weight", c->value_dim, c->s.D, FLAME_INIT_NORMAL);
    lm_model_join_last(b);
    lm_model_add_layer_param(b, l, "attn.gk_proj.0.weight", c->R, c->s.D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "attn.gk_proj.1.weight", c->key_dim, c->R, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "attn.gk_proj.1.bias", c->key_dim, 0, FLAME_INIT_ZEROS);
    lm_model_add_layer_param(b, l, "attn.o_proj.weight", c->s.D, c->value_dim, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, c->fuse_norm ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight",
                             c->dv, 0, FLAME_INIT_ONES);
    lm_model_add_gate_up_mlp(b, l, c->s.D, c->s.I);
}

static void *gla_create(const flame_model_config *cfg, const flame_ops *ops, char *err, size_t err_len)
{
    const gla_kernels *kern = gla_kernels_for(ops->backend);
    if (!kern) {
        snprintf(err, err_len, "no kernels for backend %s in this build", ops->backend);
        return NULL;
    }
    gla_dims c = {0};
    lm_options opts = {cfg, gla_options, N_OPTIONS};
    if (check_supported(&opts, err, err_len) || read_dims(&opts, &c, err, err_len))
        return NULL;
    if (kern->gate_norm_max_C && c.dv > kern->gate_norm_max_C) {
        snprintf(err, err_len, "value head dim int(hidden_size·expand_v)/num_heads = %d: the %s "
                 "kernels take at most %d", c.dv, ops->backend, kern->gate_norm_max_C);
        return NULL;
    }
    gla_model *m = calloc(1, sizeof *m);
    if (m)
        m->kern = kern, m->c = c; /* before the parameters: add_layer_params reads them */
    return lm_model_create(m, ops, &c.s, add_layer_params, sizeof(layer_acts), err, err_len);
}

/* ------------------------------------------------------------------ reserve */

static void carve_layer(layer_acts *A, lm_carver *cv, const gla_dims *c, const gla_kernels *kern, size_t n)
{
    A->attn_rstd = lm_take_floats(cv, n);
    A->qkvg = lm_take_acts(cv, n * c->qkvg_dim);
    A->gk_low = lm_take_acts(cv, n * c->R);
    A->gates = lm_take_acts(cv, n * c->key_dim);
    A->o = lm_take_acts(cv, n * c->value_dim);
    A->gn_rstd = lm_take_floats(cv, n * c->H);
    A->scores = kern->recurrence_scores_floats ? lm_take_floats(cv, kern->recurrence_scores_floats((int)n, c->H))
                                               : NULL;
}

static void carve_grads(grad_scratch *d, lm_carver *cv, const gla_dims *c, const gla_kernels *kern,
                        int n_work, size_t n)
{
    d->work = lm_take_scratch_floats(cv, (size_t)n_work * kern->recurrence_work_floats((int)n, c->H, c->dk, c->dv));
    d->checkpoints = lm_take_scratch_acts(cv, kern->recurrence_checkpoint_values((int)n, c->H, c->dk, c->dv));
    d->a = lm_take_scratch_acts(cv, n * c->s.D);
    d->y_value = lm_take_scratch_acts(cv, n * c->value_dim);
    d->y = lm_take_scratch_acts(cv, n * c->value_dim);
    d->o = lm_take_scratch_acts(cv, n * c->value_dim);
    d->qkvg = lm_take_scratch_acts(cv, n * c->qkvg_dim);
    d->gk = lm_take_scratch_acts(cv, n * c->key_dim);
    d->gk_pre = lm_take_scratch_acts(cv, n * c->key_dim);
    d->gk_low = lm_take_scratch_acts(cv, n * c->R);
}

static void carve_all(void *model, lm_carver *cv, size_t n)
{
    gla_model *m = model;
    const gla_dims *c = &m->c;
    lm_model_carve(&m->base, cv, n);
    for (int l = 0; l < c->s.L; l++)
        carve_layer(acts(m, l), cv, c, m->kern, n);
    carve_grads(&m->d, cv, c, m->kern, m->n_work, n);
    m->chunk_table = m->kern->recurrence_chunk_table_floats
                         ? lm_take_floats(cv, m->kern->recurrence_chunk_table_floats((int)n))
                         : NULL;
}

static int gla_reserve(void *model, int B, int T, char *err, size_t err_len)
{
    gla_model *m = model;
    /* the kernels index rows of heads (n·H) with an int */
    if (B < 1 || T < 1 || (int64_t)B * T * m->c.H > INT_MAX) {
        snprintf(err, err_len, "cannot reserve a batch of %d×%d tokens", B, T);
        return -1;
    }
    m->n_work = m->kern->recurrence_max_workers();
    if (m->n_work < 1)
        m->n_work = 1;
    return lm_model_reserve(&m->base, (size_t)B * T, carve_all, m, err, err_len);
}

/* ------------------------------------------------------------------ forward */

/* the recurrence of layer l; the backward makes its checkpoints again (one
 * buffer serves every layer) and reads the scores the forward kept; the
 * batch's chunk table is made by its first call, layer 0's forward */
static gla_recurrence_dims recurrence_dims(const gla_model *m, int l, int forward)
{
    gla_recurrence_dims d = {m->base.batch.cu, m->base.batch.n_seqs, m->c.H, m->c.dk, m->c.dv,
                             1.0f / sqrtf((float)m->c.dk), m->base.batch.cu_backend, 0, m->c.qkvg_dim, 1,
                             acts(m, l)->scores, m->chunk_table, !forward || l > 0};
    return d;
}

/* q, k, v or g (i = 0 to 3) of a [n,qkvg_dim] buffer of them side by side */
enum { PART_Q, PART_K, PART_V, PART_G };
static void *part(const gla_model *m, void *qkvg, int i)
{
    static const int keys_before[] = {0, 1, 2, 2}, values_before[] = {0, 0, 0, 1};
    size_t at = (size_t)keys_before[i] * m->c.key_dim + (size_t)values_before[i] * m->c.value_dim;
    return lm_act_at(m->base.ops, qkvg, at);
}

/* the gate's rows for the gated norm: heads of dv in rows qkvg_dim apart */
static gla_gate_rows gate_rows(const gla_model *m)
{
    gla_gate_rows r = {m->c.H, (size_t)m->c.qkvg_dim};
    return r;
}

/* layer l's gk = logsigmoid(gk_low·W1ᵀ + b1) / normalizer, kept for the
 * backward (made again there they cost a rank-R product and a pointwise
 * pass, 0.7 ms a step of GLA-340M on an H100) */
static void forget_gates(const gla_model *m, int l)
{
    const gla_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    int n = m->base.batch.n;
    m->base.ops->matmul_forward(A->gates, A->gk_low, W(m, l, P_GK1), W(m, l, P_GK1_BIAS), NULL, n, c->R,
                                c->key_dim);
    m->kern->gates_forward(A->gates, A->gates, (size_t)n * c->key_dim, c->normalizer);
}

/* mid[l] = resid[l] + the attention of its norm (lm_mixer_fn) */
static void attn_forward(void *model, int l)
{
    gla_model *m = model;
    const flame_ops *ops = m->base.ops;
    const gla_dims *c = &m->c;
    layer_acts *A = acts(m, l);
    int n = m->base.batch.n;
    /* pre-norm */
    ops->rmsnorm_forward(m->d.a, A->attn_rstd, m->base.resid[l], W(m, l, P_ATTN_NORM), n, c->s.D, c->s.eps);
    /* projections: q, k, v, g in one */
    ops->matmul_forward(A->qkvg, m->d.a, W(m, l, P_Q), NULL, NULL, n, c->s.D, c->qkvg_dim);
    void *q = part(m, A->qkvg, PART_Q), *k = part(m, A->qkvg, PART_K), *v = part(m, A->qkvg, PART_V);
    gla_gate_rows gr = gate_rows(m);
    ops->matmul_forward(A->gk_low, m->d.a, W(m, l, P_GK0), NULL, NULL, n, c->s.D, c->R);
    forget_gates(m, l);
    /* the recurrence, then the gated per-head norm */
    if (m->base.decoding) { /* the states [L, B, H, dk, dv] */
        size_t per_layer = (size_t)n * c->H * c->dk * c->dv; /* n = B sequences of one token */
        m->kern->recurrence_step(A->o, (float *)m->base.decoding + l * per_layer, q, k, v, A->gates, n, c->H,
                                 c->dk, c->dv, 1.0f / sqrtf((float)c->dk), c->qkvg_dim);
    } else {
        gla_recurrence_dims rd = recurrence_dims(m, l, 1);
        m->kern->recurrence_forward(A->o, m->d.checkpoints, q, k, v, A->gates, &rd, m->d.work, m->n_work);
    }
    m->kern->gate_norm_forward(m->d.y_value, A->gn_rstd, A->o, part(m, A->qkvg, PART_G), &gr, W(m, l, P_G_NORM),
                               n * c->H, c->dv, c->s.eps);
    /* output projection, onto the residual */
    ops->matmul_forward(m->base.mid[l], m->d.y_value, W(m, l, P_O), NULL, m->base.resid[l], n,
                        c->value_dim, c->s.D);
}

static float gla_forward(void *model, const flame_batch *batch, float *logits)
{
    return lm_model_forward(model, batch, logits, "gla", attn_forward, model);
}

/* ------------------------------------------------------------------ generation */

/* every layer's recurrent state, whatever the length */
static size_t gla_decode_state_size(const void *model, int B, int max_len)
{
    const gla_model *m = model;
    (void)max_len;
    if (!m->kern->recurrence_step)
        return 0;
    return (size_t)m->c.s.L * B * m->c.H * m->c.dk * m->c.dv * sizeof(float);
}

static int gla_decode_forward(void *model, void *state, const int32_t *tokens, int B, int pos,
                              float *logits)
{
    gla_model *m = model;
    return lm_model_decode(&m->base, state, tokens, B, pos, logits, "gla", attn_forward, m);
}

/* ------------------------------------------------------------------ backward */

/* from d_resid = ∂loss/∂mid to d.o and g's part of d.qkvg: through o_proj and the gated norm */
static void attn_output_backward(gla_model *m, int l)
{
    const gla_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    gla_gate_rows gr = gate_rows(m);
    void *g = part(m, A->qkvg, PART_G);
    m->kern->gate_norm_forward(d->y_value, A->gn_rstd, A->o, g, &gr, W(m, l, P_G_NORM), n * c->H, c->dv, c->s.eps);
    m->base.ops->matmul_backward(d->y, FLAME_GRAD_SET, dW(m, l, P_O), NULL, m->base.d_resid, d->y_value,
                                 W(m, l, P_O), n, c->value_dim, c->s.D);
    m->kern->gate_norm_backward(d->o, part(m, d->qkvg, PART_G), dW(m, l, P_G_NORM), d->y, A->o, g, &gr,
                                W(m, l, P_G_NORM), A->gn_rstd, n * c->H, c->dv);
}

/* from d.o to q's, k's and v's parts of d.qkvg and the gate logits' gradients d.gk_pre, d.gk_low */
static void attn_core_backward(gla_model *m, int l)
{
    const gla_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    size_t nK = (size_t)n * c->key_dim;
    gla_recurrence_dims rd = recurrence_dims(m, l, 0);
    void *q = part(m, A->qkvg, PART_Q), *k = part(m, A->qkvg, PART_K), *v = part(m, A->qkvg, PART_V);
    m->kern->recurrence_backward(part(m, d->qkvg, PART_Q), part(m, d->qkvg, PART_K), part(m, d->qkvg, PART_V), d->gk,
                                 d->o, q, k, v, A->gates, d->checkpoints, &rd, m->d.work, m->n_work);
    m->kern->gates_backward(d->gk_pre, d->gk, A->gates, nK, c->normalizer);
    m->base.ops->matmul_backward(d->gk_low, FLAME_GRAD_SET, dW(m, l, P_GK1), dW(m, l, P_GK1_BIAS), d->gk_pre,
                                 A->gk_low, W(m, l, P_GK1), n, c->R, c->key_dim);
}

/* from the projections' output gradients to d_resid = ∂loss/∂(layer input) */
static void attn_input_backward(gla_model *m, int l)
{
    const flame_ops *ops = m->base.ops;
    const gla_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    const void *x = m->base.resid[l];
    ops->rmsnorm_forward(d->a, A->attn_rstd, x, W(m, l, P_ATTN_NORM), n, c->s.D, c->s.eps);
    const lm_prenorm norm = {x, d->a, W(m, l, P_ATTN_NORM), dW(m, l, P_ATTN_NORM), A->attn_rstd, NULL, NULL, NULL, NULL};
    const lm_projection proj[] = {
        {W(m, l, P_Q), dW(m, l, P_Q), d->qkvg, c->qkvg_dim, NULL}, /* Wq, Wk, Wv, Wg joined */
        {W(m, l, P_GK0), dW(m, l, P_GK0), d->gk_low, c->R, NULL},
    };
    lm_prenorm_backward(ops, &norm, proj, LM_COUNT(proj), m->base.d_x, m->base.d_resid, n, c->s.D);
}

/* from d_resid = ∂loss/∂mid[l] to ∂loss/∂resid[l] (lm_mixer_fn) */
static void attn_backward(void *model, int l)
{
    attn_output_backward(model, l);
    attn_core_backward(model, l);
    attn_input_backward(model, l);
}

static void gla_backward(void *model) { lm_model_backward(model, attn_backward, model); }

/* ------------------------------------------------------------------ the rest */

/* 6 FLOPs per weight of every matmul (2 forward, 4 backward), the embedding
 * lookup excluded and lm_head included even when tied; plus the recurrence:
 * per token, head and layer, the state update (decay and kᵀv) and the readout
 * q·S are each about 2·dk·dv FLOPs, and forward + backward (which also
 * recomputes the states) come to about 3 passes of both: 3 · 2 · 2·dk·dv. */
static double gla_flops_per_token(const void *model, int T)
{
    const gla_dims *c = &((const gla_model *)model)->c;
    (void)T; /* the recurrence is linear in T: no per-token term grows with it */
    double D = c->s.D, layer_weights = D * (2.0 * c->key_dim + 2.0 * c->value_dim) /* q k v g */
                                     + (double)c->R * (D + c->key_dim)          /* gk_proj */
                                     + (double)c->value_dim * D                 /* o_proj */
                                     + 3.0 * c->s.I * D;                          /* MLP */
    double matmul = 6.0 * (c->s.L * layer_weights + (double)c->s.V * D);
    double recurrence = (double)c->s.L * 3.0 * 2.0 * 2.0 * c->H * c->dk * c->dv;
    return matmul + recurrence;
}


/* fla's own folders: its config keys and tensor names are the plugin's */
static const flame_hf_format gla_formats[] = {{"gla", "GLAForCausalLM", NULL, 0, NULL, 0}};

static const flame_plugin gla_plugin = {
    FLAME_PLUGIN_HEADER,
    .name = "gla",
    .description = "Gated Linear Attention (fla's GLAForCausalLM)",
    .options = gla_options,
    .n_options = N_OPTIONS,
    .create = gla_create,
    .destroy = lm_model_destroy,
    .n_params = lm_model_n_params,
    .param = lm_model_param,
    .param_joined = lm_model_param_joined,
    .bind = lm_model_bind,
    .reserve = gla_reserve,
    .forward = gla_forward,
    .backward = gla_backward,
    .watch_gradients = lm_model_watch_gradients,
    .flops_per_token = gla_flops_per_token,
    .vocab_size = lm_model_vocab_size,
    .hf_formats = gla_formats,
    .n_hf_formats = LM_COUNT(gla_formats),
    .decode_state_size = gla_decode_state_size,
    .decode_forward = gla_decode_forward,
};

const flame_plugin *flame_plugin_entry(void) { return &gla_plugin; }
