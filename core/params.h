/* The model's parameters as the core owns them: one flat fp32 buffer each for
 * the values (the master copy), gradients and the two AdamW moments, cut into
 * the tensors the plugin declared (the weight-decayed ones first, each kind in
 * reverse order of declaration: params.c says why; a run of tensors the
 * plugin joins (param_joined) in declaration order, back to back, as one
 * unit of that order), so the optimizer, the
 * gradient norm and checkpoints treat every architecture alike. The plugin
 * computes with `compute`, the values in the op table's activation type: the
 * values themselves when that is fp32, else a copy the optimizer refreshes. */
#ifndef FLAME_PARAMS_H
#define FLAME_PARAMS_H

#include <stddef.h>

#include <flame/plugin.h>

#include "rng.h"

typedef struct param_store {
    const flame_ops *ops;
    const flame_plugin *plugin; /* whose declarations these are (init_values) */
    const void *model;
    int n;                     /* number of tensors */
    flame_param_spec *specs;   /* [n] */
    size_t *offset, *numel;    /* [n], in floats */
    int *joined;               /* [n]: 1 where tensor i is stored right after tensor i − 1 */
    size_t count;              /* parameters of the model */
    size_t total;              /* floats of the tensors: count and alignment gaps */
    size_t decayed_end;        /* tensors declared with weight decay lie before this offset */
    /* The optimizer's shard of this rank (ZeRO-1, params_shard.h): floats
     * [shard_lo, shard_lo + shard) of the flat buffers, whose AdamW moments
     * alone it keeps. The buffers run to padded = shard × the shards (zeros
     * past total); one rank alone has one shard, the whole. */
    size_t shard, shard_lo, padded;
    float *values, *grads;     /* backend memory, padded floats */
    float *m, *v;              /* backend memory, the shard's floats */
    void *compute;                   /* backend memory, act_bytes per value */
    float **value_ptrs, **grad_ptrs; /* [n] */
    void **compute_ptrs;             /* [n]; with grad_ptrs, handed to the plugin's bind() */
} param_store;

/* Whether the parameters the plugin declares for model can be used (a count
 * from 1, names ended within FLAME_NAME_MAX, 1 to FLAME_MAX_DIMS positive
 * dimensions, no more than 2^40 values, a known init rule; a joined tensor
 * after another, of its weight decay and its shape past the first dimension).
 * Returns 0, or -1 with err naming the parameter and what is wrong. */
int params_check_declared(const flame_plugin *plugin, const void *model, char *err,
                          size_t err_len);

/* Reads the plugin's declarations and allocates, the moments for shard rank
 * of shards alone (1 of 1: all of them). Returns 0; -2 with err when
 * a declaration is unusable (params_check_declared); -3 with err, before any
 * allocation, when they need more memory than the backend has available (a
 * configuration that cannot fit); -1 with err when out of memory. */
int params_create(param_store *ps, const flame_plugin *plugin, void *model, const flame_ops *ops, int rank,
                  int shards, char *err, size_t err_len);
void params_destroy(param_store *ps);

/* Tensor `index` of the plugin's model (declared as s, n values) by its init
 * rule into host memory, drawing from r, which advances past the draws taken.
 * Returns 0, or -1 with err when the plugin's init_values gave a value that
 * is not finite. */
int params_draw(const flame_plugin *plugin, const void *model, int index,
                const flame_param_spec *s, float *host, size_t n, rng *r, char *err, size_t err_len);

/* Draws every tensor (params_draw) in declaration order, on the host, and
 * uploads it, so every backend starts from the same weights. Returns 0; -1
 * with err (params_draw's); -2 with err when out of host memory. */
int params_init(param_store *ps, rng *r, char *err, size_t err_len);

/* compute = values, after the values were written other than by the optimizer */
void params_sync_compute(param_store *ps);

void params_zero_grads(param_store *ps);

#endif
