#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

enum { PATH_LEN = 4096 };

static const char *moment_suffix[2] = {"exp_avg", "exp_avg_sq"};

/* ---- folders ---- */

static int ensure_folder(const char *path, char *err, size_t err_len)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "%s: cannot create folder: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* removes a checkpoint folder: plain files only, then the folder */
static void remove_folder(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir)
        return;
    struct dirent *e;
    char file[PATH_LEN];
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            unlink(file);
        }
    closedir(dir);
    rmdir(path);
}

static void sync_folder(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static const char *const checkpoint_files[] = {"model.safetensors", "optimizer.safetensors",
                                               "trainer.json"};

/* N of a folder named step-N exactly (decimal, no sign, no leading zero, in int
 * range: the name checkpoint_save gives step N), or -1 */
static int step_of_name(const char *name)
{
    if (strncmp(name, "step-", 5) != 0)
        return -1;
    const char *digits = name + 5;
    size_t len = strlen(digits);
    if (len == 0 || len > 10 || strspn(digits, "0123456789") != len ||
        (digits[0] == '0' && len > 1))
        return -1;
    long long step = strtoll(digits, NULL, 10);
    return step <= INT_MAX ? (int)step : -1;
}

/* the first file of a checkpoint that folder lacks, or NULL when it is whole */
static const char *missing_file(const char *folder)
{
    for (size_t i = 0; i < sizeof checkpoint_files / sizeof *checkpoint_files; i++) {
        char path[PATH_LEN + 32];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", folder, checkpoint_files[i]);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            return checkpoint_files[i];
    }
    return NULL;
}

/* Step numbers of the whole checkpoints, ascending; returns the count. Other
 * step-* entries are passed over, each with a line on stderr when who names the
 * program (a copy, a folder emptied by hand: never a reason to stop a resume). */
static int list_steps(const char *root, int **steps, const char *who)
{
    *steps = NULL;
    DIR *dir = opendir(root);
    if (!dir)
        return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (strncmp(e->d_name, "step-", 5) != 0)
            continue; /* ., .., .step-N.tmp of a killed write */
        char folder[PATH_LEN];
        snprintf(folder, sizeof folder, "%s/%s", root, e->d_name);
        int step = step_of_name(e->d_name);
        const char *missing = step < 0 ? NULL : missing_file(folder);
        if (step < 0 || missing) {
            if (who && missing)
                fprintf(stderr, "%s: note: %s: passed over: not a whole checkpoint (no %s)\n", who,
                        folder, missing);
            else if (who)
                fprintf(stderr, "%s: note: %s: passed over: not named step-N (N from 0 to %d, "
                        "without leading zeros)\n", who, folder, INT_MAX);
            continue;
        }
        if (n == cap)
            *steps = realloc(*steps, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **steps);
        (*steps)[n++] = step;
    }
    closedir(dir);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of entries */
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            int t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return n;
}

/* ---- saving ---- */

static safetensors_desc tensor_desc(const flame_param_spec *s, const char *name)
{
    safetensors_desc d = {name, ST_F32, s->ndim, {0}};
    for (int i = 0; i < s->ndim; i++)
        d.shape[i] = s->shape[i];
    return d;
}

/* buffers: pointers into backend memory, one per tensor of the file, in order */
static int write_tensors(const char *path, const param_store *ps, int copies,
                         const float *const *buffers, char *err, size_t err_len)
{
    int n = ps->n * copies;
    safetensors_desc *descs = calloc((size_t)n, sizeof *descs);
    char (*names)[FLAME_NAME_MAX + 16] = calloc((size_t)n, sizeof *names);
    for (int c = 0; c < copies; c++)
        for (int i = 0; i < ps->n; i++) {
            int k = c * ps->n + i;
            if (copies == 1)
                snprintf(names[k], sizeof names[k], "%s", ps->specs[i].name);
            else
                snprintf(names[k], sizeof names[k], "%s.%s", ps->specs[i].name, moment_suffix[c]);
            descs[k] = tensor_desc(&ps->specs[i], names[k]);
        }
    safetensors_kv meta[] = {{"format", "pt"}};
    safetensors_writer w;
    int rc = safetensors_writer_begin(&w, path, descs, n, meta, 1, err, err_len);
    float *host = malloc(ps->total ? ps->total * sizeof *host : 1);
    for (int k = 0; rc == 0 && k < n; k++) {
        size_t bytes = ps->numel[k % ps->n] * sizeof(float);
        ps->ops->download(host, buffers[k], bytes);
        rc = safetensors_writer_write(&w, host, bytes, err, err_len);
    }
    if (rc == 0)
        rc = safetensors_writer_finish(&w, err, err_len);
    else
        safetensors_writer_abort(&w);
    free(host);
    free(names);
    free(descs);
    return rc;
}

static int write_model(const char *folder, const param_store *ps, char *err, size_t err_len)
{
    char path[PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", folder);
    return write_tensors(path, ps, 1, (const float *const *)ps->value_ptrs, err, err_len);
}

static int write_optimizer(const char *folder, const param_store *ps, char *err, size_t err_len)
{
    char path[PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", folder);
    const float **buffers = malloc(2 * (size_t)ps->n * sizeof *buffers);
    for (int i = 0; i < ps->n; i++) {
        buffers[i] = ps->m + ps->offset[i];
        buffers[ps->n + i] = ps->v + ps->offset[i];
    }
    int rc = write_tensors(path, ps, 2, buffers, err, err_len);
    free(buffers);
    return rc;
}

static int write_trainer_json(const char *folder, const trainer_state *st, char *err,
                              size_t err_len)
{
    char path[PATH_LEN + 32], rng_hex[17];
    snprintf(path, sizeof path, "%s/trainer.json", folder);
    snprintf(rng_hex, sizeof rng_hex, "%016llx", (unsigned long long)st->rng_state);
    json_t *root = json_pack("{s:i, s:s, s:i, s:s, s:O}", "step", st->step, "rng_state", rng_hex,
                             "skipped", st->skipped, "config_hash", st->config_hash,
                             "data_cursor", st->data_cursor ? st->data_cursor : json_null());
    FILE *f = fopen(path, "w");
    int rc = f && json_dumpf(root, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF &&
             fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    json_decref(root);
    if (rc)
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
    return rc;
}

static void prune(const char *root, int keep_latest_k)
{
    int *steps, n = list_steps(root, &steps, NULL);
    for (int i = 0; keep_latest_k > 0 && i < n - keep_latest_k; i++) {
        char path[PATH_LEN];
        snprintf(path, sizeof path, "%s/step-%d", root, steps[i]);
        remove_folder(path);
    }
    free(steps);
}

int checkpoint_save(const char *root, const param_store *ps, const trainer_state *st,
                    int keep_latest_k, char *err, size_t err_len)
{
    char tmp[PATH_LEN], final[PATH_LEN];
    snprintf(tmp, sizeof tmp, "%s/.step-%d.tmp", root, st->step);
    snprintf(final, sizeof final, "%s/step-%d", root, st->step);
    if (ensure_folder(root, err, err_len))
        return -1;
    remove_folder(tmp); /* left by a run killed while writing */
    if (ensure_folder(tmp, err, err_len) || write_model(tmp, ps, err, err_len) ||
        write_optimizer(tmp, ps, err, err_len) || write_trainer_json(tmp, st, err, err_len)) {
        remove_folder(tmp);
        return -1;
    }
    sync_folder(tmp);
    remove_folder(final); /* the same step saved again */
    if (rename(tmp, final) != 0) {
        snprintf(err, err_len, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        remove_folder(tmp);
        return -1;
    }
    sync_folder(root);
    prune(root, keep_latest_k);
    return 0;
}

/* ---- loading ---- */

int checkpoint_find(const char *root, int load_step, const char *who, char *err, size_t err_len)
{
    if (load_step >= 0) { /* named: loaded or refused as it is, never passed over */
        char folder[PATH_LEN];
        struct stat sb;
        snprintf(folder, sizeof folder, "%s/step-%d", root, load_step);
        if (stat(folder, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            snprintf(err, err_len, "[checkpoint] load_step = %d: there is no %s", load_step,
                     folder);
            return -2;
        }
        return load_step;
    }
    int *steps, n = list_steps(root, &steps, who);
    int found = n > 0 ? steps[n - 1] : -1;
    free(steps);
    return found;
}

static int check_shape(const safetensors *st, const safetensors_tensor *t,
                       const flame_param_spec *spec, char *err, size_t err_len)
{
    int same = t->dtype == ST_F32 && t->ndim == spec->ndim;
    for (int d = 0; same && d < spec->ndim; d++)
        same = t->shape[d] == spec->shape[d];
    if (!same) {
        char want[96], got[96];
        snprintf(err, err_len, "%s: tensor %s is %s %s, the model needs F32 %s", st->path,
                 t->name, safetensors_dtype_name(t->dtype),
                 safetensors_shape_text(got, sizeof got, t->ndim, t->shape),
                 safetensors_shape_text(want, sizeof want, spec->ndim, spec->shape));
        return -1;
    }
    return 0;
}

/* Finds the tensors of the file in the order of the model's, each with its
 * dtype and shape, and no other. Returns 0, or -1 with err. */
static int expected_tensors(const safetensors *st, const param_store *ps, int copies,
                            const safetensors_tensor **found, char *err, size_t err_len)
{
    int n = ps->n * copies;
    for (int k = 0; k < n; k++) {
        const flame_param_spec *spec = &ps->specs[k % ps->n];
        char name[FLAME_NAME_MAX + 16];
        if (copies == 1)
            snprintf(name, sizeof name, "%s", spec->name);
        else
            snprintf(name, sizeof name, "%s.%s", spec->name, moment_suffix[k / ps->n]);
        if (!(found[k] = safetensors_find(st, name))) {
            snprintf(err, err_len, "%s: no tensor %s", st->path, name);
            return -1;
        }
        if (check_shape(st, found[k], spec, err, err_len))
            return -1;
    }
    if (st->n != n) {
        snprintf(err, err_len, "%s: holds %d tensors, the model has %d", st->path, st->n, n);
        return -1;
    }
    return 0;
}

/* The data section must be exactly the tensors' bytes: a header length field
 * off by a few bytes still parses (the JSON is padded with spaces) but shifts
 * every tensor. The reader has checked that no two tensors overlap. */
static int check_data_section(const safetensors *st, const safetensors_tensor *const *found,
                              int n, char *err, size_t err_len)
{
    uint64_t total = 0, data_len = st->file_size - st->data_start;
    for (int k = 0; k < n; k++)
        total += found[k]->nbytes;
    if (data_len != total) {
        snprintf(err, err_len,
                 "%s: the header length field (%llu) leaves %llu bytes of data, the tensors "
                 "take %llu",
                 st->path, (unsigned long long)st->header_len, (unsigned long long)data_len,
                 (unsigned long long)total);
        return -1;
    }
    return 0;
}

/* a weight or moment that is not finite would end the run later as "diverged" */
static int check_finite(const safetensors *st, const safetensors_tensor *t, const float *x,
                        char *err, size_t err_len)
{
    for (uint64_t i = 0; i < t->numel; i++)
        if (!isfinite(x[i])) {
            snprintf(err, err_len, "%s: tensor %s holds %g at index %llu", st->path, t->name,
                     x[i], (unsigned long long)i);
            return -1;
        }
    return 0;
}

/* Reads each expected tensor by name into backend memory. Returns 0, -1 for a
 * tensor missing, extra or of another shape, -2 for a damaged file. */
static int read_tensors(const char *path, const param_store *ps, int copies, float *const *buffers,
                        char *err, size_t err_len)
{
    safetensors st;
    if (safetensors_open(path, &st, err, err_len))
        return -2;
    int n = ps->n * copies;
    const safetensors_tensor **found = calloc((size_t)n, sizeof *found);
    float *host = malloc(ps->total ? ps->total * sizeof *host : 1);
    int rc = expected_tensors(&st, ps, copies, found, err, err_len);
    if (rc == 0 && check_data_section(&st, found, n, err, err_len))
        rc = -2;
    for (int k = 0; rc == 0 && k < n; k++) {
        if (safetensors_read(&st, found[k], host, found[k]->nbytes, err, err_len) ||
            check_finite(&st, found[k], host, err, err_len))
            rc = -2;
        else
            ps->ops->upload(buffers[k], host, found[k]->nbytes);
    }
    free(host);
    free(found);
    safetensors_close(&st);
    return rc;
}

/* one line naming the file and the field */
static void bad_field(char *err, size_t err_len, const char *path, const char *field,
                      const char *fmt, ...)
{
    int len = snprintf(err, err_len, "%s: %s ", path, field);
    va_list ap;
    va_start(ap, fmt);
    if (len >= 0 && (size_t)len < err_len)
        vsnprintf(err + len, err_len - (size_t)len, fmt, ap);
    va_end(ap);
}

static int is_hex16(const char *s)
{
    return strlen(s) == 16 && strspn(s, "0123456789abcdefABCDEF") == 16;
}

/* Reads trainer.json of step-N, every field checked: a resume believes them all
 * (the step decides which data and metrics rows come next). */
static int read_trainer_json(const char *folder, int step, trainer_state *st, char *err,
                             size_t err_len)
{
    char path[PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/trainer.json", folder);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(err, err_len, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return -2;
    }
    const char *rng_hex = NULL, *hash = NULL;
    json_int_t file_step, skipped;
    json_t *cursor = NULL;
    int rc = -2;
    if (json_unpack_ex(root, &jerr, 0, "{s:I, s:s, s:I, s:s, s:o}", "step", &file_step,
                       "rng_state", &rng_hex, "skipped", &skipped, "config_hash", &hash,
                       "data_cursor", &cursor) != 0)
        snprintf(err, err_len, "%s: %s", path, jerr.text);
    else if (file_step != step)
        bad_field(err, err_len, path, "step", "is %lld in the folder of step %d",
                  (long long)file_step, step);
    else if (!is_hex16(rng_hex))
        bad_field(err, err_len, path, "rng_state", "\"%.40s\" is not 16 hexadecimal digits",
                  rng_hex);
    else if (skipped < 0 || skipped > step)
        bad_field(err, err_len, path, "skipped", "is %lld, not between 0 and the step, %d",
                  (long long)skipped, step);
    else if (!json_is_null(cursor) && !json_is_object(cursor))
        bad_field(err, err_len, path, "data_cursor", "is neither null nor an object");
    else
        rc = 0;
    if (rc == 0) {
        st->step = step;
        st->skipped = (int)skipped;
        st->rng_state = strtoull(rng_hex, NULL, 16);
        snprintf(st->config_hash, sizeof st->config_hash, "%s", hash);
        json_decref(st->data_cursor);
        st->data_cursor = json_incref(cursor);
    }
    json_decref(root);
    return rc;
}

int checkpoint_load(const char *root, int step, param_store *ps, trainer_state *st,
                    char *err, size_t err_len)
{
    char folder[PATH_LEN], path[PATH_LEN + 32];
    snprintf(folder, sizeof folder, "%s/step-%d", root, step);
    snprintf(path, sizeof path, "%s/model.safetensors", folder);
    int rc = read_tensors(path, ps, 1, ps->value_ptrs, err, err_len);
    if (rc)
        return rc;
    params_sync_compute(ps);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", folder);
    float **moments = malloc(2 * (size_t)ps->n * sizeof *moments);
    for (int i = 0; i < ps->n; i++) {
        moments[i] = ps->m + ps->offset[i];
        moments[ps->n + i] = ps->v + ps->offset[i];
    }
    rc = read_tensors(path, ps, 2, moments, err, err_len);
    free(moments);
    return rc ? rc : read_trainer_json(folder, step, st, err, err_len);
}
