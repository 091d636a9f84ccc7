/* The LM head's training forward (op table 5.14, lm_head_loss) on the CPU:
 * the logits by matmul_forward, then cross_entropy's gradient written over
 * them, so expd is the logits' gradient itself and row_scale is 1. (CUDA on
 * Hopper writes exponentials and a row scale instead: lm_head_loss_cuda.cu.) */
#include "cpu_kernels.h"

double lm_head_loss_cpu(float *expd, float *row_scale, const float *x, const float *head, const int32_t *targets,
                        int n, int D, int V, float dloss_scale)
{
    matmul_forward_cpu(expd, x, head, NULL, NULL, n, D, V);
    for (int i = 0; i < n; i++)
        row_scale[i] = 1.0f;
    return cross_entropy_cpu(NULL, expd, expd, targets, n, V, dloss_scale);
}

void scale_rows_cpu(float *out, const float *x, const float *scale, int n, int C)
{
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t c = 0; c < (size_t)C; c++)
            out[i * C + c] = scale[i] * x[i * C + c];
}
