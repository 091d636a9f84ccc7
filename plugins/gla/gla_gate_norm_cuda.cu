/* fla's FusedRMSNormGated with swish on the GPU: the math of gla_gate_norm_cpu.c,
 *     y = o · r · w · swish(g),  r = 1/sqrt(mean(o²) + eps),
 * over rows of C values (one head of one token), g's (and dg's) rows where
 * gla.h's gla_gate_row says (a joined projection's column block, say).
 * y, o, g, w and their gradients are bf16 (the CUDA op table's activations),
 * rstd and dw fp32; the arithmetic is fp32.
 *
 * Memory bound, so every row is read once: a warp holds a whole row in
 * registers (ACT_VEC values per access when vectorizable, cuda_launch.cuh),
 * which bounds C by GLA_GATE_NORM_CUDA_MAX_C. The forward reads o and g and
 * writes y and rstd. The backward reads o, g and dy, writes do and dg, and
 * keeps each warp's dw terms in registers: a block sums its fixed range of
 * rows into one partial row of dw, and a second kernel adds the blocks'
 * partials in order, so every sum has an order fixed by the shapes alone. */
#include "../common/dw_partials.cuh"
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_math.cuh"
#include "cuda_reduce.cuh"
#include "cuda_rows.cuh"
#include "gla_cuda.h"

/* rows of one backward block, the rows of its dw partial: enough to make the
 * partials small next to the activations, few enough for many blocks */
#define BACKWARD_ROWS (ROW_WARPS * 8)
/* the most values of a row that one lane holds */
#define MAX_LANE_VALUES (GLA_GATE_NORM_CUDA_MAX_C / 32)

/* ---- forward: one warp per row (cuda_rows.cuh) ---- */

template <int W, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK)
    gate_norm_rows(act_t *y, float *rstd, const act_t *o, const act_t *g, gla_gate_rows gr, const act_t *w,
                   int rows, int C, float eps)
{
    await_inputs();
    int row = blockIdx.x * ROW_WARPS + threadIdx.x / 32;
    if (row >= rows)
        return; /* the whole warp: the sum below is per warp */
    size_t at = (size_t)row * C;
    float ov[CHUNKS][W], gv[CHUNKS][W], wv[CHUNKS][W];
    load_row(ov, o + at, C);
    load_row(gv, g + gla_gate_row(&gr, row, C), C); /* in flight during the sum */
    float ss = 0.0f;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++)
            ss += ov[s][k] * ov[s][k];
    float r = 1.0f / sqrtf(warp_sum(ss) / C + eps);
    if (threadIdx.x % 32 == 0)
        rstd[row] = r;
    load_row(wv, w, C);
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++)
            ov[s][k] = ov[s][k] * r * wv[s][k] * (gv[s][k] * sigmoid_fast(gv[s][k]));
    store_row(y + at, ov, C);
}

/* ---- backward: a warp per row at a time, BACKWARD_ROWS rows per block ---- */

/* One row: writes its do and dg, adds its dw terms dz·u into dw, where
 * dz = dy ⊙ swish(g) reaches the normalized, weighted o and u = o·r. */
template <int W, int CHUNKS>
static __device__ __forceinline__ void backward_row(act_t *d_o, act_t *dg, float (&dw)[CHUNKS][W],
                                                    const act_t *dy, const act_t *o,
                                                    const act_t *g, const float (&wv)[CHUNKS][W],
                                                    float r, int C)
{
    float ov[CHUNKS][W], gv[CHUNKS][W], dyv[CHUNKS][W];
    load_row(ov, o, C);
    load_row(gv, g, C);
    load_row(dyv, dy, C);
    float dot = 0.0f; /* Σ_k dz_k w_k o_k */
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++) {
            float gj = gv[s][k], sg = sigmoid_fast(gj), u = ov[s][k] * r;
            float dz = dyv[s][k] * gj * sg;
            dot += dz * wv[s][k] * ov[s][k];
            dw[s][k] += dz * u;
            gv[s][k] = dyv[s][k] * u * wv[s][k] * sg * (1.0f + gj * (1.0f - sg)); /* dg */
            dyv[s][k] = r * dz * wv[s][k]; /* do's first term */
        }
    if (dg)
        store_row(dg, gv, C);
    if (!d_o)
        return; /* the whole warp: d_o is the same for all */
    float c = warp_sum(dot) * r * r * r / C;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++)
            dyv[s][k] -= ov[s][k] * c;
    store_row(d_o, dyv, C);
}

/* Block b takes rows [b·BACKWARD_ROWS, (b+1)·BACKWARD_ROWS) ∩ [0, rows), warp
 * t of them rows t, t + ROW_WARPS, … in order, and writes its dw partial to
 * dw_partial[b·C, (b+1)·C) unless dw_partial is NULL. Up to 8 values a lane
 * (C ≤ 256), 4 blocks per SM: 64 registers suffice, and the loads of 32 warps
 * keep the memory busy. */
template <int W, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK, W * CHUNKS <= 8 ? 4 : 1)
    gate_norm_backward_rows(act_t *d_o, act_t *dg, float *dw_partial, const act_t *dy,
                            const act_t *o, const act_t *g, gla_gate_rows gr, const act_t *w,
                            const float *rstd, int rows, int C)
{
    await_inputs();
    float wv[CHUNKS][W], dw[CHUNKS][W] = {};
    load_row(wv, w, C);
    int first = blockIdx.x * BACKWARD_ROWS, end = min(rows, first + BACKWARD_ROWS);
    /* no early return: every warp takes part in write_block_sum */
    for (int row = first + threadIdx.x / 32; row < end; row += ROW_WARPS) {
        size_t at = (size_t)row * C, g_at = gla_gate_row(&gr, row, C);
        backward_row(d_o ? d_o + at : nullptr, dg ? dg + g_at : nullptr, dw, dy + at, o + at,
                     g + g_at, wv, rstd[row], C);
    }
    if (dw_partial)
        write_block_sum(dw_partial + (size_t)blockIdx.x * C, dw, C);
}

/* ---- launches ---- */

template <typename Launch> static void launch_rows(int C, bool vec, const Launch &launch)
{
    if (C > GLA_GATE_NORM_CUDA_MAX_C) {
        fprintf(stderr, "gla gate norm: rows of %d values; the CUDA kernels take at most %d\n", C,
                GLA_GATE_NORM_CUDA_MAX_C);
        exit(1);
    }
    if (vec)
        launch_for_width<MAX_LANE_VALUES, ACT_VEC>(C, launch);
    else
        launch_for_width<MAX_LANE_VALUES, 1>(C, launch);
}

struct forward_launch {
    act_t *y;
    float *rstd;
    const act_t *o, *g;
    gla_gate_rows gr;
    const act_t *w;
    int rows, C;
    float eps;
    template <int W, int CHUNKS> void run() const
    {
        unsigned blocks = (unsigned)((rows + ROW_WARPS - 1) / ROW_WARPS);
        launch_kernel(gate_norm_rows<W, CHUNKS>, blocks, CUDA_BLOCK, 0, y, rstd, o, g, gr, w, rows, C, eps);
    }
};

struct backward_launch {
    act_t *d_o, *dg;
    float *dw_partial;
    const act_t *dy, *o, *g;
    gla_gate_rows gr;
    const act_t *w;
    const float *rstd;
    int rows, C;
    unsigned blocks;
    template <int W, int CHUNKS> void run() const
    {
        launch_kernel(gate_norm_backward_rows<W, CHUNKS>, blocks, CUDA_BLOCK, 0, d_o, dg, dw_partial, dy, o, g, gr, w,
                      rstd, rows, C);
    }
};

/* 16-byte accesses need the gate's rows 16-byte apart too */
static bool gate_rows_vectorizable(const gla_gate_rows *gr) { return gr->g_stride % ACT_VEC == 0; }

/* the entry points' void pointers: activations of the CUDA op table */
static const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static act_t *act(void *p) { return static_cast<act_t *>(p); }

void gla_gate_norm_forward_cuda(void *y, float *rstd, const void *o, const void *g, const gla_gate_rows *gr,
                                const void *w, int rows, int C, float eps)
{
    if (rows <= 0)
        return;
    launch_rows(C, vectorizable(C, y, o, g, w) && gate_rows_vectorizable(gr),
                forward_launch{act(y), rstd, act(o), act(g), *gr, act(w), rows, C, eps});
}

void gla_gate_norm_backward_cuda(void *d_o, void *dg, float *dw, const void *dy, const void *o,
                                 const void *g, const gla_gate_rows *gr, const void *w, const float *rstd,
                                 int rows, int C)
{
    if (rows <= 0 || C <= 0 || (!d_o && !dg && !dw))
        return;
    unsigned blocks = (unsigned)((rows + BACKWARD_ROWS - 1) / BACKWARD_ROWS);
    /* at C a multiple of ACT_VEC, each block's partial row is 16-byte aligned */
    float *partial = dw ? dw_partials((size_t)blocks * C) : nullptr;
    launch_rows(C, vectorizable(C, d_o, dg, dy, o, g, w) && gate_rows_vectorizable(gr),
                backward_launch{act(d_o), act(dg), partial, act(dy), act(o), act(g), *gr, act(w), rstd,
                                rows, C, blocks});
    if (dw) { /* blocks in order, in groups (cuda_reduce.cuh) */
        launch_kernel(add_column_chunks_grouped, (C + 31) / 32, 32 * CHUNK_GROUPS, 0, dw, partial, (int)blocks, C);
    }
}
