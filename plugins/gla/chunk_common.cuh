/* What the chunked recurrences on the GPU (GLA's, gla_chunk.cu, and GSA's slot
 * pass over the same states, gsa_slots_chunk.cu) both use: a chunk of one
 * sequence and the table of a batch's chunks, sizes in `work`, the
 * activations' pointers, the fast exponential, the addressing of [n, H,
 * width] tensors and of the checkpointed states, a chunk's tile copied
 * into shared memory by cp.async, a warp's tensor-core product of two bf16
 * tiles in shared memory, and its result stored. Mamba2's
 * SSD (ssd_chunk.cu) uses them as well. */
#ifndef FLAME_CHUNK_COMMON_CUH
#define FLAME_CHUNK_COMMON_CUH

#include <cstddef>
#include <cstdint>

#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla.h"
#include "mma_bf16.cuh"

#define CHUNK_TABLE_THREADS 1024

/* tokens [t0, t1) of one sequence, and whether they are its first / last chunk */
typedef struct chunk {
    int t0, t1, first, last;
} chunk;

static inline size_t align4(size_t floats) { return (floats + 3) / 4 * 4; }

/* floats that hold `count` bf16 values, a multiple of 4 (16 bytes) */
static inline size_t bf16_floats(size_t count) { return align4((count + 1) / 2); }

static __host__ __device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* the entry points' void pointers: activations of the CUDA op table */
static inline const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static inline act_t *act(void *p) { return static_cast<act_t *>(p); }

static __device__ __forceinline__ float exp2_fast(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* offset of token t, head h in a [n, H, width] tensor */
static __device__ __forceinline__ size_t at(int t, int h, int H, int width)
{
    return ((size_t)t * H + h) * width;
}

/* the same where a token's heads of `width` start `stride` values after the
 * token before's (column blocks of a joined projection's output) */
static __device__ __forceinline__ size_t strided_at(int t, int h, size_t stride, int width)
{
    return (size_t)t * stride + (size_t)h * width;
}

/* the rows×cols state of head h before token t0 (a chunk start, not a
 * sequence's first): slot t0/GLA_CHUNK − 1, as gla_recurrence_cpu.c keeps it */
static __device__ __forceinline__ size_t state_at(int t0, int h, int H, int rows, int cols)
{
    return ((size_t)(t0 / GLA_CHUNK - 1) * H + h) * rows * cols;
}

/* ------------------------------------------------------------------ the chunks */

/* exclusive prefix sum of x over the block of CHUNK_TABLE_THREADS, its total in *total */
static __device__ int block_exclusive_sum(int x, int *total)
{
    __shared__ int warp_sums[CHUNK_TABLE_THREADS / 32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int inclusive = x;
    for (int off = 1; off < 32; off *= 2) {
        int y = __shfl_up_sync(0xffffffffu, inclusive, off);
        if (lane >= off)
            inclusive += y;
    }
    if (lane == 31)
        warp_sums[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
        int w = warp_sums[lane];
        for (int off = 1; off < 32; off *= 2) {
            int y = __shfl_up_sync(0xffffffffu, w, off);
            if (lane >= off)
                w += y;
        }
        warp_sums[lane] = w;
    }
    __syncthreads();
    int before = inclusive - x + (warp > 0 ? warp_sums[warp - 1] : 0);
    *total = warp_sums[CHUNK_TABLE_THREADS / 32 - 1];
    __syncthreads(); /* the next call writes warp_sums again */
    return before;
}

/* one block: every sequence's chunks, in order, from the device offsets */
static __global__ void build_chunk_table(chunk *chunks, const int32_t *cu, int n_seqs)
{
    await_inputs();
    int done = 0; /* chunks of the sequences of earlier rounds */
    for (int s0 = 0; s0 < n_seqs; s0 += CHUNK_TABLE_THREADS) {
        int s = s0 + threadIdx.x;
        int begin = s < n_seqs ? cu[s] : 0, end = s < n_seqs ? cu[s + 1] : 0;
        int count = (end - begin + GLA_CHUNK - 1) / GLA_CHUNK, total;
        chunk *out = chunks + done + block_exclusive_sum(count, &total);
        for (int j = 0; j < count; j++) {
            int t0 = begin + j * GLA_CHUNK;
            out[j] = chunk{t0, min(t0 + GLA_CHUNK, end), j == 0, j == count - 1};
        }
        done += total;
    }
}

/* the number of the batch's chunks, from the host's offsets */
static inline int count_chunks(const int32_t *cu_host, int n_seqs)
{
    int count = 0;
    for (int s = 0; s < n_seqs; s++)
        count += ceil_div(cu_host[s + 1] - cu_host[s], GLA_CHUNK);
    return count;
}

/* the table of the batch's chunks into `chunks` (cu_seqlens on the host and on
 * the device); returns the number of chunks */
static inline int build_chunks(chunk *chunks, const int32_t *cu_host, const int32_t *cu_device,
                               int n_seqs)
{
    launch_kernel(build_chunk_table, 1, CHUNK_TABLE_THREADS, 0, chunks, cu_device, n_seqs);
    return count_chunks(cu_host, n_seqs);
}

/* ------------------------------------------------------------------ tensor-core products */

/* The 16×16 operand A (rows m0.., depth k0..) of a product: from a tile stored
 * [m][k], or with KM from one stored [k][m]; rows W elements long. */
template <bool KM, int W>
static __device__ __forceinline__ void load_a(uint32_t (&a)[4], const act_t (*s)[W], int m0, int k0)
{
    int l = lane_id(), q = l / 8;
    if (KM)
        ldmatrix4<true>(a, &s[k0 + l % 8 + 8 * (q >> 1)][m0 + 8 * (q & 1)]);
    else
        ldmatrix4<false>(a, &s[m0 + l % 8 + 8 * (q & 1)][k0 + 8 * (q >> 1)]);
}

/* The operand B of two products, columns n0.. and n0 + 8.. over depth k0..:
 * b[0..1] and b[2..3]. From a tile stored [n][k], or with KN one stored [k][n]. */
template <bool KN, int W>
static __device__ __forceinline__ void load_b(uint32_t (&b)[4], const act_t (*s)[W], int k0, int n0)
{
    int l = lane_id(), q = l / 8;
    if (KN)
        ldmatrix4<true>(b, &s[k0 + l % 8 + 8 * (q & 1)][n0 + 8 * (q >> 1)]);
    else
        ldmatrix4<false>(b, &s[n0 + l % 8 + 8 * (q >> 1)][k0 + 8 * (q & 1)]);
}

/* A warp's product: acc[j] (rows m0..m0+15, columns n0 + 8j..) += Σ_k a[m][k] b[k][n]
 * over k in [k_begin, k_end), multiples of 16; operand layouts as load_a / load_b. */
template <int NT, bool A_KM, bool B_KN, int WA, int WB>
static __device__ void warp_product(float (&acc)[NT][4], const act_t (*a)[WA],
                                    const act_t (*b)[WB], int m0, int n0, int k_begin, int k_end)
{
    static_assert(NT % 2 == 0, "columns come in pairs of 8");
    for (int k0 = k_begin; k0 < k_end; k0 += 16) /* the tensor cores' k step */ {
        uint32_t af[4];
        load_a<A_KM>(af, a, m0, k0);
#pragma unroll
        for (int p = 0; p < NT / 2; p++) {
            uint32_t bf[4];
            load_b<B_KN>(bf, b, k0, n0 + 16 * p);
            mma(acc[2 * p], af, bf[0], bf[1]);
            mma(acc[2 * p + 1], af, bf[2], bf[3]);
        }
    }
}

/* The warp's 16×32 block of a 64×64 output tile: rows m0.., columns n0.. */
static __device__ __forceinline__ int block_row() { return 16 * (warp_id() % 4); }
static __device__ __forceinline__ int block_col() { return 32 * (warp_id() / 4); }

/* a kernel's dynamic shared memory raised to `bytes` (above the default 48 KiB) */
template <typename K> static size_t allow_shared(K kernel, size_t bytes)
{
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return bytes;
}

/* ------------------------------------------------------------------ tensor-core results */

/* dst[m0 + row][n0 + col] = acc (or += with ADD) where row < rows and col <
 * cols; a lane's two neighbouring columns in one access where aligned for it,
 * since single 2-byte stores waste the memory's sectors */
template <bool ADD, int NT, typename T>
static __device__ void store_acc(T *dst, size_t stride, int rows, int cols,
                                 const float (&acc)[NT][4], int m0, int n0)
{
    bool pairs = stride % 2 == 0 && reinterpret_cast<uintptr_t>(dst) % (2 * sizeof(T)) == 0;
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e += 2) { /* acc_col(e) is even, acc_col(e + 1) the next */
            int r = m0 + acc_row(e), c = n0 + 8 * j + acc_col(e);
            if (r >= rows)
                continue;
            T *p = dst + r * stride + c;
            float two[2] = {acc[j][e], acc[j][e + 1]};
            if (pairs && c + 1 < cols) {
                if (ADD) {
                    float old[2];
                    load_floats<2>(old, p);
                    two[0] += old[0], two[1] += old[1];
                }
                store_floats<2>(p, two);
            } else {
                for (int u = 0; u < 2 && c + u < cols; u++)
                    from_f32(p + u, ADD ? to_f32(p[u]) + two[u] : two[u]);
            }
        }
}

/* ------------------------------------------------------------------ tiles through cp.async */

/* Rows [0, GLA_CHUNK) and columns [0, COLS) of the tile at p (rows `stride`
 * elements apart) into s, shared by NT threads: 0 past `cols`, and past `rows`
 * 0 too, or with PAD_LAST the last row again (as fetch). By cp.async where
 * whole 16-byte pieces can go, otherwise through registers. */
template <bool PAD_LAST, int NT, int COLS, typename T, int W>
static __device__ void copy_tile(T (*s)[W], const T *p, size_t stride, int rows, int cols)
{
    constexpr int PER = 16 / sizeof(T), PER_ROW = COLS / PER, COUNT = GLA_CHUNK * PER_ROW / NT;
    static_assert(COUNT * NT == GLA_CHUNK * PER_ROW && COLS <= W, "whole 16-byte pieces per thread");
    bool vec = stride % PER == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
#pragma unroll
    for (int k = 0; k < COUNT; k++) {
        int idx = threadIdx.x + k * NT, r = idx / PER_ROW, c = idx % PER_ROW * PER;
        int src = PAD_LAST ? min(r, rows - 1) : r;
        bool live = src < rows && c < cols;
        const T *from = p + (size_t)src * stride + c;
        if (vec && (c + PER <= cols || !live))
            cp_async16(&s[r][c], live ? from : p, live);
        else
#pragma unroll
            for (int e = 0; e < PER; e++)
                from_f32(&s[r][c + e], live && c + e < cols ? to_f32(from[e]) : 0.0f);
    }
}

/* Rows [0, rows) and columns [0, cols) of the bf16 tile s (ROWS × COLS at
 * most) to dst, rows `stride` elements apart, shared by NT threads: 16 bytes
 * a store where aligned, so that each store fills whole sectors (stores
 * straight from the accumulators leave them partly written, and the L2
 * merges each part). */
template <int NT, int ROWS, int COLS, int W>
static __device__ void write_tile(act_t *dst, size_t stride, int rows, int cols, const act_t (*s)[W])
{
    constexpr int PER_ROW = COLS / 8;
    static_assert(COLS % 8 == 0 && COLS <= W, "whole 16-byte pieces");
    bool vec = stride % 8 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0;
    for (int idx = threadIdx.x; idx < ROWS * PER_ROW; idx += NT) {
        int r = idx / PER_ROW, c = idx % PER_ROW * 8;
        if (r >= rows || c >= cols)
            continue;
        act_t *to = dst + r * stride + c;
        if (vec && c + 8 <= cols)
            *reinterpret_cast<uint4 *>(to) = *reinterpret_cast<const uint4 *>(&s[r][c]);
        else
            for (int e = 0; e < 8 && c + e < cols; e++)
                to[e] = s[r][c + e];
    }
}

/* A walk's software pipeline over `steps` chunks (or heads) through STAGES
 * buffers: issue(k) starts step k's copies (cp.async; nothing past the last
 * step), each step's one group; use(k) runs once step k's copies are in
 * shared memory for every thread and step k − 1's buffer is free again, while
 * the next STAGES − 1 steps' copies are in flight. */
template <int STAGES, typename Issue, typename Use>
static __device__ void pipeline(int steps, Issue issue, Use use)
{
    static_assert(STAGES >= 2, "one buffer used, at least one loading");
    for (int k = 0; k < STAGES - 1; k++) {
        issue(k);
        cp_async_commit();
    }
    for (int k = 0; k < steps; k++) {
        cp_async_wait<STAGES - 2>(); /* this thread's copies of step k are in */
        __syncthreads();             /* everyone's; and step k − 1's buffer is read */
        issue(k + STAGES - 1);
        cp_async_commit();
        use(k);
    }
}

#endif
