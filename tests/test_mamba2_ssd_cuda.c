/* Mamba2's SSD scan on the GPU (ssd_chunk.cu, ssd_cuda.h) against its CPU
 * reference, the scan step by step (ssd_scan_cpu.c, mamba2.h):
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly, none 0 (x, B, C, dy uniform; A_log, D per head), delta fp32
 *    (what the GPU takes); fp32 for the CPU, cast to bf16 for the GPU;
 *  - error ‖gpu − cpu‖ / ‖cpu‖ over each whole output, under 1e-2: y, the
 *    checkpoints (the states, bf16 on the GPU, carried there in fp32 from
 *    chunk to chunk, their chunk shares made from bf16 operands),
 *    dx, ddelta, dB, dC, and dA_log, dD (added: pre-filled, compared with
 *    prefill + the CPU's);
 *  - y and the written gradients are poisoned with NaN first, so that a value
 *    left unwritten fails;
 *  - lengths 1, 63, 64, 65, 100, 300 (around and off the chunk of 64), varlen
 *    batches of uneven documents and one of 1500 (the table of chunks is built
 *    in rounds of 1024), groups G = 1 and 2, small heads (P 8, N 16), sizes
 *    no multiple of 8 (P 12, N 20), Mamba2-340M's head (P 64, N 128) on 4 heads
 *    at 2048 tokens and varlen, mild and strong decays (Δ·A from about −0.005
 *    to −0.4 per token, and from −0.4 to −16);
 *  - the backward run twice gives the same bits; a forward with y NULL makes
 *    the same checkpoints;
 *  - generation's step (mamba2_ssd_step_cuda against mamba2_ssd_step_cpu):
 *    several positions in a row, each side carrying its own fp32 state from
 *    the same random one (never 0), y poisoned before each step; y within
 *    1e-2 at every step, the final states within 1e-3 (fp32 on both sides, so
 *    only the order of the sums differs); one sequence and several, heads
 *    whose rows and columns fill no whole warp or block (P 12 and 36, N 20
 *    and 72), two groups, Mamba2-340M's heads (H 32, P 64, N 128) at batch 1
 *    and 16.
 * `test_mamba2_ssd_cuda --bench` times forward and backward at Mamba2-340M's
 * layer instead (B 8, T 2048, H 32, P 64, N 128, G 1; cudaEvent), and its
 * generation step at batch 1 and 16.
 * Without CUDA in the build, or without a usable GPU, it prints
 * "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <math.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "mamba2.h"
#include "ssd_cuda.h"
#include "testing.h"
#include "cuda_testing.h"

typedef struct inputs {
    int n;
    size_t nx, nbc, nH;
    float *x, *delta, *B, *C, *dy;
    float *A_log, *D; /* [H] */
} inputs;

/* n bf16 values uniform in ±[0.05, hi): never 0, so no term drops out */
static float *random_nonzero(size_t n, float hi)
{
    float *v = testing_random(n, 0.05f, hi);
    for (size_t i = 0; i < n; i++)
        v[i] = testing_round_bf16(testing_uniform() < 0.5 ? -v[i] : v[i]);
    return v;
}

/* Δ uniform in [dt_lo, dt_hi), A = −exp(A_log) uniform in −[a_lo, a_hi) */
static inputs inputs_make(const mamba2_ssd_dims *d, float dt_lo, float dt_hi, float a_lo,
                          float a_hi)
{
    inputs in;
    in.n = d->cu_seqlens[d->n_seqs];
    in.nx = (size_t)in.n * d->H * d->P;
    in.nbc = (size_t)in.n * d->G * d->N;
    in.nH = (size_t)in.n * d->H;
    in.x = random_nonzero(in.nx, 1);
    in.dy = random_nonzero(in.nx, 1);
    in.B = random_nonzero(in.nbc, 1);
    in.C = random_nonzero(in.nbc, 1);
    in.delta = testing_random(in.nH, dt_lo, dt_hi);
    in.A_log = testing_random(d->H, a_lo, a_hi);
    in.D = testing_random_bf16(d->H, 0.5f, 1.5f);
    for (int h = 0; h < d->H; h++)
        in.A_log[h] = testing_round_bf16(logf(in.A_log[h]));
    return in;
}

static void inputs_free(inputs *in)
{
    free(in->x), free(in->dy), free(in->B), free(in->C), free(in->delta), free(in->A_log),
        free(in->D);
}

/* the CPU's: y, checkpoints, and dx, ddelta, dB, dC, dA_log, dD */
typedef struct cpu_out {
    float *y, *ck;
    mamba2_ssd_grads g;
} cpu_out;

static cpu_out run_cpu(const inputs *in, const mamba2_ssd_dims *d, size_t ck_floats)
{
    int workers = mamba2_ssd_max_workers();
    float *work = malloc((size_t)workers * mamba2_ssd_work_floats(d->P, d->N) * sizeof *work);
    float *scratch = malloc(mamba2_ssd_scratch_floats(in->n, d->H, d->N) * sizeof *scratch + 1);
    cpu_out r;
    r.y = malloc(in->nx * sizeof *r.y);
    r.ck = calloc(ck_floats, sizeof *r.ck);
    r.g.dx = malloc(in->nx * sizeof(float));
    r.g.ddelta = malloc(in->nH * sizeof(float));
    r.g.dB = malloc(in->nbc * sizeof(float));
    r.g.dC = malloc(in->nbc * sizeof(float));
    r.g.dA_log = calloc(d->H, sizeof(float));
    r.g.dD = calloc(d->H, sizeof(float));
    mamba2_ssd_forward_cpu(r.y, r.ck, in->x, in->delta, in->A_log, in->B, in->C, in->D, d, work,
                           workers);
    mamba2_ssd_backward_cpu(&r.g, in->dy, in->x, in->delta, in->A_log, in->B, in->C, in->D, r.ck,
                            d, work, workers, scratch);
    free(work), free(scratch);
    return r;
}

static void cpu_out_free(cpu_out *r)
{
    free(r->y), free(r->ck), free(r->g.dx), free(r->g.ddelta), free(r->g.dB), free(r->g.dC),
        free(r->g.dA_log), free(r->g.dD);
}

/* the inputs on the device */
typedef struct dev_in {
    void *x, *dy, *B, *C, *A_log, *D;
    float *delta, *work;
} dev_in;

static dev_in dev_in_make(const inputs *in, const mamba2_ssd_dims *d)
{
    dev_in g = {acts_to_device(in->x, in->nx), acts_to_device(in->dy, in->nx),
                acts_to_device(in->B, in->nbc), acts_to_device(in->C, in->nbc),
                acts_to_device(in->A_log, d->H), acts_to_device(in->D, d->H),
                floats_to_device(in->delta, in->nH),
                dev_alloc(mamba2_ssd_work_floats_cuda(in->n, d->H, d->P, d->N, d->G) *
                          sizeof(float))};
    return g;
}

static void dev_in_free(dev_in *g)
{
    void *bufs[] = {g->x, g->dy, g->B, g->C, g->A_log, g->D, g->delta, g->work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
}

/* n floats of zeros on the device (as many bf16 zeros and more), as the
 * CPU's calloc: varlen leaves slots unused */
static float *dev_zeros(size_t n)
{
    float *z = calloc(n ? n : 1, sizeof *z);
    float *p = floats_to_device(z, n ? n : 1);
    free(z);
    return p;
}

/* the gradients on the device: the written ones poisoned, the added ones pre-filled */
static mamba2_ssd_grads_cuda grads_make(const inputs *in, const mamba2_ssd_dims *d,
                                        const float *pre_dA, const float *pre_dD)
{
    mamba2_ssd_grads_cuda g;
    size_t act = dev->act_bytes;
    g.dx = dev_poisoned(in->nx * act);
    g.dB = dev_poisoned(in->nbc * act);
    g.dC = dev_poisoned(in->nbc * act);
    g.ddelta = dev_poisoned(in->nH * sizeof(float));
    g.dA_log = floats_to_device(pre_dA, d->H);
    g.dD = floats_to_device(pre_dD, d->H);
    return g;
}

static void grads_free(mamba2_ssd_grads_cuda *g)
{
    void *bufs[] = {g->dx, g->dB, g->dC, g->ddelta, g->dA_log, g->dD};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
}

/* every gradient on the host, in one array: dx, ddelta, dB, dC, dA_log, dD */
static float *grads_to_host(const mamba2_ssd_grads_cuda *g, const inputs *in, int H)
{
    size_t total = in->nx + in->nH + 2 * in->nbc + 2 * (size_t)H, o = 0;
    float *all = malloc(total * sizeof *all), *part;
    part = acts_to_host(g->dx, in->nx), memcpy(all + o, part, in->nx * 4), o += in->nx, free(part);
    part = floats_to_host(g->ddelta, in->nH), memcpy(all + o, part, in->nH * 4), o += in->nH, free(part);
    part = acts_to_host(g->dB, in->nbc), memcpy(all + o, part, in->nbc * 4), o += in->nbc, free(part);
    part = acts_to_host(g->dC, in->nbc), memcpy(all + o, part, in->nbc * 4), o += in->nbc, free(part);
    part = floats_to_host(g->dA_log, H), memcpy(all + o, part, H * 4), o += H, free(part);
    part = floats_to_host(g->dD, H), memcpy(all + o, part, H * 4), free(part);
    return all;
}

static void test_case(const char *name, int H, int P, int N, int G, const int32_t *cu, int n_seqs,
                      int strong, int extra_checks)
{
    int n = cu[n_seqs];
    char shape[112];
    snprintf(shape, sizeof shape, "%s H=%d P=%d N=%d G=%d n=%d %s", name, H, P, N, G, n,
             strong ? "strong" : "mild");
    mamba2_ssd_dims d = {cu, n_seqs, H, P, N, G, NULL};
    inputs in = strong ? inputs_make(&d, 0.1f, 1.0f, 4, 16) : inputs_make(&d, 0.005f, 0.1f, 1, 4);
    size_t ck_floats = mamba2_ssd_checkpoint_floats(n, H, P, N), ck_count = ck_floats ? ck_floats : 1;
    cpu_out want = run_cpu(&in, &d, ck_floats + 1);
    float *pre_dA = prefill_like(want.g.dA_log, H), *pre_dD = prefill_like(want.g.dD, H);

    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    d.cu_seqlens_backend = cu_dev;
    dev_in g = dev_in_make(&in, &d);
    void *y = dev_poisoned(in.nx * dev->act_bytes);
    void *ck = dev_zeros(ck_count); /* bf16 values */
    mamba2_ssd_grads_cuda gr = grads_make(&in, &d, pre_dA, pre_dD);
    mamba2_ssd_forward_cuda(y, ck, g.x, g.delta, g.A_log, g.B, g.C, g.D, &d, g.work);
    mamba2_ssd_backward_cuda(&gr, g.dy, g.x, g.delta, g.A_log, g.B, g.C, g.D, ck, &d, g.work);
    cudaError_t err = cudaDeviceSynchronize();
    CHECK(err == cudaSuccess, "%s: CUDA error %s", shape, cudaGetErrorString(err));

    compare("y", shape, acts_to_host(y, in.nx), want.y, in.nx, TOL_BF16);
    float *ck_host = acts_to_host(ck, ck_count);
    if (ck_floats)
        report("checkpoints", shape, testing_rel_error(ck_host, want.ck, ck_floats), TOL_BF16, "");
    float *got = grads_to_host(&gr, &in, H);
    const float *wants[4] = {want.g.dx, want.g.ddelta, want.g.dB, want.g.dC};
    const size_t sizes[4] = {in.nx, in.nH, in.nbc, in.nbc};
    static const char *const names[4] = {"dx", "ddelta", "dB", "dC"};
    size_t o = 0;
    for (int i = 0; i < 4; i++) {
        report(names[i], shape, testing_rel_error(got + o, wants[i], sizes[i]), TOL_BF16, "");
        o += sizes[i];
    }
    compare_added("dA_log", shape, testing_copy(got + o, H), want.g.dA_log, pre_dA, H, TOL_BF16);
    compare_added("dD", shape, testing_copy(got + o + H, H), want.g.dD, pre_dD, H, TOL_BF16);

    if (extra_checks) {
        /* the same bits again, into buffers of other garbage and the same prefill */
        mamba2_ssd_grads_cuda again = grads_make(&in, &d, pre_dA, pre_dD);
        mamba2_ssd_backward_cuda(&again, g.dy, g.x, g.delta, g.A_log, g.B, g.C, g.D, ck, &d, g.work);
        float *got2 = grads_to_host(&again, &in, H);
        size_t total = o + 2 * (size_t)H;
        int same = memcmp(got, got2, total * sizeof *got) == 0;
        printf("%-24s %-44s %s\n", "backward again", shape, same ? "same bits" : "DIFFERENT");
        CHECK(same, "%s: the backward is not deterministic", shape);
        free(got2);
        grads_free(&again);
        /* the forward again, into other buffers */
        void *y2 = dev_poisoned(in.nx * dev->act_bytes), *ck2 = dev_zeros(ck_count);
        mamba2_ssd_forward_cuda(y2, ck2, g.x, g.delta, g.A_log, g.B, g.C, g.D, &d, g.work);
        float *y_host = acts_to_host(y, in.nx), *y2_host = acts_to_host(y2, in.nx);
        float *ck2_host = acts_to_host(ck2, ck_count);
        same = memcmp(ck_host, ck2_host, ck_count * sizeof(float)) == 0 &&
               memcmp(y_host, y2_host, in.nx * sizeof(float)) == 0;
        printf("%-24s %-44s %s\n", "forward again", shape, same ? "same bits" : "DIFFERENT");
        CHECK(same, "%s: the forward is not deterministic", shape);
        free(y_host), free(y2_host), free(ck2_host);
        dev->free(y2), dev->free(ck2);
    }

    free(got), free(ck_host), free(pre_dA), free(pre_dD);
    grads_free(&gr);
    dev->free(y), dev->free(ck), dev->free(cu_dev);
    dev_in_free(&g);
    cpu_out_free(&want);
    inputs_free(&in);
}

static void test_T(int H, int P, int N, int G, int T, int strong)
{
    int32_t cu[2] = {0, T};
    test_case("T", H, P, N, G, cu, 1, strong, 0);
}

static void test_all(void)
{
    /* small heads at lengths around the chunk of 64 */
    const int lengths[] = {1, 63, 64, 65, 100, 300};
    for (int i = 0; i < 6; i++)
        test_T(2, 8, 16, 1, lengths[i], 0);
    test_T(2, 8, 16, 1, 300, 1);
    /* two groups of two heads */
    test_T(4, 8, 16, 2, 200, 0);
    test_T(4, 8, 16, 2, 200, 1);
    /* groups of more heads than a chunk_output block walks (8), not a multiple of it */
    test_T(20, 8, 16, 2, 130, 0);
    test_T(9, 12, 20, 1, 100, 1);
    /* no multiple of 8 (one value per access), no multiple of 16 (padded products) */
    test_T(3, 12, 20, 1, 130, 0);
    test_T(2, 40, 72, 2, 150, 0);
    /* documents of 1, 63, 1, 64, 71 and 100 tokens: chunk starts off the grid of 64 */
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_case("varlen", 2, 8, 16, 1, uneven, 6, 0, 1);
    test_case("varlen", 4, 32, 64, 2, uneven, 6, 0, 0);
    test_case("varlen", 4, 32, 64, 2, uneven, 6, 1, 0);
    /* 1500 documents of 1 to 70 tokens: the table of chunks is built in rounds of 1024 */
    enum { MANY = 1500 };
    static int32_t many[MANY + 1];
    for (int i = 0; i < MANY; i++)
        many[i + 1] = many[i] + 1 + (int)(testing_uniform() * 70);
    test_case("many documents", 1, 8, 16, 1, many, MANY, 0, 0);
    /* Mamba2-340M's head on 4 heads of one group */
    test_T(4, 64, 128, 1, 2048, 0);
    static const int32_t two_rows[] = {0, 130, 2048, 2113, 4096};
    test_case("varlen", 4, 64, 128, 1, two_rows, 4, 0, 1);
    test_case("varlen", 4, 64, 128, 1, two_rows, 4, 1, 0);
    test_case("varlen", 4, 64, 128, 2, two_rows, 4, 0, 0);
}

/* ==================================================================== generation */

/* fp32 states are compared tighter than bf16 outputs: both sides compute
 * them in fp32 from the same values, in sums of another order */
#define TOL_STATE 1e-3

/* the states the steps start from: random, never 0 */
static float *random_states(size_t n)
{
    float *s = testing_random(n, 0.05f, 1);
    for (size_t i = 0; i < n; i++)
        s[i] = testing_uniform() < 0.5 ? -s[i] : s[i];
    return s;
}

/* the activation `index` values past p on the device */
static void *dev_act_at(void *p, size_t index) { return (char *)p + index * dev->act_bytes; }

/* `steps` positions of n_seqs sequences through mamba2_ssd_step_cpu and
 * mamba2_ssd_step_cuda, each carrying its own state: y after every step (the
 * worst step reported) and the final states. The steps' inputs are the rows
 * of one draw of steps·n_seqs tokens, position s the rows from s·n_seqs. */
static void test_step(int n_seqs, int H, int P, int N, int G, int steps, int strong)
{
    char shape[112];
    snprintf(shape, sizeof shape, "B=%d H=%d P=%d N=%d G=%d %d steps %s", n_seqs, H, P, N, G,
             steps, strong ? "strong" : "mild");
    int32_t all[2] = {0, steps * n_seqs};
    mamba2_ssd_dims d = {all, 1, H, P, N, G, NULL};
    inputs in = strong ? inputs_make(&d, 0.1f, 1.0f, 4, 16) : inputs_make(&d, 0.005f, 0.1f, 1, 4);
    size_t nx = (size_t)n_seqs * H * P, nbc = (size_t)n_seqs * G * N, nH = (size_t)n_seqs * H;
    size_t ns = nx * N;
    float *states = random_states(ns), *y = malloc(nx * sizeof *y);
    float *states_d = floats_to_device(states, ns);
    dev_in g = dev_in_make(&in, &d);
    double worst = 0;
    int worst_step = 0;
    for (int s = 0; s < steps; s++) {
        size_t xo = s * nx, bo = s * nbc, ho = s * nH;
        mamba2_ssd_step_cpu(y, states, in.x + xo, in.delta + ho, in.A_log, in.B + bo, in.C + bo,
                            in.D, &d, n_seqs);
        void *y_d = dev_poisoned(nx * dev->act_bytes);
        mamba2_ssd_step_cuda(y_d, states_d, dev_act_at(g.x, xo), g.delta + ho, g.A_log,
                             dev_act_at(g.B, bo), dev_act_at(g.C, bo), g.D, &d, n_seqs);
        float *got = acts_to_host(y_d, nx);
        double err = testing_rel_error(got, y, nx);
        if (!isnan(worst) && !(err <= worst)) /* a NaN is the worst, the first one kept */
            worst = err, worst_step = s;
        free(got);
        dev->free(y_d);
    }
    cudaError_t err = cudaDeviceSynchronize();
    CHECK(err == cudaSuccess, "%s: CUDA error %s", shape, cudaGetErrorString(err));
    char note[48];
    snprintf(note, sizeof note, " (worst, step %d)", worst_step);
    report("step y", shape, worst, TOL_BF16, note);
    compare("step states", shape, floats_to_host(states_d, ns), states, ns, TOL_STATE);
    free(states), free(y);
    dev->free(states_d);
    dev_in_free(&g);
    inputs_free(&in);
}

static void test_steps(void)
{
    test_step(1, 2, 8, 16, 1, 5, 0);
    test_step(3, 4, 12, 20, 2, 7, 1);    /* rows and columns short of a warp and a block */
    test_step(2, 4, 36, 72, 2, 6, 0);    /* a block's rows cut at P, columns over two passes */
    test_step(1, 32, 64, 128, 1, 4, 0);  /* Mamba2-340M, batch 1 */
    test_step(16, 32, 64, 128, 1, 3, 1); /* and batch 16 */
}

/* ==================================================================== --bench */

/* mean time of forward and backward over B rows of T tokens */
static void bench(int H, int P, int N, int G, int B, int T, int reps)
{
    int n = B * T;
    int32_t *cu = malloc((B + 1) * sizeof *cu);
    for (int b = 0; b <= B; b++)
        cu[b] = b * T;
    mamba2_ssd_dims d = {cu, B, H, P, N, G, NULL};
    int32_t *cu_dev = ints_to_device(cu, (size_t)B + 1);
    d.cu_seqlens_backend = cu_dev;
    inputs in = inputs_make(&d, 0.005f, 0.1f, 1, 4);
    dev_in g = dev_in_make(&in, &d);
    size_t act = dev->act_bytes, ck_floats = mamba2_ssd_checkpoint_floats(n, H, P, N);
    void *y = dev_alloc(in.nx * act);
    void *ck = dev_zeros(ck_floats);
    float *zeros = calloc(H, sizeof *zeros);
    mamba2_ssd_grads_cuda gr = grads_make(&in, &d, zeros, zeros);
    cudaEvent_t ev[3];
    for (int i = 0; i < 3; i++)
        cudaEventCreate(&ev[i]);
    float ms[2] = {0, 0};
    for (int r = -2; r < reps; r++) { /* r < 0 warms up */
        cudaEventRecord(ev[0], 0);
        mamba2_ssd_forward_cuda(y, ck, g.x, g.delta, g.A_log, g.B, g.C, g.D, &d, g.work);
        cudaEventRecord(ev[1], 0);
        mamba2_ssd_backward_cuda(&gr, g.dy, g.x, g.delta, g.A_log, g.B, g.C, g.D, ck, &d, g.work);
        cudaEventRecord(ev[2], 0);
        cudaEventSynchronize(ev[2]);
        if (r >= 0)
            for (int i = 0; i < 2; i++) {
                float t;
                cudaEventElapsedTime(&t, ev[i], ev[i + 1]);
                ms[i] += t;
            }
    }
    cudaError_t err = cudaGetLastError();
    CHECK(err == cudaSuccess, "bench: CUDA error %s", cudaGetErrorString(err));
    double fwd = ms[0] / reps, bwd = ms[1] / reps;
    printf("ssd H=%d P=%d N=%d G=%d B=%d T=%d: forward %.3f ms, backward %.3f ms, together %.3f ms "
           "(x48 layers: %.1f ms; mean of %d; checkpoints %.0f MiB, work %.0f MiB)\n",
           H, P, N, G, B, T, fwd, bwd, fwd + bwd, 48 * (fwd + bwd), reps,
           ck_floats * act / 1048576.0,
           mamba2_ssd_work_floats_cuda(n, H, P, N, G) * 4.0 / 1048576);
    for (int i = 0; i < 3; i++)
        cudaEventDestroy(ev[i]);
    grads_free(&gr);
    dev->free(y), dev->free(ck), dev->free(cu_dev);
    dev_in_free(&g);
    inputs_free(&in);
    free(zeros), free(cu);
}

/* mean time of one generation step of B sequences, back to back */
static void bench_step(int H, int P, int N, int G, int B, int reps)
{
    int32_t cu[2] = {0, B};
    mamba2_ssd_dims d = {cu, 1, H, P, N, G, NULL};
    inputs in = inputs_make(&d, 0.005f, 0.1f, 1, 4);
    dev_in g = dev_in_make(&in, &d);
    size_t ns = in.nx * N;
    float *states = random_states(ns), *states_d = floats_to_device(states, ns);
    void *y = dev_alloc(in.nx * dev->act_bytes);
    cudaEvent_t ev[2];
    for (int i = 0; i < 2; i++)
        cudaEventCreate(&ev[i]);
    for (int r = -2; r < reps; r++) { /* r < 0 warms up */
        if (r == 0)
            cudaEventRecord(ev[0], 0);
        mamba2_ssd_step_cuda(y, states_d, g.x, g.delta, g.A_log, g.B, g.C, g.D, &d, B);
    }
    cudaEventRecord(ev[1], 0);
    cudaEventSynchronize(ev[1]);
    float ms;
    cudaEventElapsedTime(&ms, ev[0], ev[1]);
    cudaError_t err = cudaGetLastError();
    CHECK(err == cudaSuccess, "bench step: CUDA error %s", cudaGetErrorString(err));
    double us = 1000.0 * ms / reps;
    printf("ssd step H=%d P=%d N=%d G=%d B=%d: %.2f us (x48 layers: %.0f us; mean of %d; states "
           "%.1f MiB)\n", H, P, N, G, B, us, 48 * us, reps, ns * 4.0 / 1048576);
    for (int i = 0; i < 2; i++)
        cudaEventDestroy(ev[i]);
    dev->free(states_d), dev->free(y);
    dev_in_free(&g);
    inputs_free(&in);
    free(states);
}

int main(int argc, char **argv)
{
    if (!cuda_testing_device())
        return 77;
    testing_seed(20251203);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        bench(32, 64, 128, 1, 8, 2048, 20);
        bench_step(32, 64, 128, 1, 1, 200);
        bench_step(32, 64, 128, 1, 16, 200);
        return testing_result("test_mamba2_ssd_cuda --bench");
    }
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g (the step's fp32 "
           "states %g)\n", TOL_BF16, TOL_STATE);
    test_all();
    test_steps();
    return testing_result("test_mamba2_ssd_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
