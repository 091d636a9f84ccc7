/* LayerNorm on bf16 activations (layernorm_cpu.c's formulas): one warp per
 * row for the row sums, ACT_VEC values per access when the rows are
 * vectorizable (cuda_launch.cuh); mean and rstd kept in fp32. The backward
 * takes dw and db as column sums from one read of dy (cuda_reduce.cuh, an
 * order fixed by the shapes) before dx, which may be dout. x and dx are of
 * type X: bf16, or fp32 where they are an fp32 residual stream (the _f32
 * entries, whose dx may also go out rounded to bf16, dx_act); out and dout
 * are bf16 either way. */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"
#include "cuda_rows.cuh"

#define ROWS_PER_BLOCK (CUDA_BLOCK / 32)
/* the widest rows the forward holds in a warp's registers (64 values a
 * lane), reading each once: the loop below reads a row three times and
 * waits on each pass (GPT-2 small's rows ran at 2.9 TB/s) */
#define HELD_MAX_C 2048

static unsigned row_blocks(int n) { return (unsigned)((n + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

/* Lane l of the warp takes values [j, j + W) for j = l·W, l·W + 32·W, … */
template <int W, typename X>
static __global__ void layernorm_rows(act_t *out, float *mean, float *rstd, const X *x, const act_t *weight,
                                      const act_t *bias, int n, int C, float eps)
{
    await_inputs();
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n)
        return; /* the whole warp: the sums below are per warp */
    const X *xi = x + (size_t)row * C;
    act_t *yi = out + (size_t)row * C;
    float sum = 0.0f;
    for (int j = lane * W; j < C; j += 32 * W) {
        float v[W];
        load_floats<W>(v, xi + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            sum += v[k];
    }
    float m = warp_sum(sum) / C, ss = 0.0f; /* the squares about the mean: no cancellation */
    for (int j = lane * W; j < C; j += 32 * W) {
        float v[W];
        load_floats<W>(v, xi + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            ss += (v[k] - m) * (v[k] - m);
    }
    float r = rsqrtf(warp_sum(ss) / C + eps);
    if (lane == 0)
        mean[row] = m, rstd[row] = r;
    for (int j = lane * W; j < C; j += 32 * W) {
        float v[W], w[W], b[W] = {};
        load_floats<W>(v, xi + j);
        load_floats<W>(w, weight + j);
        if (bias)
            load_floats<W>(b, bias + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] = (v[k] - m) * r * w[k] + b[k];
        store_floats<W>(yi + j, v);
    }
}

/* The same for rows up to HELD_MAX_C, held in the warp's registers
 * (cuda_rows.cuh); the sums in the same order */
template <int W, int CHUNKS, typename X>
static __global__ void layernorm_held_rows(act_t *out, float *mean, float *rstd, const X *x, const act_t *weight,
                                           const act_t *bias, int n, int C, float eps)
{
    await_inputs();
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n)
        return; /* the whole warp: the sums below are per warp */
    float v[CHUNKS][W], sum = 0.0f, ss = 0.0f;
    load_row<W, CHUNKS>(v, x + (size_t)row * C, C);
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++)
            sum += v[s][k]; /* the zeros past C add nothing */
    float m = warp_sum(sum) / C;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
        if ((32 * s + lane) * W < C)
#pragma unroll
            for (int k = 0; k < W; k++)
                ss += (v[s][k] - m) * (v[s][k] - m);
    float r = rsqrtf(warp_sum(ss) / C + eps);
    if (lane == 0)
        mean[row] = m, rstd[row] = r;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++) {
        int j = (32 * s + lane) * W;
        if (j >= C)
            continue;
        float w[W], b[W] = {};
        load_floats<W>(w, weight + j);
        if (bias)
            load_floats<W>(b, bias + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[s][k] = (v[s][k] - m) * r * w[k] + b[k];
    }
    store_row<W, CHUNKS>(out + (size_t)row * C, v, C);
}

template <typename X> struct held_launch {
    act_t *y;
    float *mean, *rstd;
    const X *x;
    const act_t *w, *b;
    int n, C;
    float eps;
    template <int W, int CHUNKS> void run() const
    {
        launch_kernel(layernorm_held_rows<W, CHUNKS, X>, row_blocks(n), CUDA_BLOCK, 0, y, mean,
                      rstd, x, w, b, n, C, eps);
    }
};

/* dx_j = r·(g_j − mean(g) − x̂_j·mean(g x̂)), g = dy ⊙ w, written or added */
template <int W, bool ADD, typename X>
static __global__ void layernorm_dx_rows(X *dx, act_t *dx_act, const act_t *dout, const X *x, const act_t *weight,
                                         const float *mean, const float *rstd, int n, int C)
{
    await_inputs();
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n)
        return;
    size_t at = (size_t)row * C;
    float m = mean[row], r = rstd[row], g_sum = 0.0f, gx_sum = 0.0f;
    for (int j = lane * W; j < C; j += 32 * W) {
        float dy[W], w[W], v[W];
        load_floats<W>(dy, dout + at + j);
        load_floats<W>(w, weight + j);
        load_floats<W>(v, x + at + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            g_sum += dy[k] * w[k], gx_sum += dy[k] * w[k] * (v[k] - m) * r;
    }
    float g_mean = warp_sum(g_sum) / C, gx_mean = warp_sum(gx_sum) / C;
    for (int j = lane * W; j < C; j += 32 * W) {
        float dy[W], w[W], v[W], acc[W] = {};
        load_floats<W>(dy, dout + at + j);
        load_floats<W>(w, weight + j);
        load_floats<W>(v, x + at + j);
        if (ADD)
            load_floats<W>(acc, dx + at + j);
#pragma unroll
        for (int k = 0; k < W; k++)
            acc[k] += r * (dy[k] * w[k] - g_mean - (v[k] - m) * r * gx_mean);
        store_floats<W>(dx + at + j, acc);
        if (dx_act)
            store_floats<W>(dx_act + at + j, acc);
    }
}

/* The parameters' gradient terms of row i, columns [j, j + W), from one
 * read of dy (and x): dw's dy·x̂ where DW, then db's dy where DB */
template <typename X, bool DW, bool DB> struct layernorm_param_terms {
    static constexpr int OUTPUTS = DW + DB;
    const act_t *dout;
    const X *x;
    const float *mean, *rstd;
    int C;
    template <int W> __device__ void add(float (&acc)[OUTPUTS][W], int i, int j) const
    {
        size_t at = (size_t)i * C + j;
        float dy[W];
        load_floats<W>(dy, dout + at);
        if (DW) {
            float v[W], m = mean[i], r = rstd[i];
            load_floats<W>(v, x + at);
#pragma unroll
            for (int k = 0; k < W; k++)
                acc[0][k] += dy[k] * (v[k] - m) * r;
        }
        if (DB)
#pragma unroll
            for (int k = 0; k < W; k++)
                acc[OUTPUTS - 1][k] += dy[k];
    }
};

template <bool DW, bool DB, typename X>
static void param_sums(float *dweight, float *dbias, const act_t *dy, const X *x, const float *mean,
                       const float *rstd, int n, int C)
{
    float *dst[2] = {DW ? dweight : dbias, dbias};
    column_sums_add(dst, n, C, layernorm_param_terms<X, DW, DB>{dy, x, mean, rstd, C}, vectorizable(C, dy, x));
}

template <typename X>
static void forward(act_t *y, float *mean, float *rstd, const X *x, const act_t *w, const act_t *b, int n, int C,
                    float eps)
{
    if (n <= 0)
        return;
    held_launch<X> held{y, mean, rstd, x, w, b, n, C, eps};
    if (C <= HELD_MAX_C && vectorizable(C, y, x, w, b))
        return launch_for_width<HELD_MAX_C / 32, ACT_VEC>(C, held);
    if (C <= HELD_MAX_C)
        return launch_for_width<HELD_MAX_C / 32, 1>(C, held);
    if (vectorizable(C, y, x, w, b))
        launch_kernel(layernorm_rows<ACT_VEC, X>, row_blocks(n), CUDA_BLOCK, 0, y, mean, rstd, x, w,
                      b, n, C, eps);
    else
        launch_kernel(layernorm_rows<1, X>, row_blocks(n), CUDA_BLOCK, 0, y, mean, rstd, x, w, b, n,
                      C, eps);
}

template <int W, typename X>
static void launch_dx_rows(X *dx, flame_grad_mode mode, act_t *dx_act, const act_t *dy, const X *x, const act_t *w,
                           const float *mean, const float *rstd, int n, int C)
{
    if (mode == FLAME_GRAD_ADD)
        launch_kernel(layernorm_dx_rows<W, true, X>, row_blocks(n), CUDA_BLOCK, 0, dx, dx_act, dy,
                      x, w, mean, rstd, n, C);
    else
        launch_kernel(layernorm_dx_rows<W, false, X>, row_blocks(n), CUDA_BLOCK, 0, dx, dx_act, dy,
                      x, w, mean, rstd, n, C);
}

template <typename X>
static void backward(X *dx, flame_grad_mode dx_mode, act_t *dx_act, float *dweight, float *dbias, const act_t *dy,
                     const X *x, const act_t *w, const float *mean, const float *rstd, int n, int C)
{
    if (n <= 0 || C <= 0)
        return;
    /* the parameters' gradients first: they read dout, which dx may be */
    if (dweight && dbias)
        param_sums<true, true>(dweight, dbias, dy, x, mean, rstd, n, C);
    else if (dweight)
        param_sums<true, false>(dweight, dbias, dy, x, mean, rstd, n, C);
    else if (dbias)
        param_sums<false, true>(dweight, dbias, dy, x, mean, rstd, n, C);
    if (dx && vectorizable(C, dx, dx_act, dy, x, w))
        launch_dx_rows<ACT_VEC>(dx, dx_mode, dx_act, dy, x, w, mean, rstd, n, C);
    else if (dx)
        launch_dx_rows<1>(dx, dx_mode, dx_act, dy, x, w, mean, rstd, n, C);
}

void layernorm_forward_cuda(void *out, float *mean, float *rstd, const void *x, const void *weight,
                            const void *bias, int n, int C, float eps)
{
    forward((act_t *)out, mean, rstd, (const act_t *)x, (const act_t *)weight, (const act_t *)bias, n, C, eps);
}

void layernorm_forward_f32_cuda(void *out, float *mean, float *rstd, const float *x, const void *weight,
                                const void *bias, int n, int C, float eps)
{
    forward((act_t *)out, mean, rstd, x, (const act_t *)weight, (const act_t *)bias, n, C, eps);
}

void layernorm_backward_cuda(void *dx, flame_grad_mode dx_mode, float *dweight, float *dbias, const void *dout,
                             const void *x, const void *weight, const float *mean, const float *rstd, int n,
                             int C)
{
    backward((act_t *)dx, dx_mode, (act_t *)NULL, dweight, dbias, (const act_t *)dout, (const act_t *)x,
             (const act_t *)weight, mean, rstd, n, C);
}

void layernorm_backward_f32_cuda(float *dx, flame_grad_mode dx_mode, void *dx_act, float *dweight, float *dbias,
                                 const void *dout, const float *x, const void *weight, const float *mean,
                                 const float *rstd, int n, int C)
{
    backward(dx, dx_mode, (act_t *)dx_act, dweight, dbias, (const act_t *)dout, x, (const act_t *)weight, mean, rstd,
             n, C);
}
