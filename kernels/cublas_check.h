/* Error check for cuBLASLt calls, like CUDA_CHECK: file, line, the library's
 * status string, then exit status 1. */
#ifndef FLAME_CUBLAS_CHECK_H
#define FLAME_CUBLAS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <cublasLt.h>

static inline void cublas_check(cublasStatus_t status, const char *call, const char *file, int line)
{
    if (status == CUBLAS_STATUS_SUCCESS)
        return;
    fprintf(stderr, "%s:%d: cuBLASLt error: %s (in %s)\n", file, line,
            cublasLtGetStatusString(status), call);
    exit(1);
}

#define CUBLAS_CHECK(call) cublas_check((call), #call, __FILE__, __LINE__)

#endif
