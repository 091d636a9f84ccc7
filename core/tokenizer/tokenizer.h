/* Tokenizers (model.tokenizer_path):
 *   "byte"               the built-in byte tokenizer: ids 0–255 are the bytes,
 *                        256 is the end-of-document token (EOS); vocab 257, no BOS;
 *   FILE.json or FOLDER  a Hugging Face tokenizer.json (a folder: FOLDER/tokenizer.json)
 *                        with a BPE model, token for token what the `tokenizers`
 *                        library gives with add_special_tokens=False (see
 *                        tokenizer_bpe.c for what is supported).
 * flame never downloads: a hub id such as "fla-hub/gla-1.3B-100B" is an error.
 *
 * BOS and EOS of a tokenizer.json (-1 where none is found):
 *   1. the post_processor's TemplateProcessing (also inside a Sequence): the special
 *      tokens of its "single" template before "$A" give the BOS (the first of them),
 *      those after it the EOS (the last of them); RobertaProcessing/BertProcessing:
 *      cls is the BOS, sep the EOS;
 *   2. otherwise, by name, the first of these that is a token: BOS "<s>",
 *      "<|begin_of_text|>"; EOS "</s>", "<|end_of_text|>", "<|endoftext|>".
 *
 * Text is bytes; valid UTF-8 tokenizes exactly as `tokenizers` does. A byte
 * that is not part of valid UTF-8 counts as a character of its own (no letter,
 * digit or space), which `tokenizers` cannot be given.
 *
 * Encoding caches words inside the tokenizer: one tokenizer must not encode in
 * two threads at once (open one per thread). */
#ifndef FLAME_TOKENIZER_H
#define FLAME_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer_bpe tokenizer_bpe;

typedef struct tokenizer {
    int vocab_size;  /* highest id + 1 */
    int32_t eos_id;  /* -1: none */
    int32_t bos_id;  /* -1: none */
    /* The byte tokenizer only (NULL for tokenizer.json ones, whose token count can
     * exceed the byte count): appends the tokens of n bytes to out, which has room
     * for at least n tokens, and returns how many it wrote. */
    size_t (*encode)(const struct tokenizer *tok, const char *text, size_t n, int32_t *out);
    tokenizer_bpe *bpe; /* NULL for "byte" */
} tokenizer;

/* A growable list of ids / of bytes; start from {0} and free(x.ids) / free(x.data). */
typedef struct tokenizer_ids {
    int32_t *ids;
    size_t n, cap;
} tokenizer_ids;
typedef struct tokenizer_text {
    char *data;
    size_t n, cap;
} tokenizer_text;

/* name_or_path: "byte", a tokenizer.json file, or a folder holding tokenizer.json.
 * Returns 0, or -1 with err (a missing file, a hub id, malformed JSON with its
 * file:line:column, a component flame does not support). */
int tokenizer_open(tokenizer *tok, const char *name_or_path, char *err, size_t err_len);
void tokenizer_close(tokenizer *tok);

/* Appends the tokens of text[0, n) — a whole document: tokenizations of two
 * halves need not join to that of the whole — to out, without BOS/EOS.
 * Returns 0, or -1 when out of memory. */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t n, tokenizer_ids *out);

/* Appends the text of ids to out, as `tokenizers`' decode(ids, skip_special_tokens)
 * does; ids that are no token are skipped. Returns 0, or -1 when out of memory. */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                     tokenizer_text *out);

/* The id of a token's text (an added token or the model's), or -1. */
int32_t tokenizer_token_id(const tokenizer *tok, const char *token, size_t len);

#endif
