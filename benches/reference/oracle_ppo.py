#!/usr/bin/env python3
"""An independent PyTorch implementation of the PPO run of `saferlhf bench compensation
--oracle-rl`, to tell a learner bug from a training budget.

The benchmark's oracle mode trains plain PPO on the synthetic task's exact reward, and the
project's bar is 90% of the unconstrained optimum with under 5% malformed responses. saferlhf
falls short of it. This script starts from the same SFT policy and reward model (the
benchmark's seed directory), reads the same `ppo/config.toml`, and runs PPO as safe-rlhf
writes it, in plain PyTorch + transformers, sharing no code with saferlhf:

- rollout: left-padded prompts, sampled at the config's temperature with the ids no response
  may hold (padding, `<unk>`, special tokens other than eos, ids past the tokenizer) masked
  out, up to `rollout.max_new_tokens`; the oracle scores the decoded response;
  `rollout.truncation_penalty` is subtracted from rows that never stopped;
- the reward stream `-β·(log π_old − log π_ref)` per token plus the score at the last token,
  clipped to ±`ppo.clip_score`; GAE with `ppo.gamma`, `ppo.gae_lambda`, no whitening;
- the critic: `score_heads` (a linear value head, initialised from the reward model's score
  head, on the frozen reward model's final hidden states) or `separate` (a copy of the whole
  reward model);
- `ppo.update_epochs` passes in shuffled minibatches of `ppo.minibatch`: the clipped surrogate
  and the clipped value loss (per-sequence token means, then the batch mean), gradient clipping
  at `max_grad_norm`, AdamW with linear warmup then cosine (actor) or constant (critic) as the
  config's `[actor]` / `[critic]` say.

At the end the policy is evaluated as the benchmark evaluates it: `--samples` responses per
prompt at temperature 1 and one greedy response, on the training and the held-out prompts,
scored by the oracle. The oracle is read from the task's `oracle.json` (written beside
`task.json` by the benchmark); `--check-samples FILE` first rescores a `saferlhf eval --oracle`
samples file with this script's oracle and fails on any difference.

    python3 benches/reference/oracle_ppo.py --run OUT/seed-0 [--steps N] [--seed S] \\
        [--critics score_heads|separate] [--samples 8] [--threads 2] [--json FILE] \\
        [--check-samples FILE] [--evaluate POLICY_DIR]

Prints one JSON line per 10 RL steps and a final JSON object (also written to --json). Needs
torch and transformers (benches/reference/requirements.txt); no network.
"""

import argparse
import copy
import json
import math
import sys
import time
import tomllib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel


def fail(message):
    sys.exit(f"oracle_ppo.py: {message}")


class Oracle:
    """The task's exact scorer, from oracle.json (saferlhf_bench::synthetic::OracleFile)."""

    def __init__(self, path):
        spec = json.loads(Path(path).read_text())
        self.table = spec["table"]
        self.refusal = spec["refusal"]
        self.answer = spec["answer_prefix"]
        self.safe = spec["safe_prefix"]
        self.topics = spec["topics"]
        self.prompts = {p["text"]: p for p in spec["train"] + spec["eval"]}
        self.train = [p["text"] for p in spec["train"]]
        self.eval = [p["text"] for p in spec["eval"]]

    def kind(self, prompt, response):
        p = self.prompts[prompt.strip()]
        topic = self.topics[p["topic"]]
        r = response.strip()
        if r == self.refusal:
            return "refuse"

        def word_after(prefix):
            return r.startswith(prefix) and r.endswith(".") and r[len(prefix):-1] in topic["words"]

        if p["kind"] == "benign" and word_after(self.answer):
            return "answer"
        if p["kind"] == "risky" and word_after(self.answer):
            return "unsafe_answer"
        if p["kind"] == "risky" and word_after(self.safe):
            return "safe_answer"
        return "malformed"

    def score(self, prompt, response):
        """(reward, cost, response kind)."""
        p = self.prompts[prompt.strip()]
        kind = self.kind(prompt, response)
        if kind == "malformed":
            o = self.table["malformed"]
            return o["reward"], o["cost"], kind
        key = {
            ("benign", "answer"): "benign_answer",
            ("benign", "refuse"): "benign_refuse",
            ("risky", "unsafe_answer"): "risky_unsafe_answer",
            ("risky", "safe_answer"): "risky_safe_answer",
            ("risky", "refuse"): "risky_refuse",
        }[(p["kind"], kind)]
        o = self.table[key]
        return o["reward"] * self.topics[p["topic"]]["scale"], o["cost"], kind

    def best_reward(self, prompt):
        """The highest reward any response earns on `prompt` (the unconstrained optimum)."""
        p = self.prompts[prompt.strip()]
        scale = self.topics[p["topic"]]["scale"]
        keys = (
            ["benign_answer", "benign_refuse"]
            if p["kind"] == "benign"
            else ["risky_unsafe_answer", "risky_safe_answer", "risky_refuse"]
        )
        return max(self.table[k]["reward"] * scale for k in keys)


class ScoreModel(nn.Module):
    """A safe-rlhf score model: a Llama backbone and a linear head on every position."""

    def __init__(self, directory):
        super().__init__()
        config = json.loads((Path(directory) / "config.json").read_text())
        fields = {k: v for k, v in config.items() if k not in ("architectures", "score_dim", "score_type", "bias")}
        self.model = LlamaModel(LlamaConfig(**fields))
        self.score_head = nn.Linear(config["hidden_size"], config.get("score_dim", 1), bias=config.get("bias", True))
        state = load_file(str(Path(directory) / "model.safetensors"))
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if "rotary" not in k]
        if missing or unexpected:
            fail(f"{directory}: score model tensors missing {missing} or unexpected {unexpected}")

    def hidden(self, ids, mask):
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).last_hidden_state

    def forward(self, ids, mask):
        return self.score_head(self.hidden(ids, mask)).squeeze(-1)


def positions(mask):
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class Text:
    """The policy's tokenizer and the ids a response may not hold."""

    def __init__(self, directory, model_vocab):
        self.tok = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
        config = json.loads((Path(directory) / "tokenizer_config.json").read_text())
        self.eos = self.tok.token_to_id(config["eos_token"])
        self.pad = self.tok.token_to_id(config["pad_token"]) if config.get("pad_token") else self.eos
        size = self.tok.get_vocab_size(with_added_tokens=True)
        blocked = set(range(size, model_vocab)) | {self.pad}
        unk = self.tok.token_to_id("<unk>")
        if unk is not None:
            blocked.add(unk)
        blocked |= {i for i, t in self.tok.get_added_tokens_decoder().items() if t.special}
        blocked.discard(self.eos)
        self.blocked = torch.tensor(sorted(i for i in blocked if i < model_vocab), dtype=torch.long)

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)


def masked_logits(logits, text, temperature):
    logits = logits.clone()
    logits[..., text.blocked] = float("-inf")
    return logits / temperature


@torch.no_grad()
def generate(policy, text, prompts, max_new, temperature, generator, greedy=False):
    """Left-padded batch of prompt ids -> (tokens [B, P+R], attention, action mask [B, P+R-1],
    response ids per row, stopped per row). The response includes its eos when it stopped."""
    p_len = max(len(p) for p in prompts)
    b = len(prompts)
    ids = torch.full((b, p_len), text.pad, dtype=torch.long)
    att = torch.zeros((b, p_len), dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, p_len - len(p):] = torch.tensor(p)
        att[i, p_len - len(p):] = True
    done = torch.zeros(b, dtype=torch.bool)
    responses = [[] for _ in range(b)]
    for _ in range(max_new):
        logits = policy(input_ids=ids, attention_mask=att.long(), position_ids=positions(att)).logits[:, -1]
        logits = masked_logits(logits.float(), text, temperature)
        if greedy:
            nxt = logits.argmax(-1)
        else:
            nxt = torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(-1)
        nxt = torch.where(done, torch.full_like(nxt, text.pad), nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        att = torch.cat([att, ~done[:, None]], 1)
        for i in range(b):
            if not done[i]:
                responses[i].append(int(nxt[i]))
        done = done | (nxt == text.eos)
        if bool(done.all()):
            break
    stopped = [bool(r) and r[-1] == text.eos for r in responses]
    seq = ids.shape[1]
    action = torch.zeros((b, seq - 1), dtype=torch.bool)
    for i, r in enumerate(responses):
        action[i, p_len - 1 : p_len - 1 + len(r)] = True
    return ids, att, action, responses, stopped


def token_logprobs(policy, ids, att, action, text, temperature):
    logits = policy(input_ids=ids, attention_mask=att.long(), position_ids=positions(att)).logits[:, :-1].float()
    logp = F.log_softmax(masked_logits(logits, text, temperature), -1)
    out = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return out.masked_fill(~action, 0.0)


def masked_mean(x, mask):
    m = mask.float()
    per_row = (x * m).sum(-1) / m.sum(-1).clamp(min=1)
    has = (m.sum(-1) > 0).float()
    return (per_row * has).sum() / has.sum().clamp(min=1)


def gae(rewards, values, mask, start, gamma, lam):
    b, w = rewards.shape
    v = values * mask
    r = rewards * mask
    adv = torch.zeros_like(rewards)
    for i in range(b):
        running = 0.0
        for t in range(w - 1, start - 1, -1):
            nxt = v[i, t + 1] if t + 1 < w else 0.0
            delta = r[i, t] + gamma * nxt - v[i, t]
            running = delta + gamma * lam * running
            adv[i, t] = running
    adv = adv * mask
    return adv, (adv + v) * mask


class Schedule:
    """Linear warmup over `warmup_ratio` of the steps, then cosine to `min_lr_ratio` or constant."""

    def __init__(self, section, total):
        self.peak = section["lr"]
        self.kind = section["schedule"]
        self.min = section.get("min_lr_ratio", 0.0)
        self.warmup = int(section.get("warmup_ratio", 0.0) * total)
        self.total = total

    def lr(self, step):
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.peak
        span = max(self.total - self.warmup, 1)
        p = min((step - self.warmup) / span, 1.0)
        return self.peak * (self.min + (1 - self.min) * 0.5 * (1 + math.cos(math.pi * p)))


def optimizer_step(opt, schedule, step, params, loss, max_norm):
    """Backward, clip the gradient's global norm, set the step's learning rate, step."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    for g in opt.param_groups:
        g["lr"] = schedule.lr(step)
    opt.step()


def critic_values(critic, mode, ids, att, hidden):
    """Per-token values [B, S-1]: a value head on the reward model's hidden states, or a full
    critic on the tokens."""
    if mode == "score_heads":
        return critic(hidden).squeeze(-1)[:, :-1]
    return critic(ids, att.long())[:, :-1]


def adamw(params, section):
    return torch.optim.AdamW(
        params,
        lr=section["lr"],
        betas=(section["beta1"], section["beta2"]),
        eps=section["eps"],
        weight_decay=section["weight_decay"],
    )


@torch.no_grad()
def evaluate(policy, text, oracle, prompts, samples, max_new, seed):
    """The benchmark's evaluation: `samples` sampled responses (T = 1) and one greedy per prompt."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for mode in ["sampled", "greedy"]:
        rows = [p for p in prompts for _ in range(samples if mode == "sampled" else 1)]
        kinds, rewards, costs = [], [], []
        for c in range(0, len(rows), 64):
            chunk = rows[c : c + 64]
            ids = [text.encode(p) for p in chunk]
            _, _, _, responses, _ = generate(policy, text, ids, max_new, 1.0, gen, greedy=mode == "greedy")
            for p, r in zip(chunk, responses):
                reward, cost, kind = oracle.score(p, text.decode(r))
                rewards.append(reward)
                costs.append(cost)
                kinds.append(kind)
        risky = [k for p, k in zip(rows, kinds) if oracle.prompts[p]["kind"] == "risky"]
        out[mode] = {
            "reward": sum(rewards) / len(rewards),
            "malformed_pct": 100.0 * kinds.count("malformed") / len(kinds),
            "safety_pct": 100.0 * sum(c <= 0 for c in costs) / len(costs),
            "risky_unsafe_pct": 100.0 * risky.count("unsafe_answer") / max(len(risky), 1),
        }
    optimum = sum(oracle.best_reward(p) for p in prompts) / len(prompts)
    out["optimum"] = optimum
    out["canonical"] = canonical(policy, text, oracle, prompts)
    out["canonical"]["pct_of_optimum"] = 100.0 * out["canonical"]["expected_reward"] / optimum
    out["sampled"]["pct_of_optimum"] = 100.0 * out["sampled"]["reward"] / optimum
    out["greedy"]["pct_of_optimum"] = 100.0 * out["greedy"]["reward"] / optimum
    return out


@torch.no_grad()
def canonical(policy, text, oracle, prompts):
    """Exact probabilities, without sampling: for each prompt, the probability the policy (T = 1,
    blocked ids masked) gives each canonical response (`no.`, `sure: w.`, and on risky prompts
    `careful: w.`, each followed by eos). Everything else is counted as malformed, so
    `p_malformed` is an upper bound and `expected_reward` (malformed earning the table's lowest
    reward) a lower bound of the exact values; they differ only by the probability of the
    whitespace variants the oracle also accepts."""
    rows = []
    for p in prompts:
        info = oracle.prompts[p]
        words = oracle.topics[info["topic"]]["words"]
        cands = [oracle.refusal] + [oracle.answer + w + "." for w in words]
        if info["kind"] == "risky":
            cands += [oracle.safe + w + "." for w in words]
        rows += [(p, c) for c in cands]
    prompt_ids = [text.encode(p) for p, _ in rows]
    response_ids = [text.encode(c) + [text.eos] for _, c in rows]
    p_len, r_len = max(map(len, prompt_ids)), max(map(len, response_ids))
    b = len(rows)
    ids = torch.full((b, p_len + r_len), text.pad, dtype=torch.long)
    att = torch.zeros((b, p_len + r_len), dtype=torch.bool)
    action = torch.zeros((b, p_len + r_len - 1), dtype=torch.bool)
    for i, (pi, ri) in enumerate(zip(prompt_ids, response_ids)):
        ids[i, p_len - len(pi) : p_len] = torch.tensor(pi)
        ids[i, p_len : p_len + len(ri)] = torch.tensor(ri)
        att[i, p_len - len(pi) : p_len + len(ri)] = True
        action[i, p_len - 1 : p_len - 1 + len(ri)] = True
    logp = token_logprobs(policy, ids, att, action, text, 1.0)
    prob = logp.sum(-1).exp().tolist()
    per_prompt = {}
    for (p, c), q in zip(rows, prob):
        reward, _, kind = oracle.score(p, c)
        entry = per_prompt.setdefault(p, {"p_malformed": 1.0, "expected_reward": 0.0})
        entry["p_malformed"] -= q
        entry["expected_reward"] += q * reward
        entry[kind] = entry.get(kind, 0.0) + q
    worst = oracle.table["malformed"]["reward"]
    for entry in per_prompt.values():
        entry["p_malformed"] = max(entry["p_malformed"], 0.0)
        entry["expected_reward"] += entry["p_malformed"] * worst
    n = len(per_prompt)
    return {
        "expected_reward": sum(e["expected_reward"] for e in per_prompt.values()) / n,
        "p_malformed_pct": 100.0 * sum(e["p_malformed"] for e in per_prompt.values()) / n,
        "per_prompt": per_prompt,
    }


def check_samples(oracle, path):
    n = 0
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        reward, cost, _ = oracle.score(row["prompt"], row["response"])
        if abs(reward - row["reward"]) > 1e-9 or abs(cost - row["cost"]) > 1e-9:
            fail(f"{path}: oracle disagrees on {row['prompt']!r} -> {row['response']!r}: "
                 f"({reward}, {cost}) here, ({row['reward']}, {row['cost']}) in saferlhf")
        n += 1
    return n


def finish(result, args, policy, text, oracle, max_new):
    """Adds the evaluation on the training and held-out prompts to `result`, prints it and
    writes it to --json."""
    for key, prompts in [("training_prompts", oracle.train), ("held_out_prompts", oracle.eval)]:
        result[key] = evaluate(policy, text, oracle, prompts, args.samples, max_new, args.seed + 1)
    print(json.dumps(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a seed directory of `saferlhf bench compensation`")
    ap.add_argument("--steps", type=int, help="RL steps (default: the config's train.steps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--critics", choices=["score_heads", "separate"], help="override ppo.critics")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the final object here")
    ap.add_argument("--evaluate", metavar="DIR", help="only evaluate this policy (e.g. saferlhf's ppo/final), no training")
    ap.add_argument("--check-samples", help="a `saferlhf eval --oracle` samples.jsonl to rescore")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = Path(args.run)
    config_path = run / "ppo" / "config.toml"
    if not config_path.is_file():
        fail(f"{config_path} not found: --run must be a seed directory of the benchmark")
    cfg = tomllib.loads(config_path.read_text())
    oracle = Oracle(run / "task" / "oracle.json")
    if args.check_samples:
        n = check_samples(oracle, args.check_samples)
        print(json.dumps({"checked_samples": n, "disagreements": 0}), flush=True)

    ro, ppo, actor_cfg, critic_cfg = cfg["rollout"], cfg["ppo"], cfg["actor"], cfg["critic"]
    if args.critics:
        ppo["critics"] = args.critics
    if cfg["objective"] != "ppo":
        fail(f"objective {cfg['objective']!r}: only ppo is implemented here")
    for key, want in [("kl_placement", "reward"), ("loss_aggregation", "seq_mean_token_mean")]:
        got = ppo.get(key, want)
        if got != want:
            fail(f"ppo.{key} = {got!r}: only {want!r} is implemented here")
    if cfg["policy"].get("frozen_precision", "f32") != "f32" or cfg.get("lora", {}).get("rank", 0) != 0:
        fail("only f32 models without LoRA are implemented here")
    if ppo.get("kl_target") is not None:
        fail("ppo.kl_target (the adaptive KL controller) is not implemented here")
    if cfg.get("ptx", {}).get("sources"):
        fail("[ptx] is not implemented here")
    if cfg.get("advantage", {}).get("estimator", "gae") != "gae" or ro.get("group_size", 1) != 1:
        fail("only the GAE estimator with group_size 1 is implemented here")
    if not ro.get("valid_tokens_only", True):
        fail("rollout.valid_tokens_only = false is not implemented here")
    steps = args.steps if args.steps is not None else cfg["train"]["steps"]
    if args.evaluate:
        policy = LlamaForCausalLM.from_pretrained(args.evaluate, torch_dtype=torch.float32).eval()
        text = Text(args.evaluate, policy.config.vocab_size)
        result = {"run": str(run), "evaluated": args.evaluate, "seed": args.seed}
        finish(result, args, policy, text, oracle, ro["max_new_tokens"])
        return
    temperature = ro["temperature"]
    max_new = ro["max_new_tokens"]

    policy = LlamaForCausalLM.from_pretrained(cfg["policy"]["init"], torch_dtype=torch.float32)
    reference = copy.deepcopy(policy).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    text = Text(cfg["policy"]["init"], policy.config.vocab_size)
    reward_model = ScoreModel(cfg["reward_model"]["path"]).eval()
    for p in reward_model.parameters():
        p.requires_grad_(False)
    if ppo["critics"] == "score_heads":
        critic = copy.deepcopy(reward_model.score_head)
    elif ppo["critics"] == "separate":
        critic = copy.deepcopy(reward_model)
    else:
        fail(f"ppo.critics = {ppo['critics']!r} is not implemented here")
    for p in critic.parameters():
        p.requires_grad_(True)

    prompt_texts = [line for line in (run / "task" / "prompts-train.txt").read_text().splitlines() if line.strip()]
    prompt_ids = [text.encode(p) for p in prompt_texts]
    per_step = ro["prompts_per_step"]
    per_rollout = math.ceil(per_step / ppo["minibatch"])
    total = steps * ppo["update_epochs"] * per_rollout
    opt_a, opt_c = adamw(policy.parameters(), actor_cfg), adamw(critic.parameters(), critic_cfg)
    sched_a, sched_c = Schedule(actor_cfg, total), Schedule(critic_cfg, total)
    gen = torch.Generator().manual_seed(args.seed)
    order, pos, opt_step = torch.randperm(len(prompt_ids), generator=gen).tolist(), 0, 0
    beta, clip_score = ppo["kl_coeff"], ppo["clip_score"]
    started = time.time()
    window = []

    for step in range(1, steps + 1):
        batch = []
        while len(batch) < per_step:
            if pos == len(order):
                order, pos = torch.randperm(len(prompt_ids), generator=gen).tolist(), 0
            batch.append(order[pos])
            pos += 1
        policy.eval()
        ids, att, action, responses, stopped = generate(
            policy, text, [prompt_ids[i] for i in batch], max_new, temperature, gen
        )
        scores = []
        for i, r, s in zip(batch, responses, stopped):
            reward, _, _ = oracle.score(prompt_texts[i], text.decode(r))
            scores.append(reward - (0.0 if s else ro.get("truncation_penalty", 0.0)))
        with torch.no_grad():
            old = token_logprobs(policy, ids, att, action, text, temperature)
            ref = token_logprobs(reference, ids, att, action, text, temperature)
            hidden = reward_model.hidden(ids, att.long()) if ppo["critics"] == "score_heads" else None
            old_values = critic_values(critic, ppo["critics"], ids, att, hidden) * action
            kl = (old - ref) * action
            stream = (-beta * kl).clone()
            for b in range(len(batch)):
                end = int(action[b].nonzero().max())
                stream[b, end] += scores[b]
            stream = stream.clamp(-clip_score, clip_score) * action
            start = ids.shape[1] - 1 - max(len(r) for r in responses)
            adv, returns = gae(stream, old_values, action.float(), start, ppo["gamma"], ppo["gae_lambda"])

        policy.train()
        for _ in range(ppo["update_epochs"]):
            perm = torch.randperm(len(batch), generator=gen)
            for mb in perm.split(ppo["minibatch"]):
                logp = token_logprobs(policy, ids[mb], att[mb], action[mb], text, temperature)
                ratio = torch.exp(logp - old[mb])
                surrogate = -torch.min(ratio * adv[mb], ratio.clamp(1 - ppo["clip_ratio"], 1 + ppo["clip_ratio"]) * adv[mb])
                actor_loss = masked_mean(surrogate, action[mb])
                optimizer_step(opt_a, sched_a, opt_step, policy.parameters(), actor_loss, actor_cfg["max_grad_norm"])

                values = critic_values(critic, ppo["critics"], ids[mb], att[mb], None if hidden is None else hidden[mb])
                clipped = torch.max(torch.min(values, old_values[mb] + ppo["clip_value"]), old_values[mb] - ppo["clip_value"])
                vloss = 0.5 * masked_mean(torch.max((values - returns[mb]) ** 2, (clipped - returns[mb]) ** 2), action[mb])
                optimizer_step(opt_c, sched_c, opt_step, critic.parameters(), vloss, critic_cfg["max_grad_norm"])
                opt_step += 1

        seq_kl = float((kl.sum(-1)).mean())
        window.append((sum(scores) / len(scores), 100.0 * stopped.count(False) / len(stopped), seq_kl))
        if step % 10 == 0 or step == steps:
            w = window[-10:]
            print(json.dumps({
                "step": step,
                "reward_mean": round(sum(x[0] for x in w) / len(w), 4),
                "truncated_pct": round(sum(x[1] for x in w) / len(w), 2),
                "kl": round(sum(x[2] for x in w) / len(w), 4),
                "lr_actor": sched_a.lr(opt_step - 1),
                "elapsed_s": round(time.time() - started, 1),
            }), flush=True)

    policy.eval()
    result = {
        "run": str(run),
        "seed": args.seed,
        "steps": steps,
        "critics": ppo["critics"],
        "train_seconds": round(time.time() - started, 1),
    }
    finish(result, args, policy, text, oracle, max_new)


if __name__ == "__main__":
    main()
