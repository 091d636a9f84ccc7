/* flame-convert from-hf: a Hugging Face or fla folder into a flame seed
 * checkpoint of the plugin that reads its model_type (its hf_formats say how
 * the folder's config keys and tensor names become the plugin's), which
 * flame-run resumes from with --checkpoint.load_step 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "convert.h"
#include "errors.h"
#include "plugin_loader.h"

static const char HELP[] =
    "usage: flame-convert from-hf --model HF_DIR --output DIR [--arch NAME|PATH.so]\n"
    "                             [--config MODEL_CONFIG [--seed N]]\n"
    "\n"
    "Reads a Hugging Face or fla folder: config.json and model.safetensors, or the\n"
    "shards model.safetensors.index.json lists (bf16, fp16 or fp32). The plugin is\n"
    "the one that reads config.json's model_type (searched as flame-run searches\n"
    "--arch NAME; --arch names it), and its model is the one config.json describes.\n"
    "Writes a seed checkpoint of that model:\n"
    "  DIR/checkpoint/step-0/model.safetensors      fp32, the plugin's names\n"
    "  DIR/checkpoint/step-0/optimizer.safetensors  zero AdamW moments\n"
    "  DIR/checkpoint/step-0/trainer.json           step 0\n"
    "  DIR/config.ini                               the plugin ([job] arch), DIR as the\n"
    "                                               dump folder and the [model] settings\n"
    "Train on with: flame-run --config DIR/config.ini --checkpoint.load_step 0 ...\n"
    "Every parameter must come from a tensor of the folder, and every tensor must\n"
    "have a place in the model.\n"
    "\n"
    "With --config (a flame INI or fla JSON model config; its plugin is --arch, the\n"
    "INI's [job] arch, or the one that reads the JSON's model_type) the checkpoint\n"
    "holds that model's parameters instead: each copied from the folder's tensor of\n"
    "its name when the shapes agree (what two decoders share: embeddings, norms,\n"
    "MLP, head, projections of equal size), else initialized by the plugin's rule (normal\n"
    "draws from --seed, default 42); a table says which and why.\n"
    "Exit status: 0 done; 1 write failure; 2 bad command line, missing folder or a\n"
    "config flame cannot take; 3 damaged weights, a missing shard, a parameter the\n"
    "folder lacks or a tensor of no place; 4 no plugin can be loaded for it.\n";

/* the folder's tensors under the plugin's names */
static void make_plan(const tensor_set *ts, const flame_plugin *plugin, const flame_hf_format *f, plan *p)
{
    int total = 0;
    for (int i = 0; i < ts->n; i++)
        total += ts->files[i].n;
    p->n = 0;
    p->tensors = calloc((size_t)total + 1, sizeof *p->tensors);
    for (int i = 0; i < ts->n; i++)
        for (int j = 0; j < ts->files[i].n; j++) {
            const safetensors_tensor *t = &ts->files[i].tensors[j];
            mapped *m = &p->tensors[p->n];
            if (!convert_plugin_name(f, t->name, m->name, sizeof m->name))
                continue;
            m->file = &ts->files[i];
            m->tensor = t;
            m->ndim = t->ndim;
            memcpy(m->shape, t->shape, sizeof m->shape);
            convert_mark_transposed(m, plugin, f, t->name);
            p->n++;
        }
}

/* ---- the folder's config.json ---- */

/* its model_type into type; an exit status with err */
static int read_model_type(const char *path, char *type, size_t type_len, char *err,
                           size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    const char *t = json_string_value(json_object_get(root, "model_type"));
    if (!root || !t) {
        snprintf(err, err_len, "%s: %s", root ? path : jerr.source,
                 root ? "no model_type: the config says not what model it is" : jerr.text);
        json_decref(root);
        return FLAME_EXIT_CONFIG;
    }
    snprintf(type, type_len, "%s", t);
    json_decref(root);
    return FLAME_EXIT_OK;
}

/* DIR/config.ini: the plugin in [job] arch, DIR as the dump folder and the
 * resolved [model], so that flame-run --config and to-hf read the seed back */
static int write_config_ini(const char *out_dir, const convert_model *m, char *err,
                            size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/config.ini", out_dir);
    if (config_set_string(m->cfg, "job", "arch", m->arch, err, err_len) ||
        config_set_string(m->cfg, "job", "dump_folder", out_dir, err, err_len))
        return -1;
    FILE *f = fopen(path, "w");
    int rc = f && config_write_ini(m->cfg, f) == 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc)
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
    return rc;
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
static int write_weights(const char *folder, const plan *p, const convert_model *model,
                         uint64_t seed, char *err, size_t err_len)
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
        int r = m->file ? convert_stream_tensor(&w, m, ST_F32, err, err_len)
                        : convert_stream_init(&w, model->plugin, model->model, m->index, &draws, err,
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

/* the source: the plugin that reads the folder's model_type (--arch when there
 * is no --config); the target model: that one, or the --config's (whose
 * plugin --arch names, when given). Returns an exit status, with err. */
static int open_models(const from_hf_args *a, const char *type, convert_model *source,
                       convert_model *target, char *err, size_t err_len)
{
    char config_json[CONVERT_PATH_LEN];
    snprintf(config_json, sizeof config_json, "%s/config.json", a->model);
    int rc = convert_model_open(source, a->config ? NULL : a->arch, type, config_json, err,
                                err_len);
    if (rc == FLAME_EXIT_OK && !plugin_hf_format(source->plugin, type)) {
        snprintf(err, err_len, "%s: plugin %s does not read model_type \"%s\"", config_json,
                 source->plugin->name, type);
        rc = FLAME_EXIT_PLUGIN;
    }
    if (rc != FLAME_EXIT_OK || !a->config)
        return rc;
    return convert_model_open(target, a->arch, NULL, a->config, err, err_len);
}

/* the conversion (*n_tensors: how many were written); returns an exit status, with err */
static int convert(const from_hf_args *a, const char *type, int *n_tensors, char *err, size_t err_len)
{
    convert_model source, target = {0};
    tensor_set ts = {0, NULL};
    plan p = {0, NULL};
    char folder[CONVERT_PATH_LEN - 64]; /* room for the file names within a path */
    int rc = open_models(a, type, &source, &target, err, err_len);
    const convert_model *m = a->config ? &target : &source;
    if (rc == FLAME_EXIT_OK && (rc = tensor_set_open(a->model, &ts, err, err_len)) == FLAME_EXIT_OK) {
        make_plan(&ts, source.plugin, plugin_hf_format(source.plugin, type), &p);
        rc = plan_retarget(&p, m, !a->config, err, err_len);
    }
    if (rc == FLAME_EXIT_OK && make_folders(a->output, folder, sizeof folder, err, err_len))
        rc = FLAME_EXIT_RUNTIME;
    if (rc == FLAME_EXIT_OK)
        rc = write_weights(folder, &p, m, a->seed_value, err, err_len);
    if (rc == FLAME_EXIT_OK && (write_optimizer(folder, &p, err, err_len) ||
                                write_trainer_json(folder, err, err_len) ||
                                write_config_ini(a->output, m, err, err_len)))
        rc = FLAME_EXIT_RUNTIME;
    *n_tensors = p.n;
    free(p.tensors);
    tensor_set_close(&ts);
    convert_model_close(&target);
    convert_model_close(&source);
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

/* a's folder checked and its model_type read, then converted */
static int convert_folder(const from_hf_args *a, int *n_tensors, char *err, size_t err_len)
{
    char type[256], path[CONVERT_PATH_LEN];
    struct stat s;
    snprintf(path, sizeof path, "%s/config.json", a->model);
    if (stat(a->model, &s) != 0 || !S_ISDIR(s.st_mode)) {
        snprintf(err, err_len, "%s: not a folder", a->model);
        return FLAME_EXIT_CONFIG;
    }
    int rc = read_model_type(path, type, sizeof type, err, err_len);
    return rc == FLAME_EXIT_OK ? convert(a, type, n_tensors, err, err_len) : rc;
}

int convert_from_hf_folder(const char *model, const char *output, char *err, size_t err_len)
{
    from_hf_args a = {.model = model, .output = output, .seed = "42", .seed_value = 42};
    int n_tensors;
    return convert_folder(&a, &n_tensors, err, err_len);
}

int convert_from_hf(int argc, char **argv)
{
    from_hf_args a = {.seed = "42"};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    char err[CONVERT_ERR_LEN];
    int n_tensors;
    rc = convert_folder(&a, &n_tensors, err, sizeof err);
    if (rc != FLAME_EXIT_OK)
        fprintf(stderr, "flame-convert from-hf: %s\n", err);
    else
        printf("%d tensors written to %s/checkpoint/step-0 (fp32); train on with flame-run --config "
               "%s/config.ini --checkpoint.load_step 0\n", n_tensors, a.output, a.output);
    return rc;
}
