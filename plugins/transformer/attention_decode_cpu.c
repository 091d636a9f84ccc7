/* One position of generation on the CPU (transformer.h): the new token's key
 * and value into the caches, its query's softmax over the cached keys.
 * Scores in double, as attention_cpu.c sums them, so the logits agree with
 * the full forward's to fp32 rounding. */
#include <math.h>
#include <string.h>

#include "transformer.h"

/* query head h of sequence b over positions first..pos */
static void attend(float *o, const float *q, const float *k_cache, const float *v_cache,
                   size_t stride, size_t head_off, int first, int pos, int hd, float scale,
                   double *score)
{
    double top = -INFINITY, sum = 0;
    for (int p = first; p <= pos; p++) {
        const float *k = k_cache + (size_t)p * stride + head_off;
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
            acc += score[p - first] * v_cache[(size_t)p * stride + head_off + i];
        o[i] = (float)(acc / sum);
    }
}

void attention_decode_cpu(float *o, float *q, float *k, const float *v, float *k_cache,
                          float *v_cache, size_t stride, int B, int pos, const attention_dims *d,
                          int rd, float base)
{
    size_t kv = (size_t)B * d->Hkv * d->hd;
    if (rd) {
        rotary_at_cpu(q, B, d->H, d->hd, rd, pos, base);
        rotary_at_cpu(k, B, d->Hkv, d->hd, rd, pos, base);
    }
    memcpy(k_cache + (size_t)pos * stride, k, kv * sizeof *k);
    memcpy(v_cache + (size_t)pos * stride, v, kv * sizeof *v);
    int first = d->window > 0 && pos - d->window + 1 > 0 ? pos - d->window + 1 : 0;
    double score[pos - first + 1]; /* 8 bytes a position: small beside the caches */
    int group = d->H / d->Hkv;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < d->H; h++) {
            size_t qh = ((size_t)b * d->H + h) * d->hd;
            size_t head_off = ((size_t)b * d->Hkv + h / group) * d->hd;
            attend(o + qh, q + qh, k_cache, v_cache, stride, head_off, first, pos, d->hd,
                   d->scale, score);
        }
}
