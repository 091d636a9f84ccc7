/* The gated linear recurrence of GLA on the GPU, in chunks of GLA_CHUNK = 64
 * tokens, its products on the tensor cores: the approach of fla's chunk GLA,
 * with the math and semantics of gla_recurrence_cpu.c (per head and sequence,
 * S_t = diag(e^{gk_t}) S_{t−1} + k_tᵀ v_t, o_t = scale · q_t S_t, the state 0
 * at each sequence's start).
 *
 * The math. A chunk of L tokens of one head starts from the state S0 (0 at a
 * sequence's start). With b_t = Σ gk from the chunk's start to t (per key
 * column) and b_L the chunk's last:
 *     o_t   = scale·(q_t ⊙ e^{b_t}) S0 + Σ_{u≤t} A_tu v_u,  A_tu = scale·Σ_i q_ti k_ui e^{b_ti − b_ui}
 *     S_end = diag(e^{b_L}) S0 + Σ_u (k_u ⊙ e^{b_L − b_u})ᵀ v_u
 * Backward, with dS = ∂L/∂S_end (0 at a sequence's end) and dA_tu = scale·do_t·v_u:
 *     ∂L/∂S0 = diag(e^{b_L}) dS + scale·Σ_t (q_t ⊙ e^{b_t})ᵀ do_t    (= dS of the chunk before)
 *     dv_u   = Σ_{t≥u} A_tu do_t + (k_u ⊙ e^{b_L − b_u}) dS
 *     dq_ti  = scale·e^{b_ti} (do_t S0ᵀ)_i + Σ_{u≤t} dA_tu k_ui e^{b_ti − b_ui}
 *     dk_ui  = Σ_{t≥u} dA_tu q_ti e^{b_ti − b_ui} + e^{b_Li − b_ui} (v_u dSᵀ)_i
 *     ∂L/∂b_t = q_t ⊙ dq_t − k_t ⊙ dk_t, and for b_L (which S_end also holds)
 *               e^{b_L} ⊙ rowsum(S0 ⊙ dS) + Σ_u k_u ⊙ (the dS part of dk_u) more
 *     dgk_t  = Σ_{t' ≥ t in the chunk} ∂L/∂b_t'   (b is a running sum of gk)
 *
 * Why nothing overflows. Gates are log-sigmoids, gk ≤ 0, so b never increases
 * along a chunk and e^{later b − earlier b} ≤ 1. Every factor formed here is of
 * that kind: e^{b_t} and e^{b_L − b_u} for the boundary states, and inside the
 * chunk a product through a reference token m between the two, 16-token
 * sub-chunks apart:
 *     e^{b_t − b_u} = e^{b_t − b_m} · e^{b_m − b_u}    for u ≤ m ≤ t,
 * so q̃_t = q_t e^{b_t − b_m} and k̃_u = k_u e^{b_m − b_u} are bounded by q and k
 * and A between sub-chunks is the plain product q̃ k̃ᵀ (likewise dq and dk from
 * dA). Within a 16-token sub-chunk no token lies between every pair, so those
 * terms are summed one by one in fp32, each exponent ≤ 0 on its own. Strong
 * gates only underflow factors to 0, which their true values are close to.
 *
 * Precision. Activations (q, k, v, gk, o and their gradients) are bf16 in
 * memory; b is fp32. The states at chunk starts (`checkpoints`) and dS are
 * kept in bf16, as fla keeps its h: the products read them as bf16 operands
 * anyway, and the one fp32 use, rowsum(S0 ⊙ dS) in dgk, sums a dv-long row of
 * bf16 roundings. Products run on the tensor cores (mma.sync m16n8k16: bf16
 * operands, fp32 accumulation); the scaled operands above are rounded to bf16
 * as fla does, except in the walks over the chunks, where the carried states
 * (fp32 in registers) take their operand as a bf16 pair hi + lo, about fp32's
 * precision, since their error would grow chunk by chunk. b is kept in units
 * of log2 so every exponential is one ex2 instruction.
 *
 * Kernels. (1) The table of chunks; (2) A per (chunk, head), kept in bf16,
 * and b on the way (a call with o NULL, which makes the checkpoints alone,
 * runs a kernel for b instead and then (3) only; so does a backward whose
 * caller kept the forward's A, gla_recurrence_dims.scores, and (3) forward
 * first where it makes the checkpoints again); (3) the walk over each
 * sequence's chunks, per (sequence, head, 64×128 state tile): forward it
 * stores the state at each chunk start but a sequence's first in
 * `checkpoints` (the CPU's layout), backward dS at each chunk end but a
 * sequence's last in `work`; forward (4) o per (chunk, head, value tile);
 * backward (4) dv per (chunk, head, value tile), the same kernel as o
 * (chunk_values), and (5) dA, dq, dk, dgk per (chunk, head, key tile). (2)
 * and the kernel for b also leave in `work` the operands P that (3) and (4)
 * multiply (operand_pair), made once a chunk.
 *
 * Speed. The kernels are bound by memory latency, not by the tensor cores.
 * So the walks stream their chunks through shared memory with cp.async, two
 * chunks loading while one is multiplied, chunk_dqk its value columns two
 * steps ahead and chunk_scores the next key tile the same way; chunk_values
 * holds what it loads in registers, so that all of a tile's loads are in
 * flight before any is waited for, and fits four blocks on an SM (a version
 * with every key tile in flight by cp.async, two blocks an SM, was slower:
 * bound by L2); what several blocks would each make from the same inputs
 * (the operand P of the walks, of o and of dv: each walk's two value tiles
 * and each of four value tiles of o and dv made it from q or k and b) is
 * made once, by chunk_scores or chunk_gate_sums, which hold those tiles
 * anyway; each gradient value is written once, by the block that sums it
 * (no zero-fill, no read of old values); and the blocks of one chunk's
 * tiles are launched next to each other, so that the operands they share
 * come from L2.
 *
 * No atomics, and every sum is taken in an order fixed by the shapes: results
 * are the same run to run.
 *
 * Rows: q, k, v and their gradients may be column blocks of a joined
 * projection's output (gla.h), a token's heads qk_stride (q, k, dq, dk) or
 * v_stride (v, dv) values after the token before's (strided_at); gk, dgk, o,
 * dout and this file's own b and A are packed (at). */
#include <cstdint>

#include "chunk_common.cuh"
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla_cuda.h"
#include "mma_bf16.cuh"

#define CHUNK GLA_CHUNK
#define SUB 16                   /* tokens of a sub-chunk, the tensor cores' k step */
#define TILE 64                  /* key or value columns of a tile */
#define LD (TILE + 8)            /* shared row length: ldmatrix rows spread over all banks */
#define THREADS 256              /* every chunk kernel: 8 warps */
#define WALK_THREADS 512         /* the walks: 16 warps, a thread per 8 elements of a 64×64 tile */
#define WALK_COLS 128            /* value columns of a walk's state tile */
#define WALK_LD (WALK_COLS + 8)
#define WALK_STAGES 3            /* chunks in a walk's buffers: one multiplied, two loading */
#define LOG2E 1.4426950408889634f

static_assert(CHUNK == 64, "the kernels tile a chunk as 4 sub-chunks of 16 tokens");

/* The operand P of a walk's products, [n,H,dk] as the bf16 pair hi + lo
 * (about fp32's precision: see Precision); o and dv read hi alone. */
struct operand_pair {
    act_t *hi, *lo;
};

/* the CUDA recurrence's share of `work`, each part 16-byte aligned */
typedef struct work_layout {
    float *b;      /* [n,H,dk] log2(e)·(gk summed from each chunk's start) */
    act_t *A;      /* [n,H,CHUNK] bf16: row t holds A_tu for u from its chunk's start */
    operand_pair keys;    /* k ⊙ e^{b_L − b}: P of the forward walk and of dv */
    operand_pair queries; /* scale·q ⊙ e^b: P of the backward walk and of o */
    act_t *dS;     /* bf16 ∂L/∂(state at a chunk's end), in the checkpoints' layout */
    chunk *chunks; /* at most n */
} work_layout;

static work_layout carve(float *work, int n, const gla_recurrence_dims *d)
{
    size_t nH = (size_t)n * d->H;
    work_layout w;
    w.b = work;
    float *A = w.b + align4(nH * d->dk);
    w.A = reinterpret_cast<act_t *>(A);
    float *operands = A + bf16_floats(nH * CHUNK);
    act_t *P[4];
    for (int i = 0; i < 4; i++)
        P[i] = reinterpret_cast<act_t *>(operands + i * bf16_floats(nH * d->dk));
    w.keys = operand_pair{P[0], P[1]};
    w.queries = operand_pair{P[2], P[3]};
    float *dS = operands + 4 * bf16_floats(nH * d->dk);
    w.dS = reinterpret_cast<act_t *>(dS);
    w.chunks = (chunk *)(dS + bf16_floats(gla_recurrence_checkpoint_values(n, d->H, d->dk, d->dv)));
    return w;
}

size_t gla_recurrence_scores_floats_cuda(int n, int H) { return bf16_floats((size_t)n * H * CHUNK); }

size_t gla_recurrence_chunk_table_floats_cuda(int n) { return (size_t)n * (sizeof(chunk) / sizeof(float)); }

size_t gla_recurrence_work_floats_cuda(int n, int H, int dk, int dv)
{
    size_t nH = (size_t)n * H;
    return align4(nH * dk) + bf16_floats(nH * CHUNK) + 4 * bf16_floats(nH * dk) +
           bf16_floats(gla_recurrence_checkpoint_values(n, H, dk, dv)) +
           (size_t)n * (sizeof(chunk) / sizeof(float));
}

/* ------------------------------------------------------------------ the chunks */

/* the table of chunks for this batch into w->chunks: the caller's
 * (gla_recurrence_dims.chunk_table, made by the batch's first call) or made
 * in `work`; returns the number of chunks */
static int chunk_table(work_layout *w, const gla_recurrence_dims *d)
{
    if (d->chunk_table) {
        w->chunks = static_cast<chunk *>(d->chunk_table);
        if (d->chunk_table_made)
            return count_chunks(d->cu_seqlens, d->n_seqs);
    }
    return build_chunks(w->chunks, d->cu_seqlens, d->cu_seqlens_backend, d->n_seqs);
}

/* ------------------------------------------------------------------ tiles */

/* A CHUNK×TILE tile in shared memory: bf16 operands of the tensor cores, or fp32 */
typedef act_t tile_t[LD];
typedef float tile32_t[LD];

/* A thread's share of a tile: the 8 columns from 8·(threadIdx.x % 8) of rows
 * threadIdx.x / 8 and that + 32, so that a warp reads and writes whole rows */
static __device__ __forceinline__ int piece_row(int a) { return threadIdx.x / 8 + 32 * a; }
static __device__ __forceinline__ int piece_col() { return 8 * (threadIdx.x % 8); }

/* 8 neighbouring bf16 values as memory holds them: what a 16-byte load brings */
struct alignas(16) eight {
    uint32_t w[4];
};

/* a thread's share of a bf16 tile as it is loaded: 16-byte loads, coalesced
 * along rows, that nothing waits for until the piece is put in shared memory */
struct piece {
    eight x[2];
};

/* a thread's share of a tile, in fp32 */
struct values {
    float x[2][8];
};

/* whether rows at p, `stride` elements apart, take whole 8-element accesses */
static __device__ bool rows_vectorizable(const void *p, size_t stride)
{
    return stride % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

/* x = p[0..7] when vec (one 16-byte load), else p[c] for c < cols, 0 past */
static __device__ void fetch_row(eight &x, const act_t *p, int cols, bool vec)
{
    if (vec && cols >= 8) {
        x = *reinterpret_cast<const eight *>(p);
        return;
    }
#pragma unroll
    for (int q = 0; q < 4; q++) {
        x.w[q] = 0;
#pragma unroll
        for (int e = 0; e < 2; e++)
            if (2 * q + e < cols)
                x.w[q] |= (uint32_t)__bfloat16_as_ushort(p[2 * q + e]) << (16 * e);
    }
}

/* The thread's share of the tile at p (rows `stride` elements apart), 0 past
 * `rows` and `cols`. */
static __device__ void fetch(piece &f, const act_t *p, size_t stride, int rows, int cols)
{
    bool vec = rows_vectorizable(p, stride);
    int col = piece_col();
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int r = piece_row(a);
        if (r < rows)
            fetch_row(f.x[a], p + r * stride + col, cols - col, vec);
        else
            f.x[a] = eight{};
    }
}

/* the piece into its place in a tile */
static __device__ void put(tile_t *tile, const piece &f)
{
#pragma unroll
    for (int a = 0; a < 2; a++)
        *reinterpret_cast<eight *>(&tile[piece_row(a)][piece_col()]) = f.x[a];
}

/* the thread's share of a tile into p (rows `stride` elements apart): only rows < rows, columns < cols */
template <typename T>
static __device__ void store_values(T *p, size_t stride, int rows, int cols, const values &f)
{
    bool vec = rows_vectorizable(p, stride);
    int col = piece_col();
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int r = piece_row(a);
        if (r >= rows)
            continue;
        T *row = p + r * stride + col;
        if (vec && cols - col >= 8)
            store_floats<8>(row, f.x[a]);
        else
#pragma unroll
            for (int c = 0; c < 8; c++)
                if (col + c < cols)
                    from_f32(&row[c], f.x[a][c]);
    }
}

/* ------------------------------------------------------------------ the walks over the chunks */

/* one walked chunk in shared memory, as cp.async brings it */
struct walk_stage {
    tile_t hi[CHUNK], lo[CHUNK]; /* P = hi + lo: [token][key] */
    float b_last[TILE];          /* b of the chunk's last token: the decay e^{b_L} */
    act_t y[CHUNK][WALK_LD];     /* v or do: [token][value] */
};

struct walk_shared {
    walk_stage stage[WALK_STAGES];
    act_t out[TILE][WALK_LD]; /* the state in bf16 on its way to memory */
};

/* the `cols` (at most TILE) floats at p into s, by cp.async where whole
 * 16-byte pieces can go; TILE / 4 threads */
static __device__ void copy_row(float *s, const float *p, int cols)
{
    int c = 4 * threadIdx.x;
    if (c >= TILE)
        return;
    if (reinterpret_cast<uintptr_t>(p) % 16 == 0 && (c + 4 <= cols || c >= cols))
        cp_async16(&s[c], c < cols ? p + c : p, c < cols);
    else
        for (int e = 0; e < 4; e++)
            s[c + e] = c + e < cols ? p[c + e] : 0.0f;
}

/* Where a walk's tiles are whole (TILE keys and WALK_COLS values inside the
 * tensors, rows in 16-byte pieces), each thread's pieces lie at the same
 * offsets from every chunk's start: found once, so that a whole chunk's step
 * only moves its bases (copy_tile and write_tile test each piece against the
 * tensors' edges). P: a piece a thread of each of hi and lo; Y and the state
 * tile: two. The walks are bound by the instructions they issue. */
struct walk_pieces {
    static constexpr int P_ROW = TILE / 8, Y_ROW = WALK_COLS / 8, Y_PIECES = CHUNK * Y_ROW / WALK_THREADS;
    static_assert(CHUNK * P_ROW == WALK_THREADS && Y_PIECES * WALK_THREADS == CHUNK * Y_ROW, "whole pieces");
    size_t p, y[Y_PIECES], state[Y_PIECES]; /* offsets from a chunk's P, Y and state tile */
    int p_row, p_col, y_row[Y_PIECES], y_col[Y_PIECES];

    __device__ walk_pieces(size_t p_stride, size_t y_stride, int dv)
    {
        int t = threadIdx.x;
        p_row = t / P_ROW, p_col = t % P_ROW * 8;
        p = p_row * p_stride + p_col;
#pragma unroll
        for (int k = 0; k < Y_PIECES; k++) {
            int idx = t + k * WALK_THREADS;
            y_row[k] = idx / Y_ROW, y_col[k] = idx % Y_ROW * 8;
            y[k] = y_row[k] * y_stride + y_col[k];
            state[k] = (size_t)y_row[k] * dv + y_col[k]; /* the state tile's rows are dv apart */
        }
    }
};

/* the warp's 16×32 block of the state, rounded to bf16, into the walk's out tile */
static __device__ void state_to_shared(act_t (*out)[WALK_LD], const float (&S)[4][4], int m0, int n0)
{
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e += 2)
            *reinterpret_cast<__nv_bfloat162 *>(&out[m0 + acc_row(e)][n0 + 8 * j + acc_col(e)]) =
                __floats2bfloat162_rn(S[j][e], S[j][e + 1]);
}

/* Block: one (sequence, head) and one TILE×WALK_COLS (keys × values) tile of
 * its state; the tiles of one (sequence, head) are neighbours, the value tiles
 * of a key tile next to each other. Carries the state S through the sequence's
 * chunks, S = diag(e^{b_L}) S + Pᵀ Y per chunk:
 *   FORWARD:  P = k ⊙ e^{b_L − b}, Y = v, first chunk to last; the state at the
 *             start of each chunk but the first goes to `states` (checkpoints);
 *   backward: P = scale·q ⊙ e^{b}, Y = do, last chunk to first; the gradient at
 *             the end of each chunk but the last goes to `states` (dS).
 * P enters the product as the bf16 pair hi + lo (see Precision) that
 * chunk_scores or chunk_gate_sums made. The chunks come through WALK_STAGES
 * buffers by cp.async: the next two load while the tensor cores work on one.
 * Each state goes out through shared memory in whole rows (write_tile).
 * Warp w: keys 16·(w % 4).., values 32·(w / 4).. */
template <bool FORWARD>
static __global__ void __launch_bounds__(WALK_THREADS, 1)
    walk_states(act_t *states, operand_pair P, const act_t *y, size_t y_stride, const float *b, const int32_t *cu,
                int H, int dk, int dv)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    walk_shared &sh = *reinterpret_cast<walk_shared *>(shared_raw);
    int tiles_j = ceil_div(dv, WALK_COLS), tiles = tiles_j * ceil_div(dk, TILE);
    int tile = blockIdx.x % tiles, s = blockIdx.x / tiles / H, h = blockIdx.x / tiles % H;
    int i0 = tile / tiles_j * TILE, j0 = tile % tiles_j * WALK_COLS;
    int begin = cu[s], end = cu[s + 1];
    int steps = (end - begin - 1) / CHUNK; /* chunks walked through: all but one */
    int m0 = 16 * (warp_id() % 4), n0 = 32 * (warp_id() / 4);
    size_t p_stride = (size_t)H * dk;
    bool whole = dk - i0 >= TILE && dv - j0 >= WALK_COLS && dv % 8 == 0 && rows_vectorizable(P.hi, dk) &&
                 rows_vectorizable(P.lo, dk) && rows_vectorizable(y, y_stride) && rows_vectorizable(states, dv);
    const walk_pieces pieces(p_stride, y_stride, dv);
    float S[4][4] = {};

    /* the k-th chunk walked through starts at begin + CHUNK·(this) */
    auto chunk_of = [&](int k) { return FORWARD ? k : steps - k; };
    auto issue = [&](int k) { /* chunk k's tiles into its buffer */
        if (k >= steps)
            return;
        walk_stage &st = sh.stage[k % WALK_STAGES];
        int t0 = begin + CHUNK * chunk_of(k), rows = min(CHUNK, end - t0);
        size_t x = at(t0, h, H, dk) + i0, yx = strided_at(t0, h, y_stride, dv) + j0;
        copy_row(st.b_last, b + at(t0 + rows - 1, h, H, dk) + i0, dk - i0);
        if (whole && rows == CHUNK) {
            cp_async16(&st.hi[pieces.p_row][pieces.p_col], P.hi + x + pieces.p, true);
            cp_async16(&st.lo[pieces.p_row][pieces.p_col], P.lo + x + pieces.p, true);
#pragma unroll
            for (int q = 0; q < walk_pieces::Y_PIECES; q++)
                cp_async16(&st.y[pieces.y_row[q]][pieces.y_col[q]], y + yx + pieces.y[q], true);
            return;
        }
        copy_tile<false, WALK_THREADS, TILE>(st.hi, P.hi + x, p_stride, rows, dk - i0);
        copy_tile<false, WALK_THREADS, TILE>(st.lo, P.lo + x, p_stride, rows, dk - i0);
        copy_tile<false, WALK_THREADS, WALK_COLS>(st.y, y + yx, y_stride, rows, dv - j0);
    };
    pipeline<WALK_STAGES>(steps, issue, [&](int k) {
        const walk_stage &st = sh.stage[k % WALK_STAGES];
        float decay[2] = {exp2_fast(st.b_last[m0 + acc_row(0)]), exp2_fast(st.b_last[m0 + acc_row(2)])};
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                S[j][e] *= decay[e / 2];
        warp_product<4, true, true>(S, st.hi, st.y, m0, n0, 0, CHUNK);
        warp_product<4, true, true>(S, st.lo, st.y, m0, n0, 0, CHUNK);
        int t0 = begin + CHUNK * chunk_of(k), t1 = min(t0 + CHUNK, end);
        act_t *dst = states + state_at(FORWARD ? t1 : t0, h, H, dk, dv) + (size_t)i0 * dv + j0;
        state_to_shared(sh.out, S, m0, n0);
        __syncthreads();
        if (whole) {
#pragma unroll
            for (int q = 0; q < walk_pieces::Y_PIECES; q++)
                *reinterpret_cast<uint4 *>(dst + pieces.state[q]) =
                    *reinterpret_cast<const uint4 *>(&sh.out[pieces.y_row[q]][pieces.y_col[q]]);
        } else {
            write_tile<WALK_THREADS, TILE, WALK_COLS, WALK_LD>(dst, dv, dk - i0, dv - j0, sh.out);
        }
    });
}

/* ------------------------------------------------------------------ b */

static_assert(THREADS == 4 * TILE, "gate_sums: a thread per (key, quarter of the chunk)");

/* b of one CHUNK×TILE tile, in units of log2: the running sums down each key
 * column of the gates g, a tile in shared memory that is 0 past the chunk's
 * end (so b stays at the chunk's last there, as copy_tile's PAD_LAST pads it).
 * Thread (key threadIdx.x % TILE, quarter threadIdx.x / TILE) sums its 16
 * rows in order, then adds the totals of the quarters before. Ends with a
 * barrier: bs is ready. */
static __device__ void gate_sums(tile32_t *bs, const tile_t *g, float (*quarter)[TILE])
{
    int i = threadIdx.x % TILE, part = threadIdx.x / TILE, base = SUB * part;
    float run[SUB], sum = 0.0f;
#pragma unroll
    for (int t = 0; t < SUB; t++) {
        sum += to_f32(g[base + t][i]);
        run[t] = sum;
    }
    quarter[part][i] = sum;
    __syncthreads();
    float before = 0.0f;
    for (int s = 0; s < part; s++)
        before += quarter[s][i];
#pragma unroll
    for (int t = 0; t < SUB; t++)
        bs[base + t][i] = LOG2E * (before + run[t]);
    __syncthreads();
}

/* b's tile in shared memory into b (rows `stride` apart), rows < rows and columns < cols */
static __device__ void store_gate_tile(float *b, size_t stride, int rows, int cols,
                                       const tile32_t *bs)
{
    values v;
#pragma unroll
    for (int a = 0; a < 2; a++)
        load_floats<8>(v.x[a], &bs[piece_row(a)][piece_col()]);
    store_values(b, stride, rows, cols, v);
}

/* P of one key tile into `to` as the pair hi + lo (hi alone where to.lo is
 * NULL), at offset x, rows `stride` apart, rows < rows and columns < cols:
 * scale·q ⊙ e^b (x = q), or with KEYS k ⊙ e^{b_L − b} (x = k), b_L the
 * tile's last row (padded as gate_sums pads it) */
template <bool KEYS>
static __device__ void store_operand(operand_pair to, size_t offset, size_t stride, int rows, int cols,
                                     const tile_t *x, const tile32_t *bs, float scale)
{
    values hi, lo;
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int r = piece_row(a), c = piece_col();
        float xr[8], b[8], b_last[8];
        load_floats<8>(xr, &x[r][c]);
        load_floats<8>(b, &bs[r][c]);
        load_floats<8>(b_last, &bs[CHUNK - 1][c]);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float p = KEYS ? xr[j] * exp2_fast(b_last[j] - b[j]) : xr[j] * (scale * exp2_fast(b[j]));
            hi.x[a][j] = __bfloat162float(__float2bfloat16_rn(p));
            lo.x[a][j] = p - hi.x[a][j];
        }
    }
    store_values(to.hi + offset, stride, rows, cols, hi);
    if (to.lo)
        store_values(to.lo + offset, stride, rows, cols, lo);
}

/* one key tile of a chunk's gates, queries and keys: [token][key] */
struct key_tile {
    tile_t gates[CHUNK], q[CHUNK], k[CHUNK];
};

/* where a (chunk, head)'s key tiles lie: gk, b and the operands at x (rows
 * `stride` apart), q and k at xqk (rows qk_stride apart); L tokens */
struct key_rows {
    size_t x, stride, xqk, qk_stride;
    int L, dk;
    __device__ key_rows(chunk c, int h, int H, int dk_, size_t qk_stride_)
        : x(at(c.t0, h, H, dk_)), stride((size_t)H * dk_), xqk(strided_at(c.t0, h, qk_stride_, dk_)),
          qk_stride(qk_stride_), L(c.t1 - c.t0), dk(dk_)
    {
    }
};

/* the key tile at column i0 of gk, and of q and k where not NULL, into st by cp.async */
static __device__ void load_key_tile(key_tile &st, const key_rows &r, int i0, const act_t *gk, const act_t *q,
                                     const act_t *k)
{
    copy_tile<false, THREADS, TILE>(st.gates, gk + r.x + i0, r.stride, r.L, r.dk - i0);
    if (q)
        copy_tile<false, THREADS, TILE>(st.q, q + r.xqk + i0, r.qk_stride, r.L, r.dk - i0);
    if (k)
        copy_tile<false, THREADS, TILE>(st.k, k + r.xqk + i0, r.qk_stride, r.L, r.dk - i0);
}

/* b of the key tile at i0 into bs and `b`, then the walks' operands of its
 * keys and of its queries, each where its tile was loaded */
static __device__ void key_tile_gates(const key_tile &st, const key_rows &r, int i0, bool with_queries,
                                      bool with_keys, tile32_t *bs, float (*quarter)[TILE], float *b,
                                      operand_pair keys, operand_pair queries, float scale)
{
    gate_sums(bs, st.gates, quarter);
    store_gate_tile(b + r.x + i0, r.stride, r.L, r.dk - i0, bs);
    if (with_keys)
        store_operand<true>(keys, r.x + i0, r.stride, r.L, r.dk - i0, st.k, bs, scale);
    if (with_queries)
        store_operand<false>(queries, r.x + i0, r.stride, r.L, r.dk - i0, st.q, bs, scale);
}

struct gate_shared {
    key_tile in[2];
    tile32_t b[CHUNK];
    float quarter[4][TILE]; /* gate_sums' */
};

/* b alone, for a call that makes no A (chunk_scores makes b otherwise), by
 * the same gate_sums, per (chunk, head); and the walks' operands P, the
 * keys' where k is not NULL, the queries' where q is not NULL. The next key
 * tile loads (cp.async) while one is summed. */
static __global__ void __launch_bounds__(THREADS)
    chunk_gate_sums(float *b, operand_pair keys, operand_pair queries, const act_t *gk, const act_t *q,
                    const act_t *k, size_t qk_stride, const chunk *chunks, int H, int dk, float scale)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    gate_shared &sh = *reinterpret_cast<gate_shared *>(shared_raw);
    const key_rows r(chunks[blockIdx.x], blockIdx.y, H, dk, qk_stride);
    auto issue = [&](int s) {
        if (s * TILE < dk)
            load_key_tile(sh.in[s % 2], r, s * TILE, gk, q, k);
    };
    pipeline<2>(ceil_div(dk, TILE), issue, [&](int s) {
        key_tile_gates(sh.in[s % 2], r, s * TILE, q != NULL, k != NULL, sh.b, sh.quarter, b, keys, queries, scale);
    });
}

/* ------------------------------------------------------------------ within the chunks */

/* Operand tiles of the products between sub-chunks, as token m − 1 (the last
 * of sub-chunk s, m = SUB·(s + 1)) sees them: in tile s,
 *     rows u <  m: k̃_u = k_u e^{b_{m−1} − b_u}
 *     rows t ≥ m: q̃_t = q_t e^{b_t − b_{m−1}}
 * both exponents ≤ 0. A between row sub-chunk s + 1 and the earlier ones is
 * q̃ k̃ᵀ of tile s; dq and dk go through the same tiles. */
static __device__ void stage_cross_operands(tile_t (*tiles)[CHUNK], const tile_t *qs,
                                            const tile_t *ks, const tile32_t *bs)
{
    int col = piece_col();
#pragma unroll
    for (int s = 0; s < 3; s++) {
        int m = SUB * (s + 1);
#pragma unroll
        for (int a = 0; a < 2; a++) {
            int r = piece_row(a);
            bool key = r < m;
            float x[8], b_r[8], b_m[8], out[8];
            load_floats<8>(x, key ? &ks[r][col] : &qs[r][col]);
            load_floats<8>(b_r, &bs[r][col]);
            load_floats<8>(b_m, &bs[m - 1][col]);
#pragma unroll
            for (int c = 0; c < 8; c++) {
                float e = b_r[c] - b_m[c];
                out[c] = x[c] * exp2_fast(key ? -e : e);
            }
            store_floats<8>(&tiles[s][r][col], out);
        }
    }
}

/* A's terms within a sub-chunk: 136 (t, u ≤ t) pairs of each sub-chunk, one
 * by one. Thread: sub-chunk threadIdx.x / 64, the rows a and 15 − a of it
 * (a = threadIdx.x / 8 % 8) with all their 17 pairs, and the 8 keys from
 * 8·(threadIdx.x % 8) of the tile, read 16 bytes at a time; part[p] sums
 * pair p over those keys. */
#define PAIRS 17 /* (a + 1) + (16 − a) */
static __device__ void diagonal_scores(float (&part)[PAIRS], const tile_t *qs, const tile_t *ks,
                                       const tile32_t *bs)
{
    int base = SUB * (threadIdx.x / 64), a = threadIdx.x / 8 % 8, i0 = piece_col();
    int t1 = base + a, t2 = base + SUB - 1 - a;
    float q1[8], b1[8], q2[8], b2[8];
    load_floats<8>(q1, &qs[t1][i0]);
    load_floats<8>(b1, &bs[t1][i0]);
    load_floats<8>(q2, &qs[t2][i0]);
    load_floats<8>(b2, &bs[t2][i0]);
#pragma unroll
    for (int p = 0; p < PAIRS; p++) {
        bool first = p <= a; /* pairs (t1, base..t1), then (t2, base..t2) */
        int u = base + (first ? p : p - a - 1);
        float k[8], bu[8];
        load_floats<8>(k, &ks[u][i0]);
        load_floats<8>(bu, &bs[u][i0]);
#pragma unroll
        for (int c = 0; c < 8; c++)
            part[p] += (first ? q1[c] : q2[c]) * k[c] * exp2_fast((first ? b1[c] : b2[c]) - bu[c]);
    }
}

/* where diagonal_scores' pair p lies: (row, column) within the chunk */
static __device__ void diagonal_pair(int p, int *t, int *u)
{
    int base = SUB * (threadIdx.x / 64), a = threadIdx.x / 8 % 8;
    *t = p <= a ? base + a : base + SUB - 1 - a;
    *u = base + (p <= a ? p : p - a - 1);
}

struct scores_shared {
    key_tile in[2];
    union {
        tile32_t b[CHUNK];
        tile32_t A[CHUNK]; /* once b is read: A in fp32 */
    };
    tile_t cross[3][CHUNK];
    float quarter[4][TILE]; /* gate_sums' */
};

/* A_tu = scale·Σ_i q_ti k_ui e^{b_ti − b_ui} for u ≤ t (0 above), per (chunk,
 * head), into `A` in bf16; b on the way, from gk (gate_sums), into `b`, and
 * the walks' operands P of keys and queries.
 * Between sub-chunks warp w < 6 computes the 16×16 block (row sub-chunk r,
 * column sub-chunk c < r) as q̃ k̃ᵀ from tile r − 1; within them
 * diagonal_scores. The next key tile loads (cp.async) meanwhile. */
static __global__ void __launch_bounds__(THREADS, 2)
    chunk_scores(act_t *A, float *b, operand_pair keys, operand_pair queries, const act_t *q, const act_t *k,
                 size_t qk_stride, const act_t *gk, const chunk *chunks, int H, int dk, float scale)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    scores_shared &sh = *reinterpret_cast<scores_shared *>(shared_raw);
    chunk c = chunks[blockIdx.x];
    int h = blockIdx.y, L = c.t1 - c.t0, warp = warp_id();
    int r = warp < 1 ? 1 : warp < 3 ? 2 : 3, col_sub = warp - r * (r - 1) / 2;
    const key_rows rows(c, h, H, dk, qk_stride);
    float cross[2][4] = {}, part[PAIRS] = {};
    auto issue = [&](int s) {
        if (s * TILE < dk)
            load_key_tile(sh.in[s % 2], rows, s * TILE, gk, q, k);
    };
    pipeline<2>(ceil_div(dk, TILE), issue, [&](int s) {
        const key_tile &st = sh.in[s % 2];
        key_tile_gates(st, rows, s * TILE, true, true, sh.b, sh.quarter, b, keys, queries, scale);
        stage_cross_operands(sh.cross, st.q, st.k, sh.b);
        __syncthreads();
        if (warp < 6)
            warp_product<2, false, false>(cross, sh.cross[r - 1], sh.cross[r - 1], SUB * r,
                                          SUB * col_sub, 0, TILE);
        diagonal_scores(part, st.q, st.k, sh.b);
    });
    /* the partial sums of the 8 key classes, in a fixed order */
#pragma unroll
    for (int p = 0; p < PAIRS; p++)
        for (int off = 1; off < 8; off *= 2)
            part[p] += __shfl_xor_sync(0xffffffffu, part[p], off);
    __syncthreads(); /* b is read */
    if (warp < 6)
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                sh.A[SUB * r + acc_row(e)][SUB * col_sub + 8 * j + acc_col(e)] = scale * cross[j][e];
    if (threadIdx.x % 8 == 0)
#pragma unroll
        for (int p = 0; p < PAIRS; p++) {
            int t, u;
            diagonal_pair(p, &t, &u);
            sh.A[t][u] = scale * part[p];
        }
    __syncthreads();
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int t = piece_row(a);
        float row[8];
#pragma unroll
        for (int j = 0; j < 8; j++)
            row[j] = piece_col() + j <= t ? sh.A[t][piece_col() + j] : 0.0f;
        if (t < L)
            store_floats<8>(A + at(c.t0 + t, h, H, CHUNK) + piece_col(), row);
    }
}

/* ------------------------------------------------------------------ o and dv */

/* o and dv, one pass over a value tile forward and backward, from the hi
 * part of the walks' operand P (chunk_scores or chunk_gate_sums made it):
 *   forward:  o  = P S0 + A v,    P = scale·q ⊙ e^b     (no S0 at a sequence's start)
 *   backward: dv = P dS + Aᵀ do,  P = k ⊙ e^{b_L − b}   (no dS at a sequence's end)
 * Block: (chunk, head, value tile), a chunk's value tiles next to each other.
 * A and v (do) load with the first key tile of P and of the state's rows, in
 * registers. With P made once a chunk (it was made by each value tile's
 * block, from q or k and b) the blocks read 40 % less and fit four an SM
 * (loading the next key tile ahead fits three, and was slower). */
struct value_tile {
    chunk c;
    int h, j0, L; /* head, first value column, tokens of the chunk */
    __device__ value_tile(const chunk *chunks, int dv)
    {
        int tiles = ceil_div(dv, TILE);
        c = chunks[blockIdx.x / tiles];
        h = blockIdx.y, j0 = blockIdx.x % tiles * TILE, L = c.t1 - c.t0;
    }
};

/* acc += X Y over depth [k_begin, k_end), X (or with A_KM, Xᵀ) and Y put in
 * xs and ys once the previous product has read them */
template <bool A_KM>
static __device__ void staged_product(float (&acc)[4][4], tile_t *xs, tile_t *ys, const piece &x,
                                      const piece &y, int k_begin, int k_end)
{
    __syncthreads(); /* the previous tiles are read */
    put(xs, x);
    put(ys, y);
    __syncthreads();
    warp_product<4, A_KM, true>(acc, xs, ys, block_row(), block_col(), k_begin, k_end);
}

template <bool BACKWARD>
static __global__ void __launch_bounds__(THREADS, 4)
    chunk_values(act_t *out, size_t out_stride, const act_t *P_hi, const act_t *y, size_t y_stride,
                 const act_t *A, const act_t *states, const chunk *chunks, int H, int dk, int dv)
{
    await_inputs();
    __shared__ __align__(16) tile_t xs[CHUNK], ys[CHUNK];
    const value_tile t(chunks, dv);
    float acc[4][4] = {};
    piece pa, py;
    fetch(pa, A + at(t.c.t0, t.h, H, CHUNK), (size_t)H * CHUNK, t.L, CHUNK);
    fetch(py, y + strided_at(t.c.t0, t.h, y_stride, dv) + t.j0, y_stride, t.L, dv - t.j0);
    if (BACKWARD ? !t.c.last : !t.c.first) { /* through the state, a key tile at a time */
        const act_t *S = states + state_at(BACKWARD ? t.c.t1 : t.c.t0, t.h, H, dk, dv) + t.j0;
        const act_t *P = P_hi + at(t.c.t0, t.h, H, dk);
        for (int i0 = 0; i0 < dk; i0 += TILE) {
            piece pp, ps;
            fetch(pp, P + i0, (size_t)H * dk, t.L, dk - i0);
            fetch(ps, S + (size_t)i0 * dv, dv, dk - i0, dv - t.j0);
            staged_product<false>(acc, xs, ys, pp, ps, 0, TILE);
        }
    }
    int m0 = block_row();
    if (BACKWARD) /* Aᵀ do: A_tu = 0 for t < u */
        staged_product<true>(acc, xs, ys, pa, py, m0, CHUNK);
    else /* A v: A_tu = 0 for u > t */
        staged_product<false>(acc, xs, ys, pa, py, 0, m0 + SUB);
    store_acc<false>(out + strided_at(t.c.t0, t.h, out_stride, dv) + t.j0, out_stride, t.L, dv - t.j0, acc, m0,
                     block_col());
}

/* chunk_dqk's phase 1 streams the value columns through shared memory
 * DQK_COLS at a time, DQK_STAGES buffers deep: the next steps' tiles load
 * (cp.async, no registers held) while the tensor cores work on one. 64
 * columns in 2 buffers measured the same; 32 in 3 take less shared memory. */
#define DQK_COLS 32
#define DQK_STAGES 3
#define DQK_LD (DQK_COLS + 8)
typedef act_t dqk_tile_t[DQK_LD];

/* one step of phase 1: DQK_COLS value columns of do and v ([token][value])
 * and of S0 and dS ([key][value]) */
struct dqk_stage {
    dqk_tile_t dout[CHUNK], v[CHUNK], S0[TILE], dS[TILE];
};

struct dqk_shared {
    union {
        dqk_stage in[DQK_STAGES]; /* phase 1 */
        struct {
            tile_t cross[3][CHUNK]; /* stage_cross_operands' tiles */
            tile_t dA[CHUNK];
            tile32_t dA32[CHUNK];
        } mid; /* phase 2 */
        struct {
            tile32_t sums[2][CHUNK]; /* dq and dk, from their parts */
            tile32_t dgk[CHUNK];
        } last;
    };
    tile_t q[CHUNK], k[CHUNK];
    tile32_t b[CHUNK];
    float extra[TILE];        /* ∂L/∂b_L through S0 */
    float end_part[4][TILE];  /* Σ k ⊙ (dS part of dk) per sub-chunk */
    float sub_total[4][TILE]; /* Σ ∂L/∂b per sub-chunk */
};

/* One step of phase 1, the warp's 16×32 blocks of dA += do vᵀ, dq += do S0ᵀ
 * (with S0) and dk += v dSᵀ (with dS), over the step's value columns. */
static __device__ void boundary_products(float (&dA)[4][4], float (&dq)[4][4], float (&dk)[4][4],
                                         const dqk_stage &in, bool with_S0, bool with_dS)
{
    int m0 = block_row(), n0 = block_col();
#pragma unroll
    for (int k0 = 0; k0 < DQK_COLS; k0 += SUB) {
        uint32_t a_do[4], a_v[4];
        load_a<false>(a_do, in.dout, m0, k0);
        if (with_dS)
            load_a<false>(a_v, in.v, m0, k0);
#pragma unroll
        for (int p = 0; p < 2; p++) {
            uint32_t bf[4];
            load_b<false>(bf, in.v, k0, n0 + 16 * p);
            mma(dA[2 * p], a_do, bf[0], bf[1]);
            mma(dA[2 * p + 1], a_do, bf[2], bf[3]);
            if (with_S0) {
                load_b<false>(bf, in.S0, k0, n0 + 16 * p);
                mma(dq[2 * p], a_do, bf[0], bf[1]);
                mma(dq[2 * p + 1], a_do, bf[2], bf[3]);
            }
            if (with_dS) {
                load_b<false>(bf, in.dS, k0, n0 + 16 * p);
                mma(dk[2 * p], a_v, bf[0], bf[1]);
                mma(dk[2 * p + 1], a_v, bf[2], bf[3]);
            }
        }
    }
}

/* rowsum(S0 ⊙ dS) over one step's columns, in fp32: thread 4i + r sums
 * columns r·DQK_COLS/4.. of key row i */
static __device__ float state_row_dot(const dqk_stage &in)
{
    constexpr int PER = DQK_COLS / 4;
    static_assert(THREADS == 4 * TILE && PER % 8 == 0, "four threads a key row, whole 16-byte pieces");
    int i = threadIdx.x / 4, c0 = threadIdx.x % 4 * PER;
    float sum = 0.0f;
#pragma unroll
    for (int c = c0; c < c0 + PER; c += 8) {
        float s[8], g[8];
        load_floats<8>(s, &in.S0[i][c]);
        load_floats<8>(g, &in.dS[i][c]);
#pragma unroll
        for (int j = 0; j < 8; j++)
            sum += s[j] * g[j];
    }
    return sum;
}

/* dq and dk within a sub-chunk, term by term: thread (sub-chunk threadIdx.x / 64,
 * key threadIdx.x % 64) sums its key's 16 rows over the 136 pairs u ≤ t. */
static __device__ void diagonal_grads(float (&dq)[SUB], float (&dk)[SUB], const dqk_shared &sh)
{
    int base = SUB * (threadIdx.x / 64), i = threadIdx.x % 64;
    float qv[SUB], kv[SUB], bv[SUB];
#pragma unroll
    for (int t = 0; t < SUB; t++) {
        qv[t] = to_f32(sh.q[base + t][i]);
        kv[t] = to_f32(sh.k[base + t][i]);
        bv[t] = sh.b[base + t][i];
        dq[t] = dk[t] = 0.0f;
    }
#pragma unroll
    for (int t = 0; t < SUB; t++)
#pragma unroll
        for (int u = 0; u <= t; u++) {
            float d = sh.mid.dA32[base + t][base + u] * exp2_fast(bv[t] - bv[u]);
            dq[t] += d * kv[u];
            dk[u] += d * qv[t];
        }
}

/* one of dq, dk, dgk (the key tile at offset x) = its sums in shared memory,
 * over `rows` tokens and `cols` keys */
template <typename T>
static __device__ void store_grad(T *grad, const tile32_t *sums, size_t x, size_t stride, int rows,
                                  int cols)
{
    values sum;
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int c = 0; c < 8; c++)
            sum.x[a][c] = sums[piece_row(a)][piece_col() + c];
    store_values(grad + x, stride, rows, cols, sum);
}

/* dq, dk and dgk for one key tile. Block: (chunk, head, key tile), a chunk's
 * key tiles next to each other. Phase 1: dA and the boundary parts over the
 * value columns, streamed through shared memory (dqk_stage). Phase 2: the parts
 * within the chunk, between sub-chunks on the tensor cores (warps 0-3 dq of
 * row sub-chunks 1-3, warps 4-7 dk of column sub-chunks 0-2, 16 keys each) and
 * within them term by term. Last, per (sub-chunk, key) thread: ∂L/∂b and its
 * running sums from the chunk's end; then the three gradients are written. */
template <typename DQ>
static __global__ void __launch_bounds__(THREADS, 2)
    chunk_dqk(DQ *dq, act_t *dk_out, act_t *dgk, const act_t *q, const act_t *k, size_t qk_stride,
              const act_t *v, size_t v_stride, const act_t *dout, const float *b, const act_t *checkpoints,
              const act_t *dS, const chunk *chunks, int H, int dk, int dv, float scale)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    dqk_shared &sh = *reinterpret_cast<dqk_shared *>(shared_raw);
    int tiles = ceil_div(dk, TILE);
    chunk c = chunks[blockIdx.x / tiles];
    int h = blockIdx.y, i0 = blockIdx.x % tiles * TILE, L = c.t1 - c.t0, warp = warp_id();
    int m0 = block_row(), n0 = block_col();
    const act_t *S0 = c.first ? NULL : checkpoints + state_at(c.t0, h, H, dk, dv) + (size_t)i0 * dv;
    const act_t *dS_end = c.last ? NULL : dS + state_at(c.t1, h, H, dk, dv) + (size_t)i0 * dv;
    size_t xk = at(c.t0, h, H, dk) + i0, stride_k = (size_t)H * dk; /* b, dgk */
    size_t xqk = strided_at(c.t0, h, qk_stride, dk) + i0;          /* q, k, dq, dk */
    size_t xo = at(c.t0, h, H, dv), stride_o = (size_t)H * dv;      /* dout */
    size_t xv = strided_at(c.t0, h, v_stride, dv);                  /* v */

    /* phase 1; q, k and b come with its first step's tiles */
    float dA[4][4] = {}, dq_in[4][4] = {}, dk_end[4][4] = {}, row_dot = 0.0f;
    int steps = ceil_div(dv, DQK_COLS);
    auto issue = [&](int s) {
        if (s == 0) {
            copy_tile<false, THREADS, TILE>(sh.q, q + xqk, qk_stride, L, dk - i0);
            copy_tile<false, THREADS, TILE>(sh.k, k + xqk, qk_stride, L, dk - i0);
            copy_tile<true, THREADS, TILE>(sh.b, b + xk, stride_k, L, dk - i0);
        }
        if (s >= steps)
            return;
        dqk_stage &st = sh.in[s % DQK_STAGES];
        int j0 = s * DQK_COLS;
        copy_tile<false, THREADS, DQK_COLS>(st.dout, dout + xo + j0, stride_o, L, dv - j0);
        copy_tile<false, THREADS, DQK_COLS>(st.v, v + xv + j0, v_stride, L, dv - j0);
        if (S0)
            copy_tile<false, THREADS, DQK_COLS>(st.S0, S0 + j0, dv, dk - i0, dv - j0);
        if (dS_end)
            copy_tile<false, THREADS, DQK_COLS>(st.dS, dS_end + j0, dv, dk - i0, dv - j0);
    };
    pipeline<DQK_STAGES>(steps, issue, [&](int s) {
        const dqk_stage &st = sh.in[s % DQK_STAGES];
        if (S0 && dS_end)
            row_dot += state_row_dot(st);
        boundary_products(dA, dq_in, dk_end, st, S0 != NULL, dS_end != NULL);
    });
    cp_async_wait<0>(); /* q, k and b too where there were no steps */
    __syncthreads();    /* phase 1's tiles are read: phase 2's take their place */
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int t = m0 + acc_row(e), col = n0 + 8 * j + acc_col(e);
            float x = col <= t ? scale * dA[j][e] : 0.0f;
            sh.mid.dA32[t][col] = x;
            sh.mid.dA[t][col] = __float2bfloat16_rn(x);
            dq_in[j][e] *= scale * exp2_fast(sh.b[t][col]);
            dk_end[j][e] *= exp2_fast(sh.b[CHUNK - 1][col] - sh.b[t][col]);
        }
    for (int off = 1; off < 4; off *= 2)
        row_dot += __shfl_xor_sync(0xffffffffu, row_dot, off);
    if (threadIdx.x % 4 == 0) {
        int i = threadIdx.x / 4;
        sh.extra[i] = exp2_fast(sh.b[CHUNK - 1][i]) * row_dot;
    }
    stage_cross_operands(sh.mid.cross, sh.q, sh.k, sh.b);
    __syncthreads();

    /* phase 2 */
    float dq_d[SUB], dk_d[SUB];
    diagonal_grads(dq_d, dk_d, sh);
    float cross[3][2][4] = {};
    int keys = 16 * (warp % 4);
#pragma unroll
    for (int s = 0; s < 3; s++) {
        int m = SUB * (s + 1); /* tile s as token m − 1 sees it */
        if (warp < 4) /* dq_t, t ≥ m: e^{b_t − b_{m−1}} Σ_{u<m} dA_tu k̃_u */
            warp_product<2, false, true>(cross[s], sh.mid.dA, sh.mid.cross[s], m, keys, 0, m);
        else /* dk_u, u in sub-chunk s: e^{b_{m−1} − b_u} Σ_{t≥m} dA_tu q̃_t */
            warp_product<2, true, true>(cross[s], sh.mid.dA, sh.mid.cross[s], m - SUB, keys, m, CHUNK);
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = (warp < 4 ? m : m - SUB) + acc_row(e), col = keys + 8 * j + acc_col(e);
                float ex = sh.b[row][col] - sh.b[m - 1][col];
                cross[s][j][e] *= exp2_fast(warp < 4 ? ex : -ex);
            }
    }
    __syncthreads(); /* the cross tiles and dA32 are read: sums and dgk take their place */
    store_acc<false>(&sh.last.sums[0][0][0], LD, CHUNK, TILE, dq_in, m0, n0);
    store_acc<false>(&sh.last.sums[1][0][0], LD, CHUNK, TILE, dk_end, m0, n0);
    __syncthreads();
    int sub = threadIdx.x / 64, i = threadIdx.x % 64, base = SUB * sub;
    {
        float part = 0.0f;
#pragma unroll
        for (int t = 0; t < SUB; t++)
            part += to_f32(sh.k[base + t][i]) * sh.last.sums[1][base + t][i];
        sh.end_part[sub][i] = part;
    }
    __syncthreads();
#pragma unroll
    for (int s = 0; s < 3; s++) {
        int m = SUB * (s + 1);
        if (warp < 4)
            store_acc<true>(&sh.last.sums[0][0][0], LD, CHUNK, TILE, cross[s], m, keys);
        else
            store_acc<true>(&sh.last.sums[1][0][0], LD, CHUNK, TILE, cross[s], m - SUB, keys);
    }
    __syncthreads();

    /* per (sub-chunk, key): dq and dk whole in sums, and ∂L/∂b into dq_d */
    float total = 0.0f;
#pragma unroll
    for (int t = 0; t < SUB; t++) {
        int row = base + t;
        float dq_t = sh.last.sums[0][row][i] + dq_d[t], dk_t = sh.last.sums[1][row][i] + dk_d[t];
        sh.last.sums[0][row][i] = dq_t;
        sh.last.sums[1][row][i] = dk_t;
        dq_d[t] = to_f32(sh.q[row][i]) * dq_t - to_f32(sh.k[row][i]) * dk_t;
        total += dq_d[t];
    }
    sh.sub_total[sub][i] = total;
    __syncthreads();
    /* dgk_t = Σ ∂L/∂b from t to the chunk's end, which starts at b_L's extra */
    float running = sh.extra[i];
    for (int s = 0; s < 4; s++)
        running += sh.end_part[s][i];
    for (int s = 3; s > sub; s--)
        running += sh.sub_total[s][i];
#pragma unroll
    for (int t = SUB - 1; t >= 0; t--) {
        running += dq_d[t];
        sh.last.dgk[base + t][i] = running;
    }
    __syncthreads();
    store_grad(dq, sh.last.sums[0], xqk, qk_stride, L, dk - i0);
    store_grad(dk_out, sh.last.sums[1], xqk, qk_stride, L, dk - i0);
    store_grad(dgk, sh.last.dgk, xk, stride_k, L, dk - i0);
}

/* ------------------------------------------------------------------ entry points */

/* the walk over every sequence's chunks (walk_states), its states into
 * `states`: forward over the keys' operand and v, backward over the queries'
 * and do */
template <bool FORWARD>
static void walk(act_t *states, const act_t *y, size_t y_stride, const work_layout *w,
                 const gla_recurrence_dims *d)
{
    auto kernel = walk_states<FORWARD>;
    size_t bytes = allow_shared(kernel, sizeof(walk_shared));
    int tiles = ceil_div(d->dk, TILE) * ceil_div(d->dv, WALK_COLS);
    launch_kernel(kernel, d->n_seqs * d->H * tiles, WALK_THREADS, bytes, states, FORWARD ? w->keys : w->queries, y,
                  y_stride, w->b, d->cu_seqlens_backend, d->H, d->dk, d->dv);
}

/* A (into `A`), b and the walks' operands (chunk_scores); the forward
 * needs no queries' lo (its walk is the keys') */
static void scores(act_t *A, bool forward, const work_layout *w, int chunks, const void *q, const void *k,
                   const void *gk, const gla_recurrence_dims *d)
{
    size_t bytes = allow_shared(chunk_scores, sizeof(scores_shared));
    operand_pair queries = {w->queries.hi, forward ? NULL : w->queries.lo};
    launch_kernel(chunk_scores, dim3(chunks, d->H), THREADS, bytes, A, w->b, w->keys, queries, act(q), act(k),
                  gla_qk_stride(d), act(gk), w->chunks, d->H, d->dk, d->scale);
}

/* where A lies: kept by the caller (gla_recurrence_dims.scores), or in `work` */
static act_t *scores_at(const work_layout *w, const gla_recurrence_dims *d)
{
    return d->scores ? act(d->scores) : w->A;
}

/* b alone (chunk_gate_sums), for the calls that make no A, and the walks'
 * operands of q and of k where they are not NULL */
static void gate_sums_alone(const work_layout *w, int chunks, const void *gk, const void *q, const void *k,
                            const gla_recurrence_dims *d)
{
    size_t bytes = allow_shared(chunk_gate_sums, sizeof(gate_shared));
    launch_kernel(chunk_gate_sums, dim3(chunks, d->H), THREADS, bytes, w->b, w->keys, w->queries, act(gk), act(q),
                  act(k), gla_qk_stride(d), w->chunks, d->H, d->dk, d->scale);
}

void gla_recurrence_forward_cuda(void *o, void *checkpoints, const void *q, const void *k,
                                 const void *v, const void *gk, const gla_recurrence_dims *d,
                                 float *work, int n_work)
{
    (void)n_work; /* one worker: the whole batch at once */
    int n = d->cu_seqlens[d->n_seqs], H = d->H;
    if (n == 0)
        return;
    work_layout w = carve(work, n, d);
    int chunks = chunk_table(&w, d);
    size_t qk_stride = gla_qk_stride(d), v_stride = gla_v_stride(d);
    if (!o) { /* the checkpoints alone (gla.h): b, then the walk */
        gate_sums_alone(&w, chunks, gk, NULL, k, d);
        walk<true>(act(checkpoints), act(v), v_stride, &w, d);
        return;
    }
    act_t *A = scores_at(&w, d);
    scores(A, true, &w, chunks, q, k, gk, d);
    walk<true>(act(checkpoints), act(v), v_stride, &w, d);
    launch_kernel(chunk_values<false>, dim3(chunks * ceil_div(d->dv, TILE), H), THREADS, 0, act(o), (size_t)H * d->dv,
                  w.queries.hi, act(v), v_stride, A, act(checkpoints), w.chunks, H, d->dk, d->dv);
}

void gla_recurrence_backward_cuda(void *dq, void *dk, void *dv, void *dgk, const void *dout,
                                  const void *q, const void *k, const void *v, const void *gk,
                                  void *checkpoints, const gla_recurrence_dims *d,
                                  float *work, int n_work)
{
    (void)n_work;
    int n = d->cu_seqlens[d->n_seqs], H = d->H;
    if (n == 0)
        return;
    work_layout w = carve(work, n, d);
    int chunks = chunk_table(&w, d);
    size_t qk_stride = gla_qk_stride(d), v_stride = gla_v_stride(d), o_stride = (size_t)H * d->dv;
    /* b and the walks' operands, and A unless the forward kept it */
    act_t *A = scores_at(&w, d);
    if (d->scores)
        gate_sums_alone(&w, chunks, gk, q, k, d);
    else
        scores(A, false, &w, chunks, q, k, gk, d);
    if (d->remake_checkpoints)
        walk<true>(act(checkpoints), act(v), v_stride, &w, d);
    walk<false>(w.dS, act(dout), o_stride, &w, d);
    launch_kernel(chunk_values<true>, dim3(chunks * ceil_div(d->dv, TILE), H), THREADS, 0, act(dv), v_stride, w.keys.hi,
                  act(dout), o_stride, A, w.dS, w.chunks, H, d->dk, d->dv);
    dim3 grid(chunks * ceil_div(d->dk, TILE), H);
    if (d->dq_fp32) {
        size_t bytes = allow_shared(chunk_dqk<float>, sizeof(dqk_shared));
        launch_kernel(chunk_dqk<float>, grid, THREADS, bytes, static_cast<float *>(dq), act(dk), act(dgk), act(q),
                      act(k), qk_stride, act(v), v_stride, act(dout), w.b, act(checkpoints), w.dS, w.chunks, H, d->dk,
                      d->dv, d->scale);
    } else {
        size_t bytes = allow_shared(chunk_dqk<act_t>, sizeof(dqk_shared));
        launch_kernel(chunk_dqk<act_t>, grid, THREADS, bytes, act(dq), act(dk), act(dgk), act(q), act(k), qk_stride,
                      act(v), v_stride, act(dout), w.b, act(checkpoints), w.dS, w.chunks, H, d->dk, d->dv, d->scale);
    }
}

const void *gla_recurrence_state_grads_cuda(const void *q, const void *dout, const void *gk,
                                           const gla_recurrence_dims *d, float *work)
{
    int n = d->cu_seqlens[d->n_seqs];
    work_layout w = carve(work, n, d);
    if (n == 0)
        return w.dS;
    int chunks = chunk_table(&w, d);
    gate_sums_alone(&w, chunks, gk, q, NULL, d);
    walk<false>(w.dS, act(dout), (size_t)d->H * d->dv, &w, d);
    return w.dS;
}
