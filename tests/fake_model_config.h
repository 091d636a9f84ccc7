/* The configuration store as a tool builds it, for tests and fuzz harnesses
 * that have no plugin: the core's sections and a small [model] section, with
 * Hugging Face formats: the plugin's own, and a foreign one whose config keys
 * are named otherwise, nested, given two names, or accepted only with one
 * value (one of them holding Python's word for an infinite float). */
#ifndef FLAME_FAKE_MODEL_CONFIG_H
#define FLAME_FAKE_MODEL_CONFIG_H

#include "config/config.h"

static const flame_option fake_model[] = {
    {"hidden_size", FLAME_TYPE_INT, "64", "width", 0},
    {"expand_k", FLAME_TYPE_FLOAT, "0.5", "key expansion", 0},
    {"use_gk", FLAME_TYPE_BOOL, "true", "gate keys", 0},
    {"attn_mode", FLAME_TYPE_STRING, "chunk", "kernel", 0},
    {"clamp_min", FLAME_TYPE_FLOAT, NULL, "gate clamp", 0},
    {"fuse_norm", FLAME_TYPE_BOOL, NULL, "fused norm (Python only)", 1},
};

static const flame_hf_key fake_foreign_keys[] = {
    {"width", "hidden_size", NULL},
    {"rope.theta", "expand_k", NULL},
    {"rope.kind", NULL, "\"plain\""},
    {"bias", NULL, "false"},
    {"dropout", NULL, NULL},
    {"limit", NULL, "[0.0, Infinity]"},
    {"size.width", "hidden_size", NULL}, /* a second name: both must agree */
    {"shift", NULL, "0"},                /* a number: 0.0 is 0 */
};
static const flame_hf_format FAKE_FORMATS[] = {
    {"gla", "GLAForCausalLM", NULL, 0, NULL, 0},
    {"foreign", "ForeignForCausalLM", fake_foreign_keys, 8, NULL, 0},
};
enum { N_FAKE_FORMATS = 2 };

static inline flame_config *fake_model_config(void)
{
    flame_config *cfg = config_create();
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(cfg, core_sections[i].name, core_sections[i].options,
                           core_sections[i].n_options);
    config_add_section(cfg, "model", fake_model, (int)(sizeof fake_model / sizeof *fake_model));
    return cfg;
}

#endif
