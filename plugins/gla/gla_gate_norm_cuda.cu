/* fla's FusedRMSNormGated with swish on the GPU: the math of gla_gate_norm_cpu.c,
 *     y = o · r · w · swish(g),  r = 1/sqrt(mean(o²) + eps),
 * over rows of C values (one head of one token). One warp per row for the row
 * sums; dw through the deterministic column sums of cuda_reduce.cuh, so every
 * sum is added in an order fixed by the shapes alone.
 * y, o, g, w and their gradients are bf16 (the CUDA op table's activations),
 * rstd and dw fp32; the arithmetic is fp32. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_reduce.cuh"
#include "gla_cuda.h"

#define ROWS_PER_BLOCK (CUDA_BLOCK / 32)

/* a gradient += x, the sum rounded once to bf16 */
static __device__ __forceinline__ void add_into(act_t *grad, float x)
{
    from_f32(grad, to_f32(*grad) + x);
}

/* σ(g) without overflow: exp is only taken of a non-positive number */
static __device__ float sigmoid(float g)
{
    if (g >= 0.0f)
        return 1.0f / (1.0f + expf(-g));
    float e = expf(g);
    return e / (1.0f + e);
}

static __global__ void gate_norm_rows(act_t *y, float *rstd, const act_t *o, const act_t *g,
                                     const act_t *w, int rows, int C, float eps)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return; /* the whole warp: the sums below are per warp */
    size_t at = (size_t)row * C;
    float ss = 0.0f;
    for (int j = lane; j < C; j += 32) {
        float oj = to_f32(o[at + j]);
        ss += oj * oj;
    }
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / C + eps);
    if (lane == 0)
        rstd[row] = r;
    for (int j = lane; j < C; j += 32) {
        float gj = to_f32(g[at + j]);
        from_f32(&y[at + j], to_f32(o[at + j]) * r * to_f32(w[j]) * (gj * sigmoid(gj)));
    }
}

/* do and dg of each row: dz = dy ⊙ swish(g) reaches the normalized, weighted o */
static __global__ void gate_norm_backward_rows(act_t *d_o, act_t *dg, const act_t *dy,
                                               const act_t *o, const act_t *g, const act_t *w,
                                               const float *rstd, int rows, int C)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    size_t at = (size_t)row * C;
    float r = rstd[row], dot = 0.0f; /* Σ_k dz_k w_k o_k */
    for (int j = lane; j < C; j += 32) {
        float gj = to_f32(g[at + j]), s = sigmoid(gj), dyj = to_f32(dy[at + j]);
        float oj = to_f32(o[at + j]), wj = to_f32(w[j]);
        dot += dyj * gj * s * wj * oj;
        if (dg)
            add_into(&dg[at + j], dyj * oj * r * wj * s * (1.0f + gj * (1.0f - s)));
    }
    if (!d_o)
        return;
    float c = warp_sum(dot) * r * r * r / C;
    for (int j = lane; j < C; j += 32) {
        float gj = to_f32(g[at + j]);
        add_into(&d_o[at + j],
                 r * to_f32(dy[at + j]) * gj * sigmoid(gj) * to_f32(w[j]) - to_f32(o[at + j]) * c);
    }
}

/* dw_j's term of row i */
struct gate_norm_dw_term {
    const act_t *dy, *o, *g;
    const float *rstd;
    int C;
    __device__ float operator()(int i, int j) const
    {
        size_t at = (size_t)i * C + j;
        float gj = to_f32(g[at]);
        return to_f32(dy[at]) * gj * sigmoid(gj) * to_f32(o[at]) * rstd[i];
    }
};

/* Device memory for the column sums' partial results, valid until the next
 * call; grows as needed and is never given back (the plugin cannot use the
 * core's cuda_scratch: it does not link libflame). */
static float *partials(size_t floats)
{
    static float *buffer = NULL;
    static size_t size = 0;
    if (floats > size) {
        /* cudaFree waits for the kernels still using the old buffer */
        CUDA_CHECK(cudaFree(buffer));
        buffer = NULL;
        CUDA_CHECK(cudaMalloc(&buffer, floats * sizeof *buffer));
        size = floats;
    }
    return buffer;
}

/* dw[j] += Σ_rows term(i, j), rows in chunks added in order (cuda_reduce.cuh) */
static void dw_column_sums(float *dw, int rows, int C, gate_norm_dw_term term)
{
    int per_chunk = COLUMN_CHUNK_ROWS;
    if ((rows + per_chunk - 1) / per_chunk > COLUMN_MAX_CHUNKS)
        per_chunk = (rows + COLUMN_MAX_CHUNKS - 1) / COLUMN_MAX_CHUNKS;
    int chunks = (rows + per_chunk - 1) / per_chunk;
    float *partial = partials((size_t)chunks * C);
    dim3 grid((C + CUDA_BLOCK - 1) / CUDA_BLOCK, chunks);
    column_chunk_sums<<<grid, CUDA_BLOCK>>>(partial, rows, C, per_chunk, term);
    CUDA_CHECK_LAUNCH();
    add_column_chunks<<<(C + CUDA_BLOCK - 1) / CUDA_BLOCK, CUDA_BLOCK>>>(dw, partial, chunks, C);
    CUDA_CHECK_LAUNCH();
}

static unsigned row_blocks(int rows) { return (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

/* the entry points' void pointers: activations of the CUDA op table */
static const act_t *act(const void *p) { return static_cast<const act_t *>(p); }
static act_t *act(void *p) { return static_cast<act_t *>(p); }

void gla_gate_norm_forward_cuda(void *y, float *rstd, const void *o, const void *g, const void *w,
                                int rows, int C, float eps)
{
    if (rows <= 0)
        return;
    gate_norm_rows<<<row_blocks(rows), CUDA_BLOCK>>>(act(y), rstd, act(o), act(g), act(w), rows, C,
                                                     eps);
    CUDA_CHECK_LAUNCH();
}

void gla_gate_norm_backward_cuda(void *d_o, void *dg, float *dw, const void *dy, const void *o,
                                 const void *g, const void *w, const float *rstd, int rows, int C)
{
    if (rows <= 0)
        return;
    if (d_o || dg) {
        gate_norm_backward_rows<<<row_blocks(rows), CUDA_BLOCK>>>(
            act(d_o), act(dg), act(dy), act(o), act(g), act(w), rstd, rows, C);
        CUDA_CHECK_LAUNCH();
    }
    if (dw)
        dw_column_sums(dw, rows, C, gate_norm_dw_term{act(dy), act(o), act(g), rstd, C});
}
