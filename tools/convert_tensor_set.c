/* The tensors of a file or folder: one safetensors file, a flame checkpoint
 * (model + optimizer), or a Hugging Face folder, whole or in shards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "convert.h"
#include "errors.h"

static int is_file(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static int add_file(tensor_set *ts, const char *path, char *err, size_t err_len)
{
    safetensors *files = realloc(ts->files, (size_t)(ts->n + 1) * sizeof *files);
    if (!files) {
        snprintf(err, err_len, "%s: out of memory", path);
        return FLAME_EXIT_RUNTIME;
    }
    ts->files = files;
    if (safetensors_open(path, &ts->files[ts->n], err, err_len))
        return FLAME_EXIT_DATA;
    ts->n++;
    return FLAME_EXIT_OK;
}

static int already_open(const tensor_set *ts, const char *path)
{
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->files[i].path, path) == 0)
            return 1;
    return 0;
}

/* every tensor the index names must be in the shard it names */
static int check_listed(const tensor_set *ts, const char *index, const char *name,
                        const char *shard_path, char *err, size_t err_len)
{
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->files[i].path, shard_path) == 0 && safetensors_find(&ts->files[i], name))
            return FLAME_EXIT_OK;
    snprintf(err, err_len, "%s: tensor %s is not in its shard %s", index, name, shard_path);
    return FLAME_EXIT_DATA;
}

static int open_shards(const char *dir, const char *index, tensor_set *ts, char *err,
                       size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_load_file(index, 0, &jerr);
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        snprintf(err, err_len, "%s:%d: %s", index, jerr.line,
                 root ? "no \"weight_map\" object" : jerr.text);
        json_decref(root);
        return FLAME_EXIT_DATA;
    }
    const char *name;
    json_t *file;
    char path[CONVERT_PATH_LEN];
    int rc = FLAME_EXIT_OK;
    json_object_foreach(map, name, file) {
        const char *shard = json_string_value(file);
        if (!shard || !*shard || shard[0] == '/' || strstr(shard, "..")) {
            snprintf(err, err_len, "%s: tensor %s: the shard must be a file name in the folder",
                     index, name);
            rc = FLAME_EXIT_DATA;
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, shard);
        if (!already_open(ts, path) && !is_file(path)) {
            snprintf(err, err_len, "%s: missing shard %s (listed for %s)", index, shard, name);
            rc = FLAME_EXIT_DATA;
            break;
        }
        if (!already_open(ts, path) && (rc = add_file(ts, path, err, err_len)))
            break;
        if ((rc = check_listed(ts, index, name, path, err, err_len)))
            break;
    }
    json_decref(root);
    return rc;
}

static int open_folder(const char *dir, tensor_set *ts, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (is_file(path))
        return open_shards(dir, path, ts, err, err_len);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!is_file(path)) {
        snprintf(err, err_len, "%s: no model.safetensors or model.safetensors.index.json", dir);
        return FLAME_EXIT_CONFIG;
    }
    int rc = add_file(ts, path, err, err_len);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    if (rc == FLAME_EXIT_OK && is_file(path))
        rc = add_file(ts, path, err, err_len);
    return rc;
}

int tensor_set_open(const char *path, tensor_set *ts, char *err, size_t err_len)
{
    memset(ts, 0, sizeof *ts);
    struct stat s;
    if (stat(path, &s) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return FLAME_EXIT_CONFIG;
    }
    int rc = S_ISDIR(s.st_mode) ? open_folder(path, ts, err, err_len) : add_file(ts, path, err, err_len);
    if (rc != FLAME_EXIT_OK)
        tensor_set_close(ts);
    return rc;
}

void tensor_set_close(tensor_set *ts)
{
    for (int i = 0; i < ts->n; i++)
        safetensors_close(&ts->files[i]);
    free(ts->files);
    memset(ts, 0, sizeof *ts);
}
