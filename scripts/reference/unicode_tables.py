#!/usr/bin/env python3
# Pinned: tokenizers==0.23.3 (transformers==5.24.0 is not needed here), Python 3.11.
#
# Writes Sources/Tokenizers/UnicodeData.swift: the per-character Unicode data that the Rust
# `tokenizers` BertNormalizer and BertPreTokenizer actually use. The Rust crates behind them
# (unicode_categories, unicode-normalization-alignments, Rust std) carry different Unicode
# versions from each other and from Swift's standard library, so the only way to give Hugging
# Face's ids for every character is to ask the reference itself, one code point at a time.
#
# Rerun: /tmp/phvenv/bin/python scripts/reference/unicode_tables.py   (about a minute)
import sys
import unicodedata
from pathlib import Path

import tokenizers
from tokenizers import normalizers, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "Sources" / "Tokenizers" / "UnicodeData.swift"

# Flag bits; Sources/Tokenizers/UnicodeData+Tables.swift reads the same values.
CLEAN_REMOVES = 1      # clean_text drops it (NUL, U+FFFD, categories Cc Cf Cn Co Cs but tab/LF/CR)
CLEAN_TO_SPACE = 2     # clean_text turns it into " " (tab, LF, CR, char::is_whitespace)
WHITESPACE = 4         # BertPreTokenizer splits on it and drops it (char::is_whitespace)
PUNCTUATION = 8        # BertPreTokenizer isolates it (ASCII punctuation or Unicode P*)
CHINESE = 16           # handle_chinese_chars puts spaces around it
NONSPACING_MARK = 32   # strip_accents drops it after NFD (category Mn)


def scalars():
    for code_point in range(0x110000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue  # surrogates are not Unicode scalars: no Swift String can hold one
        yield code_point


def main():
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    # BertNormalizer's strip_accents is NFD then "drop category Mn"; normalizers.StripAccents
    # drops all combining marks (Me too), so ask BertNormalizer itself about characters that
    # do not decompose (one that decomposes is never left after NFD).
    strip_marks = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    nfd = normalizers.NFD()
    lower = normalizers.Lowercase()
    bert_split = pre_tokenizers.BertPreTokenizer()

    flags = {}
    lowercase = {}
    decomposition = {}
    for code_point in scalars():
        character = chr(code_point)
        value = 0
        cleaned = clean.normalize_str(character)
        if cleaned == "":
            value |= CLEAN_REMOVES
        elif cleaned == " ":
            value |= CLEAN_TO_SPACE
        elif cleaned != character:
            sys.exit(f"U+{code_point:04X}: clean_text gave {cleaned!r}, which this table cannot describe")
        pieces = [piece for piece, _ in bert_split.pre_tokenize_str("a" + character + "a")]
        if pieces == ["a", "a"]:
            value |= WHITESPACE
        elif pieces == ["a", character, "a"]:
            value |= PUNCTUATION
        elif pieces != ["a" + character + "a"]:
            sys.exit(f"U+{code_point:04X}: BertPreTokenizer gave {pieces!r}")
        if chinese.normalize_str(character) == " " + character + " ":
            value |= CHINESE
        decomposed = nfd.normalize_str(character)
        if decomposed != character:
            decomposition[code_point] = [ord(c) for c in decomposed]
        elif strip_marks.normalize_str(character) == "":
            value |= NONSPACING_MARK
        flags[code_point] = value
        lowered = lower.normalize_str(character)
        if lowered != character:
            lowercase[code_point] = [ord(c) for c in lowered]

    # Canonical combining classes: the values never change once assigned (Unicode stability
    # policy), so Python's table is right for every mark the reference knows; a mark newer than
    # the reference's tables is a starter to it. A non-starter reorders against U+0345 (class
    # 240, the highest) or U+0334 (class 1, the lowest); a starter never does.
    combining = {}
    for code_point in scalars():
        value = unicodedata.combining(chr(code_point))
        if value == 0:
            continue
        character = chr(code_point)
        moves_before_240 = nfd.normalize_str("\u0345" + character) == character + "\u0345"
        moves_after_1 = nfd.normalize_str(character + "\u0334") == "\u0334" + character
        if moves_before_240 or moves_after_1 or code_point in (0x0345, 0x0334):
            combining[code_point] = value

    verify(flags, lowercase, decomposition, combining)
    hangul = range(0xAC00, 0xD7A4)
    for code_point in hangul:
        if decomposition.get(code_point) != hangul_decomposition(code_point):
            sys.exit(f"U+{code_point:04X}: NFD differs from the Hangul algorithm; store it in the table")
        del decomposition[code_point]
    write(flags, lowercase, decomposition, combining)


def hangul_decomposition(code_point):
    index = code_point - 0xAC00
    lead, vowel, trail = 0x1100 + index // 588, 0x1161 + (index % 588) // 28, 0x11A7 + index % 28
    return [lead, vowel] if trail == 0x11A7 else [lead, vowel, trail]


def compose(code_point, flags, lowercase, decomposition, clean_text, chinese_chars, strip_accents, lowercase_on):
    """One character through BertNormalizer, as the Swift code composes it from the tables."""
    value = flags[code_point]
    if clean_text and (value & CLEAN_REMOVES or code_point in (0, 0xFFFD)):
        return []
    if clean_text and value & CLEAN_TO_SPACE:
        return [0x20]
    out = [0x20, code_point, 0x20] if chinese_chars and value & CHINESE else [code_point]
    if strip_accents:
        out = [d for c in out for d in decomposition.get(c, [c]) if not flags[d] & NONSPACING_MARK]
    if lowercase_on:
        out = [m for c in out for m in lowercase.get(c, [c])]
    return out


def verify(flags, lowercase, decomposition, combining):
    """Every character through the real BertNormalizer against the composition of the tables."""
    for clean_text, chinese_chars, strip_accents, lowercase_on in [
        (True, True, True, True), (True, True, False, True), (False, False, False, False), (True, False, True, False),
    ]:
        reference = normalizers.BertNormalizer(clean_text=clean_text, handle_chinese_chars=chinese_chars,
                                               strip_accents=strip_accents, lowercase=lowercase_on)
        for code_point in scalars():
            expected = [ord(c) for c in reference.normalize_str(chr(code_point))]
            got = compose(code_point, flags, lowercase, decomposition, clean_text, chinese_chars, strip_accents, lowercase_on)
            if expected != got:
                sys.exit(f"U+{code_point:04X} options {(clean_text, chinese_chars, strip_accents, lowercase_on)}: "
                         f"reference {expected} tables {got}")
    # Marks in a run are put in canonical order across characters, not only inside one.
    nfd = normalizers.NFD()
    sample = "a\u0315\u0301\u0323\u1e0b\u0323"
    expected = [ord(c) for c in nfd.normalize_str(sample)]
    decomposed = [m for c in sample for m in decomposition.get(ord(c), [ord(c)])]
    ordered = canonical_order(decomposed, combining)
    if ordered != expected:
        sys.exit(f"canonical ordering: reference {expected} tables {ordered}")


def canonical_order(scalars_in, combining):
    out = list(scalars_in)
    start = 0
    while start < len(out):
        if combining.get(out[start], 0) == 0:
            start += 1
            continue
        end = start
        while end < len(out) and combining.get(out[end], 0) != 0:
            end += 1
        out[start:end] = sorted(out[start:end], key=lambda c: combining[c])
        start = end
    return out


def hex_list(values):
    return " ".join(f"{v:X}" for v in values)


def wrapped(entries, width=110):
    lines, line = [], ""
    for entry in entries:
        if line and len(line) + 1 + len(entry) > width:
            lines.append(line)
            line = entry
        else:
            line = f"{line} {entry}" if line else entry
    if line:
        lines.append(line)
    return "\n".join("        " + text for text in lines)


def write(flags, lowercase, decomposition, combining):
    runs, previous = [], None
    for code_point in range(0x110000):
        value = flags.get(code_point, CLEAN_REMOVES)  # surrogates never occur; any value will do
        if value != previous:
            runs.append(f"{code_point:X}:{value:X}")
            previous = value
    lowercase_entries = [f"{cp:X}={hex_list(to).replace(' ', ',')}" for cp, to in sorted(lowercase.items())]
    decomposition_entries = [f"{cp:X}={hex_list(to).replace(' ', ',')}" for cp, to in sorted(decomposition.items())]
    combining_entries = [f"{cp:X}={value:X}" for cp, value in sorted(combining.items())]
    text = f"""// Generated by scripts/reference/unicode_tables.py from tokenizers {tokenizers.__version__}: do not edit.
// The character data the Rust BertNormalizer and BertPreTokenizer use, asked of the reference one
// code point at a time, so that Swift's own (newer) Unicode tables never change an id.
// Format: space-separated hexadecimal entries; see UnicodeTables.swift for the reader.

extension UnicodeTables {{
    /// `start:flags`: the flags hold from `start` up to the next entry's start.
    static let flagRunsSource = \"\"\"
{wrapped(runs)}
        \"\"\"

    /// `scalar=lowercase,...`: Rust's `char::to_lowercase`, one character at a time.
    static let lowercaseSource = \"\"\"
{wrapped(lowercase_entries)}
        \"\"\"

    /// `scalar=decomposition,...`: full canonical decomposition (NFD) of one character;
    /// Hangul syllables are left to the algorithm.
    static let decompositionSource = \"\"\"
{wrapped(decomposition_entries)}
        \"\"\"

    /// `scalar=class`: canonical combining class of each non-starter the reference knows.
    static let combiningClassSource = \"\"\"
{wrapped(combining_entries)}
        \"\"\"
}}
"""
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {len(runs)} flag runs, {len(lowercase)} lowercase, "
          f"{len(decomposition)} decompositions, {len(combining)} combining classes "
          f"(tokenizers {tokenizers.__version__}, Python unicodedata {unicodedata.unidata_version})")


if __name__ == "__main__":
    main()
