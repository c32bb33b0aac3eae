#!/usr/bin/env python3
"""Reference: the WordNet multi-task run of examples/wordnet/config.yaml, in PyTorch + transformers.

Reads the same run config Polyhead reads (docs/config.md) and trains the same recipe:

  * one shared encoder, `AutoModel.from_pretrained(model)` (no pooler), dropout as in its
    config.json (train mode), fp32;
  * an `nn.ModuleDict` of heads, one per task, built from each task's `head` component:
      polyhead.classification        pool (cls | mean | max) -> dropout -> Linear
      polyhead.regression            pool -> dropout -> Linear, MSE on targets standardised
                                     with the training mean and population std
                                     (`standardize: true`), predictions mapped back
      polyhead.token_classification  dropout -> Linear on every token; a word's label sits
                                     on its first word piece (via `word_ids()`), -100 on
                                     later pieces and special tokens
    Linear weights ~ N(0, initializer_range = 0.02), biases 0, as the plugins initialise;
  * per-task losses: cross-entropy (weighted by `class_weights`, mean over the weights as
    PyTorch does), MSE; combined by static loss weighting, total = sum_i w_i * L_i over the
    tasks present in the batch;
  * AdamW with parameter groups (encoder / heads, each split into decayed weights and
    never-decayed biases and LayerNorm weights), `get_linear_schedule_with_warmup` (or the
    constant / cosine schedule), `clip_grad_norm_`;
  * the same task sampling: a line-for-line port of Polyhead's TaskSampler, including its
    xoshiro256** generator, so both draw exactly the same examples in the same batches.
    With `mixing: mixed` every step draws `batch_size` examples, the task of each drawn from
    the sampling distribution and the example from that task's shuffled pass; the batch is
    padded to its longest sequence (dynamic padding) and goes through the encoder once;
    each head reads its own rows;
  * dev evaluation every `eval_interval` steps, test metrics of the final weights, computed
    with scikit-learn, SciPy and seqeval under the definitions of docs/config.md (a
    constant-side correlation is 0; plain token tags form entities as maximal runs of one
    tag, read through seqeval after rewriting them as IOB2).

Writes Tests/Fixtures/recipe/torch_wordnet_results.json (per-task dev history and test
metrics, training wall time, training tokens/s, library versions, SHA-256 of the config).
Routers, adapters, uncertainty weighting, multi-label tasks, gradient accumulation and early
stopping are outside this reference and are refused.

    python3 examples/wordnet/make_tasks.py
    nice -n 10 /tmp/phvenv/bin/python scripts/reference/wordnet_recipe.py [examples/wordnet/config.yaml]
"""
import argparse, hashlib, json, math, os, platform, sys, time

import numpy as np
import scipy
import scipy.stats
import seqeval
import seqeval.metrics
import sklearn
import sklearn.metrics
import tokenizers
import torch
import torch.nn as nn
import transformers
import yaml
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASK64 = (1 << 64) - 1
IGNORE = -100


# ---------------------------------------------------------------------------------------
# Config: the subset of docs/config.md this reference supports, with the same defaults.

DEFAULT_HEADS = {"classification": "polyhead.classification", "regression": "polyhead.regression",
                 "token_classification": "polyhead.token_classification"}
DEFAULT_METRICS = {"classification": ["accuracy", "macro_f1"], "regression": ["pearson", "spearman", "mse"],
                   "token_classification": ["entity_f1", "token_f1", "accuracy"]}


def refuse(message):
    sys.exit(f"wordnet_recipe: {message} (not part of this reference recipe)")


def component(value, default_plugin):
    if value is None:
        return default_plugin, {}
    if isinstance(value, str):
        return value, {}
    return value.get("plugin", default_plugin), dict(value.get("options") or {})


def load_config(path):
    with open(path, "rb") as handle:
        raw = handle.read()
    config = yaml.safe_load(raw)
    if config.get("routers") or config.get("adapters"):
        refuse("routers and adapters")
    tasks = []
    items = config["tasks"].items() if isinstance(config["tasks"], dict) else [(t["name"], t) for t in config["tasks"]]
    for name, spec in items:
        kind = spec.get("type", "classification")
        if kind not in DEFAULT_HEADS:
            refuse(f"task type {kind}")
        if spec.get("router") or spec.get("adapter"):
            refuse("routers and adapters")
        plugin, options = component(spec.get("head"), DEFAULT_HEADS[kind])
        if plugin != DEFAULT_HEADS[kind]:
            refuse(f"head plugin {plugin} for a {kind} task")
        fields = spec.get("fields") or {}
        sampling = spec.get("sampling") or {}
        tasks.append({
            "name": name, "type": kind, "head": plugin, "options": options, "data": spec["data"],
            "text": fields.get("text", "text"), "text_pair": fields.get("text_pair"),
            "label": fields.get("label", "labels" if kind == "token_classification" else "label"),
            "words": fields.get("words", "words") if kind == "token_classification" else None,
            "labels": spec.get("labels"), "metrics": spec.get("metrics") or DEFAULT_METRICS[kind],
            "loss_weight": float(spec.get("loss_weight", 1)),
            "oversample": float(sampling.get("oversample", 1)), "cap": sampling.get("cap"),
            "class_weights": spec.get("class_weights", "none"),
        })
    training = config.get("training") or {}
    sampling = training.get("sampling", "proportional")
    if isinstance(sampling, dict):
        strategy, temperature = sampling.get("strategy", "proportional"), float(sampling.get("temperature", 2))
    else:
        strategy, temperature = sampling, 2.0
    weighting = training.get("loss_weighting", "static")
    if (weighting if isinstance(weighting, str) else weighting.get("name")) != "static":
        refuse("loss weighting other than static")
    if int(training.get("gradient_accumulation", 1)) != 1:
        refuse("gradient accumulation")
    if (training.get("early_stopping") or {}).get("patience"):
        refuse("early stopping")
    optimizer = training.get("optimizer") or {}
    base_lr, base_decay = float(optimizer.get("lr", 5e-5)), float(optimizer.get("weight_decay", 0.01))
    groups = optimizer.get("groups") or {}
    def group(name):
        settings = groups.get(name) or {}
        return float(settings.get("lr", base_lr)), float(settings.get("weight_decay", base_decay))
    schedule = training.get("schedule", "linear")
    schedule = {"name": schedule} if isinstance(schedule, str) else dict(schedule)
    run = {
        "model": config.get("model", "models/all-MiniLM-L6-v2"), "max_length": int(config.get("max_length", 128)),
        "tasks": tasks, "steps": training.get("steps"), "epochs": training.get("epochs"),
        "batch_size": int(training.get("batch_size", 32)), "strategy": strategy, "temperature": temperature,
        "mixing": training.get("mixing", "mixed"),
        "betas": tuple(float(b) for b in optimizer.get("betas", [0.9, 0.999])), "eps": float(optimizer.get("eps", 1e-8)),
        "encoder_group": group("encoder"), "heads_group": group("heads"),
        "schedule": schedule.get("name", "linear"), "warmup_steps": schedule.get("warmup_steps"),
        "warmup_ratio": schedule.get("warmup_ratio"),
        "clip_norm": training.get("clip_norm", 1.0), "eval_interval": training.get("eval_interval"),
        "log_interval": int(training.get("log_interval", 50)), "seed": int(training.get("seed", 42)),
    }
    if run["steps"] is not None and run["epochs"] is not None:
        sys.exit("wordnet_recipe: both training.steps and training.epochs are set")
    return run, hashlib.sha256(raw).hexdigest()


# ---------------------------------------------------------------------------------------
# Polyhead's TaskSampler (Sources/Training/Sampling), ported so the batches are identical.

def rotl(value, count):
    return ((value << count) | (value >> (64 - count))) & MASK64


class SplitMix:
    def __init__(self, value):
        self.value = value & MASK64

    def next(self):
        self.value = (self.value + 0x9E3779B97F4A7C15) & MASK64
        mixed = self.value
        mixed = ((mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        mixed = ((mixed ^ (mixed >> 27)) * 0x94D049BB133111EB) & MASK64
        return mixed ^ (mixed >> 31)


class Xoshiro256StarStar:
    """Polyhead's RandomSource: xoshiro256** seeded through SplitMix64."""

    def __init__(self, seed):
        mixer = SplitMix(seed)
        self.s = [mixer.next() for _ in range(4)]

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        shifted = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= shifted
        s[3] = rotl(s[3], 45)
        return result

    def unit(self):
        return (self.next() >> 11) * 2.0 ** -53

    def below(self, bound):
        """Swift's RandomNumberGenerator.next(upperBound:) (Lemire's multiply-and-reject)."""
        product = self.next() * bound
        if (product & MASK64) < bound:
            threshold = ((1 << 64) - bound) % bound
            while (product & MASK64) < threshold:
                product = self.next() * bound
        return product >> 64


class TaskSampler:
    def __init__(self, sizes, strategy, temperature, oversample, caps, seed):
        self.sizes, self.seed = sizes, seed
        self.effective = []
        for size, factor, cap in zip(sizes, oversample, caps):
            scaled = max(1, int(math.floor(size * factor + 0.5)))  # Swift .rounded(): half away from zero
            self.effective.append(min(scaled, cap) if cap is not None else scaled)
        if strategy == "proportional":
            weights = [float(n) for n in self.effective]
        elif strategy == "temperature":
            weights = [float(n) ** (1 / temperature) for n in self.effective]
        elif strategy in ("uniform", "round_robin"):
            weights = [1.0] * len(sizes)
        else:
            sys.exit(f"wordnet_recipe: unknown sampling strategy {strategy}")
        total = sum(weights)
        self.probabilities = [w / total for w in weights]
        self.cumulative, running = [], 0.0
        for p in self.probabilities:
            running += p
            self.cumulative.append(running)
        self.strategy = strategy
        self.random = Xoshiro256StarStar(seed)
        self.passes = [0] * len(sizes)
        self.cursors = [0] * len(sizes)
        self.orders = [self.order(task, 0) for task in range(len(sizes))]
        self.round_robin_next = 0

    @property
    def epoch_size(self):
        return sum(self.effective)

    def order(self, task, pass_number):
        mixer = SplitMix(self.seed ^ ((task * 0xD6E8FEB86659FD93) & MASK64) ^ ((pass_number * 0xA0761D6478BD642F) & MASK64))
        generator = Xoshiro256StarStar(mixer.next())
        indices = list(range(self.sizes[task]))
        for position in range(len(indices) - 1, 0, -1):
            other = generator.below(position + 1)
            indices[position], indices[other] = indices[other], indices[position]
        return indices

    def next_task(self):
        if self.strategy == "round_robin":
            task = self.round_robin_next
            self.round_robin_next = (task + 1) % len(self.sizes)
            return task
        unit = self.random.unit()
        low, high = 0, len(self.sizes) - 1
        while low < high:
            middle = (low + high) // 2
            if unit < self.cumulative[middle]:
                high = middle
            else:
                low = middle + 1
        return low

    def next_example(self, task):
        if self.cursors[task] == len(self.orders[task]):
            self.passes[task] += 1
            self.orders[task] = self.order(task, self.passes[task])
            self.cursors[task] = 0
        example = self.orders[task][self.cursors[task]]
        self.cursors[task] += 1
        return example

    def next_batch(self, size, mixing):
        """[(task, [example, ...]), ...] for the tasks present, tasks ascending."""
        by_task = [[] for _ in self.sizes]
        if mixing == "mixed":
            for _ in range(size):
                task = self.next_task()
                by_task[task].append(self.next_example(task))
        else:
            task = self.next_task()
            for _ in range(size):
                by_task[task].append(self.next_example(task))
        return [(task, examples) for task, examples in enumerate(by_task) if examples]


# ---------------------------------------------------------------------------------------
# Data: rows -> token ids and targets.

def read_jsonl(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def infer_labels(values):
    unique = set(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in unique):
        return [str(v) for v in sorted(unique)]
    return sorted(str(v) for v in unique)


class TaskData:
    def __init__(self, task, tokenizer, max_length):
        self.task = task
        kind = task["type"]
        rows = {split: read_jsonl(path) for split, path in task["data"].items() if path}
        if task["labels"] is None and kind != "regression":
            train_labels = [r[task["label"]] for r in rows["train"]]
            flat = [tag for tags in train_labels for tag in tags] if kind == "token_classification" else train_labels
            task["labels"] = infer_labels(flat)
        self.labels = task["labels"]
        self.index = {name: i for i, name in enumerate(self.labels or [])}
        self.splits = {split: self.encode(split_rows, tokenizer, max_length) for split, split_rows in rows.items()}

    def class_index(self, value):
        if isinstance(value, int) and not isinstance(value, bool) and str(value) not in self.index:
            return value
        return self.index[str(value)]

    def encode(self, rows, tokenizer, max_length):
        task, kind = self.task, self.task["type"]
        if kind == "token_classification":
            words = [r[task["words"]] for r in rows]
            encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        elif task["text_pair"]:
            encoding = tokenizer([r[task["text"]] for r in rows], [r[task["text_pair"]] for r in rows],
                                 truncation="longest_first", max_length=max_length)
        else:
            encoding = tokenizer([r[task["text"]] for r in rows], truncation=True, max_length=max_length)
        examples = []
        for i, row in enumerate(rows):
            example = {"input_ids": encoding["input_ids"][i], "token_type_ids": encoding["token_type_ids"][i]}
            label = row[task["label"]]
            if kind == "classification":
                example["target"] = self.class_index(label)
            elif kind == "regression":
                example["target"] = float(label)
            else:
                tags = [self.class_index(tag) for tag in label]
                word_ids = encoding.word_ids(i)
                aligned, first_piece = [], {}
                for position, word in enumerate(word_ids):
                    if word is None or (position > 0 and word_ids[position - 1] == word):
                        aligned.append(IGNORE)
                    else:
                        aligned.append(tags[word])
                        first_piece[word] = position
                example["target"] = aligned
                example["tags"] = tags
                example["first_piece"] = [first_piece.get(w, -1) for w in range(len(tags))]
            examples.append(example)
        return examples


def collate(examples):
    """Dynamic padding to the longest sequence of the batch."""
    longest = max(len(e["input_ids"]) for e in examples)
    ids = torch.zeros(len(examples), longest, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        types[row, :n] = torch.tensor(e["token_type_ids"])
        mask[row, :n] = 1
    return ids, types, mask


# ---------------------------------------------------------------------------------------
# Model: shared encoder + ModuleDict of heads.

def init_linear(linear, std):
    nn.init.normal_(linear.weight, std=std)
    nn.init.zeros_(linear.bias)
    return linear


class SequenceHead(nn.Module):
    """polyhead.classification / polyhead.regression: pool -> dropout -> Linear."""

    def __init__(self, hidden, outputs, options, default_pooling):
        super().__init__()
        if options.get("hidden_size"):
            refuse("heads with a hidden layer")
        self.pooling = options.get("pooling", default_pooling)
        self.dropout = nn.Dropout(float(options.get("dropout", 0)))
        self.output = init_linear(nn.Linear(hidden, outputs), float(options.get("initializer_range", 0.02)))

    def forward(self, states, mask):
        if self.pooling == "cls":
            pooled = states[:, 0]
        elif self.pooling == "mean":
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1)
        else:
            pooled = states.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).max(1).values
        return self.output(self.dropout(pooled))


class TokenHead(nn.Module):
    """polyhead.token_classification: dropout -> Linear on every token."""

    def __init__(self, hidden, outputs, options):
        super().__init__()
        self.dropout = nn.Dropout(float(options.get("dropout", 0)))
        self.output = init_linear(nn.Linear(hidden, outputs), float(options.get("initializer_range", 0.02)))

    def forward(self, states, mask):
        return self.output(self.dropout(states))


class MultiTaskModel(nn.Module):
    def __init__(self, encoder, heads):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    def forward(self, ids, types, mask):
        return self.encoder(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state


def balanced_weights(counts):
    """scikit-learn's compute_class_weight("balanced") over the classes present; absent: 0."""
    total, present = counts.sum(), (counts > 0).sum()
    return np.where(counts > 0, total / (present * np.maximum(counts, 1)), 0.0)


class TaskLoss:
    def __init__(self, data):
        task, kind = data.task, data.task["type"]
        self.kind, self.weight = kind, task["loss_weight"]
        train = data.splits["train"]
        self.class_weights = None
        setting = task["class_weights"]
        if kind != "regression" and setting not in (None, "none"):
            counts = np.zeros(len(data.labels))
            for e in train:
                for t in (e["tags"] if kind == "token_classification" else [e["target"]]):
                    counts[t] += 1
            if setting == "balanced":
                weights = balanced_weights(counts)
            else:
                weights = np.ones(len(data.labels))
                for name, value in setting.items():
                    weights[data.index[str(name)]] = float(value)
            self.class_weights = torch.tensor(weights, dtype=torch.float32)
        self.mean = self.std = 0.0
        if kind == "regression":
            targets = np.array([e["target"] for e in train], dtype=np.float64)
            standardize = bool(task["options"].get("standardize", False))
            self.mean = float(targets.mean()) if standardize else 0.0
            std = float(targets.std()) if standardize else 1.0  # population std, as the plugin
            self.std = std if std > 1e-8 else 1.0

    def __call__(self, outputs, examples):
        if self.kind == "classification":
            targets = torch.tensor([e["target"] for e in examples])
            return nn.functional.cross_entropy(outputs, targets, weight=self.class_weights)
        if self.kind == "regression":
            targets = (torch.tensor([e["target"] for e in examples], dtype=torch.float64) - self.mean) / self.std
            return nn.functional.mse_loss(outputs.squeeze(-1), targets.float())
        targets = torch.full(outputs.shape[:2], IGNORE, dtype=torch.long)
        for row, e in enumerate(examples):
            targets[row, :len(e["target"])] = torch.tensor(e["target"])
        return nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1),
                                           weight=self.class_weights, ignore_index=IGNORE)


# ---------------------------------------------------------------------------------------
# Metrics (docs/config.md, Sources/Training/Metrics).

def correlation(function, gold, predicted):
    if len(gold) < 2 or np.all(gold == gold[0]) or np.all(predicted == predicted[0]):
        return 0.0  # undefined: one side constant
    return float(function(gold, predicted)[0])


def runs_as_iob2(tags, outside="O"):
    """Plain tags: every maximal run of one tag is an entity; written as IOB2 for seqeval."""
    out = []
    for i, tag in enumerate(tags):
        if tag == outside:
            out.append("O")
        elif i > 0 and tags[i - 1] == tag:
            out.append("I-" + tag)
        else:
            out.append("B-" + tag)
    return out


def score(kind, metrics, labels, gold, predicted):
    values = {}
    if kind == "classification":
        for m in metrics:
            values[m] = {"accuracy": lambda: sklearn.metrics.accuracy_score(gold, predicted),
                         "macro_f1": lambda: sklearn.metrics.f1_score(gold, predicted, average="macro"),
                         "micro_f1": lambda: sklearn.metrics.f1_score(gold, predicted, average="micro"),
                         "mcc": lambda: sklearn.metrics.matthews_corrcoef(gold, predicted)}[m]()
    elif kind == "regression":
        gold, predicted = np.asarray(gold, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
        for m in metrics:
            values[m] = {"pearson": lambda: correlation(scipy.stats.pearsonr, gold, predicted),
                         "spearman": lambda: correlation(scipy.stats.spearmanr, gold, predicted),
                         "mse": lambda: sklearn.metrics.mean_squared_error(gold, predicted),
                         "mae": lambda: sklearn.metrics.mean_absolute_error(gold, predicted)}[m]()
    else:
        gold_tags = [[labels[t] for t in s] for s in gold]
        predicted_tags = [[labels[t] for t in s] for s in predicted]
        flat_gold = [t for s in gold_tags for t in s]
        flat_predicted = [t for s in predicted_tags for t in s]
        outside = "O" if "O" in labels else None
        bio = all(t.startswith(("B-", "I-")) for t in labels if t != outside) and any(t != outside for t in labels)
        for m in metrics:
            if m == "accuracy":
                values[m] = sklearn.metrics.accuracy_score(flat_gold, flat_predicted)
            elif m == "token_f1":
                inside = sorted((set(flat_gold) | set(flat_predicted)) - {outside})
                values[m] = sklearn.metrics.f1_score(flat_gold, flat_predicted, labels=inside, average="micro",
                                                     zero_division=0) if inside else 0.0
            elif m == "entity_f1":
                if outside is None:
                    refuse("entity_f1 without an outside tag")
                g = gold_tags if bio else [runs_as_iob2(s) for s in gold_tags]
                p = predicted_tags if bio else [runs_as_iob2(s) for s in predicted_tags]
                values[m] = float(seqeval.metrics.f1_score(g, p, zero_division=0))
    return {m: float(v) for m, v in values.items()}


@torch.inference_mode()
def evaluate(model, datasets, losses, split, batch_size=64):
    model.eval()
    report = {}
    for name, data in datasets.items():
        examples = data.splits.get(split)
        if not examples:
            continue
        kind = data.task["type"]
        gold, predicted = [], []
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            ids, types, mask = collate(chunk)
            outputs = model.heads[name](model(ids, types, mask), mask)
            if kind == "classification":
                gold += [e["target"] for e in chunk]
                predicted += outputs.argmax(-1).tolist()
            elif kind == "regression":
                gold += [e["target"] for e in chunk]
                predicted += (outputs.squeeze(-1).double() * losses[name].std + losses[name].mean).tolist()
            else:
                best = outputs.argmax(-1)
                outside = data.index.get("O", 0)
                for row, e in enumerate(chunk):
                    gold.append(e["tags"])
                    # A word whose pieces were all truncated away is predicted "O".
                    predicted.append([int(best[row, p]) if p >= 0 else outside for p in e["first_piece"]])
        report[name] = score(kind, data.task["metrics"], data.labels, gold, predicted)
    model.train()
    primaries = [report[n][datasets[n].task["metrics"][0]] for n in report]
    return report, (sum(primaries) / len(primaries) if primaries else 0.0)


# ---------------------------------------------------------------------------------------

def lr_lambda(kind, warmup, total):
    def constant(step):
        return min(1.0, step / warmup) if warmup and step < warmup else 1.0
    def linear(step):
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    def cosine(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))
    return {"constant": constant, "linear": linear, "cosine": cosine}[kind]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=os.path.join(ROOT, "examples/wordnet/config.yaml"))
    parser.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/recipe/torch_wordnet_results.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-seed", type=int,
                        help="seed PyTorch (head initialisation, dropout) with this instead of training.seed; the sampler "
                             "keeps training.seed, so the batches stay the same: measures the run-to-run noise that "
                             "separates Polyhead from this reference")
    parser.add_argument("--steps", type=int, help="override training.steps (for a quick try; the fixture uses the config)")
    args = parser.parse_args()
    os.chdir(ROOT)  # config paths are relative to the repository root

    run, config_hash = load_config(args.config)
    torch.set_num_threads(args.threads)
    torch_seed = run["seed"] if args.torch_seed is None else args.torch_seed
    torch.manual_seed(torch_seed)
    started = time.perf_counter()
    load_at_start = os.getloadavg()

    tokenizer = AutoTokenizer.from_pretrained(run["model"])
    datasets = {t["name"]: TaskData(t, tokenizer, run["max_length"]) for t in run["tasks"]}
    names = list(datasets)
    encoder = AutoModel.from_pretrained(run["model"], add_pooling_layer=False)
    hidden = encoder.config.hidden_size
    heads = {}
    for name, data in datasets.items():
        task = data.task
        if task["type"] == "classification":
            heads[name] = SequenceHead(hidden, len(data.labels), task["options"], "cls")
        elif task["type"] == "regression":
            heads[name] = SequenceHead(hidden, int(task["options"].get("outputs", 1)), task["options"], "mean")
        else:
            heads[name] = TokenHead(hidden, len(data.labels), task["options"])
    model = MultiTaskModel(encoder, heads)
    model.train()
    losses = {name: TaskLoss(data) for name, data in datasets.items()}

    # AdamW groups: encoder and heads, each with decayed weights and never-decayed biases and
    # LayerNorm weights.
    def split_decay(module):
        decay, no_decay = [], []
        for parameter_name, parameter in module.named_parameters():
            (no_decay if parameter_name.endswith("bias") or "LayerNorm" in parameter_name else decay).append(parameter)
        return decay, no_decay
    groups = []
    for module, (lr, weight_decay) in ((model.encoder, run["encoder_group"]), (model.heads, run["heads_group"])):
        decay, no_decay = split_decay(module)
        groups += [{"params": decay, "lr": lr, "weight_decay": weight_decay},
                   {"params": no_decay, "lr": lr, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, betas=run["betas"], eps=run["eps"])

    sampler = TaskSampler([len(datasets[n].splits["train"]) for n in names], run["strategy"], run["temperature"],
                          [datasets[n].task["oversample"] for n in names], [datasets[n].task["cap"] for n in names], run["seed"])
    steps_per_epoch = -(-sampler.epoch_size // run["batch_size"])
    total_steps = args.steps or run["steps"] or (run["epochs"] or 3) * steps_per_epoch
    if run["warmup_steps"] is not None:
        warmup = int(run["warmup_steps"])
    else:
        warmup = math.ceil((run["warmup_ratio"] or 0) * total_steps)
    if run["schedule"] == "linear":
        scheduler = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(run["schedule"], warmup, total_steps))
    eval_interval = run["eval_interval"] or steps_per_epoch
    parameters = [p for g in groups for p in g["params"]]
    print(f"wordnet_recipe: {len(names)} tasks {names}, {total_steps} steps of {run['batch_size']} "
          f"({steps_per_epoch} steps/epoch), warmup {warmup}, sampling p={[round(p, 4) for p in sampler.probabilities]}, "
          f"torch {torch.__version__}, {args.threads} threads", file=sys.stderr, flush=True)

    setup_seconds = time.perf_counter() - started
    train_seconds = eval_seconds = train_cpu_seconds = 0.0
    real_tokens = padded_tokens = 0
    task_examples = {n: 0 for n in names}
    history, window = [], []
    for step in range(1, total_steps + 1):
        tick, cpu_tick = time.perf_counter(), time.process_time()
        parts = sampler.next_batch(run["batch_size"], run["mixing"])
        batch = [(names[t], datasets[names[t]].splits["train"][i]) for t, examples in parts for i in examples]
        ids, types, mask = collate([e for _, e in batch])
        real_tokens += int(mask.sum())
        padded_tokens += mask.numel()
        states = model(ids, types, mask)
        total, row = 0.0, 0
        for t, examples in parts:
            name, count = names[t], len(examples)
            rows = slice(row, row + count)
            outputs = model.heads[name](states[rows], mask[rows])
            loss = losses[name](outputs, [e for _, e in batch[rows]])
            total = total + losses[name].weight * loss
            task_examples[name] += count
            row += count
        total.backward()
        if run["clip_norm"] is not None:
            torch.nn.utils.clip_grad_norm_(parameters, float(run["clip_norm"]))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        train_seconds += time.perf_counter() - tick
        train_cpu_seconds += time.process_time() - cpu_tick
        window.append(total.item())
        if step % run["log_interval"] == 0:
            print(f"step {step}/{total_steps} loss {np.mean(window):.4f} lr {scheduler.get_last_lr()[0]:.3g} "
                  f"{real_tokens / train_seconds:.0f} tokens/s", file=sys.stderr, flush=True)
            window = []
        if step % eval_interval == 0 or step == total_steps:
            tick = time.perf_counter()
            report, overall = evaluate(model, datasets, losses, "dev")
            eval_seconds += time.perf_counter() - tick
            history.append({"step": step, "overall": overall, "tasks": report})
            print(f"dev @ {step}: overall {overall:.4f} " + json.dumps(report), file=sys.stderr, flush=True)

    tick = time.perf_counter()
    test, test_overall = evaluate(model, datasets, losses, "test")
    test_seconds = time.perf_counter() - tick
    wall = time.perf_counter() - started
    for name in names:
        print(f"test {name}: " + ", ".join(f"{m} {v:.4f}" for m, v in test[name].items()), file=sys.stderr)

    result = {
        "what": "test metrics of the final weights after training the examples/wordnet run config in PyTorch + transformers (scripts/reference/wordnet_recipe.py)",
        "config": os.path.relpath(os.path.abspath(args.config), ROOT),
        "config_sha256": config_hash,
        "steps": total_steps, "batch_size": run["batch_size"], "warmup_steps": warmup, "seed": run["seed"], "torch_seed": torch_seed,
        "sampling_probabilities": dict(zip(names, sampler.probabilities)),
        "examples_drawn": task_examples,
        "test": test, "test_overall": test_overall,
        "dev_history": history,
        "timing": {
            "train_seconds": train_seconds, "dev_eval_seconds": eval_seconds, "test_eval_seconds": test_seconds,
            "setup_seconds": setup_seconds, "wall_seconds": wall,
            "train_tokens": real_tokens, "train_padded_tokens": padded_tokens,
            "train_tokens_per_second": real_tokens / train_seconds,
            "train_padded_tokens_per_second": padded_tokens / train_seconds,
            "train_steps_per_second": total_steps / train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
            "train_tokens_per_cpu_second": real_tokens / train_cpu_seconds,
        },
        "machine": {"load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
                    "note": "wall times are only comparable with a Polyhead run on an otherwise idle machine; train_cpu_seconds is less sensitive to other load",
                    "threads": args.threads, "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
                     "seqeval": getattr(seqeval, "__version__", "1.2.2"), "pyyaml": yaml.__version__},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
        handle.write("\n")
    os.replace(args.out + ".tmp", args.out)
    print(f"wordnet_recipe: wrote {os.path.relpath(args.out, ROOT)}; training {train_seconds:.0f} s "
          f"({real_tokens / train_seconds:.0f} tokens/s), wall {wall:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
