/* Token embedding: a row lookup, and its backward, a scatter-add.
 * The backward adds with atomics: a token repeated in the batch adds its
 * gradients into one row in whatever order the threads run, so that row's
 * sums can differ in the last bits from run to run (rows of tokens seen once
 * are exact). */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

static __global__ void gather_rows(float *out, const int32_t *tokens, const float *table,
                                   size_t total, int C)
{
    GRID_STRIDE_LOOP(i, total)
        out[i] = table[(size_t)tokens[i / C] * C + i % C];
}

static __global__ void scatter_add_rows(float *dtable, const float *dout, const int32_t *tokens,
                                        size_t total, int C)
{
    GRID_STRIDE_LOOP(i, total)
        atomicAdd(&dtable[(size_t)tokens[i / C] * C + i % C], dout[i]);
}

void embedding_forward_cuda(float *out, const int32_t *tokens, const float *table,
                            int n, int C)
{
    size_t total = (size_t)n * C;
    if (total == 0)
        return;
    gather_rows<<<cuda_grid(total), CUDA_BLOCK>>>(out, tokens, table, total, C);
    CUDA_CHECK_LAUNCH();
}

void embedding_backward_cuda(float *dtable, const float *dout, const int32_t *tokens,
                             int n, int C)
{
    size_t total = (size_t)n * C;
    if (total == 0)
        return;
    scatter_add_rows<<<cuda_grid(total), CUDA_BLOCK>>>(dtable, dout, tokens, total, C);
    CUDA_CHECK_LAUNCH();
}
