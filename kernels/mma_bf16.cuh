/* Tensor-core primitives shared by the plugins' CUDA kernels (sm_80 and newer):
 * asynchronous copies from global to shared memory (cp.async), operands
 * fetched from shared memory with ldmatrix, and the warp-wide product
 * mma.sync m16n8k16 with bf16 operands and fp32 accumulation.
 *
 * A warp's 16×8 fp32 accumulator is float c[4]: element e lies at row
 * acc_row(e), column acc_col(e) (the m16n8 C layout). The same registers,
 * rounded to bf16 two by two (acc_to_a), are the A operand of a product with
 * that accumulator as its left factor: the C layout of two neighbouring 16×8
 * tiles is the A layout of one 16×16 slice. */
#ifndef FLAME_MMA_BF16_CUH
#define FLAME_MMA_BF16_CUH

#include <cstdint>

#include "cuda_launch.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "bf16 mma.sync and cp.async need sm_80 or newer"
#endif

static __device__ __forceinline__ int lane_id() { return threadIdx.x % 32; }
static __device__ __forceinline__ int warp_id() { return threadIdx.x / 32; }

/* where element e (0..3) of a 16×8 fp32 accumulator lies: row, column */
static __device__ __forceinline__ int acc_row(int e) { return lane_id() / 4 + 8 * (e / 2); }
static __device__ __forceinline__ int acc_col(int e) { return 2 * (lane_id() % 4) + e % 2; }

static __device__ __forceinline__ uint32_t shared_address(const void *p)
{
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/* 16 bytes from global to shared memory, asynchronously; 16 zero bytes when
 * !valid (src is then not read, but must still be a valid address) */
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_address(dst)),
                 "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}

/* 4 bytes from global to shared memory, asynchronously (through L1, as
 * cp.async takes pieces under 16 bytes); 4 zero bytes when !valid */
static __device__ __forceinline__ void cp_async4(void *dst, const void *src, bool valid)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(shared_address(dst)),
                 "l"(src), "r"(valid ? 4 : 0)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;" ::: "memory");
}

/* waits until at most N of this thread's committed groups are still in flight */
template <int N> static __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* four 8×8 bf16 matrices of shared memory; lane l gives the address of row
 * l % 8 of matrix l / 8 */
template <bool TRANS> static __device__ __forceinline__ void ldmatrix4(uint32_t (&r)[4], const act_t *p)
{
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(shared_address(p))
                     : "memory");
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(shared_address(p))
                     : "memory");
}

/* c (16×8, fp32) += a (16×16) · b (16×8), bf16 operands; not volatile, so the
 * compiler may schedule products among the loads */
static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                           uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x (lo) in the low half */
    return *reinterpret_cast<uint32_t *>(&v);
}

/* a 16×(8·NT) accumulator as the A operand of NT/2 slices 16 deep, in bf16 */
template <int NT>
static __device__ __forceinline__ void acc_to_a(uint32_t (&a)[NT / 2][4], const float (&c)[NT][4])
{
#pragma unroll
    for (int s = 0; s < NT / 2; s++) {
        a[s][0] = pack_bf16(c[2 * s][0], c[2 * s][1]);
        a[s][1] = pack_bf16(c[2 * s][2], c[2 * s][3]);
        a[s][2] = pack_bf16(c[2 * s + 1][0], c[2 * s + 1][1]);
        a[s][3] = pack_bf16(c[2 * s + 1][2], c[2 * s + 1][3]);
    }
}

#endif
