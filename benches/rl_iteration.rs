//! One online RL iteration (PPO-Lagrangian) at SmolLM2-135M's size on the CPU (`flex`), in each
//! memory mode: wall time per step and the process's peak resident memory.
//!
//! The work of one step: 8 prompts, 64 new tokens each (sampled, KV cache), old and reference
//! log-probs, reward and cost end scores, critic values, then 1 epoch over one minibatch of 8
//! (one micro-batch) with one AdamW step of the actor and of the critics. The models are random
//! weights of SmolLM2-135M's architecture (`policy.preset = "char-smollm2-135m"`; sampling over
//! all 49152 logits gives every response exactly 64 tokens), the reward and cost models the same
//! backbone with a score head, and the critics separate full copies (`ppo.critics = "separate"`).
//!
//! Modes (each in a process of its own, so that each peak is its own):
//! - `full`: everything f32, the policy fully trained (6 full models: policy, reference, reward,
//!   cost, 2 critics; AdamW state for policy and critics);
//! - `bf16`: `frozen_precision = "bf16"` (reference, reward and cost held in bf16);
//! - `lora`: `[lora] rank = 16` on every projection (the reference is the policy's frozen
//!   weights; AdamW state for the adapters only);
//! - `lora-bf16`: both (the reference stays the shared f32 weights; reward and cost in bf16).
//!
//! Run with `cargo bench --bench rl_iteration` (release). Options: `--mode MODE` (one mode in
//! this process; default: every mode, each in a child process), `--steps N` (default 5). Each
//! mode prints one JSON line: `first_step_s`, `warm_step_s` (median of the steps after the
//! second), `generation_share`, `peak_rss_gb` (VmHWM: the whole process, models, optimizer
//! state, activations and allocator slack). Without `--bench` (under `cargo test --benches`, or
//! run by hand) it is a smoke test on the `char-tiny` preset, one step per mode.

use std::process::Command;

use saferlhf::Device;
use saferlhf::learner::TrainOptions;
use saferlhf::learner::objectives::build_online;
use saferlhf::learner::rl::{RlConfig, train_rl_with};
use serde_json::{Value, json};

const MODES: [&str; 4] = ["full", "bf16", "lora", "lora-bf16"];

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Peak resident set size of this process in GB (Linux), else None.
fn peak_rss_gb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0 / 1024.0)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn run_mode(mode: &str, real: bool, steps: usize) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("saferlhf-bench-rl-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let preset = if real {
        "char-smollm2-135m"
    } else {
        "char-tiny"
    };
    let mut overrides = vec![
        "objective=\"ppo_lag\"".to_string(),
        format!("run.dir=\"{}\"", dir.display()),
        "run.progress=false".into(),
        format!("policy.preset=\"{preset}\""),
        format!("reward_model.preset=\"{preset}\""),
        format!("cost_model.preset=\"{preset}\""),
        format!(
            "data.sources.0.path=\"{}\"",
            root.join("tests/fixtures/tiny-prompts.txt").display()
        ),
        "policy.max_length=128".into(),
        "rollout.prompts_per_step=8".into(),
        format!("rollout.max_new_tokens={}", if real { 64 } else { 12 }),
        "rollout.valid_tokens_only=false".into(),
        "ppo.critics=\"separate\"".into(),
        "ppo.update_epochs=1".into(),
        "ppo.minibatch=8".into(),
        "ppo.micro_batch=8".into(),
        format!("train.steps={steps}"),
        "train.checkpoint_every=0".into(),
    ];
    if mode.contains("bf16") {
        overrides.push("frozen_precision=\"bf16\"".into());
    }
    if mode.starts_with("lora") {
        overrides.push("lora.rank=16".into());
    }
    let config = RlConfig::load(&root.join("configs/tiny-rlhf.toml"), &overrides)
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    let objective = build_online(config.objective, &config.sections());
    train_rl_with(
        &config,
        objective,
        &Device::flex(),
        &TrainOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{mode}: {e}"));
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics.jsonl");
    let lines: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).expect("a metrics line"))
        .collect();
    let seconds: Vec<f64> = lines
        .iter()
        .map(|l| l["seconds"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let mut warm: Vec<f64> = seconds.iter().skip(2).copied().collect();
    warm.sort_by(f64::total_cmp);
    let median = warm.get(warm.len() / 2).copied();
    let share: f64 = lines
        .iter()
        .skip(2)
        .map(|l| l["generation_share"].as_f64().unwrap_or(f64::NAN))
        .sum::<f64>()
        / warm.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "bench": "rl_iteration",
            "mode": mode,
            "preset": preset,
            "steps": steps,
            "first_step_s": seconds.first().map(|s| round(*s, 2)),
            "second_step_s": seconds.get(1).map(|s| round(*s, 2)),
            "warm_step_s": median.map(|s| round(s, 2)),
            "all_s": seconds.iter().map(|s| round(*s, 2)).collect::<Vec<_>>(),
            "generation_share": if warm.is_empty() { None } else { Some(round(share, 3)) },
            "peak_rss_gb": peak_rss_gb().map(|g| round(g, 2)),
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let real = args.iter().any(|a| a == "--bench");
    let steps: usize = arg(&args, "--steps")
        .map(|s| s.parse().expect("--steps N"))
        .unwrap_or(if real { 5 } else { 1 });
    saferlhf::retain_freed_memory();
    if let Some(mode) = arg(&args, "--mode") {
        assert!(MODES.contains(&mode.as_str()), "--mode: one of {MODES:?}");
        run_mode(&mode, real, steps);
        return;
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    for mode in MODES {
        let mut child = Command::new(&exe);
        child.args(["--mode", mode, "--steps", &steps.to_string()]);
        if real {
            child.arg("--bench");
        }
        let status = child.status().expect("running a mode");
        assert!(status.success(), "mode {mode} failed");
    }
}
