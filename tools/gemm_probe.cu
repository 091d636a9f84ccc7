/* What cuBLASLt can do with GPT-2 small's products (d = 768, MLP 3072,
 * vocabulary 50304) over M tokens, outside flame, on the GPU machine:
 *  1. every algorithm its heuristic offers for the MLP's two products, with
 *     the GELU epilogues flame uses (GELU_AUX_BIAS, DGELU) and without, timed
 *     (each on stderr; flame takes the heuristic's first: this says what
 *     that leaves);
 *  2. each linear layer's backward products, din = dout·W and dW += doutᵀ·x,
 *     one after the other on one stream against the two on two streams (what
 *     running dW beside din could gain);
 *  3. the LM head's three products at vocabulary V (50304 by default; GPT-2's
 *     50257 and 50264, its multiple of 8, to see what the shape costs).
 * With --gated D I V instead: every product of a gated-MLP model of width D,
 * MLP I and vocabulary V (transformer-340M's and GLA-340M's: 1024 2816
 * 32000), forward, din and dW, the heuristic's first algorithm against the
 * fastest it offers: what choosing among them could win (each algorithm's
 * configuration and time on stderr). With --fills D I V: the same
 * products, every algorithm offered with the kernels and fills (memsets)
 * a call enqueues, from a graph captured of one call, and the times in
 * chains: what taking the first algorithm without a fill would do.
 * Operands hold a constant bf16 value (the timing does not depend on it).
 * Build and run there:
 *   nvcc -O2 -arch=sm_90 tools/gemm_probe.cu -o gemm_probe -lcublasLt
 *   ./gemm_probe [M [V]]    (M: tokens, 32768 by default; V: vocabulary)
 *   ./gemm_probe --gated D I V [M]    (M: 16384 by default)
 *   ./gemm_probe --fills D I V [M] */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                   \
    do {                                                                              \
        int status_ = (int)(call);                                                    \
        if (status_ != 0) {                                                           \
            fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #call, status_); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define WORKSPACE ((size_t)32 << 20)
#define TIMED_RUNS 20

static cublasLtHandle_t handle;
static void *workspace[2]; /* one per stream */

/* D[m,n] = op(A)·op(B) (+ beta·D), column-major, with its epilogue's operands */
typedef struct product {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    int m, n, k;
    const void *A, *B;
    void *D;
    float beta;
} product;

static cublasLtMatrixLayout_t layout(cudaDataType_t type, cublasOperation_t op, int rows, int cols, int ld)
{
    cublasLtMatrixLayout_t l;
    if (op == CUBLAS_OP_T)
        CHECK(cublasLtMatrixLayoutCreate(&l, type, cols, rows, ld));
    else
        CHECK(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
    return l;
}

static void set(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void *value, size_t size)
{
    CHECK(cublasLtMatmulDescSetAttribute(desc, attr, value, size));
}

static product make(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *A, const void *B,
                    void *D, cudaDataType_t d_type, float beta, cublasLtEpilogue_t epilogue, const void *bias,
                    const void *aux)
{
    product p = {NULL, NULL, NULL, NULL, m, n, k, A, B, D, beta};
    cudaDataType_t bf16 = CUDA_R_16BF;
    int64_t ld = m;
    CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    set(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
    if (bias) {
        set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bf16, sizeof bf16);
        set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    }
    if (aux) {
        set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &bf16, sizeof bf16);
        set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld);
        set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
    }
    p.a = layout(CUDA_R_16BF, ta, m, k, ta == CUBLAS_OP_T ? k : m);
    p.b = layout(CUDA_R_16BF, tb, k, n, tb == CUBLAS_OP_T ? n : k);
    p.d = layout(d_type, CUBLAS_OP_N, m, n, m);
    return p;
}

static int heuristic(const product *p, cublasLtMatmulHeuristicResult_t *results, int wanted)
{
    cublasLtMatmulPreference_t pref;
    size_t bytes = WORKSPACE;
    int found = 0;
    CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes, sizeof bytes));
    CHECK(cublasLtMatmulAlgoGetHeuristic(handle, p->desc, p->a, p->b, p->d, p->d, pref, wanted, results, &found));
    CHECK(cublasLtMatmulPreferenceDestroy(pref));
    return found;
}

static void run(const product *p, const cublasLtMatmulAlgo_t *algo, cudaStream_t stream, int lane)
{
    float alpha = 1.0f;
    CHECK(cublasLtMatmul(handle, p->desc, &alpha, p->A, p->a, p->B, p->b, &p->beta, p->D, p->d, p->D, p->d, algo,
                         workspace[lane], WORKSPACE, stream));
}

/* mean ms of `work` over TIMED_RUNS after 3 untimed */
template <typename Work> static float mean_ms(Work work)
{
    cudaEvent_t start, end;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&end));
    for (int i = 0; i < 3; i++)
        work();
    CHECK(cudaEventRecord(start, 0));
    for (int i = 0; i < TIMED_RUNS; i++)
        work();
    CHECK(cudaEventRecord(end, 0));
    CHECK(cudaEventSynchronize(end));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, start, end));
    return ms / TIMED_RUNS;
}

static int config(const cublasLtMatmulAlgo_t *algo, cublasLtMatmulAlgoConfigAttributes_t attr)
{
    int value = 0;
    size_t written;
    CHECK(cublasLtMatmulAlgoConfigGetAttribute(algo, attr, &value, sizeof value, &written));
    return value;
}

/* every algorithm the heuristic offers for p, timed (each on stderr); the
 * first's time and the fastest's printed and added to *first_sum and *fastest_sum */
static void first_and_fastest(const char *name, const product *p, float *first_sum, float *fastest_sum)
{
    cublasLtMatmulHeuristicResult_t results[16];
    int found = heuristic(p, results, 16), best = 0;
    float first = 0, fastest = 0;
    for (int i = 0; i < found; i++) {
        const cublasLtMatmulAlgo_t *algo = &results[i].algo;
        float ms = mean_ms([&] { run(p, algo, 0, 0); });
        if (i == 0)
            first = fastest = ms;
        else if (ms < fastest)
            fastest = ms, best = i;
        fprintf(stderr, "%-22s %d. id %d tile %d stages %d split-K %d swizzle %d custom %d: %.4f ms\n", name, i + 1,
                config(algo, CUBLASLT_ALGO_CONFIG_ID), config(algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                config(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID), config(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                config(algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING), config(algo, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION), ms);
    }
    double flop = 2.0 * p->m * p->n * p->k;
    printf("%-22s first %.4f ms (%.0f TFLOP/s), fastest of %d: %.4f ms (the %d., %.0f TFLOP/s), %+.1f %%\n", name,
           first, flop / first / 1e9, found, fastest, best + 1, flop / fastest / 1e9,
           100.0 * (fastest - first) / first);
    *first_sum += first, *fastest_sum += fastest;
}

static void *filled(size_t bytes)
{
    void *p;
    CHECK(cudaMalloc(&p, bytes));
    CHECK(cudaMemset(p, 0x3c, bytes)); /* bf16 0x3c3c, about 0.0115 */
    return p;
}

/* din and dW of a layer with K inputs and N outputs, one stream then two */
static void backward_pair(const char *name, int M, int K, int N, const void *dout, const void *x, const void *w,
                          void *din, void *dw, cudaStream_t beside, cudaEvent_t forked, cudaEvent_t joined)
{
    /* column-major, as flame's matmul_cuda.cu: dinᵀ[K,M] = W[K,N]·doutᵀ[N,M];
     * dWᵀ[K,N] += xᵀ[K,M]·dout[M,N] */
    product pin = make(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, dout, din, CUDA_R_16BF, 0.0f,
                       CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL);
    product pw = make(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, x, dout, dw, CUDA_R_32F, 1.0f, CUBLASLT_EPILOGUE_DEFAULT,
                      NULL, NULL);
    cublasLtMatmulHeuristicResult_t rin, rw;
    if (heuristic(&pin, &rin, 1) < 1 || heuristic(&pw, &rw, 1) < 1) {
        printf("%-16s no algorithm\n", name);
        return;
    }
    float t_in = mean_ms([&] { run(&pin, &rin.algo, 0, 0); });
    float t_w = mean_ms([&] { run(&pw, &rw.algo, 0, 0); });
    float one = mean_ms([&] {
        run(&pin, &rin.algo, 0, 0);
        run(&pw, &rw.algo, 0, 1);
    });
    float two = mean_ms([&] {
        CHECK(cudaEventRecord(forked, 0));
        CHECK(cudaStreamWaitEvent(beside, forked, 0));
        run(&pw, &rw.algo, beside, 1);
        run(&pin, &rin.algo, 0, 0);
        CHECK(cudaEventRecord(joined, beside));
        CHECK(cudaStreamWaitEvent(0, joined, 0));
    });
    double flop = 2.0 * M * K * N;
    printf("%-16s din %.4f ms (%.0f TFLOP/s), dW %.4f ms (%.0f TFLOP/s); one stream %.4f ms, two %.4f ms (%+.1f %%)\n",
           name, t_in, flop / t_in / 1e9, t_w, flop / t_w / 1e9, one, two, 100.0 * (two - one) / one);
}

/* a layer's forward, outᵀ[N,M] = W[K,N]ᵀ·xᵀ[K,M], as flame's matmul_forward */
static void forward(const char *name, int M, int K, int N, const void *x, const void *w, void *out)
{
    product p = make(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w, x, out, CUDA_R_16BF, 0.0f, CUBLASLT_EPILOGUE_DEFAULT,
                     NULL, NULL);
    cublasLtMatmulHeuristicResult_t r;
    if (heuristic(&p, &r, 1) < 1) {
        printf("%-16s no algorithm\n", name);
        return;
    }
    float ms = mean_ms([&] { run(&p, &r.algo, 0, 0); });
    printf("%-16s forward %.4f ms (%.0f TFLOP/s)\n", name, ms, 2.0 * M * K * N / ms / 1e9);
}

/* the products of a layer with K inputs and N outputs over M tokens, forward,
 * din and dW (flame's matmul_cuda.cu layouts), each given to visit(label, p) */
template <typename Visit>
static void layer_products(const char *name, int M, int K, int N, const void *x, const void *w, void *out,
                           void *dw, Visit visit)
{
    product ps[3] = {
        make(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w, x, out, CUDA_R_16BF, 0.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL),
        make(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, x, out, CUDA_R_16BF, 0.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL),
        make(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, x, x, dw, CUDA_R_32F, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL),
    };
    static const char *const what[3] = {"forward", "din", "dW"};
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s %s", name, what[i]);
        visit(label, &ps[i]);
    }
}

/* every product of a gated-MLP decoder (q, k, v joined; o; gate and up joined; down; the head) */
template <typename Visit> static void gated_products(int D, int I, int V, int M, Visit visit)
{
    size_t widest = V, deepest = D > I ? D : I; /* the most outputs and inputs a product has */
    if (widest < 2 * (size_t)I)
        widest = 2 * (size_t)I;
    if (widest < 3 * (size_t)D)
        widest = 3 * (size_t)D;
    void *x = filled((size_t)M * widest * 2), *w = filled(widest * deepest * 2);
    void *out = filled((size_t)M * widest * 2), *dw = filled(widest * deepest * 4);
    const struct { const char *name; int K, N; } layers[] = {
        {"qkv", D, 3 * D}, {"o", D, D}, {"gate_up", D, 2 * I}, {"down", I, D}, {"head", D, V}};
    for (const auto &l : layers)
        layer_products(l.name, M, l.K, l.N, x, w, out, dw, visit);
}

static int gated_model(int D, int I, int V, int M)
{
    float first = 0, fastest = 0;
    gated_products(D, I, V, M, [&](const char *label, const product *p) { first_and_fastest(label, p, &first, &fastest); });
    printf("all: first %.3f ms, fastest %.3f ms (%+.1f %%)\n", first, fastest, 100.0 * (fastest - first) / first);
    return 0;
}

/* the kernels and fills one call of p with algo enqueues, from a graph captured of it */
static void count_nodes(const product *p, const cublasLtMatmulAlgo_t *algo, int *kernels, int *fills)
{
    cudaStream_t s;
    cudaGraph_t g;
    cudaGraphNode_t nodes[64];
    size_t n = 64;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
    run(p, algo, s, 0);
    CHECK(cudaStreamEndCapture(s, &g));
    CHECK(cudaGraphGetNodes(g, nodes, &n));
    *kernels = *fills = 0;
    for (size_t i = 0; i < n; i++) {
        cudaGraphNodeType type;
        CHECK(cudaGraphNodeGetType(nodes[i], &type));
        *kernels += type == cudaGraphNodeTypeKernel;
        *fills += type == cudaGraphNodeTypeMemset;
    }
    CHECK(cudaGraphDestroy(g));
    CHECK(cudaStreamDestroy(s));
}

/* Each product of a gated model: every algorithm the heuristic offers, the
 * kernels and fills a call of it enqueues, and its mean time in a chain of
 * calls (its fills and their gaps included); then the first's time against the
 * first without a fill's */
static int gated_fills(int D, int I, int V, int M)
{
    float first_sum = 0, fill_free_sum = 0;
    gated_products(D, I, V, M, [&](const char *label, const product *p) {
        cublasLtMatmulHeuristicResult_t results[16];
        int found = heuristic(p, results, 16), fill_free = -1;
        float first = 0, free_ms = 0;
        for (int i = 0; i < found; i++) {
            int kernels, fills;
            count_nodes(p, &results[i].algo, &kernels, &fills);
            float ms = mean_ms([&] { run(p, &results[i].algo, 0, 0); });
            if (i == 0)
                first = ms;
            if (fills == 0 && fill_free < 0)
                fill_free = i, free_ms = ms;
            fprintf(stderr, "%-16s %2d. tile %3d stages %2d split-K %d custom %2d: %d kernel(s) %d fill(s) %.4f ms\n",
                    label, i + 1, config(&results[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                    config(&results[i].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                    config(&results[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                    config(&results[i].algo, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION), kernels, fills, ms);
        }
        first_sum += first;
        if (fill_free < 0) {
            fill_free_sum += first;
            printf("%-16s first %.4f ms, none without a fill\n", label, first);
            return;
        }
        fill_free_sum += free_ms;
        printf("%-16s first %.4f ms, first without a fill: the %d., %.4f ms (%+.1f %%)\n", label, first,
               fill_free + 1, free_ms, 100.0 * (free_ms - first) / first);
    });
    printf("all: first %.3f ms, first without a fill (the first where none is) %.3f ms (%+.1f %%)\n", first_sum,
           fill_free_sum, 100.0 * (fill_free_sum - first_sum) / first_sum);
    return 0;
}

int main(int argc, char **argv)
{
    bool fills = argc >= 5 && strcmp(argv[1], "--fills") == 0;
    if (argc >= 5 && (strcmp(argv[1], "--gated") == 0 || fills)) {
        int D = atoi(argv[2]), I = atoi(argv[3]), V = atoi(argv[4]), M = argc > 5 ? atoi(argv[5]) : 16384;
        if (D <= 0 || I <= 0 || V <= 0 || M <= 0) {
            fprintf(stderr, "usage: %s --gated|--fills D I V [tokens]\n", argv[0]);
            return 2;
        }
        CHECK(cublasLtCreate(&handle));
        CHECK(cudaMalloc(&workspace[0], WORKSPACE));
        return fills ? gated_fills(D, I, V, M) : gated_model(D, I, V, M);
    }
    const int D = 768, I = 3072;
    int M = argc > 1 ? atoi(argv[1]) : 32768, V = argc > 2 ? atoi(argv[2]) : 50304;
    if (M <= 0 || V <= 0) {
        fprintf(stderr, "usage: %s [tokens [vocabulary]]\n", argv[0]);
        return 2;
    }
    CHECK(cublasLtCreate(&handle));
    CHECK(cudaMalloc(&workspace[0], WORKSPACE));
    CHECK(cudaMalloc(&workspace[1], WORKSPACE));
    cudaStream_t beside;
    cudaEvent_t forked, joined;
    CHECK(cudaStreamCreateWithFlags(&beside, cudaStreamNonBlocking));
    CHECK(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming));
    CHECK(cudaEventCreateWithFlags(&joined, cudaEventDisableTiming));
    void *x = filled((size_t)M * I * 2), *dout = filled((size_t)M * V * 2), *w = filled((size_t)V * D * 2);
    void *out = filled((size_t)M * I * 2), *aux = filled((size_t)M * I * 2), *bias = filled((size_t)I * 2);
    void *dw = filled((size_t)V * D * 4);

    /* fc1: outᵀ[I,M] = W1[D,I]ᵀ·xᵀ[D,M] (+ bias, GELU); fc2's input gradient
     * through the GELU: dpreᵀ[I,M] = W2[I,D]·doutᵀ[D,M] ⊙ gelu'(aux) */
    product fc1_gelu = make(CUBLAS_OP_T, CUBLAS_OP_N, I, M, D, w, x, out, CUDA_R_16BF, 0.0f,
                            CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias, aux);
    product fc1_bias = make(CUBLAS_OP_T, CUBLAS_OP_N, I, M, D, w, x, out, CUDA_R_16BF, 0.0f, CUBLASLT_EPILOGUE_BIAS,
                            bias, NULL);
    product fc2_dgelu = make(CUBLAS_OP_N, CUBLAS_OP_N, I, M, D, w, dout, out, CUDA_R_16BF, 0.0f,
                             CUBLASLT_EPILOGUE_DGELU, NULL, aux);
    product fc2_plain = make(CUBLAS_OP_N, CUBLAS_OP_N, I, M, D, w, dout, out, CUDA_R_16BF, 0.0f,
                             CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL);
    float first = 0, fastest = 0;
    first_and_fastest("fc1 GELU_AUX", &fc1_gelu, &first, &fastest);
    first_and_fastest("fc1 bias", &fc1_bias, &first, &fastest);
    first_and_fastest("fc2 din DGELU", &fc2_dgelu, &first, &fastest);
    first_and_fastest("fc2 din plain", &fc2_plain, &first, &fastest);

    backward_pair("qkv 768->2304", M, D, 3 * D, dout, x, w, out, dw, beside, forked, joined);
    backward_pair("out 768->768", M, D, D, dout, x, w, out, dw, beside, forked, joined);
    backward_pair("fc1 768->3072", M, D, I, dout, x, w, out, dw, beside, forked, joined);
    backward_pair("fc2 3072->768", M, I, D, dout, x, w, out, dw, beside, forked, joined);
    char head[32];
    snprintf(head, sizeof head, "head 768->%d", V);
    forward(head, M, D, V, x, w, dout);
    backward_pair(head, M, D, V, dout, x, w, out, dw, beside, forked, joined);
    return 0;
}
