/* Mamba2: fla's Mamba2ForCausalLM (fla/models/mamba2, fla/layers/mamba2.py,
 * fla/modules/layernorm_gated.py) as a flame plugin. No MLP; each layer is a
 * pre-norm Mamba2 mixer on the residual stream.
 *
 * For tokens x (n = B·T rows), with RMSNorm(v)·w written norm(v, w), E the
 * inner width expand·hidden_size = H·P, and in_proj's rows split in fla's
 * order z | x | B | C | Δ (E, E, G·N, G·N, H):
 *   h = embed(x)
 *   per layer:
 *     a  = norm(h, layers.l.norm)
 *     z, x', B', C', dt = a·W_inᵀ, slice by slice
 *     x, B, C = silu(conv1d(x')), silu(conv1d(B')), silu(conv1d(C'))
 *          (causal depthwise, kernel conv_kernel, bias; the window starts
 *          again at each document: the op table's conv1d)
 *     Δ  = clamp(softplus(dt + dt_bias), dt_limit)                   (delta_*)
 *     y  = the SSD scan: S_t = e^{Δ_t A} S_{t−1} + Δ_t x_t B_tᵀ,
 *          y_t = S_t C_t + D x_t,  A = −exp(A_log), per head; the state
 *          starts at 0 at each document                             (ssd_*)
 *     g  = norm(y ⊙ silu(z), mixer.norm) in groups of E/G, eps norm_eps
 *                                                                 (gated_norm_*)
 *     h  = h + g·W_outᵀ
 *   logits = norm(h, norm_f)·lm_headᵀ;  loss = mean cross-entropy over targets ≥ 0
 * Each of in_proj's five slices is a row block of its weight, and each of the
 * convolution's three a channel block of its, so every activation is a
 * contiguous [n, width] array (the narrow slices B', C', dt are made by one
 * product and split). A layer keeps in_proj's slices, x, B, C, Δ,
 * y, the scan's checkpoints, g and two norms' rstd: the backward makes only
 * a again.
 *
 * Residual stream: kept in the op table's activation type (bf16 on CUDA),
 * like the other plugins; fla keeps it in fp32 (residual_in_fp32). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/plugin.h>

#include "../common/lm_model.h"
#include "mamba2_kernels.h"

/* ------------------------------------------------------------------ options */

static const flame_option mamba2_options[] = {
    LM_BASE_OPTIONS,
    {"head_dim", FLAME_TYPE_INT, "64", "P, the width of a head", 0},
    {"num_heads", FLAME_TYPE_INT, NULL, "H (unset: expand·hidden_size/head_dim, the only value taken)", 0},
    {"state_size", FLAME_TYPE_INT, "128", "N, the state's width per head", 0},
    {"expand", FLAME_TYPE_INT, "2", "inner width E = expand·hidden_size", 0},
    {"n_groups", FLAME_TYPE_INT, "1", "G, groups of heads sharing B and C (and normed together)", 0},
    {"conv_kernel", FLAME_TYPE_INT, "4", "width of the causal convolution", 0},
    {"use_conv_bias", FLAME_TYPE_BOOL, "true", "the convolution has a bias", 0},
    {"conv_init", FLAME_TYPE_FLOAT, NULL, "the convolution's weights drawn U(-conv_init, conv_init) (unset: normal)", 0},
    {"use_bias", FLAME_TYPE_BOOL, "false", "biases of in_proj and out_proj (true: not supported yet)", 0},
    {"dt_min", FLAME_TYPE_FLOAT, "0.001", "Δ at init drawn log-uniform in [dt_min, dt_max]", 0},
    {"dt_max", FLAME_TYPE_FLOAT, "0.1", "see dt_min", 0},
    {"dt_init_floor", FLAME_TYPE_FLOAT, "1e-4", "the least Δ at init", 0},
    {"rescale_prenorm_residual", FLAME_TYPE_BOOL, "true",
     "out_proj drawn U(±1/sqrt(E))/sqrt(num_hidden_layers) (false: normal)", 0},
    {"rmsnorm", FLAME_TYPE_BOOL, "true", "the gated norm (false: not supported yet)", 0},
    /* fla-org/flame's mamba2 configs spell these with names fla has since
     * renamed (fla now passes them over); read as the new ones */
    {"time_step_min", FLAME_TYPE_FLOAT, NULL, "fla's older name of dt_min", 0},
    {"time_step_max", FLAME_TYPE_FLOAT, NULL, "fla's older name of dt_max", 0},
    {"time_step_floor", FLAME_TYPE_FLOAT, NULL, "fla's older name of dt_init_floor", 0},
    {"rms_norm", FLAME_TYPE_BOOL, NULL, "fla's older name of rmsnorm", 0},
    {"norm_before_gate", FLAME_TYPE_BOOL, "false", "norm then gate (true: not supported yet)", 0},
    {"D_has_hdim", FLAME_TYPE_BOOL, "false", "D per channel (true: not supported yet)", 0},
    {"chunk_size", FLAME_TYPE_INT, "256", "accepted: the scan's chunking is the kernels' choice", 1},
    {"residual_in_fp32", FLAME_TYPE_BOOL, NULL, "accepted: the residual stream is kept in the activation type", 1},
    LM_DECODER_IGNORED_OPTIONS,
    {"fuse_norm", FLAME_TYPE_BOOL, NULL, "fla kernel choice", 1},
    {"time_step_rank", FLAME_TYPE_INT, NULL, "Mamba1's, unused by Mamba2", 1},
};
#define N_OPTIONS ((int)(sizeof mamba2_options / sizeof mamba2_options[0]))

/* the clamp of Δ: fla's dt_limit default (0, inf) */
#define DT_LIMIT_LO 0.0f
#define DT_LIMIT_HI INFINITY
/* A = U(1, 16) at init: fla's A_init_range default */
#define A_INIT_LO 1.0
#define A_INIT_HI 16.0

/* ------------------------------------------------------------------ the model */

/* a layer's parameters, in fla's order; the conv bias only with use_conv_bias */
enum {
    P_NORM, P_CONV_W, P_CONV_B, P_IN, P_DT_BIAS, P_A_LOG, P_GNORM, P_D, P_OUT, P_PER_LAYER
};

typedef struct mamba2_dims {
    lm_shape s;
    int H, P, N, G, E, K; /* heads, head width, state, groups, inner width, conv kernel */
    int bc;               /* G·N, the width of B and of C */
    int conv_bias;
    double dt_min, dt_max, dt_floor, conv_init; /* conv_init 0: normal */
    int rescale;
} mamba2_dims;

/* in_proj's slices (rows of its weight) and the convolution's (its channels);
 * the narrow ones, B' to dt, are one product (one wide enough to run well on
 * tensor cores) split into arrays of their own, and their gradients are
 * joined back for the same reason */
enum { S_Z, S_X, S_B, S_C, S_DT, N_SLICES };
#define S_NARROW S_B
#define N_NARROW (N_SLICES - S_NARROW)

/* what one layer keeps from its forward for its backward: void pointers are
 * activations, float ones fp32. Everything but the input norm's output is
 * kept, so that the backward remakes only that norm, not the convolutions,
 * the scan's output and states or the gated norm. */
typedef struct layer_acts {
    float *rstd;              /* [n] the input norm's */
    void *in[N_SLICES];       /* [n, width] in_proj's outputs: z, x', B', C', dt */
    void *x, *B, *C;          /* the convolutions' outputs */
    float *delta;             /* [n,H] */
    void *y;                  /* [n,E] the scan's output */
    void *checkpoints;        /* the scan's states at chunk starts */
    float *norm_rstd;         /* [n·G] the gated norm's */
    void *g;                  /* [n,E] the gated norm's output */
} layer_acts;

/* scratch reused by every layer (lm_take_scratch_acts: each layer's call
 * writes it before reading it): what the backward makes again, the
 * gradients, and the scan's work */
typedef struct grad_scratch {
    void *a;                  /* [n,D] the input norm's output */
    void *dg, *dy;            /* [n,E] */
    void *d_in[N_SLICES];     /* gradients of in_proj's outputs: dz, dx', dB', dC', ddt */
    void *narrow;             /* [n, 2·G·N + H] B' | C' | dt as one product, or their gradients */
    void *dx, *dB, *dC;       /* of the convolutions' outputs */
    float *ddelta;            /* [n,H] */
    float *work;              /* the scan's, its workers' side by side */
} grad_scratch;

typedef struct mamba2_model {
    lm_model base; /* first: the shared vtable entries take the model as it */
    const mamba2_kernels *kern;
    mamba2_dims c;
    grad_scratch d;
    int n_work; /* the scan's workers */
} mamba2_model;

static layer_acts *acts(const mamba2_model *m, int l) { return (layer_acts *)m->base.layers + l; }

/* the index of parameter p in a layer's list: the conv bias is absent without one */
static int param_index(const mamba2_model *m, int p) { return p > P_CONV_B && !m->c.conv_bias ? p - 1 : p; }
static const void *W(const mamba2_model *m, int l, int p) { return lm_model_w(&m->base, l, param_index(m, p)); }
static float *dW(const mamba2_model *m, int l, int p) { return lm_model_dw(&m->base, l, param_index(m, p)); }

/* slice s of in_proj: its first row and its rows */
static int slice_width(const mamba2_dims *c, int s)
{
    return s == S_Z || s == S_X ? c->E : s == S_DT ? c->H : c->bc;
}
static int slice_start(const mamba2_dims *c, int s)
{
    int start = 0;
    for (int i = 0; i < s; i++)
        start += slice_width(c, i);
    return start;
}
/* the widths of the narrow slices, and all of them */
static void narrow_widths(const mamba2_dims *c, int widths[N_NARROW])
{
    for (int i = 0; i < N_NARROW; i++)
        widths[i] = slice_width(c, S_NARROW + i);
}
static int narrow_width(const mamba2_dims *c) { return slice_start(c, N_SLICES) - slice_start(c, S_NARROW); }
/* the convolution's channels start at in_proj's x slice */
static int conv_start(const mamba2_dims *c, int s) { return slice_start(c, s) - slice_start(c, S_X); }

/* ------------------------------------------------------------------ create */

static int check_supported(const lm_options *cfg, char *err, size_t err_len)
{
    static const lm_bool_setting bools[] = {
        {"use_bias", 0}, {"rmsnorm", 1}, {"norm_before_gate", 0}, {"D_has_hdim", 0}};
    static const char *const unset_only[] = {"attnres_block_size"};
    if (lm_check_supported(cfg, bools, LM_COUNT(bools), unset_only, LM_COUNT(unset_only), err, err_len))
        return -1;
    if (lm_opt_given(cfg, "rms_norm") && !lm_opt_bool(cfg, "rms_norm")) {
        snprintf(err, err_len, "rms_norm = false is not supported yet");
        return -1;
    }
    return 0;
}

/* a float option under its name or fla's older one (both given: they must agree) */
static int read_renamed(const lm_options *cfg, const char *key, const char *older, double *out,
                        char *err, size_t err_len)
{
    *out = lm_opt_float(cfg, key);
    if (!lm_opt_given(cfg, older))
        return 0;
    double old = lm_opt_float(cfg, older);
    if (cfg->cfg->is_set(cfg->cfg->ctx, key) && old != *out) {
        snprintf(err, err_len, "%s = %g and its older name %s = %g differ", key, *out, older, old);
        return -1;
    }
    *out = old;
    return 0;
}

/* a positive float option (or its older name); returns 0 or -1 with err */
static int read_positive(const lm_options *cfg, const char *key, const char *older, double *out,
                         char *err, size_t err_len)
{
    if (older ? read_renamed(cfg, key, older, out, err, err_len) : (*out = lm_opt_float(cfg, key), 0))
        return -1;
    if (!(*out > 0) || !isfinite(*out)) {
        snprintf(err, err_len, "%s = %g: expected a number > 0", key, *out);
        return -1;
    }
    return 0;
}

static int read_heads(const lm_options *cfg, mamba2_dims *c, char *err, size_t err_len)
{
    int expand;
    if (lm_read_size(cfg, "head_dim", &c->P, err, err_len) || lm_read_size(cfg, "expand", &expand, err, err_len) ||
        lm_read_size(cfg, "state_size", &c->N, err, err_len) || lm_read_size(cfg, "n_groups", &c->G, err, err_len) ||
        lm_read_size(cfg, "conv_kernel", &c->K, err, err_len))
        return -1;
    if ((int64_t)expand * c->s.D > INT_MAX / 4 || (int64_t)expand * c->s.D % c->P) {
        snprintf(err, err_len, "expand·hidden_size = %lld: expected a multiple of head_dim = %d",
                 (long long)expand * c->s.D, c->P);
        return -1;
    }
    c->E = expand * c->s.D, c->H = c->E / c->P;
    if (lm_opt_given(cfg, "num_heads") && lm_opt_int(cfg, "num_heads") != c->H) {
        snprintf(err, err_len, "num_heads = %lld: fla's Mamba2 has expand·hidden_size/head_dim = %d heads",
                 (long long)lm_opt_int(cfg, "num_heads"), c->H);
        return -1;
    }
    if (c->H % c->G) {
        snprintf(err, err_len, "n_groups = %d: expected a divisor of the %d heads", c->G, c->H);
        return -1;
    }
    if ((int64_t)c->G * c->N > INT_MAX / 4) {
        snprintf(err, err_len, "n_groups·state_size is too large");
        return -1;
    }
    c->bc = c->G * c->N;
    if (c->K > FLAME_CONV1D_MAX_K) {
        snprintf(err, err_len, "conv_kernel = %d: at most %d", c->K, FLAME_CONV1D_MAX_K);
        return -1;
    }
    return 0;
}

static int read_dims(const lm_options *cfg, mamba2_dims *c, char *err, size_t err_len)
{
    c->s.root = "backbone", c->s.final_norm = "norm_f";
    if (lm_read_base_shape(cfg, &c->s, err, err_len) || read_heads(cfg, c, err, err_len) ||
        read_positive(cfg, "dt_min", "time_step_min", &c->dt_min, err, err_len) ||
        read_positive(cfg, "dt_max", "time_step_max", &c->dt_max, err, err_len) ||
        read_positive(cfg, "dt_init_floor", "time_step_floor", &c->dt_floor, err, err_len))
        return -1;
    if (c->dt_max < c->dt_min) {
        snprintf(err, err_len, "dt_max = %g is below dt_min = %g", c->dt_max, c->dt_min);
        return -1;
    }
    c->conv_init = 0.0;
    if (lm_opt_given(cfg, "conv_init") && read_positive(cfg, "conv_init", NULL, &c->conv_init, err, err_len))
        return -1;
    c->conv_bias = lm_opt_bool(cfg, "use_conv_bias");
    c->rescale = lm_opt_bool(cfg, "rescale_prenorm_residual");
    c->s.per_layer = c->conv_bias ? P_PER_LAYER : P_PER_LAYER - 1;
    return 0;
}

/* fla's initialization: normal matrices, A_log, dt_bias and (rescaled)
 * out_proj by init_values, D and the norms ones, the conv bias zeros; A_log,
 * D, dt_bias, biases and norms without weight decay */
static void add_layer_params(void *model, int l)
{
    mamba2_model *m = model;
    const mamba2_dims *c = &m->c;
    lm_model *b = &m->base;
    int conv_dim = c->E + 2 * c->bc, proj = c->E + conv_dim + c->H;
    lm_model_add_layer_param(b, l, "norm.weight", c->s.D, 0, FLAME_INIT_ONES);
    int64_t conv_shape[3] = {conv_dim, 1, c->K};
    lm_model_add_layer_tensor(b, l, "mixer.conv1d.weight", 3, conv_shape,
                              c->conv_init > 0 ? FLAME_INIT_PLUGIN : FLAME_INIT_NORMAL, 1);
    if (c->conv_bias)
        lm_model_add_layer_param(b, l, "mixer.conv1d.bias", conv_dim, 0, FLAME_INIT_ZEROS);
    lm_model_add_layer_param(b, l, "mixer.in_proj.weight", proj, c->s.D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "mixer.dt_bias", c->H, 0, FLAME_INIT_PLUGIN);
    lm_model_add_layer_param(b, l, "mixer.A_log", c->H, 0, FLAME_INIT_PLUGIN);
    lm_model_add_layer_param(b, l, "mixer.norm.weight", c->E, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(b, l, "mixer.D", c->H, 0, FLAME_INIT_ONES);
    int64_t out_shape[2] = {c->s.D, c->E};
    lm_model_add_layer_tensor(b, l, "mixer.out_proj.weight", 2, out_shape,
                              c->rescale ? FLAME_INIT_PLUGIN : FLAME_INIT_NORMAL, 1);
}

static void *mamba2_create(const flame_model_config *cfg, const flame_ops *ops, char *err, size_t err_len)
{
    const mamba2_kernels *kern = mamba2_kernels_for(ops->backend);
    if (!kern) {
        snprintf(err, err_len, "no Mamba2 kernels for backend %s in this build",
                 ops->backend);
        return NULL;
    }
    if (!FLAME_OPS_HAS(ops, conv1d_forward)) {
        snprintf(err, err_len, "the op table has no conv1d (a core older than ABI 5.3)");
        return NULL;
    }
    mamba2_dims c = {0};
    lm_options opts = {cfg, mamba2_options, N_OPTIONS};
    if (check_supported(&opts, err, err_len) || read_dims(&opts, &c, err, err_len))
        return NULL;
    if (kern->gated_norm_max_group && c.E / c.G > kern->gated_norm_max_group) {
        snprintf(err, err_len, "expand·hidden_size/n_groups = %d: the %s kernels take at most %d", c.E / c.G,
                 ops->backend, kern->gated_norm_max_group);
        return NULL;
    }
    if ((kern->ssd_max_P && c.P > kern->ssd_max_P) || (kern->ssd_max_N && c.N > kern->ssd_max_N)) {
        snprintf(err, err_len, "head_dim = %d, state_size = %d: the %s kernels take at most %d and %d", c.P,
                 c.N, ops->backend, kern->ssd_max_P, kern->ssd_max_N);
        return NULL;
    }
    mamba2_model *m = calloc(1, sizeof *m);
    if (m)
        m->kern = kern, m->c = c; /* before the parameters: add_layer_params reads them */
    return lm_model_create(m, ops, &c.s, add_layer_params, sizeof(layer_acts), err, err_len);
}

/* ------------------------------------------------------------------ init */

/* A_log = log U(1, 16); dt_bias = softplus⁻¹(Δ), Δ log-uniform in [dt_min,
 * dt_max] floored at dt_init_floor; out_proj U(±1/sqrt(E))/sqrt(L), torch's
 * kaiming_uniform(a = √5) rescaled as fla's rescale_prenorm_residual does; the
 * convolution U(±conv_init) */
static void mamba2_init_values(const void *model, int index, float *values, size_t numel,
                               double (*uniform)(void *state), void *state)
{
    const mamba2_model *m = model;
    const mamba2_dims *c = &m->c;
    int p = (index - 1) % c->s.per_layer;
    p = !c->conv_bias && p >= P_CONV_B ? p + 1 : p; /* back to the enum's numbering */
    for (size_t i = 0; i < numel; i++) {
        double u = uniform(state), v;
        if (p == P_A_LOG) {
            v = log(A_INIT_LO + (A_INIT_HI - A_INIT_LO) * u);
        } else if (p == P_DT_BIAS) {
            double dt = exp(log(c->dt_min) + u * (log(c->dt_max) - log(c->dt_min)));
            dt = dt < c->dt_floor ? c->dt_floor : dt;
            v = dt + log(-expm1(-dt));
        } else if (p == P_OUT) {
            v = (2.0 * u - 1.0) / sqrt((double)c->E) / sqrt((double)c->s.L);
        } else { /* P_CONV_W */
            v = (2.0 * u - 1.0) * c->conv_init;
        }
        values[i] = (float)v;
    }
}

/* ------------------------------------------------------------------ reserve */

static void carve_layer(const mamba2_model *m, layer_acts *A, lm_carver *cv, size_t n)
{
    const mamba2_dims *c = &m->c;
    A->rstd = lm_take_floats(cv, n);
    for (int s = 0; s < N_SLICES; s++)
        A->in[s] = lm_take_acts(cv, n * slice_width(c, s));
    A->x = lm_take_acts(cv, n * c->E);
    A->B = lm_take_acts(cv, n * c->bc);
    A->C = lm_take_acts(cv, n * c->bc);
    A->delta = lm_take_floats(cv, n * c->H);
    A->y = lm_take_acts(cv, n * c->E);
    A->checkpoints = lm_take_acts(cv, mamba2_ssd_checkpoint_floats((int)n, c->H, c->P, c->N));
    A->norm_rstd = lm_take_floats(cv, n * c->G);
    A->g = lm_take_acts(cv, n * c->E);
}

static void carve_grads(const mamba2_model *m, grad_scratch *d, lm_carver *cv, size_t n)
{
    const mamba2_dims *c = &m->c;
    d->a = lm_take_scratch_acts(cv, n * c->s.D);
    d->dg = lm_take_scratch_acts(cv, n * c->E);
    d->dy = lm_take_scratch_acts(cv, n * c->E);
    for (int s = 0; s < N_SLICES; s++)
        d->d_in[s] = lm_take_scratch_acts(cv, n * slice_width(c, s));
    d->dx = lm_take_scratch_acts(cv, n * c->E);
    d->dB = lm_take_scratch_acts(cv, n * c->bc);
    d->dC = lm_take_scratch_acts(cv, n * c->bc);
    d->ddelta = lm_take_scratch_floats(cv, n * c->H);
    d->narrow = lm_take_scratch_acts(cv, n * narrow_width(c));
    d->work = lm_take_scratch_floats(cv, m->kern->ssd_work_floats((int)n, c->H, c->P, c->N, c->G, m->n_work));
}

static void carve_all(void *model, lm_carver *cv, size_t n)
{
    mamba2_model *m = model;
    lm_model_carve(&m->base, cv, n);
    for (int l = 0; l < m->c.s.L; l++)
        carve_layer(m, acts(m, l), cv, n);
    carve_grads(m, &m->d, cv, n);
}

static int mamba2_reserve(void *model, int B, int T, char *err, size_t err_len)
{
    mamba2_model *m = model;
    const mamba2_dims *c = &m->c;
    /* the kernels index rows of heads' states (n·H·P) with an int */
    if (B < 1 || T < 1 || (int64_t)B * T * c->E > INT_MAX) {
        snprintf(err, err_len, "cannot reserve a batch of %d×%d tokens", B, T);
        return -2;
    }
    m->n_work = m->kern->ssd_max_workers();
    if (m->n_work < 1)
        m->n_work = 1;
    return lm_model_reserve(&m->base, (size_t)B * T, carve_all, m, err, err_len);
}

/* ------------------------------------------------------------------ forward */

static mamba2_ssd_dims ssd_dims(const mamba2_model *m)
{
    const lm_batch *b = &m->base.batch;
    mamba2_ssd_dims d = {b->cu, b->n_seqs, m->c.H, m->c.P, m->c.N, m->c.G, b->cu_backend};
    return d;
}

/* the parameters of layer l's convolution for slice s (x, B or C) */
static const void *conv_weight(const mamba2_model *m, int l, int s)
{
    return lm_act_at(m->base.ops, W(m, l, P_CONV_W), (size_t)conv_start(&m->c, s) * m->c.K);
}
static const void *conv_bias(const mamba2_model *m, int l, int s)
{
    return m->c.conv_bias ? lm_act_at(m->base.ops, W(m, l, P_CONV_B), (size_t)conv_start(&m->c, s)) : NULL;
}

/* decoding n sequences: layer l's scan states, and its window of slice s
 * (every layer's scan states, fp32 [L, B, H, P, N], then the convolutions'
 * windows, act: per layer, per slice x, B, C, [B, K−1, width]) */
static float *decode_states(const mamba2_model *m, int l, int n)
{
    const mamba2_dims *c = &m->c;
    return (float *)m->base.decoding + (size_t)l * n * c->H * c->P * c->N;
}

static void *decode_window(const mamba2_model *m, int l, int s, int n)
{
    const mamba2_dims *c = &m->c;
    size_t per_token = (size_t)(c->K - 1) * n, conv_width = (size_t)conv_start(c, S_DT);
    return lm_act_at(m->base.ops, decode_states(m, c->s.L, n),
                     per_token * (l * conv_width + conv_start(c, s)));
}

/* x, B, C = silu(conv1d(x', B', C')) */
static void convolutions(const mamba2_model *m, int l, const layer_acts *A, int n)
{
    const flame_ops *ops = m->base.ops;
    const lm_batch *b = &m->base.batch;
    void *out[N_SLICES] = {[S_X] = A->x, [S_B] = A->B, [S_C] = A->C};
    for (int s = S_X; s <= S_C; s++)
        if (m->base.decoding)
            ops->conv1d_step(out[s], decode_window(m, l, s, n), A->in[s], conv_weight(m, l, s),
                             conv_bias(m, l, s), n, slice_width(&m->c, s), m->c.K, 1);
        else
            ops->conv1d_forward(out[s], A->in[s], conv_weight(m, l, s), conv_bias(m, l, s),
                                b->cu_backend, b->n_seqs, n, slice_width(&m->c, s), m->c.K, 1);
}

/* a, then in_proj's five slices (the layer's kept inputs) */
static void input_projections(mamba2_model *m, int l, int n)
{
    const flame_ops *ops = m->base.ops;
    const mamba2_dims *c = &m->c;
    layer_acts *A = acts(m, l);
    ops->rmsnorm_forward(m->d.a, A->rstd, m->base.resid[l], W(m, l, P_NORM), n, c->s.D, c->s.eps);
    for (int s = 0; s <= S_NARROW; s++) {
        int wide = s < S_NARROW;
        ops->matmul_forward(wide ? A->in[s] : m->d.narrow, m->d.a,
                            lm_act_at(ops, W(m, l, P_IN), (size_t)slice_start(c, s) * c->s.D), NULL, NULL, n,
                            c->s.D, wide ? slice_width(c, s) : narrow_width(c));
    }
    int widths[N_NARROW];
    narrow_widths(c, widths);
    m->kern->split_columns(A->in + S_NARROW, widths, N_NARROW, m->d.narrow, n);
}

/* the scan: y and its checkpoints */
static void scan_forward(mamba2_model *m, int l)
{
    layer_acts *A = acts(m, l);
    mamba2_ssd_dims sd = ssd_dims(m);
    if (m->base.decoding)
        m->kern->ssd_step(A->y, decode_states(m, l, sd.n_seqs), A->x, A->delta, W(m, l, P_A_LOG),
                          A->B, A->C, W(m, l, P_D), &sd, sd.n_seqs);
    else
        m->kern->ssd_forward(A->y, A->checkpoints, A->x, A->delta, W(m, l, P_A_LOG), A->B, A->C,
                             W(m, l, P_D), &sd, m->d.work, m->n_work);
}

/* g, the gated norm of the scan's output (and its rstd) */
static void gated_norm(mamba2_model *m, int l, int n)
{
    const mamba2_dims *c = &m->c;
    layer_acts *A = acts(m, l);
    m->kern->gated_norm_forward(A->g, A->norm_rstd, A->y, A->in[S_Z], W(m, l, P_GNORM), n, c->E,
                                c->E / c->G, c->s.eps);
}

/* from in_proj's outputs: the convolutions, Δ, the scan and g */
static void mixer_core(mamba2_model *m, int l, int n)
{
    layer_acts *A = acts(m, l);
    convolutions(m, l, A, n);
    m->kern->delta_forward(A->delta, A->in[S_DT], W(m, l, P_DT_BIAS), n, m->c.H, DT_LIMIT_LO, DT_LIMIT_HI);
    scan_forward(m, l);
    gated_norm(m, l, n);
}

/* mid[l] = resid[l] + the mixer of its norm (lm_mixer_fn) */
static void mixer_forward(void *model, int l)
{
    mamba2_model *m = model;
    int n = m->base.batch.n;
    input_projections(m, l, n);
    mixer_core(m, l, n);
    m->base.ops->matmul_forward(m->base.mid[l], acts(m, l)->g, W(m, l, P_OUT), NULL, m->base.resid[l], n, m->c.E,
                                m->c.s.D);
}

static float mamba2_forward(void *model, const flame_batch *batch, float *logits)
{
    return lm_model_forward(model, batch, logits, "mamba2", mixer_forward, model);
}

/* ------------------------------------------------------------------ generation */

/* every layer's scan states and convolution windows, whatever the length */
static size_t mamba2_decode_state_size(const void *model, int B, int max_len)
{
    const mamba2_model *m = model;
    const mamba2_dims *c = &m->c;
    (void)max_len;
    if (!m->kern->ssd_step || !FLAME_OPS_HAS(m->base.ops, conv1d_step))
        return 0;
    size_t states = (size_t)c->s.L * B * c->H * c->P * c->N * sizeof(float);
    size_t windows = (size_t)c->s.L * B * (c->K - 1) * conv_start(c, S_DT) * m->base.ops->act_bytes;
    return states + windows;
}

static int mamba2_decode_forward(void *model, void *state, const int32_t *tokens, int B, int pos,
                                 float *logits)
{
    mamba2_model *m = model;
    return lm_model_decode(&m->base, state, tokens, B, pos, logits, "mamba2", mixer_forward, m);
}

/* ------------------------------------------------------------------ backward */

/* from d_resid = ∂loss/∂mid[l] to ∂loss/∂resid[l] (lm_mixer_fn) */
static void mixer_backward(void *model, int l)
{
    mamba2_model *m = model;
    const flame_ops *ops = m->base.ops;
    const mamba2_dims *c = &m->c;
    const layer_acts *A = acts(m, l);
    grad_scratch *d = &m->d;
    const lm_batch *b = &m->base.batch;
    int n = b->n;
    /* what the forward did not keep */
    ops->rmsnorm_forward(d->a, (float *)A->rstd, m->base.resid[l], W(m, l, P_NORM), n, c->s.D, c->s.eps);
    /* out_proj, the gated norm, the scan, Δ */
    ops->matmul_backward(d->dg, FLAME_GRAD_SET, dW(m, l, P_OUT), NULL, m->base.d_resid, A->g, W(m, l, P_OUT),
                         n, c->E, c->s.D);
    m->kern->gated_norm_backward(d->dy, d->d_in[S_Z], dW(m, l, P_GNORM), d->dg, A->y, A->in[S_Z],
                                 W(m, l, P_GNORM), A->norm_rstd, n, c->E, c->E / c->G);
    mamba2_ssd_dims sd = ssd_dims(m);
    mamba2_ssd_grads_any g = {d->dx, d->dB, d->dC, d->ddelta, dW(m, l, P_A_LOG), dW(m, l, P_D)};
    m->kern->ssd_backward(&g, d->dy, A->x, A->delta, W(m, l, P_A_LOG), A->B, A->C, W(m, l, P_D),
                          A->checkpoints, &sd, m->d.work, m->n_work);
    m->kern->delta_backward(d->d_in[S_DT], dW(m, l, P_DT_BIAS), d->ddelta, A->in[S_DT], W(m, l, P_DT_BIAS),
                            n, c->H, DT_LIMIT_LO, DT_LIMIT_HI);
    /* the convolutions */
    const void *dout[N_SLICES] = {[S_X] = d->dx, [S_B] = d->dB, [S_C] = d->dC};
    for (int s = S_X; s <= S_C; s++)
        ops->conv1d_backward(d->d_in[s], dW(m, l, P_CONV_W) + (size_t)conv_start(c, s) * c->K,
                             c->conv_bias ? dW(m, l, P_CONV_B) + conv_start(c, s) : NULL, dout[s], A->in[s],
                             conv_weight(m, l, s), conv_bias(m, l, s), b->cu_backend, b->n_seqs, n,
                             slice_width(c, s), c->K, 1);
    /* in_proj's slices (the narrow ones joined) and the input norm */
    int widths[N_NARROW];
    narrow_widths(c, widths);
    m->kern->join_columns(d->narrow, (const void *const *)d->d_in + S_NARROW, widths, N_NARROW, n);
    const lm_prenorm norm = {m->base.resid[l], d->a, W(m, l, P_NORM), dW(m, l, P_NORM), A->rstd, NULL, NULL, NULL, NULL};
    lm_projection proj[S_NARROW + 1];
    for (int s = 0; s <= S_NARROW; s++) {
        size_t first = (size_t)slice_start(c, s) * c->s.D;
        int wide = s < S_NARROW;
        proj[s] = (lm_projection){lm_act_at(ops, W(m, l, P_IN), first), dW(m, l, P_IN) + first,
                                  wide ? d->d_in[s] : d->narrow, wide ? slice_width(c, s) : narrow_width(c), NULL};
    }
    lm_prenorm_backward(ops, &norm, proj, S_NARROW + 1, m->base.d_x, m->base.d_resid, n, c->s.D);
}

static void mamba2_backward(void *model) { lm_model_backward(model, mixer_backward, model); }

/* ------------------------------------------------------------------ the rest */

/* 6 FLOPs per weight of every matmul (2 forward, 4 backward), lm_head
 * included, the embedding lookup excluded; plus the scan: per token, head and
 * layer its state update and readout are each about 2·P·N FLOPs, and forward
 * + backward come to about 3 passes of both (the backward twice the forward,
 * as GLA counts its recurrence). */
static double mamba2_flops_per_token(const void *model, int T)
{
    const mamba2_dims *c = &((const mamba2_model *)model)->c;
    (void)T; /* the scan is linear in T */
    double D = c->s.D, proj = 2.0 * c->E + 2.0 * c->bc + c->H;
    double matmul = 6.0 * (c->s.L * D * (proj + c->E) + (double)c->s.V * D);
    double scan = (double)c->s.L * 3.0 * 2.0 * 2.0 * c->H * (double)c->P * c->N;
    return matmul + scan;
}

/* what fla saves of settings flame has fixed: accepted at fla's defaults only */
static const flame_hf_key mamba2_keys[] = {
    {"A_init_range", NULL, "[1, 16]"},
    {"dt_limit", NULL, "[0.0, Infinity]"},
};

/* fla's own folders: its other config keys are the [model] keys (the older
 * names are options, so that to-hf writes fla's current ones) */
static const flame_hf_format mamba2_formats[] = {
    {"mamba2", "Mamba2ForCausalLM", mamba2_keys, LM_COUNT(mamba2_keys), NULL, 0},
};

static const flame_plugin mamba2_plugin = {
    FLAME_PLUGIN_HEADER,
    .name = "mamba2",
    .description = "Mamba2, the SSD state space model (fla's Mamba2ForCausalLM)",
    .options = mamba2_options,
    .n_options = N_OPTIONS,
    .create = mamba2_create,
    .destroy = lm_model_destroy,
    .n_params = lm_model_n_params,
    .param = lm_model_param,
    .param_joined = lm_model_param_joined,
    .bind = lm_model_bind,
    .reserve = mamba2_reserve,
    .forward = mamba2_forward,
    .backward = mamba2_backward,
    .watch_gradients = lm_model_watch_gradients,
    .flops_per_token = mamba2_flops_per_token,
    .vocab_size = lm_model_vocab_size,
    .hf_formats = mamba2_formats,
    .n_hf_formats = LM_COUNT(mamba2_formats),
    .decode_state_size = mamba2_decode_state_size,
    .decode_forward = mamba2_decode_forward,
    .init_values = mamba2_init_values,
};

const flame_plugin *flame_plugin_entry(void) { return &mamba2_plugin; }
