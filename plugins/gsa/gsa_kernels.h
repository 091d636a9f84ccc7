/* GSA's own kernels, one table per backend, as gla_kernels.h: the plugin picks
 * the table of the op table's backend at create. Every entry has the meaning,
 * layouts and rules of the CPU function of gsa.h it is named after; pointers
 * are in the backend's memory, void ones activations in the op table's type
 * (fp32 on the CPU, bf16 on CUDA), float ones fp32 everywhere. GSA's second
 * pass is GLA's recurrence, taken from gla_kernels.h. */
#ifndef FLAME_GSA_KERNELS_H
#define FLAME_GSA_KERNELS_H

#include <stddef.h>

#include "gsa.h"

typedef struct gsa_kernels {
    /* the first pass: values of `checkpoints` (activations) and, per worker,
     * floats of `work` for batches of at most n tokens; up to max_workers() workers */
    size_t (*slot_checkpoint_values)(int n, int H, int dk, int M);
    size_t (*slot_work_floats)(int n, int H, int dk, int M);
    int (*slot_max_workers)(void);
    void (*slot_forward)(void *ok, void *checkpoints, const void *q, const void *k, const void *s,
                         const void *f, const gsa_slot_dims *d, float *work, int n_work);
    void (*slot_backward)(void *dq, void *dk, void *ds, void *df, const void *dok, const void *q,
                          const void *k, const void *s, const void *f, const void *checkpoints,
                          const gsa_slot_dims *d, float *work, int n_work);

    void (*swish_forward)(void *y, const void *x, size_t n);
    void (*swish_backward)(void *dx, const void *dy, const void *x, size_t n);
    void (*slot_gates_forward)(void *f, void *s, const void *x, size_t n, float normalizer);
    void (*slot_gates_backward)(void *dx, const void *df_slots, const void *df_values,
                                const void *ds_slots, const void *ds_values, const void *f,
                                size_t n, float normalizer);

    /* the most slots M the softmax, and the widest row C the output norm, take; 0: any */
    int softmax_max_M, output_norm_max_C;
    /* p and dp are fp32 on every backend, as fla keeps them: the backward
     * subtracts Σ p·dp from each dp, nearly equal values, and bf16 roundings
     * of p or dp would be magnified there */
    void (*softmax_forward)(float *p, const void *x, int rows, int M);
    void (*softmax_backward)(void *dx, const float *dp, const float *p, int rows, int M);
    void (*output_norm_forward)(void *y, float *rstd, const void *o, const void *w, int rows, int C,
                                float eps);
    void (*output_norm_backward)(void *d_o, float *dw, const void *dy, const void *o, const void *w,
                                 const float *rstd, int rows, int C);
    /* generation (gsa.h's gsa_slot_step_cpu); NULL: this backend has none yet */
    void (*slot_step)(void *ok, float *states, const void *q, const void *k, const void *s,
                      const void *f, const gsa_slot_dims *d, int n_seqs);
} gsa_kernels;

extern const gsa_kernels gsa_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
extern const gsa_kernels gsa_kernels_cuda;
#endif

/* the table for an op table's backend ("cpu", "cuda"), NULL when there is none */
const gsa_kernels *gsa_kernels_for(const char *backend);

#endif
