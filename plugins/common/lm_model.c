#include "lm_model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_tensor(lm_model *b, const char *name, int ndim, const int64_t *shape,
                       flame_init_rule init, int decay)
{
    flame_param_spec *s = &b->specs[b->n_params++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        s->shape[d] = shape[d];
    s->init = init;
    s->init_std = init == FLAME_INIT_NORMAL ? b->s.init_std : 0.0f;
    s->weight_decay = decay;
}

/* a matrix [rows, cols], or (cols 0) a vector */
static void add_param(lm_model *b, const char *name, int64_t rows, int64_t cols, flame_init_rule init,
                      int decay)
{
    int64_t shape[2] = {rows, cols};
    add_tensor(b, name, cols ? 2 : 1, shape, init, decay);
}

/* fla's MLP width when intermediate_size is unset */
static int64_t default_intermediate(int D, int64_t ratio)
{
    int64_t i = (int64_t)((double)(D * ratio * 2) / 3.0);
    return 256 * ((i + 255) / 256);
}

/* the MLP's width: intermediate_size, or fla's default from hidden_ratio */
static int read_mlp_width(const lm_options *o, lm_shape *s, char *err, size_t err_len)
{
    if (lm_opt_given(o, "intermediate_size")) {
        if (lm_read_size(o, "intermediate_size", &s->I, err, err_len))
            return -1;
    } else {
        int64_t ratio = lm_opt_int(o, "hidden_ratio");
        int64_t I = ratio >= 1 && ratio <= INT_MAX / s->D ? default_intermediate(s->D, ratio) : -1;
        if (I < 1 || I > INT_MAX) {
            snprintf(err, err_len, "hidden_ratio = %lld: expected a positive whole number giving an "
                     "MLP width below 2^31", (long long)ratio);
            return -1;
        }
        s->I = (int)I;
    }
    return 0;
}

int lm_read_shape(const lm_options *o, lm_shape *s, char *err, size_t err_len)
{
    return lm_read_base_shape(o, s, err, err_len) || read_mlp_width(o, s, err, err_len) ? -1 : 0;
}

int lm_read_base_shape(const lm_options *o, lm_shape *s, char *err, size_t err_len)
{
    s->I = 0;
    if (lm_read_size(o, "hidden_size", &s->D, err, err_len) ||
        lm_read_size(o, "num_hidden_layers", &s->L, err, err_len) ||
        lm_read_size(o, "vocab_size", &s->V, err, err_len))
        return -1;
    double eps = lm_opt_float(o, "norm_eps"), std = lm_opt_float(o, "initializer_range");
    if (!(eps >= 0)) {
        snprintf(err, err_len, "norm_eps = %g: expected a number ≥ 0", eps);
        return -1;
    }
    if (!(std >= 0)) {
        snprintf(err, err_len, "initializer_range = %g: expected a number ≥ 0", std);
        return -1;
    }
    const char *act = lm_opt_string(o, "hidden_act");
    if (strcmp(act, "swish") != 0 && strcmp(act, "silu") != 0) { /* one function, two names */
        snprintf(err, err_len, "hidden_act = %s is not supported yet (only swish, or silu)", act);
        return -1;
    }
    s->eps = (float)eps, s->init_std = (float)std;
    s->tie = lm_opt_bool(o, "tie_word_embeddings");
    return 0;
}

/* the first part of every name but lm_head's */
static const char *root(const lm_model *b) { return b->s.root ? b->s.root : "model"; }

/* the lists, then every parameter declared; 0, or -1 (out of memory) */
static int declare_params(lm_model *b, const flame_ops *ops, const lm_shape *shape,
                          lm_layer_params_fn layer_params, void *model, size_t layer_bytes)
{
    *b = (lm_model){.ops = ops, .s = *shape};
    int L = shape->L;
    /* the embedding, a position table, the layers, the final norm and its bias, lm_head */
    size_t n = 5 + (size_t)L * shape->per_layer; /* at most */
    b->layer_first = calloc((size_t)L + 1, sizeof *b->layer_first);
    b->specs = calloc(n, sizeof *b->specs);
    b->joined = calloc(n, sizeof *b->joined);
    b->w = calloc(n, sizeof *b->w);
    b->dw = calloc(n, sizeof *b->dw);
    b->resid = calloc((size_t)L + 1, sizeof *b->resid);
    b->mid = calloc((size_t)L, sizeof *b->mid);
    b->mlp = calloc((size_t)L, sizeof *b->mlp);
    b->layers = calloc((size_t)L, layer_bytes);
    if (!b->layer_first || !b->specs || !b->joined || !b->w || !b->dw || !b->resid || !b->mid || !b->mlp || !b->layers)
        return -1;
    char name[FLAME_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s.weight", root(b), shape->embeddings ? shape->embeddings : "embeddings");
    add_param(b, name, shape->V, shape->D, FLAME_INIT_NORMAL, 0);
    if (shape->positions) {
        snprintf(name, sizeof name, "%s.%s.weight", root(b), shape->position_embeddings);
        add_param(b, name, shape->positions, shape->D, FLAME_INIT_NORMAL, 0);
    }
    for (int l = 0; l < L; l++) {
        b->layer_first[l] = b->n_params;
        layer_params(model, l);
    }
    b->layer_first[L] = b->n_params;
    snprintf(name, sizeof name, "%s.%s.weight", root(b), shape->final_norm ? shape->final_norm : "norm");
    add_param(b, name, shape->D, 0, FLAME_INIT_ONES, 0);
    if (shape->layernorm) {
        snprintf(name, sizeof name, "%s.%s.bias", root(b), shape->final_norm ? shape->final_norm : "norm");
        add_param(b, name, shape->D, 0, FLAME_INIT_ZEROS, 0);
    }
    if (!shape->tie)
        add_param(b, "lm_head.weight", shape->V, shape->D, FLAME_INIT_NORMAL, 1);
    return 0;
}

void lm_model_add_layer_tensor(lm_model *b, int l, const char *suffix, int ndim,
                               const int64_t *shape, flame_init_rule init, int decay)
{
    char name[FLAME_NAME_MAX];
    snprintf(name, sizeof name, "%s.layers.%d.%s", root(b), l, suffix);
    add_tensor(b, name, ndim, shape, init, decay);
}

void lm_model_add_layer_param(lm_model *b, int l, const char *suffix, int64_t rows, int64_t cols,
                              flame_init_rule init)
{
    int64_t shape[2] = {rows, cols};
    lm_model_add_layer_tensor(b, l, suffix, cols ? 2 : 1, shape, cols ? FLAME_INIT_NORMAL : init,
                              cols != 0);
}

void lm_model_add_layer_scaled(lm_model *b, int l, const char *suffix, int64_t rows, int64_t cols,
                               float std)
{
    lm_model_add_layer_param(b, l, suffix, rows, cols, FLAME_INIT_NORMAL);
    b->specs[b->n_params - 1].init_std = std;
}

void lm_model_join_last(lm_model *b) { b->joined[b->n_params - 1] = 1; }

void lm_model_add_gate_up_mlp(lm_model *b, int l, int64_t D, int64_t I)
{
    lm_model_add_layer_param(b, l, "mlp_norm.weight", D, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(b, l, "mlp.gate_proj.weight", I, D, FLAME_INIT_NORMAL);
    lm_model_add_layer_param(b, l, "mlp.up_proj.weight", I, D, FLAME_INIT_NORMAL);
    lm_model_join_last(b);
    lm_model_add_layer_param(b, l, "mlp.down_proj.weight", D, I, FLAME_INIT_NORMAL);
}

static void release_arena(lm_model *b)
{
    if (b->arena)
        b->ops->free(b->arena);
    b->arena = NULL;
    free(b->positions_host);
    b->positions_host = NULL;
    b->batch = (lm_batch){0};
}

void lm_model_destroy(void *model)
{
    lm_model *b = model;
    if (!b)
        return;
    if (b->ops)
        release_arena(b);
    free(b->layer_first);
    free(b->specs);
    free(b->joined);
    free(b->w);
    free(b->dw);
    free(b->resid);
    free(b->mid);
    free(b->mlp);
    free(b->layers);
    if (b->decode_io)
        b->ops->free(b->decode_io);
    free(b->decode_host);
    free(b);
}

void *lm_model_create(void *model, const flame_ops *ops, const lm_shape *shape,
                      lm_layer_params_fn layer_params, size_t layer_bytes, char *err,
                      size_t err_len)
{
    if (model && !(FLAME_OPS_HAS(ops, lm_head_loss) && FLAME_OPS_HAS(ops, scale_rows))) {
        lm_model_destroy(model);
        snprintf(err, err_len, "the %s op table lacks the LM head's loss (a core older than ABI 5.14)",
                 ops->backend);
        return NULL;
    }
    if (!model || declare_params(model, ops, shape, layer_params, model, layer_bytes)) {
        lm_model_destroy(model);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    return model;
}

static int layer_index(const lm_model *b, int l, int p) { return b->layer_first[l] + p; }
static int final_norm_index(const lm_model *b) { return b->layer_first[b->s.L]; }
/* with tied embeddings, lm_head is the embedding (index 0); else it follows
 * the final norm's weight (and bias) */
static int lm_head_index(const lm_model *b)
{
    return b->s.tie ? 0 : final_norm_index(b) + (b->s.layernorm ? 2 : 1);
}
/* the position table follows the embedding */
enum { POSITIONS_INDEX = 1 };

const void *lm_model_w(const lm_model *b, int l, int p) { return b->w[layer_index(b, l, p)]; }
float *lm_model_dw(const lm_model *b, int l, int p) { return b->dw[layer_index(b, l, p)]; }

/* fla's: norm, gate, up (joined to gate), down end every layer */
static lm_mlp_params gate_up_params(const lm_model *b, int l)
{
    int p = b->layer_first[l + 1] - 4;
    lm_mlp_params m = {.norm = b->w[p], .gate_up = b->w[p + 1], .down = b->w[p + 3],
                       .dnorm = b->dw[p], .dgate_up = b->dw[p + 1], .ddown = b->dw[p + 3]};
    return m;
}

/* HazyResearch's: fc1 (up rows, then gate rows), fc2, norm end every layer */
static lm_mlp_params fc1_params(const lm_model *b, int l)
{
    int p = b->layer_first[l + 1] - 3;
    lm_mlp_params m = {.norm = b->w[p + 2], .gate_up = b->w[p], .gate_second = 1, .down = b->w[p + 1],
                       .dnorm = b->dw[p + 2], .dgate_up = b->dw[p], .ddown = b->dw[p + 1]};
    return m;
}

/* flash-attn's GPT: fc1, its bias, fc2, its bias, norm, its bias end every layer */
static lm_mlp_params gelu_params(const lm_model *b, int l)
{
    int p = b->layer_first[l + 1] - 6;
    lm_mlp_params m = {.norm = b->w[p + 4], .up = b->w[p], .down = b->w[p + 2],
                       .dnorm = b->dw[p + 4], .dup = b->dw[p], .ddown = b->dw[p + 2],
                       .norm_bias = b->w[p + 5], .up_bias = b->w[p + 1], .down_bias = b->w[p + 3],
                       .dnorm_bias = b->dw[p + 5], .dup_bias = b->dw[p + 1], .ddown_bias = b->dw[p + 3]};
    return m;
}

lm_mlp_params lm_model_mlp_params(const lm_model *b, int l)
{
    switch (b->s.mlp_layout) {
    case LM_MLP_FC1: return fc1_params(b, l);
    case LM_MLP_GELU: return gelu_params(b, l);
    default: return gate_up_params(b, l);
    }
}

lm_head_params lm_model_head_params(const lm_model *b)
{
    int norm = final_norm_index(b), head = lm_head_index(b);
    lm_head_params p = {b->w[norm], b->w[head], b->dw[norm], b->dw[head], NULL, NULL};
    if (b->s.layernorm)
        p.norm_bias = b->w[norm + 1], p.dnorm_bias = b->dw[norm + 1];
    return p;
}

/* a [n,D] piece of the residual stream: fp32, or activations */
static void *take_stream(const lm_model *b, lm_carver *cv, size_t n)
{
    size_t count = n * b->s.D;
    return b->s.resid_f32 ? (void *)lm_take_floats(cv, count) : lm_take_acts(cv, count);
}

void lm_model_carve(lm_model *b, lm_carver *cv, size_t n)
{
    const lm_shape *s = &b->s;
    for (int l = 0; l <= s->L; l++)
        b->resid[l] = take_stream(b, cv, n);
    for (int l = 0; l < s->L; l++) {
        if (!s->I) { /* no MLP: the mixer's output is the next layer's input */
            b->mid[l] = b->resid[l + 1];
            continue;
        }
        b->mid[l] = take_stream(b, cv, n);
        lm_mlp_carve(&b->mlp[l], cv, n, s->D, s->I, s->layernorm, s->mlp_layout != LM_MLP_GELU, s->mlp_kept);
    }
    if (s->I)
        lm_mlp_scratch_carve(&b->mlp_scratch, cv, n, s->D, s->I, s->mlp_layout != LM_MLP_GELU, s->mlp_kept);
    b->d_resid = take_stream(b, cv, n);
    b->d_resid_act = s->resid_f32 ? lm_take_acts(cv, n * s->D) : NULL;
    b->d_x = lm_take_acts(cv, n * s->D);
    lm_head_carve(&b->head, cv, n, s->D, s->V, s->layernorm);
    b->positions = s->positions ? lm_take_ints(cv, n) : NULL;
}

/* room for a decode step of B sequences: B tokens, B targets, B + 1 offsets */
static int decode_room(lm_model *b, int B)
{
    if (b->decode_cap >= B)
        return 0;
    if (b->decode_io)
        b->ops->free(b->decode_io);
    free(b->decode_host);
    size_t bytes = (3 * (size_t)B + 1) * sizeof(int32_t);
    b->decode_io = b->ops->alloc(bytes);
    b->decode_host = malloc(bytes);
    b->decode_cap = b->decode_io && b->decode_host ? B : 0;
    return b->decode_cap ? 0 : -1;
}

int lm_model_decode(lm_model *b, void *state, const int32_t *tokens, int B, int pos,
                    float *logits, const char *who, lm_mixer_fn mixer_forward, void *model)
{
    if (decode_room(b, B)) {
        fprintf(stderr, "%s: out of memory for a decode step of %d sequences\n", who, B);
        return -1;
    }
    int32_t *host = b->decode_host, *cu = host + 2 * B;
    for (int i = 0; i < B; i++) {
        host[i] = tokens[i];
        host[B + i] = -1; /* no loss: only the logits are wanted */
        cu[i] = i;
    }
    cu[B] = B;
    b->ops->upload(b->decode_io, host, (3 * (size_t)B + 1) * sizeof(int32_t));
    flame_batch batch = {b->decode_io, b->decode_io + B, B, 1, 0, cu, b->decode_io + 2 * B, B};
    b->decoding = state;
    b->decode_pos = pos;
    float loss = lm_model_forward(b, &batch, logits, who, mixer_forward, model);
    b->decoding = NULL;
    return isnan(loss) ? -1 : 0;
}

/* each token's position in its sequence (while decoding, the decode step's)
 * into b->positions; -1 after a line on stderr when one is past the table */
static int load_positions(lm_model *b, const char *who)
{
    const lm_batch *lb = &b->batch;
    for (int q = 0; q < lb->n_seqs; q++)
        for (int i = lb->cu[q]; i < lb->cu[q + 1]; i++) {
            int pos = b->decoding ? b->decode_pos : i - lb->cu[q];
            if (pos >= b->s.positions) {
                fprintf(stderr, "%s: position %d is past the %d of the position table "
                        "(n_positions; a shorter training.seq_len fits)\n", who, pos, b->s.positions);
                return -1;
            }
            b->positions_host[i] = pos;
        }
    b->ops->upload(b->positions, b->positions_host, (size_t)lb->n * sizeof(int32_t));
    return 0;
}

/* resid[0]: the tokens' embeddings, plus their positions' rows where the
 * model has a table; an fp32 stream takes them widened from d_x */
static int embed(lm_model *b, const char *who)
{
    int n = b->batch.n, D = b->s.D;
    void *e = b->s.resid_f32 ? b->d_x : b->resid[0], *rows = b->s.resid_f32 ? b->d_resid_act : b->d_x;
    b->ops->embedding_forward(e, b->batch.tokens, b->w[0], n, D);
    if (b->s.positions) {
        if (load_positions(b, who))
            return -1;
        b->ops->embedding_forward(rows, b->positions, b->w[POSITIONS_INDEX], n, D);
        b->ops->add(e, e, rows, (size_t)n * D);
    }
    if (b->s.resid_f32)
        b->ops->from_act(b->resid[0], e, (size_t)n * D);
    return 0;
}

const void *lm_model_d_resid_act(const lm_model *b) { return b->s.resid_f32 ? b->d_resid_act : b->d_resid; }

float lm_model_forward(lm_model *b, const flame_batch *batch, float *logits, const char *who,
                       lm_mixer_fn mixer_forward, void *model)
{
    const lm_shape *s = &b->s;
    if (lm_batch_load(&b->batch, batch, who))
        return NAN;
    int n = b->batch.n;
    if (embed(b, who)) {
        b->batch.n = 0; /* nothing for a backward */
        return NAN;
    }
    for (int l = 0; l < s->L; l++) {
        mixer_forward(model, l);
        if (!s->I)
            continue;
        lm_mlp_params p = lm_model_mlp_params(b, l);
        lm_mlp_forward(b->ops, &b->mlp[l], &p, &b->mlp_scratch, b->mid[l], b->resid[l + 1], n, s->D,
                       s->I, s->eps, s->resid_f32);
    }
    lm_head_params hp = lm_model_head_params(b);
    return lm_head_forward(b->ops, &b->head, &hp, b->resid[s->L], &b->batch, logits, s->D, s->V, s->eps,
                           s->resid_f32);
}

void lm_model_watch_gradients(void *model, void (*ready)(void *ctx, int first), void *ctx)
{
    lm_model *b = model;
    b->grads_ready = ready, b->grads_ctx = ctx;
}

/* Tensors from index first on are complete. The embedding (and a position
 * table) come before every layer's and complete last: tied, it is lm_head
 * too, and its own gradient is the backward's last op. */
static void complete_from(lm_model *b, int first)
{
    if (b->grads_ready)
        b->grads_ready(b->grads_ctx, first);
}

void lm_model_backward(lm_model *b, lm_mixer_fn mixer_backward, void *model)
{
    const lm_shape *s = &b->s;
    int n = b->batch.n;
    if (n == 0)
        return; /* no successful forward to differentiate */
    lm_head_params hp = lm_model_head_params(b);
    lm_head_backward(b->ops, &b->head, &hp, b->resid[s->L], &b->batch, b->d_x, b->d_resid, b->d_resid_act, s->D,
                     s->V);
    complete_from(b, b->layer_first[s->L]);
    for (int l = s->L - 1; l >= 0; l--) {
        if (s->I) {
            lm_mlp_params p = lm_model_mlp_params(b, l);
            lm_mlp_backward(b->ops, &b->mlp[l], &p, &b->mlp_scratch, b->d_x, b->d_resid, b->d_resid_act, b->mid[l],
                            n, s->D, s->I, s->eps);
        }
        mixer_backward(model, l);
        complete_from(b, b->layer_first[l]);
    }
    const void *dout = lm_model_d_resid_act(b);
    b->ops->embedding_backward(b->dw[0], dout, b->batch.tokens, n, s->D);
    if (s->positions)
        b->ops->embedding_backward(b->dw[POSITIONS_INDEX], dout, b->positions, n, s->D);
}

int lm_model_reserve(lm_model *b, size_t n, void (*carve)(void *model, lm_carver *cv, size_t n),
                     void *model, char *err, size_t err_len)
{
    release_arena(b);
    lm_carver cv = {.act_bytes = b->ops->act_bytes};
    carve(model, &cv, n);
    size_t bytes = lm_carver_bytes(&cv);
    if (FLAME_OPS_HAS(b->ops, memory_available) && bytes > b->ops->memory_available()) {
        snprintf(err, err_len, "the activations of %zu tokens need %.1f GiB; the %s has %.1f GiB "
                 "available (a smaller training.batch_size or seq_len fits)", n,
                 bytes / 1073741824.0, b->ops->backend,
                 (double)b->ops->memory_available() / 1073741824.0);
        return -2;
    }
    b->arena = b->ops->alloc(bytes);
    if (!b->arena) {
        release_arena(b);
        snprintf(err, err_len, "out of memory for the activations of %zu tokens (%.1f GiB)", n,
                 bytes / 1073741824.0);
        return -1;
    }
    if (b->s.positions && !(b->positions_host = malloc(n * sizeof(int32_t)))) {
        release_arena(b);
        snprintf(err, err_len, "out of memory for the positions of %zu tokens", n);
        return -1;
    }
    cv = (lm_carver){.base = b->arena, .scratch_at = cv.used, .act_bytes = b->ops->act_bytes};
    carve(model, &cv, n);
    b->layout = cv;
    b->batch.cap = (int)n;
    return 0;
}

int lm_model_n_params(const void *model) { return ((const lm_model *)model)->n_params; }

const flame_param_spec *lm_model_param(const void *model, int index)
{
    const lm_model *b = model;
    return index >= 0 && index < b->n_params ? &b->specs[index] : NULL;
}

int lm_model_param_joined(const void *model, int index)
{
    const lm_model *b = model;
    return index >= 0 && index < b->n_params && b->joined[index];
}

static size_t spec_numel(const flame_param_spec *s)
{
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= (size_t)s->shape[d];
    return n;
}

/* The mixers compute with a joined run as one tensor, so the core must have
 * bound its members back to back. It does when the vtable gives
 * param_joined; a plugin that joins without that entry would read the wrong
 * memory and still be a consistent function of it (finite differences pass),
 * so this stops at the first run bound apart, naming it: a plugin's bug. */
static void check_joined_bound_together(const lm_model *b, const void *const *params, float *const *grads)
{
    for (int i = 1; i < b->n_params; i++) {
        size_t before = spec_numel(&b->specs[i - 1]);
        if (b->joined[i] && ((const char *)params[i] != (const char *)params[i - 1] + before * b->ops->act_bytes ||
                             grads[i] != grads[i - 1] + before)) {
            fprintf(stderr,
                    "lm_model: %s is joined to %s, but they were bound apart (does the plugin's vtable "
                    "give param_joined = lm_model_param_joined?)\n",
                    b->specs[i].name, b->specs[i - 1].name);
            abort();
        }
    }
}

void lm_model_bind(void *model, const void *const *params, float *const *grads)
{
    lm_model *b = model;
    check_joined_bound_together(b, params, grads);
    for (int i = 0; i < b->n_params; i++)
        b->w[i] = params[i], b->dw[i] = grads[i];
}

int64_t lm_model_vocab_size(const void *model) { return ((const lm_model *)model)->s.V; }
