/* One step of GSA's first pass for generation (gsa.h's gsa_slot_step_cpu):
 * per sequence b, head h and slot m, with a = exp(f[m]),
 *     P[m,:] = a · P[m,:] + s[m] · k,     ok[m] = scale · P[m,:] · q
 * The states are fp32 [B, H, M, dk], slot-major, so a slot's row is dk
 * contiguous floats and its readout a sum along that row: one warp owns one
 * row, its lanes on neighbouring columns (coalesced, W values a lane at once
 * where the row allows 16-byte accesses), and ends with a shuffle sum. q, k, s,
 * f and ok are bf16 ([B, H·dk] and [B, H·M]); the arithmetic is fp32. A block
 * holds STEP_WARPS rows: at a 340M model's H = 4, M = 64 one sequence is 64
 * blocks. The step reads and writes each state value once, which bounds it. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gsa_cuda.h"

#define STEP_WARPS 4 /* slot rows of a block */
#define STEP_VEC 4   /* fp32 state values per 16-byte access */

static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

/* rows = B·H·M slot rows, one a warp; W columns a lane per access */
template <int W>
static __global__ void __launch_bounds__(32 * STEP_WARPS)
    slot_step_kernel(act_t *ok, float *__restrict__ states, const act_t *__restrict__ q,
                     const act_t *__restrict__ k, const act_t *__restrict__ s,
                     const act_t *__restrict__ f, int rows, int dk, int M, float scale)
{
    await_inputs();
    int row = blockIdx.x * STEP_WARPS + threadIdx.y, lane = threadIdx.x;
    if (row >= rows) /* the whole warp: no lane is left out of the shuffles */
        return;
    size_t head = (size_t)(row / M) * dk; /* (b, h)'s q and k */
    float a = expf(to_f32(f[row])), sm = to_f32(s[row]), acc = 0.0f;
    float *P = states + (size_t)row * dk;
    for (int i = lane * W; i < dk; i += 32 * W) {
        float p[W], qi[W], ki[W];
        load_floats<W>(p, P + i);
        load_floats<W>(qi, q + head + i);
        load_floats<W>(ki, k + head + i);
#pragma unroll
        for (int j = 0; j < W; j++) {
            p[j] = a * p[j] + sm * ki[j];
            acc += p[j] * qi[j];
        }
        store_floats<W>(P + i, p);
    }
    acc = warp_sum(acc);
    if (lane == 0)
        from_f32(&ok[row], scale * acc);
}

/* whether every row of the states and of q, k starts on a whole access of STEP_VEC */
static bool rows_vectorizable(int dk, const float *states, const void *q, const void *k)
{
    auto aligned = [](const void *p, uintptr_t bytes) {
        return reinterpret_cast<uintptr_t>(p) % bytes == 0;
    };
    return dk % STEP_VEC == 0 && aligned(states, STEP_VEC * sizeof(float)) &&
           aligned(q, STEP_VEC * sizeof(act_t)) && aligned(k, STEP_VEC * sizeof(act_t));
}

void gsa_slot_step_cuda(void *ok, float *states, const void *q, const void *k, const void *s,
                        const void *f, const gsa_slot_dims *d, int n_seqs)
{
    int rows = n_seqs * d->H * d->M; /* gsa_reserve keeps n·H·M within an int */
    if (rows <= 0)
        return;
    dim3 blocks((rows + STEP_WARPS - 1) / STEP_WARPS), threads(32, STEP_WARPS);
    auto kernel = rows_vectorizable(d->dk, states, q, k) ? slot_step_kernel<STEP_VEC>
                                                         : slot_step_kernel<1>;
    launch_kernel(kernel, blocks, threads, 0, (act_t *)ok, states, (const act_t *)q, (const act_t *)k, (const act_t *)s,
                  (const act_t *)f, rows, d->dk, d->M, d->scale);
}
