#!/usr/bin/env python3
"""Writes the encoder's parity fixtures (Tests/Fixtures/encoder/) with PyTorch + transformers.

Rerun (from the repository root, after scripts/setup has placed the model):
    /tmp/phvenv/bin/python scripts/reference/encoder_fixtures.py [--model models/all-MiniLM-L6-v2]
Pinned versions this was run with (recorded in every fixture's metadata):
    torch 2.15.0, transformers 5.24.0, sentence-transformers 6.2.0, safetensors 0.8.0, numpy 2.4.6
Also: `--fit-erf` prints the rational fit behind Sources/Kernels/VectorMath.swift's erf8.

Fixtures (arrays in safetensors; hidden states and gradients computed in float64 from the
float32 weights, so they measure Polyhead's error alone):
  tiny-bert/{config.json,model.safetensors}  a seeded random 2-layer BERT (hidden 32, 4 heads,
      intermediate 64, vocab 99, max positions 64), saved with its pooler (which the loader
      must ignore).
  tiny-bert-expected.safetensors  a padded batch (input_ids, token_type_ids, attention_mask
      [B, T]), last_hidden_state [B, T, 32], a random output_gradient [B, T, 32] (zero on
      padding) and grad.<name> for every encoder parameter (dropout off).
  minilm-sentences.jsonl  real sentences (WordNet 3.0 noun glosses, one long one over 256
      tokens), {"text": ...} per line.
  minilm-expected.safetensors  those sentences tokenized like sentence-transformers
      (max_seq_length 256), packed: input_ids, token_type_ids [N], sequence_offsets [B + 1];
      last_hidden_state [N, 384] on real tokens; st_embeddings [B, 384] from
      SentenceTransformer.encode(normalize_embeddings=True) in float32.
  minilm-gradients.safetensors  3 short sentences packed, output_gradient [N, 384], and the
      gradients of representative tensors: layer 0 query weight, layer 3 intermediate bias,
      layer 5 output LayerNorm, embeddings LayerNorm, token type table, the position rows
      used, and the word-embedding rows used (word_rows lists them).

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. (WordNet licence:
/usr/share/wordnet; the glosses are used unmodified as test text.)
"""
import argparse, json, os, sys

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "encoder")


def versions():
    import transformers, safetensors, sentence_transformers
    return {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "safetensors": safetensors.__version__, "numpy": np.__version__,
        "command": "python scripts/reference/encoder_fixtures.py",
    }


def save(path, tensors, note):
    from safetensors.numpy import save_file
    meta = versions()
    meta["note"] = note
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata=meta)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def packed(input_ids, token_type_ids, mask):
    """Packs a right-padded batch: real tokens end to end and B + 1 offsets."""
    lengths = mask.sum(1).tolist()
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    keep = mask.bool()
    return input_ids[keep].numpy().astype(np.int64), token_type_ids[keep].numpy().astype(np.int64), offsets, keep


def tiny():
    from transformers import BertConfig, BertModel
    torch.manual_seed(1234)
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
                        hidden_act="gelu", initializer_range=0.2, layer_norm_eps=1e-12)
    model = BertModel(config, add_pooling_layer=True)
    # BERT's init leaves biases at 0 and LayerNorm at (1, 0): randomise them too so every
    # parameter matters to the comparison.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0, 0.1)
            elif "LayerNorm.weight" in name:
                parameter.copy_(1 + 0.2 * torch.randn_like(parameter))
    model_dir = os.path.join(OUT, "tiny-bert")
    model.save_pretrained(model_dir, safe_serialization=True)
    print(f"wrote {os.path.relpath(model_dir, ROOT)}/")

    lengths = [7, 16, 3, 11]
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(1, config.vocab_size, (length,))
        mask[row, :length] = 1
        if length > 5:  # a sentence pair: the second segment has type 1
            types[row, length // 2:length] = 1

    reference = BertModel.from_pretrained(model_dir, attn_implementation="eager").double().eval()
    output = reference(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    upstream = torch.randn(output.shape, dtype=torch.float64) * mask.unsqueeze(-1)
    (output * upstream).sum().backward()
    tensors = {
        "input_ids": ids.numpy().astype(np.int64), "token_type_ids": types.numpy().astype(np.int64),
        "attention_mask": mask.numpy().astype(np.int64),
        "last_hidden_state": output.detach().float().numpy(),
        "output_gradient": upstream.float().numpy(),
    }
    for name, parameter in reference.named_parameters():
        if name.startswith("pooler."):
            continue  # not in the graph of last_hidden_state
        tensors["grad." + name] = parameter.grad.float().numpy()
    save(os.path.join(OUT, "tiny-bert-expected.safetensors"), tensors,
         "float64 eval forward/backward of tiny-bert; loss = sum(last_hidden_state * output_gradient)")


def wordnet_glosses():
    glosses = []
    with open("/usr/share/wordnet/data.noun", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            glosses.append(line.split("|", 1)[1].strip())
    return glosses


def minilm(model_dir):
    from transformers import AutoModel, AutoTokenizer
    from sentence_transformers import SentenceTransformer
    glosses = wordnet_glosses()
    # Every 3301st gloss: a spread of topics and lengths, reproducible.
    sentences = [glosses[i] for i in range(17, len(glosses), 3301)][:24]
    # One text far over max_seq_length (256) to pin truncation.
    sentences.append(" ".join(glosses[5000:5030]))
    with open(os.path.join(OUT, "minilm-sentences.jsonl"), "w", encoding="utf-8") as handle:
        for sentence in sentences:
            handle.write(json.dumps({"text": sentence}, ensure_ascii=False) + "\n")
    print(f"wrote Tests/Fixtures/encoder/minilm-sentences.jsonl ({len(sentences)} lines)")

    st = SentenceTransformer(model_dir, device="cpu")
    max_length = st.max_seq_length
    embeddings = st.encode(sentences, normalize_embeddings=True, convert_to_numpy=True, batch_size=8)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").double().eval()
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        hidden32 = AutoModel.from_pretrained(model_dir).eval()(**batch).last_hidden_state.double()
    ids, types, offsets, keep = packed(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    print(f"  {len(sentences)} sentences, {len(ids)} tokens, longest {int(np.diff(offsets).max())};"
          f" torch float32 vs float64 max abs diff {float((hidden32 - hidden)[keep].abs().max()):.2e}")
    save(os.path.join(OUT, "minilm-expected.safetensors"), {
        "input_ids": ids, "token_type_ids": types, "sequence_offsets": offsets,
        "last_hidden_state": hidden[keep].float().numpy(),
        "st_embeddings": embeddings.astype(np.float32),
    }, f"all-MiniLM-L6-v2 on minilm-sentences.jsonl; max_seq_length {max_length}; hidden states float64")

    # (c) one backward step on three short sentences.
    short = [s for s in sentences if len(tokenizer(s)["input_ids"]) <= 14][:3]
    batch = tokenizer(short, padding=True, return_tensors="pt")
    model.zero_grad()
    output = model(**batch).last_hidden_state
    generator = torch.Generator().manual_seed(99)
    upstream = torch.randn(output.shape, dtype=torch.float64, generator=generator) * batch["attention_mask"].unsqueeze(-1)
    (output * upstream).sum().backward()
    ids, types, offsets, keep = packed(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    params = dict(model.named_parameters())
    rows = np.unique(ids)
    longest = int(np.diff(offsets).max())
    tensors = {
        "input_ids": ids, "token_type_ids": types, "sequence_offsets": offsets,
        "output_gradient": upstream[keep].float().numpy(), "word_rows": rows,
        "grad.embeddings.word_embeddings.weight.rows": params["embeddings.word_embeddings.weight"].grad[rows].float().numpy(),
        "grad.embeddings.position_embeddings.weight.rows": params["embeddings.position_embeddings.weight"].grad[:longest].float().numpy(),
    }
    for name in ["encoder.layer.0.attention.self.query.weight", "encoder.layer.3.intermediate.dense.bias",
                 "encoder.layer.5.output.LayerNorm.weight", "encoder.layer.5.output.LayerNorm.bias",
                 "embeddings.LayerNorm.weight", "embeddings.token_type_embeddings.weight"]:
        tensors["grad." + name] = params[name].grad.float().numpy()
    save(os.path.join(OUT, "minilm-gradients.safetensors"), tensors,
         "float64 eval forward/backward; loss = sum(last_hidden_state * output_gradient); position rows 0..longest-1")


def fit_erf():
    """The rational fit behind VectorMath.swift's erf8: erf(x) = x P(x^2) / Q(x^2) on
    [0, 3.92], P degree 6, Q degree 5 with Q(0) = 1; linearised least squares on Chebyshev
    nodes, reweighted toward minimax (Lawson), mpmath as the truth."""
    import mpmath as mp
    mp.mp.dps = 30
    limit = 3.92
    x = np.unique(np.cos(np.linspace(0, np.pi, 6000)) * limit / 2 + limit / 2)
    y = np.array([float(mp.erf(v)) for v in x])
    s = x ** 2
    weights = np.ones_like(x)
    for iteration in range(30):
        # erf(x) Q(s) - x P(s) = 0 is linear in the coefficients once Q(0) = 1.
        a = np.concatenate([np.stack([x * s ** k for k in range(7)], 1), -np.stack([y * s ** k for k in range(1, 6)], 1)], 1)
        coefficients, *_ = np.linalg.lstsq(a * weights[:, None], y * weights, rcond=None)
        p, q = coefficients[:7], np.concatenate([[1.0], coefficients[7:]])
        error = x * np.polyval(p[::-1], s) / np.polyval(q[::-1], s) - y
        if iteration > 0:
            weights = weights * np.sqrt(np.abs(error) / np.abs(error).max() + 1e-3)
            weights /= weights.max()
    print("max abs error (double): %.2e" % np.abs(error).max())
    print("P (s^0..s^6):", ", ".join("%.10e" % c for c in p))
    print("Q (s^0..s^5):", ", ".join("%.10e" % c for c in q))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    parser.add_argument("--fit-erf", action="store_true")
    args = parser.parse_args()
    if args.fit_erf:
        fit_erf()
        sys.exit(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    tiny()
    minilm(args.model)
