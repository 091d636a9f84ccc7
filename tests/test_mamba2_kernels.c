/* Tests of the Mamba2 plugin's own CPU kernels (plugins/mamba2/mamba2.h), each
 * against a naive reference written here in double:
 *  - the SSD scan: forward against a token-by-token recurrence, for varlen
 *    batches whose documents are shorter than, as long as and longer than a
 *    checkpoint chunk; its backward (dx, ddelta, dB, dC written over garbage,
 *    dA_log and dD added into a prefill) against central finite differences of
 *    L = Σ r·y; several threads bit-identical to one; heads sharing B and C
 *    through groups;
 *  - the chunked forward equal to the step-by-step one for several chunk sizes;
 *  - the gated RMSNorm (one group and several) and Δ's softplus and clamp,
 *    forward and backward;
 *  - column blocks split out of an array whose every value names its row and
 *    column, and joined back. */
#include <math.h>
#include <string.h>

#include "mamba2.h"
#include "reference_testing.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* ==================================================================== the scan */

typedef struct scan_case {
    const char *name;
    int n_seqs;
    const int32_t *cu;
    int H, P, N, G;
    int n;
    double *x, *delta, *A_log, *B, *C, *D, *r;
} scan_case;

static size_t nx(const scan_case *c) { return (size_t)c->n * c->H * c->P; }
static size_t nbc(const scan_case *c) { return (size_t)c->n * c->G * c->N; }
static size_t nd(const scan_case *c) { return (size_t)c->n * c->H; }

/* per document and head, a P×N state updated token by token */
static void naive_scan(double *y, const scan_case *c)
{
    int H = c->H, P = c->P, N = c->N;
    double *S = malloc((size_t)P * N * sizeof *S);
    for (int s = 0; s < c->n_seqs; s++)
        for (int h = 0; h < H; h++) {
            double A = -exp(c->A_log[h]);
            memset(S, 0, (size_t)P * N * sizeof *S);
            for (int t = c->cu[s]; t < c->cu[s + 1]; t++) {
                double dt = c->delta[(size_t)t * H + h], a = exp(dt * A);
                const double *x = c->x + ((size_t)t * H + h) * P;
                size_t bo = ((size_t)t * c->G + h / (H / c->G)) * N;
                for (int p = 0; p < P; p++) {
                    double acc = 0;
                    for (int j = 0; j < N; j++) {
                        S[p * N + j] = a * S[p * N + j] + dt * x[p] * c->B[bo + j];
                        acc += S[p * N + j] * c->C[bo + j];
                    }
                    y[((size_t)t * H + h) * P + p] = acc + c->D[h] * x[p];
                }
            }
        }
    free(S);
}

static double scan_loss(const void *ctx)
{
    const scan_case *c = ctx;
    double *y = malloc(nx(c) * sizeof *y);
    naive_scan(y, c);
    double L = weighted(c->r, y, nx(c));
    free(y);
    return L;
}

static void scan_case_fill(scan_case *c)
{
    c->n = c->cu[c->n_seqs];
    c->x = random_d(nx(c), -1, 1);
    c->delta = random_d(nd(c), 0.01, 0.3);
    c->A_log = random_d(c->H, -0.5, 1.0); /* A from −0.6 to −2.7 */
    c->B = random_d(nbc(c), -1, 1);
    c->C = random_d(nbc(c), -1, 1);
    c->D = random_d(c->H, 0.5, 1.5);
    c->r = random_d(nx(c), -1, 1);
}

static void scan_case_free(scan_case *c)
{
    free(c->x), free(c->delta), free(c->A_log), free(c->B), free(c->C), free(c->D), free(c->r);
}

typedef struct scan_run {
    float *y, *dx, *ddelta, *dB, *dC, *dA_log, *dD;
} scan_run;

/* forward and backward on n_work workers; dA_log and dD start prefilled (the
 * prefill removed afterwards) or, for bit comparisons, at 0 */
static void run_scan(scan_run *out, const scan_case *c, int n_work, int prefill)
{
    float *x = to_float(c->x, nx(c)), *delta = to_float(c->delta, nd(c));
    float *A_log = to_float(c->A_log, c->H), *B = to_float(c->B, nbc(c)), *C = to_float(c->C, nbc(c));
    float *D = to_float(c->D, c->H), *r = to_float(c->r, nx(c));
    float *ck = calloc(mamba2_ssd_checkpoint_floats(c->n, c->H, c->P, c->N) + 1, sizeof *ck);
    float *work = calloc((size_t)n_work * mamba2_ssd_work_floats(c->P, c->N), sizeof *work);
    float *scratch = garbage(mamba2_ssd_scratch_floats(c->n, c->H, c->N));
    mamba2_ssd_dims d = {c->cu, c->n_seqs, c->H, c->P, c->N, c->G, NULL};
    out->y = malloc(nx(c) * sizeof *out->y);
    mamba2_ssd_forward_cpu(out->y, ck, x, delta, A_log, B, C, D, &d, work, n_work);
    out->dx = garbage(nx(c)), out->ddelta = garbage(nd(c));
    out->dB = garbage(nbc(c)), out->dC = garbage(nbc(c));
    float *pre_A = NULL, *pre_D = NULL;
    if (prefill)
        out->dA_log = prefilled(c->H, &pre_A), out->dD = prefilled(c->H, &pre_D);
    else
        out->dA_log = calloc(c->H, sizeof(float)), out->dD = calloc(c->H, sizeof(float));
    mamba2_ssd_grads g = {out->dx, out->ddelta, out->dB, out->dC, out->dA_log, out->dD};
    mamba2_ssd_backward_cpu(&g, r, x, delta, A_log, B, C, D, ck, &d, work, n_work, scratch);
    if (prefill)
        remove_prefill(out->dA_log, pre_A, c->H), remove_prefill(out->dD, pre_D, c->H);
    free(x), free(delta), free(A_log), free(B), free(C), free(D), free(r), free(ck), free(work);
    free(scratch);
}

static void scan_run_free(scan_run *r)
{
    free(r->y), free(r->dx), free(r->ddelta), free(r->dB), free(r->dC), free(r->dA_log), free(r->dD);
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* the chunked forward, for several chunk sizes, against the steps and the reference */
static void check_chunked(const scan_case *c, const float *y_steps, const double *y_ref)
{
    static const int chunks[] = {256, 64, 7, 1};
    float *x = to_float(c->x, nx(c)), *delta = to_float(c->delta, nd(c));
    float *A_log = to_float(c->A_log, c->H), *B = to_float(c->B, nbc(c)), *C = to_float(c->C, nbc(c));
    float *D = to_float(c->D, c->H), *y = malloc(nx(c) * sizeof *y);
    mamba2_ssd_dims d = {c->cu, c->n_seqs, c->H, c->P, c->N, c->G, NULL};
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        float *work = malloc(mamba2_ssd_chunked_work_floats(c->P, c->N, chunks[i]) * sizeof *work);
        mamba2_ssd_chunked_forward_cpu(y, x, delta, A_log, B, C, D, &d, chunks[i], work, 1);
        double steps = 0, den = 0;
        for (size_t k = 0; k < nx(c); k++) {
            double diff = (double)y[k] - y_steps[k];
            steps += diff * diff, den += (double)y_steps[k] * y_steps[k];
        }
        double e_steps = sqrt(steps / den), e_ref = testing_rel_error_d(y, y_ref, nx(c));
        /* both are fp32 (rounding ~3e-7 here): a looser bound let a 0.1% error
         * in the inter-chunk decay pass */
        CHECK(e_steps < 2e-6 && e_ref < 2e-6,
              "%s: chunk %d: rel error %.3g to the steps, %.3g to the reference", c->name, chunks[i],
              e_steps, e_ref);
        free(work);
    }
    free(x), free(delta), free(A_log), free(B), free(C), free(D), free(y);
}

static void test_scan_case(scan_case *c, int check_gradients)
{
    scan_case_fill(c);
    double *y_ref = malloc(nx(c) * sizeof *y_ref);
    naive_scan(y_ref, c);
    scan_run run;
    run_scan(&run, c, 1, 1);
    double e = testing_rel_error_d(run.y, y_ref, nx(c));
    CHECK(e < 1e-5, "%s: forward rel error %.3g", c->name, e);
    check_chunked(c, run.y, y_ref);
    if (check_gradients) {
        grad_check g[6] = {{"dx", c->x, run.dx, nx(c)},         {"ddelta", c->delta, run.ddelta, nd(c)},
                           {"dB", c->B, run.dB, nbc(c)},        {"dC", c->C, run.dC, nbc(c)},
                           {"dA_log", c->A_log, run.dA_log, c->H}, {"dD", c->D, run.dD, c->H}};
        check_grads(c->name, g, 6, 1e-5, 1e-4, scan_loss, c);
    }
    scan_run many, one;
    int workers = mamba2_ssd_max_workers() > 1 ? mamba2_ssd_max_workers() : 4;
    run_scan(&many, c, workers, 0);
    run_scan(&one, c, 1, 0);
    CHECK(same(many.y, one.y, nx(c)), "%s: forward differs on %d workers", c->name, workers);
    CHECK(same(many.dx, one.dx, nx(c)) && same(many.ddelta, one.ddelta, nd(c)) &&
              same(many.dB, one.dB, nbc(c)) && same(many.dC, one.dC, nbc(c)) &&
              same(many.dA_log, one.dA_log, c->H) && same(many.dD, one.dD, c->H),
          "%s: backward differs on %d workers", c->name, workers);
    scan_run_free(&run), scan_run_free(&many), scan_run_free(&one);
    free(y_ref);
    scan_case_free(c);
}

static void test_scan(void)
{
    /* documents of 1, 63, 64, 65 and 130 tokens: none, one and two checkpoints */
    static const int32_t cu[] = {0, 1, 64, 128, 193, 323};
    scan_case a = {"varlen G=1", 5, cu, 3, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    test_scan_case(&a, 1);
    /* two groups of two heads each */
    static const int32_t cu2[] = {0, 70, 135};
    scan_case b = {"G=2", 2, cu2, 4, 2, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0};
    test_scan_case(&b, 1);
    /* a single document longer than fla's chunk of 256; then one large
     * enough for the kernels to use threads */
    static const int32_t cu_long[] = {0, 600};
    scan_case l = {"T=600", 1, cu_long, 2, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    test_scan_case(&l, 0);
    static const int32_t cu_big[] = {0, 100, 300, 301, 600};
    scan_case big = {"threads", 4, cu_big, 4, 8, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    test_scan_case(&big, 0);
}

/* ==================================================================== the gated norm */

typedef struct norm_case {
    int rows, C, group_size;
    double eps;
    double *y, *z, *w, *r;
} norm_case;

static void naive_gated_norm(double *out, const norm_case *c)
{
    for (int i = 0; i < c->rows; i++)
        for (int g0 = 0; g0 < c->C; g0 += c->group_size) {
            size_t off = (size_t)i * c->C + g0;
            double ms = 0;
            for (int j = 0; j < c->group_size; j++) {
                double g = c->y[off + j] * c->z[off + j] * sigmoid(c->z[off + j]);
                ms += g * g / c->group_size;
            }
            for (int j = 0; j < c->group_size; j++)
                out[off + j] = c->y[off + j] * c->z[off + j] * sigmoid(c->z[off + j]) / sqrt(ms + c->eps) *
                               c->w[g0 + j];
        }
}

static double norm_loss(const void *ctx)
{
    const norm_case *c = ctx;
    size_t n = (size_t)c->rows * c->C;
    double *out = malloc(n * sizeof *out);
    naive_gated_norm(out, c);
    double L = weighted(c->r, out, n);
    free(out);
    return L;
}

static void test_gated_norm(int group_size)
{
    norm_case c = {6, 12, group_size, 1e-5, NULL, NULL, NULL, NULL};
    size_t n = (size_t)c.rows * c.C;
    c.y = random_d(n, -1, 1), c.z = random_d(n, -4, 4), c.w = random_d(c.C, 0.5, 1.5);
    c.r = random_d(n, -1, 1);
    float *y = to_float(c.y, n), *z = to_float(c.z, n), *w = to_float(c.w, c.C), *r = to_float(c.r, n);
    float *out = malloc(n * sizeof *out), *rstd = malloc(n / group_size * sizeof *rstd);
    double *ref = malloc(n * sizeof *ref);
    mamba2_gated_norm_forward_cpu(out, rstd, y, z, w, c.rows, c.C, group_size, (float)c.eps);
    naive_gated_norm(ref, &c);
    double e = testing_rel_error_d(out, ref, n);
    CHECK(e < 1e-6, "gated norm (groups of %d): forward rel error %.3g", group_size, e);
    float *pre_dw, *dy = garbage(n), *dz = garbage(n), *dw = prefilled(c.C, &pre_dw);
    mamba2_gated_norm_backward_cpu(dy, dz, dw, r, y, z, w, rstd, c.rows, c.C, group_size);
    remove_prefill(dw, pre_dw, c.C);
    char name[64];
    snprintf(name, sizeof name, "gated norm (groups of %d)", group_size);
    grad_check g[3] = {{"dy", c.y, dy, n}, {"dz", c.z, dz, n}, {"dw", c.w, dw, c.C}};
    check_grads(name, g, 3, 1e-6, 1e-5, norm_loss, &c);
    free(c.y), free(c.z), free(c.w), free(c.r), free(y), free(z), free(w), free(r);
    free(out), free(rstd), free(ref), free(dy), free(dz), free(dw);
}

/* ==================================================================== Δ */

typedef struct delta_case {
    int n, H;
    double lo, hi;
    double *dt, *bias, *r;
} delta_case;

static double naive_delta(double v, double lo, double hi)
{
    double s = v > 20 ? v : log1p(exp(v));
    return s < lo ? lo : s > hi ? hi : s;
}

static double delta_loss(const void *ctx)
{
    const delta_case *c = ctx;
    double L = 0;
    for (int i = 0; i < c->n * c->H; i++)
        L += c->r[i] * naive_delta(c->dt[i] + c->bias[i % c->H], c->lo, c->hi);
    return L;
}

static void test_delta(double lo, double hi)
{
    delta_case c = {9, 3, lo, hi, NULL, NULL, NULL};
    size_t n = (size_t)c.n * c.H;
    c.dt = random_d(n, -8, 8), c.bias = random_d(c.H, -2, 2), c.r = random_d(n, -1, 1);
    c.dt[0] = 30; /* softplus passes it through */
    float *dt = to_float(c.dt, n), *bias = to_float(c.bias, c.H), *r = to_float(c.r, n);
    float *delta = malloc(n * sizeof *delta);
    double *ref = malloc(n * sizeof *ref);
    mamba2_delta_forward_cpu(delta, dt, bias, c.n, c.H, (float)lo, (float)hi);
    int clamped = 0;
    for (size_t i = 0; i < n; i++) {
        ref[i] = naive_delta((double)dt[i] + bias[i % c.H], lo, hi);
        clamped += ref[i] == lo || ref[i] == hi;
    }
    double e = testing_rel_error_d(delta, ref, n);
    CHECK(e < 1e-6, "delta [%g, %g]: forward rel error %.3g", lo, hi, e);
    CHECK(isinf(hi) || clamped > 0, "delta [%g, %g]: nothing clamped, nothing tested", lo, hi);
    float *pre_db, *ddt = garbage(n), *db = prefilled(c.H, &pre_db);
    mamba2_delta_backward_cpu(ddt, db, r, dt, bias, c.n, c.H, (float)lo, (float)hi);
    remove_prefill(db, pre_db, c.H);
    char name[64];
    snprintf(name, sizeof name, "delta [%g, %g]", lo, hi);
    grad_check g[2] = {{"ddt", c.dt, ddt, n}, {"ddt_bias", c.bias, db, c.H}};
    check_grads(name, g, 2, 1e-6, 1e-5, delta_loss, &c);
    free(c.dt), free(c.bias), free(c.r), free(dt), free(bias), free(r), free(delta), free(ref);
    free(ddt), free(db);
}

/* ==================================================================== columns */

/* whole[t, j] = 1000·t + j: part i's (t, k) must hold 1000·t + (its first
 * column) + k, and joining the parts (over garbage) must give whole back */
static void test_columns(void)
{
    enum { ROWS = 5, PARTS = 3 };
    const int widths[PARTS] = {4, 1, 3}, total = 8;
    float whole[ROWS * 8], back[ROWS * 8], a[ROWS * 4], b[ROWS * 1], c[ROWS * 3];
    float *parts[PARTS] = {a, b, c};
    for (int i = 0; i < ROWS * total; i++)
        whole[i] = (float)(1000 * (i / total) + i % total), back[i] = NAN;
    mamba2_split_columns_cpu(parts, widths, PARTS, whole, ROWS);
    int wrong = 0;
    for (int p = 0, first = 0; p < PARTS; first += widths[p++])
        for (int t = 0; t < ROWS; t++)
            for (int k = 0; k < widths[p]; k++)
                wrong += parts[p][t * widths[p] + k] != (float)(1000 * t + first + k);
    CHECK(wrong == 0, "split columns: %d values not where they belong", wrong);
    mamba2_join_columns_cpu(back, (const float *const *)parts, widths, PARTS, ROWS);
    CHECK(memcmp(back, whole, sizeof whole) == 0, "join columns: not the array split");
}

int main(void)
{
    testing_seed(11);
    test_scan();
    test_gated_norm(12); /* n_groups = 1: the whole inner width */
    test_gated_norm(4);  /* n_groups = 3 */
    test_delta(0.0, INFINITY);
    test_delta(0.1, 3.0);
    test_columns();
    return testing_result("test_mamba2_kernels");
}
