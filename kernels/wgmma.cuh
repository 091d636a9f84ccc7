/* Hopper's warpgroup products (wgmma, sm_90a) over tiles in shared memory.
 *
 * A warpgroup is four consecutive warps (128 threads, the first a multiple of
 * 128); it makes a 64×N product (N 64 or 128) 16 deep per instruction, the
 * instructions run asynchronously and are waited for in groups.
 *
 * Accumulators are float d[N/8][4], laid out as mma_bf16.cuh's: warp w of the
 * group holds rows 16w.., and element e of d[j] lies at row 16w + acc_row(e),
 * column 8j + acc_col(e). A left operand in registers has mma.sync's
 * m16n8k16 A layout per warp, so acc_to_a turns an accumulator into one.
 *
 * Operands in shared memory are swizzled tiles (as tma.cuh's copies write
 * them): R rows of HD
 * bf16 values (HD a multiple of 64) as HD/64 column blocks of R rows of 128
 * bytes, the 16-byte piece c of row r stored at piece c ^ (r % 8) of that row
 * (the 128-byte swizzle, which spreads a column's eight rows over all banks).
 * A tile starts 1024-byte aligned, the swizzle's period. One tile serves as
 * either kind of operand:
 *  - rows_operand: its rows are the product's rows (M, or N of a right
 *    operand B stored n by k), its columns the depth;
 *  - cols_operand: its rows are the depth, its columns the product's columns
 *    (a right operand stored k by n, read transposed).
 * The shared memory descriptor (PTX ISA, "Matrix Descriptor Format"): start
 * address, leading and stride byte offsets (all >> 4) and the swizzle mode.
 *
 * Registers an asynchronous product reads or writes stay the product's until
 * wgmma_wait: keep() after the wait tells the compiler so. */
#ifndef FLAME_WGMMA_CUH
#define FLAME_WGMMA_CUH

#include <cstdint>

#include "mma_bf16.cuh"

/* the arch-specific target (nvcc -arch sm_90a) that has wgmma */
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FLAME_WGMMA 1
#endif

#define WGMMA_ALIGN 1024 /* bytes: tiles start on the swizzle's period */

/* On the host: whether `kernel` has this build's sm_90a code and the device
 * runs it (compute capability 9.0). A build without sm_90a has the kernels
 * empty, compiled for other GPUs. */
template <typename K> static inline bool wgmma_runs(K kernel)
{
    cudaFuncAttributes attributes;
    bool here = device_capability() == 90 && cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess &&
                attributes.binaryVersion == 90;
    cudaGetLastError(); /* a kernel without an image here is an answer, not an error */
    return here;
}

static __device__ __forceinline__ int warpgroup_id() { return threadIdx.x / 128; }
/* the warp within its warpgroup */
static __device__ __forceinline__ int warpgroup_warp() { return threadIdx.x / 32 % 4; }

/* ------------------------------------------------------------------ descriptors */

static __device__ __forceinline__ uint64_t wgmma_descriptor(const void *p, uint32_t leading,
                                                            uint32_t stride)
{
    uint64_t d = (shared_address(p) & 0x3FFFFu) >> 4;
    d |= (uint64_t)((leading >> 4) & 0x3FFFu) << 16;
    d |= (uint64_t)((stride >> 4) & 0x3FFFu) << 32;
    d |= (uint64_t)1 << 62; /* the 128-byte swizzle */
    return d;
}

/* slice s (columns 16s..16s+15) of rows row0.. of a tile of R rows, as the
 * rows of a product: eight-row groups 1024 bytes apart, the slice 32 bytes
 * into its column block */
template <int R>
static __device__ __forceinline__ uint64_t rows_operand(const act_t *tile, int row0, int s)
{
    const unsigned char *p = reinterpret_cast<const unsigned char *>(tile);
    return wgmma_descriptor(p + (s / 4) * R * 128 + row0 * 128 + (s % 4) * 32, 16, 1024);
}

/* rows 16s..16s+15 of a tile of R rows as the depth of a product, its columns
 * the product's: column blocks R·128 bytes apart, eight-row groups 1024 */
template <int R>
static __device__ __forceinline__ uint64_t cols_operand(const act_t *tile, int s)
{
    const unsigned char *p = reinterpret_cast<const unsigned char *>(tile);
    return wgmma_descriptor(p + s * 16 * 128, R * 128, 1024);
}

/* ------------------------------------------------------------------ ordering */

/* before a group's first product, and after registers it uses were written */
static __device__ __forceinline__ void wgmma_fence()
{
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
static __device__ __forceinline__ void wgmma_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
/* until at most N committed groups are in flight */
template <int N> static __device__ __forceinline__ void wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
template <int NT> static __device__ __forceinline__ void keep(float (&d)[NT][4])
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            asm volatile("" : "+f"(d[j][e])::"memory");
}
template <int KT> static __device__ __forceinline__ void keep(uint32_t (&a)[KT][4])
{
#pragma unroll
    for (int j = 0; j < KT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            asm volatile("" : "+r"(a[j][e])::"memory");
}

/* ------------------------------------------------------------------ instructions */

/* d (64×N) = A·B, or += with accumulate; A and B from descriptors (wgmma_ss)
 * or A from registers (wgmma_rs); TRANS_B 1 for a cols_operand B, TRANS_A 1
 * for a cols_operand A (its columns the product's rows). The accumulator's
 * registers are the instruction's first operands, %0 on. */
#define WGMMA_D(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define WGMMA_D64 WGMMA_D(0), WGMMA_D(1), WGMMA_D(2), WGMMA_D(3), WGMMA_D(4), WGMMA_D(5), WGMMA_D(6), WGMMA_D(7)
#define WGMMA_D128 \
    WGMMA_D64, WGMMA_D(8), WGMMA_D(9), WGMMA_D(10), WGMMA_D(11), WGMMA_D(12), WGMMA_D(13), WGMMA_D(14), \
        WGMMA_D(15)
#define WGMMA_R64 \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define WGMMA_R128 \
    WGMMA_R64 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
/* the predicate that makes the instruction add (scale-d) */
#define WGMMA_SCALE_D(k) "{\n.reg .pred p;\nsetp.ne.b32 p, %" #k ", 0;\n"

template <int TRANS_B, int TRANS_A = 0>
static __device__ __forceinline__ void wgmma_ss(float (&d)[8][4], uint64_t a, uint64_t b, int accumulate)
{
    asm volatile(WGMMA_SCALE_D(34) "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" WGMMA_R64
                 "}, %32, %33, p, 1, 1, %36, %35;\n}"
                 : WGMMA_D64
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B), "n"(TRANS_A));
}

template <int TRANS_B>
static __device__ __forceinline__ void wgmma_rs(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b,
                                                int accumulate)
{
    asm volatile(WGMMA_SCALE_D(37) "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" WGMMA_R64
                 "}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}"
                 : WGMMA_D64
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TRANS_B));
}

template <int TRANS_B, int TRANS_A = 0>
static __device__ __forceinline__ void wgmma_ss(float (&d)[16][4], uint64_t a, uint64_t b, int accumulate)
{
    asm volatile(WGMMA_SCALE_D(66) "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" WGMMA_R128
                 "}, %64, %65, p, 1, 1, %68, %67;\n}"
                 : WGMMA_D128
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B), "n"(TRANS_A));
}

template <int TRANS_B>
static __device__ __forceinline__ void wgmma_rs(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b,
                                                int accumulate)
{
    asm volatile(WGMMA_SCALE_D(69) "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" WGMMA_R128
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}"
                 : WGMMA_D128
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TRANS_B));
}

#undef WGMMA_SCALE_D
#undef WGMMA_R128
#undef WGMMA_R64
#undef WGMMA_D128
#undef WGMMA_D64
#undef WGMMA_D

/* ------------------------------------------------------------------ products */

/* d (64×N) (+)= rows row0.. of tile a (RA rows) · tile b (N rows)ᵀ, DEPTH
 * columns of both: both rows_operands */
template <int N, int DEPTH, int RA>
static __device__ __forceinline__ void wg_product_rows(float (&d)[N / 8][4], const act_t *a, int row0,
                                                       const act_t *b, bool accumulate)
{
#pragma unroll
    for (int s = 0; s < DEPTH / 16; s++)
        wgmma_ss<0>(d, rows_operand<RA>(a, row0, s), rows_operand<N>(b, 0, s), accumulate || s > 0);
}

/* d (64×N) += a (registers, KT slices 16 deep) · tile b (16·KT rows from 0
 * of RB, N columns): b a cols_operand */
template <int N, int KT, int RB>
static __device__ __forceinline__ void wg_product_regs(float (&d)[N / 8][4], const uint32_t (&a)[KT][4],
                                                       const act_t *b)
{
#pragma unroll
    for (int s = 0; s < KT; s++)
        wgmma_rs<1>(d, a[s], cols_operand<RB>(b, s), 1);
}

/* d (64×N) = tile a's transpose (16·KT rows of RA, its 64 columns the
 * product's rows) · tile b (16·KT rows of RB, N columns): both cols_operands */
template <int N, int KT, int RA, int RB>
static __device__ __forceinline__ void wg_product_cols(float (&d)[N / 8][4], const act_t *a, const act_t *b)
{
#pragma unroll
    for (int s = 0; s < KT; s++)
        wgmma_ss<1, 1>(d, cols_operand<RA>(a, s), cols_operand<RB>(b, s), s > 0);
}

#endif
