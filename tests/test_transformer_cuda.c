/* The transformer's CUDA kernels (plugins/transformer/transformer_cuda.h)
 * against their CPU references, and the whole transformer model on the CUDA
 * op table against the same model on the CPU one:
 *  - the same inputs on both sides: drawn on the host as values bf16 holds
 *    exactly (never zero-filled), fp32 for the CPU, cast to bf16 (to_act) for
 *    the GPU; bf16 outputs come back through from_act;
 *  - error measure: ‖gpu − cpu‖ / ‖cpu‖ over each whole output or gradient,
 *    under 1e-2 where the GPU's value passes through bf16 (o, rotary outputs
 *    and every gradient), under 1e-3 for the attention's lse (fp32 from bf16
 *    products of the same inputs);
 *  - every output, gradients included, is poisoned with NaN first, so a
 *    value left unwritten fails; the GPU's backward runs from its own o and
 *    lse, as in the model;
 *  - attention twice, Hopper's kernels where they apply (head dims 64 and 128
 *    on an H100/H200) and then the portable ones for every shape, each time
 *    at sequence lengths 1, 65, 100, 300, 1000 and 2048 (not multiples of
 *    the tiles of 64 and 128 rows), varlen batches of uneven documents, GQA
 *    (H=4 with Hkv=2 and Hkv=1) and MHA, head dims 64 and 128 and others
 *    (16, 32, 96); sliding windows of 1 to 200 tokens (shorter than the
 *    sequence, off and on the tiles' edges) and one longer than every
 *    sequence, the CPU's masked loop the reference; rotary out of place, in
 *    place and backward, varlen;
 *  - q, k and v as column blocks of one buffer (a joined projection's
 *    output, rows a stride apart): rotary, the attention (both kernel
 *    sets) and its gradients give the packed layout's values bit for bit
 *    (on Hopper at head dim 64 two runs of the backward that sums dq across
 *    blocks in turns: the order of its sums is fixed);
 *  - generation's attention step, several positions in a row after a cache
 *    of random positions, with GQA, windows and head dims 16 to 128, and
 *    the caches it writes (keys rotated), also from a joined buffer;
 *  - the model: the same (bf16-exact) weights on both backends, a batch with
 *    and without cu_seqlens, with and without a window: the loss, the logits and every parameter's
 *    gradient (see model_case for its tolerances); and its generation on
 *    CUDA, 1 and 4 rows of 100 tokens through the key and value cache,
 *    against its CUDA forward (test_decode_on_gpu).
 * `test_transformer_cuda --bench [B T H Hkv hd]` times the attention instead, at
 * the shape given or else at the 340M shape (B=8, T=2048, H=16, hd=64), at
 * hd=128 and at GPT-2 small's (B=32, T=1024, H=12, hd=64), in ms and TFLOP/s (see
 * bench for the FLOP convention), Hopper's kernels and then the portable ones; a shape it cannot time is one
 * line and exit 2. Without CUDA in the build, or without a
 * usable GPU, it prints "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <flame/plugin.h>

#include "plugin_cuda_testing.h"
#include "testing.h"
#include "transformer_cuda.h"
#include "transformer_kernels.h"

#define TOL_LSE 1e-3  /* the attention's fp32 log-sum-exp */

static const transformer_kernels *cpu_k = &transformer_kernels_cpu, *gpu_k = &transformer_kernels_cuda;

/* ==================================================================== attention */

typedef struct attn_inputs {
    int n;
    size_t nq, nkv, nrows; /* values of q (and o), of k and v; rows of lse */
    float *q, *k, *v, *dout;
} attn_inputs;

/* scores of a few units (q, k in ±2): peaked enough that the running max of
 * the online softmax moves from tile to tile */
static attn_inputs attn_inputs_make(const attention_dims *d)
{
    attn_inputs in;
    in.n = d->seqs.cu_seqlens[d->seqs.n_seqs];
    in.nq = (size_t)in.n * d->H * d->hd, in.nkv = (size_t)in.n * d->Hkv * d->hd;
    in.nrows = (size_t)in.n * d->H;
    in.q = testing_random_bf16(in.nq, -2, 2);
    in.k = testing_random_bf16(in.nkv, -2, 2);
    in.v = testing_random_bf16(in.nkv, -1, 1);
    in.dout = testing_random_bf16(in.nq, -1, 1);
    return in;
}

static double norm_of(const float *x, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return sqrt(sum);
}

static void attn_inputs_free(attn_inputs *in) { free(in->q), free(in->k), free(in->v), free(in->dout); }

/* "" while Hopper's kernels take the head dims they take, " portable" once
 * every call goes to the portable ones */
static const char *attention_kernels = "";

/* rd > 0: dq and dk taken back through a rotary turn of rd of each head
 * (attention_dims.rotary_rd; Hopper's kernels turn them as they write where
 * rd = hd, the others after) */
static void test_attention(const char *name, const int32_t *cu, int n_seqs, int H, int Hkv, int hd,
                           int window, int rd)
{
    char shape[128];
    snprintf(shape, sizeof shape, "%s H=%d Hkv=%d hd=%d n=%d window=%d rd=%d%s", name, H, Hkv, hd,
             cu[n_seqs], window, rd, attention_kernels);
    attention_dims d = {{cu, n_seqs, NULL}, H, Hkv, hd, 1.0f / sqrtf((float)hd), window, 0, rd, 10000.0f};
    attn_inputs in = attn_inputs_make(&d);

    /* the CPU: o, lse, and what the backward adds to dq, dk, dv */
    float *o = malloc(in.nq * sizeof *o), *lse = malloc(in.nrows * sizeof *lse);
    float *dq = calloc(in.nq, sizeof *dq), *dk = calloc(in.nkv, sizeof *dk);
    float *dv = calloc(in.nkv, sizeof *dv);
    cpu_k->attention_forward(o, lse, in.q, in.k, in.v, &d);
    cpu_k->attention_backward(dq, dk, dv, in.dout, o, lse, in.q, in.k, in.v, &d, NULL);

    /* the GPU, its backward from its own o and lse */
    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    d.seqs.cu_seqlens_backend = cu_dev;
    void *q_d = acts_to_device(in.q, in.nq), *k_d = acts_to_device(in.k, in.nkv);
    void *v_d = acts_to_device(in.v, in.nkv), *dout_d = acts_to_device(in.dout, in.nq);
    void *o_d = dev_poisoned(in.nq * dev->act_bytes);
    float *lse_d = dev_poisoned(in.nrows * sizeof(float));
    void *dq_d = dev_poisoned(in.nq * dev->act_bytes), *dk_d = dev_poisoned(in.nkv * dev->act_bytes);
    void *dv_d = dev_poisoned(in.nkv * dev->act_bytes);
    float *work = dev_alloc(gpu_k->attention_work_floats(in.n, H, hd) * sizeof(float));
    gpu_k->attention_forward(o_d, lse_d, q_d, k_d, v_d, &d);
    gpu_k->attention_backward(dq_d, dk_d, dv_d, dout_d, o_d, lse_d, q_d, k_d, v_d, &d, work);
    compare("attention o", shape, acts_to_host(o_d, in.nq), o, in.nq, TOL_BF16);
    compare("attention lse", shape, floats_to_host(lse_d, in.nrows), lse, in.nrows, TOL_LSE);
    /* dq and dk vanish where every query sees only itself (a window of 1, a
     * sequence of one token): their error is then measured against dv's size */
    double dv_size = norm_of(dv, in.nkv), dq_size = dv_size * sqrt((double)in.nq / in.nkv);
    compare_at_scale("attention dq", shape, acts_to_host(dq_d, in.nq), dq, in.nq, TOL_BF16, dq_size);
    compare_at_scale("attention dk", shape, acts_to_host(dk_d, in.nkv), dk, in.nkv, TOL_BF16, dv_size);
    compare("attention dv", shape, acts_to_host(dv_d, in.nkv), dv, in.nkv, TOL_BF16);

    void *dev_bufs[] = {cu_dev, q_d, k_d, v_d, dout_d, o_d, lse_d, dq_d, dk_d, dv_d, work};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        dev->free(dev_bufs[i]);
    float *host_bufs[] = {o, lse, dq, dk, dv};
    for (size_t i = 0; i < sizeof host_bufs / sizeof host_bufs[0]; i++)
        free(host_bufs[i]);
    attn_inputs_free(&in);
}

/* one sequence of T tokens */
static void test_attention_T(int H, int Hkv, int hd, int T, int window)
{
    int32_t cu[2] = {0, T};
    test_attention("T", cu, 1, H, Hkv, hd, window, 0);
}

static void test_attentions(void)
{
    /* lengths around and off the tiles of 64 and 128 rows; GQA 2:1 */
    const int lengths[] = {1, 65, 100, 300};
    for (int i = 0; i < 4; i++) {
        test_attention_T(4, 2, 64, lengths[i], 0);
        test_attention_T(4, 2, 128, lengths[i], 0);
    }
    /* MHA and GQA 4:1 */
    test_attention_T(2, 2, 64, 300, 0);
    test_attention_T(2, 2, 128, 300, 0);
    test_attention_T(4, 1, 64, 300, 0);
    test_attention_T(4, 1, 128, 100, 0);
    /* other head dims: the small models' 16 and 32, and 96 */
    test_attention_T(4, 2, 16, 300, 0);
    test_attention_T(4, 2, 32, 100, 0);
    test_attention_T(3, 3, 96, 200, 0);
    /* documents of 1, 63, 1, 64, 71 and 100 tokens: tiles start off the grid */
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_attention("varlen", uneven, 6, 4, 2, 64, 0, 0);
    test_attention("varlen", uneven, 6, 4, 1, 128, 0, 0);
    test_attention("varlen", uneven, 6, 2, 2, 32, 0, 0);
    /* long: many tiles, two rows of two documents */
    static const int32_t two_rows[] = {0, 130, 2048, 2113, 4096};
    test_attention("varlen", two_rows, 4, 4, 2, 64, 0, 0);
    test_attention_T(2, 1, 128, 1000, 0);
    /* sliding windows: one token, off the tiles, a tile's width, two tiles
     * and one more, longer than two tiles, and longer than every sequence */
    const int windows[] = {1, 17, 64, 129, 200};
    for (int i = 0; i < 5; i++) {
        test_attention_T(4, 2, 64, 300, windows[i]);
        test_attention_T(4, 2, 128, 300, windows[i]);
    }
    test_attention_T(2, 2, 64, 1000, 129);
    test_attention_T(4, 1, 32, 65, 3000);
    test_attention("varlen", uneven, 6, 4, 2, 64, 50, 0);
    test_attention("varlen", two_rows, 4, 4, 2, 64, 257, 0);
    /* rotary taken back: the whole head (in Hopper's kernels at 64 and 128),
     * part of it and the portable kernels' heads (a pass after) */
    test_attention("varlen", two_rows, 4, 4, 2, 64, 0, 64);
    test_attention("varlen", uneven, 6, 4, 2, 64, 0, 64);
    test_attention("varlen", uneven, 6, 4, 2, 64, 50, 64);
    test_attention("varlen", two_rows, 4, 4, 2, 128, 0, 128);
    test_attention("varlen", uneven, 6, 4, 1, 128, 0, 128);
    test_attention("varlen", uneven, 6, 4, 2, 64, 0, 32);
    test_attention("varlen", uneven, 6, 2, 2, 32, 0, 32);
}

/* ==================================================================== q, k, v side by side */

/* The attention on q, k, v as column blocks of one [n, q | k | v] buffer
 * (a joined projection's output; attention_dims.stride), its gradients into
 * one such buffer, against the same kernels on packed tensors: the same
 * values bit for bit (the same products in the same order; only the rows'
 * addresses differ). The packed results are test_attention's, checked
 * against the CPU there. */
static void test_attention_joined(const char *name, const int32_t *cu, int n_seqs, int H, int Hkv, int hd,
                                  int window, int rd)
{
    char shape[128];
    snprintf(shape, sizeof shape, "%s H=%d Hkv=%d hd=%d n=%d window=%d rd=%d%s", name, H, Hkv, hd, cu[n_seqs],
             window, rd, attention_kernels);
    attention_dims d = {{cu, n_seqs, NULL}, H, Hkv, hd, 1.0f / sqrtf((float)hd), window, 0, rd, 10000.0f};
    attn_inputs in = attn_inputs_make(&d);
    int n = in.n;
    size_t qw = (size_t)H * hd, kvw = (size_t)Hkv * hd, W = qw + 2 * kvw, act = dev->act_bytes;
    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    d.seqs.cu_seqlens_backend = cu_dev;
    /* packed */
    void *q_d = acts_to_device(in.q, in.nq), *k_d = acts_to_device(in.k, in.nkv);
    void *v_d = acts_to_device(in.v, in.nkv), *dout_d = acts_to_device(in.dout, in.nq);
    void *o_d = dev_alloc(in.nq * act), *dq_d = dev_alloc(in.nq * act), *dk_d = dev_alloc(in.nkv * act);
    void *dv_d = dev_alloc(in.nkv * act);
    float *lse_d = dev_alloc(in.nrows * sizeof(float));
    float *work = dev_alloc(gpu_k->attention_work_floats(n, H, hd) * sizeof(float));
    gpu_k->attention_forward(o_d, lse_d, q_d, k_d, v_d, &d);
    gpu_k->attention_backward(dq_d, dk_d, dv_d, dout_d, o_d, lse_d, q_d, k_d, v_d, &d, work);
    /* joined */
    float *qkv = malloc((size_t)n * W * sizeof *qkv);
    testing_put_columns(qkv, in.q, n, W, 0, qw), testing_put_columns(qkv, in.k, n, W, qw, kvw);
    testing_put_columns(qkv, in.v, n, W, qw + kvw, kvw);
    char *qkv_d = acts_to_device(qkv, (size_t)n * W), *dqkv_d = dev_poisoned((size_t)n * W * act);
    void *o2_d = dev_poisoned(in.nq * act);
    float *lse2_d = dev_poisoned(in.nrows * sizeof(float));
    attention_dims joined = d;
    joined.stride = (int)W;
    gpu_k->attention_forward(o2_d, lse2_d, qkv_d, qkv_d + qw * act, qkv_d + (qw + kvw) * act, &joined);
    gpu_k->attention_backward(dqkv_d, dqkv_d + qw * act, dqkv_d + (qw + kvw) * act, dout_d, o2_d, lse2_d, qkv_d,
                              qkv_d + qw * act, qkv_d + (qw + kvw) * act, &joined, work);
    compare_columns("joined o", shape, acts_to_host(o2_d, in.nq), n, qw, 0, qw, acts_to_host(o_d, in.nq));
    compare_columns("joined lse", shape, floats_to_host(lse2_d, in.nrows), n, H, 0, H, floats_to_host(lse_d, in.nrows));
    float *dqkv = acts_to_host(dqkv_d, (size_t)n * W);
    float *dqkv_k = malloc((size_t)n * W * sizeof *dqkv_k), *dqkv_v = malloc((size_t)n * W * sizeof *dqkv_v);
    memcpy(dqkv_k, dqkv, (size_t)n * W * sizeof *dqkv), memcpy(dqkv_v, dqkv, (size_t)n * W * sizeof *dqkv);
    compare_columns("joined dq", shape, dqkv, n, W, 0, qw, acts_to_host(dq_d, in.nq));
    compare_columns("joined dk", shape, dqkv_k, n, W, qw, kvw, acts_to_host(dk_d, in.nkv));
    compare_columns("joined dv", shape, dqkv_v, n, W, qw + kvw, kvw, acts_to_host(dv_d, in.nkv));

    void *dev_bufs[] = {cu_dev, q_d, k_d, v_d, dout_d, o_d, dq_d, dk_d, dv_d, lse_d, work, qkv_d, dqkv_d, o2_d, lse2_d};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        dev->free(dev_bufs[i]);
    free(qkv);
    attn_inputs_free(&in);
}

static void test_attentions_joined(void)
{
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_attention_joined("varlen", uneven, 6, 4, 2, 64, 0, 0);
    test_attention_joined("varlen", uneven, 6, 4, 1, 128, 0, 0);
    test_attention_joined("varlen", uneven, 6, 2, 2, 32, 0, 0);
    test_attention_joined("varlen", uneven, 6, 4, 2, 64, 50, 0);
    test_attention_joined("varlen", uneven, 6, 4, 2, 64, 0, 64);
    test_attention_joined("varlen", uneven, 6, 4, 2, 64, 0, 32);
    int32_t gpt2[] = {0, 1024}; /* GPT-2 small's heads, one sequence */
    test_attention_joined("T", gpt2, 1, 12, 12, 64, 0, 0);
}

/* ==================================================================== generation */

/* B sequences whose caches hold P random positions (a prompt), then `steps`
 * positions of generation on both backends. The caches are laid out as the
 * plugin lays them: position-major, this layer's block one of 2·L blocks a
 * position (stride), here L = 2 and the layer the second. */
static void test_attention_decode(int B, int H, int Hkv, int hd, int rd, int P, int steps, int window, int joined)
{
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d H=%d Hkv=%d hd=%d rd=%d P=%d window=%d%s", B, H, Hkv, hd, rd, P, window,
             joined ? " joined" : "");
    attention_dims d = {{NULL, 0, NULL}, H, Hkv, hd, 1.0f / sqrtf((float)hd), window, 0, 0, 0.0f};
    /* the GPU's q, k, v side by side in one buffer when joined (the CPU's packed) */
    size_t qw = (size_t)H * hd, kvw = (size_t)Hkv * hd, W = qw + 2 * kvw;
    attention_dims d_gpu = d;
    d_gpu.stride = joined ? (int)W : 0;
    size_t nq = (size_t)B * H * hd, block = (size_t)B * Hkv * hd, stride = 2 * 2 * block;
    size_t cache = (size_t)(P + steps) * stride;
    float *caches = testing_random_bf16(cache, -2, 2); /* positions ≥ P are written over */
    float *k_cache = caches + 2 * block, *v_cache = caches + 3 * block; /* layer 1 */
    void *caches_d = acts_to_device(caches, cache);
    void *k_cache_d = (char *)caches_d + 2 * block * dev->act_bytes;
    void *v_cache_d = (char *)caches_d + 3 * block * dev->act_bytes;
    float *o = malloc(nq * sizeof *o);
    void *o_d = dev_poisoned(nq * dev->act_bytes);
    for (int pos = P; pos < P + steps; pos++) {
        float *q = testing_random_bf16(nq, -2, 2), *k = testing_random_bf16(block, -2, 2);
        float *v = testing_random_bf16(block, -1, 1);
        void *q_d, *k_d, *v_d, *qkv_d = NULL;
        if (joined) {
            float *qkv = malloc((size_t)B * W * sizeof *qkv);
            testing_put_columns(qkv, q, B, W, 0, qw), testing_put_columns(qkv, k, B, W, qw, kvw), testing_put_columns(qkv, v, B, W, qw + kvw, kvw);
            qkv_d = acts_to_device(qkv, (size_t)B * W);
            q_d = qkv_d, k_d = (char *)qkv_d + qw * dev->act_bytes, v_d = (char *)qkv_d + (qw + kvw) * dev->act_bytes;
            free(qkv);
        } else {
            q_d = acts_to_device(q, nq), k_d = acts_to_device(k, block), v_d = acts_to_device(v, block);
        }
        cpu_k->attention_decode(o, q, k, v, k_cache, v_cache, stride, B, pos, &d, rd, 10000.0f);
        gpu_k->attention_decode(o_d, q_d, k_d, v_d, k_cache_d, v_cache_d, stride, B, pos, &d_gpu, rd, 10000.0f);
        compare("attention decode o", shape, acts_to_host(o_d, nq), o, nq, TOL_BF16);
        if (joined)
            dev->free(qkv_d);
        else
            dev->free(q_d), dev->free(k_d), dev->free(v_d);
        free(q), free(k), free(v);
    }
    /* the rotated keys and the values written at the new positions, and
     * nothing else of the caches touched */
    compare("attention decode caches", shape, acts_to_host(caches_d, cache), caches, cache, TOL_BF16);
    dev->free(caches_d), dev->free(o_d);
    free(caches), free(o);
}

static void test_attention_decodes(void)
{
    test_attention_decode(1, 4, 2, 64, 64, 0, 3, 0, 0);     /* from the first position */
    test_attention_decode(3, 4, 2, 64, 64, 100, 4, 0, 0);   /* GQA, warps of uneven shares */
    test_attention_decode(2, 2, 2, 128, 128, 300, 2, 0, 0); /* 4 values a lane */
    test_attention_decode(2, 4, 1, 48, 48, 65, 2, 0, 0);    /* lanes partly idle */
    test_attention_decode(2, 4, 2, 16, 16, 40, 3, 17, 0);   /* a window inside the cache */
    test_attention_decode(16, 16, 16, 64, 64, 700, 2, 0, 0); /* the 340M shape */
    test_attention_decode(4, 12, 12, 64, 0, 200, 3, 0, 1);   /* GPT-2's: no rotary, q, k, v joined */
    test_attention_decode(2, 4, 4, 80, 40, 100, 2, 0, 1);   /* GPT-3's -rotary: half of heads of 80, joined */
    test_attention_decode(3, 4, 2, 64, 64, 100, 2, 0, 1);   /* GQA, joined */
}

/* ==================================================================== rotary */

/* the first rd of each head of hd turned */
static void test_rotary(const char *name, const int32_t *cu, int n_seqs, int heads, int hd, int rd)
{
    char shape[96];
    int n = cu[n_seqs];
    snprintf(shape, sizeof shape, "%s heads=%d hd=%d rd=%d n=%d", name, heads, hd, rd, n);
    transformer_seqs s = {cu, n_seqs, NULL};
    size_t len = (size_t)n * heads * hd;
    const float base = 10000.0f;
    float *x = testing_random_bf16(len, -2, 2), *dout = testing_random_bf16(len, -1, 1);
    float *out = malloc(len * sizeof *out), *dx = calloc(len, sizeof *dx);
    size_t stride = (size_t)heads * hd;
    cpu_k->rotary_forward(out, x, &s, heads, hd, rd, base, stride);
    rotary_backward_cpu(dx, dout, &s, heads, hd, rd, base, stride);

    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    s.cu_seqlens_backend = cu_dev;
    void *x_d = acts_to_device(x, len), *dout_d = acts_to_device(dout, len);
    void *out_d = dev_poisoned(len * dev->act_bytes), *dx_d = dev_poisoned(len * dev->act_bytes);
    gpu_k->rotary_forward(out_d, x_d, &s, heads, hd, rd, base, stride);
    rotary_backward_cuda(dx_d, dout_d, &s, heads, hd, rd, base, stride);
    compare("rotary out", shape, acts_to_host(out_d, len), out, len, TOL_BF16);
    compare("rotary dx", shape, acts_to_host(dx_d, len), dx, len, TOL_BF16);
    /* in place, as the plugin runs it */
    gpu_k->rotary_forward(x_d, x_d, &s, heads, hd, rd, base, stride);
    compare("rotary out (in place)", shape, acts_to_host(x_d, len), out, len, TOL_BF16);

    dev->free(cu_dev), dev->free(x_d), dev->free(dout_d), dev->free(out_d), dev->free(dx_d);
    free(x), free(dout), free(out), free(dx);
}

/* rotary on q and k as column blocks of one [n, q | k | v] buffer, q's
 * and k's heads turned in one call, against the packed calls: the same
 * values bit for bit, v untouched; out of place with a part of each head
 * left as it is (copied), and the backward in place */
static void test_rotary_joined(const int32_t *cu, int n_seqs, int H, int Hkv, int hd, int rd)
{
    char shape[96];
    int n = cu[n_seqs];
    snprintf(shape, sizeof shape, "joined H=%d Hkv=%d hd=%d rd=%d n=%d", H, Hkv, hd, rd, n);
    transformer_seqs s = {cu, n_seqs, NULL};
    size_t qw = (size_t)H * hd, kvw = (size_t)Hkv * hd, W = qw + 2 * kvw, act = dev->act_bytes;
    const float base = 10000.0f;
    float *qkv = testing_random_bf16((size_t)n * W, -2, 2);
    float *q = malloc((size_t)n * qw * sizeof *q), *k = malloc((size_t)n * kvw * sizeof *k);
    float *v = malloc((size_t)n * kvw * sizeof *v);
    for (int r = 0; r < n; r++) {
        memcpy(q + r * qw, qkv + r * W, qw * sizeof *q);
        memcpy(k + r * kvw, qkv + r * W + qw, kvw * sizeof *k);
        memcpy(v + r * kvw, qkv + r * W + qw + kvw, kvw * sizeof *v);
    }
    int32_t *cu_dev = ints_to_device(cu, (size_t)n_seqs + 1);
    s.cu_seqlens_backend = cu_dev;
    void *q_d = acts_to_device(q, (size_t)n * qw), *k_d = acts_to_device(k, (size_t)n * kvw);
    void *qkv_d = acts_to_device(qkv, (size_t)n * W), *out_d = dev_poisoned((size_t)n * W * act);
    gpu_k->rotary_forward(out_d, qkv_d, &s, H + Hkv, hd, rd, base, W); /* out of place first */
    gpu_k->rotary_forward(qkv_d, qkv_d, &s, H + Hkv, hd, rd, base, W);
    gpu_k->rotary_forward(q_d, q_d, &s, H, hd, rd, base, qw);
    gpu_k->rotary_forward(k_d, k_d, &s, Hkv, hd, rd, base, kvw);
    compare_columns("rotary joined q", shape, acts_to_host(qkv_d, (size_t)n * W), n, W, 0, qw,
                  acts_to_host(q_d, (size_t)n * qw));
    compare_columns("rotary joined k", shape, acts_to_host(qkv_d, (size_t)n * W), n, W, qw, kvw,
                  acts_to_host(k_d, (size_t)n * kvw));
    float *v_copy = malloc((size_t)n * kvw * sizeof *v_copy);
    memcpy(v_copy, v, (size_t)n * kvw * sizeof *v);
    compare_columns("rotary joined v", shape, acts_to_host(qkv_d, (size_t)n * W), n, W, qw + kvw, kvw, v_copy);
    compare_columns("rotary joined out q", shape, acts_to_host(out_d, (size_t)n * W), n, W, 0, qw,
                  acts_to_host(q_d, (size_t)n * qw));
    rotary_backward_cuda(qkv_d, qkv_d, &s, H + Hkv, hd, rd, base, W);
    rotary_backward_cuda(q_d, q_d, &s, H, hd, rd, base, qw);
    compare_columns("rotary joined dx", shape, acts_to_host(qkv_d, (size_t)n * W), n, W, 0, qw,
                  acts_to_host(q_d, (size_t)n * qw));
    dev->free(cu_dev), dev->free(q_d), dev->free(k_d), dev->free(qkv_d), dev->free(out_d);
    free(qkv), free(q), free(k), free(v);
}

/* Calls alternating between two head sizes (the transformer's layers and a
 * GPT-3 -rotary's partial heads in one process, or two models in turn): the
 * angle table kept for the last (half, base) is made again at each change, and
 * must stay the size asked, not grow with every change. 48 changes at one
 * position would ask 2^48 positions of a table that doubled each time; here
 * the free memory may drop by at most what the tables of a 4096-token
 * sequence take, and the rotation after them is checked against the CPU. */
static void test_rotary_alternating(void)
{
    static const int32_t one[] = {0, 1}, long_one[] = {0, 4096};
    transformer_seqs s = {one, 1, ints_to_device(one, 2)};
    float *x = testing_random_bf16(2 * 128, -2, 2);
    void *x_d = acts_to_device(x, 2 * 128);
    size_t free_before, free_after, total;
    gpu_k->rotary_forward(x_d, x_d, &s, 2, 128, 128, 10000.0f, 256); /* the table's first size */
    CHECK(cudaDeviceSynchronize() == cudaSuccess && cudaMemGetInfo(&free_before, &total) == cudaSuccess,
          "rotary alternating: cudaMemGetInfo");
    for (int change = 0; change < 48; change++) {
        int hd = change % 2 ? 128 : 64;
        gpu_k->rotary_forward(x_d, x_d, &s, 2, hd, hd, 10000.0f, 256);
    }
    CHECK(cudaDeviceSynchronize() == cudaSuccess && cudaMemGetInfo(&free_after, &total) == cudaSuccess,
          "rotary alternating: a CUDA error");
    size_t tables = (size_t)4096 * 64 * 2 * sizeof(float); /* 4096 positions × 64 pairs of (cos, sin) */
    CHECK(free_before - free_after <= tables + ((size_t)2 << 20), /* + the allocator's rounding */
          "rotary alternating: 48 changes of head size took %zu bytes more (at most %zu expected)",
          free_before > free_after ? free_before - free_after : 0, tables + ((size_t)2 << 20));
    dev->free(x_d), dev->free((void *)s.cu_seqlens_backend), free(x);
    test_rotary("after alternating", long_one, 1, 4, 64, 64);
    test_rotary("after alternating", long_one, 1, 2, 128, 128);
}

static void test_rotaries(void)
{
    static const int32_t one[] = {0, 1}, long_one[] = {0, 4096};
    static const int32_t uneven[] = {0, 1, 64, 65, 129, 200, 300};
    test_rotary("T", one, 1, 4, 64, 64);
    test_rotary("T", long_one, 1, 16, 64, 64); /* angles of thousands of radians */
    test_rotary("varlen", uneven, 6, 4, 128, 128);
    test_rotary("varlen", uneven, 6, 3, 16, 16);
    /* flash-attn's rotary_emb_fraction 0.5: GPT-3 2.7B's heads of 80 (20 pairs: one a thread) */
    test_rotary("varlen", uneven, 6, 4, 64, 32);
    test_rotary("varlen", uneven, 6, 4, 80, 40);
    test_rotary("varlen", uneven, 6, 2, 128, 64);
    test_rotary_joined(uneven, 6, 4, 2, 64, 64);
    test_rotary_joined(uneven, 6, 4, 4, 80, 40); /* pairs one a thread, the rest copied */
    test_rotary_joined(uneven, 6, 2, 2, 128, 64);
    test_rotary_alternating();
}

/* ==================================================================== the model */

static void test_model(void)
{
    kv_config cfg = kv_lm_config(&(kv_lm_keys){.D = 128, .L = 2, .V = 97, .I = 192, .eps = 1e-6});
    kv_set(&cfg, "num_heads", "4");
    kv_set(&cfg, "num_kv_heads", "2");
    kv_set(&cfg, "rope_theta", "10000");
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 1, 100);
    test_decode_on_gpu(&cfg, 4, 100);
    kv_set(&cfg, "window_size", "33");
    printf("model: window_size 33\n");
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 4, 100);
}

/* the CUDA table refuses head dims its attention has no kernel for, at create */
static void test_refusal(void)
{
    kv_config cfg = kv_lm_config(&(kv_lm_keys){.D = 72, .L = 1, .V = 97, .I = 192, .eps = 1e-6});
    kv_set(&cfg, "num_heads", "2");
    flame_model_config view = view_of(&cfg);
    char err[256] = "";
    void *m = flame_plugin_entry()->create(&view, &flame_cuda_ops, err, sizeof err);
    printf("head dim 36 on cuda: %s\n", err);
    CHECK(m == NULL && strstr(err, "num_heads") && strstr(err, "head dim 36"),
          "head dim 36 on cuda: expected a refusal naming num_heads, got '%s'", err);
    if (m)
        flame_plugin_entry()->destroy(m);
}

/* the attention's kernels for what follows: where they apply Hopper's (0),
 * or the portable ones for every call (1) */
static void set_attention_kernels(int portable)
{
    attention_cuda_portable_only(portable);
    attention_kernels = portable ? " portable" : "";
}

/* ==================================================================== --bench */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Mean wall time of the GPU attention, forward and backward, over B rows of T
 * tokens. FLOPs as FlashAttention counts them for causal attention: the
 * forward's two products Q·Kᵀ and P·V take 2·2·B·H·T²·hd, halved for the
 * causal mask; the backward counts 2.5 times the forward (its five products,
 * dV, dP, dS's S again, dQ, dK) although this backward forms S and dP twice
 * (seven), to stay deterministic without atomics. */
static void bench(int B, int T, int H, int Hkv, int hd, int reps)
{
    int n = B * T;
    int32_t *cu = malloc((B + 1) * sizeof *cu);
    for (int b = 0; b <= B; b++)
        cu[b] = b * T;
    int32_t *cu_dev = ints_to_device(cu, (size_t)B + 1);
    attention_dims d = {{cu, B, cu_dev}, H, Hkv, hd, 1.0f / sqrtf((float)hd), 0, 0, 0, 0.0f};
    size_t nq = (size_t)n * H * hd, nkv = (size_t)n * Hkv * hd, act = dev->act_bytes;
    float *x = testing_random_bf16(nq + 3, -2, 2); /* q, k, v, dout: shifted views of x */
    void *q = acts_to_device(x, nq), *k = acts_to_device(x + 1, nkv), *v = acts_to_device(x + 2, nkv);
    void *dout = acts_to_device(x + 3, nq);
    void *o = dev_alloc(nq * act), *dq = dev_alloc(nq * act), *dk = dev_alloc(nkv * act);
    void *dv = dev_alloc(nkv * act);
    float *lse = dev_alloc((size_t)n * H * sizeof(float));
    float *work = dev_alloc(gpu_k->attention_work_floats(n, H, hd) * sizeof(float));
    double fwd = 0, bwd = 0;
    for (int r = -1; r < reps; r++) { /* r = -1 warms up */
        cudaDeviceSynchronize();
        double t0 = now_ms();
        gpu_k->attention_forward(o, lse, q, k, v, &d);
        cudaDeviceSynchronize();
        double t1 = now_ms();
        gpu_k->attention_backward(dq, dk, dv, dout, o, lse, q, k, v, &d, work);
        cudaDeviceSynchronize();
        double t2 = now_ms();
        if (r >= 0)
            fwd += t1 - t0, bwd += t2 - t1;
    }
    CHECK(cudaGetLastError() == cudaSuccess, "bench: a CUDA error");
    fwd /= reps, bwd /= reps;
    double flops_fwd = 4.0 * B * H * (double)T * T * hd / 2, flops_bwd = 2.5 * flops_fwd;
    printf("attention%s B=%d T=%d H=%d Hkv=%d hd=%d: forward %.3f ms (%.1f TFLOP/s), "
           "backward %.3f ms (%.1f TFLOP/s) (mean of %d)\n",
           attention_kernels, B, T, H, Hkv, hd, fwd, flops_fwd / fwd / 1e9, bwd, flops_bwd / bwd / 1e9,
           reps);
    void *bufs[] = {q, k, v, dout, o, dq, dk, dv, lse, work, cu_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->free(bufs[i]);
    free(cu), free(x);
}

/* --bench's shape B T H Hkv hd from argv[2..6]: 1, 0 when none is given, −1
 * (and a line why) when it is not one the attention takes */
static int bench_shape(int argc, char **argv, int (*shape)[5])
{
    if (argc == 2)
        return 0;
    int ok = argc == 7;
    for (int i = 0; ok && i < 5; i++) {
        char end;
        ok = sscanf(argv[2 + i], "%d%c", &(*shape)[i], &end) == 1 && (*shape)[i] > 0;
    }
    if (ok && (*shape)[2] % (*shape)[3] == 0 && (*shape)[4] % 16 == 0 && (*shape)[4] <= 128)
        return 1;
    fprintf(stderr, "usage: %s --bench [B T H Hkv hd] (positive whole numbers, H a multiple of Hkv, "
                    "hd a multiple of 16 up to 128)\n", argv[0]);
    return -1;
}

int main(int argc, char **argv)
{
    int bench_mode = argc > 1 && strcmp(argv[1], "--bench") == 0, shape[5];
    int given = bench_mode ? bench_shape(argc, argv, &shape) : 0;
    if (given < 0)
        return 2;
    if (!cuda_testing_device())
        return 77;
    testing_seed(20240917);
    if (bench_mode) {
        printf("FLOPs: forward 4·B·H·T²·hd/2 (causal), backward 2.5× that\n");
        for (int portable = 0; portable < 2; portable++) {
            set_attention_kernels(portable);
            if (given) {
                bench(shape[0], shape[1], shape[2], shape[3], shape[4], 10);
                continue;
            }
            bench(8, 2048, 16, 16, 64, 10); /* the 340M shape */
            bench(8, 2048, 8, 8, 128, 10);
            bench(32, 1024, 12, 12, 64, 10); /* GPT-2 small */
        }
        return testing_result("test_transformer_cuda --bench");
    }
    printf("error: ||gpu - cpu|| / ||cpu|| over each output, tolerance %g through bf16, %g for lse\n",
           TOL_BF16, TOL_LSE);
    test_rotaries();
    for (int portable = 0; portable < 2; portable++) {
        set_attention_kernels(portable);
        test_attentions();
        test_attentions_joined();
    }
    set_attention_kernels(0);
    test_attention_decodes();
    test_refusal();
    test_model();
    return testing_result("test_transformer_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
