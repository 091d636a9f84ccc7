/* Learning-rate schedule: linear warmup, an optional stable phase, then decay
 * (linear, cosine or sqrt) to lr·lr_min — fla-org/flame's (torchtitan's) rule. */
#ifndef FLAME_SCHEDULER_H
#define FLAME_SCHEDULER_H

typedef enum decay_type { DECAY_LINEAR, DECAY_COSINE, DECAY_SQRT } decay_type;

typedef struct lr_schedule {
    int warmup_steps;  /* W */
    int total_steps;   /* T */
    int decay_steps;   /* D: T − W, or round(T · decay_ratio) for warmup-stable-decay */
    decay_type decay;
    double lr_min;     /* final factor */
} lr_schedule;

/* Returns 0, or -1 when name is not linear/cosine/sqrt. */
int decay_type_parse(const char *name, decay_type *out);

/* decay_ratio < 0 means none (decay over every step after warmup) */
lr_schedule lr_schedule_make(int warmup_steps, int total_steps, double decay_ratio,
                             decay_type decay, double lr_min);

/* the factor multiplying optimizer.lr at 1-based step s */
double lr_schedule_factor(const lr_schedule *s, int step);

#endif
