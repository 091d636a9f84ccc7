#include "dataset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK_BYTES = 1 << 20 };

int dataset_open(dataset *ds, const char *path, const tokenizer *tok, char *err, size_t err_len)
{
    memset(ds, 0, sizeof *ds);
    ds->path = path;
    ds->tok = tok;
    ds->file = fopen(path, "rb");
    if (!ds->file) {
        snprintf(err, err_len, "%s: cannot open dataset: %s", path, strerror(errno));
        return -1;
    }
    ds->chunk = malloc(CHUNK_BYTES);
    ds->tokens = malloc((CHUNK_BYTES + 1) * sizeof *ds->tokens);
    return 0;
}

void dataset_close(dataset *ds)
{
    if (ds->file)
        fclose(ds->file);
    free(ds->chunk);
    free(ds->tokens);
    memset(ds, 0, sizeof *ds);
}

/* Reads and tokenizes the next chunk; at the end of the file appends EOS and
 * starts the next epoch. */
static int refill(dataset *ds, char *err, size_t err_len)
{
    size_t got = fread(ds->chunk, 1, CHUNK_BYTES, ds->file);
    if (ferror(ds->file)) {
        snprintf(err, err_len, "%s: read error: %s", ds->path, strerror(errno));
        return -1;
    }
    ds->n_tokens = ds->tok->encode(ds->tok, ds->chunk, got, ds->tokens);
    ds->tokens_read += ds->n_tokens;
    ds->next = 0;
    if (got < CHUNK_BYTES) {
        if (ds->tokens_read == 0) {
            snprintf(err, err_len, "%s: the dataset holds no text", ds->path);
            return -1;
        }
        ds->tokens[ds->n_tokens++] = ds->tok->eos_id;
        rewind(ds->file);
        ds->epoch++;
        ds->tokens_read = 0;
    }
    return 0;
}

static int next_token(dataset *ds, int32_t *token, char *err, size_t err_len)
{
    while (ds->next == ds->n_tokens)
        if (refill(ds, err, err_len))
            return -1;
    *token = ds->tokens[ds->next++];
    return 0;
}

int dataset_next_batch(dataset *ds, int B, int T, int32_t *inputs, int32_t *targets,
                       char *err, size_t err_len)
{
    for (int b = 0; b < B; b++) {
        int32_t *in = inputs + (size_t)b * T, *tg = targets + (size_t)b * T;
        int32_t previous;
        if (next_token(ds, &previous, err, err_len))
            return -1;
        for (int t = 0; t < T; t++) {
            int32_t token;
            if (next_token(ds, &token, err, err_len))
                return -1;
            in[t] = previous;
            tg[t] = token;
            previous = token;
        }
    }
    return 0;
}
