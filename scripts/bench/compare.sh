#!/usr/bin/env bash
# Polyhead against PyTorch, side by side: builds release, then alternates `polyhead bench mtl`
# and shared/bench/torch_mtl_step.py RUNS times (training, then inference, each in its own
# process under /usr/bin/time -v for peak RSS), and optionally the WordNet epoch (`--wordnet`):
# `polyhead bench wordnet` (the real trainer) against scripts/bench/torch_wordnet_epoch.py
# replaying the same batches with dynamic padding, or the transformers recipe
# (scripts/reference/wordnet_recipe.py) with `--recipe`. Prints a markdown table and writes
# JSON with every run, the medians and the ratios (median of the back-to-back pairs' ratios,
# and ratio of the medians). docs/performance.md explains the method.
#
#   scripts/bench/compare.sh [--runs N] [--steps S] [--warmup W] [--threads T] [--skip-build]
#                            [--no-mtl] [--wordnet] [--wordnet-steps K] [--recipe]
#                            [--out FILE.json] [-- extra polyhead bench mtl options]
# Environment: PYTHON (default /tmp/phvenv/bin/python, torch + transformers), TORCH_MTL_SCRIPT
# (default: shared/bench/torch_mtl_step.py found beside or above the repository), MODEL
# (default models/all-MiniLM-L6-v2), WORDNET_CONFIG (default examples/wordnet/config.yaml when
# it exists, else scripts/bench/wordnet.yaml).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

runs=3 steps=8 warmup=2 threads=2 build=1 mtl=1 wordnet=0 wordnet_steps=100 recipe=0
out="runs/bench/compare-$(date +%Y%m%d-%H%M%S).json"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --skip-build) build=0; shift ;;
    --no-mtl) mtl=0; shift ;;
    --wordnet) wordnet=1; shift ;;
    --wordnet-steps) wordnet_steps=$2; shift 2 ;;
    --recipe) recipe=1; shift ;;
    --out) out=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-/tmp/phvenv/bin/python}
model=${MODEL:-models/all-MiniLM-L6-v2}
torch_script=${TORCH_MTL_SCRIPT:-}
if [ -z "$torch_script" ]; then
  for candidate in "$repo/../shared/bench/torch_mtl_step.py" "$repo/../../shared/bench/torch_mtl_step.py" /work/shared/bench/torch_mtl_step.py; do
    if [ -f "$candidate" ]; then torch_script=$candidate; break; fi
  done
fi
[ -x /usr/bin/time ] || { echo "compare.sh: /usr/bin/time is missing: apt-get install time" >&2; exit 1; }
"$python" -c "import torch, transformers" 2>/dev/null || { echo "compare.sh: $python lacks torch/transformers (set PYTHON)" >&2; exit 1; }
if [ "$mtl" = 1 ] && [ ! -f "$torch_script" ]; then
  echo "compare.sh: torch_mtl_step.py not found; set TORCH_MTL_SCRIPT" >&2; exit 1
fi

if [ "$build" = 1 ]; then
  echo "compare.sh: swift build -c release" >&2
  swift build -c release >&2
fi
polyhead=$repo/.build/release/polyhead
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
records=$work/records.jsonl
: > "$records"

# run KIND SIDE RUN COMMAND...: runs the command under /usr/bin/time -v, appends one record
# (the command's last JSON line on stdout, peak RSS, CPU seconds, load average) to $records.
run() {
  local kind=$1 side=$2 index=$3; shift 3
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  echo "compare.sh: [$index] $kind $side: $*" >&2
  if ! /usr/bin/time -v -o "$work/time.txt" "$@" > "$work/stdout.txt" 2> "$work/stderr.txt"; then
    echo "compare.sh: failed: $*" >&2; tail -20 "$work/stderr.txt" >&2; exit 1
  fi
  python3 - "$kind" "$side" "$index" "$load" "$work/stdout.txt" "$work/time.txt" >> "$records" <<'PY'
import json, sys
kind, side, index, load, stdout, timing = sys.argv[1:]
result = [json.loads(l) for l in open(stdout) if l.startswith("{")][-1]
fields = {}
for line in open(timing):
    key, _, value = line.strip().rpartition(": ")
    fields[key] = value
record = {"kind": kind, "side": side, "run": int(index), "load_before": float(load), "result": result,
          "peak_rss_mib": int(fields["Maximum resident set size (kbytes)"]) / 1024,
          "cpu_seconds": float(fields["User time (seconds)"]) + float(fields["System time (seconds)"]),
          "wall_seconds": fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"]}
print(json.dumps(record))
PY
}

export OMP_NUM_THREADS=$threads POLYHEAD_THREADS=$threads
if [ "$mtl" = 1 ]; then
  for i in $(seq 1 "$runs"); do
    for mode in train infer; do
      poly=("$polyhead" bench mtl --model "$model" --mode "$mode" --steps "$steps" --warmup "$warmup" --threads "$threads" "${extra[@]}")
      torch=("$python" "$torch_script" "$model" --mode "$mode" --steps "$steps" --warmup "$warmup" --threads "$threads")
      # Alternate who goes first, so a drift in machine load favours neither side.
      if [ $((i % 2)) = 1 ]; then
        run "$mode" polyhead "$i" "${poly[@]}"; run "$mode" torch "$i" "${torch[@]}"
      else
        run "$mode" torch "$i" "${torch[@]}"; run "$mode" polyhead "$i" "${poly[@]}"
      fi
    done
  done
fi

if [ "$wordnet" = 1 ]; then
  config=${WORDNET_CONFIG:-}
  if [ -z "$config" ]; then
    if [ -f examples/wordnet/config.yaml ]; then config=examples/wordnet/config.yaml; else config=scripts/bench/wordnet.yaml; fi
  fi
  [ -f examples/wordnet/data/supersense.train.jsonl ] || python3 examples/wordnet/make_tasks.py >&2
  "$polyhead" bench wordnet "$config" --steps "$wordnet_steps" --dump-batches "$work/batches.jsonl" --dump-only > "$work/dump.json"
  recipe_script=scripts/reference/wordnet_recipe.py
  if [ "$recipe" = 1 ] && [ ! -f "$recipe_script" ]; then
    echo "compare.sh: --recipe: $recipe_script is not in this checkout" >&2; exit 1
  fi
  for i in $(seq 1 "$runs"); do
    poly=("$polyhead" bench wordnet "$config" --steps "$wordnet_steps" --threads "$threads")
    if [ "$recipe" = 1 ]; then
      # The recipe's own loop: it also evaluates dev and test at the end (not in its train_seconds).
      torch=("$python" "$recipe_script" "$config" --steps "$wordnet_steps" --threads "$threads" --out "$work/recipe.json")
    else
      torch=("$python" scripts/bench/torch_wordnet_epoch.py "$model" "$work/batches.jsonl" --threads "$threads")
    fi
    if [ $((i % 2)) = 1 ]; then
      run wordnet polyhead "$i" "${poly[@]}"; run wordnet torch "$i" "${torch[@]}"
    else
      run wordnet torch "$i" "${torch[@]}"; run wordnet polyhead "$i" "${poly[@]}"
    fi
    if [ "$recipe" = 1 ]; then
      # The recipe prints no JSON on stdout: take its timing block from the file it wrote.
      python3 - "$records" "$work/recipe.json" "$work/dump.json" <<'PY'
import json, sys
path, recipe, dump = sys.argv[1:]
lines = [json.loads(l) for l in open(path)]
timing = json.load(open(recipe))["timing"]
dumped = json.loads(open(dump).read().strip().splitlines()[-1])
for record in lines:
    if record["kind"] == "wordnet" and record["side"] == "torch" and "train_seconds" not in record["result"]:
        record["result"] = dict(timing, steps=dumped["steps"], steps_per_epoch=dumped["steps_per_epoch"],
                                epoch_seconds=timing["train_seconds"] * dumped["steps_per_epoch"] / dumped["steps"])
with open(path, "w") as handle:
    for record in lines:
        handle.write(json.dumps(record) + "\n")
PY
    fi
  done
fi

python3 - "$records" "$out" "$runs" "$steps" "$threads" <<'PY'
import json, statistics, sys, platform, os, time
path, out, runs, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
records = [json.loads(l) for l in open(path)]
metrics = {  # kind -> (metric in the JSON result, what it is, higher is better)
    "train": ("train_seq_per_s", "training sequences/s (length 128)", True),
    "infer": ("infer_seq_per_s", "inference sequences/s (length 128)", True),
    "wordnet": ("epoch_seconds", "WordNet seconds per epoch", False),
}
rows, summary = [], {}
for kind, (metric, label, higher) in metrics.items():
    mine = {r["run"]: r for r in records if r["kind"] == kind and r["side"] == "polyhead"}
    theirs = {r["run"]: r for r in records if r["kind"] == kind and r["side"] == "torch"}
    pairs = sorted(set(mine) & set(theirs))
    if not pairs:
        continue
    p = [mine[i]["result"][metric] for i in pairs]
    t = [theirs[i]["result"][metric] for i in pairs]
    pair_ratios = [(a / b if higher else b / a) for a, b in zip(p, t)]
    entry = {
        "metric": metric, "what": label, "pairs": len(pairs),
        "polyhead": p, "torch": t, "polyhead_median": statistics.median(p), "torch_median": statistics.median(t),
        "speedup_median_of_pairs": statistics.median(pair_ratios),
        "speedup_of_medians": (statistics.median(p) / statistics.median(t)) if higher else (statistics.median(t) / statistics.median(p)),
        "pair_speedups": pair_ratios,
        "polyhead_peak_rss_mib_median": statistics.median(mine[i]["peak_rss_mib"] for i in pairs),
        "torch_peak_rss_mib_median": statistics.median(theirs[i]["peak_rss_mib"] for i in pairs),
        "load_before_runs": [mine[i]["load_before"] for i in pairs] + [theirs[i]["load_before"] for i in pairs],
    }
    if kind == "wordnet":
        entry["polyhead_tokens_per_s_median"] = statistics.median(mine[i]["result"]["train_tokens_per_s"] for i in pairs)
        entry["torch_tokens_per_s_median"] = statistics.median(theirs[i]["result"]["train_tokens_per_s"] for i in pairs)
        entry["timed_steps"] = mine[pairs[0]]["result"]["steps"]
    summary[kind] = entry
    rows.append((label, entry))
result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.processor() or platform.machine(),
          "cpus": os.cpu_count(), "threads": threads, "steps": steps, "summary": summary, "records": records}
with open(out, "w") as handle:
    json.dump(result, handle, indent=1)
print(f"| measure | Polyhead (median) | PyTorch (median) | speedup (median of pairs) | speedup (of medians) | peak RSS MiB Polyhead / PyTorch |")
print("| --- | --- | --- | --- | --- | --- |")
for label, e in rows:
    print(f"| {label} | {e['polyhead_median']:.2f} | {e['torch_median']:.2f} | {e['speedup_median_of_pairs']:.2f}x | "
          f"{e['speedup_of_medians']:.2f}x | {e['polyhead_peak_rss_mib_median']:.0f} / {e['torch_peak_rss_mib_median']:.0f} |")
if "wordnet" in summary:
    e = summary["wordnet"]
    print(f"\nWordNet tokens/s (median): Polyhead {e['polyhead_tokens_per_s_median']:.0f}, PyTorch {e['torch_tokens_per_s_median']:.0f} "
          f"({e['timed_steps']} timed steps per run, epoch time extrapolated)")
print(f"\n{len(records)} runs, load averages before them {min(r['load_before'] for r in records):.1f}-{max(r['load_before'] for r in records):.1f}; JSON: {out}")
PY
