#include "plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

/* the vtable size of ABI 5.0: a plugin built against 5.0 ends at decode_step */
#define PLUGIN_SIZE_5_0 (offsetof(flame_plugin, decode_step) + sizeof(void (*)(void)))

static int is_path(const char *arch)
{
    size_t n = strlen(arch);
    return strchr(arch, '/') != NULL || (n > 3 && strcmp(arch + n - 3, ".so") == 0);
}

static int try_folder(const char *folder, const char *name, char *path, size_t path_len)
{
    if (!folder || !*folder)
        return 0;
    snprintf(path, path_len, "%s/%s.so", folder, name);
    return access(path, F_OK) == 0;
}

/* the folders bare names are searched in, in order, until fn returns 1: each
 * of $FLAME_PLUGIN_PATH, the install folder, then the build tree's
 * plugins/NAME/.libs (every plugin's when name is NULL) */
typedef int (*folder_fn)(const char *folder, void *ctx);

static int build_tree_folders(const char *name, folder_fn fn, void *ctx)
{
    char plugins[4096], libs[4400];
    snprintf(plugins, sizeof plugins, "%s/plugins", FLAME_BUILD_DIR);
    if (name) {
        snprintf(libs, sizeof libs, "%s/%s/.libs", plugins, name);
        return fn(libs, ctx);
    }
    DIR *dir = opendir(plugins);
    if (!dir)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(dir));) {
        snprintf(libs, sizeof libs, "%s/%s/.libs", plugins, e->d_name);
        found = e->d_name[0] != '.' && fn(libs, ctx);
    }
    closedir(dir);
    return found;
}

static int each_folder(const char *name, folder_fn fn, void *ctx)
{
    const char *env = getenv("FLAME_PLUGIN_PATH");
    if (env) {
        char folders[4096];
        snprintf(folders, sizeof folders, "%s", env);
        char *save = NULL;
        for (char *dir = strtok_r(folders, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
            if (fn(dir, ctx))
                return 1;
    }
    return fn(FLAME_PLUGIN_DIR, ctx) || build_tree_folders(name, fn, ctx);
}

typedef struct name_search {
    const char *name;
    char *path;
    size_t path_len;
} name_search;

static int folder_has_name(const char *folder, void *ctx)
{
    name_search *s = ctx;
    return try_folder(folder, s->name, s->path, s->path_len);
}

/* ---- what a vtable declares, checked before anything of it is used ---- */

static int bad_text(const char *s, size_t max)
{
    if (!s || !*s || strnlen(s, max) == max)
        return 1;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static const char *check_options(const flame_plugin *p)
{
    if (p->n_options < 0 || p->n_options > 4096 || (p->n_options > 0 && !p->options))
        return "options / n_options do not describe an array";
    static char why[300];
    for (int i = 0; i < p->n_options; i++) {
        const char *problem = config_option_problem(&p->options[i]);
        if (problem) {
            snprintf(why, sizeof why, "option %d (%.64s): %s", i,
                     p->options[i].key && !bad_text(p->options[i].key, 64) ? p->options[i].key : "?",
                     problem);
            return why;
        }
    }
    return NULL;
}

static const char *check_formats(const flame_plugin *p)
{
    if (p->n_hf_formats < 0 || p->n_hf_formats > 64 || (p->n_hf_formats > 0 && !p->hf_formats))
        return "hf_formats / n_hf_formats do not describe an array";
    for (int i = 0; i < p->n_hf_formats; i++) {
        const flame_hf_format *f = &p->hf_formats[i];
        if (bad_text(f->model_type, 128) || bad_text(f->architecture, 128))
            return "a format's model_type or architecture is not usable";
        if (f->n_keys < 0 || (f->n_keys > 0 && !f->keys) || f->n_tensors < 0 ||
            (f->n_tensors > 0 && !f->tensors))
            return "a format's keys or tensors do not describe arrays";
        for (int k = 0; k < f->n_keys; k++)
            if (bad_text(f->keys[k].hf, 256))
                return "a format's config key is not usable";
        for (int t = 0; t < f->n_tensors; t++)
            if (bad_text(f->tensors[t].hf, 256))
                return "a format's tensor name is not usable";
        if (i == 0 && f->n_tensors > 0)
            return "hf_formats[0] renames tensors (the plugin's own format keeps its names)";
    }
    if (p->n_hf_transposed < 0 || p->n_hf_transposed > 256 || (p->n_hf_transposed > 0 && !p->hf_transposed))
        return "hf_transposed / n_hf_transposed do not describe an array";
    for (int i = 0; i < p->n_hf_transposed; i++) {
        const flame_hf_transposed *t = &p->hf_transposed[i];
        if (bad_text(t->model_type, 128) || bad_text(t->hf, 256))
            return "a transposed tensor's model_type or name is not usable";
        if (!plugin_hf_format(p, t->model_type))
            return "a transposed tensor names a model_type of no format";
    }
    return NULL;
}

/* the first field the vtable gets wrong, or NULL */
static const char *check_vtable(const flame_plugin *p)
{
    if (bad_text(p->name, 64))
        return "name is not usable";
    const char *why = check_options(p);
    if (!why)
        why = check_formats(p);
    if (!why && (!p->create || !p->destroy || !p->n_params || !p->param || !p->bind ||
                 !p->reserve || !p->forward || !p->backward || !p->flops_per_token ||
                 !p->vocab_size))
        why = "a required function (create, destroy, n_params, param, bind, reserve, forward, "
              "backward, flops_per_token, vocab_size) is NULL";
    if (!why && !p->decode_state_size != !p->decode_forward)
        why = "decode_state_size and decode_forward: one is set, the other NULL";
    return why;
}

/* The core's own copy of the vtable: as long as this flame's, the entries past
 * the plugin's size NULL. NULL with err when it cannot be used. */
static const flame_plugin *adopt_vtable(const char *path, const flame_plugin *plugin, char *err,
                                        size_t err_len)
{
    if (plugin->abi_version != FLAME_ABI_VERSION) {
        snprintf(err, err_len,
                 "%s: plugin ABI version %u, but this flame speaks version %u (%u.%u): rebuild "
                 "the plugin against this flame's headers",
                 path, plugin->abi_version, FLAME_ABI_VERSION, FLAME_ABI_VERSION, FLAME_ABI_MINOR);
        return NULL;
    }
    if (plugin->size < PLUGIN_SIZE_5_0) {
        snprintf(err, err_len, "%s: plugin vtable of %u bytes, shorter than ABI %u.0's %zu", path,
                 plugin->size, FLAME_ABI_VERSION, (size_t)PLUGIN_SIZE_5_0);
        return NULL;
    }
    flame_plugin *copy = calloc(1, sizeof *copy);
    memcpy(copy, plugin, plugin->size < sizeof *copy ? plugin->size : sizeof *copy);
    if (!copy->description)
        copy->description = "";
    const char *why = check_vtable(copy);
    if (why) {
        snprintf(err, err_len, "%s: plugin vtable: %s", path, why);
        free(copy);
        return NULL;
    }
    return copy; /* kept, like the library, for the life of the process */
}

static const flame_plugin *open_plugin(const char *path, char *err, size_t err_len)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(err, err_len, "%s: cannot load plugin: %s", path, dlerror());
        return NULL;
    }
    dlerror();
    flame_plugin_entry_fn entry = (flame_plugin_entry_fn)dlsym(handle, FLAME_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, err_len, "%s: not a flame plugin: no symbol %s", path,
                 FLAME_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return NULL;
    }
    const flame_plugin *plugin = entry();
    if (!plugin) {
        snprintf(err, err_len, "%s: %s() returned NULL", path, FLAME_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return NULL;
    }
    const flame_plugin *copy = adopt_vtable(path, plugin, err, err_len);
    if (!copy)
        dlclose(handle);
    return copy; /* the handle stays open for the life of the process */
}

const flame_plugin *plugin_load(const char *arch, char *path, size_t path_len,
                                char *err, size_t err_len)
{
    if (is_path(arch)) {
        /* dlopen searches the library path for a name without a slash */
        snprintf(path, path_len, "%s%s", strchr(arch, '/') ? "" : "./", arch);
        if (access(path, F_OK) != 0) {
            snprintf(err, err_len, "%s: plugin not found", arch);
            return NULL;
        }
    } else {
        name_search s = {arch, path, path_len};
        if (!each_folder(arch, folder_has_name, &s)) {
            snprintf(err, err_len,
                     "plugin '%s' not found: looked for %s.so in $FLAME_PLUGIN_PATH, %s and the "
                     "build tree; pass --arch PATH.so to load a file",
                     arch, arch, FLAME_PLUGIN_DIR);
            return NULL;
        }
    }
    return open_plugin(path, err, err_len);
}

const flame_hf_format *plugin_hf_format(const flame_plugin *plugin, const char *model_type)
{
    for (int i = 0; i < plugin->n_hf_formats; i++)
        if (strcmp(plugin->hf_formats[i].model_type, model_type) == 0)
            return &plugin->hf_formats[i];
    return NULL;
}

/* ---- the plugin that reads a model type ---- */

typedef struct type_search {
    const char *model_type;
    const flame_plugin *found;
    char *arch;
    size_t arch_len;
} type_search;

/* whether the plugin file folder/entry reads the model type; sets the search's result */
static int file_reads_type(type_search *s, const char *folder, const char *entry)
{
    size_t n = strlen(entry);
    if (n <= 3 || strcmp(entry + n - 3, ".so") != 0)
        return 0;
    char path[4400], err[4600];
    snprintf(path, sizeof path, "%s/%s", folder, entry);
    const flame_plugin *p = open_plugin(path, err, sizeof err);
    if (!p || !plugin_hf_format(p, s->model_type))
        return 0;
    s->found = p;
    snprintf(s->arch, s->arch_len, "%.*s", (int)(n - 3), entry);
    return 1;
}

static int folder_reads_type(const char *folder, void *ctx)
{
    DIR *dir = opendir(folder);
    if (!dir)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(dir));)
        found = file_reads_type(ctx, folder, e->d_name);
    closedir(dir);
    return found;
}

const flame_plugin *plugin_for_model_type(const char *model_type, char *arch, size_t arch_len,
                                          char *err, size_t err_len)
{
    type_search s = {model_type, NULL, arch, arch_len};
    if (!each_folder(NULL, folder_reads_type, &s))
        snprintf(err, err_len,
                 "no plugin reads model_type \"%s\" (looked in $FLAME_PLUGIN_PATH, %s and the "
                 "build tree); pass --arch NAME",
                 model_type, FLAME_PLUGIN_DIR);
    return s.found;
}
