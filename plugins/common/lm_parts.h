/* The parts of a decoder language model that every architecture plugin
 * shares: one activation arena carved into pieces, taking in a batch, the
 * pre-norm MLP block (SwiGLU, or GPT's GELU with biases) and the LM head
 * (final norm, lm_head, cross-entropy): lm_parts.c the options, the arena
 * and the batch, lm_block.c the norms and the MLP, lm_head.c the head.
 * Compiled into each plugin, since a plugin loads alone. Like the op table,
 * backward functions ADD into parameter gradients.
 *
 * Norms are RMSNorm(x)·w, or LayerNorm(x)·w + b (GPT's) where the piece
 * keeping a norm's statistics has a `mean`: the carve functions take
 * `layernorm` and leave mean NULL without it, so one pointer says which.
 *
 * The residual stream (a block's input and output, and its gradient) is in
 * the activation type, or in fp32 where the model keeps it there (GPT's
 * residual_in_fp32, LayerNorm only): the functions that touch it take
 * `f32`, or the gradient's copy as activations (d_resid_act, what products
 * read; NULL for a stream of activations, which products read as it is), and
 * the ops' _f32 entries then read and write it, the norms' backward keeping
 * d_resid_act current. */
#ifndef FLAME_LM_PARTS_H
#define FLAME_LM_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include <flame/plugin.h>

/* A plugin's [model] options, read with the defaults of the plugin's own
 * table as the fallback (so it works whether or not the core counts defaults
 * as set, and in tests that build a config by hand). */
typedef struct lm_options {
    const flame_model_config *cfg;
    const flame_option *table;
    int n;
} lm_options;

int lm_opt_given(const lm_options *o, const char *key);
int64_t lm_opt_int(const lm_options *o, const char *key);
double lm_opt_float(const lm_options *o, const char *key);
int lm_opt_bool(const lm_options *o, const char *key);
const char *lm_opt_string(const lm_options *o, const char *key);
/* a whole number in [1, 2^31); returns 0, or -1 with one line in err */
int lm_read_size(const lm_options *o, const char *key, int *out, char *err, size_t err_len);

/* fla's key_dim = int(hidden_size·expand_k) and value_dim = int(hidden_size·expand_v)
 * for D and H heads: each at least H and a multiple of it. Returns 0, or -1
 * with one line in err naming the key. */
int lm_read_head_widths(const lm_options *o, int D, int H, int *key_dim, int *value_dim,
                        char *err, size_t err_len);
/* num_kv_heads unset or equal to num_heads, the only grouping the linear
 * attentions support yet; returns 0, or -1 with one line in err */
int lm_check_kv_heads_equal(const lm_options *o, char *err, size_t err_len);

/* The settings a plugin does not implement yet: each of bools must hold its
 * supported value and each of unset_only must be left unset. Returns 0, or -1
 * with one line in err naming the key. */
typedef struct lm_bool_setting {
    const char *key;
    int supported;
} lm_bool_setting;
int lm_check_supported(const lm_options *o, const lm_bool_setting *bools, int n_bools,
                       const char *const *unset_only, int n_unset, char *err, size_t err_len);
#define LM_COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* Hands out consecutive pieces of an arena, each starting on a 256-byte
 * boundary (what matrix kernels read fastest); with base NULL it only counts.
 * Activations take act_bytes per value (the op table's type), floats 4.
 * The arena has two parts. The first holds what outlives a call: the
 * parameters' activations kept from forward to backward, the streams, and
 * every buffer a call reads that an earlier call wrote. The second, the
 * scratch, holds buffers that one layer's forward or backward writes before
 * it reads them (every layer reuses them) and that nothing reads between the
 * model's last layer forward and its first layer backward: there, in the same
 * memory, lie the LM head's logits (lm_take_logits), which live exactly then.
 * The arena is the first part and the larger of the scratch and the logits. */
typedef struct lm_carver {
    char *base;
    size_t used;         /* bytes of the first part */
    size_t scratch_used; /* bytes of the scratch */
    size_t logits_bytes;
    size_t scratch_at;   /* where the scratch starts: the first part's bytes (known in the second pass) */
    size_t act_bytes;
} lm_carver;

void *lm_take_acts(lm_carver *cv, size_t count);
float *lm_take_floats(lm_carver *cv, size_t count);
int32_t *lm_take_ints(lm_carver *cv, size_t count);
/* buffers in the scratch (above: written before they are read in each layer's call) */
void *lm_take_scratch_acts(lm_carver *cv, size_t count);
float *lm_take_scratch_floats(lm_carver *cv, size_t count);
/* the LM head's logits, laid over the scratch */
void *lm_take_logits(lm_carver *cv, size_t count);
/* the arena's bytes, once everything is taken */
size_t lm_carver_bytes(const lm_carver *cv);
/* the activation `index` values past base */
void *lm_act_at(const flame_ops *ops, const void *base, size_t index);

/* The last batch, as the layers need it: the pointers of the flame_batch the
 * core handed to forward (valid until backward returns), nothing copied. */
typedef struct lm_batch {
    const int32_t *tokens, *targets; /* backend [n] */
    const int32_t *cu;         /* host [n_seqs+1]: sequence offsets */
    const int32_t *cu_backend; /* the same offsets in backend memory, for kernels that cannot read the host's */
    int cap;                   /* tokens reserved */
    int n, n_seqs;             /* of the last batch; n = 0 before any (or after a refused one) */
    int counted;               /* targets ≥ 0 of the last batch */
} lm_batch;

/* Takes in b: its size and sequence offsets against the reservation, then
 * keeps its pointers. Returns 0, or -1 after one line on stderr starting with who. */
int lm_batch_load(lm_batch *lb, const flame_batch *b, const char *who);

/* out = in + down(silu(gate(x)) · up(x)), x = norm(in), gate and up one
 * product of 2I columns, or without a gate
 * (GPT's) out = in + down(gelu(up(x))), up and down with biases; void
 * pointers are activations (and the parameters' compute view), float ones
 * fp32. A layer keeps the norm's statistics and the products. What else it
 * keeps, lm_mlp_kept says; what it does not keep is made again in the
 * backward. GPT's GELU is always kept (as flash-attn's fused MLP keeps it):
 * made again it was a pass of its own, 2 % of GPT-2 small's step on an H200. */
typedef struct lm_mlp_kept {
    /* the norm's output x, n·D values a layer (else a pass of its own in the
     * backward: 0.4–0.5 ms a step of GPT-2 small and transformer-340M on an H100) */
    int norm_output;
    /* SwiGLU's activation, n·I values a layer (else the SwiGLU backward, which
     * reads gate and up anyway, writes it again: n·I more values written) */
    int activation;
} lm_mlp_kept;

typedef struct lm_mlp_acts {
    float *mean, *rstd; /* [n]; mean NULL for RMSNorm */
    void *x;            /* [n,D]: the norm's output where the shape keeps it (else NULL: lm_mlp_scratch's) */
    void *gate_up;      /* [n,2I] with a gate: gate's and up's columns, one product */
    void *up;           /* [n,I] without one (GPT's): up's output */
    void *act;          /* [n,I]: gelu(up), or SwiGLU's activation where kept (else NULL: lm_mlp_scratch's) */
} lm_mlp_acts;

/* reused by every layer */
typedef struct lm_mlp_scratch {
    void *x;        /* [n,D]: the norm's output where the layers do not keep it (made again in the backward) */
    void *act;      /* [n,I] with a gate: SwiGLU's activation where the layers
                     * do not keep it; in the backward first its gradient, then
                     * (not kept) the activation made again over it */
    void *dgate_up; /* [n,2I] with a gate: the gradients of gate_up */
    void *dup;      /* [n,I] without one */
} lm_mlp_scratch;

typedef struct lm_mlp_params {
    const void *norm, *down;
    float *dnorm, *ddown;
    /* a gated MLP's gate and up: one [2I,D] matrix of two blocks of I rows
     * (its gradient likewise), the gate's first unless gate_second */
    const void *gate_up;
    float *dgate_up;
    int gate_second;
    /* without a gate (GPT's, gate_up NULL): up, and the norm's, up's and down's biases */
    const void *up, *norm_bias, *up_bias, *down_bias;
    float *dup, *dnorm_bias, *dup_bias, *ddown_bias;
} lm_mlp_params;

/* The backward of a pre-norm block's input side: projections out_i = a·W_iᵀ
 * (+ b_i) (N_i columns) that all read a = norm(x). Their input gradients are
 * summed into d_x ([n,D] scratch; the first written, the rest added), their
 * weight (and bias) gradients added, and the norm's backward adds ∂loss/∂x
 * into d_resid (which already carries the residual path's). */
typedef struct lm_projection {
    const void *weight;
    float *dweight;
    const void *dout; /* [n,N] */
    int N;
    float *dbias; /* NULL: no bias */
} lm_projection;
typedef struct lm_prenorm {
    const void *x, *a; /* the block's input and its normalized copy */
    const void *weight;
    float *dweight;
    const float *rstd;
    /* a LayerNorm's: its bias (NULL: none) and mean (NULL: an RMSNorm) */
    const void *bias;
    float *dbias;
    const float *mean;
    void *d_resid_act; /* x and d_resid an fp32 stream: d_resid's copy as activations, else NULL */
} lm_prenorm;
void lm_prenorm_backward(const flame_ops *ops, const lm_prenorm *norm, const lm_projection *p,
                         int count, void *d_x, void *d_resid, int n, int D);

/* ---- lm_block.c ---- */

/* the norms of a model: RMSNorm, or LayerNorm with bias (mean non-NULL);
 * x (and dx) fp32 when f32 */
void lm_norm_forward(const flame_ops *ops, void *out, float *mean, float *rstd, const void *x,
                     const void *weight, const void *bias, int n, int D, float eps, int f32);
/* dx (mode) from dout through the norm of x; the weight's (and bias')
 * gradients added; with dx_act (x and dx fp32) the new dx also into it as
 * activations */
void lm_norm_backward(const flame_ops *ops, void *dx, flame_grad_mode mode, void *dx_act, float *dweight,
                      float *dbias, const void *dout, const void *x, const void *weight, const float *mean,
                      const float *rstd, int n, int D);
/* out[n,N] = residual + in·weightᵀ (+ bias): a branch's last product joining
 * the stream (out and residual fp32 when f32; out may be residual) */
void lm_residual_product(const flame_ops *ops, void *out, const void *in, const void *weight, const void *bias,
                         const void *residual, int n, int K, int N, int f32);
/* a norm's statistics over n rows: rstd, and a LayerNorm's mean (NULL without layernorm) */
void lm_carve_norm_stats(float **mean, float **rstd, lm_carver *cv, size_t n, int layernorm);


void lm_mlp_carve(lm_mlp_acts *a, lm_carver *cv, size_t n, int D, int I, int layernorm, int gated,
                  lm_mlp_kept kept);
void lm_mlp_scratch_carve(lm_mlp_scratch *s, lm_carver *cv, size_t n, int D, int I, int gated, lm_mlp_kept kept);
/* in and out are the residual stream (fp32 when f32) */
void lm_mlp_forward(const flame_ops *ops, lm_mlp_acts *a, const lm_mlp_params *p,
                    lm_mlp_scratch *s, const void *in, void *out, int n, int D, int I, float eps, int f32);
/* d_resid: ∂loss/∂out in, ∂loss/∂in out (d_resid_act the same as
 * activations, for an fp32 stream); d_x: [n,D] scratch */
void lm_mlp_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                     lm_mlp_scratch *s, void *d_x, void *d_resid, void *d_resid_act, const void *in, int n,
                     int D, int I, float eps);

/* logits = norm(h) · lm_headᵀ; loss = mean cross-entropy over counted
 * targets. The loss and the logits' gradient are made a chunk of rows at a
 * time by the op table's lm_head_loss (the gradient as rows and a scale of
 * each row's). Where the batch spans several chunks the forward keeps only
 * the normalized h and the backward makes each chunk's gradient again; for a
 * batch of one chunk the forward's gradient is kept for the next backward.
 * A forward asked for the logits makes them with a product of their own.
 * The chunk lies over the arena's scratch (lm_carver). */
/* the most bytes of logits one chunk holds (4 GiB; the model tests set a few
 * hundred, so that most of their small batches span several chunks) */
extern size_t lm_head_chunk_bytes;

typedef struct lm_head {
    float *mean, *rstd; /* [n]; mean NULL for RMSNorm */
    void *x;      /* [n,D] */
    void *logits; /* [rows,V]: one chunk's logits or their gradient's rows (lm_head_loss) */
    float *row_scale; /* [n]: the gradient's scale of each row */
    int rows;     /* rows per chunk */
    int whole;    /* the last forward's batch was one chunk and no backward has run since: logits hold its gradient */
} lm_head;

typedef struct lm_head_params {
    const void *norm, *head;
    float *dnorm, *dhead;
    const void *norm_bias; /* a LayerNorm's, else NULL */
    float *dnorm_bias;
} lm_head_params;

void lm_head_carve(lm_head *hd, lm_carver *cv, size_t n, int D, int V, int layernorm);
/* the mean loss of lb's counted targets; logits_out (fp32, backend) may be
 * NULL; h the residual stream (fp32 when f32) */
float lm_head_forward(const flame_ops *ops, lm_head *hd, const lm_head_params *p, const void *h,
                      const lm_batch *lb, float *logits_out, int D, int V, float eps, int f32);
/* d_resid receives ∂loss/∂h (overwritten; and d_resid_act, for an fp32
 * stream, the same as activations); d_x: [n,D] scratch */
void lm_head_backward(const flame_ops *ops, lm_head *hd, const lm_head_params *p,
                      const void *h, const lm_batch *lb, void *d_x, void *d_resid, void *d_resid_act, int D,
                      int V);

#endif
