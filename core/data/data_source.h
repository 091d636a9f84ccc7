/* Document sources: training.dataset resolved to a list of files, read as one
 * deterministic stream of documents (byte strings), one epoch at a time.
 *
 * The spec is one item or several separated by commas (spaces around an item
 * are ignored, so a path cannot hold a comma), each
 *   - a file,
 *   - a folder: every file below it, recursively (names starting with '.'
 *     skipped),
 *   - a glob(3) pattern (an item holding * ? or [): its matches, folders
 *     among them expanded as above.
 * The files of one item come in byte order of path, the items in the order
 * given (a file named twice is read twice).
 *
 * Formats, by name (case-insensitive):
 *   .txt            the whole file is one document
 *   .jsonl          one document per line: the string field text_field
 *                   ("text" when NULL); blank lines skipped
 *   .parquet .arrow .json
 *                   rows, their field text_field, through the columnar
 *                   reader (core/data/columnar_reader.h, pyarrow)
 *   X.gz X.zst X.xz a compressed single stream of X (.txt or .jsonl)
 *   .tar .tar.gz .tgz .tar.zst .tar.xz .zip
 *                   archives: their .txt and .jsonl members in archive order,
 *                   other members skipped, with one note on stderr per archive
 * A gzip file is inflated by zlib (checking every member's CRC-32 and length),
 * read through once before any of its text comes out.
 * A pre-tokenized shard (.flametok, core/token_shard.h) is no data source:
 * the data loader maps it when it is the whole dataset.
 * Everything is read through libarchive, JSON lines through jansson.
 * Documents of zero bytes are skipped. Memory: one document (a JSON line and
 * its decoded text) plus a read buffer of DATA_SOURCE_PIECE bytes.
 *
 * Pieces: a document comes out in one or more pieces. A JSON line document
 * is one piece; a .txt document is one piece when it fits in
 * DATA_SOURCE_PIECE bytes, else several, each but the last ending just after
 * a newline when the second half of its window has one, else on a UTF-8
 * character boundary. Every piece holds at least one byte; the last of a
 * document has end_of_document set, so a consumer tokenizes each piece and
 * appends EOS after a piece with end_of_document. Pieces are cut the same
 * way after data_source_seek, so a resumed run sees the same pieces. */
#ifndef FLAME_DATA_SOURCE_H
#define FLAME_DATA_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#define DATA_SOURCE_PIECE ((size_t)1 << 20)

typedef struct data_source data_source;

/* Where the next piece starts. */
typedef struct data_cursor {
    uint64_t file;     /* index in the resolved file list (== the count at the end of an epoch) */
    uint64_t document; /* documents of that file already passed, across its members
                          (skipped empty ones included; blank JSON lines are none) */
    uint64_t offset;   /* bytes of the next document already handed out
                          (0 except inside a .txt document longer than a piece) */
    uint64_t index;    /* shuffled (core/data/doc_shuffle.h): documents of the block
                          starting at (file, document) already handed out; else 0 */
} data_cursor;

/* Resolves the spec to its files (they are opened only when read).
 * Returns 0, or -1 with err: the spec is empty, a path is missing, a pattern
 * or folder matches nothing, a file has an unknown extension (the message
 * names the known ones). All of these are configuration errors. */
int data_source_open(data_source **ds, const char *spec, const char *text_field,
                     char *err, size_t err_len);
void data_source_close(data_source *ds);

size_t data_source_file_count(const data_source *ds);

/* The next piece: *text (valid until the next call on ds), *len >= 1 bytes,
 * *end_of_document. Returns 1 for a piece, 0 at the end of the epoch (again
 * until rewind or seek), -1 with err on a data error: an unreadable file, a
 * corrupt archive or compressed stream, a bad JSON line, or an epoch read from
 * its start without a single piece. The message begins file[:member][:line]. */
int data_source_next(data_source *ds, const char **text, size_t *len, int *end_of_document,
                     char *err, size_t err_len);

/* Files in a seeded random order, drawn anew for each epoch from (seed,
 * epoch), instead of the resolved order; cursors then count files in that
 * order. Returns 0, or -1 when out of memory. */
int data_source_shuffle_files(data_source *ds, uint64_t seed);

/* The epoch being read (0 at the start): it picks the file order. Setting
 * it goes back to the start of that epoch's first file. */
void data_source_set_epoch(data_source *ds, uint64_t epoch);
uint64_t data_source_epoch(const data_source *ds);

/* Back to the start of the first file: the next epoch. */
void data_source_rewind(data_source *ds);

/* The position of the next piece, for an exact resume. */
void data_source_tell(const data_source *ds, data_cursor *c);

/* Goes to a position data_source_tell gave on the same file list: re-reads
 * the cursor's file from its start and skips. Returns 0, or -1 with err (a
 * data error: the cursor lies beyond the data, or the file cannot be read);
 * then the source is left rewound. */
int data_source_seek(data_source *ds, const data_cursor *c, char *err, size_t err_len);

#endif
