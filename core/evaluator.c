#include "evaluator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/data_loader.h"

/* the bytes the targets decode to: special tokens (BOS, EOS) have none */
static int count_bytes(const tokenizer *tok, const int32_t *targets, size_t n, double *bytes)
{
    tokenizer_text text = {0};
    int rc = tokenizer_decode(tok, targets, n, 1, &text);
    *bytes += (double)text.n;
    free(text.data);
    return rc;
}

static int open_rows(data_loader **dl, tokenizer *tok, const eval_options *o, char *err,
                     size_t err_len)
{
    data_loader_options d = {.dataset = o->dataset,
                             .text_field = o->text_field,
                             .tokenizer_path = o->tokenizer_path,
                             .batch_size = o->batch_size,
                             .seq_len = o->seq_len,
                             .rank = 0,
                             .world_size = 1,
                             .prefetch = 1,
                             .num_workers = 1};
    int rc = data_loader_open(dl, &d, NULL, err, err_len);
    if (rc == 0 && tokenizer_open(tok, o->tokenizer_path, err, err_len))
        rc = -1;
    return rc;
}

/* one batch's loss, times its targets, into out */
static int add_batch(const flame_plugin *plugin, void *model, const flame_ops *ops, int64_t vocab,
                     batch_stage *stage, const tokenizer *tok, const data_batch *b,
                     eval_result *out, char *err, size_t err_len)
{
    flame_batch batch;
    if (batch_stage_load(stage, ops, b->inputs, b->targets, NULL, 0, vocab, &batch, err,
                         err_len))
        return -2;
    double loss = plugin->forward(model, &batch, NULL);
    if (count_bytes(tok, b->targets, (size_t)batch.B * batch.T, &out->bytes)) {
        snprintf(err, err_len, "out of memory decoding the targets");
        return -1;
    }
    out->loss += loss * batch.counted;
    out->tokens += batch.counted;
    out->batches++;
    return 0;
}

int evaluate(const flame_plugin *plugin, void *model, const flame_ops *ops, int64_t vocab,
             batch_stage *stage, const eval_options *o, eval_result *out, char *err,
             size_t err_len)
{
    *out = (eval_result){0};
    data_loader *dl = NULL;
    tokenizer tok = {0};
    int rc = open_rows(&dl, &tok, o, err, err_len);
    while (rc == 0 && (o->steps < 0 || out->batches < o->steps)) {
        const data_batch *b;
        uint64_t epochs[DOC_MIX_MAX_SOURCES];
        if (data_loader_next(dl, &b, err, err_len)) {
            rc = -2;
            break;
        }
        data_loader_epochs(dl, epochs);
        if (o->steps < 0 && epochs[0] > 0)
            break; /* the batch reaches into the second epoch */
        rc = add_batch(plugin, model, ops, vocab, stage, &tok, b, out, err, err_len);
    }
    data_loader_close(dl);
    tokenizer_close(&tok);
    if (rc == 0 && out->batches == 0) {
        snprintf(err, err_len, "dataset %s holds fewer tokens than one batch of %d x %d",
                 o->dataset, o->batch_size, o->seq_len + 1);
        rc = -1;
    }
    if (rc)
        return rc;
    out->loss /= out->tokens;
    out->perplexity = exp(out->loss);
    out->bits_per_byte = out->bytes > 0 ? out->loss * out->tokens / (out->bytes * log(2)) : NAN;
    return 0;
}
