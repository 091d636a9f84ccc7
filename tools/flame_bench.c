/* flame-bench: training-step throughput on random tokens, like fla's
 * benchmarks/benchmark_training_throughput.py.
 *   flame-bench --arch NAME|PATH.so [--model.config FILE] [--section.key VALUE ...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cli.h"
#include "errors.h"
#include "trainer.h"
#include "monotonic.h"

static const char usage[] =
    "usage: flame-bench --arch NAME|PATH.so [--model.config FILE] [--section.key VALUE ...]\n"
    "\n"
    "Times full training steps (forward, backward, gradient clipping, AdamW) of the\n"
    "architecture on random tokens: bench.warmup_steps untimed, then bench.steps\n"
    "timed. Prints tokens/s, ms/step, MFU (the plugin's FLOPs per token against the\n"
    "bf16 peak: the data sheet's for known GPUs, else timed), peak memory and the time\n"
    "from process start to the end of the first step. Nothing is read or written.\n"
    "training.device picks the backend (auto: the GPU when there is one).\n"
    "Exit status: 0 done, 1 runtime failure, 2 bad configuration, 4 plugin not loadable.\n"
    "\n"
    "  --arch NAME|PATH.so   architecture plugin (searched as flame-run does)\n"
    "  --config FILE.ini     job configuration (same as --job.config_file)\n"
    "  --nproc N             N ranks on this machine, data parallel (also NGPU=N);\n"
    "                        tokens/s is theirs together, each batch_size rows\n"
    "  -h, --help            this help; with --arch, the plugin's [model] options too\n";

typedef struct bench_options {
    int warmup_steps, timed_steps;
    double process_start; /* a CLOCK_MONOTONIC reading */
} bench_options;

static const flame_option bench_options_table[] = {
    {"warmup_steps", FLAME_TYPE_INT, "3", "untimed steps first (fla's benchmark: 3)", 0},
    {"steps", FLAME_TYPE_INT, "10", "timed steps (fla's benchmark: 10)", 0},
};

static const config_section bench_section = {"bench", "what flame-bench times",
                                             bench_options_table, 2};

/* seconds on CLOCK_MONOTONIC at which this process started (from /proc, to
 * count the time spent loading libraries before main too) */
static double process_start_seconds(void)
{
    struct timespec now, boot;
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_gettime(CLOCK_BOOTTIME, &boot);
    double monotonic = now.tv_sec + now.tv_nsec * 1e-9;
    FILE *f = fopen("/proc/self/stat", "r");
    char line[4096];
    if (!f || !fgets(line, sizeof line, f)) {
        if (f)
            fclose(f);
        return monotonic;
    }
    fclose(f);
    /* field 22, counted after the command name's closing parenthesis (field 2) */
    const char *p = strrchr(line, ')');
    unsigned long long start_ticks = 0;
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &start_ticks) != 1)
        return monotonic;
    double started_after_boot = (double)start_ticks / sysconf(_SC_CLK_TCK);
    double now_after_boot = boot.tv_sec + boot.tv_nsec * 1e-9;
    return monotonic - (now_after_boot - started_after_boot);
}

static int read_positive(const flame_config *cfg, const char *key, int min, int *out)
{
    long long v = config_get_int(cfg, "bench", key);
    if (v < min || v > 1000000) {
        fprintf(stderr, "flame-bench: [bench] %s = %lld: expected %d to 1000000\n", key, v, min);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static void print_benchmark(const trainer *t, const flame_plugin *plugin, const bench_options *b,
                            double seconds, double first_step_end)
{
    const train_options *o = trainer_options(t);
    double tokens_per_s = trainer_tokens_per_step(t) * b->timed_steps / seconds;
    double mfu = trainer_mfu(t, tokens_per_s);
    if (trainer_peak_tflops(t) > 0)
        printf("device: %s; bf16 peak: %.1f TFLOP/s\n", trainer_device(t),
               trainer_peak_tflops(t));
    else
        printf("device: %s\n", trainer_device(t));
    printf("%s, %zu parameters, %d x %d tokens x %d micro-batches a step%s, %d warm-up + %d timed "
           "steps\n",
           plugin->name, trainer_param_count(t), o->batch_size, o->seq_len, o->accumulation,
           trainer_world(t) > 1 ? " on each rank" : "", b->warmup_steps, b->timed_steps);
    if (trainer_world(t) > 1)
        printf("ranks: %d\n", trainer_world(t));
    printf("tokens/s: %.0f\nms/step: %.1f\n", tokens_per_s, 1e3 * seconds / b->timed_steps);
    if (mfu >= 0)
        printf("MFU: %.1f%% (%.3g FLOPs/token)\n", 100 * mfu, trainer_flops_per_token(t));
    else
        printf("MFU: unknown (no peak figure on the CPU)\n");
    const char *what;
    double gib = trainer_peak_memory_gib(t, &what);
    printf("peak memory: %.2f GiB (%s)\n", gib, what);
    printf("first step ended %.2f s after the process started\n", first_step_end);
}

/* the warm-up steps, then the timed ones; prints what was measured */
static int benchmark(trainer *t, const flame_plugin *plugin, const bench_options *b)
{
    double first_step_end = 0, start = 0;
    step_metrics m;
    int status = FLAME_EXIT_OK;
    for (int step = 1; status == FLAME_EXIT_OK && step <= b->warmup_steps + b->timed_steps;
         step++) {
        if (step == b->warmup_steps + 1) {
            trainer_synchronize(t);
            start = monotonic_seconds();
        }
        status = trainer_step(t, &m);
        if (step == 1) {
            trainer_synchronize(t);
            first_step_end = monotonic_seconds() - b->process_start;
        }
    }
    if (status != FLAME_EXIT_OK)
        return status;
    trainer_synchronize(t);
    double seconds = monotonic_seconds() - start;
    trainer_measure_peak(t); /* after the run: its time is not the first step's */
    if (trainer_rank(t) == 0)
        print_benchmark(t, plugin, b, seconds, first_step_end);
    return FLAME_EXIT_OK;
}

int main(int argc, char **argv)
{
    bench_options b = {.process_start = process_start_seconds()};
    const cli_program prog = {"flame-bench", usage, &bench_section, 1};
    const flame_plugin *plugin;
    flame_config *cfg;
    int status = cli_start(&prog, &argc, argv, &plugin, &cfg);
    if (status != FLAME_EXIT_OK || !cfg)
        return status;
    if (read_positive(cfg, "warmup_steps", 0, &b.warmup_steps) ||
        read_positive(cfg, "steps", 1, &b.timed_steps)) {
        status = FLAME_EXIT_CONFIG;
    } else {
        trainer *t = trainer_open(plugin, cfg, TRAINER_BENCH, &status);
        if (t)
            status = benchmark(t, plugin, &b);
        trainer_close(t);
    }
    config_destroy(cfg);
    return status;
}
