/* SwiGLU: out = silu(gate) · up, silu(g) = g·σ(g).
 * d silu/dg = σ(g) · (1 + g·(1 − σ(g))).
 * Over rows of cols values: gate, up (and dgate, dup) are read `stride`
 * values apart from row to row, out and dout packed; the flat ops are one
 * row of n values. */
#include <math.h>

#include "cpu_kernels.h"

/* σ(g) without overflow: exp is only ever taken of a non-positive number. */
static float sigmoid(float g)
{
    if (g >= 0)
        return 1.0f / (1.0f + expf(-g));
    float e = expf(g);
    return e / (1.0f + e);
}

void swiglu_forward_cpu(float *out, const float *gate, const float *up, size_t rows, size_t cols,
                        size_t stride)
{
    CPU_PARALLEL_FOR_IF(rows * cols >= CPU_PARALLEL_MIN_WORK)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t i = r * stride + c;
            out[r * cols + c] = gate[i] * sigmoid(gate[i]) * up[i];
        }
}

/* out may be dout: each element's dout is read before out is written */
void swiglu_backward_cpu(float *dgate, float *dup, float *out, const float *dout, const float *gate,
                         const float *up, size_t rows, size_t cols, size_t stride)
{
    CPU_PARALLEL_FOR_IF(rows * cols >= CPU_PARALLEL_MIN_WORK)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t i = r * stride + c, o = r * cols + c;
            float g = gate[i], s = sigmoid(g), d = dout[o];
            if (dup)
                dup[i] = d * g * s;
            if (dgate)
                dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
            if (out)
                out[o] = g * s * up[i];
        }
}
