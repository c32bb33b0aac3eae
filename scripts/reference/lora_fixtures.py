#!/usr/bin/env python3
"""Writes the LoRA / PEFT parity fixtures (Tests/Fixtures/lora/) and checks the adapter that
Polyhead exported (Tests/Fixtures/lora/polyhead-export/) with PEFT.

Rerun from the repository root (needs models/all-MiniLM-L6-v2, from scripts/setup):
    /tmp/phvenv/bin/python scripts/reference/lora_fixtures.py            # write, then verify
    /tmp/phvenv/bin/python scripts/reference/lora_fixtures.py --verify   # only verify the export
Pinned versions this was run with (recorded in every fixture): torch 2.15.0, transformers
5.24.0, peft 0.21.2, safetensors 0.8.0.

Written:
  tiny-bert/                  a seeded random BertModel (2 layers, hidden 32, intermediate 64)
  tiny-peft/                  a PEFT LoRA on it, every linear site of both layers, r 4,
                              lora_alpha 6, use_rslora (scaling 6 / sqrt 4 = 3), random B
  tiny-peft-expected.safetensors
                              merge_and_unload() weights of every adapted layer
                              ("merged.<module>.weight"); each adapted layer alone on random
                              inputs ("site.<module>.x", ".y") and the backward of a random
                              d(y) ("site.<module>.output_gradient", ".d_x", ".lora_A.grad",
                              ".lora_B.grad"), dropout off; and hidden states of three
                              sequences (packed: input_ids, sequence_offsets) with and
                              without the adapter ("hidden_states.peft", ".base")
  minilm-peft/                a PEFT LoRA on all-MiniLM-L6-v2, query and value of all six
                              layers, r 4, lora_alpha 8, trained by PEFT for 5 AdamW steps
                              towards random hidden states (about 150 KB)
  minilm-peft-expected.safetensors
                              for each adapted layer: the first 8 rows of the merged weight
                              ("merged_rows.<module>.weight") and the merged weight times a
                              fixed probe [384, 2] ("merged_probe.<module>.weight", probe in
                              "probe"), so the whole matrix is checked without storing it;
                              each adapted layer alone on two random rows ("site.<module>.x",
                              ".y"); hidden states of three tokenised sentences as above
Verified:
  polyhead-export/            written by the Swift test LoRAPEFTTests (rerun it with
                              POLYHEAD_RECORD_LORA_FIXTURES=1 to rewrite): PEFT loads it onto
                              tiny-bert with every key used, and merge_and_unload() gives the
                              weights Polyhead merged (merged.safetensors there) within 1e-6;
                              when the directory holds hidden_states.safetensors (written once
                              the encoder applies adapters), PEFT's hidden states match it
                              within 1e-4.
"""
import argparse
import json
import pathlib
import shutil
import sys

import numpy as np
import peft
import safetensors
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, BertConfig, BertModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests/Fixtures/lora"
MINILM = ROOT / "models/all-MiniLM-L6-v2"
VERSIONS = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
            "peft": peft.__version__, "safetensors": safetensors.__version__}
METADATA = {"format": "pt", "versions": json.dumps(VERSIONS, sort_keys=True)}
SENTENCES = ["A dog runs in the park.", "Multi-task learning shares one encoder.", "Hello"]


def hidden_states(model, sequences):
    """Packed last hidden states of each sequence run on its own (no padding)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(input_ids=torch.tensor([ids])).last_hidden_state[0] for ids in sequences])


def packed(sequences):
    offsets = np.cumsum([0] + [len(ids) for ids in sequences])
    return {"input_ids": torch.tensor([i for ids in sequences for i in ids], dtype=torch.int64),
            "sequence_offsets": torch.tensor(offsets, dtype=torch.int64)}


def randomize_lora(model, seed, scale):
    """Non-zero B (PEFT starts it at zero, which would make every check vacuous)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def save_adapter(model, directory):
    if directory.exists():
        shutil.rmtree(directory)
    model.save_pretrained(directory)
    (directory / "README.md").unlink(missing_ok=True)  # a model card template, not needed
    # PEFT keeps target_modules as a set, so its order changes from run to run; sorted, a
    # rerun rewrites the same bytes.
    config_path = directory / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def adapted_modules(model):
    return sorted(name.removeprefix("base_model.model.") for name, module in model.named_modules()
                  if hasattr(module, "lora_A") and "default" in module.lora_A)


def site_reference(model, modules, rows, seed, gradients):
    """Each adapted layer alone, as PEFT's LoRA Linear computes it (eval: no dropout) on
    random inputs x: y = base(x) + scaling B A x, and with `gradients` the backward of
    sum(G * y): d(x), d(lora_A), d(lora_B)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    result = {}
    for name in modules:
        layer = model.base_model.model.get_submodule(name)
        x = torch.randn((rows, layer.in_features), generator=generator).requires_grad_(gradients)
        model.zero_grad()
        y = layer(x)
        result[f"site.{name}.x"] = x.detach()
        result[f"site.{name}.y"] = y.detach()
        if gradients:
            output_gradient = torch.randn(y.shape, generator=generator)
            y.backward(output_gradient)
            result[f"site.{name}.output_gradient"] = output_gradient
            result[f"site.{name}.d_x"] = x.grad
            result[f"site.{name}.lora_A.grad"] = layer.lora_A["default"].weight.grad.clone()
            result[f"site.{name}.lora_B.grad"] = layer.lora_B["default"].weight.grad.clone()
    model.zero_grad()
    return result


def train(model, sequences, steps, seed):
    """A few AdamW steps of PEFT training (dropout on) towards random hidden states, so the
    adapter's A and B both move away from their initialisation."""
    generator = torch.Generator().manual_seed(seed)
    targets = [torch.randn((len(ids), model.config.hidden_size), generator=generator) for ids in sequences]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = sum(((model(input_ids=torch.tensor([ids])).last_hidden_state[0] - target) ** 2).mean()
                   for ids, target in zip(sequences, targets))
        loss.backward()
        optimizer.step()
    model.eval()


def tiny():
    torch.manual_seed(71)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=32, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    base = BertModel(config, add_pooling_layer=False)
    with torch.no_grad():  # larger weights than BERT's 0.02, so every layer moves the states
        for name, parameter in base.named_parameters():
            parameter.copy_(torch.randn(parameter.shape) * (0.2 if "weight" in name and "LayerNorm" not in name else 0.05)
                            + (1.0 if "LayerNorm.weight" in name else 0.0))
    directory = OUT / "tiny-bert"
    if directory.exists():
        shutil.rmtree(directory)
    base.save_pretrained(directory)
    sequences = [[2, 17, 5, 44, 3], [2, 9, 9, 61, 30, 12, 7, 1, 3], [2, 40, 3]]
    base_states = hidden_states(base, sequences)

    lora = LoraConfig(r=4, lora_alpha=6, use_rslora=True, lora_dropout=0.1,
                      target_modules=["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"])
    model = get_peft_model(base, lora)
    randomize_lora(model, seed=72, scale=0.3)
    save_adapter(model, OUT / "tiny-peft")
    modules = adapted_modules(model)
    assert len(modules) == 12, modules
    peft_states = hidden_states(model, sequences)
    sites = site_reference(model, modules, rows=5, seed=73, gradients=True)
    merged = model.merge_and_unload()
    merged_weights = {f"merged.{name}.weight": merged.get_submodule(name).weight.detach().clone() for name in modules}
    merged_states = hidden_states(merged, sequences)
    expected = {**packed(sequences), **merged_weights, **sites, "hidden_states.peft": peft_states, "hidden_states.base": base_states}
    save_file({key: value.contiguous() for key, value in expected.items()}, OUT / "tiny-peft-expected.safetensors", metadata=METADATA)
    print(f"tiny: adapter moves hidden states by up to {(peft_states - base_states).abs().max():.3f}; "
          f"merged model differs from PEFT's by {(merged_states - peft_states).abs().max():.2e}")


def minilm():
    if not (MINILM / "model.safetensors").exists():
        sys.exit(f"{MINILM} is missing: run scripts/setup first")
    base = BertModel.from_pretrained(MINILM, add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    sequences = [tokenizer(text)["input_ids"] for text in SENTENCES]
    base_states = hidden_states(base, sequences)
    torch.manual_seed(81)  # lora_A's kaiming initialisation
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=["query", "value"]))
    train(model, sequences, steps=5, seed=82)
    save_adapter(model, OUT / "minilm-peft")
    modules = adapted_modules(model)
    assert len(modules) == 12, modules
    peft_states = hidden_states(model, sequences)
    sites = site_reference(model, modules, rows=2, seed=84, gradients=False)
    merged = model.merge_and_unload()
    probe = torch.randn((384, 2), generator=torch.Generator().manual_seed(83))
    expected = {**packed(sequences), **sites, "probe": probe, "hidden_states.peft": peft_states, "hidden_states.base": base_states}
    for name in modules:
        weight = merged.get_submodule(name).weight.detach()
        expected[f"merged_rows.{name}.weight"] = weight[:8].clone()
        expected[f"merged_probe.{name}.weight"] = (weight.double() @ probe.double()).float()
    save_file({key: value.contiguous() for key, value in expected.items()}, OUT / "minilm-peft-expected.safetensors", metadata=METADATA)
    print(f"minilm: {len(sequences)} sentences, {sum(map(len, sequences))} tokens; adapter moves hidden states by up to "
          f"{(peft_states - base_states).abs().max():.3f}")


def verify_export():
    directory = OUT / "polyhead-export"
    if not (directory / "adapter_config.json").exists():
        print(f"{directory}: no Polyhead export to verify yet (run the Swift test LoRAPEFTTests with POLYHEAD_RECORD_LORA_FIXTURES=1)")
        return
    base = BertModel.from_pretrained(OUT / "tiny-bert", add_pooling_layer=False)
    model = PeftModel.from_pretrained(base, directory)
    written = load_file(directory / "adapter_model.safetensors")
    # Every tensor Polyhead wrote is one PEFT placed, with the same values, and PEFT created
    # no LoRA layer the file does not fill.
    loaded = {name: parameter for name, parameter in model.named_parameters() if "lora_" in name}
    placed = {name.replace(".default", ""): parameter for name, parameter in loaded.items()}
    assert set(placed) == set(written), f"keys differ: only in file {set(written) - set(placed)}, only in PEFT {set(placed) - set(written)}"
    for key, value in written.items():
        assert torch.equal(placed[key].detach(), value), key
    config = json.loads((directory / "adapter_config.json").read_text())
    scaling = {name: module.scaling["default"] for name, module in model.named_modules() if hasattr(module, "lora_A") and "default" in module.lora_A}
    modules = adapted_modules(model)
    recorded = load_file(directory / "merged.safetensors")
    states_file = directory / "hidden_states.safetensors"
    states = load_file(states_file) if states_file.exists() else None
    if states is not None:
        sequences = [states["input_ids"][start:end].tolist()
                     for start, end in zip(states["sequence_offsets"][:-1].tolist(), states["sequence_offsets"][1:].tolist())]
        peft_states = hidden_states(model, sequences)
    merged = model.merge_and_unload()
    worst = max((merged.get_submodule(name).weight.detach() - recorded[f"merged.{name}.weight"]).abs().max().item() for name in modules)
    assert len(modules) == len(recorded), (modules, list(recorded))
    print(f"polyhead-export: PEFT {peft.__version__} loaded {len(written)} tensors onto {len(modules)} layers "
          f"(r {config['r']}, scaling {sorted(set(scaling.values()))}); merged weights vs Polyhead's: max diff {worst:.2e}")
    assert worst <= 1e-6, worst
    if states is not None:
        difference = (peft_states - states["hidden_states"]).abs().max().item()
        print(f"polyhead-export: hidden states, PEFT vs Polyhead: max diff {difference:.2e}")
        assert difference <= 1e-4, difference


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--verify", action="store_true", help="only verify polyhead-export/")
    if not arguments.parse_args().verify:
        OUT.mkdir(parents=True, exist_ok=True)
        tiny()
        minilm()
    verify_export()
