#include "scheduler.h"

#include <math.h>
#include <string.h>

int decay_type_parse(const char *name, decay_type *out)
{
    static const struct { const char *name; decay_type type; } names[] = {
        {"linear", DECAY_LINEAR}, {"cosine", DECAY_COSINE}, {"sqrt", DECAY_SQRT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].type;
            return 0;
        }
    return -1;
}

lr_schedule lr_schedule_make(int warmup_steps, int total_steps, double decay_ratio,
                             decay_type decay, double lr_min)
{
    lr_schedule s = {warmup_steps, total_steps, 0, decay, lr_min};
    s.decay_steps = decay_ratio >= 0 ? (int)lround(total_steps * decay_ratio)
                                     : total_steps - warmup_steps;
    return s;
}

static double decay_curve(decay_type decay, double p)
{
    switch (decay) {
    case DECAY_LINEAR: return 1.0 - p;
    case DECAY_SQRT: return 1.0 - sqrt(p);
    case DECAY_COSINE: return 0.5 * (1.0 + cos(M_PI * p));
    }
    return 1.0;
}

double lr_schedule_factor(const lr_schedule *s, int step)
{
    if (step <= s->warmup_steps)
        return (double)step / s->warmup_steps;
    if (s->decay_steps <= 0 || step <= s->total_steps - s->decay_steps + 1)
        return 1.0;
    double p = (double)(step - 1 - s->total_steps + s->decay_steps) / s->decay_steps;
    if (p > 1.0)
        p = 1.0;
    return s->lr_min + (1.0 - s->lr_min) * decay_curve(s->decay, p);
}
