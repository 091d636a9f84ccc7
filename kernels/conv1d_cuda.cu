/* Short causal depthwise conv1d on bf16 activations (ops.h; the formulas are
 * in conv1d_cpu.c). A thread owns V neighbouring channels (V = 4, 2 or 1, as
 * C and the pointers' alignment allow, so a token's V values move in one
 * access) along a tile of tokens: neighbouring threads take neighbouring
 * channels, so every token's load and store is coalesced, and the K-token
 * window of x slides along the tile in registers (each x read once, plus
 * K−1 before the tile). A tile finds its first token's document by binary
 * search in cu_seqlens and moves to the next document as it passes its
 * start, zeroing the window there.
 * Backward in one pass: g = dout · silu'(pre) (pre made again from x) goes
 * into the tile's dw and dbias sums, written as a partial row of its own,
 * and is scattered into the dx of the K tokens it reaches (u = t−(K−1)+j
 * gets w[j] · g[t]); dx of u is complete, and stored, once g of u + K − 1 is
 * in, so a tile runs K − 1 tokens past its end for its last dx, and every
 * dx pending at a document's start is complete there. The partial rows are
 * added in tile order (cuda_reduce.cuh), so the parameter gradients are the
 * same run to run, without atomics.
 * Generation's step (conv1d_step_cuda) is one thread per (sequence, channel):
 * a token is B·C values, too few to tile. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <type_traits>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_launch.cuh"
#include "cuda_math.cuh"
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

/* Channels c..c+V−1's window of x along tokens t0, t0 + 1, …: after
 * step(t, x[t, c..]), v[j][k] = x[t−(K−1)+j, c+k], 0 before t's document. */
template <int K, int V> struct x_window {
    const int32_t *cu;
    int s, next; /* s: the current document, next: where the one after starts */
    float v[K][V];
    __device__ x_window(const act_t *x, const int32_t *cu_, int n_seqs, int t0, int C, int c)
        : cu(cu_)
    {
        s = doc_of(cu, n_seqs, t0);
        next = cu[s + 1];
#pragma unroll
        for (int j = 0; j < K; j++) { /* the window of t0 − 1; v[0] is shifted out */
            int src = t0 - K + j;
            if (src >= cu[s])
                load_floats<V>(v[j], &x[(size_t)src * C + c]);
            else
#pragma unroll
                for (int k = 0; k < V; k++)
                    v[j][k] = 0.0f;
        }
    }
    /* true where t starts a document: nothing before it counts */
    __device__ bool step(int t, const float (&xt)[V])
    {
        bool fresh = t >= next;
        while (t >= next)
            next = cu[++s + 1];
#pragma unroll
        for (int j = 0; j < K - 1; j++)
#pragma unroll
            for (int k = 0; k < V; k++)
                v[j][k] = fresh ? 0.0f : v[j + 1][k];
#pragma unroll
        for (int k = 0; k < V; k++)
            v[K - 1][k] = xt[k];
        return fresh;
    }
};

/* channels c..c+V−1's weights and biases, and their pre-activations */
template <int K, int V> struct conv_channels {
    float w[K][V], b[V];
    __device__ conv_channels(const act_t *weight, const act_t *bias, int c)
    {
#pragma unroll
        for (int k = 0; k < V; k++) {
#pragma unroll
            for (int j = 0; j < K; j++)
                w[j][k] = to_f32(weight[(size_t)(c + k) * K + j]);
            b[k] = bias ? to_f32(bias[c + k]) : 0.0f;
        }
    }
    __device__ float pre(const float (&v)[K][V], int k) const
    {
        float acc = b[k];
#pragma unroll
        for (int j = 0; j < K; j++)
            acc += w[j][k] * v[j][k];
        return acc;
    }
};

/* f[u] = p[t + u, c..c+V−1] for the COUNT tokens from t, 0 from `end` on */
template <int COUNT, int V>
static __device__ void load_ahead(float (&f)[COUNT][V], const act_t *p, int t, int end, int C,
                                  int c)
{
#pragma unroll
    for (int u = 0; u < COUNT; u++) {
        if (t + u < end)
            load_floats<V>(f[u], &p[(size_t)(t + u) * C + c]);
        else
#pragma unroll
            for (int k = 0; k < V; k++)
                f[u][k] = 0.0f;
    }
}

/* (blockIdx.x · blockDim.x + threadIdx.x) · V is the first channel; tiles
 * of `tile` tokens blockIdx.y, blockIdx.y + gridDim.y, … */
#define FOR_TILES(t0, t1, n, tile)                                                  \
    for (int t0 = blockIdx.y * (tile), t1 = min((n), t0 + (tile)); t0 < (n);       \
         t0 += gridDim.y * (tile), t1 = min((n), t0 + (tile)))

template <int K, int V>
static __global__ void conv1d_forward_tiles(act_t *out, const act_t *x, const act_t *weight,
                                            const act_t *bias, const int32_t *cu, int n_seqs,
                                            int n, int C, int silu, int tile)
{
    await_inputs();
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c >= C)
        return;
    conv_channels<K, V> ch(weight, bias, c);
    FOR_TILES(t0, t1, n, tile) {
        x_window<K, V> win(x, cu, n_seqs, t0, C, c);
        for (int t = t0; t < t1; t += BATCH) {
            float xs[BATCH][V];
            load_ahead(xs, x, t, t1, C, c);
#pragma unroll
            for (int u = 0; u < BATCH && t + u < t1; u++) {
                win.step(t + u, xs[u]);
                float o[V];
#pragma unroll
                for (int k = 0; k < V; k++) {
                    float p = ch.pre(win.v, k);
                    o[k] = silu ? p * sigmoid_fast(p) : p;
                }
                store_floats<V>(&out[(size_t)(t + u) * C + c], o);
            }
        }
    }
}

/* dx of tokens u = t−(K−1)+j waiting for g of later tokens: pend[j];
 * stored from token `from` on (the tile's first, then each document's
 * first: those before were stored when their document ended) to t1 */
template <int K, int V> struct dx_pending {
    float pend[K][V] = {};
    int from, t1;
    __device__ dx_pending(int t0, int t1_) : from(t0), t1(t1_) {}
    __device__ void store(act_t *dx, int u, const float (&v)[V], int C, int c) const
    {
        if (u >= from && u < t1)
            store_floats<V>(&dx[(size_t)u * C + c], v);
    }
    /* g of token t reaches dx of t−(K−1)+j through w[j] */
    __device__ void scatter(const conv_channels<K, V> &ch, const float (&g)[V])
    {
#pragma unroll
        for (int j = 0; j < K; j++)
#pragma unroll
            for (int k = 0; k < V; k++)
                pend[j][k] += ch.w[j][k] * g[k];
    }
    /* after token t's g: dx of t − (K−1) is complete */
    __device__ void shift(act_t *dx, int t, int C, int c)
    {
        store(dx, t - (K - 1), pend[0], C, c);
#pragma unroll
        for (int j = 0; j < K - 1; j++)
#pragma unroll
            for (int k = 0; k < V; k++)
                pend[j][k] = pend[j + 1][k];
#pragma unroll
        for (int k = 0; k < V; k++)
            pend[K - 1][k] = 0.0f;
    }
    /* before token t, with nothing from t on reaching them (t starts a
     * document, or ends the input): the pending dx of t−(K−1)+j, j < K − 1,
     * are complete */
    __device__ void flush(act_t *dx, int t, int C, int c)
    {
#pragma unroll
        for (int j = 0; j < K - 1; j++) {
            store(dx, t - (K - 1) + j, pend[j], C, c);
#pragma unroll
            for (int k = 0; k < V; k++)
                pend[j][k] = 0.0f;
        }
        from = t > from ? t : from;
    }
};

/* dx (when not NULL) and the tiles' partial rows of dw ([tile][C·K]) and
 * dbias ([tile][C]) (each when not NULL) */
template <int K, int V>
static __global__ void conv1d_backward_tiles(act_t *dx, float *dw_partial, float *db_partial,
                                             const act_t *dout, const act_t *x,
                                             const act_t *weight, const act_t *bias,
                                             const int32_t *cu, int n_seqs, int n, int C,
                                             int silu, int tile)
{
    await_inputs();
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c >= C)
        return;
    conv_channels<K, V> ch(weight, bias, c);
    FOR_TILES(t0, t1, n, tile) {
        x_window<K, V> win(x, cu, n_seqs, t0, C, c);
        dx_pending<K, V> dxp(t0, t1);
        float dw[K][V] = {}, db[V] = {};
        /* past the tile only for the g its last dx need */
        int t_end = dx ? min(n, t1 + K - 1) : t1;
        for (int t = t0; t < t_end; t += BATCH) {
            float xs[BATCH][V], ds[BATCH][V];
            load_ahead(xs, x, t, t_end, C, c);
            load_ahead(ds, dout, t, t_end, C, c);
#pragma unroll
            for (int u = 0; u < BATCH && t + u < t_end; u++) {
                if (win.step(t + u, xs[u]) && dx)
                    dxp.flush(dx, t + u, C, c);
                float g[V];
#pragma unroll
                for (int k = 0; k < V; k++) {
                    g[k] = ds[u][k];
                    if (silu) {
                        float p = ch.pre(win.v, k), s = sigmoid_fast(p);
                        g[k] *= s * (1.0f + p * (1.0f - s));
                    }
                }
                if (t + u < t1) {
#pragma unroll
                    for (int k = 0; k < V; k++) {
#pragma unroll
                        for (int j = 0; j < K; j++)
                            dw[j][k] += g[k] * win.v[j][k];
                        db[k] += g[k];
                    }
                }
                if (dx) {
                    dxp.scatter(ch, g);
                    dxp.shift(dx, t + u, C, c);
                }
            }
        }
        if (dx)
            dxp.flush(dx, t_end, C, c);
        int row = t0 / tile;
        if (dw_partial) {
#pragma unroll
            for (int k = 0; k < V; k++)
#pragma unroll
                for (int j = 0; j < K; j++)
                    dw_partial[((size_t)row * C + c + k) * K + j] = dw[j][k];
        }
        if (db_partial) {
#pragma unroll
            for (int k = 0; k < V; k++)
                db_partial[(size_t)row * C + c + k] = db[k];
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

/* channels a thread owns: 4 or 2 where C and every activation pointer allow
 * moving them in one access, else 1 */
static int channels_per_thread(int C, const void *const *ptrs, int count)
{
    for (int v = 4; v > 1; v /= 2) {
        bool ok = C % v == 0;
        for (int i = 0; i < count; i++)
            ok = ok && (!ptrs[i] || (uintptr_t)ptrs[i] % (v * sizeof(act_t)) == 0);
        if (ok)
            return v;
    }
    return 1;
}

/* f(std::integral_constant<int, V>()) for the V above */
template <typename F> static void for_lanes(int V, F f)
{
    switch (V) {
    case 4: f(std::integral_constant<int, 4>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    default: f(std::integral_constant<int, 1>()); break;
    }
}

/* threads across x (whole warps, V channels each), tiles across y */
struct conv1d_grid {
    dim3 blocks, threads;
    int tile, tiles;
    conv1d_grid(int n, int C, int V)
    {
        int lanes = C / V, t = (lanes + 31) / 32 * 32;
        t = t < CUDA_BLOCK ? t : CUDA_BLOCK;
        tile = TILE_MAX;
        while (tile > TILE_MIN && (long long)(n + tile - 1) / tile * lanes < THREADS_WANTED)
            tile /= 2;
        tiles = (n + tile - 1) / tile;
        threads = dim3(t);
        blocks = dim3((lanes + t - 1) / t, tiles < MAX_GRID_Y ? tiles : MAX_GRID_Y);
    }
};

void conv1d_forward_cuda(void *out, const void *x, const void *weight, const void *bias,
                         const int32_t *cu_seqlens, int n_seqs, int n, int C, int K, int silu)
{
    if (n <= 0 || C <= 0)
        return;
    const void *acts[] = {out, x};
    int V = channels_per_thread(C, acts, 2);
    conv1d_grid grid(n, C, V);
    for_width(K, [&](auto k) {
        for_lanes(V, [&](auto v) {
            launch_kernel(conv1d_forward_tiles<decltype(k)::value, decltype(v)::value>, grid.blocks,
                          grid.threads, 0, (act_t *)out, (const act_t *)x, (const act_t *)weight,
                          (const act_t *)bias, cu_seqlens, n_seqs, n, C, silu, grid.tile);
        });
    });
}

void conv1d_backward_cuda(void *dx, float *dweight, float *dbias, const void *dout, const void *x,
                          const void *weight, const void *bias, const int32_t *cu_seqlens,
                          int n_seqs, int n, int C, int K, int silu)
{
    if (n <= 0 || C <= 0 || (!dx && !dweight && !dbias))
        return;
    const void *acts[] = {dx, dout, x};
    int V = channels_per_thread(C, acts, 3);
    conv1d_grid grid(n, C, V);
    int tiles = grid.tiles;
    size_t dw_n = dweight ? (size_t)tiles * C * K : 0, db_n = dbias ? (size_t)tiles * C : 0;
    float *scratch = dw_n + db_n ? (float *)cuda_scratch((dw_n + db_n) * sizeof(float)) : NULL;
    float *dwp = dw_n ? scratch : NULL, *dbp = db_n ? scratch + dw_n : NULL;
    for_width(K, [&](auto k) {
        for_lanes(V, [&](auto v) {
            launch_kernel(conv1d_backward_tiles<decltype(k)::value, decltype(v)::value>,
                          grid.blocks, grid.threads, 0, (act_t *)dx, dwp, dbp, (const act_t *)dout,
                          (const act_t *)x, (const act_t *)weight, (const act_t *)bias, cu_seqlens,
                          n_seqs, n, C, silu, grid.tile);
        });
    });
    /* dweight [C,K] is C·K columns of the partial rows */
    if (dwp) {
        launch_kernel(add_column_chunks_grouped, (C * K + 31) / 32, 32 * CHUNK_GROUPS, 0, dweight,
                      dwp, tiles, C * K);
    }
    if (dbp) {
        launch_kernel(add_column_chunks_grouped, (C + 31) / 32, 32 * CHUNK_GROUPS, 0, dbias, dbp,
                      tiles, C);
    }
}

/* one new token of each sequence (ops.h's conv1d_step): thread i owns channel
 * i % C of sequence i / C, its window column and its output */
template <int K>
static __global__ void conv1d_step_kernel(act_t *out, act_t *window, const act_t *x,
                                          const act_t *weight, const act_t *bias, int B, int C,
                                          int silu)
{
    await_inputs();
    GRID_STRIDE_LOOP(i, (size_t)B * C) {
        size_t b = i / C;
        int c = (int)(i % C);
        act_t *win = window + b * (K - 1) * C + c;
        float acc = bias ? to_f32(bias[c]) : 0.0f;
#pragma unroll
        for (int j = 0; j < K - 1; j++)
            acc += to_f32(weight[(size_t)c * K + j]) * to_f32(win[(size_t)j * C]);
        acc += to_f32(weight[(size_t)c * K + K - 1]) * to_f32(x[i]);
        from_f32(&out[i], silu ? acc * sigmoid_fast(acc) : acc);
#pragma unroll
        for (int j = 0; j + 1 < K - 1; j++) /* shift: drop the oldest, x last */
            win[(size_t)j * C] = win[(size_t)(j + 1) * C];
        if (K > 1)
            win[(size_t)(K - 2) * C] = x[i];
    }
}

void conv1d_step_cuda(void *out, void *window, const void *x, const void *weight, const void *bias,
                      int B, int C, int K, int silu)
{
    if (B <= 0 || C <= 0)
        return;
    size_t n = (size_t)B * C;
    for_width(K, [&](auto k) {
        launch_kernel(conv1d_step_kernel<decltype(k)::value>, cuda_grid(n), CUDA_BLOCK, 0,
                      (act_t *)out, (act_t *)window, (const act_t *)x, (const act_t *)weight,
                      (const act_t *)bias, B, C, silu);
    });
}
