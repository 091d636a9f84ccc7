/* One position of generation on the GPU (transformer.h's attention_decode_cpu):
 * q and k rotated to position pos, the new key and value written into the
 * caches, then each query head's softmax over its cached positions.
 * A block owns one (sequence, query head); its DECODE_WARPS warps take every
 * DECODE_WARPS-th cached position, a warp's lanes split the head's values
 * (value i on lane i % 32), so a key's or value's load is one coalesced row
 * and q·k one warp sum. Each warp keeps a running maximum, sum and weighted
 * values (the online softmax); the warps' partial results then meet in
 * shared memory. Scores and sums are fp32 (the CPU's are double; the output
 * passes through bf16 anyway). */
#include <math.h>

#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "transformer_cuda.h"

#define DECODE_WARPS 8
#define LANE_VALUES 4 /* hd ≤ 128 = 32 lanes · 4 */

struct decode_args {
    act_t *o;
    const act_t *q, *k_cache, *v_cache;
    size_t q_stride, cache_stride; /* between sequences' rows of q; between positions of the caches */
    int H, Hkv, hd, first, pos;
    float scale;
};

static __device__ float warp_sum(float x)
{
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

/* a warp's share of the positions: running maximum m, sum l of exp(s − m),
 * and acc = Σ exp(s − m) v over its positions */
struct softmax_part {
    float m = -INFINITY, l = 0.0f, acc[LANE_VALUES] = {};
};

static __global__ void attention_decode_kernel(decode_args a)
{
    await_inputs();
    __shared__ float parts_m[DECODE_WARPS], parts_l[DECODE_WARPS];
    __shared__ float parts_acc[DECODE_WARPS][32 * LANE_VALUES];
    int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    size_t head_off = ((size_t)b * a.Hkv + h / (a.H / a.Hkv)) * a.hd;
    float q[LANE_VALUES];
#pragma unroll
    for (int e = 0; e < LANE_VALUES; e++) {
        int i = lane + 32 * e;
        q[e] = i < a.hd ? a.scale * to_f32(a.q[b * a.q_stride + (size_t)h * a.hd + i]) : 0.0f;
    }
    softmax_part part;
    for (int p = a.first + warp; p <= a.pos; p += DECODE_WARPS) {
        const act_t *k = a.k_cache + (size_t)p * a.cache_stride + head_off;
        const act_t *v = a.v_cache + (size_t)p * a.cache_stride + head_off;
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < LANE_VALUES; e++) {
            int i = lane + 32 * e;
            if (i < a.hd)
                dot += q[e] * to_f32(k[i]);
        }
        float s = warp_sum(dot), m = fmaxf(part.m, s);
        float shrink = expf(part.m - m), w = expf(s - m);
        part.l = part.l * shrink + w;
#pragma unroll
        for (int e = 0; e < LANE_VALUES; e++) {
            int i = lane + 32 * e;
            part.acc[e] = part.acc[e] * shrink + (i < a.hd ? w * to_f32(v[i]) : 0.0f);
        }
        part.m = m;
    }
    if (lane == 0)
        parts_m[warp] = part.m, parts_l[warp] = part.l;
#pragma unroll
    for (int e = 0; e < LANE_VALUES; e++)
        parts_acc[warp][lane + 32 * e] = part.acc[e];
    __syncthreads();
    /* the warps' parts, rescaled to the largest maximum (a warp without
     * positions has m = −∞ and weighs 0; position pos is always someone's) */
    float top = -INFINITY;
    for (int w = 0; w < DECODE_WARPS; w++)
        top = fmaxf(top, parts_m[w]);
    for (int i = threadIdx.x; i < a.hd; i += blockDim.x) {
        float num = 0.0f, den = 0.0f;
        for (int w = 0; w < DECODE_WARPS; w++) {
            float f = expf(parts_m[w] - top);
            num += f * parts_acc[w][i];
            den += f * parts_l[w];
        }
        from_f32(&a.o[(size_t)bh * a.hd + i], num / den);
    }
}

void attention_decode_cuda(void *o, void *q, void *k, const void *v, void *k_cache, void *v_cache,
                           size_t cache_stride, int B, int pos, const attention_dims *d, int rd, float base)
{
    if (B <= 0)
        return;
    if (d->hd > 32 * LANE_VALUES) {
        fprintf(stderr, "attention_decode_cuda: head dim %d above %d\n", d->hd, 32 * LANE_VALUES);
        exit(1);
    }
    size_t q_stride = attention_q_stride(d), kv_stride = attention_kv_stride(d);
    if (rd) {
        rotary_at_cuda(q, B, d->H, d->hd, rd, pos, base, q_stride);
        rotary_at_cuda(k, B, d->Hkv, d->hd, rd, pos, base, kv_stride);
    }
    /* the new rows, packed into the caches' blocks of this position */
    size_t row_bytes = (size_t)d->Hkv * d->hd * sizeof(act_t), from = kv_stride * sizeof(act_t);
    act_t *k_at = (act_t *)k_cache + (size_t)pos * cache_stride;
    act_t *v_at = (act_t *)v_cache + (size_t)pos * cache_stride;
    CUDA_CHECK(cudaMemcpy2DAsync(k_at, row_bytes, k, from, row_bytes, (size_t)B, cudaMemcpyDeviceToDevice, 0));
    CUDA_CHECK(cudaMemcpy2DAsync(v_at, row_bytes, v, from, row_bytes, (size_t)B, cudaMemcpyDeviceToDevice, 0));
    int first = d->window > 0 && pos - d->window + 1 > 0 ? pos - d->window + 1 : 0;
    decode_args a = {(act_t *)o, (const act_t *)q, (const act_t *)k_cache, (const act_t *)v_cache,
                     q_stride, cache_stride, d->H, d->Hkv, d->hd, first, pos, d->scale};
    launch_kernel(attention_decode_kernel, (unsigned)B * d->H, 32 * DECODE_WARPS, 0, a);
}
