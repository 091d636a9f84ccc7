#include "rng.h"

#include <math.h>

/* Box-Muller; one draw per call keeps the stream position simple to reason about */
double rng_normal(rng *r)
{
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
