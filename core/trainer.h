/* The training loop: data → plugin forward/backward → clip → AdamW → metrics. */
#ifndef FLAME_TRAINER_H
#define FLAME_TRAINER_H

#include <flame/plugin.h>

#include "config.h"

/* Runs the job the configuration describes. Returns an exit status
 * (core/errors.h) after printing any error as one line on stderr. */
int trainer_run(const flame_plugin *plugin, const flame_config *cfg, const flame_ops *ops);

#endif
