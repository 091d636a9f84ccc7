/* Tests of the GLA plugin's own CPU kernels (plugins/gla/gla.h):
 *  - the gated recurrence's forward against a naive token-by-token recurrence in
 *    double, for sequences longer than one chunk and not a multiple of it, and
 *    for varlen batches (cu_seqlens) with boundaries around the chunk size;
 *  - its backward (dq, dk, dv, dgk) against central finite differences of
 *    L = Σ r·o taken on the double reference, the gradient buffers pre-filled
 *    with random values the kernel must write over;
 *  - the same run on several threads, bit-identical to one thread, and with
 *    the backward making the checkpoints again (over NaN) itself;
 *  - the gated per-head RMSNorm and the logsigmoid gates likewise: do, dg and
 *    dx start as large values the kernels must write over (only dw, a
 *    parameter's gradient, is added into);
 *  - q, k, v and g as column blocks of one [n, q | k | v | g] buffer (a
 *    joined projection's output, rows a stride apart): the recurrence forward
 *    and backward, generation's step and the gated norm give what they give
 *    on packed tensors, bit for bit. */
#include <string.h>

#include "gla.h"
#include "reference_testing.h"

/* ==================================================================== recurrence */

typedef struct rec_case {
    const char *name;
    int n_seqs;
    const int32_t *cu;
    int H, dk, dv;
    int n;
    double *q, *k, *v, *gk, *r; /* the inputs and the loss weights, [n,H,dk] / [n,H,dv] */
} rec_case;

/* The reference: for every sequence and head, a dk×dv state updated token by token. */
static void naive_recurrence(double *o, const rec_case *c)
{
    int H = c->H, dk = c->dk, dv = c->dv;
    double scale = 1.0 / sqrt((double)dk);
    double *S = malloc((size_t)dk * dv * sizeof *S);
    for (int s = 0; s < c->n_seqs; s++)
        for (int h = 0; h < H; h++) {
            memset(S, 0, (size_t)dk * dv * sizeof *S);
            for (int t = c->cu[s]; t < c->cu[s + 1]; t++) {
                const double *qt = c->q + ((size_t)t * H + h) * dk, *kt = c->k + ((size_t)t * H + h) * dk;
                const double *gt = c->gk + ((size_t)t * H + h) * dk, *vt = c->v + ((size_t)t * H + h) * dv;
                double *ot = o + ((size_t)t * H + h) * dv;
                for (int i = 0; i < dk; i++)
                    for (int j = 0; j < dv; j++)
                        S[i * dv + j] = exp(gt[i]) * S[i * dv + j] + kt[i] * vt[j];
                for (int j = 0; j < dv; j++) {
                    double acc = 0;
                    for (int i = 0; i < dk; i++)
                        acc += qt[i] * scale * S[i * dv + j];
                    ot[j] = acc;
                }
            }
        }
    free(S);
}

static double rec_loss(const void *ctx)
{
    const rec_case *c = ctx;
    size_t nv = (size_t)c->n * c->H * c->dv;
    double *o = malloc(nv * sizeof *o);
    naive_recurrence(o, c);
    double L = 0;
    for (size_t i = 0; i < nv; i++)
        L += c->r[i] * o[i];
    free(o);
    return L;
}

static void rec_case_fill(rec_case *c)
{
    c->n = c->cu[c->n_seqs];
    size_t nk = (size_t)c->n * c->H * c->dk, nv = (size_t)c->n * c->H * c->dv;
    c->q = random_d(nk, -1, 1);
    c->k = random_d(nk, -1, 1);
    c->v = random_d(nv, -1, 1);
    c->gk = random_d(nk, -0.4, 0.0); /* logsigmoid/normalizer lies below 0 */
    c->r = random_d(nv, -1, 1);
}

static void rec_case_free(rec_case *c)
{
    free(c->q), free(c->k), free(c->v), free(c->gk), free(c->r);
}

/* runs the kernel forward (and, when dout is given, backward) on n_work workers */
typedef struct rec_run {
    float *o, *dq, *dk, *dv, *dgk;
} rec_run;

/* remake: the backward makes the checkpoints again (gla_recurrence_dims.remake_checkpoints)
 * over a buffer of NaN rather than reading the forward's */
static void run_kernel(rec_run *out, const rec_case *c, int n_work, int backward, int prefill,
                       float **pre, int remake)
{
    size_t nk = (size_t)c->n * c->H * c->dk, nv = (size_t)c->n * c->H * c->dv;
    float *q = to_float(c->q, nk), *k = to_float(c->k, nk), *v = to_float(c->v, nv);
    float *gk = to_float(c->gk, nk), *r = to_float(c->r, nv);
    float *ck = calloc(gla_recurrence_checkpoint_values(c->n, c->H, c->dk, c->dv) + 1, sizeof *ck);
    float *work = calloc((size_t)n_work * gla_recurrence_work_floats(c->dk, c->dv), sizeof *work);
    gla_recurrence_dims d = {c->cu, c->n_seqs, c->H, c->dk, c->dv, 1.0f / sqrtf((float)c->dk), NULL, 0, 0, 0, NULL, NULL, 0};
    out->o = malloc(nv * sizeof *out->o);
    gla_recurrence_forward_cpu(out->o, ck, q, k, v, gk, &d, work, n_work);
    out->dq = out->dk = out->dv = out->dgk = NULL;
    if (remake) {
        for (size_t i = 0; i < gla_recurrence_checkpoint_values(c->n, c->H, c->dk, c->dv); i++)
            ck[i] = NAN;
        d.remake_checkpoints = 1;
    }
    if (backward) {
        if (prefill) {
            out->dq = prefilled(nk, &pre[0]), out->dk = prefilled(nk, &pre[1]);
            out->dv = prefilled(nv, &pre[2]), out->dgk = prefilled(nk, &pre[3]);
        } else {
            out->dq = calloc(nk, sizeof(float)), out->dk = calloc(nk, sizeof(float));
            out->dv = calloc(nv, sizeof(float)), out->dgk = calloc(nk, sizeof(float));
        }
        gla_recurrence_backward_cpu(out->dq, out->dk, out->dv, out->dgk, r, q, k, v, gk, ck, &d, work, n_work);
    }
    free(q), free(k), free(v), free(gk), free(r), free(ck), free(work);
}

static void rec_run_free(rec_run *r) { free(r->o), free(r->dq), free(r->dk), free(r->dv), free(r->dgk); }

static void test_recurrence_case(rec_case *c, int check_grads)
{
    rec_case_fill(c);
    size_t nk = (size_t)c->n * c->H * c->dk, nv = (size_t)c->n * c->H * c->dv;
    double *o_ref = malloc(nv * sizeof *o_ref);
    naive_recurrence(o_ref, c);

    float *pre[4];
    rec_run run;
    run_kernel(&run, c, 1, 1, 1, pre, 0);
    double e = testing_rel_error_d(run.o, o_ref, nv);
    CHECK(e < 1e-5, "%s: forward rel error %.3g", c->name, e);

    for (int i = 0; i < 4; i++) /* the gradients are written over the prefill */
        free(pre[i]);
    if (check_grads) {
        struct { const char *what; double *x; float *analytic; size_t n; } g[4] = {
            {"dq", c->q, run.dq, nk}, {"dk", c->k, run.dk, nk}, {"dv", c->v, run.dv, nv},
            {"dgk", c->gk, run.dgk, nk}};
        for (int i = 0; i < 4; i++) {
            double *num = malloc(g[i].n * sizeof *num);
            numeric_grad_d(num, g[i].x, g[i].n, 1e-5, rec_loss, c);
            char what[96];
            snprintf(what, sizeof what, "%s: %s", c->name, g[i].what);
            testing_grad_close(what, g[i].analytic, num, g[i].n, 1e-4);
            free(num);
        }
    }

    /* threads: the same bits, forward and backward */
    rec_run many;
    int workers = gla_recurrence_max_workers() > 1 ? gla_recurrence_max_workers() : 4;
    run_kernel(&many, c, workers, 1, 0, NULL, 0);
    rec_run one;
    run_kernel(&one, c, 1, 1, 0, NULL, 0);
    CHECK(memcmp(many.o, one.o, nv * sizeof(float)) == 0, "%s: forward differs on %d workers", c->name, workers);
    CHECK(memcmp(many.dq, one.dq, nk * sizeof(float)) == 0 && memcmp(many.dk, one.dk, nk * sizeof(float)) == 0 &&
              memcmp(many.dv, one.dv, nv * sizeof(float)) == 0 &&
              memcmp(many.dgk, one.dgk, nk * sizeof(float)) == 0,
          "%s: backward differs on %d workers", c->name, workers);
    /* the checkpoints made again by the backward: the same bits */
    rec_run remade;
    run_kernel(&remade, c, workers, 1, 0, NULL, 1);
    CHECK(memcmp(remade.dq, one.dq, nk * sizeof(float)) == 0 && memcmp(remade.dk, one.dk, nk * sizeof(float)) == 0 &&
              memcmp(remade.dv, one.dv, nv * sizeof(float)) == 0 &&
              memcmp(remade.dgk, one.dgk, nk * sizeof(float)) == 0,
          "%s: backward with its checkpoints made again differs", c->name);
    rec_run_free(&many), rec_run_free(&one), rec_run_free(&run), rec_run_free(&remade);
    free(o_ref);
    rec_case_free(c);
}

static void test_recurrence(void)
{
    /* one sequence of 70: two chunks, the second short */
    static const int32_t cu70[] = {0, 70};
    rec_case a = {"T=70", 1, cu70, 2, 4, 3, 0, 0, 0, 0, 0, 0};
    test_recurrence_case(&a, 1);
    /* two rows of 130: three chunks each; the second row's checkpoints sit at
     * flattened positions that are not multiples of 64 */
    static const int32_t cu130[] = {0, 130, 260};
    rec_case b = {"B=2 T=130", 2, cu130, 2, 3, 5, 0, 0, 0, 0, 0, 0};
    test_recurrence_case(&b, 1);
    /* varlen: lengths 5, 70, 1, 64, 65, 20 */
    static const int32_t cu_var[] = {0, 5, 75, 76, 140, 205, 225};
    rec_case c = {"cu_seqlens", 6, cu_var, 3, 2, 4, 0, 0, 0, 0, 0, 0};
    test_recurrence_case(&c, 1);
    /* large enough for the kernels to use threads */
    static const int32_t cu_big[] = {0, 100, 300, 301, 600};
    rec_case big = {"threads", 4, cu_big, 4, 8, 8, 0, 0, 0, 0, 0, 0};
    test_recurrence_case(&big, 0);
}

/* ==================================================================== q, k, v, g side by side */

/* columns at.. of the joined rows are the packed ones, value for value */
static int same_columns(const float *joined, int n, size_t stride, size_t at, size_t width, const float *packed)
{
    return testing_columns_differ(joined, (size_t)n, stride, at, width, packed) == 0;
}

/* the recurrence on q, k, v in one [n, q | k | v | g] buffer against packed */
static void test_joined_recurrence(void)
{
    static const int32_t cu[] = {0, 5, 75, 76, 140, 205, 225};
    rec_case c = {"joined", 6, cu, 3, 2, 4, 0, 0, 0, 0, 0, 0};
    rec_case_fill(&c);
    int n = c.n;
    size_t kw = (size_t)c.H * c.dk, vw = (size_t)c.H * c.dv, W = 2 * kw + 2 * vw;
    size_t nk = (size_t)n * kw, nv = (size_t)n * vw;
    float *q = to_float(c.q, nk), *k = to_float(c.k, nk), *v = to_float(c.v, nv);
    float *gk = to_float(c.gk, nk), *r = to_float(c.r, nv);
    float *qkvg = calloc((size_t)n * W, sizeof *qkvg), *dqkvg = malloc((size_t)n * W * sizeof *dqkvg);
    testing_put_columns(qkvg, q, n, W, 0, kw), testing_put_columns(qkvg, k, n, W, kw, kw), testing_put_columns(qkvg, v, n, W, 2 * kw, vw);
    for (size_t i = 0; i < (size_t)n * W; i++)
        dqkvg[i] = NAN; /* q's, k's, v's columns must be written */
    float *ck = calloc(gla_recurrence_checkpoint_values(n, c.H, c.dk, c.dv) + 1, sizeof *ck);
    float *ck2 = calloc(gla_recurrence_checkpoint_values(n, c.H, c.dk, c.dv) + 1, sizeof *ck2);
    float *work = calloc(gla_recurrence_work_floats(c.dk, c.dv), sizeof *work);
    gla_recurrence_dims d = {cu, c.n_seqs, c.H, c.dk, c.dv, 1.0f / sqrtf((float)c.dk), NULL, 0, 0, 0, NULL, NULL, 0}, dj = d;
    dj.stride = (int)W;
    float *o = malloc(nv * sizeof *o), *o2 = malloc(nv * sizeof *o2);
    float *dq = malloc(nk * sizeof *dq), *dk = malloc(nk * sizeof *dk), *dv = malloc(nv * sizeof *dv);
    float *dgk = malloc(nk * sizeof *dgk), *dgk2 = malloc(nk * sizeof *dgk2);
    gla_recurrence_forward_cpu(o, ck, q, k, v, gk, &d, work, 1);
    gla_recurrence_backward_cpu(dq, dk, dv, dgk, r, q, k, v, gk, ck, &d, work, 1);
    gla_recurrence_forward_cpu(o2, ck2, qkvg, qkvg + kw, qkvg + 2 * kw, gk, &dj, work, 1);
    gla_recurrence_backward_cpu(dqkvg, dqkvg + kw, dqkvg + 2 * kw, dgk2, r, qkvg, qkvg + kw, qkvg + 2 * kw, gk, ck2,
                                &dj, work, 1);
    CHECK(memcmp(o, o2, nv * sizeof *o) == 0, "joined recurrence: o differs");
    CHECK(memcmp(dgk, dgk2, nk * sizeof *dgk) == 0, "joined recurrence: dgk differs");
    CHECK(same_columns(dqkvg, n, W, 0, kw, dq) && same_columns(dqkvg, n, W, kw, kw, dk) &&
              same_columns(dqkvg, n, W, 2 * kw, vw, dv),
          "joined recurrence: dq, dk or dv differs");
    /* generation's step: the n rows as n sequences of one token each */
    float *states = calloc((size_t)n * c.H * c.dk * c.dv, sizeof *states);
    float *states2 = calloc((size_t)n * c.H * c.dk * c.dv, sizeof *states2);
    for (int step = 0; step < 2; step++) {
        gla_recurrence_step_cpu(o, states, q, k, v, gk, n, c.H, c.dk, c.dv, 0.5f, 0);
        gla_recurrence_step_cpu(o2, states2, qkvg, qkvg + kw, qkvg + 2 * kw, gk, n, c.H, c.dk, c.dv, 0.5f, (int)W);
    }
    CHECK(memcmp(o, o2, nv * sizeof *o) == 0 &&
              memcmp(states, states2, (size_t)n * c.H * c.dk * c.dv * sizeof *states) == 0,
          "joined step: o or the states differ");
    printf("joined q, k, v: the recurrence forward, backward and step as on packed tensors\n");
    float *bufs[] = {q, k, v, gk, r, qkvg, dqkvg, ck, ck2, work, o, o2, dq, dk, dv, dgk, dgk2, states, states2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    rec_case_free(&c);
}

/* ==================================================================== gate norm */

typedef struct norm_case {
    int rows, C;
    double eps;
    double *o, *g, *w, *r;
} norm_case;

static void naive_gate_norm(double *y, const norm_case *c)
{
    for (int i = 0; i < c->rows; i++) {
        const double *o = c->o + (size_t)i * c->C, *g = c->g + (size_t)i * c->C;
        double ms = 0;
        for (int j = 0; j < c->C; j++)
            ms += o[j] * o[j] / c->C;
        for (int j = 0; j < c->C; j++)
            y[(size_t)i * c->C + j] = o[j] / sqrt(ms + c->eps) * c->w[j] * g[j] / (1 + exp(-g[j]));
    }
}

static double gate_norm_loss(const void *ctx)
{
    const norm_case *c = ctx;
    size_t n = (size_t)c->rows * c->C;
    double *y = malloc(n * sizeof *y), L = 0;
    naive_gate_norm(y, c);
    for (size_t i = 0; i < n; i++)
        L += c->r[i] * y[i];
    free(y);
    return L;
}

static void test_gate_norm(void)
{
    norm_case c = {7, 5, 1e-6, NULL, NULL, NULL, NULL};
    size_t n = (size_t)c.rows * c.C;
    c.o = random_d(n, -1, 1), c.g = random_d(n, -4, 4), c.w = random_d(c.C, 0.5, 1.5);
    c.r = random_d(n, -1, 1);
    float *o = to_float(c.o, n), *g = to_float(c.g, n), *w = to_float(c.w, c.C), *r = to_float(c.r, n);
    float *y = malloc(n * sizeof *y), *rstd = malloc(c.rows * sizeof *rstd);
    double *y_ref = malloc(n * sizeof *y_ref);
    static const gla_gate_rows packed = {1, 0};
    gla_gate_norm_forward_cpu(y, rstd, o, g, &packed, w, c.rows, c.C, (float)c.eps);
    naive_gate_norm(y_ref, &c);
    double e = testing_rel_error_d(y, y_ref, n);
    CHECK(e < 1e-6, "gate norm: forward rel error %.3g", e);

    float *pre_dw, *d_o = garbage(n), *dg = garbage(n), *dw = prefilled(c.C, &pre_dw);
    gla_gate_norm_backward_cpu(d_o, dg, dw, r, o, g, &packed, w, rstd, c.rows, c.C);
    remove_prefill(dw, pre_dw, c.C);
    struct { const char *what; double *x; float *analytic; size_t n; } t[3] = {
        {"gate norm: do", c.o, d_o, n}, {"gate norm: dg", c.g, dg, n}, {"gate norm: dw", c.w, dw, c.C}};
    for (int i = 0; i < 3; i++) {
        double *num = malloc(t[i].n * sizeof *num);
        numeric_grad_d(num, t[i].x, t[i].n, 1e-6, gate_norm_loss, &c);
        testing_grad_close(t[i].what, t[i].analytic, num, t[i].n, 1e-5);
        free(num);
    }
    /* NULL gradients are skipped; each of do, dg alone comes out the same */
    float *d_o1 = garbage(n), *dg1 = garbage(n);
    gla_gate_norm_backward_cpu(NULL, NULL, dw, r, o, g, &packed, w, rstd, c.rows, c.C);
    gla_gate_norm_backward_cpu(d_o1, NULL, NULL, r, o, g, &packed, w, rstd, c.rows, c.C);
    gla_gate_norm_backward_cpu(NULL, dg1, NULL, r, o, g, &packed, w, rstd, c.rows, c.C);
    CHECK(memcmp(d_o1, d_o, n * sizeof *d_o) == 0, "gate norm: do alone differs");
    CHECK(memcmp(dg1, dg, n * sizeof *dg) == 0, "gate norm: dg alone differs");
    /* g as the last column block of rows of 3 heads of C and more: y, rstd,
     * do, dg and dw as packed */
    int heads = 7, tokens = c.rows / heads; /* 7 rows: one token of 7 heads */
    size_t G = (size_t)heads * c.C, stride = 3 * G;
    float *g_joined = calloc((size_t)tokens * stride, sizeof *g_joined), *dg_joined = malloc((size_t)tokens * stride * sizeof *dg_joined);
    testing_put_columns(g_joined, g, tokens, stride, 2 * G, G);
    for (size_t i = 0; i < (size_t)tokens * stride; i++)
        dg_joined[i] = NAN;
    gla_gate_rows joined = {heads, stride};
    float *y2 = malloc(n * sizeof *y2), *rstd2 = malloc(c.rows * sizeof *rstd2), *d_o2 = garbage(n);
    float *dw1 = calloc(c.C, sizeof *dw1), *dw2 = calloc(c.C, sizeof *dw2);
    gla_gate_norm_forward_cpu(y2, rstd2, o, g_joined + 2 * G, &joined, w, c.rows, c.C, (float)c.eps);
    gla_gate_norm_backward_cpu(d_o2, dg_joined + 2 * G, dw2, r, o, g_joined + 2 * G, &joined, w, rstd2, c.rows, c.C);
    gla_gate_norm_backward_cpu(NULL, NULL, dw1, r, o, g, &packed, w, rstd, c.rows, c.C);
    CHECK(memcmp(y2, y, n * sizeof *y) == 0 && memcmp(rstd2, rstd, c.rows * sizeof *rstd) == 0 &&
              memcmp(d_o2, d_o, n * sizeof *d_o) == 0 && memcmp(dw1, dw2, c.C * sizeof *dw1) == 0 &&
              same_columns(dg_joined, tokens, stride, 2 * G, G, dg),
          "gate norm on a joined gate: y, rstd, do, dg or dw differs");
    free(g_joined), free(dg_joined), free(y2), free(rstd2), free(d_o2), free(dw1), free(dw2);
    free(c.o), free(c.g), free(c.w), free(c.r), free(o), free(g), free(w), free(r);
    free(y), free(rstd), free(y_ref), free(d_o), free(dg), free(dw), free(d_o1), free(dg1);
}

/* ==================================================================== gates */

typedef struct gates_case {
    size_t n;
    double normalizer;
    double *x, *r;
} gates_case;

static double naive_logsigmoid(double x) { return -log1p(exp(-x)); }

static double gates_loss(const void *ctx)
{
    const gates_case *c = ctx;
    double L = 0;
    for (size_t i = 0; i < c->n; i++)
        L += c->r[i] * naive_logsigmoid(c->x[i]) / c->normalizer;
    return L;
}

static void test_gates(void)
{
    gates_case c = {40, 16.0, NULL, NULL};
    c.x = random_d(c.n, -12, 12), c.r = random_d(c.n, -1, 1);
    float *x = to_float(c.x, c.n), *r = to_float(c.r, c.n), *gk = malloc(c.n * sizeof *gk);
    double *ref = malloc(c.n * sizeof *ref);
    gla_gates_forward_cpu(gk, x, c.n, (float)c.normalizer);
    for (size_t i = 0; i < c.n; i++)
        ref[i] = naive_logsigmoid(x[i]) / c.normalizer;
    double e = testing_rel_error_d(gk, ref, c.n);
    CHECK(e < 1e-6, "gates: forward rel error %.3g", e);

    float *dx = garbage(c.n);
    gla_gates_backward_cpu(dx, r, gk, c.n, (float)c.normalizer);
    double *num = malloc(c.n * sizeof *num);
    numeric_grad_d(num, c.x, c.n, 1e-6, gates_loss, &c);
    testing_grad_close("gates: dx", dx, num, c.n, 1e-5);

    /* far out: no overflow, the right limits, and in place */
    float big[4] = {-200.0f, 200.0f, 90.0f, 0.0f};
    gla_gates_forward_cpu(big, big, 4, 2.0f);
    CHECK(fabsf(big[0] + 100.0f) < 1e-4f && big[1] <= 0.0f && big[1] > -1e-30f && isfinite(big[2]) &&
              fabsf(big[3] + (float)log(2.0) / 2) < 1e-6f,
          "gates: extremes %g %g %g %g", big[0], big[1], big[2], big[3]);
    float one = 1.0f, d[4] = {1e3f, 1e3f, 1e3f, 1e3f}; /* written over */
    for (int i = 0; i < 4; i++)
        gla_gates_backward_cpu(&d[i], &one, &big[i], 1, 2.0f);
    /* d/dx logsigmoid(x)/2 = σ(−x)/2: 1/2 far left, 0 far right, 1/4 at 0 */
    CHECK(fabsf(d[0] - 0.5f) < 1e-6f && fabsf(d[1]) < 1e-30f && fabsf(d[3] - 0.25f) < 1e-6f,
          "gates: extreme gradients %g %g %g", d[0], d[1], d[3]);
    free(c.x), free(c.r), free(x), free(r), free(gk), free(ref), free(dx), free(num);
}

int main(void)
{
    testing_seed(7);
    test_recurrence();
    test_joined_recurrence();
    test_gate_norm();
    test_gates();
    return testing_result("test_gla_recurrence");
}
