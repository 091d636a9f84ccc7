/* The per-backend tables of Based's kernels (based_kernels.h). */
#include <string.h>

#include "based_kernels.h"
#ifdef FLAME_HAVE_CUDA
#include "based_cuda.h"
#endif

/* The CPU's activations are fp32: the table's activation pointers are the
 * float arrays of the reference functions. The backward needs more than the
 * forward (a document's b_i and β_i), so one size serves both. */
static size_t cpu_taylor_work_floats(int n, int H, int F, int Dv, int n_work)
{
    (void)H; /* a worker takes one (document, head) at a time */
    return (size_t)n_work * based_taylor_backward_work_floats(F, Dv, n);
}

static void cpu_taylor_forward(void *y, const void *q, const void *k, const void *v,
                               const based_dims *d, float *work, int n_work)
{
    based_taylor_forward_cpu(y, q, k, v, d, work, n_work);
}

static void cpu_taylor_backward(void *dq, void *dk, void *dv, const void *dy, const void *q,
                                const void *k, const void *v, const based_dims *d, float *work,
                                int n_work)
{
    based_taylor_backward_cpu(dq, dk, dv, dy, q, k, v, d, work, n_work);
}

static void cpu_taylor_step(void *y, float *states, const void *q, const void *k, const void *v,
                            const based_dims *d, int n_seqs)
{
    based_taylor_step_cpu(y, states, q, k, v, d, n_seqs);
}

const based_kernels based_kernels_cpu = {
    .taylor_max_workers = based_taylor_max_workers,
    .taylor_work_floats = cpu_taylor_work_floats,
    .taylor_forward = cpu_taylor_forward,
    .taylor_backward = cpu_taylor_backward,
    .taylor_step = cpu_taylor_step,
};

#ifdef FLAME_HAVE_CUDA
/* one call, one stream: the workers are the GPU's own */
static int cuda_taylor_max_workers(void) { return 1; }

static size_t cuda_taylor_work_floats(int n, int H, int F, int Dv, int n_work)
{
    (void)n_work;
    return based_taylor_work_floats_cuda(n, H, F, Dv);
}

static void cuda_taylor_forward(void *y, const void *q, const void *k, const void *v,
                                const based_dims *d, float *work, int n_work)
{
    (void)n_work;
    based_taylor_forward_cuda(y, q, k, v, d, work);
}

static void cuda_taylor_backward(void *dq, void *dk, void *dv, const void *dy, const void *q,
                                 const void *k, const void *v, const based_dims *d, float *work,
                                 int n_work)
{
    (void)n_work;
    based_taylor_backward_cuda(dq, dk, dv, dy, q, k, v, d, work);
}

const based_kernels based_kernels_cuda = {
    .taylor_max_F = BASED_TAYLOR_CUDA_MAX_F,
    .taylor_max_workers = cuda_taylor_max_workers,
    .taylor_work_floats = cuda_taylor_work_floats,
    .taylor_forward = cuda_taylor_forward,
    .taylor_backward = cuda_taylor_backward,
    .taylor_step = based_taylor_step_cuda,
};
#endif

const based_kernels *based_kernels_for(const char *backend)
{
    if (strcmp(backend, "cpu") == 0)
        return &based_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0)
        return &based_kernels_cuda;
#endif
    return NULL;
}
