/* The tensor-core building blocks of attention_cuda.cu: tiles of bf16 rows
 * copied into shared memory with cp.async, operands fetched with ldmatrix, and
 * warp-wide products with mma.sync m16n8k16 (bf16 operands, fp32
 * accumulation).
 *
 * A tile in shared memory holds rows of `ld` elements (the head dim plus 8:
 * the padding spreads ldmatrix's eight row addresses over all banks; rows stay
 * 16-byte aligned since head dims are multiples of 16).
 *
 * A warp's accumulator of a 16×(8·NT) product is float acc[NT][4]: element e of
 * acc[j] lies at row acc_row(e), column 8j + acc_col(e) (the m16n8 C layout;
 * acc_to_a makes it a left operand, mma_bf16.cuh). */
#ifndef FLAME_ATTENTION_MMA_CUH
#define FLAME_ATTENTION_MMA_CUH

#include <cstdint>

#include "cuda_launch.cuh"
#include "mma_bf16.cuh"

/* ------------------------------------------------------------------ global to shared */

/* ROWS rows of HD values into a tile of row length HD + 8, by all THREADS
 * threads: row r from src + r·stride, zeros from row `valid` on (src, row 0,
 * must be readable) */
template <int ROWS, int HD, int THREADS>
static __device__ __forceinline__ void load_tile(act_t *dst, const act_t *src, size_t stride,
                                                 int valid)
{
    constexpr int PER_ROW = HD / 8, PIECES = ROWS * PER_ROW; /* 16-byte pieces */
#pragma unroll
    for (int it = 0; it < (PIECES + THREADS - 1) / THREADS; it++) {
        int idx = it * THREADS + threadIdx.x;
        if (PIECES % THREADS != 0 && idx >= PIECES)
            break;
        int r = idx / PER_ROW, c = idx % PER_ROW * 8;
        bool ok = r < valid;
        cp_async16(dst + r * (HD + 8) + c, src + (size_t)(ok ? r : 0) * stride + c, ok);
    }
}

/* ------------------------------------------------------------------ operands */

/* the 16×16 A operand, rows m0.., depth k0.., of a tile stored [m][k] */
static __device__ __forceinline__ void load_a(uint32_t (&a)[4], const act_t *s, int ld, int m0,
                                              int k0)
{
    int l = lane_id(), q = l / 8;
    ldmatrix4<false>(a, s + (m0 + l % 8 + 8 * (q & 1)) * ld + k0 + 8 * (q >> 1));
}

/* The B operand of two products, columns n0.. and n0 + 8.. over depth k0..:
 * b[0..1] and b[2..3]; from a tile stored [n][k], or with KN one stored [k][n]. */
template <bool KN>
static __device__ __forceinline__ void load_b(uint32_t (&b)[4], const act_t *s, int ld, int k0,
                                              int n0)
{
    int l = lane_id(), q = l / 8;
    if (KN)
        ldmatrix4<true>(b, s + (k0 + l % 8 + 8 * (q & 1)) * ld + n0 + 8 * (q >> 1));
    else
        ldmatrix4<false>(b, s + (n0 + l % 8 + 8 * (q >> 1)) * ld + k0 + 8 * (q & 1));
}

/* ------------------------------------------------------------------ warp products */

/* acc (16 rows from m0 of A, 8·NT columns) += A · B over DEPTH (a multiple of
 * 16): A stored [m][k] in shared memory, B stored [n][k] (B_KN false) or [k][n]
 * (true), its columns from 0 */
template <int NT, int DEPTH, bool B_KN>
static __device__ __forceinline__ void warp_mma_shared(float (&acc)[NT][4], const act_t *a,
                                                       int lda, int m0, const act_t *b, int ldb)
{
    static_assert(NT % 2 == 0 && DEPTH % 16 == 0, "operands come in 16×16 pieces");
#pragma unroll
    for (int k0 = 0; k0 < DEPTH; k0 += 16) {
        uint32_t af[4];
        load_a(af, a, lda, m0, k0);
#pragma unroll
        for (int p = 0; p < NT / 2; p++) {
            uint32_t bf[4];
            load_b<B_KN>(bf, b, ldb, k0, 16 * p);
            mma(acc[2 * p], af, bf[0], bf[1]);
            mma(acc[2 * p + 1], af, bf[2], bf[3]);
        }
    }
}

/* the same with A in registers: KT slices 16 deep (acc_to_a) */
template <int NT, int KT, bool B_KN>
static __device__ __forceinline__ void warp_mma_regs(float (&acc)[NT][4], const uint32_t (&a)[KT][4],
                                                     const act_t *b, int ldb)
{
    static_assert(NT % 2 == 0, "columns come in pairs of 8");
#pragma unroll
    for (int s = 0; s < KT; s++)
#pragma unroll
        for (int p = 0; p < NT / 2; p++) {
            uint32_t bf[4];
            load_b<B_KN>(bf, b, ldb, 16 * s, 16 * p);
            mma(acc[2 * p], a[s], bf[0], bf[1]);
            mma(acc[2 * p + 1], a[s], bf[2], bf[3]);
        }
}

#endif
