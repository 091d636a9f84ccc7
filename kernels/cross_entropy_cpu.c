/* Softmax cross-entropy over rows of V logits, with its gradient.
 *   loss_i = logsumexp(logits_i) − logits_i[t_i]
 *   dlogits_i = scale · (softmax(logits_i) − onehot(t_i))
 * The log-sum-exp subtracts the row maximum first, so no exp overflows.
 * Rows with t_i < 0 are ignored: loss 0, gradient 0. dlogits may alias logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"

#define ROWS_PER_CHUNK 16

/* Loss of one row (in double), writing its gradient row when asked for. */
static double row_loss(float *dlogits, const float *logits, int32_t target, int V, float scale)
{
    if (target < 0) {
        if (dlogits)
            memset(dlogits, 0, (size_t)V * sizeof(float));
        return 0.0;
    }
    float max = logits[0];
    for (int j = 1; j < V; j++)
        if (logits[j] > max)
            max = logits[j];
    double sum = 0;
    for (int j = 0; j < V; j++)
        sum += exp((double)logits[j] - max);
    double lse = max + log(sum);
    double loss = lse - logits[target]; /* read before dlogits, which may be logits itself */
    if (dlogits) {
        for (int j = 0; j < V; j++)
            dlogits[j] = (float)(scale * exp((double)logits[j] - lse));
        dlogits[target] -= scale;
    }
    return loss;
}

/* The losses of rows [i0, i1), added in row order. */
static double chunk_loss(float *losses, float *dlogits, const float *logits,
                         const int32_t *targets, int i0, int i1, int V, float scale)
{
    double total = 0;
    for (int i = i0; i < i1; i++) {
        double l = row_loss(dlogits ? dlogits + (size_t)i * V : NULL,
                            logits + (size_t)i * V, targets[i], V, scale);
        if (losses)
            losses[i] = (float)l;
        total += l;
    }
    return total;
}

static int chunk_end(int c, int n)
{
    int end = (c + 1) * ROWS_PER_CHUNK;
    return end < n ? end : n;
}

/* Rows are processed in fixed chunks whose sums are added in chunk order, so
 * the returned total does not depend on the number of threads. */
double cross_entropy_cpu(float *losses, float *dlogits, const float *logits,
                         const int32_t *targets, int n, int V, float dloss_scale)
{
    int chunks = (n + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
    double total = 0;
    double *partial = chunks > 1 ? malloc((size_t)chunks * sizeof *partial) : NULL;
    if (!partial) { /* one chunk, or no memory: the same sums, on one thread */
        for (int c = 0; c < chunks; c++)
            total += chunk_loss(losses, dlogits, logits, targets, c * ROWS_PER_CHUNK,
                                chunk_end(c, n), V, dloss_scale);
        return total;
    }
    CPU_PARALLEL_FOR_IF((double)n * V >= CPU_PARALLEL_MIN_WORK)
    for (int c = 0; c < chunks; c++)
        partial[c] = chunk_loss(losses, dlogits, logits, targets, c * ROWS_PER_CHUNK,
                                chunk_end(c, n), V, dloss_scale);
    for (int c = 0; c < chunks; c++)
        total += partial[c];
    free(partial);
    return total;
}
