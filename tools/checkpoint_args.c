#define _XOPEN_SOURCE 700 /* nftw */
#include "checkpoint_args.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/cli.h"
#include "convert.h"
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
                "flame-run output folder, or a Hugging Face folder (config.json inside)\n", a->prog, path);
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

/* ---- a Hugging Face folder ---- */

static char imported[PATH_MAX - 32]; /* the temporary run folder, "" when none */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_imported(void)
{
    if (imported[0])
        nftw(imported, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int is_hf_folder(const char *path)
{
    char json[PATH_MAX + 16];
    struct stat st;
    snprintf(json, sizeof json, "%s/config.json", path);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && stat(json, &st) == 0;
}

/* the folder's seed checkpoint in a temporary run folder; *path becomes its
 * step-0, and the folder's tokenizer.json is remembered */
static int import_hf_folder(checkpoint_args *a, const char **path, char *step0, size_t step0_len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(imported, sizeof imported, "%s/flame-hf.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(imported)) {
        fprintf(stderr, "%s: %s: cannot create a temporary folder for the converted model\n", a->prog,
                imported);
        imported[0] = '\0';
        return FLAME_EXIT_RUNTIME;
    }
    atexit(remove_imported);
    char err[1024];
    int rc = convert_from_hf_folder(*path, imported, err, sizeof err);
    if (rc != FLAME_EXIT_OK) {
        fprintf(stderr, "%s: --checkpoint %s: %s\n", a->prog, *path, err);
        return rc;
    }
    struct stat st;
    snprintf(a->hf_tokenizer, sizeof a->hf_tokenizer, "%s/tokenizer.json", *path);
    if (stat(a->hf_tokenizer, &st) != 0)
        a->hf_tokenizer[0] = '\0';
    snprintf(step0, step0_len, "%s/checkpoint/step-0", imported);
    *path = step0;
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
    a->hf_tokenizer[0] = '\0';
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
        fprintf(stderr, "%s: --checkpoint DIR/checkpoint/step-N (or HF_DIR) is missing (%s -h for help)\n",
                a->prog, a->prog);
        return FLAME_EXIT_CONFIG;
    }
    char step0[PATH_MAX];
    int status = is_hf_folder(path) ? import_hf_folder(a, &path, step0, sizeof step0) : FLAME_EXIT_OK;
    if (status == FLAME_EXIT_OK)
        status = split_checkpoint(a, path);
    if (status != FLAME_EXIT_OK)
        return status;
    const char *start[] = {a->prog, "--config", a->config, "--job.dump_folder", a->dump,
                           "--checkpoint.folder", a->folder, "--checkpoint.load_step", a->step};
    for (size_t i = 0; i < sizeof start / sizeof start[0]; i++)
        if (checkpoint_args_add(a, start[i]))
            return FLAME_EXIT_CONFIG;
    if (a->hf_tokenizer[0] && (checkpoint_args_add(a, "--model.tokenizer_path") ||
                               checkpoint_args_add(a, a->hf_tokenizer)))
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
