/* Mamba2's CUDA pointwise kernels (plugins/mamba2/mamba2_pointwise_cuda.h)
 * against their CPU references (mamba2.h), as tests/test_gsa_cuda.c checks
 * GSA's, then the whole plugin on the CUDA op table against the CPU's with the
 * same weights, one group and two (plugin_cuda_testing.h), and its generation
 * on CUDA (decode_forward, position by position) against its full CUDA
 * forward:
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly and never zero, fp32 for the CPU, cast to bf16 (to_act) for the
 *    GPU where the contract says bf16 (dt, dt_bias, y, z, w, dout); fp32 ones
 *    (ddelta, and the backward's rstd, the CPU's) as they are;
 *  - error measure: ‖gpu − cpu‖ / ‖cpu‖ over each whole output, under 1e-2
 *    where the GPU's value passes through bf16 (ddt, out, dy, dz), under 1e-4
 *    where its whole path is fp32 (delta, rstd, and the ADDED sums ddt_bias
 *    and dw: those add fp32 terms before any rounding on both sides; over
 *    more than 16384 rows, looser as √rows: the CPU's fp32 sum drifts too);
 *  - every output is poisoned with NaN first (forward outputs and WRITTEN
 *    gradients alike), so a value left unwritten fails; the ADDED gradients
 *    are prefilled with values of their own size and compared with
 *    prefill + what the CPU added (overwriting, or adding twice, fails);
 *  - the sums are deterministic: the backward run twice from the same
 *    prefill gives the same bits;
 *  - Δ: the default clamp (0, inf), clamps that cut both ends (lo > 0, finite
 *    hi), dt + dt_bias above 20 (softplus passes it through), H a multiple of
 *    8 (16-byte accesses) and odd (one value an access), one token, and more
 *    tokens than the backward's 65535 row blocks hold at 64 rows each; each
 *    line says how many values were clamped and how many passed 20, and a
 *    case meant to clamp fails if none were;
 *  - gated norm: Mamba2-340M's rows (16384 × C 2048, one group) and one row,
 *    1B's C 4096, group_size < C (4 and 8 groups, 3 groups of 2000, groups of
 *    8), C not a multiple of the block's 2048 values (1000, vectorized; 1001
 *    and 3000 in groups of 1500, one value an access), and the widest group
 *    the kernels take;
 *  - generation: 1 and 4 rows of 70 tokens (past the scan's chunk of 64),
 *    the logits of every position against the forward's there
 *    (plugin_cuda_testing.h's test_decode_on_gpu).
 * Without CUDA in the build, or without a usable GPU, it prints
 * "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include "cuda_testing.h"
#include "mamba2.h"
#include "mamba2_pointwise_cuda.h"
#include "plugin_cuda_testing.h"
#include "testing.h"

static void *dev_nan_acts(size_t n) { return dev_poisoned(n * dev->act_bytes); }
static float *dev_nan_floats(size_t n) { return dev_poisoned(n * sizeof(float)); }

/* the backward run twice from the same prefill: the same bits both times */
static void compare_bits(const char *what, const char *shape, float *a, float *b, size_t n)
{
    int same = memcmp(a, b, n * sizeof *a) == 0;
    printf("%-24s %-44s %s\n", what, shape, same ? "identical" : "DIFFER");
    CHECK(same, "%s %s: two runs of the backward differ", what, shape);
    free(a), free(b);
}

/* the tolerance of a sum over n rows: the CPU adds them one by one in fp32,
 * so its own result drifts by about √n roundings (at 4M rows, a few 1e-5 of
 * it); TOL_FP32 up to 16384 rows, growing as √n beyond */
static double sum_tol(int n) { return TOL_FP32 * fmax(1.0, sqrt(n / 16384.0)); }

/* ==================================================================== Δ */

/* dt of magnitude up to mag, dt_bias up to 4 (so that dt alone decides
 * whether dt + dt_bias passes 20 or a bound); `clamps`: the case is meant to
 * clamp, so some values must have been */
static void test_delta(int n, int H, float mag, float lo, float hi, int clamps)
{
    size_t count = (size_t)n * H;
    float *dt = testing_nonzero_bf16(count, 0.01f, mag), *bias = testing_nonzero_bf16(H, 0.01f, 4);
    float *ddelta = testing_nonzero_bf16(count, 0.01f, 1), *delta = malloc(count * sizeof *delta);
    float *ddt = malloc(count * sizeof *ddt), *dbias = calloc(H, sizeof *dbias);
    mamba2_delta_forward_cpu(delta, dt, bias, n, H, lo, hi);
    mamba2_delta_backward_cpu(ddt, dbias, ddelta, dt, bias, n, H, lo, hi);
    size_t clamped = 0, over20 = 0;
    for (size_t i = 0; i < count; i++) {
        float v = dt[i] + bias[i % H];
        over20 += v > 20.0f;
        clamped += delta[i] == lo || delta[i] == hi;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d H=%d lo=%g hi=%g", n, H, lo, hi);
    printf("delta %s: |dt| < %g, %.1f%% clamped, %.1f%% above 20\n", shape, mag,
           100.0 * clamped / count, 100.0 * over20 / count);
    CHECK(!clamps || clamped > 0, "delta %s: meant to clamp, nothing was", shape);
    CHECK(mag < 20 || over20 > 0, "delta %s: meant to pass 20, nothing did", shape);
    float *pre = prefill_like(dbias, H);

    void *dt_d = acts_to_device(dt, count), *bias_d = acts_to_device(bias, H);
    float *delta_d = dev_nan_floats(count), *ddelta_d = floats_to_device(ddelta, count);
    void *ddt_d = dev_nan_acts(count);
    float *dbias_d = floats_to_device(pre, H), *dbias2_d = floats_to_device(pre, H);
    mamba2_delta_forward_cuda(delta_d, dt_d, bias_d, n, H, lo, hi);
    mamba2_delta_backward_cuda(ddt_d, dbias_d, ddelta_d, dt_d, bias_d, n, H, lo, hi);
    compare("delta", shape, floats_to_host(delta_d, count), delta, count, TOL_FP32);
    compare("delta ddt", shape, acts_to_host(ddt_d, count), ddt, count, TOL_BF16);
    compare_added("delta ddt_bias", shape, floats_to_host(dbias_d, H), dbias, pre, H, sum_tol(n));
    mamba2_delta_backward_cuda(ddt_d, dbias2_d, ddelta_d, dt_d, bias_d, n, H, lo, hi);
    compare_bits("delta ddt_bias twice", shape, floats_to_host(dbias_d, H),
                 floats_to_host(dbias2_d, H), H);

    dev->free(dt_d), dev->free(bias_d), dev->free(delta_d), dev->free(ddelta_d);
    dev->free(ddt_d), dev->free(dbias_d), dev->free(dbias2_d);
    free(dt), free(bias), free(ddelta), free(delta), free(ddt), free(dbias), free(pre);
}

/* ==================================================================== gated norm */

static void test_gated_norm(int rows, int C, int group_size)
{
    char shape[64];
    snprintf(shape, sizeof shape, "rows=%d C=%d group_size=%d", rows, C, group_size);
    size_t n = (size_t)rows * C, nr = (size_t)rows * (C / group_size);
    float eps = 1e-5f;
    float *y = testing_nonzero_bf16(n, 0.01f, 4), *z = testing_nonzero_bf16(n, 0.01f, 6), *dout = testing_nonzero_bf16(n, 0.01f, 1);
    float *w = testing_random_bf16(C, 0.5f, 1.5f);
    float *out = malloc(n * sizeof *out), *rstd = malloc(nr * sizeof *rstd);
    float *dy = malloc(n * sizeof *dy), *dz = malloc(n * sizeof *dz), *dw = calloc(C, sizeof *dw);
    mamba2_gated_norm_forward_cpu(out, rstd, y, z, w, rows, C, group_size, eps);
    mamba2_gated_norm_backward_cpu(dy, dz, dw, dout, y, z, w, rstd, rows, C, group_size);
    float *pre = prefill_like(dw, C);

    void *y_d = acts_to_device(y, n), *z_d = acts_to_device(z, n), *w_d = acts_to_device(w, C);
    void *dout_d = acts_to_device(dout, n), *out_d = dev_nan_acts(n);
    void *dy_d = dev_nan_acts(n), *dz_d = dev_nan_acts(n);
    float *rstd_d = dev_nan_floats(nr), *rstd_in_d = floats_to_device(rstd, nr);
    float *dw_d = floats_to_device(pre, C), *dw2_d = floats_to_device(pre, C);
    mamba2_gated_norm_forward_cuda(out_d, rstd_d, y_d, z_d, w_d, rows, C, group_size, eps);
    /* the backward reads the CPU's rstd: its error is the backward's alone */
    mamba2_gated_norm_backward_cuda(dy_d, dz_d, dw_d, dout_d, y_d, z_d, w_d, rstd_in_d, rows, C,
                                    group_size);
    compare("gated_norm out", shape, acts_to_host(out_d, n), out, n, TOL_BF16);
    compare("gated_norm rstd", shape, floats_to_host(rstd_d, nr), rstd, nr, TOL_FP32);
    compare("gated_norm dy", shape, acts_to_host(dy_d, n), dy, n, TOL_BF16);
    compare("gated_norm dz", shape, acts_to_host(dz_d, n), dz, n, TOL_BF16);
    compare_added("gated_norm dw", shape, floats_to_host(dw_d, C), dw, pre, C, sum_tol(rows));
    mamba2_gated_norm_backward_cuda(dy_d, dz_d, dw2_d, dout_d, y_d, z_d, w_d, rstd_in_d, rows, C,
                                    group_size);
    compare_bits("gated_norm dw twice", shape, floats_to_host(dw_d, C), floats_to_host(dw2_d, C),
                 C);

    void *dev_bufs[] = {y_d, z_d, w_d, dout_d, out_d, dy_d, dz_d, rstd_d, rstd_in_d, dw_d, dw2_d};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        dev->free(dev_bufs[i]);
    float *host_bufs[] = {y, z, dout, w, out, rstd, dy, dz, dw, pre};
    for (size_t i = 0; i < sizeof host_bufs / sizeof host_bufs[0]; i++)
        free(host_bufs[i]);
}

/* ==================================================================== columns */

/* split and join back on both sides: a copy, so the same values exactly */
static void test_columns(int rows, const int *widths, int n_parts)
{
    char shape[64];
    int total = 0;
    for (int i = 0; i < n_parts; i++)
        total += widths[i];
    snprintf(shape, sizeof shape, "rows=%d widths %d.. of %d", rows, widths[0], total);
    size_t n = (size_t)rows * total;
    float *whole = testing_nonzero_bf16(n, 0.01f, 4), *back = malloc(n * sizeof *back);
    float *parts[MAMBA2_MAX_PARTS];
    void *whole_d = acts_to_device(whole, n), *back_d = dev_nan_acts(n), *parts_d[MAMBA2_MAX_PARTS];
    for (int i = 0; i < n_parts; i++) {
        parts[i] = malloc((size_t)rows * widths[i] * sizeof *parts[i]);
        parts_d[i] = dev_nan_acts((size_t)rows * widths[i]);
    }
    mamba2_split_columns_cpu(parts, widths, n_parts, whole, rows);
    mamba2_join_columns_cpu(back, (const float *const *)parts, widths, n_parts, rows);
    mamba2_split_columns_cuda(parts_d, widths, n_parts, whole_d, rows);
    mamba2_join_columns_cuda(back_d, (const void *const *)parts_d, widths, n_parts, rows);
    for (int i = 0; i < n_parts; i++) {
        size_t np = (size_t)rows * widths[i];
        compare_bits("split columns", shape, acts_to_host(parts_d[i], np), testing_copy(parts[i], np), np);
        dev->free(parts_d[i]), free(parts[i]);
    }
    compare_bits("join columns", shape, acts_to_host(back_d, n), testing_copy(back, n), n);
    dev->free(whole_d), dev->free(back_d), free(whole), free(back);
}

/* ==================================================================== the model */

/* the plugin on both backends, and its generation on CUDA: 8 heads of 16, a
 * state of 32, G groups */
static void test_model(int groups)
{
    kv_config cfg = kv_lm_config(&(kv_lm_keys){.D = 64, .L = 2, .V = 97, .I = 0, .eps = 1e-5});
    kv_set(&cfg, "expand", "2");
    kv_set(&cfg, "head_dim", "16");
    kv_set(&cfg, "state_size", "32");
    kv_set_int(&cfg, "n_groups", groups);
    printf("model: 8 heads of 16, state 32, %d group(s)\n", groups);
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 1, 70); /* past the scan's chunk of 64 */
    test_decode_on_gpu(&cfg, 4, 70);
}

int main(void)
{
    if (!cuda_testing_device())
        return 77;
    testing_seed(20251203);
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g through bf16, "
           "%g where fp32 throughout\n",
           TOL_BF16, TOL_FP32);
    /* Δ: fla's default clamp; lo > 0 and hi finite cutting both ends, with
     * dt + dt_bias past 20 and past hi; one token; H odd (one value an
     * access); 4,195,304 tokens (over 65535 blocks of 64 rows) */
    test_delta(16384, 32, 4, 0.0f, INFINITY, 0);
    test_delta(16384, 32, 30, 1e-3f, 25.0f, 1);
    test_delta(1001, 24, 4, 0.5f, 2.0f, 1);
    test_delta(1, 32, 4, 0.0f, INFINITY, 0);
    test_delta(333, 7, 30, 1e-3f, 25.0f, 1);
    test_delta(4195304, 1, 30, 1e-3f, 25.0f, 1);
    /* gated norm: {rows, C, group_size} */
    const int gn[][3] = {
        {16384, 2048, 2048}, /* Mamba2-340M, n_groups 1 */
        {1, 2048, 2048},     /* one row */
        {37, 4096, 4096},    /* 1B: two chunks a thread */
        {300, 4096, 1024},   /* 4 groups; rows off the backward's 16 */
        {123, 2048, 256},    /* 8 groups */
        {40, 6000, 2000},    /* 3 groups, not a power of two */
        {33, 24, 8},         /* groups of one 16-byte access */
        {45, 1000, 1000},    /* not a multiple of the block's 2048, vectorized */
        {45, 1001, 1001},    /* odd: one value an access */
        {29, 3000, 1500},    /* groups of 1500: one value an access, 8 chunks */
        {17, MAMBA2_GATED_NORM_CUDA_MAX_C, MAMBA2_GATED_NORM_CUDA_MAX_C}, /* the widest */
    };
    for (size_t i = 0; i < sizeof gn / sizeof gn[0]; i++)
        test_gated_norm(gn[i][0], gn[i][1], gn[i][2]);
    const int narrow[] = {128, 128, 32}, odd[] = {5, 1, 3, 7};
    test_columns(16384, narrow, 3); /* Mamba2-340M's B', C', dt */
    test_columns(333, odd, 4);
    test_model(1);
    test_model(2);
    return testing_result("test_mamba2_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
