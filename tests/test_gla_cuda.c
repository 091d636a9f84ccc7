/* GLA's CUDA kernels (plugins/gla/gla_cuda.h) against their CPU references,
 * and the whole GLA model on the CUDA op table against the same model on the
 * CPU one:
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly, fp32 for the CPU, cast to bf16 (to_act) for the GPU; bf16
 *    outputs come back through from_act;
 *  - error measure: ‖gpu − cpu‖ / ‖cpu‖ over each whole output or gradient,
 *    under 1e-2 where the GPU's value passes through bf16 (every activation and
 *    activation gradient), under 1e-4 where its whole path is fp32 (rstd, dw);
 *    the checkpoints, which the GPU carries in fp32 and stores in bf16, under
 *    2e-3 from the CPU's rounded to bf16 (TOL_CHECKPOINTS: a rounding that
 *    falls the other way among a tiny case's few values moves it by up to
 *    8e-4; a state carried in bf16 would drift by a rounding, about 4e-3, at
 *    each of a long sequence's chunks; the GPU computes the recurrence in
 *    chunks, the CPU token by token);
 *  - forward outputs are poisoned with NaN first, so a value left unwritten
 *    fails; gradients are pre-filled with values of the size of what the
 *    kernels compute: the gradients the kernels write (activations') are then
 *    compared with the CPU's, so adding fails, and those they add into
 *    (parameters': the gate norm's dw) with prefill + what the CPU added, so
 *    overwriting fails;
 *  - the recurrence at sequence lengths 1, 65, 100 and 2048, varlen batches of
 *    uneven documents, tiny heads (H=2, dk=4, dv=8), odd ones (H=3, dk=40,
 *    dv=72), fla's 340M head (H=4, dk=128, dv=256), mild and strong gates;
 *    each case twice: alone, and as the model calls it ("kept": the
 *    forward's scores kept for the backward, which makes the checkpoints
 *    again over NaN);
 *  - generation's recurrence step, several in a row carrying the states, at
 *    tiny, odd and the 340M heads, for one and 16 sequences; the model's
 *    generation on CUDA against its CUDA forward (test_decode_on_gpu);
 *  - q, k, v and g as column blocks of one buffer (a joined projection's
 *    output, rows a stride apart): the recurrence, its step and the gated
 *    norm give the packed layout's values bit for bit;
 *  - the model: the same (bf16-exact) weights on both backends, a batch with
 *    and without cu_seqlens: the loss, the logits and every parameter's
 *    gradient (see model_case for its tolerances).
 * `test_gla_cuda --bench` times the recurrence at the 340M shape instead
 * (B=8, T=2048), and the gated norm at its rows there (B·T·H = 65536 of 256).
 * Without CUDA in the build, or without a usable GPU, it prints
 * "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <flame/plugin.h>

#include "gla_kernels.h"
#include "plugin_cuda_testing.h"
#include "testing.h"

static const gla_kernels *cpu_k = &gla_kernels_cpu, *gpu_k = &gla_kernels_cuda;

/* ==================================================================== the recurrence */

typedef struct rec_inputs {
    int n;
    size_t nk, nv;
    float *q, *k, *v, *gk, *dout;
} rec_inputs;

static rec_inputs rec_inputs_make(const gla_recurrence_dims *d, float gk_lo)
{
    rec_inputs in;
    in.n = d->cu_seqlens[d->n_seqs];
    in.nk = (size_t)in.n * d->H * d->dk, in.nv = (size_t)in.n * d->H * d->dv;
    in.q = testing_random_bf16(in.nk, -1, 1);
    in.k = testing_random_bf16(in.nk, -1, 1);
    in.v = testing_random_bf16(in.nv, -1, 1);
    in.gk = testing_random_bf16(in.nk, gk_lo, 0); /* log-sigmoids lie below 0 */
    in.dout = testing_random_bf16(in.nv, -1, 1);
    return in;
}

static void rec_inputs_free(rec_inputs *in)
{
    free(in->q), free(in->k), free(in->v), free(in->gk), free(in->dout);
}

static size_t grad_size(const rec_inputs *in, int i) { return i == 2 ? in->nv : in->nk; }

/* the CPU's results: o, checkpoints, and what the backward adds to dq, dk, dv, dgk */
typedef struct rec_out {
    float *o, *ck, *grad[4];
} rec_out;

static rec_out run_cpu(const rec_inputs *in, const gla_recurrence_dims *d, size_t ck_values)
{
    int workers = cpu_k->recurrence_max_workers();
    float *work = malloc((size_t)workers * cpu_k->recurrence_work_floats(in->n, d->H, d->dk, d->dv) *
                         sizeof *work);
    rec_out r;
    r.o = malloc(in->nv * sizeof *r.o);
    r.ck = calloc(ck_values, sizeof *r.ck);
    for (int i = 0; i < 4; i++)
        r.grad[i] = calloc(grad_size(in, i), sizeof *r.grad[i]);
    cpu_k->recurrence_forward(r.o, r.ck, in->q, in->k, in->v, in->gk, d, work, workers);
    cpu_k->recurrence_backward(r.grad[0], r.grad[1], r.grad[2], r.grad[3], in->dout, in->q, in->k,
                               in->v, in->gk, r.ck, d, work, workers);
    free(work);
    return r;
}

/* the GPU's, in device memory: o and the gradients bf16 */
typedef struct rec_dev {
    void *o, *grad[4];
    float *ck; /* host: the forward's checkpoints, widened from bf16 */
} rec_dev;

/* the gradients' buffers hold pre before (the kernel writes over it). kept:
 * as the model calls it, the forward's scores kept for the backward, which
 * makes the checkpoints again over a buffer of NaN, and the batch's chunk
 * table made by the forward over garbage and read by the backward */
static rec_dev run_gpu(const rec_inputs *in, const gla_recurrence_dims *d_in, size_t ck_values,
                       float *const *pre, int kept)
{
    gla_recurrence_dims dims = *d_in, *d = &dims;
    void *scores = kept ? dev_poisoned(gpu_k->recurrence_scores_floats(in->n, d->H) * sizeof(float)) : NULL;
    void *table = kept ? dev_poisoned(gpu_k->recurrence_chunk_table_floats(in->n) * sizeof(float)) : NULL;
    d->scores = scores, d->chunk_table = table, d->chunk_table_made = 0;
    void *q = acts_to_device(in->q, in->nk), *k = acts_to_device(in->k, in->nk);
    void *v = acts_to_device(in->v, in->nv), *gk = acts_to_device(in->gk, in->nk);
    void *dout = acts_to_device(in->dout, in->nv);
    float *work = dev_alloc(gpu_k->recurrence_work_floats(in->n, d->H, d->dk, d->dv) * sizeof(float));
    rec_dev r;
    r.o = dev_poisoned(in->nv * dev->act_bytes);
    void *ck = dev_alloc(ck_values * dev->act_bytes); /* zeros, like the CPU's: varlen leaves slots unused */
    for (int i = 0; i < 4; i++)
        r.grad[i] = acts_to_device(pre[i], grad_size(in, i));
    gpu_k->recurrence_forward(r.o, ck, q, k, v, gk, d, work, 1);
    r.ck = acts_to_host(ck, ck_values);
    if (kept) {
        dev->free(ck);
        ck = dev_poisoned(ck_values * dev->act_bytes);
        d->remake_checkpoints = 1, d->chunk_table_made = 1;
    }
    gpu_k->recurrence_backward(r.grad[0], r.grad[1], r.grad[2], r.grad[3], dout, q, k, v, gk, ck, d, work, 1);
    dev->free(q), dev->free(k), dev->free(v), dev->free(gk), dev->free(dout), dev->free(work), dev->free(ck);
    if (scores)
        dev->free(scores), dev->free(table);
    return r;
}

/* got against want, got freed */
static void check_recurrence(const char *shape, const rec_inputs *in, const rec_out *want, rec_dev got,
                             size_t ck_values)
{
    compare("recurrence o", shape, acts_to_host(got.o, in->nv), want->o, in->nv, TOL_BF16);
    float *ck_rounded = rounded_bf16(want->ck, ck_values);
    compare("recurrence checkpoints", shape, got.ck, ck_rounded, ck_values, TOL_CHECKPOINTS);
    free(ck_rounded);
    static const char *const names[4] = {"recurrence dq", "recurrence dk", "recurrence dv",
                                         "recurrence dgk"};
    /* written over pre. dgk of a lone token is exactly 0 on the CPU (its gate
     * acts on the state 0) and on the GPU the rounding residue of terms that
     * cancel: its error is measured against the larger of its norm and dk's */
    for (int i = 0; i < 4; i++) {
        size_t size = grad_size(in, i);
        float *g = acts_to_host(got.grad[i], size);
        double scale = l2_norm(want->grad[i], size);
        if (i == 3 && l2_norm(want->grad[1], grad_size(in, 1)) > scale)
            scale = l2_norm(want->grad[1], grad_size(in, 1));
        report(names[i], shape, l2_distance(g, want->grad[i], size) / scale, TOL_BF16, "");
        free(g), dev->free(got.grad[i]);
    }
    dev->free(got.o);
}

static void test_recurrence(const char *name, int H, int dk, int dv, const int32_t *cu, int n_seqs,
                            float gk_lo)
{
    int n = cu[n_seqs];
    char shape[96];
    snprintf(shape, sizeof shape, "%s H=%d dk=%d dv=%d n=%d", name, H, dk, dv, n);
    gla_recurrence_dims d = {cu, n_seqs, H, dk, dv, 1.0f / sqrtf((float)dk), NULL, 0, 0, 0, NULL, NULL, 0};
    rec_inputs in = rec_inputs_make(&d, gk_lo);
    /* one more float than needed, so that no size is 0 */
    size_t ck_values = cpu_k->recurrence_checkpoint_values(n, H, dk, dv) + 1;
    rec_out want = run_cpu(&in, &d, ck_values);
    float *pre[4];
    for (int i = 0; i < 4; i++)
        pre[i] = prefill_like(want.grad[i], grad_size(&in, i));

    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    d.cu_seqlens_backend = cu_dev;
    for (int kept = 0; kept < 2; kept++) {
        char how[128];
        snprintf(how, sizeof how, "%s%s", shape, kept ? " kept" : "");
        check_recurrence(how, &in, &want, run_gpu(&in, &d, ck_values, pre, kept), ck_values);
    }
    dev->free(cu_dev);
    free(want.o), free(want.ck);
    for (int i = 0; i < 4; i++)
        free(want.grad[i]), free(pre[i]);
    rec_inputs_free(&in);
}

/* one sequence of T tokens */
static void test_recurrence_T(int H, int dk, int dv, int T, float gk_lo)
{
    int32_t cu[2] = {0, T};
    test_recurrence("T", H, dk, dv, cu, 1, gk_lo);
}

static void test_recurrences(void)
{
    /* tiny heads at lengths around the chunk of 64 */
    const int lengths[] = {1, 63, 64, 65, 100, 200};
    for (int i = 0; i < 6; i++)
        test_recurrence_T(2, 4, 8, lengths[i], -0.4f);
    /* documents of 1, 63, 1, 64, 71 and 100 tokens: chunk starts off the grid of 64 */
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_recurrence("varlen", 2, 4, 8, uneven, 6, -0.4f);
    test_recurrence("varlen", 3, 40, 72, uneven, 6, -0.4f);
    test_recurrence("varlen strong gates", 3, 40, 72, uneven, 6, -8.0f);
    test_recurrence_T(3, 40, 72, 100, -0.4f);
    /* fla's 340M head */
    test_recurrence_T(4, 128, 256, 100, -0.4f);
    test_recurrence_T(4, 128, 256, 2048, -0.1f);
    static const int32_t two_rows[] = {0, 130, 2048, 2113, 4096};
    test_recurrence("varlen", 4, 128, 256, two_rows, 4, -0.4f);
}

/* ==================================================================== generation's step */

/* `steps` tokens of B sequences, one recurrence step each, carrying the
 * states, on both backends; the states start random (a prompt already in) */
static void test_recurrence_step(int B, int H, int dk, int dv, int steps)
{
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d H=%d dk=%d dv=%d steps=%d", B, H, dk, dv, steps);
    size_t nk = (size_t)B * H * dk, nv = (size_t)B * H * dv, ns = (size_t)B * H * dk * dv;
    float *states = testing_random_bf16(ns, -1, 1), *o = malloc(nv * sizeof *o);
    float *states_d = floats_to_device(states, ns);
    void *o_d = dev_poisoned(nv * dev->act_bytes);
    float scale = 1.0f / sqrtf((float)dk);
    for (int t = 0; t < steps; t++) {
        float *q = testing_random_bf16(nk, -1, 1), *k = testing_random_bf16(nk, -1, 1);
        float *v = testing_random_bf16(nv, -1, 1), *gk = testing_random_bf16(nk, -2, -0.01f);
        cpu_k->recurrence_step(o, states, q, k, v, gk, B, H, dk, dv, scale, 0);
        void *q_d = acts_to_device(q, nk), *k_d = acts_to_device(k, nk);
        void *v_d = acts_to_device(v, nv), *gk_d = acts_to_device(gk, nk);
        gpu_k->recurrence_step(o_d, states_d, q_d, k_d, v_d, gk_d, B, H, dk, dv, scale, 0);
        compare("recurrence step o", shape, acts_to_host(o_d, nv), o, nv, TOL_BF16);
        dev->free(q_d), dev->free(k_d), dev->free(v_d), dev->free(gk_d);
        free(q), free(k), free(v), free(gk);
    }
    /* fp32 states from the same inputs */
    compare("recurrence step states", shape, floats_to_host(states_d, ns), states, ns, TOL_FP32);
    dev->free(states_d), dev->free(o_d);
    free(states), free(o);
}

static void test_recurrence_steps(void)
{
    test_recurrence_step(1, 2, 4, 8, 3);
    test_recurrence_step(3, 3, 40, 72, 5);  /* a partial column tile, rows not a multiple of 8 */
    test_recurrence_step(1, 4, 128, 256, 4); /* fla's 340M head */
    test_recurrence_step(16, 4, 128, 256, 2);
}

/* ==================================================================== the gated norm and the gates */

static const gla_gate_rows packed_gate = {1, 0};

static void test_gate_norm(int rows, int C, int with_do)
{
    char shape[64];
    snprintf(shape, sizeof shape, "rows=%d C=%d%s", rows, C, with_do ? "" : " (no do)");
    size_t n = (size_t)rows * C;
    float *o = testing_random_bf16(n, -2, 2), *g = testing_random_bf16(n, -4, 4);
    float *w = testing_random_bf16(C, 0.5f, 1.5f), *dy = testing_random_bf16(n, -1, 1);
    float eps = 1e-6f;

    float *y = malloc(n * sizeof *y), *rstd = malloc(rows * sizeof *rstd);
    float *d_o = calloc(n, sizeof *d_o), *dg = calloc(n, sizeof *dg), *dw = calloc(C, sizeof *dw);
    cpu_k->gate_norm_forward(y, rstd, o, g, &packed_gate, w, rows, C, eps);
    cpu_k->gate_norm_backward(with_do ? d_o : NULL, dg, dw, dy, o, g, &packed_gate, w, rstd, rows, C);
    /* do and dg are written over pre_do and pre_dg, dw is added to pre_dw */
    float *pre_do = prefill_like(d_o, n), *pre_dg = prefill_like(dg, n);
    float *pre_dw = prefill_like(dw, C);

    void *o_d = acts_to_device(o, n), *g_d = acts_to_device(g, n), *w_d = acts_to_device(w, C);
    void *dy_d = acts_to_device(dy, n), *y_d = dev_poisoned(n * dev->act_bytes);
    float *rstd_d = dev_poisoned(rows * sizeof(float));
    void *do_d = acts_to_device(pre_do, n), *dg_d = acts_to_device(pre_dg, n);
    float *dw_d = floats_to_device(pre_dw, C);
    gpu_k->gate_norm_forward(y_d, rstd_d, o_d, g_d, &packed_gate, w_d, rows, C, eps);
    gpu_k->gate_norm_backward(with_do ? do_d : NULL, dg_d, dw_d, dy_d, o_d, g_d, &packed_gate, w_d, rstd_d, rows, C);
    compare("gate_norm y", shape, acts_to_host(y_d, n), y, n, TOL_BF16);
    compare("gate_norm rstd", shape, floats_to_host(rstd_d, rows), rstd, rows, TOL_FP32);
    if (with_do)
        compare("gate_norm do", shape, acts_to_host(do_d, n), d_o, n, TOL_BF16);
    else /* untouched: exactly pre_do (values bf16 holds) */
        compare("gate_norm do (NULL)", shape, acts_to_host(do_d, n), pre_do, n, 1e-30);
    compare("gate_norm dg", shape, acts_to_host(dg_d, n), dg, n, TOL_BF16);
    compare_added("gate_norm dw", shape, floats_to_host(dw_d, C), dw, pre_dw, C, TOL_FP32);

    void *dev_bufs[] = {o_d, g_d, w_d, dy_d, y_d, rstd_d, do_d, dg_d, dw_d};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        dev->free(dev_bufs[i]);
    float *host_bufs[] = {o, g, w, dy, pre_do, pre_dg, pre_dw, y, rstd, d_o, dg, dw};
    for (size_t i = 0; i < sizeof host_bufs / sizeof host_bufs[0]; i++)
        free(host_bufs[i]);
}

static void test_gates(size_t n, float normalizer)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu normalizer=%g", n, normalizer);
    float *x = testing_random_bf16(n, -12, 12), *dgk = testing_random_bf16(n, -1, 1);
    float *gk = malloc(n * sizeof *gk), *dx = calloc(n, sizeof *dx);
    cpu_k->gates_forward(gk, x, n, normalizer);
    cpu_k->gates_backward(dx, dgk, gk, n, normalizer);
    float *pre = prefill_like(dx, n); /* dx is written over it */

    void *x_d = acts_to_device(x, n), *dgk_d = acts_to_device(dgk, n);
    void *gk_d = dev_poisoned(n * dev->act_bytes), *dx_d = acts_to_device(pre, n);
    gpu_k->gates_forward(gk_d, x_d, n, normalizer);
    gpu_k->gates_backward(dx_d, dgk_d, gk_d, n, normalizer);
    compare("gates gk", shape, acts_to_host(gk_d, n), gk, n, TOL_BF16);
    compare("gates dx", shape, acts_to_host(dx_d, n), dx, n, TOL_BF16);
    /* in place, as the plugin runs it */
    gpu_k->gates_forward(x_d, x_d, n, normalizer);
    compare("gates gk (in place)", shape, acts_to_host(x_d, n), gk, n, TOL_BF16);

    dev->free(x_d), dev->free(dgk_d), dev->free(gk_d), dev->free(dx_d);
    free(x), free(dgk), free(pre), free(gk), free(dx);
}

/* ==================================================================== q, k, v, g side by side */

/* The recurrence (forward, backward and generation's step) and the gated
 * norm on q, k, v and g as column blocks of one [n, q | k | v | g] buffer,
 * their gradients into one such buffer, against the same kernels on packed
 * tensors: the same values bit for bit (the same arithmetic; only the rows'
 * addresses differ). The packed results are checked against the CPU above. */
static void test_joined(const char *name, int H, int dk, int dv, const int32_t *cu, int n_seqs)
{
    int n = cu[n_seqs];
    char shape[96];
    snprintf(shape, sizeof shape, "%s H=%d dk=%d dv=%d n=%d", name, H, dk, dv, n);
    gla_recurrence_dims d = {cu, n_seqs, H, dk, dv, 1.0f / sqrtf((float)dk), NULL, 0, 0, 0, NULL, NULL, 0};
    rec_inputs in = rec_inputs_make(&d, -0.4f);
    size_t kw = (size_t)H * dk, vw = (size_t)H * dv, W = 2 * kw + 2 * vw, act = dev->act_bytes;
    float *g = testing_random_bf16(in.nv, -4, 4), *w = testing_random_bf16(dv, 0.5f, 1.5f);
    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    d.cu_seqlens_backend = cu_dev;
    size_t ck_values = gpu_k->recurrence_checkpoint_values(n, H, dk, dv) + 1;
    float *work = dev_alloc(gpu_k->recurrence_work_floats(n, H, dk, dv) * sizeof(float));
    void *gk = acts_to_device(in.gk, in.nk), *dout = acts_to_device(in.dout, in.nv), *w_d = acts_to_device(w, dv);
    /* packed */
    void *q = acts_to_device(in.q, in.nk), *k = acts_to_device(in.k, in.nk), *v = acts_to_device(in.v, in.nv);
    void *g_d = acts_to_device(g, in.nv), *o = dev_alloc(in.nv * act), *y = dev_alloc(in.nv * act);
    void *grads[5] = {dev_alloc(in.nk * act), dev_alloc(in.nk * act), dev_alloc(in.nv * act), dev_alloc(in.nk * act),
                      dev_alloc(in.nv * act)}; /* dq, dk, dv, dgk, dg */
    void *ck = dev_alloc(ck_values * act);
    float *rstd = dev_alloc((size_t)n * H * sizeof(float));
    gpu_k->recurrence_forward(o, ck, q, k, v, gk, &d, work, 1);
    gpu_k->recurrence_backward(grads[0], grads[1], grads[2], grads[3], dout, q, k, v, gk, ck, &d, work, 1);
    gpu_k->gate_norm_forward(y, rstd, o, g_d, &packed_gate, w_d, n * H, dv, 1e-6f);
    gpu_k->gate_norm_backward(NULL, grads[4], NULL, dout, o, g_d, &packed_gate, w_d, rstd, n * H, dv);
    /* joined */
    float *qkvg = malloc((size_t)n * W * sizeof *qkvg);
    testing_put_columns(qkvg, in.q, n, W, 0, kw), testing_put_columns(qkvg, in.k, n, W, kw, kw);
    testing_put_columns(qkvg, in.v, n, W, 2 * kw, vw), testing_put_columns(qkvg, g, n, W, 2 * kw + vw, vw);
    char *j = acts_to_device(qkvg, (size_t)n * W), *dj = dev_poisoned((size_t)n * W * act);
    void *o2 = dev_poisoned(in.nv * act), *y2 = dev_poisoned(in.nv * act), *dgk2 = dev_poisoned(in.nk * act);
    void *ck2 = dev_alloc(ck_values * act);
    float *rstd2 = dev_poisoned((size_t)n * H * sizeof(float));
    gla_recurrence_dims dj_dims = d;
    dj_dims.stride = (int)W;
    gla_gate_rows gate = {H, W};
    size_t at_k = kw * act, at_v = 2 * kw * act, at_g = (2 * kw + vw) * act;
    gpu_k->recurrence_forward(o2, ck2, j, j + at_k, j + at_v, gk, &dj_dims, work, 1);
    gpu_k->recurrence_backward(dj, dj + at_k, dj + at_v, dgk2, dout, j, j + at_k, j + at_v, gk, ck2, &dj_dims, work,
                               1);
    gpu_k->gate_norm_forward(y2, rstd2, o2, j + at_g, &gate, w_d, n * H, dv, 1e-6f);
    gpu_k->gate_norm_backward(NULL, dj + at_g, NULL, dout, o2, j + at_g, &gate, w_d, rstd2, n * H, dv);
    compare_columns("joined o", shape, acts_to_host(o2, in.nv), in.nv, 1, 0, 1, acts_to_host(o, in.nv));
    compare_columns("joined checkpoints", shape, acts_to_host(ck2, ck_values), ck_values, 1, 0, 1,
                    acts_to_host(ck, ck_values));
    compare_columns("joined dgk", shape, acts_to_host(dgk2, in.nk), in.nk, 1, 0, 1, acts_to_host(grads[3], in.nk));
    compare_columns("joined gate norm y", shape, acts_to_host(y2, in.nv), in.nv, 1, 0, 1, acts_to_host(y, in.nv));
    static const char *const names[] = {"joined dq", "joined dk", "joined dv", "joined dg"};
    const size_t at[] = {0, kw, 2 * kw, 2 * kw + vw}, width[] = {kw, kw, vw, vw};
    const int which[] = {0, 1, 2, 4};
    for (int i = 0; i < 4; i++)
        compare_columns(names[i], shape, acts_to_host(dj, (size_t)n * W), (size_t)n, W, at[i], width[i],
                        acts_to_host(grads[which[i]], (size_t)n * width[i]));
    /* generation's step: the n rows as n sequences, two steps from zero states */
    size_t ns = (size_t)n * H * dk * dv;
    float *states = dev_alloc(ns * sizeof(float)), *states2 = dev_alloc(ns * sizeof(float));
    for (int step = 0; step < 2; step++) {
        gpu_k->recurrence_step(o, states, q, k, v, gk, n, H, dk, dv, d.scale, 0);
        gpu_k->recurrence_step(o2, states2, j, j + at_k, j + at_v, gk, n, H, dk, dv, d.scale, (int)W);
    }
    compare_columns("joined step o", shape, acts_to_host(o2, in.nv), in.nv, 1, 0, 1, acts_to_host(o, in.nv));
    compare_columns("joined step states", shape, floats_to_host(states2, ns), ns, 1, 0, 1, floats_to_host(states, ns));

    void *bufs[] = {cu_dev, work, gk, dout, w_d, q, k, v, g_d, o, y, grads[0], grads[1], grads[2], grads[3], grads[4],
                    ck, rstd, j, dj, o2, y2, dgk2, ck2, rstd2, states, states2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    free(qkvg), free(g), free(w);
    rec_inputs_free(&in);
}

static void test_joineds(void)
{
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_joined("varlen", 2, 8, 16, uneven, 6);
    test_joined("varlen", 3, 40, 72, uneven, 6);
    static const int32_t two_rows[] = {0, 130, 2048, 2113, 4096};
    test_joined("varlen", 4, 128, 256, two_rows, 4); /* fla's 340M head */
}

/* ==================================================================== the model */

/* The norms' eps is 1e-4, not fla's 1e-6: a sequence's first token has
 * o = scale·(q·k)·v (test_gla_model's cases say why its finite differences
 * take 0.1), and at 1e-6 some draws give one with q·k near 0, where the gated
 * norm's gradient grows as 1/rms. The CPU model's own gradient then moves by 30-36 % when
 * every weight moves by 4e-3 (about a bf16 step; two of six draws), and the
 * GPU's gradient was 1.0e-1 off the CPU's on such draws (H100, 2026-12-05);
 * at 1e-4 the CPU's moves by 1.4-1.8 % and the GPU's error is 1.0-1.2e-2 on each
 * of the six. The kernels' own cases above keep eps 1e-6. */
static void test_model(void)
{
    kv_config cfg = kv_lm_config(&(kv_lm_keys){.D = 64, .L = 2, .V = 97, .I = 96, .eps = 1e-4});
    kv_set(&cfg, "num_heads", "2");
    kv_set(&cfg, "gate_low_rank_dim", "8");
    kv_set(&cfg, "expand_k", "0.5");
    kv_set(&cfg, "expand_v", "1");
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 1, 100);
    test_decode_on_gpu(&cfg, 4, 100);
}

/* ==================================================================== --bench */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* mean wall time of the GPU recurrence, forward and backward, at fla's 340M
 * head shape over B rows of T tokens, called as the model calls it (the
 * forward's scores kept, the backward making the checkpoints again; the
 * forward making the batch's chunk table, the backward reading it) */
static void bench(int B, int T, int reps)
{
    const int H = 4, dk = 128, dv = 256, n = B * T;
    int32_t *cu = malloc((B + 1) * sizeof *cu);
    for (int b = 0; b <= B; b++)
        cu[b] = b * T;
    gla_recurrence_dims d = {cu, B, H, dk, dv, 1.0f / sqrtf((float)dk), NULL, 0, 0, 0, NULL, NULL, 0};
    int32_t *cu_dev = ints_to_device(cu, (size_t)B + 1);
    d.cu_seqlens_backend = cu_dev;
    size_t nk = (size_t)n * H * dk, nv = (size_t)n * H * dv, act = dev->act_bytes;
    float *x = testing_random_bf16(nv, -1, 1), *g = testing_random_bf16(nk, -0.1f, 0);
    void *q = acts_to_device(x, nk), *k = acts_to_device(x + 1, nk), *v = acts_to_device(x, nv);
    void *gk = acts_to_device(g, nk), *dout = acts_to_device(x, nv);
    void *o = dev_alloc(nv * act), *dq = dev_alloc(nk * act), *dkk = dev_alloc(nk * act);
    void *dvv = dev_alloc(nv * act), *dgk = dev_alloc(nk * act);
    size_t ck_values = gpu_k->recurrence_checkpoint_values(n, H, dk, dv);
    size_t work_floats = gpu_k->recurrence_work_floats(n, H, dk, dv);
    void *ck = dev_alloc(ck_values * act);
    float *work = dev_alloc(work_floats * sizeof(float));
    void *scores = dev_alloc(gpu_k->recurrence_scores_floats(n, H) * sizeof(float));
    void *table = dev_alloc(gpu_k->recurrence_chunk_table_floats(n) * sizeof(float));
    d.scores = scores, d.remake_checkpoints = 1, d.chunk_table = table;
    double fwd = 0, bwd = 0;
    for (int r = -1; r < reps; r++) { /* r = -1 warms up */
        cudaDeviceSynchronize();
        double t0 = now_ms();
        d.chunk_table_made = 0;
        gpu_k->recurrence_forward(o, ck, q, k, v, gk, &d, work, 1);
        cudaDeviceSynchronize();
        double t1 = now_ms();
        d.chunk_table_made = 1;
        gpu_k->recurrence_backward(dq, dkk, dvv, dgk, dout, q, k, v, gk, ck, &d, work, 1);
        cudaDeviceSynchronize();
        double t2 = now_ms();
        if (r >= 0)
            fwd += t1 - t0, bwd += t2 - t1;
    }
    CHECK(cudaGetLastError() == cudaSuccess, "bench: a CUDA error");
    printf("recurrence H=%d dk=%d dv=%d B=%d T=%d: forward %.3f ms, backward %.3f ms "
           "(mean of %d; checkpoints %.0f MiB, work %.0f MiB)\n",
           H, dk, dv, B, T, fwd / reps, bwd / reps, reps, (double)ck_values * act / 1048576,
           work_floats * 4.0 / 1048576);
    void *bufs[] = {q, k, v, gk, dout, o, dq, dkk, dvv, dgk, ck, work, scores, table};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    dev->free(cu_dev);
    free(cu), free(x), free(g);
}

/* mean time of the gated norm's forward and backward over rows of C values,
 * reps calls queued back to back, and the bandwidth of what they must move */
static void bench_gate_norm(int rows, int C, int reps)
{
    size_t n = (size_t)rows * C, act = dev->act_bytes;
    float *x = testing_random_bf16(n, -2, 2);
    void *o = acts_to_device(x, n), *g = acts_to_device(x, n), *dy = acts_to_device(x, n);
    void *w = acts_to_device(x, C), *y = dev_alloc(n * act), *d_o = dev_alloc(n * act);
    void *dg = dev_alloc(n * act);
    float *rstd = dev_alloc(rows * sizeof(float)), *dw = dev_alloc(C * sizeof(float));
    /* warm-up, then the timed runs */
    gpu_k->gate_norm_forward(y, rstd, o, g, &packed_gate, w, rows, C, 1e-6f);
    gpu_k->gate_norm_backward(d_o, dg, dw, dy, o, g, &packed_gate, w, rstd, rows, C);
    cudaDeviceSynchronize();
    double t0 = now_ms();
    for (int r = 0; r < reps; r++)
        gpu_k->gate_norm_forward(y, rstd, o, g, &packed_gate, w, rows, C, 1e-6f);
    cudaDeviceSynchronize();
    double t1 = now_ms();
    for (int r = 0; r < reps; r++)
        gpu_k->gate_norm_backward(d_o, dg, dw, dy, o, g, &packed_gate, w, rstd, rows, C);
    cudaDeviceSynchronize();
    double t2 = now_ms();
    CHECK(cudaGetLastError() == cudaSuccess, "bench: a CUDA error");
    double fwd = (t1 - t0) / reps, bwd = (t2 - t1) / reps;
    /* forward: o, g in, y out; backward: o, g, dy in, do, dg out */
    printf("gate norm rows=%d C=%d: forward %.3f ms (%.0f GB/s), backward %.3f ms (%.0f GB/s) "
           "(mean of %d)\n",
           rows, C, fwd, 3.0 * n * act / fwd / 1e6, bwd, 5.0 * n * act / bwd / 1e6, reps);
    void *bufs[] = {o, g, dy, w, y, d_o, dg, rstd, dw};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    free(x);
}

int main(int argc, char **argv)
{
    if (!cuda_testing_device())
        return 77;
    testing_seed(20240917);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        bench(8, 2048, 10);
        bench_gate_norm(8 * 2048 * 4, 256, 50);
        return testing_result("test_gla_cuda --bench");
    }
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g through bf16, "
           "%g where fp32 throughout\n",
           TOL_BF16, TOL_FP32);
    test_recurrences();
    /* rows: one, whole and partial blocks of the backward's 64; C: idle lanes
     * (8, 64), 8 values a lane (256), several chunks a lane (520), the widest
     * (2048); 67 and 1000 are no multiple of 8 (one value per access) */
    const int gn[][2] = {{1, 8},      {200, 8},   {129, 64},  {37, 67}, {400, 256},
                         {65536, 256}, {130, 520}, {65, 1000}, {3, 2048}};
    for (size_t i = 0; i < sizeof gn / sizeof gn[0]; i++)
        test_gate_norm(gn[i][0], gn[i][1], 1);
    test_gate_norm(37, 67, 0);
    test_gates(1, 16);
    test_gates(1001, 16);
    test_gates((size_t)2048 * 512 + 3, 1);
    test_gates((size_t)2048 * 512, 16); /* 16-byte accesses */
    test_joineds();
    test_model();
    test_recurrence_steps();
    return testing_result("test_gla_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
