#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data_loader.h"
#include "errors.h"
#include "metrics.h"
#include "params.h"
#include "tokenizer.h"
#include "train_options.h"

typedef struct run {
    train_options opt;
    const flame_plugin *plugin;
    const flame_ops *ops;
    void *model;
    param_store params;
    tokenizer tok;
    data_loader *data;
    metrics_log log;
    int32_t *inputs, *targets; /* [B*T] in backend memory */
    char err[1024];
} run;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(run *r, int status)
{
    fprintf(stderr, "flame-run: %s\n", r->err);
    return status;
}

/* mkdir -p */
static int make_folder(const char *path, char *err, size_t err_len)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            goto failed;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        goto failed;
    return 0;
failed:
    snprintf(err, err_len, "%s: cannot create folder: %s", buf, strerror(errno));
    return -1;
}

static int write_resolved_config(run *r, const flame_config *cfg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.ini", r->opt.dump_folder);
    FILE *f = fopen(path, "w");
    if (!f || config_write_ini(cfg, f) != 0 || fclose(f) != 0) {
        snprintf(r->err, sizeof r->err, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int create_model(run *r, const flame_config *cfg)
{
    flame_model_config view = config_model_view(cfg);
    char err[512] = "";
    r->model = r->plugin->create(&view, r->ops, err, sizeof err);
    if (!r->model) {
        snprintf(r->err, sizeof r->err, "%s: %s", r->plugin->name, err);
        return FLAME_EXIT_CONFIG;
    }
    long long vocab = r->plugin->vocab_size(r->model);
    if (vocab < r->tok.vocab_size) {
        snprintf(r->err, sizeof r->err,
                 "[model] vocab_size = %lld is smaller than the tokenizer's %d tokens", vocab,
                 r->tok.vocab_size);
        return FLAME_EXIT_CONFIG;
    }
    if (params_create(&r->params, r->plugin, r->model, r->ops, r->err, sizeof r->err))
        return FLAME_EXIT_RUNTIME;
    r->plugin->bind(r->model, r->params.value_ptrs, r->params.grad_ptrs);
    rng init_rng = {r->opt.seed};
    params_init(&r->params, &init_rng);
    if (r->plugin->reserve(r->model, r->opt.batch_size, r->opt.seq_len, err, sizeof err)) {
        snprintf(r->err, sizeof r->err, "%s: %s", r->plugin->name, err);
        return FLAME_EXIT_RUNTIME;
    }
    return FLAME_EXIT_OK;
}

static int open_data(run *r)
{
    data_loader_options o = {.dataset = r->opt.dataset,
                             .tokenizer_path = r->opt.tokenizer,
                             .batch_size = r->opt.batch_size,
                             .seq_len = r->opt.seq_len,
                             .rank = 0,
                             .world_size = 1,
                             .prefetch = 2};
    int rc = data_loader_open(&r->data, &o, NULL, r->err, sizeof r->err);
    return rc == 0 ? FLAME_EXIT_OK : rc == -1 ? FLAME_EXIT_CONFIG : FLAME_EXIT_DATA;
}

static int allocate_batch(run *r)
{
    size_t n = (size_t)r->opt.batch_size * r->opt.seq_len;
    r->inputs = r->ops->alloc(n * sizeof(int32_t));
    r->targets = r->ops->alloc(n * sizeof(int32_t));
    if (!r->inputs || !r->targets) {
        snprintf(r->err, sizeof r->err, "out of memory for a batch of %zu tokens", n);
        return -1;
    }
    return 0;
}

/* global-norm clipping, then one AdamW step per tensor (no decay where the
 * plugin said so) */
static double optimizer_step(run *r, int step, double lr)
{
    param_store *ps = &r->params;
    double norm = params_grad_norm(ps);
    if (r->opt.max_norm > 0 && norm > r->opt.max_norm)
        r->ops->scale(ps->grads, (float)(r->opt.max_norm / (norm + 1e-6)), ps->total);
    for (int i = 0; i < ps->n; i++) {
        size_t off = ps->offset[i];
        float decay = ps->specs[i].weight_decay ? (float)r->opt.weight_decay : 0.0f;
        r->ops->adamw(ps->values + off, ps->grads + off, ps->m + off, ps->v + off, ps->numel[i],
                      (float)lr, (float)r->opt.beta1, (float)r->opt.beta2, (float)r->opt.eps,
                      decay, step);
    }
    return norm;
}

static int train_step(run *r, int step, step_metrics *m)
{
    const train_options *o = &r->opt;
    size_t n = (size_t)o->batch_size * o->seq_len;
    const data_batch *data;
    if (data_loader_next(r->data, &data, r->err, sizeof r->err))
        return FLAME_EXIT_DATA;
    r->ops->upload(r->inputs, data->inputs, n * sizeof(int32_t));
    r->ops->upload(r->targets, data->targets, n * sizeof(int32_t));
    flame_batch batch = {r->inputs, r->targets, o->batch_size, o->seq_len, NULL, 0};

    params_zero_grads(&r->params);
    m->loss = r->plugin->forward(r->model, &batch, NULL);
    r->plugin->backward(r->model);
    m->lr = o->lr * lr_schedule_factor(&o->schedule, step);
    m->grad_norm = optimizer_step(r, step, m->lr);
    if (!isfinite(m->loss)) {
        snprintf(r->err, sizeof r->err, "step %d: the loss is %g: training diverged", step, m->loss);
        return FLAME_EXIT_RUNTIME;
    }
    return FLAME_EXIT_OK;
}

static int train(run *r)
{
    const train_options *o = &r->opt;
    double start = now_seconds(), last = start;
    for (int step = 1; step <= o->steps; step++) {
        step_metrics m = {.step = step, .mfu = -1};
        int status = train_step(r, step, &m);
        if (status != FLAME_EXIT_OK)
            return status;
        double t = now_seconds();
        m.tokens_per_s = (double)o->batch_size * o->seq_len / (t - last);
        m.mem_gib = metrics_peak_memory_gib();
        last = t;
        if (step % o->log_freq == 0 || step == o->steps)
            metrics_write(&r->log, &m);
        metrics_progress(&r->log, &m, t - start);
    }
    return FLAME_EXIT_OK;
}

static int prepare(run *r, const flame_config *cfg)
{
    if (train_options_read(&r->opt, cfg, r->err, sizeof r->err) ||
        tokenizer_open(&r->tok, r->opt.tokenizer, r->err, sizeof r->err))
        return FLAME_EXIT_CONFIG;
    int status = create_model(r, cfg);
    if (status != FLAME_EXIT_OK)
        return status;
    if ((status = open_data(r)) != FLAME_EXIT_OK)
        return status;
    if (allocate_batch(r))
        return FLAME_EXIT_RUNTIME;
    /* every check passed: only now is anything written */
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->opt.dump_folder);
    if (make_folder(r->opt.dump_folder, r->err, sizeof r->err) || write_resolved_config(r, cfg) ||
        metrics_open(&r->log, path, r->opt.steps, r->err, sizeof r->err))
        return FLAME_EXIT_RUNTIME;
    return FLAME_EXIT_OK;
}

static void release(run *r)
{
    metrics_close(&r->log);
    data_loader_close(r->data);
    tokenizer_close(&r->tok);
    if (r->model)
        r->plugin->destroy(r->model);
    params_destroy(&r->params);
    r->ops->free(r->inputs);
    r->ops->free(r->targets);
}

int trainer_run(const flame_plugin *plugin, const flame_config *cfg, const flame_ops *ops)
{
    run *r = calloc(1, sizeof *r);
    r->plugin = plugin;
    r->ops = ops;
    int status = prepare(r, cfg);
    if (status == FLAME_EXIT_OK) {
        printf("flame-run: %s, %zu parameters, %d steps of %d x %d tokens, output in %s\n",
               plugin->name, r->params.total, r->opt.steps, r->opt.batch_size, r->opt.seq_len,
               r->opt.dump_folder);
        status = train(r);
    }
    if (status != FLAME_EXIT_OK)
        fail(r, status);
    release(r);
    free(r);
    return status;
}
