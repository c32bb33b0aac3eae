#!/usr/bin/env python3
"""Trivial baselines for the WordNet example's test sets: what a model must clearly beat.

Reads examples/wordnet/config.yaml for the tasks, their files, label fields and metrics, and
scores a predictor that ignores the input:
  classification        the majority class of the training file (scikit-learn's
                        DummyClassifier "most_frequent")
  regression            the training mean for every example (Pearson and Spearman are then
                        undefined; Polyhead counts an undefined correlation as 0)
  token_classification  "O" for every word (no entities: entity and token F1 are 0)
and, as a stricter bar, the best constant chosen by looking at the scored split itself (its
own majority class or mean), which no honest predictor can know in advance.
Metrics follow docs/config.md and scripts/reference/wordnet_recipe.py (the same functions).

Writes Tests/Fixtures/recipe/baselines.json and prints a markdown table for the README.

    python3 examples/wordnet/make_tasks.py
    /tmp/phvenv/bin/python scripts/reference/wordnet_baselines.py [examples/wordnet/config.yaml]
"""
import argparse, collections, json, os, sys

import numpy as np
import scipy, sklearn, seqeval

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wordnet_recipe import ROOT, infer_labels, load_config, read_jsonl, score  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=os.path.join(ROOT, "examples/wordnet/config.yaml"))
    parser.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/recipe/baselines.json"))
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    os.chdir(ROOT)
    run, config_hash = load_config(args.config)

    results = {}
    for task in run["tasks"]:
        kind, field = task["type"], task["label"]
        train = [r[field] for r in read_jsonl(task["data"]["train"])]
        gold_rows = [r[field] for r in read_jsonl(task["data"][args.split])]
        if kind == "classification":
            labels = task["labels"] or infer_labels(train)
            index = {name: i for i, name in enumerate(labels)}
            counts = collections.Counter(str(v) for v in train)
            # Ties go to the label listed first, like DummyClassifier's argmax over sorted classes.
            majority = max(labels, key=lambda name: (counts[name], -index[name]))
            gold = [index[str(v)] for v in gold_rows]
            predicted = [index[majority]] * len(gold)
            predictor = f"always '{majority}' (train share {counts[majority] / len(train):.3f})"
            split_counts = collections.Counter(gold)
            best = max(range(len(labels)), key=lambda i: (split_counts[i], -i))
            oracle = ([best] * len(gold), f"always '{labels[best]}'")
        elif kind == "regression":
            mean = float(np.mean(np.asarray(train, dtype=np.float64)))
            gold = [float(v) for v in gold_rows]
            predicted = [mean] * len(gold)
            predictor = f"always the train mean {mean:.4f}"
            split_mean = float(np.mean(gold))
            oracle = ([split_mean] * len(gold), f"always the {args.split} mean {split_mean:.4f}")
        else:
            labels = task["labels"] or infer_labels([t for tags in train for t in tags])
            index = {name: i for i, name in enumerate(labels)}
            gold = [[index[t] for t in tags] for tags in gold_rows]
            predicted = [[index["O"]] * len(tags) for tags in gold_rows]
            predictor = "'O' for every word"
            oracle = (predicted, predictor)
        metrics = score(kind, task["metrics"], labels if kind != "regression" else None, gold, predicted)
        oracle_metrics = score(kind, task["metrics"], labels if kind != "regression" else None, gold, oracle[0])
        results[task["name"]] = {"type": kind, "predictor": predictor, "examples": len(gold_rows), "metrics": metrics,
                                 "best_constant": {"predictor": oracle[1], "metrics": oracle_metrics}}

    out = {
        "what": f"input-blind baselines on the {args.split} split of the examples/wordnet tasks (scripts/reference/wordnet_baselines.py)",
        "config": os.path.relpath(os.path.abspath(args.config), ROOT), "config_sha256": config_hash, "split": args.split,
        "tasks": results,
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
                     "seqeval": getattr(seqeval, "__version__", "1.2.2")},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=1)
        handle.write("\n")
    os.replace(args.out + ".tmp", args.out)

    def values(metrics):
        return ", ".join(f"{metric} {value:.3f}" for metric, value in metrics.items())
    print(f"| Task | Baseline (from the training file) | {args.split.capitalize()} metrics | Best constant on the {args.split} set |")
    print("| --- | --- | --- | --- |")
    for name, result in results.items():
        best = result["best_constant"]
        print(f"| {name} | {result['predictor']} | {values(result['metrics'])} | {best['predictor']}: {values(best['metrics'])} |")


if __name__ == "__main__":
    main()
