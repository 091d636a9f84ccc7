/* Gloo's collectives behind a C interface (comm_gloo.cc), over the
 * rendezvous store: what comm.c calls for a CPU run of several ranks. */
#ifndef FLAME_COMM_GLOO_H
#define FLAME_COMM_GLOO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kv_store.h" /* a C header: its functions have C linkage */

typedef struct gloo_comm gloo_comm;

/* Connects rank to every peer (a full mesh of TCP pairs), their addresses
 * exchanged through store; host is the address peers reach this rank at.
 * NULL with a line in err. */
gloo_comm *gloo_comm_open(kv_client *store, int rank, int world, const char *host, double init_timeout_s,
                          double timeout_s, char *err, size_t err_len);
int gloo_comm_sum_floats(gloo_comm *g, float *x, size_t n, char *err, size_t err_len);
int gloo_comm_sum_doubles(gloo_comm *g, double *x, size_t n, char *err, size_t err_len);
int gloo_comm_broadcast(gloo_comm *g, void *bytes, size_t n, int root, char *err, size_t err_len);
int gloo_comm_barrier(gloo_comm *g, char *err, size_t err_len);
void gloo_comm_close(gloo_comm *g);

#ifdef __cplusplus
}
#endif
#endif
