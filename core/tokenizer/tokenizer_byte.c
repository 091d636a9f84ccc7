/* The built-in byte tokenizer, and the entry points that pick between it and a
 * tokenizer.json (tokenizer_bpe.c). */
#include "tokenizer.h"
#include "tokenizer_bpe.h"

#include <stdlib.h>
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
    memset(tok, 0, sizeof *tok);
    if (strcmp(name, "byte") == 0) {
        *tok = (tokenizer){BYTE_VOCAB, BYTE_EOS, -1, byte_encode, NULL};
        return 0;
    }
    tokenizer_bpe *t = tb_open(name, err, err_len);
    if (!t)
        return -1;
    tok->bpe = t;
    tok->vocab_size = t->vocab_size;
    tok->eos_id = t->eos_id;
    tok->bos_id = t->bos_id;
    tok->encode = NULL;
    return 0;
}

void tokenizer_close(tokenizer *tok)
{
    if (tok->bpe)
        tb_close(tok->bpe);
    memset(tok, 0, sizeof *tok);
}

int tokenizer_encode(const tokenizer *tok, const char *text, size_t n, tokenizer_ids *out)
{
    if (tok->bpe)
        return tb_encode(tok->bpe, text, n, out);
    if (tb_ids_reserve(out, n))
        return -1;
    out->n += byte_encode(tok, text, n, out->ids + out->n);
    return 0;
}

int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                     tokenizer_text *out)
{
    if (tok->bpe)
        return tb_decode(tok->bpe, ids, n, skip_special, out);
    tb_buf b = {out->data, out->n, out->cap};
    int rc = tb_buf_reserve(&b, n);
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < 256)
                b.p[b.n++] = (char)ids[i];
    out->data = b.p, out->n = b.n, out->cap = b.cap;
    return rc;
}

int32_t tokenizer_token_id(const tokenizer *tok, const char *token, size_t len)
{
    if (tok->bpe)
        return tb_token_id(tok->bpe, token, len);
    return len == 1 ? (unsigned char)token[0] : -1;
}
