/* The core's settings for one run, read from the resolved configuration and
 * checked for meaning (ranges, choices, files) before anything is written. */
#ifndef FLAME_TRAIN_OPTIONS_H
#define FLAME_TRAIN_OPTIONS_H

#include <stddef.h>

#include "config/config.h"
#include "data/doc_mix.h"
#include "scheduler.h"

typedef struct checkpoint_options {
    int enabled;
    char folder[4200]; /* job.dump_folder/checkpoint.folder */
    int interval, keep_latest_k;
    int load_step;   /* -1 newest (if any), N step-N */
    int create_seed; /* write step-0 and stop */
    int export_hf;   /* the last step's checkpoint also as DUMP/hf */
    const char *export_dtype; /* float32 or bfloat16 */
} checkpoint_options;

typedef struct validation_options {
    int enabled;
    const char *dataset;
    int freq, steps;           /* steps -1: every whole batch of the data */
    int batch_size, seq_len;
} validation_options;

/* a run of several ranks: how they split the work, how long they wait */
typedef struct parallel_options {
    int replicate, shard; /* data-parallel degrees; shard -1: the ranks the replicas leave */
    double init_timeout_s, timeout_s;
    double bucket_mb; /* gradients sent during the backward (grad_buckets.h) */
} parallel_options;

typedef struct train_options {
    const char *dump_folder;
    const char *dataset, *text_field;
    double data_probs[DOC_MIX_MAX_SOURCES]; /* n_data_probs > 0: mix the dataset's items */
    int n_data_probs;
    const char *tokenizer;
    const char *device; /* auto, cuda or cpu */
    int batch_size, seq_len, context_len, varlen;
    int num_workers, prefetch_factor;
    int shuffle, shuffle_buffer; /* data order: shuffled files and blocks of documents */
    int steps, accumulation; /* optimizer steps; micro-batches per step */
    double lr, beta1, beta2, eps, weight_decay, max_norm;
    int weight_decay_all; /* also norms, biases, embeddings */
    int skip_nan_inf;
    lr_schedule schedule;
    unsigned long long seed;
    int log_freq;
    char tensorboard[4200]; /* the event files' folder; empty: none */
    checkpoint_options checkpoint;
    validation_options validation;
    parallel_options parallel;
} train_options;

/* Returns 0, or -1 with one line in err naming the key (exit status 2). */
/* need_data: training.dataset must be set (flame-bench uses random tokens). */
int train_options_read(train_options *opt, const flame_config *cfg, int need_data, char *err,
                       size_t err_len);

#endif
