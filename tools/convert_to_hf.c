/* flame-convert to-hf: a flame checkpoint into a Hugging Face / fla folder,
 * model.safetensors and config.json, the way fla's from_pretrained reads them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>
#include <jansson.h>

#include "convert.h"
#include "errors.h"

static const char HELP[] =
    "usage: flame-convert to-hf --checkpoint DIR/checkpoint/step-N --output HF_DIR\n"
    "                           [--dtype float32|bfloat16] [--config MODEL_CONFIG]\n"
    "                           [--arch gla|transformer]\n"
    "\n"
    "Writes HF_DIR/model.safetensors (every tensor of the checkpoint's\n"
    "model.safetensors; float32, the default, copies them bit for bit, bfloat16\n"
    "rounds to nearest even) and HF_DIR/config.json (model_type, architectures,\n"
    "torch_dtype and the [model] keys of the run: DIR/config.ini, or --config, a\n"
    "flame INI or fla JSON). --arch names the model type when the config does not\n"
    "(default: gla when the tensors have gk_proj, else transformer).\n"
    "Exit status: 0 done; 1 write failure; 2 bad command line or missing file;\n"
    "3 a damaged checkpoint.\n";

/* keys of flame's [model] section that are not fla's config */
static const char *const flame_only_keys[] = {"config", "tokenizer_path", "name", "flavor"};

/* an INI value as the JSON value it spells: integer, real, bool, null or string */
static json_t *json_of_ini_value(const char *v)
{
    char *end;
    long long i = strtoll(v, &end, 10);
    if (*v && !*end)
        return json_integer(i);
    double d = strtod(v, &end);
    if (*v && !*end)
        return json_real(d);
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        return json_boolean(v[0] == 't');
    if (strcmp(v, "null") == 0 || strcmp(v, "none") == 0 || strcmp(v, "None") == 0)
        return json_null();
    return json_string(v);
}

static int on_ini_value(void *user, const char *section, const char *key, const char *value)
{
    if (strcmp(section, "model") != 0)
        return 1;
    for (size_t i = 0; i < sizeof flame_only_keys / sizeof flame_only_keys[0]; i++)
        if (strcmp(key, flame_only_keys[i]) == 0)
            return 1;
    /* config.ini notes where a value came from after " ; " */
    char v[1024];
    snprintf(v, sizeof v, "%s", value);
    char *note = strstr(v, " ;");
    for (; note && note > v && note[-1] == ' '; note--)
        ;
    if (note)
        *note = '\0';
    json_object_set_new((json_t *)user, key, json_of_ini_value(v));
    return 1;
}

/* the [model] keys of an INI, or the object of a JSON file; NULL with err */
static json_t *read_model_config(const char *path, char *err, size_t err_len)
{
    size_t len = strlen(path);
    if (len > 5 && strcmp(path + len - 5, ".json") == 0) {
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!json_is_object(root)) {
            snprintf(err, err_len, "%s:%d: %s", path, jerr.line, root ? "not a JSON object" : jerr.text);
            json_decref(root);
            return NULL;
        }
        return root;
    }
    json_t *obj = json_object();
    int line = ini_parse(path, on_ini_value, obj);
    if (line != 0) {
        if (line < 0)
            snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        else
            snprintf(err, err_len, "%s:%d: not an INI line", path, line);
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static const char *model_type(const char *arch, json_t *config, const safetensors *st)
{
    if (arch)
        return arch;
    if (json_string_value(json_object_get(config, "model_type")))
        return json_string_value(json_object_get(config, "model_type"));
    for (int i = 0; i < st->n; i++)
        if (strstr(st->tensors[i].name, ".gk_proj."))
            return "gla";
    return "transformer";
}

static void complete_config(json_t *config, const char *type, const char *dtype,
                            const safetensors *st)
{
    char arch_name[128];
    snprintf(arch_name, sizeof arch_name, "%s", strcmp(type, "gla") == 0 ? "GLAForCausalLM"
                                               : strcmp(type, "transformer") == 0
                                                   ? "TransformerForCausalLM"
                                                   : type);
    json_object_set_new(config, "architectures", json_pack("[s]", arch_name));
    json_object_set_new(config, "model_type", json_string(type));
    json_object_set_new(config, "torch_dtype", json_string(dtype));
    /* a checkpoint without lm_head.weight ties it to the embeddings */
    if (!json_is_boolean(json_object_get(config, "tie_word_embeddings")))
        json_object_set_new(config, "tie_word_embeddings",
                            json_boolean(!safetensors_find(st, "lm_head.weight")));
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
static int write_weights(const char *out_dir, const safetensors *st, safetensors_dtype out,
                         char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    safetensors_desc *descs = calloc((size_t)st->n + 1, sizeof *descs);
    for (int i = 0; i < st->n; i++) {
        const safetensors_tensor *t = &st->tensors[i];
        descs[i] = (safetensors_desc){t->name, out, t->ndim, {0}};
        memcpy(descs[i].shape, t->shape, sizeof t->shape);
    }
    safetensors_kv meta[] = {{"format", "pt"}};
    safetensors_writer w;
    int begun = safetensors_writer_begin(&w, path, descs, st->n, meta, 1, err, err_len) == 0;
    free(descs);
    if (!begun)
        return FLAME_EXIT_RUNTIME;
    int rc = FLAME_EXIT_OK;
    for (int i = 0; i < st->n && rc == FLAME_EXIT_OK; i++) {
        int r = convert_stream_tensor(&w, st, &st->tensors[i], out, err, err_len);
        rc = r == -1 ? FLAME_EXIT_DATA : r ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
    }
    if (rc == FLAME_EXIT_OK)
        return safetensors_writer_finish(&w, err, err_len) ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
    safetensors_writer_abort(&w);
    return rc;
}

typedef struct to_hf_args {
    const char *checkpoint, *output, *dtype, *config, *arch;
} to_hf_args;

static int parse_args(int argc, char **argv, to_hf_args *a, safetensors_dtype *out)
{
    const convert_option opts[] = {{"--checkpoint", &a->checkpoint}, {"--output", &a->output},
                                   {"--dtype", &a->dtype}, {"--config", &a->config},
                                   {"--arch", &a->arch}, {NULL, NULL}};
    int rc = convert_parse("to-hf", HELP, argc, argv, opts, NULL);
    if (rc >= 0)
        return rc;
    if (!a->checkpoint)
        return convert_missing("to-hf", "--checkpoint");
    if (!a->output)
        return convert_missing("to-hf", "--output");
    if (strcmp(a->dtype, "float32") && strcmp(a->dtype, "bfloat16")) {
        fprintf(stderr, "flame-convert to-hf: --dtype %s: expected float32 or bfloat16\n", a->dtype);
        return FLAME_EXIT_CONFIG;
    }
    *out = strcmp(a->dtype, "float32") == 0 ? ST_F32 : ST_BF16;
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

int convert_to_hf(int argc, char **argv)
{
    to_hf_args a = {.dtype = "float32"};
    safetensors_dtype out;
    int rc = parse_args(argc, argv, &a, &out);
    if (rc >= 0)
        return rc;
    char err[CONVERT_ERR_LEN], path[CONVERT_PATH_LEN];
    safetensors st;
    if ((rc = open_checkpoint(a.checkpoint, &st, err, sizeof err))) {
        fprintf(stderr, "flame-convert to-hf: %s\n", err);
        return rc;
    }
    /* the run's dump folder is two levels above DIR/checkpoint/step-N */
    snprintf(path, sizeof path, "%s/../../config.ini", a.checkpoint);
    json_t *config = read_model_config(a.config ? a.config : path, err, sizeof err);
    if (!config) {
        fprintf(stderr, "flame-convert to-hf: %s\n", err);
        safetensors_close(&st);
        return FLAME_EXIT_CONFIG;
    }
    complete_config(config, model_type(a.arch, config, &st), a.dtype, &st);
    if (mkdir(a.output, 0777) != 0 && errno != EEXIST) {
        snprintf(err, sizeof err, "%s: cannot create folder: %s", a.output, strerror(errno));
        rc = FLAME_EXIT_RUNTIME;
    } else if ((rc = write_weights(a.output, &st, out, err, sizeof err)) == FLAME_EXIT_OK &&
               write_config(a.output, config, err, sizeof err))
        rc = FLAME_EXIT_RUNTIME;
    if (rc != FLAME_EXIT_OK)
        fprintf(stderr, "flame-convert to-hf: %s\n", err);
    else
        printf("%d tensors (%s) written to %s/model.safetensors, config to %s/config.json\n",
               st.n, a.dtype, a.output, a.output);
    safetensors_close(&st);
    json_decref(config);
    return rc;
}
