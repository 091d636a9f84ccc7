/* The per-backend tables of GLA's kernels (gla_kernels.h). */
#include <string.h>

#include "gla_kernels.h"
#ifdef FLAME_HAVE_CUDA
#include "gla_cuda.h"
#endif

/* the CPU's work does not depend on the batch: one chunk of states per worker */
static size_t cpu_work_floats(int n, int H, int dk, int dv)
{
    (void)n, (void)H;
    return gla_recurrence_work_floats(dk, dv);
}

/* The CPU's activations are fp32: the table's activation pointers are the
 * float arrays of the reference functions. */
static void recurrence_forward_cpu(void *o, void *checkpoints, const void *q, const void *k,
                                   const void *v, const void *gk, const gla_recurrence_dims *d,
                                   float *work, int n_work)
{
    gla_recurrence_forward_cpu(o, checkpoints, q, k, v, gk, d, work, n_work);
}

static void recurrence_backward_cpu(void *dq, void *dk, void *dv, void *dgk, const void *dout,
                                    const void *q, const void *k, const void *v, const void *gk,
                                    void *checkpoints, const gla_recurrence_dims *d,
                                    float *work, int n_work)
{
    gla_recurrence_backward_cpu(dq, dk, dv, dgk, dout, q, k, v, gk, checkpoints, d, work, n_work);
}

static void recurrence_step_cpu(void *o, float *states, const void *q, const void *k,
                                const void *v, const void *gk, int B, int H, int dk, int dv,
                                float scale, int stride)
{
    gla_recurrence_step_cpu(o, states, q, k, v, gk, B, H, dk, dv, scale, stride);
}

static void gate_norm_forward_cpu(void *y, float *rstd, const void *o, const void *g, const gla_gate_rows *gr,
                                  const void *w, int rows, int C, float eps)
{
    gla_gate_norm_forward_cpu(y, rstd, o, g, gr, w, rows, C, eps);
}

static void gate_norm_backward_cpu(void *d_o, void *dg, float *dw, const void *dy, const void *o,
                                   const void *g, const gla_gate_rows *gr, const void *w, const float *rstd,
                                   int rows, int C)
{
    gla_gate_norm_backward_cpu(d_o, dg, dw, dy, o, g, gr, w, rstd, rows, C);
}

static void gates_forward_cpu(void *gk, const void *x, size_t n, float normalizer)
{
    gla_gates_forward_cpu(gk, x, n, normalizer);
}

static void gates_backward_cpu(void *dx, const void *dgk, const void *gk, size_t n, float normalizer)
{
    gla_gates_backward_cpu(dx, dgk, gk, n, normalizer);
}

const gla_kernels gla_kernels_cpu = {
    .recurrence_checkpoint_values = gla_recurrence_checkpoint_values,
    .recurrence_work_floats = cpu_work_floats,
    .recurrence_max_workers = gla_recurrence_max_workers,
    .recurrence_forward = recurrence_forward_cpu,
    .recurrence_backward = recurrence_backward_cpu,
    .recurrence_step = recurrence_step_cpu,
    .gate_norm_max_C = 0,
    .gate_norm_forward = gate_norm_forward_cpu,
    .gate_norm_backward = gate_norm_backward_cpu,
    .gates_forward = gates_forward_cpu,
    .gates_backward = gates_backward_cpu,
};

#ifdef FLAME_HAVE_CUDA
/* the GPU runs the whole batch at once, as one worker */
static int cuda_max_workers(void) { return 1; }

const gla_kernels gla_kernels_cuda = {
    .recurrence_checkpoint_values = gla_recurrence_checkpoint_values, /* the same layout, in bf16 */
    .recurrence_work_floats = gla_recurrence_work_floats_cuda,
    .recurrence_max_workers = cuda_max_workers,
    .recurrence_scores_floats = gla_recurrence_scores_floats_cuda,
    .recurrence_chunk_table_floats = gla_recurrence_chunk_table_floats_cuda,
    .recurrence_forward = gla_recurrence_forward_cuda,
    .recurrence_backward = gla_recurrence_backward_cuda,
    .recurrence_step = gla_recurrence_step_cuda,
    .gate_norm_max_C = GLA_GATE_NORM_CUDA_MAX_C, /* a row lives in one warp's registers */
    .gate_norm_forward = gla_gate_norm_forward_cuda,
    .gate_norm_backward = gla_gate_norm_backward_cuda,
    .gates_forward = gla_gates_forward_cuda,
    .gates_backward = gla_gates_backward_cuda,
};
#endif

const gla_kernels *gla_kernels_for(const char *backend)
{
    if (strcmp(backend, "cpu") == 0)
        return &gla_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0)
        return &gla_kernels_cuda;
#endif
    return NULL;
}
