#!/usr/bin/env python3
"""Writes the MMoE router's PyTorch reference fixtures (Tests/Fixtures/mmoe/*.json).

Rerun from the repository root:
    /tmp/phvenv/bin/python scripts/reference/mmoe_fixtures.py
Pinned versions this was run with (recorded in every fixture): torch 2.15.0, numpy 2.4.6.

The router is written here in plain PyTorch as Plugins/MMoERouter/MMoERouter.swift documents
it: X = pool(features) or the tokens; expert e = depth x (linear, activation); task t's gate
softmax((X G_t^T + g_t) / temperature) over the shared experts then the task's own (CGC);
mixture = sum_e s_e out_e; in pooled modes each sequence's mixture row is repeated on its
tokens. A fixture runs one task's forward on a fixed packed problem (3 sequences, 12 tokens of
width 8, offsets 0, 4, 9, 12) and back-propagates a fixed random d(outputs): it holds the
inputs, every parameter, and what PyTorch computes: outputs, d(features) and d(parameter) for
every parameter (zero for other tasks' gates and experts). Inputs are rounded to float32 and
the reference runs in float64, so a comparison measures the plugin's error alone. Gate noise
is off here (it is checked by finite differences with the host stream replayed).
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests/Fixtures/mmoe"
HIDDEN = 8
OFFSETS = [0, 4, 9, 12]
TOKENS = OFFSETS[-1]
VERSIONS = {"torch": torch.__version__.split("+")[0], "numpy": np.__version__}


def f32(array):
    """Rounds to float32 (what the Swift side holds), then widens for the reference."""
    return torch.tensor(np.asarray(array, dtype=np.float32), dtype=torch.float64)


def separated_features(rng):
    """Values within a sequence's column at least 0.1 apart, so max pooling has no near-ties."""
    features = np.zeros((TOKENS, HIDDEN))
    for start, end in zip(OFFSETS[:-1], OFFSETS[1:]):
        for column in range(HIDDEN):
            features[start:end, column] = rng.permutation(end - start) * 0.37 - 0.8 + rng.normal() * 0.1
    return f32(features)


def pool(features, pooling):
    rows = []
    for start, end in zip(OFFSETS[:-1], OFFSETS[1:]):
        sequence = features[start:end]
        rows.append({"cls": lambda: sequence[0], "mean": lambda: sequence.mean(0), "max": lambda: sequence.max(0).values}[pooling]())
    return torch.stack(rows)


def activate(x, name):
    return {"tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu}[name](x)


def shapes(config, tasks):
    shared, own = config.get("experts", 4), config.get("task_experts", 0)
    width, depth = config.get("expert_width", HIDDEN), config.get("depth", 1)
    result = {}

    def expert(prefix):
        for layer in range(depth):
            result[f"{prefix}.layers.{layer}.weight"] = (width, HIDDEN if layer == 0 else width)
            result[f"{prefix}.layers.{layer}.bias"] = (width,)

    for index in range(shared):
        expert(f"experts.{index}")
    for task in range(len(tasks)):
        for index in range(own):
            expert(f"task_experts.{task}.{index}")
    for task in range(len(tasks)):
        result[f"gates.{task}.weight"] = (shared + own, HIDDEN)
        result[f"gates.{task}.bias"] = (shared + own,)
    return result


def router(features, params, config, task):
    pooling = config.get("pooling", "mean")
    x = features if pooling == "token" else pool(features, pooling)
    depth, activation = config.get("depth", 1), config.get("activation", "relu")
    names = [f"experts.{index}" for index in range(config.get("experts", 4))]
    names += [f"task_experts.{task}.{index}" for index in range(config.get("task_experts", 0))]
    outputs = []
    for name in names:
        h = x
        for layer in range(depth):
            h = activate(h @ params[f"{name}.layers.{layer}.weight"].T + params[f"{name}.layers.{layer}.bias"], activation)
        outputs.append(h)
    logits = x @ params[f"gates.{task}.weight"].T + params[f"gates.{task}.bias"]
    gates = torch.softmax(logits / config.get("gate_temperature", 1.0), dim=1)
    mixture = sum(gates[:, index:index + 1] * out for index, out in enumerate(outputs))
    if pooling == "token":
        return mixture
    lengths = torch.tensor([end - start for start, end in zip(OFFSETS[:-1], OFFSETS[1:])])
    return mixture.repeat_interleave(lengths, dim=0)


def write(name, config, tasks, task, seed):
    rng = np.random.default_rng(seed)
    features = separated_features(rng).requires_grad_(True)
    params = {key: f32(rng.normal(scale=0.5, size=shape)).requires_grad_(True) for key, shape in shapes(config, tasks).items()}
    outputs = router(features, params, config, task)
    output_gradient = f32(rng.normal(size=tuple(outputs.shape)))
    outputs.backward(output_gradient)
    fixture = {
        "versions": VERSIONS,
        "component": "polyhead.mmoe",
        "config": config,
        "tasks": tasks,
        "task_index": task,
        "hidden_size": HIDDEN,
        "features": features.detach().flatten().tolist(),
        "sequence_offsets": OFFSETS,
        "parameters": {key: value.detach().flatten().tolist() for key, value in params.items()},
        "output_gradient": output_gradient.flatten().tolist(),
        "expected": {
            "output_width": outputs.shape[1],
            "outputs": outputs.detach().flatten().tolist(),
            "d_features": features.grad.flatten().tolist(),
            "gradients": {key: (value.grad if value.grad is not None else torch.zeros_like(value)).flatten().tolist()
                          for key, value in params.items()},
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{name}: |outputs| max {outputs.abs().max().item():.4f}, |d_features| max {features.grad.abs().max().item():.4f}")


if __name__ == "__main__":
    write("mmoe-mean-gelu-depth2",
          {"experts": 3, "expert_width": 5, "depth": 2, "activation": "gelu", "pooling": "mean", "gate_temperature": 0.7},
          ["topics", "depth"], 1, seed=31)
    write("mmoe-token-tanh",
          {"experts": 2, "expert_width": 6, "activation": "tanh", "pooling": "token", "gate_temperature": 1.5},
          ["tags", "topics"], 0, seed=32)
    write("cgc-max-relu",
          {"experts": 2, "task_experts": 2, "expert_width": 4, "activation": "relu", "pooling": "max"},
          ["a", "b", "c"], 2, seed=33)
    write("mmoe-cls-relu-depth3",
          {"experts": 4, "expert_width": 7, "depth": 3, "activation": "relu", "pooling": "cls", "gate_temperature": 0.5},
          ["only"], 0, seed=34)
