/* flame-eval: a checkpoint's loss, perplexity and bits per byte on a dataset.
 *   flame-eval --checkpoint DIR/checkpoint/step-N --dataset SPEC [...] */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config/cli.h"
#include "errors.h"
#include "trainer.h"

static const char usage[] =
    "usage: flame-eval --checkpoint DIR/checkpoint/step-N --dataset SPEC [--seq_len N]\n"
    "                  [--batch_size N] [--steps N] [--section.key VALUE ...]\n"
    "\n"
    "Prints the model's mean loss (nats per token), perplexity and bits per byte\n"
    "on a dataset, read from its start in the files' order: the same figures the\n"
    "run's [validation] logs for that data. The model is the run's: its\n"
    "architecture and settings from DIR/config.ini, which flame-run writes, and the\n"
    "weights of step-N. Exit status: 0 done, 1 runtime failure, 2 bad configuration\n"
    "or missing file, 3 bad data, 4 plugin not loadable.\n"
    "\n"
    "  --checkpoint PATH   a checkpoint folder step-N of a flame-run output folder\n"
    "  --dataset SPEC      the data, as training.dataset takes it (validation.dataset)\n"
    "  --seq_len N         tokens per sequence (validation.seq_len; default the run's)\n"
    "  --batch_size N      sequences per batch (validation.local_batch_size)\n"
    "  --steps N           batches; -1, the default, every whole batch of the data\n"
    "                      (validation.steps)\n"
    "  -h, --help          this help and every option\n"
    "Bits per byte: the targets' total loss in bits over the bytes their tokens\n"
    "decode to (BOS and EOS decode to none).\n";

/* flame-eval's own flags, each the [validation] key it sets */
static const char *const flags[][2] = {{"--dataset", "--validation.dataset"},
                                       {"--seq_len", "--validation.seq_len"},
                                       {"--batch_size", "--validation.local_batch_size"},
                                       {"--steps", "--validation.steps"}};
enum { N_FLAGS = sizeof flags / sizeof flags[0], MAX_ARGS = 256 };

typedef struct eval_job {
    char dump[PATH_MAX], folder[PATH_MAX], config[PATH_MAX + 16], step[32];
    char *args[MAX_ARGS];
    int n_args;
} eval_job;

/* DIR/checkpoint/step-N: the output folder DIR, the checkpoint folder's name, N */
static int split_checkpoint(eval_job *j, const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
        p[n - 1] = '\0';
    char *name = strrchr(p, '/');
    int step, end = 0;
    if (!name || sscanf(name + 1, "step-%d%n", &step, &end) != 1 || name[1 + end] || step < 0) {
        fprintf(stderr, "flame-eval: --checkpoint %s: expected DIR/checkpoint/step-N, a "
                "checkpoint of a flame-run output folder\n", path);
        return FLAME_EXIT_CONFIG;
    }
    *name = '\0';
    char *folder = strrchr(p, '/');
    snprintf(j->folder, sizeof j->folder, "%s", folder ? folder + 1 : p);
    if (folder)
        *folder = '\0';
    snprintf(j->dump, sizeof j->dump, "%s", folder ? (p[0] ? p : "/") : ".");
    snprintf(j->step, sizeof j->step, "%d", step);
    snprintf(j->config, sizeof j->config, "%s/config.ini", j->dump);
    struct stat st;
    if (stat(j->config, &st) != 0) {
        fprintf(stderr, "flame-eval: %s: no such file: the run's resolved config is read from "
                "beside its checkpoint folder\n", j->config);
        return FLAME_EXIT_CONFIG;
    }
    return FLAME_EXIT_OK;
}

static int add(eval_job *j, const char *arg)
{
    if (j->n_args == MAX_ARGS - 1) {
        fprintf(stderr, "flame-eval: more than %d arguments\n", MAX_ARGS - 8);
        return -1;
    }
    j->args[j->n_args++] = (char *)arg;
    j->args[j->n_args] = NULL;
    return 0;
}

/* The command line flame-run's loader takes: the run's config, the checkpoint,
 * [validation] on, flame-eval's flags renamed, the rest as given. */
static int build_args(eval_job *j, int argc, char **argv)
{
    const char *checkpoint = NULL;
    int rest = 0;
    char **given = argv + 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = cli_option_value(argc, argv, &i, "--checkpoint"))) {
            checkpoint = v;
            continue;
        }
        int k = 0;
        while (k < N_FLAGS && !(v = cli_option_value(argc, argv, &i, flags[k][0])))
            k++;
        if (k < N_FLAGS) {
            given[rest++] = (char *)flags[k][1];
            given[rest++] = (char *)v;
        } else {
            given[rest++] = argv[i];
        }
    }
    if (!checkpoint) {
        fprintf(stderr, "flame-eval: --checkpoint DIR/checkpoint/step-N is missing "
                "(flame-eval -h for help)\n");
        return FLAME_EXIT_CONFIG;
    }
    int status = split_checkpoint(j, checkpoint);
    if (status != FLAME_EXIT_OK)
        return status;
    const char *fixed[] = {argv[0], "--config", j->config, "--job.dump_folder", j->dump,
                           "--checkpoint.folder", j->folder, "--checkpoint.load_step", j->step,
                           "--validation.enable", "true"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (add(j, fixed[i]))
            return FLAME_EXIT_CONFIG;
    for (int i = 0; i < rest; i++)
        if (add(j, given[i]))
            return FLAME_EXIT_CONFIG;
    return FLAME_EXIT_OK;
}

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (wants_help(argc, argv) || argc == 1) {
        fputs(usage, argc == 1 ? stderr : stdout);
        return argc == 1 ? FLAME_EXIT_CONFIG : FLAME_EXIT_OK;
    }
    eval_job j = {0};
    int status = build_args(&j, argc, argv);
    if (status != FLAME_EXIT_OK)
        return status;
    const cli_program prog = {"flame-eval", usage, NULL, 0};
    const flame_plugin *plugin;
    flame_config *cfg;
    if ((status = cli_load(&prog, j.n_args, j.args, &plugin, &cfg)) != FLAME_EXIT_OK || !cfg)
        return status;
    trainer *t = trainer_open(plugin, cfg, TRAINER_EVAL, &status);
    eval_result e;
    if (t && (status = trainer_validate(t, &e)) == FLAME_EXIT_OK)
        printf("flame-eval: %s step-%s on %s: loss %.6f  perplexity %.4f  bits/byte %.4f  "
               "(%d batches, %.0f tokens, %.0f bytes)\n",
               j.dump, j.step, config_get_string(cfg, "validation", "dataset"), e.loss,
               e.perplexity, e.bits_per_byte, e.batches, e.tokens, e.bytes);
    trainer_close(t);
    config_destroy(cfg);
    return status;
}
