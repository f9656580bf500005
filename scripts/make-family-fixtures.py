#!/usr/bin/env python3
"""Generate transformers parity fixtures for the decoder families beyond Llama 2 / SmolLM.

For each spec in ``MODELS`` below it writes ``tests/fixtures/<name>/`` with what
``save_pretrained`` writes (``config.json``, ``generation_config.json``, weights **sharded**
into several safetensors files with ``model.safetensors.index.json``) and ``expected.json``
in the schema of ``scripts/make-hf-fixtures.py`` (inputs, left-padded logits, greedy
generation), so ``tests/it/hf_parity.rs`` checks them with the same code:

* ``tiny-qwen2``: ``Qwen2ForCausalLM``: q/k/v biases, no o bias, GQA, tied head, f32;
* ``tiny-qwen3``: ``Qwen3ForCausalLM``: per-head q/k RMSNorm, ``head_dim`` (32) independent of
  ``hidden_size / num_attention_heads`` (16), untied head, stored in **bfloat16**;
* ``tiny-llama3``: ``LlamaForCausalLM`` with ``llama3`` RoPE scaling whose original context (16)
  is shorter than the fixture's sequences, so the scaling changes the logits, f32.

The reference logits of the bf16 fixture come from the bf16 checkpoint loaded with
``dtype=torch.float32``: f32 arithmetic on the bf16-rounded weights, which is what saferlhf
computes when it loads a bf16 checkpoint (it widens every tensor to f32).

Each fixture also gets a character-level tokenizer (``tokenizer.json``: ``<|endoftext|>`` = 0 =
padding, ``<|im_start|>``, ``<|im_end|>`` = end of sequence, ``<unk>``, then printable ASCII and
newline; 100 ids under the models' 128) and a ``tokenizer_config.json`` with a ChatML
``chat_template``, so the directories also serve as tiny training inputs (``tests/it/families.rs``:
one SFT, reward, cost and RL step on each family).

Weights are drawn as in ``make-hf-fixtures.py`` (every 1-D or 2-D weight ~ N(0, 0.2^2),
biases included; every norm weight ~ U(0.5, 1.5)), with a dedicated generator visiting
parameters in sorted name order, so a mistake in a bias, a q/k norm or the RoPE frequencies
changes the logits visibly.

Self-checks (non-zero exit on failure): reloading the saved directory reproduces the logits
exactly; each row's logits equal those of the row run alone, unpadded, to 1e-5; batched
generation equals each row's unpadded generation.

Run with the venv of ``scripts/requirements-fixtures.txt``::

    /tmp/hf-fixtures-venv/bin/python scripts/make-family-fixtures.py          # writes
    /tmp/hf-fixtures-venv/bin/python scripts/make-family-fixtures.py --check  # verify only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from tokenizers import Tokenizer, decoders, models
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

# The Llama fixture script's helpers (rounding, the expected.json record, the plain forward).
_spec = importlib.util.spec_from_file_location("make_hf_fixtures", Path(__file__).with_name("make-hf-fixtures.py"))
hf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hf)

SEED = 20261206
PAD_ID = 0
LENGTHS = [20, 11, 3]  # real lengths; left padded to max(LENGTHS); longer than llama3's context 16
MAX_NEW_TOKENS = 8
WEIGHT_STD = hf.WEIGHT_STD
NORM_LOW, NORM_HIGH = hf.NORM_LOW, hf.NORM_HIGH
TOL = 1e-5
SHARD = "60KB"  # small enough that every fixture is split into several shards

COMMON = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    max_position_embeddings=64,
    hidden_act="silu",
    pad_token_id=PAD_ID,
    bos_token_id=1,
    eos_token_id=None,
    initializer_range=WEIGHT_STD,
    attention_dropout=0.0,
)

MODELS = {
    "tiny-qwen2": (
        Qwen2Config,
        Qwen2ForCausalLM,
        torch.float32,
        dict(
            COMMON,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
    ),
    "tiny-qwen3": (
        Qwen3Config,
        Qwen3ForCausalLM,
        torch.bfloat16,
        dict(
            COMMON,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            attention_bias=False,
            use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
    ),
    "tiny-llama3": (
        LlamaConfig,
        LlamaForCausalLM,
        torch.float32,
        dict(
            COMMON,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            attention_bias=False,
            mlp_bias=False,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
    ),
}

POSITION_IDS_CONVENTION = (
    "position_ids = attention_mask.cumsum(-1) - 1, masked_fill(attention_mask == 0, 0); "
    "generated tokens get last+1"
)


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)


def write_tokenizer(target: Path):
    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    tok.save(str(target / "tokenizer.json"))
    config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None,
              "unk_token": "<unk>", "chat_template": CHATML}
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    assert tok.encode("<|im_start|>Hi!\n<|im_end|>").ids == [1, 44, 77, 5, 99, 2], tok.encode("Hi!").ids


def build_model(config_cls, model_cls, spec: dict, seed: int):
    torch.manual_seed(seed)
    cfg = config_cls(**spec)
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).to(torch.float32)
    hf.reinit(model, seed, biases=True)
    model.eval()
    return model


@torch.no_grad()
def greedy(model, input_ids, attention_mask):
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=MAX_NEW_TOKENS,
        min_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        pad_token_id=PAD_ID,
        eos_token_id=None,
        use_cache=True,
    )
    return out if isinstance(out, torch.Tensor) else out.sequences


def run_one(name, config_cls, model_cls, dtype, spec, out_dir: Path, write: bool) -> bool:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        target = out_dir if write else Path(tmp) / name
        target.mkdir(parents=True, exist_ok=True)
        built = build_model(config_cls, model_cls, spec, SEED)
        built.to(dtype).save_pretrained(target, safe_serialization=True, max_shard_size=SHARD)
        write_tokenizer(target)
        for f in target.iterdir():
            os.chmod(f, 0o644)
        shards = sorted(p.name for p in target.glob("*.safetensors"))
        print(f"[{name}] {len(shards)} shards in {dtype}: {shards}")
        ok &= len(shards) > 1
        # The reference is the saved checkpoint, computed in f32.
        model, info = model_cls.from_pretrained(
            target, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
        )
        model.eval()
        clean = not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        print(f"[{name}] loading info clean: {clean} {info if not clean else ''}")
        ok &= clean
        auto = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32, attn_implementation="eager")
        ok &= type(auto) is model_cls

        rows, input_ids, attention_mask, position_ids = hf.make_inputs(model.config.vocab_size, SEED, LENGTHS)
        logits = hf.forward_logits(model, input_ids, attention_mask, position_ids)
        d = (hf.forward_logits(auto.eval(), input_ids, attention_mask, position_ids) - logits).abs().max().item()
        print(f"[{name}] AutoModelForCausalLM reload: max |logits diff| = {d:.3e}")
        ok &= d == 0.0
        logp = torch.log_softmax(logits[:, :-1].to(torch.float64), dim=-1)
        logprobs = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        logprobs_mask = attention_mask[:, :-1] * attention_mask[:, 1:]
        sequences = greedy(model, input_ids, attention_mask)
        seq = input_ids.shape[1]
        real = attention_mask.bool()
        print(f"[{name}] logits real-position |max| {logits[real].abs().max():.3f}, std {logits[real].std():.3f}")
        for b, row in enumerate(rows):
            n = row.numel()
            solo = hf.forward_logits(model, row.unsqueeze(0), None, torch.arange(n).unsqueeze(0))[0]
            d = (solo - logits[b, seq - n :]).abs().max().item()
            ok &= d <= TOL
            solo_gen = greedy(model, row.unsqueeze(0), torch.ones(1, n, dtype=torch.long))
            same = torch.equal(solo_gen[0, n:], sequences[b, seq:])
            print(f"[{name}] row {b} (len {n}): |padded - unpadded| {d:.3e}; generation equal: {same}")
            ok &= same
        if "rope_parameters" in spec and spec["rope_parameters"]["rope_type"] != "default":
            # The scaling must matter: the same weights without it give other logits.
            plain = dict(spec, rope_parameters={"rope_type": "default",
                                                "rope_theta": spec["rope_parameters"]["rope_theta"]})
            unscaled = model_cls(config_cls(**plain)).eval()
            unscaled.load_state_dict(model.state_dict())
            d = (hf.forward_logits(unscaled, input_ids, attention_mask, position_ids) - logits)[real].abs().max().item()
            print(f"[{name}] logits without the RoPE scaling differ by up to {d:.3f}")
            ok &= d > 1e-2
        expected = {
            "meta": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "safetensors": safetensors.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
                "seed": SEED,
                "dtype": "float32 arithmetic on the stored " + str(dtype).replace("torch.", "") + " weights",
                "stored_dtype": str(dtype).replace("torch.", ""),
                "attn_implementation": "eager",
                "init": (f"1-D and 2-D weights ~ N(0, {WEIGHT_STD}^2); norm weights ~ U({NORM_LOW}, {NORM_HIGH}); "
                         "torch.Generator().manual_seed(seed), parameters in sorted name order"),
                "position_ids_convention": POSITION_IDS_CONVENTION,
                "script": "scripts/make-family-fixtures.py",
            },
            **hf.record(LENGTHS, input_ids, attention_mask, position_ids, logits, logprobs, logprobs_mask,
                        sequences, MAX_NEW_TOKENS),
        }
        if write:
            hf.write_expected(target / "expected.json", expected)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
    ap.add_argument("--check", action="store_true", help="verify only, do not write files")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}")
    ok = True
    for name, (config_cls, model_cls, dtype, spec) in MODELS.items():
        ok &= run_one(name, config_cls, model_cls, dtype, spec, Path(args.out) / name, write=not args.check)
    print("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
