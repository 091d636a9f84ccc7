/* from-hf --config: a seed checkpoint for another architecture (GLA, ...).
 * The plugin itself declares the target's parameters (names, shapes, init
 * rules), so nothing here is a hand-copied list that could drift from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "convert.h"
#include "cpu_kernels.h"
#include "errors.h"
#include "plugin_loader.h"

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && at < len; d++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
}

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

/* one row of the table, and the target tensor it describes */
static mapped target_of(const flame_param_spec *s, const mapped *src)
{
    static const char *const rules[] = {"normal", "zeros", "ones"};
    mapped t = {.ndim = s->ndim, .init = s->init, .init_std = s->init_std};
    snprintf(t.name, sizeof t.name, "%s", s->name);
    for (int d = 0; d < s->ndim; d++)
        t.shape[d] = s->shape[d];
    char want[128], got[128], rule[64];
    format_shape(want, sizeof want, s->ndim, s->shape);
    if (src && same_shape(src, s)) {
        t.file = src->file;
        t.tensor = src->tensor;
        printf("copy        %-56s %s\n", s->name, want);
        return t;
    }
    if (s->init == FLAME_INIT_NORMAL)
        snprintf(rule, sizeof rule, "normal(0, %g)", s->init_std);
    else
        snprintf(rule, sizeof rule, "%s", rules[s->init]);
    if (src)
        format_shape(got, sizeof got, src->ndim, src->shape);
    printf("initialize  %-56s %s %s: %s%s\n", s->name, want, rule,
           src ? "shape differs, the source's is " : "missing in the source", src ? got : "");
    return t;
}

/* the source's tensors the target has no place for */
static void print_unused(const plan *source, const plan *target)
{
    for (int i = 0; i < source->n; i++) {
        const mapped *m = &source->tensors[i];
        const mapped *t = find_source(target, m->name);
        if (!t || t->tensor != m->tensor)
            printf("drop        %-56s (%s)\n", m->name, t ? "shape differs" : "not in the target");
    }
}

/* the model the plugin builds from the config file: a config store as
 * flame-run's, the file its only input. Returns the model or NULL with err. */
static void *create_model(const flame_plugin *plugin, const char *config_path,
                          flame_config **cfg, char *err, size_t err_len)
{
    *cfg = config_create();
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(*cfg, core_sections[i].name, core_sections[i].options,
                           core_sections[i].n_options);
    config_add_section(*cfg, "model", plugin->options, plugin->n_options);
    if (config_load_model_file(*cfg, config_path, plugin->name, err, err_len))
        return NULL;
    flame_model_config view = config_model_view(*cfg);
    return plugin->create(&view, &flame_cpu_ops, err, err_len);
}

int plan_retarget(plan *p, const char *arch, const char *config_path, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    const flame_plugin *plugin = plugin_load(arch, path, sizeof path, err, err_len);
    if (!plugin)
        return FLAME_EXIT_PLUGIN;
    flame_config *cfg;
    void *model = create_model(plugin, config_path, &cfg, err, err_len);
    if (!model) {
        config_destroy(cfg);
        return FLAME_EXIT_CONFIG;
    }
    plan target = {plugin->n_params(model), NULL};
    target.tensors = calloc((size_t)target.n + 1, sizeof *target.tensors);
    int copied = 0;
    for (int i = 0; i < target.n; i++) {
        target.tensors[i] = target_of(plugin->param(model, i), find_source(p, plugin->param(model, i)->name));
        copied += target.tensors[i].file != NULL;
    }
    print_unused(p, &target);
    printf("%s: %d tensors copied, %d initialized\n", plugin->name, copied, target.n - copied);
    plugin->destroy(model);
    config_destroy(cfg);
    free(p->tensors);
    *p = target;
    return FLAME_EXIT_OK;
}
