/* Decoding a tokenizer.json's ids: the tokens' texts go through the decoder chain
 * (Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace) as a list of strings,
 * exactly as `tokenizers` does (its decoders folder), and are joined; without a decoder
 * they are joined with spaces. */
#include "tokenizer_bpe.h"

#include <stdlib.h>
#include <string.h>

typedef struct str_list {
    tb_buf text;
    size_t *off, *len;
    size_t n, cap;
} str_list;

static int list_add(str_list *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        size_t *off = realloc(l->off, cap * sizeof *off);
        if (!off)
            return -1;
        l->off = off;
        size_t *len = realloc(l->len, cap * sizeof *len);
        if (!len)
            return -1;
        l->len = len, l->cap = cap;
    }
    l->off[l->n] = l->text.n;
    l->len[l->n] = n;
    if (tb_buf_put(&l->text, s, n))
        return -1;
    l->n++;
    return 0;
}

/* appends the last string with more bytes (the list's last entry grows) */
static int list_extend(str_list *l, const char *s, size_t n)
{
    l->len[l->n - 1] += n;
    return tb_buf_put(&l->text, s, n);
}

static void list_free(str_list *l)
{
    free(l->text.p);
    free(l->off);
    free(l->len);
}

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 32);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "<0xNN>" → the byte, -1 (as u8::from_str_radix(&token[3..5], 16), which takes a '+') */
static int byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hex_digit((unsigned char)s[3]), lo = hex_digit((unsigned char)s[4]);
    if (s[3] == '+' && lo >= 0)
        return lo;
    return hi >= 0 && lo >= 0 ? hi * 16 + lo : -1;
}

static int valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tb_utf8_next(s, n, i, &cp);
        if (cp == TB_INVALID)
            return 0;
    }
    return 1;
}

static int flush_bytes(str_list *out, tb_buf *bytes)
{
    int rc = 0;
    if (bytes->n == 0)
        return 0;
    if (valid_utf8(bytes->p, bytes->n))
        rc = list_add(out, bytes->p, bytes->n);
    else
        for (size_t i = 0; i < bytes->n && rc == 0; i++)
            rc = list_add(out, REPLACEMENT, 3);
    bytes->n = 0;
    return rc;
}

/* String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD */
static int put_lossy(tb_buf *out, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (tb_buf_put(out, s + i, 1))
                return -1;
            i++;
            continue;
        }
        size_t need = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        }
        size_t k = 1;
        int ok = need > 0;
        for (size_t j = 0; j < need; j++) {
            if (i + k >= n) {
                ok = 0;
                break;
            }
            unsigned b = s[i + k];
            if (j == 0 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) {
                ok = 0;
                break;
            }
            k++;
        }
        if (tb_buf_put(out, ok ? (const char *)s + i : REPLACEMENT, ok ? k : 3))
            return -1;
        i += k;
    }
    return 0;
}

static int apply(const tb_dec *d, const str_list *in, str_list *out)
{
    tb_buf tmp = {0};
    int rc = 0;
    switch (d->kind) {
    case TB_DEC_REPLACE:
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            tmp.n = 0;
            rc = tb_replace_str(&tmp, in->text.p + in->off[i], in->len[i], d->a, d->a_len, d->b,
                                d->b_len) ||
                 list_add(out, tmp.p, tmp.n);
        }
        break;
    case TB_DEC_BYTEFALLBACK:
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            const char *s = in->text.p + in->off[i];
            int b = byte_token(s, in->len[i]);
            if (b >= 0) {
                char c = (char)b;
                rc = tb_buf_put(&tmp, &c, 1);
            } else {
                rc = flush_bytes(out, &tmp) || list_add(out, s, in->len[i]);
            }
        }
        if (rc == 0)
            rc = flush_bytes(out, &tmp);
        break;
    case TB_DEC_FUSE:
        rc = list_add(out, in->text.p, 0);
        for (size_t i = 0; i < in->n && rc == 0; i++)
            rc = list_extend(out, in->text.p + in->off[i], in->len[i]);
        break;
    case TB_DEC_STRIP:
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            const char *s = in->text.p + in->off[i];
            size_t n = in->len[i], a = 0, b = n;
            uint32_t cp;
            for (int k = 0; k < d->start && a < n; k++) {
                size_t l = tb_utf8_next(s, n, a, &cp);
                if (cp != d->ch)
                    break;
                a += l;
            }
            for (int k = 0; k < d->stop && b > 0; k++) {
                size_t j = b - 1;
                while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
                    j--;
                tb_utf8_next(s, n, j, &cp);
                if (cp != d->ch)
                    break;
                b = j;
            }
            rc = list_add(out, s + a, b > a ? b - a : 0);
        }
        break;
    case TB_DEC_BYTELEVEL:
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            const char *s = in->text.p + in->off[i];
            size_t n = in->len[i], start = tmp.n;
            for (size_t j = 0; j < n && rc == 0;) {
                uint32_t cp;
                j += tb_utf8_next(s, n, j, &cp);
                int b = cp == TB_INVALID ? -1 : tb_char_byte(cp);
                if (b < 0) { /* not all mapped: the token's own bytes */
                    tmp.n = start;
                    rc = tb_buf_put(&tmp, s, n);
                    break;
                }
                char c = (char)b;
                rc = tb_buf_put(&tmp, &c, 1);
            }
        }
        if (rc == 0) {
            rc = list_add(out, "", 0);
            tb_buf lossy = {0};
            if (rc == 0)
                rc = put_lossy(&lossy, (const unsigned char *)tmp.p, tmp.n) ||
                     list_extend(out, lossy.p, lossy.n);
            free(lossy.p);
        }
        break;
    case TB_DEC_METASPACE:
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            const char *s = in->text.p + in->off[i];
            size_t n = in->len[i];
            rc = list_add(out, "", 0);
            for (size_t j = 0; j < n && rc == 0;) {
                uint32_t cp;
                size_t l = tb_utf8_next(s, n, j, &cp);
                if (cp == d->ch) {
                    if (!(i == 0 && d->prepend_scheme != TB_PREPEND_NEVER))
                        rc = list_extend(out, " ", 1);
                } else {
                    rc = list_extend(out, s + j, l);
                }
                j += l;
            }
        }
        break;
    }
    free(tmp.p);
    return rc ? -1 : 0;
}

int tb_decode(const tokenizer_bpe *t, const int32_t *ids, size_t n, int skip_special,
              tokenizer_text *text)
{
    str_list a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len;
        const char *s = tb_id_text(t, ids[i], &len);
        if (!s)
            continue;
        if (skip_special && ids[i] < t->vocab_size && t->added_of_id[ids[i]] >= 0 &&
            t->added[t->added_of_id[ids[i]]].skip)
            continue;
        rc = list_add(&a, s, len);
    }
    for (size_t k = 0; k < t->n_dec && rc == 0; k++) {
        b.n = 0, b.text.n = 0;
        rc = apply(&t->dec[k], &a, &b);
        str_list x = a;
        a = b, b = x;
    }
    tb_buf out = {text->data, text->n, text->cap};
    for (size_t i = 0; i < a.n && rc == 0; i++) {
        if (!t->has_decoder && i > 0)
            rc = tb_buf_put(&out, " ", 1);
        if (rc == 0)
            rc = tb_buf_put(&out, a.text.p + a.off[i], a.len[i]);
    }
    text->data = out.p, text->n = out.n, text->cap = out.cap;
    list_free(&a);
    list_free(&b);
    return rc ? -1 : 0;
}
