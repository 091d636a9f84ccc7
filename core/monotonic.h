/* Seconds on the monotonic clock: the one timer of the core and the tools
 * (step times, progress, prefill and decode speeds). */
#ifndef FLAME_MONOTONIC_H
#define FLAME_MONOTONIC_H

#include <time.h>

static inline double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
