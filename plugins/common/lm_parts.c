#include "lm_parts.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ options */

static const char *option_default(const lm_options *o, const char *key)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->table[i].key, key) == 0)
            return o->table[i].default_value;
    return NULL;
}

int lm_opt_given(const lm_options *o, const char *key)
{
    return o->cfg->is_set(o->cfg->ctx, key) || option_default(o, key) != NULL;
}

int64_t lm_opt_int(const lm_options *o, const char *key)
{
    return o->cfg->is_set(o->cfg->ctx, key) ? o->cfg->get_int(o->cfg->ctx, key)
                                            : strtoll(option_default(o, key), NULL, 10);
}

double lm_opt_float(const lm_options *o, const char *key)
{
    return o->cfg->is_set(o->cfg->ctx, key) ? o->cfg->get_float(o->cfg->ctx, key)
                                            : strtod(option_default(o, key), NULL);
}

int lm_opt_bool(const lm_options *o, const char *key)
{
    return o->cfg->is_set(o->cfg->ctx, key) ? o->cfg->get_bool(o->cfg->ctx, key)
                                            : strcmp(option_default(o, key), "true") == 0;
}

const char *lm_opt_string(const lm_options *o, const char *key)
{
    return o->cfg->is_set(o->cfg->ctx, key) ? o->cfg->get_string(o->cfg->ctx, key)
                                            : option_default(o, key);
}

int lm_read_size(const lm_options *o, const char *key, int *out, char *err, size_t err_len)
{
    int64_t v = lm_opt_int(o, key);
    if (v < 1 || v > INT32_MAX) {
        snprintf(err, err_len, "%s = %lld: expected a positive whole number below 2^31", key,
                 (long long)v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* int(hidden_size · expand), as Python computes it; -1 when out of range */
static int64_t expanded(int D, double expand)
{
    double x = (double)D * expand;
    return x >= 0 && x <= INT_MAX ? (int64_t)x : -1;
}

int lm_read_head_widths(const lm_options *o, int D, int H, int *key_dim, int *value_dim,
                        char *err, size_t err_len)
{
    const char *names[2] = {"expand_k", "expand_v"};
    int *out[2] = {key_dim, value_dim};
    for (int i = 0; i < 2; i++) {
        int64_t dim = expanded(D, lm_opt_float(o, names[i]));
        if (dim < H) {
            snprintf(err, err_len, "%s = %g gives int(hidden_size·%s) = %lld; need at least num_heads = %d",
                     names[i], lm_opt_float(o, names[i]), names[i], (long long)dim, H);
            return -1;
        }
        if (dim % H) {
            snprintf(err, err_len, "%s: %s dim int(hidden_size·%s) = %lld is not divisible by num_heads = %d",
                     names[i], i ? "value" : "key", names[i], (long long)dim, H);
            return -1;
        }
        *out[i] = (int)dim;
    }
    return 0;
}

int lm_check_kv_heads_equal(const lm_options *o, char *err, size_t err_len)
{
    if (lm_opt_given(o, "num_kv_heads") && lm_opt_int(o, "num_kv_heads") != lm_opt_int(o, "num_heads")) {
        snprintf(err, err_len, "num_kv_heads = %lld is not supported yet (only num_kv_heads = num_heads)",
                 (long long)lm_opt_int(o, "num_kv_heads"));
        return -1;
    }
    return 0;
}

int lm_check_supported(const lm_options *o, const lm_bool_setting *bools, int n_bools,
                       const char *const *unset_only, int n_unset, char *err, size_t err_len)
{
    for (int i = 0; i < n_bools; i++)
        if (lm_opt_bool(o, bools[i].key) != bools[i].supported) {
            snprintf(err, err_len, "%s = %s is not supported yet", bools[i].key,
                     bools[i].supported ? "false" : "true");
            return -1;
        }
    for (int i = 0; i < n_unset; i++)
        if (lm_opt_given(o, unset_only[i])) {
            snprintf(err, err_len, "%s is not supported yet (leave it unset)", unset_only[i]);
            return -1;
        }
    return 0;
}

/* ------------------------------------------------------------------ arena */

#define PIECE_ALIGN 256

static size_t aligned(size_t bytes) { return (bytes + PIECE_ALIGN - 1) / PIECE_ALIGN * PIECE_ALIGN; }

static void *take_bytes(lm_carver *cv, size_t bytes)
{
    void *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += aligned(bytes);
    return p;
}

void *lm_take_acts(lm_carver *cv, size_t count) { return take_bytes(cv, count * cv->act_bytes); }

float *lm_take_floats(lm_carver *cv, size_t count) { return take_bytes(cv, count * sizeof(float)); }

int32_t *lm_take_ints(lm_carver *cv, size_t count) { return take_bytes(cv, count * sizeof(int32_t)); }

static void *take_scratch_bytes(lm_carver *cv, size_t bytes)
{
    void *p = cv->base ? cv->base + cv->scratch_at + cv->scratch_used : NULL;
    cv->scratch_used += aligned(bytes);
    return p;
}

void *lm_take_scratch_acts(lm_carver *cv, size_t count) { return take_scratch_bytes(cv, count * cv->act_bytes); }

float *lm_take_scratch_floats(lm_carver *cv, size_t count) { return take_scratch_bytes(cv, count * sizeof(float)); }

void *lm_take_logits(lm_carver *cv, size_t count)
{
    cv->logits_bytes = aligned(count * cv->act_bytes);
    return cv->base ? cv->base + cv->scratch_at : NULL;
}

size_t lm_carver_bytes(const lm_carver *cv)
{
    return cv->used + (cv->scratch_used > cv->logits_bytes ? cv->scratch_used : cv->logits_bytes);
}

void *lm_act_at(const flame_ops *ops, const void *base, size_t index)
{
    return (char *)base + index * ops->act_bytes;
}


/* ------------------------------------------------------------------ batch */

/* the offsets the kernels index by: 0 < ... < n, at most one sequence per token */
static int offsets_fit(const flame_batch *b, int n)
{
    if (!b->cu_seqlens || !b->cu_seqlens_backend || b->n_seqs < 1 || b->n_seqs > n ||
        b->cu_seqlens[0] != 0 || b->cu_seqlens[b->n_seqs] != n)
        return 0;
    for (int s = 0; s < b->n_seqs; s++)
        if (b->cu_seqlens[s] >= b->cu_seqlens[s + 1])
            return 0;
    return 1;
}

int lm_batch_load(lm_batch *lb, const flame_batch *b, const char *who)
{
    lb->n = 0;
    if (b->B < 1 || b->T < 1 || (int64_t)b->B * b->T > lb->cap) {
        fprintf(stderr, "%s: a batch of %d×%d tokens, but %d were reserved\n", who, b->B, b->T,
                lb->cap);
        return -1;
    }
    int n = b->B * b->T;
    if (!offsets_fit(b, n)) {
        fprintf(stderr, "%s: cu_seqlens must rise strictly from 0 to B·T = %d\n", who, n);
        return -1;
    }
    lb->tokens = b->tokens;
    lb->targets = b->targets;
    lb->cu = b->cu_seqlens;
    lb->cu_backend = b->cu_seqlens_backend;
    lb->n_seqs = b->n_seqs;
    lb->counted = b->counted;
    lb->n = n;
    return 0;
}
