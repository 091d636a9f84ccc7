/* The training loop, one step at a time: data → plugin forward/backward →
 * clip → AdamW → metrics. flame-run and flame-bench are thin programs over it. */
#ifndef FLAME_TRAINER_H
#define FLAME_TRAINER_H

#include <stddef.h>

#include <flame/plugin.h>

#include "config/config.h"
#include "evaluator.h"
#include "tokenizer/tokenizer.h"
#include "metrics.h"
#include "train_options.h"

typedef enum trainer_mode {
    /* flame-run: the dataset, resuming, the output folder, metrics.jsonl and
     * checkpoints; SIGINT/SIGTERM end the step with a checkpoint */
    TRAINER_RUN,
    /* flame-bench: random tokens, nothing read or written */
    TRAINER_BENCH,
    /* flame-eval: the weights of checkpoint.load_step, then trainer_validate */
    TRAINER_EVAL,
    /* flame-generate: the same weights, then trainer_get_model */
    TRAINER_GENERATE
} trainer_mode;

typedef struct trainer trainer;

/* Builds the job cfg describes: options, backend, model and parameters.
 * TRAINER_RUN also resumes from a checkpoint, opens the data, measures the
 * peak and, every check passed, writes the resolved config and opens the
 * metrics; then it writes the seed checkpoint that checkpoint.create_seed
 * asks for, or says what it will train. Returns NULL with *status (an exit
 * status, core/errors.h) after printing one line on stderr. */
trainer *trainer_open(const flame_plugin *plugin, const flame_config *cfg, trainer_mode mode,
                      int *status);
/* One optimizer step over gradient_accumulation_steps micro-batches, filling
 * m. TRAINER_RUN also logs the step, saves the checkpoints due and stops after
 * SIGINT/SIGTERM (a checkpoint saved). Returns FLAME_EXIT_OK, or an exit
 * status after printing one line on stderr. */
int trainer_step(trainer *t, step_metrics *m);
/* TRAINER_RUN: no step is left to train (training.steps reached, or the job
 * was to write a seed checkpoint). */
int trainer_finished(const trainer *t);
void trainer_close(trainer *t);

/* The built model and its tokenizer, for generation (flame-generate). */
typedef struct trainer_model {
    const flame_plugin *plugin;
    void *model;
    const flame_ops *ops;
    const tokenizer *tok;
} trainer_model;
trainer_model trainer_get_model(const trainer *t);

/* The model's loss on [validation] dataset (core/evaluator.h). Returns
 * FLAME_EXIT_OK, or an exit status after printing one line on stderr. */
int trainer_validate(trainer *t, eval_result *out);

/* what flame-bench reports */
const train_options *trainer_options(const trainer *t);
size_t trainer_param_count(const trainer *t);
/* tokens one optimizer step trains on, over every rank */
double trainer_tokens_per_step(const trainer *t);
/* this process's rank and the run's ranks (0 of 1 without a launcher) */
int trainer_rank(const trainer *t);
int trainer_world(const trainer *t);
/* the plugin's training FLOPs per token at training.seq_len */
double trainer_flops_per_token(const trainer *t);
/* waits for the work queued on the device (a timing point) */
void trainer_synchronize(const trainer *t);
/* Times the bf16 matrix-multiply peak: about a second on a GPU, nothing on
 * the CPU. TRAINER_RUN's open did it already. */
void trainer_measure_peak(trainer *t);
/* TFLOP/s; 0 unknown (not measured, or the CPU) */
double trainer_peak_tflops(const trainer *t);
/* achieved FLOP/s per rank at tokens_per_s (every rank's) over the peak; -1 unknown */
double trainer_mfu(const trainer *t, double tokens_per_s);
const char *trainer_device(const trainer *t);
/* the peak memory seen after each step, GiB; *what says what was measured */
double trainer_peak_memory_gib(const trainer *t, const char **what);

#endif
