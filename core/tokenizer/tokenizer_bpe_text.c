/* Text side of the tokenizer.json BPE tokenizer: UTF-8, Unicode classes, the
 * normalizers (Prepend, Replace with a string) and the pre-tokenizers (ByteLevel,
 * Metaspace, Split, Digits) with the splitting behaviours of `tokenizers`.
 *
 * Split regexes are not compiled from their text: the patterns of GPT-2 (also
 * ByteLevel's own), Llama-3 and Qwen2 are recognized and matched by hand-written
 * code that does what Oniguruma (the regex engine of `tokenizers`) does with them:
 * the first alternative that matches at a position wins, quantifiers are greedy
 * and backtrack. Their \s is White_Space, \p{L} and \p{N} the Unicode 16.0
 * categories (tokenizer_bpe_unicode.c). */
#include "tokenizer_bpe.h"

#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 and classes ---- */

static inline int cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

size_t tb_utf8_next(const char *str, size_t n, size_t i, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str + i;
    size_t left = n - i;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        if (left >= 2 && cont(s[1])) {
            *cp = (c & 0x1Fu) << 6 | (s[1] & 0x3Fu);
            return 2;
        }
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (left >= 3 && cont(s[1]) && cont(s[2])) {
            uint32_t v = (c & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
            if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) {
                *cp = v;
                return 3;
            }
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (left >= 4 && cont(s[1]) && cont(s[2]) && cont(s[3])) {
            uint32_t v = (c & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 |
                         (s[3] & 0x3Fu);
            if (v >= 0x10000 && v <= 0x10FFFF) {
                *cp = v;
                return 4;
            }
        }
    }
    *cp = TB_INVALID;
    return 1;
}

size_t tb_utf8_put(char *out, uint32_t cp)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int tb_is_space(uint32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= 9 && cp <= 13);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

unsigned tb_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((unsigned)((cp | 32) - 'a') < 26)
            return TB_L;
        if ((unsigned)(cp - '0') < 10)
            return TB_N;
        return (cp == ' ' || (cp >= 9 && cp <= 13)) ? TB_S : TB_O;
    }
    if (cp == TB_INVALID)
        return TB_O;
    if (tb_is_space(cp))
        return TB_S;
    if (in_ranges(tb_unicode_L, tb_unicode_L_count, cp))
        return TB_L;
    if (in_ranges(tb_unicode_N, tb_unicode_N_count, cp))
        return TB_N;
    return TB_O;
}

int tb_is_word(uint32_t cp)
{
    if (cp < 0x80)
        return (unsigned)((cp | 32) - 'a') < 26 || (unsigned)(cp - '0') < 10 || cp == '_';
    return cp != TB_INVALID && in_ranges(tb_unicode_W, tb_unicode_W_count, cp);
}

/* ---- normalizers ---- */

/* the non-overlapping leftmost occurrences of pat in s, from i: the next one or n */
static size_t find_str(const char *s, size_t n, size_t i, const char *pat, size_t pl)
{
    while (i + pl <= n) {
        const char *p = memchr(s + i, pat[0], n - i - pl + 1);
        if (!p)
            return n;
        i = (size_t)(p - s);
        if (memcmp(p, pat, pl) == 0)
            return i;
        i++;
    }
    return n;
}

int tb_replace_str(tb_buf *out, const char *s, size_t n, const char *a, size_t al,
                       const char *b, size_t bl)
{
    size_t i = 0;
    while (i < n) {
        size_t j = find_str(s, n, i, a, al);
        if (tb_buf_put(out, s + i, j - i))
            return -1;
        if (j == n)
            break;
        if (tb_buf_put(out, b, bl))
            return -1;
        i = j + al;
    }
    return 0;
}

int tb_normalize(const tb_norm *ops, size_t n_ops, const char *s, size_t n, tb_buf *out,
                 tb_buf *tmp)
{
    out->n = 0;
    if (tb_buf_put(out, s, n))
        return -1;
    for (size_t k = 0; k < n_ops; k++) {
        const tb_norm *op = &ops[k];
        tmp->n = 0;
        if (op->kind == TB_NORM_PREPEND) {
            if (out->n == 0)
                continue;
            if (tb_buf_put(tmp, op->a, op->a_len) || tb_buf_put(tmp, out->p, out->n))
                return -1;
        } else if (tb_replace_str(tmp, out->p, out->n, op->a, op->a_len, op->b, op->b_len)) {
            return -1;
        }
        tb_buf t = *out;
        *out = *tmp;
        *tmp = t;
    }
    return 0;
}

/* ---- the hand-written regexes ---- */

typedef struct ch {
    uint32_t cp;
    unsigned len, cls;
} ch;

static inline ch ch_at(const char *s, size_t n, size_t i)
{
    ch c;
    unsigned char b = (unsigned char)s[i];
    if (b < 0x80) {
        c.cp = b, c.len = 1;
    } else {
        c.len = (unsigned)tb_utf8_next(s, n, i, &c.cp);
    }
    c.cls = tb_class(c.cp);
    return c;
}

/* end of the run of characters of the classes in mask, from i */
static size_t run(const char *s, size_t n, size_t i, unsigned mask)
{
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0x80) {
            if (!(tb_class(b) & mask))
                break;
            i++;
        } else {
            ch c = ch_at(s, n, i);
            if (!(c.cls & mask))
                break;
            i += c.len;
        }
    }
    return i;
}

static size_t run_crlf(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* 's|'t|'re|'ve|'m|'ll|'d at s[i] == '\'', case-insensitive ((?i:...), where ſ is s)
 * or not: the end, or 0 */
static size_t contraction(const char *s, size_t n, size_t i, int fold)
{
    if (i + 1 >= n)
        return 0;
    unsigned char c = (unsigned char)s[i + 1];
    if (fold) {
        if (c == 0xC5 && i + 2 < n && (unsigned char)s[i + 2] == 0xBF)
            return i + 3; /* U+017F ſ folds to s */
        if (c < 0x80)
            c = (unsigned char)(c | 32);
    }
    if (c == 's' || c == 't' || c == 'm' || c == 'd')
        return i + 2;
    if (i + 2 >= n)
        return 0;
    unsigned char d = (unsigned char)s[i + 2];
    if (fold && d < 0x80)
        d = (unsigned char)(d | 32);
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l'))
        return i + 3;
    return 0;
}

/* \s+(?!\S)|\s+ at a white space character */
static size_t space_tail(const char *s, size_t n, size_t i)
{
    size_t j = i, last = i;
    while (j < n) {
        ch c = ch_at(s, n, j);
        if (c.cls != TB_S)
            break;
        last = j;
        j += c.len;
    }
    if (j == n || last == i)
        return j;
    return last; /* leave the last space to the next word */
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const char *s, size_t n, size_t i)
{
    if (s[i] == '\'') {
        size_t e = contraction(s, n, i, 0);
        if (e)
            return e;
    }
    if (s[i] == ' ' && i + 1 < n) {
        ch c1 = ch_at(s, n, i + 1);
        if (c1.cls != TB_S)
            return run(s, n, i + 1 + c1.len, c1.cls);
    }
    ch c0 = ch_at(s, n, i);
    if (c0.cls != TB_S)
        return run(s, n, i + c0.len, c0.cls);
    return space_tail(s, n, i);
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+        (Llama-3: D = 3, Qwen2: 1) */
static size_t match_llama3(const char *s, size_t n, size_t i, int max_digits)
{
    if (s[i] == '\'') {
        size_t e = contraction(s, n, i, 1);
        if (e)
            return e;
    }
    ch c0 = ch_at(s, n, i);
    if (c0.cls == TB_L)
        return run(s, n, i + c0.len, TB_L);
    if (c0.cls != TB_N && c0.cp != '\r' && c0.cp != '\n' && i + c0.len < n) {
        ch c1 = ch_at(s, n, i + c0.len);
        if (c1.cls == TB_L)
            return run(s, n, i + c0.len + c1.len, TB_L);
    }
    if (c0.cls == TB_N) {
        size_t j = i + c0.len;
        for (int k = 1; k < max_digits && j < n; k++) {
            ch c = ch_at(s, n, j);
            if (c.cls != TB_N)
                break;
            j += c.len;
        }
        return j;
    }
    if (c0.cp == ' ' && i + 1 < n) {
        ch c1 = ch_at(s, n, i + 1);
        if (c1.cls == TB_O)
            return run_crlf(s, n, run(s, n, i + 1 + c1.len, TB_O));
    }
    if (c0.cls == TB_O)
        return run_crlf(s, n, run(s, n, i + c0.len, TB_O));
    /* c0 is white space: \s*[\r\n]+ takes the run up to its last \r or \n */
    size_t j = i, crlf = n;
    while (j < n) {
        ch c = ch_at(s, n, j);
        if (c.cls != TB_S)
            break;
        if (c.cp == '\r' || c.cp == '\n')
            crlf = j;
        j += c.len;
    }
    if (crlf != n)
        return crlf + 1;
    return space_tail(s, n, i);
}

size_t tb_regex_match(int re, const char *s, size_t n, size_t i)
{
    switch (re) {
    case TB_RE_GPT2:
        return match_gpt2(s, n, i);
    case TB_RE_LLAMA3:
        return match_llama3(s, n, i, 3);
    case TB_RE_QWEN2:
        return match_llama3(s, n, i, 1);
    }
    return i;
}

/* ---- splitting ---- */

int tb_pieces_add(tb_pieces *p, size_t off, size_t len, int at_start)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        tb_piece *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return -1;
        p->v = v, p->cap = cap;
    }
    p->v[p->n++] = (tb_piece){off, len, at_start};
    return 0;
}

typedef struct span {
    size_t a, b;
    int match; /* while finding; then: remove */
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static int span_add(spans *s, size_t a, size_t b, int match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        span *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = (span){a, b, match};
    return 0;
}

/* The matches of a pre-tokenizer in s as spans covering [0, n). */
static int find_spans(const tb_pre *op, const char *s, size_t n, spans *out)
{
    out->n = 0;
    size_t prev = 0, i = 0;
    while (i < n) {
        size_t e = i;
        if (op->kind == TB_PRE_DIGITS) {
            ch c = ch_at(s, n, i);
            if (c.cls == TB_N)
                e = i + c.len;
        } else if (op->regex != TB_RE_NONE) {
            e = tb_regex_match(op->regex, s, n, i);
        } else if (op->pattern_len && i + op->pattern_len <= n &&
                   memcmp(s + i, op->pattern, op->pattern_len) == 0) {
            e = i + op->pattern_len;
        }
        if (e > i) {
            if (prev < i && span_add(out, prev, i, 0))
                return -1;
            if (span_add(out, i, e, 1))
                return -1;
            prev = i = e;
        } else {
            uint32_t cp;
            i += tb_utf8_next(s, n, i, &cp);
        }
    }
    if (prev < n && span_add(out, prev, n, 0))
        return -1;
    if (op->invert)
        for (size_t k = 0; k < out->n; k++)
            out->v[k].match = !out->v[k].match;
    return 0;
}

/* Applies a splitting behaviour (as NormalizedString::split does) to spans in
 * place; afterwards .match means "remove". */
static void apply_behavior(spans *sp, int behavior)
{
    span *v = sp->v;
    size_t n = sp->n, k = 0;
    int prev = 0;
    switch (behavior) {
    case TB_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            v[i].match = 0;
        return;
    case TB_SPLIT_REMOVED:
        return;
    case TB_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            int m = v[i].match;
            if (m == prev && k > 0)
                v[k - 1].b = v[i].b;
            else
                v[k++] = (span){v[i].a, v[i].b, 0};
            prev = m;
        }
        break;
    case TB_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < n; i++) {
            int m = v[i].match;
            if (m && !prev && k > 0)
                v[k - 1].b = v[i].b;
            else
                v[k++] = (span){v[i].a, v[i].b, 0};
            prev = m;
        }
        break;
    case TB_SPLIT_MERGED_NEXT:
        /* from the end: a match joins the piece after it */
        for (size_t i = n; i-- > 0;) {
            int m = v[i].match;
            span cur = v[i];
            if (m && !prev && k > 0) {
                v[n - k].a = cur.a;
            } else {
                k++;
                v[n - k] = (span){cur.a, cur.b, 0};
            }
            prev = m;
        }
        memmove(v, v + (n - k), k * sizeof *v);
        break;
    }
    sp->n = k;
}

static int emit_spans(tb_pieces *out, const char *s, const spans *sp, int at_start)
{
    for (size_t k = 0; k < sp->n; k++) {
        const span *x = &sp->v[k];
        if (x->match || x->b == x->a)
            continue;
        size_t off = out->text.n;
        if (tb_buf_put(&out->text, s + x->a, x->b - x->a) ||
            tb_pieces_add(out, off, x->b - x->a, at_start && x->a == 0))
            return -1;
    }
    return 0;
}

/* ---- pre-tokenizers ---- */

static int put_mapped(tb_buf *b, const char *s, size_t n)
{
    if (tb_buf_reserve(b, 2 * n))
        return -1;
    for (size_t i = 0; i < n; i++)
        b->n += tb_utf8_put(b->p + b->n, tb_byte_char((unsigned char)s[i]));
    return 0;
}

static int bytelevel(const tb_pre *op, const char *s, size_t n, int at_start, tb_pieces *out,
                     tb_buf *work, spans *sp)
{
    if (op->add_prefix_space && s[0] != ' ') {
        work->n = 0;
        if (tb_buf_put(work, " ", 1) || tb_buf_put(work, s, n))
            return -1;
        s = work->p, n = work->n;
    }
    sp->n = 0;
    if (op->use_regex) {
        for (size_t i = 0; i < n;) {
            size_t e = match_gpt2(s, n, i); /* matches at every position */
            if (span_add(sp, i, e, 0))
                return -1;
            i = e;
        }
    } else if (span_add(sp, 0, n, 0)) {
        return -1;
    }
    for (size_t k = 0; k < sp->n; k++) {
        size_t off = out->text.n;
        if (put_mapped(&out->text, s + sp->v[k].a, sp->v[k].b - sp->v[k].a) ||
            tb_pieces_add(out, off, out->text.n - off, at_start && sp->v[k].a == 0))
            return -1;
    }
    return 0;
}

static int metaspace(const tb_pre *op, const char *s, size_t n, int at_start, tb_pieces *out,
                     tb_buf *work, spans *sp)
{
    char rep[4];
    size_t rl = tb_utf8_put(rep, op->replacement);
    work->n = 0;
    /* after spaces become the replacement, does the text start with it? */
    int starts = s[0] == ' ' || (n >= rl && memcmp(s, rep, rl) == 0);
    if (!starts && (op->prepend_scheme == TB_PREPEND_ALWAYS ||
                    (op->prepend_scheme == TB_PREPEND_FIRST && at_start)))
        if (tb_buf_put(work, rep, rl))
            return -1;
    if (tb_replace_str(work, s, n, " ", 1, rep, rl))
        return -1;
    s = work->p, n = work->n;
    sp->n = 0;
    if (!op->split) {
        size_t off = out->text.n;
        return tb_buf_put(&out->text, s, n) || tb_pieces_add(out, off, n, at_start) ? -1 : 0;
    }
    tb_pre cut = {.kind = TB_PRE_SPLIT, .regex = TB_RE_NONE, .pattern = rep, .pattern_len = rl};
    if (find_spans(&cut, s, n, sp))
        return -1;
    apply_behavior(sp, TB_SPLIT_MERGED_NEXT);
    return emit_spans(out, s, sp, at_start);
}

int tb_pretokenize(const tb_pre *ops, size_t n_ops, tb_pieces *p, tb_pieces *tmp, tb_buf *work)
{
    spans sp = {0};
    int rc = 0;
    for (size_t k = 0; k < n_ops && rc == 0; k++) {
        const tb_pre *op = &ops[k];
        tmp->n = 0;
        tmp->text.n = 0;
        for (size_t i = 0; i < p->n && rc == 0; i++) {
            const char *s = p->text.p + p->v[i].off;
            size_t n = p->v[i].len;
            int at_start = p->v[i].at_start;
            if (n == 0)
                continue;
            switch (op->kind) {
            case TB_PRE_BYTELEVEL:
                rc = bytelevel(op, s, n, at_start, tmp, work, &sp);
                break;
            case TB_PRE_METASPACE:
                rc = metaspace(op, s, n, at_start, tmp, work, &sp);
                break;
            default: /* Split, Digits */
                rc = find_spans(op, s, n, &sp);
                if (rc == 0) {
                    apply_behavior(&sp, op->kind == TB_PRE_DIGITS
                                            ? (op->individual_digits ? TB_SPLIT_ISOLATED
                                                                     : TB_SPLIT_CONTIGUOUS)
                                            : op->behavior);
                    rc = emit_spans(tmp, s, &sp, at_start);
                }
            }
        }
        tb_pieces t = *p;
        *p = *tmp;
        *tmp = t;
    }
    free(sp.v);
    return rc;
}
