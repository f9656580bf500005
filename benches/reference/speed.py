#!/usr/bin/env python3
"""The PyTorch + transformers reference of `saferlhf bench speed`: the same figures, by the same
names, on a CPU or a CUDA device, each figure in a process of its own.

- generate-P: 8 random prompts of 32 tokens, 64 new tokens each, greedy, KV cache, no stop
  (min_new_tokens = 64), the whole model in precision P (f32, bf16, f16);
- train-f32: batch 8 x 128 tokens, the mean next-token log-likelihood, backward, one AdamW step;
- rl-MODE: one PPO-Lagrangian iteration (benches/reference/rl_iteration.py) in memory mode
  MODE (full, HALF, lora, lora-HALF).

Weights are random, N(0, 0.02) (transformers' Llama initialisation), in the shape of
SmolLM2-135M or of saferlhf's tiny test model. On CUDA the device is synchronised before every
clock reading, and device_peak_reserved_gb is torch.cuda.max_memory_reserved.

    python3 benches/reference/speed.py [--device cuda] [--shape smollm2-135m] [--half bf16]
        [--figures generate-f32,train-f32] [--runs 5] [--steps 5] [--threads N] [--json F]

Prints one JSON line per figure (the keys saferlhf's figures use); --json writes them all.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rl_iteration  # noqa: E402

GEN_BATCH, GEN_PROMPT, GEN_NEW = 8, 32, 64
TRAIN_BATCH, TRAIN_SEQ = 8, 128
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def memory(device):
    return {
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "device_peak_reserved_gb": (
            round(torch.cuda.max_memory_reserved(device) / 1e9, 3)
            if device.type == "cuda"
            else None
        ),
    }


def timed(device, runs, fn):
    """One warm-up call, then `runs` timed calls (synchronised): their seconds."""
    fn()
    times = []
    for _ in range(runs):
        rl_iteration.sync(device)
        start = time.perf_counter()
        fn()
        rl_iteration.sync(device)
        times.append(time.perf_counter() - start)
    return times


def model(shape, device, dtype=torch.float32):
    torch.manual_seed(0)
    return LlamaForCausalLM(rl_iteration.shape_config(shape)).to(device=device, dtype=dtype)


def generate_figure(device, shape, precision, runs):
    m = model(shape, device, DTYPES[precision]).eval()
    vocab = m.config.vocab_size
    prompts = torch.randint(5, vocab, (GEN_BATCH, GEN_PROMPT), generator=torch.Generator().manual_seed(1))
    prompts = prompts.to(device)
    mask = torch.ones_like(prompts)

    def run():
        with torch.no_grad():
            out = m.generate(
                input_ids=prompts,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=GEN_NEW,
                min_new_tokens=GEN_NEW,
                pad_token_id=0,
            )
        assert out.shape == (GEN_BATCH, GEN_PROMPT + GEN_NEW), out.shape

    times = timed(device, runs, run)
    med = statistics.median(times)
    return {
        "figure": f"generate-{precision}",
        "bench": "generate",
        "precision": precision,
        "tokens_per_s": round(GEN_BATCH * GEN_NEW / med, 1),
        "median_s": round(med, 4),
        "all_s": [round(t, 4) for t in times],
    }


def train_figure(device, shape, runs):
    m = model(shape, device).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5)
    ids = torch.randint(0, m.config.vocab_size, (TRAIN_BATCH, TRAIN_SEQ), generator=torch.Generator().manual_seed(7))
    ids = ids.to(device)

    def run():
        loss = -rl_iteration.token_logprobs(m, ids, torch.ones_like(ids)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = timed(device, runs, run)
    med = statistics.median(times)
    return {
        "figure": "train-f32",
        "bench": "train_step",
        "precision": "f32",
        "s_per_step": round(med, 4),
        "tokens_per_s": round(TRAIN_BATCH * TRAIN_SEQ / med, 1),
        "median_s": round(med, 4),
        "all_s": [round(t, 4) for t in times],
    }


def one_figure(args):
    device = torch.device(args.device)
    name = args.figures[0]
    if name.startswith("generate-"):
        figure = generate_figure(device, args.shape, name.removeprefix("generate-"), args.runs)
    elif name == "train-f32":
        figure = train_figure(device, args.shape, args.runs)
    elif name.startswith("rl-"):
        # rl_iteration prints its own line, with the same keys.
        rl_iteration.run_mode(name.removeprefix("rl-"), args.steps, args.device, args.shape)
        return
    else:
        raise SystemExit(f"unknown figure {name}")
    figure.update(memory(device))
    figure.update({"shape": args.shape, "device": str(device), "torch": torch.__version__})
    print(json.dumps(figure), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="smollm2-135m", choices=["smollm2-135m", "tiny"])
    parser.add_argument("--half", default="bf16", choices=["bf16", "f16"])
    parser.add_argument("--figures", default="")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--json")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    h = args.half
    names = [f for f in args.figures.split(",") if f] or [
        "generate-f32", f"generate-{h}", "train-f32", "rl-full", f"rl-{h}", "rl-lora", f"rl-lora-{h}",
    ]
    if args.one:
        args.figures = names
        one_figure(args)
        return
    figures = []
    for name in names:
        print(f"pytorch: {name} on {args.device} ({args.shape})", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--one", "--figures", name, "--device", args.device]
        cmd += ["--shape", args.shape, "--runs", str(args.runs), "--steps", str(args.steps)]
        cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
        if done.returncode == 0 and lines:
            figure = json.loads(lines[-1])
        else:
            figure = {"figure": name, "error": f"exit status {done.returncode}"}
        print(json.dumps(figure), flush=True)
        figures.append(figure)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"device": args.device, "shape": args.shape, "figures": figures}, f, indent=2)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
