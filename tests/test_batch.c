/* The core's intake of a micro-batch (core/batch.c), which the plugins rely
 * on instead of checking for themselves: a token outside the model's
 * vocabulary is refused with its position and value; the targets ≥ 0 are
 * counted; tokens, targets and sequence offsets (one per row without varlen)
 * arrive in backend memory, the offsets also in host memory. */
#include <string.h>

#include "batch.h"
#include "cpu_kernels.h"
#include "testing.h"

static void expect_refusal(const int32_t *tokens, const int32_t *targets, int n, const char *needle)
{
    char err[256] = "";
    int rc = batch_check(tokens, targets, n, 10, err, sizeof err);
    CHECK(rc == -1 && strstr(err, needle) && !strchr(err, '\n'),
          "expected a refusal with '%s', got %d '%s'", needle, rc, err);
}

static void test_check(void)
{
    const int32_t tokens[] = {0, 9, 3, 10, 4, -1}, targets[] = {1, -1, 2, 3, -5, 0};
    char err[256] = "";
    CHECK(batch_check(tokens, targets, 3, 10, err, sizeof err) == 2, "counted targets: %s", err);
    expect_refusal(tokens, targets, 6, "token 10 at position 3");
    expect_refusal(tokens + 4, targets, 2, "token -1 at position 1");
}

/* staged rows: what the plugin gets equals what came in */
static void test_stage(const int32_t *cu, int n_seqs)
{
    const int B = 2, T = 3;
    const int32_t tokens[] = {1, 2, 3, 4, 5, 6}, targets[] = {2, 3, -1, 5, 6, 7};
    const int32_t rows[] = {0, 3, 6};
    char err[256] = "";
    batch_stage s;
    flame_batch b;
    int rc = batch_stage_open(&s, &flame_cpu_ops, B, T, err, sizeof err) ||
             batch_stage_load(&s, &flame_cpu_ops, tokens, targets, cu, n_seqs, 8, &b, err,
                              sizeof err);
    CHECK(rc == 0, "stage: %s", err);
    const int32_t *want_cu = cu ? cu : rows;
    int want_seqs = cu ? n_seqs : B;
    CHECK(b.B == B && b.T == T && b.counted == 5 && b.n_seqs == want_seqs,
          "B %d T %d counted %d n_seqs %d", b.B, b.T, b.counted, b.n_seqs);
    CHECK(memcmp(b.tokens, tokens, sizeof tokens) == 0 &&
              memcmp(b.targets, targets, sizeof targets) == 0,
          "tokens or targets differ");
    size_t cu_bytes = ((size_t)want_seqs + 1) * sizeof *want_cu;
    CHECK(memcmp(b.cu_seqlens, want_cu, cu_bytes) == 0 &&
              memcmp(b.cu_seqlens_backend, want_cu, cu_bytes) == 0,
          "sequence offsets differ");
    /* the vocabulary is the model's: 6 is outside a vocabulary of 6 */
    rc = batch_stage_load(&s, &flame_cpu_ops, tokens, targets, cu, n_seqs, 6, &b, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "token 6 at position 5"), "out of vocabulary: %d '%s'", rc, err);
    batch_stage_close(&s, &flame_cpu_ops);
}

int main(void)
{
    test_check();
    test_stage(NULL, 0);
    static const int32_t cu[] = {0, 2, 3, 6};
    test_stage(cu, 3);
    return testing_result("test_batch");
}
