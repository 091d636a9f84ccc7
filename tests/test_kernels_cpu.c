/* Tests of the CPU op table (kernels/):
 *  - forward values against naive double-precision computations written here;
 *  - every backward against central finite differences of a scalar loss
 *    L = Σ r_i·out_i with fixed random r, the gradient buffers pre-filled with
 *    random values that are subtracted afterwards (so the ops must ADD);
 *  - matmul at a size where threads matter, bit-identical for any thread count;
 *  - conv1d over documents of several lengths: each document's output does
 *    not move when the others' inputs do (the window starts again);
 *  - AdamW against its formula for two steps, sums of squares, cross-entropy
 *    with an ignored target, embedding backward with a repeated token;
 *  - the LM head's loss against log-sum-exp of logits made here, and the
 *    gradient its row_scale·expd gives x against finite differences;
 *  - LayerNorm with and without its bias, a row's dx summing to 0; GELU's
 *    tanh form against its formula and within 1e-3 of x·Φ(x), and far out. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_kernels.h"
#include "testing.h"

static const flame_ops *ops = &flame_cpu_ops;

/* ---- helpers ---- */

static double weighted_sum(const float *r, const float *out, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * out[i];
    return s;
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* A gradient buffer pre-filled with random values; `pre` keeps a copy. */
static float *prefilled(size_t n, float **pre)
{
    float *g = testing_random(n, -1.0f, 1.0f);
    *pre = testing_copy(g, n);
    return g;
}

/* What the op added: g − pre, in place; frees pre. */
static void remove_prefill(float *g, float *pre, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] -= pre[i];
    free(pre);
}

/* Finite-difference gradient of f with respect to x, compared with `analytic`. */
static void check_grad(const char *what, const float *analytic, float *x, size_t n, float h,
                       double tol, testing_scalar_fn f, void *ctx)
{
    double *numeric = malloc(n * sizeof *numeric);
    testing_numeric_grad(numeric, x, n, h, f, ctx);
    testing_grad_close(what, analytic, numeric, n, tol);
    free(numeric);
}

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* ---- table and memory ---- */

static void test_table_and_memory(void)
{
    CHECK(strcmp(ops->backend, "cpu") == 0, "backend is %s", ops->backend);
    CHECK(ops->alloc && ops->free && ops->zero && ops->copy && ops->upload && ops->download &&
              ops->matmul_forward && ops->matmul_backward && ops->embedding_forward &&
              ops->embedding_backward && ops->rmsnorm_forward && ops->rmsnorm_backward &&
              ops->swiglu_forward && ops->swiglu_backward && ops->scale &&
              ops->cross_entropy && ops->sum_squares && ops->adamw && ops->conv1d_forward &&
              ops->conv1d_backward && ops->conv1d_step && FLAME_OPS_HAS(ops, layernorm_forward) &&
              FLAME_OPS_HAS(ops, layernorm_backward) && FLAME_OPS_HAS(ops, gelu_forward) &&
              FLAME_OPS_HAS(ops, gelu_backward) && FLAME_OPS_HAS(ops, add) &&
              FLAME_OPS_HAS(ops, matmul_gelu_forward) && FLAME_OPS_HAS(ops, matmul_dgelu_backward) &&
              FLAME_OPS_HAS(ops, matmul_forward_f32) && FLAME_OPS_HAS(ops, layernorm_forward_f32) &&
              FLAME_OPS_HAS(ops, layernorm_backward_f32) && FLAME_OPS_HAS(ops, swiglu_forward_strided) &&
              FLAME_OPS_HAS(ops, swiglu_backward_strided),
          "op table has an empty field");

    enum { N = 1000 };
    float *a = ops->alloc(N * sizeof(float));
    float *b = ops->alloc(N * sizeof(float));
    CHECK(a && b, "alloc failed");
    int zero = 1;
    for (int i = 0; i < N; i++)
        zero &= a[i] == 0.0f;
    CHECK(zero, "alloc is not zero-filled");
    float *host = testing_random(N, -1.0f, 1.0f), back[N];
    ops->upload(a, host, N * sizeof(float));
    ops->copy(b, a, N * sizeof(float));
    ops->download(back, b, N * sizeof(float));
    CHECK(memcmp(back, host, sizeof back) == 0, "upload/copy/download changed the data");
    ops->zero(b, N * sizeof(float));
    ops->download(back, b, N * sizeof(float));
    zero = 1;
    for (int i = 0; i < N; i++)
        zero &= back[i] == 0.0f;
    CHECK(zero, "zero left nonzero values");
    void *empty = ops->alloc(0);
    CHECK(empty != NULL, "alloc(0) returned NULL");
    ops->free(empty);
    ops->free(a);
    ops->free(b);
    free(host);
}

/* ---- matmul ---- */

static void matmul_reference(double *out, const float *in, const float *w, const float *bias,
                             int M, int K, int N)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int k = 0; k < K; k++)
                s += (double)in[m * K + k] * w[n * K + k];
            out[m * N + n] = s;
        }
}

typedef struct matmul_case {
    int M, K, N;
    float *in, *w, *bias, *r, *out;
} matmul_case;

static double matmul_loss(void *ctx)
{
    matmul_case *c = ctx;
    ops->matmul_forward(c->out, c->in, c->w, c->bias, NULL, c->M, c->K, c->N);
    return weighted_sum(c->r, c->out, (size_t)c->M * c->N);
}

static void test_matmul_gradients(void)
{
    matmul_case c = {3, 5, 4, NULL, NULL, NULL, NULL, NULL};
    size_t MK = (size_t)c.M * c.K, NK = (size_t)c.N * c.K, MN = (size_t)c.M * c.N;
    c.in = testing_random(MK, -1.0f, 1.0f);
    c.w = testing_random(NK, -1.0f, 1.0f);
    c.bias = testing_random(c.N, -1.0f, 1.0f);
    c.r = testing_random(MN, -1.0f, 1.0f);
    c.out = malloc(MN * sizeof(float));

    double ref[12];
    matmul_loss(&c);
    matmul_reference(ref, c.in, c.w, c.bias, c.M, c.K, c.N);
    CHECK(testing_rel_error_d(c.out, ref, MN) < 1e-6, "matmul forward (bias) off by %g",
          testing_rel_error_d(c.out, ref, MN));
    ops->matmul_forward(c.out, c.in, c.w, NULL, NULL, c.M, c.K, c.N);
    matmul_reference(ref, c.in, c.w, NULL, c.M, c.K, c.N);
    CHECK(testing_rel_error_d(c.out, ref, MN) < 1e-6, "matmul forward (no bias) off by %g",
          testing_rel_error_d(c.out, ref, MN));

    /* the residual is added, also when it is out itself */
    float *res = testing_random(MN, -1.0f, 1.0f), *onto = testing_copy(res, MN);
    matmul_reference(ref, c.in, c.w, c.bias, c.M, c.K, c.N);
    for (size_t i = 0; i < MN; i++)
        ref[i] += res[i];
    ops->matmul_forward(c.out, c.in, c.w, c.bias, res, c.M, c.K, c.N);
    ops->matmul_forward(onto, c.in, c.w, c.bias, onto, c.M, c.K, c.N);
    CHECK(testing_rel_error_d(c.out, ref, MN) < 1e-6 && same_bits(onto, c.out, MN),
          "matmul forward with a residual off by %g", testing_rel_error_d(c.out, ref, MN));

    /* din written over garbage (SET), dweight and dbias added to */
    float *pw, *pb;
    float *din = testing_random(MK, -1e3f, 1e3f), *dw = prefilled(NK, &pw), *db = prefilled(c.N, &pb);
    ops->matmul_backward(din, FLAME_GRAD_SET, dw, db, c.r, c.in, c.w, c.M, c.K, c.N);
    remove_prefill(dw, pw, NK);
    remove_prefill(db, pb, c.N);
    check_grad("matmul din", din, c.in, MK, 1e-2f, 1e-3, matmul_loss, &c);
    check_grad("matmul dweight", dw, c.w, NK, 1e-2f, 1e-3, matmul_loss, &c);
    check_grad("matmul dbias", db, c.bias, c.N, 1e-2f, 1e-3, matmul_loss, &c);

    /* ADD: the same din on top of what was there; NULL gradients are skipped */
    float *pin, *din2 = prefilled(MK, &pin), *dw2 = calloc(NK, sizeof(float));
    ops->matmul_backward(din2, FLAME_GRAD_ADD, NULL, NULL, c.r, c.in, c.w, c.M, c.K, c.N);
    remove_prefill(din2, pin, MK);
    ops->matmul_backward(NULL, FLAME_GRAD_SET, dw2, NULL, c.r, c.in, c.w, c.M, c.K, c.N);
    CHECK(testing_rel_error(din2, din, MK) < 1e-6, "matmul din added differs from din written");
    CHECK(testing_rel_error(dw2, dw, NK) < 1e-6, "matmul dweight alone differs");

    free(res);
    free(onto);
    free(din2);
    free(dw2);
    free(din);
    free(dw);
    free(db);
    free(c.in);
    free(c.w);
    free(c.bias);
    free(c.r);
    free(c.out);
}

/* Forward and backward of one size, on the given thread count. */
typedef struct matmul_run {
    float *out, *din, *dw, *db;
} matmul_run;

static matmul_run matmul_once(const float *in, const float *w, const float *bias,
                              const float *dout, const float *pre, int M, int K, int N,
                              int threads)
{
    matmul_run r;
    r.out = malloc((size_t)M * N * sizeof(float));
    r.din = testing_copy(pre, (size_t)M * K);
    r.dw = testing_copy(pre, (size_t)N * K);
    r.db = testing_copy(pre, (size_t)N);
    set_threads(threads);
    ops->matmul_forward(r.out, in, w, bias, NULL, M, K, N);
    ops->matmul_backward(r.din, FLAME_GRAD_ADD, r.dw, r.db, dout, in, w, M, K, N);
    return r;
}

static void matmul_run_free(matmul_run *r)
{
    free(r->out);
    free(r->din);
    free(r->dw);
    free(r->db);
}

/* Sizes where threads, tiles and blocks all matter (odd sizes leave remainders). */
static void test_matmul_threaded(int M, int K, int N)
{
    size_t MK = (size_t)M * K, NK = (size_t)N * K, MN = (size_t)M * N;
    size_t most = MK > NK ? MK : NK;
    float *in = testing_random(MK, -1.0f, 1.0f);
    float *w = testing_random(NK, -1.0f, 1.0f);
    float *bias = testing_random(N, -1.0f, 1.0f);
    float *dout = testing_random(MN, -1.0f, 1.0f);
    float *pre = testing_random(most, -1.0f, 1.0f);
#ifdef _OPENMP
    int saved_threads = omp_get_max_threads();
#else
    int saved_threads = 1;
#endif

    matmul_run base = matmul_once(in, w, bias, dout, pre, M, K, N, saved_threads);

    /* against double references */
    double *ref = malloc(most * sizeof *ref > MN * sizeof *ref ? most * sizeof *ref
                                                                  : MN * sizeof *ref);
    matmul_reference(ref, in, w, bias, M, K, N);
    CHECK(testing_rel_error_d(base.out, ref, MN) < 1e-6, "matmul %dx%dx%d forward off by %g", M, K, N,
          testing_rel_error_d(base.out, ref, MN));
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            double s = pre[m * K + k];
            for (int n = 0; n < N; n++)
                s += (double)dout[m * N + n] * w[n * K + k];
            ref[m * K + k] = s;
        }
    CHECK(testing_rel_error_d(base.din, ref, MK) < 1e-6, "matmul %dx%dx%d din off by %g", M, K, N,
          testing_rel_error_d(base.din, ref, MK));
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double s = pre[n * K + k];
            for (int m = 0; m < M; m++)
                s += (double)dout[m * N + n] * in[m * K + k];
            ref[n * K + k] = s;
        }
    CHECK(testing_rel_error_d(base.dw, ref, NK) < 1e-6, "matmul %dx%dx%d dweight off by %g", M, K, N,
          testing_rel_error_d(base.dw, ref, NK));
    for (int n = 0; n < N; n++) {
        double s = pre[n];
        for (int m = 0; m < M; m++)
            s += dout[m * N + n];
        ref[n] = s;
    }
    CHECK(testing_rel_error_d(base.db, ref, N) < 1e-6, "matmul %dx%dx%d dbias off by %g", M, K, N,
          testing_rel_error_d(base.db, ref, N));

    /* bit-identical: the same run again, then other thread counts */
    const int threads[] = {saved_threads, 1, 2, 3, 7};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        matmul_run again = matmul_once(in, w, bias, dout, pre, M, K, N, threads[t]);
        CHECK(same_bits(again.out, base.out, MN) && same_bits(again.din, base.din, MK) &&
                  same_bits(again.dw, base.dw, NK) && same_bits(again.db, base.db, N),
              "matmul %dx%dx%d on %d threads is not bit-identical", M, K, N, threads[t]);
        matmul_run_free(&again);
    }
    set_threads(saved_threads);

    matmul_run_free(&base);
    free(ref);
    free(in);
    free(w);
    free(bias);
    free(dout);
    free(pre);
}

/* ---- embedding ---- */

typedef struct embedding_case {
    int n, C;
    const int32_t *tokens;
    float *table, *r, *out;
} embedding_case;

static double embedding_loss(void *ctx)
{
    embedding_case *c = ctx;
    ops->embedding_forward(c->out, c->tokens, c->table, c->n, c->C);
    return weighted_sum(c->r, c->out, (size_t)c->n * c->C);
}

/* dtable = pre + Σ over occurrences, in double */
static void embedding_backward_reference(double *ref, const float *pre, const float *dout,
                                         const int32_t *tokens, int n, int V, int C)
{
    for (int i = 0; i < V * C; i++)
        ref[i] = pre[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < C; j++)
            ref[tokens[i] * C + j] += dout[i * C + j];
}

static void test_embedding(void)
{
    enum { V = 11, C = 4, n = 5 };
    const int32_t tokens[n] = {3, 7, 3, 0, 10}; /* token 3 twice: its gradients add */
    embedding_case c = {n, C, tokens, testing_random(V * C, -1.0f, 1.0f),
                        testing_random(n * C, -1.0f, 1.0f), malloc(n * C * sizeof(float))};
    embedding_loss(&c);
    int exact = 1;
    for (int i = 0; i < n; i++)
        exact &= memcmp(c.out + i * C, c.table + tokens[i] * C, C * sizeof(float)) == 0;
    CHECK(exact, "embedding forward is not the table rows");

    float *pre, *dtable = prefilled(V * C, &pre);
    double ref[V * C];
    embedding_backward_reference(ref, pre, c.r, tokens, n, V, C);
    ops->embedding_backward(dtable, c.r, tokens, n, C);
    CHECK(testing_rel_error_d(dtable, ref, V * C) < 1e-6, "embedding backward off by %g",
          testing_rel_error_d(dtable, ref, V * C));
    remove_prefill(dtable, pre, V * C);
    float twice = c.r[0 * C + 1] + c.r[2 * C + 1];
    CHECK(fabsf(dtable[3 * C + 1] - twice) < 1e-6f, "repeated token: %g, expected %g",
          dtable[3 * C + 1], twice);
    CHECK(dtable[5 * C] == 0.0f, "an unused token got a gradient");
    check_grad("embedding dtable", dtable, c.table, V * C, 1e-2f, 1e-3, embedding_loss, &c);
    free(dtable);
    free(c.table);
    free(c.r);
    free(c.out);

    /* enough work for threads and several column chunks */
    enum { V2 = 50, C2 = 200, n2 = 300 };
    int32_t tok2[n2];
    for (int i = 0; i < n2; i++)
        tok2[i] = (int32_t)(testing_uniform() * V2);
    float *dout = testing_random(n2 * C2, -1.0f, 1.0f);
    float *pre2, *dt2 = prefilled(V2 * C2, &pre2);
    double *ref2 = malloc(V2 * C2 * sizeof *ref2);
    embedding_backward_reference(ref2, pre2, dout, tok2, n2, V2, C2);
    ops->embedding_backward(dt2, dout, tok2, n2, C2);
    CHECK(testing_rel_error_d(dt2, ref2, V2 * C2) < 1e-6, "embedding backward (large) off by %g",
          testing_rel_error_d(dt2, ref2, V2 * C2));
    free(pre2);
    free(dt2);
    free(ref2);
    free(dout);
}

/* ---- rmsnorm ---- */

typedef struct rmsnorm_case {
    int n, C;
    float eps;
    float *x, *w, *r, *out, *rstd;
} rmsnorm_case;

static double rmsnorm_loss(void *ctx)
{
    rmsnorm_case *c = ctx;
    ops->rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->n, c->C, c->eps);
    return weighted_sum(c->r, c->out, (size_t)c->n * c->C);
}

static void test_rmsnorm(void)
{
    enum { n = 3, C = 7 };
    rmsnorm_case c = {n, C, 1e-5f, testing_random(n * C, -2.0f, 2.0f),
                      testing_random(C, -1.5f, 1.5f), testing_random(n * C, -1.0f, 1.0f),
                      malloc(n * C * sizeof(float)), malloc(n * sizeof(float))};
    rmsnorm_loss(&c);
    double ref[n * C], ref_rstd[n];
    for (int i = 0; i < n; i++) {
        double ms = 0;
        for (int j = 0; j < C; j++)
            ms += (double)c.x[i * C + j] * c.x[i * C + j] / C;
        ref_rstd[i] = 1.0 / sqrt(ms + c.eps);
        for (int j = 0; j < C; j++)
            ref[i * C + j] = c.x[i * C + j] * ref_rstd[i] * c.w[j];
    }
    CHECK(testing_rel_error_d(c.out, ref, n * C) < 1e-6, "rmsnorm forward off by %g",
          testing_rel_error_d(c.out, ref, n * C));
    CHECK(testing_rel_error_d(c.rstd, ref_rstd, n) < 1e-6, "rmsnorm rstd off by %g",
          testing_rel_error_d(c.rstd, ref_rstd, n));

    /* dx added to (ADD), dweight added to */
    float *px, *pw, *dx = prefilled(n * C, &px), *dw = prefilled(C, &pw);
    ops->rmsnorm_backward(dx, FLAME_GRAD_ADD, dw, c.r, c.x, c.w, c.rstd, n, C);
    remove_prefill(dx, px, n * C);
    remove_prefill(dw, pw, C);
    check_grad("rmsnorm dx", dx, c.x, n * C, 5e-3f, 2e-3, rmsnorm_loss, &c);
    check_grad("rmsnorm dweight", dw, c.w, C, 5e-3f, 2e-3, rmsnorm_loss, &c);

    /* dx written over garbage (SET); one NULL gradient leaves the other as it was */
    float *dx2 = testing_random(n * C, -1e3f, 1e3f), dw2[C] = {0};
    rmsnorm_loss(&c); /* the finite differences left rstd of a perturbed input */
    ops->rmsnorm_backward(dx2, FLAME_GRAD_SET, NULL, c.r, c.x, c.w, c.rstd, n, C);
    ops->rmsnorm_backward(NULL, FLAME_GRAD_SET, dw2, c.r, c.x, c.w, c.rstd, n, C);
    CHECK(testing_rel_error(dx2, dx, n * C) < 1e-5 && testing_rel_error(dw2, dw, C) < 1e-5,
          "rmsnorm dx written, or with one NULL gradient, differs");
    free(dx2);
    free(dx);
    free(dw);
    free(c.x);
    free(c.w);
    free(c.r);
    free(c.out);
    free(c.rstd);
}

/* ---- layernorm ---- */

typedef struct layernorm_case {
    int n, C;
    float eps;
    float *x, *w, *b, *r, *out, *mean, *rstd;
} layernorm_case;

static double layernorm_loss(void *ctx)
{
    layernorm_case *c = ctx;
    ops->layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->n, c->C, c->eps);
    return weighted_sum(c->r, c->out, (size_t)c->n * c->C);
}

static void test_layernorm(void)
{
    enum { n = 3, C = 7 };
    /* rows off zero mean, so that the mean's part of the gradient is exercised */
    layernorm_case c = {n, C, 1e-5f, testing_random(n * C, -1.0f, 3.0f), testing_random(C, -1.5f, 1.5f),
                        testing_random(C, -1.0f, 1.0f), testing_random(n * C, -1.0f, 1.0f),
                        malloc(n * C * sizeof(float)), malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    layernorm_loss(&c);
    double ref[n * C], ref_mean[n], ref_rstd[n];
    for (int i = 0; i < n; i++) {
        double mu = 0, var = 0;
        for (int j = 0; j < C; j++)
            mu += (double)c.x[i * C + j] / C;
        for (int j = 0; j < C; j++)
            var += (c.x[i * C + j] - mu) * (c.x[i * C + j] - mu) / C;
        ref_mean[i] = mu, ref_rstd[i] = 1.0 / sqrt(var + c.eps);
        for (int j = 0; j < C; j++)
            ref[i * C + j] = (c.x[i * C + j] - mu) * ref_rstd[i] * c.w[j] + c.b[j];
    }
    CHECK(testing_rel_error_d(c.out, ref, n * C) < 1e-6, "layernorm forward off by %g",
          testing_rel_error_d(c.out, ref, n * C));
    CHECK(testing_rel_error_d(c.mean, ref_mean, n) < 1e-6 && testing_rel_error_d(c.rstd, ref_rstd, n) < 1e-6,
          "layernorm mean or rstd off");

    /* dx added to (ADD), dweight and dbias added to */
    float *px, *pw, *pb, *dx = prefilled(n * C, &px), *dw = prefilled(C, &pw), *db = prefilled(C, &pb);
    ops->layernorm_backward(dx, FLAME_GRAD_ADD, dw, db, c.r, c.x, c.w, c.mean, c.rstd, n, C);
    remove_prefill(dx, px, n * C);
    remove_prefill(dw, pw, C);
    remove_prefill(db, pb, C);
    check_grad("layernorm dx", dx, c.x, n * C, 5e-3f, 2e-3, layernorm_loss, &c);
    check_grad("layernorm dweight", dw, c.w, C, 5e-3f, 2e-3, layernorm_loss, &c);
    check_grad("layernorm dbias", db, c.b, C, 5e-3f, 2e-3, layernorm_loss, &c);
    /* a row's dx sums to 0: shifting a row leaves its norm as it was */
    for (int i = 0; i < n; i++) {
        double sum = 0, size = 0;
        for (int j = 0; j < C; j++)
            sum += dx[i * C + j], size += fabs(dx[i * C + j]);
        CHECK(fabs(sum) < 1e-5 * size, "layernorm dx of row %d sums to %g", i, sum);
    }

    /* dx written over garbage (SET); NULL gradients leave the others as they were */
    float *dx2 = testing_random(n * C, -1e3f, 1e3f), dw2[C] = {0}, db2[C] = {0};
    layernorm_loss(&c); /* the finite differences left the statistics of a perturbed input */
    ops->layernorm_backward(dx2, FLAME_GRAD_SET, NULL, NULL, c.r, c.x, c.w, c.mean, c.rstd, n, C);
    ops->layernorm_backward(NULL, FLAME_GRAD_SET, dw2, NULL, c.r, c.x, c.w, c.mean, c.rstd, n, C);
    ops->layernorm_backward(NULL, FLAME_GRAD_SET, NULL, db2, c.r, c.x, c.w, c.mean, c.rstd, n, C);
    CHECK(testing_rel_error(dx2, dx, n * C) < 1e-5 && testing_rel_error(dw2, dw, C) < 1e-5 &&
              testing_rel_error(db2, db, C) < 1e-5,
          "layernorm dx written, or with NULL gradients, differs");

    /* without a bias: the same output less the bias */
    float *nobias = malloc(n * C * sizeof(float));
    ops->layernorm_forward(nobias, c.mean, c.rstd, c.x, c.w, NULL, n, C, c.eps);
    double worst = 0;
    for (int i = 0; i < n * C; i++)
        worst = fmax(worst, fabs(nobias[i] + c.b[i % C] - c.out[i]));
    CHECK(worst < 1e-6, "layernorm without a bias differs by %g", worst);
    free(nobias);
    free(dx2);
    free(dx);
    free(dw);
    free(db);
    free(c.x);
    free(c.w);
    free(c.b);
    free(c.r);
    free(c.out);
    free(c.mean);
    free(c.rstd);
}

/* ---- gelu ---- */

typedef struct gelu_case {
    size_t n;
    float *x, *r, *out;
} gelu_case;

static double gelu_loss(void *ctx)
{
    gelu_case *c = ctx;
    ops->gelu_forward(c->out, c->x, c->n);
    return weighted_sum(c->r, c->out, c->n);
}

static void test_gelu(void)
{
    enum { n = 17 };
    gelu_case c = {n, testing_random(n, -5.0f, 5.0f), testing_random(n, -1.0f, 1.0f), malloc(n * sizeof(float))};
    gelu_loss(&c);
    double ref[n];
    for (int i = 0; i < n; i++) {
        double v = c.x[i];
        ref[i] = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    }
    CHECK(testing_rel_error_d(c.out, ref, n) < 1e-6, "gelu forward off by %g", testing_rel_error_d(c.out, ref, n));
    /* the tanh form stays within 1e-3 of the exact x·Φ(x) */
    double worst = 0;
    for (int i = 0; i < n; i++)
        worst = fmax(worst, fabs(c.out[i] - 0.5 * c.x[i] * (1.0 + erf(c.x[i] / sqrt(2.0)))));
    CHECK(worst < 1e-3, "gelu's tanh form is %g from x·Φ(x)", worst);

    /* dx written over garbage, and in place over dout */
    float *dx = testing_random(n, -1e3f, 1e3f), *over = testing_copy(c.r, n);
    ops->gelu_backward(dx, c.r, c.x, n);
    ops->gelu_backward(over, over, c.x, n);
    CHECK(same_bits(over, dx, n), "gelu backward in place differs");
    check_grad("gelu dx", dx, c.x, n, 5e-3f, 2e-3, gelu_loss, &c);

    /* far out: gelu(x) → x for large x, → 0 for very negative x, slopes 1 and 0 */
    float x[4] = {20.0f, -20.0f, 1000.0f, -1000.0f}, o[4], one[4] = {1, 1, 1, 1}, d[4];
    ops->gelu_forward(o, x, 4);
    ops->gelu_backward(d, one, x, 4);
    CHECK(o[0] == 20.0f && o[2] == 1000.0f && fabsf(o[1]) < 1e-30f && fabsf(o[3]) < 1e-30f,
          "gelu far forward: %g %g %g %g", o[0], o[1], o[2], o[3]);
    CHECK(d[0] == 1.0f && d[2] == 1.0f && fabsf(d[1]) < 1e-30f && fabsf(d[3]) < 1e-30f,
          "gelu far backward: %g %g %g %g", d[0], d[1], d[2], d[3]);
    free(dx);
    free(over);
    free(c.x);
    free(c.r);
    free(c.out);
}

/* ---- conv1d ---- */

/* documents of lengths 1, 2, 3, 5, 9: shorter and longer than the window */
static const int32_t conv_cu[] = {0, 1, 3, 6, 11, 20};
enum { CONV_SEQS = 5, CONV_n = 20, CONV_C = 3 };

typedef struct conv1d_case {
    int K, silu;
    float *x, *w, *bias, *r, *out;
} conv1d_case;

static double conv1d_loss(void *ctx)
{
    conv1d_case *c = ctx;
    ops->conv1d_forward(c->out, c->x, c->w, c->bias, conv_cu, CONV_SEQS, CONV_n, CONV_C, c->K,
                        c->silu);
    return weighted_sum(c->r, c->out, CONV_n * CONV_C);
}

static void conv1d_reference(double *out, const conv1d_case *c)
{
    for (int s = 0; s < CONV_SEQS; s++)
        for (int t = conv_cu[s]; t < conv_cu[s + 1]; t++)
            for (int ch = 0; ch < CONV_C; ch++) {
                double p = c->bias ? c->bias[ch] : 0;
                for (int j = 0; j < c->K; j++) {
                    int src = t - (c->K - 1) + j;
                    if (src >= conv_cu[s])
                        p += (double)c->w[ch * c->K + j] * c->x[src * CONV_C + ch];
                }
                out[t * CONV_C + ch] = c->silu ? p / (1 + exp(-p)) : p;
            }
}

/* check_grad, with the error printed */
static void check_conv1d_grad(const char *what, const float *analytic, float *x, size_t n,
                              conv1d_case *c)
{
    double *numeric = malloc(n * sizeof *numeric);
    testing_numeric_grad(numeric, x, n, 5e-3f, conv1d_loss, c);
    printf("conv1d K=%d silu=%d bias=%d %-8s FD relative error %.2e\n", c->K, c->silu,
           c->bias != NULL, what, testing_rel_error_d(analytic, numeric, n));
    testing_grad_close(what, analytic, numeric, n, 2e-3);
    free(numeric);
}

/* Each document's output stays bit for bit when every other document's x moves. */
static void check_conv1d_documents(conv1d_case *c, const float *out)
{
    enum { nx = CONV_n * CONV_C };
    float *x = c->x, *moved = malloc(nx * sizeof *moved);
    c->x = moved;
    for (int s = 0; s < CONV_SEQS; s++) {
        for (int i = 0; i < nx; i++) {
            int inside = i >= conv_cu[s] * CONV_C && i < conv_cu[s + 1] * CONV_C;
            moved[i] = inside ? x[i] : x[i] + 1.0f;
        }
        conv1d_loss(c);
        size_t at = (size_t)conv_cu[s] * CONV_C, len = (size_t)(conv_cu[s + 1] - conv_cu[s]) * CONV_C;
        CHECK(same_bits(c->out + at, out + at, len),
              "conv1d K=%d: document %d's output depends on another document", c->K, s);
    }
    c->x = x;
    free(moved);
}

static void test_conv1d(int K, int silu, int with_bias)
{
    enum { nx = CONV_n * CONV_C };
    conv1d_case c = {K, silu, testing_random(nx, -2.0f, 2.0f), testing_random(CONV_C * K, -1.0f, 1.0f),
                     with_bias ? testing_random(CONV_C, -1.0f, 1.0f) : NULL,
                     testing_random(nx, -1.0f, 1.0f), malloc(nx * sizeof(float))};
    double ref[nx];
    conv1d_loss(&c);
    conv1d_reference(ref, &c);
    CHECK(testing_rel_error_d(c.out, ref, nx) < 1e-6, "conv1d K=%d silu=%d forward off by %g", K,
          silu, testing_rel_error_d(c.out, ref, nx));
    float *out = testing_copy(c.out, nx);
    check_conv1d_documents(&c, out);

    /* dx written over garbage; dweight and dbias added to */
    float *pw, *pb = NULL, *dx = testing_random(nx, -1e3f, 1e3f);
    float *dw = prefilled(CONV_C * K, &pw), *db = with_bias ? prefilled(CONV_C, &pb) : NULL;
    ops->conv1d_backward(dx, dw, db, c.r, c.x, c.w, c.bias, conv_cu, CONV_SEQS, CONV_n, CONV_C, K,
                         silu);
    remove_prefill(dw, pw, CONV_C * K);
    check_conv1d_grad("dx", dx, c.x, nx, &c);
    check_conv1d_grad("dweight", dw, c.w, CONV_C * K, &c);
    if (with_bias) {
        remove_prefill(db, pb, CONV_C);
        check_conv1d_grad("dbias", db, c.bias, CONV_C, &c);
    }

    /* without dx, the parameter gradients are the same */
    float dw2[CONV_C * FLAME_CONV1D_MAX_K] = {0}, db2[CONV_C] = {0};
    ops->conv1d_backward(NULL, dw2, with_bias ? db2 : NULL, c.r, c.x, c.w, c.bias, conv_cu,
                         CONV_SEQS, CONV_n, CONV_C, K, silu);
    CHECK(testing_rel_error(dw2, dw, CONV_C * K) < 1e-6 &&
              (!with_bias || testing_rel_error(db2, db, CONV_C) < 1e-6),
          "conv1d parameter gradients differ without dx");
    free(out);
    free(dx);
    free(dw);
    free(db);
    free(c.x);
    free(c.w);
    free(c.bias);
    free(c.r);
    free(c.out);
}

/* ---- swiglu ---- */

typedef struct swiglu_case {
    size_t n;
    float *gate, *up, *r, *out;
} swiglu_case;

static double swiglu_loss(void *ctx)
{
    swiglu_case *c = ctx;
    ops->swiglu_forward(c->out, c->gate, c->up, c->n);
    return weighted_sum(c->r, c->out, c->n);
}

static void test_swiglu(void)
{
    enum { n = 13 };
    swiglu_case c = {n, testing_random(n, -4.0f, 4.0f), testing_random(n, -2.0f, 2.0f),
                     testing_random(n, -1.0f, 1.0f), malloc(n * sizeof(float))};
    swiglu_loss(&c);
    double ref[n];
    for (int i = 0; i < n; i++)
        ref[i] = c.gate[i] / (1.0 + exp(-(double)c.gate[i])) * c.up[i];
    CHECK(testing_rel_error_d(c.out, ref, n) < 1e-6, "swiglu forward off by %g",
          testing_rel_error_d(c.out, ref, n));

    /* gradients written over garbage; the forward's output made again, also over dout */
    float *dg = testing_random(n, -1e3f, 1e3f), *du = testing_random(n, -1e3f, 1e3f);
    float *again = testing_random(n, -1e3f, 1e3f), *over = testing_copy(c.r, n);
    ops->swiglu_backward(dg, du, again, c.r, c.gate, c.up, n);
    float dg2[n], du2[n];
    ops->swiglu_backward(dg2, du2, over, over, c.gate, c.up, n);
    swiglu_loss(&c);
    CHECK(same_bits(again, c.out, n) && same_bits(over, c.out, n) && same_bits(dg2, dg, n) &&
              same_bits(du2, du, n),
          "swiglu backward's output made again differs from the forward's");
    check_grad("swiglu dgate", dg, c.gate, n, 5e-3f, 2e-3, swiglu_loss, &c);
    check_grad("swiglu dup", du, c.up, n, 5e-3f, 2e-3, swiglu_loss, &c);
    free(again);
    free(over);

    /* saturated gates: no overflow, silu(g) → g for large g, → 0 for very negative g */
    float g[4] = {100.0f, -100.0f, 1000.0f, -1000.0f}, u[4] = {1, 1, 1, 1}, o[4];
    float one[4] = {1, 1, 1, 1}, dgs[4] = {0}, dus[4] = {0};
    ops->swiglu_forward(o, g, u, 4);
    ops->swiglu_backward(dgs, dus, NULL, one, g, u, 4);
    CHECK(o[0] == 100.0f && o[2] == 1000.0f && fabsf(o[1]) < 1e-30f && fabsf(o[3]) < 1e-30f,
          "swiglu saturated forward: %g %g %g %g", o[0], o[1], o[2], o[3]);
    CHECK(dgs[0] == 1.0f && dgs[2] == 1.0f && fabsf(dgs[1]) < 1e-30f && fabsf(dgs[3]) < 1e-30f,
          "swiglu saturated backward: %g %g %g %g", dgs[0], dgs[1], dgs[2], dgs[3]);
    free(dg);
    free(du);
    free(c.gate);
    free(c.up);
    free(c.r);
    free(c.out);
}

/* The strided ops over the columns of one [rows, stride] product equal the
 * flat ops (checked above) over packed copies, bit for bit, and leave the
 * columns around gate's and up's alone. */
static void test_swiglu_strided(size_t gate_at, size_t up_at)
{
    enum { rows = 5, I = 7, stride = 17 };
    float *gate = testing_random(rows * I, -4.0f, 4.0f), *up = testing_random(rows * I, -2.0f, 2.0f);
    float *dout = testing_random(rows * I, -1.0f, 1.0f), *both = testing_random(rows * stride, -9.0f, 9.0f);
    testing_put_columns(both, gate, rows, stride, gate_at, I);
    testing_put_columns(both, up, rows, stride, up_at, I);
    float out[rows * I], want[rows * I], dg[rows * I], du[rows * I];
    ops->swiglu_forward(want, gate, up, rows * I);
    ops->swiglu_forward_strided(out, both + gate_at, both + up_at, rows, I, stride);
    CHECK(same_bits(out, want, rows * I), "swiglu_forward_strided (gate at %zu, up at %zu) differs from the flat op",
          gate_at, up_at);

    ops->swiglu_backward(dg, du, want, dout, gate, up, rows * I);
    float *grads = testing_random(rows * stride, -9.0f, 9.0f), *before = testing_copy(grads, rows * stride);
    float *over = testing_copy(dout, rows * I);
    ops->swiglu_backward_strided(grads + gate_at, grads + up_at, over, over, both + gate_at, both + up_at, rows, I,
                                 stride);
    CHECK(!testing_columns_differ(grads, rows, stride, gate_at, I, dg) &&
              !testing_columns_differ(grads, rows, stride, up_at, I, du) && same_bits(over, want, rows * I),
          "swiglu_backward_strided (gate at %zu, up at %zu) differs from the flat op", gate_at, up_at);
    /* put the written columns back: then nothing else may differ */
    float *gate_before = malloc(rows * I * sizeof(float)), *up_before = malloc(rows * I * sizeof(float));
    for (size_t i = 0; i < rows * I; i++) {
        gate_before[i] = before[i / I * stride + gate_at + i % I];
        up_before[i] = before[i / I * stride + up_at + i % I];
    }
    testing_put_columns(grads, gate_before, rows, stride, gate_at, I);
    testing_put_columns(grads, up_before, rows, stride, up_at, I);
    CHECK(same_bits(grads, before, rows * stride), "swiglu_backward_strided wrote outside gate's and up's columns");
    free(gate_before);
    free(up_before);
    free(gate);
    free(up);
    free(dout);
    free(both);
    free(grads);
    free(before);
    free(over);
}

/* ---- scale ---- */

static void test_scale(void)
{
    enum { n = 100003 }; /* above the threading threshold, odd */
    float *a = testing_random(n, -1.0f, 1.0f), *a2 = testing_copy(a, n);
    ops->scale(a2, -0.375f, n);
    int ok = 1;
    for (int i = 0; i < n; i++)
        ok &= a2[i] == a[i] * -0.375f;
    CHECK(ok, "scale is wrong");
    free(a);
    free(a2);
}

/* ---- the MLP's products with the GELU ---- */

enum { MG_M = 3, MG_K = 5, MG_N = 4 };

typedef struct mlp_gelu_case {
    float *pre, *w, *dout, *tmp, *out; /* pre [M,K], w [N,K], dout [M,N] */
} mlp_gelu_case;

/* Σ dout ⊙ (gelu(pre)·wᵀ): matmul_dgelu_backward's dpre is its gradient in pre */
static double mlp_gelu_loss(void *ctx)
{
    mlp_gelu_case *c = ctx;
    ops->gelu_forward(c->tmp, c->pre, MG_M * MG_K);
    ops->matmul_forward(c->out, c->tmp, c->w, NULL, NULL, MG_M, MG_K, MG_N);
    return weighted_sum(c->dout, c->out, MG_M * MG_N);
}

static void test_matmul_gelu(void)
{
    /* forward: pre = in·wᵀ + b in double, out its tanh-form GELU */
    float *in = testing_random(MG_M * MG_K, -1, 1), *w = testing_random(MG_N * MG_K, -1, 1);
    float *b = testing_random(MG_N, -1, 1), pre[MG_M * MG_N], out[MG_M * MG_N];
    ops->matmul_gelu_forward(out, pre, in, w, b, MG_M, MG_K, MG_N);
    double worst = 0;
    for (int i = 0; i < MG_M; i++)
        for (int j = 0; j < MG_N; j++) {
            double p = b[j];
            for (int k = 0; k < MG_K; k++)
                p += (double)in[i * MG_K + k] * w[j * MG_K + k];
            double g = 0.5 * p * (1.0 + tanh(sqrt(2.0 / M_PI) * (p + 0.044715 * p * p * p)));
            worst = fmax(worst, fmax(fabs(pre[i * MG_N + j] - p), fabs(out[i * MG_N + j] - g)));
        }
    CHECK(worst < 1e-6, "matmul_gelu_forward off by %g", worst);

    /* backward: dpre against finite differences of mlp_gelu_loss */
    mlp_gelu_case c = {testing_random(MG_M * MG_K, -3, 3), w, testing_random(MG_M * MG_N, -1, 1),
                       malloc(MG_M * MG_K * sizeof(float)), malloc(MG_M * MG_N * sizeof(float))};
    float *dpre = testing_random(MG_M * MG_K, -1e3f, 1e3f); /* written over */
    ops->matmul_dgelu_backward(dpre, c.dout, w, c.pre, MG_M, MG_K, MG_N);
    check_grad("matmul_dgelu_backward dpre", dpre, c.pre, MG_M * MG_K, 1e-3f, 2e-3, mlp_gelu_loss, &c);
    free(in); free(w); free(b); free(c.pre); free(c.dout); free(c.tmp); free(c.out); free(dpre);
}

/* ---- add ---- */

static void test_add(void)
{
    enum { n = 100003 }; /* above the threading threshold, odd */
    float *a = testing_random(n, -1.0f, 1.0f), *b = testing_random(n, -1.0f, 1.0f);
    float *out = testing_random(n, -9.0f, 9.0f), *in_place = testing_copy(a, n);
    ops->add(out, a, b, n);
    ops->add(in_place, in_place, b, n);
    int ok = 1;
    for (int i = 0; i < n; i++)
        ok &= out[i] == a[i] + b[i] && in_place[i] == out[i];
    CHECK(ok, "add is wrong");
    free(a); free(b); free(out); free(in_place);
}

/* ---- cross-entropy ---- */

enum { CE_n = 4, CE_V = 11 };
static const int32_t ce_targets[CE_n] = {2, -1, 10, 0}; /* row 1 is ignored */

typedef struct ce_case {
    float *logits, losses[CE_n];
    float scale;
} ce_case;

static double ce_loss(void *ctx)
{
    ce_case *c = ctx;
    return c->scale *
           ops->cross_entropy(c->losses, NULL, c->logits, ce_targets, CE_n, CE_V, c->scale);
}

/* losses in double from log-sum-exp, and their sum */
static double ce_reference(double *losses, const float *logits, const int32_t *targets,
                           int n, int V)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        losses[i] = 0;
        if (targets[i] < 0)
            continue;
        double max = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++)
            max = fmax(max, logits[i * V + j]);
        for (int j = 0; j < V; j++)
            sum += exp(logits[i * V + j] - max);
        losses[i] = max + log(sum) - logits[i * V + targets[i]];
        total += losses[i];
    }
    return total;
}

static void test_cross_entropy(void)
{
    ce_case c = {testing_random(CE_n * CE_V, -3.0f, 3.0f), {0}, 1.0f / 3.0f};
    double ref[CE_n];
    double ref_total = ce_reference(ref, c.logits, ce_targets, CE_n, CE_V);
    float *dlogits = testing_random(CE_n * CE_V, 5.0f, 6.0f); /* garbage to be overwritten */
    double total = ops->cross_entropy(c.losses, dlogits, c.logits, ce_targets, CE_n, CE_V, c.scale);
    CHECK(fabs(total - ref_total) < 1e-6 * ref_total, "cross-entropy total %.9g, expected %.9g",
          total, ref_total);
    CHECK(testing_rel_error_d(c.losses, ref, CE_n) < 1e-6, "cross-entropy losses off by %g",
          testing_rel_error_d(c.losses, ref, CE_n));
    CHECK(c.losses[1] == 0.0f, "ignored row has loss %g", c.losses[1]);
    int zero = 1;
    for (int j = 0; j < CE_V; j++)
        zero &= dlogits[1 * CE_V + j] == 0.0f;
    CHECK(zero, "ignored row has a nonzero gradient");
    check_grad("cross-entropy dlogits", dlogits, c.logits, CE_n * CE_V, 1e-2f, 1e-3, ce_loss, &c);
    CHECK(ops->cross_entropy(NULL, NULL, c.logits, ce_targets, CE_n, CE_V, 1.0f) == total,
          "cross-entropy without outputs returns another total");

    /* stable for huge logits: shift every logit by 1000 (exp would overflow) */
    for (int i = 0; i < CE_n * CE_V; i++)
        c.logits[i] += 1000.0f;
    ref_total = ce_reference(ref, c.logits, ce_targets, CE_n, CE_V);
    total = ops->cross_entropy(c.losses, dlogits, c.logits, ce_targets, CE_n, CE_V, 1.0f);
    CHECK(isfinite(total) && fabs(total - ref_total) < 1e-6 * ref_total,
          "cross-entropy of shifted logits %.9g, expected %.9g", total, ref_total);
    double row_sum = 0;
    for (int j = 0; j < CE_V; j++)
        row_sum += dlogits[j];
    CHECK(fabs(row_sum) < 1e-6, "softmax − onehot of a row sums to %g", row_sum);
    free(c.logits);
    free(dlogits);

    /* many rows: chunked and threaded sum, same result for any thread count */
    enum { n = 1000, V = 257 };
    float *logits = testing_random((size_t)n * V, -4.0f, 4.0f);
    int32_t *targets = malloc(n * sizeof *targets);
    for (int i = 0; i < n; i++)
        targets[i] = i % 7 == 0 ? -1 : (int32_t)(testing_uniform() * V);
    double *big_ref = malloc(n * sizeof *big_ref);
    ref_total = ce_reference(big_ref, logits, targets, n, V);
    total = ops->cross_entropy(NULL, NULL, logits, targets, n, V, 1.0f);
    CHECK(fabs(total - ref_total) < 1e-9 * ref_total,
          "cross-entropy of %d rows %.12g, expected %.12g", n, total, ref_total);
#ifdef _OPENMP
    int saved_threads = omp_get_max_threads();
#else
    int saved_threads = 1;
#endif
    set_threads(3);
    CHECK(ops->cross_entropy(NULL, NULL, logits, targets, n, V, 1.0f) == total,
          "cross-entropy total depends on the thread count");
    set_threads(1);
    CHECK(ops->cross_entropy(NULL, NULL, logits, targets, n, V, 1.0f) == total,
          "cross-entropy total depends on the thread count");
    set_threads(saved_threads);
    free(logits);
    free(targets);
    free(big_ref);
}

/* ---- the LM head's loss (lm_head_loss) and scale_rows ---- */

enum { LH_n = 6, LH_D = 5, LH_V = 13 };
static const int32_t lh_targets[LH_n] = {3, -1, 12, 0, 7, 7}; /* row 1 is ignored */

typedef struct lh_case {
    float *x, *head, expd[LH_n * LH_V], row_scale[LH_n];
    float scale;
} lh_case;

static double lh_loss(void *ctx)
{
    lh_case *c = ctx;
    return c->scale * ops->lm_head_loss(c->expd, c->row_scale, c->x, c->head, lh_targets, LH_n, LH_D, LH_V, c->scale);
}

/* the loss against log-sum-exp over logits made here in double; x's gradient
 * from row_scale·expd (the logits' gradient, by the op's contract) times the
 * head, against finite differences of the loss in x */
static void test_lm_head_loss(void)
{
    lh_case c = {testing_random(LH_n * LH_D, -2.0f, 2.0f), testing_random(LH_V * LH_D, -1.0f, 1.0f), {0}, {0},
                 0.25f};
    float logits[LH_n * LH_V];
    for (int i = 0; i < LH_n; i++)
        for (int j = 0; j < LH_V; j++) {
            double dot = 0;
            for (int k = 0; k < LH_D; k++)
                dot += (double)c.x[i * LH_D + k] * c.head[j * LH_D + k];
            logits[i * LH_V + j] = (float)dot;
        }
    double ref[LH_n];
    double ref_total = ce_reference(ref, logits, lh_targets, LH_n, LH_V);
    double total = ops->lm_head_loss(c.expd, c.row_scale, c.x, c.head, lh_targets, LH_n, LH_D, LH_V, c.scale);
    CHECK(fabs(total - ref_total) < 1e-5 * ref_total, "lm_head_loss %.9g, expected %.9g", total, ref_total);
    float dx[LH_n * LH_D];
    for (int i = 0; i < LH_n; i++)
        for (int k = 0; k < LH_D; k++) {
            double g = 0;
            for (int j = 0; j < LH_V; j++)
                g += (double)c.row_scale[i] * c.expd[i * LH_V + j] * c.head[j * LH_D + k];
            dx[i * LH_D + k] = (float)g;
        }
    check_grad("lm_head_loss: x through row_scale·expd", dx, c.x, LH_n * LH_D, 1e-2f, 1e-3, lh_loss, &c);

    static const float row_factors[LH_n] = {0.5f, 0.0f, -3.0f, 1.0f, 2.5f, 0.125f};
    float scaled[LH_n * LH_D];
    ops->scale_rows(scaled, c.x, row_factors, LH_n, LH_D);
    int ok = 1;
    for (int i = 0; i < LH_n * LH_D; i++)
        ok &= scaled[i] == row_factors[i / LH_D] * c.x[i];
    ops->scale_rows(c.x, c.x, row_factors, LH_n, LH_D);
    CHECK(ok && memcmp(scaled, c.x, sizeof scaled) == 0, "scale_rows is wrong (or differs in place)");
    free(c.x);
    free(c.head);
}

/* ---- sum of squares ---- */

static void test_sum_squares(void)
{
    const size_t sizes[] = {0, 1, 1000, 300001};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *x = testing_random(n ? n : 1, -2.0f, 2.0f);
        double ref = 0;
        for (size_t i = 0; i < n; i++)
            ref += (double)x[i] * x[i];
        double got = ops->sum_squares(x, n);
        CHECK(fabs(got - ref) <= 1e-12 * ref, "sum_squares(%zu) = %.17g, expected %.17g", n, got,
              ref);
        free(x);
    }
}

/* ---- AdamW ---- */

/* two steps against the formulas in double; the decay on the first 5 of 9
 * values; the second step's gradient scaled (clipped) by 0.37 */
static void test_adamw(void)
{
    enum { n = 9, n_decayed = 5 };
    const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    float *param = testing_random(n, -1.0f, 1.0f), m[n] = {0}, v[n] = {0};
    double p_ref[n], m_ref[n] = {0}, v_ref[n] = {0};
    for (int i = 0; i < n; i++)
        p_ref[i] = param[i];
    for (int t = 1; t <= 2; t++) {
        float *grad = testing_random(n, -1.0f, 1.0f), scale = t == 2 ? 0.37f : 1.0f;
        float before[n];
        memcpy(before, param, sizeof before);
        double delta_ref[n];
        for (int i = 0; i < n; i++) {
            double g = (double)scale * grad[i];
            m_ref[i] = beta1 * m_ref[i] + (1.0 - beta1) * g;
            v_ref[i] = beta2 * v_ref[i] + (1.0 - beta2) * g * g;
            double mhat = m_ref[i] / (1.0 - pow(beta1, t));
            double vhat = v_ref[i] / (1.0 - pow(beta2, t));
            delta_ref[i] = -lr * (mhat / (sqrt(vhat) + eps) + (i < n_decayed ? wd : 0.0) * p_ref[i]);
            p_ref[i] += delta_ref[i];
        }
        ops->adamw(param, param, grad, scale, m, v, n, n_decayed, lr, beta1, beta2, eps, wd, t);
        float delta[n];
        for (int i = 0; i < n; i++)
            delta[i] = param[i] - before[i];
        CHECK(testing_rel_error_d(m, m_ref, n) < 1e-5, "adamw step %d: m off by %g", t,
              testing_rel_error_d(m, m_ref, n));
        CHECK(testing_rel_error_d(v, v_ref, n) < 1e-5, "adamw step %d: v off by %g", t,
              testing_rel_error_d(v, v_ref, n));
        CHECK(testing_rel_error_d(delta, delta_ref, n) < 1e-4, "adamw step %d: update off by %g", t,
              testing_rel_error_d(delta, delta_ref, n));
        CHECK(testing_rel_error_d(param, p_ref, n) < 1e-6, "adamw step %d: param off by %g", t,
              testing_rel_error_d(param, p_ref, n));
        free(grad);
    }
    free(param);
}

int main(void)
{
    testing_seed(20240607);
    test_table_and_memory();
    test_matmul_gradients();
    test_matmul_threaded(64, 96, 80);
    test_matmul_threaded(37, 101, 53);
    test_matmul_threaded(5, 1100, 3); /* K past one K block */
    test_embedding();
    test_rmsnorm();
    test_layernorm();
    test_gelu();
    for (int K = 4; K >= 2; K -= 2)
        for (int silu = 0; silu <= 1; silu++)
            for (int bias = 0; bias <= 1; bias++)
                test_conv1d(K, silu, bias);
    test_swiglu();
    test_swiglu_strided(0, 7);  /* fla's gate_proj, then up_proj */
    test_swiglu_strided(9, 1);  /* HazyResearch's fc1: up's rows first; a gap between */
    test_scale();
    test_add();
    test_matmul_gelu();
    test_cross_entropy();
    test_lm_head_loss();
    test_sum_squares();
    test_adamw();
    return testing_result("test_kernels_cpu");
}
