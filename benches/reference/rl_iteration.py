#!/usr/bin/env python3
"""The PyTorch + transformers reference for benches/rl_iteration.rs: the same PPO-Lagrangian
iteration at SmolLM2-135M's size, in the same memory modes, each mode in a process of its own.

One iteration: 8 prompts of 39 tokens (the Rust bench's chatml-templated prompts, left-padded
to the longest), 64 new tokens each (sampled, KV cache, every response
exactly 64 tokens), old and reference log-probs, reward and cost scores at the last token,
per-token values of two critics, GAE, then one PPO epoch over one minibatch of 8 (one
micro-batch): the clipped surrogate with gradient clipping and an AdamW step for the actor,
the clipped value losses and an AdamW step for both critics. Weights are random, N(0, 0.02)
(transformers' Llama initialisation); score models are a Llama backbone with a linear head
[hidden, 1] reading every position, as safe-rlhf's are.

Modes: full (f32; policy, reference, reward, cost, two critics), bf16 (reference, reward and
cost held in bfloat16; logits cast to f32 before the log-softmax), lora (rank 16, alpha 16 on
every projection of the policy, written here in a few lines as PEFT computes it: the reference
is the same module with the adapters switched off), lora-bf16 (both; the reference stays the
shared f32 base); f16 and lora-f16 hold the frozen models in float16 instead.

    python3 benches/reference/rl_iteration.py [--mode MODE] [--steps 5] [--threads 2] [--device cpu|cuda]

Prints one JSON line per mode: first_step_s, warm_step_s (median of the steps after the
second), the phases of the warm steps, peak_rss_gb (ru_maxrss of the mode's process) and, on
CUDA, device_peak_reserved_gb (torch.cuda.max_memory_reserved; the device is synchronised
before every clock reading). Needs torch and transformers (benches/reference/requirements.txt);
no network at run time.
"""

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

MODES = ["full", "bf16", "lora", "lora-bf16"]
HALF_MODES = ["f16", "lora-f16"]
HALF = {"bf16": torch.bfloat16, "f16": torch.float16}
BATCH, PROMPT, NEW = 8, 39, 64
RANK, ALPHA = 16, 16.0
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_shape():
    """saferlhf's `tiny` test model (LlamaConfig::tiny)."""
    return LlamaConfig(
        vocab_size=512,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=0.02,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def shape_config(shape):
    return tiny_shape() if shape == "tiny" else smollm2_shape()


def char_tiny_shape():
    """saferlhf's `char-tiny` preset, the model of its RL figure at the tiny shape."""
    config = tiny_shape()
    config.vocab_size = 64
    config.hidden_size = 32
    config.intermediate_size = 64
    config.num_hidden_layers = 2
    config.num_key_value_heads = 2
    config.max_position_embeddings = 512
    config.eos_token_id = 3
    return config


def smollm2_shape():
    return LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        rope_theta=100000.0,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=0.02,
        bos_token_id=1,
        eos_token_id=3,
        pad_token_id=0,
    )


class Score(nn.Module):
    """A Llama backbone and a linear head scoring every position."""

    def __init__(self, config):
        super().__init__()
        self.model = LlamaModel(config)
        self.head = nn.Linear(config.hidden_size, 1)

    def forward(self, ids, mask):
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.head(hidden).squeeze(-1).float()


class LoraLinear(nn.Module):
    """W x + (alpha / r) B A x, W frozen; `enabled = False` gives the base (PEFT's
    disable_adapter)."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        self.a = nn.Parameter(torch.randn(RANK, base.in_features) / RANK)
        self.b = nn.Parameter(torch.zeros(base.out_features, RANK))
        self.scale = ALPHA / RANK
        self.enabled = True

    def forward(self, x):
        y = self.base(x)
        if self.enabled:
            y = y + F.linear(F.linear(x, self.a), self.b) * self.scale
        return y


def add_lora(model):
    for p in model.parameters():
        p.requires_grad_(False)
    adapters = []
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in TARGETS:
                if hasattr(parent, name):
                    wrapped = LoraLinear(getattr(parent, name))
                    setattr(parent, name, wrapped)
                    adapters.append(wrapped)
    return adapters


def token_logprobs(model, ids, mask):
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def gae(rewards, values, gamma=1.0, lam=0.95):
    # rewards, values: [B, T] over the response positions.
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        nxt = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * nxt - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    return adv, adv + values


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_mode(mode, steps, device="cpu", shape="smollm2-135m"):
    """The iteration at SmolLM2-135M's shape (64 new tokens), or on saferlhf's char-tiny
    model (12 new tokens, as saferlhf's RL figure at the tiny shape)."""
    device = torch.device(device)
    torch.manual_seed(0)
    config = smollm2_shape() if shape == "smollm2-135m" else char_tiny_shape()
    new_tokens = NEW if shape == "smollm2-135m" else 12
    half = HALF.get(mode.removeprefix("lora-"))
    policy = LlamaForCausalLM(config)
    adapters = []
    if mode.startswith("lora"):
        adapters = add_lora(policy)
        reference = None  # the policy with adapters off
    else:
        reference = LlamaForCausalLM(config)
        reference.load_state_dict(policy.state_dict())
        reference.requires_grad_(False)
    reward, cost = Score(config), Score(config)
    critics = [Score(config), Score(config)]
    critics[0].load_state_dict(reward.state_dict())
    critics[1].load_state_dict(cost.state_dict())
    for m in (policy, reference, reward, cost, *critics):
        if m is not None:
            m.to(device)
    for m in (reward, cost):
        m.requires_grad_(False)
        if half:
            m.to(half)
    if half and reference is not None:
        reference.to(half)
    actor_params = [p for p in policy.parameters() if p.requires_grad]
    actor_opt = torch.optim.AdamW(actor_params, lr=1e-5, weight_decay=0.01)
    critic_opt = torch.optim.AdamW(
        [p for c in critics for p in c.parameters()], lr=5e-6, weight_decay=0.0
    )
    lam = 1.0
    times = []
    for step in range(steps):
        sync(device)
        t0 = time.perf_counter()
        prompts = torch.randint(5, config.vocab_size, (BATCH, PROMPT)).to(device)
        prompt_mask = torch.ones_like(prompts)
        policy.eval()
        with torch.no_grad():
            seq = policy.generate(
                input_ids=prompts,
                attention_mask=prompt_mask,
                do_sample=True,
                top_k=0,
                temperature=1.0,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=0,
            )
        sync(device)
        t1 = time.perf_counter()
        mask = torch.ones_like(seq)
        with torch.no_grad():
            old = token_logprobs(policy, seq, mask)[:, PROMPT - 1 :]
            if reference is None:
                for a in adapters:
                    a.enabled = False
                ref = token_logprobs(policy, seq, mask)[:, PROMPT - 1 :]
                for a in adapters:
                    a.enabled = True
            else:
                ref = token_logprobs(reference, seq, mask)[:, PROMPT - 1 :]
            r_end = reward(seq, mask)[:, -1]
            c_end = cost(seq, mask)[:, -1]
            v_r = critics[0](seq, mask)[:, PROMPT - 1 : -1]
            v_c = critics[1](seq, mask)[:, PROMPT - 1 : -1]
            kl = old - ref
            rew = -0.01 * kl
            rew[:, -1] += r_end
            cst = torch.zeros_like(rew)
            cst[:, -1] += c_end
            adv_r, ret_r = gae(rew, v_r)
            adv_c, ret_c = gae(cst, v_c)
            adv = (adv_r - lam * adv_c) / (1 + lam)
        sync(device)
        t2 = time.perf_counter()
        policy.train()
        new = token_logprobs(policy, seq, mask)[:, PROMPT - 1 :]
        ratio = torch.exp(new - old)
        actor_loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
        actor_loss.backward()
        torch.nn.utils.clip_grad_norm_(actor_params, 1.0)
        actor_opt.step()
        actor_opt.zero_grad(set_to_none=True)
        value_loss = 0.0
        for critic, v_old, ret in ((critics[0], v_r, ret_r), (critics[1], v_c, ret_c)):
            v = critic(seq, mask)[:, PROMPT - 1 : -1]
            clipped = v_old + (v - v_old).clamp(-5, 5)
            value_loss = value_loss + 0.5 * torch.max((v - ret) ** 2, (clipped - ret) ** 2).mean()
        value_loss.backward()
        critic_opt.step()
        critic_opt.zero_grad(set_to_none=True)
        sync(device)
        t3 = time.perf_counter()
        assert math.isfinite(actor_loss.item()) and math.isfinite(value_loss.item())
        times.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2))
    warm = times[2:]
    med = lambda i: round(statistics.median(t[i] for t in warm), 2) if warm else None
    print(
        json.dumps(
            {
                "bench": "rl_iteration_pytorch",
                "figure": f"rl-{mode}",
                "mode": mode,
                "shape": shape,
                "device": str(device),
                "steps": steps,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "first_step_s": round(times[0][0], 2),
                "second_step_s": round(times[1][0], 2) if len(times) > 1 else None,
                "warm_step_s": med(0),
                "warm_rollout_s": med(1),
                "warm_scoring_s": med(2),
                "warm_training_s": med(3),
                "all_s": [round(t[0], 2) for t in times],
                "trainable_parameters": sum(p.numel() for p in actor_params),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
                "device_peak_reserved_gb": (
                    round(torch.cuda.max_memory_reserved(device) / 1e9, 3)
                    if device.type == "cuda"
                    else None
                ),
            }
        ),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES + HALF_MODES)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode:
        run_mode(args.mode, args.steps, args.device)
        return
    for mode in MODES:
        cmd = [sys.executable, __file__, "--mode", mode, "--steps", str(args.steps)]
        cmd += ["--threads", str(args.threads), "--device", args.device]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
