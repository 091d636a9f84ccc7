#include "data_loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_source.h"
#include "tokenizer.h"

/* Where the next token of the stream is: the piece it comes from and its index
 * among that piece's tokens (BOS and EOS included). */
typedef struct stream_position {
    uint64_t epoch;
    data_cursor piece;
    uint64_t token;
} stream_position;

/* the producer's side: documents → tokens */
typedef struct token_stream {
    data_source *source;
    tokenizer tok;
    tokenizer_ids piece; /* tokens of the current piece */
    stream_position at;  /* of piece.ids[at.token] */
} token_stream;

typedef struct batch_slot {
    data_batch batch;
    stream_position after;
    int status; /* 0, or -1: err holds a data error and no batch follows */
    char err[1024];
} batch_slot;

struct data_loader {
    data_loader_options opt;
    token_stream stream;
    int32_t *row; /* seq_len + 1 tokens */

    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch_slot *slots; /* a ring of prefetch + 1: one is the consumer's */
    int n_slots, head, count, stop, held;
    stream_position consumed; /* after the last batch handed out */
};

/* ---- the token stream ---- */

static int push_id(tokenizer_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 1024;
        int32_t *grown = realloc(ids->ids, cap * sizeof *grown);
        if (!grown)
            return -1;
        ids->ids = grown;
        ids->cap = cap;
    }
    ids->ids[ids->n++] = id;
    return 0;
}

/* the tokens of one piece: BOS if it starts a document, its text, EOS if it ends one */
static int tokenize_piece(token_stream *s, const char *text, size_t len, int end_of_document)
{
    s->piece.n = 0;
    if (s->at.piece.offset == 0 && s->tok.bos_id >= 0 && push_id(&s->piece, s->tok.bos_id))
        return -1;
    if (tokenizer_encode(&s->tok, text, len, &s->piece))
        return -1;
    if (end_of_document && s->tok.eos_id >= 0 && push_id(&s->piece, s->tok.eos_id))
        return -1;
    return 0;
}

/* Reads pieces until one has tokens; at the end of the data, the next epoch. */
static int next_piece(token_stream *s, char *err, size_t err_len)
{
    for (;;) {
        const char *text;
        size_t len;
        int end_of_document;
        data_source_tell(s->source, &s->at.piece);
        int rc = data_source_next(s->source, &text, &len, &end_of_document, err, err_len);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            data_source_rewind(s->source);
            s->at.epoch++;
            continue;
        }
        s->at.token = 0;
        if (tokenize_piece(s, text, len, end_of_document)) {
            snprintf(err, err_len, "out of memory while tokenizing");
            return -1;
        }
        if (s->piece.n > 0)
            return 0;
    }
}

static int next_token(token_stream *s, int32_t *token, char *err, size_t err_len)
{
    if (s->at.token == s->piece.n && next_piece(s, err, err_len))
        return -1;
    *token = s->piece.ids[s->at.token++];
    return 0;
}

/* Positions the stream at p: re-reads p's piece and skips its first p.token tokens. */
static int stream_seek(token_stream *s, const stream_position *p, char *err, size_t err_len)
{
    if (data_source_seek(s->source, &p->piece, err, err_len) || next_piece(s, err, err_len))
        return -1;
    if (p->token > s->piece.n) {
        snprintf(err, err_len, "data cursor: token %llu beyond the %zu of its piece",
                 (unsigned long long)p->token, s->piece.n);
        return -1;
    }
    s->at.epoch = p->epoch;
    s->at.token = p->token;
    return 0;
}

/* ---- batches ---- */

static int is_document_start(const data_loader *dl, const int32_t *in, int t, int run)
{
    if (t == 0)
        return 1;
    if (in[t - 1] == dl->stream.tok.eos_id)
        return 1;
    return dl->opt.context_len > 0 && run >= dl->opt.context_len;
}

/* cu_seqlens over the flattened rows: every row start, every document start */
static void mark_sequences(const data_loader *dl, data_batch *b)
{
    int T = dl->opt.seq_len, n = 0, run = 0;
    for (int r = 0; r < dl->opt.batch_size; r++) {
        const int32_t *in = b->inputs + (size_t)r * T;
        for (int t = 0; t < T; t++, run++)
            if (is_document_start(dl, in, t, run)) {
                b->cu_seqlens[n++] = r * T + t;
                run = 0;
            }
    }
    b->cu_seqlens[n] = dl->opt.batch_size * T;
    b->n_seqs = n;
}

/* world_size × batch_size rows of seq_len + 1 tokens; this rank keeps every
 * world_size-th, starting at its rank */
static int fill_batch(data_loader *dl, batch_slot *slot)
{
    const data_loader_options *o = &dl->opt;
    int rows = o->batch_size * o->world_size, T = o->seq_len;
    for (int i = 0; i < rows; i++) {
        for (int t = 0; t <= T; t++)
            if (next_token(&dl->stream, &dl->row[t], slot->err, sizeof slot->err))
                return -1;
        if (i % o->world_size != o->rank)
            continue;
        int b = i / o->world_size;
        memcpy(slot->batch.inputs + (size_t)b * T, dl->row, T * sizeof(int32_t));
        memcpy(slot->batch.targets + (size_t)b * T, dl->row + 1, T * sizeof(int32_t));
    }
    if (o->varlen)
        mark_sequences(dl, &slot->batch);
    slot->after = dl->stream.at;
    return 0;
}

static void *produce(void *arg)
{
    data_loader *dl = arg;
    for (;;) {
        pthread_mutex_lock(&dl->lock);
        while (!dl->stop && dl->count + dl->held == dl->n_slots)
            pthread_cond_wait(&dl->changed, &dl->lock);
        int stop = dl->stop, index = (dl->head + dl->held + dl->count) % dl->n_slots;
        pthread_mutex_unlock(&dl->lock);
        if (stop)
            return NULL;
        batch_slot *slot = &dl->slots[index];
        slot->status = fill_batch(dl, slot);
        pthread_mutex_lock(&dl->lock);
        dl->count++;
        pthread_cond_broadcast(&dl->changed);
        pthread_mutex_unlock(&dl->lock);
        if (slot->status)
            return NULL; /* nothing follows a data error */
    }
}

/* ---- cursor ---- */

static json_t *position_to_json(const stream_position *p)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "epoch", (json_int_t)p->epoch, "file",
                     (json_int_t)p->piece.file, "document", (json_int_t)p->piece.document,
                     "offset", (json_int_t)p->piece.offset, "token", (json_int_t)p->token);
}

static int position_from_json(const json_t *j, stream_position *p, char *err, size_t err_len)
{
    json_int_t v[5];
    json_error_t jerr;
    if (json_unpack_ex((json_t *)j, &jerr, 0, "{s:I, s:I, s:I, s:I, s:I}", "epoch", &v[0],
                       "file", &v[1], "document", &v[2], "offset", &v[3], "token", &v[4])) {
        snprintf(err, err_len, "data cursor: %s", jerr.text);
        return -1;
    }
    for (int i = 0; i < 5; i++)
        if (v[i] < 0) {
            snprintf(err, err_len, "data cursor: negative position");
            return -1;
        }
    *p = (stream_position){(uint64_t)v[0], {(uint64_t)v[1], (uint64_t)v[2], (uint64_t)v[3]},
                           (uint64_t)v[4]};
    return 0;
}

json_t *data_loader_cursor(const data_loader *dl)
{
    return position_to_json(&dl->consumed);
}

/* ---- life cycle ---- */

static int allocate_slots(data_loader *dl)
{
    size_t n = (size_t)dl->opt.batch_size * dl->opt.seq_len;
    dl->n_slots = dl->opt.prefetch + 1;
    dl->slots = calloc((size_t)dl->n_slots, sizeof *dl->slots);
    dl->row = malloc(((size_t)dl->opt.seq_len + 1) * sizeof *dl->row);
    if (!dl->slots || !dl->row)
        return -1;
    for (int i = 0; i < dl->n_slots; i++) {
        data_batch *b = &dl->slots[i].batch;
        b->inputs = malloc(n * sizeof *b->inputs);
        b->targets = malloc(n * sizeof *b->targets);
        b->cu_seqlens = dl->opt.varlen ? malloc((n + 1) * sizeof *b->cu_seqlens) : NULL;
        if (!b->inputs || !b->targets || (dl->opt.varlen && !b->cu_seqlens))
            return -1;
    }
    return 0;
}

static int seek_start(data_loader *dl, const json_t *cursor, char *err, size_t err_len)
{
    if (!cursor)
        return 0; /* the stream reads its first piece on the first token */
    stream_position p;
    if (position_from_json(cursor, &p, err, err_len) || stream_seek(&dl->stream, &p, err, err_len))
        return -1;
    dl->consumed = p;
    return 0;
}

int data_loader_open(data_loader **out, const data_loader_options *opt, const json_t *cursor,
                     char *err, size_t err_len)
{
    data_loader *dl = calloc(1, sizeof *dl);
    *out = dl;
    dl->opt = *opt;
    if (dl->opt.prefetch < 1)
        dl->opt.prefetch = 1;
    if (data_source_open(&dl->stream.source, opt->dataset, opt->text_field, err, err_len) ||
        tokenizer_open(&dl->stream.tok, opt->tokenizer_path, err, err_len))
        return -1;
    if (allocate_slots(dl)) {
        snprintf(err, err_len, "out of memory for %d batches of data", dl->opt.prefetch + 1);
        return -1;
    }
    if (seek_start(dl, cursor, err, err_len))
        return -2;
    pthread_mutex_init(&dl->lock, NULL);
    pthread_cond_init(&dl->changed, NULL);
    dl->thread_started = pthread_create(&dl->thread, NULL, produce, dl) == 0;
    if (!dl->thread_started) {
        snprintf(err, err_len, "cannot start the data thread");
        return -1;
    }
    return 0;
}

int data_loader_next(data_loader *dl, const data_batch **batch, char *err, size_t err_len)
{
    pthread_mutex_lock(&dl->lock);
    if (dl->held) { /* the consumer is done with the previous batch */
        dl->held = 0;
        dl->head = (dl->head + 1) % dl->n_slots;
        pthread_cond_broadcast(&dl->changed);
    }
    while (dl->count == 0)
        pthread_cond_wait(&dl->changed, &dl->lock);
    batch_slot *slot = &dl->slots[dl->head];
    dl->count--;
    dl->held = 1;
    pthread_mutex_unlock(&dl->lock);
    if (slot->status) {
        snprintf(err, err_len, "%s", slot->err);
        return -1;
    }
    dl->consumed = slot->after;
    *batch = &slot->batch;
    return 0;
}

void data_loader_close(data_loader *dl)
{
    if (!dl)
        return;
    if (dl->thread_started) {
        pthread_mutex_lock(&dl->lock);
        dl->stop = 1;
        pthread_cond_broadcast(&dl->changed);
        pthread_mutex_unlock(&dl->lock);
        pthread_join(dl->thread, NULL);
        pthread_mutex_destroy(&dl->lock);
        pthread_cond_destroy(&dl->changed);
    }
    for (int i = 0; dl->slots && i < dl->n_slots; i++) {
        free(dl->slots[i].batch.inputs);
        free(dl->slots[i].batch.targets);
        free(dl->slots[i].batch.cu_seqlens);
    }
    free(dl->slots);
    free(dl->row);
    free(dl->stream.piece.ids);
    if (dl->stream.source)
        data_source_close(dl->stream.source);
    tokenizer_close(&dl->stream.tok);
    free(dl);
}
