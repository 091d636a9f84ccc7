/* GSA's first pass on the GPU (gsa_slots_chunk.cu, gsa_cuda.h) against its
 * CPU reference (gsa_slots_cpu.c, gsa.h):
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly (q, k = swish of uniform values, f = logsigmoid(x)/normalizer,
 *    s = 1 − e^f as GSA makes it or uniform in (0, 1), dok uniform; none 0),
 *    fp32 for the CPU, cast to bf16 for the GPU;
 *  - error measure ‖gpu − cpu‖ / ‖cpu‖ over each whole output: under 1e-2 for
 *    what passes through bf16 (ok, dq, dk, ds, df); the checkpoints, which
 *    the GPU carries in fp32 (in chunks) and stores in bf16, under 2e-3 from
 *    the CPU's rounded to bf16 (TOL_CHECKPOINTS: a rounding that falls the
 *    other way among a small case's few values moves it by up to 8e-4; a
 *    state carried in bf16 would drift by a rounding, about 4e-3, at each of
 *    a long sequence's chunks);
 *  - ok is poisoned with NaN first, the gradients pre-filled with values of
 *    their size, so that a value left unwritten, or added to, fails;
 *  - lengths 1, 63, 64, 65, 200, varlen batches of uneven documents and one
 *    of 1500 (the table of chunks is built in rounds of 1024), tiny
 *    heads (dk 8, M 4), sizes no multiple of 8 or 16 (dk 20, M 7; dk 40, M 12),
 *    two slot tiles (M 80), a partial key tile (dk 72), GSA-340M's head (H 4,
 *    dk 256, M 64) at 2048 tokens and varlen, GSA-1B's (dk 512), mild and
 *    strong gates, scales 1 (GSA's), 0.5 and 0.3;
 *  - the backward run twice gives the same bits; a forward with ok NULL makes
 *    the same checkpoints;
 *  - generation's step (gsa_slot_step_cuda), several positions in a row from
 *    the same random fp32 states on both sides: each position's ok under
 *    1e-2, the states carried to the end under 1e-4, for 1, 2, 3 and 16
 *    sequences at GSA-340M's and GSA-1B's heads, odd sizes (dk 10, M 7) and
 *    strong gates.
 * `test_gsa_slots_cuda --bench` times forward and backward at GSA-340M's and
 * GSA-1B's heads over 8 rows of 2048 tokens instead (cudaEvent), and the step
 * at GSA-340M's head for 1 and 16 sequences.
 * Without CUDA in the build, or without a usable GPU, it prints
 * "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <string.h>

#include <cuda_runtime_api.h>

#include "gla.h"
#include "gla_cuda.h"
#include "gsa.h"
#include "gsa_cuda.h"
#include "testing.h"
#include "cuda_testing.h"

typedef struct inputs {
    int n;
    size_t nk, ns;
    float *q, *k, *s, *f, *dok;
} inputs;

static float swish(float x) { return x / (1.0f + expf(-x)); }
static float logsigmoid(float x) { return x >= 0 ? -log1pf(expf(-x)) : x - log1pf(expf(x)); }

/* gates f = logsigmoid(x) / normalizer, x uniform in [x_lo, 4); s tied to f
 * as GSA makes it (1 − e^f) or uniform in (0.02, 1) */
static inputs inputs_make(const gsa_slot_dims *d, float normalizer, float x_lo, int tied)
{
    inputs in;
    in.n = d->cu_seqlens[d->n_seqs];
    in.nk = (size_t)in.n * d->H * d->dk, in.ns = (size_t)in.n * d->H * d->M;
    in.q = testing_random(in.nk, -3, 3);
    in.k = testing_random(in.nk, -3, 3);
    for (size_t i = 0; i < in.nk; i++) {
        in.q[i] = testing_round_bf16(swish(in.q[i]));
        in.k[i] = testing_round_bf16(swish(in.k[i]));
    }
    in.f = testing_random(in.ns, x_lo, 4);
    in.s = testing_random(in.ns, 0.02f, 1);
    for (size_t i = 0; i < in.ns; i++) {
        in.f[i] = testing_round_bf16(logsigmoid(in.f[i]) / normalizer);
        if (tied)
            in.s[i] = 1.0f - expf(in.f[i]);
        in.s[i] = testing_round_bf16(in.s[i]);
    }
    in.dok = testing_random_bf16(in.ns, -1, 1);
    return in;
}

static void inputs_free(inputs *in)
{
    free(in->q), free(in->k), free(in->s), free(in->f), free(in->dok);
}

static size_t grad_size(const inputs *in, int i) { return i < 2 ? in->nk : in->ns; }

/* the CPU's: ok, checkpoints, dq, dk, ds, df */
typedef struct cpu_out {
    float *ok, *ck, *grad[4];
} cpu_out;

static cpu_out run_cpu(const inputs *in, const gsa_slot_dims *d, size_t ck_values)
{
    int workers = gla_recurrence_max_workers();
    float *work = malloc((size_t)workers * gsa_slot_work_floats(d->dk, d->M) * sizeof *work);
    cpu_out r;
    r.ok = malloc(in->ns * sizeof *r.ok);
    r.ck = calloc(ck_values, sizeof *r.ck);
    for (int i = 0; i < 4; i++)
        r.grad[i] = malloc(grad_size(in, i) * sizeof *r.grad[i]);
    gsa_slot_recurrence_forward_cpu(r.ok, r.ck, in->q, in->k, in->s, in->f, d, work, workers);
    gsa_slot_recurrence_backward_cpu(r.grad[0], r.grad[1], r.grad[2], r.grad[3], in->dok, in->q,
                                     in->k, in->s, in->f, r.ck, d, work, workers);
    free(work);
    return r;
}

typedef struct dev_in {
    void *q, *k, *s, *f, *dok;
    float *work;
} dev_in;

static void test_case(const char *name, int H, int dk, int M, float scale, const int32_t *cu,
                      int n_seqs, float normalizer, float x_lo, int tied, int extra_checks)
{
    int n = cu[n_seqs];
    char shape[112];
    snprintf(shape, sizeof shape, "%s H=%d dk=%d M=%d n=%d /%g%s%s", name, H, dk, M, n, normalizer,
             scale != 1.0f ? " scaled" : "", tied ? "" : " free s");
    gsa_slot_dims d = {cu, n_seqs, H, dk, M, scale, NULL};
    inputs in = inputs_make(&d, normalizer, x_lo, tied);
    size_t ck_values = gsa_slot_checkpoint_values(n, H, dk, M) + 1; /* never 0 */
    cpu_out want = run_cpu(&in, &d, ck_values);
    float *pre[4];
    for (int i = 0; i < 4; i++)
        pre[i] = prefill_like(want.grad[i], grad_size(&in, i));

    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    d.cu_seqlens_backend = cu_dev;
    dev_in g = {acts_to_device(in.q, in.nk), acts_to_device(in.k, in.nk),
                acts_to_device(in.s, in.ns), acts_to_device(in.f, in.ns),
                acts_to_device(in.dok, in.ns),
                dev_alloc(gsa_slot_work_floats_cuda(n, H, dk, M) * sizeof(float))};
    void *ok = dev_poisoned(in.ns * dev->act_bytes), *grad[4];
    void *ck = dev_alloc(ck_values * dev->act_bytes); /* zeros, like the CPU's: varlen leaves slots unused */
    for (int i = 0; i < 4; i++)
        grad[i] = acts_to_device(pre[i], grad_size(&in, i));
    gsa_slot_recurrence_forward_cuda(ok, ck, g.q, g.k, g.s, g.f, &d, g.work, 1);
    gsa_slot_recurrence_backward_cuda(grad[0], grad[1], grad[2], grad[3], g.dok, g.q, g.k, g.s,
                                      g.f, ck, &d, g.work, 1);
    CHECK(cudaDeviceSynchronize() == cudaSuccess, "%s: a CUDA error", shape);

    compare("slots ok", shape, acts_to_host(ok, in.ns), want.ok, in.ns, TOL_BF16);
    float *ck_rounded = rounded_bf16(want.ck, ck_values);
    compare("slots checkpoints", shape, acts_to_host(ck, ck_values), ck_rounded, ck_values, TOL_CHECKPOINTS);
    static const char *const names[4] = {"slots dq", "slots dk", "slots ds", "slots df"};
    /* df of a lone token is exactly 0 on the CPU (its gate acts on the state
     * 0) and on the GPU the rounding residue of terms that cancel: its error
     * is measured against the larger of its norm and ds's */
    float *got[4];
    for (int i = 0; i < 4; i++) {
        size_t size = grad_size(&in, i);
        got[i] = acts_to_host(grad[i], size);
        double ref = l2_norm(want.grad[i], size);
        if (i == 3 && l2_norm(want.grad[2], size) > ref)
            ref = l2_norm(want.grad[2], size);
        report(names[i], shape, l2_distance(got[i], want.grad[i], size) / ref, TOL_BF16, "");
    }
    if (extra_checks) {
        /* the same bits again, into buffers of other garbage */
        void *again[4];
        for (int i = 0; i < 4; i++)
            again[i] = acts_to_device(want.grad[i], grad_size(&in, i));
        gsa_slot_recurrence_backward_cuda(again[0], again[1], again[2], again[3], g.dok, g.q, g.k,
                                          g.s, g.f, ck, &d, g.work, 1);
        int same = 1;
        for (int i = 0; i < 4; i++) {
            float *x = acts_to_host(again[i], grad_size(&in, i));
            same &= memcmp(x, got[i], grad_size(&in, i) * sizeof *x) == 0;
            free(x);
            dev->free(again[i]);
        }
        printf("%-24s %-44s %s\n", "slots backward again", shape, same ? "same bits" : "DIFFERENT");
        CHECK(same, "%s: the backward is not deterministic", shape);
        /* the checkpoints alone */
        void *ck2 = dev_alloc(ck_values * dev->act_bytes);
        gsa_slot_recurrence_forward_cuda(NULL, ck2, NULL, g.k, g.s, g.f, &d, g.work, 1);
        compare("slots checkpoints alone", shape, acts_to_host(ck2, ck_values), ck_rounded, ck_values, TOL_CHECKPOINTS);
        dev->free(ck2);
    }

    void *bufs[] = {g.q, g.k, g.s, g.f, g.dok, g.work, ok, ck, cu_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    for (int i = 0; i < 4; i++)
        dev->free(grad[i]), free(got[i]), free(want.grad[i]), free(pre[i]);
    free(want.ok), free(want.ck), free(ck_rounded);
    inputs_free(&in);
}

static void test_T(int H, int dk, int M, float scale, int T, float normalizer, float x_lo, int tied)
{
    int32_t cu[2] = {0, T};
    test_case("T", H, dk, M, scale, cu, 1, normalizer, x_lo, tied, 0);
}

static void test_all(void)
{
    /* tiny heads at lengths around the chunk of 64 */
    const int lengths[] = {1, 63, 64, 65, 200};
    for (int i = 0; i < 5; i++)
        test_T(2, 8, 4, 1.0f, lengths[i], 8, -4, 1);
    test_T(2, 16, 16, 0.5f, 130, 8, -4, 0);
    /* documents of 1, 63, 1, 64, 71 and 100 tokens: chunk starts off the grid of 64 */
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_case("varlen", 2, 8, 4, 1.0f, uneven, 6, 8, -4, 1, 0);
    test_case("varlen", 3, 40, 12, 1.0f, uneven, 6, 16, -4, 1, 0);
    test_case("varlen strong gates", 3, 40, 12, 1.0f, uneven, 6, 4, -12, 0, 0);
    /* 1500 documents of 1 to 70 tokens: the table of chunks is built in rounds of 1024 */
    enum { MANY = 1500 };
    static int32_t many[MANY + 1];
    for (int i = 0; i < MANY; i++)
        many[i + 1] = many[i] + 1 + (int)(testing_uniform() * 70);
    test_case("many documents", 1, 8, 4, 1.0f, many, MANY, 8, -4, 1, 0);
    test_T(1, 20, 7, 0.3f, 150, 8, -4, 0); /* no multiple of 8: one value per access */
    test_T(2, 48, 80, 1.0f, 200, 16, -4, 1); /* two slot tiles */
    test_T(2, 72, 64, 1.0f, 100, 8, -4, 1);  /* a partial key tile */
    /* GSA-340M's head */
    test_T(4, 256, 64, 1.0f, 2048, 16, -4, 1);
    static const int32_t two_rows[] = {0, 130, 2048, 2113, 4096};
    test_case("varlen", 4, 256, 64, 1.0f, two_rows, 4, 8, -4, 1, 1);
    test_case("varlen strong gates", 4, 256, 64, 1.0f, two_rows, 4, 4, -12, 1, 0);
    /* GSA-1B's */
    test_T(2, 512, 64, 1.0f, 300, 16, -4, 1);
}

/* ==================================================================== generation's step */

/* `steps` positions of B sequences, one step each, carrying the states, on
 * both sides from the same random states (a prompt already taken in); the
 * inputs are drawn as above for `steps` rows of B tokens */
static void test_step(int B, int H, int dk, int M, float scale, int steps, float normalizer,
                      float x_lo)
{
    char shape[112];
    snprintf(shape, sizeof shape, "step B=%d H=%d dk=%d M=%d steps=%d /%g%s", B, H, dk, M, steps,
             normalizer, scale != 1.0f ? " scaled" : "");
    int32_t cu[2] = {0, B * steps};
    gsa_slot_dims draw = {cu, 1, H, dk, M, scale, NULL};
    inputs in = inputs_make(&draw, normalizer, x_lo, 1);
    gsa_slot_dims d = {NULL, B, H, dk, M, scale, NULL}; /* the step reads no offsets */
    size_t nk = (size_t)B * H * dk, ns = (size_t)B * H * M, n_states = ns * dk;
    float *states = testing_random(n_states, -2, 2), *ok = malloc(ns * sizeof *ok);
    float *states_d = floats_to_device(states, n_states);
    for (int t = 0; t < steps; t++) {
        const float *q = in.q + t * nk, *k = in.k + t * nk, *s = in.s + t * ns, *f = in.f + t * ns;
        gsa_slot_step_cpu(ok, states, q, k, s, f, &d, B);
        void *q_d = acts_to_device(q, nk), *k_d = acts_to_device(k, nk);
        void *s_d = acts_to_device(s, ns), *f_d = acts_to_device(f, ns);
        void *ok_d = dev_poisoned(ns * dev->act_bytes);
        gsa_slot_step_cuda(ok_d, states_d, q_d, k_d, s_d, f_d, &d, B);
        CHECK(cudaDeviceSynchronize() == cudaSuccess, "%s: a CUDA error", shape);
        compare("step ok", shape, acts_to_host(ok_d, ns), ok, ns, TOL_BF16);
        dev->free(q_d), dev->free(k_d), dev->free(s_d), dev->free(f_d), dev->free(ok_d);
    }
    /* fp32 from the same inputs, whatever the steps' order of sums */
    compare("step states", shape, floats_to_host(states_d, n_states), states, n_states, TOL_FP32);
    dev->free(states_d);
    free(states), free(ok);
    inputs_free(&in);
}

static void test_steps(void)
{
    /* GSA-340M's head (gate_logit_normalizer 4), one sequence and 16 */
    test_step(1, 4, 256, 64, 1.0f, 6, 4, -4);
    test_step(16, 4, 256, 64, 1.0f, 4, 4, -4);
    /* dk no multiple of 4 (one value per access), rows no multiple of a block's */
    test_step(3, 2, 10, 7, 0.5f, 5, 8, -4);
    test_step(2, 3, 20, 12, 1.0f, 5, 4, -12); /* strong gates */
    test_step(2, 2, 512, 64, 1.0f, 3, 16, -4); /* GSA-1B's head */
}

/* ==================================================================== --bench */

/* mean time of forward and backward over B rows of T tokens, with the walks
 * (GLA's: the checkpoints, and the adjoint states) timed alone as well */
static void bench(int H, int dk, int M, int B, int T, int reps)
{
    int n = B * T;
    int32_t *cu = malloc((B + 1) * sizeof *cu);
    for (int b = 0; b <= B; b++)
        cu[b] = b * T;
    gsa_slot_dims d = {cu, B, H, dk, M, 1.0f, NULL};
    int32_t *cu_dev = ints_to_device(cu, (size_t)B + 1);
    d.cu_seqlens_backend = cu_dev;
    inputs in = inputs_make(&d, 16, -4, 1);
    size_t act = dev->act_bytes;
    void *q = acts_to_device(in.q, in.nk), *k = acts_to_device(in.k, in.nk);
    void *s = acts_to_device(in.s, in.ns), *f = acts_to_device(in.f, in.ns);
    void *dok = acts_to_device(in.dok, in.ns), *ok = dev_alloc(in.ns * act);
    void *dq = dev_alloc(in.nk * act), *dkk = dev_alloc(in.nk * act);
    void *ds = dev_alloc(in.ns * act), *df = dev_alloc(in.ns * act);
    size_t ck_values = gsa_slot_checkpoint_values(n, H, dk, M);
    size_t work_floats = gsa_slot_work_floats_cuda(n, H, dk, M);
    void *ck = dev_alloc(ck_values * act);
    float *work = dev_alloc(work_floats * sizeof(float));
    gla_recurrence_dims g = {cu, B, H, M, dk, 1.0f, cu_dev, 0, 0, 0, NULL, NULL, 0};
    cudaEvent_t ev[5];
    for (int i = 0; i < 5; i++)
        cudaEventCreate(&ev[i]);
    float ms[4] = {0, 0, 0, 0};
    for (int r = -2; r < reps; r++) { /* r < 0 warms up */
        cudaEventRecord(ev[0], 0);
        gsa_slot_recurrence_forward_cuda(ok, ck, q, k, s, f, &d, work, 1);
        cudaEventRecord(ev[1], 0);
        gsa_slot_recurrence_backward_cuda(dq, dkk, ds, df, dok, q, k, s, f, ck, &d, work, 1);
        cudaEventRecord(ev[2], 0);
        gla_recurrence_forward_cuda(NULL, ck, NULL, s, k, f, &g, work, 1);
        cudaEventRecord(ev[3], 0);
        gla_recurrence_state_grads_cuda(dok, q, f, &g, work);
        cudaEventRecord(ev[4], 0);
        cudaEventSynchronize(ev[4]);
        if (r >= 0)
            for (int i = 0; i < 4; i++) {
                float t;
                cudaEventElapsedTime(&t, ev[i], ev[i + 1]);
                ms[i] += t;
            }
    }
    CHECK(cudaGetLastError() == cudaSuccess, "bench: a CUDA error");
    printf("slots H=%d dk=%d M=%d B=%d T=%d: forward %.3f ms (walk %.3f), backward %.3f ms "
           "(walk %.3f), together %.3f ms (mean of %d; checkpoints %.0f MiB, work %.0f MiB)\n",
           H, dk, M, B, T, ms[0] / reps, ms[2] / reps, ms[1] / reps, ms[3] / reps,
           (ms[0] + ms[1]) / reps, reps, (double)ck_values * act / 1048576, work_floats * 4.0 / 1048576);
    for (int i = 0; i < 5; i++)
        cudaEventDestroy(ev[i]);
    void *bufs[] = {q, k, s, f, dok, ok, dq, dkk, ds, df, ck, work, cu_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    inputs_free(&in);
    free(cu);
}

/* mean time of one step of B sequences, from states of random values, and the
 * bandwidth of its reads and writes of the states (the rest is small) */
static void bench_step(int H, int dk, int M, int B, int reps)
{
    gsa_slot_dims d = {NULL, B, H, dk, M, 1.0f, NULL};
    size_t nk = (size_t)B * H * dk, ns = (size_t)B * H * M, n_states = ns * dk;
    float *host = testing_random(n_states, -1, 1), *states = floats_to_device(host, n_states);
    float *qk = testing_random_bf16(nk, 0.01f, 1), *sf = testing_random_bf16(ns, 0.01f, 0.5f);
    void *q = acts_to_device(qk, nk), *k = acts_to_device(qk, nk);
    void *s = acts_to_device(sf, ns), *f = acts_to_device(sf, ns);
    void *ok = dev_alloc(ns * dev->act_bytes);
    cudaEvent_t ev[2];
    cudaEventCreate(&ev[0]), cudaEventCreate(&ev[1]);
    gsa_slot_step_cuda(ok, states, q, k, s, f, &d, B); /* warm-up */
    cudaEventRecord(ev[0], 0);
    for (int r = 0; r < reps; r++)
        gsa_slot_step_cuda(ok, states, q, k, s, f, &d, B);
    cudaEventRecord(ev[1], 0);
    cudaEventSynchronize(ev[1]);
    float ms;
    cudaEventElapsedTime(&ms, ev[0], ev[1]);
    CHECK(cudaGetLastError() == cudaSuccess, "bench step: a CUDA error");
    double us = 1e3 * ms / reps;
    printf("step H=%d dk=%d M=%d B=%d: %.2f us a step (mean of %d), states %.0f GB/s\n", H, dk, M,
           B, us, reps, 2.0 * n_states * sizeof(float) / (us * 1e3));
    cudaEventDestroy(ev[0]), cudaEventDestroy(ev[1]);
    void *bufs[] = {states, q, k, s, f, ok};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    free(host), free(qk), free(sf);
}

int main(int argc, char **argv)
{
    if (!cuda_testing_device())
        return 77;
    testing_seed(20250611);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        bench(4, 256, 64, 8, 2048, 20);
        bench(4, 512, 64, 8, 2048, 20);
        bench_step(4, 256, 64, 1, 200);
        bench_step(4, 256, 64, 16, 200);
        return testing_result("test_gsa_slots_cuda --bench");
    }
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g through bf16, "
           "%g where fp32 throughout\n",
           TOL_BF16, TOL_FP32);
    test_all();
    test_steps();
    return testing_result("test_gsa_slots_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
