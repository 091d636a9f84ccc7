/* Sampling the next token (core/generator.h's sample_token) against the
 * distributions it must draw from, computed here in double:
 *  - greedy (temperature 0) is the largest logit;
 *  - no filter: each token's frequency over 200,000 draws is its softmax
 *    probability at the temperature, within 5 standard errors (and 5 draws,
 *    for the rare tokens);
 *  - top_k 5 of a vocabulary of 1,000: only the 5 most likely are drawn, each
 *    at its probability renormalized over the 5 (the selection does not sort
 *    the vocabulary, so this is what shows it picks the right ones);
 *  - top_p 0.5: only the fewest most likely whose mass reaches 0.5, renormalized;
 *  - ties: top_k keeps the lower ids of equal logits, as a sort by id would. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "generator.h"
#include "testing.h"

enum { VOCAB = 1000, DRAWS = 200000 };

/* softmax(logits / t) into p */
static void softmax(double *p, const float *logits, int n, double t)
{
    double top = logits[0], sum = 0;
    for (int i = 1; i < n; i++)
        top = logits[i] > top ? logits[i] : top;
    for (int i = 0; i < n; i++)
        sum += p[i] = exp((logits[i] - top) / t);
    for (int i = 0; i < n; i++)
        p[i] /= sum;
}

/* kept[i]: token i may be drawn; want[i] its probability among the kept */
static void draw_and_check(const char *name, const float *logits, const sampling *s, const int *kept,
                           const double *p)
{
    double mass = 0;
    for (int i = 0; i < VOCAB; i++)
        mass += kept[i] ? p[i] : 0;
    int *count = calloc(VOCAB, sizeof *count);
    rng r = {12345};
    for (int d = 0; d < DRAWS; d++)
        count[sample_token(logits, VOCAB, s, &r)]++;
    int outside = 0, off = 0;
    for (int i = 0; i < VOCAB; i++) {
        if (!kept[i]) {
            outside += count[i];
            continue;
        }
        double want = p[i] / mass, got = (double)count[i] / DRAWS;
        double se = sqrt(want * (1 - want) / DRAWS);
        if (fabs(got - want) > 5 * se + 5.0 / DRAWS) { /* + a few draws: rare tokens are Poisson */
            off++;
            printf("  %s: token %d drawn %.5f, expected %.5f\n", name, i, got, want);
        }
    }
    printf("%-14s %d draws outside the kept tokens, %d kept tokens off by over 5 standard errors\n",
           name, outside, off);
    CHECK(outside == 0, "%s: %d draws of tokens that should not be drawn", name, outside);
    CHECK(off == 0, "%s: %d tokens drawn at the wrong frequency", name, off);
    free(count);
}

int main(void)
{
    float logits[VOCAB];
    rng g = {7};
    for (int i = 0; i < VOCAB; i++) /* a few likely tokens among many unlikely ones */
        logits[i] = (float)(rng_uniform(&g) * 4 + (i % 97 == 3 ? 6 : 0));
    double p[VOCAB];
    int kept[VOCAB];

    int best = 0;
    for (int i = 1; i < VOCAB; i++)
        best = logits[i] > logits[best] ? i : best;
    rng r = {1};
    sampling greedy = {0, 0, 1};
    CHECK(sample_token(logits, VOCAB, &greedy, &r) == best, "greedy is not the largest logit");

    sampling plain = {0.8, 0, 1};
    softmax(p, logits, VOCAB, 0.8);
    for (int i = 0; i < VOCAB; i++)
        kept[i] = 1;
    draw_and_check("no filter", logits, &plain, kept, p);

    /* the 5 largest: ranks from a count of larger logits */
    sampling top_k = {1.0, 5, 1};
    softmax(p, logits, VOCAB, 1.0);
    for (int i = 0; i < VOCAB; i++) {
        int larger = 0;
        for (int j = 0; j < VOCAB; j++)
            larger += logits[j] > logits[i];
        kept[i] = larger < 5;
    }
    draw_and_check("top_k 5", logits, &top_k, kept, p);

    /* top_p 0.5: add tokens from the most likely until the mass reaches 0.5 */
    sampling top_p = {1.0, 0, 0.5};
    int order[VOCAB];
    for (int i = 0; i < VOCAB; i++)
        order[i] = i, kept[i] = 0;
    double mass = 0;
    for (int n = 0; n < VOCAB && mass < 0.5; n++) {
        for (int j = n + 1; j < VOCAB; j++)
            if (p[order[j]] > p[order[n]]) {
                int t = order[n];
                order[n] = order[j], order[j] = t;
            }
        kept[order[n]] = 1;
        mass += p[order[n]];
    }
    draw_and_check("top_p 0.5", logits, &top_p, kept, p);

    /* equal logits: top_k 3 keeps ids 0, 1, 2 */
    float flat[VOCAB];
    for (int i = 0; i < VOCAB; i++)
        flat[i] = 1.0f, kept[i] = i < 3;
    softmax(p, flat, VOCAB, 1.0);
    sampling ties = {1.0, 3, 1};
    draw_and_check("ties top_k 3", flat, &ties, kept, p);
    return testing_result("test_sampling");
}
