/* How the CUDA kernels are launched: one block size, and grids for
 * grid-stride loops over n elements. */
#ifndef FLAME_CUDA_LAUNCH_CUH
#define FLAME_CUDA_LAUNCH_CUH

#include <stddef.h>

#define CUDA_BLOCK 256
/* enough blocks to fill any current GPU many times; grid-stride loops do the rest */
#define CUDA_MAX_GRID 65536

static inline unsigned cuda_grid(size_t n)
{
    size_t blocks = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    return (unsigned)(blocks < CUDA_MAX_GRID ? blocks : CUDA_MAX_GRID);
}

/* for (size_t i = ...; i < n; i += ...) over the whole grid */
#define GRID_STRIDE_LOOP(i, n)                                                  \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);     \
         i += (size_t)gridDim.x * blockDim.x)

#endif
