/* The learning-rate schedule at points whose values are known by hand:
 * warmup is s/W; the decay at its midpoint p = 1/2 gives lr_min + (1-lr_min)/2
 * for linear and cosine, and p = 1/4 gives the same for sqrt. */
#include "scheduler.h"
#include "testing.h"

static void expect(const lr_schedule *s, int step, double want, const char *what)
{
    double got = lr_schedule_factor(s, step);
    CHECK(fabs(got - want) < 1e-12, "%s: step %d: factor %.15g, expected %.15g", what, step, got,
          want);
}

int main(void)
{
    /* W = 10, T = 110: D = 100 decay steps after warmup */
    lr_schedule cosine = lr_schedule_make(10, 110, -1, DECAY_COSINE, 0.1);
    expect(&cosine, 1, 0.1, "warmup");
    expect(&cosine, 5, 0.5, "warmup");
    expect(&cosine, 10, 1.0, "end of warmup");
    expect(&cosine, 11, 1.0, "start of decay (p = 0)");
    expect(&cosine, 61, 0.55, "cosine midpoint");
    expect(&cosine, 111, 0.1, "p = 1 reaches lr_min");
    CHECK(lr_schedule_factor(&cosine, 60) > 0.55 && lr_schedule_factor(&cosine, 62) < 0.55,
          "cosine decreases through its midpoint");

    lr_schedule linear = lr_schedule_make(10, 110, -1, DECAY_LINEAR, 0.1);
    expect(&linear, 61, 0.55, "linear midpoint");
    expect(&linear, 36, 0.1 + 0.9 * 0.75, "linear at p = 1/4");

    lr_schedule sqrt_decay = lr_schedule_make(10, 110, -1, DECAY_SQRT, 0.1);
    expect(&sqrt_decay, 36, 0.55, "sqrt at p = 1/4");
    expect(&sqrt_decay, 61, 0.1 + 0.9 * (1 - sqrt(0.5)), "sqrt midpoint");

    /* warmup-stable-decay: T = 100, decay_ratio 0.2 → D = 20, stable until step 81 */
    lr_schedule wsd = lr_schedule_make(10, 100, 0.2, DECAY_LINEAR, 0.0);
    expect(&wsd, 50, 1.0, "stable phase");
    expect(&wsd, 81, 1.0, "last stable step");
    expect(&wsd, 91, 0.5, "wsd midpoint");
    expect(&wsd, 101, 0.0, "wsd end");

    lr_schedule no_warmup = lr_schedule_make(0, 100, -1, DECAY_LINEAR, 0.0);
    expect(&no_warmup, 1, 1.0, "no warmup: first step at full lr");
    expect(&no_warmup, 51, 0.5, "no warmup: linear midpoint");

    decay_type d;
    CHECK(decay_type_parse("cosine", &d) == 0 && d == DECAY_COSINE, "parse cosine");
    CHECK(decay_type_parse("step", &d) == -1, "reject an unknown decay type");
    return testing_result("test_scheduler");
}
