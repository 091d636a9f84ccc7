/* A Hugging Face tokenizer.json with a BPE model, encoding token for token as the
 * `tokenizers` library does with add_special_tokens=False:
 *   1. added tokens with normalized=false are found in the raw text (longest
 *      first at the leftmost place, with their single_word, lstrip, rstrip);
 *   2. each text between them goes through the normalizer, then the added tokens
 *      with normalized=true are found in the result (matching their normalized
 *      text);
 *   3. each text between those goes through the pre-tokenizer, and each of its
 *      pieces through the BPE model (tokenizer_bpe_model.c).
 * Supported (anything else is refused with a message naming it):
 *   normalizer     Sequence, Prepend, Replace (a string, or a regex without
 *                  special characters);
 *   pre_tokenizer  Sequence, ByteLevel, Metaspace, Digits, Split with a string or
 *                  with the regex of GPT-2, Llama-3 or Qwen2 (tokenizer_bpe_text.c);
 *   model          BPE: vocab, merges ("a b" strings or [a, b] pairs), unk_token,
 *                  fuse_unk, byte_fallback, ignore_merges,
 *                  continuing_subword_prefix, end_of_word_suffix (dropout is
 *                  ignored: encoding is deterministic);
 *   decoder        Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel,
 *                  Metaspace (tokenizer_bpe_decode.c);
 *   post_processor only read for BOS/EOS (tokenizer.h).
 * Known difference: Metaspace's prepend_scheme "first" is decided by whether a
 * text starts at offset 0 of the input after normalization, which is what
 * `tokenizers` does unless a normalizer inserts text in front of a normalized
 * added token. */
#include "tokenizer_bpe.h"
#include "user_path.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct load {
    tokenizer_bpe *t;
    const char *path;
    char *err;
    size_t err_len;
} load;

static int fail(load *L, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(L->err, L->err_len, "%s: %s", L->path, msg);
    return -1;
}

static char *dup_mem(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static const char *jstr(const json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return NULL;
    if (len)
        *len = json_string_length(v);
    return json_string_value(v);
}

static int jbool(const json_t *o, const char *key, int def)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

/* a one-character string field (Metaspace replacement, Strip content) */
static int jchar(load *L, const json_t *o, const char *what, const char *key, uint32_t def,
                 uint32_t *out)
{
    size_t n;
    const char *s = jstr(o, key, &n);
    if (!s) {
        *out = def;
        return 0;
    }
    uint32_t cp;
    if (n == 0 || tb_utf8_next(s, n, 0, &cp) != n || cp == TB_INVALID)
        return fail(L, "%s: \"%s\" must be one character", what, key);
    *out = cp;
    return 0;
}

/* pattern: {"String": s} or {"Regex": r}, a regex only when it is a plain string */
static const char *jpattern(load *L, const json_t *o, const char *what, size_t *len)
{
    json_t *p = json_object_get(o, "pattern");
    const char *s = jstr(p, "String", len);
    if (s && *len)
        return s;
    s = jstr(p, "Regex", len);
    if (s && *len && !strpbrk(s, "\\.^$|?*+()[]{}"))
        return s;
    if (s)
        fail(L, "%s: the regex pattern \"%s\" is not supported", what, s);
    else
        fail(L, "%s: \"pattern\" must be {\"String\": ...} with a non-empty string", what);
    return NULL;
}

static const char *type_of(const json_t *o)
{
    const char *t = jstr(o, "type", NULL);
    return t ? t : "";
}

/* ---- normalizer ---- */

static int add_norm(load *L, tb_norm op)
{
    tokenizer_bpe *t = L->t;
    tb_norm *v = realloc(t->norm, (t->n_norm + 1) * sizeof *v);
    if (!v)
        return fail(L, "out of memory");
    t->norm = v;
    v[t->n_norm++] = op;
    return 0;
}

static int parse_normalizer(load *L, const json_t *j)
{
    if (!j || json_is_null(j))
        return 0;
    const char *type = type_of(j);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "normalizers");
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) if (parse_normalizer(L, x)) return -1;
        return 0;
    }
    size_t al = 0, bl = 0;
    if (strcmp(type, "Prepend") == 0) {
        const char *a = jstr(j, "prepend", &al);
        if (!a)
            return fail(L, "normalizer Prepend: no \"prepend\" string");
        return add_norm(L, (tb_norm){TB_NORM_PREPEND, dup_mem(a, al), NULL, al, 0});
    }
    if (strcmp(type, "Replace") == 0) {
        const char *a = jpattern(L, j, "normalizer Replace", &al);
        const char *b = jstr(j, "content", &bl);
        if (!a)
            return -1;
        if (!b)
            return fail(L, "normalizer Replace: no \"content\" string");
        return add_norm(L, (tb_norm){TB_NORM_REPLACE, dup_mem(a, al), dup_mem(b, bl), al, bl});
    }
    return fail(L, "normalizer \"%s\" is not supported (flame has Sequence, Prepend, Replace)",
                type);
}

/* ---- pre-tokenizer ---- */

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int add_pre(load *L, tb_pre op)
{
    tokenizer_bpe *t = L->t;
    tb_pre *v = realloc(t->pre, (t->n_pre + 1) * sizeof *v);
    if (!v)
        return fail(L, "out of memory");
    t->pre = v;
    v[t->n_pre++] = op;
    return 0;
}

static int prepend_scheme(load *L, const json_t *j, const char *what, int *out)
{
    const char *s = jstr(j, "prepend_scheme", NULL);
    json_t *aps = json_object_get(j, "add_prefix_space");
    *out = TB_PREPEND_ALWAYS;
    if (s && strcmp(s, "first") == 0)
        *out = TB_PREPEND_FIRST;
    else if (s && strcmp(s, "never") == 0)
        *out = TB_PREPEND_NEVER;
    else if (s && strcmp(s, "always") != 0)
        return fail(L, "%s: unknown prepend_scheme \"%s\"", what, s);
    if (json_is_false(aps)) {
        if (s && *out != TB_PREPEND_NEVER)
            return fail(L, "%s: add_prefix_space does not match prepend_scheme", what);
        *out = TB_PREPEND_NEVER;
    }
    return 0;
}

static int parse_pre_tokenizer(load *L, const json_t *j)
{
    if (!j || json_is_null(j))
        return 0;
    const char *type = type_of(j);
    tb_pre op = {0};
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "pretokenizers");
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) if (parse_pre_tokenizer(L, x)) return -1;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        op.kind = TB_PRE_BYTELEVEL;
        op.add_prefix_space = jbool(j, "add_prefix_space", 1);
        op.use_regex = jbool(j, "use_regex", 1);
        return add_pre(L, op);
    }
    if (strcmp(type, "Metaspace") == 0) {
        op.kind = TB_PRE_METASPACE;
        op.split = jbool(j, "split", 1);
        if (jchar(L, j, "pre_tokenizer Metaspace", "replacement", 0x2581, &op.replacement) ||
            prepend_scheme(L, j, "pre_tokenizer Metaspace", &op.prepend_scheme))
            return -1;
        return add_pre(L, op);
    }
    if (strcmp(type, "Digits") == 0) {
        op.kind = TB_PRE_DIGITS;
        op.individual_digits = jbool(j, "individual_digits", 0);
        return add_pre(L, op);
    }
    if (strcmp(type, "Split") == 0) {
        static const char *const names[] = {"removed", "isolated", "mergedwithprevious",
                                            "mergedwithnext", "contiguous"};
        op.kind = TB_PRE_SPLIT;
        op.invert = jbool(j, "invert", 0);
        const char *b = jstr(j, "behavior", NULL);
        char norm[32] = "";
        for (size_t i = 0, k = 0; b && b[i] && k + 1 < sizeof norm; i++)
            if (b[i] != '_')
                norm[k++] = (char)(b[i] | 32), norm[k] = 0;
        op.behavior = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(norm, names[i]) == 0)
                op.behavior = i;
        if (op.behavior < 0)
            return fail(L, "pre_tokenizer Split: unknown behavior \"%s\"", b ? b : "");
        json_t *p = json_object_get(j, "pattern");
        size_t len;
        const char *re = jstr(p, "Regex", &len);
        if (re) {
            op.regex = strcmp(re, RE_GPT2) == 0     ? TB_RE_GPT2
                       : strcmp(re, RE_LLAMA3) == 0 ? TB_RE_LLAMA3
                       : strcmp(re, RE_QWEN2) == 0  ? TB_RE_QWEN2
                                                    : TB_RE_NONE;
            if (op.regex != TB_RE_NONE)
                return add_pre(L, op);
        }
        const char *s = jpattern(L, j, "pre_tokenizer Split", &len);
        if (!s)
            return re ? fail(L,
                             "pre_tokenizer Split: the regex \"%s\" is not supported (flame "
                             "has those of GPT-2, Llama-3 and Qwen2, and plain strings)",
                             re)
                      : -1;
        op.regex = TB_RE_NONE;
        op.pattern = dup_mem(s, len);
        op.pattern_len = len;
        return add_pre(L, op);
    }
    return fail(L,
                "pre_tokenizer \"%s\" is not supported (flame has Sequence, ByteLevel, "
                "Metaspace, Split, Digits)",
                type);
}

/* ---- decoder ---- */

static int add_dec(load *L, tb_dec op)
{
    tokenizer_bpe *t = L->t;
    tb_dec *v = realloc(t->dec, (t->n_dec + 1) * sizeof *v);
    if (!v)
        return fail(L, "out of memory");
    t->dec = v;
    v[t->n_dec++] = op;
    return 0;
}

static int parse_decoder(load *L, const json_t *j)
{
    if (!j || json_is_null(j))
        return 0;
    L->t->has_decoder = 1;
    const char *type = type_of(j);
    tb_dec op = {0};
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "decoders");
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) if (parse_decoder(L, x)) return -1;
        return 0;
    }
    if (strcmp(type, "Replace") == 0) {
        size_t al, bl;
        const char *a = jpattern(L, j, "decoder Replace", &al);
        const char *b = jstr(j, "content", &bl);
        if (!a)
            return -1;
        if (!b)
            return fail(L, "decoder Replace: no \"content\" string");
        op.kind = TB_DEC_REPLACE;
        op.a = dup_mem(a, al), op.a_len = al;
        op.b = dup_mem(b, bl), op.b_len = bl;
        return add_dec(L, op);
    }
    if (strcmp(type, "ByteFallback") == 0 || strcmp(type, "Fuse") == 0 ||
        strcmp(type, "ByteLevel") == 0) {
        op.kind = type[0] == 'F' ? TB_DEC_FUSE : type[4] == 'F' ? TB_DEC_BYTEFALLBACK
                                                                : TB_DEC_BYTELEVEL;
        return add_dec(L, op);
    }
    if (strcmp(type, "Strip") == 0) {
        op.kind = TB_DEC_STRIP;
        json_int_t start = json_integer_value(json_object_get(j, "start"));
        json_int_t stop = json_integer_value(json_object_get(j, "stop"));
        if (start < 0 || stop < 0 || start > 1000000 || stop > 1000000)
            return fail(L, "decoder Strip: bad start/stop");
        op.start = (int)start, op.stop = (int)stop;
        if (jchar(L, j, "decoder Strip", "content", ' ', &op.ch))
            return -1;
        return add_dec(L, op);
    }
    if (strcmp(type, "Metaspace") == 0) {
        op.kind = TB_DEC_METASPACE;
        if (jchar(L, j, "decoder Metaspace", "replacement", 0x2581, &op.ch) ||
            prepend_scheme(L, j, "decoder Metaspace", &op.prepend_scheme))
            return -1;
        return add_dec(L, op);
    }
    return fail(L,
                "decoder \"%s\" is not supported (flame has Sequence, Replace, ByteFallback, "
                "Fuse, Strip, ByteLevel, Metaspace)",
                type);
}

/* ---- model ---- */

static int parse_model(load *L, const json_t *j)
{
    tb_model *m = &L->t->model;
    if (!json_is_object(j))
        return fail(L, "no \"model\" object");
    const char *type = jstr(j, "type", NULL);
    if (type ? strcmp(type, "BPE") != 0 : !json_object_get(j, "merges"))
        return fail(L, "model type \"%s\" is not supported (flame reads BPE tokenizers)",
                    type ? type : "?");
    json_t *vocab = json_object_get(j, "vocab"), *merges = json_object_get(j, "merges");
    if (!json_is_object(vocab))
        return fail(L, "model: no \"vocab\" object");
    if (!json_is_array(merges))
        return fail(L, "model: no \"merges\" array");
    /* vocab */
    m->n_ids = 0;
    for (void *it = json_object_iter(vocab); it; it = json_object_iter_next(vocab, it)) {
        json_t *v = json_object_iter_value(it);
        const char *key = json_object_iter_key(it);
        size_t key_len = json_object_iter_key_len(it);
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= TB_MAX_IDS)
            return fail(L, "model: vocab \"%s\": the id must be a whole number from 0 to %d", key, TB_MAX_IDS - 1);
        if (tb_strmap_put(&m->vocab, key, key_len, (uint64_t)id))
            return fail(L, "out of memory");
        if (id + 1 > m->n_ids)
            m->n_ids = (int32_t)id + 1;
    }
    m->tok_off = malloc(((size_t)m->n_ids + 1) * sizeof *m->tok_off);
    m->tok_len = malloc(((size_t)m->n_ids + 1) * sizeof *m->tok_len);
    if (!m->tok_off || !m->tok_len)
        return fail(L, "out of memory");
    for (int32_t i = 0; i < m->n_ids; i++)
        m->tok_len[i] = UINT32_MAX;
    for (size_t i = 0; m->vocab.e && i <= m->vocab.mask; i++) {
        const tb_strmap_entry *e = &m->vocab.e[i];
        if (e->off != UINT32_MAX)
            m->tok_off[e->val] = e->off, m->tok_len[e->val] = e->len;
    }
    /* options */
    size_t len;
    const char *s;
    if ((s = jstr(j, "continuing_subword_prefix", &len)))
        m->prefix = dup_mem(s, len), m->prefix_len = len;
    if ((s = jstr(j, "end_of_word_suffix", &len)))
        m->suffix = dup_mem(s, len), m->suffix_len = len;
    m->fuse_unk = jbool(j, "fuse_unk", 0);
    m->byte_fallback = jbool(j, "byte_fallback", 0);
    m->ignore_merges = jbool(j, "ignore_merges", 0);
    m->unk_id = -1;
    if ((s = jstr(j, "unk_token", &len))) {
        m->unk_id = tb_model_id(m, s, len);
        if (m->unk_id < 0)
            return fail(L, "model: unk_token \"%s\" is not in the vocab", s);
    }
    /* merges: rank = place in the list; a later duplicate wins, as in `tokenizers` */
    tb_buf cat = {0};
    size_t i, rank = 0;
    json_t *x;
    int rc = 0;
    json_array_foreach(merges, i, x)
    {
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(x)) {
            a = json_string_value(x);
            size_t n = json_string_length(x);
            if (n >= 8 && memcmp(a, "#version", 8) == 0)
                continue;
            const char *sp = memchr(a, ' ', n);
            if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - a))) {
                rc = fail(L, "model: merge %zu (\"%s\") is not two tokens separated by a space",
                          i, a);
                break;
            }
            al = (size_t)(sp - a), b = sp + 1, bl = n - al - 1;
        } else if (json_is_array(x) && json_array_size(x) == 2 &&
                   json_is_string(json_array_get(x, 0)) &&
                   json_is_string(json_array_get(x, 1))) {
            a = json_string_value(json_array_get(x, 0));
            al = json_string_length(json_array_get(x, 0));
            b = json_string_value(json_array_get(x, 1));
            bl = json_string_length(json_array_get(x, 1));
        } else {
            rc = fail(L, "model: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
            break;
        }
        int32_t ia = tb_model_id(m, a, al), ib = tb_model_id(m, b, bl);
        if (ia < 0 || ib < 0) {
            rc = fail(L, "model: merge %zu: \"%.*s\" is not in the vocab", i,
                      (int)(ia < 0 ? al : bl), ia < 0 ? a : b);
            break;
        }
        if (bl < m->prefix_len) {
            rc = fail(L, "model: merge %zu: \"%.*s\" is shorter than the subword prefix", i,
                      (int)bl, b);
            break;
        }
        cat.n = 0;
        if (tb_buf_put(&cat, a, al) || tb_buf_put(&cat, b + m->prefix_len, bl - m->prefix_len)) {
            rc = fail(L, "out of memory");
            break;
        }
        int32_t id = tb_model_id(m, cat.p, cat.n);
        if (id < 0) {
            rc = fail(L, "model: merge %zu: \"%.*s\" is not in the vocab", i, (int)cat.n, cat.p);
            break;
        }
        if (tb_pairmap_put(&m->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib,
                           (uint32_t)rank++, id)) {
            rc = fail(L, "out of memory");
            break;
        }
    }
    free(cat.p);
    if (rc)
        return rc;
    if (tb_model_finish(m))
        return fail(L, "out of memory");
    return 0;
}

/* ---- added tokens ---- */

static int trie_node(tb_trie *tr, unsigned char byte)
{
    if (tr->n == tr->cap) {
        size_t cap = tr->cap ? tr->cap * 2 : 256;
        tb_trie_node *v = realloc(tr->v, cap * sizeof *v);
        if (!v)
            return -1;
        tr->v = v, tr->cap = cap;
    }
    tr->v[tr->n] = (tb_trie_node){-1, -1, -1, byte};
    return (int)tr->n++;
}

static int trie_add(tb_trie *tr, const char *s, size_t n, int32_t token)
{
    if (tr->n == 0 && trie_node(tr, 0) < 0)
        return -1;
    tr->first[(unsigned char)s[0]] = 1;
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int32_t k = tr->v[node].child;
        while (k >= 0 && tr->v[k].byte != c)
            k = tr->v[k].sibling;
        if (k < 0) {
            k = trie_node(tr, c);
            if (k < 0)
                return -1;
            tr->v[k].sibling = tr->v[node].child;
            tr->v[node].child = k;
        }
        node = k;
    }
    if (tr->v[node].token < 0) /* the first of equal patterns */
        tr->v[node].token = token;
    return 0;
}

/* the longest pattern at s[i]: its token (end in *end), or -1 */
static int32_t trie_longest(const tb_trie *tr, const char *s, size_t n, size_t i, size_t *end)
{
    int32_t best = -1, node = 0;
    for (size_t j = i; j < n; j++) {
        unsigned char c = (unsigned char)s[j];
        int32_t k = tr->v[node].child;
        while (k >= 0 && tr->v[k].byte != c)
            k = tr->v[k].sibling;
        if (k < 0)
            break;
        node = k;
        if (tr->v[k].token >= 0)
            best = tr->v[k].token, *end = j + 1;
    }
    return best;
}

static int parse_added(load *L, const json_t *list)
{
    tokenizer_bpe *t = L->t;
    size_t i;
    json_t *x;
    if (list && !json_is_array(list))
        return fail(L, "\"added_tokens\" must be an array");
    int32_t next_id = (int32_t)t->model.vocab.count; /* `tokenizers`: the model's vocab size */
    t->added = calloc(json_array_size(list) + 1, sizeof *t->added);
    if (!t->added)
        return fail(L, "out of memory");
    json_array_foreach(list, i, x)
    {
        size_t len;
        const char *content = jstr(x, "content", &len);
        if (!content)
            return fail(L, "added_tokens[%zu]: no \"content\" string", i);
        /* the id the file gives: `tokenizers` reads it as an unsigned 32-bit
         * number and refuses the file when it is not one */
        const json_t *id = json_object_get(x, "id");
        if (id && !(json_is_integer(id) && json_integer_value(id) >= 0 &&
                    json_integer_value(id) <= INT32_MAX))
            return fail(L, "added_tokens[%zu]: \"id\" must be a whole number from 0 to %d", i,
                        INT32_MAX);
        if (len == 0)
            continue;
        int special = jbool(x, "special", 0);
        tb_added a = {0};
        a.special = special;
        a.single_word = jbool(x, "single_word", 0);
        a.lstrip = jbool(x, "lstrip", 0);
        a.rstrip = jbool(x, "rstrip", 0);
        a.normalized = jbool(x, "normalized", !special);
        /* the id: an earlier added token's or the model's, else the next one */
        size_t k = 0;
        while (k < t->n_added && !(t->added[k].len == len && memcmp(t->added[k].content, content,
                                                                       len) == 0))
            k++;
        if (k < t->n_added) {
            a.id = t->added[k].id;
            free(t->added[k].content);
            free(t->added[k].norm);
        } else {
            a.id = tb_model_id(&t->model, content, len);
            if (a.id < 0)
                a.id = next_id++;
            t->n_added++;
        }
        a.content = dup_mem(content, len);
        a.len = len;
        if (!a.content)
            return fail(L, "out of memory");
        if (a.normalized && t->n_norm) {
            tb_buf out = {0}, tmp = {0};
            int rc = tb_normalize(t->norm, t->n_norm, content, len, &out, &tmp);
            free(tmp.p);
            if (rc)
                return fail(L, "out of memory");
            a.norm = dup_mem(out.p ? out.p : "", out.n);
            a.norm_len = out.n;
            free(out.p);
        }
        t->added[k] = a;
    }
    return 0;
}

static int finish_added(load *L)
{
    tokenizer_bpe *t = L->t;
    int32_t max_id = t->model.n_ids - 1;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].id > max_id)
            max_id = t->added[k].id;
    t->vocab_size = max_id + 1;
    t->added_of_id = malloc(((size_t)t->vocab_size + 1) * sizeof *t->added_of_id);
    if (!t->added_of_id)
        return fail(L, "out of memory");
    for (int32_t i = 0; i < t->vocab_size; i++)
        t->added_of_id[i] = -1;
    for (size_t k = 0; k < t->n_added; k++) {
        tb_added *a = &t->added[k];
        t->added_of_id[a->id] = (int32_t)k;
        /* matched on the raw text, or on the normalized text by its normalized form */
        const char *pat = a->normalized && a->norm ? a->norm : a->content;
        size_t pl = a->normalized && a->norm ? a->norm_len : a->len;
        if (pl && trie_add(a->normalized ? &t->norm_trie : &t->raw_trie, pat, pl, (int32_t)k))
            return fail(L, "out of memory");
    }
    /* decode skips a token whose text (the normalized one where it differs) is a
     * special token's content */
    for (size_t k = 0; k < t->n_added; k++) {
        size_t len;
        const char *s = tb_id_text(t, t->added[k].id, &len);
        for (size_t j = 0; j < t->n_added && !t->added[k].skip; j++)
            t->added[k].skip = t->added[j].special && t->added[j].len == len &&
                               memcmp(t->added[j].content, s, len) == 0;
    }
    return 0;
}

/* ---- BOS / EOS ---- */

static int32_t special_id(tokenizer_bpe *t, const json_t *pp, const char *name)
{
    json_t *ids = json_object_get(json_object_get(json_object_get(pp, "special_tokens"), name),
                                  "ids");
    if (json_is_integer(json_array_get(ids, 0)))
        return (int32_t)json_integer_value(json_array_get(ids, 0));
    return tb_token_id(t, name, strlen(name));
}

static void post_processor_ids(tokenizer_bpe *t, const json_t *pp)
{
    const char *type = type_of(pp);
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(pp, "processors"), i, x) post_processor_ids(t, x);
    } else if (strcmp(type, "TemplateProcessing") == 0) {
        size_t i;
        json_t *x;
        int seen_sequence = 0;
        json_array_foreach(json_object_get(pp, "single"), i, x)
        {
            const char *name = jstr(json_object_get(x, "SpecialToken"), "id", NULL);
            if (json_object_get(x, "Sequence"))
                seen_sequence = 1;
            else if (name && !seen_sequence && t->bos_id < 0)
                t->bos_id = special_id(t, pp, name);
            else if (name && seen_sequence)
                t->eos_id = special_id(t, pp, name);
        }
    } else if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        json_t *cls = json_array_get(json_object_get(pp, "cls"), 1);
        json_t *sep = json_array_get(json_object_get(pp, "sep"), 1);
        if (json_is_integer(cls) && t->bos_id < 0)
            t->bos_id = (int32_t)json_integer_value(cls);
        if (json_is_integer(sep) && t->eos_id < 0)
            t->eos_id = (int32_t)json_integer_value(sep);
    }
}

static void find_bos_eos(tokenizer_bpe *t, const json_t *pp)
{
    static const char *const bos[] = {"<s>", "<|begin_of_text|>"};
    static const char *const eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
    t->bos_id = t->eos_id = -1;
    if (pp)
        post_processor_ids(t, pp);
    for (size_t i = 0; i < 2 && t->bos_id < 0; i++)
        t->bos_id = tb_token_id(t, bos[i], strlen(bos[i]));
    for (size_t i = 0; i < 3 && t->eos_id < 0; i++)
        t->eos_id = tb_token_id(t, eos[i], strlen(eos[i]));
    if (t->bos_id >= t->vocab_size)
        t->bos_id = -1;
    if (t->eos_id >= t->vocab_size)
        t->eos_id = -1;
}

/* ---- opening ---- */

tokenizer_bpe *tb_open(const char *name, char *err, size_t err_len)
{
    struct stat st;
    if (stat(name, &st) != 0) {
        if (user_path_is_hub_name(name) || !strchr(name, '/'))
            snprintf(err, err_len,
                     "%s: not a local file or folder; flame does not download: fetch it "
                     "(huggingface-cli download %s --local-dir DIR) and pass DIR, or \"byte\"",
                     name, name);
        else
            snprintf(err, err_len, "%s: cannot open tokenizer: %s", name, strerror(errno));
        return NULL;
    }
    char *path = malloc(strlen(name) + sizeof "/tokenizer.json");
    if (!path) {
        snprintf(err, err_len, "%s: out of memory", name);
        return NULL;
    }
    strcpy(path, name);
    if (S_ISDIR(st.st_mode)) {
        strcat(path, "/tokenizer.json");
        if (stat(path, &st) != 0) {
            snprintf(err, err_len, "%s: no tokenizer.json in this folder", name);
            free(path);
            return NULL;
        }
    }
    json_error_t je;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!root) {
        if (je.line > 0)
            snprintf(err, err_len, "%s:%d:%d: malformed JSON: %s", path, je.line, je.column,
                     je.text);
        else
            snprintf(err, err_len, "%s: cannot read tokenizer: %s", path, je.text);
        free(path);
        return NULL;
    }
    tokenizer_bpe *t = calloc(1, sizeof *t);
    load L = {t, path, err, err_len};
    int rc = t ? 0 : -1;
    if (!t)
        snprintf(err, err_len, "%s: out of memory", path);
    if (rc == 0 && !json_is_object(root))
        rc = fail(&L, "not a tokenizer.json (the top level is not an object)");
    if (rc == 0)
        rc = parse_normalizer(&L, json_object_get(root, "normalizer"));
    if (rc == 0)
        rc = parse_pre_tokenizer(&L, json_object_get(root, "pre_tokenizer"));
    if (rc == 0)
        rc = parse_model(&L, json_object_get(root, "model"));
    if (rc == 0)
        rc = parse_decoder(&L, json_object_get(root, "decoder"));
    if (rc == 0)
        rc = parse_added(&L, json_object_get(root, "added_tokens"));
    if (rc == 0)
        rc = finish_added(&L);
    if (rc == 0)
        find_bos_eos(t, json_object_get(root, "post_processor"));
    json_decref(root);
    free(path);
    if (rc) {
        if (t)
            tb_close(t);
        return NULL;
    }
    return t;
}

void tb_close(tokenizer_bpe *t)
{
    tb_model_free(&t->model);
    for (size_t i = 0; i < t->n_norm; i++)
        free(t->norm[i].a), free(t->norm[i].b);
    for (size_t i = 0; i < t->n_pre; i++)
        free(t->pre[i].pattern);
    for (size_t i = 0; i < t->n_dec; i++)
        free(t->dec[i].a), free(t->dec[i].b);
    for (size_t i = 0; t->added && i < t->n_added; i++)
        free(t->added[i].content), free(t->added[i].norm);
    free(t->norm);
    free(t->pre);
    free(t->dec);
    free(t->added);
    free(t->added_of_id);
    free(t->raw_trie.v);
    free(t->norm_trie.v);
    free(t->normalized.p);
    free(t->work.p);
    free(t->pieces.text.p);
    free(t->pieces.v);
    free(t->pieces_tmp.text.p);
    free(t->pieces_tmp.v);
    free(t->raw_splits.v);
    free(t->norm_splits.v);
    free(t);
}

int32_t tb_token_id(const tokenizer_bpe *t, const char *s, size_t n)
{
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].len == n && memcmp(t->added[k].content, s, n) == 0)
            return t->added[k].id;
    return tb_model_id(&t->model, s, n);
}

const char *tb_id_text(const tokenizer_bpe *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->vocab_size)
        return NULL;
    if (t->added_of_id[id] >= 0) {
        const tb_added *a = &t->added[t->added_of_id[id]];
        int use_norm = a->norm && !(a->norm_len == a->len && memcmp(a->norm, a->content,
                                                                      a->len) == 0);
        *len = use_norm ? a->norm_len : a->len;
        return use_norm ? a->norm : a->content;
    }
    if (id >= t->model.n_ids || t->model.tok_len[id] == UINT32_MAX)
        return NULL;
    *len = t->model.tok_len[id];
    return t->model.vocab.keys.p + t->model.tok_off[id];
}

/* ---- encoding ---- */

static int split_add(tb_splits *s, size_t a, size_t b, int32_t added)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        tb_split *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = (tb_split){a, b, added};
    return 0;
}

/* start of the white space at the end of s[0, n) */
static size_t space_at_end(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80 && i - j < 4)
            j--;
        uint32_t cp;
        if (tb_utf8_next(s, i, j, &cp) != i - j || !tb_is_space(cp))
            break;
        i = j;
    }
    return i;
}

static size_t space_at_start(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = tb_utf8_next(s, n, i, &cp);
        if (!tb_is_space(cp))
            break;
        i += l;
    }
    return i;
}

static int word_before(const char *s, size_t end)
{
    if (end == 0)
        return 0;
    size_t j = end - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80 && end - j < 4)
        j--;
    uint32_t cp;
    return tb_utf8_next(s, end, j, &cp) == end - j && tb_is_word(cp);
}

/* The added tokens of trie in s, as `tokenizers`' AddedVocabulary::find_matches:
 * splits covering s (those of tokens may overlap text when rstrip ate it). */
static int find_added(const tokenizer_bpe *t, const tb_trie *tr, const char *s, size_t n,
                      tb_splits *out)
{
    out->n = 0;
    size_t start_offset = 0, i = 0;
    while (tr->n && i < n) {
        if (!tr->first[(unsigned char)s[i]]) {
            i++;
            continue;
        }
        size_t end = 0;
        int32_t k = trie_longest(tr, s, n, i, &end);
        if (k < 0) {
            i++;
            continue;
        }
        const tb_added *a = &t->added[k];
        size_t start = i, stop = end;
        i = end;
        if (a->single_word) {
            uint32_t cp;
            int word_after = stop < n && (tb_utf8_next(s, n, stop, &cp), tb_is_word(cp));
            if (word_before(s, start) || word_after)
                continue;
        }
        if (a->lstrip) {
            size_t ns = space_at_end(s, start);
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip)
            stop += space_at_start(s + stop, n - stop);
        if (start_offset < start && split_add(out, start_offset, start, -1))
            return -1;
        if (split_add(out, start, stop, k))
            return -1;
        start_offset = stop;
    }
    if (start_offset != n && split_add(out, start_offset, n, -1))
        return -1;
    return 0;
}

static int pretokenize_and_model(tokenizer_bpe *t, const char *s, size_t n, int at_start,
                                 tokenizer_ids *out)
{
    if (n == 0)
        return 0;
    if (t->n_pre == 0)
        return tb_model_tokenize(&t->model, s, n, out);
    tb_pieces *p = &t->pieces;
    p->n = 0, p->text.n = 0;
    if (tb_buf_put(&p->text, s, n) || tb_pieces_add(p, 0, n, at_start) ||
        tb_pretokenize(t->pre, t->n_pre, p, &t->pieces_tmp, &t->work))
        return -1;
    for (size_t i = 0; i < p->n; i++)
        if (tb_model_tokenize(&t->model, p->text.p + p->v[i].off, p->v[i].len, out))
            return -1;
    return 0;
}

/* a text between raw added tokens: normalize, then the normalized added tokens */
static int encode_text(tokenizer_bpe *t, const char *s, size_t n, int at_start,
                       tokenizer_ids *out)
{
    if (n == 0)
        return 0;
    if (t->n_norm) {
        if (tb_normalize(t->norm, t->n_norm, s, n, &t->normalized, &t->work))
            return -1;
        s = t->normalized.p, n = t->normalized.n;
    }
    if (!t->norm_trie.n)
        return pretokenize_and_model(t, s, n, at_start, out);
    tb_splits *sp = &t->norm_splits;
    if (find_added(t, &t->norm_trie, s, n, sp))
        return -1;
    for (size_t k = 0; k < sp->n; k++) {
        const tb_split *x = &sp->v[k];
        if (x->b <= x->a)
            continue;
        if (x->added >= 0 ? tb_ids_push(out, t->added[x->added].id)
                          : pretokenize_and_model(t, s + x->a, x->b - x->a, at_start && x->a == 0,
                                                  out))
            return -1;
    }
    return 0;
}

int tb_encode(tokenizer_bpe *t, const char *s, size_t n, tokenizer_ids *out)
{
    if (n == 0)
        return 0;
    if (!t->raw_trie.n)
        return encode_text(t, s, n, 1, out);
    tb_splits *sp = &t->raw_splits;
    if (find_added(t, &t->raw_trie, s, n, sp))
        return -1;
    for (size_t k = 0; k < sp->n; k++) {
        const tb_split *x = &sp->v[k];
        if (x->b <= x->a)
            continue;
        if (x->added >= 0 ? tb_ids_push(out, t->added[x->added].id)
                          : encode_text(t, s + x->a, x->b - x->a, x->a == 0, out))
            return -1;
    }
    return 0;
}
