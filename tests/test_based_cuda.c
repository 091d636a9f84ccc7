/* Based's Taylor linear attention on the GPU (taylor_attention_cuda.cu,
 * based_cuda.h) against its CPU reference, token by token
 * (taylor_attention_cpu.c, based.h):
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly, none 0 (q, k, v, dy uniform in ±[0.05, 1)); fp32 for the CPU,
 *    cast to bf16 for the GPU;
 *  - error ‖gpu − cpu‖ / ‖cpu‖ over each whole output, under 1e-2: y, dq, dk,
 *    dv; each poisoned with NaN first, so that a value left unwritten fails;
 *  - lengths 2, 63, 64, 65, 100, 300 (around and off the recurrence's chunk
 *    of 64), varlen batches of uneven documents (one-token ones among them:
 *    alone, a token's dq and dk are 0 up to rounding, its normalizer
 *    cancelling q and k, so it has no scale of its own to compare against), Based-360M's heads (16 of
 *    feature dim 16, values 64) at 2048 tokens, 1B's values (112), and small
 *    odd sizes (F 5, values 7; F 1, values 1) whose rows pad unevenly;
 *  - generation's step (based_taylor_step_cuda) against the CPU's over 8
 *    positions in a row, each side carrying its own state from zeros: every
 *    position's y within 1e-2, the final states (fp32 on both sides, the same
 *    products summed in another order) within 1e-3; B 1 and 16 at
 *    Based-360M's heads, 1B's values, small odd sizes;
 *  - the whole plugin on the CUDA op table against the same plugin on the
 *    CPU one (plugin_cuda_testing.h): a hybrid of one BaseConv, one Taylor and
 *    one sliding-window layer (window 64: 33 keys, shorter than the rows);
 *  - that plugin's decode entries on CUDA against its own full CUDA forward:
 *    3 rows of 48 tokens fed position by position from a zeroed state
 *    (plugin_cuda_testing.h's test_decode_on_gpu; the chunked forward rounds
 *    phi to bf16, the step does not); once without the sliding layer
 *    (BaseConv and Taylor alone) and once with it (the transformer's
 *    attention_decode).
 * `test_based_cuda --bench` times forward and backward at Based-360M's layer
 * instead (B 8, T 2048, H 16, F 16, Dv 64; cudaEvent), and its step at B 1
 * and 16.
 * Without CUDA in the build, or without a usable GPU, it prints
 * "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <math.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "based.h"
#include "based_cuda.h"
#include "plugin_cuda_testing.h"
#include "testing.h"

#define TOL_STATE 1e-3 /* fp32 running sums of the same products, added in another order */

/* element `index` of a device array of activations */
static void *dev_act_at(void *base, size_t index)
{
    return (unsigned char *)base + index * dev->act_bytes;
}

static void test_taylor(const char *name, const int32_t *cu, int n_seqs, int H, int F, int Dv)
{
    char shape[96];
    int n = cu[n_seqs];
    snprintf(shape, sizeof shape, "%s n=%d H=%d F=%d Dv=%d", name, n, H, F, Dv);
    size_t nqk = (size_t)n * H * F, nv = (size_t)n * H * Dv;
    float *q = testing_nonzero_bf16(nqk, 0.05f, 1), *k = testing_nonzero_bf16(nqk, 0.05f, 1);
    float *v = testing_nonzero_bf16(nv, 0.05f, 1), *dy = testing_nonzero_bf16(nv, 0.05f, 1);
    float *y = malloc(nv * sizeof *y), *dq = malloc(nqk * sizeof *dq);
    float *dk = malloc(nqk * sizeof *dk), *dv = malloc(nv * sizeof *dv);

    based_dims d = {cu, n_seqs, H, F, Dv, NULL};
    int workers = based_taylor_max_workers();
    float *cpu_work = malloc((size_t)workers * based_taylor_backward_work_floats(F, Dv, n) *
                             sizeof *cpu_work);
    based_taylor_forward_cpu(y, q, k, v, &d, cpu_work, workers);
    based_taylor_backward_cpu(dq, dk, dv, dy, q, k, v, &d, cpu_work, workers);

    d.cu_seqlens_backend = ints_to_device(cu, (size_t)n_seqs + 1);
    void *q_d = acts_to_device(q, nqk), *k_d = acts_to_device(k, nqk);
    void *v_d = acts_to_device(v, nv), *dy_d = acts_to_device(dy, nv);
    void *y_d = dev_poisoned(nv * dev->act_bytes), *dq_d = dev_poisoned(nqk * dev->act_bytes);
    void *dk_d = dev_poisoned(nqk * dev->act_bytes), *dv_d = dev_poisoned(nv * dev->act_bytes);
    float *work = dev_alloc(based_taylor_work_floats_cuda(n, H, F, Dv) * sizeof(float));
    based_taylor_forward_cuda(y_d, q_d, k_d, v_d, &d, work);
    based_taylor_backward_cuda(dq_d, dk_d, dv_d, dy_d, q_d, k_d, v_d, &d, work);
    compare("taylor y", shape, acts_to_host(y_d, nv), y, nv, TOL_BF16);
    compare("taylor dq", shape, acts_to_host(dq_d, nqk), dq, nqk, TOL_BF16);
    compare("taylor dk", shape, acts_to_host(dk_d, nqk), dk, nqk, TOL_BF16);
    compare("taylor dv", shape, acts_to_host(dv_d, nv), dv, nv, TOL_BF16);

    void *dev_bufs[] = {(void *)d.cu_seqlens_backend, q_d, k_d, v_d, dy_d, y_d, dq_d, dk_d, dv_d, work};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        dev->free(dev_bufs[i]);
    float *host_bufs[] = {q, k, v, dy, y, dq, dk, dv, cpu_work};
    for (size_t i = 0; i < sizeof host_bufs / sizeof host_bufs[0]; i++)
        free(host_bufs[i]);
}

static void test_length(int T, int H, int F, int Dv)
{
    int32_t cu[2] = {0, T};
    test_taylor("T", cu, 1, H, F, Dv);
}

static void test_all(void)
{
    const int lengths[] = {2, 63, 64, 65, 100, 300};
    for (int i = 0; i < 6; i++)
        test_length(lengths[i], 2, 16, 64);
    /* documents of 1, 63, 1, 64, 71 and 100 tokens: chunks start off the grid */
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_taylor("varlen", uneven, 6, 3, 16, 64);
    test_length(2048, 16, 16, 64); /* Based-360M's layer, one row */
    static const int32_t two_rows[] = {0, 700, 2048, 2100, 4096};
    test_taylor("varlen", two_rows, 4, 16, 16, 64);
    test_length(300, 2, 16, 112); /* 1B's values */
    test_taylor("varlen", uneven, 6, 3, 5, 7);
    test_length(100, 1, 1, 1);
}

/* several positions of generation in a row, each side carrying its state from
 * zeros (as the core hands it over): every position's y, the final states */
static void test_step(int B, int H, int F, int Dv, int steps)
{
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d H=%d F=%d Dv=%d steps=%d", B, H, F, Dv, steps);
    size_t nqk = (size_t)B * H * F, nv = (size_t)B * H * Dv;
    size_t ns = (size_t)B * H * based_taylor_state_floats(F, Dv);
    float *q = testing_nonzero_bf16(steps * nqk, 0.05f, 1);
    float *k = testing_nonzero_bf16(steps * nqk, 0.05f, 1);
    float *v = testing_nonzero_bf16(steps * nv, 0.05f, 1);
    float *y = malloc(steps * nv * sizeof *y), *states = calloc(ns, sizeof *states);
    int32_t cu[B + 1]; /* one token per sequence, as a decode step's batch */
    for (int b = 0; b <= B; b++)
        cu[b] = b;
    based_dims d = {cu, B, H, F, Dv, NULL};

    void *q_d = acts_to_device(q, steps * nqk), *k_d = acts_to_device(k, steps * nqk);
    void *v_d = acts_to_device(v, steps * nv), *y_d = dev_poisoned(steps * nv * dev->act_bytes);
    float *states_d = dev_alloc(ns * sizeof *states_d);
    dev->zero(states_d, ns * sizeof *states_d);
    for (int t = 0; t < steps; t++) {
        based_taylor_step_cpu(y + t * nv, states, q + t * nqk, k + t * nqk, v + t * nv, &d, B);
        based_taylor_step_cuda(dev_act_at(y_d, t * nv), states_d, dev_act_at(q_d, t * nqk),
                               dev_act_at(k_d, t * nqk), dev_act_at(v_d, t * nv), &d, B);
    }
    compare("taylor step y", shape, acts_to_host(y_d, steps * nv), y, steps * nv, TOL_BF16);
    compare("taylor step states", shape, floats_to_host(states_d, ns), states, ns, TOL_STATE);

    void *dev_bufs[] = {q_d, k_d, v_d, y_d, states_d};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        dev->free(dev_bufs[i]);
    float *host_bufs[] = {q, k, v, y, states};
    for (size_t i = 0; i < sizeof host_bufs / sizeof host_bufs[0]; i++)
        free(host_bufs[i]);
}

static void test_steps(void)
{
    test_step(1, 16, 16, 64, 8); /* Based-360M's heads, one sequence */
    test_step(16, 16, 16, 64, 8);
    test_step(4, 16, 16, 112, 8); /* 1B's values: a last column tile of 16 */
    test_step(3, 2, 5, 7, 8);
    test_step(2, 1, 1, 1, 8);
}

/* layer 0 BaseConv, 1 Taylor (4 heads of feature dim 16, values 32), 2
 * sliding-window (2 heads of 64), or BaseConv again without `sliding` */
static kv_config hybrid_config(int sliding)
{
    kv_config cfg = {.n = 0};
    const char *keys[][2] = {
        {"n_embd", "128"},     {"n_layer", "3"},          {"n_inner", "16"},
        {"vocab_size", "97"},  {"alt_mixer_layers", "1"}, {"feature_dim", "16"},
        {"num_heads", "4"},    {"n_head", "2"},           {"window_size", "64"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        kv_set(&cfg, keys[i][0], keys[i][1]);
    if (sliding)
        kv_set(&cfg, "alt_mixer_2_layers", "2");
    return cfg;
}

static void test_model(void)
{
    kv_config cfg = hybrid_config(1);
    printf("model: BaseConv, Taylor, sliding window 64\n");
    test_model_on_both(&cfg);
}

static double now_ms(cudaEvent_t start, cudaEvent_t stop)
{
    float ms = 0;
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms, start, stop);
    return ms;
}

/* forward and backward at one layer's shape, mean of `reps` after a warm-up */
static void bench(int B, int T, int H, int F, int Dv, int reps)
{
    int n = B * T;
    int32_t *cu = malloc((size_t)(B + 1) * sizeof *cu);
    for (int b = 0; b <= B; b++)
        cu[b] = b * T;
    size_t nqk = (size_t)n * H * F, nv = (size_t)n * H * Dv;
    float *x = testing_nonzero_bf16(nv > nqk ? nv : nqk, 0.05f, 1);
    based_dims d = {cu, B, H, F, Dv, ints_to_device(cu, (size_t)B + 1)};
    void *q = acts_to_device(x, nqk), *k = acts_to_device(x, nqk), *v = acts_to_device(x, nv);
    void *y = dev_alloc(nv * dev->act_bytes), *dq = dev_alloc(nqk * dev->act_bytes);
    void *dk = dev_alloc(nqk * dev->act_bytes), *dv = dev_alloc(nv * dev->act_bytes);
    float *work = dev_alloc(based_taylor_work_floats_cuda(n, H, F, Dv) * sizeof(float));
    cudaEvent_t e[3];
    for (int i = 0; i < 3; i++)
        cudaEventCreate(&e[i]);
    based_taylor_forward_cuda(y, q, k, v, &d, work);
    based_taylor_backward_cuda(dq, dk, dv, y, q, k, v, &d, work);
    double fwd = 0, bwd = 0;
    for (int r = 0; r < reps; r++) {
        cudaEventRecord(e[0], 0);
        based_taylor_forward_cuda(y, q, k, v, &d, work);
        cudaEventRecord(e[1], 0);
        based_taylor_backward_cuda(dq, dk, dv, y, q, k, v, &d, work);
        cudaEventRecord(e[2], 0);
        fwd += now_ms(e[0], e[1]), bwd += now_ms(e[1], e[2]);
    }
    printf("taylor B=%d T=%d H=%d F=%d Dv=%d: forward %.3f ms, backward %.3f ms (mean of %d)\n", B, T,
           H, F, Dv, fwd / reps, bwd / reps, reps);
    void *bufs[] = {(void *)d.cu_seqlens_backend, q, k, v, y, dq, dk, dv, work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    free(cu), free(x);
}

/* generation's step at one layer's shape, mean of `reps` after a warm-up */
static void bench_step(int B, int H, int F, int Dv, int reps)
{
    int32_t cu[B + 1];
    for (int b = 0; b <= B; b++)
        cu[b] = b;
    size_t nqk = (size_t)B * H * F, nv = (size_t)B * H * Dv;
    size_t state_bytes = (size_t)B * H * based_taylor_state_floats(F, Dv) * sizeof(float);
    float *x = testing_nonzero_bf16(nv > nqk ? nv : nqk, 0.05f, 1);
    based_dims d = {cu, B, H, F, Dv, NULL};
    void *q = acts_to_device(x, nqk), *k = acts_to_device(x, nqk), *v = acts_to_device(x, nv);
    void *y = dev_alloc(nv * dev->act_bytes);
    float *states = dev_alloc(state_bytes);
    dev->zero(states, state_bytes);
    cudaEvent_t e[2];
    for (int i = 0; i < 2; i++)
        cudaEventCreate(&e[i]);
    based_taylor_step_cuda(y, states, q, k, v, &d, B);
    cudaEventRecord(e[0], 0);
    for (int r = 0; r < reps; r++)
        based_taylor_step_cuda(y, states, q, k, v, &d, B);
    cudaEventRecord(e[1], 0);
    printf("taylor step B=%d H=%d F=%d Dv=%d: %.2f us (mean of %d)\n", B, H, F, Dv,
           1e3 * now_ms(e[0], e[1]) / reps, reps);
    void *bufs[] = {q, k, v, y, states};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    free(x);
}

int main(int argc, char **argv)
{
    if (!cuda_testing_device())
        return 77;
    testing_seed(20261203);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        bench(8, 2048, 16, 16, 64, 20);
        bench_step(1, 16, 16, 64, 1000);
        bench_step(16, 16, 16, 64, 1000);
        return testing_result("test_based_cuda --bench");
    }
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g (states %g)\n", TOL_BF16,
           TOL_STATE);
    test_all();
    test_steps();
    test_model();
    kv_config conv_taylor = hybrid_config(0), hybrid = hybrid_config(1);
    test_decode_on_gpu(&conv_taylor, 3, 48); /* past the 33 keys the sliding layer sees */
    test_decode_on_gpu(&hybrid, 3, 48);
    return testing_result("test_based_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
