/* A checkpoint's data cursor (trainer.json's data_cursor) read as each kind of
 * data; one that is accepted, written back and read again, is the same
 * position. */
#include <stdlib.h>

#include "data/stream_cursor.h"

static int same_source(const source_position *a, const source_position *b)
{
    return a->epoch == b->epoch && a->at.file == b->at.file &&
           a->at.document == b->at.document && a->at.offset == b->at.offset &&
           a->at.index == b->at.index;
}

static int same(const stream_position *a, const stream_position *b)
{
    if (a->token != b->token || a->piece.n_sources != b->piece.n_sources ||
        a->piece.documents != b->piece.documents || a->piece.current != b->piece.current)
        return 0;
    for (int i = 0; i < a->piece.n_sources; i++)
        if (!same_source(&a->piece.source[i], &b->piece.source[i]))
            return 0;
    return 1;
}

static void round_trip(const stream_position *p, cursor_kind kind)
{
    json_t *j = stream_cursor_to_json(p, kind);
    stream_position again;
    char err[512];
    if (!j || stream_cursor_from_json(j, kind, "fuzz", &again, err, sizeof err) ||
        !same(&again, p))
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (!j)
        return 0;
    const cursor_kind kinds[] = {CURSOR_TEXT, CURSOR_MIXED, CURSOR_SHARD};
    for (int k = 0; k < 3; k++) {
        stream_position p;
        char err[512];
        if (stream_cursor_from_json(j, kinds[k], "fuzz", &p, err, sizeof err) == 0)
            round_trip(&p, kinds[k]);
    }
    json_decref(j);
    return 0;
}
