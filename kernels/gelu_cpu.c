/* GELU in the tanh form GPT-2 and flash-attention's GPT use:
 *   gelu(x) = ½·x·(1 + tanh u),  u = √(2/π)·(x + 0.044715·x³)
 *   gelu'(x) = ½·(1 + tanh u) + ½·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²) */
#include <math.h>

#include "cpu_kernels.h"

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

void gelu_forward_cpu(float *out, const float *x, size_t n)
{
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)));
    }
}

/* dx may be dout: each element's dout is read before dx is written */
void gelu_backward_cpu(float *dx, const float *dout, const float *x, size_t n)
{
    CPU_PARALLEL_FOR_IF(n >= CPU_PARALLEL_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float v = x[i], t = tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
        float slope = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI *
                                              (1.0f + 3.0f * GELU_CUBIC * v * v);
        dx[i] = dout[i] * slope;
    }
}
