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

/* values are copies, so a section can be returned, copied and changed whole */
typedef struct kv_config {
    const char *key[MAX_KEYS];
    char value[MAX_KEYS][64];
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
    int i = 0;
    while (i < c->n && strcmp(c->key[i], key) != 0)
        i++;
    if (i == c->n)
        c->key[c->n++] = key;
    if (snprintf(c->value[i], sizeof c->value[i], "%s", value) >= (int)sizeof c->value[i]) {
        fprintf(stderr, "kv_set: the value of %s is too long\n", key);
        exit(1);
    }
}

static inline void kv_set_int(kv_config *c, const char *key, int64_t v)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)v);
    kv_set(c, key, text);
}

static inline void kv_set_float(kv_config *c, const char *key, double v)
{
    char text[32];
    snprintf(text, sizeof text, "%g", v);
    kv_set(c, key, text);
}

static inline flame_model_config view_of(const kv_config *c)
{
    flame_model_config v = {c, kv_is_set, kv_get_int, kv_get_float, kv_get_bool, kv_get_string};
    return v;
}

/* the keys every decoder-LM plugin shares (plugins/common's
 * LM_DECODER_OPTIONS) that a model test sets */
typedef struct kv_lm_keys {
    int D, L, V, I; /* hidden_size, num_hidden_layers, vocab_size, intermediate_size */
    double eps;     /* norm_eps */
    int tie;        /* tie_word_embeddings */
} kv_lm_keys;

/* A [model] section with k's keys and two keys fla's configs carry that change
 * nothing here (an fla switch, a token id), which must be accepted; a test adds
 * its plugin's own keys. */
static inline kv_config kv_lm_config(const kv_lm_keys *k)
{
    kv_config c = {.n = 0};
    kv_set_int(&c, "hidden_size", k->D);
    kv_set_int(&c, "num_hidden_layers", k->L);
    kv_set_int(&c, "vocab_size", k->V);
    kv_set_int(&c, "intermediate_size", k->I);
    kv_set_float(&c, "norm_eps", k->eps);
    kv_set(&c, "tie_word_embeddings", k->tie ? "true" : "false");
    kv_set(&c, "fuse_cross_entropy", "true");
    kv_set(&c, "bos_token_id", "1");
    return c;
}

#endif
