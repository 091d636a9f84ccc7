/* The model a conversion reads or writes: the plugin, its resolved [model]
 * settings and the parameters it declares (names, shapes, init rules), so
 * that nothing here is a hand-copied list that could drift from the plugin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config/config.h"
#include "convert.h"
#include "cpu_kernels.h"
#include "errors.h"
#include "params.h"
#include "plugin_loader.h"

/* the model_type of a JSON config file into type; 0 when it has none */
static int json_model_type(const char *path, char *type, size_t type_len)
{
    json_t *root = json_load_file(path, 0, NULL);
    const char *t = json_string_value(json_object_get(root, "model_type"));
    if (t)
        snprintf(type, type_len, "%s", t);
    json_decref(root);
    return t != NULL;
}

/* The plugin arch names; else the one that reads model_type; else the one the
 * config file names (an INI's [job] arch, a JSON's model_type). An exit
 * status with err. */
static int find_plugin(convert_model *m, const char *arch, const char *model_type,
                       const char *config_path, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN], type[256], named[CONVERT_PATH_LEN];
    size_t n = strlen(config_path);
    int json = n > 5 && strcmp(config_path + n - 5, ".json") == 0;
    if (!arch && !model_type && !json &&
        config_peek_job_file(config_path, "job", "arch", named, sizeof named))
        arch = named;
    if (!arch && !model_type && json && json_model_type(config_path, type, sizeof type))
        model_type = type;
    if (arch) {
        snprintf(m->arch, sizeof m->arch, "%s", arch);
        m->plugin = plugin_load(m->arch, path, sizeof path, err, err_len);
    } else if (model_type) {
        m->plugin = plugin_for_model_type(model_type, m->arch, sizeof m->arch, err, err_len);
    } else {
        snprintf(err, err_len, "%s: names no architecture ([job] arch or model_type): give "
                 "--arch NAME", config_path);
        return FLAME_EXIT_CONFIG;
    }
    return m->plugin ? FLAME_EXIT_OK : FLAME_EXIT_PLUGIN;
}

int convert_model_open(convert_model *m, const char *arch, const char *model_type,
                       const char *config_path, char *err, size_t err_len)
{
    memset(m, 0, sizeof *m);
    int rc = find_plugin(m, arch, model_type, config_path, err, err_len);
    if (rc != FLAME_EXIT_OK)
        return rc;
    m->cfg = config_create();
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(m->cfg, core_sections[i].name, core_sections[i].options,
                           core_sections[i].n_options);
    config_add_section(m->cfg, "model", m->plugin->options, m->plugin->n_options);
    if (config_load_model_file(m->cfg, config_path, m->plugin->hf_formats,
                               m->plugin->n_hf_formats, err, err_len))
        return FLAME_EXIT_CONFIG;
    flame_model_config view = config_model_view(m->cfg);
    char why[1024] = "";
    m->model = m->plugin->create(&view, &flame_cpu_ops, why, sizeof why);
    if (!m->model) {
        snprintf(err, err_len, "%s: %s: %s", config_path, m->plugin->name, why);
        return FLAME_EXIT_CONFIG;
    }
    if (params_check_declared(m->plugin, m->model, why, sizeof why)) {
        snprintf(err, err_len, "plugin %s: %s", m->plugin->name, why);
        return FLAME_EXIT_PLUGIN;
    }
    return FLAME_EXIT_OK;
}

void convert_model_close(convert_model *m)
{
    if (m->model)
        m->plugin->destroy(m->model);
    if (m->cfg)
        config_destroy(m->cfg);
    memset(m, 0, sizeof *m);
}

/* ---- the plan: each parameter and where it comes from ---- */

static const mapped *find_source(const plan *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->tensors[i].name, name) == 0)
            return &p->tensors[i];
    return NULL;
}

static int same_shape(const mapped *m, const flame_param_spec *s)
{
    int same = m->ndim == s->ndim;
    for (int d = 0; same && d < s->ndim; d++)
        same = m->shape[d] == s->shape[d];
    return same;
}

/* why src cannot be copied into s: "" when it can */
static const char *mismatch(const mapped *src, const flame_param_spec *s, char *buf, size_t len)
{
    if (!src)
        return "missing in the source";
    if (same_shape(src, s))
        return "";
    char got[128];
    safetensors_shape_text(got, sizeof got, src->ndim, src->shape);
    snprintf(buf, len, "shape differs, the source's is %s", got);
    return buf;
}

/* one row of the table, and the target tensor it describes */
static mapped target_of(const flame_param_spec *s, int index, const mapped *src, const char *why)
{
    static const char *const rules[] = {"normal", "zeros", "ones", "the plugin's own"};
    mapped t = {.ndim = s->ndim, .index = index};
    snprintf(t.name, sizeof t.name, "%s", s->name);
    for (int d = 0; d < s->ndim; d++)
        t.shape[d] = s->shape[d];
    char want[128], rule[64];
    safetensors_shape_text(want, sizeof want, s->ndim, s->shape);
    if (!*why) {
        t.file = src->file;
        t.tensor = src->tensor;
        t.transposed = src->transposed;
        printf("copy        %-56s %s\n", s->name, want);
        return t;
    }
    if (s->init == FLAME_INIT_NORMAL)
        snprintf(rule, sizeof rule, "normal(0, %g)", s->init_std);
    else
        snprintf(rule, sizeof rule, "%s", rules[s->init]);
    printf("initialize  %-56s %s %s: %s\n", s->name, want, rule, why);
    return t;
}

/* the source's tensors the target has no place for: dropped with a row, or
 * (strict) the first refused; an exit status with err */
static int check_unused(const plan *source, const plan *target, int strict, char *err,
                        size_t err_len)
{
    for (int i = 0; i < source->n; i++) {
        const mapped *m = &source->tensors[i];
        const mapped *t = find_source(target, m->name);
        if (t && t->tensor == m->tensor)
            continue;
        if (strict) {
            snprintf(err, err_len, "%s: tensor %s has no place in the model%s", m->file->path,
                     m->name, t ? " (its shape differs)" : "");
            return FLAME_EXIT_DATA;
        }
        printf("drop        %-56s (%s)\n", m->name, t ? "shape differs" : "not in the target");
    }
    return FLAME_EXIT_OK;
}

/* strict: every parameter from the source, a tensor of its name and shape */
static int strict_target(const flame_param_spec *s, const mapped *src, mapped *t, char *err,
                         size_t err_len)
{
    char buf[200];
    const char *why = mismatch(src, s, buf, sizeof buf);
    if (*why) {
        snprintf(err, err_len, "parameter %s of the model: %s", s->name, why);
        return FLAME_EXIT_DATA;
    }
    *t = (mapped){.file = src->file, .tensor = src->tensor, .ndim = s->ndim, .transposed = src->transposed};
    snprintf(t->name, sizeof t->name, "%s", s->name);
    memcpy(t->shape, s->shape, sizeof s->shape);
    return FLAME_EXIT_OK;
}

int plan_retarget(plan *p, const convert_model *m, int strict, char *err, size_t err_len)
{
    const flame_plugin *plugin = m->plugin;
    plan target = {plugin->n_params(m->model), NULL};
    target.tensors = calloc((size_t)target.n + 1, sizeof *target.tensors);
    int copied = 0, rc = FLAME_EXIT_OK;
    for (int i = 0; i < target.n && rc == FLAME_EXIT_OK; i++) {
        const flame_param_spec *s = plugin->param(m->model, i);
        const mapped *src = find_source(p, s->name);
        char buf[200];
        if (strict)
            rc = strict_target(s, src, &target.tensors[i], err, err_len);
        else
            target.tensors[i] = target_of(s, i, src, mismatch(src, s, buf, sizeof buf));
        copied += target.tensors[i].file != NULL;
    }
    if (rc == FLAME_EXIT_OK)
        rc = check_unused(p, &target, strict, err, err_len);
    if (rc != FLAME_EXIT_OK) {
        free(target.tensors);
        return rc;
    }
    if (!strict)
        printf("%s: %d tensors copied, %d initialized\n", plugin->name, copied, target.n - copied);
    free(p->tensors);
    *p = target;
    return FLAME_EXIT_OK;
}
