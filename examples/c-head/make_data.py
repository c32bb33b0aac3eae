#!/usr/bin/env python3
"""Writes the C head example's task from WordNet 3.0 noun glosses (Debian wordnet-base).

Each row is {"text": gloss, "label": level}, where the level is the gloss's length in words:
short (< 6), medium (< 11), long (< 18) or very long. Usage examples (the quoted parts after
';') are dropped. Standard library only; deterministic.

    python3 examples/c-head/make_data.py [--out DIR] [--train N] [--dev N]

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.
"""
import argparse
import json
import os
import random

LEVELS = [(6, "short"), (11, "medium"), (18, "long")]


def level(words):
    for limit, name in LEVELS:
        if words < limit:
            return name
    return "very long"


def glosses(path="/usr/share/wordnet/data.noun"):
    with open(path, encoding="utf-8") as data:
        for line in data:
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            gloss = line.split("|", 1)[1].split(";")[0].strip()
            if gloss:
                yield gloss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "data"))
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--dev", type=int, default=500)
    arguments = parser.parse_args()
    rows = [{"text": gloss, "label": level(len(gloss.split()))} for gloss in glosses()]
    random.Random(13).shuffle(rows)
    os.makedirs(arguments.out, exist_ok=True)
    splits = {"train": rows[:arguments.train], "dev": rows[arguments.train:arguments.train + arguments.dev]}
    for split, selected in splits.items():
        with open(os.path.join(arguments.out, f"{split}.jsonl"), "w", encoding="utf-8") as out:
            for row in selected:
                out.write(json.dumps(row) + "\n")
        print(f"{split}: {len(selected)} rows")


if __name__ == "__main__":
    main()
