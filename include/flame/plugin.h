/* The plugin ABI: one architecture = one shared library exporting
 *
 *     const flame_plugin *flame_plugin_entry(void);
 *
 * Versions. abi_version is the major version and always the first field: the
 * core refuses a plugin of another major version before touching anything
 * else. Within a major version the vtable (and the op table, ops.h) only grow:
 * new entries are appended at the end, never inserted, removed or changed in
 * meaning, and the second field, size, says how much of the vtable the plugin
 * was built with (sizeof(flame_plugin) of its headers). The core reads no entry
 * past size and treats such an entry as NULL, so a plugin built against an
 * earlier minor version loads unchanged. An entry marked "optional" may be
 * NULL. Bump FLAME_ABI_VERSION (and reset FLAME_ABI_MINOR) only for a change
 * that is not an append; bump FLAME_ABI_MINOR for each append.
 *
 * Minor versions of major 5:
 *   5.0  everything up to decode_step
 *   5.1  hf_formats, n_hf_formats (the plugin's Hugging Face identity)
 *   5.2  the op table's memory_available
 *   5.3  the op table's conv1d_forward, conv1d_backward
 *   5.4  FLAME_INIT_PLUGIN and init_values (a parameter the plugin initializes)
 *   5.5  decode_state_size, decode_forward (generation; 5.0's decode_state_bytes
 *        and decode_step, which no plugin ever filled, are unused: always NULL),
 *        and the op table's conv1d_step
 *   5.6  the op table's layernorm_forward, layernorm_backward, gelu_forward,
 *        gelu_backward
 *   5.7  the op table's add
 *   5.8  hf_transposed, n_hf_transposed (tensors a format stores [in, out]);
 *        to-hf writes any of hf_formats
 *   5.9  the op table's matmul_gelu_forward, matmul_dgelu_backward
 *   5.10 the op table's matmul_forward_f32, layernorm_forward_f32,
 *        layernorm_backward_f32 (a residual stream in fp32)
 *   5.11 watch_gradients (gradients reduced over the ranks while the
 *        backward runs)
 *   5.12 param_joined (parameters stored back to back, one tensor to compute with)
 *   5.13 the op table's swiglu_forward_strided, swiglu_backward_strided
 *   5.14 the op table's lm_head_loss, scale_rows
 *
 * Division of labour: the plugin declares its options and parameters and does
 * the math through the op table; the core owns configuration, parameter memory
 * (allocation, initialization, optimizer, checkpoints) and files. A plugin
 * never writes files and never runs the optimizer. The core checks everything
 * a vtable declares (names, counts, shapes, defaults) before it uses it. */
#ifndef FLAME_PLUGIN_H
#define FLAME_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <flame/config.h>
#include <flame/ops.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLAME_ABI_VERSION 5u /* major */
#define FLAME_ABI_MINOR 14u

#define FLAME_MAX_DIMS 4
#define FLAME_NAME_MAX 128

typedef enum flame_init_rule {
    FLAME_INIT_NORMAL, /* N(0, init_std²) */
    FLAME_INIT_ZEROS,
    FLAME_INIT_ONES,
    FLAME_INIT_PLUGIN /* 5.4: the plugin's init_values draws it (init_std unused) */
} flame_init_rule;

/* One parameter tensor. Its name is the Hugging Face / fla name
 * (e.g. "model.layers.0.attn.q_proj.weight"), so checkpoints and conversion
 * need no per-architecture code. */
typedef struct flame_param_spec {
    char name[FLAME_NAME_MAX];
    int ndim;
    int64_t shape[FLAME_MAX_DIMS];
    flame_init_rule init;
    float init_std;
    int weight_decay; /* 1 for matrices; 0 for norms, biases, embeddings */
} flame_param_spec;

/* One batch of B rows of T tokens, filled by the core. Everything it points to
 * is valid from forward until the plugin's backward returns, and the core
 * changes none of it in between: a plugin keeps the pointers, it copies nothing. */
typedef struct flame_batch {
    const int32_t *tokens;  /* [B*T] backend memory; every id in [0, vocab_size): the core checked */
    const int32_t *targets; /* [B*T] backend memory; a negative target is not counted in the loss */
    int B, T;
    int counted;            /* targets ≥ 0: the mean loss divides by this */
    /* Sequence offsets within the flattened B*T tokens, cu_seqlens[0]=0 < ... <
     * cu_seqlens[n_seqs]=B*T: the documents under varlen, else one sequence per
     * row (n_seqs = B); always filled. Recurrent state never crosses a boundary. */
    const int32_t *cu_seqlens;         /* [n_seqs+1] host memory */
    const int32_t *cu_seqlens_backend; /* the same [n_seqs+1] in backend memory, for kernels */
    int n_seqs;
} flame_batch;

/* ---- the Hugging Face identity (5.1) ----
 * How the plugin's models are written in the Hugging Face / fla world, so that
 * flame-convert and --model.config hold no per-architecture code. */

/* How a config.json key reads into [model]. Keys not listed are [model] keys
 * of the same name (and "architectures", "model_type", "torch_dtype", "dtype",
 * "transformers_version", "_name_or_path" and "auto_map" are always passed
 * over); a key neither listed nor an option is refused. */
typedef struct flame_hf_key {
    const char *hf;    /* the config.json key; "a.b" is b inside the object a */
    /* The [model] key it sets; NULL: it sets none. Two config keys may set
     * one [model] key: a file must give both the same value, and to-hf
     * writes it under both. A string [model] key takes a JSON list of whole
     * numbers as their text ("1, 6, 11"); to-hf writes such text as a list. */
    const char *model;
    /* with model NULL: the one value accepted, as JSON text (e.g. "false";
     * an absent key or null always passes), which the plugin's own format's
     * to-hf also writes; or NULL to accept any value and ignore it */
    const char *only;
} flame_hf_key;

/* A tensor name's start in the folder and in flame: "*" stands for a layer
 * number in both (e.g. {"model.layers.*.input_layernorm.",
 * "model.layers.*.attn_norm."}); the rest of the name is kept. flame NULL: a
 * buffer of the folder that is no parameter, passed over. A name no entry
 * starts is the plugin's own name already. */
typedef struct flame_hf_tensor {
    const char *hf, *flame;
} flame_hf_tensor;

/* A 2-D tensor a format stores transposed, [in, out] (GPT-2's Conv1D
 * weights), where flame's is [out, in]: the format's model_type and the
 * tensor's name in the folder ("*" standing for a layer number). */
typedef struct flame_hf_transposed {
    const char *model_type, *hf;
} flame_hf_transposed;

/* One model_type the plugin reads. */
typedef struct flame_hf_format {
    const char *model_type;   /* config.json's model_type, e.g. "gla" */
    const char *architecture; /* its architectures[0], e.g. "GLAForCausalLM" */
    const flame_hf_key *keys; /* may be NULL when n_keys is 0 */
    int n_keys;
    const flame_hf_tensor *tensors; /* may be NULL when n_tensors is 0 */
    int n_tensors;
} flame_hf_format;

typedef struct flame_plugin {
    uint32_t abi_version; /* FLAME_ABI_VERSION (major); must stay the first field */
    uint32_t size;        /* sizeof(flame_plugin) as built; must stay the second */
    const char *name;
    const char *description; /* one line */

    /* the [model] options: key, type, default, help */
    const flame_option *options;
    int n_options;

    /* Builds a model from its resolved options. On invalid options returns NULL
     * and writes one line (naming the key) into err. */
    void *(*create)(const flame_model_config *config, const flame_ops *ops,
                    char *err, size_t err_len);
    void (*destroy)(void *model);

    /* the parameters the core must allocate, in a fixed order */
    int (*n_params)(const void *model);
    const flame_param_spec *(*param)(const void *model, int index);
    /* The core hands in, in the order of param(), each parameter as the plugin
     * computes with it (backend memory, the op table's activation type: a copy
     * the core refreshes after every optimizer step when that type is not
     * fp32) and its fp32 gradient; the plugin keeps the pointers. */
    void (*bind)(void *model, const void *const *params, float *const *grads);

    /* Sizes the activation memory for batches of at most B×T tokens.
     * Returns 0; -1 with a line in err when out of memory; -2 with a line when
     * the model's options cannot take batches of that shape (a configuration
     * error, naming the key). */
    int (*reserve)(void *model, int B, int T, char *err, size_t err_len);
    /* Mean loss over the counted targets. When logits is not NULL it receives
     * [B*T, vocab_size] fp32 logits (backend memory; values of the activation
     * type, widened). */
    float (*forward)(void *model, const flame_batch *batch, float *logits);
    /* Adds ∂(mean loss of the last forward)/∂param into the bound gradients. */
    void (*backward)(void *model);

    /* training FLOPs per token at sequence length T (forward + backward), for MFU */
    double (*flops_per_token)(const void *model, int T);
    int64_t (*vocab_size)(const void *model);

    /* Unused (5.5's decode_state_size and decode_forward replace them): NULL. */
    size_t (*decode_state_bytes)(const void *model, int B);
    void (*decode_step)(void *model, void *state, const int32_t *tokens, int B,
                        float *logits);

    /* ---- 5.1 ---- */
    /* The model types it reads, optional (NULL: flame-convert cannot map the
     * plugin's models). The first is its own: to-hf writes that model_type and
     * architecture, with the [model] keys (renamed back through its keys) and
     * the plugin's tensor names as they are, so it has no tensor entries.
     * from-hf and --model.config take any of them; to-hf --format another
     * (5.8), its tensors renamed back. */
    const flame_hf_format *hf_formats;
    int n_hf_formats;

    /* ---- 5.4 ---- */
    /* Draws parameter `index`, declared FLAME_INIT_PLUGIN, into values (host
     * memory, numel fp32 in the order of its shape), for initializations no
     * rule above says (Mamba2's A_log = log U(1, 16), say). Each uniform(state)
     * is the next draw in (0, 1) of the run's seeded stream, so every backend
     * and flame-convert start from the same values. Optional: NULL refuses
     * FLAME_INIT_PLUGIN; the core refuses values that are not finite. */
    void (*init_values)(const void *model, int index, float *values, size_t numel,
                        double (*uniform)(void *state), void *state);

    /* ---- 5.5 ---- */
    /* Generation, one position at a time. decode_state_size: bytes of backend
     * memory holding what B sequences of up to max_len positions carry from
     * one position to the next (a recurrent state, whatever max_len; a key and
     * value cache, growing with it); 0 when this backend cannot decode. The
     * core allocates and zeroes it. decode_forward: tokens[B] (host memory),
     * one per sequence, at position pos (0, 1, 2, ... in turn, pos < max_len)
     * through the model, reading and updating state; writes logits[B, vocab]
     * (fp32, backend memory), which equal the full forward's at that position.
     * The model must be reserved for batches of at least B tokens. Returns 0,
     * or -1 after a line on stderr. Optional: both NULL when the plugin cannot
     * generate. */
    size_t (*decode_state_size)(const void *model, int B, int max_len);
    int (*decode_forward)(void *model, void *state, const int32_t *tokens, int B, int pos,
                          float *logits);

    /* ---- 5.8 ---- */
    /* The tensors formats of hf_formats store transposed, optional: from-hf
     * and to-hf turn them. */
    const flame_hf_transposed *hf_transposed;
    int n_hf_transposed;

    /* ---- 5.11 ---- */
    /* The core's hook into backward(), so that gradients are summed over the
     * ranks while the backward still runs. From then on, each backward calls
     * ready(ctx, first) whenever the gradients of every parameter of index
     * first or above are complete for this backward (the ops that add into
     * them all called), first falling from call to call; the rest are
     * complete when backward returns. A NULL ready removes the hook.
     * Optional: NULL, and the core sums them after the backward. */
    void (*watch_gradients)(void *model, void (*ready)(void *ctx, int first), void *ctx);

    /* ---- 5.12 ---- */
    /* 1 when parameter `index` (≥ 1) is to be stored right after parameter
     * index − 1, else 0. Such a run of parameters, each of the same weight
     * decay flag and the same shape past its first dimension as the one
     * before, lies back to back in declaration order, values, gradients and
     * the compute copy alike, so that the plugin may take it as one tensor
     * (q_proj, k_proj and v_proj as one [q + 2·kv, D] matrix: one product
     * where there were three); bind() still hands in each member's pointer.
     * A backward reports a run complete (watch_gradients) all at once.
     * Optional: NULL, none is. */
    int (*param_joined)(const void *model, int index);
} flame_plugin;

/* The first two fields of every vtable, FLAME_ABI_VERSION and its size. */
#define FLAME_PLUGIN_HEADER .abi_version = FLAME_ABI_VERSION, .size = sizeof(flame_plugin)

typedef const flame_plugin *(*flame_plugin_entry_fn)(void);

#define FLAME_PLUGIN_ENTRY_SYMBOL "flame_plugin_entry"

#ifdef __cplusplus
}
#endif
#endif
