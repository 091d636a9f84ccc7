/* Mamba2's own kernels, one table per backend, as gsa_kernels.h: the plugin
 * picks the table of the op table's backend at create. Every entry has the
 * meaning, layouts and rules of the CPU function of mamba2.h it is named
 * after; pointers are in the backend's memory, void ones activations in the op
 * table's type (fp32 on the CPU, bf16 on CUDA; the parameters A_log, D and
 * dt_bias too, as bind hands them in, and the scan's checkpoints: the
 * products round them to bf16 on CUDA anyway), float ones fp32 everywhere (Δ
 * and its gradient, the norm's rstd, parameter gradients). */
#ifndef FLAME_MAMBA2_KERNELS_H
#define FLAME_MAMBA2_KERNELS_H

#include <stddef.h>

#include "mamba2.h"

typedef struct mamba2_ssd_grads_any {
    void *dx, *dB, *dC;  /* WRITTEN */
    float *ddelta;       /* WRITTEN */
    float *dA_log, *dD;  /* ADDED */
} mamba2_ssd_grads_any;

typedef struct mamba2_kernels {
    /* the widest head P and state N the scan takes; 0: any */
    int ssd_max_P, ssd_max_N;
    /* the scan (its checkpoints: mamba2_ssd_checkpoint_floats() activations):
     * floats of `work` for a whole call with n_work workers (up to
     * max_workers()), for batches of at most n tokens */
    size_t (*ssd_work_floats)(int n, int H, int P, int N, int G, int n_work);
    int (*ssd_max_workers)(void);
    void (*ssd_forward)(void *y, void *checkpoints, const void *x, const float *delta,
                        const void *A_log, const void *B, const void *C, const void *D,
                        const mamba2_ssd_dims *d, float *work, int n_work);
    void (*ssd_backward)(const mamba2_ssd_grads_any *g, const void *dy, const void *x,
                         const float *delta, const void *A_log, const void *B, const void *C,
                         const void *D, const void *checkpoints, const mamba2_ssd_dims *d,
                         float *work, int n_work);

    void (*delta_forward)(float *delta, const void *dt, const void *dt_bias, int n, int H, float lo,
                          float hi);
    void (*delta_backward)(void *ddt, float *ddt_bias, const float *ddelta, const void *dt,
                           const void *dt_bias, int n, int H, float lo, float hi);

    /* the widest group (a row's C/groups values) the gated norm takes; 0: any */
    int gated_norm_max_group;
    void (*gated_norm_forward)(void *out, float *rstd, const void *y, const void *z, const void *w,
                               int rows, int C, int group_size, float eps);
    void (*gated_norm_backward)(void *dy, void *dz, float *dw, const void *dout, const void *y,
                                const void *z, const void *w, const float *rstd, int rows, int C,
                                int group_size);

    void (*split_columns)(void *const *parts, const int *widths, int n_parts, const void *whole,
                          int n);
    void (*join_columns)(void *whole, const void *const *parts, const int *widths, int n_parts,
                         int n);
    /* generation (mamba2.h's mamba2_ssd_step_cpu); NULL: this backend has none yet */
    void (*ssd_step)(void *y, float *states, const void *x, const float *delta, const void *A_log,
                     const void *B, const void *C, const void *D, const mamba2_ssd_dims *d,
                     int n_seqs);
} mamba2_kernels;

extern const mamba2_kernels mamba2_kernels_cpu;
#ifdef FLAME_HAVE_CUDA
extern const mamba2_kernels mamba2_kernels_cuda;
#endif

/* the table for an op table's backend ("cpu", "cuda"), NULL when there is none */
const mamba2_kernels *mamba2_kernels_for(const char *backend);

#endif
