/* NCCL's collectives (comm_nccl.c), over the rendezvous store: the engine
 * comm.c takes for a CUDA run. Floats are summed in device memory; the host
 * values of the other collectives go through a small device buffer. NCCL
 * reports a dead peer only when asked: each call waits for its collective
 * on the host, asking, and gives up (aborting the communicator) once
 * timeout_s has passed. NVLink multicast is NCCL's to decide from the
 * environment (NCCL_NVLS_ENABLE), which flame leaves as it finds it. */
#ifndef FLAME_COMM_NCCL_H
#define FLAME_COMM_NCCL_H

#include <stddef.h>

#include "comm_backend.h"
#include "kv_store.h"

/* rank 0 makes NCCL's unique id and sets it in the store; the others wait
 * for it. The engine's state for nccl_comm_backend, or NULL with err. */
void *nccl_comm_open(kv_client *store, int rank, int world, double init_timeout_s, double timeout_s, char *err,
                     size_t err_len);
extern const comm_backend nccl_comm_backend;

#endif
