/* The core's settings for one run, read from the resolved configuration and
 * checked for meaning (ranges, choices, files) before anything is written. */
#ifndef FLAME_TRAIN_OPTIONS_H
#define FLAME_TRAIN_OPTIONS_H

#include <stddef.h>

#include "config.h"
#include "scheduler.h"

typedef struct train_options {
    const char *dump_folder;
    const char *dataset;
    const char *tokenizer;
    int batch_size, seq_len, steps;
    double lr, beta1, beta2, eps, weight_decay, max_norm;
    lr_schedule schedule;
    unsigned long long seed;
    int log_freq;
} train_options;

/* Returns 0, or -1 with one line in err naming the key (exit status 2). */
int train_options_read(train_options *opt, const flame_config *cfg, char *err, size_t err_len);

#endif
