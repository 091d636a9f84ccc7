/* Where a test puts a plugin's parameters: in one buffer, each tensor at a
 * multiple of 64 values, but a tensor the plugin joins to the one before it
 * (param_joined) right after that one, as the core stores them (params.c),
 * so that a plugin computing with a joined run as one tensor finds it. */
#ifndef FLAME_PARAM_LAYOUT_TESTING_H
#define FLAME_PARAM_LAYOUT_TESTING_H

#include <stddef.h>

#include <flame/plugin.h>

/* offset[i] of each of the n tensors (numel[i] values); returns the buffer's length */
static inline size_t testing_param_offsets(const flame_plugin *p, const void *model, const size_t *numel, int n,
                                           size_t *offset)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!(i > 0 && p->param_joined && p->param_joined(model, i)))
            total = (total + 63) / 64 * 64;
        offset[i] = total;
        total += numel[i];
    }
    return total;
}

#endif
