#include "grad_buckets.h"

#include <stdio.h>

/* the two kinds' parts of the flat buffers: [kind_start, kind_end) */
static size_t kind_start(const param_store *ps, int kind) { return kind == 0 ? 0 : ps->decayed_end; }
static size_t kind_end(const param_store *ps, int kind) { return kind == 0 ? ps->decayed_end : ps->total; }
static int kind_of(const param_store *ps, int i) { return ps->specs[i].weight_decay != 0 ? 0 : 1; }

/* ZeRO-1's owners of shard floats each, or 0: every rank, a replica */
static size_t owned(const param_store *ps) { return ps->shard == ps->padded ? 0 : ps->shard; }

void grad_buckets_init(grad_buckets *g, param_store *ps, comm *c, size_t bucket_bytes)
{
    *g = (grad_buckets){.ps = ps, .c = c, .bucket = bucket_bytes / sizeof(float)};
    if (comm_engaged(c) && ps->plugin->watch_gradients)
        ps->plugin->watch_gradients((void *)ps->model, grad_buckets_ready, g);
}

void grad_buckets_arm(grad_buckets *g)
{
    for (int k = 0; k < 2; k++)
        g->sent[k] = g->complete[k] = kind_start(g->ps, k);
    g->armed = 1;
}

static void send(grad_buckets *g)
{
    for (int k = 0; k < 2 && !g->failed; k++) {
        if (comm_reduce_start(g->c, g->ps->grads, g->sent[k], g->complete[k], owned(g->ps), g->err, sizeof g->err))
            g->failed = 1;
        g->sent[k] = g->complete[k];
    }
}

void grad_buckets_ready(void *buckets, int first)
{
    grad_buckets *g = buckets;
    const param_store *ps = g->ps;
    if (!g->armed || g->failed)
        return;
    /* reverse order: tensor i's end bounds the prefix holding every tensor
     * after it; a joined run is one unit of that order, complete only when
     * its first tensor is */
    while (first < ps->n && ps->joined[first])
        first++;
    for (int i = first; i < ps->n; i++) {
        int k = kind_of(ps, i);
        size_t end = ps->offset[i] + ps->numel[i];
        if (end > g->complete[k])
            g->complete[k] = end;
    }
    if (g->complete[0] - g->sent[0] + g->complete[1] - g->sent[1] >= g->bucket)
        send(g);
}

int grad_buckets_finish(grad_buckets *g, char *err, size_t err_len)
{
    for (int k = 0; k < 2; k++)
        g->complete[k] = kind_end(g->ps, k);
    send(g);
    g->armed = 0;
    if (!g->failed && comm_reduce_wait(g->c, g->err, sizeof g->err))
        g->failed = 1;
    if (g->failed)
        snprintf(err, err_len, "%s", g->err);
    return g->failed ? -1 : 0;
}
