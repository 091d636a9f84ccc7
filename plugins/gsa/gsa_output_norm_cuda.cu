/* fla's output norm of GSA on the GPU: the math of gsa_output_norm_cpu.c,
 *     y = x · r · w,  x = swish(o),  r = 1/sqrt(mean(x²) + eps),
 * over rows of C values (a token's whole value width, every head together),
 * w optional. o, y, w, dy and d_o are bf16 (the CUDA op table's
 * activations), rstd and dw fp32; the arithmetic is fp32.
 *
 * Memory bound, so every row is read once: a block holds a row in registers,
 * thread t chunk s at column (CUDA_BLOCK·s + t)·W (W = ACT_VEC, 16 bytes,
 * where vectorizable), so each access of a warp is contiguous; rows of C up
 * to 1024 (2048 with 16-byte accesses) take one chunk. A thread owns the same
 * columns in every row, so the backward keeps its dw terms in registers over
 * its block's fixed range of rows and writes them as the block's partial row;
 * a second kernel adds the blocks' partials in order (cuda_reduce.cuh). Every
 * sum has an order fixed by rows and C alone: no atomics. */
#include "../common/dw_partials.cuh"
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "../common/row_registers.cuh"
#include "cuda_reduce.cuh"
#include "gsa_cuda.h"

/* rows of one backward block, the rows of its dw partial: the partials are
 * then an eighth of dy's bytes, and 16384 rows (8 sequences of 2048) still
 * make 1024 blocks, enough to fill a GPU */
#define BACKWARD_ROWS 16
/* the most values of a row that one thread holds */
#define MAX_THREAD_VALUES (GSA_OUTPUT_NORM_CUDA_MAX_C / CUDA_BLOCK)

/* ---- forward: one block per row ---- */

template <int W, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK)
    output_norm_rows(act_t *y, float *rstd, const act_t *o, const act_t *w, int C, float eps)
{
    await_inputs();
    size_t at = (size_t)blockIdx.x * C;
    float x[CHUNKS][W], wv[CHUNKS][W], ss = 0.0f;
    load_columns(x, o + at, C);
    load_columns(wv, w, C); /* in flight during the sum */
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++) {
            x[s][k] *= sigmoid_fast(x[s][k]);
            if (column<W>(s) < C)
                ss += x[s][k] * x[s][k];
        }
    float r = 1.0f / sqrtf(block_sum(ss) / C + eps);
    if (threadIdx.x == 0)
        rstd[blockIdx.x] = r;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++)
            x[s][k] *= r * wv[s][k];
    store_columns(y + at, x, C);
}

/* ---- backward: the whole block on a row at a time, BACKWARD_ROWS rows ----
 * Per row, with x̂ = x·r and gy = dy ⊙ w:
 *     d_o = r · (gy − x̂ · mean(gy ⊙ x̂)) ⊙ swish'(o),   dw += dy ⊙ x̂
 * Block b takes rows [b·BACKWARD_ROWS, (b+1)·BACKWARD_ROWS) ∩ [0, rows) in
 * order and writes its dw terms to dw_partial[b·C, (b+1)·C) unless it is NULL. */
template <int W, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK)
    output_norm_backward_rows(act_t *d_o, float *dw_partial, const act_t *dy, const act_t *o,
                              const act_t *w, const float *rstd, int rows, int C)
{
    await_inputs();
    float wv[CHUNKS][W], dw[CHUNKS][W] = {};
    load_columns(wv, w, C);
    int first = blockIdx.x * BACKWARD_ROWS, end = min(rows, first + BACKWARD_ROWS);
    for (int row = first; row < end; row++) {
        size_t at = (size_t)row * C;
        float ov[CHUNKS][W], gy[CHUNKS][W], dot = 0.0f, r = rstd[row];
        load_columns(ov, o + at, C);
        load_columns(gy, dy + at, C);
#pragma unroll
        for (int s = 0; s < CHUNKS; s++)
#pragma unroll
            for (int k = 0; k < W; k++) {
                float xhat = ov[s][k] * sigmoid_fast(ov[s][k]) * r;
                dw[s][k] += gy[s][k] * xhat;
                gy[s][k] *= wv[s][k];
                if (column<W>(s) < C)
                    dot += gy[s][k] * xhat;
            }
        float mean = block_sum(dot) / C;
#pragma unroll
        for (int s = 0; s < CHUNKS; s++)
#pragma unroll
            for (int k = 0; k < W; k++) {
                float oc = ov[s][k], sg = sigmoid_fast(oc);
                gy[s][k] = r * (gy[s][k] - oc * sg * r * mean) * sg * (1.0f + oc * (1.0f - sg));
            }
        store_columns(d_o + at, gy, C);
    }
    if (dw_partial)
        store_columns(dw_partial + (size_t)blockIdx.x * C, dw, C);
}

/* ---- launches ---- */

/* launch.run<W, CHUNKS>() for the fewest CHUNKS (a power of two) whose
 * CUDA_BLOCK·W·CHUNKS values cover C */
template <int W, int CHUNKS = 1, typename Launch> static void launch_for_row(const Launch &launch)
{
    if constexpr (W * CHUNKS < MAX_THREAD_VALUES) {
        if (CUDA_BLOCK * W * CHUNKS < launch.C)
            return launch_for_row<W, 2 * CHUNKS>(launch);
    }
    launch.template run<W, CHUNKS>();
}

template <typename Launch> static void launch_rows(bool vec, const Launch &launch)
{
    if (launch.C > GSA_OUTPUT_NORM_CUDA_MAX_C) {
        fprintf(stderr, "gsa output norm: rows of %d values; the CUDA kernels take at most %d\n",
                launch.C, GSA_OUTPUT_NORM_CUDA_MAX_C);
        exit(1);
    }
    if (vec)
        launch_for_row<ACT_VEC>(launch);
    else
        launch_for_row<1>(launch);
}

struct forward_launch {
    act_t *y;
    float *rstd;
    const act_t *o, *w;
    int rows, C;
    float eps;
    template <int W, int CHUNKS> void run() const
    {
        launch_kernel(output_norm_rows<W, CHUNKS>, (unsigned)rows, CUDA_BLOCK, 0, y, rstd, o, w, C, eps);
    }
};

struct backward_launch {
    act_t *d_o;
    float *dw_partial;
    const act_t *dy, *o, *w;
    const float *rstd;
    int rows, C;
    unsigned blocks;
    template <int W, int CHUNKS> void run() const
    {
        launch_kernel(output_norm_backward_rows<W, CHUNKS>, blocks, CUDA_BLOCK, 0, d_o, dw_partial, dy, o, w, rstd,
                      rows, C);
    }
};

/* the entry points' void pointers: activations of the CUDA op table */
static const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static act_t *act(void *p) { return static_cast<act_t *>(p); }

void gsa_output_norm_forward_cuda(void *y, float *rstd, const void *o, const void *w, int rows,
                                  int C, float eps)
{
    if (rows <= 0 || C <= 0)
        return;
    launch_rows(vectorizable(C, y, o, w),
                forward_launch{act(y), rstd, act(o), act(w), rows, C, eps});
}

void gsa_output_norm_backward_cuda(void *d_o, float *dw, const void *dy, const void *o,
                                   const void *w, const float *rstd, int rows, int C)
{
    if (rows <= 0 || C <= 0)
        return;
    unsigned blocks = (unsigned)((rows + BACKWARD_ROWS - 1) / BACKWARD_ROWS);
    /* at C a multiple of ACT_VEC, each block's partial row is 16-byte aligned */
    float *partial = w && dw ? dw_partials((size_t)blocks * C) : nullptr;
    launch_rows(vectorizable(C, d_o, dy, o, w),
                backward_launch{act(d_o), partial, act(dy), act(o), act(w), rstd, rows, C, blocks});
    if (partial) { /* blocks in order, in groups (cuda_reduce.cuh) */
        launch_kernel(add_column_chunks_grouped, (C + 31) / 32, 32 * CHUNK_GROUPS, 0, dw, partial, (int)blocks, C);
    }
}
