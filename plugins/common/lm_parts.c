#include "lm_parts.h"

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

int64_t lm_default_intermediate(int D, int64_t ratio)
{
    int64_t i = (int64_t)((double)(D * ratio * 2) / 3.0);
    return 256 * ((i + 255) / 256);
}

/* ------------------------------------------------------------------ arena */

float *lm_take(lm_carver *cv, size_t floats)
{
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += floats;
    return p;
}

/* ------------------------------------------------------------------ batch */

int lm_batch_reserve(lm_batch *lb, const flame_ops *ops, int cap)
{
    memset(lb, 0, sizeof *lb);
    lb->tokens = ops->alloc((size_t)cap * sizeof(int32_t));
    lb->host_ints = malloc((size_t)cap * sizeof(int32_t));
    lb->cu = malloc(((size_t)cap + 1) * sizeof(int32_t));
    if (!lb->tokens || !lb->host_ints || !lb->cu) {
        lm_batch_release(lb, ops);
        return -1;
    }
    lb->cap = cap;
    return 0;
}

void lm_batch_release(lm_batch *lb, const flame_ops *ops)
{
    if (lb->tokens)
        ops->free(lb->tokens);
    free(lb->host_ints);
    free(lb->cu);
    memset(lb, 0, sizeof *lb);
}

static int load_offsets(lm_batch *lb, const flame_batch *b, int n, const char *who)
{
    if (!b->cu_seqlens) {
        for (int s = 0; s <= b->B; s++)
            lb->cu[s] = s * b->T;
        lb->n_seqs = b->B;
        return 0;
    }
    int ok = b->n_seqs >= 1 && b->n_seqs <= n && b->cu_seqlens[0] == 0 &&
             b->cu_seqlens[b->n_seqs] == n;
    for (int s = 0; ok && s < b->n_seqs; s++)
        ok = b->cu_seqlens[s] < b->cu_seqlens[s + 1];
    if (!ok) {
        fprintf(stderr, "%s: cu_seqlens must rise strictly from 0 to B·T = %d\n", who, n);
        return -1;
    }
    memcpy(lb->cu, b->cu_seqlens, ((size_t)b->n_seqs + 1) * sizeof *lb->cu);
    lb->n_seqs = b->n_seqs;
    return 0;
}

int lm_batch_load(lm_batch *lb, const flame_ops *ops, const flame_batch *b, int vocab,
                  const char *who)
{
    lb->n = 0;
    if (b->B < 1 || b->T < 1 || (int64_t)b->B * b->T > lb->cap) {
        fprintf(stderr, "%s: a batch of %d×%d tokens, but %d were reserved\n", who, b->B, b->T,
                lb->cap);
        return -1;
    }
    int n = b->B * b->T;
    if (load_offsets(lb, b, n, who))
        return -1;
    ops->download(lb->host_ints, b->tokens, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        if (lb->host_ints[i] < 0 || lb->host_ints[i] >= vocab) {
            fprintf(stderr, "%s: token %d at position %d is outside the vocabulary of %d\n", who,
                    lb->host_ints[i], i, vocab);
            return -1;
        }
    ops->copy(lb->tokens, b->tokens, (size_t)n * sizeof(int32_t));
    ops->download(lb->host_ints, b->targets, (size_t)n * sizeof(int32_t));
    int counted = 0;
    for (int i = 0; i < n; i++)
        counted += lb->host_ints[i] >= 0;
    lb->n = n;
    return counted;
}

/* ------------------------------------------------------------------ MLP */

void lm_mlp_carve(lm_mlp_acts *a, lm_carver *cv, size_t n, int D, int I)
{
    a->rstd = lm_take(cv, n);
    a->x = lm_take(cv, n * D);
    a->gate = lm_take(cv, n * I);
    a->up = lm_take(cv, n * I);
    a->act = lm_take(cv, n * I);
}

void lm_mlp_scratch_carve(lm_mlp_scratch *s, lm_carver *cv, size_t n, int I)
{
    s->act = lm_take(cv, n * I);
    s->gate = lm_take(cv, n * I);
    s->up = lm_take(cv, n * I);
}

void lm_mlp_forward(const flame_ops *ops, lm_mlp_acts *a, const lm_mlp_params *p,
                    const float *in, float *out, int n, int D, int I, float eps)
{
    ops->rmsnorm_forward(a->x, a->rstd, in, p->norm, n, D, eps);
    ops->matmul_forward(a->gate, a->x, p->gate, NULL, n, D, I);
    ops->matmul_forward(a->up, a->x, p->up, NULL, n, D, I);
    ops->swiglu_forward(a->act, a->gate, a->up, (size_t)n * I);
    ops->matmul_forward(out, a->act, p->down, NULL, n, I, D);
    ops->add(out, out, in, (size_t)n * D);
}

void lm_mlp_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                     lm_mlp_scratch *s, float *d_x, float *d_resid, const float *in, int n,
                     int D, int I)
{
    size_t nI = (size_t)n * I;
    ops->zero(s->act, nI * sizeof(float));
    ops->matmul_backward(s->act, p->ddown, NULL, d_resid, a->act, p->down, n, I, D);
    ops->zero(s->gate, nI * sizeof(float));
    ops->zero(s->up, nI * sizeof(float));
    ops->swiglu_backward(s->gate, s->up, s->act, a->gate, a->up, nI);
    ops->zero(d_x, (size_t)n * D * sizeof(float));
    ops->matmul_backward(d_x, p->dgate, NULL, s->gate, a->x, p->gate, n, D, I);
    ops->matmul_backward(d_x, p->dup, NULL, s->up, a->x, p->up, n, D, I);
    /* the residual path already carries d_resid; the norm's path adds to it */
    ops->rmsnorm_backward(d_resid, p->dnorm, d_x, in, p->norm, a->rstd, n, D);
}

/* ------------------------------------------------------------------ head */

void lm_head_carve(lm_head *hd, lm_carver *cv, size_t n, int D, int V)
{
    hd->rstd = lm_take(cv, n);
    hd->x = lm_take(cv, n * D);
    hd->logits = lm_take(cv, n * V);
    hd->dlogits = lm_take(cv, n * V);
    hd->losses = lm_take(cv, n);
}

float lm_head_forward(const flame_ops *ops, lm_head *hd, const lm_head_params *p, const float *h,
                      const int32_t *targets, int counted, float *logits_out, int n, int D,
                      int V, float eps)
{
    ops->rmsnorm_forward(hd->x, hd->rstd, h, p->norm, n, D, eps);
    ops->matmul_forward(hd->logits, hd->x, p->head, NULL, n, D, V);
    if (logits_out)
        ops->copy(logits_out, hd->logits, (size_t)n * V * sizeof(float));
    float scale = counted ? 1.0f / (float)counted : 0.0f;
    double sum = ops->cross_entropy(hd->losses, hd->dlogits, hd->logits, targets, n, V, scale);
    return counted ? (float)(sum / counted) : 0.0f;
}

void lm_head_backward(const flame_ops *ops, const lm_head *hd, const lm_head_params *p,
                      const float *h, float *d_x, float *d_resid, int n, int D, int V)
{
    ops->zero(d_x, (size_t)n * D * sizeof(float));
    ops->matmul_backward(d_x, p->dhead, NULL, hd->dlogits, hd->x, p->head, n, D, V);
    ops->zero(d_resid, (size_t)n * D * sizeof(float));
    ops->rmsnorm_backward(d_resid, p->dnorm, d_x, h, p->norm, hd->rstd, n, D);
}
