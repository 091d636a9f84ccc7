/* flame-convert from-hf: a Hugging Face Llama or Mistral folder into a flame
 * seed checkpoint of the transformer plugin (fla's TransformerForCausalLM names),
 * which flame-run resumes from with --checkpoint.load_step 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "convert.h"
#include "errors.h"

static const char HELP[] =
    "usage: flame-convert from-hf --model HF_DIR --output DIR\n"
    "                             [--config MODEL_CONFIG [--arch NAME] [--seed N]]\n"
    "\n"
    "Reads a Hugging Face Llama or Mistral folder, or fla's TransformerForCausalLM\n"
    "(model_type \"transformer\"): config.json and model.safetensors, or the\n"
    "shards model.safetensors.index.json lists (bf16, fp16 or fp32); and\n"
    "writes a seed checkpoint of the transformer plugin:\n"
    "  DIR/checkpoint/step-0/model.safetensors      fp32, fla's names\n"
    "  DIR/checkpoint/step-0/optimizer.safetensors  zero AdamW moments\n"
    "  DIR/checkpoint/step-0/trainer.json           step 0\n"
    "  DIR/model.ini                                the [model] section to train it with\n"
    "Train on with: flame-run --arch transformer --model.config DIR/model.ini\n"
    "  --job.dump_folder DIR --checkpoint.load_step 0 ...\n"
    "A Mistral's sliding_window (fla's window_size) becomes window_size, which\n"
    "the plugin takes while training.seq_len does not exceed it.\n"
    "\n"
    "With --config (a flame INI or fla JSON model config of plugin --arch, default\n"
    "gla) the checkpoint holds the parameters that plugin declares instead: each\n"
    "copied from the Llama tensor of its fla name when the shapes agree (embeddings,\n"
    "norms, MLP, lm_head, q/k/v/o where they match), else initialized by the\n"
    "plugin's rule (normal draws from --seed, default 42); a table says which and\n"
    "why. No model.ini is written: train with --model.config MODEL_CONFIG.\n"
    "Exit status: 0 done; 1 write failure; 2 bad command line, missing folder or a\n"
    "config flame cannot take; 3 damaged weights, a missing shard or a tensor of\n"
    "no known role; 4 the --arch plugin cannot be loaded.\n";

/* ---- names: Hugging Face Llama → fla transformer ----
 * Hugging Face's Llama checkpoints keep q_proj/k_proj rows in the order their
 * rotate-half RoPE expects (only Meta's original files are interleaved, and
 * transformers' conversion script permutes those); fla's Attention rotates
 * halves too, so the weights are copied as they are. */

static const struct {
    const char *hf, *fla;
} layer_parts[] = {
    {"input_layernorm.", "attn_norm."},        {"post_attention_layernorm.", "mlp_norm."},
    {"self_attn.q_proj.", "attn.q_proj."},     {"self_attn.k_proj.", "attn.k_proj."},
    {"self_attn.v_proj.", "attn.v_proj."},     {"self_attn.o_proj.", "attn.o_proj."},
    {"mlp.gate_proj.", "mlp.gate_proj."},      {"mlp.up_proj.", "mlp.up_proj."},
    {"mlp.down_proj.", "mlp.down_proj."},
};

static const struct {
    const char *hf, *fla;
} model_parts[] = {
    {"model.embed_tokens.", "model.embeddings."},
    {"model.norm.", "model.norm."},
    {"lm_head.", "lm_head."},
};

/* whether a tensor is a buffer older transformers saved, not a weight */
static int is_buffer(const char *name)
{
    size_t n = strlen(name), k = strlen("rotary_emb.inv_freq");
    return n >= k && strcmp(name + n - k, "rotary_emb.inv_freq") == 0;
}

/* fla's name of a Llama tensor (or, from_fla, of an fla one: the same name)
 * into out; -1 when it has no known role */
static int fla_name(const char *hf, int from_fla, char *out, size_t out_len)
{
    for (size_t i = 0; i < sizeof model_parts / sizeof model_parts[0]; i++) {
        const char *from = from_fla ? model_parts[i].fla : model_parts[i].hf;
        size_t n = strlen(from);
        if (strncmp(hf, from, n) == 0) {
            snprintf(out, out_len, "%s%s", model_parts[i].fla, hf + n);
            return 0;
        }
    }
    int layer, at = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &at) != 1 || at == 0)
        return -1;
    for (size_t i = 0; i < sizeof layer_parts / sizeof layer_parts[0]; i++) {
        const char *from = from_fla ? layer_parts[i].fla : layer_parts[i].hf;
        size_t n = strlen(from);
        if (strncmp(hf + at, from, n) == 0) {
            snprintf(out, out_len, "model.layers.%d.%s%s", layer, layer_parts[i].fla, hf + at + n);
            return 0;
        }
    }
    return -1;
}

/* ---- the plan: which tensor of which file becomes which ---- */

/* Returns FLAME_EXIT_OK, or FLAME_EXIT_DATA with err for a tensor of no known role. */
static int make_plan(const tensor_set *ts, int from_fla, plan *p, char *err, size_t err_len)
{
    int total = 0;
    for (int f = 0; f < ts->n; f++)
        total += ts->files[f].n;
    p->n = 0;
    p->tensors = calloc((size_t)total + 1, sizeof *p->tensors);
    for (int f = 0; f < ts->n; f++)
        for (int i = 0; i < ts->files[f].n; i++) {
            const safetensors_tensor *t = &ts->files[f].tensors[i];
            if (is_buffer(t->name))
                continue;
            mapped *m = &p->tensors[p->n];
            if (fla_name(t->name, from_fla, m->name, sizeof m->name)) {
                snprintf(err, err_len, "%s: tensor %s has no counterpart in fla's transformer",
                         ts->files[f].path, t->name);
                return FLAME_EXIT_DATA;
            }
            m->file = &ts->files[f];
            m->tensor = t;
            m->ndim = t->ndim;
            memcpy(m->shape, t->shape, sizeof m->shape);
            p->n++;
        }
    return FLAME_EXIT_OK;
}

/* ---- the model's config ---- */

typedef struct hf_config {
    long long hidden_size, num_hidden_layers, num_heads, num_kv_heads, intermediate_size,
        vocab_size, max_position_embeddings;
    long long hidden_ratio;   /* fla's, where intermediate_size is null; else 0 */
    long long sliding_window; /* Mistral's sliding_window, fla's window_size; 0 when null or absent */
    double norm_eps, rope_theta, initializer_range;
    int tie_word_embeddings;
    int from_fla; /* fla's own transformer folder: its names are flame's already */
} hf_config;

static long long int_or(json_t *root, const char *key, long long fallback)
{
    json_t *v = json_object_get(root, key);
    return json_is_integer(v) ? json_integer_value(v) : fallback;
}

static double number_or(json_t *root, const char *key, double fallback)
{
    json_t *v = json_object_get(root, key);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

/* what flame's transformer cannot take of an fla one: refused rather than converted wrong */
static const char *unsupported_fla(json_t *root)
{
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (act && strcmp(act, "swish") != 0 && strcmp(act, "silu") != 0)
        return "hidden_act is not swish";
    if (json_is_true(json_object_get(root, "qkv_bias")))
        return "qkv_bias is true";
    if (json_is_true(json_object_get(root, "qk_norm")))
        return "qk_norm is true";
    if (json_is_false(json_object_get(root, "elementwise_affine")))
        return "elementwise_affine is false";
    json_t *attnres = json_object_get(root, "attnres_block_size");
    if (attnres && !json_is_null(attnres))
        return "attnres_block_size is set";
    return NULL;
}

/* fla's TransformerConfig keys (fla/models/transformer) */
static void read_fla_keys(json_t *root, hf_config *c)
{
    c->num_heads = int_or(root, "num_heads", 0);
    c->num_kv_heads = int_or(root, "num_kv_heads", c->num_heads);
    c->intermediate_size = int_or(root, "intermediate_size", 0);
    c->hidden_ratio = c->intermediate_size ? 0 : int_or(root, "hidden_ratio", 4);
    c->norm_eps = number_or(root, "norm_eps", 1e-6);
    c->sliding_window = int_or(root, "window_size", 0);
}

/* Hugging Face's Llama/Mistral keys */
static void read_llama_keys(json_t *root, hf_config *c)
{
    c->num_heads = int_or(root, "num_attention_heads", 0);
    c->num_kv_heads = int_or(root, "num_key_value_heads", c->num_heads);
    c->intermediate_size = int_or(root, "intermediate_size", 0);
    c->hidden_ratio = 0;
    c->norm_eps = number_or(root, "rms_norm_eps", 1e-6);
    c->sliding_window = int_or(root, "sliding_window", 0);
}

/* what fla's transformer cannot express: refused rather than converted wrong */
static const char *unsupported(json_t *root, const hf_config *c)
{
    if (c->from_fla)
        return unsupported_fla(root);
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (act && strcmp(act, "silu") != 0)
        return "hidden_act is not silu";
    if (json_is_true(json_object_get(root, "attention_bias")))
        return "attention_bias is true (fla's o_proj has no bias)";
    if (json_is_true(json_object_get(root, "mlp_bias")))
        return "mlp_bias is true";
    long long head_dim = int_or(root, "head_dim", c->hidden_size / c->num_heads);
    if (head_dim * c->num_heads != c->hidden_size)
        return "head_dim * num_attention_heads differs from hidden_size";
    return NULL;
}

/* Returns FLAME_EXIT_OK, or FLAME_EXIT_CONFIG with err. */
static int read_hf_config(const char *dir, hf_config *c, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    const char *type = json_string_value(json_object_get(root, "model_type"));
    if (!root || !type ||
        (strcmp(type, "llama") && strcmp(type, "mistral") && strcmp(type, "transformer"))) {
        snprintf(err, err_len, "%s: %s", root ? path : jerr.source,
                 !root ? jerr.text
                       : "model_type must be \"llama\", \"mistral\" or fla's \"transformer\"");
        json_decref(root);
        return FLAME_EXIT_CONFIG;
    }
    c->from_fla = strcmp(type, "transformer") == 0;
    if (c->from_fla)
        read_fla_keys(root, c);
    else
        read_llama_keys(root, c);
    c->hidden_size = int_or(root, "hidden_size", 0);
    c->num_hidden_layers = int_or(root, "num_hidden_layers", 0);
    c->vocab_size = int_or(root, "vocab_size", 0);
    c->max_position_embeddings = int_or(root, "max_position_embeddings", 2048);
    c->rope_theta = number_or(root, "rope_theta", 10000.0);
    c->initializer_range = number_or(root, "initializer_range", 0.02);
    c->tie_word_embeddings = json_is_true(json_object_get(root, "tie_word_embeddings"));
    const char *why = c->hidden_size > 0 && c->num_hidden_layers > 0 && c->num_heads > 0 &&
                              c->num_kv_heads > 0 &&
                              (c->intermediate_size > 0 || c->hidden_ratio > 0) &&
                              c->vocab_size > 0 && c->sliding_window >= 0
                          ? unsupported(root, c)
                          : "hidden_size, num_hidden_layers, the heads, the MLP width "
                            "(intermediate_size, or fla's hidden_ratio) and vocab_size must be "
                            "positive integers (and the window, when given, not negative)";
    if (why)
        snprintf(err, err_len, "%s: %s", path, why);
    if (!why && !json_is_null(json_object_get(root, "rope_scaling")) &&
        json_object_get(root, "rope_scaling"))
        fprintf(stderr, "flame-convert from-hf: note: %s: rope_scaling is ignored "
                "(fla's transformer uses plain RoPE)\n", path);
    json_decref(root);
    return why ? FLAME_EXIT_CONFIG : FLAME_EXIT_OK;
}

/* the shortest %g spelling that reads back as x */
static const char *shortest(double x, char *buf, size_t len)
{
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

static int write_model_ini(const char *out_dir, const char *model_dir, const hf_config *c,
                           char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/model.ini", out_dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "; the transformer converted from %s by flame-convert from-hf\n[model]\n", model_dir);
    fprintf(f, "hidden_size = %lld\nnum_hidden_layers = %lld\nnum_heads = %lld\n"
            "num_kv_heads = %lld\nvocab_size = %lld\n",
            c->hidden_size, c->num_hidden_layers, c->num_heads, c->num_kv_heads, c->vocab_size);
    if (c->intermediate_size > 0)
        fprintf(f, "intermediate_size = %lld\n", c->intermediate_size);
    else
        fprintf(f, "hidden_ratio = %lld\n", c->hidden_ratio);
    char eps[32], theta[32], range[32];
    fprintf(f, "norm_eps = %s\nrope_theta = %s\ntie_word_embeddings = %s\n"
            "max_position_embeddings = %lld\ninitializer_range = %s\n",
            shortest(c->norm_eps, eps, sizeof eps), shortest(c->rope_theta, theta, sizeof theta),
            c->tie_word_embeddings ? "true" : "false", c->max_position_embeddings,
            shortest(c->initializer_range, range, sizeof range));
    if (c->sliding_window > 0)
        fprintf(f, "window_size = %lld\n", c->sliding_window);
    if (fclose(f) != 0) {
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the checkpoint ---- */

static safetensors_desc desc_of(const mapped *m, const char *name)
{
    safetensors_desc d = {name, ST_F32, m->ndim, {0}};
    memcpy(d.shape, m->shape, sizeof d.shape);
    return d;
}

static uint64_t numel_of(const mapped *m)
{
    uint64_t n = 1;
    for (int d = 0; d < m->ndim; d++)
        n *= (uint64_t)m->shape[d];
    return n;
}

/* Returns an exit status, with err. */
static int write_weights(const char *folder, const plan *p, uint64_t seed, char *err,
                         size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/model.safetensors", folder);
    safetensors_desc *descs = calloc((size_t)p->n + 1, sizeof *descs);
    for (int i = 0; i < p->n; i++)
        descs[i] = desc_of(&p->tensors[i], p->tensors[i].name);
    safetensors_kv meta[] = {{"format", "pt"}};
    safetensors_writer w;
    int begun = safetensors_writer_begin(&w, path, descs, p->n, meta, 1, err, err_len) == 0;
    free(descs);
    if (!begun)
        return FLAME_EXIT_RUNTIME;
    rng draws = {seed};
    for (int i = 0; i < p->n; i++) {
        const mapped *m = &p->tensors[i];
        int r = m->file ? convert_stream_tensor(&w, m->file, m->tensor, ST_F32, err, err_len)
                        : convert_stream_init(&w, numel_of(m), m->init, m->init_std, &draws, err,
                                              err_len) ? -2 : 0;
        if (r) {
            safetensors_writer_abort(&w);
            return r == -1 ? FLAME_EXIT_DATA : FLAME_EXIT_RUNTIME;
        }
    }
    return safetensors_writer_finish(&w, err, err_len) ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
}

/* zero moments, every NAME.exp_avg then every NAME.exp_avg_sq, as flame saves them */
static int write_optimizer(const char *folder, const plan *p, char *err, size_t err_len)
{
    static const char *const suffix[2] = {"exp_avg", "exp_avg_sq"};
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", folder);
    int n = 2 * p->n;
    safetensors_desc *descs = calloc((size_t)n + 1, sizeof *descs);
    char (*names)[540] = calloc((size_t)n + 1, sizeof *names);
    for (int k = 0; k < n; k++) {
        const mapped *m = &p->tensors[k % p->n];
        snprintf(names[k], sizeof names[k], "%s.%s", m->name, suffix[k / p->n]);
        descs[k] = desc_of(m, names[k]);
    }
    safetensors_kv meta[] = {{"format", "pt"}};
    safetensors_writer w;
    int rc = safetensors_writer_begin(&w, path, descs, n, meta, 1, err, err_len);
    for (int k = 0; rc == 0 && k < n; k++)
        if ((rc = convert_stream_zeros(&w, numel_of(&p->tensors[k % p->n]) * sizeof(float), err,
                                       err_len)))
            safetensors_writer_abort(&w);
    if (rc == 0)
        rc = safetensors_writer_finish(&w, err, err_len);
    free(names);
    free(descs);
    return rc;
}

static int write_trainer_json(const char *folder, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/trainer.json", folder);
    json_t *root = json_pack("{s:i, s:s, s:i, s:s, s:n}", "step", 0, "rng_state",
                             "0000000000000000", "skipped", 0, "config_hash", "", "data_cursor");
    int rc = json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    if (rc)
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
    return rc ? -1 : 0;
}

static int make_folders(const char *out, char *folder, size_t folder_len, char *err,
                        size_t err_len)
{
    char checkpoint[CONVERT_PATH_LEN];
    if (snprintf(checkpoint, sizeof checkpoint, "%s/checkpoint", out) >= (int)sizeof checkpoint ||
        snprintf(folder, folder_len, "%s/step-0", checkpoint) >= (int)folder_len) {
        snprintf(err, err_len, "%.200s...: path too long", out);
        return -1;
    }
    const char *dirs[] = {out, checkpoint, folder};
    for (int i = 0; i < 3; i++)
        if (mkdir(dirs[i], 0777) != 0 && errno != EEXIST) {
            snprintf(err, err_len, "%s: cannot create folder: %s", dirs[i], strerror(errno));
            return -1;
        }
    return 0;
}

typedef struct from_hf_args {
    const char *model, *output, *config, *arch, *seed;
    uint64_t seed_value;
} from_hf_args;

/* Returns an exit status, with err. */
static int convert(const from_hf_args *a, const tensor_set *ts, const hf_config *c, char *err,
                   size_t err_len)
{
    plan p = {0, NULL};
    char folder[CONVERT_PATH_LEN - 64]; /* room for the file names within a path */
    int rc = make_plan(ts, c->from_fla, &p, err, err_len);
    if (rc == FLAME_EXIT_OK && a->config)
        rc = plan_retarget(&p, a->arch, a->config, err, err_len);
    if (rc == FLAME_EXIT_OK && make_folders(a->output, folder, sizeof folder, err, err_len))
        rc = FLAME_EXIT_RUNTIME;
    if (rc == FLAME_EXIT_OK)
        rc = write_weights(folder, &p, a->seed_value, err, err_len);
    if (rc == FLAME_EXIT_OK && (write_optimizer(folder, &p, err, err_len) ||
                                write_trainer_json(folder, err, err_len) ||
                                (!a->config && write_model_ini(a->output, a->model, c, err, err_len))))
        rc = FLAME_EXIT_RUNTIME;
    if (rc == FLAME_EXIT_OK)
        printf("%d tensors written to %s (fp32); train it with --model.config %s%s\n", p.n,
               folder, a->config ? a->config : a->output, a->config ? "" : "/model.ini");
    free(p.tensors);
    return rc;
}

static int parse_args(int argc, char **argv, from_hf_args *a)
{
    const convert_option opts[] = {{"--model", &a->model}, {"--output", &a->output},
                                   {"--config", &a->config}, {"--arch", &a->arch},
                                   {"--seed", &a->seed}, {NULL, NULL}};
    int rc = convert_parse("from-hf", HELP, argc, argv, opts, NULL);
    if (rc >= 0)
        return rc;
    if (!a->model || !a->output)
        return convert_missing("from-hf", a->model ? "--output" : "--model");
    char *end;
    a->seed_value = strtoull(a->seed, &end, 10);
    if (!*a->seed || *end) {
        fprintf(stderr, "flame-convert from-hf: --seed %s: expected a whole number\n", a->seed);
        return FLAME_EXIT_CONFIG;
    }
    return -1;
}

int convert_from_hf(int argc, char **argv)
{
    from_hf_args a = {.arch = "gla", .seed = "42"};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    char err[CONVERT_ERR_LEN];
    hf_config c;
    tensor_set ts;
    struct stat s;
    if (stat(a.model, &s) != 0 || !S_ISDIR(s.st_mode)) {
        snprintf(err, sizeof err, "%s: not a folder", a.model);
        rc = FLAME_EXIT_CONFIG;
    } else if ((rc = read_hf_config(a.model, &c, err, sizeof err)) == FLAME_EXIT_OK &&
               (rc = tensor_set_open(a.model, &ts, err, sizeof err)) == FLAME_EXIT_OK) {
        rc = convert(&a, &ts, &c, err, sizeof err);
        tensor_set_close(&ts);
    }
    if (rc != FLAME_EXIT_OK)
        fprintf(stderr, "flame-convert from-hf: %s\n", err);
    return rc;
}
