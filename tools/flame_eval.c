/* flame-eval: a checkpoint's loss, perplexity and bits per byte on a dataset.
 *   flame-eval --checkpoint DIR/checkpoint/step-N|HF_DIR --dataset SPEC [...] */
#include <stdio.h>
#include <string.h>

#include "checkpoint_args.h"
#include "config/cli.h"
#include "errors.h"
#include "trainer.h"

static const char usage[] =
    "usage: flame-eval --checkpoint DIR/checkpoint/step-N|HF_DIR --dataset SPEC [--seq_len N]\n"
    "                  [--batch_size N] [--steps N] [--section.key VALUE ...]\n"
    "\n"
    "Prints the model's mean loss (nats per token), perplexity and bits per byte\n"
    "on a dataset, read from its start in the files' order: the same figures the\n"
    "run's [validation] logs for that data. The model is the run's: its\n"
    "architecture and settings from DIR/config.ini, which flame-run writes, and the\n"
    "weights of step-N. Exit status: 0 done, 1 runtime failure, 2 bad configuration\n"
    "or missing file, 3 bad data, 4 plugin not loadable.\n"
    "\n"
    "  --checkpoint PATH   a checkpoint folder step-N of a flame-run output folder, or a\n"
    "                      Hugging Face folder (converted as flame-convert from-hf does)\n"
    "  --dataset SPEC      the data, as training.dataset takes it (validation.dataset)\n"
    "  --seq_len N         tokens per sequence (validation.seq_len; default the run's)\n"
    "  --batch_size N      sequences per batch (validation.local_batch_size)\n"
    "  --steps N           batches; -1, the default, every whole batch of the data\n"
    "                      (validation.steps)\n"
    "  -h, --help          this help and every option\n"
    "Bits per byte: the targets' total loss in bits over the bytes their tokens\n"
    "decode to (BOS and EOS decode to none).\n";

/* flame-eval's own flags, each the [validation] key it sets */
static const checkpoint_flag flags[] = {{"--dataset", "--validation.dataset", NULL},
                                        {"--seq_len", "--validation.seq_len", NULL},
                                        {"--batch_size", "--validation.local_batch_size", NULL},
                                        {"--steps", "--validation.steps", NULL}};

int main(int argc, char **argv)
{
    int status = checkpoint_args_help(argc, argv, usage);
    if (status >= 0)
        return status;
    static checkpoint_args j;
    static const char *const validate[] = {"--validation.enable", "true"};
    argv[0] = "flame-eval";
    status = checkpoint_args_parse(&j, argc, argv, flags, sizeof flags / sizeof flags[0],
                                       validate, sizeof validate / sizeof validate[0]);
    if (status != FLAME_EXIT_OK)
        return status;
    const cli_program prog = {"flame-eval", usage, NULL, 0};
    const flame_plugin *plugin;
    flame_config *cfg;
    if ((status = cli_load(&prog, j.argc, j.argv, &plugin, &cfg)) != FLAME_EXIT_OK || !cfg)
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
