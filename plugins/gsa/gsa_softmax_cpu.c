/* The softmax over the slots on the CPU (gsa.h): fp32, max-subtracted. */
#include <math.h>

#include "gsa.h"

void gsa_softmax_forward_cpu(float *p, const float *x, int rows, int M)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * M;
        float *pr = p + (size_t)r * M;
        float max = xr[0], sum = 0.0f;
        for (int m = 1; m < M; m++)
            max = fmaxf(max, xr[m]);
        for (int m = 0; m < M; m++)
            sum += pr[m] = expf(xr[m] - max);
        for (int m = 0; m < M; m++)
            pr[m] /= sum;
    }
}

void gsa_softmax_backward_cpu(float *dx, const float *dp, const float *p, int rows, int M)
{
    for (int r = 0; r < rows; r++) {
        size_t at = (size_t)r * M;
        float dot = 0.0f;
        for (int m = 0; m < M; m++)
            dot += p[at + m] * dp[at + m];
        for (int m = 0; m < M; m++)
            dx[at + m] = p[at + m] * (dp[at + m] - dot);
    }
}
