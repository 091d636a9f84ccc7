/* What a programmatic dependent launch (kernels/cuda_launch.cuh) saves
 * between two kernels, outside flame, on the GPU machine: chains of 2,000
 * copies of n floats, each kernel reading the last one's output, launched
 * plainly and as programmatic dependents (griddepcontrol.wait, then
 * launch_dependents, at each kernel's start), on the legacy default stream
 * (flame's) and on a stream of its own; the time per kernel of each, from
 * events around the second of two passes.
 * Build and run there:
 *   nvcc -O2 -arch=sm_90 tools/launch_probe.cu -o launch_probe && ./launch_probe */
#include <cstdio>
#include <cuda_runtime.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        cudaError_t err_ = (call);                                                     \
        if (err_ != cudaSuccess) {                                                     \
            printf("%s: %s\n", #call, cudaGetErrorString(err_));                       \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

#define CHAIN 2000
#define MAX_N ((size_t)8 << 20)

template <bool DEPENDENT> __global__ void scaled_copy(float *dst, const float *src, size_t n)
{
    if (DEPENDENT) {
        asm volatile("griddepcontrol.wait;" ::: "memory");
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    }
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i] * 1.0001f;
}

/* ms: the second pass's time for CHAIN kernels */
static int time_chain(cudaStream_t stream, bool dependent, float *a, float *b, size_t n, int grid, float *ms)
{
    cudaLaunchAttribute overlap = {};
    overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    overlap.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = 256;
    config.stream = stream;
    config.attrs = &overlap;
    config.numAttrs = dependent ? 1 : 0;
    cudaEvent_t start, end;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&end));
    for (int pass = 0; pass < 2; pass++) {
        CHECK(cudaEventRecord(start, stream));
        for (int i = 0; i < CHAIN; i++) {
            float *dst = i & 1 ? a : b;
            const float *src = i & 1 ? b : a;
            CHECK(cudaLaunchKernelEx(&config, dependent ? scaled_copy<true> : scaled_copy<false>, dst, src, n));
        }
        CHECK(cudaEventRecord(end, stream));
        CHECK(cudaEventSynchronize(end));
    }
    CHECK(cudaEventElapsedTime(ms, start, end));
    return 0;
}

int main()
{
    const size_t sizes[] = {(size_t)1 << 10, (size_t)1 << 20, MAX_N};
    float *a, *b;
    CHECK(cudaMalloc(&a, MAX_N * sizeof(float)));
    CHECK(cudaMalloc(&b, MAX_N * sizeof(float)));
    CHECK(cudaMemset(a, 0, MAX_N * sizeof(float)));
    cudaStream_t own;
    CHECK(cudaStreamCreateWithFlags(&own, cudaStreamNonBlocking));
    for (size_t n : sizes) {
        int grid = (int)((n + 255) / 256);
        grid = grid < 132 * 8 ? grid : 132 * 8;
        for (int use_own = 0; use_own < 2; use_own++) {
            cudaStream_t stream = use_own ? own : 0;
            float plain, dependent;
            if (time_chain(stream, false, a, b, n, grid, &plain) || time_chain(stream, true, a, b, n, grid, &dependent))
                return 1;
            printf("n %9zu grid %4d stream %-6s: plain %.2f us/kernel, pdl %.2f us/kernel, saved %.2f\n", n, grid,
                   use_own ? "own" : "legacy", plain * 1000 / CHAIN, dependent * 1000 / CHAIN,
                   (plain - dependent) * 1000 / CHAIN);
        }
    }
    return 0;
}
