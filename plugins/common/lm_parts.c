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

static void *take_bytes(lm_carver *cv, size_t bytes)
{
    void *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (bytes + PIECE_ALIGN - 1) / PIECE_ALIGN * PIECE_ALIGN;
    return p;
}

void *lm_take_acts(lm_carver *cv, size_t count) { return take_bytes(cv, count * cv->act_bytes); }

float *lm_take_floats(lm_carver *cv, size_t count) { return take_bytes(cv, count * sizeof(float)); }

int32_t *lm_take_ints(lm_carver *cv, size_t count) { return take_bytes(cv, count * sizeof(int32_t)); }

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

/* ------------------------------------------------------------------ norms */

void lm_norm_forward(const flame_ops *ops, void *out, float *mean, float *rstd, const void *x,
                     const void *weight, const void *bias, int n, int D, float eps)
{
    if (mean)
        ops->layernorm_forward(out, mean, rstd, x, weight, bias, n, D, eps);
    else
        ops->rmsnorm_forward(out, rstd, x, weight, n, D, eps);
}

/* dx (mode) from dout through the norm of x; the weight's (and bias') gradients added */
static void norm_backward(const flame_ops *ops, void *dx, flame_grad_mode mode, float *dweight, float *dbias,
                          const void *dout, const void *x, const void *weight, const float *mean,
                          const float *rstd, int n, int D)
{
    if (mean)
        ops->layernorm_backward(dx, mode, dweight, dbias, dout, x, weight, mean, rstd, n, D);
    else
        ops->rmsnorm_backward(dx, mode, dweight, dout, x, weight, rstd, n, D);
}

/* ------------------------------------------------------------------ MLP */

/* ------------------------------------------------------------------ MLP */

/* statistics of a norm over n rows: rstd, and a LayerNorm's mean */
static void carve_norm_stats(float **mean, float **rstd, lm_carver *cv, size_t n, int layernorm)
{
    *mean = layernorm ? lm_take_floats(cv, n) : NULL;
    *rstd = lm_take_floats(cv, n);
}

void lm_mlp_carve(lm_mlp_acts *a, lm_carver *cv, size_t n, int I, int layernorm, int gated)
{
    carve_norm_stats(&a->mean, &a->rstd, cv, n, layernorm);
    a->gate = gated ? lm_take_acts(cv, n * I) : NULL;
    a->up = lm_take_acts(cv, n * I);
}

void lm_mlp_scratch_carve(lm_mlp_scratch *s, lm_carver *cv, size_t n, int D, int I)
{
    s->x = lm_take_acts(cv, n * D);
    s->act = lm_take_acts(cv, n * I);
    s->dgate = lm_take_acts(cv, n * I);
    s->dup = lm_take_acts(cv, n * I);
}

void lm_mlp_forward(const flame_ops *ops, lm_mlp_acts *a, const lm_mlp_params *p,
                    lm_mlp_scratch *s, const void *in, void *out, int n, int D, int I, float eps)
{
    lm_norm_forward(ops, s->x, a->mean, a->rstd, in, p->norm, p->norm_bias, n, D, eps);
    if (p->gate) {
        ops->matmul_forward(a->gate, s->x, p->gate, NULL, NULL, n, D, I);
        ops->matmul_forward(a->up, s->x, p->up, NULL, NULL, n, D, I);
        ops->swiglu_forward(s->act, a->gate, a->up, (size_t)n * I);
    } else {
        ops->matmul_gelu_forward(s->act, a->up, s->x, p->up, p->up_bias, n, D, I);
    }
    ops->matmul_forward(out, s->act, p->down, p->down_bias, in, n, I, D);
}

/* into s->dup: ∂loss/∂(up's output) of GPT's MLP, down's gradients added */
static void gelu_mlp_core_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                                   lm_mlp_scratch *s, const void *d_resid, int n, int D, int I)
{
    ops->gelu_forward(s->act, a->up, (size_t)n * I); /* the activation, made again */
    ops->matmul_backward(NULL, FLAME_GRAD_SET, p->ddown, p->ddown_bias, d_resid, s->act, p->down, n, I, D);
    ops->matmul_dgelu_backward(s->dup, d_resid, p->down, a->up, n, I, D);
}

void lm_mlp_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                     lm_mlp_scratch *s, void *d_x, void *d_resid, const void *in, int n,
                     int D, int I, float eps)
{
    if (p->gate) {
        /* the activation's gradient; then the SwiGLU backward, which reads gate
         * and up once for both their gradients and the activation made again */
        ops->matmul_backward(s->act, FLAME_GRAD_SET, NULL, NULL, d_resid, NULL, p->down, n, I, D);
        ops->swiglu_backward(s->dgate, s->dup, s->act, s->act, a->gate, a->up, (size_t)n * I);
        ops->matmul_backward(NULL, FLAME_GRAD_SET, p->ddown, NULL, d_resid, s->act, p->down, n, I, D);
    } else {
        gelu_mlp_core_backward(ops, a, p, s, d_resid, n, D, I);
    }
    /* the forward's x, made again (the statistics come out the same) */
    lm_norm_forward(ops, s->x, a->mean, a->rstd, in, p->norm, p->norm_bias, n, D, eps);
    const lm_prenorm norm = {in, s->x, p->norm, p->dnorm, a->rstd, p->norm_bias, p->dnorm_bias, a->mean};
    const lm_projection gated[] = {{p->gate, p->dgate, s->dgate, I, NULL}, {p->up, p->dup, s->dup, I, NULL}};
    const lm_projection plain[] = {{p->up, p->dup, s->dup, I, p->dup_bias}};
    if (p->gate)
        lm_prenorm_backward(ops, &norm, gated, LM_COUNT(gated), d_x, d_resid, n, D);
    else
        lm_prenorm_backward(ops, &norm, plain, LM_COUNT(plain), d_x, d_resid, n, D);
}

void lm_prenorm_backward(const flame_ops *ops, const lm_prenorm *norm, const lm_projection *p,
                         int count, void *d_x, void *d_resid, int n, int D)
{
    for (int i = 0; i < count; i++)
        ops->matmul_backward(d_x, i ? FLAME_GRAD_ADD : FLAME_GRAD_SET, p[i].dweight, p[i].dbias, p[i].dout,
                             norm->a, p[i].weight, n, D, p[i].N);
    norm_backward(ops, d_resid, FLAME_GRAD_ADD, norm->dweight, norm->dbias, d_x, norm->x, norm->weight,
                  norm->mean, norm->rstd, n, D);
}

/* ------------------------------------------------------------------ head */

/* the bytes of logits a chunk may hold. A batch whose logits fit in one chunk
 * has them made once: its backward takes the gradient the forward made of
 * them. 4 GiB holds 8×2048 tokens over a 128 K vocabulary in bf16, or GPT-2's
 * 32×1024 over its 50 K (at 1 GiB, in four chunks made twice, GPT-2 small's
 * step took 71.7 ms on an H200, 66.9 at 4 GiB); larger batches and
 * vocabularies go in chunks, each made twice. */
size_t lm_head_chunk_bytes = (size_t)4 << 30;

void lm_head_carve(lm_head *hd, lm_carver *cv, size_t n, int D, int V, int layernorm)
{
    size_t rows = lm_head_chunk_bytes / ((size_t)V * cv->act_bytes);
    hd->rows = (int)(rows < 1 ? 1 : rows < n ? rows : n);
    carve_norm_stats(&hd->mean, &hd->rstd, cv, n, layernorm);
    hd->x = lm_take_acts(cv, n * D);
    hd->logits = lm_take_acts(cv, (size_t)hd->rows * V);
}

/* the logits of rows [r0, r0 + rows) into hd->logits */
static void chunk_logits(const flame_ops *ops, const lm_head *hd, const lm_head_params *p, int r0,
                         int rows, int D, int V)
{
    ops->matmul_forward(hd->logits, lm_act_at(ops, hd->x, (size_t)r0 * D), p->head, NULL, NULL, rows,
                        D, V);
}

static int chunk_rows(const lm_head *hd, int r0, int n) { return n - r0 < hd->rows ? n - r0 : hd->rows; }

/* ∂(mean loss)/∂(loss of a counted row) */
static float loss_scale(const lm_batch *lb) { return lb->counted ? 1.0f / (float)lb->counted : 0.0f; }

float lm_head_forward(const flame_ops *ops, lm_head *hd, const lm_head_params *p, const void *h,
                      const lm_batch *lb, float *logits_out, int D, int V, float eps)
{
    int n = lb->n;
    lm_norm_forward(ops, hd->x, hd->mean, hd->rstd, h, p->norm, p->norm_bias, n, D, eps);
    /* a batch of one chunk: its logits become their gradient now, for the backward */
    hd->whole = n <= hd->rows;
    double sum = 0;
    for (int r0 = 0; r0 < n; r0 += hd->rows) {
        int rows = chunk_rows(hd, r0, n);
        chunk_logits(ops, hd, p, r0, rows, D, V);
        if (logits_out)
            ops->from_act(logits_out + (size_t)r0 * V, hd->logits, (size_t)rows * V);
        sum += ops->cross_entropy(NULL, hd->whole ? hd->logits : NULL, hd->logits, lb->targets + r0,
                                  rows, V, loss_scale(lb));
    }
    return lb->counted ? (float)(sum / lb->counted) : 0.0f;
}

void lm_head_backward(const flame_ops *ops, const lm_head *hd, const lm_head_params *p,
                      const void *h, const lm_batch *lb, void *d_x, void *d_resid, int D, int V)
{
    int n = lb->n;
    for (int r0 = 0; r0 < n; r0 += hd->rows) {
        int rows = chunk_rows(hd, r0, n);
        if (!hd->whole) { /* the chunk's logits again, into their gradient */
            chunk_logits(ops, hd, p, r0, rows, D, V);
            ops->cross_entropy(NULL, hd->logits, hd->logits, lb->targets + r0, rows, V, loss_scale(lb));
        }
        ops->matmul_backward(lm_act_at(ops, d_x, (size_t)r0 * D), FLAME_GRAD_SET, p->dhead, NULL,
                             hd->logits, lm_act_at(ops, hd->x, (size_t)r0 * D), p->head, rows, D, V);
    }
    norm_backward(ops, d_resid, FLAME_GRAD_SET, p->dnorm, p->dnorm_bias, d_x, h, p->norm, hd->mean, hd->rstd, n, D);
}
