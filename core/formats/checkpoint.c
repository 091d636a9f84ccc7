#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* step numbers of the complete checkpoints (step-N folders), ascending; returns the count */
static int list_steps(const char *root, int **steps)
{
    *steps = NULL;
    DIR *dir = opendir(root);
    if (!dir)
        return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        char *end;
        if (strncmp(e->d_name, "step-", 5) != 0)
            continue;
        long step = strtol(e->d_name + 5, &end, 10);
        if (*end != '\0' || end == e->d_name + 5 || step < 0)
            continue;
        if (n == cap)
            *steps = realloc(*steps, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **steps);
        (*steps)[n++] = (int)step;
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
    int *steps, n = list_steps(root, &steps);
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

int checkpoint_find(const char *root, int load_step, char *err, size_t err_len)
{
    int *steps, n = list_steps(root, &steps), found = -1;
    for (int i = 0; i < n; i++)
        if (load_step < 0 || steps[i] == load_step)
            found = steps[i];
    free(steps);
    if (found < 0 && load_step >= 0) {
        snprintf(err, err_len, "[checkpoint] load_step = %d: there is no %s/step-%d", load_step,
                 root, load_step);
        return -2;
    }
    return found;
}

static int check_shape(const safetensors *st, const safetensors_tensor *t,
                       const flame_param_spec *spec, char *err, size_t err_len)
{
    int same = t->dtype == ST_F32 && t->ndim == spec->ndim;
    for (int d = 0; same && d < spec->ndim; d++)
        same = t->shape[d] == spec->shape[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (int d = 0; d < spec->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                     (long long)spec->shape[d]);
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        snprintf(err, err_len, "%s: tensor %s is %s [%s], the model needs F32 [%s]", st->path,
                 t->name, safetensors_dtype_name(t->dtype), got, want);
        return -1;
    }
    return 0;
}

/* Reads each expected tensor by name into backend memory. Returns 0, -1 for a
 * tensor missing or of another shape, -2 for a damaged file. */
static int read_tensors(const char *path, const param_store *ps, int copies, float *const *buffers,
                        char *err, size_t err_len)
{
    safetensors st;
    if (safetensors_open(path, &st, err, err_len))
        return -2;
    float *host = malloc(ps->total ? ps->total * sizeof *host : 1);
    int rc = 0;
    for (int k = 0; rc == 0 && k < ps->n * copies; k++) {
        const flame_param_spec *spec = &ps->specs[k % ps->n];
        char name[FLAME_NAME_MAX + 16];
        if (copies == 1)
            snprintf(name, sizeof name, "%s", spec->name);
        else
            snprintf(name, sizeof name, "%s.%s", spec->name, moment_suffix[k / ps->n]);
        const safetensors_tensor *t = safetensors_find(&st, name);
        if (!t) {
            snprintf(err, err_len, "%s: no tensor %s", path, name);
            rc = -1;
        } else if ((rc = check_shape(&st, t, spec, err, err_len)) == 0) {
            if (safetensors_read(&st, t, host, t->nbytes, err, err_len))
                rc = -2;
            else
                ps->ops->upload(buffers[k], host, t->nbytes);
        }
    }
    free(host);
    safetensors_close(&st);
    return rc;
}

static int read_trainer_json(const char *folder, trainer_state *st, char *err, size_t err_len)
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
    json_t *cursor = NULL;
    if (json_unpack_ex(root, &jerr, 0, "{s:i, s:s, s:i, s:s, s:o}", "step", &st->step,
                       "rng_state", &rng_hex, "skipped", &st->skipped, "config_hash", &hash,
                       "data_cursor", &cursor) != 0) {
        snprintf(err, err_len, "%s: %s", path, jerr.text);
        json_decref(root);
        return -2;
    }
    st->rng_state = strtoull(rng_hex, NULL, 16);
    snprintf(st->config_hash, sizeof st->config_hash, "%s", hash);
    json_decref(st->data_cursor);
    st->data_cursor = json_incref(cursor);
    json_decref(root);
    return 0;
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
    return rc ? rc : read_trainer_json(folder, st, err, err_len);
}
