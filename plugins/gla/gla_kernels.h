/* GLA's own kernels, one table per backend: the plugin picks the table of the
 * op table's backend at create and calls nothing else of its own math. Every
 * entry has the meaning, layouts and rules of the CPU function it is named
 * after (gla.h: which gradients are added into, which overwritten, which may
 * be NULL); pointers are in the backend's memory, activations in the op
 * table's type (flame/ops.h). */
#ifndef FLAME_GLA_KERNELS_H
#define FLAME_GLA_KERNELS_H

#include <stddef.h>

#include "gla.h"

typedef struct gla_kernels {
    /* sizing: values of `checkpoints` (activations) and floats per worker of
     * `work` for batches of at most n tokens; the recurrence may use up to
     * max_workers() workers */
    size_t (*recurrence_checkpoint_values)(int n, int H, int dk, int dv);
    size_t (*recurrence_work_floats)(int n, int H, int dk, int dv);
    int (*recurrence_max_workers)(void);
    /* floats a layer keeps of the forward's intra-chunk scores for its
     * backward (gla_recurrence_dims.scores); NULL: the backend makes none */
    size_t (*recurrence_scores_floats)(int n, int H);
    /* floats of the batch's chunk table (gla_recurrence_dims.chunk_table) for
     * batches of at most n tokens; NULL: the backend keeps none */
    size_t (*recurrence_chunk_table_floats)(int n);

    /* void pointers are activations in the op table's type (fp32 on the CPU,
     * bf16 on CUDA); float pointers are fp32 on every backend */
    void (*recurrence_forward)(void *o, void *checkpoints, const void *q, const void *k,
                               const void *v, const void *gk, const gla_recurrence_dims *d,
                               float *work, int n_work);
    /* dq is fp32 (float) where d->dq_fp32 says so, else an activation */
    void (*recurrence_backward)(void *dq, void *dk, void *dv, void *dgk, const void *dout,
                                const void *q, const void *k, const void *v, const void *gk,
                                void *checkpoints, const gla_recurrence_dims *d,
                                float *work, int n_work);

    /* generation (gla.h's gla_recurrence_step_cpu); NULL: this backend has none yet */
    void (*recurrence_step)(void *o, float *states, const void *q, const void *k, const void *v,
                            const void *gk, int B, int H, int dk, int dv, float scale, int stride);

    /* the widest row (value head) the gated norm takes; 0: any */
    int gate_norm_max_C;
    void (*gate_norm_forward)(void *y, float *rstd, const void *o, const void *g, const gla_gate_rows *gr,
                              const void *w, int rows, int C, float eps);
    void (*gate_norm_backward)(void *d_o, void *dg, float *dw, const void *dy, const void *o,
                               const void *g, const gla_gate_rows *gr, const void *w, const float *rstd,
                               int rows, int C);

    void (*gates_forward)(void *gk, const void *x, size_t n, float normalizer);
    void (*gates_backward)(void *dx, const void *dgk, const void *gk, size_t n, float normalizer);
} gla_kernels;

extern const gla_kernels gla_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
extern const gla_kernels gla_kernels_cuda;
#endif

/* the table for an op table's backend ("cpu", "cuda"), NULL when there is none */
const gla_kernels *gla_kernels_for(const char *backend);

#endif
