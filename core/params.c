#include "params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* values: 512 bytes of fp32, 256 of bf16, what matrix kernels read fastest */
#define TENSOR_ALIGN 128

static size_t spec_numel(const flame_param_spec *s)
{
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= (size_t)s->shape[d];
    return n;
}

/* the most values one tensor and the whole model may hold: far beyond any
 * model, and far from where size_t products overflow */
#define MAX_TENSOR_VALUES ((size_t)1 << 50)
#define MAX_PARAM_TENSORS (1 << 26)

/* what the plugin declared of parameter i: usable, or -1 with err */
static int check_spec(const flame_param_spec *s, int i, int plugin_inits, char *err, size_t err_len)
{
    if (!s || strnlen(s->name, FLAME_NAME_MAX) == FLAME_NAME_MAX || !s->name[0]) {
        snprintf(err, err_len, "plugin parameter %d: %s", i,
                 s ? "its name is empty or not ended within FLAME_NAME_MAX" : "param() gave NULL");
        return -1;
    }
    if (s->ndim < 1 || s->ndim > FLAME_MAX_DIMS) {
        snprintf(err, err_len, "plugin parameter %s: %d dimensions", s->name, s->ndim);
        return -1;
    }
    size_t numel = 1;
    for (int d = 0; d < s->ndim; d++) {
        if (s->shape[d] <= 0 || (size_t)s->shape[d] > MAX_TENSOR_VALUES / numel) {
            snprintf(err, err_len, "plugin parameter %s: dimension %d is %lld%s", s->name, d,
                     (long long)s->shape[d], s->shape[d] > 0 ? " (too many values)" : "");
            return -1;
        }
        numel *= (size_t)s->shape[d];
    }
    if (s->init < FLAME_INIT_NORMAL || s->init > FLAME_INIT_PLUGIN || !(s->init_std >= 0)) {
        snprintf(err, err_len, "plugin parameter %s: init rule %d, std %g", s->name, (int)s->init,
                 s->init_std);
        return -1;
    }
    if (s->init == FLAME_INIT_PLUGIN && !plugin_inits) {
        snprintf(err, err_len, "plugin parameter %s: init rule FLAME_INIT_PLUGIN, but the plugin "
                 "has no init_values", s->name);
        return -1;
    }
    return 0;
}

/* whether the plugin joins tensor i to tensor i − 1 (param_joined, 5.12) */
static int joined_to_previous(const flame_plugin *plugin, const void *model, int i)
{
    return plugin->param_joined && plugin->param_joined(model, i) != 0;
}

/* a tensor joined to the one before it (prev): of its weight decay, the same
 * shape past the first dimension, and not the first; 0, or -1 with err */
static int check_joined(const flame_param_spec *s, const flame_param_spec *prev, char *err, size_t err_len)
{
    if (!prev) {
        snprintf(err, err_len, "plugin parameter %s: joined to the one before it, but it is the first", s->name);
        return -1;
    }
    int same = (s->weight_decay != 0) == (prev->weight_decay != 0) && s->ndim == prev->ndim;
    for (int d = 1; same && d < s->ndim; d++)
        same = s->shape[d] == prev->shape[d];
    if (!same) {
        snprintf(err, err_len, "plugin parameter %s: joined to %s, but its %s differs", s->name, prev->name,
                 (s->weight_decay != 0) != (prev->weight_decay != 0) ? "weight decay" : "shape past the first dimension");
        return -1;
    }
    return 0;
}

int params_check_declared(const flame_plugin *plugin, const void *model, char *err,
                          size_t err_len)
{
    int n = plugin->n_params(model);
    if (n < 1 || n > MAX_PARAM_TENSORS) {
        snprintf(err, err_len, "the plugin declares %d parameter tensors (1 to %d)", n,
                 MAX_PARAM_TENSORS);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const flame_param_spec *s = plugin->param(model, i);
        if (check_spec(s, i, plugin->init_values != NULL, err, err_len))
            return -1;
        if (joined_to_previous(plugin, model, i) &&
            check_joined(s, i ? plugin->param(model, i - 1) : NULL, err, err_len))
            return -1;
        total += spec_numel(s);
        if (total > MAX_TENSOR_VALUES) {
            snprintf(err, err_len, "the plugin declares more than 2^50 parameters");
            return -1;
        }
    }
    return 0;
}

/* the compute view of the value `offset` values into the buffers */
static void *compute_at(const param_store *ps, size_t offset)
{
    return (char *)ps->compute + offset * ps->ops->act_bytes;
}

static float *alloc_floats(const flame_ops *ops, size_t n)
{
    return ops->alloc(n * sizeof(float));
}

/* shards of whole TENSOR_ALIGN blocks, the last one running into the padding */
static void cut_shards(param_store *ps, int rank, int shards)
{
    size_t per = (ps->total + (size_t)shards - 1) / (size_t)shards;
    ps->shard = (per + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    ps->shard_lo = (size_t)rank * ps->shard;
    ps->padded = ps->shard * (size_t)shards;
}

int params_create(param_store *ps, const flame_plugin *plugin, void *model, const flame_ops *ops, int rank,
                  int shards, char *err, size_t err_len)
{
    memset(ps, 0, sizeof *ps);
    ps->ops = ops;
    ps->plugin = plugin;
    ps->model = model;
    if (params_check_declared(plugin, model, err, err_len))
        return -2;
    ps->n = plugin->n_params(model);
    ps->specs = calloc((size_t)ps->n, sizeof *ps->specs);
    ps->offset = calloc((size_t)ps->n, sizeof *ps->offset);
    ps->numel = calloc((size_t)ps->n, sizeof *ps->numel);
    ps->joined = calloc((size_t)ps->n, sizeof *ps->joined);
    ps->value_ptrs = calloc((size_t)ps->n, sizeof *ps->value_ptrs);
    ps->compute_ptrs = calloc((size_t)ps->n, sizeof *ps->compute_ptrs);
    ps->grad_ptrs = calloc((size_t)ps->n, sizeof *ps->grad_ptrs);
    if (!ps->specs || !ps->offset || !ps->numel || !ps->joined || !ps->value_ptrs || !ps->compute_ptrs ||
        !ps->grad_ptrs) {
        snprintf(err, err_len, "out of memory for the list of %d parameter tensors", ps->n);
        return -1;
    }
    for (int i = 0; i < ps->n; i++) {
        ps->specs[i] = *plugin->param(model, i);
        ps->numel[i] = spec_numel(&ps->specs[i]);
        ps->joined[i] = joined_to_previous(plugin, model, i);
        ps->count += ps->numel[i];
    }
    /* the decayed tensors first, so the optimizer needs one launch per kind;
     * in each kind the last declared first, so that the tensors a backward
     * completes (the last layer's first, the embedding last) grow from the
     * start of each kind's part (grad_buckets.h); a joined run is one unit of
     * that order, its tensors back to back in declaration order; each unit
     * starts on a TENSOR_ALIGN boundary (the gap stays zero) */
    for (int decayed = 1; decayed >= 0; decayed--) {
        for (int i = ps->n - 1; i >= 0; i--)
            if ((ps->specs[i].weight_decay != 0) == decayed && !ps->joined[i]) {
                for (int j = i; j == i || (j < ps->n && ps->joined[j]); j++) {
                    ps->offset[j] = ps->total;
                    ps->total += ps->numel[j];
                }
                ps->total = (ps->total + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
            }
        if (decayed)
            ps->decayed_end = ps->total;
    }
    cut_shards(ps, rank, shards);
    int own_compute = ops->act_bytes != sizeof(float);
    /* values, gradients and a compute copy in another type; the shard's two moments */
    double need = (2.0 * sizeof(float) + (own_compute ? (double)ops->act_bytes : 0)) * ps->padded +
                  2.0 * sizeof(float) * ps->shard;
    if (FLAME_OPS_HAS(ops, memory_available) && need > (double)ops->memory_available()) {
        snprintf(err, err_len,
                 "%zu parameters need %.1f GiB for weights and AdamW state; the %s has %.1f GiB "
                 "available", ps->count, need / 1073741824.0, ops->backend,
                 (double)ops->memory_available() / 1073741824.0);
        return -3;
    }
    ps->values = alloc_floats(ops, ps->padded);
    ps->grads = alloc_floats(ops, ps->padded);
    ps->m = alloc_floats(ops, ps->shard);
    ps->v = alloc_floats(ops, ps->shard);
    ps->compute = own_compute ? ops->alloc(ps->padded * ops->act_bytes) : ps->values;
    if (!ps->values || !ps->grads || !ps->m || !ps->v || !ps->compute) {
        snprintf(err, err_len, "out of memory for %zu parameters (%.1f MiB of weights and optimizer state)",
                 ps->count, need / 1048576.0);
        return -1;
    }
    for (int i = 0; i < ps->n; i++) {
        ps->value_ptrs[i] = ps->values + ps->offset[i];
        ps->grad_ptrs[i] = ps->grads + ps->offset[i];
        ps->compute_ptrs[i] = compute_at(ps, ps->offset[i]);
    }
    return 0;
}

void params_destroy(param_store *ps)
{
    if (ps->ops) {
        if (ps->compute != ps->values)
            ps->ops->free(ps->compute);
        ps->ops->free(ps->values);
        ps->ops->free(ps->grads);
        ps->ops->free(ps->m);
        ps->ops->free(ps->v);
    }
    free(ps->specs);
    free(ps->offset);
    free(ps->numel);
    free(ps->joined);
    free(ps->value_ptrs);
    free(ps->compute_ptrs);
    free(ps->grad_ptrs);
    memset(ps, 0, sizeof *ps);
}

/* a rule's values; a normal value j takes draws 2j and 2j+1 after r, so the
 * threads reproduce one sequential stream */
static void draw_by_rule(float *host, const flame_param_spec *s, size_t n, rng r)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= 65536)
#endif
    for (size_t j = 0; j < n; j++) {
        rng at = rng_skip(r, 2 * j);
        host[j] = s->init == FLAME_INIT_NORMAL ? (float)(s->init_std * rng_normal(&at))
                  : s->init == FLAME_INIT_ONES ? 1.0f
                                               : 0.0f;
    }
}

static double next_uniform(void *state) { return rng_uniform(state); }

int params_draw(const flame_plugin *plugin, const void *model, int index,
                const flame_param_spec *s, float *host, size_t n, rng *r, char *err, size_t err_len)
{
    if (s->init != FLAME_INIT_PLUGIN) {
        draw_by_rule(host, s, n, *r);
        if (s->init == FLAME_INIT_NORMAL)
            *r = rng_skip(*r, 2 * n);
        return 0;
    }
    plugin->init_values(model, index, host, n, next_uniform, r);
    for (size_t j = 0; j < n; j++)
        if (!isfinite(host[j])) {
            snprintf(err, err_len, "plugin parameter %s: its init_values gave %g at value %zu",
                     s->name, host[j], j);
            return -1;
        }
    return 0;
}

int params_init(param_store *ps, rng *r, char *err, size_t err_len)
{
    for (int i = 0; i < ps->n; i++) {
        float *host = malloc(ps->numel[i] * sizeof *host);
        if (!host) {
            snprintf(err, err_len, "out of memory drawing %s", ps->specs[i].name);
            return -2;
        }
        int rc = params_draw(ps->plugin, ps->model, i, &ps->specs[i], host, ps->numel[i], r, err,
                             err_len);
        if (rc == 0)
            ps->ops->upload(ps->value_ptrs[i], host, ps->numel[i] * sizeof *host);
        free(host);
        if (rc)
            return rc;
    }
    params_sync_compute(ps);
    return 0;
}

void params_sync_compute(param_store *ps)
{
    ps->ops->to_act(ps->compute, ps->values, ps->padded);
}

void params_zero_grads(param_store *ps)
{
    ps->ops->zero(ps->grads, ps->padded * sizeof(float));
}
