/* Causal softmax attention on Hopper (sm_90a), head dims 64 and 128: the
 * portable kernels' algorithm and results (attention_cuda.cu's opening
 * comment: the forward's online softmax; a dk/dv kernel walking query tiles
 * and a dq kernel walking key tiles, so that the backward is deterministic
 * without atomics) with warpgroup products (kernels/wgmma.cuh) in place of
 * mma.sync and the tensor memory accelerator (kernels/tma.cuh) in place of
 * cp.async. At head dim 64 the backward is one kernel instead, which sums dq
 * in a fixed order (its section below); head dim 128 leaves it neither the
 * shared memory nor the registers.
 *
 * The kernels are persistent: a block per SM (or per cell when there are
 * fewer) takes grid_of's cells (attention_math.cuh's query_rows, laid from
 * each sequence's end, and key_rows)
 * one after another from a dispenser, y-major, so that the longest walks go
 * first and a block that finishes early takes the next; a cell's loads
 * overlap the end of the one before (at T = 1024 a cell is a few
 * microseconds of products, and a block started afresh would wait for its
 * first tiles each time).
 *
 * A block is three warpgroups (four in the forward at head dim 64, its cells
 * 192 rows). The first is the producer: one thread copies
 * each cell's own rows, as soon as the consumers have made their last product
 * from the cell before's, and then the tiles of its walk into a ring of
 * STAGES buffers, each as soon as the consumers have handed it back; the
 * ring's uses count on from cell to cell. The others are consumers: each owns 64 of
 * the block's 128 rows (queries in the forward and dq kernels, keys in the
 * dk/dv kernel) and makes its products 64 rows at a time from the swizzled
 * tiles; they wait for a buffer, work, and hand it back, each at its own pace
 * (no block-wide barrier in the walk), so that one's softmax runs beside the
 * other's products. A consumer skips a tile none of its rows sees; masks and
 * the softmax are per warp as in the portable kernels (the accumulators'
 * layout is the same). Rows past a sequence's end are copied like any
 * (another sequence's rows, zeros past the tensor): they are never stored,
 * and the masks give them no weight, as in the portable kernels. */
#include "attention_hopper.h"
#include "attention_math.cuh"
#include "tma.cuh"

#define WG_ROWS 64     /* rows of a consumer's products */
#define BLOCK_ROWS 128 /* two consumers */
#define THREADS 384    /* the producer and two consumers */
#define CONSUMER_WARPS 8
/* registers per thread after the split: 128·40 + 256·232 = 64512, all the
 * block is launched with (384 threads at the launch bound's 168: a
 * consumer's setmaxnreg.inc waits until the producer has given back enough,
 * so a split asking more never starts). ptxas -v reports the 168, but
 * allocates each side's code up to its count here (a consumer holding 220
 * live floats compiles without spills, one holding 260 spills); the
 * producer's code must fit in 40. */
#define PRODUCER_REGS 40
#define CONSUMER_REGS 232

/* per head dim: keys of a forward tile, the forward's consumers
 * (forward_block), keys of a dq tile (the two-kernel backward's, head dim
 * 128), queries of a dk/dv tile (both backwards'), and the ring's buffers */
template <int HD> struct hopper_tiling {
    static constexpr int FWD_KEYS = 128;
    static constexpr int FWD_CONSUMERS = HD == 64 ? 3 : 2;
    static constexpr int DQ_KEYS = 64;
    static constexpr int DKDV_QUERIES = 64;
    static constexpr int STAGES = 3;
    /* buffers of the cells' own rows: two where they fit, so that the next
     * cell's land while this one's are in use */
    static constexpr int FWD_OWN = HD == 64 ? 2 : 1;
    static constexpr int BWD_OWN = 2;
};

/* the block's tiles: its dynamic shared memory from the swizzle's first period */
static __device__ __forceinline__ act_t *tiles_base(unsigned char *smem)
{
    uint32_t pad = (WGMMA_ALIGN - shared_address(smem) % WGMMA_ALIGN) % WGMMA_ALIGN;
    return reinterpret_cast<act_t *>(smem + pad);
}

/* ------------------------------------------------------------------ the ring */

/* STAGES buffers: full[s] completes when buffer s's copies have landed (and
 * the producer's arrivals are in), empty[s] when every consumer warp is done
 * with it. Use n of the block's walks (n = 0, 1, …) takes buffer n % STAGES.
 * The cells' own rows have OWN buffers, the block's cell k (k = 0, 1, …)
 * taking buffer k % OWN, with the barriers own_full (the copy, one arrival)
 * and own_empty; the producer writes which cell it is in own_cell[k % OWN]
 * (−1: none left, and no copy) before its arrival. */
template <int STAGES, int OWN> struct ring {
    uint64_t full[STAGES], empty[STAGES], own_full[OWN], own_empty[OWN];
    int own_cell[OWN];

    /* by one thread, before the block's first barrier: the consumers' warps
     * hand buffers back, and own rows with `others` more warps (release_own) */
    __device__ void init(int producer_arrivals, int consumer_warps = CONSUMER_WARPS, int others = 0)
    {
        for (int i = 0; i < OWN; i++)
            barrier_init(&own_full[i], 1), barrier_init(&own_empty[i], consumer_warps + others);
        for (int s = 0; s < STAGES; s++)
            barrier_init(&full[s], producer_arrivals), barrier_init(&empty[s], consumer_warps);
        barrier_init_fence();
    }
    /* the producer, before copying cell k's own rows: the consumers are done
     * with cell k − OWN's; the copy then completes on own_copied(k) */
    __device__ void acquire_own(int k)
    {
        if (k >= OWN)
            wait_phase(&own_empty[k % OWN], (k / OWN - 1) & 1);
    }
    __device__ uint64_t *own_copied(int k) { return &own_full[k % OWN]; }
    __device__ void wait_own(int k) { wait_phase(&own_full[k % OWN], (k / OWN) & 1); }
    /* a consumer warp, once its last product reading cell k's own rows has
     * completed (a writer warp, once it has read own_cell) */
    __device__ void release_own(int k)
    {
        if (lane_id() == 0)
            barrier_arrive(&own_empty[k % OWN]);
    }
    /* the producer, before filling use n's buffer: the consumers are done with use n − STAGES */
    __device__ void acquire(int n)
    {
        if (n >= STAGES)
            wait_phase(&empty[n % STAGES], (n / STAGES - 1) & 1);
    }
    /* a consumer, before reading use n's buffer */
    __device__ void wait(int n) { wait_phase(&full[n % STAGES], (n / STAGES) & 1); }
    /* a consumer warp, after its products on use n's buffer have completed
     * (also when it skipped the tile, after wait(n): an arrival must not count
     * for the buffer's previous use) */
    __device__ void release(int n)
    {
        if (lane_id() == 0)
            barrier_arrive(&empty[n % STAGES]);
    }
};

/* The forward's and the dq kernel's producer: key and value tiles of BN
 * rows from first_tile, `tiles` of them, of key/value head g of the sequence
 * starting at token `begin`, into the ring's buffers from use n0 */
template <int HD, int BN, int STAGES, int OWN>
static __device__ __forceinline__ void produce_key_tiles(ring<STAGES, OWN> *kv, act_t *sk, act_t *sv,
                                                         const CUtensorMap *kmap, const CUtensorMap *vmap,
                                                         int g, int begin, int first_tile, int tiles, int n0)
{
    for (int t = 0; t < tiles; t++) {
        int n = n0 + t, s = n % STAGES, token = begin + (first_tile + t) * BN;
        kv->acquire(n);
        expect_bytes(&kv->full[s], 2 * BN * HD * sizeof(act_t));
        tma_rows<BN, HD>(sk + s * BN * HD, kmap, g, token, &kv->full[s]);
        tma_rows<BN, HD>(sv + s * BN * HD, vmap, g, token, &kv->full[s]);
        barrier_arrive(&kv->full[s]);
    }
}

/* the shared memory a kernel asks for: `values` of bf16 tiles, `floats`, the
 * ring's barriers, and room to align the tiles */
template <int STAGES, int OWN> static size_t shared_bytes(size_t values, size_t floats)
{
    return values * sizeof(act_t) + floats * sizeof(float) + sizeof(ring<STAGES, OWN>) + WGMMA_ALIGN;
}

/* the cells a persistent kernel walks: grid_of's X × Y, taken y-major, or
 * (the fused backward's) x-major from the last y */
struct cells {
    int X, Y;
    __device__ int count() const { return X * Y; }
    __device__ int x(int cell) const { return cell % X; }
    __device__ int y(int cell) const { return cell / X; }
    __device__ int x_by_sequence(int cell) const { return cell / Y; }
    __device__ int y_by_sequence(int cell) const { return Y - 1 - cell % Y; }
};

/* A kernel's cells are dealt in order from a counter in global memory, as
 * the hardware deals an ordinary grid's blocks. The last block to find none
 * left sets it back to 0 for the kernel's next launch, which starts after
 * this one ends: the launches of one kernel must not overlap (the model's
 * run on one stream). */
struct dispenser {
    unsigned taken, finished;
};
static __device__ dispenser forward_cells, dkdv_cells, dq_cells, fused_cells;

/* the next cell that has rows (empty(cell) false), −1 when none is left */
template <typename Empty> static __device__ int next_cell(dispenser *d, int count, Empty empty)
{
    for (;;) {
        int cell = (int)atomicAdd(&d->taken, 1u);
        if (cell < count && !empty(cell))
            return cell;
        if (cell >= count) {
            if (atomicAdd(&d->finished, 1u) == gridDim.x - 1)
                atomicExch(&d->taken, 0u), atomicExch(&d->finished, 0u);
            return -1;
        }
    }
}

/* The forward's and the dq kernel's producer: the cells of `cells_left`
 * one after another, for each its own rows (copy_own(b, k, copied) announces
 * their bytes and starts their copies into own buffer k % OWN) and then the
 * key and value tiles of its walk; when none is left, an arrival without a
 * copy (own_cell −1) tells the consumers. */
template <int HD, int BN, int ROWS, int STAGES, int OWN, typename CopyOwn>
static __device__ __forceinline__ void produce_query_cells(ring<STAGES, OWN> *kv, dispenser *cells_left,
                                                           const attn_args &a, const cells &c, act_t *sk, act_t *sv,
                                                           const CUtensorMap *kmap, const CUtensorMap *vmap,
                                                           CopyOwn copy_own)
{
    auto empty = [&](int cell) { return query_rows<HD, ROWS, BN>(a, c.x(cell), c.y(cell), c.Y, true).empty(); };
    for (int k = 0, n0 = 0;; k++) {
        kv->acquire_own(k);
        int cell = kv->own_cell[k % OWN] = next_cell(cells_left, c.count(), empty);
        uint64_t *copied = kv->own_copied(k);
        if (cell < 0) {
            barrier_arrive(copied);
            return;
        }
        const query_rows<HD, ROWS, BN> b(a, c.x(cell), c.y(cell), c.Y, true);
        int first_tile = b.first_tile(a.window), tiles = b.end_tile() - first_tile;
        copy_own(b, k, copied);
        barrier_arrive(copied);
        produce_key_tiles<HD, BN, STAGES, OWN>(kv, sk, sv, kmap, vmap, b.g, b.begin, first_tile, tiles, n0);
        n0 += tiles;
    }
}

/* ------------------------------------------------------------------ forward */

/* a warp's scores of tile k0.. masked, scaled and through the online softmax's step */
template <int BN>
static __device__ __forceinline__ void softmax_tile(float (&s)[BN / 8][4], float (&m)[2], float (&l)[2],
                                                    float (&correction)[2], int first, int k0,
                                                    const attn_args &a)
{
    if (edge_tile(first, 16, k0, BN, a.window))
        scale_scores<true>(s, first, k0, a);
    else
        scale_scores<false>(s, first, k0, a);
    softmax_step(s, m, l, correction);
}

/* The forward's consumer: the warpgroup's 64 query rows (rows row0.. of the
 * block's Q tile, from wg_first of the sequence; the warp's from `first`)
 * over the walk's `tiles` tiles of keys from first_tile, ring uses from n0.
 * Over the tiles it sees, tile n's S = Q Kᵀ is issued with tile n − 1's
 * O += P V, so that the softmax of the one runs while the tensor cores make
 * the other; a buffer goes back to the producer once its P V is done, the Q
 * tile once the last S is. The others it only waits for and hands back. */
template <int HD, int BN, int ROWS, int STAGES, int OWN>
static __device__ __forceinline__ void forward_consumer(float (&o)[HD / 8][4], float (&m)[2], float (&l)[2],
                                                        ring<STAGES, OWN> *kv, const act_t *sq, const act_t *sk,
                                                        const act_t *sv, int row0, int wg_first, int first,
                                                        int first_tile, int tiles, int n0, int k, int len,
                                                        const attn_args &a)
{
    int lo = tiles, hi = 0; /* the tiles the warpgroup sees: [lo, hi) */
    for (int n = 0; n < tiles && wg_first < len; n++)
        if (any_visible(wg_first, WG_ROWS, (first_tile + n) * BN, BN, a.window))
            lo = min(lo, n), hi = n + 1;
    for (int n = 0; n < lo; n++)
        kv->wait(n0 + n), kv->release(n0 + n);
    if (lo < hi) {
        auto key = [&](int n) { return sk + (n0 + n) % STAGES * BN * HD; };
        auto value = [&](int n) { return sv + (n0 + n) % STAGES * BN * HD; };
        float s[BN / 8][4], correction[2];
        uint32_t p[BN / 16][4];
        kv->wait(n0 + lo);
        wgmma_fence();
        wg_product_rows<BN, HD, ROWS>(s, sq, row0, key(lo), false); /* S = Q Kᵀ */
        wgmma_commit();
        wgmma_wait<0>();
        keep(s);
        if (hi == lo + 1)
            kv->release_own(k);
        softmax_tile<BN>(s, m, l, correction, first, (first_tile + lo) * BN, a); /* o is still 0 */
        acc_to_a<BN / 8>(p, s);
        for (int n = lo + 1; n < hi; n++) {
            kv->wait(n0 + n);
            wgmma_fence();
            wg_product_rows<BN, HD, ROWS>(s, sq, row0, key(n), false); /* S = Q Kᵀ */
            wgmma_commit();
            wg_product_regs<HD, BN / 16, BN>(o, p, value(n - 1)); /* O += P V, the tile before */
            wgmma_commit();
            wgmma_wait<1>();
            keep(s);
            if (n == hi - 1)
                kv->release_own(k);
            softmax_tile<BN>(s, m, l, correction, first, (first_tile + n) * BN, a);
            wgmma_wait<0>();
            keep(o);
            keep(p);
            kv->release(n0 + n - 1);
            rescale(o, correction);
            acc_to_a<BN / 8>(p, s);
        }
        wgmma_fence();
        wg_product_regs<HD, BN / 16, BN>(o, p, value(hi - 1));
        wgmma_commit();
        wgmma_wait<0>();
        keep(o);
        keep(p);
        kv->release(n0 + hi - 1);
    } else {
        kv->release_own(k);
    }
    for (int n = max(lo, hi); n < tiles; n++)
        kv->wait(n0 + n), kv->release(n0 + n);
}

/* The forward's warpgroups: the producer and CONS consumers of 64 rows (three
 * at head dim 64, where one's softmax weighs as much as its products, so that
 * two multiply while the third exponentiates; two at 128, whose accumulators
 * take the registers), with the registers split between them */
template <int CONS> struct forward_block {
    static constexpr int ROWS = WG_ROWS * CONS, BLOCK_THREADS = 128 * (CONS + 1);
    static constexpr int PRODUCER = CONS == 3 ? 32 : PRODUCER_REGS;
    /* 128·32 + 384·160 = 65536, 512 threads at 128; at 160 ptxas spills 12 bytes of a consumer
     * (none with key tiles of 64), and the kernel still runs 11 % faster than
     * with two consumers (key tiles of 64: 4 %) */
    static constexpr int CONSUMER = CONS == 3 ? 160 : CONSUMER_REGS;
};

/* Shared: [OWN] of Q [ROWS]; K and V [STAGES][BN] swizzled rows; the ring. */
template <int HD, int BN, int CONS, int STAGES, int OWN>
static __global__ void __launch_bounds__(forward_block<CONS>::BLOCK_THREADS, 1)
    hopper_forward_kernel(act_t *o, float *lse, const __grid_constant__ CUtensorMap qmap,
                          const __grid_constant__ CUtensorMap kmap, const __grid_constant__ CUtensorMap vmap,
                          attn_args a, cells c)
{
    await_inputs();
#ifdef FLAME_WGMMA
    using block = forward_block<CONS>;
    constexpr int ROWS = block::ROWS;
    extern __shared__ unsigned char smem[];
    act_t *sq = tiles_base(smem), *sk = sq + OWN * ROWS * HD, *sv = sk + STAGES * BN * HD;
    ring<STAGES, OWN> *kv = reinterpret_cast<ring<STAGES, OWN> *>(sv + STAGES * BN * HD);
    if (threadIdx.x == 0)
        kv->init(1, 4 * CONS);
    __syncthreads();

    if (warpgroup_id() == 0) { /* the producer */
        registers_down<block::PRODUCER>();
        if (threadIdx.x != 0)
            return;
        produce_query_cells<HD, BN, ROWS>(kv, &forward_cells, a, c, sk, sv, &kmap, &vmap,
                                          [&](const query_rows<HD, ROWS, BN> &b, int k, uint64_t *copied) {
                                              expect_bytes(copied, ROWS * HD * sizeof(act_t));
                                              tma_rows<ROWS, HD>(sq + k % OWN * ROWS * HD, &qmap, b.h,
                                                                 b.begin + b.q0, copied);
                                          });
        return;
    }
    registers_up<block::CONSUMER>();
    for (int k = 0, n0 = 0;; k++) {
        kv->wait_own(k);
        int cell = kv->own_cell[k % OWN];
        if (cell < 0)
            return;
        const query_rows<HD, ROWS, BN> b(a, c.x(cell), c.y(cell), c.Y, true);
        int first_tile = b.first_tile(a.window), tiles = b.end_tile() - first_tile;
        int row0 = WG_ROWS * (warpgroup_id() - 1), wg_first = b.q0 + row0;
        int first = wg_first + 16 * warpgroup_warp(); /* the warp's first row in the sequence */
        float acc[HD / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
        forward_consumer<HD, BN, ROWS, STAGES, OWN>(acc, m, l, kv, sq + k % OWN * ROWS * HD, sk, sv, row0,
                                                    wg_first, first, first_tile, tiles, n0, k, b.len, a);
        finish_forward<HD>(o, lse, acc, m, l, first, b);
        n0 += tiles;
    }
#endif
}

/* ------------------------------------------------------------------ backward: dk, dv */

/* One query tile of QT queries from qs (their lse in log2 units and D in
 * slse, sD) for the warpgroup's 64 keys (rows row0.. of the block's K and V
 * tiles; the warp's first is `first` of the sequence); the warp's rows of dSᵀ
 * (bf16, as a product's A operand) left in da */
template <int HD, int QT>
static __device__ __forceinline__ void dkdv_tile(float (&dk)[HD / 8][4], float (&dv)[HD / 8][4],
                                                 uint32_t (&da)[QT / 16][4], const act_t *sk, const act_t *sv,
                                                 const act_t *sq, const act_t *sdo, const float *slse,
                                                 const float *sD, int row0, int first, int qs, const attn_args &a)
{
    float pt[QT / 8][4], dst[QT / 8][4];
    uint32_t pa[QT / 16][4];
    wgmma_fence();
    wg_product_rows<QT, HD, BLOCK_ROWS>(pt, sk, row0, sq, false); /* Sᵀ = K Qᵀ */
    wgmma_commit();
    wg_product_rows<QT, HD, BLOCK_ROWS>(dst, sv, row0, sdo, false); /* dPᵀ = V dOᵀ */
    wgmma_commit();
    wgmma_wait<1>();
    keep(pt);
    if (edge_tile(qs, QT, first, 16, a.window))
        transposed_probabilities<true>(pt, slse, first, qs, a);
    else
        transposed_probabilities<false>(pt, slse, first, qs, a);
    acc_to_a<QT / 8>(pa, pt);
    wgmma_fence();
    wg_product_regs<HD, QT / 16, QT>(dv, pa, sdo); /* dV += Pᵀ dO, while dSᵀ is made */
    wgmma_commit();
    wgmma_wait<1>();
    keep(dst);
    transposed_score_grads(dst, pt, sD);
    acc_to_a<QT / 8>(da, dst);
    wgmma_fence();
    wg_product_regs<HD, QT / 16, QT>(dk, da, sq); /* dK += dSᵀ Q (scaled at the end) */
    wgmma_commit();
    wgmma_wait<0>();
    keep(dv);
    keep(dk);
    keep(pa);
    keep(da);
}

/* The dk/dv kernel's producer warp for one cell: K and V as the own rows
 * (the block's cell k, its buffer acquired), then the steps' Q and dO tiles
 * and their rows' lse and D from ring use n0 */
template <int HD, int QT, int STAGES, int OWN>
static __device__ __forceinline__ void produce_query_tiles(ring<STAGES, OWN> *qs_ring, act_t *sk, act_t *sv,
                                                           act_t *sq, act_t *sdo, float *slse, float *sD,
                                                           const float *lse, const float *D,
                                                           const CUtensorMap *qmap, const CUtensorMap *domap,
                                                           const CUtensorMap *kmap, const CUtensorMap *vmap,
                                                           const key_rows<HD, BLOCK_ROWS, QT> &b, int k, int n0)
{
    int lane = lane_id();
    if (lane == 0) {
        uint64_t *copied = qs_ring->own_copied(k);
        expect_bytes(copied, 2 * BLOCK_ROWS * HD * sizeof(act_t));
        tma_rows<BLOCK_ROWS, HD>(sk + k % OWN * 2 * BLOCK_ROWS * HD, kmap, b.g, b.begin + b.k0, copied);
        tma_rows<BLOCK_ROWS, HD>(sv + k % OWN * 2 * BLOCK_ROWS * HD, vmap, b.g, b.begin + b.k0, copied);
        barrier_arrive(copied);
    }
    for (int t = 0; t < b.steps(); t++) {
        int n = n0 + t, s = n % STAGES, head = b.step_head(t), token = b.begin + b.step_start(t);
        qs_ring->acquire(n);
        if (lane == 0) {
            expect_bytes(&qs_ring->full[s], 2 * QT * HD * sizeof(act_t));
            tma_rows<QT, HD>(sq + s * QT * HD, qmap, head, token, &qs_ring->full[s]);
            tma_rows<QT, HD>(sdo + s * QT * HD, domap, head, token, &qs_ring->full[s]);
        }
        b.load_stats(slse + s * QT, sD + s * QT, lse, D, t, lane, 32);
        barrier_arrive(&qs_ring->full[s]); /* each lane after its stores */
    }
}

/* The dk/dv kernels' producer warp: the cells of `cells_left` (`count` of
 * them, cell i at x_of(i), y_of(i)) one after another, each as
 * produce_query_tiles copies it; when none is left, an arrival without a copy
 * (own_cell −1) tells the other warps. */
template <int HD, int QT, int STAGES, int OWN, typename X, typename Y>
static __device__ __forceinline__ void produce_key_cells(ring<STAGES, OWN> *qs_ring, dispenser *cells_left, X x_of,
                                                         Y y_of, int count, act_t *sk, act_t *sv, act_t *sq,
                                                         act_t *sdo, float *slse, float *sD, const float *lse,
                                                         const float *D, const CUtensorMap *qmap,
                                                         const CUtensorMap *domap, const CUtensorMap *kmap,
                                                         const CUtensorMap *vmap, const attn_args &a)
{
    auto empty = [&](int cell) { return key_rows<HD, BLOCK_ROWS, QT>(a, x_of(cell), y_of(cell)).empty(); };
    for (int k = 0, n0 = 0;; k++) {
        int cell = 0;
        if (lane_id() == 0) {
            qs_ring->acquire_own(k);
            cell = qs_ring->own_cell[k % OWN] = next_cell(cells_left, count, empty);
        }
        cell = __shfl_sync(0xffffffffu, cell, 0);
        if (cell < 0) {
            if (lane_id() == 0)
                barrier_arrive(qs_ring->own_copied(k));
            return;
        }
        const key_rows<HD, BLOCK_ROWS, QT> b(a, x_of(cell), y_of(cell));
        produce_query_tiles<HD, QT, STAGES, OWN>(qs_ring, sk, sv, sq, sdo, slse, sD, lse, D, qmap, domap, kmap, vmap,
                                                 b, k, n0);
        n0 += b.steps();
    }
}

/* The dk/dv kernels' consumer: the cells own_cell names (cell i at x_of(i),
 * y_of(i)) one after another, each walked through dkdv_tile and its dk and
 * dv stored at the end; after_tile(n, da, k_rows, row0) follows each tile n,
 * the warp's rows of its dSᵀ in da (zeros where the warpgroup skips the tile) */
template <int HD, int QT, int STAGES, int OWN, typename X, typename Y, typename AfterTile>
static __device__ __forceinline__ void dkdv_consumer(ring<STAGES, OWN> *qs_ring, act_t *dk, act_t *dv, const act_t *sk,
                                                     const act_t *sv, const act_t *sq, const act_t *sdo,
                                                     const float *slse, const float *sD, X x_of, Y y_of,
                                                     const attn_args &a, AfterTile after_tile)
{
    for (int k = 0, n0 = 0;; k++) {
        qs_ring->wait_own(k);
        int cell = qs_ring->own_cell[k % OWN];
        if (cell < 0)
            return;
        const key_rows<HD, BLOCK_ROWS, QT> b(a, x_of(cell), y_of(cell));
        int row0 = WG_ROWS * (warpgroup_id() - 1), wg_first = b.k0 + row0;
        int first = wg_first + 16 * warpgroup_warp(); /* the warp's first key in the sequence */
        float dk_acc[HD / 8][4] = {}, dv_acc[HD / 8][4] = {};
        const act_t *k_rows = sk + k % OWN * 2 * BLOCK_ROWS * HD, *v_rows = sv + k % OWN * 2 * BLOCK_ROWS * HD;
        for (int t = 0; t < b.steps(); t++) {
            int n = n0 + t, s = n % STAGES, qs = b.step_start(t);
            qs_ring->wait(n);
            uint32_t da[QT / 16][4] = {};
            if (wg_first < b.len && any_visible(qs, QT, wg_first, WG_ROWS, a.window))
                dkdv_tile<HD, QT>(dk_acc, dv_acc, da, k_rows, v_rows, sq + s * QT * HD, sdo + s * QT * HD,
                                  slse + s * QT, sD + s * QT, row0, first, qs, a);
            qs_ring->release(n);
            after_tile(n, da, k_rows, row0);
        }
        qs_ring->release_own(k);
        if (first < b.len) {
            size_t at = b.kv_row_at(first);
            turn_back_rows(dk_acc, a.turn, first, b.len - first);
            store_rows(dk + at, b.kv_stride, b.len - first, dk_acc, a.scale);
            store_rows(dv + at, b.kv_stride, b.len - first, dv_acc, 1.0f);
        }
        n0 += b.steps();
    }
}

/* Shared: [OWN] of K, V [128]; Q, dO [STAGES][QT] swizzled rows; lse, D
 * [STAGES][QT] floats; the ring. The producer's whole warp writes lse and D, so a
 * buffer's full barrier counts 32 arrivals. */
template <int HD, int QT, int STAGES, int OWN>
static __global__ void __launch_bounds__(THREADS, 1)
    hopper_dkdv_kernel(act_t *dk, act_t *dv, const float *lse, const float *D,
                       const __grid_constant__ CUtensorMap qmap, const __grid_constant__ CUtensorMap domap,
                       const __grid_constant__ CUtensorMap kmap, const __grid_constant__ CUtensorMap vmap,
                       attn_args a, cells c)
{
    await_inputs();
#ifdef FLAME_WGMMA
    extern __shared__ unsigned char smem[];
    act_t *sk = tiles_base(smem), *sv = sk + BLOCK_ROWS * HD, *sq = sk + OWN * 2 * BLOCK_ROWS * HD;
    act_t *sdo = sq + STAGES * QT * HD;
    float *slse = reinterpret_cast<float *>(sdo + STAGES * QT * HD), *sD = slse + STAGES * QT;
    ring<STAGES, OWN> *qs_ring = reinterpret_cast<ring<STAGES, OWN> *>(sD + STAGES * QT);
    if (threadIdx.x == 0)
        qs_ring->init(32);
    __syncthreads();

    if (warpgroup_id() == 0) { /* the producer */
        registers_down<PRODUCER_REGS>();
        if (threadIdx.x < 32)
            produce_key_cells<HD, QT, STAGES, OWN>(qs_ring, &dkdv_cells, [&](int cell) { return c.x(cell); },
                                                   [&](int cell) { return c.y(cell); }, c.count(), sk, sv, sq, sdo,
                                                   slse, sD, lse, D, &qmap, &domap, &kmap, &vmap, a);
        return;
    }
    registers_up<CONSUMER_REGS>();
    dkdv_consumer<HD, QT, STAGES, OWN>(qs_ring, dk, dv, sk, sv, sq, sdo, slse, sD, [&](int cell) { return c.x(cell); },
                                       [&](int cell) { return c.y(cell); }, a,
                                       [](int, const uint32_t(&)[QT / 16][4], const act_t *, int) {});
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
    wg_product_rows<BN, HD, BLOCK_ROWS>(p, sq, row0, sk, false); /* S = Q Kᵀ */
    wgmma_commit();
    wg_product_rows<BN, HD, BLOCK_ROWS>(ds, sdo, row0, sv, false); /* dP = dO Vᵀ, while P is made */
    wgmma_commit();
    wgmma_wait<1>();
    keep(p);
    if (edge_tile(first, 16, k0, BN, a.window))
        probabilities<true>(p, lse2, first, k0, a);
    else
        probabilities<false>(p, lse2, first, k0, a);
    wgmma_wait<0>();
    keep(ds);
    score_grads(ds, p, Dr);
    uint32_t da[BN / 16][4];
    acc_to_a<BN / 8>(da, ds);
    wgmma_fence();
    wg_product_regs<HD, BN / 16, BN>(dq, da, sk); /* dQ += dS K (scaled at the end) */
    wgmma_commit();
    wgmma_wait<0>();
    keep(dq);
    keep(da);
}

/* Shared: [OWN] of Q, dO [128]; K, V [STAGES][BN] swizzled rows; the ring. */
template <int HD, int BN, int STAGES, int OWN>
static __global__ void __launch_bounds__(THREADS, 1)
    hopper_dq_kernel(act_t *dq, const float *lse, const float *D, const __grid_constant__ CUtensorMap qmap,
                     const __grid_constant__ CUtensorMap domap, const __grid_constant__ CUtensorMap kmap,
                     const __grid_constant__ CUtensorMap vmap, attn_args a, cells c)
{
    await_inputs();
#ifdef FLAME_WGMMA
    extern __shared__ unsigned char smem[];
    act_t *sq = tiles_base(smem), *sdo = sq + BLOCK_ROWS * HD, *sk = sq + OWN * 2 * BLOCK_ROWS * HD;
    act_t *sv = sk + STAGES * BN * HD;
    ring<STAGES, OWN> *kv = reinterpret_cast<ring<STAGES, OWN> *>(sv + STAGES * BN * HD);
    if (threadIdx.x == 0)
        kv->init(1);
    __syncthreads();

    if (warpgroup_id() == 0) { /* the producer */
        registers_down<PRODUCER_REGS>();
        if (threadIdx.x != 0)
            return;
        produce_query_cells<HD, BN, BLOCK_ROWS>(
            kv, &dq_cells, a, c, sk, sv, &kmap, &vmap,
            [&](const query_rows<HD, BLOCK_ROWS, BN> &b, int k, uint64_t *copied) {
                int token = b.begin + b.q0;
                expect_bytes(copied, 2 * BLOCK_ROWS * HD * sizeof(act_t));
                tma_rows<BLOCK_ROWS, HD>(sq + k % OWN * 2 * BLOCK_ROWS * HD, &qmap, b.h, token, copied);
                tma_rows<BLOCK_ROWS, HD>(sdo + k % OWN * 2 * BLOCK_ROWS * HD, &domap, b.h, token, copied);
            });
        return;
    }
    registers_up<CONSUMER_REGS>();
    for (int k = 0, n0 = 0;; k++) {
        kv->wait_own(k);
        int cell = kv->own_cell[k % OWN];
        if (cell < 0)
            return;
        const query_rows<HD, BLOCK_ROWS, BN> b(a, c.x(cell), c.y(cell), c.Y, true);
        int first_tile = b.first_tile(a.window), tiles = b.end_tile() - first_tile;
        int row0 = WG_ROWS * (warpgroup_id() - 1), wg_first = b.q0 + row0;
        int first = wg_first + 16 * warpgroup_warp();
        float lse2[2], Dr[2];
        b.row_stats(lse2, Dr, lse, D, first);
        float acc[HD / 8][4] = {};
        const act_t *q_rows = sq + k % OWN * 2 * BLOCK_ROWS * HD, *do_rows = sdo + k % OWN * 2 * BLOCK_ROWS * HD;
        for (int t = 0; t < tiles; t++) {
            int n = n0 + t, s = n % STAGES, k0 = (first_tile + t) * BN;
            kv->wait(n);
            if (wg_first < b.len && any_visible(wg_first, WG_ROWS, k0, BN, a.window))
                dq_tile<HD, BN>(acc, q_rows, do_rows, sk + s * BN * HD, sv + s * BN * HD, lse2, Dr, row0, first, k0, a);
            kv->release(n);
        }
        kv->release_own(k);
        if (first < b.len) {
            turn_back_rows(acc, a.turn, first, b.len - first);
            store_rows(dq + b.q_at(first), b.q_stride, b.len - first, acc, a.scale);
        }
        n0 += tiles;
    }
#endif
}

/* ------------------------------------------------------------------ backward in one kernel (head dim 64) */

/* At head dim 64 one kernel makes dk, dv and dq: the dk/dv kernel's walk (a
 * cell's 128 keys against the query tiles that see them), where each tile's
 * dS is also multiplied by the cell's keys into the tile's share of dq: five
 * products a tile pair where the two kernels make seven. A query tile's
 * shares come from every cell that sees it, in other blocks, and are summed
 * into an fp32 tensor in a fixed order, so that the sums are the same on every
 * run: first the cell holding the tile's last row, which stores its share,
 * then the cells before it one by one, each adding its own once the one after
 * it has (a turn counter per query tile and head, cleared with D by
 * row_dots, counts the shares in). A sequence's cells are dealt one after
 * another from its last: they start about together, and cell y + 1, whose
 * walk begins two query tiles further on, reaches any tile two tiles' time
 * before cell y does, so a turn has mostly come when it is wanted; and the
 * sums of the few sequences in flight stay in L2 (dealt as the dk/dv kernel
 * deals, every sequence's first cell before any second one, the adds went
 * to DRAM and the kernel ran about 17 % slower). The last share comes from
 * the first cell that sees the tile: its writer adds it, reads the sums back
 * and writes the tile's dq (a tile seen by one cell only: straight from the
 * share), so no pass over the sums follows the kernel.
 *
 * A block: the producer warp as the dk/dv kernel's; three writer warps,
 * which take the tiles' shares in turn (tile n the writer n % 3): each waits
 * for its share, then for the tile's turn, stores or adds the share (one
 * thread issuing tensor-memory writes, all 32 for the rows of a sequence's
 * last, partial tile when it is the first share, as a copy of 64 rows would
 * overwrite the next sequence's), and passes the turn on once the writes have
 * landed, or, the last share, writes dq; and the two consumers, each writing
 * its 64 rows of the tile's dSᵀ to shared memory, one of them (tile n:
 * consumer n % 2) then making the share (64 queries × 64, the depth the
 * cell's 128 keys) into an fp32 tile. */

#define WRITERS 3 /* warps 1..3 of the producer's warpgroup */

/* the barriers besides the ring's: dSᵀ's two buffers (full when both
 * consumers have written their rows, empty when the share's product has read
 * them), the shares' WRITERS tiles (full when made, empty when written out)
 * and the sums read back into a writer's tile (sums_back) */
struct share_barriers {
    uint64_t ds_full[2], ds_empty[2], share_full[WRITERS], share_empty[WRITERS], sums_back[WRITERS];

    /* by one thread, before the ring's init (whose fence covers these) */
    __device__ void init()
    {
        for (int i = 0; i < 2; i++)
            barrier_init(&ds_full[i], CONSUMER_WARPS), barrier_init(&ds_empty[i], CONSUMER_WARPS / 2);
        for (int i = 0; i < WRITERS; i++)
            barrier_init(&share_full[i], CONSUMER_WARPS / 2), barrier_init(&share_empty[i], 1),
                barrier_init(&sums_back[i], 1);
    }
};

static __device__ __forceinline__ int load_acquire(const int *p)
{
    int v;
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

static __device__ __forceinline__ void store_release(int *p, int v)
{
    asm volatile("st.release.gpu.global.b32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

/* the warp's 16 rows of dSᵀ (da, A-operand registers: keys from row r0 of
 * the tile, queries its QT = 64 columns) into a swizzled [keys, 64] bf16 tile */
template <int QT>
static __device__ __forceinline__ void store_ds_rows(act_t *tile, int r0, const uint32_t (&da)[QT / 16][4])
{
    unsigned char *base = reinterpret_cast<unsigned char *>(tile);
    int lane = lane_id();
#pragma unroll
    for (int s = 0; s < QT / 16; s++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = r0 + lane / 4 + 8 * (e % 2), c = 16 * s + 8 * (e / 2) + 2 * (lane % 4);
            *reinterpret_cast<uint32_t *>(base + r * 128 + ((c / 8) ^ (r % 8)) * 16 + c % 8 * 2) = da[s][e];
        }
}

/* a warpgroup's 64 × HD fp32 accumulator (the warp's rows from 16 · its
 * warp) into a share tile (tma.cuh's sum_tile_at layout) */
template <int QT, int HD>
static __device__ __forceinline__ void store_share(float *tile, const float (&acc)[HD / 8][4])
{
    int r0 = 16 * warpgroup_warp();
#pragma unroll
    for (int j = 0; j < HD / 8; j++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int r = r0 + acc_row(2 * half), c = 8 * j + acc_col(0);
            *reinterpret_cast<float2 *>(tile + sum_tile_at<QT>(r, c)) =
                make_float2(acc[j][2 * half], acc[j][2 * half + 1]);
        }
}

/* where a fused kernel's dq goes: dq itself, the sums and their turn counters */
struct dq_sums {
    act_t *dq;   /* rows attn_args.q_stride apart */
    float *sums; /* [tokens, H, HD] */
    int *turns;  /* [tokens, H]: the query tile starting at the token */
};

/* the first key cell whose walk reaches query tile qs, the one making the
 * tile's last share: cell y's walk ends at the tile holding row
 * 128·y + 126 + window (key_rows' last_row) */
static __device__ __forceinline__ int first_cell_seeing(int qs, int window)
{
    constexpr int REACH = BLOCK_ROWS - 2;
    return window >= qs - REACH ? 0 : (qs - REACH - window + BLOCK_ROWS - 1) / BLOCK_ROWS;
}

/* rows [0, rows) of a query tile's dq (at dq, rows `stride` apart) = scale ·
 * a share tile's, by a warp */
template <int QT, int HD>
static __device__ __forceinline__ void write_dq_rows(act_t *dq, size_t stride, const float *tile, int rows,
                                                     float scale)
{
    for (int i = lane_id(); i < rows * HD / 8; i += 32) {
        int r = i / (HD / 8), c = i % (HD / 8) * 8;
        float4 lo = *reinterpret_cast<const float4 *>(tile + sum_tile_at<QT>(r, c));
        float4 hi = *reinterpret_cast<const float4 *>(tile + sum_tile_at<QT>(r, c + 4));
        uint4 packed = {pack_bf16(scale * lo.x, scale * lo.y), pack_bf16(scale * lo.z, scale * lo.w),
                        pack_bf16(scale * hi.x, scale * hi.y), pack_bf16(scale * hi.z, scale * hi.w)};
        *reinterpret_cast<uint4 *>(dq + r * stride + c) = packed;
    }
}

/* A writer warp: the block's cells as the consumers take them (own_cell),
 * and of their tiles n those with n % WRITERS == writer. */
template <int HD, int QT, int STAGES, int OWN>
static __device__ __forceinline__ void write_shares(ring<STAGES, OWN> *qs_ring, share_barriers *sb,
                                                    float *shares, const CUtensorMap *sum_map, dq_sums out,
                                                    const attn_args &a, const cells &c, int writer)
{
    int lane = lane_id(), reads = 0;
    for (int k = 0, n0 = 0;; k++) {
        qs_ring->wait_own(k);
        int cell = qs_ring->own_cell[k % OWN];
        __syncwarp();
        qs_ring->release_own(k);
        if (cell < 0)
            return;
        const key_rows<HD, BLOCK_ROWS, QT> b(a, c.x_by_sequence(cell), c.y_by_sequence(cell));
        int y = c.y_by_sequence(cell);
        for (int t = (writer - n0 % WRITERS + WRITERS) % WRITERS; t < b.steps(); t += WRITERS) {
            int n = n0 + t, hq = b.step_head(t), qs = b.step_start(t), rows = min(QT, b.len - qs);
            int turn = (qs + rows - 1) / BLOCK_ROWS - y; /* the cells after this one that see the tile */
            bool last = y == first_cell_seeing(qs, a.window);
            int token = b.begin + qs, *counter = out.turns + (size_t)token * a.H + hq;
            float *share = shares + writer * QT * HD;
            wait_phase(&sb->share_full[writer], (n / WRITERS) & 1);
            if (lane == 0) {
                while (load_acquire(counter) != turn)
                    __nanosleep(32);
                async_view_of_global();
            }
            __syncwarp();
            if (last && turn > 0) { /* the sums with this share added, back into its tile */
                if (lane == 0) {
                    tma_sum_rows<QT, HD>(sum_map, share, hq, token, true);
                    tma_writes_wait();
                    async_view_of_global();
                    expect_bytes(&sb->sums_back[writer], QT * HD * sizeof(float));
                    tma_sum_rows_in<QT, HD>(share, sum_map, hq, token, &sb->sums_back[writer]);
                    barrier_arrive(&sb->sums_back[writer]);
                }
                wait_phase(&sb->sums_back[writer], reads++ & 1);
            }
            if (last)
                write_dq_rows<QT, HD>(out.dq + (size_t)token * a.q_stride + hq * HD, a.q_stride, share, rows,
                                      a.scale);
            else if (turn == 0 && rows < QT) { /* only the sequence's rows: the next sequence's follow */
                for (int i = lane; i < rows * HD / 4; i += 32) {
                    int r = i / (HD / 4), col = i % (HD / 4) * 4;
                    float4 v = *reinterpret_cast<const float4 *>(share + sum_tile_at<QT>(r, col));
                    __stcg(reinterpret_cast<float4 *>(out.sums + ((size_t)(b.begin + qs + r) * a.H + hq) * HD + col),
                           v);
                }
                __threadfence();
            } else if (lane == 0) {
                tma_sum_rows<QT, HD>(sum_map, share, hq, b.begin + qs, turn > 0);
                tma_writes_wait();
                async_view_of_global();
            }
            __syncwarp();
            if (lane == 0) {
                barrier_arrive(&sb->share_empty[writer]);
                if (!last) {
                    __threadfence();
                    store_release(counter, turn + 1);
                }
            }
        }
        n0 += b.steps();
    }
}

/* A consumer's tile n: its rows of dSᵀ into buffer n % 2, and on its turn
 * the tile's dq share from both consumers' rows into share tile n % WRITERS. */
template <int HD, int QT>
static __device__ __forceinline__ void make_share(share_barriers *sb, act_t *ds_tiles, float *shares,
                                                  const act_t *k_rows, const uint32_t (&da)[QT / 16][4], int n,
                                                  int row0)
{
    int p = n % 2, use = n / 2;
    act_t *ds = ds_tiles + p * BLOCK_ROWS * QT;
    if (use > 0)
        wait_phase(&sb->ds_empty[p], (use - 1) & 1);
    store_ds_rows<QT>(ds, row0 + 16 * warpgroup_warp(), da);
    async_view_of_shared();
    __syncwarp();
    if (lane_id() == 0)
        barrier_arrive(&sb->ds_full[p]);
    if (p != warpgroup_id() - 1)
        return;
    int slot = n % WRITERS;
    wait_phase(&sb->ds_full[p], use & 1);
    if (n >= WRITERS)
        wait_phase(&sb->share_empty[slot], (n / WRITERS - 1) & 1);
    float dq[HD / 8][4];
    wgmma_fence();
    wg_product_cols<HD, BLOCK_ROWS / 16, BLOCK_ROWS, BLOCK_ROWS>(dq, ds, k_rows); /* dQ = dS K, this cell's keys */
    wgmma_commit();
    wgmma_wait<0>();
    keep(dq);
    if (lane_id() == 0)
        barrier_arrive(&sb->ds_empty[p]);
    store_share<QT, HD>(shares + slot * QT * HD, dq);
    async_view_of_shared();
    __syncwarp();
    if (lane_id() == 0)
        barrier_arrive(&sb->share_full[slot]);
}

/* Shared: [OWN] of K, V [128]; Q, dO [STAGES][QT] swizzled rows; dSᵀ [2][128]
 * swizzled rows of QT; the shares [WRITERS][QT × HD] fp32; lse, D
 * [STAGES][QT] floats; the ring and the share barriers. */
template <int HD, int QT, int STAGES, int OWN>
static __global__ void __launch_bounds__(THREADS, 1)
    hopper_backward_kernel(act_t *dk, act_t *dv, dq_sums out, const float *lse, const float *D,
                           const __grid_constant__ CUtensorMap qmap, const __grid_constant__ CUtensorMap domap,
                           const __grid_constant__ CUtensorMap kmap, const __grid_constant__ CUtensorMap vmap,
                           const __grid_constant__ CUtensorMap smap, attn_args a, cells c)
{
    await_inputs();
#ifdef FLAME_WGMMA
    extern __shared__ unsigned char smem[];
    act_t *sk = tiles_base(smem), *sv = sk + BLOCK_ROWS * HD, *sq = sk + OWN * 2 * BLOCK_ROWS * HD;
    act_t *sdo = sq + STAGES * QT * HD, *sds = sdo + STAGES * QT * HD;
    float *shares = reinterpret_cast<float *>(sds + 2 * BLOCK_ROWS * QT), *slse = shares + WRITERS * QT * HD;
    float *sD = slse + STAGES * QT;
    ring<STAGES, OWN> *qs_ring = reinterpret_cast<ring<STAGES, OWN> *>(sD + STAGES * QT);
    share_barriers *sb = reinterpret_cast<share_barriers *>(qs_ring + 1);
    if (threadIdx.x == 0) {
        sb->init();
        qs_ring->init(32, CONSUMER_WARPS, WRITERS);
    }
    __syncthreads();

    auto x_of = [&](int cell) { return c.x_by_sequence(cell); };
    auto y_of = [&](int cell) { return c.y_by_sequence(cell); };
    if (warpgroup_id() == 0) {
        registers_down<PRODUCER_REGS>();
        if (threadIdx.x < 32)
            produce_key_cells<HD, QT, STAGES, OWN>(qs_ring, &fused_cells, x_of, y_of, c.count(), sk, sv, sq, sdo,
                                                   slse, sD, lse, D, &qmap, &domap, &kmap, &vmap, a);
        else
            write_shares<HD, QT, STAGES, OWN>(qs_ring, sb, shares, &smap, out, a, c, warp_id() - 1);
        return;
    }
    registers_up<CONSUMER_REGS>();
    dkdv_consumer<HD, QT, STAGES, OWN>(qs_ring, dk, dv, sk, sv, sq, sdo, slse, sD, x_of, y_of, a,
                                       [&](int n, const uint32_t(&da)[QT / 16][4], const act_t *k_rows, int row0) {
                                           make_share<HD, QT>(sb, sds, shares, k_rows, da, n, row0);
                                       });
#endif
}

/* ------------------------------------------------------------------ launches */

static int tokens_of(const attention_dims *d) { return d->seqs.cu_seqlens[d->seqs.n_seqs]; }

/* the cells of grid_of's grid, and the persistent blocks that take them: one per SM */
static cells cells_of(dim3 grid) { return {(int)grid.x, (int)grid.y}; }

static unsigned persistent_blocks(cells c)
{
    static int sms = 0;
    if (sms == 0) {
        int device;
        CUDA_CHECK(cudaGetDevice(&device));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    }
    return (unsigned)min(c.X * c.Y, sms);
}

/* the tensor maps of a call's q, k, v (rows the call's strides apart) and
 * dout (packed), each copied `rows` tokens at a time */
struct tensor_maps {
    const void *q_, *k_, *v_, *dout_;
    int n, H, Hkv, hd;
    size_t q_stride, kv_stride;

    CUtensorMap q(int rows) const { return row_map(q_, n, H, hd, q_stride, rows); }
    CUtensorMap k(int rows) const { return row_map(k_, n, Hkv, hd, kv_stride, rows); }
    CUtensorMap v(int rows) const { return row_map(v_, n, Hkv, hd, kv_stride, rows); }
    CUtensorMap dout(int rows) const { return row_map(dout_, n, H, hd, (size_t)H * hd, rows); }
};

static tensor_maps maps_of(const act_t *q, const act_t *k, const act_t *v, const act_t *dout,
                           const attention_dims *d)
{
    return tensor_maps{q, k, v, dout, tokens_of(d), d->H, d->Hkv, d->hd, attention_q_stride(d),
                       attention_kv_stride(d)};
}

template <int HD>
static void forward_hd(act_t *o, float *lse, const act_t *q, const act_t *k, const act_t *v,
                       const attention_dims *d)
{
    constexpr int BN = hopper_tiling<HD>::FWD_KEYS, STAGES = hopper_tiling<HD>::STAGES;
    constexpr int OWN = hopper_tiling<HD>::FWD_OWN, CONS = hopper_tiling<HD>::FWD_CONSUMERS;
    using block = forward_block<CONS>;
    tensor_maps m = maps_of(q, k, v, NULL, d);
    auto kernel = hopper_forward_kernel<HD, BN, CONS, STAGES, OWN>;
    size_t smem = shared_bytes<STAGES, OWN>((size_t)(OWN * block::ROWS + 2 * STAGES * BN) * HD, 0);
    allow_shared(kernel, smem);
    cells c = cells_of(grid_of(&d->seqs, d->H, block::ROWS));
    launch_kernel(kernel, persistent_blocks(c), block::BLOCK_THREADS, smem, o, lse, m.q(block::ROWS), m.k(BN), m.v(BN),
                  args_of(d), c);
}

/* the fused backward's scratch after D (n·H floats of `work`): the turn
 * counters and the sums, each from a 16-byte step */
static size_t to_16_bytes(size_t floats) { return (floats + 3) / 4 * 4; }
static bool fused_here(int hd) { return hd == 64 && attention_hopper_applies(hd); }

size_t attention_hopper_scratch_floats(int n, int H, int hd)
{
    return fused_here(hd) ? 4 + to_16_bytes((size_t)n * H) + (size_t)n * H * hd : 0;
}

int *attention_hopper_turns(float *work, int n, int H, int hd)
{
    return fused_here(hd) ? reinterpret_cast<int *>(work + to_16_bytes((size_t)n * H)) : nullptr;
}

static dq_sums sums_in(act_t *dq, float *work, int n, int H, int hd)
{
    return dq_sums{dq, work + 2 * to_16_bytes((size_t)n * H), attention_hopper_turns(work, n, H, hd)};
}

template <int HD>
static void fused_backward_hd(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse, float *work,
                              const act_t *q, const act_t *k, const act_t *v, const attention_dims *d,
                              const attn_args &a)
{
    constexpr int QT = hopper_tiling<HD>::DKDV_QUERIES, STAGES = hopper_tiling<HD>::STAGES;
    constexpr int OWN = hopper_tiling<HD>::BWD_OWN;
    int n = tokens_of(d);
    dq_sums out = sums_in(dq, work, n, d->H, HD);
    tensor_maps m = maps_of(q, k, v, dout, d);
    auto kernel = hopper_backward_kernel<HD, QT, STAGES, OWN>;
    size_t floats = (size_t)WRITERS * QT * HD + 2 * STAGES * QT + sizeof(share_barriers) / sizeof(float) + 2;
    size_t smem = shared_bytes<STAGES, OWN>((size_t)(OWN * 2 * BLOCK_ROWS + 2 * STAGES * QT) * HD +
                                                2 * BLOCK_ROWS * QT,
                                            floats);
    allow_shared(kernel, smem);
    cells c = cells_of(grid_of(&d->seqs, d->Hkv, BLOCK_ROWS));
    launch_kernel(kernel, persistent_blocks(c), THREADS, smem, dk, dv, out, lse, work, m.q(QT), m.dout(QT),
                  m.k(BLOCK_ROWS), m.v(BLOCK_ROWS), sum_map(out.sums, n, d->H, HD, QT), a, c);
}

template <int HD>
static void backward_hd(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                        const float *D, const act_t *q, const act_t *k, const act_t *v,
                        const attention_dims *d, const attn_args &a)
{
    constexpr int STAGES = hopper_tiling<HD>::STAGES, OWN = hopper_tiling<HD>::BWD_OWN;
    tensor_maps m = maps_of(q, k, v, dout, d);
    {
        constexpr int QT = hopper_tiling<HD>::DKDV_QUERIES;
        auto kernel = hopper_dkdv_kernel<HD, QT, STAGES, OWN>;
        size_t smem =
            shared_bytes<STAGES, OWN>((size_t)(OWN * 2 * BLOCK_ROWS + 2 * STAGES * QT) * HD, 2 * STAGES * QT);
        allow_shared(kernel, smem);
        cells c = cells_of(grid_of(&d->seqs, d->Hkv, BLOCK_ROWS));
        launch_kernel(kernel, persistent_blocks(c), THREADS, smem, dk, dv, lse, D, m.q(QT), m.dout(QT), m.k(BLOCK_ROWS),
                      m.v(BLOCK_ROWS), a, c);
    }
    {
        constexpr int BN = hopper_tiling<HD>::DQ_KEYS;
        auto kernel = hopper_dq_kernel<HD, BN, STAGES, OWN>;
        size_t smem = shared_bytes<STAGES, OWN>((size_t)(OWN * 2 * BLOCK_ROWS + 2 * STAGES * BN) * HD, 0);
        allow_shared(kernel, smem);
        cells c = cells_of(grid_of(&d->seqs, d->H, BLOCK_ROWS));
        launch_kernel(kernel, persistent_blocks(c), THREADS, smem, dq, lse, D, m.q(BLOCK_ROWS), m.dout(BLOCK_ROWS),
                      m.k(BN), m.v(BN), a, c);
    }
}

/* ------------------------------------------------------------------ entry points */

static bool portable_only = false;

void attention_cuda_portable_only(int on) { portable_only = on != 0; }

/* a GPU of compute capability 9.0 running this build's sm_90a code */
static bool hopper_here()
{
    static int here = -1;
    if (here < 0)
        here = wgmma_runs(hopper_forward_kernel<64, hopper_tiling<64>::FWD_KEYS, hopper_tiling<64>::FWD_CONSUMERS,
                                                hopper_tiling<64>::STAGES, hopper_tiling<64>::FWD_OWN>);
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

bool attention_hopper_backward(act_t *dq, act_t *dk, act_t *dv, const act_t *dout, const float *lse,
                               float *work, const act_t *q, const act_t *k, const act_t *v,
                               const attention_dims *d)
{
    attn_args a = args_of(d);
    if (d->rotary_rd == d->hd) /* the whole head turned: turn_back_rows' pairs are column blocks */
        a.turn = rotary_angles_cuda(transformer_longest(&d->seqs), d->hd / 2, d->rotary_base);
    if (d->hd == 128) {
        backward_hd<128>(dq, dk, dv, dout, lse, work, q, k, v, d, a);
        return a.turn != NULL;
    }
    fused_backward_hd<64>(dq, dk, dv, dout, lse, work, q, k, v, d, a);
    /* its dk is turned as the consumers store it; dq is written by the
     * writer warps, whose 40 registers spilled more with the turn there
     * (and the whole model ran 1 % slower): a pass over dq alone */
    if (a.turn)
        rotary_backward_cuda(dq, dq, &d->seqs, d->H, d->hd, d->rotary_rd, d->rotary_base, attention_q_stride(d));
    return a.turn != NULL;
}
