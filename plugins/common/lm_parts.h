/* The parts of a decoder language model that every architecture plugin
 * shares: one activation arena carved into pieces, taking in a batch, the
 * pre-norm SwiGLU MLP block and the LM head (final norm, lm_head,
 * cross-entropy). Compiled into each plugin, since a plugin loads alone.
 * Like the op table, backward functions ADD into parameter gradients. */
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
/* fla's MLP width when intermediate_size is unset: int(D·ratio·2/3) rounded up to 256 */
int64_t lm_default_intermediate(int D, int64_t ratio);

/* Hands out consecutive pieces of an arena; with base NULL it only counts. */
typedef struct lm_carver {
    float *base;
    size_t used; /* floats */
} lm_carver;

float *lm_take(lm_carver *cv, size_t floats);

/* The last batch, as the layers need it. */
typedef struct lm_batch {
    int32_t *tokens;    /* backend copy [cap] */
    int32_t *host_ints; /* host scratch [cap] */
    int32_t *cu;        /* host [cap+1]: sequence offsets */
    int cap;            /* tokens reserved */
    int n, n_seqs;      /* of the last batch; n = 0 before any (or after a refused one) */
} lm_batch;

/* Returns 0, or -1 when out of memory (then nothing is held). */
int lm_batch_reserve(lm_batch *lb, const flame_ops *ops, int cap);
void lm_batch_release(lm_batch *lb, const flame_ops *ops);
/* Takes in b: its size against the reservation, its sequence offsets
 * (cu_seqlens, else one sequence per row), every token against the vocabulary,
 * a backend copy of the tokens. Returns the number of counted targets (≥ 0),
 * or -1 after one line on stderr starting with who. */
int lm_batch_load(lm_batch *lb, const flame_ops *ops, const flame_batch *b, int vocab,
                  const char *who);

/* out = in + down(silu(gate(x)) · up(x)), x = rmsnorm(in) */
typedef struct lm_mlp_acts {
    float *rstd, *x;        /* [n], [n,D] */
    float *gate, *up, *act; /* [n,I] */
} lm_mlp_acts;

typedef struct lm_mlp_scratch {
    float *act, *gate, *up; /* [n,I] gradients, reused by every layer */
} lm_mlp_scratch;

typedef struct lm_mlp_params {
    const float *norm, *gate, *up, *down;
    float *dnorm, *dgate, *dup, *ddown;
} lm_mlp_params;

void lm_mlp_carve(lm_mlp_acts *a, lm_carver *cv, size_t n, int D, int I);
void lm_mlp_scratch_carve(lm_mlp_scratch *s, lm_carver *cv, size_t n, int I);
void lm_mlp_forward(const flame_ops *ops, lm_mlp_acts *a, const lm_mlp_params *p,
                    const float *in, float *out, int n, int D, int I, float eps);
/* d_resid: ∂loss/∂out in, ∂loss/∂in out; d_x: [n,D] scratch */
void lm_mlp_backward(const flame_ops *ops, const lm_mlp_acts *a, const lm_mlp_params *p,
                     lm_mlp_scratch *s, float *d_x, float *d_resid, const float *in, int n,
                     int D, int I);

/* logits = rmsnorm(h) · lm_headᵀ; loss = mean cross-entropy over counted targets */
typedef struct lm_head {
    float *rstd, *x;        /* [n], [n,D] */
    float *logits, *dlogits; /* [n,V] */
    float *losses;          /* [n] */
} lm_head;

typedef struct lm_head_params {
    const float *norm, *head;
    float *dnorm, *dhead;
} lm_head_params;

void lm_head_carve(lm_head *hd, lm_carver *cv, size_t n, int D, int V);
/* keeps ∂loss/∂logits for the backward; logits_out (backend) may be NULL */
float lm_head_forward(const flame_ops *ops, lm_head *hd, const lm_head_params *p, const float *h,
                      const int32_t *targets, int counted, float *logits_out, int n, int D,
                      int V, float eps);
/* d_resid receives ∂loss/∂h (overwritten); d_x: [n,D] scratch */
void lm_head_backward(const flame_ops *ops, const lm_head *hd, const lm_head_params *p,
                      const float *h, float *d_x, float *d_resid, int n, int D, int V);

#endif
