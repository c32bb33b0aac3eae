#!/usr/bin/env python3
"""Safetensors interop between Python's reference library and Polyhead's Swift module.

Run from the repository root:
    /tmp/phvenv/bin/python scripts/reference/safetensors_check.py

1. Writes Tests/Fixtures/safetensors/python_written.safetensors (F32, F16, BF16, I64 and
   metadata) plus python_written.json, which holds the expected Float values as float32 bit
   patterns widened by numpy (F16) and torch (BF16), independent of the Swift converter.
2. Reads Tests/Fixtures/safetensors/polyhead_written.safetensors (written by the Swift writer
   from polyhead_written.json), checks every value and the metadata with Python's
   safetensors, and checks that Python's own writer lays out the same inputs identically
   (same header entries in the same order, same padding, same data bytes).
3. When the MiniLM checkpoint is present (POLYHEAD_MODEL_DIR or models/all-MiniLM-L6-v2),
   writes minilm_spot_values.json: tensor names in offset order and, for a few tensors,
   shape, dtype, leading values and the float64 sum, for the Swift test to compare.

Exits non-zero on any mismatch.
"""
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as numpy_load_file
from safetensors.numpy import save as numpy_save
from safetensors.torch import save_file as torch_save_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures" / "safetensors"
VERSIONS = {
    "python": platform.python_version(),
    "safetensors": safetensors.__version__,
    "numpy": np.__version__,
    "torch": torch.__version__,
}


def float32_bits(array: np.ndarray) -> list:
    return [int(b) for b in np.ascontiguousarray(array, dtype=np.float32).reshape(-1).view(np.uint32)]


def write_python_fixture() -> None:
    # Bit patterns chosen to hit every branch of a 16-bit widening: zeros, smallest and
    # largest subnormal, smallest normal, one, largest finite, infinities, quiet and
    # signalling NaN with payload, and negative counterparts.
    f16_special = np.array(
        [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x3555, 0x7BFF,
         0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE01], dtype=np.uint16)
    bf16_special = np.array(
        [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x3F80, 0xBF80, 0x3DCD, 0x7F7F, 0xFF7F,
         0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1], dtype=np.uint16)
    generator = np.random.default_rng(20240601)
    f16_random = generator.standard_normal(8).astype(np.float16)
    bf16_random = torch.from_numpy(generator.standard_normal(8).astype(np.float32)).to(torch.bfloat16)
    f32_values = np.array([[0.0, -0.0, 1.0, -2.5], [1e-45, 3.4028235e38, np.inf, np.nan]], dtype=np.float32)
    i64_values = np.array([[np.iinfo(np.int64).min, -1], [0, np.iinfo(np.int64).max]], dtype=np.int64)

    f16_special_values = f16_special.view(np.float16)
    tensors = {
        "f32.values": torch.from_numpy(f32_values),
        "f32.scalar": torch.tensor(0.25, dtype=torch.float32),
        "f32.empty": torch.zeros((0, 3), dtype=torch.float32),
        "f16.special": torch.from_numpy(f16_special_values.copy()),
        "f16.random": torch.from_numpy(f16_random.reshape(2, 4)),
        "bf16.special": torch.from_numpy(bf16_special.view(np.int16).copy()).view(torch.bfloat16),
        "bf16.random": bf16_random.reshape(4, 2),
        "i64.values": torch.from_numpy(i64_values),
    }
    metadata = {"format": "pt", "producer": "scripts/reference/safetensors_check.py", "note": "mąka ✓ \"quoted\""}
    torch_save_file(tensors, str(FIXTURES / "python_written.safetensors"), metadata=metadata)

    expected = {}
    for name, tensor in tensors.items():
        entry = {"shape": list(tensor.shape)}
        if tensor.dtype == torch.int64:
            entry["dtype"] = "I64"
            entry["int64"] = [str(int(v)) for v in tensor.reshape(-1).tolist()]
        else:
            if tensor.dtype == torch.float16:
                entry["dtype"] = "F16"
                entry["source_bits"] = [int(b) for b in tensor.numpy().reshape(-1).view(np.uint16)]
                widened = tensor.numpy().astype(np.float32)  # numpy keeps NaN payloads
            elif tensor.dtype == torch.bfloat16:
                entry["dtype"] = "BF16"
                entry["source_bits"] = [int(b) & 0xFFFF for b in tensor.view(torch.int16).reshape(-1).tolist()]
                widened = tensor.float().numpy()
            else:
                entry["dtype"] = "F32"
                widened = tensor.numpy()
            entry["float32_bits"] = float32_bits(widened)
        expected[name] = entry
    sidecar = {
        "about": "Expected contents of python_written.safetensors, written by scripts/reference/safetensors_check.py. Floats are float32 bit patterns (F16 widened by numpy, BF16 by torch).",
        "versions": VERSIONS,
        "metadata": metadata,
        "tensors": expected,
    }
    (FIXTURES / "python_written.json").write_text(json.dumps(sidecar, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {FIXTURES / 'python_written.safetensors'} ({len(tensors)} tensors)")


def check_polyhead_fixture() -> list:
    problems = []
    inputs = json.loads((FIXTURES / "polyhead_written.json").read_text())
    path = FIXTURES / "polyhead_written.safetensors"
    if not path.exists():
        return [f"{path} is missing: run `POLYHEAD_WRITE_FIXTURES=1 swift test --filter SafeTensorsTests` first"]
    loaded = numpy_load_file(str(path))
    with safe_open(str(path), framework="numpy") as handle:
        if handle.metadata() != inputs["metadata"]:
            problems.append(f"metadata differs: {handle.metadata()!r} vs {inputs['metadata']!r}")
    if set(loaded) != {t["name"] for t in inputs["tensors"]}:
        problems.append(f"tensor names differ: {sorted(loaded)}")
    expected_arrays = {}
    for tensor in inputs["tensors"]:
        name = tensor["name"]
        if tensor["dtype"] == "I64":
            expected = np.array([int(v) for v in tensor["int64"]], dtype=np.int64).reshape(tensor["shape"])
        else:
            expected = np.array(tensor["float32_bits"], dtype=np.uint32).view(np.float32).reshape(tensor["shape"])
        expected_arrays[name] = expected
        actual = loaded.get(name)
        if actual is None:
            continue
        if actual.dtype != expected.dtype or list(actual.shape) != tensor["shape"]:
            problems.append(f"{name}: {actual.dtype} {list(actual.shape)}, expected {expected.dtype} {tensor['shape']}")
        elif actual.tobytes() != expected.tobytes():
            problems.append(f"{name}: values differ: {actual!r} vs {expected!r}")
    # The Swift writer follows the reference layout, so Python's writer must lay out the same
    # tensors in the same order with the same data bytes. Only the metadata key order may
    # differ: the reference keeps metadata in a hash map, so its order changes run to run.
    python_layout = split_file(numpy_save(expected_arrays, metadata=inputs["metadata"]))
    polyhead_layout = split_file(path.read_bytes())
    if python_layout != polyhead_layout:
        problems.append("Python's safetensors writer lays out the same inputs differently:\n"
                        f"  python:   {python_layout[:2]}\n  polyhead: {polyhead_layout[:2]}")
    print(f"checked {path}: {len(loaded)} tensors, metadata, and layout identical to Python's writer")
    return problems


def split_file(content: bytes) -> tuple:
    """(header length, tensor entries in header order, metadata, data bytes) of a file."""
    header_length = int.from_bytes(content[:8], "little")
    header = json.loads(content[8:8 + header_length])
    metadata = header.pop("__metadata__", None)
    return header_length, list(header.items()), metadata, content[8 + header_length:]


def write_minilm_spot_values() -> None:
    model_directory = Path(os.environ.get("POLYHEAD_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))
    path = model_directory / "model.safetensors"
    if not path.exists():
        print(f"skipped MiniLM spot values: {path} not found (run scripts/setup)")
        return
    chosen = ["embeddings.word_embeddings.weight", "embeddings.position_ids",
              "encoder.layer.0.attention.self.query.weight", "pooler.dense.bias"]
    spots = {}
    with safe_open(str(path), framework="numpy") as handle:
        header_length = int.from_bytes(path.open("rb").read(8), "little")
        header = json.loads(path.open("rb").read(8 + header_length)[8:])
        header.pop("__metadata__", None)
        names = sorted(header, key=lambda n: (header[n]["data_offsets"], n))
        for name in chosen:
            array = handle.get_tensor(name)
            entry = {"dtype": header[name]["dtype"], "shape": list(array.shape), "sum": float(array.astype(np.float64).sum())}
            if array.dtype == np.int64:
                entry["leading_int64"] = [str(int(v)) for v in array.reshape(-1)[:8]]
            else:
                entry["leading_float32_bits"] = float32_bits(array.reshape(-1)[:8])
            spots[name] = entry
        metadata = handle.metadata()
    result = {
        "about": "Spot values of all-MiniLM-L6-v2 model.safetensors read by Python's safetensors; written by scripts/reference/safetensors_check.py.",
        "versions": VERSIONS,
        "metadata": metadata,
        "names_in_offset_order": names,
        "tensors": spots,
    }
    (FIXTURES / "minilm_spot_values.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {FIXTURES / 'minilm_spot_values.json'} ({len(names)} tensor names, {len(spots)} spot tensors)")


def main() -> int:
    print("versions:", json.dumps(VERSIONS))
    FIXTURES.mkdir(parents=True, exist_ok=True)
    write_python_fixture()
    problems = check_polyhead_fixture()
    write_minilm_spot_values()
    for problem in problems:
        print("MISMATCH:", problem, file=sys.stderr)
    if not problems:
        print("all checks passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
