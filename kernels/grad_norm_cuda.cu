/* Σ x² in double, for the global gradient norm. Each block sums a fixed
 * chunk of x, then one block adds the chunks' sums in a fixed order: the
 * result is the same on every run and every GPU (block size being fixed). */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

#define SQUARES_CHUNK ((size_t)CUDA_BLOCK * 64) /* elements summed by one block */
#define SUM_THREADS 1024

/* W values a thread at a time (16-byte accesses where x is aligned), the
 * chunk's last values that do not fill W one at a time */
template <int W> static __global__ void chunk_sum_squares(double *partial, const float *x, size_t n)
{
    await_inputs();
    size_t start = (size_t)blockIdx.x * SQUARES_CHUNK;
    size_t end = min(n, start + SQUARES_CHUNK), whole = start + (end - start) / W * W;
    double s = 0.0;
    for (size_t i = start + threadIdx.x * W; i < whole; i += blockDim.x * W) {
        float v[W];
        load_floats<W>(v, x + i);
#pragma unroll
        for (int k = 0; k < W; k++)
            s += (double)v[k] * v[k];
    }
    for (size_t i = whole + threadIdx.x; i < end; i += blockDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

/* One block: thread t adds x[t], x[t + SUM_THREADS], … then the block adds
 * the threads' sums. x[0] is written after every thread has read its share. */
static __global__ void sum_in_place(double *x, size_t n)
{
    await_inputs();
    double s = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        s += x[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        x[0] = s;
}

double sum_doubles_cuda(double *x, size_t n)
{
    if (n == 0)
        return 0.0;
    launch_kernel(sum_in_place, 1, SUM_THREADS, 0, x, n);
    double total;
    cuda_download(&total, x, sizeof total);
    return total;
}

double sum_squares_cuda(const float *x, size_t n)
{
    size_t chunks = (n + SQUARES_CHUNK - 1) / SQUARES_CHUNK;
    if (chunks == 0)
        return 0.0;
    double *partial = (double *)cuda_scratch(chunks * sizeof(double));
    if (reinterpret_cast<uintptr_t>(x) % 16 == 0)
        launch_kernel(chunk_sum_squares<4>, (unsigned)chunks, CUDA_BLOCK, 0, partial, x, n);
    else
        launch_kernel(chunk_sum_squares<1>, (unsigned)chunks, CUDA_BLOCK, 0, partial, x, n);
    return sum_doubles_cuda(partial, chunks);
}
