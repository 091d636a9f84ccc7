#include "train_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int int_in(const flame_config *cfg, const char *section, const char *key, int lo, int hi,
                  int *out, char *err, size_t err_len)
{
    long long v = config_get_int(cfg, section, key);
    if (v < lo || v > hi) {
        snprintf(err, err_len, "[%s] %s = %lld: expected a whole number from %d to %d", section,
                 key, v, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int positive_int(const flame_config *cfg, const char *section, const char *key, int *out,
                        char *err, size_t err_len)
{
    return int_in(cfg, section, key, 1, 1000000000, out, err, err_len);
}

static int float_in(const flame_config *cfg, const char *section, const char *key, double lo,
                    double hi, double *out, char *err, size_t err_len)
{
    double v = config_get_float(cfg, section, key);
    if (!(v >= lo && v <= hi)) {
        snprintf(err, err_len, "[%s] %s = %g: expected a number from %g to %g", section, key, v,
                 lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int read_optimizer(train_options *o, const flame_config *cfg, char *err, size_t err_len)
{
    const char *name = config_get_string(cfg, "optimizer", "name");
    if (strcasecmp(name, "AdamW") != 0) {
        snprintf(err, err_len, "[optimizer] name = \"%s\": only AdamW is available", name);
        return -1;
    }
    o->weight_decay_all = config_get_bool(cfg, "optimizer", "weight_decay_all");
    return float_in(cfg, "optimizer", "lr", 0, 10, &o->lr, err, err_len) ||
           float_in(cfg, "optimizer", "beta1", 0, 0.999999, &o->beta1, err, err_len) ||
           float_in(cfg, "optimizer", "beta2", 0, 0.999999, &o->beta2, err, err_len) ||
           float_in(cfg, "optimizer", "eps", 0, 1, &o->eps, err, err_len) ||
           float_in(cfg, "optimizer", "weight_decay", 0, 10, &o->weight_decay, err, err_len)
               ? -1 : 0;
}

static int read_schedule(train_options *o, const flame_config *cfg, char *err, size_t err_len)
{
    long long warmup = config_get_int(cfg, "lr_scheduler", "warmup_steps");
    /* more warmup than steps is allowed: the run then ends still warming up */
    if (warmup < 0 || warmup > 1000000000) {
        snprintf(err, err_len,
                 "[lr_scheduler] warmup_steps = %lld: expected a whole number from 0", warmup);
        return -1;
    }
    decay_type decay;
    const char *decay_name = config_get_string(cfg, "lr_scheduler", "decay_type");
    if (decay_type_parse(decay_name, &decay)) {
        snprintf(err, err_len,
                 "[lr_scheduler] decay_type = \"%s\": expected linear, cosine or sqrt", decay_name);
        return -1;
    }
    double lr_min, ratio = -1;
    if (float_in(cfg, "lr_scheduler", "lr_min", 0, 1, &lr_min, err, err_len))
        return -1;
    if (config_is_set(cfg, "lr_scheduler", "decay_ratio") &&
        float_in(cfg, "lr_scheduler", "decay_ratio", 0, 1, &ratio, err, err_len))
        return -1;
    o->schedule = lr_schedule_make((int)warmup, o->steps, ratio, decay, lr_min);
    return 0;
}

/* training.data_probs: comma-separated positive weights, at most DOC_MIX_MAX_SOURCES */
static int read_data_probs(train_options *o, const flame_config *cfg, char *err, size_t err_len)
{
    o->n_data_probs = 0;
    if (!config_is_set(cfg, "training", "data_probs"))
        return 0;
    const char *text = config_get_string(cfg, "training", "data_probs");
    for (const char *p = text;; p++) {
        char *end;
        double w = strtod(p, &end);
        while (*end == ' ')
            end++;
        if (end == p || !(w > 0 && w < 1e30) || (*end != ',' && *end != '\0') ||
            o->n_data_probs == DOC_MIX_MAX_SOURCES) {
            snprintf(err, err_len, "[training] data_probs = \"%s\": expected up to %d positive "
                     "numbers separated by commas, one per source of training.dataset",
                     text, DOC_MIX_MAX_SOURCES);
            return -1;
        }
        o->data_probs[o->n_data_probs++] = w;
        if (*end == '\0')
            return 0;
        p = end;
    }
}

static int read_data(train_options *o, const flame_config *cfg, int need_data, char *err,
                     size_t err_len)
{
    if (need_data && !config_is_set(cfg, "training", "dataset")) {
        snprintf(err, err_len, "[training] dataset is not set: give the data with "
                               "--training.dataset FILE|FOLDER|GLOB");
        return -1;
    }
    o->dataset = config_get_string(cfg, "training", "dataset");
    o->text_field = config_get_string(cfg, "training", "text_field");
    o->varlen = config_get_bool(cfg, "training", "varlen");
    if (positive_int(cfg, "training", "batch_size", &o->batch_size, err, err_len) ||
        positive_int(cfg, "training", "seq_len", &o->seq_len, err, err_len) ||
        int_in(cfg, "training", "num_workers", 0, 256, &o->num_workers, err, err_len) ||
        int_in(cfg, "training", "prefetch_factor", 1, 1024, &o->prefetch_factor, err, err_len) ||
        int_in(cfg, "training", "shuffle_buffer", 1, 1 << 24, &o->shuffle_buffer, err, err_len))
        return -1;
    o->shuffle = config_get_bool(cfg, "training", "shuffle");
    if (read_data_probs(o, cfg, err, err_len))
        return -1;
    o->context_len = o->seq_len;
    if (config_is_set(cfg, "training", "context_len") &&
        positive_int(cfg, "training", "context_len", &o->context_len, err, err_len))
        return -1;
    return 0;
}

static int read_training(train_options *o, const flame_config *cfg, int need_data, char *err,
                         size_t err_len)
{
    o->device = config_get_string(cfg, "training", "device");
    if (read_data(o, cfg, need_data, err, err_len) ||
        positive_int(cfg, "training", "steps", &o->steps, err, err_len) ||
        positive_int(cfg, "training", "gradient_accumulation_steps", &o->accumulation, err,
                     err_len) ||
        float_in(cfg, "training", "max_norm", 0, 1e30, &o->max_norm, err, err_len))
        return -1;
    o->skip_nan_inf = config_get_bool(cfg, "training", "skip_nan_inf");
    long long seed = config_get_int(cfg, "training", "seed");
    if (seed < 0) {
        snprintf(err, err_len, "[training] seed = %lld: expected 0 or more", seed);
        return -1;
    }
    o->seed = (unsigned long long)seed;
    return 0;
}

static int read_checkpoint(train_options *o, const flame_config *cfg, char *err, size_t err_len)
{
    o->checkpoint.enabled = config_get_bool(cfg, "checkpoint", "enable_checkpoint");
    o->checkpoint.create_seed = config_get_bool(cfg, "checkpoint", "create_seed_checkpoint");
    const char *folder = config_get_string(cfg, "checkpoint", "folder");
    if (!folder[0] || strstr(folder, "..")) {
        snprintf(err, err_len, "[checkpoint] folder = \"%s\": expected a folder name inside "
                               "job.dump_folder", folder);
        return -1;
    }
    snprintf(o->checkpoint.folder, sizeof o->checkpoint.folder, "%s/%s", o->dump_folder, folder);
    o->checkpoint.export_hf = config_get_bool(cfg, "checkpoint", "export_hf");
    o->checkpoint.export_dtype = config_get_string(cfg, "checkpoint", "export_dtype");
    if (strcmp(o->checkpoint.export_dtype, "float32") &&
        strcmp(o->checkpoint.export_dtype, "bfloat16")) {
        snprintf(err, err_len, "[checkpoint] export_dtype = \"%s\": expected float32 or bfloat16",
                 o->checkpoint.export_dtype);
        return -1;
    }
    if (o->checkpoint.export_hf && !o->checkpoint.enabled) {
        snprintf(err, err_len, "[checkpoint] export_hf is true but enable_checkpoint is false: "
                 "the folder is made from the last checkpoint");
        return -1;
    }
    return positive_int(cfg, "checkpoint", "interval", &o->checkpoint.interval, err, err_len) ||
           int_in(cfg, "checkpoint", "keep_latest_k", 0, 1000000000, &o->checkpoint.keep_latest_k,
                  err, err_len) ||
           int_in(cfg, "checkpoint", "load_step", -1, 1000000000, &o->checkpoint.load_step, err,
                  err_len)
               ? -1 : 0;
}

static int read_validation(train_options *o, const flame_config *cfg, char *err, size_t err_len)
{
    validation_options *v = &o->validation;
    v->enabled = config_get_bool(cfg, "validation", "enable");
    v->dataset = config_get_string(cfg, "validation", "dataset");
    v->batch_size = o->batch_size;
    v->seq_len = o->seq_len;
    if (!v->enabled)
        return 0;
    if (!config_is_set(cfg, "validation", "dataset")) {
        snprintf(err, err_len, "[validation] enable is true but dataset is not set: give the "
                 "held-out data with --validation.dataset FILE|FOLDER|GLOB");
        return -1;
    }
    if ((config_is_set(cfg, "validation", "local_batch_size") &&
         positive_int(cfg, "validation", "local_batch_size", &v->batch_size, err, err_len)) ||
        (config_is_set(cfg, "validation", "seq_len") &&
         positive_int(cfg, "validation", "seq_len", &v->seq_len, err, err_len)) ||
        positive_int(cfg, "validation", "freq", &v->freq, err, err_len) ||
        int_in(cfg, "validation", "steps", -1, 1000000000, &v->steps, err, err_len))
        return -1;
    if (v->steps == 0) {
        snprintf(err, err_len, "[validation] steps = 0: expected -1 (all the data) or a count");
        return -1;
    }
    return 0;
}

static int read_metrics(train_options *o, const flame_config *cfg, char *err, size_t err_len)
{
    if (positive_int(cfg, "metrics", "log_freq", &o->log_freq, err, err_len))
        return -1;
    if (!config_get_bool(cfg, "metrics", "enable_tensorboard"))
        return 0;
    const char *folder = config_get_string(cfg, "metrics", "save_tb_folder");
    if (!folder[0] || strstr(folder, "..")) {
        snprintf(err, err_len, "[metrics] save_tb_folder = \"%s\": expected a folder name inside "
                               "job.dump_folder", folder);
        return -1;
    }
    snprintf(o->tensorboard, sizeof o->tensorboard, "%s/%s", o->dump_folder, folder);
    return 0;
}

/* tensor, pipeline and context parallelism are not built: a degree above 1 is
 * refused */
static int not_built(const flame_config *cfg, const char *section, const char *key, char *err, size_t err_len)
{
    int degree;
    if (int_in(cfg, section, key, 1, 1000000, &degree, err, err_len))
        return -1;
    if (degree > 1) {
        snprintf(err, err_len, "[%s] %s = %d: not built (flame runs data parallel only: leave it at 1)", section,
                 key, degree);
        return -1;
    }
    return 0;
}

/* the data-parallel degrees (checked against the ranks when they are known) and the timeouts */
static int read_parallel(train_options *o, const flame_config *cfg, char *err, size_t err_len)
{
    parallel_options *p = &o->parallel;
    if (not_built(cfg, "training", "tensor_parallel_degree", err, err_len) ||
        not_built(cfg, "experimental", "pipeline_parallel_degree", err, err_len) ||
        not_built(cfg, "experimental", "context_parallel_degree", err, err_len))
        return -1;
    int init_s, train_s;
    if (int_in(cfg, "training", "data_parallel_replicate_degree", 1, 65536, &p->replicate, err, err_len) ||
        int_in(cfg, "training", "data_parallel_shard_degree", -1, 65536, &p->shard, err, err_len) ||
        positive_int(cfg, "comm", "init_timeout_seconds", &init_s, err, err_len) ||
        positive_int(cfg, "comm", "train_timeout_seconds", &train_s, err, err_len) ||
        float_in(cfg, "comm", "bucket_mb", 0, 1e6, &p->bucket_mb, err, err_len))
        return -1;
    if (p->shard == 0) {
        snprintf(err, err_len, "[training] data_parallel_shard_degree = 0: expected -1 (all the ranks) or 1 and "
                 "more");
        return -1;
    }
    p->init_timeout_s = init_s, p->timeout_s = train_s;
    return 0;
}

int train_options_read(train_options *o, const flame_config *cfg, int need_data, char *err,
                       size_t err_len)
{
    memset(o, 0, sizeof *o);
    o->dump_folder = config_get_string(cfg, "job", "dump_folder");
    o->tokenizer = config_get_string(cfg, "model", "tokenizer_path");
    if (read_training(o, cfg, need_data, err, err_len) || read_optimizer(o, cfg, err, err_len) ||
        read_checkpoint(o, cfg, err, err_len) ||
        read_schedule(o, cfg, err, err_len) || read_validation(o, cfg, err, err_len) ||
        read_metrics(o, cfg, err, err_len) || read_parallel(o, cfg, err, err_len))
        return -1;
    return 0;
}
