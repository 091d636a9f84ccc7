/* A [model] section made by a test: the keys and values it sets, which a
 * plugin's create() reads through the flame_model_config view. */
#ifndef FLAME_KV_CONFIG_H
#define FLAME_KV_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/config.h>

#define MAX_KEYS 48

typedef struct kv_config {
    const char *key[MAX_KEYS], *value[MAX_KEYS];
    int n;
} kv_config;

static inline const char *kv_find(const void *ctx, const char *key)
{
    const kv_config *c = ctx;
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->key[i], key) == 0)
            return c->value[i];
    return NULL;
}

static inline int kv_is_set(const void *ctx, const char *key) { return kv_find(ctx, key) != NULL; }
static inline int64_t kv_get_int(const void *ctx, const char *key) { return strtoll(kv_find(ctx, key), NULL, 10); }
static inline double kv_get_float(const void *ctx, const char *key) { return strtod(kv_find(ctx, key), NULL); }
static inline int kv_get_bool(const void *ctx, const char *key) { return strcmp(kv_find(ctx, key), "true") == 0; }
static inline const char *kv_get_string(const void *ctx, const char *key) { return kv_find(ctx, key); }

static inline void kv_set(kv_config *c, const char *key, const char *value)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->key[i], key) == 0) {
            c->value[i] = value;
            return;
        }
    c->key[c->n] = key, c->value[c->n] = value, c->n++;
}

/* v as a config value, written into buf (16 chars) */
static inline const char *kv_int(char *buf, int v)
{
    snprintf(buf, 16, "%d", v);
    return buf;
}

static inline flame_model_config view_of(const kv_config *c)
{
    flame_model_config v = {c, kv_is_set, kv_get_int, kv_get_float, kv_get_bool, kv_get_string};
    return v;
}

/* the section of fixed pairs {key, value} */
static inline kv_config kv_of_pairs(const char *const (*pairs)[2], int n)
{
    kv_config c = {.n = 0};
    for (int i = 0; i < n; i++)
        kv_set(&c, pairs[i][0], pairs[i][1]);
    return c;
}

#endif
