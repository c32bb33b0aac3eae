#!/usr/bin/env python3
"""Writes the task heads' PyTorch reference fixtures (Tests/Fixtures/plugins/reference/*.json).

Rerun from the repository root:
    /tmp/phvenv/bin/python scripts/reference/head_fixtures.py
Pinned versions this was run with (recorded in every fixture): torch 2.15.0, numpy 2.4.6.

Each head is written here in plain PyTorch, the way the head's documentation (docs/abi.md,
the plugin sources) defines it, and run on one fixed small problem: 3 sequences packed as
12 tokens of width 8 (offsets 0, 4, 9, 12), seeded random features and parameters. A fixture
holds the inputs (config, features, offsets, word ids, labels as written in data, parameter
values) and what PyTorch computes: encoded targets, outputs, loss, d(loss)/d(features) and
d(loss)/d(parameter) for every trainable parameter. Inputs are rounded to float32 first and
the reference runs in float64, so a comparison measures the plugin's (and the boundary's)
error alone. Dropout is 0 here; dropout is checked by finite differences in the tests.
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests/Fixtures/plugins/reference"
HIDDEN = 8
OFFSETS = [0, 4, 9, 12]
TOKENS = OFFSETS[-1]
VERSIONS = {"torch": torch.__version__.split("+")[0], "numpy": np.__version__}


def f32(array):
    """Rounds to float32 (what the Swift side holds), then widens for the reference."""
    return torch.tensor(np.asarray(array, dtype=np.float32), dtype=torch.float64)


def random_features(seed):
    rng = np.random.default_rng(seed)
    return f32(rng.normal(size=(TOKENS, HIDDEN)))


def separated_features(seed):
    """Features whose values within a sequence's column differ by at least 0.1, so max pooling
    has no near-ties (finite differences in the tests use the same kind of data)."""
    rng = np.random.default_rng(seed)
    features = np.zeros((TOKENS, HIDDEN))
    for start, end in zip(OFFSETS[:-1], OFFSETS[1:]):
        for column in range(HIDDEN):
            features[start:end, column] = rng.permutation(end - start) * 0.37 - 0.8 + rng.normal() * 0.1
    return f32(features)


def pool(features, pooling):
    rows = []
    for start, end in zip(OFFSETS[:-1], OFFSETS[1:]):
        sequence = features[start:end]
        if pooling == "cls":
            rows.append(sequence[0])
        elif pooling == "mean":
            rows.append(sequence.mean(0))
        else:
            rows.append(sequence.max(0).values)
    return torch.stack(rows)


def activate(x, name):
    return {"tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu}[name](x)


def trunk(features, params, config):
    """pool -> [dense -> activation] -> output, as Plugins/PluginSupport/PooledTrunk.swift."""
    x = pool(features, config.get("pooling", "cls"))
    if config.get("hidden_size", 0) > 0:
        x = activate(x @ params["dense.weight"].T + params["dense.bias"], config.get("activation", "tanh"))
    return x @ params["output.weight"].T + params["output.bias"]


def make_params(rng, shapes):
    return {name: f32(rng.normal(scale=0.4, size=shape)) for name, shape in shapes.items()}


def trunk_shapes(config, outputs):
    hidden = config.get("hidden_size", 0)
    shapes = {}
    if hidden > 0:
        shapes["dense.weight"] = (hidden, HIDDEN)
        shapes["dense.bias"] = (hidden,)
    shapes["output.weight"] = (outputs, hidden if hidden > 0 else HIDDEN)
    shapes["output.bias"] = (outputs,)
    return shapes


def run(name, component, config, features, params, buffers, loss_fn, labels, targets, word_ids=None, decoded=None):
    features = features.clone().requires_grad_(True)
    trainable = {key: value.clone().requires_grad_(True) for key, value in params.items()}
    outputs = loss_fn["forward"](features, {**trainable, **buffers})
    loss = loss_fn["loss"](outputs)
    loss.backward()
    fixture = {
        "versions": VERSIONS,
        "component": component,
        "config": config,
        "hidden_size": HIDDEN,
        "features": features.detach().flatten().tolist(),
        "sequence_offsets": OFFSETS,
        "word_ids": word_ids,
        "labels": labels,
        "parameters": {key: value.flatten().tolist() for key, value in {**params, **buffers}.items()},
        "expected": {
            "targets": targets,
            "outputs": outputs.detach().flatten().tolist(),
            "loss": loss.item(),
            "d_features": features.grad.flatten().tolist(),
            "gradients": {key: value.grad.flatten().tolist() for key, value in trainable.items()},
            "decoded": decoded(outputs.detach()) if decoded else None,
        },
    }
    (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{name}: loss {loss.item():.6f}")


def classification_single(name, seed, config, labels):
    names = config["labels"]
    rng = np.random.default_rng(seed)
    features = random_features(seed)
    params = make_params(rng, trunk_shapes(config, len(names)))
    buffers = {}
    if "class_weights" in config:
        buffers["class_weights"] = f32(config["class_weights"])
    targets = [names.index(label) for label in labels]
    y = torch.tensor(targets)

    def loss(outputs):
        return F.cross_entropy(outputs, y, weight=buffers.get("class_weights"), label_smoothing=config.get("label_smoothing", 0.0))

    def decoded(outputs):
        return [names[i] for i in outputs.argmax(1).tolist()]

    run(name, "polyhead.classification", config, features, params, buffers,
        {"forward": lambda x, p: trunk(x, p, config), "loss": loss}, labels, targets, decoded=decoded)


def classification_multi(name, seed, config, labels):
    names = config["labels"]
    rng = np.random.default_rng(seed)
    features = separated_features(seed)
    params = make_params(rng, trunk_shapes(config, len(names)))
    buffers = {"class_weights": f32(config["class_weights"])}
    targets = [[1.0 if n in row else 0.0 for n in names] for row in labels]
    smoothing = config.get("label_smoothing", 0.0)
    y = torch.tensor(targets, dtype=torch.float64) * (1 - smoothing) + smoothing / 2

    def loss(outputs):
        return F.binary_cross_entropy_with_logits(outputs, y, weight=buffers["class_weights"])

    def decoded(outputs):
        return [[n for n, p in zip(names, row) if p >= 0.5] for row in torch.sigmoid(outputs).tolist()]

    run(name, "polyhead.classification", config, features, params, buffers,
        {"forward": lambda x, p: trunk(x, p, config), "loss": loss}, labels, [v for row in targets for v in row], decoded=decoded)


def regression(name, seed, config, labels):
    outputs_count = len(config["names"]) if "names" in config else config.get("outputs", 1)
    rng = np.random.default_rng(seed)
    features = random_features(seed)
    params = make_params(rng, trunk_shapes(config, outputs_count))
    raw = [[float(v) for v in (row if isinstance(row, list) else [row])] for row in labels]
    targets = f32(raw)
    buffers = {}
    if config.get("standardize"):
        # Population statistics, fitted by the head's prepare() on these same targets.
        buffers["target_mean"] = f32(targets.numpy().mean(0))
        buffers["target_std"] = f32(targets.numpy().std(0))
        goal = (targets - buffers["target_mean"]) / buffers["target_std"]
    else:
        goal = targets

    def loss(outputs):
        if config.get("loss", "mse") == "huber":
            return F.huber_loss(outputs, goal, delta=config.get("huber_delta", 1.0))
        return F.mse_loss(outputs, goal)

    def decoded(outputs):
        if config.get("standardize"):
            outputs = outputs * buffers["target_std"] + buffers["target_mean"]
        return outputs.tolist()

    run(name, "polyhead.regression", config, features, params, buffers,
        {"forward": lambda x, p: trunk(x, p, config), "loss": loss}, labels, [v for row in raw for v in row], decoded=decoded)


def token_classification(name, seed, config, labels, word_ids):
    names = config["labels"]
    rng = np.random.default_rng(seed)
    features = random_features(seed)
    params = make_params(rng, {"output.weight": (len(names), HIDDEN), "output.bias": (len(names),)})
    targets = []
    for (start, end), words in zip(zip(OFFSETS[:-1], OFFSETS[1:]), labels):
        ids = word_ids[start:end]
        for t, word in enumerate(ids):
            first = word >= 0 and (t == 0 or ids[t - 1] != word)
            targets.append(names.index(words[word]) if first else -1)
    y = torch.tensor([t if t >= 0 else -100 for t in targets])

    def loss(outputs):
        return F.cross_entropy(outputs, y, ignore_index=-100, label_smoothing=config.get("label_smoothing", 0.0))

    def decoded(outputs):
        result = []
        for start, end in zip(OFFSETS[:-1], OFFSETS[1:]):
            ids = word_ids[start:end]
            result.append([names[outputs[start + t].argmax().item()] for t, w in enumerate(ids)
                           if w >= 0 and (t == 0 or ids[t - 1] != w)])
        return result

    run(name, "polyhead.token_classification", config, features, params, {},
        {"forward": lambda x, p: x @ p["output.weight"].T + p["output.bias"], "loss": loss}, labels, targets,
        word_ids=word_ids, decoded=decoded)


def ordinal(name, seed, config, labels):
    """examples/c-head/ordinal_head.c: CORAL logits, BCE against [level > k]."""
    levels = config["levels"]
    rng = np.random.default_rng(seed)
    features = random_features(seed)
    params = make_params(rng, {"ordinal.weight": (1, HIDDEN), "ordinal.bias": (len(levels) - 1,)})
    targets = [levels.index(label) for label in labels]
    above = torch.tensor([[1.0 if t > k else 0.0 for k in range(len(levels) - 1)] for t in targets], dtype=torch.float64)

    def forward(x, p):
        return pool(x, config.get("pooling", "cls")) @ p["ordinal.weight"].T + p["ordinal.bias"]

    def decoded(outputs):
        return [levels[int((row > 0).sum())] for row in outputs]

    run(name, "example.ordinal", config, features, params, {},
        {"forward": forward, "loss": lambda outputs: F.binary_cross_entropy_with_logits(outputs, above)},
        labels, targets, decoded=decoded)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    classification_single("classification-cls", 1, {"labels": ["negative", "neutral", "positive"], "pooling": "cls"},
                          ["positive", "negative", "neutral"])
    classification_single("classification-mean-hidden-weighted-smoothed", 2,
                          {"labels": ["noun.animal", "noun.artifact", "noun.plant"], "pooling": "mean", "hidden_size": 5,
                           "activation": "gelu", "class_weights": [1.0, 2.0, 0.5], "label_smoothing": 0.1},
                          ["noun.plant", "noun.animal", "noun.plant"])
    classification_multi("classification-multilabel-max", 3,
                         {"labels": ["a", "b", "c", "d"], "multi_label": True, "pooling": "max", "hidden_size": 4,
                          "activation": "tanh", "class_weights": [0.5, 1.5, 1.0, 2.0], "label_smoothing": 0.2},
                         [["a", "c"], [], ["b", "c", "d"]])
    regression("regression-mse-mean", 4, {"names": ["depth", "length"], "pooling": "mean"}, [[1.5, 3.0], [-0.5, 7.25], [2.0, 4.0]])
    regression("regression-huber-standardized", 5,
               {"outputs": 1, "pooling": "cls", "loss": "huber", "huber_delta": 0.5, "standardize": True, "hidden_size": 3,
                "activation": "relu"}, [2.0, 9.0, 3.5])
    token_classification("token-classification", 6, {"labels": ["O", "B-x", "I-x"], "label_smoothing": 0.1},
                         [["B-x"], ["O", "B-x"], ["I-x"]],
                         [-1, 0, 0, -1, -1, 0, 1, 1, -1, -1, 0, -1])
    ordinal("ordinal-c-head", 7, {"levels": ["short", "medium", "long", "very long"], "pooling": "mean"},
            ["long", "short", "very long"])


if __name__ == "__main__":
    main()
