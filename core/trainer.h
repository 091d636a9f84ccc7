/* The training loop: data → plugin forward/backward → clip → AdamW → metrics. */
#ifndef FLAME_TRAINER_H
#define FLAME_TRAINER_H

#include <flame/plugin.h>

#include "config/config.h"

/* Runs the job the configuration describes. Returns an exit status
 * (core/errors.h) after printing any error as one line on stderr. */
int trainer_run(const flame_plugin *plugin, const flame_config *cfg);

/* flame-bench: full training steps (forward, backward, AdamW) on random tokens,
 * nothing read or written; prints tokens/s, ms/step, MFU, peak memory and the
 * time from process start (a CLOCK_MONOTONIC reading) to the end of the first step. */
typedef struct bench_options {
    int warmup_steps, timed_steps;
    double process_start;
} bench_options;
int trainer_benchmark(const flame_plugin *plugin, const flame_config *cfg, const bench_options *b);

#endif
