/* Reductions shared by the CUDA kernels. Each one adds its terms in an order
 * fixed by the shapes and the block size alone, so results are the same run
 * to run (no atomics, no dependence on scheduling). */
#ifndef FLAME_CUDA_REDUCE_CUH
#define FLAME_CUDA_REDUCE_CUH

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"

template <typename T> __device__ T warp_sum(T v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

template <typename T> __device__ T warp_max(T v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* Sum (or max) over the block, returned to every thread. blockDim.x is a
 * multiple of 32. Every thread of the block must call it. The first barrier
 * lets a block reduce twice in a row without overwriting partials still read. */
template <typename T, bool IS_MAX> __device__ T block_reduce(T v, T identity)
{
    __shared__ T partial[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = IS_MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0)
        partial[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? partial[lane] : identity;
    return IS_MAX ? warp_max(v) : warp_sum(v);
}

template <typename T> __device__ T block_sum(T v) { return block_reduce<T, false>(v, T(0)); }
__device__ inline float block_max(float v) { return block_reduce<float, true>(v, -INFINITY); }

/* ---- column sums: dst[o][j] += Σ_i term_o(i, j) over n rows of C columns,
 * for the Term::OUTPUTS sums a term makes from one read of its rows ----
 * Rows are cut into chunks of a length fixed by n; one pass writes each
 * chunk's column sums, a second adds the chunks in order. In the first, a
 * block is COLUMN_ROW_LANES lanes of rows by 32 threads of columns: thread
 * (r, c) owns columns (32·blockIdx.x + c)·W.. and adds the chunk's rows r,
 * r + COLUMN_ROW_LANES, … in order, then the row lanes' sums are added in
 * order (a warp reads 32·W neighbouring values of a row; the chunks of 256
 * rows leave the second pass an eighth of the partials that chunks of 32 did).
 * Term::add(acc, i, j) adds term_o(i, j + k) into acc[o][k] for k < W (W =
 * ACT_VEC needs C a multiple of it and the term's arrays aligned to it: the
 * caller says whether they are, vec); in the second
 * pass, CHUNK_GROUPS threads per column, group g adding chunks g,
 * g + CHUNK_GROUPS, … in order, then the groups' sums added in order (the
 * GLA plugin's gated norm uses this pass for its own per-block partials). */

#define COLUMN_MAX_CHUNKS 65535 /* gridDim.y limit */
#define COLUMN_CHUNK_ROWS 256
#define COLUMN_ROW_LANES (CUDA_BLOCK / 32)
#define CHUNK_GROUPS 32

/* partial[o][chunk][C] */
template <int W, typename Term>
static __global__ void column_chunk_sums_vec(float *partial, int n, int C, int rows, Term term)
{
    await_inputs();
    constexpr int OUT = Term::OUTPUTS;
    __shared__ float lane_sums[COLUMN_ROW_LANES - 1][OUT][32 * W];
    int c = threadIdx.x % 32, r = threadIdx.x / 32;
    int j = (blockIdx.x * 32 + c) * W;
    int i0 = blockIdx.y * rows, i1 = min(n, i0 + rows);
    float acc[OUT][W] = {};
    if (j < C)
#pragma unroll 4
        for (int i = i0 + r; i < i1; i += COLUMN_ROW_LANES)
            term.add(acc, i, j);
    if (r > 0)
#pragma unroll
        for (int o = 0; o < OUT; o++)
#pragma unroll
            for (int k = 0; k < W; k++)
                lane_sums[r - 1][o][c * W + k] = acc[o][k];
    __syncthreads();
    if (r > 0 || j >= C)
        return;
    for (int lane = 0; lane < COLUMN_ROW_LANES - 1; lane++)
#pragma unroll
        for (int o = 0; o < OUT; o++)
#pragma unroll
            for (int k = 0; k < W; k++)
                acc[o][k] += lane_sums[lane][o][c * W + k];
#pragma unroll
    for (int o = 0; o < OUT; o++)
#pragma unroll
        for (int k = 0; k < W; k++)
            partial[((size_t)o * gridDim.y + blockIdx.y) * C + j + k] = acc[o][k];
}

/* blocks of 32 columns × CHUNK_GROUPS groups */
static __global__ void add_column_chunks_grouped(float *dst, const float *partial, int chunks,
                                                 int C)
{
    await_inputs();
    __shared__ float group_sum[CHUNK_GROUPS][32];
    int column = threadIdx.x % 32, group = threadIdx.x / 32;
    int j = blockIdx.x * 32 + column;
    float acc = 0.0f;
    if (j < C) {
#pragma unroll 4
        for (int c = group; c < chunks; c += CHUNK_GROUPS)
            acc += partial[(size_t)c * C + j];
    }
    group_sum[group][column] = acc;
    __syncthreads();
    if (group == 0 && j < C) {
        float total = 0.0f;
        for (int g = 0; g < CHUNK_GROUPS; g++)
            total += group_sum[g][column];
        dst[j] += total;
    }
}

template <int W, typename Term>
static void launch_column_chunk_sums(float *partial, int n, int C, int rows, int chunks, Term term)
{
    dim3 grid((C / W + 31) / 32, chunks);
    launch_kernel(column_chunk_sums_vec<W, Term>, grid, CUDA_BLOCK, 0, partial, n, C, rows, term);
}

/* dst[o][j] += Σ_i term_o(i, j) for o < Term::OUTPUTS */
template <typename Term> void column_sums_add(float *const *dst, int n, int C, Term term, bool vec)
{
    if (n <= 0 || C <= 0)
        return;
    int rows = COLUMN_CHUNK_ROWS;
    if ((n + rows - 1) / rows > COLUMN_MAX_CHUNKS)
        rows = (n + COLUMN_MAX_CHUNKS - 1) / COLUMN_MAX_CHUNKS;
    int chunks = (n + rows - 1) / rows;
    float *partial = (float *)cuda_scratch((size_t)Term::OUTPUTS * chunks * C * sizeof(float));
    if (vec)
        launch_column_chunk_sums<ACT_VEC>(partial, n, C, rows, chunks, term);
    else
        launch_column_chunk_sums<1>(partial, n, C, rows, chunks, term);
    for (int o = 0; o < Term::OUTPUTS; o++)
        launch_kernel(add_column_chunks_grouped, (C + 31) / 32, 32 * CHUNK_GROUPS, 0, dst[o],
                      partial + (size_t)o * chunks * C, chunks, C);
}

#endif
