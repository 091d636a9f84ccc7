/* RMSNorm on bf16 activations: y = x · rstd · w per row of C, rstd =
 * 1/sqrt(mean(x²) + eps) kept in fp32 for the backward. With g = dy ⊙ w and
 * rstd = r:
 *   dx_j = r·g_j − x_j · r³ · (Σ_k g_k x_k) / C   (written or added into the bf16 dx)
 *   dw_j = Σ_rows dy_j · x_j · r                   (added into the fp32 dw)
 * One warp per row for the row sums, ACT_VEC values per access when the rows
 * are vectorizable (cuda_launch.cuh). The backward reads each row's dy and x
 * in one kernel for dx and dw: a lane keeps the dw terms of its columns in
 * registers (cuda_rows.cuh's layout), a block's warps sum theirs into one
 * partial row, and the blocks' partials are added in order. Rows wider than
 * FUSED_MAX_C (more dw terms than a lane holds) take dx and dw in two passes,
 * dw through the column sums of cuda_reduce.cuh. Both orders are fixed by
 * the shapes, so results are the same run to run. */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"
#include "cuda_rows.cuh"

#define ROWS_PER_BLOCK (CUDA_BLOCK / 32)
/* the widest rows of the one-kernel backward, and its rows per block: few,
 * so that there are many blocks, enough that the partials stay small beside
 * the rows (a thirty-second of them) */
#define FUSED_MAX_C 2048
#define FUSED_ROWS (4 * ROW_WARPS)

static unsigned row_blocks(int n) { return (unsigned)((n + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

/* Lane l of the warp takes values [j, j + W) for j = l·W, l·W + 32·W, … */
template <int W>
static __global__ void rmsnorm_rows(act_t *out, float *rstd, const act_t *x, const act_t *weight,
                                    int n, int C, float eps)
{
    await_inputs();
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n)
        return; /* the whole warp: the sums below are per warp */
    const act_t *xi = x + (size_t)row * C;
    act_t *yi = out + (size_t)row * C;
    float ss = 0.0f;
    for (int j = lane * W; j < C; j += 32 * W) {
        float v[W];
        load_floats<W>(v, xi + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            ss += v[k] * v[k];
    }
    float r = 1.0f / sqrtf(warp_sum(ss) / C + eps);
    if (lane == 0)
        rstd[row] = r;
    for (int j = lane * W; j < C; j += 32 * W) {
        float v[W], w[W];
        load_floats<W>(v, xi + j);
        load_floats<W>(w, weight + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] = v[k] * r * w[k];
        store_floats<W>(yi + j, v);
    }
}

/* W neighbouring values of a row, at column j: dy, w and x */
template <int W> struct grad_values {
    float dy[W], w[W], x[W];
    __device__ grad_values(const act_t *dout, const act_t *weight, const act_t *x_row, int j)
    {
        load_floats<W>(dy, dout + j);
        load_floats<W>(w, weight + j);
        load_floats<W>(x, x_row + j);
    }
    /* their part of Σ_k (dy_k w_k) x_k */
    __device__ float dot() const
    {
        float d = 0.0f;
#pragma unroll
        for (int k = 0; k < W; k++)
            d += dy[k] * w[k] * x[k];
        return d;
    }
    /* acc += their dx, r·dy·w − x·c with c = r³·(the row's dot)/C */
    __device__ void add_dx(float (&acc)[W], float r, float c) const
    {
#pragma unroll
        for (int k = 0; k < W; k++)
            acc[k] += r * dy[k] * w[k] - x[k] * c;
    }
};

template <int W, bool ADD>
static __global__ void rmsnorm_dx_rows(act_t *dx, const act_t *dout, const act_t *x,
                                       const act_t *weight, const float *rstd, int n, int C)
{
    await_inputs();
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n)
        return;
    size_t at = (size_t)row * C;
    float dot = 0.0f;
    for (int j = lane * W; j < C; j += 32 * W)
        dot += grad_values<W>(dout + at, weight, x + at, j).dot();
    float r = rstd[row];
    float c = warp_sum(dot) * r * r * r / C;
    for (int j = lane * W; j < C; j += 32 * W) {
        grad_values<W> g(dout + at, weight, x + at, j);
        float acc[W] = {};
        if (ADD)
            load_floats<W>(acc, dx + at + j);
        g.add_dx(acc, r, c);
        store_floats<W>(dx + at + j, acc);
    }
}

/* dx and dw from one read of each row: block b takes rows [b·FUSED_ROWS,
 * (b+1)·FUSED_ROWS), warp t of them rows t, t + ROW_WARPS, … in order; a
 * lane's columns are those of load_row's layout, their dw terms kept in dw;
 * the block's sum goes to dw_partial[b·C, (b+1)·C) unless it is NULL, dx is
 * written or added unless it is NULL (it may be dout: each lane reads its
 * values before it writes them). */
/* Up to 32 dw terms a lane (C ≤ 1024 vectorized), 4 blocks an SM: the loads
 * of 32 warps keep the memory busy. */
template <int W, int CHUNKS, bool ADD>
static __global__ void __launch_bounds__(CUDA_BLOCK, W * CHUNKS <= 32 ? 4 : 1)
    rmsnorm_backward_rows(act_t *dx, float *dw_partial, const act_t *dout, const act_t *x,
                          const act_t *weight, const float *rstd, int n, int C)
{
    await_inputs();
    float dw[CHUNKS][W] = {};
    int lane = threadIdx.x % 32;
    int first = blockIdx.x * FUSED_ROWS, end = min(n, first + FUSED_ROWS);
    /* no early return: every warp takes part in write_block_sum */
    for (int row = first + threadIdx.x / 32; row < end; row += ROW_WARPS) {
        size_t at = (size_t)row * C;
        float dot = 0.0f, r = rstd[row];
#pragma unroll
        for (int s = 0; s < CHUNKS; s++) {
            int j = (32 * s + lane) * W;
            if (j < C)
                dot += grad_values<W>(dout + at, weight, x + at, j).dot();
        }
        float c = warp_sum(dot) * r * r * r / C;
#pragma unroll
        for (int s = 0; s < CHUNKS; s++) {
            int j = (32 * s + lane) * W;
            if (j < C) { /* the row again, from the caches */
                grad_values<W> g(dout + at, weight, x + at, j);
#pragma unroll
                for (int k = 0; k < W; k++)
                    dw[s][k] += g.dy[k] * g.x[k] * r;
                if (!dx)
                    continue;
                float acc[W] = {};
                if (ADD)
                    load_floats<W>(acc, dx + at + j);
                g.add_dx(acc, r, c);
                store_floats<W>(dx + at + j, acc);
            }
        }
    }
    if (dw_partial)
        write_block_sum(dw_partial + (size_t)blockIdx.x * C, dw, C);
}

/* dw's terms of row i, columns [j, j + W) */
struct rmsnorm_dw_term {
    static constexpr int OUTPUTS = 1;
    const act_t *dout, *x;
    const float *rstd;
    int C;
    template <int W> __device__ void add(float (&acc)[1][W], int i, int j) const
    {
        size_t at = (size_t)i * C + j;
        float dy[W], v[W], r = rstd[i];
        load_floats<W>(dy, dout + at);
        load_floats<W>(v, x + at);
#pragma unroll
        for (int k = 0; k < W; k++)
            acc[0][k] += dy[k] * v[k] * r;
    }
};

void rmsnorm_forward_cuda(void *out, float *rstd, const void *x, const void *weight, int n, int C,
                          float eps)
{
    if (n <= 0)
        return;
    act_t *y = (act_t *)out;
    const act_t *xa = (const act_t *)x, *w = (const act_t *)weight;
    if (vectorizable(C, out, x, weight))
        launch_kernel(rmsnorm_rows<ACT_VEC>, row_blocks(n), CUDA_BLOCK, 0, y, rstd, xa, w, n, C,
                      eps);
    else
        launch_kernel(rmsnorm_rows<1>, row_blocks(n), CUDA_BLOCK, 0, y, rstd, xa, w, n, C, eps);
}

template <int W>
static void launch_dx_rows(act_t *dx, flame_grad_mode mode, const act_t *dy, const act_t *x,
                           const act_t *w, const float *rstd, int n, int C)
{
    if (mode == FLAME_GRAD_ADD)
        launch_kernel(rmsnorm_dx_rows<W, true>, row_blocks(n), CUDA_BLOCK, 0, dx, dy, x, w, rstd, n,
                      C);
    else
        launch_kernel(rmsnorm_dx_rows<W, false>, row_blocks(n), CUDA_BLOCK, 0, dx, dy, x, w, rstd,
                      n, C);
}

struct backward_launch {
    act_t *dx;
    bool add;
    float *dw_partial;
    const act_t *dy, *x, *w;
    const float *rstd;
    int n, C;
    unsigned blocks;
    template <int W, int CHUNKS> void run() const
    {
        if (add)
            launch_kernel(rmsnorm_backward_rows<W, CHUNKS, true>, blocks, CUDA_BLOCK, 0, dx,
                          dw_partial, dy, x, w, rstd, n, C);
        else
            launch_kernel(rmsnorm_backward_rows<W, CHUNKS, false>, blocks, CUDA_BLOCK, 0, dx,
                          dw_partial, dy, x, w, rstd, n, C);
    }
};

/* rows up to FUSED_MAX_C: one kernel for dx and the blocks' dw partials,
 * then the partials added in order */
static void backward_fused(act_t *dx, flame_grad_mode dx_mode, float *dweight, const act_t *dy,
                           const act_t *x, const act_t *w, const float *rstd, int n, int C, bool vec)
{
    unsigned blocks = (unsigned)((n + FUSED_ROWS - 1) / FUSED_ROWS);
    /* at C a multiple of ACT_VEC, each block's partial row is 16-byte aligned */
    float *partial = dweight ? (float *)cuda_scratch((size_t)blocks * C * sizeof(float)) : NULL;
    backward_launch launch{dx, dx_mode == FLAME_GRAD_ADD, partial, dy, x, w, rstd, n, C, blocks};
    if (vec)
        launch_for_width<FUSED_MAX_C / 32, ACT_VEC>(C, launch);
    else
        launch_for_width<FUSED_MAX_C / 32, 1>(C, launch);
    if (dweight) {
        launch_kernel(add_column_chunks_grouped, (C + 31) / 32, 32 * CHUNK_GROUPS, 0, dweight,
                      partial, (int)blocks, C);
    }
}

void rmsnorm_backward_cuda(void *dx, flame_grad_mode dx_mode, float *dweight, const void *dout,
                           const void *x, const void *weight, const float *rstd, int n, int C)
{
    if (n <= 0 || C <= 0 || (!dx && !dweight))
        return;
    const act_t *dy = (const act_t *)dout, *xa = (const act_t *)x, *w = (const act_t *)weight;
    bool vec = vectorizable(C, dx, dout, x, weight);
    if (C <= FUSED_MAX_C)
        return backward_fused((act_t *)dx, dx_mode, dweight, dy, xa, w, rstd, n, C, vec);
    /* dw first: it reads dout, which dx may be (each dx thread reads its
     * values before it writes them) */
    if (dweight)
        column_sums_add(&dweight, n, C, rmsnorm_dw_term{dy, xa, rstd, C}, vectorizable(C, dout, x));
    if (dx && vec)
        launch_dx_rows<ACT_VEC>((act_t *)dx, dx_mode, dy, xa, w, rstd, n, C);
    else if (dx)
        launch_dx_rows<1>((act_t *)dx, dx_mode, dy, xa, w, rstd, n, C);
}
