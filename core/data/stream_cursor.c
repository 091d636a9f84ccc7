#include "stream_cursor.h"

#include <stdio.h>
#include <string.h>

static json_t *source_to_json(const source_position *s)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "epoch", (json_int_t)s->epoch, "file",
                     (json_int_t)s->at.file, "document", (json_int_t)s->at.document, "offset",
                     (json_int_t)s->at.offset, "index", (json_int_t)s->at.index);
}

static json_t *mixed_to_json(const stream_position *p)
{
    json_t *sources = json_array();
    for (int i = 0; sources && i < p->piece.n_sources; i++)
        if (json_array_append_new(sources, source_to_json(&p->piece.source[i]))) {
            json_decref(sources);
            return NULL;
        }
    return json_pack("{s:o, s:I, s:i, s:I}", "sources", sources, "documents",
                     (json_int_t)p->piece.documents, "current", p->piece.current, "token",
                     (json_int_t)p->token);
}

json_t *stream_cursor_to_json(const stream_position *p, cursor_kind kind)
{
    if (kind == CURSOR_SHARD)
        return json_pack("{s:I, s:I}", "epoch", (json_int_t)p->piece.source[0].epoch,
                         "shard_token", (json_int_t)p->token);
    if (kind == CURSOR_MIXED)
        return mixed_to_json(p);
    json_t *j = source_to_json(&p->piece.source[0]);
    if (j && json_object_set_new(j, "token", json_integer((json_int_t)p->token))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int unpack_failed(const json_error_t *jerr, char *err, size_t err_len)
{
    snprintf(err, err_len, "data cursor: %s", jerr->text);
    return -1;
}

static int negative(char *err, size_t err_len)
{
    snprintf(err, err_len, "data cursor: negative position");
    return -1;
}

/* {epoch, file, document, offset, index?} */
static int source_from_json(const json_t *j, source_position *s, char *err, size_t err_len)
{
    json_int_t v[5] = {0};
    json_error_t jerr;
    if (json_unpack_ex((json_t *)j, &jerr, 0, "{s:I, s:I, s:I, s:I, s?I}", "epoch", &v[0],
                       "file", &v[1], "document", &v[2], "offset", &v[3], "index", &v[4]))
        return unpack_failed(&jerr, err, err_len);
    for (int i = 0; i < 5; i++)
        if (v[i] < 0)
            return negative(err, err_len);
    *s = (source_position){(uint64_t)v[0],
                           {(uint64_t)v[1], (uint64_t)v[2], (uint64_t)v[3], (uint64_t)v[4]}};
    return 0;
}

static int token_from_json(const json_t *j, const char *key, uint64_t *token, char *err,
                           size_t err_len)
{
    json_int_t t;
    json_error_t jerr;
    if (json_unpack_ex((json_t *)j, &jerr, 0, "{s:I}", key, &t))
        return unpack_failed(&jerr, err, err_len);
    if (t < 0)
        return negative(err, err_len);
    *token = (uint64_t)t;
    return 0;
}

static int mixed_from_json(const json_t *j, stream_position *p, char *err, size_t err_len)
{
    json_t *sources;
    json_int_t documents;
    int current;
    json_error_t jerr;
    if (json_unpack_ex((json_t *)j, &jerr, 0, "{s:o, s:I, s:i}", "sources", &sources,
                       "documents", &documents, "current", &current))
        return unpack_failed(&jerr, err, err_len);
    size_t n = json_array_size(sources);
    if (!json_is_array(sources) || n == 0 || n > DOC_MIX_MAX_SOURCES) {
        snprintf(err, err_len, "data cursor: sources is not an array of 1 to %d positions",
                 DOC_MIX_MAX_SOURCES);
        return -1;
    }
    if (documents < 0 || current < -1)
        return negative(err, err_len);
    p->piece = (mix_position){.n_sources = (int)n, .documents = (uint64_t)documents,
                              .current = current};
    for (size_t i = 0; i < n; i++)
        if (source_from_json(json_array_get(sources, i), &p->piece.source[i], err, err_len))
            return -1;
    return token_from_json(j, "token", &p->token, err, err_len);
}

static const char *kind_name(cursor_kind kind)
{
    return kind == CURSOR_SHARD ? "a pre-tokenized shard"
           : kind == CURSOR_MIXED ? "mixed text (training.data_probs)"
                                  : "text";
}

int stream_cursor_from_json(const json_t *j, cursor_kind kind, const char *dataset,
                            stream_position *p, char *err, size_t err_len)
{
    cursor_kind saved = json_object_get(j, "shard_token") ? CURSOR_SHARD
                        : json_object_get(j, "sources") ? CURSOR_MIXED
                                                        : CURSOR_TEXT;
    if (saved != kind) {
        snprintf(err, err_len, "data cursor: saved for %s, but dataset %s is %s",
                 kind_name(saved), dataset, kind_name(kind));
        return -1;
    }
    memset(p, 0, sizeof *p);
    p->piece.n_sources = 1;
    p->piece.current = -1;
    if (kind == CURSOR_MIXED)
        return mixed_from_json(j, p, err, err_len);
    if (kind == CURSOR_SHARD) {
        json_int_t epoch;
        json_error_t jerr;
        if (json_unpack_ex((json_t *)j, &jerr, 0, "{s:I}", "epoch", &epoch))
            return unpack_failed(&jerr, err, err_len);
        if (epoch < 0)
            return negative(err, err_len);
        p->piece.source[0].epoch = (uint64_t)epoch;
        return token_from_json(j, "shard_token", &p->token, err, err_len);
    }
    return source_from_json(j, &p->piece.source[0], err, err_len) ||
                   token_from_json(j, "token", &p->token, err, err_len)
               ? -1
               : 0;
}
