#!/usr/bin/env python3
# Pinned: tokenizers==0.23.3, transformers==5.24.0 (Python 3.11). Debian 12 locale catalogues
# and licence texts as found on the machine that ran it (the corpus is committed, so the tests
# do not depend on them).
#
# Writes Tests/Fixtures/tokenizer/: a corpus of real lines in many scripts plus edge cases, and
# what Hugging Face's Rust tokenizer gives for them: ids, offsets, word ids, pairs truncated to
# small lengths with every strategy, other normalizer settings and added tokens, decoded text,
# and per-character digests over every Unicode scalar.
#
# Rerun (about a minute):
#   /tmp/phvenv/bin/python scripts/reference/tokenizer_fixtures.py [MODEL_DIR] [--rebuild-corpus]
# MODEL_DIR defaults to $POLYHEAD_MODEL_DIR, else models/all-MiniLM-L6-v2. The committed
# corpus.jsonl is reused unless --rebuild-corpus is given: the files it is drawn from change as
# packages come and go, the expected outputs should only change with the reference.
import copy
import glob
import json
import os
import random
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer, normalizers, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures" / "tokenizer"
SEED = 20240601
MAX_TEXT_CHARACTERS = 600


# ---------------------------------------------------------------------------------------------
# Corpus

def read_mo(path):
    """Translated messages of a GNU .mo catalogue (format: gettext manual, "The Format of MO Files")."""
    data = Path(path).read_bytes()
    if len(data) < 28:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if order is None:
        return []
    count, originals_at, translations_at = struct.unpack(order + "3I", data[8:20])
    charset = "utf-8"
    messages = []
    for index in range(count):
        original_length, original_offset = struct.unpack(order + "2I", data[originals_at + 8 * index:originals_at + 8 * index + 8])
        length, offset = struct.unpack(order + "2I", data[translations_at + 8 * index:translations_at + 8 * index + 8])
        raw = data[offset:offset + length]
        if original_length == 0:  # the header entry: find the charset
            header = raw.decode("ascii", "replace")
            for line in header.split("\n"):
                if line.lower().startswith("content-type:") and "charset=" in line:
                    charset = line.split("charset=")[1].strip() or "utf-8"
            continue
        try:
            text = raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
        messages.extend(part for part in text.split("\0") if part.strip())  # plural forms
    return messages


def locale_lines(rng, per_locale):
    lines = []
    for locale_dir in sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES")):
        locale = locale_dir.split("/")[-2]
        catalogues = sorted(glob.glob(locale_dir + "/*.mo"))
        messages = []
        for catalogue in catalogues:
            for message in read_mo(catalogue):
                messages.append((message, f"locale:{locale}/{Path(catalogue).stem}"))
        messages = sorted(set(messages))
        rng.shuffle(messages)
        lines.extend(messages[:per_locale])
    return lines


def licence_lines(rng, count):
    files = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
    candidates = []
    for path in files:
        if os.path.isdir(path):
            continue
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for line in text.split("\n"):
            if line.strip():
                candidates.append((line, "licence:" + path.replace("/usr/share/", "")))
    candidates = sorted(set(candidates))
    rng.shuffle(candidates)
    return candidates[:count]


EDGE_CASES = [
    # Empty and whitespace-only.
    "", " ", "   ", "\t", "\n", "\r\n", "\r", " \t\n\r ", "\u3000", "\u00a0", "\u2028\u2029", "\u0085",
    # Accents, combining marks, case.
    "Café", "cafe\u0301", "naïve résumé", "Ångström", "A\u030angstro\u0308m", "mąka", "Zürich", "ǅemal", "İstanbul",
    "ΣΊΣΥΦΟΣ ΟΔΟΣ", "straße STRASSE ẞ", "Tiếng Việt có dấu", "e\u0301\u0323", "a\u0315\u0301\u0323b",
    "\u0301abc", " \u0301 ", "x\U0001D165\U0001D16D\u0301y", "o\u0308\u0304", "ﬁnance ﬂow", "Ⅻ ⅻ", "ǈ ǋ ǲ",
    "Ᲊ ᲐᲑᲒ Mtavruli", "𐐀𐐁 Deseret", "𐒰𐒱 Osage", "𞤀𞤁 Adlam", "ℌℑ ℜ", "K Å Ω", "ŉ ǰ ΐ",
    # CJK and full-width forms.
    "中文字符测试", "日本語のテキスト、カタカナとひらがな。", "한국어 텍스트입니다", "abc中def", "𠀀𠀁𠀂", "𪜀𫝀𫠠𬺰",
    "\U0002B820\U0002B8FF\U0002B920", "豈更車", "\U0002F800\U0002F801", "〇〡〢", "ＡＢＣ１２３！？ｈｅｌｌｏ", "ｶﾀｶﾅ", "㈱㍿",
    # Scripts.
    "ภาษาไทยเป็นภาษาที่มีวรรณยุกต์", "مرحبا بالعالم", "مَرْحَبًا بِكُمْ", "שָׁלוֹם עוֹלָם", "हिन्दी भाषा क़िला",
    "தமிழ் மொழி", "বাংলা ভাষা", "ქართული ენა", "Հայերեն լեզու", "አማርኛ ቋንቋ", "བོད་སྐད་", "ភាសាខ្មែរ", "မြန်မာဘာသာ",
    "Ελληνικά", "Русский язык", "Українська мова", "ܐܪܡܝܐ", "ᚠᚢᚦᚨᚱᚲ", "ꦧꦱꦗꦮ", "ߒߞߏ", "\u07fd\u07fe",
    # Emoji, ZWJ sequences, modifiers, flags, keycaps, variation selectors.
    "😀", "I ❤️ NY", "👍🏽 ok", "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "🇫🇷🇩🇪", "1️⃣ #️⃣", "🥰🫠🪿", "☺︎ ☺️", "a\u200db",
    # Control, format and zero-width characters.
    "a\u200bb", "\ufeffBOM at start", "soft\u00adhyphen", "tab\there", "nul\x00char", "del\x7fchar", "bell\x07",
    "\ue000private\uf8ff", "\uffff\ufffe", "\ufffdreplacement", "\U000E0001\U000E0041tags", "left\u200eright\u200f",
    "\u2066isolate\u2069", "line\u2028separator", "word\u2060joiner", "\u180emongolian", "\u00a0\u2007\u202f spaces",
    "\x1c\x1d\x1e\x1f", "\x0b\x0c",
    # Words near and over max_input_chars_per_word.
    "a" * 100, "a" * 101, "é" * 100, "é" * 101, "e\u0301" * 60, "supercalifragilistic" * 5, "x" * 99 + "\u200b" * 5,
    "pneumonoultramicroscopicsilicovolcanoconiosis " * 4,
    # Special tokens typed in the text.
    "[CLS]", "[SEP] in the middle [SEP]", "foo[MASK]bar", "[cls] lower", "[PAD][UNK][CLS][SEP][MASK]", "[CLS",
    "[[CLS]]", "x [ CLS ] y", "[CLS][CLS]", " [SEP] ", "[MASK]ed",
    # Punctuation and symbols.
    "don't stop", "U.S.A.", "e-mail", "$100.00", "«quotes»", "¿Qué? ¡Sí!", "wait…", "a—b–c", "a/b\\c", "#hashtag ##x",
    "@user", "http://example.com/path?x=1&y=2#frag", "3.14159 1,000,000", "(a) [b] {c} <d>", "~`^|+=", "§¶†‡•",
    "“curly” ‘quotes’", "«»‹›", "。、！？", "abcабв", "٣٤٥ ١٢", "Ⅰ Ⅱ ½ ² ³", "𝐀𝐁𝐂 𝔸𝔹", "™©®",
    # For the added-token variant.
    "Hello World, hello world!", "HELLOWORLD helloworld", "<mask> My name <mask> A<mask> <mask>ony <mask>",
    "Hi <mask> there\t<mask>\t<mask>\u2000", "<mask>, <mask>- \u25cc\u0330<mask>", "new_token new_tokens xnew_token",
    # Mixed and long.
    "The quick brown fox jumps over the lazy dog. " * 8,
    "Mixed: English, Français, Deutsch, 中文, 日本語, العربية, हिन्दी, ไทย, 😀 — all in one line!",
]


def build_corpus():
    rng = random.Random(SEED)
    lines = [(text, "edge") for text in EDGE_CASES]
    lines += locale_lines(rng, per_locale=32)
    lines += licence_lines(rng, count=1200)
    return [(text[:MAX_TEXT_CHARACTERS], source) for text, source in lines]


# ---------------------------------------------------------------------------------------------
# Reference outputs

def flat_offsets(offsets):
    return [value for pair in offsets for value in pair]


def load_reference(model_dir):
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def check_transformers_agrees(model_dir, texts, expected_ids):
    """transformers' BertTokenizer from the same directory, and from vocab.txt alone, must agree
    with the Rust tokenizer: the Swift vocab.txt loader is tested against the same ids."""
    auto = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    with tempfile.TemporaryDirectory() as scratch:
        for name in ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]:
            if (model_dir / name).exists():
                shutil.copy(model_dir / name, scratch)
        from_vocabulary = transformers.BertTokenizer.from_pretrained(scratch)
        for tokenizer, label in [(auto, "AutoTokenizer"), (from_vocabulary, "BertTokenizer(vocab.txt)")]:
            ids = tokenizer(texts)["input_ids"]
            differing = sum(1 for a, b in zip(ids, expected_ids) if a != b)
            if differing:
                sys.exit(f"{label} differs from tokenizers on {differing} lines; the fixtures would be ambiguous")


def slow_differences(model_dir, texts, expected_ids):
    """Lines where the pure-Python BertTokenizer (transformers' BertTokenizerLegacy) differs."""
    slow = transformers.BertTokenizerLegacy(str(model_dir / "vocab.txt"))
    examples = []
    count = 0
    for text, ids in zip(texts, expected_ids):
        slow_ids = slow(text)["input_ids"]
        if slow_ids != ids:
            count += 1
            if len(examples) < 12:
                examples.append({"text": text[:120], "rust": slow.convert_ids_to_tokens(ids)[:24],
                                 "python": slow.convert_ids_to_tokens(slow_ids)[:24]})
    return {"lines_differing": count, "examples": examples}


def pair_cases(tokenizer, texts, rng):
    cases = []
    strategies = ["longest_first", "only_first", "only_second"]
    lengths = [3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32]
    for case_index in range(1500):
        first = rng.randrange(len(texts))
        second = rng.randrange(len(texts))
        max_length = lengths[case_index % len(lengths)]
        strategy = strategies[(case_index // len(lengths)) % len(strategies)]
        if case_index % 10 == 9:
            second = None  # single texts truncated too
        cases.append(run_case(tokenizer, texts, first, second, max_length, strategy))
    for case_index in range(60):  # pairs without truncation
        cases.append(run_case(tokenizer, texts, rng.randrange(len(texts)), rng.randrange(len(texts)), None, "longest_first"))
    tokenizer.no_truncation()
    return cases


def run_case(tokenizer, texts, first, second, max_length, strategy):
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length, strategy=strategy)
    case = {"first": first, "second": second, "max_length": max_length, "strategy": strategy}
    try:
        encoding = tokenizer.encode(texts[first], texts[second]) if second is not None else tokenizer.encode(texts[first])
        case.update(ids=encoding.ids, type_ids=encoding.type_ids, offsets=flat_offsets(encoding.offsets))
    except Exception as error:  # the reference refuses: the Swift side must refuse too
        case["error"] = str(error)
    return case


VARIANTS = [
    # name, normalizer (None keeps the model's), extra added tokens.
    ("cased", {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": False, "strip_accents": None, "lowercase": False}, []),
    ("lowercase_keep_accents", {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": False, "lowercase": True}, []),
    ("strip_accents_cased", {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": True, "lowercase": False}, []),
    ("no_clean_text", {"type": "BertNormalizer", "clean_text": False, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True}, []),
    ("no_normalizer", None, []),
    ("added_tokens", {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True}, [
        {"id": 30522, "content": "<mask>", "single_word": True, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
        {"id": 30523, "content": "Hello World", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
        {"id": 30524, "content": "new_token", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
        {"id": 30525, "content": "ony", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": False},
        {"id": 30526, "content": "ÉTÉ", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
    ]),
]


def variant_json(model_json, normalizer, added):
    patched = copy.deepcopy(model_json)
    patched["normalizer"] = normalizer
    patched["added_tokens"] = patched["added_tokens"] + added
    patched["truncation"] = None
    patched["padding"] = None
    return patched


# ---------------------------------------------------------------------------------------------
# Canonical reordering: characters that NFD reorders and strip_accents keeps (viramas of
# Balinese, Javanese and others, musical symbols, letters unknown to the older category table)
# decide both ids and offsets by where reordering puts them. A small vocabulary made of every
# character such text can normalize to, alone and as "##" piece, makes each one its own token.

REORDER_CHARACTERS = (
    [0x1B44, 0xA9C0, 0x1D165, 0x1D16D, 0x1D16E, 0x302E, 0x11235, 0x08D4, 0x1E944]       # kept non-starters
    + [0x0301, 0x0323, 0x0315, 0x0334, 0x093C, 0x05B0, 0x0F72, 0x0F71, 0xA9B3, 0x1B34]  # nonspacing marks
    + [0x1EC7, 0x00E9, 0x0344, 0x0F73, 0xAC01, 0x01D5, 0x0130]                          # decomposing
    + [ord(c) for c in "aXb 中​"]                                              # plain, space, CJK, removed
)


def reorder_cases(rng):
    from tokenizers import models
    settings = [
        {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        {"type": "BertNormalizer", "clean_text": False, "handle_chinese_chars": False, "strip_accents": True, "lowercase": False},
    ]
    texts = ["".join(chr(rng.choice(REORDER_CHARACTERS)) for _ in range(rng.randrange(2, 9))) for _ in range(400)]
    texts += ["x\U0001D16D\U0001D165y", "x\U0001D16D\u0301\U0001D165y", "x\u1ec7\U0001D165y", "\ua9c0\ua9b3\u0301"]
    result = {"texts": texts, "tokenizers": []}
    for normalizer in settings:
        reference = normalizers.BertNormalizer(**{k: v for k, v in normalizer.items() if k != "type"})
        characters = sorted({c for code in REORDER_CHARACTERS for c in reference.normalize_str(chr(code)) if not c.isspace()})
        vocabulary = {"[UNK]": 0}
        for character in characters:
            vocabulary.setdefault(character, len(vocabulary))
            vocabulary.setdefault("##" + character, len(vocabulary))
        tokenizer = Tokenizer(models.WordPiece(vocabulary, unk_token="[UNK]", max_input_chars_per_word=100))
        tokenizer.normalizer = reference
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        encodings = tokenizer.encode_batch(texts)
        result["tokenizers"].append({"tokenizer_json": json.loads(tokenizer.to_str()),
                                     "ids": [e.ids for e in encodings], "offsets": [flat_offsets(e.offsets) for e in encodings]})
    return result


# ---------------------------------------------------------------------------------------------
# Every Unicode scalar: digests instead of outputs keep the fixture small.

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv(values, state=FNV_OFFSET):
    """FNV-1a over 32-bit values, one byte at a time, little-endian (the Swift test does the same)."""
    for value in values:
        for shift in (0, 8, 16, 24):
            state ^= (value >> shift) & 0xFF
            state = (state * FNV_PRIME) & MASK64
    return state


def scalars():
    return [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


NORMALIZER_COMBINATIONS = [
    # clean_text, handle_chinese_chars, strip_accents, lowercase
    (True, True, None, True), (True, True, None, False), (True, False, True, False), (False, True, False, True),
    (False, False, False, False),
]


def unicode_digests(tokenizer):
    everything = scalars()
    result = {"normalizer": [], "pre_tokenizer": None, "chunks": []}
    for clean_text, chinese, strip, lower in NORMALIZER_COMBINATIONS:
        reference = normalizers.BertNormalizer(clean_text=clean_text, handle_chinese_chars=chinese, strip_accents=strip, lowercase=lower)
        state = FNV_OFFSET
        for code_point in everything:
            state = fnv([ord(c) for c in reference.normalize_str(chr(code_point))] + [0xFFFFFFFF], state)
        result["normalizer"].append({"clean_text": clean_text, "handle_chinese_chars": chinese, "strip_accents": strip,
                                     "lowercase": lower, "digest": f"{state:016x}"})
    splitter = pre_tokenizers.BertPreTokenizer()
    state = FNV_OFFSET
    for code_point in everything:
        pieces = len(splitter.pre_tokenize_str("a" + chr(code_point) + "a"))  # 1 word, 2 whitespace, 3 punctuation
        state = fnv([pieces], state)
    result["pre_tokenizer"] = f"{state:016x}"
    # End to end: every scalar as its own space-separated word, 256 per text.
    for start in range(0, len(everything), 256):
        text = " ".join(chr(c) for c in everything[start:start + 256])
        encoding = tokenizer.encode(text)
        state = fnv(encoding.ids + [0xFFFFFFFF] + flat_offsets(encoding.offsets))
        result["chunks"].append(f"{state:016x}")
    return result


# ---------------------------------------------------------------------------------------------

def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def main():
    arguments = [argument for argument in sys.argv[1:] if not argument.startswith("--")]
    rebuild = "--rebuild-corpus" in sys.argv[1:]
    model_dir = Path(arguments[0] if arguments else os.environ.get("POLYHEAD_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))
    if not (model_dir / "tokenizer.json").exists():
        sys.exit(f"{model_dir}/tokenizer.json not found: run scripts/setup first")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)

    corpus_path = FIXTURES / "corpus.jsonl"
    if corpus_path.exists() and not rebuild:
        # Split on "\n" only: the texts hold U+2028, U+0085 and others that splitlines() splits on.
        corpus = [(row["text"], row["source"]) for row in
                  (json.loads(line) for line in corpus_path.read_text(encoding="utf-8").split("\n") if line)]
    else:
        corpus = build_corpus()
    texts = [text for text, _ in corpus]
    tokenizer = load_reference(model_dir)
    encodings = tokenizer.encode_batch(texts)
    expected = [{"ids": e.ids, "offsets": flat_offsets(e.offsets), "words": e.word_ids} for e in encodings]
    check_transformers_agrees(model_dir, texts, [e.ids for e in encodings])

    write_jsonl(FIXTURES / "corpus.jsonl", [{"text": text, "source": source} for text, source in corpus])
    write_jsonl(FIXTURES / "expected.jsonl", expected)
    write_jsonl(FIXTURES / "pairs.jsonl", pair_cases(tokenizer, texts, rng))

    decoded = []
    for index in range(0, len(texts), 3):
        ids = encodings[index].ids
        decoded.append({"line": index, "skip_special": tokenizer.decode(ids, skip_special_tokens=True),
                        "keep_special": tokenizer.decode(ids, skip_special_tokens=False)})
    write_jsonl(FIXTURES / "decoded.jsonl", decoded)

    model_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    variant_lines = [index for index, (_, source) in enumerate(corpus) if source == "edge" or index % 8 == 0]
    variants = []
    for name, normalizer, added in VARIANTS:
        variant = Tokenizer.from_str(json.dumps(variant_json(model_json, normalizer, added)))
        outputs = variant.encode_batch([texts[i] for i in variant_lines])
        variants.append({"name": name, "normalizer": normalizer, "added_tokens": added, "lines": variant_lines,
                         "ids": [o.ids for o in outputs], "offsets": [flat_offsets(o.offsets) for o in outputs]})
    with open(FIXTURES / "variants.json", "w", encoding="utf-8") as file:
        json.dump({"variants": variants}, file, ensure_ascii=False, separators=(",", ":"))

    with open(FIXTURES / "reordering.json", "w", encoding="utf-8") as file:
        json.dump(reorder_cases(random.Random(SEED + 1)), file, ensure_ascii=False, separators=(",", ":"))

    digests = unicode_digests(tokenizer)
    with open(FIXTURES / "unicode_digests.json", "w", encoding="utf-8") as file:
        json.dump(digests, file, indent=1)

    sources = {}
    for _, source in corpus:
        kind = source.split(":")[0] if source != "edge" else "edge"
        sources[kind] = sources.get(kind, 0) + 1
    metadata = {
        "generator": "scripts/reference/tokenizer_fixtures.py",
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "model": str(model_dir.name),
        "seed": SEED,
        "lines": len(corpus),
        "lines_by_source": sources,
        "locales": len({s.split("/")[0] for _, s in corpus if s.startswith("locale:")}),
        "tokens": sum(len(e.ids) for e in encodings),
        "pair_cases": 1560,
        "slow_python_tokenizer": slow_differences(model_dir, texts, [e.ids for e in encodings]),
    }
    with open(FIXTURES / "metadata.json", "w", encoding="utf-8") as file:
        json.dump(metadata, file, ensure_ascii=False, indent=1)
    print(json.dumps({k: v for k, v in metadata.items() if k != "slow_python_tokenizer"}, ensure_ascii=False))
    print("slow Python tokenizer differs on", metadata["slow_python_tokenizer"]["lines_differing"], "lines")
    for path in sorted(FIXTURES.iterdir()):
        print(f"  {path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
