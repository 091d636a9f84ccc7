/* A metrics.jsonl row read back (core/metrics.h writes them): what flame-plot
 * draws. */
#ifndef FLAME_METRICS_ROW_H
#define FLAME_METRICS_ROW_H

#include <stddef.h>

typedef struct metrics_row {
    double step, tokens, loss, lr, grad_norm, val_loss; /* NAN where absent or null */
} metrics_row;

/* One line of len bytes. Returns 0, or -1 with err: not a JSON object, or no
 * number under "step". */
int metrics_row_parse(const char *line, size_t len, metrics_row *row, char *err, size_t err_len);

#endif
