/* flame-run: train a model.
 *   flame-run --arch NAME|PATH.so [--config FILE.ini] [--section.key VALUE ...] */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "../kernels/cpu_kernels.h"
#include "errors.h"
#include "plugin_loader.h"
#include "trainer.h"

typedef struct command_line {
    const char *arch;
    const char *job_file; /* --config or --job.config_file */
    int help;
} command_line;

static const char usage[] =
    "usage: flame-run --arch NAME|PATH.so [--config FILE.ini] [--section.key VALUE ...]\n"
    "\n"
    "Trains a language model of the architecture the plugin NAME implements.\n"
    "Every option below can be set in the [section] of the INI file or as\n"
    "--section.key VALUE (booleans also as a bare --section.key). Priority, lowest\n"
    "first: defaults, --model.config file (fla JSON or flame INI), --config file,\n"
    "command line. Exit status: 0 done, 1 runtime failure, 2 bad configuration or\n"
    "missing file, 3 bad data, 4 plugin not loadable.\n"
    "\n"
    "  --arch NAME|PATH.so   architecture plugin; a NAME is searched in\n"
    "                        $FLAME_PLUGIN_PATH, " FLAME_PLUGIN_DIR ", the build tree\n"
    "  --config FILE.ini     job configuration (same as --job.config_file)\n"
    "  -h, --help            this help; with --arch, the plugin's [model] options too\n";

/* value of "--name VALUE" or "--name=VALUE" at argv[*i], or NULL */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int parse_command_line(command_line *cl, int argc, char **argv)
{
    memset(cl, 0, sizeof *cl);
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            cl->help = 1;
        else if ((v = option_value(argc, argv, &i, "--arch")))
            cl->arch = v;
        else if ((v = option_value(argc, argv, &i, "--config")) ||
                 (v = option_value(argc, argv, &i, "--job.config_file")))
            cl->job_file = v;
        else if (strcmp(argv[i], "--arch") == 0 || strcmp(argv[i], "--config") == 0 ||
                 strcmp(argv[i], "--job.config_file") == 0) {
            fprintf(stderr, "flame-run: %s needs a value\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

static flame_config *declare_options(const flame_plugin *plugin)
{
    flame_config *cfg = config_create();
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(cfg, core_sections[i].name, core_sections[i].options,
                           core_sections[i].n_options);
    if (plugin)
        config_add_section(cfg, "model", plugin->options, plugin->n_options);
    return cfg;
}

/* command line over job file over model file over defaults */
static int load_configuration(flame_config *cfg, const command_line *cl, const char *arch_name,
                              int argc, char **argv)
{
    char err[1024];
    if ((cl->job_file && config_load_ini(cfg, cl->job_file, err, sizeof err)) ||
        config_apply_args(cfg, argc, argv, err, sizeof err) ||
        (config_is_set(cfg, "model", "config") &&
         config_load_model_file(cfg, config_get_string(cfg, "model", "config"), arch_name, err,
                                sizeof err))) {
        fprintf(stderr, "flame-run: %s\n", err);
        return -1;
    }
    return 0;
}

static void print_help(const flame_plugin *plugin)
{
    fputs(usage, stdout);
    flame_config *cfg = declare_options(plugin);
    if (plugin)
        printf("\narchitecture %s: %s\n", plugin->name, plugin->description);
    else
        printf("\n(give --arch NAME to list that architecture's [model] options too)\n");
    putchar('\n');
    config_print_help(cfg, stdout);
    config_destroy(cfg);
}

int main(int argc, char **argv)
{
    command_line cl;
    if (parse_command_line(&cl, argc, argv))
        return FLAME_EXIT_CONFIG;
    if (!cl.arch) {
        if (cl.help) {
            print_help(NULL);
            return FLAME_EXIT_OK;
        }
        fprintf(stderr, "flame-run: no architecture: give --arch NAME (e.g. --arch gla); -h for help\n");
        return FLAME_EXIT_CONFIG;
    }
    char path[4096], err[4200];
    const flame_plugin *plugin = plugin_load(cl.arch, path, sizeof path, err, sizeof err);
    if (!plugin) {
        fprintf(stderr, "flame-run: %s\n", err);
        return FLAME_EXIT_PLUGIN;
    }
    if (cl.help) {
        print_help(plugin);
        return FLAME_EXIT_OK;
    }
    flame_config *cfg = declare_options(plugin);
    int status = FLAME_EXIT_CONFIG;
    if (load_configuration(cfg, &cl, plugin->name, argc, argv) == 0) {
        config_report_ignored(cfg, stdout);
        status = trainer_run(plugin, cfg, &flame_cpu_ops);
    }
    config_destroy(cfg);
    return status;
}
