/* Tokenizers: the byte tokenizer, and tokenizer.json BPE tokenizers written here
 * by hand (merge order, byte fallback, unk, added tokens, decoders, the
 * hand-written regexes) and the errors of tokenizer_open. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_bpe.h"

static char dir[256];
static char written[16][512]; /* removed at the end, in reverse order */
static int n_written;

static const char *write_file(const char *name, const char *text)
{
    char *path = written[n_written++];
    snprintf(path, sizeof written[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

/* encodes text and compares with the expected ids (ending with -1) */
static void check_ids(const tokenizer *tok, const char *text, ...)
{
    tokenizer_ids ids = {0};
    CHECK(tokenizer_encode(tok, text, strlen(text), &ids) == 0, "encode \"%s\"", text);
    va_list ap;
    va_start(ap, text);
    size_t k = 0;
    int ok = 1;
    for (int want; (want = va_arg(ap, int)) != -1; k++)
        ok &= k < ids.n && ids.ids[k] == want;
    va_end(ap);
    ok &= k == ids.n;
    char got[512] = "";
    for (size_t i = 0; i < ids.n && strlen(got) < 480; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), " %d", (int)ids.ids[i]);
    CHECK(ok, "encode \"%s\": got%s", text, got);
    free(ids.ids);
}

static void check_decode(const tokenizer *tok, const char *want, int skip, int n, ...)
{
    int32_t ids[64];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        ids[i] = va_arg(ap, int);
    va_end(ap);
    tokenizer_text text = {0};
    CHECK(tokenizer_decode(tok, ids, (size_t)n, skip, &text) == 0, "decode");
    CHECK(text.n == strlen(want) && memcmp(text.data, want, text.n) == 0,
          "decode: got \"%.*s\", want \"%s\"", (int)text.n, text.data ? text.data : "", want);
    free(text.data);
}

static void check_round_trip(const tokenizer *tok, const char *text)
{
    tokenizer_ids ids = {0};
    tokenizer_text back = {0};
    tokenizer_encode(tok, text, strlen(text), &ids);
    tokenizer_decode(tok, ids.ids, ids.n, 0, &back);
    CHECK(back.n == strlen(text) && memcmp(back.data, text, back.n) == 0,
          "round trip of \"%s\": \"%.*s\"", text, (int)back.n, back.data ? back.data : "");
    free(ids.ids);
    free(back.data);
}

static void check_open_error(const char *name, const char *want)
{
    tokenizer tok;
    char err[1024] = "";
    CHECK(tokenizer_open(&tok, name, err, sizeof err) == -1, "open %s should fail", name);
    CHECK(strstr(err, want) != NULL, "open %s: error \"%s\" lacks \"%s\"", name, err, want);
}

static void test_byte(void)
{
    tokenizer tok;
    char err[256];
    CHECK(tokenizer_open(&tok, "byte", err, sizeof err) == 0, "byte: %s", err);
    CHECK(tok.vocab_size == 257 && tok.eos_id == 256 && tok.bos_id == -1 && tok.encode,
          "byte tokenizer fields");
    int32_t out[4];
    CHECK(tok.encode(&tok, "a\xff", 2, out) == 2 && out[0] == 'a' && out[1] == 255,
          "byte encode");
    check_ids(&tok, "hi", 'h', 'i', -1);
    check_decode(&tok, "hi", 0, 3, 'h', 'i', 256);
    tokenizer_close(&tok);
}

/* sentencepiece style, as Llama-2's tokenizer.json */
static const char *LLAMA_JSON =
    "{\n"
    " \"version\": \"1.0\",\n"
    " \"added_tokens\": [\n"
    "  {\"id\": 0, \"content\": \"<unk>\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": false, \"special\": true},\n"
    "  {\"id\": 1, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": false, \"special\": true},\n"
    "  {\"id\": 2, \"content\": \"</s>\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": false, \"special\": true},\n"
    "  {\"id\": 15, \"content\": \"cab\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": true, \"special\": false}\n"
    " ],\n"
    " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
    "{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"},"
    "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xe2\x96\x81\"}]},\n"
    " \"pre_tokenizer\": null,\n"
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
    "{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\","
    " \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\","
    " \"ids\": [1], \"tokens\": [\"<s>\"]}}},\n"
    " \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
    "{\"type\": \"Replace\", \"pattern\": {\"String\": \"\xe2\x96\x81\"}, \"content\": \" \"},"
    "{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"},"
    "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},\n"
    " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": \"<unk>\","
    " \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": true,"
    " \"byte_fallback\": true, \"ignore_merges\": false,\n"
    "  \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"\xe2\x96\x81\": 3, \"a\": 4,"
    " \"b\": 5, \"c\": 6, \"ab\": 7, \"bc\": 8, \"\xe2\x96\x81" "a\": 9, \"abc\": 10,"
    " \"<0xE2>\": 11, \"<0x82>\": 12, \"<0xAC>\": 13, \"\xe2\x96\x81" "ab\": 14},\n"
    "  \"merges\": [\"b c\", \"a b\", \"\xe2\x96\x81 a\", \"a bc\", \"\xe2\x96\x81" "a b\"]\n"
    " }\n"
    "}\n";

static void test_llama(void)
{
    tokenizer tok;
    char err[512];
    const char *path = write_file("llama.json", LLAMA_JSON);
    CHECK(tokenizer_open(&tok, path, err, sizeof err) == 0, "open: %s", err);
    if (!tok.bpe)
        return;
    CHECK(tok.vocab_size == 16 && tok.bos_id == 1 && tok.eos_id == 2 && !tok.encode,
          "vocab %d bos %d eos %d", tok.vocab_size, (int)tok.bos_id, (int)tok.eos_id);
    /* rank order: b c (0) first, then ▁ a (2), and a bc (3) never gets its turn */
    check_ids(&tok, "abc", 9, 8, -1);
    /* a b (1) before ▁ a (2): "▁ab" is a token but no merge reaches it */
    check_ids(&tok, "ab", 3, 7, -1);
    /* ▁a then ▁a b (4) */
    check_ids(&tok, "a", 9, -1);
    check_ids(&tok, "a b", 9, 3, 5, -1);
    /* byte fallback: € is E2 82 AC */
    check_ids(&tok, "\xe2\x82\xac", 3, 11, 12, 13, -1);
    /* no token and not all bytes: unk, fused */
    check_ids(&tok, "\xc3\xa9\xc3\xa9" "a", 3, 0, 4, -1);
    /* added tokens: <s> on the raw text, each side normalized on its own */
    check_ids(&tok, "a<s>b", 9, 1, 3, 5, -1);
    check_ids(&tok, "<s></s>", 1, 2, -1);
    /* "cab" is normalized: it matches "▁cab" in the normalized text only */
    check_ids(&tok, "cab", 15, -1);
    check_ids(&tok, "a cab", 9, 15, -1);
    check_ids(&tok, "acab", 9, 6, 7, -1);
    check_ids(&tok, "", -1);
    /* decoding */
    check_decode(&tok, "abc", 0, 2, 9, 8);
    check_decode(&tok, "\xe2\x82\xac", 0, 4, 3, 11, 12, 13);
    check_decode(&tok, "\xef\xbf\xbd\xef\xbf\xbd" " a", 0, 3, 11, 12, 9); /* invalid bytes */
    check_decode(&tok, "<s> a cab", 0, 4, 1, 9, 15, 99); /* 99: no token */
    check_decode(&tok, "a cab", 1, 3, 1, 9, 15);
    check_round_trip(&tok, "ab abc \xe2\x82\xac");
    CHECK(tokenizer_token_id(&tok, "abc", 3) == 10 && tokenizer_token_id(&tok, "zz", 2) == -1,
          "token ids");
    tokenizer_close(&tok);
}

/* GPT-2 style byte level: the vocab is the 256 byte characters plus a few merges */
static char *gpt2_json(const char *pre_tokenizer, const char *extra_added)
{
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"added_tokens\": [{\"id\": 260, \"content\": \"<|endoftext|>\","
                          " \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
                          " \"normalized\": false, \"special\": true}%s],\n"
                          " \"pre_tokenizer\": %s,\n"
                          " \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true,"
                          " \"trim_offsets\": true, \"use_regex\": true},\n"
                          " \"model\": {\"type\": \"BPE\", \"vocab\": {",
                          extra_added, pre_tokenizer);
    for (unsigned b = 0; b < 256; b++) {
        char c[8];
        size_t l = tb_utf8_put(c, tb_byte_char(b));
        c[l] = 0;
        if (b == '"' || b == '\\')
            n += (size_t)snprintf(s + n, cap - n, "\"\\%s\": %u, ", c, b);
        else
            n += (size_t)snprintf(s + n, cap - n, "\"%s\": %u, ", c, b);
    }
    n += (size_t)snprintf(s + n, cap - n,
                          "\"he\": 256, \"the\": 257, \"\xc4\xa0t\": 258, \"\xc4\xa0the\": 259,"
                          " \"<|endoftext|>\": 260},\n"
                          "  \"merges\": [[\"h\", \"e\"], [\"t\", \"he\"], [\"\xc4\xa0\", \"t\"],"
                          " [\"\xc4\xa0t\", \"he\"]]}}\n");
    return s;
}

static void test_gpt2(void)
{
    tokenizer tok;
    char err[512];
    char *json = gpt2_json("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                           "\"trim_offsets\": true, \"use_regex\": true}",
                           ", {\"id\": 261, \"content\": \"<mask>\", \"single_word\": false,"
                           " \"lstrip\": true, \"rstrip\": true, \"normalized\": false,"
                           " \"special\": true},"
                           " {\"id\": 262, \"content\": \"qq\", \"single_word\": true,"
                           " \"lstrip\": false, \"rstrip\": false, \"normalized\": true,"
                           " \"special\": false}");
    /* a folder holding tokenizer.json */
    char *sub = written[n_written++];
    snprintf(sub, sizeof written[0], "%s/gpt2", dir);
    mkdir(sub, 0755);
    write_file("gpt2/tokenizer.json", json);
    free(json);
    CHECK(tokenizer_open(&tok, sub, err, sizeof err) == 0, "open: %s", err);
    if (!tok.bpe)
        return;
    CHECK(tok.vocab_size == 263 && tok.eos_id == 260 && tok.bos_id == -1, "vocab %d eos %d",
          tok.vocab_size, (int)tok.eos_id);
    /* "the": h e (0), t he (1). " the": h e (0), t he (1) before Ġ t (2): Ġ, the */
    check_ids(&tok, "the the", 257, ' ', 257, -1); /* Ġ, the byte-level space, has id 32 */
    check_ids(&tok, "t", 't', -1);
    check_ids(&tok, "the<|endoftext|>the", 257, 260, 257, -1);
    /* lstrip/rstrip take the spaces around <mask> */
    check_ids(&tok, "a  <mask>  b", 'a', 261, 'b', -1);
    /* single_word: only between non-word characters */
    check_ids(&tok, "qq", 262, -1);
    check_ids(&tok, "a qq.", 'a', ' ', 262, '.', -1);
    check_ids(&tok, "aqq", 'a', 'q', 'q', -1);
    check_decode(&tok, "the the<|endoftext|>", 0, 4, 257, ' ', 257, 260);
    check_decode(&tok, "the the", 1, 4, 257, ' ', 257, 260);
    check_decode(&tok, "\xef\xbf\xbd" "a", 0, 2, 0xE2, 'a'); /* a lone lead byte */
    check_round_trip(&tok, "h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x8e\x89\n\n\t it's 12345");
    tokenizer_close(&tok);

    /* Llama-3 style: Split(regex) then ByteLevel without its regex */
    json = gpt2_json(
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
        "{\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
        "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
        "\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false},"
        " {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"
        " \"use_regex\": false}]}",
        "");
    const char *path = write_file("llama3.json", json);
    free(json);
    CHECK(tokenizer_open(&tok, path, err, sizeof err) == 0, "open llama3: %s", err);
    if (tok.bpe) {
        check_ids(&tok, "12345", '1', '2', '3', '4', '5', -1);
        check_round_trip(&tok, "IT'S  1234 caf\xc3\xa9\r\n\r\n  x");
        tokenizer_close(&tok);
    }
}

/* the hand-written regexes, piece by piece */
static void check_split(int re, const char *text, const char *want)
{
    char got[512] = "";
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        size_t e = tb_regex_match(re, text, n, i);
        if (e <= i)
            e = i + 1;
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%.*s", i ? "|" : "",
                 (int)(e - i), text + i);
        i = e;
    }
    CHECK(strcmp(got, want) == 0, "split \"%s\": got \"%s\", want \"%s\"", text, got, want);
}

static void test_regex(void)
{
    check_split(TB_RE_GPT2, "it's  a test\n\n x", "it|'s| | a| test|\n\n| x");
    check_split(TB_RE_GPT2, "IT'S 12345 !?!? ", "IT|'|S| 12345| !?!?| ");
    check_split(TB_RE_LLAMA3, "IT'S 12345 !?!?\n", "IT|'S| |123|45| !?!?\n");
    check_split(TB_RE_LLAMA3, "a  \n\n  b", "a|  \n\n| | b");
    check_split(TB_RE_LLAMA3, "(hello)'x", "(hello|)'|x");
    check_split(TB_RE_QWEN2, "x 123", "x| |1|2|3");
    /* U+00A0 is white space, U+00E9 a letter, ſ folds to s */
    check_split(TB_RE_GPT2, "a\xc2\xa0\xc3\xa9", "a|\xc2\xa0|\xc3\xa9");
    check_split(TB_RE_LLAMA3, "it'\xc5\xbfx", "it|'\xc5\xbf|x");
}

static void test_errors(void)
{
    char path[600];
    check_open_error("fla-hub/gla-1.3B-100B",
                     "fla-hub/gla-1.3B-100B: not a local file or folder; flame does not "
                     "download: fetch it (huggingface-cli download fla-hub/gla-1.3B-100B "
                     "--local-dir DIR) and pass DIR");
    snprintf(path, sizeof path, "%s/missing/tokenizer.json", dir);
    check_open_error(path, "No such file or directory");
    check_open_error(dir, "no tokenizer.json in this folder");
    const char *bad = write_file("bad.json", "{\n  \"model\": {\n    \"vocab\": {,}\n  }\n}\n");
    snprintf(path, sizeof path, "%s:3:", bad);
    check_open_error(bad, path);
    check_open_error(bad, "malformed JSON");
    bad = write_file("nfkc.json", "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {}}");
    check_open_error(bad, "normalizer \"NFKC\" is not supported");
    bad = write_file("wp.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    check_open_error(bad, "model type \"WordPiece\" is not supported");
    bad = write_file("re.json", "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
                                "{\"Regex\": \"\\\\d+\"}, \"behavior\": \"Isolated\", "
                                "\"invert\": false}, \"model\": {}}");
    check_open_error(bad, "the regex \"\\d+\" is not supported");
    bad = write_file("merge.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0},"
                                   " \"merges\": [\"a a\"]}}");
    check_open_error(bad, "merge 0: \"aa\" is not in the vocab");
    /* a vocab id past the ids flame reads (the tables it indexes would take gigabytes) */
    bad = write_file("huge.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 444444444},"
                                  " \"merges\": []}}");
    check_open_error(bad, "model: vocab \"b\": the id must be a whole number from 0 to 16777215");
    /* added tokens' ids that `tokenizers` refuses (not an unsigned 32-bit number) */
    static const char *const bad_ids[] = {"-5", "1099511627776", "\"7\"", "2.5"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        char text[300];
        snprintf(text, sizeof text, "{\"added_tokens\": [{\"id\": %s, \"content\": \"<s>\"}], "
                 "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", bad_ids[i]);
        bad = write_file("ids.json", text);
        check_open_error(bad, "added_tokens[0]: \"id\" must be a whole number from 0 to");
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/flame-test-tokenizer-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_byte();
    test_llama();
    test_gpt2();
    test_regex();
    test_errors();
    while (n_written > 0)
        remove(written[--n_written]);
    if (rmdir(dir) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return testing_result("test_tokenizer");
}
