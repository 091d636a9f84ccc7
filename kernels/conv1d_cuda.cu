/* Short causal depthwise conv1d on bf16 activations (ops.h; the formulas are
 * in conv1d_cpu.c). A thread owns one channel along a tile of tokens:
 * neighbouring threads take neighbouring channels, so every token's load and
 * store is coalesced, and the K-token window of x slides along the tile in
 * registers (each x read once, plus K−1 before the tile). A tile finds its
 * first token's document by binary search in cu_seqlens and moves to the
 * next document as it passes its start, zeroing the window there.
 * Backward: one pass makes g = dout · silu'(pre) (pre made again from x; g
 * kept in fp32 scratch only when dx needs it and silu is on, otherwise g is
 * dout itself) and each tile's dw and dbias sums, written as a partial row of
 * its own; the partial rows are added in tile order (cuda_reduce.cuh), so
 * the parameter gradients are the same run to run, without atomics. A
 * second pass makes dx from g over the K tokens after each one, within its
 * document. */
#include <stdio.h>
#include <stdlib.h>
#include <type_traits>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"

/* Tokens per thread: up to 64, so that the window's K−1 extra loads and the
 * tile's partial dw row are small beside the tile; down to 8 for narrow
 * inputs, so that enough threads run to hide the loads' latency (a thread's
 * tokens follow one another). */
#define TILE_MAX 64
#define TILE_MIN 8
#define THREADS_WANTED (256 * 1024)
#define MAX_GRID_Y 65535
/* tokens whose loads a thread issues together before using the first: a
 * thread's tokens follow one another, and one load at a time leaves the
 * memory idle */
#define BATCH 4

/* the document of token t: the largest s with cu[s] <= t */
static __device__ int doc_of(const int32_t *cu, int n_seqs, int t)
{
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (cu[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Channel c's window of x along tokens t0, t0 + 1, …: after step(t, x[t, c]),
 * v[j] = x[t−(K−1)+j, c], 0 before t's document. */
template <int K> struct x_window {
    const int32_t *cu;
    int s, next; /* s: the current document, next: where the one after starts */
    float v[K];
    __device__ x_window(const act_t *x, const int32_t *cu_, int n_seqs, int t0, int C, int c)
        : cu(cu_)
    {
        s = doc_of(cu, n_seqs, t0);
        next = cu[s + 1];
#pragma unroll
        for (int j = 0; j < K; j++) { /* the window of t0 − 1; v[0] is shifted out */
            int src = t0 - K + j;
            v[j] = src >= cu[s] ? to_f32(x[(size_t)src * C + c]) : 0.0f;
        }
    }
    __device__ void step(int t, float xt)
    {
        bool fresh = t >= next; /* t starts a document: nothing before it counts */
        while (t >= next)
            next = cu[++s + 1];
#pragma unroll
        for (int j = 0; j < K - 1; j++)
            v[j] = fresh ? 0.0f : v[j + 1];
        v[K - 1] = xt;
    }
};

/* channel c's weights and bias, and its pre-activation for a window */
template <int K> struct conv_channel {
    float w[K], b;
    __device__ conv_channel(const act_t *weight, const act_t *bias, int c)
    {
#pragma unroll
        for (int j = 0; j < K; j++)
            w[j] = to_f32(weight[(size_t)c * K + j]);
        b = bias ? to_f32(bias[c]) : 0.0f;
    }
    __device__ float pre(const float (&v)[K]) const
    {
        float acc = b;
#pragma unroll
        for (int j = 0; j < K; j++)
            acc += w[j] * v[j];
        return acc;
    }
};

static __device__ float sigmoid(float p) { return 1.0f / (1.0f + expf(-p)); }

/* f[u] = p[t + u, c] for the COUNT tokens from t, 0 from `end` on */
template <int COUNT, typename T>
static __device__ void load_ahead(float (&f)[COUNT], const T *p, int t, int end, int C, int c)
{
#pragma unroll
    for (int u = 0; u < COUNT; u++)
        f[u] = t + u < end ? to_f32(p[(size_t)(t + u) * C + c]) : 0.0f;
}

/* blockIdx.x · blockDim.x + threadIdx.x is the channel; tiles of `tile`
 * tokens blockIdx.y, blockIdx.y + gridDim.y, … */
#define FOR_TILES(t0, t1, n, tile)                                                  \
    for (int t0 = blockIdx.y * (tile), t1 = min((n), t0 + (tile)); t0 < (n);       \
         t0 += gridDim.y * (tile), t1 = min((n), t0 + (tile)))

template <int K>
static __global__ void conv1d_forward_tiles(act_t *out, const act_t *x, const act_t *weight,
                                            const act_t *bias, const int32_t *cu, int n_seqs,
                                            int n, int C, int silu, int tile)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    conv_channel<K> ch(weight, bias, c);
    FOR_TILES(t0, t1, n, tile) {
        x_window<K> win(x, cu, n_seqs, t0, C, c);
        for (int t = t0; t < t1; t += BATCH) {
            float xs[BATCH];
            load_ahead(xs, x, t, t1, C, c);
#pragma unroll
            for (int u = 0; u < BATCH && t + u < t1; u++) {
                win.step(t + u, xs[u]);
                float p = ch.pre(win.v);
                from_f32(&out[(size_t)(t + u) * C + c], silu ? p * sigmoid(p) : p);
            }
        }
    }
}

/* g (when not NULL) and the tiles' partial rows of dw ([tile][C·K]) and
 * dbias ([tile][C]) (each when not NULL) */
template <int K>
static __global__ void conv1d_grad_tiles(float *g, float *dw_partial, float *db_partial,
                                         const act_t *dout, const act_t *x, const act_t *weight,
                                         const act_t *bias, const int32_t *cu, int n_seqs, int n,
                                         int C, int silu, int tile)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    conv_channel<K> ch(weight, bias, c);
    FOR_TILES(t0, t1, n, tile) {
        x_window<K> win(x, cu, n_seqs, t0, C, c);
        float dw[K] = {}, db = 0.0f;
        for (int t = t0; t < t1; t += BATCH) {
            float xs[BATCH], ds[BATCH];
            load_ahead(xs, x, t, t1, C, c);
            load_ahead(ds, dout, t, t1, C, c);
#pragma unroll
            for (int u = 0; u < BATCH && t + u < t1; u++) {
                win.step(t + u, xs[u]);
                float gt = ds[u];
                if (silu) {
                    float p = ch.pre(win.v), s = sigmoid(p);
                    gt *= s * (1.0f + p * (1.0f - s));
                    if (g)
                        g[(size_t)(t + u) * C + c] = gt;
                }
#pragma unroll
                for (int j = 0; j < K; j++)
                    dw[j] += gt * win.v[j];
                db += gt;
            }
        }
        int row = t0 / tile;
        if (dw_partial) {
#pragma unroll
            for (int j = 0; j < K; j++)
                dw_partial[((size_t)row * C + c) * K + j] = dw[j];
        }
        if (db_partial)
            db_partial[(size_t)row * C + c] = db;
    }
}

/* dx[u,c] = Σ_j w[c,j] · g[u+(K−1)−j, c] over the tokens of u's document;
 * g is fp32 scratch or dout itself (bf16) */
template <int K, typename G>
static __global__ void conv1d_dx_tiles(act_t *dx, const G *g, const act_t *weight,
                                       const int32_t *cu, int n_seqs, int n, int C, int tile)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    conv_channel<K> ch(weight, NULL, c);
    FOR_TILES(u0, u1, n, tile) {
        int s = doc_of(cu, n_seqs, u0), end = cu[s + 1];
        for (int b = u0; b < u1; b += BATCH) {
            float gs[BATCH + K - 1]; /* g of tokens b.. b + BATCH + K − 2 */
            load_ahead(gs, g, b, n, C, c);
#pragma unroll
            for (int i = 0; i < BATCH && b + i < u1; i++) {
                int u = b + i;
                while (u >= end)
                    end = cu[++s + 1];
                float acc = 0.0f;
#pragma unroll
                for (int j = 0; j < K; j++)
                    if (u + (K - 1) - j < end)
                        acc += ch.w[j] * gs[i + (K - 1) - j];
                from_f32(&dx[(size_t)u * C + c], acc);
            }
        }
    }
}

/* f(std::integral_constant<int, K>()) for K in 1..FLAME_CONV1D_MAX_K; a
 * wider kernel is refused */
static_assert(FLAME_CONV1D_MAX_K == 8, "for_width's cases are 1..8");
template <typename F> static void for_width(int K, F f)
{
    switch (K) {
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    case 3: f(std::integral_constant<int, 3>()); break;
    case 4: f(std::integral_constant<int, 4>()); break;
    case 5: f(std::integral_constant<int, 5>()); break;
    case 6: f(std::integral_constant<int, 6>()); break;
    case 7: f(std::integral_constant<int, 7>()); break;
    case 8: f(std::integral_constant<int, 8>()); break;
    default:
        fprintf(stderr, "flame: conv1d kernel width %d is outside 1..%d\n", K, FLAME_CONV1D_MAX_K);
        exit(1);
    }
}

/* channels across x (whole warps), tiles across y */
struct conv1d_grid {
    dim3 blocks, threads;
    int tile, tiles;
    conv1d_grid(int n, int C)
    {
        int t = (C + 31) / 32 * 32;
        t = t < CUDA_BLOCK ? t : CUDA_BLOCK;
        tile = TILE_MAX;
        while (tile > TILE_MIN && (long long)(n + tile - 1) / tile * C < THREADS_WANTED)
            tile /= 2;
        tiles = (n + tile - 1) / tile;
        threads = dim3(t);
        blocks = dim3((C + t - 1) / t, tiles < MAX_GRID_Y ? tiles : MAX_GRID_Y);
    }
};

void conv1d_forward_cuda(void *out, const void *x, const void *weight, const void *bias,
                         const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu)
{
    for_width(K, [&](auto k) {
        if (n <= 0 || C <= 0)
            return;
        conv1d_grid grid(n, C);
        conv1d_forward_tiles<decltype(k)::value><<<grid.blocks, grid.threads>>>(
            (act_t *)out, (const act_t *)x, (const act_t *)weight, (const act_t *)bias,
            cu_seqlens, n_seqs, n, C, silu, grid.tile);
        CUDA_CHECK_LAUNCH();
    });
}

void conv1d_backward_cuda(void *dx, float *dweight, float *dbias, const void *dout, const void *x,
                          const void *weight, const void *bias, const int32_t *cu_seqlens,
                          int n_seqs, int n, int C, int K, int silu)
{
    for_width(K, [&](auto k) {
        constexpr int KK = decltype(k)::value;
        if (n <= 0 || C <= 0)
            return;
        conv1d_grid grid(n, C);
        int tiles = grid.tiles;
        size_t g_n = dx && silu ? (size_t)n * C : 0, dw_n = dweight ? (size_t)tiles * C * KK : 0,
               db_n = dbias ? (size_t)tiles * C : 0;
        const act_t *dy = (const act_t *)dout, *xa = (const act_t *)x,
                    *w = (const act_t *)weight, *b = (const act_t *)bias;
        float *g = NULL;
        if (g_n + dw_n + db_n > 0) {
            float *scratch = (float *)cuda_scratch((g_n + dw_n + db_n) * sizeof(float));
            float *dwp = dw_n ? scratch + g_n : NULL, *dbp = db_n ? scratch + g_n + dw_n : NULL;
            g = g_n ? scratch : NULL;
            conv1d_grad_tiles<KK><<<grid.blocks, grid.threads>>>(
                g, dwp, dbp, dy, xa, w, b, cu_seqlens, n_seqs, n, C, silu, grid.tile);
            CUDA_CHECK_LAUNCH();
            /* dweight [C,K] is C·K columns of the partial rows */
            if (dwp) {
                add_column_chunks_grouped<<<(C * KK + 31) / 32, 32 * CHUNK_GROUPS>>>(
                    dweight, dwp, tiles, C * KK);
                CUDA_CHECK_LAUNCH();
            }
            if (dbp) {
                add_column_chunks_grouped<<<(C + 31) / 32, 32 * CHUNK_GROUPS>>>(dbias, dbp,
                                                                                 tiles, C);
                CUDA_CHECK_LAUNCH();
            }
        }
        if (g)
            conv1d_dx_tiles<KK><<<grid.blocks, grid.threads>>>((act_t *)dx, g, w, cu_seqlens,
                                                               n_seqs, n, C, grid.tile);
        else if (dx)
            conv1d_dx_tiles<KK><<<grid.blocks, grid.threads>>>((act_t *)dx, dy, w, cu_seqlens,
                                                               n_seqs, n, C, grid.tile);
        CUDA_CHECK_LAUNCH();
    });
}
