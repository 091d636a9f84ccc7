/* Finds and loads an architecture plugin, checking its ABI version and what
 * its vtable declares. */
#ifndef FLAME_PLUGIN_LOADER_H
#define FLAME_PLUGIN_LOADER_H

#include <stddef.h>

#include <flame/plugin.h>

/* arch is a path (contains '/' or ends in .so) or a bare name searched in
 * $FLAME_PLUGIN_PATH (colon-separated folders), the installed plugin folder,
 * then the build tree. Returns the core's copy of the vtable (as long as this
 * flame's: entries the plugin was built without are NULL), or NULL with one
 * line in err (the caller exits with FLAME_EXIT_PLUGIN). path receives the
 * file loaded. */
const flame_plugin *plugin_load(const char *arch, char *path, size_t path_len,
                                char *err, size_t err_len);

/* The plugin, among those bare names find, whose hf_formats read model_type;
 * arch receives its bare name. NULL with one line in err when none does. */
const flame_plugin *plugin_for_model_type(const char *model_type, char *arch, size_t arch_len,
                                          char *err, size_t err_len);

/* the plugin's format of that model_type, or NULL */
const flame_hf_format *plugin_hf_format(const flame_plugin *plugin, const char *model_type);

#endif
