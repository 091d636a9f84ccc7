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
    void (*close)(void *impl);
} comm_backend;

#endif
