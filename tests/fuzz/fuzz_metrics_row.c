/* metrics_row_parse (flame-plot's reading of metrics.jsonl) on arbitrary
 * bytes: a row it accepts has a number for its step. */
#include <math.h>
#include <stdlib.h>

#include "metrics_row.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    metrics_row row;
    char err[256];
    if (metrics_row_parse((const char *)data, size, &row, err, sizeof err) == 0 && isnan(row.step))
        abort();
    return 0;
}
