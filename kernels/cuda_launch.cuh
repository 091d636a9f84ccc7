/* How the CUDA kernels are launched and how they touch memory: one block
 * size, grids for grid-stride loops over n elements, and loads and stores of
 * W neighbouring values at once (16 bytes where alignment allows), widened to
 * fp32 for the arithmetic and rounded back on the way out. Activations are
 * bf16 (act_t); gradients of parameters and optimizer state are fp32. */
#ifndef FLAME_CUDA_LAUNCH_CUH
#define FLAME_CUDA_LAUNCH_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>

#include "cuda_check.h"

#define CUDA_BLOCK 256
/* enough blocks to fill any current GPU many times; grid-stride loops do the rest */
#define CUDA_MAX_GRID 65536

static inline unsigned cuda_grid(size_t n)
{
    size_t blocks = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    return (unsigned)(blocks < CUDA_MAX_GRID ? blocks : CUDA_MAX_GRID);
}

/* for (size_t i = ...; i < n; i += ...) over the whole grid */
#define GRID_STRIDE_LOOP(i, n)                                                  \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);     \
         i += (size_t)gridDim.x * blockDim.x)

/* the activation type of the CUDA op table */
typedef __nv_bfloat16 act_t;

/* bf16 values in one 16-byte access */
#define ACT_VEC 8

/* Whether a kernel over n values (or rows of n values) can move ACT_VEC of
 * them per access: n a multiple of ACT_VEC and every pointer 16-byte aligned
 * (NULL is). Ops are called on pointers into the middle of larger buffers. */
template <typename... P> static inline bool vectorizable(size_t n, P... ptrs)
{
    return n % ACT_VEC == 0 && ((reinterpret_cast<uintptr_t>(ptrs) % 16 == 0) && ...);
}

/* A step is some 1,400 kernels, each waiting on the one before it. On sm_90
 * and later they are launched as programmatic dependents: a kernel's blocks
 * may be dispatched while the kernel before it in the stream is still
 * running, so the launch's latency hides under that kernel's last blocks.
 * Every kernel flame launches therefore begins with await_inputs(): it
 * waits until the kernel before has finished and its writes are visible
 * (nothing the kernel reads or writes is touched before), then lets the
 * kernel after it be dispatched. Before sm_90 it is nothing, and launches
 * are ordinary ones. */
static __device__ __forceinline__ void await_inputs()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* this process's device's compute capability, major·10 + minor (90: the
 * H100 and H200) */
static inline int device_capability(void)
{
    static int capability = -1;
    if (capability < 0) {
        int device, major, minor;
        CUDA_CHECK(cudaGetDevice(&device));
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
        CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
        capability = 10 * major + minor;
    }
    return capability;
}

/* whether this process's device takes programmatic dependent launches */
static inline bool dependent_launches(void) { return device_capability() >= 90; }

/* launch_kernel(kernel, grid, block, smem, args...) on the default stream, as a
 * programmatic dependent where the device has them; a bad configuration
 * is reported here, errors inside the kernel at the next synchronizing call */
template <typename... Params, typename... Args>
static inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                                 Args &&...args)
{
    cudaLaunchAttribute overlap = {};
    overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    overlap.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.attrs = &overlap;
    config.numAttrs = dependent_launches() ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Args &&>(args)...));
}

/* kernel<W>(args...) over a grid-stride loop of n / W accesses: W = ACT_VEC
 * when vec, 1 otherwise */
#define LAUNCH_VECTORIZED(kernel, vec, n, ...)                                         \
    do {                                                                               \
        if (vec)                                                                       \
            launch_kernel(kernel<ACT_VEC>, cuda_grid((n) / ACT_VEC), CUDA_BLOCK, 0,    \
                          __VA_ARGS__);                                                \
        else                                                                           \
            launch_kernel(kernel<1>, cuda_grid(n), CUDA_BLOCK, 0, __VA_ARGS__);        \
    } while (0)

/* W values of type T moved at once; aligned to 16 bytes at most, so 8 floats
 * take two accesses */
template <typename T, int W> struct alignas(sizeof(T) * W < 16 ? sizeof(T) * W : 16) packed {
    T v[W];
};

static __device__ __forceinline__ float to_f32(float x) { return x; }
static __device__ __forceinline__ float to_f32(act_t x) { return __bfloat162float(x); }
static __device__ __forceinline__ void from_f32(float *dst, float x) { *dst = x; }
/* round to nearest even */
static __device__ __forceinline__ void from_f32(act_t *dst, float x)
{
    *dst = __float2bfloat16_rn(x);
}

/* f[k] = p[k] for k < W; p aligned as packed<T, W> */
template <int W, typename T> __device__ __forceinline__ void load_floats(float (&f)[W], const T *p)
{
    packed<T, W> r = *reinterpret_cast<const packed<T, W> *>(p);
#pragma unroll
    for (int k = 0; k < W; k++)
        f[k] = to_f32(r.v[k]);
}

/* p[k] = f[k] for k < W; p aligned as packed<T, W> */
template <int W, typename T> __device__ __forceinline__ void store_floats(T *p, const float (&f)[W])
{
    packed<T, W> r;
#pragma unroll
    for (int k = 0; k < W; k++)
        from_f32(&r.v[k], f[k]);
    *reinterpret_cast<packed<T, W> *>(p) = r;
}

#endif
