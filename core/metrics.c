#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* Keeps the rows of steps up to resume_step (a resumed run rewrites the later
 * ones), through a temporary file renamed over the old one. */
static int keep_rows_until(const char *path, int resume_step, char *err, size_t err_len)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return 0; /* nothing logged yet */
    char tmp[4300], line[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        snprintf(err, err_len, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    int step;
    while (fgets(line, sizeof line, in))
        if (sscanf(line, "{\"step\": %d,", &step) == 1 && step <= resume_step)
            fputs(line, out);
    fclose(in);
    if (fclose(out) != 0 || rename(tmp, path) != 0) {
        snprintf(err, err_len, "%s: cannot rewrite: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int metrics_open(metrics_log *log, const char *path, int total_steps, int log_every,
                 int resume_step, char *err, size_t err_len)
{
    if (resume_step > 0 && keep_rows_until(path, resume_step, err, err_len))
        return -1;
    log->jsonl = fopen(path, resume_step > 0 ? "a" : "w");
    if (!log->jsonl) {
        snprintf(err, err_len, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    snprintf(log->path, sizeof log->path, "%s", path);
    log->total_steps = total_steps;
    log->first_step = resume_step + 1;
    log->log_every = log_every;
    log->tty = isatty(STDOUT_FILENO);
    return 0;
}

int metrics_open_tensorboard(metrics_log *log, const char *dir, char *err, size_t err_len)
{
    return tensorboard_open(&log->tb, dir, err, err_len);
}

/* the row's finite values under their metrics.jsonl names */
static int write_scalars(metrics_log *log, const step_metrics *m, char *err, size_t err_len)
{
    const tensorboard_scalar all[] = {{"loss", m->loss},
                             {"lr", m->lr},
                             {"grad_norm", m->grad_norm},
                             {"tokens", m->tokens},
                             {"tokens_per_s", m->tokens_per_s},
                             {"mfu", m->mfu >= 0 ? m->mfu : NAN},
                             {"mem_gib", m->mem_gib},
                             {"val_loss", m->val_loss},
                             {"val_perplexity", exp(m->val_loss)}};
    tensorboard_scalar finite[sizeof all / sizeof all[0]];
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (isfinite(all[i].value))
            finite[n++] = all[i];
    return tensorboard_write_scalars(&log->tb, m->step, finite, n, err, err_len);
}

void metrics_close(metrics_log *log)
{
    tensorboard_close(&log->tb);
    if (log->jsonl)
        fclose(log->jsonl);
    log->jsonl = NULL;
    if (log->tty && !log->stdout_lost)
        fputc('\n', stdout);
}

/* %.9g, or null for NaN and infinities, which JSON cannot hold */
static const char *json_number(char *buf, size_t n, const char *format, double x)
{
    if (!isfinite(x))
        return "null";
    snprintf(buf, n, format, x);
    return buf;
}

/* , "data_epochs": [e0, e1, ...] when the run reads data */
static void epochs_field(char *out, size_t n, const step_metrics *m)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < m->n_data_sources && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%llu", i ? ", " : ", \"data_epochs\": [",
                                 (unsigned long long)m->data_epochs[i]);
    if (m->n_data_sources > 0 && used < n)
        snprintf(out + used, n - used, "]");
}

int metrics_write(metrics_log *log, const step_metrics *m, char *err, size_t err_len)
{
    char loss[32], lr[32], norm[32], speed[32], mfu[32], mem[32], epochs[512], val[96] = "";
    epochs_field(epochs, sizeof epochs, m);
    if (!isnan(m->val_loss))
        snprintf(val, sizeof val, ", \"val_loss\": %.9g, \"val_perplexity\": %.9g", m->val_loss,
                 exp(m->val_loss));
    int len = fprintf(log->jsonl,
            "{\"step\": %d, \"tokens\": %.0f, \"loss\": %s, \"lr\": %s, \"grad_norm\": %s, "
            "\"tokens_per_s\": %s, \"mfu\": %s, \"mem_gib\": %s, \"skipped\": %d%s%s}\n",
            m->step, m->tokens, json_number(loss, sizeof loss, "%.9g", m->loss),
            json_number(lr, sizeof lr, "%.9g", m->lr),
            json_number(norm, sizeof norm, "%.9g", m->grad_norm),
            json_number(speed, sizeof speed, "%.6g", m->tokens_per_s),
            json_number(mfu, sizeof mfu, "%.6g", m->mfu >= 0 ? m->mfu : NAN),
            json_number(mem, sizeof mem, "%.4g", m->mem_gib), m->skipped, val, epochs);
    if (len < 0 || fflush(log->jsonl) != 0) { /* flushed: a crash loses no logged step */
        snprintf(err, err_len, "%.3000s: cannot write: %s", log->path, strerror(errno));
        return -1;
    }
    return log->tb.f ? write_scalars(log, m, err, err_len) : 0;
}

static void format_duration(char *out, size_t n, double seconds)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, n, "%ld:%02ld", s / 60, s % 60);
}

/* 512, 12800, 3.46M, 1.20B: whole up to a million, then two decimals */
static void format_count(char *out, size_t n, double count)
{
    if (count < 1e6)
        snprintf(out, n, "%.0f", count);
    else if (count < 1e9)
        snprintf(out, n, "%.2fM", count / 1e6);
    else
        snprintf(out, n, "%.2fB", count / 1e9);
}

int metrics_due(const metrics_log *log, const step_metrics *m)
{
    return m->step % log->log_every == 0 || m->step == log->total_steps || !isnan(m->val_loss);
}

int metrics_progress(metrics_log *log, const step_metrics *m, double elapsed)
{
    if (log->stdout_lost)
        return 0;
    if (!log->tty && !metrics_due(log, m) && m->step != 1)
        return 0;
    char eta[32], took[32], mfu[16] = "-", tokens[32], val[48] = "";
    int done = m->step - log->first_step + 1;
    format_duration(eta, sizeof eta, elapsed / done * (log->total_steps - m->step));
    format_duration(took, sizeof took, elapsed);
    format_count(tokens, sizeof tokens, m->tokens);
    if (!isnan(m->val_loss))
        snprintf(val, sizeof val, "  val_loss %.4f  val_ppl %.2f", m->val_loss, exp(m->val_loss));
    if (m->mfu >= 0)
        snprintf(mfu, sizeof mfu, "%.1f%%", 100.0 * m->mfu);
    int width = snprintf(NULL, 0, "%d", log->total_steps);
    printf("%sstep %*d/%d  loss %.4f%s  lr %.3e  grad_norm %.3f  tok/s %.0f  mfu %s  tokens %s"
           "  elapsed %s  eta %s%s",
           log->tty ? "\r" : "", width, m->step, log->total_steps, m->loss, val, m->lr, m->grad_norm,
           m->tokens_per_s, mfu, tokens, took, eta, log->tty ? "  " : "\n");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        log->stdout_lost = 1;
        return -1;
    }
    return 0;
}
