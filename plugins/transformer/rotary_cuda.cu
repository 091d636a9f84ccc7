/* Rotary position embeddings on the GPU: the math of rotary_cpu.c, fla's /
 * Llama's rotate-half form on the first rd values of each head of hd. For
 * token t at position p within its sequence and for i < rd/2, with
 * θ_i = p · base^(−2i/rd):
 *     out[i]        = x[i] cos θ_i − x[i + rd/2] sin θ_i
 *     out[i + rd/2] = x[i + rd/2] cos θ_i + x[i] sin θ_i
 * and the backward rotates by −θ (the rotation is orthogonal) into dx; values
 * past rd are x's (copied first when out is not x).
 *
 * The cos and sin of every angle p·θ_i come from a table (positions ×
 * pairs, fp32, kept between calls and grown when a longer sequence comes):
 * its angles are formed and reduced to [−π, π] in double, as the CPU forms
 * them (positions reach thousands, where an fp32 product would lose the low
 * bits of the angle), and sin and cos of the reduced angle taken in fp32.
 * The rotation then streams: a thread takes 8 pairs of a (token, head) row
 * (16-byte accesses) when the rotated half and the head are multiples of 8, one otherwise;
 * it reads both values of its pairs and writes both, so the forward may run
 * in place. A token's position is found from the device offsets by a binary
 * search (positions restart at each sequence start), or, in generation's
 * lockstep (rotary_at_cuda), is one position for every token. A token's row
 * of heads is `stride` values after the one before (heads·hd when packed;
 * more when q and k are column blocks of a joined projection's output). x,
 * out are bf16; the arithmetic is fp32. */
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

/* ------------------------------------------------------------------ the angles */

#define TWO_PI 6.283185307179586

/* (cos, sin) of p·freq_i at [p·half + i] */
static __global__ void fill_angles(float2 *cs, int positions, int half, rotary_freqs fr)
{
    await_inputs();
    GRID_STRIDE_LOOP(idx, (size_t)positions * half)
    {
        int i = (int)(idx % half), p = (int)(idx / half);
        double angle = p * fr.f[i];
        angle -= TWO_PI * rint(angle / TWO_PI);
        float s, c;
        sincosf((float)angle, &s, &c);
        cs[idx] = make_float2(c, s);
    }
}

/* the table of the last (base, half), at least `positions` long */
const float2 *rotary_angles_cuda(int positions, int half, float base)
{
    static float2 *cs;
    static int have_positions, have_half;
    static float have_base;
    if (cs && half == have_half && base == have_base && positions <= have_positions)
        return cs;
    if (cs)
        CUDA_CHECK(cudaFree(cs));
    /* growing, at least twice the last: generation asks for one position more
     * each token (another half or base starts again from what is asked) */
    if (half == have_half && base == have_base && positions < 2 * have_positions)
        positions = 2 * have_positions;
    CUDA_CHECK(cudaMalloc(&cs, (size_t)positions * half * sizeof *cs));
    rotary_freqs fr = {};
    for (int i = 0; i < half; i++)
        fr.f[i] = pow((double)base, -2.0 * i / (2 * half));
    launch_kernel(fill_angles, cuda_grid((size_t)positions * half), CUDA_BLOCK, 0, cs, positions, half, fr);
    have_positions = positions, have_half = half, have_base = base;
    return cs;
}

/* ------------------------------------------------------------------ the rotation */

/* Rotates W pairs a thread, (token, head) rows of hd values whose first 2·half turn, by sign·θ */
template <int W>
static __global__ void rotate_pairs(act_t *out, const act_t *x, token_positions at, int heads,
                                    int hd, size_t stride, int half, const float2 *cs, float sign,
                                    size_t pieces)
{
    await_inputs();
    int per_row = half / W;
    GRID_STRIDE_LOOP(idx, pieces)
    {
        int i0 = (int)(idx % per_row) * W;
        size_t row = idx / per_row; /* token · heads + head */
        int token = (int)(row / heads), head = (int)(row % heads);
        const float2 *angle = cs + (size_t)at.of(token) * half + i0;
        size_t a = token * stride + (size_t)head * hd + i0, b = a + half;
        float x1[W], x2[W], y1[W], y2[W];
        load_floats<W>(x1, x + a);
        load_floats<W>(x2, x + b);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float2 e = angle[k];
            float c = e.x, s = sign * e.y;
            y1[k] = x1[k] * c - x2[k] * s, y2[k] = x2[k] * c + x1[k] * s;
        }
        store_floats<W>(out + a, y1);
        store_floats<W>(out + b, y2);
    }
}

/* rotate_pairs over `pairs` pairs, 8 a thread where rows allow */
static void launch(act_t *out, const act_t *x, token_positions at, int heads, int hd, size_t stride,
                   int half, const float2 *cs, float sign, size_t pairs)
{
    if (vectorizable(half, out, x) && hd % ACT_VEC == 0 && stride % ACT_VEC == 0)
        launch_kernel(rotate_pairs<ACT_VEC>, cuda_grid(pairs / ACT_VEC), CUDA_BLOCK, 0, out, x, at, heads, hd, stride,
                      half, cs, sign, pairs / ACT_VEC);
    else
        launch_kernel(rotate_pairs<1>, cuda_grid(pairs), CUDA_BLOCK, 0, out, x, at, heads, hd, stride, half, cs, sign,
                      pairs);
}

/* n tokens (the longest sequence `positions` long) of `heads` heads of hd,
 * rows `stride` apart, the first rd of each head turned */
static void rotate(void *out, const void *x, token_positions at, int n, int positions, int heads, int hd,
                   size_t stride, int rd, float base, float sign)
{
    int half = rd / 2;
    if (half > ROTARY_CUDA_MAX_HALF || rd % 2 || rd < 2 || rd > hd) {
        fprintf(stderr, "rotary_cuda: %d of a head of %d is not supported (even, at most %d)\n", rd, hd,
                2 * ROTARY_CUDA_MAX_HALF);
        exit(1);
    }
    size_t pairs = (size_t)n * heads * half;
    if (pairs == 0)
        return;
    if (out != x && rd < hd) /* the values that do not turn */
        CUDA_CHECK(cudaMemcpy2DAsync(out, stride * sizeof(act_t), x, stride * sizeof(act_t),
                                     (size_t)heads * hd * sizeof(act_t), (size_t)n, cudaMemcpyDeviceToDevice));
    const float2 *cs = rotary_angles_cuda(positions, half, base);
    act_t *o = static_cast<act_t *>(out);
    const act_t *in = static_cast<const act_t *>(x);
    launch(o, in, at, heads, hd, stride, half, cs, sign, pairs);
}

static token_positions by_sequence(const transformer_seqs *s)
{
    return token_positions{s->cu_seqlens_backend, s->n_seqs, 0};
}

void rotary_forward_cuda(void *out, const void *x, const transformer_seqs *s, int heads, int hd, int rd,
                         float base, size_t stride)
{
    rotate(out, x, by_sequence(s), s->cu_seqlens[s->n_seqs], transformer_longest(s), heads, hd, stride, rd, base,
           1.0f);
}

void rotary_backward_cuda(void *dx, const void *dout, const transformer_seqs *s, int heads, int hd, int rd,
                          float base, size_t stride)
{
    rotate(dx, dout, by_sequence(s), s->cu_seqlens[s->n_seqs], transformer_longest(s), heads, hd, stride, rd,
           base, -1.0f);
}

void rotary_at_cuda(void *x, int rows, int heads, int hd, int rd, int pos, float base, size_t stride)
{
    rotate(x, x, token_positions{NULL, 0, pos}, rows, pos + 1, heads, hd, stride, rd, base, 1.0f);
}
