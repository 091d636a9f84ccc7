/* The tokenizer's files in a Hugging Face folder, so that AutoTokenizer (and
 * what builds on it: generate, lm-evaluation-harness) reads the model's ids:
 *  - a tokenizer.json tokenizer: its tokenizer.json, and tokenizer_config.json
 *    and special_tokens_map.json copied from beside it, or written from its
 *    BOS and EOS when it has none;
 *  - the byte tokenizer: a tokenizer.json of its own — a BPE without merges
 *    over the 256 bytes under GPT-2's byte-to-character map, so byte b is id
 *    b, and "<|endoftext|>" as id 256, its EOS — and the two files written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "convert.h"
#include "errors.h"

static const char BYTE_EOS[] = "<|endoftext|>";

static int write_json(const char *dir, const char *name, json_t *j, char *err, size_t err_len)
{
    char path[CONVERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    int rc = f && j && json_dumpf(j, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    json_decref(j);
    if (rc)
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
    return rc;
}

/* GPT-2's map: the printable bytes stand for themselves, the others (0-32,
 * 127-160, 173) take the characters from U+0100 on, in byte order */
static unsigned byte_character(int b)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (printable)
        return (unsigned)b;
    unsigned n = 0;
    for (int c = 0; c < b; c++)
        n += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
    return 256 + n;
}

static void utf8(unsigned c, char out[4])
{
    if (c < 0x80) {
        out[0] = (char)c, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3F)), out[2] = 0;
    }
}

static json_t *byte_level(void)
{
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                     "trim_offsets", 1, "use_regex", 0);
}

static json_t *byte_tokenizer_json(void)
{
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char key[4];
        utf8(byte_character(b), key);
        json_object_set_new(vocab, key, json_integer(b));
    }
    json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:[]}", "type",
                              "BPE", "dropout", "unk_token", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                              "ignore_merges", 0, "vocab", vocab, "merges");
    json_t *eos = json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 256, "content", BYTE_EOS,
                            "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0,
                            "special", 1);
    return json_pack("{s:s, s:n, s:n, s:[o], s:n, s:o, s:n, s:o, s:o}", "version", "1.0",
                     "truncation", "padding", "added_tokens", eos, "normalizer", "pre_tokenizer",
                     byte_level(), "post_processor", "decoder", byte_level(), "model", model);
}

/* a special token's text, or JSON null for none; the byte tokenizer's EOS has
 * no text of its own, and its tokenizer.json here names it BYTE_EOS */
static json_t *token_text(const tokenizer *tok, int32_t id)
{
    if (id < 0)
        return json_null();
    if (!tok->bpe)
        return json_string(BYTE_EOS);
    tokenizer_text text = {0};
    json_t *j = tokenizer_decode(tok, &id, 1, 0, &text) == 0
                    ? json_stringn(text.data ? text.data : "", text.n)
                    : NULL;
    free(text.data);
    return j ? j : json_null();
}

static json_t *tokenizer_config(const tokenizer *tok)
{
    return json_pack("{s:s, s:o, s:o, s:b}", "tokenizer_class", "PreTrainedTokenizerFast",
                     "bos_token", token_text(tok, tok->bos_id), "eos_token",
                     token_text(tok, tok->eos_id), "clean_up_tokenization_spaces", 0);
}

static json_t *special_tokens_map(const tokenizer *tok)
{
    json_t *map = json_object();
    if (tok->bos_id >= 0)
        json_object_set_new(map, "bos_token", token_text(tok, tok->bos_id));
    if (tok->eos_id >= 0)
        json_object_set_new(map, "eos_token", token_text(tok, tok->eos_id));
    return map;
}

/* copies from to dir/name, unless they are one file */
static int copy_file(const char *from, const char *dir, const char *name, char *err,
                     size_t err_len)
{
    char to[CONVERT_PATH_LEN];
    snprintf(to, sizeof to, "%s/%s", dir, name);
    struct stat a, b;
    if (stat(from, &a) == 0 && stat(to, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return 0;
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[1 << 16];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
    if (in && ferror(in))
        rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    if (rc)
        snprintf(err, err_len, "copying %s to %s: %s", from, to, strerror(errno));
    return rc;
}

/* dir/name copied from beside the tokenizer.json when it is there, else made */
static int copy_or_make(const char *source_dir, const char *dir, const char *name, json_t *made,
                        char *err, size_t err_len)
{
    char from[CONVERT_PATH_LEN];
    snprintf(from, sizeof from, "%s/%s", source_dir, name);
    struct stat st;
    if (stat(from, &st) == 0 && S_ISREG(st.st_mode)) {
        json_decref(made);
        return copy_file(from, dir, name, err, err_len);
    }
    return write_json(dir, name, made, err, err_len);
}

/* the tokenizer.json tokenizer_open read: path, or path/tokenizer.json */
static void tokenizer_json_path(const char *path, char *out, size_t n, char *dir, size_t dir_n)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(out, n, "%s/tokenizer.json", path);
    else
        snprintf(out, n, "%s", path);
    snprintf(dir, dir_n, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, dir_n, ".");
}

int convert_write_tokenizer(const char *path, const char *dir, tokenizer *tok, char *err,
                            size_t err_len)
{
    if (tokenizer_open(tok, path, err, err_len))
        return FLAME_EXIT_CONFIG;
    int rc;
    if (strcmp(path, "byte") == 0) {
        rc = write_json(dir, "tokenizer.json", byte_tokenizer_json(), err, err_len) ||
             write_json(dir, "tokenizer_config.json", tokenizer_config(tok), err, err_len) ||
             write_json(dir, "special_tokens_map.json", special_tokens_map(tok), err, err_len);
    } else {
        char json[CONVERT_PATH_LEN], source_dir[CONVERT_PATH_LEN];
        tokenizer_json_path(path, json, sizeof json, source_dir, sizeof source_dir);
        rc = copy_file(json, dir, "tokenizer.json", err, err_len) ||
             copy_or_make(source_dir, dir, "tokenizer_config.json", tokenizer_config(tok), err,
                          err_len) ||
             copy_or_make(source_dir, dir, "special_tokens_map.json", special_tokens_map(tok),
                          err, err_len);
    }
    return rc ? FLAME_EXIT_RUNTIME : FLAME_EXIT_OK;
}
