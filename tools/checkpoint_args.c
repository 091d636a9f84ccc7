#include "checkpoint_args.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config/cli.h"
#include "errors.h"

/* DIR/checkpoint/step-N: the output folder DIR, the checkpoint folder's name, N */
static int split_checkpoint(checkpoint_args *a, const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
        p[n - 1] = '\0';
    char *name = strrchr(p, '/');
    int step, end = 0;
    if (!name || sscanf(name + 1, "step-%d%n", &step, &end) != 1 || name[1 + end] || step < 0) {
        fprintf(stderr, "%s: --checkpoint %s: expected DIR/checkpoint/step-N, a checkpoint of a "
                "flame-run output folder\n", a->prog, path);
        return FLAME_EXIT_CONFIG;
    }
    *name = '\0';
    char *folder = strrchr(p, '/');
    snprintf(a->folder, sizeof a->folder, "%s", folder ? folder + 1 : p);
    if (folder)
        *folder = '\0';
    snprintf(a->dump, sizeof a->dump, "%s", folder ? (p[0] ? p : "/") : ".");
    snprintf(a->step, sizeof a->step, "%d", step);
    snprintf(a->config, sizeof a->config, "%s/config.ini", a->dump);
    struct stat st;
    if (stat(a->config, &st) != 0) {
        fprintf(stderr, "%s: %s: no such file: the run's resolved config is read from beside its "
                "checkpoint folder\n", a->prog, a->config);
        return FLAME_EXIT_CONFIG;
    }
    return FLAME_EXIT_OK;
}

int checkpoint_args_add(checkpoint_args *a, const char *arg)
{
    if (a->argc == CHECKPOINT_MAX_ARGS - 1) {
        fprintf(stderr, "%s: more than %d arguments\n", a->prog, CHECKPOINT_MAX_ARGS - 16);
        return -1;
    }
    a->argv[a->argc++] = (char *)arg;
    a->argv[a->argc] = NULL;
    return 0;
}

/* the flag argv[*i] is, or NULL; its value into *v */
static const checkpoint_flag *flag_at(int argc, char **argv, int *i, const checkpoint_flag *flags,
                                      int n_flags, const char **v)
{
    for (int k = 0; k < n_flags; k++)
        if ((*v = cli_option_value(argc, argv, i, flags[k].name)))
            return &flags[k];
    return NULL;
}

int checkpoint_args_parse(checkpoint_args *a, int argc, char **argv, const checkpoint_flag *flags,
                          int n_flags, const char *const *fixed, int n_fixed)
{
    a->prog = argv[0];
    a->argc = 0;
    const char *path = NULL;
    char **given = argv + 1; /* the arguments to pass on, gathered in place */
    int n_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        const checkpoint_flag *f;
        if ((v = cli_option_value(argc, argv, &i, "--checkpoint")))
            path = v;
        else if ((f = flag_at(argc, argv, &i, flags, n_flags, &v)) && f->config_key)
            given[n_given++] = (char *)f->config_key, given[n_given++] = (char *)v;
        else if (f)
            *f->value = v;
        else
            given[n_given++] = argv[i];
    }
    if (!path) {
        fprintf(stderr, "%s: --checkpoint DIR/checkpoint/step-N is missing (%s -h for help)\n",
                a->prog, a->prog);
        return FLAME_EXIT_CONFIG;
    }
    int status = split_checkpoint(a, path);
    if (status != FLAME_EXIT_OK)
        return status;
    const char *start[] = {a->prog, "--config", a->config, "--job.dump_folder", a->dump,
                           "--checkpoint.folder", a->folder, "--checkpoint.load_step", a->step};
    for (size_t i = 0; i < sizeof start / sizeof start[0]; i++)
        if (checkpoint_args_add(a, start[i]))
            return FLAME_EXIT_CONFIG;
    for (int i = 0; i < n_fixed; i++)
        if (checkpoint_args_add(a, fixed[i]))
            return FLAME_EXIT_CONFIG;
    for (int i = 0; i < n_given; i++)
        if (checkpoint_args_add(a, given[i]))
            return FLAME_EXIT_CONFIG;
    return FLAME_EXIT_OK;
}

int checkpoint_args_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return FLAME_EXIT_OK;
        }
    if (argc > 1)
        return -1;
    fputs(usage, stderr);
    return FLAME_EXIT_CONFIG;
}
