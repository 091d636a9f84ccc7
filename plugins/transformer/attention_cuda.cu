/* Causal softmax attention with grouped key/value heads on the GPU, flash
 * attention style (FlashAttention-2): the math and layouts of attention_cpu.c,
 * tiles of queries and keys on the tensor cores, and never a T×T matrix in
 * memory. Per sequence, query head h (key/value head g = h / (H/Hkv)), query
 * row i and key j ≤ i, with x_ij = scale·log2(e)·q_i·k_j (scores in units of
 * log2, so every exponential is one ex2):
 *
 * Forward: a block takes BM query rows of one (sequence, head) and walks the
 * key/value tiles of KEYS rows from the sequence's start to the diagonal. Each
 * warp owns 16 query rows and keeps, per row, the running max m and sum l of
 * 2^(x − m) (the online softmax) and o = Σ_j 2^(x_ij − m) v_j, rescaling both
 * by 2^(m_old − m_new) when the max grows. At the end o /= l and
 *     lse_i = ln 2 · (m + log2 l)   (= log Σ_j exp(scale·q_i·k_j), the CPU's lse)
 * S = Q Kᵀ and O += P V are mma.sync products (bf16 operands, fp32
 * accumulation); P enters the second as bf16 straight from the registers.
 *
 * Backward, with p_ij = 2^(x_ij − lse_i·log2 e), D_i = do_i·o_i (a first small
 * kernel, into `work`), dp_ij = do_i·v_j and ds_ij = p_ij (dp_ij − D_i):
 *     dv_j += Σ_i p_ij do_i,   dk_j += scale Σ_i ds_ij q_i,   dq_i += scale Σ_j ds_ij k_j
 * in two kernels, so that every gradient row has one owner and no atomics are
 * needed (sums in an order fixed by the shapes: the same results run to run):
 *  - dk, dv: a block takes BK keys of one (sequence, key/value head) and walks
 *    every query head of the group and every query tile of QT rows from the
 *    diagonal to the sequence's end. Each warp owns 16 keys and works on the
 *    transposed scores, Sᵀ = K Qᵀ and dPᵀ = V dOᵀ, so that Pᵀ and dSᵀ are
 *    already in its registers as the left operands of dV += Pᵀ dO and
 *    dK += dSᵀ Q; the group's heads sum in registers.
 *  - dq: a block takes BM query rows of one (sequence, head) and walks the key
 *    tiles like the forward: S = Q Kᵀ, dP = dO Vᵀ, dQ += dS K.
 * The backward thus forms the scores twice (7 tile products where an atomic
 * version has 5): the price of determinism without a T×T buffer.
 *
 * With a window, key j is visible to row i only when i − j < window as well:
 * the walks start at the first tile some row of the block sees and stop at the
 * last, and the masks take both bounds.
 *
 * Every walk double-buffers its tiles in shared memory: the next tile's copy
 * (cp.async) is in flight while the tensor cores work on the current one.
 * Rows past a sequence's end are loaded as zeros and never stored. Heads are
 * multiples of 16 up to 128 (one instantiation each). The bf16 dq, dk, dv are
 * written once per element. */
#include <type_traits>

#include "attention_hopper.h"
#include "attention_math.cuh"
#include "attention_mma.cuh"

#define KEYS 64 /* key rows of a tile in the forward and dq walks */
#define MAX_HD 128

/* ------------------------------------------------------------------ walks */

/* query_rows walking its tiles with cp.async, double-buffered */
template <int HD, int BM, int BN, int THREADS>
struct query_block : query_rows<HD, BM, BN> {
    static constexpr int TILE = BN * (HD + 8);
    using rows = query_rows<HD, BM, BN>;
    const act_t *kg, *vg; /* the key/value head's first row of the sequence */

    __device__ query_block(const attn_args &a, const act_t *k, const act_t *v) : rows(a)
    {
        kg = k + rows::kv_at(0);
        vg = v + rows::kv_at(0);
    }
    /* the block's rows of q (in the copy group of the next load_kv) */
    __device__ void load_q(act_t *s, const act_t *q) const
    {
        load_tile<BM, HD, THREADS>(s, q + rows::q_at(rows::q0), rows::q_stride, rows::len - rows::q0);
    }
    /* the block's rows of dout, the same way */
    __device__ void load_dout(act_t *s, const act_t *dout) const
    {
        load_tile<BM, HD, THREADS>(s, dout + rows::o_at(rows::q0), rows::o_stride, rows::len - rows::q0);
    }
    /* key tile t into buffer t % 2 of sk and sv, as one copy group */
    __device__ void load_kv(act_t *sk, act_t *sv, int t) const
    {
        int k0 = t * BN, buf = t & 1, valid = rows::len - k0;
        size_t stride = rows::kv_stride;
        load_tile<BN, HD, THREADS>(sk + buf * TILE, kg + k0 * stride, stride, valid);
        load_tile<BN, HD, THREADS>(sv + buf * TILE, vg + k0 * stride, stride, valid);
        cp_async_commit();
    }
    /* tile(K, V, k0) for every key tile of the walk, each in shared memory,
     * with the next tile's copy in flight meanwhile; the caller has started
     * first_tile()'s copy */
    template <typename Tile> __device__ void walk(act_t *sk, act_t *sv, int window, Tile tile) const
    {
        int tiles = rows::end_tile();
        for (int t = rows::first_tile(window); t < tiles; t++) {
            if (t + 1 < tiles) {
                load_kv(sk, sv, t + 1);
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
            int buf = t & 1;
            tile(sk + buf * TILE, sv + buf * TILE, t * BN);
            __syncthreads(); /* the buffer is free for the copy after next */
        }
    }
};

/* key_rows walking its steps with cp.async, the tiles of Q and dO
 * double-buffered with their rows' lse and D */
template <int HD, int BK, int QT, int THREADS> struct key_block : key_rows<HD, BK, QT> {
    static constexpr int TILE = QT * (HD + 8);
    using rows = key_rows<HD, BK, QT>;
    const act_t *q, *dout;
    const float *lse, *D;

    __device__ key_block(const attn_args &a, const act_t *q_, const act_t *dout_, const float *lse_,
                         const float *D_)
        : rows(a), q(q_), dout(dout_), lse(lse_), D(D_)
    {
    }
    /* the block's keys and values (in the copy group of the walk's first tile) */
    __device__ void load_keys(act_t *sk, act_t *sv, const act_t *k, const act_t *v) const
    {
        size_t at = rows::kv_row_at(rows::k0);
        int valid = rows::len - rows::k0;
        load_tile<BK, HD, THREADS>(sk, k + at, rows::kv_stride, valid);
        load_tile<BK, HD, THREADS>(sv, v + at, rows::kv_stride, valid);
    }
    /* step it's query tile into buffer buf, as one copy group */
    __device__ void load_q(act_t *sq, act_t *sdo, float *slse, float *sD, int it, int buf) const
    {
        int qs = rows::step_start(it), hq = rows::step_head(it), valid = rows::len - qs;
        load_tile<QT, HD, THREADS>(sq + buf * TILE, q + rows::q_at(qs, hq), rows::q_stride, valid);
        load_tile<QT, HD, THREADS>(sdo + buf * TILE, dout + rows::dout_at(qs, hq), (size_t)rows::H * HD, valid);
        cp_async_commit();
        rows::load_stats(slse + buf * QT, sD + buf * QT, lse, D, it, threadIdx.x, THREADS);
    }
    /* tile(Q, dO, lse, D, qs) for every step, each in shared memory, with the
     * next step's copy in flight meanwhile */
    template <typename Tile>
    __device__ void walk(act_t *sq, act_t *sdo, float *slse, float *sD, Tile tile) const
    {
        load_q(sq, sdo, slse, sD, 0, 0);
        int steps = rows::steps();
        for (int it = 0; it < steps; it++) {
            if (it + 1 < steps) {
                load_q(sq, sdo, slse, sD, it + 1, (it + 1) & 1);
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
            int buf = it & 1;
            tile(sq + buf * TILE, sdo + buf * TILE, slse + buf * QT, sD + buf * QT, rows::step_start(it));
            __syncthreads();
        }
    }
};

/* ------------------------------------------------------------------ forward */

/* One key tile (keys k0.. of the sequence) for the warp's 16 query rows from
 * `first` (rows m0.. of the block's Q tile). */
template <int HD>
static __device__ __forceinline__ void forward_tile(float (&o)[HD / 8][4], float (&m)[2],
                                                    float (&l)[2], const act_t *sq, const act_t *sk,
                                                    const act_t *sv, int m0, int first, int k0,
                                                    const attn_args &a)
{
    constexpr int LD = HD + 8, NT = KEYS / 8;
    float s[NT][4] = {};
    warp_mma_shared<NT, HD, false>(s, sq, LD, m0, sk, LD); /* S = Q Kᵀ */
    if (edge_tile(first, 16, k0, KEYS, a.window))
        scale_scores<true>(s, first, k0, a);
    else
        scale_scores<false>(s, first, k0, a);
    float correction[2];
    softmax_step(s, m, l, correction);
    rescale(o, correction);
    uint32_t p[NT / 2][4];
    acc_to_a<NT>(p, s);
    warp_mma_regs<HD / 8, NT / 2, true>(o, p, sv, LD); /* O += P V */
}

/* Block: BM = 16·WARPS query rows of one (sequence, head) (query_block).
 * Shared: Q [BM], K and V [2][KEYS] rows of HD + 8. */
template <int HD, int WARPS>
static __global__ void __launch_bounds__(32 * WARPS)
    attention_forward_kernel(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                             attn_args a)
{
    await_inputs();
    constexpr int BM = 16 * WARPS, THREADS = 32 * WARPS, LD = HD + 8;
    extern __shared__ __align__(16) unsigned char smem[];
    act_t *sq = reinterpret_cast<act_t *>(smem), *sk = sq + BM * LD, *sv = sk + 2 * KEYS * LD;

    const query_block<HD, BM, KEYS, THREADS> b(a, k, v);
    if (b.empty())
        return;
    b.load_q(sq, q);
    b.load_kv(sk, sv, b.first_tile(a.window));
    int m0 = 16 * warp_id(), first = b.q0 + m0; /* the warp's first row in the sequence */
    float acc[HD / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    b.walk(sk, sv, a.window, [&](const act_t *tk, const act_t *tv, int k0) {
        if (first < b.len && any_visible(first, 16, k0, KEYS, a.window))
            forward_tile<HD>(acc, m, l, sq, tk, tv, m0, first, k0, a);
    });
    finish_forward<HD>(o, lse, acc, m, l, first, b);
}

/* ------------------------------------------------------------------ backward: D */

/* D_r = do_r·o_r over rows of hd values, DOT_LANES lanes a row taking W
 * values at a time: a row of 64 is one 16-byte access a lane where the
 * rows are aligned (a warp a row, reading 4 bytes a lane, ran at half the
 * bandwidth) */
#define DOT_LANES 8

/* D of every row, and the row's turn counter (when the backward has them,
 * else NULL) set back to 0 */
template <int W>
static __global__ void row_dots(float *D, int *turns, const act_t *dout, const act_t *o, int rows, int hd)
{
    await_inputs();
    int row = blockIdx.x * (CUDA_BLOCK / DOT_LANES) + threadIdx.x / DOT_LANES, lane = threadIdx.x % DOT_LANES;
    float sum = 0.0f;
    if (row < rows)
        for (int c = lane * W; c < hd; c += DOT_LANES * W) {
            float x[W], y[W];
            load_floats<W>(x, dout + (size_t)row * hd + c);
            load_floats<W>(y, o + (size_t)row * hd + c);
#pragma unroll
            for (int k = 0; k < W; k++)
                sum += x[k] * y[k];
        }
    for (int offset = DOT_LANES / 2; offset > 0; offset /= 2) /* every lane: the row's group */
        sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (row < rows && lane == 0) {
        D[row] = sum;
        if (turns)
            turns[row] = 0;
    }
}

/* ------------------------------------------------------------------ backward: dk, dv */

/* One query tile (queries qs.. of head hq; lse in log2 units and D of its rows
 * in slse, sD) for the warp's 16 keys from `first` (rows m0 of the K, V tiles). */
template <int HD, int QT>
static __device__ __forceinline__ void dkdv_tile(float (&dk)[HD / 8][4], float (&dv)[HD / 8][4],
                                                 const act_t *sk, const act_t *sv, const act_t *sq,
                                                 const act_t *sdo, const float *slse,
                                                 const float *sD, int m0, int first, int qs,
                                                 const attn_args &a)
{
    constexpr int LD = HD + 8, NT = QT / 8;
    float pt[NT][4] = {};
    warp_mma_shared<NT, HD, false>(pt, sk, LD, m0, sq, LD); /* Sᵀ = K Qᵀ */
    if (edge_tile(qs, QT, first, 16, a.window))
        transposed_probabilities<true>(pt, slse, first, qs, a);
    else
        transposed_probabilities<false>(pt, slse, first, qs, a);
    {
        uint32_t pa[NT / 2][4];
        acc_to_a<NT>(pa, pt);
        warp_mma_regs<HD / 8, NT / 2, true>(dv, pa, sdo, LD); /* dV += Pᵀ dO */
    }
    float dst[NT][4] = {};
    warp_mma_shared<NT, HD, false>(dst, sv, LD, m0, sdo, LD); /* dPᵀ = V dOᵀ */
    transposed_score_grads(dst, pt, sD);
    uint32_t da[NT / 2][4];
    acc_to_a<NT>(da, dst);
    warp_mma_regs<HD / 8, NT / 2, true>(dk, da, sq, LD); /* dK += dSᵀ Q (scaled at the end) */
}

/* Block: BK = 16·WARPS keys of one (sequence, key/value head); blockIdx.x =
 * sequence·Hkv + head, blockIdx.y the key tile. Walks (query head of the
 * group, query tile of QT rows from the one holding the block's first key).
 * Shared: K, V [BK]; Q, dO [2][QT] rows of HD + 8; lse, D [2][QT] floats. */
template <int HD, int WARPS, int QT>
static __global__ void __launch_bounds__(32 * WARPS)
    attention_dkdv_kernel(act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                          const float *D, const act_t *q, const act_t *k, const act_t *v,
                          attn_args a)
{
    await_inputs();
    constexpr int BK = 16 * WARPS, THREADS = 32 * WARPS, LD = HD + 8;
    extern __shared__ __align__(16) unsigned char smem[];
    act_t *sk = reinterpret_cast<act_t *>(smem), *sv = sk + BK * LD, *sq = sv + BK * LD;
    act_t *sdo = sq + 2 * QT * LD;
    float *slse = reinterpret_cast<float *>(sdo + 2 * QT * LD), *sD = slse + 2 * QT;

    const key_block<HD, BK, QT, THREADS> b(a, q, dout, lse, D);
    if (b.empty())
        return;
    b.load_keys(sk, sv, k, v);
    int m0 = 16 * warp_id(), first = b.k0 + m0; /* the warp's first key in the sequence */
    float dk_acc[HD / 8][4] = {}, dv_acc[HD / 8][4] = {};
    b.walk(sq, sdo, slse, sD, [&](const act_t *tq, const act_t *tdo, const float *tl, const float *tD, int qs) {
        if (first < b.len && any_visible(qs, QT, first, 16, a.window))
            dkdv_tile<HD, QT>(dk_acc, dv_acc, sk, sv, tq, tdo, tl, tD, m0, first, qs, a);
    });
    if (first >= b.len)
        return;
    size_t at = b.kv_row_at(first);
    store_rows(dk + at, b.kv_stride, b.len - first, dk_acc, a.scale);
    store_rows(dv + at, b.kv_stride, b.len - first, dv_acc, 1.0f);
}

/* ------------------------------------------------------------------ backward: dq */

/* One key tile for the warp's 16 query rows from `first`, whose lse (log2
 * units) and D are lse2, Dr */
template <int HD>
static __device__ __forceinline__ void dq_tile(float (&dq)[HD / 8][4], const act_t *sq,
                                               const act_t *sdo, const act_t *sk, const act_t *sv,
                                               const float (&lse2)[2], const float (&Dr)[2], int m0,
                                               int first, int k0, const attn_args &a)
{
    constexpr int LD = HD + 8, NT = KEYS / 8;
    float p[NT][4] = {}, ds[NT][4] = {};
    warp_mma_shared<NT, HD, false>(p, sq, LD, m0, sk, LD);   /* S = Q Kᵀ */
    warp_mma_shared<NT, HD, false>(ds, sdo, LD, m0, sv, LD); /* dP = dO Vᵀ */
    if (edge_tile(first, 16, k0, KEYS, a.window))
        probabilities<true>(p, lse2, first, k0, a);
    else
        probabilities<false>(p, lse2, first, k0, a);
    score_grads(ds, p, Dr);
    uint32_t da[NT / 2][4];
    acc_to_a<NT>(da, ds);
    warp_mma_regs<HD / 8, NT / 2, true>(dq, da, sk, LD); /* dQ += dS K (scaled at the end) */
}

/* Block: BM = 16·WARPS query rows of one (sequence, head) (query_block).
 * Shared: Q, dO [BM]; K, V [2][KEYS] rows of HD + 8. */
template <int HD, int WARPS>
static __global__ void __launch_bounds__(32 * WARPS)
    attention_dq_kernel(act_t *dq, const act_t *dout, const float *lse, const float *D,
                        const act_t *q, const act_t *k, const act_t *v, attn_args a)
{
    await_inputs();
    constexpr int BM = 16 * WARPS, THREADS = 32 * WARPS, LD = HD + 8;
    extern __shared__ __align__(16) unsigned char smem[];
    act_t *sq = reinterpret_cast<act_t *>(smem), *sdo = sq + BM * LD, *sk = sdo + BM * LD;
    act_t *sv = sk + 2 * KEYS * LD;

    const query_block<HD, BM, KEYS, THREADS> b(a, k, v);
    if (b.empty())
        return;
    b.load_q(sq, q);
    b.load_dout(sdo, dout);
    b.load_kv(sk, sv, b.first_tile(a.window));
    int m0 = 16 * warp_id(), first = b.q0 + m0;
    float lse2[2], Dr[2];
    b.row_stats(lse2, Dr, lse, D, first);
    float acc[HD / 8][4] = {};
    b.walk(sk, sv, a.window, [&](const act_t *tk, const act_t *tv, int k0) {
        if (first < b.len && any_visible(first, 16, k0, KEYS, a.window))
            dq_tile<HD>(acc, sq, sdo, tk, tv, lse2, Dr, m0, first, k0, a);
    });
    if (first < b.len)
        store_rows(dq + b.q_at(first), b.q_stride, b.len - first, acc, a.scale);
}

/* ------------------------------------------------------------------ launches */

/* tiles per (sequence, head): block counts per kernel, chosen per head dim so
 * that the registers of a warp's accumulators stay within bounds */
template <int HD> struct tiling {
    static constexpr int FWD_WARPS = HD <= 64 ? 8 : 4; /* forward: BM = 16·warps queries */
    static constexpr int DQ_WARPS = 4;                 /* dq: BM queries */
    static constexpr int DKDV_WARPS = HD <= 64 ? 8 : 4; /* dk, dv: BK = 16·warps keys */
    static constexpr int DKDV_QT = HD <= 64 ? 64 : 32;  /* dk, dv: query tile */
};


template <int HD>
static void forward_hd(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                       const attention_dims *d)
{
    constexpr int WARPS = tiling<HD>::FWD_WARPS;
    size_t smem = (size_t)(16 * WARPS + 4 * KEYS) * (HD + 8) * sizeof(act_t);
    auto kernel = attention_forward_kernel<HD, WARPS>;
    allow_shared(kernel, smem);
    launch_kernel(kernel, grid_of(&d->seqs, d->H, 16 * WARPS), 32 * WARPS, smem, o, lse, q, k, v, args_of(d));
}

template <int HD>
static void backward_hd(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                        const float *D, const act_t *q, const act_t *k, const act_t *v,
                        const attention_dims *d)
{
    attn_args a = args_of(d);
    {
        constexpr int WARPS = tiling<HD>::DKDV_WARPS, QT = tiling<HD>::DKDV_QT;
        size_t smem = (size_t)(2 * 16 * WARPS + 4 * QT) * (HD + 8) * sizeof(act_t) +
                      4 * QT * sizeof(float);
        auto kernel = attention_dkdv_kernel<HD, WARPS, QT>;
        allow_shared(kernel, smem);
        launch_kernel(kernel, grid_of(&d->seqs, d->Hkv, 16 * WARPS), 32 * WARPS, smem, dk, dv, dout, lse, D, q, k, v,
                      a);
    }
    {
        constexpr int WARPS = tiling<HD>::DQ_WARPS;
        size_t smem = (size_t)(2 * 16 * WARPS + 4 * KEYS) * (HD + 8) * sizeof(act_t);
        auto kernel = attention_dq_kernel<HD, WARPS>;
        allow_shared(kernel, smem);
        launch_kernel(kernel, grid_of(&d->seqs, d->H, 16 * WARPS), 32 * WARPS, smem, dq, dout, lse, D, q, k, v, a);
    }
}

/* the entry points' void pointers: activations of the CUDA op table */
static const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static act_t *act(void *p) { return static_cast<act_t *>(p); }

/* cp.async copies 16 bytes at a time: rows of a multiple of 16 values start
 * 16-byte aligned when the tensors do */
static void check_aligned(const void *p, const char *what)
{
    if (reinterpret_cast<uintptr_t>(p) % 16) {
        fprintf(stderr, "attention_cuda: %s is not 16-byte aligned\n", what);
        exit(1);
    }
}

/* and rows of q, k and v a multiple of 16 bytes apart */
static void check_strides(const attention_dims *d)
{
    if (attention_q_stride(d) % 8 || attention_kv_stride(d) % 8) {
        fprintf(stderr, "attention_cuda: rows of q, k and v %d values apart: not a multiple of 8\n", d->stride);
        exit(1);
    }
}

#define FOR_EACH_HEAD_DIM(X) X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128)

const char *attention_unsupported_head_dim_cuda(int hd)
{
    if (hd % 16 == 0 && hd >= 16 && hd <= MAX_HD)
        return NULL;
    return "the cuda attention takes head dims that are multiples of 16 up to 128";
}

size_t attention_work_floats_cuda(int n, int H, int hd)
{
    return (size_t)n * H + attention_hopper_scratch_floats(n, H, hd);
}

/* run(std::integral_constant<int, HD>) for the head dim hd, one of
 * FOR_EACH_HEAD_DIM's; any other exits with the reason */
template <typename Run> static void with_head_dim(int hd, Run run)
{
    switch (hd) {
#define CASE(HD)                                 \
    case HD:                                     \
        run(std::integral_constant<int, HD>{}); \
        return;
        FOR_EACH_HEAD_DIM(CASE)
#undef CASE
    }
    fprintf(stderr, "attention_cuda: head dim %d: %s\n", hd, attention_unsupported_head_dim_cuda(hd));
    exit(1);
}

void attention_forward_cuda(void *o, float *lse, const void *q, const void *k, const void *v,
                            const attention_dims *d)
{
    if (d->seqs.n_seqs == 0 || d->seqs.cu_seqlens[d->seqs.n_seqs] == 0)
        return;
    check_aligned(q, "q"), check_aligned(k, "k"), check_aligned(v, "v");
    check_strides(d);
    if (attention_hopper_applies(d->hd)) {
        attention_hopper_forward(act(o), lse, act(q), act(k), act(v), d);
        return;
    }
    with_head_dim(d->hd, [&](auto hd) {
        forward_hd<decltype(hd)::value>(act(o), lse, act(q), act(k), act(v), d);
    });
}

void attention_backward_cuda(void *dq, void *dk, void *dv, const void *dout, const void *o,
                             const float *lse, const void *q, const void *k, const void *v,
                             const attention_dims *d, float *work)
{
    int n = d->seqs.n_seqs ? d->seqs.cu_seqlens[d->seqs.n_seqs] : 0;
    if (n == 0)
        return;
    check_aligned(q, "q"), check_aligned(k, "k"), check_aligned(v, "v");
    check_aligned(dout, "dout");
    check_strides(d);
    int rows = n * d->H;
    unsigned blocks = (unsigned)((rows + CUDA_BLOCK / DOT_LANES - 1) / (CUDA_BLOCK / DOT_LANES));
    int *turns = attention_hopper_turns(work, n, d->H, d->hd);
    if (vectorizable(d->hd, dout, o))
        launch_kernel(row_dots<ACT_VEC>, blocks, CUDA_BLOCK, 0, work, turns, act(dout), act(o), rows, d->hd);
    else
        launch_kernel(row_dots<1>, blocks, CUDA_BLOCK, 0, work, turns, act(dout), act(o), rows, d->hd);
    bool turned = false;
    if (attention_hopper_applies(d->hd))
        turned = attention_hopper_backward(act(dq), act(dk), act(dv), act(dout), lse, work, act(q), act(k),
                                           act(v), d);
    else
        with_head_dim(d->hd, [&](auto hd) {
            backward_hd<decltype(hd)::value>(act(dq), act(dk), act(dv), act(dout), lse, work, act(q),
                                             act(k), act(v), d);
        });
    if (d->rotary_rd && !turned) { /* in place: the rotation's transpose */
        rotary_backward_cuda(dq, dq, &d->seqs, d->H, d->hd, d->rotary_rd, d->rotary_base, attention_q_stride(d));
        rotary_backward_cuda(dk, dk, &d->seqs, d->Hkv, d->hd, d->rotary_rd, d->rotary_base, attention_kv_stride(d));
    }
}
