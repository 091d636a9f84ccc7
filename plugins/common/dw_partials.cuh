/* Device memory for a norm's per-block dw partials (summed afterwards in a
 * fixed order, so the result is deterministic), valid until the next call;
 * it grows as needed and is never given back: a plugin cannot use the core's
 * cuda_scratch, since it does not link libflame. Each file that includes this
 * has its own buffer. */
#ifndef FLAME_DW_PARTIALS_CUH
#define FLAME_DW_PARTIALS_CUH

#include <cstddef>

#include "cuda_check.h"

static float *dw_partials(size_t floats)
{
    static float *buffer = NULL;
    static size_t size = 0;
    if (floats > size) {
        /* cudaFree waits for the kernels still using the old buffer */
        CUDA_CHECK(cudaFree(buffer));
        buffer = NULL;
        CUDA_CHECK(cudaMalloc(&buffer, floats * sizeof *buffer));
        size = floats;
    }
    return buffer;
}

#endif
