/* Documents → tokens: the pieces of the data order (core/data/doc_mix.h: one
 * source or several mixed, each read epoch after epoch), each tokenized on its own and given BOS when it starts a
 * document (and the tokenizer has one) and EOS when it ends one. The data
 * loader cuts this stream into rows; `flame-data pack` stores one epoch of it.
 *
 * With num_workers n > 1, pieces are tokenized by n threads (the caller's and
 * n - 1 helpers), each with its own tokenizer, and handed out in source order:
 * the stream is the same for every n. Read-ahead is bounded: at most
 * 4 n runs of about TOKEN_STREAM_RUN bytes of text (a run holds whole pieces)
 * and their tokens are held at once. */
#ifndef FLAME_TOKEN_STREAM_H
#define FLAME_TOKEN_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "doc_mix.h"
#include "tokenizer/tokenizer.h"

#define TOKEN_STREAM_RUN ((size_t)1 << 18)

typedef struct token_stream token_stream;

typedef struct token_stream_options {
    const char *dataset;        /* the data source spec (doc_mix_options) */
    const char *text_field;     /* JSON lines field, NULL = "text" */
    const double *data_probs;   /* n_data_probs > 0: the spec's items mixed with these weights */
    int n_data_probs;
    const char *tokenizer_path; /* as tokenizer_open takes it */
    int num_workers;            /* 0 or 1: tokenize in the calling thread */
    /* the data order: files shuffled for each epoch and documents in blocks
     * of shuffle_buffer (core/data/doc_shuffle.h), drawn from seed; 0: the
     * files' order */
    int shuffle;
    size_t shuffle_buffer;
    uint64_t seed;
} token_stream_options;

typedef struct token_piece {
    mix_position at;       /* where the piece starts in the data order */
    int source;            /* which source it comes from */
    size_t bytes;          /* of text */
    int end_of_document;
    const int32_t *ids;    /* BOS? + the text's tokens + EOS?; n may be 0 */
    size_t n;
} token_piece;

/* Opens the source and num_workers tokenizers and starts the helpers. Returns
 * 0, or -1 with err for a configuration error (missing file, unknown
 * extension, bad tokenizer); close *s either way. */
int token_stream_open(token_stream **s, const token_stream_options *opt, char *err,
                      size_t err_len);
void token_stream_close(token_stream *s);

/* The tokenizer every piece is encoded with (for vocab_size, bos_id, eos_id). */
const tokenizer *token_stream_tokenizer(const token_stream *s);

/* Where the next piece starts. */
void token_stream_tell(const token_stream *s, mix_position *at);

/* Starts at `at` instead of the beginning; only before the first
 * token_stream_next. Returns 0, or -1 with err (a data error). */
int token_stream_seek(token_stream *s, const mix_position *at, char *err, size_t err_len);

/* The next piece, valid until the next call. Returns 0, or -1 with err on a
 * data error (the message names file[:member][:line]); nothing follows it. */
int token_stream_next(token_stream *s, token_piece *piece, char *err, size_t err_len);

#endif
