/* The command line flame-run and flame-bench share: --arch (or --job.arch,
 * or the [job] arch of the --config file), --config (or --job.config_file),
 * -h, and --section.key VALUE over the job INI over the model config over the
 * defaults. */
#include "cli.h"
#include "user_path.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "launch.h"
#include "plugin_loader.h"

typedef struct command_line {
    const char *arch;     /* --arch or --job.arch, else the job file's [job] arch */
    const char *job_file; /* --config or --job.config_file */
    char job_file_arch[4096];
    char job_file_path[4096]; /* job_file with ~ expanded */
    int help;
} command_line;

const char *cli_option_value(int argc, char **argv, int *i, const char *name)
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

static int parse_command_line(const cli_program *prog, command_line *cl, int argc, char **argv)
{
    memset(cl, 0, sizeof *cl);
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            cl->help = 1;
        else if ((v = cli_option_value(argc, argv, &i, "--arch")) ||
                 (v = cli_option_value(argc, argv, &i, "--job.arch")))
            cl->arch = v;
        else if ((v = cli_option_value(argc, argv, &i, "--config")) ||
                 (v = cli_option_value(argc, argv, &i, "--job.config_file")))
            cl->job_file = v;
        else if (strcmp(argv[i], "--arch") == 0 || strcmp(argv[i], "--job.arch") == 0 ||
                 strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--job.config_file") == 0) {
            fprintf(stderr, "%s: %s needs a value\n", prog->name, argv[i]);
            return -1;
        }
    }
    if (cl->job_file && cl->job_file[0] == '~') { /* --config=~/job.ini: no shell expanded it */
        char *path = user_path_expand(cl->job_file);
        snprintf(cl->job_file_path, sizeof cl->job_file_path, "%s", path ? path : cl->job_file);
        free(path);
        cl->job_file = cl->job_file_path;
    }
    if (!cl->arch && cl->job_file &&
        config_peek_job_file(cl->job_file, "job", "arch", cl->job_file_arch, sizeof cl->job_file_arch))
        cl->arch = cl->job_file_arch;
    return 0;
}

/* what [job] arch records: a bare name as given, a file as its absolute path
 * (so that flame-convert finds it from any folder) */
static void recorded_arch(const char *arch, const char *path, char *out, size_t out_len)
{
    char absolute[PATH_MAX];
    size_t n = strlen(arch);
    if (!strchr(arch, '/') && !(n > 3 && strcmp(arch + n - 3, ".so") == 0))
        snprintf(out, out_len, "%s", arch);
    else
        snprintf(out, out_len, "%s", realpath(path, absolute) ? absolute : path);
}

static flame_config *declare_options(const cli_program *prog, const flame_plugin *plugin)
{
    flame_config *cfg = config_create();
    for (int i = 0; i < prog->n_sections; i++)
        config_add_section(cfg, prog->sections[i].name, prog->sections[i].options,
                           prog->sections[i].n_options);
    for (int i = 0; i < n_core_sections; i++)
        config_add_section(cfg, core_sections[i].name, core_sections[i].options,
                           core_sections[i].n_options);
    if (plugin)
        config_add_section(cfg, "model", plugin->options, plugin->n_options);
    return cfg;
}

/* command line over job file over model file over defaults */
static int load_configuration(const cli_program *prog, flame_config *cfg, const command_line *cl,
                              const flame_plugin *plugin, const char *arch, int argc, char **argv)
{
    char err[1024];
    if ((cl->job_file && config_load_job_file(cfg, cl->job_file, err, sizeof err)) ||
        config_apply_args(cfg, argc, argv, err, sizeof err) ||
        config_set_string(cfg, "job", "arch", arch, err, sizeof err) ||
        (config_is_set(cfg, "model", "config") &&
         config_load_model_file(cfg, config_get_string(cfg, "model", "config"),
                                plugin->hf_formats, plugin->n_hf_formats, err, sizeof err))) {
        fprintf(stderr, "%s: %s\n", prog->name, err);
        return -1;
    }
    return 0;
}

static void print_help(const cli_program *prog, const flame_plugin *plugin)
{
    fputs(prog->usage, stdout);
    flame_config *cfg = declare_options(prog, plugin);
    if (plugin)
        printf("\narchitecture %s: %s\n", plugin->name, plugin->description);
    else
        printf("\n(give --arch NAME to list that architecture's [model] options too)\n");
    putchar('\n');
    config_print_help(cfg, stdout);
    config_destroy(cfg);
}

int cli_load(const cli_program *prog, int argc, char **argv, const flame_plugin **plugin,
             flame_config **cfg)
{
    /* A log of stdout and stderr in one file keeps its order: a line of the
       resolved config or of progress is never split by a warning. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    *plugin = NULL;
    *cfg = NULL;
    command_line cl;
    if (parse_command_line(prog, &cl, argc, argv))
        return FLAME_EXIT_CONFIG;
    if (!cl.arch) {
        if (cl.help) {
            print_help(prog, NULL);
            return FLAME_EXIT_OK;
        }
        fprintf(stderr, "%s: no architecture: give --arch NAME or PATH.so; -h for help\n",
                prog->name);
        return FLAME_EXIT_CONFIG;
    }
    char path[4096], err[4200], arch[4096];
    *plugin = plugin_load(cl.arch, path, sizeof path, err, sizeof err);
    if (!*plugin) {
        fprintf(stderr, "%s: %s\n", prog->name, err);
        return FLAME_EXIT_PLUGIN;
    }
    if (cl.help) {
        print_help(prog, *plugin);
        return FLAME_EXIT_OK;
    }
    *cfg = declare_options(prog, *plugin);
    recorded_arch(cl.arch, path, arch, sizeof arch);
    if (load_configuration(prog, *cfg, &cl, *plugin, arch, argc, argv)) {
        config_destroy(*cfg);
        *cfg = NULL;
        return FLAME_EXIT_CONFIG;
    }
    config_report_ignored(*cfg, stdout);
    if (config_get_bool(*cfg, "job", "print_args"))
        config_write_ini(*cfg, stdout);
    return FLAME_EXIT_OK;
}

int cli_start(const cli_program *prog, int *argc, char **argv, const flame_plugin **plugin,
              flame_config **cfg)
{
    *plugin = NULL;
    *cfg = NULL;
    int ranks = launch_ranks_wanted(argc, argv, prog->name);
    if (ranks < 0)
        return FLAME_EXIT_CONFIG;
    if (ranks > 1)
        return launch_local_ranks(ranks, argv, prog->name);
    return cli_load(prog, *argc, argv, plugin, cfg);
}
