/* SwiGLU on bf16 activations: out = silu(gate) · up, silu(g) = g·σ(g);
 * d silu/dg = σ(g) · (1 + g·(1 − σ(g))). fp32 arithmetic (σ the fast one of
 * cuda_math.cuh: with the accurate exp and division the passes were bound by
 * their instructions, not memory), ACT_VEC values per
 * access when vectorizable (cuda_launch.cuh). The backward writes dgate, dup
 * and, for the down projection's weight gradient, the forward's out again
 * (any may be NULL; out may be dout: each thread reads its values first).
 * Over rows of cols values: gate, up, dgate and dup `stride` values apart from
 * row to row (column blocks of one product), out and dout packed; the grid's
 * y dimension walks the rows, so that no thread divides to find its row; the
 * flat ops are one row of n values. */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_math.cuh"

/* the first access of W values this thread takes in a row, and the step to its next */
#define FIRST_ACCESS(W) (((size_t)blockIdx.x * blockDim.x + threadIdx.x) * (W))
#define ACCESS_STEP(W) ((size_t)gridDim.x * blockDim.x * (W))

template <int W>
static __global__ void swiglu_forward_kernel(act_t *out, const act_t *gate, const act_t *up, size_t rows,
                                             size_t cols, size_t stride)
{
    await_inputs();
    for (size_t row = blockIdx.y; row < rows; row += gridDim.y)
        for (size_t c = FIRST_ACCESS(W); c < cols; c += ACCESS_STEP(W)) {
            size_t i = row * stride + c;
            float g[W], u[W];
            load_floats<W>(g, gate + i);
            load_floats<W>(u, up + i);
#pragma unroll
            for (int k = 0; k < W; k++)
                g[k] = g[k] * sigmoid_fast(g[k]) * u[k];
            store_floats<W>(out + row * cols + c, g);
        }
}

template <int W>
static __global__ void swiglu_backward_kernel(act_t *dgate, act_t *dup, act_t *out, const act_t *dout,
                                              const act_t *gate, const act_t *up, size_t rows, size_t cols,
                                              size_t stride)
{
    await_inputs();
    for (size_t row = blockIdx.y; row < rows; row += gridDim.y)
        for (size_t c = FIRST_ACCESS(W); c < cols; c += ACCESS_STEP(W)) {
            size_t i = row * stride + c, o = row * cols + c;
            float d[W], g[W], u[W], s[W], r[W];
            load_floats<W>(d, dout + o);
            load_floats<W>(g, gate + i);
            load_floats<W>(u, up + i);
#pragma unroll
            for (int k = 0; k < W; k++)
                s[k] = sigmoid_fast(g[k]);
            if (dup) {
#pragma unroll
                for (int k = 0; k < W; k++)
                    r[k] = d[k] * g[k] * s[k];
                store_floats<W>(dup + i, r);
            }
            if (dgate) {
#pragma unroll
                for (int k = 0; k < W; k++)
                    r[k] = d[k] * u[k] * s[k] * (1.0f + g[k] * (1.0f - s[k]));
                store_floats<W>(dgate + i, r);
            }
            if (out) {
#pragma unroll
                for (int k = 0; k < W; k++)
                    r[k] = g[k] * s[k] * u[k];
                store_floats<W>(out + o, r);
            }
        }
}

/* A row of at most 1024 accesses is one block of as many threads (rounded up
 * to whole warps: at 340M's 352 accesses a row, blocks of 256 would leave a
 * third of their threads idle), a longer one (the flat ops) blocks of
 * CUDA_BLOCK across it; rows down the grid's y dimension, up to its limit
 * (the loop does the rest). */
typedef struct rows_launch {
    dim3 grid;
    unsigned block;
} rows_launch;

static rows_launch rows_shape(size_t rows, size_t accesses)
{
    rows_launch l;
    size_t across = 1;
    if (accesses <= 1024) {
        l.block = (unsigned)((accesses + 31) / 32 * 32);
    } else {
        l.block = CUDA_BLOCK;
        across = cuda_grid(accesses);
    }
    size_t down = rows < 65535 ? rows : 65535;
    if (across * down > CUDA_MAX_GRID)
        down = CUDA_MAX_GRID / across > 1 ? CUDA_MAX_GRID / across : 1;
    l.grid = dim3((unsigned)across, (unsigned)down);
    return l;
}

/* kernel<W>(args...) over rows of cols values: W = ACT_VEC when vec */
#define LAUNCH_ROWS(kernel, vec, rows, cols, ...)                                                  \
    do {                                                                                           \
        int w_ = (vec) ? ACT_VEC : 1;                                                              \
        rows_launch l_ = rows_shape(rows, (cols) / w_);                                            \
        if (vec)                                                                                   \
            launch_kernel(kernel<ACT_VEC>, l_.grid, l_.block, 0, __VA_ARGS__);                     \
        else                                                                                       \
            launch_kernel(kernel<1>, l_.grid, l_.block, 0, __VA_ARGS__);                           \
    } while (0)

static void swiglu_forward_rows(void *out, const void *gate, const void *up, size_t rows,
                                size_t cols, size_t stride) {
    if (rows == 0 || cols == 0)
        return;
    LAUNCH_ROWS(swiglu_forward_kernel, vectorizable(cols, out, gate, up) && stride % ACT_VEC == 0, rows, cols,
                (act_t *)out, (const act_t *)gate, (const act_t *)up, rows, cols, stride);
}

static void swiglu_backward_rows(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                                 const void *up, size_t rows, size_t cols, size_t stride)
{
    if (rows == 0 || cols == 0 || (!dgate && !dup && !out))
        return;
    LAUNCH_ROWS(swiglu_backward_kernel,
                vectorizable(cols, dgate, dup, out, dout, gate, up) && stride % ACT_VEC == 0, rows, cols,
                (act_t *)dgate, (act_t *)dup, (act_t *)out, (const act_t *)dout, (const act_t *)gate,
                (const act_t *)up, rows, cols, stride);
}

void swiglu_forward_cuda(void *out, const void *gate, const void *up, size_t n)
{
    swiglu_forward_rows(out, gate, up, 1, n, n);
}

void swiglu_backward_cuda(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                          const void *up, size_t n)
{
    swiglu_backward_rows(dgate, dup, out, dout, gate, up, 1, n, n);
}

void swiglu_forward_strided_cuda(void *out, const void *gate, const void *up, int rows, int I, int stride)
{
    swiglu_forward_rows(out, gate, up, (size_t)rows, (size_t)I, (size_t)stride);
}

void swiglu_backward_strided_cuda(void *dgate, void *dup, void *out, const void *dout, const void *gate,
                                  const void *up, int rows, int I, int stride)
{
    swiglu_backward_rows(dgate, dup, out, dout, gate, up, (size_t)rows, (size_t)I, (size_t)stride);
}
