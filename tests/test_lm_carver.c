/* The arena carver every decoder-LM plugin reserves its activations with
 * (plugins/common/lm_parts.h): pieces on 256-byte boundaries, the scratch after
 * the values that outlive a call, the LM head's logits over the scratch, and
 * the arena as large as the first part and the larger of the other two. */
#include <stdint.h>

#include "lm_parts.h"
#include "testing.h"

/* one plugin's carve: 10 bf16 values kept, 300 of scratch, 100 kept, logits of `logits` values */
typedef struct pieces {
    void *kept, *scratch, *kept_after, *logits;
} pieces;

static pieces carve(lm_carver *cv, size_t logits)
{
    pieces p;
    p.kept = lm_take_acts(cv, 10);           /* 20 bytes: 256 */
    p.scratch = lm_take_scratch_acts(cv, 300); /* 600 bytes: 768 */
    p.kept_after = lm_take_floats(cv, 100);  /* 400 bytes: 512 */
    p.logits = lm_take_logits(cv, logits);
    return p;
}

static void check_arena(size_t logits, size_t expected_bytes)
{
    lm_carver count = {.act_bytes = 2};
    pieces none = carve(&count, logits);
    CHECK(!none.kept && !none.scratch && !none.kept_after && !none.logits,
          "logits %zu: the counting pass hands out NULL", logits);
    CHECK(count.used == 768, "logits %zu: the first part takes %zu bytes, expected 256 + 512", logits, count.used);
    size_t bytes = lm_carver_bytes(&count);
    CHECK(bytes == expected_bytes, "logits %zu: the arena takes %zu bytes, expected %zu", logits, bytes,
          expected_bytes);

    static char arena[4096] __attribute__((aligned(256)));
    lm_carver cv = {.base = arena, .scratch_at = count.used, .act_bytes = 2};
    pieces p = carve(&cv, logits);
    CHECK(p.kept == arena && (char *)p.kept_after == arena + 256, "logits %zu: the kept pieces at 0 and 256",
          logits);
    CHECK((char *)p.scratch == arena + 768 && p.logits == p.scratch,
          "logits %zu: the scratch and the logits both at 768, after the first part", logits);
    CHECK(lm_carver_bytes(&cv) == bytes, "logits %zu: the second pass takes what the first counted", logits);
}

int main(void)
{
    check_arena(100, 768 + 768);  /* 200 bytes of logits within the scratch's 768 */
    check_arena(1000, 768 + 2048); /* 2000 bytes of logits: 2048, more than the scratch */
    return testing_result("test_lm_carver");
}
