/* A row in one warp's registers, for the memory-bound row kernels that read
 * each row once (RMSNorm's backward, GLA's gated norm): lane l holds CHUNKS
 * chunks of W neighbouring values, chunk s at column (32·s + l)·W, so that
 * each access of the warp is contiguous. Chunks at or past C (a multiple of
 * W) read as zeros and are not stored. Per-column sums over a block's rows
 * (weight gradients) stay in the same registers and leave as one partial row
 * per block, added in an order fixed by the shapes alone. */
#ifndef FLAME_CUDA_ROWS_CUH
#define FLAME_CUDA_ROWS_CUH

#include "cuda_check.h"
#include "cuda_launch.cuh"

#define ROW_WARPS (CUDA_BLOCK / 32)

template <int W, int CHUNKS, typename T>
static __device__ __forceinline__ void load_row(float (&v)[CHUNKS][W], const T *row, int C)
{
    int lane = threadIdx.x % 32;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++) {
        int j = (32 * s + lane) * W;
        if (j < C) {
            load_floats<W>(v[s], row + j);
        } else {
#pragma unroll
            for (int k = 0; k < W; k++)
                v[s][k] = 0.0f;
        }
    }
}

template <int W, int CHUNKS, typename T>
static __device__ __forceinline__ void store_row(T *row, const float (&v)[CHUNKS][W], int C)
{
    int lane = threadIdx.x % 32;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++) {
        int j = (32 * s + lane) * W;
        if (j < C)
            store_floats<W>(row + j, v[s]);
    }
}

/* partial[0, C) = Σ over the block's warps of v, added in warp order: warp t
 * adds the sum of warps 0 … t−1 and passes it on through shared memory (laid
 * out lane by lane, so no two lanes share a bank). Every thread calls it. */
template <int W, int CHUNKS>
static __device__ void write_block_sum(float *partial, float (&v)[CHUNKS][W], int C)
{
    __shared__ float running[CHUNKS * W][32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int t = 0; t < ROW_WARPS; t++) {
        if (warp == t) {
#pragma unroll
            for (int s = 0; s < CHUNKS; s++)
#pragma unroll
                for (int k = 0; k < W; k++) {
                    float &sum = running[s * W + k][lane];
                    if (t > 0)
                        v[s][k] += sum;
                    sum = v[s][k];
                }
        }
        __syncthreads();
    }
    if (warp == ROW_WARPS - 1)
        store_row(partial, v, C);
}

/* launch.run<W, CHUNKS>() for the fewest CHUNKS (a power of two) whose
 * 32·W·CHUNKS values cover C, at most MAX_LANE_VALUES values a lane (the
 * caller checks C against 32·MAX_LANE_VALUES) */
template <int MAX_LANE_VALUES, int W, int CHUNKS = 1, typename Launch>
static void launch_for_width(int C, const Launch &launch)
{
    if constexpr (W * CHUNKS < MAX_LANE_VALUES) {
        if (32 * W * CHUNKS < C)
            return launch_for_width<MAX_LANE_VALUES, W, 2 * CHUNKS>(C, launch);
    }
    launch.template run<W, CHUNKS>();
}

#endif
