/* flame-run: train a model.
 *   flame-run --arch NAME|PATH.so [--config FILE.ini] [--section.key VALUE ...] */
#include <signal.h>
#include <stdio.h>

#include "config/cli.h"
#include "convert.h"
#include "errors.h"
#include "trainer.h"

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
    "  --arch NAME|PATH.so   architecture plugin (also --job.arch; without it, the\n"
    "                        [job] arch of the --config file); a NAME is searched in\n"
    "                        $FLAME_PLUGIN_PATH, " FLAME_PLUGIN_DIR ", the build tree\n"
    "  --config FILE.ini     job configuration (same as --job.config_file)\n"
    "  --nproc N             N ranks on this machine, data parallel (also NGPU=N);\n"
    "                        under torchrun or srun, the ranks come from their\n"
    "                        variables (RANK, WORLD_SIZE, ... or SLURM_PROCID, ...)\n"
    "  -h, --help            this help; with --arch, the plugin's [model] options too\n";

/* checkpoint.export_hf: the last step's checkpoint as a Hugging Face folder */
static int export_hf(const train_options *o)
{
    char checkpoint[4400], output[4200], err[CONVERT_ERR_LEN];
    snprintf(checkpoint, sizeof checkpoint, "%s/step-%d", o->checkpoint.folder, o->steps);
    snprintf(output, sizeof output, "%s/hf", o->dump_folder);
    to_hf_args a = {.checkpoint = checkpoint, .output = output,
                    .dtype = o->checkpoint.export_dtype};
    int status = convert_to_hf_folder(&a, err, sizeof err);
    if (status != FLAME_EXIT_OK)
        fprintf(stderr, "flame-run: export_hf: %s\n", err);
    return status;
}

int main(int argc, char **argv)
{
    const cli_program prog = {"flame-run", usage, NULL, 0};
    const flame_plugin *plugin;
    flame_config *cfg;
    int status = cli_start(&prog, &argc, argv, &plugin, &cfg);
    if (status != FLAME_EXIT_OK || !cfg)
        return status;
    /* stdout piped into `head` and closed: the training and its checkpoints go on,
     * only the progress lines stop (the trainer notes it once) */
    signal(SIGPIPE, SIG_IGN);
    trainer *t = trainer_open(plugin, cfg, TRAINER_RUN, &status);
    step_metrics m;
    while (t && status == FLAME_EXIT_OK && !trainer_finished(t))
        status = trainer_step(t, &m);
    const train_options *o = t ? trainer_options(t) : NULL;
    if (status == FLAME_EXIT_OK && o && o->checkpoint.export_hf && !o->checkpoint.create_seed)
        status = export_hf(o);
    trainer_close(t);
    config_destroy(cfg);
    return status;
}
