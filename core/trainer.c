#include "trainer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "batch.h"
#include "comm.h"
#include "dist_env.h"
#include "formats/checkpoint.h"
#include "data/data_loader.h"
#include "errors.h"
#include "metrics.h"
#include "params.h"
#include "params_shard.h"
#include "grad_buckets.h"
#include "tokenizer/tokenizer.h"
#include "train_options.h"
#include "monotonic.h"

struct trainer {
    trainer_mode mode;
    train_options opt;
    const flame_plugin *plugin;
    backend be;
    const flame_ops *ops; /* be.ops */
    void *model;
    int64_t vocab;             /* the model's: every token id below it */
    param_store params;
    tokenizer tok;
    data_loader *data;         /* NULL: random tokens (flame-bench) */
    rng random_tokens;
    int32_t *host_tokens;      /* [B*T+1] random tokens, when data is NULL */
    uint64_t data_epochs[DOC_MIX_MAX_SOURCES]; /* of each source, after the last step */
    metrics_log log;
    batch_stage batch;         /* the micro-batch the plugin reads */
    batch_stage val_batch;     /* a validation batch (zeroed: none) */
    trainer_state state;       /* step done, skipped steps, data cursor to resume from */
    int first_step, first_skipped; /* state.step and state.skipped when this process began */
    int lock_fd;               /* DUMP/.lock, held while the run lives; -1 none */
    int step;                  /* the last step done */
    int shards, shard_rank;    /* ZeRO-1: the optimizer state's shards, this rank's (params_shard.h) */
    double start, last;        /* when the first step started, when the last one ended */
    dist_env dist;             /* this process's rank among the run's */
    comm *comm;                /* the collectives over them */
    grad_buckets buckets;      /* the gradients' sums over them, during the backward */
    char err[1024];
};

/* SIGINT/SIGTERM: finish the step, save a checkpoint, stop */
static volatile sig_atomic_t stop_requested;

static void request_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void handle_stop_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = request_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* the tool that runs the trainer, for its messages */
static const char *program_name(const trainer *r)
{
    static const char *const names[] = {"flame-run", "flame-bench", "flame-eval", "flame-generate"};
    return names[r->mode];
}

static int fail(trainer *r, int status)
{
    if (r->dist.world > 1)
        fprintf(stderr, "%s: rank %d: %s\n", program_name(r), r->dist.rank, r->err);
    else
        fprintf(stderr, "%s: %s\n", program_name(r), r->err);
    return status;
}

/* Rank 0 writes for the run: the dump folder, metrics, checkpoints and the
 * lines on stdout; the other ranks train the same steps silently. */
static int writes(const trainer *r) { return r->dist.rank == 0; }

static const char *env(const char *name) { return getenv(name); }
static const char *no_env(const char *name)
{
    (void)name;
    return NULL;
}

/* The run's ranks from the launcher's environment (one when there is none),
 * their data-parallel degrees checked against them. */
static int read_ranks(trainer *r)
{
    /* flame-eval and flame-generate run alone, whatever a job's environment holds */
    if (dist_env_read(&r->dist, r->mode == TRAINER_EVAL || r->mode == TRAINER_GENERATE ? no_env : env, r->err,
                      sizeof r->err))
        return FLAME_EXIT_CONFIG;
    const parallel_options *p = &r->opt.parallel;
    int world = r->dist.world, shards = p->shard > 0 ? p->shard : world / p->replicate;
    if (p->replicate * shards != world) {
        snprintf(r->err, sizeof r->err, "[training] data_parallel_replicate_degree = %d times "
                 "data_parallel_shard_degree = %d is not the run's %d ranks (WORLD_SIZE)", p->replicate, p->shard,
                 world);
        return FLAME_EXIT_CONFIG;
    }
    /* the optimizer state whole on every rank (replicas only), or cut over all of them */
    if (shards != 1 && shards != world) {
        snprintf(r->err, sizeof r->err, "[training] data_parallel_shard_degree = %d: shards over some of the "
                 "%d ranks (replicas of shards) are not built: 1 or %d (-1)", shards, world, world);
        return FLAME_EXIT_CONFIG;
    }
    r->shards = shards;
    r->shard_rank = shards == 1 ? 0 : r->dist.rank;
    return FLAME_EXIT_OK;
}

/* the collectives over the ranks, on the backend's memory */
static int join_ranks(trainer *r)
{
    const parallel_options *p = &r->opt.parallel;
    r->comm = comm_open(&r->dist, r->ops->backend, p->init_timeout_s, p->timeout_s, r->err, sizeof r->err);
    return r->comm ? FLAME_EXIT_OK : FLAME_EXIT_RUNTIME;
}

/* the gradients (this rank's shard of them; their last backward's buckets
 * already sent) and the loss summed over the ranks (each rank's being the
 * mean over its own rows), to be scaled by 1/world with the micro-batches' */
static int sum_over_ranks(trainer *r, double *loss)
{
    return grad_buckets_finish(&r->buckets, r->err, sizeof r->err) ||
           comm_sum_doubles(r->comm, loss, 1, r->err, sizeof r->err);
}

/* whether any rank was asked to stop (SIGINT/SIGTERM): they stop together */
static int agree_on_stop(trainer *r, int *stop)
{
    double asked = stop_requested;
    if (comm_sum_doubles(r->comm, &asked, 1, r->err, sizeof r->err))
        return -1;
    *stop = asked > 0;
    return 0;
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
    snprintf(err, err_len, "%.900s: cannot create folder: %s", buf, strerror(errno));
    return -1;
}

/* One run per dump folder: an flock on DUMP/.lock, which holds the PID for the
 * message. The kernel drops the lock when its process ends, so the lock of a
 * dead run is simply taken over. */
static int lock_dump_folder(trainer *r)
{
    char path[4200], pid[32] = "";
    snprintf(path, sizeof path, "%s/.lock", r->opt.dump_folder);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        snprintf(r->err, sizeof r->err, "%.900s: cannot create: %s", path, strerror(errno));
        return FLAME_EXIT_RUNTIME;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        ssize_t n = busy ? pread(fd, pid, sizeof pid - 1, 0) : 0;
        pid[n > 0 ? strcspn(pid, "\n") : 0] = '\0';
        if (busy)
            snprintf(r->err, sizeof r->err,
                     "%.900s: in use by another flame-run, PID %s (it holds the lock on .lock)",
                     r->opt.dump_folder, *pid ? pid : "unknown");
        else
            snprintf(r->err, sizeof r->err, "%.900s: cannot lock: %s", path, strerror(errno));
        close(fd);
        return busy ? FLAME_EXIT_CONFIG : FLAME_EXIT_RUNTIME;
    }
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        snprintf(r->err, sizeof r->err, "%.900s: cannot write: %s", path, strerror(errno));
        close(fd);
        return FLAME_EXIT_RUNTIME;
    }
    r->lock_fd = fd;
    return FLAME_EXIT_OK;
}

/* a run refused before training leaves nothing behind: the lock file, and the
 * dump folder if this run made it */
static void unlock_refused_run(trainer *r, int made_folder)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.lock", r->opt.dump_folder);
    unlink(path);
    if (made_folder)
        rmdir(r->opt.dump_folder);
}

static int write_resolved_config(trainer *r, const flame_config *cfg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.ini", r->opt.dump_folder);
    FILE *f = fopen(path, "w");
    if (!f || config_write_ini(cfg, f) != 0 || fclose(f) != 0) {
        snprintf(r->err, sizeof r->err, "%.900s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int create_model(trainer *r, const flame_config *cfg)
{
    flame_model_config view = config_model_view(cfg);
    char err[512] = "";
    r->model = r->plugin->create(&view, r->ops, err, sizeof err);
    if (!r->model) {
        snprintf(r->err, sizeof r->err, "%s: %s", r->plugin->name, err);
        return FLAME_EXIT_CONFIG;
    }
    r->vocab = r->plugin->vocab_size(r->model);
    if (r->vocab < r->tok.vocab_size) { /* 0 when there is no tokenizer (random tokens) */
        snprintf(r->err, sizeof r->err,
                 "[model] vocab_size = %lld is smaller than the tokenizer's %d tokens",
                 (long long)r->vocab, r->tok.vocab_size);
        return FLAME_EXIT_CONFIG;
    }
    if (r->tok.vocab_size > 0 && r->vocab > 2 * (int64_t)r->tok.vocab_size)
        fprintf(stderr,
                "%s: warning: [model] vocab_size = %lld is %.0f times the tokenizer's %d "
                "ids (%s): the rows no token reaches only cost memory and time\n",
                program_name(r), (long long)r->vocab, (double)r->vocab / r->tok.vocab_size, r->tok.vocab_size,
                r->opt.tokenizer);
    int declared = params_create(&r->params, r->plugin, r->model, r->ops, r->shard_rank, r->shards, r->err,
                                 sizeof r->err);
    if (declared)
        return declared == -2   ? FLAME_EXIT_PLUGIN
               : declared == -3 ? FLAME_EXIT_CONFIG
                                : FLAME_EXIT_RUNTIME;
    r->plugin->bind(r->model, (const void *const *)r->params.compute_ptrs, r->params.grad_ptrs);
    grad_buckets_init(&r->buckets, &r->params, r->comm, (size_t)(r->opt.parallel.bucket_mb * 1048576.0));
    rng init_rng = {r->opt.seed};
    int drawn = params_init(&r->params, &init_rng, r->err, sizeof r->err);
    if (drawn)
        return drawn == -1 ? FLAME_EXIT_PLUGIN : FLAME_EXIT_RUNTIME;
    /* the activations of the largest batch, training's or validation's */
    const validation_options *v = &r->opt.validation;
    int B = r->opt.batch_size, T = r->opt.seq_len;
    if (v->enabled) {
        B = B > v->batch_size ? B : v->batch_size;
        T = T > v->seq_len ? T : v->seq_len;
    }
    int rc = r->plugin->reserve(r->model, B, T, err, sizeof err);
    if (rc) {
        snprintf(r->err, sizeof r->err, "%s: %s", r->plugin->name, err);
        return rc == -2 ? FLAME_EXIT_CONFIG : FLAME_EXIT_RUNTIME;
    }
    return FLAME_EXIT_OK;
}

static int open_data(trainer *r)
{
    const train_options *t = &r->opt;
    data_loader_options o = {.dataset = t->dataset,
                             .text_field = t->text_field,
                             .data_probs = t->data_probs,
                             .n_data_probs = t->n_data_probs,
                             .tokenizer_path = t->tokenizer,
                             .batch_size = t->batch_size,
                             .seq_len = t->seq_len,
                             .rank = r->dist.rank,
                             .world_size = r->dist.world,
                             .varlen = t->varlen,
                             .context_len = t->context_len,
                             .num_workers = t->num_workers,
                             .shuffle = t->shuffle,
                             .shuffle_buffer = (size_t)t->shuffle_buffer,
                             .seed = (uint64_t)t->seed,
                             .prefetch = t->prefetch_factor};
    const json_t *cursor = json_is_object(r->state.data_cursor) ? r->state.data_cursor : NULL;
    int rc = data_loader_open(&r->data, &o, cursor, r->err, sizeof r->err);
    return rc == 0 ? FLAME_EXIT_OK : rc == -1 ? FLAME_EXIT_CONFIG : FLAME_EXIT_DATA;
}

/* AdamW over this rank's shard of the parameters (all of them alone) in one
 * launch, with global-norm clipping as the scale it applies to the
 * gradients, decaying the tensors declared with weight decay (stored first;
 * all of them under weight_decay_all); t counts the steps applied, skipped
 * ones excluded. Then every shard's weights to every rank. */
static int optimizer_step(trainer *r, double norm, double lr, int t)
{
    param_store *ps = &r->params;
    float clip = 1.0f;
    if (r->opt.max_norm > 0 && norm > r->opt.max_norm)
        clip = (float)(r->opt.max_norm / (norm + 1e-6));
    size_t decayed = r->opt.weight_decay_all ? ps->total : ps->decayed_end, lo = ps->shard_lo;
    size_t n_decayed = decayed <= lo ? 0 : decayed - lo < ps->shard ? decayed - lo : ps->shard;
    void *compute = (char *)ps->compute + lo * r->ops->act_bytes;
    r->ops->adamw(ps->values + lo, compute, ps->grads + lo, clip, ps->m, ps->v, ps->shard, n_decayed, (float)lr,
                  (float)r->opt.beta1, (float)r->opt.beta2, (float)r->opt.eps, (float)r->opt.weight_decay, t);
    return params_gather_weights(ps, r->comm, r->err, sizeof r->err);
}

/* forward and backward of one micro-batch, adding its mean loss to *loss;
 * returns 0, or -1 with r->err on a data error */
static int micro_step(trainer *r, double *loss)
{
    const int32_t *tokens, *targets, *cu_seqlens = NULL;
    int n_seqs = 0;
    if (r->data) {
        const data_batch *data;
        if (data_loader_next(r->data, &data, r->err, sizeof r->err))
            return -1;
        tokens = data->inputs, targets = data->targets;
        cu_seqlens = data->cu_seqlens, n_seqs = data->n_seqs;
    } else { /* targets are the inputs shifted by one, as in real data */
        size_t n = (size_t)r->opt.batch_size * r->opt.seq_len;
        for (size_t i = 0; i <= n; i++)
            r->host_tokens[i] = (int32_t)(rng_next(&r->random_tokens) % (uint64_t)r->vocab);
        tokens = r->host_tokens, targets = r->host_tokens + 1;
    }
    flame_batch batch;
    if (batch_stage_load(&r->batch, r->ops, tokens, targets, cu_seqlens, n_seqs, r->vocab, &batch,
                         r->err, sizeof r->err))
        return -1;
    *loss += r->plugin->forward(r->model, &batch, NULL);
    r->plugin->backward(r->model);
    return 0;
}

/* One optimizer step over gradient_accumulation_steps micro-batches, whose
 * gradients add up and are then averaged. */
static int train_step(trainer *r, int step, step_metrics *m)
{
    const train_options *o = &r->opt;
    params_zero_grads(&r->params);
    double loss = 0;
    for (int k = 0; k < o->accumulation; k++) {
        if (k == o->accumulation - 1)
            grad_buckets_arm(&r->buckets);
        if (micro_step(r, &loss))
            return FLAME_EXIT_DATA;
    }
    if (sum_over_ranks(r, &loss))
        return FLAME_EXIT_RUNTIME;
    int parts = o->accumulation * r->dist.world; /* the means added up */
    param_store *ps = &r->params;
    if (parts > 1)
        r->ops->scale(ps->grads + ps->shard_lo, 1.0f / parts, ps->shard);
    m->loss = loss / parts;
    if (r->data) {
        m->n_data_sources = data_loader_epochs(r->data, r->data_epochs);
        m->data_epochs = r->data_epochs;
    }
    m->lr = o->lr * lr_schedule_factor(&o->schedule, step);
    double squares;
    if (params_grad_square_sum(ps, r->comm, &squares, r->err, sizeof r->err))
        return FLAME_EXIT_RUNTIME;
    m->grad_norm = sqrt(squares);
    if (!isfinite(m->grad_norm) || !isfinite(m->loss)) {
        if (!o->skip_nan_inf) {
            snprintf(r->err, sizeof r->err,
                     "step %d: loss %g, gradient norm %g: training diverged "
                     "(--training.skip_nan_inf skips such steps)",
                     step, m->loss, m->grad_norm);
            return FLAME_EXIT_RUNTIME;
        }
        m->skipped = ++r->state.skipped;
        return FLAME_EXIT_OK;
    }
    m->skipped = r->state.skipped;
    return optimizer_step(r, m->grad_norm, m->lr, step - r->state.skipped) ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
}

/* Every rank: the whole state gathered from the shards; rank 0 writes it. */
static int save_checkpoint(trainer *r, int step)
{
    r->state.step = step;
    json_decref(r->state.data_cursor);
    r->state.data_cursor = data_loader_cursor(r->data);
    const checkpoint_options *c = &r->opt.checkpoint;
    param_store whole;
    if (params_whole_view(&r->params, &whole, r->err, sizeof r->err))
        return FLAME_EXIT_RUNTIME;
    int rc = params_gather_state(&r->params, &whole, r->comm, r->err, sizeof r->err);
    if (rc == 0 && writes(r))
        rc = checkpoint_save(c->folder, &whole, &r->state, c->keep_latest_k, r->err, sizeof r->err);
    params_release_view(&r->params, &whole);
    return rc ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
}

/* checkpoint step (the whole state), this rank keeping its shard of the moments */
static int load_checkpoint(trainer *r, int step)
{
    param_store whole;
    if (params_whole_view(&r->params, &whole, r->err, sizeof r->err))
        return FLAME_EXIT_RUNTIME;
    int rc = checkpoint_load(r->opt.checkpoint.folder, step, &whole, &r->state, r->err, sizeof r->err);
    if (rc == 0)
        params_keep_shard(&r->params, &whole);
    params_release_view(&r->params, &whole);
    return rc == 0 ? FLAME_EXIT_OK : rc == -1 ? FLAME_EXIT_CONFIG : FLAME_EXIT_DATA;
}

double trainer_mfu(const trainer *r, double tokens_per_s)
{
    if (r->be.peak_tflops <= 0)
        return -1;
    return trainer_flops_per_token(r) * tokens_per_s / (r->be.peak_tflops * 1e12 * r->dist.world);
}

/* flame-run's part of a step: metrics, progress, checkpoints, a stop request */
static int log_and_save(trainer *r, const step_metrics *m, double now)
{
    const train_options *o = &r->opt;
    int step = m->step, status = FLAME_EXIT_OK, stop;
    if (writes(r) && metrics_due(&r->log, m) &&
        metrics_write(&r->log, m, r->err, sizeof r->err))
        return FLAME_EXIT_RUNTIME; /* a full disk: a run must not go on unrecorded */
    if (writes(r) && metrics_progress(&r->log, m, now - r->start))
        fprintf(stderr, "flame-run: note: stdout: %s: progress is no longer printed, training "
                "goes on\n", strerror(errno));
    if (agree_on_stop(r, &stop))
        return FLAME_EXIT_RUNTIME;
    if (o->checkpoint.enabled &&
        (step % o->checkpoint.interval == 0 || step == o->steps || stop) &&
        (status = save_checkpoint(r, step)) != FLAME_EXIT_OK)
        return status;
    if (stop) {
        snprintf(r->err, sizeof r->err, "interrupted after step %d%s", step,
                 o->checkpoint.enabled ? "; checkpoint saved: the same command resumes" : "");
        return FLAME_EXIT_RUNTIME;
    }
    return FLAME_EXIT_OK;
}

/* The end of a run with skipped steps (training.skip_nan_inf): a warning with
 * their count, or a failure when every step of this run was skipped, for then
 * the run learned nothing. */
static int report_skipped(trainer *r)
{
    int steps = r->step - r->first_step, skipped = r->state.skipped - r->first_skipped;
    if (skipped == 0)
        return FLAME_EXIT_OK;
    if (skipped == steps) {
        snprintf(r->err, sizeof r->err,
                 "all %d steps of this run were skipped for a non-finite loss or gradient "
                 "norm: nothing was learned",
                 steps);
        return FLAME_EXIT_RUNTIME;
    }
    if (writes(r))
        fprintf(stderr,
                "flame-run: warning: %d of %d steps were skipped for a non-finite loss or gradient "
                "norm\n",
                skipped, steps);
    return FLAME_EXIT_OK;
}

static int validate(trainer *r, eval_result *out)
{
    const validation_options *v = &r->opt.validation;
    eval_options o = {v->dataset,   r->opt.text_field, r->opt.tokenizer,
                      v->batch_size, v->seq_len,        v->steps};
    int rc = evaluate(r->plugin, r->model, r->ops, r->vocab, &r->val_batch, &o, out, r->err,
                      sizeof r->err);
    return rc == 0 ? FLAME_EXIT_OK : rc == -1 ? FLAME_EXIT_CONFIG : FLAME_EXIT_DATA;
}

trainer_model trainer_get_model(const trainer *r)
{
    return (trainer_model){r->plugin, r->model, r->ops, &r->tok};
}

int trainer_validate(trainer *r, eval_result *out)
{
    int status = validate(r, out);
    return status == FLAME_EXIT_OK ? status : fail(r, status);
}

/* [validation] every freq steps and after the last: its loss into m */
static int validate_due(trainer *r, step_metrics *m)
{
    const validation_options *v = &r->opt.validation;
    if (!v->enabled || (m->step % v->freq != 0 && m->step != r->opt.steps))
        return FLAME_EXIT_OK;
    eval_result e;
    int status = validate(r, &e);
    m->val_loss = e.loss;
    return status;
}

int trainer_step(trainer *r, step_metrics *m)
{
    *m = (step_metrics){.step = r->step + 1, .mfu = -1, .val_loss = NAN};
    int status = train_step(r, m->step, m);
    if (status == FLAME_EXIT_OK) {
        r->step = m->step;
        double now = monotonic_seconds();
        m->tokens = trainer_tokens_per_step(r) * m->step;
        m->tokens_per_s = trainer_tokens_per_step(r) / (now - r->last);
        m->mfu = trainer_mfu(r, m->tokens_per_s);
        m->mem_gib = backend_sample_memory(&r->be);
        if (r->mode == TRAINER_RUN)
            status = validate_due(r, m);
        r->last = monotonic_seconds(); /* a validation's time is no step's */
        if (r->mode == TRAINER_RUN && status == FLAME_EXIT_OK)
            status = log_and_save(r, m, r->last);
        if (r->mode == TRAINER_RUN && status == FLAME_EXIT_OK && r->step == r->opt.steps)
            status = report_skipped(r);
    }
    return status == FLAME_EXIT_OK ? status : fail(r, status);
}

int trainer_finished(const trainer *r)
{
    return r->opt.checkpoint.create_seed || r->step >= r->opt.steps;
}

/* 64-bit FNV-1a of the [model] lines of the resolved config (the model file's
 * path left out): a resumed run warns when the architecture settings changed */
static void model_config_hash(const flame_config *cfg, char out[17])
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_write_ini(cfg, f);
    fclose(f);
    uint64_t h = 1469598103934665603ull;
    int in_model = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '[')
            in_model = strcmp(line, "[model]") == 0;
        else if (in_model && line[0] != ';' && strncmp(line, "config ", 7) != 0)
            for (const char *c = line; *c && strncmp(c, "  ;", 3) != 0; c++)
                h = (h ^ (unsigned char)*c) * 1099511628211ull;
    }
    free(text);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The validation files resolve (a typo found now, not at the first validation). */
static int check_validation_data(trainer *r)
{
    const validation_options *v = &r->opt.validation;
    data_source *src;
    int rc = v->enabled ? data_source_open(&src, v->dataset, r->opt.text_field, r->err,
                                           sizeof r->err)
                        : 0;
    if (v->enabled && rc == 0)
        data_source_close(src);
    if (rc)
        snprintf(r->err + strlen(r->err), sizeof r->err - strlen(r->err), " ([validation] dataset)");
    return rc ? FLAME_EXIT_CONFIG : FLAME_EXIT_OK;
}

/* Loads the checkpoint checkpoint.load_step names, if there is one. */
static int resume(trainer *r)
{
    const checkpoint_options *c = &r->opt.checkpoint;
    if (!c->enabled || c->create_seed)
        return FLAME_EXIT_OK;
    int step = checkpoint_find(c->folder, c->load_step, program_name(r), r->err, sizeof r->err);
    if (step == -2)
        return FLAME_EXIT_CONFIG;
    if (step < 0)
        return FLAME_EXIT_OK;
    char hash[17];
    memcpy(hash, r->state.config_hash, sizeof hash);
    int status = load_checkpoint(r, step);
    if (status != FLAME_EXIT_OK)
        return status;
    if (writes(r) && strcmp(hash, r->state.config_hash) != 0)
        fprintf(stderr, "flame-run: warning: %s/step-%d was written with other [model] settings\n",
                c->folder, step);
    memcpy(r->state.config_hash, hash, sizeof hash);
    if (writes(r))
        printf("flame-run: resuming from %s/step-%d\n", c->folder, step);
    return FLAME_EXIT_OK;
}

/* options, backend and model: what training and benchmarking share */
static int prepare_model(trainer *r, const flame_config *cfg)
{
    int need_tokens = r->mode != TRAINER_BENCH;
    if (train_options_read(&r->opt, cfg, r->mode == TRAINER_RUN, r->err, sizeof r->err))
        return FLAME_EXIT_CONFIG;
    int status = read_ranks(r);
    if (status != FLAME_EXIT_OK)
        return status;
    /* each rank its own GPU: the one of its index on this node */
    if (backend_select(&r->be, r->opt.device, r->dist.local_rank, r->err, sizeof r->err) ||
        (need_tokens && tokenizer_open(&r->tok, r->opt.tokenizer, r->err, sizeof r->err)))
        return FLAME_EXIT_CONFIG;
    r->ops = r->be.ops;
    status = join_ranks(r);
    if (status != FLAME_EXIT_OK)
        return status;
    status = create_model(r, cfg);
    const validation_options *v = &r->opt.validation;
    if (status == FLAME_EXIT_OK &&
        (batch_stage_open(&r->batch, r->ops, r->opt.batch_size, r->opt.seq_len, r->err,
                          sizeof r->err) ||
         (v->enabled &&
          batch_stage_open(&r->val_batch, r->ops, v->batch_size, v->seq_len, r->err,
                           sizeof r->err))))
        status = FLAME_EXIT_RUNTIME;
    return status;
}

/* the ranks but 0: the checkpoint to resume from and their share of the data; nothing written */
static int prepare_silent_rank(trainer *r)
{
    int status = resume(r);
    if (status == FLAME_EXIT_OK)
        status = open_data(r);
    r->step = r->first_step = r->state.step;
    r->first_skipped = r->state.skipped;
    backend_measure_peak(&r->be);
    return status;
}

static int prepare_run(trainer *r, const flame_config *cfg)
{
    model_config_hash(cfg, r->state.config_hash);
    if (!writes(r))
        return prepare_silent_rank(r);
    /* the lock comes before the checkpoints are read: another run may be writing them */
    struct stat sb;
    int made_folder = stat(r->opt.dump_folder, &sb) != 0;
    int status;
    if (make_folder(r->opt.dump_folder, r->err, sizeof r->err))
        return FLAME_EXIT_RUNTIME;
    if ((status = lock_dump_folder(r)) != FLAME_EXIT_OK) {
        if (made_folder)
            rmdir(r->opt.dump_folder);
        return status;
    }
    if ((status = resume(r)) != FLAME_EXIT_OK || (status = open_data(r)) != FLAME_EXIT_OK ||
        (status = check_validation_data(r)) != FLAME_EXIT_OK) {
        unlock_refused_run(r, made_folder);
        return status;
    }
    r->step = r->first_step = r->state.step;
    r->first_skipped = r->state.skipped;
    backend_measure_peak(&r->be);
    /* every check passed: only now is anything but the lock written */
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->opt.dump_folder);
    if (write_resolved_config(r, cfg) ||
        metrics_open(&r->log, path, r->opt.steps, r->opt.log_freq, r->state.step, r->err,
                     sizeof r->err) ||
        (r->opt.tensorboard[0] &&
         metrics_open_tensorboard(&r->log, r->opt.tensorboard, r->err, sizeof r->err)))
        return FLAME_EXIT_RUNTIME;
    return FLAME_EXIT_OK;
}

/* the seed checkpoint, or what flame-run will train */
static int announce_run(trainer *r)
{
    const train_options *o = &r->opt;
    handle_stop_signals();
    if (o->checkpoint.create_seed) {
        int status = save_checkpoint(r, 0);
        if (status == FLAME_EXIT_OK && writes(r))
            printf("flame-run: seed checkpoint %s/step-0 written\n", o->checkpoint.folder);
        return status;
    }
    if (!writes(r))
        return FLAME_EXIT_OK;
    printf("flame-run: %s, %zu parameters, %d steps of %d x %d x %d tokens on %s, tokenizer %s "
           "(%d ids), output in %s\n",
           r->plugin->name, r->params.count, o->steps, o->accumulation, o->batch_size, o->seq_len,
           r->be.device, o->tokenizer, r->tok.vocab_size, o->dump_folder);
    if (o->schedule.warmup_steps > o->steps)
        fprintf(stderr,
                "flame-run: warning: [lr_scheduler] warmup_steps = %d is longer than the run's %d "
                "steps: the learning rate ends at %.3g, never reaching optimizer.lr = %g\n",
                o->schedule.warmup_steps, o->steps,
                o->lr * o->steps / o->schedule.warmup_steps, o->lr);
    if (r->state.step >= o->steps)
        printf("flame-run: already at step %d of %d: nothing to train\n", r->state.step,
               o->steps);
    return FLAME_EXIT_OK;
}

/* flame-eval and flame-generate: the weights of checkpoint.load_step (the
 * optimizer's moments come along, unused) */
static int prepare_eval(trainer *r)
{
    const checkpoint_options *c = &r->opt.checkpoint;
    int step = checkpoint_find(c->folder, c->load_step, program_name(r), r->err, sizeof r->err);
    if (step == -2)
        return FLAME_EXIT_CONFIG;
    if (step < 0) {
        snprintf(r->err, sizeof r->err, "%.900s holds no checkpoint", c->folder);
        return FLAME_EXIT_CONFIG;
    }
    return load_checkpoint(r, step);
}

/* flame-bench's random tokens: B*T inputs and the one target after them */
static int prepare_bench(trainer *r)
{
    r->random_tokens = (rng){r->opt.seed + (unsigned long long)r->dist.rank}; /* each rank its own rows */
    r->host_tokens = malloc(((size_t)r->opt.batch_size * r->opt.seq_len + 1) * sizeof(int32_t));
    if (!r->host_tokens) {
        snprintf(r->err, sizeof r->err, "out of memory for random tokens");
        return FLAME_EXIT_RUNTIME;
    }
    return FLAME_EXIT_OK;
}

trainer *trainer_open(const flame_plugin *plugin, const flame_config *cfg, trainer_mode mode,
                      int *status)
{
    trainer *r = calloc(1, sizeof *r);
    r->lock_fd = -1;
    r->plugin = plugin;
    r->mode = mode;
    *status = prepare_model(r, cfg);
    if (*status == FLAME_EXIT_OK)
        *status = mode == TRAINER_RUN    ? prepare_run(r, cfg)
                  : mode != TRAINER_BENCH ? prepare_eval(r)
                                         : prepare_bench(r);
    if (*status == FLAME_EXIT_OK && mode == TRAINER_RUN)
        *status = announce_run(r);
    if (*status != FLAME_EXIT_OK) {
        fail(r, *status);
        trainer_close(r);
        return NULL;
    }
    r->start = r->last = monotonic_seconds();
    return r;
}

void trainer_close(trainer *r)
{
    if (!r)
        return;
    metrics_close(&r->log);
    data_loader_close(r->data);
    json_decref(r->state.data_cursor);
    tokenizer_close(&r->tok);
    if (r->model)
        r->plugin->destroy(r->model);
    params_destroy(&r->params);
    if (r->ops) {
        batch_stage_close(&r->batch, r->ops);
        batch_stage_close(&r->val_batch, r->ops);
    }
    free(r->host_tokens);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    comm_close(r->comm);
    free(r);
}

/* ------------------------------------------------------------------ what flame-bench reports */

const train_options *trainer_options(const trainer *r) { return &r->opt; }

size_t trainer_param_count(const trainer *r) { return r->params.count; }

/* over every rank */
double trainer_tokens_per_step(const trainer *r)
{
    return (double)r->opt.batch_size * r->opt.seq_len * r->opt.accumulation * r->dist.world;
}

int trainer_rank(const trainer *r) { return r->dist.rank; }
int trainer_world(const trainer *r) { return r->dist.world; }

double trainer_flops_per_token(const trainer *r)
{
    return r->plugin->flops_per_token(r->model, r->opt.seq_len);
}

void trainer_synchronize(const trainer *r) { backend_synchronize(&r->be); }

void trainer_measure_peak(trainer *r) { backend_measure_peak(&r->be); }

double trainer_peak_tflops(const trainer *r) { return r->be.peak_tflops; }

const char *trainer_device(const trainer *r) { return r->be.device; }

double trainer_peak_memory_gib(const trainer *r, const char **what)
{
    *what = r->be.is_cuda ? "device memory in use, context included" : "resident set";
    return r->be.peak_memory_gib;
}
