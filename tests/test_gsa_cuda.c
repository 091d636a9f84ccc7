/* GSA's CUDA kernels (plugins/gsa/gsa_cuda.h) against their CPU references
 * (gsa.h), as tests/test_gla_cuda.c checks GLA's:
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly and never zero, fp32 for the CPU, cast to bf16 (to_act) for the
 *    GPU; an input that is another kernel's output (the gates' f) is the
 *    CPU's, rounded to bf16, on both sides (the softmax's p, fp32, as it is);
 *    bf16 outputs
 *    come back through from_act;
 *  - error measure: ‖gpu − cpu‖ / ‖cpu‖ over each whole output, under 1e-2
 *    where the GPU's value passes through bf16, under 1e-4 where its whole
 *    path is fp32 (the output norm's rstd and dw);
 *  - forward outputs are poisoned with NaN first, so a value left unwritten
 *    fails; written gradients are pre-filled with large garbage (adding into
 *    it fails), the added dw with values of its own size, compared with
 *    prefill + what the CPU added (overwriting fails);
 *  - every aliasing the contracts allow: swish and the slot gates' f in
 *    place, swish's dx on dy, the gates' dx on each of
 *    its four gradients; 16-byte accesses and single values (sizes and
 *    pointers off the 8-value grid);
 *  - the whole GSA model on the CUDA op table against the CPU one, with the
 *    same weights, on rows of 100 tokens and a varlen batch (plugin_cuda_testing.h),
 *    with and without the output norm's weight;
 *  - generation on the GPU: for one row and four, 100 tokens (past a chunk of
 *    64) fed a position at a time through decode_forward give the logits of
 *    the GPU's own full forward, within 1e-2 over all positions and 3e-2 at
 *    each (plugin_cuda_testing.h's test_decode_on_gpu).
 * (The slot pass is checked alone by tests/test_gsa_slots_cuda.)
 * Without CUDA in the build, or without a usable GPU, it prints
 * "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include "cuda_testing.h"
#include "gsa.h"
#include "gsa_cuda.h"
#include "plugin_cuda_testing.h"
#include "testing.h"

/* large garbage for a gradient the kernel must write over, bf16-exact */
static float *garbage(size_t n) { return testing_nonzero_bf16(n, 100.0f, 1000.0f); }

/* x rounded to bf16 in place: a CPU output that feeds both sides */
static float *round_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = testing_round_bf16(x[i]);
    return x;
}

static float *dev_out(size_t n) { return dev_poisoned(n * dev->act_bytes); }

/* ==================================================================== pointwise */

/* `offset` values into each device buffer: at 1, no pointer is 16-byte
 * aligned and every kernel takes one value per access */
static void *at(void *p, int offset) { return (char *)p + (size_t)offset * dev->act_bytes; }

static void *acts_at(const float *host, size_t n, int offset)
{
    float *padded = calloc(n + offset, sizeof *padded);
    memcpy(padded + offset, host, n * sizeof *host);
    void *d = acts_to_device(padded, n + offset);
    free(padded);
    return d;
}

static float *acts_back(void *d, size_t n, int offset)
{
    float *padded = acts_to_host(d, n + offset), *h = malloc(n * sizeof *h);
    memcpy(h, padded + offset, n * sizeof *h);
    free(padded);
    return h;
}

static void test_swish(size_t n, int offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu offset=%d", n, offset);
    float *x = testing_nonzero_bf16(n, 0.01f, 8), *dy = testing_nonzero_bf16(n, 0.01f, 1);
    float *y = malloc(n * sizeof *y), *dx = malloc(n * sizeof *dx), *pre = garbage(n);
    gsa_swish_forward_cpu(y, x, n);
    gsa_swish_backward_cpu(dx, dy, x, n);

    void *x_d = acts_at(x, n, offset), *dy_d = acts_at(dy, n, offset);
    void *y_d = dev_out(n + offset), *dx_d = acts_at(pre, n, offset);
    gsa_swish_forward_cuda(at(y_d, offset), at(x_d, offset), n);
    gsa_swish_backward_cuda(at(dx_d, offset), at(dy_d, offset), at(x_d, offset), n);
    compare("swish y", shape, acts_back(y_d, n, offset), y, n, TOL_BF16);
    compare("swish dx", shape, acts_back(dx_d, n, offset), dx, n, TOL_BF16);
    gsa_swish_backward_cuda(at(dy_d, offset), at(dy_d, offset), at(x_d, offset), n);
    compare("swish dx (on dy)", shape, acts_back(dy_d, n, offset), dx, n, TOL_BF16);
    gsa_swish_forward_cuda(at(x_d, offset), at(x_d, offset), n);
    compare("swish y (in place)", shape, acts_back(x_d, n, offset), y, n, TOL_BF16);

    dev->free(x_d), dev->free(dy_d), dev->free(y_d), dev->free(dx_d);
    free(x), free(dy), free(y), free(dx), free(pre);
}

static void test_slot_gates(size_t n, float normalizer, int offset)
{
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu normalizer=%g offset=%d", n, normalizer, offset);
    float *x = testing_nonzero_bf16(n, 0.01f, 12), *f = malloc(n * sizeof *f), *s = malloc(n * sizeof *s);
    float *grads[4], *dx = malloc(n * sizeof *dx), *pre = garbage(n);
    for (int i = 0; i < 4; i++)
        grads[i] = testing_nonzero_bf16(n, 0.01f, 1);
    gsa_slot_gates_forward_cpu(f, s, x, n, normalizer);
    round_bf16(f, n); /* the backward's input, the same on both sides */
    gsa_slot_gates_backward_cpu(dx, grads[0], grads[1], grads[2], grads[3], f, n, normalizer);

    void *x_d = acts_at(x, n, offset), *f_d = dev_out(n + offset), *s_d = dev_out(n + offset);
    gsa_slot_gates_forward_cuda(at(f_d, offset), at(s_d, offset), at(x_d, offset), n, normalizer);
    compare("slot_gates f", shape, acts_back(f_d, n, offset), f, n, TOL_BF16);
    compare("slot_gates s", shape, acts_back(s_d, n, offset), s, n, TOL_BF16);
    gsa_slot_gates_forward_cuda(at(x_d, offset), at(s_d, offset), at(x_d, offset), n, normalizer);
    compare("slot_gates f (in place)", shape, acts_back(x_d, n, offset), f, n, TOL_BF16);

    /* dx on its own (over garbage), then on each of the four gradients */
    void *fr_d = acts_at(f, n, offset);
    for (int alias = -1; alias < 4; alias++) {
        void *g_d[4], *dx_d = alias < 0 ? acts_at(pre, n, offset) : NULL;
        for (int i = 0; i < 4; i++)
            g_d[i] = acts_at(grads[i], n, offset);
        void *out = alias < 0 ? dx_d : g_d[alias];
        gsa_slot_gates_backward_cuda(at(out, offset), at(g_d[0], offset), at(g_d[1], offset),
                                     at(g_d[2], offset), at(g_d[3], offset), at(fr_d, offset), n,
                                     normalizer);
        static const char *const names[5] = {
            "slot_gates dx", "slot_gates dx (on dfs)", "slot_gates dx (on dfv)",
            "slot_gates dx (on dss)", "slot_gates dx (on dsv)"};
        compare(names[alias + 1], shape, acts_back(out, n, offset), dx, n, TOL_BF16);
        for (int i = 0; i < 4; i++)
            dev->free(g_d[i]);
        if (dx_d)
            dev->free(dx_d);
    }

    dev->free(x_d), dev->free(f_d), dev->free(s_d), dev->free(fr_d);
    for (int i = 0; i < 4; i++)
        free(grads[i]);
    free(x), free(f), free(s), free(dx), free(pre);
}

/* ==================================================================== softmax */

/* logits around `center`: at 80, exp without the maximum subtracted overflows.
 * p and dp are fp32 on both sides (the backward reads the CPU's p), so p is
 * held to the fp32 bound, dx (bf16) to bf16's */
static void test_softmax(int rows, int M, float center)
{
    char shape[64];
    snprintf(shape, sizeof shape, "rows=%d M=%d center=%g", rows, M, center);
    size_t n = (size_t)rows * M;
    float *x = testing_nonzero_bf16(n, 0.01f, 8), *dp = testing_nonzero_bf16(n, 0.01f, 1), *pre = garbage(n);
    for (size_t i = 0; i < n; i++)
        x[i] = testing_round_bf16(x[i] + center);
    float *p = malloc(n * sizeof *p), *dx = malloc(n * sizeof *dx);
    gsa_softmax_forward_cpu(p, x, rows, M);
    gsa_softmax_backward_cpu(dx, dp, p, rows, M);

    void *x_d = acts_to_device(x, n), *dx_d = acts_to_device(pre, n);
    float *p_d = dev_poisoned(n * sizeof(float)), *pin_d = floats_to_device(p, n);
    float *dp_d = floats_to_device(dp, n);
    gsa_softmax_forward_cuda(p_d, x_d, rows, M);
    gsa_softmax_backward_cuda(dx_d, dp_d, pin_d, rows, M);
    compare("softmax p", shape, floats_to_host(p_d, n), p, n, TOL_FP32);
    compare("softmax dx", shape, acts_to_host(dx_d, n), dx, n, TOL_BF16);

    dev->free(x_d), dev->free(p_d), dev->free(pin_d), dev->free(dp_d), dev->free(dx_d);
    free(x), free(dp), free(pre), free(p), free(dx);
}

/* ==================================================================== output norm */

/* with_dw 0: the backward gets no dw (it must still write d_o) */
static void test_output_norm(int rows, int C, int with_w, int with_dw)
{
    char shape[64];
    snprintf(shape, sizeof shape, "rows=%d C=%d%s%s", rows, C, with_w ? "" : " w=NULL",
             with_dw ? "" : " dw=NULL");
    size_t n = (size_t)rows * C;
    float *o = testing_nonzero_bf16(n, 0.01f, 4), *dy = testing_nonzero_bf16(n, 0.01f, 1);
    float *w = with_w ? testing_random_bf16(C, 0.5f, 1.5f) : NULL, eps = 1e-6f;
    float *y = malloc(n * sizeof *y), *rstd = malloc(rows * sizeof *rstd);
    float *d_o = malloc(n * sizeof *d_o), *dw = calloc(C, sizeof *dw);
    gsa_output_norm_forward_cpu(y, rstd, o, w, rows, C, eps);
    gsa_output_norm_backward_cpu(d_o, dw, dy, o, w, rstd, rows, C);
    float *pre_do = garbage(n), *pre_dw = with_w ? prefill_like(dw, C) : testing_nonzero_bf16(C, 0.01f, 1);

    void *o_d = acts_to_device(o, n), *w_d = with_w ? acts_to_device(w, C) : NULL;
    void *dy_d = acts_to_device(dy, n), *y_d = dev_out(n), *do_d = acts_to_device(pre_do, n);
    float *rstd_d = dev_poisoned(rows * sizeof(float)), *dw_d = floats_to_device(pre_dw, C);
    gsa_output_norm_forward_cuda(y_d, rstd_d, o_d, w_d, rows, C, eps);
    gsa_output_norm_backward_cuda(do_d, with_dw ? dw_d : NULL, dy_d, o_d, w_d, rstd_d, rows, C);
    compare("output_norm y", shape, acts_to_host(y_d, n), y, n, TOL_BF16);
    compare("output_norm rstd", shape, floats_to_host(rstd_d, rows), rstd, rows, TOL_FP32);
    compare("output_norm do", shape, acts_to_host(do_d, n), d_o, n, TOL_BF16);
    if (with_w && with_dw)
        compare_added("output_norm dw", shape, floats_to_host(dw_d, C), dw, pre_dw, C, TOL_FP32);
    else /* untouched: exactly the prefill */
        compare("output_norm dw (skipped)", shape, floats_to_host(dw_d, C), pre_dw, C, 1e-30);

    void *dev_bufs[] = {o_d, w_d, dy_d, y_d, do_d, rstd_d, dw_d};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        if (dev_bufs[i])
            dev->free(dev_bufs[i]);
    float *host_bufs[] = {o, dy, w, y, rstd, d_o, dw, pre_do, pre_dw};
    for (size_t i = 0; i < sizeof host_bufs / sizeof host_bufs[0]; i++)
        free(host_bufs[i]);
}

/* ==================================================================== the model */

static void test_model(int heads, int slots, int affine)
{
    kv_config cfg = kv_lm_config(&(kv_lm_keys){.D = 64, .L = 2, .V = 97, .I = 96, .eps = 1e-6});
    kv_set_int(&cfg, "num_heads", heads);
    kv_set_int(&cfg, "num_slots", slots);
    kv_set(&cfg, "gate_logit_normalizer", "4");
    kv_set(&cfg, "elementwise_affine", affine ? "true" : "false");
    printf("model: %d heads, %d slots, %s\n", heads, slots, affine ? "g_norm weight" : "no g_norm weight");
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 1, 100);
    test_decode_on_gpu(&cfg, 4, 100);
}

int main(void)
{
    if (!cuda_testing_device())
        return 77;
    testing_seed(20250214);
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g through bf16, "
           "%g where fp32 throughout\n",
           TOL_BF16, TOL_FP32);
    /* sizes: one value, odd ones (one value per access), multiples of 8
     * (16-byte accesses, unless the pointers are one value off) */
    const size_t sizes[] = {1, 1001, (size_t)2048 * 512 + 3, (size_t)2048 * 512};
    for (int i = 0; i < 4; i++) {
        test_swish(sizes[i], 0);
        test_slot_gates(sizes[i], 8, 0);
    }
    test_swish(4096, 1);
    test_slot_gates(4096, 1, 1);
    /* M: fla's 64 (8 lanes a row), odd, a multiple of 8 short of a power of
     * two, 100 (no multiple of 8), the widest by 16-byte accesses and by
     * single values; rows off any block's count */
    const int sm[][2] = {{1, 64}, {1003, 64}, {517, 3}, {517, 72}, {333, 100}, {130, 1024}, {40, 1023}};
    for (size_t i = 0; i < sizeof sm / sizeof sm[0]; i++)
        test_softmax(sm[i][0], sm[i][1], 0);
    test_softmax(1003, 64, 80);
    test_softmax(65, 1000, 80);
    /* C: fla's widths (1024, 2048), odd (1001), several chunks a thread
     * (8192), a partial chunk (520); rows: one, and off the backward's 16 */
    const int on[][2] = {{1, 1024}, {37, 1024}, {300, 2048}, {37, 1001}, {21, 520}, {17, 8192}};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        test_output_norm(on[i][0], on[i][1], 1, 1);
        test_output_norm(on[i][0], on[i][1], 0, 1);
    }
    test_output_norm(37, 1024, 1, 0);
    test_model(2, 16, 0);
    test_model(4, 8, 1);
    return testing_result("test_gsa_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
