/* Where the data loader stands, and that position as the JSON object a
 * checkpoint keeps (trainer.json's data_cursor):
 *   text, one source:  {epoch, file, document, offset, index, token}
 *   text, mixed:       {sources: [{epoch, file, document, offset, index}, ...],
 *                       documents, current, token}
 *   a shard:           {epoch, shard_token}
 * Text cursors of unshuffled runs from before shuffling lack "index" (0). */
#ifndef FLAME_STREAM_CURSOR_H
#define FLAME_STREAM_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_mix.h"

/* Where the next token of the stream is. Text: the piece it comes from and
 * its index among that piece's tokens (BOS and EOS included). A shard: its
 * index in the shard, and the shard's epochs as those of a one-source order. */
typedef struct stream_position {
    mix_position piece;
    uint64_t token;
} stream_position;

typedef enum { CURSOR_TEXT, CURSOR_MIXED, CURSOR_SHARD } cursor_kind;

/* A new object, or NULL when out of memory. */
json_t *stream_cursor_to_json(const stream_position *p, cursor_kind kind);

/* Reads a cursor of the kind the data is (dataset names it in messages).
 * Returns 0, or -1 with err: another kind, a missing field, a negative number. */
int stream_cursor_from_json(const json_t *j, cursor_kind kind, const char *dataset,
                            stream_position *p, char *err, size_t err_len);

#endif
