/* Documents in a seeded random order, as torchtitan's and Hugging Face's
 * streaming shuffle buffers give them, but resumable exactly: the source's
 * documents are read in blocks of up to `block_docs` whole documents (at most
 * DOC_SHUFFLE_BLOCK_BYTES of text), and each block is handed out in an order
 * drawn from (seed, epoch, where the block starts). A block ends where the
 * data decides (its size, the end of the epoch, or a document longer than one
 * piece, which then follows the block alone, piece by piece), so a block
 * started at the same place is always the same block: a cursor is the
 * block's start and the documents of it already handed out, and a resumed
 * run reads that one block again and skips them.
 *
 * With the source's files shuffled too (data_source_shuffle_files), this is
 * flame's data order. block_docs 0 or 1: pieces pass through in the source's
 * order, cursor index 0. */
#ifndef FLAME_DOC_SHUFFLE_H
#define FLAME_DOC_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

#include "data_source.h"

#define DOC_SHUFFLE_BLOCK_BYTES ((size_t)64 << 20)

typedef struct doc_shuffle doc_shuffle;

/* Over src, which it reads but does not own. Returns 0, or -1 when out of
 * memory. */
int doc_shuffle_open(doc_shuffle **s, data_source *src, uint64_t seed, size_t block_docs);
void doc_shuffle_close(doc_shuffle *s);

/* As data_source_next: 1 a piece, 0 the end of the epoch, -1 with err. */
int doc_shuffle_next(doc_shuffle *s, const char **text, size_t *len, int *end_of_document,
                     char *err, size_t err_len);

/* The position of the next piece (index: documents of its block handed out). */
void doc_shuffle_tell(const doc_shuffle *s, data_cursor *c);

/* The start of the next epoch. */
void doc_shuffle_rewind(doc_shuffle *s);

/* Goes to a position doc_shuffle_tell gave in epoch `epoch`. Returns 0, or -1
 * with err (a data error: the cursor does not fit the data). */
int doc_shuffle_seek(doc_shuffle *s, uint64_t epoch, const data_cursor *c, char *err,
                     size_t err_len);

#endif
