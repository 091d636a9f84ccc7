/* The LM head's training forward without its logits (op table 5.14,
 * lm_head_loss): l = x·headᵀ over n rows of V, loss_i = logsumexp(l_i) −
 * l_i[t_i], and what the backward's products need, expd and row_scale with
 *   row_scale_i · expd_i = dloss_scale · (softmax(l_i) − onehot(t_i)).
 *
 * On Hopper one kernel makes the product and writes, instead of l, its
 * exponentials e = exp(l − s_i) to a shift s_i of each row's, with each
 * row's sum of them over its tile of columns; a pass over the rows adds the
 * tiles' sums (Z_i), takes Z_i off the target's column and sets row_scale_i
 * = dloss_scale / Z_i. The logits are written once and never read again:
 * the cross-entropy's pass over them (read, and written back as their
 * gradient) is gone.
 *
 * The shift is the target's logit plus SHIFT, made by a pass before the
 * product (a dot product per row), so the target's exponential is e^−SHIFT,
 * the row's sum at least that, and its largest term e^(loss_i − SHIFT) at
 * most: fp32 holds every term that matters for losses up to about 88 +
 * SHIFT − ln V nats. Past that a term overflows, and the row's loss is
 * returned as +inf (its row_scale 0; expd's row is not finite, but a step
 * of infinite loss is not taken).
 *
 * Elsewhere (another GPU, a build without sm_90a, a depth D not a multiple
 * of 8 or unaligned rows) the op is the product and cross_entropy's
 * gradient, with row_scale 1, as on the CPU. */
#include <math.h>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"
#include "tma.cuh"

#define SHIFT 16.0f /* nats: the shift above the target's logit */
#define LOG2E 1.4426950408889634f

/* a block's tile of the product: BM rows (two consumer warpgroups of 64)
 * by BN columns, BK deep a step; a ring of STAGES steps' tiles; GROUP_M row
 * tiles walked side by side so that the head's tiles are read from L2. The
 * producer is a warpgroup of its own, so that setmaxnreg can hand its
 * registers to the consumers (each holds 128 accumulators). */
#define BM 128
#define BN 256
#define BK 64
#define STAGES 3
#define GROUP_M 16
#define CONSUMER_WARPS 8
#define THREADS (32 * CONSUMER_WARPS + 128) /* and the producer's warpgroup */
#define PRODUCER_REGISTERS 40
#define CONSUMER_REGISTERS 232
#define STAGING 4096                        /* bytes a consumer warp stores through: 16 rows of 128 columns */

/* ------------------------------------------------------------------ the shift */

/* shift2_i = (l_i[t_i] + SHIFT)·log2(e), +inf for an ignored row (its
 * exponentials are then 0); a warp per row, D a multiple of 8 */
static __global__ void target_shifts(float *shift2, const act_t *x, const act_t *head, const int32_t *targets, int n,
                                     int D)
{
    await_inputs();
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n)
        return;
    int t = targets[row];
    float dot = 0.0f;
    if (t >= 0)
        for (int k = 8 * lane_id(); k < D; k += 8 * 32) {
            float a[8], b[8];
            load_floats<8>(a, x + (size_t)row * D + k);
            load_floats<8>(b, head + (size_t)t * D + k);
#pragma unroll
            for (int j = 0; j < 8; j++)
                dot += a[j] * b[j];
        }
    dot = warp_sum(dot);
    if (lane_id() == 0)
        shift2[row] = t >= 0 ? (dot + SHIFT) * LOG2E : INFINITY;
}

/* ------------------------------------------------------------------ the product */

struct tile_of {
    int m0, n0, col_tile;
};

/* tile `index` of row_tiles × col_tiles, GROUP_M row tiles at a time, rows first */
static __device__ __forceinline__ tile_of tile_at(int index, int row_tiles, int col_tiles)
{
    int per_group = GROUP_M * col_tiles, group = index / per_group, first = group * GROUP_M;
    int rows = min(GROUP_M, row_tiles - first), within = index - group * per_group;
    int col_tile = within / rows;
    return tile_of{(first + within % rows) * BM, col_tile * BN, col_tile};
}

static __device__ __forceinline__ float exp2_fast(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

struct exp_args {
    act_t *expd;
    float *partial; /* [col_tiles][n]: each row's sum over a tile's columns */
    const float *shift2;
    int n, V, KT, row_tiles, col_tiles;
    bool rows_of_16_bytes; /* expd's rows take 16-byte stores */
};

/* one half (128 columns) of a consumer warp's 16 rows × 256 columns:
 * exponentials into the warp's staging (16-byte pieces swizzled by row, so
 * that neither the writes nor the reads meet in a bank), sums onto sum[2],
 * then stored as whole rows. EDGE: the vocabulary ends inside the half (the
 * head's rows past it are zeros, whose exponentials must not count). */
template <bool EDGE>
static __device__ __forceinline__ void exp_half(const exp_args &a, const float (&acc)[16][4], unsigned char *staging,
                                                int row0, int col0, const float (&shift2)[2], float (&sum)[2])
{
    int lane = lane_id();
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int r = lane / 4 + 8 * h;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            int col = col0 + 8 * j + 2 * (lane % 4);
            float e[2];
#pragma unroll
            for (int c = 0; c < 2; c++) {
                e[c] = exp2_fast(acc[j][2 * h + c] * LOG2E - shift2[h]);
                if (EDGE && col + c >= a.V)
                    e[c] = 0.0f;
            }
            sum[h] += e[0] + e[1];
            __nv_bfloat162 pair = __floats2bfloat162_rn(e[0], e[1]);
            *reinterpret_cast<__nv_bfloat162 *>(staging + r * 256 + ((j ^ (r % 8)) * 16) + (lane % 4) * 4) = pair;
        }
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int r = 2 * i + lane / 16, piece = lane % 16, row = row0 + r, col = col0 + 8 * piece;
        uint4 v = *reinterpret_cast<const uint4 *>(staging + r * 256 + ((piece ^ (r % 8)) * 16));
        if (row >= a.n || (EDGE && col >= a.V))
            continue;
        act_t *out = a.expd + (size_t)row * a.V + col;
        if (a.rows_of_16_bytes && (!EDGE || col + 8 <= a.V)) {
            *reinterpret_cast<uint4 *>(out) = v;
        } else {
            uint32_t pairs[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int k = 0; k < 8; k++)
                if (col + k < a.V)
                    out[k] = __ushort_as_bfloat16((unsigned short)(pairs[k / 2] >> (16 * (k % 2))));
        }
    }
    __syncwarp();
}

/* the consumer warp's rows of the tile: exponentials out, row sums into partial */
static __device__ __forceinline__ void exp_epilogue(const exp_args &a, const float (&acc)[2][16][4],
                                                    unsigned char *staging, tile_of tile)
{
    int warp = threadIdx.x / 32 - 4, lane = lane_id();
    int row0 = tile.m0 + 16 * warp; /* consumer warp w: rows 16w.. */
    float shift2[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int row = row0 + lane / 4 + 8 * h;
        shift2[h] = row < a.n ? a.shift2[row] : INFINITY;
    }
    if (tile.n0 + BN <= a.V) {
        exp_half<false>(a, acc[0], staging, row0, tile.n0, shift2, sum);
        exp_half<false>(a, acc[1], staging, row0, tile.n0 + 128, shift2, sum);
    } else {
        exp_half<true>(a, acc[0], staging, row0, tile.n0, shift2, sum);
        exp_half<true>(a, acc[1], staging, row0, tile.n0 + 128, shift2, sum);
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 1); /* a row is a quad's four lanes */
        sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 2);
        int row = row0 + lane / 4 + 8 * h;
        if (lane % 4 == 0 && row < a.n)
            a.partial[(size_t)tile.col_tile * a.n + row] = sum[h];
    }
}

static __global__ void __launch_bounds__(THREADS, 1)
    head_exp_kernel(exp_args a, const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap hmap)
{
    await_inputs();
#ifdef FLAME_WGMMA
    extern __shared__ unsigned char smem[];
    uint32_t pad = (WGMMA_ALIGN - shared_address(smem) % WGMMA_ALIGN) % WGMMA_ALIGN;
    act_t *sa = reinterpret_cast<act_t *>(smem + pad), *sb = sa + STAGES * BM * BK;
    unsigned char *staging = reinterpret_cast<unsigned char *>(sb + STAGES * BN * BK);
    uint64_t *full = reinterpret_cast<uint64_t *>(staging + CONSUMER_WARPS * STAGING), *empty = full + STAGES;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; s++)
            barrier_init(&full[s], 1), barrier_init(&empty[s], CONSUMER_WARPS);
        barrier_init_fence();
    }
    __syncthreads();
    int tiles = a.row_tiles * a.col_tiles;

    if (warpgroup_id() == 0) { /* the producer */
        registers_down<PRODUCER_REGISTERS>();
        if (threadIdx.x != 0)
            return;
        int use = 0;
        for (int i = blockIdx.x; i < tiles; i += gridDim.x) {
            tile_of tile = tile_at(i, a.row_tiles, a.col_tiles);
            for (int k = 0; k < a.KT; k++, use++) {
                int s = use % STAGES;
                if (use >= STAGES)
                    wait_phase(&empty[s], (use / STAGES - 1) & 1);
                expect_bytes(&full[s], (BM + BN) * BK * sizeof(act_t));
                tma_box(sa + s * BM * BK, &xmap, k * BK, 0, tile.m0, &full[s]);
                tma_box(sb + s * BN * BK, &hmap, k * BK, 0, tile.n0, &full[s]);
                barrier_arrive(&full[s]);
            }
        }
        return;
    }

    registers_up<CONSUMER_REGISTERS>();
    int wg = warpgroup_id() - 1, use = 0;
    unsigned char *my_staging = staging + (threadIdx.x / 32 - 4) * STAGING;
    float acc[2][16][4];
    for (int i = blockIdx.x; i < tiles; i += gridDim.x) {
        tile_of tile = tile_at(i, a.row_tiles, a.col_tiles);
        for (int k = 0; k < a.KT; k++, use++) {
            int s = use % STAGES;
            wait_phase(&full[s], (use / STAGES) & 1);
            const act_t *ta = sa + s * BM * BK, *tb = sb + s * BN * BK;
            wgmma_fence();
#pragma unroll
            for (int slice = 0; slice < BK / 16; slice++) {
                uint64_t left = rows_operand<BM>(ta, 64 * wg, slice);
                wgmma_ss<0>(acc[0], left, rows_operand<BN>(tb, 0, slice), k > 0 || slice > 0);
                wgmma_ss<0>(acc[1], left, rows_operand<BN>(tb, 128, slice), k > 0 || slice > 0);
            }
            wgmma_commit();
            wgmma_wait<1>();
            keep(acc[0]), keep(acc[1]);
            if (k > 0 && lane_id() == 0)
                barrier_arrive(&empty[(use - 1) % STAGES]);
        }
        wgmma_wait<0>();
        keep(acc[0]), keep(acc[1]);
        if (lane_id() == 0) /* the ring's last buffer of the tile: the producer fills the next tile's meanwhile */
            barrier_arrive(&empty[(use - 1) % STAGES]);
        exp_epilogue(a, acc, my_staging, tile);
    }
#endif
}

/* ------------------------------------------------------------------ the rows' sums */

/* Z_i from the tiles' sums in order; the loss, row_scale and the target's
 * column made the gradient's (e_t − Z_i, e_t = e^−SHIFT by the shift, so
 * that row_scale_i·expd_i is it) */
static __global__ void row_totals(double *row_loss, float *row_scale, act_t *expd, const float *partial,
                                  const int32_t *targets, int n, int V, int col_tiles, float dloss_scale)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, (size_t)n)
    {
        int t = targets[i];
        if (t < 0) {
            row_loss[i] = 0.0, row_scale[i] = 0.0f;
            continue;
        }
        double Z = 0.0;
        for (int c = 0; c < col_tiles; c++)
            Z += partial[(size_t)c * n + i];
        bool kept = isfinite(Z); /* else an exponential overflowed (or an input was not finite) */
        row_loss[i] = kept ? log(Z) + SHIFT : INFINITY;
        row_scale[i] = kept ? (float)(dloss_scale / Z) : 0.0f;
        expd[i * (size_t)V + t] = __float2bfloat16_rn(kept ? (float)(exp(-(double)SHIFT) - Z) : 0.0f);
    }
}

/* ------------------------------------------------------------------ elsewhere */

static __global__ void ones(float *x, int n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, (size_t)n)
    x[i] = 1.0f;
}

static double product_then_cross_entropy(act_t *expd, float *row_scale, const act_t *x, const act_t *head,
                                         const int32_t *targets, int n, int D, int V, float dloss_scale)
{
    matmul_forward_cuda(expd, x, head, NULL, NULL, n, D, V);
    launch_kernel(ones, cuda_grid((size_t)n), CUDA_BLOCK, 0, row_scale, n);
    return cross_entropy_cuda(NULL, expd, expd, targets, n, V, dloss_scale);
}

/* ------------------------------------------------------------------ entry */

/* a GPU of compute capability 9.0 running this build's sm_90a code */
static bool hopper_here()
{
    static int here = -1;
    if (here < 0)
        here = wgmma_runs(head_exp_kernel);
    return here == 1;
}

static bool portable_only = false;

void lm_head_loss_cuda_portable_only(int on) { portable_only = on != 0; }

int lm_head_loss_cuda_fuses(int D) { return !portable_only && D % 8 == 0 && hopper_here(); }

static size_t bytes_16(size_t bytes) { return (bytes + 15) / 16 * 16; }

double lm_head_loss_cuda(void *expd, float *row_scale, const void *x, const void *head, const int32_t *targets,
                         int n, int D, int V, float dloss_scale)
{
    if (n <= 0)
        return 0.0;
    act_t *e = (act_t *)expd;
    const act_t *xa = (const act_t *)x, *ha = (const act_t *)head;
    if (!lm_head_loss_cuda_fuses(D) || !vectorizable(D, x, head))
        return product_then_cross_entropy(e, row_scale, xa, ha, targets, n, D, V, dloss_scale);

    exp_args a = {};
    a.expd = e, a.n = n, a.V = V, a.KT = (D + BK - 1) / BK;
    a.row_tiles = (n + BM - 1) / BM, a.col_tiles = (V + BN - 1) / BN;
    a.rows_of_16_bytes = vectorizable(V, expd);
    char *scratch = (char *)cuda_scratch(bytes_16((size_t)n * sizeof(double)) + bytes_16((size_t)n * 4) +
                                         (size_t)a.col_tiles * n * sizeof(float));
    double *row_loss = (double *)scratch;
    float *shift2 = (float *)(scratch + bytes_16((size_t)n * sizeof(double)));
    a.partial = shift2 + bytes_16((size_t)n * 4) / 4;
    a.shift2 = shift2;

    launch_kernel(target_shifts, (unsigned)((n + 7) / 8), 256, 0, shift2, xa, ha, targets, n, D);
    static size_t smem = 0;
    if (!smem) {
        smem = (size_t)STAGES * (BM + BN) * BK * sizeof(act_t) + CONSUMER_WARPS * STAGING +
               2 * STAGES * sizeof(uint64_t) + WGMMA_ALIGN;
        CUDA_CHECK(cudaFuncSetAttribute(head_exp_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    static int sms = 0;
    if (!sms) {
        int device;
        CUDA_CHECK(cudaGetDevice(&device));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    }
    int tiles = a.row_tiles * a.col_tiles;
    launch_kernel(head_exp_kernel, (unsigned)(tiles < sms ? tiles : sms), THREADS, smem, a,
                  row_map(x, n, 1, D, D, BM), row_map(head, V, 1, D, D, BN));
    launch_kernel(row_totals, cuda_grid((size_t)n), CUDA_BLOCK, 0, row_loss, row_scale, e, a.partial, targets, n, V,
                  a.col_tiles, dloss_scale);
    return sum_doubles_cuda(row_loss, (size_t)n);
}

/* ------------------------------------------------------------------ rows scaled */

template <int W> static __global__ void scale_rows_kernel(act_t *out, const act_t *x, const float *scale, int C,
                                                           size_t count)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, count)
    {
        size_t at = i * W;
        float v[W], s = scale[at / C];
        load_floats<W>(v, x + at);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] *= s;
        store_floats<W>(out + at, v);
    }
}

void scale_rows_cuda(void *out, const void *x, const float *scale, int n, int C)
{
    size_t count = (size_t)n * C;
    bool vec = vectorizable(C, out, x); /* then no access crosses a row */
    LAUNCH_VECTORIZED(scale_rows_kernel, vec, count, (act_t *)out, (const act_t *)x, scale, C,
                      vec ? count / ACT_VEC : count);
}
