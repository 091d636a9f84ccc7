/* The command line of flame-run and flame-bench: finds the plugin (--arch),
 * declares the core's, the program's and the plugin's options, and loads the
 * configuration; -h prints the usage and every option. */
#ifndef FLAME_CLI_H
#define FLAME_CLI_H

#include <flame/plugin.h>

#include "config.h"

typedef struct cli_program {
    const char *name;  /* for messages: "flame-run: ..." */
    const char *usage; /* printed by -h before the options */
    const config_section *sections; /* the program's own sections, besides the core's */
    int n_sections;
} cli_program;

/* The value of "--name VALUE" or "--name=VALUE" at argv[*i] (advancing *i past
 * a separate value), or NULL when argv[*i] is not that option. */
const char *cli_option_value(int argc, char **argv, int *i, const char *name);

/* Returns an exit status (core/errors.h; errors printed as one line). With
 * FLAME_EXIT_OK, *cfg is the loaded configuration to run (the caller destroys
 * it), or NULL when -h was answered and there is nothing to run. */
int cli_load(const cli_program *prog, int argc, char **argv, const flame_plugin **plugin,
             flame_config **cfg);

/* A training program's start: with --nproc N > 1 (or NGPU; launch.h), N
 * local ranks of the same command, waited for, and their exit status with
 * *cfg NULL; otherwise cli_load (argv without --nproc). */
int cli_start(const cli_program *prog, int *argc, char **argv, const flame_plugin **plugin,
              flame_config **cfg);

#endif
