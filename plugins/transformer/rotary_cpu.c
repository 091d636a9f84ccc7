/* Rotary position embeddings on the CPU (transformer.h). The rotation of each
 * pair (x[i], x[i + rd/2]) is orthogonal, so the backward rotates by −θ.
 * Angles are computed in double: positions reach thousands and an fp32
 * product p·base^(−2i/hd) would lose the low bits of the angle. */
#include <math.h>
#include <stddef.h>

#include "transformer.h"

/* rotates the first rd of one head's hd values by sign·pos·freq[i], the rest
 * copied; out may alias x */
static void rotate_head(float *out, const float *x, int pos, int hd, int rd, const double *freq, double sign)
{
    int half = rd / 2;
    if (out != x)
        for (int i = rd; i < hd; i++)
            out[i] = x[i];
    for (int i = 0; i < half; i++) {
        double angle = sign * pos * freq[i];
        double c = cos(angle), s = sin(angle), x1 = x[i], x2 = x[i + half];
        float y1 = (float)(x1 * c - x2 * s), y2 = (float)(x2 * c + x1 * s);
        out[i] = y1;
        out[i + half] = y2;
    }
}

/* every head of every token, each at its position within its sequence */
static void rotate_all(float *out, const float *x, const transformer_seqs *s, int heads, int hd,
                       int rd, float base, size_t stride, double sign)
{
    double freq[rd / 2 + 1];
    for (int i = 0; i < rd / 2; i++)
        freq[i] = pow((double)base, -2.0 * i / rd);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (int q = 0; q < s->n_seqs; q++)
        for (int t = s->cu_seqlens[q]; t < s->cu_seqlens[q + 1]; t++)
            for (int h = 0; h < heads; h++) {
                size_t off = (size_t)t * stride + (size_t)h * hd;
                rotate_head(out + off, x + off, t - s->cu_seqlens[q], hd, rd, freq, sign);
            }
}

void rotary_forward_cpu(float *out, const float *x, const transformer_seqs *s, int heads, int hd,
                        int rd, float base, size_t stride)
{
    rotate_all(out, x, s, heads, hd, rd, base, stride, 1.0);
}

void rotary_backward_cpu(float *dx, const float *dout, const transformer_seqs *s, int heads, int hd,
                         int rd, float base, size_t stride)
{
    rotate_all(dx, dout, s, heads, hd, rd, base, stride, -1.0);
}

void rotary_at_cpu(float *x, int rows, int heads, int hd, int rd, int pos, float base, size_t stride)
{
    double freq[rd / 2 + 1];
    for (int i = 0; i < rd / 2; i++)
        freq[i] = pow((double)base, -2.0 * i / rd);
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int h = 0; h < heads; h++) {
            float *head = x + r * stride + (size_t)h * hd;
            rotate_head(head, head, pos, hd, rd, freq, 1.0);
        }
}
