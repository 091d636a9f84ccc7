/* What an engine of collectives gives comm.c (comm_gloo.cc on the CPU,
 * comm_nccl.c on the GPU): its state behind a void pointer and the
 * collectives over it, each returning 0, or -1 with one line in err. */
#ifndef FLAME_COMM_BACKEND_H
#define FLAME_COMM_BACKEND_H

#include <stddef.h>

typedef struct comm_backend {
    int (*sum_floats)(void *impl, float *x, size_t n, char *err, size_t err_len);
    int (*sum_doubles)(void *impl, double *x, size_t n, char *err, size_t err_len);
    int (*broadcast)(void *impl, void *bytes, size_t n, int root, char *err, size_t err_len);
    int (*barrier)(void *impl, char *err, size_t err_len);
    /* comm.h's comm_reduce_start, comm_reduce_wait (NULL: reduce_start
     * returns with the sums done) and comm_all_gather */
    int (*reduce_start)(void *impl, float *x, size_t lo, size_t hi, size_t shard, char *err, size_t err_len);
    int (*reduce_wait)(void *impl, char *err, size_t err_len);
    int (*all_gather)(void *impl, void *x, size_t shard_bytes, char *err, size_t err_len);
    void (*close)(void *impl);
} comm_backend;

#endif
