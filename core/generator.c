#include "generator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct generator {
    const flame_plugin *plugin;
    void *model;
    const flame_ops *ops;
    int B, max_len, pos, vocab;
    void *state;          /* backend memory */
    float *logits;        /* backend [B, vocab] */
    float *host_logits;   /* host copy */
};

int generator_open(generator **out, const flame_plugin *plugin, void *model, const flame_ops *ops,
                   int B, int max_len, char *err, size_t err_len)
{
    generator *g = calloc(1, sizeof *g);
    *out = g;
    size_t bytes = plugin->decode_state_size ? plugin->decode_state_size(model, B, max_len) : 0;
    if (!g || bytes == 0) {
        snprintf(err, err_len, g ? "%s cannot generate on %s (no decode path there yet)"
                                 : "out of memory", plugin->name, ops->backend);
        return -1;
    }
    *g = (generator){.plugin = plugin, .model = model, .ops = ops, .B = B, .max_len = max_len,
                     .vocab = (int)plugin->vocab_size(model)};
    size_t n_logits = (size_t)B * g->vocab;
    g->state = ops->alloc(bytes);
    g->logits = ops->alloc(n_logits * sizeof(float));
    g->host_logits = malloc(n_logits * sizeof(float));
    if (!g->state || !g->logits || !g->host_logits) {
        snprintf(err, err_len, "out of memory for the state of %d sequences of %d positions "
                 "(%.2f GiB)", B, max_len, bytes / 1073741824.0);
        return -1;
    }
    ops->zero(g->state, bytes);
    return 0;
}

void generator_close(generator *g)
{
    if (!g)
        return;
    if (g->state)
        g->ops->free(g->state);
    if (g->logits)
        g->ops->free(g->logits);
    free(g->host_logits);
    free(g);
}

int generator_feed(generator *g, const int32_t *tokens, const float **logits, char *err,
                   size_t err_len)
{
    if (g->pos == g->max_len) {
        snprintf(err, err_len, "all %d positions of the state are used", g->max_len);
        return -1;
    }
    if (g->plugin->decode_forward(g->model, g->state, tokens, g->B, g->pos, g->logits)) {
        snprintf(err, err_len, "%s: a decode step failed at position %d", g->plugin->name, g->pos);
        return -1;
    }
    g->pos++;
    g->ops->download(g->host_logits, g->logits, (size_t)g->B * g->vocab * sizeof(float));
    *logits = g->host_logits;
    return 0;
}

int generator_position(const generator *g) { return g->pos; }

/* ---- sampling ---- */

typedef struct candidate {
    int32_t id;
    double p;
} candidate;

static int by_probability(const void *a, const void *b)
{
    double pa = ((const candidate *)a)->p, pb = ((const candidate *)b)->p;
    return pa < pb ? 1 : pa > pb ? -1 : ((const candidate *)a)->id - ((const candidate *)b)->id;
}

static void swap_candidates(candidate *a, candidate *b)
{
    candidate t = *a;
    *a = *b, *b = t;
}

/* c[0..k) the k first in by_probability's order (unordered), by quickselect:
 * top-k wants k of a vocabulary, and sorting it all is most of a step */
static void select_first(candidate *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        swap_candidates(&c[(lo + hi) / 2], &c[hi]); /* the middle as pivot */
        int store = lo;
        for (int i = lo; i < hi; i++)
            if (by_probability(&c[i], &c[hi]) < 0)
                swap_candidates(&c[i], &c[store++]);
        swap_candidates(&c[store], &c[hi]);
        if (store == k || store == k - 1)
            return;
        if (store < k)
            lo = store + 1;
        else
            hi = store - 1;
    }
}

static int32_t greedy(const float *logits, int vocab)
{
    int32_t best = 0;
    for (int i = 1; i < vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

int32_t sample_token(const float *logits, int vocab, const sampling *s, rng *r)
{
    if (s->temperature <= 0)
        return greedy(logits, vocab);
    candidate *c = malloc((size_t)vocab * sizeof *c);
    if (!c)
        return greedy(logits, vocab); /* no room to sort: the most likely token */
    double top = logits[greedy(logits, vocab)], sum = 0;
    for (int i = 0; i < vocab; i++) {
        c[i] = (candidate){i, exp((logits[i] - top) / s->temperature)};
        sum += c[i].p;
    }
    int n = s->top_k > 0 && s->top_k < vocab ? s->top_k : vocab;
    if (n < vocab) /* only the filters need an order */
        select_first(c, vocab, n);
    if (n < vocab || s->top_p < 1)
        qsort(c, (size_t)n, sizeof *c, by_probability);
    double mass = 0, kept = 0;
    for (int i = 0; i < n; i++) { /* top_p: stop once the mass reaches it */
        mass += c[i].p / sum;
        kept += c[i].p;
        if (s->top_p < 1 && mass >= s->top_p) {
            n = i + 1;
            break;
        }
    }
    double u = rng_uniform(r) * kept;
    int32_t id = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        u -= c[i].p;
        if (u < 0) {
            id = c[i].id;
            break;
        }
    }
    free(c);
    return id;
}
