/* The per-backend tables of GSA's kernels (gsa_kernels.h). */
#include <string.h>

#include "gla.h"
#include "gsa_kernels.h"

/* The CPU's activations are fp32: the table's activation pointers are the
 * float arrays of the reference functions. */
static size_t cpu_slot_work_floats(int n, int H, int dk, int M)
{
    (void)n, (void)H; /* one chunk of states per worker, whatever the batch */
    return gsa_slot_work_floats(dk, M);
}

static int cpu_slot_max_workers(void) { return gla_recurrence_max_workers(); }

static void slot_forward_cpu(void *ok, float *checkpoints, const void *q, const void *k,
                             const void *s, const void *f, const gsa_slot_dims *d, float *work,
                             int n_work)
{
    gsa_slot_recurrence_forward_cpu(ok, checkpoints, q, k, s, f, d, work, n_work);
}

static void slot_backward_cpu(void *dq, void *dk, void *ds, void *df, const void *dok,
                              const void *q, const void *k, const void *s, const void *f,
                              const float *checkpoints, const gsa_slot_dims *d, float *work,
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

static void softmax_forward_cpu(void *p, const void *x, int rows, int M)
{
    gsa_softmax_forward_cpu(p, x, rows, M);
}

static void softmax_backward_cpu(void *dx, const void *dp, const void *p, int rows, int M)
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
    .slot_checkpoint_floats = gsa_slot_checkpoint_floats,
    .slot_work_floats = cpu_slot_work_floats,
    .slot_max_workers = cpu_slot_max_workers,
    .slot_forward = slot_forward_cpu,
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

const gsa_kernels *gsa_kernels_for(const char *backend)
{
    if (strcmp(backend, "cpu") == 0)
        return &gsa_kernels_cpu;
    return NULL;
}
