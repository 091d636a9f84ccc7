/* Matrix multiply of a linear layer, out = in · weightᵀ (+ bias) (+ residual),
 * and its backward, through cuBLASLt: bf16 operands, fp32 accumulation
 * (CUBLAS_COMPUTE_32F) and fp32 alpha and beta. out and din are bf16; the bias
 * (cuBLASLt's bias epilogue), an added residual (C ≠ D, beta = 1) and din's
 * FLAME_GRAD_ADD (beta = 1) join the sum in fp32, rounded once. dweight is fp32 (bf16 A and B with fp32 C and D), so
 * the weight gradient accumulates without bf16 rounding; dbias is an fp32
 * column sum of dout. GPT's MLP products take the GELU into the epilogue:
 * GELU_AUX_BIAS writes gelu(product + bias) and, as the aux matrix, the
 * product + bias before it; DGELU multiplies the input gradient by gelu' of
 * that aux (cuBLASLt's GELU is the tanh form: flash-attn's fused MLP
 * uses these epilogues for its gelu_approx, csrc/fused_dense_lib).
 *
 * cuBLAS is column-major; a row-major [R,C] matrix is, to it, the
 * column-major [C,R] matrix with leading dimension C (its transpose). So
 *   out[M,N] = in·Wᵀ      is  outᵀ[N,M] = op_T(W as [K,N]) · (in as [K,M])
 *   din[M,K] += dout·W    is  dinᵀ[K,M] += (W as [K,N]) · (dout as [N,M])
 *   dW[N,K] += doutᵀ·in   is  dWᵀ[K,N] += (in as [K,M]) · op_T(dout as [N,M])
 *
 * Each distinct product is planned once: its matmul descriptor, layouts and
 * the heuristic's algorithm are kept in a small table keyed by everything
 * they depend on, so a call in a training step's steady state only looks its
 * plan up and enqueues the product (no host synchronization). */
#include <stdint.h>
#include <string.h>

#include <cublasLt.h>

#include "cublas_check.h"
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

#define WORKSPACE_BYTES ((size_t)32 << 20)
/* a training step uses a few dozen products; past this many, the oldest plan goes */
#define PLAN_SLOTS 64

/* What a plan depends on; all 32-bit fields, so no padding for memcmp. */
typedef struct gemm_key {
    int32_t transa, transb, m, n, k, lda, ldb, ldc;
    int32_t c_type;     /* cudaDataType_t of C and D */
    int32_t accumulate; /* beta != 0 */
    int32_t epilogue;   /* cublasLtEpilogue_t: DEFAULT, BIAS, GELU_AUX_BIAS, DGELU */
    uint32_t align[4];  /* of A, B, C and D, in bytes */
} gemm_key;

typedef struct gemm_plan {
    gemm_key key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c; /* D is laid out as C */
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

/* The handle, workspace and plans, made on first use and kept for the process. */
typedef struct lt_context {
    cublasLtHandle_t handle;
    void *workspace;
    gemm_plan plans[PLAN_SLOTS];
    int used, oldest;
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
    while (align > sizeof(act_t) && (uintptr_t)ptr % align)
        align >>= 1;
    return align;
}

static cublasLtMatrixLayout_t layout(cudaDataType_t type, cublasOperation_t op, int rows, int cols,
                                     int ld)
{
    /* op(X) is rows × cols; X itself is stored transposed when op is T */
    cublasLtMatrixLayout_t l;
    if (op == CUBLAS_OP_T) {
        int t = rows;
        rows = cols;
        cols = t;
    }
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, (uint64_t)rows, (uint64_t)cols, ld));
    return l;
}

static void set_alignment(cublasLtMatmulPreference_t pref,
                          cublasLtMatmulPreferenceAttributes_t attr, uint32_t align)
{
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align));
}

/* the heuristic's best algorithm for the plan's descriptor and layouts */
static cublasLtMatmulAlgo_t best_algo(cublasLtHandle_t handle, const gemm_plan *p)
{
    cublasLtMatmulPreference_t pref;
    size_t workspace = WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p->key.align[0]);
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p->key.align[1]);
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p->key.align[2]);
    set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p->key.align[3]);
    cublasLtMatmulHeuristicResult_t best;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, p->desc, p->a, p->b, p->c, p->c, pref, 1,
                                                &best, &found));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (!found) {
        fprintf(stderr, "cuBLASLt: no bf16 algorithm for m=%d n=%d k=%d (%s output)\n", p->key.m,
                p->key.n, p->key.k, p->key.c_type == CUDA_R_32F ? "fp32" : "bf16");
        exit(1);
    }
    return best.algo;
}

static void make_plan(cublasLtHandle_t handle, gemm_plan *p, const gemm_key *key)
{
    cublasOperation_t ta = (cublasOperation_t)key->transa, tb = (cublasOperation_t)key->transb;
    p->key = *key;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    p->a = layout(CUDA_R_16BF, ta, key->m, key->k, key->lda);
    p->b = layout(CUDA_R_16BF, tb, key->k, key->n, key->ldb);
    p->c = layout((cudaDataType_t)key->c_type, CUBLAS_OP_N, key->m, key->n, key->ldc);
    cublasLtEpilogue_t epilogue = (cublasLtEpilogue_t)key->epilogue;
    cudaDataType_t type = CUDA_R_16BF;
    int64_t ld = key->ldc;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                sizeof epilogue));
    /* the bias: m values of D's type (cuBLASLt's rule for bf16 products), one
     * per row of column-major D */
    cudaDataType_t bias_type = (cudaDataType_t)key->c_type;
    if (epilogue == CUBLASLT_EPILOGUE_BIAS || epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bias_type, sizeof bias_type));
    /* the aux matrix (the GELU's input): bf16, laid out as D */
    if (epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || epilogue == CUBLASLT_EPILOGUE_DGELU) {
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE,
                                                    &type, sizeof type));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld,
                                                    sizeof ld));
    }
    p->algo = best_algo(handle, p);
}

static void destroy_plan(gemm_plan *p)
{
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->c));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->b));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->a));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->desc));
}

/* The plan for key: found in the table, or made in a free slot (the oldest
 * plan's when the table is full). */
static gemm_plan *plan_for(lt_context *ctx, const gemm_key *key)
{
    for (int i = 0; i < ctx->used; i++)
        if (memcmp(&ctx->plans[i].key, key, sizeof *key) == 0)
            return &ctx->plans[i];
    gemm_plan *p;
    if (ctx->used < PLAN_SLOTS) {
        p = &ctx->plans[ctx->used++];
    } else {
        p = &ctx->plans[ctx->oldest];
        ctx->oldest = (ctx->oldest + 1) % PLAN_SLOTS;
        destroy_plan(p);
    }
    make_plan(ctx->handle, p, key);
    return p;
}

/* what a product does after it: its epilogue, the bias (m values of D's
 * type) and the aux matrix (bf16, laid out as D) the epilogue takes, each
 * NULL when it takes none */
typedef struct gemm_epilogue {
    cublasLtEpilogue_t kind;
    const void *bias;
    const act_t *aux;
} gemm_epilogue;

static gemm_epilogue plain(const void *bias)
{
    return gemm_epilogue{bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT, bias, NULL};
}

/* D[m,n] = op(A)[m,k] · op(B)[k,n] (+ bias[m] per row) (+ C), then the
 * epilogue's function, column-major, C when not NULL, C and D laid out alike
 * (C may be D); A and B bf16, C and D of c_type. */
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const act_t *A,
                 int lda, const act_t *B, int ldb, gemm_epilogue e, const void *C, void *D,
                 cudaDataType_t c_type, int ldc)
{
    lt_context *ctx = lt();
    float alpha = 1.0f, beta = C ? 1.0f : 0.0f;
    if (!C)
        C = D; /* read by no one with beta = 0, but cuBLASLt wants a matrix */
    gemm_key key = {ta, tb, m, n, k, lda, ldb, ldc, c_type, beta != 0.0f, (int32_t)e.kind,
                    {alignment_of(A), alignment_of(B), alignment_of(C), alignment_of(D)}};
    gemm_plan *p = plan_for(ctx, &key);
    /* the plan's descriptor is this call's: it runs before the next is set */
    if (e.bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &e.bias, sizeof e.bias));
    if (e.aux)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                    &e.aux, sizeof e.aux));
    CUBLAS_CHECK(cublasLtMatmul(ctx->handle, p->desc, &alpha, A, p->a, B, p->b, &beta, C, p->c, D,
                                p->c, &p->algo, ctx->workspace, WORKSPACE_BYTES, 0));
}

/* out[m, n] = bias[n] (+ residual[m, n]): the whole product when K = 0 */
template <typename O>
static __global__ void bias_rows(O *out, const act_t *bias, const O *residual, size_t total, int N)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, total) {
        float b = to_f32(bias[i % N]);
        from_f32(&out[i], residual ? b + to_f32(residual[i]) : b);
    }
}

/* the product of a layer without inputs (K = 0): bias, residual, or zeros */
template <typename O>
static void forward_without_terms(O *out, const act_t *bias, const O *residual, size_t total, int N)
{
    if (bias) {
        launch_kernel(bias_rows<O>, cuda_grid(total), CUDA_BLOCK, 0, out, bias, residual, total, N);
    } else if (!residual) {
        cuda_zero(out, total * sizeof(O));
    } else if (residual != out) {
        cuda_copy(out, residual, total * sizeof(O));
    }
}

void matmul_forward_cuda(void *out, const void *in, const void *weight, const void *bias,
                         const void *residual, int M, int K, int N)
{
    size_t total = (size_t)M * N;
    if (total == 0)
        return;
    if (K == 0)
        return forward_without_terms((act_t *)out, (const act_t *)bias, (const act_t *)residual, total, N);
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, (const act_t *)weight, K, (const act_t *)in, K, plain(bias), residual,
         out, CUDA_R_16BF, N);
}

/* An fp32 product takes an fp32 bias: the bf16 one is widened first, into
 * the ops' scratch (read by this product alone, in stream order). */
void matmul_forward_f32_cuda(float *out, const void *in, const void *weight, const void *bias,
                             const float *residual, int M, int K, int N)
{
    size_t total = (size_t)M * N;
    if (total == 0)
        return;
    if (K == 0)
        return forward_without_terms(out, (const act_t *)bias, residual, total, N);
    float *wide_bias = NULL;
    if (bias) {
        wide_bias = (float *)cuda_scratch((size_t)N * sizeof(float));
        from_act_cuda(wide_bias, bias, (size_t)N);
    }
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, (const act_t *)weight, K, (const act_t *)in, K, plain(wide_bias),
         residual, out, CUDA_R_32F, N);
}

/* dbias's terms of row i, columns [n, n + W) */
struct dout_term {
    static constexpr int OUTPUTS = 1;
    const act_t *dout;
    int N;
    template <int W> __device__ void add(float (&acc)[1][W], int i, int n) const
    {
        float d[W];
        load_floats<W>(d, dout + (size_t)i * N + n);
#pragma unroll
        for (int k = 0; k < W; k++)
            acc[0][k] += d[k];
    }
};

void matmul_backward_cuda(void *din, flame_grad_mode din_mode, float *dweight, float *dbias,
                          const void *dout, const void *in, const void *weight, int M, int K, int N)
{
    const act_t *dy = (const act_t *)dout, *x = (const act_t *)in, *w = (const act_t *)weight;
    int empty = M == 0 || K == 0 || N == 0;
    if (din && din_mode == FLAME_GRAD_SET && N == 0)
        cuda_zero(din, (size_t)M * K * sizeof(act_t)); /* a product of no terms */
    if (din && !empty)
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, K, dy, N, plain(NULL),
             din_mode == FLAME_GRAD_ADD ? din : NULL, din, CUDA_R_16BF, K);
    if (dweight && !empty)
        gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, x, K, dy, N, plain(NULL), dweight, dweight, CUDA_R_32F, K);
    if (dbias)
        column_sums_add(&dbias, M, N, dout_term{dy, N}, vectorizable(N, dout));
}

/* The epilogues want K ≥ 1 and their aux matrix's rows 16-byte aligned; other
 * shapes take the plain product and the separate GELU. */
static bool epilogue_fits(int rows, const void *aux)
{
    return rows % 8 == 0 && (uintptr_t)aux % 16 == 0;
}

void matmul_gelu_forward_cuda(void *out, void *pre, const void *in, const void *weight, const void *bias, int M,
                              int K, int N)
{
    if ((size_t)M * N == 0)
        return;
    if (K == 0 || !bias || !epilogue_fits(N, pre)) {
        matmul_forward_cuda(pre, in, weight, bias, NULL, M, K, N);
        gelu_forward_cuda(out, pre, (size_t)M * N);
        return;
    }
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, (const act_t *)weight, K, (const act_t *)in, K,
         gemm_epilogue{CUBLASLT_EPILOGUE_GELU_AUX_BIAS, (const act_t *)bias, (const act_t *)pre}, NULL, out,
         CUDA_R_16BF, N);
}

void matmul_dgelu_backward_cuda(void *dpre, const void *dout, const void *weight, const void *pre, int M, int K,
                                int N)
{
    if ((size_t)M * K == 0)
        return;
    if (N == 0 || !epilogue_fits(K, pre)) {
        matmul_backward_cuda(dpre, FLAME_GRAD_SET, NULL, NULL, dout, NULL, weight, M, K, N);
        gelu_backward_cuda(dpre, dpre, pre, (size_t)M * K);
        return;
    }
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, (const act_t *)weight, K, (const act_t *)dout, N,
         gemm_epilogue{CUBLASLT_EPILOGUE_DGELU, NULL, (const act_t *)pre}, NULL, dpre, CUDA_R_16BF, K);
}
