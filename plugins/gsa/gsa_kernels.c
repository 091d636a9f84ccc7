/* The per-backend tables of GSA's kernels (gsa_kernels.h). */
#include <string.h>

#include "gla.h"
#include "gsa_kernels.h"
#ifdef FLAME_HAVE_CUDA
#include "gsa_cuda.h"
#endif

/* The CPU's activations are fp32: the table's activation pointers are the
 * float arrays of the reference functions. */
static size_t cpu_slot_work_floats(int n, int H, int dk, int M)
{
    (void)n, (void)H; /* one chunk of states per worker, whatever the batch */
    return gsa_slot_work_floats(dk, M);
}

static int cpu_slot_max_workers(void) { return gla_recurrence_max_workers(); }

static void slot_forward_cpu(void *ok, void *checkpoints, const void *q, const void *k,
                             const void *s, const void *f, const gsa_slot_dims *d, float *work,
                             int n_work)
{
    gsa_slot_recurrence_forward_cpu(ok, checkpoints, q, k, s, f, d, work, n_work);
}

static void slot_step_cpu(void *ok, float *states, const void *q, const void *k, const void *s,
                          const void *f, const gsa_slot_dims *d, int n_seqs)
{
    gsa_slot_step_cpu(ok, states, q, k, s, f, d, n_seqs);
}

static void slot_backward_cpu(void *dq, void *dk, void *ds, void *df, const void *dok,
                              const void *q, const void *k, const void *s, const void *f,
                              const void *checkpoints, const gsa_slot_dims *d, float *work,
                              int n_work)
{
    gsa_slot_recurrence_backward_cpu(dq, dk, ds, df, dok, q, k, s, f, checkpoints, d, work, n_work);
}

static void swish_forward_cpu(void *y, const void *x, size_t n) { gsa_swish_forward_cpu(y, x, n); }

static void swish_backward_cpu(void *dx, const void *dy, const void *x, size_t n)
{
    gsa_swish_backward_cpu(dx, dy, x, n);
}

static void slot_gates_forward_cpu(void *f, void *s, const void *x, size_t n, float normalizer)
{
    gsa_slot_gates_forward_cpu(f, s, x, n, normalizer);
}

static void slot_gates_backward_cpu(void *dx, const void *df_slots, const void *df_values,
                                    const void *ds_slots, const void *ds_values, const void *f,
                                    size_t n, float normalizer)
{
    gsa_slot_gates_backward_cpu(dx, df_slots, df_values, ds_slots, ds_values, f, n, normalizer);
}

static void softmax_forward_cpu(float *p, const void *x, int rows, int M)
{
    gsa_softmax_forward_cpu(p, x, rows, M);
}

static void softmax_backward_cpu(void *dx, const float *dp, const float *p, int rows, int M)
{
    gsa_softmax_backward_cpu(dx, dp, p, rows, M);
}

static void output_norm_forward_cpu(void *y, float *rstd, const void *o, const void *w, int rows,
                                    int C, float eps)
{
    gsa_output_norm_forward_cpu(y, rstd, o, w, rows, C, eps);
}

static void output_norm_backward_cpu(void *d_o, float *dw, const void *dy, const void *o,
                                     const void *w, const float *rstd, int rows, int C)
{
    gsa_output_norm_backward_cpu(d_o, dw, dy, o, w, rstd, rows, C);
}

const gsa_kernels gsa_kernels_cpu = {
    .slot_checkpoint_values = gsa_slot_checkpoint_values,
    .slot_work_floats = cpu_slot_work_floats,
    .slot_max_workers = cpu_slot_max_workers,
    .slot_forward = slot_forward_cpu,
    .slot_step = slot_step_cpu,
    .slot_backward = slot_backward_cpu,
    .swish_forward = swish_forward_cpu,
    .swish_backward = swish_backward_cpu,
    .slot_gates_forward = slot_gates_forward_cpu,
    .slot_gates_backward = slot_gates_backward_cpu,
    .softmax_max_M = 0,
    .output_norm_max_C = 0,
    .softmax_forward = softmax_forward_cpu,
    .softmax_backward = softmax_backward_cpu,
    .output_norm_forward = output_norm_forward_cpu,
    .output_norm_backward = output_norm_backward_cpu,
};

#ifdef FLAME_HAVE_CUDA
/* the GPU runs the whole batch at once, as one worker */
static int cuda_max_workers(void) { return 1; }

const gsa_kernels gsa_kernels_cuda = {
    .slot_checkpoint_values = gsa_slot_checkpoint_values, /* the same layout */
    .slot_work_floats = gsa_slot_work_floats_cuda,
    .slot_max_workers = cuda_max_workers,
    .slot_forward = gsa_slot_recurrence_forward_cuda,
    .slot_step = gsa_slot_step_cuda,
    .slot_backward = gsa_slot_recurrence_backward_cuda,
    .swish_forward = gsa_swish_forward_cuda,
    .swish_backward = gsa_swish_backward_cuda,
    .slot_gates_forward = gsa_slot_gates_forward_cuda,
    .slot_gates_backward = gsa_slot_gates_backward_cuda,
    .softmax_max_M = GSA_SOFTMAX_CUDA_MAX_M,       /* a row lives in one warp's registers */
    .output_norm_max_C = GSA_OUTPUT_NORM_CUDA_MAX_C, /* a row lives in one block's */
    .softmax_forward = gsa_softmax_forward_cuda,
    .softmax_backward = gsa_softmax_backward_cuda,
    .output_norm_forward = gsa_output_norm_forward_cuda,
    .output_norm_backward = gsa_output_norm_backward_cuda,
};
#endif

const gsa_kernels *gsa_kernels_for(const char *backend)
{
    if (strcmp(backend, "cpu") == 0)
        return &gsa_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0)
        return &gsa_kernels_cuda;
#endif
    return NULL;
}
