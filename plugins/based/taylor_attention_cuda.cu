/* Based's Taylor linear attention on the GPU (based.h's math) as plain linear
 * attention: with phi the packed Taylor features (taylor_attention_cpu.c),
 *     a_i = Σ_{j≤i} (phi(q_i)·phi(k_j)) v_j,  b_i = Σ_{j≤i} phi(q_i)·phi(k_j)
 * are one linear recurrence S_i = S_{i−1} + phi(k_i) [v_i, 1]ᵀ, o_i =
 * phi(q_i) S_i: GLA's, with no decay (gk = 0) and scale 1, whose chunked
 * kernels (plugins/gla/gla_chunk.cu) run it on the tensor cores with the
 * state in fp32. The value rows carry a column of ones after their Dv values
 * so that o's column Dv is b_i, and y_i = a_i / (b_i + eps). Features are
 * padded with zeros to a multiple of 8 (FEATURES_WIDTH), values to the next
 * multiple of 8 past Dv, so that every row starts 16-byte aligned.
 *
 * Forward: phi(q), phi(k), [v, 1], the recurrence, the division. Backward:
 * the forward's o again (its checkpoints with it), then
 *     ∂L/∂a_i = dy_i / (b_i + eps),  ∂L/∂b_i = −dy_i·y_i / (b_i + eps)
 * as the gradient of o, the recurrence's backward, and phi's Jacobian back to
 * q and k. Nothing is kept between the two: `work` holds every buffer.
 *
 * Generation's step, one token per sequence, runs its own kernel over the
 * running sums (the end of this file): a token is too little for chunks. */
#include "based_cuda.h"
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"
#include "../gla/gla_cuda.h"

/* widths of the padded rows */
static int features_width(int F) { return ((int)based_taylor_feature_count(F) + 7) / 8 * 8; }
static int values_width(int Dv) { return (Dv + 1 + 7) / 8 * 8; }


/* the pair (a, b), a ≤ b, of packed pair index p (pairs a ≤ b row by row) */
static __device__ void pair_of(int p, int F, int &a, int &b)
{
    a = 0;
    while (p >= F - a)
        p -= F - a, a++;
    b = a + p;
}

/* the packed pair index of a ≤ b */
static __device__ int pair_index(int a, int b, int F) { return a * F - a * (a - 1) / 2 + (b - a); }

/* packed feature c of the F values x (c < based_taylor_feature_count(F)):
 * 1, then the linear ones, then the pairs, multiplied in the CPU's order */
static __device__ float feature_of(const act_t *x, int c, int F, taylor_weights w)
{
    if (c == 0)
        return 1.0f;
    if (c <= F)
        return w.lin * to_f32(x[c - 1]);
    int a, b;
    pair_of(c - 1 - F, F, a, b);
    return (a == b ? w.diag : w.off) * to_f32(x[a]) * to_f32(x[b]);
}

/* phi of rows of F values into rows of `width`, zeros past its `count` features */
static __global__ void features(act_t *phi, const act_t *x, size_t rows, int F, int count,
                                int width, taylor_weights w)
{
    await_inputs();
    size_t total = rows * width;
    GRID_STRIDE_LOOP(i, total) {
        size_t r = i / width;
        int c = (int)(i % width);
        phi[i] = __float2bfloat16_rn(c < count ? feature_of(x + r * F, c, F, w) : 0.0f);
    }
}

/* dx = (∂phi/∂x)ᵀ dphi, a thread per value of x */
static __global__ void features_backward(act_t *dx, const act_t *dphi, const act_t *x,
                                         size_t rows, int F, int width, taylor_weights w)
{
    await_inputs();
    size_t total = rows * F;
    GRID_STRIDE_LOOP(i, total) {
        size_t r = i / F;
        int a = (int)(i % F);
        const act_t *xr = x + r * F, *dr = dphi + r * width;
        const act_t *pairs = dr + 1 + F;
        float acc = w.lin * to_f32(dr[1 + a]);
        for (int b = 0; b < F; b++) {
            int lo = a < b ? a : b, hi = a < b ? b : a;
            float g = to_f32(pairs[pair_index(lo, hi, F)]);
            acc += b == a ? 2.0f * w.diag * to_f32(xr[a]) * g : w.off * to_f32(xr[b]) * g;
        }
        dx[i] = __float2bfloat16_rn(acc);
    }
}

/* rows of v with a column of ones after them, zeros to `width` */
static __global__ void values_with_ones(act_t *vp, const act_t *v, size_t rows, int Dv, int width)
{
    await_inputs();
    size_t total = rows * width;
    GRID_STRIDE_LOOP(i, total) {
        size_t r = i / width;
        int c = (int)(i % width);
        vp[i] = c < Dv ? v[r * Dv + c] : __float2bfloat16_rn(c == Dv ? 1.0f : 0.0f);
    }
}

/* the first Dv columns of rows of `width` */
static __global__ void values_only(act_t *v, const act_t *vp, size_t rows, int Dv, int width)
{
    await_inputs();
    size_t total = rows * Dv;
    GRID_STRIDE_LOOP(i, total)
        v[i] = vp[i / Dv * width + i % Dv];
}

/* y = o[:Dv] / (o[Dv] + eps), a thread per value */
static __global__ void normalize(act_t *y, const act_t *o, size_t rows, int Dv, int width)
{
    await_inputs();
    size_t total = rows * Dv;
    GRID_STRIDE_LOOP(i, total) {
        const act_t *orow = o + i / Dv * width;
        y[i] = __float2bfloat16_rn(to_f32(orow[i % Dv]) / (to_f32(orow[Dv]) + BASED_TAYLOR_EPS));
    }
}

/* the gradient of o given dy, a warp per row: dy / b in the value columns,
 * −Σ dy·a / b² in column Dv, 0 past it */
static __global__ void normalize_backward(act_t *d_o, const act_t *dy, const act_t *o,
                                          size_t rows, int Dv, int width)
{
    await_inputs();
    size_t r = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const act_t *orow = o + r * width, *dyrow = dy + r * Dv;
    act_t *drow = d_o + r * width;
    float b = to_f32(orow[Dv]) + BASED_TAYLOR_EPS, dot = 0.0f;
    for (int c = lane; c < Dv; c += 32) {
        float g = to_f32(dyrow[c]);
        dot += g * to_f32(orow[c]);
        drow[c] = __float2bfloat16_rn(g / b);
    }
    for (int offset = 16; offset > 0; offset /= 2)
        dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    for (int c = Dv + lane; c < width; c += 32)
        drow[c] = __float2bfloat16_rn(c == Dv ? -dot / (b * b) : 0.0f);
}

/* the buffers of a call in `work`: bf16 rows of n·H (token, head) pairs */
struct taylor_layout {
    act_t *phq, *phk, *vp, *gk, *o;     /* the recurrence's inputs and output */
    act_t *dphq, *dphk, *dvp, *dgk, *d_o; /* their gradients */
    act_t *checkpoints;                   /* the recurrence's states at chunk starts */
    float *gla_work;
};

static size_t act_floats(size_t count) { return (count + 7) / 8 * 4; } /* bf16 in 16-byte steps */

/* the recurrence's checkpoints (bf16), in 16-byte steps */
static size_t checkpoint_floats(int n, int H, int wf, int wv)
{
    return act_floats(gla_recurrence_checkpoint_values(n, H, wf, wv));
}

static gla_recurrence_dims gla_dims(const based_dims *d)
{
    gla_recurrence_dims g = {d->cu_seqlens, d->n_seqs, d->H, features_width(d->F),
                             values_width(d->Dv), 1.0f, d->cu_seqlens_backend, 0, 0, 0, NULL, NULL, 0};
    return g;
}

static taylor_layout carve(float *work, int n, const based_dims *d)
{
    size_t rows = (size_t)n * d->H, wf = features_width(d->F), wv = values_width(d->Dv);
    taylor_layout l;
    act_t **feature_bufs[] = {&l.phq, &l.phk, &l.gk, &l.dphq, &l.dphk, &l.dgk};
    act_t **value_bufs[] = {&l.vp, &l.o, &l.dvp, &l.d_o};
    for (act_t **b : feature_bufs)
        *b = reinterpret_cast<act_t *>(work), work += act_floats(rows * wf);
    for (act_t **b : value_bufs)
        *b = reinterpret_cast<act_t *>(work), work += act_floats(rows * wv);
    l.checkpoints = reinterpret_cast<act_t *>(work);
    l.gla_work = work + checkpoint_floats(n, d->H, (int)wf, (int)wv);
    return l;
}

size_t based_taylor_work_floats_cuda(int n, int H, int F, int Dv)
{
    size_t rows = (size_t)n * H, wf = features_width(F), wv = values_width(Dv);
    return 6 * act_floats(rows * wf) + 4 * act_floats(rows * wv) +
           checkpoint_floats(n, H, (int)wf, (int)wv) +
           gla_recurrence_work_floats_cuda(n, H, (int)wf, (int)wv);
}

static void check_features(int F)
{
    if (F < 1 || F > BASED_TAYLOR_CUDA_MAX_F) {
        fprintf(stderr, "based: the Taylor attention on CUDA takes feature_dim 1..%d, not %d\n",
                BASED_TAYLOR_CUDA_MAX_F, F);
        exit(1);
    }
}

/* the recurrence's inputs and o, from q, k, v */
static void recurrence_forward(const taylor_layout &l, const void *q, const void *k,
                               const void *v, const based_dims *d, int n)
{
    size_t rows = (size_t)n * d->H;
    int wf = features_width(d->F), wv = values_width(d->Dv);
    int count = (int)based_taylor_feature_count(d->F);
    taylor_weights w = based_taylor_weights(d->F);
    launch_kernel(features, cuda_grid(rows * wf), CUDA_BLOCK, 0, l.phq, static_cast<const act_t *>(q), rows, d->F,
                  count, wf, w);
    launch_kernel(features, cuda_grid(rows * wf), CUDA_BLOCK, 0, l.phk, static_cast<const act_t *>(k), rows, d->F,
                  count, wf, w);
    launch_kernel(values_with_ones, cuda_grid(rows * wv), CUDA_BLOCK, 0, l.vp, static_cast<const act_t *>(v), rows,
                  d->Dv, wv);
    CUDA_CHECK(cudaMemsetAsync(l.gk, 0, rows * wf * sizeof(act_t), 0));
    gla_recurrence_dims g = gla_dims(d);
    gla_recurrence_forward_cuda(l.o, l.checkpoints, l.phq, l.phk, l.vp, l.gk, &g, l.gla_work, 1);
}

/* a call's buffers and the recurrence's o; false when there are no tokens */
static bool run_recurrence(taylor_layout *l, size_t *rows, const void *q, const void *k,
                           const void *v, const based_dims *d, float *work)
{
    int n = d->cu_seqlens[d->n_seqs];
    check_features(d->F);
    if (n == 0)
        return false;
    *l = carve(work, n, d);
    *rows = (size_t)n * d->H;
    recurrence_forward(*l, q, k, v, d, n);
    return true;
}

void based_taylor_forward_cuda(void *y, const void *q, const void *k, const void *v,
                               const based_dims *d, float *work)
{
    taylor_layout l;
    size_t rows;
    if (!run_recurrence(&l, &rows, q, k, v, d, work))
        return;
    launch_kernel(normalize, cuda_grid(rows * d->Dv), CUDA_BLOCK, 0, static_cast<act_t *>(y), l.o, rows, d->Dv,
                  values_width(d->Dv));
}

void based_taylor_backward_cuda(void *dq, void *dk, void *dv, const void *dy, const void *q,
                                const void *k, const void *v, const based_dims *d, float *work)
{
    taylor_layout l;
    size_t rows;
    if (!run_recurrence(&l, &rows, q, k, v, d, work))
        return;
    int wf = features_width(d->F), wv = values_width(d->Dv);
    launch_kernel(normalize_backward, (int)((rows + CUDA_BLOCK / 32 - 1) / (CUDA_BLOCK / 32)), CUDA_BLOCK, 0, l.d_o,
                  static_cast<const act_t *>(dy), l.o, rows, d->Dv, wv);
    gla_recurrence_dims g = gla_dims(d);
    gla_recurrence_backward_cuda(l.dphq, l.dphk, l.dvp, l.dgk, l.d_o, l.phq, l.phk, l.vp, l.gk,
                                 l.checkpoints, &g, l.gla_work, 1);
    taylor_weights w = based_taylor_weights(d->F);
    launch_kernel(features_backward, cuda_grid(rows * d->F), CUDA_BLOCK, 0, static_cast<act_t *>(dq), l.dphq,
                  static_cast<const act_t *>(q), rows, d->F, wf, w);
    launch_kernel(features_backward, cuda_grid(rows * d->F), CUDA_BLOCK, 0, static_cast<act_t *>(dk), l.dphk,
                  static_cast<const act_t *>(k), rows, d->F, wf, w);
    launch_kernel(values_only, cuda_grid(rows * d->Dv), CUDA_BLOCK, 0, static_cast<act_t *>(dv), l.dvp, rows, d->Dv,
                  wv);
}

/* ---- generation ----
 * One position of n_seqs sequences (based.h's based_taylor_step_cpu): a block
 * per (sequence, head) owns that head's state, S [D, Dv] then z [D] (fp32),
 * read and written once, which is what bounds the step. Its threads first
 * make phi(k) and phi(q) in shared memory, then together add phi(k) into z
 * and sum the normalizer phi(q)·z; then, 32 columns of S at a time, a warp's
 * lanes take neighbouring columns (coalesced) and the STEP_WARPS warps every
 * STEP_WARPS-th row (a thread's rows loaded at once, into registers), each
 * warp's share of Sᵀ phi(q) meeting the others' in shared memory. The whole
 * head stays in one block so that z is updated once and the normalizer is
 * known where y is written, with no atomics. */

#define STEP_WARPS 16
#define STEP_MAX_FEATURES                                                                  \
    (1 + BASED_TAYLOR_CUDA_MAX_F + BASED_TAYLOR_CUDA_MAX_F * (BASED_TAYLOR_CUDA_MAX_F + 1) / 2)
/* the rows of S a thread owns, warp + j·STEP_WARPS: all of them held at once */
#define STEP_ROWS ((STEP_MAX_FEATURES + STEP_WARPS - 1) / STEP_WARPS)

/* z += phi(k), then phi(q)·z over the block, to every thread */
static __device__ float add_key_to_z(float *z, const float *f, const float *g, int D)
{
    float part = 0.0f;
    for (int r = threadIdx.x; r < D; r += blockDim.x) {
        float zr = z[r] + f[r];
        z[r] = zr;
        part += g[r] * zr;
    }
    return block_sum(part);
}

/* columns c0 .. c0+31 of the head's S: S += phi(k) vᵀ, then y = Sᵀ phi(q) / b */
static __device__ void step_columns(act_t *y, float *S, const act_t *v, const float *f,
                                    const float *g, int D, int Dv, int c0, float b,
                                    float (*partial)[32])
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, c = c0 + lane;
    float acc = 0.0f;
    if (c < Dv) {
        float vc = to_f32(v[c]), s[STEP_ROWS];
        /* every load before the first store: in flight together, not one by one */
#pragma unroll
        for (int j = 0; j < STEP_ROWS; j++) {
            int r = warp + j * STEP_WARPS;
            s[j] = r < D ? S[(size_t)r * Dv + c] : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < STEP_ROWS; j++) {
            int r = warp + j * STEP_WARPS;
            if (r < D) {
                s[j] += f[r] * vc;
                S[(size_t)r * Dv + c] = s[j];
                acc += g[r] * s[j];
            }
        }
    }
    __syncthreads(); /* the previous columns' partials are read */
    partial[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && c < Dv) {
        for (int w = 1; w < STEP_WARPS; w++)
            acc += partial[w][lane];
        from_f32(&y[c], acc / b);
    }
}

/* blockIdx.x: the (sequence, head) pair b·H + h, which is also its row of q,
 * k, v, y and its state's index */
static __global__ void step_kernel(act_t *y, float *states, const act_t *q, const act_t *k,
                                   const act_t *v, int F, int D, int Dv, taylor_weights w)
{
    await_inputs();
    __shared__ float f[STEP_MAX_FEATURES], g[STEP_MAX_FEATURES];
    __shared__ float partial[STEP_WARPS][32];
    size_t head = blockIdx.x;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        f[i] = feature_of(k + head * F, i, F, w);
        g[i] = feature_of(q + head * F, i, F, w);
    }
    __syncthreads();
    float *S = states + head * D * (Dv + 1);
    float b = add_key_to_z(S + (size_t)D * Dv, f, g, D) + BASED_TAYLOR_EPS;
    for (int c0 = 0; c0 < Dv; c0 += 32)
        step_columns(y + head * Dv, S, v + head * Dv, f, g, D, Dv, c0, b, partial);
}

void based_taylor_step_cuda(void *y, float *states, const void *q, const void *k, const void *v,
                            const based_dims *d, int n_seqs)
{
    check_features(d->F);
    if (n_seqs <= 0)
        return;
    launch_kernel(step_kernel, (unsigned)n_seqs * d->H, STEP_WARPS * 32, 0, static_cast<act_t *>(y), states,
                  static_cast<const act_t *>(q), static_cast<const act_t *>(k), static_cast<const act_t *>(v), d->F,
                  (int)based_taylor_feature_count(d->F), d->Dv, based_taylor_weights(d->F));
}
