/* The per-backend tables of Mamba2's kernels (mamba2_kernels.h). */
#include <string.h>

#include "mamba2_kernels.h"
#ifdef FLAME_HAVE_CUDA
#include "mamba2_pointwise_cuda.h"
#include "ssd_cuda.h"
#endif

/* The CPU's activations are fp32: the table's activation pointers are the
 * float arrays of the reference functions. The backward's scratch follows
 * the workers' work in one borrowed buffer. */
static size_t cpu_ssd_work_floats(int n, int H, int P, int N, int G, int n_work)
{
    (void)G;
    return (size_t)n_work * mamba2_ssd_work_floats(P, N) + mamba2_ssd_scratch_floats(n, H, N);
}

static void cpu_ssd_forward(void *y, void *checkpoints, const void *x, const float *delta,
                            const void *A_log, const void *B, const void *C, const void *D,
                            const mamba2_ssd_dims *d, float *work, int n_work)
{
    mamba2_ssd_forward_cpu(y, checkpoints, x, delta, A_log, B, C, D, d, work, n_work);
}

static void cpu_ssd_step(void *y, float *states, const void *x, const float *delta,
                         const void *A_log, const void *B, const void *C, const void *D,
                         const mamba2_ssd_dims *d, int n_seqs)
{
    mamba2_ssd_step_cpu(y, states, x, delta, A_log, B, C, D, d, n_seqs);
}

static void cpu_ssd_backward(const mamba2_ssd_grads_any *g, const void *dy, const void *x,
                             const float *delta, const void *A_log, const void *B, const void *C,
                             const void *D, const void *checkpoints, const mamba2_ssd_dims *d,
                             float *work, int n_work)
{
    mamba2_ssd_grads grads = {g->dx, g->ddelta, g->dB, g->dC, g->dA_log, g->dD};
    float *scratch = work + (size_t)n_work * mamba2_ssd_work_floats(d->P, d->N);
    mamba2_ssd_backward_cpu(&grads, dy, x, delta, A_log, B, C, D, checkpoints, d, work, n_work,
                            scratch);
}

static void cpu_delta_forward(float *delta, const void *dt, const void *dt_bias, int n, int H,
                              float lo, float hi)
{
    mamba2_delta_forward_cpu(delta, dt, dt_bias, n, H, lo, hi);
}

static void cpu_delta_backward(void *ddt, float *ddt_bias, const float *ddelta, const void *dt,
                               const void *dt_bias, int n, int H, float lo, float hi)
{
    mamba2_delta_backward_cpu(ddt, ddt_bias, ddelta, dt, dt_bias, n, H, lo, hi);
}

static void cpu_gated_norm_forward(void *out, float *rstd, const void *y, const void *z,
                                   const void *w, int rows, int C, int group_size, float eps)
{
    mamba2_gated_norm_forward_cpu(out, rstd, y, z, w, rows, C, group_size, eps);
}

static void cpu_gated_norm_backward(void *dy, void *dz, float *dw, const void *dout, const void *y,
                                    const void *z, const void *w, const float *rstd, int rows,
                                    int C, int group_size)
{
    mamba2_gated_norm_backward_cpu(dy, dz, dw, dout, y, z, w, rstd, rows, C, group_size);
}

static void cpu_split_columns(void *const *parts, const int *widths, int n_parts,
                              const void *whole, int n)
{
    mamba2_split_columns_cpu((float *const *)parts, widths, n_parts, whole, n);
}

static void cpu_join_columns(void *whole, const void *const *parts, const int *widths, int n_parts,
                             int n)
{
    mamba2_join_columns_cpu(whole, (const float *const *)parts, widths, n_parts, n);
}

const mamba2_kernels mamba2_kernels_cpu = {
    .ssd_work_floats = cpu_ssd_work_floats,
    .ssd_max_workers = mamba2_ssd_max_workers,
    .ssd_forward = cpu_ssd_forward,
    .ssd_backward = cpu_ssd_backward,
    .ssd_step = cpu_ssd_step,
    .delta_forward = cpu_delta_forward,
    .delta_backward = cpu_delta_backward,
    .gated_norm_max_group = 0,
    .gated_norm_forward = cpu_gated_norm_forward,
    .gated_norm_backward = cpu_gated_norm_backward,
    .split_columns = cpu_split_columns,
    .join_columns = cpu_join_columns,
};

#ifdef FLAME_HAVE_CUDA
/* one call, one stream: the workers are the GPU's own */
static size_t cuda_ssd_work_floats(int n, int H, int P, int N, int G, int n_work)
{
    (void)n_work;
    return mamba2_ssd_work_floats_cuda(n, H, P, N, G);
}

static int cuda_ssd_max_workers(void) { return 1; }

static void cuda_ssd_forward(void *y, void *checkpoints, const void *x, const float *delta,
                             const void *A_log, const void *B, const void *C, const void *D,
                             const mamba2_ssd_dims *d, float *work, int n_work)
{
    (void)n_work;
    mamba2_ssd_forward_cuda(y, checkpoints, x, delta, A_log, B, C, D, d, work);
}

static void cuda_ssd_backward(const mamba2_ssd_grads_any *g, const void *dy, const void *x,
                              const float *delta, const void *A_log, const void *B, const void *C,
                              const void *D, const void *checkpoints, const mamba2_ssd_dims *d,
                              float *work, int n_work)
{
    (void)n_work;
    mamba2_ssd_grads_cuda grads = {g->dx, g->dB, g->dC, g->ddelta, g->dA_log, g->dD};
    mamba2_ssd_backward_cuda(&grads, dy, x, delta, A_log, B, C, D, checkpoints, d, work);
}

const mamba2_kernels mamba2_kernels_cuda = {
    .ssd_max_P = 64,
    .ssd_max_N = 128,
    .ssd_work_floats = cuda_ssd_work_floats,
    .ssd_max_workers = cuda_ssd_max_workers,
    .ssd_forward = cuda_ssd_forward,
    .ssd_backward = cuda_ssd_backward,
    .ssd_step = mamba2_ssd_step_cuda,
    .delta_forward = mamba2_delta_forward_cuda,
    .delta_backward = mamba2_delta_backward_cuda,
    .gated_norm_max_group = MAMBA2_GATED_NORM_CUDA_MAX_C,
    .gated_norm_forward = mamba2_gated_norm_forward_cuda,
    .gated_norm_backward = mamba2_gated_norm_backward_cuda,
    .split_columns = mamba2_split_columns_cuda,
    .join_columns = mamba2_join_columns_cuda,
};
#endif

const mamba2_kernels *mamba2_kernels_for(const char *backend)
{
    if (strcmp(backend, "cpu") == 0)
        return &mamba2_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0)
        return &mamba2_kernels_cuda;
#endif
    return NULL;
}
