#!/usr/bin/env python3
"""PyTorch side of the WordNet timing: replays the batches Polyhead's trainer draws.

`polyhead bench wordnet CONFIG --dump-batches FILE --dump-only` writes, per optimizer step,
the examples of the batch (task, token ids, token type ids) exactly as Polyhead's sampler
draws and its tokenizer encodes them. This script trains on those batches the way the
transformers recipe does (scripts/reference/wordnet_recipe.py, when present, is the full
recipe; this is its training loop alone, for timing):

  * `AutoModel.from_pretrained(model, add_pooling_layer=False)` in train mode (dropout as in
    its config.json), fp32, `torch.set_num_threads(threads)`;
  * the batch padded to its longest sequence (dynamic padding), one encoder pass per batch,
    each task's head on its rows: classification = [CLS] -> dropout 0.1 -> Linear,
    regression = mean pooling over real tokens -> Linear, token classification = dropout 0.1
    -> Linear on every token (label on the first piece of each word, here every real
    non-special token: the cost is the same);
  * cross-entropy / MSE, summed over the tasks of the batch; AdamW with encoder and head
    groups (decayed weights, undecayed biases and LayerNorm), linear schedule with warmup,
    `clip_grad_norm_(1.0)`, `zero_grad(set_to_none=True)`.

Targets are seeded random values: the loss's value does not change the work. Timed like the
recipe: each step from building the padded tensors to `zero_grad`, summed.

    polyhead bench wordnet scripts/bench/wordnet.yaml --dump-batches /tmp/b.jsonl --dump-only
    python scripts/bench/torch_wordnet_epoch.py models/all-MiniLM-L6-v2 /tmp/b.jsonl
"""
import argparse, json, sys, time

import torch
import torch.nn as nn
import transformers
from transformers import AutoModel

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("model")
ap.add_argument("batches", help="JSON lines from polyhead bench wordnet --dump-batches")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, help="time only the first N steps of the file")
ap.add_argument("--warmup", type=int, default=0, help="untimed steps first (the recipe times every step)")
a = ap.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(13)
with open(a.batches, encoding="utf-8") as handle:
    header = json.loads(handle.readline())
    steps = [json.loads(line) for line in handle if line.strip()]
tasks = header["tasks"]
if a.steps:
    steps = steps[: a.steps + a.warmup]

enc = AutoModel.from_pretrained(a.model, add_pooling_layer=False)
enc.train()
H = enc.config.hidden_size
heads = nn.ModuleList()
for task in tasks:
    linear = nn.Linear(H, task["outputs"])
    nn.init.normal_(linear.weight, std=0.02)
    nn.init.zeros_(linear.bias)
    heads.append(linear)
dropout = nn.Dropout(0.1)


def split_decay(module):
    decay, no_decay = [], []
    for name, parameter in module.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    return decay, no_decay


groups = []
for module, lr, weight_decay in ((enc, 1e-4, 0.01), (heads, 2e-3, 0.0)):
    decay, no_decay = split_decay(module)
    groups += [{"params": decay, "lr": lr, "weight_decay": weight_decay}, {"params": no_decay, "lr": lr, "weight_decay": 0.0}]
optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
total_steps = header["steps_per_epoch"]
scheduler = transformers.get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps + 0.999), total_steps)
parameters = [p for g in groups for p in g["params"]]
generator = torch.Generator().manual_seed(13)


def step(rows):
    # Rows arrive grouped by task (the sampler's parts); keep that order.
    longest = max(len(r["ids"]) for r in rows)
    ids = torch.zeros(len(rows), longest, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        n = len(r["ids"])
        ids[i, :n] = torch.tensor(r["ids"])
        types[i, :n] = torch.tensor(r["types"])
        mask[i, :n] = 1
    states = enc(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    total, start = 0.0, 0
    while start < len(rows):
        t = rows[start]["task"]
        end = start
        while end < len(rows) and rows[end]["task"] == t:
            end += 1
        kind, outputs = tasks[t]["type"], tasks[t]["outputs"]
        s, m = states[start:end], mask[start:end]
        count = end - start
        if kind == "classification":
            logits = heads[t](dropout(s[:, 0]))
            loss = nn.functional.cross_entropy(logits, torch.randint(0, outputs, (count,), generator=generator))
        elif kind == "regression":
            w = m.unsqueeze(-1).float()
            pred = heads[t]((s * w).sum(1) / w.sum(1))
            loss = nn.functional.mse_loss(pred, torch.rand(count, outputs, generator=generator))
        else:
            logits = heads[t](dropout(s))
            target = torch.randint(0, outputs, m.shape, generator=generator)
            target[m == 0] = -100
            target[:, 0] = -100
            loss = nn.functional.cross_entropy(logits.reshape(-1, outputs), target.reshape(-1), ignore_index=-100)
        total = total + loss
        start = end
    total.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return int(mask.sum()), mask.numel()


seconds = cpu_seconds = 0.0
real = padded = sequences = 0
for index, rows in enumerate(steps):
    tick, cpu_tick = time.perf_counter(), time.process_time()
    tokens, padded_tokens = step(rows)
    if index >= a.warmup:
        seconds += time.perf_counter() - tick
        cpu_seconds += time.process_time() - cpu_tick
        real += tokens
        padded += padded_tokens
        sequences += len(rows)
timed = len(steps) - a.warmup
print(json.dumps({
    "bench": "torch_wordnet", "steps": timed, "steps_per_epoch": header["steps_per_epoch"], "threads": a.threads,
    "sequences": sequences, "train_tokens": real, "train_padded_tokens": padded, "train_seconds": seconds,
    "train_tokens_per_s": real / seconds, "train_seq_per_s": sequences / seconds,
    "epoch_seconds": seconds * header["steps_per_epoch"] / timed, "train_cpu_seconds": cpu_seconds,
    "torch": torch.__version__,
}))
