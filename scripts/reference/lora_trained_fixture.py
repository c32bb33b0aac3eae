#!/usr/bin/env python3
"""Records what PEFT computes with a LoRA adapter that `polyhead train` trained on
all-MiniLM-L6-v2 (Tests/Fixtures/lora/polyhead-trained/), for the Swift tests that check
Polyhead's encoder gives the same hidden states (LoRAEncoderTests, LoRATrainedAdapterTests).

The adapter in that directory (adapter_config.json, adapter_model.safetensors) is the PEFT
export that `polyhead train Tests/Fixtures/lora/polyhead-trained/run.yaml` wrote to
checkpoints/final/adapters/lora/, copied unchanged: three WordNet tasks, one shared adapter
(rank 4, alpha 8, query, value and intermediate of all six layers), 60 steps.

Run from the repository root (needs models/all-MiniLM-L6-v2, from scripts/setup, and the
WordNet data, from python3 examples/wordnet/make_tasks.py, for the texts):
    /tmp/phvenv/bin/python scripts/reference/lora_trained_fixture.py           # record
    /tmp/phvenv/bin/python scripts/reference/lora_trained_fixture.py --train   # retrain, then record
--train first runs .build/release/polyhead (swift build -c release) on run.yaml, output
runs/lora-polyhead-trained, and copies the export it wrote over the committed one, then records.
Two runs on one machine wrote the same bytes; another machine or BLAS may change the last bits
of the adapter, which is why the hidden states are always recorded for the adapter on disk.

Recording loads transformers' BertModel (fp32, eval) with the adapter through
peft.PeftModel.from_pretrained, unmerged, so PEFT's own LoRA forward runs; every tensor of the
file must be placed on a LoRA layer with the same values and PEFT must create no LoRA layer the
file does not fill (an error otherwise). 12 texts of the WordNet test files (glosses, usage
examples, and one (word, gloss) pair of the definition task) are tokenised by the HF tokenizer
and run one sequence at a time (no padding).

Written: Tests/Fixtures/lora/polyhead-trained/expected.safetensors
  input_ids, token_type_ids   int64 [tokens], the sequences packed one after another
  sequence_offsets            int64 [12 + 1]
  hidden_states.peft          float32 [tokens, 384], PeftModel's last_hidden_state
  hidden_states.base          the same with the adapter disabled (model.disable_adapter())
  metadata: versions, texts (JSON), adapter_sha256 (of adapter_model.safetensors)
"""
import argparse
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import peft
import safetensors
import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, BertModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "Tests/Fixtures/lora/polyhead-trained"
RUN_CONFIG = FIXTURE / "run.yaml"
RUN_OUTPUT = ROOT / "runs/lora-polyhead-trained"
POLYHEAD = ROOT / ".build/release/polyhead"
MINILM = ROOT / "models/all-MiniLM-L6-v2"
DATA = ROOT / "examples/wordnet/data"
ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"]
VERSIONS = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
            "peft": peft.__version__, "safetensors": safetensors.__version__}

# (file, row, kind): rows of the WordNet test files, 12 different texts of different lengths
# (supersense and depth share their glosses row by row, so they take other rows).
TEXTS = [("supersense", 1, "text"), ("supersense", 4, "text"), ("supersense", 5, "text"), ("supersense", 7, "text"),
         ("depth", 9, "text"), ("depth", 11, "text"),
         ("usage", 0, "words"), ("usage", 4, "words"), ("usage", 7, "words"), ("usage", 9, "words"), ("usage", 11, "words"),
         ("definition", 1, "pair")]


def fail(message):
    sys.exit(f"lora_trained_fixture: {message}")


def train():
    """Runs polyhead train on run.yaml and copies the PEFT export of its final checkpoint."""
    if not POLYHEAD.exists():
        fail(f"{POLYHEAD} is missing: run swift build -c release first")
    if not (DATA / "supersense.train.jsonl").exists():
        fail(f"{DATA} is missing: run python3 examples/wordnet/make_tasks.py first")
    command = [str(POLYHEAD), "train", str(RUN_CONFIG.relative_to(ROOT)), "--output", str(RUN_OUTPUT.relative_to(ROOT))]
    print("lora_trained_fixture: " + " ".join(command), flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        fail("polyhead train failed (its messages are above)")
    export = RUN_OUTPUT / "checkpoints/final/adapters/lora"
    for name in ADAPTER_FILES:
        if not (export / name).exists():
            fail(f"{export / name} is missing: the run wrote no PEFT export of the adapter")
        shutil.copyfile(export / name, FIXTURE / name)
    print(f"lora_trained_fixture: copied {', '.join(ADAPTER_FILES)} from {export}")


def texts():
    """The 12 texts: (text, pair or None)."""
    chosen = []
    for task, row, kind in TEXTS:
        path = DATA / f"{task}.test.jsonl"
        if not path.exists():
            fail(f"{path} is missing: run python3 examples/wordnet/make_tasks.py first")
        with path.open() as lines:
            record = json.loads(next(line for index, line in enumerate(lines) if index == row))
        if kind == "words":
            chosen.append((" ".join(record["words"]), None))
        elif kind == "pair":
            chosen.append((record["text"], record["text_pair"]))
        else:
            chosen.append((record["text"], None))
    if len(set(chosen)) != len(chosen):
        fail("TEXTS names the same text twice; choose other rows")
    return chosen


def load_peft_model():
    """MiniLM in fp32 and eval mode with the adapter loaded, unmerged, every key checked."""
    for name in ADAPTER_FILES:
        if not (FIXTURE / name).exists():
            fail(f"{FIXTURE / name} is missing: run this script with --train")
    if not (MINILM / "model.safetensors").exists():
        fail(f"{MINILM} is missing: run scripts/setup first")
    base = BertModel.from_pretrained(MINILM, add_pooling_layer=False).float().eval()
    model = PeftModel.from_pretrained(base, FIXTURE).eval()
    written = load_file(FIXTURE / "adapter_model.safetensors")
    placed = {name.replace(".default", ""): parameter for name, parameter in model.named_parameters() if "lora_" in name}
    only_file, only_peft = sorted(set(written) - set(placed)), sorted(set(placed) - set(written))
    if only_file or only_peft:
        fail(f"PEFT did not load the adapter as written: keys only in the file {only_file}, LoRA parameters PEFT left "
             f"unfilled {only_peft}")
    for key, value in written.items():
        if not torch.equal(placed[key].detach(), value.float()):
            fail(f"{key}: PEFT holds other values than the file")
    if any(parameter.dtype != torch.float32 for parameter in model.parameters()):
        fail("the model is not in float32")
    return model, len(written)


def record():
    model, tensors = load_peft_model()
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    chosen = texts()
    encoded = [tokenizer(text, pair) for text, pair in chosen]
    peft_states, base_states = [], []
    with torch.no_grad():
        for item in encoded:
            inputs = {"input_ids": torch.tensor([item["input_ids"]]), "token_type_ids": torch.tensor([item["token_type_ids"]])}
            peft_states.append(model(**inputs).last_hidden_state[0])
            with model.disable_adapter():
                base_states.append(model(**inputs).last_hidden_state[0])
    peft_states, base_states = torch.cat(peft_states), torch.cat(base_states)
    offsets = np.cumsum([0] + [len(item["input_ids"]) for item in encoded])
    expected = {
        "input_ids": torch.tensor([i for item in encoded for i in item["input_ids"]], dtype=torch.int64),
        "token_type_ids": torch.tensor([i for item in encoded for i in item["token_type_ids"]], dtype=torch.int64),
        "sequence_offsets": torch.tensor(offsets, dtype=torch.int64),
        "hidden_states.peft": peft_states.float().contiguous(),
        "hidden_states.base": base_states.float().contiguous(),
    }
    metadata = {"format": "pt", "versions": json.dumps(VERSIONS, sort_keys=True),
                "texts": json.dumps([[text, pair] for text, pair in chosen]),
                "adapter_sha256": hashlib.sha256((FIXTURE / "adapter_model.safetensors").read_bytes()).hexdigest()}
    save_file(expected, FIXTURE / "expected.safetensors", metadata=metadata)
    lengths = [len(item["input_ids"]) for item in encoded]
    print(f"lora_trained_fixture: PEFT {peft.__version__} loaded {tensors} adapter tensors; {len(encoded)} sequences "
          f"(lengths {lengths}, {sum(lengths)} tokens); the adapter moves hidden states by up to "
          f"{(peft_states - base_states).abs().max().item():.4f} (max |peft - base|)")
    print(f"lora_trained_fixture: wrote {FIXTURE / 'expected.safetensors'}")


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--train", action="store_true",
                           help="first retrain the adapter with polyhead train (run.yaml) and copy its PEFT export")
    if arguments.parse_args().train:
        train()
    record()
