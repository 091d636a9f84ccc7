/* Mamba2's pointwise kernels on the GPU: the math of delta_cpu.c and
 * gated_norm_cpu.c. bf16 activations in memory (the CUDA op table's), fp32
 * arithmetic and fp32 sums; no atomics anywhere, every sum in an order fixed
 * by the shapes alone.
 *
 * Δ over [n, H] (a token's heads contiguous):
 *     delta = clamp(softplus(v), lo, hi),  v = dt + dt_bias_h,
 *     ddt = ddelta · σ(v) where lo ≤ softplus(v) ≤ hi, else 0,
 *     ddt_bias_h += Σ_t ddt[t, h]
 * softplus as torch's (v above 20 passes through). The forward is a plain
 * grid-stride loop (8 values an access where H allows). The backward is a
 * column sum too, so its blocks are 32 columns × 8 rows of threads: a warp
 * reads 32 neighbouring heads of one token, each thread adds the ddt of its
 * column over its rows in order, the block's 8 row-threads are added in order
 * into one partial row per block, and a second kernel adds the blocks'
 * partials in order (cuda_reduce.cuh). The data is small (n·H values), so
 * the plain layout is enough.
 *
 * Gated norm (fla's RMSNormGated, norm_before_gate = False) over rows of C
 * in groups of group_size:
 *     g = y ⊙ silu(z),  out = g · r · w,  r = 1/sqrt(mean over the group(g²) + eps)
 * A (row, group) segment is group_size contiguous values and segment
 * i = row·groups + group is rstd's index, so the forward is a row norm over
 * rows·groups segments of group_size values. Memory bound, so every segment
 * is read once: a block holds a segment in registers, thread t chunk s at
 * column (CUDA_BLOCK·s + t)·W (W = ACT_VEC, 16 bytes, where vectorizable) so
 * each access of a warp is contiguous; group_size up to 2048 takes one chunk
 * with 16-byte accesses (Mamba2-340M: C = group_size = 2048). The backward,
 * per segment with e = dout ⊙ w:
 *     dg = r·e − g · r³ · Σ(e ⊙ g) / group_size
 *     dy = dg · silu(z),  dz = dg · y · σ(z)(1 + z(1 − σ(z))),  dw += dout ⊙ g · r
 * A backward block takes one group of BACKWARD_ROWS consecutive rows, so its
 * threads own the same w columns throughout and keep the dw terms in
 * registers, written once as the block's partial row (the group's columns of
 * it); the partial rows are then added in order. */
#include "../common/dw_partials.cuh"
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "../common/row_registers.cuh"
#include "cuda_reduce.cuh"
#include "mamba2_pointwise_cuda.h"

/* the entry points' void pointers: activations of the CUDA op table */
static const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static act_t *act(void *p) { return static_cast<act_t *>(p); }

/* ==================================================================== Δ */

/* torch's softplus (beta 1, threshold 20), as delta_cpu.c computes it */
static __device__ __forceinline__ float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

/* rows of one backward block: 8 a thread; 16384 tokens make 256 blocks a
 * column tile, and the partials are H floats a block */
#define DELTA_ROW_THREADS 8
#define DELTA_BLOCK_ROWS 64

/* W = ACT_VEC needs H a multiple of it: a thread's W values then share a token
 * and take W neighbouring biases */
template <int W>
static __global__ void delta_forward(float *delta, const act_t *dt, const act_t *dt_bias,
                                     size_t n, int H, float lo, float hi)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W], b[W];
        load_floats<W>(v, dt + i * W);
        load_floats<W>(b, dt_bias + (i * W) % H);
#pragma unroll
        for (int k = 0; k < W; k++) { /* the CPU's clamp: a NaN passes through */
            float sp = softplus(v[k] + b[k]);
            v[k] = sp < lo ? lo : sp > hi ? hi : sp;
        }
        store_floats<W>(delta + i * W, v);
    }
}

/* block (x, y) of (32, DELTA_ROW_THREADS) threads: column tile blockIdx.x, rows
 * [blockIdx.y·rows_per_block, +rows_per_block); writes ddt and
 * partial[blockIdx.y·H + j] = Σ of the block's ddt[·, j] */
static __global__ void __launch_bounds__(32 * DELTA_ROW_THREADS)
    delta_backward(act_t *ddt, float *partial, const float *ddelta, const act_t *dt,
                   const act_t *dt_bias, int n, int H, int rows_per_block, float lo, float hi)
{
    await_inputs();
    __shared__ float column_sums[DELTA_ROW_THREADS][32];
    int j = blockIdx.x * 32 + threadIdx.x;
    int first = blockIdx.y * rows_per_block, end = min(n, first + rows_per_block);
    float acc = 0.0f;
    if (j < H) {
        float bias = __bfloat162float(dt_bias[j]);
        for (int t = first + threadIdx.y; t < end; t += DELTA_ROW_THREADS) {
            size_t at = (size_t)t * H + j;
            float v = __bfloat162float(dt[at]) + bias, s = softplus(v);
            float d = s < lo || s > hi ? 0.0f : ddelta[at] * sigmoid_fast(v);
            ddt[at] = __float2bfloat16_rn(d);
            acc += d;
        }
    }
    column_sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < H) {
        float total = 0.0f;
        for (int r = 0; r < DELTA_ROW_THREADS; r++)
            total += column_sums[r][threadIdx.x];
        partial[(size_t)blockIdx.y * H + j] = total;
    }
}

void mamba2_delta_forward_cuda(float *delta, const void *dt, const void *dt_bias, int n, int H,
                               float lo, float hi)
{
    if (n <= 0 || H <= 0)
        return;
    size_t count = (size_t)n * H;
    LAUNCH_VECTORIZED(delta_forward, vectorizable((size_t)H, delta, dt, dt_bias), count, delta,
                      act(dt), act(dt_bias), count, H, lo, hi);
}

void mamba2_delta_backward_cuda(void *ddt, float *ddt_bias, const float *ddelta, const void *dt,
                                const void *dt_bias, int n, int H, float lo, float hi)
{
    if (n <= 0 || H <= 0)
        return;
    /* gridDim.y is at most 65535: longer inputs take more rows a block */
    int rows = DELTA_BLOCK_ROWS;
    if ((n + rows - 1) / rows > COLUMN_MAX_CHUNKS)
        rows = (n + COLUMN_MAX_CHUNKS - 1) / COLUMN_MAX_CHUNKS;
    int chunks = (n + rows - 1) / rows;
    float *partial = dw_partials((size_t)chunks * H);
    dim3 grid((unsigned)((H + 31) / 32), (unsigned)chunks), block(32, DELTA_ROW_THREADS);
    launch_kernel(delta_backward, grid, block, 0, act(ddt), partial, ddelta, act(dt), act(dt_bias), n, H, rows, lo, hi);
    launch_kernel(add_column_chunks_grouped, (H + 31) / 32, 32 * CHUNK_GROUPS, 0, ddt_bias, partial, chunks, H);
}

/* ==================================================================== gated norm */

/* rows of one backward block, the rows of its dw partial: the partials are
 * then an eighth of dy's bytes, and 16384 rows still make 1024 blocks a group */
#define BACKWARD_ROWS 16
/* the most values of a segment that one thread holds */
#define MAX_THREAD_VALUES (MAMBA2_GATED_NORM_CUDA_MAX_C / CUDA_BLOCK)

/* one block per segment (row·groups + group) of gs values */
template <int W, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK)
    gated_norm_forward(act_t *out, float *rstd, const act_t *y, const act_t *z, const act_t *w,
                       int groups, int gs, float eps)
{
    await_inputs();
    size_t at = (size_t)blockIdx.x * gs;
    float g[CHUNKS][W], zv[CHUNKS][W], wv[CHUNKS][W], ss = 0.0f;
    load_columns(g, y + at, gs);
    load_columns(zv, z + at, gs);
    load_columns(wv, w + (size_t)(blockIdx.x % groups) * gs, gs); /* in flight during the sum */
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++) {
            g[s][k] *= zv[s][k] * sigmoid_fast(zv[s][k]);
            if (column<W>(s) < gs)
                ss += g[s][k] * g[s][k];
        }
    float r = 1.0f / sqrtf(block_sum(ss) / gs + eps);
    if (threadIdx.x == 0)
        rstd[blockIdx.x] = r;
#pragma unroll
    for (int s = 0; s < CHUNKS; s++)
#pragma unroll
        for (int k = 0; k < W; k++)
            g[s][k] *= r * wv[s][k];
    store_columns(out + at, g, gs);
}

/* block b: group b % groups of rows [(b / groups)·BACKWARD_ROWS, +BACKWARD_ROWS)
 * ∩ [0, rows), in order; its dw terms go to the group's columns of partial row
 * b / groups (C = groups·gs floats a row) */
template <int W, int CHUNKS>
static __global__ void __launch_bounds__(CUDA_BLOCK)
    gated_norm_backward(act_t *dy, act_t *dz, float *partial, const act_t *dout, const act_t *y,
                        const act_t *z, const act_t *w, const float *rstd, int rows, int groups,
                        int gs)
{
    await_inputs();
    int group = blockIdx.x % groups, chunk = blockIdx.x / groups;
    float wv[CHUNKS][W], dw[CHUNKS][W] = {};
    load_columns(wv, w + (size_t)group * gs, gs);
    int first = chunk * BACKWARD_ROWS, end = min(rows, first + BACKWARD_ROWS);
    for (int row = first; row < end; row++) {
        size_t seg = (size_t)row * groups + group, at = seg * gs;
        float yv[CHUNKS][W], zv[CHUNKS][W], e[CHUNKS][W], dot = 0.0f, r = rstd[seg];
        load_columns(yv, y + at, gs);
        load_columns(zv, z + at, gs);
        load_columns(e, dout + at, gs);
#pragma unroll
        for (int s = 0; s < CHUNKS; s++)
#pragma unroll
            for (int k = 0; k < W; k++) {
                float g = yv[s][k] * zv[s][k] * sigmoid_fast(zv[s][k]);
                dw[s][k] += e[s][k] * g * r;
                e[s][k] *= wv[s][k];
                if (column<W>(s) < gs)
                    dot += e[s][k] * g;
            }
        float c = block_sum(dot) * r * r * r / gs;
#pragma unroll
        for (int s = 0; s < CHUNKS; s++)
#pragma unroll
            for (int k = 0; k < W; k++) {
                float zk = zv[s][k], sg = sigmoid_fast(zk), silu = zk * sg;
                float dg = r * e[s][k] - yv[s][k] * silu * c;
                e[s][k] = dg * silu;                                   /* dy */
                zv[s][k] = dg * yv[s][k] * sg * (1.0f + zk * (1.0f - sg)); /* dz */
            }
        store_columns(dy + at, e, gs);
        store_columns(dz + at, zv, gs);
    }
    store_columns(partial + (size_t)chunk * groups * gs + (size_t)group * gs, dw, gs);
}

/* launch.run<W, CHUNKS>() for the fewest CHUNKS (a power of two) whose
 * CUDA_BLOCK·W·CHUNKS values cover a segment */
template <int W, int CHUNKS = 1, typename Launch> static void launch_for_segment(const Launch &launch)
{
    if constexpr (W * CHUNKS < MAX_THREAD_VALUES) {
        if (CUDA_BLOCK * W * CHUNKS < launch.gs)
            return launch_for_segment<W, 2 * CHUNKS>(launch);
    }
    launch.template run<W, CHUNKS>();
}

/* C in whole groups of at most MAMBA2_GATED_NORM_CUDA_MAX_C, or exit */
static void check_groups(int C, int gs)
{
    if (gs <= 0 || C % gs != 0 || gs > MAMBA2_GATED_NORM_CUDA_MAX_C) {
        fprintf(stderr,
                "mamba2 gated norm: rows of %d values in groups of %d; the CUDA kernels take "
                "groups that divide the row, at most %d values\n",
                C, gs, MAMBA2_GATED_NORM_CUDA_MAX_C);
        exit(1);
    }
}

template <typename Launch> static void launch_segments(bool vec, const Launch &launch)
{
    if (vec)
        launch_for_segment<ACT_VEC>(launch);
    else
        launch_for_segment<1>(launch);
}

struct forward_launch {
    act_t *out;
    float *rstd;
    const act_t *y, *z, *w;
    unsigned segments;
    int groups, gs;
    float eps;
    template <int W, int CHUNKS> void run() const
    {
        launch_kernel(gated_norm_forward<W, CHUNKS>, segments, CUDA_BLOCK, 0, out, rstd, y, z, w, groups, gs, eps);
    }
};

struct backward_launch {
    act_t *dy, *dz;
    float *partial;
    const act_t *dout, *y, *z, *w;
    const float *rstd;
    int rows, groups, gs;
    unsigned blocks;
    template <int W, int CHUNKS> void run() const
    {
        launch_kernel(gated_norm_backward<W, CHUNKS>, blocks, CUDA_BLOCK, 0, dy, dz, partial, dout, y, z, w, rstd, rows,
                      groups, gs);
    }
};

void mamba2_gated_norm_forward_cuda(void *out, float *rstd, const void *y, const void *z,
                                    const void *w, int rows, int C, int group_size, float eps)
{
    if (rows <= 0 || C <= 0)
        return;
    check_groups(C, group_size);
    int groups = C / group_size;
    /* group_size a multiple of ACT_VEC keeps every segment 16-byte aligned */
    launch_segments(vectorizable((size_t)group_size, out, y, z, w),
                    forward_launch{act(out), rstd, act(y), act(z), act(w),
                                   (unsigned)((size_t)rows * groups), groups, group_size, eps});
}

void mamba2_gated_norm_backward_cuda(void *dy, void *dz, float *dw, const void *dout,
                                     const void *y, const void *z, const void *w,
                                     const float *rstd, int rows, int C, int group_size)
{
    if (rows <= 0 || C <= 0)
        return;
    check_groups(C, group_size);
    int groups = C / group_size, chunks = (rows + BACKWARD_ROWS - 1) / BACKWARD_ROWS;
    float *partial = dw_partials((size_t)chunks * C);
    launch_segments(vectorizable((size_t)group_size, dy, dz, dout, y, z, w),
                    backward_launch{act(dy), act(dz), partial, act(dout), act(y), act(z), act(w),
                                    rstd, rows, groups, group_size,
                                    (unsigned)((size_t)chunks * groups)});
    /* the chunks' partial rows in order, in groups (cuda_reduce.cuh) */
    launch_kernel(add_column_chunks_grouped, (C + 31) / 32, 32 * CHUNK_GROUPS, 0, dw, partial, chunks, C);
}
