/* Causal softmax attention on Hopper (sm_90a), head dims 64 and 128: the
 * portable kernels' algorithm and results (attention_cuda.cu's opening
 * comment: the forward's online softmax; a dk/dv kernel walking query tiles
 * and a dq kernel walking key tiles, so that the backward is deterministic
 * without atomics) with warpgroup products (kernels/wgmma.cuh) in place of
 * mma.sync.
 *
 * A block is two warpgroups; each owns 64 rows of the block's 128 (queries in
 * the forward and dq kernels, keys in the dk/dv kernel) and makes its
 * products 64 rows at a time from shared memory, where the tiles sit in the
 * swizzled layout the products read. The walks are attention_math.cuh's
 * query_block and key_block: the next tile's copy (cp.async) is in flight
 * while the warpgroups work on the current one. A warpgroup skips a tile
 * none of its rows sees; masks and the softmax are per warp as in the
 * portable kernels (the accumulators' layout is the same). */
#include "attention_hopper.h"
#include "attention_math.cuh"
#include "wgmma.cuh"

#define WG_ROWS 64  /* rows of a warpgroup's products */
#define BLOCK_ROWS 128 /* two warpgroups */
#define THREADS 256

/* tiles per head dim: keys of a forward tile, of a dq tile, queries of a dk/dv tile */
template <int HD> struct hopper_tiling {
    static constexpr int FWD_KEYS = 128;
    static constexpr int DQ_KEYS = 64;
    static constexpr int DKDV_QUERIES = 64;
};

/* the block's tiles: its dynamic shared memory from the swizzle's first period */
static __device__ __forceinline__ act_t *tiles_base(unsigned char *smem)
{
    uint32_t pad = (WGMMA_ALIGN - shared_address(smem) % WGMMA_ALIGN) % WGMMA_ALIGN;
    return reinterpret_cast<act_t *>(smem + pad);
}

/* ------------------------------------------------------------------ forward */

/* One key tile of BN keys (from k0) for the warpgroup's 64 query rows (rows
 * row0.. of the block's Q tile; the warp's first is `first` of the sequence) */
template <int HD, int BN>
static __device__ __forceinline__ void forward_tile(float (&o)[HD / 8][4], float (&m)[2], float (&l)[2],
                                                    const act_t *sq, const act_t *sk, const act_t *sv,
                                                    int row0, int first, int k0, const attn_args &a)
{
    float s[BN / 8][4];
    wgmma_fence();
    wg_product_rows<BN, HD, BLOCK_ROWS>(s, sq, row0, sk, false); /* S = Q Kᵀ */
    wgmma_commit();
    wgmma_wait<0>();
    keep(s);
    if (edge_tile(first, 16, k0, BN, a.window))
        scale_scores<true>(s, first, k0, a);
    else
        scale_scores<false>(s, first, k0, a);
    online_softmax(s, m, l, o);
    uint32_t p[BN / 16][4];
    acc_to_a<BN / 8>(p, s);
    wgmma_fence();
    wg_product_regs<HD, BN / 16, BN>(o, p, sv); /* O += P V */
    wgmma_commit();
    wgmma_wait<0>();
    keep(o);
    keep(p);
}

/* Shared: Q [128], K and V [2][BN] swizzled rows. */
template <int HD, int BN>
static __global__ void __launch_bounds__(THREADS, 1)
    hopper_forward_kernel(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                          attn_args a)
{
#ifdef FLAME_WGMMA
    extern __shared__ unsigned char smem[];
    act_t *sq = tiles_base(smem), *sk = sq + BLOCK_ROWS * HD, *sv = sk + 2 * BN * HD;
    const query_block<HD, BLOCK_ROWS, BN, THREADS, swizzled_tiles> b(a, k, v);
    if (b.empty())
        return;
    b.load_rows(sq, q);
    b.load_kv(sk, sv, b.first_tile(a.window));
    int row0 = WG_ROWS * warpgroup_id(), wg_first = b.q0 + row0;
    int first = wg_first + 16 * warpgroup_warp(); /* the warp's first row in the sequence */
    float acc[HD / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    b.walk(sk, sv, a.window, [&](const act_t *tk, const act_t *tv, int k0) {
        if (wg_first < b.len && any_visible(wg_first, WG_ROWS, k0, BN, a.window))
            forward_tile<HD, BN>(acc, m, l, sq, tk, tv, row0, first, k0, a);
    });
    finish_forward<HD>(o, lse, acc, m, l, first, b);
#endif
}

/* ------------------------------------------------------------------ backward: dk, dv */

/* One query tile of QT queries from qs (their lse in log2 units and D in
 * slse, sD) for the warpgroup's 64 keys (rows row0.. of the block's K and V
 * tiles; the warp's first is `first` of the sequence) */
template <int HD, int QT>
static __device__ __forceinline__ void dkdv_tile(float (&dk)[HD / 8][4], float (&dv)[HD / 8][4],
                                                 const act_t *sk, const act_t *sv, const act_t *sq,
                                                 const act_t *sdo, const float *slse, const float *sD,
                                                 int row0, int first, int qs, const attn_args &a)
{
    float pt[QT / 8][4], dst[QT / 8][4];
    wgmma_fence();
    wg_product_rows<QT, HD, BLOCK_ROWS>(pt, sk, row0, sq, false);  /* Sᵀ = K Qᵀ */
    wg_product_rows<QT, HD, BLOCK_ROWS>(dst, sv, row0, sdo, false); /* dPᵀ = V dOᵀ */
    wgmma_commit();
    wgmma_wait<0>();
    keep(pt);
    keep(dst);
    if (edge_tile(qs, QT, first, 16, a.window))
        transposed_probabilities<true>(pt, slse, first, qs, a);
    else
        transposed_probabilities<false>(pt, slse, first, qs, a);
    transposed_score_grads(dst, pt, sD);
    uint32_t pa[QT / 16][4], da[QT / 16][4];
    acc_to_a<QT / 8>(pa, pt);
    acc_to_a<QT / 8>(da, dst);
    wgmma_fence();
    wg_product_regs<HD, QT / 16, QT>(dv, pa, sdo); /* dV += Pᵀ dO */
    wg_product_regs<HD, QT / 16, QT>(dk, da, sq);  /* dK += dSᵀ Q (scaled at the end) */
    wgmma_commit();
    wgmma_wait<0>();
    keep(dv);
    keep(dk);
    keep(pa);
    keep(da);
}

/* Shared: K, V [128]; Q, dO [2][QT] swizzled rows; lse, D [2][QT] floats. */
template <int HD, int QT>
static __global__ void __launch_bounds__(THREADS, 1)
    hopper_dkdv_kernel(act_t *dk, act_t *dv, const act_t *dout, const float *lse, const float *D,
                       const act_t *q, const act_t *k, const act_t *v, attn_args a)
{
#ifdef FLAME_WGMMA
    extern __shared__ unsigned char smem[];
    act_t *sk = tiles_base(smem), *sv = sk + BLOCK_ROWS * HD, *sq = sv + BLOCK_ROWS * HD;
    act_t *sdo = sq + 2 * QT * HD;
    float *slse = reinterpret_cast<float *>(sdo + 2 * QT * HD), *sD = slse + 2 * QT;
    const key_block<HD, BLOCK_ROWS, QT, THREADS, swizzled_tiles> b(a, q, dout, lse, D);
    if (b.empty())
        return;
    b.load_keys(sk, sv, k, v);
    int row0 = WG_ROWS * warpgroup_id(), wg_first = b.k0 + row0;
    int first = wg_first + 16 * warpgroup_warp(); /* the warp's first key in the sequence */
    float dk_acc[HD / 8][4] = {}, dv_acc[HD / 8][4] = {};
    b.walk(sq, sdo, slse, sD, [&](const act_t *tq, const act_t *tdo, const float *tl, const float *tD, int qs) {
        if (wg_first < b.len && any_visible(qs, QT, wg_first, WG_ROWS, a.window))
            dkdv_tile<HD, QT>(dk_acc, dv_acc, sk, sv, tq, tdo, tl, tD, row0, first, qs, a);
    });
    if (first >= b.len)
        return;
    size_t at = b.kv_row_at(first);
    store_rows<true>(dk + at, b.kv_stride, b.len - first, dk_acc, a.scale);
    store_rows<true>(dv + at, b.kv_stride, b.len - first, dv_acc, 1.0f);
#endif
}

/* ------------------------------------------------------------------ backward: dq */

/* One key tile of BN keys from k0 for the warpgroup's 64 query rows (rows
 * row0.. of the block's Q and dO tiles), whose lse (log2 units) and D are
 * lse2, Dr */
template <int HD, int BN>
static __device__ __forceinline__ void dq_tile(float (&dq)[HD / 8][4], const act_t *sq, const act_t *sdo,
                                               const act_t *sk, const act_t *sv, const float (&lse2)[2],
                                               const float (&Dr)[2], int row0, int first, int k0,
                                               const attn_args &a)
{
    float p[BN / 8][4], ds[BN / 8][4];
    wgmma_fence();
    wg_product_rows<BN, HD, BLOCK_ROWS>(p, sq, row0, sk, false);   /* S = Q Kᵀ */
    wg_product_rows<BN, HD, BLOCK_ROWS>(ds, sdo, row0, sv, false); /* dP = dO Vᵀ */
    wgmma_commit();
    wgmma_wait<0>();
    keep(p);
    keep(ds);
    if (edge_tile(first, 16, k0, BN, a.window))
        score_grads<true>(ds, p, lse2, Dr, first, k0, a);
    else
        score_grads<false>(ds, p, lse2, Dr, first, k0, a);
    uint32_t da[BN / 16][4];
    acc_to_a<BN / 8>(da, ds);
    wgmma_fence();
    wg_product_regs<HD, BN / 16, BN>(dq, da, sk); /* dQ += dS K (scaled at the end) */
    wgmma_commit();
    wgmma_wait<0>();
    keep(dq);
    keep(da);
}

/* Shared: Q, dO [128]; K, V [2][BN] swizzled rows. */
template <int HD, int BN>
static __global__ void __launch_bounds__(THREADS, 1)
    hopper_dq_kernel(act_t *dq, const act_t *dout, const float *lse, const float *D, const act_t *q,
                     const act_t *k, const act_t *v, attn_args a)
{
#ifdef FLAME_WGMMA
    extern __shared__ unsigned char smem[];
    act_t *sq = tiles_base(smem), *sdo = sq + BLOCK_ROWS * HD, *sk = sdo + BLOCK_ROWS * HD;
    act_t *sv = sk + 2 * BN * HD;
    const query_block<HD, BLOCK_ROWS, BN, THREADS, swizzled_tiles> b(a, k, v);
    if (b.empty())
        return;
    b.load_rows(sq, q);
    b.load_rows(sdo, dout);
    b.load_kv(sk, sv, b.first_tile(a.window));
    int row0 = WG_ROWS * warpgroup_id(), wg_first = b.q0 + row0;
    int first = wg_first + 16 * warpgroup_warp();
    float lse2[2], Dr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = first + acc_row(2 * r);
        lse2[r] = i < b.len ? lse[b.head_row(i)] * LOG2E : INFINITY; /* p = 0 past the end */
        Dr[r] = i < b.len ? D[b.head_row(i)] : 0.0f;
    }
    float acc[HD / 8][4] = {};
    b.walk(sk, sv, a.window, [&](const act_t *tk, const act_t *tv, int k0) {
        if (wg_first < b.len && any_visible(wg_first, WG_ROWS, k0, BN, a.window))
            dq_tile<HD, BN>(acc, sq, sdo, tk, tv, lse2, Dr, row0, first, k0, a);
    });
    if (first < b.len)
        store_rows<true>(dq + b.row_at(first), b.q_stride, b.len - first, acc, a.scale);
#endif
}

/* ------------------------------------------------------------------ launches */

/* bytes of dynamic shared memory for `tiles` values of bf16 tiles and `floats`
 * more, with room to align the tiles */
static size_t shared_bytes(size_t tiles, size_t floats)
{
    return tiles * sizeof(act_t) + floats * sizeof(float) + WGMMA_ALIGN;
}

template <int HD>
static void forward_hd(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                       const attention_dims *d)
{
    constexpr int BN = hopper_tiling<HD>::FWD_KEYS;
    auto kernel = hopper_forward_kernel<HD, BN>;
    size_t smem = shared_bytes((size_t)(BLOCK_ROWS + 4 * BN) * HD, 0);
    allow_shared(kernel, smem);
    kernel<<<grid_of(&d->seqs, d->H, BLOCK_ROWS), THREADS, smem>>>(o, lse, q, k, v, args_of(d));
    CUDA_CHECK_LAUNCH();
}

template <int HD>
static void backward_hd(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                        const float *D, const act_t *q, const act_t *k, const act_t *v,
                        const attention_dims *d)
{
    attn_args a = args_of(d);
    {
        constexpr int QT = hopper_tiling<HD>::DKDV_QUERIES;
        auto kernel = hopper_dkdv_kernel<HD, QT>;
        size_t smem = shared_bytes((size_t)(2 * BLOCK_ROWS + 4 * QT) * HD, 4 * QT);
        allow_shared(kernel, smem);
        kernel<<<grid_of(&d->seqs, d->Hkv, BLOCK_ROWS), THREADS, smem>>>(dk, dv, dout, lse, D, q, k, v, a);
        CUDA_CHECK_LAUNCH();
    }
    {
        constexpr int BN = hopper_tiling<HD>::DQ_KEYS;
        auto kernel = hopper_dq_kernel<HD, BN>;
        size_t smem = shared_bytes((size_t)(2 * BLOCK_ROWS + 4 * BN) * HD, 0);
        allow_shared(kernel, smem);
        kernel<<<grid_of(&d->seqs, d->H, BLOCK_ROWS), THREADS, smem>>>(dq, dout, lse, D, q, k, v, a);
        CUDA_CHECK_LAUNCH();
    }
}

/* ------------------------------------------------------------------ entry points */

static bool portable_only = false;

void attention_cuda_portable_only(int on) { portable_only = on != 0; }

/* a GPU of compute capability 9.0 running this build's sm_90a code (a build
 * without it has the kernels empty, compiled for other GPUs) */
static bool hopper_here()
{
    static int here = -1;
    if (here < 0) {
        int device, major, minor;
        cudaFuncAttributes attributes;
        here = cudaGetDevice(&device) == cudaSuccess &&
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
               cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess &&
               major == 9 && minor == 0 &&
               cudaFuncGetAttributes(&attributes, hopper_forward_kernel<64, 128>) == cudaSuccess &&
               attributes.binaryVersion == 90;
        cudaGetLastError(); /* a kernel without an image here is an answer, not an error */
    }
    return here == 1;
}

bool attention_hopper_applies(int hd) { return !portable_only && (hd == 64 || hd == 128) && hopper_here(); }

void attention_hopper_forward(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                              const attention_dims *d)
{
    if (d->hd == 64)
        forward_hd<64>(o, lse, q, k, v, d);
    else
        forward_hd<128>(o, lse, q, k, v, d);
}

void attention_hopper_backward(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                               const float *D, const act_t *q, const act_t *k, const act_t *v,
                               const attention_dims *d)
{
    if (d->hd == 64)
        backward_hd<64>(dq, dk, dv, dout, lse, D, q, k, v, d);
    else
        backward_hd<128>(dq, dk, dv, dout, lse, D, q, k, v, d);
}
