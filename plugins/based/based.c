/* Based: HazyResearch/based's GPTLMHeadModel (based/models/gpt.py, block.py,
 * mlp.py, mixers/convolution.py, linear_attention.py, slide_attention.py) as
 * a flame plugin: a hybrid of three token mixers, each layer one of them.
 *
 * For tokens x (n = B·T rows), with RMSNorm(v)·w written norm(v, w):
 *   h = embed(x)                       (vocabulary padded to pad_vocab_size_multiple)
 *   per layer:
 *     a = norm(h, norm1)
 *     h = h + mixer(a), the mixer by the layer's index:
 *       alt_mixer_layers:   Taylor linear attention (linear_attention.py)
 *         q, k = a·W_qᵀ, a·W_kᵀ (num_heads × feature_dim), v = a·W_vᵀ
 *         y = Σ_{j≤i} K_ij v_j / (Σ_{j≤i} K_ij + eps), K = 1 + s + s²/2,
 *             s = q_i·k_j/sqrt(feature_dim), per head      (taylor_attention_*)
 *         mixer = y·W_outᵀ
 *       alt_mixer_2_layers: sliding-window softmax attention (slide_attention.py)
 *         q, k, v = row blocks of a·W_qkvᵀ; q, k rotated (rotate-half, base
 *         rotary_emb_base, the whole head); softmax(q·kᵀ/sqrt(head_dim)) over
 *         the window_size/2 + 1 last keys, itself included (flash-attn's
 *         window (window_size//2, 0))        (the transformer's kernels)
 *         mixer = o·W_outᵀ
 *       the others: BaseConv (convolution.py)
 *         u1, u2 = the two halves of a·W_inᵀ + b_in (E = expand_proj·D/2 each)
 *         mixer = (silu(causal depthwise conv(u1)) · u2)·W_outᵀ + b_out
 *     h = h + fc2(y · silu(gate)),  y | gate = norm(h, norm2)·fc1ᵀ   (GatedMlp)
 *   logits = norm(h, ln_f)·embeddingᵀ (tied);  loss = mean cross-entropy
 * Nothing crosses a document start: the convolution's window, both attentions
 * and the rotary positions start again at each one.
 * Each projection whose output HazyResearch splits (in_proj, Wqkv) is made as
 * one product per part over a row block of its weight, so every part is a
 * contiguous [n, width] array. A layer keeps norm1's rstd and its mixer's
 * inputs to the last projection (BaseConv: u1, u2; Taylor: q, k, v, y;
 * sliding: q, k, v after rotary, o and the softmax's log-sum-exp): the
 * backward makes again only the norm's output and BaseConv's convolution.
 *
 * Residual stream: kept in the op table's activation type (bf16 on CUDA), as
 * the other plugins do; HazyResearch keeps it in fp32 (residual_in_fp32). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/plugin.h>

#include "../common/lm_model.h"
#include "../transformer/transformer_kernels.h"
#include "based_kernels.h"

/* ------------------------------------------------------------------ options */

static const flame_option based_options[] = {
    {"n_embd", FLAME_TYPE_INT, "1024", "model width D", 0},
    {"n_layer", FLAME_TYPE_INT, "27", "number of blocks", 0},
    {"n_inner", FLAME_TYPE_INT, NULL,
     "MLP width, rounded up to a multiple of 256 (unset: int(8·n_embd/3))", 0},
    {"vocab_size", FLAME_TYPE_INT, "50257", "the tokenizer's vocabulary (GPT-2's)", 0},
    {"pad_vocab_size_multiple", FLAME_TYPE_INT, "8",
     "the embedding and the logits have vocab_size rounded up to a multiple of this", 0},
    {"layer_norm_epsilon", FLAME_TYPE_FLOAT, "1e-5", "epsilon of every RMSNorm", 0},
    {"initializer_range", FLAME_TYPE_FLOAT, "0.02",
     "std of the normal initialization (out_proj and fc2: this / sqrt(2·n_layer))", 0},
    {"tie_word_embeddings", FLAME_TYPE_BOOL, "true", "use the embedding matrix as lm_head", 0},
    {"alt_mixer_layers", FLAME_TYPE_STRING, NULL,
     "layers of Taylor linear attention: indices separated by commas or spaces", 0},
    {"alt_mixer_2_layers", FLAME_TYPE_STRING, NULL,
     "layers of sliding-window attention: indices separated by commas or spaces", 0},
    {"feature_dim", FLAME_TYPE_INT, "16", "Taylor layers: the width of a head's query and key", 0},
    {"num_heads", FLAME_TYPE_INT, "16", "Taylor layers: heads (a value head is n_embd/num_heads wide)", 0},
    {"n_head", FLAME_TYPE_INT, "16", "sliding-window layers: heads (head_dim n_embd/n_head)", 0},
    {"window_size", FLAME_TYPE_INT, "128",
     "sliding-window layers: a token sees itself and the window_size/2 tokens before it "
     "(HazyResearch's meaning: flash-attn's window (window_size//2, 0))", 0},
    {"rotary_emb_base", FLAME_TYPE_FLOAT, "10000", "sliding-window layers: base of the rotary embedding", 0},
    {"expand_proj", FLAME_TYPE_INT, "4",
     "BaseConv layers: in_proj widens to expand_proj·n_embd, half to the convolution, half to the gate", 0},
    {"kernel_size", FLAME_TYPE_INT, "3", "BaseConv layers: width of the causal depthwise convolution", 0},
    /* HazyResearch's settings that flame has fixed: accepted at these values */
    {"rms_norm", FLAME_TYPE_BOOL, "true", "RMSNorm (false, LayerNorm: not supported yet)", 0},
    {"activation_function", FLAME_TYPE_STRING, "swiglu", "the MLP's (only swiglu)", 0},
    {"rotary_emb_fraction", FLAME_TYPE_FLOAT, "1.0", "the rotated part of a head (only 1)", 0},
    {"rotary_emb_interleaved", FLAME_TYPE_BOOL, "false", "GPT-J style rotary (true: not supported yet)", 0},
    {"mlp_fc1_bias", FLAME_TYPE_BOOL, "false", "(true: not supported yet)", 0},
    {"mlp_fc2_bias", FLAME_TYPE_BOOL, "false", "(true: not supported yet)", 0},
    {"qkv_proj_bias", FLAME_TYPE_BOOL, "false", "sliding-window layers (true: not supported yet)", 0},
    {"out_proj_bias", FLAME_TYPE_BOOL, "false", "sliding-window layers (true: not supported yet)", 0},
    {"max_position_embeddings", FLAME_TYPE_INT, "0", "learned positions (only 0: none)", 0},
    {"residual_in_fp32", FLAME_TYPE_BOOL, NULL,
     "accepted: the residual stream is kept in the activation type", 1},
    {"l_max", FLAME_TYPE_INT, "2048",
     "the sequence length HazyResearch's BaseConv and Taylor layers are built with (kept, unused)", 1},
    {"kernel_sizes", FLAME_TYPE_INT, NULL,
     "the yaml's spelling, which HazyResearch's BaseConv ignores (kernel_size is read)", 1},
};
#define N_OPTIONS ((int)(sizeof based_options / sizeof based_options[0]))

/* ------------------------------------------------------------------ the model */

enum mixer_kind { MIX_CONV, MIX_TAYLOR, MIX_SLIDING, N_KINDS };

/* each mixer's tensors, in HazyResearch's order (the modules' registration) */
enum { C_IN, C_IN_BIAS, C_OUT, C_OUT_BIAS, C_CONV, C_TENSORS };
enum { T_Q, T_K, T_V, T_OUT, T_TENSORS };
enum { S_QKV, S_OUT, S_TENSORS };
static const int mixer_tensors[N_KINDS] = {C_TENSORS, T_TENSORS, S_TENSORS};
/* then norm1 (the block's), and the MLP's fc1, fc2 and norm2 (lm_model's) */
#define BLOCK_TENSORS 4
#define MOST_TENSORS (C_TENSORS + BLOCK_TENSORS)

typedef struct based_sizes {
    lm_shape s;    /* D, L, V (padded), the MLP's I, eps, init_std, tie */
    int E, K;      /* BaseConv: the convolution's channels (half of in_proj's), its width */
    int Ht, F, Dv; /* Taylor: heads, query/key width, value width */
    int H, hd;     /* sliding: heads, head width */
    int window;    /* sliding: keys a query sees, itself included */
    float theta;   /* sliding: rotary base */
    float out_std; /* out_proj's and fc2's init std */
} based_sizes;

typedef struct conv_acts {
    void *u1, *u2; /* [n,E]: the convolution's input and the gate's other factor */
} conv_acts;
typedef struct taylor_acts {
    void *q, *k; /* [n, Ht·F] */
    void *v, *y; /* [n,D] */
} taylor_acts;
typedef struct sliding_acts {
    void *q, *k, *v, *o; /* [n,D], q and k after rotary */
    float *lse;          /* [n,H] */
} sliding_acts;

/* what one layer keeps from its forward for its backward */
typedef struct layer_acts {
    float *rstd; /* [n] norm1's */
    union {
        conv_acts conv;
        taylor_acts taylor;
        sliding_acts sliding;
    };
} layer_acts;

/* buffers reused by every layer: norm1's output, [n, widest] buffers each
 * mixer names for itself (its forward's passing values, its gradients) and the
 * Taylor attention's work, in the arena's scratch (lm_take_scratch_acts: each
 * layer's call writes them before reading them); the sliding attention's
 * work, in the first part */
#define N_BUFFERS 5
typedef struct scratch {
    void *a;
    void *buf[N_BUFFERS];
    float *taylor_work; /* its workers' side by side */
    float *attn_work;   /* the sliding attention backward's (transformer_kernels) */
} scratch;

typedef struct based_model {
    lm_model base; /* first: the shared vtable entries take the model as it */
    const based_kernels *kern;
    const transformer_kernels *attn;
    based_sizes c;
    int *kind; /* [L] each layer's mixer */
    scratch d;
    int n_work; /* the Taylor attention's workers */
} based_model;

static layer_acts *acts(const based_model *m, int l) { return (layer_acts *)m->base.layers + l; }
static const void *W(const based_model *m, int l, int p) { return lm_model_w(&m->base, l, p); }
static float *dW(const based_model *m, int l, int p) { return lm_model_dw(&m->base, l, p); }
/* norm1 follows the mixer's tensors */
static int norm1_index(const based_model *m, int l) { return mixer_tensors[m->kind[l]]; }

/* rows [first, ...) of a weight of cols columns: its compute view, its gradient */
static const void *rows_of(const based_model *m, const void *w, int first, int cols)
{
    return lm_act_at(m->base.ops, w, (size_t)first * cols);
}
static float *grad_rows(float *dw, int first, int cols) { return dw + (size_t)first * cols; }

static int count_kind(const based_model *m, int kind)
{
    int count = 0;
    for (int l = 0; l < m->c.s.L; l++)
        count += m->kind[l] == kind;
    return count;
}

/* ------------------------------------------------------------------ create */

static int check_supported(const lm_options *o, char *err, size_t err_len)
{
    static const lm_bool_setting bools[] = {
        {"rms_norm", 1}, {"rotary_emb_interleaved", 0}, {"mlp_fc1_bias", 0},
        {"mlp_fc2_bias", 0}, {"qkv_proj_bias", 0}, {"out_proj_bias", 0},
    };
    if (lm_check_supported(o, bools, LM_COUNT(bools), NULL, 0, err, err_len))
        return -1;
    if (strcmp(lm_opt_string(o, "activation_function"), "swiglu") != 0) {
        snprintf(err, err_len, "activation_function = %s is not supported yet (only swiglu)",
                 lm_opt_string(o, "activation_function"));
        return -1;
    }
    if (lm_opt_float(o, "rotary_emb_fraction") != 1.0) {
        snprintf(err, err_len, "rotary_emb_fraction = %g is not supported yet (only 1)",
                 lm_opt_float(o, "rotary_emb_fraction"));
        return -1;
    }
    if (lm_opt_int(o, "max_position_embeddings") != 0) {
        snprintf(err, err_len, "max_position_embeddings = %lld: learned positions are not supported "
                 "yet (only 0)", (long long)lm_opt_int(o, "max_position_embeddings"));
        return -1;
    }
    return 0;
}

/* n rounded up to a multiple of m, or -1 past INT_MAX */
static int64_t round_up(int64_t n, int64_t m)
{
    int64_t r = (n + m - 1) / m * m;
    return r <= INT_MAX ? r : -1;
}

/* the padded vocabulary and the MLP's width (GatedMlp: n_inner, or
 * int(8·D/3), rounded up to 256) */
static int read_widths(const lm_options *o, lm_shape *s, char *err, size_t err_len)
{
    int vocab, multiple;
    if (lm_read_size(o, "vocab_size", &vocab, err, err_len) ||
        lm_read_size(o, "pad_vocab_size_multiple", &multiple, err, err_len))
        return -1;
    int64_t V = round_up(vocab, multiple);
    int inner = (int)(8.0 * s->D / 3.0);
    if (lm_opt_given(o, "n_inner") && lm_read_size(o, "n_inner", &inner, err, err_len))
        return -1;
    int64_t I = round_up(inner, 256);
    if (V < 0 || I < 0 || I > INT_MAX / 2) {
        snprintf(err, err_len, "%s: too large", V < 0 ? "pad_vocab_size_multiple" : "n_inner");
        return -1;
    }
    s->V = (int)V, s->I = (int)I;
    return 0;
}

static int read_shape(const lm_options *o, lm_shape *s, char *err, size_t err_len)
{
    s->root = "transformer", s->embeddings = "embeddings.word_embeddings", s->final_norm = "ln_f";
    s->mlp_layout = LM_MLP_FC1, s->per_layer = MOST_TENSORS;
    if (lm_read_size(o, "n_embd", &s->D, err, err_len) || lm_read_size(o, "n_layer", &s->L, err, err_len) ||
        read_widths(o, s, err, err_len))
        return -1;
    double eps = lm_opt_float(o, "layer_norm_epsilon"), std = lm_opt_float(o, "initializer_range");
    if (!(eps >= 0)) {
        snprintf(err, err_len, "layer_norm_epsilon = %g: expected a number ≥ 0", eps);
        return -1;
    }
    if (!(std >= 0)) {
        snprintf(err, err_len, "initializer_range = %g: expected a number ≥ 0", std);
        return -1;
    }
    s->eps = (float)eps, s->init_std = (float)std;
    s->tie = lm_opt_bool(o, "tie_word_embeddings");
    return 0;
}

/* BaseConv's widths */
static int read_conv(const lm_options *o, based_sizes *c, char *err, size_t err_len)
{
    int expand;
    if (lm_read_size(o, "expand_proj", &expand, err, err_len) || lm_read_size(o, "kernel_size", &c->K, err, err_len))
        return -1;
    if ((int64_t)expand * c->s.D % 2 || (int64_t)expand * c->s.D > INT_MAX / 4) {
        snprintf(err, err_len, "expand_proj = %d: expand_proj·n_embd must be even (two halves) and below 2^29", expand);
        return -1;
    }
    if (c->K > FLAME_CONV1D_MAX_K) {
        snprintf(err, err_len, "kernel_size = %d: at most %d", c->K, FLAME_CONV1D_MAX_K);
        return -1;
    }
    c->E = expand * c->s.D / 2;
    return 0;
}

/* key's heads: a whole number dividing n_embd, into *H and the head width *width */
static int read_heads(const lm_options *o, const char *key, int D, int *H, int *width, char *err,
                      size_t err_len)
{
    if (lm_read_size(o, key, H, err, err_len))
        return -1;
    if (D % *H) {
        snprintf(err, err_len, "%s = %d does not divide n_embd = %d", key, *H, D);
        return -1;
    }
    *width = D / *H;
    return 0;
}

/* the attentions' settings (checked only when some layer has that mixer) */
static int read_attention(const lm_options *o, based_sizes *c, int taylor, int sliding, char *err, size_t err_len)
{
    if (taylor && (read_heads(o, "num_heads", c->s.D, &c->Ht, &c->Dv, err, err_len) ||
                   lm_read_size(o, "feature_dim", &c->F, err, err_len)))
        return -1;
    if (!sliding)
        return 0;
    int window;
    if (read_heads(o, "n_head", c->s.D, &c->H, &c->hd, err, err_len) ||
        lm_read_size(o, "window_size", &window, err, err_len))
        return -1;
    if (c->hd % 2) {
        snprintf(err, err_len, "n_head = %d: the head width n_embd/n_head = %d must be even (rotary pairs)",
                 c->H, c->hd);
        return -1;
    }
    double theta = lm_opt_float(o, "rotary_emb_base");
    if (!(theta > 1)) {
        snprintf(err, err_len, "rotary_emb_base = %g: expected a number > 1", theta);
        return -1;
    }
    c->theta = (float)theta;
    c->window = window / 2 + 1;
    return 0;
}

/* The layers a list option names get `kind`; an index outside [0, L) or a
 * layer already given another mixer is refused, naming the key. Indices are
 * separated by commas or spaces; brackets around the list are passed over. */
static int read_layer_list(const lm_options *o, const char *key, int kind, int *kinds, int L, char *err,
                           size_t err_len)
{
    if (!lm_opt_given(o, key))
        return 0;
    for (const char *p = lm_opt_string(o, key); *p;) {
        if (strchr(", \t[]", *p)) {
            p++;
            continue;
        }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || !strchr(", \t[]", *end) || v < 0 || v >= L) {
            snprintf(err, err_len, "%s: expected layer indices from 0 to n_layer - 1 = %d, got '%.*s'", key,
                     L - 1, (int)strcspn(p, ", \t[]"), p);
            return -1;
        }
        if (kinds[v] != MIX_CONV) {
            snprintf(err, err_len, kinds[v] == kind ? "%s: layer %ld is listed twice"
                                                    : "%s: layer %ld is in alt_mixer_layers too", key, v);
            return -1;
        }
        kinds[v] = kind;
        p = end;
    }
    return 0;
}

static int read_dims(const lm_options *o, based_sizes *c, int **kinds, char *err, size_t err_len)
{
    if (read_shape(o, &c->s, err, err_len) || read_conv(o, c, err, err_len))
        return -1;
    c->out_std = c->s.init_std / sqrtf(2.0f * c->s.L);
    *kinds = calloc((size_t)c->s.L, sizeof **kinds);
    if (!*kinds) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (read_layer_list(o, "alt_mixer_layers", MIX_TAYLOR, *kinds, c->s.L, err, err_len) ||
        read_layer_list(o, "alt_mixer_2_layers", MIX_SLIDING, *kinds, c->s.L, err, err_len))
        return -1;
    int has[N_KINDS] = {0};
    for (int l = 0; l < c->s.L; l++)
        has[(*kinds)[l]] = 1;
    return read_attention(o, c, has[MIX_TAYLOR], has[MIX_SLIDING], err, err_len);
}

/* HazyResearch's initialization (gpt.py _init_weights): every Linear normal
 * (out_proj and fc2 at std / sqrt(2L)), biases zeros, norms ones, the
 * convolution torch's default (init_values); weight decay on the matrices
 * and the convolution, none on biases and norms */
static void add_mixer_params(based_model *m, int l)
{
    const based_sizes *c = &m->c;
    lm_model *b = &m->base;
    int D = c->s.D;
    if (m->kind[l] == MIX_CONV) {
        lm_model_add_layer_param(b, l, "mixer.in_proj.weight", 2 * c->E, D, FLAME_INIT_NORMAL);
        lm_model_add_layer_param(b, l, "mixer.in_proj.bias", 2 * c->E, 0, FLAME_INIT_ZEROS);
        lm_model_add_layer_scaled(b, l, "mixer.out_proj.weight", D, c->E, c->out_std);
        lm_model_add_layer_param(b, l, "mixer.out_proj.bias", D, 0, FLAME_INIT_ZEROS);
        int64_t conv_shape[3] = {c->E, 1, c->K};
        lm_model_add_layer_tensor(b, l, "mixer.conv.conv.weight", 3, conv_shape, FLAME_INIT_PLUGIN, 1);
    } else if (m->kind[l] == MIX_TAYLOR) {
        lm_model_add_layer_param(b, l, "mixer.proj_q.weight", c->Ht * c->F, D, FLAME_INIT_NORMAL);
        lm_model_add_layer_param(b, l, "mixer.proj_k.weight", c->Ht * c->F, D, FLAME_INIT_NORMAL);
        lm_model_add_layer_param(b, l, "mixer.proj_v.weight", D, D, FLAME_INIT_NORMAL);
        lm_model_add_layer_scaled(b, l, "mixer.out_proj.weight", D, D, c->out_std);
    } else {
        lm_model_add_layer_param(b, l, "mixer.Wqkv.weight", 3 * D, D, FLAME_INIT_NORMAL);
        lm_model_add_layer_scaled(b, l, "mixer.out_proj.weight", D, D, c->out_std);
    }
}

static void add_layer_params(void *model, int l)
{
    based_model *m = model;
    const based_sizes *c = &m->c;
    add_mixer_params(m, l);
    lm_model_add_layer_param(&m->base, l, "norm1.weight", c->s.D, 0, FLAME_INIT_ONES);
    lm_model_add_layer_param(&m->base, l, "mlp.fc1.weight", 2 * c->s.I, c->s.D, FLAME_INIT_NORMAL);
    lm_model_add_layer_scaled(&m->base, l, "mlp.fc2.weight", c->s.D, c->s.I, c->out_std);
    lm_model_add_layer_param(&m->base, l, "norm2.weight", c->s.D, 0, FLAME_INIT_ONES);
}

/* what the backend's kernels cannot take, in one line naming the key */
static int check_kernels(const based_model *m, const char *backend, char *err, size_t err_len)
{
    if (count_kind(m, MIX_TAYLOR) && m->kern->taylor_max_F && m->c.F > m->kern->taylor_max_F) {
        snprintf(err, err_len, "feature_dim = %d: the Taylor linear attention on %s takes up to %d",
                 m->c.F, backend, m->kern->taylor_max_F);
        return -1;
    }
    const char *why = count_kind(m, MIX_SLIDING) ? m->attn->unsupported_head_dim(m->c.hd) : NULL;
    if (why) {
        snprintf(err, err_len, "n_head = %d: head dim %d is not supported on %s: %s", m->c.H, m->c.hd,
                 backend, why);
        return -1;
    }
    return 0;
}

static void based_destroy(void *model)
{
    if (model)
        free(((based_model *)model)->kind);
    lm_model_destroy(model);
}

static void *based_create(const flame_model_config *cfg, const flame_ops *ops, char *err, size_t err_len)
{
    const based_kernels *kern = based_kernels_for(ops->backend);
    const transformer_kernels *attn = transformer_kernels_for(ops->backend);
    if (!kern || !attn) {
        snprintf(err, err_len, "no Based kernels for backend %s in this build", ops->backend);
        return NULL;
    }
    if (!FLAME_OPS_HAS(ops, conv1d_forward)) {
        snprintf(err, err_len, "the op table has no conv1d (a core older than ABI 5.3)");
        return NULL;
    }
    based_model probe = {.kern = kern, .attn = attn};
    lm_options opts = {cfg, based_options, N_OPTIONS};
    if (check_supported(&opts, err, err_len) || read_dims(&opts, &probe.c, &probe.kind, err, err_len) ||
        check_kernels(&probe, ops->backend, err, err_len)) {
        free(probe.kind);
        return NULL;
    }
    based_model *m = malloc(sizeof *m);
    if (m) /* before the parameters: add_layer_params reads them */
        *m = probe;
    void *made = lm_model_create(m, ops, &probe.c.s, add_layer_params, sizeof(layer_acts), err, err_len);
    if (!made)
        free(probe.kind);
    return made;
}

/* the convolution's weights, torch's default for a Conv1d of fan-in K:
 * kaiming_uniform(a = √5), U(±1/sqrt(K)); the only FLAME_INIT_PLUGIN tensors */
static void based_init_values(const void *model, int index, float *values, size_t numel,
                              double (*uniform)(void *state), void *state)
{
    const based_model *m = model;
    (void)index;
    double bound = 1.0 / sqrt((double)m->c.K);
    for (size_t i = 0; i < numel; i++)
        values[i] = (float)((2.0 * uniform(state) - 1.0) * bound);
}

/* ------------------------------------------------------------------ reserve */

static void carve_layer(const based_model *m, int l, lm_carver *cv, size_t n)
{
    const based_sizes *c = &m->c;
    layer_acts *A = acts(m, l);
    A->rstd = lm_take_floats(cv, n);
    if (m->kind[l] == MIX_CONV) {
        A->conv.u1 = lm_take_acts(cv, n * c->E);
        A->conv.u2 = lm_take_acts(cv, n * c->E);
    } else if (m->kind[l] == MIX_TAYLOR) {
        A->taylor.q = lm_take_acts(cv, n * c->Ht * c->F);
        A->taylor.k = lm_take_acts(cv, n * c->Ht * c->F);
        A->taylor.v = lm_take_acts(cv, n * c->s.D);
        A->taylor.y = lm_take_acts(cv, n * c->s.D);
    } else {
        A->sliding.q = lm_take_acts(cv, n * c->s.D);
        A->sliding.k = lm_take_acts(cv, n * c->s.D);
        A->sliding.v = lm_take_acts(cv, n * c->s.D);
        A->sliding.o = lm_take_acts(cv, n * c->s.D);
        A->sliding.lse = lm_take_floats(cv, n * c->H);
    }
}

/* the widest array a mixer passes through the scratch buffers */
static size_t widest(const based_sizes *c)
{
    size_t w = (size_t)(c->E > c->s.D ? c->E : c->s.D);
    return (size_t)c->Ht * c->F > w ? (size_t)c->Ht * c->F : w;
}

static void carve_all(void *model, lm_carver *cv, size_t n)
{
    based_model *m = model;
    lm_model_carve(&m->base, cv, n);
    for (int l = 0; l < m->c.s.L; l++)
        carve_layer(m, l, cv, n);
    const based_sizes *c = &m->c;
    m->d.a = lm_take_scratch_acts(cv, n * c->s.D);
    for (int i = 0; i < N_BUFFERS; i++)
        m->d.buf[i] = lm_take_scratch_acts(cv, n * widest(c));
    m->d.taylor_work = count_kind(m, MIX_TAYLOR)
                           ? lm_take_scratch_floats(cv, m->kern->taylor_work_floats((int)n, c->Ht, c->F, c->Dv, m->n_work))
                           : NULL;
    m->d.attn_work = count_kind(m, MIX_SLIDING) ? lm_take_floats(cv, m->attn->attention_work_floats((int)n, c->H, c->hd))
                                                : NULL;
}

static int based_reserve(void *model, int B, int T, char *err, size_t err_len)
{
    based_model *m = model;
    const based_sizes *c = &m->c;
    /* the kernels index [n, width] arrays with an int */
    if (B < 1 || T < 1 || (int64_t)B * T * (int64_t)widest(c) > INT_MAX) {
        snprintf(err, err_len, "cannot reserve a batch of %d×%d tokens", B, T);
        return -2;
    }
    m->n_work = m->kern->taylor_max_workers();
    m->n_work = m->n_work < 1 ? 1 : m->n_work;
    return lm_model_reserve(&m->base, (size_t)B * T, carve_all, m, err, err_len);
}

/* ------------------------------------------------------------------ BaseConv */

/* pre = the causal convolution of u1 (before its silu), into out */
static void conv_pre(const based_model *m, int l, void *out)
{
    const lm_batch *b = &m->base.batch;
    m->base.ops->conv1d_forward(out, acts(m, l)->conv.u1, W(m, l, C_CONV), NULL, b->cu_backend, b->n_seqs, b->n,
                                m->c.E, m->c.K, 0);
}

static void *decode_state(const based_model *m, int l, int n);

static void conv_forward(based_model *m, int l, int n)
{
    const flame_ops *ops = m->base.ops;
    const based_sizes *c = &m->c;
    const conv_acts *A = &acts(m, l)->conv;
    const void *w_in = W(m, l, C_IN), *b_in = W(m, l, C_IN_BIAS);
    void *pre = m->d.buf[0], *gated = m->d.buf[1];
    ops->matmul_forward(A->u1, m->d.a, w_in, b_in, NULL, n, c->s.D, c->E);
    ops->matmul_forward(A->u2, m->d.a, rows_of(m, w_in, c->E, c->s.D), lm_act_at(ops, b_in, c->E), NULL, n,
                        c->s.D, c->E);
    if (m->base.decoding)
        ops->conv1d_step(pre, decode_state(m, l, n), A->u1, W(m, l, C_CONV), NULL, n, c->E, c->K, 0);
    else
        conv_pre(m, l, pre);
    ops->swiglu_forward(gated, pre, A->u2, (size_t)n * c->E); /* silu(pre) · u2 */
    ops->matmul_forward(m->base.mid[l], gated, W(m, l, C_OUT), W(m, l, C_OUT_BIAS), m->base.resid[l], n, c->E,
                        c->s.D);
}

/* from d_resid to the gradients of u1 and u2 (du1, du2), the mixer's own parameters' added */
static void conv_backward(based_model *m, int l, int n, void *du1, void *du2)
{
    const flame_ops *ops = m->base.ops;
    const based_sizes *c = &m->c;
    const lm_batch *b = &m->base.batch;
    const conv_acts *A = &acts(m, l)->conv;
    void *pre = m->d.buf[2], *gated = m->d.buf[3], *dpre = m->d.buf[4];
    conv_pre(m, l, pre);
    /* the gated product's gradient, then the product made again over it */
    ops->matmul_backward(gated, FLAME_GRAD_SET, NULL, NULL, m->base.d_resid, NULL, W(m, l, C_OUT), n, c->E, c->s.D);
    ops->swiglu_backward(dpre, du2, gated, gated, pre, A->u2, (size_t)n * c->E);
    ops->matmul_backward(NULL, FLAME_GRAD_SET, dW(m, l, C_OUT), dW(m, l, C_OUT_BIAS), m->base.d_resid, gated,
                         W(m, l, C_OUT), n, c->E, c->s.D);
    ops->conv1d_backward(du1, dW(m, l, C_CONV), NULL, dpre, A->u1, W(m, l, C_CONV), NULL, b->cu_backend, b->n_seqs,
                         n, c->E, c->K, 0);
    /* in_proj's bias, a half at a time (lm_prenorm_backward adds the weight's) */
    ops->matmul_backward(NULL, FLAME_GRAD_SET, NULL, dW(m, l, C_IN_BIAS), du1, NULL, NULL, n, c->s.D, c->E);
    ops->matmul_backward(NULL, FLAME_GRAD_SET, NULL, dW(m, l, C_IN_BIAS) + c->E, du2, NULL, NULL, n, c->s.D, c->E);
}

/* ------------------------------------------------------------------ Taylor linear attention */

/* the kernel's view of the batch and the heads */
static based_dims taylor_dims(const based_model *m)
{
    const lm_batch *b = &m->base.batch;
    based_dims d = {b->cu, b->n_seqs, m->c.Ht, m->c.F, m->c.Dv, b->cu_backend};
    return d;
}

static void taylor_forward(based_model *m, int l, int n)
{
    const flame_ops *ops = m->base.ops;
    const based_sizes *c = &m->c;
    const taylor_acts *A = &acts(m, l)->taylor;
    int D = c->s.D, QK = c->Ht * c->F;
    ops->matmul_forward(A->q, m->d.a, W(m, l, T_Q), NULL, NULL, n, D, QK);
    ops->matmul_forward(A->k, m->d.a, W(m, l, T_K), NULL, NULL, n, D, QK);
    ops->matmul_forward(A->v, m->d.a, W(m, l, T_V), NULL, NULL, n, D, D);
    based_dims td = taylor_dims(m);
    if (m->base.decoding)
        m->kern->taylor_step(A->y, decode_state(m, l, n), A->q, A->k, A->v, &td, n);
    else
        m->kern->taylor_forward(A->y, A->q, A->k, A->v, &td, m->d.taylor_work, m->n_work);
    ops->matmul_forward(m->base.mid[l], A->y, W(m, l, T_OUT), NULL, m->base.resid[l], n, D, D);
}

/* from d_resid to the gradients of q, k, v; out_proj's added */
static void taylor_backward(based_model *m, int l, int n, void *dq, void *dk, void *dv)
{
    const taylor_acts *A = &acts(m, l)->taylor;
    int D = m->c.s.D;
    void *dy = m->d.buf[3];
    m->base.ops->matmul_backward(dy, FLAME_GRAD_SET, dW(m, l, T_OUT), NULL, m->base.d_resid, A->y, W(m, l, T_OUT),
                                 n, D, D);
    based_dims td = taylor_dims(m);
    m->kern->taylor_backward(dq, dk, dv, dy, A->q, A->k, A->v, &td, m->d.taylor_work, m->n_work);
}

/* ------------------------------------------------------------------ sliding-window attention */

static attention_dims sliding_dims(const based_model *m)
{
    const lm_batch *b = &m->base.batch;
    attention_dims d = {{b->cu, b->n_seqs, b->cu_backend}, m->c.H, m->c.H, m->c.hd, 1.0f / sqrtf((float)m->c.hd),
                        m->c.window, 0, m->c.hd, m->c.theta};
    return d;
}

static void sliding_decode(based_model *m, int l, int n, const attention_dims *ad);

static void sliding_forward(based_model *m, int l, int n)
{
    const flame_ops *ops = m->base.ops;
    const based_sizes *c = &m->c;
    const sliding_acts *A = &acts(m, l)->sliding;
    int D = c->s.D;
    void *const qkv[3] = {A->q, A->k, A->v}; /* Wqkv's row blocks */
    for (int i = 0; i < 3; i++)
        ops->matmul_forward(qkv[i], m->d.a, rows_of(m, W(m, l, S_QKV), i * D, D), NULL, NULL, n, D, D);
    attention_dims ad = sliding_dims(m);
    if (m->base.decoding) {
        sliding_decode(m, l, n, &ad);
    } else {
        m->attn->rotary_forward(A->q, A->q, &ad.seqs, c->H, c->hd, c->hd, c->theta, c->s.D);
        m->attn->rotary_forward(A->k, A->k, &ad.seqs, c->H, c->hd, c->hd, c->theta, c->s.D);
        m->attn->attention_forward(A->o, A->lse, A->q, A->k, A->v, &ad);
    }
    ops->matmul_forward(m->base.mid[l], A->o, W(m, l, S_OUT), NULL, m->base.resid[l], n, D, D);
}

/* from d_resid to the gradients of Wqkv's three outputs (dqkv); out_proj's added */
static void sliding_backward(based_model *m, int l, int n, void *const dqkv[3])
{
    const flame_ops *ops = m->base.ops;
    const based_sizes *c = &m->c;
    const sliding_acts *A = &acts(m, l)->sliding;
    void *dout = m->d.buf[3];
    attention_dims ad = sliding_dims(m);
    ops->matmul_backward(dout, FLAME_GRAD_SET, dW(m, l, S_OUT), NULL, m->base.d_resid, A->o, W(m, l, S_OUT), n,
                         c->s.D, c->s.D);
    /* dq and dk taken back through the rotary turn by the attention's backward */
    m->attn->attention_backward(dqkv[0], dqkv[1], dqkv[2], dout, A->o, A->lse, A->q, A->k, A->v, &ad,
                                m->d.attn_work);
}

/* ------------------------------------------------------------------ the layer */

/* a = norm1(resid[l]) into the scratch, its rstd kept */
static void norm1_forward(based_model *m, int l, int n)
{
    m->base.ops->rmsnorm_forward(m->d.a, acts(m, l)->rstd, m->base.resid[l], W(m, l, norm1_index(m, l)), n,
                                 m->c.s.D, m->c.s.eps);
}

/* mid[l] = resid[l] + the mixer of norm1(resid[l]) (lm_mixer_fn) */
static void mixer_forward(void *model, int l)
{
    based_model *m = model;
    int n = m->base.batch.n;
    norm1_forward(m, l, n);
    if (m->kind[l] == MIX_CONV)
        conv_forward(m, l, n);
    else if (m->kind[l] == MIX_TAYLOR)
        taylor_forward(m, l, n);
    else
        sliding_forward(m, l, n);
}

static float based_forward(void *model, const flame_batch *batch, float *logits)
{
    return lm_model_forward(model, batch, logits, "based", mixer_forward, model);
}

/* ------------------------------------------------------------------ generation */

/* what layer l carries for n sequences besides the sliding layers' cache:
 * BaseConv the window of its convolution's last K−1 inputs (act), Taylor
 * its running sums (fp32); rounded up to 16 bytes */
static size_t decode_layer_bytes(const based_model *m, int l, int n)
{
    const based_sizes *c = &m->c;
    size_t bytes = m->kind[l] == MIX_CONV ? (size_t)n * (c->K - 1) * c->E * m->base.ops->act_bytes
                   : m->kind[l] == MIX_TAYLOR
                       ? (size_t)n * c->Ht * based_taylor_state_floats(c->F, c->Dv) * sizeof(float)
                       : 0;
    return (bytes + 15) / 16 * 16;
}

/* where layer l's state starts (l = L: the cache). The decode state holds
 * each layer's (decode_layer_bytes), then the sliding layers' key and value
 * cache, position-major: the [B, D] blocks of position p, sliding layer i,
 * keys then values, at ((p·n_sliding + i)·2 + kv) blocks. */
static size_t decode_offset(const based_model *m, int l, int n)
{
    size_t off = 0;
    for (int i = 0; i < l; i++)
        off += decode_layer_bytes(m, i, n);
    return off;
}

static void *decode_state(const based_model *m, int l, int n)
{
    return (unsigned char *)m->base.decoding + decode_offset(m, l, n);
}

static int sliding_index(const based_model *m, int l)
{
    int i = 0;
    for (int j = 0; j < l; j++)
        i += m->kind[j] == MIX_SLIDING;
    return i;
}

/* the new token's q, k (rotated at decode_pos) and v against the cache */
static void sliding_decode(based_model *m, int l, int n, const attention_dims *ad)
{
    const sliding_acts *A = &acts(m, l)->sliding;
    size_t block = (size_t)n * m->c.s.D, i = (size_t)sliding_index(m, l);
    void *cache = decode_state(m, m->c.s.L, n);
    m->attn->attention_decode(A->o, A->q, A->k, A->v, lm_act_at(m->base.ops, cache, i * 2 * block),
                              lm_act_at(m->base.ops, cache, (i * 2 + 1) * block),
                              (size_t)sliding_index(m, m->c.s.L) * 2 * block, n, m->base.decode_pos, ad,
                              ad->hd, m->c.theta);
}

/* whether the backend steps every mixer the model has (one without sliding
 * layers needs no attention_decode, say) */
static int can_decode(const based_model *m)
{
    return (!count_kind(m, MIX_CONV) || FLAME_OPS_HAS(m->base.ops, conv1d_step)) &&
           (!count_kind(m, MIX_TAYLOR) || m->kern->taylor_step) &&
           (!count_kind(m, MIX_SLIDING) || m->attn->attention_decode);
}

/* the layers' states, then the sliding layers' keys and values of max_len positions */
static size_t based_decode_state_size(const void *model, int B, int max_len)
{
    const based_model *m = model;
    if (!can_decode(m))
        return 0;
    size_t fixed = decode_offset(m, m->c.s.L, B);
    size_t cache = (size_t)max_len * sliding_index(m, m->c.s.L) * 2 * B * m->c.s.D *
                   m->base.ops->act_bytes;
    return fixed + cache;
}

static int based_decode_forward(void *model, void *state, const int32_t *tokens, int B, int pos,
                                float *logits)
{
    based_model *m = model;
    return lm_model_decode(&m->base, state, tokens, B, pos, logits, "based", mixer_forward, m);
}

/* The mixer's input projections, each a weight's row block reading a, with
 * the gradients of their outputs in the scratch buffers 0, 1, 2: into proj,
 * returning their count. */
static int input_projections(const based_model *m, int l, lm_projection *proj)
{
    const based_sizes *c = &m->c;
    void *const *g = m->d.buf;
    int D = c->s.D;
    if (m->kind[l] == MIX_CONV) {
        for (int i = 0; i < 2; i++) /* in_proj's halves: u1, u2 */
            proj[i] = (lm_projection){rows_of(m, W(m, l, C_IN), i * c->E, D), grad_rows(dW(m, l, C_IN), i * c->E, D),
                                      g[i], c->E, NULL};
        return 2;
    }
    if (m->kind[l] == MIX_TAYLOR) {
        int QK = c->Ht * c->F;
        proj[0] = (lm_projection){W(m, l, T_Q), dW(m, l, T_Q), g[0], QK, NULL};
        proj[1] = (lm_projection){W(m, l, T_K), dW(m, l, T_K), g[1], QK, NULL};
        proj[2] = (lm_projection){W(m, l, T_V), dW(m, l, T_V), g[2], D, NULL};
        return 3;
    }
    for (int i = 0; i < 3; i++) /* Wqkv's blocks: q, k, v */
        proj[i] = (lm_projection){rows_of(m, W(m, l, S_QKV), i * D, D), grad_rows(dW(m, l, S_QKV), i * D, D), g[i], D, NULL};
    return 3;
}

/* from d_resid = ∂loss/∂mid[l] to ∂loss/∂resid[l] (lm_mixer_fn) */
static void mixer_backward(void *model, int l)
{
    based_model *m = model;
    int n = m->base.batch.n;
    void *const *g = m->d.buf;
    if (m->kind[l] == MIX_CONV)
        conv_backward(m, l, n, g[0], g[1]);
    else if (m->kind[l] == MIX_TAYLOR)
        taylor_backward(m, l, n, g[0], g[1], g[2]);
    else
        sliding_backward(m, l, n, g);
    norm1_forward(m, l, n); /* a again */
    int p = norm1_index(m, l);
    const lm_prenorm norm = {m->base.resid[l], m->d.a, W(m, l, p), dW(m, l, p), acts(m, l)->rstd, NULL, NULL, NULL, NULL};
    lm_projection proj[3];
    int count = input_projections(m, l, proj);
    lm_prenorm_backward(m->base.ops, &norm, proj, count, m->base.d_x, m->base.d_resid, n, m->c.s.D);
}

static void based_backward(void *model) { lm_model_backward(model, mixer_backward, model); }

/* ------------------------------------------------------------------ the rest */

/* 6 FLOPs per weight of every matmul (2 forward, 4 backward), lm_head
 * included even when tied, the embedding lookup excluded; plus per token and
 * layer what is not a matmul:
 *  - BaseConv: the depthwise convolution, 2·K FLOPs per channel forward and
 *    twice that backward;
 *  - sliding: q·k and p·v, 2·hd FLOPs per (query, key) pair each, over the
 *    min(T, window) keys a query sees, times 3 for forward and backward (as
 *    the transformer plugin counts attention, without the causal discount);
 *  - Taylor: the recurrence over the kernel's packed features f: the forward
 *    makes two f×Dv products per token and head (the state update and the
 *    readout), the backward five, 2 FLOPs per multiply-add: 14·f·D. */
static double based_flops_per_token(const void *model, int T)
{
    const based_model *m = model;
    const based_sizes *c = &m->c;
    double D = c->s.D, weights = (double)c->s.V * D, other = 0;
    for (int l = 0; l < c->s.L; l++) {
        weights += 3.0 * c->s.I * D; /* fc1 (two blocks), fc2 */
        if (m->kind[l] == MIX_CONV) {
            weights += 3.0 * c->E * D; /* in_proj (2E rows), out_proj */
            other += 6.0 * c->K * c->E;
        } else if (m->kind[l] == MIX_TAYLOR) {
            weights += 2.0 * c->Ht * c->F * D + 2.0 * D * D;
            other += 14.0 * (double)based_taylor_feature_count(c->F) * D;
        } else {
            weights += 4.0 * D * D;
            other += 12.0 * D * (T < c->window ? T : c->window);
        }
    }
    return 6.0 * weights + other;
}

/* HazyResearch's config.json: GPT2Config's keys and the three mixers' settings
 * as objects (each built from its _target_ class). Settings flame has fixed
 * are accepted at its values only; those that do not change the model
 * (dropout, sequence lengths, fused-kernel switches, the Taylor kernel's
 * implementation, whose eps differs by 1e-6) at any value. */
#define MIXER "based.models.mixers."
static const flame_hf_key based_keys[] = {
    {"mixer._target_", NULL, "\"" MIXER "convolution.BaseConv\""},
    {"mixer.use_bias", NULL, "true"},
    {"mixer.expand_proj", "expand_proj", NULL},
    {"mixer.kernel_size", "kernel_size", NULL},
    {"mixer.kernel_sizes", "kernel_sizes", NULL},
    {"mixer.l_max", "l_max", NULL},
    {"alt_mixer._target_", NULL, "\"" MIXER "linear_attention.LinearAttention\""},
    {"alt_mixer.feature_map._target_", NULL, "\"" MIXER "linear_attention.TaylorExp\""},
    {"alt_mixer.feature_map.input_dim", "feature_dim", NULL},
    {"alt_mixer.feature_dim", "feature_dim", NULL},
    {"alt_mixer.num_heads", "num_heads", NULL},
    {"alt_mixer.l_max", "l_max", NULL},
    {"alt_mixer.eps", NULL, NULL},
    {"alt_mixer.parallel_implementation", NULL, NULL},
    {"alt_mixer_2._target_", NULL, "\"" MIXER "slide_attention.SlidingAttention\""},
    {"alt_mixer_2.window_size", "window_size", NULL},
    {"alt_mixer_2.causal", NULL, "true"},
    {"alt_mixer_2.num_heads", NULL, NULL}, /* gpt.py replaces it with n_head */
    {"alt_mixer_2.l_max", NULL, NULL},
    {"mlp_type", NULL, "\"base\""},
    {"prenorm", NULL, "true"},
    {"parallel_block", NULL, "false"},
    {"lm_head_bias", NULL, "false"},
    {"scale_attn_weights", NULL, "true"},
    {"scale_attn_by_inverse_layer_idx", NULL, "false"},
    {"n_positions", NULL, NULL},
    {"n_ctx", NULL, NULL},
    {"attn_pdrop", NULL, NULL},
    {"embd_pdrop", NULL, NULL},
    {"resid_pdrop", NULL, NULL},
    {"summary_type", NULL, NULL},
    {"summary_use_proj", NULL, NULL},
    {"summary_activation", NULL, NULL},
    {"summary_proj_to_labels", NULL, NULL},
    {"summary_first_dropout", NULL, NULL},
    {"reorder_and_upcast_attn", NULL, NULL},
    {"use_cache", NULL, NULL},
    {"bos_token_id", NULL, NULL},
    {"eos_token_id", NULL, NULL},
    {"fused_mlp", NULL, NULL},
    {"fused_bias_fc", NULL, NULL},
    {"fused_dropout_add_ln", NULL, NULL},
    {"use_flash_attn", NULL, NULL},
    {"special_initializer", NULL, NULL}, /* computed, never used (gpt.py) */
    {"fixed_decay", NULL, NULL},         /* a buffer no mixer reads */
    {"decay_const", NULL, NULL},
    {"decay_denom", NULL, NULL},
};
#undef MIXER

/* flame's own folders say model_type "based" (HazyResearch's config class is
 * GPT2Config's subclass: a folder of theirs that says "gpt2" is read with
 * --arch based once it says "based" or nothing) */
static const flame_hf_format based_formats[] = {
    {"based", "GPTLMHeadModel", based_keys, LM_COUNT(based_keys), NULL, 0},
};

static const flame_plugin based_plugin = {
    FLAME_PLUGIN_HEADER,
    .name = "based",
    .description = "Based: BaseConv, Taylor linear attention and sliding-window attention "
                   "(HazyResearch/based's GPTLMHeadModel)",
    .options = based_options,
    .n_options = N_OPTIONS,
    .create = based_create,
    .destroy = based_destroy,
    .n_params = lm_model_n_params,
    .param = lm_model_param,
    .param_joined = lm_model_param_joined,
    .bind = lm_model_bind,
    .reserve = based_reserve,
    .forward = based_forward,
    .backward = based_backward,
    .watch_gradients = lm_model_watch_gradients,
    .flops_per_token = based_flops_per_token,
    .vocab_size = lm_model_vocab_size,
    .hf_formats = based_formats,
    .n_hf_formats = LM_COUNT(based_formats),
    .decode_state_size = based_decode_state_size,
    .decode_forward = based_decode_forward,
    .init_values = based_init_values,
};

const flame_plugin *flame_plugin_entry(void) { return &based_plugin; }
