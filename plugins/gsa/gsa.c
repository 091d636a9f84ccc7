/* GSA: fla's GSAForCausalLM (fla/models/gsa, fla/layers/gsa.py, fla/ops/gsa)
 * as a flame plugin: Gated Slot Attention, a two-pass GLA over M memory slots.
 *
 * For tokens x (n = B·T rows), with RMSNorm(z)·w written norm(z, w):
 *   h = embed(x)
 *   per layer:
 *     a  = norm(h, attn_norm)
 *     q, k, v = swish(a·Wqᵀ), swish(a·Wkᵀ), swish(a·Wvᵀ)                (gsa_pointwise_*)
 *     f  = logsigmoid(a·Wfᵀ) / gate_logit_normalizer,  s = 1 − exp(f)   ([n,H,M]; gsa_pointwise_*)
 *     ok = the slot pass: P_t = diag(e^{f_t}) P_{t−1} + s_tᵀk_t, ok_t = P_t q_tᵀ
 *                                                     (scale 1; gsa_slots_cpu.c, gsa_slots_chunk.cu)
 *     p  = softmax(ok) over the slots                                   (gsa_softmax_*)
 *     o  = GLA's recurrence with queries p, keys s, values v, gates f, scale 1
 *                                                     (gla.h: gla_recurrence_cpu.c, gla_chunk.cu)
 *     y  = norm(swish(o), g_norm) over the whole value width, eps 1e-5, no
 *          weight when elementwise_affine is false                      (gsa_output_norm_*)
 *     h  = h + y·Woᵀ
 *     h  = h + down(silu(gate(m)) · up(m)),   m = norm(h, mlp_norm)
 *   logits = norm(h, norm)·lm_headᵀ;  loss = mean cross-entropy over targets ≥ 0
 * The shared math goes through the op table, GSA's own through its kernel
 * table (gsa_kernels.h) and GLA's (gla_kernels.h), one per backend, so the
 * same code runs on the CPU and the GPU. The backward walks the same steps in
 * reverse. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/plugin.h>

#include "../common/lm_model.h"
#include "gla_kernels.h"
#include "gsa_kernels.h"

/* fla's GatedSlotAttention calls rms_norm_linear without its g_norm's eps, so
 * the output norm takes that function's default, not norm_eps */
#define OUTPUT_NORM_EPS 1e-5f

/* ------------------------------------------------------------------ options */

static const flame_option gsa_options[] = {
    LM_DECODER_OPTIONS,
    {"num_heads", FLAME_TYPE_INT, "4", "heads H", 0},
    {"num_kv_heads", FLAME_TYPE_INT, NULL, "key/value heads (unset: num_heads, the only value supported)", 0},
    {"num_slots", FLAME_TYPE_INT, "64", "memory slots M per head", 0},
    {"expand_k", FLAME_TYPE_FLOAT, "1", "key_dim = int(hidden_size·expand_k)", 0},
    {"expand_v", FLAME_TYPE_FLOAT, "1", "value_dim = int(hidden_size·expand_v)", 0},
    {"gate_logit_normalizer", FLAME_TYPE_INT, "8", "f = logsigmoid(f_proj(x)) / this", 0},
    {"feature_map", FLAME_TYPE_STRING, "swish", "feature map of q and k (swish only)", 0},
    {"use_short_conv", FLAME_TYPE_BOOL, "false", "short convolutions on q, k, v (true: not supported yet)", 0},
    {"conv_size", FLAME_TYPE_INT, "4", "kernel size of the short convolutions", 0},
    {"attn", FLAME_TYPE_STRING, NULL, "hybrid attention layers (not supported yet)", 0},
    LM_DECODER_IGNORED_OPTIONS,
    {"fuse_norm", FLAME_TYPE_BOOL, NULL, "fla kernel choice", 1},
    /* keys of fla-org/flame's gsa_*.json that fla's GSA layer never reads */
    {"use_output_gate", FLAME_TYPE_BOOL, NULL, "accepted; fla's GSA layer does not use it", 1},
    {"use_norm", FLAME_TYPE_BOOL, NULL, "accepted; fla's GSA layer does not use it", 1},
    {"share_conv_kernel", FLAME_TYPE_BOOL, NULL, "accepted; fla's GSA layer does not use it", 1},
    {"use_rope", FLAME_TYPE_BOOL, NULL, "accepted; fla's GSA layer does not use it", 1},
    {"clamp_min", FLAME_TYPE_FLOAT, NULL, "accepted; fla's GSA layer does not use it", 1},
    {"clamp_max", FLAME_TYPE_FLOAT, NULL, "accepted; fla's GSA layer does not use it", 1},
};
#define N_OPTIONS ((int)(sizeof gsa_options / sizeof gsa_options[0]))

/* ------------------------------------------------------------------ the model */

/* a layer's parameters, in fla's order; g_norm only with elementwise_affine */
enum {
    P_ATTN_NORM, P_Q, P_K, P_V, P_F, P_G_NORM, P_O,
    P_MLP_NORM, P_GATE, P_UP, P_DOWN, P_PER_LAYER
};

typedef struct gsa_dims {
    lm_shape s; /* D, L, V, the MLP's I, eps, init_std, tie */
    int H, dk, dv, M, key_dim, value_dim, slot_dim; /* slot_dim = H·M */
    float normalizer;
    int affine; /* the output norm has a weight */
} gsa_dims;

/* what one layer keeps from its forward for its backward; void pointers are
 * activations (the op table's type), float ones fp32. q, k, v are kept before
 * their feature map, which the backward applies again. Both passes' states
 * are kept too: making them again would take two walks over every sequence
 * a layer, about 4 % of the step at 340M, for 3 % more memory. */
typedef struct layer_acts {
    float *attn_rstd;       /* [n] the norm of the layer input */
    void *q_pre, *k_pre;    /* [n,key_dim] */
    void *v_pre;            /* [n,value_dim] */
    void *f, *s;            /* [n,slot_dim] the slot gates */
    float *p;               /* [n,slot_dim] the softmax over the slots, fp32 (gsa_kernels.h) */
    void *o;                /* [n,value_dim] the second pass's output */
    float *out_rstd;        /* [n] the output norm's */
    void *slot_checkpoints, *value_checkpoints; /* the passes' states at chunk starts */
} layer_acts;

/* scratch reused by every layer (lm_take_scratch_acts: each layer's call
 * writes it before reading it): the values the forward does not keep and the
 * backward makes again (the norm's output, the feature maps, the output
 * norm's result), the gradients, and the two passes' own scratch */
typedef struct grad_scratch {
    void *a;                         /* [n,D] */
    void *q, *k, *v;                 /* after the feature map */
    void *y;                         /* [n,value_dim] the output norm's result */
    void *ok;                        /* [n,slot_dim] the slot pass's logits; their gradient */
    void *p;                         /* [n,slot_dim] the softmax in the activations' type:
                                      * the value pass's queries */
    void *dy, *d_o, *dv;             /* [n,value_dim] */
    void *dq, *dk;                   /* [n,key_dim] */
    void *df_slots, *df_values;      /* [n,slot_dim] */
    void *ds_slots, *ds_values;      /* [n,slot_dim] */
    float *dp;                       /* [n,slot_dim] fp32, the value pass's dq */
    float *work;                     /* the passes' scratch (they take turns), their workers' side by side */
} grad_scratch;

typedef struct gsa_model {
    lm_model base; /* first: the shared vtable entries take the model as it */
    const gsa_kernels *kern; /* GSA's own kernels for the ops' backend */
    const gla_kernels *gla;  /* GLA's, for the second pass */
    gsa_dims c;
    grad_scratch d;
    int n_work; /* the passes' workers */
} gsa_model;

static layer_acts *acts(const gsa_model *m, int l) { return (layer_acts *)m->base.layers + l; }

/* the index of parameter p in a layer's list: g_norm is absent without a weight */
static int param_index(const gsa_model *m, int p) { return p > P_G_NORM && !m->c.affine ? p - 1 : p; }
static const void *W(const gsa_model *m, int l, int p) { return lm_model_w(&m->base, l, param_index(m, p)); }
static float *dW(const gsa_model *m, int l, int p) { return lm_model_dw(&m->base, l, param_index(m, p)); }
/* the output norm's weight and its gradient, NULL without one */
static const void *norm_w(const gsa_model *m, int l) { return m->c.affine ? W(m, l, P_G_NORM) : NULL; }
static float *norm_dw(const gsa_model *m, int l) { return m->c.affine ? dW(m, l, P_G_NORM) : NULL; }

/* ------------------------------------------------------------------ create */

/* the settings the plugin does not implement; returns 0 or -1 with err */
static int check_supported(const lm_options *cfg, char *err, size_t err_len)
{
    static const lm_bool_setting bools[] = {{"use_short_conv", 0}};
    static const char *const unset_only[] = {"attn", "attnres_block_size"};
    if (lm_check_supported(cfg, bools, LM_COUNT(bools), unset_only, LM_COUNT(unset_only), err, err_len))
        return -1;
    const char *map = lm_opt_string(cfg, "feature_map");
    if (strcmp(map, "swish") != 0) {
        snprintf(err, err_len, "feature_map = %s is not supported yet (only swish)", map);
        return -1;
    }
    return lm_check_kv_heads_equal(cfg, err, err_len);
}

static int read_dims(const lm_options *cfg, gsa_dims *c, char *err, size_t err_len)
{
    if (lm_read_shape(cfg, &c->s, err, err_len) || lm_read_size(cfg, "num_heads", &c->H, err, err_len) ||
        lm_read_size(cfg, "num_slots", &c->M, err, err_len) ||
        lm_read_head_widths(cfg, c->s.D, c->H, &c->key_dim, &c->value_dim, err, err_len))
        return -1;
    c->dk = c->key_dim / c->H, c->dv = c->value_dim / c->H;
    if ((int64_t)c->H * c->M > INT_MAX / 2) {
        snprintf(err, err_len, "num_heads·num_slots = %lld is too large", (long long)c->H * c->M);
        return -1;
    }
    c->slot_dim = c->H * c->M;
    c->affine = lm_opt_bool(cfg, "elementwise_affine");
    /* fla sizes g_norm's weight by hidden_size and applies it to value_dim columns */
    if (c->affine && c->value_dim != c->s.D) {
        snprintf(err, err_len, "elementwise_affine = true needs value_dim = hidden_size (fla's g_norm "
                 "weight has hidden_size = %d entries; value_dim is %d): set expand_v = 1",
                 c->s.D, c->value_dim);
        return -1;
    }
    c->s.per_layer = c->affine ? P_PER_LAYER : P_PER_LAYER - 1;
    int64_t normalizer = lm_opt_int(cfg, "gate_logit_normalizer");
    if (normalizer < 1) {
        snprintf(err, err_len, "gate_logit_normalizer = %lld: expected a positive whole number", (long long)normalizer);
        return -1;
    }
    c->normalizer = (float)normalizer;
    return 0;
}

/* the limits of the backend's kernels; returns 0 or -1 with err */
static int check_kernel_limits(const gsa_kernels *kern, const gsa_dims *c, const char *backend,
                               char *err, size_t err_len)
{
    if (kern->softmax_max_M && c->M > kern->softmax_max_M) {
        snprintf(err, err_len, "num_slots = %d: the %s kernels take at most %d", c->M, backend,
                 kern->softmax_max_M);
        return -1;
    }
    if (kern->output_norm_max_C && c->value_dim > kern->output_norm_max_C) {
        snprintf(err, err_len, "value dim int(hidden_size·expand_v) = %d: the %s kernels take at most %d",
                 c->value_dim, backend, kern->output_norm_max_C);
        return -1;
    }
    return 0;
}

/* matrices: normal, with weight decay; norms: ones, without */
static void add_layer_params(void *model, int l)
{
    gsa_model *m = model;
    const gsa_dims *c = &m->c;
    lm_model *b = &m->base;
    lm_model_add_layer_param(b, l, "attn_norm.weight", c->s.D, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(b, l, "attn.q_proj.weight", c->key_dim, c->s.D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "attn.k_proj.weight", c->key_dim, c->s.D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "attn.v_proj.weight", c->value_dim, c->s.D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "attn.f_proj.weight", c->slot_dim, c->s.D, FLAME_INIT_NORMAL);
    if (c->affine)
        lm_model_add_layer_param(b, l, "attn.g_norm.weight", c->value_dim, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(b, l, "attn.o_proj.weight", c->s.D, c->value_dim, FLAME_INIT_NORMAL);
    lm_model_add_gate_up_mlp(b, l, c->s.D, c->s.I);
}

static void *gsa_create(const flame_model_config *cfg, const flame_ops *ops, char *err, size_t err_len)
{
    const gsa_kernels *kern = gsa_kernels_for(ops->backend);
    const gla_kernels *gla = gla_kernels_for(ops->backend);
    if (!kern || !gla) {
        snprintf(err, err_len, "no kernels for backend %s in this build", ops->backend);
        return NULL;
    }
    gsa_dims c = {0};
    lm_options opts = {cfg, gsa_options, N_OPTIONS};
    if (check_supported(&opts, err, err_len) || read_dims(&opts, &c, err, err_len) ||
        check_kernel_limits(kern, &c, ops->backend, err, err_len))
        return NULL;
    gsa_model *m = calloc(1, sizeof *m);
    if (m)
        m->kern = kern, m->gla = gla, m->c = c; /* before the parameters: add_layer_params reads them */
    return lm_model_create(m, ops, &c.s, add_layer_params, sizeof(layer_acts), err, err_len);
}

/* ------------------------------------------------------------------ reserve */

static void carve_layer(const gsa_model *m, layer_acts *A, lm_carver *cv, size_t n)
{
    const gsa_dims *c = &m->c;
    A->attn_rstd = lm_take_floats(cv, n);
    A->q_pre = lm_take_acts(cv, n * c->key_dim);
    A->k_pre = lm_take_acts(cv, n * c->key_dim);
    A->v_pre = lm_take_acts(cv, n * c->value_dim);
    A->f = lm_take_acts(cv, n * c->slot_dim);
    A->s = lm_take_acts(cv, n * c->slot_dim);
    A->p = lm_take_floats(cv, n * c->slot_dim);
    A->o = lm_take_acts(cv, n * c->value_dim);
    A->out_rstd = lm_take_floats(cv, n);
    A->slot_checkpoints = lm_take_acts(cv, m->kern->slot_checkpoint_values((int)n, c->H, c->dk, c->M));
    A->value_checkpoints = lm_take_acts(cv, m->gla->recurrence_checkpoint_values((int)n, c->H, c->M, c->dv));
}

static size_t larger(size_t a, size_t b) { return a > b ? a : b; }

static void carve_grads(const gsa_model *m, grad_scratch *d, lm_carver *cv, size_t n)
{
    const gsa_dims *c = &m->c;
    d->a = lm_take_scratch_acts(cv, n * c->s.D);
    void **key_wide[] = {&d->q, &d->k, &d->dq, &d->dk};
    void **value_wide[] = {&d->v, &d->y, &d->dy, &d->d_o, &d->dv};
    void **slot_wide[] = {&d->ok, &d->p, &d->df_slots, &d->df_values, &d->ds_slots, &d->ds_values};
    for (int i = 0; i < LM_COUNT(key_wide); i++)
        *key_wide[i] = lm_take_scratch_acts(cv, n * c->key_dim);
    for (int i = 0; i < LM_COUNT(value_wide); i++)
        *value_wide[i] = lm_take_scratch_acts(cv, n * c->value_dim);
    for (int i = 0; i < LM_COUNT(slot_wide); i++)
        *slot_wide[i] = lm_take_scratch_acts(cv, n * c->slot_dim);
    d->dp = lm_take_scratch_floats(cv, n * c->slot_dim);
    /* the two passes take turns with it */
    size_t work = larger(m->kern->slot_work_floats((int)n, c->H, c->dk, c->M),
                         m->gla->recurrence_work_floats((int)n, c->H, c->M, c->dv));
    d->work = lm_take_scratch_floats(cv, (size_t)m->n_work * work);
}

static void carve_all(void *model, lm_carver *cv, size_t n)
{
    gsa_model *m = model;
    lm_model_carve(&m->base, cv, n);
    for (int l = 0; l < m->c.s.L; l++)
        carve_layer(m, acts(m, l), cv, n);
    carve_grads(m, &m->d, cv, n);
}

static int gsa_reserve(void *model, int B, int T, char *err, size_t err_len)
{
    gsa_model *m = model;
    const gsa_dims *c = &m->c;
    /* the kernels index rows of heads (n·H) and slots (n·H·M) with an int */
    if (B < 1 || T < 1 || (int64_t)B * T * c->slot_dim > INT_MAX) {
        snprintf(err, err_len, "cannot reserve a batch of %d×%d tokens", B, T);
        return -1;
    }
    int slot_workers = m->kern->slot_max_workers(), value_workers = m->gla->recurrence_max_workers();
    m->n_work = slot_workers < value_workers ? slot_workers : value_workers;
    if (m->n_work < 1)
        m->n_work = 1;
    return lm_model_reserve(&m->base, (size_t)B * T, carve_all, m, err, err_len);
}

/* ------------------------------------------------------------------ forward */

static gsa_slot_dims slot_dims(const gsa_model *m)
{
    gsa_slot_dims d = {m->base.batch.cu, m->base.batch.n_seqs, m->c.H, m->c.dk, m->c.M, 1.0f,
                       m->base.batch.cu_backend};
    return d;
}

/* the second pass as GLA sees it: keys of M slots, scale 1, dq (the
 * softmax's gradient) in fp32 */
static gla_recurrence_dims value_dims(const gsa_model *m)
{
    gla_recurrence_dims d = {m->base.batch.cu, m->base.batch.n_seqs, m->c.H, m->c.M, m->c.dv, 1.0f,
                             m->base.batch.cu_backend, 1, 0, 0, NULL, NULL, 0};
    return d;
}

/* q, k, v after the feature map, from what the layer keeps */
static void feature_maps(const gsa_model *m, const layer_acts *A, int n)
{
    const gsa_dims *c = &m->c;
    m->kern->swish_forward(m->d.q, A->q_pre, (size_t)n * c->key_dim);
    m->kern->swish_forward(m->d.k, A->k_pre, (size_t)n * c->key_dim);
    m->kern->swish_forward(m->d.v, A->v_pre, (size_t)n * c->value_dim);
}

/* decoding n sequences: layer l's states of the two passes (every layer's
 * slot states, fp32 [L, B, H, M, dk], then the value states [L, B, H, M, dv]) */
static float *slot_states(const gsa_model *m, int l, int n)
{
    return (float *)m->base.decoding + (size_t)l * n * m->c.H * m->c.M * m->c.dk;
}

static float *value_states(const gsa_model *m, int l, int n)
{
    return slot_states(m, m->c.s.L, n) + (size_t)l * n * m->c.H * m->c.M * m->c.dv;
}

/* mid[l] = resid[l] + the attention of its norm (lm_mixer_fn); while decoding,
 * both passes step the carried states instead of walking the batch */
static void attn_forward(void *model, int l)
{
    gsa_model *m = model;
    const flame_ops *ops = m->base.ops;
    const gsa_dims *c = &m->c;
    layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    ops->rmsnorm_forward(d->a, A->attn_rstd, m->base.resid[l], W(m, l, P_ATTN_NORM), n, c->s.D, c->s.eps);
    ops->matmul_forward(A->q_pre, d->a, W(m, l, P_Q), NULL, NULL, n, c->s.D, c->key_dim);
    ops->matmul_forward(A->k_pre, d->a, W(m, l, P_K), NULL, NULL, n, c->s.D, c->key_dim);
    ops->matmul_forward(A->v_pre, d->a, W(m, l, P_V), NULL, NULL, n, c->s.D, c->value_dim);
    ops->matmul_forward(A->f, d->a, W(m, l, P_F), NULL, NULL, n, c->s.D, c->slot_dim);
    feature_maps(m, A, n);
    m->kern->slot_gates_forward(A->f, A->s, A->f, (size_t)n * c->slot_dim, c->normalizer);
    /* the slot pass, its softmax, and the value pass reading it */
    gsa_slot_dims sd = slot_dims(m);
    if (m->base.decoding)
        m->kern->slot_step(d->ok, slot_states(m, l, n), d->q, d->k, A->s, A->f, &sd, n);
    else
        m->kern->slot_forward(d->ok, A->slot_checkpoints, d->q, d->k, A->s, A->f, &sd, m->d.work,
                              m->n_work);
    m->kern->softmax_forward(A->p, d->ok, n * c->H, c->M);
    ops->to_act(d->p, A->p, (size_t)n * c->slot_dim);
    gla_recurrence_dims vd = value_dims(m);
    if (m->base.decoding)
        m->gla->recurrence_step(A->o, value_states(m, l, n), d->p, A->s, d->v, A->f, n, c->H, c->M,
                                c->dv, 1.0f, 0);
    else
        m->gla->recurrence_forward(A->o, A->value_checkpoints, d->p, A->s, d->v, A->f, &vd,
                                   m->d.work, m->n_work);
    m->kern->output_norm_forward(d->y, A->out_rstd, A->o, norm_w(m, l), n, c->value_dim, OUTPUT_NORM_EPS);
    ops->matmul_forward(m->base.mid[l], d->y, W(m, l, P_O), NULL, m->base.resid[l], n, c->value_dim, c->s.D);
}

static float gsa_forward(void *model, const flame_batch *batch, float *logits)
{
    return lm_model_forward(model, batch, logits, "gsa", attn_forward, model);
}

/* ------------------------------------------------------------------ generation */

/* every layer's states of both passes, whatever the length */
static size_t gsa_decode_state_size(const void *model, int B, int max_len)
{
    const gsa_model *m = model;
    const gsa_dims *c = &m->c;
    (void)max_len;
    if (!m->kern->slot_step || !m->gla->recurrence_step)
        return 0;
    return (size_t)c->s.L * B * c->H * c->M * (c->dk + c->dv) * sizeof(float);
}

static int gsa_decode_forward(void *model, void *state, const int32_t *tokens, int B, int pos,
                              float *logits)
{
    gsa_model *m = model;
    return lm_model_decode(&m->base, state, tokens, B, pos, logits, "gsa", attn_forward, m);
}

/* ------------------------------------------------------------------ backward */

/* from d_resid = ∂loss/∂mid to d.d_o: through o_proj and the output norm */
static void attn_output_backward(gsa_model *m, int l)
{
    const gsa_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    m->kern->output_norm_forward(d->y, A->out_rstd, A->o, norm_w(m, l), n, c->value_dim, OUTPUT_NORM_EPS);
    m->base.ops->matmul_backward(d->dy, FLAME_GRAD_SET, dW(m, l, P_O), NULL, m->base.d_resid, d->y,
                                 W(m, l, P_O), n, c->value_dim, c->s.D);
    m->kern->output_norm_backward(d->d_o, norm_dw(m, l), d->dy, A->o, norm_w(m, l), A->out_rstd, n,
                                  c->value_dim);
}

/* from d.d_o through both passes and the gates to the gradients of the four
 * projections' outputs: d.dq, d.dk, d.dv (before the feature map) and d.df_slots
 * (of the gate logits) */
static void attn_core_backward(gsa_model *m, int l)
{
    const gsa_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    feature_maps(m, A, n);
    /* the value pass: queries p, keys s, values v, gates f */
    m->base.ops->to_act(d->p, A->p, (size_t)n * c->slot_dim);
    gla_recurrence_dims vd = value_dims(m);
    m->gla->recurrence_backward(d->dp, d->ds_values, d->dv, d->df_values, d->d_o, d->p, A->s, d->v, A->f,
                                A->value_checkpoints, &vd, m->d.work, m->n_work);
    /* the softmax (its gradient into ok's place), then the slot pass */
    m->kern->softmax_backward(d->ok, d->dp, A->p, n * c->H, c->M);
    gsa_slot_dims sd = slot_dims(m);
    m->kern->slot_backward(d->dq, d->dk, d->ds_slots, d->df_slots, d->ok, d->q, d->k, A->s, A->f,
                           A->slot_checkpoints, &sd, m->d.work, m->n_work);
    /* f and s fed both passes */
    m->kern->slot_gates_backward(d->df_slots, d->df_slots, d->df_values, d->ds_slots, d->ds_values, A->f,
                                 (size_t)n * c->slot_dim, c->normalizer);
    m->kern->swish_backward(d->dq, d->dq, A->q_pre, (size_t)n * c->key_dim);
    m->kern->swish_backward(d->dk, d->dk, A->k_pre, (size_t)n * c->key_dim);
    m->kern->swish_backward(d->dv, d->dv, A->v_pre, (size_t)n * c->value_dim);
}

/* from the projections' output gradients to d_resid = ∂loss/∂(layer input) */
static void attn_input_backward(gsa_model *m, int l)
{
    const flame_ops *ops = m->base.ops;
    const gsa_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    int n = m->base.batch.n;
    const void *x = m->base.resid[l];
    ops->rmsnorm_forward(d->a, A->attn_rstd, x, W(m, l, P_ATTN_NORM), n, c->s.D, c->s.eps);
    const lm_prenorm norm = {x, d->a, W(m, l, P_ATTN_NORM), dW(m, l, P_ATTN_NORM), A->attn_rstd, NULL, NULL, NULL, NULL};
    const lm_projection proj[] = {
        {W(m, l, P_Q), dW(m, l, P_Q), d->dq, c->key_dim, NULL},
        {W(m, l, P_K), dW(m, l, P_K), d->dk, c->key_dim, NULL},
        {W(m, l, P_V), dW(m, l, P_V), d->dv, c->value_dim, NULL},
        {W(m, l, P_F), dW(m, l, P_F), d->df_slots, c->slot_dim, NULL},
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

static void gsa_backward(void *model) { lm_model_backward(model, attn_backward, model); }

/* ------------------------------------------------------------------ the rest */

/* 6 FLOPs per weight of every matmul (2 forward, 4 backward), the embedding
 * lookup excluded and lm_head included even when tied; plus the two passes:
 * per token, head and layer, a pass's state update and readout are each about
 * 2·(its key dim)·(its value dim) FLOPs, and forward + backward (which also
 * recomputes the states) come to about 3 passes of both. */
static double gsa_flops_per_token(const void *model, int T)
{
    const gsa_dims *c = &((const gsa_model *)model)->c;
    (void)T; /* the passes are linear in T: no per-token term grows with it */
    double D = c->s.D, layer_weights = D * (2.0 * c->key_dim + 2.0 * c->value_dim + c->slot_dim) /* q k v f o */
                                     + 3.0 * c->s.I * D;                                       /* MLP */
    double matmul = 6.0 * (c->s.L * layer_weights + (double)c->s.V * D);
    double passes = (double)c->s.L * 3.0 * 2.0 * 2.0 * c->H * c->M * ((double)c->dk + c->dv);
    return matmul + passes;
}

/* fla's own folders: its config keys (and the config class's spelling of the
 * expansions, which a hand-written config.json may use) and tensor names */
static const flame_hf_key gsa_keys[] = {
    {"exapnd_k", "expand_k", NULL},
    {"exapnd_v", "expand_v", NULL},
};
static const flame_hf_format gsa_formats[] = {
    {"gsa", "GSAForCausalLM", gsa_keys, LM_COUNT(gsa_keys), NULL, 0},
};

static const flame_plugin gsa_plugin = {
    FLAME_PLUGIN_HEADER,
    .name = "gsa",
    .description = "Gated Slot Attention (fla's GSAForCausalLM)",
    .options = gsa_options,
    .n_options = N_OPTIONS,
    .create = gsa_create,
    .destroy = lm_model_destroy,
    .n_params = lm_model_n_params,
    .param = lm_model_param,
    .param_joined = lm_model_param_joined,
    .bind = lm_model_bind,
    .reserve = gsa_reserve,
    .forward = gsa_forward,
    .backward = gsa_backward,
    .watch_gradients = lm_model_watch_gradients,
    .flops_per_token = gsa_flops_per_token,
    .vocab_size = lm_model_vocab_size,
    .hf_formats = gsa_formats,
    .n_hf_formats = LM_COUNT(gsa_formats),
    .decode_state_size = gsa_decode_state_size,
    .decode_forward = gsa_decode_forward,
};

const flame_plugin *flame_plugin_entry(void) { return &gsa_plugin; }
