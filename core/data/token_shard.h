/* Pre-tokenized shards (`flame-data pack`, name ending in TOKEN_SHARD_EXT): the
 * token stream the data loader builds from text for one epoch — per document
 * BOS (when the tokenizer has one), its tokens, EOS — stored so that training
 * can memory-map it instead of tokenizing.
 *
 * File layout, all integers little endian:
 *   offset size  field
 *     0     8    magic "FLAMETOK"
 *     8     4    format version, TOKEN_SHARD_VERSION
 *    12     4    token width in bytes: 2 (uint16) when vocab_size <= 65536, else 4
 *    16     8    token count
 *    24     8    document count (EOS-terminated documents)
 *    32     4    vocab_size of the tokenizer
 *    36     4    bos_id (int32, -1: none)
 *    40     4    eos_id (int32, -1: none)
 *    44     4    reserved, 0
 *    48     8    tokenizer hash: token_shard_hash of the tokenizer.json's bytes,
 *                of the 4 bytes "byte" for the built-in byte tokenizer
 *    56     8    data hash: token_shard_hash of the token bytes
 *    64          the tokens, token count × width bytes; the file ends there
 *
 * token_shard_hash(bytes): h = 0x243F6A8885A308D3; for each 8-byte little
 * endian word w of the bytes (the last one zero-padded): h = (h ^ w) ×
 * 0x9E3779B97F4A7C15 mod 2^64, then h ^= h >> 32; finally the same step with
 * w = the byte count. Each step is invertible, so any change to one word
 * changes the hash. */
#ifndef FLAME_TOKEN_SHARD_H
#define FLAME_TOKEN_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_SHARD_EXT ".flametok"
#define TOKEN_SHARD_VERSION 1
#define TOKEN_SHARD_HEADER 64

typedef struct token_shard_header {
    uint32_t version, token_bytes;
    uint64_t n_tokens, n_documents;
    uint32_t vocab_size;
    int32_t bos_id, eos_id;
    uint64_t tokenizer_hash, data_hash;
} token_shard_header;

/* Whether a dataset spec names a shard: ends in TOKEN_SHARD_EXT (any case,
 * trailing spaces ignored, as data_source ignores them). */
int token_shard_is_path(const char *spec);

/* ---- hashing ---- */

typedef struct token_shard_hasher {
    uint64_t h, n, tail;
} token_shard_hasher;

void token_shard_hash_init(token_shard_hasher *hs);
void token_shard_hash_update(token_shard_hasher *hs, const void *data, size_t n);
uint64_t token_shard_hash_final(const token_shard_hasher *hs);

/* The tokenizer hash of model.tokenizer_path ("byte", a tokenizer.json or a
 * folder holding one). Returns 0, or -1 with err naming the file. */
int token_shard_tokenizer_hash(const char *name_or_path, uint64_t *hash, char *err,
                               size_t err_len);

/* ---- writing: to PATH.tmp, renamed to PATH by token_shard_finish ---- */

typedef struct token_shard_writer token_shard_writer;

/* h gives vocab_size, bos_id, eos_id and tokenizer_hash; the rest is counted.
 * Returns 0, or -1 with err (the file cannot be created). */
int token_shard_create(token_shard_writer **w, const char *path, const token_shard_header *h,
                       char *err, size_t err_len);
/* Appends n ids (each in [0, vocab_size)) ending documents documents. Returns 0,
 * or -1 with err (a write error, an id outside the vocabulary). */
int token_shard_write(token_shard_writer *w, const int32_t *ids, size_t n, uint64_t documents,
                      char *err, size_t err_len);
/* Writes the header, syncs, renames into place and frees w; *h receives the
 * header written. Returns 0, or -1 with err (then the temporary file is gone). */
int token_shard_finish(token_shard_writer *w, token_shard_header *h, char *err, size_t err_len);
/* Removes the temporary file and frees w. */
void token_shard_abort(token_shard_writer *w);

/* ---- reading: memory-mapped ---- */

typedef struct token_shard {
    token_shard_header h;
    char *path;
    const unsigned char *tokens; /* n_tokens × token_bytes */
    void *map;
    size_t map_len;
} token_shard;

/* Maps path and checks the header and the file size. Returns 0; -1 with err
 * when the file cannot be opened (a configuration error); -2 with err when it
 * is no shard, of another version, corrupt or truncated (a data error). The
 * message begins with the path. Close s also after a failed open. */
int token_shard_open(token_shard *s, const char *path, char *err, size_t err_len);
void token_shard_close(token_shard *s);

/* Copies tokens [first, first + n) to out. Returns 0, or -1 with err (naming
 * the file) when one is not below vocab_size: the shard is corrupt. */
int token_shard_read(const token_shard *s, uint64_t first, size_t n, int32_t *out, char *err,
                     size_t err_len);

/* Reads every token: recomputes the data hash and checks the ids against
 * vocab_size. Returns 0, or -1 with err naming the file. */
int token_shard_verify(const token_shard *s, char *err, size_t err_len);

#endif
