/* token_shard_open on arbitrary bytes, then a verify and a read of its first
 * and last tokens. */
#define _POSIX_C_SOURCE 200809L
#include "data/token_shard.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512];
    token_shard s;
    int32_t out[16];
    if (token_shard_open(&s, fuzz_file(TOKEN_SHARD_EXT, data, size), err, sizeof err) == 0) {
        token_shard_verify(&s, err, sizeof err);
        uint64_t n = s.h.n_tokens < 16 ? s.h.n_tokens : 16;
        token_shard_read(&s, 0, (size_t)n, out, err, sizeof err);
        token_shard_read(&s, s.h.n_tokens - n, (size_t)n, out, err, sizeof err);
    }
    token_shard_close(&s);
    return 0;
}
