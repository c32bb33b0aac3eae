#!/usr/bin/env python3
"""Writes the expected metric values the Swift metric tests compare with.

scikit-learn, SciPy and seqeval compute every metric on seeded random inputs and on edge
cases (ties, a constant prediction, classes missing from one side, empty predictions).
Output: Tests/Fixtures/metrics/{classification,multi_label,regression,token,class_weights}.json

    /tmp/phvenv/bin/python scripts/reference/metrics_fixtures.py

Definitions that the Swift side follows (docs/config.md states them for users):
  - macro F1 averages over the classes present in gold or predictions (scikit-learn's default
    for single-label input; passed explicitly as `labels` for multi-label input);
  - a correlation that is undefined because one side is constant is 0 (SciPy says NaN);
  - token F1 is micro F1 over words with the outside tag "O" left out of `labels`;
  - entity F1 is seqeval's default (conlleval-style IOB2); plain tags are first rewritten to
    IOB2 so that every maximal run of one tag is one entity.
"""
import importlib.metadata
import json
import math
import os
import platform
import sys
import warnings

import numpy as np
import scipy
import scipy.stats
import sklearn
from seqeval.metrics import f1_score as entity_f1_score
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_absolute_error, mean_squared_error
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils.class_weight import compute_class_weight

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "metrics")
SEED = 20240611


def generator_info():
    return {
        "script": "scripts/reference/metrics_fixtures.py",
        "seed": SEED,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "seqeval": importlib.metadata.version("seqeval"),
    }


def correlation_or_zero(value):
    """SciPy returns NaN when one side is constant; the Swift metrics define it as 0."""
    value = float(value)
    return 0.0 if math.isnan(value) else value


def noisy_copy(rng, gold, class_count, keep):
    """Predictions that agree with gold with probability `keep`, else a random class."""
    return [g if rng.random() < keep else int(rng.integers(class_count)) for g in gold]


def classification_cases(rng):
    cases = []
    gold = [int(x) for x in rng.integers(5, size=200)]
    cases.append(("random_5_classes", gold, noisy_copy(rng, gold, 5, 0.6)))
    # Skewed classes, as in the supersense task.
    gold = [int(x) for x in rng.choice(6, size=300, p=[0.5, 0.2, 0.15, 0.1, 0.04, 0.01])]
    cases.append(("imbalanced_6_classes", gold, noisy_copy(rng, gold, 6, 0.7)))
    gold = [int(x) for x in rng.integers(2, size=120)]
    cases.append(("binary", gold, noisy_copy(rng, gold, 2, 0.8)))
    # Class 3 occurs nowhere, class 4 only in predictions, class 2 only in gold.
    cases.append(("missing_classes", [0, 0, 1, 1, 2, 2, 0, 1], [0, 4, 1, 1, 0, 1, 0, 4]))
    cases.append(("constant_prediction", [0, 1, 2, 1, 0, 2, 2], [1] * 7))
    cases.append(("single_gold_class", [2] * 6, [2, 2, 1, 2, 0, 2]))
    cases.append(("perfect", [3, 1, 4, 1, 5, 0], [3, 1, 4, 1, 5, 0]))
    cases.append(("all_wrong", [0, 1, 0, 1], [1, 0, 1, 0]))
    out = []
    for name, gold, predicted in cases:
        out.append({
            "name": name, "gold": gold, "predicted": predicted,
            "expected": {
                "accuracy": accuracy_score(gold, predicted),
                "macro_f1": f1_score(gold, predicted, average="macro", zero_division=0),
                "micro_f1": f1_score(gold, predicted, average="micro", zero_division=0),
                "mcc": matthews_corrcoef(gold, predicted),
            },
        })
    return out


def random_sets(rng, count, class_count, rate):
    return [sorted(int(c) for c in np.flatnonzero(rng.random(class_count) < rate)) for _ in range(count)]


def multi_label_cases(rng):
    cases = []
    gold = random_sets(rng, 150, 6, 0.3)
    predicted = [sorted(set(g) ^ set(int(c) for c in np.flatnonzero(rng.random(6) < 0.15))) for g in gold]
    cases.append(("random_6_classes", 6, gold, predicted))
    gold = random_sets(rng, 40, 4, 0.25)
    cases.append(("nothing_predicted", 4, gold, [[] for _ in gold]))
    cases.append(("empty_sets_and_missing_classes", 5, [[0], [], [0, 1], [1], []], [[0], [], [1], [1, 4], [0]]))
    cases.append(("perfect", 3, [[0, 2], [1], [0, 1, 2]], [[0, 2], [1], [0, 1, 2]]))
    out = []
    for name, class_count, gold, predicted in cases:
        binarizer = MultiLabelBinarizer(classes=list(range(class_count)))
        gold_matrix = binarizer.fit_transform(gold)
        predicted_matrix = binarizer.transform(predicted)
        present = sorted(set(c for s in gold + predicted for c in s))
        out.append({
            "name": name, "class_count": class_count, "gold": gold, "predicted": predicted,
            "expected": {
                "accuracy": accuracy_score(gold_matrix, predicted_matrix),
                "macro_f1": f1_score(gold_matrix, predicted_matrix, average="macro", labels=present, zero_division=0),
                "micro_f1": f1_score(gold_matrix, predicted_matrix, average="micro", zero_division=0),
            },
        })
    return out


def regression_cases(rng):
    cases = []
    gold = rng.normal(5, 2, size=200)
    cases.append(("random_normal", gold, gold + rng.normal(0, 1.5, size=200)))
    # Small integers: many ties on both sides.
    gold = rng.integers(0, 6, size=100).astype(float)
    cases.append(("ties", gold, np.clip(gold + rng.integers(-1, 2, size=100), 0, 5).astype(float)))
    cases.append(("constant_prediction", np.array([1.0, 2.0, 3.5, 4.0, 8.0]), np.full(5, 3.0)))
    x = np.linspace(0.1, 3, 30)
    cases.append(("monotonic_nonlinear", x, np.exp(x)))
    cases.append(("negative", np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), np.array([6.5, 5.0, 5.0, 3.0, 1.0, -2.0])))
    out = []
    for name, gold, predicted in cases:
        out.append({
            "name": name, "gold": [float(v) for v in gold], "predicted": [float(v) for v in predicted],
            "expected": {
                "pearson": correlation_or_zero(scipy.stats.pearsonr(gold, predicted)[0]),
                "spearman": correlation_or_zero(scipy.stats.spearmanr(gold, predicted)[0]),
                "mse": mean_squared_error(gold, predicted),
                "mae": mean_absolute_error(gold, predicted),
            },
        })
    return out


def plain_to_iob2(tags):
    """Each maximal run of one non-O tag becomes B-tag I-tag ... so seqeval sees it as one entity."""
    converted = []
    for index, tag in enumerate(tags):
        if tag == "O":
            converted.append("O")
        elif index > 0 and tags[index - 1] == tag:
            converted.append("I-" + tag)
        else:
            converted.append("B-" + tag)
    return converted


def random_bio_sentence(rng, length, types):
    tags = []
    for _ in range(length):
        roll = rng.random()
        if roll < 0.5:
            tags.append("O")
        else:
            prefix = "B-" if roll < 0.75 else "I-"
            tags.append(prefix + types[int(rng.integers(len(types)))])
    return tags


def perturb(rng, tags, labels, rate):
    return [labels[int(rng.integers(len(labels)))] if rng.random() < rate else tag for tag in tags]


def token_cases(rng):
    cases = []
    types = ["PER", "LOC", "ORG"]
    bio_labels = ["O"] + [p + t for t in types for p in ("B-", "I-")]
    # Random tags include I- after O and type switches, the cases where schemes disagree.
    gold = [random_bio_sentence(rng, int(rng.integers(1, 15)), types) for _ in range(60)]
    predicted = [perturb(rng, sentence, bio_labels, 0.2) for sentence in gold]
    cases.append(("bio_random", "bio", bio_labels, gold, predicted))
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"], ["I-LOC", "I-LOC", "O"]]
    predicted = [["B-PER", "I-PER", "O", "I-LOC"], ["O", "B-ORG", "I-ORG", "B-ORG"], ["B-LOC", "I-LOC", "O"]]
    cases.append(("bio_boundaries", "bio", bio_labels, gold, predicted))
    cases.append(("bio_all_outside_predicted", "bio", bio_labels, gold, [["O"] * len(s) for s in gold]))

    supersenses = ["noun.animal", "noun.artifact", "noun.location", "noun.person"]
    plain_labels = ["O"] + supersenses
    gold = []
    for _ in range(60):
        sentence = ["O"] * int(rng.integers(2, 14))
        start = int(rng.integers(len(sentence)))
        span = int(rng.integers(1, 3))
        tag = supersenses[int(rng.integers(len(supersenses)))]
        for index in range(start, min(len(sentence), start + span)):
            sentence[index] = tag
        gold.append(sentence)
    predicted = [perturb(rng, sentence, plain_labels, 0.1) for sentence in gold]
    cases.append(("plain_random", "plain", plain_labels, gold, predicted))
    gold = [["O", "noun.animal", "noun.animal", "noun.artifact", "O"], ["noun.person", "O", "noun.person"]]
    predicted = [["O", "noun.animal", "O", "noun.artifact", "O"], ["noun.person", "noun.person", "noun.person"]]
    cases.append(("plain_adjacent_runs", "plain", plain_labels, gold, predicted))

    out = []
    for name, scheme, labels, gold, predicted in cases:
        flat_gold = [tag for sentence in gold for tag in sentence]
        flat_predicted = [tag for sentence in predicted for tag in sentence]
        inside = sorted(set(labels) - {"O"})
        converted = (lambda s: s) if scheme == "bio" else plain_to_iob2
        out.append({
            "name": name, "scheme": scheme, "labels": labels, "gold": gold, "predicted": predicted,
            "expected": {
                "accuracy": accuracy_score(flat_gold, flat_predicted),
                "token_f1": f1_score(flat_gold, flat_predicted, labels=inside, average="micro", zero_division=0),
                "entity_f1": float(entity_f1_score([converted(s) for s in gold], [converted(s) for s in predicted], zero_division=0)),
            },
        })
    return out


def class_weight_cases(rng):
    cases = [
        ("imbalanced_random", 6, [int(x) for x in rng.choice(6, size=500, p=[0.55, 0.2, 0.1, 0.1, 0.04, 0.01])]),
        ("balanced_already", 3, [0, 1, 2] * 7),
        ("missing_class", 4, [0, 0, 0, 1, 3, 3]),
    ]
    out = []
    for name, class_count, labels in cases:
        present = np.unique(labels)
        weights = compute_class_weight("balanced", classes=present, y=labels)
        expected = [0.0] * class_count
        for label, weight in zip(present, weights):
            expected[int(label)] = float(weight)
        out.append({"name": name, "class_count": class_count, "labels": labels, "expected": expected})
    return out


def main():
    warnings.simplefilter("ignore")  # SciPy warns about the constant-input case on purpose
    rng = np.random.default_rng(SEED)
    os.makedirs(OUTPUT, exist_ok=True)
    files = {
        "classification.json": classification_cases(rng),
        "multi_label.json": multi_label_cases(rng),
        "regression.json": regression_cases(rng),
        "token.json": token_cases(rng),
        "class_weights.json": class_weight_cases(rng),
    }
    for file_name, cases in files.items():
        path = os.path.join(OUTPUT, file_name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"generator": generator_info(), "cases": cases}, handle, indent=1)
            handle.write("\n")
        print(f"metrics_fixtures: wrote {os.path.relpath(path)} ({len(cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
