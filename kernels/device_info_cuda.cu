/* What the GPU can do and what flame uses of it: the bf16 matrix-multiply peak
 * that MFU is measured against, and device memory in use.
 * The peak is the data sheet's for the GPUs below, as PaLM and llm.c count
 * MFU: timed on the card, it moved by 9 % from process to process on one
 * H200 (811 to 893 TFLOP/s in one session, the best of several rounds as
 * much as one), and MFU with it, so two runs could not be compared. A GPU
 * not listed has its peak timed: one 8192³ cuBLASLt product, 20 times. */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <string.h>

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

/* Dense bf16 tensor-core TFLOP/s from NVIDIA's data sheets (their figures
 * with sparsity, halved), by cudaDeviceProp.name: whole names, or a prefix
 * where every variant has the same peak */
static const struct {
    const char *name;
    int prefix;
    double tflops;
} data_sheet[] = {
    {"NVIDIA H200", 0, 989.5},           /* SXM: 1,979 with sparsity */
    {"NVIDIA H200 NVL", 0, 835.5},       /* 1,671 */
    {"NVIDIA H100 80GB HBM3", 0, 989.5}, /* SXM5: 1,979 */
    {"NVIDIA H100 NVL", 0, 835.5},       /* 1,671 */
    {"NVIDIA H100 PCIe", 0, 756.5},      /* 1,513 */
    {"NVIDIA A100", 1, 312.0},           /* SXM4 and PCIe, 40 and 80 GB: 624 */
};

/* the properties of the current device (a rank's own GPU) */
static cudaDeviceProp current_device(void)
{
    int device;
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    return prop;
}

static double data_sheet_tflops(void)
{
    struct cudaDeviceProp prop = current_device();
    for (size_t i = 0; i < sizeof data_sheet / sizeof data_sheet[0]; i++) {
        size_t len = strlen(data_sheet[i].name);
        if (data_sheet[i].prefix ? strncmp(prop.name, data_sheet[i].name, len) == 0
                                 : strcmp(prop.name, data_sheet[i].name) == 0)
            return data_sheet[i].tflops;
    }
    return 0;
}

static double timed_peak_tflops(void)
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

double cuda_bf16_peak_tflops(void)
{
    double listed = data_sheet_tflops();
    if (listed > 0)
        return listed;
    return timed_peak_tflops();
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
    struct cudaDeviceProp prop = current_device();
    snprintf(name, n, "%s", prop.name);
}

void cuda_synchronize(void) { CUDA_CHECK(cudaDeviceSynchronize()); }
