#!/usr/bin/env python3
"""Writes the Training module's reference fixtures into Tests/Fixtures/training/.

Rerun (from the repository root, in a venv with the pinned versions):
    python scripts/reference/training_fixtures.py [--model models/all-MiniLM-L6-v2]
Pinned: torch 2.15.0, transformers 5.24.0, safetensors 0.8.0, numpy 2.4.6 (recorded in each
fixture's metadata). Tests never run Python; they read the files written here.

What it writes:
  losses.json           each loss (cross-entropy with ignore index / class weights / label
                        smoothing, BCE with logits and pos_weight, MSE, Huber) on fixed
                        inputs: value and input gradient, in float64.
  schedules.json        learning-rate multipliers of transformers' constant / linear / cosine
                        schedules with warmup, read from LambdaLR after every step.
  optimizer.json        torch.optim.AdamW over two groups (decay / no-decay split), a
                        linear schedule and clip_grad_norm_, fed fixed gradients (float32).
  tiny_bert/            a random 2-layer BERT (hidden 32) + nn.Linear head on CLS, a padded
                        batch, dropout 0: step-1 gradients of every parameter, then 10 AdamW
                        steps (warmup 3, linear decay over 10, weight decay 0.01 except
                        bias/LayerNorm, clip 1.0): per-step losses and norms, final weights.
                        Computed in float64 from float32 initial weights.
  minilm/               one step on all-MiniLM-L6-v2 + a CLS linear head on four real
                        sentences (token ids stored): loss and the gradients of a few tensors.
"""
import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import safetensors
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "training"
VERSIONS = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "safetensors": safetensors.__version__,
    "numpy": np.__version__,
    "script": "scripts/reference/training_fixtures.py",
}


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(value, handle, indent=1)
        handle.write("\n")


def flat(tensor):
    return [float(x) for x in tensor.detach().reshape(-1).tolist()]


# ---------------------------------------------------------------------------------------
# Losses


def loss_case(name, loss, options, inputs, targets, compute):
    inputs = inputs.clone().double().requires_grad_(True)
    value = compute(inputs, targets)
    value.backward()
    return {
        "name": name,
        "loss": loss,
        "options": options,
        "shape": list(inputs.shape),
        "input": flat(inputs),
        "target": flat(targets) if targets.dtype.is_floating_point else [int(t) for t in targets.tolist()],
        "value": float(value.detach()),
        "gradient": flat(inputs.grad),
    }


def losses():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=generator, dtype=torch.float64) * 2
    targets = torch.tensor([0, 3, -100, 1, 2, 3])
    weights = torch.tensor([0.5, 2.0, 1.0, 1.5], dtype=torch.float64)
    cases = [
        loss_case("cross-entropy plain", "cross_entropy", {}, logits, torch.tensor([0, 3, 2, 1, 2, 3]),
                  lambda x, t: F.cross_entropy(x, t)),
        loss_case("cross-entropy ignore", "cross_entropy", {"ignore_index": -100}, logits, targets,
                  lambda x, t: F.cross_entropy(x, t)),
        loss_case("cross-entropy weights", "cross_entropy", {"class_weights": weights.tolist()}, logits, targets,
                  lambda x, t: F.cross_entropy(x, t, weight=weights)),
        loss_case("cross-entropy smoothing", "cross_entropy", {"label_smoothing": 0.1}, logits, targets,
                  lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)),
        loss_case("cross-entropy weights smoothing", "cross_entropy",
                  {"class_weights": weights.tolist(), "label_smoothing": 0.2}, logits, targets,
                  lambda x, t: F.cross_entropy(x, t, weight=weights, label_smoothing=0.2)),
        loss_case("cross-entropy ignore index inside range", "cross_entropy", {"ignore_index": 3}, logits,
                  torch.tensor([0, 3, 2, 1, 2, 3]), lambda x, t: F.cross_entropy(x, t, ignore_index=3)),
        loss_case("cross-entropy large logits", "cross_entropy", {"label_smoothing": 0.05},
                  torch.tensor([[90.0, -80.0, 3.0], [-100.0, 100.0, 0.0]], dtype=torch.float64), torch.tensor([1, 1]),
                  lambda x, t: F.cross_entropy(x, t, label_smoothing=0.05)),
    ]
    bce_logits = torch.randn(4, 3, generator=generator, dtype=torch.float64) * 3
    bce_targets = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0.3, 0.7, 0]], dtype=torch.float64)
    positive = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    cases += [
        loss_case("bce plain", "bce_with_logits", {}, bce_logits, bce_targets,
                  lambda x, t: F.binary_cross_entropy_with_logits(x, t)),
        loss_case("bce positive weights", "bce_with_logits", {"positive_weights": positive.tolist()}, bce_logits,
                  bce_targets, lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=positive)),
        loss_case("bce large logits", "bce_with_logits", {"positive_weights": [2.0, 0.5]},
                  torch.tensor([[60.0, -70.0], [-90.0, 80.0]], dtype=torch.float64),
                  torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64),
                  lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=torch.tensor([2.0, 0.5], dtype=torch.float64))),
    ]
    predictions = torch.randn(5, 2, generator=generator, dtype=torch.float64) * 2
    regression_targets = torch.randn(5, 2, generator=generator, dtype=torch.float64)
    cases += [
        loss_case("mse", "mse", {}, predictions, regression_targets, lambda x, t: F.mse_loss(x, t)),
        loss_case("huber delta 1", "huber", {"delta": 1.0}, predictions, regression_targets,
                  lambda x, t: F.huber_loss(x, t, delta=1.0)),
        loss_case("huber delta 0.5", "huber", {"delta": 0.5}, predictions, regression_targets,
                  lambda x, t: F.huber_loss(x, t, delta=0.5)),
    ]
    write_json(OUT / "losses.json", {"versions": VERSIONS, "cases": cases})


# ---------------------------------------------------------------------------------------
# Schedules


def schedules():
    configs = [
        {"kind": "constant", "warmup": 0, "total": None},
        {"kind": "constant", "warmup": 4, "total": None},
        {"kind": "linear", "warmup": 3, "total": 10},
        {"kind": "linear", "warmup": 0, "total": 5},
        {"kind": "cosine", "warmup": 2, "total": 12, "cycles": 0.5},
        {"kind": "cosine", "warmup": 0, "total": 7, "cycles": 1.5},
    ]
    results = []
    for config in configs:
        parameter = nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=1.0)
        if config["kind"] == "constant":
            scheduler = transformers.get_constant_schedule_with_warmup(optimizer, config["warmup"])
        elif config["kind"] == "linear":
            scheduler = transformers.get_linear_schedule_with_warmup(optimizer, config["warmup"], config["total"])
        else:
            scheduler = transformers.get_cosine_schedule_with_warmup(
                optimizer, config["warmup"], config["total"], num_cycles=config["cycles"])
        steps = (config["total"] or 8) + 3
        multipliers = []
        for _ in range(steps):
            # The rate the next optimizer step would use.
            multipliers.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        results.append({**config, "multipliers": multipliers})
    write_json(OUT / "schedules.json", {"versions": VERSIONS, "schedules": results})


# ---------------------------------------------------------------------------------------
# Optimizer


def optimizer_fixture():
    generator = torch.Generator().manual_seed(2)
    shapes = {"layer.weight": (4, 3), "layer.bias": (3,), "norm.LayerNorm.weight": (3,), "head.weight": (2, 3)}
    parameters = {name: nn.Parameter(torch.randn(*shape, generator=generator)) for name, shape in shapes.items()}
    initial = {name: flat(p) for name, p in parameters.items()}
    groups = [
        {"name": "body", "learning_rate": 0.01, "weight_decay": 0.1,
         "parameters": ["layer.weight", "layer.bias", "norm.LayerNorm.weight"]},
        {"name": "head", "learning_rate": 0.05, "weight_decay": 0.05, "parameters": ["head.weight"]},
    ]
    no_decay = lambda name: name.endswith("bias") or "LayerNorm" in name
    torch_groups = []
    for group in groups:
        for decays in (True, False):
            names = [n for n in group["parameters"] if no_decay(n) != decays]
            if names:
                torch_groups.append({"params": [parameters[n] for n in names], "lr": group["learning_rate"],
                                     "weight_decay": group["weight_decay"] if decays else 0.0})
    optimizer = torch.optim.AdamW(torch_groups, betas=(0.9, 0.999), eps=1e-8)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, 2, 6)
    steps = []
    for _ in range(6):
        gradients = {name: torch.randn(*shapes[name], generator=generator) for name in shapes}
        for name, p in parameters.items():
            p.grad = gradients[name].clone()
        norm = torch.nn.utils.clip_grad_norm_(list(parameters.values()), 0.8)
        clipped = {name: flat(p.grad) for name, p in parameters.items()}
        optimizer.step()
        scheduler.step()
        steps.append({"gradients": {n: flat(g) for n, g in gradients.items()}, "norm": float(norm),
                      "clipped": clipped, "after": {name: flat(p) for name, p in parameters.items()}})
    write_json(OUT / "optimizer.json", {
        "versions": VERSIONS, "max_norm": 0.8, "warmup": 2, "total": 6, "betas": [0.9, 0.999], "eps": 1e-8,
        "shapes": {n: list(s) for n, s in shapes.items()}, "groups": groups, "initial": initial, "steps": steps})


# ---------------------------------------------------------------------------------------
# Tiny BERT end-to-end


class ClassifierOnCLS(nn.Module):
    """Encoder + nn.Linear on the [CLS] token's last hidden state."""

    def __init__(self, encoder, classes):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, classes)

    def forward(self, ids, types, mask):
        hidden = self.encoder(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        return self.head(hidden[:, 0])


def parameter_groups(model, encoder_rate, head_rate, weight_decay):
    """Hugging Face's rule: no decay on biases and LayerNorm; per-group learning rates."""
    groups = []
    for prefix, rate in (("encoder.", encoder_rate), ("head.", head_rate)):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith(prefix)]
        decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
        keep = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
        groups += [{"params": decay, "lr": rate, "weight_decay": weight_decay},
                   {"params": keep, "lr": rate, "weight_decay": 0.0}]
    return groups


def named_tensors(model, gradients=False):
    result = {}
    for name, p in model.named_parameters():
        source = p.grad if gradients else p
        result[name] = source.detach().float().contiguous()
    return result


def tiny_bert():
    torch.manual_seed(3)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
                        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        layer_norm_eps=1e-12, pad_token_id=0, attn_implementation="eager")
    encoder = BertModel(config, add_pooling_layer=False)
    model = ClassifierOnCLS(encoder, classes=3)
    with torch.no_grad():
        # Freshly initialised biases are 0 and LayerNorm weights 1, which would hide a missing
        # bias or a transposed scale; perturb every parameter.
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    directory = OUT / "tiny_bert"
    directory.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(directory, safe_serialization=True)
    save_file({"weight": model.head.weight.detach().contiguous(), "bias": model.head.bias.detach().contiguous()},
              directory / "head.safetensors", metadata={"versions": json.dumps(VERSIONS)})

    lengths = [8, 5, 3, 6]
    padded = max(lengths)
    ids = torch.zeros(len(lengths), padded, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    generator = torch.Generator().manual_seed(4)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(5, config.vocab_size, (length,), generator=generator)
        ids[row, 0] = 2  # a [CLS]-like id shared by all rows
        mask[row, :length] = 1
    types[0, 4:8] = 1  # the first row is a sentence pair
    labels = torch.tensor([0, 2, 1, 2])

    settings = {"encoder_learning_rate": 1e-3, "head_learning_rate": 5e-3, "weight_decay": 0.01,
                "warmup_steps": 3, "total_steps": 10, "max_grad_norm": 1.0, "betas": [0.9, 0.999], "eps": 1e-8}
    model = model.double()
    optimizer = torch.optim.AdamW(parameter_groups(model, settings["encoder_learning_rate"],
                                                   settings["head_learning_rate"], settings["weight_decay"]),
                                  betas=tuple(settings["betas"]), eps=settings["eps"])
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, settings["warmup_steps"], settings["total_steps"])
    losses, norms, rates = [], [], []
    for step in range(settings["total_steps"]):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(ids, types, mask), labels)
        loss.backward()
        if step == 0:
            save_file(named_tensors(model, gradients=True), directory / "step1_gradients.safetensors",
                      metadata={"loss": repr(float(loss)), "versions": json.dumps(VERSIONS)})
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), settings["max_grad_norm"])))
        rates.append(scheduler.get_last_lr()[0] / settings["encoder_learning_rate"])
        losses.append(float(loss))
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        final_loss = float(F.cross_entropy(model(ids, types, mask), labels))
    save_file(named_tensors(model), directory / "final_weights.safetensors", metadata={"versions": json.dumps(VERSIONS)})
    write_json(directory / "batch.json", {
        "versions": VERSIONS, "precision": "float64 from float32 initial weights",
        "lengths": lengths, "input_ids": [ids[r, :n].tolist() for r, n in enumerate(lengths)],
        "token_type_ids": [types[r, :n].tolist() for r, n in enumerate(lengths)], "labels": labels.tolist(),
        "settings": settings, "losses": losses, "gradient_norms": norms, "schedule_multipliers": rates,
        "loss_after_training": final_loss})
    print("tiny bert losses", [round(x, 6) for x in losses], "norms", [round(x, 4) for x in norms])


# ---------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 one step

SENTENCES = [
    "A small dog barked at the postman.",
    "The committee approved the new budget after a long debate.",
    "Rain is expected tomorrow.",
    "She plays the cello in an orchestra that tours every summer across Europe.",
]
SELECTED = [
    "head.weight", "head.bias",
    "encoder.embeddings.LayerNorm.weight", "encoder.embeddings.LayerNorm.bias",
    "encoder.embeddings.token_type_embeddings.weight",
    "encoder.encoder.layer.0.attention.self.value.bias",
    "encoder.encoder.layer.2.intermediate.dense.bias",
    "encoder.encoder.layer.3.output.dense.bias",
    "encoder.encoder.layer.5.attention.output.LayerNorm.weight",
    "encoder.encoder.layer.5.output.LayerNorm.bias",
]


def minilm(model_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    encoder = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager")
    torch.manual_seed(5)
    model = ClassifierOnCLS(encoder, classes=3).double()
    model.eval()  # dropout off
    labels = torch.tensor([2, 0, 1, 0])
    loss = F.cross_entropy(model(encoded["input_ids"], encoded["token_type_ids"], encoded["attention_mask"]), labels)
    loss.backward()
    gradients = named_tensors(model, gradients=True)
    selected = {name: gradients[name] for name in SELECTED}
    lengths = encoded["attention_mask"].sum(1).tolist()
    # Large tables: only the rows this batch touches (the rest are exactly zero).
    unique_ids = sorted(set(encoded["input_ids"][encoded["attention_mask"].bool()].tolist()))
    selected["encoder.embeddings.word_embeddings.weight[rows]"] = gradients["encoder.embeddings.word_embeddings.weight"][unique_ids].contiguous()
    selected["encoder.embeddings.position_embeddings.weight[rows]"] = gradients["encoder.embeddings.position_embeddings.weight"][: max(lengths)].contiguous()
    selected["encoder.encoder.layer.0.attention.self.query.weight[rows]"] = gradients["encoder.encoder.layer.0.attention.self.query.weight"][:32].contiguous()
    directory = OUT / "minilm"
    directory.mkdir(parents=True, exist_ok=True)
    save_file({"weight": model.head.weight.detach().float().contiguous(), "bias": model.head.bias.detach().float().contiguous()},
              directory / "head.safetensors", metadata={"versions": json.dumps(VERSIONS)})
    save_file(selected, directory / "gradients.safetensors", metadata={"loss": repr(float(loss)), "versions": json.dumps(VERSIONS)})
    write_json(directory / "batch.json", {
        "versions": VERSIONS, "precision": "float64 from the float32 checkpoint", "sentences": SENTENCES,
        "input_ids": [encoded["input_ids"][r, :n].tolist() for r, n in enumerate(lengths)],
        "token_type_ids": [encoded["token_type_ids"][r, :n].tolist() for r, n in enumerate(lengths)],
        "lengths": lengths, "labels": labels.tolist(), "loss": float(loss),
        "word_embedding_rows": unique_ids, "query_weight_rows": 32,
        "position_rows": max(lengths), "gradient_names": sorted(selected)})
    print("minilm loss", float(loss), "tokens", lengths)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    losses()
    schedules()
    optimizer_fixture()
    tiny_bert()
    minilm(arguments.model)


if __name__ == "__main__":
    main()
