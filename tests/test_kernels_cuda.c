/* The CUDA op table against the CPU one (the oracle), op by op, on random
 * inputs that are never all zero, at several shapes, odd ones included, and on
 * pointers into the middle of larger buffers; conv1d over random documents
 * (lengths from 1 to past a tile of the CUDA kernels), and its generation
 * step several tokens in a row, the window carried.
 *  - Activations are bf16 on the GPU and fp32 on the CPU. Every activation
 *    input is drawn, rounded to a bf16 value here (testing_round_bf16), and given to
 *    both sides as the same numbers: to the CPU as they are, to the GPU
 *    uploaded as fp32 and cast with to_act. bf16 outputs come back through
 *    from_act.
 *  - Error measure: the norm-based relative error ‖gpu − cpu‖ / ‖cpu‖ over
 *    each whole output, under 1e-2 for bf16 outputs (their rounding is 2^-9
 *    relative at most) and under 1e-4 for fp32 outputs (fp32 arithmetic on
 *    both sides over the same inputs: only the order of additions differs).
 *    Scalars: |gpu − cpu| / |cpu|, under 1e-4.
 *  - Forward outputs are poisoned with NaN before the op: an element it
 *    leaves unwritten makes the error NaN, which fails.
 *  - Backward gradients are pre-filled with the same random values on both
 *    sides, and what the op added (after − before) is compared: an op that
 *    overwrites instead of adding fails. A bf16 gradient stores its sum
 *    rounded, so the CPU's sum is rounded to bf16 before its part is taken.
 *  - Exact checks: the casts (to_act against testing_round_bf16, ties included) and
 *    adamw's bf16 copy (against testing_round_bf16 of the GPU's own fp32 parameters).
 * `test_kernels_cuda --bench` times the products at the 340M models' shapes
 * and the LM head's loss at GPT-2 small's and transformer-340M's instead. Without a usable GPU (or without CUDA in the build) it prints
 * "SKIP: <reason>" and exits 77, Automake's "skipped". */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <float.h>
#include <string.h>
#include <time.h>

#include "cpu_kernels.h"
#include "cuda_kernels.h"
#include "testing.h"

#define TOL_ACT 1e-2
#define TOL_F32 1e-4

static const flame_ops *cpu = &flame_cpu_ops;
static const flame_ops *gpu = &flame_cuda_ops;

static float *nan_buffer(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

/* ---- device buffers, all freed at the end of each case ---- */

#define MAX_BUFFERS 64
static void *buffers[MAX_BUFFERS];
static int n_buffers;

/* Device memory for `bytes` that starts `offset_bytes` into its allocation:
 * ops get pointers into larger buffers too. */
static void *dev_alloc(size_t bytes, size_t offset_bytes)
{
    if (n_buffers == MAX_BUFFERS) {
        fprintf(stderr, "test: too many device buffers\n");
        exit(1);
    }
    char *base = gpu->alloc(bytes + offset_bytes);
    if (!base) {
        fprintf(stderr, "test: out of device memory\n");
        exit(1);
    }
    buffers[n_buffers++] = base;
    return base + offset_bytes;
}

static void release_all(void)
{
    while (n_buffers > 0)
        gpu->free(buffers[--n_buffers]);
}

/* n fp32 values, `offset` floats into their buffer */
static float *dev_f32_at(const float *host, size_t n, size_t offset)
{
    float *d = dev_alloc(n * sizeof *d, offset * sizeof *d);
    gpu->upload(d, host, n * sizeof *d);
    return d;
}

static float *dev_f32(const float *host, size_t n) { return dev_f32_at(host, n, 0); }

/* n activations cast from fp32 with to_act, `offset` activations into their buffer */
static void *dev_act_at(const float *host, size_t n, size_t offset)
{
    void *d = dev_alloc(n * gpu->act_bytes, offset * gpu->act_bytes);
    gpu->to_act(d, dev_f32(host, n), n);
    return d;
}

static void *dev_act(const float *host, size_t n) { return dev_act_at(host, n, 0); }

static int32_t *dev_tokens(const int32_t *host, size_t n)
{
    int32_t *d = dev_alloc(n * sizeof *d, 0);
    gpu->upload(d, host, n * sizeof *d);
    return d;
}

/* a device output poisoned with NaN */
static float *dev_f32_poisoned(size_t n, size_t offset)
{
    float *nan = nan_buffer(n), *d = dev_f32_at(nan, n, offset);
    free(nan);
    return d;
}

static void *dev_act_poisoned(size_t n, size_t offset)
{
    float *nan = nan_buffer(n);
    void *d = dev_act_at(nan, n, offset);
    free(nan);
    return d;
}

static float *host_f32(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    gpu->download(h, d, n * sizeof *h);
    return h;
}

/* activations back as fp32, through from_act */
static float *host_act(const void *d, size_t n)
{
    float *wide = dev_alloc(n * sizeof *wide, 0);
    gpu->from_act(wide, d, n);
    return host_f32(wide, n);
}

/* ---- comparisons ---- */

static void compare(const char *op, const char *shape, const char *note, const float *got,
                    const float *want, size_t n, double tol)
{
    double err = testing_rel_error(got, want, n);
    printf("%-28s %-36s rel %.2e%s\n", op, shape, err, note);
    CHECK(err < tol, "%s %s%s: relative error %.3g (tolerance %g)", op, shape, note, err, tol);
}

/* a bf16 output against the CPU's fp32 one */
static void check_act(const char *op, const char *shape, const void *d, const float *want, size_t n)
{
    float *h = host_act(d, n);
    compare(op, shape, "", h, want, n, TOL_ACT);
    free(h);
}

static void check_f32(const char *op, const char *shape, const float *d, const float *want,
                      size_t n)
{
    float *h = host_f32(d, n);
    compare(op, shape, "", h, want, n, TOL_F32);
    free(h);
}

/* What the device op added to a gradient (got − pre) against what the CPU
 * op added (want − pre). */
static void compare_added(const char *op, const char *shape, float *got, const float *want,
                          const float *pre, size_t n, double tol)
{
    float *added = malloc(n * sizeof *added);
    for (size_t i = 0; i < n; i++) {
        got[i] -= pre[i];
        added[i] = want[i] - pre[i];
    }
    compare(op, shape, " (added)", got, added, n, tol);
    free(added);
}

/* a bf16 gradient: the CPU's sum rounded as the GPU stores it */
static void check_added_act(const char *op, const char *shape, const void *d, const float *want,
                            const float *pre, size_t n)
{
    float *h = host_act(d, n), *rounded = malloc(n * sizeof *rounded);
    for (size_t i = 0; i < n; i++)
        rounded[i] = testing_round_bf16(want[i]);
    compare_added(op, shape, h, rounded, pre, n, TOL_ACT);
    free(h);
    free(rounded);
}

static void check_added_f32(const char *op, const char *shape, const float *d, const float *want,
                            const float *pre, size_t n)
{
    float *h = host_f32(d, n);
    compare_added(op, shape, h, want, pre, n, TOL_F32);
    free(h);
}

static void compare_scalar_within(const char *op, const char *shape, double got, double want, double tol)
{
    double err = fabs(got - want) / (fabs(want) + 1e-300);
    printf("%-28s %-36s rel %.2e (%.9g)\n", op, shape, err, want);
    CHECK(err < tol, "%s %s: %.9g, expected %.9g", op, shape, got, want);
}

static void compare_scalar(const char *op, const char *shape, double got, double want)
{
    compare_scalar_within(op, shape, got, want, TOL_F32);
}

/* bit-for-bit equality of n floats; returns the number of differences */
static size_t count_differences(const float *a, const float *b, size_t n)
{
    size_t diffs = 0;
    for (size_t i = 0; i < n; i++)
        diffs += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    return diffs;
}

/* ---- memory ---- */

static void test_memory(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *x = testing_random(n, -1, 1), *zeros = calloc(n, sizeof *zeros);
    float *fresh = dev_alloc(n * sizeof(float), 0); /* alloc promises zeros */
    check_f32("alloc (zero-filled)", shape, fresh, zeros, n);
    float *d = dev_f32(x, n), *copy = dev_f32_poisoned(n, 1);
    gpu->copy(copy, d, n * sizeof(float));
    check_f32("upload+copy+download", shape, copy, x, n);
    gpu->zero(d, n * sizeof(float));
    check_f32("zero", shape, d, zeros, n);
    release_all();
    free(x);
    free(zeros);
}

/* ---- casts ---- */

/* to_act then from_act: every value must come back as testing_round_bf16 of itself,
 * ties and overflow included */
static void test_casts(size_t n, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu%s", n, offset ? " unaligned" : "");
    const float special[] = {
        0.0f, -0.0f, 1.0f + 0x1p-8f /* tie: down to 1 (even) */,
        1.0f + 3 * 0x1p-8f /* tie: up to 1 + 2^-6 (even) */, -(1.0f + 0x1p-8f),
        1.0f + 0x1p-8f + 0x1p-20f /* just above a tie: up */, 3.0e38f, FLT_MAX /* to inf */,
        -FLT_MAX, INFINITY, -INFINITY, 1e-30f};
    float *x = testing_random(n, -3, 3), *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++)
        x[i] = special[i];
    for (size_t i = 0; i < n; i++)
        want[i] = testing_round_bf16(x[i]);
    void *d = dev_act_at(x, n, offset);
    float *back = host_act(d, n);
    size_t diffs = count_differences(back, want, n);
    printf("%-28s %-36s %zu of %zu differ from round-to-nearest-even\n", "to_act+from_act", shape,
           diffs, n);
    CHECK(diffs == 0, "to_act/from_act %s: %zu values differ from round_bf16", shape, diffs);
    release_all();
    free(x);
    free(want);
    free(back);
}

/* ---- matmul ---- */

static void test_matmul(int M, int K, int N, int with_bias, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s%s", M, K, N, with_bias ? " bias" : "",
             offset ? " offset" : "");
    size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
    float *in = testing_random_bf16(nin, -1, 1), *w = testing_random_bf16(nw, -1, 1);
    float *b = testing_random_bf16(N, -1, 1), *out = nan_buffer(nout);
    void *d_in = dev_act_at(in, nin, offset), *d_w = dev_act_at(w, nw, offset);
    void *d_b = dev_act(b, N), *d_out = dev_act_poisoned(nout, offset);
    cpu->matmul_forward(out, in, w, with_bias ? b : NULL, NULL, M, K, N);
    gpu->matmul_forward(d_out, d_in, d_w, with_bias ? d_b : NULL, NULL, M, K, N);
    check_act("matmul_forward", shape, d_out, out, nout);
    /* onto a residual that is the output itself */
    float *res = testing_random_bf16(nout, -1, 1);
    void *d_res = dev_act_at(res, nout, offset);
    cpu->matmul_forward(res, in, w, with_bias ? b : NULL, res, M, K, N);
    gpu->matmul_forward(d_res, d_in, d_w, with_bias ? d_b : NULL, d_res, M, K, N);
    check_act("matmul_forward + residual", shape, d_res, res, nout);

    /* din written over NaN (SET), then added onto random values (ADD) */
    float *dout = testing_random_bf16(nout, -1, 1), *din = nan_buffer(nin);
    void *d_dout = dev_act(dout, nout), *d_din = dev_act_poisoned(nin, offset);
    cpu->matmul_backward(din, FLAME_GRAD_SET, NULL, NULL, dout, in, w, M, K, N);
    gpu->matmul_backward(d_din, FLAME_GRAD_SET, NULL, NULL, d_dout, d_in, d_w, M, K, N);
    check_act("matmul_backward din (set)", shape, d_din, din, nin);

    float *dw = testing_random(nw, -1, 1), *db = testing_random(N, -1, 1);
    float *dw0 = testing_copy(dw, nw), *db0 = testing_copy(db, N);
    float *din_add = testing_random_bf16(nin, -1, 1), *din0 = testing_copy(din_add, nin);
    d_din = dev_act_at(din_add, nin, offset);
    float *d_dw = dev_f32(dw, nw), *d_db = dev_f32(db, N);
    cpu->matmul_backward(din_add, FLAME_GRAD_ADD, dw, with_bias ? db : NULL, dout, in, w, M, K, N);
    gpu->matmul_backward(d_din, FLAME_GRAD_ADD, d_dw, with_bias ? d_db : NULL, d_dout, d_in, d_w, M,
                         K, N);
    check_added_act("matmul_backward din (add)", shape, d_din, din_add, din0, nin);
    check_added_f32("matmul_backward dw", shape, d_dw, dw, dw0, nw);
    if (with_bias)
        check_added_f32("matmul_backward dbias", shape, d_db, db, db0, N);
    release_all();
    free(in); free(w); free(b); free(out); free(res); free(dout); free(din);
    free(din_add); free(dw); free(db); free(din0); free(dw0); free(db0);
}

/* The product onto an fp32 residual stream: out = residual + in·wᵀ (+ bias),
 * fp32, over the residual itself, and into a fresh buffer without one. */
static void test_matmul_f32(int M, int K, int N, int with_bias, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s%s", M, K, N, with_bias ? " bias" : "",
             offset ? " offset" : "");
    size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
    float *in = testing_random_bf16(nin, -1, 1), *w = testing_random_bf16(nw, -1, 1);
    float *b = testing_random_bf16(N, -1, 1), *out = nan_buffer(nout), *res = testing_random(nout, -4, 4);
    void *d_in = dev_act_at(in, nin, offset), *d_w = dev_act_at(w, nw, offset), *d_b = dev_act(b, N);
    float *d_out = dev_f32_poisoned(nout, offset), *d_res = dev_f32_at(res, nout, offset);
    cpu->matmul_forward_f32(out, in, w, with_bias ? b : NULL, NULL, M, K, N);
    gpu->matmul_forward_f32(d_out, d_in, d_w, with_bias ? d_b : NULL, NULL, M, K, N);
    check_f32("matmul_forward_f32", shape, d_out, out, nout);
    cpu->matmul_forward_f32(res, in, w, with_bias ? b : NULL, res, M, K, N);
    gpu->matmul_forward_f32(d_res, d_in, d_w, with_bias ? d_b : NULL, d_res, M, K, N);
    check_f32("matmul_forward_f32 + residual", shape, d_res, res, nout);
    release_all();
    free(in); free(w); free(b); free(out); free(res);
}

/* Only dweight asked for: the NULL gradients are skipped. */
static void test_matmul_dweight_only(int M, int K, int N)
{
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d din=NULL", M, K, N);
    size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
    float *in = testing_random_bf16(nin, -1, 1), *w = testing_random_bf16(nw, -1, 1);
    float *dout = testing_random_bf16(nout, -1, 1), *dw = testing_random(nw, -1, 1);
    float *dw0 = testing_copy(dw, nw);
    float *d_dw = dev_f32(dw, nw);
    cpu->matmul_backward(NULL, FLAME_GRAD_SET, dw, NULL, dout, in, w, M, K, N);
    gpu->matmul_backward(NULL, FLAME_GRAD_SET, d_dw, NULL, dev_act(dout, nout), dev_act(in, nin),
                         dev_act(w, nw), M, K, N);
    check_added_f32("matmul_backward dw", shape, d_dw, dw, dw0, nw);
    release_all();
    free(in); free(w); free(dout); free(dw); free(dw0);
}

/* Products of no terms. Forward with K = 0: out is the bias and/or the
 * residual, or zeros. Backward with N = 0: din (SET) is zeros. */
static void test_matmul_no_terms(int M, int width)
{
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=0 N=%d", M, width);
    size_t nout = (size_t)M * width;
    float none[1] = {1}; /* the input and weight of no elements */
    float *b = testing_random_bf16(width, -1, 1), *res = testing_random_bf16(nout, -1, 1);
    float *out = nan_buffer(nout), *zeros = calloc(nout, sizeof *zeros);
    void *d_none = dev_act(none, 1), *d_b = dev_act(b, width), *d_res = dev_act(res, nout);
    void *d_out = dev_act_poisoned(nout, 0);
    const struct { const char *what; int bias, residual; } cases[] = {
        {"matmul_forward K=0 bias", 1, 0},
        {"matmul_forward K=0 bias+res", 1, 1},
        {"matmul_forward K=0 residual", 0, 1},
    };
    for (int c = 0; c < 3; c++) {
        cpu->matmul_forward(out, none, none, cases[c].bias ? b : NULL,
                            cases[c].residual ? res : NULL, M, 0, width);
        gpu->matmul_forward(d_out, d_none, d_none, cases[c].bias ? d_b : NULL,
                            cases[c].residual ? d_res : NULL, M, 0, width);
        check_act(cases[c].what, shape, d_out, out, nout);
    }
    gpu->matmul_forward(d_out, d_none, d_none, NULL, NULL, M, 0, width);
    float *got = host_act(d_out, nout);
    size_t diffs = count_differences(got, zeros, nout);
    printf("%-28s %-36s %zu of %zu not zero\n", "matmul_forward K=0 nothing", shape, diffs, nout);
    CHECK(diffs == 0, "matmul_forward K=0 with no bias or residual: %zu values not zero", diffs);
    free(got);

    snprintf(shape, sizeof shape, "M=%d K=%d N=0", M, width);
    void *d_din = dev_act_poisoned(nout, 0);
    gpu->matmul_backward(d_din, FLAME_GRAD_SET, NULL, NULL, d_none, d_res, d_none, M, width, 0);
    got = host_act(d_din, nout);
    diffs = count_differences(got, zeros, nout);
    printf("%-28s %-36s %zu of %zu not zero\n", "matmul_backward N=0 din", shape, diffs, nout);
    CHECK(diffs == 0, "matmul_backward N=0: %zu din values not zero", diffs);
    release_all();
    free(got); free(b); free(res); free(out); free(zeros);
}

/* Many shapes in a row, more than the backend keeps plans for, then the
 * first again: products stay right when plans are made, reused and replaced. */
static void test_matmul_many_shapes(int shapes)
{
    const int K = 24, N = 40;
    for (int pass = 0; pass < 2; pass++)
        for (int M = 1; M <= (pass ? 2 : shapes); M++) {
            char shape[64];
            snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s", M, K, N, pass ? " again" : "");
            size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
            float *in = testing_random_bf16(nin, -1, 1), *w = testing_random_bf16(nw, -1, 1);
            float *out = nan_buffer(nout);
            void *d_out = dev_act_poisoned(nout, 0);
            cpu->matmul_forward(out, in, w, NULL, NULL, M, K, N);
            gpu->matmul_forward(d_out, dev_act(in, nin), dev_act(w, nw), NULL, NULL, M, K, N);
            float *h = host_act(d_out, nout);
            double err = testing_rel_error(h, out, nout);
            CHECK(err < TOL_ACT, "matmul_forward %s: relative error %.3g", shape, err);
            if (M == shapes || pass)
                printf("%-28s %-36s rel %.2e\n", "matmul_forward (plans)", shape, err);
            release_all();
            free(in); free(w); free(out); free(h);
        }
}

/* ---- embedding ---- */

static int32_t *random_tokens(int n, int range)
{
    int32_t *t = malloc((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(testing_uniform() * range);
    return t;
}

/* Tokens drawn from `range` of the V rows: a small range repeats tokens. */
static void test_embedding(int V, int n, int C, int range)
{
    char shape[64];
    snprintf(shape, sizeof shape, "V=%d n=%d C=%d tokens<%d", V, n, C, range);
    size_t ntab = (size_t)V * C, nout = (size_t)n * C;
    int32_t *tokens = random_tokens(n, range);
    float *table = testing_random_bf16(ntab, -1, 1), *out = nan_buffer(nout);
    int32_t *d_tokens = dev_tokens(tokens, n);
    void *d_table = dev_act(table, ntab), *d_out = dev_act_poisoned(nout, 0);
    cpu->embedding_forward(out, tokens, table, n, C);
    gpu->embedding_forward(d_out, d_tokens, d_table, n, C);
    check_act("embedding_forward", shape, d_out, out, nout);

    float *dout = testing_random_bf16(nout, -1, 1), *dtab = testing_random(ntab, -1, 1);
    float *dtab0 = testing_copy(dtab, ntab), *d_dtab = dev_f32(dtab, ntab);
    cpu->embedding_backward(dtab, dout, tokens, n, C);
    gpu->embedding_backward(d_dtab, dev_act(dout, nout), d_tokens, n, C);
    check_added_f32("embedding_backward", shape, d_dtab, dtab, dtab0, ntab);
    release_all();
    free(tokens); free(table); free(out); free(dout); free(dtab); free(dtab0);
}

/* ---- RMSNorm ---- */

static void test_rmsnorm(int n, int C, int with_dx, flame_grad_mode mode, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d C=%d%s%s%s", n, C, with_dx ? "" : " dx=NULL",
             mode == FLAME_GRAD_ADD ? " add" : " set", offset ? " offset" : "");
    size_t nx = (size_t)n * C;
    float *x = testing_random_bf16(nx, -2, 2), *w = testing_random_bf16(C, 0.5f, 1.5f);
    float *out = nan_buffer(nx), *rstd = nan_buffer(n);
    void *d_x = dev_act_at(x, nx, offset), *d_w = dev_act(w, C);
    void *d_out = dev_act_poisoned(nx, offset);
    float *d_rstd = dev_f32_poisoned(n, 0);
    cpu->rmsnorm_forward(out, rstd, x, w, n, C, 1e-5f);
    gpu->rmsnorm_forward(d_out, d_rstd, d_x, d_w, n, C, 1e-5f);
    check_act("rmsnorm_forward out", shape, d_out, out, nx);
    check_f32("rmsnorm_forward rstd", shape, d_rstd, rstd, n);

    /* SET writes dx over NaN; ADD adds onto random values */
    int add = mode == FLAME_GRAD_ADD;
    float *dout = testing_random_bf16(nx, -1, 1);
    float *dx = add ? testing_random_bf16(nx, -1, 1) : nan_buffer(nx);
    float *dw = testing_random(C, -1, 1), *dx0 = testing_copy(dx, nx), *dw0 = testing_copy(dw, C);
    void *d_dx = add ? dev_act_at(dx, nx, offset) : dev_act_poisoned(nx, offset);
    float *d_dw = dev_f32(dw, C);
    cpu->rmsnorm_backward(with_dx ? dx : NULL, mode, dw, dout, x, w, rstd, n, C);
    gpu->rmsnorm_backward(with_dx ? d_dx : NULL, mode, d_dw, dev_act_at(dout, nx, offset), d_x, d_w,
                          d_rstd, n, C);
    if (with_dx && add)
        check_added_act("rmsnorm_backward dx", shape, d_dx, dx, dx0, nx);
    else if (with_dx)
        check_act("rmsnorm_backward dx", shape, d_dx, dx, nx);
    check_added_f32("rmsnorm_backward dw", shape, d_dw, dw, dw0, C);
    release_all();
    free(x); free(w); free(out); free(rstd); free(dout); free(dx); free(dw); free(dx0); free(dw0);
}

/* ---- LayerNorm ---- */

static void test_layernorm(int n, int C, int with_bias, flame_grad_mode mode, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d C=%d%s%s%s", n, C, with_bias ? "" : " bias=NULL",
             mode == FLAME_GRAD_ADD ? " add" : " set", offset ? " offset" : "");
    size_t nx = (size_t)n * C;
    float *x = testing_random_bf16(nx, -1, 3), *w = testing_random_bf16(C, 0.5f, 1.5f);
    float *b = testing_random_bf16(C, -1, 1);
    float *out = nan_buffer(nx), *mean = nan_buffer(n), *rstd = nan_buffer(n);
    void *d_x = dev_act_at(x, nx, offset), *d_w = dev_act(w, C), *d_b = with_bias ? dev_act(b, C) : NULL;
    void *d_out = dev_act_poisoned(nx, offset);
    float *d_mean = dev_f32_poisoned(n, 0), *d_rstd = dev_f32_poisoned(n, 0);
    cpu->layernorm_forward(out, mean, rstd, x, w, with_bias ? b : NULL, n, C, 1e-5f);
    gpu->layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, n, C, 1e-5f);
    check_act("layernorm_forward out", shape, d_out, out, nx);
    check_f32("layernorm_forward mean", shape, d_mean, mean, n);
    check_f32("layernorm_forward rstd", shape, d_rstd, rstd, n);

    /* SET writes dx over NaN; ADD adds onto random values */
    int add = mode == FLAME_GRAD_ADD;
    float *dout = testing_random_bf16(nx, -1, 1);
    float *dx = add ? testing_random_bf16(nx, -1, 1) : nan_buffer(nx);
    float *dw = testing_random(C, -1, 1), *db = testing_random(C, -1, 1);
    float *dx0 = testing_copy(dx, nx), *dw0 = testing_copy(dw, C), *db0 = testing_copy(db, C);
    void *d_dx = add ? dev_act_at(dx, nx, offset) : dev_act_poisoned(nx, offset);
    float *d_dw = dev_f32(dw, C), *d_db = dev_f32(db, C);
    cpu->layernorm_backward(dx, mode, dw, db, dout, x, w, mean, rstd, n, C);
    gpu->layernorm_backward(d_dx, mode, d_dw, d_db, dev_act_at(dout, nx, offset), d_x, d_w, d_mean, d_rstd, n,
                            C);
    if (add)
        check_added_act("layernorm_backward dx", shape, d_dx, dx, dx0, nx);
    else
        check_act("layernorm_backward dx", shape, d_dx, dx, nx);
    check_added_f32("layernorm_backward dw", shape, d_dw, dw, dw0, C);
    check_added_f32("layernorm_backward db", shape, d_db, db, db0, C);
    release_all();
    free(x); free(w); free(b); free(out); free(mean); free(rstd); free(dout); free(dx); free(dw); free(db);
    free(dx0); free(dw0); free(db0);
}

/* An fp32 residual stream's LayerNorm: x and dx fp32 (not rounded to bf16),
 * out and dout bf16; dx written over NaN or added onto random values, and
 * its bf16 copy (dx_act) written over NaN. */
static void test_layernorm_f32(int n, int C, flame_grad_mode mode, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d C=%d%s%s", n, C, mode == FLAME_GRAD_ADD ? " add" : " set",
             offset ? " offset" : "");
    size_t nx = (size_t)n * C;
    float *x = testing_random(nx, -1, 3), *w = testing_random_bf16(C, 0.5f, 1.5f);
    float *b = testing_random_bf16(C, -1, 1);
    float *out = nan_buffer(nx), *mean = nan_buffer(n), *rstd = nan_buffer(n);
    float *d_x = dev_f32_at(x, nx, offset), *d_mean = dev_f32_poisoned(n, 0), *d_rstd = dev_f32_poisoned(n, 0);
    void *d_w = dev_act(w, C), *d_b = dev_act(b, C), *d_out = dev_act_poisoned(nx, offset);
    cpu->layernorm_forward_f32(out, mean, rstd, x, w, b, n, C, 1e-5f);
    gpu->layernorm_forward_f32(d_out, d_mean, d_rstd, d_x, d_w, d_b, n, C, 1e-5f);
    check_act("layernorm_forward_f32 out", shape, d_out, out, nx);
    check_f32("layernorm_forward_f32 mean", shape, d_mean, mean, n);
    check_f32("layernorm_forward_f32 rstd", shape, d_rstd, rstd, n);

    int add = mode == FLAME_GRAD_ADD;
    float *dout = testing_random_bf16(nx, -1, 1), *dx = add ? testing_random(nx, -1, 1) : nan_buffer(nx);
    float *dw = testing_random(C, -1, 1), *db = testing_random(C, -1, 1);
    float *dx0 = testing_copy(dx, nx), *dw0 = testing_copy(dw, C), *db0 = testing_copy(db, C);
    float *d_dx = add ? dev_f32_at(dx, nx, offset) : dev_f32_poisoned(nx, offset);
    float *d_dw = dev_f32(dw, C), *d_db = dev_f32(db, C), *dx_act = nan_buffer(nx);
    void *d_dx_act = dev_act_poisoned(nx, offset);
    cpu->layernorm_backward_f32(dx, mode, dx_act, dw, db, dout, x, w, mean, rstd, n, C);
    gpu->layernorm_backward_f32(d_dx, mode, d_dx_act, d_dw, d_db, dev_act_at(dout, nx, offset), d_x, d_w, d_mean,
                                d_rstd, n, C);
    if (add)
        check_added_f32("layernorm_backward_f32 dx", shape, d_dx, dx, dx0, nx);
    else
        check_f32("layernorm_backward_f32 dx", shape, d_dx, dx, nx);
    check_act("layernorm_backward_f32 dx_act", shape, d_dx_act, dx_act, nx);
    check_added_f32("layernorm_backward_f32 dw", shape, d_dw, dw, dw0, C);
    check_added_f32("layernorm_backward_f32 db", shape, d_db, db, db0, C);
    release_all();
    free(x); free(w); free(b); free(out); free(mean); free(rstd); free(dout); free(dx); free(dw); free(db);
    free(dx0); free(dw0); free(db0); free(dx_act);
}

/* ---- conv1d ---- */

/* n tokens cut into documents of 1 to max_len tokens; n_seqs receives how many */
static int32_t *random_documents(int n, int max_len, int *n_seqs)
{
    int32_t *cu = malloc((size_t)(n + 1) * sizeof *cu);
    int s = 0;
    cu[0] = 0;
    for (; cu[s] < n; s++) {
        int len = 1 + (int)(testing_uniform() * max_len);
        cu[s + 1] = len < n - cu[s] ? cu[s] + len : n;
    }
    *n_seqs = s;
    return cu;
}

/* x starts x_offset activations into its buffer: the kernels move 4, 2 or 1
 * channels at once as C and the pointers' alignment allow */
static void test_conv1d(int n, int C, int K, int max_len, int silu, int with_bias, int with_dx,
                        size_t x_offset)
{
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d C=%d K=%d docs<=%d%s%s%s x+%zu", n, C, K, max_len,
             silu ? " silu" : "", with_bias ? " bias" : "", with_dx ? "" : " dx=NULL", x_offset);
    int n_seqs;
    int32_t *cu = random_documents(n, max_len, &n_seqs);
    size_t nx = (size_t)n * C, nw = (size_t)C * K;
    float *x = testing_random_bf16(nx, -2, 2), *w = testing_random_bf16(nw, -1, 1);
    float *b = with_bias ? testing_random_bf16(C, -1, 1) : NULL, *out = nan_buffer(nx);
    int32_t *d_cu = dev_tokens(cu, (size_t)n_seqs + 1);
    void *d_x = dev_act_at(x, nx, x_offset), *d_w = dev_act(w, nw), *d_b = with_bias ? dev_act(b, C) : NULL;
    void *d_out = dev_act_poisoned(nx, 0);
    cpu->conv1d_forward(out, x, w, b, cu, n_seqs, n, C, K, silu);
    gpu->conv1d_forward(d_out, d_x, d_w, d_b, d_cu, n_seqs, n, C, K, silu);
    check_act("conv1d_forward", shape, d_out, out, nx);

    /* dx written over NaN; dweight and dbias added onto random values */
    float *dout = testing_random_bf16(nx, -1, 1), *dx = nan_buffer(nx);
    float *dw = testing_random(nw, -1, 1), *dw0 = testing_copy(dw, nw);
    float *db = testing_random(C, -1, 1), *db0 = testing_copy(db, C);
    void *d_dx = with_dx ? dev_act_poisoned(nx, 0) : NULL;
    float *d_dw = dev_f32(dw, nw), *d_db = with_bias ? dev_f32(db, C) : NULL;
    cpu->conv1d_backward(with_dx ? dx : NULL, dw, with_bias ? db : NULL, dout, x, w, b, cu,
                         n_seqs, n, C, K, silu);
    gpu->conv1d_backward(d_dx, d_dw, d_db, dev_act(dout, nx), d_x, d_w, d_b, d_cu, n_seqs, n, C,
                         K, silu);
    if (with_dx)
        check_act("conv1d_backward dx", shape, d_dx, dx, nx);
    check_added_f32("conv1d_backward dweight", shape, d_dw, dw, dw0, nw);
    if (with_bias)
        check_added_f32("conv1d_backward dbias", shape, d_db, db, db0, C);
    release_all();
    free(cu); free(x); free(w); free(b); free(out); free(dout); free(dx); free(dw); free(dw0);
    free(db); free(db0);
}

/* generation's step: `steps` new tokens of B sequences whose windows start
 * random (a prompt already in), the windows carried from step to step */
static void test_conv1d_step(int B, int C, int K, int silu, int with_bias, int steps)
{
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d C=%d K=%d%s%s steps=%d", B, C, K, silu ? " silu" : "",
             with_bias ? " bias" : "", steps);
    size_t nx = (size_t)B * C, nwin = (size_t)B * (K - 1) * C, nw = (size_t)C * K;
    float *w = testing_random_bf16(nw, -1, 1), *b = with_bias ? testing_random_bf16(C, -1, 1) : NULL;
    float *window = testing_random_bf16(nwin + 1, -2, 2), *out = nan_buffer(nx);
    void *d_w = dev_act(w, nw), *d_b = with_bias ? dev_act(b, C) : NULL;
    void *d_window = dev_act(window, nwin + 1), *d_out = dev_act_poisoned(nx, 0);
    for (int t = 0; t < steps; t++) {
        float *x = testing_random_bf16(nx, -2, 2);
        cpu->conv1d_step(out, window, x, w, b, B, C, K, silu);
        gpu->conv1d_step(d_out, d_window, dev_act(x, nx), d_w, d_b, B, C, K, silu);
        check_act("conv1d_step", shape, d_out, out, nx);
        free(x);
    }
    check_act("conv1d_step window", shape, d_window, window, nwin + 1);
    release_all();
    free(w); free(b); free(window); free(out);
}

/* ---- SwiGLU ---- */

static void test_swiglu(size_t n, int with_dup)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu%s", n, with_dup ? "" : " dup=NULL");
    float *gate = testing_random_bf16(n, -6, 6), *up = testing_random_bf16(n, -2, 2), *out = nan_buffer(n);
    void *d_gate = dev_act(gate, n), *d_up = dev_act(up, n), *d_out = dev_act_poisoned(n, 0);
    cpu->swiglu_forward(out, gate, up, n);
    gpu->swiglu_forward(d_out, d_gate, d_up, n);
    check_act("swiglu_forward", shape, d_out, out, n);

    /* gradients written over NaN; the forward's output made again over dout */
    float *dout = testing_random_bf16(n, -1, 1), *dg = nan_buffer(n), *du = nan_buffer(n);
    void *d_dg = dev_act_poisoned(n, 0), *d_du = dev_act_poisoned(n, 0), *d_dout = dev_act(dout, n);
    cpu->swiglu_backward(dg, with_dup ? du : NULL, NULL, dout, gate, up, n);
    gpu->swiglu_backward(d_dg, with_dup ? d_du : NULL, d_dout, d_dout, d_gate, d_up, n);
    check_act("swiglu_backward dgate", shape, d_dg, dg, n);
    if (with_dup)
        check_act("swiglu_backward dup", shape, d_du, du, n);
    check_act("swiglu_backward out (= dout)", shape, d_dout, out, n);
    release_all();
    free(gate); free(up); free(out); free(dout); free(dg); free(du);
}

/* activation `at` of a device buffer */
static void *act_at(void *d, size_t at) { return (char *)d + at * gpu->act_bytes; }

/* The strided ops over column blocks of one [rows, stride] product: bit for
 * bit the flat ops (checked against the CPU above) over packed copies, and
 * the other columns of the gradients' buffer untouched. */
static void test_swiglu_strided(int rows, int I, int stride, int gate_at, int up_at)
{
    char shape[80];
    snprintf(shape, sizeof shape, "rows=%d I=%d stride=%d gate@%d up@%d", rows, I, stride, gate_at, up_at);
    size_t n = (size_t)rows * I, wide = (size_t)rows * stride;
    float *gate = testing_random_bf16(n, -6, 6), *up = testing_random_bf16(n, -2, 2);
    float *dout = testing_random_bf16(n, -1, 1), *both = testing_random_bf16(wide, -6, 6);
    testing_put_columns(both, gate, rows, stride, gate_at, I);
    testing_put_columns(both, up, rows, stride, up_at, I);
    void *d_gate = dev_act(gate, n), *d_up = dev_act(up, n), *d_both = dev_act(both, wide);

    void *d_flat = dev_act_poisoned(n, 0), *d_out = dev_act_poisoned(n, 0);
    gpu->swiglu_forward(d_flat, d_gate, d_up, n);
    gpu->swiglu_forward_strided(d_out, act_at(d_both, gate_at), act_at(d_both, up_at), rows, I, stride);
    float *want = host_act(d_flat, n), *got = host_act(d_out, n);
    size_t differ = count_differences(got, want, n);
    printf("%-28s %-36s %zu differ\n", "swiglu_forward_strided", shape, differ);
    CHECK(differ == 0, "swiglu_forward_strided %s: %zu values differ from the flat op's", shape, differ);
    free(want), free(got);

    /* the flat backward into packed gradients, the strided one into the
     * columns of a random buffer; the activation made again over dout */
    float *filler = testing_random_bf16(wide, -9, 9);
    void *d_dg = dev_act_poisoned(n, 0), *d_du = dev_act_poisoned(n, 0), *d_grads = dev_act(filler, wide);
    void *d_flat_over = dev_act(dout, n), *d_over = dev_act(dout, n);
    gpu->swiglu_backward(d_dg, d_du, d_flat_over, d_flat_over, d_gate, d_up, n);
    gpu->swiglu_backward_strided(act_at(d_grads, gate_at), act_at(d_grads, up_at), d_over, d_over,
                                 act_at(d_both, gate_at), act_at(d_both, up_at), rows, I, stride);
    float *dg = host_act(d_dg, n), *du = host_act(d_du, n), *grads = host_act(d_grads, wide);
    testing_put_columns(filler, dg, rows, stride, gate_at, I);
    testing_put_columns(filler, du, rows, stride, up_at, I);
    want = host_act(d_flat_over, n), got = host_act(d_over, n);
    differ = count_differences(grads, filler, wide) + count_differences(got, want, n);
    printf("%-28s %-36s %zu differ\n", "swiglu_backward_strided", shape, differ);
    CHECK(differ == 0, "swiglu_backward_strided %s: %zu values differ from the flat op's (or outside its columns)",
          shape, differ);
    release_all();
    free(gate); free(up); free(dout); free(both); free(filler); free(dg); free(du); free(grads);
    free(want); free(got);
}

/* ---- GELU ---- */

static void test_gelu(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *x = testing_random_bf16(n, -6, 6), *out = nan_buffer(n);
    void *d_x = dev_act(x, n), *d_out = dev_act_poisoned(n, 0);
    cpu->gelu_forward(out, x, n);
    gpu->gelu_forward(d_out, d_x, n);
    check_act("gelu_forward", shape, d_out, out, n);

    /* dx written over dout, in place */
    float *dout = testing_random_bf16(n, -1, 1), *dx = nan_buffer(n);
    void *d_dout = dev_act(dout, n);
    cpu->gelu_backward(dx, dout, x, n);
    gpu->gelu_backward(d_dout, d_dout, d_x, n);
    check_act("gelu_backward dx (over dout)", shape, d_dout, dx, n);
    release_all();
    free(x); free(out); free(dout); free(dx);
}

/* ---- the MLP's products with the GELU (cuBLASLt's epilogues where the shapes allow) ---- */

static void test_matmul_gelu(int M, int K, int N)
{
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d", M, K, N);
    size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
    float *in = testing_random_bf16(nin, -1, 1), *w = testing_random_bf16(nw, -0.2f, 0.2f);
    float *b = testing_random_bf16(N, -1, 1), *out = nan_buffer(nout), *pre = nan_buffer(nout);
    void *d_out = dev_act_poisoned(nout, 0), *d_pre = dev_act_poisoned(nout, 0);
    cpu->matmul_gelu_forward(out, pre, in, w, b, M, K, N);
    gpu->matmul_gelu_forward(d_out, d_pre, dev_act(in, nin), dev_act(w, nw), dev_act(b, N), M, K, N);
    check_act("matmul_gelu_forward out", shape, d_out, out, nout);
    check_act("matmul_gelu_forward pre", shape, d_pre, pre, nout);

    /* the gradient through the GELU of a product [M,N]·[N,K]: pre [M,K], bf16-exact on both sides */
    float *pre_k = testing_random_bf16(nin, -3, 3), *dout = testing_random_bf16(nout, -1, 1);
    float *dpre = nan_buffer(nin);
    void *d_dpre = dev_act_poisoned(nin, 0);
    cpu->matmul_dgelu_backward(dpre, dout, w, pre_k, M, K, N);
    gpu->matmul_dgelu_backward(d_dpre, dev_act(dout, nout), dev_act(w, nw), dev_act(pre_k, nin), M, K, N);
    check_act("matmul_dgelu_backward dpre", shape, d_dpre, dpre, nin);
    release_all();
    free(in); free(w); free(b); free(out); free(pre); free(pre_k); free(dout); free(dpre);
}

/* ---- add ---- */

/* out = a + b, and in place over a */
static void test_add(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *a = testing_random_bf16(n, -1, 1), *b = testing_random_bf16(n, -1, 1), *sum = nan_buffer(n);
    void *d_a = dev_act(a, n), *d_b = dev_act(b, n), *d_out = dev_act_poisoned(n, 0);
    cpu->add(sum, a, b, n);
    gpu->add(d_out, d_a, d_b, n);
    check_act("add", shape, d_out, sum, n);
    gpu->add(d_a, d_a, d_b, n);
    check_act("add (over a)", shape, d_a, sum, n);
    release_all();
    free(a); free(b); free(sum);
}

/* ---- scale ---- */

static void test_scale(size_t n, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu%s", n, offset ? " offset" : "");
    float *g = testing_random(n, -1, 1), *d_g = dev_f32_at(g, n, offset);
    cpu->scale(g, 0.37f, n);
    gpu->scale(d_g, 0.37f, n);
    check_f32("scale", shape, d_g, g, n);
    release_all();
    free(g);
}

/* ---- cross-entropy ---- */

/* Targets in [0, V), every fifth row ignored (−1) unless it is the only one. */
static int32_t *ce_targets(int n, int V, int *counted)
{
    int32_t *t = random_tokens(n, V);
    *counted = 0;
    for (int i = 0; i < n; i++) {
        if (n > 1 && i % 5 == 3)
            t[i] = -1;
        else
            (*counted)++;
    }
    return t;
}

/* what the GPU is asked to write */
enum ce_outputs { CE_BOTH, CE_IN_PLACE, CE_DLOGITS_ONLY, CE_NEITHER };

static void test_cross_entropy(int n, int V, enum ce_outputs outputs)
{
    static const char *names[] = {"", " in place", " losses=NULL", " no outputs"};
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d V=%d%s", n, V, names[outputs]);
    size_t nl = (size_t)n * V;
    int counted;
    int32_t *targets = ce_targets(n, V, &counted);
    float scale = 1.0f / (float)counted;
    float *logits = testing_random_bf16(nl, -4, 4), *losses = nan_buffer(n), *dl = nan_buffer(nl);
    void *d_logits = dev_act(logits, nl);
    int32_t *d_targets = dev_tokens(targets, n);
    float *d_losses = outputs == CE_BOTH || outputs == CE_IN_PLACE ? dev_f32_poisoned(n, 0) : NULL;
    void *d_dl = outputs == CE_IN_PLACE ? d_logits
                 : outputs == CE_NEITHER ? NULL
                                         : dev_act_poisoned(nl, 0);
    double want = cpu->cross_entropy(losses, dl, logits, targets, n, V, scale);
    double got = gpu->cross_entropy(d_losses, d_dl, d_logits, d_targets, n, V, scale);
    compare_scalar("cross_entropy sum", shape, got, want);
    if (d_losses)
        check_f32("cross_entropy losses", shape, d_losses, losses, n);
    if (d_dl)
        check_act("cross_entropy dlogits", shape, d_dl, dl, nl);
    if (outputs == CE_NEITHER) { /* the logits are intact: the same sum again */
        double again = gpu->cross_entropy(NULL, NULL, d_logits, d_targets, n, V, scale);
        CHECK(again == got, "cross_entropy %s: %.17g then %.17g: not deterministic", shape, got,
              again);
    }
    release_all();
    free(targets); free(logits); free(losses); free(dl);
}

/* ---- the LM head's loss (lm_head_loss) and scale_rows ---- */

/* the loss and the logits' gradient, row_scale·expd (the op's contract),
 * against the CPU's; x in [−x_range, x_range] (wide: losses of tens of
 * nats); `portable`: the product and cross_entropy even on Hopper */
static void test_lm_head_loss(int n, int D, int V, float x_range, int portable)
{
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d D=%d V=%d x<=%g%s", n, D, V, x_range, portable ? " portable" : "");
    size_t nl = (size_t)n * V;
    int counted;
    int32_t *targets = ce_targets(n, V, &counted);
    float scale = 1.0f / (float)counted;
    float *x = testing_random_bf16((size_t)n * D, -x_range, x_range), *head = testing_random_bf16((size_t)V * D, -1, 1);
    float *expd = nan_buffer(nl), *row_scale = nan_buffer(n);
    void *d_x = dev_act(x, (size_t)n * D), *d_head = dev_act(head, (size_t)V * D), *d_expd = dev_act_poisoned(nl, 0);
    float *d_row_scale = dev_f32_poisoned(n, 0);
    int32_t *d_targets = dev_tokens(targets, n);
    double want = cpu->lm_head_loss(expd, row_scale, x, head, targets, n, D, V, scale);
    lm_head_loss_cuda_portable_only(portable);
    double got = gpu->lm_head_loss(d_expd, d_row_scale, d_x, d_head, d_targets, n, D, V, scale);
    lm_head_loss_cuda_portable_only(0);
    /* where the op is the product and cross_entropy (not Hopper, portable, or
     * rows not of 16 bytes), the losses are those of logits rounded to bf16 */
    int fused = !portable && lm_head_loss_cuda_fuses(D);
    compare_scalar_within("lm_head_loss sum", shape, got, want, fused ? TOL_F32 : 1e-3);
    float *g_expd = host_act(d_expd, nl), *g_scale = host_f32(d_row_scale, n);
    for (size_t i = 0; i < nl; i++) {
        g_expd[i] *= g_scale[i / V];
        expd[i] *= row_scale[i / V];
    }
    compare("lm_head_loss dlogits", shape, " (row_scale·expd)", g_expd, expd, nl, TOL_ACT);
    release_all();
    free(targets); free(x); free(head); free(expd); free(row_scale); free(g_expd); free(g_scale);
}

static void test_scale_rows(int n, int C, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d C=%d offset=%zu", n, C, offset);
    float *x = testing_random_bf16((size_t)n * C, -1, 1), *factors = testing_random(n, -2, 2);
    float *out = nan_buffer((size_t)n * C);
    void *d_x = dev_act_at(x, (size_t)n * C, offset), *d_out = dev_act_poisoned((size_t)n * C, offset);
    float *d_factors = dev_f32(factors, n);
    cpu->scale_rows(out, x, factors, n, C);
    gpu->scale_rows(d_out, d_x, d_factors, n, C);
    check_act("scale_rows", shape, d_out, out, (size_t)n * C);
    gpu->scale_rows(d_x, d_x, d_factors, n, C);
    check_act("scale_rows in place", shape, d_x, out, (size_t)n * C);
    release_all();
    free(x); free(factors); free(out);
}

/* ---- sum of squares ---- */

static void test_sum_squares(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *x = testing_random(n, -1, 1), *d_x = dev_f32(x, n);
    double got = gpu->sum_squares(d_x, n);
    compare_scalar("sum_squares", shape, got, cpu->sum_squares(x, n));
    double again = gpu->sum_squares(d_x, n);
    CHECK(again == got, "sum_squares %s: %.17g then %.17g: not deterministic", shape, got, again);
    release_all();
    free(x);
}

/* ---- AdamW ---- */

/* Three steps with fresh gradients, the second's scaled (clipped) by 0.6; m, v
 * and the parameters' change compared,
 * the weight decay on the first third of the values only (a boundary inside a
 * 16-byte access). With a separate compute copy, it must hold the GPU's
 * parameters rounded to bf16; without (compute = param), the fp32 parameters
 * alone are written. */
static void test_adamw(size_t n, size_t offset, int separate_copy)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu, 3 steps%s%s", n, offset ? " offset" : "",
             separate_copy ? "" : " compute=param");
    float *p = testing_random(n, -1, 1), *m = testing_random(n, -0.1f, 0.1f);
    float *v = testing_random(n, 0.0f, 0.01f), *p0 = testing_copy(p, n);
    float *d_p = dev_f32_at(p, n, offset), *d_m = dev_f32_at(m, n, offset);
    float *d_v = dev_f32_at(v, n, offset);
    void *d_compute = separate_copy ? dev_act_poisoned(n, offset) : d_p;
    size_t n_decayed = n / 3;
    for (int t = 1; t <= 3; t++) {
        float *g = testing_random(n, -1, 1), *d_g = dev_f32_at(g, n, offset);
        float scale = t == 2 ? 0.6f : 1.0f;
        cpu->adamw(p, p, g, scale, m, v, n, n_decayed, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        gpu->adamw(d_p, d_compute, d_g, scale, d_m, d_v, n, n_decayed, 1e-2f, 0.9f, 0.95f, 1e-8f,
                   0.1f, t);
        free(g);
    }
    check_f32("adamw m", shape, d_m, m, n);
    check_f32("adamw v", shape, d_v, v, n);
    check_added_f32("adamw param", shape, d_p, p, p0, n);
    if (separate_copy) {
        float *gpu_p = host_f32(d_p, n), *copy = host_act(d_compute, n);
        for (size_t i = 0; i < n; i++)
            gpu_p[i] = testing_round_bf16(gpu_p[i]);
        size_t diffs = count_differences(copy, gpu_p, n);
        printf("%-28s %-36s %zu of %zu differ from bf16(param)\n", "adamw compute copy", shape,
               diffs, n);
        CHECK(diffs == 0, "adamw %s: %zu values of the compute copy differ from bf16(param)",
              shape, diffs);
        free(gpu_p);
        free(copy);
    }
    release_all();
    free(p); free(m); free(v); free(p0);
}

static void run_all(void)
{
    CHECK(gpu->act_bytes == 2, "the CUDA backend's activations are %zu bytes, not bf16's 2",
          gpu->act_bytes);
    CHECK(cpu->act_bytes == 4, "the CPU backend's activations are %zu bytes, not fp32's 4",
          cpu->act_bytes);

    /* sizes that do and do not split into 16-byte accesses */
    const size_t sizes[] = {1, 1001, 8192, (1u << 20) + 3, 1u << 20};
    for (int i = 0; i < 5; i++) {
        test_memory(sizes[i]);
        test_casts(sizes[i], 0);
        test_scale(sizes[i], 0);
        test_swiglu(sizes[i], 1);
        test_gelu(sizes[i]);
        test_add(sizes[i]);
        test_sum_squares(sizes[i]);
        test_adamw(sizes[i], 0, 1);
    }
    test_casts(8192, 1);
    test_scale(8192, 1);
    test_swiglu(1001, 0);
    test_swiglu_strided(33, 2816, 5632, 0, 2816); /* fla's gate and up, 340M's width */
    test_swiglu_strided(5, 7, 17, 9, 1);          /* HazyResearch's up first; one value an access */
    test_swiglu_strided(70000, 8, 24, 16, 0);     /* past the grid's 65535 rows */
    test_sum_squares((3u << 20) + 5);
    test_adamw(8192, 1, 1);
    test_adamw(8192, 0, 0);

    const int mm[][3] = {{1, 1, 1},     {1, 65, 129},    {37, 65, 129},     {64, 128, 256},
                         {257, 1000, 33}, {512, 768, 2304}, {2048, 1024, 2816}};
    for (int i = 0; i < 7; i++)
        for (int bias = 0; bias <= 1; bias++)
            test_matmul(mm[i][0], mm[i][1], mm[i][2], bias, 0);
    test_matmul(37, 65, 129, 1, 1);
    test_matmul(64, 128, 256, 0, 3);
    test_matmul(512, 768, 2304, 1, 8); /* 16-byte aligned, not 256 */
    for (int i = 1; i < 7; i++)
        test_matmul_f32(mm[i][0], mm[i][1], mm[i][2], i % 2, 0);
    test_matmul_f32(37, 65, 129, 1, 1);
    test_matmul_f32(37, 0, 129, 1, 0);
    test_matmul_dweight_only(37, 65, 129);
    test_matmul_no_terms(37, 129);
    test_matmul_many_shapes(80);

    test_embedding(1000, 1, 1, 1000);
    test_embedding(1000, 37, 67, 1000);
    test_embedding(1000, 300, 768, 1000);
    test_embedding(1000, 4096, 1029, 50);
    test_embedding(4096, 2048, 1024, 50);

    /* up to 2048 columns one kernel takes dx and dw; wider rows take two. dx is
     * orthogonal to x (RMSNorm) or to x and the ones (LayerNorm), so rows of one
     * or two columns leave it eps-sized rounding in both: three is the narrowest */
    const int rn[][2] = {{1, 3},      {1, 67},     {37, 67},   {200, 1000},
                         {2048, 1024}, {100, 2048}, {33, 2049}, {1024, 4096}};
    for (int i = 0; i < 8; i++)
        for (int add = 0; add <= 1; add++)
            test_rmsnorm(rn[i][0], rn[i][1], 1, add ? FLAME_GRAD_ADD : FLAME_GRAD_SET, 0);
    test_rmsnorm(37, 67, 0, FLAME_GRAD_SET, 0);
    test_rmsnorm(37, 1024, 1, FLAME_GRAD_ADD, 1);
    test_rmsnorm(37, 1024, 1, FLAME_GRAD_SET, 1);
    for (int i = 0; i < 8; i++)
        test_layernorm(rn[i][0], rn[i][1], 1, i % 2 ? FLAME_GRAD_ADD : FLAME_GRAD_SET, 0);
    test_layernorm(37, 768, 0, FLAME_GRAD_SET, 0);
    test_layernorm(37, 768, 1, FLAME_GRAD_ADD, 1);
    for (int i = 2; i < 8; i++)
        test_layernorm_f32(rn[i][0], rn[i][1], i % 2 ? FLAME_GRAD_ADD : FLAME_GRAD_SET, 0);
    test_layernorm_f32(37, 768, FLAME_GRAD_ADD, 1);
    /* GPT-2 small's fc1 and fc2 shapes; widths off the epilogues' 8 (the separate GELU) */
    test_matmul_gelu(37, 64, 96);
    test_matmul_gelu(2048, 768, 3072);
    test_matmul_gelu(2048, 3072, 768);
    test_matmul_gelu(37, 67, 100);
    test_matmul_gelu(1, 768, 3072);

    /* documents shorter than the window, inside one tile, across tiles
     * (8 tokens for these narrow inputs, 64 for the wide one below); past
     * 65535 tiles the grid's rows take several */
    const int cv[][3] = {{1, 1, 1}, {37, 67, 3}, {200, 1000, 64}, {1000, 1792, 300},
                         {4099, 259, 2000}};
    for (int i = 0; i < 5; i++)
        for (int silu = 0; silu <= 1; silu++)
            for (int bias = 0; bias <= 1; bias++)
                test_conv1d(cv[i][0], cv[i][1], 4, cv[i][2], silu, bias, 1, 0);
    test_conv1d(37, 67, 2, 5, 1, 1, 1, 0);
    test_conv1d(37, 67, 3, 5, 0, 1, 1, 0);
    test_conv1d(200, 1000, 8, 9, 1, 1, 1, 0);
    test_conv1d(200, 1000, 4, 9, 1, 1, 0, 0);
    test_conv1d(200, 1000, 4, 9, 0, 0, 0, 0);
    test_conv1d(65536 * 64 + 100, 1, 4, 100000, 1, 1, 1, 0);
    test_conv1d(16384 + 37, 1100, 4, 3000, 1, 1, 1, 0);
    test_conv1d(300, 1002, 4, 50, 1, 1, 1, 0); /* 2 channels a thread */
    test_conv1d(300, 1000, 4, 50, 1, 1, 1, 2); /* 2: x aligned to 4 bytes only */
    test_conv1d(300, 1000, 3, 50, 1, 1, 1, 1); /* 1: x not aligned */
    test_conv1d(5000, 2048, 4, 1000, 1, 1, 1, 0); /* Mamba2-340M's x, 4 channels a thread */
    test_conv1d(5000, 2048, 3, 1, 0, 0, 1, 0);    /* Based's BaseConv; documents of one token */
    test_conv1d_step(1, 67, 4, 1, 1, 5);
    test_conv1d_step(3, 1000, 2, 0, 0, 3);
    test_conv1d_step(16, 2048, 4, 1, 1, 5); /* Mamba2-340M's x */
    test_conv1d_step(2, 1, 1, 0, 1, 2);     /* no window */
    test_conv1d_step(2, 300, 8, 1, 0, 9);   /* more steps than the window holds */

    /* rows staged in shared memory (up to the device's opt-in limit, 227 KB on
     * an H200), vectorized or not, and rows too long for it */
    const int ce[][2] = {{1, 7}, {37, 129}, {64, 32000}, {300, 50257}, {64, 50264}, {8, 131072}, {5, 131071}};
    for (int i = 0; i < 7; i++)
        test_cross_entropy(ce[i][0], ce[i][1], CE_BOTH);
    test_cross_entropy(37, 129, CE_IN_PLACE);
    test_cross_entropy(64, 32000, CE_IN_PLACE);
    test_cross_entropy(64, 32000, CE_DLOGITS_ONLY);
    test_cross_entropy(37, 129, CE_NEITHER);

    /* on Hopper: tiles part-full in rows and columns, a depth not a multiple
     * of the kernel's step (96), a vocabulary not a multiple of 8 (stores of
     * one value), GPT-2's and the transformer's vocabularies, losses of tens
     * of nats; a depth of 100 takes the portable path (rows not 16 bytes) */
    test_lm_head_loss(300, 192, 1000, 1, 0);
    test_lm_head_loss(77, 96, 517, 1, 0);
    test_lm_head_loss(256, 64, 50304, 1, 0);
    test_lm_head_loss(130, 128, 32000, 1, 0);
    test_lm_head_loss(1, 64, 8, 1, 0);
    test_lm_head_loss(200, 64, 3000, 4, 0);
    test_lm_head_loss(50, 100, 300, 1, 0);
    test_lm_head_loss(300, 192, 1000, 1, 1);
    test_scale_rows(37, 96, 0);
    test_scale_rows(37, 97, 3);
}

/* ---- --bench: the products at the 340M models' shapes ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* mean ms of run() over reps calls after one, the device drained around them */
static double time_ms(void (*run)(const void *), const void *arg, int reps)
{
    run(arg);
    gpu->synchronize();
    double t0 = now_ms();
    for (int r = 0; r < reps; r++)
        run(arg);
    gpu->synchronize();
    return (now_ms() - t0) / reps;
}

typedef struct product {
    int M, K, N;
    void *in, *w, *out, *dout, *din;
    float *dw;
} product;

static void product_forward(const void *arg)
{
    const product *p = arg;
    gpu->matmul_forward(p->out, p->in, p->w, NULL, NULL, p->M, p->K, p->N);
}
static void product_input_grad(const void *arg)
{
    const product *p = arg;
    gpu->matmul_backward(p->din, FLAME_GRAD_SET, NULL, NULL, p->dout, p->in, p->w, p->M, p->K, p->N);
}
static void product_weight_grad(const void *arg)
{
    const product *p = arg;
    gpu->matmul_backward(NULL, FLAME_GRAD_SET, p->dw, NULL, p->dout, p->in, p->w, p->M, p->K, p->N);
}

/* out[M,N] = in[M,K]·wᵀ, din = dout·w and dw += doutᵀ·in, each in TFLOP/s */
static void bench_product(const char *what, int M, int K, int N)
{
    float *x = testing_random_bf16((size_t)M * (K > N ? K : N), -1, 1);
    product p = {M, K, N, dev_act(x, (size_t)M * K), dev_act(x, (size_t)N * K), dev_act(x, (size_t)M * N),
                 dev_act(x, (size_t)M * N), dev_act(x, (size_t)M * K), dev_f32(x, (size_t)N * K)};
    double flops = 2.0 * M * K * N, reps = 20;
    double f = time_ms(product_forward, &p, reps), di = time_ms(product_input_grad, &p, reps);
    double dw = time_ms(product_weight_grad, &p, reps);
    printf("%-28s M=%d K=%d N=%d: forward %.3f ms (%.0f TFLOP/s), din %.3f ms (%.0f), dw %.3f ms (%.0f)\n",
           what, M, K, N, f, flops / f / 1e9, di, flops / di / 1e9, dw, flops / dw / 1e9);
    free(x);
    release_all();
}

typedef struct head_loss {
    product p;
    int32_t *targets;
    float *row_scale;
} head_loss;

static void head_loss_op(const void *arg)
{
    const head_loss *h = arg;
    gpu->lm_head_loss(h->p.out, h->row_scale, h->p.in, h->p.w, h->targets, h->p.M, h->p.K, h->p.N, 1.0f);
}
static void head_loss_parts(const void *arg)
{
    const head_loss *h = arg;
    product_forward(&h->p);
    gpu->cross_entropy(NULL, h->p.out, h->p.out, h->targets, h->p.M, h->p.N, 1.0f);
}

/* the LM head's forward and loss: lm_head_loss against the product and the cross-entropy */
static void bench_head_loss(const char *what, int M, int K, int V)
{
    float *x = testing_random_bf16((size_t)M * K > (size_t)V * K ? (size_t)M * K : (size_t)V * K, -1, 1);
    int counted;
    int32_t *targets = ce_targets(M, V, &counted);
    head_loss h = {{M, K, V, dev_act(x, (size_t)M * K), dev_act(x, (size_t)V * K), dev_act_poisoned((size_t)M * V, 0),
                    NULL, NULL, NULL},
                   dev_tokens(targets, M), dev_f32_poisoned(M, 0)};
    double fused = time_ms(head_loss_op, &h, 20), parts = time_ms(head_loss_parts, &h, 20);
    printf("%-28s M=%d K=%d V=%d: lm_head_loss %.3f ms, product and cross_entropy %.3f ms\n", what, M, K, V, fused,
           parts);
    free(x);
    free(targets);
    release_all();
}

static void bench(void)
{
    bench_head_loss("LM head, GPT-2 small", 32 * 1024, 768, 50304);
    bench_head_loss("LM head, transformer-340M", 8 * 2048, 1024, 32000);
    int n = 8 * 2048;
    bench_product("q, k, v or o", n, 1024, 1024);
    bench_product("q, k, v as one", n, 1024, 3072);
    bench_product("gate or up", n, 1024, 2816);
    bench_product("gate and up as one", n, 1024, 5632);
    bench_product("down", n, 2816, 1024);
}

int main(int argc, char **argv)
{
    char why[256];
    if (!flame_cuda_available(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        printf("device: %s\nbf16 products (cuBLASLt), 2·M·K·N FLOPs each, mean of 20\n", why);
        testing_seed(20240607);
        bench();
        return 0;
    }
    printf("device: %s\nerror: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g for bf16 "
           "outputs, %g for fp32 ones\n",
           why, TOL_ACT, TOL_F32);
    testing_seed(20240607);
    run_all();
    return testing_result("test_kernels_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
