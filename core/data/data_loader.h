/* The training data pipeline: documents from a data source (core/data_source.h),
 * tokenized in a background thread (core/token_stream.h; num_workers > 1 adds
 * helper threads, with the same result), each preceded by BOS (when the
 * tokenizer has one) and followed by EOS, joined into one stream repeated epoch
 * after epoch, and cut into rows of seq_len + 1 tokens (inputs: the first
 * seq_len, targets: the last seq_len). Data parallel rank r of n takes every
 * n-th row. Batches are prepared `prefetch` ahead. The position after each
 * batch is a small cursor that a checkpoint saves, so a resumed run sees
 * exactly the tokens it would have seen.
 *
 * A dataset that is one file named *.flametok is a pre-tokenized shard
 * (core/token_shard.h, written by `flame-data pack`): it is memory-mapped and
 * its tokens, which are that same stream for one epoch, are cut into the same
 * rows — the batches equal those of the text it was packed from. Its
 * tokenizer hash must match tokenizer_path's, and its tokens are checked
 * (data hash, ids) when it is opened. */
#ifndef FLAME_DATA_LOADER_H
#define FLAME_DATA_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_mix.h"

typedef struct data_loader_options {
    const char *dataset;        /* the data source spec */
    const char *text_field;     /* JSON lines field, NULL = "text" */
    /* n_data_probs > 0: the dataset's comma-separated items are sources mixed
     * with these weights (core/data/doc_mix.h) */
    const double *data_probs;
    int n_data_probs;
    const char *tokenizer_path; /* as tokenizer_open takes it */
    int batch_size, seq_len;
    int rank, world_size;
    /* varlen: cu_seqlens mark where documents start in the flattened batch,
     * and a document is also cut every context_len tokens */
    int varlen, context_len;
    int prefetch; /* batches prepared ahead, at least 1 */
    int num_workers; /* tokenizing threads for text; 0 or 1: the background thread alone */
    /* text: the data order (token_stream.h); a shard keeps the order it was packed in */
    int shuffle;
    size_t shuffle_buffer;
    uint64_t seed;
} data_loader_options;

typedef struct data_batch {
    int32_t *inputs, *targets; /* [batch_size * seq_len] */
    int32_t *cu_seqlens;       /* varlen: [n_seqs + 1] offsets; NULL otherwise */
    int n_seqs;
} data_batch;

typedef struct data_loader data_loader;

/* Opens the source and the tokenizer (or maps the shard), seeks to cursor
 * (NULL: the start) and starts the background thread. Returns 0; -1 with err
 * for a configuration error (missing file, unknown extension, bad tokenizer, a
 * shard of another tokenizer); -2 with err for a data error (a shard that is
 * corrupt, its data hash or an id included, truncated or empty, a cursor that does not fit the data, or while
 * seeking). */
int data_loader_open(data_loader **dl, const data_loader_options *opt, const json_t *cursor,
                     char *err, size_t err_len);
void data_loader_close(data_loader *dl);

/* The next batch, valid until the next call. Returns 0, or -1 with err on a
 * data error (the message names file[:member][:line]). */
int data_loader_next(data_loader *dl, const data_batch **batch, char *err, size_t err_len);

/* The position after the last batch data_loader_next returned (a new object;
 * core/data/stream_cursor.h). */
json_t *data_loader_cursor(const data_loader *dl);

/* The epochs each source has completed at that position, into
 * epochs[DOC_MIX_MAX_SOURCES]; returns the count of sources. */
int data_loader_epochs(const data_loader *dl, uint64_t *epochs);

#endif
