/* GLA's own kernels, one table per backend: the plugin picks the table of the
 * op table's backend at create and calls nothing else of its own math. Every
 * entry has the meaning, layouts and add-into-gradients rules of the CPU
 * function it is named after (gla.h); pointers are in the backend's memory. */
#ifndef FLAME_GLA_KERNELS_H
#define FLAME_GLA_KERNELS_H

#include <stddef.h>

#include "gla.h"

typedef struct gla_kernels {
    /* sizing: floats of `checkpoints` and, per worker, of `work` for batches of
     * at most n tokens; the recurrence may use up to max_workers() workers */
    size_t (*recurrence_checkpoint_floats)(int n, int H, int dk, int dv);
    size_t (*recurrence_work_floats)(int n, int H, int dk, int dv);
    int (*recurrence_max_workers)(void);

    void (*recurrence_forward)(float *o, float *checkpoints, const float *q, const float *k,
                               const float *v, const float *gk, const gla_recurrence_dims *d,
                               float *work, int n_work);
    void (*recurrence_backward)(float *dq, float *dk, float *dv, float *dgk, const float *dout,
                                const float *q, const float *k, const float *v, const float *gk,
                                const float *checkpoints, const gla_recurrence_dims *d,
                                float *work, int n_work);

    void (*gate_norm_forward)(float *y, float *rstd, const float *o, const float *g,
                              const float *w, int rows, int C, float eps);
    void (*gate_norm_backward)(float *d_o, float *dg, float *dw, const float *dy, const float *o,
                               const float *g, const float *w, const float *rstd, int rows, int C);

    void (*gates_forward)(float *gk, const float *x, size_t n, float normalizer);
    void (*gates_backward)(float *dx, const float *dgk, const float *gk, size_t n,
                           float normalizer);
} gla_kernels;

extern const gla_kernels gla_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
extern const gla_kernels gla_kernels_cuda;
#endif

/* the table for an op table's backend ("cpu", "cuda"), NULL when there is none */
const gla_kernels *gla_kernels_for(const char *backend);

#endif
