#include "doc_mix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc_shuffle.h"
#include "rng.h"

typedef struct mix_source {
    data_source *data;
    doc_shuffle *order;
    double below; /* the cumulative probability of the sources before it */
} mix_source;

struct doc_mix {
    mix_source source[DOC_MIX_MAX_SOURCES];
    int n_sources;
    uint64_t documents;
    int current;
    uint64_t draw_seed;
};

/* the seed of source i's own order; source 0 keeps the run's seed, so one
 * source is shuffled as it was before mixing existed */
static uint64_t source_seed(uint64_t seed, int i)
{
    return seed ^ (uint64_t)i * 0x9E3779B97F4A7C15ull;
}

static int open_source(doc_mix *m, int i, const char *spec, const doc_mix_options *o, char *err,
                       size_t err_len)
{
    mix_source *s = &m->source[i];
    if (data_source_open(&s->data, spec, o->text_field, err, err_len))
        return -1;
    uint64_t seed = source_seed(o->seed, i);
    if ((o->shuffle && data_source_shuffle_files(s->data, seed)) ||
        doc_shuffle_open(&s->order, s->data, seed, o->shuffle ? o->shuffle_buffer : 0)) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

/* The sources named by the spec's comma-separated items, one per probability. */
static int open_mixed(doc_mix *m, const doc_mix_options *o, char *err, size_t err_len)
{
    char *items = strdup(o->dataset);
    if (!items) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int n = 0, rc = 0;
    double total = 0;
    for (int i = 0; i < o->n_probs; i++)
        total += o->probs[i];
    char *save = NULL;
    for (char *item = strtok_r(items, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save), n++) {
        if (n == o->n_probs || n == DOC_MIX_MAX_SOURCES)
            break;
        m->source[n].below = n == 0 ? 0 : m->source[n - 1].below + o->probs[n - 1] / total;
        rc = open_source(m, n, item, o, err, err_len);
        m->n_sources = n + 1;
    }
    int extra = strtok_r(NULL, ",", &save) != NULL;
    free(items);
    if (rc == 0 && (n != o->n_probs || extra)) {
        snprintf(err, err_len, "training.data_probs gives %d probabilities, but "
                 "training.dataset has %s%d comma-separated sources", o->n_probs,
                 extra ? "more than " : "", n);
        rc = -1;
    }
    return rc;
}

int doc_mix_open(doc_mix **out, const doc_mix_options *o, char *err, size_t err_len)
{
    doc_mix *m = calloc(1, sizeof *m);
    *out = m;
    if (!m) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    m->current = -1;
    m->draw_seed = o->seed ^ 0xD6E8FEB86659FD93ull;
    if (o->n_probs > DOC_MIX_MAX_SOURCES) {
        snprintf(err, err_len, "training.data_probs: %d sources, at most %d can be mixed",
                 o->n_probs, DOC_MIX_MAX_SOURCES);
        return -1;
    }
    if (o->n_probs > 0)
        return open_mixed(m, o, err, err_len);
    m->n_sources = 1;
    return open_source(m, 0, o->dataset, o, err, err_len);
}

void doc_mix_close(doc_mix *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_sources; i++) {
        doc_shuffle_close(m->source[i].order);
        if (m->source[i].data)
            data_source_close(m->source[i].data);
    }
    free(m);
}

int doc_mix_sources(const doc_mix *m) { return m->n_sources; }

/* the source of document k: the first whose cumulative share exceeds a
 * uniform number drawn from (seed, k) */
static int draw_source(const doc_mix *m, uint64_t k)
{
    rng r = rng_skip((rng){m->draw_seed}, k);
    double u = rng_uniform(&r);
    int i = m->n_sources - 1;
    while (i > 0 && u < m->source[i].below)
        i--;
    return i;
}

int doc_mix_next(doc_mix *m, mix_piece *piece, char *err, size_t err_len)
{
    if (m->current < 0)
        m->current = draw_source(m, m->documents++);
    mix_source *s = &m->source[m->current];
    piece->before.epoch = data_source_epoch(s->data);
    doc_shuffle_tell(s->order, &piece->before.at);
    int rc = doc_shuffle_next(s->order, &piece->text, &piece->len, &piece->ends_document, err,
                              err_len);
    if (rc == 0) { /* the draw stands: its document is the next epoch's first */
        doc_shuffle_rewind(s->order);
        return 0;
    }
    if (rc > 0) {
        piece->source = m->current;
        if (piece->ends_document)
            m->current = -1;
    }
    return rc;
}

void doc_mix_tell_source(const doc_mix *m, int source, source_position *at, uint64_t *documents,
                         int *current)
{
    const mix_source *s = &m->source[source];
    at->epoch = data_source_epoch(s->data);
    doc_shuffle_tell(s->order, &at->at);
    *documents = m->documents;
    *current = m->current;
}

void doc_mix_tell(const doc_mix *m, mix_position *p)
{
    memset(p, 0, sizeof *p);
    p->n_sources = m->n_sources;
    for (int i = 0; i < m->n_sources; i++)
        doc_mix_tell_source(m, i, &p->source[i], &p->documents, &p->current);
}

int doc_mix_seek(doc_mix *m, const mix_position *p, char *err, size_t err_len)
{
    if (p->n_sources != m->n_sources || p->current >= m->n_sources || p->current < -1) {
        snprintf(err, err_len, "data cursor: saved for %d data source%s (current %d), but "
                 "there %s %d", p->n_sources, p->n_sources == 1 ? "" : "s", p->current,
                 m->n_sources == 1 ? "is" : "are", m->n_sources);
        return -1;
    }
    for (int i = 0; i < m->n_sources; i++)
        if (doc_shuffle_seek(m->source[i].order, p->source[i].epoch, &p->source[i].at, err,
                             err_len))
            return -1;
    m->documents = p->documents;
    m->current = p->current;
    return 0;
}
