/* The training data order over one or several sources: documents drawn from
 * each source with its probability (training.data_probs), as fla-org/flame's
 * interleaving of datasets does, but resumable exactly. Each source is a
 * data source (core/data/data_source.h) in its own shuffled order
 * (core/data/doc_shuffle.h, from the seed, the source's epoch and its index)
 * with its own epochs: a source that runs out starts its next epoch. The
 * source of the k-th document is drawn from (seed, k) alone, so a position
 * is each source's cursor, the count of documents drawn and the source of
 * the document being read (a long document comes in several pieces).
 *
 * One source (no probabilities) is the plain data order: its draws are all
 * that source, and the comma-separated items of the spec are its files. */
#ifndef FLAME_DOC_MIX_H
#define FLAME_DOC_MIX_H

#include <stddef.h>
#include <stdint.h>

#include "data_source.h"

#define DOC_MIX_MAX_SOURCES 16

typedef struct source_position {
    uint64_t epoch; /* epochs of the source completed */
    data_cursor at; /* where its next piece starts */
} source_position;

typedef struct mix_position {
    int n_sources;
    uint64_t documents; /* documents started: the draw of the next is number `documents` */
    int current;        /* the source of the document being read; -1 between documents */
    source_position source[DOC_MIX_MAX_SOURCES];
} mix_position;

typedef struct doc_mix_options {
    const char *dataset;    /* a data source spec; with probabilities, its comma-separated
                               items are the sources, in the order of the probabilities */
    const char *text_field; /* NULL: "text" */
    const double *probs;    /* n_probs > 0 weights (normalized here); NULL: one source */
    int n_probs;
    int shuffle;            /* 0: each source in its files' order */
    size_t shuffle_buffer;
    uint64_t seed;
} doc_mix_options;

typedef struct doc_mix doc_mix;

/* Opens every source. Returns 0, or -1 with err for a configuration error
 * (a source spec data_source_open refuses, a count of probabilities that is
 * not the count of items, more than DOC_MIX_MAX_SOURCES); close *m either way. */
int doc_mix_open(doc_mix **m, const doc_mix_options *opt, char *err, size_t err_len);
void doc_mix_close(doc_mix *m);

int doc_mix_sources(const doc_mix *m);

typedef struct mix_piece {
    const char *text; /* valid until the next call */
    size_t len;       /* at least 1 */
    int source;
    source_position before; /* where it starts in its source */
    int ends_document;
} mix_piece;

/* The next piece. Returns 1 for a piece; 0 when a source has just ended an
 * epoch and started the next (call again: a reader may stop there, so that
 * small data is not read over and over ahead); -1 with err on a data error
 * (as data_source_next). */
int doc_mix_next(doc_mix *m, mix_piece *piece, char *err, size_t err_len);

/* The position of the next piece. */
void doc_mix_tell(const doc_mix *m, mix_position *p);
/* Only the parts that the last doc_mix_next changed: the draws and that source. */
void doc_mix_tell_source(const doc_mix *m, int source, source_position *at, uint64_t *documents,
                         int *current);

/* Goes to a position doc_mix_tell gave on the same sources. Returns 0, or -1
 * with err (a data error: the position does not fit the data). */
int doc_mix_seek(doc_mix *m, const mix_position *p, char *err, size_t err_len);

#endif
