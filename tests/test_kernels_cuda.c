/* The CUDA op table against the CPU one (the oracle), op by op, on random
 * inputs that are never all zero, at several shapes, odd ones included.
 *  - Error measure: the norm-based relative error ‖gpu − cpu‖ / ‖cpu‖ over
 *    each whole output, which must be under 1e-4 (fp32 on both sides; only the
 *    order of additions differs). Scalars: |gpu − cpu| / |cpu|.
 *  - Forward outputs are poisoned with NaN before the op: an element it
 *    leaves unwritten makes the error NaN, which fails.
 *  - Backward gradients are pre-filled with the same random values on both
 *    sides, and what the op added (after − before) is compared: an op that
 *    overwrites instead of adding fails.
 * Without a usable GPU (or without CUDA in the build) it prints
 * "SKIP: <reason>" and exits 77, Automake's "skipped". */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <string.h>

#include "cpu_kernels.h"
#include "cuda_kernels.h"
#include "testing.h"

#define TOL 1e-4

static const flame_ops *cpu = &flame_cpu_ops;
static const flame_ops *gpu = &flame_cuda_ops;

/* ---- device buffers, all freed at the end of each case ---- */

#define MAX_BUFFERS 32
static void *buffers[MAX_BUFFERS];
static int n_buffers;

/* A device buffer of n floats that starts `offset` floats into its
 * allocation: ops get pointers into larger buffers too. */
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

static float *dev_at(const float *host, size_t n, size_t offset)
{
    float *d = dev_alloc(n * sizeof *d, offset * sizeof *d);
    gpu->upload(d, host, n * sizeof *d);
    return d;
}

static float *dev(const float *host, size_t n) { return dev_at(host, n, 0); }

static int32_t *dev_tokens(const int32_t *host, size_t n)
{
    int32_t *d = dev_alloc(n * sizeof *d, 0);
    gpu->upload(d, host, n * sizeof *d);
    return d;
}

static float *nan_buffer(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

/* a device output of n floats, poisoned with NaN */
static float *dev_poisoned(size_t n, size_t offset)
{
    float *nan = nan_buffer(n);
    float *d = dev_at(nan, n, offset);
    free(nan);
    return d;
}

static float *to_host(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    gpu->download(h, d, n * sizeof *h);
    return h;
}

/* ---- comparisons ---- */

/* Compares the device result d with the CPU's ref; frees neither. */
static void compare(const char *op, const char *shape, const float *d, const float *ref, size_t n)
{
    float *h = to_host(d, n);
    double err = testing_rel_error(h, ref, n);
    printf("%-22s %-30s rel %.2e\n", op, shape, err);
    CHECK(err < TOL, "%s %s: relative error %.3g", op, shape, err);
    free(h);
}

/* Compares what the device op added to a gradient (d − pre) with what the
 * CPU op added (ref − pre). */
static void compare_added(const char *op, const char *shape, const float *d, const float *ref,
                          const float *pre, size_t n)
{
    float *h = to_host(d, n), *want = testing_copy(ref, n);
    for (size_t i = 0; i < n; i++) {
        h[i] -= pre[i];
        want[i] -= pre[i];
    }
    double err = testing_rel_error(h, want, n);
    printf("%-22s %-30s rel %.2e (added)\n", op, shape, err);
    CHECK(err < TOL, "%s %s: relative error of the added gradient %.3g", op, shape, err);
    free(h);
    free(want);
}

static void compare_scalar(const char *op, const char *shape, double got, double want)
{
    double err = fabs(got - want) / (fabs(want) + 1e-300);
    printf("%-22s %-30s rel %.2e (%.9g)\n", op, shape, err, want);
    CHECK(err < TOL, "%s %s: %.9g, expected %.9g", op, shape, got, want);
}

/* ---- memory ---- */

static void test_memory(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *x = testing_random(n, -1, 1), *zeros = calloc(n, sizeof *zeros);
    float *fresh = dev_alloc(n * sizeof(float), 0); /* alloc promises zeros */
    compare("alloc (zero-filled)", shape, fresh, zeros, n);
    float *d = dev(x, n), *copy = dev_poisoned(n, 1);
    gpu->copy(copy, d, n * sizeof(float));
    compare("upload+copy+download", shape, copy, x, n);
    gpu->zero(d, n * sizeof(float));
    compare("zero", shape, d, zeros, n);
    release_all();
    free(x);
    free(zeros);
}

/* ---- matmul ---- */

static void test_matmul(int M, int K, int N, int with_bias, size_t offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s%s", M, K, N, with_bias ? " bias" : "",
             offset ? " unaligned" : "");
    size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
    float *in = testing_random(nin, -1, 1), *w = testing_random(nw, -1, 1);
    float *b = testing_random(N, -1, 1), *out = nan_buffer(nout);
    float *d_in = dev_at(in, nin, offset), *d_w = dev_at(w, nw, offset), *d_b = dev(b, N);
    float *d_out = dev_poisoned(nout, offset);
    cpu->matmul_forward(out, in, w, with_bias ? b : NULL, M, K, N);
    gpu->matmul_forward(d_out, d_in, d_w, with_bias ? d_b : NULL, M, K, N);
    compare("matmul_forward", shape, d_out, out, nout);

    float *dout = testing_random(nout, -1, 1);
    float *din = testing_random(nin, -1, 1), *dw = testing_random(nw, -1, 1);
    float *db = testing_random(N, -1, 1);
    float *din0 = testing_copy(din, nin), *dw0 = testing_copy(dw, nw), *db0 = testing_copy(db, N);
    float *d_dout = dev(dout, nout), *d_din = dev_at(din, nin, offset), *d_dw = dev(dw, nw);
    float *d_db = dev(db, N);
    cpu->matmul_backward(din, dw, with_bias ? db : NULL, dout, in, w, M, K, N);
    gpu->matmul_backward(d_din, d_dw, with_bias ? d_db : NULL, d_dout, d_in, d_w, M, K, N);
    compare_added("matmul_backward din", shape, d_din, din, din0, nin);
    compare_added("matmul_backward dw", shape, d_dw, dw, dw0, nw);
    if (with_bias)
        compare_added("matmul_backward dbias", shape, d_db, db, db0, N);
    release_all();
    free(in); free(w); free(b); free(out); free(dout);
    free(din); free(dw); free(db); free(din0); free(dw0); free(db0);
}

/* Only dweight asked for: the NULL gradients are skipped. */
static void test_matmul_dweight_only(int M, int K, int N)
{
    char shape[64];
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d din=NULL", M, K, N);
    size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
    float *in = testing_random(nin, -1, 1), *w = testing_random(nw, -1, 1);
    float *dout = testing_random(nout, -1, 1), *dw = testing_random(nw, -1, 1);
    float *dw0 = testing_copy(dw, nw);
    float *d_dw = dev(dw, nw);
    cpu->matmul_backward(NULL, dw, NULL, dout, in, w, M, K, N);
    gpu->matmul_backward(NULL, d_dw, NULL, dev(dout, nout), dev(in, nin), dev(w, nw), M, K, N);
    compare_added("matmul_backward dw", shape, d_dw, dw, dw0, nw);
    release_all();
    free(in); free(w); free(dout); free(dw); free(dw0);
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
    float *table = testing_random(ntab, -1, 1), *out = nan_buffer(nout);
    int32_t *d_tokens = dev_tokens(tokens, n);
    float *d_table = dev(table, ntab), *d_out = dev_poisoned(nout, 0);
    cpu->embedding_forward(out, tokens, table, n, C);
    gpu->embedding_forward(d_out, d_tokens, d_table, n, C);
    compare("embedding_forward", shape, d_out, out, nout);

    float *dout = testing_random(nout, -1, 1), *dtab = testing_random(ntab, -1, 1);
    float *dtab0 = testing_copy(dtab, ntab), *d_dtab = dev(dtab, ntab);
    cpu->embedding_backward(dtab, dout, tokens, n, C);
    gpu->embedding_backward(d_dtab, dev(dout, nout), d_tokens, n, C);
    compare_added("embedding_backward", shape, d_dtab, dtab, dtab0, ntab);
    release_all();
    free(tokens); free(table); free(out); free(dout); free(dtab); free(dtab0);
}

/* ---- RMSNorm ---- */

static void test_rmsnorm(int n, int C, int with_dx)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d C=%d%s", n, C, with_dx ? "" : " dx=NULL");
    size_t nx = (size_t)n * C;
    float *x = testing_random(nx, -2, 2), *w = testing_random(C, 0.5f, 1.5f);
    float *out = nan_buffer(nx), *rstd = nan_buffer(n);
    float *d_x = dev(x, nx), *d_w = dev(w, C);
    float *d_out = dev_poisoned(nx, 0), *d_rstd = dev_poisoned(n, 0);
    cpu->rmsnorm_forward(out, rstd, x, w, n, C, 1e-5f);
    gpu->rmsnorm_forward(d_out, d_rstd, d_x, d_w, n, C, 1e-5f);
    compare("rmsnorm_forward out", shape, d_out, out, nx);
    compare("rmsnorm_forward rstd", shape, d_rstd, rstd, n);

    float *dout = testing_random(nx, -1, 1), *dx = testing_random(nx, -1, 1);
    float *dw = testing_random(C, -1, 1), *dx0 = testing_copy(dx, nx), *dw0 = testing_copy(dw, C);
    float *d_dx = dev(dx, nx), *d_dw = dev(dw, C);
    cpu->rmsnorm_backward(with_dx ? dx : NULL, dw, dout, x, w, rstd, n, C);
    gpu->rmsnorm_backward(with_dx ? d_dx : NULL, d_dw, dev(dout, nx), d_x, d_w, d_rstd, n, C);
    if (with_dx)
        compare_added("rmsnorm_backward dx", shape, d_dx, dx, dx0, nx);
    compare_added("rmsnorm_backward dw", shape, d_dw, dw, dw0, C);
    release_all();
    free(x); free(w); free(out); free(rstd); free(dout); free(dx); free(dw); free(dx0); free(dw0);
}

/* ---- SwiGLU ---- */

static void test_swiglu(size_t n, int with_dup)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu%s", n, with_dup ? "" : " dup=NULL");
    float *gate = testing_random(n, -6, 6), *up = testing_random(n, -2, 2), *out = nan_buffer(n);
    float *d_gate = dev(gate, n), *d_up = dev(up, n), *d_out = dev_poisoned(n, 0);
    cpu->swiglu_forward(out, gate, up, n);
    gpu->swiglu_forward(d_out, d_gate, d_up, n);
    compare("swiglu_forward", shape, d_out, out, n);

    float *dout = testing_random(n, -1, 1), *dg = testing_random(n, -1, 1);
    float *du = testing_random(n, -1, 1), *dg0 = testing_copy(dg, n), *du0 = testing_copy(du, n);
    float *d_dg = dev(dg, n), *d_du = dev(du, n);
    cpu->swiglu_backward(dg, with_dup ? du : NULL, dout, gate, up, n);
    gpu->swiglu_backward(d_dg, with_dup ? d_du : NULL, dev(dout, n), d_gate, d_up, n);
    compare_added("swiglu_backward dgate", shape, d_dg, dg, dg0, n);
    if (with_dup)
        compare_added("swiglu_backward dup", shape, d_du, du, du0, n);
    release_all();
    free(gate); free(up); free(out); free(dout); free(dg); free(du); free(dg0); free(du0);
}

/* ---- add, scale ---- */

static void test_elementwise(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *a = testing_random(n, -1, 1), *b = testing_random(n, -1, 1), *out = nan_buffer(n);
    float *d_a = dev(a, n), *d_b = dev(b, n), *d_out = dev_poisoned(n, 0);
    cpu->add(out, a, b, n);
    gpu->add(d_out, d_a, d_b, n);
    compare("add", shape, d_out, out, n);
    gpu->add(d_a, d_a, d_b, n); /* out aliasing a */
    compare("add (out = a)", shape, d_a, out, n);

    cpu->scale(b, 0.37f, n);
    gpu->scale(d_b, 0.37f, n);
    compare("scale", shape, d_b, b, n);
    release_all();
    free(a); free(b); free(out);
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

static void test_cross_entropy(int n, int V, int with_outputs)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d V=%d%s", n, V, with_outputs ? "" : " no outputs");
    size_t nl = (size_t)n * V;
    int counted;
    int32_t *targets = ce_targets(n, V, &counted);
    float scale = 1.0f / (float)counted;
    float *logits = testing_random(nl, -4, 4), *losses = nan_buffer(n), *dl = nan_buffer(nl);
    float *d_losses = dev_poisoned(n, 0), *d_dl = dev_poisoned(nl, 0);
    double want = cpu->cross_entropy(losses, dl, logits, targets, n, V, scale);
    double got = gpu->cross_entropy(with_outputs ? d_losses : NULL, with_outputs ? d_dl : NULL,
                                    dev(logits, nl), dev_tokens(targets, n), n, V, scale);
    compare_scalar("cross_entropy sum", shape, got, want);
    if (with_outputs) {
        compare("cross_entropy losses", shape, d_losses, losses, n);
        compare("cross_entropy dlogits", shape, d_dl, dl, nl);
    }
    release_all();
    free(targets); free(logits); free(losses); free(dl);
}

/* ---- sum of squares ---- */

static void test_sum_squares(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *x = testing_random(n, -1, 1), *d_x = dev(x, n);
    double got = gpu->sum_squares(d_x, n);
    compare_scalar("sum_squares", shape, got, cpu->sum_squares(x, n));
    double again = gpu->sum_squares(d_x, n);
    CHECK(again == got, "sum_squares %s: %.17g then %.17g: not deterministic", shape, got, again);
    release_all();
    free(x);
}

/* ---- AdamW ---- */

/* Three steps with fresh gradients; m, v and the parameters' change compared. */
static void test_adamw(size_t n)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu, 3 steps", n);
    float *p = testing_random(n, -1, 1), *m = testing_random(n, -0.1f, 0.1f);
    float *v = testing_random(n, 0.0f, 0.01f), *p0 = testing_copy(p, n);
    float *d_p = dev(p, n), *d_m = dev(m, n), *d_v = dev(v, n);
    for (int t = 1; t <= 3; t++) {
        float *g = testing_random(n, -1, 1), *d_g = dev(g, n);
        cpu->adamw(p, g, m, v, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        gpu->adamw(d_p, d_g, d_m, d_v, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        free(g);
    }
    compare("adamw m", shape, d_m, m, n);
    compare("adamw v", shape, d_v, v, n);
    compare_added("adamw param", shape, d_p, p, p0, n);
    release_all();
    free(p); free(m); free(v); free(p0);
}

static void run_all(void)
{
    const size_t sizes[] = {1, 1001, (1u << 20) + 3};
    for (int i = 0; i < 3; i++) {
        test_memory(sizes[i]);
        test_elementwise(sizes[i]);
        test_swiglu(sizes[i], 1);
        test_sum_squares(sizes[i]);
        test_adamw(sizes[i]);
    }
    test_swiglu(1001, 0);
    test_sum_squares((3u << 20) + 5);

    const int mm[][3] = {{1, 1, 1}, {1, 65, 129}, {37, 65, 129}, {64, 128, 256},
                         {257, 1000, 33}, {512, 768, 2304}};
    for (int i = 0; i < 6; i++)
        for (int bias = 0; bias <= 1; bias++)
            test_matmul(mm[i][0], mm[i][1], mm[i][2], bias, 0);
    test_matmul(37, 65, 129, 1, 1);
    test_matmul(64, 128, 256, 0, 3);
    test_matmul_dweight_only(37, 65, 129);

    test_embedding(1000, 1, 1, 1000);
    test_embedding(1000, 37, 67, 1000);
    test_embedding(1000, 300, 768, 1000);
    test_embedding(1000, 4096, 1029, 50);

    const int rn[][2] = {{1, 1}, {1, 67}, {37, 67}, {200, 1000}, {1024, 4096}};
    for (int i = 0; i < 5; i++)
        test_rmsnorm(rn[i][0], rn[i][1], 1);
    test_rmsnorm(37, 67, 0);

    const int ce[][2] = {{1, 7}, {37, 129}, {64, 32000}, {300, 50257}};
    for (int i = 0; i < 4; i++)
        test_cross_entropy(ce[i][0], ce[i][1], 1);
    test_cross_entropy(37, 129, 0);
}

int main(void)
{
    char why[256];
    if (!flame_cuda_available(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    printf("device: %s\nerror: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g\n", why, TOL);
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
