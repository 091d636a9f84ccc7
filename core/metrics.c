#include "metrics.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int metrics_open(metrics_log *log, const char *path, int total_steps, char *err, size_t err_len)
{
    log->jsonl = fopen(path, "w");
    if (!log->jsonl) {
        snprintf(err, err_len, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    log->total_steps = total_steps;
    log->print_every = total_steps >= 20 ? total_steps / 20 : 1;
    log->tty = isatty(STDOUT_FILENO);
    return 0;
}

void metrics_close(metrics_log *log)
{
    if (log->jsonl)
        fclose(log->jsonl);
    log->jsonl = NULL;
    if (log->tty)
        fputc('\n', stdout);
}

void metrics_write(metrics_log *log, const step_metrics *m)
{
    char mfu[32] = "null";
    if (m->mfu >= 0)
        snprintf(mfu, sizeof mfu, "%.6g", m->mfu);
    fprintf(log->jsonl,
            "{\"step\": %d, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
            "\"tokens_per_s\": %.6g, \"mfu\": %s, \"mem_gib\": %.4g, \"skipped\": %d}\n",
            m->step, m->loss, m->lr, m->grad_norm, m->tokens_per_s, mfu, m->mem_gib, m->skipped);
    fflush(log->jsonl); /* a crash loses no logged step */
}

static void format_duration(char *out, size_t n, double seconds)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, n, "%ld:%02ld", s / 60, s % 60);
}

void metrics_progress(metrics_log *log, const step_metrics *m, double elapsed)
{
    int last = m->step == log->total_steps;
    if (!log->tty && m->step % log->print_every != 0 && m->step != 1 && !last)
        return;
    char eta[32], mfu[16] = "-";
    format_duration(eta, sizeof eta, elapsed / m->step * (log->total_steps - m->step));
    if (m->mfu >= 0)
        snprintf(mfu, sizeof mfu, "%.1f%%", 100.0 * m->mfu);
    int width = snprintf(NULL, 0, "%d", log->total_steps);
    printf("%sstep %*d/%d  loss %.4f  lr %.3e  grad_norm %.3f  tok/s %.0f  mfu %s  eta %s%s",
           log->tty ? "\r" : "", width, m->step, log->total_steps, m->loss, m->lr, m->grad_norm,
           m->tokens_per_s, mfu, eta, log->tty ? "  " : "\n");
    fflush(stdout);
}

double metrics_peak_memory_gib(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss / 1048576.0; /* ru_maxrss is in KiB on Linux */
}
