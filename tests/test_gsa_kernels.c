/* Tests of the GSA plugin's own CPU kernels (plugins/gsa/gsa.h), each against a
 * naive reference written here in double:
 *  - the slot pass: forward against a token-by-token recurrence, for sequences
 *    longer than a chunk and not a multiple of it and for varlen batches; its
 *    backward (dq, dk, ds, df) against central finite differences of
 *    L = Σ r·ok, the gradients pre-filled with values the kernel must write
 *    over; several threads bit-identical to one; and its checkpoints equal to
 *    GLA's recurrence's for keys s, values k and gates f (the layout the CUDA
 *    pass builds on);
 *  - swish, the slot gates (all four incoming gradients), the softmax over
 *    the slots (with logits large enough to overflow an unshifted exp) and
 *    the output norm with and without its weight, forward and backward. */
#include <math.h>
#include <string.h>

#include "gla.h"
#include "gsa.h"
#include "reference_testing.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* ==================================================================== the slot pass */

typedef struct slot_case {
    const char *name;
    int n_seqs;
    const int32_t *cu;
    int H, dk, M;
    double scale;
    int n;
    double *q, *k, *s, *f, *r; /* [n,H,dk] ×2, [n,H,M] ×3 */
} slot_case;

/* per sequence and head, P (M×dk) updated token by token */
static void naive_slots(double *ok, const slot_case *c)
{
    int H = c->H, dk = c->dk, M = c->M;
    double *P = malloc((size_t)M * dk * sizeof *P);
    for (int sq = 0; sq < c->n_seqs; sq++)
        for (int h = 0; h < H; h++) {
            memset(P, 0, (size_t)M * dk * sizeof *P);
            for (int t = c->cu[sq]; t < c->cu[sq + 1]; t++) {
                const double *qt = c->q + ((size_t)t * H + h) * dk, *kt = c->k + ((size_t)t * H + h) * dk;
                const double *st = c->s + ((size_t)t * H + h) * M, *ft = c->f + ((size_t)t * H + h) * M;
                for (int m = 0; m < M; m++) {
                    double acc = 0;
                    for (int i = 0; i < dk; i++) {
                        P[m * dk + i] = exp(ft[m]) * P[m * dk + i] + st[m] * kt[i];
                        acc += P[m * dk + i] * qt[i];
                    }
                    ok[((size_t)t * H + h) * M + m] = c->scale * acc;
                }
            }
        }
    free(P);
}

static double slot_loss(const void *ctx)
{
    const slot_case *c = ctx;
    size_t ns = (size_t)c->n * c->H * c->M;
    double *ok = malloc(ns * sizeof *ok);
    naive_slots(ok, c);
    double L = weighted(c->r, ok, ns);
    free(ok);
    return L;
}

typedef struct slot_run {
    float *ok, *checkpoints, *dq, *dk, *ds, *df;
} slot_run;

static void run_slots(slot_run *out, const slot_case *c, int n_work, int garbage_grads)
{
    size_t nk = (size_t)c->n * c->H * c->dk, ns = (size_t)c->n * c->H * c->M;
    float *q = to_float(c->q, nk), *k = to_float(c->k, nk), *s = to_float(c->s, ns);
    float *f = to_float(c->f, ns), *r = to_float(c->r, ns);
    size_t n_ck = gsa_slot_checkpoint_values(c->n, c->H, c->dk, c->M);
    float *work = calloc((size_t)n_work * gsa_slot_work_floats(c->dk, c->M), sizeof *work);
    gsa_slot_dims d = {c->cu, c->n_seqs, c->H, c->dk, c->M, (float)c->scale, NULL};
    out->ok = malloc(ns * sizeof *out->ok);
    out->checkpoints = calloc(n_ck + 1, sizeof *out->checkpoints);
    gsa_slot_recurrence_forward_cpu(out->ok, out->checkpoints, q, k, s, f, &d, work, n_work);
    if (garbage_grads)
        out->dq = garbage(nk), out->dk = garbage(nk), out->ds = garbage(ns), out->df = garbage(ns);
    else
        out->dq = calloc(nk, 4), out->dk = calloc(nk, 4), out->ds = calloc(ns, 4), out->df = calloc(ns, 4);
    gsa_slot_recurrence_backward_cpu(out->dq, out->dk, out->ds, out->df, r, q, k, s, f, out->checkpoints,
                                     &d, work, n_work);
    free(q), free(k), free(s), free(f), free(r), free(work);
}

static void slot_run_free(slot_run *r)
{
    free(r->ok), free(r->checkpoints), free(r->dq), free(r->dk), free(r->ds), free(r->df);
}

/* GLA's states for keys s, values k and gates f, at the same chunk starts */
static void check_gla_checkpoints(const slot_case *c, const float *checkpoints)
{
    size_t nk = (size_t)c->n * c->H * c->dk, ns = (size_t)c->n * c->H * c->M;
    float *k = to_float(c->k, nk), *s = to_float(c->s, ns), *f = to_float(c->f, ns);
    size_t n_ck = gla_recurrence_checkpoint_values(c->n, c->H, c->M, c->dk);
    float *gla = calloc(n_ck + 1, sizeof *gla), *work = calloc(gla_recurrence_work_floats(c->M, c->dk), 4);
    gla_recurrence_dims d = {c->cu, c->n_seqs, c->H, c->M, c->dk, 1.0f, NULL, 0, 0, 0, NULL, NULL, 0};
    gla_recurrence_forward_cpu(NULL, gla, NULL, s, k, f, &d, work, 1);
    CHECK(n_ck == gsa_slot_checkpoint_values(c->n, c->H, c->dk, c->M) &&
              memcmp(gla, checkpoints, n_ck * sizeof *gla) == 0,
          "%s: checkpoints differ from GLA's states for (s, k, f)", c->name);
    free(k), free(s), free(f), free(gla), free(work);
}

static void test_slot_case(slot_case *c, int grads)
{
    c->n = c->cu[c->n_seqs];
    size_t nk = (size_t)c->n * c->H * c->dk, ns = (size_t)c->n * c->H * c->M;
    c->q = random_d(nk, -0.3, 1), c->k = random_d(nk, -0.3, 1); /* swish's range */
    c->s = random_d(ns, 0.01, 0.6), c->f = random_d(ns, -0.9, -0.01), c->r = random_d(ns, -1, 1);
    double *ok_ref = malloc(ns * sizeof *ok_ref);
    naive_slots(ok_ref, c);

    slot_run run;
    run_slots(&run, c, 1, 1);
    double e = testing_rel_error_d(run.ok, ok_ref, ns);
    CHECK(e < 1e-5, "%s: forward rel error %.3g", c->name, e);
    check_gla_checkpoints(c, run.checkpoints);
    if (grads) {
        const grad_check g[] = {{"dq", c->q, run.dq, nk}, {"dk", c->k, run.dk, nk},
                                {"ds", c->s, run.ds, ns}, {"df", c->f, run.df, ns}};
        check_grads(c->name, g, (int)(sizeof g / sizeof g[0]), 1e-5, 1e-4, slot_loss, c);
    }
    /* threads: the same bits, forward and backward */
    int workers = gla_recurrence_max_workers() > 1 ? gla_recurrence_max_workers() : 4;
    slot_run many, one;
    run_slots(&many, c, workers, 0);
    run_slots(&one, c, 1, 0);
    CHECK(memcmp(many.ok, one.ok, ns * 4) == 0 && memcmp(many.dq, one.dq, nk * 4) == 0 &&
              memcmp(many.dk, one.dk, nk * 4) == 0 && memcmp(many.ds, one.ds, ns * 4) == 0 &&
              memcmp(many.df, one.df, ns * 4) == 0,
          "%s: results differ on %d workers", c->name, workers);
    slot_run_free(&run), slot_run_free(&many), slot_run_free(&one);
    free(ok_ref), free(c->q), free(c->k), free(c->s), free(c->f), free(c->r);
}

static void test_slots(void)
{
    static const int32_t cu70[] = {0, 70};
    slot_case a = {"T=70", 1, cu70, 2, 3, 4, 1.0, 0, 0, 0, 0, 0, 0};
    test_slot_case(&a, 1);
    /* varlen: lengths 5, 70, 1, 64, 65; another scale */
    static const int32_t cu_var[] = {0, 5, 75, 76, 140, 205};
    slot_case b = {"cu_seqlens, scale 0.5", 5, cu_var, 2, 2, 3, 0.5, 0, 0, 0, 0, 0, 0};
    test_slot_case(&b, 1);
    /* large enough for threads */
    static const int32_t cu_big[] = {0, 100, 300, 301, 600};
    slot_case big = {"threads", 4, cu_big, 4, 8, 8, 1.0, 0, 0, 0, 0, 0, 0};
    test_slot_case(&big, 0);
}

/* ==================================================================== pointwise */

typedef struct pointwise_case {
    size_t n;
    double normalizer;
    double *x, *r[4]; /* swish: r[0]; gates: f's two uses, then s's two */
} pointwise_case;

static double swish_loss(const void *ctx)
{
    const pointwise_case *c = ctx;
    double L = 0;
    for (size_t i = 0; i < c->n; i++)
        L += c->r[0][i] * c->x[i] * sigmoid(c->x[i]);
    return L;
}

static double gates_loss(const void *ctx)
{
    const pointwise_case *c = ctx;
    double L = 0;
    for (size_t i = 0; i < c->n; i++) {
        double f = log(sigmoid(c->x[i])) / c->normalizer, s = 1 - exp(f);
        L += (c->r[0][i] + c->r[1][i]) * f + (c->r[2][i] + c->r[3][i]) * s;
    }
    return L;
}

static void test_swish(void)
{
    pointwise_case c = {50, 0, random_d(50, -8, 8), {random_d(50, -1, 1)}};
    float *x = to_float(c.x, c.n), *r = to_float(c.r[0], c.n), *y = malloc(c.n * 4);
    double *ref = malloc(c.n * sizeof *ref);
    for (size_t i = 0; i < c.n; i++)
        ref[i] = x[i] * sigmoid(x[i]);
    gsa_swish_forward_cpu(y, x, c.n);
    CHECK(testing_rel_error_d(y, ref, c.n) < 1e-6, "swish: forward");
    float *dx = garbage(c.n);
    gsa_swish_backward_cpu(dx, r, x, c.n);
    const grad_check g[] = {{"dx", c.x, dx, c.n}};
    check_grads("swish", g, 1, 1e-6, 1e-5, swish_loss, &c);
    /* in place, both ways */
    gsa_swish_backward_cpu(r, r, x, c.n);
    gsa_swish_forward_cpu(x, x, c.n);
    CHECK(memcmp(r, dx, c.n * 4) == 0 && memcmp(x, y, c.n * 4) == 0, "swish: in place differs");
    free(c.x), free(c.r[0]), free(x), free(r), free(y), free(ref), free(dx);
}

static void test_slot_gates(void)
{
    pointwise_case c = {60, 4.0, random_d(60, -12, 12), {NULL}};
    float *r[4];
    for (int i = 0; i < 4; i++)
        c.r[i] = random_d(c.n, -1, 1), r[i] = to_float(c.r[i], c.n);
    float *x = to_float(c.x, c.n), *f = malloc(c.n * 4), *s = malloc(c.n * 4);
    double *f_ref = malloc(c.n * sizeof *f_ref), *s_ref = malloc(c.n * sizeof *s_ref);
    for (size_t i = 0; i < c.n; i++)
        f_ref[i] = log(sigmoid(x[i])) / c.normalizer, s_ref[i] = 1 - exp(f_ref[i]);
    gsa_slot_gates_forward_cpu(f, s, x, c.n, (float)c.normalizer);
    CHECK(testing_rel_error_d(f, f_ref, c.n) < 1e-6 && testing_rel_error_d(s, s_ref, c.n) < 1e-6,
          "slot gates: forward");
    float *dx = garbage(c.n);
    gsa_slot_gates_backward_cpu(dx, r[0], r[1], r[2], r[3], f, c.n, (float)c.normalizer);
    const grad_check g[] = {{"dx", c.x, dx, c.n}};
    check_grads("slot gates", g, 1, 1e-6, 1e-5, gates_loss, &c);
    /* dx over one of its inputs gives the same */
    gsa_slot_gates_backward_cpu(r[2], r[0], r[1], r[2], r[3], f, c.n, (float)c.normalizer);
    CHECK(memcmp(r[2], dx, c.n * 4) == 0, "slot gates: dx aliasing ds_slots differs");
    /* far out: f → x/normalizer on the left, s → 0 on the right, all finite */
    float big[2] = {-200.0f, 200.0f}, fb[2], sb[2];
    gsa_slot_gates_forward_cpu(fb, sb, big, 2, 4.0f);
    CHECK(fabsf(fb[0] + 50.0f) < 1e-4f && fabsf(sb[0] - 1.0f) < 1e-6f && fb[1] <= 0 && sb[1] >= 0 &&
              sb[1] < 1e-30f,
          "slot gates: extremes f %g %g, s %g %g", fb[0], fb[1], sb[0], sb[1]);
    free(c.x), free(x), free(f), free(s), free(f_ref), free(s_ref), free(dx);
    for (int i = 0; i < 4; i++)
        free(c.r[i]), free(r[i]);
}

/* ==================================================================== softmax */

typedef struct softmax_case {
    int rows, M;
    double *x, *r;
} softmax_case;

static void naive_softmax(double *p, const softmax_case *c)
{
    for (int i = 0; i < c->rows; i++) {
        const double *x = c->x + (size_t)i * c->M;
        double max = x[0], sum = 0;
        for (int m = 1; m < c->M; m++)
            max = fmax(max, x[m]);
        for (int m = 0; m < c->M; m++)
            sum += exp(x[m] - max);
        for (int m = 0; m < c->M; m++)
            p[(size_t)i * c->M + m] = exp(x[m] - max) / sum;
    }
}

static double softmax_loss(const void *ctx)
{
    const softmax_case *c = ctx;
    size_t n = (size_t)c->rows * c->M;
    double *p = malloc(n * sizeof *p);
    naive_softmax(p, c);
    double L = weighted(c->r, p, n);
    free(p);
    return L;
}

static void test_softmax(void)
{
    softmax_case c = {6, 7, NULL, NULL};
    size_t n = (size_t)c.rows * c.M;
    c.x = random_d(n, -3, 3), c.r = random_d(n, -1, 1);
    for (int m = 0; m < c.M; m++) /* a row whose exp overflows fp32 unshifted */
        c.x[m] += 120;
    float *x = to_float(c.x, n), *r = to_float(c.r, n), *p = malloc(n * 4);
    double *ref = malloc(n * sizeof *ref);
    naive_softmax(ref, &c);
    gsa_softmax_forward_cpu(p, x, c.rows, c.M);
    double e = testing_rel_error_d(p, ref, n);
    CHECK(e < 1e-6, "softmax: forward rel error %.3g", e);
    float *dx = garbage(n);
    gsa_softmax_backward_cpu(dx, r, p, c.rows, c.M);
    const grad_check g[] = {{"dx", c.x, dx, n}};
    check_grads("softmax", g, 1, 1e-6, 1e-5, softmax_loss, &c);
    gsa_softmax_backward_cpu(r, r, p, c.rows, c.M);
    CHECK(memcmp(r, dx, n * 4) == 0, "softmax: dx over dp differs");
    free(c.x), free(c.r), free(x), free(r), free(p), free(ref), free(dx);
}

/* ==================================================================== output norm */

typedef struct out_norm_case {
    int rows, C;
    double eps;
    double *o, *w, *r; /* w NULL: no weight */
} out_norm_case;

static double out_norm_loss(const void *ctx)
{
    const out_norm_case *c = ctx;
    double L = 0;
    for (int i = 0; i < c->rows; i++) {
        const double *o = c->o + (size_t)i * c->C;
        double ms = 0;
        for (int j = 0; j < c->C; j++)
            ms += pow(o[j] * sigmoid(o[j]), 2) / c->C;
        for (int j = 0; j < c->C; j++)
            L += c->r[(size_t)i * c->C + j] * o[j] * sigmoid(o[j]) / sqrt(ms + c->eps) * (c->w ? c->w[j] : 1);
    }
    return L;
}

static void test_output_norm_case(int with_weight)
{
    out_norm_case c = {5, 9, 1e-5, NULL, NULL, NULL};
    size_t n = (size_t)c.rows * c.C;
    c.o = random_d(n, -3, 3), c.r = random_d(n, -1, 1), c.w = with_weight ? random_d(c.C, 0.5, 1.5) : NULL;
    float *o = to_float(c.o, n), *r = to_float(c.r, n), *w = c.w ? to_float(c.w, c.C) : NULL;
    float *y = malloc(n * 4), *rstd = malloc(c.rows * 4);
    gsa_output_norm_forward_cpu(y, rstd, o, w, c.rows, c.C, (float)c.eps);
    /* the forward: its loss against the reference's */
    double L = 0;
    for (size_t i = 0; i < n; i++)
        L += c.r[i] * y[i];
    CHECK(fabs(L - out_norm_loss(&c)) < 1e-5 * (1 + fabs(L)), "output norm (%s): forward",
          with_weight ? "weight" : "no weight");
    float *pre_dw = NULL, *d_o = garbage(n), *dw = w ? prefilled(c.C, &pre_dw) : NULL;
    gsa_output_norm_backward_cpu(d_o, dw, r, o, w, rstd, c.rows, c.C);
    grad_check g[2] = {{"d_o", c.o, d_o, n}, {"dw", c.w, dw, c.C}};
    if (w)
        remove_prefill(dw, pre_dw, c.C);
    check_grads(with_weight ? "output norm (weight)" : "output norm (no weight)", g, w ? 2 : 1, 1e-6,
                1e-5, out_norm_loss, &c);
    free(c.o), free(c.r), free(c.w), free(o), free(r), free(w), free(y), free(rstd), free(d_o), free(dw);
}

int main(void)
{
    testing_seed(13);
    test_slots();
    test_swish();
    test_slot_gates();
    test_softmax();
    test_output_norm_case(1);
    test_output_norm_case(0);
    return testing_result("test_gsa_kernels");
}
