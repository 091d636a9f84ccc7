/* A model's loss on held-out data, forward only: the rows of a dataset read
 * in the files' order from its start (the same rows every time), batch by
 * batch. What [validation] reports during training and flame-eval prints. */
#ifndef FLAME_EVALUATOR_H
#define FLAME_EVALUATOR_H

#include <stddef.h>
#include <stdint.h>

#include <flame/plugin.h>

#include "batch.h"
#include "tokenizer/tokenizer.h"

typedef struct eval_options {
    const char *dataset, *text_field;
    const char *tokenizer_path;
    int batch_size, seq_len;
    int steps; /* batches; -1: every whole batch of the dataset's first epoch */
} eval_options;

typedef struct eval_result {
    double loss;          /* mean over the targets, nats */
    double perplexity;    /* exp(loss) */
    double bits_per_byte; /* the targets' total loss in bits over their text's bytes */
    int batches;
    double tokens, bytes; /* targets, and the bytes their tokens decode to */
} eval_result;

/* The plugin's model, with its weights bound and its reserve covering
 * batch_size × seq_len, through a batch stage of that shape. Returns 0; -1
 * with err for a configuration error (the dataset or the tokenizer cannot be
 * opened, a dataset of fewer tokens than one batch); -2 with err for a data
 * error. */
int evaluate(const flame_plugin *plugin, void *model, const flame_ops *ops, int64_t vocab,
             batch_stage *stage, const eval_options *o, eval_result *out, char *err,
             size_t err_len);

#endif
