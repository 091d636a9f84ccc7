#include "lm_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_param(lm_model *b, const char *name, int64_t rows, int64_t cols, flame_init_rule init,
                      int decay)
{
    flame_param_spec *s = &b->specs[b->n_params++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = cols ? 2 : 1;
    s->shape[0] = rows;
    s->shape[1] = cols;
    s->init = init;
    s->init_std = init == FLAME_INIT_NORMAL ? b->init_std : 0.0f;
    s->weight_decay = decay;
}

int lm_model_init(lm_model *b, const flame_ops *ops, int L, int per_layer, int tie, int D, int V,
                  float init_std)
{
    *b = (lm_model){.ops = ops, .L = L, .per_layer = per_layer, .tie = tie, .D = D, .V = V,
                    .init_std = init_std};
    size_t n = 2 + (size_t)L * per_layer + (tie ? 0 : 1);
    b->specs = calloc(n, sizeof *b->specs);
    b->w = calloc(n, sizeof *b->w);
    b->dw = calloc(n, sizeof *b->dw);
    b->resid = calloc((size_t)L + 1, sizeof *b->resid);
    if (!b->specs || !b->w || !b->dw || !b->resid)
        return -1;
    add_param(b, "model.embeddings.weight", V, D, FLAME_INIT_NORMAL, 0);
    return 0;
}

void lm_model_add_layer_param(lm_model *b, int l, const char *suffix, int64_t rows, int64_t cols,
                              flame_init_rule init)
{
    char name[FLAME_NAME_MAX];
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);
    add_param(b, name, rows, cols, cols ? FLAME_INIT_NORMAL : init, cols != 0);
}

void lm_model_finish_params(lm_model *b)
{
    add_param(b, "model.norm.weight", b->D, 0, FLAME_INIT_ONES, 0);
    if (!b->tie)
        add_param(b, "lm_head.weight", b->V, b->D, FLAME_INIT_NORMAL, 1);
}

static void release_arena(lm_model *b)
{
    if (b->arena)
        b->ops->free(b->arena);
    lm_batch_release(&b->batch, b->ops);
    b->arena = NULL;
}

void lm_model_free(lm_model *b)
{
    if (b->ops)
        release_arena(b);
    free(b->specs);
    free(b->w);
    free(b->dw);
    free(b->resid);
    memset(b, 0, sizeof *b);
}

static int layer_index(const lm_model *b, int l, int p) { return 1 + l * b->per_layer + p; }
static int final_norm_index(const lm_model *b) { return 1 + b->L * b->per_layer; }
/* with tied embeddings, lm_head is the embedding (index 0) */
static int lm_head_index(const lm_model *b) { return b->tie ? 0 : final_norm_index(b) + 1; }

const void *lm_model_w(const lm_model *b, int l, int p) { return b->w[layer_index(b, l, p)]; }
float *lm_model_dw(const lm_model *b, int l, int p) { return b->dw[layer_index(b, l, p)]; }

lm_mlp_params lm_model_mlp_params(const lm_model *b, int l)
{
    int p = b->per_layer - 4; /* norm, gate, up, down end every layer */
    lm_mlp_params m = {lm_model_w(b, l, p), lm_model_w(b, l, p + 1), lm_model_w(b, l, p + 2),
                       lm_model_w(b, l, p + 3), lm_model_dw(b, l, p), lm_model_dw(b, l, p + 1),
                       lm_model_dw(b, l, p + 2), lm_model_dw(b, l, p + 3)};
    return m;
}

lm_head_params lm_model_head_params(const lm_model *b)
{
    int norm = final_norm_index(b), head = lm_head_index(b);
    lm_head_params p = {b->w[norm], b->w[head], b->dw[norm], b->dw[head]};
    return p;
}

void lm_model_carve(lm_model *b, lm_carver *cv, size_t n)
{
    for (int l = 0; l <= b->L; l++)
        b->resid[l] = lm_take_acts(cv, n * b->D);
    lm_head_carve(&b->head, cv, n, b->D, b->V);
}

int lm_model_reserve(lm_model *b, size_t n, void (*carve)(void *model, lm_carver *cv, size_t n),
                     void *model, char *err, size_t err_len)
{
    release_arena(b);
    lm_carver cv = {NULL, 0, b->ops->act_bytes};
    carve(model, &cv, n);
    b->arena = b->ops->alloc(cv.used);
    if (!b->arena || lm_batch_reserve(&b->batch, b->ops, (int)n)) {
        release_arena(b);
        snprintf(err, err_len, "out of memory for the activations of %zu tokens (%.1f GiB)", n,
                 cv.used / 1073741824.0);
        return -1;
    }
    cv = (lm_carver){b->arena, 0, b->ops->act_bytes};
    carve(model, &cv, n);
    return 0;
}

int lm_model_n_params(const void *model) { return ((const lm_model *)model)->n_params; }

const flame_param_spec *lm_model_param(const void *model, int index)
{
    const lm_model *b = model;
    return index >= 0 && index < b->n_params ? &b->specs[index] : NULL;
}

void lm_model_bind(void *model, const void *const *params, float *const *grads)
{
    lm_model *b = model;
    for (int i = 0; i < b->n_params; i++)
        b->w[i] = params[i], b->dw[i] = grads[i];
}

int64_t lm_model_vocab_size(const void *model) { return ((const lm_model *)model)->V; }
