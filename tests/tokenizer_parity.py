#!/usr/bin/env python3
"""Parity of flame's tokenizer.json BPE tokenizer with Hugging Face `tokenizers`.

Trains small tokenizers of both families with `tokenizers` on text made here
(English from Debian's common-licenses and fortunes where present, code,
several scripts, emoji, white space, digits), saves their tokenizer.json,
writes over 1 MB of other text of the same kinds, and has tests/tokenize_tool
(C) encode it. Every id must equal tokenizers' encode(add_special_tokens=False),
flame's decode must equal tokenizers' decode (with and without special tokens),
and decode(encode(x)) == x must hold in C wherever it holds in tokenizers (for
every English document with llama2, gpt2, llama3, qwen2: the others add or drop
a leading space by design).

Families:
  llama2      Prepend("▁") + Replace(" ", "▁") normalizer, no pre-tokenizer, BPE with
              byte_fallback and fuse_unk, merges as "a b" strings, decoder
              Replace/ByteFallback/Fuse/Strip                 (Llama-2, Mistral v0.1)
  metaspace   Metaspace(prepend_scheme "first", split false), decoder Metaspace
                                                              (Mistral v0.3 and later)
  metaspace-split  Metaspace(prepend_scheme "always", split true)
  gpt2        ByteLevel(add_prefix_space false), decoder ByteLevel
  gpt2-prefix ByteLevel(add_prefix_space true)
  llama3      Split(Llama-3 regex, Isolated) + ByteLevel(use_regex false),
              ignore_merges, TemplateProcessing with <|begin_of_text|>
  qwen2       as llama3 with Qwen2's regex (one digit at a time)
Each has special tokens and added tokens with lstrip/rstrip, single_word and
normalized set, which the test text holds.

The tool: $TOKENIZE_TOOL, else $top_builddir/tests/tokenize_tool, else built
here from $top_srcdir (default: this file's folder's parent) with $CC.
Exit 0 pass, 1 fail, 77 skip (tokenizers not importable)."""
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

try:
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors, trainers)
except ImportError as e:
    print(f"SKIP: the Python package `tokenizers` cannot be imported ({e}); "
          "pip install tokenizers")
    sys.exit(77)

SEP = "\x1e"  # between documents in the test file
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")

# ---------------------------------------------------------------- text


def english_paragraphs():
    paras = []
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if path.endswith((".dat", ".u8")) or os.path.isdir(path):
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        paras += [p.strip("\n") for p in text.split("\n%\n") if p.strip()]
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isdir(path) or os.path.islink(path):
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        paras += [p for p in text.split("\n\n") if p.strip()]
    return paras


WORDS = {
    "ru": "привет мир съешь же ещё этих мягких французских булок да выпей чаю Москва".split(),
    "el": "Γειά σου κόσμε ξεσκεπάζω την ψυχοφθόρα βδελυγμία Αθήνα".split(),
    "ar": "مرحبا بالعالم نص حكيم له سر قاطع وذو شأن عظيم ٣٤٥".split(),
    "he": "שלום עולם דג סקרן שט בים מאוכזב ולפתע מצא חברה".split(),
    "hi": "नमस्ते दुनिया ऋषियों को सताने वाले दुष्ट राक्षसों ४५६".split(),
    "zh": "你好世界 我能吞下玻璃而不伤身体 中文字符 北京市".split(),
    "ja": "こんにちは世界 いろはにほへと ちりぬるを カタカナ 東京".split(),
    "ko": "안녕하세요 세계 다람쥐 헌 쳇바퀴에 타고파 서울".split(),
    "th": "สวัสดีชาวโลก เป็นมนุษย์สุดประเสริฐเลิศคุณค่า".split(),
    "vi": "Xin chào thế giới Tiếng Việt có dấu ở đây nhé".split(),
    "de": "Grüße Straße Äpfel Öl Übermut Fußgängerübergänge".split(),
    "fr": "Bonjour à tous où est l'hôtel Noël garçon œuvre".split(),
    "tr": "İstanbul ılık şişe çağrı Iğdır".split(),
    "misc": ["e\u0301te\u0301", "ﬁne", "ﬆop", "ſtraße", "Ⅻ", "½", "x²", "５６", "ｆｕｌｌ",
             "a\u200db", "\u00a0", "\u3000", "\u2028", "\u2581x", "Ġhello", "<0x41>", "⁇",
             "\u1c89\u1c8a", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𐍈", "\ufeff", "\u0085", "\u180e", "∑∫√∞≠"],
}
EMOJI = ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖", "🧪", "🐍", "✅", "🏳️‍🌈", "👩🏿‍💻"]
CODE = [
    "int main(int argc, char **argv)\n{\n\tprintf(\"%d\\n\", argc);\n\treturn 0;\n}\n",
    "def f(x, y=3):\n    \"\"\"Doc.\"\"\"\n    return {k: v for k, v in zip(x, y)}  # it's fine\n",
    "for (let i = 0; i < n; i++) { total += a[i] * 2.5e-3; }\r\n",
    "SELECT id, name FROM users WHERE age >= 42 AND name LIKE '%o''s%';\n",
    "if [ -f \"$HOME/.bashrc\" ]; then\n\tsource ~/.bashrc  # load\nfi\n",
    "<div class=\"x\">&nbsp;Hello &amp; <b>bye</b></div>\n",
    "    x = [1, 2, 3]\n\n\n        y = x[::-1]\t\t# reversed\n",
    "{\"key\": [true, false, null, 1.5e10, \"\\u00e9\"]}\n",
]
CONTRACTIONS = ["it's", "IT'S", "they'RE", "we'Ve", "I'M", "you'll", "He'D", "'ſ", "'s",
                "don't", "''s", "'", "rock'n'roll", "o'clock", "'Sx"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t \t", "    \n", "\u00a0 ",
          " \u3000", "\n\n\n    "]
SPECIALS = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>",
            "<mask>", " <mask> ", "qqq", " qqq ", "aqqq", "qqq.", "flame token",
            " flame token ", "<|reserved_1|>"]


def random_codepoints(rng, n):
    out = []
    while len(out) < n:
        cp = rng.choice([rng.randrange(0x20, 0x3000), rng.randrange(0x3000, 0x10000),
                         rng.randrange(0x10000, 0x20000), rng.randrange(0x1C80, 0x1CC0)])
        if 0xD800 <= cp < 0xE000 or cp == 0x1E:
            continue
        out.append(chr(cp))
    return "".join(out)


def mixed_doc(rng, size, specials):
    parts = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.25:
            lang = rng.choice(list(WORDS))
            s = " ".join(rng.choice(WORDS[lang]) for _ in range(rng.randint(1, 12)))
        elif kind < 0.35:
            s = rng.choice(CODE)
        elif kind < 0.45:
            s = "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4)))
        elif kind < 0.55:
            s = rng.choice(SPACES)
        elif kind < 0.65:
            s = str(rng.randrange(10 ** rng.randint(1, 12))) + rng.choice(
                ["", ".", ".5", ",000", "%", "th", " km", "-", "/"])
        elif kind < 0.72:
            s = rng.choice(CONTRACTIONS)
        elif kind < 0.76 and specials:
            s = rng.choice(SPECIALS)
        elif kind < 0.80:
            s = random_codepoints(rng, rng.randint(1, 6))
        else:
            s = " ".join(rng.choice(["the", "of", "and", "tokenizer", "Flame", "GPU", "x",
                                     "A", "linear", "attention"]) for _ in range(rng.randint(1, 8)))
        parts.append(s)
        if rng.random() < 0.6:
            parts.append(rng.choice([" ", " ", "", "\n", ", ", ". "]))
        total += len(s)
    return "".join(parts)


def make_corpus():
    rng = random.Random(20240611)
    paras = english_paragraphs()
    rng.shuffle(paras)
    half = len(paras) // 2
    train = paras[:half] + [mixed_doc(random.Random(i), 2000, False) for i in range(300)]
    test_en = paras[half:]
    # English test documents: paragraphs joined into documents of various sizes
    docs_en, cur = [], []
    for p in test_en:
        cur.append(p)
        if rng.random() < 0.15:
            docs_en.append("\n\n".join(cur))
            cur = []
    if cur:
        docs_en.append("\n\n".join(cur))
    if not docs_en or sum(map(len, docs_en)) < 200_000:  # no system text: make some
        docs_en += [mixed_doc(random.Random(10_000 + i), 5000, False) for i in range(200)]
    trng = random.Random(777)
    docs_mixed = [mixed_doc(trng, trng.choice([10, 100, 1000, 5000]), True) for _ in range(400)]
    docs_mixed += [mixed_doc(trng, 150_000, True) for _ in range(2)]  # long single words
    edge = ["", " ", "  ", "\n", "a", " a", "▁", "<s>", "<s>a", "<s> a", "a<s>", " <mask> ",
            "<mask>", "qqq", "qqq qqq", "\t\tx", "x\n", "\r\n", "It's", "'s", " 's", "1234567",
            "\u00a0a", "a\u3000b", "🎉", "\u2581a", "flame token", " flame token",
            "Ġ", "<0x41>", "<unk>", "ı", "\x85x"]
    return train, docs_en, docs_mixed + edge

# ---------------------------------------------------------------- tokenizers


def add_byte_tokens(tok):
    """sentencepiece-style byte fallback: <0x00>..<0xFF> in the vocab"""
    d = json.loads(tok.to_str())
    vocab = d["model"]["vocab"]
    nxt = max(vocab.values()) + 1
    for b in range(256):
        name = f"<0x{b:02X}>"
        if name not in vocab:
            vocab[name] = nxt
            nxt += 1
    d["model"].update(byte_fallback=True, fuse_unk=True, unk_token="<unk>")
    return Tokenizer.from_str(json.dumps(d))


def extra_tokens(tok):
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True,
                                       normalized=False)])
    tok.add_tokens([AddedToken("qqq", single_word=True),
                    AddedToken("flame token", normalized=True)])


def train_sentencepiece(texts, variant):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=200, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok = add_byte_tokens(tok)
    if variant == "llama2":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    else:
        first = variant == "metaspace"
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="first" if first else "always", split=not first)
        tok.decoder = decoders.Sequence([decoders.Metaspace(
            replacement="▁", prepend_scheme="first" if first else "always"),
            decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    extra_tokens(tok)
    return tok


def train_bytelevel(texts, variant):
    tok = Tokenizer(models.BPE())
    specials = ["<|endoftext|>"]
    if variant in ("llama3", "qwen2"):
        regex = LLAMA3_RE if variant == "llama3" else QWEN2_RE
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = ["<|begin_of_text|>", "<|end_of_text|>"] + \
            [f"<|reserved_{i}|>" for i in range(8)]
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=variant == "gpt2-prefix")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    if variant in ("llama3", "qwen2"):
        d = json.loads(tok.to_str())
        d["model"]["ignore_merges"] = True
        tok = Tokenizer.from_str(json.dumps(d))
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    extra_tokens(tok)
    return tok


def save(tok, folder, legacy_merges):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tokenizer.json")
    d = json.loads(tok.to_str())
    if legacy_merges:  # the older "a b" form
        merges = d["model"]["merges"]
        assert all(" " not in a and " " not in b for a, b in merges)
        d["model"]["merges"] = [f"{a} {b}" for a, b in merges]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False, indent=1)
    return Tokenizer.from_file(path), path

# ---------------------------------------------------------------- the C tool


def find_tool(workdir):
    tool = os.environ.get("TOKENIZE_TOOL")
    if tool:
        return tool
    here = os.path.dirname(os.path.abspath(__file__))
    builddir = os.environ.get("top_builddir", os.path.dirname(here))
    built = os.path.join(builddir, "tests", "tokenize_tool")
    if os.path.exists(built):
        return built
    srcdir = os.environ.get("top_srcdir", os.path.dirname(here))
    cc = os.environ.get("CC", "cc")
    srcs = sorted(glob.glob(os.path.join(srcdir, "core", "tokenizer*.c")))
    out = os.path.join(workdir, "tokenize_tool")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "jansson"], capture_output=True,
                           text=True).stdout.split() or ["-ljansson"]
    cmd = [cc, "-std=gnu11", "-O2", "-I" + os.path.join(srcdir, "core"), *srcs,
           os.path.join(srcdir, "tests", "tokenize_tool.c"), "-o", out, *flags]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL: cannot build tokenize_tool:\n" + " ".join(cmd) + "\n" + r.stderr)
        sys.exit(1)
    return out


def run_tool(tool, tok_path, text_path, *extra):
    r = subprocess.run([tool, "--sep", "1e", *extra, tok_path, text_path], capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"tokenize_tool failed ({r.returncode}): "
                           + r.stderr.decode("utf-8", "replace"))
    return r.stdout.decode(), r.stderr.decode()


def parse_stat(stderr, key):
    for word in stderr.replace(",", " ").split("\n")[0].split(" " + key + " ")[1:2]:
        return int(word.split()[0])
    return None


def speed(stderr):
    line = [l for l in stderr.splitlines() if "MB/s" in l][0]
    return float(line.split(" MB/s")[0].rsplit(" ", 1)[1])

# ---------------------------------------------------------------- main


def main():
    work = tempfile.mkdtemp(prefix="flame-tokparity-")
    failures = []
    try:
        tool = find_tool(work)
        train, docs_en, docs_mixed = make_corpus()
        docs = docs_en + docs_mixed
        assert not any(SEP in d for d in docs)
        test_path = os.path.join(work, "test.txt")
        with open(test_path, "w", encoding="utf-8", newline="") as f:
            f.write(SEP.join(docs))
        en_path = os.path.join(work, "english.txt")
        with open(en_path, "w", encoding="utf-8", newline="") as f:
            f.write("\n\n".join(docs_en))
        n_bytes = os.path.getsize(test_path)
        print(f"test text: {len(docs)} documents, {n_bytes / 1e6:.2f} MB "
              f"({os.path.getsize(en_path) / 1e6:.2f} MB English); "
              f"training text: {sum(len(t) for t in train) / 1e6:.2f} M characters")
        assert n_bytes >= 1_000_000
        variants = ["llama2", "metaspace", "metaspace-split", "gpt2", "gpt2-prefix", "llama3",
                    "qwen2"]
        total_ids = 0
        for v in variants:
            t0 = time.time()
            if v.startswith(("llama2", "metaspace")):
                hf = train_sentencepiece(train, v)
            else:
                hf = train_bytelevel(train, v)
            hf, path = save(hf, os.path.join(work, v), legacy_merges=v == "llama2")
            target = os.path.dirname(path) if v == "gpt2" else path  # a folder, a file
            expect = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
            out, err = run_tool(tool, target, test_path, "--decode",
                                os.path.join(work, v + ".dec"))
            got = [[int(x) for x in line.split()] for line in out.split("\n")[:len(docs)]]
            bad = [i for i in range(len(docs)) if got[i] != expect[i]]
            n_ids = sum(map(len, expect))
            total_ids += n_ids
            problems = []
            for i in bad[:3]:
                a, b = expect[i], got[i]
                k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]),
                         min(len(a), len(b)))
                problems.append(
                    f"document {i} ({len(docs[i])} chars), first difference at token {k}:\n"
                    f"      tokenizers: {[hf.id_to_token(x) for x in a[max(0, k - 3):k + 4]]}\n"
                    f"      flame:      {[hf.id_to_token(x) for x in b[max(0, k - 3):k + 4]]}")
            # decode, with and without special tokens
            c_dec_all = None
            for skip in (False, True):
                dec_path = os.path.join(work, v + (".decs" if skip else ".dec"))
                if skip:
                    run_tool(tool, target, test_path, "--quiet", "--skip-special",
                             "--decode", dec_path)
                with open(dec_path, "rb") as f:
                    c_dec = f.read().decode("utf-8").split(SEP)
                c_dec_all = c_dec_all or c_dec
                hf_dec = hf.decode_batch(expect, skip_special_tokens=skip)
                dbad = [i for i in range(len(docs)) if c_dec[i] != hf_dec[i]]
                if dbad:
                    i = dbad[0]
                    problems.append(f"decode(skip_special_tokens={skip}) differs in {len(dbad)} "
                                    f"documents, e.g. {i}: tokenizers {hf_dec[i][:80]!r} "
                                    f"flame {c_dec[i][:80]!r}")
            c_round = int(err.split("round trip: ")[1].split()[0])
            hf_round = sum(1 for d, ids in zip(docs, expect)
                           if hf.decode(ids, skip_special_tokens=False) == d)
            if c_round != hf_round:
                problems.append(f"round trip: {c_round} documents in C, {hf_round} in tokenizers")
            # lossless families: every English document decodes to itself
            en_round = sum(c_dec_all[i] == docs[i] for i in range(len(docs_en)))
            if v in ("llama2", "gpt2", "llama3", "qwen2") and en_round != len(docs_en):
                problems.append(f"round trip: {en_round} of {len(docs_en)} English documents")
            # BOS/EOS
            bos, eos = parse_stat(err, "bos"), parse_stat(err, "eos")
            want_bos = hf.token_to_id("<s>" if v.startswith(("llama2", "metaspace"))
                                      else "<|begin_of_text|>")
            want_bos = -1 if want_bos is None else want_bos
            want_eos = hf.token_to_id("</s>") or hf.token_to_id("<|end_of_text|>") or \
                hf.token_to_id("<|endoftext|>")
            if (bos, eos) != (want_bos, want_eos):
                problems.append(f"bos/eos {bos}/{eos}, expected {want_bos}/{want_eos}")
            # speed on English
            _, err_en = run_tool(tool, target, en_path, "--quiet", "--repeat", "2")
            mbs = speed(err_en)
            status = "ok" if not bad and not problems else "FAIL"
            print(f"{v:16s} {status}: {n_ids} ids compared, {len(bad)} documents differ; "
                  f"round trip {c_round}/{len(docs)}; English {mbs:.1f} MB/s "
                  f"({time.time() - t0:.1f} s)")
            for p in problems:
                print("    " + p)
            if bad or problems:
                failures.append(v)
        print(f"{total_ids} token ids compared over {len(variants)} tokenizers")
    finally:
        if os.environ.get("KEEP_TOKPARITY"):
            print("files kept in", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("tokenizer parity: FAILED (" + ", ".join(failures) + ")")
        return 1
    print("tokenizer parity: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
