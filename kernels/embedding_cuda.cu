/* Token embedding: a row lookup (bf16 table to bf16 activations), and its
 * backward, a scatter-add of the bf16 gradient into the fp32 table gradient.
 * Rows move ACT_VEC values per access when vectorizable (cuda_launch.cuh).
 * The backward adds with atomics: a token repeated in the batch adds its
 * gradients into one row in whatever order the threads run, so that row's
 * sums can differ in the last bits from run to run (rows of tokens seen once
 * are exact). */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

/* i runs over accesses of W values; C is a multiple of W */
template <int W>
static __global__ void gather_rows(act_t *out, const int32_t *tokens, const act_t *table,
                                   size_t total, int C)
{
    await_inputs();
    int per_row = C / W;
    GRID_STRIDE_LOOP(i, total / W) {
        size_t row = i / per_row, column = i % per_row * W;
        *reinterpret_cast<packed<act_t, W> *>(out + row * C + column) =
            *reinterpret_cast<const packed<act_t, W> *>(table + (size_t)tokens[row] * C + column);
    }
}

/* dst[0, W) += d atomically: four floats an atomic on Hopper (dst is then
 * 16-byte aligned: W is ACT_VEC), one elsewhere */
template <int W> static __device__ __forceinline__ void add_floats(float *dst, const float (&d)[W])
{
#if __CUDA_ARCH__ >= 900
    constexpr int PER_ATOMIC = W % 4 == 0 ? 4 : 1;
#else
    constexpr int PER_ATOMIC = 1;
#endif
#pragma unroll
    for (int k = 0; k < W; k += PER_ATOMIC)
        if constexpr (PER_ATOMIC == 4)
            atomicAdd(reinterpret_cast<float4 *>(dst + k), make_float4(d[k], d[k + 1], d[k + 2], d[k + 3]));
        else
            atomicAdd(dst + k, d[k]);
}

template <int W>
static __global__ void scatter_add_rows(float *dtable, const act_t *dout, const int32_t *tokens,
                                        size_t total, int C)
{
    await_inputs();
    int per_row = C / W;
    GRID_STRIDE_LOOP(i, total / W) {
        size_t row = i / per_row, column = i % per_row * W;
        float d[W];
        load_floats<W>(d, dout + row * C + column);
        float *dst = dtable + (size_t)tokens[row] * C + column;
        add_floats<W>(dst, d);
    }
}

void embedding_forward_cuda(void *out, const int32_t *tokens, const void *table, int n, int C)
{
    size_t total = (size_t)n * C;
    if (total == 0)
        return;
    LAUNCH_VECTORIZED(gather_rows, vectorizable(C, out, table), total, (act_t *)out, tokens,
                      (const act_t *)table, total, C);
}

void embedding_backward_cuda(float *dtable, const void *dout, const int32_t *tokens, int n, int C)
{
    size_t total = (size_t)n * C;
    if (total == 0)
        return;
    LAUNCH_VECTORIZED(scatter_add_rows, vectorizable(C, dout), total, dtable,
                      (const act_t *)dout, tokens, total, C);
}
