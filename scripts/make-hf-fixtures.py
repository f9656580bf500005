#!/usr/bin/env python3
"""Generate golden Hugging Face `transformers` fixtures for saferlhf's Llama logit-parity tests.

What it writes
--------------
For every model spec in ``MODELS`` below, a folder ``tests/fixtures/<name>/`` with:

* ``config.json``        -- ``LlamaForCausalLM.save_pretrained`` config (transformers' own format).
* ``model.safetensors``  -- ``save_pretrained(safe_serialization=True)`` weights, float32, Hugging Face
                            tensor names (``model.embed_tokens.weight``, ``model.layers.0.self_attn.q_proj.weight``,
                            ``model.norm.weight``, ``lm_head.weight`` only when untied).
* ``generation_config.json`` -- written by ``save_pretrained`` as well (not needed by the Rust test).
* ``expected.json``      -- inputs and reference outputs (schema below).

The models are tiny, randomly initialised (seeded) ``LlamaForCausalLM`` s in float32 with
``attn_implementation="eager"``.  Weights are re-initialised with a larger std than HF's default
(0.02) and the RMSNorm weights are drawn from U(0.5, 1.5), so that mistakes in RMSNorm, RoPE, GQA
head grouping or padding masks change the logits visibly, while logits stay O(1..10).

expected.json schema
--------------------
::

    {
      "meta": {"torch": str, "transformers": str, "safetensors": str, "numpy": str, "python": str,
               "seed": int, "dtype": "float32", "attn_implementation": "eager",
               "init": str, "position_ids_convention": str, "script": str},
      "pad_token_id": 0,
      "padding_side": "left",
      "lengths": [int, ...],                  # real (unpadded) length of each row
      "input_ids": [[int]] [batch, seq],      # left padded with 0
      "attention_mask": [[int]] [batch, seq], # 1 = real token, 0 = pad
      "position_ids": [[int]] [batch, seq],   # cumsum(mask)-1, 0 at pads (what HF generate uses)
      "logits": [[[float]]] [batch, seq, vocab],   # forward(input_ids, attention_mask, position_ids)
      "logprobs": [[float]] [batch, seq-1],   # log_softmax(logits[:, :-1])[b, t, input_ids[b, t+1]]
      "logprobs_mask": [[int]] [batch, seq-1],# 1 where both t and t+1 are real tokens
      "generate": {
        "max_new_tokens": 8, "do_sample": false, "pad_token_id": 0, "eos_token_id": null,
        "sequences": [[int]] [batch, seq+8],  # model.generate output (prompt + new tokens)
        "new_tokens": [[int]] [batch, 8]
      }
    }

Only logits at non-pad positions are meaningful for parity (pad-position logits depend on how a
fully-masked attention row is treated), but all are stored.  Floats are rounded to 7 significant
digits.

Position ids (left padding)
---------------------------
transformers' ``GenerationMixin._prepare_position_ids_for_generation`` computes
``position_ids = attention_mask.cumsum(-1) - 1`` then ``masked_fill(attention_mask == 0, 0)``,
i.e. the first real token of every row has position 0 and pad slots have position 0.  Each new
token during generation gets ``last_position + 1``.  The same ``position_ids`` are passed to the
plain forward that produced ``logits``, so ``logits`` and ``generate`` agree.  (RoPE attention
only sees relative positions, so any per-row constant shift -- e.g. arange(seq) over the padded
row -- gives the same real-position logits up to float rounding; the fixtures cannot tell such
conventions apart, but they do pin down the padding mask.)

How to run
----------
Only PyPI is needed.  The PyPI Linux torch wheel is the CUDA build: it runs on CPU without a GPU,
but ``import torch`` fails unless its nvidia-* dependencies are installed, so install normally
(~4.6 GB venv; keep it outside the repo) and optionally drop the compiler-only packages::

    python3 -m venv /tmp/hf-fixtures-venv
    /tmp/hf-fixtures-venv/bin/pip install -r scripts/requirements-fixtures.txt
    /tmp/hf-fixtures-venv/bin/pip uninstall -y triton cuda-bindings cuda-pathfinder nvidia-cuda-cccl  # optional
    /tmp/hf-fixtures-venv/bin/python scripts/make-hf-fixtures.py            # writes tests/fixtures/
    /tmp/hf-fixtures-venv/bin/python scripts/make-hf-fixtures.py --check    # regenerate in memory, verify only

The script also self-checks (and exits non-zero on failure):
* reloading ``model.safetensors`` with ``from_pretrained`` reproduces the logits exactly;
* each row's logits at real positions equal those of the same row run alone, unpadded
  (positions 0..len-1, no mask), to 1e-5;
* ``generate`` equals a manual greedy loop over full (no-KV-cache) forwards with the same
  position-id convention, and each row's batched generation equals its unpadded generation;
* an independent NumPy float64 forward (``numpy_reference_logits``, reading only config.json and
  model.safetensors) matches the torch logits at real positions to 1e-4.
Re-running produces byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

SEED = 20240611
PAD_ID = 0
LENGTHS = [9, 5, 2]  # real lengths of the 3 rows; the batch is left padded to max(LENGTHS)
MAX_NEW_TOKENS = 8
WEIGHT_STD = 0.2  # std of every Linear / Embedding weight
NORM_LOW, NORM_HIGH = 0.5, 1.5  # RMSNorm weights ~ U(NORM_LOW, NORM_HIGH)
TOL = 1e-5

COMMON = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    max_position_embeddings=64,
    attention_bias=False,
    mlp_bias=False,
    hidden_act="silu",
    pad_token_id=PAD_ID,
    bos_token_id=1,
    # No EOS: generation always produces exactly MAX_NEW_TOKENS tokens per row.
    eos_token_id=None,
    initializer_range=WEIGHT_STD,
    attention_dropout=0.0,
)

MODELS = {
    "tiny-llama-tied": dict(
        COMMON,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA: 2 query heads per kv head
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "tiny-llama-untied": dict(
        COMMON,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,  # MHA
        rope_theta=100000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    ),
}

POSITION_IDS_CONVENTION = (
    "position_ids = attention_mask.cumsum(-1) - 1, masked_fill(attention_mask == 0, 0) "
    "(transformers GenerationMixin._prepare_position_ids_for_generation); generated tokens get last+1; "
    "the same position_ids are passed to the forward that produced `logits`"
)


def round_sig(x: float, sig: int = 7) -> float:
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x}")
    return float(f"{x:.{sig - 1}e}")


def to_list_rounded(t: torch.Tensor):
    arr = t.detach().to(torch.float64).cpu().numpy()
    return np.vectorize(round_sig, otypes=[float])(arr).tolist()


def record(lengths, input_ids, attention_mask, position_ids, logits, logprobs, logprobs_mask, sequences,
           max_new_tokens) -> dict:
    """The inputs and reference outputs of expected.json (everything but "meta"); shared with
    scripts/make-family-fixtures.py."""
    seq = input_ids.shape[1]
    return {
        "pad_token_id": PAD_ID,
        "padding_side": "left",
        "lengths": lengths,
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "position_ids": position_ids.tolist(),
        "logits": to_list_rounded(logits),
        "logprobs": to_list_rounded(logprobs),
        "logprobs_mask": logprobs_mask.tolist(),
        "generate": {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": PAD_ID,
            "eos_token_id": None,
            "sequences": sequences.tolist(),
            "new_tokens": sequences[:, seq:].tolist(),
        },
    }


def make_config(spec: dict) -> LlamaConfig:
    spec = dict(spec)
    rope_theta = spec.pop("rope_theta")
    cfg = LlamaConfig(
        **spec,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
    )
    cfg._attn_implementation = "eager"
    return cfg


def reinit(model, seed: int, biases: bool):
    """Deterministic re-init, independent of transformers' own init order: iterate parameters by name
    with a dedicated generator (named_parameters() de-duplicates tied weights, lm_head == embed).
    Norm weights ~ U(NORM_LOW, NORM_HIGH); matrices (and, with `biases`, 1-D biases) ~ N(0, WEIGHT_STD²).
    Shared with scripts/make-family-fixtures.py."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(torch.rand(p.shape, generator=gen) * (NORM_HIGH - NORM_LOW) + NORM_LOW)
            elif p.ndim == 2 or (biases and p.ndim == 1):
                p.copy_(torch.randn(p.shape, generator=gen) * WEIGHT_STD)
            else:
                raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")


def write_expected(path: Path, expected: dict):
    """Writes expected.json compactly, one line."""
    with open(path, "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")


def build_model(spec: dict, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = make_config(spec)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    reinit(model, seed, biases=False)
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "not tied"
    model.eval()
    return model


def make_inputs(vocab: int, seed: int, lengths=None):
    """Random rows of the given real lengths (default LENGTHS), left padded with PAD_ID."""
    lengths = LENGTHS if lengths is None else lengths
    gen = torch.Generator().manual_seed(seed + 1)
    seq = max(lengths)
    input_ids = torch.full((len(lengths), seq), PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros((len(lengths), seq), dtype=torch.long)
    rows = []
    for b, n in enumerate(lengths):
        row = torch.randint(1, vocab, (n,), generator=gen)  # never the pad id
        rows.append(row)
        input_ids[b, seq - n :] = row
        attention_mask[b, seq - n :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    return rows, input_ids, attention_mask, position_ids


@torch.no_grad()
def forward_logits(model, input_ids, attention_mask=None, position_ids=None):
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    )
    return out.logits.to(torch.float32)


def numpy_reference_logits(folder: Path, input_ids, attention_mask, position_ids) -> np.ndarray:
    """Independent float64 Llama forward from config.json + model.safetensors only (no transformers).

    Documents the exact math a port must implement: Linear weights are [out, in] (y = x @ W.T);
    RMSNorm y = x / sqrt(mean(x^2) + eps) * w; RoPE in the "rotate_half" (non-interleaved) layout,
    inv_freq[i] = theta^(-2i/head_dim), dim i pairs with i + head_dim/2; GQA: kv head j serves query
    heads j*g .. j*g+g-1 (g = heads / kv_heads); causal + key-padding mask; SiLU-gated MLP;
    lm_head = embed_tokens when tied.  Returns logits [batch, seq, vocab], NaN at pad positions.
    """
    cfg = json.loads((folder / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file_np(folder / "model.safetensors").items()}
    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta"))
    assert rope.get("rope_type", "default") == "default"
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    hd = cfg.get("head_dim") or D // H
    eps = cfg["rms_norm_eps"]
    lm_head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    assert ("lm_head.weight" in w) == (not cfg["tie_word_embeddings"])

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def rot(x, pos):  # x [T, heads, hd], pos [T]
        inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        ang = np.concatenate([pos[:, None] * inv[None]] * 2, axis=-1)[:, None, :]
        half = np.concatenate([-x[..., hd // 2:], x[..., : hd // 2]], axis=-1)
        return x * np.cos(ang) + half * np.sin(ang)

    ids, mask, pos_all = (np.asarray(a) for a in (input_ids, attention_mask, position_ids))
    out = np.full(ids.shape + (cfg["vocab_size"],), np.nan)
    for b in range(ids.shape[0]):
        real = np.nonzero(mask[b])[0]
        x = w["model.embed_tokens.weight"][ids[b, real]]
        pos = pos_all[b, real].astype(np.float64)
        T = len(real)
        causal = np.tril(np.ones((T, T), dtype=bool))
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = rms(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd)
            q, k = rot(q, pos), rot(k, pos)
            k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
            s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd)
            s = np.where(causal[None], s, -np.inf)
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", a, v).reshape(T, H * hd)
            x = x + o @ w[p + "self_attn.o_proj.weight"].T
            h = rms(x, w[p + "post_attention_layernorm.weight"])
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
        out[b, real] = rms(x, w["model.norm.weight"]) @ lm_head.T
    return out


def load_file_np(path: Path) -> dict:
    from safetensors.numpy import load_file as load_np

    return load_np(str(path))


@torch.no_grad()
def manual_greedy(model, input_ids, attention_mask, steps):
    ids, mask = input_ids.clone(), attention_mask.clone()
    for _ in range(steps):
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        nxt = forward_logits(model, ids, mask, pos)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
        mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)
    return ids


def run_one(name: str, spec: dict, out_dir: Path, write: bool) -> bool:
    model = build_model(spec, SEED)
    cfg = model.config
    rows, input_ids, attention_mask, position_ids = make_inputs(cfg.vocab_size, SEED)
    logits = forward_logits(model, input_ids, attention_mask, position_ids)
    logp = torch.log_softmax(logits[:, :-1].to(torch.float64), dim=-1)
    logprobs = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    logprobs_mask = attention_mask[:, :-1] * attention_mask[:, 1:]

    with torch.no_grad():
        gen_out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=MAX_NEW_TOKENS,
            min_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            pad_token_id=PAD_ID,
            eos_token_id=None,
            use_cache=True,
        )
    sequences = gen_out if isinstance(gen_out, torch.Tensor) else gen_out.sequences
    seq = input_ids.shape[1]

    ok = True
    real = attention_mask.bool()
    print(f"[{name}] logits: shape {tuple(logits.shape)}, real-position |max| {logits[real].abs().max():.3f}, "
          f"std {logits[real].std():.3f}; all finite: {bool(torch.isfinite(logits).all())}")
    print(f"[{name}] logprobs (valid) range [{logprobs[logprobs_mask.bool()].min():.3f}, "
          f"{logprobs[logprobs_mask.bool()].max():.3f}]")

    # 1. Each row unpadded, alone, positions 0..n-1, no mask.
    for b, row in enumerate(rows):
        n = row.numel()
        solo = forward_logits(model, row.unsqueeze(0), None, torch.arange(n).unsqueeze(0))[0]
        d = (solo - logits[b, seq - n :]).abs().max().item()
        print(f"[{name}] row {b} (len {n}): max |padded - unpadded| logits = {d:.3e}")
        ok &= d <= TOL

    # 2. generate == manual greedy loop without KV cache.
    manual = manual_greedy(model, input_ids, attention_mask, MAX_NEW_TOKENS)
    same = torch.equal(manual, sequences)
    print(f"[{name}] generate == manual greedy (no cache, same position ids): {same}")
    ok &= same
    # ... and the padded-batch generation matches per-row unpadded generation.
    for b, row in enumerate(rows):
        with torch.no_grad():
            solo = model.generate(
                input_ids=row.unsqueeze(0), attention_mask=torch.ones(1, row.numel(), dtype=torch.long),
                max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                pad_token_id=PAD_ID, eos_token_id=None,
            )
        solo = solo if isinstance(solo, torch.Tensor) else solo.sequences
        same_row = torch.equal(solo[0, row.numel():], sequences[b, seq:])
        print(f"[{name}] row {b}: batched generation == unpadded generation: {same_row}")
        ok &= same_row

    expected = {
        "meta": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "seed": SEED,
            "dtype": "float32",
            "attn_implementation": "eager",
            "init": (f"all 2-D weights ~ N(0, {WEIGHT_STD}^2); RMSNorm weights ~ U({NORM_LOW}, {NORM_HIGH}); "
                     f"torch.Generator().manual_seed(seed), parameters visited in sorted name order"),
            "position_ids_convention": POSITION_IDS_CONVENTION,
            "script": "scripts/make-hf-fixtures.py",
        },
        **record(LENGTHS, input_ids, attention_mask, position_ids, logits, logprobs, logprobs_mask,
                 sequences, MAX_NEW_TOKENS),
    }

    # 3. save_pretrained -> from_pretrained round trip reproduces the logits.
    with tempfile.TemporaryDirectory() as tmp:
        target = out_dir if write else Path(tmp) / name
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target, safe_serialization=True)
        os.chmod(target / "model.safetensors", 0o644)  # save_pretrained writes it 0600
        keys = sorted(load_file(target / "model.safetensors").keys())
        print(f"[{name}] safetensors keys ({len(keys)}): {keys}")
        reloaded, info = LlamaForCausalLM.from_pretrained(
            target, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
        )
        reloaded.eval()
        clean = not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        print(f"[{name}] from_pretrained loading info clean: {clean} {info if not clean else ''}")
        ok &= clean
        d = (forward_logits(reloaded, input_ids, attention_mask, position_ids) - logits).abs().max().item()
        print(f"[{name}] reload from safetensors: max |logits diff| = {d:.3e}")
        ok &= d == 0.0
        # Independent NumPy float64 forward from the files alone, at real positions.
        ref = numpy_reference_logits(target, input_ids, attention_mask, position_ids)
        d = np.nanmax(np.abs(ref - logits.double().numpy()))
        print(f"[{name}] NumPy float64 reference vs torch logits (real positions): max diff {d:.3e}")
        ok &= d <= 1e-4
        # The rounded JSON logits vs. full precision.
        d = (torch.tensor(expected["logits"]) - logits).abs().max().item()
        print(f"[{name}] rounding error of stored logits: {d:.3e}")
        if write:
            write_expected(target / "expected.json", expected)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
    ap.add_argument("--check", action="store_true", help="verify only, do not write files")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__}, "
          f"numpy {np.__version__}, python {platform.python_version()}")
    ok = True
    for name, spec in MODELS.items():
        ok &= run_one(name, spec, Path(args.out) / name, write=not args.check)
    print("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
