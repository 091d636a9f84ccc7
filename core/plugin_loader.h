/* Finds and loads an architecture plugin, checking its ABI version. */
#ifndef FLAME_PLUGIN_LOADER_H
#define FLAME_PLUGIN_LOADER_H

#include <stddef.h>

#include <flame/plugin.h>

/* arch is a path (contains '/' or ends in .so) or a bare name searched in
 * $FLAME_PLUGIN_PATH (colon-separated folders), the installed plugin folder,
 * then the build tree. Returns the vtable, or NULL with one line in err (the
 * caller exits with FLAME_EXIT_PLUGIN). path receives the file loaded. */
const flame_plugin *plugin_load(const char *arch, char *path, size_t path_len,
                                char *err, size_t err_len);

#endif
