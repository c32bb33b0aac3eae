"""Writes the trainer tests' tiny model directory and data (deterministic; stdlib only).

tiny-bert/: config.json and model.safetensors copied from Tests/Fixtures/encoder/tiny-bert
(a random 2-layer BERT, hidden size 32, 99 ids) and a 99-token vocab.txt written here, so
that the tokenizer and the encoder fit. data/: three tasks over sentences made of that
vocabulary, small enough that a test trains in seconds:

  animal  classification   does the sentence mention an animal?   "animal" / "thing"
  length  regression       number of words / 4
  tags    token tasks      ANIMAL on animal words, O elsewhere (words like "cats" and
                           "zebra" split into several pieces)

Run from the repository root: python3 Tests/Fixtures/trainer/make_data.py
"""
import json
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
WORDS = ["the", "cat", "dog", "bird", "fish", "cow", "horse", "car", "bus", "train", "house", "tree", "table",
         "chair", "sat", "ran", "on", "in", "under", "big", "small", "red", "green", "blue", "and", "is", "was",
         "fast", "slow", "near", "old", "new", "hot", "cold", "walked", "saw", "my", "your", "this", "that", ".", ","]
ANIMALS = ["cat", "dog", "bird", "fish", "cow", "horse", "cats", "dogs", "zebra"]
THINGS = ["car", "bus", "train", "house", "tree", "table", "chair", "cars", "kite"]
ADJECTIVES = ["big", "small", "red", "green", "blue", "fast", "slow", "old", "new", "hot", "cold"]
VERBS = ["sat", "ran", "walked", "was", "is", "saw"]
PLACES = ["on", "in", "under", "near"]
DETERMINERS = ["the", "my", "your", "this", "that"]


def vocabulary():
    tokens = SPECIAL + LETTERS + ["##" + letter for letter in LETTERS] + WORDS
    assert len(tokens) == 99 and len(set(tokens)) == 99
    return tokens


def sentence(rng, animal):
    subject = rng.choice(ANIMALS if animal else THINGS)
    words = [rng.choice(DETERMINERS)]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    words += [subject, rng.choice(VERBS), rng.choice(PLACES), rng.choice(DETERMINERS), rng.choice(THINGS)]
    if rng.random() < 0.3:
        words += ["and", rng.choice(DETERMINERS), rng.choice(ANIMALS if rng.random() < 0.5 else THINGS)]
    return words + ["."]


def rows(rng, count):
    for index in range(count):
        words = sentence(rng, animal=index % 2 == 0)
        yield words, any(word in ANIMALS for word in words)


def write(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as file:
        for record in records:
            file.write(json.dumps(record) + "\n")


def main():
    model = HERE / "tiny-bert"
    model.mkdir(exist_ok=True)
    for name in ["config.json", "model.safetensors"]:
        shutil.copyfile(ROOT / "Tests/Fixtures/encoder/tiny-bert" / name, model / name)
    (model / "vocab.txt").write_text("\n".join(vocabulary()) + "\n")

    rng = random.Random(2024)
    for split, count in [("train", 32), ("dev", 12), ("test", 12)]:
        sample = list(rows(rng, count))
        write(HERE / "data" / f"animal.{split}.jsonl",
              [{"text": " ".join(words), "label": "animal" if animal else "thing"} for words, animal in sample])
        write(HERE / "data" / f"length.{split}.jsonl",
              [{"text": " ".join(words), "value": len(words) / 4} for words, _ in sample])
        write(HERE / "data" / f"tags.{split}.jsonl",
              [{"words": words, "labels": ["ANIMAL" if word in ANIMALS else "O" for word in words]} for words, _ in sample])


if __name__ == "__main__":
    main()
