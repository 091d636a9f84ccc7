/* GLA's forget gates on the GPU: the math of gla_gates_cpu.c,
 *     gk = logsigmoid(low · W1ᵀ + b1) / N,   dx = dgk · σ(−x) / N = dgk · −expm1(N·gk) / N
 * (dx written). low, W1, b1, gk and the gradients are bf16 (the CUDA op
 * table's activations); the arithmetic is fp32.
 * The forward makes each gk value from R products: a block holds W1 (as
 * [R][K], rows padded to whole groups of 8) and b1 in fp32 in shared memory,
 * and a thread makes 8 neighbouring values of one token's row, one 16-byte
 * store where the rows allow it. The backward is pointwise, ACT_VEC values
 * per thread where vectorizable. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla_cuda.h"

#define GATES_THREADS 256
#define GATES_COLS 8 /* gk values a thread makes, neighbours in a row */

/* a row's groups of GATES_COLS values, the last maybe part-full */
static __host__ __device__ int column_groups(int K) { return (K + GATES_COLS - 1) / GATES_COLS; }

/* fp32 in shared memory: W1ᵀ as [R][KP] (KP = K rounded up to GATES_COLS,
 * zeros past K), then b1 [KP] */
static size_t gates_shared_floats(int R, int K)
{
    return (size_t)(R + 1) * column_groups(K) * GATES_COLS;
}

static __device__ float logsigmoid(float x) { return fminf(x, 0.0f) - log1pf(expf(-fabsf(x))); }

static __global__ void __launch_bounds__(GATES_THREADS)
    gates_forward(act_t *gk, const act_t *low, const act_t *w1, const act_t *b1, int n, int R, int K,
                  float normalizer)
{
    extern __shared__ __align__(16) float weights[];
    int groups = column_groups(K), KP = groups * GATES_COLS;
    float *bias = weights + (size_t)R * KP;
    for (int i = threadIdx.x; i < (R + 1) * KP; i += blockDim.x) {
        int r = i / KP, j = i % KP;
        float v = j >= K ? 0.0f : r < R ? to_f32(w1[(size_t)j * R + r]) : to_f32(b1[j]);
        weights[i] = v;
    }
    __syncthreads();
    bool vec = K % GATES_COLS == 0 && reinterpret_cast<uintptr_t>(gk) % 16 == 0;
    GRID_STRIDE_LOOP(item, (size_t)n * groups) {
        size_t t = item / groups;
        int j0 = (int)(item % groups) * GATES_COLS;
        float x[GATES_COLS];
        load_floats<GATES_COLS>(x, bias + j0);
        const act_t *row = low + t * R;
#pragma unroll 4
        for (int r = 0; r < R; r++) {
            float l = to_f32(row[r]), w[GATES_COLS];
            load_floats<GATES_COLS>(w, weights + (size_t)r * KP + j0);
#pragma unroll
            for (int c = 0; c < GATES_COLS; c++)
                x[c] += l * w[c];
        }
#pragma unroll
        for (int c = 0; c < GATES_COLS; c++)
            x[c] = logsigmoid(x[c]) / normalizer;
        act_t *out = gk + t * K + j0;
        if (vec)
            store_floats<GATES_COLS>(out, x);
        else
            for (int c = 0; c < GATES_COLS && j0 + c < K; c++)
                from_f32(out + c, x[c]);
    }
}

/* σ(−x) is recovered from the bf16 gk and carries no more than gk's relative
 * rounding error (2^-9): e^y·|y| ≤ 1 − e^y for y = N·gk < 0 */
template <int W>
static __global__ void gates_backward(act_t *dx, const act_t *dgk, const act_t *gk, size_t n,
                                      float normalizer)
{
    GRID_STRIDE_LOOP(i, n / W) {
        float d[W], g[W];
        load_floats<W>(d, dgk + i * W);
        load_floats<W>(g, gk + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            d[k] = d[k] * -expm1f(normalizer * g[k]) / normalizer;
        store_floats<W>(dx + i * W, d);
    }
}

void gla_gates_forward_cuda(void *gk, const void *low, const void *w1, const void *b1, int n, int R, int K,
                            float normalizer)
{
    if (n == 0 || K == 0)
        return;
    if ((size_t)(R + 1) * K > GLA_GATES_CUDA_MAX_WEIGHTS) {
        fprintf(stderr, "gla: the forget gates on CUDA take at most %d weights (R+1)·K, not %zu\n",
                GLA_GATES_CUDA_MAX_WEIGHTS, (size_t)(R + 1) * K);
        exit(1);
    }
    size_t floats = gates_shared_floats(R, K); /* 196 KiB at most, the rows padded */
    static int sms = 0;
    if (sms == 0) {
        int device;
        CUDA_CHECK(cudaGetDevice(&device));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    }
    /* few enough blocks that staging the weights stays small beside the work */
    size_t items = (size_t)n * column_groups(K), wanted = (items + GATES_THREADS - 1) / GATES_THREADS;
    unsigned blocks = (unsigned)(wanted < (size_t)4 * sms ? wanted : (size_t)4 * sms);
    size_t bytes = floats * sizeof(float);
    CUDA_CHECK(cudaFuncSetAttribute(gates_forward, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    gates_forward<<<blocks, GATES_THREADS, bytes>>>(static_cast<act_t *>(gk), static_cast<const act_t *>(low),
                                                    static_cast<const act_t *>(w1), static_cast<const act_t *>(b1),
                                                    n, R, K, normalizer);
    CUDA_CHECK_LAUNCH();
}

void gla_gates_backward_cuda(void *dx, const void *dgk, const void *gk, size_t n, float normalizer)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(gates_backward, vectorizable(n, dx, dgk, gk), n, static_cast<act_t *>(dx),
                      static_cast<const act_t *>(dgk), static_cast<const act_t *>(gk), n,
                      normalizer);
}
