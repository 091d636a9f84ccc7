/* Internal to the tokenizer.json BPE tokenizer (tokenizer_bpe*.c). */
#ifndef FLAME_TOKENIZER_BPE_H
#define FLAME_TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- growable buffers (tokenizer_bpe_model.c) ---- */
typedef struct tb_buf {
    char *p;
    size_t n, cap;
} tb_buf;
int tb_buf_reserve(tb_buf *b, size_t extra);
int tb_buf_put(tb_buf *b, const void *s, size_t n);
int tb_ids_reserve(tokenizer_ids *ids, size_t extra);
int tb_ids_push(tokenizer_ids *ids, int32_t id);

/* ---- hash maps (tokenizer_bpe_model.c) ---- */
uint64_t tb_hash(const char *s, size_t n);

/* bytes → uint64; keys are copied */
typedef struct tb_strmap_entry {
    uint64_t hash, val;
    uint32_t off, len; /* off == UINT32_MAX: empty */
} tb_strmap_entry;
typedef struct tb_strmap {
    tb_strmap_entry *e;
    size_t mask, count;
    tb_buf keys;
} tb_strmap;
int tb_strmap_put(tb_strmap *m, const char *k, size_t n, uint64_t val);
int tb_strmap_get(const tb_strmap *m, const char *k, size_t n, uint64_t *val);
void tb_strmap_clear(tb_strmap *m);
void tb_strmap_free(tb_strmap *m);

/* uint64 key → (rank, id); key UINT64_MAX is reserved */
typedef struct tb_pair_entry {
    uint64_t key;
    uint32_t rank;
    int32_t id;
} tb_pair_entry;
typedef struct tb_pairmap {
    tb_pair_entry *e;
    size_t mask, count;
} tb_pairmap;
int tb_pairmap_put(tb_pairmap *m, uint64_t key, uint32_t rank, int32_t id);
const tb_pair_entry *tb_pairmap_get(const tb_pairmap *m, uint64_t key);
void tb_pairmap_free(tb_pairmap *m);

/* ---- text (tokenizer_bpe_text.c) ---- */
#define TB_INVALID 0xFFFFFFFFu /* a byte that is not part of valid UTF-8 */
enum { TB_L = 1, TB_N = 2, TB_S = 4, TB_O = 8 }; /* letter, number, white space, other */

/* Decodes the character at s[i] (i < n): returns its length, 1 for an invalid byte
 * (then *cp = TB_INVALID). */
size_t tb_utf8_next(const char *s, size_t n, size_t i, uint32_t *cp);
size_t tb_utf8_put(char *out, uint32_t cp); /* out has room for 4 */
unsigned tb_class(uint32_t cp);              /* one of TB_L, TB_N, TB_S, TB_O */
int tb_is_word(uint32_t cp);                 /* Rust regex \w */
int tb_is_space(uint32_t cp);                /* White_Space */

extern const uint32_t tb_unicode_L[][2], tb_unicode_N[][2], tb_unicode_W[][2];
extern const size_t tb_unicode_L_count, tb_unicode_N_count, tb_unicode_W_count;

/* ByteLevel's bytes ↔ characters mapping (GPT-2's bytes_to_unicode): the printable
 * bytes 33–126, 161–172, 174–255 stand for themselves, the others, in order, for
 * U+0100 onwards. */
static inline uint32_t tb_byte_char(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    return 256 + (b <= 32 ? b : b <= 160 ? 33 + (b - 127) : 67);
}
static inline int tb_char_byte(uint32_t cp) /* -1: not a mapped character */
{
    if (cp < 256)
        return ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || cp >= 174) ? (int)cp : -1;
    cp -= 256;
    return cp <= 32 ? (int)cp : cp < 67 ? (int)(cp - 33 + 127) : cp == 67 ? 173 : -1;
}

/* pieces of text: (offset, length) into text */
typedef struct tb_piece {
    size_t off, len;
    int at_start; /* starts at offset 0 of the original text (Metaspace "first") */
} tb_piece;
typedef struct tb_pieces {
    tb_buf text;
    tb_piece *v;
    size_t n, cap;
} tb_pieces;
int tb_pieces_add(tb_pieces *p, size_t off, size_t len, int at_start);

enum { TB_NORM_PREPEND, TB_NORM_REPLACE };
typedef struct tb_norm {
    int kind;
    char *a, *b; /* PREPEND: a; REPLACE: a → b */
    size_t a_len, b_len;
} tb_norm;
/* appends s with every non-overlapping occurrence of a (leftmost first) replaced by b */
int tb_replace_str(tb_buf *out, const char *s, size_t n, const char *a, size_t al, const char *b,
                   size_t bl);
/* out = normalized s (out and tmp are reset first) */
int tb_normalize(const tb_norm *ops, size_t n_ops, const char *s, size_t n, tb_buf *out,
                 tb_buf *tmp);

enum { TB_PRE_BYTELEVEL, TB_PRE_METASPACE, TB_PRE_SPLIT, TB_PRE_DIGITS };
enum { TB_RE_NONE, TB_RE_GPT2, TB_RE_LLAMA3, TB_RE_QWEN2 }; /* TB_RE_NONE: a string */
enum { TB_SPLIT_REMOVED, TB_SPLIT_ISOLATED, TB_SPLIT_MERGED_PREV, TB_SPLIT_MERGED_NEXT,
       TB_SPLIT_CONTIGUOUS };
enum { TB_PREPEND_ALWAYS, TB_PREPEND_FIRST, TB_PREPEND_NEVER };
typedef struct tb_pre {
    int kind;
    int add_prefix_space, use_regex;   /* ByteLevel */
    uint32_t replacement;              /* Metaspace */
    int prepend_scheme, split;         /* Metaspace */
    int regex, behavior, invert;       /* Split */
    char *pattern;                     /* Split with a string pattern */
    size_t pattern_len;
    int individual_digits;             /* Digits */
} tb_pre;
/* Applies the pre-tokenizers to the pieces of *p, using *tmp and *work as scratch. */
int tb_pretokenize(const tb_pre *ops, size_t n_ops, tb_pieces *p, tb_pieces *tmp, tb_buf *work);
/* End of the match of regex re at s[i] (i < n), or i when there is none. */
size_t tb_regex_match(int re, const char *s, size_t n, size_t i);

/* ---- the BPE model (tokenizer_bpe_model.c) ---- */
/* The model's ids are below this: tables indexed by id are allocated up to
 * the highest, so a damaged file's lone huge id would take gigabytes. Real
 * vocabularies have some 32 K to 260 K ids. */
#define TB_MAX_IDS (1 << 24)
typedef struct tb_sym {
    int32_t id, prev, next;
    int alive;
} tb_sym;
typedef struct tb_merge {
    uint32_t rank, pos;
    int32_t id;
} tb_merge;

typedef struct tb_model {
    tb_strmap vocab;      /* token → id */
    uint32_t *tok_off, *tok_len; /* id → its text in vocab.keys (tok_len UINT32_MAX: none) */
    int32_t n_ids;        /* highest id + 1 */
    tb_pairmap merges;    /* (a << 32 | b) → (rank, merged id) */
    int32_t unk_id;       /* -1: no unk_token */
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL: none) */
    size_t prefix_len, suffix_len;
    int32_t byte_id[256]; /* <0xNN>, -1 */
    int32_t *char_id;     /* code point < TB_CHAR_TABLE → id of that one character, -1 */
    int can_segment;      /* no prefix/suffix: long words may be cut where no merge crosses */
    tb_pairmap cross;     /* (last char of a, first char of b) of every merge (a, b) */
    unsigned char cross_ascii[128 * 128 / 8]; /* the same, for two ASCII characters */
    /* scratch and the word cache (mutable while encoding) */
    tb_sym *sym;
    size_t sym_cap;
    tb_merge *heap;
    size_t heap_cap;
    tb_buf scratch;
    tb_strmap cache;      /* word → (offset << 24 | count) in cache_ids */
    tokenizer_ids cache_ids;
} tb_model;
#define TB_CHAR_TABLE 0x3000

/* Fills the derived tables once vocab and merges are in; returns 0 or -1 (memory). */
int tb_model_finish(tb_model *m);
void tb_model_free(tb_model *m);
int32_t tb_model_id(const tb_model *m, const char *s, size_t n);
/* Appends the tokens of one pre-tokenized word. */
int tb_model_tokenize(tb_model *m, const char *s, size_t n, tokenizer_ids *out);

/* ---- decoders (tokenizer_bpe_decode.c) ---- */
enum { TB_DEC_REPLACE, TB_DEC_BYTEFALLBACK, TB_DEC_FUSE, TB_DEC_STRIP, TB_DEC_BYTELEVEL,
       TB_DEC_METASPACE };
typedef struct tb_dec {
    int kind;
    char *a, *b; /* REPLACE: a → b */
    size_t a_len, b_len;
    uint32_t ch; /* STRIP: content; METASPACE: replacement */
    int start, stop; /* STRIP */
    int prepend_scheme; /* METASPACE */
} tb_dec;

/* ---- the tokenizer (tokenizer_bpe.c) ---- */
typedef struct tb_split {
    size_t a, b;
    int32_t added; /* index in added, -1: text */
} tb_split;
typedef struct tb_splits {
    tb_split *v;
    size_t n, cap;
} tb_splits;

typedef struct tb_added {
    char *content;
    size_t len;
    char *norm; /* content through the normalizer when normalized, else NULL */
    size_t norm_len;
    int32_t id;
    int special, single_word, lstrip, rstrip, normalized;
    int skip; /* dropped by decode with skip_special: its text is a special token's */
} tb_added;

/* a byte trie of added-token patterns */
typedef struct tb_trie_node {
    int32_t child, sibling; /* -1: none */
    int32_t token;          /* index in added, -1 */
    unsigned char byte;
} tb_trie_node;
typedef struct tb_trie {
    tb_trie_node *v;
    size_t n, cap;
    unsigned char first[256];
} tb_trie;

struct tokenizer_bpe {
    int vocab_size;
    int32_t bos_id, eos_id;
    tb_model model;
    tb_norm *norm;
    size_t n_norm;
    tb_pre *pre;
    size_t n_pre;
    int has_decoder;
    tb_dec *dec;
    size_t n_dec;
    tb_added *added;
    size_t n_added;
    int32_t *added_of_id; /* id → index in added, -1 (vocab_size entries) */
    tb_trie raw_trie, norm_trie;
    /* scratch */
    tb_buf normalized, work;
    tb_pieces pieces, pieces_tmp;
    tb_splits raw_splits, norm_splits;
};

tokenizer_bpe *tb_open(const char *name, char *err, size_t err_len);
void tb_close(tokenizer_bpe *t);
int tb_encode(tokenizer_bpe *t, const char *s, size_t n, tokenizer_ids *out);
int tb_decode(const tokenizer_bpe *t, const int32_t *ids, size_t n, int skip_special,
              tokenizer_text *out);
int32_t tb_token_id(const tokenizer_bpe *t, const char *s, size_t n);
/* The text that decoding starts from for id (NULL: no token). */
const char *tb_id_text(const tokenizer_bpe *t, int32_t id, size_t *len);

#endif
