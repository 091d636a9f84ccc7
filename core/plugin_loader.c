#include "plugin_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* $FLAME_PLUGIN_PATH, then the install folder, then the build tree */
static int find_plugin(const char *name, char *path, size_t path_len)
{
    const char *env = getenv("FLAME_PLUGIN_PATH");
    if (env) {
        char folders[4096];
        snprintf(folders, sizeof folders, "%s", env);
        char *save = NULL;
        for (char *dir = strtok_r(folders, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
            if (try_folder(dir, name, path, path_len))
                return 1;
    }
    if (try_folder(FLAME_PLUGIN_DIR, name, path, path_len))
        return 1;
    char build_folder[4096];
    snprintf(build_folder, sizeof build_folder, "%s/plugins/%s/.libs", FLAME_BUILD_DIR, name);
    return try_folder(build_folder, name, path, path_len);
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
    if (plugin->abi_version != FLAME_ABI_VERSION) {
        snprintf(err, err_len,
                 "%s: plugin ABI version %u, but this flame speaks version %u: rebuild the plugin "
                 "against this flame's headers",
                 path, plugin->abi_version, FLAME_ABI_VERSION);
        dlclose(handle);
        return NULL;
    }
    return plugin; /* the handle stays open for the life of the process */
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
    } else if (!find_plugin(arch, path, path_len)) {
        snprintf(err, err_len,
                 "plugin '%s' not found: looked for %s.so in $FLAME_PLUGIN_PATH, %s and the build "
                 "tree; pass --arch PATH.so to load a file",
                 arch, arch, FLAME_PLUGIN_DIR);
        return NULL;
    }
    return open_plugin(path, err, err_len);
}
