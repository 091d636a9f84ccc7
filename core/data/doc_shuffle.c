#include "doc_shuffle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array_grow.h"
#include "rng.h"

/* a document of the block: its place in the text, and the one handed out i-th */
typedef struct block_doc {
    size_t off, len, order;
} block_doc;

/* what follows the block's documents */
enum { AFTER_NONE, AFTER_HELD, AFTER_STREAMING };

struct doc_shuffle {
    data_source *src;
    uint64_t seed;
    size_t block_docs;

    /* the block: whole documents read from `start`, their text end to end */
    data_cursor start;
    char *text;
    size_t text_len, text_cap;
    block_doc *docs;
    size_t n_docs, cap_docs, handed;
    int epoch_ended; /* the source ended its epoch after this block */

    /* a document longer than one piece, read after the block: its first piece
     * held (AFTER_HELD), then the rest passed through (AFTER_STREAMING) */
    int after;
    char *held;
    size_t held_len, held_cap;
    data_cursor held_at;
};

int doc_shuffle_open(doc_shuffle **out, data_source *src, uint64_t seed, size_t block_docs)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -1;
    (*out)->src = src;
    (*out)->seed = seed;
    (*out)->block_docs = block_docs;
    return 0;
}

void doc_shuffle_close(doc_shuffle *s)
{
    if (!s)
        return;
    free(s->text);
    free(s->docs);
    free(s->held);
    free(s);
}

static int passes_through(const doc_shuffle *s) { return s->block_docs <= 1; }

static void forget_block(doc_shuffle *s)
{
    s->n_docs = s->handed = s->text_len = 0;
    s->epoch_ended = 0;
    s->after = AFTER_NONE;
}

static int add_document(doc_shuffle *s, const char *text, size_t n)
{
    if (array_grow((void **)&s->text, &s->text_cap, s->text_len + n, 1) ||
        array_grow((void **)&s->docs, &s->cap_docs, s->n_docs + 1, sizeof *s->docs))
        return -1;
    memcpy(s->text + s->text_len, text, n);
    s->docs[s->n_docs++] = (block_doc){s->text_len, n, 0};
    s->text_len += n;
    return 0;
}

static int hold(doc_shuffle *s, const char *text, size_t n, const data_cursor *at)
{
    if (array_grow((void **)&s->held, &s->held_cap, n, 1))
        return -1;
    memcpy(s->held, text, n);
    s->held_len = n;
    s->held_at = *at;
    s->after = AFTER_HELD;
    return 0;
}

/* the block's order: a Fisher-Yates shuffle drawn from (seed, epoch, start) */
static void draw_order(doc_shuffle *s)
{
    rng r = {s->seed ^ (data_source_epoch(s->src) + 1) * 0xD1B54A32D192ED03ull ^
             (s->start.file + 1) * 0x8CB92BA72F3D8DD7ull ^ (s->start.document + 1) * 0xABC98388FB8FAC03ull};
    for (size_t i = 0; i < s->n_docs; i++)
        s->docs[i].order = i;
    for (size_t i = s->n_docs; i > 1; i--) {
        size_t j = (size_t)(rng_next(&r) % i), t = s->docs[i - 1].order;
        s->docs[i - 1].order = s->docs[j].order;
        s->docs[j].order = t;
    }
}

/* Reads the next block from where the source is. Returns 0, or -1 with err. */
static int fill_block(doc_shuffle *s, char *err, size_t err_len)
{
    forget_block(s);
    data_source_tell(s->src, &s->start);
    while (s->n_docs < s->block_docs && s->text_len < DOC_SHUFFLE_BLOCK_BYTES) {
        data_cursor here;
        data_source_tell(s->src, &here);
        const char *text;
        size_t n;
        int end;
        int r = data_source_next(s->src, &text, &n, &end, err, err_len);
        if (r < 0)
            return -1;
        if (r == 0) {
            s->epoch_ended = 1;
            break;
        }
        if (!end) { /* the first piece of a long document: it follows the block */
            if (hold(s, text, n, &here))
                goto out_of_memory;
            break;
        }
        if (add_document(s, text, n))
            goto out_of_memory;
    }
    draw_order(s);
    return 0;
out_of_memory:
    snprintf(err, err_len, "out of memory shuffling documents");
    return -1;
}

int doc_shuffle_next(doc_shuffle *s, const char **text, size_t *len, int *end_of_document,
                     char *err, size_t err_len)
{
    if (passes_through(s))
        return data_source_next(s->src, text, len, end_of_document, err, err_len);
    for (;;) {
        if (s->handed < s->n_docs) {
            const block_doc *d = &s->docs[s->docs[s->handed++].order];
            *text = s->text + d->off;
            *len = d->len;
            *end_of_document = 1;
            return 1;
        }
        if (s->after == AFTER_HELD) {
            *text = s->held;
            *len = s->held_len;
            *end_of_document = 0;
            s->after = AFTER_STREAMING;
            return 1;
        }
        if (s->after == AFTER_STREAMING) {
            int r = data_source_next(s->src, text, len, end_of_document, err, err_len);
            if (r > 0 && *end_of_document)
                s->after = AFTER_NONE;
            return r;
        }
        if (s->epoch_ended)
            return 0;
        if (fill_block(s, err, err_len))
            return -1;
        if (s->n_docs == 0 && s->after == AFTER_NONE)
            return 0;
    }
}

void doc_shuffle_tell(const doc_shuffle *s, data_cursor *c)
{
    if (!passes_through(s) && s->handed < s->n_docs) {
        *c = s->start;
        c->index = s->handed;
    } else if (!passes_through(s) && s->after == AFTER_HELD) {
        *c = s->held_at;
    } else {
        data_source_tell(s->src, c);
    }
}

void doc_shuffle_rewind(doc_shuffle *s)
{
    forget_block(s);
    data_source_rewind(s->src);
}

int doc_shuffle_seek(doc_shuffle *s, uint64_t epoch, const data_cursor *c, char *err,
                     size_t err_len)
{
    forget_block(s);
    data_source_set_epoch(s->src, epoch);
    data_cursor at = *c;
    at.index = 0;
    if (data_source_seek(s->src, &at, err, err_len))
        return -1;
    if (c->offset > 0 && !passes_through(s)) /* inside a long document */
        s->after = AFTER_STREAMING;
    if (c->index == 0)
        return 0;
    if (passes_through(s) || c->offset > 0) {
        snprintf(err, err_len, "data cursor: document %llu of a shuffled block, but %s",
                 (unsigned long long)c->index,
                 passes_through(s) ? "the data is not shuffled" : "inside a long document");
        return -1;
    }
    if (fill_block(s, err, err_len))
        return -1;
    if (c->index > s->n_docs) {
        snprintf(err, err_len, "data cursor: document %llu of a block of %zu",
                 (unsigned long long)c->index, s->n_docs);
        return -1;
    }
    s->handed = (size_t)c->index;
    return 0;
}
