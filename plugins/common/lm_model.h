/* What every decoder-LM plugin's model holds besides its own token mixer: the
 * op table, the parameter list in fla's order (the embedding, L layers of
 * tensors ending with the MLP's (mlp_layout below), the final norm, then
 * lm_head unless tied) with the pointers bind() hands in, the
 * activation arena with the residual stream, each layer's MLP and the LM head,
 * and the last batch; and the one path from tokens to loss and back:
 *
 *   h = embed(x) (+ a learned position table's row, GPT's);
 *   per layer: mid = mixer(h) (the plugin's, adding h itself),
 *   h = mid + mlp(mid);  loss = head(h)
 *
 * A model without MLPs (Mamba2's: shape I = 0) has h = mid, and its layers'
 * tensors are the mixer's alone.
 *
 * A plugin's model struct starts with an lm_model, so the vtable entries that
 * need nothing else (n_params, param, bind, vocab_size) are the ones below. */
#ifndef FLAME_LM_MODEL_H
#define FLAME_LM_MODEL_H

#include "lm_parts.h"

/* Where a layer's MLP tensors are: the last ones the layer declares.
 *  LM_MLP_GATE_UP (fla's): norm, gate [I,D], up [I,D], down [D,I].
 *  LM_MLP_FC1 (HazyResearch's GatedMlp in a flash-attn Block, whose norm2 is
 *  registered after the mlp): fc1 [2I,D], fc2 [D,I], norm. fc1's first I rows
 *  are up (the value), its last I rows the gate (`y, gate = fc1(x).chunk(2)`,
 *  out = fc2(y·silu(gate))): gate and up are row blocks of one tensor, so the
 *  MLP's math and its parts (lm_mlp_params) are the same for both.
 *  LM_MLP_GELU (flash-attn's GPT Mlp in a Block): fc1 [I,D], fc1's bias,
 *  fc2 [D,I], fc2's bias, norm, norm's bias; out = fc2(gelu(fc1(x))), no gate. */
typedef enum lm_mlp_layout { LM_MLP_GATE_UP, LM_MLP_FC1, LM_MLP_GELU } lm_mlp_layout;

/* the sizes every decoder LM has */
typedef struct lm_shape {
    /* per_layer: the most tensors a layer declares (each declares its own
     * count: Based's layers differ by their mixer) */
    int L, per_layer, tie, D, V, I; /* I: the MLP's width, 0 for none */
    float eps, init_std;            /* every RMSNorm's epsilon; the normal draws' std */
    /* the names' first part, the embedding's and the final norm's: NULL for
     * fla's usual "model", "embeddings" and "norm" (Mamba2: "backbone" and
     * "norm_f"; Based: "transformer", "embeddings.word_embeddings", "ln_f") */
    const char *root, *embeddings, *final_norm;
    lm_mlp_layout mlp_layout;
    /* GPT's: every norm a LayerNorm with a bias (the final norm's declared
     * after its weight); a learned position table of `positions` rows (0:
     * none) named "<root>.<position_embeddings>.weight", declared after the
     * embedding, its row of each token's position in its sequence added to
     * the token's */
    int layernorm, positions;
    const char *position_embeddings;
    /* the residual stream (resid, mid, d_resid) in fp32 whatever the
     * activation type (GPT's residual_in_fp32; LayerNorm models only) */
    int resid_f32;
    /* what each layer's MLP keeps for the backward beyond its products
     * (lm_mlp_kept; none by default): the norm's output in the plugins that
     * keep their attention's too (the transformer's, GPT's) */
    lm_mlp_kept mlp_kept;
} lm_shape;

/* The [model] options every decoder LM declares alike (key, type, default,
 * ignored flag), as initializer entries for the plugin's own flame_option
 * table: the options first, the ignored fla/Hugging Face keys last. Macros
 * rather than a table joined at load, so that each plugin's table stays one
 * static array (its -h listing and the defaults lm_opt_* fall back to) with
 * nothing to build or free. A key whose default or meaning differs between
 * plugins (num_heads, num_kv_heads, fuse_norm) stays in each plugin's table. */
#define LM_DECODER_OPTIONS                                                                          \
    LM_BASE_OPTIONS,                                                                                \
    {"hidden_ratio", FLAME_TYPE_INT, "4", "MLP width ratio when intermediate_size is unset", 0},    \
    {"intermediate_size", FLAME_TYPE_INT, NULL,                                                     \
     "MLP width (unset: int(hidden_size·hidden_ratio·2/3) rounded up to a multiple of 256)", 0}
/* those of a decoder LM without MLPs (lm_read_base_shape) */
#define LM_BASE_OPTIONS                                                                             \
    {"hidden_size", FLAME_TYPE_INT, "2048", "model width D", 0},                                    \
    {"num_hidden_layers", FLAME_TYPE_INT, "24", "number of blocks", 0},                             \
    {"vocab_size", FLAME_TYPE_INT, "32000", "vocabulary size", 0},                                  \
    {"norm_eps", FLAME_TYPE_FLOAT, "1e-6", "epsilon of every RMSNorm", 0},                          \
    {"initializer_range", FLAME_TYPE_FLOAT, "0.02", "std of the normal initialization", 0},         \
    {"tie_word_embeddings", FLAME_TYPE_BOOL, "false", "use the embedding matrix as lm_head", 0},    \
    {"hidden_act", FLAME_TYPE_STRING, "swish",                                                      \
     "activation of the MLP and of any output gate (swish, or silu: the same)", 0},                 \
    {"elementwise_affine", FLAME_TYPE_BOOL, "true",                                                 \
     "learnable weights of the norms fla makes optional (a plugin that needs them refuses false)", 0}, \
    {"max_position_embeddings", FLAME_TYPE_INT, "2048", "accepted, unused: no position table", 0},  \
    {"attnres_block_size", FLAME_TYPE_INT, NULL, "attention residuals (not supported yet)", 0}
#define LM_DECODER_IGNORED_OPTIONS                                                                  \
    {"fuse_cross_entropy", FLAME_TYPE_BOOL, NULL, "fla kernel choice", 1},                          \
    {"fuse_swiglu", FLAME_TYPE_BOOL, NULL, "fla kernel choice", 1},                                 \
    {"fuse_linear_cross_entropy", FLAME_TYPE_BOOL, NULL, "fla kernel choice", 1},                   \
    {"use_l2warp", FLAME_TYPE_BOOL, NULL, "fla training trick", 1},                                 \
    {"use_cache", FLAME_TYPE_BOOL, NULL, "Hugging Face generation setting", 1},                     \
    {"bos_token_id", FLAME_TYPE_INT, NULL, "Hugging Face token id", 1},                             \
    {"eos_token_id", FLAME_TYPE_INT, NULL, "Hugging Face token id", 1},                             \
    {"pad_token_id", FLAME_TYPE_INT, NULL, "Hugging Face token id", 1}

/* The shared options that size the model, into shape (per_layer, root and
 * final_norm are the caller's): hidden_size, num_hidden_layers, vocab_size,
 * intermediate_size (unset: fla's int(D·hidden_ratio·2/3) rounded up to 256),
 * norm_eps, initializer_range, tie_word_embeddings, and hidden_act (swish or
 * silu only). Returns 0, or -1 with one line in err. */
int lm_read_shape(const lm_options *o, lm_shape *shape, char *err, size_t err_len);
/* the same for a model without MLPs (LM_BASE_OPTIONS): I = 0 */
int lm_read_base_shape(const lm_options *o, lm_shape *shape, char *err, size_t err_len);

typedef struct lm_model {
    const flame_ops *ops;
    lm_shape s;
    int n_params;
    flame_param_spec *specs;
    unsigned char *joined; /* [n_params]: 1 where stored right after the one before (param_joined) */
    int *layer_first; /* [L+1] each layer's first parameter; then the final norm's */
    const void **w; /* [n_params], from bind(): the compute view */
    float **dw;     /* [n_params], from bind() */
    void *arena;    /* activation memory, one ops->alloc, sized by lm_model_reserve() */
    lm_carver layout; /* how the arena was carved: where its scratch starts, its and the logits' bytes */
    void **resid;   /* [L+1] residual stream: layer inputs, then the last output */
    void **mid;     /* [L] each layer's residual after its mixer */
    lm_mlp_acts *mlp; /* [L] */
    lm_mlp_scratch mlp_scratch;
    void *d_resid;  /* [n,D] ∂loss/∂(residual stream), layer by layer in the backward */
    void *d_resid_act; /* [n,D] its copy as activations, for products (resid_f32 only) */
    void *d_x;      /* [n,D] ∂loss/∂(a norm's output): scratch of the MLP, the head, the mixer */
    lm_head head;
    lm_batch batch; /* the last batch taken in */
    int32_t *positions;      /* [n] each token's position (shape.positions > 0), backend */
    int32_t *positions_host; /* the same, staged */
    void *layers;   /* [L] the plugin's own per-layer structs (lm_model_create) */
    /* a decode step's batch: tokens, targets, offsets, in backend memory and
     * staged on the host (lm_model_decode) */
    int32_t *decode_io, *decode_host;
    int decode_cap;
    /* during lm_model_decode: the decode state and the position, for the
     * plugin's mixer; else NULL */
    void *decoding;
    int decode_pos;
    /* the core's watch on the backward (watch_gradients), or NULL */
    void (*grads_ready)(void *ctx, int first);
    void *grads_ctx;
} lm_model;

/* Declares layer l's parameters (at most per_layer calls of lm_model_add_layer_*). */
typedef void (*lm_layer_params_fn)(void *model, int l);

/* The end of a plugin's create. model is the plugin's calloc'ed struct (its
 * lm_model first, the fields layer_params reads already set) or NULL; it gets
 * every parameter declared (the embedding, each layer's through
 * layer_params(model, l), the final norm, lm_head unless tied) and L zeroed
 * per-layer structs of layer_bytes in lm_model.layers. Returns model, or NULL
 * with "out of memory" in err, model freed. */
void *lm_model_create(void *model, const flame_ops *ops, const lm_shape *shape,
                      lm_layer_params_fn layer_params, size_t layer_bytes, char *err,
                      size_t err_len);
/* the vtable's destroy of a model lm_model_create made */
void lm_model_destroy(void *model);
/* Layer l's next parameter "model.layers.<l>.<suffix>": a matrix [rows, cols]
 * drawn normal with weight decay, or (cols 0) a vector by `init` without. */
void lm_model_add_layer_param(lm_model *b, int l, const char *suffix, int64_t rows, int64_t cols,
                              flame_init_rule init);
/* the same for any tensor: ndim dimensions (shape), init rule and weight decay as given */
void lm_model_add_layer_tensor(lm_model *b, int l, const char *suffix, int ndim,
                               const int64_t *shape, flame_init_rule init, int decay);
/* a matrix [rows, cols] with weight decay drawn normal with its own std
 * (a rescaled output projection) */
void lm_model_add_layer_scaled(lm_model *b, int l, const char *suffix, int64_t rows, int64_t cols,
                               float std);
/* the parameter declared last to be stored right after the one before it
 * (the vtable's param_joined): two matrices of as many columns, both with
 * weight decay, then are one, rows after rows, values and gradients */
void lm_model_join_last(lm_model *b);
/* Layer l's MLP as LM_MLP_GATE_UP has it: mlp_norm.weight [D], then
 * mlp.gate_proj.weight and mlp.up_proj.weight [I,D] joined (one [2I,D]
 * matrix, one product), then mlp.down_proj.weight [D,I] */
void lm_model_add_gate_up_mlp(lm_model *b, int l, int64_t D, int64_t I);

/* parameter p of layer l (counting from the layer's first): its compute view and its gradient */
const void *lm_model_w(const lm_model *b, int l, int p);
float *lm_model_dw(const lm_model *b, int l, int p);
/* layer l's MLP as lm_mlp_forward takes it, whatever its mlp_layout */
lm_mlp_params lm_model_mlp_params(const lm_model *b, int l);
lm_head_params lm_model_head_params(const lm_model *b);

/* Sizes the arena for n tokens: carve(model, cv, n) takes every piece, the
 * residual stream (lm_model_carve) included; it runs once to count, once to
 * hand out. Returns 0; -2 with a line in err, before allocating, when the
 * arena is larger than the backend has available (the batch cannot fit: a
 * configuration error); -1 with a line in err when out of memory. */
int lm_model_reserve(lm_model *b, size_t n, void (*carve)(void *model, lm_carver *cv, size_t n),
                     void *model, char *err, size_t err_len);
/* the pieces of the residual stream, the MLPs, the head and their scratch */
void lm_model_carve(lm_model *b, lm_carver *cv, size_t n);

/* ∂loss/∂(the residual stream) as activations, what products take: d_resid
 * itself, or with an fp32 stream d_resid_act (the norms' backward keep it
 * current) */
const void *lm_model_d_resid_act(const lm_model *b);

/* A plugin's mixer of layer l: forward, mid[l] = resid[l] + mix(resid[l]);
 * backward, from d_resid = ∂loss/∂mid[l] to d_resid = ∂loss/∂resid[l], adding
 * its parameters' gradients. */
typedef void (*lm_mixer_fn)(void *model, int l);

/* the mean loss of the batch (NAN after a line on stderr starting with who
 * when it is refused); logits (fp32, backend) may be NULL */
float lm_model_forward(lm_model *b, const flame_batch *batch, float *logits, const char *who,
                       lm_mixer_fn mixer_forward, void *model);
/* The vtable's decode_forward (flame/plugin.h): tokens[B] (host memory) at
 * position pos as a batch of B sequences of one token through
 * lm_model_forward, with b->decoding = state and b->decode_pos = pos while
 * it runs, so that the mixers step what carries to the next position;
 * logits[B, V] fp32 backend memory. Returns 0, or -1 after a line on stderr. */
int lm_model_decode(lm_model *b, void *state, const int32_t *tokens, int B, int pos,
                    float *logits, const char *who, lm_mixer_fn mixer_forward, void *model);
/* adds ∂(mean loss of the last forward)/∂param into the bound gradients */
void lm_model_backward(lm_model *b, lm_mixer_fn mixer_backward, void *model);
/* the vtable's watch_gradients: the backward reports the head's tensors
 * complete after the head, then each layer's after the layer, and the
 * embedding's (and a position table's) as it returns */
void lm_model_watch_gradients(void *model, void (*ready)(void *ctx, int first), void *ctx);

/* the vtable entries for a model that starts with an lm_model */
int lm_model_n_params(const void *model);
const flame_param_spec *lm_model_param(const void *model, int index);
int lm_model_param_joined(const void *model, int index);
void lm_model_bind(void *model, const void *const *params, float *const *grads);
int64_t lm_model_vocab_size(const void *model);

#endif
