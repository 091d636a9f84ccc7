/* The one random number generator of the core (parameter init, data order):
 * splitmix64, whose whole state is one 64-bit word, so a checkpoint can save it. */
#ifndef FLAME_RNG_H
#define FLAME_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t state;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1) */
static inline double rng_uniform(rng *r)
{
    return ((rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* the generator as it will be after n more draws: splitmix64's state only
 * adds a constant per draw, so any position is one step away (parallel
 * streams that reproduce a sequential one) */
static inline rng rng_skip(rng r, uint64_t n)
{
    r.state += n * 0x9E3779B97F4A7C15ull;
    return r;
}

/* a standard normal from two draws */
double rng_normal(rng *r);

#endif
