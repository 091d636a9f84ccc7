/* Error checks for the CUDA backend. A failed CUDA call cannot be undone in
 * the middle of a training step, so it prints the call's file, line and the
 * runtime's error string, then exits with status 1 (flame's runtime failure). */
#ifndef FLAME_CUDA_CHECK_H
#define FLAME_CUDA_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

static inline void cuda_check(cudaError_t err, const char *call, const char *file, int line)
{
    if (err == cudaSuccess)
        return;
    fprintf(stderr, "%s:%d: CUDA error: %s (in %s)\n", file, line, cudaGetErrorString(err), call);
    exit(1);
}

#define CUDA_CHECK(call) cuda_check((call), #call, __FILE__, __LINE__)

#endif
