#!/usr/bin/env bash
# Where a step's time goes, by kind of op: samples `polyhead bench mtl` with perf and sums
# the samples of each symbol into categories (GEMM kernel, GEMM packing, attention,
# activation, LayerNorm and residual, dropout masks, optimizer, memory fills and copies,
# kernel time, other). Needs perf (apt-get install linux-perf) and a release build.
#   scripts/bench/profile.sh [train|infer] [extra polyhead bench mtl options]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
mode=${1:-train}; shift || true
command -v perf >/dev/null || { echo "profile.sh: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
data=$(mktemp)
trap 'rm -f "$data" "$data.txt"' EXIT
# Warm-up steps are excluded from nothing here: use enough timed steps to dwarf them.
perf record -q -o "$data" .build/release/polyhead bench mtl --mode "$mode" --steps "${STEPS:-4}" --warmup 1 "$@" > /dev/null
perf report -i "$data" --no-children --sort dso,symbol --stdio 2>/dev/null > "$data.txt"
python3 - "$data.txt" "$mode" <<'PY'
import re, sys
path, mode = sys.argv[1], sys.argv[2]
rules = [  # first match wins
    ("GEMM kernel (OpenBLAS)", r"sgemm_kernel"),
    ("GEMM packing and beta (OpenBLAS)", r"sgemm_(on|ot|in|it)copy|sgemm_beta|sgemm_[nt][nt]$"),
    ("attention (QK^T, softmax, PV and backward)", r"attention|weightedRows|scoresKernel|softmax"),
    ("activation (GELU, +bias backward)", r"activation"),
    ("LayerNorm + residual + dropout apply", r"[Ll]ayerNorm|residual|dropoutBackward|dropoutResidual"),
    ("dropout masks", r"dropoutMask|fmix"),
    ("bias column sums", r"columnSums"),
    ("embeddings", r"embeddings"),
    ("optimizer (AdamW, clipping)", r"AdamW|sumOfSquares|Training5scale"),
    ("memset / memmove (zeroing, copies)", r"memset|memmove|memcpy"),
    ("kernel (page faults, scheduling)", r"\[k\]"),
]
totals, other = {}, 0.0
for line in open(path):
    m = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    share, dso, kind, symbol = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    text = f"[{kind}] {symbol}" if kind == "k" else symbol
    for name, pattern in rules:
        if re.search(pattern, text):
            totals[name] = totals.get(name, 0) + share
            break
    else:
        other += share
print(f"| {mode}: kind of op | share of samples |")
print("| --- | --- |")
for name, _ in rules:
    if totals.get(name):
        print(f"| {name} | {totals[name]:.1f}% |")
print(f"| other | {other:.1f}% |")
PY
