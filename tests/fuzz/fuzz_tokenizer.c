/* tokenizer_open on a tokenizer.json of arbitrary bytes, then an encode, a
 * decode of what it gave and a token lookup. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "fuzz_file.h"
#include "tokenizer/tokenizer.h"

static const char TEXT[] = "Hello, world! It's 2024:  café\tnaïve  日本語 <s> 123456 \n\n end";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512];
    tokenizer tok;
    if (tokenizer_open(&tok, fuzz_file(".json", data, size), err, sizeof err) != 0)
        return 0;
    tokenizer_ids ids = {0};
    tokenizer_text text = {0};
    if (tokenizer_encode(&tok, TEXT, sizeof TEXT - 1, &ids) == 0) {
        tokenizer_decode(&tok, ids.ids, ids.n, 0, &text);
        tokenizer_decode(&tok, ids.ids, ids.n, 1, &text);
    }
    tokenizer_token_id(&tok, "<s>", 3);
    free(ids.ids);
    free(text.data);
    tokenizer_close(&tok);
    return 0;
}
