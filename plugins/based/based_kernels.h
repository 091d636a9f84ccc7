/* Based's own kernels, one table per backend, as mamba2_kernels.h: the plugin
 * picks the table of the op table's backend at create. Every entry has the
 * meaning, layouts and rules of the CPU function of based.h it is named after;
 * pointers are in the backend's memory, void ones activations in the op
 * table's type (fp32 on the CPU, bf16 on CUDA), float ones fp32. The
 * sliding-window layers use the transformer's kernels (transformer_kernels.h). */
#ifndef FLAME_BASED_KERNELS_H
#define FLAME_BASED_KERNELS_H

#include <stddef.h>

#include "based.h"

typedef struct based_kernels {
    /* the widest feature_dim the Taylor attention takes; 0: any */
    int taylor_max_F;
    int (*taylor_max_workers)(void);
    /* floats of `work` for a forward or a backward with n_work workers, for
     * batches of at most n tokens of H heads */
    size_t (*taylor_work_floats)(int n, int H, int F, int Dv, int n_work);
    void (*taylor_forward)(void *y, const void *q, const void *k, const void *v, const based_dims *d,
                           float *work, int n_work);
    /* dq, dk, dv WRITTEN */
    void (*taylor_backward)(void *dq, void *dk, void *dv, const void *dy, const void *q,
                            const void *k, const void *v, const based_dims *d, float *work,
                            int n_work);
    /* generation (based.h's based_taylor_step_cpu); NULL: this backend has none yet */
    void (*taylor_step)(void *y, float *states, const void *q, const void *k, const void *v,
                        const based_dims *d, int n_seqs);
} based_kernels;

extern const based_kernels based_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
extern const based_kernels based_kernels_cuda;
#endif

/* the table for an op table's backend ("cpu", "cuda"), NULL when there is none */
const based_kernels *based_kernels_for(const char *backend);

#endif
