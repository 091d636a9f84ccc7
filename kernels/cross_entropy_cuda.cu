/* Softmax cross-entropy over rows of V logits, with its gradient.
 *   loss_i = logsumexp(logits_i) − logits_i[t_i]
 *   dlogits_i = scale · (softmax(logits_i) − onehot(t_i))
 * One block per row: the row maximum first (so no exp overflows), then the
 * sum of exponentials in double, as the CPU reference does. Rows with t_i < 0
 * are ignored: loss 0, gradient 0. The rows' losses are added on the device
 * in a fixed order. */
#include <math.h>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

static __global__ void cross_entropy_rows(double *row_loss, float *losses, float *dlogits,
                                          const float *logits, const int32_t *targets, int V,
                                          float scale)
{
    size_t row = (size_t)blockIdx.x * V;
    const float *l = logits + row;
    float *dl = dlogits ? dlogits + row : NULL;
    int32_t t = targets[blockIdx.x];
    double loss = 0.0;
    if (t >= 0) { /* the same for the whole block: the barriers below are safe */
        float mx = -INFINITY;
        for (int j = threadIdx.x; j < V; j += blockDim.x)
            mx = fmaxf(mx, l[j]);
        mx = block_max(mx);
        double sum = 0.0;
        for (int j = threadIdx.x; j < V; j += blockDim.x)
            sum += expf(l[j] - mx);
        sum = block_sum(sum);
        double lse = mx + log(sum);
        loss = lse - l[t];
        if (dl)
            for (int j = threadIdx.x; j < V; j += blockDim.x)
                dl[j] = scale * expf((float)(l[j] - lse)) - (j == t ? scale : 0.0f);
    } else if (dl) {
        for (int j = threadIdx.x; j < V; j += blockDim.x)
            dl[j] = 0.0f;
    }
    if (threadIdx.x == 0) {
        row_loss[blockIdx.x] = loss;
        if (losses)
            losses[blockIdx.x] = (float)loss;
    }
}

double cross_entropy_cuda(float *losses, float *dlogits, const float *logits,
                          const int32_t *targets, int n, int V, float dloss_scale)
{
    if (n <= 0)
        return 0.0;
    double *row_loss = (double *)cuda_scratch((size_t)n * sizeof(double));
    cross_entropy_rows<<<n, CUDA_BLOCK>>>(row_loss, losses, dlogits, logits, targets, V,
                                          dloss_scale);
    CUDA_CHECK_LAUNCH();
    return sum_doubles_cuda(row_loss, (size_t)n);
}
