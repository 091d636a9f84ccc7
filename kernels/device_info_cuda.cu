/* What the GPU can do and what flame uses of it: the bf16 matrix-multiply peak
 * that MFU is measured against (timed, not read from a data sheet, so it is
 * the peak this card, clock and cuBLASLt reach), and device memory in use. */
#include <cublasLt.h>
#include <cuda_bf16.h>

#include "cublas_check.h"
#include "cuda_check.h"
#include "cuda_kernels.h"

enum { PEAK_SIZE = 8192, PEAK_WARMUP = 3, PEAK_TIMED = 20 };

static cublasLtMatrixLayout_t bf16_square(int size)
{
    cublasLtMatrixLayout_t l;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, CUDA_R_16BF, size, size, size));
    return l;
}

/* the best algorithm the heuristic offers for C = A·B, all bf16 [size, size] */
static cublasLtMatmulAlgo_t pick_algo(cublasLtHandle_t h, cublasLtMatmulDesc_t desc,
                                      cublasLtMatrixLayout_t l, size_t workspace)
{
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
    cublasLtMatmulHeuristicResult_t best;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, l, l, l, l, pref, 1, &best, &found));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (!found) {
        fprintf(stderr, "cuBLASLt: no bf16 algorithm for %d^3\n", PEAK_SIZE);
        exit(1);
    }
    return best.algo;
}

double cuda_bf16_peak_tflops(void)
{
    const size_t elems = (size_t)PEAK_SIZE * PEAK_SIZE, workspace = (size_t)32 << 20;
    void *a, *b, *c, *ws;
    CUDA_CHECK(cudaMalloc(&a, elems * sizeof(__nv_bfloat16)));
    CUDA_CHECK(cudaMalloc(&b, elems * sizeof(__nv_bfloat16)));
    CUDA_CHECK(cudaMalloc(&c, elems * sizeof(__nv_bfloat16)));
    CUDA_CHECK(cudaMalloc(&ws, workspace));
    /* zeros would let the hardware idle through the products: fill with a pattern */
    CUDA_CHECK(cudaMemset(a, 0x3c, elems * sizeof(__nv_bfloat16)));
    CUDA_CHECK(cudaMemset(b, 0x3b, elems * sizeof(__nv_bfloat16)));

    cublasLtHandle_t h;
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtCreate(&h));
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasLtMatrixLayout_t l = bf16_square(PEAK_SIZE);
    cublasLtMatmulAlgo_t algo = pick_algo(h, desc, l, workspace);
    float alpha = 1.0f, beta = 0.0f;
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < PEAK_WARMUP + PEAK_TIMED; i++) {
        if (i == PEAK_WARMUP)
            CUDA_CHECK(cudaEventRecord(start, 0));
        CUBLAS_CHECK(cublasLtMatmul(h, desc, &alpha, a, l, b, l, &beta, c, l, c, l, &algo, ws,
                                    workspace, 0));
    }
    CUDA_CHECK(cudaEventRecord(stop, 0));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));

    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(l));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
    CUBLAS_CHECK(cublasLtDestroy(h));
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    CUDA_CHECK(cudaFree(c));
    CUDA_CHECK(cudaFree(ws));
    double flops = 2.0 * PEAK_SIZE * (double)PEAK_SIZE * PEAK_SIZE * PEAK_TIMED;
    return flops / (ms * 1e-3) / 1e12;
}

static double memory_peak_seen_gib;

double cuda_memory_in_use_gib(void)
{
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    double gib = (double)(total_bytes - free_bytes) / (1u << 30);
    if (gib > memory_peak_seen_gib)
        memory_peak_seen_gib = gib;
    return gib;
}

double cuda_memory_peak_gib(void) { return memory_peak_seen_gib; }

size_t cuda_memory_available(void)
{
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return free_bytes;
}

void cuda_device_name(char *name, size_t n)
{
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    snprintf(name, n, "%s", prop.name);
}

void cuda_synchronize(void) { CUDA_CHECK(cudaDeviceSynchronize()); }
