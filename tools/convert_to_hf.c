/* flame-convert to-hf: a flame checkpoint into a Hugging Face / fla folder,
 * model.safetensors and config.json, the way fla's from_pretrained reads them;
 * the plugin's own format (its hf_formats[0]), or another of its formats
 * (--format), says how. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "convert.h"
#include "errors.h"
#include "plugin_loader.h"

static const char HELP[] =
    "usage: flame-convert to-hf --checkpoint DIR/checkpoint/step-N --output HF_DIR\n"
    "                           [--dtype float32|bfloat16] [--config MODEL_CONFIG]\n"
    "                           [--arch NAME|PATH.so] [--tokenizer PATH|byte|none]\n"
    "                           [--format MODEL_TYPE]\n"
    "       flame-convert to-hf --path DIR --step N [--config MODEL_CONFIG]\n"
    "                           [--tokenizer PATH|byte]   (fla-org/flame's spelling)\n"
    "\n"
    "Writes HF_DIR/model.safetensors (every parameter of the checkpoint's\n"
    "model.safetensors; float32, the default, copies them bit for bit, bfloat16\n"
    "rounds to nearest even) and HF_DIR/config.json (the plugin's own model_type\n"
    "and architectures, torch_dtype, and the run's [model] settings under the keys\n"
    "the plugin's format gives them; vocab_size is the embedding's rows, padding\n"
    "included). --format writes another model_type the plugin reads instead (the\n"
    "gpt plugin's gpt2: Hugging Face's GPT2LMHeadModel), its tensor names and\n"
    "layouts (GPT-2's Conv1D weights transposed); a setting that format cannot\n"
    "hold is refused. The run is read from DIR/config.ini (its\n"
    "[job] arch and [model]), or from --config (a flame INI or fla JSON model\n"
    "config); --arch names the plugin when that file does not.\n"
    "The tokenizer (--tokenizer; default the run's model.tokenizer_path when the\n"
    "run's config.ini is read, else none) goes into HF_DIR as Hugging Face keeps\n"
    "one: tokenizer.json, tokenizer_config.json, special_tokens_map.json (the\n"
    "byte tokenizer as a tokenizer.json of its own), and config.json's\n"
    "bos_token_id and eos_token_id are its.\n"
    "--path DIR --step N is --checkpoint DIR/checkpoint/step-N, written into DIR\n"
    "itself unless --output says otherwise.\n"
    "The checkpoint must hold exactly the model's parameters, of their shapes.\n"
    "Exit status: 0 done; 1 write failure; 2 bad command line or missing file;\n"
    "3 a damaged checkpoint, or one that is not the model's; 4 the plugin cannot\n"
    "be loaded or declares no Hugging Face identity.\n";

/* A [model] string that is a list of whole numbers (alt_mixer_layers = 1, 6,
 * 11; a list in config.json is read as that text) as the JSON list; any other
 * string as itself. */
static json_t *json_of_text(const char *text)
{
    json_t *list = json_array();
    const char *p = text + strspn(text, " \t");
    int bracketed = *p == '[';
    p += bracketed;
    for (;;) {
        p += strspn(p, ", \t");
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            break;
        json_array_append_new(list, json_integer(v));
        p = end;
    }
    if (bracketed && *p == ']')
        p += 1 + strspn(p + 1, " \t"), bracketed = 0;
    if (json_array_size(list) > 0 && *p == '\0' && !bracketed)
        return list;
    json_decref(list);
    return json_string(text);
}

/* a [model] option's value as JSON */
static json_t *json_of_option(const flame_config *cfg, const flame_option *o)
{
    switch (o->type) {
    case FLAME_TYPE_INT:
        return json_integer(config_get_int(cfg, "model", o->key));
    case FLAME_TYPE_FLOAT:
        return json_real(config_get_float(cfg, "model", o->key));
    case FLAME_TYPE_BOOL:
        return json_boolean(config_get_bool(cfg, "model", o->key));
    default:
        return json_of_text(config_get_string(cfg, "model", o->key));
    }
}

/* Sets config[a][b][c] = v for the key "a.b.c" (a key inside nested objects,
 * as HazyResearch's mixer settings are), making the objects on the way. */
static void set_path(json_t *config, const char *key, json_t *v)
{
    const char *dot;
    while ((dot = strchr(key, '.')) != NULL) {
        char part[256];
        snprintf(part, sizeof part, "%.*s", (int)(dot - key), key);
        json_t *inner = json_object_get(config, part);
        if (!json_is_object(inner)) {
            inner = json_object();
            json_object_set_new(config, part, inner);
        }
        config = inner;
        key = dot + 1;
    }
    json_object_set_new(config, key, v);
}

/* a [model] key under every config.json key format f gives it (Based's
 * feature_dim is both alt_mixer.feature_dim and its feature map's input_dim),
 * or under its own name when f gives it none */
static void set_option(json_t *config, const flame_hf_format *f, const char *model_key, json_t *v)
{
    int named = 0;
    for (int i = 0; i < f->n_keys; i++)
        if (f->keys[i].model && strcmp(f->keys[i].model, model_key) == 0) {
            set_path(config, f->keys[i].hf, json_deep_copy(v));
            named = 1;
        }
    if (!named)
        set_path(config, model_key, json_incref(v));
    json_decref(v);
}

/* the keys format f fixes at one value, written as that value (the class a
 * HazyResearch mixer is built from, say); a value JSON cannot hold (Python's
 * Infinity) is left out, as the reader's default is that value */
static void set_fixed_keys(json_t *config, const flame_hf_format *f)
{
    for (int i = 0; i < f->n_keys; i++) {
        if (f->keys[i].model || !f->keys[i].only)
            continue;
        json_t *v = json_loads(f->keys[i].only, JSON_DECODE_ANY, NULL);
        if (v && !json_is_null(v))
            set_path(config, f->keys[i].hf, v);
        else
            json_decref(v);
    }
}

/* whether format f fixes config key `key` at one value (check_fixed_keys has
 * seen that the [model] setting of that name, if any, holds it) */
static int fixed_key(const flame_hf_format *f, const char *key)
{
    for (int i = 0; i < f->n_keys; i++)
        if (!f->keys[i].model && f->keys[i].only && strcmp(f->keys[i].hf, key) == 0)
            return 1;
    return 0;
}

/* A [model] setting format f fixes at another value (rotary in Hugging Face's
 * GPT-2, say): FLAME_EXIT_CONFIG with err; else FLAME_EXIT_OK. */
static int check_fixed_keys(const convert_model *m, const flame_hf_format *f, char *err, size_t err_len)
{
    for (int i = 0; i < f->n_keys; i++) {
        const flame_hf_key *k = &f->keys[i];
        const flame_option *o = NULL;
        for (int j = 0; j < m->plugin->n_options; j++)
            if (strcmp(m->plugin->options[j].key, k->hf) == 0)
                o = &m->plugin->options[j];
        if (k->model || !k->only || !o || !config_is_set(m->cfg, "model", o->key))
            continue;
        json_t *have = json_of_option(m->cfg, o), *want = json_loads(k->only, JSON_DECODE_ANY, NULL);
        int same = want && json_is_number(have) && json_is_number(want)
                       ? json_number_value(have) == json_number_value(want)
                       : json_equal(have, want);
        char *shown = json_dumps(have, JSON_ENCODE_ANY);
        if (!same)
            snprintf(err, err_len, "format %s cannot hold [model] %s = %s (only %s)", f->model_type, o->key,
                     shown ? shown : "?", k->only);
        free(shown);
        json_decref(have), json_decref(want);
        if (!same)
            return FLAME_EXIT_CONFIG;
    }
    return FLAME_EXIT_OK;
}

/* config.json of format f: every [model] option that has a value, the values
 * the format fixes, and vocab_size as the embedding's rows (a padded
 * vocabulary's, which the tensors have) */
static json_t *make_config(const convert_model *m, const flame_hf_format *f, const char *dtype)
{
    json_t *config = json_object();
    set_fixed_keys(config, f);
    for (int i = 0; i < m->plugin->n_options; i++) {
        const flame_option *o = &m->plugin->options[i];
        if (config_is_set(m->cfg, "model", o->key) && !fixed_key(f, o->key))
            set_option(config, f, o->key, json_of_option(m->cfg, o));
    }
    json_object_set_new(config, "vocab_size", json_integer(m->plugin->vocab_size(m->model)));
    json_object_set_new(config, "architectures", json_pack("[s]", f->architecture));
    json_object_set_new(config, "model_type", json_string(f->model_type));
    json_object_set_new(config, "torch_dtype", json_string(dtype));
    return config;
}

static int write_config(const char *out_dir, json_t *config, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    FILE *f = fopen(path, "w");
    int rc = f && json_dumpf(config, f, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
             fputc('\n', f) != EOF ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc) {
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Returns an exit status, with err. */
static int write_weights(const char *out_dir, const plan *p, safetensors_dtype out, char *err,
                         size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    safetensors_desc *descs = calloc((size_t)p->n + 1, sizeof *descs);
    for (int i = 0; i < p->n; i++) {
        descs[i] = (safetensors_desc){p->tensors[i].name, out, p->tensors[i].ndim, {0}};
        memcpy(descs[i].shape, p->tensors[i].shape, sizeof descs[i].shape);
    }
    safetensors_kv meta[] = {{"format", "pt"}};
    safetensors_writer w;
    int begun = safetensors_writer_begin(&w, path, descs, p->n, meta, 1, err, err_len) == 0;
    free(descs);
    if (!begun)
        return FLAME_EXIT_RUNTIME;
    int rc = FLAME_EXIT_OK;
    for (int i = 0; i < p->n && rc == FLAME_EXIT_OK; i++) {
        int r = convert_stream_tensor(&w, &p->tensors[i], out, err, err_len);
        rc = r == -1 ? FLAME_EXIT_DATA : r ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
    }
    if (rc == FLAME_EXIT_OK)
        return safetensors_writer_finish(&w, err, err_len) ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
    safetensors_writer_abort(&w);
    return rc;
}

/* the checkpoint's tensors as they are, to be checked against the model */
static void checkpoint_plan(const safetensors *st, plan *p)
{
    p->n = st->n;
    p->tensors = calloc((size_t)st->n + 1, sizeof *p->tensors);
    for (int i = 0; i < st->n; i++) {
        mapped *m = &p->tensors[i];
        m->file = st;
        m->tensor = &st->tensors[i];
        m->ndim = st->tensors[i].ndim;
        memcpy(m->shape, st->tensors[i].shape, sizeof m->shape);
        snprintf(m->name, sizeof m->name, "%s", st->tensors[i].name);
    }
}

/* fla-org/flame's --path DIR --step N: DIR/checkpoint/step-N into DIR */
static int path_and_step(const char *path, const char *step, to_hf_args *a, char *buf,
                         size_t n)
{
    char *end;
    long s = step ? strtol(step, &end, 10) : -1;
    if (!path || !step || *end || s < 0) {
        fprintf(stderr, "flame-convert to-hf: %s (flame-convert to-hf -h for help)\n",
                path || step ? "--path DIR and --step N go together, N a step number"
                             : "--checkpoint is required");
        return FLAME_EXIT_CONFIG;
    }
    snprintf(buf, n, "%s/checkpoint/step-%ld", path, s);
    a->checkpoint = buf;
    if (!a->output)
        a->output = path;
    return -1;
}

static int parse_args(int argc, char **argv, to_hf_args *a, char *buf, size_t n)
{
    const char *path = NULL, *step = NULL;
    const convert_option opts[] = {{"--checkpoint", &a->checkpoint}, {"--output", &a->output},
                                   {"--dtype", &a->dtype}, {"--config", &a->config},
                                   {"--arch", &a->arch}, {"--tokenizer", &a->tokenizer},
                                   {"--path", &path}, {"--step", &step}, {"--format", &a->format},
                                   {NULL, NULL}};
    int rc = convert_parse("to-hf", HELP, argc, argv, opts, NULL);
    if (rc >= 0)
        return rc;
    if (!a->checkpoint && (rc = path_and_step(path, step, a, buf, n)) >= 0)
        return rc;
    if (!a->output)
        return convert_missing("to-hf", "--output");
    if (strcmp(a->dtype, "float32") && strcmp(a->dtype, "bfloat16")) {
        fprintf(stderr, "flame-convert to-hf: --dtype %s: expected float32 or bfloat16\n", a->dtype);
        return FLAME_EXIT_CONFIG;
    }
    return -1;
}

/* the checkpoint's model.safetensors; returns an exit status, with err */
static int open_checkpoint(const char *dir, safetensors *st, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat s;
    if (stat(path, &s) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return FLAME_EXIT_CONFIG;
    }
    return safetensors_open(path, st, err, err_len) ? FLAME_EXIT_DATA : FLAME_EXIT_OK;
}

/* The tokenizer's files into the folder and its ids into config.json (none:
 * no files, and null ids, so that a reader's default ids, GPT-2's 50256 say,
 * are not taken for the model's). Returns an exit status, with err. */
static int add_tokenizer(const to_hf_args *a, const convert_model *m, json_t *config, char *err,
                         size_t err_len)
{
    const char *path = a->tokenizer    ? a->tokenizer
                       : a->config     ? NULL
                                       : config_get_string(m->cfg, "model", "tokenizer_path");
    if (!path || strcmp(path, "none") == 0) {
        json_object_set_new(config, "bos_token_id", json_null());
        json_object_set_new(config, "eos_token_id", json_null());
        return FLAME_EXIT_OK;
    }
    tokenizer tok = {0};
    int rc = convert_write_tokenizer(path, a->output, &tok, err, err_len);
    if (rc == FLAME_EXIT_OK) {
        json_object_set_new(config, "bos_token_id",
                            tok.bos_id >= 0 ? json_integer(tok.bos_id) : json_null());
        json_object_set_new(config, "eos_token_id",
                            tok.eos_id >= 0 ? json_integer(tok.eos_id) : json_null());
        int64_t vocab = m->plugin->vocab_size(m->model);
        if (vocab < tok.vocab_size) {
            snprintf(err, err_len, "tokenizer %s has %d ids, more than the model's vocab_size %lld",
                     path, tok.vocab_size, (long long)vocab);
            rc = FLAME_EXIT_CONFIG;
        }
    }
    tokenizer_close(&tok);
    return rc;
}

/* the format to write: --format's model_type among the plugin's, else its own;
 * an exit status with err */
static int pick_format(const convert_model *m, const char *type, const flame_hf_format **f, char *err,
                       size_t err_len)
{
    *f = type ? plugin_hf_format(m->plugin, type) : &m->plugin->hf_formats[0];
    if (*f)
        return FLAME_EXIT_OK;
    size_t at = (size_t)snprintf(err, err_len, "--format %s: plugin %s writes ", type, m->plugin->name);
    for (int i = 0; i < m->plugin->n_hf_formats && at < err_len; i++)
        at += (size_t)snprintf(err + at, err_len - at, "%s%s", i ? ", " : "", m->plugin->hf_formats[i].model_type);
    return FLAME_EXIT_CONFIG;
}

/* the model's tensors under format f's names, turned where f stores them transposed */
static void rename_for(plan *p, const flame_plugin *plugin, const flame_hf_format *f)
{
    for (int i = 0; i < p->n; i++) {
        mapped *t = &p->tensors[i];
        char hf[sizeof t->name];
        convert_hf_name(f, t->name, hf, sizeof hf);
        snprintf(t->name, sizeof t->name, "%s", hf);
        convert_mark_transposed(t, plugin, f, hf);
    }
}

/* Returns an exit status, with err. */
static int convert(const to_hf_args *a, const safetensors *st, safetensors_dtype out, char *err,
                   size_t err_len)
{
    char config_path[CONVERT_PATH_LEN];
    /* the run's dump folder is two levels above DIR/checkpoint/step-N */
    snprintf(config_path, sizeof config_path, "%s/../../config.ini", a->checkpoint);
    convert_model m;
    plan p = {0, NULL};
    json_t *config = NULL;
    int rc = convert_model_open(&m, a->arch, NULL, a->config ? a->config : config_path, err,
                                err_len);
    if (rc == FLAME_EXIT_OK && m.plugin->n_hf_formats == 0) {
        snprintf(err, err_len, "plugin %s declares no Hugging Face identity (hf_formats)",
                 m.plugin->name);
        rc = FLAME_EXIT_PLUGIN;
    }
    const flame_hf_format *f = NULL;
    if (rc == FLAME_EXIT_OK)
        rc = pick_format(&m, a->format, &f, err, err_len);
    if (rc == FLAME_EXIT_OK) {
        checkpoint_plan(st, &p);
        rc = plan_retarget(&p, &m, 1, err, err_len);
    }
    if (rc == FLAME_EXIT_OK && (rc = check_fixed_keys(&m, f, err, err_len)) == FLAME_EXIT_OK) {
        rename_for(&p, m.plugin, f);
        config = make_config(&m, f, a->dtype);
        if (mkdir(a->output, 0777) != 0 && errno != EEXIST) {
            snprintf(err, err_len, "%s: cannot create folder: %s", a->output, strerror(errno));
            rc = FLAME_EXIT_RUNTIME;
        }
    }
    if (rc == FLAME_EXIT_OK)
        rc = add_tokenizer(a, &m, config, err, err_len);
    if (rc == FLAME_EXIT_OK && (rc = write_weights(a->output, &p, out, err, err_len)) ==
                                   FLAME_EXIT_OK && write_config(a->output, config, err, err_len))
        rc = FLAME_EXIT_RUNTIME;
    if (rc == FLAME_EXIT_OK)
        printf("%d tensors (%s) written to %s/model.safetensors, config to %s/config.json%s\n",
               p.n, a->dtype, a->output, a->output,
               json_is_integer(json_object_get(config, "eos_token_id")) ? ", the tokenizer's files beside them"
                                                                        : "");
    json_decref(config);
    free(p.tensors);
    convert_model_close(&m);
    return rc;
}

int convert_to_hf_folder(const to_hf_args *a, char *err, size_t err_len)
{
    safetensors_dtype out = strcmp(a->dtype, "float32") == 0 ? ST_F32 : ST_BF16;
    safetensors st;
    int rc = open_checkpoint(a->checkpoint, &st, err, err_len);
    if (rc == FLAME_EXIT_OK) {
        rc = convert(a, &st, out, err, err_len);
        safetensors_close(&st);
    }
    return rc;
}

int convert_to_hf(int argc, char **argv)
{
    to_hf_args a = {.dtype = "float32"};
    char checkpoint[CONVERT_PATH_LEN];
    int rc = parse_args(argc, argv, &a, checkpoint, sizeof checkpoint);
    if (rc >= 0)
        return rc;
    char err[CONVERT_ERR_LEN];
    if ((rc = convert_to_hf_folder(&a, err, sizeof err)) != FLAME_EXIT_OK)
        fprintf(stderr, "flame-convert to-hf: %s\n", err);
    return rc;
}
