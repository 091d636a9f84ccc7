/* One step of the gated recurrence for generation (gla.h's
 * gla_recurrence_step_cpu): per sequence b and head h, with a = exp(gk),
 *     S = diag(a) S + kᵀ v,     o = (scale · q) S.
 * The states are fp32 [B, H, dk, dv], q, k, gk [B, H·dk] and v, o [B, H·dv]
 * bf16, q's, k's and v's rows qk_stride and v_stride apart (gla.h). A block owns STEP_COLS columns of one (b, h) state, a warp's lanes
 * neighbouring columns (coalesced), its STEP_WARPS warps every STEP_WARPS-th
 * row; each warp's share of o meets the others' in shared memory. At a
 * 340M model's dk = 128, dv = 256 that is 8 blocks per head, so even one
 * sequence's step spreads over the GPU; it reads and writes each state once,
 * which is what bounds it. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla_cuda.h"

#define STEP_COLS 32
#define STEP_WARPS 8

/* blockIdx.x: (b, h); blockIdx.y: the column tile; dynamic shared memory:
 * scale·q, k and a of the head (3·dk floats) */
static __global__ void recurrence_step_kernel(act_t *o, float *states, const act_t *q,
                                              const act_t *k, const act_t *v, const act_t *gk,
                                              int H, int dk, int dv, size_t qk_stride, size_t v_stride,
                                              float scale)
{
    await_inputs();
    extern __shared__ float head[];
    float *qs = head, *ks = head + dk, *as = head + 2 * dk;
    __shared__ float partial[STEP_WARPS][STEP_COLS];
    size_t bh = blockIdx.x, b = bh / H, h = bh % H;
    int lane = threadIdx.x, warp = threadIdx.y, tid = warp * STEP_COLS + lane;
    for (int i = tid; i < dk; i += STEP_COLS * STEP_WARPS) {
        size_t at = b * qk_stride + h * dk + i;
        qs[i] = scale * to_f32(q[at]);
        ks[i] = to_f32(k[at]);
        as[i] = expf(to_f32(gk[bh * dk + i]));
    }
    __syncthreads();
    int j = blockIdx.y * STEP_COLS + lane;
    float acc = 0.0f;
    if (j < dv) {
        float vj = to_f32(v[b * v_stride + h * dv + j]);
        float *S = states + bh * dk * dv + j;
        for (int i = warp; i < dk; i += STEP_WARPS) {
            float s = as[i] * S[(size_t)i * dv] + ks[i] * vj;
            S[(size_t)i * dv] = s;
            acc += qs[i] * s;
        }
    }
    partial[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && j < dv) {
        for (int w = 1; w < STEP_WARPS; w++)
            acc += partial[w][lane];
        from_f32(&o[bh * dv + j], acc);
    }
}

void gla_recurrence_step_cuda(void *o, float *states, const void *q, const void *k, const void *v,
                              const void *gk, int B, int H, int dk, int dv, float scale, int stride)
{
    if (B <= 0)
        return;
    gla_recurrence_dims d = {};
    d.H = H, d.dk = dk, d.dv = dv, d.stride = stride;
    dim3 blocks((unsigned)B * H, (dv + STEP_COLS - 1) / STEP_COLS), threads(STEP_COLS, STEP_WARPS);
    launch_kernel(recurrence_step_kernel, blocks, threads, 3 * dk * sizeof(float), (act_t *)o, states, (const act_t *)q,
                  (const act_t *)k, (const act_t *)v, (const act_t *)gk, H, dk, dv, gla_qk_stride(&d), gla_v_stride(&d),
                  scale);
}
