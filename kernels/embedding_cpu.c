/* Token embedding: a row lookup, and its backward, a scatter-add. */
#include <string.h>

#include "cpu_kernels.h"

void embedding_forward_cpu(float *out, const int32_t *tokens, const float *table,
                           int n, int C)
{
    CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK)
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * C, table + (size_t)tokens[i] * C, (size_t)C * sizeof(float));
}

/* A token repeated in the batch adds all its gradients into one row, so the
 * rows are not independent; threads split the columns instead and each walks
 * the tokens in order, which also keeps the sums deterministic. */
void embedding_backward_cpu(float *dtable, const float *dout, const int32_t *tokens,
                            int n, int C)
{
    enum { COLS = 64 };
    int chunks = (C + COLS - 1) / COLS;
    CPU_PARALLEL_FOR_IF((double)n * C >= CPU_PARALLEL_MIN_WORK && chunks > 1)
    for (int c = 0; c < chunks; c++) {
        int j0 = c * COLS, j1 = j0 + COLS < C ? j0 + COLS : C;
        for (int i = 0; i < n; i++) {
            float *row = dtable + (size_t)tokens[i] * C;
            const float *g = dout + (size_t)i * C;
            for (int j = j0; j < j1; j++)
                row[j] += g[j];
        }
    }
}
