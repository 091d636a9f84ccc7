/* GSA's pointwise kernels on the GPU: the math of gsa_pointwise_cpu.c,
 *     swish:      y = x·σ(x),                    dx = dy·σ(x)·(1 + x·(1 − σ(x)))
 *     slot gates: f = logsigmoid(x)/N, s = 1 − e^f,
 *                 dx = (df_slots + df_values − e^f·(ds_slots + ds_values))·σ(−x)/N
 * with σ(−x) = −expm1(N·f) from the output alone. bf16 in memory (the CUDA
 * op table's activations), fp32 arithmetic, ACT_VEC values per thread where
 * vectorizable. Each thread reads all its inputs before it writes, so an
 * output may alias any input (the contracts of gsa.h ask for less). */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_math.cuh"
#include "gsa_cuda.h"

template <int W> static __global__ void swish_forward(act_t *y, const act_t *x, size_t n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W];
        load_floats<W>(v, x + i * W);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] *= sigmoid_fast(v[k]);
        store_floats<W>(y + i * W, v);
    }
}

template <int W>
static __global__ void swish_backward(act_t *dx, const act_t *dy, const act_t *x, size_t n)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float d[W], v[W];
        load_floats<W>(d, dy + i * W);
        load_floats<W>(v, x + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float sg = sigmoid_fast(v[k]);
            d[k] *= sg * (1.0f + v[k] * (1.0f - sg));
        }
        store_floats<W>(dx + i * W, d);
    }
}

/* s from the fp32 f, as the CPU computes it, not from f rounded to bf16 */
template <int W>
static __global__ void slot_gates_forward(act_t *f, act_t *s, const act_t *x, size_t n,
                                          float normalizer)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float v[W], sv[W];
        load_floats<W>(v, x + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) {
            /* logsigmoid(x) = min(x, 0) − log1p(e^−|x|), neither sign overflowing */
            v[k] = (fminf(v[k], 0.0f) - log1pf(expf(-fabsf(v[k])))) / normalizer;
            sv[k] = -expm1f(v[k]);
        }
        store_floats<W>(f + i * W, v);
        store_floats<W>(s + i * W, sv);
    }
}

template <int W>
static __global__ void slot_gates_backward(act_t *dx, const act_t *df_slots,
                                           const act_t *df_values, const act_t *ds_slots,
                                           const act_t *ds_values, const act_t *f, size_t n,
                                           float normalizer)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, n / W) {
        float a[W], b[W], c[W], d[W], fv[W];
        load_floats<W>(a, df_slots + i * W);
        load_floats<W>(b, df_values + i * W);
        load_floats<W>(c, ds_slots + i * W);
        load_floats<W>(d, ds_values + i * W);
        load_floats<W>(fv, f + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float df = a[k] + b[k] - expf(fv[k]) * (c[k] + d[k]);
            a[k] = df * -expm1f(normalizer * fv[k]) / normalizer;
        }
        store_floats<W>(dx + i * W, a);
    }
}

/* the entry points' void pointers: activations of the CUDA op table */
static const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static act_t *act(void *p) { return static_cast<act_t *>(p); }

void gsa_swish_forward_cuda(void *y, const void *x, size_t n)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(swish_forward, vectorizable(n, y, x), n, act(y), act(x), n);
}

void gsa_swish_backward_cuda(void *dx, const void *dy, const void *x, size_t n)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(swish_backward, vectorizable(n, dx, dy, x), n, act(dx), act(dy), act(x), n);
}

void gsa_slot_gates_forward_cuda(void *f, void *s, const void *x, size_t n, float normalizer)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(slot_gates_forward, vectorizable(n, f, s, x), n, act(f), act(s), act(x), n,
                      normalizer);
}

void gsa_slot_gates_backward_cuda(void *dx, const void *df_slots, const void *df_values,
                                  const void *ds_slots, const void *ds_values, const void *f,
                                  size_t n, float normalizer)
{
    if (n == 0)
        return;
    LAUNCH_VECTORIZED(slot_gates_backward,
                      vectorizable(n, dx, df_slots, df_values, ds_slots, ds_values, f), n, act(dx),
                      act(df_slots), act(df_values), act(ds_slots), act(ds_values), act(f), n,
                      normalizer);
}
