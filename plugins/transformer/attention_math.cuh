/* What the attention kernels on the GPU share, the portable ones
 * (attention_cuda.cu) and Hopper's (attention_hopper.cu): the arguments, the
 * masks, the online softmax and the score gradients on accumulators in the
 * m16n8 layout (mma_bf16.cuh; wgmma's is the same per warp), and the launch
 * arithmetic. The math is attention_cuda.cu's opening comment. */
#ifndef FLAME_ATTENTION_MATH_CUH
#define FLAME_ATTENTION_MATH_CUH

#include <limits.h>
#include <math.h>

#include "cuda_check.h"
#include "mma_bf16.cuh"
#include "transformer_cuda.h"

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* what every kernel needs besides its tensors */
struct attn_args {
    const int32_t *cu; /* device offsets [n_seqs + 1] */
    int H, Hkv, group; /* group = H / Hkv */
    float scale;       /* hd^-1/2 */
    float scale_log2;  /* scale · log2(e) */
    int window;        /* row i sees keys j with i − window < j ≤ i (INT_MAX: all) */
    /* values from a token's row of q (dq) and of k, v (dk, dv) to the next
     * token's (transformer.h: attention_dims.stride); o and dout are packed */
    size_t q_stride, kv_stride;
    /* where the backward turns dq and dk back through a rotary turn of the
     * whole head as it writes them: rotary_cuda.cu's table of (cos θ, sin θ),
     * [position][hd / 2]; NULL: written as they are */
    const float2 *turn;
};

/* key j hidden from query row i */
static __device__ __forceinline__ bool hidden(int i, int j, int window)
{
    return j > i || i - j >= window;
}

static __device__ __forceinline__ float exp2_fast(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* the quad of lanes sharing an accumulator row */
static __device__ __forceinline__ float quad_max(float x)
{
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

static __device__ __forceinline__ float quad_sum(float x)
{
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* Whether some query of rows [r0, r0 + rows) is hidden from some key of
 * [k0, k0 + keys) (the tile needs its mask), and whether some query sees some
 * key (the tile is worth its products). */
static __device__ __forceinline__ bool edge_tile(int r0, int rows, int k0, int keys, int window)
{
    return k0 + keys - 1 > r0 || r0 + rows - 1 - k0 >= window;
}
static __device__ __forceinline__ bool any_visible(int r0, int rows, int k0, int keys, int window)
{
    return k0 <= r0 + rows - 1 && r0 - (k0 + keys - 1) < window;
}

/* ------------------------------------------------------------------ softmax */

/* The online softmax's step over one tile of a warp's scores s (log2 units,
 * −inf where masked): the running max m and sum l of its two rows per
 * thread move on, s becomes p = 2^(s − m), and correction[r] = 2^(m_old −
 * m_new) is what the rows' output must be multiplied by (rescale) before
 * this tile's p·V is added. l stays a per-thread partial sum until the end. */
template <int NT>
static __device__ __forceinline__ void softmax_step(float (&s)[NT][4], float (&m)[2], float (&l)[2],
                                                    float (&correction)[2])
{
    float mx[2] = {m[0], m[1]}, base[2];
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            mx[e / 2] = fmaxf(mx[e / 2], s[j][e]);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = quad_max(mx[r]);
        base[r] = mx[r] == -INFINITY ? 0.0f : mx[r]; /* a row with nothing visible yet */
        correction[r] = exp2_fast(m[r] - base[r]);   /* 0 while m = −inf */
        l[r] *= correction[r];
        m[r] = mx[r];
    }
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float p = exp2_fast(s[j][e] - base[e / 2]);
            s[j][e] = p;
            l[e / 2] += p;
        }
}

/* the rows' output times their correction */
template <int NO>
static __device__ __forceinline__ void rescale(float (&o)[NO][4], const float (&correction)[2])
{
#pragma unroll
    for (int j = 0; j < NO; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            o[j][e] *= correction[e / 2];
}

/* a warp's scores of rows r0.. against keys k0.. in log2 units, −inf where
 * hidden (MASK: the tile has such keys; without, no element is tested) */
template <bool MASK, int NT>
static __device__ __forceinline__ void scale_scores(float (&s)[NT][4], int r0, int k0,
                                                    const attn_args &a)
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            bool off = MASK && hidden(r0 + acc_row(e), k0 + 8 * j + acc_col(e), a.window);
            s[j][e] = off ? -INFINITY : s[j][e] * a.scale_log2;
        }
}

/* Pᵀ of the warp's keys first.. against queries qs.. (their lse in log2
 * units in slse), 0 where hidden (MASK as scale_scores's) */
template <bool MASK, int NT>
static __device__ __forceinline__ void transposed_probabilities(float (&pt)[NT][4],
                                                                const float *slse, int first,
                                                                int qs, const attn_args &a)
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int c = 8 * j + acc_col(e);
            bool off = MASK && hidden(qs + c, first + acc_row(e), a.window);
            pt[j][e] = off ? 0.0f : exp2_fast(pt[j][e] * a.scale_log2 - slse[c]);
        }
}

/* P of the warp's rows first.. against keys k0.. in place of their scores
 * s, from the rows' lse (log2 units), 0 where hidden (MASK as scale_scores's) */
template <bool MASK, int NT>
static __device__ __forceinline__ void probabilities(float (&s)[NT][4], const float (&lse2)[2], int first,
                                                     int k0, const attn_args &a)
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            bool off = MASK && hidden(first + acc_row(e), k0 + 8 * j + acc_col(e), a.window);
            s[j][e] = off ? 0.0f : exp2_fast(s[j][e] * a.scale_log2 - lse2[e / 2]);
        }
}

/* dS = P ⊙ (dP − D) in place of dP, D of the warp's two rows per thread in Dr */
template <int NT>
static __device__ __forceinline__ void score_grads(float (&dp)[NT][4], const float (&p)[NT][4],
                                                   const float (&Dr)[2])
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dp[j][e] = p[j][e] * (dp[j][e] - Dr[e / 2]);
}

/* ------------------------------------------------------------------ results */

/* rows [row0, row0 + 16) of a [rows, ·] bf16 output, row r at dst + r·stride:
 * = scale·acc; rows from `valid` on are left alone */
template <int NT>
static __device__ __forceinline__ void store_rows(act_t *dst, size_t stride, int valid,
                                                  const float (&acc)[NT][4], float scale)
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int r = acc_row(2 * half), c = 8 * j + acc_col(0);
            if (r >= valid)
                continue;
            __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(dst + r * stride + c);
            *p = __floats2bfloat162_rn(scale * acc[j][2 * half], scale * acc[j][2 * half + 1]);
        }
}

/* A warp's accumulator rows (row r at position first + r of its sequence)
 * taken back through the rotary turn of all their NT·8 columns, where cs is
 * not NULL: rotary_cuda.cu's rotation by −θ with its table cs, [position]
 * [NT·4] of (cos θ, sin θ). Rows from `valid` on are left alone (past the
 * sequence, where the table has no angles). */
template <int NT>
static __device__ __forceinline__ void turn_back_rows(float (&acc)[NT][4], const float2 *cs, int first, int valid)
{
    if (!cs)
        return;
    constexpr int HALF = NT / 2; /* the partner of column block j is j + HALF */
#pragma unroll
    for (int j = 0; j < HALF; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = acc_row(e);
            if (r >= valid)
                continue;
            float2 t = cs[(size_t)(first + r) * (NT * 4) + 8 * j + acc_col(e)];
            float x1 = acc[j][e], x2 = acc[j + HALF][e];
            acc[j][e] = x1 * t.x + x2 * t.y;
            acc[j + HALF][e] = x2 * t.x - x1 * t.y;
        }
}

/* ------------------------------------------------------------------ blocks */

/* A block's BM query rows [q0, q0 + BM) of one (sequence, head): of the
 * grid_of cell (x, y) of a grid Y tall (blockIdx and gridDim.y unless a
 * persistent kernel walks the cells itself), x = sequence·H + head and y
 * counts query tiles from the last (the longest walks start first). Tiles
 * are laid from row 0, or (from_end, the Hopper kernels') from the
 * sequence's end, the first then starting at row 0 over part of the second:
 * where BM does not divide the length, the part-full cell is then the one
 * with the shortest walk, not the longest (its rows past the end idle a
 * consumer for the whole walk), and the rows the two first cells share are
 * made twice, the same way. The forward and the dq kernels walk its
 * key/value tiles of BN rows, from first_tile() to the one holding the
 * block's last row. */
template <int HD, int BM, int BN> struct query_rows {
    int H, h, g, begin, len, q0;
    size_t q_stride, kv_stride, o_stride;

    __device__ query_rows(const attn_args &a) : query_rows(a, blockIdx.x, blockIdx.y, gridDim.y) {}
    __device__ query_rows(const attn_args &a, int x, int y, int Y, bool from_end = false)
    {
        int seq = x / a.H;
        H = a.H, h = x % a.H, g = h / a.group;
        begin = a.cu[seq], len = a.cu[seq + 1] - begin;
        /* from the end: cell y, if the sequence has one ((y + 1)·BM < len + BM,
         * that is y·BM < len), else empty (q0 = len) */
        q0 = !from_end ? (Y - 1 - y) * BM : (y + 1) * BM < len + BM ? max(len - (y + 1) * BM, 0) : len;
        q_stride = a.q_stride, kv_stride = a.kv_stride, o_stride = (size_t)a.H * HD;
    }
    __device__ bool empty() const { return q0 >= len; }
    /* row i of the sequence, head h, in a [tokens, H] array (lse, D) */
    __device__ size_t head_row(int i) const { return (size_t)(begin + i) * H + h; }
    /* row i of the sequence, head h, in o or dout (packed [tokens, H, HD]) */
    __device__ size_t o_at(int i) const { return head_row(i) * HD; }
    /* row i of the sequence, head h, in q or dq (rows q_stride apart) */
    __device__ size_t q_at(int i) const { return (size_t)(begin + i) * q_stride + (size_t)h * HD; }
    /* row i of the sequence, key/value head g, in k or v */
    __device__ size_t kv_at(int i) const { return (size_t)(begin + i) * kv_stride + (size_t)g * HD; }
    /* the first key tile some row of the block sees, and the end of the walk */
    __device__ int first_tile(int window) const
    {
        return q0 - window + 1 > 0 ? (q0 - window + 1) / BN : 0;
    }
    __device__ int end_tile() const { return (min(q0 + BM, len) + BN - 1) / BN; }
    /* the lse (log2 units) and D of a thread's two rows of the warp's 16 from
     * `first` (the accumulator layout's), p = 0 past the end */
    __device__ void row_stats(float (&lse2)[2], float (&Dr)[2], const float *lse, const float *D, int first) const
    {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int i = first + acc_row(2 * r);
            lse2[r] = i < len ? lse[head_row(i)] * LOG2E : INFINITY;
            Dr[r] = i < len ? D[head_row(i)] : 0.0f;
        }
    }
};

/* A block's BK keys [k0, k0 + BK) of one (sequence, key/value head): of
 * the grid_of cell (x, y) (as query_rows'), x = sequence·Hkv + head and y
 * the key tile (the first sees the most queries). The dk/dv
 * kernels walk `steps()` steps: (query head of the group, query tile of QT
 * rows from the one holding k0 to the last whose rows see a key of the
 * block). */
template <int HD, int BK, int QT> struct key_rows {
    int g, group, H, begin, len, k0, first_tile, tiles;
    size_t q_stride, kv_stride;

    __device__ key_rows(const attn_args &a) : key_rows(a, blockIdx.x, blockIdx.y) {}
    __device__ key_rows(const attn_args &a, int x, int y)
    {
        int seq = x / a.Hkv;
        g = x % a.Hkv, group = a.group, H = a.H;
        begin = a.cu[seq], len = a.cu[seq + 1] - begin;
        k0 = y * BK;
        q_stride = a.q_stride, kv_stride = a.kv_stride;
        int last_row = (int)min((long long)len, (long long)k0 + BK - 1 + a.window) - 1;
        first_tile = k0 / QT, tiles = last_row / QT + 1 - first_tile;
    }
    __device__ bool empty() const { return k0 >= len; }
    /* row i of the sequence, head g, in k, v, dk or dv (rows kv_stride apart) */
    __device__ size_t kv_row_at(int i) const { return (size_t)(begin + i) * kv_stride + (size_t)g * HD; }
    /* row i of the sequence, query head hq, in q (rows q_stride apart) and in dout (packed) */
    __device__ size_t q_at(int i, int hq) const { return (size_t)(begin + i) * q_stride + (size_t)hq * HD; }
    __device__ size_t dout_at(int i, int hq) const { return ((size_t)(begin + i) * H + hq) * HD; }
    __device__ int steps() const { return group * tiles; }
    /* step it's query head and first query row */
    __device__ int step_head(int it) const { return g * group + it / tiles; }
    __device__ int step_start(int it) const { return (first_tile + it % tiles) * QT; }
    /* step it's rows' lse (log2 units) and D into slse, sD, by `threads` threads from `thread` */
    __device__ void load_stats(float *slse, float *sD, const float *lse, const float *D, int it, int thread,
                               int threads) const
    {
        int hq = step_head(it), qs = step_start(it);
        for (int c = thread; c < QT; c += threads) {
            int i = qs + c;
            size_t row = (size_t)(begin + i) * H + hq;
            slse[c] = i < len ? lse[row] * LOG2E : INFINITY; /* p = 0 past the end */
            sD[c] = i < len ? D[row] : 0.0f;
        }
    }
};

/* The forward's end for a warp's 16 rows from `first` of block b: o = acc / l
 * and lse = ln 2 · (m + log2 l) of rows inside the sequence */
template <int HD, typename Block>
static __device__ __forceinline__ void finish_forward(act_t *o, float *lse, float (&acc)[HD / 8][4],
                                                      const float (&m)[2], float (&l)[2], int first,
                                                      const Block &b)
{
    if (first >= b.len)
        return;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] = quad_sum(l[r]);
        inv[r] = 1.0f / l[r];
        int i = first + acc_row(2 * r);
        if (lane_id() % 4 == 0 && i < b.len)
            lse[b.head_row(i)] = LN2 * (m[r] + log2f(l[r]));
    }
#pragma unroll
    for (int j = 0; j < HD / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            acc[j][e] *= inv[e / 2];
    store_rows(o + b.o_at(first), b.o_stride, b.len - first, acc, 1.0f);
}

/* dSᵀ = Pᵀ ⊙ (dPᵀ − D) in place of dPᵀ, D of the tile's queries in sD */
template <int NT>
static __device__ __forceinline__ void transposed_score_grads(float (&dst)[NT][4], const float (&pt)[NT][4],
                                                              const float *sD)
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dst[j][e] = pt[j][e] * (dst[j][e] - sD[8 * j + acc_col(e)]);
}

/* ------------------------------------------------------------------ launches */

/* the launch grid: blocks of `rows` rows over every (sequence, head) */
static dim3 grid_of(const transformer_seqs *s, int heads, int rows)
{
    int tiles = (transformer_longest(s) + rows - 1) / rows;
    if (tiles > 65535) {
        fprintf(stderr, "attention_cuda: a sequence of %d tokens is too long\n", transformer_longest(s));
        exit(1);
    }
    return dim3((unsigned)(s->n_seqs * heads), (unsigned)tiles);
}

/* kernels above 48 KiB of dynamic shared memory must say so first */
template <typename K> static void allow_shared(K kernel, size_t bytes)
{
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)bytes));
}

static attn_args args_of(const attention_dims *d)
{
    return attn_args{d->seqs.cu_seqlens_backend, d->H, d->Hkv, d->H / d->Hkv, d->scale,
                     d->scale * LOG2E, d->window > 0 ? d->window : INT_MAX, attention_q_stride(d),
                     attention_kv_stride(d), NULL};
}

#endif