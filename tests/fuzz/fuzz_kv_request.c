/* kv_parse_request (the key-value store's wire format, core/kv_store.h) on
 * arbitrary bytes, read as the server does: request after request while each
 * parses. Every request it returns lies inside the bytes it says it used,
 * within the limits, and no strict prefix of it parses already. */
#include <stdint.h>
#include <stdlib.h>

#include "kv_store.h"

/* whether [p, p + n) lies inside [lo, hi) */
static int inside(const unsigned char *p, size_t n, const unsigned char *lo, const unsigned char *hi)
{
    uintptr_t a = (uintptr_t)p, l = (uintptr_t)lo, h = (uintptr_t)hi;
    return a >= l && a <= h && n <= h - a;
}

static void check(const unsigned char *buf, long used, const kv_request *r)
{
    const unsigned char *end = buf + used;
    if (r->op != 'S' && r->op != 'G')
        abort();
    if (r->key_len == 0 || r->key_len > KV_MAX_KEY || !inside(r->key, r->key_len, buf, end))
        abort();
    if (r->op == 'G' && r->value_len != 0)
        abort();
    if (r->op == 'S' && (r->value_len > KV_MAX_VALUE || !inside(r->value, r->value_len, buf, end)))
        abort();
    /* the last byte is needed: without it the request is still to come */
    kv_request again;
    if (kv_parse_request(buf, (size_t)used - 1, &again) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    size_t off = 0;
    for (;;) {
        kv_request r;
        long n = kv_parse_request(data + off, size - off, &r);
        if (n < -1 || (n > 0 && (size_t)n > size - off))
            abort();
        if (n <= 0)
            return 0;
        check(data + off, n, &r);
        off += (size_t)n;
    }
}
