/* What every decoder-LM plugin's model holds besides its own layers: the op
 * table, the parameter list in fla's order (the embedding, L layers of
 * per_layer tensors whose last four are the MLP's norm, gate, up and down, the
 * final norm, then lm_head unless tied) with the pointers bind() hands in, the
 * activation arena with the residual stream and the LM head, and the last
 * batch. A plugin's model struct starts with an lm_model, so the vtable
 * entries that need nothing else (n_params, param, bind, vocab_size) are the
 * ones below. */
#ifndef FLAME_LM_MODEL_H
#define FLAME_LM_MODEL_H

#include "lm_parts.h"

typedef struct lm_model {
    const flame_ops *ops;
    int L, per_layer, tie, D, V;
    float init_std;
    int n_params;
    flame_param_spec *specs;
    const void **w; /* [n_params], from bind(): the compute view */
    float **dw;     /* [n_params], from bind() */
    void *arena;    /* activation memory, one ops->alloc, sized by lm_model_reserve() */
    void **resid;   /* [L+1] residual stream: layer inputs, then the last output */
    lm_head head;
    lm_batch batch; /* the last batch taken in */
} lm_model;

/* Allocates the lists and declares the embedding. Returns 0, or -1 (out of memory). */
int lm_model_init(lm_model *b, const flame_ops *ops, int L, int per_layer, int tie, int D, int V,
                  float init_std);
/* Layer l's next parameter "model.layers.<l>.<suffix>": a matrix [rows, cols]
 * drawn normal with weight decay, or (cols 0) a vector by `init` without. */
void lm_model_add_layer_param(lm_model *b, int l, const char *suffix, int64_t rows, int64_t cols,
                              flame_init_rule init);
/* after the layers: the final norm, and lm_head unless tied */
void lm_model_finish_params(lm_model *b);
void lm_model_free(lm_model *b);

/* parameter p of layer l: its compute view and its gradient */
const void *lm_model_w(const lm_model *b, int l, int p);
float *lm_model_dw(const lm_model *b, int l, int p);
lm_mlp_params lm_model_mlp_params(const lm_model *b, int l);
lm_head_params lm_model_head_params(const lm_model *b);

/* Sizes the arena for n tokens: carve(model, cv, n) takes every piece, the
 * residual stream (lm_model_carve) included; it runs once to count, once to
 * hand out. Returns 0, or -1 with a line in err. */
int lm_model_reserve(lm_model *b, size_t n, void (*carve)(void *model, lm_carver *cv, size_t n),
                     void *model, char *err, size_t err_len);
/* the residual stream's and the LM head's pieces */
void lm_model_carve(lm_model *b, lm_carver *cv, size_t n);

/* the vtable entries for a model that starts with an lm_model */
int lm_model_n_params(const void *model);
const flame_param_spec *lm_model_param(const void *model, int index);
void lm_model_bind(void *model, const void *const *params, float *const *grads);
int64_t lm_model_vocab_size(const void *model);

#endif
