/* What the config harnesses share: the store a tool builds
 * (fake_model_config.h) and what the tools do with it once loaded. */
#ifndef FLAME_FUZZ_CONFIG_H
#define FLAME_FUZZ_CONFIG_H

#include <stdio.h>
#include <stdlib.h>

#include "fake_model_config.h"

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
