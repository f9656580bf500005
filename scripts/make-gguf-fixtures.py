#!/usr/bin/env python3
"""GGUF fixtures checked by saferlhf-model's tests, written with the `gguf` package (llama.cpp's own
Python reader and writer, PyPI `gguf==0.19.0`).

1. ``tests/fixtures/gguf/quants.gguf`` and ``quants.json``: for each quantisation saferlhf decodes
   (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) one tensor of ``BLOCKS`` random
   blocks (seeded; every byte random except the f16 scales, drawn as finite values), and the f32
   values ``gguf.quants.dequantize`` (NumPy) gives for it, as exact decimal floats.
2. ``tests/fixtures/gguf/tiny-qwen2.gguf`` and ``tiny-qwen3.gguf``: the transformers fixtures
   ``tests/fixtures/tiny-qwen2`` / ``tiny-qwen3`` converted as llama.cpp's converter names and
   lays them out (tensor names from ``gguf.get_tensor_name_map``, which the converter uses; Qwen
   q/k rows kept in the rotate-half layout; metadata keys ``qwen2.*`` / ``qwen3.*``), in F32, so
   the GGUF loader's logits can be compared with the recorded transformers logits. No tokenizer
   metadata: the tests load the model part only.

Run with the venv of scripts/requirements-fixtures.txt plus ``pip install gguf==0.19.0``::

    /tmp/hf-fixtures-venv/bin/python scripts/make-gguf-fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "gguf"
SEED = 20261206
BLOCKS = 3

# Byte offsets of the f16 scale fields in each block (ggml-common.h).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def quants():
    rng = np.random.default_rng(SEED)
    writer = gguf.GGUFWriter(str(OUT / "quants.gguf"), arch="saferlhf-quant-test")
    expected = {}
    for qtype, fields in F16_FIELDS.items():
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(BLOCKS, size), dtype=np.uint8)
        for at in fields:
            scale = rng.normal(0, 0.05, size=BLOCKS).astype(np.float16)
            raw[:, at:at + 2] = scale.view(np.uint8).reshape(BLOCKS, 2)
        values = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
        assert np.isfinite(values).all()
        name = qtype.name
        # One row of BLOCKS blocks: shape [1, n] in PyTorch order (the writer takes the byte shape).
        n = BLOCKS * block
        writer.add_tensor(name, raw.reshape(1, -1), raw_dtype=qtype)
        expected[name] = {"shape": [1, n], "values": [float(v) for v in values]}
        print(f"{name}: {BLOCKS} blocks of {block}, |x| <= {np.abs(values).max():.3f}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (OUT / "quants.json").write_text(json.dumps({
        "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
        "seed": SEED, "tensors": expected}) + "\n")


def family(name: str, arch: gguf.MODEL_ARCH, prefix: str):
    src = ROOT / "tests" / "fixtures" / name
    config = json.loads((src / "config.json").read_text())
    tensors = {}
    for shard in sorted(src.glob("*.safetensors")):
        for key, value in load_file(str(shard)).items():
            tensors[key] = value.float().numpy()
    n_layers = config["num_hidden_layers"]
    names = gguf.get_tensor_name_map(arch, n_layers)
    writer = gguf.GGUFWriter(str(OUT / f"{name}.gguf"), arch=prefix)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    if config.get("head_dim"):
        writer.add_key_length(config["head_dim"])
        writer.add_value_length(config["head_dim"])
    for key in sorted(tensors):
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        assert target is not None, key
        # bf16 checkpoints are widened to f32 here; saferlhf loads them in f32 either way.
        writer.add_tensor(target, tensors[key].astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{name}.gguf: {len(tensors)} tensors")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    quants()
    family("tiny-qwen2", gguf.MODEL_ARCH.QWEN2, "qwen2")
    family("tiny-qwen3", gguf.MODEL_ARCH.QWEN3, "qwen3")


if __name__ == "__main__":
    main()
