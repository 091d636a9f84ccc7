#include "token_stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array_grow.h"

enum { RUNS_PER_WORKER = 4 };

/* A piece and what reading it changed in the data order: its source's
 * position before and after it, and the draws after it (a full position is
 * too large to keep for every piece of a run of short documents). */
typedef struct run_piece {
    int source;
    source_position before, after;
    uint64_t documents_after;
    int current_after;
    size_t text_off, bytes;
    int end_of_document;
    size_t first_id, n_ids;
} run_piece;

/* Consecutive pieces, read by the caller's thread and tokenized together by
 * one thread: fewer hand-overs than one piece at a time. */
typedef struct run {
    char *text;
    size_t text_n, text_cap;
    run_piece *pieces;
    size_t n_pieces, cap_pieces;
    tokenizer_ids ids;
    int status; /* 0, or -1: err follows the pieces and ends the stream */
    char err[1024];
    int done;   /* tokenized */
} run;

typedef struct helper {
    token_stream *s;
    tokenizer tok; /* a tokenizer encodes in one thread only */
    pthread_t thread;
    int started;
} helper;

struct token_stream {
    doc_mix *order;          /* the documents in the run's order */
    mix_position consumed;   /* after the last piece handed out */
    int source_failed;       /* read no more */
    tokenizer tok;     /* the caller's thread's */

    run *runs; /* a ring: runs n_taken … n_read - 1 are in flight */
    int n_runs;
    uint64_t n_read, n_claimed, n_taken;
    int head_ready;    /* runs[n_taken] is tokenized and being handed out */
    size_t next_piece; /* its next piece */

    helper *helpers;
    int n_helpers;
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    int stop;
};

/* ---- reading: the caller's thread ---- */

static int add_piece(run *r, const doc_mix *order, const mix_piece *piece)
{
    size_t len = piece->len;
    if (array_grow((void **)&r->text, &r->text_cap, r->text_n + len, 1) ||
        array_grow((void **)&r->pieces, &r->cap_pieces, r->n_pieces + 1, sizeof *r->pieces))
        return -1;
    memcpy(r->text + r->text_n, piece->text, len);
    run_piece *p = &r->pieces[r->n_pieces++];
    *p = (run_piece){.source = piece->source, .before = piece->before, .text_off = r->text_n,
                     .bytes = len, .end_of_document = piece->ends_document};
    doc_mix_tell_source(order, piece->source, &p->after, &p->documents_after, &p->current_after);
    r->text_n += len;
    return 0;
}

/* Pieces until the run holds TOKEN_STREAM_RUN bytes or a source ends an
 * epoch. A data error ends the run and the reading. */
static void read_run(token_stream *s, run *r)
{
    r->text_n = r->n_pieces = r->ids.n = 0;
    r->status = 0;
    while (r->text_n < TOKEN_STREAM_RUN) {
        mix_piece piece;
        int rc = doc_mix_next(s->order, &piece, r->err, sizeof r->err);
        /* a run ends with an epoch, so that small data is not reread over and over */
        if (rc == 0) {
            if (r->n_pieces > 0)
                return;
            continue;
        }
        if (rc < 0 || add_piece(r, s->order, &piece)) {
            if (rc > 0)
                snprintf(r->err, sizeof r->err, "out of memory reading the data");
            r->status = -1;
            s->source_failed = 1;
            return;
        }
    }
}

/* Fills every free run of the ring and hands them to the helpers. */
static void read_ahead(token_stream *s)
{
    while (!s->source_failed && s->n_read - s->n_taken < (uint64_t)s->n_runs) {
        run *r = &s->runs[s->n_read % s->n_runs];
        read_run(s, r);
        pthread_mutex_lock(&s->lock);
        r->done = 0;
        s->n_read++;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->lock);
    }
}

/* ---- tokenizing: any thread ---- */

static int push_id(tokenizer_ids *ids, int32_t id)
{
    if (array_grow((void **)&ids->ids, &ids->cap, ids->n + 1, sizeof *ids->ids))
        return -1;
    ids->ids[ids->n++] = id;
    return 0;
}

static int tokenize_piece(const tokenizer *tok, run *r, run_piece *p)
{
    p->first_id = r->ids.n;
    if (p->before.at.offset == 0 && tok->bos_id >= 0 && push_id(&r->ids, tok->bos_id))
        return -1;
    if (tokenizer_encode(tok, r->text + p->text_off, p->bytes, &r->ids))
        return -1;
    if (p->end_of_document && tok->eos_id >= 0 && push_id(&r->ids, tok->eos_id))
        return -1;
    p->n_ids = r->ids.n - p->first_id;
    return 0;
}

/* Out of memory keeps the pieces tokenized so far and ends the stream there. */
static void tokenize_run(const tokenizer *tok, run *r)
{
    for (size_t i = 0; i < r->n_pieces; i++)
        if (tokenize_piece(tok, r, &r->pieces[i])) {
            r->n_pieces = i;
            r->status = -1;
            snprintf(r->err, sizeof r->err, "out of memory while tokenizing");
            return;
        }
}

static void *help(void *arg)
{
    helper *h = arg;
    token_stream *s = h->s;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stop && s->n_claimed == s->n_read)
            pthread_cond_wait(&s->work, &s->lock);
        if (s->stop)
            break;
        run *r = &s->runs[s->n_claimed++ % s->n_runs];
        pthread_mutex_unlock(&s->lock);
        tokenize_run(&h->tok, r);
        pthread_mutex_lock(&s->lock);
        r->done = 1;
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* The head run, tokenized: here when no helper has claimed it yet. */
static void await_head(token_stream *s)
{
    run *r = &s->runs[s->n_taken % s->n_runs];
    pthread_mutex_lock(&s->lock);
    if (s->n_claimed == s->n_taken) {
        s->n_claimed++;
        pthread_mutex_unlock(&s->lock);
        tokenize_run(&s->tok, r);
        return;
    }
    while (!r->done)
        pthread_cond_wait(&s->done, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

int token_stream_next(token_stream *s, token_piece *piece, char *err, size_t err_len)
{
    run *r = &s->runs[s->n_taken % s->n_runs];
    if (s->head_ready && s->next_piece == r->n_pieces && r->status == 0) {
        s->n_taken++; /* used up: its slot is free for reading */
        s->head_ready = 0;
        s->next_piece = 0;
        r = &s->runs[s->n_taken % s->n_runs];
    }
    if (!s->head_ready) {
        read_ahead(s);
        await_head(s);
        s->head_ready = 1;
    }
    if (s->next_piece == r->n_pieces) {
        snprintf(err, err_len, "%s", r->err);
        return -1;
    }
    const run_piece *p = &r->pieces[s->next_piece++];
    s->consumed.source[p->source] = p->before; /* differs after the end of an epoch */
    *piece = (token_piece){s->consumed, p->source, p->bytes, p->end_of_document,
                           r->ids.ids + p->first_id, p->n_ids};
    s->consumed.source[p->source] = p->after;
    s->consumed.documents = p->documents_after;
    s->consumed.current = p->current_after;
    return 0;
}

/* ---- life cycle ---- */

static int start_helpers(token_stream *s, const token_stream_options *opt, char *err,
                         size_t err_len)
{
    s->n_helpers = opt->num_workers > 1 ? opt->num_workers - 1 : 0;
    s->n_runs = s->n_helpers ? RUNS_PER_WORKER * opt->num_workers : 1;
    s->runs = calloc((size_t)s->n_runs, sizeof *s->runs);
    s->helpers = calloc((size_t)s->n_helpers + 1, sizeof *s->helpers);
    if (!s->runs || !s->helpers) {
        snprintf(err, err_len, "out of memory for %d tokenizer threads", opt->num_workers);
        return -1;
    }
    for (int i = 0; i < s->n_helpers; i++) {
        helper *h = &s->helpers[i];
        h->s = s;
        if (tokenizer_open(&h->tok, opt->tokenizer_path, err, err_len))
            return -1;
        h->started = pthread_create(&h->thread, NULL, help, h) == 0;
        if (!h->started) {
            snprintf(err, err_len, "cannot start tokenizer thread %d", i + 2);
            return -1;
        }
    }
    return 0;
}

int token_stream_open(token_stream **out, const token_stream_options *opt, char *err,
                      size_t err_len)
{
    token_stream *s = calloc(1, sizeof *s);
    *out = s;
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    doc_mix_options o = {opt->dataset, opt->text_field, opt->data_probs, opt->n_data_probs,
                         opt->shuffle, opt->shuffle_buffer, opt->seed};
    if (doc_mix_open(&s->order, &o, err, err_len) ||
        tokenizer_open(&s->tok, opt->tokenizer_path, err, err_len))
        return -1;
    doc_mix_tell(s->order, &s->consumed);
    return start_helpers(s, opt, err, err_len);
}

const tokenizer *token_stream_tokenizer(const token_stream *s)
{
    return &s->tok;
}

void token_stream_tell(const token_stream *s, mix_position *at)
{
    *at = s->consumed;
}

int token_stream_seek(token_stream *s, const mix_position *at, char *err, size_t err_len)
{
    if (doc_mix_seek(s->order, at, err, err_len))
        return -1;
    s->consumed = *at;
    return 0;
}

void token_stream_close(token_stream *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; s->helpers && i < s->n_helpers; i++) {
        if (s->helpers[i].started)
            pthread_join(s->helpers[i].thread, NULL);
        tokenizer_close(&s->helpers[i].tok);
    }
    for (int i = 0; s->runs && i < s->n_runs; i++) {
        free(s->runs[i].text);
        free(s->runs[i].pieces);
        free(s->runs[i].ids.ids);
    }
    free(s->runs);
    free(s->helpers);
    tokenizer_close(&s->tok);
    doc_mix_close(s->order);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    free(s);
}
