/* Training data: a text file streamed in chunks (never wholly in memory),
 * tokenized, joined with EOS at each end of file (one file = one document,
 * repeated for as many epochs as the steps need) and cut into rows of seq_len+1
 * tokens: inputs are the first seq_len, targets the last seq_len. */
#ifndef FLAME_DATASET_H
#define FLAME_DATASET_H

#include <stdint.h>
#include <stdio.h>

#include "tokenizer.h"

typedef struct dataset {
    const char *path;
    FILE *file;
    const tokenizer *tok;
    char *chunk;        /* raw bytes read from the file */
    int32_t *tokens;    /* tokenized, not yet consumed */
    size_t n_tokens, next;
    long epoch;
    unsigned long long tokens_read; /* in this epoch: a file without any is an error */
} dataset;

/* Returns 0, or -1 with err (the file cannot be opened or holds no text). */
int dataset_open(dataset *ds, const char *path, const tokenizer *tok, char *err, size_t err_len);
void dataset_close(dataset *ds);

/* Fills B rows of T inputs and T targets (host memory).
 * Returns 0, or -1 with err on a read error. */
int dataset_next_batch(dataset *ds, int B, int T, int32_t *inputs, int32_t *targets,
                       char *err, size_t err_len);

#endif
