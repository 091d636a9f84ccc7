/* ZeRO-1 (DESIGN.md: the optimizer states sharded across the ranks): each
 * rank keeps the AdamW moments of its shard of the flat parameter buffers
 * (params.h) and updates that shard alone. The gradients come to it summed
 * over the ranks (grad_buckets.h: reduced onto it); the updated weights go back to every
 * rank (an all-gather of the compute copy: bf16 on a GPU, the fp32 values
 * themselves on the CPU). With one shard (one rank, or
 * data_parallel_shard_degree 1) the shard is the whole and the sum an
 * all-reduce. A checkpoint holds the whole state, whatever the ranks: a
 * whole view gathers it for writing and takes a rank's part of one read. */
#ifndef FLAME_PARAMS_SHARD_H
#define FLAME_PARAMS_SHARD_H

#include <stddef.h>

#include "comm.h"
#include "params.h"

/* Σ grad² over the shard, summed over the ranks: the global norm's square */
int params_grad_square_sum(param_store *ps, comm *c, double *sum, char *err, size_t err_len);
/* every shard's updated weights to every rank (after AdamW on the shards) */
int params_gather_weights(param_store *ps, comm *c, char *err, size_t err_len);

/* ps with m and v the size of the whole buffers (backend memory of its own)
 * in place of the shard's: what checkpoints write and read; with one shard,
 * ps itself. 0, or -1 with err when out of memory. */
int params_whole_view(const param_store *ps, param_store *view, char *err, size_t err_len);
void params_release_view(const param_store *ps, param_store *view);
/* Fills the view with every rank's moments, and every rank's fp32 values
 * where they are not the compute copy (on a GPU the weights' all-gather
 * brings the bf16 copy alone): collective. */
int params_gather_state(param_store *ps, param_store *view, comm *c, char *err, size_t err_len);
/* after a checkpoint was read into the view: this rank's moments out of it */
void params_keep_shard(param_store *ps, const param_store *view);

#endif
