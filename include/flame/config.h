/* Options: how the core and each plugin declare their configuration keys, and
 * how a plugin reads the resolved values of its [model] section. */
#ifndef FLAME_CONFIG_H
#define FLAME_CONFIG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flame_type {
    FLAME_TYPE_INT,    /* a whole number */
    FLAME_TYPE_FLOAT,  /* a real number */
    FLAME_TYPE_BOOL,   /* true/false (also 1/0, yes/no, on/off); a bare --flag means true */
    FLAME_TYPE_STRING
} flame_type;

typedef struct flame_option {
    const char *key;
    flame_type type;
    /* The default, written as in an INI file. NULL: unset unless given
     * (fla's JSON "null" also leaves an option unset). */
    const char *default_value;
    const char *help;
    /* Accepted so that fla/flame configs and command lines run unchanged, but
     * meaningless here: reported once as ignored. */
    int ignored;
} flame_option;

/* The resolved [model] section, handed to a plugin's create(). Keys must be ones
 * the plugin declared; values are already validated against their types. */
typedef struct flame_model_config {
    const void *ctx;
    int (*is_set)(const void *ctx, const char *key);
    int64_t (*get_int)(const void *ctx, const char *key);
    double (*get_float)(const void *ctx, const char *key);
    int (*get_bool)(const void *ctx, const char *key);
    const char *(*get_string)(const void *ctx, const char *key);
} flame_model_config;

#ifdef __cplusplus
}
#endif
#endif
