/* Gloo's collectives (comm_gloo.cc), over the rendezvous store: the engine
 * comm.c takes for a CPU run of several ranks. */
#ifndef FLAME_COMM_GLOO_H
#define FLAME_COMM_GLOO_H

#include <stddef.h>

#include "comm_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "kv_store.h" /* a C header: its functions have C linkage */

/* Connects rank to every peer (a full mesh of TCP pairs), their addresses
 * exchanged through store; host is the address peers reach this rank at.
 * The engine's state for gloo_comm_backend, or NULL with a line in err. */
void *gloo_comm_open(kv_client *store, int rank, int world, const char *host, double init_timeout_s,
                     double timeout_s, char *err, size_t err_len);
extern const comm_backend gloo_comm_backend;

#ifdef __cplusplus
}
#endif
#endif
