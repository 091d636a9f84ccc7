/* A config as flame-run builds one: the core's sections and a small plugin
 * [model] section, with Hugging Face formats whose key map renames, nests and
 * pins keys. */
#ifndef FLAME_FUZZ_CONFIG_H
#define FLAME_FUZZ_CONFIG_H

#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"

static const flame_option fuzz_model[] = {
    {"hidden_size", FLAME_TYPE_INT, "64", "width", 0},
    {"expand_k", FLAME_TYPE_FLOAT, "0.5", "key expansion", 0},
    {"use_gk", FLAME_TYPE_BOOL, "true", "gate keys", 0},
    {"attn_mode", FLAME_TYPE_STRING, "chunk", "kernel", 0},
    {"clamp_min", FLAME_TYPE_FLOAT, NULL, "gate clamp", 0},
    {"fuse_norm", FLAME_TYPE_BOOL, NULL, "fused norm (Python only)", 1},
};

static const flame_hf_key fuzz_foreign_keys[] = {
    {"width", "hidden_size", NULL},
    {"rope.theta", "expand_k", NULL},
    {"rope.kind", NULL, "\"plain\""},
    {"bias", NULL, "false"},
    {"dropout", NULL, NULL},
};
static const flame_hf_format fuzz_formats[] = {
    {"gla", "GLAForCausalLM", NULL, 0, NULL, 0},
    {"foreign", "ForeignForCausalLM", fuzz_foreign_keys, 5, NULL, 0},
};

static flame_config *fuzz_config(void)
{
    flame_config *cfg = config_create();
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(cfg, core_sections[i].name, core_sections[i].options,
                           core_sections[i].n_options);
    config_add_section(cfg, "model", fuzz_model, (int)(sizeof fuzz_model / sizeof *fuzz_model));
    return cfg;
}

/* what the tools do with a loaded config: read it back and write it out */
static void fuzz_config_use(flame_config *cfg)
{
    static FILE *null;
    if (!null && !(null = fopen("/dev/null", "w")))
        abort();
    config_model_view(cfg);
    config_write_ini(cfg, null);
    config_report_ignored(cfg, null);
    config_get_int(cfg, "model", "hidden_size");
    config_get_float(cfg, "model", "expand_k");
    config_get_string(cfg, "model", "attn_mode");
}

#endif
