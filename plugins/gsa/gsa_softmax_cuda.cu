/* The softmax over the slots on the GPU: the math of gsa_softmax_cpu.c,
 *     p = exp(x − max x) / Σ exp(x − max x),   dx = p ⊙ (dp − Σ p·dp),
 * over rows of M values (a head of a token), fp32 in registers: the first
 * pass's logits are large, so the maximum is subtracted. x and dx are bf16 in
 * memory, p and dp fp32 (the backward subtracts nearly equal values).
 *
 * Memory bound, each row read once: a group of LANES lanes of one warp holds
 * a row in registers, lane l chunk s at column (LANES·s + l)·W, so that every
 * access of the group is contiguous (W = ACT_VEC, 16 bytes, where
 * vectorizable). LANES is a power of two up to 32, the fewest covering M:
 * fla's M = 64 takes 8 lanes, four rows to a warp, so small rows keep as many
 * bytes in flight as wide ones. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gsa_cuda.h"

/* the most values of a row that one lane holds */
#define MAX_LANE_VALUES (GSA_SOFTMAX_CUDA_MAX_M / 32)

/* sum and max over a group of LANES neighbouring lanes; every lane of the
 * warp calls them (no early exit), so the full mask holds */
template <int LANES> static __device__ __forceinline__ float group_sum(float v)
{
#pragma unroll
    for (int offset = LANES / 2; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

template <int LANES> static __device__ __forceinline__ float group_max(float v)
{
#pragma unroll
    for (int offset = LANES / 2; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* A group's row: its index, the lane within the group, whether the row
 * exists (a block's last groups may have none), and the column of chunk s */
template <int W, int LANES> struct group_row {
    int row, lane;
    bool live;
    __device__ group_row(int rows)
        : row(blockIdx.x * (CUDA_BLOCK / LANES) + threadIdx.x / LANES),
          lane(threadIdx.x % LANES), live(row < rows)
    {
    }
    __device__ int column(int s) const { return (LANES * s + lane) * W; }
    __device__ bool holds(int s, int M) const { return live && column(s) < M; }
};

template <int W, int LANES, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK)
    softmax_forward(float *p, const act_t *x, int rows, int M)
{
    await_inputs();
    group_row<W, LANES> g(rows);
    size_t at = (size_t)g.row * M;
    float v[CHUNKS][W], max = -INFINITY, sum = 0.0f;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
        if (g.holds(s, M)) {
            load_floats<W>(v[s], x + at + g.column(s));
#pragma unroll
            for (int k = 0; k < W; k++)
                max = fmaxf(max, v[s][k]);
        }
    max = group_max<LANES>(max);
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++) {
            v[s][k] = g.holds(s, M) ? expf(v[s][k] - max) : 0.0f;
            sum += v[s][k];
        }
    float inv = 1.0f / group_sum<LANES>(sum);
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
        if (g.holds(s, M)) {
#pragma unroll
            for (int k = 0; k < W; k++)
                v[s][k] *= inv;
            store_floats<W>(p + at + g.column(s), v[s]);
        }
}

template <int W, int LANES, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK)
    softmax_backward(act_t *dx, const float *dp, const float *p, int rows, int M)
{
    await_inputs();
    group_row<W, LANES> g(rows);
    size_t at = (size_t)g.row * M;
    float pv[CHUNKS][W], dv[CHUNKS][W], dot = 0.0f;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
        if (g.holds(s, M)) {
            load_floats<W>(pv[s], p + at + g.column(s));
            load_floats<W>(dv[s], dp + at + g.column(s));
#pragma unroll
            for (int k = 0; k < W; k++)
                dot += pv[s][k] * dv[s][k];
        }
    dot = group_sum<LANES>(dot);
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
        if (g.holds(s, M)) {
#pragma unroll
            for (int k = 0; k < W; k++)
                dv[s][k] = pv[s][k] * (dv[s][k] - dot);
            store_floats<W>(dx + at + g.column(s), dv[s]);
        }
}

/* launch.run<W, LANES, CHUNKS>() for the fewest lanes, then chunks (powers of
 * two), whose LANES·CHUNKS·W values cover M */
template <int W, int LANES = 1, int CHUNKS = 1, typename Launch>
static void launch_for_row(int M, const Launch &launch)
{
    if constexpr (LANES < 32) {
        if (LANES * W < M)
            return launch_for_row<W, 2 * LANES, 1>(M, launch);
    } else if constexpr (W * CHUNKS < MAX_LANE_VALUES) {
        if (32 * W * CHUNKS < M)
            return launch_for_row<W, 32, 2 * CHUNKS>(M, launch);
    }
    unsigned blocks = (unsigned)((launch.rows + CUDA_BLOCK / LANES - 1) / (CUDA_BLOCK / LANES));
    launch.template run<W, LANES, CHUNKS>(blocks);
}

struct forward_launch {
    float *p;
    const act_t *x;
    int rows, M;
    template <int W, int LANES, int CHUNKS> void run(unsigned blocks) const
    {
        launch_kernel(softmax_forward<W, LANES, CHUNKS>, blocks, CUDA_BLOCK, 0, p, x, rows, M);
    }
};

struct backward_launch {
    act_t *dx;
    const float *dp, *p;
    int rows, M;
    template <int W, int LANES, int CHUNKS> void run(unsigned blocks) const
    {
        launch_kernel(softmax_backward<W, LANES, CHUNKS>, blocks, CUDA_BLOCK, 0, dx, dp, p, rows, M);
    }
};

template <typename Launch> static void launch_rows(bool vec, const Launch &launch)
{
    if (launch.M > GSA_SOFTMAX_CUDA_MAX_M) {
        fprintf(stderr, "gsa softmax: rows of %d slots; the CUDA kernels take at most %d\n",
                launch.M, GSA_SOFTMAX_CUDA_MAX_M);
        exit(1);
    }
    if (vec)
        launch_for_row<ACT_VEC>(launch.M, launch);
    else
        launch_for_row<1>(launch.M, launch);
}

/* ACT_VEC values at a time: bf16 rows 16-byte aligned, fp32 ones 32 */
template <typename... F> static bool floats_aligned(F... ptrs)
{
    return ((reinterpret_cast<uintptr_t>(ptrs) % (ACT_VEC * sizeof(float)) == 0) && ...);
}

void gsa_softmax_forward_cuda(float *p, const void *x, int rows, int M)
{
    if (rows <= 0 || M <= 0)
        return;
    launch_rows(vectorizable(M, x) && floats_aligned(p),
                forward_launch{p, static_cast<const act_t *>(x), rows, M});
}

void gsa_softmax_backward_cuda(void *dx, const float *dp, const float *p, int rows, int M)
{
    if (rows <= 0 || M <= 0)
        return;
    launch_rows(vectorizable(M, dx) && floats_aligned(dp, p),
                backward_launch{static_cast<act_t *>(dx), dp, p, rows, M});
}
