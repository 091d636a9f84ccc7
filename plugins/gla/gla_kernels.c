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

const gla_kernels gla_kernels_cpu = {
    .recurrence_checkpoint_floats = gla_recurrence_checkpoint_floats,
    .recurrence_work_floats = cpu_work_floats,
    .recurrence_max_workers = gla_recurrence_max_workers,
    .recurrence_forward = gla_recurrence_forward_cpu,
    .recurrence_backward = gla_recurrence_backward_cpu,
    .gate_norm_forward = gla_gate_norm_forward_cpu,
    .gate_norm_backward = gla_gate_norm_backward_cpu,
    .gates_forward = gla_gates_forward_cpu,
    .gates_backward = gla_gates_backward_cpu,
};

#ifdef FLAME_HAVE_CUDA
/* the GPU runs the whole batch at once, as one worker */
static int cuda_max_workers(void) { return 1; }

const gla_kernels gla_kernels_cuda = {
    .recurrence_checkpoint_floats = gla_recurrence_checkpoint_floats, /* the same layout */
    .recurrence_work_floats = gla_recurrence_work_floats_cuda,
    .recurrence_max_workers = cuda_max_workers,
    .recurrence_forward = gla_recurrence_forward_cuda,
    .recurrence_backward = gla_recurrence_backward_cuda,
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
