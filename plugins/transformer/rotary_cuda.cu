/* Rotary position embeddings on the GPU: the math of rotary_cpu.c, fla's /
 * Llama's rotate-half form. For token t at position p within its sequence and
 * for i < hd/2, with θ_i = p · base^(−2i/hd):
 *     out[i]        = x[i] cos θ_i − x[i + hd/2] sin θ_i
 *     out[i + hd/2] = x[i + hd/2] cos θ_i + x[i] sin θ_i
 * and the backward rotates by −θ (the rotation is orthogonal), adding into dx.
 *
 * One thread per (token, head, pair i): it reads both values of its pair and
 * writes both, so the forward may run in place. A token's position is found
 * from the device offsets by a binary search (positions restart at each
 * sequence start), or, in generation's lockstep (rotary_at_cuda), is one
 * position for every token. The frequencies come in as a kernel argument computed on the
 * host in double, and the angle p·freq_i is formed and reduced to [−π, π] in
 * double, as the CPU forms it: positions reach thousands, where an fp32 product
 * would lose the low bits of the angle; sin and cos of the reduced angle are
 * then taken in fp32. x, out are bf16; the arithmetic is fp32. */
#include <math.h>

#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "transformer_cuda.h"

/* base^(−2i/hd) for i < hd/2 */
struct rotary_freqs {
    double f[ROTARY_CUDA_MAX_HALF];
};

/* the position of token t within its sequence: t − cu[s] for the s with
 * cu[s] ≤ t < cu[s + 1] */
static __device__ int position_of(int t, const int32_t *cu, int n_seqs)
{
    int lo = 0, hi = n_seqs; /* cu[lo] ≤ t < cu[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (cu[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return t - cu[lo];
}

/* where the tokens are: each by its sequence's offsets (cu), or all at `pos` (cu NULL) */
struct token_positions {
    const int32_t *cu;
    int n_seqs, pos;
    __device__ int of(int t) const { return cu ? position_of(t, cu, n_seqs) : pos; }
};

/* rotates every pair by sign·θ; ACCUMULATE adds into out (which must not alias x) */
template <bool ACCUMULATE>
static __global__ void rotate_pairs(act_t *out, const act_t *x, token_positions at, int heads,
                                    int half, rotary_freqs fr, double sign, size_t pairs)
{
    const double two_pi = 6.283185307179586;
    GRID_STRIDE_LOOP(idx, pairs)
    {
        int i = (int)(idx % half);
        size_t row = idx / half; /* token · heads + head */
        int t = (int)(row / heads);
        double angle = sign * at.of(t) * fr.f[i];
        angle -= two_pi * rint(angle / two_pi);
        float s, c;
        sincosf((float)angle, &s, &c);
        size_t a = row * 2 * half + i, b = a + half;
        float x1 = to_f32(x[a]), x2 = to_f32(x[b]);
        float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
        if (ACCUMULATE) {
            y1 += to_f32(out[a]);
            y2 += to_f32(out[b]);
        }
        from_f32(&out[a], y1);
        from_f32(&out[b], y2);
    }
}

static void rotate(void *out, const void *x, token_positions at, int n, int heads, int hd,
                   float base, double sign, bool accumulate)
{
    int half = hd / 2;
    if (half > ROTARY_CUDA_MAX_HALF || hd % 2) {
        fprintf(stderr, "rotary_cuda: head dim %d is not supported (even, at most %d)\n", hd,
                2 * ROTARY_CUDA_MAX_HALF);
        exit(1);
    }
    size_t pairs = (size_t)n * heads * half;
    if (pairs == 0)
        return;
    rotary_freqs fr = {};
    for (int i = 0; i < half; i++)
        fr.f[i] = pow((double)base, -2.0 * i / hd);
    act_t *o = static_cast<act_t *>(out);
    const act_t *in = static_cast<const act_t *>(x);
    if (accumulate)
        rotate_pairs<true><<<cuda_grid(pairs), CUDA_BLOCK>>>(o, in, at, heads, half, fr, sign, pairs);
    else
        rotate_pairs<false><<<cuda_grid(pairs), CUDA_BLOCK>>>(o, in, at, heads, half, fr, sign, pairs);
    CUDA_CHECK_LAUNCH();
}

static token_positions by_sequence(const transformer_seqs *s)
{
    return token_positions{s->cu_seqlens_backend, s->n_seqs, 0};
}

void rotary_forward_cuda(void *out, const void *x, const transformer_seqs *s, int heads, int hd,
                         float base)
{
    rotate(out, x, by_sequence(s), s->cu_seqlens[s->n_seqs], heads, hd, base, 1.0, false);
}

void rotary_backward_cuda(void *dx, const void *dout, const transformer_seqs *s, int heads, int hd,
                          float base)
{
    rotate(dx, dout, by_sequence(s), s->cu_seqlens[s->n_seqs], heads, hd, base, -1.0, true);
}

void rotary_at_cuda(void *x, int rows, int heads, int hd, int pos, float base)
{
    rotate(x, x, token_positions{NULL, 0, pos}, rows, heads, hd, base, 1.0, false);
}
