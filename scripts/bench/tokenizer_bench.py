#!/usr/bin/env python3
# Pinned: tokenizers==0.23.3 (Python 3.11).
#
# Tokens per second of Polyhead's tokenizer against the Rust `tokenizers` library, both on one
# thread, on the same corpus (the committed fixture corpus, repeated), side by side:
#   - Rust:  Tokenizer.encode_batch(texts) with RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false
#            (character offsets, as Polyhead computes them);
#   - Swift: `polyhead tokenize --stats`, which times its tokenization loop (the library call
#            encode(..., workspace:) per line, offsets and word ids included) in the process.
# Runs alternate between the two so that a busy machine slows both alike; medians are reported.
# Before timing, the ids polyhead writes are checked against the Rust ids, line by line.
#
#   swift build -c release --product polyhead
#   /tmp/phvenv/bin/python scripts/bench/tokenizer_bench.py [--model DIR] [--repeat 10] [--runs 7]
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402  (after the thread settings)
from tokenizers import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.environ.get("POLYHEAD_MODEL_DIR", str(ROOT / "models" / "all-MiniLM-L6-v2")))
    parser.add_argument("--repeat", type=int, default=10, help="copies of the corpus in one run")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--binary", default=str(ROOT / ".build" / "release" / "polyhead"))
    arguments = parser.parse_args()
    if not Path(arguments.binary).exists():
        sys.exit(f"{arguments.binary} not found: run `swift build -c release --product polyhead` first")

    corpus = [json.loads(line)["text"] for line in (ROOT / "Tests/Fixtures/tokenizer/corpus.jsonl").read_text(encoding="utf-8").split("\n") if line]
    texts = corpus * arguments.repeat
    reference = Tokenizer.from_file(str(Path(arguments.model) / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()

    with tempfile.TemporaryDirectory() as scratch:
        input_path = Path(scratch) / "input.jsonl"
        output_path = Path(scratch) / "output.jsonl"
        with open(input_path, "w", encoding="utf-8") as file:
            for text in texts:
                file.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        command = [arguments.binary, "tokenize", "--model", arguments.model, "--input", str(input_path),
                   "--output", str(output_path), "--stats"]

        # Same ids first: a fast wrong tokenizer is worth nothing.
        subprocess.run(command, check=True, capture_output=True)
        expected = reference.encode_batch(texts[:len(corpus)])
        written = output_path.read_text(encoding="utf-8").split("\n")
        mismatches = sum(1 for line, encoding in zip(written, expected) if json.loads(line)["input_ids"] != encoding.ids)
        if mismatches:
            sys.exit(f"polyhead tokenize gives other ids than tokenizers on {mismatches} lines; not timing")

        rust_rates, rust_fast_rates, swift_rates, cli_seconds = [], [], [], []
        tokens = None
        for _ in range(arguments.runs):
            start = time.perf_counter()
            encodings = reference.encode_batch(texts)
            elapsed = time.perf_counter() - start
            tokens = sum(len(encoding.ids) for encoding in encodings)
            rust_rates.append(tokens / elapsed)

            # encode_batch_fast: byte offsets instead of character offsets (less work).
            start = time.perf_counter()
            reference.encode_batch_fast(texts)
            rust_fast_rates.append(tokens / (time.perf_counter() - start))

            start = time.perf_counter()
            finished = subprocess.run(command, check=True, capture_output=True, text=True)
            cli_seconds.append(time.perf_counter() - start)
            match = re.search(r"(\d+) tokens in ([\d.]+) s", finished.stderr)
            if not match or int(match.group(1)) != tokens:
                sys.exit(f"unexpected --stats output: {finished.stderr!r} (expected {tokens} tokens)")
            swift_rates.append(int(match.group(1)) / float(match.group(2)))

    rust = statistics.median(rust_rates)
    swift = statistics.median(swift_rates)
    print(f"corpus: {len(corpus)} lines x {arguments.repeat} = {len(texts)} texts, {tokens} tokens; {arguments.runs} runs each, one thread")
    print(f"tokenizers {tokenizers.__version__} encode_batch : {rust:12,.0f} tokens/s (median; runs {', '.join(f'{r:,.0f}' for r in rust_rates)})")
    rust_fast = statistics.median(rust_fast_rates)
    print(f"tokenizers encode_batch_fast  : {rust_fast:12,.0f} tokens/s (median; runs {', '.join(f'{r:,.0f}' for r in rust_fast_rates)})")
    print(f"polyhead tokenize (library)   : {swift:12,.0f} tokens/s (median; runs {', '.join(f'{r:,.0f}' for r in swift_rates)})")
    print(f"ratio polyhead / tokenizers   : {swift / rust:.2f}x (encode_batch), {swift / rust_fast:.2f}x (encode_batch_fast)")
    print(f"polyhead tokenize end to end  : {statistics.median(cli_seconds):.2f} s wall (model load, JSONL read and write included)")


if __name__ == "__main__":
    main()
