/* What a run reports: one JSON object per logged step in metrics.jsonl (and
 * the same values as TensorBoard scalars when asked), and a
 * progress line on stdout (rewritten in place on a terminal; otherwise, as in
 * a batch job's log, one line every log_freq steps). */
#ifndef FLAME_METRICS_H
#define FLAME_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "tensorboard.h"

typedef struct step_metrics {
    int step;
    double tokens; /* trained on, this step's included */
    double loss, lr, grad_norm, tokens_per_s;
    double mfu;     /* negative: unknown (no peak figure for this device) */
    double mem_gib; /* peak memory of the process */
    int skipped;    /* steps skipped so far for non-finite gradients */
    double val_loss;             /* NAN: no validation at this step */
    const uint64_t *data_epochs; /* epochs each data source has completed */
    int n_data_sources;          /* 0: no data (flame-bench's random tokens) */
} step_metrics;

typedef struct metrics_log {
    FILE *jsonl;
    tensorboard_writer tb;    /* closed: no TensorBoard files */
    char path[4200];
    int total_steps;
    int first_step;  /* of this process: 1, or the step after the one resumed from */
    int log_every;   /* steps between rows, and between lines when stdout is not a terminal */
    int tty;
    int stdout_lost; /* a progress line could not be written: none is printed again */
} metrics_log;

/* Creates metrics.jsonl, or, resuming after resume_step > 0, keeps its rows up
 * to that step and appends. Returns 0, or -1 with err when the file cannot be written. */
int metrics_open(metrics_log *log, const char *path, int total_steps, int log_every,
                 int resume_step, char *err, size_t err_len);

/* Whether the step is one to log: every log_every-th, the last, and one
 * that validated. */
int metrics_due(const metrics_log *log, const step_metrics *m);
void metrics_close(metrics_log *log);
/* Every row from now on also as TensorBoard scalars, in a new events file in
 * dir. Returns 0, or -1 with err. */
int metrics_open_tensorboard(metrics_log *log, const char *dir, char *err, size_t err_len);

/* Returns 0, or -1 with err when the row cannot be written (a full disk). */
int metrics_write(metrics_log *log, const step_metrics *m, char *err, size_t err_len);
/* elapsed: seconds since the first step started, for the ETA. Returns 0, or -1
 * with errno the first time stdout cannot be written (a closed pipe): progress
 * then stops, and the run need not. */
int metrics_progress(metrics_log *log, const step_metrics *m, double elapsed);

#endif
