/* RMSNorm: y = x · rstd · w per row, rstd = 1/sqrt(mean(x²) + eps).
 * Backward, with g = dy ⊙ w and rstd = r:
 *   dx_j = r·g_j − x_j · r³ · (Σ_k g_k x_k) / C
 *   dw_j = Σ_rows dy_j · x_j · r
 * One block per row for the row sums; dw through the deterministic column sum. */
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

static __global__ void rmsnorm_rows(float *out, float *rstd, const float *x, const float *weight,
                                    int C, float eps)
{
    const float *xi = x + (size_t)blockIdx.x * C;
    float *yi = out + (size_t)blockIdx.x * C;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        ss += xi[j] * xi[j];
    ss = block_sum(ss);
    float r = 1.0f / sqrtf(ss / C + eps);
    if (threadIdx.x == 0)
        rstd[blockIdx.x] = r;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        yi[j] = xi[j] * r * weight[j];
}

static __global__ void rmsnorm_dx_rows(float *dx, const float *dout, const float *x,
                                       const float *weight, const float *rstd, int C)
{
    size_t row = (size_t)blockIdx.x * C;
    const float *dy = dout + row, *xi = x + row;
    float dot = 0.0f;
    for (int k = threadIdx.x; k < C; k += blockDim.x)
        dot += dy[k] * weight[k] * xi[k];
    dot = block_sum(dot);
    float r = rstd[blockIdx.x];
    float c = dot * r * r * r / C;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dx[row + j] += r * dy[j] * weight[j] - xi[j] * c;
}

/* dw_j's term of row i */
struct rmsnorm_dw_term {
    const float *dout, *x, *rstd;
    int C;
    __device__ float operator()(int i, int j) const
    {
        size_t at = (size_t)i * C + j;
        return dout[at] * x[at] * rstd[i];
    }
};

void rmsnorm_forward_cuda(float *out, float *rstd, const float *x, const float *weight,
                          int n, int C, float eps)
{
    if (n <= 0)
        return;
    rmsnorm_rows<<<n, CUDA_BLOCK>>>(out, rstd, x, weight, C, eps);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward_cuda(float *dx, float *dweight, const float *dout, const float *x,
                           const float *weight, const float *rstd, int n, int C)
{
    if (dx && n > 0) {
        rmsnorm_dx_rows<<<n, CUDA_BLOCK>>>(dx, dout, x, weight, rstd, C);
        CUDA_CHECK_LAUNCH();
    }
    if (dweight)
        column_sum_add(dweight, n, C, rmsnorm_dw_term{dout, x, rstd, C});
}
