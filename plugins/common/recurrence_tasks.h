/* How the CPU recurrences (GLA's, GSA's slot pass, Mamba2's scan, Based's
 * Taylor attention) share out their work: one task per (sequence, head),
 * each with its own outputs, so that threads never share a sum and the
 * results do not depend on their number. recurrence_run runs a call's tasks;
 * Based uses it, the older scans still write its loop out. */
#ifndef FLAME_RECURRENCE_TASKS_H
#define FLAME_RECURRENCE_TASKS_H

#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* below this many multiply-adds per call the kernels stay on one thread */
#define RECURRENCE_PARALLEL_MIN_WORK 32768

/* head h of the tokens [t_begin, t_end) */
typedef struct recurrence_task {
    int t_begin, t_end, h;
} recurrence_task;

static inline recurrence_task recurrence_task_of(const int32_t *cu_seqlens, int H, int index)
{
    int s = index / H;
    recurrence_task tk = {cu_seqlens[s], cu_seqlens[s + 1], index % H};
    return tk;
}

/* the workers a CPU scan may run in parallel */
static inline int recurrence_max_workers(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* the chunk starts of n tokens that are no sequence's first, at most, for any
 * split into sequences: a scan keeps its state there (slot t0/chunk − 1) */
static inline size_t recurrence_checkpoint_slots(int n, int chunk)
{
    return n > 1 ? (size_t)(n - 1) / chunk : 0;
}

static inline int recurrence_worker_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* the threads to run the tasks on, of at most n_work: 1 when the work (state
 * multiply-adds per token and head: state_floats) is too small to share */
static inline int recurrence_threads(const int32_t *cu_seqlens, int n_seqs, int H,
                                     double state_floats, int n_work)
{
    double work = (double)cu_seqlens[n_seqs] * H * state_floats;
    int many = n_work > 1 && n_seqs * H > 1 && work >= RECURRENCE_PARALLEL_MIN_WORK;
    return many ? n_work : 1;
}

/* task(ctx, tk, w) for every (sequence, head) task of a call, on
 * recurrence_threads() threads; w is the running thread's own per_worker
 * floats of `work` */
typedef void (*recurrence_fn)(void *ctx, recurrence_task tk, float *w);
static inline void recurrence_run(const int32_t *cu_seqlens, int n_seqs, int H, double state_floats,
                                  int n_work, float *work, size_t per_worker, recurrence_fn task,
                                  void *ctx)
{
    int n_tasks = n_seqs * H;
    int threads = recurrence_threads(cu_seqlens, n_seqs, H, state_floats, n_work);
    (void)threads; /* only read by the pragma */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
    for (int i = 0; i < n_tasks; i++)
        task(ctx, recurrence_task_of(cu_seqlens, H, i), work + (size_t)recurrence_worker_id() * per_worker);
}

#endif
