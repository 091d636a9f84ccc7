/* Matrix multiply of a linear layer, out = in · weightᵀ (+ bias) (+ residual),
 * and its backward. It is where a CPU training step spends nearly all its time, so:
 *  - every inner loop runs over a contiguous dimension (K), written so that
 *    GCC vectorizes it at -O2 without -ffast-math;
 *  - a parallel task owns ROWS_PER_TASK output rows; those stay in cache
 *    while the other operand streams past them once;
 *  - in the backward, rows are handled in tiles of ROW_TILE, so each value
 *    loaded from the shared operand serves several rows.
 * Each output element is computed by one thread in an order fixed by the
 * shapes alone, so results do not depend on the number of threads. */
#include <stddef.h>
#include <string.h>

#include "cpu_kernels.h"

#define ROW_TILE 4        /* gradient rows computed together */
#define ROWS_PER_TASK 16  /* output rows of one parallel task */
#define OPERAND_BLOCK 32  /* rows of the shared operand kept hot in cache */
#define K_BLOCK 1024      /* columns of a tile's rows kept hot in L1 */

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* ---- forward: dot products ---- */

/* Adds the 8 partial sums in a fixed tree order. */
static float sum8(const float s[8])
{
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* a · w over K values. The dot product keeps 8 independent partial sums
 * (element k goes to sum k mod 8), which lets the compiler use vector
 * registers without reassociating anything itself; the K mod 8 tail is added
 * last, in order. One row at a time: with several rows per call GCC packs
 * the sums of different rows into one register and loses more to shuffles
 * than it gains from sharing the loads of w. */
static float dot(const float *a, const float *w, int K)
{
    float s[8] = {0};
    int K8 = K - K % 8;
    for (int k = 0; k < K8; k += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[k + j] * w[k + j];
    float t = sum8(s);
    for (int k = K8; k < K; k++)
        t += a[k] * w[k];
    return t;
}

/* Output rows [m0, m1): each weight row is loaded into L1 once and serves
 * all of them. The residual is read at the element's own index just before
 * the element is written, so it may be out itself. */
static void forward_rows(float *out, const float *in, const float *weight,
                         const float *bias, const float *residual, int m0, int m1, int K, int N)
{
    for (int n = 0; n < N; n++) {
        const float *w = weight + (size_t)n * K;
        float b = bias ? bias[n] : 0.0f;
        for (int m = m0; m < m1; m++) {
            size_t at = (size_t)m * N + n;
            float y = dot(in + (size_t)m * K, w, K) + b;
            out[at] = residual ? y + residual[at] : y;
        }
    }
}

void matmul_forward_cpu(float *out, const float *in, const float *weight,
                        const float *bias, const float *residual, int M, int K, int N)
{
    int tasks = (M + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    CPU_PARALLEL_FOR_IF((double)M * K * N >= CPU_PARALLEL_MIN_WORK)
    for (int t = 0; t < tasks; t++) {
        int m0 = t * ROWS_PER_TASK;
        forward_rows(out, in, weight, bias, residual, m0, min_int(M, m0 + ROWS_PER_TASK), K, N);
    }
}

/* ---- backward: sums of scaled rows ---- */

/* d_r[k] += c_r · s[k] for 4 destination rows sharing one source row. The
 * 8-wide inner block is what GCC's -O2 vectorizer accepts (no epilogue to
 * generate); the n mod 8 tail follows. */
static void axpy4(float *restrict d0, float *restrict d1, float *restrict d2,
                  float *restrict d3, const float *restrict s, const float c[4], int n)
{
    float c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
    int n8 = n - n % 8;
    for (int k = 0; k < n8; k += 8) {
        for (int j = 0; j < 8; j++) {
            float x = s[k + j];
            d0[k + j] += c0 * x;
            d1[k + j] += c1 * x;
            d2[k + j] += c2 * x;
            d3[k + j] += c3 * x;
        }
    }
    for (int k = n8; k < n; k++) {
        float x = s[k];
        d0[k] += c0 * x;
        d1[k] += c1 * x;
        d2[k] += c2 * x;
        d3[k] += c3 * x;
    }
}

static void axpy1(float *restrict d, const float *restrict s, float c, int n)
{
    int n8 = n - n % 8;
    for (int k = 0; k < n8; k += 8)
        for (int j = 0; j < 8; j++)
            d[k + j] += c * s[k + j];
    for (int k = n8; k < n; k++)
        d[k] += c * s[k];
}

/* Both backward products have the same shape:
 *   dst[r, k] += Σ_j coef(r, j) · src[j, k],  coef(r, j) = coef[r·crs + j·cjs],
 * for R rows of dst and J rows of src, all of K columns (with set, dst's rows
 * are zeroed first, by the task that owns them). Each dst element adds its J
 * terms in ascending j, whatever tile or block it falls in. */
typedef struct product {
    float *dst;
    const float *coef;
    size_t crs, cjs;
    const float *src;
    int R, J, K;
    int set;
} product;

static void product_tile(const product *p, int r, int rows, int j0, int j1)
{
    float *d[ROW_TILE];
    for (int i = 0; i < rows; i++)
        d[i] = p->dst + (size_t)(r + i) * p->K;
    for (int k0 = 0; k0 < p->K; k0 += K_BLOCK) {
        int kn = min_int(K_BLOCK, p->K - k0);
        for (int j = j0; j < j1; j++) {
            const float *s = p->src + (size_t)j * p->K + k0;
            const float *cj = p->coef + (size_t)j * p->cjs + (size_t)r * p->crs;
            if (rows == ROW_TILE) {
                float c[ROW_TILE] = {cj[0], cj[p->crs], cj[2 * p->crs], cj[3 * p->crs]};
                axpy4(d[0] + k0, d[1] + k0, d[2] + k0, d[3] + k0, s, c, kn);
            } else {
                for (int i = 0; i < rows; i++)
                    axpy1(d[i] + k0, s, cj[i * p->crs], kn);
            }
        }
    }
}

static void product_run(const product *p)
{
    int tasks = (p->R + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    CPU_PARALLEL_FOR_IF((double)p->R * p->J * p->K >= CPU_PARALLEL_MIN_WORK)
    for (int t = 0; t < tasks; t++) {
        int r1 = min_int(p->R, (t + 1) * ROWS_PER_TASK);
        if (p->set)
            memset(p->dst + (size_t)t * ROWS_PER_TASK * p->K, 0,
                   (size_t)(r1 - t * ROWS_PER_TASK) * p->K * sizeof *p->dst);
        for (int j0 = 0; j0 < p->J; j0 += OPERAND_BLOCK) {
            int j1 = min_int(p->J, j0 + OPERAND_BLOCK);
            for (int r = t * ROWS_PER_TASK; r < r1; r += ROW_TILE)
                product_tile(p, r, min_int(ROW_TILE, r1 - r), j0, j1);
        }
    }
}

/* dbias[n] += Σ_m dout[m, n]: threads own column chunks and add rows in order. */
static void bias_backward(float *dbias, const float *dout, int M, int N)
{
    enum { COLS = 256 };
    int chunks = (N + COLS - 1) / COLS;
    CPU_PARALLEL_FOR_IF((double)M * N >= CPU_PARALLEL_MIN_WORK)
    for (int c = 0; c < chunks; c++) {
        int n0 = c * COLS, n1 = min_int(N, n0 + COLS);
        for (int m = 0; m < M; m++)
            for (int n = n0; n < n1; n++)
                dbias[n] += dout[(size_t)m * N + n];
    }
}

void matmul_backward_cpu(float *din, flame_grad_mode din_mode, float *dweight, float *dbias,
                         const float *dout, const float *in, const float *weight,
                         int M, int K, int N)
{
    if (din) { /* din[m, k] (+)= Σ_n dout[m, n] · weight[n, k] */
        product p = {din, dout, (size_t)N, 1, weight, M, N, K, din_mode == FLAME_GRAD_SET};
        product_run(&p);
    }
    if (dweight) { /* dweight[n, k] += Σ_m dout[m, n] · in[m, k] */
        product p = {dweight, dout, 1, (size_t)N, in, N, M, K, 0};
        product_run(&p);
    }
    if (dbias)
        bias_backward(dbias, dout, M, N);
}
