/* The check that a flame INI preset (configs/NAME.ini) is the model of a
 * fla-org/flame JSON config: both loaded as --model.config loads them, every
 * option the plugin reads resolving to the same value. For a plugin test,
 * after plugin_testing.h. */
#ifndef FLAME_PRESET_TESTING_H
#define FLAME_PRESET_TESTING_H

#include "config/config.h"

/* the plugin's [model] options resolved from a model config file, or NULL after a failed check */
static flame_config *load_model_config(const char *path)
{
    const flame_plugin *p = flame_plugin_entry();
    flame_config *cfg = config_create();
    config_add_section(cfg, "model", p->options, p->n_options);
    char err[512] = "";
    if (config_load_model_file(cfg, path, p->hf_formats, p->n_hf_formats, err, sizeof err)) {
        CHECK(0, "%s: %s", path, err);
        config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

/* every option the plugin reads has the same value in a and b */
static inline void check_same_options(const char *what, const flame_config *a, const flame_config *b)
{
    const flame_plugin *p = flame_plugin_entry();
    for (int i = 0; i < p->n_options; i++) {
        const flame_option *o = &p->options[i];
        const char *k = o->key;
        if (o->ignored)
            continue;
        int same = config_is_set(a, "model", k) == config_is_set(b, "model", k);
        if (same && (o->default_value || config_is_set(a, "model", k)))
            switch (o->type) {
            case FLAME_TYPE_INT: same = config_get_int(a, "model", k) == config_get_int(b, "model", k); break;
            case FLAME_TYPE_FLOAT: same = config_get_float(a, "model", k) == config_get_float(b, "model", k); break;
            case FLAME_TYPE_BOOL: same = config_get_bool(a, "model", k) == config_get_bool(b, "model", k); break;
            default: same = strcmp(config_get_string(a, "model", k), config_get_string(b, "model", k)) == 0;
            }
        CHECK(same, "%s: [model] %s differs between the INI and fla's JSON", what, k);
    }
}

#endif
