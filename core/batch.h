/* A micro-batch on its way from host memory to the plugin: the core checks its
 * token ids against the model's vocabulary and counts its targets on the host,
 * where the data already is, then uploads tokens, targets and sequence offsets
 * in one piece, so that the plugin reads nothing back. */
#ifndef FLAME_BATCH_H
#define FLAME_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <flame/plugin.h>

/* Checks tokens[n] against [0, vocab) and counts targets[n] ≥ 0. Returns the
 * count, or -1 with one line in err naming the first bad position and token. */
int batch_check(const int32_t *tokens, const int32_t *targets, int n, int64_t vocab, char *err,
                size_t err_len);

/* Host staging and backend memory for batches of B rows of T tokens, each
 * laid out as tokens [B*T], targets [B*T], sequence offsets [up to B*T+1]. */
typedef struct batch_stage {
    int B, T;
    int32_t *host, *backend;
} batch_stage;

/* Returns 0, or -1 with one line in err when out of memory. */
int batch_stage_open(batch_stage *s, const flame_ops *ops, int B, int T, char *err,
                     size_t err_len);
void batch_stage_close(batch_stage *s, const flame_ops *ops);

/* Checks and uploads one batch (host memory; cu_seqlens NULL: one sequence per
 * row) and describes it in out, whose pointers stay valid until the next load.
 * Returns 0, or -1 with one line in err (a data error). */
int batch_stage_load(batch_stage *s, const flame_ops *ops, const int32_t *tokens,
                     const int32_t *targets, const int32_t *cu_seqlens, int n_seqs, int64_t vocab,
                     flame_batch *out, char *err, size_t err_len);

#endif
