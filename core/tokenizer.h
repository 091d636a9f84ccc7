/* Tokenizers. Today: the built-in byte tokenizer (model.tokenizer_path = byte):
 * one token per byte (ids 0–255) and an end-of-document token, id 256. */
#ifndef FLAME_TOKENIZER_H
#define FLAME_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer {
    int vocab_size;
    int32_t eos_id;
    int32_t bos_id; /* -1: none */
    /* Appends the tokens of n bytes of text to out (room for at least n tokens);
     * returns how many it wrote. */
    size_t (*encode)(const struct tokenizer *tok, const char *text, size_t n, int32_t *out);
} tokenizer;

/* Returns 0, or -1 with err when name is not a tokenizer flame has. */
int tokenizer_open(tokenizer *tok, const char *name, char *err, size_t err_len);

#endif
