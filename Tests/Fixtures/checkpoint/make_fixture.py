#!/usr/bin/env python3
"""Writes a Polyhead checkpoint and head bundle with Python's safetensors, following only
docs/checkpoint-format.md, so the Swift loader is checked against an independent writer.

Run from the repository root:
    /tmp/phvenv/bin/python Tests/Fixtures/checkpoint/make_fixture.py

Writes Tests/Fixtures/checkpoint/python-v1/{final/, toy.head} and python-v1-expected.json
(the values the Swift test compares with). Deterministic: rerunning gives the same bytes.
"""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import safetensors
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent
ROOT = HERE / "python-v1"
CHECKPOINT = ROOT / "final"
HIDDEN = 8


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    (CHECKPOINT / "encoder").mkdir(parents=True)
    (CHECKPOINT / "heads" / "toy").mkdir(parents=True)

    # Encoder: a Hugging Face-style directory (tiny; only its bytes and hidden_size matter here).
    encoder = CHECKPOINT / "encoder"
    write_json(encoder / "config.json", {"model_type": "bert", "hidden_size": HIDDEN, "architectures": ["BertModel"]})
    embeddings = (np.arange(5 * HIDDEN, dtype=np.float32) / 10).reshape(5, HIDDEN)
    save_file({"embeddings.word_embeddings.weight": embeddings}, str(encoder / "model.safetensors"), metadata={"format": "pt"})
    (encoder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nyes\n")
    encoder_sha = sha256(encoder / "model.safetensors")

    # One head.
    manifest = {
        "format_version": 1, "task": "toy", "plugin_id": "example.toy", "plugin_version": "0.1.0",
        "abi_version": "1.0", "component_kind": "head", "task_type": "classification",
        "options": {"pooling": "mean", "layers": [HIDDEN, 2], "seed": 18446744073709551615},
        "label_names": ["no", "yes"], "output_names": [],
        "encoder_hidden_size": HIDDEN, "encoder_sha256": encoder_sha,
    }
    weight = (np.arange(2 * HIDDEN, dtype=np.float32) - 7.5).reshape(2, HIDDEN) / 4
    bias = np.array([0.25, -0.25], dtype=np.float32)
    save_file({"classifier.weight": weight, "classifier.bias": bias}, str(CHECKPOINT / "heads/toy/weights.safetensors"))
    write_json(CHECKPOINT / "heads/toy/manifest.json", manifest)

    # Trainer state: F32 moments and an I64 tensor holding RNG words bit for bit.
    moment = np.linspace(-1, 1, 12, dtype=np.float32)
    rng = np.array([-1, 42], dtype=np.int64)  # -1 is UInt64.max's bit pattern
    save_file({"adamw.first_moment": moment, "rng.state": rng}, str(CHECKPOINT / "trainer_state.safetensors"))
    write_json(CHECKPOINT / "trainer_state.json", {"step": 3, "sampler": {"toy": 17}, "best_metric": 0.5})

    # checkpoint.json last: every other file with its size and SHA-256, sorted by path.
    files = sorted(p for p in CHECKPOINT.rglob("*") if p.is_file())
    entries = [
        {"path": p.relative_to(CHECKPOINT).as_posix(), "size": p.stat().st_size, "sha256": sha256(p)}
        for p in files
    ]
    write_json(CHECKPOINT / "checkpoint.json", {
        "format": "polyhead-checkpoint", "format_version": 1, "created": "2025-01-01T00:00:00Z",
        "step": 3, "heads": ["toy"], "encoder_sha256": encoder_sha, "has_trainer_state": True,
        "files": entries,
    })

    # The head as one bundle file: weights as tensors, the manifest in __metadata__.
    save_file({"classifier.weight": weight, "classifier.bias": bias}, str(ROOT / "toy.head"),
              metadata={"polyhead.head.manifest": json.dumps(manifest, sort_keys=True),
                        "polyhead.head.format_version": "1"})

    write_json(HERE / "python-v1-expected.json", {
        "toy_classifier_weight": [float(v) for v in weight.reshape(-1)],
        "first_moment": [float(v) for v in moment],
        "written_by": {"safetensors": safetensors.__version__, "numpy": np.__version__},
    })


if __name__ == "__main__":
    main()
