/* One position of generation on the CPU (transformer.h): the new token's key
 * and value into the caches, its query's softmax over the cached keys.
 * Scores in double, as attention_cpu.c sums them, so the logits agree with
 * the full forward's to fp32 rounding. */
#include <math.h>
#include <string.h>

#include "transformer.h"

/* query head h of sequence b over positions first..pos */
static void attend(float *o, const float *q, const float *k_cache, const float *v_cache,
                   size_t cache_stride, size_t head_off, int first, int pos, int hd, float scale,
                   double *score)
{
    double top = -INFINITY, sum = 0;
    for (int p = first; p <= pos; p++) {
        const float *k = k_cache + (size_t)p * cache_stride + head_off;
        double s = 0;
        for (int i = 0; i < hd; i++)
            s += (double)q[i] * k[i];
        score[p - first] = s * scale;
        top = score[p - first] > top ? score[p - first] : top;
    }
    for (int p = first; p <= pos; p++)
        sum += score[p - first] = exp(score[p - first] - top);
    for (int i = 0; i < hd; i++) {
        double acc = 0;
        for (int p = first; p <= pos; p++)
            acc += score[p - first] * v_cache[(size_t)p * cache_stride + head_off + i];
        o[i] = (float)(acc / sum);
    }
}

/* rows of `heads` heads of hd, `stride` apart, packed into dst */
static void pack_rows(float *dst, const float *x, int rows, int heads, int hd, size_t stride)
{
    size_t width = (size_t)heads * hd;
    for (int r = 0; r < rows; r++)
        memcpy(dst + r * width, x + r * stride, width * sizeof *x);
}

void attention_decode_cpu(float *o, float *q, float *k, const float *v, float *k_cache,
                          float *v_cache, size_t cache_stride, int B, int pos, const attention_dims *d,
                          int rd, float base)
{
    size_t q_stride = attention_q_stride(d), kv_stride = attention_kv_stride(d);
    if (rd) {
        rotary_at_cpu(q, B, d->H, d->hd, rd, pos, base, q_stride);
        rotary_at_cpu(k, B, d->Hkv, d->hd, rd, pos, base, kv_stride);
    }
    pack_rows(k_cache + (size_t)pos * cache_stride, k, B, d->Hkv, d->hd, kv_stride);
    pack_rows(v_cache + (size_t)pos * cache_stride, v, B, d->Hkv, d->hd, kv_stride);
    int first = d->window > 0 && pos - d->window + 1 > 0 ? pos - d->window + 1 : 0;
    double score[pos - first + 1]; /* 8 bytes a position: small beside the caches */
    int group = d->H / d->Hkv;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < d->H; h++) {
            size_t head_off = ((size_t)b * d->Hkv + h / group) * d->hd;
            attend(o + ((size_t)b * d->H + h) * d->hd, q + b * q_stride + (size_t)h * d->hd, k_cache, v_cache,
                   cache_stride, head_off, first, pos, d->hd, d->scale, score);
        }
}
