/* Generation with a plugin's decode entries (flame/plugin.h 5.5): B sequences
 * fed one position at a time in lockstep, the state they carry in backend
 * memory, the logits of each position brought to the host; and sampling the
 * next tokens from them. flame-generate's loop and the tests' decode checks. */
#ifndef FLAME_GENERATOR_H
#define FLAME_GENERATOR_H

#include <stddef.h>
#include <stdint.h>

#include <flame/plugin.h>

#include "rng.h"

typedef struct generator generator;

/* For B sequences of up to max_len positions of model, whose weights are
 * bound and whose reserve covers at least B tokens. Returns 0; -1 with err
 * when the plugin or this backend cannot decode (a configuration error) or
 * memory runs out. */
int generator_open(generator **g, const flame_plugin *plugin, void *model, const flame_ops *ops,
                   int B, int max_len, char *err, size_t err_len);
void generator_close(generator *g);

/* Feeds tokens[B] (each below the model's vocabulary) at the next position;
 * *logits: [B, vocab] fp32 on the host, valid until the next call. Returns 0,
 * or -1 with err (max_len reached, or the plugin failed). */
int generator_feed(generator *g, const int32_t *tokens, const float **logits, char *err,
                   size_t err_len);
/* positions fed so far */
int generator_position(const generator *g);

typedef struct sampling {
    double temperature; /* 0: greedy, the most likely token */
    int top_k;          /* 0: every token */
    double top_p;       /* 1: every token; else the fewest most likely whose mass reaches it */
} sampling;

/* The next token from logits[vocab]: greedy, or drawn from the softmax at the
 * temperature over the top_k and top_p candidates, with one draw of r. */
int32_t sample_token(const float *logits, int vocab, const sampling *s, rng *r);

#endif
