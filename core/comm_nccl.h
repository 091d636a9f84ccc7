/* NCCL's collectives over the rendezvous store (comm_nccl.c): what comm.c
 * calls for a CUDA run. Buffers of nccl_comm_sum_floats are device memory;
 * the host values of the others go through a small device buffer. NCCL
 * reports a dead peer only when asked: each call waits for its collective
 * on the host, asking, and gives up (aborting the communicator) once
 * timeout_s has passed. NVLink multicast is NCCL's to decide from the
 * environment (NCCL_NVLS_ENABLE), which flame leaves as it finds it. */
#ifndef FLAME_COMM_NCCL_H
#define FLAME_COMM_NCCL_H

#include <stddef.h>

#include "kv_store.h"

typedef struct nccl_comm nccl_comm;

/* rank 0 makes NCCL's unique id and sets it in the store; the others wait for it */
nccl_comm *nccl_comm_open(kv_client *store, int rank, int world, double init_timeout_s, double timeout_s,
                          char *err, size_t err_len);
int nccl_comm_sum_floats(nccl_comm *c, float *x, size_t n, char *err, size_t err_len);
int nccl_comm_sum_doubles(nccl_comm *c, double *x, size_t n, char *err, size_t err_len);
int nccl_comm_broadcast(nccl_comm *c, void *bytes, size_t n, int root, char *err, size_t err_len);
int nccl_comm_barrier(nccl_comm *c, char *err, size_t err_len);
void nccl_comm_close(nccl_comm *c);

#endif
