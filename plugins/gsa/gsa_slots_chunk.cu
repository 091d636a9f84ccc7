/* GSA's first pass on the GPU, in chunks of GLA_CHUNK = 64 tokens, its
 * products on the tensor cores: the semantics of gsa_slots_cpu.c (per head and
 * sequence, P ∈ R^{M×dk}, P_{−1} = 0, P_t = diag(e^{f_t}) P_{t−1} + s_tᵀ k_t,
 * ok_t = scale · P_t q_tᵀ).
 *
 * The math. P_t is GLA's state for keys s (M wide), values k (dk wide) and
 * gates f, so the states at the chunk starts (the checkpoints) are made by
 * GLA's walk (gla_recurrence_forward_cuda with o NULL), and the adjoint walk
 * of the backward is GLA's too (gla_recurrence_state_grads_cuda, with GLA's q
 * = dok and do = q). Only the readout differs. A chunk of L tokens of one head
 * starts from P0 (0 at a sequence's start); with b_t = Σ f from the chunk's
 * start to t (per slot m), b_L the chunk's last and A_tu = scale·q_t·k_u (a
 * plain product: no gate acts on the key side):
 *     ok_t[m] = scale·e^{b_t[m]} (q_t P0ᵀ)[m] + Σ_{u≤t} A_tu s_u[m] e^{b_t[m] − b_u[m]}
 * Backward, with dP = ∂L/∂P_end (0 at a sequence's end; the walk carries
 * dP_prev = diag(e^{b_L}) dP + scale·Σ_t (dok_t ⊙ e^{b_t})ᵀ q_t) and the gated
 * scores B_tu = Σ_m dok_t[m] s_u[m] e^{b_t[m] − b_u[m]} (u ≤ t):
 *     dq_t    = scale·(dok_t ⊙ e^{b_t}) P0 + scale·Σ_{u≤t} B_tu k_u
 *     dk_u    = scale·Σ_{t≥u} B_tu q_t + (s_u ⊙ e^{b_L − b_u}) dP
 *     ds_u[m] = Σ_{t≥u} A_tu dok_t[m] e^{b_t[m] − b_u[m]} + e^{b_L[m] − b_u[m]} (k_u dPᵀ)[m]
 *     ∂L/∂b_t = dok_t ⊙ ok_t − s_t ⊙ ds_t, and for b_L (which P_end also holds)
 *               e^{b_L} ⊙ rowsum(P0 ⊙ dP) + Σ_u s_u ⊙ (the dP part of ds_u) more
 *     df_t    = Σ_{t' ≥ t in the chunk} ∂L/∂b_t'   (b is a running sum of f)
 * (Each follows from P_t = diag(e^{b_t}) P0 + Σ_{u≤t} diag(e^{b_t − b_u}) s_uᵀ k_u
 * and P_end = P_L; the CPU's G_t, gsa_slots_cpu.c, is
 * Σ_{t'≥t} scale·diag(e^{b_t' − b_t}) dok_t'ᵀ q_t' + diag(e^{b_L − b_t}) dP.)
 * This is GLA's chunk algebra with the roles exchanged: ok and ds are GLA's
 * dq and dk from dA = A, dq and dk GLA's o and dv from A = scale·B.
 *
 * Why nothing overflows. Gates are log-sigmoids, f ≤ 0, so b never increases
 * along a chunk and e^{later b − earlier b} ≤ 1. Every factor formed here is of
 * that kind: e^{b_t} and e^{b_L − b_u} for the boundary states, and within the
 * chunk a product through a reference token r between the two, 16-token
 * sub-chunks apart: e^{b_t − b_u} = e^{b_t − b_r} · e^{b_r − b_u} for u ≤ r ≤ t.
 * So s̃_u = s_u e^{b_r − b_u} and dõk_t = dok_t e^{b_t − b_r} are bounded by s
 * and dok; between sub-chunks ok is (A s̃) scaled by e^{b_t − b_r} per row and
 * slot, ds is (Aᵀ dõk) scaled by e^{b_r − b_u}, and B is dõk s̃ᵀ, all plain
 * products. Within a 16-token sub-chunk no token lies between every pair, so
 * those terms are summed one by one in fp32, each exponent ≤ 0 on its own.
 * Strong gates only underflow factors to 0, which their true values are close to.
 *
 * Precision. Activations (q, k, s, f, dok, ok and the gradients) are bf16 in
 * memory, b is fp32 (kept in shared memory, in units of log2 so every
 * exponential is one ex2 instruction), the checkpoints and dP bf16 (GLA's walk
 * carries the states at about fp32's precision and stores them so). Products
 * run on the tensor cores (mma.sync m16n8k16: bf16 operands, fp32
 * accumulation); their operands that are not inputs (P0, A, s̃, dõk, scale·B,
 * scale·dok ⊙ e^b, s ⊙ e^{b_L − b}) are rounded to bf16, as fla does; the
 * terms within a sub-chunk, ∂L/∂b, its running sums and rowsum(P0 ⊙ dP) are
 * fp32 throughout.
 *
 * Kernels. Forward: GLA's walk (b, then the checkpoints), the table of chunks,
 * then chunk_slots<false> per (chunk, head, 64-slot tile): A and q P0ᵀ over the
 * key tiles, then ok. Backward: GLA's adjoint walk (dP at each chunk end but a
 * sequence's last, into GLA's part of `work`), the table, chunk_slots<true>
 * per (chunk, head, slot tile): as the forward plus k dPᵀ and rowsum(P0 ⊙ dP)
 * over the key tiles, then ok again (∂L/∂b needs it), ds, df and, into `work`,
 * scale·B, scale·dok ⊙ e^b and s ⊙ e^{b_L − b}; then chunk_keys per (chunk,
 * head, 64-key tile): dq and dk, summing over the slot tiles (B's sum over the
 * slots is split the same way, so no slot tile needs another's B).
 *
 * Speed. The kernels are bound by memory latency, not by the tensor cores.
 * The tiles go to shared memory by cp.async, all of a tile's loads in flight
 * before any is waited for. No register is spilled: chunk_slots keeps
 * only A's four diagonal blocks in fp32, which frees the shared memory where
 * the sums between sub-chunks wait while the terms within them are added.
 * The blocks of one chunk's tiles are launched next to each other, so the
 * operands they share come from L2, and each output value is written once,
 * by the block that sums it (no zero-fill, no atomics). At GSA-340M's head
 * (H 4, dk 256, M 64, 8 sequences of 2048) GLA's two walks are about a third
 * of the time: they run 2 blocks per (sequence, head).
 * Every sum is taken in an order fixed by the shapes: results are the same run
 * to run. */
#include <cstdint>

#include "../gla/chunk_common.cuh"
#include "../gla/gla_cuda.h"
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gsa_cuda.h"
#include "mma_bf16.cuh"

#define CHUNK GLA_CHUNK
#define SUB 16           /* tokens of a sub-chunk, the tensor cores' k step */
#define TILE 64          /* slots or keys of a tile */
#define LD (TILE + 8)    /* shared row length: ldmatrix rows spread over all banks */
#define THREADS 256      /* 8 warps */
#define PAIRS 17         /* diagonal_scores' pairs per thread */
#define LOG2E 1.4426950408889634f

static_assert(CHUNK == 64 && THREADS == 4 * TILE, "a chunk is 4 sub-chunks; a thread per (sub-chunk, column)");

typedef act_t tile16[LD]; /* a row of a CHUNK×TILE tile in shared memory, bf16 */
typedef float tile32[LD]; /* the same in fp32 */

/* `work`: GLA's part (its walks' b and chunk table, the adjoint states dP),
 * then scale·B per slot tile, scale·dok ⊙ e^b, s ⊙ e^{b_L − b}, our table */
typedef struct work_layout {
    float *gla;
    act_t *B;    /* [slot tiles][n,H,CHUNK]: row t holds scale·B_tu from its chunk's start */
    act_t *doke; /* [n,H,M] scale·dok ⊙ e^b */
    act_t *se;   /* [n,H,M] s ⊙ e^{b_L − b} */
    chunk *chunks;
    size_t B_tile; /* elements of one slot tile's B */
} work_layout;

static work_layout carve(float *work, int n, int H, int dk, int M)
{
    size_t nH = (size_t)n * H;
    work_layout w;
    w.gla = work;
    w.B_tile = nH * CHUNK;
    float *p = work + align4(gla_recurrence_work_floats_cuda(n, H, M, dk));
    w.B = reinterpret_cast<act_t *>(p);
    p += bf16_floats(w.B_tile * ceil_div(M, TILE));
    w.doke = reinterpret_cast<act_t *>(p);
    p += bf16_floats(nH * M);
    w.se = reinterpret_cast<act_t *>(p);
    p += bf16_floats(nH * M);
    w.chunks = reinterpret_cast<chunk *>(p);
    return w;
}

size_t gsa_slot_work_floats_cuda(int n, int H, int dk, int M)
{
    size_t nH = (size_t)n * H;
    return align4(gla_recurrence_work_floats_cuda(n, H, M, dk)) +
           bf16_floats(nH * CHUNK * ceil_div(M, TILE)) + 2 * bf16_floats(nH * M) +
           (size_t)n * (sizeof(chunk) / sizeof(float));
}

/* ------------------------------------------------------------------ the chunks */

static int chunk_table(chunk *chunks, const gsa_slot_dims *d)
{
    return build_chunks(chunks, d->cu_seqlens, d->cu_seqlens_backend, d->n_seqs);
}

/* ------------------------------------------------------------------ a thread's share of a tile */

/* A thread's share of a CHUNK×TILE tile: the 8 columns from 8·(threadIdx.x % 8)
 * of rows threadIdx.x / 8 and that + 32 */
static __device__ __forceinline__ int share_row(int a) { return threadIdx.x / 8 + 32 * a; }
static __device__ __forceinline__ int share_col() { return 8 * (threadIdx.x % 8); }

/* The thread's share of the bf16 tile at p (rows `stride` apart) into dst, 0
 * past `rows` and `cols`: by cp.async where whole aligned 16-byte pieces can
 * go (the caller commits and waits), else through registers. */
static __device__ void async_share(tile16 *dst, const act_t *p, size_t stride, int rows, int cols)
{
    bool vec = stride % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
    int c = share_col();
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int r = share_row(a);
        const act_t *row = p + (size_t)r * stride + c;
        bool live = r < rows && c < cols;
        if (vec && (c + 8 <= cols || !live))
            cp_async16(&dst[r][c], live ? row : p, live);
        else
#pragma unroll
            for (int e = 0; e < 8; e++)
                from_f32(&dst[r][c + e], live && c + e < cols ? to_f32(row[e]) : 0.0f);
    }
}

/* rows < rows and columns < cols of a thread's share v (fp32) into the tile at p */
static __device__ void store_share(act_t *p, size_t stride, int rows, int cols, const float (&v)[2][8])
{
    bool vec = stride % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
    int c = share_col();
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int r = share_row(a);
        if (r >= rows)
            continue;
        act_t *row = p + (size_t)r * stride + c;
        if (vec && c + 8 <= cols)
            store_floats<8>(row, v[a]);
        else
#pragma unroll
            for (int e = 0; e < 8; e++)
                if (c + e < cols)
                    from_f32(&row[e], v[a][e]);
    }
}

/* ------------------------------------------------------------------ tensor-core results */

/* acc (rows m0.., columns n0..) into the fp32 tile */
template <int NT>
static __device__ void acc_to_tile(tile32 *t, const float (&acc)[NT][4], int m0, int n0)
{
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            t[m0 + acc_row(e)][n0 + 8 * j + acc_col(e)] = acc[j][e];
}

/* acc (rows m0.., columns n0..) into the bf16 tensor at p, rows < rows, columns < cols */
static __device__ void acc_store(act_t *p, size_t stride, int rows, int cols, const float (&acc)[4][4],
                                 int m0, int n0)
{
    bool pairs = stride % 2 == 0 && reinterpret_cast<uintptr_t>(p) % 4 == 0;
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e += 2) {
            int r = m0 + acc_row(e), c = n0 + 8 * j + acc_col(e);
            if (r >= rows)
                continue;
            act_t *q = p + (size_t)r * stride + c;
            if (pairs && c + 1 < cols) {
                float two[2] = {acc[j][e], acc[j][e + 1]};
                store_floats<2>(q, two);
            } else {
                if (c < cols)
                    from_f32(q, acc[j][e]);
                if (c + 1 < cols)
                    from_f32(q + 1, acc[j][e + 1]);
            }
        }
}

/* ------------------------------------------------------------------ ok, ds, df and B */

struct slots_shared {
    tile16 s[CHUNK], dok[CHUNK]; /* [token][slot] */
    tile32 b[CHUNK];             /* log2(e)·Σ f from the chunk's start; past L the last row */
    tile16 A[CHUNK];             /* first the gates f, then scale·q kᵀ, 0 above the diagonal */
    float Ad[4][SUB][SUB + 1];   /* A's blocks within the sub-chunks in fp32 */
    union {
        tile16 in[4][CHUNK];    /* phase 1: q, k [token][key], P0, dP [slot][key] */
        tile16 cross[3][CHUNK]; /* phase 2: stage_cross's tiles */
        struct {
            tile32 ok[CHUNK], ds[CHUNK]; /* ok and ds but their terms within sub-chunks */
            tile16 B[CHUNK];             /* scale·B */
        } last;
    } u;
    float extra[TILE];       /* e^{b_L} rowsum(P0 ⊙ dP) */
    float end_part[4][TILE]; /* Σ_u s_u ⊙ (dP part of ds_u), per warp row */
    float sub_total[4][TILE]; /* first gate_sums' quarters, then Σ ∂L/∂b per sub-chunk */
};

/* b from the gates in sh.A (0 past the chunk's end and past the slots, so b
 * stays at the chunk's last there): thread (slot threadIdx.x % TILE, quarter
 * threadIdx.x / TILE) sums its 16 rows in order, then adds the quarters
 * before. Ends with a barrier. */
static __device__ void gate_sums(slots_shared &sh)
{
    int i = threadIdx.x % TILE, part = threadIdx.x / TILE, base = SUB * part;
    float run[SUB], sum = 0.0f;
#pragma unroll
    for (int t = 0; t < SUB; t++) {
        sum += to_f32(sh.A[base + t][i]);
        run[t] = sum;
    }
    sh.sub_total[part][i] = sum;
    __syncthreads();
    float before = 0.0f;
    for (int p = 0; p < part; p++)
        before += sh.sub_total[p][i];
#pragma unroll
    for (int t = 0; t < SUB; t++)
        sh.b[base + t][i] = LOG2E * (before + run[t]);
    __syncthreads();
}

/* Phase 1 over one key tile: the warp's 16×32 blocks of A += q kᵀ (where
 * the block reaches the diagonal), Qp += q P0ᵀ (with P0), Kd += k dPᵀ (with dP) */
static __device__ void phase1_products(float (&A)[4][4], float (&Qp)[4][4], float (&Kd)[4][4],
                                       const tile16 (*in)[CHUNK], bool with_A, bool with_P0,
                                       bool with_dP)
{
    int m0 = block_row(), n0 = block_col();
#pragma unroll
    for (int k0 = 0; k0 < TILE; k0 += SUB) {
        uint32_t aq[4], ak[4];
        load_a<false>(aq, in[0], m0, k0);
        if (with_dP)
            load_a<false>(ak, in[1], m0, k0);
#pragma unroll
        for (int p = 0; p < 2; p++) {
            uint32_t bf[4];
            if (with_A) {
                load_b<false>(bf, in[1], k0, n0 + 16 * p);
                mma(A[2 * p], aq, bf[0], bf[1]);
                mma(A[2 * p + 1], aq, bf[2], bf[3]);
            }
            if (with_P0) {
                load_b<false>(bf, in[2], k0, n0 + 16 * p);
                mma(Qp[2 * p], aq, bf[0], bf[1]);
                mma(Qp[2 * p + 1], aq, bf[2], bf[3]);
            }
            if (with_dP) {
                load_b<false>(bf, in[3], k0, n0 + 16 * p);
                mma(Kd[2 * p], ak, bf[0], bf[1]);
                mma(Kd[2 * p + 1], ak, bf[2], bf[3]);
            }
        }
    }
}

/* The operands between sub-chunks as token r = m − 1 (the last of sub-chunk
 * c, m = SUB·(c + 1)) sees them: in tile c, rows u < m: s̃_u = s_u e^{b_r − b_u},
 * rows t ≥ m: dõk_t = dok_t e^{b_t − b_r} (backward; 0 forward), both exponents ≤ 0. */
template <bool BACKWARD> static __device__ void stage_cross(slots_shared &sh)
{
    int col = share_col();
#pragma unroll
    for (int c = 0; c < 3; c++) {
        int m = SUB * (c + 1);
#pragma unroll
        for (int a = 0; a < 2; a++) {
            int x = share_row(a);
            float out[8];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float d = sh.b[x][col + e] - sh.b[m - 1][col + e];
                out[e] = x < m ? to_f32(sh.s[x][col + e]) * exp2_fast(-d)
                               : BACKWARD ? to_f32(sh.dok[x][col + e]) * exp2_fast(d) : 0.0f;
            }
            store_floats<8>(&sh.u.cross[c][x][col], out);
        }
    }
}

/* ok and ds whole: their sums in shared memory plus the terms within a
 * sub-chunk, one by one: thread (sub-chunk threadIdx.x / 64, slot
 * threadIdx.x % 64) over the 136 pairs u ≤ t of its 16 rows. On return
 * ok[t], ds[t] are row base + t's, and sv, dv its s and dok. */
template <bool BACKWARD>
static __device__ void diagonal_slots(float (&ok)[SUB], float (&ds)[SUB], float (&sv)[SUB],
                                      float (&dv)[SUB], const slots_shared &sh)
{
    int sub = threadIdx.x / 64, base = SUB * sub, i = threadIdx.x % 64;
    float bv[SUB];
#pragma unroll
    for (int t = 0; t < SUB; t++) {
        sv[t] = to_f32(sh.s[base + t][i]);
        dv[t] = BACKWARD ? to_f32(sh.dok[base + t][i]) : 0.0f;
        bv[t] = sh.b[base + t][i];
        ok[t] = sh.u.last.ok[base + t][i];
        ds[t] = BACKWARD ? sh.u.last.ds[base + t][i] : 0.0f;
    }
#pragma unroll
    for (int t = 0; t < SUB; t++)
#pragma unroll
        for (int u = 0; u <= t; u++) {
            float a = sh.Ad[sub][t][u] * exp2_fast(bv[t] - bv[u]);
            ok[t] += a * sv[u];
            if (BACKWARD)
                ds[u] += a * dv[t];
        }
}

/* B within a sub-chunk: thread (sub-chunk threadIdx.x / 64, rows a and 15 − a
 * of it, a = threadIdx.x / 8 % 8, with their 17 pairs u ≤ t) sums the slots ≡
 * threadIdx.x (mod 8); part[p] is pair p's partial sum */
static __device__ void diagonal_pair(int p, int *t, int *u)
{
    int base = SUB * (threadIdx.x / 64), a = threadIdx.x / 8 % 8;
    *t = p <= a ? base + a : base + SUB - 1 - a;
    *u = base + (p <= a ? p : p - a - 1);
}

static __device__ void diagonal_scores(float (&part)[PAIRS], const slots_shared &sh)
{
    int base = SUB * (threadIdx.x / 64), a = threadIdx.x / 8 % 8;
    int t1 = base + a, t2 = base + SUB - 1 - a;
    for (int i = threadIdx.x % 8; i < TILE; i += 8) {
        float d1 = to_f32(sh.dok[t1][i]), b1 = sh.b[t1][i];
        float d2 = to_f32(sh.dok[t2][i]), b2 = sh.b[t2][i];
#pragma unroll
        for (int p = 0; p < PAIRS; p++) {
            bool first = p <= a;
            int u = base + (first ? p : p - a - 1);
            part[p] += (first ? d1 : d2) * to_f32(sh.s[u][i]) *
                       exp2_fast((first ? b1 : b2) - sh.b[u][i]);
        }
    }
}

/* Block: (chunk, head, slot tile j0..), a chunk's slot tiles next to each
 * other. Phase 1 over the key tiles: A, q P0ᵀ and (backward) k dPᵀ and
 * rowsum(P0 ⊙ dP). Phase 2 between sub-chunks on the tensor cores (warps of
 * row sub-chunk R ≥ 1: ok; of row sub-chunk R ≤ 2: ds; warps 0-5: B's six
 * 16×16 blocks) and within them term by term. Last, per (sub-chunk, slot)
 * thread: ok written (forward), or ∂L/∂b, its running sums from the chunk's
 * end, ds and df written, and scale·B, scale·dok ⊙ e^b, s ⊙ e^{b_L − b} into
 * `work` for chunk_keys. */
template <bool BACKWARD>
static __global__ void __launch_bounds__(THREADS, 2)
    chunk_slots(act_t *ok_out, act_t *ds_out, act_t *df_out, act_t *B_out, act_t *doke_out,
                act_t *se_out, const act_t *q, const act_t *k, const act_t *s, const act_t *f,
                const act_t *dok, const act_t *checkpoints, const act_t *dP, const chunk *chunks,
                int H, int dk, int M, float scale, size_t B_tile)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    slots_shared &sh = *reinterpret_cast<slots_shared *>(shared_raw);
    int tiles = ceil_div(M, TILE);
    chunk c = chunks[blockIdx.x / tiles];
    int jt = blockIdx.x % tiles, j0 = jt * TILE, h = blockIdx.y, L = c.t1 - c.t0;
    int warp = warp_id(), m0 = block_row(), n0 = block_col(), Mt = min(TILE, M - j0);
    size_t xs = at(c.t0, h, H, M) + j0, stride_s = (size_t)H * M;
    size_t xk = at(c.t0, h, H, dk), stride_k = (size_t)H * dk;
    const act_t *P0 = c.first ? NULL : checkpoints + state_at(c.t0, h, H, M, dk) + (size_t)j0 * dk;
    const act_t *dPe = !BACKWARD || c.last ? NULL : dP + state_at(c.t1, h, H, M, dk) + (size_t)j0 * dk;

    { /* the slot tiles, and b from f */
        async_share(sh.s, s + xs, stride_s, L, Mt);
        async_share(sh.A, f + xs, stride_s, L, Mt);
        if (BACKWARD)
            async_share(sh.dok, dok + xs, stride_s, L, Mt);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
        gate_sums(sh);
    }

    /* phase 1 */
    float accA[4][4] = {}, Qp[4][4] = {}, Kd[4][4] = {}, row_dot[2] = {};
    bool with_A = n0 <= m0 + SUB - 1; /* the block reaches the diagonal */
    for (int i0 = 0; i0 < dk; i0 += TILE) {
        __syncthreads(); /* the previous key tile is read */
        async_share(sh.u.in[0], q + xk + i0, stride_k, L, dk - i0);
        async_share(sh.u.in[1], k + xk + i0, stride_k, L, dk - i0);
        if (P0)
            async_share(sh.u.in[2], P0 + i0, dk, Mt, dk - i0);
        if (dPe)
            async_share(sh.u.in[3], dPe + i0, dk, Mt, dk - i0);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
        if (P0 && dPe) /* rowsum(P0 ⊙ dP) in fp32, the thread's share */
#pragma unroll
            for (int a = 0; a < 2; a++)
#pragma unroll
                for (int e = 0; e < 8; e++)
                    row_dot[a] += to_f32(sh.u.in[2][share_row(a)][share_col() + e]) *
                                  to_f32(sh.u.in[3][share_row(a)][share_col() + e]);
        phase1_products(accA, Qp, Kd, sh.u.in, with_A, P0 != NULL, dPe != NULL);
    }
    __syncthreads(); /* phase 1's tiles are read: the cross tiles take their place */
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int t = m0 + acc_row(e), col = n0 + 8 * j + acc_col(e);
            float a = col <= t ? scale * accA[j][e] : 0.0f;
            sh.A[t][col] = __float2bfloat16_rn(a);
            if (t / SUB == col / SUB)
                sh.Ad[t / SUB][t % SUB][col % SUB] = a;
            Qp[j][e] *= scale * exp2_fast(sh.b[t][col]);
            if (BACKWARD)
                Kd[j][e] *= exp2_fast(sh.b[CHUNK - 1][col] - sh.b[t][col]);
        }
    if (BACKWARD) {
        /* Σ_u s_u ⊙ Kd_u over the warp's 16 rows, per slot: lanes of one
         * lane % 4 share the columns; lanes 0-3 write */
        float colsum[4][2];
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int col = n0 + 8 * j + acc_col(e), t = m0 + acc_row(e);
                colsum[j][e] = to_f32(sh.s[t][col]) * Kd[j][e] +
                               to_f32(sh.s[t + 8][col]) * Kd[j][e + 2];
                for (int off = 4; off < 32; off *= 2)
                    colsum[j][e] += __shfl_xor_sync(0xffffffffu, colsum[j][e], off);
                if (lane_id() < 4)
                    sh.end_part[warp % 4][col] = colsum[j][e];
            }
#pragma unroll
        for (int a = 0; a < 2; a++) {
            for (int off = 1; off < 8; off *= 2)
                row_dot[a] += __shfl_xor_sync(0xffffffffu, row_dot[a], off);
            int i = share_row(a);
            if (threadIdx.x % 8 == 0)
                sh.extra[i] = exp2_fast(sh.b[CHUNK - 1][i]) * row_dot[a];
        }
    }
    stage_cross<BACKWARD>(sh);
    __syncthreads();

    /* phase 2 */
    int R = warp % 4; /* the warp's row sub-chunk */
    if (R >= 1) { /* ok_t, t in sub-chunk R: e^{b_t − b_r} Σ_{u<16R} A_tu s̃_u */
        float x[4][4] = {};
        int m = SUB * R;
        warp_product<4, false, true>(x, sh.A, sh.u.cross[R - 1], m, n0, 0, m);
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int t = m + acc_row(e), col = n0 + 8 * j + acc_col(e);
                Qp[j][e] += x[j][e] * exp2_fast(sh.b[t][col] - sh.b[m - 1][col]);
            }
    }
    if (BACKWARD && R <= 2) { /* ds_u, u in sub-chunk R: e^{b_r − b_u} Σ_{t≥16(R+1)} A_tu dõk_t */
        float x[4][4] = {};
        int m = SUB * (R + 1);
        warp_product<4, true, true>(x, sh.A, sh.u.cross[R], m - SUB, n0, m, CHUNK);
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int t = m - SUB + acc_row(e), col = n0 + 8 * j + acc_col(e);
                Kd[j][e] += x[j][e] * exp2_fast(sh.b[m - 1][col] - sh.b[t][col]);
            }
    }
    /* B between sub-chunks: warp w < 6 the block (row sub-chunk rb, column sub-chunk cb < rb) */
    int rb = warp < 1 ? 1 : warp < 3 ? 2 : 3, cb = warp - rb * (rb - 1) / 2;
    float Bx[2][4] = {};
    if (BACKWARD && warp < 6)
        warp_product<2, false, false>(Bx, sh.u.cross[rb - 1], sh.u.cross[rb - 1], SUB * rb,
                                      SUB * cb, 0, TILE);
    __syncthreads(); /* the cross tiles are read: the sums take their place */
    acc_to_tile(sh.u.last.ok, Qp, m0, n0);
    if (BACKWARD) {
        acc_to_tile(sh.u.last.ds, Kd, m0, n0);
        if (warp < 6)
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    sh.u.last.B[SUB * rb + acc_row(e)][SUB * cb + 8 * j + acc_col(e)] =
                        __float2bfloat16_rn(scale * Bx[j][e]);
        float part[PAIRS] = {};
        diagonal_scores(part, sh);
#pragma unroll
        for (int p = 0; p < PAIRS; p++)
            for (int off = 1; off < 8; off *= 2)
                part[p] += __shfl_xor_sync(0xffffffffu, part[p], off);
        if (threadIdx.x % 8 == 0)
#pragma unroll
            for (int p = 0; p < PAIRS; p++) {
                int t, u;
                diagonal_pair(p, &t, &u);
                sh.u.last.B[t][u] = __float2bfloat16_rn(scale * part[p]);
            }
        for (int x = threadIdx.x; x < CHUNK * CHUNK; x += THREADS) /* above the diagonal */
            if (x % CHUNK > x / CHUNK)
                sh.u.last.B[x / CHUNK][x % CHUNK] = __float2bfloat16_rn(0.0f);
    }
    __syncthreads();

    int sub = threadIdx.x / 64, i = threadIdx.x % 64, base = SUB * sub;
    float ok[SUB], ds[SUB], sv[SUB], dv[SUB];
    diagonal_slots<BACKWARD>(ok, ds, sv, dv, sh);
    if (!BACKWARD) {
        if (i < Mt)
#pragma unroll
            for (int t = 0; t < SUB; t++)
                if (base + t < L)
                    ok_out[xs + (base + t) * stride_s + i] = __float2bfloat16_rn(ok[t]);
        return;
    }
    /* per (sub-chunk, slot): ds written, ∂L/∂b into ok */
    float total = 0.0f;
#pragma unroll
    for (int t = 0; t < SUB; t++) {
        int row = base + t;
        if (row < L && i < Mt)
            ds_out[xs + row * stride_s + i] = __float2bfloat16_rn(ds[t]);
        ok[t] = dv[t] * ok[t] - sv[t] * ds[t];
        total += ok[t];
    }
    sh.sub_total[sub][i] = total;
    __syncthreads();
    /* df_t = Σ ∂L/∂b from t to the chunk's end, which starts at b_L's extra */
    float running = sh.extra[i];
    for (int w = 0; w < 4; w++)
        running += sh.end_part[w][i];
    for (int p = 3; p > sub; p--)
        running += sh.sub_total[p][i];
#pragma unroll
    for (int t = SUB - 1; t >= 0; t--) {
        running += ok[t];
        if (base + t < L && i < Mt)
            df_out[xs + (base + t) * stride_s + i] = __float2bfloat16_rn(running);
    }
    /* for chunk_keys: scale·B, scale·dok ⊙ e^b, s ⊙ e^{b_L − b} */
    float v[2][8], w[2][8];
    int col = share_col();
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int e = 0; e < 8; e++)
            v[a][e] = to_f32(sh.u.last.B[share_row(a)][col + e]);
    store_share(B_out + jt * B_tile + at(c.t0, h, H, CHUNK), (size_t)H * CHUNK, L, CHUNK, v);
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int e = 0; e < 8; e++) {
            int r = share_row(a);
            float b = sh.b[r][col + e];
            v[a][e] = scale * to_f32(sh.dok[r][col + e]) * exp2_fast(b);
            w[a][e] = to_f32(sh.s[r][col + e]) * exp2_fast(sh.b[CHUNK - 1][col + e] - b);
        }
    store_share(doke_out + xs, stride_s, L, Mt, v);
    store_share(se_out + xs, stride_s, L, Mt, w);
}

/* ------------------------------------------------------------------ dq and dk */

struct keys_shared {
    tile16 q[CHUNK], k[CHUNK]; /* [token][key] */
    tile16 B[CHUNK];           /* scale·B [t][u] */
    tile16 doke[CHUNK], se[CHUNK]; /* [token][slot] */
    tile16 P0[CHUNK], dP[CHUNK];   /* [slot][key] */
};

/* Block: (chunk, head, key tile i0..), a chunk's key tiles next to each other.
 * Over the slot tiles:
 *     dq += (scale·dok ⊙ e^b) P0 + (scale·B) k
 *     dk += (scale·B)ᵀ q + (s ⊙ e^{b_L − b}) dP
 * warp: rows block_row().., keys block_col().. of both. */
static __global__ void __launch_bounds__(THREADS, 2)
    chunk_keys(act_t *dq_out, act_t *dk_out, const act_t *q, const act_t *k, const act_t *B,
               const act_t *doke, const act_t *se, const act_t *checkpoints, const act_t *dP,
               const chunk *chunks, int H, int dk, int M, size_t B_tile)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    keys_shared &sh = *reinterpret_cast<keys_shared *>(shared_raw);
    int tiles = ceil_div(dk, TILE);
    chunk c = chunks[blockIdx.x / tiles];
    int i0 = blockIdx.x % tiles * TILE, h = blockIdx.y, L = c.t1 - c.t0;
    int m0 = block_row(), n0 = block_col();
    size_t xk = at(c.t0, h, H, dk) + i0, stride_k = (size_t)H * dk;
    size_t xs = at(c.t0, h, H, M), stride_s = (size_t)H * M;
    const act_t *P0 = c.first ? NULL : checkpoints + state_at(c.t0, h, H, M, dk) + i0;
    const act_t *dPe = c.last ? NULL : dP + state_at(c.t1, h, H, M, dk) + i0;
    async_share(sh.q, q + xk, stride_k, L, dk - i0);
    async_share(sh.k, k + xk, stride_k, L, dk - i0);
    float dq[4][4] = {}, dkk[4][4] = {};
    for (int j0 = 0; j0 < M; j0 += TILE) {
        int Mt = min(TILE, M - j0);
        __syncthreads(); /* the previous slot tile is read */
        if (P0)
            async_share(sh.P0, P0 + (size_t)j0 * dk, dk, Mt, dk - i0);
        async_share(sh.B, B + j0 / TILE * B_tile + at(c.t0, h, H, CHUNK), (size_t)H * CHUNK, L,
                    CHUNK);
        async_share(sh.doke, doke + xs + j0, stride_s, L, Mt);
        async_share(sh.se, se + xs + j0, stride_s, L, Mt);
        if (dPe)
            async_share(sh.dP, dPe + (size_t)j0 * dk, dk, Mt, dk - i0);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
        if (P0)
            warp_product<4, false, true>(dq, sh.doke, sh.P0, m0, n0, 0, TILE);
        warp_product<4, false, true>(dq, sh.B, sh.k, m0, n0, 0, m0 + SUB); /* B_tu = 0 for u > t */
        warp_product<4, true, true>(dkk, sh.B, sh.q, m0, n0, m0, CHUNK);
        if (dPe)
            warp_product<4, false, true>(dkk, sh.se, sh.dP, m0, n0, 0, TILE);
    }
    acc_store(dq_out + xk, stride_k, L, dk - i0, dq, m0, n0);
    acc_store(dk_out + xk, stride_k, L, dk - i0, dkk, m0, n0);
}

/* ------------------------------------------------------------------ entry points */

/* lets `kernel` take `bytes` of dynamic shared memory (over 48 KiB needs asking); returns bytes */
/* GLA's dims for the state P: keys s (M), values k (dk), gates f */
static gla_recurrence_dims gla_dims(const gsa_slot_dims *d)
{
    gla_recurrence_dims g = {d->cu_seqlens, d->n_seqs, d->H, d->M, d->dk, d->scale,
                             d->cu_seqlens_backend, 0, 0, 0, NULL, NULL, 0};
    return g;
}

void gsa_slot_recurrence_forward_cuda(void *ok, void *checkpoints, const void *q, const void *k,
                                      const void *s, const void *f, const gsa_slot_dims *d,
                                      float *work, int n_work)
{
    (void)n_work; /* one worker: the whole batch at once */
    int n = d->cu_seqlens[d->n_seqs];
    if (n == 0)
        return;
    gla_recurrence_dims g = gla_dims(d);
    gla_recurrence_forward_cuda(NULL, checkpoints, NULL, s, k, f, &g, work, 1);
    if (!ok)
        return;
    work_layout w = carve(work, n, d->H, d->dk, d->M);
    int chunks = chunk_table(w.chunks, d);
    auto kernel = chunk_slots<false>;
    size_t bytes = allow_shared(kernel, sizeof(slots_shared));
    launch_kernel(kernel, dim3(chunks * ceil_div(d->M, TILE), d->H), THREADS, bytes, act(ok), nullptr, nullptr, nullptr,
                  nullptr, nullptr, act(q), act(k), act(s), act(f), nullptr, act(checkpoints), nullptr, w.chunks, d->H,
                  d->dk, d->M, d->scale, w.B_tile);
}

void gsa_slot_recurrence_backward_cuda(void *dq, void *dk, void *ds, void *df, const void *dok,
                                       const void *q, const void *k, const void *s, const void *f,
                                       const void *checkpoints, const gsa_slot_dims *d,
                                       float *work, int n_work)
{
    (void)n_work;
    int n = d->cu_seqlens[d->n_seqs];
    if (n == 0)
        return;
    gla_recurrence_dims g = gla_dims(d);
    /* the adjoint: GLA's with q = dok (M wide) and do = q (dk wide) */
    const act_t *dP = act(gla_recurrence_state_grads_cuda(dok, q, f, &g, work));
    work_layout w = carve(work, n, d->H, d->dk, d->M);
    int chunks = chunk_table(w.chunks, d);
    auto kernel = chunk_slots<true>;
    size_t bytes = allow_shared(kernel, sizeof(slots_shared));
    launch_kernel(kernel, dim3(chunks * ceil_div(d->M, TILE), d->H), THREADS, bytes, nullptr, act(ds), act(df), w.B,
                  w.doke, w.se, act(q), act(k), act(s), act(f), act(dok), act(checkpoints), dP, w.chunks, d->H, d->dk,
                  d->M, d->scale, w.B_tile);
    bytes = allow_shared(chunk_keys, sizeof(keys_shared));
    launch_kernel(chunk_keys, dim3(chunks * ceil_div(d->dk, TILE), d->H), THREADS, bytes, act(dq), act(dk), act(q),
                  act(k), w.B, w.doke, w.se, act(checkpoints), dP, w.chunks, d->H, d->dk, d->M, w.B_tile);
}
