#include "tokenizer.h"

#include <stdio.h>
#include <string.h>

enum { BYTE_VOCAB = 257, BYTE_EOS = 256 };

static size_t byte_encode(const tokenizer *tok, const char *text, size_t n, int32_t *out)
{
    (void)tok;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)text[i];
    return n;
}

int tokenizer_open(tokenizer *tok, const char *name, char *err, size_t err_len)
{
    if (strcmp(name, "byte") != 0) {
        snprintf(err, err_len,
                 "[model] tokenizer_path = \"%s\": only the built-in \"byte\" tokenizer is "
                 "available in this version",
                 name);
        return -1;
    }
    *tok = (tokenizer){BYTE_VOCAB, BYTE_EOS, -1, byte_encode};
    return 0;
}
