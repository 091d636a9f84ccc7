/* The collectives of a data-parallel run over the ranks a dist_env describes:
 * Gloo's on the CPU (and NCCL's on the GPU, not built yet), their peers found
 * through a rendezvous store that rank 0 serves at MASTER_ADDR:MASTER_PORT
 * (core/kv_store.h). A run of one rank needs neither: every collective is
 * then the identity. Every call is collective (each rank makes it, in the
 * same order); a failure (a peer gone, the timeout passed) returns -1 with a
 * line in err naming this rank and the cause, never a silent hang. */
#ifndef FLAME_COMM_H
#define FLAME_COMM_H

#include <stddef.h>

#include "dist_env.h"

typedef struct comm comm;

/* Joins the run: rank 0 starts the store, every rank connects to it and to
 * its peers, waiting at most init_timeout_s; later collectives wait at most
 * timeout_s. backend is the op table's ("cpu", "cuda"): where the buffers of
 * comm_sum_floats live. NULL with a line in err (no Gloo in this build, the
 * rendezvous timed out, ...). */
comm *comm_open(const dist_env *e, const char *backend, double init_timeout_s, double timeout_s, char *err,
                size_t err_len);
int comm_rank(const comm *c);
int comm_world(const comm *c);
/* whether the collectives go through an engine: a launcher's ranks, even one
 * alone (else each is the identity, at no cost) */
int comm_engaged(const comm *c);

/* x[0, n) = its sum over the ranks, the same on every rank; x in the
 * backend's memory. 0, or -1 with err. */
int comm_sum_floats(comm *c, float *x, size_t n, char *err, size_t err_len);
/* the same over host doubles (losses, counts, flags) */
int comm_sum_doubles(comm *c, double *x, size_t n, char *err, size_t err_len);
/* root's bytes[0, n) (host memory) to every rank */
int comm_broadcast(comm *c, void *bytes, size_t n, int root, char *err, size_t err_len);
/* returns when every rank has called it */
int comm_barrier(comm *c, char *err, size_t err_len);

/* Gradients summed while the backward goes on (backend memory, in place):
 * starts summing x[lo, hi) over the ranks into the ranks that own it, rank r
 * owning x[r·shard, (r+1)·shard) (ZeRO-1's reduce-scatter; shard 0: every
 * rank owns all of it, a replica's sum). The sums run after the work the
 * backend has queued so far and beside what it queues next; the rest of
 * x[lo, hi) is left undefined. comm_reduce_wait returns when every sum
 * started is done. */
int comm_reduce_start(comm *c, float *x, size_t lo, size_t hi, size_t shard, char *err, size_t err_len);
int comm_reduce_wait(comm *c, char *err, size_t err_len);
/* ZeRO-1's gathering (backend memory, in place): x holds world parts of
 * shard_bytes; afterwards every part is the one its rank held (this rank's
 * part in, all of them out) */
int comm_all_gather(comm *c, void *x, size_t shard_bytes, char *err, size_t err_len);
void comm_close(comm *c);

#endif
