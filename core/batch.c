#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int batch_check(const int32_t *tokens, const int32_t *targets, int n, int64_t vocab, char *err,
                size_t err_len)
{
    int counted = 0;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= vocab) {
            snprintf(err, err_len,
                     "token %d at position %d of the batch is outside [model] vocab_size = %lld",
                     tokens[i], i, (long long)vocab);
            return -1;
        }
        counted += targets[i] >= 0;
    }
    return counted;
}

int batch_stage_open(batch_stage *s, const flame_ops *ops, int B, int T, char *err,
                     size_t err_len)
{
    *s = (batch_stage){.B = B, .T = T};
    /* tokens, targets, and at most one sequence offset per token, plus the end */
    size_t bytes = (3 * (size_t)B * T + 1) * sizeof(int32_t);
    s->host = malloc(bytes);
    s->backend = ops->alloc(bytes);
    if (!s->host || !s->backend) {
        batch_stage_close(s, ops);
        snprintf(err, err_len, "out of memory for a batch of %d x %d tokens", B, T);
        return -1;
    }
    return 0;
}

void batch_stage_close(batch_stage *s, const flame_ops *ops)
{
    if (s->backend)
        ops->free(s->backend);
    free(s->host);
    *s = (batch_stage){0};
}

int batch_stage_load(batch_stage *s, const flame_ops *ops, const int32_t *tokens,
                     const int32_t *targets, const int32_t *cu_seqlens, int n_seqs, int64_t vocab,
                     flame_batch *out, char *err, size_t err_len)
{
    int n = s->B * s->T;
    int counted = batch_check(tokens, targets, n, vocab, err, err_len);
    if (counted < 0)
        return -1;
    int32_t *cu = s->host + 2 * (size_t)n;
    if (cu_seqlens) {
        memcpy(cu, cu_seqlens, ((size_t)n_seqs + 1) * sizeof *cu);
    } else {
        n_seqs = s->B;
        for (int r = 0; r <= s->B; r++)
            cu[r] = r * s->T;
    }
    memcpy(s->host, tokens, (size_t)n * sizeof *tokens);
    memcpy(s->host + n, targets, (size_t)n * sizeof *targets);
    ops->upload(s->backend, s->host, (2 * (size_t)n + n_seqs + 1) * sizeof(int32_t));
    *out = (flame_batch){.tokens = s->backend,
                         .targets = s->backend + n,
                         .B = s->B,
                         .T = s->T,
                         .counted = counted,
                         .cu_seqlens = cu,
                         .cu_seqlens_backend = s->backend + 2 * (size_t)n,
                         .n_seqs = n_seqs};
    return 0;
}
