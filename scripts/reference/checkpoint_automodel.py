"""Loads an encoder directory written by `polyhead train` with transformers' AutoModel and
records what it computes, for TrainerEncoderExportTests.

The directory is Tests/Fixtures/trainer/checkpoint-encoder: the encoder/ of a checkpoint of
a short run on the tiny BERT (Tests/Fixtures/trainer/encoder-checkpoint.yaml says how it was
made). This script checks that AutoModel.from_pretrained takes every tensor of it (only the
pooler, which Polyhead does not train or write, may be missing), then runs fixed token ids
through the model in eval mode, one sequence at a time (no padding), and writes
Tests/Fixtures/trainer/checkpoint-encoder-automodel.json:

  model_sha256        SHA-256 of the model.safetensors that was loaded
  loaded_tensors      the file's tensor names, all of which AutoModel used
  missing_keys        model parameters the file does not hold (the pooler)
  sequences           per sequence: ids, type_ids, last_hidden_state [tokens][hidden]

The Swift test checks that Polyhead's checkpoint writer still writes this directory's
tensors, and that Polyhead's own forward pass on it gives these hidden states.

Usage (from the repository root):
  /tmp/phvenv/bin/python scripts/reference/checkpoint_automodel.py [--encoder DIR] [--out FILE]
"""
import argparse
import hashlib
import json
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModel

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures" / "trainer"

# Ids of the fixture vocabulary (Tests/Fixtures/trainer/tiny-bert/vocab.txt): [CLS] 2,
# [SEP] 3, letters 5-30, ##letters 31-56, words 57-98. A single sentence, a pair with type
# ids 1 on its second part, the shortest input, and one of the full 32 tokens.
SEQUENCES = [
    ([2, 57, 58, 71, 72, 57, 67, 97, 3], None),
    ([2, 57, 59, 84, 3, 58, 86, 57, 68, 3], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]),
    ([2, 3], None),
    ([2] + [57 + (7 * index) % 42 for index in range(20)] + [30, 31, 44, 56, 5, 60, 61, 62, 63, 64] + [3], None),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", type=Path, default=FIXTURES / "checkpoint-encoder")
    parser.add_argument("--out", type=Path, default=FIXTURES / "checkpoint-encoder-automodel.json")
    args = parser.parse_args()

    weights = args.encoder / "model.safetensors"
    with safe_open(str(weights), "pt") as file:
        names = sorted(file.keys())
    model, info = AutoModel.from_pretrained(str(args.encoder), output_loading_info=True, attn_implementation="eager")
    model.eval()
    assert not info["unexpected_keys"], f"AutoModel did not use {info['unexpected_keys']}"
    assert not info["mismatched_keys"], f"shapes differ: {info['mismatched_keys']}"
    assert all(key.startswith("pooler.") for key in info["missing_keys"]), f"missing {info['missing_keys']}"
    state = model.state_dict()
    with safe_open(str(weights), "pt") as file:
        for name in names:
            assert torch.equal(state[name], file.get_tensor(name)), f"{name} was not loaded as written"

    sequences = []
    with torch.no_grad():
        for ids, type_ids in SEQUENCES:
            assert len(ids) <= model.config.max_position_embeddings and max(ids) < model.config.vocab_size
            type_ids = type_ids or [0] * len(ids)
            output = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([type_ids]),
                           attention_mask=torch.ones(1, len(ids), dtype=torch.long))
            hidden = output.last_hidden_state[0].to(torch.float32)
            sequences.append({"ids": ids, "type_ids": type_ids, "last_hidden_state": hidden.tolist()})

    record = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "model_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "loaded_tensors": names,
        "missing_keys": sorted(info["missing_keys"]),
        "sequences": sequences,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT)}: {len(sequences)} sequences, {len(names)} tensors loaded, missing {record['missing_keys']}")


if __name__ == "__main__":
    main()
