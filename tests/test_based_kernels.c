/* Tests of the Based plugin's own CPU kernels (plugins/based/based.h) against
 * a naive reference written here in double, the quadratic form
 *     y_i = Σ_{j≤i} K_ij v_j / (Σ_{j≤i} K_ij + eps),  K_ij = 1 + s_ij + s_ij²/2
 * over i's document:
 *  - the Taylor attention's forward for F = 16, 5 and 1, Dv = 64, 7 and 1,
 *    H = 1 to 3, single documents of 1, 2 and 37 tokens and varlen batches
 *    with one-token documents;
 *  - its backward (dq, dk, dv written over garbage) against central finite
 *    differences of the reference's L = Σ r·y;
 *  - several threads bit-identical to one.
 * Each comparison prints ‖kernel − ref‖/‖ref‖ and its worst element's error
 * over the largest |ref|. Inputs are uniform in (−1, 1), never zero, and held
 * exactly by fp32, so the kernel and the reference see the same values. */
#include <math.h>
#include <string.h>

#include "based.h"
#include "reference_testing.h"

typedef struct taylor_case {
    const char *name;
    int n_seqs;
    const int32_t *cu;
    int H, F, Dv;
    int check_gradients;
    int n;
    double *q, *k, *v, *r;
} taylor_case;

static size_t nqk(const taylor_case *c) { return (size_t)c->n * c->H * c->F; }
static size_t nv(const taylor_case *c) { return (size_t)c->n * c->H * c->Dv; }

/* the kernel's feature map in closed form: K = phi(q)·phi(k) */
static double taylor_kernel(const double *q, const double *k, int F)
{
    double s = 0;
    for (int a = 0; a < F; a++)
        s += q[a] * k[a];
    s /= sqrt(F);
    return 1 + s + s * s / 2;
}

/* per document, head and token i, the sums over the tokens j ≤ i */
static void naive_taylor(double *y, const taylor_case *c)
{
    int H = c->H, F = c->F, Dv = c->Dv;
    for (int s = 0; s < c->n_seqs; s++)
        for (int h = 0; h < H; h++)
            for (int i = c->cu[s]; i < c->cu[s + 1]; i++) {
                double *yi = y + ((size_t)i * H + h) * Dv, den = 0;
                memset(yi, 0, (size_t)Dv * sizeof *yi);
                for (int j = c->cu[s]; j <= i; j++) {
                    double K = taylor_kernel(c->q + ((size_t)i * H + h) * F,
                                             c->k + ((size_t)j * H + h) * F, F);
                    const double *vj = c->v + ((size_t)j * H + h) * Dv;
                    den += K;
                    for (int e = 0; e < Dv; e++)
                        yi[e] += K * vj[e];
                }
                for (int e = 0; e < Dv; e++)
                    yi[e] /= den + 1e-12;
            }
}

static double taylor_loss(const void *ctx)
{
    const taylor_case *c = ctx;
    double *y = malloc(nv(c) * sizeof *y);
    naive_taylor(y, c);
    double L = weighted(c->r, y, nv(c));
    free(y);
    return L;
}

/* uniform in (lo, hi), rounded to values fp32 holds */
static double *random_fp32_exact(size_t n, double lo, double hi)
{
    double *x = random_d(n, lo, hi);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)x[i];
    return x;
}

static void taylor_case_fill(taylor_case *c)
{
    c->n = c->cu[c->n_seqs];
    c->q = random_fp32_exact(nqk(c), -1, 1);
    c->k = random_fp32_exact(nqk(c), -1, 1);
    c->v = random_fp32_exact(nv(c), -1, 1);
    c->r = random_fp32_exact(nv(c), -1, 1);
}

static void taylor_case_free(taylor_case *c) { free(c->q), free(c->k), free(c->v), free(c->r); }

static int longest_document(const taylor_case *c)
{
    int longest = 0;
    for (int s = 0; s < c->n_seqs; s++)
        if (c->cu[s + 1] - c->cu[s] > longest)
            longest = c->cu[s + 1] - c->cu[s];
    return longest;
}

typedef struct taylor_run {
    float *y, *dq, *dk, *dv;
} taylor_run;

/* forward and backward (dy = r) on n_work workers; outputs and work start as
 * garbage, so that neither may be read before it is written */
static void run_taylor(taylor_run *out, const taylor_case *c, int n_work)
{
    float *q = to_float(c->q, nqk(c)), *k = to_float(c->k, nqk(c));
    float *v = to_float(c->v, nv(c)), *r = to_float(c->r, nv(c));
    based_dims d = {c->cu, c->n_seqs, c->H, c->F, c->Dv, NULL};
    float *work_f = garbage((size_t)n_work * based_taylor_forward_work_floats(c->F, c->Dv));
    float *work_b = garbage((size_t)n_work *
                            based_taylor_backward_work_floats(c->F, c->Dv, longest_document(c)));
    out->y = garbage(nv(c));
    based_taylor_forward_cpu(out->y, q, k, v, &d, work_f, n_work);
    out->dq = garbage(nqk(c)), out->dk = garbage(nqk(c)), out->dv = garbage(nv(c));
    based_taylor_backward_cpu(out->dq, out->dk, out->dv, r, q, k, v, &d, work_b, n_work);
    free(q), free(k), free(v), free(r), free(work_f), free(work_b);
}

static void taylor_run_free(taylor_run *r) { free(r->y), free(r->dq), free(r->dk), free(r->dv); }

/* one line per comparison; both errors under tol */
static void compare(const char *name, const char *what, const float *a, const double *ref,
                    size_t n, double tol)
{
    double rel = testing_rel_error_d(a, ref, n), worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(a[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    worst /= scale + 1e-30;
    int ok = rel < tol && worst < tol;
    printf("%-34s %-8s rel %.2e  worst %.2e  (tol %.0e) %s\n", name, what, rel, worst, tol,
           ok ? "ok" : "FAILED");
    CHECK(ok, "%s: %s: rel error %.3g, worst %.3g", name, what, rel, worst);
}

/* the kernel's gradient against central differences of the reference's loss */
static void compare_gradient(const taylor_case *c, const char *what, double *x, const float *grad,
                             size_t n)
{
    double *num = malloc(n * sizeof *num);
    numeric_grad_d(num, x, n, 1e-5, taylor_loss, c);
    /* the kernel's fp32 sums round at ~1e-6 of them; the differences, taken
     * in double with h = 1e-5, are good to ~1e-10: 1e-4 leaves margin to
     * rounding yet fails any wrong term, whose error is of the gradient's size */
    compare(c->name, what, grad, num, n, 1e-4);
    free(num);
}

/* In one-token documents y = v·K/(K + eps): dq and dk are 0 but for eps
 * (~1e-12), so no relative error has a meaning. The kernel's dq is the
 * difference of two O(1) terms, dk likewise; fp32 leaves ~1e-7 of them. */
static void check_vanishing(const char *name, const char *what, const float *grad, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(grad[i]));
    int ok = worst < 1e-5;
    printf("%-34s %-8s max |%s| %.2e, exact ~1e-12 (tol 1e-05) %s\n", name, what, what, worst,
           ok ? "ok" : "FAILED");
    CHECK(ok, "%s: %s should vanish, max %.3g", name, what, worst);
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

static void check_threads(const taylor_case *c)
{
    int workers = based_taylor_max_workers() > 1 ? based_taylor_max_workers() : 4;
    taylor_run many, one;
    run_taylor(&many, c, workers);
    run_taylor(&one, c, 1);
    int ok = same(many.y, one.y, nv(c)) && same(many.dq, one.dq, nqk(c)) &&
             same(many.dk, one.dk, nqk(c)) && same(many.dv, one.dv, nv(c));
    printf("%-34s threads  %d workers %s one: %s\n", c->name, workers,
           ok ? "equal to" : "differ from", ok ? "ok" : "FAILED");
    CHECK(ok, "%s: y, dq, dk or dv differ on %d workers", c->name, workers);
    taylor_run_free(&many), taylor_run_free(&one);
}

static void test_case(taylor_case *c)
{
    taylor_case_fill(c);
    double *y_ref = malloc(nv(c) * sizeof *y_ref);
    naive_taylor(y_ref, c);
    taylor_run run;
    run_taylor(&run, c, 1);
    /* fp32 against double: rounding ~1e-7 per value, sums of up to 100 terms */
    compare(c->name, "y", run.y, y_ref, nv(c), 1e-5);
    if (c->check_gradients && c->n == c->n_seqs) {
        check_vanishing(c->name, "dq", run.dq, nqk(c));
        check_vanishing(c->name, "dk", run.dk, nqk(c));
    } else if (c->check_gradients) {
        compare_gradient(c, "dq", c->q, run.dq, nqk(c));
        compare_gradient(c, "dk", c->k, run.dk, nqk(c));
    }
    if (c->check_gradients)
        compare_gradient(c, "dv", c->v, run.dv, nv(c));
    check_threads(c);
    taylor_run_free(&run);
    free(y_ref);
    taylor_case_free(c);
}

int main(void)
{
    testing_seed(17);
    static const int32_t t1[] = {0, 1}, t2[] = {0, 2}, t37[] = {0, 37};
    static const int32_t docs_a[] = {0, 1, 10, 11, 31, 32}; /* 1, 9, 1, 20, 1 */
    static const int32_t docs_b[] = {0, 5, 6, 36};          /* 5, 1, 30 */
    /* long enough for the kernels to use threads; no finite differences */
    static const int32_t docs_big[] = {0, 100, 101, 160, 200}; /* 100, 1, 59, 40 */
    taylor_case cases[] = {
        {"F=16 Dv=64 H=1 T=1", 1, t1, 1, 16, 64, 1, 0, 0, 0, 0, 0},
        {"F=16 Dv=64 H=2 T=2", 1, t2, 2, 16, 64, 1, 0, 0, 0, 0, 0},
        {"F=16 Dv=64 H=3 T=37", 1, t37, 3, 16, 64, 1, 0, 0, 0, 0, 0},
        {"F=16 Dv=7 H=1 T=37", 1, t37, 1, 16, 7, 1, 0, 0, 0, 0, 0},
        {"F=5 Dv=7 H=1 T=1", 1, t1, 1, 5, 7, 1, 0, 0, 0, 0, 0},
        {"F=5 Dv=64 H=3 T=2", 1, t2, 3, 5, 64, 1, 0, 0, 0, 0, 0},
        {"F=5 Dv=7 H=2 T=37", 1, t37, 2, 5, 7, 1, 0, 0, 0, 0, 0},
        {"F=1 Dv=1 H=2 docs 1,9,1,20,1", 5, docs_a, 2, 1, 1, 1, 0, 0, 0, 0, 0},
        {"F=5 Dv=7 H=3 docs 1,9,1,20,1", 5, docs_a, 3, 5, 7, 1, 0, 0, 0, 0, 0},
        {"F=16 Dv=64 H=2 docs 5,1,30", 3, docs_b, 2, 16, 64, 1, 0, 0, 0, 0, 0},
        {"F=16 Dv=64 H=3 docs 100,1,59,40", 4, docs_big, 3, 16, 64, 0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        test_case(&cases[i]);
    return testing_result("test_based_kernels");
}
