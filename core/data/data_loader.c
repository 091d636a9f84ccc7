#include "data_loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_cursor.h"
#include "token_shard.h"
#include "token_stream.h"

typedef struct batch_slot {
    data_batch batch;
    stream_position after;
    int status; /* 0, or -1: err holds a data error and no batch follows */
    char err[1024];
} batch_slot;

struct data_loader {
    data_loader_options opt;
    /* the tokens: from text through a token stream, or from a mapped shard */
    token_stream *stream;
    token_piece piece; /* the stream's current piece */
    token_shard shard;
    int is_shard;
    int32_t eos_id;
    stream_position at; /* of the next token */
    int32_t *row;       /* seq_len + 1 tokens */

    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch_slot *slots; /* a ring of prefetch + 1: one is the consumer's */
    int n_slots, head, count, stop, held;
    stream_position consumed; /* after the last batch handed out */
};

/* ---- text: the token stream ---- */

/* Moves to the next piece that has tokens. */
static int next_piece(data_loader *dl, char *err, size_t err_len)
{
    do {
        if (token_stream_next(dl->stream, &dl->piece, err, err_len))
            return -1;
    } while (dl->piece.n == 0);
    dl->at = (stream_position){dl->piece.at, 0};
    return 0;
}

/* n tokens of the stream into out */
static int text_tokens(data_loader *dl, int32_t *out, size_t n, char *err, size_t err_len)
{
    while (n > 0) {
        if (dl->at.token == dl->piece.n && next_piece(dl, err, err_len))
            return -1;
        size_t k = dl->piece.n - dl->at.token;
        k = k < n ? k : n;
        memcpy(out, dl->piece.ids + dl->at.token, k * sizeof *out);
        dl->at.token += k;
        out += k;
        n -= k;
    }
    return 0;
}

/* Positions the stream at p: re-reads p's piece and skips its first p.token tokens. */
static int text_seek(data_loader *dl, const stream_position *p, char *err, size_t err_len)
{
    if (token_stream_seek(dl->stream, &p->piece, err, err_len) ||
        next_piece(dl, err, err_len))
        return -1;
    if (p->token > dl->piece.n) {
        snprintf(err, err_len, "data cursor: token %llu beyond the %zu of its piece",
                 (unsigned long long)p->token, dl->piece.n);
        return -1;
    }
    dl->at.token = p->token;
    return 0;
}

/* ---- a shard: tokens straight from the mapping ---- */

/* n tokens from the shard into out (NULL: skipped), epoch after epoch */
static int shard_tokens(data_loader *dl, int32_t *out, size_t n, char *err, size_t err_len)
{
    uint64_t total = dl->shard.h.n_tokens;
    while (n > 0) {
        if (dl->at.token == total) {
            dl->at.token = 0;
            dl->at.piece.source[0].epoch++;
        }
        size_t k = total - dl->at.token < n ? (size_t)(total - dl->at.token) : n;
        if (out && token_shard_read(&dl->shard, dl->at.token, k, out, err, err_len))
            return -1;
        dl->at.token += k;
        out = out ? out + k : NULL;
        n -= k;
    }
    return 0;
}

/* the next row of seq_len + 1 tokens; keep = 0: this rank does not need it */
static int next_row(data_loader *dl, int keep, char *err, size_t err_len)
{
    size_t n = (size_t)dl->opt.seq_len + 1;
    if (dl->is_shard)
        return shard_tokens(dl, keep ? dl->row : NULL, n, err, err_len);
    return text_tokens(dl, dl->row, n, err, err_len);
}

/* ---- batches ---- */

static int is_document_start(const data_loader *dl, const int32_t *in, int t, int run)
{
    if (t == 0)
        return 1;
    if (in[t - 1] == dl->eos_id)
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
        int keep = i % o->world_size == o->rank;
        if (next_row(dl, keep, slot->err, sizeof slot->err))
            return -1;
        if (!keep)
            continue;
        int b = i / o->world_size;
        memcpy(slot->batch.inputs + (size_t)b * T, dl->row, T * sizeof(int32_t));
        memcpy(slot->batch.targets + (size_t)b * T, dl->row + 1, T * sizeof(int32_t));
    }
    if (o->varlen)
        mark_sequences(dl, &slot->batch);
    slot->after = dl->at;
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

static cursor_kind kind_of(const data_loader *dl)
{
    return dl->is_shard ? CURSOR_SHARD : dl->opt.n_data_probs > 0 ? CURSOR_MIXED : CURSOR_TEXT;
}

json_t *data_loader_cursor(const data_loader *dl)
{
    return stream_cursor_to_json(&dl->consumed, kind_of(dl));
}

int data_loader_epochs(const data_loader *dl, uint64_t *epochs)
{
    const mix_position *p = &dl->consumed.piece;
    for (int i = 0; i < p->n_sources; i++)
        epochs[i] = p->source[i].epoch;
    return p->n_sources;
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

static int shard_seek(data_loader *dl, const stream_position *p, char *err, size_t err_len)
{
    if (p->token > dl->shard.h.n_tokens) {
        snprintf(err, err_len, "data cursor: token %llu beyond the %llu of %s",
                 (unsigned long long)p->token, (unsigned long long)dl->shard.h.n_tokens,
                 dl->opt.dataset);
        return -1;
    }
    dl->at = *p;
    return 0;
}

static int seek_start(data_loader *dl, const json_t *cursor, char *err, size_t err_len)
{
    stream_position p = {.piece = {.n_sources = 1, .current = -1}};
    if (!cursor) { /* a text stream reads its first piece on the first token */
        if (!dl->is_shard)
            token_stream_tell(dl->stream, &p.piece);
        dl->consumed = dl->at = p;
        return 0;
    }
    if (stream_cursor_from_json(cursor, kind_of(dl), dl->opt.dataset, &p, err, err_len) ||
        (dl->is_shard ? shard_seek : text_seek)(dl, &p, err, err_len))
        return -1;
    dl->consumed = p;
    return 0;
}

static int open_text(data_loader *dl, char *err, size_t err_len)
{
    token_stream_options o = {.dataset = dl->opt.dataset,
                              .text_field = dl->opt.text_field,
                              .data_probs = dl->opt.data_probs,
                              .n_data_probs = dl->opt.n_data_probs,
                              .tokenizer_path = dl->opt.tokenizer_path,
                              .num_workers = dl->opt.num_workers,
                              .shuffle = dl->opt.shuffle,
                              .shuffle_buffer = dl->opt.shuffle_buffer,
                              .seed = dl->opt.seed};
    if (token_stream_open(&dl->stream, &o, err, err_len))
        return -1;
    dl->eos_id = token_stream_tokenizer(dl->stream)->eos_id;
    return 0;
}

/* Maps the dataset's one file, spaces around it ignored as data_source does. */
static int map_shard(data_loader *dl, char *err, size_t err_len)
{
    const char *spec = dl->opt.dataset;
    if (strpbrk(spec, ",*?[")) {
        snprintf(err, err_len, "dataset %s: a .flametok shard must be the whole dataset, one "
                 "file (no list or glob)", spec);
        return -1;
    }
    size_t n = strlen(spec);
    while (*spec == ' ')
        spec++, n--;
    while (n > 0 && spec[n - 1] == ' ')
        n--;
    char *path = strndup(spec, n);
    if (!path) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    char why[1024];
    int rc = token_shard_open(&dl->shard, path, why, sizeof why);
    if (rc)
        snprintf(err, err_len, "dataset %s", why);
    free(path);
    return rc;
}

/* Maps the shard and refuses one packed with another tokenizer than
 * tokenizer_path: its ids would mean other tokens. Returns 0, -1 (a
 * configuration error) or -2 (a corrupt shard). */
static int open_shard(data_loader *dl, char *err, size_t err_len)
{
    int rc = map_shard(dl, err, err_len);
    if (rc)
        return rc;
    const char *path = dl->shard.path;
    if (dl->shard.h.n_tokens == 0) {
        snprintf(err, err_len, "%s: the shard holds no tokens", path);
        return -2;
    }
    uint64_t hash;
    if (token_shard_tokenizer_hash(dl->opt.tokenizer_path, &hash, err, err_len))
        return -1;
    if (hash != dl->shard.h.tokenizer_hash) {
        snprintf(err, err_len, "dataset %s was packed with another tokenizer than "
                 "model.tokenizer_path %s (tokenizer hash %016llx, the shard's %016llx): "
                 "pack it again or give the tokenizer it was packed with", path,
                 dl->opt.tokenizer_path, (unsigned long long)hash,
                 (unsigned long long)dl->shard.h.tokenizer_hash);
        return -1;
    }
    /* What `flame-data inspect` checks, before the first step: damaged tokens
     * must never be trained on. It reads the whole mapping once (about a second
     * per few GB, paging the shard in); read only as batches need it, damage
     * would surface after the steps that trained on it. */
    if (token_shard_verify(&dl->shard, err, err_len))
        return -2;
    dl->eos_id = dl->shard.h.eos_id;
    return 0;
}

int data_loader_open(data_loader **out, const data_loader_options *opt, const json_t *cursor,
                     char *err, size_t err_len)
{
    data_loader *dl = calloc(1, sizeof *dl);
    *out = dl;
    if (!dl) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    dl->opt = *opt;
    if (dl->opt.prefetch < 1)
        dl->opt.prefetch = 1;
    dl->is_shard = token_shard_is_path(opt->dataset);
    int rc = dl->is_shard ? open_shard(dl, err, err_len) : open_text(dl, err, err_len);
    if (rc)
        return rc;
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
    token_stream_close(dl->stream);
    token_shard_close(&dl->shard);
    free(dl);
}
