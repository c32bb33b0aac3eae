#!/usr/bin/env python3
"""Builds Polyhead's built-in multi-task example from Debian's WordNet 3.0 (wordnet-base).

Four tasks over English noun synsets, written as JSONL train/dev/test files:
  supersense  noun gloss -> one of WordNet's 25 noun supersenses (lexicographer files);
              imbalanced, so the config uses class weights
  depth       noun gloss -> depth of the synset in the hypernym tree (regression)
  definition  word + gloss -> is this gloss a definition of the word? (pair classification)
  usage       usage example -> the target word tagged with its supersense, "O" elsewhere
              (token classification)
Synsets are split into train/dev/test by a seeded shuffle, so no synset's gloss appears in
two splits. Standard library only; deterministic for a given seed.

    python3 examples/wordnet/make_tasks.py [--out DIR] [--train N] [--dev N] [--test N]

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. See LICENSE-WordNet
beside this script for the licence under which the data is used.
"""
import argparse, json, os, random, re, shutil, subprocess, sys

WORDNET = "/usr/share/wordnet"
# Lexicographer file numbers 3..28 are the noun supersenses (WordNet's lexnames).
NOUN_SUPERSENSES = [
    "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body",
    "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity",
    "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
]
WORD_PATTERN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


def ensure_wordnet():
    if os.path.exists(f"{WORDNET}/data.noun"):
        return
    print("make_tasks: installing wordnet-base with apt-get", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    try:
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wordnet-base"], check=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        sys.exit(f"make_tasks: error: {WORDNET}/data.noun is missing and installing wordnet-base failed ({error}); run: apt-get install wordnet-base")


def read_nouns():
    """offset -> (supersense, lemmas, hypernym offsets, definition, examples)."""
    synsets = {}
    with open(f"{WORDNET}/data.noun", encoding="utf-8") as data:
        for line_number, line in enumerate(data, 1):
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, lexfile, word_count = fields[0], int(fields[1]), int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(word_count)]
            position = 4 + 2 * word_count
            pointer_count = int(fields[position])
            hypernyms = []
            for i in range(pointer_count):
                symbol, target = fields[position + 1 + 4 * i], fields[position + 2 + 4 * i]
                if symbol in ("@", "@i"):
                    hypernyms.append(target)
            parts = [p.strip() for p in gloss.strip().split(";")]
            definition = parts[0]
            examples = [p.strip('"') for p in parts[1:] if p.startswith('"') and p.endswith('"') and len(p) > 2]
            synsets[offset] = (NOUN_SUPERSENSES[lexfile - 3], lemmas, hypernyms, definition, examples)
    return synsets


def depths(synsets):
    """Shortest number of hypernym links from each synset to a root."""
    memo = {}
    def depth(offset, seen=()):
        if offset in memo:
            return memo[offset]
        parents = [p for p in synsets[offset][2] if p in synsets and p not in seen]
        value = 0 if not parents else 1 + min(depth(p, seen + (offset,)) for p in parents)
        memo[offset] = value
        return value
    sys.setrecursionlimit(10000)
    return {offset: depth(offset) for offset in synsets}


def usage_row(lemma, supersense, example):
    """Tags the first occurrence of the lemma (or its simple plural) in the example."""
    words = WORD_PATTERN.findall(example)
    target = lemma.lower().split()
    lowered = [w.lower() for w in words]
    for start in range(len(words) - len(target) + 1):
        window = lowered[start:start + len(target)]
        last = window[-1] if window else ""
        if window[:-1] == target[:-1] and last in (target[-1], target[-1] + "s", target[-1] + "es"):
            labels = ["O"] * len(words)
            for i in range(start, start + len(target)):
                labels[i] = supersense
            return {"text": " ".join(words), "words": words, "labels": labels}
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    parser.add_argument("--train", type=int, default=4000, help="training rows per task")
    parser.add_argument("--dev", type=int, default=400, help="dev rows per task")
    parser.add_argument("--test", type=int, default=800, help="test rows per task")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    ensure_wordnet()
    synsets = read_nouns()
    depth_of = depths(synsets)
    rng = random.Random(args.seed)
    offsets = sorted(synsets)
    rng.shuffle(offsets)
    total = args.train + args.dev + args.test
    cut_dev, cut_test = int(len(offsets) * 0.8), int(len(offsets) * 0.9)
    split_offsets = {"train": offsets[:cut_dev], "dev": offsets[cut_dev:cut_test], "test": offsets[cut_test:]}
    sizes = {"train": args.train, "dev": args.dev, "test": args.test}

    tasks = {}
    for split, members in split_offsets.items():
        limit = sizes[split]
        rows = {"supersense": [], "depth": [], "definition": [], "usage": []}
        for offset in members:
            supersense, lemmas, _, definition, examples = synsets[offset]
            if len(rows["supersense"]) < limit:
                rows["supersense"].append({"text": definition, "label": supersense})
            if len(rows["depth"]) < limit:
                rows["depth"].append({"text": definition, "label": float(depth_of[offset])})
            if len(rows["definition"]) < limit:
                word = rng.choice(lemmas)
                if rng.random() < 0.5:
                    rows["definition"].append({"text": word, "text_pair": definition, "label": "yes"})
                else:
                    other = synsets[rng.choice(members)]
                    while word in other[1]:
                        other = synsets[rng.choice(members)]
                    rows["definition"].append({"text": word, "text_pair": other[3], "label": "no"})
            if len(rows["usage"]) < limit:
                for example in examples:
                    row = next((r for r in (usage_row(l, supersense, example) for l in lemmas) if r), None)
                    if row:
                        rows["usage"].append(row)
                        break
        for task, task_rows in rows.items():
            tasks.setdefault(task, {})[split] = task_rows

    os.makedirs(args.out, exist_ok=True)
    for task, splits in tasks.items():
        for split, task_rows in splits.items():
            path = os.path.join(args.out, f"{task}.{split}.jsonl")
            with open(path + ".tmp", "w", encoding="utf-8") as out:
                for row in task_rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(path + ".tmp", path)
        counts = ", ".join(f"{split} {len(r)}" for split, r in splits.items())
        print(f"make_tasks: {task}: {counts}", file=sys.stderr)
    shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "LICENSE-WordNet"),
                    os.path.join(args.out, "LICENSE-WordNet"))


if __name__ == "__main__":
    main()
