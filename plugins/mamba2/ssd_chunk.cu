/* Mamba2's SSD scan on the GPU in chunks of MAMBA2_CHUNK = 64 tokens, its
 * products on the tensor cores: the structure of the SSD paper's chunked
 * algorithm (mamba_ssm's ssd_combined), with the math and semantics of
 * ssd_scan_cpu.c and the chunked form of ssd_chunked_cpu.c.
 *
 * The math. A chunk of L tokens of head h starts from the state S0 ∈ R^{P×N}
 * (0 at a sequence's start). With cs_i = A Σ_{k≤i} Δ_k (A = −exp(A_log_h) < 0,
 * so cs falls along the chunk), l = L − 1 the chunk's last token and, for j ≤ i,
 * the decays L_ij = e^{cs_i − cs_j}:
 *     G_ij  = C_i · B_j,        M_ij = L_ij Δ_j G_ij   (0 for j > i)
 *     y_i   = Σ_j M_ij x_j + e^{cs_i} S0 C_i + D x_i
 *     S_end = e^{cs_l} S0 + Σ_j w_j x_j B_jᵀ,   w_j = e^{cs_l − cs_j} Δ_j
 * Only cs_i − cs_j with i ≥ j, cs itself and cs_l − cs_j are exponentiated:
 * every exponent is ≤ 0. Strong decays underflow to 0, their true value's
 * neighbour.
 *
 * Backward, with dS = ∂L/∂S_end (0 at a sequence's end) and dM_ij = dy_i · x_j:
 *     ∂L/∂S0 = e^{cs_l} dS + Σ_i e^{cs_i} dy_i C_iᵀ      (the chunk before's dS)
 *     dx_j   = Σ_i M_ij dy_i + w_j dS B_j + D dy_j
 *     dC_i   = Σ_j W_ij B_j + e^{cs_i} S0ᵀ dy_i,          W_ij = dM_ij L_ij Δ_j
 *     dB_j   = Σ_i W_ij C_i + w_j dSᵀ x_j
 * and the decays. With V_ij = dM_ij L_ij G_ij (so ∂L/∂M_ij's share of Δ_j is
 * Σ_i V_ij) and E_j = e^{cs_l − cs_j} x_j · (dS B_j):
 *     ∂L/∂cs_k = Σ_j V_kj Δ_j − Δ_k Σ_i V_ik + C_k · (e^{cs_k} S0ᵀ dy_k) − Δ_k E_k
 *                + [k = l] (e^{cs_l} ⟨dS, S0⟩ + Σ_j Δ_j E_j)
 *     dΔ_j   = Σ_i V_ij + E_j + A R_j,      R_j = Σ_{k≥j} ∂L/∂cs_k
 *     dA_log += A Σ_j Δ_j R_j,               dD += Σ_i dy_i · x_i
 * (cs is a running sum of Δ·A: ∂cs_k/∂Δ_j = A for k ≥ j, ∂cs_k/∂A = cs_k/A.)
 *
 * Kernels. Forward: (1) walk_states per (sequence, head): the states from
 * chunk to chunk, S_next = e^{cs_l} S + Σ_j w_j x_j B_jᵀ, carried in fp32 in
 * the block's registers and written (bf16) to the checkpoint slot of each
 * chunk start but a sequence's first, the CPU's layout; (2) the table of
 * chunks (GLA's); (3) chunk_output per (chunk, up to 8 heads of a group): y,
 * C Bᵀ made once for those heads, which share B and C. Backward: (1) the walk
 * again backwards, for dS = ∂L/∂(state at a chunk start), Σ_i e^{cs_i} dy_i
 * C_iᵀ plus the decayed dS of the chunk after, into `work`; (2) chunk_grads
 * per (chunk, up to 8 heads of a group, C Bᵀ once again): dx, dΔ and the
 * chunk's shares of dA_log and dD; (3) chunk_grads_BC per (chunk, group): dB
 * and dC, the group's heads summed in registers; (4) every chunk's share of
 * dA_log and dD summed. Tiles reach shared memory by cp.async, all of a
 * step's at once, and the next chunk's or head's while one is multiplied: no
 * step waits on a load it could have issued earlier.
 * Generation (one token per sequence, mamba2_ssd_step_cpu): step_rows per
 * (sequence, head, 8 rows of the state), the state fp32 in place.
 *
 * Precision. Activations are bf16, delta fp32. Products run on the tensor
 * cores (mma.sync m16n8k16: bf16 operands, fp32 accumulation): operands
 * scaled by a decay (w_j x_j, M, W̄) and the checkpointed states S0 and dS are
 * bf16; the walk from chunk to chunk carries the states in fp32, and all the
 * per-token and per-head sums are fp32. A state is rounded once, when it is
 * checkpointed, and never carried rounded, so the rounding does not grow
 * along a sequence. cs is kept in units of log2 so that an exponential is one
 * ex2 instruction.
 *
 * Determinism. No atomics: every value is written by the one block that sums
 * it, dB and dC over a group's heads in order, and dA_log / dD through one
 * partial per (chunk, head) summed over the chunks in order. Results are the
 * same bits run to run.
 *
 * Limits: P ≤ 64 and N ≤ 128 (one tile each; Mamba2's heads are 64 and 128);
 * generation's step takes any. */
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../gla/chunk_common.cuh"
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "mma_bf16.cuh"
#include "ssd_cuda.h"

#define CHUNK MAMBA2_CHUNK
#define P_MAX 64            /* head dim: one tile */
#define N_MAX 128           /* state size: one tile */
#define LDP (P_MAX + 8)     /* shared row lengths: ldmatrix rows spread over all banks */
#define LDN (N_MAX + 8)
#define THREADS 256         /* 8 warps */
#define LOG2E 1.4426950408889634f

static_assert(CHUNK == GLA_CHUNK, "the chunk table and the checkpoint slots are GLA's");
static_assert(CHUNK == 64 && THREADS == 256, "a 64×64 tile is 8 warps of 16×32");

/* the scan's share of `work`, each part 16-byte aligned */
typedef struct work_layout {
    act_t *dS;      /* backward: ∂L/∂(state at a chunk start), the checkpoints' layout */
    float *dA_part; /* backward: [chunk][H] each chunk's Σ Δ R and Σ dy·x */
    float *dD_part;
    chunk *chunks;  /* at most n */
} work_layout;

size_t mamba2_ssd_work_floats_cuda(int n, int H, int P, int N, int G)
{
    (void)G; /* the scratch is the same whatever the groups */
    size_t nH = (size_t)n * H;
    return bf16_floats(mamba2_ssd_checkpoint_floats(n, H, P, N)) + 2 * align4(nH) +
           (size_t)n * (sizeof(chunk) / sizeof(float));
}

static work_layout carve(float *work, int n, const mamba2_ssd_dims *d)
{
    size_t nH = (size_t)n * d->H;
    work_layout w;
    w.dS = reinterpret_cast<act_t *>(work);
    w.dA_part = work + bf16_floats(mamba2_ssd_checkpoint_floats(n, d->H, d->P, d->N));
    w.dD_part = w.dA_part + align4(nH);
    w.chunks = reinterpret_cast<chunk *>(w.dD_part + align4(nH));
    return w;
}

/* ------------------------------------------------------------------ small pieces */

static __device__ __forceinline__ float A_of(const act_t *A_log, int h)
{
    return -expf(to_f32(A_log[h]));
}

/* Warp 0, lane l holding Δ of the chunk's tokens l and l + 32 (0 past its
 * end): dt[i] = Δ_i and cs2[i] = log2(e)·A·Σ_{k≤i} Δ_k; past the chunk's end
 * dt = 0 and cs2 the last value, so that padding tokens weigh nothing and
 * every exponent stays ≤ 0. The caller synchronizes. */
static __device__ void sums_of(float *cs2, float *dt, float d0, float d1, float A)
{
    int l = lane_id();
    float s0 = d0, s1 = d1;
    for (int off = 1; off < 32; off *= 2) {
        float u0 = __shfl_up_sync(0xffffffffu, s0, off), u1 = __shfl_up_sync(0xffffffffu, s1, off);
        if (l >= off)
            s0 += u0, s1 += u1;
    }
    s1 += __shfl_sync(0xffffffffu, s0, 31);
    dt[l] = d0, dt[l + 32] = d1;
    cs2[l] = LOG2E * A * s0, cs2[l + 32] = LOG2E * A * s1;
}

/* sums_of for chunk c of head h, Δ read from delta [n,H] */
static __device__ void chunk_sums(float *cs2, float *dt, const float *delta, chunk c, int h, int H,
                                  float A)
{
    if (warp_id() != 0)
        return;
    int l = lane_id(), L = c.t1 - c.t0;
    float d0 = l < L ? delta[(size_t)(c.t0 + l) * H + h] : 0.0f;
    float d1 = l + 32 < L ? delta[(size_t)(c.t0 + l + 32) * H + h] : 0.0f;
    sums_of(cs2, dt, d0, d1, A);
}

/* L_ik = e^{cs_i − cs_k}, the decay from token k to token i of a chunk; 0 for k > i */
static __device__ __forceinline__ float decay_between(const float *cs2, int i, int k)
{
    return k <= i ? exp2_fast(cs2[i] - cs2[k]) : 0.0f;
}

/* the sum of x over the block, the same in every thread, in a fixed order;
 * red holds THREADS / 32 floats */
static __device__ float block_sum(float x, float *red)
{
    for (int off = 16; off > 0; off /= 2)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    if (lane_id() == 0)
        red[warp_id()] = x;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < THREADS / 32; w++)
        total += red[w];
    __syncthreads(); /* red is free again */
    return total;
}

/* the sum of a row's values over the 4 lanes that hold it in an accumulator */
static __device__ __forceinline__ float quad_sum(float x)
{
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* ------------------------------------------------------------------ tiles into shared memory */

/* The warp's 16×64 block of a 64×128 output (P×N or tokens×N) */
static __device__ __forceinline__ int wide_row() { return 16 * (warp_id() % 4); }
static __device__ __forceinline__ int wide_col() { return 64 * (warp_id() / 4); }

static __host__ __device__ __forceinline__ int round16(int x) { return (x + 15) / 16 * 16; }

/* ------------------------------------------------------------------ the walk over the chunks */

#define WALK_STAGES 3 /* chunks in a walk's buffers: one multiplied, two loading */

/* one walked chunk in shared memory, as cp.async brings it */
struct walk_stage {
    act_t u[CHUNK][LDP]; /* x or dy: [token][P] */
    act_t v[CHUNK][LDN]; /* B or C: [token][N] */
    float delta[CHUNK];  /* 0 past the chunk's end */
};

struct walk_shared {
    walk_stage stage[WALK_STAGES];
    act_t state[P_MAX][LDN]; /* the state on its way to its slot */
    float cs2[CHUNK], dt[CHUNK];
};

/* u's rows times their weights, in place (each thread its own 16-byte
 * pieces): FORWARD w_i = e^{cs_l − cs_i} Δ_i, backward e^{cs_i} (0 past the
 * chunk's end, where u is 0 as well) */
template <bool FORWARD> static __device__ void weigh_rows(walk_stage &st, const walk_shared &sh)
{
    constexpr int PER_ROW = P_MAX / 8;
    for (int idx = threadIdx.x; idx < CHUNK * PER_ROW; idx += THREADS) {
        int i = idx / PER_ROW, c = idx % PER_ROW * 8;
        float w = FORWARD ? exp2_fast(sh.cs2[CHUNK - 1] - sh.cs2[i]) * sh.dt[i] : exp2_fast(sh.cs2[i]);
        float f[8];
        load_floats<8>(f, &st.u[i][c]);
#pragma unroll
        for (int e = 0; e < 8; e++)
            f[e] *= w;
        store_floats<8>(&st.u[i][c], f);
    }
}

/* Per (sequence, head), chunk after chunk, a state carried in fp32 in the
 * block's registers (each warp a 16×64 block, in the accumulators' layout)
 * and written as bf16 to the checkpoint slots through shared memory
 * (write_tile). FORWARD, from the first chunk
 * on: S ← e^{cs_l} S + Σ_j w_j x_j B_jᵀ, the state at the next chunk's start,
 * into that chunk's slot (u = x, v = B). Backward, from the last chunk down to
 * the second: dS ← e^{cs_l} dS + Σ_i e^{cs_i} dy_i C_iᵀ, ∂L/∂(the state at the
 * chunk's start), into its own slot (u = dy, v = C). A sequence's chunks are
 * walked by one block, so no state goes through memory but as a checkpoint.
 * The chunks come through WALK_STAGES buffers by cp.async: the next two load
 * while the tensor cores work on one, so that the walk does not wait on
 * memory at every step. */
template <bool FORWARD>
static __global__ void __launch_bounds__(THREADS, 2)
    walk_states(act_t *slots, const act_t *u, const float *delta, const act_t *A_log,
                const act_t *v, const int32_t *cu, int H, int P, int N, int G)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    walk_shared &sh = *reinterpret_cast<walk_shared *>(shared_raw);
    int h = blockIdx.y, begin = cu[blockIdx.x], end = cu[blockIdx.x + 1], g = h / (H / G);
    int steps = ceil_div(end - begin, CHUNK) - 1; /* every chunk that has a slot to fill */
    int m0 = wide_row(), n0 = wide_col();
    float A = A_of(A_log, h), S[8][4] = {};

    auto start_of = [&](int q) { return begin + CHUNK * (FORWARD ? q : steps - q); };
    auto issue = [&](int q) { /* the q-th chunk walked into its buffer */
        if (q < steps) {
            walk_stage &st = sh.stage[q % WALK_STAGES];
            int t0 = start_of(q), rows = min(CHUNK, end - t0);
            copy_tile<false, THREADS, P_MAX>(st.u, u + at(t0, h, H, P), (size_t)H * P, rows, P);
            copy_tile<false, THREADS, N_MAX>(st.v, v + at(t0, g, G, N), (size_t)G * N, rows, N);
            if (threadIdx.x < CHUNK) {
                int i = threadIdx.x;
                cp_async4(&st.delta[i], delta + (size_t)(t0 + min(i, rows - 1)) * H + h, i < rows);
            }
        }
    };
    pipeline<WALK_STAGES>(steps, issue, [&](int q) {
        walk_stage &st = sh.stage[q % WALK_STAGES];
        if (warp_id() == 0)
            sums_of(sh.cs2, sh.dt, st.delta[lane_id()], st.delta[lane_id() + 32], A);
        __syncthreads();
        weigh_rows<FORWARD>(st, sh);
        __syncthreads();
        float decay = exp2f(sh.cs2[CHUNK - 1]);
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                S[j][e] *= decay;
        warp_product<8, true, true>(S, st.u, st.v, m0, n0, 0, CHUNK); /* += Σ_token u[t][p] v[t][n] */
        int t0 = start_of(q), t1 = min(t0 + CHUNK, end);
        store_acc<false>(&sh.state[0][0], LDN, P_MAX, N_MAX, S, m0, n0);
        __syncthreads();
        write_tile<THREADS, P_MAX, N_MAX>(slots + state_at(FORWARD ? t1 : t0, h, H, P, N), N, P, N, sh.state);
    });
}

/* ------------------------------------------------------------------ forward: y */

#define GROUP_HEADS 8 /* heads of one group a chunk_output or chunk_grads block walks */

/* one head's tiles in shared memory, as cp.async brings them */
struct output_stage {
    act_t x[CHUNK][LDP];  /* [token][P] */
    act_t S0[P_MAX][LDN]; /* [P][N] */
    float delta[CHUNK];   /* 0 past the chunk's end */
};

struct output_shared {
    act_t C[CHUNK][LDN], B[CHUNK][LDN]; /* the group's: [token][N] */
    output_stage stage[2];              /* the head being used, the next one loading */
    act_t M[CHUNK][LDP];                /* [token i][token j] */
    float cs2[CHUNK], dt[CHUNK];
};

/* the heads of blockIdx.y's block: up to GROUP_HEADS of one group, from *first
 * (head_blocks() such blocks cover the heads) */
static __device__ int group_heads(int *first, int H, int G)
{
    int per_group = H / G, blocks = ceil_div(per_group, GROUP_HEADS);
    int g = blockIdx.y / blocks, from = blockIdx.y % blocks * GROUP_HEADS;
    *first = g * per_group + from;
    return min(GROUP_HEADS, per_group - from);
}

/* y of one chunk for several heads of a group: G = C Bᵀ once, since the
 * group's heads share B and C, then per head M from G and its decays and
 * y = M x + e^{cs_i} C S0ᵀ + D x, the next head's x, S0 and Δ loading
 * meanwhile. Each warp a 16×32 block of the 64×64 tiles; G stays in its
 * registers; y goes out through shared memory (write_tile). */
static __global__ void __launch_bounds__(THREADS, 2) /* up to 128 registers: no spills */
    chunk_output(act_t *y, const act_t *x, const float *delta, const act_t *A_log, const act_t *B,
                 const act_t *C, const act_t *D, const act_t *states, const chunk *chunks, int H,
                 int P, int N, int G)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    output_shared &sh = *reinterpret_cast<output_shared *>(shared_raw);
    chunk c = chunks[blockIdx.x];
    int h0, heads = group_heads(&h0, H, G), L = c.t1 - c.t0, g = h0 / (H / G);
    auto issue = [&](int q) { /* the q-th head's tiles into its buffer; a sequence's first state is 0 */
        if (q < heads) {
            output_stage &st = sh.stage[q % 2];
            int h = h0 + q;
            copy_tile<false, THREADS, P_MAX>(st.x, x + at(c.t0, h, H, P), (size_t)H * P, L, P);
            copy_tile<false, THREADS, N_MAX>(st.S0, c.first ? states : states + state_at(c.t0, h, H, P, N),
                                             N, c.first ? 0 : P, N);
            if (threadIdx.x < CHUNK) {
                int i = threadIdx.x;
                cp_async4(&st.delta[i], delta + (size_t)(c.t0 + min(i, L - 1)) * H + h, i < L);
            }
        }
    };
    copy_tile<false, THREADS, N_MAX>(sh.C, C + at(c.t0, g, G, N), (size_t)G * N, L, N);
    copy_tile<false, THREADS, N_MAX>(sh.B, B + at(c.t0, g, G, N), (size_t)G * N, L, N);
    int m0 = block_row(), n0 = block_col(), kn = round16(N);
    float gs[4][4] = {};
    pipeline<2>(heads, issue, [&](int q) { /* C and B come with the first head */
        const output_stage &st = sh.stage[q % 2];
        int h = h0 + q;
        if (q == 0)
            warp_product<4, false, false>(gs, sh.C, sh.B, m0, n0, 0, kn); /* C_i · B_j */
        if (warp_id() == 0)
            sums_of(sh.cs2, sh.dt, st.delta[lane_id()], st.delta[lane_id() + 32], A_of(A_log, h));
        __syncthreads();
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int i = m0 + acc_row(e), k = n0 + 8 * j + acc_col(e);
                sh.M[i][k] = __float2bfloat16_rn(gs[j][e] * decay_between(sh.cs2, i, k) * sh.dt[k]);
            }
        __syncthreads();
        float intra[4][4] = {}, inter[4][4] = {};
        warp_product<4, false, true>(intra, sh.M, st.x, m0, n0, 0, CHUNK);
        if (!c.first)
            warp_product<4, false, false>(inter, sh.C, st.S0, m0, n0, 0, kn);
        float Dh = to_f32(D[h]);
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int i = m0 + acc_row(e), p = n0 + 8 * j + acc_col(e);
                intra[j][e] += exp2_fast(sh.cs2[i]) * inter[j][e] + Dh * to_f32(st.x[i][p]);
            }
        __syncthreads(); /* M is read: y goes out through it */
        store_acc<false>(&sh.M[0][0], LDP, CHUNK, P_MAX, intra, m0, n0);
        __syncthreads();
        write_tile<THREADS, CHUNK, P_MAX>(y + at(c.t0, h, H, P), (size_t)H * P, L, P, sh.M);
    });
}

/* ------------------------------------------------------------------ backward: the chunk's gradients */

struct grads_shared {
    act_t C[CHUNK][LDN], B[CHUNK][LDN];   /* [token][N] */
    act_t S0[P_MAX][LDN], dS[P_MAX][LDN]; /* [P][N] */
    act_t x[CHUNK][LDP], dy[CHUNK][LDP];  /* [token][P] */
    act_t M[CHUNK][LDP];                  /* [token i][token j] */
    act_t dx[CHUNK][LDP];                 /* dx on its way out: [token][P] */
    float cs2[CHUNK], dt[CHUNK];
    /* per-token sums, in parts summed in a fixed order: of V's rows (times Δ_j)
     * and C_i · dC's inter part and x_j · (dS B_j), one per column half; of
     * V's columns, one per row quarter */
    float rowV[2][CHUNK], cdot[2][CHUNK], zdot[2][CHUNK], colV_part[4][CHUNK];
    float dcs[CHUNK], colV[CHUNK], E[CHUNK];
    float red[THREADS / 32];
};

/* the two row sums a thread holds of a 16-row accumulator block (rows lane/4
 * and lane/4 + 8), whole over the quad, into part[row] by the quad's first lane */
static __device__ void put_row_sums(float *part, float r0, float r1, int m0)
{
    r0 = quad_sum(r0), r1 = quad_sum(r1);
    if (lane_id() % 4 == 0)
        part[m0 + lane_id() / 4] = r0, part[m0 + lane_id() / 4 + 8] = r1;
}

/* G = C Bᵀ and dM = dy xᵀ, then M (bf16), masked to j ≤ i, and the
 * sums of V = dM ⊙ L ⊙ G over rows (times Δ_j) and columns, V staying in
 * registers: a column's 16 rows of a warp are summed over the 8 lanes that
 * hold them (shuffles in a fixed tree), the warps' parts later. */
static __device__ void score_tiles(grads_shared &sh, const float (&gs)[4][4], int kp)
{
    int m0 = block_row(), n0 = block_col();
    float dm[4][4] = {};
    warp_product<4, false, false>(dm, sh.dy, sh.x, m0, n0, 0, kp);
    float row[2] = {0.0f, 0.0f}, col[4][2] = {};
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int i = m0 + acc_row(e), k = n0 + 8 * j + acc_col(e);
            float l = decay_between(sh.cs2, i, k), v = dm[j][e] * l * gs[j][e];
            sh.M[i][k] = __float2bfloat16_rn(gs[j][e] * l * sh.dt[k]);
            row[e / 2] += v * sh.dt[k];
            col[j][e % 2] += v;
        }
    put_row_sums(sh.rowV[warp_id() / 4], row[0], row[1], m0);
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int q = 0; q < 2; q++) {
            float x = col[j][q];
            for (int off = 4; off < 32; off *= 2)
                x += __shfl_xor_sync(0xffffffffu, x, off);
            if (lane_id() < 4)
                sh.colV_part[warp_id() % 4][n0 + 8 * j + 2 * lane_id() + q] = x;
        }
}

/* C_i · (e^{cs_i} S0ᵀ dy_i), dC's share through the chunk's start state
 * dotted with C_i, as e^{cs_i} dy_i · (S0 C_i): the state read out at the
 * chunk's tokens (C S0ᵀ, tokens × P) against dy */
static __device__ void state_dots(grads_shared &sh, chunk c, int kn)
{
    int m0 = block_row(), n0 = block_col();
    float out[4][4] = {}, dot[2] = {0.0f, 0.0f};
    if (!c.first)
        warp_product<4, false, false>(out, sh.C, sh.S0, m0, n0, 0, kn);
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dot[e / 2] += to_f32(sh.dy[m0 + acc_row(e)][n0 + 8 * j + acc_col(e)]) * out[j][e];
    int r = m0 + lane_id() / 4;
    put_row_sums(sh.cdot[warp_id() / 4], exp2_fast(sh.cs2[r]) * dot[0],
                 exp2_fast(sh.cs2[r + 8]) * dot[1], m0);
}

/* dx = Mᵀ dy + w_j dS B_j + D dy into sh.dx (written out by the caller), and
 * x_j · (dS B_j) */
static __device__ void grad_x(grads_shared &sh, chunk c, int kn, float Dh)
{
    int m0 = block_row(), n0 = block_col();
    float acc[4][4] = {}, state[4][4] = {};
    warp_product<4, true, true>(acc, sh.M, sh.dy, m0, n0, 0, CHUNK);
    if (!c.last)
        warp_product<4, false, false>(state, sh.B, sh.dS, m0, n0, 0, kn);
    float dot[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int t = m0 + acc_row(e), p = n0 + 8 * j + acc_col(e);
            float w = exp2_fast(sh.cs2[CHUNK - 1] - sh.cs2[t]) * sh.dt[t];
            dot[e / 2] += to_f32(sh.x[t][p]) * state[j][e];
            acc[j][e] += w * state[j][e] + Dh * to_f32(sh.dy[t][p]);
        }
    store_acc<false>(&sh.dx[0][0], LDP, CHUNK, P_MAX, acc, m0, n0);
    put_row_sums(sh.zdot[warp_id() / 4], dot[0], dot[1], m0);
}

/* Per token k (thread k): the parts of ∂L/∂cs_k, Σ_i V_ik and E_k */
static __device__ void token_parts(grads_shared &sh)
{
    int k = threadIdx.x;
    if (k >= CHUNK)
        return;
    float col = sh.colV_part[0][k] + sh.colV_part[1][k] + sh.colV_part[2][k] + sh.colV_part[3][k];
    float row = sh.rowV[0][k] + sh.rowV[1][k];
    float E = exp2_fast(sh.cs2[CHUNK - 1] - sh.cs2[k]) * (sh.zdot[0][k] + sh.zdot[1][k]);
    sh.colV[k] = col;
    sh.E[k] = E;
    sh.dcs[k] = row - sh.dt[k] * col + sh.cdot[0][k] + sh.cdot[1][k] - sh.dt[k] * E;
}

/* the sum over the warp of x, the same in every lane (a fixed tree) */
static __device__ __forceinline__ float warp_sum(float x)
{
    for (int off = 16; off > 0; off /= 2)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

/* Warp 0, lane l holding tokens l and l + 32: the chunk's end terms of
 * ∂L/∂cs_l, then R_k = Σ_{j≥k} ∂L/∂cs_j in place of dcs (a scan from the
 * chunk's end, in a fixed order), and Σ Δ_k R_k, returned to lane 0. Past the
 * chunk's end dt, E and dcs are 0, so whole halves can be summed. */
static __device__ float suffix_sums(grads_shared &sh, int L, float sdot)
{
    int l = lane_id();
    float through_state = warp_sum(sh.dt[l] * sh.E[l] + sh.dt[l + 32] * sh.E[l + 32]);
    float extra = exp2f(sh.cs2[L - 1]) * sdot + through_state;
    float lo = sh.dcs[l] + (l == L - 1 ? extra : 0.0f);
    float hi = sh.dcs[l + 32] + (l + 32 == L - 1 ? extra : 0.0f);
    for (int off = 1; off < 32; off *= 2) { /* suffix sums within each half */
        float a = __shfl_down_sync(0xffffffffu, lo, off), b = __shfl_down_sync(0xffffffffu, hi, off);
        if (l + off < 32)
            lo += a, hi += b;
    }
    lo += __shfl_sync(0xffffffffu, hi, 0); /* the whole upper half */
    sh.dcs[l] = lo, sh.dcs[l + 32] = hi;
    return warp_sum(sh.dt[l] * lo + sh.dt[l + 32] * hi);
}

/* a head's tiles of one chunk into shared memory (cp.async, uncommitted); a
 * sequence's first state and its last dS are 0 */
static __device__ void copy_head(grads_shared &sh, chunk c, int h, const act_t *x, const act_t *dy,
                                 const act_t *states, const act_t *dS, int H, int P, int N)
{
    int L = c.t1 - c.t0;
    copy_tile<false, THREADS, P_MAX>(sh.x, x + at(c.t0, h, H, P), (size_t)H * P, L, P);
    copy_tile<false, THREADS, P_MAX>(sh.dy, dy + at(c.t0, h, H, P), (size_t)H * P, L, P);
    copy_tile<false, THREADS, N_MAX>(sh.S0, c.first ? states : states + state_at(c.t0, h, H, P, N), N,
                                     c.first ? 0 : P, N);
    copy_tile<false, THREADS, N_MAX>(sh.dS, c.last ? dS : dS + state_at(c.t1, h, H, P, N), N,
                                     c.last ? 0 : P, N);
}

/* Every gradient of one chunk but dB and dC, for up to 8 heads of a group
 * (as chunk_output): dx and ddelta written, the chunk's shares of dA_log and
 * dD. G = C Bᵀ is made once for the heads, which share B and C; a head's
 * tiles load while the one before finishes its per-token sums. */
static __global__ void __launch_bounds__(THREADS, 2) /* two blocks an SM: about 108 KiB of shared memory each */
    chunk_grads(mamba2_ssd_grads_cuda g, work_layout w, const act_t *dy, const act_t *x,
                const float *delta, const act_t *A_log, const act_t *B, const act_t *C,
                const act_t *D, const act_t *states, int H, int P, int N, int G)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    grads_shared &sh = *reinterpret_cast<grads_shared *>(shared_raw);
    chunk c = w.chunks[blockIdx.x];
    int h0, heads = group_heads(&h0, H, G), L = c.t1 - c.t0, grp = h0 / (H / G);
    int kn = round16(N), kp = round16(P);
    copy_tile<false, THREADS, N_MAX>(sh.C, C + at(c.t0, grp, G, N), (size_t)G * N, L, N);
    copy_tile<false, THREADS, N_MAX>(sh.B, B + at(c.t0, grp, G, N), (size_t)G * N, L, N);
    copy_head(sh, c, h0, x, dy, states, w.dS, H, P, N);
    cp_async_commit();
    float gs[4][4] = {};
    for (int q = 0; q < heads; q++) {
        int h = h0 + q;
        float A = A_of(A_log, h);
        chunk_sums(sh.cs2, sh.dt, delta, c, h, H, A); /* while the tiles load */
        cp_async_wait<0>();
        __syncthreads();
        if (q == 0)
            warp_product<4, false, false>(gs, sh.C, sh.B, block_row(), block_col(), 0, kn); /* C_i · B_j */
        float dD_share = 0.0f, sdot_share = 0.0f; /* Σ dy · x over the chunk, ⟨S0, dS⟩ (zeros past them) */
        for (int idx = threadIdx.x; idx < CHUNK * P_MAX; idx += THREADS)
            dD_share += to_f32(sh.dy[idx / P_MAX][idx % P_MAX]) * to_f32(sh.x[idx / P_MAX][idx % P_MAX]);
        for (int idx = threadIdx.x; idx < P_MAX * N_MAX; idx += THREADS)
            sdot_share += to_f32(sh.S0[idx / N_MAX][idx % N_MAX]) * to_f32(sh.dS[idx / N_MAX][idx % N_MAX]);
        float sdot = block_sum(sdot_share, sh.red), dD = block_sum(dD_share, sh.red);

        score_tiles(sh, gs, kp);
        __syncthreads();
        state_dots(sh, c, kn);
        grad_x(sh, c, kn, to_f32(D[h]));
        __syncthreads(); /* the tiles are read: the next head's may come */
        write_tile<THREADS, CHUNK, P_MAX>(static_cast<act_t *>(g.dx) + at(c.t0, h, H, P), (size_t)H * P, L,
                                          P, sh.dx);
        if (q + 1 < heads) {
            copy_head(sh, c, h + 1, x, dy, states, w.dS, H, P, N);
            cp_async_commit();
        }
        token_parts(sh);
        __syncthreads();
        if (warp_id() == 0) {
            float dA = suffix_sums(sh, L, sdot);
            if (threadIdx.x == 0) {
                w.dA_part[(size_t)blockIdx.x * H + h] = dA;
                w.dD_part[(size_t)blockIdx.x * H + h] = dD;
            }
        }
        __syncthreads(); /* the sums are read: the next head's chunk_sums may overwrite them */
        int k = threadIdx.x;
        if (k < L)
            g.ddelta[(size_t)(c.t0 + k) * H + h] = sh.colV[k] + sh.E[k] + A * sh.dcs[k];
    }
}

/* ------------------------------------------------------------------ backward: the sums */

/* ------------------------------------------------------------------ backward: dB and dC */

/* one head's tiles in shared memory, as cp.async brings them */
struct bc_stage {
    act_t S0[P_MAX][LDN], dS[P_MAX][LDN]; /* [P][N] */
    act_t x[CHUNK][LDP], dy[CHUNK][LDP];  /* [token][P] */
    float delta[CHUNK];                   /* 0 past the chunk's end */
};

struct bc_shared {
    act_t C[CHUNK][LDN], B[CHUNK][LDN]; /* the group's: [token][N] */
    bc_stage stage[2];                  /* the head being used, the next one loading */
    act_t W[CHUNK][LDP];                /* Σ over the heads of W, [token i][token j] */
    float cs2[CHUNK], dt[CHUNK];
};

/* dB and dC of one chunk, per (chunk, group), the group's heads in order in
 * fp32 registers. B and C are shared by a group's heads, so its heads' W sum
 * before the products with them:
 *     dC_i = Σ_j W̄_ij B_j + Σ_h e^{cs_i} S0ᵀ dy_i,   W̄ = Σ_h W (masked, decayed)
 *     dB_j = Σ_i W̄_ij C_i + Σ_h w_j dSᵀ x_j
 * (the second sums over the heads of a group's h-dependent terms). A head's
 * tiles load by cp.async while the one before is multiplied. */
static __global__ void __launch_bounds__(THREADS)
    chunk_grads_BC(act_t *dB, act_t *dC, const act_t *dy, const act_t *x, const float *delta,
                   const act_t *A_log, const act_t *B, const act_t *C, const act_t *states,
                   const act_t *dS, const chunk *chunks, int H, int P, int N, int G)
{
    await_inputs();
    extern __shared__ __align__(16) unsigned char shared_raw[];
    bc_shared &sh = *reinterpret_cast<bc_shared *>(shared_raw);
    chunk c = chunks[blockIdx.x];
    int grp = blockIdx.y, per_group = H / G, L = c.t1 - c.t0, kp = round16(P);
    /* the q-th head's tiles into its buffer; a sequence's first state and
     * its last dS are 0 */
    auto issue = [&](int q) {
        if (q < per_group) {
            bc_stage &st = sh.stage[q % 2];
            int h = grp * per_group + q;
            copy_tile<false, THREADS, P_MAX>(st.x, x + at(c.t0, h, H, P), (size_t)H * P, L, P);
            copy_tile<false, THREADS, P_MAX>(st.dy, dy + at(c.t0, h, H, P), (size_t)H * P, L, P);
            copy_tile<false, THREADS, N_MAX>(st.S0, c.first ? states : states + state_at(c.t0, h, H, P, N),
                                             N, c.first ? 0 : P, N);
            copy_tile<false, THREADS, N_MAX>(st.dS, c.last ? dS : dS + state_at(c.t1, h, H, P, N), N,
                                             c.last ? 0 : P, N);
            if (threadIdx.x < CHUNK) {
                int i = threadIdx.x;
                cp_async4(&st.delta[i], delta + (size_t)(c.t0 + min(i, L - 1)) * H + h, i < L);
            }
        }
    };
    copy_tile<false, THREADS, N_MAX>(sh.C, C + at(c.t0, grp, G, N), (size_t)G * N, L, N);
    copy_tile<false, THREADS, N_MAX>(sh.B, B + at(c.t0, grp, G, N), (size_t)G * N, L, N);
    int m0 = block_row(), n0 = block_col(), r0 = wide_row(), c0 = wide_col();
    float w_sum[4][4] = {}, dC_state[8][4] = {}, dB_state[8][4] = {};
    pipeline<2>(per_group, issue, [&](int q) { /* C and B come with head 0 */
        const bc_stage &st = sh.stage[q % 2];
        if (warp_id() == 0)
            sums_of(sh.cs2, sh.dt, st.delta[lane_id()], st.delta[lane_id() + 32],
                    A_of(A_log, grp * per_group + q));
        __syncthreads();
        float dm[4][4] = {};
        warp_product<4, false, false>(dm, st.dy, st.x, m0, n0, 0, kp); /* dy_i · x_j */
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int i = m0 + acc_row(e), k = n0 + 8 * j + acc_col(e);
                w_sum[j][e] += dm[j][e] * decay_between(sh.cs2, i, k) * sh.dt[k];
            }
        float part[8][4] = {};
        if (!c.first)
            warp_product<8, false, true>(part, st.dy, st.S0, r0, c0, 0, kp); /* dy S0: [token][N] */
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                dC_state[j][e] += exp2_fast(sh.cs2[r0 + acc_row(e)]) * part[j][e];
                part[j][e] = 0.0f;
            }
        if (!c.last)
            warp_product<8, false, true>(part, st.x, st.dS, r0, c0, 0, kp); /* x dS: [token][N] */
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int t = r0 + acc_row(e);
                dB_state[j][e] += exp2_fast(sh.cs2[CHUNK - 1] - sh.cs2[t]) * sh.dt[t] * part[j][e];
            }
    });
    store_acc<false>(&sh.W[0][0], LDP, CHUNK, CHUNK, w_sum, m0, n0);
    __syncthreads();
    if (c0 >= N)
        return;
    warp_product<8, false, true>(dC_state, sh.W, sh.B, r0, c0, 0, CHUNK); /* += W̄ B */
    store_acc<false>(dC + at(c.t0, grp, G, N), (size_t)G * N, L, N, dC_state, r0, c0);
    warp_product<8, true, true>(dB_state, sh.W, sh.C, r0, c0, 0, CHUNK); /* += W̄ᵀ C */
    store_acc<false>(dB + at(c.t0, grp, G, N), (size_t)G * N, L, N, dB_state, r0, c0);
}

/* dA_log[h] += A_h Σ_chunks Σ Δ R, dD[h] += Σ_chunks Σ dy · x; a block per head */
static __global__ void __launch_bounds__(THREADS)
    sum_parameters(float *dA_log, float *dD, const float *dA_part, const float *dD_part,
                   const act_t *A_log, int chunks, int H)
{
    await_inputs();
    __shared__ float red[THREADS / 32];
    int h = blockIdx.x;
    float a = 0.0f, dd = 0.0f;
    for (int c = threadIdx.x; c < chunks; c += THREADS) {
        a += dA_part[(size_t)c * H + h];
        dd += dD_part[(size_t)c * H + h];
    }
    a = block_sum(a, red);
    dd = block_sum(dd, red);
    if (threadIdx.x == 0) {
        dA_log[h] += A_of(A_log, h) * a;
        dD[h] += dd;
    }
}

/* ------------------------------------------------------------------ entry points */

/* the blocks of group_heads() over the heads */
static int head_blocks(const mamba2_ssd_dims *d) { return d->G * ceil_div(d->H / d->G, GROUP_HEADS); }

static void check_dims(const mamba2_ssd_dims *d)
{
    if (d->P < 1 || d->P > P_MAX || d->N < 1 || d->N > N_MAX || d->G < 1 || d->H % d->G != 0) {
        fprintf(stderr, "mamba2 SSD on CUDA: head dim %d, state size %d, %d heads in %d groups "
                        "(supported: head dim ≤ %d, state size ≤ %d, groups dividing the heads)\n",
                d->P, d->N, d->H, d->G, P_MAX, N_MAX);
        exit(1);
    }
}

/* the walk over every sequence's chunks (walk_states) into `slots` */
template <bool FORWARD>
static void walk(act_t *slots, const void *u, const float *delta, const void *A_log, const void *v,
                 const mamba2_ssd_dims *d)
{
    auto kernel = walk_states<FORWARD>;
    size_t bytes = allow_shared(kernel, sizeof(walk_shared));
    launch_kernel(kernel, dim3(d->n_seqs, d->H), THREADS, bytes, slots, act(u), delta, act(A_log), act(v),
                  d->cu_seqlens_backend, d->H, d->P, d->N, d->G);
}

void mamba2_ssd_forward_cuda(void *y, void *checkpoints, const void *x, const float *delta,
                             const void *A_log, const void *B, const void *C, const void *D,
                             const mamba2_ssd_dims *d, float *work)
{
    int n = d->cu_seqlens[d->n_seqs];
    if (n == 0)
        return;
    check_dims(d);
    walk<true>(act(checkpoints), x, delta, A_log, B, d);
    work_layout w = carve(work, n, d);
    int chunks = build_chunks(w.chunks, d->cu_seqlens, d->cu_seqlens_backend, d->n_seqs);
    size_t bytes = allow_shared(chunk_output, sizeof(output_shared));
    launch_kernel(chunk_output, dim3(chunks, head_blocks(d)), THREADS, bytes, act(y), act(x), delta, act(A_log), act(B),
                  act(C), act(D), act(checkpoints), w.chunks, d->H, d->P, d->N, d->G);
}

void mamba2_ssd_backward_cuda(const mamba2_ssd_grads_cuda *g, const void *dy, const void *x,
                              const float *delta, const void *A_log, const void *B, const void *C,
                              const void *D, const void *checkpoints, const mamba2_ssd_dims *d,
                              float *work)
{
    int n = d->cu_seqlens[d->n_seqs];
    if (n == 0)
        return;
    check_dims(d);
    work_layout w = carve(work, n, d);
    int chunks = build_chunks(w.chunks, d->cu_seqlens, d->cu_seqlens_backend, d->n_seqs);
    walk<false>(w.dS, dy, delta, A_log, C, d);
    size_t bytes = allow_shared(chunk_grads, sizeof(grads_shared));
    launch_kernel(chunk_grads, dim3(chunks, head_blocks(d)), THREADS, bytes, *g, w, act(dy), act(x), delta, act(A_log),
                  act(B), act(C), act(D), act(checkpoints), d->H, d->P, d->N, d->G);
    bytes = allow_shared(chunk_grads_BC, sizeof(bc_shared));
    launch_kernel(chunk_grads_BC, dim3(chunks, d->G), THREADS, bytes, act(g->dB), act(g->dC), act(dy), act(x), delta,
                  act(A_log), act(B), act(C), act(checkpoints), w.dS, w.chunks, d->H, d->P, d->N, d->G);
    launch_kernel(sum_parameters, d->H, THREADS, 0, g->dA_log, g->dD, w.dA_part, w.dD_part, act(A_log), chunks, d->H);
}

/* ------------------------------------------------------------------ generation */

#define STEP_THREADS 128 /* 4 warps */
#define STEP_ROWS 8      /* a block's rows of a head's state: 8 blocks to a head of 64 */

/* One position of generation (mamba2_ssd_step_cpu) for sequence b and head h
 * (blockIdx.x = b·H + h), rows [STEP_ROWS·blockIdx.y, +STEP_ROWS) of the
 * state: a warp takes one row p at a time, its lanes the row's columns j,
 *     S[p,j] = a S[p,j] + (Δ x_p) B_j,   y_p = Σ_j S[p,j] C_j + D x_p.
 * A token is too little work for the tensor cores: the state is read and
 * written once, in fp32, by rows of coalesced floats, and y_p is a warp sum. */
static __global__ void __launch_bounds__(STEP_THREADS)
step_rows(act_t *y, float *states, const act_t *x, const float *delta, const act_t *A_log,
          const act_t *B, const act_t *C, const act_t *D, int H, int P, int N, int G)
{
    await_inputs();
    int b = blockIdx.x / H, h = blockIdx.x % H;
    size_t bc = at(b, h / (H / G), G, N);
    float dt = delta[(size_t)b * H + h];
    float a = expf(dt * A_of(A_log, h)), Dh = to_f32(D[h]);
    int p_end = min(P, (int)(blockIdx.y + 1) * STEP_ROWS);
    for (int p = blockIdx.y * STEP_ROWS + warp_id(); p < p_end; p += STEP_THREADS / 32) {
        size_t xo = at(b, h, H, P) + p; /* and the row's place among the states' rows */
        float xp = to_f32(x[xo]), u = dt * xp;
        float *row = states + xo * N;
        float acc = 0.0f;
#pragma unroll 4
        for (int j = lane_id(); j < N; j += 32) {
            float s = a * row[j] + u * to_f32(B[bc + j]);
            row[j] = s;
            acc += s * to_f32(C[bc + j]);
        }
        acc = warp_sum(acc);
        if (lane_id() == 0)
            from_f32(&y[xo], acc + Dh * xp);
    }
}

void mamba2_ssd_step_cuda(void *y, float *states, const void *x, const float *delta,
                          const void *A_log, const void *B, const void *C, const void *D,
                          const mamba2_ssd_dims *d, int n_seqs)
{
    if (n_seqs <= 0)
        return;
    dim3 grid((unsigned)n_seqs * d->H, ceil_div(d->P, STEP_ROWS));
    launch_kernel(step_rows, grid, STEP_THREADS, 0, act(y), states, act(x), delta, act(A_log), act(B), act(C), act(D),
                  d->H, d->P, d->N, d->G);
}
