/* RMSNorm on bf16 activations: y = x · rstd · w per row of C, rstd =
 * 1/sqrt(mean(x²) + eps) kept in fp32 for the backward. With g = dy ⊙ w and
 * rstd = r:
 *   dx_j = r·g_j − x_j · r³ · (Σ_k g_k x_k) / C   (written or added into the bf16 dx)
 *   dw_j = Σ_rows dy_j · x_j · r                   (added into the fp32 dw)
 * One warp per row for the row sums, ACT_VEC values per access when the rows
 * are vectorizable (cuda_launch.cuh); dw through the deterministic column
 * sums of cuda_reduce.cuh. */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

#define ROWS_PER_BLOCK (CUDA_BLOCK / 32)

static unsigned row_blocks(int n) { return (unsigned)((n + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

/* Lane l of the warp takes values [j, j + W) for j = l·W, l·W + 32·W, … */
template <int W>
static __global__ void rmsnorm_rows(act_t *out, float *rstd, const act_t *x, const act_t *weight,
                                    int n, int C, float eps)
{
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

template <int W, bool ADD>
static __global__ void rmsnorm_dx_rows(act_t *dx, const act_t *dout, const act_t *x,
                                       const act_t *weight, const float *rstd, int n, int C)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n)
        return;
    size_t at = (size_t)row * C;
    float dot = 0.0f; /* Σ_k (dy_k w_k) x_k */
    for (int j = lane * W; j < C; j += 32 * W) {
        float dy[W], w[W], v[W];
        load_floats<W>(dy, dout + at + j);
        load_floats<W>(w, weight + j);
        load_floats<W>(v, x + at + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            dot += dy[k] * w[k] * v[k];
    }
    float r = rstd[row];
    float c = warp_sum(dot) * r * r * r / C;
    for (int j = lane * W; j < C; j += 32 * W) {
        float dy[W], w[W], v[W], acc[W] = {};
        load_floats<W>(dy, dout + at + j);
        load_floats<W>(w, weight + j);
        load_floats<W>(v, x + at + j);
        if (ADD)
            load_floats<W>(acc, dx + at + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            acc[k] += r * dy[k] * w[k] - v[k] * c;
        store_floats<W>(dx + at + j, acc);
    }
}

/* dw's terms of row i, columns [j, j + W) */
struct rmsnorm_dw_term {
    const act_t *dout, *x;
    const float *rstd;
    int C;
    template <int W> __device__ void add(float (&acc)[W], int i, int j) const
    {
        size_t at = (size_t)i * C + j;
        float dy[W], v[W], r = rstd[i];
        load_floats<W>(dy, dout + at);
        load_floats<W>(v, x + at);
#pragma unroll
        for (int k = 0; k < W; k++)
            acc[k] += dy[k] * v[k] * r;
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
        rmsnorm_rows<ACT_VEC><<<row_blocks(n), CUDA_BLOCK>>>(y, rstd, xa, w, n, C, eps);
    else
        rmsnorm_rows<1><<<row_blocks(n), CUDA_BLOCK>>>(y, rstd, xa, w, n, C, eps);
    CUDA_CHECK_LAUNCH();
}

template <int W>
static void launch_dx_rows(act_t *dx, flame_grad_mode mode, const act_t *dy, const act_t *x,
                           const act_t *w, const float *rstd, int n, int C)
{
    if (mode == FLAME_GRAD_ADD)
        rmsnorm_dx_rows<W, true><<<row_blocks(n), CUDA_BLOCK>>>(dx, dy, x, w, rstd, n, C);
    else
        rmsnorm_dx_rows<W, false><<<row_blocks(n), CUDA_BLOCK>>>(dx, dy, x, w, rstd, n, C);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward_cuda(void *dx, flame_grad_mode dx_mode, float *dweight, const void *dout,
                           const void *x, const void *weight, const float *rstd, int n, int C)
{
    if (n <= 0)
        return;
    const act_t *dy = (const act_t *)dout, *xa = (const act_t *)x, *w = (const act_t *)weight;
    /* dw first: it reads dout, which dx may be (each dx thread reads its
     * values before it writes them) */
    if (dweight)
        column_sum_add(dweight, n, C, rmsnorm_dw_term{dy, xa, rstd, C}, vectorizable(C, dout, x));
    if (dx && vectorizable(C, dx, dout, x, weight))
        launch_dx_rows<ACT_VEC>((act_t *)dx, dx_mode, dy, xa, w, rstd, n, C);
    else if (dx)
        launch_dx_rows<1>((act_t *)dx, dx_mode, dy, xa, w, rstd, n, C);
}
