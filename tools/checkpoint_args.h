/* A flame-run checkpoint, DIR/checkpoint/step-N, as the command line
 * flame-run's loader (core/config/cli.h) takes to rebuild its model: the
 * run's DIR/config.ini, its output folder and checkpoint folder, step N, then
 * what the tool adds. flame-eval's and flame-generate's. A Hugging Face
 * folder (config.json inside) is taken too: flame-convert from-hf's seed
 * checkpoint of it goes into a temporary folder, removed at exit, and its
 * tokenizer.json, where it has one, is the model's tokenizer. */
#ifndef FLAME_CHECKPOINT_ARGS_H
#define FLAME_CHECKPOINT_ARGS_H

#include <limits.h>

enum { CHECKPOINT_MAX_ARGS = 256 };

typedef struct checkpoint_args {
    const char *prog; /* for messages */
    char dump[PATH_MAX], folder[PATH_MAX], config[PATH_MAX + 16], step[32];
    char hf_tokenizer[PATH_MAX + 16]; /* an HF folder's tokenizer.json, "" when none */
    char *argv[CHECKPOINT_MAX_ARGS];
    int argc;
} checkpoint_args;

/* A tool's own flag: --name VALUE (or --name=VALUE) becomes --config_key
 * VALUE on the command line, or, with config_key NULL, *value. */
typedef struct checkpoint_flag {
    const char *name, *config_key;
    const char **value;
} checkpoint_flag;

/* The tool's command line (argv[0] its name) as the loader's: --checkpoint
 * PATH (required) turned into prog, --config DIR/config.ini,
 * --job.dump_folder, --checkpoint.folder, --checkpoint.load_step (and an HF
 * folder's --model.tokenizer_path); then
 * `fixed` (n_fixed arguments); then the flags and every other argument in
 * their order. Returns an exit status after one line on stderr (no
 * --checkpoint, a path of another form, no config.ini beside it, an HF
 * folder that does not convert). */
int checkpoint_args_parse(checkpoint_args *a, int argc, char **argv, const checkpoint_flag *flags,
                          int n_flags, const char *const *fixed, int n_fixed);
/* -h or --help: usage on stdout, FLAME_EXIT_OK; no argument at all: usage on
 * stderr, FLAME_EXIT_CONFIG; else -1 to go on. */
int checkpoint_args_help(int argc, char **argv, const char *usage);
/* Appends one argument (kept by pointer). Returns 0, or -1 after a line on stderr. */
int checkpoint_args_add(checkpoint_args *a, const char *arg);

#endif
