/* Hopper's tensor memory accelerator (TMA) and the barriers that go with it
 * (sm_90a), for kernels that split their warps into a producer, which copies
 * tiles from global to shared memory, and consumers, which multiply them
 * (wgmma.cuh):
 *  - a row map (row_map, on the host) describes a [tokens, heads, hd] bf16
 *    tensor; tma_rows copies ROWS tokens of one head into a swizzled tile
 *    (wgmma.cuh's layout: one copy per 64 columns), rows past the tensor's
 *    end as zeros;
 *  - the copies complete on an mbarrier: the producer announces the bytes
 *    (expect_bytes) and the barrier's phase completes when they have landed
 *    and its arrivals are in; consumers wait for the phase (wait_phase), and
 *    hand a buffer back by arriving on another barrier;
 *  - producer and consumers rebalance their registers (setmaxnreg);
 *  - the other way, a sum map (sum_map) describes a [tokens, heads, hd] fp32
 *    tensor that tiles of ROWS × hd fp32 in shared memory (the same swizzle,
 *    32 columns a block) are stored into or added onto (tma_sum_rows), the
 *    writes awaited by the issuing thread (tma_writes_wait), and read back
 *    from (tma_sum_rows_in, completing on an mbarrier as tma_rows).
 * PTX ISA: "Tensor copy", "mbarrier", "setmaxnreg", "membar/fence". */
#ifndef FLAME_TMA_CUH
#define FLAME_TMA_CUH

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <cuda.h>
#include <cudaTypedefs.h>

#include "wgmma.cuh"

/* ------------------------------------------------------------------ barriers */

static __device__ __forceinline__ void barrier_init(uint64_t *bar, int arrivals)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(arrivals)
                 : "memory");
}
/* makes the initialized barriers visible to the async proxy (the copies) */
static __device__ __forceinline__ void barrier_init_fence()
{
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
/* the current phase also waits for `bytes` of copies (announced before they are issued) */
static __device__ __forceinline__ void expect_bytes(uint64_t *bar, uint32_t bytes)
{
    asm volatile("mbarrier.expect_tx.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes)
                 : "memory");
}
static __device__ __forceinline__ void barrier_arrive(uint64_t *bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(shared_address(bar)) : "memory");
}
/* until the phase of parity `parity` has completed */
static __device__ __forceinline__ void wait_phase(uint64_t *bar, uint32_t parity)
{
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(shared_address(bar)), "r"(parity)
                     : "memory");
    } while (!done);
}

/* ------------------------------------------------------------------ registers */

template <int N> static __device__ __forceinline__ void registers_down()
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
}
template <int N> static __device__ __forceinline__ void registers_up()
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
}

/* ------------------------------------------------------------------ copies */

/* the map's box at column col of head `head` from token `token` into tile
 * (swizzled as the map says), completing on bar */
static __device__ __forceinline__ void tma_box(void *tile, const CUtensorMap *map, int col, int head, int token,
                                               uint64_t *bar)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes "
                 "[%0], [%1, {%3, %4, %5}], [%2];" ::"r"(shared_address(tile)),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(shared_address(bar)), "r"(col), "r"(head), "r"(token)
                 : "memory");
}

/* ROWS tokens from `token` of head `head` into a tile of HD columns kept as
 * HD / COLS boxes of ROWS rows × COLS (the map's box), completing on bar */
template <int ROWS, int HD, int COLS, typename T>
static __device__ __forceinline__ void tma_boxes(T *tile, const CUtensorMap *map, int head, int token, uint64_t *bar)
{
#pragma unroll
    for (int block = 0; block < HD / COLS; block++)
        tma_box(tile + block * ROWS * COLS, map, COLS * block, head, token, bar);
}

/* ROWS tokens from `token` of head `head` into a swizzled tile of ROWS rows
 * and HD columns, completing on bar */
template <int ROWS, int HD>
static __device__ __forceinline__ void tma_rows(act_t *tile, const CUtensorMap *map, int head, int token,
                                                uint64_t *bar)
{
    tma_boxes<ROWS, HD, 64>(tile, map, head, token, bar);
}

/* The driver's tensor-map encoder, found through the runtime so that nothing
 * links libcuda; a map of a [tokens, heads, hd] tensor of `bytes`-wide values
 * at x, a token's heads token_stride values after the one before's (a
 * multiple of 16 bytes), in boxes of `cols` columns of one head by `rows`
 * tokens with the 128-byte swizzle (cols · bytes = 128). */
static inline CUtensorMap head_rows_map(CUtensorMapDataType type, int bytes, const void *x, int tokens, int heads, int hd,
                                 size_t token_stride, int cols, int rows)
{
    static PFN_cuTensorMapEncodeTiled_v12000 encode;
    if (!encode) {
        cudaDriverEntryPointQueryResult found;
        void *fn = nullptr;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                             &found) != cudaSuccess ||
            found != cudaDriverEntryPointSuccess || !fn) {
            fprintf(stderr, "tma: the driver has no cuTensorMapEncodeTiled\n");
            exit(1);
        }
        encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
    }
    CUtensorMap map;
    cuuint64_t dims[3] = {(cuuint64_t)hd, (cuuint64_t)heads, (cuuint64_t)tokens};
    cuuint64_t strides[2] = {(cuuint64_t)hd * bytes, (cuuint64_t)token_stride * bytes}; /* dims 1 and 2 */
    cuuint32_t box[3] = {(cuuint32_t)cols, 1, (cuuint32_t)rows}, unit[3] = {1, 1, 1};
    CUresult r = encode(&map, type, 3, const_cast<void *>(x), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                        CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fprintf(stderr, "tma: cuTensorMapEncodeTiled failed (%d) for %d tokens × %d heads × %d\n", (int)r, tokens,
                heads, hd);
        exit(1);
    }
    return map;
}

/* The map of a [tokens, heads, hd] bf16 tensor at x (token_stride: heads·hd
 * when packed; a multiple of 8), copied `rows` tokens by 64 columns of one
 * head at a time */
static inline CUtensorMap row_map(const void *x, int tokens, int heads, int hd, size_t token_stride, int rows)
{
    return head_rows_map(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, x, tokens, heads, hd, token_stride, 64, rows);
}

/* ------------------------------------------------------------------ sums out */

/* The map of a packed [tokens, heads, hd] fp32 tensor at x, written `rows`
 * tokens by 32 columns of one head at a time (and read back) */
static inline CUtensorMap sum_map(float *x, int tokens, int heads, int hd, int rows)
{
    return head_rows_map(CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, x, tokens, heads, hd, (size_t)heads * hd, 32, rows);
}

/* where a tile of ROWS × HD fp32 (HD / 32 swizzled blocks of ROWS rows of 32)
 * keeps row r, column c */
template <int ROWS>
static __device__ __forceinline__ int sum_tile_at(int r, int c)
{
    return c / 32 * ROWS * 32 + r * 32 + ((c % 32 / 4) ^ (r % 8)) * 4 + c % 4;
}

/* tile's ROWS tokens from `token` of head `head` stored into the map's tensor
 * (add false) or added onto it (add true, each value atomically), rows past
 * the tensor's end left out; one thread issues, then awaits with
 * tma_writes_wait. The tile's values written by other threads must be made
 * visible to the copy first (async_view_of_shared, then a barrier). */
template <int ROWS, int HD>
static __device__ __forceinline__ void tma_sum_rows(const CUtensorMap *map, const float *tile, int head, int token,
                                                    bool add)
{
#pragma unroll
    for (int block = 0; block < HD / 32; block++) {
        uint32_t src = shared_address(tile + block * ROWS * 32);
        uint64_t m = reinterpret_cast<uint64_t>(map);
        if (add)
            asm volatile("cp.reduce.async.bulk.tensor.3d.global.shared::cta.add.tile.bulk_group "
                         "[%0, {%2, %3, %4}], [%1];" ::"l"(m), "r"(src), "r"(32 * block), "r"(head), "r"(token)
                         : "memory");
        else
            asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.tile.bulk_group "
                         "[%0, {%2, %3, %4}], [%1];" ::"l"(m), "r"(src), "r"(32 * block), "r"(head), "r"(token)
                         : "memory");
    }
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

/* the map's ROWS tokens from `token` of head `head` into a tile laid out as
 * tma_sum_rows reads it, rows past the tensor's end as zeros, completing on bar */
template <int ROWS, int HD>
static __device__ __forceinline__ void tma_sum_rows_in(float *tile, const CUtensorMap *map, int head, int token,
                                                       uint64_t *bar)
{
    tma_boxes<ROWS, HD, 32>(tile, map, head, token, bar);
}

/* until this thread's tma_sum_rows have written global memory (and read
 * their tiles) */
static __device__ __forceinline__ void tma_writes_wait()
{
    asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

/* this thread's writes to shared memory, visible to the asynchronous proxy
 * (copies out of it, warpgroup products reading it) */
static __device__ __forceinline__ void async_view_of_shared()
{
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

/* global memory's writes by the asynchronous proxy and by this thread, in one
 * order for both (between a copy's end and a flag, or a flag and a copy) */
static __device__ __forceinline__ void async_view_of_global()
{
    asm volatile("fence.proxy.async.global;" ::: "memory");
}

#endif
