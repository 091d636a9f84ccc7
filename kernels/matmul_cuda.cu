/* Matrix multiply of a linear layer, out = in · weightᵀ (+ bias), and its
 * backward, through cuBLASLt in fp32 with FP32 compute (CUBLAS_COMPUTE_32F,
 * not TF32), so results match the CPU reference to fp32 rounding.
 *
 * cuBLAS is column-major; a row-major [R,C] matrix is, to it, the
 * column-major [C,R] matrix with leading dimension C (its transpose). So
 *   out[M,N] = in·Wᵀ      is  outᵀ[N,M] = op_T(W as [K,N]) · (in as [K,M])
 *   din[M,K] += dout·W    is  dinᵀ[K,M] += (W as [K,N]) · (dout as [N,M])
 *   dW[N,K] += doutᵀ·in   is  dWᵀ[K,N] += (in as [K,M]) · op_T(dout as [N,M])
 * and every product accumulates with beta = 1 where the op adds. */
#include <stdint.h>

#include <cublasLt.h>

#include "cublas_check.h"
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

#define WORKSPACE_BYTES ((size_t)32 << 20)

/* The handle and workspace, made on first use and kept for the process. */
typedef struct lt_context {
    cublasLtHandle_t handle;
    void *workspace;
} lt_context;

static lt_context *lt(void)
{
    static lt_context ctx;
    if (!ctx.handle) {
        CUBLAS_CHECK(cublasLtCreate(&ctx.handle));
        CUDA_CHECK(cudaMalloc(&ctx.workspace, WORKSPACE_BYTES));
    }
    return &ctx;
}

/* Largest power of two (at most 256) dividing the address: cuBLASLt assumes
 * 256-byte aligned operands unless told otherwise, and ops are called on
 * pointers into the middle of larger buffers. */
static uint32_t alignment_of(const void *ptr)
{
    uint32_t align = 256;
    while (align > 4 && (uintptr_t)ptr % align)
        align >>= 1;
    return align;
}

static void set_alignment(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
                          const void *ptr)
{
    uint32_t align = alignment_of(ptr);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align));
}

static cublasLtMatrixLayout_t layout(cublasOperation_t op, int rows, int cols, int ld)
{
    /* op(X) is rows × cols; X itself is stored transposed when op is T */
    cublasLtMatrixLayout_t l;
    if (op == CUBLAS_OP_T) {
        int t = rows;
        rows = cols;
        cols = t;
    }
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, (uint64_t)rows, (uint64_t)cols, ld));
    return l;
}

static cublasLtMatmulPreference_t preference(const void *A, const void *B, const void *C)
{
    cublasLtMatmulPreference_t pref;
    size_t workspace = WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, A);
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, B);
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, C);
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, C);
    return pref;
}

/* C[m,n] = op(A)[m,k] · op(B)[k,n] + beta·C, column-major, in place (D = C). */
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 const float *A, int lda, const float *B, int ldb, float *C, int ldc, float beta)
{
    lt_context *ctx = lt();
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtMatrixLayout_t la = layout(ta, m, k, lda), lb = layout(tb, k, n, ldb),
                           lc = layout(CUBLAS_OP_N, m, n, ldc);
    cublasLtMatmulPreference_t pref = preference(A, B, C);

    cublasLtMatmulHeuristicResult_t best;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx->handle, desc, la, lb, lc, lc, pref, 1,
                                                &best, &found));
    if (!found) {
        fprintf(stderr, "cuBLASLt: no fp32 algorithm for m=%d n=%d k=%d\n", m, n, k);
        exit(1);
    }
    float alpha = 1.0f;
    CUBLAS_CHECK(cublasLtMatmul(ctx->handle, desc, &alpha, A, la, B, lb, &beta, C, lc, C, lc,
                                &best.algo, ctx->workspace, WORKSPACE_BYTES, 0));

    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lc));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

/* out[m, n] = bias[n]: the product then adds onto it (beta = 1). */
static __global__ void broadcast_rows(float *out, const float *bias, size_t total, int N)
{
    GRID_STRIDE_LOOP(i, total)
        out[i] = bias[i % N];
}

void matmul_forward_cuda(float *out, const float *in, const float *weight,
                         const float *bias, int M, int K, int N)
{
    size_t total = (size_t)M * N;
    if (total == 0)
        return;
    if (bias) {
        broadcast_rows<<<cuda_grid(total), CUDA_BLOCK>>>(out, bias, total, N);
        CUDA_CHECK_LAUNCH();
    } else if (K == 0) {
        cuda_zero(out, total * sizeof(float));
    }
    if (K > 0)
        gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, weight, K, in, K, out, N, bias ? 1.0f : 0.0f);
}

/* dbias[n] += dout[i, n] over the rows i */
struct dout_term {
    const float *dout;
    int N;
    __device__ float operator()(int i, int n) const { return dout[(size_t)i * N + n]; }
};

void matmul_backward_cuda(float *din, float *dweight, float *dbias,
                          const float *dout, const float *in, const float *weight,
                          int M, int K, int N)
{
    int empty = M == 0 || K == 0 || N == 0;
    if (din && !empty)
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, weight, K, dout, N, din, K, 1.0f);
    if (dweight && !empty)
        gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, in, K, dout, N, dweight, K, 1.0f);
    if (dbias)
        column_sum_add(dbias, M, N, dout_term{dout, N});
}
