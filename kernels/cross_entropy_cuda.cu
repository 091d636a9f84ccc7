/* Softmax cross-entropy over rows of V bf16 logits, with its gradient.
 *   loss_i = logsumexp(logits_i) − logits_i[t_i]
 *   dlogits_i = scale · (softmax(logits_i) − onehot(t_i))   (bf16)
 * One block per row, fp32 arithmetic. The first pass keeps a running maximum
 * and a sum of exponentials rescaled to it (online softmax), so the logits
 * are read twice in all, not three times, or once where the row is staged in
 * shared memory (below); no exp overflows. The gradient may
 * overwrite the logits (in place): each thread reads the target's logit
 * before the block's reductions, and those barriers come before any write.
 * The exponentials are the fast __expf (ex2.approx): its error, a few fp32
 * ulps for the exponents here (at most 0, and large only for terms that add
 * nothing), is far below bf16's rounding and leaves the loss within 1e-6;
 * the accurate expf's instructions cost the pass 8 % (H200, GPT-2 small).
 * Rows with t_i < 0 are ignored: loss 0, gradient 0. The rows' losses are
 * added on the device in a fixed order. */
#include <math.h>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

/* Rows of at most the block's shared memory (GPT-2's 50 K tokens in bf16,
 * 100 KB) are staged: the first pass keeps each value it reads there, and the
 * gradient is made from that copy, so the logits are read once (their second
 * read was a third of the op's traffic). Longer rows are read twice. */
#define STAGED_THREADS 1024

/* log Σ_j exp(l_j) over the row, returned to every thread of the block; with
 * STAGED, each thread's values also into kept, where it reads them again */
template <int W, bool STAGED> static __device__ float row_logsumexp(const act_t *l, act_t *kept, int V)
{
    float mx = -INFINITY, sum = 0.0f; /* this thread's: sum = Σ exp(l_j − mx) */
    for (int j = threadIdx.x * W; j < V; j += blockDim.x * W) {
        packed<act_t, W> raw = *reinterpret_cast<const packed<act_t, W> *>(l + j);
        if (STAGED)
            *reinterpret_cast<packed<act_t, W> *>(kept + j) = raw;
        float v[W], vmax = -INFINITY;
#pragma unroll
        for (int k = 0; k < W; k++) {
            v[k] = to_f32(raw.v[k]);
            vmax = fmaxf(vmax, v[k]);
        }
        if (vmax == -INFINITY)
            continue; /* nothing to add, and −∞ − −∞ would be NaN below */
        if (vmax > mx) {
            sum *= __expf(mx - vmax);
            mx = vmax;
        }
#pragma unroll
        for (int k = 0; k < W; k++)
            sum += __expf(v[k] - mx);
    }
    float row_max = block_max(mx);
    sum = mx == -INFINITY ? 0.0f : sum * expf(mx - row_max);
    return row_max + logf(block_sum(sum));
}

template <int W, bool STAGED>
static __global__ void cross_entropy_rows(double *row_loss, float *losses, act_t *dlogits,
                                          const act_t *logits, const int32_t *targets, int V,
                                          float scale)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char staged_row[];
    act_t *kept = reinterpret_cast<act_t *>(staged_row);
    size_t row = (size_t)blockIdx.x * V;
    const act_t *l = logits + row;
    act_t *dl = dlogits ? dlogits + row : NULL;
    int32_t t = targets[blockIdx.x];
    float loss = 0.0f;
    if (t >= 0) { /* the same for the whole block: the barriers inside are safe */
        float target_logit = to_f32(l[t]);
        float lse = row_logsumexp<W, STAGED>(l, kept, V);
        loss = lse - target_logit;
        const act_t *again = STAGED ? kept : l; /* a thread reads back only what it kept */
        if (dl)
            for (int j = threadIdx.x * W; j < V; j += blockDim.x * W) {
                float v[W];
                load_floats<W>(v, again + j);
#pragma unroll
                for (int k = 0; k < W; k++)
                    v[k] = scale * __expf(v[k] - lse) - (j + k == t ? scale : 0.0f);
                store_floats<W>(dl + j, v);
            }
    } else if (dl) {
        const float zeros[W] = {};
        for (int j = threadIdx.x * W; j < V; j += blockDim.x * W)
            store_floats<W>(dl + j, zeros);
    }
    if (threadIdx.x == 0) {
        row_loss[blockIdx.x] = loss;
        if (losses)
            losses[blockIdx.x] = loss;
    }
}

/* The dynamic shared memory a block of kernel may have, opted into: the
 * device's limit less the kernel's static shared memory (its reductions'). */
static size_t opt_into_staging(const void *kernel)
{
    int device, limit;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    cudaFuncAttributes attributes;
    CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
    size_t room = (size_t)limit - attributes.sharedSizeBytes;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)room));
    return room;
}

template <int W>
static void launch_rows(double *row_loss, float *losses, act_t *dl, const act_t *l, const int32_t *targets, int n,
                        int V, float scale)
{
    static const size_t room = opt_into_staging((const void *)cross_entropy_rows<W, true>); /* once */
    size_t bytes = (size_t)V * sizeof(act_t);
    if (dl && bytes <= room)
        launch_kernel(cross_entropy_rows<W, true>, n, STAGED_THREADS, bytes, row_loss, losses, dl,
                      l, targets, V, scale);
    else
        launch_kernel(cross_entropy_rows<W, false>, n, CUDA_BLOCK, 0, row_loss, losses, dl, l,
                      targets, V, scale);
}

double cross_entropy_cuda(float *losses, void *dlogits, const void *logits,
                          const int32_t *targets, int n, int V, float dloss_scale)
{
    if (n <= 0)
        return 0.0;
    double *row_loss = (double *)cuda_scratch((size_t)n * sizeof(double));
    act_t *dl = (act_t *)dlogits;
    const act_t *l = (const act_t *)logits;
    if (vectorizable(V, dlogits, logits))
        launch_rows<ACT_VEC>(row_loss, losses, dl, l, targets, n, V, dloss_scale);
    else
        launch_rows<1>(row_loss, losses, dl, l, targets, n, V, dloss_scale);
    return sum_doubles_cuda(row_loss, (size_t)n);
}
