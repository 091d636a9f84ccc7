/* The gated linear recurrence of GLA on the GPU, in chunks of GLA_CHUNK tokens:
 * the approach of fla's chunk GLA, with the math and semantics of
 * gla_recurrence_cpu.c (per head and sequence, S_t = diag(e^{gk_t}) S_{t−1} + k_tᵀ v_t,
 * o_t = scale · q_t S_t, the state 0 at each sequence's start).
 *
 * Precision: the activations (q, k, v, gk, o and their gradients) are bf16 in
 * memory, widened to fp32 as they are loaded and rounded to nearest even as
 * they are stored; everything else (the arithmetic, b, A, dA, the states in
 * `checkpoints` and dS) is fp32.
 *
 * A chunk of L tokens of one head starts from the state S0 (0 at a sequence's
 * start). With b_t = Σ gk from the chunk's start to t (per key column) and
 * b_L the chunk's last:
 *     o_t   = scale·(q_t ⊙ e^{b_t}) S0 + Σ_{u≤t} A_tu v_u,  A_tu = scale·Σ_i q_ti k_ui e^{b_ti − b_ui}
 *     S_end = diag(e^{b_L}) S0 + Σ_u (k_u ⊙ e^{b_L − b_u})ᵀ v_u
 * Every exponent is a later b minus an earlier one, ≤ 0 for gates that are
 * log-sigmoids, so nothing overflows however strong the decay: A is summed
 * term by term rather than factored into two matrices.
 *
 * Forward: (1) b and the table of chunks; (2) per (sequence, head, state tile)
 * a walk over the chunks in order carries S and stores it at each chunk start
 * but a sequence's first in `checkpoints` (the CPU's layout); (3) A per
 * (chunk, head); (4) o per (chunk, head, value tile).
 *
 * Backward, with dS = ∂L/∂S_end (0 at a sequence's end) and dA_tu = scale·do_t·v_u:
 *     ∂L/∂S0 = diag(e^{b_L}) dS + scale·Σ_t (q_t ⊙ e^{b_t})ᵀ do_t    (= dS of the chunk before)
 *     dv_u   = Σ_{t≥u} A_tu do_t + (k_u ⊙ e^{b_L − b_u}) dS
 *     dq_ti  = scale·e^{b_ti} (S0 do_tᵀ)_i + Σ_{u≤t} dA_tu k_ui e^{b_ti − b_ui}
 *     dk_ui  = Σ_{t≥u} dA_tu q_ti e^{b_ti − b_ui} + e^{b_Li − b_ui} (dS v_uᵀ)_i
 *     ∂L/∂b_t = q_t ⊙ dq_t − k_t ⊙ dk_t, and for b_L (which S_end also holds)
 *               e^{b_L} ⊙ rowsum(S0 ⊙ dS) + Σ_u k_u ⊙ (the dS part of dk_u) more
 *     dgk_t  = Σ_{t' ≥ t in the chunk} ∂L/∂b_t'   (b is a running sum of gk)
 * (1) b and the table; (2) the walk backwards stores each chunk's dS in `work`
 * (the checkpoints' layout); (3) A and dA per (chunk, head); (4) dv per (chunk,
 * head, value tile); (5) dq, dk, dgk per (chunk, head, key tile).
 *
 * Each output value is computed by one thread, its terms added in an order
 * fixed by the shapes: results are the same run to run. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "gla_cuda.h"

#define CHUNK GLA_CHUNK
#define BLOCK 256
#define TILE 32                         /* key or value columns of one block */
#define PAD (TILE + 1)                  /* shared rows padded: a column spans all banks */
#define ROW_GROUPS (BLOCK / TILE)       /* threads sharing one column */
#define STATE_ROWS (TILE / ROW_GROUPS)  /* rows of a state tile per thread */
#define CHUNK_ROWS (CHUNK / ROW_GROUPS) /* rows of a chunk per thread */
#define TABLE_THREADS 1024

/* tokens [t0, t1) of one sequence, and whether they are its first / last chunk */
typedef struct chunk {
    int t0, t1, first, last;
} chunk;

/* the CUDA recurrence's share of `work` */
typedef struct work_layout {
    float *b;       /* [n,H,dk] gate logits summed from each chunk's start */
    float *A, *dA;  /* [n,H,CHUNK]: row t holds A_tu (dA_tu) for u from its chunk's start */
    float *dS;      /* ∂L/∂(state at a chunk's end), in the checkpoints' layout */
    chunk *chunks;  /* at most n */
} work_layout;

static work_layout carve(float *work, int n, const gla_recurrence_dims *d)
{
    size_t nH = (size_t)n * d->H;
    work_layout w;
    w.b = work;
    w.A = w.b + nH * d->dk;
    w.dA = w.A + nH * CHUNK;
    w.dS = w.dA + nH * CHUNK;
    w.chunks = (chunk *)(w.dS + gla_recurrence_checkpoint_floats(n, d->H, d->dk, d->dv));
    return w;
}

size_t gla_recurrence_work_floats_cuda(int n, int H, int dk, int dv)
{
    size_t nH = (size_t)n * H;
    return nH * dk + 2 * nH * CHUNK + gla_recurrence_checkpoint_floats(n, H, dk, dv) +
           (size_t)n * (sizeof(chunk) / sizeof(float));
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* ------------------------------------------------------------------ bf16 activations */

/* the entry points' void pointers: activations of the CUDA op table */
static const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static act_t *act(void *p) { return static_cast<act_t *>(p); }

/* a gradient += x, the sum rounded once to bf16 */
static __device__ __forceinline__ void add_into(act_t *grad, float x)
{
    from_f32(grad, to_f32(*grad) + x);
}

/* ------------------------------------------------------------------ addressing */

/* offset of token t, head h in a [n, H, width] tensor */
static __device__ __forceinline__ size_t at(int t, int h, int H, int width)
{
    return ((size_t)t * H + h) * width;
}

/* the state of head h before token t0 (a chunk start, not a sequence's first):
 * slot t0/CHUNK − 1, as gla_recurrence_cpu.c keeps it */
static __device__ __forceinline__ size_t state_at(int t0, int h, int H, int dk, int dv)
{
    return ((size_t)(t0 / CHUNK - 1) * H + h) * dk * dv;
}

/* ------------------------------------------------------------------ the chunks */

/* exclusive prefix sum of x over the block of TABLE_THREADS, its total in *total */
static __device__ int block_exclusive_sum(int x, int *total)
{
    __shared__ int warp_sums[TABLE_THREADS / 32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int inclusive = x;
    for (int off = 1; off < 32; off *= 2) {
        int y = __shfl_up_sync(0xffffffffu, inclusive, off);
        if (lane >= off)
            inclusive += y;
    }
    if (lane == 31)
        warp_sums[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
        int w = warp_sums[lane];
        for (int off = 1; off < 32; off *= 2) {
            int y = __shfl_up_sync(0xffffffffu, w, off);
            if (lane >= off)
                w += y;
        }
        warp_sums[lane] = w;
    }
    __syncthreads();
    int before = inclusive - x + (warp > 0 ? warp_sums[warp - 1] : 0);
    *total = warp_sums[TABLE_THREADS / 32 - 1];
    __syncthreads(); /* the next call writes warp_sums again */
    return before;
}

/* one block: every sequence's chunks, in order, from the device offsets */
static __global__ void build_chunk_table(chunk *chunks, const int32_t *cu, int n_seqs)
{
    int done = 0; /* chunks of the sequences of earlier rounds */
    for (int s0 = 0; s0 < n_seqs; s0 += TABLE_THREADS) {
        int s = s0 + threadIdx.x;
        int begin = s < n_seqs ? cu[s] : 0, end = s < n_seqs ? cu[s + 1] : 0;
        int count = (end - begin + CHUNK - 1) / CHUNK, total;
        chunk *out = chunks + done + block_exclusive_sum(count, &total);
        for (int j = 0; j < count; j++) {
            int t0 = begin + j * CHUNK;
            out[j] = chunk{t0, min(t0 + CHUNK, end), j == 0, j == count - 1};
        }
        done += total;
    }
}

/* b: gk summed from each chunk's start */
static __global__ void chunk_gate_sums(float *b, const act_t *gk, const chunk *chunks, int H,
                                       int dk)
{
    chunk c = chunks[blockIdx.x];
    int h = blockIdx.y;
    for (int i = threadIdx.x; i < dk; i += blockDim.x) {
        float sum = 0.0f;
        for (int t = c.t0; t < c.t1; t++) {
            size_t x = at(t, h, H, dk) + i;
            sum += to_f32(gk[x]);
            b[x] = sum;
        }
    }
}

/* the chunk table and b for this batch; returns the number of chunks */
static int prepare_chunks(const work_layout *w, const act_t *gk, const gla_recurrence_dims *d)
{
    int count = 0;
    for (int s = 0; s < d->n_seqs; s++)
        count += ceil_div(d->cu_seqlens[s + 1] - d->cu_seqlens[s], CHUNK);
    build_chunk_table<<<1, TABLE_THREADS>>>(w->chunks, d->cu_seqlens_backend, d->n_seqs);
    CUDA_CHECK_LAUNCH();
    chunk_gate_sums<<<dim3(count, d->H), BLOCK>>>(w->b, gk, w->chunks, d->H, d->dk);
    CUDA_CHECK_LAUNCH();
    return count;
}

/* ------------------------------------------------------------------ tiles in shared memory */

/* tile[r][c] = x[t0 + r, h, c0 + c] for r < rows and c0 + c < width, else 0,
 * over tile_rows rows; x is an activation (bf16) or an intermediate (fp32) */
template <typename T>
static __device__ void load_rows(float (*tile)[PAD], int tile_rows, const T *x, int t0, int rows,
                                 int h, int H, int width, int c0)
{
    for (int e = threadIdx.x; e < tile_rows * TILE; e += blockDim.x) {
        int r = e / TILE, c = e % TILE;
        tile[r][c] =
            r < rows && c0 + c < width ? to_f32(x[at(t0 + r, h, H, width) + c0 + c]) : 0.0f;
    }
}

/* the query as the chunk's start state sees it: scale · q_t ⊙ e^{b_t} */
static __device__ void load_query_from_start(float (*tile)[PAD], const act_t *q, const float *b,
                                             int t0, int rows, int h, int H, int dk, int i0,
                                             float scale)
{
    for (int e = threadIdx.x; e < CHUNK * TILE; e += blockDim.x) {
        int r = e / TILE, c = e % TILE;
        size_t x = at(t0 + r, h, H, dk) + i0 + c;
        tile[r][c] = r < rows && i0 + c < dk ? scale * to_f32(q[x]) * expf(b[x]) : 0.0f;
    }
}

/* the key as it reaches the chunk's end state: k_u ⊙ e^{b_L − b_u} */
static __device__ void load_key_to_end(float (*tile)[PAD], const act_t *k, const float *b, int t0,
                                       int rows, int h, int H, int dk, int i0)
{
    const float *b_last = b + at(t0 + rows - 1, h, H, dk) + i0;
    for (int e = threadIdx.x; e < CHUNK * TILE; e += blockDim.x) {
        int r = e / TILE, c = e % TILE;
        size_t x = at(t0 + r, h, H, dk) + i0 + c;
        tile[r][c] = r < rows && i0 + c < dk ? to_f32(k[x]) * expf(b_last[c] - b[x]) : 0.0f;
    }
}

/* decay[c] = e^{b_L}: how the chunk's start state reaches its end */
static __device__ void load_chunk_decay(float *decay, const float *b, int t_last, int h, int H,
                                        int dk, int i0)
{
    for (int c = threadIdx.x; c < TILE; c += blockDim.x)
        decay[c] = i0 + c < dk ? expf(b[at(t_last, h, H, dk) + i0 + c]) : 0.0f;
}

/* tile[i][j] = S[i0 + i, j0 + j] of a dk×dv state, 0 outside it */
static __device__ void load_state(float (*tile)[PAD], const float *S, int i0, int j0, int dk, int dv)
{
    for (int e = threadIdx.x; e < TILE * TILE; e += blockDim.x) {
        int i = e / TILE, j = e % TILE;
        tile[i][j] = i0 + i < dk && j0 + j < dv ? S[(size_t)(i0 + i) * dv + j0 + j] : 0.0f;
    }
}

/* ------------------------------------------------------------------ per-thread products */

/* A thread owns column threadIdx.x % TILE and the rows group + ROW_GROUPS·a. */
static __device__ __forceinline__ int my_column() { return threadIdx.x % TILE; }
static __device__ __forceinline__ int my_group() { return threadIdx.x / TILE; }

/* acc[a] += Σ_{m<depth} P[row][m] · M[m][col] over the thread's CHUNK_ROWS rows */
static __device__ void accumulate_rows(float *acc, const float (*P)[PAD], const float (*M)[PAD],
                                       int depth)
{
    int col = my_column(), group = my_group();
#pragma unroll
    for (int a = 0; a < CHUNK_ROWS; a++) {
        int row = group + ROW_GROUPS * a;
        float sum = 0.0f;
        for (int m = 0; m < depth; m++)
            sum += P[row][m] * M[m][col];
        acc[a] += sum;
    }
}

/* a state tile carried across chunks: S = diag(decay) S + Pᵀ X over `rows` tokens */
static __device__ void advance_state(float *S, const float (*P)[PAD], const float (*X)[PAD],
                                     const float *decay, int rows)
{
    int col = my_column(), group = my_group();
#pragma unroll
    for (int a = 0; a < STATE_ROWS; a++) {
        int i = group + ROW_GROUPS * a;
        float sum = decay[i] * S[a];
        for (int u = 0; u < rows; u++)
            sum += P[u][i] * X[u][col];
        S[a] = sum;
    }
}

static __device__ void store_state(float *dst, const float *S, int i0, int j0, int dk, int dv)
{
    int col = my_column(), group = my_group();
#pragma unroll
    for (int a = 0; a < STATE_ROWS; a++) {
        int i = i0 + group + ROW_GROUPS * a, j = j0 + col;
        if (i < dk && j < dv)
            dst[(size_t)i * dv + j] = S[a];
    }
}

/* ------------------------------------------------------------------ the walks over the chunks */

/* Block: one (sequence, head) and one TILE×TILE tile of the state. Carries
 * the state through the chunks in order; each start but the first is kept. */
static __global__ void states_forward(float *checkpoints, const act_t *k, const act_t *v,
                                      const float *b, const int32_t *cu, int H, int dk, int dv)
{
    __shared__ float kd[CHUNK][PAD], vs[CHUNK][PAD], decay[TILE];
    int s = blockIdx.x / H, h = blockIdx.x % H, i0 = blockIdx.y * TILE, j0 = blockIdx.z * TILE;
    int begin = cu[s], end = cu[s + 1];
    float S[STATE_ROWS] = {0.0f};
    for (int t0 = begin; t0 < end; t0 += CHUNK) {
        if (t0 > begin)
            store_state(checkpoints + state_at(t0, h, H, dk, dv), S, i0, j0, dk, dv);
        int t1 = min(t0 + CHUNK, end);
        if (t1 == end)
            break; /* the state after the sequence is not needed */
        load_key_to_end(kd, k, b, t0, t1 - t0, h, H, dk, i0);
        load_rows(vs, CHUNK, v, t0, t1 - t0, h, H, dv, j0);
        load_chunk_decay(decay, b, t1 - 1, h, H, dk, i0);
        __syncthreads();
        advance_state(S, kd, vs, decay, t1 - t0);
        __syncthreads();
    }
}

/* The same walk backwards: G = ∂L/∂(state at the current chunk's end), kept
 * for every chunk but a sequence's last (whose G is 0). */
static __global__ void states_backward(float *dS, const act_t *q, const act_t *dout,
                                       const float *b, const int32_t *cu, int H, int dk, int dv,
                                       float scale)
{
    __shared__ float qe[CHUNK][PAD], dos[CHUNK][PAD], decay[TILE];
    int s = blockIdx.x / H, h = blockIdx.x % H, i0 = blockIdx.y * TILE, j0 = blockIdx.z * TILE;
    int begin = cu[s], end = cu[s + 1];
    float G[STATE_ROWS] = {0.0f};
    for (int t0 = begin + (end - begin - 1) / CHUNK * CHUNK;; t0 -= CHUNK) {
        int t1 = min(t0 + CHUNK, end);
        if (t1 < end)
            store_state(dS + state_at(t1, h, H, dk, dv), G, i0, j0, dk, dv);
        if (t0 == begin)
            break; /* the sequence's start state is 0: its gradient is not needed */
        load_query_from_start(qe, q, b, t0, t1 - t0, h, H, dk, i0, scale);
        load_rows(dos, CHUNK, dout, t0, t1 - t0, h, H, dv, j0);
        load_chunk_decay(decay, b, t1 - 1, h, H, dk, i0);
        __syncthreads();
        advance_state(G, qe, dos, decay, t1 - t0);
        __syncthreads();
    }
}

/* ------------------------------------------------------------------ within the chunks */

/* out[t, h, u] = scale·Σ_c x_tc y_uc (· e^{b_tc − b_uc} when GATED) for u ≤ t in
 * the chunk, 0 for the other u < CHUNK: A from (q, k), dA from (do, v).
 * Block: one (chunk, head); a thread owns 4×4 (t, u) pairs. */
template <bool GATED>
static __global__ void chunk_pairs(float *out, const act_t *x, const act_t *y, const float *b,
                                   const chunk *chunks, int H, int width, float scale)
{
    __shared__ float xs[CHUNK][PAD], ys[CHUNK][PAD], bs[GATED ? CHUNK : 1][PAD];
    chunk c = chunks[blockIdx.x];
    int h = blockIdx.y, L = c.t1 - c.t0, tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {{0.0f}};
    for (int c0 = 0; c0 < width; c0 += TILE) {
        load_rows(xs, CHUNK, x, c.t0, L, h, H, width, c0);
        load_rows(ys, CHUNK, y, c.t0, L, h, H, width, c0);
        if (GATED)
            load_rows(bs, CHUNK, b, c.t0, L, h, H, width, c0);
        __syncthreads();
#pragma unroll
        for (int p = 0; p < 4; p++)
#pragma unroll
            for (int r = 0; r <= p; r++) { /* column blocks right of the diagonal are 0 */
                int t = ty + 16 * p, u = tx + 16 * r;
                if (u > t)
                    continue;
                float sum = 0.0f;
                for (int m = 0; m < TILE; m++) {
                    if constexpr (GATED)
                        sum += xs[t][m] * ys[u][m] * expf(bs[t][m] - bs[u][m]);
                    else
                        sum += xs[t][m] * ys[u][m];
                }
                acc[p][r] += sum;
            }
        __syncthreads();
    }
#pragma unroll
    for (int p = 0; p < 4; p++)
#pragma unroll
        for (int r = 0; r < 4; r++) {
            int t = ty + 16 * p, u = tx + 16 * r;
            if (t < L)
                out[at(c.t0 + t, h, H, CHUNK) + u] = u <= t ? scale * acc[p][r] : 0.0f;
        }
}

/* o = scale·(q ⊙ e^b) S0 + A v for one value tile. Block: (chunk, head, value tile). */
static __global__ void chunk_output(act_t *o, const act_t *q, const act_t *v, const float *b,
                                    const float *A, const float *checkpoints, const chunk *chunks,
                                    int H, int dk, int dv, float scale)
{
    __shared__ float ps[CHUNK][PAD], ms[TILE][PAD];
    chunk c = chunks[blockIdx.x];
    int h = blockIdx.y, j0 = blockIdx.z * TILE, L = c.t1 - c.t0;
    float acc[CHUNK_ROWS] = {0.0f};
    if (!c.first) {
        const float *S0 = checkpoints + state_at(c.t0, h, H, dk, dv);
        for (int i0 = 0; i0 < dk; i0 += TILE) {
            load_query_from_start(ps, q, b, c.t0, L, h, H, dk, i0, scale);
            load_state(ms, S0, i0, j0, dk, dv);
            __syncthreads();
            accumulate_rows(acc, ps, ms, TILE);
            __syncthreads();
        }
    }
    for (int u0 = 0; u0 < L; u0 += TILE) {
        load_rows(ps, CHUNK, A, c.t0, L, h, H, CHUNK, u0);
        load_rows(ms, TILE, v, c.t0 + u0, L - u0, h, H, dv, j0);
        __syncthreads();
        accumulate_rows(acc, ps, ms, TILE);
        __syncthreads();
    }
    int j = j0 + my_column();
#pragma unroll
    for (int a = 0; a < CHUNK_ROWS; a++) {
        int t = my_group() + ROW_GROUPS * a;
        if (t < L && j < dv)
            from_f32(&o[at(c.t0 + t, h, H, dv) + j], acc[a]);
    }
}

/* dv += Aᵀ do + (k ⊙ e^{b_L − b}) dS for one value tile. Block: (chunk, head, value tile). */
static __global__ void chunk_dv(act_t *dv_out, const act_t *k, const act_t *dout, const float *b,
                                const float *A, const float *dS, const chunk *chunks, int H,
                                int dk, int dv)
{
    __shared__ float at_rows[TILE][CHUNK + 1], ps[CHUNK][PAD], ms[TILE][PAD];
    chunk c = chunks[blockIdx.x];
    int h = blockIdx.y, j0 = blockIdx.z * TILE, L = c.t1 - c.t0;
    int col = my_column(), group = my_group();
    float acc[CHUNK_ROWS] = {0.0f};
    for (int r0 = 0; r0 < L; r0 += TILE) { /* acc[u] += Σ_t A_tu do_t over TILE rows t */
        for (int e = threadIdx.x; e < TILE * CHUNK; e += blockDim.x) {
            int r = e / CHUNK, u = e % CHUNK;
            at_rows[r][u] = r0 + r < L ? A[at(c.t0 + r0 + r, h, H, CHUNK) + u] : 0.0f;
        }
        load_rows(ms, TILE, dout, c.t0 + r0, L - r0, h, H, dv, j0);
        __syncthreads();
#pragma unroll
        for (int a = 0; a < CHUNK_ROWS; a++) {
            int u = group + ROW_GROUPS * a;
            float sum = 0.0f;
            for (int r = 0; r < TILE; r++)
                sum += at_rows[r][u] * ms[r][col];
            acc[a] += sum;
        }
        __syncthreads();
    }
    if (!c.last) {
        const float *dS_end = dS + state_at(c.t1, h, H, dk, dv);
        for (int i0 = 0; i0 < dk; i0 += TILE) {
            load_key_to_end(ps, k, b, c.t0, L, h, H, dk, i0);
            load_state(ms, dS_end, i0, j0, dk, dv);
            __syncthreads();
            accumulate_rows(acc, ps, ms, TILE);
            __syncthreads();
        }
    }
    int j = j0 + col;
#pragma unroll
    for (int a = 0; a < CHUNK_ROWS; a++) {
        int u = group + ROW_GROUPS * a;
        if (u < L && j < dv)
            add_into(&dv_out[at(c.t0 + u, h, H, dv) + j], acc[a]);
    }
}

/* The parts of dq and dk that go through the chunk's boundary states, for the
 * thread's key column i and rows t: inter[a] = Σ_j do_tj S0_ij,
 * to_end[a] = Σ_j v_tj dS_ij, and Σ over its share of j of S0_ij dS_ij.
 * Phase 1 of chunk_dqk; `pool` holds four tiles. */
static __device__ float boundary_products(float *inter, float *to_end, float (*pool)[CHUNK][PAD],
                                          chunk c, const act_t *v, const act_t *dout,
                                          const float *S0, const float *dS_end, int h, int H,
                                          int dk, int dv, int i0)
{
    float (*dos)[PAD] = pool[0], (*vs)[PAD] = pool[1];
    float (*S0s)[PAD] = pool[2], (*dSs)[PAD] = pool[2] + TILE;
    int col = my_column(), group = my_group(), L = c.t1 - c.t0;
    float start_end = 0.0f;
    for (int j0 = 0; j0 < dv; j0 += TILE) {
        if (S0) {
            load_rows(dos, CHUNK, dout, c.t0, L, h, H, dv, j0);
            load_state(S0s, S0, i0, j0, dk, dv);
        }
        if (dS_end) {
            load_rows(vs, CHUNK, v, c.t0, L, h, H, dv, j0);
            load_state(dSs, dS_end, i0, j0, dk, dv);
        }
        __syncthreads();
#pragma unroll
        for (int a = 0; a < CHUNK_ROWS; a++) {
            int t = group + ROW_GROUPS * a;
            float sum_inter = 0.0f, sum_end = 0.0f;
            for (int m = 0; m < TILE; m++) {
                if (S0)
                    sum_inter += dos[t][m] * S0s[col][m];
                if (dS_end)
                    sum_end += vs[t][m] * dSs[col][m];
            }
            inter[a] += sum_inter;
            to_end[a] += sum_end;
        }
        if (S0 && dS_end)
            for (int m = group; m < TILE; m += ROW_GROUPS)
                start_end += S0s[col][m] * dSs[col][m];
        __syncthreads();
    }
    return start_end;
}

/* dq, dk and dgk for one key tile. Block: (chunk, head, key tile); a thread
 * owns one key column and CHUNK_ROWS tokens. */
static __global__ void chunk_dqk(act_t *dq, act_t *dk_out, act_t *dgk, const act_t *q,
                                 const act_t *k, const act_t *v, const act_t *dout, const float *b,
                                 const float *dA, const float *checkpoints, const float *dS,
                                 const chunk *chunks, int H, int dk, int dv, float scale)
{
    __shared__ float pool[3][CHUNK][PAD]; /* phase 1: do, v, S0 + dS; phase 2: q, k, b */
    __shared__ float dAs[CHUNK][CHUNK + 1]; /* dA, then ∂L/∂b and its running sums */
    __shared__ float last_parts[ROW_GROUPS][TILE];
    chunk c = chunks[blockIdx.x];
    int h = blockIdx.y, i0 = blockIdx.z * TILE, L = c.t1 - c.t0;
    int col = my_column(), group = my_group(), i = i0 + col;

    /* phase 1: through S0 (dq) and dS (dk, and b_L) */
    float inter[CHUNK_ROWS] = {0.0f}, to_end[CHUNK_ROWS] = {0.0f}, start_end = 0.0f;
    const float *S0 = c.first ? NULL : checkpoints + state_at(c.t0, h, H, dk, dv);
    const float *dS_end = c.last ? NULL : dS + state_at(c.t1, h, H, dk, dv);
    if (S0 || dS_end)
        start_end = boundary_products(inter, to_end, pool, c, v, dout, S0, dS_end, h, H, dk, dv, i0);

    /* phase 2: within the chunk */
    float (*qs)[PAD] = pool[0], (*ks)[PAD] = pool[1], (*bs)[PAD] = pool[2];
    load_rows(qs, CHUNK, q, c.t0, L, h, H, dk, i0);
    load_rows(ks, CHUNK, k, c.t0, L, h, H, dk, i0);
    load_rows(bs, CHUNK, b, c.t0, L, h, H, dk, i0);
    for (int e = threadIdx.x; e < CHUNK * CHUNK; e += blockDim.x) {
        int t = e / CHUNK, u = e % CHUNK;
        dAs[t][u] = t < L ? dA[at(c.t0 + t, h, H, CHUNK) + u] : 0.0f;
    }
    __syncthreads();
    float b_last = bs[L - 1][col];
    float dq_t[CHUNK_ROWS], dk_t[CHUNK_ROWS], db[CHUNK_ROWS];
    float last = expf(b_last) * start_end; /* this thread's share of ∂L/∂b_L's extra */
#pragma unroll
    for (int a = 0; a < CHUNK_ROWS; a++) {
        int t = group + ROW_GROUPS * a;
        dq_t[a] = dk_t[a] = db[a] = 0.0f;
        if (t >= L)
            continue;
        float bt = bs[t][col], dq_intra = 0.0f, dk_intra = 0.0f;
        for (int u = 0; u <= t; u++)
            dq_intra += dAs[t][u] * ks[u][col] * expf(bt - bs[u][col]);
        for (int u = t; u < L; u++)
            dk_intra += dAs[u][t] * qs[u][col] * expf(bs[u][col] - bt);
        float dk_end = expf(b_last - bt) * to_end[a];
        dq_t[a] = scale * expf(bt) * inter[a] + dq_intra;
        dk_t[a] = dk_intra + dk_end;
        db[a] = qs[t][col] * dq_t[a] - ks[t][col] * dk_t[a];
        last += ks[t][col] * dk_end;
    }
    __syncthreads(); /* every thread is done with dA */

    /* dgk: running sums of ∂L/∂b from the chunk's end, which starts at b_L's extra */
#pragma unroll
    for (int a = 0; a < CHUNK_ROWS; a++)
        dAs[group + ROW_GROUPS * a][col] = db[a];
    last_parts[group][col] = last;
    __syncthreads();
    if (group == 0) {
        float running = 0.0f;
        for (int g = 0; g < ROW_GROUPS; g++)
            running += last_parts[g][col];
        for (int t = L - 1; t >= 0; t--) {
            running += dAs[t][col];
            dAs[t][col] = running;
        }
    }
    __syncthreads();
    if (i >= dk)
        return;
#pragma unroll
    for (int a = 0; a < CHUNK_ROWS; a++) {
        int t = group + ROW_GROUPS * a;
        if (t >= L)
            continue;
        size_t x = at(c.t0 + t, h, H, dk) + i;
        add_into(&dq[x], dq_t[a]);
        add_into(&dk_out[x], dk_t[a]);
        add_into(&dgk[x], dAs[t][col]);
    }
}

/* ------------------------------------------------------------------ entry points */

static dim3 state_tiles(const gla_recurrence_dims *d)
{
    return dim3(d->n_seqs * d->H, ceil_div(d->dk, TILE), ceil_div(d->dv, TILE));
}

void gla_recurrence_forward_cuda(void *o, float *checkpoints, const void *q, const void *k,
                                 const void *v, const void *gk, const gla_recurrence_dims *d,
                                 float *work, int n_work)
{
    (void)n_work; /* one worker: the whole batch at once */
    int n = d->cu_seqlens[d->n_seqs], H = d->H;
    if (n == 0)
        return;
    work_layout w = carve(work, n, d);
    int chunks = prepare_chunks(&w, act(gk), d);
    states_forward<<<state_tiles(d), BLOCK>>>(checkpoints, act(k), act(v), w.b,
                                              d->cu_seqlens_backend, H, d->dk, d->dv);
    CUDA_CHECK_LAUNCH();
    chunk_pairs<true><<<dim3(chunks, H), BLOCK>>>(w.A, act(q), act(k), w.b, w.chunks, H, d->dk,
                                                  d->scale);
    CUDA_CHECK_LAUNCH();
    chunk_output<<<dim3(chunks, H, ceil_div(d->dv, TILE)), BLOCK>>>(
        act(o), act(q), act(v), w.b, w.A, checkpoints, w.chunks, H, d->dk, d->dv, d->scale);
    CUDA_CHECK_LAUNCH();
}

void gla_recurrence_backward_cuda(void *dq, void *dk, void *dv, void *dgk, const void *dout,
                                  const void *q, const void *k, const void *v, const void *gk,
                                  const float *checkpoints, const gla_recurrence_dims *d,
                                  float *work, int n_work)
{
    (void)n_work;
    int n = d->cu_seqlens[d->n_seqs], H = d->H;
    if (n == 0)
        return;
    work_layout w = carve(work, n, d);
    int chunks = prepare_chunks(&w, act(gk), d);
    states_backward<<<state_tiles(d), BLOCK>>>(w.dS, act(q), act(dout), w.b,
                                               d->cu_seqlens_backend, H, d->dk, d->dv, d->scale);
    CUDA_CHECK_LAUNCH();
    chunk_pairs<true><<<dim3(chunks, H), BLOCK>>>(w.A, act(q), act(k), w.b, w.chunks, H, d->dk,
                                                  d->scale);
    CUDA_CHECK_LAUNCH();
    chunk_pairs<false><<<dim3(chunks, H), BLOCK>>>(w.dA, act(dout), act(v), NULL, w.chunks, H,
                                                   d->dv, d->scale);
    CUDA_CHECK_LAUNCH();
    chunk_dv<<<dim3(chunks, H, ceil_div(d->dv, TILE)), BLOCK>>>(
        act(dv), act(k), act(dout), w.b, w.A, w.dS, w.chunks, H, d->dk, d->dv);
    CUDA_CHECK_LAUNCH();
    chunk_dqk<<<dim3(chunks, H, ceil_div(d->dk, TILE)), BLOCK>>>(
        act(dq), act(dk), act(dgk), act(q), act(k), act(v), act(dout), w.b, w.dA, checkpoints,
        w.dS, w.chunks, H, d->dk, d->dv, d->scale);
    CUDA_CHECK_LAUNCH();
}
