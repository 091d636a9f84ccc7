/* The BPE model of a tokenizer.json: a word (one pre-tokenized piece) becomes one
 * symbol per character (the character's token, else its <0xNN> byte tokens with
 * byte_fallback, else unk_token, fused with fuse_unk), then the pair of adjacent
 * symbols whose merge has the lowest rank — the leftmost among equals — is merged
 * until none is left: the algorithm of `tokenizers` (models/bpe/word.rs), a
 * priority queue of (rank, position) with stale entries skipped.
 *
 * Speed: words of up to TB_CACHE_WORD bytes are cached. A longer word (with no
 * pre-tokenizer, as in Llama-2's tokenizer.json, the whole text is one word) is
 * first cut between two characters c1 c2 that are both tokens and where no merge
 * (a, b) has a ending in c1 and b starting with c2: no merge can ever join
 * symbols across such a cut, so each part merges on its own exactly as inside the
 * whole, and the parts are cached like words. */
#include "tokenizer_bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    TB_CACHE_WORD = 256,          /* longest cached word, bytes */
    TB_CACHE_ENTRIES = 1 << 18,   /* the cache is emptied when it holds more */
    TB_CACHE_IDS = 1 << 22,
    TB_CACHE_BYTES = 1 << 24,
};

/* ---- buffers ---- */

int tb_buf_reserve(tb_buf *b, size_t extra)
{
    /* allocated even for nothing, so that p + offset never offsets a null
     * pointer when every piece put was empty */
    if (b->p && b->cap - b->n >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->n < extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p, b->cap = cap;
    return 0;
}

int tb_buf_put(tb_buf *b, const void *s, size_t n)
{
    if (tb_buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

int tb_ids_reserve(tokenizer_ids *ids, size_t extra)
{
    if (ids->cap - ids->n >= extra)
        return 0;
    size_t cap = ids->cap ? ids->cap : 256;
    while (cap - ids->n < extra)
        cap *= 2;
    int32_t *p = realloc(ids->ids, cap * sizeof *p);
    if (!p)
        return -1;
    ids->ids = p, ids->cap = cap;
    return 0;
}

int tb_ids_push(tokenizer_ids *ids, int32_t id)
{
    if (ids->n == ids->cap && tb_ids_reserve(ids, 1))
        return -1;
    ids->ids[ids->n++] = id;
    return 0;
}

/* ---- hash maps ---- */

static inline uint64_t mix64(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

uint64_t tb_hash(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    if (i < n) {
        uint64_t v = 0;
        memcpy(&v, s + i, n - i);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    return mix64(h);
}

static int strmap_grow(tb_strmap *m)
{
    size_t cap = m->e ? (m->mask + 1) * 2 : 64;
    tb_strmap_entry *e = malloc(cap * sizeof *e);
    if (!e)
        return -1;
    for (size_t i = 0; i < cap; i++)
        e[i].off = UINT32_MAX;
    if (m->e) {
        for (size_t i = 0; i <= m->mask; i++) {
            if (m->e[i].off == UINT32_MAX)
                continue;
            size_t j = m->e[i].hash & (cap - 1);
            while (e[j].off != UINT32_MAX)
                j = (j + 1) & (cap - 1);
            e[j] = m->e[i];
        }
        free(m->e);
    }
    m->e = e, m->mask = cap - 1;
    return 0;
}

int tb_strmap_put(tb_strmap *m, const char *k, size_t n, uint64_t val)
{
    if ((!m->e || (m->count + 1) * 2 > m->mask + 1) && strmap_grow(m))
        return -1;
    if (m->keys.n + n >= UINT32_MAX)
        return -1;
    uint64_t h = tb_hash(k, n);
    size_t j = h & m->mask;
    for (; m->e[j].off != UINT32_MAX; j = (j + 1) & m->mask) {
        tb_strmap_entry *x = &m->e[j];
        if (x->hash == h && x->len == n && memcmp(m->keys.p + x->off, k, n) == 0) {
            x->val = val;
            return 0;
        }
    }
    uint32_t off = (uint32_t)m->keys.n;
    if (tb_buf_put(&m->keys, k, n))
        return -1;
    m->e[j] = (tb_strmap_entry){h, val, off, (uint32_t)n};
    m->count++;
    return 0;
}

int tb_strmap_get(const tb_strmap *m, const char *k, size_t n, uint64_t *val)
{
    if (!m->e)
        return 0;
    uint64_t h = tb_hash(k, n);
    for (size_t j = h & m->mask; m->e[j].off != UINT32_MAX; j = (j + 1) & m->mask) {
        const tb_strmap_entry *x = &m->e[j];
        if (x->hash == h && x->len == n && memcmp(m->keys.p + x->off, k, n) == 0) {
            *val = x->val;
            return 1;
        }
    }
    return 0;
}

void tb_strmap_clear(tb_strmap *m)
{
    if (m->e)
        for (size_t i = 0; i <= m->mask; i++)
            m->e[i].off = UINT32_MAX;
    m->count = 0;
    m->keys.n = 0;
}

void tb_strmap_free(tb_strmap *m)
{
    free(m->e);
    free(m->keys.p);
    memset(m, 0, sizeof *m);
}

static int pairmap_grow(tb_pairmap *m)
{
    size_t cap = m->e ? (m->mask + 1) * 2 : 64;
    tb_pair_entry *e = malloc(cap * sizeof *e);
    if (!e)
        return -1;
    for (size_t i = 0; i < cap; i++)
        e[i].key = UINT64_MAX;
    if (m->e) {
        for (size_t i = 0; i <= m->mask; i++) {
            if (m->e[i].key == UINT64_MAX)
                continue;
            size_t j = mix64(m->e[i].key * 0x9E3779B97F4A7C15ull) & (cap - 1);
            while (e[j].key != UINT64_MAX)
                j = (j + 1) & (cap - 1);
            e[j] = m->e[i];
        }
        free(m->e);
    }
    m->e = e, m->mask = cap - 1;
    return 0;
}

int tb_pairmap_put(tb_pairmap *m, uint64_t key, uint32_t rank, int32_t id)
{
    if ((!m->e || (m->count + 1) * 2 > m->mask + 1) && pairmap_grow(m))
        return -1;
    size_t j = mix64(key * 0x9E3779B97F4A7C15ull) & m->mask;
    while (m->e[j].key != UINT64_MAX && m->e[j].key != key)
        j = (j + 1) & m->mask;
    if (m->e[j].key == UINT64_MAX)
        m->count++;
    m->e[j] = (tb_pair_entry){key, rank, id};
    return 0;
}

const tb_pair_entry *tb_pairmap_get(const tb_pairmap *m, uint64_t key)
{
    if (!m->e)
        return NULL;
    for (size_t j = mix64(key * 0x9E3779B97F4A7C15ull) & m->mask; m->e[j].key != UINT64_MAX;
         j = (j + 1) & m->mask)
        if (m->e[j].key == key)
            return &m->e[j];
    return NULL;
}

void tb_pairmap_free(tb_pairmap *m)
{
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* ---- the model ---- */

int32_t tb_model_id(const tb_model *m, const char *s, size_t n)
{
    uint64_t v;
    return tb_strmap_get(&m->vocab, s, n, &v) ? (int32_t)v : -1;
}

static inline uint64_t cross_key(uint32_t a, uint32_t b)
{
    return (uint64_t)a << 21 | b;
}

int tb_model_finish(tb_model *m)
{
    char tmp[16];
    for (int b = 0; b < 256; b++) {
        snprintf(tmp, sizeof tmp, "<0x%02X>", b);
        m->byte_id[b] = tb_model_id(m, tmp, 6);
    }
    m->char_id = malloc(TB_CHAR_TABLE * sizeof *m->char_id);
    if (!m->char_id)
        return -1;
    for (uint32_t cp = 0; cp < TB_CHAR_TABLE; cp++) {
        size_t len = (cp >= 0xD800 && cp < 0xE000) ? 0 : tb_utf8_put(tmp, cp);
        m->char_id[cp] = len ? tb_model_id(m, tmp, len) : -1;
    }
    m->can_segment = !m->prefix && !m->suffix;
    if (!m->can_segment)
        return 0;
    /* the (last character of a, first character of b) of every merge */
    for (size_t i = 0; m->merges.e && i <= m->merges.mask; i++) {
        uint64_t key = m->merges.e[i].key;
        if (key == UINT64_MAX)
            continue;
        int32_t a = (int32_t)(key >> 32), b = (int32_t)(key & 0xffffffffu);
        const char *as = m->vocab.keys.p + m->tok_off[a], *bs = m->vocab.keys.p + m->tok_off[b];
        size_t al = m->tok_len[a], bl = m->tok_len[b];
        if (!al || !bl) { /* an empty token: no characters to reason about */
            m->can_segment = 0;
            return 0;
        }
        size_t k = al - 1;
        while (k > 0 && ((unsigned char)as[k] & 0xC0) == 0x80)
            k--;
        uint32_t last, first;
        tb_utf8_next(as, al, k, &last);
        tb_utf8_next(bs, bl, 0, &first);
        if (last < 128 && first < 128)
            m->cross_ascii[(last * 128 + first) >> 3] |= (unsigned char)(1u << ((last * 128 + first) & 7));
        else if (tb_pairmap_put(&m->cross, cross_key(last, first), 0, 0))
            return -1;
    }
    return 0;
}

void tb_model_free(tb_model *m)
{
    tb_strmap_free(&m->vocab);
    tb_pairmap_free(&m->merges);
    tb_pairmap_free(&m->cross);
    tb_strmap_free(&m->cache);
    free(m->cache_ids.ids);
    free(m->tok_off);
    free(m->tok_len);
    free(m->prefix);
    free(m->suffix);
    free(m->char_id);
    free(m->sym);
    free(m->heap);
    free(m->scratch.p);
    memset(m, 0, sizeof *m);
}

static inline int32_t char_token(const tb_model *m, const char *s, size_t len, uint32_t cp)
{
    if (cp < TB_CHAR_TABLE)
        return m->char_id[cp];
    return tb_model_id(m, s, len);
}

/* ---- merging ---- */

static inline int merge_less(const tb_merge *a, const tb_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(tb_merge *h, size_t *n, tb_merge x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!merge_less(&x, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static tb_merge heap_pop(tb_merge *h, size_t *n)
{
    tb_merge top = h[0], x = h[--*n];
    size_t i = 0, count = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= count)
            break;
        if (c + 1 < count && merge_less(&h[c + 1], &h[c]))
            c++;
        if (!merge_less(&h[c], &x))
            break;
        h[i] = h[c];
        i = c;
    }
    if (count)
        h[i] = x;
    return top;
}

static int sym_add(tb_model *m, size_t *n, int32_t id)
{
    if (*n == m->sym_cap) {
        size_t cap = m->sym_cap ? m->sym_cap * 2 : 256;
        tb_sym *p = realloc(m->sym, cap * sizeof *p);
        if (!p)
            return -1;
        m->sym = p, m->sym_cap = cap;
    }
    size_t k = (*n)++;
    m->sym[k] = (tb_sym){id, (int32_t)k - 1, -1, 1};
    if (k > 0)
        m->sym[k - 1].next = (int32_t)k;
    return 0;
}

static inline const tb_pair_entry *merge_of(const tb_model *m, int32_t a, int32_t b)
{
    return tb_pairmap_get(&m->merges, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
}

static int merge_all(tb_model *m, size_t n_sym)
{
    /* at most one entry per pair at first, and at most two per merge after */
    size_t need = 3 * n_sym + 1;
    if (m->heap_cap < need) {
        tb_merge *h = realloc(m->heap, need * sizeof *h);
        if (!h)
            return -1;
        m->heap = h, m->heap_cap = need;
    }
    tb_sym *s = m->sym;
    tb_merge *h = m->heap;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n_sym; i++) {
        const tb_pair_entry *e = merge_of(m, s[i].id, s[i + 1].id);
        if (e)
            heap_push(h, &hn, (tb_merge){e->rank, (uint32_t)i, e->id});
    }
    while (hn) {
        tb_merge top = heap_pop(h, &hn);
        tb_sym *cur = &s[top.pos];
        if (!cur->alive || cur->next == -1)
            continue;
        tb_sym *right = &s[cur->next];
        const tb_pair_entry *e = merge_of(m, cur->id, right->id);
        if (!e || e->id != top.id)
            continue; /* a stale entry */
        cur->id = top.id;
        right->alive = 0;
        cur->next = right->next;
        if (right->next != -1)
            s[right->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            const tb_pair_entry *p = merge_of(m, s[cur->prev].id, cur->id);
            if (p)
                heap_push(h, &hn, (tb_merge){p->rank, (uint32_t)cur->prev, p->id});
        }
        if (cur->next != -1) {
            const tb_pair_entry *p = merge_of(m, cur->id, s[cur->next].id);
            if (p)
                heap_push(h, &hn, (tb_merge){p->rank, top.pos, p->id});
        }
    }
    return 0;
}

/* The symbol of one character (with prefix/suffix) or its byte tokens or unk. */
static int add_char(tb_model *m, size_t *n_sym, const char *c, size_t len, uint32_t cp,
                    int is_first, int is_last, int *unk_pending)
{
    const char *s = c;
    size_t sl = len;
    int32_t id;
    if ((m->prefix && !is_first) || (m->suffix && is_last)) {
        m->scratch.n = 0;
        if ((m->prefix && !is_first && tb_buf_put(&m->scratch, m->prefix, m->prefix_len)) ||
            tb_buf_put(&m->scratch, c, len) ||
            (m->suffix && is_last && tb_buf_put(&m->scratch, m->suffix, m->suffix_len)))
            return -1;
        s = m->scratch.p, sl = m->scratch.n;
        id = tb_model_id(m, s, sl);
    } else {
        id = char_token(m, c, len, cp);
    }
    if (id >= 0) {
        if (*unk_pending) {
            *unk_pending = 0;
            if (sym_add(m, n_sym, m->unk_id))
                return -1;
        }
        return sym_add(m, n_sym, id);
    }
    if (m->byte_fallback) {
        size_t k = 0;
        while (k < sl && m->byte_id[(unsigned char)s[k]] >= 0)
            k++;
        if (k == sl) {
            /* as in `tokenizers`: a pending unk is not written first */
            for (k = 0; k < sl; k++)
                if (sym_add(m, n_sym, m->byte_id[(unsigned char)s[k]]))
                    return -1;
            return 0;
        }
    }
    if (m->unk_id >= 0) {
        if (*unk_pending && !m->fuse_unk && sym_add(m, n_sym, m->unk_id))
            return -1;
        *unk_pending = 1;
    }
    return 0;
}

static int merge_word(tb_model *m, const char *s, size_t n, tokenizer_ids *out)
{
    size_t n_sym = 0;
    int unk_pending = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = tb_utf8_next(s, n, i, &cp);
        if (add_char(m, &n_sym, s + i, len, cp, i == 0, i + len == n, &unk_pending))
            return -1;
        i += len;
    }
    if (unk_pending && sym_add(m, &n_sym, m->unk_id))
        return -1;
    if (merge_all(m, n_sym) || tb_ids_reserve(out, n_sym))
        return -1;
    for (size_t i = 0; i < n_sym; i++)
        if (m->sym[i].alive)
            out->ids[out->n++] = m->sym[i].id;
    return 0;
}

/* count ids from src[src_at] to dst[dst_at]; none for a word of no ids,
 * whose lists may not exist yet (both cases found by fuzzing: offsetting a
 * null pointer is undefined even by 0, so the offsets are taken here) */
static void copy_ids(int32_t *dst, size_t dst_at, const int32_t *src, size_t src_at, size_t count)
{
    if (count)
        memcpy(dst + dst_at, src + src_at, count * sizeof(int32_t));
}

static int word_cached(tb_model *m, const char *s, size_t n, tokenizer_ids *out)
{
    uint64_t v;
    if (n <= TB_CACHE_WORD && tb_strmap_get(&m->cache, s, n, &v)) {
        size_t off = v >> 24, count = v & 0xffffff;
        if (tb_ids_reserve(out, count))
            return -1;
        copy_ids(out->ids, out->n, m->cache_ids.ids, off, count);
        out->n += count;
        return 0;
    }
    size_t start = out->n;
    if (merge_word(m, s, n, out))
        return -1;
    if (n > TB_CACHE_WORD)
        return 0;
    size_t count = out->n - start;
    if (m->cache.count >= TB_CACHE_ENTRIES || m->cache_ids.n + count > TB_CACHE_IDS ||
        m->cache.keys.n + n > TB_CACHE_BYTES) {
        tb_strmap_clear(&m->cache);
        m->cache_ids.n = 0;
    }
    size_t off = m->cache_ids.n;
    if (tb_ids_reserve(&m->cache_ids, count))
        return -1;
    copy_ids(m->cache_ids.ids, off, out->ids, start, count);
    m->cache_ids.n += count;
    return tb_strmap_put(&m->cache, s, n, (uint64_t)off << 24 | count);
}

static inline int crosses(const tb_model *m, uint32_t a, uint32_t b)
{
    if (a < 128 && b < 128)
        return m->cross_ascii[(a * 128 + b) >> 3] >> ((a * 128 + b) & 7) & 1;
    return tb_pairmap_get(&m->cross, cross_key(a, b)) != NULL;
}

int tb_model_tokenize(tb_model *m, const char *s, size_t n, tokenizer_ids *out)
{
    if (n == 0)
        return 0;
    if (m->ignore_merges) {
        int32_t id = tb_model_id(m, s, n);
        if (id >= 0)
            return tb_ids_push(out, id);
    }
    if (n <= TB_CACHE_WORD || !m->can_segment)
        return word_cached(m, s, n, out);
    size_t start = 0;
    uint32_t prev_cp = 0;
    int32_t prev_id = -1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = tb_utf8_next(s, n, i, &cp);
        int32_t id = cp == TB_INVALID ? -1 : char_token(m, s + i, len, cp);
        if (i > start && prev_id >= 0 && id >= 0 && !crosses(m, prev_cp, cp)) {
            if (word_cached(m, s + start, i - start, out))
                return -1;
            start = i;
        }
        prev_cp = cp, prev_id = id;
        i += len;
    }
    return word_cached(m, s + start, n - start, out);
}
