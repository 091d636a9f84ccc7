/* A row (or a group of one) held in a block's registers, for the memory-bound
 * row norms of the plugins (GSA's output norm, Mamba2's gated norm): thread t
 * holds chunk s of W values (W = ACT_VEC where 16-byte accesses fit) at column
 * (CUDA_BLOCK·s + t)·W, so each access of a warp is contiguous and every value
 * is read once. */
#ifndef FLAME_ROW_REGISTERS_CUH
#define FLAME_ROW_REGISTERS_CUH

#include "cuda_launch.cuh"
#include "cuda_math.cuh"

/* the columns of the calling thread, chunk s at column (CUDA_BLOCK·s + t)·W */
template <int W> static __device__ __forceinline__ int column(int s)
{
    return (CUDA_BLOCK * s + (int)threadIdx.x) * W;
}

/* v = row's values at the thread's columns (1 at or past C, or everywhere
 * when row is NULL, an absent weight: such values are masked out of the sums
 * and never stored) */
template <int W, int CHUNKS, typename T>
static __device__ __forceinline__ void load_columns(float (&v)[CHUNKS][W], const T *row, int C)
{
#pragma unroll
    for (int s = 0; s < CHUNKS; s++) {
        if (row && column<W>(s) < C) {
            load_floats<W>(v[s], row + column<W>(s));
        } else {
#pragma unroll
            for (int k = 0; k < W; k++)
                v[s][k] = 1.0f;
        }
    }
}

/* row's values at the thread's columns below C = v */
template <int W, int CHUNKS, typename T>
static __device__ __forceinline__ void store_columns(T *row, const float (&v)[CHUNKS][W], int C)
{
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
        if (column<W>(s) < C)
            store_floats<W>(row + column<W>(s), v[s]);
}

#endif
